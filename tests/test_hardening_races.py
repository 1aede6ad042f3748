"""Races found by an outside attack (issue 12, items 1 and 4), each run in a
subprocess with a short switch interval, so that a crash is a failed test and
the race shows up in seconds when the bug is back.

1. A sweep sizes its work arrays from the tape's size; another thread recording
   onto the tape meanwhile must not make the sweep run past them (before the fix:
   heap corruption, the interpreter aborted).
4. One thread recording scalar ops and another recording array ops on one tape
   must get TapeBusyError or right values, never wrong values.
"""
import os
import subprocess
import sys
import textwrap


def run_script(script, *args, timeout=300):
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, PYTHONFAULTHANDLER="1"))
    return proc.returncode, (proc.stdout + proc.stderr)[-6000:]


SWEEP_WHILE_RECORDING = r"""
    import sys, threading
    import numpy as np
    import pyad
    backend, rounds, n, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    sys.setswitchinterval(1e-6)
    x0 = np.linspace(0.1, 1.0, n)
    X = np.stack([x0, 2 * x0, 3 * x0])
    failures = []
    for trial in range(rounds):
        tape = pyad.Tape(backend=backend)
        a = tape.input(x0)
        tape.output(np.sum(pyad.sin(a) * a))
        want = {"g": tape.gradient(x0), "y": tape(x0), "hv": tape.hvp(x0, x0),
                "G": tape.gradient(X, batch=True), "J": tape.jacobian(x0)}
        stop = threading.Event()

        def record():
            # ops after the output: they grow the tape, not what it computes
            z = a
            while not stop.is_set():
                try:
                    z = pyad.sin(z) * 1.5 + a
                    s = z[0] * z[1]
                    s = s + 1.0
                except pyad.TapeBusyError:
                    pass

        def replay():
            try:
                for _ in range(reps):
                    for name, got in (("g", lambda: tape.gradient(x0)), ("y", lambda: tape(x0)),
                                      ("hv", lambda: tape.hvp(x0, x0)),
                                      ("G", lambda: tape.gradient(X, batch=True)),
                                      ("J", lambda: tape.jacobian(x0))):
                        try:
                            value = got()
                        except pyad.TapeBusyError:
                            continue
                        if not np.array_equal(value, want[name]):
                            failures.append(f"trial {trial}: wrong {name}")
            except Exception as e:
                failures.append(f"trial {trial}: {type(e).__name__}: {e}")
            finally:
                stop.set()

        threads = [threading.Thread(target=record), threading.Thread(target=replay)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if failures:
            sys.exit(failures[0])
    print("ok")
"""


def test_sweeping_while_another_thread_records_on_the_tape(backend):
    """Item 1: every sweep sizes its buffers under the rule that keeps the tape
    from growing meanwhile; replays stay exact, nothing crashes."""
    rounds, n, reps = (10, 64, 20) if backend == "c" else (2, 4, 4)
    rc, out = run_script(SWEEP_WHILE_RECORDING, backend, rounds, n, reps, timeout=120)
    assert rc == 0, out


SCALAR_AND_ARRAY_RECORDERS = r"""
    import sys, threading, collections
    import numpy as np
    import pyad
    backend, trials, n_ops = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    sys.setswitchinterval(1e-6)
    outcomes = collections.Counter()

    def chain(start, k, n):
        want = start
        for _ in range(n):
            want = want * 1.0001 + float(k)
        return want

    for trial in range(trials):
        tape = pyad.Tape(backend=backend)
        s0 = tape.input(1.0)
        v0 = tape.input(np.ones(3))
        barrier, out, errors = threading.Barrier(2), {}, []

        def scalar_ops():
            try:
                barrier.wait()
                x = s0
                for _ in range(n_ops):
                    x = x * 1.0001 + 1.0
                out["scalar"] = x
            except (pyad.TapeBusyError, pyad.TapeClosedError) as e:
                errors.append(type(e).__name__)

        def array_ops():
            try:
                barrier.wait()
                y = v0
                for _ in range(n_ops):
                    y = y * 1.0001 + 2.0
                out["array"] = y
            except (pyad.TapeBusyError, pyad.TapeClosedError) as e:
                errors.append(type(e).__name__)

        threads = [threading.Thread(target=scalar_ops), threading.Thread(target=array_ops)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        try:
            if "scalar" in out and out["scalar"].value != chain(1.0, 1, n_ops):
                sys.exit(f"trial {trial}: scalar chain silently wrong: "
                         f"{out['scalar'].value} != {chain(1.0, 1, n_ops)} ({errors})")
            if "array" in out and not np.array_equal(out["array"].value,
                                                     np.full(3, chain(1.0, 2, n_ops))):
                sys.exit(f"trial {trial}: array chain silently wrong: {out['array'].value} "
                         f"({errors})")
            outcome = "values right"
        except (pyad.TapeBusyError, pyad.TapeClosedError):
            outcome = "refused"
        outcomes[(outcome, tuple(sorted(errors)))] += 1
    print(dict(outcomes))
"""


def test_scalar_and_array_recording_from_two_threads_is_never_silently_wrong(backend):
    """Item 4: the row buffer (scalar ops) and the direct record calls (array ops)
    go through one owner check."""
    trials = 60
    rc, out = run_script(SCALAR_AND_ARRAY_RECORDERS, backend, trials, 200)
    assert rc == 0, out
