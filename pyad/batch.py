"""Batched replay: one tape swept at many points, in chunks, optionally on
several threads (the C sweeps release the GIL) or through an executor."""
import concurrent.futures
import contextlib
import operator
import os
import sys
import threading
import time

import warnings

import numpy as np

from . import _linalg_eig, diagnostics
from .errors import BranchError, RetraceWarning
from .replay import batch_unpack, branch_message, linalg_failure, pack_batch, rerecord
from .serialize import dumps, load_store
from .store import Sweep


CACHE_SLOT_POINTS = 2**17  # slot values in one work array that stays in cache (1 MB)
CHUNKS_PER_BATCH = 64  # a thread taking chunks one at a time idles 1/64 of the batch at most
MIN_CHUNK = 512  # points: below this a chunk's sweep is mostly the per-op dispatch
MIN_THREAD_WORK = 2**17  # slot values (n_slots x points) worth starting a thread for


def chunk_size(n_slots, nb=None):
    """Points per chunk of a batched sweep: few enough that a work array (n_slots
    lanes of the chunk's points) stays in cache -- sized by slots, not rows: a
    block row defines many slots, and a chunk whose work arrays are tens of MB
    spends its time faulting in fresh pages and streaming memory. Given the
    batch's size nb, also small enough that it makes CHUNKS_PER_BATCH chunks
    (when each keeps MIN_CHUNK points), so that threads taking chunks one at a
    time finish together. It depends on the tape and nb alone, never on the
    threads: every point is swept in the same place of the same chunk however
    the batch is split, so results are the same bit for bit."""
    cache = int(min(8192, max(8, CACHE_SLOT_POINTS // max(n_slots, 1))))
    if nb is None:
        return cache
    share = -(-(-(-nb // CHUNKS_PER_BATCH)) // 8) * 8  # a multiple of 8: whole vectors
    return min(cache, max(MIN_CHUNK, share))


class Progress:
    """A progress bar: tqdm when it is installed, else one line on stderr that
    is rewritten in place ("desc: done/total") and ended by close().

    update() may be called from several threads."""

    def __init__(self, total, desc, unit="it"):
        self.total, self.desc, self.done = int(total), desc, 0
        self._lock = threading.Lock()
        self._last = 0.0
        try:
            from tqdm.auto import tqdm
        except ImportError:
            self._bar = None
            self._write()
        else:
            self._bar = tqdm(total=self.total, desc=desc, unit=unit, file=sys.stderr)

    def _write(self):
        sys.stderr.write(f"\r{self.desc}: {self.done}/{self.total}")
        sys.stderr.flush()
        self._last = time.monotonic()

    def update(self, n=1):
        with self._lock:
            self.done += n
            if self._bar is not None:
                self._bar.update(n)
            elif self.done >= self.total or time.monotonic() - self._last > 0.1:
                self._write()

    def grow(self, n):
        """More work than first counted (points that must be re-recorded)."""
        if n <= 0:
            return
        with self._lock:
            self.total += int(n)
            if self._bar is not None:
                self._bar.total = self.total
                self._bar.refresh()

    def close(self):
        with self._lock:
            if self._bar is not None:
                self._bar.close()
            else:
                if self.done < self.total:
                    self._write()
                sys.stderr.write("\n")
                sys.stderr.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def progress_bar(progress, total, desc, unit="it"):
    """A Progress for progress=True, None for progress=False."""
    return Progress(total, desc, unit) if progress else None


MAX_THREADS = 1024  # threads one C batch call may start (csrc/batch_threads.c)


def n_threads(threads):
    """threads= as an int >= 1 (numpy integers too), or None. More threads than
    the batch has use for are not an error: threads_for caps them."""
    if threads is None:
        return None
    try:
        n = None if isinstance(threads, bool) else operator.index(threads)
    except TypeError:
        n = None
    if n is None or n < 1:
        raise ValueError(f"threads must be a positive int (or None), not {threads!r}")
    return n


def usable_cores():
    """The cores this process may run on (its affinity mask, where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def threads_for(threads, nb, chunk, n_slots):
    """Threads to split a batch of nb points (chunks of `chunk`) over: the ones
    asked for, or (None) the usable cores; never more than the chunks (threads
    take whole chunks), nor than MIN_THREAD_WORK slot values each: a thread costs
    its start, so a small batch stays on the calling thread and is never slower
    than threads=1."""
    want = usable_cores() if threads is None else threads
    by_work = (nb * max(n_slots, 1)) // MIN_THREAD_WORK
    return max(1, min(want, -(-nb // chunk), by_work, MAX_THREADS))


def check_part(part, method, n_points, n_inputs, n_outputs, where):
    """Refuse a result that is not what the batched sweep `method` returns for n_points
    (float64 rows, Sweep.input_sized of them one column per input, and int64 `bad`)."""
    want = [(n_points, n_inputs if j in method.input_sized else n_outputs)
            for j in range(method.n_results)]
    if not isinstance(part, tuple) or len(part) != len(want) + 1:
        raise ValueError(f"{where} returned {type(part).__name__} {part!r:.80}; expected "
                         f"{len(want) + 1} arrays from {method.value}")
    for j, (a, shape) in enumerate(zip(part, want + [(n_points,)])):
        dtype = np.int64 if j == len(want) else np.float64
        if not isinstance(a, np.ndarray) or a.shape != shape or a.dtype != dtype:
            got = (f"shape {a.shape} dtype {a.dtype}" if isinstance(a, np.ndarray)
                   else type(a).__name__)
            raise ValueError(f"{where} returned a result of {got} for {n_points} points; "
                             f"{method.value} gives shape {shape} dtype {np.dtype(dtype)} "
                             f"(result {j})")


def sweep_chunks(store, method, arrays, chunk=None, progress=None):
    """Run the batched sweep `method` (a Sweep, or its name) of store over arrays
    (each with points in rows) chunk by chunk.

    progress: None, or a Progress advanced by the points of each chunk."""
    nb = arrays[0].shape[0]
    chunk = chunk or chunk_size(store.n_slots, nb)
    method = Sweep(method)
    parts = []
    for i in range(0, nb, chunk):
        parts.append(store.sweep(method, *(np.ascontiguousarray(a[i:i + chunk])
                                           for a in arrays)))
        if progress is not None:
            progress.grow(np.count_nonzero(parts[-1][-1] >= 0))  # re-recorded later
            progress.update(min(chunk, nb - i))
    if not parts:
        return None
    return tuple(np.concatenate([p[j] for p in parts]) for j in range(len(parts[0])))


def _split(nb, parts, unit=1):
    """At most `parts` spans covering range(nb), each (but the last) a multiple of unit."""
    units = -(-nb // unit)
    parts = max(1, min(parts, units))  # never more spans than there is work for
    bounds = [min(nb, unit * ((units * i) // parts)) for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(parts) if bounds[i + 1] > bounds[i]]


def executor_spans(nb, n_slots):
    """Spans for an executor's tasks: whole chunks of the local sweep, so that every
    point is swept in the same chunk position as locally (bit-for-bit equal
    results), a few tasks per usable core (an executor's size is not public)."""
    return _split(nb, 4 * usable_cores(), chunk_size(n_slots, nb))


def result_arrays(method, nb, n_inputs, n_outputs):
    """Empty result arrays of the batched sweep `method` for nb points, then `bad`:
    uninitialised, as the sweep writes every row (each participant the rows of its
    chunks, in their final place) and a fill here would be a pass over the whole
    batch on one thread before the split."""
    widths = _RESULT_WIDTHS.get(method._value_)
    if widths is None:
        widths = _RESULT_WIDTHS[method._value_] = tuple(
            j in method.input_sized for j in range(method.n_results))
    return tuple([np.empty((nb, n_inputs if by_input else n_outputs)) for by_input in widths]
                 + [np.empty(nb, dtype=np.int64)])


_RESULT_WIDTHS = {}  # a batched sweep's name: per result, whether it is one column per input


def progress_spans(nb, chunk, threads, bar):
    """Spans of whole chunks, each one C call: the whole batch, or with a progress
    bar about 50 steps (each of at least one chunk per thread)."""
    if bar is None:
        return [(0, nb)]
    n_chunks = -(-nb // chunk)
    step = chunk * max(threads, -(-n_chunks // 50))
    return [(lo, min(nb, lo + step)) for lo in range(0, nb, step)]


def sweep_whole(store, method, arrays, threads, bar=None, chunk=None, executor=None):
    """All points through one C call per span (store.batch_into) that splits them
    over threads (None: the usable cores) in fixed chunks, or over this thread and
    the tasks of executor (a ThreadPoolExecutor of `threads` threads); results are
    written straight into the arrays returned, which hold no per-chunk copies.
    Returns (the arrays, how many points have a failed guard).

    Everything here runs on the calling thread while the others wait, so the
    common case (no progress bar) makes no views and no second pass: a profile
    of P6 at 1e5 points (1.7 ms of sweep) put the Python around the C call at
    ~10% of a call, run with the caches cold from the sweep before."""
    nb, n_slots = arrays[0].shape[0], store.n_slots
    chunk = chunk or chunk_size(n_slots, nb)
    out = result_arrays(method, nb, store.n_inputs, store.n_outputs)
    k = threads_for(threads, nb, chunk, n_slots)
    if k == 1:
        executor = None
    if bar is None:
        if k == 1:
            return out, store.batch_into(method, arrays, out, chunk, 1)
        with _BLAS_THREADS:
            return out, store.batch_into(method, arrays, out, chunk, k, executor=executor)
    total_bad = 0
    with blas_threads_for(k):
        for lo, hi in progress_spans(nb, chunk, k, bar):
            n_bad = store.batch_into(method, tuple(a[lo:hi] for a in arrays),
                                     tuple(o[lo:hi] for o in out), chunk, k,
                                     executor=executor)
            total_bad += n_bad
            bar.grow(n_bad)  # re-recorded later
            bar.update(hi - lo)
    return out, total_bad


def sweep_local(store, method, arrays, chunk=None, threads=1):
    """A batch on this process: one C call where the store has it, else chunk by chunk."""
    if hasattr(store, "batch_into"):
        return sweep_whole(store, method, arrays, threads, chunk=chunk)[0]
    return sweep_chunks(store, method, arrays, chunk)


def in_thread_pool(executor, store):
    """Whether the executor's tasks run in this process's threads (and so may
    sweep the store itself, writing into shared result arrays): the standard
    library's ThreadPoolExecutor itself; a subclass may change what its tasks do,
    so it gets the general path, whose results are checked."""
    return type(executor) is concurrent.futures.ThreadPoolExecutor and \
        hasattr(store, "batch_into")


def executor_threads(executor):
    """How many threads a ThreadPoolExecutor runs its tasks on (its size is kept
    in a private attribute; the usable cores where it is missing)."""
    n = getattr(executor, "_max_workers", None)
    return n if isinstance(n, int) and n >= 1 else usable_cores()


def run_in_thread_pool(store, method, arrays, executor, bar):
    """The batch split over a ThreadPoolExecutor's threads (fewer for a small
    batch, as threads_for picks for threads=): the calling thread, which would
    only wait, takes chunks as one of them and the executor runs the others'
    tasks, all in the C chunk loop of one batch without the GIL, taking whole
    chunks from its shared counter; results are written into the returned arrays."""
    return sweep_whole(store, method, arrays, executor_threads(executor), bar,
                       executor=executor)


def run_remote(store, method, arrays, executor, tape_bytes, bar):
    """The batch as tasks of any executor (processes, dask): each rebuilds the tape
    from its bytes and sweeps its span of whole chunks."""
    nb = arrays[0].shape[0]
    n_slots = store.n_slots
    spans = executor_spans(nb, n_slots)
    chunk = chunk_size(n_slots, nb)
    futures = [executor.submit(remote_sweep, tape_bytes, method,
                               tuple(a[lo:hi] for a in arrays), store.backend, n_slots, chunk)
               for lo, hi in spans]
    parts = []
    for (lo, hi), f in zip(spans, futures):
        part = f.result()
        check_part(part, method, hi - lo, store.n_inputs, store.n_outputs,
                   f"the executor's task for points {lo}..{hi - 1}")
        parts.append(part)
        if bar is not None:
            bar.grow(np.count_nonzero(part[-1] >= 0))
            bar.update(hi - lo)
    return tuple(np.concatenate([p[j] for p in parts]) for j in range(len(parts[0])))


def run(store, method, arrays, threads=None, executor=None, tape_bytes=None, progress=False):
    """All points through the batched sweep `method` (a Sweep, or its name) of
    store; returns its result arrays and `bad`.

    threads: None picks the usable cores (the C backend; the Python backend keeps
    to one, as its sweeps hold the GIL), never more than the batch's chunks.
    progress=True shows the points done (tqdm if installed, else a line on stderr);
    a Progress instead is advanced and left open (the caller re-records points)."""
    return run_counted(store, method, arrays, threads, executor, tape_bytes, progress)[0]


def run_counted(store, method, arrays, threads=None, executor=None, tape_bytes=None,
                progress=False):
    """run, and how many points have a failed guard (None where it was not
    counted): a batch with none skips the search of `bad` for them."""
    nb = arrays[0].shape[0]
    if method.__class__ is not Sweep:
        method = Sweep(method)
    threads = n_threads(threads)
    own_bar = not isinstance(progress, Progress)
    bar = progress_bar(progress, nb, f"pyad {method.value}", unit="pt") if own_bar else progress
    try:
        if executor is not None and in_thread_pool(executor, store):
            return run_in_thread_pool(store, method, arrays, executor, bar)
        if executor is not None:
            if tape_bytes is None:
                raise ValueError("an executor that is not a ThreadPoolExecutor needs "
                                 "tape_bytes (the tape, saved) to send to its tasks")
            return run_remote(store, method, arrays, executor, tape_bytes, bar), None
        if hasattr(store, "batch_into"):
            return sweep_whole(store, method, arrays, threads, bar)
        if threads is not None and threads > 1 and nb > 1:
            # whole chunks, as a single thread would sweep them (the same bits)
            chunk = chunk_size(store.n_slots, nb)
            spans = _split(nb, threads, chunk)
            with concurrent.futures.ThreadPoolExecutor(len(spans)) as pool:
                parts = list(pool.map(
                    lambda span: sweep_chunks(store, method,
                                              tuple(a[span[0]:span[1]] for a in arrays),
                                              chunk, progress=bar),
                    spans))
            return tuple(np.concatenate([p[j] for p in parts])
                         for j in range(len(parts[0]))), None
        return sweep_chunks(store, method, arrays, progress=bar), None
    finally:
        if bar is not None and own_bar:
            bar.close()


def remote_sweep(tape_bytes, method, arrays, backend=None, n_slots=None, chunk=None):
    """Executor task: rebuild the tape from its bytes and sweep a slice of the batch
    in the caller's chunks (chunk, or those of n_slots, the caller's tape), as a
    local sweep would."""
    store, _, _ = load_store(tape_bytes, backend)
    try:
        chunk = chunk or chunk_size(store.n_slots if n_slots is None else n_slots)
        return sweep_local(store, Sweep(method), arrays, chunk)
    finally:
        store.close()


# ---- the BLAS of product rows, while pyad's threads split a batch ----


class _BlasThreads:
    """OpenBLAS (scipy-openblas32, which the product rows call) runs its own
    threads, which spin a while after each call. While pyad's threads split a
    batch, each product is one of many running at once: BLAS threads would only
    compete with pyad's for the same cores. So BLAS is set to one thread while
    any such batch runs (counted, as batches may overlap) and set back after.
    OpenBLAS's thread count is process-wide; nothing else in pyad changes it."""

    def __init__(self):
        self._lock = threading.Lock()
        self._users = 0
        self._saved = None
        self._lib = None

    def _blas(self):
        if self._lib is None:
            try:
                import ctypes

                import scipy_openblas32 as ob
                lib = ctypes.CDLL(os.path.join(ob.get_lib_dir(), f"lib{ob.get_library()}.so"))
                self._lib = (lib.scipy_openblas_get_num_threads,
                             lib.scipy_openblas_set_num_threads)
            except (ImportError, OSError, AttributeError):
                self._lib = False  # another BLAS: left alone
        return self._lib

    def __enter__(self):
        with self._lock:
            blas = self._blas()
            if blas and self._users == 0:
                self._saved = blas[0]()
                if self._saved != 1:
                    blas[1](1)
            self._users += 1
        return self

    def __exit__(self, *exc):
        with self._lock:
            self._users -= 1
            blas = self._blas()
            if blas and self._users == 0 and self._saved not in (None, 1):
                blas[1](self._saved)
        return False


_BLAS_THREADS = _BlasThreads()


def blas_threads_for(threads):
    """A context: BLAS on one thread while `threads` > 1 of pyad's split a batch."""
    return _BLAS_THREADS if threads > 1 else contextlib.nullcontext()


# ---- a Tape's batched replay ----


def replay(tape, method, x, extra, threads, executor, grads=(), packed=False, progress=False):
    """Sweep tape at a batch of points; points whose guards fail are re-recorded
    (pyad.trace, counted in tape.retraces) or reported with BranchError.

    method: a batched Sweep (names are turned into members once, by run and
    sweep_chunks, the entry points). extra: the directions / cotangents, one row per
    point. Results are shaped per point (grads: which of them have the inputs'
    shapes), or left as rows (packed)."""
    n_threads(threads)
    if executor is not None and not callable(getattr(executor, "submit", None)):
        raise TypeError("executor must have a submit() method, like concurrent.futures "
                        f"executors or a dask Client; got {type(executor).__name__}")
    X = x if packed else pack_batch(x, "batch points", tape._in_shapes, tape._n_points)
    if X.shape[0] == 0:
        raise ValueError("a batch needs at least one point (got an array of 0 points)")
    for e in extra:
        if e.shape[0] != X.shape[0]:
            raise ValueError(f"a batch of {X.shape[0]} points needs {X.shape[0]} rows of "
                             f"directions / cotangents, got {e.shape[0]}")
    tape_bytes = (dumps(tape) if executor is not None
                  and not in_thread_pool(executor, tape._store) else None)
    bar = progress_bar(progress, X.shape[0], f"pyad {method.value}", unit="pt")
    try:
        try:
            (*results, bad), n_bad = run_counted(tape._store, method, (X,) + tuple(extra),
                                                 threads, executor, tape_bytes,
                                                 bar if bar is not None else False)
        except np.linalg.LinAlgError as e:  # eigh at repeated eigenvalues: name the point
            raise _linalg_eig.sweep_error(tape._store, e, X,
                                          lambda b: f" (batch point {b})") from None
        if n_bad != 0:
            _fix_points(tape, method, X, extra, results, bad, bar)
    finally:
        if bar is not None:
            bar.close()
    if diagnostics.DEBUG_NANS.enabled:
        _check_finite(tape, method, X, results)
    if packed:
        return results
    return [batch_unpack(r, tape._d_shapes if j in grads else tape._out_shapes)
            for j, r in enumerate(results)]


def common_batch(tape, method, X, V, threads, executor=None):
    """The common batch, swept with the fewest Python steps around one C call
    (a profile of P6 at 1e5 points put the general path's Python at ~10% of a
    call's CPU, all of it serial to the threads that split the batch): the C
    backend, points X as one float64 C-contiguous array of shape (nb,) + the
    tape's one input shape, directions V (None, or like X), no parameters or
    pytrees, no progress bar, pyad.debug_nans off; executor None or a
    ThreadPoolExecutor itself (the general path's Python before the C call
    was ~150 us of a 0.9 ms split P6 batch at 1e5 points, all of it serial;
    its threads= is then ignored, as there). Returns the result
    rows as replay(packed=True) does, or None for anything else, before anything
    ran: the caller then takes the general path, which raises its errors. The
    same chunks and threads as the general path (sweep_whole): the same bits."""
    facts = tape._fast()  # (n_inputs, n_outputs or -1 for parameters / pytrees, one shape)
    if not (tape.backend == "c" and type(X) is np.ndarray
            and (facts[1] == 1 or (facts[1] > 0 and method is Sweep.FORWARD_BATCH))
            and X.dtype is _F64 and X.shape[1:] == facts[2] and X.shape[0]
            and X.flags.c_contiguous and tape._d_unwrap
            and (threads is None or (type(threads) is int and threads > 0))
            and (executor is None or type(executor) is concurrent.futures.ThreadPoolExecutor)
            and (V is None or (type(V) is np.ndarray and V.dtype is _F64
                               and V.shape == X.shape and V.flags.c_contiguous))
            and not diagnostics.DEBUG_NANS.enabled):
        return None
    store = tape._store
    try:
        done = store.batch_common(method, X, V, threads if executor is None
                                  else executor_threads(executor), _plan, executor)
    except np.linalg.LinAlgError as e:  # eigh at repeated eigenvalues: name the point
        raise _linalg_eig.sweep_error(store, e, _rows(X),
                                      lambda b: f" (batch point {b})") from None
    if done is None:
        return None
    (*results, bad), n_bad = done
    if n_bad:  # points are re-recorded from flat rows, as the general path packs them
        ones = np.broadcast_to(np.ones((1, 1)), (X.shape[0], 1))
        extra = {Sweep.FORWARD_BATCH: (), Sweep.JVP_BATCH: (_rows(V),),
                 Sweep.VJP_BATCH: (ones,), Sweep.HVP_BATCH: (_rows(V), ones)}[method]
        # the caller's frame is named by warnings as the general path's is
        _fix_points(tape, method, _rows(X), extra, results, bad, None, stacklevel=4)
    return results


def _rows(a):
    """A batch of points of any one shape as (nb, size) rows (a view)."""
    return None if a is None else a.reshape(a.shape[0], -1)


def _plan(method, nb, n_slots, n_inputs, n_outputs, threads):
    """(chunk, threads, result arrays, BLAS context or None) of a batch, as
    sweep_whole picks them."""
    chunk = chunk_size(n_slots, nb)
    k = threads_for(threads, nb, chunk, n_slots)
    return chunk, k, result_arrays(method, nb, n_inputs, n_outputs), \
        (_BLAS_THREADS if k > 1 else None)


_F64 = np.dtype(np.float64)


def _fix_points(tape, method, X, extra, results, bad, bar, stacklevel=5):
    """Re-record (or report) the points of a batch where a recorded branch flips."""
    flipped = np.flatnonzero(bad >= 0)
    if flipped.size and tape._fn is not None and 2 * flipped.size > X.shape[0]:
        warnings.warn(RetraceWarning(
            f"{flipped.size} of the {X.shape[0]} points of this batch take another Python "
            "branch than the recorded one, so each is re-recorded and swept alone "
            "(slow). Write the branch with pyad.where, which records both sides, so one "
            "tape replays at every point"), stacklevel=stacklevel)
    for b in flipped:
        _fix_point(tape, method, X, extra, results, b, int(bad[b]))
        if bar is not None:
            bar.update(1)


def _fix_point(tape, method, X, extra, results, b, op):
    """One point of a batch where a recorded branch flips: swept alone on a fresh
    recording of the traced function (the tape itself keeps its recording)."""
    failure = linalg_failure(tape._store, op, X[b], f" (batch point {b})")
    if failure is not None:
        raise failure
    if tape._fn is None:
        raise BranchError(branch_message(tape._store, op, X[b]))
    store, _ = rerecord(tape._fn, X[b], tape._in_shapes, tape._out_shapes, tape.backend,
                        f"at batch point {b}", tape._active)
    try:
        single = store.sweep(method, X[b:b + 1], *(e[b:b + 1] for e in extra))
    finally:
        store.close()
    tape.retraces += 1
    for j, r in enumerate(results):
        r[b] = single[j][0]


def _check_finite(tape, method, X, results):
    """pyad.debug_nans for a batch: the first point with a NaN or inf result is
    swept alone, to name the op that made it."""
    finite = np.ones(X.shape[0], dtype=bool)
    for r in results:
        finite &= np.isfinite(r).all(axis=1)
    if finite.all():
        return
    b = int(np.flatnonzero(~finite)[0])
    try:
        diagnostics.check_finite(tape, method.value, X[b], tuple(r[b] for r in results))
    except FloatingPointError as e:
        raise FloatingPointError(f"batch point {b}: {e}") from None
    raise FloatingPointError(f"pyad.debug_nans: batch point {b} "
                             f"(x = {X[b].tolist()}) gives a non-finite result")
