"""Parameters (issue 14 item 6): pyad.trace(f, w, X, y, argnums=0) replays X and y
with new values, never differentiates them, and its derivative sweeps skip the
rows only parameters reach. Both backends."""
import pickle

import numpy as np
import pytest

import pyad


def loss(w, X, y):
    Xn = X / (1.0 + np.abs(X))           # parameters alone: passive rows
    r = Xn @ w - y
    return (r * r).sum() + np.exp(y).sum() * w[0] + (w * w).sum()


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    return (rng.normal(size=3), rng.normal(size=(6, 3)), rng.normal(size=6),
            rng.normal(size=(6, 3)), rng.normal(size=6))


def baked(X, y, backend):
    """The reference: a tape of w alone, recorded with the data as constants."""
    return pyad.trace(lambda w: loss(w, X, y), np.zeros(3), backend=backend)


def test_new_data_replays_as_a_recording_with_that_data(backend, data):
    w, X, y, X2, y2 = data
    tape = pyad.trace(loss, w, X, y, argnums=0, backend=backend)
    ref = baked(X2, y2, backend)
    v = np.array([0.3, -1.0, 2.0])
    assert tape(w, X2, y2) == pytest.approx(ref(w), rel=1e-13)
    np.testing.assert_allclose(tape.gradient(w, X2, y2), ref.gradient(w), rtol=1e-13)
    np.testing.assert_allclose(tape.jvp((w, X2, y2), v)[1], ref.jvp(w, v)[1], rtol=1e-13)
    np.testing.assert_allclose(tape.vjp((w, X2, y2), 2.0)[1], ref.vjp(w, 2.0)[1], rtol=1e-13)
    np.testing.assert_allclose(tape.hvp((w, X2, y2), v), ref.hvp(w, v), rtol=1e-12)
    np.testing.assert_allclose(tape.hessian((w, X2, y2)), ref.hessian(w), rtol=1e-12)
    np.testing.assert_allclose(tape.jacobian((w, X2, y2)), ref.jacobian(w), rtol=1e-13)
    assert tape.retraces == 0


def test_derivatives_only_for_argnums(backend, data):
    w, X, y, _, _ = data
    tape = pyad.trace(loss, w, X, y, argnums=0, backend=backend)
    assert (tape.n_inputs, tape.n_params) == (3, 24)
    assert tape.gradient(w, X, y).shape == (3,)
    assert tape.hessian((w, X, y)).shape == (3, 3)
    two = pyad.trace(loss, w, X, y, argnums=(2, 0), backend=backend)
    assert (two.n_inputs, two.n_params) == (9, 18)
    gy, gw = two.gradient(w, X, y)          # in argnums' order, as JAX gives them
    ref_w, ref_y = pyad.grad(loss, argnums=(0, 2), backend=backend)(w, X, y)
    np.testing.assert_allclose(gw, ref_w, rtol=1e-13)
    np.testing.assert_allclose(gy, ref_y, rtol=1e-13)
    (H_yy, H_yw), (H_wy, H_ww) = two.hessian((w, X, y))
    assert H_yy.shape == (6, 6) and H_yw.shape == (6, 3) and H_ww.shape == (3, 3)
    np.testing.assert_allclose(H_yw, H_wy.T, rtol=1e-13)
    vy, vw = np.linspace(-1, 1, 6), np.array([0.5, 2.0, -1.0])
    both = pyad.trace(loss, w, X, y, backend=backend)
    np.testing.assert_allclose(two.jvp((w, X, y), (vy, vw))[1],
                               both.jvp((w, X, y), (vw, np.zeros((6, 3)), vy))[1], rtol=1e-13)
    # the default stays: every argument differentiated
    assert pyad.trace(loss, w, X, y, backend=backend).n_inputs == 27


def test_tangent_given_for_a_parameter_is_refused(backend, data):
    w, X, y, _, _ = data
    tape = pyad.trace(loss, w, X, y, argnums=0, backend=backend)
    with pytest.raises(TypeError, match="differentiated arguments have the structure"):
        tape.jvp((w, X, y), (np.ones(3), np.ones((6, 3)), np.ones(6)))
    with pytest.raises(ValueError, match="shape"):
        tape.jvp((w, X, y), np.ones(27))


def test_pytrees_of_parameters_and_weights(backend):
    rng = np.random.default_rng(5)
    params = {"W": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}
    batch = {"X": rng.normal(size=(4, 3)), "t": (rng.normal(size=(4, 2)), 0.5)}

    def mse(p, d):
        out = np.tanh(d["X"] @ p["W"] + p["b"])
        return ((out - d["t"][0]) ** 2).sum() * d["t"][1]

    tape = pyad.trace(mse, params, batch, argnums=0, backend=backend)
    new = {"X": rng.normal(size=(4, 3)), "t": (rng.normal(size=(4, 2)), 2.0)}
    g = tape.gradient(params, new)
    ref = pyad.grad(mse, backend=backend)(params, new)
    assert set(g) == {"W", "b"}
    for k in g:
        np.testing.assert_allclose(g[k], ref[k], rtol=1e-13)
    assert tape.n_params == 12 + 8 + 1


def test_batch_over_weights_with_shared_or_batched_parameters(backend, data):
    w, X, y, X2, y2 = data
    tape = pyad.trace(loss, w, X, y, argnums=0, backend=backend)
    W = np.random.default_rng(1).normal(size=(4, 3))
    shared = tape.gradient(W, X2, y2, batch=True)
    Xs, ys = np.stack([X, X2, X, X2]), np.stack([y, y2, y, y2])
    each = tape.gradient(W, Xs, ys, batch=True)
    assert shared.shape == each.shape == (4, 3)
    for k in range(4):
        np.testing.assert_allclose(shared[k], baked(X2, y2, backend).gradient(W[k]),
                                   rtol=1e-12)
        np.testing.assert_allclose(each[k], baked(Xs[k], ys[k], backend).gradient(W[k]),
                                   rtol=1e-12)
    V = np.ones((4, 3))
    np.testing.assert_allclose(tape.hvp((W, X2, y2), V, batch=True)[2],
                               baked(X2, y2, backend).hvp(W[2], V[2]), rtol=1e-12)


def test_save_load_and_pickle_keep_parameters(backend, data, tmp_path):
    w, X, y, X2, y2 = data
    tape = pyad.trace(loss, w, X, y, argnums=0, backend=backend)
    path = tmp_path / "t.pyad"
    tape.save(path)
    for loaded in (pyad.load(path, backend=backend), pickle.loads(pickle.dumps(tape))):
        assert (loaded.n_inputs, loaded.n_params) == (3, 24)
        assert loaded.stats()["passive_rows"] == tape.stats()["passive_rows"]
        np.testing.assert_allclose(loaded.gradient(w, X2, y2), tape.gradient(w, X2, y2),
                                   rtol=1e-15)
    assert path.read_bytes()[8:12] == (4).to_bytes(4, "little")
    plain = tmp_path / "plain.pyad"
    pyad.trace(loss, w, X, y, backend=backend).save(plain)
    assert plain.read_bytes()[8:12] == (3).to_bytes(4, "little")


def test_a_branch_on_a_parameter_is_guarded(backend):
    def f(w, X):
        if X.sum() > 0:
            return (X * w).sum()
        return (w * w).sum()

    w, X = np.array([1.0, 2.0]), np.array([1.0, 1.0])
    tape = pyad.trace(f, w, X, argnums=0, backend=backend)
    np.testing.assert_allclose(tape.gradient(w, -X), 2 * w)      # the other branch
    assert tape.retraces == 1
    assert tape.n_params == 2                                    # still a parameter
    np.testing.assert_allclose(tape.gradient(w, X), X)
    strict = pyad.trace(f, w, X, argnums=0, backend=backend, retrace=False)
    with pytest.raises(pyad.BranchError):
        strict.gradient(w, -X)


def test_passive_rows_get_no_derivative_work(backend, data):
    """Observable without timing: rows only parameters reach are marked passive,
    and a reverse sweep leaves their operands' adjoints at zero (the product's
    data factor too), where a tape differentiating the data fills them."""
    w, X, y, _, _ = data
    tape = pyad.trace(loss, w, X, y, argnums=0, backend=backend)
    full = pyad.trace(loss, w, X, y, backend=backend)
    stats = tape.stats()
    # inputs X, y; abs, + 1, /, exp, sum(exp)
    assert stats["passive_rows"] == 7 and stats["n_params"] == 24
    assert full.stats()["passive_rows"] == 0
    slots = tape._store.input_slots()
    for t, zero in ((tape, True), (full, False)):
        rows = t.table(x=(w, X, y), mode="reverse")
        adjoint = {r["index"]: r["adjoint"] for r in rows}
        x_adjoints = np.array([adjoint[s] for s in slots[3:21]])   # X's slots
        assert np.all(x_adjoints == 0) == zero
    # a product with a parameter factor skips that factor's adjoint product
    for argnums, zero in ((0, True), (None, False)):
        t = pyad.trace(lambda w, X: (X @ w).sum(), w, X, argnums=argnums, backend=backend)
        adjoint = {r["index"]: r["adjoint"] for r in t.table(x=(w, X), mode="reverse")}
        x_adjoints = np.array([adjoint[s] for s in t._store.input_slots()[3:]])
        assert np.all(x_adjoints == 0) == zero


def test_explicit_recording_with_param_inputs(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.array([1.0, 2.0]))
        c = tape.input(np.array([3.0, 4.0]), param=True)
        tape.output((x * np.sin(c)).sum() + (c * c).sum())
    assert (tape.n_inputs, tape.n_params) == (2, 2)
    assert tape.stats()["passive_rows"] == 4          # c, sin(c), c * c, its sum
    c2 = np.array([0.5, -1.0])
    np.testing.assert_allclose(tape.gradient(np.array([5.0, 6.0]), c2), np.sin(c2))


@pytest.mark.parametrize("shape", [(), (4,)])
def test_a_select_between_a_parameter_and_a_weight_stays_active(backend, shape):
    """pyad.where(c, X, w): the row is active through its else-branch alone."""
    def f(w, X):
        return (pyad.where(X > 0, X, w) * w).sum() if shape else pyad.where(X > 0, X, w) * w

    w, X = np.full(shape, 2.0), np.full(shape, -1.0)
    tape = pyad.trace(f, w, X, argnums=0, backend=backend)
    np.testing.assert_allclose(tape.gradient(w, X), 2 * w)           # d(w*w)
    np.testing.assert_allclose(tape.gradient(w, -X), -X)             # d(X*w) = X
    assert tape.retraces == 0
