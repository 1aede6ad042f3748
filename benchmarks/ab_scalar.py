"""A/B of the scalar problems (P1, P3, P6) between this checkout and another one,
interleaved in one run, each side in its own process importing its own pyad.

    python benchmarks/ab_scalar.py OTHER_PYTHON OTHER_CHECKOUT [ROUNDS]

OTHER_PYTHON is an interpreter with the other checkout's pyad built (e.g. its
virtual environment's python); this side runs on the current interpreter.
Prints a Markdown table of medians (seconds per call) and their ratio.
"""
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPS = {"P1 gradient": 20000, "P3 gradient": 200, "P3 record": 20, "P6 batch gradient": 10}

WORKER = r'''
import os, sys, time
for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(v, "1")
for peer in ("autograd", "jax", "torch", "casadi"):
    sys.modules[peer] = None
tree = sys.argv[1]
sys.path.insert(0, tree)
sys.path.insert(0, os.path.join(tree, "benchmarks"))
import numpy as np
import pyad, problems as P
assert os.path.realpath(pyad.__file__).startswith(os.path.realpath(tree)), pyad.__file__
t1 = pyad.trace(P.p1_f, *P.P1_POINT); x1 = np.array(P.P1_POINT)
t3 = pyad.trace(P.lorenz_loss, *P.P3_START); x3 = np.array(P.P3_START)
X6 = P.p6_points(); t6 = pyad.trace(P.p1_vec, X6[0])
T = {"P1 gradient": lambda: t1.gradient(x1),
     "P3 gradient": lambda: t3.gradient(x3),
     "P3 record": lambda: pyad.trace(P.lorenz_loss, *P.P3_START).close(),
     "P6 batch gradient": lambda: t6.gradient(X6, batch=True)}
for fn in T.values():
    fn()
print("ready", flush=True)
for line in sys.stdin:
    name, reps = line.rsplit(" ", 1)
    fn, reps = T[name], int(reps)
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    print((time.perf_counter() - t0) / reps, flush=True)
'''


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    other_python, other_tree = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 15
    sides = {"other": (other_python, other_tree), "this": (sys.executable, os.path.dirname(HERE))}
    workers = {k: subprocess.Popen([py, "-c", WORKER, tree], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True, cwd="/")
               for k, (py, tree) in sides.items()}
    for w in workers.values():
        assert w.stdout.readline().strip() == "ready"
    res = {(k, t): [] for k in workers for t in REPS}
    for r in range(rounds):
        for task, n in REPS.items():
            for k in (list(workers) if r % 2 == 0 else list(workers)[::-1]):
                workers[k].stdin.write(f"{task} {n}\n")
                workers[k].stdin.flush()
                res[(k, task)].append(float(workers[k].stdout.readline()))
    print(f"| task | other ({other_tree}) | this | this / other |\n|---|---:|---:|---:|")
    for task in REPS:
        a = statistics.median(res[("other", task)])
        b = statistics.median(res[("this", task)])
        print(f"| {task} | {a * 1e6:.2f} µs | {b * 1e6:.2f} µs | {b / a:.3f} |")
    for w in workers.values():
        w.stdin.close()


if __name__ == "__main__":
    main()
