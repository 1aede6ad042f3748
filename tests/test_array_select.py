"""Conditions and selection on active arrays.

Elementwise comparisons give a BoolArray; pyad.where / np.where record a select
that replays correctly on both sides of the condition with no guard; a Python
`if` on `.all()` / `.any()` records a guard that catches (or re-records at) a
point where the branch flips. Oracles: numpy's where on plain values, closed-form
gradients of each branch, central differences away from the switching surface.
"""
import numpy as np
import pytest

import pyad
from helpers import central_diff_grad


def _abs_where(x):
    return pyad.where(x > 0, x, -x)


@pytest.mark.parametrize("where", [pyad.where, np.where], ids=["pyad.where", "np.where"])
def test_where_abs_replays_on_both_sides(backend, where):
    x0 = np.array([1.0, -2.0, 3.0, -0.5])
    w = np.array([1.0, 2.0, 3.0, 4.0])

    def f(x):
        return (where(x > 0, x, -x) * w).sum()

    tape = pyad.trace(f, x0, backend=backend, retrace=False)
    np.testing.assert_allclose(tape(), (np.abs(x0) * w).sum())
    np.testing.assert_allclose(tape.gradient(), np.sign(x0) * w)
    n_before = tape.n_ops
    for x1 in (-x0, np.array([-1.0, -1.0, 2.0, 2.0]), np.array([0.3, 0.2, -0.1, 5.0])):
        np.testing.assert_allclose(tape(x1), (np.abs(x1) * w).sum(), rtol=1e-14)
        np.testing.assert_allclose(tape.gradient(x1), np.sign(x1) * w, rtol=1e-14)
        _, jv = tape.jvp(x1, np.ones(4))
        np.testing.assert_allclose(jv, (np.sign(x1) * w).sum(), rtol=1e-14)
    assert tape.retraces == 0
    assert tape.n_ops == n_before


def test_where_records_one_select_per_element(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.array([1.0, -2.0, 3.0]))
        y = tape.input(np.array([0.0, 0.0, 0.0]))
        c = x > y
        n0, s0 = tape.n_ops, tape.n_slots
        r = pyad.where(c, x, y)
        assert (tape.n_ops - n0, tape.n_slots - s0) == (1, 3)  # one block row of 3 slots
        np.testing.assert_array_equal(r.value, [1.0, 0.0, 3.0])


@pytest.mark.parametrize("cmp,ref", [
    (lambda x, y: x < y, np.less), (lambda x, y: x <= y, np.less_equal),
    (lambda x, y: x > y, np.greater), (lambda x, y: x >= y, np.greater_equal),
    (lambda x, y: x == y, np.equal), (lambda x, y: x != y, np.not_equal),
], ids=["lt", "le", "gt", "ge", "eq", "ne"])
def test_where_with_each_comparison_replays(backend, cmp, ref):
    a0 = np.array([1.0, 2.0, 3.0, 4.0])
    b0 = np.array([2.0, 2.0, 2.0, 5.0])

    def f(a, b):
        return (pyad.where(cmp(a, b), a * a, 3.0 * b) * np.arange(1.0, 5.0)).sum()

    def f_np(a, b):
        return (np.where(ref(a, b), a * a, 3.0 * b) * np.arange(1.0, 5.0)).sum()

    def grads_np(a, b):
        c = ref(a, b)
        k = np.arange(1.0, 5.0)
        return np.where(c, 2 * a * k, 0.0), np.where(c, 0.0, 3.0 * k)

    tape = pyad.trace(f, a0, b0, backend=backend, retrace=False)
    for a1, b1 in [(a0, b0), (b0, a0), (a0 + 1.0, b0), (b0, b0)]:
        np.testing.assert_allclose(tape(a1, b1), f_np(a1, b1), rtol=1e-14)
        ga, gb = tape.gradient(a1, b1)
        ea, eb = grads_np(a1, b1)
        np.testing.assert_allclose(ga, ea, rtol=1e-14)
        np.testing.assert_allclose(gb, eb, rtol=1e-14)


@pytest.mark.parametrize("shapes", [((3, 1), (4,), ()), ((4,), (3, 1), (3, 4)), ((), (2, 3), (3,))],
                         ids=["c31_a4_bs", "c4_a31_b34", "cs_a23_b3"])
def test_where_broadcasting(backend, shapes):
    sc, sa, sb = shapes
    rng = np.random.default_rng(0)
    c0, a0, b0 = rng.normal(size=sc), rng.normal(size=sa), rng.normal(size=sb)
    out_shape = np.broadcast_shapes(sc, sa, sb)
    w = rng.normal(size=out_shape)

    def f_np(c, a, b):
        return (np.where(c > 0, np.sin(a), b ** 3) * w).sum()

    def f(c, a, b):
        r = pyad.where(c > 0, np.sin(a), b ** 3)
        assert np.shape(r) == out_shape
        return (r * w).sum()

    val, (gc, ga, gb) = pyad.value_and_grad(f, argnums=(0, 1, 2), backend=backend)(c0, a0, b0)
    np.testing.assert_allclose(val, f_np(c0, a0, b0), rtol=1e-13)
    np.testing.assert_array_equal(gc, np.zeros(sc))       # comparisons carry no derivative
    np.testing.assert_allclose(ga, central_diff_grad(lambda a: f_np(c0, a, b0), a0), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(gb, central_diff_grad(lambda b: f_np(c0, a0, b), b0), rtol=1e-7, atol=1e-9)

    # replay with the condition flipped
    tape = pyad.trace(f, c0, a0, b0, backend=backend, retrace=False)
    np.testing.assert_allclose(tape(-c0, a0, b0), f_np(-c0, a0, b0), rtol=1e-13)
    _, ga1, gb1 = tape.gradient(-c0, a0, b0)
    np.testing.assert_allclose(ga1, central_diff_grad(lambda a: f_np(-c0, a, b0), a0), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(gb1, central_diff_grad(lambda b: f_np(-c0, a0, b), b0), rtol=1e-7, atol=1e-9)


def test_where_with_constant_branches_and_mixtures(backend):
    x0 = np.array([-1.0, 0.5, 2.0])
    c = np.array([10.0, 20.0, 30.0])

    def f(x):
        r1 = pyad.where(x > 1.0, x, c)               # active, constant array
        r2 = pyad.where(x < 0.0, 0.0, x * x)         # constant scalar, active
        r3 = np.where(x > 0, x[0], x)                # active scalar, active array
        r4 = pyad.where(x[1] > 0, x, 2 * x)          # active scalar condition (Bool)
        return (r1 + 2 * r2 + 3 * r3 + 4 * r4).sum()

    def f_np(x):
        r1 = np.where(x > 1.0, x, c)
        r2 = np.where(x < 0.0, 0.0, x * x)
        r3 = np.where(x > 0, x[0], x)
        r4 = np.where(x[1] > 0, x, 2 * x)
        return (r1 + 2 * r2 + 3 * r3 + 4 * r4).sum()

    tape = pyad.trace(f, x0, backend=backend, retrace=False)
    for x1 in (x0, -1.1 * x0, np.array([3.0, -0.5, 0.25])):
        np.testing.assert_allclose(tape(x1), f_np(x1), rtol=1e-14)
        np.testing.assert_allclose(tape.gradient(x1), central_diff_grad(f_np, x1), rtol=1e-7, atol=1e-8)


def test_where_with_constant_mask_records_nothing(backend):
    x0 = np.array([1.0, 2.0, 3.0])
    mask = np.array([True, False, True])
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(x0)
        y = tape.input(-x0)
        n0 = tape.n_ops
        r = pyad.where(mask, x, y)
        r2 = np.where(mask, x, y)
        assert tape.n_ops == n0
        np.testing.assert_array_equal(r.value, [1.0, -2.0, 3.0])
        np.testing.assert_array_equal(r2.value, [1.0, -2.0, 3.0])
        tape.output(r.sum() + 10 * r2.sum())
    gx, gy = tape.gradient()
    np.testing.assert_array_equal(gx, [11.0, 0.0, 11.0])
    np.testing.assert_array_equal(gy, [0.0, 11.0, 0.0])


def test_where_on_plain_values_is_numpy():
    np.testing.assert_array_equal(pyad.where(np.array([True, False]), 1.0, 2.0), [1.0, 2.0])


def test_where_value_ignores_unselected_nan_and_safe_pattern_gradient(backend):
    # The value never sees the unselected branch. (Its derivative may, as in JAX:
    # 0 * inf = nan; the standard "double where" keeps the gradient clean.)
    x0 = np.array([-1.0, 4.0, 0.0])

    def f(x):
        return pyad.where(x > 0, np.sqrt(x), 0.0 * x).sum()

    def f_safe(x):
        ok = x > 0
        return pyad.where(ok, np.sqrt(pyad.where(ok, x, 1.0)), 0.0).sum()

    with np.errstate(all="ignore"):
        val, g = pyad.value_and_grad(f, backend=backend)(x0)
        np.testing.assert_allclose(val, 2.0)
        np.testing.assert_allclose(g[1], 0.25)
        val, g = pyad.value_and_grad(f_safe, backend=backend)(x0)
        np.testing.assert_allclose(val, 2.0)
        np.testing.assert_allclose(g, [0.0, 0.25, 0.0])
        tape = pyad.trace(f_safe, x0, backend=backend, retrace=False)
        x1 = np.array([9.0, -1.0, 1.0])
        np.testing.assert_allclose(tape(x1), 4.0)
        np.testing.assert_allclose(tape.gradient(x1), [1 / 6, 0.0, 0.5])


def test_where_hvp_follows_selected_branch(backend):
    x0 = np.array([1.0, -2.0, 0.5])
    v = np.array([0.3, -1.0, 2.0])
    f = lambda x: pyad.where(x > 0, x ** 3, np.sin(x)).sum()     # noqa: E731
    tape = pyad.trace(f, x0, backend=backend, retrace=False)
    for x1 in (x0, -x0):
        expected = np.where(x1 > 0, 6 * x1, -np.sin(x1)) * v
        np.testing.assert_allclose(tape.hvp(x1, v), expected, rtol=1e-13)


def test_where_one_argument_raises_typeerror(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.array([1.0, -1.0]))
        with pytest.raises(TypeError, match="where"):
            np.where(x > 0)


# ---- BoolArray combinators ------------------------------------------------------

def test_bool_array_logic(backend):
    x0 = np.array([-2.0, -0.5, 0.5, 2.0])
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(x0)
        a, b = x > -1.0, x < 1.0
        assert isinstance(a, pyad.BoolArray)
        checks = [
            (a & b, (x0 > -1) & (x0 < 1)),
            (a | b, (x0 > -1) | (x0 < 1)),
            (~a, ~(x0 > -1)),
            (~(a & b), ~((x0 > -1) & (x0 < 1))),
            (np.logical_and(a, b), (x0 > -1) & (x0 < 1)),
            (np.logical_or(x > 1.0, x < -1.0), (x0 > 1) | (x0 < -1)),
            (np.logical_not(a), ~(x0 > -1)),
        ]
        inside = a & b
        tape.output(pyad.where(inside, x * x, 1.0).sum())
    for got, ref in checks:  # read after recording, which guards no value
        assert isinstance(got, pyad.BoolArray)
        np.testing.assert_array_equal(got.value != 0, ref)

    def expect(z):
        return np.where((z > -1) & (z < 1), 2 * z, 0.0)

    np.testing.assert_allclose(tape.gradient(), expect(x0))
    x1 = np.array([0.1, -3.0, 0.9, -0.2])
    np.testing.assert_allclose(tape(x1), np.where((x1 > -1) & (x1 < 1), x1 ** 2, 1.0).sum())
    np.testing.assert_allclose(tape.gradient(x1), expect(x1))


def test_bool_array_structure_preserves_type(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.arange(6.0).reshape(2, 3))
        c = x > 2.0
        assert isinstance(c.T, pyad.BoolArray)
        assert isinstance(c[1], pyad.BoolArray)
        assert isinstance(c.reshape(6), pyad.BoolArray)
        assert isinstance(c[1, 2], pyad.Bool)
        np.testing.assert_array_equal(c.T.value != 0, (np.arange(6.0).reshape(2, 3) > 2).T)


def test_truth_value_of_multi_element_condition_is_ambiguous(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.array([1.0, 2.0]))
        with pytest.raises(ValueError, match="ambiguous"):
            if x > 0:
                pass
        with pytest.raises(ValueError):
            bool(x)


# ---- guards: .all() / .any() in a Python `if` --------------------------------------

def _branchy_all(x):
    if (x > 0).all():
        return np.log(x).sum()
    return (x * x).sum()


def _branchy_all_np(x):
    return np.log(x).sum() if (x > 0).all() else (x * x).sum()


def test_all_records_guard_and_replay_raises_when_it_flips(backend):
    x0 = np.array([1.0, 2.0, 3.0])
    tape = pyad.trace(_branchy_all, x0, backend=backend, retrace=False)
    np.testing.assert_allclose(tape.gradient(), 1 / x0)
    x_same = np.array([0.5, 4.0, 1.0])
    np.testing.assert_allclose(tape(x_same), _branchy_all_np(x_same), rtol=1e-14)
    np.testing.assert_allclose(tape.gradient(x_same), 1 / x_same, rtol=1e-14)
    x_flip = np.array([0.5, -4.0, 1.0])
    with pytest.raises(pyad.BranchError):
        tape(x_flip)
    with pytest.raises(pyad.BranchError):
        tape.gradient(x_flip)
    with pytest.raises(pyad.BranchError):
        tape.jvp(x_flip, np.ones(3))
    with pytest.raises(pyad.BranchError):
        tape.hvp(x_flip, np.ones(3))


def test_all_guard_retrace_gives_the_other_branch(backend):
    x0 = np.array([1.0, 2.0, 3.0])
    tape = pyad.trace(_branchy_all, x0, backend=backend)
    x_flip = np.array([0.5, -4.0, 1.0])
    np.testing.assert_allclose(tape(x_flip), _branchy_all_np(x_flip), rtol=1e-14)
    np.testing.assert_allclose(tape.gradient(x_flip), 2 * x_flip, rtol=1e-14)
    assert tape.retraces >= 1
    np.testing.assert_allclose(tape.gradient(x0), 1 / x0, rtol=1e-14)


def test_any_records_guard(backend):
    def f(x):
        if (x > 2.0).any():
            return (x ** 3).sum()
        return x.sum()

    x0 = np.array([1.0, 3.0])
    tape = pyad.trace(f, x0, backend=backend, retrace=False)
    np.testing.assert_allclose(tape.gradient(), 3 * x0 ** 2)
    x_same = np.array([2.5, 0.0])
    np.testing.assert_allclose(tape.gradient(x_same), 3 * x_same ** 2)
    with pytest.raises(pyad.BranchError):
        tape.gradient(np.array([1.0, 1.5]))
    tape2 = pyad.trace(f, x0, backend=backend)
    np.testing.assert_allclose(tape2.gradient(np.array([1.0, 1.5])), [1.0, 1.0])


def test_all_any_with_axis(backend):
    x0 = np.array([[1.0, -1.0], [2.0, 3.0]])
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(x0)
        c = x > 0
        reduced = [(getattr(c, how)(axis=axis, keepdims=keepdims),
                    getattr(x0 > 0, how)(axis=axis, keepdims=keepdims))
                   for axis in (0, 1, -1, None) for keepdims in (False, True)
                   for how in ("all", "any")]
        rows = c.all(axis=1)
        assert isinstance(rows, pyad.BoolArray)
        tape.output(pyad.where(rows[:, None], x, 0.0).sum())
    for got, ref in reduced:  # read after recording, which guards no value
        np.testing.assert_array_equal(pyad.value(got) != 0, ref)
    np.testing.assert_array_equal(tape.gradient(), [[0.0, 0.0], [1.0, 1.0]])
    x1 = np.array([[1.0, 1.0], [2.0, -3.0]])
    np.testing.assert_array_equal(tape.gradient(x1), [[1.0, 1.0], [0.0, 0.0]])


def test_scalar_condition_from_reduction_guard(backend):
    def f(x):
        if x.sum() > 0:
            return (x * x).sum()
        return -x.sum()

    x0 = np.array([1.0, 2.0])
    tape = pyad.trace(f, x0, backend=backend, retrace=False)
    np.testing.assert_allclose(tape.gradient(np.array([3.0, -1.0])), [6.0, -2.0])
    with pytest.raises(pyad.BranchError):
        tape.gradient(np.array([-3.0, 1.0]))


def test_where_needs_no_guard_while_if_does(backend):
    x0 = np.array([1.0, 2.0])
    with pyad.Tape(backend=backend) as t_where:
        x = t_where.input(x0)
        t_where.output(pyad.where(x > 0, x, -x).sum())
    with pyad.Tape(backend=backend) as t_if:
        x = t_if.input(x0)
        t_if.output(x.sum() if (x > 0).all() else (-x).sum())
    x_flip = np.array([-1.0, 2.0])
    np.testing.assert_allclose(t_where(x_flip), 3.0)
    np.testing.assert_allclose(t_where.gradient(x_flip), [-1.0, 1.0])
    with pytest.raises(pyad.BranchError):
        t_if(x_flip)
