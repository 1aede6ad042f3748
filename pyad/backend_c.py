"""The C backend: a tape stored and swept by csrc/, reached through cffi.

A CStore owns one C tape. Recording calls return the new slot's index; sweeps
take numpy arrays and return numpy arrays. Work arrays for sweeps are cached per
store and used by one sweep at a time; a concurrent sweep gets fresh ones, so
several threads may replay one tape at once.
"""
import concurrent.futures
import threading
import time

from _thread import get_ident

import numpy as np

from . import _custom_rows as custom_rows
from . import ops
from ._pyad_c import ffi, lib
from .errors import INTERLEAVED, BranchError, TapeBusyError, status_error
from .row_buffer import RowBuffer, recording
from .store import Sweep

_BRANCH = lib.PYAD_EBRANCH
_BUSY = lib.PYAD_EBUSY
_WAIT_S = 60.0  # how long a call waits for another thread's sweep or record call


def _strerror(status):
    return ffi.string(lib.pyad_strerror(status)).decode()


def _fail(status, context=""):
    if status == _CALLBACK:
        error = getattr(_callback_error, "error", None)
        _callback_error.error = None
        if error is not None:
            raise error  # the user's own exception, from the rule that raised it
    raise status_error(status, _strerror, context)


# ---- custom rows: the C core calls back into Python ----
#
# A custom row's sweep runs the user's rules (pyad/_custom_rows.py). An exception
# there must not cross C: it is kept here, for the thread whose sweep called the
# rule, the callback returns a failure, the sweep stops with PYAD_ECALLBACK, and
# _fail re-raises the exception itself once the sweep has returned.
_CALLBACK = lib.PYAD_ECALLBACK
_callback_error = threading.local()


def _lanes(ptr, n, lanes):
    """The (n, lanes) float64 view of a work array the callback was handed."""
    if ptr == ffi.NULL:
        return None
    return np.frombuffer(ffi.buffer(ptr, 8 * n * lanes), dtype=np.float64).reshape(n, lanes)


@ffi.def_extern(error=-1)
def pyad_custom_callback(ctx, call):
    try:
        row = ffi.from_handle(ctx)[call.rule]
        n_in, n_out = call.n_in, call.n_out
        lv, lt, lg, lq = call.lv, call.lt, call.lg, call.lq
        custom_rows.run_call(row, call.sweep, lv, lt, lg, lq,
                             _lanes(call.x, n_in, lv), _lanes(call.z, n_out, lv),
                             _lanes(call.xd, n_in, lt), _lanes(call.zd, n_out, lt),
                             _lanes(call.zbar, n_out, lg), _lanes(call.xbar, n_in, lg),
                             _lanes(call.zbard, n_out, lq), _lanes(call.xbard, n_in, lq))
    except BaseException as e:  # noqa: B036 (KeyboardInterrupt too: re-raised after the sweep)
        _callback_error.error = e
        _keep_for_batches(ctx, e)
        return -1
    return 0


# A batch split over threads runs rules on threads other than its caller's (the
# pool's, which are not Python threads, or an executor's): their exceptions go
# to the boxes of the batches running on that store (a dict per batch, keyed by
# the store's rules handle), and the caller raises the first. Two failing batches
# of one store at once may each raise the other's exception (both of its rules).
_batch_boxes = {}
_batch_boxes_lock = threading.Lock()


def _keep_for_batches(ctx, error):
    key = int(ffi.cast("uintptr_t", ctx))
    with _batch_boxes_lock:
        for box in _batch_boxes.get(key, ()):
            box.setdefault("error", error)


class _RuleErrors:
    """A batch's box for its rules' exceptions, open for the `with` block."""

    def __init__(self, handle):
        self.key = None if handle is None else int(ffi.cast("uintptr_t", handle))
        self.box = {}

    def __enter__(self):
        if self.key is not None:
            with _batch_boxes_lock:
                _batch_boxes.setdefault(self.key, []).append(self.box)
        return self

    def __exit__(self, *exc):
        if self.key is not None:
            with _batch_boxes_lock:
                boxes = _batch_boxes[self.key]
                boxes.remove(self.box)
                if not boxes:
                    del _batch_boxes[self.key]
        return False

    def fail(self, status):
        """_fail for the batch: the rule's own exception, whichever thread ran it."""
        if status == _CALLBACK and getattr(_callback_error, "error", None) is None \
                and "error" in self.box:
            _callback_error.error = None
            raise self.box["error"]
        _fail(status)


def _dbl(a):
    return ffi.from_buffer("double[]", a)


def _i32(a):
    return ffi.from_buffer("int32_t[]", a)


def _waiting(fn, h, *args):
    """fn(h, *args), called again while C answers PYAD_EBUSY: a record call waits
    for running sweeps to end, a sweep for a running record call (each is short,
    and C refuses it before touching anything)."""
    s = fn(h, *args)
    if s != _BUSY:
        return s
    deadline, delay = time.monotonic() + _WAIT_S, 1e-5
    while s == _BUSY and time.monotonic() < deadline:
        time.sleep(delay)
        delay = min(2 * delay, 1e-3)
        s = fn(h, *args)
    return s


def _sizes_match(a, n, *more):
    """The tape's sizes, read while it is held, against the arrays the caller
    packed from sizes read earlier: another thread may have recorded in between."""
    if a.size != n or (more and more[0] != more[1]):
        raise TapeBusyError("the tape changed size while this call was being prepared "
                            "(another thread recorded on it): record each tape in one "
                            "thread at a time, then replay")


# Whether each op code's b column holds a constant (rows buffered by push_c).
# ---- spare tapes ----
# A tape that is let go (closed and collected) keeps its allocations for the
# next store when it is small: recording into memory that is already mapped
# skips the growth copies and the page faults that dominate recording a
# numpy-sized function (pyad.grad records and drops one tape per call; a
# product with a constant 1000x100 matrix otherwise faults in a fresh 800 KB
# of constants every time). Bounded: at most _SPARE_COUNT tapes of at most
# _SPARE_BYTES each are kept; anything larger is freed at once.
_SPARE_COUNT = 2
_SPARE_BYTES = 8 << 20
_spare = []
# Reentrant: _let_go runs as a garbage-collection finalizer, which may fire in
# the thread that holds the lock (an allocation inside _Work.take or _new_tape)
# and would wait for it forever. The lists it guards are only appended to and
# popped from, so a nested call finds them consistent.
_spare_lock = threading.RLock()


def _new_tape():
    """A C tape to record in: a spare one if there is one (empty), else a new one."""
    with _spare_lock:
        h = _spare.pop() if _spare else None
    if h is None:
        out = ffi.new("pyad_tape **")
        status = lib.pyad_tape_new(out)
        if status:
            _fail(status)
        h = out[0]
    return ffi.gc(h, _let_go)


def _let_go(h):
    """The last reference to a C tape went (ffi.gc): keep it as a spare, or free it."""
    try:
        keep = 0 <= lib.pyad_nbytes(h) <= _SPARE_BYTES and lib.pyad_tape_reset(h) == 0
        with _spare_lock:
            if keep and len(_spare) < _SPARE_COUNT:
                _spare.append(h)
                return
        lib.pyad_tape_free(h)
    except Exception:  # interpreter shutdown: module globals may already be gone
        pass


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
    """Scratch arrays of one sweep, with their cffi pointers made once: values,
    tangents, adjoints, adjoint tangents, and a spare for a result the caller
    does not keep (sized by slots too, which bound the inputs; its untouched
    pages cost no memory)."""

    # Spare work arrays, as spare tapes (above): a store that is let go hands
    # its work arrays to the next store. pyad.grad records, sweeps and drops a
    # store per call, and fresh arrays of a numpy-sized tape cost more in page
    # faults (the reverse sweep zeroes an adjoint per slot) than the sweep.
    SPARE_COUNT = 2
    SPARE_SLOTS = 1 << 20
    _spare = []

    @classmethod
    def take(cls, n_slots):
        """Work arrays for n_slots: a spare set big enough, else a new one."""
        with _spare_lock:
            for i, work in enumerate(cls._spare):
                if work.n_slots >= n_slots:
                    return cls._spare.pop(i)
        return cls(n_slots)

    def let_go(self):
        with _spare_lock:
            if self.n_slots <= self.SPARE_SLOTS and len(self._spare) < self.SPARE_COUNT:
                self._spare.append(self)

    def __init__(self, n_slots):
        self.n_slots = max(n_slots, 1)
        self.arrays = [np.empty(self.n_slots) for _ in range(5)]
        self.ptrs = [_dbl(a) for a in self.arrays]
        self.y = ffi.new("double[1]")
        self.bad = ffi.new("int64_t[1]")


class _BatchScratch(threading.local):
    """Each thread's work arrays of the batched sweeps (values, tangents, adjoints,
    adjoint tangents), kept from one chunk to the next: a chunk's arrays are about
    1 MB (batch.chunk_size), and fresh ones for every chunk cost more in page
    faults than the sweep itself. Only what a sweep returns is allocated anew;
    arrays above KEEP_BYTES are never kept, so a thread holds at most 4 of them."""

    KEEP_BYTES = 2 << 20

    def __init__(self):
        self.arrays = {}

    def take(self, name, n):
        if 8 * n > self.KEEP_BYTES:
            return np.empty(n)
        a = self.arrays.get(name)
        if a is None or a.size < n:
            a = self.arrays[name] = np.empty(n)
        return a[:n]


_SCRATCH = _BatchScratch()

def _batch_task(pool, ticket):
    """An executor task of a batch: joins it, if it is still open, and takes chunks."""
    s = lib.pyad_batch_join(pool, ticket)
    _callback_error.error = None  # a rule's exception reaches the caller by its box
    return s


def _batch_on_executor(pool, h, kind, args, chunk, n_workers, executor):
    """(status, n_bad) of a batch run by up to n_workers participants taking whole
    chunks from the shared counter: the calling thread (worker 0), which would
    otherwise only wait, and n_workers - 1 tasks of executor, which join it by
    ticket (csrc/batch_threads.c). The caller starts at once, with no hand-off:
    a profile of P6 at 1e5 points showed a batch of tasks alone losing most of
    a second thread's gain to the submit, the wake of the first task and the
    wait for the last. Once the caller finds no chunk left it waits, in C, only
    for the tasks that joined to leave the chunk loop, not for their futures
    (set after the task's thread takes the GIL back); those that have not
    started are cancelled, and one that starts too late returns at once. One
    that cannot be submitted is simply not there (the others take its chunks)."""
    nb, *arrays = args
    s = lib.pyad_batch_begin(pool, h, kind, nb, chunk, n_workers, *arrays)
    if s:
        return s, 0
    n_tasks = n_workers - 1
    ticket = ffi.new("uint64_t[1]")
    lib.pyad_batch_hold(pool, n_tasks, ticket)
    futures = []
    unrun = 0  # tasks known never to call pyad_batch_join
    try:
        for _ in range(n_tasks):
            try:
                futures.append(executor.submit(_batch_task, pool, ticket[0]))
            except RuntimeError:  # shut down: the caller and the other tasks take its chunks
                unrun = n_tasks - len(futures)
                break
        lib.pyad_batch_work(pool, 0)
    finally:
        # a task whose submit raised anything else may yet run: its hold is kept
        unrun += sum(f.cancel() for f in futures)
        n_bad = ffi.new("int64_t[1]")
        s = lib.pyad_batch_finish(pool, unrun, n_bad)
    return s, n_bad[0]


_BATCH_KIND = {Sweep.FORWARD_BATCH: lib.PYAD_BATCH_VALUES, Sweep.JVP_BATCH: lib.PYAD_BATCH_JVP,
               Sweep.VJP_BATCH: lib.PYAD_BATCH_VJP, Sweep.HVP_BATCH: lib.PYAD_BATCH_HVP}


# The one cotangent row of a scalar output's gradient and HVP batches, its
# pointer made once: every point shares it (u_rows = 1).
_ONE_COTANGENT = (Sweep.VJP_BATCH, Sweep.HVP_BATCH)
_ONE_ROW = np.ones(1)
_ONE = _dbl(_ONE_ROW)


class CStore(RowBuffer):
    """One C tape. Scalar ops wait in _speedups.c's row buffer (push1/push2/push_c,
    or the operators' C fast path) and are handed to C in one call when anything
    else touches the tape: a cffi call per op would cost more than the op itself.

    Threads: every recording call holds the owner rule (row_buffer.recording);
    every sweep reads the sizes it allocates for and runs its C calls between
    pyad_begin_sweep and pyad_end_sweep, so the tape cannot grow under it. A
    recording call that meets running sweeps waits for them, and a sweep that
    meets a running record call waits for it (both are refused by C meanwhile)."""

    backend = "c"

    def __init__(self):
        self._h = _new_tape()
        self._work = None
        self._work_lock = threading.Lock()
        self._pools = []  # batch pools no batch is using (_take_pool)
        self._pools_lock = threading.Lock()
        self._next = 0  # rows are buffered in RowStore (see RowBuffer)
        self._owner = get_ident()  # the thread recording scalar ops (see scalar.claim)
        self.custom_rows = []  # the pyad.custom calls recorded, by their rule number
        self._custom_handle = None

    # ---- buffered scalar recording (push1 / push2 / push_c: RowBuffer) ----

    def _hand_over(self):
        """Hand the buffered rows to C (the owner thread, inside _enter)."""
        n = self._pending
        if n != self._next - lib.pyad_n_slots(self._h):
            self.close()
            raise TapeBusyError(INTERLEAVED)
        op_bytes, a_bytes, b_bytes = self._take()
        ops_ = np.frombuffer(op_bytes, dtype=np.uint8)
        b, consts = split_constants(ops_, np.frombuffer(b_bytes, dtype=np.float64))
        # Values already handed out name the buffered slots: if the rows cannot be
        # recorded, no later op may take those slots, so the tape is closed.
        s = _waiting(lib.pyad_rec_rows, self._h, ffi.from_buffer("uint8_t[]", ops_),
                     ffi.from_buffer("int32_t[]", a_bytes), _i32(b), ops_.size,
                     _dbl(consts), consts.size)
        if s < 0:
            self.close()
            _fail(s, "recording buffered operations (the tape is now closed)")

    def _rec(self, fn, *args):
        """A direct record call (inside `recording`): its first slot."""
        h = self._h
        s = fn(h, *args)
        if s < 0:
            if s == _BUSY:
                s = _waiting(fn, h, *args)
            if s < 0:
                _fail(s)
        self._next = lib.pyad_n_slots(h)
        return s

    # ---- lifetime and size ----

    def close(self):
        """Later calls get TapeClosedError. The C tape is freed (by ffi.gc) when the
        last reference to its handle goes: at once, or when a sweep that another
        thread is running returns (a call holds the handle for its duration)."""
        self._h = ffi.NULL
        # Work arrays no sweep is using go to the next store (_Work.take).
        if self._work is not None and self._work_lock.acquire(False):
            try:
                work, self._work = self._work, None
                work.let_go()
            finally:
                self._work_lock.release()
        self._work = None
        self._free_pools()
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
    def n_slots(self):
        """Slots: a row defines one (scalar rows) or a block of them."""
        return self._count(lib.pyad_n_slots)

    @property
    def n_inputs(self):
        return self._count(lib.pyad_n_inputs)

    @property
    def n_outputs(self):
        return self._count(lib.pyad_n_outputs)

    @property
    def nbytes(self):
        return self._count(lib.pyad_nbytes)

    @recording
    def shrink(self):
        status = _waiting(lib.pyad_shrink, self._h)
        if status:
            _fail(status)

    @recording
    def set_max_ops(self, n):
        status = lib.pyad_set_max_ops(self._h, n)
        if status:
            _fail(status)

    @recording
    def set_max_bytes(self, n):
        status = lib.pyad_set_max_bytes(self._h, n)
        if status:
            _fail(status)

    # ---- direct recording ----

    @recording
    def input(self, value):
        return self._rec(lib.pyad_rec_input, value)

    @recording
    def const(self, value):
        return self._rec(lib.pyad_rec_const, value)

    @recording
    def rec1(self, op, a):
        return self._rec(lib.pyad_rec1, op, a)

    @recording
    def rec2(self, op, a, b):
        return self._rec(lib.pyad_rec2, op, a, b)

    @recording
    def rec_c(self, op, a, c):
        return self._rec(lib.pyad_rec_c, op, a, c)

    @recording
    def select(self, cond, a, b):
        return self._rec(lib.pyad_rec_select, cond, a, b)

    @recording
    def guard(self, cond, expected):
        return self._rec(lib.pyad_rec_guard, cond, 1 if expected else 0)

    def value(self, slot):
        return float(self.values(np.array([slot], dtype=np.int32))[0])

    # ---- recording many ops (arguments: contiguous int32 / float64 arrays) ----

    @recording
    def input_n(self, values):
        return self._rec(lib.pyad_rec_input_n, _dbl(values), values.size)

    @recording
    def rec1_n(self, op, a):
        return self._rec(lib.pyad_rec1_n, op, _i32(a), a.size)

    @recording
    def rec2_n(self, op, a, b):
        return self._rec(lib.pyad_rec2_n, op, _i32(a), _i32(b), a.size)

    @recording
    def rec_c_n(self, op, a, c):
        """c holds one constant per element of a, or one for all."""
        return self._rec(lib.pyad_rec_c_n, op, _i32(a), _dbl(c), c.size, a.size)

    @recording
    def const_n(self, values):
        return self._rec(lib.pyad_rec_const_n, _dbl(values), values.size)

    @recording
    def select_n(self, cond, a, b):
        return self._rec(lib.pyad_rec_select_n, _i32(cond), _i32(a), _i32(b), a.size)

    @recording
    def rec_view(self, op, shape, operands, c=None):
        """prod(shape) results of op in one row (pyad_rec_view_n): each operand a
        view (first slot, strides in slots over shape) or a flat int32 index
        array; c the constants of a with-constant op (one per result or one)."""
        ndim = len(shape)
        views, idx = [], [ffi.NULL, ffi.NULL, ffi.NULL]
        for j, x in enumerate(operands):
            if type(x) is tuple:
                views.append(x[0])
                views.extend(x[1])
            else:
                idx[j] = _i32(x)
                views.extend([0] * (ndim + 1))
        consts, n_c = (ffi.NULL, 0) if c is None else (_dbl(c), c.size)
        return self._rec(lib.pyad_rec_view_n, op, ndim, list(shape), views, idx[0], idx[1],
                         idx[2], consts, n_c)

    @recording
    def reduce_view(self, op, first, m, k, sm, sk):
        """One reduce row over the m x k slots first + sm * i + sk * j; its first slot."""
        return self._rec(lib.pyad_rec_reduce_view, op, first, m, k, sm, sk)

    @recording
    def reduce(self, op, x):
        """Reduce each row of the (m, k) slot matrix x with a binary op: one reduce_*
        row, out = its consecutive slots (k = 1: x's own slots, nothing recorded)."""
        m, k = x.shape
        out = np.empty(m, dtype=np.int32)
        self._rec(lib.pyad_rec_reduce, op, _i32(x), m, k, _i32(out))
        return out

    @recording
    def gather(self, idx):
        """One gather row of the slots idx (n >= 1): its first slot."""
        idx = np.ascontiguousarray(idx, dtype=np.int32).ravel()
        return self._rec(lib.pyad_rec_gather, _i32(idx), idx.size)

    @recording
    def scan(self, op, x):
        """Running sums (add) or products (mul) along each row of the (m, k) slots x:
        one cumsum / cumprod row of m * k slots; its first slot."""
        m, k = x.shape
        return self._rec(lib.pyad_rec_scan, op, _i32(x), m, k)

    @recording
    def matmul_c(self, x, w):
        """Slots of x (m, k) @ w (k, p) for constant w."""
        (m, k), p = x.shape, w.shape[1]
        out = np.empty((m, p), dtype=np.int32)
        self._rec(lib.pyad_rec_matmul_c, _i32(x), m, k, _dbl(w), p, _i32(out))
        return out

    @recording
    def lu(self, op, a, b, n, m):
        """One LU-family row (pyad.h's pyad_rec_lu): its first slot."""
        return self._rec(lib.pyad_rec_lu, op, a, b, n, m)

    @recording
    def product(self, a, b, m, k, n, flags, w=None):
        """One product row z (m x n) = A @ B (pyad.h's pyad_rec_product): its first slot."""
        return self._rec(lib.pyad_rec_product, a, b, m, k, n, flags,
                         ffi.NULL if w is None else _dbl(w))

    @recording
    def custom(self, a, row, values):
        """One custom row (pyad.custom): row's rules applied to the row.n_in slots
        from a, its row.n_out results (values, computed by the caller) the new
        slots. The first custom row points the tape's callback at this store's rows."""
        rows = self.custom_rows
        if self._custom_handle is None:
            handle = ffi.new_handle(rows)
            s = _waiting(lib.pyad_set_custom_callback, self._h, lib.pyad_custom_callback, handle)
            if s:
                _fail(s)
            self._custom_handle = handle  # kept as long as the store: sweeps hold the store
        row.tape_rows = rows
        rows.append(row)
        return self._rec(lib.pyad_rec_custom, a, row.n_in, row.n_out, len(rows) - 1,
                         _dbl(values))

    def linalg_sym(self, name, a, b, n, m, count, flags):
        """One cholesky / solve_triangular row (pyad.h): its first slot;
        LinAlgError (nothing recorded) where numpy's / scipy's would raise."""
        if name == "cholesky":
            return self._rec(lib.pyad_rec_cholesky, a, n, count)
        if name == "eigh":
            return self._rec(lib.pyad_rec_eigh, a, n, count, flags)
        return self._rec(lib.pyad_rec_solve_triangular, a, b, n, m, count, flags)

    @recording
    def output_n(self, slots):
        s = _waiting(lib.pyad_rec_output_n, self._h, _i32(slots), slots.size)
        if s < 0:
            _fail(s)

    # ---- reading (held like a sweep: the tape cannot grow meanwhile) ----

    def _hold(self):
        """(handle, n_slots, n_inputs, n_outputs), the tape held for sweeping until
        lib.pyad_end_sweep(handle): the sizes stay true while it is held. Work
        arrays are sized by slots (a block row defines several)."""
        if self._pending:
            self._sync()
        h = self._h
        sizes = ffi.new("int64_t[3]")
        s = _waiting(lib.pyad_begin_sweep, h, sizes, sizes + 1, sizes + 2)
        if s:
            _fail(s)
        return h, int(sizes[0]), int(sizes[1]), int(sizes[2])

    def values(self, slots):
        h, _, _, _ = self._hold()
        try:
            out = np.empty(slots.size)
            s = lib.pyad_values(h, _i32(slots), slots.size, _dbl(out))
        finally:
            lib.pyad_end_sweep(h)
        return out if s == 0 else _fail(s)

    def op_at(self, k):
        h, _, _, _ = self._hold()
        try:
            s = lib.pyad_op_at(h, k)
        finally:
            lib.pyad_end_sweep(h)
        return s if s >= 0 else _fail(s)

    def input_slots(self):
        h, _, n_in, _ = self._hold()
        try:
            out = np.empty(n_in, dtype=np.int32)
            s = lib.pyad_input_slots(h, _i32(out))
        finally:
            lib.pyad_end_sweep(h)
        return out if s == 0 else _fail(s)

    def output_slots(self):
        h, _, _, n_out = self._hold()
        try:
            out = np.empty(n_out, dtype=np.int32)
            s = lib.pyad_output_slots(h, _i32(out))
        finally:
            lib.pyad_end_sweep(h)
        return out if s == 0 else _fail(s)

    def _recorded_outputs(self, h, n_out):
        """Output values at the recorded point, read under the caller's hold."""
        slots = np.empty(n_out, dtype=np.int32)
        y = np.empty(n_out)
        s = lib.pyad_output_slots(h, _i32(slots))
        if s == 0:
            s = lib.pyad_values(h, _i32(slots), n_out, _dbl(y))
        if s:
            _fail(s)
        return y

    # ---- sweeps ----

    def _take_work(self, n_slots):
        if self._work_lock.acquire(blocking=False):
            work = self._work
            if work is None or work.n_slots < n_slots:
                work = self._work = _Work.take(n_slots)
            return work, True
        return _Work(n_slots), False

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
        The lowest-latency replay: one C call, which checks the work arrays against
        the tape it holds; anything unusual goes the general way (_gradient_held)."""
        return self._gradient_fast(x, n_inputs)

    def recorded_gradient(self, n_inputs):
        """(value, gradient) of a one-output tape at its recorded point: one C call
        (the reverse sweep alone), for pyad.grad, which records, sweeps once and
        drops a tape per call."""
        y = ffi.new("double[1]")
        xbar = self._gradient_fast(None, n_inputs, y)
        if xbar is None:  # anything unusual (e.g. a LinAlgError to name) the general way
            y, xbar = self.vjp(None, _ONE_ROW)
        return float(y[0]), xbar

    def _gradient_fast(self, x, n, y=None):
        if self._pending:
            self._sync()
        lock = self._work_lock
        owned = lock.acquire(False)
        work = self._work if owned else None  # read under the lock: close() recycles it
        if work is None:
            work = _Work.take(self._next) if owned else _Work(self._next)
            if owned:
                self._work = work
        out = np.empty(n)
        try:
            s = lib.pyad_gradient_sized(self._h, work.n_slots, n,
                                        ffi.NULL if x is None else _dbl(x), work.ptrs[0],
                                        work.ptrs[1], work.y if y is None else y, _dbl(out),
                                        work.bad)
            bad = int(work.bad[0]) if s else -1  # read under the lock: others reuse work
        finally:
            if owned:
                lock.release()
        if s == 0:
            return out
        if s == _BRANCH:
            raise BranchError(bad)
        if s == _CALLBACK:
            _fail(s)
        return self._gradient_held(x) if x is not None else None

    def _gradient_held(self, x):
        h, n_slots, n_in, n_out = self._hold()
        try:
            _sizes_match(x, n_in, n_out, 1)
            out = np.empty(n_in)
            work, owned = self._take_work(n_slots)
            try:
                s = lib.pyad_gradient(h, _dbl(x), work.ptrs[0], work.ptrs[1], work.y,
                                      _dbl(out), work.bad)
                bad = int(work.bad[0])
            finally:
                self._give_work(owned)
        finally:
            lib.pyad_end_sweep(h)
        if s == 0:
            return out
        if s == _BRANCH:
            raise BranchError(bad)
        _fail(s)

    def forward(self, x):
        """Output values at inputs x."""
        h, n_slots, n_in, n_out = self._hold()
        try:
            _sizes_match(x, n_in)
            y = np.empty(n_out)
            bad = ffi.new("int64_t[1]")
            work, owned = self._take_work(n_slots)
            try:
                s = lib.pyad_forward(h, _dbl(x), work.ptrs[0], _dbl(y), bad)
            finally:
                self._give_work(owned)
        finally:
            lib.pyad_end_sweep(h)
        self._check(s, bad)
        return y

    def jvp(self, x, xd):
        """(outputs, J xd) at x."""
        h, n_slots, n_in, n_out = self._hold()
        try:
            _sizes_match(x, n_in)
            _sizes_match(xd, n_in)
            y, yd = np.empty(n_out), np.empty(n_out)
            bad = ffi.new("int64_t[1]")
            work, owned = self._take_work(n_slots)
            try:
                s = lib.pyad_forward_tangent(h, _dbl(x), _dbl(xd), work.ptrs[0],
                                             work.ptrs[1], _dbl(y), _dbl(yd), bad)
            finally:
                self._give_work(owned)
        finally:
            lib.pyad_end_sweep(h)
        self._check(s, bad)
        return y, yd

    def vjp(self, x, u):
        """(outputs, u^T J) at x; x None means at the recorded point."""
        h, n_slots, n_in, n_out = self._hold()
        try:
            _sizes_match(u, n_out)
            xbar = np.empty(n_in)
            bad = ffi.new("int64_t[1]")
            work, owned = self._take_work(n_slots)
            try:
                if x is None:
                    s = 0
                    y = self._recorded_outputs(h, n_out)
                    v = ffi.NULL
                else:
                    _sizes_match(x, n_in)
                    y = np.empty(n_out)
                    v = work.ptrs[0]
                    s = lib.pyad_forward(h, _dbl(x), v, _dbl(y), bad)
                if s == 0:  # the adjoints are numpy's memory: their pages may go back
                    s = lib.pyad_reverse_owned(h, v, _dbl(u), work.ptrs[1], _dbl(xbar))
            finally:
                self._give_work(owned)
        finally:
            lib.pyad_end_sweep(h)
        self._check(s, bad)
        return y, xbar

    def hvp(self, x, xd, u, keep_gradient=True):
        """(outputs, u^T J, d(u^T J)/dt along xd) at x: for scalar f, H xd. With
        keep_gradient=False, only H xd is wanted: u^T J is left in a work array
        (valid until this tape's next sweep: a fresh array the caller drops costs
        page faults) and the outputs are None (values only they need may go
        uncomputed)."""
        h, n_slots, n_in, n_out = self._hold()
        try:
            _sizes_match(x, n_in)
            _sizes_match(xd, n_in)
            _sizes_match(u, n_out)
            y, yd = (np.empty(n_out), np.empty(n_out)) if keep_gradient else (None, None)
            xbard = np.empty(n_in)
            bad = ffi.new("int64_t[1]")
            work, owned = self._take_work(n_slots)
            xbar = np.empty(n_in) if keep_gradient else work.arrays[4][:n_in]
            try:
                v, vd, adj, adjd = work.ptrs[:4]
                s = lib.pyad_hvp(h, _dbl(x), _dbl(xd), _dbl(u), v, vd, adj, adjd,
                                 _dbl(y) if keep_gradient else ffi.NULL,
                                 _dbl(yd) if keep_gradient else ffi.NULL, _dbl(xbar),
                                 _dbl(xbard), bad)
            finally:
                self._give_work(owned)
        finally:
            lib.pyad_end_sweep(h)
        self._check(s, bad)
        return y, xbar, xbard

    # ---- vector sweeps (several directions at one point) ----

    def jvp_vec(self, x, xd):
        """(outputs, J xd_j for each row j of xd) at x."""
        h, n_slots, n_in, n_out = self._hold()
        try:
            p = xd.shape[0]
            _sizes_match(x, n_in)
            _sizes_match(xd, p * n_in)
            v, vd = np.empty(n_slots), np.empty(n_slots * p)
            y, yd = np.empty(n_out), np.empty((p, n_out))
            bad = ffi.new("int64_t[1]")
            s = lib.pyad_tangent_vector(h, p, _dbl(x), _dbl(xd), _dbl(v), _dbl(vd), _dbl(y),
                                        _dbl(yd), bad)
        finally:
            lib.pyad_end_sweep(h)
        self._check(s, bad)
        return y, yd

    def vjp_vec(self, x, u):
        """(outputs, u_j^T J for each row j of u) at x (None: the recorded point)."""
        h, n_slots, n_in, n_out = self._hold()
        try:
            q = u.shape[0]
            _sizes_match(u, q * n_out)
            xbar = np.empty((q, n_in))
            if x is None:
                y, v = self._recorded_outputs(h, n_out), ffi.NULL
            else:
                _sizes_match(x, n_in)
                values = np.empty(n_slots)
                y = np.empty(n_out)
                bad = ffi.new("int64_t[1]")
                self._check(lib.pyad_forward(h, _dbl(x), _dbl(values), _dbl(y), bad), bad)
                v = _dbl(values)
            s = lib.pyad_reverse_vector(h, q, v, _dbl(u), _dbl(np.empty(n_slots * q)),
                                        _dbl(xbar))
        finally:
            lib.pyad_end_sweep(h)
        if s:
            _fail(s)
        return y, xbar

    def hvp_vec(self, x, xd, u):
        """(outputs, u^T J, and d(u^T J) along each row of xd) at x."""
        h, n_slots, n_in, n_out = self._hold()
        try:
            p = xd.shape[0]
            _sizes_match(x, n_in)
            _sizes_match(xd, p * n_in)
            _sizes_match(u, n_out)
            v, vd = np.empty(n_slots), np.empty(n_slots * p)
            y, yd = np.empty(n_out), np.empty((p, n_out))
            bad = ffi.new("int64_t[1]")
            s = lib.pyad_tangent_vector(h, p, _dbl(x), _dbl(xd), _dbl(v), _dbl(vd), _dbl(y),
                                        _dbl(yd), bad)
            self._check(s, bad)
            xbar, xbard = np.empty(n_in), np.empty((p, n_in))
            s = lib.pyad_second_vector(h, p, _dbl(v), _dbl(vd), _dbl(u), _dbl(np.empty(n_slots)),
                                       _dbl(np.empty(n_slots * p)), _dbl(xbar), _dbl(xbard))
        finally:
            lib.pyad_end_sweep(h)
        if s:
            _fail(s)
        return y, xbar, xbard

    # ---- batched sweeps (one tape at many points; points in rows) ----

    def _batch_values(self, h, sizes, x, xd=None):
        n_slots, n_in, n_out = sizes
        nb = x.shape[0]
        _sizes_match(x, nb * n_in)
        v = _SCRATCH.take("v", n_slots * nb)
        y = np.empty((nb, n_out))
        bad = np.empty(nb, dtype=np.int64)
        n_bad = ffi.new("int64_t[1]")
        if xd is None:
            s = lib.pyad_forward_batch(h, nb, _dbl(x), _dbl(v), _dbl(y),
                                       ffi.from_buffer("int64_t[]", bad), n_bad)
            vd = yd = None
        else:
            _sizes_match(xd, nb * n_in)
            vd, yd = _SCRATCH.take("vd", n_slots * nb), np.empty((nb, n_out))
            s = lib.pyad_tangent_batch(h, nb, _dbl(x), _dbl(xd), _dbl(v), _dbl(vd),
                                       _dbl(y), _dbl(yd), ffi.from_buffer("int64_t[]", bad),
                                       n_bad)
        if s:
            _fail(s)
        return v, vd, y, yd, bad

    def _batch(self, run, *args):
        h, n_slots, n_in, n_out = self._hold()
        try:
            return run(h, (n_slots, n_in, n_out), *args)
        finally:
            lib.pyad_end_sweep(h)

    def forward_batch(self, x):
        def run(h, sizes):
            _, _, y, _, bad = self._batch_values(h, sizes, x)
            return y, bad
        return self._batch(run)

    def jvp_batch(self, x, xd):
        def run(h, sizes):
            _, _, y, yd, bad = self._batch_values(h, sizes, x, xd)
            return y, yd, bad
        return self._batch(run)

    def vjp_batch(self, x, u):
        def run(h, sizes):
            nb = x.shape[0]
            _sizes_match(u, nb * sizes[2])
            v, _, y, _, bad = self._batch_values(h, sizes, x)
            xbar = np.empty((nb, sizes[1]))
            s = lib.pyad_reverse_batch(h, nb, _dbl(v), _dbl(u),
                                       _dbl(_SCRATCH.take("adj", v.size)), _dbl(xbar))
            if s:
                _fail(s)
            return y, xbar, bad
        return self._batch(run)

    def hvp_batch(self, x, xd, u):
        def run(h, sizes):
            nb = x.shape[0]
            _sizes_match(u, nb * sizes[2])
            v, vd, y, _, bad = self._batch_values(h, sizes, x, xd)
            xbar, xbard = np.empty((nb, sizes[1])), np.empty((nb, sizes[1]))
            s = lib.pyad_second_batch(h, nb, _dbl(v), _dbl(vd), _dbl(u),
                                      _dbl(_SCRATCH.take("adj", v.size)),
                                      _dbl(_SCRATCH.take("adjd", v.size)),
                                      _dbl(xbar), _dbl(xbard))
            if s:
                _fail(s)
            return y, xbar, xbard, bad
        return self._batch(run)

    def batch_into(self, method, arrays, out, chunk, threads, executor=None):
        """The batched sweep `method` (a Sweep) at every row of arrays (the points,
        then its directions / cotangents), split into chunks of `chunk` points,
        without the GIL: in one C call, on this thread and up to threads - 1 of
        the store's pool (executor None), or on this thread and threads - 1 tasks
        of executor (a ThreadPoolExecutor), each running the same chunk loop.
        Writes the results and `bad` into out (batch.result_arrays); returns how
        many points have a failed guard. A cotangent array whose rows are one
        broadcast row (stride 0) is handed over as that one row."""
        h, n_slots, n_in, n_out = self._hold()
        try:
            args = self._batch_args(method, arrays, out, n_in, n_out)
            pool = self._take_pool()
            try:
                with _RuleErrors(self._custom_handle) as errors:
                    if executor is None:
                        n_bad = ffi.new("int64_t[1]")
                        s = lib.pyad_batch_sweep(pool, h, _BATCH_KIND[method], args[0], chunk,
                                                 threads, *args[1:], n_bad)
                        n_bad = n_bad[0]
                    else:
                        s, n_bad = _batch_on_executor(pool, h, _BATCH_KIND[method], args,
                                                      chunk, threads, executor)
                    if s:
                        errors.fail(s)
            finally:
                self._give_pool(pool)
        finally:
            lib.pyad_end_sweep(h)
        return int(n_bad)

    def batch_common(self, method, x, xd, threads, plan, executor=None):
        """The common batch (batch.common_batch) in one C call, with no checks the
        caller has made: points x and directions xd (None, or rows like x) are
        C-contiguous float64 rows; VJP and HVP take the one shared cotangent 1.0;
        executor: None (the store's pool threads) or a ThreadPoolExecutor whose
        tasks join the batch beside this thread (_batch_on_executor).
        plan(method, nb, n_slots, n_inputs, n_outputs, threads) gives (chunk,
        threads, the result arrays, a context for a split batch), read from the
        sizes held here. Returns (the result arrays, `bad` last, n_bad), or None
        before anything ran where the general path (batch_into) must take it: a
        closed or busy tape, a Python custom rule (its exceptions need the
        batch's box), sizes that moved since the caller read them."""
        if self._pending:
            self._sync()
        h = self._h
        sizes = ffi.new("int64_t[3]")
        if self._custom_handle is not None or \
                _waiting(lib.pyad_begin_sweep, h, sizes, sizes + 1, sizes + 2):
            return None
        try:
            n_in, n_out, nb = sizes[1], sizes[2], x.shape[0]
            if x.size != nb * n_in or (method in _ONE_COTANGENT and n_out != 1):
                return None
            chunk, k, out, split = plan(method, nb, sizes[0], n_in, n_out, threads)
            yd = xbar = xbard = ffi.NULL
            if method is Sweep.JVP_BATCH:
                yd = _dbl(out[1])
            elif method is not Sweep.FORWARD_BATCH:
                xbar = _dbl(out[1])
                if method is Sweep.HVP_BATCH:
                    xbard = _dbl(out[2])
            u, u_rows = (_ONE, 1) if method in _ONE_COTANGENT else (ffi.NULL, 0)
            args = (nb, _dbl(x), ffi.NULL if xd is None else _dbl(xd), u, u_rows,
                    _dbl(out[0]), yd, xbar, xbard, ffi.from_buffer("int64_t[]", out[-1]))
            pool = self._take_pool()
            try:
                if split is None:
                    n_bad = ffi.new("int64_t[1]")
                    s = lib.pyad_batch_sweep(pool, h, _BATCH_KIND[method], nb, chunk, k,
                                             *args[1:], n_bad)
                    n_bad = n_bad[0]
                elif executor is None:
                    n_bad = ffi.new("int64_t[1]")
                    with split:
                        s = lib.pyad_batch_sweep(pool, h, _BATCH_KIND[method], nb, chunk, k,
                                                 *args[1:], n_bad)
                    n_bad = n_bad[0]
                else:
                    with split:
                        s, n_bad = _batch_on_executor(pool, h, _BATCH_KIND[method], args,
                                                      chunk, k, executor)
            finally:
                self._give_pool(pool)
        finally:
            lib.pyad_end_sweep(h)
        if s:
            _fail(s)
        return out, n_bad

    def _batch_args(self, method, arrays, out, n_in, n_out):
        """(nb, x, xd, u, u_rows, y, yd, xbar, xbard, bad) for the C batch calls,
        every array checked against the tape's sizes."""
        nb = arrays[0].shape[0]
        x = np.ascontiguousarray(arrays[0], dtype=np.float64)
        _sizes_match(x, nb * n_in)
        xd = u = ffi.NULL
        u_rows = 0
        if method in (Sweep.JVP_BATCH, Sweep.HVP_BATCH):
            d = np.ascontiguousarray(arrays[1], dtype=np.float64)
            _sizes_match(d, nb * n_in)
            xd = _dbl(d)
        if method in (Sweep.VJP_BATCH, Sweep.HVP_BATCH):
            c = arrays[-1]
            u_rows = 1 if nb > 1 and c.strides[0] == 0 else nb
            c = np.ascontiguousarray(c[:u_rows], dtype=np.float64)
            _sizes_match(c, u_rows * n_out)
            u = _dbl(c)
        for a in out[:-1]:
            if not (a.flags.c_contiguous and a.dtype == np.float64 and a.shape[0] == nb):
                raise ValueError("batch_into: result arrays must be C-contiguous "
                                 f"float64 with {nb} rows")
        _sizes_match(out[0], nb * n_out)
        extra = [ffi.NULL, ffi.NULL, ffi.NULL]  # yd, xbar, xbard
        if method is Sweep.JVP_BATCH:
            _sizes_match(out[1], nb * n_out)
            extra[0] = _dbl(out[1])
        elif method in (Sweep.VJP_BATCH, Sweep.HVP_BATCH):
            for j, a in enumerate(out[1:-1]):
                _sizes_match(a, nb * n_in)
                extra[1 + j] = _dbl(a)
        bad = out[-1]
        if not (bad.dtype == np.int64 and bad.shape == (nb,) and bad.flags.c_contiguous):
            raise ValueError(f"batch_into: bad must be {nb} contiguous int64")
        # the cdata pointers keep x, d and c alive for the call
        return (nb, _dbl(x), xd, u, u_rows, _dbl(out[0]), *extra,
                ffi.from_buffer("int64_t[]", bad))

    # ---- the batch pools (csrc/batch_threads.c): threads and work arrays kept ----

    def _take_pool(self):
        """A pool no batch is using: the store keeps those it made (a pool runs one
        batch at a time, so batches running at once on this store get one each)."""
        with self._pools_lock:
            if self._pools:
                return self._pools.pop()
        out = ffi.new("pyad_batch_pool **")
        s = lib.pyad_pool_new(out)
        if s:
            _fail(s)
        return ffi.gc(out[0], lib.pyad_pool_free)

    def _give_pool(self, pool):
        with self._pools_lock:
            if not self.closed:
                self._pools.append(pool)
                return
        ffi.release(pool)  # the store was closed during the batch: its threads end now

    def _free_pools(self):
        """Join the pools' threads and free their work arrays (close())."""
        with self._pools_lock:
            pools, self._pools = self._pools, []
        for pool in pools:
            ffi.release(pool)

    @recording
    def set_active_inputs(self, active):
        """Declare the inputs whose `active` entry is 0 parameters: the rows recorded
        so far that no other input reaches become passive (csrc/activity.c)."""
        active = np.ascontiguousarray(active, dtype=np.uint8)
        s = _waiting(lib.pyad_set_active_inputs, self._h, ffi.from_buffer("uint8_t[]", active),
                     active.size)
        if s:
            _fail(s, "marking parameters")

    @property
    def n_passive(self):
        """Rows the derivative sweeps skip (no differentiated input reaches them)."""
        return self._count(lib.pyad_n_passive)

    # ---- plain arrays (saving and loading) ----

    def export(self):
        """The tape as the plain arrays of the export layout (ARR_CONTRACT.md)."""
        h, n_slots, n_in, n_out = self._hold()
        try:
            n, n_blocks = lib.pyad_n_ops(h), lib.pyad_n_blocks(h)
            arrays = {"op": np.empty(n, np.uint8), "a": np.empty(n, np.int32),
                      "b": np.empty(n, np.int32), "c": np.empty(n, np.int32),
                      "first": np.empty(n, np.int32), "val": np.empty(n_slots),
                      "consts": np.empty(lib.pyad_n_consts(h)),
                      "pool": np.empty(lib.pyad_n_pool(h), np.int32),
                      "inputs": np.empty(n_in, np.int32),
                      "outputs": np.empty(n_out, np.int32),
                      "blocks": np.empty(n_blocks * 6, np.int32)}
            p = {k: ffi.from_buffer(v) for k, v in arrays.items()}
            i32 = {k: ffi.cast("int32_t *", p[k])
                   for k in ("a", "b", "c", "first", "pool", "inputs", "outputs", "blocks")}
            s = lib.pyad_tape_export(h, ffi.cast("uint8_t *", p["op"]), i32["a"], i32["b"],
                                     i32["c"], i32["first"], ffi.cast("double *", p["val"]),
                                     ffi.cast("double *", p["consts"]), i32["pool"],
                                     i32["inputs"], i32["outputs"], i32["blocks"])
        finally:
            lib.pyad_end_sweep(h)
        return arrays if s == 0 else _fail(s)

    @staticmethod
    def _size_or_fail(n):
        return n if n >= 0 else _fail(n)

    @classmethod
    def from_arrays(cls, a):
        """A store holding a validated copy of the arrays."""
        blocks = np.ascontiguousarray(a["blocks"], dtype=np.int32).reshape(-1)
        if blocks.size % 6:
            _fail(lib.PYAD_EFORMAT, "loading a tape (blocks is not rows of 6)")
        store = cls()
        out = ffi.new("pyad_tape **")
        s = lib.pyad_tape_import(
            out, a["op"].size, ffi.from_buffer("uint8_t[]", a["op"]),
            _i32(a["a"]), _i32(a["b"]), _i32(a["c"]), _i32(a["first"]), a["val"].size,
            _dbl(a["val"]), a["consts"].size, _dbl(a["consts"]), a["pool"].size,
            _i32(a["pool"]), a["inputs"].size, _i32(a["inputs"]), a["outputs"].size,
            _i32(a["outputs"]), blocks.size // 6, _i32(blocks))
        if s:
            _fail(s, "loading a tape")
        store._h = ffi.gc(out[0], _let_go)
        store._next = lib.pyad_n_slots(store._h)
        return store

    # ---- every slot's value, tangent or adjoint (teaching views, diagnostics) ----

    def slot_values(self, x, xd=None):
        """(values, tangents or None) of every slot at x."""
        h, n_slots, n_in, _ = self._hold()
        try:
            _sizes_match(x, n_in)
            v, vd = np.empty(n_slots), np.empty(n_slots)
            bad = ffi.new("int64_t[1]")
            if xd is None:
                s = lib.pyad_forward(h, _dbl(x), _dbl(v), ffi.NULL, bad)
                vd = None
            else:
                _sizes_match(xd, n_in)
                s = lib.pyad_forward_tangent(h, _dbl(x), _dbl(xd), _dbl(v), _dbl(vd),
                                             ffi.NULL, ffi.NULL, bad)
        finally:
            lib.pyad_end_sweep(h)
        self._check(s, bad)
        return v, vd

    def slot_adjoints(self, x, u):
        """(values, adjoints) of every slot at x for output weights u."""
        h, n_slots, n_in, n_out = self._hold()
        try:
            _sizes_match(x, n_in)
            _sizes_match(u, n_out)
            v, adj = np.empty(n_slots), np.empty(n_slots)
            bad = ffi.new("int64_t[1]")
            s = lib.pyad_forward(h, _dbl(x), _dbl(v), ffi.NULL, bad)
            if s == 0:
                s = lib.pyad_reverse(h, _dbl(v), _dbl(u), _dbl(adj), _dbl(np.empty(n_in)))
        finally:
            lib.pyad_end_sweep(h)
        self._check(s, bad)
        return v, adj
