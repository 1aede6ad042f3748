"""Product rows: x @ W, W @ x, x @ y and friends record ONE row that calls BLAS in
every sweep (values, tangent, reverse, forward-over-reverse, vector, batched),
on both backends."""
import numpy as np
import pytest

import pyad

import row_cases

_R = np.random.default_rng(7)
W34 = _R.normal(size=(3, 4))
W42 = _R.normal(size=(4, 2))
W23 = _R.normal(size=(2, 3))
W43 = _R.normal(size=(4, 3))
C3 = _R.normal(size=3)

PRODUCT_OPS = ("matmul", "matmul_c", "rmatmul_c")

# name: (f of a flat vector z, size of z, product rows f records). Every f is
# nonlinear after the product so that second derivatives test the second sweeps.
CASES = {
    "active@const": (lambda z: np.sum(np.sin(z.reshape(3, 4) @ W42)), 12, 1),
    "const@active": (lambda z: np.sum(np.sin(W23 @ z.reshape(3, 4))), 12, 1),
    "active@active": (lambda z: np.sum(np.sin(z[:12].reshape(3, 4) @ z[12:].reshape(4, 2))),
                      20, 1),
    "vector@matrix": (lambda z: np.sum(np.cos(z @ W34)), 3, 1),
    "matrix@vector": (lambda z: np.sum(np.cos(W43 @ z)), 3, 1),
    "vector@vector": (lambda z: np.sin(z[:3] @ z[3:]), 6, 1),
    "vector@const_vector": (lambda z: np.sin(z @ C3), 3, 1),
    "outer": (lambda z: np.sum(np.sin(np.outer(z[:3], z[3:]))), 7, 1),
    "outer_const": (lambda z: np.sum(np.sin(np.outer(z, C3))), 4, 1),
    "x.T@W": (lambda z: np.sum(np.sin(z.reshape(4, 3).T @ W42)), 12, 1),
    "W@x.T": (lambda z: np.sum(np.sin(W23 @ z.reshape(4, 3).T)), 12, 1),
    "x.T@x": (lambda z: np.sum(np.sin(z.reshape(4, 3).T @ z.reshape(4, 3))), 12, 1),
    "x@y.T": (lambda z: np.sum(np.sin(z[:6].reshape(2, 3) @ z[6:].reshape(4, 3).T)), 18, 1),
    "x[:, ::2]@W": (lambda z: np.sum(np.sin(z.reshape(2, 6)[:, ::2] @ W34)), 12, 1),
    "stack@W": (lambda z: np.sum(np.sin(z.reshape(2, 3, 4) @ W42)), 24, 2),
    "np.dot": (lambda z: np.sum(np.sin(np.dot(z.reshape(3, 4), W42))), 12, 1),
    "Array.dot": (lambda z: np.sum(np.sin(z.reshape(3, 4).dot(W42))), 12, 1),
    "np.inner": (lambda z: np.sum(np.sin(np.inner(z.reshape(2, 3), W43))), 6, 1),
    "np.tensordot": (lambda z: np.sum(np.sin(np.tensordot(z.reshape(2, 3, 4), W34, axes=([1, 2], [0, 1])))),
                     24, 1),
    "einsum ij,jk->ik": (lambda z: np.sum(np.sin(np.einsum("ij,jk->ik", z.reshape(3, 4), W42))),
                         12, 1),
    "einsum ij,kj->ki": (lambda z: np.sum(np.sin(np.einsum("ij,kj->ki", z[:12].reshape(3, 4),
                                                             z[12:].reshape(2, 4)))), 20, 1),
    "einsum bij,bjk->bik": (lambda z: np.sum(np.sin(np.einsum(
        "bij,bjk->bik", z[:12].reshape(2, 2, 3), z[12:].reshape(2, 3, 2)))), 24, 2),
}

# the same products with a vector result, for Jacobians
VECTOR_CASES = {
    "active@const": (lambda z: np.sin(z.reshape(3, 4) @ W42).ravel(), 12),
    "const@active": (lambda z: np.tanh(W23 @ z.reshape(3, 4)).ravel(), 12),
    "active@active": (lambda z: np.sin(z[:12].reshape(3, 4) @ z[12:].reshape(4, 2)).ravel(), 20),
    "x.T@x": (lambda z: np.sin(z.reshape(4, 3).T @ z.reshape(4, 3)).ravel(), 12),
    "W@x.T": (lambda z: (W23 @ z.reshape(4, 3).T).ravel() ** 2, 12),
}


class TestCases(row_cases.CaseChecks):
    CASES, VECTOR_CASES, OPS = CASES, VECTOR_CASES, PRODUCT_OPS


pytest_generate_tests = row_cases.generate_tests


def _product_rows(tape):
    return TestCases().rows(tape)


def test_row_count_does_not_grow_with_the_data(backend):
    """The logistic-regression shape: X @ w is one row whatever X's size."""
    counts = set()
    for n, d in ((10, 3), (200, 30)):
        X = np.random.default_rng(n).normal(size=(n, d))
        ones = np.ones(n)  # the sum as a product too: a summing tree grows with log n
        tape = pyad.trace(lambda w: ones @ np.log1p(np.exp(-(X @ w))), np.zeros(d),
                          backend=backend)
        counts.add(tape.n_ops)
        assert _product_rows(tape) == 2
    assert len(counts) == 1 and counts.pop() <= 6


def test_mlp_gradient_against_hand_written_backprop(backend):
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(16, 5)), rng.normal(size=16)
    W1, b1, W2 = rng.normal(size=(5, 4)), rng.normal(size=4), rng.normal(size=(4, 1))

    def loss(w):
        A, c = w[:20].reshape(5, 4), w[20:24]
        B = w[24:].reshape(4, 1)
        return np.mean((np.tanh(X @ A + c) @ B - y[:, None]) ** 2)

    w = np.concatenate([W1.ravel(), b1, W2.ravel()])
    tape = pyad.trace(loss, w, backend=backend)
    assert _product_rows(tape) == 2
    H = np.tanh(X @ W1 + b1)
    r = 2 * (H @ W2 - y[:, None]) / len(y)
    gW2 = H.T @ r
    dH = (r @ W2.T) * (1 - H ** 2)
    expected = np.concatenate([(X.T @ dH).ravel(), dH.sum(0), gW2.ravel()])
    np.testing.assert_allclose(tape.gradient(w), expected, rtol=1e-12, atol=1e-14)


def test_table_and_stats_show_one_product_row(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.arange(12.0))
        y = x.reshape(3, 4) @ W42
        tape.output(np.sum(y))
    text = str(tape.table())
    lines = [ln for ln in text.splitlines() if "@" in ln]
    assert len(lines) == 1, text
    # the inputs are v_{-11} .. v_0 in the textbook numbering
    assert "v[-11:1] @ c[0:8] (3x4 @ 4x2)" in lines[0], lines[0]
    assert tape.stats()["ops"]["matmul_c"] == 1


def test_shape_errors_are_numpy_errors(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.ones((3, 4)))
        with pytest.raises(ValueError):
            x @ np.ones((3, 2))
        with pytest.raises(ValueError):
            np.ones((2, 2)) @ x
        with pytest.raises(ValueError):
            x @ x
        empty = x[:, :0] @ np.ones((0, 2))  # an empty sum: zeros
        np.testing.assert_array_equal(empty.value, np.zeros((3, 2)))
        assert (x[:0] @ np.ones((4, 2))).shape == (0, 2)


def _store_product_row(backend):
    """A tape whose row 1 is a product row (after the input row)."""
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.arange(1.0, 7.0))
        tape.output(np.sum(x.reshape(2, 3) @ W34))
    return tape


@pytest.mark.parametrize("corrupt", ["operand past its row", "shape product", "bad flags",
                                     "no block entry", "constant out of range"])
def test_corrupt_product_row_is_refused_on_load(backend, corrupt):
    tape = _store_product_row(backend)
    arrays = tape._store.export()
    k = int(np.flatnonzero(np.isin(arrays["op"], [pyad.ops.CODE[n] for n in PRODUCT_OPS]))[0])
    blocks = arrays["blocks"].reshape(-1, 6)
    e = int(np.flatnonzero(blocks[:, 0] == k)[0])
    if corrupt == "operand past its row":
        arrays["a"][k] = arrays["first"][k] - 5   # A reads 6 slots: the last is the row's own
    elif corrupt == "shape product":
        blocks[e, 3] += 1                         # k no longer matches the operands' sizes
        blocks[e, 1] = blocks[e, 2] * blocks[e, 4] + 1
    elif corrupt == "bad flags":
        blocks[e, 5] = 2                          # a transposed constant
    elif corrupt == "no block entry":
        keep = np.ones(len(blocks), bool)
        keep[e] = False
        arrays["blocks"] = blocks[keep].reshape(-1)
        arrays["first"][k + 1:] -= blocks[e, 1] - 1
        arrays["val"] = np.delete(arrays["val"], np.s_[arrays["first"][k] + 1:
                                                       arrays["first"][k] + blocks[e, 1]])
    else:
        arrays["b"][k] = arrays["consts"].size - 3
    for other in ("c", "python"):
        store_cls = type(pyad.trace(lambda v: v * 1.0, 1.0, backend=other)._store)
        with pytest.raises(pyad.TapeFormatError):
            store_cls.from_arrays(arrays)
