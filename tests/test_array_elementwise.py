"""Elementwise operations on whole active arrays, with numpy broadcasting.

Oracles: numpy values; closed-form derivatives written here; central
differences; forward (jvp) vs reverse (vjp) agreement; tape.hvp vs finite
differences of the gradient.
"""
import numpy as np
import pytest

import pyad
from helpers import central_diff_grad, central_diff_jvp


def _rng(seed=0):
    return np.random.default_rng(seed)


def _fd_hvp(grad_fn, x, v, h=1e-5):
    return (grad_fn(x + h * v) - grad_fn(x - h * v)) / (2 * h)


# ---- unary functions: value, closed-form derivative, second derivative ---------

# name, pyad function, numpy function, derivative, domain (low, high)
UNARY = [
    ("neg", lambda x: -x, np.negative, lambda x: -np.ones_like(x), (-2, 2)),
    ("abs", abs, np.abs, np.sign, (-2, 2)),
    ("square", lambda x: x ** 2, np.square, lambda x: 2 * x, (-2, 2)),
    ("reciprocal", pyad.reciprocal, np.reciprocal, lambda x: -1 / x ** 2, (0.5, 2)),
    ("exp", pyad.exp, np.exp, np.exp, (-2, 2)),
    ("log", pyad.log, np.log, lambda x: 1 / x, (0.2, 3)),
    ("log1p", pyad.log1p, np.log1p, lambda x: 1 / (1 + x), (-0.5, 2)),
    ("expm1", pyad.expm1, np.expm1, np.exp, (-2, 2)),
    ("sqrt", pyad.sqrt, np.sqrt, lambda x: 0.5 / np.sqrt(x), (0.2, 3)),
    ("sin", pyad.sin, np.sin, np.cos, (-3, 3)),
    ("cos", pyad.cos, np.cos, lambda x: -np.sin(x), (-3, 3)),
    ("tan", pyad.tan, np.tan, lambda x: 1 / np.cos(x) ** 2, (-1.2, 1.2)),
    ("arcsin", pyad.arcsin, np.arcsin, lambda x: 1 / np.sqrt(1 - x ** 2), (-0.9, 0.9)),
    ("arccos", pyad.arccos, np.arccos, lambda x: -1 / np.sqrt(1 - x ** 2), (-0.9, 0.9)),
    ("arctan", pyad.arctan, np.arctan, lambda x: 1 / (1 + x ** 2), (-3, 3)),
    ("sinh", pyad.sinh, np.sinh, np.cosh, (-2, 2)),
    ("cosh", pyad.cosh, np.cosh, np.sinh, (-2, 2)),
    ("tanh", pyad.tanh, np.tanh, lambda x: 1 / np.cosh(x) ** 2, (-2, 2)),
]


@pytest.mark.parametrize("name,f,f_np,df,dom", UNARY, ids=[u[0] for u in UNARY])
def test_unary_value_gradient_hvp(backend, name, f, f_np, df, dom):
    rng = _rng(1)
    x0 = rng.uniform(*dom, size=(2, 3))
    # keep |x| away from 0 for abs
    if name == "abs":
        x0 = np.where(np.abs(x0) < 0.1, 0.5, x0)
    w = rng.normal(size=(2, 3))

    def obj(x):
        return (f(x) * w).sum()

    def obj_np(x):
        return (f_np(x) * w).sum()

    with pyad.Tape(backend=backend) as tape:
        x = tape.input(x0)
        n0, s0 = tape.n_ops, tape.n_slots
        y = f(x)
        assert isinstance(y, pyad.Array) and y.shape == (2, 3)
        assert tape.n_slots - s0 == 6, "one slot per element"
        assert tape.n_ops - n0 == 1, "one block row for the contiguous operand"
        tape.output((y * w).sum())
    # read after recording: a .value read while recording would guard the value
    np.testing.assert_allclose(y.value, f_np(x0), rtol=1e-14, atol=1e-15)

    g = tape.gradient()
    np.testing.assert_allclose(g, df(x0) * w, rtol=1e-12, atol=1e-14)

    # replay at a new point of the domain
    x1 = rng.uniform(*dom, size=(2, 3))
    if name == "abs":
        x1 = np.where(np.abs(x1) < 0.1, -0.5, x1)
    np.testing.assert_allclose(tape(x1), obj_np(x1), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(tape.gradient(x1), df(x1) * w, rtol=1e-12, atol=1e-14)

    # Hessian-vector product vs finite differences of the (closed-form) gradient
    v = rng.normal(size=(2, 3))
    hv = tape.hvp(x1, v)
    np.testing.assert_allclose(hv, _fd_hvp(lambda z: df(z) * w, x1, v), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name,f,f_np,df,dom", UNARY, ids=[u[0] for u in UNARY])
def test_unary_forward_matches_reverse(backend, name, f, f_np, df, dom):
    rng = _rng(2)
    x0 = rng.uniform(*dom, size=4)
    if name == "abs":
        x0 = np.where(np.abs(x0) < 0.1, 0.5, x0)
    v, u = rng.normal(size=4), rng.normal(size=4)
    tape = pyad.trace(f, x0, backend=backend)
    y, jv = tape.jvp(x0, v)
    y2, uj = tape.vjp(x0, u)
    np.testing.assert_allclose(y, f_np(x0), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(y2, y, rtol=0)
    np.testing.assert_allclose(jv, df(x0) * v, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(u @ jv, uj @ v, rtol=1e-12, atol=1e-14)


# ---- binary operations with broadcasting -----------------------------------------

BINARY = [
    ("add", lambda a, b: a + b),
    ("sub", lambda a, b: a - b),
    ("mul", lambda a, b: a * b),
    ("div", lambda a, b: a / b),
    ("pow", lambda a, b: a ** b),
    ("arctan2", np.arctan2),
    ("maximum", np.maximum),
    ("minimum", np.minimum),
    ("hypot", np.hypot),
]

SHAPES = [
    ((3, 1), (4,)),
    ((4,), (3, 1)),
    ((), (2, 3)),
    ((2, 3), ()),
    ((2, 3), (3,)),
    ((2, 1, 3), (4, 1)),
    ((2, 3), (2, 3)),
]


def _operands(shape_a, shape_b, name, seed=0):
    rng = _rng(seed)
    a = rng.uniform(0.5, 2.0, size=shape_a)
    b = rng.uniform(0.5, 2.0, size=shape_b)
    if name in ("maximum", "minimum"):
        b = b + 0.01  # no exact ties
    return a, b


@pytest.mark.parametrize("shapes", SHAPES, ids=[f"{s[0]}x{s[1]}" for s in SHAPES])
@pytest.mark.parametrize("name,op", BINARY, ids=[b[0] for b in BINARY])
def test_binary_both_active_broadcast(backend, name, op, shapes):
    a0, b0 = _operands(*shapes, name)
    out_shape = np.broadcast_shapes(*shapes)
    w = _rng(5).normal(size=out_shape)

    def f(a, b):
        return (op(a, b) * w).sum()

    val, (ga, gb) = pyad.value_and_grad(f, argnums=(0, 1), backend=backend)(a0, b0)
    np.testing.assert_allclose(val, f(a0, b0), rtol=1e-13)
    assert np.shape(ga) == np.shape(a0) and np.shape(gb) == np.shape(b0)
    np.testing.assert_allclose(ga, central_diff_grad(lambda a: f(a, b0), a0), rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(gb, central_diff_grad(lambda b: f(a0, b), b0), rtol=1e-7, atol=1e-8)

    with pyad.Tape(backend=backend) as tape:
        a, b = tape.input(a0), tape.input(b0)
        y = op(a, b)
        assert np.shape(y) == out_shape
        np.testing.assert_allclose(pyad.value(y), op(a0, b0), rtol=1e-14)


@pytest.mark.parametrize("shapes", SHAPES, ids=[f"{s[0]}x{s[1]}" for s in SHAPES])
@pytest.mark.parametrize("name,op", BINARY, ids=[b[0] for b in BINARY])
@pytest.mark.parametrize("side", ["active_left", "active_right"])
def test_binary_active_with_constant_broadcast(backend, name, op, shapes, side):
    a0, b0 = _operands(*shapes, name, seed=3)
    out_shape = np.broadcast_shapes(*shapes)
    w = _rng(6).normal(size=out_shape)
    if side == "active_left":
        x0, c = a0, b0
        fn = lambda x: (op(x, c) * w).sum()          # noqa: E731
    else:
        x0, c = b0, a0
        fn = lambda x: (op(c, x) * w).sum()          # noqa: E731

    tape = pyad.trace(fn, x0, backend=backend)
    np.testing.assert_allclose(tape(), fn(x0), rtol=1e-13)
    g = tape.gradient()
    assert np.shape(g) == np.shape(x0)
    np.testing.assert_allclose(g, central_diff_grad(fn, x0), rtol=1e-7, atol=1e-8)
    # replay at a new point
    x1 = x0 * 1.1 + 0.05
    np.testing.assert_allclose(tape(x1), fn(x1), rtol=1e-13)
    np.testing.assert_allclose(tape.gradient(x1), central_diff_grad(fn, x1), rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("name,op", BINARY[:5], ids=[b[0] for b in BINARY[:5]])
def test_binary_hvp_matches_fd_of_gradient(backend, name, op):
    rng = _rng(7)
    x0 = rng.uniform(0.5, 2.0, size=6)
    v = rng.normal(size=6)

    def f(x):
        a, b = x[:3].reshape(3, 1), x[3:]
        return (op(a, b) ** 2).sum()

    tape = pyad.trace(f, x0, backend=backend)
    hv = tape.hvp(x0, v)
    np.testing.assert_allclose(hv, _fd_hvp(tape.gradient, x0, v), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("const", [
    2, 2.5, np.float64(-1.5), np.int64(3), np.array(4.0), np.array([1.0, 2.0, 3.0]),
    [1.0, -2.0, 0.5], np.array([[1.0], [2.0]]), np.array([1, 2, 3], dtype=np.int32),
    np.array([True, False, True]), (1.0, 2.0, 3.0),
], ids=["int", "float", "f64", "i64", "0d", "1d", "list", "col", "i32", "bool", "tuple"])
def test_constant_kinds(backend, const):
    x0 = np.array([0.5, 1.5, 2.5])
    c_arr = np.asarray(const, dtype=float)
    ops = [
        (lambda x: x + const, lambda x: x + c_arr),
        (lambda x: const + x, lambda x: c_arr + x),
        (lambda x: x - const, lambda x: x - c_arr),
        (lambda x: const - x, lambda x: c_arr - x),
        (lambda x: x * const, lambda x: x * c_arr),
        (lambda x: const * x, lambda x: c_arr * x),
        (lambda x: x / (const + 0.25 if not isinstance(const, (list, tuple)) else np.asarray(const) + 0.25),
         lambda x: x / (c_arr + 0.25)),
        (lambda x: const / x, lambda x: c_arr / x),
        (lambda x: x ** const, lambda x: x ** c_arr),
        (lambda x: np.abs(const) ** x if not isinstance(const, (list, tuple)) else np.abs(const) ** x,
         lambda x: np.abs(c_arr) ** x),
    ]
    for f, f_np in ops:
        with pyad.Tape(backend=backend) as tape:
            x = tape.input(x0)
            y = f(x)
            assert isinstance(y, pyad.Array)
            ref = f_np(x0)
            assert y.shape == ref.shape
            np.testing.assert_allclose(y.value, ref, rtol=1e-14)
            tape.output(y.sum())
        g = tape.gradient()
        np.testing.assert_allclose(g, central_diff_grad(lambda z: f_np(z).sum(), x0),
                                   rtol=1e-7, atol=1e-8)


def test_active_scalar_with_arrays(backend):
    x0 = np.array([0.5, -1.0, 2.0])
    c = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])

    def f(x):
        s = x[0]                       # active scalar
        y = s * x + c * s - x / (s + 3.0) + s ** x[2]
        assert isinstance(y, pyad.Array) and y.shape == (2, 3)
        z = c - s
        assert isinstance(z, pyad.Array)
        return (y * z).sum()

    def f_np(x):
        s = x[0]
        return ((s * x + c * s - x / (s + 3.0) + s ** x[2]) * (c - s)).sum()

    g = pyad.grad(f, backend=backend)(x0)
    np.testing.assert_allclose(g, central_diff_grad(f_np, x0), rtol=1e-7, atol=1e-8)


def test_list_of_active_scalars_as_operand(backend):
    x0 = np.array([1.0, 2.0, 3.0])

    def f(x):
        y = x * [x[2], x[1], 1.0]
        assert isinstance(y, pyad.Array)
        return y.sum()

    g = pyad.grad(f, backend=backend)(x0)
    # f = x0*x2 + x1^2 + x2
    np.testing.assert_allclose(g, [3.0, 4.0, 2.0], rtol=1e-14)


def test_elementwise_op_count(backend):
    """One slot per output element; one row where every operand is affine in the
    element index (contiguous or broadcast), else that row after one gather row
    per operand that is not (n slots each)."""
    def grows(tape, f):
        n0, s0 = tape.n_ops, tape.n_slots
        f()
        return tape.n_ops - n0, tape.n_slots - s0

    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.ones((3, 1)))
        y = tape.input(np.ones(4))
        assert grows(tape, lambda: x * y) == (3, 36)        # x, y repeat: two gathers
        assert grows(tape, lambda: x * np.arange(4.0)) == (2, 24)
        assert grows(tape, lambda: 2.0 * y) == (1, 4)
        assert grows(tape, lambda: np.sin(y)) == (1, 4)
        assert grows(tape, lambda: x[0] * y) == (1, 4)      # x[0] broadcast: stride 0


def test_chain_of_ops_replay(backend):
    rng = _rng(9)
    x0 = rng.uniform(0.5, 1.5, size=(3, 2))

    def f(x):
        y = np.exp(-x) * np.sin(3 * x) + np.sqrt(x) / (1 + x ** 2)
        return (np.tanh(y) * np.log(x + 1)).sum()

    tape = pyad.trace(f, x0, backend=backend)
    for _ in range(3):
        x1 = rng.uniform(0.5, 1.5, size=(3, 2))
        v = rng.normal(size=(3, 2))
        np.testing.assert_allclose(tape(x1), f(x1), rtol=1e-13)
        g = tape.gradient(x1)
        np.testing.assert_allclose(g, central_diff_grad(f, x1), rtol=1e-7, atol=1e-9)
        _, jv = tape.jvp(x1, v)
        np.testing.assert_allclose(jv, (g * v).sum(), rtol=1e-12)
        np.testing.assert_allclose(tape.hvp(x1, v), _fd_hvp(tape.gradient, x1, v),
                                   rtol=1e-6, atol=1e-7)


def test_vector_valued_jvp_vjp(backend):
    rng = _rng(10)
    x0 = rng.uniform(0.5, 1.5, size=(2, 3))
    c = rng.normal(size=(3,))

    def f(x):
        return np.sin(x) * c + x ** 3 / (x.sum(axis=0) + 1.0)

    v = rng.normal(size=(2, 3))
    y, jv = pyad.jvp(f, x0, v, backend=backend)
    np.testing.assert_allclose(y, f(x0), rtol=1e-13)
    np.testing.assert_allclose(jv, central_diff_jvp(f, x0, v), rtol=1e-7, atol=1e-8)
    u = rng.normal(size=(2, 3))
    y2, uj = pyad.vjp(f, x0, u, backend=backend)
    np.testing.assert_allclose(y2, f(x0), rtol=1e-13)
    np.testing.assert_allclose((uj * v).sum(), (u * jv).sum(), rtol=1e-12)


# ---- kinks and IEEE semantics -----------------------------------------------------

def test_abs_derivative_at_zero_is_zero(backend):
    x0 = np.array([-1.0, 0.0, 2.0])
    g = pyad.grad(lambda x: np.abs(x).sum(), backend=backend)(x0)
    np.testing.assert_array_equal(g, [-1.0, 0.0, 1.0])
    g = pyad.grad(lambda x: abs(x).sum(), backend=backend)(x0)
    np.testing.assert_array_equal(g, [-1.0, 0.0, 1.0])


def test_maximum_minimum_ties_split_evenly(backend):
    a0 = np.array([1.0, 2.0, 3.0])
    b0 = np.array([1.0, 5.0, 0.0])
    ga, gb = pyad.grad(lambda a, b: np.maximum(a, b).sum(), argnums=(0, 1), backend=backend)(a0, b0)
    np.testing.assert_array_equal(ga, [0.5, 0.0, 1.0])
    np.testing.assert_array_equal(gb, [0.5, 1.0, 0.0])
    ga, gb = pyad.grad(lambda a, b: np.minimum(a, b).sum(), argnums=(0, 1), backend=backend)(a0, b0)
    np.testing.assert_array_equal(ga, [0.5, 1.0, 0.0])
    np.testing.assert_array_equal(gb, [0.5, 0.0, 1.0])
    # with a constant
    g = pyad.grad(lambda a: np.maximum(a, 2.0).sum(), backend=backend)(a0)
    np.testing.assert_array_equal(g, [0.0, 0.5, 1.0])
    g = pyad.grad(lambda a: np.minimum(2.0, a).sum(), backend=backend)(a0)
    np.testing.assert_array_equal(g, [1.0, 0.5, 0.0])


def test_ieee_semantics_no_exception(backend):
    x0 = np.array([0.0, -1.0, 1.0])
    with np.errstate(all="ignore"):
        ref_log = np.log(x0)
        ref_div = 1.0 / x0
        ref_sqrt = np.sqrt(x0)
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(x0)
        lg, dv, sq = np.log(x), 1.0 / x, np.sqrt(x)
        tape.output(np.log(x))
    np.testing.assert_array_equal(lg.value, ref_log)
    np.testing.assert_array_equal(dv.value, ref_div)
    np.testing.assert_array_equal(sq.value, ref_sqrt)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(tape(np.array([0.0, -2.0, np.e])), np.log([0.0, -2.0, np.e]))


def test_empty_elementwise(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.ones(3))
        e = x[:0]
        n0 = tape.n_ops
        assert (e * 2.0).shape == (0,)
        assert np.sin(e).shape == (0,)
        assert (e + e).shape == (0,)
        assert (x[:0, None] * x).shape == (0, 3)
        assert tape.n_ops == n0


def test_broadcast_shape_mismatch_raises(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.ones(3))
        y = tape.input(np.ones(4))
        with pytest.raises(ValueError):
            x + y
        with pytest.raises(ValueError):
            x * np.ones(2)


def test_non_numeric_constant_is_rejected(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.ones(2))
        with pytest.raises(TypeError):
            x + np.array(["a", "b"])
        with pytest.raises(TypeError):
            x * np.array([1 + 1j, 2.0])


def test_comparisons_values(backend):
    x0 = np.array([[-1.0, 0.0, 2.0], [3.0, 0.0, -4.0]])
    c = np.array([0.0, 0.0, 2.0])
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(x0)
        y = tape.input(np.zeros(3))
        checks = [
            (x < c, x0 < c), (x <= c, x0 <= c), (x > c, x0 > c), (x >= c, x0 >= c),
            (x == c, x0 == c), (x != c, x0 != c),
            (c < x, c < x0), (c >= x, c >= x0), (x > 0, x0 > 0), (1.0 <= x, 1.0 <= x0),
            (x < y, x0 < 0), (x == y, x0 == 0), (np.less(x, y), x0 < 0),
            (np.greater_equal(x, 0.0), x0 >= 0), (np.not_equal(y, x), x0 != 0),
        ]
        for cond, ref in checks:
            assert isinstance(cond, pyad.BoolArray)
            assert cond.shape == ref.shape
            np.testing.assert_array_equal(cond.value != 0, ref)


def test_scalar_input_broadcast_against_arrays(backend):
    c = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])

    def f(s):
        return (np.sin(s * c) + c / (1.0 + s)).sum()

    for s0 in (0.3, np.float64(0.3), np.array(0.3)):
        val, g = pyad.value_and_grad(f, backend=backend)(s0)
        assert isinstance(g, float)
        np.testing.assert_allclose(val, f(0.3), rtol=1e-14)
        np.testing.assert_allclose(g, (c * np.cos(0.3 * c)).sum() - c.sum() / 1.3 ** 2, rtol=1e-13)
    y, jv = pyad.jvp(lambda s: np.exp(s * c), 0.1, 2.0, backend=backend)
    assert y.shape == jv.shape == (2, 3)
    np.testing.assert_allclose(jv, 2.0 * c * np.exp(0.1 * c), rtol=1e-13)
