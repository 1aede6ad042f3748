"""Where a split batch puts its rows (issue 17): every participant writes the
rows of the chunks it takes straight into the final result arrays, which are
allocated uninitialised, so a row written one place off, a chunk left out or
a chunk swept twice shows up as a wrong row, never as a silently right answer.

Chunks here are fixed at 40 points (`chunks_of_40`), so the batch sizes below
sit on either side of chunk edges: one point, a chunk less one, one chunk, a
chunk and one, and several chunks with a short last one. Every kind of batched
sweep (values, JVP, VJP with per-point cotangents, the gradient's one shared
cotangent row, HVP) is compared bit for bit with threads=1, and threads=1 with
single-point sweeps of a function whose roundings are fixed (+ - * only).

The executor tests without a backend parameter are about the C store's path,
where the calling thread takes chunks beside the executor's tasks; the Python
backend sends every task the tape's bytes and waits for them all."""
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import pyad
from pyad import batch
from pyad.store import Sweep

CHUNK = 40
SIZES = (1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 5 * CHUNK + 3)


def polynomial(x):
    """Only + - *: single-point and batched sweeps round alike, bit for bit."""
    return np.sum(x[1:] * x[:-1] - 3.0 * x[1:] * x[1:]) + x[0] * x[0] * x[0]


def two_outputs(x):
    return pyad.stack([x[0] * x[1] - x[2], x[2] * x[2] * x[0] + 2.0 * x[1]])


@pytest.fixture
def chunks_of_40(monkeypatch):
    """Split even small batches, in chunks of exactly CHUNK points."""
    monkeypatch.setattr(batch, "MIN_THREAD_WORK", 1)
    monkeypatch.setattr(batch, "MIN_CHUNK", CHUNK)
    monkeypatch.setattr(batch, "CHUNKS_PER_BATCH", 10**6)


def rows(nb, n=4, seed=0):
    return np.random.default_rng(seed).uniform(-1.5, 1.5, size=(nb, n))


def sweeps(tape, X, V, U):
    """(name, call(**how), the same at one point) for every kind of batched sweep."""
    return {
        "values": (lambda **k: tape(X, batch=True, **k), lambda b: tape(X[b])),
        "jvp": (lambda **k: tape.jvp(X, V, batch=True, **k),
                lambda b: tape.jvp(X[b], V[b])),
        "vjp per-point u": (lambda **k: tape.vjp(X, U, batch=True, **k),
                            lambda b: tape.vjp(X[b], U[b])),
        "hvp": (lambda **k: tape.hvp(X, V, batch=True, **k),
                lambda b: tape.hvp(X[b], V[b])),
    }


def parts(result):
    return result if isinstance(result, tuple) else (result,)


def splits(backend, pool):
    hows = [{"threads": 2}, {"threads": 3}, {"executor": pool}]
    return hows if backend == "c" else hows[:1] + hows[2:]


def check_rows(call, single, nb, hows, what):
    one = call(threads=1)
    for b in range(nb):  # every row is the single-point sweep's, bit for bit
        for got, want in zip(parts(one), parts(single(b))):
            assert np.array_equal(got[b], want), f"{what}: row {b} of {nb}"
    for how in hows:
        for got, want in zip(parts(call(**how)), parts(one)):
            assert np.array_equal(got, want), f"{what} {how}: differs from threads=1"


@pytest.mark.parametrize("nb", SIZES)
def test_every_kind_writes_every_row_in_its_place(backend, nb, chunks_of_40):
    X, V = rows(nb), rows(nb, seed=1)
    U = np.random.default_rng(2).uniform(-1, 1, nb)
    tape = pyad.trace(polynomial, X[0], backend=backend)
    with ThreadPoolExecutor(2) as pool:
        for name, (call, single) in sweeps(tape, X, V, U).items():
            check_rows(call, single, nb, splits(backend, pool), f"{backend} {name}")
        # the gradient hands C one shared cotangent row, not nb of them
        check_rows(lambda **k: tape.gradient(X, batch=True, **k),
                   lambda b: tape.gradient(X[b]), nb, splits(backend, pool),
                   f"{backend} gradient (shared u)")


@pytest.mark.parametrize("nb", (CHUNK + 1, 3 * CHUNK + 7))
def test_several_outputs_and_per_point_cotangents(backend, nb, chunks_of_40):
    X, V = rows(nb, 3), rows(nb, 3, seed=1)
    U = rows(nb, 2, seed=2)
    tape = pyad.trace(two_outputs, X[0], backend=backend)
    with ThreadPoolExecutor(3) as pool:
        for name, (call, single) in sweeps(tape, X, V, U).items():
            if name != "hvp":  # a scalar output's
                check_rows(call, single, nb, splits(backend, pool), f"{backend} {name}")


def test_nan_points_at_chunk_edges_stay_in_their_rows(backend, chunks_of_40):
    """A NaN point spoils its own row only, wherever it falls in a chunk."""
    nb = 3 * CHUNK + 1
    X = rows(nb)
    nan_rows = [0, CHUNK - 1, CHUNK, 2 * CHUNK + 1, nb - 1]
    X[nan_rows, 1] = np.nan
    tape = pyad.trace(polynomial, rows(1)[0], backend=backend)
    with ThreadPoolExecutor(2) as pool:
        for how in [{"threads": 1}] + splits(backend, pool):
            g = tape.gradient(X, batch=True, **how)
            bad = np.flatnonzero(np.isnan(g).any(axis=1))
            assert bad.tolist() == nan_rows, how
            ok = np.setdiff1d(np.arange(nb), nan_rows)
            np.testing.assert_array_equal(g[ok], [tape.gradient(X[b]) for b in ok])


def branchy(x):
    if x[0] > 0:  # a guard: points with x[0] <= 0 take the other branch
        return np.sum(x * x)
    return np.sum(x * x * x)


def test_flipped_guards_at_chunk_edges_are_re_recorded_in_their_rows(backend, chunks_of_40):
    nb = 3 * CHUNK + 1
    X = np.abs(rows(nb)) + 0.1
    flipped = [0, CHUNK - 1, CHUNK, 2 * CHUNK, nb - 1]
    X[flipped, 0] = -X[flipped, 0]
    tape = pyad.trace(branchy, X[1], backend=backend)
    want = np.array([pyad.grad(branchy, backend=backend)(x) for x in X])
    with ThreadPoolExecutor(2) as pool:
        for how in [{"threads": 1}] + splits(backend, pool):
            np.testing.assert_array_equal(tape.gradient(X, batch=True, **how), want,
                                          err_msg=str(how))


def test_a_busy_executor_does_not_hold_up_the_batch(chunks_of_40):
    """The caller takes chunks itself: with every executor thread blocked, the
    batch still finishes, and the tasks that never started are cancelled."""
    X = rows(5 * CHUNK + 3)
    tape = pyad.trace(polynomial, X[0])
    want = tape.gradient(X, batch=True, threads=1)
    release = threading.Event()
    with ThreadPoolExecutor(2) as pool:
        blockers = [pool.submit(release.wait, 60) for _ in range(2)]
        try:
            got = tape.gradient(X, batch=True, executor=pool)
        finally:
            release.set()
        assert all(b.result() for b in blockers)
        np.testing.assert_array_equal(got, want)
        # the pool is usable afterwards (no stale task joins a later batch)
        np.testing.assert_array_equal(tape.gradient(X, batch=True, executor=pool), want)


def test_a_shut_down_executor_leaves_the_batch_to_the_caller(chunks_of_40):
    X = rows(3 * CHUNK + 1)
    tape = pyad.trace(polynomial, X[0])
    pool = ThreadPoolExecutor(3)
    pool.shutdown()
    np.testing.assert_array_equal(tape.gradient(X, batch=True, executor=pool),
                                  tape.gradient(X, batch=True, threads=1))


def test_the_executor_path_runs_on_the_caller_and_k_minus_1_tasks(chunks_of_40):
    """ThreadPoolExecutor(k): the caller is one of the k participants, so k - 1
    tasks are submitted (a k-th would only wait for a core)."""
    X = rows(9 * CHUNK)
    tape = pyad.trace(polynomial, X[0])
    submitted = []
    with ThreadPoolExecutor(3) as pool:
        submit = pool.submit
        pool.submit = lambda *a, **k: submitted.append(a) or submit(*a, **k)
        got = tape.gradient(X, batch=True, executor=pool)
    assert len(submitted) == 2
    np.testing.assert_array_equal(got, tape.gradient(X, batch=True, threads=1))


RACE = textwrap.dedent("""
    import sys, threading
    from concurrent.futures import ThreadPoolExecutor
    import numpy as np
    import pyad
    from pyad import batch
    sys.setswitchinterval(1e-6)
    batch.MIN_THREAD_WORK, batch.MIN_CHUNK, batch.CHUNKS_PER_BATCH = 1, 40, 10**6
    backend = sys.argv[1]

    def f(x):
        return np.sum(x[1:] * x[:-1] - 3.0 * x[1:] * x[1:]) + x[0] * x[0] * x[0]

    rng = np.random.default_rng(0)
    tape = pyad.trace(f, rng.uniform(-1, 1, 4), backend=backend)
    batches = [rng.uniform(-1, 1, size=(int(n), 4)) for n in rng.integers(1, 300, 12)]
    want = [tape.gradient(X, batch=True, threads=1) for X in batches]
    wantv = [tape(X, batch=True, threads=1) for X in batches]
    pool = ThreadPoolExecutor(3)
    errors = []

    def work(i):
        try:
            for r in range(6 if backend == "c" else 2):
                j = (i + r) % len(batches)
                how = [{"threads": 2}, {"threads": 3}, {"executor": pool}][(i + r) % 3]
                if not np.array_equal(tape.gradient(batches[j], batch=True, **how), want[j]):
                    errors.append(("gradient", i, r, how))
                if not np.array_equal(tape(batches[j], batch=True, **how), wantv[j]):
                    errors.append(("values", i, r, how))
        except BaseException as e:
            errors.append(repr(e))

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    pool.shutdown()
    print("errors", errors)
    sys.exit(1 if errors else 0)
""")


def test_racing_split_batches_keep_their_rows(backend):
    r = subprocess.run([sys.executable, "-c", RACE, backend], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


LATE_TASKS = textwrap.dedent("""
    import random, sys, threading, time
    from concurrent.futures import ThreadPoolExecutor
    import numpy as np
    import pyad
    from pyad import backend_c, batch
    sys.setswitchinterval(1e-6)
    batch.MIN_THREAD_WORK, batch.MIN_CHUNK, batch.CHUNKS_PER_BATCH = 1, 40, 10**6

    # every executor task starts late by up to ~1 ms: some join their batch, some
    # find it finished, or the pool running another batch, or the tape closed
    real, returned = backend_c._batch_task, []
    def late(pool, ticket):
        time.sleep(random.random() * 1e-3)
        s = real(pool, ticket)
        returned.append(s)
        return s
    backend_c._batch_task = late

    def f(x):
        return np.sum(x[1:] * x[:-1] - 3.0 * x[1:] * x[1:]) + x[0] * x[0] * x[0]

    rng = np.random.default_rng(0)
    batches = [rng.uniform(-1, 1, size=(int(n), 4)) for n in rng.integers(1, 400, 8)]
    tape = pyad.trace(f, batches[0][0])
    want = [tape.gradient(X, batch=True, threads=1) for X in batches]
    pools = [ThreadPoolExecutor(2), ThreadPoolExecutor(3)]
    errors = []

    def work(i):
        try:
            mine = pyad.trace(f, batches[0][0])
            for r in range(60):
                j = (i + r) % len(batches)
                # the pool threads of threads=2 use worker 1: a stale task joining
                # there would find it busy (a nonzero status)
                how = [{"executor": pools[0]}, {"executor": pools[1]}, {"threads": 2}][r % 3]
                for t in (tape, mine):
                    if not np.array_equal(t.gradient(batches[j], batch=True, **how), want[j]):
                        errors.append((i, r, j, how))
                if r % 7 == 6:  # its pools let go of while late tasks still hold them
                    mine.close()
                    mine = pyad.trace(f, batches[0][0])
        except BaseException as e:
            errors.append(repr(e))

    ts = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    for p in pools:
        p.shutdown(wait=True)
    if set(returned) - {0}:
        errors.append(("a task's status", sorted(set(returned))))
    print("errors", errors, "tasks", len(returned))
    sys.exit(1 if errors else 0)
""")


def test_late_executor_tasks_never_join_another_batch():
    """The C backend's executor path: a task that starts after its batch (or runs
    while the pool serves the next one, or after its tape was closed) does no
    work there; every batch keeps the rows of threads=1."""
    r = subprocess.run([sys.executable, "-c", LATE_TASKS], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


# ---- the common batch's one-call path (batch.common_batch) ----
#
# A batched gradient, values or HVP of one float64 C-contiguous array on the C
# backend goes straight to one C call; everything else, and the same call with
# the shortcut taken away, goes the general way. The two must agree bit for
# bit, raise the same errors and re-record the same points.


@pytest.fixture
def shortcut(monkeypatch):
    """Counts the calls the shortcut took; general() runs a call without it."""
    from pyad import tape as tape_module
    taken, real = [], tape_module.common_batch

    def spy(*args):
        rows = real(*args)
        if rows is not None:
            taken.append(args[1])
        return rows

    def general(call, shortcut=lambda *args: None):
        monkeypatch.setattr(tape_module, "common_batch", shortcut)
        try:
            return outcome(call)
        finally:
            monkeypatch.setattr(tape_module, "common_batch", spy)

    monkeypatch.setattr(tape_module, "common_batch", spy)
    # general(call, real): call on the shortcut itself, with no spy's frame in between
    return taken, general, real


def outcome(call):
    """("ok", the result) or (the exception's type, its message)."""
    try:
        return "ok", call()
    except Exception as e:  # compared, whatever it is
        return type(e), str(e)


def same(a, b):
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, np.ndarray):
        return (isinstance(b, np.ndarray) and a.shape == b.shape and a.dtype == b.dtype
                and np.array_equal(a, b, equal_nan=True))
    return a == b


def scalar_in(x):
    return x * x * x - 2.0 * x


def matrix_in(a):
    return np.sum(a[0] * a[1] - a[1] * a[1]) + a[0, 0] * a[1, 1] * a[0, 1]


CASES = {  # name: (function, one point, batch of points)
    "vector input": (polynomial, rows(1)[0], rows(3 * CHUNK + 5)),
    "scalar input": (scalar_in, 0.5, rows(2 * CHUNK + 1, 1)[:, 0].copy()),
    "matrix input": (matrix_in, rows(1)[0].reshape(2, 2), rows(CHUNK + 3).reshape(-1, 2, 2)),
}


@pytest.mark.parametrize("case", CASES)
def test_the_shortcut_gives_the_general_paths_bits(backend, case, chunks_of_40, shortcut):
    taken, general, _ = shortcut
    f, x0, X = CASES[case]
    V = np.random.default_rng(3).uniform(-1, 1, X.shape)
    tape = pyad.trace(f, x0, backend=backend)
    calls = {"gradient": lambda **k: tape.gradient(X, batch=True, **k),
             "values": lambda **k: tape(X, batch=True, **k),
             "hvp": lambda **k: tape.hvp(X, V, batch=True, **k)}
    with ThreadPoolExecutor(2) as pool, ThreadPoolExecutor(3) as wide:
        for name, call in calls.items():
            for how in ({"threads": 1}, {"threads": 2}, {"threads": 3}, {},
                        {"executor": pool}, {"executor": wide}, {"executor": pool, "threads": 1}):
                del taken[:]
                got = call(**how)
                assert len(taken) == (backend == "c"), (name, how, taken)
                want = general(lambda: call(**how))
                assert want[0] == "ok" and same(got, want[1]), (case, name, how)
                assert same(got, call(threads=1)), (case, name, how)
    two = pyad.trace(two_outputs, rows(1, 3)[0], backend=backend)
    X3 = rows(2 * CHUNK + 3, 3)
    del taken[:]
    got = two(X3, batch=True, threads=2)
    assert taken == ([Sweep.FORWARD_BATCH] if backend == "c" else [])
    assert same(got, general(lambda: two(X3, batch=True, threads=2))[1])


class TracedPool(ThreadPoolExecutor):
    """A subclass may change what its tasks do: the general path, which checks them."""


def test_what_the_shortcut_leaves_to_the_general_path(chunks_of_40, shortcut):
    """Anything but the common case is not taken: the results say nothing of it."""
    taken, _, _ = shortcut
    X = rows(2 * CHUNK + 1)
    tape = pyad.trace(polynomial, X[0])
    with TracedPool(2) as pool:
        for call in (lambda: tape.gradient(np.asfortranarray(X), batch=True),
                     lambda: tape.gradient(X, batch=True, executor=pool),
                     lambda: tape.gradient(X.astype(np.float32), batch=True),
                     lambda: tape.gradient(X[::2], batch=True),
                     lambda: tape.gradient(X, batch=True, threads=np.int64(2)),
                     lambda: tape.hvp(X, np.asfortranarray(X), batch=True)):
            call()
    assert taken == []
    with pyad.debug_nans():
        tape.gradient(X, batch=True)
    assert taken == []


def bad_calls(tape, X):
    nb = X.shape[0]
    return {
        "too wide": lambda: tape.gradient(np.ones((nb, 5)), batch=True),
        "no batch axis": lambda: tape.gradient(np.ones(4), batch=True),
        "flat": lambda: tape.gradient(np.ones(nb), batch=True),
        "3-d": lambda: tape.gradient(np.ones((nb, 4, 1)), batch=True),
        "empty": lambda: tape.gradient(np.ones((0, 4)), batch=True),
        "threads=0": lambda: tape.gradient(X, batch=True, threads=0),
        "threads=-1": lambda: tape.gradient(X, batch=True, threads=-1),
        "threads=True": lambda: tape.gradient(X, batch=True, threads=True),
        "threads=1.5": lambda: tape.gradient(X, batch=True, threads=1.5),
        "values too wide": lambda: tape(np.ones((nb, 5)), batch=True),
        "values empty": lambda: tape(np.ones((0, 4)), batch=True, threads=2),
        "hvp directions too wide": lambda: tape.hvp(X, np.ones((nb, 5)), batch=True),
        "hvp directions one row short": lambda: tape.hvp(X, X[1:].copy(), batch=True),
        "hvp threads=0": lambda: tape.hvp(X, X, batch=True, threads=0),
    }


def test_the_shortcut_raises_what_the_general_path_raises(backend, chunks_of_40, shortcut):
    _, general, _ = shortcut
    X = rows(2 * CHUNK + 1)
    tape = pyad.trace(polynomial, X[0], backend=backend)
    for name, call in bad_calls(tape, X).items():
        got = outcome(call)
        assert got[0] != "ok", name
        assert got == general(call), name
    two = pyad.trace(two_outputs, rows(1, 3)[0], backend=backend)
    call = lambda: two.gradient(rows(CHUNK, 3), batch=True)  # noqa: E731
    assert outcome(call)[0] is ValueError and outcome(call) == general(call)
    tape.close()
    for call in (lambda: tape.gradient(X, batch=True, threads=2),
                 lambda: tape(X, batch=True), lambda: tape.hvp(X, X, batch=True)):
        got = outcome(call)
        assert got[0] is pyad.TapeClosedError and got == general(call)


def test_flipped_and_nan_points_on_the_shortcut(backend, chunks_of_40, shortcut):
    """Points whose guard flips (x[0] <= 0) and NaN points (whose comparison fails
    too) are re-recorded, each in its row, as the general path does; a tape that
    cannot re-record raises the same BranchError; a batch mostly of flipped points
    warns from the caller's line."""
    taken, general, real = shortcut
    nb = 3 * CHUNK + 1
    X = np.abs(rows(nb)) + 0.1
    X[[0, CHUNK, nb - 1], 0] *= -1.0
    X[[1, 2 * CHUNK], 2] = np.nan
    X[CHUNK - 1, 0] = np.nan
    V = rows(nb, seed=4)
    tape = pyad.trace(branchy, X[5], backend=backend)
    for name, call in {"gradient": lambda: tape.gradient(X, batch=True, threads=2),
                       "values": lambda: tape(X, batch=True, threads=3),
                       "hvp": lambda: tape.hvp(X, V, batch=True, threads=2)}.items():
        before = tape.retraces
        got = outcome(call)
        fast_retraces = tape.retraces - before
        want = general(call)
        assert got[0] == "ok" and same(got, want), name
        assert fast_retraces == tape.retraces - before - fast_retraces == 4, name
    want_g = np.array([pyad.grad(branchy, backend=backend)(x) for x in X])
    assert same(tape.gradient(X, batch=True), want_g)
    assert len(taken) == (4 if backend == "c" else 0)

    fixed = pyad.trace(branchy, X[5], backend=backend, retrace=False)
    call = lambda: fixed.gradient(X, batch=True, threads=2)  # noqa: E731
    got = outcome(call)
    assert got[0] is pyad.BranchError and got == general(call)

    mostly = -np.abs(rows(CHUNK + 1)) - 0.1
    for call in (lambda: tape.gradient(mostly, batch=True),
                 lambda: tape(mostly, batch=True), lambda: tape.hvp(mostly, mostly, batch=True)):
        with pytest.warns(pyad.RetraceWarning) as fast:
            got = general(call, real)[1]
        with pytest.warns(pyad.RetraceWarning) as slow:
            want = general(call)
        assert same(got, want[1])
        assert [(str(w.message), w.filename) for w in fast] == \
            [(str(w.message), w.filename) for w in slow]


def branchy_scalar(x):
    return x * x if x > 0 else x * x * x


def branchy_matrix(a):
    if a[0, 1] > 0:
        return np.sum(a * a)
    return np.sum(a * a * a)


@pytest.mark.filterwarnings("ignore::pyad.RetraceWarning")  # 3 of 5 points flip
@pytest.mark.parametrize("f, X", [
    (branchy_scalar, np.array([0.5, -0.5, 1.5, np.nan, -2.0])),
    (branchy_matrix, np.stack([rows(1, seed=s)[0].reshape(2, 2) * (1, -1) for s in range(7)])),
], ids=["scalar input", "matrix input"])
def test_flipped_points_of_other_input_shapes_on_the_shortcut(backend, f, X, shortcut):
    """Flipped points are re-recorded from their flat rows, whatever the input's shape."""
    taken, general, _ = shortcut
    x0 = X[0] if X.ndim > 1 else float(X[0])
    tape = pyad.trace(f, x0, backend=backend)
    V = np.ones_like(X)
    for call in (lambda: tape.gradient(X, batch=True), lambda: tape(X, batch=True),
                 lambda: tape.hvp(X, V, batch=True)):
        got = outcome(call)
        assert got[0] == "ok" and same(got, general(call))
    assert len(taken) == (3 if backend == "c" else 0)
    fixed = pyad.trace(f, x0, backend=backend, retrace=False)
    call = lambda: fixed.gradient(X, batch=True)  # noqa: E731
    got = outcome(call)
    assert got[0] is pyad.BranchError and got == general(call)
