"""Cached transforms (issue 14 item 7): pyad.jit(pyad.grad(f)) and cache=True keep
one tape per input signature. Both backends."""
import numpy as np
import pytest

import pyad


def rosen(x):
    return ((1 - x[:-1]) ** 2 + 100 * (x[1:] - x[:-1] ** 2) ** 2).sum()


def test_replays_on_the_same_signature_and_records_a_new_shape(backend):
    g = pyad.jit(pyad.grad(rosen, backend=backend))
    ref = pyad.grad(rosen, backend=backend)
    x = np.array([0.5, 1.5, -0.3])
    for k in range(3):
        np.testing.assert_allclose(g(x + k), ref(x + k), rtol=1e-14)
    assert g.cache_info() == {"tapes": 1, "records": 1, "retraces": 0}
    np.testing.assert_allclose(g(np.arange(5.0)), ref(np.arange(5.0)), rtol=1e-14)
    assert g.cache_info()["tapes"] == 2 and g.cache_info()["records"] == 2
    g.cache_clear()
    g(x)
    assert g.cache_info() == {"tapes": 1, "records": 3, "retraces": 0}


def test_a_flipped_branch_re_records(backend):
    def f(x):
        return (x * x).sum() if x[0] > 0 else (x ** 3).sum()

    g = pyad.grad(f, cache=True, backend=backend)
    np.testing.assert_allclose(g(np.array([1.0, 2.0])), [2.0, 4.0])
    np.testing.assert_allclose(g(np.array([-1.0, 2.0])), [3.0, 12.0])
    info = g.cache_info()
    assert info["tapes"] == 1 and info["retraces"] == 1


def test_structure_and_dtype_are_part_of_the_key(backend):
    def f(p):
        leaves = p.values() if isinstance(p, dict) else p
        return sum((v * v).sum() for v in leaves)

    g = pyad.jit(pyad.grad(f, backend=backend))
    a, b = np.array([1.0, 2.0]), np.array([3.0])
    assert isinstance(g({"a": a, "b": b}), dict)
    assert isinstance(g((a, b)), tuple)
    assert g.cache_info()["tapes"] == 2
    g32 = g({"a": a.astype(np.float32), "b": b})
    assert g32["a"].dtype == np.float32 and g32["b"].dtype == np.float64
    assert g.cache_info()["tapes"] == 3
    g({"a": a + 1, "b": b - 1})
    assert g.cache_info()["tapes"] == 3


def test_arguments_outside_argnums_are_parameters(backend):
    def loss(w, X, y, scale=1.0):
        return scale * ((X @ w - y) ** 2).sum()

    rng = np.random.default_rng(0)
    w, X, y = rng.normal(size=3), rng.normal(size=(5, 3)), rng.normal(size=5)
    g = pyad.jit(pyad.grad(loss, argnums=0, backend=backend))
    for k in range(3):
        Xk, yk = X + k, y - k
        np.testing.assert_allclose(g(w, Xk, yk), 2 * Xk.T @ (Xk @ w - yk), rtol=1e-12)
    assert g.cache_info()["records"] == 1
    np.testing.assert_allclose(g(w, X, y, scale=3.0), 6 * X.T @ (X @ w - y), rtol=1e-12)
    assert g.cache_info()["records"] == 2                      # a keyword is static
    vg = pyad.value_and_grad(loss, argnums=(0, 2), backend=backend, cache=True)
    value, (gw, gy) = vg(w, X, y)
    assert value == pytest.approx(loss(w, X, y), rel=1e-13) and gy.shape == (5,)


def test_static_arguments_key_the_cache(backend):
    def f(x, how):
        return (x * x).sum() if how == "sq" else np.sin(x).sum()

    g = pyad.grad(f, cache=True, backend=backend)
    x = np.array([0.5, 1.0])
    np.testing.assert_allclose(g(x, "sq"), 2 * x)
    np.testing.assert_allclose(g(x, "sin"), np.cos(x))
    assert g.cache_info()["tapes"] == 2
    with pytest.raises(TypeError, match="hashable"):
        g(x, ["not", "hashable"])


def test_plain_floats_take_the_lean_path_and_agree(backend):
    def p1(a, b, c):
        g = pyad.sin(a * b) + pyad.exp(c - a / b)
        return pyad.log(g * g) * c

    g = pyad.jit(pyad.grad(p1, argnums=(0, 1, 2), backend=backend))
    ref = pyad.grad(p1, argnums=(0, 1, 2), backend=backend)
    for point in ((43.0, 3.0, 2.0), (1.0, 2.0, 0.5)):
        assert g(*point) == pytest.approx(ref(*point), rel=1e-14)
    assert g(1, 2, 3) == pytest.approx(ref(1.0, 2.0, 3.0), rel=1e-14)    # ints: slow path
    assert g.cache_info()["tapes"] == 1


def test_jacobian_and_hessian_cached(backend):
    f = lambda x: np.sin(x) * x.sum()
    J = pyad.jacobian(f, cache=True, backend=backend)
    H = pyad.jit(pyad.hessian(rosen, backend=backend))
    x = np.array([0.2, 0.4, 0.6])
    for k in range(2):
        np.testing.assert_allclose(J(x + k), pyad.jacobian(f, backend=backend)(x + k),
                                   rtol=1e-13)
        np.testing.assert_allclose(H(x + k), pyad.hessian(rosen, backend=backend)(x + k),
                                   rtol=1e-13)
    assert J.cache_info()["records"] == H.cache_info()["records"] == 1


def test_what_cannot_be_cached_is_refused():
    with pytest.raises(TypeError, match="pyad transform"):
        pyad.jit(rosen)
    with pytest.raises(ValueError, match="has_aux"):
        pyad.jit(pyad.grad(lambda x: (x.sum(), 1), has_aux=True))
    g = pyad.grad(lambda x, y: (x * y).sum(), argnums=1, cache=True)
    with pytest.raises(TypeError, match="argument 1 is differentiated"):
        g(np.ones(2), "text")


def test_plain_floats_re_record_where_a_branch_flips(backend):
    def f(a, b):
        return a * b if a > 0 else a * a * b

    g = pyad.jit(pyad.grad(f, argnums=(0, 1), backend=backend))
    assert g(2.0, 3.0) == pytest.approx((3.0, 2.0))
    assert g(2.0, 5.0) == pytest.approx((5.0, 2.0))
    assert g(-2.0, 3.0) == pytest.approx((-12.0, 4.0))
    assert g.cache_info() == {"tapes": 1, "records": 1, "retraces": 1}
