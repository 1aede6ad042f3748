"""LU-family linear-algebra rows in the pure-Python backend: solve, inv, det,
slogdet, computed with numpy.linalg.

The twin of csrc/linalg_lu.c, written for reading and on purpose not from it.
A row's block entry is (width, n, m, 0, 0); its slots hold its results, then
the values the derivative rules keep (the same layout and meaning as the C
rows, so a tape saved by one backend replays in the other):

    solve    Z = A^-1 B (n*m) | W = A^-1 (n*n) | singular flag
    inv      Z = A^-1   (n*n) | singular flag
    det      det A | sigma | C (n*n) | U (n*n) | s (n) | Vt (n*n)
    slogdet  sign | log|det A| | W = A^-1 (n*n)

det keeps an SVD A = U diag(s) Vt, sigma = det(U) det(Vt) (so det A = sigma *
prod(s)), and C = sigma U diag(c) Vt, c_i = prod_{j != i} s_j: the gradient of
det, which is the cofactor matrix, exact for singular A as well.

Rules, derived here from the perturbation of each result (' is the tangent of
an adjoint; first order as in Giles 2008):
    solve    A Z = B         =>  dZ = A^-1 (dB - dA Z)
    inv      A Z = I         =>  dZ = -Z dA Z
    det      det(A + t E) = sigma det(diag(s) + t U^T E Vt^T)
    slogdet  d log|det A| = tr(A^-1 dA)
Each sweep reads the kept values of the row, never factors again; the value
sweep raises BranchError(row) at a singular matrix (solve, inv), as a failed
guard does, and pyad.tape turns that into numpy.linalg.LinAlgError.
"""
import numpy as np

from . import ops
from .errors import BranchError

SOLVE, INV, DET, SLOGDET = (ops.CODE[name] for name in ("solve", "inv", "det", "slogdet"))
LU_OPS = frozenset({SOLVE, INV, DET, SLOGDET})
_INT32_MAX = 2**31 - 1


def width(op, n, m):
    """Slots of an n x n row (m: solve's right-hand columns); -1 if out of range."""
    if n < 1 or n > 46340 or m < 0 or (n and m > _INT32_MAX // n) or (op == SOLVE) != (m > 0):
        return -1
    w = {SOLVE: n * m + n * n + 1, INV: n * n + 1, DET: 2 + 3 * n * n + n,
         SLOGDET: 2 + n * n}[op]
    return w if w <= _INT32_MAX else -1


def _get(values, start, shape):
    size = int(np.prod(shape))
    return np.array(values[start:start + size], dtype=np.float64).reshape(shape)


def _set(values, start, x):
    flat = np.asarray(x, dtype=np.float64).ravel()
    values[start:start + flat.size] = flat.tolist()


def _add(values, start, x):
    flat = np.asarray(x, dtype=np.float64).ravel()
    end = start + flat.size
    values[start:end] = (np.array(values[start:end], dtype=np.float64) + flat).tolist()


def _cofactor_products(s):
    """c_i = product of the s_j, j != i (by deletion: exact with zero entries)."""
    return np.array([np.prod(np.delete(s, i)) for i in range(s.size)])


def _pair_products(s):
    """c_ij = product of the s_k, k not i or j (0 on the diagonal, unused there)."""
    n = s.size
    return np.array([[np.prod(np.delete(s, [i, j])) if i != j else 0.0 for j in range(n)]
                     for i in range(n)])


@np.errstate(all="ignore")
def kept_values(op, A, B=None):
    """(results, kept values, singular) of a row at A (and B); raising nothing."""
    n = A.shape[0]
    if op == DET:
        sign, logabs = np.linalg.slogdet(A)
        value = 0.0 if sign == 0 else sign * np.exp(logabs)
        U, s, Vt = np.linalg.svd(A)
        sigma = np.sign(np.linalg.det(U)) * np.sign(np.linalg.det(Vt))
        C = sigma * (U * _cofactor_products(s)) @ Vt
        return np.array([value]), np.concatenate([[sigma], C.ravel(), U.ravel(), s,
                                                  Vt.ravel()]), False
    if op == SLOGDET:
        sign, logabs = np.linalg.slogdet(A)
        try:
            W = np.linalg.inv(A)
        except np.linalg.LinAlgError:
            W = np.full((n, n), np.nan)  # log|det| has a pole here
        return np.array([sign, logabs]), W.ravel(), False
    try:
        W = np.linalg.inv(A)
        Z = W if op == INV else np.linalg.solve(A, B)
    except np.linalg.LinAlgError:
        size = n * n if op == INV else B.size
        nan = np.full(size, np.nan)
        return nan, (np.full(n * n, np.nan) if op == SOLVE else np.empty(0)), True
    kept = W.ravel() if op == SOLVE else np.empty(0)
    return Z.ravel(), kept, False


class Row:
    """One row's shapes and where its parts live."""

    def __init__(self, op, a, b, first, blk):
        self.op, self.a, self.b, self.z = op, a, b, first
        self.n, self.m = blk[1], blk[2]

    def A(self, values):
        return _get(values, self.a, (self.n, self.n))

    def B(self, values):
        return _get(values, self.b, (self.n, self.m))

    def Z(self, values):
        return _get(values, self.z, (self.n, self.m if self.op == SOLVE else self.n))

    def W(self, values):  # solve, slogdet
        at = self.z + (self.n * self.m if self.op == SOLVE else 2)
        return _get(values, at, (self.n, self.n))

    def det_parts(self, values):
        """sigma, C, U, s, Vt of a det row."""
        n, at = self.n, self.z + 1
        sigma = values[at]
        C = _get(values, at + 1, (n, n))
        U = _get(values, at + 1 + n * n, (n, n))
        s = _get(values, at + 1 + 2 * n * n, (n,))
        Vt = _get(values, at + 1 + 2 * n * n + n, (n, n))
        return sigma, C, U, s, Vt


def record_values(op, A, B, n, m):
    """All slot values of a new row (raising nothing: the caller checks singularity)."""
    results, kept, singular = kept_values(op, A, B)
    tail = [1.0 if singular else 0.0] if op in (SOLVE, INV) else []
    return np.concatenate([results, kept, tail])


def forward(k, op, a, b, first, blk, v, vd):
    """Values (and tangents) of a row's slots; BranchError(k) at a singular matrix."""
    r = Row(op, a, b, first, blk)
    A = r.A(v)
    B = r.B(v) if op == SOLVE else None
    values = record_values(op, A, B, r.n, r.m)
    _set(v, first, values)
    if op in (SOLVE, INV) and values[-1] != 0.0:
        raise BranchError(k)
    if vd is None:
        return
    _set(vd, first, np.zeros(values.size))  # kept values have no tangent
    dA = r.A(vd)
    with np.errstate(all="ignore"):
        if op == SOLVE:
            dZ = r.W(v) @ (r.B(vd) - dA @ r.Z(v))
            _set(vd, first, dZ)
        elif op == INV:
            Z = r.Z(v)
            _set(vd, first, -Z @ dA @ Z)
        elif op == DET:
            C = r.det_parts(v)[1]
            vd[first] = float(np.sum(C * dA))
        else:
            vd[first + 1] = float(np.trace(r.W(v) @ dA))


@np.errstate(all="ignore")
def reverse(op, a, b, first, blk, v, adj, vd, adjd):
    """Move a row's adjoints (and their tangents, given vd and adjd) to A (and B)."""
    r = Row(op, a, b, first, blk)
    if op == SOLVE:
        W, Z, G = r.W(v), r.Z(v), r.Z(adj)
        Bbar = W.T @ G
        _add(adj, r.b, Bbar)
        _add(adj, r.a, -Bbar @ Z.T)
        if adjd is None:
            return
        dA, dZ, Q = r.A(vd), r.Z(vd), r.Z(adjd)
        dBbar = W.T @ (Q - dA.T @ Bbar)  # d(A^-T G) = A^-T (dG - dA^T A^-T G)
        _add(adjd, r.b, dBbar)
        _add(adjd, r.a, -dBbar @ Z.T - Bbar @ dZ.T)
    elif op == INV:
        Z, G = r.Z(v), r.Z(adj)
        _add(adj, r.a, -Z.T @ G @ Z.T)
        if adjd is None:
            return
        dZ, Q = r.Z(vd), r.Z(adjd)
        _add(adjd, r.a, -(dZ.T @ G @ Z.T + Z.T @ Q @ Z.T + Z.T @ G @ dZ.T))
    elif op == DET:
        sigma, C, U, s, Vt = r.det_parts(v)
        g = adj[first]
        _add(adj, r.a, g * C)
        if adjd is None:
            return
        # d/dt of C(A + t dA): the gradient in E of the t*e term of
        # det(A + t dA + e E) = sigma det(S + t M + e N), M = U^T dA Vt^T, N = U^T E Vt^T,
        # whose t*e coefficient is sum_{i != j} c_ij (M_ii N_jj - M_ij N_ji).
        M = U.T @ r.A(vd) @ Vt.T
        c = _pair_products(s)
        G2 = -(c * M).T
        np.fill_diagonal(G2, c.T @ np.diag(M))
        _add(adjd, r.a, adjd[first] * C + g * sigma * U @ G2 @ Vt)
    else:
        W = r.W(v)
        g = adj[first + 1]
        _add(adj, r.a, g * W.T)
        if adjd is None:
            return
        dA = r.A(vd)
        _add(adjd, r.a, adjd[first + 1] * W.T - g * (W @ dA @ W).T)


def row_ok(op, a, b, c, blk, below):
    """The twin of lu_row_ok."""
    if blk is None:
        return False
    w, n, m, sc, sk = blk
    if c != 0 or sc != 0 or sk != 0 or width(op, n, m) != w:
        return False
    if op != SOLVE and b != 0:
        return False
    return 0 <= a and a + n * n <= below and (op != SOLVE or (0 <= b and b + n * m <= below))


def reaches(act, a, b, op, blk):
    """Whether an active slot feeds the row."""
    n, m = blk[1], blk[2]
    return any(act[a + e] for e in range(n * n)) or (
        op == SOLVE and any(act[b + e] for e in range(n * m)))


def describe(op, a, b, first, blk):
    """A table line: v[20:24] = solve(v[0:4], v[4:6]) (2x2, 2x1)."""
    n, m = blk[1], blk[2]
    A = f"v[{a}:{a + n * n}]"
    if op == SOLVE:
        return f"v[{first}:{first + n * m}] = solve({A}, v[{b}:{b + n * m}]) ({n}x{n}, {n}x{m})"
    size = {INV: n * n, DET: 1, SLOGDET: 2}[op]
    return f"v[{first}:{first + size}] = {ops.NAME[op]}({A}) ({n}x{n})"
