"""Operands passed as views (issue 13, recording speed).

A row's result is a run of consecutive slots (a _Ramp); arrays over it and its
views (basic indexing, reshape, transposes) reach the stores as (first slot,
strides) instead of index arrays, until an index array is read. Each program
below is checked against numpy (values), central differences (gradients) and
the other backend; then the stores' rec_view / reduce_view entry points are
called directly with the layouts that are easy to get wrong: negative strides,
stride 0, empty results, and views reaching outside the tape, which C must
refuse with a clear error rather than read.
"""
import numpy as np
import pytest

import pyad
from pyad import ops
from pyad.array import _viewable

X = np.array([[0.7, -1.3, 0.4, 2.1], [-0.6, 1.5, 0.9, 0.3], [1.1, -0.2, 0.5, -0.9]])
V = np.array([0.3, -1.1, 0.7, 1.9])


def _programs():
    # each: (function of a (3, 4) array and a (4,) vector, returning a scalar)
    return {
        "reversed rows and columns": lambda x, v: np.sum(np.sin(x[::-1, ::-1]) * x),
        "negative stride against positive": lambda x, v: np.sum(v[::-1] * v),
        "step 2, negative step": lambda x, v: np.sum(np.exp(x[:, ::2]) * x[::-1, 1::2]),
        "stride 0: a row vector over rows": lambda x, v: np.sum(np.tanh(x * 2.0 + v) ** 2),
        "stride 0: a column over columns": lambda x, v: np.sum(x * x[:, :1]),
        "outer product by broadcasting": lambda x, v: np.sum((v[:, None] * v[None, :]) ** 2),
        "transposes, twice the same": lambda x, v: np.sum(x.T * x.T + x.T),
        "a scalar from a view": lambda x, v: x[1, 2] * np.sum(x[2] * v),
        "reshape and ravel views": lambda x, v: np.sum(x.reshape(4, 3)[::2] ** 2)
        + np.sum(np.cos(x.ravel()[3:9])),
        "ravel of a transpose (a copy)": lambda x, v: np.sum(np.sin(x.T.ravel()) * np.arange(12.0)),
        "reductions over views": lambda x, v: np.sum(np.max(x.T[::-1], axis=1))
        + np.sum(np.mean((x * 1.5)[:, 1:], axis=0) * v[1:]),
        "products of views": lambda x, v: np.sum((x * 2.0).T @ (x[:, :3] * 1.0)) + (x @ v)[1],
        "empty views": lambda x, v: np.sum(x[:, 2:2] * 3.0) + np.sum(np.exp(v[4:])) + x[0, 0],
        "comparisons and where": lambda x, v: np.sum(pyad.where(x[::-1] > x * 0.5, x, -x)),
    }


PROGRAMS = _programs()


def _central(f, x, v, h=1e-6):
    flat = x.ravel()
    g = np.empty_like(flat)
    for i in range(flat.size):
        e = np.zeros_like(flat)
        e[i] = h
        g[i] = (f((flat + e).reshape(x.shape), v) - f((flat - e).reshape(x.shape), v)) / (2 * h)
    return g.reshape(x.shape)


def _plain(f):
    """f on plain numpy arrays (pyad.where is np.where there)."""
    return lambda x, v: float(f(x, v))


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_view_programs_match_numpy_and_differences(backend, name):
    f = PROGRAMS[name]
    tape = pyad.trace(f, X, V, backend=backend)
    assert np.isclose(tape(X, V), _plain(f)(X, V), rtol=1e-13)
    gx, gv = tape.gradient(X, V)
    assert np.allclose(gx, _central(f, X, V), rtol=1e-6, atol=1e-7)
    other = pyad.trace(f, X, V, backend="python" if backend == "c" else "c")
    ox, ov = other.gradient(X, V)
    assert np.allclose(gx, ox, rtol=1e-13, atol=1e-14)
    assert np.allclose(gv, ov, rtol=1e-13, atol=1e-14)
    # another point: the views are replayed, not the recorded numbers
    X2, V2 = X[::-1] * 0.9 + 0.1, V * 1.3
    assert np.isclose(tape(X2, V2), _plain(f)(X2, V2), rtol=1e-12)


def test_writes_reach_views_made_before_them(backend):
    """numpy aliasing: a view made while its slots were a ramp sees a later write
    through its base, and the base sees a write through the view."""
    def f(x):
        y = x * 2.0
        tail = y[1:]           # a view of y's unfilled ramp
        y[2] = x[0] * 10.0     # fills the ramp, then writes into it
        head = y[:2]
        head[0] = x[3] * 5.0   # a write through a later view reaches y
        return np.sum(tail * np.array([1.0, 2.0, 3.0])) + np.sum(y ** 2)

    def plain(x):
        y = x * 2.0
        tail = y[1:]
        y[2] = x[0] * 10.0
        head = y[:2]
        head[0] = x[3] * 5.0
        return np.sum(tail * np.array([1.0, 2.0, 3.0])) + np.sum(y ** 2)

    x = V.copy()
    tape = pyad.trace(f, x, backend=backend)
    assert np.isclose(tape(x), plain(x), rtol=1e-14)
    g = tape.gradient(x)
    h = 1e-6
    fd = [(plain(x + h * e) - plain(x - h * e)) / (2 * h) for e in np.eye(4)]
    assert np.allclose(g, fd, rtol=1e-7)


def test_an_array_over_a_ramp_reads_no_index_array_until_asked(backend):
    def f(x):
        y = np.sin(x)[:, ::-1].T
        assert _viewable(y) is not None    # recorded, viewed: no index array yet
        s = y.slots                        # reading it builds it...
        assert _viewable(y) is None        # ...and views are read through it from then on
        assert s.shape == (4, 3)
        return np.sum(y * y)
    pyad.trace(f, X, backend=backend)


def test_rows_read_affine_views_in_place(backend):
    """Affine views (slices, stride-0 scalar broadcasts) add no gather rows; a
    reversed or broadcast-over-rows view adds one."""
    x = np.linspace(-1.0, 1.0, 9)
    rosen = lambda x: np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
    assert pyad.trace(rosen, x, backend=backend).n_ops == 9
    scaled = pyad.trace(lambda x: np.sum(x * x[4]), x, backend=backend)
    assert scaled.n_ops == 3                               # input, mul, sum
    assert pyad.trace(lambda x: np.sum(x * x[::-1]), x, backend=backend).n_ops == 4
    # a 2-d array and a slice of its rows are read in place (input, rows, sum);
    # a column slice and a transpose are not one run: one gather row each
    assert pyad.trace(lambda x: np.sum(x * 2.0 + x), X, backend=backend).n_ops == 4
    assert pyad.trace(lambda x: np.sum(x[1:] * 2.0), X, backend=backend).n_ops == 3
    assert pyad.trace(lambda x: np.sum(x[:, 1:3] * 2.0), X, backend=backend).n_ops == 4
    assert pyad.trace(lambda x: np.sum(x.T * 2.0), X, backend=backend).n_ops == 4


# ---- the stores' entry points, called directly ----

def _store_with_inputs(backend, n=6):
    tape = pyad.Tape(backend=backend)
    x = tape.input(np.arange(1.0, n + 1.0))
    return tape, x._s, int(x.slots[0])


SIN, ADD, MUL_C = ops.CODE["sin"], ops.CODE["add"], ops.CODE["mul_c"]


def _values(store, first, n):
    return store.values(np.arange(first, first + n, dtype=np.int32))


def test_rec_view_reads_negative_zero_and_mixed_strides(backend):
    tape, store, x0 = _store_with_inputs(backend)
    x = np.arange(1.0, 7.0)
    first = store.rec_view(SIN, (2, 3), [(x0 + 5, (-3, -1))])            # x[::-1] as 2 x 3
    assert np.allclose(_values(store, first, 6), np.sin(x[::-1]))
    first = store.rec_view(ADD, (2, 3), [(x0, (3, 1)), (x0, (0, 1))])     # x + x[:3] per row
    assert np.allclose(_values(store, first, 6), x + np.tile(x[:3], 2))
    idx = np.array([5, 0, 3, 3, 1, 2], dtype=np.int32) + x0               # an index array
    first = store.rec_view(ADD, (6,), [idx, (x0 + 2, (0,))])
    assert np.allclose(_values(store, first, 6), x[idx - x0] + x[2])
    first = store.rec_view(MUL_C, (3, 2), [(x0, (1, 3))], np.array([2.0]))  # a transpose
    assert np.allclose(_values(store, first, 6), 2.0 * x.reshape(2, 3).T.ravel())
    tape.close()


def test_rec_view_of_an_empty_shape_records_nothing(backend):
    tape, store, x0 = _store_with_inputs(backend)
    before = store.n_ops
    store.rec_view(SIN, (0, 3), [(x0, (3, 1))])
    store.rec_view(ADD, (4, 0), [(x0, (1, 1)), (x0, (0, 0))])
    assert store.n_ops == before
    tape.close()


@pytest.mark.parametrize("case", [
    lambda n: (n - 3, (4,), (1,)),             # runs past the last slot
    lambda n: (2, (4,), (-1,)),                # runs below slot 0
    lambda n: (-1, (2,), (1,)),                # starts below slot 0
    lambda n: (n, (1,), (0,)),                 # one element, past the end
    lambda n: (0, (2,), (1 << 40,)),           # a stride beyond int32
    lambda n: (0, (2, 3), (n, 1)),             # the second row is past the end
    lambda n: (n - 1, (2, 3), (0, -n)),        # stride 0 outside, far negative inside
], ids=["past the end", "below 0", "negative first", "one past", "huge stride",
        "2-d past the end", "2-d below 0"])
def test_rec_view_refuses_views_outside_the_tape(backend, case):
    tape, store, _ = _store_with_inputs(backend)
    first, shape, strides = case(store.n_slots)
    before = store.n_ops
    with pytest.raises(IndexError, match="slot|index"):
        store.rec_view(SIN, shape, [(first, strides)])
    with pytest.raises(IndexError, match="slot|index"):      # as the second operand too
        store.rec_view(ADD, shape, [(0, (0,) * len(shape)), (first, strides)])
    assert store.n_ops == before           # nothing recorded
    tape.close()


def test_reduce_view_reads_a_layout_and_refuses_bad_ones(backend):
    tape, store, x0 = _store_with_inputs(backend)
    x = np.arange(1.0, 7.0)
    first = store.reduce_view(ADD, x0, 3, 2, 1, 3)        # column sums of x as (2, 3)
    assert np.allclose(_values(store, first, 3), x.reshape(2, 3).sum(axis=0))
    with pytest.raises(IndexError):                       # the last element is past the tape
        store.reduce_view(ADD, store.n_slots - 4, 3, 2, 1, 3)
    with pytest.raises(ValueError):
        store.reduce_view(ADD, x0 + 5, 3, 2, -1, 0)       # negative strides: not a layout
    with pytest.raises(ValueError):
        store.reduce_view(ADD, x0, 3, 1, 1, 1)            # k = 1 reduces nothing
    tape.close()


def test_rec_view_refuses_too_many_dimensions_in_c():
    tape, store, x0 = _store_with_inputs("c")
    with pytest.raises(ValueError):
        store.rec_view(SIN, (1,) * 65, [(x0, (0,) * 65)])
    tape.close()
