"""Worked examples of the classic AD texts, and a small ODE integrator."""
import math

import numpy as np

import pyad
from helpers import central_diff_grad, central_diff_jvp


# ---------------------------------------------------------------------------
# y = ln(x1) + x1*x2 - sin(x2) at (2, 5)  (Griewank & Walther's example)
# ---------------------------------------------------------------------------

def f_vec(x):
    return pyad.log(x[0]) + x[0] * x[1] - pyad.sin(x[1])


def f_two(x1, x2):
    return pyad.log(x1) + x1 * x2 - pyad.sin(x2)


def y_exact(x1, x2):
    return math.log(x1) + x1 * x2 - math.sin(x2)


def g_exact(x1, x2):
    return np.array([1.0 / x1 + x2, x1 - math.cos(x2)])


X0 = np.array([2.0, 5.0])
G0 = np.array([5.5, 2.0 - math.cos(5.0)])


def test_textbook_gradient(backend):
    g = pyad.grad(f_vec, backend=backend)(X0)
    assert isinstance(g, np.ndarray) and g.shape == (2,) and g.dtype == np.float64
    assert g[0] == 5.5
    np.testing.assert_allclose(g, G0, rtol=1e-14)
    np.testing.assert_allclose(g[1], 1.716337814536774, rtol=1e-12)


def test_textbook_value_and_grad(backend):
    v, g = pyad.value_and_grad(f_vec, backend=backend)(X0)
    np.testing.assert_allclose(v, y_exact(2.0, 5.0), rtol=1e-14)
    np.testing.assert_allclose(g, G0, rtol=1e-14)


def test_textbook_two_arguments_argnums(backend):
    g1, g2 = pyad.grad(f_two, argnums=(0, 1), backend=backend)(2.0, 5.0)
    assert isinstance(g1, float) and isinstance(g2, float)
    assert g1 == 5.5
    np.testing.assert_allclose(g2, 2.0 - math.cos(5.0), rtol=1e-14)
    assert pyad.grad(f_two, backend=backend)(2.0, 5.0) == 5.5
    np.testing.assert_allclose(pyad.grad(f_two, argnums=1, backend=backend)(2.0, 5.0),
                               G0[1], rtol=1e-14)


def test_textbook_jvp_in_unit_directions(backend):
    for i, e in enumerate(np.eye(2)):
        y, t = pyad.jvp(f_vec, X0, e, backend=backend)
        np.testing.assert_allclose(y, y_exact(2.0, 5.0), rtol=1e-14)
        np.testing.assert_allclose(t, G0[i], rtol=1e-14)
    y, t = pyad.jvp(f_vec, X0, np.array([1.0, -2.0]), backend=backend)
    np.testing.assert_allclose(t, G0 @ [1.0, -2.0], rtol=1e-14)


def test_textbook_vjp(backend):
    y, g = pyad.vjp(f_vec, X0, 1.0, backend=backend)
    np.testing.assert_allclose(y, y_exact(2.0, 5.0), rtol=1e-14)
    np.testing.assert_allclose(g, G0, rtol=1e-14)
    y, g = pyad.vjp(f_vec, X0, -3.0, backend=backend)
    np.testing.assert_allclose(g, -3.0 * G0, rtol=1e-14)


def test_textbook_explicit_tape(backend):
    with pyad.Tape(backend=backend) as tape:
        x1, x2 = tape.input([2.0, 5.0])
        y = pyad.log(x1) + x1 * x2 - pyad.sin(x2)
        tape.output(y)
    assert tape.n_inputs == 2 and tape.n_outputs == 1
    np.testing.assert_allclose(tape(), y_exact(2.0, 5.0), rtol=1e-14)
    np.testing.assert_allclose(tape.gradient(), G0, rtol=1e-14)
    np.testing.assert_allclose(y.value, y_exact(2.0, 5.0), rtol=1e-14)


def test_textbook_hvp(backend):
    # H = [[-1/x1^2, 1], [1, sin(x2)]]
    H = np.array([[-0.25, 1.0], [1.0, math.sin(5.0)]])
    for v in (np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([0.3, -1.2])):
        np.testing.assert_allclose(pyad.hvp(f_vec, X0, v, backend=backend), H @ v, rtol=1e-14,
                                   atol=1e-15)


def test_textbook_replay_at_new_points(backend):
    tape = pyad.trace(f_vec, X0, backend=backend)
    for p in ([1.0, 1.0], [0.5, -2.0], [10.0, 3.25], [2.0, 5.0], [3.0, 0.0]):
        p = np.array(p)
        np.testing.assert_allclose(tape(p), y_exact(*p), rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(tape.gradient(p), g_exact(*p), rtol=1e-14, atol=1e-15)
        y, g = tape.value_and_gradient(p)
        np.testing.assert_allclose(y, y_exact(*p), rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(g, g_exact(*p), rtol=1e-14, atol=1e-15)
    # the tape still answers at the recorded point afterwards
    np.testing.assert_allclose(tape.gradient(X0), G0, rtol=1e-14)
    assert tape.retraces == 0


def test_textbook_replay_two_argument_tape(backend):
    tape = pyad.trace(f_two, 2.0, 5.0, backend=backend)
    for p in ((1.0, 1.0), (0.5, -2.0), (10.0, 3.25)):
        np.testing.assert_allclose(tape(*p), y_exact(*p), rtol=1e-14)
        g = tape.gradient(*p)
        assert isinstance(g, tuple) and len(g) == 2
        np.testing.assert_allclose(g, g_exact(*p), rtol=1e-14)


# ---------------------------------------------------------------------------
# d = a * (a + b) at (4, 3)
# ---------------------------------------------------------------------------

def test_a_times_a_plus_b_explicit_tape(backend):
    with pyad.Tape(backend=backend) as tape:
        a, b = tape.input([4.0, 3.0])
        c = a + b
        d = a * c
        tape.output(d)
    assert d.value == 28.0
    np.testing.assert_array_equal(tape.gradient(), [11.0, 4.0])
    assert tape() == 28.0
    # replay: d = a^2 + ab, grad (2a + b, a)
    for a0, b0 in ((1.0, 2.0), (-3.0, 0.5), (0.0, 0.0), (1e3, -7.0)):
        p = np.array([a0, b0])
        assert tape(p) == a0 * (a0 + b0)
        np.testing.assert_allclose(tape.gradient(p), [2 * a0 + b0, a0], rtol=1e-15)
        np.testing.assert_allclose(tape.jvp(p, np.array([1.0, 0.0]))[1], 2 * a0 + b0,
                                   rtol=1e-15)
        np.testing.assert_allclose(tape.jvp(p, np.array([0.0, 1.0]))[1], a0, rtol=1e-15)
        np.testing.assert_allclose(tape.hvp(p, np.array([1.0, 0.0])), [2.0, 1.0])
        np.testing.assert_allclose(tape.hvp(p, np.array([0.0, 1.0])), [1.0, 0.0])


def test_a_times_a_plus_b_scalar_inputs(backend):
    with pyad.Tape(backend=backend) as tape:
        a = tape.input(4.0)
        b = tape.input(3.0)
        tape.output(a * (a + b))
    ga, gb = tape.gradient()
    assert (ga, gb) == (11.0, 4.0)
    assert tape.gradient(1.0, 2.0) == (4.0, 1.0)
    assert tape(1.0, 2.0) == 3.0


# ---------------------------------------------------------------------------
# Lorenz-63, integrated by RK4 in plain scalar Python
# ---------------------------------------------------------------------------

def lorenz_rk4(p, steps=40, dt=0.01):
    """Final x*y + z of Lorenz-63 from (x0, y0, z0) with parameters (sigma, rho, beta)."""
    x, y, z, sigma, rho, beta = p[0], p[1], p[2], p[3], p[4], p[5]

    def rhs(x, y, z):
        return sigma * (y - x), x * (rho - z) - y, x * y - beta * z

    for _ in range(steps):
        k1 = rhs(x, y, z)
        k2 = rhs(x + 0.5 * dt * k1[0], y + 0.5 * dt * k1[1], z + 0.5 * dt * k1[2])
        k3 = rhs(x + 0.5 * dt * k2[0], y + 0.5 * dt * k2[1], z + 0.5 * dt * k2[2])
        k4 = rhs(x + dt * k3[0], y + dt * k3[1], z + dt * k3[2])
        x = x + dt / 6.0 * (k1[0] + 2.0 * k2[0] + 2.0 * k3[0] + k4[0])
        y = y + dt / 6.0 * (k1[1] + 2.0 * k2[1] + 2.0 * k3[1] + k4[1])
        z = z + dt / 6.0 * (k1[2] + 2.0 * k2[2] + 2.0 * k3[2] + k4[2])
    return x * y + z


P0 = np.array([1.0, 1.0, 1.0, 10.0, 28.0, 8.0 / 3.0])


def test_lorenz_value_and_gradient(backend):
    ref = lambda p: lorenz_rk4(np.asarray(p, dtype=float))
    v, g = pyad.value_and_grad(lorenz_rk4, backend=backend)(P0)
    np.testing.assert_allclose(v, ref(P0), rtol=1e-13)
    fd = central_diff_grad(ref, P0)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6 * np.max(np.abs(fd)))


def test_lorenz_replay_and_directional_derivatives(backend, rng):
    ref = lambda p: lorenz_rk4(np.asarray(p, dtype=float))
    tape = pyad.trace(lorenz_rk4, P0, backend=backend)
    assert tape.n_inputs == 6 and tape.n_outputs == 1
    for _ in range(2):
        p = P0 + rng.uniform(-0.3, 0.3, size=6)
        np.testing.assert_allclose(tape(p), ref(p), rtol=1e-12)
        g = tape.gradient(p)
        fd = central_diff_grad(ref, p)
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6 * np.max(np.abs(fd)))
        v = rng.standard_normal(6)
        _, jv = tape.jvp(p, v)
        np.testing.assert_allclose(jv, g @ v, rtol=1e-12, atol=1e-12 * np.abs(g).sum())
        np.testing.assert_allclose(jv, central_diff_jvp(ref, p, v), rtol=1e-6,
                                   atol=1e-6 * np.abs(g).sum())
        # HVP against central differences of the replayed gradient
        h = 1e-5
        hv_fd = (tape.gradient(p + h * v) - tape.gradient(p - h * v)) / (2 * h)
        hv = tape.hvp(p, v)
        np.testing.assert_allclose(hv, hv_fd, rtol=1e-5, atol=1e-5 * np.max(np.abs(hv_fd)))
    assert tape.retraces == 0
