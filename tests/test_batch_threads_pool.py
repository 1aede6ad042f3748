"""The batch pools of the C backend (csrc/batch_threads.c, issue 17): a store's
threads and work arrays outlive a batch. Results stay those of one thread for
scalar and array programs whichever way a batch is split (threads=1/2/None,
executor=); a failure inside a worker thread (a custom rule's exception, a
singular matrix at one point, a guard that flips) reaches the caller once, as
the same error one thread gives; closing or dropping a tape ends its threads;
a fork's child gets a working pool; many batches grow neither threads nor memory.

Thread tests run in a subprocess with sys.setswitchinterval(1e-6). Small
batches stay on one thread by design, so the tests shrink the work a thread
needs (MIN_THREAD_WORK) and the chunks, as test_batch_threads.py does."""
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import pyad
from pyad import batch

SPLIT_SMALL = "batch.MIN_THREAD_WORK, batch.MIN_CHUNK, batch.CHUNKS_PER_BATCH = 1, 16, 40"


@pytest.fixture
def split_small(monkeypatch):
    monkeypatch.setattr(batch, "MIN_THREAD_WORK", 1)
    monkeypatch.setattr(batch, "MIN_CHUNK", 16)
    monkeypatch.setattr(batch, "CHUNKS_PER_BATCH", 40)


def scalar_program(x):
    """Recorded by active scalars (rows of width 1)."""
    a, b, c = x[0], x[1], x[2]
    g = pyad.sin(a * b) + pyad.exp(c - a / b)
    return pyad.log(g * g) * c


def array_program(x):
    """Recorded as array rows."""
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2) \
        + np.sum(pyad.sin(x) * pyad.exp(-x))


def run_script(body, backend, timeout=240, mode=""):
    script = textwrap.dedent("""
        import gc, os, sys, threading
        from concurrent.futures import ThreadPoolExecutor
        import numpy as np
        import pyad
        from pyad import batch
        sys.setswitchinterval(1e-6)
        backend = sys.argv[1]
        """) + SPLIT_SMALL + "\n" + textwrap.dedent(body)
    # OpenBLAS on one thread: its own threads would blur the counts of pyad's
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-c", script, backend, mode], capture_output=True,
                       text=True, timeout=timeout, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout


@pytest.mark.parametrize("fn", [scalar_program, array_program])
def test_results_are_those_of_one_thread_however_split(backend, fn, split_small):
    X = np.random.default_rng(3).uniform(1.0, 2.0, size=(777, 3 if fn is scalar_program else 8))
    V = np.random.default_rng(4).normal(size=X.shape)
    tape = pyad.trace(fn, X[0], backend=backend)
    with ThreadPoolExecutor(2) as pool, ThreadPoolExecutor(5) as wide:
        for name, call in (("value", lambda **k: tape(X, batch=True, **k)),
                           ("gradient", lambda **k: tape.gradient(X, batch=True, **k)),
                           ("jvp", lambda **k: tape.jvp(X, V, batch=True, **k)[1]),
                           ("hvp", lambda **k: tape.hvp(X, V, batch=True, **k))):
            one = call(threads=1)
            for how in ({"threads": 2}, {"threads": None}, {"threads": 7},
                        {"executor": pool}, {"executor": wide}):
                for _ in range(2):  # the second time on the kept threads and arrays
                    assert np.array_equal(call(**how), one), (backend, fn.__name__, name, how)


CUSTOM_RULE_IN_A_WORKER = """
    @pyad.custom_vjp
    def picky(x):
        return x * x
    main = threading.main_thread()

    def bwd(x, g):
        # only a thread other than the caller's fails: the exception must cross over
        if threading.current_thread() is not main and float(np.max(x)) > 1.9:
            raise ZeroDivisionError("picky rule failed in a worker")
        return (2.0 * x * g,)
    picky.defvjp(lambda x: (x * x, x), bwd)

    X = np.random.default_rng(0).uniform(1.0, 2.0, size=(900, 3))
    tape = pyad.trace(lambda x: np.sum(picky(x)), X[0], backend=backend)
    pool = ThreadPoolExecutor(2)
    # (the Python backend sends a tape to an executor as its bytes, and a tape
    # with custom rules cannot be saved: CustomRuleError, tested elsewhere)
    hows = [{"threads": 2}, {"threads": 3}] + ([{"executor": pool}] if backend == "c" else [])
    for how in hows:
        for round in range(3):
            try:
                tape.gradient(X, batch=True, **how)
            except ZeroDivisionError as e:
                assert "picky rule failed in a worker" in str(e), (how, e)
            else:
                sys.exit(f"{how}: the rule's exception was lost (or never raised)")
            # reported once: the next batch, at points where the rule works, is clean
            ok = X[np.max(X, axis=1) <= 1.9]
            g = tape.gradient(ok, batch=True, **how)
            assert np.array_equal(g, 2.0 * ok), how
    print("ok")
"""


def test_a_custom_rule_failing_in_a_worker_raises_its_own_exception_once(backend):
    assert run_script(CUSTOM_RULE_IN_A_WORKER, backend).strip().endswith("ok")


def test_a_singular_matrix_at_one_point_of_a_split_batch(backend, split_small):
    def fn(x):
        return np.sum(pyad.linalg.solve(x.reshape(2, 2), np.array([1.0, 2.0])))

    X = np.tile(np.array([2.0, 1.0, 1.0, 3.0]), (500, 1)) + \
        np.random.default_rng(1).uniform(0, 0.1, size=(500, 4))
    X[433] = [1.0, 2.0, 2.0, 4.0]  # singular, in a late chunk (another thread's)
    tape = pyad.trace(fn, X[0], backend=backend)
    with ThreadPoolExecutor(2) as pool:
        for how in ({"threads": 2}, {"threads": 4}, {"executor": pool}):
            with pytest.raises(pyad.SingularMatrixError, match="batch point 433"):
                tape.gradient(X, batch=True, **how)
            good = np.delete(X, 433, axis=0)
            assert np.array_equal(tape.gradient(good, batch=True, **how),
                                  tape.gradient(good, batch=True, threads=1))


def test_a_guard_that_flips_in_a_split_batch(backend, split_small):
    def kinked(x):
        return x[0] * x[1] if x[0] > 1.6 else x[0] - x[1]

    X = np.random.default_rng(2).uniform(1.0, 2.0, size=(640, 2))
    X[0, 0] = 1.0
    want = np.where((X[:, 0] > 1.6)[:, None], X[:, ::-1], [1.0, -1.0])
    with ThreadPoolExecutor(2) as pool:
        for how in ({"threads": 2}, {"executor": pool}):
            tape = pyad.trace(kinked, X[0], backend=backend)
            assert np.array_equal(tape.gradient(X, batch=True, **how), want), how
            assert tape.retraces == np.count_nonzero(X[:, 0] > 1.6)  # each flip once
            strict = pyad.trace(kinked, X[0], backend=backend, retrace=False)
            with pytest.raises(pyad.BranchError):
                strict.gradient(X, batch=True, **how)


THREAD_COUNT = """
    import time
    def n_threads(settle_to=None):
        # a joined Python thread can still be listed for a moment while the OS
        # ends it: wait (a little) for the count expected
        for _ in range(200):
            n = len(os.listdir("/proc/self/task"))
            if n == settle_to or settle_to is None:
                return n
            time.sleep(0.01)
        return n
"""

LIFETIME = THREAD_COUNT + """

    X = np.random.default_rng(0).uniform(1.0, 2.0, size=(4000, 3))
    f = lambda x: pyad.sin(x[0] * x[1]) * pyad.exp(x[2])
    before = n_threads()
    tape = pyad.trace(f, X[0], backend=backend)
    want = tape.gradient(X, batch=True, threads=1)
    for _ in range(3):
        assert np.array_equal(tape.gradient(X, batch=True, threads=4), want)
    kept = n_threads(before + (3 if backend == "c" else 0)) - before
    assert kept == (3 if backend == "c" else 0), kept  # the pool's, kept between batches
    tape.close()
    assert n_threads(before) == before, "closing the tape did not end its pool's threads"

    tape = pyad.trace(f, X[0], backend=backend)
    tape.gradient(X, batch=True, threads=3)
    del tape
    gc.collect()
    assert n_threads(before) == before, "a dropped tape's pool threads live on"

    # closed by another thread while its batch runs: that batch ends cleanly
    # (its result, or TapeClosedError), and then the threads end too
    tape = pyad.trace(f, X[0], backend=backend)
    for _ in range(20):
        errors = []
        def replay():
            try:
                g = tape.gradient(X, batch=True, threads=3)
                assert np.array_equal(g, want)
            except pyad.TapeClosedError:
                pass
            except BaseException as e:
                errors.append(e)
        t = threading.Thread(target=replay)
        t.start()
        tape.close()
        t.join()
        assert not errors, errors
        tape = pyad.trace(f, X[0], backend=backend)
    tape.close()
    gc.collect()
    assert n_threads(before) == before, n_threads() - before
    print("ok")
"""


def test_closing_or_dropping_a_tape_ends_its_pool_threads(backend):
    assert run_script(LIFETIME, backend).strip().endswith("ok")


FORK = THREAD_COUNT + """
    X = np.random.default_rng(0).uniform(1.0, 2.0, size=(3000, 3))
    tape = pyad.trace(lambda x: pyad.sin(x[0] * x[1]) * pyad.exp(x[2]), X[0], backend=backend)
    want = tape.gradient(X, batch=True, threads=1)
    assert np.array_equal(tape.gradient(X, batch=True, threads=3), want)  # the pool exists
    pid = os.fork()
    if pid == 0:  # the child: the parent's pool threads are not here
        try:
            alone = n_threads()
            ok = all(np.array_equal(tape.gradient(X, batch=True, threads=k), want)
                     for k in (3, 2, 4))
            # the child split its batches over threads of its own, not all on one
            started = n_threads(alone + (3 if backend == "c" else 0)) - alone
            tape.close()
            os._exit(0 if ok and started == (3 if backend == "c" else 0) else 3)
        except BaseException:
            os._exit(4)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, status
    assert np.array_equal(tape.gradient(X, batch=True, threads=3), want)  # the parent's too
    print("ok")
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_sweeps_split_batches(backend):
    assert run_script(FORK, backend, timeout=120).strip().endswith("ok")


MANY_CALLS = THREAD_COUNT + """
    def rss_mb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    c = backend == "c"  # the Python backend's sweeps are ~100x slower: fewer of them
    X = np.random.default_rng(0).uniform(1.0, 2.0, size=(5000 if c else 200, 6))
    tape = pyad.trace(lambda x: np.sum(pyad.sin(x) * x[::-1]), X[0], backend=backend)
    pool = ThreadPoolExecutor(3)
    # the executor starts its threads as tasks find none idle: start all three
    # now, so that its own growth is not counted as pyad's
    list(pool.map(time.sleep, [0.05] * 3))
    def round():
        for how in ({"threads": 3}, {"threads": 2}, {"executor": pool}):
            tape.gradient(X, batch=True, **how)
            tape.hvp(X, X, batch=True, **how)
    for _ in range(20 if c else 3):
        round()
    gc.collect()
    threads, rss = n_threads(), rss_mb()
    for _ in range(150 if c else 8):
        round()
    gc.collect()
    assert n_threads(threads) == threads, "threads grow with batches"
    grown = rss_mb() - rss
    if sys.argv[2] == "rss":
        assert grown < 8, f"memory grew by {grown:.1f} MB over the batches"
    print("ok", grown)
"""


def test_many_split_batches_keep_their_threads(backend):
    assert run_script(MANY_CALLS, backend, mode="threads").strip().startswith("ok")


def test_many_split_batches_do_not_grow_rss(backend):
    """Named "rss": left out of the sanitized run, whose quarantine grows RSS."""
    assert run_script(MANY_CALLS, backend, mode="rss").strip().startswith("ok")


SLOW_WORKER = """
    @pyad.custom_jvp
    def slow(x):
        return x * x
    main = threading.main_thread()

    def jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        if threading.current_thread() is not main:
            import time
            time.sleep(0.02)  # a worker's chunk ends long after the caller's last one
        return x * x, 2.0 * x * t
    slow.defjvp(jvp)

    # the Python backend calls the rule per point: fewer points keep it to seconds
    X = np.random.default_rng(0).uniform(1.0, 2.0, size=(400 if backend == "c" else 100, 3))
    tape = pyad.trace(lambda x: np.sum(slow(x) * x), X[0], backend=backend)
    want = tape.gradient(X, batch=True, threads=1)
    pool = ThreadPoolExecutor(2)
    hows = [{"threads": 2}, {"threads": 3}] + ([{"executor": pool}] if backend == "c" else [])
    for how in hows:
        for _ in range(2):
            assert np.array_equal(tape.gradient(X, batch=True, **how), want), how
    print("ok")
"""


def test_a_batch_waits_for_its_slowest_worker(backend):
    assert run_script(SLOW_WORKER, backend).strip().endswith("ok")
