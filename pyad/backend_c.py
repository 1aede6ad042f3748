"""The C backend: a tape stored and swept by csrc/, reached through cffi.

A CStore owns one C tape. Recording calls return the new slot's index; sweeps
take numpy arrays and return numpy arrays. Work arrays for sweeps are cached per
store and used by one sweep at a time; a concurrent sweep gets fresh ones, so
several threads may replay one tape at once.
"""
import threading

import numpy as np

from ._pyad_c import ffi, lib
from .errors import BranchError, status_error

_BRANCH = lib.PYAD_EBRANCH


def _strerror(status):
    return ffi.string(lib.pyad_strerror(status)).decode()


def _fail(status, context=""):
    raise status_error(status, _strerror, context)


def _dbl(a):
    return ffi.from_buffer("double[]", a)


def _i32(a):
    return ffi.from_buffer("int32_t[]", a)


class _Work:
    """Scratch arrays of one sweep, with their cffi pointers made once."""

    def __init__(self, n_ops):
        self.arrays = [np.empty(max(n_ops, 1)) for _ in range(4)]
        self.ptrs = [_dbl(a) for a in self.arrays]


class CStore:
    backend = "c"

    def __init__(self):
        out = ffi.new("pyad_tape **")
        status = lib.pyad_tape_new(out)
        if status:
            _fail(status)
        self._h = ffi.gc(out[0], lib.pyad_tape_free)
        self._slot1 = ffi.new("int32_t[1]")
        self._val1 = ffi.new("double[1]")
        self._bad = ffi.new("int64_t[1]")
        self._work = None
        self._work_lock = threading.Lock()

    # ---- lifetime and size ----

    def close(self):
        h, self._h = self._h, ffi.NULL
        self._work = None
        if h != ffi.NULL:
            ffi.release(h)

    @property
    def closed(self):
        return self._h == ffi.NULL

    def _count(self, fn):
        n = fn(self._h)
        if n < 0:
            _fail(n)
        return n

    @property
    def n_ops(self):
        return self._count(lib.pyad_n_ops)

    @property
    def n_inputs(self):
        return self._count(lib.pyad_n_inputs)

    @property
    def n_outputs(self):
        return self._count(lib.pyad_n_outputs)

    @property
    def nbytes(self):
        return self._count(lib.pyad_nbytes)

    def shrink(self):
        status = lib.pyad_shrink(self._h)
        if status:
            _fail(status)

    def set_max_ops(self, n):
        status = lib.pyad_set_max_ops(self._h, n)
        if status:
            _fail(status)

    # ---- recording (one op) ----

    def input(self, value):
        s = lib.pyad_rec_input(self._h, value)
        return s if s >= 0 else _fail(s)

    def const(self, value):
        s = lib.pyad_rec_const(self._h, value)
        return s if s >= 0 else _fail(s)

    def rec1(self, op, a):
        s = lib.pyad_rec1(self._h, op, a)
        return s if s >= 0 else _fail(s)

    def rec2(self, op, a, b):
        s = lib.pyad_rec2(self._h, op, a, b)
        return s if s >= 0 else _fail(s)

    def rec_c(self, op, a, c):
        s = lib.pyad_rec_c(self._h, op, a, c)
        return s if s >= 0 else _fail(s)

    def select(self, cond, a, b):
        s = lib.pyad_rec_select(self._h, cond, a, b)
        return s if s >= 0 else _fail(s)

    def guard(self, cond, expected):
        s = lib.pyad_rec_guard(self._h, cond, 1 if expected else 0)
        return s if s >= 0 else _fail(s)

    def value(self, slot):
        self._slot1[0] = slot
        s = lib.pyad_values(self._h, self._slot1, 1, self._val1)
        return self._val1[0] if s == 0 else _fail(s)

    # ---- recording (many ops; arguments are contiguous int32/float64 arrays) ----

    def input_n(self, values):
        s = lib.pyad_rec_input_n(self._h, _dbl(values), values.size)
        return s if s >= 0 else _fail(s)

    def rec1_n(self, op, a):
        s = lib.pyad_rec1_n(self._h, op, _i32(a), a.size)
        return s if s >= 0 else _fail(s)

    def rec2_n(self, op, a, b):
        s = lib.pyad_rec2_n(self._h, op, _i32(a), _i32(b), a.size)
        return s if s >= 0 else _fail(s)

    def rec_c_n(self, op, a, c):
        """c holds one constant per element of a, or one for all."""
        s = lib.pyad_rec_c_n(self._h, op, _i32(a), _dbl(c), c.size, a.size)
        return s if s >= 0 else _fail(s)

    def const_n(self, values):
        s = lib.pyad_rec_const_n(self._h, _dbl(values), values.size)
        return s if s >= 0 else _fail(s)

    def reduce(self, op, x):
        """Reduce each row of the (m, k) slot matrix x with a binary op."""
        m, k = x.shape
        out = np.empty(m, dtype=np.int32)
        s = lib.pyad_rec_reduce(self._h, op, _i32(x), m, k, _i32(out))
        return out if s == 0 else _fail(s)

    def matmul_c(self, x, w):
        """Slots of x (m, k) @ w (k, p) for constant w."""
        (m, k), p = x.shape, w.shape[1]
        out = np.empty((m, p), dtype=np.int32)
        s = lib.pyad_rec_matmul_c(self._h, _i32(x), m, k, _dbl(w), p, _i32(out))
        return out if s == 0 else _fail(s)

    def select_n(self, cond, a, b):
        s = lib.pyad_rec_select_n(self._h, _i32(cond), _i32(a), _i32(b), a.size)
        return s if s >= 0 else _fail(s)

    def output_n(self, slots):
        s = lib.pyad_rec_output_n(self._h, _i32(slots), slots.size)
        if s < 0:
            _fail(s)

    def values(self, slots):
        out = np.empty(slots.size)
        s = lib.pyad_values(self._h, _i32(slots), slots.size, _dbl(out))
        return out if s == 0 else _fail(s)

    def op_at(self, k):
        s = lib.pyad_op_at(self._h, k)
        return s if s >= 0 else _fail(s)

    def input_slots(self):
        out = np.empty(self.n_inputs, dtype=np.int32)
        lib.pyad_input_slots(self._h, _i32(out))
        return out

    def output_slots(self):
        out = np.empty(self.n_outputs, dtype=np.int32)
        lib.pyad_output_slots(self._h, _i32(out))
        return out

    # ---- sweeps ----

    def _take_work(self):
        if self._work_lock.acquire(blocking=False):
            work = self._work
            if work is None or work.arrays[0].size < self.n_ops:
                work = self._work = _Work(self.n_ops)
            return work, True
        return _Work(self.n_ops), False

    def _give_work(self, owned):
        if owned:
            self._work_lock.release()

    def _check(self, status, bad):
        if status == _BRANCH:
            raise BranchError(int(bad[0]))
        if status:
            _fail(status)

    def forward(self, x):
        """Output values at inputs x."""
        y = np.empty(self.n_outputs)
        bad = ffi.new("int64_t[1]")
        work, owned = self._take_work()
        try:
            s = lib.pyad_forward(self._h, _dbl(x), work.ptrs[0], _dbl(y), bad)
        finally:
            self._give_work(owned)
        self._check(s, bad)
        return y

    def jvp(self, x, xd):
        """(outputs, J xd) at x."""
        y, yd = np.empty(self.n_outputs), np.empty(self.n_outputs)
        bad = ffi.new("int64_t[1]")
        work, owned = self._take_work()
        try:
            s = lib.pyad_forward_tangent(self._h, _dbl(x), _dbl(xd), work.ptrs[0],
                                         work.ptrs[1], _dbl(y), _dbl(yd), bad)
        finally:
            self._give_work(owned)
        self._check(s, bad)
        return y, yd

    def vjp(self, x, u):
        """(outputs, u^T J) at x; x None means at the recorded point."""
        y = np.empty(self.n_outputs)
        xbar = np.empty(self.n_inputs)
        bad = ffi.new("int64_t[1]")
        work, owned = self._take_work()
        try:
            if x is None:
                s = 0
                y = self.values(self.output_slots())
                v = ffi.NULL
            else:
                v = work.ptrs[0]
                s = lib.pyad_forward(self._h, _dbl(x), v, _dbl(y), bad)
            if s == 0:
                s = lib.pyad_reverse(self._h, v, _dbl(u), work.ptrs[1], _dbl(xbar))
        finally:
            self._give_work(owned)
        self._check(s, bad)
        return y, xbar

    def hvp(self, x, xd, u):
        """(outputs, u^T J, d(u^T J)/dt along xd) at x: for scalar f, H xd."""
        y, yd = np.empty(self.n_outputs), np.empty(self.n_outputs)
        xbar, xbard = np.empty(self.n_inputs), np.empty(self.n_inputs)
        bad = ffi.new("int64_t[1]")
        work, owned = self._take_work()
        try:
            v, vd, adj, adjd = work.ptrs
            s = lib.pyad_forward_tangent(self._h, _dbl(x), _dbl(xd), v, vd, _dbl(y),
                                         _dbl(yd), bad)
            if s == 0:
                s = lib.pyad_reverse_second(self._h, v, vd, _dbl(u), adj, adjd,
                                            _dbl(xbar), _dbl(xbard))
        finally:
            self._give_work(owned)
        self._check(s, bad)
        return y, xbar, xbard
