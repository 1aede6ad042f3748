#!/usr/bin/env python
"""Two threads replaying one tape vs one thread (the C sweeps release the GIL).

    python benchmarks/threads.py [--quick] [--backend c|python] [--threads 2]

Two workloads on one recorded tape:
  * batched gradients: tape.gradient(X, batch=True) over many points, the batch
    split in two by pyad (threads=2) and, separately, two Python threads each
    sweeping half of the points;
  * many single gradients of a large tape: K calls of tape.gradient(x) in one
    thread vs K/2 calls in each of two threads.
For each it prints the best-of-N wall time of both and the speedup
(one-thread time / two-thread time; 2.0 is perfect scaling on two free cores).
"""
import argparse
import os
import sys
import threading
import time

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pyad  # noqa: E402


def rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def in_threads(n_threads, work):
    """Run work(i) in n_threads threads started together; returns when all are done."""
    barrier = threading.Barrier(n_threads + 1)
    errors = []

    def body(i):
        barrier.wait()
        try:
            work(i)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    barrier.wait()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def report(name, one, many, n_threads):
    print(f"  {name:<44} 1 thread {one * 1e3:9.1f} ms   {n_threads} threads "
          f"{many * 1e3:9.1f} ms   speedup {one / many:5.2f}x")
    return one / many


def batched_gradients(backend, n, n_points, repeat, n_threads):
    rng = np.random.default_rng(0)
    tape = pyad.trace(rosen, np.zeros(n), backend=backend)
    X = rng.uniform(-1.0, 1.0, size=(n_points, n))
    want = tape.gradient(X, batch=True)
    np.testing.assert_allclose(tape.gradient(X, batch=True, threads=n_threads), want,
                               rtol=1e-12)
    print(f"batched gradients: rosenbrock n={n} ({tape.n_ops} ops), {n_points} points, "
          f"{backend} backend")
    one = best_of(lambda: tape.gradient(X, batch=True), repeat)
    split = best_of(lambda: tape.gradient(X, batch=True, threads=n_threads), repeat)
    r1 = report(f"tape.gradient(X, batch=True, threads={n_threads})", one, split, n_threads)
    parts = np.array_split(X, n_threads)
    out = [None] * n_threads

    def half(i):
        out[i] = tape.gradient(parts[i], batch=True)

    outer = best_of(lambda: in_threads(n_threads, half), repeat)
    np.testing.assert_allclose(np.concatenate(out), want, rtol=1e-12)
    r2 = report(f"{n_threads} Python threads, one part of X each", one, outer, n_threads)
    return r1, r2


def single_gradients(backend, n, calls, repeat, n_threads):
    rng = np.random.default_rng(1)
    tape = pyad.trace(rosen, np.zeros(n), backend=backend)
    xs = rng.uniform(-1.0, 1.0, size=(4, n))
    want = [tape.gradient(x) for x in xs]
    print(f"single gradients: rosenbrock n={n} ({tape.n_ops} ops), {calls} calls, "
          f"{backend} backend")

    def serial():
        for k in range(calls):
            tape.gradient(xs[k % 4])

    def share(i):
        for k in range(i, calls, n_threads):
            g = tape.gradient(xs[k % 4])
        np.testing.assert_array_equal(g, want[(k) % 4])

    one = best_of(serial, repeat)
    many = best_of(lambda: in_threads(n_threads, share), repeat)
    return report("tape.gradient(x) in a loop, calls shared out", one, many, n_threads)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller problems, fewer repeats")
    p.add_argument("--backend", default="c", choices=("c", "python"))
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"pyad {pyad.__version__}, {cores} cores available, comparing 1 and "
          f"{args.threads} threads")
    if args.backend == "python":
        sizes = dict(batch=(100, 64), single=(2000, 20), repeat=2)
    elif args.quick:
        sizes = dict(batch=(1000, 2048), single=(100_000, 40), repeat=3)
    else:
        sizes = dict(batch=(1000, 8192), single=(1_000_000, 40), repeat=5)
    batched_gradients(args.backend, *sizes["batch"], sizes["repeat"], args.threads)
    single_gradients(args.backend, *sizes["single"], sizes["repeat"], args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
