"""Hardening found by an outside attack (issue 12): re-records that change the
outputs, memory errors, batch arguments, executors, debug_nans on batches,
return types, argnums, progress of re-recording batches, identity blocks.
Races (items 1 and 4) are in test_hardening_races.py."""
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import pyad
from pyad import batch


def grows_on_the_other_branch(x):
    if x > 0:
        return x * x
    return pyad.stack([x, 3.0 * x, 5.0 * x])


def vector_changes_shape(x):
    if x[0] > 0:
        return x * 2.0
    return np.sum(x) * np.ones(2)


# ---- item 2: a re-record whose outputs differ raises on every path ----

@pytest.mark.filterwarnings("ignore::pyad.RetraceWarning")
@pytest.mark.parametrize("call", [
    lambda t: t.gradient(-1.0),
    lambda t: t.gradient(np.array(-1.0)),
    lambda t: t.value_and_gradient(-1.0),
    lambda t: t(-1.0),
    lambda t: t.vjp(-1.0, 1.0),
    lambda t: t.jvp(-1.0, 1.0),
    lambda t: t.jacobian(-1.0),
    lambda t: t.hessian(-1.0),
    lambda t: t.hvp(-1.0, 1.0),
    lambda t: t.gradient(np.array([1.0, -1.0]), batch=True),
])
def test_a_re_record_with_other_outputs_raises(backend, call):
    t = pyad.trace(grows_on_the_other_branch, 1.0, backend=backend)
    with pytest.raises(pyad.BranchError, match=r"same number and shapes of outputs"):
        call(t)
    assert t.gradient(2.0) == 4.0  # the tape still holds the recorded branch


@pytest.mark.filterwarnings("ignore::pyad.RetraceWarning")
def test_a_re_record_with_outputs_of_another_shape_raises(backend):
    t = pyad.trace(vector_changes_shape, np.array([1.0, 2.0, 3.0]), backend=backend)
    x = np.array([-1.0, 2.0, 3.0])
    for call in (lambda: t(x), lambda: t.vjp(x, np.ones(3)), lambda: t.jacobian(x),
                 lambda: t.jvp(x, np.ones(3)), lambda: t(x[None], batch=True)):
        with pytest.raises(pyad.BranchError, match=r"\[\(2,\)\].*\[\(3,\)\]"):
            call()
    np.testing.assert_array_equal(t.jacobian(np.ones(3)), 2.0 * np.eye(3))


# ---- item 8: a failed growth leaves the tape usable ----

def _fail_next_array_op(t, backend, monkeypatch):
    """Make the next array op fail as an allocation would: the C tape's byte
    budget (set just above what it holds), the Python store's one recorder."""
    if backend == "c":
        t._store.shrink()  # capacity == what is used: the next op must grow the tape
        t._store.set_max_bytes(t.nbytes + 10 * 21)  # room for 10 ops, not for doubling
        return
    store, real = t._store, type(t._store)._room

    def fail_once(self, n, *slots):
        monkeypatch.setattr(type(store), "_room", real)
        raise MemoryError("out of memory")
    monkeypatch.setattr(type(store), "_room", fail_once)


def test_out_of_memory_in_an_array_op_keeps_the_tape_usable(backend, monkeypatch):
    t = pyad.Tape(backend=backend)
    x = t.input(np.arange(1.0, 5.0))
    s = t.input(2.0)
    y = x * s
    n, slots = t.n_ops, t.n_slots
    _fail_next_array_op(t, backend, monkeypatch)
    with pytest.raises(MemoryError) as err:
        pyad.sin(y * np.ones((50, 4)))
    assert str(err.value)  # never an empty message
    assert (t.n_ops, t.n_slots) == (n, slots) and not t.closed
    z = s * s + 1.0  # scalar ops after the failure: recorded, nothing lost
    t.output(np.sum(y) * z)
    assert t.n_slots == slots + 4   # s * s, + 1.0, the one sum row, * z
    gx, gs = t.gradient()
    np.testing.assert_array_equal(gx, np.full(4, 10.0))
    assert gs == 130.0  # d/ds of 10 s (s^2 + 1) at s = 2
    assert t() == 100.0


def test_a_memory_error_from_c_names_what_failed():
    t = pyad.Tape(backend="c")
    x = t.input(np.ones(3))
    t._store.set_max_bytes(t.nbytes)
    with pytest.raises(MemoryError, match="out of memory"):
        t.input(np.ones(10**5))
    assert np.sum(x).value == 3.0


# ---- item 9: threads= ----

def test_threads_is_capped_by_the_points_and_takes_numpy_ints(backend):
    t = pyad.trace(lambda x: np.sum(x * x), np.ones(3), backend=backend)
    X = np.arange(12.0).reshape(4, 3)
    for threads in (10**9, np.int64(2), np.int32(3), np.uint8(7)):
        np.testing.assert_array_equal(t.gradient(X, batch=True, threads=threads), 2 * X)
    assert batch._split(4, 10**9) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    for bad in (np.float64(2.0), 0, np.int64(-1), True, "2"):
        with pytest.raises(ValueError, match="threads must be a positive int"):
            t.gradient(X, batch=True, threads=bad)


class HugeExecutor(ThreadPoolExecutor):
    """An executor that claims a huge private worker count (pyad must not read it)."""

    def __init__(self):
        super().__init__(2)
        self._max_workers = 10**12


def test_an_executor_s_private_size_is_not_read(backend):
    t = pyad.trace(lambda x: np.sum(x * x), np.ones(3), backend=backend)
    X = np.arange(12.0).reshape(4, 3)
    with HugeExecutor() as pool:
        np.testing.assert_array_equal(t.gradient(X, batch=True, executor=pool), 2 * X)


# ---- item 10: executor results are checked; executor= everywhere; bit-for-bit ----

class Truncating(ThreadPoolExecutor):
    """Returns a result with the rows of every task's last point dropped."""

    def submit(self, fn, *args):
        def short():
            return tuple(a[:-1] for a in fn(*args))
        return super().submit(short)


class WrongDtype(ThreadPoolExecutor):
    def submit(self, fn, *args):
        def f32():
            return tuple(a.astype(np.float32) for a in fn(*args))
        return super().submit(f32)


def test_a_truncated_or_mistyped_executor_result_is_refused(backend):
    t = pyad.trace(lambda x: np.sum(x * x), np.ones(3), backend=backend)
    X = np.arange(12.0).reshape(4, 3)
    with Truncating(2) as pool:
        with pytest.raises(ValueError, match=r"executor.*points 0\.\.3.*shape \(3, "):
            t.gradient(X, batch=True, executor=pool)
    with WrongDtype(2) as pool:
        with pytest.raises(ValueError, match=r"executor.*float32"):
            t.gradient(X, batch=True, executor=pool)


def _mixed(x):
    """Transcendental ops, whose vectorized batch math rounds differently at a
    chunk's ragged end than in its full lanes (a split off the local chunk grid
    showed up as 1-ulp differences)."""
    return np.sum(pyad.exp(pyad.sin(x)) * pyad.log(x * x + 1.0) + pyad.tanh(x) * pyad.cos(x)
                  + pyad.sqrt(x * x + 2.0) + pyad.arctan(x))


def test_every_batched_method_takes_an_executor_and_matches_bit_for_bit(backend):
    rng = np.random.default_rng(3)
    n_points = 1000 if backend == "c" else 40
    X, V = rng.uniform(-2, 2, (n_points, 3)), rng.uniform(-1, 1, (n_points, 3))
    t = pyad.trace(_mixed, X[0], backend=backend)
    calls = {"value": lambda **k: t(X, batch=True, **k),
             "gradient": lambda **k: t.gradient(X, batch=True, **k),
             "jvp": lambda **k: t.jvp(X, V, batch=True, **k),
             "vjp": lambda **k: t.vjp(X, np.ones(n_points), batch=True, **k),
             "hvp": lambda **k: t.hvp(X, V, batch=True, **k),
             "jacobian": lambda **k: t.jacobian(X, batch=True, **k),
             "hessian": lambda **k: t.hessian(X, batch=True, **k)}
    with ThreadPoolExecutor(3) as pool:
        for name, call in calls.items():
            local, remote = call(), call(executor=pool)
            for a, b in zip(local if isinstance(local, tuple) else (local,),
                            remote if isinstance(remote, tuple) else (remote,)):
                assert np.array_equal(a, b), f"{backend}: {name} differs through an executor"
    np.testing.assert_allclose(calls["hessian"]()[5], t.hessian(X[5]), rtol=1e-12)


def test_executor_spans_are_whole_chunks():
    for nb, n_ops in ((1, 10), (10**5, 7), (12345, 400), (8192 * 3 + 1, 1)):
        spans = batch.executor_spans(nb, n_ops)
        chunk = batch.chunk_size(n_ops, nb)
        assert spans[0][0] == 0 and spans[-1][1] == nb
        assert all(lo % chunk == 0 and hi > lo for lo, hi in spans)
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))


# ---- item 11: debug_nans in batches ----

def test_debug_nans_applies_to_batches(backend):
    t = pyad.trace(pyad.log, 1.0, backend=backend)
    X = np.array([2.0, -1.0, 3.0])
    assert np.isnan(t(X, batch=True)[1])  # IEEE by default
    with pyad.debug_nans():
        for call in (lambda: t(X, batch=True), lambda: t.gradient(X, batch=True),
                     lambda: t.hvp(X, np.ones(3), batch=True)):
            with pytest.raises(FloatingPointError, match=r"batch point 1.*log.*-1\.0"):
                call()
        with pytest.raises(FloatingPointError, match=r"log"):
            t(-1.0)
        np.testing.assert_allclose(t(np.array([2.0, 3.0]), batch=True), np.log([2.0, 3.0]))


# ---- item 14: return types ----

def test_scalar_in_gives_float_out(backend):
    f = lambda x: x ** 3  # noqa: E731
    results = [pyad.hessian(f, backend=backend)(2.0), pyad.jacobian(f, backend=backend)(2.0),
               pyad.hvp(f, 2.0, 1.0, backend=backend), pyad.grad(f, backend=backend)(2.0)]
    t = pyad.trace(f, 2.0, backend=backend)
    results += [t.hessian(), t.hessian(3.0), t.jacobian(), t.jacobian(3.0, mode="reverse"),
                t.hvp(3.0, 1.0)]
    for r in results:
        assert type(r) is float, r
    assert results[:2] == [12.0, 12.0] and results[5] == 18.0


def test_batched_vjp_and_jvp_return_tuples(backend):
    t = pyad.trace(lambda x: pyad.sin(x) * 2.0, np.zeros(2), backend=backend)
    X, U = np.ones((3, 2)), np.ones((3, 2))
    for result in (t.vjp(X, U, batch=True), t.jvp(X, U, batch=True), t.vjp(X[0], U[0]),
                   t.jvp(X[0], U[0])):
        assert type(result) is tuple and len(result) == 2


# ---- item 15: argnums ----

@pytest.mark.parametrize("transform", [pyad.grad, pyad.value_and_grad])
def test_argnums_is_checked(backend, transform):
    f = lambda x, y: x * y  # noqa: E731
    for bad in (1.0, None, "0", (0, 1.0)):
        with pytest.raises(TypeError, match="argnums"):
            transform(f, argnums=bad, backend=backend)(2.0, 3.0)
    for bad in ((0, 0), (1, -1), ()):
        with pytest.raises(ValueError, match="argnums"):
            transform(f, argnums=bad, backend=backend)(2.0, 3.0)
    assert pyad.grad(f, argnums=np.int64(1), backend=backend)(2.0, 3.0) == 2.0
    assert pyad.grad(f, argnums=(1, 0), backend=backend)(2.0, 3.0) == (2.0, 3.0)


# ---- item 17: batches that re-record ----

def looped_branch(x):
    s = 0.0
    for i in range(3):
        if x[i] > 0:
            s = s + x[i] * x[i]
        else:
            s = s - x[i]
    return s


def test_a_mostly_re_recording_batch_warns_once_and_counts_its_progress(backend, monkeypatch,
                                                                        capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    t = pyad.trace(looped_branch, np.ones(3), backend=backend)
    X = -np.arange(1.0, 31.0).reshape(10, 3)
    X[0] = 1.0
    with pytest.warns(pyad.RetraceWarning, match="pyad.where") as caught:
        g = t.gradient(X, batch=True, progress=True)
    assert len([w for w in caught if w.category is pyad.RetraceWarning]) == 1
    assert issubclass(pyad.RetraceWarning, UserWarning)
    np.testing.assert_array_equal(g[1:], -np.ones((9, 3)))
    np.testing.assert_array_equal(g[0], 2 * np.ones(3))
    err = capsys.readouterr().err
    assert "10/10" not in err.split("19/19")[0]  # never "all done" before the re-records
    assert err.rstrip().endswith("19/19")  # 10 sweeps + 9 re-recorded points
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t.gradient(np.ones((10, 3)), batch=True)  # no re-records: no warning
        Y = np.ones((10, 3))
        Y[:5] = -1.0
        t.gradient(Y, batch=True)  # half re-records: still no warning


def test_progress_grows_by_the_re_recorded_points(capsys):
    bar = batch.Progress(4, "demo")
    bar.update(4)
    bar.grow(2)
    bar.update(2)
    bar.close()
    err = capsys.readouterr().err
    assert err.rstrip().endswith("demo: 6/6") and bar.total == 6


# ---- item 18: no full identity per block ----

def test_jacobian_and_hessian_do_not_build_an_identity_per_block(backend, monkeypatch):
    built = []
    real_eye = np.eye

    def spy(n, *args, **kwargs):
        built.append(n)
        return real_eye(n, *args, **kwargs)

    f = lambda x: pyad.sin(x) * np.sum(x * x)  # noqa: E731
    x = np.linspace(0.5, 1.5, 9)
    t = pyad.trace(f, x, backend=backend)
    g = pyad.trace(lambda x: np.sum(pyad.sin(x) * x), x, backend=backend)
    want = (t.jacobian(x, mode="forward"), t.jacobian(x, mode="reverse"), g.hessian(x))
    monkeypatch.setattr(np, "eye", spy)
    monkeypatch.setattr(pyad.Tape, "_direction_blocks",
                        lambda self, count: [(lo, min(count, lo + 2)) for lo in range(0, count, 2)])
    got = (t.jacobian(x, mode="forward"), t.jacobian(x, mode="reverse"), g.hessian(x))
    assert built.count(9) == 0, built
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
