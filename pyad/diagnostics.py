"""pyad.debug_nans(): make sweeps that produce NaN or inf raise, naming the op.

By default sweeps follow IEEE quietly, like numpy. The op is named by its row
of the tape; in a block row (one numpy operation on an array) also by the
element, and the slot it defines.
"""
import contextlib

import numpy as np


class _Flag:
    enabled = False


DEBUG_NANS = _Flag()


@contextlib.contextmanager
def _debug_nans_context(previous):
    try:
        yield
    finally:
        DEBUG_NANS.enabled = previous


def debug_nans(enabled: bool = True) -> "contextlib.AbstractContextManager[None]":
    """Make sweeps that produce NaN or inf raise ``FloatingPointError`` (or stop that).

    By default sweeps follow IEEE quietly, as numpy does. Checking names the first
    op at fault (in a batch also the point). Use as a call (on from now) or as a
    context manager (on inside the block only).

    Parameters
    ----------
    enabled : bool
        Turn checking on (True) or off.

    Returns
    -------
    contextmanager
        Leaving it restores the previous setting.

    Raises
    ------
    FloatingPointError
        (from later sweeps, while on) a sweep produced NaN or inf.

    Examples
    --------
    >>> import numpy as np, pyad
    >>> tape = pyad.trace(lambda x: np.sum(np.log(x)), np.array([1.0, 2.0]))
    >>> with pyad.debug_nans():
    ...     tape(np.array([-1.0, 2.0]))
    Traceback (most recent call last):
    ...
    FloatingPointError: pyad.debug_nans: op 1 (log), element 0 of 2 (slot 2), gives nan ...
    """
    previous = DEBUG_NANS.enabled
    DEBUG_NANS.enabled = bool(enabled)
    return _debug_nans_context(previous)


def _arrays(result):
    items = result if isinstance(result, tuple) else (result,)
    return [np.asarray(r) for r in items if isinstance(r, np.ndarray)]


def check_finite(tape, method, x, result):
    """Raise FloatingPointError if a sweep's result holds NaN or inf, naming the
    first op (row, and element of a block row) whose value is not finite though
    its operands are."""
    if all(np.isfinite(a).all() for a in _arrays(result)):
        return
    from .teaching import _Graph  # the tape's rows and operands, read once
    store = tape._store
    point = x if x is not None else store.values(store.input_slots())
    values, _ = store.slot_values(np.asarray(point, dtype=np.float64))
    g = _Graph(tape)
    at = np.asarray(point).tolist()
    for s in np.flatnonzero(~np.isfinite(values)).tolist():
        k = int(g.row_of[s])
        i, name = s - int(g.first[k]), g.primitive(k)
        if name == "input":
            raise FloatingPointError(f"pyad.debug_nans: input {int(g.a[k]) + i} is "
                                     f"{values[s]} at x = {point}")
        # the slots element i of row k reads (a broadcast operand: its one slot)
        operands = g.element_operands(k, i)
        if all(np.isfinite(values[j]) for j in operands if j < g.first[k]):
            where = f"op {int(g.tape_row[k])} ({name})"
            if g.width[k] > 1:
                where += f", element {i} of {int(g.width[k])} (slot {s}),"
            raise FloatingPointError(
                f"pyad.debug_nans: {where} gives {values[s]} from finite operands "
                f"{[float(values[j]) for j in operands]} at x = {at}")
    raise FloatingPointError(
        f"pyad.debug_nans: the {method} sweep at x = {at} produced a "
        "non-finite derivative although every value is finite (an infinite derivative, e.g. "
        "sqrt at 0)")
