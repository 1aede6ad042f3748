"""The C fast path of active scalars (pyad/_speedups.c) against the Python fallback.

pyad.Scalar derives from pyad._speedups.ScalarBase, whose C slots record `+ - * /`
and the six comparisons themselves for two active scalars of one tape, or an
active scalar with an exact Python float or int, appending one row to the C row
buffer (pyad._speedups.RowStore) that both backends' stores derive from. Every
other case goes to pyad.scalar.binary. Covered here, on both backends:

* equivalence: every operator in both orders, with constants that take the fast
  path (float, int) and constants that take the fallback (numpy scalars, bool,
  Fraction); Scalar op Scalar, Scalar op Bool, Bool op Bool; values, types,
  replay at new points, forward and reverse derivatives, guards;
* errors on the fast path leave nothing half-buffered: an int too large for a
  float, values of two tapes, a closed tape, a thread that does not own the tape;
* the Scalar object itself: read-only `_s` / `_i`, copy, pickle;
* RowStore's own methods: `_push` validation, `_take`, `_close_rows`;
* reference counts and garbage collection of the objects the fast path makes.
"""
import copy
import gc
import operator
import pickle
import sys
import threading
import weakref
from fractions import Fraction

import numpy as np
import pytest

import pyad
from pyad import _speedups
from pyad import scalar as pyad_scalar
from pyad.ops import CODE, KIND, NAME

ARITHMETIC = {"add": operator.add, "sub": operator.sub, "mul": operator.mul,
              "div": operator.truediv}
COMPARISONS = {"lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge,
               "eq": operator.eq, "ne": operator.ne}
OPS = {**ARITHMETIC, **COMPARISONS}
ORDERS = ("x op c", "c op x")

CONSTANTS = {
    "float": 2.5,
    "int": 3,
    "np.float64": np.float64(2.5),
    "np.int64": np.int64(3),
    "np.float32": np.float32(0.1),  # not 0.1 as a double: recorded as float(c)
    "True": True,
    "False": False,
    "Fraction": Fraction(1, 3),
}
FAST_KINDS = ("float", "int")               # exact float / int: recorded in C
PYTHON_FALLBACK_KINDS = ("True", "False", "Fraction")  # both orders reach binary()
NUMPY_KINDS = ("np.float64", "np.int64", "np.float32")  # c op x goes through numpy

HUGE = 10**400  # float(HUGE) raises OverflowError

# per op code: whether a row's operand b names a slot (else it is a constant or unused)
B_IS_SLOT = bytes(KIND[name] in ("binary", "compare") for name in NAME)


# ---------------------------------------------------------------------------
# Oracles and helpers
# ---------------------------------------------------------------------------

def plain(name, a, b):
    """a op b in IEEE doubles (numpy float64: x / 0 is inf, not ZeroDivisionError)."""
    with np.errstate(all="ignore"):
        return float(OPS[name](np.float64(a), np.float64(b)))


def partials(name, a, b):
    """(d/da, d/db) of a op b, exactly."""
    with np.errstate(all="ignore"):
        a, b = np.float64(a), np.float64(b)
        return {"add": (1.0, 1.0), "sub": (1.0, -1.0), "mul": (float(b), float(a)),
                "div": (float(1.0 / b), float(-a / (b * b)))}.get(name, (0.0, 0.0))


def assert_same_float(got, want, what=""):
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=0, err_msg=what)


def apply(name, order, x, c):
    return OPS[name](x, c) if order == "x op c" else OPS[name](c, x)


@pytest.fixture
def fallback_calls():
    """Route the C fast path's fallback through a spy (the real pyad.scalar.binary
    still does the work): the list of (type(x), type(y), name) it was called with."""
    calls = []

    def spy(x, y, name):
        calls.append((type(x).__name__, type(y).__name__, name))
        return pyad_scalar.binary(x, y, name)

    def configure(fallback):
        # the same call as at the end of pyad/scalar.py, with the spy as the fallback
        _speedups.configure(pyad.Scalar, pyad.Bool, fallback, pyad_scalar._speedup_codes(),
                            pyad.TapeClosedError, B_IS_SLOT)

    configure(spy)
    try:
        yield calls
    finally:
        configure(pyad_scalar.binary)


def store_state(store):
    return store._pending, store._next


# ---------------------------------------------------------------------------
# 1. The fast path and the fallback record the same thing
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(CONSTANTS))
def test_scalar_with_constant_matches_plain_floats(kind, backend, fallback_calls):
    """x op c and c op x for every operator: the type and value recorded, replay at
    the other points (below, at, above c), and both modes' derivatives."""
    c = CONSTANTS[kind]
    fc = float(c)
    points = (fc - 1.25, fc, fc + 0.5)
    cases = [(name, order) for name in OPS for order in ORDERS]
    for x0 in points:
        with pyad.Tape(backend=backend) as tape:
            x = tape.input(x0)
            results = []
            for name, order in cases:
                fallback_calls.clear()
                r = apply(name, order, x, c)
                what = f"{backend}: {order} with {name}, c = {kind}, x = {x0}"
                assert type(r) is (pyad.Bool if name in COMPARISONS else pyad.Scalar), what
                if kind in FAST_KINDS:
                    assert fallback_calls == [], what
                elif kind in PYTHON_FALLBACK_KINDS or order == "x op c":
                    assert len(fallback_calls) == 1, what
                a, b = (x0, fc) if order == "x op c" else (fc, x0)
                results.append((r, plain(name, a, b), what))
            tape.output([r for r, _, _ in results])
        for r, want, what in results:  # read after recording, which guards no value
            assert_same_float(r.value, want, what)
        want_d = [partials(n, *((x0, fc) if o == "x op c" else (fc, x0)))[o == "c op x"]
                  for n, o in cases]
        for mode in ("reverse", "forward"):
            assert_same_float(tape.jacobian(mode=mode), want_d, f"{backend} {mode} at {x0}")
        for x1 in points:
            want = [plain(n, *((x1, fc) if o == "x op c" else (fc, x1))) for n, o in cases]
            assert_same_float(tape(x1), want, f"{backend}: recorded at {x0}, replayed at {x1}")


def test_scalar_op_scalar_matches_plain_floats(backend, fallback_calls):
    pts = [(1.3, -0.4), (-0.4, 1.3), (0.75, 0.75)]
    cases = [(name, swap) for name in OPS for swap in (False, True)] + \
            [(name, "same") for name in OPS]
    for a0, b0 in pts:
        with pyad.Tape(backend=backend) as tape:
            a, b = tape.input(a0), tape.input(b0)
            results = []
            for name, swap in cases:
                if swap == "same":
                    r = OPS[name](a, a)
                else:
                    r = OPS[name](b, a) if swap else OPS[name](a, b)
                assert type(r) is (pyad.Bool if name in COMPARISONS else pyad.Scalar)
                results.append(r)
            assert fallback_calls == []
            tape.output(results)

        def oracle(p, q):
            vals, jac = [], []
            for name, swap in cases:
                if swap == "same":  # x op x: d/dx exactly, not a rounded da + db
                    vals.append(plain(name, p, p))
                    jac.append(({"add": 2.0, "mul": 2.0 * p}.get(name, 0.0), 0.0))
                elif swap:
                    dq, dp = partials(name, q, p)
                    vals.append(plain(name, q, p))
                    jac.append((dp, dq))
                else:
                    vals.append(plain(name, p, q))
                    jac.append(partials(name, p, q))
            return vals, np.array(jac)

        vals, jac = oracle(a0, b0)
        assert_same_float([r.value for r in results], vals, f"{backend} at {(a0, b0)}")
        assert_same_float(tape.jacobian(mode="reverse"), jac)
        assert_same_float(tape.jacobian(mode="forward"), jac)
        for p, q in pts:  # the comparisons flip between these points
            assert_same_float(tape(p, q), oracle(p, q)[0], f"{backend}: replay at {(p, q)}")


def test_operations_on_bools(backend, fallback_calls):
    """Bool op Bool, Scalar op Bool, Bool op constant: types, values, derivatives."""
    def program(x, y):
        p, q = x > 1.0, 2 <= y  # Bools from the fast path, one reflected
        arithmetic = [p + q, p - q, p * q, q / 2, x * p, p * x, y - q, 1 - p, x + p * y]
        comparisons = [p == q, p != q, p < q, q >= p, p == 1, x > p]
        return p, q, arithmetic, comparisons

    def plain_program(x, y):
        p, q = float(x > 1.0), float(2 <= y)
        return [p + q, p - q, p * q, q / 2, x * p, p * x, y - q, 1 - p, x + p * y], \
               [float(v) for v in (p == q, p != q, p < q, q >= p, p == 1, x > p)]

    points = [(1.5, 3.0), (0.5, 3.0), (1.5, 1.0), (0.5, 1.0)]
    for x0, y0 in points:
        with pyad.Tape(backend=backend) as tape:
            x, y = tape.input(x0), tape.input(y0)
            p, q, arithmetic, comparisons = program(x, y)
            logical = [p & q, p | q, ~p]
            assert fallback_calls == []  # & | ~ are Python, but none of + - * / < ... was
            assert type(p) is pyad.Bool and type(q) is pyad.Bool
            assert all(type(r) is pyad.Scalar for r in arithmetic)
            assert all(type(r) is pyad.Bool for r in comparisons + logical)
            tape.output(arithmetic + comparisons + logical)
        # read after recording, which guards no value
        want_a, want_c = plain_program(x0, y0)
        assert_same_float([r.value for r in arithmetic], want_a)
        assert [r.value for r in comparisons] == want_c
        pv, qv = float(x0 > 1.0), float(2 <= y0)
        assert [r.value for r in logical] == [pv * qv, max(pv, qv), 1.0 - pv]
        # a Bool is a constant as far as derivatives go
        jac = np.zeros((len(arithmetic) + len(comparisons) + len(logical), 2))
        jac[4, 0] = jac[5, 0] = pv       # x * p, p * x
        jac[6, 1] = 1.0                  # y - q
        jac[8] = (1.0, pv)               # x + p * y
        assert_same_float(tape.jacobian(mode="reverse"), jac, f"{backend} at {(x0, y0)}")
        assert_same_float(tape.jacobian(mode="forward"), jac, f"{backend} at {(x0, y0)}")
        for x1, y1 in points:
            a1, c1 = plain_program(x1, y1)
            p1, q1 = float(x1 > 1.0), float(2 <= y1)
            assert_same_float(tape(x1, y1), a1 + c1 + [p1 * q1, max(p1, q1), 1.0 - p1])


def test_int_constants_round_like_float_of_them(backend, fallback_calls):
    """The fast path converts an int the way the fallback does (float(c), correctly
    rounded), so int and np.int64 / Fraction constants record the same value."""
    big = 2**53 + 1  # not a double: rounds to 2**53
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(float(2**53))
        fast = [x == big, x + big, big - x, x * (2**60 + 1), (3**40) / x]
        assert fallback_calls == []
        slow = [x == np.int64(big), x + np.int64(big), Fraction(big) - x,
                x * Fraction(2**60 + 1), Fraction(3**40) / x]
        assert len(fallback_calls) == 5
        tape.output(fast + slow)
    assert [r.value for r in fast] == [r.value for r in slow]
    assert fast[0].value == 1.0 and fast[2].value == 0.0
    assert fast[4].value == float(3**40) / 2.0**53
    np.testing.assert_array_equal(tape(1.0)[:5], tape(1.0)[5:])


# ---------------------------------------------------------------------------
# 2. Programs recorded by the fast path alone replay correctly
# ---------------------------------------------------------------------------

def poly(x, y):
    """Float and int constants in both orders, and active * active: fast path only."""
    return (3 * x * x - 2.5 * x + 7 - x / 4 + 1.5 / (y + 2) - (y - 0.5) * x
            + 2 - y * y / 3.0 - 1 / (2 + x * x))


def poly_grad(x, y):
    return (6 * x - 2.5 - 0.25 - (y - 0.5) + 2 * x / (2 + x * x) ** 2,
            -1.5 / (y + 2) ** 2 - x - 2 * y / 3.0)


REPLAY_POINTS = [(0.3, -0.7), (-2.0, 5.0), (1e-3, 1e3), (4.5, -1.5), (-0.9, 0.0)]


def test_fast_path_program_replays_at_new_points(backend, fallback_calls):
    with pyad.Tape(backend=backend) as tape:
        x, y = tape.input(1.1), tape.input(0.2)
        out = poly(x, y)
        assert fallback_calls == []
        tape.output(out)
    assert_same_float(out.value, poly(1.1, 0.2))  # after recording: no guard
    assert_same_float(tape.gradient(), poly_grad(1.1, 0.2))
    for p in REPLAY_POINTS:
        what = f"{backend} at {p}"
        assert_same_float(tape(*p), poly(*p), what)
        g = tape.gradient(*p)
        np.testing.assert_allclose(g, poly_grad(*p), rtol=1e-13, err_msg=what)
        for v in [(1.0, 0.0), (0.0, 1.0), (0.6, -2.0)]:
            y, jv = tape.jvp(p, v)
            assert_same_float(y, poly(*p), what)
            np.testing.assert_allclose(jv, g[0] * v[0] + g[1] * v[1], rtol=1e-13, atol=1e-15,
                                       err_msg=f"{what}: jvp along {v} vs the gradient")
    # the same through pyad.trace / pyad.grad, with one array argument
    f = lambda z: poly(z[0], z[1])  # noqa: E731
    traced = pyad.trace(f, np.array([1.1, 0.2]), backend=backend)
    for p in REPLAY_POINTS:
        np.testing.assert_allclose(traced.gradient(np.array(p)), poly_grad(*p), rtol=1e-13)
        np.testing.assert_allclose(pyad.grad(f, backend=backend)(np.array(p)),
                                   poly_grad(*p), rtol=1e-13)


def test_fast_path_comparisons_guard_and_select(backend, fallback_calls):
    """`if` on a fast-path comparison records a guard that replay checks; where()
    on one replays both ways (each spelling, reflected ones included)."""
    spellings = {"x > 2": lambda x: x > 2, "2 < x": lambda x: 2 < x,
                 "2.0 <= x": lambda x: 2.0 <= x, "x >= 2.0": lambda x: x >= 2.0,
                 "x != 2": lambda x: x != 2}
    for name, cond in spellings.items():
        flipped = 2.0 if name == "x != 2" else 1.0
        with pyad.Tape(backend=backend) as tape:
            x = tape.input(3.0)
            c = cond(x)
            assert c.value == 1.0
            out = x * 3 if c else 1 - x  # bool(c) records a guard
            tape.output(out)
        assert fallback_calls == []
        assert tape(2.5) == 7.5 and tape.gradient(4.0) == 3.0
        with pytest.raises(pyad.BranchError):
            tape(flipped)
        with pytest.raises(pyad.BranchError):
            tape.gradient(flipped)

        with pyad.Tape(backend=backend) as tape:
            x = tape.input(3.0)
            tape.output(pyad.where(cond(x), x * 3, 1 - x))
        for x1 in (1.0, 2.0, 3.0, 5.0):
            taken = bool(cond(np.float64(x1)))
            assert tape(x1) == (3 * x1 if taken else 1 - x1), (backend, name, x1)
            assert tape.gradient(x1) == (3.0 if taken else -1.0), (backend, name, x1)


# ---------------------------------------------------------------------------
# 3. An int too large for a float: refused before anything is buffered
# ---------------------------------------------------------------------------

def test_huge_int_constant_raises_and_buffers_nothing(backend, fallback_calls):
    spellings = [lambda x: x + HUGE, lambda x: HUGE - x, lambda x: x * -HUGE,
                 lambda x: HUGE / x, lambda x: x - HUGE, lambda x: x < HUGE,
                 lambda x: HUGE <= x, lambda x: x == HUGE, lambda x: -HUGE != x,
                 lambda x: x + Fraction(HUGE)]  # the last through the fallback
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(2.0)
        y = x * 3.0  # a row waiting in the buffer
        store = x._s
        before = store_state(store)
        assert before[0] >= 1
        for i, f in enumerate(spellings):
            with pytest.raises(OverflowError):
                f(x)
            assert store_state(store) == before, f"{backend}: spelling {i}"
        assert len(fallback_calls) == 1
        # the tape goes on: the next op takes the next slot, values are right
        z = y * y + 1
        assert z._i == before[1] + 1
        tape.output(z - 2 * x)
    assert z.value == 37.0  # after recording: no guard
    assert tape.gradient() == 2 * 9 * 2.0 - 2
    assert tape.gradient(1.0) == 2 * 9 * 1.0 - 2


# ---------------------------------------------------------------------------
# 4. Values of two tapes
# ---------------------------------------------------------------------------

def test_two_tapes_are_refused_by_every_operator(backend):
    with pyad.Tape(backend=backend) as t1, pyad.Tape(backend=backend) as t2:
        a = t1.input(1.5)
        b = t2.input(2.5)
        a2, b2 = a * 2.0, b > 1  # rows waiting in both buffers, one of them a Bool
        states = store_state(a._s), store_state(b._s)
        for name, op in OPS.items():
            for left, right in [(a, b), (b, a), (a2, b2), (b2, a2), (a, b2)]:
                with pytest.raises(pyad.MixedTapeError):
                    op(left, right)
                assert (store_state(a._s), store_state(b._s)) == states, name
        t1.output(a2 * a + 1)
        t2.output(b2 * b + b)
    assert t1.gradient() == 6.0
    assert t2.gradient() == 2.0
    assert t2.gradient(0.5) == 1.0


# ---------------------------------------------------------------------------
# 5. A closed tape
# ---------------------------------------------------------------------------

def test_every_operator_on_a_closed_tape_raises_tape_closed_error(backend):
    tape = pyad.Tape(backend=backend)
    x = tape.input(2.0)
    y = x * 3.0
    b = x < y
    store = x._s
    assert store._pending >= 2
    tape.close()  # with rows still buffered
    assert tape.closed
    assert store._pending == 0
    for name, op in OPS.items():
        for left, right in [(x, 1.5), (1.5, x), (x, 2), (2, x), (x, y), (y, x), (b, x),
                            (x, np.float64(2.0)), (True, x), (x, Fraction(1, 2))]:
            with pytest.raises(pyad.TapeClosedError):
                op(left, right)
    assert store._pending == 0
    for use in (lambda: -x, lambda: x ** 2, lambda: abs(y), lambda: bool(b), lambda: b.value):
        with pytest.raises(pyad.TapeClosedError):
            use()
    with pytest.raises(pyad.TapeClosedError):
        store._take()
    with pytest.raises(pyad.TapeClosedError):
        store._push(CODE["add_c"], 0, 1.0)
    assert "closed tape" in repr(y)


# ---------------------------------------------------------------------------
# 6. The Scalar object: read-only, copied as itself, not picklable
# ---------------------------------------------------------------------------

def test_scalar_fields_are_read_only_and_copies_are_the_value(backend):
    with pyad.Tape(backend=backend) as tape, pyad.Tape(backend=backend) as other:
        x = tape.input(2.0)
        y = x * 3.0
        b = x < y
        o = other.input(5.0)
        for v in (x, y, b):
            store, slot = v._s, v._i
            with pytest.raises(AttributeError):
                v._s = o._s
            with pytest.raises(AttributeError):
                v._i = 0
            with pytest.raises(AttributeError):
                del v._s
            with pytest.raises(AttributeError):
                del v._i
            with pytest.raises(AttributeError):
                v.anything = 1  # no __dict__
            with pytest.raises(TypeError, match="immutable"):
                v.__init__(o._s, 0)
            assert v._s is store and v._i == slot
            assert copy.copy(v) is v
            assert copy.deepcopy(v) is v
            nested = copy.deepcopy({"k": [v, (v, 1.0)]})
            assert nested["k"][0] is v and nested["k"][1][0] is v
            with pytest.raises(TypeError, match="save the tape"):
                pickle.dumps(v)
        assert x._s is tape._store and (x._i, y._i, b._i) == (0, 1, 2)
        tape.output(y * b)
        other.output(o)
    assert tape.gradient() == 3.0


def test_hand_built_scalars_are_refused_without_a_crash(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(2.0)
        with pytest.raises(ValueError):
            pyad.Scalar(x._s, -1)
        blank = pyad.Scalar.__new__(pyad.Scalar)  # no store at all
        for f in (lambda: blank + 1.0, lambda: 1.0 + blank, lambda: blank < 1,
                  lambda: blank * x, lambda: x * blank, lambda: x == blank):
            with pytest.raises(AttributeError):
                f()
        unissued = pyad.Scalar(x._s, 99)  # a slot the tape has not given out
        with pytest.raises(ValueError):
            unissued + 1.0
        with pytest.raises(ValueError):
            unissued * x
        with pytest.raises(ValueError):
            1.0 - unissued
        assert x._s._pending == 0 and x._s._next == 1
        tape.output(x * 4)
    assert tape.gradient() == 4.0


def test_unissued_slot_as_right_operand_is_refused_at_the_operation(backend):
    """As the right operand too, an unissued slot is refused when the op is recorded,
    not buffered to close the whole tape at the next hand-over."""
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(2.0)
        y = x * 3.0
        unissued = pyad.Scalar(x._s, 99)
        for f in (lambda: x + unissued, lambda: y / unissued, lambda: x < unissued,
                  lambda: y == unissued):
            with pytest.raises(ValueError):
                f()
        assert store_state(x._s) == (1, 2)
        assert y.value == 6.0  # the tape survives the refused operations
        tape.output(y)
    assert tape.gradient() == 3.0


# ---------------------------------------------------------------------------
# 7. RowStore: _push refuses bad rows, _take hands the buffer over
# ---------------------------------------------------------------------------

BAD_ROWS = {
    "op 256": (256, 0, 0.0),
    "op -1": (-1, 0, 0.0),
    "slot -1": (CODE["add_c"], -1, 0.0),
    "slot == _next": (CODE["add_c"], "next", 0.0),
    "slot past _next": (CODE["mul_c"], 10**6, 2.0),
    "b slot == _next": (CODE["add"], 0, "next"),
    "b slot past _next": (CODE["mul"], 0, 99.0),
    "b slot -1": (CODE["lt"], 0, -1.0),
    "b slot not whole": (CODE["sub"], 0, 0.5),
    "b slot nan": (CODE["div"], 0, float("nan")),
}


@pytest.mark.parametrize("row", sorted(BAD_ROWS))
def test_push_refuses_bad_rows_and_buffers_nothing(row, backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(2.0)
        y = x + 1.0
        store = x._s
        before = store_state(store)
        op, a, b = BAD_ROWS[row]
        with pytest.raises(ValueError, match="cannot buffer"):
            store._push(op, store._next if a == "next" else a,
                        float(store._next) if b == "next" else b)
        assert store_state(store) == before
        assert y.value == 3.0
        tape.output(y * x)
    assert tape.gradient() == 5.0


def test_push_takes_any_constant_where_b_is_not_a_slot(backend):
    """Only ops whose b names a slot check it: a *_c op's b is a constant."""
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(2.0)
        store = x._s
        consts = [-7.5, 99.0, 0.5, 1e300, float("inf")]
        slots = [store._push(CODE["add_c"], 0, c) for c in consts]
        neg = store._push(CODE["neg"], 0, 0.0)
        assert slots + [neg] == [1, 2, 3, 4, 5, 6] and store._pending == 6
        got = [pyad.Scalar(store, k).value for k in slots + [neg]]
        assert got == [2.0 + c for c in consts] + [-2.0]
        tape.output(pyad.Scalar(store, slots[0]) * pyad.Scalar(store, neg))
    assert tape.gradient() == -2 * 2.0 + 7.5  # d/dx ((x - 7.5) * -x) = -2x + 7.5


def test_push_and_take(backend):
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(2.0)
        store = x._s
        assert store._pending == 0 and store._next == 1
        assert store._take() == (b"", b"", b"")
        rows = [(CODE["add_c"], 0, 1.5), (CODE["rsub_c"], 0, 2.0), (CODE["mul"], 1, 0.0),
                (CODE["lt_c"], 3, 3.0)]
        r1 = x + 1.5        # fast path
        r2 = 2 - x          # fast path, reflected int
        slot = store._push(CODE["mul"], 1, 0.0)  # slot 1 * slot 0, by hand
        r4 = pyad.Scalar(store, slot) < 3.0
        assert slot == 3 and r4._i == 4
        assert store_state(store) == (4, 5)
        ops_, a, b = store._take()
        assert (len(ops_), len(a), len(b)) == (4, 16, 32)
        assert list(ops_) == [r[0] for r in rows]
        assert np.frombuffer(a, dtype=np.int32).tolist() == [r[1] for r in rows]
        assert np.frombuffer(b, dtype=np.float64).tolist() == [r[2] for r in rows]
        assert store_state(store) == (0, 5)  # emptied; the slots stay given out
        assert store._take() == (b"", b"", b"")
        # the rows are gone: the store notices at the next hand-over, and refuses
        z = r1 * r2
        with pytest.raises(pyad.TapeBusyError):
            z.value
        assert tape.closed


def test_a_long_buffer_is_handed_over_and_grows_again(backend):
    """More rows than the buffer keeps after a hand-over (it frees a large one)."""
    n = 70_000
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(0.5)
        acc, want = x, 0.5
        for i in range(n):
            acc = acc * 1.0000001 + (i % 7)
            want = want * 1.0000001 + (i % 7)
        store = x._s
        assert store_state(store) == (2 * n, 2 * n + 1)
        assert acc.value == want
        assert store._pending == 0
        for _ in range(3000):
            acc = acc - 0.25
            want -= 0.25
        assert store._pending == 3000
        tape.output(acc)
    assert tape() == want
    np.testing.assert_allclose(tape.gradient(), 1.0000001**n, rtol=1e-10)


# ---------------------------------------------------------------------------
# 8. A thread that does not own the tape
# ---------------------------------------------------------------------------

FOREIGN_OPS = {
    "x + 1.0": lambda x, y: x + 1.0,
    "2 - x": lambda x, y: 2 - x,
    "3.0 / x": lambda x, y: 3.0 / x,
    "x * y": lambda x, y: x * y,
    "x < 1.0": lambda x, y: x < 1.0,
    "1 >= x": lambda x, y: 1 >= x,
    "y == x": lambda x, y: y == x,
}


def in_thread(fn):
    box = {}

    def body():
        try:
            box["result"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            box["error"] = e

    t = threading.Thread(target=body)
    t.start()
    t.join()
    return box


def test_fast_path_refuses_a_second_thread_while_rows_are_buffered(backend):
    for name, op in FOREIGN_OPS.items():
        tape = pyad.Tape(backend=backend)
        x = tape.input(2.0)
        y = x * 3.0  # buffered by this thread
        assert x._s._pending == 1
        box = in_thread(lambda: op(x, y))
        assert isinstance(box.get("error"), pyad.TapeBusyError), (backend, name, box)
        assert tape.closed, name
        with pytest.raises(pyad.TapeClosedError):
            op(x, y)  # the owner's fast path now finds the tape closed


def test_recording_moves_to_another_thread_once_the_buffer_is_empty(backend):
    owner = threading.get_ident()
    with pyad.Tape(backend=backend) as tape:
        x = tape.input(2.0)
        y = x * 3.0
        # the store's read hands the rows over (y.value would also record a guard)
        assert x._s.value(y._i) == 6.0
        assert x._s._pending == 0 and x._s._owner == owner

        def elsewhere():
            z = 1 - y / x + (x < 5) * x  # fast path, once the thread has claimed the tape
            w = z * 2
            assert x._s._owner == threading.get_ident() != owner
            return z, w, x._s.value(w._i)  # hands its rows over before the thread ends

        box = in_thread(elsewhere)
        assert "error" not in box, box
        z, w, wv = box["result"]
        assert wv == 2 * (1 - 3.0 + 2.0)
        out = w * x + 1.5  # back in this thread: it claims the tape again
        assert x._s._owner == owner
        tape.output(out)
    assert tape() == 0.0 * 2.0 + 1.5
    # out = 2 (1 - y/x + b x) x + 1.5 with y/x = 3 and b = (x < 5), a constant:
    # d/dx = 2 (-2 + b x) + 2 b x
    assert tape.gradient() == 2 * (-2 + 2.0) + 2 * 2.0
    assert tape.gradient(7.0) == 2 * -2.0  # x >= 5: b is 0


# ---------------------------------------------------------------------------
# 9. References and garbage collection
# ---------------------------------------------------------------------------

def test_no_reference_leak_on_the_fast_path(backend):
    with pyad.Tape(backend=backend) as tape:
        x, y = tape.input(1.5), tape.input(-0.5)
        store = x._s
        c = float("2.25")  # an object of its own, to count its references
        gc.collect()  # Scalars left for the collector by earlier tests hold the types
        base = sys.getrefcount(store)
        c_base = sys.getrefcount(c)
        types_base = sys.getrefcount(pyad.Scalar), sys.getrefcount(pyad.Bool)
        results = []
        for i in range(1250):
            results += [x + c, c - x, x * y, y / x, x < c, c <= x, x == y, i * x]
        assert store._pending == 10_000
        assert sys.getrefcount(store) == base + len(results)
        assert sys.getrefcount(c) == c_base  # a constant is copied into the row
        assert all(gc.is_tracked(r) for r in results[:8])
        assert results[-1]._i == results[-8]._i + 7
        assert results[-1].value == 1249 * 1.5 and store._pending == 0
        del results
        gc.collect()
        assert abs(sys.getrefcount(store) - base) <= 2
        assert sys.getrefcount(c) == c_base
        assert (sys.getrefcount(pyad.Scalar), sys.getrefcount(pyad.Bool)) == types_base
        tape.output(x * y)
    assert tape.gradient() == (-0.5, 1.5)


def test_no_reference_leak_on_refused_operations(backend):
    with pyad.Tape(backend=backend) as tape, pyad.Tape(backend=backend) as other:
        x = tape.input(1.5)
        o = other.input(2.0)
        closed = pyad.Tape(backend=backend)
        dead = closed.input(1.0)
        closed.close()
        stores = (x._s, o._s, dead._s)
        gc.collect()
        base = [sys.getrefcount(s) for s in stores]
        types_base = sys.getrefcount(pyad.Scalar), sys.getrefcount(pyad.Bool)
        for _ in range(1000):
            for f, err in [(lambda: x + HUGE, OverflowError), (lambda: HUGE < x, OverflowError),
                           (lambda: x * o, pyad.MixedTapeError),
                           (lambda: o == x, pyad.MixedTapeError),
                           (lambda: dead - 1.0, pyad.TapeClosedError),
                           (lambda: 2 / dead, pyad.TapeClosedError),
                           (lambda: dead > 0.0, pyad.TapeClosedError)]:
                try:
                    f()
                except err:
                    pass
                else:
                    raise AssertionError("the operation was not refused")
        gc.collect()
        assert [sys.getrefcount(s) for s in stores] == base
        assert (sys.getrefcount(pyad.Scalar), sys.getrefcount(pyad.Bool)) == types_base
        assert store_state(x._s) == (0, 1)
        tape.output(x * 2)
        other.output(o)
    assert tape.gradient() == 2.0


def test_a_reference_cycle_through_a_scalar_is_collected(backend):
    """A Scalar reports its store to the garbage collector (tp_traverse): a cycle
    store -> attribute -> Scalar -> store does not keep the tape alive."""
    tape = pyad.Tape(backend=backend)
    x = tape.input(2.0)
    store = x._s
    store.keep = [x * 2.0, 1 - x, x < 3]  # a cycle, with rows still buffered
    ref = weakref.ref(store)
    del tape, x, store
    gc.collect()
    assert ref() is None
