"""Maximum-likelihood logistic regression with Newton-CG.

The negative log-likelihood sum(log(1 + exp(z)) - y z), z = X w, is recorded
once; Newton-CG gets its gradient and Hessian-vector products from the tape.

    python examples/logistic_newton_cg.py          (needs scipy)
"""
import numpy as np

import pyad

W_TRUE = np.array([-0.5, 1.5, -2.0, 0.75, 0.0])


def make_data(n=500, seed=0):
    """Features (with an intercept column) and 0/1 labels drawn from the model."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n), rng.standard_normal((n, W_TRUE.size - 1))])
    p = 1.0 / (1.0 + np.exp(-(X @ W_TRUE)))
    y = (rng.uniform(size=n) < p).astype(float)
    return X, y


def negative_log_likelihood(w, X, y):
    z = w @ X.T                                  # X w, with w on the left (active @ constant)
    return np.sum(pyad.log1p(pyad.exp(z)) - y * z)


def main():
    X, y = make_data()
    res = pyad.minimize(negative_log_likelihood, np.zeros(X.shape[1]), args=(X, y),
                        method="Newton-CG", options={"xtol": 1e-12})
    w = res.x
    grad = X.T @ (1.0 / (1.0 + np.exp(-(X @ w))) - y)     # closed form, for the record
    print(f"converged: {res.success} ({res.message})")
    print(f"iterations: {res.nit}, Hessian-vector products: {res.nhev}")
    print("w* = " + " ".join(f"{v:.10f}" for v in w))
    print("w_true = " + " ".join(f"{v:.10f}" for v in W_TRUE))
    print(f"negative log-likelihood = {res.fun:.10f}")
    print(f"max |gradient| at w* = {np.max(np.abs(grad)):.3e}")
    return res


if __name__ == "__main__":
    main()
