"""pyad.sin, pyad.exp, ...: elementary functions for floats, arrays and active values.

On plain numbers and arrays they are numpy's functions; on active values they
record the primitive of the same name. They are generated from the primitive
table, so every unary and binary primitive has one.
"""
from . import numpy_api, ops
from .array import Array, is_active, stack_values, store_of, where as _where

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


for _name in ops.names_of_kind("unary"):
    if ops.OPS[_name].numpy is not None:
        globals()[_name] = _make_unary(_name)
        __all__.append(_name)
for _name in ("pow", "arctan2", "maximum", "minimum"):
    globals()[_name] = _make_binary(_name)
    __all__.append(_name)

power = globals()["pow"]
absolute = globals()["abs"]
negative = globals()["neg"]


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
    numpy_api.A.as_constant(x)  # refuses strings, complex, objects, ...
    return x


__all__ += ["power", "absolute", "negative", "where", "stack", "array", "value", "stop_gradient"]
