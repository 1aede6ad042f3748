#!/usr/bin/env python
"""Batched replay on one thread and on two, next to torch (issue 17's targets).

    python benchmarks/threads.py [--quick] [--rounds 21] [--threads 2]
    PYTHONPATH=. /work/peers/bin/python benchmarks/threads.py   # with torch

Every cell runs once per round and the rounds are interleaved, so load that
comes and goes on a shared machine hits all cells alike; each cell's median
(and minimum) over the rounds is printed, then the targets as ratios of
medians. The load average is printed next to the figures: two threads cannot
scale on cores that other processes are using.

Cells: P6 (P1's gradient, tape.gradient(X, batch=True, threads=k)) at 1e5 and
1e6 points (--quick: 1e5 only); torch on the same function of whole tensors
(torch.autograd.grad of the sum, torch.set_num_threads(k)); P2 (Rosenbrock
n=1,000, array rows) at 1,000 points; the same P6 batches split over a
ThreadPoolExecutor(k) (executor=); and a small batch with threads=None against
threads=1 (it must not be slower). Each target is printed as the ratio of the
two cells' medians, with the quartiles and range of the ratios of the same two
cells within each round (the spread that a shared machine's load puts on it).

--serial prints, instead, what a loaded machine can still measure: the share of
a split call's CPU time spent on the calling thread outside the C batch call
(Python before and after it, which every other participant waits for), and the
CPU time of each participant, from the kernel's per-thread counters (Linux).
Amdahl's law caps the speedup of k threads at 1 / (s + (1 - s) / k).
"""
import argparse
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pyad  # noqa: E402
from benchmarks.problems import TorchNS, p1_f, p1_vec, rosenbrock  # noqa: E402

try:
    import torch
except ImportError:
    torch = None


class Cell:
    """One timed call; `repeat` calls per sample for calls too short to time alone."""

    def __init__(self, name, fn, points, repeat=1):
        self.name, self.fn, self.points, self.repeat = name, fn, points, repeat
        self.samples = []

    def sample(self):
        t0 = time.perf_counter()
        for _ in range(self.repeat):
            self.fn()
        self.samples.append((time.perf_counter() - t0) / self.repeat)

    @property
    def median(self):
        return statistics.median(self.samples)

    def line(self):
        per = 1e9 / self.points
        return (f"  {self.name:<46} {self.median * per:9.1f} ns/point "
                f"({min(self.samples) * per:7.1f})   {self.median * 1e3:8.2f} ms")


def p6_points(n):
    return np.random.default_rng(0).uniform(1.0, 2.0, size=(n, 3))


def pyad_cells(label, tape, X, k, executor):
    """threads=1, threads=k and (optionally) executor= on one tape and batch;
    the split ones are checked bit for bit against threads=1 first."""
    one = tape.gradient(X, batch=True, threads=1)
    cells = [Cell(f"{label} pyad threads=1", lambda: tape.gradient(X, batch=True, threads=1),
                  len(X))]
    split = tape.gradient(X, batch=True, threads=k)
    assert np.array_equal(split, one), f"{label}: threads={k} differs from threads=1"
    cells.append(Cell(f"{label} pyad threads={k}",
                      lambda: tape.gradient(X, batch=True, threads=k), len(X)))
    if executor is not None:
        assert np.array_equal(tape.gradient(X, batch=True, executor=executor), one)
        cells.append(Cell(f"{label} pyad executor=ThreadPoolExecutor({k})",
                          lambda: tape.gradient(X, batch=True, executor=executor), len(X)))
    return cells


def torch_cells(label, X, k, want):
    """P6 in torch: the function on whole tensors, autograd.grad of its sum."""
    if torch is None:
        return []
    Xt = torch.tensor(X)

    def grad(n_threads):
        def run():
            torch.set_num_threads(n_threads)
            Z = Xt.clone().requires_grad_(True)
            return torch.autograd.grad(torch.sum(p1_f(Z[:, 0], Z[:, 1], Z[:, 2], TorchNS)), Z)[0]
        return run

    np.testing.assert_allclose(grad(1)().numpy(), want, rtol=1e-10, atol=1e-12)
    return [Cell(f"{label} torch set_num_threads({n})", grad(n), len(X)) for n in (1, k)]


class _TimedLib:
    """pyad's cffi lib, with the calling thread's CPU time inside the C batch
    calls (pyad_batch_sweep, and pyad_batch_work and pyad_batch_finish where
    the caller takes chunks of an executor's batch and waits for its tasks)
    added up."""

    CALLS = ("pyad_batch_sweep", "pyad_batch_work", "pyad_batch_finish")

    def __init__(self, lib):
        self._lib, self.inside = lib, 0.0

    def __getattr__(self, name):
        fn = getattr(self._lib, name)
        if name not in self.CALLS:
            return fn

        def timed(*args):
            if threading.current_thread() is not threading.main_thread():
                return fn(*args)
            t0 = time.thread_time()
            try:
                return fn(*args)
            finally:
                self.inside += time.thread_time() - t0
        return timed


def _threads_cpu():
    """{thread id: ns on a CPU} for this process's threads (Linux schedstat)."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                out[int(tid)] = int(f.read().split()[0])
        except OSError:
            pass
    return out


def serial_report(label, fn, reps, timed):
    """One line: per call, the caller's CPU outside and inside C, the other
    threads' CPU, and the serial share s of all of it."""
    for _ in range(3):
        fn()
    timed.inside = 0.0
    before, t0 = _threads_cpu(), time.thread_time()
    for _ in range(reps):
        fn()
    caller, after = time.thread_time() - t0, _threads_cpu()
    me = threading.get_native_id()
    others = sorted(((after[t] - before.get(t, 0)) / 1e9 for t in after if t != me),
                    reverse=True)
    others = [o for o in others if o > 1e-4 * reps]  # BLAS threads idling, the GC
    outside = caller - timed.inside
    s = outside / (caller + sum(others))
    ms = 1e3 / reps
    print(f"  {label:<40} caller {outside * ms:6.3f} ms outside C + {timed.inside * ms:6.3f} "
          f"inside; others {', '.join(f'{o * ms:.3f}' for o in others) or '-':<14} "
          f"serial share {s:.3f} (Amdahl cap at 2 threads {1 / (s + (1 - s) / 2):.2f}x)")


def serial_main(k, quick):
    from pyad import backend_c
    timed = backend_c.lib = _TimedLib(backend_c.lib)
    print(f"serial share of a call (CPU time; load average {os.getloadavg()[0]:.2f})")
    pool = ThreadPoolExecutor(k)
    for n in (10**5,) if quick else (10**5, 10**6):
        X = p6_points(n)
        tape = pyad.trace(p1_vec, X[0])
        reps = max(10, 3 * 10**7 // n)
        for name, how in (("threads=1", {"threads": 1}), (f"threads={k}", {"threads": k}),
                          (f"executor=ThreadPoolExecutor({k})", {"executor": pool})):
            serial_report(f"P6 {n:.0e} {name}",
                          lambda h=how: tape.gradient(X, batch=True, **h), reps, timed)
    R = np.random.default_rng(1).uniform(-1.0, 1.0, size=(1000, 1000))
    rtape = pyad.trace(rosenbrock, R[0])
    for name, how in (("threads=1", {"threads": 1}), (f"threads={k}", {"threads": k})):
        serial_report(f"P2 n=1000 x 1000 {name}",
                      lambda h=how: rtape.gradient(R, batch=True, **h), 30, timed)
    pool.shutdown()
    return 0


def ratio(cells, slow, fast):
    return cells[slow].median / cells[fast].median


def round_ratios(cells, slow, fast):
    """The ratio in each round (both cells ran back to back): its spread says how
    much the load of a shared machine moved the ratio of medians."""
    return sorted(a / b for a, b in zip(cells[slow].samples, cells[fast].samples))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer rounds, no 1e6 batch")
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--serial", action="store_true",
                   help="the serial share of each call's CPU time, not wall-clock ratios")
    args = p.parse_args(argv)
    k = args.threads
    if args.serial:
        return serial_main(k, args.quick)
    rounds = args.rounds or (5 if args.quick else 21)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"pyad {pyad.__version__}, torch {torch.__version__ if torch else '(not installed)'}, "
          f"{cores} usable cores, {rounds} interleaved rounds; load average at start "
          f"{os.getloadavg()[0]:.2f}")

    cells = {}
    pool = ThreadPoolExecutor(k)
    sizes = (10**5,) if args.quick else (10**5, 10**6)
    for n in sizes:
        X = p6_points(n)
        tape = pyad.trace(p1_vec, X[0])
        label = f"P6 {n:.0e} points:"
        want = tape.gradient(X, batch=True, threads=1)
        for c in (pyad_cells(label, tape, X, k, pool)
                  + torch_cells(label, X, k, want)):
            cells[c.name] = c

    rng = np.random.default_rng(1)
    R = rng.uniform(-1.0, 1.0, size=(1000, 1000))
    rtape = pyad.trace(rosenbrock, R[0])
    for c in pyad_cells("P2 n=1000, 1000 points:", rtape, R, k, None):
        cells[c.name] = c

    small = p6_points(1000)
    stape = pyad.trace(p1_vec, small[0])
    assert np.array_equal(stape.gradient(small, batch=True),
                          stape.gradient(small, batch=True, threads=1))
    for name, threads in (("threads=1", 1), ("threads=None", None)):
        c = Cell(f"P6 1e+03 points: pyad {name}",
                 lambda t=threads: stape.gradient(small, batch=True, threads=t), 1000, repeat=20)
        cells[c.name] = c

    order = list(cells.values())
    for c in order:  # warm-up: first touches, thread pools, torch's kernels
        c.fn()
    for _ in range(rounds):
        for c in order:
            c.sample()
    print("cell                                             median (min)           median")
    for c in order:
        print(c.line())
    print(f"load average at end {os.getloadavg()[0]:.2f}")

    print("targets (ratios of medians; 'speedup' = one-thread time / split time):")

    print(f"  {'':<58} {'ratio':>6}  {'':<17} {'per-round ratios':>16}")

    def target(text, slow, fast, goal):
        value = ratio(cells, slow, fast)
        r = round_ratios(cells, slow, fast)
        q = lambda f: r[min(len(r) - 1, int(f * len(r)))]  # noqa: E731
        print(f"  {text:<58} {value:5.2f}x  (target >= {goal}) "
              f"{'ok    ' if value >= goal else 'MISSED'}  "
              f"quartiles {q(0.25):.2f}-{q(0.75):.2f}, range {r[0]:.2f}-{r[-1]:.2f}")

    for n in sizes:
        L = f"P6 {n:.0e} points:"
        target(f"P6 {n:.0e}: threads={k} speedup", f"{L} pyad threads=1",
               f"{L} pyad threads={k}", 1.7)
        if f"{L} pyad executor=ThreadPoolExecutor({k})" in cells:
            target(f"P6 {n:.0e}: executor=ThreadPoolExecutor({k}) speedup",
                   f"{L} pyad threads=1", f"{L} pyad executor=ThreadPoolExecutor({k})", 1.7)
        if torch is not None:
            for n_t in (1, k):
                target(f"P6 {n:.0e}: torch / pyad at {n_t} thread(s)",
                       f"{L} torch set_num_threads({n_t})", f"{L} pyad threads={n_t}", 1.0)
    L = "P2 n=1000, 1000 points:"
    target(f"P2 n=1000 x 1000 points: threads={k} speedup",
           f"{L} pyad threads=1", f"{L} pyad threads={k}", 1.7)
    L = "P6 1e+03 points:"
    target("P6 1e+03: threads=None vs threads=1 (not slower)",
           f"{L} pyad threads=1", f"{L} pyad threads=None", 0.9)
    pool.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
