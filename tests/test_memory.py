"""Memory: a tape frees its C storage when it is closed or garbage-collected,
long loops of record / replay / delete do not grow the process, and a closed
tape raises pyad.TapeClosedError instead of touching freed memory.

Resident memory is read from /proc/self/statm. The tests whose names contain
"rss" measure it and are left out of the sanitized run (.ci/sanitize.sh), where
AddressSanitizer's shadow memory and quarantine make RSS meaningless.
"""
import gc
import os
import pickle
import tracemalloc
import weakref

import numpy as np
import pytest

import pyad

MB = 1 << 20
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosen_grad(x):
    g = np.zeros_like(x)
    g[:-1] = -400.0 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * (x[1:] - x[:-1] ** 2)
    return g


def growth(cycle, n, warmup, samples=10):
    """RSS growth over n calls of cycle(i) after `warmup` calls: the largest
    sample minus the first one."""
    for i in range(warmup):
        cycle(i)
    gc.collect()
    start = rss()
    worst = 0
    for i in range(n):
        cycle(warmup + i)
        if (i + 1) % max(1, n // samples) == 0:
            worst = max(worst, rss() - start)
    return worst


def test_rss_is_flat_over_10000_record_replay_delete_cycles():
    x = np.linspace(-1.0, 1.0, 1000)
    want = rosen_grad(x)
    checked = []

    def cycle(i):
        tape = pyad.trace(rosen, x)
        g = tape.gradient(x)
        if i % 997 == 0:
            np.testing.assert_allclose(g, want, rtol=1e-12)
            checked.append(i)
        del tape

    grew = growth(cycle, 10_000, warmup=500)
    assert grew < 20 * MB, f"RSS grew by {grew / MB:.1f} MB over 10,000 cycles"
    assert len(checked) >= 10


def test_rss_is_flat_over_explicit_close_and_replays_of_every_kind():
    x = np.linspace(-1.0, 1.0, 300)
    X = np.stack([x, x + 0.1, x - 0.1])

    def cycle(i):
        tape = pyad.trace(rosen, x)
        tape(x)
        tape.gradient(X, batch=True)
        tape.hvp(x, x)
        tape.jvp(x, x)
        tape.gradient(X, batch=True, threads=2)
        pickle.loads(pickle.dumps(tape)).close()
        tape.close()

    grew = growth(cycle, 1500, warmup=150)
    assert grew < 20 * MB, f"RSS grew by {grew / MB:.1f} MB"


def test_rss_is_flat_over_transforms():
    x = np.linspace(-1.0, 1.0, 60)

    def cycle(i):
        pyad.grad(rosen)(x)
        pyad.value_and_grad(rosen)(x)
        pyad.hvp(rosen, x, x)
        pyad.jvp(rosen, x, x)
        pyad.vjp(lambda x: x * 2.0, x, x)
        if i % 10 == 0:
            pyad.hessian(rosen)(x)
            pyad.jacobian(lambda x: pyad.sin(x) * x)(x)

    grew = growth(cycle, 2000, warmup=200)
    assert grew < 20 * MB, f"RSS grew by {grew / MB:.1f} MB"


def test_rss_is_flat_over_error_paths():
    x = np.linspace(0.1, 1.0, 200)
    saved = pyad.serialize.dumps(pyad.trace(rosen, x))

    def branchy(x):
        s = np.sum(x * x)
        return s * 2.0 if x[0] > 0 else s

    retracing = pyad.trace(branchy, x)

    def cycle(i):
        t = pyad.Tape()
        v = t.input(x)
        t._store.set_max_bytes(t.nbytes)
        with pytest.raises(MemoryError):
            v * np.ones((50, 200))
        t = pyad.Tape()
        v = t.input(x)
        t._store.set_max_ops(t.n_slots + 10)   # max_ops bounds slots
        with pytest.raises(OverflowError):
            v * 2.0
        with pytest.raises(pyad.TapeFormatError):
            pyad.loads(saved[:-5] + b"\0" * 5)
        retracing.gradient(x if i % 2 else -x)  # re-records every time
        strict = pyad.trace(branchy, x, retrace=False)
        with pytest.raises(pyad.BranchError):
            strict.gradient(-x)

    grew = growth(cycle, 2000, warmup=200)
    assert grew < 20 * MB, f"RSS grew by {grew / MB:.1f} MB"
    assert retracing.retraces >= 2000


def _big_tape():
    x = np.linspace(0.0, 1.0, 1_000_000)
    tape = pyad.trace(lambda x: np.sum(pyad.sin(x) * x), x)
    tape.gradient()   # the recorded values, evaluated when first read, are all resident
    return tape, x


def test_rss_close_frees_the_c_storage():
    tape, x = _big_tape()
    nbytes = tape.nbytes
    assert nbytes > 20 * MB   # 28 MB: one slot value per element (3 rows of 1e6) and 5 rows
    gc.collect()
    held = rss()
    tape.close()
    gc.collect()
    freed = held - rss()
    assert freed > 0.6 * nbytes, f"close() freed {freed / MB:.0f} MB of {nbytes / MB:.0f} MB"
    assert tape.closed


@pytest.mark.parametrize("cycle", [False, True], ids=["no cycle", "in a reference cycle"])
def test_rss_garbage_collection_frees_the_c_storage(cycle):
    tape, x = _big_tape()
    nbytes = tape.nbytes
    if cycle:
        tape.self_reference = tape
    ref = weakref.ref(tape)
    gc.collect()
    held = rss()
    del tape
    gc.collect()
    assert ref() is None
    freed = held - rss()
    assert freed > 0.6 * nbytes, f"collection freed {freed / MB:.0f} MB of {nbytes / MB:.0f} MB"


def test_the_python_backend_releases_its_storage_on_close_and_collection():
    x = np.linspace(0.0, 1.0, 20_000)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tape = pyad.trace(lambda x: np.sum(pyad.sin(x) * x), x, backend="python")
        held = tracemalloc.get_traced_memory()[0] - base
        assert held > 2 * MB
        tape.close()
        gc.collect()
        assert tracemalloc.get_traced_memory()[0] - base < 0.1 * held
        tape2 = pyad.trace(lambda x: np.sum(pyad.sin(x) * x), x, backend="python")
        del tape2
        gc.collect()
        assert tracemalloc.get_traced_memory()[0] - base < 0.1 * held
    finally:
        tracemalloc.stop()


def test_tapes_and_stores_are_collected(backend):
    x = np.linspace(-1.0, 1.0, 10)
    tape = pyad.trace(rosen, x, backend=backend)
    refs = [weakref.ref(tape), weakref.ref(tape._store)]
    del tape
    gc.collect()
    assert all(r() is None for r in refs)
    # active values keep their store alive, and only that
    t = pyad.Tape(backend=backend)
    v = t.input(x)
    s = v[0] * 2.0
    store = weakref.ref(t._store)
    del t, v
    gc.collect()
    assert store() is not None and s.value == -2.0
    del s
    gc.collect()
    assert store() is None


def test_a_re_recording_tape_frees_the_stores_it_replaces(backend):
    def branchy(x):
        s = np.sum(x * x)
        return s * 2.0 if x[0] > 0 else s

    x = np.linspace(0.1, 1.0, 8)
    tape = pyad.trace(branchy, x, backend=backend)
    old = weakref.ref(tape._store)
    assert list(tape.gradient(-x)) == list(-2 * x)
    gc.collect()
    assert old() is None or old().closed
    assert tape.retraces == 1


# ---- a closed tape ----

def _uses_of_a_closed_tape(tape, x, v):
    """Every way to touch a tape and the values recorded on it."""
    X = np.stack([x, x])
    return {
        "call": lambda: tape(x), "call recorded": lambda: tape(),
        "gradient": lambda: tape.gradient(x), "gradient recorded": lambda: tape.gradient(),
        "value_and_gradient": lambda: tape.value_and_gradient(x),
        "jvp": lambda: tape.jvp(x, x), "vjp": lambda: tape.vjp(x, 1.0),
        "hvp": lambda: tape.hvp(x, x), "jacobian": lambda: tape.jacobian(x),
        "jacobian reverse": lambda: tape.jacobian(x, mode="reverse"),
        "hessian": lambda: tape.hessian(x),
        "batch call": lambda: tape(X, batch=True),
        "batch gradient": lambda: tape.gradient(X, batch=True),
        "batch gradient threads": lambda: tape.gradient(X, batch=True, threads=2),
        "batch hvp": lambda: tape.hvp(X, X, batch=True),
        "batch jvp": lambda: tape.jvp(X, X, batch=True),
        "batch hessian": lambda: tape.hessian(X, batch=True),
        "n_ops": lambda: tape.n_ops, "n_inputs": lambda: tape.n_inputs,
        "n_outputs": lambda: tape.n_outputs, "nbytes": lambda: tape.nbytes,
        "pickle": lambda: pickle.dumps(tape), "dumps": lambda: pyad.serialize.dumps(tape),
        "input": lambda: tape.input(1.0), "output": lambda: tape.output(v),
        "value": lambda: v.value, "scalar value": lambda: v[0].value,
        "add": lambda: (v + 1.0).value, "scalar mul": lambda: (v[0] * v[1]).value,
        "sin": lambda: pyad.sin(v), "numpy sum": lambda: np.sum(v),
        "compare": lambda: v > 0.0, "where": lambda: pyad.where(v > 0.0, v, 0.0),
        "matmul": lambda: v @ np.ones((v.shape[0], 2)), "max": lambda: v.max(),
        "if": lambda: bool(v[0] > 0.0),
    }


@pytest.mark.parametrize("use", list(_uses_of_a_closed_tape(None, np.zeros(1), None)))
def test_a_closed_tape_raises_tape_closed_error(backend, use):
    x = np.linspace(-1.0, 1.0, 5)
    with pyad.Tape(backend=backend) as tape:
        v = tape.input(x)
        tape.output(rosen(v))
    tape.close()
    assert tape.closed
    with pytest.raises(pyad.TapeClosedError, match="closed"):
        _uses_of_a_closed_tape(tape, x, v)[use]()
    # and stays closed and printable
    assert "closed" in repr(tape)
    tape.close()
    with pytest.raises(pyad.TapeClosedError):
        tape.gradient(x)


def test_closing_a_tape_while_recording_on_it(backend):
    t = pyad.Tape(backend=backend)
    x = t.input(np.array([1.0, 2.0]))
    y = x[0] * x[1]  # buffered, not handed over yet
    t.close()
    for use in (lambda: y.value, lambda: y + 1.0, lambda: pyad.exp(y), lambda: x * 2.0,
                lambda: t.output(y)):
        with pytest.raises(pyad.TapeClosedError):
            use()
    assert "closed" in repr(y)


def test_a_traced_tape_closed_does_not_re_record(backend):
    def branchy(x):
        s = np.sum(x * x)
        return s * 2.0 if x[0] > 0 else s

    x = np.linspace(0.1, 1.0, 4)
    tape = pyad.trace(branchy, x, backend=backend)
    tape.close()
    with pytest.raises(pyad.TapeClosedError):
        tape.gradient(-x)  # a flipped branch would re-record an open tape
    assert tape.retraces == 0 and tape.closed
