"""Custom derivative rules (issue 14 item 9): pyad.custom_jvp / pyad.custom_vjp
record one row whose sweeps call the user's rules, in both backends."""
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.special

import pyad
from helpers import central_diff_grad, central_diff_jvp


# ---- functions whose rule is NOT their true derivative: the rule must be used ----

@pyad.custom_vjp
def clip_gradient(x):
    return x


def _clip_fwd(x):
    return x, None


def _clip_bwd(res, g):
    return (np.clip(g, -1.0, 1.0),)


clip_gradient.defvjp(_clip_fwd, _clip_bwd)


@pyad.custom_jvp
def straight_through_round(x):
    return np.round(x)


@straight_through_round.defjvp
def _round_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return np.round(x), t  # the identity's derivative, where round's is 0


def test_a_custom_vjp_rule_replaces_the_true_derivative(backend):
    """sum(3 * clip_gradient(x)) has true gradient 3; the rule clips it to 1."""
    def f(x):
        return np.sum(3.0 * clip_gradient(x) * np.array([1.0, -1.0, 0.1]))
    x = np.array([0.5, -2.0, 4.0])
    want = np.clip(3.0 * np.array([1.0, -1.0, 0.1]), -1.0, 1.0)  # true gradient: 3 * (1, -1, 0.1)
    assert np.array_equal(pyad.grad(f, backend=backend)(x), want)
    tape = pyad.trace(f, x, backend=backend)
    x2 = np.array([7.0, 8.0, 9.0])
    assert tape(x2) == pytest.approx(3 * (7 - 8 + 0.9))
    assert np.array_equal(tape.gradient(x2), want)
    assert np.array_equal(tape.jacobian(x2, mode="reverse"), want)
    y, ct = pyad.vjp(f, x, 2.0, backend=backend)
    assert np.array_equal(ct, np.clip(6.0 * np.array([1.0, -1.0, 0.1]), -1.0, 1.0))


def test_a_custom_jvp_rule_is_used_forward_and_transposed_in_reverse(backend):
    """round has derivative 0; the straight-through rule says 1, in both modes."""
    def f(x):
        return straight_through_round(x) * x
    x = np.array([0.4, 1.6, -2.7])
    # d/dx (round(x) * x) with round' := 1 is x + round(x)
    want = np.diag(x + np.round(x))
    for mode in ("forward", "reverse"):
        assert np.array_equal(pyad.jacobian(f, mode=mode, backend=backend)(x), want)
    y, t = pyad.jvp(f, x, np.ones(3), backend=backend)
    assert np.array_equal(t, x + np.round(x))
    assert np.array_equal(pyad.grad(lambda x: np.sum(f(x)), backend=backend)(x),
                          x + np.round(x))


@pyad.custom_jvp
def log1pexp(x):
    return np.logaddexp(0.0, x)


@log1pexp.defjvp
def _log1pexp_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return log1pexp(x), t * scipy.special.expit(x)


@log1pexp.defhvp
def _log1pexp_hvp(primals, tangents, cotangent):
    (x,), (t,), g = primals, tangents, cotangent
    s = scipy.special.expit(x)
    return (g * s * (1.0 - s) * t,)


def test_a_stable_rule_gives_the_gradient_where_the_naive_one_is_wrong(backend):
    """log(1 + exp(x)) differentiated as written is 0 * inf at x = 1000 (0 with
    pyad's structural zeros, NaN in IEEE); the custom rule (expit) gives 1."""
    def naive(x):
        return np.sum(np.log(1.0 + np.exp(x)))
    x = np.array([1000.0, -1000.0, 0.0])
    with np.errstate(all="ignore"):
        assert pyad.grad(naive, backend=backend)(x)[0] != 1.0
    g = pyad.grad(lambda x: np.sum(log1pexp(x)), backend=backend)(x)
    assert np.array_equal(g, [1.0, 0.0, 0.5])


def _counted_softplus(plain_tangents):
    calls = []

    @pyad.custom_jvp
    def softplus(x):
        return np.logaddexp(0.0, x)

    @softplus.defjvp
    def _(primals, tangents):
        calls.append(1)
        (x,), (t,) = primals, tangents
        if plain_tangents:
            t = np.asarray(t, dtype=np.float64)  # not recordable: J is assembled instead
        return softplus(x), t * scipy.special.expit(x)
    return softplus, calls


@pytest.mark.parametrize("plain_tangents", [False, True], ids=["transposed", "assembled"])
def test_reverse_mode_of_a_custom_jvp_of_many_inputs(backend, plain_tangents):
    """Its rule is recorded and transposed (one call per reverse sweep), or, where
    it cannot be recorded on active tangents, J is assembled (one call per input)."""
    softplus, calls = _counted_softplus(plain_tangents)
    x = np.linspace(-3.0, 3.0, 40)
    w = np.arange(40.0)
    g = pyad.grad(lambda x: np.sum(softplus(x) * w), backend=backend)(x)
    assert np.allclose(g, w * scipy.special.expit(x), rtol=1e-14, atol=0)
    assert len(calls) == (41 if plain_tangents else 1)  # (the failed recording is one call)
    tape = pyad.trace(lambda x: np.sum(softplus(x) * w), x, backend=backend)
    G = tape.gradient(np.stack([x, -x]), batch=True)
    assert np.allclose(G, w * scipy.special.expit(np.stack([x, -x])), rtol=1e-14, atol=0)


# ---- where the rule is the true derivative: modes agree with differences ----

def _model(params, x):
    """The plain math both rule styles below describe: a dict and an array in, a
    (vector, scalar) pair out."""
    z = np.tanh(params["w"] * x + params["b"])
    return z, np.sum(z * z)


def _model_jvp(primals, tangents):
    (params, x), (dp, dx) = primals, tangents
    z, s = _model(params, x)
    dpre = dp["w"] * x + params["w"] * dx + dp["b"]
    dz = (1.0 - z * z) * dpre
    return (z, s), (dz, np.sum(2.0 * z * dz))


def _model_fwd(params, x):
    out = _model(params, x)
    return out, (params, x, out[0])


def _model_bwd(res, g):
    params, x, z = res
    gz, gs = g
    gpre = (gz + 2.0 * z * gs) * (1.0 - z * z)
    return {"w": gpre * x, "b": np.sum(gpre)}, gpre * params["w"]


model_jvp = pyad.custom_jvp(_model)
model_jvp.defjvp(_model_jvp)
model_vjp = pyad.custom_vjp(_model)
model_vjp.defvjp(_model_fwd, _model_bwd)


def _loss(model):
    def loss(v):
        params = {"w": v[:3], "b": v[3]}
        z, s = model(params, v[4:] * 2.0)
        return np.sum(z * np.array([1.0, 2.0, 3.0])) + s ** 2
    return loss


V = np.array([0.3, -0.7, 1.1, 0.2, 0.5, -0.4, 0.9])


@pytest.mark.parametrize("model", [model_jvp, model_vjp], ids=["custom_jvp", "custom_vjp"])
def test_pytree_arguments_and_results_match_plain_pyad_and_differences(backend, model):
    loss, plain = _loss(model), _loss(_model)
    g = pyad.grad(loss, backend=backend)(V)
    assert np.allclose(g, pyad.grad(plain, backend=backend)(V), rtol=1e-12, atol=1e-14)
    assert np.allclose(g, central_diff_grad(plain, V), rtol=1e-7, atol=1e-9)
    tape = pyad.trace(loss, V, backend=backend)
    assert np.allclose(tape.gradient(V[::-1]), central_diff_grad(plain, V[::-1]), rtol=1e-7,
                       atol=1e-9)


def test_forward_and_reverse_agree_through_a_custom_jvp(backend):
    def f(v):
        z, s = model_jvp({"w": v[:3], "b": v[3]}, v[4:])
        return np.concatenate([z, np.stack([s])])
    jf = pyad.jacobian(f, mode="forward", backend=backend)(V)
    jr = pyad.jacobian(f, mode="reverse", backend=backend)(V)
    assert np.allclose(jf, jr, rtol=1e-12, atol=1e-14)
    u = np.linspace(-1.0, 1.0, 7)
    _, t = pyad.jvp(f, V, u, backend=backend)
    assert np.allclose(t, central_diff_jvp(lambda v: f(v), V, u), rtol=1e-7, atol=1e-9)


def test_a_scalar_argument_and_result(backend):
    @pyad.custom_vjp
    def cube(x):
        return x ** 3
    cube.defvjp(lambda x: (x ** 3, x), lambda x, g: (3.0 * x * x * g,))
    assert pyad.grad(lambda x: cube(x) * 2.0, backend=backend)(1.5) == pytest.approx(13.5)
    assert cube(2.0) == 8.0  # on plain numbers: the plain function


# ---- second order ----

def test_hvp_and_hessian_use_the_second_order_rule(backend):
    def f(x):
        return np.sum(log1pexp(x) * np.array([1.0, 2.0, 3.0]))

    def plain(x):
        return np.sum(np.logaddexp(0.0, x) * np.array([1.0, 2.0, 3.0]))
    x, v = np.array([0.3, -1.2, 2.0]), np.array([1.0, -0.5, 0.25])
    h = pyad.hessian(f, backend=backend)(x)
    assert np.allclose(h, pyad.hessian(plain, backend=backend)(x), rtol=1e-12, atol=1e-15)
    assert np.allclose(pyad.hvp(f, x, v, backend=backend), h @ v, rtol=1e-12)
    tape = pyad.trace(f, x, backend=backend)
    assert np.allclose(tape.hessian(-x), pyad.hessian(plain)(-x), rtol=1e-12, atol=1e-15)


def test_a_custom_vjp_with_a_second_order_rule_has_hessians(backend):
    @pyad.custom_vjp
    def sq(x):
        return x * x
    sq.defvjp(lambda x: (x * x, x), lambda x, g: (2.0 * x * g,))
    sq.defhvp(lambda primals, tangents, g: (2.0 * tangents[0] * g,))

    def f(x):
        return np.sum(sq(x) * x)  # sum x^3: H = diag(6 x)
    x = np.array([1.0, -2.0, 0.5])
    assert np.allclose(pyad.hessian(f, backend=backend)(x), np.diag(6 * x), rtol=1e-12)


def test_hessian_without_a_second_order_rule_names_what_to_give(backend):
    def f(x):
        return np.sum(straight_through_round(x) * x)
    with pytest.raises(pyad.CustomRuleError, match=r"straight_through_round\.defhvp"):
        pyad.hessian(f, backend=backend)(np.array([0.4, 1.6]))


def test_forward_mode_of_a_custom_vjp_names_mode_reverse(backend):
    def f(x):
        return clip_gradient(x) * 0.5
    x = np.array([1.0, 2.0])
    with pytest.raises(pyad.CustomRuleError, match="mode='reverse'"):
        pyad.jvp(f, x, np.ones(2), backend=backend)
    with pytest.raises(pyad.CustomRuleError, match="mode='reverse'"):
        pyad.jacobian(f, mode="forward", backend=backend)(x)
    assert np.array_equal(pyad.jacobian(f, mode="reverse", backend=backend)(x), 0.5 * np.eye(2))


# ---- replay: batches, guards, parameters ----

def _batched_loss(x):
    return np.sum(log1pexp(x) * clip_gradient(x * x)) + np.sum(straight_through_round(x))


X = np.linspace(-2.0, 2.0, 15).reshape(5, 3)


def test_batched_replay_matches_a_loop_over_points(backend):
    tape = pyad.trace(_batched_loss, X[0], backend=backend)
    assert np.array_equal(tape(X, batch=True), np.array([tape(x) for x in X]))
    G = tape.gradient(X, batch=True)
    assert np.array_equal(G, np.array([tape.gradient(x) for x in X]))
    assert np.allclose(G[2], pyad.grad(_batched_loss, backend=backend)(X[2]), rtol=1e-14)
    V2 = X[::-1] * 0.5

    def only_jvp(x):
        return np.sum(log1pexp(x) * x)
    tj = pyad.trace(only_jvp, X[0], backend=backend)
    jv = tj.jvp(X, V2, batch=True)
    assert np.allclose(jv[1], np.array([tj.jvp(x, v)[1] for x, v in zip(X, V2)]), rtol=1e-14)
    hv = tj.hvp(X, V2, batch=True)
    assert np.allclose(hv, np.array([tj.hvp(x, v) for x, v in zip(X, V2)]), rtol=1e-14)


def _vectorized_pair(calls):
    def softplus(x):
        calls.append("f")
        return np.logaddexp(0.0, x)

    jv = pyad.custom_jvp(softplus, vectorized=True)

    @jv.defjvp
    def _(primals, tangents):
        calls.append("jvp")
        (x,), (t,) = primals, tangents
        return np.logaddexp(0.0, x), t * scipy.special.expit(x)

    vj = pyad.custom_vjp(softplus, vectorized=True)
    vj.defvjp(lambda x: (softplus(x), x), lambda x, g: (g * scipy.special.expit(x),))
    return jv, vj


def test_a_vectorized_function_is_called_once_per_batch(backend):
    """vectorized=True: the batched sweeps call f and its rules once for all the
    points (leaves with a leading batch axis); the results are the loop's."""
    calls = []
    jv, vj = _vectorized_pair(calls)
    w = np.array([1.0, -2.0, 0.5])

    def f(x):
        return np.sum(jv(x) * w) + np.sum(vj(x[::-1]) * x)
    X = np.linspace(-2.0, 2.0, 60).reshape(20, 3)
    tape = pyad.trace(f, X[0], backend=backend)
    tj = pyad.trace(lambda x: jv(x) * w, X[0], backend=backend)  # forward: custom_jvp only
    loop = (np.array([tape(x) for x in X]), np.array([tape.gradient(x) for x in X]),
            np.array([tj.jvp(x, x[::-1])[1] for x in X]))
    del calls[:]
    got = (tape(X, batch=True), tape.gradient(X, batch=True),
           tj.jvp(X, X[:, ::-1], batch=True)[1])
    if backend == "c":  # the C batch sweeps hand the rules every point at once
        assert len(calls) <= 12, calls  # point by point: 20 times as many
    for a, b in zip(got, loop):
        assert np.allclose(a, b, rtol=1e-14, atol=1e-15)
    want = np.array([pyad.grad(f, backend=backend)(x) for x in X])
    assert np.allclose(got[1], want, rtol=1e-14, atol=1e-15)
    with pytest.raises(TypeError, match="vectorized must be True or False"):
        pyad.custom_jvp(np.sin, vectorized="yes")


def test_the_primal_runs_on_plain_numbers_so_its_branches_replay_correctly(backend):
    seen = []

    @pyad.custom_jvp
    def kinked(x):
        seen.append(type(x))
        return x if x > 0 else -2.0 * x  # a Python branch: no guard is recorded

    @kinked.defjvp
    def _(primals, tangents):
        (x,), (t,) = primals, tangents
        return kinked(x), (1.0 if x > 0 else -2.0) * t

    tape = pyad.trace(lambda x: kinked(x) * 3.0, 1.0, backend=backend)
    assert tape(-1.0) == 6.0 and tape.gradient(-1.0) == -6.0 and tape.gradient(2.0) == 3.0
    assert all(not issubclass(t, (pyad.Scalar, pyad.Array)) for t in seen)


def test_parameters_flow_into_a_custom_function(backend):
    def loss(w, X):
        z, s = model_vjp({"w": w, "b": 0.1}, X)
        return s
    w, X1, X2 = np.array([0.2, -0.3, 0.4]), np.array([1.0, 2.0, 3.0]), np.array([-1.0, 0.5, 2.0])
    tape = pyad.trace(loss, w, X1, argnums=0, backend=backend)
    assert np.allclose(tape.gradient(w, X2), pyad.grad(loss, backend=backend)(w, X2), rtol=1e-14)
    assert np.allclose(tape.gradient(w, X2),
                       central_diff_grad(lambda w: _model({"w": w, "b": 0.1}, X2)[1], w),
                       rtol=1e-7)


# ---- errors ----

class RuleFailed(Exception):
    pass


def _failing(where):
    @pyad.custom_vjp
    def f(x):
        if where == "primal" and np.any(x < 0):
            raise RuleFailed("primal")
        return np.sin(x)

    def fwd(x):
        if where == "fwd" and np.any(x < 0):
            raise RuleFailed("fwd")
        return np.sin(x), x

    def bwd(x, g):
        if where == "bwd" and np.any(x < 0):
            raise RuleFailed("bwd")
        return (np.cos(x) * g,)
    f.defvjp(fwd, bwd)
    return f


@pytest.mark.parametrize("where", ["primal", "fwd", "bwd"])
def test_an_exception_in_a_rule_is_raised_after_the_sweep_and_the_tape_still_works(backend,
                                                                                   where):
    f = _failing(where)
    tape = pyad.trace(lambda x: np.sum(f(x)), np.array([1.0, 2.0]), backend=backend)
    bad, good = np.array([1.0, -2.0]), np.array([0.5, 2.0])
    call = tape if where == "primal" else tape.gradient
    with pytest.raises(RuleFailed, match=where):
        call(bad)
    with pytest.raises(RuleFailed, match=where):
        call(np.stack([good, bad]), batch=True)
    assert np.allclose(tape.gradient(good), np.cos(good), rtol=1e-15)


def test_the_very_exception_object_is_re_raised(backend):
    err = KeyError("the user's own")

    @pyad.custom_jvp
    def f(x):
        return x

    @f.defjvp
    def _(primals, tangents):
        raise err
    with pytest.raises(KeyError) as info:
        pyad.jvp(lambda x: f(x) * 2.0, 1.0, 1.0, backend=backend)
    assert info.value is err


def test_a_tape_with_a_custom_row_cannot_be_saved_or_pickled(backend, tmp_path):
    tape = pyad.trace(lambda x: np.sum(clip_gradient(x)), np.ones(2), backend=backend)
    with pytest.raises(pyad.CustomRuleError, match="never serializes Python code"):
        tape.save(tmp_path / "t.pyad")
    with pytest.raises(pyad.CustomRuleError, match="pickled"):
        pickle.dumps(tape)


def test_a_rule_that_records_on_the_tape_it_serves_is_refused_at_once(backend):
    """An active value closed over by a rule would record on the tape the sweep
    holds: refused with a clear error (not a wait for the sweep)."""
    def loss(w):
        @pyad.custom_vjp
        def f(x):
            return 2.0 * x
        f.defvjp(lambda x: (2.0 * x, None), lambda r, g: (g * w,))  # w is active
        return np.sum(f(w))
    with pytest.raises(pyad.CustomRuleError, match="closure"):
        pyad.grad(loss, backend=backend)(np.array([1.0, 2.0]))


def test_rules_with_the_wrong_shape_or_count_are_named(backend):
    @pyad.custom_vjp
    def f(x, y):
        return x * y
    f.defvjp(lambda x, y: (x * y, (x, y)), lambda r, g: (g * r[1],))  # one cotangent of two
    with pytest.raises(ValueError, match="tuple of 2 cotangents"):
        pyad.grad(lambda x: np.sum(f(x, 2.0)), backend=backend)(np.ones(3))

    @pyad.custom_vjp
    def h(x):
        return x
    h.defvjp(lambda x: (x, None), lambda r, g: (np.ones(5),))
    with pytest.raises(ValueError, match=r"shape \(5,\), expected \(3,\)"):
        pyad.grad(lambda x: np.sum(h(x)), backend=backend)(np.ones(3))
    with pytest.raises(TypeError, match="defjvp"):
        pyad.custom_jvp(np.sin)(1.0)
    with pytest.raises(TypeError, match="defvjp"):
        pyad.custom_vjp(np.sin)(1.0)


# ---- threads ----

THREADED_BATCH = r"""
    import sys
    import numpy as np
    import scipy.special
    import pyad
    sys.setswitchinterval(1e-6)
    backend = sys.argv[1]

    @pyad.custom_vjp
    def softplus(x):
        return np.logaddexp(0.0, x)
    softplus.defvjp(lambda x: (np.logaddexp(0.0, x), x),
                    lambda x, g: (g * scipy.special.expit(x),))

    @pyad.custom_jvp
    def sq(x):
        return x * x
    sq.defjvp(lambda p, t: (p[0] * p[0], 2.0 * p[0] * t[0]))

    def f(x):
        return np.sum(softplus(x) * sq(x[::-1]))

    X = np.random.default_rng(1).normal(size=(64, 4))
    tape = pyad.trace(f, X[0], backend=backend)
    want = np.array([tape.gradient(x) for x in X])
    for _ in range(5):
        got = tape.gradient(X, batch=True, threads=2)
        if not np.array_equal(got, want):
            sys.exit("threaded batch differs from the loop")

    @pyad.custom_vjp
    def boom(x):
        return x
    def bwd(r, g):
        raise ZeroDivisionError("boom")
    boom.defvjp(lambda x: (x, None), bwd)
    tb = pyad.trace(lambda x: np.sum(boom(x)), X[0], backend=backend)
    try:
        tb.gradient(X, batch=True, threads=2)
        sys.exit("the rule's exception was swallowed")
    except ZeroDivisionError:
        pass
    print("ok")
"""


def test_batches_on_two_threads_call_the_rules_correctly(backend):
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(THREADED_BATCH), backend],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr
