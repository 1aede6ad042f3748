"""Batched replay: one tape swept at many points, in chunks, optionally on
several threads (the C sweeps release the GIL) or through an executor."""
import concurrent.futures
import operator
import os
import sys
import threading
import time

import numpy as np

#: store method -> how many result arrays precede the `bad` flags
RESULTS = {"forward_batch": 1, "jvp_batch": 2, "vjp_batch": 2, "hvp_batch": 3}


def chunk_size(n_ops):
    """Points per C sweep: enough to amortize the call, few enough that one
    op's lanes stay in cache."""
    return int(min(8192, max(8, 2**17 // max(n_ops, 1))))


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


#: store method -> which results hold one row per point of input size (the others
#: have output size); every batched method returns float64 rows and int64 `bad`.
INPUT_SIZED = {"forward_batch": (), "jvp_batch": (), "vjp_batch": (1,), "hvp_batch": (1, 2)}


def check_part(part, method, n_points, n_inputs, n_outputs, where):
    """Refuse a result that is not what store.<method> returns for n_points."""
    want = [(n_points, n_inputs if j in INPUT_SIZED[method] else n_outputs)
            for j in range(RESULTS[method])]
    if not isinstance(part, tuple) or len(part) != len(want) + 1:
        raise ValueError(f"{where} returned {type(part).__name__} {part!r:.80}; expected "
                         f"{len(want) + 1} arrays from {method}")
    for j, (a, shape) in enumerate(zip(part, want + [(n_points,)])):
        dtype = np.int64 if j == len(want) else np.float64
        if not isinstance(a, np.ndarray) or a.shape != shape or a.dtype != dtype:
            got = (f"shape {a.shape} dtype {a.dtype}" if isinstance(a, np.ndarray)
                   else type(a).__name__)
            raise ValueError(f"{where} returned a result of {got} for {n_points} points; "
                             f"{method} gives shape {shape} dtype {np.dtype(dtype)} "
                             f"(result {j})")


def sweep_chunks(store, method, arrays, chunk=None, progress=None):
    """Run store.<method> over arrays (each with points in rows) chunk by chunk.

    progress: None, or a Progress advanced by the points of each chunk."""
    nb = arrays[0].shape[0]
    chunk = chunk or chunk_size(store.n_ops)
    sweep = getattr(store, method)
    parts = []
    for i in range(0, nb, chunk):
        parts.append(sweep(*(np.ascontiguousarray(a[i:i + chunk]) for a in arrays)))
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


def executor_spans(nb, n_ops):
    """Spans for an executor's tasks: whole chunks of the local sweep, so that every
    point is swept in the same chunk position as locally (bit-for-bit equal
    results), a few tasks per local CPU (an executor's size is not public)."""
    return _split(nb, 4 * (os.cpu_count() or 1), chunk_size(n_ops))


def run(store, method, arrays, threads=None, executor=None, tape_bytes=None, progress=False):
    """All points through store.<method>; returns its result arrays and `bad`.

    progress=True shows the points done (tqdm if installed, else a line on stderr);
    a Progress instead is advanced and left open (the caller re-records points)."""
    nb = arrays[0].shape[0]
    threads = n_threads(threads)
    own_bar = not isinstance(progress, Progress)
    bar = progress_bar(progress, nb, f"pyad {method}", unit="pt") if own_bar else progress
    try:
        if executor is not None:
            n_ops = store.n_ops
            spans = executor_spans(nb, n_ops)
            futures = [executor.submit(remote_sweep, tape_bytes, method,
                                       tuple(a[lo:hi] for a in arrays), store.backend, n_ops)
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


def remote_sweep(tape_bytes, method, arrays, backend=None, n_ops=None):
    """Executor task: rebuild the tape from its bytes and sweep a slice of the batch
    (in chunks sized for n_ops, the caller's tape, as a local sweep would be)."""
    from .serialize import loads
    tape = loads(tape_bytes, backend)
    try:
        chunk = chunk_size(tape._store.n_ops if n_ops is None else n_ops)
        return sweep_chunks(tape._store, method, arrays, chunk)
    finally:
        tape.close()
