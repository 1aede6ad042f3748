"""Bad input gets a clear error, never a crash.

Scenarios that could reach freed or out-of-range C memory run a second time in
a subprocess, so that a segfault fails the test instead of killing pytest.
"""
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pyad


def assert_names_the_fix(excinfo):
    msg = str(excinfo.value)
    assert "pyad." in msg, msg
    assert ".value" in msg, msg


# ---------------------------------------------------------------------------
# Dropping the derivative by accident
# ---------------------------------------------------------------------------

DROPPERS = {
    "float": float,
    "int": int,
    "complex": complex,
    "math.sin": math.sin,
    "math.exp": math.exp,
    "math.sqrt": math.sqrt,
    "math.log": math.log,
    "math.atan2": lambda x: math.atan2(x, 1.0),
    "math.isfinite": math.isfinite,
    "round": lambda x: round(x) * 1.0,
}


@pytest.mark.parametrize("name", sorted(DROPPERS))
def test_float_conversions_of_active_scalar_raise_with_fix(name, backend):
    drop = DROPPERS[name]
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(2.0)
        with pytest.raises(TypeError) as excinfo:
            drop(x)
        if name in ("float", "int", "math.sin"):
            assert_names_the_fix(excinfo)
        tape.output(x * 3.0)
    # the tape is unharmed by the failed conversion
    assert tape.gradient() == 3.0


@pytest.mark.parametrize("name", ["float", "int", "math.sin"])
def test_float_conversions_inside_grad_raise_with_fix(name, backend):
    drop = DROPPERS[name]
    with pytest.raises(TypeError) as excinfo:
        pyad.grad(lambda x: drop(x) * 2.0, backend=backend)(1.5)
    assert_names_the_fix(excinfo)
    with pytest.raises(TypeError) as excinfo:
        pyad.grad(lambda x: drop(x[0]) + x[1], backend=backend)(np.array([1.0, 2.0]))
    assert_names_the_fix(excinfo)


def test_float_of_active_comparison_and_array_raise(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.array([1.0, 2.0]))
        with pytest.raises(TypeError) as excinfo:
            float(x)
        assert_names_the_fix(excinfo)
        with pytest.raises(TypeError) as excinfo:
            float(x[0] < x[1])
        assert_names_the_fix(excinfo)
        with pytest.raises(TypeError) as excinfo:
            np.asarray(x, dtype=float)
        assert_names_the_fix(excinfo)
        with pytest.raises(TypeError):
            [10, 20][x[0]]  # __index__
        tape.output(x.sum())
    np.testing.assert_array_equal(tape.gradient(), [1.0, 1.0])


# ---------------------------------------------------------------------------
# Two tapes
# ---------------------------------------------------------------------------

MIXERS = {
    "a + b": lambda a, b: a + b,
    "b * a": lambda a, b: b * a,
    "a / b": lambda a, b: a / b,
    "a ** b": lambda a, b: a ** b,
    "a < b": lambda a, b: a < b,
    "a == b": lambda a, b: a == b,
    "maximum": lambda a, b: pyad.maximum(a, b),
    "arctan2": lambda a, b: pyad.arctan2(a, b),
    "np.add": lambda a, b: np.add(a, b),
    "where(cond a, b, 1)": lambda a, b: pyad.where(a > 0, b, 1.0),
    "where(cond a, a, b)": lambda a, b: pyad.where(a > 0, a, b),
    "stack": lambda a, b: pyad.stack([a, b]),
}


@pytest.mark.parametrize("name", sorted(MIXERS))
def test_mixing_two_tapes_raises(name, backend):
    mix = MIXERS[name]
    with pyad.Tape(backend=backend) as t1, pyad.Tape(backend=backend) as t2:
        a = t1.input(1.5)
        b = t2.input(2.5)
        with pytest.raises(pyad.MixedTapeError):
            mix(a, b)
        with pytest.raises(pyad.MixedTapeError):
            mix(b, a)
        # arrays of the two tapes, and an array with a scalar of the other tape
        xa = t1.input(np.array([1.0, 2.0]))
        xb = t2.input(np.array([3.0, 4.0]))
        with pytest.raises(pyad.MixedTapeError):
            mix(xa, xb)
        with pytest.raises(pyad.MixedTapeError):
            mix(xa, b)
        # both tapes keep working after the refused operation
        t1.output(a * a + xa.sum())
        t2.output(b * 3.0 + xb[0])
    np.testing.assert_array_equal(t1.gradient()[0], 3.0)
    assert t2.gradient()[0] == 3.0


def test_output_of_another_tapes_value_raises(backend):
    with pyad.Tape(backend=backend) as t1, pyad.Tape(backend=backend) as t2:
        a = t1.input(1.0)
        t2.input(1.0)
        with pytest.raises(pyad.MixedTapeError):
            t2.output(a)
        with pytest.raises(pyad.MixedTapeError):
            t2.output([a, 1.0])
        t1.output(a)
    assert isinstance(pyad.MixedTapeError("x"), ValueError)


def test_mixing_across_backends_raises():
    with pyad.Tape(backend="c") as t1, pyad.Tape(backend="python") as t2:
        a, b = t1.input(1.0), t2.input(2.0)
        with pytest.raises(pyad.MixedTapeError):
            a * b
        with pytest.raises(pyad.MixedTapeError):
            b - a


def test_grad_of_a_closure_over_another_tapes_value_raises(backend):
    with pyad.Tape(backend=backend) as outer:
        w = outer.input(2.0)
        with pytest.raises(pyad.MixedTapeError):
            pyad.grad(lambda x: x * w, backend=backend)(3.0)
        outer.output(w)


# ---------------------------------------------------------------------------
# Replay with wrong inputs
# ---------------------------------------------------------------------------

def test_wrong_number_of_replay_inputs(backend):
    tape = pyad.trace(lambda a, b: a * b, 1.0, 2.0, backend=backend)
    for bad in [(1.0,), (1.0, 2.0, 3.0), (np.ones(3),)]:
        with pytest.raises(ValueError):
            tape(*bad)
        with pytest.raises(ValueError):
            tape.gradient(*bad)
    with pytest.raises(ValueError):
        tape.jvp((1.0,), (1.0, 1.0))
    with pytest.raises(ValueError):
        tape.jvp((1.0, 2.0), (1.0,))
    with pytest.raises(ValueError):
        tape.hvp((1.0, 2.0), (1.0, 2.0, 3.0))
    with pytest.raises(ValueError):
        tape.vjp((1.0, 2.0), (1.0, 1.0))
    # still fine with the right ones
    assert tape(3.0, 4.0) == 12.0


def test_wrong_shape_of_replay_inputs(backend):
    tape = pyad.trace(lambda x: (x * x).sum(), np.ones(3), backend=backend)
    for bad in (np.ones(4), np.ones(2), np.ones((3, 1)), np.ones((1, 3)), 1.0):
        with pytest.raises(ValueError):
            tape(bad)
        with pytest.raises(ValueError):
            tape.gradient(bad)
        with pytest.raises(ValueError):
            tape.hvp(bad, np.ones(3))
        with pytest.raises(ValueError):
            tape.jvp(np.ones(3), bad)
        with pytest.raises(ValueError):
            tape.hvp(np.ones(3), bad)
    with pytest.raises(ValueError):
        tape.vjp(np.ones(3), np.ones(2))
    np.testing.assert_array_equal(tape.gradient(np.array([1.0, 2.0, 3.0])), [2.0, 4.0, 6.0])


def test_wrong_shape_of_2d_input(backend):
    tape = pyad.trace(lambda x: (x * x).sum(), np.ones((2, 3)), backend=backend)
    with pytest.raises(ValueError):
        tape.gradient(np.ones((3, 2)))
    g = tape.gradient(np.arange(6.0).reshape(2, 3))
    assert g.shape == (2, 3)


def test_gradient_of_vector_output_tape_raises(backend):
    tape = pyad.trace(lambda x: x * 2.0, np.ones(3), backend=backend)
    with pytest.raises(ValueError):
        tape.gradient(np.ones(3))
    with pytest.raises(ValueError):
        tape.hvp(np.ones(3), np.ones(3))


# ---------------------------------------------------------------------------
# Non-numeric input
# ---------------------------------------------------------------------------

BAD_INPUTS = {
    "str": "abc",
    "bytes": b"12",
    "None": None,
    "complex": 1 + 2j,
    "complex array": np.array([1 + 1j, 2.0]),
    "object": object(),
    "dict with str": {"a": "1.0"},
    "list with str": [1.0, "a"],
    "str array": np.array(["1.0", "2.0"]),
    "list with None and str": [1.0, None, "b"],
}  # a dict or list of numbers is a pytree (tests/test_pytrees.py); None in one is empty


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_non_numeric_input_raises_type_error(name, backend):
    bad = BAD_INPUTS[name]
    with pytest.raises(TypeError):
        pyad.grad(lambda x: x * 2.0, backend=backend)(bad)
    with pytest.raises(TypeError):
        pyad.trace(lambda x: x * 2.0, bad, backend=backend)
    with pytest.raises(TypeError):
        pyad.jvp(lambda x: x * 2.0, bad, 1.0, backend=backend)
    with pyad.Tape(backend=backend) as tape:
        with pytest.raises(TypeError):
            tape.input(bad)
        x = tape.input(1.0)
        tape.output(x * 2.0)
    with pytest.raises(TypeError):
        tape(bad)
    with pytest.raises(TypeError):
        tape.gradient(bad)
    with pytest.raises(TypeError):
        tape.jvp(1.0, bad)
    assert tape.gradient(3.0) == 2.0


@pytest.mark.parametrize("name", ["str", "None", "complex", "object", "complex array",
                                  "str array"])
def test_non_numeric_constant_raises_type_error(name, backend):
    bad = BAD_INPUTS[name]
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(1.0)
        for op in (lambda: x + bad, lambda: bad * x, lambda: x ** bad,
                   lambda: pyad.maximum(x, bad)):
            with pytest.raises(TypeError):
                op()
        tape.output(x * 2.0)
    assert tape.gradient() == 2.0


def test_numpy_complex_scalar_constant_raises(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(1.0)
        with pytest.raises(TypeError):
            x + np.complex128(1j)
        with pytest.raises(TypeError):
            np.complex128(1j) * x
        tape.output(x)


def test_complex_values_are_refused_by_name(backend):
    """A complex constant or input is named as complex, not as an unknown dtype
    (the dtype checks go by dtype kind)."""
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(np.ones(2))
        with pytest.raises(TypeError, match="complex constants are not supported"):
            x * np.array([1j, 2.0])
        tape.output(x.sum())
    with pytest.raises(TypeError, match=r"got dtype complex\b"):
        pyad.grad(lambda v: v.sum(), backend=backend)(np.array([1j, 2.0]))
    with pytest.raises(TypeError, match="bool"):
        pyad.grad(lambda v: v.sum(), backend=backend)(np.array([True, False]))


# ---------------------------------------------------------------------------
# Output checks and nesting
# ---------------------------------------------------------------------------

def test_grad_of_non_scalar_output_raises(backend):
    for f, x in ((lambda x: x * 2.0, np.ones(3)),
                 (lambda x: [x[0], x[1]], np.ones(2)),
                 (lambda x: pyad.stack([x, x]), 1.0),
                 (lambda x: x.reshape(1, 3), np.ones(3))):
        with pytest.raises(TypeError):
            pyad.grad(f, backend=backend)(x)
        with pytest.raises(TypeError):
            pyad.value_and_grad(f, backend=backend)(x)
        with pytest.raises(TypeError):
            pyad.hvp(f, x, np.ones_like(np.asarray(x, dtype=float)), backend=backend)


def test_function_returning_non_number_raises(backend):
    for out in (None, "abc", {"y": "1.0"}, {}, object()):
        with pytest.raises(TypeError):
            pyad.grad(lambda x: out, backend=backend)(1.0)
        with pytest.raises(TypeError):
            pyad.trace(lambda x: out, 1.0, backend=backend)


def test_nested_grad_raises_clear_type_error(backend):
    f = lambda x: x * x * x
    with pytest.raises(TypeError) as excinfo:
        pyad.grad(pyad.grad(f, backend=backend), backend=backend)(2.0)
    msg = str(excinfo.value)
    assert "nested" in msg.lower()
    assert "hvp" in msg or "hessian" in msg
    # the inner transform alone still works afterwards
    assert pyad.grad(f, backend=backend)(2.0) == 12.0


def test_bad_argnums(backend):
    f = lambda a, b: a * b
    with pytest.raises(ValueError):
        pyad.grad(f, argnums=2, backend=backend)(1.0, 2.0)
    with pytest.raises(TypeError):
        pyad.grad(f, argnums=(0, "b"), backend=backend)(1.0, 2.0)


def test_unknown_backend_raises():
    with pytest.raises(ValueError):
        pyad.Tape(backend="fortran")
    with pytest.raises(ValueError):
        pyad.grad(lambda x: x, backend="gpu")(1.0)


def test_trace_of_non_callable_raises(backend):
    with pytest.raises(TypeError):
        pyad.trace(3.0, 1.0, backend=backend)


# ---------------------------------------------------------------------------
# Closed tapes (in process)
# ---------------------------------------------------------------------------

def closed_tape(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(1.5)
        arr = tape.input(np.array([1.0, 2.0, 3.0]))
        y = x * 2.0 + arr.sum()
        tape.output(y)
    assert tape.gradient(1.5, np.ones(3))[0] == 2.0
    tape.close()
    return tape, x, arr, y


USE_AFTER_CLOSE = {
    "replay": lambda t, x, arr, y: t(1.0, np.ones(3)),
    "replay at recorded point": lambda t, x, arr, y: t(),
    "gradient": lambda t, x, arr, y: t.gradient(1.0, np.ones(3)),
    "gradient at recorded point": lambda t, x, arr, y: t.gradient(),
    "jvp": lambda t, x, arr, y: t.jvp((1.0, np.ones(3)), (1.0, np.ones(3))),
    "vjp": lambda t, x, arr, y: t.vjp((1.0, np.ones(3)), 1.0),
    "hvp": lambda t, x, arr, y: t.hvp((1.0, np.ones(3)), (1.0, np.ones(3))),
    "n_ops": lambda t, x, arr, y: t.n_ops,
    "n_inputs": lambda t, x, arr, y: t.n_inputs,
    "nbytes": lambda t, x, arr, y: t.nbytes,
    "scalar + const": lambda t, x, arr, y: x + 1.0,
    "scalar * scalar": lambda t, x, arr, y: x * y,
    "sin": lambda t, x, arr, y: pyad.sin(x),
    "compare": lambda t, x, arr, y: x < 1.0,
    "if": lambda t, x, arr, y: bool(x > 0),
    "where": lambda t, x, arr, y: pyad.where(x > 0, x, 1.0),
    "value": lambda t, x, arr, y: x.value,
    "array + const": lambda t, x, arr, y: arr + 1.0,
    "array sum": lambda t, x, arr, y: arr.sum(),
    "array value": lambda t, x, arr, y: arr.value,
    "np.exp array": lambda t, x, arr, y: np.exp(arr),
    "array @ const": lambda t, x, arr, y: arr @ np.ones((3, 2)),
    "input": lambda t, x, arr, y: t.input(1.0),
    "output": lambda t, x, arr, y: t.output(y),
}


@pytest.mark.parametrize("name", sorted(USE_AFTER_CLOSE))
def test_closed_tape_raises(name, backend):
    tape, x, arr, y = closed_tape(backend)
    assert tape.closed
    with pytest.raises(pyad.TapeClosedError):
        USE_AFTER_CLOSE[name](tape, x, arr, y)
    tape.close()  # closing twice is harmless
    assert "closed" in repr(tape)


def test_value_leaked_from_grad_is_closed(backend):
    leaked = []

    def f(x):
        leaked.append(x)
        return x * x

    assert pyad.grad(f, backend=backend)(3.0) == 6.0
    with pytest.raises(pyad.TapeClosedError):
        leaked[0] * 2.0
    with pytest.raises(pyad.TapeClosedError):
        leaked[0].value


def test_close_inside_with_block(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(1.0)
        y = x * 2.0
        tape.close()
        with pytest.raises(pyad.TapeClosedError):
            x + y
    with pytest.raises(pyad.TapeClosedError):
        tape.gradient()


# ---------------------------------------------------------------------------
# The same scenarios in a subprocess: a crash fails the test, not pytest
# ---------------------------------------------------------------------------

def run_script(code):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120)


SUBPROCESS_CLOSED = """
import gc, numpy as np, pyad
backend = {backend!r}

def fresh():
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(1.5)
        arr = tape.input(np.array([1.0, 2.0, 3.0]))
        y = x * 2.0 + arr.sum()
        tape.output(y)
    tape.close()
    return tape, x, arr, y

scenarios = {{
    "replay": lambda t, x, arr, y: t(1.0, np.ones(3)),
    "replay0": lambda t, x, arr, y: t(),
    "gradient": lambda t, x, arr, y: t.gradient(1.0, np.ones(3)),
    "gradient0": lambda t, x, arr, y: t.gradient(),
    "jvp": lambda t, x, arr, y: t.jvp((1.0, np.ones(3)), (1.0, np.ones(3))),
    "vjp": lambda t, x, arr, y: t.vjp((1.0, np.ones(3)), 1.0),
    "hvp": lambda t, x, arr, y: t.hvp((1.0, np.ones(3)), (1.0, np.ones(3))),
    "n_ops": lambda t, x, arr, y: t.n_ops,
    "n_outputs": lambda t, x, arr, y: t.n_outputs,
    "nbytes": lambda t, x, arr, y: t.nbytes,
    "record_c": lambda t, x, arr, y: x + 1.0,
    "record2": lambda t, x, arr, y: x * y,
    "record1": lambda t, x, arr, y: pyad.sin(x),
    "record_then_read": lambda t, x, arr, y: (x * 3.0 + y).value,
    "if": lambda t, x, arr, y: bool(x > 0),
    "where": lambda t, x, arr, y: pyad.where(x > 0, x, 1.0),
    "value": lambda t, x, arr, y: x.value,
    "array_c": lambda t, x, arr, y: arr + 1.0,
    "array2": lambda t, x, arr, y: arr * arr,
    "array_sum": lambda t, x, arr, y: arr.sum(),
    "array_matmul": lambda t, x, arr, y: arr @ np.ones((3, 2)),
    "array_value": lambda t, x, arr, y: arr.value,
    "input": lambda t, x, arr, y: t.input(np.ones(2)),
    "output": lambda t, x, arr, y: t.output(y),
}}
for name, fn in scenarios.items():
    t, x, arr, y = fresh()
    gc.collect()
    try:
        fn(t, x, arr, y)
    except pyad.TapeClosedError as e:
        print("RAISED", name, "|", e)
    except Exception as e:
        print("WRONG", name, type(e).__name__, e)
    else:
        print("NOERROR", name)

# a value that escaped pyad.grad, whose tape is closed when grad returns
leaked = []
pyad.grad(lambda x: leaked.append(x) or x * x, backend=backend)(3.0)
gc.collect()
for name, fn in {{"leaked_record": lambda: leaked[0] * 2.0,
                 "leaked_value": lambda: leaked[0].value,
                 "leaked_if": lambda: bool(leaked[0] > 1.0)}}.items():
    try:
        fn()
    except pyad.TapeClosedError as e:
        print("RAISED", name, "|", e)
    except Exception as e:
        print("WRONG", name, type(e).__name__, e)
    else:
        print("NOERROR", name)

# a closed tape dropped while its values live on, then those values used
t, x, arr, y = fresh()
del t
gc.collect()
try:
    x * 2.0
except pyad.TapeClosedError as e:
    print("RAISED", "after_del", "|", e)
print("DONE")
"""

SUBPROCESS_NAMES = ["replay", "replay0", "gradient", "gradient0", "jvp", "vjp", "hvp", "n_ops",
                    "n_outputs", "nbytes", "record_c", "record2", "record1", "record_then_read",
                    "if", "where", "value", "array_c", "array2", "array_sum", "array_matmul",
                    "array_value", "input", "output", "leaked_record", "leaked_value",
                    "leaked_if", "after_del"]


def test_use_after_close_in_subprocess(backend):
    r = run_script(SUBPROCESS_CLOSED.format(backend=backend))
    assert r.returncode == 0, f"returncode {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert "DONE" in r.stdout
    lines = r.stdout.splitlines()
    for name in SUBPROCESS_NAMES:
        hits = [ln for ln in lines if ln.split()[1:2] == [name]]
        assert hits and hits[0].startswith("RAISED"), f"{name}: {hits}\n{r.stdout}"
        assert "closed" in hits[0], hits[0]


SUBPROCESS_BAD_INPUT = """
import numpy as np, pyad
backend = {backend!r}
tape = pyad.trace(lambda x: (x * x).sum() + x[0] * 2.0, np.ones(3), backend=backend)
bad_points = [np.ones(4), np.ones(2), np.ones(0), np.ones((3, 3)), "abc", None, 1 + 2j,
              object(), [1.0, None, 2.0], np.full(3, np.nan), np.full(3, np.inf)]
for i, p in enumerate(bad_points):
    for what, fn in (("call", lambda: tape(p)), ("gradient", lambda: tape.gradient(p)),
                     ("jvp", lambda: tape.jvp(np.ones(3), p)),
                     ("hvp", lambda: tape.hvp(np.ones(3), p)),
                     ("vjp", lambda: tape.vjp(p, 1.0))):
        if p is None and what == "vjp":
            continue  # tape.vjp(None, u) means: at the recorded point
        try:
            fn()
            print("OK", i, what)
        except (TypeError, ValueError) as e:
            print("ERR", i, what, type(e).__name__)
print("G", tape.gradient(np.array([1.0, 2.0, 3.0])).tolist())

# two tapes, two backends
a = pyad.Tape(backend=backend)
b = pyad.Tape(backend="python" if backend == "c" else "c")
xa, xb = a.input(1.0), b.input(2.0)
for fn in (lambda: xa + xb, lambda: xa * xb, lambda: pyad.where(xa > 0, xb, xa)):
    try:
        fn()
        print("NOERROR mix")
    except pyad.MixedTapeError:
        print("MIXED")
a.output(xa * 2.0)
print("A", a.gradient())
print("DONE")
"""


def test_bad_input_in_subprocess(backend):
    r = run_script(SUBPROCESS_BAD_INPUT.format(backend=backend))
    assert r.returncode == 0, f"returncode {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    out = r.stdout
    assert "DONE" in out
    lines = out.splitlines()
    # points 0..8 are malformed: every use of them is refused
    for i in range(9):
        for what in ("call", "gradient", "jvp", "hvp", "vjp"):
            if i == 5 and what == "vjp":
                continue
            assert any(ln.startswith(f"ERR {i} {what} ") for ln in lines), \
                f"point {i} {what}:\n{out}"
    # nan and inf points are well-formed inputs: they replay (IEEE results)
    for i in (9, 10):
        for what in ("call", "gradient", "jvp", "hvp", "vjp"):
            assert f"OK {i} {what}" in lines, f"point {i} {what}:\n{out}"
    assert "G [4.0, 4.0, 6.0]" in lines
    assert lines.count("MIXED") == 3
    assert "A 2.0" in lines


# ---------------------------------------------------------------------------
# A constant that is not a float64 (an int too large to convert)
# ---------------------------------------------------------------------------

HUGE = 10**400  # float(HUGE) raises OverflowError, as 2.0 + HUGE does in Python
HUGE_OPS = {
    "x + HUGE": lambda x: x + HUGE,
    "HUGE - x": lambda x: HUGE - x,
    "x * HUGE": lambda x: x * HUGE,
    "x / HUGE": lambda x: x / HUGE,
    "HUGE ** x": lambda x: HUGE ** x,
    "x < HUGE": lambda x: x < HUGE,
    "x == HUGE": lambda x: x == HUGE,
}


@pytest.mark.parametrize("name", sorted(HUGE_OPS))
def test_unconvertible_constant_raises_at_the_operation(name, backend):
    with pytest.raises((OverflowError, ValueError, TypeError)):
        2.0 + HUGE  # what Python does with a float
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(2.0)
        y = x * 3.0
        with pytest.raises((OverflowError, ValueError, TypeError)):
            HUGE_OPS[name](x)
        # the refused operation leaves the earlier ones, and the tape, intact
        assert y.value == 6.0
        tape.output(y)
    assert tape.gradient() == 3.0


@pytest.mark.parametrize("name", sorted(HUGE_OPS))
def test_unconvertible_constant_never_corrupts_the_tape(name, backend):
    """Wherever the error surfaces, values recorded before and after it stay right."""
    def attempt(fn):
        try:
            return fn()
        except (OverflowError, ValueError, TypeError):
            return None

    with pyad.Tape(backend=backend) as tape:
        x = tape.input(2.0)
        y = x * 3.0
        attempt(lambda: HUGE_OPS[name](x))
        attempt(lambda: tape.n_ops)  # a deferred error may surface here, once
        w = pyad.sin(x)
        tape.output(pyad.stack([y, w]))
    np.testing.assert_array_equal(tape(), [6.0, np.sin(2.0)])
    np.testing.assert_array_equal(tape(1.0), [3.0, np.sin(1.0)])
    _, jv = tape.jvp(2.0, 1.0)
    np.testing.assert_allclose(jv, [3.0, np.cos(2.0)], rtol=1e-15)
