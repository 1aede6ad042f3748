"""The eigh row (numpy.linalg.eigh / eigvalsh) in the pure-Python backend.

The twin of csrc/linalg_eig.c, written apart on purpose (the oracle the C rules
are tested against): where C forms F ∘ skew(M) and commutators, this file keeps
the eigenvector tangent V̇ = V Ω explicit and differentiates the reverse rule
Ā = V G Vᵀ by the product rule. Slots of a row over `count` n x n matrices,
from its first: w (count x n), V (count x n x n), info (count); the block
entry is (width, n, n, count, flags), flags UPPER = 1 (UPLO='U'), VALUES = 2
(eigvalsh: V and info are kept values, not results).

With S = sym(Ȧ) (A is taken symmetric, as for cholesky), E_ij = w_j − w_i and
F = 1/E off the diagonal (0 on it):

    ẇ = diag(Vᵀ S V)        V̇ = V (F ∘ (Vᵀ S V))
    Ā = V (diag(w̄) + F ∘ (Vᵀ V̄ − V̄ᵀ V)/2) Vᵀ
    Ā' = V̇ G Vᵀ + V G' Vᵀ + V G V̇ᵀ,  G' its tangent (F' = −F² ∘ (ẇ_j − ẇ_i))

A pair with |E_ij| <= GAP_REL max|w| is repeated; a rule dividing there with a
nonzero coefficient raises RepeatedEigenvalues (csrc/linalg_eig.c says which).
"""
import numpy as np

from . import ops

EIGH = ops.CODE["eigh"]
UPPER, VALUES = 1, 2
GAP_REL = float(np.sqrt(np.finfo(np.float64).eps))  # PYAD_EIGH_GAP_REL
_INT32_MAX = 2**31 - 1


class ValueFailed(Exception):
    """LAPACK did not converge (numpy raises LinAlgError)."""


class RepeatedEigenvalues(np.linalg.LinAlgError):
    """A derivative rule would divide by the gap of repeated eigenvalues."""


def width(n, count):
    return count * (n + n * n + 1)


class Row:
    def __init__(self, a, first, blk):
        _, self.n, _, self.count, self.flags = blk
        self.a, self.first = a, first
        self.values_only = bool(self.flags & VALUES)
        n, c = self.n, self.count
        self.w_at, self.v_at, self.info_at = first, first + c * n, first + c * (n + n * n)

    def read(self, arr, start, *shape):
        size = int(np.prod(shape))
        return np.array(arr[start:start + size], dtype=np.float64).reshape(shape)

    def A(self, arr):
        return self.read(arr, self.a, self.count, self.n, self.n)

    def W(self, arr):
        return self.read(arr, self.w_at, self.count, self.n)

    def V(self, arr):
        return self.read(arr, self.v_at, self.count, self.n, self.n)


def _write(arr, start, x, add=False):
    flat = np.asarray(x, dtype=np.float64).ravel()
    if add:
        flat = flat + np.array(arr[start:start + flat.size], dtype=np.float64)
    arr[start:start + flat.size] = flat.tolist()


def _sym(X):
    return 0.5 * (X + np.swapaxes(X, -1, -2))


def repeated_mask(w):
    """(count, n, n) booleans: pairs i != j whose eigenvalues are repeated."""
    scale = np.max(np.abs(w), axis=-1)[..., None, None]
    gap = np.abs(w[..., None, :] - w[..., :, None])
    n = w.shape[-1]
    return (gap <= GAP_REL * scale) & ~np.eye(n, dtype=bool)


def inverse_gaps(w):
    """F_ij = 1/(w_j − w_i) off the diagonal, 0 on it and at repeated pairs."""
    E = w[..., None, :] - w[..., :, None]
    keep = ~repeated_mask(w) & ~np.eye(w.shape[-1], dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(keep, 1.0 / np.where(keep, E, 1.0), 0.0)


def _check_tangent(w, P):
    """A repeated pair (i, j) whose row i or j of P is nonzero: the eigenvector
    tangent is not defined there."""
    moved = np.any(P != 0.0, axis=-1)  # (count, n)
    bad = repeated_mask(w) & (moved[..., :, None] | moved[..., None, :])
    if np.any(bad):
        raise RepeatedEigenvalues("eigh: repeated eigenvalues")


def _check_adjoint(w, M):
    bad = repeated_mask(w) & ((M != 0.0) | (np.swapaxes(M, -1, -2) != 0.0))
    if np.any(bad):
        raise RepeatedEigenvalues("eigh: repeated eigenvalues")


@np.errstate(all="ignore")
def decompose(A, flags):
    """(w, V, info) of each matrix's UPLO triangle; ValueFailed as numpy raises."""
    try:
        w, V = np.linalg.eigh(A, UPLO="U" if flags & UPPER else "L")
    except np.linalg.LinAlgError:
        raise ValueFailed from None
    return w, V, np.zeros(A.shape[0])


def values_of(a, first, blk, v):
    r = Row(a, first, blk)
    w, V, info = decompose(r.A(v), r.flags)
    return np.concatenate([w.ravel(), V.ravel(), info])


@np.errstate(all="ignore")
def forward(a, first, blk, v, vd):
    """Values (and tangents, vd not None) of the row's slots."""
    r = Row(a, first, blk)
    _write(v, first, values_of(a, first, blk, v))
    if vd is None:
        return
    w, V = r.W(v), r.V(v)
    P = np.swapaxes(V, -1, -2) @ _sym(r.A(vd)) @ V
    wd = np.einsum("...ii->...i", P)
    if r.values_only:
        Vd = np.zeros_like(V)
    else:
        _check_tangent(w, P)
        Vd = V @ (inverse_gaps(w) * P)
    _write(vd, first, np.concatenate([wd.ravel(), Vd.ravel(), np.zeros(r.count)]))


@np.errstate(all="ignore")
def reverse(a, first, blk, v, adj, vd, adjd):
    """Move the row's adjoints (and, given vd, their tangents) to A."""
    r = Row(a, first, blk)
    w, V = r.W(v), r.V(v)
    Vt = np.swapaxes(V, -1, -2)
    wb = r.W(adj)
    Vb = np.zeros_like(V) if r.values_only else r.V(adj)
    M = Vt @ Vb
    if not r.values_only:
        _check_adjoint(w, M)
    F = inverse_gaps(w)
    skew = 0.5 * (M - np.swapaxes(M, -1, -2))
    G = wb[..., :, None] * np.eye(r.n) + F * skew
    _write(adj, a, _sym(V @ G @ Vt), add=True)
    if adjd is None:
        return
    P = Vt @ _sym(r.A(vd)) @ V
    _check_tangent(w, P)
    wd = np.einsum("...ii->...i", P)
    Vd = V @ (F * P)
    wbd = r.W(adjd)
    Vbd = np.zeros_like(V) if r.values_only else r.V(adjd)
    Md = np.swapaxes(Vd, -1, -2) @ Vb + Vt @ Vbd
    if not r.values_only:
        _check_adjoint(w, Md)
    Fd = -F * F * (wd[..., None, :] - wd[..., :, None])
    skew_d = 0.5 * (Md - np.swapaxes(Md, -1, -2))
    Gd = wbd[..., :, None] * np.eye(r.n) + Fd * skew + F * skew_d
    Abd = Vd @ G @ Vt + V @ Gd @ Vt + V @ G @ np.swapaxes(Vd, -1, -2)
    _write(adjd, a, _sym(Abd), add=True)


def row_ok(a, b, c, blk, below):
    """The twin of eig_row_ok."""
    if blk is None:
        return False
    w, n, m, count, flags = blk
    if n < 1 or count < 1 or n > 46340 or m != n or b != 0 or c != 0 or not 0 <= flags <= 3:
        return False
    if width(n, count) > _INT32_MAX or w != width(n, count):
        return False
    return 0 <= a and a + count * n * n <= below


def reached(a, blk, act):
    _, n, _, count, _ = blk
    on = any(act[s] for s in range(a, a + count * n * n))
    return on, 0 if on else 2 | 4


def describe(a, first, blk):
    """A table line: v[4:10] = eigh(v[0:4], 'L') (2x2)."""
    _, n, _, count, flags = blk
    stack = f"{count} x " if count > 1 else ""
    name = "eigvalsh" if flags & VALUES else "eigh"
    uplo = "U" if flags & UPPER else "L"
    return (f"v[{first}:{first + width(n, count)}] = {name}(v[{a}:{a + count * n * n}], "
            f"UPLO='{uplo}') ({stack}{n}x{n}: w, V, info)")


def call_text(operand, flags):
    """The call a table shows: eigvalsh(v[0:4], UPLO='U')."""
    name = "eigvalsh" if flags & VALUES else "eigh"
    return f"{name}({operand}, UPLO='{'U' if flags & UPPER else 'L'}')"
