"""The eigh row (issue 15): np.linalg.eigh / eigvalsh record ONE row per call,
LAPACK's dsyevd in the value sweep and the decomposition kept for every
derivative sweep, on both backends: values against numpy, derivatives against
central differences and Giles' formulas, forward vs reverse, HVP vs differences
of the gradient, batch vs loop, save/load, the symmetrised convention, and the
errors at repeated eigenvalues (never NaN, never a silently wrong number)."""
import numpy as np
import pytest

import pyad

import row_cases
from row_cases import point as _point

_R = np.random.default_rng(5)
C3 = _R.normal(size=3)
B3 = _R.normal(size=(3, 3))
B3 = B3 + B3.T
W4 = _R.normal(size=(4, 4))
SPREAD3 = np.diag([0.0, 3.0, 6.0])  # keeps eigenvalues apart at every test point


def sym(z, n, spread=None):
    """A symmetric n x n matrix from n*n numbers (an FD step in z is a symmetric step in A)."""
    Z = z.reshape(n, n)
    S = 0.5 * (Z + Z.T)
    return S + (np.diag(3.0 * np.arange(n)) if spread is None else spread)


def sym_stack(z, k, n):
    Z = z.reshape(k, n, n)
    return 0.5 * (Z + np.swapaxes(Z, -1, -2)) + np.diag(3.0 * np.arange(n))


def eigh(a, **kw):
    return np.linalg.eigh(a, **kw)


# name: (f of a flat vector z, size of z, eigh rows f records), checked by
# row_cases.CaseChecks
CASES = {
    "eigvalsh sin": (lambda z: np.sum(np.sin(np.linalg.eigvalsh(sym(z, 3)))), 9, 1),
    "eigh w @ c": (lambda z: np.exp(eigh(sym(z, 3))[0] @ C3 / 5.0), 9, 1),
    "V columns squared": (lambda z: np.sum(eigh(sym(z, 3))[1] ** 2 * B3), 9, 1),
    "matrix function": (lambda z: np.trace(
        (lambda w, V: V @ np.diag(np.exp(w / 4.0)) @ V.T @ B3)(*eigh(sym(z, 3)))), 9, 1),
    "raw V and w": (lambda z: np.sum(np.sin(eigh(sym(z, 4))[1] * W4))
                    + np.sum(eigh(sym(z, 4))[0] ** 2), 16, 2),
    "UPLO U": (lambda z: np.sum(np.cos(eigh(sym(z, 3), UPLO="U")[1]))
               + np.sum(np.linalg.eigvalsh(sym(z, 3), UPLO="U") ** 3) / 50.0, 9, 2),
    "stacked": (lambda z: np.sum(np.tanh(eigh(sym_stack(z, 2, 3))[1]))
                + np.sum(np.linalg.eigvalsh(sym_stack(z, 2, 3)) ** 2), 18, 2),
    "active x constant": (lambda z: np.sum(np.sin(eigh(z[0] * B3 + SPREAD3 + z[1])[1]))
                          + np.linalg.eigvalsh(z[2] * SPREAD3 + B3)[0] ** 2, 3, 2),
    "1x1": (lambda z: np.sum(eigh(z.reshape(1, 1) ** 2)[0] ** 3), 1, 1),
}

VECTOR_CASES = {
    "w": (lambda z: np.linalg.eigvalsh(sym(z, 3)), 9),
    "V": (lambda z: eigh(sym(z, 3))[1].ravel(), 9),
}


class TestCases(row_cases.CaseChecks):
    CASES, VECTOR_CASES, OPS = CASES, VECTOR_CASES, ("eigh",)
    AGREE = 1e-11  # eigenvector rules divide by eigenvalue gaps


pytest_generate_tests = row_cases.generate_tests


# ---- values against numpy ----

def _sym0(n=4, seed=0):
    return sym(_point(n * n, seed), n)


def test_values_are_numpys_with_its_signs_and_result_type(backend):
    junk = _point(16, 3).reshape(4, 4)  # not symmetric: each UPLO reads its own triangle
    stack = _point(32, 4).reshape(2, 4, 4)
    for a in (_sym0(), junk, stack):
        for uplo in ("L", "U", "u"):
            with pyad.Tape(backend=backend) as tape:
                x = tape.input(a)
                res = np.linalg.eigh(x, UPLO=uplo)
                w_only = np.linalg.eigvalsh(x, UPLO=uplo)
                tape.output(res[0].sum() + w_only.sum())
            want = np.linalg.eigh(a, UPLO=uplo.upper())
            assert type(res) is type(want) and res._fields == want._fields
            assert res.eigenvalues.shape == want.eigenvalues.shape
            assert res.eigenvectors.shape == want.eigenvectors.shape
            np.testing.assert_allclose(res.eigenvalues.value, want.eigenvalues, rtol=1e-13,
                                       atol=1e-13)
            # the same LAPACK call as numpy's: the same eigenvectors, signs included
            np.testing.assert_allclose(res.eigenvectors.value, want.eigenvectors, rtol=1e-12,
                                       atol=1e-12)
            np.testing.assert_allclose(w_only.value, np.linalg.eigvalsh(a, UPLO=uplo),
                                       rtol=1e-13, atol=1e-13)
    assert pyad.linalg.eigh is not None and pyad.linalg.eigvalsh(np.eye(2)).tolist() == [1, 1]
    w, V = pyad.linalg.eigh(_sym0())  # plain arrays go to numpy
    assert isinstance(w, np.ndarray)


def test_replay_values_at_new_points(backend):
    tape = pyad.trace(lambda a: np.linalg.eigh(a)[1] * np.linalg.eigh(a)[0], _sym0(),
                      backend=backend)
    for seed in (1, 2, 3):
        a = _sym0(seed=seed)
        w, V = np.linalg.eigh(a)
        np.testing.assert_allclose(tape(a), V * w, rtol=1e-12, atol=1e-13)


# ---- the exact formulas (Giles 2008) and the symmetrised convention ----

def _giles(a, ad):
    """(ẇ, V̇) by Giles' formulas with sym(ȧ)."""
    w, V = np.linalg.eigh(a)
    P = V.T @ (0.5 * (ad + ad.T)) @ V
    F = 1.0 / (w[None, :] - w[:, None] + np.eye(len(w))) - np.eye(len(w))
    return np.diag(P), V @ (F * P)


def test_tangents_are_gilles_formulas(backend):
    a, ad = _sym0(), _point(16, 7).reshape(4, 4)  # a tangent that is not symmetric
    tape = pyad.trace(lambda a: np.concatenate([np.linalg.eigh(a)[0],
                                                np.linalg.eigh(a)[1].ravel()]), a,
                      backend=backend)
    wd, Vd = _giles(a, ad)
    _, jv = tape.jvp(a, ad)
    np.testing.assert_allclose(jv[:4], wd, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(jv[4:].reshape(4, 4), Vd, rtol=1e-11, atol=1e-12)
    # only sym(ȧ) counts: ȧ, ȧᵀ and sym(ȧ) give one tangent
    np.testing.assert_allclose(tape.jvp(a, ad.T)[1], jv, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(tape.jvp(a, 0.5 * (ad + ad.T))[1], jv, rtol=1e-12, atol=1e-13)


def test_adjoint_is_gilles_formula_and_symmetric(backend):
    a = _sym0()
    w, V = np.linalg.eigh(a)
    wb, Vb = _point(4, 8), _point(16, 9).reshape(4, 4)
    f = lambda a: (lambda r: r[0] @ wb + np.sum(r[1] * Vb))(np.linalg.eigh(a))
    g = pyad.grad(f, backend=backend)(a)
    M = V.T @ Vb
    F = 1.0 / (w[None, :] - w[:, None] + np.eye(4)) - np.eye(4)
    want = V @ (np.diag(wb) + F * 0.5 * (M - M.T)) @ V.T
    np.testing.assert_allclose(g, want, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(g, g.T, rtol=0, atol=1e-13)
    # the eigenvalue gradient is v_k v_kᵀ
    for k in range(4):
        gk = pyad.grad(lambda a, k=k: np.linalg.eigvalsh(a)[k], backend=backend)(a)
        np.testing.assert_allclose(gk, np.outer(V[:, k], V[:, k]), rtol=1e-12, atol=1e-13)


def test_matrix_function_hessian_against_differences(backend):
    """trace(V exp(diag w) Vᵀ B) = trace(expm(A) B): its gradient is expm'(A)ᵀ[B],
    and its Hessian-vector products match differences of that gradient."""
    import scipy.linalg
    B = W4 + W4.T
    f = lambda a: np.trace((lambda w, V: V @ np.diag(np.exp(w / 3)) @ V.T @ B)(*np.linalg.eigh(a)))
    a, E = _sym0(), _sym0(seed=4) - np.diag(3.0 * np.arange(4))
    g = pyad.grad(f, backend=backend)(a)
    h = 1e-6
    fd = (np.trace(scipy.linalg.expm((a + h * E) / 3) @ B)
          - np.trace(scipy.linalg.expm((a - h * E) / 3) @ B)) / (2 * h)
    assert abs(np.sum(g * E) - fd) < 1e-7 * max(1.0, abs(fd))
    tape = pyad.trace(f, a, backend=backend)
    fd_h = (tape.gradient(a + h * E) - tape.gradient(a - h * E)) / (2 * h)
    np.testing.assert_allclose(tape.hvp(a, E), fd_h, rtol=1e-6, atol=1e-7)


# ---- repeated eigenvalues ----

REPEATED = np.diag([1.0, 1.0, 2.0])
ROTATED3 = (lambda Q: Q @ REPEATED @ Q.T)(np.linalg.qr(_point(9, 13).reshape(3, 3))[0])
ROTATED = (lambda Q: Q @ np.diag([2.0, 2.0, -1.0, 5.0]) @ Q.T)(
    np.linalg.qr(_point(16, 12).reshape(4, 4))[0])


def _eigh_row(tape):
    return [k for k in range(tape.n_ops) if tape._store.op_at(k) == pyad.ops.CODE["eigh"]][0]


def test_eigenvalue_first_derivatives_at_repeated_eigenvalues(backend):
    for a in (REPEATED, ROTATED3, ROTATED, np.eye(3)):
        n = a.shape[0]
        w, V = np.linalg.eigh(a)
        c = np.arange(1.0, n + 1)
        g = pyad.grad(lambda a: np.linalg.eigvalsh(a).sum(), backend=backend)(a)
        np.testing.assert_allclose(g, np.eye(n), atol=1e-13)
        # eigh's w with V unused: V̄ = 0, so no gap is divided by
        g = pyad.grad(lambda a: np.linalg.eigh(a)[0] @ c, backend=backend)(a)
        np.testing.assert_allclose(g, V @ np.diag(c) @ V.T, atol=1e-12)
        tape = pyad.trace(lambda a: np.linalg.eigvalsh(a) * c, a, backend=backend)
        E = _point(n * n, 3).reshape(n, n)
        np.testing.assert_allclose(tape.jvp(a, E)[1], c * np.diag(V.T @ (E + E.T) / 2 @ V),
                                   atol=1e-12)
        J = tape.jacobian(a, mode="forward")
        np.testing.assert_allclose(J, tape.jacobian(a, mode="reverse"), atol=1e-12)
        assert np.all(np.isfinite(J))


def _raises_repeated(call, k, where):
    with pytest.raises(pyad.RepeatedEigenvalueError,
                       match=rf"(?s){where}.*row {k} \(eigh\).*repeated eigenvalues") as e:
        call()
    assert isinstance(e.value, np.linalg.LinAlgError)


def test_derivatives_that_divide_by_a_gap_raise(backend):
    a = ROTATED3  # V is not the identity: V̄ turns the repeated pair
    wv = lambda a: np.sum(np.linalg.eigh(a)[1] ** 2 * B3)
    with pytest.raises(pyad.RepeatedEigenvalueError, match=r"recorded point.*row \d+ \(eigh\)"):
        pyad.grad(wv, backend=backend)(a)
    tape = pyad.trace(wv, _sym0(3), backend=backend)
    k = _eigh_row(tape)
    E = _point(9, 3).reshape(3, 3)
    for call in (lambda: tape.gradient(a), lambda: tape.jvp(a, E),
                 lambda: tape.jacobian(a, mode="forward"), lambda: tape.hessian(a),
                 lambda: tape.vjp(a, 1.0)):
        _raises_repeated(call, k, r"replay at x = \[")
    # second order raises even where first order is fine (eigenvalues only)
    sq = pyad.trace(lambda a: np.sum(np.linalg.eigvalsh(a) ** 2), _sym0(3), backend=backend)
    k = _eigh_row(sq)
    np.testing.assert_allclose(sq.gradient(a), 2 * a, atol=1e-13)
    for call in (lambda: sq.hvp(a, E), lambda: sq.hessian(a)):
        _raises_repeated(call, k, r"replay at x = \[")
    # a batch names the point; the other points alone are fine
    X = np.stack([_sym0(3, 1), a, _sym0(3, 2)])
    _raises_repeated(lambda: tape.gradient(X, batch=True), _eigh_row(tape), r"batch point 1\)")
    _raises_repeated(lambda: sq.hvp(X, np.stack([E] * 3), batch=True, threads=2), k,
                     r"batch point 1\)")
    np.testing.assert_allclose(tape.gradient(X[[0, 2]], batch=True),
                               [tape.gradient(X[0]), tape.gradient(X[2])], rtol=1e-12)


def test_forward_mode_through_eigh_forms_the_eigenvector_tangent(backend):
    """A jvp cannot know that V is unused: eigh's forward sweep raises at repeated
    eigenvalues where eigvalsh's does not (documented in eigh's docstring)."""
    c = np.arange(1.0, 4.0)
    E = _point(9, 3).reshape(3, 3)
    tape = pyad.trace(lambda a: np.linalg.eigh(a)[0] @ c, _sym0(3), backend=backend)
    with pytest.raises(pyad.RepeatedEigenvalueError):
        tape.jvp(ROTATED3, E)
    w_only = pyad.trace(lambda a: np.linalg.eigvalsh(a) @ c, _sym0(3), backend=backend)
    np.testing.assert_allclose(w_only.jvp(ROTATED3, E)[1], tape.gradient(ROTATED3).ravel() @
                               E.ravel(), rtol=1e-12, atol=1e-12)


def test_a_tangent_that_leaves_the_pair_alone_is_fine(backend):
    """Where the direction does not touch A (P's rows of the pair vanish), nothing
    is divided by the gap: eigenvector tangents are zero, not an error."""
    f = lambda a, s: np.sum(np.sin(np.linalg.eigh(a * s)[1]))
    tape = pyad.trace(f, REPEATED, 1.0, backend=backend)
    _, jv = tape.jvp((REPEATED, 1.0), (np.zeros((3, 3)), 0.0))
    assert jv == 0.0


def test_the_threshold_is_relative_to_the_largest_eigenvalue(backend):
    f = lambda a: np.sum(np.linalg.eigh(a)[1][:, 0] ** 2 * np.arange(3))
    tape = pyad.trace(f, _sym0(3), backend=backend)
    for scale in (1.0, 1e6):
        Q = np.linalg.qr(_point(9, 13).reshape(3, 3))[0]
        near = scale * Q @ np.diag([1.0, 1.0 + 1e-10, 2.0]) @ Q.T  # gap 5e-11 max|w| < 1.5e-8
        with pytest.raises(pyad.RepeatedEigenvalueError):
            tape.gradient(near)
        apart = scale * Q @ np.diag([1.0, 1.0 + 1e-6, 2.0]) @ Q.T  # gap 5e-7 max|w|: distinct
        g = tape.gradient(apart)
        assert np.all(np.isfinite(g))
    assert pyad._linalg_eig.GAP_REL == np.sqrt(np.finfo(float).eps)


def test_nan_input_and_no_convergence_follow_numpy(backend):
    f = lambda a: np.sum(np.linalg.eigh(a)[1])
    tape = pyad.trace(f, _sym0(3), backend=backend)
    k = _eigh_row(tape)
    some = np.array([[1.0, np.nan], [np.nan, 2.0]])  # numpy: NaN results, no error
    assert np.isnan(np.sum(np.linalg.eigh(some)[1]))
    two = pyad.trace(f, np.eye(2) + np.diag([0.0, 1.0]), backend=backend)
    assert np.isnan(two(some)) and np.all(np.isnan(two.gradient(some)))
    nan = np.full((3, 3), np.nan)  # numpy: "Eigenvalues did not converge" (LAPACK's info)
    with pytest.raises(np.linalg.LinAlgError, match="did not converge"):
        np.linalg.eigh(nan)
    with pyad.Tape(backend=backend) as explicit:  # cannot re-record: the row is named
        explicit.output(f(explicit.input(_sym0(3))))
    for t, match in ((tape, "did not converge"),
                     (explicit, rf"replay at x = \[.*row {k} \(eigh\): the eigenvalues did "
                                "not converge")):
        with pytest.raises(np.linalg.LinAlgError, match=match):
            t(nan)
    X = np.stack([_sym0(3), nan])
    with pytest.raises(np.linalg.LinAlgError, match=rf"batch point 1\): row {k} \(eigh\)"):
        explicit.gradient(X, batch=True)


# ---- shapes, arguments, parameters, the table ----

def test_bad_arguments_are_refused(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.ones((2, 3)))
        with pytest.raises(np.linalg.LinAlgError, match="square"):
            np.linalg.eigh(x)
        with pytest.raises(np.linalg.LinAlgError, match="two-dimensional"):
            np.linalg.eigvalsh(tape.input(np.ones(3)))
        with pytest.raises(ValueError, match="UPLO"):
            np.linalg.eigh(tape.input(np.eye(2)), UPLO="X")
        store = tape._store
        n = store.n_ops
        for args in ((0, 0, 0, 0, 1, 0), (0, 0, 2, 2, 0, 0), (0, 0, 2, 2, 1, 4)):
            with pytest.raises(ValueError):
                store.linalg_sym("eigh", *args)
        with pytest.raises(IndexError):
            store.linalg_sym("eigh", 1000, 0, 2, 2, 1, 0)
        assert store.n_ops == n
        tape.output(np.sum(x))


def test_empty_and_stacked_shapes(backend):
    with pyad.Tape(backend=backend) as tape:
        w, V = np.linalg.eigh(tape.input(np.ones((2, 0, 0))))
        assert w.shape == (2, 0) and V.shape == (2, 0, 0)
        s = tape.input(sym_stack(_point(18, 3), 2, 3).reshape(-1))
        A = s.reshape(2, 3, 3)
        w, V = np.linalg.eigh(A)
        assert w.shape == (2, 3) and V.shape == (2, 3, 3)
        want = np.linalg.eigh(A.value)
        np.testing.assert_allclose(V.value, want[1], rtol=1e-12, atol=1e-13)
        # a transposed (gathered) stack reads the same numbers
        wt = np.linalg.eigvalsh(np.swapaxes(A, -1, -2))
        np.testing.assert_allclose(wt.value, want[0], rtol=1e-13)
        tape.output(np.sum(w ** 2) + np.sum(wt))
    g = tape.gradient()
    assert g[1].shape == (18,) and np.all(np.isfinite(g[1]))


def test_a_parameter_matrix_replays_with_new_data(backend):
    f = lambda s, a: np.sum(np.linalg.eigvalsh(a) * s)
    tape = pyad.trace(f, 2.0, _sym0(3), argnums=0, backend=backend)
    for seed in (1, 2):
        a = _sym0(3, seed)
        np.testing.assert_allclose(tape.gradient(2.0, a), np.sum(np.linalg.eigvalsh(a)),
                                   rtol=1e-13)


def test_wengert_table_shows_the_row(backend):
    tape = pyad.trace(lambda a: np.sum(np.linalg.eigvalsh(a, UPLO="U")), 2 * np.eye(2),
                      backend=backend)
    text = str(tape.table())
    assert "eigvalsh(v[-3:1], UPLO='U')" in text
    assert pyad.teaching.to_dot(tape).count("eigvalsh") == 1
    text = str(pyad.teaching.table(pyad.trace(lambda a: np.sum(np.linalg.eigh(a)[1]),
                                              np.diag([1.0, 2.0]), backend=backend),
                                   mode="reverse"))
    assert "eigh(v[" in text
