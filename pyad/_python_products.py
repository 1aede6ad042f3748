"""Product rows in the pure-Python backend: z = A @ B, one numpy matmul per term.

The twin of csrc/product.c, written for reading. A product row's block entry is
(width m*n, m, k, n, flags); an operand on the tape is the m*k (k*n) slots from
a (b) on, row-major, or (flags bit 0 for A, bit 1 for B) its transpose stored
row-major; a constant operand is consts[a ..] (A) or consts[b ..] (B), row-major.

    values    Z  = A B
    tangent   Ż  = Ȧ B + A Ḃ
    reverse   Ā += Z̄ Bᵀ            B̄ += Aᵀ Z̄
    second    Ā' += Z̄' Bᵀ + Z̄ Ḃᵀ   B̄' += Aᵀ Z̄' + Ȧᵀ Z̄   (' : the adjoint's tangent)
"""
import numpy as np

from . import ops

MATMUL, MATMUL_C, RMATMUL_C = ops.CODE["matmul"], ops.CODE["matmul_c"], ops.CODE["rmatmul_c"]
PRODUCT_OPS = frozenset({MATMUL, MATMUL_C, RMATMUL_C})
TRANS_A, TRANS_B, CONST_A, CONST_B = 1, 2, 4, 8
_INT32_MAX = 2**31 - 1


def const_a(op):
    return op == RMATMUL_C


def const_b(op):
    return op == MATMUL_C


def _read(values, start, rows, cols, trans):
    """A rows x cols matrix from values[start ..]: row-major, or its transpose."""
    flat = np.array(values[start:start + rows * cols], dtype=np.float64)
    return flat.reshape(cols, rows).T if trans else flat.reshape(rows, cols)


def _add(values, start, trans, contrib):
    """values[start ..] += contrib, laid out as _read reads it."""
    flat = (contrib.T if trans else contrib).ravel()
    end = start + flat.size
    values[start:end] = (np.array(values[start:end], dtype=np.float64) + flat).tolist()


class Row:
    """One product row: its shapes and where each operand lives."""

    def __init__(self, op, a, b, first, blk):
        _, self.m, self.k, self.n, flags = blk
        self.op, self.a, self.b, self.first = op, a, b, first
        self.ta, self.tb = bool(flags & TRANS_A), bool(flags & TRANS_B)

    def A(self, values, consts):
        if const_a(self.op):
            return _read(consts, self.a, self.m, self.k, False)
        return _read(values, self.a, self.m, self.k, self.ta)

    def B(self, values, consts):
        if const_b(self.op):
            return _read(consts, self.b, self.k, self.n, False)
        return _read(values, self.b, self.k, self.n, self.tb)

    def Z(self, values):
        return _read(values, self.first, self.m, self.n, False)


@np.errstate(all="ignore")  # IEEE, as BLAS computes it
def forward(op, a, b, first, blk, v, vd, consts):
    """Values (and tangents) of a product row's m*n slots."""
    r = Row(op, a, b, first, blk)
    A, B = r.A(v, consts), r.B(v, consts)
    out = slice(first, first + r.m * r.n)
    v[out] = (A @ B).ravel().tolist()
    if vd is None:
        return
    Zd = np.zeros((r.m, r.n))
    if not const_a(op):
        Zd += r.A(vd, consts) @ B
    if not const_b(op):
        Zd += A @ r.B(vd, consts)
    vd[out] = Zd.ravel().tolist()


@np.errstate(all="ignore")
def reverse(op, a, b, first, blk, v, adj, vd, adjd, consts, passive_a=False,
            passive_b=False):
    """Move a product row's adjoints (and their tangents) to its operands; a
    passive factor (no differentiated input reaches it) gets none."""
    r = Row(op, a, b, first, blk)
    A, B, G = r.A(v, consts), r.B(v, consts), r.Z(adj)
    to_a = not (const_a(op) or passive_a)
    to_b = not (const_b(op) or passive_b)
    if to_a:
        _add(adj, r.a, r.ta, G @ B.T)
    if to_b:
        _add(adj, r.b, r.tb, A.T @ G)
    if adjd is None:
        return
    Q = r.Z(adjd)
    if to_a:
        dA = Q @ B.T
        if not const_b(op):
            dA = dA + G @ r.B(vd, consts).T
        _add(adjd, r.a, r.ta, dA)
    if to_b:
        dB = A.T @ Q
        if not const_a(op):
            dB = dB + r.A(vd, consts).T @ G
        _add(adjd, r.b, r.tb, dB)


def row_ok(op, a, b, c, blk, below, n_consts):
    """The twin of product_row_ok: sizes that fit int32, operands in range."""
    if blk is None:
        return False  # a product row always has a block entry
    w, m, k, n, flags = blk
    if min(m, k, n) < 1 or c != 0 or not 0 <= flags <= 3 or m * n != w:
        return False
    if m * k > _INT32_MAX or k * n > _INT32_MAX:
        return False
    if (const_a(op) and flags & TRANS_A) or (const_b(op) and flags & TRANS_B):
        return False
    a_limit = n_consts if const_a(op) else below
    b_limit = n_consts if const_b(op) else below
    return 0 <= a and a + m * k <= a_limit and 0 <= b and b + k * n <= b_limit


def describe(op, a, b, first, blk):
    """A table line: v[40:64] = v[0:12] @ c[3:11] (3x4 @ 4x2)."""
    r = Row(op, a, b, first, blk)

    def operand(start, rows, cols, const, trans):
        text = f"{'c' if const else 'v'}[{start}:{start + rows * cols}]"
        return text + ".T" if trans else text

    left = operand(r.a, r.m, r.k, const_a(op), r.ta)
    right = operand(r.b, r.k, r.n, const_b(op), r.tb)
    return (f"v[{first}:{first + r.m * r.n}] = {left} @ {right} "
            f"({r.m}x{r.k} @ {r.k}x{r.n})")
