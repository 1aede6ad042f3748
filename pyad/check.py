"""pyad.check_grads: compare pyad's derivatives with finite differences.

    pyad.check_grads(f, x)                 # raises AssertionError on a mismatch

f is recorded once at x. In random unit directions v (and, for the reverse
mode, random output weights u) it compares

* the value the tape recorded with f evaluated directly;
* "fwd":  the forward-mode J v with central differences of f along v;
* "rev":  the reverse-mode u^T J, dotted with v, with u . (central differences);
* both modes: forward and reverse with each other (u . J v == (u^T J) . v);
* order 2: the forward-over-reverse Hessian-vector product H v with central
  differences of the reverse-mode gradient along v ("rev"), and v . H v with
  central differences of the forward-mode J v along v ("fwd"). For a vector
  f the Hessian is that of u . f for a random u.

The finite differences call f itself on plain numbers, so they are an oracle
independent of the tape. Everything is checked with
|got - expected| <= atol + rtol * |expected|.
"""
from typing import Any, Callable, Sequence

import numpy as np

from . import pytree
from .batch import progress_bar
from .modes import mode_name
from .recording import as_input
from .store import Sweep
from .transforms import trace


def _fmt(a):
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 0:
        return repr(float(a))
    return np.array2string(a, precision=10, threshold=8, separator=", ")


class _Point:
    """The flat vector of the leaves of f's arguments (pytrees), and the way back
    to f's arguments."""

    def __init__(self, x):
        args = x if type(x) is tuple else (x,)
        leaves, self.spec = pytree.flatten(args)
        arrays = [as_input(a, "check_grads point") for a in leaves]
        self.shapes = [a.shape for a in arrays]
        self.flat = np.concatenate([a.ravel() for a in arrays]) if arrays else np.zeros(0)

    def unflatten(self, z):
        parts, start = [], 0
        for shape in self.shapes:
            n = int(np.prod(shape, dtype=np.int64))
            part = z[start:start + n]
            parts.append(float(part[0]) if shape == () else part.reshape(shape).copy())
            start += n
        return pytree.unflatten(self.spec, parts)


def check_grads(f: Callable[..., Any], x: Any, order: int = 2,
                modes: "str | Sequence[str]" = ("forward", "reverse"), eps: float = 1e-6,
                rtol: float = 1e-5, atol: "float | None" = None, n_directions: int = 3,
                backend: "str | None" = None, seed: int = 0, progress: bool = False) -> None:
    """Check f's forward- and reverse-mode derivatives against finite differences.

    Compares, in ``n_directions`` random directions, forward mode (JVP), reverse
    mode (VJP) and, for ``order=2``, the Hessian-vector product with central finite
    differences of ``f``, like ``jax.test_util.check_grads``.

    Parameters
    ----------
    f : callable
        The function (any output; for a vector-valued ``f`` the second order checks
        the Hessian of ``u . f`` for a random weight vector ``u``).
    x : pytree or tuple
        One argument (a number, an array or a pytree of them) or a tuple of
        arguments ``f(*x)``.
    order : {1, 2}
        1 checks first derivatives; 2 also the Hessian-vector product.
    modes : str or sequence of str
        Any of ``"forward"`` / ``"fwd"`` and ``"reverse"`` / ``"rev"``.
    eps : float
        The finite-difference step along a unit direction.
    rtol, atol : float
        Tolerances; ``atol=None`` means ``rtol * max(1, |expected|)`` plus the
        rounding error of the finite differences.
    n_directions : int
        How many random directions.
    backend : {"c", "python"}, optional
        The backend recording ``f``.
    seed : int
        The seed of the random directions.
    progress : bool
        Show a progress bar (tqdm if installed, else a line on stderr).

    Returns
    -------
    None
        When every check passes.

    Raises
    ------
    AssertionError
        A check failed: the message names the check, the direction, and the
        expected and computed numbers.
    ValueError
        ``order``, ``modes``, ``eps`` or ``n_directions`` is invalid, or ``x`` has
        no numbers.

    Examples
    --------
    >>> import numpy as np, pyad
    >>> pyad.check_grads(lambda x: np.sum(np.sin(x) * x), np.array([0.5, 1.0]))
    """
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, not {order!r}")
    modes = (modes,) if isinstance(modes, str) else tuple(modes)
    if not modes:
        raise ValueError("modes must name at least one of 'forward' ('fwd') and 'reverse' "
                         "('rev')")
    modes = tuple(mode_name(m, auto=False, what="modes") for m in modes)
    if not (eps > 0):
        raise ValueError(f"eps must be positive, not {eps!r}")
    n_directions = int(n_directions)
    if n_directions < 1:
        raise ValueError("n_directions must be at least 1")

    point = _Point(x)
    x0 = point.flat
    n = x0.size
    if n == 0:
        raise ValueError("check_grads needs at least one input number")

    def f_direct(z):
        out = f(*point.unflatten(z))
        return np.asarray(getattr(out, "value", out), dtype=np.float64).ravel()

    tape = trace(f, *point.unflatten(x0), backend=backend)
    try:
        _run_checks(tape, f_direct, x0, order, modes, eps, rtol, atol, n_directions, seed,
                    progress)
    finally:
        tape.close()


def _run_checks(tape, f_direct, x0, order, modes, eps, rtol, atol, n_directions, seed, progress):
    n, m = tape.n_inputs, tape.n_outputs
    fwd, rev = "forward" in modes, "reverse" in modes
    rng = np.random.default_rng(seed)

    f0 = f_direct(x0)
    if f0.size != m:
        raise AssertionError(f"check_grads: f returned {f0.size} numbers when called directly "
                             f"but the tape recorded {m} outputs")
    scale_f = float(np.max(np.abs(f0))) if f0.size else 0.0

    def compare(what, got, expected, i, v, noise_scale, extra=""):
        got = np.asarray(got, dtype=np.float64)
        expected = np.asarray(expected, dtype=np.float64)
        if atol is None:
            big = float(np.max(np.abs(expected))) if expected.size else 0.0
            tol_abs = rtol * max(1.0, big) + 100 * np.finfo(float).eps * noise_scale / eps
        else:
            tol_abs = atol
        err = np.abs(got - expected)
        tol = tol_abs + rtol * np.abs(expected)
        if np.all(err <= tol):
            return
        where = f"in direction {i + 1} of {n_directions} (v = {_fmt(v)}{extra})"
        raise AssertionError(
            f"check_grads: {what} mismatch {where}:\n"
            f"  expected {_fmt(expected)}\n"
            f"  got      {_fmt(got)}\n"
            f"  max abs error {float(np.max(err)) if err.size else 0.0:.3e}, "
            f"tolerance atol={tol_abs:.3e} + rtol={rtol:.1e} * |expected|")

    # the value the tape recorded against f itself
    y_tape = np.asarray(tape._sweep(Sweep.FORWARD, x0), dtype=np.float64)
    if not np.allclose(y_tape, f0, rtol=1e-12, atol=1e-300, equal_nan=True):
        raise AssertionError(f"check_grads: value mismatch at x = {_fmt(x0)}: f(x) is "
                             f"{_fmt(f0)} but the tape recorded {_fmt(y_tape)}")

    per_dir = (fwd + rev + (fwd and rev) + (order == 2) * (fwd + rev))
    bar = progress_bar(progress, per_dir * n_directions, "check_grads", unit="check")
    try:
        for i in range(n_directions):
            v = rng.standard_normal(n)
            v /= np.linalg.norm(v)
            u = np.ones(1) if m == 1 else rng.standard_normal(m)
            extra = "" if m == 1 else f", output weights u = {_fmt(u)}"
            fd = (f_direct(x0 + eps * v) - f_direct(x0 - eps * v)) / (2 * eps)
            jv = ut_j = None
            if fwd:
                _, jv = tape._sweep(Sweep.JVP, x0, v)
                compare("forward-mode JVP (J v) vs central finite differences", jv, fd, i, v,
                        scale_f)
                _tick(bar)
            if rev:
                _, ut_j = tape._sweep(Sweep.VJP, x0, u)
                compare("reverse-mode VJP ((u^T J) . v) vs central finite differences",
                        np.dot(ut_j, v), np.dot(u, fd), i, v, scale_f * np.abs(u).sum(), extra)
                _tick(bar)
            if fwd and rev:
                compare("forward vs reverse mode (u . J v vs (u^T J) . v)", np.dot(ut_j, v),
                        np.dot(u, jv), i, v, 0.0, extra)
                _tick(bar)
            if order == 2:
                _, g0, hv = tape._sweep(Sweep.HVP, x0, v, u)
                g_scale = float(np.max(np.abs(g0))) if g0.size else 0.0
                if rev:
                    _, gp = tape._sweep(Sweep.VJP, x0 + eps * v, u)
                    _, gm = tape._sweep(Sweep.VJP, x0 - eps * v, u)
                    compare("Hessian-vector product (forward-over-reverse H v) vs central "
                            "finite differences of the reverse-mode gradient", hv,
                            (gp - gm) / (2 * eps), i, v, g_scale, extra)
                    _tick(bar)
                if fwd:
                    _, jp = tape._sweep(Sweep.JVP, x0 + eps * v, v)
                    _, jm = tape._sweep(Sweep.JVP, x0 - eps * v, v)
                    compare("second directional derivative (v . H v) vs central finite "
                            "differences of the forward-mode J v", np.dot(v, hv),
                            np.dot(u, (jp - jm) / (2 * eps)), i, v, g_scale, extra)
                    _tick(bar)
    finally:
        if bar is not None:
            bar.close()


def _tick(bar):
    if bar is not None:
        bar.update(1)
