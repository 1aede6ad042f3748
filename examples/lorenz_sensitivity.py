"""Parameter sensitivity of the Lorenz-63 system.

The state is integrated with classical Runge-Kutta (RK4) from (1, 1, 1) for
T = 1 (100 steps); pyad differentiates the norm of the final state with respect
to the parameters (sigma, rho, beta) by reverse mode through all 100 steps,
then replays the same tape at other values of rho.

    python examples/lorenz_sensitivity.py
"""
import numpy as np

import pyad

P0 = np.array([10.0, 28.0, 8.0 / 3.0])      # sigma, rho, beta
STATE0 = (1.0, 1.0, 1.0)
DT, STEPS = 0.01, 100


def lorenz(s, p):
    x, y, z = s
    sigma, rho, beta = p[0], p[1], p[2]
    return (sigma * (y - x), x * (rho - z) - y, x * y - beta * z)


def rk4_step(s, p, h):
    k1 = lorenz(s, p)
    k2 = lorenz([a + 0.5 * h * b for a, b in zip(s, k1)], p)
    k3 = lorenz([a + 0.5 * h * b for a, b in zip(s, k2)], p)
    k4 = lorenz([a + h * b for a, b in zip(s, k3)], p)
    return [a + h / 6.0 * (b1 + 2 * b2 + 2 * b3 + b4)
            for a, b1, b2, b3, b4 in zip(s, k1, k2, k3, k4)]


def final_norm(p):
    """|x(T)| for parameters p: works on numbers and on pyad's active values."""
    s = list(STATE0)
    for _ in range(STEPS):
        s = rk4_step(s, p, DT)
    return pyad.sqrt(s[0] ** 2 + s[1] ** 2 + s[2] ** 2)


def main():
    tape = pyad.trace(final_norm, P0)
    value, grad = tape.value_and_gradient(P0)
    print(f"tape: {tape.n_ops} ops, {tape.nbytes} bytes")
    print(f"|x(T)| = {value:.10f}")
    print("d|x(T)|/d(sigma, rho, beta) = " + " ".join(f"{g:.10e}" for g in grad))
    for rho in (10.0, 20.0, 28.0):
        p = np.array([P0[0], rho, P0[2]])
        print(f"rho = {rho:4.1f}: |x(T)| = {tape(p):.6f}, gradient = "
              + " ".join(f"{g:.6e}" for g in tape.gradient(p)))
    return value, grad


if __name__ == "__main__":
    main()
