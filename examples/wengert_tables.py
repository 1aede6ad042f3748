"""The textbook example of Griewank & Walther, "Evaluating Derivatives":

    y = ln(x1) + x1 * x2 - sin(x2)   at (x1, x2) = (2, 5)

printed as the forward (tangent) Wengert table seeded on x1 and as the reverse
(adjoint) table seeded with y_bar = 1, followed by the gradient they give.

    python examples/wengert_tables.py [--dot]      (--dot also prints Graphviz text)
"""
import sys

import numpy as np

import pyad


def f(x):
    return pyad.log(x[0]) + x[0] * x[1] - pyad.sin(x[1])


def main(dot=False):
    tape = pyad.trace(f, np.array([2.0, 5.0]))
    forward = tape.table(mode="forward", seed=[1.0, 0.0])
    reverse = tape.table(mode="reverse")
    print("Forward mode, tangents along x1:")
    print(forward)
    print()
    print("Reverse mode, adjoints of y:")
    print(reverse)
    print()
    print(f"y = {forward['v_5']['value']:.10f}")
    print(f"forward:  dy/dx1 = {forward['v_5']['tangent']:.10f}")
    print(f"reverse:  dy/dx1 = {reverse['v_{-1}']['adjoint']:.10f}, "
          f"dy/dx2 = {reverse['v_0']['adjoint']:.10f}")
    if dot:
        print()
        print(tape.to_dot(values=True))


if __name__ == "__main__":
    main(dot="--dot" in sys.argv[1:])
