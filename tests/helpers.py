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
