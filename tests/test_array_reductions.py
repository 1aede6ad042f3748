"""Reductions of active arrays: sum, mean, prod, max, min (axis, keepdims), cumsum.

Oracles: numpy values; closed-form gradients (broadcast weights for sum/mean,
product-of-the-others for prod, indicator of the arg-extreme for max/min,
reversed cumulative sum for cumsum); central differences; tape.n_ops for cost.
"""
import numpy as np
import pytest

import pyad
from helpers import central_diff_grad


def _x0(shape=(2, 3, 4), seed=0):
    # distinct values, bounded away from zero (for prod), no ties (for max/min)
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    vals = rng.permutation(n) * 0.1 + 0.5
    signs = rng.choice([-1.0, 1.0], size=n)
    return (vals * signs).reshape(shape)


AXES = [None, 0, 1, 2, -1, -2, (0, 2), (1, 2), (-1, 0), (0, 1, 2), ()]
AXIS_IDS = ["None", "0", "1", "2", "-1", "-2", "(0,2)", "(1,2)", "(-1,0)", "(0,1,2)", "()"]


def _normalize(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, tuple) else (axis,)
    return tuple(a % ndim for a in axes)


def _expand(r, shape, axis):
    """numpy result r of a reduction over `axis` broadcast back to `shape`."""
    axes = _normalize(axis, len(shape))
    r = np.asarray(r)
    for a in sorted(axes):
        r = np.expand_dims(r, a) if r.ndim < len(shape) else r
    return np.broadcast_to(r, shape)


def _closed_form_grad(name, x, axis, w):
    """d/dx sum(w * reduce(x, axis)) (w shaped like the non-keepdims result)."""
    W = _expand(w, x.shape, axis)
    axes = _normalize(axis, x.ndim)
    k = int(np.prod([x.shape[a] for a in axes])) if axes else 1
    if name == "sum":
        return np.array(W, dtype=float)
    if name == "mean":
        return W / k
    if name == "prod":
        return W * _expand(np.prod(x, axis=axis), x.shape, axis) / x
    if name in ("max", "min"):
        ext = _expand(getattr(np, name)(x, axis=axis), x.shape, axis)
        return W * (x == ext)
    raise AssertionError(name)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=AXIS_IDS)
@pytest.mark.parametrize("name", ["sum", "mean", "prod", "max", "min"])
def test_reduction_method(backend, name, axis, keepdims):
    x0 = _x0()
    ref = getattr(np, name)(x0, axis=axis, keepdims=keepdims)
    ref_plain = getattr(np, name)(x0, axis=axis)
    w = np.random.default_rng(1).normal(size=np.shape(ref_plain))

    with pyad.Tape(backend=backend) as tape:
        x = tape.input(x0)
        r = getattr(x, name)(axis=axis, keepdims=keepdims)
        assert np.shape(r) == np.shape(ref)
        np.testing.assert_allclose(pyad.value(r), ref, rtol=1e-13, atol=1e-13)
        if keepdims:
            r = r.reshape(np.shape(ref_plain)) if np.ndim(ref_plain) else r.reshape(())
        tape.output((r * w).sum() if np.ndim(ref_plain) else r * float(w))

    g = tape.gradient()
    np.testing.assert_allclose(g, _closed_form_grad(name, x0, axis, w), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("axis", [None, 0, -1, (0, 1)], ids=["None", "0", "-1", "(0,1)"])
@pytest.mark.parametrize("name,fn", [
    ("sum", np.sum), ("mean", np.mean), ("prod", np.prod), ("max", np.max),
    ("min", np.min), ("amax", np.amax), ("amin", np.amin),
])
def test_reduction_numpy_function(backend, name, fn, axis):
    x0 = _x0((3, 4), seed=2)
    for keepdims in (False, True):
        ref = fn(x0, axis=axis, keepdims=keepdims)

        def f(x):
            return (fn(x, axis=axis, keepdims=keepdims) ** 2).sum() if np.ndim(ref) else \
                fn(x, axis=axis, keepdims=keepdims) ** 2

        def f_np(x):
            return (fn(x, axis=axis, keepdims=keepdims) ** 2).sum()

        with pyad.Tape(backend=backend) as tape:
            x = tape.input(x0)
            r = fn(x, axis=axis, keepdims=keepdims)
            assert np.shape(r) == np.shape(ref)
            np.testing.assert_allclose(pyad.value(r), ref, rtol=1e-13, atol=1e-13)
        g = pyad.grad(f, backend=backend)(x0)
        np.testing.assert_allclose(g, central_diff_grad(f_np, x0), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("ufunc,name", [(np.add, "sum"), (np.multiply, "prod"),
                                        (np.maximum, "max"), (np.minimum, "min")])
def test_ufunc_reduce(backend, ufunc, name):
    x0 = _x0((3, 4), seed=3)
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(x0)
        r0 = ufunc.reduce(x)                     # numpy's default axis is 0
        r1 = ufunc.reduce(x, axis=1, keepdims=True)
        rn = ufunc.reduce(x, axis=None)
        np.testing.assert_allclose(r0.value, ufunc.reduce(x0), rtol=1e-13)
        np.testing.assert_allclose(r1.value, ufunc.reduce(x0, axis=1, keepdims=True), rtol=1e-13)
        np.testing.assert_allclose(pyad.value(rn), ufunc.reduce(x0, axis=None), rtol=1e-13)
        tape.output(r0.sum())
    w = np.ones(4)
    np.testing.assert_allclose(tape.gradient(), _closed_form_grad(name, x0, 0, w), rtol=1e-12)


def test_reduction_replay_moves_argmax(backend):
    x0 = np.array([[3.0, 1.0, 2.0], [0.0, 5.0, -1.0]])
    w = np.array([1.0, 10.0])
    f = lambda x: (x.max(axis=1) * w).sum() + x.min()        # noqa: E731
    tape = pyad.trace(f, x0, backend=backend, retrace=False)
    np.testing.assert_allclose(tape.gradient(), [[1.0, 0, 0], [0, 10.0, 1.0]])
    x1 = np.array([[1.0, 2.0, 3.0], [-7.0, 0.0, 4.0]])
    np.testing.assert_allclose(tape(x1), 3.0 + 40.0 - 7.0)
    np.testing.assert_allclose(tape.gradient(x1), [[0, 0, 1.0], [1.0, 0, 10.0]])


def test_max_two_way_tie_splits_evenly(backend):
    g = pyad.grad(lambda x: x.max(), backend=backend)(np.array([2.0, 1.0, 2.0, 0.0]))
    np.testing.assert_allclose(g.sum(), 1.0)
    np.testing.assert_allclose(g, [0.5, 0.0, 0.5, 0.0])


@pytest.mark.parametrize("name", ["max", "min"])
def test_reduction_ties_split_evenly(backend, name):
    # Design: "Derivatives at kinks follow JAX ... ties of maximum/minimum split the
    # gradient evenly" -- jax.grad(jnp.max)([2., 2., 2.]) == [1/3, 1/3, 1/3].
    x0 = np.array([2.0, 2.0, 2.0])
    g = pyad.grad(lambda x: getattr(x, name)(), backend=backend)(x0)
    np.testing.assert_allclose(g, [1 / 3, 1 / 3, 1 / 3], rtol=1e-14)


def test_prod_with_zero_entry(backend):
    x0 = np.array([2.0, 0.0, 3.0])
    g = pyad.grad(lambda x: x.prod(), backend=backend)(x0)
    np.testing.assert_allclose(g, [0.0, 6.0, 0.0])


def test_prod_second_derivative(backend):
    x0 = np.array([1.5, -2.0, 0.5, 3.0])
    v = np.array([0.3, -1.0, 2.0, 0.7])
    hv = pyad.hvp(lambda x: x.prod(), x0, v, backend=backend)
    P = np.prod(x0)
    H = P / np.outer(x0, x0)
    np.fill_diagonal(H, 0.0)
    np.testing.assert_allclose(hv, H @ v, rtol=1e-12)


def test_mean_of_squares_hvp(backend):
    x0 = _x0((2, 3), seed=5)
    v = np.random.default_rng(6).normal(size=(2, 3))
    hv = pyad.hvp(lambda x: (x ** 2).mean(axis=0).sum(), x0, v, backend=backend)
    np.testing.assert_allclose(hv, v, rtol=1e-13)   # H = 2/2 I


def test_sum_cost_is_at_most_k_ops(backend):
    for k in (1, 2, 7, 16, 33):
        with pyad.Tape(backend=backend) as tape:
            x = tape.input(np.ones(k))
            n0 = tape.n_ops
            x.sum()
            assert tape.n_ops - n0 <= k
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.ones((4, 5)))
        n0 = tape.n_ops
        x.sum(axis=1)
        assert tape.n_ops - n0 <= 20
        n0 = tape.n_ops
        np.sum(x, axis=(0, 1))
        assert tape.n_ops - n0 <= 20
        n0 = tape.n_ops
        x.max(axis=0, keepdims=True)
        assert tape.n_ops - n0 <= 20


def test_sum_over_length_one_axis_records_nothing_much(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.arange(3.0).reshape(3, 1))
        n0 = tape.n_ops
        r = x.sum(axis=1)
        assert tape.n_ops - n0 <= 3
        np.testing.assert_array_equal(r.value, [0.0, 1.0, 2.0])


def test_reduction_of_0d_scalar(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.array([2.5, 1.0]))
        s = x[0]
        for fn in (np.sum, np.prod, np.max, np.min, np.mean):
            r = fn(s)
            assert np.ndim(r) == 0
            assert pyad.value(r) == 2.5
        tape.output(np.sum(s) * np.mean(s))
    np.testing.assert_allclose(tape.gradient(), [5.0, 0.0])


@pytest.mark.parametrize("name,identity", [("sum", 0.0), ("prod", 1.0)])
def test_empty_reductions_with_identity(backend, name, identity):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.ones((2, 3)))
        e = x[:, :0]                                    # shape (2, 0)
        r_all = getattr(e, name)()
        assert pyad.value(r_all) == identity
        r1 = getattr(e, name)(axis=1)
        assert r1.shape == (2,)
        np.testing.assert_array_equal(r1.value, [identity, identity])
        r0 = getattr(e, name)(axis=0)
        assert r0.shape == (0,)
        rk = getattr(e, name)(axis=1, keepdims=True)
        assert rk.shape == (2, 1)
        tape.output(x.sum() + r_all)
    np.testing.assert_array_equal(tape.gradient(), np.ones((2, 3)))


@pytest.mark.parametrize("name", ["max", "min"])
def test_empty_max_min_raise(backend, name):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.ones(3))
        with pytest.raises(ValueError):
            getattr(x[:0], name)()
        # but a reduction over a non-empty axis of an array with an empty other axis is fine
        r = getattr(x[:0, None].T, name)(axis=0)
        assert r.shape == (0,)


def test_mean_of_empty_is_nan(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.ones(3))
        with np.errstate(all="ignore"):
            r = x[:0].mean()
        assert np.isnan(pyad.value(r))


@pytest.mark.parametrize("bad", [2, -3, (0, 0), (0, -2)])
def test_bad_axis_raises(backend, bad):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.ones((2, 3)))
        with pytest.raises((ValueError, IndexError)):
            x.sum(axis=bad)


# ---- cumulative ------------------------------------------------------------------

@pytest.mark.parametrize("axis", [None, 0, 1, -1, -2], ids=["None", "0", "1", "-1", "-2"])
def test_cumsum_values_and_gradient(backend, axis):
    x0 = _x0((3, 4), seed=7)
    ref = np.cumsum(x0, axis=axis)
    w = np.random.default_rng(8).normal(size=ref.shape)

    with pyad.Tape(backend=backend) as tape:
        x = tape.input(x0)
        r = x.cumsum(axis=axis)
        r2 = np.cumsum(x, axis=axis)
        assert r.shape == ref.shape == r2.shape
        np.testing.assert_allclose(r.value, ref, rtol=1e-13)
        np.testing.assert_allclose(r2.value, ref, rtol=1e-13)
        tape.output((r * w).sum())

    # d/dx_j sum_i w_i * cumsum(x)_i = sum_{i >= j} w_i  (reverse cumsum along the axis)
    if axis is None:
        expected = np.flip(np.cumsum(np.flip(w))).reshape(x0.shape)
    else:
        expected = np.flip(np.cumsum(np.flip(w, axis=axis), axis=axis), axis=axis)
    np.testing.assert_allclose(tape.gradient(), expected, rtol=1e-12, atol=1e-13)


def test_cumsum_cost_and_replay(backend):
    x0 = np.arange(1.0, 7.0)
    tape = pyad.trace(lambda x: (x.cumsum() ** 2).sum(), x0, backend=backend)
    x1 = x0[::-1].copy()
    c = np.cumsum(x1)
    np.testing.assert_allclose(tape(x1), (c ** 2).sum())
    np.testing.assert_allclose(tape.gradient(x1), np.flip(np.cumsum(np.flip(2 * c))))
    with pyad.Tape(backend=backend) as t2:
        x = t2.input(np.ones(10))
        n0 = t2.n_ops
        x.cumsum()
        assert t2.n_ops - n0 <= 10


def test_cumprod_and_add_accumulate(backend):
    x0 = np.array([1.5, -2.0, 0.5, 3.0])
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(x0)
        np.testing.assert_allclose(x.cumprod().value, np.cumprod(x0))
        np.testing.assert_allclose(np.cumprod(x).value, np.cumprod(x0))
        np.testing.assert_allclose(np.add.accumulate(x).value, np.add.accumulate(x0))
        np.testing.assert_allclose(np.multiply.accumulate(x).value, np.multiply.accumulate(x0))
        tape.output(x.cumprod().sum())
    f_np = lambda z: np.cumprod(z).sum()                     # noqa: E731
    np.testing.assert_allclose(tape.gradient(), central_diff_grad(f_np, x0), rtol=1e-8)


def test_cumsum_of_empty(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.ones(3))
        assert x[:0].cumsum().shape == (0,)
        assert x[:0, None].cumsum(axis=1).shape == (0, 1)
