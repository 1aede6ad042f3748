"""The active Scalar: operator overloading, numpy interplay, the transforms'
shapes and argnums, tape facts, the .value escape hatch and recorded branches."""
import math

import numpy as np
import pytest

import pyad
from helpers import central_diff_grad


def grad1(f, x, backend):
    """(value, derivative) of scalar f at scalar x, through an explicit tape."""
    with pyad.Tape(backend=backend) as tape:
        a = tape.input(x)
        y = f(a)
        assert isinstance(y, pyad.Scalar), f"result is {type(y).__name__}, not active"
        tape.output(y)
    return tape(), tape.gradient()


# (spelling, exact value, exact derivative) at x
X = 1.7
OPERATOR_CASES = {
    "x + 2.5": (lambda x: x + 2.5, X + 2.5, 1.0),
    "2.5 + x": (lambda x: 2.5 + x, X + 2.5, 1.0),
    "x + 3 (int)": (lambda x: x + 3, X + 3, 1.0),
    "x - 2.5": (lambda x: x - 2.5, X - 2.5, 1.0),
    "2.5 - x": (lambda x: 2.5 - x, 2.5 - X, -1.0),
    "4 - x (int)": (lambda x: 4 - x, 4 - X, -1.0),
    "x * 3.0": (lambda x: x * 3.0, 3.0 * X, 3.0),
    "3 * x (int)": (lambda x: 3 * x, 3 * X, 3.0),
    "x / 4.0": (lambda x: x / 4.0, X / 4.0, 0.25),
    "4.0 / x": (lambda x: 4.0 / x, 4.0 / X, -4.0 / X**2),
    "2 / x (int)": (lambda x: 2 / x, 2 / X, -2.0 / X**2),
    "x ** 3": (lambda x: x ** 3, X**3, 3 * X**2),
    "x ** 2": (lambda x: x ** 2, X**2, 2 * X),
    "x ** 0.5": (lambda x: x ** 0.5, X**0.5, 0.5 * X**-0.5),
    "x ** -1": (lambda x: x ** -1, 1 / X, -1 / X**2),
    "2 ** x": (lambda x: 2 ** x, 2**X, 2**X * math.log(2)),
    "3.0 ** x": (lambda x: 3.0 ** x, 3.0**X, 3.0**X * math.log(3.0)),
    "-x": (lambda x: -x, -X, -1.0),
    "+x": (lambda x: +x, X, 1.0),
    "abs(x)": (lambda x: abs(x), X, 1.0),
    "abs(-x)": (lambda x: abs(-x), X, 1.0),
    "x + x": (lambda x: x + x, 2 * X, 2.0),
    "x - x": (lambda x: x - x, 0.0, 0.0),
    "x * x": (lambda x: x * x, X * X, 2 * X),
    "x / x": (lambda x: x / x, 1.0, 0.0),
    "x ** x": (lambda x: x ** x, X**X, X**X * (math.log(X) + 1)),
    "np.float64(2.0) * x": (lambda x: np.float64(2.0) * x, 2 * X, 2.0),
    "x * np.float64(2.0)": (lambda x: x * np.float64(2.0), 2 * X, 2.0),
    "x * np.float32(3)": (lambda x: x * np.float32(3), 3 * X, 3.0),
    "np.float32(3) * x": (lambda x: np.float32(3) * x, 3 * X, 3.0),
    "np.float64(1.5) - x": (lambda x: np.float64(1.5) - x, 1.5 - X, -1.0),
    "np.float64(1.5) / x": (lambda x: np.float64(1.5) / x, 1.5 / X, -1.5 / X**2),
    "x / np.float32(0.5)": (lambda x: x / np.float32(0.5), X / 0.5, 2.0),
    "np.int64(3) + x": (lambda x: np.int64(3) + x, 3 + X, 1.0),
    "x ** np.int64(3)": (lambda x: x ** np.int64(3), X**3, 3 * X**2),
    "np.float64(2.0) ** x": (lambda x: np.float64(2.0) ** x, 2**X, 2**X * math.log(2)),
    "x * True": (lambda x: x * True, X, 1.0),
    "np.sin(x)": (lambda x: np.sin(x), math.sin(X), math.cos(X)),
    "np.exp(x) * x": (lambda x: np.exp(x) * x, math.exp(X) * X, math.exp(X) * (X + 1)),
    "np.sqrt(x)": (lambda x: np.sqrt(x), math.sqrt(X), 0.5 / math.sqrt(X)),
    "np.power(x, 3.0)": (lambda x: np.power(x, 3.0), X**3, 3 * X**2),
    "np.hypot(x, 1.0)": (lambda x: np.hypot(x, 1.0), math.hypot(X, 1.0), X / math.hypot(X, 1.0)),
    "np.log10(x)": (lambda x: np.log10(x), math.log10(X), 1 / (X * math.log(10))),
    "pyad.sin(x) ** 2": (lambda x: pyad.sin(x) ** 2, math.sin(X) ** 2, math.sin(2 * X)),
    "x * pyad.cos(x)": (lambda x: x * pyad.cos(x), X * math.cos(X),
                        math.cos(X) - X * math.sin(X)),
}


@pytest.mark.parametrize("spelling", sorted(OPERATOR_CASES))
def test_operator_value_and_derivative(spelling, backend):
    f, value, deriv = OPERATOR_CASES[spelling]
    y, g = grad1(f, X, backend)
    assert isinstance(g, float)
    np.testing.assert_allclose(y, value, rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(g, deriv, rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize("spelling", sorted(OPERATOR_CASES))
def test_operator_replays_and_matches_central_differences(spelling, backend):
    f, _, _ = OPERATOR_CASES[spelling]
    tape = pyad.trace(f, X, backend=backend)
    for x in (0.6, 2.3):
        plain = float(f(np.float64(x)))
        np.testing.assert_allclose(tape(x), plain, rtol=1e-14, atol=1e-300)
        fd = central_diff_grad(lambda z: float(f(np.float64(z[0]))), np.array([x]))[0]
        np.testing.assert_allclose(tape.gradient(x), fd, rtol=1e-6, atol=1e-8)


def test_two_active_operands_both_orders(backend):
    a0, b0 = 1.3, -0.4
    cases = {
        "a + b": (lambda a, b: a + b, (1.0, 1.0)),
        "a - b": (lambda a, b: a - b, (1.0, -1.0)),
        "b - a": (lambda a, b: b - a, (-1.0, 1.0)),
        "a * b": (lambda a, b: a * b, (b0, a0)),
        "a / b": (lambda a, b: a / b, (1 / b0, -a0 / b0**2)),
        "b / a": (lambda a, b: b / a, (-b0 / a0**2, 1 / a0)),
        "a ** b": (lambda a, b: a ** b, (b0 * a0 ** (b0 - 1), a0**b0 * math.log(a0))),
        "np.multiply(a, b)": (lambda a, b: np.multiply(a, b), (b0, a0)),
    }
    for name, (f, expected) in cases.items():
        g = pyad.grad(f, argnums=(0, 1), backend=backend)(a0, b0)
        np.testing.assert_allclose(g, expected, rtol=1e-14, err_msg=name)


def test_numpy_scalar_results_are_active(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(2.0)
        for r in (np.float64(2.0) * x, x * np.float32(3), np.float64(1.0) + x,
                  np.float64(1.0) - x, np.sin(x), np.maximum(x, 1.0), np.float64(3.0) ** x):
            assert isinstance(r, pyad.Scalar), type(r)
        tape.output(np.float64(2.0) * x)


def test_comparisons_are_active_bools(backend):
    with pyad.Tape(backend=backend) as tape:
        x, y = tape.input([1.0, 2.0])
        results = {
            "x < y": (x < y, 1.0), "x <= y": (x <= y, 1.0), "x > y": (x > y, 0.0),
            "x >= y": (x >= y, 0.0), "x == y": (x == y, 0.0), "x != y": (x != y, 1.0),
            "x < 1.5": (x < 1.5, 1.0), "1.5 < x": (1.5 < x, 0.0), "x == 1": (x == 1, 1.0),
            "x >= 1": (x >= 1, 1.0), "2.0 > y": (2.0 > y, 0.0),
            "np.float64(0.5) < x": (np.float64(0.5) < x, 1.0),
        }
        for name, (r, expected) in results.items():
            assert isinstance(r, pyad.Bool), name
            assert r.value == expected, name
        tape.output(pyad.where(x < y, x, y))


def test_pyad_functions_on_plain_numbers_return_floats():
    for f, ref in ((pyad.sin, math.sin), (pyad.exp, math.exp), (pyad.log, math.log),
                   (pyad.sqrt, math.sqrt), (pyad.tanh, math.tanh), (pyad.arctan, math.atan)):
        r = f(0.5)
        assert isinstance(r, float), (f, type(r))
        np.testing.assert_allclose(r, ref(0.5), rtol=1e-15)
        assert isinstance(f(2), float)
    assert isinstance(pyad.maximum(1.0, 2.0), float) and pyad.maximum(1.0, 2.0) == 2.0
    assert isinstance(pyad.arctan2(1.0, 2.0), float)
    np.testing.assert_allclose(pyad.arctan2(1.0, 2.0), math.atan2(1.0, 2.0), rtol=1e-15)
    a = pyad.sin(np.array([0.0, 0.5]))
    assert isinstance(a, np.ndarray) and a.dtype == np.float64
    np.testing.assert_allclose(a, np.sin([0.0, 0.5]), rtol=1e-15)


def test_numpy_ufuncs_on_active_scalar(backend):
    def f(x):
        return np.sin(x) + np.cos(x) * np.exp(x) - np.tanh(x)

    x0 = 0.7
    g = pyad.grad(f, backend=backend)(x0)
    exact = (math.cos(x0) + math.exp(x0) * (math.cos(x0) - math.sin(x0))
             - 1 / math.cosh(x0) ** 2)
    np.testing.assert_allclose(g, exact, rtol=1e-14)


# ---------------------------------------------------------------------------
# argnums, shapes and dtypes of results
# ---------------------------------------------------------------------------

def h3(a, b, c):
    return a * b + pyad.sin(c) * a


def test_argnums_int(backend):
    a, b, c = 1.5, -2.0, 0.3
    assert pyad.grad(h3, backend=backend)(a, b, c) == b + math.sin(c)
    assert pyad.grad(h3, argnums=1, backend=backend)(a, b, c) == a
    np.testing.assert_allclose(pyad.grad(h3, argnums=2, backend=backend)(a, b, c),
                               math.cos(c) * a, rtol=1e-15)
    np.testing.assert_allclose(pyad.grad(h3, argnums=-1, backend=backend)(a, b, c),
                               math.cos(c) * a, rtol=1e-15)


def test_argnums_tuple_returns_tuple(backend):
    a, b, c = 1.5, -2.0, 0.3
    g = pyad.grad(h3, argnums=(0, 2), backend=backend)(a, b, c)
    assert isinstance(g, tuple) and len(g) == 2
    np.testing.assert_allclose(g, (b + math.sin(c), math.cos(c) * a), rtol=1e-15)
    g = pyad.grad(h3, argnums=(1,), backend=backend)(a, b, c)
    assert isinstance(g, tuple) and len(g) == 1 and g[0] == a
    g = pyad.grad(h3, argnums=(2, 0), backend=backend)(a, b, c)
    np.testing.assert_allclose(g, (math.cos(c) * a, b + math.sin(c)), rtol=1e-15)
    v, g = pyad.value_and_grad(h3, argnums=(0, 1, 2), backend=backend)(a, b, c)
    np.testing.assert_allclose(v, a * b + math.sin(c) * a, rtol=1e-15)
    assert isinstance(g, tuple) and len(g) == 3
    np.testing.assert_allclose(g, (b + math.sin(c), a, math.cos(c) * a), rtol=1e-15)


def test_argnums_mixed_shapes(backend):
    def f(w, x, s):
        return (w * x).sum() * s

    w, x, s = np.array([1.0, 2.0, 3.0]), np.array([0.5, -1.0, 2.0]), 2.0
    gw, gs = pyad.grad(f, argnums=(0, 2), backend=backend)(w, x, s)
    assert isinstance(gw, np.ndarray) and gw.shape == (3,) and gw.dtype == np.float64
    assert isinstance(gs, float)
    np.testing.assert_allclose(gw, x * s)
    np.testing.assert_allclose(gs, w @ x)


def test_scalar_input_gives_float_gradient(backend):
    for x0 in (3.0, 3, np.float64(3.0), np.array(3.0)):
        g = pyad.grad(lambda x: x * x, backend=backend)(x0)
        assert type(g) is float, type(g)
        assert g == 6.0
        v, g = pyad.value_and_grad(lambda x: x * x, backend=backend)(x0)
        assert type(g) is float and v == 9.0
    # results keep the input dtype (tests/test_transform_conventions.py)
    v, g = pyad.value_and_grad(lambda x: x * x, backend=backend)(np.float32(3.0))
    assert type(g) is np.float32 and type(v) is np.float32 and (v, g) == (9.0, 6.0)


def test_array_inputs_give_float64_arrays_of_same_shape(backend):
    f = lambda x: (x * x).sum()
    for x0 in (np.array([1.0, 2.0]), np.array([1, 2], dtype=np.int64), np.array([1, 2])):
        g = pyad.grad(f, backend=backend)(x0)
        assert isinstance(g, np.ndarray) and g.dtype == np.float64 and g.shape == (2,)
        np.testing.assert_array_equal(g, [2.0, 4.0])
    # lists and tuples are pytrees, as in JAX: one derivative per element
    g = pyad.grad(lambda x: x[0] * x[0] + x[1] * x[1], backend=backend)([1.0, 2])
    assert type(g) is list and g == [2.0, 4.0]
    x0 = np.arange(6.0).reshape(2, 3)
    g = pyad.grad(f, backend=backend)(x0)
    assert g.shape == (2, 3) and g.dtype == np.float64
    np.testing.assert_array_equal(g, 2 * x0)
    g = pyad.grad(f, backend=backend)(np.array([[1.0], [2.0], [3.0]]))
    assert g.shape == (3, 1)
    np.testing.assert_array_equal(g, [[2.0], [4.0], [6.0]])


# ---------------------------------------------------------------------------
# pyad.trace and the tape's facts
# ---------------------------------------------------------------------------

def test_trace_replays_several_arguments(backend):
    f = lambda a, b: a * pyad.exp(b) - b
    tape = pyad.trace(f, 1.0, 2.0, backend=backend)
    assert tape.n_inputs == 2 and tape.n_outputs == 1
    for a, b in ((1.0, 2.0), (3.0, -1.0), (-0.5, 0.25)):
        np.testing.assert_allclose(tape(a, b), a * math.exp(b) - b, rtol=1e-15)
        ga, gb = tape.gradient(a, b)
        np.testing.assert_allclose((ga, gb), (math.exp(b), a * math.exp(b) - 1), rtol=1e-15)
        y, t = tape.jvp((a, b), (1.0, 2.0))
        np.testing.assert_allclose(t, math.exp(b) + 2 * (a * math.exp(b) - 1), rtol=1e-14)
        y, (ua, ub) = tape.vjp((a, b), 2.0)
        np.testing.assert_allclose((ua, ub), (2 * math.exp(b), 2 * (a * math.exp(b) - 1)),
                                   rtol=1e-15)
        ha, hb = tape.hvp((a, b), (1.0, 0.0))
        np.testing.assert_allclose((ha, hb), (0.0, math.exp(b)), rtol=1e-15)


def test_trace_vector_output(backend):
    tape = pyad.trace(lambda x: pyad.stack([x[0] * x[1], pyad.sin(x[0])]), np.array([1.0, 2.0]),
                      backend=backend)
    assert tape.n_inputs == 2 and tape.n_outputs == 2
    np.testing.assert_allclose(tape(np.array([0.5, 3.0])), [1.5, math.sin(0.5)], rtol=1e-15)
    _, jv = tape.jvp(np.array([0.5, 3.0]), np.array([1.0, 0.0]))
    np.testing.assert_allclose(jv, [3.0, math.cos(0.5)], rtol=1e-15)
    _, uj = tape.vjp(np.array([0.5, 3.0]), np.array([1.0, 1.0]))
    np.testing.assert_allclose(uj, [3.0 + math.cos(0.5), 0.5], rtol=1e-15)


def test_tape_counts(backend):
    with pyad.Tape(backend=backend) as tape:
        a, b = tape.input([4.0, 3.0])
        tape.output(a * (a + b))
    assert tape.n_inputs == 2
    assert tape.n_outputs == 1
    # the two inputs (one block row) and two arithmetic ops at least; nothing like
    # one op per byte
    assert 3 <= tape.n_ops <= 8 and tape.n_slots >= 4
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.zeros(5))
        s = tape.input(1.0)
        tape.output(x * s)
        tape.output(s)
    assert tape.n_inputs == 6 and tape.n_outputs == 6
    # six input slots, five products; x and x * s are one block row each (s broadcast)
    assert tape.n_slots >= 6 + 5
    assert tape.n_ops >= 2 + 1


def test_n_ops_grows_with_the_program(backend):
    def f(x, n):
        for _ in range(n):
            x = pyad.sin(x) * 1.5
        return x

    t10 = pyad.trace(lambda x: f(x, 10), 0.5, backend=backend)
    t20 = pyad.trace(lambda x: f(x, 20), 0.5, backend=backend)
    assert t20.n_ops - t10.n_ops == 20  # sin and mul_c per iteration
    assert t10.n_ops >= 21


def test_nbytes_is_compact(backend):
    n = 10_000

    def f(x):
        s = x
        for _ in range(n // 2):
            s = pyad.sin(s) * 0.999 + x
        return s

    tape = pyad.trace(f, 0.3, backend=backend)
    assert tape.n_ops >= n
    assert tape.nbytes <= 32 * tape.n_ops + 4096, (tape.nbytes, tape.n_ops)
    assert tape.nbytes >= 9 * tape.n_ops  # at least an op code and a value per op
    # and the long tape still gives the right derivative (by central differences)
    ref = lambda z: float(f(np.float64(z[0])))
    np.testing.assert_allclose(tape.gradient(0.4), central_diff_grad(ref, np.array([0.4]))[0],
                               rtol=1e-6)


def test_value_escape_hatch(backend):
    def f(x):
        c = x.value  # a plain float: no derivative flows through it
        assert isinstance(c, float)
        return x * c

    assert pyad.grad(f, backend=backend)(3.0) == 3.0  # not 2x = 6
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.array([1.0, 2.0]))
        v = x.value
        assert isinstance(v, np.ndarray) and v.dtype == np.float64
        np.testing.assert_array_equal(v, [1.0, 2.0])
        y = (x * x).sum()
        assert y.value == 5.0
        tape.output(y)
    assert pyad.value(y) == 5.0
    assert pyad.value(2.5) == 2.5


# ---------------------------------------------------------------------------
# Branches: guards, retracing, and pyad.where
# ---------------------------------------------------------------------------

def branchy(x):
    if x > 0:
        return x * x
    return -3.0 * x


def test_branch_on_explicit_tape_raises_when_it_flips(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(1.0)
        tape.output(branchy(x))
    assert tape(2.0) == 4.0 and tape.gradient(2.0) == 4.0
    for call in (lambda: tape(-1.0), lambda: tape.gradient(-1.0),
                 lambda: tape.jvp(-1.0, 1.0), lambda: tape.hvp(-1.0, 1.0),
                 lambda: tape.vjp(-1.0, 1.0)):
        with pytest.raises(pyad.BranchError):
            call()
    # the tape is still usable on the recorded side
    assert tape(3.0) == 9.0 and tape.gradient(3.0) == 6.0


def test_branch_with_retrace_false_raises(backend):
    tape = pyad.trace(branchy, 1.0, backend=backend, retrace=False)
    assert tape.gradient(0.5) == 1.0
    with pytest.raises(pyad.BranchError):
        tape(-2.0)
    with pytest.raises(pyad.BranchError):
        tape.gradient(-2.0)
    assert tape.retraces == 0


def test_branch_with_trace_retraces(backend):
    tape = pyad.trace(branchy, 1.0, backend=backend)
    assert tape.retraces == 0
    assert tape(-1.0) == 3.0
    assert tape.retraces == 1
    assert tape.gradient(-2.0) == -3.0
    assert tape.retraces == 1  # same side: no new recording
    assert tape.gradient(3.0) == 6.0
    assert tape.retraces == 2
    y, t = tape.jvp(-0.5, 2.0)
    assert (y, t) == (1.5, -6.0) and tape.retraces == 3
    assert tape.hvp(4.0, 1.0) == 2.0 and tape.retraces == 4
    assert tape.hvp(5.0, 1.0) == 2.0 and tape.retraces == 4


def test_branch_on_truthiness_records_guard(backend):
    def f(x):
        if x:  # x != 0
            return x * 2.0
        return x + 1.0

    tape = pyad.trace(f, 1.0, backend=backend, retrace=False)
    assert tape(5.0) == 10.0
    with pytest.raises(pyad.BranchError):
        tape(0.0)
    tape = pyad.trace(f, 1.0, backend=backend)
    assert tape(0.0) == 1.0 and tape.retraces == 1
    assert tape.gradient(0.0) == 1.0


def test_branch_on_array_element(backend):
    def f(x):
        return x[0] * x[1] if x[0] < x[1] else x[0] - x[1]

    tape = pyad.trace(f, np.array([1.0, 2.0]), backend=backend, retrace=False)
    np.testing.assert_array_equal(tape.gradient(np.array([0.0, 5.0])), [5.0, 0.0])
    with pytest.raises(pyad.BranchError):
        tape.gradient(np.array([3.0, 2.0]))
    tape = pyad.trace(f, np.array([1.0, 2.0]), backend=backend)
    np.testing.assert_array_equal(tape.gradient(np.array([3.0, 2.0])), [1.0, -1.0])
    assert tape.retraces == 1


def test_where_replays_both_sides_without_retrace(backend):
    f = lambda x: pyad.where(x > 0, x * x, -3.0 * x)
    for retrace in (True, False):
        tape = pyad.trace(f, 1.0, backend=backend, retrace=retrace)
        for x in (2.0, -1.0, 0.5, -4.0, 0.0):
            expected = x * x if x > 0 else -3.0 * x
            assert tape(x) == expected
            assert tape.gradient(x) == (2 * x if x > 0 else -3.0)
            assert tape.jvp(x, 1.0)[1] == (2 * x if x > 0 else -3.0)
            assert tape.hvp(x, 1.0) == (2.0 if x > 0 else 0.0)
        assert tape.retraces == 0


def test_where_abs_like(backend):
    tape = pyad.trace(lambda x: pyad.where(x > 0, x, -x), 2.0, backend=backend)
    assert tape(-3.0) == 3.0 and tape.gradient(-3.0) == -1.0
    assert tape(3.0) == 3.0 and tape.gradient(3.0) == 1.0
    assert tape.retraces == 0


def test_branch_retrace_with_two_arguments(backend):
    def f(a, c):
        if a > c:
            return a * c
        return a - 2.0 * c

    tape = pyad.trace(f, 2.0, 1.0, backend=backend)
    assert tape(0.0, 1.0) == -2.0 and tape.retraces == 1
    assert tape.gradient(0.0, 1.0) == (1.0, -2.0) and tape.retraces == 1
    v, g = tape.value_and_gradient(5.0, 2.0)
    assert (v, g) == (10.0, (2.0, 5.0)) and tape.retraces == 2
    strict = pyad.trace(f, 2.0, 1.0, backend=backend, retrace=False)
    assert strict(3.0, 1.0) == 3.0
    with pytest.raises(pyad.BranchError):
        strict(0.0, 1.0)
    with pytest.raises(pyad.BranchError):
        strict.value_and_gradient(0.0, 1.0)
