"""Recording numpy.linalg.eigh and eigvalsh on active arrays: one row per call
over the whole stack of matrices (csrc/linalg_eig.c, pyad/_python_linalg_eig.py),
LAPACK's dsyevd in the value sweep, the decomposition kept for the derivative
sweeps; and the error a derivative sweep raises at repeated eigenvalues."""
from typing import Any

import numpy as np

from . import _linalg_sym
from . import _python_linalg_eig as twin
from . import array as A
from . import ops
from .errors import RepeatedEigenvalueError

EighResult = type(np.linalg.eigh(np.eye(1)))
GAP_REL = twin.GAP_REL


def _uplo(UPLO):
    u = str(UPLO).upper() if isinstance(UPLO, str) else UPLO
    if u not in ("L", "U"):
        raise ValueError("UPLO argument must be 'L' or 'U'")
    return u


def _record(a, UPLO, values_only):
    """(w, V) slots of one eigh row over a's stack (V: None for eigvalsh)."""
    store = a._s
    shape = np.shape(A.slots_of(a))
    _linalg_sym._square_stack(shape, "eigh")
    n, batch = shape[-1], shape[:-2]
    if n == 0 or 0 in batch:
        return (A.wrap(store, np.zeros(batch + (n,), dtype=np.int32)),
                A.wrap(store, np.zeros(shape, dtype=np.int32)))
    first, _ = _linalg_sym._active_stack(store, a, "a")
    count = int(np.prod(batch, dtype=np.int64))
    flags = (twin.UPPER if UPLO == "U" else 0) | (twin.VALUES if values_only else 0)
    try:
        out = store.linalg_sym("eigh", first, 0, n, n, count, flags)
    except np.linalg.LinAlgError:
        raise np.linalg.LinAlgError("Eigenvalues did not converge") from None
    w = A.wrap(store, np.arange(out, out + count * n, dtype=np.int32).reshape(batch + (n,)))
    v0 = out + count * n
    V = A.wrap(store, np.arange(v0, v0 + count * n * n, dtype=np.int32).reshape(shape))
    return w, V


def eigh(a: Any, UPLO: str = "L") -> Any:
    """Eigenvalues and eigenvectors of symmetric matrices, as ``numpy.linalg.eigh``.

    One row per stack, computed by LAPACK's ``dsyevd`` as numpy does; the
    decomposition is kept for the derivative sweeps. Only the triangle UPLO
    names is read. As for ``cholesky`` (and in JAX and PyTorch) the derivative
    treats ``a`` as symmetric: a tangent enters as (ȧ + ȧᵀ)/2 and the gradient
    is symmetric. The eigenvectors' signs are LAPACK's choice; derivatives are
    those of that fixed choice (functions that do not depend on the signs, such
    as ``V[:, k]**2`` or ``V @ diag(f(w)) @ V.T``, are unaffected).

    At repeated eigenvalues (|w_i - w_j| <= sqrt(eps) * max|w|) first
    derivatives of the eigenvalues alone are given; a derivative that would
    divide by their gap (of the eigenvectors, or any second derivative) raises
    ``pyad.RepeatedEigenvalueError`` naming the row and the point. The reverse
    sweeps test the coefficients: a gradient of a function of w alone (V gets
    no adjoint) is given there. Forward sweeps (jvp, forward Jacobians) form
    eigh's eigenvector tangents whether or not they are used, so there they
    raise unless the tangent leaves the repeated pair alone; use eigvalsh (or
    reverse mode) for functions of the eigenvalues only.

    Parameters
    ----------
    a : array_like or Array, shape (..., n, n)
        Symmetric matrices.
    UPLO : {"L", "U"}, optional
        Read the lower (default) or the upper triangle.

    Returns
    -------
    EighResult
        ``(eigenvalues, eigenvectors)``: w of shape (..., n) in ascending order,
        V of shape (..., n, n) with column k the eigenvector of w[..., k].

    Raises
    ------
    numpy.linalg.LinAlgError
        LAPACK did not converge (as numpy).
    pyad.RepeatedEigenvalueError
        From a derivative sweep: a derivative dividing by the gap of repeated
        eigenvalues (it names the row and the point).

    Examples
    --------
    >>> import numpy as np, pyad
    >>> a = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> top = lambda a: np.linalg.eigh(a)[0][-1]
    >>> v = np.linalg.eigh(a)[1][:, -1]
    >>> bool(np.allclose(pyad.grad(top)(a), np.outer(v, v)))
    True
    """
    if not A.is_active(a):
        return np.linalg.eigh(a, UPLO=UPLO)
    w, V = _record(a, _uplo(UPLO), values_only=False)
    return EighResult(w, V)


def eigvalsh(a: Any, UPLO: str = "L") -> Any:
    """Eigenvalues of symmetric matrices, as ``numpy.linalg.eigvalsh``.

    The eigh row with only the eigenvalues as results (the eigenvectors are
    kept for the derivative sweeps). Derivatives as in :func:`eigh`: first
    order everywhere (at repeated eigenvalues too), second order where the
    eigenvalues are distinct, else ``pyad.RepeatedEigenvalueError``.

    Parameters
    ----------
    a : array_like or Array, shape (..., n, n)
        Symmetric matrices.
    UPLO : {"L", "U"}, optional
        Read the lower (default) or the upper triangle.

    Returns
    -------
    Array or numpy.ndarray
        The eigenvalues, shape (..., n), ascending.

    Raises
    ------
    numpy.linalg.LinAlgError
        LAPACK did not converge (as numpy).
    pyad.RepeatedEigenvalueError
        From a derivative sweep: a second derivative at repeated eigenvalues.

    Examples
    --------
    >>> import numpy as np, pyad
    >>> a = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> bool(np.allclose(pyad.grad(lambda a: np.linalg.eigvalsh(a).sum())(a), np.eye(2)))
    True
    """
    if not A.is_active(a):
        return np.linalg.eigvalsh(a, UPLO=UPLO)
    return _record(a, _uplo(UPLO), values_only=True)[0]


FUNCTIONS = {np.linalg.eigh: eigh, np.linalg.eigvalsh: eigvalsh}


# ---- the error of a derivative sweep at repeated eigenvalues ----


def _eigh_rows(arrays):
    """(row, first A slot, first result slot, n, count) of each eigh row."""
    blocks = np.asarray(arrays["blocks"]).reshape(-1, 6)
    for row, _, n, _, count, _ in blocks.tolist():
        if int(arrays["op"][row]) == twin.EIGH:
            yield row, int(arrays["a"][row]), int(arrays["first"][row]), n, count


def _repeated_at(values, rows):
    """(row, matrix, w_i, w_j) of the first eigh row with repeated eigenvalues in
    values (one slot value each), or None."""
    for row, _, first, n, count in rows:
        w = np.asarray(values[first:first + count * n], dtype=np.float64).reshape(count, n)
        mask = twin.repeated_mask(w)
        if mask.any():
            j, p, q = (int(e) for e in np.argwhere(mask)[0])
            return row, j, float(w[j, p]), float(w[j, q])
    return None


def repeated_error(store, points, where=None):
    """The RepeatedEigenvalueError for a derivative sweep that failed at one of
    the flat points (rows of `points`; None: the recorded point), or None where
    no eigh row of the store has repeated eigenvalues there (the failure is
    something else). where(b): how point b is named (" (batch point b)")."""
    try:
        arrays = store.export()
    except Exception:
        return None
    rows = list(_eigh_rows(arrays))
    if not rows:
        return None
    candidates = [(None, arrays["val"])] if points is None else \
        ((b, None) for b in range(len(points)))
    for b, values in candidates:
        if values is None:
            try:
                values = store.slot_values(np.asarray(points[b], dtype=np.float64))[0]
            except Exception:
                continue
        hit = _repeated_at(values, rows)
        if hit is None:
            continue
        row, j, wi, wj = hit
        at = "at the recorded point" if b is None else \
            "replay at x = " + np.array2string(np.asarray(points[b]), threshold=8,
                                               max_line_width=200)
        at += where(b) if where and b is not None else ""
        stack = f" (matrix {j} of the stack)" if any(r[4] > 1 for r in rows if r[0] == row) \
            else ""
        return RepeatedEigenvalueError(
            f"{at}: row {row} ({ops.NAME[twin.EIGH]}){stack} has repeated "
            f"eigenvalues {wi!r} and {wj!r} (gap <= {GAP_REL:.3g} * max|w|): this "
            "derivative would divide by their gap. Eigenvector derivatives and second "
            "derivatives of eigh / eigvalsh are not defined there; first derivatives of "
            "the eigenvalues alone are")
    return None


def sweep_error(store, error, points, where=None):
    """What a LinAlgError from a sweep of store becomes: the RepeatedEigenvalueError
    naming the eigh row and the point where eigenvalues are repeated, or error
    itself (already named, or something else)."""
    if isinstance(error, RepeatedEigenvalueError) or not isinstance(error, np.linalg.LinAlgError):
        return error
    found = repeated_error(store, points, where)
    return error if found is None else found
