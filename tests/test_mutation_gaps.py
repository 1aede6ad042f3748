"""Tests for the holes mutation testing found (issue 16): each one fails on a
bug the rest of the suite let through.

* which sweep jacobian(mode="auto") runs (the values agree either way);
* ties of max/min in the vector reverse sweep (csrc/vector.c);
* a saved tape whose operand names its own slot or a later one;
* the vector reverse sweep of select.

Oracles are exact: the Jacobians below are written out by hand.
"""
import struct
import zlib

import numpy as np
import pytest

import pyad
from pyad import serialize

MODES = ("forward", "reverse")


# ---------------------------------------------------------------------------
# jacobian(mode="auto"): forward when n_inputs <= n_outputs, else reverse
# ---------------------------------------------------------------------------

def tall(x):
    """(2,) -> (5,)."""
    return pyad.stack([x[0] * x[1], pyad.sin(x[0]), x[1] ** 2, x[0] + x[1], 3.0 * x[0]])


def tall_jacobian(x):
    a, b = x
    return np.array([[b, a], [np.cos(a), 0.0], [0.0, 2 * b], [1.0, 1.0], [3.0, 0.0]])


def wide(x):
    """(5,) -> (2,)."""
    return pyad.stack([x[0] * x[1] + x[2], pyad.exp(x[3]) - x[4] * x[0]])


def wide_jacobian(x):
    return np.array([[x[1], x[0], 1.0, 0.0, 0.0],
                     [-x[4], 0.0, 0.0, np.exp(x[3]), -x[0]]])


def square(x):
    """(3,) -> (3,): a tie of n and m, which goes forward."""
    return pyad.stack([x[0] * x[1], x[1] * x[2], x[2] * x[0]])


def square_jacobian(x):
    return np.array([[x[1], x[0], 0.0], [0.0, x[2], x[1]], [x[2], 0.0, x[0]]])


@pytest.mark.parametrize("f, exact, x0, x1, kind", [
    (tall, tall_jacobian, [0.3, -1.2], [1.1, 0.4], "forward"),
    (square, square_jacobian, [0.3, -1.2, 2.0], [1.1, 0.4, -0.7], "forward"),
    (wide, wide_jacobian, [0.3, -1.2, 2.0, 0.5, -0.8], [1.1, 0.4, -0.7, -0.2, 0.9], "reverse"),
], ids=["tall", "square", "wide"])
def test_auto_jacobian_takes_the_cheaper_direction(backend, f, exact, x0, x1, kind):
    tape = pyad.trace(f, np.array(x0), backend=backend)
    for x in (None, np.array(x1)):
        before = dict(tape.sweep_counts)
        J = tape.jacobian(x, mode="auto")
        np.testing.assert_allclose(J, exact(np.array(x0 if x is None else x1)), rtol=1e-14)
        ran = {k: tape.sweep_counts[k] - before[k] for k in before}
        # one vector sweep of every direction at once, of the expected kind only
        assert ran == {"forward": 0, "reverse": 0, "forward_over_reverse": 0, kind: 1}


def test_sweep_counts_name_the_sweep_each_method_runs(backend):
    tape = pyad.trace(wide, np.array([0.3, -1.2, 2.0, 0.5, -0.8]), backend=backend)
    x, v, u = np.ones(5), np.arange(5.0), np.array([1.0, -1.0])
    calls = [(lambda: tape.jacobian(x, mode="forward"), "forward"),
             (lambda: tape.jacobian(x, mode="reverse"), "reverse"),
             (lambda: tape(x), "forward"),
             (lambda: tape.jvp(x, v), "forward"),
             (lambda: tape.vjp(x, u), "reverse")]
    for call, kind in calls:
        before, total = dict(tape.sweep_counts), tape.sweeps
        call()
        assert tape.sweeps == total + 1
        assert tape.sweep_counts[kind] == before[kind] + 1
        assert sum(tape.sweep_counts.values()) == sum(before.values()) + 1

    scalar = pyad.trace(lambda x: pyad.sin(x[0]) * x[1], np.array([0.5, 2.0]), backend=backend)
    for call, kind in [(lambda: scalar.gradient(np.array([0.1, 0.2])), "reverse"),
                       (lambda: scalar.gradient(), "reverse"),
                       (lambda: scalar.hvp(np.array([0.1, 0.2]), np.ones(2)),
                        "forward_over_reverse")]:
        before = dict(scalar.sweep_counts)
        call()
        assert scalar.sweep_counts[kind] == before[kind] + 1
        assert sum(scalar.sweep_counts.values()) == sum(before.values()) + 1
    assert sum(scalar.sweep_counts.values()) == scalar.sweeps


# ---------------------------------------------------------------------------
# ties of max / min share the derivative evenly, in every sweep
# ---------------------------------------------------------------------------

def extremes(x):
    return pyad.stack([x.max(), x.min()])


@pytest.mark.parametrize("mode", MODES)
def test_ties_of_max_and_min_share_the_jacobian_evenly(backend, mode):
    x = np.array([2.0, 2.0, 1.0, 1.0])
    expected = np.array([[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5]])
    np.testing.assert_array_equal(pyad.jacobian(extremes, mode=mode, backend=backend)(x),
                                  expected)
    tape = pyad.trace(extremes, x, backend=backend)
    np.testing.assert_array_equal(tape.jacobian(mode=mode), expected)
    # replayed at other ties: a three-way tie, and ties in other places
    replays = [([3.0, 3.0, 3.0, 0.0], [[1 / 3, 1 / 3, 1 / 3, 0.0], [0.0, 0.0, 0.0, 1.0]]),
               ([1.0, 3.0, 3.0, 1.0], [[0.0, 0.5, 0.5, 0.0], [0.5, 0.0, 0.0, 0.5]]),
               ([5.0, 5.0, 5.0, 5.0], [[0.25] * 4, [0.25] * 4])]
    for point, jac in replays:
        np.testing.assert_allclose(tape.jacobian(np.array(point), mode=mode), jac,
                                   rtol=1e-15, atol=0)


# ---------------------------------------------------------------------------
# select (pyad.where) in the vector reverse sweep
# ---------------------------------------------------------------------------

def where_square_or_negate(x):
    return pyad.where(x > 0, x * x, -x)


def where_jacobian(x):
    return np.diag(np.where(x > 0, 2 * x, -1.0))


@pytest.mark.parametrize("mode", MODES)
def test_jacobian_of_where_takes_each_points_branch(backend, mode):
    x = np.array([-1.5, 2.0, -0.5, 3.0])
    np.testing.assert_array_equal(
        pyad.jacobian(where_square_or_negate, mode=mode, backend=backend)(x),
        np.diag([-1.0, 4.0, -1.0, 6.0]))
    tape = pyad.trace(where_square_or_negate, x, backend=backend)
    assert tape.n_outputs == 4
    for point in (x, -x, np.array([0.25, 0.5, -4.0, -0.125])):
        np.testing.assert_array_equal(tape.jacobian(point, mode=mode), where_jacobian(point))
    assert tape.retraces == 0  # select replays both ways without re-recording


# ---------------------------------------------------------------------------
# loading refuses an operand that does not name an earlier slot
# ---------------------------------------------------------------------------

def sin_mul_add(a, b):
    """Slots: 0 a, 1 b, 2 sin(a), 3 sin(a)*b, 4 that + a."""
    return pyad.sin(a) * b + a


def saved(backend):
    return serialize.dumps(pyad.trace(sin_mul_add, 0.3, 1.2, backend=backend))


def with_operand(data, op_name, column, index):
    """`data` with operand `column` ("a" or "b") of the op named `op_name` set to
    `index`, and the CRC-32 recomputed, so only validation can refuse it."""
    body = bytearray(data[:-4])
    n_ops = serialize._HEAD.unpack_from(body)[3]
    # the columns close the body: op (1 byte per op), then a, b, c (4 bytes per op), ...
    columns = sum(np.dtype(dtype).itemsize * count
                  for (_, dtype), count in zip(serialize._COLUMNS, column_sizes(body)))
    op_start = len(body) - columns
    # format 3: n_slots and n_blocks follow the header, then the name table
    names, _ = serialize._read_names(body, serialize._HEAD.size + serialize._V3_COUNTS.size)
    ops = [names[code] for code in body[op_start:op_start + n_ops]]
    assert ops == ["input", "input", "sin", "mul", "add"]
    slot = ops.index(op_name)
    at = op_start + n_ops + {"a": 0, "b": 4}[column] * n_ops + 4 * slot
    body[at:at + 4] = struct.pack("<i", index)
    return bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)) & 0xFFFFFFFF)


def column_sizes(body):
    n_ops, n_consts, n_pool, n_inputs, n_outputs = serialize._HEAD.unpack_from(body)[3:8]
    n_slots, n_blocks = serialize._V3_COUNTS.unpack_from(body, serialize._HEAD.size)
    counts = {"n_ops": n_ops, "n_consts": n_consts, "n_pool": n_pool, "n_inputs": n_inputs,
              "n_outputs": n_outputs, "n_slots": n_slots, "n_block_ints": 6 * n_blocks}
    return [counts[serialize._SIZES[name]] for name, _ in serialize._COLUMNS]


@pytest.mark.parametrize("op_name, column, slot", [
    ("sin", "a", 2), ("mul", "a", 3), ("mul", "b", 3), ("add", "a", 4), ("add", "b", 4)])
@pytest.mark.parametrize("ahead", [0, 1], ids=["own_slot", "later_slot"])
def test_load_refuses_an_operand_that_is_not_an_earlier_slot(backend, op_name, column, slot,
                                                             ahead):
    bad = with_operand(saved(backend), op_name, column, slot + ahead)
    for load_as in ("c", "python"):
        with pytest.raises(pyad.TapeFormatError, match="index is out of range"):
            pyad.loads(bad, load_as)


def test_the_tampering_helper_writes_where_it_means(backend):
    """The control for the test above: pointing sin at an earlier slot (b) loads
    and computes sin(b) * b + a, so a refusal there comes from the index alone."""
    a, b = 0.3, 1.2
    moved = with_operand(saved(backend), "sin", "a", 1)
    for load_as in ("c", "python"):
        tape = pyad.loads(moved, load_as)
        np.testing.assert_allclose(tape(a, b), np.sin(b) * b + a, rtol=1e-15)
        np.testing.assert_allclose(tape.gradient(a, b), [1.0, np.cos(b) * b + np.sin(b)],
                                   rtol=1e-15)
