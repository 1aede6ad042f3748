"""Batched replay of array rows (issue 13 item 4): Rosenbrock n=1,000 at 1,000
points and a P7-like logistic loss (X 1000x100) at 200 points, against a loop of
one-point gradients and numpy by hand vectorized over the points.

    python -m benchmarks.lanes            # this build, prints medians (ms)
    python -m benchmarks.lanes --ab OTHER_PYTHON [--rounds N]
        # interleaved A/B: each round runs this file once under OTHER_PYTHON
        # (the reference build) and once under this interpreter; medians of rounds.
        # Set OPENBLAS_NUM_THREADS=1 on a busy machine: OpenBLAS's threads spin.
"""
import json
import os
import subprocess
import sys
import time

import numpy as np


def _median_ms(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosenbrock_grad_batch(X):
    """numpy by hand, points in rows."""
    d = X[:, 1:] - X[:, :-1] ** 2
    g = np.zeros_like(X)
    g[:, :-1] = -400.0 * X[:, :-1] * d - 2.0 * (1.0 - X[:, :-1])
    g[:, 1:] += 200.0 * d
    return g


def logistic_data():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((1000, 100))
    y = np.where(rng.standard_normal(1000) >= 0.0, 1.0, -1.0)
    return A, y


def logistic_grad_batch(W, A, y):
    M = -y * (W @ A.T)                    # points x samples
    S = 1.0 / (1.0 + np.exp(-M))
    return (-y * S) @ A / len(y)


def measure(quick=False):
    import pyad
    rng = np.random.default_rng(1)
    out = {}
    n, nb = 1000, 1000
    X = rng.uniform(-1.0, 1.5, (nb, n))
    tape = pyad.trace(rosenbrock, X[0])
    G = tape.gradient(X, batch=True)
    np.testing.assert_allclose(G, rosenbrock_grad_batch(X), rtol=1e-9, atol=1e-9)
    rep = 3 if quick else 7
    # numpy first: glibc's malloc raises its mmap threshold after large frees, so
    # numpy's temporaries are cheaper after a sweep that freed big arrays
    out["rosen numpy by hand"] = _median_ms(lambda: rosenbrock_grad_batch(X), rep)
    out["rosen batch"] = _median_ms(lambda: tape.gradient(X, batch=True), rep)
    out["rosen batch threads=2"] = _median_ms(lambda: tape.gradient(X, batch=True, threads=2), rep)
    out["rosen loop of 1-point"] = _median_ms(lambda: [tape.gradient(x) for x in X], 3)

    A, y = logistic_data()
    W = 0.01 * rng.standard_normal((200, 100))
    loss = lambda w: np.mean(np.log(1.0 + np.exp(-y * (A @ w))))
    ltape = pyad.trace(loss, W[0])
    np.testing.assert_allclose(ltape.gradient(W, batch=True), logistic_grad_batch(W, A, y),
                               rtol=1e-9, atol=1e-12)
    out["logistic batch"] = _median_ms(lambda: ltape.gradient(W, batch=True), rep)
    out["logistic loop of 1-point"] = _median_ms(lambda: [ltape.gradient(w) for w in W], 3)
    out["logistic numpy by hand"] = _median_ms(lambda: logistic_grad_batch(W, A, y), rep)
    return out


def ab(other, rounds):
    runs = {"ref": [], "this": []}
    for _ in range(rounds):
        for name, exe in (("ref", other), ("this", sys.executable)):
            # by path, from /tmp: each interpreter imports its own installed pyad,
            # not the checkout in the current folder
            text = subprocess.run([exe, os.path.abspath(__file__), "--json"], check=True,
                                  capture_output=True, text=True, cwd="/tmp").stdout
            runs[name].append(json.loads(text.strip().splitlines()[-1]))
    keys = runs["this"][0].keys()
    print(f"{'ms (median of rounds)':32s} {'reference':>10s} {'this':>10s} {'ratio':>7s}")
    for k in keys:
        a = float(np.median([r[k] for r in runs["ref"]]))
        b = float(np.median([r[k] for r in runs["this"]]))
        print(f"{k:32s} {a:10.2f} {b:10.2f} {a / b:7.2f}x")


if __name__ == "__main__":
    if "--ab" in sys.argv:
        rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 3
        ab(sys.argv[sys.argv.index("--ab") + 1], rounds)
    elif "--json" in sys.argv:
        print(json.dumps(measure(quick=True)))
    else:
        for k, v in measure().items():
            print(f"{k:32s} {v:10.2f} ms")
