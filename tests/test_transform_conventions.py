"""JAX's calling conventions on every transform (issue 14 items 5 and 8):
has_aux, argnums (compared with the derivative of the partially applied
function), keyword arguments passed through, JAX's tuple form of jvp / vjp / hvp,
one set of mode names, and results that keep the input dtype."""
import numpy as np
import pytest

import pyad

A0 = np.array([0.5, -1.2, 2.0])
B0 = np.array([[0.3, 1.0], [-0.4, 0.2], [1.1, -0.6]])
C0 = 0.7


def f3(a, b, c):
    """A scalar function of three arguments."""
    return np.sum(np.sin(a) @ b) * c + np.sum(a ** 2) * np.sum(b) + c ** 3


def v3(a, b, c):
    """A vector function of three arguments."""
    return np.tanh(a @ b) * c + np.sum(a * a)


ARGS = (A0, B0, C0)


def partial_at(f, args, i):
    """f as a function of args[i] alone, the others fixed."""
    def g(x):
        call = list(args)
        call[i] = x
        return f(*call)
    return g


# ---- argnums on every transform ----

@pytest.mark.parametrize("i", [0, 1, 2, -1])
def test_argnums_int_is_the_derivative_of_the_partial_function(backend, i):
    g = partial_at(f3, ARGS, i)
    gv = partial_at(v3, ARGS, i)
    x = ARGS[i]
    d = np.cos(np.arange(np.size(x), dtype=float)).reshape(np.shape(x))
    d = float(d) if np.ndim(x) == 0 else d
    np.testing.assert_array_equal(pyad.grad(f3, argnums=i, backend=backend)(*ARGS),
                                  pyad.grad(g, backend=backend)(x))
    for mode in ("forward", "reverse"):
        np.testing.assert_array_equal(
            pyad.jacobian(v3, mode=mode, argnums=i, backend=backend)(*ARGS),
            pyad.jacobian(gv, mode=mode, backend=backend)(x))
    np.testing.assert_array_equal(pyad.hessian(f3, argnums=i, backend=backend)(*ARGS),
                                  pyad.hessian(g, backend=backend)(x))
    y, t = pyad.jvp(v3, ARGS, d, argnums=i, backend=backend)
    y2, t2 = pyad.jvp(gv, x, d, backend=backend)
    np.testing.assert_array_equal(t, t2)
    np.testing.assert_array_equal(y, y2)
    u = np.array([1.0, -2.0])
    np.testing.assert_array_equal(pyad.vjp(v3, ARGS, u, argnums=i, backend=backend)[1],
                                  pyad.vjp(gv, x, u, backend=backend)[1])
    np.testing.assert_array_equal(pyad.hvp(f3, ARGS, d, argnums=i, backend=backend),
                                  pyad.hvp(g, x, d, backend=backend))


def test_argnums_tuple_gives_tuples_nested_as_jax(backend):
    ga, gc = pyad.grad(f3, argnums=(0, 2), backend=backend)(*ARGS)
    assert ga.shape == (3,) and type(gc) is float
    np.testing.assert_array_equal(ga, pyad.grad(f3, argnums=0, backend=backend)(*ARGS))
    # argnums=2 alone makes sin(a) a constant (numpy's sin), (0, 2) an array row
    # (vector math): a few ulp apart
    assert gc == pytest.approx(pyad.grad(f3, argnums=2, backend=backend)(*ARGS), rel=1e-15)
    (g1,) = pyad.grad(f3, argnums=(1,), backend=backend)(*ARGS)   # a 1-tuple stays one
    np.testing.assert_array_equal(g1, pyad.grad(f3, argnums=1, backend=backend)(*ARGS))
    H = pyad.hessian(f3, argnums=(0, 2), backend=backend)(*ARGS)
    assert H[0][0].shape == (3, 3) and H[0][1].shape == (3,) and H[1][0].shape == (3,)
    assert type(H[1][1]) is float
    np.testing.assert_allclose(H[0][1], H[1][0], rtol=1e-15)
    full = pyad.hessian(lambda a, c: f3(a, B0, c), argnums=(0, 1), backend=backend)(A0, C0)
    np.testing.assert_array_equal(H[0][1], full[0][1])
    J = pyad.jacobian(v3, argnums=(1, 2), backend=backend)(*ARGS)
    assert J[0].shape == (2, 3, 2) and J[1].shape == (2,)
    # JAX's form: tangents / results one per differentiated argument
    y, t = pyad.jvp(v3, ARGS, (np.ones((3, 2)), 2.0), argnums=(1, 2), backend=backend)
    np.testing.assert_allclose(t, np.einsum("ijk,jk->i", J[0], np.ones((3, 2))) + 2.0 * J[1],
                               rtol=1e-13)
    _, (gb, gc) = pyad.vjp(v3, ARGS, np.array([1.0, 0.0]), argnums=(1, 2), backend=backend)
    np.testing.assert_array_equal(gb, J[0][0])
    assert gc == J[1][0]


def test_argnums_1_tuple_of_a_one_argument_tape_stays_a_tuple_on_every_sweep(backend):
    """A tape of one plain array argument takes the fast replay paths; argnums=(0,)
    still asks for a 1-tuple, as jax.grad(f, argnums=(0,)) gives."""
    f = lambda a: np.sum(np.sin(a) * a)  # noqa: E731
    tape = pyad.trace(f, A0, argnums=(0,), backend=backend)
    plain = pyad.trace(f, A0, backend=backend)
    X = np.stack([A0, 2 * A0])
    results = {
        "gradient": (tape.gradient(A0), plain.gradient(A0)),
        "hvp": (tape.hvp(A0, A0), plain.hvp(A0, A0)),
        "vjp": (tape.vjp(A0, 1.0)[1], plain.vjp(A0, 1.0)[1]),
        "batched gradient": (tape.gradient(X, batch=True), plain.gradient(X, batch=True)),
        "batched hvp": (tape.hvp(X, X, batch=True), plain.hvp(X, X, batch=True)),
        "pyad.grad": (pyad.grad(f, argnums=(0,), backend=backend)(A0), plain.gradient(A0)),
    }
    for name, (got, want) in results.items():
        assert type(got) is tuple and len(got) == 1, name
        np.testing.assert_array_equal(got[0], want, err_msg=name)


@pytest.mark.parametrize("bad,exc", [(3, ValueError), ((0, 0), ValueError), ((), ValueError),
                                     (1.0, TypeError), ("0", TypeError)])
def test_argnums_are_checked_on_every_transform(backend, bad, exc):
    for call in (lambda: pyad.grad(f3, argnums=bad, backend=backend)(*ARGS),
                 lambda: pyad.value_and_grad(f3, argnums=bad, backend=backend)(*ARGS),
                 lambda: pyad.jacobian(v3, argnums=bad, backend=backend)(*ARGS),
                 lambda: pyad.hessian(f3, argnums=bad, backend=backend)(*ARGS),
                 lambda: pyad.jvp(v3, ARGS, (1.0,), argnums=bad, backend=backend),
                 lambda: pyad.vjp(v3, ARGS, np.ones(2), argnums=bad, backend=backend),
                 lambda: pyad.hvp(f3, ARGS, (1.0,), argnums=bad, backend=backend)):
        with pytest.raises(exc, match="argnums"):
            call()


# ---- jvp / vjp / hvp: pyad's form and JAX's tuple form ----

def test_jax_tuple_form_of_jvp_vjp_hvp(backend):
    f = lambda a, c: np.sin(a) * c  # noqa: E731
    s = lambda a, c: np.sum(np.sin(a)) * c ** 2  # noqa: E731
    va = np.array([1.0, 0.5, -1.0])
    y, t = pyad.jvp(f, (A0, C0), (va, 2.0), backend=backend)
    np.testing.assert_allclose(y, np.sin(A0) * C0, rtol=1e-15)
    np.testing.assert_allclose(t, np.cos(A0) * va * C0 + np.sin(A0) * 2.0, rtol=1e-14)
    # pyad's form is the one-argument case of it
    y1, t1 = pyad.jvp(np.sin, A0, va, backend=backend)
    y2, t2 = pyad.jvp(np.sin, (A0,), (va,), backend=backend)
    np.testing.assert_array_equal(t1, t2)
    _, (ga, gc) = pyad.vjp(f, (A0, C0), np.ones(3), backend=backend)
    np.testing.assert_allclose(ga, np.cos(A0) * C0, rtol=1e-14)
    assert gc == pytest.approx(np.sum(np.sin(A0)), rel=1e-14)
    ha, hc = pyad.hvp(s, (A0, C0), (va, 0.0), backend=backend)
    np.testing.assert_allclose(ha, -np.sin(A0) * va * C0 ** 2, rtol=1e-14)
    assert hc == pytest.approx(2 * C0 * np.sum(np.cos(A0) * va), rel=1e-14)
    # an argument that is itself a tuple is wrapped, as in JAX
    y, t = pyad.jvp(lambda p: p[0] * p[1], ((2.0, 3.0),), ((1.0, 0.0),), backend=backend)
    assert (y, t) == (6.0, 3.0)
    with pytest.raises(ValueError, match="tuple of 2"):
        pyad.jvp(f, (A0, C0), va, backend=backend)


# ---- has_aux ----

def loss_with_aux(w, x):
    pred = np.tanh(x * w)
    return np.sum(pred ** 2), {"pred": pred, "n": 3, "tag": "mlp", "first": pred[0]}


def test_has_aux_on_grad_value_and_grad_jacobian_hessian_jvp_vjp(backend):
    w = np.array([0.5, -0.3, 1.2])
    x = np.array([1.0, 2.0, -1.0])
    pred = np.tanh(x * w)

    def check_aux(aux):
        assert set(aux) == {"pred", "n", "tag", "first"}
        assert type(aux["pred"]) is np.ndarray and type(aux["first"]) is float
        np.testing.assert_allclose(aux["pred"], pred, rtol=1e-15)
        assert aux["n"] == 3 and aux["tag"] == "mlp" and aux["first"] == pred[0]

    plain = lambda w, x: loss_with_aux(w, x)[0]  # noqa: E731
    g_ref = pyad.grad(plain, backend=backend)(w, x)
    g, aux = pyad.grad(loss_with_aux, has_aux=True, backend=backend)(w, x)
    np.testing.assert_array_equal(g, g_ref)
    check_aux(aux)
    (v, aux), g = pyad.value_and_grad(loss_with_aux, has_aux=True, backend=backend)(w, x)
    assert v == pytest.approx(np.sum(pred ** 2), rel=1e-15)
    np.testing.assert_array_equal(g, g_ref)
    check_aux(aux)
    for mode in ("forward", "reverse"):
        J, aux = pyad.jacobian(lambda w, x: (np.tanh(x * w), np.sum(w)), mode=mode,
                               has_aux=True, backend=backend)(w, x)
        np.testing.assert_allclose(J, np.diag(x * (1 - pred ** 2)), rtol=1e-14)
        assert type(aux) is float and aux == pytest.approx(np.sum(w))
    H, aux = pyad.hessian(loss_with_aux, has_aux=True, backend=backend)(w, x)
    np.testing.assert_array_equal(H, pyad.hessian(plain, backend=backend)(w, x))
    check_aux(aux)
    y, t, aux = pyad.jvp(lambda w: loss_with_aux(w, x), w, np.ones(3), has_aux=True,
                         backend=backend)
    assert t == pytest.approx(np.sum(g_ref), rel=1e-14)
    check_aux(aux)
    y, gv, aux = pyad.vjp(lambda w: loss_with_aux(w, x), w, 2.0, has_aux=True, backend=backend)
    np.testing.assert_allclose(gv, 2.0 * g_ref, rtol=1e-15)
    check_aux(aux)


def test_has_aux_needs_a_pair(backend):
    with pytest.raises(TypeError, match="has_aux=True .* pair"):
        pyad.grad(lambda w: np.sum(w), has_aux=True, backend=backend)(A0)
    with pytest.raises(TypeError, match="has_aux=True .* pair"):
        pyad.grad(lambda w: (np.sum(w), 1, 2), has_aux=True, backend=backend)(A0)


def test_aux_reads_record_no_guard(backend):
    """aux values are read after recording: no re-record at replay."""
    f = lambda w: (np.sum(w ** 2), w * 2.0)  # noqa: E731
    g, aux = pyad.grad(f, has_aux=True, backend=backend)(A0)
    np.testing.assert_array_equal(aux, A0 * 2.0)
    assert not isinstance(aux, pyad.Array)


# ---- keyword arguments ----

def test_keyword_arguments_pass_through_undifferentiated(backend):
    def f(a, c, *, scale, shift=0.0):
        return np.sum(a * a) * scale + c * shift
    g = pyad.grad(f, argnums=(0, 1), backend=backend)(A0, C0, scale=3.0, shift=2.0)
    np.testing.assert_allclose(g[0], 6.0 * A0, rtol=1e-15)
    assert g[1] == 2.0
    v, g = pyad.value_and_grad(f, backend=backend)(A0, C0, scale=3.0)
    assert v == pytest.approx(3.0 * np.sum(A0 * A0))
    H = pyad.hessian(f, backend=backend)(A0, C0, scale=0.5)
    np.testing.assert_allclose(H, np.eye(3), rtol=1e-15)
    J = pyad.jacobian(lambda a, k: a * k, backend=backend)(A0, k=np.arange(3.0))
    np.testing.assert_array_equal(J, np.diag(np.arange(3.0)))


# ---- dtypes: float32 in, float32 out, computed in float64 ----

def _f64(x):
    return x.astype(np.float64) if isinstance(x, np.ndarray) else np.float64(x)


def test_float32_round_trip_on_every_transform(backend):
    a32, c32 = A0.astype(np.float32), np.float32(C0)
    a64, c64 = _f64(a32), float(c32)
    pairs = [
        (pyad.grad(f3, argnums=(0, 2), backend=backend)(a32, B0, c32),
         pyad.grad(f3, argnums=(0, 2), backend=backend)(a64, B0, c64)),
        (pyad.value_and_grad(lambda a: np.sum(np.sin(a)), backend=backend)(a32),
         pyad.value_and_grad(lambda a: np.sum(np.sin(a)), backend=backend)(a64)),
        (pyad.jacobian(np.sin, backend=backend)(a32), pyad.jacobian(np.sin, backend=backend)(a64)),
        (pyad.hessian(lambda a: np.sum(a ** 3), backend=backend)(a32),
         pyad.hessian(lambda a: np.sum(a ** 3), backend=backend)(a64)),
        (pyad.jvp(np.sin, a32, np.ones(3, np.float32), backend=backend),
         pyad.jvp(np.sin, a64, np.ones(3), backend=backend)),
        (pyad.vjp(np.sin, a32, np.ones(3, np.float32), backend=backend),
         pyad.vjp(np.sin, a64, np.ones(3), backend=backend)),
        (pyad.hvp(lambda a: np.sum(a ** 3), a32, np.ones(3, np.float32), backend=backend),
         pyad.hvp(lambda a: np.sum(a ** 3), a64, np.ones(3), backend=backend)),
    ]
    for got, want in pairs:
        _same_cast(got, want, np.float32)


def _same_cast(got, want, dtype):
    """got is want (computed in float64) rounded once to dtype, leaf by leaf."""
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, want):
            _same_cast(g, w, dtype)
        return
    assert np.asarray(got).dtype == dtype, (np.asarray(got).dtype, want)
    assert np.ndim(got) == 0 or isinstance(got, np.ndarray)
    np.testing.assert_array_equal(got, np.asarray(want).astype(dtype))


def test_float32_round_trip_on_tape_replay(backend):
    a32 = A0.astype(np.float32)
    f = lambda a: np.sum(np.exp(a) * a)  # noqa: E731
    tape = pyad.trace(f, a32, backend=backend)
    ref = pyad.trace(f, _f64(a32), backend=backend)
    p32 = (A0 + 0.25).astype(np.float32)
    p64 = _f64(p32)
    _same_cast(tape(p32), ref(p64), np.float32)
    _same_cast(tape(), ref(), np.float32)                      # the recorded point
    _same_cast(tape.gradient(p32), ref.gradient(p64), np.float32)
    _same_cast(tape.gradient(), ref.gradient(), np.float32)
    _same_cast(tape.value_and_gradient(p32), ref.value_and_gradient(p64), np.float32)
    _same_cast(tape.hvp(p32, np.ones(3)), ref.hvp(p64, np.ones(3)), np.float32)
    _same_cast(tape.hessian(p32), ref.hessian(p64), np.float32)
    _same_cast(tape.jacobian(p32), ref.jacobian(p64), np.float32)
    P32 = np.stack([p32, a32])
    _same_cast(tape.gradient(P32, batch=True), ref.gradient(_f64(P32), batch=True), np.float32)
    _same_cast(tape(P32, batch=True), ref(_f64(P32), batch=True), np.float32)
    # the dtype follows the point given: float64 there gives float64
    assert tape.gradient(p64).dtype == np.float64
    # a float32 scalar gives a numpy float32 scalar
    t = pyad.trace(lambda x: x * x, np.float32(1.5), backend=backend)
    assert type(t.gradient(np.float32(2.0))) is np.float32 and type(t.gradient(2.0)) is float


def test_mixed_dtypes_promote_as_numpy(backend):
    a32, b64 = A0.astype(np.float32), np.arange(3.0)
    (ga, gb) = pyad.grad(lambda a, b: np.sum(a * b), argnums=(0, 1), backend=backend)(a32, b64)
    assert ga.dtype == np.float32 and gb.dtype == np.float64      # per input leaf
    y, t = pyad.jvp(lambda a, b: a * b, (a32, b64), (np.ones(3), np.ones(3)), backend=backend)
    assert y.dtype == np.float64                                    # f32 with f64: f64
    y, t = pyad.jvp(lambda a, s: a * s, (a32, 2.0), (np.ones(3), 1.0), backend=backend)
    assert y.dtype == np.float32 and t.dtype == np.float32          # Python floats are weak
    J = pyad.jacobian(lambda a, b: a * b, argnums=(0, 1), backend=backend)(a32, b64)
    assert J[0].dtype == np.float64 and J[1].dtype == np.float64
    J = pyad.jacobian(lambda a, s: a * s, argnums=(0, 1), backend=backend)(a32, 2.0)
    assert J[0].dtype == np.float32 and J[1].dtype == np.float32


def test_integer_inputs_are_converted_to_float64(backend):
    """pyad's documented convention (README, errors table), kept where JAX refuses ints."""
    g = pyad.grad(lambda x: np.sum(x * x), backend=backend)(np.array([1, 2, 3]))
    assert g.dtype == np.float64 and g.tolist() == [2.0, 4.0, 6.0]
    assert type(pyad.grad(lambda x: x * x, backend=backend)(3)) is float


# ---- mode names ----

@pytest.mark.parametrize("mode", ["forward", "fwd", "reverse", "rev", "auto"])
def test_every_mode_name_is_taken_by_jacobian(backend, mode):
    want = np.diag(np.cos(A0))
    np.testing.assert_allclose(pyad.jacobian(np.sin, mode=mode, backend=backend)(A0), want,
                               rtol=1e-15)
    tape = pyad.trace(np.sin, A0, backend=backend)
    np.testing.assert_allclose(tape.jacobian(A0, mode=mode), want, rtol=1e-15)
    np.testing.assert_allclose(tape.jacobian(np.stack([A0]), mode=mode, batch=True)[0], want,
                               rtol=1e-15)


def test_the_mode_name_decides_the_sweeps(backend):
    tape = pyad.trace(np.sin, A0, backend=backend)
    tape.jacobian(A0, mode="fwd")
    assert tape.sweep_counts["forward"] > 0 and tape.sweep_counts["reverse"] == 0
    tape.jacobian(A0, mode="rev")
    assert tape.sweep_counts["reverse"] > 0


@pytest.mark.parametrize("modes", ["forward", "fwd", "reverse", "rev", ("fwd", "reverse"),
                                   ("forward", "rev")])
def test_check_grads_takes_the_same_names(backend, modes):
    pyad.check_grads(lambda a: np.sum(np.sin(a) ** 2), A0, modes=modes, backend=backend)


def test_a_wrong_mode_name_lists_the_accepted_ones(backend):
    tape = pyad.trace(np.sin, A0, backend=backend)
    accepted = "'auto', 'forward', 'fwd', 'reverse', 'rev'"
    for call in (lambda: pyad.jacobian(np.sin, mode="backward", backend=backend)(A0),
                 lambda: tape.jacobian(A0, mode="backward")):
        with pytest.raises(ValueError, match=f"one of {accepted}; got 'backward'"):
            call()
    with pytest.raises(ValueError, match="one of 'forward', 'fwd', 'reverse', 'rev'; got 'auto'"):
        pyad.check_grads(np.sin, A0, modes="auto", backend=backend)
    with pytest.raises(ValueError, match="one of 'forward', 'fwd', 'reverse', 'rev'; got 'x'"):
        tape.table(A0, mode="x")
