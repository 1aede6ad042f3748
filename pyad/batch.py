"""Batched replay: one tape swept at many points, in chunks, optionally on
several threads (the C sweeps release the GIL) or through an executor."""
import concurrent.futures
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
            progress.update(min(chunk, nb - i))
    if not parts:
        return None
    return tuple(np.concatenate([p[j] for p in parts]) for j in range(len(parts[0])))


def _split(nb, parts):
    bounds = np.linspace(0, nb, parts + 1).astype(int)
    return [(bounds[i], bounds[i + 1]) for i in range(parts) if bounds[i + 1] > bounds[i]]


def run(store, method, arrays, threads=None, executor=None, tape_bytes=None, progress=False):
    """All points through store.<method>; returns its result arrays and `bad`.

    progress=True shows the points done (tqdm if installed, else a line on stderr)."""
    nb = arrays[0].shape[0]
    bar = progress_bar(progress, nb, f"pyad {method}", unit="pt")
    try:
        if executor is not None:
            spans = _split(nb, max(1, getattr(executor, "_max_workers", 4) or 4))
            futures = [executor.submit(remote_sweep, tape_bytes, method,
                                       tuple(a[lo:hi] for a in arrays), store.backend)
                       for lo, hi in spans]
            parts = []
            for (lo, hi), f in zip(spans, futures):
                parts.append(f.result())
                if bar is not None:
                    bar.update(hi - lo)
        elif threads is not None and threads > 1 and nb > 1:
            spans = _split(nb, threads)
            with concurrent.futures.ThreadPoolExecutor(threads) as pool:
                parts = list(pool.map(
                    lambda span: sweep_chunks(store, method,
                                              tuple(a[span[0]:span[1]] for a in arrays),
                                              progress=bar),
                    spans))
        else:
            return sweep_chunks(store, method, arrays, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    return tuple(np.concatenate([p[j] for p in parts]) for j in range(len(parts[0])))


def remote_sweep(tape_bytes, method, arrays, backend=None):
    """Executor task: rebuild the tape from its bytes and sweep a slice of the batch."""
    from .serialize import loads
    tape = loads(tape_bytes, backend)
    try:
        return sweep_chunks(tape._store, method, arrays)
    finally:
        tape.close()
