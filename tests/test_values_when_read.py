"""Recorded rows get their values at the recorded point when something first
reads them (a value, a guard, a sweep at the recorded point), not when they are
recorded (csrc/record.c, tape_settle): whatever is read is what numpy computes
at that point, whatever happened to the caller's arrays since, whichever
thread reads first."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pyad

RNG = np.random.default_rng(11)


def test_a_constant_mutated_inside_f_after_use_counts_as_it_was(backend):
    """The rows are evaluated after f returns, from the constants as copied when
    each row was recorded: a work buffer reused inside f changes nothing."""
    X, c = RNG.standard_normal((5, 4)), RNG.standard_normal(5)
    X0, c0 = X.copy(), c.copy()
    w = RNG.standard_normal(4)

    def f(v, X=X, c=c):
        a = np.sum(np.tanh(X @ v) * c)
        X[...] = 7.0          # the buffers are reused for something else
        c[...] = -1.0
        return a + np.sum(v ** 2)

    def f0(v):
        return np.sum(np.tanh(X0 @ v) * c0) + np.sum(v ** 2)

    want_value, want_grad = pyad.value_and_grad(f0, backend=backend)(w)
    value, grad = pyad.value_and_grad(f, backend=backend)(w)
    assert value == pytest.approx(f0(w), rel=1e-14)
    assert value == want_value
    np.testing.assert_array_equal(grad, want_grad)
    X[...], c[...] = X0, c0
    tape = pyad.trace(f, w, backend=backend)
    assert tape(w) == want_value
    np.testing.assert_array_equal(tape.gradient(), want_grad)   # the recorded point
    np.testing.assert_allclose(tape.gradient(w), want_grad, rtol=1e-14)


def test_values_read_while_recording_then_more_rows(backend):
    """A value read in the middle (which evaluates the rows so far) and rows
    recorded after it, scalar and array, read again: each is numpy's."""
    x = RNG.standard_normal(6)
    with pyad.Tape(backend=backend) as tape:
        v = tape.input(x)
        a = np.exp(v[1:]) * v[:-1]
        np.testing.assert_allclose(a.value, np.exp(x[1:]) * x[:-1], rtol=1e-15)
        s = a[0] * a[1] + np.sum(np.sin(a))       # scalar rows, then array rows
        b = np.cos(a) - s
        np.testing.assert_allclose(b.value, np.cos(np.exp(x[1:]) * x[:-1]) - (
            np.exp(x[1]) * x[0] * np.exp(x[2]) * x[1] + np.sum(np.sin(np.exp(x[1:]) * x[:-1]))),
            rtol=1e-14)
        tape.output(np.sum(b * b))
    g = tape.gradient()
    np.testing.assert_allclose(g, tape.gradient(x), rtol=1e-14)


def _singular_then_more(x):
    """det of a matrix with an exact zero row (LU meets a zero pivot), then more rows."""
    A = np.outer(np.array([1.0, 0.0]), x[:2])
    return np.linalg.det(A) + np.sum(np.sin(x)) * x[2]


def test_rows_after_a_singular_matrix_get_their_values(backend):
    """Evaluating many rows at once does not stop at a row whose matrix is
    singular at the recorded point: the rows after it have numpy's values."""
    x = np.array([0.3, 0.7, 1.1])
    want = np.sum(np.sin(x)) * x[2]
    value, grad = pyad.value_and_grad(_singular_then_more, backend=backend)(x)
    assert value == pytest.approx(want, rel=1e-15, abs=1e-300)
    tape = pyad.trace(_singular_then_more, x, backend=backend)
    np.testing.assert_allclose(tape.gradient(), grad, rtol=1e-14)
    with pyad.Tape(backend=backend) as t:
        v = t.input(x)
        y = _singular_then_more(v)
        assert y.value == pytest.approx(want, rel=1e-15)


def test_gradient_at_the_recorded_point_equals_replay(backend):
    """tape.gradient() reads the recorded values (the reverse sweep over them):
    they are the values a replay at that point computes."""
    x = RNG.standard_normal(50)
    f = lambda v: np.sum(np.log1p(np.exp(v[1:] - v[:-1] ** 2))) / np.sum(v ** 2)
    tape = pyad.trace(f, x, backend=backend)
    np.testing.assert_array_equal(tape.gradient(), tape.gradient(x))
    assert tape.hvp(x, np.ones(50)).shape == (50,)


_RACE = textwrap.dedent("""
    import sys, threading
    import numpy as np
    import pyad
    sys.setswitchinterval(1e-6)
    backend = sys.argv[1]
    x = np.linspace(-1.0, 1.0, 2000)
    f = lambda v: np.sum(np.sin(v[1:]) * np.exp(v[:-1]) + v[1:] ** 2)
    want = pyad.grad(f, backend=backend)(x)
    for trial in range(20):
        tape = pyad.trace(f, x, backend=backend)      # no row has a value yet
        out, errors = [None] * 6, []
        def run(i):
            try:
                out[i] = tape.gradient() if i % 2 else tape(x)
            except Exception as e:
                errors.append(repr(e))
        threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
        for t in threads: t.start()
        for t in threads: t.join()
        assert not errors, errors
        for i in range(1, 6, 2):
            np.testing.assert_allclose(out[i], want, rtol=1e-14)
        for i in range(0, 6, 2):
            assert out[i] == f(x) or abs(out[i] - f(x)) <= 1e-12 * abs(f(x))
    print("ok")
""")


def test_first_readers_from_many_threads_agree(backend):
    """Threads that sweep a fresh tape at once: one evaluates the recorded rows
    (the others wait), and every result is right."""
    proc = subprocess.run([sys.executable, "-c", _RACE, backend], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr
