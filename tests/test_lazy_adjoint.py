"""The reverse sweeps zero a block row's adjoints only when the first row adding
to them is reached (csrc/lazy_adjoint.c), and pyad.grad gives consumed adjoint
pages back. What must hold: every adjoint a row reads is zero or what later rows
added, even in work arrays left dirty by an earlier sweep; several readers of
one block (array, scalar, strided, product, reduction) all count; concurrent
first sweeps of one tape agree; tape.hvp's result is never a work array.

Blocks are only lazy from 512 elements on, so the arrays here are wider."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pyad

N = 700  # above the lazy width (LAZY_MIN_WIDTH in csrc/lazy_adjoint.c)


def dirty_the_work_arrays(tape, x):
    """Sweeps that leave nonzero tangents and adjoints in the tape's work arrays."""
    tape.jvp(x, np.full_like(x, 3.0))
    tape.hvp(x, np.full_like(x, -7.0))
    tape.gradient(x * 1.5)


def test_a_block_no_row_reads_still_passes_back_nothing(backend):
    x = np.linspace(0.3, 1.7, N)

    def f(x):
        unused = pyad.sin(x) * 3.0  # two block rows no output depends on
        del unused
        return np.sum(x * x)

    tape = pyad.trace(f, x, backend=backend)
    assert tape.n_ops >= 4
    dirty_the_work_arrays(tape, x)
    assert np.array_equal(tape.gradient(x), 2 * x)
    assert np.array_equal(tape.vjp(x, 1.0)[1], 2 * x)
    v = np.cos(np.arange(N))
    assert np.array_equal(tape.hvp(x, v), 2 * v)


def test_a_block_read_only_by_a_comparison(backend):
    x = np.linspace(-1.0, 1.0, N)

    def f(x):
        a = x * 2.0
        return np.sum(pyad.where(a > 0.0, x * x, -x))

    tape = pyad.trace(f, x, backend=backend)
    dirty_the_work_arrays(tape, x)
    want = np.where(x * 2.0 > 0.0, 2 * x, -1.0)
    assert np.array_equal(tape.gradient(x), want)
    v = np.sin(np.arange(N))
    assert np.array_equal(tape.hvp(x, v), np.where(x * 2.0 > 0.0, 2 * v, 0.0))


def test_every_reader_of_a_block_counts(backend):
    """y is read by an array row, a scalar row (y[5]), a strided view, a
    reduction over an axis and a product: zeroing y at the first of them in tape
    order (instead of the last) would drop what the later ones added."""
    x = np.linspace(0.1, 0.9, N + 2)
    W = np.cos(np.arange(2 * 3)).reshape(2, 3)

    def f(x):
        y = pyad.sin(x)
        a = np.sum(y * 2.0)
        s = y[5] * y[5]
        b = np.sum(y[::2] ** 2)
        m = y.reshape(-1, 2)                      # 351 x 2
        c = np.sum(np.sum(m, axis=1) ** 2)
        d = np.sum(pyad.tanh(m @ W))
        return a + s + b + c + d

    def grad_by_hand(x):
        y, dy = np.sin(x), np.cos(x)
        g = np.full_like(x, 2.0)
        g[5] += 2 * y[5]
        g[::2] += 2 * y[::2]
        m = y.reshape(-1, 2)
        g += np.repeat(2 * np.sum(m, axis=1), 2)
        t = np.tanh(m @ W)
        g += ((1 - t * t) @ W.T).ravel()
        return g * dy

    tape = pyad.trace(f, x, backend=backend)
    dirty_the_work_arrays(tape, x)
    np.testing.assert_allclose(tape.gradient(x), grad_by_hand(x), rtol=1e-13, atol=1e-13)
    x2 = x[::-1].copy()
    np.testing.assert_allclose(tape.vjp(x2, 1.0)[1], grad_by_hand(x2), rtol=1e-13, atol=1e-13)
    v = np.cos(3 * np.arange(x.size))
    eps = 1e-6
    fd = (grad_by_hand(x + eps * v) - grad_by_hand(x - eps * v)) / (2 * eps)
    np.testing.assert_allclose(tape.hvp(x, v), fd, rtol=1e-6, atol=1e-6)


FIRST_WRITERS = {
    # y's last reader reads it through both operands, overlapping: no first write
    "shifted product": (lambda x: (lambda y: np.sum(y[1:] * y[:-1]))(pyad.sin(x)),
                        lambda x: np.concatenate([[0.0], np.sin(x[:-1])]) * np.cos(x)
                        + np.concatenate([np.sin(x[1:]), [0.0]]) * np.cos(x)),
    "square by product": (lambda x: (lambda y: np.sum(y * y))(x * 1.0), lambda x: 2 * x),
    # the last reader writes all of y but its last element, which must be zeroed
    "part of a block": (lambda x: np.sum(pyad.sin(x)[:-1] * 2.0),
                        lambda x: np.concatenate([2 * np.cos(x[:-1]), [0.0]])),
    # x's last reader covers x[1:], x[0] is added to by an earlier row
    "part of the input": (lambda x: np.sum(x[1:] * 3.0) + np.sum(x * x),
                          lambda x: 2 * x + np.concatenate([[0.0], np.full(x.size - 1, 3.0)])),
}


@pytest.mark.parametrize("case", sorted(FIRST_WRITERS))
def test_first_writer_cases(backend, case):
    f, grad = FIRST_WRITERS[case]
    x = np.linspace(0.2, 1.4, N)
    tape = pyad.trace(f, x, backend=backend)
    dirty_the_work_arrays(tape, x)
    for point in (x, x[::-1].copy()):
        np.testing.assert_allclose(tape.gradient(point), grad(point), rtol=1e-14, atol=1e-14)
        np.testing.assert_allclose(tape.vjp(point, 1.0)[1], grad(point), rtol=1e-14, atol=1e-14)
    v = np.cos(np.arange(N))
    eps = 1e-6
    fd = (grad(x + eps * v) - grad(x - eps * v)) / (2 * eps)
    np.testing.assert_allclose(tape.hvp(x, v), fd, rtol=1e-6, atol=1e-6)


def test_backends_agree_after_dirty_sweeps():
    x = np.linspace(-0.8, 1.1, N)

    def f(x):
        u = pyad.exp(x[1:] * x[:-1])
        w = np.cumsum(u) * 1e-3
        return np.sum(u * w) + np.max(u[::3]) + u[17] * x[0]

    tapes = {b: pyad.trace(f, x, backend=b) for b in ("c", "python")}
    v = np.sin(np.arange(N))
    for b, tape in tapes.items():
        dirty_the_work_arrays(tape, x)
    got = {b: (t.gradient(x), t.hvp(x, v)) for b, t in tapes.items()}
    for c_part, py_part in zip(got["c"], got["python"]):
        np.testing.assert_allclose(c_part, py_part, rtol=1e-12, atol=1e-12)


def test_hvp_result_is_not_a_work_array(backend):
    x = np.linspace(0.2, 1.2, N)
    tape = pyad.trace(lambda x: np.sum(x ** 3), x, backend=backend)
    v = np.ones(N)
    first = tape.hvp(x, v)
    keep = first.copy()
    tape.hvp(2 * x, 5 * v)
    tape.gradient(3 * x)
    assert np.array_equal(first, keep)
    assert np.array_equal(keep, 6 * x)


def run_script(script, *args, timeout=300):
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, PYTHONFAULTHANDLER="1"))
    return proc.returncode, (proc.stdout + proc.stderr)[-4000:]


FIRST_SWEEPS_AT_ONCE = r"""
    import sys, threading
    import numpy as np
    import pyad
    backend, rounds = sys.argv[1], int(sys.argv[2])
    sys.setswitchinterval(1e-6)
    x = np.linspace(0.1, 1.3, 900)
    v = np.cos(np.arange(900))
    f = lambda x: np.sum(pyad.sin(x[1:] * x[:-1]) ** 2) + np.sum(pyad.exp(x[::2]))
    reference = pyad.trace(f, x, backend=backend)
    want = {"g": reference.gradient(x), "hv": reference.hvp(x, v), "u": reference.vjp(x, 2.0)[1]}
    failures = []
    for trial in range(rounds):
        tape = pyad.trace(f, x, backend=backend)  # a fresh tape: no plan yet
        go = threading.Barrier(4)

        def sweep(which):
            go.wait()
            for _ in range(5):
                got = {"g": lambda: tape.gradient(x), "hv": lambda: tape.hvp(x, v),
                       "u": lambda: tape.vjp(x, 2.0)[1]}[which]()
                if not np.array_equal(got, want[which]):
                    failures.append(f"trial {trial}: wrong {which}")

        threads = [threading.Thread(target=sweep, args=(w,)) for w in ("g", "hv", "u", "g")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        tape.close()
        if failures:
            sys.exit(failures[0])
    print("ok")
"""


def test_first_sweeps_of_a_tape_at_once_agree(backend):
    code, out = run_script(FIRST_SWEEPS_AT_ONCE, backend, 40 if backend == "c" else 3)
    assert code == 0 and out.strip().endswith("ok"), out


PEAK_GROWTH = r"""
    import sys
    import numpy as np
    import pyad
    from pyad._pyad_c import ffi, lib
    owned = sys.argv[1] == "owned"
    n = 2_000_000
    x = np.linspace(-1.2, 1.0, n)
    if sys.argv[2] == "rosenbrock":  # one fused run: its rows' adjoints stay in tiles
        f = lambda x: np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
    else:  # a chain whose rows read each other shifted: nothing is fused
        def f(x):
            for _ in range(5):
                x = x[1:] * 1.5
            return np.sum(x[1:])
    tape = pyad.trace(f, x)
    h = tape._store._h
    # recorded values are evaluated when first read: before the measured sweep
    first, one = np.zeros(1, dtype=np.int32), np.empty(1)
    assert lib.pyad_values(h, ffi.cast("int32_t *", first.ctypes.data), 1,
                           ffi.cast("double *", one.ctypes.data)) == 0
    slots = lib.pyad_n_slots(h)
    adj, xbar, u = np.empty(slots), np.empty(n), np.ones(1)
    xbar[:] = 0.0

    def peak():
        with open("/proc/self/status") as fh:
            return next(int(l.split()[1]) * 1024 for l in fh if l.startswith("VmHWM:"))

    before = peak()
    sweep = lib.pyad_reverse_owned if owned else lib.pyad_reverse
    p = lambda a: ffi.cast("double *", a.ctypes.data)
    assert sweep(h, ffi.NULL, p(u), p(adj), p(xbar)) == 0
    grown = peak() - before  # before the check's numpy temporaries
    if sys.argv[2] == "rosenbrock":
        x0, x1 = x[:-1], x[1:]
        d = x1 - x0 * x0
        g = np.zeros_like(x)
        g[:-1] = -400.0 * x0 * d - 2.0 * (1.0 - x0)
        g[1:] += 200.0 * d
    else:
        g = np.where(np.arange(n) >= 6, 1.5 ** 5, 0.0)
    assert np.allclose(xbar, g, rtol=1e-12, atol=1e-9)
    print(grown, 8 * slots)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_rss_shows_the_owned_reverse_giving_adjoint_pages_back():
    """C only: giving pages back is the C core's (the Python backend's adjoints
    are numpy temporaries). 16 MB blocks, above the 8 MB give-back size. An RSS
    measurement ("rss" in the name): the sanitized run leaves it out, as ASan's
    quarantine keeps freed pages resident."""
    grown = {}
    for mode in ("owned", "plain"):
        code, out = run_script(PEAK_GROWTH, mode, "chain")
        assert code == 0, out
        grown[mode], column = map(int, out.split()[-2:])
    assert grown["plain"] > 0.8 * column      # the whole adjoint column was resident
    assert grown["owned"] < 0.6 * grown["plain"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_a_fused_run_never_touches_its_internal_rows_adjoints():
    """C only (fused runs are the C core's). Rosenbrock is one run: besides
    the input's adjoints, only tiles of scratch; unfused, 8 rows' columns."""
    code, out = run_script(PEAK_GROWTH, "plain", "rosenbrock")
    assert code == 0, out
    grown, column = map(int, out.split()[-2:])
    assert grown < 0.3 * column
