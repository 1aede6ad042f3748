"""cholesky and triangular-solve rows (issue 15): np.linalg.cholesky,
pyad.linalg.solve_triangular / cho_factor / cho_solve record ONE row per call
that calls LAPACK / BLAS in every sweep, on both backends: values against
numpy/scipy, derivatives against central differences and exact formulas,
forward vs reverse, HVP vs differences of the gradient, batch vs loop,
save/load, non positive-definite and singular input."""
import numpy as np
import pytest
import scipy.linalg

import pyad
from pyad.array import _viewable as unfilled_ramp

import row_cases
from row_cases import point as _point

LINALG_OPS = ("cholesky", "solve_triangular")
_R = np.random.default_rng(11)
B34 = _R.normal(size=(3, 4))
Y4 = _R.normal(size=4)
W3 = _R.normal(size=(3, 3))


def spd(z, n):
    """A well-conditioned symmetric positive definite n x n matrix from n*n numbers."""
    M = z.reshape(n, n)
    return M @ M.T + n * np.eye(n)


_GP_X = np.sort(_R.uniform(0.0, 6.0, 75))
_GP_Y = np.cos(_GP_X)


def gp_nll(z, n):
    """A Gaussian-process NLL: a squared-exponential kernel on n points from 3 numbers."""
    x, y = _GP_X[:n], _GP_Y[:n]
    K = (z[1] ** 2 + 0.5) * np.exp(-(x[:, None] - x[None, :]) ** 2 / (z[0] ** 2 + 1.0)) \
        + (z[2] ** 2 + 0.1) * np.eye(n)
    L = np.linalg.cholesky(K)
    a = sl.solve_triangular(L, y, lower=True)
    return 0.5 * a @ a + np.sum(np.log(np.diagonal(L)))


def spd_stack(z, k, n):
    M = z.reshape(k, n, n)
    return M @ np.swapaxes(M, -1, -2) + n * np.eye(n)


def tri(z, n, lower):
    """A well-conditioned triangular matrix (the other triangle holds junk the
    rows must not read)."""
    keep = np.tril(np.ones((n, n))) if lower else np.triu(np.ones((n, n)))
    return z.reshape(n, n) * keep + 3.0 * np.eye(n) + 10.0 * (1.0 - keep)


sl = pyad.linalg

# name: (f of a flat vector z, size of z, rows of these ops f records). Every f is
# nonlinear after the row, so second derivatives test the second-order sweeps.
CASES = {
    "cholesky": (lambda z: np.sum(np.sin(np.linalg.cholesky(spd(z, 3)))), 9, 1),
    "cholesky logdet": (lambda z: 2 * np.sum(np.log(np.diagonal(np.linalg.cholesky(spd(z, 4))))),
                        16, 1),
    "cholesky upper": (lambda z: np.sum(np.cos(np.linalg.cholesky(spd(z, 3), upper=True))), 9, 1),
    "cholesky stacked": (lambda z: np.sum(np.tanh(np.linalg.cholesky(spd_stack(z, 2, 3)))), 18, 1),
    "cholesky 1x1": (lambda z: np.sum(np.linalg.cholesky((z * z + 1.0).reshape(1, 1)) ** 3), 1, 1),
    "lower A, const b": (lambda z: np.sum(np.sin(sl.solve_triangular(tri(z, 4, True), Y4,
                                                                     lower=True))), 16, 1),
    "upper A, const B": (lambda z: np.sum(np.sin(sl.solve_triangular(tri(z, 3, False), B34))),
                         9, 1),
    "upper trans unit": (lambda z: np.sum(np.sin(sl.solve_triangular(
        tri(z, 3, False), B34, trans=1, unit_diagonal=True))), 9, 1),
    "lower trans 'T'": (lambda z: np.sum(np.sin(sl.solve_triangular(tri(z, 3, True), B34,
                                                                    trans="T", lower=True))), 9, 1),
    "const A, active b": (lambda z: np.sum(np.sin(sl.solve_triangular(
        tri(W3.ravel(), 3, True), z, lower=True))), 3, 1),
    "active A and b": (lambda z: np.sum(np.sin(sl.solve_triangular(
        tri(z[:9], 3, False), z[9:].reshape(3, 2), trans=1))), 15, 1),
    "stacked triangular": (lambda z: np.sum(np.sin(sl.solve_triangular(
        np.stack([tri(z[:9], 3, True), tri(z[9:18], 3, True)]), z[18:].reshape(2, 3, 1),
        lower=True))), 24, 1),
    "cho_solve": (lambda z: np.sum(np.sin(sl.cho_solve(sl.cho_factor(spd(z[:9], 3), lower=True),
                                                       z[9:]))), 12, 3),
    "cho_solve upper": (lambda z: Y4[:3] @ sl.cho_solve(sl.cho_factor(spd(z, 3)), Y4[:3]), 9, 3),
    "gaussian nll": (lambda z: 0.5 * Y4 @ sl.cho_solve((np.linalg.cholesky(spd(z, 4)), True), Y4)
                     + np.sum(np.log(np.diagonal(np.linalg.cholesky(spd(z, 4))))), 16, 4),
    # n = 75 > the C reverse rule's recursion base (32): its blocked path, with
    # uneven halves, in every sweep (few inputs, so differences stay cheap)
    "GP kernel n=75": (lambda z: gp_nll(z, 75), 3, 2),
}

VECTOR_CASES = {
    "cholesky": (lambda z: np.linalg.cholesky(spd(z, 3)).ravel(), 9),
    "triangular": (lambda z: sl.solve_triangular(tri(z[:9], 3, True), z[9:].reshape(3, 2),
                                                 lower=True).ravel(), 15),
}


class TestCases(row_cases.CaseChecks):
    CASES, VECTOR_CASES, OPS = CASES, VECTOR_CASES, LINALG_OPS
    AGREE = 1e-11


pytest_generate_tests = row_cases.generate_tests


# ---- exact formulas ----

def _spd0(n=4, seed=0):
    M = np.random.default_rng(seed).normal(size=(n, n))
    return M @ M.T + n * np.eye(n)


def test_cholesky_gradient_is_symmetrised_as_in_jax(backend):
    """numpy reads only A's lower triangle; the derivative is attributed to a
    symmetric A (JAX, PyTorch): the gradient is symmetric and matches symmetric
    perturbations A + h (E_ij + E_ji) / 2."""
    A0 = _spd0()
    f = lambda A: np.sum(np.sin(np.linalg.cholesky(A)))
    g = pyad.grad(f, backend=backend)(A0)
    np.testing.assert_allclose(g, g.T, rtol=1e-13, atol=1e-14)
    h, fd = 1e-6, np.zeros_like(A0)
    for i, j in np.ndindex(*A0.shape):
        E = np.zeros_like(A0)
        E[i, j] += h / 2
        E[j, i] += h / 2
        fd[i, j] = (f(A0 + E) - f(A0 - E)) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


def _gaussian_nll(y):
    """A ↦ 0.5 yᵀA⁻¹y + 0.5 log det A, through the Cholesky factor of A."""
    def nll(A):
        L = np.linalg.cholesky(A)
        a = sl.solve_triangular(L, y, lower=True)
        return 0.5 * a @ a + np.sum(np.log(np.diagonal(L)))
    return nll


def test_logdet_and_quadratic_form_against_closed_forms(backend):
    """f(A) = 0.5 yᵀA⁻¹y + 0.5 log det A via Cholesky: ∇f = 0.5 (A⁻¹ − A⁻¹yyᵀA⁻¹),
    and the logdet Hessian d²/dA² along E, F is −tr(A⁻¹ E A⁻¹ F)."""
    A0, y = _spd0(5, 1), np.random.default_rng(2).normal(size=5)
    nll = _gaussian_nll(y)
    Ai = np.linalg.inv(A0)
    alpha = Ai @ y
    np.testing.assert_allclose(nll(A0), 0.5 * y @ alpha + 0.5 * np.linalg.slogdet(A0)[1])
    np.testing.assert_allclose(pyad.grad(nll, backend=backend)(A0),
                               0.5 * (Ai - np.outer(alpha, alpha)), rtol=1e-11, atol=1e-13)
    logdet = lambda A: 2 * np.sum(np.log(np.diagonal(np.linalg.cholesky(A))))
    rng = np.random.default_rng(3)
    E = rng.normal(size=(5, 5))
    E = E + E.T
    F = rng.normal(size=(5, 5))
    F = F + F.T
    tape = pyad.trace(logdet, A0, backend=backend)
    np.testing.assert_allclose(np.sum(tape.hvp(A0, E) * F), -np.trace(Ai @ E @ Ai @ F),
                               rtol=1e-10)


def test_cholesky_tangent_is_giles_formula(backend):
    """L̇ = L Φ(L⁻¹ Ȧ L⁻ᵀ) for symmetric Ȧ (Φ: lower triangle, half diagonal)."""
    A0 = _spd0(4, 4)
    E = np.random.default_rng(5).normal(size=(4, 4))
    E = E + E.T
    L = np.linalg.cholesky(A0)
    X = np.linalg.solve(L, np.linalg.solve(L, E).T).T
    expected = L @ (np.tril(X) - 0.5 * np.diag(np.diag(X)))
    _, Ld = pyad.jvp(np.linalg.cholesky, A0, E, backend=backend)
    np.testing.assert_allclose(Ld, expected, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(Ld @ L.T + L @ Ld.T, E, rtol=1e-11, atol=1e-12)


def _cholesky_adjoint(A, W):
    """sym(S), S = L⁻ᵀ Φ(Lᵀ tril(W)) L⁻¹: the gradient of sum(W ∘ chol(A)), by
    scipy's triangular solves (Giles 2008, Murray 2016)."""
    L = np.linalg.cholesky(A)
    P = np.tril(L.T @ np.tril(W))
    P -= 0.5 * np.diag(np.diag(P))
    S = scipy.linalg.solve_triangular(L, P, trans=1, lower=True)
    S = scipy.linalg.solve_triangular(L, S.T, trans=1, lower=True).T
    return 0.5 * (S + S.T)


@pytest.mark.parametrize("n", [1, 2, 31, 32, 33, 64, 65, 131])
def test_cholesky_reverse_is_the_formula_at_every_size(backend, n):
    """The C rule recurses on halves above 32 rows (the formula below): at sizes
    on both sides of each split, the gradient of sum(W ∘ chol(A)) (W dense: the
    upper triangle's adjoint must be ignored) is the formula's, for one matrix,
    a stack, and a batch of points (lanes)."""
    rng = np.random.default_rng(n)
    As = [_spd0(n, seed) for seed in (n, n + 1)]
    W = rng.normal(size=(n, n))
    f = lambda A: np.sum(W * np.linalg.cholesky(A))
    expected = [_cholesky_adjoint(A, W) for A in As]
    tol = dict(rtol=1e-10, atol=1e-13 * np.max(np.abs(expected)))
    np.testing.assert_allclose(pyad.grad(f, backend=backend)(As[0]), expected[0], **tol)
    stacked = pyad.grad(lambda A: np.sum(W * np.linalg.cholesky(A)), backend=backend)(
        np.stack(As))
    np.testing.assert_allclose(stacked, np.stack(expected), **tol)
    tape = pyad.trace(f, As[0], backend=backend)
    np.testing.assert_allclose(tape.gradient(np.stack(As), batch=True), np.stack(expected),
                               **tol)


def test_gp_likelihood_gradient_is_the_trace_formula(backend):
    """At n = 75 (the blocked reverse path): ∂ nll / ∂K = 0.5 (K⁻¹ − α αᵀ), α = K⁻¹ y."""
    x = _GP_X
    K = np.exp(-(x[:, None] - x[None, :]) ** 2) + 0.1 * np.eye(x.size)
    nll = _gaussian_nll(_GP_Y)
    Ki = np.linalg.inv(K)
    alpha = Ki @ _GP_Y
    np.testing.assert_allclose(pyad.grad(nll, backend=backend)(K),
                               0.5 * (Ki - np.outer(alpha, alpha)), rtol=1e-9,
                               atol=1e-12 * np.max(np.abs(Ki)))


_LAYOUTS = {  # how the factor reaches the solve: the cholesky row's slots in place or not
    "in place": (lambda L: L, True),
    "transposed": (lambda L: L.T, False),
    "sub-block": (lambda L: L[1:, 1:], True),
    "stacked twice": (lambda L: np.stack([L, 2.0 * L]), True),
}


@pytest.mark.parametrize("layout", sorted(_LAYOUTS))
def test_a_factor_is_read_in_place_only_where_its_slots_run_in_order(backend, layout):
    """cholesky's result is read by the next row straight from its slots (no
    gather row, no index array) only where they run row-major; a transpose or a
    sub-block is gathered first. Values are scipy's, derivatives central
    differences' along a symmetric direction."""
    view, lower = _LAYOUTS[layout]
    A0 = _spd0(5, 7)
    E = np.random.default_rng(8).normal(size=(5, 5))
    E = E + E.T

    seen = []

    def f(A, solve=sl.solve_triangular, chol=np.linalg.cholesky):
        T = view(chol(A))
        seen.append(T)
        return np.sum(np.sin(solve(T, np.ones(T.shape[-1]), lower=lower)))

    plain = f(A0, scipy.linalg.solve_triangular)
    tape = pyad.trace(f, A0, backend=backend)
    np.testing.assert_allclose(tape(A0), plain, rtol=1e-13)
    if layout == "in place":  # the index array that would cost more than the row: never built
        assert "gather" not in tape.stats()["ops"]
        assert unfilled_ramp(seen[-1]) is not None
    h = 1e-6
    fd = (f(A0 + h * E, scipy.linalg.solve_triangular)
          - f(A0 - h * E, scipy.linalg.solve_triangular)) / (2 * h)
    np.testing.assert_allclose(np.sum(tape.gradient(A0) * E), fd, rtol=1e-7)


def test_triangular_solve_derivatives_are_the_inverse(backend):
    """X = op(A)⁻¹ B: ∂ sum(W ∘ X)/∂B = op(A)⁻ᵀ W, and ∂/∂A = the read triangle of
    −op(A)⁻ᵀ W Xᵀ (transposed for trans)."""
    rng = np.random.default_rng(6)
    A0 = np.triu(rng.normal(size=(4, 4))) + 4 * np.eye(4)
    B0, W = rng.normal(size=(4, 2)), rng.normal(size=(4, 2))
    for trans in (0, 1):
        M = A0.T if trans else A0
        f = lambda A, B: np.sum(W * sl.solve_triangular(A, B, trans=trans))
        gA, gB = pyad.grad(f, argnums=(0, 1), backend=backend)(A0, B0)
        G = np.linalg.solve(M.T, W)
        X = np.linalg.solve(M, B0)
        np.testing.assert_allclose(gB, G, rtol=1e-12)
        Mbar = -G @ X.T
        np.testing.assert_allclose(gA, np.triu(Mbar.T if trans else Mbar), rtol=1e-12,
                                   atol=1e-14)


def test_parameters_skip_a_passive_operand(backend):
    """With A or b a parameter (trace argnums), the row's marks skip that operand's
    products; the other's derivatives are unchanged."""
    A0 = np.triu(_spd0(3, 7)) + np.eye(3)
    b0 = np.random.default_rng(8).normal(size=3)
    f = lambda A, b: np.sum(np.sin(sl.solve_triangular(A, b)))
    full = pyad.trace(f, A0, b0, argnums=(0, 1), backend=backend)
    gA, gb = full.gradient(A0, b0)
    only_b = pyad.trace(f, A0, b0, argnums=1, backend=backend)
    np.testing.assert_allclose(only_b.gradient(A0, b0), gb, rtol=1e-13)
    only_a = pyad.trace(f, A0, b0, argnums=0, backend=backend)
    np.testing.assert_allclose(only_a.gradient(A0, b0), gA, rtol=1e-13)
    v = np.random.default_rng(9).normal(size=(3, 3))
    h = 1e-6
    fd = (only_a.gradient(A0 + h * v, b0) - only_a.gradient(A0 - h * v, b0)) / (2 * h)
    np.testing.assert_allclose(only_a.hvp((A0, b0), v), fd, rtol=1e-6, atol=1e-8)
    w = np.random.default_rng(10).normal(size=3)
    fd = (only_b.gradient(A0, b0 + h * w) - only_b.gradient(A0, b0 - h * w)) / (2 * h)
    np.testing.assert_allclose(only_b.hvp((A0, b0), w), fd, rtol=1e-6, atol=1e-8)


# ---- failures ----

def test_not_positive_definite_at_record_raises_linalgerror(backend):
    bad = -_spd0(3)
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
        pyad.grad(lambda A: np.sum(np.linalg.cholesky(A)), backend=backend)(bad)
    with pyad.Tape(backend=backend) as tape:
        a = tape.input(bad)
        with pytest.raises(np.linalg.LinAlgError):
            np.linalg.cholesky(a)
        n = tape.n_ops
        L = np.linalg.cholesky(tape.input(_spd0(3)))  # the tape still records after it
        tape.output(np.sum(L))
    assert tape.n_ops > n


def test_not_positive_definite_at_replay_names_the_row_and_the_point(backend):
    f = lambda A: np.sum(np.linalg.cholesky(A))
    tape = pyad.trace(f, _spd0(3), backend=backend)
    k = [i for i in range(tape.n_ops) if tape._store.op_at(i) == pyad.ops.CODE["cholesky"]][0]
    bad = -_spd0(3)
    for call in (lambda: tape(bad), lambda: tape.gradient(bad), lambda: tape.hessian(bad),
                 lambda: tape.jvp(bad, bad), lambda: tape.jacobian(bad, mode="forward")):
        with pytest.raises(np.linalg.LinAlgError, match=rf"row {k} \(cholesky\).*not positive "
                                                       "definite") as e:
            call()
        assert "replay at x = [" in str(e.value)
    X = np.stack([_spd0(3), bad, _spd0(3, 1)])
    with pytest.raises(np.linalg.LinAlgError, match=rf"(?s)batch point 1\): .*row {k} \(cholesky\)"):
        tape.gradient(X, batch=True)
    # NaN input gives NaN factors and no error, as numpy gives (LAPACK lets it through)
    nan = np.full((3, 3), np.nan)
    assert np.isnan(tape(nan)) and np.isnan(np.sum(np.linalg.cholesky(nan)))
    one = pyad.trace(f, np.ones((1, 1)), backend=backend)
    assert np.isnan(one(np.full((1, 1), np.nan)))
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
        one(np.zeros((1, 1)))


def test_singular_triangular_matrix(backend):
    A0 = np.triu(_spd0(3)) + np.eye(3)
    b = np.ones(3)
    f = lambda A: np.sum(sl.solve_triangular(A, b))
    singular = A0.copy()
    singular[1, 1] = 0.0
    with pytest.raises(np.linalg.LinAlgError, match="singular matrix: resolution failed at "
                                                    "diagonal 1"):
        pyad.grad(f, backend=backend)(singular)
    with pytest.raises(np.linalg.LinAlgError, match="singular matrix"):
        scipy.linalg.solve_triangular(singular, b)  # what scipy says
    tape = pyad.trace(f, A0, backend=backend)
    with pytest.raises(np.linalg.LinAlgError, match=r"\(solve_triangular\).*singular"):
        tape.gradient(singular)
    # unit_diagonal never reads the diagonal: a zero there is fine
    g = pyad.grad(lambda A: np.sum(sl.solve_triangular(A, b, unit_diagonal=True)),
                  backend=backend)(singular)
    assert np.all(np.isfinite(g)) and np.all(np.diag(g) == 0)


def test_bad_arguments_are_refused(backend):
    with pyad.Tape(backend=backend) as tape:
        a = tape.input(np.ones((2, 3)))
        with pytest.raises(np.linalg.LinAlgError, match="square"):
            np.linalg.cholesky(a)
        with pytest.raises(np.linalg.LinAlgError, match="two-dimensional"):
            np.linalg.cholesky(tape.input(np.ones(3)))
        sq = tape.input(np.eye(3))
        with pytest.raises(ValueError, match="incompatible"):
            sl.solve_triangular(sq, np.ones(4))
        with pytest.raises(ValueError, match="trans"):
            sl.solve_triangular(sq, np.ones(3), trans=5)
        with pytest.raises(ValueError, match="infs or NaNs"):
            sl.solve_triangular(sq, np.array([1.0, np.nan, 0.0]))
        with pytest.raises(TypeError, match="cho_factor"):
            sl.cho_solve(sq, np.ones(3))
        tape.output(np.sum(sq))


def test_scipy_linalg_on_an_active_array_names_the_pyad_function(backend):
    def f(A):
        return np.sum(scipy.linalg.solve_triangular(A, np.ones(3)))

    with pytest.raises(TypeError, match=r"pyad\.linalg\.solve_triangular"):
        pyad.grad(f, backend=backend)(np.eye(3))
    with pytest.raises(TypeError, match=r"pyad\.linalg\.cho_solve"):
        pyad.grad(lambda A: np.sum(scipy.linalg.cho_solve((A, True), np.ones(3))),
                  backend=backend)(np.eye(3))


def test_plain_arrays_go_to_scipy():
    A0 = np.triu(_spd0(3)) + np.eye(3)
    b = np.arange(3.0)
    np.testing.assert_allclose(sl.solve_triangular(A0, b, trans=1),
                               scipy.linalg.solve_triangular(A0, b, trans=1))
    np.testing.assert_allclose(sl.cho_solve(sl.cho_factor(_spd0(3)), b),
                               np.linalg.solve(_spd0(3), b))


def test_empty_and_stacked_shapes(backend):
    with pyad.Tape(backend=backend) as tape:
        empty = np.linalg.cholesky(tape.input(np.ones((2, 0, 0))))
        assert empty.shape == (2, 0, 0)
        s = tape.input(spd_stack(_point(18, 3), 2, 3).reshape(-1))
        A = s.reshape(2, 3, 3)
        L = np.linalg.cholesky(A)
        assert L.shape == (2, 3, 3)
        np.testing.assert_allclose(L.value, np.linalg.cholesky(A.value), rtol=1e-13)
        # a transposed (gathered) stack reads the same numbers
        Lt = np.linalg.cholesky(np.swapaxes(A, -1, -2))
        np.testing.assert_allclose(Lt.value, L.value, rtol=1e-13)
        tape.output(np.sum(L) + np.sum(Lt))
    g = tape.gradient()
    assert g[1].shape == (18,) and np.all(np.isfinite(g[1]))


def test_wengert_table_names_the_rows_and_their_operands(backend):
    f = lambda A: np.sum(sl.solve_triangular(np.linalg.cholesky(A), np.ones(2), lower=True,
                                             trans=1))
    tape = pyad.trace(f, 2 * np.eye(2), backend=backend)
    text = str(pyad.teaching.table(tape, mode="reverse"))
    assert "cholesky(v[-3:1])" in text
    assert "solve_triangular(v[1:5], v[5:7], lower, trans)" in text
    assert pyad.teaching.to_dot(tape).count("->") == 7
