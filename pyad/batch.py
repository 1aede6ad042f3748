"""Batched replay: one tape swept at many points, in chunks, optionally on
several threads (the C sweeps release the GIL) or through an executor."""
import concurrent.futures

import numpy as np

#: store method -> how many result arrays precede the `bad` flags
RESULTS = {"forward_batch": 1, "jvp_batch": 2, "vjp_batch": 2, "hvp_batch": 3}


def chunk_size(n_ops):
    """Points per C sweep: enough to amortize the call, few enough that one
    op's lanes stay in cache."""
    return int(min(8192, max(8, 2**17 // max(n_ops, 1))))


def sweep_chunks(store, method, arrays, chunk=None):
    """Run store.<method> over arrays (each with points in rows) chunk by chunk."""
    nb = arrays[0].shape[0]
    chunk = chunk or chunk_size(store.n_ops)
    sweep = getattr(store, method)
    parts = [sweep(*(np.ascontiguousarray(a[i:i + chunk]) for a in arrays))
             for i in range(0, nb, chunk)]
    if not parts:
        return None
    return tuple(np.concatenate([p[j] for p in parts]) for j in range(len(parts[0])))


def _split(nb, parts):
    bounds = np.linspace(0, nb, parts + 1).astype(int)
    return [(bounds[i], bounds[i + 1]) for i in range(parts) if bounds[i + 1] > bounds[i]]


def run(store, method, arrays, threads=None, executor=None, tape_bytes=None):
    """All points through store.<method>; returns its result arrays and `bad`."""
    nb = arrays[0].shape[0]
    if executor is not None:
        spans = _split(nb, max(1, getattr(executor, "_max_workers", 4) or 4))
        futures = [executor.submit(remote_sweep, tape_bytes, method,
                                   tuple(a[lo:hi] for a in arrays)) for lo, hi in spans]
        parts = [f.result() for f in futures]
    elif threads is not None and threads > 1 and nb > 1:
        spans = _split(nb, threads)
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            parts = list(pool.map(
                lambda span: sweep_chunks(store, method, tuple(a[span[0]:span[1]] for a in arrays)),
                spans))
    else:
        return sweep_chunks(store, method, arrays)
    return tuple(np.concatenate([p[j] for p in parts]) for j in range(len(parts[0])))


def remote_sweep(tape_bytes, method, arrays):
    """Executor task: rebuild the tape from its bytes and sweep a slice of the batch."""
    from .serialize import loads
    tape = loads(tape_bytes)
    try:
        return sweep_chunks(tape._store, method, arrays)
    finally:
        tape.close()
