"""Whole derivative objects: Jacobians (forward / reverse / auto), Hessians and
Hessian-vector products, on both backends.

Oracles are independent of pyad: central differences of plain-numpy versions of
the same functions (tests/helpers.py), and closed-form derivatives written out
here (Rosenbrock, quadratic forms, logsumexp, every elementary primitive).
"""
import numpy as np
import pytest

import pyad
from helpers import central_diff_grad, central_diff_jvp

MODES = ("forward", "reverse", "auto")
RNG = np.random.default_rng(1234)

# ---------------------------------------------------------------------------
# Jacobians
# ---------------------------------------------------------------------------

B_OUT = RNG.uniform(-1, 1, size=(6, 4))
A_TALL = RNG.uniform(-1, 1, size=(2, 5))


def f_wide(x):
    """n = 3 inputs < m = 7 outputs."""
    return np.concatenate([np.sin(x) * x[::-1],
                           x[:1] * x[1:2] * x[2:],
                           np.exp(x[2:]) / (1.0 + x[:1] ** 2),
                           np.arctan2(x[1:2], x[:1] + 3.0),
                           np.sqrt(x[:1] ** 2 + 1.0)])


def f_tall(x):
    """n = 5 inputs > m = 2 outputs."""
    return np.tanh(A_TALL @ x) * (x[:2] ** 2 + 0.5) + np.cumsum(np.cos(x))[-2:]


def f_square(x):
    """n = m = 4."""
    return np.exp(0.3 * x) * np.roll(x, 1) + np.log1p(x ** 2) - x * x[::-1]


def f_out_2d(x):
    """(4,) -> (2, 3)."""
    return (np.cos(B_OUT @ x) * (x[0] + 2.0)).reshape(2, 3)


def f_in_2d(x):
    """(2, 2) -> (2, 2): an active x active matrix product and elementwise ops."""
    return x @ x + np.exp(x) * x.T


JAC_CASES = [
    ("n<m", f_wide, np.array([0.4, -0.7, 1.1]), (7, 3)),
    ("n>m", f_tall, np.array([0.3, -0.2, 0.9, -1.1, 0.5]), (2, 5)),
    ("n==m", f_square, np.array([0.5, -1.3, 0.8, 0.2]), (4, 4)),
    ("out(2,3) in(4,)", f_out_2d, np.array([0.1, 0.7, -0.4, 0.9]), (2, 3, 4)),
    ("in(2,2)", f_in_2d, np.array([[0.3, -0.8], [1.2, 0.4]]), (2, 2, 2, 2)),
]


def fd_jacobian(f, x):
    """Central-difference Jacobian, shape f(x).shape + x.shape."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(f(x))
    J = np.zeros(y.shape + x.shape)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = 1.0
        J[(Ellipsis,) + i] = central_diff_jvp(f, x, e)
    return J


@pytest.mark.parametrize("name,f,x,shape", JAC_CASES, ids=[c[0] for c in JAC_CASES])
def test_tape_jacobian_modes_agree_with_each_other_and_central_differences(backend, name, f,
                                                                           x, shape):
    tape = pyad.trace(f, x, backend=backend)
    fd = fd_jacobian(f, x)
    assert fd.shape == shape
    x_new = x + 0.05  # replay away from the recorded point, too
    fd_new = fd_jacobian(f, x_new)
    Js = {}
    for mode in MODES:
        J = tape.jacobian(x, mode=mode)
        assert isinstance(J, np.ndarray) and J.dtype == np.float64
        assert J.shape == shape, (mode, J.shape)
        np.testing.assert_allclose(J, fd, rtol=1e-6, atol=1e-8, err_msg=mode)
        Js[mode] = J
        # default point (None) = the recorded point
        np.testing.assert_allclose(tape.jacobian(mode=mode), J, rtol=1e-13, atol=1e-15)
        J_new = tape.jacobian(x_new, mode=mode)
        assert J_new.shape == shape
        np.testing.assert_allclose(J_new, fd_new, rtol=1e-6, atol=1e-8, err_msg=mode)
    np.testing.assert_allclose(Js["forward"], Js["reverse"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(Js["auto"], Js["forward"], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name,f,x,shape", JAC_CASES, ids=[c[0] for c in JAC_CASES])
def test_functional_jacobian_modes(backend, name, f, x, shape):
    fd = fd_jacobian(f, x)
    Js = {}
    for mode in MODES:
        J = pyad.jacobian(f, mode=mode, backend=backend)(x)
        assert J.shape == shape
        np.testing.assert_allclose(J, fd, rtol=1e-6, atol=1e-8, err_msg=mode)
        Js[mode] = J
    # default mode is "auto"
    J_default = pyad.jacobian(f, backend=backend)(x)
    np.testing.assert_allclose(J_default, Js["auto"], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(Js["forward"], Js["reverse"], rtol=1e-12, atol=1e-14)
    # the tape-level and functional Jacobians are the same numbers
    tape = pyad.trace(f, x, backend=backend)
    np.testing.assert_allclose(tape.jacobian(x, mode="reverse"), Js["reverse"], rtol=1e-13,
                               atol=1e-15)


def test_jacobian_of_a_scalar_function_is_the_gradient(backend):
    f = lambda x: np.sum(np.sin(x) * x ** 2)
    x = np.array([0.3, -1.2, 2.0])
    for mode in MODES:
        J = pyad.jacobian(f, mode=mode, backend=backend)(x)
        assert J.shape == (3,)
        np.testing.assert_allclose(J, central_diff_grad(f, x), rtol=1e-7, atol=1e-9)


def test_jacobian_of_a_scalar_input(backend):
    f = lambda t: np.stack([pyad.sin(t), t * t, pyad.exp(-t)])
    x = 0.7
    for mode in MODES:
        J = pyad.jacobian(f, mode=mode, backend=backend)(x)
        assert np.shape(J) == (3,)
        np.testing.assert_allclose(J, [np.cos(x), 2 * x, -np.exp(-x)], rtol=1e-13)


def test_jacobian_unknown_mode_raises_value_error(backend):
    x = np.array([0.4, -0.7, 1.1])
    tape = pyad.trace(f_wide, x, backend=backend)
    with pytest.raises(ValueError):
        tape.jacobian(x, mode="sideways")
    with pytest.raises(ValueError):
        tape.jacobian(mode="sideways")
    with pytest.raises(ValueError):
        pyad.jacobian(f_wide, mode="sideways", backend=backend)(x)
    # the tape still works afterwards
    assert tape.jacobian(x).shape == (7, 3)


# ---------------------------------------------------------------------------
# Hessians against closed forms
# ---------------------------------------------------------------------------

def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosenbrock_hessian(x):
    """Closed form: H[i,i] = 1200 x_i^2 - 400 x_{i+1} + 2 (i < n-1) + 200 (i > 0),
    H[i,i+1] = H[i+1,i] = -400 x_i."""
    n = x.size
    H = np.zeros((n, n))
    for i in range(n):
        if i < n - 1:
            H[i, i] += 1200.0 * x[i] ** 2 - 400.0 * x[i + 1] + 2.0
            H[i, i + 1] = H[i + 1, i] = -400.0 * x[i]
        if i > 0:
            H[i, i] += 200.0
    return H


def rosenbrock_gradient(x):
    g = np.zeros_like(x)
    g[:-1] = -400.0 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * (x[1:] - x[:-1] ** 2)
    return g


@pytest.mark.parametrize("n", [2, 5, 12])
def test_rosenbrock_hessian_closed_form(backend, n):
    rng = np.random.default_rng(n)
    x0 = rng.uniform(-1.5, 1.5, size=n)
    tape = pyad.trace(rosenbrock, x0, backend=backend)
    for x in (x0, rng.uniform(-2, 2, size=n), np.ones(n)):
        H = tape.hessian(x)
        assert H.shape == (n, n) and H.dtype == np.float64
        np.testing.assert_allclose(H, rosenbrock_hessian(x), rtol=1e-13, atol=1e-10)
        assert np.array_equal(H, H.T)
        np.testing.assert_allclose(tape.gradient(x), rosenbrock_gradient(x), rtol=1e-13,
                                   atol=1e-10)
    H = pyad.hessian(rosenbrock, backend=backend)(x0)
    np.testing.assert_allclose(H, rosenbrock_hessian(x0), rtol=1e-13, atol=1e-10)
    assert np.array_equal(H, H.T)


def test_rosenbrock_hessian_at_the_minimum_is_the_textbook_matrix(backend):
    H = pyad.hessian(rosenbrock, backend=backend)(np.ones(3))
    np.testing.assert_array_equal(H, [[802.0, -400.0, 0.0],
                                      [-400.0, 1002.0, -400.0],
                                      [0.0, -400.0, 200.0]])


@pytest.mark.parametrize("n", [1, 4, 9])
def test_quadratic_form_hessian(backend, n):
    rng = np.random.default_rng(100 + n)
    A = rng.normal(size=(n, n))          # not symmetric on purpose
    b = rng.normal(size=n)
    f = lambda x: 0.5 * (x @ (A @ x)) + b @ x
    x = rng.normal(size=n)
    expected = 0.5 * (A + A.T)
    H = pyad.hessian(f, backend=backend)(x)
    assert H.shape == (n, n)
    np.testing.assert_allclose(H, expected, rtol=1e-13, atol=1e-14)
    assert np.array_equal(H, H.T)
    # the Hessian of a quadratic does not depend on the point
    tape = pyad.trace(f, x, backend=backend)
    np.testing.assert_allclose(tape.hessian(rng.normal(size=n) * 10), expected, rtol=1e-13,
                               atol=1e-13)
    # and the gradient is (A + A^T)/2 x + b
    np.testing.assert_allclose(tape.gradient(x), expected @ x + b, rtol=1e-12, atol=1e-13)


def logsumexp_plus_ridge(A):
    def f(x):
        z = A @ x
        return np.log(np.sum(np.exp(z))) + 0.5 * np.sum(x * x)
    return f


def logsumexp_hessian(A, x):
    z = A @ x
    p = np.exp(z - z.max())
    p /= p.sum()
    return A.T @ (np.diag(p) - np.outer(p, p)) @ A + np.eye(x.size)


@pytest.mark.parametrize("m,n", [(3, 3), (6, 4), (2, 5)])
def test_logsumexp_hessian(backend, m, n):
    rng = np.random.default_rng(10 * m + n)
    A = rng.normal(size=(m, n))
    f = logsumexp_plus_ridge(A)
    x = rng.normal(size=n)
    H = pyad.hessian(f, backend=backend)(x)
    assert H.shape == (n, n)
    np.testing.assert_allclose(H, logsumexp_hessian(A, x), rtol=1e-12, atol=1e-13)
    assert np.array_equal(H, H.T)
    tape = pyad.trace(f, x, backend=backend)
    x2 = rng.normal(size=n)
    H2 = tape.hessian(x2)
    np.testing.assert_allclose(H2, logsumexp_hessian(A, x2), rtol=1e-12, atol=1e-13)
    assert np.array_equal(H2, H2.T)


def test_hessian_of_a_2d_input_has_shape_x_shape_twice(backend):
    C = np.array([[1.0, -2.0, 0.5], [0.3, 0.7, -1.1]])

    def f(x):                     # x is (2, 3)
        return np.sum(x ** 3 * C) + np.sum(x[0] * x[1]) + np.sum(np.sin(x))

    def analytic(x):
        H = np.zeros((2, 3, 2, 3))
        for i in range(2):
            for j in range(3):
                H[i, j, i, j] = 6.0 * C[i, j] * x[i, j] - np.sin(x[i, j])
        for j in range(3):
            H[0, j, 1, j] = H[1, j, 0, j] = 1.0
        return H

    x = np.array([[0.2, -0.5, 1.3], [0.9, -1.4, 0.1]])
    H = pyad.hessian(f, backend=backend)(x)
    assert H.shape == (2, 3, 2, 3)
    np.testing.assert_allclose(H, analytic(x), rtol=1e-13, atol=1e-14)
    Hm = H.reshape(6, 6)
    assert np.array_equal(Hm, Hm.T)
    tape = pyad.trace(f, x, backend=backend)
    H2 = tape.hessian(x + 0.25)
    assert H2.shape == (2, 3, 2, 3)
    np.testing.assert_allclose(H2, analytic(x + 0.25), rtol=1e-13, atol=1e-14)


def test_hessian_exactly_symmetric_for_a_messy_function(backend):
    rng = np.random.default_rng(5)
    W = rng.normal(size=(7, 7))

    def f(x):
        y = np.tanh(W @ x) * np.roll(x, 2)
        return np.sum(np.exp(-y ** 2) * np.cos(x)) + np.prod(1.0 + 0.1 * x) / (1.0 + x @ x)

    for _ in range(3):
        x = rng.normal(size=7)
        H = pyad.hessian(f, backend=backend)(x)
        assert np.array_equal(H, H.T)
        # columns = finite differences of the (independent, numpy) gradient oracle
        for i in range(7):
            e = np.zeros(7)
            e[i] = 1.0
            col = central_diff_jvp(lambda z: central_diff_grad(f, z, h=1e-5), x, e, h=1e-4)
            np.testing.assert_allclose(H[:, i], col, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------
# Hessian-vector products
# ---------------------------------------------------------------------------

A_LSE = np.random.default_rng(3).normal(size=(4, 5))
HVP_CASES = [
    ("rosenbrock", rosenbrock, rosenbrock_hessian, 6),
    ("logsumexp", logsumexp_plus_ridge(A_LSE), lambda x: logsumexp_hessian(A_LSE, x), 5),
]


@pytest.mark.parametrize("name,f,Hf,n", HVP_CASES, ids=[c[0] for c in HVP_CASES])
def test_hvp_against_finite_differences_of_the_gradient_and_hessian(backend, name, f, Hf, n):
    rng = np.random.default_rng(77)
    x0 = rng.uniform(-1, 1, size=n)
    tape = pyad.trace(f, x0, backend=backend)
    for _ in range(3):
        x = rng.uniform(-1.2, 1.2, size=n)
        v = rng.normal(size=n)
        hv = tape.hvp(x, v)
        assert hv.shape == (n,) and hv.dtype == np.float64
        # closed-form Hessian times v
        np.testing.assert_allclose(hv, Hf(x) @ v, rtol=1e-11, atol=1e-11)
        # the tape's own Hessian times v
        np.testing.assert_allclose(hv, tape.hessian(x) @ v, rtol=1e-12, atol=1e-12)
        # central differences of the gradient along v
        fd = central_diff_jvp(tape.gradient, x, v, h=1e-6)
        np.testing.assert_allclose(hv, fd, rtol=1e-6, atol=1e-6 * max(1, np.abs(fd).max()))
        # functional form
        hv2 = pyad.hvp(f, x, v, backend=backend)
        np.testing.assert_allclose(hv2, hv, rtol=1e-13, atol=1e-13)


def test_hvp_2d_input(backend):
    def f(x):
        return np.sum(np.sin(x) * x[::-1]) + np.sum(x @ x.T)

    x = np.array([[0.4, -0.3], [1.1, 0.6], [-0.8, 0.2]])
    v = np.array([[1.0, 0.5], [-0.2, 0.3], [0.7, -1.0]])
    hv = pyad.hvp(f, x, v, backend=backend)
    assert hv.shape == x.shape
    H = pyad.hessian(f, backend=backend)(x)
    assert H.shape == x.shape + x.shape
    np.testing.assert_allclose(hv, np.tensordot(H, v, axes=2), rtol=1e-12, atol=1e-13)
    fd = central_diff_jvp(lambda z: central_diff_grad(f, z, h=1e-5), x, v, h=1e-4)
    np.testing.assert_allclose(hv, fd, rtol=1e-5, atol=1e-6)
    tape = pyad.trace(f, x, backend=backend)
    np.testing.assert_allclose(tape.hvp(x, v), hv, rtol=1e-13, atol=1e-14)


def test_hvp_is_linear_in_v(backend):
    rng = np.random.default_rng(9)
    x = rng.uniform(-1, 1, size=5)
    tape = pyad.trace(rosenbrock, x, backend=backend)
    v, w = rng.normal(size=5), rng.normal(size=5)
    np.testing.assert_allclose(tape.hvp(x, 2.0 * v - 3.0 * w),
                               2.0 * tape.hvp(x, v) - 3.0 * tape.hvp(x, w), rtol=1e-11,
                               atol=1e-10)
    np.testing.assert_array_equal(tape.hvp(x, np.zeros(5)), np.zeros(5))


# ---------------------------------------------------------------------------
# Second derivatives of every elementary primitive, through hessian
# ---------------------------------------------------------------------------

def _sec(x):
    return 1.0 / np.cos(x) ** 2


# name -> (points in the domain, first derivative, second derivative)
UNARY = {
    "neg": (np.array([-1.3, 0.2, 2.5]), lambda x: -np.ones_like(x), lambda x: 0 * x),
    "square": (np.array([-1.3, 0.2, 2.5]), lambda x: 2 * x, lambda x: 2 + 0 * x),
    "reciprocal": (np.array([-1.7, 0.4, 2.5]), lambda x: -1 / x ** 2, lambda x: 2 / x ** 3),
    "exp": (np.array([-1.3, 0.2, 1.5]), np.exp, np.exp),
    "log": (np.array([0.3, 1.2, 4.0]), lambda x: 1 / x, lambda x: -1 / x ** 2),
    "log1p": (np.array([-0.6, 0.2, 3.0]), lambda x: 1 / (1 + x), lambda x: -1 / (1 + x) ** 2),
    "expm1": (np.array([-1.3, 0.2, 1.5]), np.exp, np.exp),
    "sqrt": (np.array([0.3, 1.2, 4.0]), lambda x: 0.5 / np.sqrt(x),
             lambda x: -0.25 * x ** -1.5),
    "sin": (np.array([-1.3, 0.2, 2.5]), np.cos, lambda x: -np.sin(x)),
    "cos": (np.array([-1.3, 0.2, 2.5]), lambda x: -np.sin(x), lambda x: -np.cos(x)),
    "tan": (np.array([-1.1, 0.2, 1.3]), lambda x: _sec(x),
            lambda x: 2 * np.tan(x) * _sec(x)),
    "arcsin": (np.array([-0.8, 0.1, 0.6]), lambda x: 1 / np.sqrt(1 - x ** 2),
               lambda x: x / (1 - x ** 2) ** 1.5),
    "arccos": (np.array([-0.8, 0.1, 0.6]), lambda x: -1 / np.sqrt(1 - x ** 2),
               lambda x: -x / (1 - x ** 2) ** 1.5),
    "arctan": (np.array([-1.3, 0.2, 2.5]), lambda x: 1 / (1 + x ** 2),
               lambda x: -2 * x / (1 + x ** 2) ** 2),
    "sinh": (np.array([-1.3, 0.2, 2.5]), np.cosh, np.sinh),
    "cosh": (np.array([-1.3, 0.2, 2.5]), np.sinh, np.cosh),
    "tanh": (np.array([-1.3, 0.2, 2.5]), lambda x: 1 - np.tanh(x) ** 2,
             lambda x: -2 * np.tanh(x) * (1 - np.tanh(x) ** 2)),
    "abs": (np.array([-1.3, 0.2, 2.5]), np.sign, lambda x: 0 * x),
}

NUMPY_OF = {"neg": np.negative, "abs": np.abs}


def test_every_unary_primitive_is_covered():
    differentiable = {n for n in pyad.ops.names_of_kind("unary") if pyad.ops.OPS[n].differentiable}
    assert differentiable == set(UNARY)  # stop_gradient: tests/test_value_guard.py


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_primitive_second_derivative(backend, name):
    x, d1, d2 = UNARY[name]
    op = getattr(pyad, name)
    f = lambda z: np.sum(op(z))
    tape = pyad.trace(f, x, backend=backend)
    assert tape.stats()["ops"].get(name, 0) == x.size, tape.stats()["ops"]
    H = tape.hessian(x)
    np.testing.assert_allclose(H, np.diag(d2(x)), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(tape.gradient(x), d1(x), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(pyad.hessian(f, backend=backend)(x), np.diag(d2(x)),
                               rtol=1e-13, atol=1e-15)
    # a tangent flowing through the op into a product: (op^2)'' = 2 op'^2 + 2 op op''
    y = getattr(np, name, NUMPY_OF.get(name))(x)
    g = lambda z: np.sum(op(z) * op(z))
    H2 = pyad.hessian(g, backend=backend)(x)
    np.testing.assert_allclose(H2, np.diag(2 * d1(x) ** 2 + 2 * y * d2(x)), rtol=1e-12,
                               atol=1e-14)
    # off the diagonal: op(x0) * x1 has d2/dx0dx1 = op'(x0)
    k = lambda z: op(z[0]) * z[1]
    H3 = pyad.hessian(k, backend=backend)(x[:2])
    np.testing.assert_allclose(H3, [[d2(x[:1])[0] * x[1], d1(x[:1])[0]],
                                    [d1(x[:1])[0], 0.0]], rtol=1e-13, atol=1e-15)
    # and through the numpy protocol, on a scalar input
    s = float(x[-1])
    np.testing.assert_allclose(pyad.hessian(lambda z: op(z), backend=backend)(s),
                               d2(x[-1:])[0], rtol=1e-13, atol=1e-15)


def test_sum_of_all_unary_primitives_has_the_analytic_diagonal(backend):
    names = sorted(UNARY)
    xs = np.array([UNARY[n][0][1] for n in names])

    def f(x):
        total = 0.0
        for i, n in enumerate(names):
            total = total + getattr(pyad, n)(x[i])
        return total

    H = pyad.hessian(f, backend=backend)(xs)
    expected = np.diag([UNARY[n][2](UNARY[n][0][1:2])[0] for n in names])
    np.testing.assert_allclose(H, expected, rtol=1e-13, atol=1e-15)
    assert np.array_equal(H, H.T)


def _pow_h(a, b):
    return np.array([[b * (b - 1) * a ** (b - 2), a ** (b - 1) * (1 + b * np.log(a))],
                     [a ** (b - 1) * (1 + b * np.log(a)), a ** b * np.log(a) ** 2]])


def _atan2_h(y, x):
    r4 = (x * x + y * y) ** 2
    return np.array([[-2 * x * y / r4, (y * y - x * x) / r4],
                     [(y * y - x * x) / r4, 2 * x * y / r4]])


# name -> (f of a length-2 active vector, point, closed-form 2x2 Hessian)
BINARY = {
    "add": (lambda z: z[0] + z[1], [0.7, -1.2], lambda a, b: np.zeros((2, 2))),
    "sub": (lambda z: z[0] - z[1], [0.7, -1.2], lambda a, b: np.zeros((2, 2))),
    "mul": (lambda z: z[0] * z[1], [0.7, -1.2], lambda a, b: np.array([[0, 1.0], [1.0, 0]])),
    "div": (lambda z: z[0] / z[1], [0.7, -1.2],
            lambda a, b: np.array([[0, -1 / b ** 2], [-1 / b ** 2, 2 * a / b ** 3]])),
    "pow": (lambda z: z[0] ** z[1], [1.7, 2.3], _pow_h),
    "arctan2": (lambda z: pyad.arctan2(z[0], z[1]), [0.7, -1.2], _atan2_h),
    "maximum": (lambda z: pyad.maximum(z[0], z[1]), [0.7, -1.2], lambda a, b: np.zeros((2, 2))),
    "minimum": (lambda z: pyad.minimum(z[0], z[1]), [0.7, -1.2], lambda a, b: np.zeros((2, 2))),
}


def test_every_binary_primitive_is_covered():
    assert set(pyad.ops.names_of_kind("binary")) == set(BINARY)


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_primitive_hessian(backend, name):
    f, x, Hf = BINARY[name]
    x = np.array(x)
    tape = pyad.trace(f, x, backend=backend)
    assert tape.stats()["ops"].get(name, 0) == 1, tape.stats()["ops"]
    H = tape.hessian(x)
    np.testing.assert_allclose(H, Hf(*x), rtol=1e-13, atol=1e-15)
    assert np.array_equal(H, H.T)
    x2 = x * 1.1
    np.testing.assert_allclose(tape.hessian(x2), Hf(*x2), rtol=1e-13, atol=1e-15)


def test_max_min_hessian_carry_the_tangent_of_the_winner(backend):
    # max(a, b)^3 with a > b: d2/da2 = 6 a, nothing for b
    x = np.array([0.7, -1.2])
    H = pyad.hessian(lambda z: pyad.maximum(z[0], z[1]) ** 3, backend=backend)(x)
    np.testing.assert_allclose(H, [[6 * 0.7, 0.0], [0.0, 0.0]], rtol=1e-13, atol=1e-15)
    H = pyad.hessian(lambda z: pyad.minimum(z[0], z[1]) ** 3, backend=backend)(x)
    np.testing.assert_allclose(H, [[0.0, 0.0], [0.0, 6 * -1.2]], rtol=1e-13, atol=1e-15)


LN2 = np.log(2.0)
# name -> (f of one active scalar with a constant, point, closed-form second derivative)
WITH_CONST = {
    "add_c": (lambda z: (z + 3.0) * z, 0.7, lambda x: 2.0),
    "sub_c": (lambda z: (z - 3.0) * z, 0.7, lambda x: 2.0),
    "mul_c": (lambda z: (z * 3.0) * z, 0.7, lambda x: 6.0),
    "div_c": (lambda z: (z / 4.0) * z, 0.7, lambda x: 0.5),
    "rsub_c": (lambda z: (3.0 - z) * z, 0.7, lambda x: -2.0),
    "rdiv_c": (lambda z: 3.0 / z, 0.7, lambda x: 6.0 / x ** 3),
    "pow_c": (lambda z: z ** 2.5, 0.7, lambda x: 2.5 * 1.5 * x ** 0.5),
    "rpow_c": (lambda z: 2.0 ** z, 0.7, lambda x: 2.0 ** x * LN2 ** 2),
    "maximum_c": (lambda z: pyad.maximum(z, 0.2) ** 3, 0.7, lambda x: 6 * x),
    "minimum_c": (lambda z: pyad.minimum(z, 0.2) ** 3, -0.7, lambda x: 6 * x),
}


def test_every_with_const_primitive_is_covered():
    assert set(pyad.ops.names_of_kind("with_const")) == set(WITH_CONST)


@pytest.mark.parametrize("name", sorted(WITH_CONST))
def test_with_const_primitive_second_derivative(backend, name):
    f, x, d2 = WITH_CONST[name]
    tape = pyad.trace(f, x, backend=backend)
    assert tape.stats()["ops"].get(name, 0) == 1, tape.stats()["ops"]
    for p in (x, x * 1.3):
        H = tape.hessian(p)
        assert np.shape(H) == ()          # x.shape + x.shape for a scalar input
        np.testing.assert_allclose(H, d2(p), rtol=1e-13, atol=1e-15)
