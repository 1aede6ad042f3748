"""Product rows: x @ W, W @ x, x @ y and friends record ONE row that calls BLAS in
every sweep (values, tangent, reverse, forward-over-reverse, vector, batched),
on both backends."""
import numpy as np
import pytest

import pyad
from pyad import serialize

from helpers import central_diff_grad

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


def _point(size, seed=0):
    return np.random.default_rng(seed).normal(size=size)


def _product_rows(tape):
    ops = tape.stats()["ops"]
    return sum(ops.get(name, 0) for name in PRODUCT_OPS)


def _rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.max(np.abs(a - b)) / max(1.0, np.max(np.abs(b)))


@pytest.fixture(params=sorted(CASES))
def case(request):
    return request.param


def test_value_gradient_and_row_count(backend, case):
    f, size, rows = CASES[case]
    z = _point(size)
    tape = pyad.trace(f, z, backend=backend)
    assert _product_rows(tape) == rows, tape.stats()["ops"]
    for seed in (1, 2):
        x = _point(size, seed)
        np.testing.assert_allclose(tape(x), f(x), rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(tape.gradient(x), central_diff_grad(f, x), rtol=1e-6, atol=1e-8)


def test_forward_and_reverse_agree(backend, case):
    f, size, _ = CASES[case]
    tape = pyad.trace(f, _point(size), backend=backend)
    x, v = _point(size, 3), _point(size, 4)
    _, jv = tape.jvp(x, v)
    assert _rel(jv, tape.gradient(x) @ v) < 1e-12


def test_hvp_matches_differences_of_the_gradient(backend, case):
    f, size, _ = CASES[case]
    tape = pyad.trace(f, _point(size), backend=backend)
    x, v = _point(size, 5), _point(size, 6)
    h = 1e-6
    fd = (tape.gradient(x + h * v) - tape.gradient(x - h * v)) / (2 * h)
    np.testing.assert_allclose(tape.hvp(x, v), fd, rtol=1e-6, atol=1e-7)
    # the vector second sweep (all directions at once) agrees with one at a time
    H = tape.hessian(x)
    np.testing.assert_allclose(H @ v, tape.hvp(x, v), rtol=1e-12, atol=1e-12)


def test_batch_equals_a_loop_over_points(backend, case):
    f, size, _ = CASES[case]
    tape = pyad.trace(f, _point(size), backend=backend)
    X = np.stack([_point(size, s) for s in range(10, 15)])
    V = np.stack([_point(size, s) for s in range(20, 25)])
    np.testing.assert_allclose(tape(X, batch=True), [tape(x) for x in X], rtol=1e-13)
    np.testing.assert_allclose(tape.gradient(X, batch=True), [tape.gradient(x) for x in X],
                               rtol=1e-12, atol=1e-13)
    _, jv = tape.jvp(X, V, batch=True)
    np.testing.assert_allclose(jv, [tape.jvp(x, v)[1] for x, v in zip(X, V)],
                               rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(tape.hvp(X, V, batch=True),
                               [tape.hvp(x, v) for x, v in zip(X, V)], rtol=1e-12, atol=1e-13)


def test_save_load_round_trip(backend, case):
    f, size, rows = CASES[case]
    tape = pyad.trace(f, _point(size), backend=backend)
    for other in ("c", "python"):
        back = serialize.loads(serialize.dumps(tape), backend=other)
        assert _product_rows(back) == rows
        x, v = _point(size, 8), _point(size, 9)
        np.testing.assert_allclose(back(x), tape(x), rtol=1e-13)
        np.testing.assert_allclose(back.gradient(x), tape.gradient(x), rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(back.hvp(x, v), tape.hvp(x, v), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("name", sorted(VECTOR_CASES))
def test_jacobian_modes_agree(backend, name):
    f, size = VECTOR_CASES[name]
    tape = pyad.trace(f, _point(size), backend=backend)
    x = _point(size, 11)
    Jf = tape.jacobian(x, mode="forward")
    Jr = tape.jacobian(x, mode="reverse")
    assert _rel(Jf, Jr) < 1e-12
    h = 1e-6
    fd = np.stack([(f(x + h * e) - f(x - h * e)) / (2 * h) for e in np.eye(size)], axis=-1)
    np.testing.assert_allclose(Jf, fd, rtol=1e-6, atol=1e-8)
    # batched Jacobians (vector sweeps with lanes per point) equal a loop
    X = np.stack([_point(size, s) for s in (12, 13, 14)])
    for mode in ("forward", "reverse"):
        np.testing.assert_allclose(tape.jacobian(X, mode=mode, batch=True),
                                   [tape.jacobian(x, mode=mode) for x in X],
                                   rtol=1e-12, atol=1e-13)


def test_backends_agree_on_every_derivative(case):
    f, size, _ = CASES[case]
    z, x, v = _point(size), _point(size, 15), _point(size, 16)
    c, p = (pyad.trace(f, z, backend=b) for b in ("c", "python"))
    assert _rel(c.gradient(x), p.gradient(x)) < 1e-12
    assert _rel(c.hvp(x, v), p.hvp(x, v)) < 1e-12


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
