"""Train a small MLP whose parameters are a dict, as in JAX: the gradient comes
back as a dict of the same keys; has_aux=True returns the accuracy beside the
loss; the training loop replays one cached tape (X and y are parameters of it,
not differentiated).

    python examples/mlp_params_dict.py
"""
import numpy as np

import pyad


def init(rng, n_in=4, n_hidden=16):
    return {"W1": rng.standard_normal((n_in, n_hidden)) / np.sqrt(n_in),
            "b1": np.zeros(n_hidden),
            "W2": rng.standard_normal((n_hidden, 1)) / np.sqrt(n_hidden),
            "b2": np.zeros(1)}


def predict(params, X):
    hidden = np.tanh(X @ params["W1"] + params["b1"])
    return (hidden @ params["W2"] + params["b2"])[:, 0]


def loss_and_accuracy(params, X, y):
    """Logistic loss, and the fraction classified right as the auxiliary value."""
    margin = y * predict(params, X)
    loss = np.mean(np.log1p(np.exp(-margin)))
    accuracy = np.mean(margin.value > 0)   # .value: plain numbers, no derivative
    return loss, accuracy


def loss(params, X, y):
    return np.mean(np.log1p(np.exp(-y * predict(params, X))))


def hand_gradient(params, X, y):
    """Backpropagation written out (the oracle the example checks itself against)."""
    hidden = np.tanh(X @ params["W1"] + params["b1"])
    margin = y * (hidden @ params["W2"] + params["b2"])[:, 0]
    d_out = (-y / (1.0 + np.exp(margin)) / len(y))[:, None]
    d_hidden = (d_out @ params["W2"].T) * (1.0 - hidden ** 2)
    return {"W1": X.T @ d_hidden, "b1": d_hidden.sum(0),
            "W2": hidden.T @ d_out, "b2": d_out.sum(0)}


def main():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 4))
    y = np.where(X[:, 0] * X[:, 1] + 0.3 * X[:, 2] > 0, 1.0, -1.0)   # not linearly separable
    params = init(rng)

    (first_loss, first_accuracy), grads = pyad.value_and_grad(loss_and_accuracy, has_aux=True)(
        params, X, y)
    want = hand_gradient(params, X, y)
    error = max(np.max(np.abs(grads[k] - want[k])) / np.max(np.abs(want[k])) for k in want)
    print(f"gradient keys: {sorted(grads)}")
    print(f"gradient vs hand backprop, max relative error: {error:.3e}")

    step = pyad.grad(loss, cache=True)      # one tape, replayed; X, y are its parameters
    for _ in range(300):
        g = step(params, X, y)
        params = {k: params[k] - 1.0 * g[k] for k in params}
    (last_loss, last_accuracy), _ = pyad.value_and_grad(loss_and_accuracy, has_aux=True)(
        params, X, y)
    info = step.cache_info()
    print(f"loss: {float(first_loss):.6f} -> {float(last_loss):.6f}")
    print(f"accuracy: {first_accuracy:.3f} -> {last_accuracy:.3f}")
    print(f"tapes recorded by the training loop: {info['records']} (300 steps)")


if __name__ == "__main__":
    main()
