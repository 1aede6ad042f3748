"""Batched replay split over threads (issue 17): tape.<sweep>(X, batch=True,
threads=k) and executor= give the results of one thread bit for bit, agree with
a loop of single-point sweeps, cover every point once (uneven chunks, a batch
of one), refuse bad threads= values clearly, and survive racing threads.

Small batches stay on one thread by design (threads_for), so the tests that
must see several threads shrink the work a thread needs and the chunk size
(`split_small`): a 1003-point batch then runs as many uneven chunks."""
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import pyad
from pyad import batch
from pyad.store import Sweep

W = np.random.default_rng(5).uniform(-1.0, 1.0, size=(6, 3))


def transcendental(x):
    """Vector math (its rounding depends on a point's place in a chunk), a
    product row (BLAS) and a reduction."""
    return np.sum(pyad.exp(pyad.sin(x)) * pyad.log(x * x + 1.0) + pyad.tanh(x @ W).sum()
                  + pyad.arctan(x))


def polynomial(x):
    """Only + - *: every rounding is fixed, so batch and single sweeps agree exactly."""
    return np.sum(x[1:] * x[:-1] - 3.0 * x[1:] * x[1:]) + x[0] * x[0] * x[0]


def vector_out(x):
    return pyad.sin(x[:3]) * x[3:] + x[0]


@pytest.fixture
def split_small(monkeypatch):
    """Let a batch of ~1000 points run on several threads, in chunks of 40 points."""
    monkeypatch.setattr(batch, "MIN_THREAD_WORK", 1)
    monkeypatch.setattr(batch, "MIN_CHUNK", 40)
    monkeypatch.setattr(batch, "CHUNKS_PER_BATCH", 25)


def points(nb, n=6, seed=0):
    return np.random.default_rng(seed).uniform(0.2, 1.5, size=(nb, n))


def every_sweep(tape, X, V, U):
    """(name, call(**threads_or_executor)) for every batched sweep of a one-output tape."""
    return {"value": lambda **k: tape(X, batch=True, **k),
            "gradient": lambda **k: tape.gradient(X, batch=True, **k),
            "jvp": lambda **k: tape.jvp(X, V, batch=True, **k),
            "vjp": lambda **k: tape.vjp(X, U, batch=True, **k),
            "hvp": lambda **k: tape.hvp(X, V, batch=True, **k),
            "hessian": lambda **k: tape.hessian(X, batch=True, **k)}


def flat(result):
    return result if isinstance(result, tuple) else (result,)


def assert_same_bits(a, b, what):
    for x, y in zip(flat(a), flat(b)):
        assert np.array_equal(x, y), what


@pytest.mark.parametrize("fn", [transcendental, polynomial])
def test_every_split_gives_the_bits_of_one_thread(backend, fn, split_small):
    nb = 1003 if backend == "c" else 203  # not a multiple of the chunk: a short last one
    X, V = points(nb), points(nb, seed=1)
    U = np.random.default_rng(2).uniform(-1, 1, nb)
    tape = pyad.trace(fn, X[0], backend=backend)
    with ThreadPoolExecutor(3) as pool:
        for name, call in every_sweep(tape, X, V, U).items():
            one = call(threads=1)
            for how in ({"threads": 2}, {"threads": 3}, {"threads": None},
                        {"threads": 10**6}, {"executor": pool}):
                assert_same_bits(call(**how), one, f"{backend} {fn.__name__} {name} {how}")


@pytest.mark.parametrize("fn", [transcendental, polynomial])
def test_a_split_batch_matches_single_point_sweeps(backend, fn, split_small):
    nb = 403 if backend == "c" else 83
    X, V = points(nb), points(nb, seed=1)
    tape = pyad.trace(fn, X[0], backend=backend)
    got = {"value": tape(X, batch=True, threads=3),
           "gradient": tape.gradient(X, batch=True, threads=3),
           "hvp": tape.hvp(X, V, batch=True, threads=3)}
    want = {"value": np.array([tape(x) for x in X]),
            "gradient": np.array([tape.gradient(x) for x in X]),
            "hvp": np.array([tape.hvp(x, v) for x, v in zip(X, V)])}
    for name in got:
        if fn is polynomial:  # no rounding that depends on the sweep
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
        else:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-13, atol=1e-14,
                                       err_msg=name)


def test_several_outputs_split(backend, split_small):
    nb = 517
    X = points(nb)
    V, U = points(nb, seed=1), points(nb, 3, seed=2)
    tape = pyad.trace(vector_out, X[0], backend=backend)
    for call in (lambda **k: tape(X, batch=True, **k),
                 lambda **k: tape.jvp(X, V, batch=True, **k),
                 lambda **k: tape.vjp(X, U, batch=True, **k),
                 lambda **k: tape.jacobian(X, batch=True, **k)):
        assert_same_bits(call(threads=3), call(threads=1), "several outputs")
    np.testing.assert_allclose(tape.vjp(X, U, batch=True, threads=3)[1][7],
                               tape.vjp(X[7], U[7])[1], rtol=1e-14)


def test_a_batch_of_one_and_of_none(backend):
    tape = pyad.trace(transcendental, points(1)[0], backend=backend)
    X = points(1)
    for threads in (1, 2, None):
        np.testing.assert_allclose(tape.gradient(X, batch=True, threads=threads),
                                   tape.gradient(X[0])[None], rtol=1e-14)
    with pytest.raises(ValueError, match="at least one point"):
        tape.gradient(np.empty((0, 6)), batch=True, threads=2)


@pytest.mark.parametrize("bad", [0, -1, 1.5, np.float64(2.0), True, "2", [2]])
def test_bad_threads_values_are_refused(backend, bad):
    tape = pyad.trace(polynomial, np.ones(6), backend=backend)
    X = points(4)
    for name, call in every_sweep(tape, X, X, np.ones(4)).items():
        with pytest.raises(ValueError, match=r"threads must be a positive int \(or None\)"):
            call(threads=bad)


def test_threads_none_keeps_small_batches_on_one_thread():
    # the work a thread must have before one is started, and never more than the chunks
    assert batch.threads_for(None, 1000, 512, 12) == 1
    assert batch.threads_for(8, 10**6, 8192, 12) == min(8, -(-10**6 // 8192))
    assert batch.threads_for(None, 10**6, 8192, 12) == min(batch.usable_cores(), 123)
    assert batch.threads_for(3, 10, 8, 10**6) == 2  # two chunks: two threads at most
    assert batch.threads_for(1, 10**9, 8, 10) == 1


def test_chunks_depend_on_the_tape_and_the_batch_only():
    for n_slots, nb in ((12, 10**5), (12, 10**6), (8000, 1000), (3, 7), (10**7, 50)):
        chunk = batch.chunk_size(n_slots, nb)
        assert 1 <= chunk <= 8192
        assert chunk <= batch.chunk_size(n_slots)  # the work arrays stay cache-sized
        assert -(-nb // chunk) <= max(batch.CHUNKS_PER_BATCH, -(-nb // batch.MIN_CHUNK))


def test_the_c_call_covers_every_point_once_in_any_chunking():
    """The C entry point itself, at chunk sizes from 1 to past the batch, on
    1 to 5 threads: every row written, no row written twice (the rows of a
    missing chunk would keep their NaN fill, a shifted chunk would write its
    neighbour's rows)."""
    tape = pyad.trace(polynomial, np.ones(6))
    X = points(97)
    want = np.array([tape.gradient(x) for x in X])
    ones = np.broadcast_to(np.ones((1, 1)), (97, 1))
    for chunk in (1, 7, 8, 13, 48, 96, 97, 500):
        for k in (1, 2, 3, 5):
            out = batch.result_arrays(Sweep.VJP_BATCH, 97, 6, 1)
            for a in out[:-1]:
                a.fill(np.nan)
            n_bad = tape._store.batch_into(Sweep.VJP_BATCH, (X, ones), out, chunk, k)
            assert n_bad == 0 and (out[-1] == -1).all()
            np.testing.assert_array_equal(out[1], want, err_msg=f"chunk {chunk}, {k} threads")


def test_the_c_call_refuses_bad_arguments():
    from pyad._pyad_c import ffi, lib
    tape = pyad.trace(polynomial, np.ones(6))
    tape.gradient(np.ones(6))
    store = tape._store
    x, y, xbar = np.ones((4, 6)), np.empty((4, 1)), np.empty((4, 6))
    u = np.ones((4, 1))
    bad, n_bad = np.empty(4, np.int64), ffi.new("int64_t[1]")
    p = lambda a: ffi.cast("double *", ffi.from_buffer(a))  # noqa: E731
    ib = ffi.cast("int64_t *", ffi.from_buffer(bad))
    pool = store._take_pool()

    def call(kind=lib.PYAD_BATCH_VJP, nb=4, chunk=2, threads=2, u_rows=4, xp=None, up=None,
             xbarp=None, poolp=pool):
        h = store._h
        pick = lambda given, a: p(a) if given is None else given  # noqa: E731
        return lib.pyad_batch_sweep(poolp, h, kind, nb, chunk, threads, pick(xp, x), ffi.NULL,
                                    pick(up, u), u_rows, p(y), ffi.NULL, pick(xbarp, xbar),
                                    ffi.NULL, ib, n_bad)

    assert call() == 0
    einval = lib.PYAD_EINVAL
    for args in ({"kind": 4}, {"kind": -1}, {"nb": 0}, {"chunk": 0}, {"threads": 0},
                 {"threads": 1025}, {"u_rows": 3}, {"u_rows": 0}, {"up": ffi.NULL},
                 {"xp": ffi.NULL}, {"xbarp": ffi.NULL}, {"poolp": ffi.NULL}):
        assert call(**args) == einval, args
    assert lib.pyad_batch_sweep(pool, ffi.NULL, 0, 4, 2, 2, p(x), ffi.NULL, ffi.NULL, 0, p(y),
                                ffi.NULL, ffi.NULL, ffi.NULL, ib, n_bad) == lib.PYAD_ECLOSED
    assert lib.pyad_batch_sweep(pool, store._h, 0, 4, 2, 2, p(x), ffi.NULL, ffi.NULL, 0, p(y),
                                ffi.NULL, ffi.NULL, ffi.NULL, ib, ffi.NULL) == einval
    # the step by step form: one batch per pool, worker numbers in range, each once
    h = store._h

    def begin(n_workers=2):
        return lib.pyad_batch_begin(pool, h, lib.PYAD_BATCH_VJP, 4, 1, n_workers, p(x),
                                    ffi.NULL, p(u), 4, p(y), ffi.NULL, p(xbar), ffi.NULL, ib)

    assert lib.pyad_batch_work(pool, 0) == einval  # no batch is open
    assert lib.pyad_batch_end(pool, n_bad) == einval
    assert begin(0) == einval and begin(1025) == einval
    assert begin() == 0
    assert begin() == lib.PYAD_EBUSY  # the pool runs one batch at a time
    assert call() == lib.PYAD_EBUSY
    assert lib.pyad_batch_work(pool, 2) == einval and lib.pyad_batch_work(pool, -1) == einval
    xbar.fill(np.nan)
    assert lib.pyad_batch_work(pool, 1) == 0  # one worker may take every chunk
    assert lib.pyad_batch_work(pool, 0) == 0  # and then finds none left
    assert lib.pyad_batch_end(pool, ffi.NULL) == einval
    assert lib.pyad_batch_end(pool, n_bad) == 0 and n_bad[0] == 0
    np.testing.assert_array_equal(xbar, np.array([tape.gradient(r) for r in x]))
    assert lib.pyad_batch_end(pool, n_bad) == einval  # closed once
    # the tape is not left held by a refused call: it records again
    assert call(kind=lib.PYAD_BATCH_VALUES) == 0
    store._give_pool(pool)


def test_executor_tasks_join_by_ticket():
    """The executor's side of the C batch: tasks held for with pyad_batch_hold each
    join once; a task that joins after its batch was finished (it started late)
    does nothing, even while the pool runs a later batch; the caller's
    pyad_batch_finish counts the tasks that will never join; a pool let go of
    while a held task has not joined yet is freed by that task."""
    from pyad._pyad_c import ffi, lib
    tape = pyad.trace(polynomial, np.ones(6))
    store = tape._store
    x, y, xbar = points(5), np.empty((5, 1)), np.empty((5, 6))
    want = np.array([tape.gradient(r) for r in x])
    bad, n_bad, ticket = np.empty(5, np.int64), ffi.new("int64_t[1]"), ffi.new("uint64_t[1]")
    p = lambda a: ffi.cast("double *", ffi.from_buffer(a))  # noqa: E731
    einval = lib.PYAD_EINVAL
    pool = store._take_pool()

    def begin(n_workers=3):
        xbar.fill(np.nan)
        return lib.pyad_batch_begin(pool, store._h, lib.PYAD_BATCH_VJP, 5, 1, n_workers, p(x),
                                    ffi.NULL, p(np.ones(1)), 1, p(y), ffi.NULL, p(xbar),
                                    ffi.NULL, ffi.cast("int64_t *", ffi.from_buffer(bad)))

    assert lib.pyad_batch_hold(pool, 1, ticket) == einval  # no batch is open
    assert begin() == 0
    assert lib.pyad_batch_hold(pool, -1, ticket) == einval
    assert lib.pyad_batch_hold(pool, 2, ffi.NULL) == einval
    assert lib.pyad_batch_hold(pool, 3, ticket) == 0
    assert lib.pyad_batch_join(pool, ticket[0]) == 0  # worker 1 takes every chunk
    np.testing.assert_array_equal(xbar, want)
    assert lib.pyad_batch_join(pool, ticket[0]) == 0  # worker 2 finds none left
    assert lib.pyad_batch_finish(pool, 2, n_bad) == einval  # only one task is unjoined
    assert lib.pyad_batch_finish(pool, 1, n_bad) == 0 and n_bad[0] == 0
    assert lib.pyad_batch_join(pool, ticket[0]) == einval  # every hold has been dropped
    assert lib.pyad_batch_finish(pool, 0, n_bad) == einval  # finished once

    # a late task: held for, not cancelled, joins only once the batch is finished
    assert begin() == 0 and lib.pyad_batch_hold(pool, 1, ticket) == 0
    assert lib.pyad_batch_work(pool, 0) == 0
    assert lib.pyad_batch_finish(pool, 0, n_bad) == 0
    np.testing.assert_array_equal(xbar, want)
    late = ticket[0]
    assert begin() == 0  # the pool's next batch: the late task must not take part
    assert lib.pyad_batch_join(pool, late) == 0
    assert np.isnan(xbar).all()
    assert lib.pyad_batch_hold(pool, 1, ticket) == 0 and ticket[0] != late
    assert lib.pyad_batch_join(pool, ticket[0]) == 0
    assert lib.pyad_batch_work(pool, 0) == 0
    assert lib.pyad_batch_finish(pool, 0, n_bad) == 0
    np.testing.assert_array_equal(xbar, want)

    store._give_pool(pool)


LET_GO_WHILE_HELD = """
import numpy as np
import pyad
from pyad._pyad_c import ffi, lib
tape = pyad.trace(lambda x: x[0] * x[1], np.ones(2))
store = tape._store
x, y, xbar, bad = np.ones((3, 2)), np.empty((3, 1)), np.empty((3, 2)), np.empty(3, np.int64)
p = lambda a: ffi.cast("double *", ffi.from_buffer(a))
n_bad, ticket = ffi.new("int64_t[1]"), ffi.new("uint64_t[1]")
pool = store._take_pool()
assert lib.pyad_batch_begin(pool, store._h, lib.PYAD_BATCH_VJP, 3, 1, 2, p(x), ffi.NULL,
                            p(np.ones(1)), 1, p(y), ffi.NULL, p(xbar), ffi.NULL,
                            ffi.cast("int64_t *", ffi.from_buffer(bad))) == 0
assert lib.pyad_batch_hold(pool, 1, ticket) == 0
assert lib.pyad_batch_work(pool, 0) == 0 and lib.pyad_batch_finish(pool, 0, n_bad) == 0
raw = ffi.cast("pyad_batch_pool *", pool)  # outlives the owner's handle
ffi.release(pool)  # the owner lets go (a closed store) before the held task joins
for _ in range(50):  # reuse what a pool freed too early would have left
    store._give_pool(store._take_pool())
assert lib.pyad_batch_join(raw, ticket[0]) == 0
print("ok")
"""


def test_a_pool_let_go_of_is_freed_by_its_last_held_task():
    """A task that joins late keeps the pool's memory alive: freed early, its
    join would lock a freed mutex (a hang, or the sanitized run's report)."""
    r = subprocess.run([sys.executable, "-c", LET_GO_WHILE_HELD], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout[-2000:] + r.stderr[-2000:]


def test_flipped_branches_in_a_split_batch(backend, split_small):
    def kinked(x):
        return x[0] * x[1] if x[0] > 1.35 else x[0] - x[1]

    X = points(601, 2)
    X[0, 0] = 1.0  # recorded on the common side: about 1 point in 8 flips
    tape = pyad.trace(kinked, X[0], backend=backend)
    got = tape.gradient(X, batch=True, threads=3)
    want = np.where((X[:, 0] > 1.35)[:, None], X[:, ::-1], [1.0, -1.0])
    np.testing.assert_array_equal(got, want)
    assert tape.retraces == np.count_nonzero(X[:, 0] > 1.35)
    strict = pyad.trace(kinked, X[0], backend=backend, retrace=False)
    flipped = X[np.flatnonzero(X[:, 0] > 1.35)[0]]
    with pytest.raises(pyad.BranchError) as ei:
        strict.gradient(X, batch=True, threads=3)
    assert np.array2string(flipped, threshold=8) in str(ei.value)


def test_blas_threads_are_given_back():
    lib = batch._BLAS_THREADS._blas()
    if not lib:
        pytest.skip("pyad's BLAS is not the scipy-openblas32 OpenBLAS")
    get, set_ = lib
    before = get()
    set_(2)
    try:
        with batch.blas_threads_for(2):
            assert get() == 1
            with batch.blas_threads_for(3):  # overlapping batches
                assert get() == 1
            assert get() == 1
        assert get() == 2
        with batch.blas_threads_for(1):  # one thread of pyad's: BLAS keeps its own
            assert get() == 2
    finally:
        set_(before)


RACE = textwrap.dedent("""
    import sys, threading
    import numpy as np
    import pyad
    from pyad import batch
    sys.setswitchinterval(1e-6)
    batch.MIN_THREAD_WORK, batch.MIN_CHUNK, batch.CHUNKS_PER_BATCH = 1, 16, 40
    W = np.random.default_rng(5).uniform(-1.0, 1.0, size=(6, 3))
    def f(x):
        return np.sum(pyad.exp(pyad.sin(x)) * pyad.log(x * x + 1.0) + pyad.tanh(x @ W).sum())
    X = np.random.default_rng(0).uniform(0.2, 1.5, size=(301, 6))
    tape = pyad.trace(f, X[0], backend=sys.argv[1])
    want = tape.gradient(X, batch=True, threads=1)
    want_h = tape.hvp(X, X, batch=True, threads=1)
    errors = []
    def work(i):
        try:
            for r in range(6 if sys.argv[1] == "c" else 2):  # C's pools are what races
                own = pyad.trace(f, X[i], backend=sys.argv[1])  # recording meanwhile
                g = tape.gradient(X, batch=True, threads=1 + (i + r) % 4)
                h = tape.hvp(X, X, batch=True, threads=None)
                assert np.array_equal(g, want) and np.array_equal(h[1], want_h[1]), i
                assert np.array_equal(own.gradient(X, batch=True, threads=2), want), i
        except BaseException as e:
            errors.append(repr(e))
    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    print("errors", errors)
    sys.exit(1 if errors else 0)
""")


def test_racing_split_batches_on_one_tape(backend):
    r = subprocess.run([sys.executable, "-c", RACE, backend], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
