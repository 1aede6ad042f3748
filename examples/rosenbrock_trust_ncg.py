"""Minimize the n-dimensional Rosenbrock function with scipy's trust-ncg.

pyad records the function once; scipy gets the value and the gradient from one
forward and one reverse sweep per point, and Hessian-vector products from
forward-over-reverse sweeps: no Hessian matrix is ever formed.

    python examples/rosenbrock_trust_ncg.py [n]          (needs scipy)
"""
import sys

import numpy as np

import pyad


def rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def main(n=200):
    x0 = np.full(n, 0.5)
    res = pyad.minimize(rosen, x0, method="trust-ncg", options={"gtol": 1e-10})
    print(f"n = {n}")
    print(f"converged: {res.success} ({res.message})")
    print(f"iterations: {res.nit}")
    print(f"f(x*) = {res.fun:.3e}")
    print(f"max |x* - 1| = {np.max(np.abs(res.x - 1.0)):.3e}")
    print(f"value+gradient sweeps: {res.npoints} (scipy asked for {res.nfev} values "
          f"and {res.njev} gradients)")
    print(f"Hessian-vector products: {res.nhev}")
    return res


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
