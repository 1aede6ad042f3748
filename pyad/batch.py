"""Batched replay: one tape swept at many points, in chunks, optionally on
several threads (the C sweeps release the GIL) or through an executor."""
import concurrent.futures
import operator
import os
import sys
import threading
import time

import warnings

import numpy as np

from . import diagnostics
from .errors import BranchError, RetraceWarning
from .replay import batch_unpack, branch_message, linalg_failure, pack_batch, rerecord
from .serialize import dumps, load_store
from .store import Sweep


def chunk_size(n_slots):
    """Points per C sweep: enough to amortize the call, few enough that a work
    array (n_slots lanes of the chunk's points) stays in cache. Sized by slots,
    not rows: a block row defines many slots, and a chunk whose work arrays are
    tens of MB spends its time faulting in fresh pages and streaming memory."""
    return int(min(8192, max(8, 2**17 // max(n_slots, 1))))


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


def n_threads(threads):
    """threads= as an int >= 1 (numpy integers too), or None."""
    if threads is None:
        return None
    try:
        n = None if isinstance(threads, bool) else operator.index(threads)
    except TypeError:
        n = None
    if n is None or n < 1:
        raise ValueError(f"threads must be a positive int (or None), not {threads!r}")
    return n


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
    chunk = chunk or chunk_size(store.n_slots)
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
    results), a few tasks per local CPU (an executor's size is not public)."""
    return _split(nb, 4 * (os.cpu_count() or 1), chunk_size(n_slots))


def run(store, method, arrays, threads=None, executor=None, tape_bytes=None, progress=False):
    """All points through the batched sweep `method` (a Sweep, or its name) of
    store; returns its result arrays and `bad`.

    progress=True shows the points done (tqdm if installed, else a line on stderr);
    a Progress instead is advanced and left open (the caller re-records points)."""
    nb = arrays[0].shape[0]
    method = Sweep(method)
    threads = n_threads(threads)
    own_bar = not isinstance(progress, Progress)
    bar = progress_bar(progress, nb, f"pyad {method.value}", unit="pt") if own_bar else progress
    try:
        if executor is not None:
            n_slots = store.n_slots
            spans = executor_spans(nb, n_slots)
            futures = [executor.submit(remote_sweep, tape_bytes, method,
                                       tuple(a[lo:hi] for a in arrays), store.backend, n_slots)
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
        elif threads is not None and threads > 1 and nb > 1:
            spans = _split(nb, threads)
            with concurrent.futures.ThreadPoolExecutor(len(spans)) as pool:
                parts = list(pool.map(
                    lambda span: sweep_chunks(store, method,
                                              tuple(a[span[0]:span[1]] for a in arrays),
                                              progress=bar),
                    spans))
        else:
            return sweep_chunks(store, method, arrays, progress=bar)
    finally:
        if bar is not None and own_bar:
            bar.close()
    return tuple(np.concatenate([p[j] for p in parts]) for j in range(len(parts[0])))


def remote_sweep(tape_bytes, method, arrays, backend=None, n_slots=None):
    """Executor task: rebuild the tape from its bytes and sweep a slice of the batch
    (in chunks sized for n_slots, the caller's tape, as a local sweep would be)."""
    store, _, _ = load_store(tape_bytes, backend)
    try:
        chunk = chunk_size(store.n_slots if n_slots is None else n_slots)
        return sweep_chunks(store, method, arrays, chunk)
    finally:
        store.close()


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
    tape_bytes = dumps(tape) if executor is not None else None
    bar = progress_bar(progress, X.shape[0], f"pyad {method.value}", unit="pt")
    try:
        *results, bad = run(tape._store, method, (X,) + tuple(extra), threads, executor,
                            tape_bytes, bar if bar is not None else False)
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


def _fix_points(tape, method, X, extra, results, bad, bar):
    """Re-record (or report) the points of a batch where a recorded branch flips."""
    flipped = np.flatnonzero(bad >= 0)
    if flipped.size and tape._fn is not None and 2 * flipped.size > X.shape[0]:
        warnings.warn(RetraceWarning(
            f"{flipped.size} of the {X.shape[0]} points of this batch take another Python "
            "branch than the recorded one, so each is re-recorded and swept alone "
            "(slow). Write the branch with pyad.where, which records both sides, so one "
            "tape replays at every point"), stacklevel=5)
    for b in flipped:
        _fix_point(tape, method, X, extra, results, b, int(bad[b]))
        if bar is not None:
            bar.update(1)


def _fix_point(tape, method, X, extra, results, b, op):
    """One point of a batch where a recorded branch flips: swept alone on a fresh
    recording of the traced function (the tape itself keeps its recording)."""
    failure = linalg_failure(tape._store, op, X[b])
    if failure is not None:
        raise np.linalg.LinAlgError(f"batch point {b}: {failure}")
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
