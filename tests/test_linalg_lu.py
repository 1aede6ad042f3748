"""np.linalg.solve, inv, det, slogdet on active arrays (csrc/linalg_lu.c and its
twin pyad/_python_linalg_lu.py), in every sweep, on both backends.

Oracles: numpy.linalg values; central differences; the closed forms of Giles
(2008) (solve: B_bar = A^-T X_bar, A_bar = -B_bar X^T; inv: -A^-T K A^-T;
det: det A * A^-T, at a singular matrix the cofactor matrix from minors;
slogdet: A^-T); forward vs reverse Jacobians; HVP vs central differences of
the gradient; batched replay vs a loop of single points; save/load.
"""
import numpy as np
import pytest

import pyad
from helpers import central_diff_grad
from pyad.serialize import dumps

RTOL = 1e-12


def _well_conditioned(n, seed, lead=()):
    rng = np.random.default_rng(seed)
    return rng.normal(size=lead + (n, n)) + n * np.eye(n)


def _rand(shape, seed):
    return np.random.default_rng(seed).normal(size=shape)


def _cofactors(a):
    """The cofactor matrix from minors: det's gradient, with no inverse involved."""
    n = a.shape[0]
    c = np.empty_like(a)
    for i in range(n):
        for j in range(n):
            minor = np.delete(np.delete(a, i, 0), j, 1)
            c[i, j] = (-1) ** (i + j) * (np.linalg.det(minor) if n > 1 else 1.0)
    return c


def _fd_hessian(grad, x, h=1e-5):
    """Central differences of an exact gradient, one column per input."""
    x = np.asarray(x, dtype=float)
    cols = []
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = h
        e = e.reshape(x.shape)
        cols.append(((grad(x + e) - grad(x - e)) / (2 * h)).ravel())
    return np.array(cols).T


# ---- values against numpy, every operand combination ----

SOLVE_SHAPES = [((3, 3), (3,)), ((3, 3), (3, 2)), ((2, 3, 3), (3,)), ((2, 3, 3), (2, 3, 1)),
                ((2, 3, 3), (3, 4)), ((1, 1), (1,)), ((4, 4), (4, 4))]
MODES = ["active,active", "active,const", "const,active"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shapes", SOLVE_SHAPES, ids=[f"{a}\\{b}" for a, b in SOLVE_SHAPES])
def test_solve_values_and_gradients(backend, shapes, mode):
    a0 = _well_conditioned(shapes[0][-1], 1, shapes[0][:-2])
    b0 = _rand(shapes[1], 2)
    ref = np.linalg.solve(a0, b0)
    w = _rand(ref.shape, 3)
    a_on, b_on = (m == "active" for m in mode.split(","))

    def f(x, y):
        return np.sum(w * np.linalg.solve(x if a_on else a0, y if b_on else b0))

    def value(x, y):
        return np.linalg.solve(x if a_on else a0, y if b_on else b0)

    got = pyad.trace(value, a0, b0, backend=backend)()
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=1e-14)
    ga, gb = pyad.grad(f, argnums=(0, 1), backend=backend)(a0, b0)
    np.testing.assert_allclose(ga, central_diff_grad(lambda x: f(x, b0), a0) if a_on else 0,
                               rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(gb, central_diff_grad(lambda y: f(a0, y), b0) if b_on else 0,
                               rtol=1e-7, atol=1e-8)


def test_solve_gradient_is_giles_formula(backend):
    """B_bar = A^-T X_bar and A_bar = -B_bar X^T, to rounding."""
    a0, b0 = _well_conditioned(4, 5), _rand((4, 3), 6)
    xbar = _rand((4, 3), 7)
    x = np.linalg.solve(a0, b0)
    ga, gb = pyad.grad(lambda a, b: np.sum(xbar * np.linalg.solve(a, b)), argnums=(0, 1),
                       backend=backend)(a0, b0)
    bbar = np.linalg.solve(a0.T, xbar)
    np.testing.assert_allclose(gb, bbar, rtol=RTOL, atol=1e-14)
    np.testing.assert_allclose(ga, -bbar @ x.T, rtol=RTOL, atol=1e-14)


@pytest.mark.parametrize("lead", [(), (3,), (2, 2)])
def test_inv_det_slogdet_values_and_exact_gradients(backend, lead):
    a0 = _well_conditioned(3, 8, lead) * np.where(np.arange(3) == 1, -1.0, 1.0)  # det < 0 too
    k = _rand(a0.shape, 9)
    np.testing.assert_allclose(pyad.trace(np.linalg.inv, a0, backend=backend)(),
                               np.linalg.inv(a0), rtol=RTOL, atol=1e-14)
    np.testing.assert_allclose(pyad.trace(np.linalg.det, a0, backend=backend)(),
                               np.linalg.det(a0), rtol=1e-13)
    sign, logabs = pyad.trace(lambda a: tuple(np.linalg.slogdet(a)), a0, backend=backend)()
    ref_sign, ref_log = np.linalg.slogdet(a0)
    np.testing.assert_array_equal(sign, ref_sign)
    np.testing.assert_allclose(logabs, ref_log, rtol=1e-13)

    w_t = np.swapaxes(np.linalg.inv(a0), -1, -2)  # A^-T per matrix
    g_inv = pyad.grad(lambda a: np.sum(k * np.linalg.inv(a)), backend=backend)(a0)
    np.testing.assert_allclose(g_inv, -w_t @ k @ w_t, rtol=1e-11, atol=1e-13)
    g_det = pyad.grad(lambda a: np.sum(np.linalg.det(a)), backend=backend)(a0)
    np.testing.assert_allclose(g_det, np.linalg.det(a0)[..., None, None] * w_t, rtol=1e-11)
    g_log = pyad.grad(lambda a: np.sum(np.linalg.slogdet(a)[1]), backend=backend)(a0)
    np.testing.assert_allclose(g_log, w_t, rtol=1e-11, atol=1e-14)
    g_sign = pyad.grad(lambda a: np.sum(np.linalg.slogdet(a)[0] * a[..., 0, 0]),
                       backend=backend)(a0)
    expected = np.zeros_like(a0)
    expected[..., 0, 0] = ref_sign  # the sign is a constant of the point
    np.testing.assert_allclose(g_sign, expected, rtol=0, atol=0)


def test_symmetric_input_through_a_factor(backend):
    """A = S + S^T + 6 I: the gradient wrt S of slogdet and of y^T A^-1 y, by formula."""
    s0, y = _rand((4, 4), 11), _rand(4, 12)
    a0 = s0 + s0.T + 6 * np.eye(4)
    f = lambda s: (np.linalg.slogdet(s + s.T + 6 * np.eye(4))[1]
                   + y @ np.linalg.solve(s + s.T + 6 * np.eye(4), y))
    g = pyad.grad(f, backend=backend)(s0)
    w = np.linalg.inv(a0)
    ga = w - np.outer(w @ y, w @ y)  # dA-gradient (symmetric)
    np.testing.assert_allclose(g, ga + ga.T, rtol=1e-11, atol=1e-13)


# ---- forward vs reverse, vector modes, second order ----

FUNCTIONS = {
    "solve(A, b)": lambda a: np.linalg.solve(a[:3], a[3]),
    "solve(A, A)": lambda a: np.linalg.solve(a[:3], a[:3] @ a[:3]),
    "inv": lambda a: np.linalg.inv(a[:3]),
    "det": lambda a: np.linalg.det(a[:3]) * a[3],
    "slogdet": lambda a: np.linalg.slogdet(a[:3])[1] * a[3],
}


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_forward_and_reverse_jacobians_agree(backend, name):
    x0 = np.vstack([_well_conditioned(3, 13), _rand((1, 3), 14)])
    f = FUNCTIONS[name]
    jf = pyad.jacobian(f, mode="forward", backend=backend)(x0)
    jr = pyad.jacobian(f, mode="reverse", backend=backend)(x0)
    np.testing.assert_allclose(jf, jr, rtol=RTOL, atol=1e-13)
    out = np.asarray(f(x0))
    v = _rand(x0.shape, 15)
    jv = pyad.jvp(f, x0, v, backend=backend)[1]
    fd = (np.asarray(f(x0 + 1e-6 * v)) - np.asarray(f(x0 - 1e-6 * v))) / 2e-6
    np.testing.assert_allclose(jv, fd, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.reshape(jf, out.shape + (-1,)) @ v.ravel(), jv, rtol=1e-11,
                               atol=1e-12)


SCALARS = {
    "solve": lambda a: np.sum(np.linalg.solve(a[:3], a[3]) ** 2),
    "solve matrix rhs": lambda a: np.sum(np.sin(np.linalg.solve(a[:3], a[:3].T))),
    "inv": lambda a: np.sum(np.linalg.inv(a[:3]) ** 3) + a[3] @ np.linalg.inv(a[:3]) @ a[3],
    "det": lambda a: np.linalg.det(a[:3]) ** 2 + np.linalg.det(a[:3] * a[3]),
    "slogdet": lambda a: np.linalg.slogdet(a[:3])[1] * np.sum(a[3] ** 2),
}


@pytest.mark.parametrize("name", list(SCALARS))
def test_hessian_and_hvp_match_differences_of_the_gradient(backend, name):
    x0 = np.vstack([_well_conditioned(3, 16), _rand((1, 3), 17)])
    f = SCALARS[name]
    tape = pyad.trace(f, x0, backend=backend)
    h = tape.hessian(x0).reshape(12, 12)
    fd = _fd_hessian(tape.gradient, x0)
    np.testing.assert_allclose(h, fd, rtol=1e-6, atol=1e-6 * np.abs(h).max())
    np.testing.assert_allclose(h, h.T, rtol=1e-10, atol=1e-12)
    v = _rand(x0.shape, 18)
    np.testing.assert_allclose(tape.hvp(x0, v).ravel(), h @ v.ravel(), rtol=1e-10,
                               atol=1e-12 * np.abs(h).max())


def test_gaussian_likelihood_hvp(backend):
    """0.5 y^T S^-1 y + 0.5 log|S|, S = L L^T + I: the HVP in L against
    differences of the gradient (issue 15's likelihood test)."""
    y = _rand(5, 19)
    l0 = _rand((5, 5), 20)

    def nll(l):
        s = l @ l.T + np.eye(5)
        return 0.5 * y @ np.linalg.solve(s, y) + 0.5 * np.linalg.slogdet(s)[1]

    tape = pyad.trace(nll, l0, backend=backend)
    v = _rand((5, 5), 21)
    hv = tape.hvp(l0, v)
    fd = (tape.gradient(l0 + 1e-5 * v) - tape.gradient(l0 - 1e-5 * v)) / 2e-5
    np.testing.assert_allclose(hv, fd, rtol=1e-6, atol=1e-7)
    s0 = l0 @ l0.T + np.eye(5)
    alpha = np.linalg.solve(s0, y)
    grad_s = 0.5 * (np.linalg.inv(s0) - np.outer(alpha, alpha))
    np.testing.assert_allclose(tape.gradient(l0), 2 * grad_s @ l0, rtol=1e-11, atol=1e-13)


# ---- replay: new points, batches, threads, save/load ----

def _nll_stack(x):
    a = x[:, :3] + 3 * np.eye(3)
    return (np.sum(np.linalg.solve(a, x[:, 3, :, None]) ** 2) + np.sum(np.linalg.slogdet(a)[1])
            + np.sum(np.linalg.det(a)) + np.sum(np.linalg.inv(a)[:, 0]))


def test_replay_at_new_points_and_batches_match_a_loop(backend):
    x0 = _rand((2, 4, 3), 22)
    tape = pyad.trace(_nll_stack, x0, backend=backend)
    X = np.stack([_rand((2, 4, 3), 30 + i) * 0.5 for i in range(5)])
    V = np.stack([_rand((2, 4, 3), 40 + i) for i in range(5)])
    loop_val = np.array([_nll_stack(x) for x in X])
    loop_grad = np.array([pyad.grad(_nll_stack, backend=backend)(x) for x in X])
    np.testing.assert_allclose([tape(x) for x in X], loop_val, rtol=1e-13)
    np.testing.assert_allclose(tape.gradient(X, batch=True), loop_grad, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(tape.gradient(X, batch=True, threads=2), loop_grad, rtol=1e-12,
                               atol=1e-13)
    hv = tape.hvp(X, V, batch=True)
    np.testing.assert_allclose(hv, np.array([tape.hvp(x, v) for x, v in zip(X, V)]),
                               rtol=1e-12, atol=1e-12)
    jv = tape.jvp(X, V, batch=True)[1]
    np.testing.assert_allclose(jv, np.array([tape.jvp(x, v)[1] for x, v in zip(X, V)]),
                               rtol=1e-12, atol=1e-12)
    for x, v, h in zip(X, V, hv):
        fd = (tape.gradient(x + 1e-5 * v) - tape.gradient(x - 1e-5 * v)) / 2e-5
        np.testing.assert_allclose(h, fd, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("into", ["c", "python"])
def test_save_load_round_trip(backend, into):
    x0 = _rand((2, 4, 3), 23)
    tape = pyad.trace(_nll_stack, x0, backend=backend)
    loaded = pyad.loads(dumps(tape), backend=into)
    x1 = _rand((2, 4, 3), 24) * 0.5
    np.testing.assert_allclose(loaded(x1), tape(x1), rtol=1e-13)
    np.testing.assert_allclose(loaded.gradient(x1), tape.gradient(x1), rtol=1e-12, atol=1e-13)
    v = _rand((2, 4, 3), 25)
    np.testing.assert_allclose(loaded.hvp(x1, v), tape.hvp(x1, v), rtol=1e-12, atol=1e-12)
    # the recorded point, read from the saved slots (the kept inverse and SVD)
    np.testing.assert_allclose(loaded.gradient(), tape.gradient(), rtol=1e-12, atol=1e-13)


# ---- singular and near-singular matrices ----

SINGULAR = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [1.0, 0.0, 1.0]])  # rank 2


@pytest.mark.parametrize("fn", [lambda a: np.linalg.solve(a, np.ones(3)), np.linalg.inv],
                         ids=["solve", "inv"])
def test_singular_at_record_time_raises_linalg_error(backend, fn):
    with pytest.raises(np.linalg.LinAlgError):
        pyad.trace(lambda a: np.sum(fn(a)), SINGULAR, backend=backend)


@pytest.mark.parametrize("name", ["solve", "inv"])
def test_singular_at_replay_names_the_row_and_the_point(backend, name):
    fn = {"solve": lambda a: np.sum(np.linalg.solve(a, np.ones(3))),
          "inv": lambda a: np.sum(np.linalg.inv(a))}[name]
    x0 = _well_conditioned(3, 26)
    tape = pyad.trace(fn, x0, backend=backend)
    for sweep in (lambda t: t(SINGULAR), lambda t: t.gradient(SINGULAR),
                  lambda t: t.hvp(SINGULAR, np.ones((3, 3))),
                  lambda t: t.jacobian(SINGULAR, mode="forward")):
        with pytest.raises(pyad.SingularMatrixError, match=rf"row \d+ \({name}\)"
                                                           r".*singular") as e:
            sweep(tape)
        assert isinstance(e.value, np.linalg.LinAlgError)
        assert "x = [1. 2. 3. ..." in str(e.value)
    loaded = pyad.loads(dumps(tape), backend=backend)  # no function to re-record
    with pytest.raises(pyad.SingularMatrixError):
        loaded.gradient(SINGULAR)
    X = np.stack([x0, SINGULAR, x0 + 1])
    with pytest.raises(pyad.SingularMatrixError, match="batch point 1"):
        tape.gradient(X, batch=True)
    # the tape still works at regular points
    np.testing.assert_allclose(tape.gradient(x0 + 1), pyad.grad(fn)(x0 + 1), rtol=1e-12)


@pytest.mark.parametrize("a0", [SINGULAR, np.zeros((2, 2)), np.array([[0.0, 1.0], [0.0, 0.0]]),
                                np.outer([1.0, -2.0, 0.5], [3.0, 1.0, 2.0])],
                         ids=["rank2of3", "zero2", "nilpotent", "rank1of3"])
def test_det_of_a_singular_matrix_is_zero_with_the_cofactor_gradient(backend, a0):
    tape = pyad.trace(np.linalg.det, a0, backend=backend)
    assert tape() == 0.0
    g = tape.gradient(a0)
    np.testing.assert_allclose(g, _cofactors(a0), rtol=1e-12, atol=1e-12)
    if a0.shape == (3, 3) and np.linalg.matrix_rank(a0) == 2:
        assert np.abs(g).max() > 1  # rank n - 1: a nonzero gradient
    # second order: det is a polynomial, so differences of the gradient are exact
    h = tape.hessian(a0).reshape(a0.size, a0.size)
    np.testing.assert_allclose(h, _fd_hessian(_cofactors, a0), rtol=1e-7, atol=1e-7)
    # and a replay from a regular point onto the singular one gives the same
    other = pyad.trace(np.linalg.det, a0 + np.eye(len(a0)), backend=backend)
    np.testing.assert_allclose(other.gradient(a0), _cofactors(a0), rtol=1e-12, atol=1e-12)


def test_slogdet_of_a_singular_matrix_is_numpys(backend):
    sign, logabs = pyad.trace(lambda a: tuple(np.linalg.slogdet(a)), SINGULAR,
                              backend=backend)()
    assert (sign, logabs) == (0.0, -np.inf)
    g = pyad.grad(lambda a: np.linalg.slogdet(a)[1], backend=backend)(SINGULAR)
    assert np.isnan(g).all()  # a pole: never a finite, wrong number


def test_near_singular_solve(backend):
    """cond(A) ~ 1e8: values as numpy's, gradient as Giles's formula to the
    accuracy the conditioning allows."""
    u, _ = np.linalg.qr(_rand((4, 4), 27))
    a0 = u @ np.diag([1.0, 1.0, 1e-4, 1e-8]) @ u.T
    b0 = _rand(4, 28)
    tape = pyad.trace(lambda a: np.linalg.solve(a, b0), a0, backend=backend)
    np.testing.assert_allclose(tape(), np.linalg.solve(a0, b0), rtol=1e-6)
    w = _rand(4, 29)
    g = pyad.grad(lambda a: w @ np.linalg.solve(a, b0), backend=backend)(a0)
    bbar = np.linalg.solve(a0.T, w)
    np.testing.assert_allclose(g, -np.outer(bbar, np.linalg.solve(a0, b0)), rtol=1e-5)


# ---- shapes and errors as numpy's ----

def test_errors_and_edge_shapes_follow_numpy(backend):
    def fails(fn, x):
        with pytest.raises(np.linalg.LinAlgError):
            pyad.trace(lambda a: np.sum(fn(a)), x, backend=backend)

    fails(np.linalg.inv, np.ones((2, 3)))
    fails(np.linalg.det, np.ones(3))
    fails(lambda a: np.linalg.solve(a, np.ones(2)), np.ones((2, 3)))
    with pytest.raises(ValueError):
        pyad.trace(lambda a: np.sum(np.linalg.solve(a, np.ones(4))), np.eye(3), backend=backend)
    # 0 x 0: det 1, slogdet (1, 0), as numpy (constants: nothing to differentiate)
    g = pyad.grad(lambda a: np.sum(a) + np.linalg.det(a[:0, :0]), backend=backend)(np.eye(2))
    np.testing.assert_array_equal(g, np.ones((2, 2)))
    # the public module and numpy's dispatch reach the same rows
    a0 = _well_conditioned(3, 31)
    np.testing.assert_allclose(pyad.grad(lambda a: pyad.linalg.det(a), backend=backend)(a0),
                               pyad.grad(lambda a: np.linalg.det(a), backend=backend)(a0),
                               rtol=0)
    r = pyad.trace(lambda a: np.linalg.slogdet(a).logabsdet, a0, backend=backend)()
    assert np.isclose(r, np.linalg.slogdet(a0).logabsdet)


def test_operands_that_are_views_and_transposes(backend):
    """Non-contiguous operands (a transpose, a strided slice) are copied first."""
    big = _rand((6, 6), 32) + 6 * np.eye(6)
    f = lambda x: np.sum(np.linalg.solve(x[::2, ::2].T, x[1, ::2])) + np.linalg.det(x[:3, 3:].T)
    g = pyad.grad(f, backend=backend)(big)
    np.testing.assert_allclose(g, central_diff_grad(f, big), rtol=1e-6, atol=1e-7)


def test_backends_agree_on_every_sweep():
    x0 = _rand((2, 4, 3), 33)
    v = _rand((2, 4, 3), 34)
    tapes = [pyad.trace(_nll_stack, x0, backend=b) for b in ("c", "python")]
    for sweep in (lambda t: t(), lambda t: t.gradient(), lambda t: t.hvp(x0, v),
                  lambda t: t.hessian(x0)):
        c, p = (np.asarray(sweep(t)) for t in tapes)
        np.testing.assert_allclose(c, p, rtol=1e-11, atol=1e-12)


def test_matrix_as_a_parameter(backend):
    """A matrix passed as data (argnums): rows that only it reaches are passive,
    the ones the differentiated input reaches keep their derivative, and new data
    replays without re-recording."""
    a0, a1 = _well_conditioned(3, 35), _well_conditioned(3, 36)
    f = lambda x, a: np.sum(np.linalg.solve(a, x) ** 2) + np.linalg.slogdet(a)[1] * x[0]
    tape = pyad.trace(f, np.ones(3), a0, argnums=0, backend=backend)
    x1 = _rand(3, 37)
    for a in (a0, a1):
        np.testing.assert_allclose(tape.gradient(x1, a), pyad.grad(f, backend=backend)(x1, a),
                                   rtol=1e-12, atol=1e-13)
