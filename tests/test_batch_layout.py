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
