"""A constant array a traced function reads (a closure's X, a captured y) enters
the tape with the value it had at record time, as numpy users expect: mutating
the caller's array afterwards changes neither replay nor derivatives."""
import numpy as np
import pytest

import pyad

RNG = np.random.default_rng(7)


def _programs():
    """(name, f(w, X, c) of active w with constants X (3x4) and c (4,))"""
    return [
        ("product", lambda w, X, c: np.sum(np.tanh(X @ w))),
        ("product, constant on the right", lambda w, X, c: np.sum((w[:3] @ X) ** 2)),
        ("elementwise", lambda w, X, c: np.sum(w * c + c ** 2 * np.exp(w))),
        ("broadcast row", lambda w, X, c: np.sum((X + w) ** 2)),
        ("broadcast column", lambda w, X, c: np.sum(np.log1p((X[:, :1] * w) ** 2))),
    ]


@pytest.mark.parametrize("name,f", _programs(), ids=[p[0] for p in _programs()])
def test_mutating_a_constant_after_trace_changes_nothing(backend, name, f):
    w = RNG.standard_normal(4)
    X, c = RNG.standard_normal((3, 4)), RNG.standard_normal(4)
    X0, c0 = X.copy(), c.copy()
    tape = pyad.trace(lambda v: f(v, X, c), w, backend=backend)
    value, grad = tape(w), tape.gradient(w)
    X[...] = 100.0          # the caller reuses its buffers
    c[...] = -3.0
    w2 = w + 0.25
    assert tape(w) == value
    np.testing.assert_array_equal(tape.gradient(w), grad)
    np.testing.assert_allclose(tape(w2), f(w2, X0, c0), rtol=1e-13)
    want = pyad.grad(lambda v: f(v, X0, c0), backend=backend)(w2)
    np.testing.assert_allclose(tape.gradient(w2), want, rtol=1e-13, atol=1e-14)
    h = tape.hvp(w2, np.ones(4))
    np.testing.assert_allclose(h, pyad.hvp(lambda v: f(v, X0, c0), w2, np.ones(4),
                                           backend=backend), rtol=1e-12, atol=1e-13)


def test_a_constant_mutated_between_grad_calls_is_read_afresh(backend):
    """pyad.grad records at each call: the constant's current value counts."""
    X = RNG.standard_normal((3, 4))
    g = pyad.grad(lambda v: np.sum((X @ v) ** 2), backend=backend)
    w = RNG.standard_normal(4)
    first = g(w)
    X *= 2.0
    np.testing.assert_allclose(g(w), 4.0 * first, rtol=1e-13)
