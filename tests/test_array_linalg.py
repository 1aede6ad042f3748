"""Products of active arrays: dot, matmul/@, inner, outer, linalg.norm, einsum.

Oracles: numpy values; closed-form gradients of sum(W * (A @ B)) (W B^T and
A^T W), of x^T M x ((M + M^T) x, Hessian M + M^T), of ||x|| (x / ||x||);
central differences; tape.n_ops for the cost of constant-matrix products.
"""
import numpy as np
import pytest

import pyad
from helpers import central_diff_grad


def _rand(shape, seed):
    return np.random.default_rng(seed).normal(size=shape)


# Shapes for A @ B: (1-d or 2-d) x (1-d or 2-d), and a stack.
MATMUL_SHAPES = [
    ((3,), (3,)),
    ((2, 3), (3,)),
    ((3,), (3, 4)),
    ((2, 3), (3, 4)),
    ((1, 3), (3, 1)),
    ((4, 1), (1, 3)),
]
MODES = ["active@active", "active@const", "const@active"]


def _matmul_grads(a, b, w):
    """Gradients of sum(w * (a @ b)) wrt a and b, by closed form."""
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    w2 = np.asarray(w).reshape(a2.shape[0], b2.shape[1])
    ga = (w2 @ b2.T).reshape(a.shape)
    gb = (a2.T @ w2).reshape(b.shape)
    return ga, gb


PRODUCTS = {
    "@": lambda a, b: a @ b,
    "np.matmul": lambda a, b: np.matmul(a, b),
    "np.dot": lambda a, b: np.dot(a, b),
    # ndarray.dot(active) cannot dispatch (numpy converts its argument), so the
    # method form is used only with an active left operand.
    "dot_method": lambda a, b: a.dot(b) if isinstance(a, pyad.Array) else np.dot(a, b),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=[f"{s[0]}@{s[1]}" for s in MATMUL_SHAPES])
@pytest.mark.parametrize("prod", list(PRODUCTS), ids=list(PRODUCTS))
def test_matmul_values_and_gradients(backend, prod, shapes, mode):
    op = PRODUCTS[prod]
    a0, b0 = _rand(shapes[0], 1), _rand(shapes[1], 2)
    ref = a0 @ b0
    w = _rand(np.shape(ref), 3)
    ga_ref, gb_ref = _matmul_grads(a0, b0, w)

    def out(r):
        return (r * w).sum() if np.ndim(ref) else r * float(w)

    if mode == "active@active":
        val, (ga, gb) = pyad.value_and_grad(lambda a, b: out(op(a, b)), argnums=(0, 1),
                                            backend=backend)(a0, b0)
        np.testing.assert_allclose(ga, ga_ref, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(gb, gb_ref, rtol=1e-12, atol=1e-14)
    elif mode == "active@const":
        val, ga = pyad.value_and_grad(lambda a: out(op(a, b0)), backend=backend)(a0)
        np.testing.assert_allclose(ga, ga_ref, rtol=1e-12, atol=1e-14)
    else:
        val, gb = pyad.value_and_grad(lambda b: out(op(a0, b)), backend=backend)(b0)
        np.testing.assert_allclose(gb, gb_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(val, (ref * w).sum(), rtol=1e-12)

    with pyad.Tape(backend=backend) as tape:
        a = tape.input(a0) if mode != "const@active" else a0
        b = tape.input(b0) if mode != "active@const" else b0
        r = op(a, b)
        assert np.shape(r) == np.shape(ref)
        np.testing.assert_allclose(pyad.value(r), ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("mode", MODES)
def test_matmul_stacks(backend, mode):
    a0, b0 = _rand((2, 3, 4), 4), _rand((4, 2), 5)
    ref = a0 @ b0
    w = _rand(ref.shape, 6)

    def f_np(a, b):
        return ((a @ b) * w).sum()

    if mode == "active@active":
        ga, gb = pyad.grad(f_np, argnums=(0, 1), backend=backend)(a0, b0)
    elif mode == "active@const":
        ga = pyad.grad(lambda a: f_np(a, b0), backend=backend)(a0)
        gb = None
    else:
        # constant stack @ active matrix
        gb = pyad.grad(lambda b: f_np(a0, b), backend=backend)(b0)
        ga = None
    if ga is not None:
        np.testing.assert_allclose(ga, central_diff_grad(lambda a: f_np(a, b0), a0),
                                   rtol=1e-7, atol=1e-8)
    if gb is not None:
        np.testing.assert_allclose(gb, central_diff_grad(lambda b: f_np(a0, b), b0),
                                   rtol=1e-7, atol=1e-8)


def test_matmul_stack_both_sides(backend):
    a0, b0 = _rand((2, 2, 3), 7), _rand((2, 3, 2), 8)
    f_np = lambda a, b: ((a @ b) ** 2).sum()                 # noqa: E731
    ga, gb = pyad.grad(f_np, argnums=(0, 1), backend=backend)(a0, b0)
    np.testing.assert_allclose(ga, central_diff_grad(lambda a: f_np(a, b0), a0), rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(gb, central_diff_grad(lambda b: f_np(a0, b), b0), rtol=1e-7, atol=1e-8)


def test_matmul_shape_mismatch_raises(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.ones(3))
        m = tape.input(np.ones((4, 2)))
        with pytest.raises(ValueError):
            x @ m
        with pytest.raises(ValueError):
            x @ np.ones((4, 2))
        with pytest.raises(ValueError):
            np.ones((2, 4)) @ x


COST_OPS = {
    "M@x": lambda M, x: M @ x,
    "x@M": lambda M, x: x @ M,
    "np.dot(M,x)": lambda M, x: np.dot(M, x),
    "np.dot(x,M)": lambda M, x: np.dot(x, M),
    "x.dot(M)": lambda M, x: x.dot(M),
    "np.matmul(M,x)": lambda M, x: np.matmul(M, x),
}


@pytest.mark.parametrize("label", list(COST_OPS))
def test_constant_matrix_times_active_vector_is_one_product_row(backend, label):
    n = 6
    M = _rand((n, n), 9)
    x0 = _rand(n, 31)
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(x0)
        n0, s0 = tape.n_ops, tape.n_slots
        y = COST_OPS[label](M, x)
        assert tape.n_ops - n0 == 1
        assert tape.n_slots - s0 == n
        assert y.shape == (n,)
        np.testing.assert_allclose(y.value, COST_OPS[label](M, x0), rtol=1e-13)


def test_quadratic_form_gradient_hessian_and_replay(backend):
    n = 5
    M = _rand((n, n), 10)
    b = _rand(n, 11)

    def f(x):
        return x @ np.dot(M, x) + np.dot(b, x)

    x0 = _rand(n, 12)
    tape = pyad.trace(f, x0, backend=backend)
    H = M + M.T
    rng = np.random.default_rng(13)
    for _ in range(3):
        x1, v = rng.normal(size=n), rng.normal(size=n)
        np.testing.assert_allclose(tape(x1), x1 @ M @ x1 + b @ x1, rtol=1e-12)
        np.testing.assert_allclose(tape.gradient(x1), H @ x1 + b, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(tape.hvp(x1, v), H @ v, rtol=1e-12, atol=1e-13)
        _, jv = tape.jvp(x1, v)
        np.testing.assert_allclose(jv, (H @ x1 + b) @ v, rtol=1e-12, atol=1e-13)


def test_least_squares_gradient(backend):
    A = _rand((6, 3), 14)
    y = _rand(6, 15)
    x0 = _rand(3, 16)
    f = lambda x: ((A @ x - y) ** 2).sum()                    # noqa: E731
    g = pyad.grad(f, backend=backend)(x0)
    np.testing.assert_allclose(g, 2 * A.T @ (A @ x0 - y), rtol=1e-12)
    hv = pyad.hvp(f, x0, np.array([1.0, 0.0, 0.0]), backend=backend)
    np.testing.assert_allclose(hv, 2 * A.T @ A[:, 0], rtol=1e-12)


def test_matrix_input_matrix_product_gradient(backend):
    X0 = _rand((3, 3), 17)
    C = _rand((3, 3), 18)
    # f(X) = trace(C X X) ; grad = (C X)^T + (X C)^T
    f = lambda X: np.trace(C @ X @ X)                          # noqa: E731
    g = pyad.grad(f, backend=backend)(X0)
    np.testing.assert_allclose(g, (C @ X0).T + (X0 @ C).T, rtol=1e-12, atol=1e-13)


def test_dot_with_scalar(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.array([1.0, 2.0]))
        r = np.dot(x, 3.0)
        np.testing.assert_array_equal(r.value, [3.0, 6.0])
        r2 = np.dot(2.0, x)
        np.testing.assert_array_equal(r2.value, [2.0, 4.0])
        tape.output(r.sum() + r2.sum())
    np.testing.assert_array_equal(tape.gradient(), [5.0, 5.0])


def test_dot_of_empty_active_vectors(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.array([1.0, 2.0]))
        e = x[:0]
        assert pyad.value(np.dot(e, e)) == 0.0
        assert pyad.value(e @ e) == 0.0


def test_empty_active_times_constant_matrix(backend):
    # numpy: zeros(0) @ ones((0, 3)) == zeros(3); ones((3, 0)) . zeros(0) == zeros(3)
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.array([1.0, 2.0]))
        e = x[:0]
        z = np.dot(e, np.ones((0, 3)))
        assert z.shape == (3,)
        np.testing.assert_array_equal(z.value, np.zeros(3))
        z2 = np.dot(np.ones((3, 0)), e)
        assert z2.shape == (3,)
        np.testing.assert_array_equal(z2.value, np.zeros(3))
        z3 = e[None, :] @ np.ones((0, 2))
        assert z3.shape == (1, 2)
        np.testing.assert_array_equal(z3.value, np.zeros((1, 2)))


# ---- inner, outer ----------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_inner(backend, mode):
    a0, b0 = _rand(4, 19), _rand(4, 20)
    A0 = _rand((2, 4), 21)
    if mode == "active@active":
        ga, gb = pyad.grad(lambda a, b: np.inner(a, b), argnums=(0, 1), backend=backend)(a0, b0)
        np.testing.assert_allclose(ga, b0, rtol=1e-14)
        np.testing.assert_allclose(gb, a0, rtol=1e-14)
    elif mode == "active@const":
        val, g = pyad.value_and_grad(lambda a: np.inner(a, b0), backend=backend)(a0)
        np.testing.assert_allclose(val, np.inner(a0, b0), rtol=1e-14)
        np.testing.assert_allclose(g, b0, rtol=1e-14)
    else:
        val, g = pyad.value_and_grad(lambda b: np.inner(a0, b), backend=backend)(b0)
        np.testing.assert_allclose(val, np.inner(a0, b0), rtol=1e-14)
        np.testing.assert_allclose(g, a0, rtol=1e-14)
    # 2-d with 1-d: inner over the last axis
    with pyad.Tape(backend=backend) as tape:
        A = tape.input(A0)
        r = np.inner(A, b0)
        assert r.shape == (2,)
        np.testing.assert_allclose(r.value, np.inner(A0, b0), rtol=1e-14)
        tape.output(r.sum())
    np.testing.assert_allclose(tape.gradient(), np.broadcast_to(b0, (2, 4)), rtol=1e-14)


@pytest.mark.parametrize("mode", ["active,const", "const,active", "active,active"])
def test_inner_of_two_matrices(backend, mode):
    # numpy: inner(a, b)[i, j] = sum_k a[i, k] * b[j, k]  -> shape (2, 3)
    a0, b0 = _rand((2, 4), 40), _rand((3, 4), 41)
    w = _rand((2, 3), 42)
    ref = np.inner(a0, b0)
    if mode == "active,const":
        val, ga = pyad.value_and_grad(lambda a: (np.inner(a, b0) * w).sum(), backend=backend)(a0)
        np.testing.assert_allclose(ga, w @ b0, rtol=1e-13)
    elif mode == "const,active":
        val, gb = pyad.value_and_grad(lambda b: (np.inner(a0, b) * w).sum(), backend=backend)(b0)
        np.testing.assert_allclose(gb, w.T @ a0, rtol=1e-13)
    else:
        val, (ga, gb) = pyad.value_and_grad(lambda a, b: (np.inner(a, b) * w).sum(),
                                            argnums=(0, 1), backend=backend)(a0, b0)
        np.testing.assert_allclose(ga, w @ b0, rtol=1e-13)
        np.testing.assert_allclose(gb, w.T @ a0, rtol=1e-13)
    np.testing.assert_allclose(val, (ref * w).sum(), rtol=1e-13)


def test_inner_of_same_shape_matrices_has_numpy_shape(backend):
    a0 = _rand((2, 4), 43)
    with pyad.Tape(backend=backend) as tape:
        a = tape.input(a0)
        r = np.inner(a, a0)
        assert np.shape(r) == (2, 2)
        np.testing.assert_allclose(pyad.value(r), np.inner(a0, a0), rtol=1e-13)


def test_inner_with_scalar_is_multiplication(backend):
    a0 = _rand((2, 4), 44)
    with pyad.Tape(backend=backend) as tape:
        a = tape.input(a0)
        for r in (np.inner(a, 2.0), np.inner(2.0, a)):
            assert np.shape(r) == (2, 4)
            np.testing.assert_allclose(pyad.value(r), 2.0 * a0, rtol=1e-15)


def test_outer_with_active_scalar(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.array([2.0, 3.0]))
        r = np.outer(x[0], np.array([1.0, 2.0, 3.0]))
        assert r.shape == (1, 3)
        np.testing.assert_allclose(r.value, [[2.0, 4.0, 6.0]])
        tape.output(r.sum())
    np.testing.assert_allclose(tape.gradient(), [6.0, 0.0])


@pytest.mark.parametrize("mode", MODES)
def test_outer(backend, mode):
    a0, b0 = _rand(3, 22), _rand(4, 23)
    w = _rand((3, 4), 24)
    f = lambda a, b: (np.outer(a, b) * w).sum()                # noqa: E731
    if mode == "active@active":
        ga, gb = pyad.grad(f, argnums=(0, 1), backend=backend)(a0, b0)
    elif mode == "active@const":
        ga, gb = pyad.grad(lambda a: f(a, b0), backend=backend)(a0), w.T @ a0
    else:
        ga, gb = w @ b0, pyad.grad(lambda b: f(a0, b), backend=backend)(b0)
    np.testing.assert_allclose(ga, w @ b0, rtol=1e-13)
    np.testing.assert_allclose(gb, w.T @ a0, rtol=1e-13)
    with pyad.Tape(backend=backend) as tape:
        a = tape.input(a0)
        r = np.outer(a, b0.reshape(2, 2))       # outer flattens its inputs
        assert r.shape == (3, 4)
        np.testing.assert_allclose(r.value, np.outer(a0, b0), rtol=1e-14)


# ---- norm ------------------------------------------------------------------------

def test_norm_vector(backend):
    x0 = _rand(5, 25)
    val, g = pyad.value_and_grad(lambda x: np.linalg.norm(x), backend=backend)(x0)
    np.testing.assert_allclose(val, np.linalg.norm(x0), rtol=1e-14)
    np.testing.assert_allclose(g, x0 / np.linalg.norm(x0), rtol=1e-13)
    g2 = pyad.grad(lambda x: np.linalg.norm(x, 2), backend=backend)(x0)
    np.testing.assert_allclose(g2, x0 / np.linalg.norm(x0), rtol=1e-13)
    # Hessian of ||x||: (I - u u^T) / ||x||
    v = _rand(5, 26)
    r = np.linalg.norm(x0)
    u = x0 / r
    hv = pyad.hvp(lambda x: np.linalg.norm(x), x0, v, backend=backend)
    np.testing.assert_allclose(hv, (v - u * (u @ v)) / r, rtol=1e-12, atol=1e-13)


def test_norm_matrix_frobenius_and_axis(backend):
    X0 = _rand((3, 4), 27)
    for kwargs in ({}, {"ord": "fro"}):
        val, g = pyad.value_and_grad(lambda X: np.linalg.norm(X, **kwargs), backend=backend)(X0)
        np.testing.assert_allclose(val, np.linalg.norm(X0, **kwargs), rtol=1e-14)
        np.testing.assert_allclose(g, X0 / np.linalg.norm(X0), rtol=1e-13)
    for axis in (0, 1, -1):
        for keepdims in (False, True):
            ref = np.linalg.norm(X0, axis=axis, keepdims=keepdims)
            with pyad.Tape(backend=backend) as tape:
                X = tape.input(X0)
                r = np.linalg.norm(X, axis=axis, keepdims=keepdims)
                assert r.shape == ref.shape
                np.testing.assert_allclose(r.value, ref, rtol=1e-14)
                tape.output(r.sum())
            np.testing.assert_allclose(
                tape.gradient(), X0 / np.linalg.norm(X0, axis=axis, keepdims=True), rtol=1e-13)


def test_norm_singular_value_ords_raise_typeerror(backend):
    # Vector ords are all supported (tests/test_hardening_numpy.py); the matrix
    # norms that need singular values are refused, never replaced by another norm.
    with pyad.Tape(backend=backend) as tape:
        X = tape.input(np.eye(2))
        for ord in (2, -2, "nuc"):
            with pytest.raises(TypeError, match="norm.*singular values"):
                np.linalg.norm(X, ord=ord)


# ---- einsum ----------------------------------------------------------------------

EINSUMS = [
    ("ij,jk->ik", (2, 3), (3, 4)),
    ("ij,kj->ik", (2, 3), (4, 3)),
    ("ij,jk->ki", (2, 3), (3, 4)),
    ("i,i->", (4,), (4,)),
    ("ij,j->i", (2, 3), (3,)),
    ("ij,ij->i", (2, 3), (2, 3)),
    ("ij,ij->", (2, 3), (2, 3)),
    ("i,j->ij", (3,), (2,)),
    ("bij,bjk->bik", (2, 2, 3), (2, 3, 2)),
    ("ij,jk->", (2, 3), (3, 2)),
    ("ji,jk->ik", (3, 2), (3, 4)),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("spec,sa,sb", EINSUMS, ids=[e[0] for e in EINSUMS])
def test_einsum_two_operands(backend, spec, sa, sb, mode):
    a0, b0 = _rand(sa, 28), _rand(sb, 29)
    ref = np.einsum(spec, a0, b0)
    w = _rand(np.shape(ref), 30)

    def f(a, b):
        r = np.einsum(spec, a, b)
        return (r * w).sum() if np.ndim(ref) else r * float(w)

    if mode == "active@active":
        ga, gb = pyad.grad(f, argnums=(0, 1), backend=backend)(a0, b0)
    elif mode == "active@const":
        ga, gb = pyad.grad(lambda a: f(a, b0), backend=backend)(a0), None
    else:
        ga, gb = None, pyad.grad(lambda b: f(a0, b), backend=backend)(b0)
    if ga is not None:
        np.testing.assert_allclose(ga, central_diff_grad(lambda a: f(a, b0), a0), rtol=1e-7, atol=1e-8)
    if gb is not None:
        np.testing.assert_allclose(gb, central_diff_grad(lambda b: f(a0, b), b0), rtol=1e-7, atol=1e-8)

    with pyad.Tape(backend=backend) as tape:
        a = tape.input(a0) if mode != "const@active" else a0
        b = tape.input(b0) if mode != "active@const" else b0
        r = np.einsum(spec, a, b)
        assert np.shape(r) == np.shape(ref)
        np.testing.assert_allclose(pyad.value(r), ref, rtol=1e-12, atol=1e-14)


def test_einsum_unsupported_forms_raise_typeerror(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.ones((2, 2)))
        with pytest.raises(TypeError, match="einsum"):
            np.einsum("ij,jk,kl->il", x, x, x)
        with pytest.raises(TypeError, match="einsum"):
            np.einsum("ij,jk", x, x)
