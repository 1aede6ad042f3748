"""Fit y = a exp(-b t) + c by least squares with the data as *parameters* of one
tape: recorded once, then replayed for a second data set without re-recording
(CppAD's dynamic parameters; JAX's habit of passing data as arguments).

    python examples/curve_fit_parameters.py
"""
import numpy as np
import scipy.optimize as so

import pyad


def model(p, t):
    a, b, c = p[0], p[1], p[2]
    return a * np.exp(-b * t) + c


def sse(p, t, y):
    r = model(p, t) - y
    return np.sum(r * r)


def data(rng, truth, n=60):
    t = np.linspace(0.0, 4.0, n)
    return t, model(np.asarray(truth), t) + 0.01 * rng.standard_normal(n)


def fit(tape, p0, t, y):
    """Newton-type minimization of the tape's value, its gradient and its HVP
    replayed at new data (t, y) through the parameters."""
    res = so.minimize(lambda p: tape(p, t, y), p0, jac=lambda p: tape.gradient(p, t, y),
                      hessp=lambda p, v: tape.hvp((p, t, y), v), method="trust-ncg",
                      options={"gtol": 1e-12})
    return res.x


def main():
    rng = np.random.default_rng(1)
    t1, y1 = data(rng, (2.0, 1.3, 0.5))
    t2, y2 = data(rng, (1.0, 0.4, -0.2))
    p0 = np.array([1.0, 1.0, 0.0])
    tape = pyad.trace(sse, p0, t1, y1, argnums=0)   # t and y are parameters
    print(f"inputs differentiated: {tape.n_inputs}, parameters: {tape.n_params}")
    for name, (t, y) in {"first": (t1, y1), "second": (t2, y2)}.items():
        p = fit(tape, p0, t, y)
        ref, _ = so.curve_fit(lambda t, a, b, c: a * np.exp(-b * t) + c, t, y, p0=p0)
        print(f"{name} data set: a, b, c = {p[0]:.6f} {p[1]:.6f} {p[2]:.6f}")
        print(f"{name} data set, scipy curve_fit: {ref[0]:.6f} {ref[1]:.6f} {ref[2]:.6f}")
    print(f"re-recordings: {tape.retraces}")


if __name__ == "__main__":
    main()
