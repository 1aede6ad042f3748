"""Batched replay, threads, executors, branch flips in a batch, and saving /
loading / pickling tapes, on both backends.

The oracle for a batch is the per-point loop (single-point replay, or a fresh
pyad.grad for points where a branch flips); the oracle for a saved tape is the
original tape (bitwise on the same backend, 1e-12 across backends).
"""
import concurrent.futures
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pyad
from helpers import block_matrix

RTOL = 1e-12   # batches use vectorized libm in C: a few ulp per elementary function
N_POINTS = 12  # the python backend is slow: keep batches small
OTHER = {"c": "python", "python": "c"}


# ---------------------------------------------------------------------------
# module-level functions (so that they pickle)
# ---------------------------------------------------------------------------

def f_scalar(x):
    """(4,) -> scalar, touching many primitives."""
    return (np.sum(np.sin(x) * np.exp(-0.5 * x ** 2)) + np.log1p(x @ x)
            + np.prod(np.tanh(x + 1.0)) + np.sum(np.sqrt(x * x + 1.0) * np.arctan(x))
            + np.max(x) * np.cos(x[0]) + x[1] ** 3 / (2.0 + x[2] ** 2))


def f_vector(x):
    """(4,) -> (3,)."""
    return np.concatenate([np.cos(x[:2] * x[2:]),
                           np.log(1.0 + x[:1] ** 2) * np.expm1(x[3:]) + np.arctan2(x[1:2], 2.0)])


def f_matrix(x):
    """(2, 2) -> scalar."""
    return np.sum(np.exp(x @ x) * x.T) + np.sum(np.sinh(x) ** 2)


def f_two_args(a, b):
    """a scalar, b (3,) -> scalar."""
    return a * np.sum(np.sin(b)) + np.exp(a) * b[0] * b[2] + a ** 2 * np.sum(b * b)


def f_branch(x):
    """A Python `if` on an active value: records a guard."""
    if x[0] > 0:
        return np.sum(x ** 2) * x[1] + np.sin(x[2])
    return np.sum(np.sin(x)) - x[0] ** 3 * x[2]


def points(n, dim, seed, lo=-1.0, hi=1.0):
    return np.random.default_rng(seed).uniform(lo, hi, size=(n, dim))


def close(got, want, rtol=RTOL, atol=1e-14):
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------
# batched replay equals the per-point loop
# ---------------------------------------------------------------------------

def test_batch_value_gradient_hvp_equal_the_per_point_loop(backend):
    X = points(N_POINTS, 4, 1)
    V = points(N_POINTS, 4, 2)
    tape = pyad.trace(f_scalar, X[0], backend=backend)

    y = tape(X, batch=True)
    assert y.shape == (N_POINTS,) and y.dtype == np.float64
    close(y, [tape(x) for x in X])

    g = tape.gradient(X, batch=True)
    assert g.shape == (N_POINTS, 4)
    close(g, np.array([tape.gradient(x) for x in X]))

    hv = tape.hvp(X, V, batch=True)
    assert hv.shape == (N_POINTS, 4)
    close(hv, np.array([tape.hvp(x, v) for x, v in zip(X, V)]))

    H = tape.hessian(X, batch=True)
    assert H.shape == (N_POINTS, 4, 4)
    close(H, np.array([tape.hessian(x) for x in X]))
    assert np.array_equal(H, np.swapaxes(H, 1, 2))

    # a scalar output: the batch jvp / vjp are directional derivatives / scaled gradients
    yj, tj = tape.jvp(X, V, batch=True)
    close(yj, y)
    close(tj, np.einsum("ki,ki->k", g, V), rtol=1e-11)
    U = np.linspace(-2, 2, N_POINTS)
    yv, gv = tape.vjp(X, U, batch=True)
    close(yv, y)
    close(gv, g * U[:, None])


def test_batch_jvp_vjp_jacobian_of_a_vector_function(backend):
    X = points(N_POINTS, 4, 3)
    V = points(N_POINTS, 4, 4)
    U = points(N_POINTS, 3, 5)
    tape = pyad.trace(f_vector, X[0], backend=backend)

    y = tape(X, batch=True)
    assert y.shape == (N_POINTS, 3)
    close(y, np.array([tape(x) for x in X]))

    yj, jv = tape.jvp(X, V, batch=True)
    assert yj.shape == jv.shape == (N_POINTS, 3)
    loop = [tape.jvp(x, v) for x, v in zip(X, V)]
    close(yj, np.array([a for a, _ in loop]))
    close(jv, np.array([b for _, b in loop]))

    yv, uj = tape.vjp(X, U, batch=True)
    assert yv.shape == (N_POINTS, 3) and uj.shape == (N_POINTS, 4)
    loop = [tape.vjp(x, u) for x, u in zip(X, U)]
    close(yv, np.array([a for a, _ in loop]))
    close(uj, np.array([b for _, b in loop]))

    for mode in ("forward", "reverse", "auto"):
        J = tape.jacobian(X, mode=mode, batch=True)
        assert J.shape == (N_POINTS, 3, 4), mode
        close(J, np.array([tape.jacobian(x, mode=mode) for x in X]))
        # and the batch Jacobian is consistent with the batch jvp / vjp
        close(np.einsum("kij,kj->ki", J, V), jv, rtol=1e-11)
        close(np.einsum("ki,kij->kj", U, J), uj, rtol=1e-11)


def test_batch_with_a_2d_input_keeps_the_shapes(backend):
    X = points(6, 4, 6).reshape(6, 2, 2)
    V = points(6, 4, 7).reshape(6, 2, 2)
    tape = pyad.trace(f_matrix, X[0], backend=backend)
    close(tape(X, batch=True), [tape(x) for x in X])
    g = tape.gradient(X, batch=True)
    assert g.shape == (6, 2, 2)
    close(g, np.array([tape.gradient(x) for x in X]))
    hv = tape.hvp(X, V, batch=True)
    assert hv.shape == (6, 2, 2)
    close(hv, np.array([tape.hvp(x, v) for x, v in zip(X, V)]))
    H = tape.hessian(X, batch=True)
    assert H.shape == (6, 2, 2, 2, 2)
    close(H, np.array([tape.hessian(x) for x in X]))


def test_batch_of_one_point_and_a_large_batch(backend):
    n = 30 if backend == "python" else 3000  # more than one C chunk
    X = points(n, 4, 8)
    tape = pyad.trace(f_scalar, X[0], backend=backend)
    close(tape.gradient(X[:1], batch=True), tape.gradient(X[0])[None])
    g = tape.gradient(X, batch=True)
    idx = np.random.default_rng(0).choice(n, size=min(n, 25), replace=False)
    close(g[idx], np.array([tape.gradient(X[k]) for k in idx]))


def test_batch_with_several_input_arguments(backend):
    rng = np.random.default_rng(9)
    A = rng.uniform(-1, 1, size=N_POINTS)
    B = rng.uniform(-1, 1, size=(N_POINTS, 3))
    tape = pyad.trace(f_two_args, 0.3, np.array([0.1, -0.2, 0.5]), backend=backend)
    assert tape.n_inputs == 4

    y = tape(A, B, batch=True)
    assert y.shape == (N_POINTS,)
    close(y, [tape(a, b) for a, b in zip(A, B)])
    close(y, [f_two_args(a, b) for a, b in zip(A, B)], rtol=1e-13)

    gA, gB = tape.gradient(A, B, batch=True)
    assert gA.shape == (N_POINTS,) and gB.shape == (N_POINTS, 3)
    loop = [tape.gradient(a, b) for a, b in zip(A, B)]
    close(gA, [ga for ga, _ in loop])
    close(gB, np.array([gb for _, gb in loop]))
    # and a fresh functional gradient per point
    fresh = [pyad.grad(f_two_args, argnums=(0, 1), backend=backend)(a, b) for a, b in zip(A, B)]
    close(gA, [ga for ga, _ in fresh])
    close(gB, np.array([gb for _, gb in fresh]))
    # closed form
    close(gA, np.sum(np.sin(B), 1) + np.exp(A) * B[:, 0] * B[:, 2] + 2 * A * np.sum(B * B, 1),
          rtol=1e-12)

    VA = rng.normal(size=N_POINTS)
    VB = rng.normal(size=(N_POINTS, 3))
    hA, hB = tape.hvp((A, B), (VA, VB), batch=True)
    assert hA.shape == (N_POINTS,) and hB.shape == (N_POINTS, 3)
    loop = [tape.hvp((a, b), (va, vb)) for a, b, va, vb in zip(A, B, VA, VB)]
    close(hA, [h for h, _ in loop])
    close(hB, np.array([h for _, h in loop]))

    nested = tape.hessian((A, B), batch=True)    # nested as JAX nests it
    assert [[np.shape(b) for b in row] for row in nested] == \
        [[(N_POINTS,), (N_POINTS, 3)], [(N_POINTS, 3), (N_POINTS, 3, 3)]]
    H = block_matrix(nested, [1, 3], [1, 3], lead=(N_POINTS,))
    close(H, np.array([block_matrix(tape.hessian((a, b)), [1, 3], [1, 3]) for a, b in zip(A, B)]))
    close(np.einsum("kij,kj->ki", H, np.column_stack([VA, VB])), np.column_stack([hA, hB]),
          rtol=1e-11)


def test_batch_argument_mismatch_is_a_value_error(backend):
    tape = pyad.trace(f_two_args, 0.3, np.array([0.1, -0.2, 0.5]), backend=backend)
    A, B = np.zeros(5), np.zeros((4, 3))
    with pytest.raises(ValueError):
        tape.gradient(A, B, batch=True)            # different numbers of points
    with pytest.raises(ValueError):
        tape.gradient(A, np.zeros((5, 2)), batch=True)  # wrong trailing shape
    t1 = pyad.trace(f_scalar, np.zeros(4), backend=backend)
    with pytest.raises(ValueError):
        t1.hvp(np.zeros((5, 4)), np.zeros((4, 4)), batch=True)  # rows of directions


# ---------------------------------------------------------------------------
# threads
# ---------------------------------------------------------------------------

def test_threads_give_the_same_results_as_one_thread(backend):
    n = 16 if backend == "python" else 400
    X = points(n, 4, 11)
    V = points(n, 4, 12)
    tape = pyad.trace(f_scalar, X[0], backend=backend)
    for threads in (2, 3):
        close(tape(X, batch=True, threads=threads), tape(X, batch=True, threads=None))
        close(tape.gradient(X, batch=True, threads=threads),
              tape.gradient(X, batch=True, threads=None))
        close(tape.hvp(X, V, batch=True, threads=threads), tape.hvp(X, V, batch=True))
        a = tape.jvp(X, V, batch=True, threads=threads)
        b = tape.jvp(X, V, batch=True)
        close(a[0], b[0])
        close(a[1], b[1])
    tv = pyad.trace(f_vector, X[0], backend=backend)
    U = points(n, 3, 13)
    a = tv.vjp(X, U, batch=True, threads=2)
    b = tv.vjp(X, U, batch=True, threads=None)
    close(a[0], b[0])
    close(a[1], b[1])


def test_threads_with_branch_flips(backend):
    X = branch_points(14)
    flips = int(np.sum(X[:, 0] <= 0))
    # flipping points in both threads' halves, and points that do not flip
    assert all(0 < np.sum(half[:, 0] <= 0) < len(half) for half in np.split(X, 2))
    tape = pyad.trace(f_branch, X[0], backend=backend)
    g2 = tape.gradient(X, batch=True, threads=2)
    close(g2, np.array([pyad.grad(f_branch, backend=backend)(x) for x in X]))
    assert tape.retraces == flips


# ---------------------------------------------------------------------------
# branch flips in a batch
# ---------------------------------------------------------------------------

def branch_points(seed=15):
    X = points(N_POINTS, 3, seed)
    X[0, 0] = 0.7                        # recorded point: the `x[0] > 0` branch
    X[1::3, 0] = -np.abs(X[1::3, 0]) - 0.1  # some points flip
    X[2::3, 0] = np.abs(X[2::3, 0]) + 0.1   # some do not
    return X


def test_traced_tape_re_records_only_the_flipping_points(backend):
    X = branch_points()
    flips = int(np.sum(X[:, 0] <= 0))
    assert 0 < flips < N_POINTS
    tape = pyad.trace(f_branch, X[0], backend=backend)
    assert tape.retraces == 0
    fresh_g = np.array([pyad.grad(f_branch, backend=backend)(x) for x in X])
    fresh_y = np.array([f_branch(x) for x in X])

    g = tape.gradient(X, batch=True)
    close(g, fresh_g)
    assert tape.retraces == flips

    y = tape(X, batch=True)
    close(y, fresh_y, rtol=1e-13)
    assert tape.retraces == 2 * flips

    V = points(N_POINTS, 3, 16)
    hv = tape.hvp(X, V, batch=True)
    close(hv, np.array([pyad.hvp(f_branch, x, v, backend=backend) for x, v in zip(X, V)]))
    assert tape.retraces == 3 * flips

    H = tape.hessian(X, batch=True)
    close(H, np.array([pyad.hessian(f_branch, backend=backend)(x) for x in X]))

    # points that do not flip stay on the fast path: a batch of them re-records nothing
    before = tape.retraces
    same = X[X[:, 0] > 0]
    close(tape.gradient(same, batch=True), fresh_g[X[:, 0] > 0])
    assert tape.retraces == before


def test_traced_tape_re_records_at_a_single_flipping_point(backend):
    x0 = np.array([0.7, 0.2, -0.4])
    x1 = np.array([-0.5, 0.2, -0.4])
    tape = pyad.trace(f_branch, x0, backend=backend)
    close(tape.gradient(x1), pyad.grad(f_branch, backend=backend)(x1))
    assert tape.retraces == 1
    close(tape(x1), f_branch(x1), rtol=1e-13)
    close(tape.hessian(x1), pyad.hessian(f_branch, backend=backend)(x1))
    # and back again
    close(tape.gradient(x0), pyad.grad(f_branch, backend=backend)(x0))
    assert tape.retraces == 2


def _assert_branch_error_names(excinfo, point):
    msg = str(excinfo.value)
    assert np.array2string(np.asarray(point), threshold=8) in msg, msg


def test_retrace_false_tape_raises_branch_error_naming_the_point(backend):
    X = branch_points()
    tape = pyad.trace(f_branch, X[0], backend=backend, retrace=False)
    first_flip = X[np.flatnonzero(X[:, 0] <= 0)[0]]
    with pytest.raises(pyad.BranchError) as ei:
        tape.gradient(X, batch=True)
    _assert_branch_error_names(ei, first_flip)
    with pytest.raises(pyad.BranchError) as ei:
        tape(X, batch=True)
    _assert_branch_error_names(ei, first_flip)
    with pytest.raises(pyad.BranchError) as ei:
        tape.hessian(X, batch=True)
    with pytest.raises(pyad.BranchError) as ei:
        tape.gradient(first_flip)
    _assert_branch_error_names(ei, first_flip)
    assert tape.retraces == 0
    # the tape is still good where the branch holds
    ok = X[X[:, 0] > 0]
    close(tape.gradient(ok, batch=True),
          np.array([pyad.grad(f_branch, backend=backend)(x) for x in ok]))


def test_explicit_tape_raises_branch_error_naming_the_point(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.array([0.7, 0.2, -0.4]))
        tape.output(f_branch(x))
    bad = np.array([-0.5, 0.25, -0.4])
    with pytest.raises(pyad.BranchError) as ei:
        tape.gradient(bad)
    _assert_branch_error_names(ei, bad)
    X = np.array([[0.7, 0.2, -0.4], [0.3, 0.1, 0.1], bad])
    with pytest.raises(pyad.BranchError) as ei:
        tape.gradient(X, batch=True)
    _assert_branch_error_names(ei, bad)
    with pytest.raises(pyad.BranchError):
        tape.hvp(X, np.ones_like(X), batch=True)
    close(tape.gradient(X[:2], batch=True),
          np.array([pyad.grad(f_branch, backend=backend)(x) for x in X[:2]]))


# ---------------------------------------------------------------------------
# saving, loading, pickling
# ---------------------------------------------------------------------------

def _replay_everything(tape, x, X):
    out = {"value": tape(x), "gradient": tape.gradient(x), "hessian": tape.hessian(x),
           "hvp": tape.hvp(x, np.arange(1.0, 5.0)), "recorded value": tape(),
           "recorded gradient": tape.gradient(), "batch gradient": tape.gradient(X, batch=True),
           "batch value": tape(X, batch=True)}
    return out


def _assert_bitwise(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(np.asarray(a[k]), np.asarray(b[k])), k
        assert np.shape(a[k]) == np.shape(b[k]), k


def test_save_and_load_replay_bitwise(backend, tmp_path):
    X = points(8, 4, 20)
    tape = pyad.trace(f_scalar, X[0], backend=backend)
    path = tmp_path / "f.pyad"
    tape.save(str(path))
    loaded = pyad.load(str(path), backend=backend)
    assert loaded.backend == backend
    assert (loaded.n_inputs, loaded.n_outputs, loaded.n_ops) == \
        (tape.n_inputs, tape.n_outputs, tape.n_ops)
    x = X[3]
    _assert_bitwise(_replay_everything(loaded, x, X), _replay_everything(tape, x, X))
    assert isinstance(loaded(x), float)


def test_pickle_replays_bitwise(backend):
    X = points(8, 4, 21)
    tape = pyad.trace(f_scalar, X[0], backend=backend)
    clone = pickle.loads(pickle.dumps(tape))
    assert isinstance(clone, pyad.Tape) and clone.backend == backend
    _assert_bitwise(_replay_everything(clone, X[5], X), _replay_everything(tape, X[5], X))
    # the pickle is the saved format
    assert pickle.loads(pickle.dumps(clone)).n_ops == tape.n_ops


def test_save_keeps_argument_and_output_shapes(backend, tmp_path):
    tape = pyad.trace(f_two_args, 0.3, np.array([0.1, -0.2, 0.5]), backend=backend)
    path = tmp_path / "two.pyad"
    tape.save(path)
    loaded = pyad.load(path, backend=backend)
    a, b = -0.4, np.array([0.9, 0.3, -0.7])
    assert loaded(a, b) == tape(a, b)
    ga, gb = loaded.gradient(a, b)
    ta, tb = tape.gradient(a, b)
    assert isinstance(ga, float) and ga == ta and np.array_equal(gb, tb)
    assert np.array_equal(block_matrix(loaded.hessian((a, b)), [1, 3], [1, 3]),
                          block_matrix(tape.hessian((a, b)), [1, 3], [1, 3]))

    tv = pyad.trace(f_vector, np.array([0.1, 0.2, 0.3, 0.4]), backend=backend)
    lv = pickle.loads(pickle.dumps(tv))
    x = np.array([-0.3, 0.5, 0.8, -0.1])
    assert np.array_equal(lv(x), tv(x)) and lv(x).shape == (3,)
    assert np.array_equal(lv.jacobian(x, mode="forward"), tv.jacobian(x, mode="forward"))
    assert np.array_equal(lv.jacobian(x, mode="reverse"), tv.jacobian(x, mode="reverse"))

    tm = pyad.trace(f_matrix, np.eye(2) * 0.5, backend=backend)
    lm = pickle.loads(pickle.dumps(tm))
    xm = np.array([[0.2, -0.1], [0.4, 0.3]])
    assert lm.gradient(xm).shape == (2, 2)
    assert np.array_equal(lm.gradient(xm), tm.gradient(xm))
    assert np.array_equal(lm.hessian(xm), tm.hessian(xm))


def test_loading_with_the_other_backend_agrees(backend, tmp_path):
    X = points(8, 4, 22)
    V = points(8, 4, 23)
    tape = pyad.trace(f_scalar, X[0], backend=backend)
    path = tmp_path / "f.pyad"
    tape.save(path)
    other = pyad.load(path, backend=OTHER[backend])
    assert other.backend == OTHER[backend]
    x = X[2]
    close(other(x), tape(x))
    close(other.gradient(x), tape.gradient(x))
    close(other.hessian(x), tape.hessian(x))
    close(other.hvp(x, V[0]), tape.hvp(x, V[0]))
    close(other.gradient(X, batch=True), tape.gradient(X, batch=True))
    close(other.hvp(X, V, batch=True), tape.hvp(X, V, batch=True))
    # the file's bytes through pyad.loads, into the other backend
    pk = pyad.loads(path.read_bytes(), backend=OTHER[backend])
    close(pk.gradient(x), tape.gradient(x))
    close(pk.hessian(x), tape.hessian(x))


SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import pyad
    tape = pyad.load(sys.argv[1], backend=sys.argv[2])
    x = np.load(sys.argv[3])
    print("value", repr(float(tape(x))))
    print("gradient", [repr(float(v)) for v in tape.gradient(x)])
    print("hessian", [repr(float(v)) for v in tape.hessian(x).ravel()])
    print("batch", [repr(float(v)) for v in tape.gradient(np.stack([x, x + 0.5]), batch=True).ravel()])
""")


def _printed(tape, x):
    return "\n".join([
        "value " + repr(float(tape(x))),
        "gradient " + str([repr(float(v)) for v in tape.gradient(x)]),
        "hessian " + str([repr(float(v)) for v in tape.hessian(x).ravel()]),
        "batch " + str([repr(float(v)) for v in
                        tape.gradient(np.stack([x, x + 0.5]), batch=True).ravel()]),
    ])


def test_saved_tape_replays_identically_in_another_process(backend, tmp_path):
    X = points(4, 4, 24)
    tape = pyad.trace(f_scalar, X[0], backend=backend)
    path, xpath = tmp_path / "f.pyad", tmp_path / "x.npy"
    tape.save(path)
    np.save(xpath, X[1])
    env = dict(os.environ)
    env.pop("PYAD_BACKEND", None)
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(path), backend, str(xpath)],
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == _printed(tape, X[1])


# ---------------------------------------------------------------------------
# executor=
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pool():
    with concurrent.futures.ProcessPoolExecutor(2) as ex:
        yield ex


def test_process_pool_batch_equals_the_local_batch(backend, pool):
    X = points(N_POINTS, 4, 30)
    V = points(N_POINTS, 4, 31)
    tape = pyad.trace(f_scalar, X[0], backend=backend)
    close(tape.gradient(X, batch=True, executor=pool), tape.gradient(X, batch=True))
    close(tape(X, batch=True, executor=pool), tape(X, batch=True))
    close(tape.hvp(X, V, batch=True, executor=pool), tape.hvp(X, V, batch=True))
    tv = pyad.trace(f_vector, X[0], backend=backend)
    a, b = tv.jvp(X, V, batch=True, executor=pool), tv.jvp(X, V, batch=True)
    close(a[0], b[0])
    close(a[1], b[1])


def test_process_pool_batch_with_branch_flips(backend, pool):
    X = branch_points(32)
    flips = int(np.sum(X[:, 0] <= 0))
    tape = pyad.trace(f_branch, X[0], backend=backend)
    g = tape.gradient(X, batch=True, executor=pool)
    close(g, np.array([pyad.grad(f_branch, backend=backend)(x) for x in X]))
    assert tape.retraces == flips
    loaded = pickle.loads(pickle.dumps(tape))
    with pytest.raises(pyad.BranchError):
        loaded.gradient(X, batch=True, executor=pool)


def test_process_pool_with_several_arguments(backend, pool):
    rng = np.random.default_rng(33)
    A = rng.uniform(-1, 1, size=N_POINTS)
    B = rng.uniform(-1, 1, size=(N_POINTS, 3))
    tape = pyad.trace(f_two_args, 0.3, np.array([0.1, -0.2, 0.5]), backend=backend)
    ga, gb = tape.gradient(A, B, batch=True, executor=pool)
    la, lb = tape.gradient(A, B, batch=True)
    close(ga, la)
    close(gb, lb)


# ---------------------------------------------------------------------------
# a loaded tape has no traced function
# ---------------------------------------------------------------------------

def test_loaded_tape_raises_branch_error_where_the_original_re_records(backend, tmp_path):
    x0 = np.array([0.7, 0.2, -0.4])
    bad = np.array([-0.5, 0.25, -0.4])
    tape = pyad.trace(f_branch, x0, backend=backend)
    path = tmp_path / "branch.pyad"
    tape.save(path)
    for loaded in (pyad.load(path, backend=backend), pickle.loads(pickle.dumps(tape)),
                   pyad.load(path, backend=OTHER[backend])):
        close(loaded.gradient(x0), tape.gradient(x0))
        with pytest.raises(pyad.BranchError) as ei:
            loaded.gradient(bad)
        _assert_branch_error_names(ei, bad)
        with pytest.raises(pyad.BranchError):
            loaded(bad)
        with pytest.raises(pyad.BranchError):
            loaded.hessian(bad)
        with pytest.raises(pyad.BranchError) as ei:
            loaded.gradient(np.stack([x0, bad]), batch=True)
        _assert_branch_error_names(ei, bad)
        assert loaded.retraces == 0
    # the original still re-records there
    close(tape.gradient(bad), pyad.grad(f_branch, backend=backend)(bad))
    assert tape.retraces == 1


# ---------------------------------------------------------------------------
# an explicit tape with two input and two output arguments
# ---------------------------------------------------------------------------

def _two_by_two(backend):
    with pyad.Tape(backend=backend) as tape:
        a = tape.input(2.0)
        b = tape.input(np.array([1.0, 3.0]))
        tape.output(a * b)
        tape.output(pyad.sin(a) + b[0] * b[1] ** 2)
    return tape


def test_explicit_tape_with_several_outputs_batches_like_the_loop(backend, tmp_path):
    tape = _two_by_two(backend)
    rng = np.random.default_rng(40)
    A, B = rng.normal(size=5), rng.normal(size=(5, 2))
    VA, VB = rng.normal(size=5), rng.normal(size=(5, 2))
    U1, U2 = rng.normal(size=(5, 2)), rng.normal(size=5)

    y1, y2 = tape(A, B, batch=True)
    assert y1.shape == (5, 2) and y2.shape == (5,)
    close(y1, A[:, None] * B)
    close(y2, np.sin(A) + B[:, 0] * B[:, 1] ** 2, rtol=1e-13)

    (y1, y2), (t1, t2) = tape.jvp((A, B), (VA, VB), batch=True)
    close(t1, VA[:, None] * B + A[:, None] * VB)
    close(t2, np.cos(A) * VA + VB[:, 0] * B[:, 1] ** 2 + 2 * B[:, 0] * B[:, 1] * VB[:, 1],
          rtol=1e-12)
    for k in range(5):
        (s1, s2), (d1, d2) = tape.jvp((A[k], B[k]), (VA[k], VB[k]))
        close(t1[k], d1)
        close(t2[k], d2)

    _, (ga, gb) = tape.vjp((A, B), (U1, U2), batch=True)
    assert ga.shape == (5,) and gb.shape == (5, 2)
    for k in range(5):
        _, (sa, sb) = tape.vjp((A[k], B[k]), (U1[k], U2[k]))
        close(ga[k], sa)
        close(gb[k], sb)

    # several arguments and outputs: nested as JAX nests it, outputs outside
    J = block_matrix(tape.jacobian((A, B), batch=True), [2, 1], [1, 2], lead=(5,))
    for k in range(5):
        for mode in ("forward", "reverse"):
            close(J[k], block_matrix(tape.jacobian((A[k], B[k]), mode=mode), [2, 1], [1, 2]))

    path = tmp_path / "two_by_two.pyad"
    tape.save(path)
    loaded = pyad.load(path, backend=backend)
    for got, want in zip(loaded(A, B, batch=True), tape(A, B, batch=True)):
        assert np.array_equal(got, want)
    assert np.array_equal(block_matrix(loaded.jacobian((A, B), batch=True), [2, 1], [1, 2],
                                       lead=(5,)), J)
    r1, r2 = loaded()
    assert np.array_equal(r1, [2.0, 6.0]) and r2 == np.sin(2.0) + 9.0


def test_batch_jacobian_with_constant_and_repeated_outputs(backend):
    def f(x):
        p = x[:1] * x[1:]
        return np.concatenate([p, p, np.ones(1), x[::-1]])

    X = points(4, 2, 41)
    tape = pyad.trace(f, X[0], backend=backend)
    expected = np.array([[[x[1], x[0]], [x[1], x[0]], [0.0, 0.0], [0.0, 1.0], [1.0, 0.0]]
                         for x in X])
    for mode in ("forward", "reverse", "auto"):
        J = tape.jacobian(X, mode=mode, batch=True)
        assert J.shape == (4, 5, 2)
        np.testing.assert_array_equal(J, expected)
    close(tape(X, batch=True)[:, 2], np.ones(4))


def test_bad_threads_and_executors_are_refused_clearly(backend):
    tape = pyad.trace(lambda x: np.sum(x * x), np.ones(3), backend=backend)
    X = np.ones((4, 3))
    for bad in ("a", 2.5, 0, -1, True):
        with pytest.raises(ValueError, match="threads must be a positive int"):
            tape.gradient(X, batch=True, threads=bad)
    with pytest.raises(TypeError, match="submit"):
        tape.gradient(X, batch=True, executor=object())
    np.testing.assert_array_equal(tape.gradient(X, batch=True, threads=1), 2 * X)
