"""numpy's protocols (__array_ufunc__, __array_function__) on active values.

Supported ufuncs and functions record and differentiate correctly on active
arrays, active scalars and mixtures with constants; unsupported ones raise a
TypeError naming the function -- never an object array or a silent float.
Oracles: numpy values, closed-form derivatives, central differences.
"""
import numpy as np
import pytest

import pyad
from helpers import central_diff_grad


def _rng(seed=0):
    return np.random.default_rng(seed)


UNARY_UFUNCS = [
    (np.negative, (-2, 2)), (np.absolute, (0.2, 2)), (np.fabs, (-2, -0.2)),
    (np.square, (-2, 2)), (np.reciprocal, (0.5, 2)), (np.exp, (-2, 2)),
    (np.log, (0.2, 3)), (np.log1p, (-0.5, 2)), (np.expm1, (-2, 2)), (np.sqrt, (0.2, 3)),
    (np.sin, (-3, 3)), (np.cos, (-3, 3)), (np.tan, (-1.2, 1.2)), (np.arcsin, (-0.9, 0.9)),
    (np.arccos, (-0.9, 0.9)), (np.arctan, (-3, 3)), (np.sinh, (-2, 2)), (np.cosh, (-2, 2)),
    (np.tanh, (-2, 2)), (np.log2, (0.2, 3)), (np.log10, (0.2, 3)), (np.exp2, (-2, 2)),
    (np.positive, (-2, 2)),
]


@pytest.mark.parametrize("ufunc,dom", UNARY_UFUNCS, ids=[u[0].__name__ for u in UNARY_UFUNCS])
def test_unary_ufunc_on_active_array_and_scalar(backend, ufunc, dom):
    rng = _rng(1)
    x0 = rng.uniform(*dom, size=(2, 3))
    w = rng.normal(size=(2, 3))

    def f_np(x):
        return (ufunc(x) * w).sum()

    with pyad.Tape(backend=backend) as tape:
        x = tape.input(x0)
        y = ufunc(x)
        assert isinstance(y, pyad.Array) and y.shape == (2, 3)
        np.testing.assert_allclose(y.value, ufunc(x0), rtol=1e-14, atol=1e-15)
        s = ufunc(x[1, 2])                    # active scalar in, active scalar out
        assert isinstance(s, pyad.Scalar)
        np.testing.assert_allclose(s.value, ufunc(x0[1, 2]), rtol=1e-14)
        tape.output((y * w).sum() + 2.0 * s)

    expected = central_diff_grad(f_np, x0)
    expected[1, 2] += 2.0 * central_diff_grad(lambda z: ufunc(z), np.array(x0[1, 2]))
    np.testing.assert_allclose(tape.gradient(), expected, rtol=1e-7, atol=1e-8)


BINARY_UFUNCS = [np.add, np.subtract, np.multiply, np.true_divide, np.divide, np.power,
                 np.float_power, np.arctan2, np.maximum, np.minimum, np.hypot]


@pytest.mark.parametrize("ufunc", BINARY_UFUNCS, ids=[u.__name__ for u in BINARY_UFUNCS])
def test_binary_ufunc_mixtures(backend, ufunc):
    rng = _rng(2)
    a0 = rng.uniform(0.5, 2.0, size=(3, 1))
    b0 = rng.uniform(0.5, 2.0, size=(4,)) + 0.013
    s0 = 1.37

    def f(a, b, s):
        terms = [
            ufunc(a, b),            # active array, active array (broadcast)
            ufunc(a, b0),           # active, constant array
            ufunc(a0, b),           # constant array, active
            ufunc(s, b),            # active scalar, active array
            ufunc(a, s),            # active array, active scalar
            ufunc(s, 0.7) * np.ones((3, 4)),    # active scalar, constant scalar
            ufunc(2.5, b),          # constant scalar, active
            ufunc(b0, s),           # constant array, active scalar
        ]
        return sum((t * (k + 1)).sum() for k, t in enumerate(terms))

    def f_flat(z):
        return f(z[:3].reshape(3, 1), z[3:7], z[7])

    z0 = np.concatenate([a0.ravel(), b0, [s0]])

    def f_active(z):
        return f(z[:3].reshape(3, 1), z[3:7], z[7])

    val, g = pyad.value_and_grad(f_active, backend=backend)(z0)
    np.testing.assert_allclose(val, f_flat(z0), rtol=1e-13)
    np.testing.assert_allclose(g, central_diff_grad(f_flat, z0), rtol=1e-7, atol=1e-8)


def test_ufunc_result_types(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.array([1.0, 2.0]))
        s = x[0]
        assert isinstance(np.add(s, 1.0), pyad.Scalar)
        assert isinstance(np.add(1.0, s), pyad.Scalar)
        assert isinstance(np.add(s, np.ones(3)), pyad.Array)
        assert isinstance(np.add(np.ones(3), s), pyad.Array)
        assert isinstance(np.multiply(x, 2.0), pyad.Array)
        assert isinstance(np.ones(2) + x, pyad.Array)
        assert isinstance(np.ones(2) * s, pyad.Array)
        assert isinstance(np.float64(2.0) * s, pyad.Scalar)
        assert isinstance(np.float64(2.0) * x, pyad.Array)
        assert isinstance(np.sin(s), pyad.Scalar)
        assert isinstance(np.maximum(x, s), pyad.Array)
        assert isinstance(np.greater(x, 1.5), pyad.BoolArray)
        assert isinstance(np.abs(s), pyad.Scalar)
        np.testing.assert_array_equal((np.ones(2) - x).value, [0.0, -1.0])
        np.testing.assert_array_equal((np.full(2, 6.0) / x).value, [6.0, 3.0])
        np.testing.assert_array_equal((np.full(2, 2.0) ** x).value, [2.0, 4.0])


def test_pyad_functions_on_floats_arrays_and_active(backend):
    assert pyad.sin(0.5) == np.sin(0.5)
    np.testing.assert_array_equal(pyad.exp(np.array([0.0, 1.0])), np.exp([0.0, 1.0]))
    np.testing.assert_array_equal(pyad.maximum(np.array([1.0, 3.0]), 2.0), [2.0, 3.0])
    x0 = np.array([0.3, 0.6])
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(x0)
        y = pyad.sin([x[0], x[1]])             # list of active scalars
        assert isinstance(y, pyad.Array)
        np.testing.assert_allclose(y.value, np.sin(x0), rtol=1e-15)
        z = pyad.arctan2(x, [x[1], 1.0])
        np.testing.assert_allclose(z.value, np.arctan2(x0, [x0[1], 1.0]), rtol=1e-15)
        tape.output(y.sum())
    np.testing.assert_allclose(tape.gradient(), np.cos(x0), rtol=1e-14)


def test_sign_has_zero_derivative_and_right_values(backend):
    x0 = np.array([-2.0, 0.0, 3.0])
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(x0)
        sg = np.sign(x)
        np.testing.assert_array_equal(sg.value, np.sign(x0))
        tape.output((sg * x).sum())           # = sum |x| with sign treated as a constant
    np.testing.assert_array_equal(tape.gradient(), np.sign(x0))


def test_clip_diff_trace(backend):
    x0 = np.array([[-1.0, 0.5, 2.0], [3.0, -0.2, 0.1], [1.0, 1.5, -3.0]])

    cases = [
        (lambda x: np.clip(x, -0.5, 1.2), lambda x: np.clip(x, -0.5, 1.2)),
        (lambda x: np.clip(x, None, 1.0), lambda x: np.clip(x, None, 1.0)),
        (lambda x: np.diff(x), lambda x: np.diff(x)),
        (lambda x: np.diff(x, axis=0), lambda x: np.diff(x, axis=0)),
        (lambda x: np.diff(x, n=2), lambda x: np.diff(x, n=2)),
        (lambda x: np.trace(x), lambda x: np.trace(x)),
        (lambda x: np.trace(x, offset=1), lambda x: np.trace(x, offset=1)),
    ]
    for f, f_np in cases:
        ref = f_np(x0)
        w = _rng(3).normal(size=np.shape(ref))
        obj = lambda z: (f(z) * w).sum() if np.ndim(ref) else f(z) * float(w)       # noqa: E731
        obj_np = lambda z: (f_np(z) * w).sum()                                       # noqa: E731
        with pyad.Tape(backend=backend) as tape:
            x = tape.input(x0)
            r = f(x)
            assert np.shape(r) == np.shape(ref)
            np.testing.assert_allclose(pyad.value(r), ref, rtol=1e-14)
        g = pyad.grad(obj, backend=backend)(x0)
        np.testing.assert_allclose(g, central_diff_grad(obj_np, x0), rtol=1e-7, atol=1e-8)


STRUCTURAL_FUNCS = [
    ("roll", lambda a: np.roll(a, 2)),
    ("roll_axis", lambda a: np.roll(a, -1, axis=1)),
    ("tile", lambda a: np.tile(a, (2, 1))),
    ("repeat", lambda a: np.repeat(a, 2, axis=0)),
    ("take", lambda a: np.take(a, [0, 2, 2], axis=1)),
    ("diagonal", lambda a: np.diagonal(a)),
    ("fliplr", lambda a: np.fliplr(a)),
    ("flipud", lambda a: np.flipud(a)),
    ("atleast_2d", lambda a: np.atleast_2d(a[0])),
    ("atleast_1d", lambda a: np.atleast_1d(a)),
    ("expand_dims", lambda a: np.expand_dims(a, 0)),
    ("moveaxis", lambda a: np.moveaxis(a, 1, 0)),
]


@pytest.mark.parametrize("name,fn", STRUCTURAL_FUNCS, ids=[s[0] for s in STRUCTURAL_FUNCS])
def test_structural_array_functions(backend, name, fn):
    x0 = _rng(4).normal(size=(3, 3))
    ref = fn(x0)
    w = _rng(5).normal(size=ref.shape)
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(x0)
        n0 = tape.n_ops
        r = fn(x)
        assert tape.n_ops == n0
        assert isinstance(r, pyad.Array) and r.shape == ref.shape
        np.testing.assert_array_equal(r.value, ref)
        tape.output((r * w).sum())
    idx = fn(np.arange(9).reshape(3, 3))
    g_ref = np.zeros(9)
    np.add.at(g_ref, idx.ravel(), w.ravel())
    np.testing.assert_allclose(tape.gradient(), g_ref.reshape(3, 3), atol=1e-14)


def test_shape_queries_and_like(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.ones((2, 3)))
        assert np.shape(x) == (2, 3)
        assert np.ndim(x) == 2
        assert np.size(x) == 6
        assert np.size(x, 1) == 3
        assert x.dtype == np.float64
        z = np.zeros_like(x)
        o = np.ones_like(x)
        assert isinstance(z, np.ndarray) and z.shape == (2, 3) and not z.any()
        assert isinstance(o, np.ndarray) and o.shape == (2, 3) and o.all()


def test_ufunc_outer_and_reduce_methods(backend):
    a0, b0 = np.array([1.0, 2.0, 3.0]), np.array([0.5, -1.0])
    with pyad.Tape(backend=backend) as tape:
        a, b = tape.input(a0), tape.input(b0)
        m = np.multiply.outer(a, b)
        np.testing.assert_allclose(m.value, np.multiply.outer(a0, b0))
        s = np.subtract.outer(a, b0)
        np.testing.assert_allclose(s.value, np.subtract.outer(a0, b0))
        r = np.add.reduce(m, axis=1)
        np.testing.assert_allclose(r.value, m.value.sum(axis=1))
        tape.output(m.sum() + s.sum())
    ga, gb = tape.gradient()
    np.testing.assert_allclose(ga, b0.sum() + 2.0)
    np.testing.assert_allclose(gb, a0.sum() * np.ones(2))


# ---- unsupported: TypeError naming the function ---------------------------------

UNSUPPORTED = [
    ("argsort", lambda x: np.argsort(x)),
    ("argmax", lambda x: np.argmax(x)),
    ("median", lambda x: np.median(x)),
    ("rint", lambda x: np.rint(x)),
    ("trunc", lambda x: np.trunc(x)),
    ("remainder", lambda x: np.mod(x, 2.0)),      # np.mod is numpy.remainder
    ("fft", lambda x: np.fft.fft(x)),
    ("pinv", lambda x: np.linalg.pinv(x.reshape(2, 2))),  # inv is a row now (test_linalg_lu.py)
    ("add.at", lambda x: np.add.at(x, [0], 1.0)),
    ("ptp", lambda x: np.ptp(x)),
    ("unique", lambda x: np.unique(x)),
    ("sinc", lambda x: np.sinc(x)),
    ("isnan", lambda x: np.isnan(x)),
    ("nansum", lambda x: np.nansum(x)),
]


@pytest.mark.parametrize("name,fn", UNSUPPORTED, ids=[u[0] for u in UNSUPPORTED])
def test_unsupported_numpy_function_raises_typeerror_naming_it(backend, name, fn):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.array([1.0, 2.0, 3.0, 4.0]))
        with pytest.raises(TypeError) as info:
            fn(x)
        assert name in str(info.value)


def test_unsupported_ufunc_on_active_scalar_raises(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.array([1.5, 2.0]))
        with pytest.raises(TypeError, match="rint"):
            np.rint(x[0])
        with pytest.raises(TypeError, match="argsort"):
            np.argsort(x[0])


def test_out_argument_is_rejected(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.array([1.0, 2.0]))
        out = np.empty(2)
        with pytest.raises(TypeError):
            np.sin(x, out=out)
        with pytest.raises(TypeError):
            np.add(x, 1.0, out=out)
        with pytest.raises(TypeError):
            np.sum(x, out=np.empty(()))


def test_no_silent_conversion_to_numpy_or_float(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.array([1.0, 2.0]))
        with pytest.raises(TypeError, match=r"\.value"):
            np.asarray(x)
        with pytest.raises(TypeError):
            np.array(x)
        with pytest.raises(TypeError):
            np.array(x, dtype=object)
        with pytest.raises(TypeError):
            float(x)
        with pytest.raises(TypeError, match=r"pyad\.sin|\.value"):
            float(x[0])
        with pytest.raises(TypeError):
            int(x[0])
        with pytest.raises(TypeError):
            x.astype(np.float32)
        with pytest.raises((TypeError, IndexError)):   # numpy rewords __index__'s error
            np.ones(2)[x[0]]
        import math
        with pytest.raises(TypeError):
            math.sin(x[0])


def test_setting_active_into_numpy_array_raises(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.array([1.0, 2.0]))
        buf = np.zeros(2)
        with pytest.raises(TypeError):
            buf[0] = x[0]
        with pytest.raises(TypeError):
            buf[:] = x


def test_mixing_two_tapes_raises(backend):
    with pyad.Tape(backend=backend) as t1:
        x = t1.input(np.ones(2))
    with pyad.Tape(backend=backend) as t2:
        y = t2.input(np.ones(2))
        with pytest.raises(pyad.MixedTapeError):
            np.add(x, y)
        with pytest.raises(pyad.MixedTapeError):
            x * y[0]
        with pytest.raises(pyad.MixedTapeError):
            np.concatenate([x, y])
        with pytest.raises(pyad.MixedTapeError):
            pyad.where(y > 0, x, y)


def test_numpy_constants_unaffected():
    # plain numpy arrays still go through numpy
    a = np.array([0.5, 1.0])
    np.testing.assert_array_equal(np.sin(a), np.sin([0.5, 1.0]))
    assert isinstance(np.sum(a), np.floating)


def test_replay_of_protocol_heavy_function(backend):
    rng = _rng(6)
    C = rng.normal(size=(3, 3))

    def f(x):
        y = np.tanh(np.dot(C, x)) + np.maximum(x, 0.1) * np.exp2(-x)
        z = np.concatenate([np.cumsum(y), np.diff(x)])
        return np.linalg.norm(z) + np.sum(np.hypot(x, 1.0)) + np.mean(np.log1p(x ** 2))

    x0 = rng.uniform(0.2, 1.0, size=3)
    tape = pyad.trace(f, x0, backend=backend)
    for _ in range(3):
        x1 = rng.uniform(0.2, 1.0, size=3)
        np.testing.assert_allclose(tape(x1), f(x1), rtol=1e-13)
        np.testing.assert_allclose(tape.gradient(x1), central_diff_grad(f, x1), rtol=1e-7, atol=1e-8)


# Arguments that change the result must be honoured or refused, never dropped.
RESULT_CHANGING_KWARGS = [
    ("sum_where", lambda x, m: np.sum(x, where=m), lambda a, m: np.sum(a, where=m)),
    ("sum_initial", lambda x, m: np.sum(x, initial=10.0), lambda a, m: np.sum(a, initial=10.0)),
    ("prod_initial", lambda x, m: np.prod(x, initial=2.0), lambda a, m: np.prod(a, initial=2.0)),
    ("max_initial", lambda x, m: np.max(x, initial=10.0), lambda a, m: np.max(a, initial=10.0)),
    ("min_where", lambda x, m: np.min(x, where=m, initial=9.0),
     lambda a, m: np.min(a, where=m, initial=9.0)),
    ("mean_where", lambda x, m: np.mean(x, where=m), lambda a, m: np.mean(a, where=m)),
]


@pytest.mark.parametrize("name,fn,ref", RESULT_CHANGING_KWARGS,
                         ids=[k[0] for k in RESULT_CHANGING_KWARGS])
def test_reduction_kwargs_honoured_or_refused(backend, name, fn, ref):
    x0 = np.array([1.0, 2.0, 5.0])
    m = np.array([False, True, True])
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(x0)
        try:
            r = fn(x, m)
        except TypeError:
            return                                   # refused: fine
        np.testing.assert_allclose(pyad.value(r), ref(x0, m), rtol=1e-14)


@pytest.mark.parametrize("name,fn", [
    ("cumsum", lambda x, buf: np.cumsum(x, out=buf)),
    ("cumprod", lambda x, buf: np.cumprod(x, out=buf)),
    ("concatenate", lambda x, buf: np.concatenate([x[:1], x[1:]], out=buf)),
    ("clip", lambda x, buf: np.clip(x, 0.0, 2.0, out=buf)),
    ("sum", lambda x, buf: np.sum(x, axis=None, out=buf[:1].reshape(()))),
], ids=lambda v: v if isinstance(v, str) else "")
def test_out_argument_is_never_silently_ignored(backend, name, fn):
    x0 = np.array([1.0, 2.0, 3.0])
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(x0)
        buf = np.zeros(3)
        with pytest.raises(TypeError):
            fn(x, buf)


def test_diff_of_0d_raises_valueerror_like_numpy(backend):
    # numpy: "diff requires input that is at least one dimensional" (ValueError)
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.array([1.0, 2.0]))
        with pytest.raises(ValueError):
            np.diff(x[0])
