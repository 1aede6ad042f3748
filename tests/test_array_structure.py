"""Structural operations on active arrays: they only move slot indices.

Oracles: numpy applied to the plain values (for values), numpy scatter-add of
the weights (for gradients of index-moving ops), Rosenbrock's closed-form
gradient, central differences, and `tape.n_ops` for the "records nothing" claim.
"""
import numpy as np
import pytest

import pyad
from helpers import central_diff_grad, central_diff_jvp


def _x0(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape)


def _scatter_grad(shape, key, w):
    """d/dx sum(w * x[key]) by numpy: scatter-add the weights back."""
    g = np.zeros(shape)
    idx = np.arange(int(np.prod(shape))).reshape(shape)[key]
    np.add.at(g.reshape(-1), np.asarray(idx).reshape(-1), np.asarray(w, dtype=float).reshape(-1))
    return g


# ---- indexing ---------------------------------------------------------------

BASIC_KEYS = [
    (1,),
    (-1,),
    (slice(None, None, 2),),
    (slice(None, None, -1),),
    (1, 2),
    (-1, -2, 0),
    (slice(0, 2), slice(1, None)),
    (Ellipsis, 1),
    (0, Ellipsis),
    (None, 1),
    (slice(None), None, 2),
    (1, slice(None), -1),
    (slice(5, 7),),                        # empty slice
]

FANCY_KEYS = [
    (np.array([0, 2, 1, 0]),),                       # repeated rows
    (np.array([[0, 1], [2, 2]]),),                   # 2-d index array
    (slice(None), np.array([3, 0, 3])),
    (np.array([0, 2]), np.array([1, 3])),            # pointwise
    (np.array([[0], [2]]), np.array([1, 3, 0])),     # broadcast index arrays
    ([2, 0],),                                       # plain list
    (np.array([-1, -3]), Ellipsis, np.array([0, 1])),
]


@pytest.mark.parametrize("key", BASIC_KEYS + FANCY_KEYS)
def test_indexing_values_and_gradient(backend, key):
    shape = (3, 4, 2)
    x0 = _x0(shape)
    ref = x0[key]
    w = np.random.default_rng(1).normal(size=np.shape(ref))

    with pyad.Tape(backend=backend) as tape:
        x = tape.input(x0)
        n0 = tape.n_ops
        y = x[key]
        assert tape.n_ops == n0, "indexing must record nothing"
        assert np.shape(y) == ref.shape
        np.testing.assert_array_equal(pyad.value(y), ref)
        tape.output((y * w).sum() if np.ndim(ref) else y * w)

    g = tape.gradient()
    assert g.shape == shape and g.dtype == np.float64
    np.testing.assert_allclose(g, _scatter_grad(shape, key, w), rtol=0, atol=1e-14)


@pytest.mark.parametrize("mask_kind", ["full", "rows", "list"])
def test_boolean_mask_indexing(backend, mask_kind):
    x0 = _x0((3, 4))
    if mask_kind == "full":
        mask = x0 > 0
    elif mask_kind == "rows":
        mask = np.array([True, False, True])
    else:
        mask = [False, True, True]
    ref = x0[mask]
    w = np.arange(1.0, ref.size + 1).reshape(ref.shape)

    def f(x):
        return (x[mask] * w).sum()

    tape = pyad.trace(f, x0, backend=backend)
    np.testing.assert_allclose(tape(), (ref * w).sum(), rtol=1e-14)
    np.testing.assert_allclose(tape.gradient(), _scatter_grad((3, 4), mask, w), atol=1e-14)
    # Replay at a new point with the same (constant) mask.
    x1 = _x0((3, 4), seed=5)
    np.testing.assert_allclose(tape(x1), (x1[mask] * w).sum(), rtol=1e-13)


def test_index_with_active_value_is_rejected(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.arange(3.0))
        with pytest.raises(TypeError):
            x[x[0]]


def test_index_out_of_bounds_raises_indexerror(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.arange(3.0))
        with pytest.raises(IndexError):
            x[3]
        with pytest.raises(IndexError):
            x[0, 0]


# ---- reshaping and re-ordering -----------------------------------------------

STRUCTURAL = [
    ("reshape", lambda x: x.reshape(4, 6), lambda a: a.reshape(4, 6)),
    ("reshape_tuple", lambda x: x.reshape((2, -1)), lambda a: a.reshape((2, -1))),
    ("reshape_F", lambda x: x.reshape((6, 4), order="F"), lambda a: a.reshape((6, 4), order="F")),
    ("np_reshape", lambda x: np.reshape(x, (3, 8)), lambda a: np.reshape(a, (3, 8))),
    ("ravel", lambda x: x.ravel(), lambda a: a.ravel()),
    ("np_ravel", lambda x: np.ravel(x), lambda a: np.ravel(a)),
    ("flatten", lambda x: x.flatten(), lambda a: a.flatten()),
    ("T", lambda x: x.T, lambda a: a.T),
    ("transpose", lambda x: x.transpose(), lambda a: a.transpose()),
    ("transpose_axes", lambda x: x.transpose(1, 2, 0), lambda a: a.transpose(1, 2, 0)),
    ("transpose_tuple", lambda x: x.transpose((2, 0, 1)), lambda a: a.transpose((2, 0, 1))),
    ("np_transpose", lambda x: np.transpose(x, (0, 2, 1)), lambda a: np.transpose(a, (0, 2, 1))),
    ("swapaxes", lambda x: x.swapaxes(0, 2), lambda a: a.swapaxes(0, 2)),
    ("np_swapaxes", lambda x: np.swapaxes(x, -1, 1), lambda a: np.swapaxes(a, -1, 1)),
    ("moveaxis", lambda x: np.moveaxis(x, 0, -1), lambda a: np.moveaxis(a, 0, -1)),
    ("flip", lambda x: np.flip(x), lambda a: np.flip(a)),
    ("flip_axis", lambda x: np.flip(x, axis=1), lambda a: np.flip(a, axis=1)),
    ("flip_tuple", lambda x: np.flip(x, axis=(0, 2)), lambda a: np.flip(a, axis=(0, 2))),
    ("expand_dims", lambda x: np.expand_dims(x, 1), lambda a: np.expand_dims(a, 1)),
    ("squeeze", lambda x: x[:, :1].squeeze(), lambda a: a[:, :1].squeeze()),
    ("np_squeeze_axis", lambda x: np.squeeze(x[:, :1], axis=1), lambda a: np.squeeze(a[:, :1], axis=1)),
    ("copy", lambda x: x.copy(), lambda a: a.copy()),
    ("broadcast_to", lambda x: np.broadcast_to(x, (2, 2, 3, 4)), lambda a: np.broadcast_to(a, (2, 2, 3, 4))),
    ("broadcast_to_row", lambda x: np.broadcast_to(x[0, 0], (5, 4)), lambda a: np.broadcast_to(a[0, 0], (5, 4))),
]


@pytest.mark.parametrize("name,op,ref", STRUCTURAL, ids=[s[0] for s in STRUCTURAL])
def test_structural_op_values_gradient_and_zero_cost(backend, name, op, ref):
    shape = (2, 3, 4)
    x0 = _x0(shape)
    expected = ref(x0)
    w = np.random.default_rng(2).normal(size=expected.shape)

    with pyad.Tape(backend=backend) as tape:
        x = tape.input(x0)
        n0 = tape.n_ops
        y = op(x)
        assert tape.n_ops == n0, f"{name} must record no ops"
        assert y.shape == expected.shape
        np.testing.assert_array_equal(y.value, expected)
        tape.output((y * w).sum())

    # The oracle: the same structural op applied to an index array.
    idx = ref(np.arange(x0.size).reshape(shape))
    g_ref = np.zeros(x0.size)
    np.add.at(g_ref, idx.ravel(), w.ravel())
    np.testing.assert_allclose(tape.gradient(), g_ref.reshape(shape), atol=1e-14)


def test_transpose_of_1d_and_T_of_2d(backend):
    x0 = _x0((3, 2))
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(x0)
        assert x.T.shape == (2, 3)
        np.testing.assert_array_equal(x.T.value, x0.T)
        np.testing.assert_array_equal(x[:, 0].T.value, x0[:, 0])
        tape.output(x.T[1, 2])
    expected = np.zeros((3, 2))
    expected[2, 1] = 1.0
    np.testing.assert_array_equal(tape.gradient(), expected)


def test_reshape_size_mismatch_raises(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.zeros(6))
        with pytest.raises(ValueError):
            x.reshape(4, 2)


# ---- joining and splitting -----------------------------------------------------

def test_concatenate_stack_hstack_vstack_cost_nothing(backend):
    a0, b0 = _x0((2, 3)), _x0((2, 3), seed=1)
    joins = [
        (lambda a, b: np.concatenate([a, b]), lambda a, b: np.concatenate([a, b])),
        (lambda a, b: np.concatenate((a, b), axis=1), lambda a, b: np.concatenate((a, b), axis=1)),
        (lambda a, b: np.concatenate([a, b], axis=-1), lambda a, b: np.concatenate([a, b], axis=-1)),
        (lambda a, b: np.stack([a, b]), lambda a, b: np.stack([a, b])),
        (lambda a, b: np.stack([a, b], axis=2), lambda a, b: np.stack([a, b], axis=2)),
        (lambda a, b: np.hstack([a, b]), lambda a, b: np.hstack([a, b])),
        (lambda a, b: np.vstack([a, b]), lambda a, b: np.vstack([a, b])),
        (lambda a, b: np.hstack([a[0], b[1]]), lambda a, b: np.hstack([a[0], b[1]])),
        (lambda a, b: np.vstack([a[0], b[1]]), lambda a, b: np.vstack([a[0], b[1]])),
        (lambda a, b: pyad.stack([a, b], axis=1), lambda a, b: np.stack([a, b], axis=1)),
    ]
    for op, ref in joins:
        with pyad.Tape(backend=backend) as tape:
            a, b = tape.input(a0), tape.input(b0)
            n0 = tape.n_ops
            y = op(a, b)
            assert tape.n_ops == n0
            np.testing.assert_array_equal(y.value, ref(a0, b0))


def test_concatenate_gradient_and_replay(backend):
    a0, b0 = _x0((2, 3)), _x0((4, 3), seed=1)
    w = _x0((6, 3), seed=2)

    def f(a, b):
        return (np.concatenate([np.sin(a), b * b]) * w).sum()

    def f_np(a, b):
        return (np.concatenate([np.sin(a), b * b]) * w).sum()

    ga, gb = pyad.grad(f, argnums=(0, 1), backend=backend)(a0, b0)
    np.testing.assert_allclose(ga, np.cos(a0) * w[:2], rtol=1e-13)
    np.testing.assert_allclose(gb, 2 * b0 * w[2:], rtol=1e-13)

    tape = pyad.trace(f, a0, b0, backend=backend)
    a1, b1 = a0 + 0.3, b0 - 0.2
    np.testing.assert_allclose(tape(a1, b1), f_np(a1, b1), rtol=1e-13)
    ga1, gb1 = tape.gradient(a1, b1)
    np.testing.assert_allclose(ga1, np.cos(a1) * w[:2], rtol=1e-13)
    np.testing.assert_allclose(gb1, 2 * b1 * w[2:], rtol=1e-13)


def test_concatenate_active_with_constant(backend):
    x0 = np.array([1.0, 2.0, 3.0])
    c = np.array([10.0, 20.0])

    def f(x):
        y = np.concatenate([c, x, c])
        return (y * np.arange(1.0, 8.0)).sum()

    val, g = pyad.value_and_grad(f, backend=backend)(x0)
    np.testing.assert_allclose(val, (np.concatenate([c, x0, c]) * np.arange(1.0, 8.0)).sum())
    np.testing.assert_array_equal(g, [3.0, 4.0, 5.0])


def test_stack_of_active_scalars(backend):
    x0 = np.array([0.5, -1.5, 2.0])

    def f(x):
        a, b, c = x
        v = pyad.stack([a * b, b * c, c * a, 3.0])
        assert isinstance(v, pyad.Array) and v.shape == (4,)
        return (v * np.array([1.0, 2.0, 3.0, 4.0])).sum()

    g = pyad.grad(f, backend=backend)(x0)
    a, b, c = x0
    np.testing.assert_allclose(g, [b + 3 * c, a + 2 * c, 2 * b + 3 * a], rtol=1e-14)


def test_stack_of_scalars_into_2d(backend):
    x0 = np.array([1.0, 2.0, 3.0, 4.0])
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(x0)
        m = pyad.stack([pyad.stack([x[0], x[1]]), pyad.stack([x[2], x[3]])])
        m2 = pyad.array([[x[0], x[1]], [x[2], x[3]]])
        assert m.shape == m2.shape == (2, 2)
        np.testing.assert_array_equal(m.value, x0.reshape(2, 2))
        np.testing.assert_array_equal(m2.value, x0.reshape(2, 2))
        tape.output((m @ m2).sum())
    M = x0.reshape(2, 2)
    # d/dM sum(M @ M) = 1 M^T + M^T 1  (1 the all-ones matrix)
    ones = np.ones((2, 2))
    np.testing.assert_allclose(tape.gradient().reshape(2, 2), ones @ M.T + M.T @ ones, rtol=1e-14)


@pytest.mark.parametrize("how", [3, [1, 4], [2, 2, 5]])
def test_split_parts_and_gradient(backend, how):
    x0 = _x0((6, 2))
    parts_ref = np.split(x0, how) if how != [2, 2, 5] else np.split(x0, [2, 2, 5])

    def f(x):
        parts = np.split(x, how)
        assert len(parts) == len(parts_ref)
        for p, r in zip(parts, parts_ref):
            assert p.shape == r.shape
            np.testing.assert_array_equal(p.value, r)
        return sum(((k + 1.0) * p).sum() for k, p in enumerate(parts) if p.size)

    def f_np(x):
        return sum(((k + 1.0) * p).sum() for k, p in enumerate(np.split(x, how)) if p.size)

    g = pyad.grad(f, backend=backend)(x0)
    np.testing.assert_allclose(g, central_diff_grad(f_np, x0), rtol=1e-7, atol=1e-9)


def test_split_along_axis_and_array_split(backend):
    x0 = _x0((2, 5))
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(x0)
        n0 = tape.n_ops
        parts = np.split(x, 5, axis=1)
        uneven = np.array_split(x, 3, axis=-1)
        assert tape.n_ops == n0
        for p, r in zip(parts, np.split(x0, 5, axis=1)):
            np.testing.assert_array_equal(p.value, r)
        assert [p.shape for p in uneven] == [r.shape for r in np.array_split(x0, 3, axis=-1)]
        for p, r in zip(uneven, np.array_split(x0, 3, axis=-1)):
            np.testing.assert_array_equal(p.value, r)
        with pytest.raises(ValueError):
            np.split(x, 3, axis=1)


def test_broadcast_to_gradient_sums_over_new_axes(backend):
    x0 = _x0((3, 1))

    def f(x):
        return (np.broadcast_to(x, (2, 3, 4)) ** 2).sum()

    g = pyad.grad(f, backend=backend)(x0)
    np.testing.assert_allclose(g, 2 * x0 * 8, rtol=1e-14)


# ---- len, iteration, 0-d, empty ------------------------------------------------

def test_len_and_iteration(backend):
    x0 = _x0((3, 2))
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(x0)
        assert len(x) == 3
        assert len(x[0]) == 2
        rows = list(x)
        assert len(rows) == 3 and all(isinstance(r, pyad.Array) and r.shape == (2,) for r in rows)
        elems = list(x[1])
        assert len(elems) == 2 and all(isinstance(e, pyad.Scalar) for e in elems)
        assert [e.value for e in elems] == list(x0[1])
        n0 = tape.n_ops
        list(x.ravel())
        assert tape.n_ops == n0
        total = 0.0
        for k, e in enumerate(x.ravel()):
            total = total + (k + 1) * e * e
        tape.output(total)
    np.testing.assert_allclose(tape.gradient(), 2 * x0 * np.arange(1.0, 7.0).reshape(3, 2),
                               rtol=1e-14)


def test_len_of_scalar_element_raises(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.ones(2))
        s = x.sum()
        with pytest.raises(TypeError):
            len(s)


def test_indexing_to_scalar_gives_scalar(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.arange(6.0).reshape(2, 3))
        s = x[1, 2]
        assert isinstance(s, pyad.Scalar)
        assert s.value == 5.0
        assert x[-1][-1].value == 5.0


def test_empty_array_input(backend):
    x0 = np.zeros((0,))
    g = pyad.grad(lambda x: x.sum() + 2.0, backend=backend)(x0)
    assert g.shape == (0,) and g.dtype == np.float64

    x1 = np.zeros((2, 0))
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(x1)
        assert x.shape == (2, 0) and len(x) == 2
        assert x.T.shape == (0, 2)
        assert x.reshape(0, 5).shape == (0, 5)
        assert np.concatenate([x, x], axis=1).shape == (2, 0)
        assert (x * 2.0).shape == (2, 0)
        assert list(x.T) == []


def test_structural_ops_on_empty_slices(backend):
    x0 = _x0((4,))
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(x0)
        e = x[2:2]
        assert e.shape == (0,)
        y = np.concatenate([e, x[:2], e])
        np.testing.assert_array_equal(y.value, x0[:2])
        tape.output(y.sum())
    np.testing.assert_array_equal(tape.gradient(), [1.0, 1.0, 0.0, 0.0])


# ---- __setitem__ ---------------------------------------------------------------

def test_setitem_replaces_slots(backend):
    x0 = np.array([1.0, 2.0, 3.0, 4.0])

    def f(x):
        y = x.copy()
        y[0] = x[1] * x[2]          # active scalar
        y[1:3] = 5.0                # constant
        y[-1] = y[-1] ** 2
        return (y * np.array([1.0, 10.0, 100.0, 1000.0])).sum()

    val, g = pyad.value_and_grad(f, backend=backend)(x0)
    np.testing.assert_allclose(val, 6.0 + 50 + 500 + 16000)
    np.testing.assert_allclose(g, [0.0, 3.0, 2.0, 8000.0], rtol=1e-14)


def test_setitem_with_active_array_and_mask(backend):
    x0 = np.array([[1.0, -2.0], [-3.0, 4.0]])

    def f(x):
        y = x.copy()
        y[:, 0] = np.sin(x[:, 1])
        y[x0 < 0] = 0.0             # constant mask
        return (y * y).sum()

    def f_np(x):
        y = x.copy()
        y[:, 0] = np.sin(x[:, 1])
        y[x0 < 0] = 0.0
        return (y * y).sum()

    val, g = pyad.value_and_grad(f, backend=backend)(x0)
    np.testing.assert_allclose(val, f_np(x0), rtol=1e-14)
    np.testing.assert_allclose(g, central_diff_grad(f_np, x0), rtol=1e-7, atol=1e-9)


def test_setitem_errors(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.array([1.0, -2.0, 3.0]))
        y = x.copy()
        with pytest.raises((TypeError, IndexError)):
            y[x > 0] = 0.0                    # active mask: not a constant index
        with pytest.raises((TypeError, IndexError)):
            y[x[0]] = 1.0
        with pytest.raises(ValueError):
            y[0] = x                          # a sequence into one element
        with pytest.raises(ValueError):
            y[0:2] = np.ones(3)
        np.testing.assert_array_equal(y.value, [1.0, -2.0, 3.0])


def test_setitem_on_copy_leaves_original(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.array([1.0, 2.0]))
        y = x.copy()
        y[0] = 7.0
        np.testing.assert_array_equal(x.value, [1.0, 2.0])
        np.testing.assert_array_equal(y.value, [7.0, 2.0])
        tape.output(x.sum() + y.sum())
    np.testing.assert_array_equal(tape.gradient(), [1.0, 2.0])


def test_setitem_into_broadcast_view_is_read_only_like_numpy(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.array([1.0, 2.0, 3.0]))
        b = np.broadcast_to(x, (2, 3))
        with pytest.raises(ValueError, match="read-only"):
            b[0, 0] = 9.0
        np.testing.assert_array_equal(x.value, [1.0, 2.0, 3.0])
        np.testing.assert_array_equal(b.value[0], [1.0, 2.0, 3.0])


# ---- Rosenbrock: slicing + elementwise + sum, closed-form gradient ---------------

def _rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def _rosen_der(x):
    xm, xm_m1, xm_p1 = x[1:-1], x[:-2], x[2:]
    der = np.zeros_like(x)
    der[1:-1] = 200 * (xm - xm_m1 ** 2) - 400 * (xm_p1 - xm ** 2) * xm - 2 * (1 - xm)
    der[0] = -400 * x[0] * (x[1] - x[0] ** 2) - 2 * (1 - x[0])
    der[-1] = 200 * (x[-1] - x[-2] ** 2)
    return der


def _rosen_hess_prod(x, p):
    Hp = np.zeros_like(x)
    Hp[0] = (1200 * x[0] ** 2 - 400 * x[1] + 2) * p[0] - 400 * x[0] * p[1]
    Hp[1:-1] = (-400 * x[:-2] * p[:-2] + (202 + 1200 * x[1:-1] ** 2 - 400 * x[2:]) * p[1:-1]
                - 400 * x[1:-1] * p[2:])
    Hp[-1] = -400 * x[-2] * p[-2] + 200 * p[-1]
    return Hp


def test_rosenbrock_gradient_hvp_and_replay(backend):
    rng = np.random.default_rng(3)
    x0 = rng.uniform(-1.5, 1.5, size=8)
    val, g = pyad.value_and_grad(_rosen, backend=backend)(x0)
    np.testing.assert_allclose(val, _rosen(x0), rtol=1e-14)
    np.testing.assert_allclose(g, _rosen_der(x0), rtol=1e-12)

    tape = pyad.trace(_rosen, x0, backend=backend)
    for _ in range(3):
        x1 = rng.uniform(-1.5, 1.5, size=8)
        v = rng.normal(size=8)
        np.testing.assert_allclose(tape(x1), _rosen(x1), rtol=1e-13)
        np.testing.assert_allclose(tape.gradient(x1), _rosen_der(x1), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(tape.hvp(x1, v), _rosen_hess_prod(x1, v), rtol=1e-11, atol=1e-11)
        # forward mode agrees with reverse mode
        _, jv = tape.jvp(x1, v)
        np.testing.assert_allclose(jv, _rosen_der(x1) @ v, rtol=1e-12, atol=1e-12)
    assert tape.retraces == 0


def test_rosenbrock_2d_input_grad_shape(backend):
    x0 = np.linspace(-1.0, 1.0, 6).reshape(2, 3)
    g = pyad.grad(lambda x: _rosen(x.ravel()), backend=backend)(x0)
    assert g.shape == (2, 3) and g.dtype == np.float64
    np.testing.assert_allclose(g, _rosen_der(x0.ravel()).reshape(2, 3), rtol=1e-12)


# ---- transforms accept n-d inputs ----------------------------------------------

def test_transforms_return_arrays_of_input_shape(backend):
    x0 = _x0((2, 3, 2))
    w = _x0((2, 3, 2), seed=4)

    def f(x):
        return (np.sin(x.transpose(2, 0, 1)) * w.transpose(2, 0, 1)).sum()

    def vec(x):
        return np.tanh(x[:, 1:, :]) * 2.0

    g = pyad.grad(f, backend=backend)(x0)
    assert g.shape == x0.shape and g.dtype == np.float64
    np.testing.assert_allclose(g, np.cos(x0) * w, rtol=1e-14)

    val, g2 = pyad.value_and_grad(f, backend=backend)(x0)
    assert isinstance(val, float)
    np.testing.assert_allclose(val, (np.sin(x0) * w).sum(), rtol=1e-14)
    np.testing.assert_allclose(g2, g, rtol=0)

    v = _x0((2, 3, 2), seed=7)
    y, jv = pyad.jvp(vec, x0, v, backend=backend)
    assert y.shape == jv.shape == (2, 2, 2)
    np.testing.assert_allclose(y, vec(x0), rtol=1e-14)
    np.testing.assert_allclose(jv, central_diff_jvp(vec, x0, v), rtol=1e-7, atol=1e-9)

    u = _x0((2, 2, 2), seed=8)
    y2, uj = pyad.vjp(vec, x0, u, backend=backend)
    assert uj.shape == x0.shape and uj.dtype == np.float64
    np.testing.assert_allclose(y2, vec(x0), rtol=1e-14)
    # <u, J v> computed both ways
    np.testing.assert_allclose((uj * v).sum(), (u * jv).sum(), rtol=1e-12)

    tape = pyad.trace(vec, x0, backend=backend)
    x1 = x0 * 0.5
    out = tape(x1)
    assert out.shape == (2, 2, 2)
    np.testing.assert_allclose(out, vec(x1), rtol=1e-14)


def test_integer_nd_input_gives_float64_gradient(backend):
    x0 = np.arange(6).reshape(2, 3)
    g = pyad.grad(lambda x: (x.T ** 2).sum(), backend=backend)(x0)
    assert g.shape == (2, 3) and g.dtype == np.float64
    np.testing.assert_array_equal(g, 2.0 * x0)
    tape = pyad.trace(lambda x: x[:, ::-1] * 3.0, x0, backend=backend)
    out = tape(x0 + 1)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, (x0 + 1)[:, ::-1] * 3.0)


def test_batched_replay_of_nd_input(backend):
    w = np.arange(6.0).reshape(2, 3)

    def f(x):
        return (np.sin(x.T) * w.T).sum()

    tape = pyad.trace(f, np.ones((2, 3)), backend=backend)
    X = np.random.default_rng(11).normal(size=(4, 2, 3))
    G = tape.gradient(X, batch=True)
    assert G.shape == (4, 2, 3) and G.dtype == np.float64
    np.testing.assert_allclose(G, np.cos(X) * w, rtol=1e-14)
    np.testing.assert_allclose(tape(X, batch=True), [(np.sin(x) * w).sum() for x in X], rtol=1e-14)
