"""Active n-d arrays: a numpy array of tape-slot indices plus the tape.

Structural operations (indexing, reshape, transpose, concatenate, ...) only move
indices and record nothing. Every elementwise operation, reduction (over any
axes) and scan records one row in one call to the store, plus one gather row
for each operand whose slots are not an affine layout (fancy indexing with
repeats, concatenations, transposes of a row's operand); a matrix product
records one product row (BLAS in every sweep).
"""
import functools
import math
import numbers
from typing import Any

import numpy as np

from . import ops
from .scalar import ROW_OF_OPERATOR, install_operators, operator_methods
from .scalar import (COMPARISONS, CONSTANT_FORMS, UPPER, Bool, Scalar, _FLOAT_HINT,
                     guard_value, mixed_tapes, provide_handlers, record_truth, refuse_conversion)

C = ops.CODE
_INDEX = np.int32
_F64 = np.dtype(np.float64)


def is_array_operand(x):
    """A constant that takes part in array arithmetic (not an active value)."""
    return isinstance(x, (np.ndarray, list, tuple)) and not isinstance(x, Array)


def is_active(x):
    return isinstance(x, _ACTIVE)


def wrap(store, idx, boolean=False):
    """An active value over slots idx: a Scalar for a 0-d idx, else an Array."""
    idx = np.asarray(idx)
    if idx.ndim == 0:
        return (Bool if boolean else Scalar)(store, int(idx))
    return _new(BoolArray if boolean else Array, store, idx)


def _new(cls, store, idx):
    """An Array over slot indices pyad computed itself: skips the public
    constructor's validation, which costs a pass over idx."""
    a = object.__new__(cls)
    a._s = store
    a._i = a._v = idx
    a._r = a._o = None
    return a


class _Ramp:
    """The consecutive slots first, first + 1, ... that one row defined, for the
    arrays over them (its result and views of it) before anything reads their
    index arrays. Building an index array per operation cost more than the
    operation (np.arange plus its page faults, then C's scan of it to find the
    stride again), so a row's operands are passed as views instead
    (store.rec_view): a first slot and strides.

    `base` is an index buffer left unfilled; the arrays' structures (`_v`) are
    numpy views of it, so numpy itself computes every view's shape and strides
    (and raises its own errors), and filling `base` once, on the first read of
    any index array (`Array._i`), makes every view's index array right. A
    filled ramp may be written (x[i] = y, x += y), so its arrays are read
    through their index arrays from then on."""

    __slots__ = ("first", "base", "filled", "_address")

    def __init__(self, first, n):
        self.first = first
        self.base = np.empty(n, dtype=_INDEX)
        self.filled = False
        self._address = None

    def fill(self):
        if not self.filled:
            self.base[...] = np.arange(self.first, self.first + self.base.size, dtype=_INDEX)
            self.filled = True

    def slot_at(self, view):
        """The slot of element 0 of `view`, a numpy view of base."""
        if self._address is None:
            self._address = self.base.__array_interface__["data"][0]
        return self.first + (view.__array_interface__["data"][0] - self._address) // 4


def _lazy(cls, store, ramp, view, first):
    """An Array over a ramp's slots: `view` its structure, `first` its first slot."""
    a = object.__new__(cls)
    a._s = store
    a._v = view
    a._r = ramp
    a._o = first
    return a


def _viewable(x):
    """The ramp of active value x when its slots are still a view of it."""
    r = getattr(x, "_r", None)
    return r if r is not None and not r.filled else None


def consecutive_first(x):
    """The first slot of active x while its slots are still an unfilled ramp's
    run in row-major order (a row reads it in place, with no index array built
    or filled), else None."""
    if _viewable(x) is None:
        return None
    v = x._v
    return x._o if v.size and v.flags.c_contiguous else None


def _operand(x, shape):
    """How a row reads the active operand x broadcast to `shape`: a view (first
    slot, strides in slots; 0 along broadcast axes), or a flat index array."""
    if isinstance(x, Scalar):
        return (x._i, (0,) * len(shape))
    r = x._r
    if r is not None and not r.filled:  # _viewable, inline: once per recorded row
        v = x._v
        return (x._o, _view_strides(v.shape, v.strides, len(shape)))
    return _flat(x._i, shape)


@functools.lru_cache(maxsize=1024)
def _view_strides(dims, byte_strides, ndim):
    """The strides in slots with which a row of ndim axes reads a view of a ramp
    (dims, byte_strides: numpy's, of int32 slots): 0 along leading and length-1
    axes, which broadcast. Cached: a program records the same few layouts on
    every call (pyad.grad records once per call)."""
    lead = (0,) * (ndim - len(dims))
    return lead + tuple([0 if n == 1 else st >> 2 for n, st in zip(dims, byte_strides)])


def _shape_of(x):
    return () if isinstance(x, Scalar) else x._v.shape


def _one_stride(dims, strides):
    """The stride s >= 0 that reads the axes dims (row-major) as one run, or None."""
    s, run = None, 1
    for n, st in zip(reversed(dims), reversed(strides)):
        if n == 1:
            continue
        if s is None:
            s = st
        if s < 0 or st != s * run:
            return None
        run *= n
    return 0 if s is None else s


def _validated_slots(store, idx):
    """The public constructor's check: int32 slot indices of `store` in range,
    as the C core reads them without another check."""
    if not isinstance(getattr(type(store), "n_ops", None), property):
        raise TypeError(f"pyad.Array(store, idx): store must be a tape's store (the ._s of an "
                        f"active value), not {type(store).__name__}")
    idx = np.asarray(idx)
    if idx.dtype == np.bool_ or not np.issubdtype(idx.dtype, np.integer):
        raise TypeError(f"pyad.Array(store, idx): idx must hold integer slot indices, "
                        f"not dtype {idx.dtype}")
    n = store.n_slots  # a block row defines many slots: n_ops counts rows
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= n):
        raise IndexError(f"pyad.Array(store, idx): slot indices must lie in 0 .. {n - 1} "
                         f"(the tape has {n} slots); got {int(idx.min())} .. {int(idx.max())}")
    return idx if idx.dtype == _INDEX else idx.astype(_INDEX)


def check_dtype(what, dtype):
    """dtype= of a reduction: active values and their derivatives are float64,
    so any other result dtype is refused rather than ignored."""
    if dtype is None:
        return
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{what}: dtype={dtype!r} is not a numpy dtype") from None
    if dt != np.float64:
        raise TypeError(f"{what}: pyad computes active values and derivatives in float64 and "
                        f"cannot give dtype={dt}; drop dtype= (or convert the plain numbers "
                        "from .value)")


MASKED_HINT = ("numpy masked arrays (numpy.ma) are not supported in pyad computations: the "
               "mask would be dropped silently; select the unmasked elements with a constant "
               "index or use pyad.where(mask, fill, x)")


def refuse_masked(x):
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(MASKED_HINT)


def slots_of(x):
    """The slot index array of an active value (0-d for a Scalar)."""
    if isinstance(x, Array):
        return x._i
    return np.array(x._i, dtype=_INDEX)


def store_of(*xs):
    """The one store all active values among xs share; None if none is active."""
    store = None
    for x in xs:
        if is_active(x):
            s = x._s
        elif isinstance(x, (list, tuple)) or (isinstance(x, np.ndarray) and x.dtype == object):
            s = store_of(*x)
        else:
            continue
        if s is None:
            continue
        if store is not None and s is not store:
            raise mixed_tapes()
        store = s
    return store


def as_constant(x):
    """A float64 ndarray for a constant operand, with a clear error otherwise."""
    if type(x) is np.ndarray and x.dtype is _F64:  # the usual constant: as it is
        return x
    if type(x) is float:
        return np.array(x)
    refuse_masked(x)
    a = np.asarray(x)
    kind = a.dtype.kind
    if kind == "c":
        raise TypeError("pyad differentiates real functions: complex constants are not supported")
    if kind not in "biuf":  # bool, signed, unsigned, floating: numbers numpy computes with
        raise TypeError(f"cannot use {type(x).__name__} of dtype {a.dtype} as a constant "
                        "in a pyad computation: expected real numbers")
    return a.astype(np.float64, copy=False)


def contains_active(x):
    """Whether x is, or is a (nested) list / object array holding, an active value."""
    if is_active(x):
        return True
    if isinstance(x, (list, tuple)) or (isinstance(x, np.ndarray) and x.dtype == object):
        return any(contains_active(e) for e in x)
    return False


def to_slots(store, x):
    """Slot indices for x on `store`: active values as they are, constants as
    constant slots (one per element), nested lists of either stacked."""
    if is_active(x):
        if x._s is not store:
            raise mixed_tapes()
        return slots_of(x)
    if contains_active(x):
        return np.stack([to_slots(store, e) for e in x])
    c = as_constant(x)
    flat = np.ascontiguousarray(c.ravel())
    first = store.const_n(flat) if flat.size else 0
    return np.arange(first, first + flat.size, dtype=_INDEX).reshape(c.shape)


def _fresh(store, first, shape, boolean=False):
    """The active value over the slots first, first + 1, ... in shape."""
    if not shape:
        return (Bool if boolean else Scalar)(store, int(first))
    ramp = _Ramp(first, math.prod(shape))
    # _lazy, inline: once per recorded row
    a = object.__new__(BoolArray if boolean else Array)
    a._s = store
    a._v = ramp.base.reshape(shape)
    a._r = ramp
    a._o = first
    return a


def _flat(idx, shape):
    if idx.shape != shape:
        idx = np.broadcast_to(idx, shape)
    return np.ascontiguousarray(idx.ravel(), dtype=_INDEX)


def _broadcast_shape(a, b):
    """np.broadcast_shapes(a, b) for two shape tuples, without its cost (it builds
    arrays to ask numpy): numpy's own error where they do not broadcast."""
    if a == b or not b:
        return a
    if not a:
        return b
    return _broadcast_pair(a, b)


@functools.lru_cache(maxsize=1024)
def _broadcast_pair(a, b):
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + a, (1,) * (n - len(b)) + b
    out = []
    for p, q in zip(a, b):
        if p != q and p != 1 and q != 1:
            return np.broadcast_shapes(a, b)  # raises numpy's ValueError
        out.append(q if p == 1 else p)
    return tuple(out)


def elementwise_unary(x, op):
    shape = x._v.shape
    first = x._s.rec_view(op, shape, [_operand(x, shape)]) if 0 not in shape else 0
    return _fresh(x._s, first, shape)


def elementwise_binary(x, y, name):
    """Record x ∘ y elementwise with numpy broadcasting; one of x, y is active."""
    x_active, y_active = isinstance(x, _ACTIVE), isinstance(y, _ACTIVE)
    if x_active and (y_active or _plain_constant(y)):
        store = x._s            # the common cases, without store_of's walk
        if y_active and y._s is not store:
            raise mixed_tapes()
    elif y_active and _plain_constant(x):
        store = y._s
    else:
        store = store_of(x, y)
        if not x_active and isinstance(x, (list, tuple)) and store_of(x) is not None:
            x = wrap(store, to_slots(store, x))
        if not y_active and isinstance(y, (list, tuple)) and store_of(y) is not None:
            y = wrap(store, to_slots(store, y))
        x_active, y_active = is_active(x), is_active(y)
    boolean = name in COMPARISONS
    if x_active and y_active:
        shape = _broadcast_shape(_shape_of(x), _shape_of(y))
        if 0 in shape:
            return _fresh(store, 0, shape, boolean)
        first = store.rec_view(C[name], shape, [_operand(x, shape), _operand(y, shape)])
        return _fresh(store, first, shape, boolean)
    active, const = (x, y) if x_active else (y, x)
    c = as_constant(const)
    shape = _broadcast_shape(_shape_of(active), c.shape)
    if 0 in shape:
        return _fresh(store, 0, shape, boolean)
    form = CONSTANT_FORMS[name][0 if x_active else 1]
    if form is None:
        cs = _fresh(store, store.const_n(np.ascontiguousarray(c.ravel())), c.shape)
        pair = (active, cs) if x_active else (cs, active)
        first = store.rec_view(C[name], shape, [_operand(pair[0], shape),
                                                _operand(pair[1], shape)])
    else:
        cflat = c.reshape(1) if c.size == 1 else _flat_const(c, shape)
        first = store.rec_view(C[form], shape, [_operand(active, shape)], cflat)
    return _fresh(store, first, shape, boolean)


def _flat_const(c, shape):
    if c.shape == shape:   # no broadcast: numpy's broadcast_to costs more than small ops
        return np.ascontiguousarray(c.ravel(), dtype=np.float64)
    return np.ascontiguousarray(np.broadcast_to(c, shape).ravel(), dtype=np.float64)


def _normalize_axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, tuple) else (axis,)
    out = []
    for ax in axes:
        if not isinstance(ax, (int, np.integer)):
            raise TypeError(f"axis must be an int or a tuple of ints, not {type(ax).__name__}")
        if not -ndim <= ax < ndim:
            raise np.exceptions.AxisError(ax, ndim) if hasattr(np, "exceptions") else ValueError(
                f"axis {ax} is out of bounds for array of dimension {ndim}")
        out.append(ax % ndim)
    if len(set(out)) != len(out):
        raise ValueError("duplicate value in 'axis'")
    return tuple(out)


_EMPTY_REDUCTION = {"add": 0.0, "mul": 1.0}


def reduce(x, name, axis=None, keepdims=False):
    """Reduce an active value over axes with a binary op (add, mul, maximum, minimum)."""
    store, shape = x._s, _shape_of(x)
    first = consecutive_first(x) if axis is None else None
    if first is not None and x._v.size >= 2:
        # all of a contiguous view (the usual loss's sum): one row over its slots
        first = store.reduce_view(C[name], first, 1, x._v.size, 0, 1)
        return _fresh(store, first, (1,) * len(shape) if keepdims else ())
    axes = _normalize_axes(axis, len(shape))
    keep = [d for d in range(len(shape)) if d not in axes]
    out_shape = tuple(shape[d] for d in keep)
    m = math.prod(out_shape)
    k = math.prod(shape[d] for d in axes)
    if m >= 1 and k >= 2 and _viewable(x) is not None:
        strides = [st >> 2 for st in x._v.strides]
        sm = _one_stride(out_shape, [strides[d] for d in keep])
        sk = _one_stride([shape[d] for d in axes], [strides[d] for d in axes])
        if sm is not None and sk is not None:
            first = store.reduce_view(C[name], x._o, m, k, sm, sk)
            kept = [1 if d in axes else n for d, n in enumerate(shape)]
            return _fresh(store, first, tuple(kept) if keepdims else out_shape)
    idx = slots_of(x)
    order = keep + list(axes)
    moved = idx if order == sorted(order) else np.transpose(idx, order)
    if k == 0:
        if name not in _EMPTY_REDUCTION:
            raise ValueError(f"zero-size array to reduction operation {name} which has no identity")
        res = to_slots(store, np.full(out_shape, _EMPTY_REDUCTION[name]))
    elif m == 0:
        res = np.zeros(out_shape, dtype=_INDEX)
    else:
        res = store.reduce(C[name], np.ascontiguousarray(moved.reshape(m, k), dtype=_INDEX))
        res = res.reshape(out_shape)
    if keepdims:
        res = res.reshape([1 if d in axes else n for d, n in enumerate(idx.shape)])
    return wrap(store, res)


def mean(x, axis=None, keepdims=False):
    shape = _shape_of(x)
    if axis is None:
        k = math.prod(shape)
    else:
        k = math.prod(shape[d] for d in _normalize_axes(axis, len(shape)))
    total = reduce(x, "add", axis, keepdims)
    if isinstance(total, Scalar):
        # recorded at once rather than buffered (as `total / k` would be): a
        # buffered row costs a hand-over of its own at the next array row
        store = total._s
        return Scalar(store, store.rec_c(C["div_c"], total._i, float(k)))
    return total / float(k)


def cumulative(x, name, axis=None):
    """Running reduction (cumsum, cumprod) along an axis: one scan row."""
    idx = slots_of(x)
    if axis is None:
        idx, axis = idx.ravel(), 0
    axis = _normalize_axes(axis, idx.ndim)[0]
    if idx.size == 0:
        return wrap(x._s, idx.copy())
    moved = np.moveaxis(idx, axis, -1)
    rows = np.ascontiguousarray(moved.reshape(-1, moved.shape[-1]), dtype=_INDEX)
    first = x._s.scan(C[name], rows)
    out = np.arange(first, first + rows.size, dtype=_INDEX).reshape(moved.shape)
    return wrap(x._s, np.moveaxis(out, -1, axis))


# pyad_rec_product's flags (csrc/pyad.h)
_TRANS_A, _TRANS_B, _CONST_A, _CONST_B = 1, 2, 4, 8


def matmul(x, y):
    """x @ y with numpy's matmul rules, one or both operands active: one product
    row (BLAS in every sweep) per matrix product; a stack of matrices records one
    row per matrix."""
    fast = _constant_product(x, y)
    if fast is not None:
        return fast
    store = store_of(x, y)
    a_active, b_active = is_active(x), is_active(y)
    a = _structure(x) if a_active else as_constant(x)
    b = _structure(y) if b_active else as_constant(y)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("matmul: input operand does not have enough dimensions (use * for scalars)")
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    if a2.shape[-1] != b2.shape[-2]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned "
                         f"({a2.shape[-1]} != {b2.shape[-2]})")
    (m, k), n = a2.shape[-2:], b2.shape[-1]
    ramps = (_viewable(x) if a_active else None, _viewable(y) if b_active else None)
    if a.ndim <= 2 and b.ndim <= 2:
        # one product row; a[None, :] and b[:, None] keep element 0, so an
        # operand over a ramp starts at its array's own first slot (_o)
        firsts = (x._o if ramps[0] else None, y._o if ramps[1] else None)
        out = _product(store, a2, a_active, b2, b_active, ramps, firsts)
        shape = (m,) * (a.ndim == 2) + (n,) * (b.ndim == 2)
        if isinstance(out, int):
            return _fresh(store, out, shape)
        return wrap(store, slots_of(out).reshape(shape))
    lead = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    a3 = np.broadcast_to(a2, lead + (m, k))
    b3 = np.broadcast_to(b2, lead + (k, n))
    out = np.empty(lead + (m, n), dtype=_INDEX)
    for i in np.ndindex(*lead):
        r = _product(store, a3[i], a_active, b3[i], b_active, ramps)
        out[i] = slots_of(_fresh(store, r, (m, n)) if isinstance(r, int) else r)
    if a.ndim == 1:
        out = out[..., 0, :]
    if b.ndim == 1:
        out = out[..., 0]
    return wrap(store, out)


def _constant_product(x, y):
    """x @ y where one operand is a float64 ndarray and the other an active Array
    over consecutive slots (both of 1 or 2 axes, nothing empty): the usual X @ w
    and h @ W, recorded without matmul's general walk. None for anything else."""
    if type(y) is Array and type(x) is np.ndarray:
        act, c, const_flag = y, x, _CONST_A
    elif type(x) is Array and type(y) is np.ndarray:
        act, c, const_flag = x, y, _CONST_B
    else:
        return None
    v, first = act._v, consecutive_first(act)
    if c.dtype is not _F64 or first is None or not 1 <= c.ndim <= 2 or not 1 <= v.ndim <= 2 \
            or 0 in c.shape:
        return None
    if const_flag == _CONST_A:
        (m, k), (k2, n) = c.shape[-2:] if c.ndim == 2 else (1, c.shape[0]), \
            v.shape if v.ndim == 2 else (v.shape[0], 1)
        shape = (m,) * (c.ndim == 2) + (n,) * (v.ndim == 2)
        sa, sb = 0, first
    else:
        (m, k), (k2, n) = v.shape if v.ndim == 2 else (1, v.shape[0]), \
            c.shape if c.ndim == 2 else (c.shape[0], 1)
        shape = (m,) * (v.ndim == 2) + (n,) * (c.ndim == 2)
        sa, sb = first, 0
    if k != k2:
        return None  # matmul's own error
    store = act._s
    out = store.product(sa, sb, m, k, n, const_flag, np.ascontiguousarray(c))
    return _fresh(store, int(out), shape)


def _structure(x):
    """The array of slots of an active value, or of a numpy view of its ramp's
    unfilled buffer (_Ramp): its shape and strides only are to be read."""
    return np.array(x._i, dtype=_INDEX) if isinstance(x, Scalar) else x._v


def _product(store, a, a_active, b, b_active, ramps, firsts=(None, None)):
    """One product row a (m, k) @ b (k, n): the first of its m * n result slots
    (row-major), or, where nothing is multiplied (m * n == 0, k == 0), the
    active (m, n) result. An operand is slots (_structure) when active, else
    constants; over an unfilled ramp, its first slot is given or looked up."""
    (m, k), n = a.shape, b.shape[1]
    if m * n == 0:
        return wrap(store, np.zeros((m, n), dtype=_INDEX))
    if k == 0:  # an empty sum
        return wrap(store, to_slots(store, np.zeros((m, n))))
    flags, w, sa, sb = 0, None, 0, 0
    if a_active:
        sa, trans = _contiguous_or_gathered(store, a, ramps[0], firsts[0])
        flags |= _TRANS_A if trans else 0
    else:
        flags, w = flags | _CONST_A, np.ascontiguousarray(a, dtype=np.float64)
    if b_active:
        sb, trans = _contiguous_or_gathered(store, b, ramps[1], firsts[1])
        flags |= _TRANS_B if trans else 0
    else:
        flags, w = flags | _CONST_B, np.ascontiguousarray(b, dtype=np.float64)
    return int(store.product(sa, sb, m, k, n, flags, w))


def _contiguous_or_gathered(store, idx, ramp=None, first=None):
    """(first slot, transposed) of a matrix operand (rows, cols of slots) that a
    product row reads in place: its slots are a contiguous row-major block, or
    the transpose of one (BLAS's trans flag). Any other layout (x[:, ::2], a
    broadcast, fancy indexing) is first copied into consecutive slots by one
    gather row, as numpy copies an operand BLAS cannot read. With a ramp, idx
    is a view of its unfilled buffer: its strides tell the layout, and only
    a gather reads its slots (after the ramp is filled)."""
    rows, cols = idx.shape
    if ramp is not None and not ramp.filled:
        s0, s1 = idx.strides[0] >> 2, idx.strides[1] >> 2
        if (s1 == 1 or cols == 1) and (s0 == cols or rows == 1):
            return ramp.slot_at(idx) if first is None else first, False
        if (s0 == 1 or rows == 1) and (s1 == rows or cols == 1):
            return ramp.slot_at(idx) if first is None else first, True
        ramp.fill()
    start = int(idx[0, 0])
    ramp = np.arange(rows * cols, dtype=np.int64)
    if np.array_equal(idx, start + ramp.reshape(rows, cols)):
        return start, False
    if np.array_equal(idx, start + ramp.reshape(cols, rows).T):
        return start, True
    return store.gather(idx), False


def where(cond, a, b):
    """Elementwise select; an active condition is recorded and replays both ways."""
    store = store_of(cond, a, b)
    if store is None:
        return np.where(cond, a, b)
    sa, sb = to_slots(store, a), to_slots(store, b)
    if is_active(cond):
        sc = slots_of(cond)
        shape = np.broadcast_shapes(sc.shape, sa.shape, sb.shape)
        if 0 in shape:
            return _fresh(store, 0, shape)
        first = store.select_n(_flat(sc, shape), _flat(sa, shape), _flat(sb, shape))
        return _fresh(store, first, shape)
    refuse_masked(cond)
    c = np.asarray(cond)
    if c.dtype == object:
        raise TypeError("pyad.where: the condition must be a comparison of active values or a "
                        "constant boolean array")
    return wrap(store, np.where(c.astype(bool), sa, sb).astype(_INDEX))


def stack_values(xs, axis=0):
    """pyad.stack: join active scalars/arrays (and constants) along a new axis."""
    xs = list(xs)
    store = store_of(*xs)
    if store is None:
        return np.stack([np.asarray(x, dtype=np.float64) for x in xs], axis=axis)
    return wrap(store, np.stack([to_slots(store, x) for x in xs], axis=axis))


def _joined(fn):
    def join(xs, *args, **kwargs):
        xs = list(xs)
        store = store_of(*xs)
        if store is None:
            return fn([np.asarray(x, dtype=np.float64) for x in xs], *args, **kwargs)
        return wrap(store, fn([to_slots(store, x) for x in xs], *args, **kwargs))
    join.__name__ = fn.__name__
    return join


concatenate = _joined(np.concatenate)
hstack = _joined(np.hstack)
vstack = _joined(np.vstack)


class Array:
    """An active n-d array of float64 values, each element a slot of a tape.

    ``tape.input`` and ``pyad.trace`` hand these to your function; numpy functions,
    operators, indexing and the methods below record rows on the tape (one row per
    numpy operation, whatever the size). ``Array(store, idx)`` is the low-level
    constructor; it checks the slot indices.

    Parameters
    ----------
    store : Store
        The tape's store (the ``._s`` of an active value).
    idx : array_like of int
        The slot of each element, in the array's shape.

    Raises
    ------
    TypeError
        ``store`` is not a store, or ``idx`` is not integers.
    IndexError
        A slot index is outside the tape.

    Examples
    --------
    >>> import numpy as np, pyad
    >>> with pyad.Tape() as tape:
    ...     x = tape.input(np.arange(6.0).reshape(2, 3))
    ...     y = tape.output(np.sum(np.sin(x) * x))
    >>> x.shape, x.ndim, x.size, x.dtype
    ((2, 3), 2, 6, dtype('float64'))
    >>> tape.gradient().shape
    (2, 3)
    """

    # _i: the index array of slots; _v: its structure (the same array, or for an
    # array over a _Ramp a view of the ramp's buffer); _r: that ramp or None;
    # _o: the slot of element 0 while the ramp is unfilled.
    __slots__ = ("_s", "_i", "_v", "_r", "_o")
    __array_priority__ = 1000

    def __init__(self, store: Any, idx: Any) -> None:
        # The public path: pyad itself builds arrays with _new, unchecked.
        self._i = self._v = _validated_slots(store, idx)
        self._s = store
        self._r = self._o = None

    def __getattr__(self, name):
        # Reached only for an unset slot: _i of an array over an unfilled ramp.
        if name != "_i" or self._r is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        self._r.fill()
        self._i = self._v
        return self._v

    # ---- numpy-like attributes ----

    @property
    def shape(self) -> "tuple[int, ...]":
        """The array's shape (a tuple), as ``numpy.ndarray.shape``."""
        return self._v.shape

    @property
    def ndim(self) -> int:
        """The number of axes."""
        return self._v.ndim

    @property
    def size(self) -> int:
        """The number of elements (each a slot)."""
        return self._v.size

    dtype = np.dtype(np.float64)

    @property
    def value(self) -> np.ndarray:
        """The recorded values as a float64 ndarray (no derivative).

        Read while the tape records, each element is guarded as ``Scalar.value``
        explains: replay where one differs re-records or raises ``BranchError``.
        """
        values = self._recorded_values()
        if not getattr(self._s, "_sealed", False):
            for slot, v in zip(self._i.ravel().tolist(), values.ravel().tolist()):
                guard_value(self._s, slot, v)
        return values

    def _recorded_values(self):
        flat = np.ascontiguousarray(self._i.ravel())
        return self._s.values(flat).reshape(self._i.shape)

    @property
    def slots(self) -> np.ndarray:
        """The slot index of each element, an int32 ndarray of the array's shape."""
        return self._i

    def __repr__(self):
        try:
            body = np.array2string(self._recorded_values(), separator=", ", prefix="Array(")
        except Exception:
            body = "<closed tape>"
        return f"{type(self).__name__}({body})"

    def __len__(self):
        if self._v.ndim == 0:
            raise TypeError("len() of unsized object")
        return len(self._v)

    def __iter__(self):
        boolean = isinstance(self, BoolArray)
        for row in self._i:
            yield wrap(self._s, row, boolean)

    def __getitem__(self, key):
        keys = key if isinstance(key, tuple) else (key,)
        if any(is_active(k) for k in keys):
            raise TypeError("cannot index with an active value: indices must be constant "
                            "(use pyad.where for data-dependent selection)")
        if _viewable(self) is not None and all(map(_is_basic_index, keys)):
            # a trailing ... keeps numpy returning a view where it returns one
            # element (a[1] is a copied number, a[1, ...] a 0-d view)
            if not any(k is Ellipsis for k in keys):
                keys += (Ellipsis,)
            return self._view(self._v[keys])
        return wrap(self._s, self._i[key], isinstance(self, BoolArray))

    def _view(self, v):
        """The active value over v, a numpy view of this array's unfilled ramp."""
        slot = self._r.slot_at(v) if v.size else self._r.first
        if v.ndim == 0:
            return (Bool if isinstance(self, BoolArray) else Scalar)(self._s, slot)
        return _lazy(BoolArray if isinstance(self, BoolArray) else Array, self._s, self._r, v,
                     slot)

    def _restructure_by(self, fn):
        """fn (a numpy structural function) applied to the slots: a view over the
        ramp where fn gives a view, else over a new index array (a copy)."""
        r = _viewable(self)
        if r is not None:
            v = fn(self._v)
            if v.size and np.may_share_memory(v, r.base):
                return self._view(v)
        return self._restructure(fn(self._i))

    def __setitem__(self, key, value):
        # Only the index array changes, in place: x and every view sharing its
        # index buffer see the new slots, as they would see numpy's write.
        self._writable()
        self._i[key] = to_slots(self._s, value)

    def _writable(self):
        if not self._i.flags.writeable:
            raise ValueError("assignment destination is read-only (a view such as "
                             "np.broadcast_to or np.diagonal cannot be written to, as in numpy)")

    def _in_place(self, result, op):
        """numpy's x op= y: the result goes into x's slots, so aliases and the
        base of a view see it; a result of another shape is refused."""
        if result is NotImplemented:
            return result
        if slots_of(result).shape != self._i.shape:
            raise ValueError(f"non-broadcastable output operand with shape {self._i.shape} "
                             f"doesn't match the broadcast shape {slots_of(result).shape} "
                             f"(x {op}= y writes into x)")
        self._i[...] = slots_of(result)
        return self

    def __array__(self, dtype=None, copy=None):
        refuse_conversion("an active pyad array cannot become a plain numpy array: that would "
                          f"drop its derivative; {_FLOAT_HINT}")

    def __float__(self):
        raise TypeError(f"float() of an active pyad value would drop its derivative: {_FLOAT_HINT}")

    def __int__(self):
        raise TypeError(f"int() of an active pyad value would drop its derivative: {_FLOAT_HINT}")

    __index__ = __complex__ = __int__
    __hash__ = None

    def __bool__(self):
        if self.size != 1:
            raise ValueError("The truth value of an array with more than one element is "
                             "ambiguous. Use a.any() or a.all()")
        return bool(wrap(self._s, self._i.reshape(()), isinstance(self, BoolArray)))

    # ---- structure (no recording) ----

    def _restructure(self, idx):
        return wrap(self._s, idx, isinstance(self, BoolArray))

    def reshape(self, *shape: "int | tuple[int, ...]", order: str = "C") -> "Array":
        """The same elements in a new shape, as ``numpy.ndarray.reshape``.

        Parameters
        ----------
        *shape : int or tuple of int
            The new shape (one -1 is inferred).
        order : {"C", "F"}
            The index order.

        Returns
        -------
        Array
            No tape row is recorded: the result describes the same slots, as a numpy view describes the same memory.

        Raises
        ------
        ValueError
            The new shape does not fit the array's size.

        Examples
        --------
        >>> import numpy as np, pyad
        >>> with pyad.Tape() as tape:
        ...     x = tape.input(np.arange(6.0).reshape(2, 3))
        >>> x.reshape(3, 2)
        Array([[0., 1.],
               [2., 3.],
               [4., 5.]])
        """
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return self._restructure_by(lambda i: i.reshape(shape, order=order))

    def ravel(self, order: str = "C") -> "Array":
        """The elements as a 1-D array, as ``numpy.ndarray.ravel``.

        Parameters
        ----------
        order : {"C", "F"}
            The index order.

        Returns
        -------
        Array
            No tape row is recorded: the result describes the same slots, as a numpy view describes the same memory.

        Raises
        ------
        ValueError
            An unknown order.

        Examples
        --------
        >>> import numpy as np, pyad
        >>> with pyad.Tape() as tape:
        ...     x = tape.input(np.arange(6.0).reshape(2, 3))
        >>> x.ravel()
        Array([0., 1., 2., 3., 4., 5.])
        """
        return self._restructure_by(lambda i: i.ravel(order=order))

    def flatten(self, order: str = "C") -> "Array":
        # numpy's flatten always copies: an in-place write to it must not reach self.
        """A 1-D copy of the elements, as ``numpy.ndarray.flatten``.

        Parameters
        ----------
        order : {"C", "F"}
            The index order.

        Returns
        -------
        Array
            A copy: an in-place write to it does not reach this array.

        Raises
        ------
        ValueError
            An unknown order.

        Examples
        --------
        >>> import numpy as np, pyad
        >>> with pyad.Tape() as tape:
        ...     x = tape.input(np.arange(6.0).reshape(2, 3))
        >>> x.flatten().shape
        (6,)
        """
        return self._restructure(self._i.flatten(order=order))

    def transpose(self, *axes: "int | tuple[int, ...]") -> "Array":
        """The axes permuted, as ``numpy.ndarray.transpose``.

        Parameters
        ----------
        *axes : int or tuple of int
            The new order of the axes (none: reversed).

        Returns
        -------
        Array
            No tape row is recorded: the result describes the same slots, as a numpy view describes the same memory.

        Raises
        ------
        ValueError
            ``axes`` is not a permutation of the axes.

        Examples
        --------
        >>> import numpy as np, pyad
        >>> with pyad.Tape() as tape:
        ...     x = tape.input(np.arange(6.0).reshape(2, 3))
        >>> x.transpose().shape, x.T.shape
        ((3, 2), (3, 2))
        """
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return self._restructure_by(lambda i: i.transpose(*axes) if axes else i.T)

    @property
    def T(self) -> "Array":
        """The transposed array (a view: records nothing)."""
        return self._restructure_by(lambda i: i.T)

    def swapaxes(self, a: int, b: int) -> "Array":
        """Two axes interchanged, as ``numpy.ndarray.swapaxes``.

        Parameters
        ----------
        a, b : int
            The axes.

        Returns
        -------
        Array
            No tape row is recorded: the result describes the same slots, as a numpy view describes the same memory.

        Raises
        ------
        numpy.exceptions.AxisError
            An axis out of range.

        Examples
        --------
        >>> import numpy as np, pyad
        >>> with pyad.Tape() as tape:
        ...     x = tape.input(np.arange(6.0).reshape(2, 3))
        >>> x.swapaxes(0, 1).shape
        (3, 2)
        """
        return self._restructure_by(lambda i: i.swapaxes(a, b))

    def squeeze(self, axis: "int | tuple[int, ...] | None" = None) -> "Array":
        """The array without its length-1 axes, as ``numpy.ndarray.squeeze``.

        Parameters
        ----------
        axis : int, tuple of int or None
            The axes to remove (None: every length-1 axis).

        Returns
        -------
        Array
            No tape row is recorded: the result describes the same slots, as a numpy view describes the same memory.

        Raises
        ------
        ValueError
            A named axis does not have length 1.

        Examples
        --------
        >>> import numpy as np, pyad
        >>> with pyad.Tape() as tape:
        ...     x = tape.input(np.arange(6.0).reshape(2, 3))
        >>> x[None].squeeze(0).shape
        (2, 3)
        """
        return self._restructure_by(lambda i: i.squeeze(axis))

    def copy(self) -> "Array":
        """A copy: in-place writes to it do not reach this array.

        Returns
        -------
        Array
            The same values and derivatives in new slots of the description.

        Examples
        --------
        >>> import numpy as np, pyad
        >>> with pyad.Tape() as tape:
        ...     x = tape.input(np.arange(6.0).reshape(2, 3))
        >>> x.copy()
        Array([[0., 1., 2.],
               [3., 4., 5.]])
        """
        return self._restructure(self._i.copy())

    def astype(self, dtype: Any, copy: bool = True) -> "Array":
        """The array as float64 (the only dtype an active array has).

        Parameters
        ----------
        dtype : dtype
            Must be float64.
        copy : bool
            Return a copy (else this array).

        Returns
        -------
        Array
            A copy, or this array.

        Raises
        ------
        TypeError
            Any other dtype: it would drop the derivatives (``.value`` gives plain numbers).

        Examples
        --------
        >>> import numpy as np, pyad
        >>> with pyad.Tape() as tape:
        ...     x = tape.input(np.arange(6.0).reshape(2, 3))
        >>> x.astype(np.float64).shape
        (2, 3)
        """
        if np.dtype(dtype) != np.float64:
            raise TypeError("active pyad arrays are float64; astype to another dtype would drop "
                            "derivatives (use .value for plain numbers)")
        return self.copy() if copy else self

    # ---- arithmetic ----

    # The operators of the registry's rows are installed below the class
    # (install_operators); these are the ones no row stands for.

    def __pos__(self):
        return self.copy()   # +x is a new array in numpy, not an alias

    def __pow__(self, o):
        if isinstance(o, numbers.Real) and not is_active(o) and o == 2:
            return elementwise_unary(self, C["square"])
        return elementwise_binary(self, o, ROW_OF_OPERATOR["__pow__"].name)

    def __iadd__(self, o):
        self._writable()
        return self._in_place(self.__add__(o), "+")

    def __isub__(self, o):
        self._writable()
        return self._in_place(self.__sub__(o), "-")

    def __imul__(self, o):
        self._writable()
        return self._in_place(self.__mul__(o), "*")

    def __itruediv__(self, o):
        self._writable()
        return self._in_place(self.__truediv__(o), "/")

    def __ipow__(self, o):
        self._writable()
        return self._in_place(self.__pow__(o), "**")

    def __imatmul__(self, o):
        self._writable()
        return self._in_place(self.__matmul__(o), "@")

    def __matmul__(self, o):
        return matmul(self, o)

    def __rmatmul__(self, o):
        return matmul(o, self)

    # ---- reductions and products ----

    # numpy's ndarray signatures, so positional dtype / out land where numpy puts them.

    def sum(self, axis: "int | tuple[int, ...] | None" = None, dtype: Any = None, out: None = None,
            keepdims: bool = False) -> Any:
        """The sum over ``axis``, as ``numpy.ndarray.sum``: one reduction row.

        Parameters
        ----------
        axis : int, tuple of int or None
            The axes to reduce (None: all).
        dtype : None or float64
            Another dtype is refused (derivatives are float64).
        out : None
            Not supported (``TypeError``).
        keepdims : bool
            Keep the reduced axes with length 1.

        Returns
        -------
        Scalar or Array
            The sums.

        Raises
        ------
        TypeError
            ``dtype`` other than float64, or ``out`` given.
        numpy.exceptions.AxisError
            An axis out of range.

        Examples
        --------
        >>> import numpy as np, pyad
        >>> with pyad.Tape() as tape:
        ...     x = tape.input(np.arange(6.0).reshape(2, 3))
        >>> x.sum(axis=0)
        Array([3., 5., 7.])
        """
        _method_args("sum", dtype, out)
        return reduce(self, "add", axis, keepdims)

    def prod(self, axis: "int | tuple[int, ...] | None" = None, dtype: Any = None, out: None = None,
             keepdims: bool = False) -> Any:
        """The product over ``axis``, as ``numpy.ndarray.prod``: one reduction row, exact derivatives at zeros.

        Parameters
        ----------
        axis : int, tuple of int or None
            The axes to reduce (None: all).
        dtype : None or float64
            Another dtype is refused (derivatives are float64).
        out : None
            Not supported (``TypeError``).
        keepdims : bool
            Keep the reduced axes with length 1.

        Returns
        -------
        Scalar or Array
            The products.

        Raises
        ------
        TypeError
            ``dtype`` other than float64, or ``out`` given.
        numpy.exceptions.AxisError
            An axis out of range.

        Examples
        --------
        >>> import numpy as np, pyad
        >>> with pyad.Tape() as tape:
        ...     x = tape.input(np.arange(6.0).reshape(2, 3))
        >>> x.prod(axis=0)
        Array([ 0.,  4., 10.])
        """
        _method_args("prod", dtype, out)
        return reduce(self, "mul", axis, keepdims)

    def max(self, axis: "int | tuple[int, ...] | None" = None, out: None = None, keepdims: bool = False) -> Any:
        """The maximum over ``axis``, as ``numpy.ndarray.max``; ties share the gradient evenly.

        Parameters
        ----------
        axis : int, tuple of int or None
            The axes to reduce (None: all).
        out : None
            Not supported (``TypeError``).
        keepdims : bool
            Keep the reduced axes with length 1.

        Returns
        -------
        Scalar or Array
            The maxima.

        Raises
        ------
        TypeError
            ``out`` given.
        numpy.exceptions.AxisError
            An axis out of range.

        Examples
        --------
        >>> import numpy as np, pyad
        >>> with pyad.Tape() as tape:
        ...     x = tape.input(np.arange(6.0).reshape(2, 3))
        >>> x.max(axis=1)
        Array([2., 5.])
        """
        _method_args("max", None, out)
        return reduce(self, "maximum", axis, keepdims)

    def min(self, axis: "int | tuple[int, ...] | None" = None, out: None = None, keepdims: bool = False) -> Any:
        """The minimum over ``axis``, as ``numpy.ndarray.min``; ties share the gradient evenly.

        Parameters
        ----------
        axis : int, tuple of int or None
            The axes to reduce (None: all).
        out : None
            Not supported (``TypeError``).
        keepdims : bool
            Keep the reduced axes with length 1.

        Returns
        -------
        Scalar or Array
            The minima.

        Raises
        ------
        TypeError
            ``out`` given.
        numpy.exceptions.AxisError
            An axis out of range.

        Examples
        --------
        >>> import numpy as np, pyad
        >>> with pyad.Tape() as tape:
        ...     x = tape.input(np.arange(6.0).reshape(2, 3))
        >>> x.min(axis=1)
        Array([0., 3.])
        """
        _method_args("min", None, out)
        return reduce(self, "minimum", axis, keepdims)

    def mean(self, axis: "int | tuple[int, ...] | None" = None, dtype: Any = None, out: None = None,
             keepdims: bool = False) -> Any:
        """The mean over ``axis``, as ``numpy.ndarray.mean``: a sum row and a scaling row.

        Parameters
        ----------
        axis : int, tuple of int or None
            The axes to reduce (None: all).
        dtype : None or float64
            Another dtype is refused (derivatives are float64).
        out : None
            Not supported (``TypeError``).
        keepdims : bool
            Keep the reduced axes with length 1.

        Returns
        -------
        Scalar or Array
            The means.

        Raises
        ------
        TypeError
            ``dtype`` other than float64, or ``out`` given.
        numpy.exceptions.AxisError
            An axis out of range.

        Examples
        --------
        >>> import numpy as np, pyad
        >>> with pyad.Tape() as tape:
        ...     x = tape.input(np.arange(6.0).reshape(2, 3))
        >>> x.mean(axis=1)
        Array([1., 4.])
        """
        _method_args("mean", dtype, out)
        return mean(self, axis, keepdims)

    def cumsum(self, axis: "int | None" = None, dtype: Any = None, out: None = None) -> "Array":
        """The cumulative sum along ``axis``, as ``numpy.ndarray.cumsum``: one scan row.

        Parameters
        ----------
        axis : int or None
            The axis (None: over the flattened array).
        dtype : None or float64
            Another dtype is refused (derivatives are float64).
        out : None
            Not supported (``TypeError``).

        Returns
        -------
        Array
            The running sums.

        Raises
        ------
        TypeError
            ``dtype`` other than float64, or ``out`` given.
        numpy.exceptions.AxisError
            An axis out of range.

        Examples
        --------
        >>> import numpy as np, pyad
        >>> with pyad.Tape() as tape:
        ...     x = tape.input(np.arange(6.0).reshape(2, 3))
        >>> x.cumsum(axis=1)
        Array([[ 0.,  1.,  3.],
               [ 3.,  7., 12.]])
        """
        _method_args("cumsum", dtype, out)
        return cumulative(self, "add", axis)

    def cumprod(self, axis: "int | None" = None, dtype: Any = None,
                out: None = None) -> "Array":
        """The cumulative product along ``axis``, as ``numpy.ndarray.cumprod``: one scan row.

        Parameters
        ----------
        axis : int or None
            The axis (None: over the flattened array).
        dtype : None or float64
            Another dtype is refused (derivatives are float64).
        out : None
            Not supported (``TypeError``).

        Returns
        -------
        Array
            The running products.

        Raises
        ------
        TypeError
            ``dtype`` other than float64, or ``out`` given.
        numpy.exceptions.AxisError
            An axis out of range.

        Examples
        --------
        >>> import numpy as np, pyad
        >>> with pyad.Tape() as tape:
        ...     x = tape.input(np.arange(6.0).reshape(2, 3))
        >>> x.cumprod(axis=1)
        Array([[ 0.,  0.,  0.],
               [ 3., 12., 60.]])
        """
        _method_args("cumprod", dtype, out)
        return cumulative(self, "mul", axis)

    def dot(self, o: Any) -> Any:
        """The product with ``o``, as ``numpy.ndarray.dot``: one product row calling BLAS.

        Parameters
        ----------
        o : array_like or active value
            The other factor.

        Returns
        -------
        Scalar or Array
            ``np.dot(self, o)``.

        Raises
        ------
        ValueError
            The shapes do not align.

        Examples
        --------
        >>> import numpy as np, pyad
        >>> with pyad.Tape() as tape:
        ...     x = tape.input(np.arange(6.0).reshape(2, 3))
        >>> x.dot(np.ones(3))
        Array([ 3., 12.])
        """
        return UPPER.dot(self, o)

    # ---- numpy protocols (pyad.numpy_api, through pyad.scalar.UPPER) ----

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return UPPER.array_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        return UPPER.array_function(func, types, args, kwargs)


def _plain_constant(c):
    """Whether c is a number or a numeric ndarray: a constant no active value can
    hide in (store_of need not walk it)."""
    t = type(c)
    return t in _PLAIN_CONSTANTS or (t is np.ndarray and c.dtype.kind in "fiub")


_ACTIVE = (Scalar, Array)
# constants that hold no active value (no walk through them for one): a float64
# ndarray is checked as one by as_constant (an object array is not in here)
_PLAIN_CONSTANTS = frozenset([float, int, np.float64])

install_operators(Array, operator_methods(elementwise_unary, elementwise_binary))


def _method_args(name, dtype, out):
    if out is not None:
        raise TypeError(f"Array.{name}: pyad cannot write into an out= array; use the "
                        "returned value")
    check_dtype(f"Array.{name}", dtype)


class BoolArray(Array):
    """Active elementwise comparison outcomes (1.0 / 0.0 per element).

    ``pyad.where`` selects with it and replays both ways; ``.all()`` / ``.any()``
    give an active ``Bool`` whose use in a Python ``if`` records a guard. ``&``,
    ``|`` and ``~`` combine them.

    Examples
    --------
    >>> import numpy as np, pyad
    >>> with pyad.Tape() as tape:
    ...     x = tape.input(np.arange(6.0).reshape(2, 3))
    ...     positive = x > 2.0
    ...     y = tape.output(np.sum(pyad.where(positive, x, 0.0)))
    >>> positive
    BoolArray([[False, False, False],
     [ True,  True,  True]])
    >>> tape.gradient(np.ones((2, 3)))
    array([[0., 0., 0.],
           [0., 0., 0.]])
    """

    __slots__ = ()

    def __repr__(self):
        try:
            return f"BoolArray({np.array2string(self._recorded_values() != 0, separator=', ')})"
        except Exception:
            return "BoolArray(<closed tape>)"

    def all(self, axis: "int | tuple[int, ...] | None" = None, keepdims: bool = False) -> Any:
        """Whether every element is true over ``axis``, as ``numpy.ndarray.all``.

        Parameters
        ----------
        axis : int, tuple of int or None
            The axes to reduce (None: all).
        keepdims : bool
            Keep the reduced axes with length 1.

        Returns
        -------
        Bool or BoolArray
            Active: an ``if`` on it records a guard.

        Raises
        ------
        numpy.exceptions.AxisError
            An axis out of range.

        Examples
        --------
        >>> import numpy as np, pyad
        >>> with pyad.Tape() as tape:
        ...     x = tape.input(np.arange(6.0).reshape(2, 3))
        >>> (x > 2.0).all(axis=1)
        BoolArray([False,  True])
        """
        return _as_bool(reduce(self, "minimum", axis, keepdims))

    def any(self, axis: "int | tuple[int, ...] | None" = None, keepdims: bool = False) -> Any:
        """Whether some element is true over ``axis``, as ``numpy.ndarray.any``.

        Parameters
        ----------
        axis : int, tuple of int or None
            The axes to reduce (None: all).
        keepdims : bool
            Keep the reduced axes with length 1.

        Returns
        -------
        Bool or BoolArray
            Active: an ``if`` on it records a guard.

        Raises
        ------
        numpy.exceptions.AxisError
            An axis out of range.

        Examples
        --------
        >>> import numpy as np, pyad
        >>> with pyad.Tape() as tape:
        ...     x = tape.input(np.arange(6.0).reshape(2, 3))
        >>> (x > 2.0).any(axis=0)
        BoolArray([ True,  True,  True])
        """
        return _as_bool(reduce(self, "maximum", axis, keepdims))

    def __invert__(self):
        return _as_bool(elementwise_binary(1.0, self, "sub"))

    def __and__(self, o):
        return _as_bool(elementwise_binary(self, o, "mul"))

    __rand__ = __and__

    def __or__(self, o):
        return _as_bool(elementwise_binary(self, o, "maximum"))

    __ror__ = __or__

    def __iand__(self, o):
        self._writable()
        return self._in_place(self.__and__(o), "&")

    def __ior__(self, o):
        self._writable()
        return self._in_place(self.__or__(o), "|")

    def _no_arithmetic_in_place(self, o):
        raise TypeError("in-place arithmetic on a BoolArray (comparison outcomes) is refused, "
                        "as numpy refuses to cast a float result into a bool array; write "
                        "m = m + y for a float array")

    __iadd__ = __isub__ = __imul__ = __itruediv__ = __ipow__ = __imatmul__ = \
        _no_arithmetic_in_place


def _as_bool(x):
    if isinstance(x, Array):
        if x._r is None:
            return _new(BoolArray, x._s, x._i)
        return _lazy(BoolArray, x._s, x._r, x._v, x._o)
    return Bool(x._s, x._i)


def _is_basic_index(k):
    """Whether k, one entry of an index, selects a view in numpy (no copy)."""
    return (k is None or k is Ellipsis or type(k) is slice
            or (isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_))))

# A Scalar meeting an Array, an ndarray, a list or a tuple records elementwise here.
provide_handlers(is_array_operand=lambda x: isinstance(x, (np.ndarray, list, tuple, Array)),
                 array_binary=elementwise_binary)

__all__ = ["Array", "BoolArray", "where", "stack_values", "record_truth"]
