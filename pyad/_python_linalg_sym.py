"""cholesky and solve_triangular rows in the pure-Python backend, with numpy.linalg.

The twin of csrc/linalg_sym.c, written apart on purpose (the oracle the C rules
are tested against): where C solves triangular systems, this file forms the
explicit inverse of the factor and differentiates products by the product rule.
A row's block entry is (width, n, m, count, flags); its operands are `count`
stacked row-major matrices from slot a (A, n x n) and b (B, n x m), its result
the next count * n * m slots.

cholesky reads A's lower triangle (numpy) and attributes the derivative to a
symmetric A, as JAX and PyTorch do: Ȧ enters as (Ȧ + Ȧᵀ)/2, Ā is symmetric.
With K = L⁻¹ and Φ(X) = the lower triangle of X, diagonal halved:

    L̇ = L Φ(K sym(Ȧ) Kᵀ)         S = Kᵀ Φ(Lᵀ L̄) K,  Ā += sym(S)
    Ṡ = K̇ᵀ P K + Kᵀ Ṗ K + Kᵀ P K̇   with P = Φ(Lᵀ L̄), K̇ = −K L̇ K

solve_triangular (scipy's lower / trans / unit_diagonal): T = the triangle of A
read (unit diagonal: ones), M = T or Tᵀ, X = M⁻¹ B; Ẋ = M⁻¹ (Ḃ − Ṁ X),
B̄ = M⁻ᵀ X̄, M̄ = −B̄ Xᵀ, Ā = the read triangle of M̄ (Tᵀ: of M̄ᵀ).

The eigh row is one of these rows too; its rules are in pyad/_python_linalg_eig.py.
"""
import numpy as np

from . import _python_linalg_eig as eig
from . import ops

CHOLESKY, SOLVE_TRIANGULAR = ops.CODE["cholesky"], ops.CODE["solve_triangular"]
LINALG_OPS = frozenset({CHOLESKY, SOLVE_TRIANGULAR, eig.EIGH})
LOWER, TRANS, UNIT = 1, 2, 4
_INT32_MAX = 2**31 - 1


class RowFailed(Exception):
    """The row's matrix is not positive definite / singular at this point."""


class Row:
    def __init__(self, op, a, b, first, blk):
        _, self.n, self.m, self.count, self.flags = blk
        self.op, self.a, self.b, self.first = op, a, b, first

    def stack(self, values, start, rows, cols):
        size = self.count * rows * cols
        return np.array(values[start:start + size], dtype=np.float64).reshape(
            self.count, rows, cols)

    def A(self, values):
        return self.stack(values, self.a, self.n, self.n)

    def B(self, values):
        return self.stack(values, self.b, self.n, self.m)

    def Z(self, values):
        return self.stack(values, self.first, self.n, self.m)

    # ---- the triangle solve_triangular reads ----

    def read(self, A):
        """The part of each A the row reads: its triangle, strict under UNIT."""
        lower, unit = self.flags & LOWER, self.flags & UNIT
        k = -1 if unit else 0
        if lower:
            return np.tril(A, k)
        return np.triu(A, -k)

    def M(self, A):
        """The matrix solved with: the triangle (ones on the diagonal under UNIT),
        transposed under TRANS."""
        T = self.read(A)
        if self.flags & UNIT:
            T = T + np.eye(self.n)
        return np.swapaxes(T, -1, -2) if self.flags & TRANS else T

    def dM(self, Ad):
        T = self.read(Ad)
        return np.swapaxes(T, -1, -2) if self.flags & TRANS else T

    def a_adjoint(self, Mbar):
        return self.read(np.swapaxes(Mbar, -1, -2) if self.flags & TRANS else Mbar)


def _put(values, start, stack, add=False):
    flat = stack.ravel()
    end = start + flat.size
    if add:
        flat = np.array(values[start:end], dtype=np.float64) + flat
    values[start:end] = flat.tolist()


def _phi(X):
    return np.tril(X) - 0.5 * np.einsum("...ii->...i", X)[..., None] * np.eye(X.shape[-1])


def _sym(X):
    return 0.5 * (X + np.swapaxes(X, -1, -2))


def _T(X):
    return np.swapaxes(X, -1, -2)


@np.errstate(all="ignore")
def values_of(r, v):
    """The result stack at values v; RowFailed where numpy's would raise."""
    A = r.A(v)
    if r.op == CHOLESKY:
        try:
            return np.linalg.cholesky(A)
        except np.linalg.LinAlgError:
            raise RowFailed from None
    if not r.flags & UNIT and np.any(np.einsum("...ii->...i", A) == 0):
        raise RowFailed
    return np.linalg.solve(r.M(A), r.B(v))


@np.errstate(all="ignore")
def forward(op, a, b, first, blk, v, vd):
    """Values (and tangents) of the row's slots; RowFailed at a failing point."""
    if op == eig.EIGH:
        try:
            return eig.forward(a, first, blk, v, vd)
        except eig.ValueFailed:
            raise RowFailed from None
    r = Row(op, a, b, first, blk)
    Z = values_of(r, v)
    _put(v, first, Z)
    if vd is None:
        return
    if op == CHOLESKY:
        K = np.linalg.inv(Z)
        Zd = Z @ _phi(K @ _sym(r.A(vd)) @ _T(K))
    else:
        M = r.M(r.A(v))
        Zd = np.linalg.solve(M, r.B(vd) - r.dM(r.A(vd)) @ Z)
    _put(vd, first, Zd)


@np.errstate(all="ignore")
def reverse(op, a, b, first, blk, v, adj, vd, adjd, passive_a=False, passive_b=False):
    """Move the row's adjoints (and their tangents, given vd) to its operands."""
    if op == eig.EIGH:
        return eig.reverse(a, first, blk, v, adj, vd, adjd)
    r = Row(op, a, b, first, blk)
    Z, G = r.Z(v), r.Z(adj)
    if op == CHOLESKY:
        K = np.linalg.inv(Z)
        P = _phi(_T(Z) @ np.tril(G))
        S = _T(K) @ P @ K
        _put(adj, a, _sym(S), add=True)
        if adjd is None:
            return
        Zd, Gd = r.Z(vd), r.Z(adjd)
        Kd = -K @ Zd @ K
        Pd = _phi(_T(Zd) @ np.tril(G) + _T(Z) @ np.tril(Gd))
        Sd = _T(Kd) @ P @ K + _T(K) @ Pd @ K + _T(K) @ P @ Kd
        _put(adjd, a, _sym(Sd), add=True)
        return
    M = r.M(r.A(v))
    Bbar = np.linalg.solve(_T(M), G)
    if not passive_b:
        _put(adj, b, Bbar, add=True)
    if not passive_a:
        _put(adj, a, r.a_adjoint(-Bbar @ _T(Z)), add=True)
    if adjd is None:
        return
    Md, Zd, Gd = r.dM(r.A(vd)), r.Z(vd), r.Z(adjd)
    if passive_a:
        Md = np.zeros_like(Md)
    Bbar_d = np.linalg.solve(_T(M), Gd - _T(Md) @ Bbar)
    if not passive_b:
        _put(adjd, b, Bbar_d, add=True)
    if not passive_a:
        _put(adjd, a, r.a_adjoint(-(Bbar_d @ _T(Z) + Bbar @ _T(Zd))), add=True)


def row_ok(op, a, b, c, blk, below):
    """The twin of linalg_sym_row_ok."""
    if op == eig.EIGH:
        return eig.row_ok(a, b, c, blk, below)
    if blk is None:
        return False
    w, n, m, count, flags = blk
    if min(n, m, count) < 1 or c != 0 or w != count * n * m:
        return False
    if count * n * n > _INT32_MAX or count * n * m > _INT32_MAX:
        return False
    if not 0 <= a or a + count * n * n > below:
        return False
    if op == CHOLESKY:
        return m == n and b == 0 and flags == 0
    return 0 <= flags <= 7 and 0 <= b and b + count * n * m <= below


def reached(op, a, b, blk, act):
    """(whether an active slot feeds the row, passive-operand marks as bits
    PASSIVE_A = 2, PASSIVE_B = 4)."""
    if op == eig.EIGH:
        return eig.reached(a, blk, act)
    _, n, m, count, _ = blk
    on_a = any(act[s] for s in range(a, a + count * n * n))
    on_b = op != CHOLESKY and any(act[s] for s in range(b, b + count * n * m))
    return on_a or on_b, (0 if on_a else 2) | (0 if on_b else 4)


def describe(op, a, b, first, blk):
    """A table line: v[9:18] = cholesky(v[0:9]) (3x3)."""
    if op == eig.EIGH:
        return eig.describe(a, first, blk)
    _, n, m, count, flags = blk
    stack = f"{count} x " if count > 1 else ""
    a_text = f"v[{a}:{a + count * n * n}]"
    out = f"v[{first}:{first + count * n * m}]"
    if op == CHOLESKY:
        return f"{out} = cholesky({a_text}) ({stack}{n}x{n})"
    opts = ("lower" if flags & LOWER else "upper") + (", trans" if flags & TRANS else "") + \
        (", unit" if flags & UNIT else "")
    return (f"{out} = solve_triangular({a_text}, v[{b}:{b + count * n * m}], {opts}) "
            f"({stack}{n}x{n}, {n}x{m})")
