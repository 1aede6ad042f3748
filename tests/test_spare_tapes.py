"""A tape that is let go may be kept (small, bounded) and recorded into again by
the next store (pyad/backend_c.py, spare tapes): the new recording must start
from nothing — no rows, constants, inputs, outputs or limits of the old one."""
import gc

import numpy as np
import pytest

import pyad
from pyad import backend_c
from pyad.errors import PyadError

C_MATRIX = np.arange(12.0).reshape(4, 3) / 7.0


def _old_tape(backend):
    """A tape with every kind of content, then dropped: rows, block rows, constants,
    a product with a constant matrix, a gather, inputs, outputs and a small limit."""
    x0 = np.linspace(0.5, 2.0, 4)
    tape = pyad.trace(lambda x: (np.sin(x[[0, 2, 2, 1]]) * 3.0).sum() + (x @ C_MATRIX).sum()
                      + x[0] * x[1], x0, backend=backend)
    tape._store.set_max_ops(tape.n_slots + 1)
    return tape


@pytest.mark.parametrize("rounds", [1, 3])
def test_a_tape_recorded_after_one_was_dropped_starts_empty(backend, rounds):
    for _ in range(rounds):
        old = _old_tape(backend)
        old_rows = old.n_ops
        del old
        gc.collect()
        f = lambda v: v[0] ** 2 + 2.0 * v[1]
        tape = pyad.trace(f, np.array([3.0, 4.0]), backend=backend)
        assert tape.n_inputs == 2 and tape.n_outputs == 1
        assert tape.n_ops < old_rows
        assert tape.stats()["n_consts"] <= 1
        np.testing.assert_allclose(tape(np.array([1.0, 5.0])), 11.0)
        np.testing.assert_allclose(tape.gradient(np.array([1.0, 5.0])), [2.0, 2.0])
        # the old tape's limit of a handful of slots is gone with it
        big = pyad.trace(lambda v: np.sum(np.exp(v) * 2.0), np.ones(1000), backend=backend)
        np.testing.assert_allclose(big.gradient(np.zeros(1000)), np.full(1000, 2.0))


def test_activity_marks_do_not_outlive_their_tape(backend):
    """A tape with parameters marks rows passive; the next tape recorded in its
    storage has no parameters, and every one of its rows must be differentiated."""
    X = np.linspace(-1.0, 1.0, 12).reshape(4, 3)
    for _ in range(3):
        old = pyad.trace(lambda w, X: np.sum(np.tanh(X * 2.0) @ w), np.ones(3), X,
                         argnums=0, backend=backend)
        assert old.stats()["passive_rows"] > 0
        del old
        gc.collect()
        tape = pyad.trace(lambda v: np.sum(np.tanh(v * 2.0)), X.ravel(), backend=backend)
        want = 2.0 / np.cosh(2.0 * X.ravel()) ** 2
        np.testing.assert_allclose(tape.gradient(X.ravel()), want, rtol=1e-12)
        np.testing.assert_allclose(tape.jvp(X.ravel(), np.ones(12))[1], want.sum(), rtol=1e-12)


def test_spare_tapes_are_bounded():
    """Only small tapes are kept, and only a few: a big one is freed at once."""
    tapes = [pyad.trace(lambda v: (v * 2.0).sum(), np.ones(10)) for _ in range(5)]
    big = pyad.trace(lambda v: (v * 2.0).sum(), np.ones(2_000_000))
    assert big.nbytes > backend_c._SPARE_BYTES
    del tapes, big
    gc.collect()
    assert len(backend_c._spare) <= backend_c._SPARE_COUNT
    for h in backend_c._spare:
        assert backend_c.lib.pyad_nbytes(h) <= backend_c._SPARE_BYTES
        assert backend_c.lib.pyad_n_ops(h) == 0


def test_a_closed_tape_stays_closed_when_its_storage_is_reused(backend):
    old = pyad.trace(lambda v: (v * 2.0).sum(), np.ones(10), backend=backend)
    old.close()
    gc.collect()
    new = pyad.trace(lambda v: (v * 3.0).sum(), np.ones(10), backend=backend)
    with pytest.raises(PyadError):
        old.gradient(np.ones(10))
    np.testing.assert_allclose(new.gradient(np.ones(10)), np.full(10, 3.0))


def test_work_arrays_of_a_closed_store_serve_the_next_one():
    """pyad.grad drops a store per call: its work arrays go to the next store,
    bounded in number and size, and a reused set gives the right derivatives
    for tapes smaller and larger than the one it came from."""
    backend_c._Work._spare.clear()
    for n in (200, 50, 200, 7, 1000):
        x = np.linspace(-1.0, 1.0, n)
        g = pyad.grad(lambda v: np.sum(v * v * v))(x)
        np.testing.assert_allclose(g, 3.0 * x * x, rtol=1e-14)
        tape = pyad.trace(lambda v: np.sum(np.sin(v)), x)
        np.testing.assert_allclose(tape.gradient(x), np.cos(x), rtol=1e-14)
        tape.close()
    assert 1 <= len(backend_c._Work._spare) <= backend_c._Work.SPARE_COUNT
    backend_c._Work._spare.clear()
    big = pyad.trace(lambda v: (v * 2.0).sum(), np.ones(backend_c._Work.SPARE_SLOTS + 10))
    big.gradient(np.ones(backend_c._Work.SPARE_SLOTS + 10))
    big.close()
    assert all(w.arrays[0].size <= backend_c._Work.SPARE_SLOTS for w in backend_c._Work._spare)


def test_a_store_closed_during_a_sweep_keeps_its_work_arrays():
    """Work arrays a sweep holds are not handed on when the store closes meanwhile."""
    tape = pyad.trace(lambda v: np.sum(v * 2.0), np.ones(10))
    store = tape._store
    work, owned = store._take_work(store.n_slots)   # as a sweep in another thread would
    assert owned
    backend_c._Work._spare.clear()
    tape.close()
    assert work not in backend_c._Work._spare
    store._give_work(owned)


DROPPED_UNDER_THE_LOCK = """
import gc, threading, numpy as np, pyad
from pyad import backend_c
tape = pyad.trace(lambda x: np.sum(x * x), np.ones(3))
store = tape._store
del tape
def drop():
    global store
    with backend_c._spare_lock:
        store = None   # the finalizer (_let_go) runs here, in the lock's holder
        gc.collect()
t = threading.Thread(target=drop, daemon=True)
t.start()
t.join(20)
print("deadlock" if t.is_alive() else "done")
"""


def test_a_tape_collected_while_its_thread_holds_the_spare_lock_does_not_hang():
    """The garbage collector may run a store's finalizer in the middle of
    _Work.take or _new_tape (any allocation there), in the thread that holds
    the spare lock: the finalizer must not wait for it (a pytest run hung so)."""
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", DROPPED_UNDER_THE_LOCK], capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.strip() == "done", out.stdout + out.stderr
