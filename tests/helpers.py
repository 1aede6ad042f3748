"""Independent oracles shared by the tests: finite differences and mode agreement."""
import numpy as np


def central_diff_grad(f, x, h=1e-6):
    """Central-difference gradient of scalar f (plain numpy function) at x."""
    x = np.asarray(x, dtype=float)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h * max(1.0, abs(x[i]))
        g[i] = (f(x + e) - f(x - e)) / (2 * e[i])
    return g


def central_diff_jvp(f, x, v, h=1e-6):
    """Central-difference directional derivative of f at x along v."""
    x, v = np.asarray(x, dtype=float), np.asarray(v, dtype=float)
    return (np.asarray(f(x + h * v)) - np.asarray(f(x - h * v))) / (2 * h)


def block_matrix(nested, rows, cols, lead=()):
    """A Jacobian or Hessian nested as JAX nests it (blocks[i][j] for output leaf i,
    input leaf j, of rows[i] and cols[j] numbers) as one (lead..., sum(rows),
    sum(cols)) matrix."""
    return np.concatenate(
        [np.concatenate([np.reshape(nested[i][j], tuple(lead) + (r, c))
                         for j, c in enumerate(cols)], axis=-1)
         for i, r in enumerate(rows)], axis=-2)


def flat(parts):
    """One float64 vector from an output or a per-input tuple of arrays."""
    if isinstance(parts, tuple):
        return np.concatenate([np.ravel(np.asarray(p, dtype=float)) for p in parts])
    return np.ravel(np.asarray(parts, dtype=float))


def close(a, b, rtol, what):
    """a == b to rtol, relative to the larger of 1 and b's largest magnitude."""
    a, b = flat(a), flat(b)
    scale = max(1.0, float(np.max(np.abs(b), initial=0.0)))
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale, err_msg=what)


def point_arg(xs):
    """What a tape's methods take for the point xs: the array, or the tuple."""
    return xs[0] if len(xs) == 1 else tuple(xs)


def unflatten(vector, xs):
    """vector cut into pieces shaped like xs, as a tuple."""
    parts, at = [], 0
    for x in xs:
        n = np.size(x)
        parts.append(vector[at:at + n].reshape(np.shape(x)))
        at += n
    return tuple(parts)
