"""Threads: one tape replayed from several threads at once gives exactly the
results of serial replay (values, gradients, HVPs, JVPs, VJPs, batches), in
both backends; tapes recorded in separate threads are independent.

Recording on ONE tape from two threads at once is refused: the thread that
records owns the tape's buffer, and another thread recording while rows are
buffered closes the tape with TapeBusyError. Tested here: nothing crashes, only
pyad's own errors are raised, and a tape that raised nothing holds the right values.

Scenarios that could crash the interpreter run in a subprocess, so that a
crash is a failed test rather than the end of the run.
"""
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import pyad

N_THREADS = 4
rng0 = np.random.default_rng(7)
W = rng0.uniform(-1, 1, size=(24, 3))


def f(x):
    y = pyad.where(x > 0, pyad.sin(x), x * x)
    rosen = np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
    return rosen + np.max(y) + np.sum(pyad.tanh(y @ W)) + np.prod(pyad.cos(x[:4]))


def points(n_points, seed):
    return np.random.default_rng(seed).uniform(-1.2, 1.2, size=(n_points, 24))


def replay_tasks(tape, P, V):
    """Every kind of replay, as (name, thunk) pairs."""
    tasks = []
    for k in range(len(P)):
        p, v = P[k], V[k]
        tasks += [(f"value {k}", lambda p=p: tape(p)),
                  (f"gradient {k}", lambda p=p: tape.gradient(p)),
                  (f"value_and_gradient {k}", lambda p=p: tape.value_and_gradient(p)),
                  (f"hvp {k}", lambda p=p, v=v: tape.hvp(p, v)),
                  (f"jvp {k}", lambda p=p, v=v: tape.jvp(p, v)),
                  (f"vjp {k}", lambda p=p: tape.vjp(p, 2.0))]
    tasks += [("batch values", lambda: tape(P, batch=True)),
              ("batch gradients", lambda: tape.gradient(P, batch=True)),
              ("batch gradients, 2 threads", lambda: tape.gradient(P, batch=True, threads=2)),
              ("batch hvps", lambda: tape.hvp(P, V, batch=True)),
              ("batch jvps", lambda: tape.jvp(P, V, batch=True)),
              ("hessian", lambda: tape.hessian(P[0])),
              ("jacobian", lambda: tape.jacobian(P[1], mode="reverse"))]
    return tasks


def run_concurrently(n_threads, work):
    """work(i) in n_threads threads started together; their results, or the first error."""
    barrier = threading.Barrier(n_threads)
    results, errors = [None] * n_threads, []

    def body(i):
        try:
            barrier.wait()
            results[i] = work(i)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def assert_identical(got, want, what):
    if isinstance(want, tuple) or isinstance(want, list):
        assert len(got) == len(want), what
        for g, w in zip(got, want):
            assert_identical(g, w, what)
        return
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want), err_msg=what)


@pytest.fixture(params=[1])
def switch_often(request):
    """Make the interpreter switch threads often, so races show up."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(old)


def test_concurrent_replay_equals_serial_replay(backend, switch_often):
    P, V = points(6, 1), points(6, 2)
    tape = pyad.trace(f, P[0], backend=backend, retrace=False)
    serial = {name: thunk() for name, thunk in replay_tasks(tape, P, V)}
    rounds = 3 if backend == "c" else 1

    def work(i):
        tasks = replay_tasks(tape, P, V)
        order = np.random.default_rng(100 + i).permutation(len(tasks))
        out = []
        for _ in range(rounds):
            out += [(tasks[j][0], tasks[j][1]()) for j in order]
        return out

    for results in run_concurrently(N_THREADS, work):
        for name, value in results:
            assert_identical(value, serial[name], f"{backend}: {name} from a thread")


def test_many_threads_hammering_one_gradient(backend, switch_often):
    P = points(8, 3)
    tape = pyad.trace(f, P[0], backend=backend, retrace=False)
    serial = [tape.gradient(p) for p in P]
    reps = 60 if backend == "c" else 4

    def work(i):
        return [tape.gradient(P[(i + r) % len(P)]) for r in range(reps)]

    for i, grads in enumerate(run_concurrently(8, work)):
        for r, g in enumerate(grads):
            assert_identical(g, serial[(i + r) % len(P)], f"{backend}: thread {i}, call {r}")


def test_threaded_batches_equal_the_serial_batch(backend):
    P = points(40, 4)
    tape = pyad.trace(f, P[0], backend=backend, retrace=False)
    serial = tape.gradient(P, batch=True)
    # the batched sweep is other code than the one-point sweep: equal to rounding
    np.testing.assert_allclose(serial, [tape.gradient(p) for p in P], rtol=1e-12, atol=1e-12,
                               err_msg=f"{backend}: batch vs loop")
    for threads in (2, 3, 7):
        # split differently, so vectorized math may round differently at the seams
        np.testing.assert_allclose(tape.gradient(P, batch=True, threads=threads), serial,
                                   rtol=1e-12, atol=1e-12, err_msg=f"{backend}: threads={threads}")
    two = tape.gradient(P, batch=True, threads=2)
    outer = run_concurrently(2, lambda i: tape.gradient(P, batch=True, threads=2))
    for got in outer:
        assert_identical(got, two, f"{backend}: threaded batches from two threads")


def test_tapes_recorded_in_separate_threads_are_independent(backend, switch_often):
    P = points(N_THREADS, 5)
    want = [pyad.grad(f, backend=backend)(p) for p in P]
    reps = 10 if backend == "c" else 2

    def work(i):
        out = []
        for _ in range(reps):
            tape = pyad.trace(f, P[i], backend=backend)
            out.append(tape.gradient())
            out.append(pyad.grad(f, backend=backend)(P[i]))
        return out

    for i, grads in enumerate(run_concurrently(N_THREADS, work)):
        for g in grads:
            assert_identical(g, want[i], f"{backend}: thread {i}")


def test_a_tape_recorded_in_one_thread_replays_in_another(backend):
    P = points(2, 6)
    box = {}
    t = threading.Thread(target=lambda: box.update(tape=pyad.trace(f, P[0], backend=backend)))
    t.start()
    t.join()
    tape = box["tape"]
    assert_identical(run_concurrently(2, lambda i: tape.gradient(P[1]))[0],
                     pyad.grad(f, backend=backend)(P[1]), backend)


# ---- scenarios run in a subprocess ----

def run_script(script, *args, timeout=300):
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, PYTHONFAULTHANDLER="1"))
    return proc.returncode, (proc.stdout + proc.stderr)[-6000:]


TWO_RECORDERS = r"""
    import sys, threading, collections
    import pyad
    backend, trials, n_ops = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    sys.setswitchinterval(1e-6)
    outcomes = collections.Counter()
    for trial in range(trials):
        tape = pyad.Tape(backend=backend)
        a = tape.input(1.0)
        barrier, out, errors = threading.Barrier(2), {}, []

        def record(k):
            try:
                barrier.wait()
                x = a
                for _ in range(n_ops):
                    x = x * 1.0001 + float(k)
                out[k] = x
            except pyad.TapeBusyError as e:
                assert "thread" in str(e), str(e)
                errors.append("busy")
            except pyad.TapeClosedError:
                errors.append("closed")
            except Exception as e:  # anything else is a failure of the test
                errors.append(f"other: {type(e).__name__}: {e}")

        threads = [threading.Thread(target=record, args=(k,)) for k in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # whatever happened, using the tape gives a result or one of pyad's errors
        try:
            # read from the store: .value would record a guard (the tape still records)
            values = {k: out[k]._s.value(out[k]._i) for k in sorted(out)}
            if not errors:  # nothing was refused: the values must be right
                for k in sorted(out):
                    want = 1.0
                    for _ in range(n_ops):
                        want = want * 1.0001 + float(k)
                    if values[k] != want:
                        sys.exit(f"trial {trial}: silently wrong value {values[k]} != {want}")
            tape.output(sum(out.values()) if out else a)
            tape.gradient()
            tape.gradient(2.0)
            outcome = "recorded"
        except (pyad.TapeBusyError, pyad.TapeClosedError):
            outcome = "refused"
            if errors and tape.closed:
                try:
                    tape.gradient()
                    sys.exit("a tape closed for interleaved recording still replays")
                except pyad.TapeClosedError:
                    pass
        outcomes[(outcome, tuple(sorted(errors)))] += 1
        if any(e.startswith("other") for e in errors):
            sys.exit(f"trial {trial}: {errors}")
    print(dict(outcomes))
"""


def test_two_threads_recording_on_one_tape_never_crash(backend):
    """Recording on one tape from two threads: no crash, only pyad's own errors,
    and never a silently wrong value (before the owner-thread check, most trials
    ended without an error and with wrong values)."""
    rc, out = run_script(TWO_RECORDERS, backend, 30 if backend == "c" else 10, 2000)
    assert rc == 0, out


RETRACE_IN_THREADS = r"""
    import sys, threading
    import numpy as np
    import pyad
    backend, n, calls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

    def f(x):
        s = np.sum(pyad.sin(x) * x)
        if x[0] > 0:  # a branch: replay at a point on the other side re-records
            return s * 2.0
        return s

    x_pos = np.linspace(0.1, 1.0, n)
    x_neg = -x_pos
    want = {1: pyad.grad(f, backend=backend)(x_pos), -1: pyad.grad(f, backend=backend)(x_neg)}
    tape = pyad.trace(f, x_pos, backend=backend)
    barrier, failures = threading.Barrier(2), []

    def work(sign):
        barrier.wait()
        x = x_pos if sign > 0 else x_neg
        for _ in range(calls):
            try:
                g = tape.gradient(x)
                if not np.allclose(g, want[sign]):
                    failures.append("wrong gradient")
            except Exception as e:
                failures.append(f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=work, args=(s,)) for s in (1, -1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        sys.exit(f"{len(failures)} failures, e.g. {failures[0]}")
    print("retraces", tape.retraces)
"""


def test_concurrent_replay_of_a_tape_that_re_records(backend):
    """pyad.trace tapes re-record where a branch flips; two threads replaying on
    both sides of the branch must each get their own right answer."""
    n, calls = (3000, 150) if backend == "c" else (200, 30)
    rc, out = run_script(RETRACE_IN_THREADS, backend, n, calls)
    assert rc == 0, out


CLOSE_WHILE_REPLAYING = r"""
    import sys, threading, time
    import numpy as np
    import pyad
    backend, n = sys.argv[1], int(sys.argv[2])
    f = lambda x: np.sum(pyad.sin(x) * x)
    x = np.linspace(0.1, 1.0, n)
    want = pyad.grad(f, backend=backend)(x)
    for trial in range(20):
        tape = pyad.trace(f, x, backend=backend)
        started, problems = threading.Event(), []

        def replay():
            started.set()
            for _ in range(200):
                try:
                    if not np.array_equal(tape.gradient(x), want):
                        problems.append("wrong gradient")
                except pyad.TapeClosedError:
                    return
                except Exception as e:
                    problems.append(f"{type(e).__name__}: {e}")
                    return

        t = threading.Thread(target=replay)
        t.start()
        started.wait()
        time.sleep(0.001 * (trial % 5))
        tape.close()
        t.join()
        if problems:
            sys.exit(f"trial {trial}: {problems[0]}")
    print("ok")
"""


def test_closing_a_tape_while_another_thread_replays_it(backend):
    """The replaying thread finishes its sweep or gets TapeClosedError; nothing crashes."""
    rc, out = run_script(CLOSE_WHILE_REPLAYING, backend, 20000 if backend == "c" else 300)
    assert rc == 0, out
