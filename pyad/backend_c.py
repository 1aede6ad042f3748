"""The C backend: a tape stored and swept by csrc/, reached through cffi.

A CStore owns one C tape. Recording calls return the new slot's index; sweeps
take numpy arrays and return numpy arrays. Work arrays for sweeps are cached per
store and used by one sweep at a time; a concurrent sweep gets fresh ones, so
several threads may replay one tape at once.
"""
import threading

from _thread import get_ident

import numpy as np

from . import ops
from ._pyad_c import ffi, lib
from .errors import INTERLEAVED, BranchError, TapeBusyError, status_error
from .row_buffer import RowBuffer

_BRANCH = lib.PYAD_EBRANCH


def _strerror(status):
    return ffi.string(lib.pyad_strerror(status)).decode()


def _fail(status, context=""):
    raise status_error(status, _strerror, context)


def _dbl(a):
    return ffi.from_buffer("double[]", a)


def _i32(a):
    return ffi.from_buffer("int32_t[]", a)


# Whether each op code's b column holds a constant (rows buffered by push_c).
_HAS_CONST = np.array([ops.KIND[name] in ("with_const", "compare_c") for name in ops.NAME])


def split_constants(op, b_mixed):
    """The b column of buffered rows holds a slot, or (for *_c ops) the constant
    itself: return the int32 b column with constants replaced by their index in
    the returned constant array."""
    has_const = _HAS_CONST[op]
    consts = np.ascontiguousarray(b_mixed[has_const])
    b = np.empty(op.size, dtype=np.int32)
    b[has_const] = np.arange(consts.size, dtype=np.int32)
    b[~has_const] = b_mixed[~has_const]
    return b, consts


class _Work:
    """Scratch arrays of one sweep, with their cffi pointers made once."""

    def __init__(self, n_ops):
        self.arrays = [np.empty(max(n_ops, 1)) for _ in range(4)]
        self.ptrs = [_dbl(a) for a in self.arrays]
        self.y = ffi.new("double[1]")
        self.bad = ffi.new("int64_t[1]")


class CStore(RowBuffer):
    """One C tape. Scalar ops wait in _speedups.c's row buffer (push1/push2/push_c,
    or the operators' C fast path) and are handed to C in one call when anything else
    touches the tape: a cffi call per op would cost more than the op itself."""

    backend = "c"

    def __init__(self):
        out = ffi.new("pyad_tape **")
        status = lib.pyad_tape_new(out)
        if status:
            _fail(status)
        self._h = ffi.gc(out[0], lib.pyad_tape_free)
        self._slot1 = ffi.new("int32_t[1]")
        self._val1 = ffi.new("double[1]")
        self._work = None
        self._work_lock = threading.Lock()
        self._next = 0  # rows are buffered in RowStore (see RowBuffer)
        self._owner = get_ident()  # the thread recording scalar ops (see scalar.claim)

    # ---- buffered scalar recording (push1 / push2 / push_c: RowBuffer) ----

    def _sync(self):
        """Hand the buffered rows to C (before anything reads or extends the tape).
        Callers test `if self._pending:` first: most calls find the buffer empty."""
        n = self._pending
        if n != self._next - lib.pyad_n_ops(self._h):
            self.close()
            raise TapeBusyError(INTERLEAVED)
        op_bytes, a_bytes, b_bytes = self._take()
        ops_ = np.frombuffer(op_bytes, dtype=np.uint8)
        b, consts = split_constants(ops_, np.frombuffer(b_bytes, dtype=np.float64))
        # Values already handed out name the buffered slots: if the rows cannot be
        # recorded, no later op may take those slots, so the tape is closed.
        s = lib.pyad_rec_rows(self._h, ffi.from_buffer("uint8_t[]", ops_),
                              ffi.from_buffer("int32_t[]", a_bytes), _i32(b), n,
                              _dbl(consts), consts.size)
        if s < 0:
            self.close()
            _fail(s, "recording buffered operations (the tape is now closed)")

    def _done(self, s):
        """Finish a direct record call that returned s (a slot or a status)."""
        if s < 0:
            _fail(s)
        self._next = lib.pyad_n_ops(self._h)
        return s

    # ---- lifetime and size ----

    def close(self):
        """Later calls get TapeClosedError. The C tape is freed (by ffi.gc) when the
        last reference to its handle goes: at once, or when a sweep that another
        thread is running returns (a call holds the handle for its duration)."""
        self._h = ffi.NULL
        self._work = None
        self._close_rows()

    @property
    def closed(self):
        return self._h == ffi.NULL

    def _count(self, fn):
        if self._pending:
            self._sync()
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
        if self._pending:
            self._sync()
        status = lib.pyad_shrink(self._h)
        if status:
            _fail(status)

    def set_max_ops(self, n):
        if self._pending:
            self._sync()
        status = lib.pyad_set_max_ops(self._h, n)
        if status:
            _fail(status)

    # ---- direct recording ----

    def input(self, value):
        if self._pending:
            self._sync()
        return self._done(lib.pyad_rec_input(self._h, value))

    def const(self, value):
        if self._pending:
            self._sync()
        return self._done(lib.pyad_rec_const(self._h, value))

    def rec1(self, op, a):
        if self._pending:
            self._sync()
        return self._done(lib.pyad_rec1(self._h, op, a))

    def rec2(self, op, a, b):
        if self._pending:
            self._sync()
        return self._done(lib.pyad_rec2(self._h, op, a, b))

    def rec_c(self, op, a, c):
        if self._pending:
            self._sync()
        return self._done(lib.pyad_rec_c(self._h, op, a, c))

    def select(self, cond, a, b):
        if self._pending:
            self._sync()
        return self._done(lib.pyad_rec_select(self._h, cond, a, b))

    def guard(self, cond, expected):
        if self._pending:
            self._sync()
        return self._done(lib.pyad_rec_guard(self._h, cond, 1 if expected else 0))

    def value(self, slot):
        if self._pending:
            self._sync()
        self._slot1[0] = slot
        s = lib.pyad_values(self._h, self._slot1, 1, self._val1)
        return self._val1[0] if s == 0 else _fail(s)

    # ---- recording many ops (arguments: contiguous int32 / float64 arrays) ----

    def input_n(self, values):
        if self._pending:
            self._sync()
        return self._done(lib.pyad_rec_input_n(self._h, _dbl(values), values.size))

    def rec1_n(self, op, a):
        if self._pending:
            self._sync()
        return self._done(lib.pyad_rec1_n(self._h, op, _i32(a), a.size))

    def rec2_n(self, op, a, b):
        if self._pending:
            self._sync()
        return self._done(lib.pyad_rec2_n(self._h, op, _i32(a), _i32(b), a.size))

    def rec_c_n(self, op, a, c):
        """c holds one constant per element of a, or one for all."""
        if self._pending:
            self._sync()
        return self._done(lib.pyad_rec_c_n(self._h, op, _i32(a), _dbl(c), c.size, a.size))

    def const_n(self, values):
        if self._pending:
            self._sync()
        return self._done(lib.pyad_rec_const_n(self._h, _dbl(values), values.size))

    def select_n(self, cond, a, b):
        if self._pending:
            self._sync()
        return self._done(lib.pyad_rec_select_n(self._h, _i32(cond), _i32(a), _i32(b), a.size))

    def reduce(self, op, x):
        """Reduce each row of the (m, k) slot matrix x with a binary op."""
        if self._pending:
            self._sync()
        m, k = x.shape
        out = np.empty(m, dtype=np.int32)
        self._done(lib.pyad_rec_reduce(self._h, op, _i32(x), m, k, _i32(out)))
        return out

    def matmul_c(self, x, w):
        """Slots of x (m, k) @ w (k, p) for constant w."""
        if self._pending:
            self._sync()
        (m, k), p = x.shape, w.shape[1]
        out = np.empty((m, p), dtype=np.int32)
        self._done(lib.pyad_rec_matmul_c(self._h, _i32(x), m, k, _dbl(w), p, _i32(out)))
        return out

    def output_n(self, slots):
        if self._pending:
            self._sync()
        s = lib.pyad_rec_output_n(self._h, _i32(slots), slots.size)
        if s < 0:
            _fail(s)

    def values(self, slots):
        if self._pending:
            self._sync()
        out = np.empty(slots.size)
        s = lib.pyad_values(self._h, _i32(slots), slots.size, _dbl(out))
        return out if s == 0 else _fail(s)

    def op_at(self, k):
        if self._pending:
            self._sync()
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
        if self._pending:
            self._sync()
        n_ops = self._next  # the number of ops, once the buffer is synced
        if self._work_lock.acquire(blocking=False):
            work = self._work
            if work is None or work.arrays[0].size < n_ops:
                work = self._work = _Work(n_ops)
            return work, True
        return _Work(n_ops), False

    def _give_work(self, owned):
        if owned:
            self._work_lock.release()

    def _check(self, status, bad):
        if status == _BRANCH:
            raise BranchError(int(bad[0]))
        if status:
            _fail(status)

    def gradient_flat(self, x, n_inputs):
        """The gradient of a one-output tape at x (a contiguous float64 vector).
        This is the lowest-latency replay, so it inlines _take_work."""
        out = np.empty(n_inputs)
        if self._pending:
            self._sync()
        lock, work = self._work_lock, self._work
        owned = lock.acquire(False)
        if not owned or work is None or work.arrays[0].size < self._next:
            work = _Work(self._next)
            if owned:
                self._work = work
        try:
            s = lib.pyad_gradient(self._h, _dbl(x), work.ptrs[0], work.ptrs[1], work.y,
                                  _dbl(out), work.bad)
        finally:
            if owned:
                lock.release()
        if s == 0:
            return out
        if s == _BRANCH:
            raise BranchError(int(work.bad[0]))
        _fail(s)

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

    # ---- vector sweeps (several directions at one point) ----

    def jvp_vec(self, x, xd):
        """(outputs, J xd_j for each row j of xd) at x."""
        p, n_ops, m = xd.shape[0], self.n_ops, self.n_outputs
        v, vd = np.empty(n_ops), np.empty(n_ops * p)
        y, yd = np.empty(m), np.empty((p, m))
        bad = ffi.new("int64_t[1]")
        s = lib.pyad_tangent_vector(self._h, p, _dbl(x), _dbl(xd), _dbl(v), _dbl(vd), _dbl(y),
                                    _dbl(yd), bad)
        self._check(s, bad)
        return y, yd

    def vjp_vec(self, x, u):
        """(outputs, u_j^T J for each row j of u) at x (None: the recorded point)."""
        q, n_ops = u.shape[0], self.n_ops
        xbar = np.empty((q, self.n_inputs))
        if x is None:
            y, v = self.values(self.output_slots()), ffi.NULL
        else:
            values = np.empty(n_ops)
            y = np.empty(self.n_outputs)
            bad = ffi.new("int64_t[1]")
            self._check(lib.pyad_forward(self._h, _dbl(x), _dbl(values), _dbl(y), bad), bad)
            v = _dbl(values)
        s = lib.pyad_reverse_vector(self._h, q, v, _dbl(u), _dbl(np.empty(n_ops * q)), _dbl(xbar))
        if s:
            _fail(s)
        return y, xbar

    def hvp_vec(self, x, xd, u):
        """(outputs, u^T J, and d(u^T J) along each row of xd) at x."""
        p, n_ops = xd.shape[0], self.n_ops
        v, vd = np.empty(n_ops), np.empty(n_ops * p)
        y, yd = np.empty(self.n_outputs), np.empty((p, self.n_outputs))
        bad = ffi.new("int64_t[1]")
        s = lib.pyad_tangent_vector(self._h, p, _dbl(x), _dbl(xd), _dbl(v), _dbl(vd), _dbl(y),
                                    _dbl(yd), bad)
        self._check(s, bad)
        xbar, xbard = np.empty(self.n_inputs), np.empty((p, self.n_inputs))
        s = lib.pyad_second_vector(self._h, p, _dbl(v), _dbl(vd), _dbl(u), _dbl(np.empty(n_ops)),
                                   _dbl(np.empty(n_ops * p)), _dbl(xbar), _dbl(xbard))
        if s:
            _fail(s)
        return y, xbar, xbard

    # ---- batched sweeps (one tape at many points; points in rows) ----

    def _batch_values(self, x, xd=None):
        nb, n_ops, m = x.shape[0], self.n_ops, self.n_outputs
        v = np.empty(n_ops * nb)
        y = np.empty((nb, m))
        bad = np.empty(nb, dtype=np.int64)
        n_bad = ffi.new("int64_t[1]")
        if xd is None:
            s = lib.pyad_forward_batch(self._h, nb, _dbl(x), _dbl(v), _dbl(y),
                                       ffi.from_buffer("int64_t[]", bad), n_bad)
            vd = yd = None
        else:
            vd, yd = np.empty(n_ops * nb), np.empty((nb, m))
            s = lib.pyad_tangent_batch(self._h, nb, _dbl(x), _dbl(xd), _dbl(v), _dbl(vd),
                                       _dbl(y), _dbl(yd), ffi.from_buffer("int64_t[]", bad),
                                       n_bad)
        if s:
            _fail(s)
        return v, vd, y, yd, bad

    def forward_batch(self, x):
        _, _, y, _, bad = self._batch_values(x)
        return y, bad

    def jvp_batch(self, x, xd):
        _, _, y, yd, bad = self._batch_values(x, xd)
        return y, yd, bad

    def vjp_batch(self, x, u):
        v, _, y, _, bad = self._batch_values(x)
        xbar = np.empty((x.shape[0], self.n_inputs))
        s = lib.pyad_reverse_batch(self._h, x.shape[0], _dbl(v), _dbl(u), _dbl(np.empty_like(v)),
                                   _dbl(xbar))
        if s:
            _fail(s)
        return y, xbar, bad

    def hvp_batch(self, x, xd, u):
        v, vd, y, _, bad = self._batch_values(x, xd)
        nb = x.shape[0]
        xbar, xbard = np.empty((nb, self.n_inputs)), np.empty((nb, self.n_inputs))
        s = lib.pyad_second_batch(self._h, nb, _dbl(v), _dbl(vd), _dbl(u), _dbl(np.empty_like(v)),
                                  _dbl(np.empty_like(v)), _dbl(xbar), _dbl(xbard))
        if s:
            _fail(s)
        return y, xbar, xbard, bad

    # ---- plain arrays (saving and loading) ----

    def export(self):
        if self._pending:
            self._sync()
        # One handle for the whole call: a close() in another thread then either
        # came first (every count is PYAD_ECLOSED) or frees the tape after us.
        h = self._h
        n, n_consts, n_pool, n_in, n_out = (
            self._size_or_fail(count(h)) for count in (
                lib.pyad_n_ops, lib.pyad_n_consts, lib.pyad_n_pool, lib.pyad_n_inputs,
                lib.pyad_n_outputs))
        arrays = {"op": np.empty(n, np.uint8), "a": np.empty(n, np.int32),
                  "b": np.empty(n, np.int32), "c": np.empty(n, np.int32),
                  "val": np.empty(n), "consts": np.empty(n_consts),
                  "pool": np.empty(n_pool, np.int32), "inputs": np.empty(n_in, np.int32),
                  "outputs": np.empty(n_out, np.int32)}
        p = {k: ffi.from_buffer(v) for k, v in arrays.items()}
        s = lib.pyad_tape_export(h, ffi.cast("uint8_t *", p["op"]),
                                 ffi.cast("int32_t *", p["a"]), ffi.cast("int32_t *", p["b"]),
                                 ffi.cast("int32_t *", p["c"]), ffi.cast("double *", p["val"]),
                                 ffi.cast("double *", p["consts"]),
                                 ffi.cast("int32_t *", p["pool"]),
                                 ffi.cast("int32_t *", p["inputs"]),
                                 ffi.cast("int32_t *", p["outputs"]))
        return arrays if s == 0 else _fail(s)

    @staticmethod
    def _size_or_fail(n):
        return n if n >= 0 else _fail(n)

    @classmethod
    def from_arrays(cls, a):
        """A store holding a validated copy of the arrays."""
        store = cls()
        out = ffi.new("pyad_tape **")
        s = lib.pyad_tape_import(
            out, a["op"].size, ffi.from_buffer("uint8_t[]", a["op"]),
            _i32(a["a"]), _i32(a["b"]), _i32(a["c"]), _dbl(a["val"]), a["consts"].size,
            _dbl(a["consts"]), a["pool"].size, _i32(a["pool"]), a["inputs"].size, _i32(a["inputs"]), a["outputs"].size,
            _i32(a["outputs"]))
        if s:
            _fail(s, "loading a tape")
        store._h = ffi.gc(out[0], lib.pyad_tape_free)
        store._next = lib.pyad_n_ops(store._h)
        return store

    # ---- every slot's value, tangent or adjoint (teaching views, diagnostics) ----

    def slot_values(self, x, xd=None):
        """(values, tangents or None) of every slot at x."""
        n_ops = self.n_ops
        v, vd = np.empty(n_ops), np.empty(n_ops)
        bad = ffi.new("int64_t[1]")
        if xd is None:
            self._check(lib.pyad_forward(self._h, _dbl(x), _dbl(v), ffi.NULL, bad), bad)
            return v, None
        self._check(lib.pyad_forward_tangent(self._h, _dbl(x), _dbl(xd), _dbl(v), _dbl(vd),
                                             ffi.NULL, ffi.NULL, bad), bad)
        return v, vd

    def slot_adjoints(self, x, u):
        """(values, adjoints) of every slot at x for output weights u."""
        v, _ = self.slot_values(x)
        adj = np.empty(self.n_ops)
        s = lib.pyad_reverse(self._h, _dbl(v), _dbl(u), _dbl(adj), _dbl(np.empty(self.n_inputs)))
        return (v, adj) if s == 0 else _fail(s)

    def set_max_bytes(self, n):
        if self._pending:
            self._sync()
        status = lib.pyad_set_max_bytes(self._h, n)
        if status:
            _fail(status)
