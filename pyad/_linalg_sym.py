"""Recording numpy.linalg.cholesky and scipy.linalg's triangular / Cholesky solves
on active arrays: one row per call over the whole stack of matrices (csrc/linalg_sym.c,
pyad/_python_linalg_sym.py), LAPACK / BLAS in every sweep.

cholesky follows numpy (the lower factor from A's lower triangle; upper=True
gives its transpose from the upper triangle); its derivative treats A as
symmetric, as JAX and PyTorch do: the gradient with respect to A is symmetric,
each off-diagonal pair sharing what the lower element alone would get.
solve_triangular, cho_factor and cho_solve follow scipy.linalg (scipy itself
cannot be handed an active array: it has no dispatch hook)."""
from typing import Any

import numpy as np

from . import array as A

_LOWER, _TRANS, _UNIT = 1, 2, 4


def _shape(x):
    """x's shape, read without filling an active value's index array."""
    return A._shape_of(x) if A.is_active(x) else np.shape(x)


def _active_stack(store, x, what):
    """The slots of x (..., rows, cols), an active array or a constant, as one
    contiguous run: (first slot, its shape). A constant enters as constant slots;
    a layout that is not a row-major run (a transpose, a slice) is gathered."""
    first = A.consecutive_first(x) if A.is_active(x) else None
    if first is not None:
        return first, x._v.shape
    idx = A.slots_of(x) if A.is_active(x) else A.to_slots(store, np.asarray(x, np.float64))
    idx = np.asarray(idx)
    flat = idx.ravel()
    if flat.size and np.array_equal(flat, flat[0] + np.arange(flat.size)):
        return int(flat[0]), idx.shape
    return store.gather(np.ascontiguousarray(flat)), idx.shape


def _values(x):
    """The numbers of x at the recording point, read without recording a guard
    (.value would: these reads only decide whether to raise)."""
    if not A.is_active(x):
        return np.asarray(x, np.float64)
    first = A.consecutive_first(x)
    if first is not None:
        shape = x._v.shape
        run = np.arange(first, first + x._v.size, dtype=np.int32)
        return x._s.values(run).reshape(shape)
    idx = np.asarray(A.slots_of(x))
    return x._s.values(np.ascontiguousarray(idx.ravel(), dtype=np.int32)).reshape(idx.shape)


def _square_stack(shape, what):
    if len(shape) < 2:
        raise np.linalg.LinAlgError(f"{len(shape)}-dimensional array given. Array must be at "
                                    "least two-dimensional")
    if shape[-1] != shape[-2]:
        raise np.linalg.LinAlgError("Last 2 dimensions of the array must be square")


def cholesky(a: Any, upper: bool = False) -> Any:
    """The Cholesky factor, as ``numpy.linalg.cholesky``: one row per stack.

    Reads a's lower triangle (upper=True: returns the upper factor). As in JAX
    and PyTorch, the derivative treats a as symmetric: the gradient is
    symmetric.

    Parameters
    ----------
    a : array_like or Array, shape (..., n, n)
        Symmetric positive-definite matrices.
    upper : bool, optional
        Return the upper factor U = L^T instead of L.

    Returns
    -------
    Array or numpy.ndarray
        L with a = L L^T (or U with a = U^T U).

    Raises
    ------
    numpy.linalg.LinAlgError
        A matrix that is not positive definite (at replay: naming the row and
        the point).

    Examples
    --------
    >>> import numpy as np, pyad
    >>> a = np.array([[4.0, 2.0], [2.0, 3.0]])
    >>> logdet = lambda a: 2 * np.sum(np.log(np.diag(np.linalg.cholesky(a))))
    >>> bool(np.allclose(pyad.grad(logdet)(a), np.linalg.inv(a)))
    True
    """
    if not A.is_active(a):
        return np.linalg.cholesky(a, upper=upper)
    if upper:  # numpy: the upper factor of A is the lower factor of Aᵀ, transposed
        return np.swapaxes(cholesky(np.swapaxes(a, -1, -2)), -1, -2)
    store = a._s
    shape = _shape(a)
    _square_stack(shape, "cholesky")
    n = shape[-1]
    if n == 0 or 0 in shape[:-2]:
        return A.wrap(store, np.zeros(shape, dtype=np.int32))
    first, _ = _active_stack(store, a, "a")
    count = int(np.prod(shape[:-2], dtype=np.int64))
    try:
        out = store.linalg_sym("cholesky", first, 0, n, n, count, 0)
    except np.linalg.LinAlgError:
        raise np.linalg.LinAlgError("Matrix is not positive definite") from None
    return A._fresh(store, out, shape)


def _trans_flag(trans):
    if trans in (0, "N", "n"):
        return 0
    if trans in (1, "T", "t", 2, "C", "c"):  # real matrices: C is T
        return _TRANS
    raise ValueError(f"incorrect value for trans: {trans!r} (0/'N', 1/'T' or 2/'C')")


def _check_finite(*xs):
    for x in xs:
        if not np.isfinite(_values(x)).all():
            raise ValueError("array must not contain infs or NaNs")


def solve_triangular(a: Any, b: Any, trans: Any = 0, lower: bool = False,
                     unit_diagonal: bool = False, overwrite_b: bool = False,
                     check_finite: bool = True) -> Any:
    """X = op(A)⁻¹ B for a triangular A, as ``scipy.linalg.solve_triangular``.

    scipy.linalg has no dispatch hook, so on active arrays call this one (a
    scipy call on an active array raises a TypeError naming it).

    Parameters
    ----------
    a : array_like or Array, shape (..., n, n)
        Only its lower (lower=True) or upper triangle is read.
    b : array_like or Array, shape (n,) or (..., n, k)
        Right-hand sides; stacks broadcast.
    trans : {0, 1, 2, "N", "T", "C"}, optional
        Solve A X = B (0, "N") or A^T X = B (1, 2, "T", "C").
    lower : bool, optional
        Use the lower triangle.
    unit_diagonal : bool, optional
        Take A's diagonal as ones (never read).
    overwrite_b : bool, optional
        Accepted for scipy's signature; b is never overwritten.
    check_finite : bool, optional
        Refuse NaN / infinite values, as scipy does.

    Returns
    -------
    Array or numpy.ndarray
        X, of b's shape (stacks broadcast).

    Raises
    ------
    numpy.linalg.LinAlgError
        A zero on A's diagonal (at replay: naming the row and the point).
    ValueError
        Bad shapes or options, or non-finite values with check_finite.

    Examples
    --------
    >>> import numpy as np, pyad
    >>> L = np.array([[2.0, 0.0], [1.0, 4.0]])
    >>> g = pyad.grad(lambda b: np.sum(pyad.linalg.solve_triangular(L, b, lower=True)))
    >>> bool(np.allclose(g(np.ones(2)), np.linalg.solve(L.T, np.ones(2))))
    True
    """
    store = A.store_of(a, b)
    if store is None:
        import scipy.linalg
        return scipy.linalg.solve_triangular(a, b, trans, lower, unit_diagonal, overwrite_b,
                                             check_finite)
    flags = _trans_flag(trans) | (_LOWER if lower else 0) | (_UNIT if unit_diagonal else 0)
    if check_finite:
        _check_finite(a, b)
    a_shape, b_shape = _shape(a), _shape(b)
    if len(a_shape) < 2 or a_shape[-1] != a_shape[-2]:
        raise ValueError(f"expected square matrix, got a of shape {a_shape}")
    n = a_shape[-1]
    vector = len(b_shape) == 1
    b_core = b_shape + (1,) if vector else b_shape
    if len(b_core) < 2 or b_core[-2] != n:
        raise ValueError(f"shapes of a {a_shape} and b {b_shape} are incompatible")
    m = b_core[-1]
    lead = np.broadcast_shapes(a_shape[:-2], b_core[:-2])
    out_shape = lead + (n, m)
    if n == 0 or m == 0 or 0 in lead:
        zeros = A.to_slots(store, np.zeros(out_shape)) if np.prod(out_shape) else \
            np.zeros(out_shape, dtype=np.int32)
        return A.wrap(store, zeros[..., 0] if vector else zeros)
    a_b = _broadcast(store, a, lead + (n, n))
    b_b = _broadcast(store, b, lead + (n, m), vector)
    fa, _ = _active_stack(store, a_b, "a")
    fb, _ = _active_stack(store, b_b, "b")
    count = int(np.prod(lead, dtype=np.int64))
    try:
        out = store.linalg_sym("solve_triangular", fa, fb, n, m, count, flags)
    except np.linalg.LinAlgError:
        raise _singular(_values(a)) from None
    return A._fresh(store, out, out_shape[:-1] if vector else out_shape)


def _broadcast(store, x, shape, vector=False):
    """x (a vector b read as one column) broadcast to shape: x itself where it
    has that shape already, else slots of an active x (a view, recording
    nothing) or the constant."""
    if vector and not A.is_active(x):
        x = np.asarray(x, np.float64)[:, None]
    if _shape(x) == shape and not vector:
        return x
    if A.is_active(x):
        idx = A.slots_of(x)
        return A.wrap(store, np.broadcast_to(idx[:, None] if vector else idx, shape))
    return np.broadcast_to(x, shape)


def _singular(a_values):
    diag = np.diagonal(np.asarray(a_values), axis1=-2, axis2=-1)
    zero = np.flatnonzero((diag == 0).any(axis=tuple(range(diag.ndim - 1))))
    where = int(zero[0]) if zero.size else 0
    return np.linalg.LinAlgError(f"singular matrix: resolution failed at diagonal {where}")


def cho_factor(a: Any, lower: bool = False, overwrite_a: bool = False,
               check_finite: bool = True) -> Any:
    """The Cholesky factor in scipy's form, as ``scipy.linalg.cho_factor``.

    Unlike scipy, c's other triangle holds zeros, not a's entries (scipy leaves
    them unspecified).

    Parameters
    ----------
    a : array_like or Array, shape (n, n)
        A symmetric positive-definite matrix.
    lower : bool, optional
        Factor from (and return) the lower triangle, else the upper.
    overwrite_a : bool, optional
        Accepted for scipy's signature; a is never overwritten.
    check_finite : bool, optional
        Refuse NaN / infinite values, as scipy does.

    Returns
    -------
    tuple
        ``(c, lower)``, to pass to ``cho_solve``.

    Raises
    ------
    numpy.linalg.LinAlgError
        The matrix is not positive definite.

    Examples
    --------
    >>> import numpy as np, pyad
    >>> a = np.array([[4.0, 2.0], [2.0, 3.0]])
    >>> f = lambda a: np.sum(pyad.linalg.cho_solve(pyad.linalg.cho_factor(a), np.ones(2)))
    >>> bool(np.isclose(f(a), np.sum(np.linalg.solve(a, np.ones(2)))))
    True
    """
    if not A.is_active(a):
        import scipy.linalg
        return scipy.linalg.cho_factor(a, lower, overwrite_a, check_finite)
    if check_finite:
        _check_finite(a)
    return cholesky(a, upper=not lower), lower


def cho_solve(c_and_lower: Any, b: Any, overwrite_b: bool = False,
              check_finite: bool = True) -> Any:
    """A⁻¹ b from a Cholesky factor, as ``scipy.linalg.cho_solve``: two
    triangular-solve rows (A = c cᵀ for lower, cᵀ c for upper).

    Parameters
    ----------
    c_and_lower : tuple
        ``(c, lower)`` as ``cho_factor`` returns; c active or constant.
    b : array_like or Array
        Right-hand sides.
    overwrite_b : bool, optional
        Accepted for scipy's signature; b is never overwritten.
    check_finite : bool, optional
        Refuse NaN / infinite values, as scipy does.

    Returns
    -------
    Array or numpy.ndarray
        The solution, of b's shape.

    Raises
    ------
    TypeError
        The first argument is not a (c, lower) pair.

    Examples
    --------
    >>> import numpy as np, pyad
    >>> c = (np.array([[2.0, 0.0], [1.0, 1.0]]), True)
    >>> g = pyad.grad(lambda b: np.sum(pyad.linalg.cho_solve(c, b)))(np.ones(2))
    >>> a = c[0] @ c[0].T
    >>> bool(np.allclose(g, np.linalg.solve(a, np.ones(2))))
    True
    """
    try:
        c, lower = c_and_lower
    except (TypeError, ValueError):
        raise TypeError("cho_solve: the first argument must be the tuple (c, lower) "
                        "cho_factor returns") from None
    if A.store_of(c, b) is None:
        import scipy.linalg
        return scipy.linalg.cho_solve((c, lower), b, overwrite_b, check_finite)
    y = solve_triangular(c, b, trans=0 if lower else 1, lower=lower, check_finite=check_finite)
    return solve_triangular(c, y, trans=1 if lower else 0, lower=lower, check_finite=False)
