"""pyad.debug_nans(): make sweeps that produce NaN or inf raise, naming the op.

By default sweeps follow IEEE quietly, like numpy.
"""
import contextlib

import numpy as np

from . import ops
from .teaching import row_operands


class _Flag:
    enabled = False


DEBUG_NANS = _Flag()


@contextlib.contextmanager
def _debug_nans_context(previous):
    try:
        yield
    finally:
        DEBUG_NANS.enabled = previous


def debug_nans(enabled=True):
    """Turn NaN/inf checking of sweeps on (or off). Use as a call or a context manager:

        pyad.debug_nans()                 # on from now
        with pyad.debug_nans(): ...       # on inside the block only
    """
    previous = DEBUG_NANS.enabled
    DEBUG_NANS.enabled = bool(enabled)
    return _debug_nans_context(previous)


def _arrays(result):
    items = result if isinstance(result, tuple) else (result,)
    return [np.asarray(r) for r in items if isinstance(r, np.ndarray)]


def check_finite(tape, method, x, result):
    """Raise FloatingPointError if a sweep's result holds NaN or inf, naming the
    first op whose value is not finite though its operands are."""
    if all(np.isfinite(a).all() for a in _arrays(result)):
        return
    store = tape._store
    point = x if x is not None else store.values(store.input_slots())
    values, _ = store.slot_values(np.asarray(point, dtype=np.float64))
    arrays = store.export()
    bad = np.flatnonzero(~np.isfinite(values))
    for k in bad:
        name = ops.NAME[int(arrays["op"][k])]
        if name == "input":
            raise FloatingPointError(f"pyad.debug_nans: input {int(arrays['a'][k])} is "
                                     f"{values[k]} at x = {point}")
        operands = row_operands(name, arrays["a"][k], arrays["b"][k], arrays["c"][k],
                                arrays.get("pool", ()))
        if all(np.isfinite(values[j]) for j in operands if j < k):
            raise FloatingPointError(
                f"pyad.debug_nans: op {k} ({name}) gives {values[k]} from finite operands "
                f"{[float(values[j]) for j in operands]} at x = {np.asarray(point).tolist()}")
    raise FloatingPointError(
        f"pyad.debug_nans: the {method} sweep at x = {np.asarray(point).tolist()} produced a "
        "non-finite derivative although every value is finite (an infinite derivative, e.g. "
        "sqrt at 0)")
