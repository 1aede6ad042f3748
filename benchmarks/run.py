#!/usr/bin/env python
"""pyad benchmark runner: one command, one table, measured in one process.

    python benchmarks/run.py [--quick] [--only P1,P3] [--plot out.png] [--targets]
    python -m benchmarks [same options]

For every problem of benchmarks/problems.py and every system (pyad-C,
pyad-python, a hand-written numpy derivative, installed peers): set up, call
once and check the answer against the problem's reference (a wrong answer is
shown as WRONG and not timed), then repeat the call until about 0.5 s
(--quick: 0.15 s) have passed and report the median and the minimum time per
call, and the ratio of the median to pyad-C's in the same task. With --targets,
the issues' speed targets (benchmarks/targets.py) are then measured in the same
process and scored (PASS / MISS): a developers' view, left out of the demo.
BLAS and OpenMP run one thread each unless OPENBLAS_NUM_THREADS, OMP_NUM_THREADS or
MKL_NUM_THREADS are set in the environment.
"""
import argparse
import gc
import os
import platform
import sys
import time
import traceback

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# One BLAS / OpenMP thread unless the caller's environment says otherwise: on a
# shared machine a second BLAS thread that finds its core busy spin-waits, and
# the same numpy product then takes 100x longer (P9's hand gradient: 0.4 ms with
# one thread, 40 ms with two under load). pyad's sweeps are single-threaded too
# unless threads= is given. These must be set before numpy (or torch) loads.
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
for _var in BLAS_THREAD_VARS:
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

import problems  # noqa: E402
import pyad  # noqa: E402
import targets  # noqa: E402
from timing import fmt_time, measure  # noqa: E402


# --------------------------------------------------------------------------
# running cells
# --------------------------------------------------------------------------

class Result:
    def __init__(self, task, cell, status, text="", median=None, best=None, calls=0,
                 seconds=0.0, note=""):
        self.task, self.cell, self.status, self.text = task, cell, status, text
        self.median, self.best, self.calls, self.seconds = median, best, calls, seconds
        self.note = note

    @property
    def key(self):
        return (self.task.problem, self.task.name, self.cell.label)


def _short(e):
    msg = str(e).splitlines()[0] if str(e) else ""
    msg = f"{type(e).__name__}: {msg}" if msg else type(e).__name__
    return msg if len(msg) <= 90 else msg[:87] + "..."


def run_cell(task, cell, quick, budget, verbose=False):
    t_start = time.perf_counter()

    def done(status, text="", **kw):
        return Result(task, cell, status, text, seconds=time.perf_counter() - t_start, **kw)

    if cell.skip:
        return done("skipped", cell.skip)
    if quick and cell.slow:
        return done("skipped", "skipped in --quick (slow)")
    if cell.feature and not problems.feature_available(cell.feature):
        return done("n/a", "n/a (not implemented)")
    gc.collect()
    try:
        made = cell.make()
        check_fn, time_fn = made if isinstance(made, tuple) else (made, made)
        t0 = time.perf_counter()
        answer = check_fn()
        first = time.perf_counter() - t0
    except problems.Skipped as e:
        return done("skipped", str(e))
    except Exception as e:  # a crash in one cell must not stop the table
        if verbose:
            traceback.print_exc()
        return done("error", "error: " + _short(e))
    note = _cell_note(cell)
    try:
        ok, why = task.compare(answer)
    except Exception as e:
        ok, why = False, _short(e)
    if not ok:
        return done("wrong", f"WRONG ({why})", note=note)
    # slow cells (a call longer than the budget) get one timed repeat after the check
    min_reps = 3 if first * 3 <= 4 * budget else 1
    try:
        med, best, calls = measure(time_fn, budget, min_reps)
    except Exception as e:
        return done("error", "error while timing: " + _short(e), note=note)
    return done("ok", median=med, best=best, calls=calls, note=note)


def _cell_note(cell):
    """The cell's own note (known once make() has run); a failing note is shown, not raised."""
    if cell.note is None:
        return ""
    try:
        return cell.note() or ""
    except Exception as e:
        return "note failed: " + _short(e)


def run_all(selected, quick, budget, verbose=False, progress=True):
    results = []
    for prob in selected:
        t0 = time.perf_counter()
        try:
            tasks = prob.build(quick)
        except Exception as e:
            print(f"# {prob.id}: set-up failed: {_short(e)}", file=sys.stderr)
            if verbose:
                traceback.print_exc()
            continue
        for task in tasks:
            for cell in sorted(task.cells, key=_cell_order):
                r = run_cell(task, cell, quick, budget, verbose)
                results.append(r)
        if progress:
            print(f"# {prob.id} done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return results


def _cell_order(cell):
    order = problems.SYSTEM_ORDER
    base = order.index(cell.system) if cell.system in order else len(order)
    return (base, cell.variant is not None, cell.variant or "")


# --------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------

def baseline(results, task):
    """pyad-C's median in this task: the real feature, else its stand-in."""
    for r in results:
        if r.task is task and r.cell.system == "pyad-C" and r.status == "ok":
            return r.median
    return None


def table(results):
    lines = ["| problem | task | system | median | min | ratio to pyad-C | note |",
             "|---|---|---|---:|---:|---:|---|"]
    for r in results:
        base = baseline(results, r.task)
        if r.status == "ok":
            med, best = fmt_time(r.median), fmt_time(r.best)
            ratio = f"{r.median / base:.3g}x" if base else ""
            note = ""
            if r.cell.per:
                note = f"{fmt_time(r.median / r.cell.per)}/{r.cell.unit}"
        else:
            med, best, ratio, note = r.text, "", "", ""
        note = "; ".join(part for part in (note, r.note) if part)
        lines.append(f"| {r.task.problem} | {r.task.name} | {r.cell.label} | {med} | {best} "
                     f"| {ratio} | {note} |")
    return "\n".join(lines)


def machine():
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    blas = ", ".join(f"{v}={os.environ.get(v, 'unset')}" for v in BLAS_THREAD_VARS)
    peers = ", ".join(f"{k} {v}" for k, v in problems.PEERS.items()) or "none"
    absent = ", ".join(problems.ABSENT) or "none"
    return [f"machine: {cpu}; {os.cpu_count()} cores ({usable} usable); "
            f"{platform.system()} {platform.machine()}",
            f"python {platform.python_version()} ({platform.python_implementation()}); "
            f"numpy {np.__version__}; pyad {pyad.__version__}",
            f"BLAS threads: {blas} (set them in the environment to change)",
            f"peers installed: {peers}; absent: {absent}"]


# --------------------------------------------------------------------------
# the demo: the classic textbook examples
# --------------------------------------------------------------------------

def _vec(v):
    return "(" + ", ".join(f"{float(x):.10g}" for x in np.ravel(v)) + ")"


def demo():
    print("## pyad: gradients of the classic examples")
    print()
    for desc, f, point, expected in problems.CLASSIC_EXAMPLES:
        for backend in ("c", "python"):
            try:
                g = pyad.grad(f, backend=backend)(np.array(point))
            except Exception as e:
                print(f"    {desc}: [{backend}] FAILED: {_short(e)}")
                continue
            ok = np.allclose(g, expected, rtol=1e-14, atol=0)
            print(f"    {desc}: gradient = {_vec(g)}"
                  f"   [{backend}] {'ok' if ok else 'WRONG: expected ' + str(expected)}")
    # the explicit-recording form of the second example, replayed elsewhere
    try:
        with pyad.Tape() as tape:
            a, b = tape.input([4.0, 3.0])
            tape.output(a * (a + b))
        here, there = tape.gradient(), tape.gradient(np.array([1.0, 2.0]))
    except Exception as e:
        print(f"    with pyad.Tape(): FAILED: {_short(e)}\n")
        return
    print(f"    with pyad.Tape(): d = a*(a+b) recorded at (4, 3): tape.gradient() = "
          f"{_vec(here)}; replayed at (1, 2): {_vec(there)}")
    print()


# --------------------------------------------------------------------------

def plot_p2(results, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"--plot: matplotlib is not installed; no plot written to {path}", file=sys.stderr)
        return
    kinds = ["record", "value", "gradient", "hvp"]
    labels = sorted({r.cell.label for r in results if r.task.problem == "P2" and r.status == "ok"},
                    key=lambda lab: (problems.SYSTEM_ORDER.index(lab.split(" [")[0])
                                     if lab.split(" [")[0] in problems.SYSTEM_ORDER else 99, lab))
    colour = {lab: f"C{i % 10}" for i, lab in enumerate(labels)}
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.2 * len(kinds), 4), sharey=True)
    for ax, kind in zip(axes, kinds):
        series = {}
        for r in results:
            if r.task.problem == "P2" and r.task.kind == kind and r.status == "ok":
                series.setdefault(r.cell.label, []).append((r.task.n, r.median))
        for label in labels:
            pts = sorted(series.get(label, []))
            if pts:
                ax.loglog([p[0] for p in pts], [p[1] for p in pts], "o-", label=label,
                          color=colour[label])
        ax.set_title(f"Rosenbrock: {kind}")
        ax.set_xlabel("n")
        ax.grid(True, which="both", alpha=0.3)
        if series:
            ax.legend(fontsize=8)
    axes[0].set_ylabel("seconds per call (median)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"plot written to {path}", file=sys.stderr)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python benchmarks/run.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="small sizes, ~0.15 s per cell, slow peers skipped (< 1 min)")
    p.add_argument("--only", default=None, help="comma-separated problem ids, e.g. P1,P3")
    p.add_argument("--plot", default=None, metavar="OUT.png",
                   help="draw time vs n for P2 (needs matplotlib)")
    p.add_argument("--targets", action="store_true",
                   help="also measure and score the issues' speed targets (developers)")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds of repeats per cell (default 0.5, --quick 0.15)")
    p.add_argument("-v", "--verbose", action="store_true", help="tracebacks of failing cells")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    t_start = time.perf_counter()
    budget = args.budget if args.budget is not None else (0.15 if args.quick else 0.5)
    ids = [s.strip().upper() for s in args.only.split(",")] if args.only else None
    known = {p.id for p in problems.PROBLEMS}
    if ids:
        unknown = [i for i in ids if i not in known]
        if unknown:
            sys.exit(f"unknown problem id(s) {unknown}; known: {sorted(known)}")
    selected = [p for p in problems.PROBLEMS if ids is None or p.id in ids]

    if args.quick:
        demo()
    print(f"# pyad benchmarks ({'quick' if args.quick else 'full'}; "
          f"~{budget:g} s of repeats per cell)")
    print()
    for line in machine():
        print(line)
    print()
    for p in selected:
        print(f"- {p.id}: {p.title}")
    print()
    sys.stdout.flush()

    results = run_all(selected, args.quick, budget, args.verbose)
    print(table(results))
    print()
    print("median/min: seconds per call after one checked warm-up call; ratio: median / "
          "pyad-C's median in the same task (its stand-in where the feature is n/a).")
    print()
    if args.targets:
        sys.stdout.flush()
        for line in targets.report(results, [p.id for p in selected], args.quick, budget):
            print(line)
        print()
    if args.plot:
        plot_p2(results, args.plot)
    print(f"total wall time: {time.perf_counter() - t_start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
