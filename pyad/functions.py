"""pyad.sin, pyad.exp, ...: elementary functions for floats, arrays and active values.

On plain numbers and arrays they are numpy's functions; on active values they
record the primitive of the same name. They are generated from the registry
(csrc/ops.def): every unary row, and every binary row that implements a numpy
function, has one under its own name and under numpy's (pyad.pow, pyad.power).
"""
import numpy as np

from . import numpy_api, ops
from .array import Array, as_constant, is_active, stack_values, store_of, where as _where

__all__ = []


def _make_unary(name):
    def f(x):
        return numpy_api.unary(name, x)
    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"Elementwise {name}(x) of a float, array or active value."
    return f


def _make_binary(name):
    def f(x, y):
        return numpy_api.binary_op(name, x, y)
    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"Elementwise {name}(x, y) with numpy broadcasting; either may be active."
    return f


def _public_names(op):
    """pyad.<row name>, and pyad.<numpy name> where numpy calls it otherwise
    (numpy.power: pyad.power next to pyad.pow)."""
    names = [op.name]
    if op.numpy:
        alias = op.numpy.rpartition(".")[2]
        if alias != op.name:
            names.append(alias)
    return names


def _has_a_function(op):
    """Every unary row, and every binary row that implements a numpy function
    (pyad.arctan2 as numpy.arctan2; pyad.add as numpy.add, like jax.numpy)."""
    return op.kind == "unary" or (op.kind == "binary" and op.numpy is not None)


def _install_row_functions(namespace, exported):
    """pyad.<name> for every row that has one, unless this module writes it by
    hand (a row whose plain-number case is no numpy function)."""
    for op in ops.OPS.values():
        if not _has_a_function(op):
            continue
        f = (_make_unary if op.kind == "unary" else _make_binary)(op.name)
        for public in _public_names(op):
            if public not in namespace:
                namespace[public] = f
                exported.append(public)


def where(cond, a, b):
    """Branch-free select: a where cond is true, else b. An active condition
    (a comparison of active values) is recorded and replays correctly on both
    sides, with no guard."""
    return _where(cond, a, b)


def stack(xs, axis=0):
    """Join active scalars/arrays (and constants) into one active array along a new axis."""
    return stack_values(xs, axis)


def array(xs):
    """An active array from a (nested) list of active scalars and numbers; like
    np.array, an active array is copied, so in-place writes do not reach it."""
    if isinstance(xs, (list, tuple)):
        return stack_values(xs, 0)
    return xs.copy() if isinstance(xs, Array) else xs


def value(x):
    """The plain number(s) of an active value (no derivative); other values unchanged.
    While the tape records, the number is guarded (see Scalar.value): replay at a
    point where it differs re-records or raises BranchError."""
    return x.value if hasattr(x, "_s") else x


def stop_gradient(x):
    """x's value with derivative zero, in every sweep and to every order.

    Unlike reading .value, it is a recorded op: replay at any point computes the
    value there and needs no re-recording. Plain numbers and arrays are returned
    unchanged; anything else that is not real numbers raises TypeError, as every
    elementary function does."""
    if is_active(x) or (isinstance(x, (list, tuple)) and store_of(x) is not None):
        return numpy_api.unary("stop_gradient", x)
    as_constant(x)  # refuses strings, complex, objects, ...
    return x


__all__ += ["where", "stack", "array", "value", "stop_gradient"]
_install_row_functions(globals(), __all__)


# ---- stable log-sum-exp and softmax (shifted by the maximum) ----

def _shift(x, axis):
    """The maximum along axis (kept as length-1 axes) with derivative zero:
    x - m and m + log(sum(exp(x - m))) have the same derivative whatever m is, so
    the shift only keeps exp from overflowing, and stop_gradient keeps the
    maximum's tie rule out of the derivative. A non-finite maximum (all -inf, or
    an inf) becomes 0, as in scipy, so that x - m is not inf - inf."""
    m = stop_gradient(np.max(x, axis=axis, keepdims=True))
    return where(abs(m) < np.inf, m, 0.0)


def _as_operand(x):
    """x as pyad's numpy protocols see it: active values and lists holding them
    as they are, anything else as a float64 array."""
    if is_active(x) or store_of(x) is not None:
        return numpy_api._active(x)
    return as_constant(x)


def logsumexp(x, axis=None, keepdims=False):
    """log(sum(exp(x))) over axis (None: all), computed without overflow as
    m + log(sum(exp(x - m))) with m the maximum (scipy.special.logsumexp's
    value). Its gradient is softmax(x) along axis.

    >>> float(logsumexp([1000.0, 1000.0]))
    1000.6931471805599
    """
    x = _as_operand(x)
    m = _shift(x, axis)
    r = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    if not keepdims:
        r = r.reshape(()) if axis is None else np.squeeze(r, axis=axis)
    return r[()] if isinstance(r, np.ndarray) and r.ndim == 0 else r


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along axis, shifted by the maximum so that large
    values give no overflow (inf / inf = NaN) and very negative ones no 0 / 0."""
    x = _as_operand(x)
    e = np.exp(x - _shift(x, axis))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    """x - logsumexp(x) along axis, as (x - m) - log(sum(exp(x - m))): exact for
    large differences where log(softmax(x)) would be log(0) = -inf."""
    x = _as_operand(x)
    shifted = x - _shift(x, axis)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


__all__ += ["logsumexp", "softmax", "log_softmax"]
