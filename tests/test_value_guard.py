"""Reading a concrete value while recording (.value, pyad.value) records a
guard; pyad.stop_gradient is the recorded op for a value without derivative."""
import numpy as np
import pytest

import pyad

scipy_optimize = pytest.importorskip("scipy.optimize")


# ---- .value while recording is guarded ----

def test_value_read_in_a_traced_function_follows_the_replay_point(backend):
    for read in (lambda x: x.value, pyad.value):
        tape = pyad.trace(lambda x: x * read(x), 2.0, backend=backend)
        assert tape() == 4.0
        assert tape(3.0) == 9.0  # frozen at record time this gave 6
        assert tape.gradient(3.0) == 3.0  # the read value is a constant: d(x * c)/dx = c
        assert tape.retraces == 1
        assert tape(3.0) == 9.0 and tape.retraces == 1  # recorded at 3 now


def test_value_read_on_a_plain_tape_raises_branch_error_elsewhere(backend):
    with pyad.Tape(backend) as tape:
        x = tape.input(2.0)
        tape.output(x * x.value)
    assert tape(2.0) == 4.0 and tape.gradient(2.0) == 2.0
    with pytest.raises(pyad.BranchError, match=r"\.value"):
        tape(3.0)
    with pytest.raises(pyad.BranchError):
        tape.gradient(2.5)
    with pytest.raises(pyad.BranchError):
        tape.hvp(3.0, 1.0)


def test_value_read_after_recording_records_nothing(backend):
    with pyad.Tape(backend) as tape:
        x = tape.input(2.0)
        y = tape.output(x * x)
        v = tape.input(np.array([1.0, 2.0]))
        w = tape.output(v * 2.0)
    n = tape.n_ops
    assert y.value == 4.0 and pyad.value(y) == 4.0 and repr(y) == f"Scalar(4.0, slot={y.slot})"
    np.testing.assert_array_equal(w.value, [2.0, 4.0])
    assert tape.n_ops == n
    np.testing.assert_array_equal(tape(3.0, np.array([5.0, 6.0]))[1], [10.0, 12.0])


def test_repr_while_recording_records_no_guard(backend):
    with pyad.Tape(backend) as tape:
        x = tape.input(2.0)
        a = tape.input(np.array([1.0, 2.0]))
        n = tape.n_slots
        repr(x), repr(x > 1.0), repr(a), repr(a > 1.0)
        assert tape.n_slots == n + 3  # the three comparisons, no guard
        tape.output(x * 2.0)
    assert tape(5.0, np.zeros(2)) == 10.0


def test_array_value_guards_each_element(backend):
    def f(x):
        return np.sum(x * x.value)

    tape = pyad.trace(f, np.array([1.0, 2.0]), backend=backend)
    assert tape(np.array([1.0, 3.0])) == 10.0
    np.testing.assert_array_equal(tape.gradient(np.array([3.0, 1.0])), [3.0, 1.0])
    with pyad.Tape(backend) as plain:
        x = plain.input(np.array([1.0, 2.0]))
        plain.output(f(x))
    with pytest.raises(pyad.BranchError):
        plain(np.array([1.0, 2.5]))  # the second element moved
    with pytest.raises(pyad.BranchError):
        plain(np.array([0.0, 2.0]))  # the first element moved
    assert plain(np.array([1.0, 2.0])) == 5.0


def test_value_guard_of_nan_holds_only_at_nan(backend):
    with pyad.Tape(backend) as tape:
        x = tape.input(float("nan"))
        v = x.value
        tape.output(x + 1.0)
    assert v != v
    assert np.isnan(tape(float("nan")))
    with pytest.raises(pyad.BranchError):
        tape(1.0)


def test_value_guards_in_a_batch_re_record_per_point(backend):
    tape = pyad.trace(lambda x: x * x.value, 2.0, backend=backend)
    X = np.array([2.0, 3.0, -1.0])
    np.testing.assert_array_equal(tape(X, batch=True), X * X)
    np.testing.assert_array_equal(tape.gradient(X, batch=True), X)


# ---- stop_gradient ----

def test_stop_gradient_value_and_derivatives_of_a_scalar(backend):
    f = lambda x: x * pyad.stop_gradient(x) + pyad.sin(pyad.stop_gradient(x))  # noqa: E731
    tape = pyad.trace(f, 2.0, backend=backend)
    for x in (2.0, 3.0, -0.5):
        assert tape(x) == pytest.approx(x * x + np.sin(x), rel=1e-15)
        assert tape.gradient(x) == x  # only the first factor carries a derivative
        assert tape.hvp(x, 1.0) == 0.0  # the gradient stop(x) has derivative 0
    assert tape.retraces == 0  # a recorded op replays everywhere
    assert pyad.grad(f, backend=backend)(3.0) == 3.0
    assert pyad.hessian(lambda x: pyad.stop_gradient(x) ** 3 + x * x, backend=backend)(1.5) \
        == pytest.approx(2.0)
    _, tangent = pyad.jvp(lambda x: pyad.stop_gradient(x * x), 2.0, 1.0, backend=backend)
    assert tangent == 0.0


def test_stop_gradient_batched_and_jacobian_of_arrays(backend):
    def f(x):
        return x * pyad.stop_gradient(x) - pyad.stop_gradient(np.sum(x))

    x0 = np.array([1.0, -2.0, 3.0])
    jac = pyad.jacobian(f, backend=backend)(x0)
    np.testing.assert_array_equal(jac, np.diag(x0))
    tape = pyad.trace(lambda x: np.sum(f(x) * x), x0, backend=backend)
    X = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 4.0]])
    # d/dx_i of x_i^2 stop(x_i) - stop(sum x) x_i = 2 x_i stop(x_i) - stop(sum x)
    want = 2 * X * X - X.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(tape.gradient(X, batch=True), want, rtol=1e-15)
    # second order: H = diag(2 stop(x)) -> H v = 2 x v
    v = np.array([1.0, 0.0, -1.0])
    np.testing.assert_allclose(tape.hvp(X, np.tile(v, (2, 1)), batch=True), 2 * X * v,
                               rtol=1e-15)
    np.testing.assert_allclose(tape.hvp(X[1], v), 2 * X[1] * v, rtol=1e-15)
    assert tape.retraces == 0


def test_stop_gradient_of_constants_and_lists(backend):
    assert pyad.stop_gradient(2.5) == 2.5
    a = np.array([1.0, 2.0])
    assert pyad.stop_gradient(a) is a
    g = pyad.grad(lambda x: np.sum(pyad.stop_gradient([x[0], 2.0 * x[1]]) * x),
                  backend=backend)(np.array([3.0, 4.0]))
    np.testing.assert_array_equal(g, [3.0, 8.0])


def test_stop_gradient_replay_in_the_teaching_table(backend):
    tape = pyad.trace(lambda x: pyad.stop_gradient(x) * x, 2.0, backend=backend)
    rows = tape.table(3.0).rows
    assert [row["op"] for row in rows][1] == "stop_gradient(v_0)"


# ---- an IRLS objective through pyad.minimize ----

A = np.array([0.0, 1.0, 10.0])
D = 0.1


def smooth_l1(x):
    return np.sum(np.sqrt((x[0] - A) ** 2 + D))


def irls_with_value(x):
    """The majorizer of smooth_l1 at the point itself: weights from .value. Equal
    to smooth_l1 with the same gradient at every point where it is re-recorded."""
    s0 = np.sqrt((x[0].value - A) ** 2 + D)
    return np.sum(0.5 * s0 + 0.5 * ((x[0] - A) ** 2 + D) / s0)


def irls_with_stop_gradient(x):
    s0 = pyad.stop_gradient(pyad.sqrt((x[0] - A) ** 2 + D))
    return np.sum(0.5 * s0 + 0.5 * ((x[0] - A) ** 2 + D) / s0)


def _true_minimizer():
    grad = lambda t: np.sum((t - A) / np.sqrt((t - A) ** 2 + D))  # noqa: E731
    return scipy_optimize.brentq(grad, -5.0, 15.0, xtol=1e-14)


@pytest.mark.parametrize("objective", [irls_with_value, irls_with_stop_gradient])
def test_irls_objective_converges_to_the_right_point(backend, objective):
    best = _true_minimizer()
    frozen = np.sum(A / np.sqrt((5.0 - A) ** 2 + D)) / np.sum(1 / np.sqrt((5.0 - A) ** 2 + D))
    assert abs(best - frozen) > 1.0  # what freezing the weights at x0 = 5 converged to
    res = pyad.minimize(objective, np.array([5.0]), method="BFGS", backend=backend)
    assert res.success
    assert res.x[0] == pytest.approx(best, abs=1e-5)
    assert res.fun == pytest.approx(smooth_l1(np.array([best])), rel=1e-9)
