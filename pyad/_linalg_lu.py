"""numpy.linalg.solve, inv, det and slogdet on active arrays: one row per
matrix (csrc/linalg_lu.c; the pure-Python twin is pyad/_python_linalg_lu.py),
stacks (..., n, n) recording one row per matrix, as matmul does.

Shapes, broadcasting and errors are numpy's own: each function first runs
numpy.linalg on the operands' values, so a singular matrix raises
numpy.linalg.LinAlgError at record time exactly where numpy would, and a bad
shape gets numpy's message. Replay at a point where a recorded matrix is
singular raises pyad.SingularMatrixError (a LinAlgError) naming the row and the
point.
"""
from typing import Any

import numpy as np

from . import array as A
from . import ops

_INDEX = np.int32
SlogdetResult = type(np.linalg.slogdet(np.eye(1)))


def _values(store, x):
    """The float64 values of an operand (active: its recorded values, read
    without recording a guard), and its slots (None for a constant)."""
    if A.is_active(x):
        idx = A.slots_of(x)
        return store.values(idx.ravel()).reshape(idx.shape), idx
    return A.as_constant(x), None


def _operand(store, values, idx):
    """The first slot of a contiguous row-major copy of a matrix operand: the
    slots themselves when they are one, else a gather (or, for a constant, its
    constant slots)."""
    if idx is None:
        idx = A.to_slots(store, np.ascontiguousarray(values, dtype=np.float64))
    start = int(idx.flat[0])
    if np.array_equal(idx.ravel(), start + np.arange(idx.size)):
        return start
    return int(store.gather(np.ascontiguousarray(idx.reshape(idx.shape[0], -1), dtype=_INDEX)))


def _square_stack(store, a):
    """(values, slots or None, leading shape, n) of the matrix operand a."""
    av, ai = _values(store, a)
    return av, ai, av.shape[:-2], av.shape[-1]


def _each(lead):
    return np.ndindex(*lead) if lead else [()]


def solve(a: Any, b: Any) -> Any:
    """The solution x of a @ x = b, as ``numpy.linalg.solve``: one LU row per matrix.

    Parameters
    ----------
    a : array_like or Array, shape (..., n, n)
        The matrices (active or constant).
    b : array_like or Array, shape (..., n) or (..., n, k)
        The right-hand sides; a vector only when ``b.ndim == 1`` (numpy 2's rule).

    Returns
    -------
    Array or numpy.ndarray
        x, active when a or b is.

    Raises
    ------
    numpy.linalg.LinAlgError
        A singular matrix at record time; at replay ``pyad.SingularMatrixError``.
    ValueError
        Shapes numpy.linalg.solve refuses.

    Examples
    --------
    >>> import numpy as np, pyad
    >>> A = np.array([[3.0, 1.0], [1.0, 2.0]])
    >>> g = pyad.grad(lambda b: np.sum(np.linalg.solve(A, b)))(np.ones(2))
    >>> bool(np.allclose(g, np.linalg.solve(A.T, np.ones(2))))
    True
    """
    store = A.store_of(a, b)
    av, ai = _values(store, a)
    bv, bi = _values(store, b)
    ref = np.linalg.solve(av, bv)  # numpy's shapes and errors, LinAlgError included
    if ref.size == 0:
        return ref
    vector = bv.ndim == 1
    b2v = bv[:, None] if vector else bv
    b2i = None if bi is None else (bi[:, None] if vector else bi)
    lead = np.broadcast_shapes(av.shape[:-2], b2v.shape[:-2])
    n, m = av.shape[-1], b2v.shape[-1]
    av3 = np.broadcast_to(av, lead + (n, n))
    bv3 = np.broadcast_to(b2v, lead + (n, m))
    ai3 = None if ai is None else np.broadcast_to(ai, lead + (n, n))
    bi3 = None if b2i is None else np.broadcast_to(b2i, lead + (n, m))
    out = np.empty(lead + (n, m), dtype=_INDEX)
    code = ops.CODE["solve"]
    for i in _each(lead):
        sa = _operand(store, av3[i], None if ai3 is None else ai3[i])
        sb = _operand(store, bv3[i], None if bi3 is None else bi3[i])
        first = store.lu(code, sa, sb, n, m)
        out[i] = np.arange(first, first + n * m, dtype=_INDEX).reshape(n, m)
    return A.wrap(store, out[..., 0] if vector else out)


def _per_matrix(a, name, result):
    """Record the one-operand row `name` for each matrix of a; result(first, n)
    gives the slots of one matrix's result."""
    store = A.store_of(a)
    av, ai, lead, n = _square_stack(store, a)
    code = ops.CODE[name]
    results = []
    for i in _each(lead):
        sa = _operand(store, av[i], ai[i])
        results.append(result(store.lu(code, sa, 0, n, 0), n))
    return store, lead, results


def inv(a: Any) -> Any:
    """The inverse of each matrix, as ``numpy.linalg.inv``.

    Parameters
    ----------
    a : array_like or Array, shape (..., n, n)
        The matrices.

    Returns
    -------
    Array or numpy.ndarray
        The inverses, shape (..., n, n).

    Raises
    ------
    numpy.linalg.LinAlgError
        A singular matrix at record time; at replay ``pyad.SingularMatrixError``.

    Examples
    --------
    >>> import numpy as np, pyad
    >>> float(pyad.grad(lambda a: np.linalg.inv(a)[0, 0])(np.array([[2.0]]))[0, 0])
    -0.25
    """
    ref = np.linalg.inv(_values(A.store_of(a), a)[0])
    if ref.size == 0:
        return ref
    store, lead, res = _per_matrix(
        a, "inv", lambda f, n: np.arange(f, f + n * n, dtype=_INDEX).reshape(n, n))
    return A.wrap(store, np.array(res, dtype=_INDEX).reshape(ref.shape))


def det(a: Any) -> Any:
    """The determinant of each matrix, as ``numpy.linalg.det``; exact also for a
    singular matrix (0, with the cofactor matrix as its gradient).

    Parameters
    ----------
    a : array_like or Array, shape (..., n, n)
        The matrices.

    Returns
    -------
    Scalar, Array or float
        The determinants, shape (...).

    Raises
    ------
    numpy.linalg.LinAlgError
        ``a`` is not a stack of square matrices.

    Examples
    --------
    >>> import numpy as np, pyad
    >>> pyad.grad(np.linalg.det)(np.array([[1.0, 2.0], [2.0, 4.0]]))   # singular
    array([[ 4., -2.],
           [-2.,  1.]])
    """
    av = _values(A.store_of(a), a)[0]
    ref = np.linalg.det(av)
    if np.size(ref) == 0 or av.shape[-1] == 0:
        return ref  # the empty product: det of a 0 x 0 matrix is 1, a constant
    store, lead, res = _per_matrix(a, "det", lambda f, n: f)
    return A.wrap(store, np.array(res, dtype=_INDEX).reshape(lead))


def slogdet(a: Any) -> Any:
    """The sign and log |det| of each matrix, as ``numpy.linalg.slogdet``.

    The sign has no derivative; log |det| at a singular matrix is -inf with NaN
    derivatives.

    Parameters
    ----------
    a : array_like or Array, shape (..., n, n)
        The matrices.

    Returns
    -------
    SlogdetResult
        ``(sign, logabsdet)``, each of shape (...).

    Raises
    ------
    numpy.linalg.LinAlgError
        ``a`` is not a stack of square matrices.

    Examples
    --------
    >>> import numpy as np, pyad
    >>> a = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> g = pyad.grad(lambda a: np.linalg.slogdet(a)[1])(a)
    >>> bool(np.allclose(g, np.linalg.inv(a).T))
    True
    """
    av = _values(A.store_of(a), a)[0]
    ref = np.linalg.slogdet(av)
    if np.size(ref[0]) == 0 or av.shape[-1] == 0:
        return ref
    store, lead, res = _per_matrix(a, "slogdet", lambda f, n: (f, f + 1))
    pairs = np.array(res, dtype=_INDEX).reshape(lead + (2,))
    return SlogdetResult(A.wrap(store, pairs[..., 0]), A.wrap(store, pairs[..., 1]))


FUNCTIONS = {np.linalg.solve: solve, np.linalg.inv: inv, np.linalg.det: det,
             np.linalg.slogdet: slogdet}
