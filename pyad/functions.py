"""pyad.sin, pyad.exp, ...: elementary functions for floats, arrays and active values.

On plain numbers and arrays they are numpy's functions; on active values they
record the primitive of the same name. They are generated from the registry
(csrc/ops.def): every unary row, and every binary row that implements a numpy
function, has one under its own name and under numpy's (pyad.pow, pyad.power).
"""
from typing import Any

import numpy as np

from . import numpy_api, ops
from .array import Array, as_constant, is_active, stack_values, store_of, where as _where

__all__ = []


def _make_unary(name):
    def f(x: Any) -> Any:
        return numpy_api.unary(name, x)
    f.__name__ = f.__qualname__ = name
    f.__doc__ = _row_doc(ops.OPS[name], 1)
    return f


def _make_binary(name):
    def f(x: Any, y: Any) -> Any:
        return numpy_api.binary_op(name, x, y)
    f.__name__ = f.__qualname__ = name
    f.__doc__ = _row_doc(ops.OPS[name], 2)
    return f


# Sample points of the generated examples: inside every row's domain but arccosh's.
_DOC_POINTS = {"arccosh": "[1.5, 2.0]"}


def _row_doc(op, arity):
    """The docstring of a generated function, from its registry row: what it
    computes, its parameters, and an example checked against the numpy/scipy
    function it implements (run as a doctest by tests/test_docstrings.py)."""
    points = _DOC_POINTS.get(op.name, "[0.25, 0.5]")
    call = f"pyad.{op.name}(x)" if arity == 1 else f"pyad.{op.name}(x, 2.0)"
    lines = [f"Elementwise ``{op.name}``"
             + (f", as ``{op.numpy}``" if op.numpy else "") + ", on numbers, arrays and "
             "active values.", "",
             "On plain numbers and arrays it is the numpy/scipy function; on active values it "
             "records one row of the tape (one per call, whatever the array's size)"
             + ("; the operands broadcast as in numpy and either may be constant." if arity == 2
                else "."), "",
             "Parameters", "----------",
             "x : float, array_like or active value"]
    if arity == 2:
        lines += ["y : float, array_like or active value"]
    lines += ["", "Returns", "-------",
              "float, numpy.ndarray, Scalar or Array",
              "    Plain numbers for plain inputs; an active value (recorded) when an operand "
              "is active.", "",
              "Raises", "------", "TypeError",
              "    An operand is not real numbers (a string, a complex number, None).", "",
              "Examples", "--------", ">>> import numpy as np, pyad",
              f">>> x = np.array({points})"]
    if op.numpy:
        module, _, fname = op.numpy.rpartition(".")
        ref = f"np.{fname}" if module == "numpy" else op.numpy
        if module != "numpy":
            lines += [f">>> import {module}"]
        args = "x" if arity == 1 else "x, 2.0"
        lines += [f">>> bool(np.allclose({call}, {ref}({args})))", "True"]
    lines += [f">>> pyad.grad(lambda x: np.sum({call}))(x).shape   # recorded, differentiated",
              "(2,)"]
    return "\n".join(lines)


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


def where(cond: Any, a: Any, b: Any) -> Any:
    """Branch-free select: ``a`` where ``cond`` is true, else ``b`` (``np.where``).

    An active condition (a comparison of active values) is recorded and replays
    correctly on both sides, with no guard: the way to write a Python ``if`` that
    must not re-record.

    Parameters
    ----------
    cond : bool, array_like, Bool or BoolArray
        The condition, broadcast against ``a`` and ``b``.
    a, b : float, array_like or active value
        The values taken where ``cond`` is true / false.

    Returns
    -------
    float, numpy.ndarray, Scalar or Array
        The selection; active when any operand is.

    Raises
    ------
    TypeError
        An operand is not real numbers.

    Examples
    --------
    >>> import numpy as np, pyad
    >>> absolute = lambda x: np.sum(pyad.where(x > 0, x, -x))
    >>> pyad.grad(absolute)(np.array([-2.0, 3.0]))
    array([-1.,  1.])
    """
    return _where(cond, a, b)


def stack(xs: Any, axis: int = 0) -> Any:
    """Join active scalars and arrays (and constants) into one active array along a new axis.

    ``np.array([a, b])`` of active scalars raises ``TypeError`` (it would drop the
    derivatives); this is the way to build one. It records nothing: the result
    describes the slots of its parts.

    Parameters
    ----------
    xs : sequence
        Active scalars or arrays and numbers, all of one shape.
    axis : int
        The new axis, as in ``np.stack``.

    Returns
    -------
    Array or numpy.ndarray
        The stacked array (plain when no part is active).

    Raises
    ------
    ValueError
        The parts differ in shape.

    Examples
    --------
    >>> import numpy as np, pyad
    >>> f = lambda a, b: pyad.stack([a * b, a + b]).sum()
    >>> pyad.grad(f, argnums=(0, 1))(2.0, 3.0)
    (4.0, 3.0)
    """
    return stack_values(xs, axis)


def array(xs: Any) -> Any:
    """An active array from a (nested) list of active scalars and numbers.

    Like ``np.array``, an active array given whole is copied, so in-place writes to
    the result do not reach it.

    Parameters
    ----------
    xs : list, tuple or Array
        Nested lists of active scalars and numbers, or an active array.

    Returns
    -------
    Array or numpy.ndarray
        The array (plain numbers stay plain).

    Raises
    ------
    ValueError
        The nested lists are ragged.

    Examples
    --------
    >>> import pyad
    >>> with pyad.Tape() as tape:
    ...     a, b = tape.input([2.0, 3.0])
    ...     m = pyad.array([[a, 1.0], [b, a * b]])
    >>> m.shape
    (2, 2)
    """
    if isinstance(xs, (list, tuple)):
        return stack_values(xs, 0)
    return xs.copy() if isinstance(xs, Array) else xs


def value(x: Any) -> Any:
    """The plain number(s) of an active value, without derivative; other values unchanged.

    While the tape records, the number is guarded (see ``Scalar.value``): replay at a
    point where it differs re-records or raises ``BranchError``. To hold a quantity
    fixed under differentiation but recompute it at each point, use
    ``stop_gradient``.

    Parameters
    ----------
    x : Any
        An active value, or anything else (returned as it is).

    Returns
    -------
    float, numpy.ndarray or Any
        A float for a ``Scalar``, a float64 array for an ``Array``, else ``x``.

    Raises
    ------
    TapeClosedError
        ``x`` belongs to a closed tape.

    Examples
    --------
    >>> import pyad
    >>> with pyad.Tape() as tape:
    ...     a = tape.input(2.0)
    ...     y = tape.output(a * 3.0)
    >>> pyad.value(y), pyad.value(2.5)
    (6.0, 2.5)
    """
    return x.value if hasattr(x, "_s") else x


def stop_gradient(x: Any) -> Any:
    """``x``'s value with derivative zero, in every sweep and to every order (``jax.lax.stop_gradient``).

    Unlike reading ``.value``, it is a recorded op: replay at any point computes
    the value there and needs no re-recording.

    Parameters
    ----------
    x : float, array_like or active value
        The value to hold fixed under differentiation.

    Returns
    -------
    float, numpy.ndarray, Scalar or Array
        ``x`` itself for plain numbers and arrays; an active value with zero
        derivative otherwise.

    Raises
    ------
    TypeError
        ``x`` is not real numbers (a string, a complex number, an object).

    Examples
    --------
    >>> import pyad
    >>> pyad.grad(lambda x: x * pyad.stop_gradient(x))(3.0)   # d/dx of x * c, c = 3
    3.0
    """
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


def logsumexp(x: Any, axis: "int | tuple[int, ...] | None" = None,
              keepdims: bool = False) -> Any:
    """``log(sum(exp(x)))`` over ``axis``, without overflow (``scipy.special.logsumexp``).

    Computed as ``m + log(sum(exp(x - m)))`` with ``m`` the maximum, held by
    ``stop_gradient`` (the shift's derivative cancels). Its gradient is
    ``softmax(x)`` along ``axis``.

    Parameters
    ----------
    x : array_like or active value
        The values.
    axis : int, tuple of int or None
        The axes to reduce (None: all).
    keepdims : bool
        Keep the reduced axes with length 1.

    Returns
    -------
    float, numpy.ndarray, Scalar or Array
        The reduction; active when ``x`` is.

    Raises
    ------
    TypeError
        ``x`` is not real numbers.

    Examples
    --------
    >>> import numpy as np, pyad
    >>> float(pyad.logsumexp([1000.0, 1000.0]))
    1000.6931471805599
    >>> pyad.grad(pyad.logsumexp)(np.array([0.0, 0.0]))
    array([0.5, 0.5])
    """
    x = _as_operand(x)
    m = _shift(x, axis)
    r = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    if not keepdims:
        r = r.reshape(()) if axis is None else np.squeeze(r, axis=axis)
    return r[()] if isinstance(r, np.ndarray) and r.ndim == 0 else r


def softmax(x: Any, axis: int = -1) -> Any:
    """``exp(x) / sum(exp(x))`` along ``axis``, shifted by the maximum (``scipy.special.softmax``).

    The shift keeps large values from overflowing (``inf / inf = NaN``) and very
    negative ones from giving ``0 / 0``.

    Parameters
    ----------
    x : array_like or active value
        The values.
    axis : int
        The axis to normalize along.

    Returns
    -------
    numpy.ndarray or Array
        Non-negative values summing to 1 along ``axis``.

    Raises
    ------
    TypeError
        ``x`` is not real numbers.

    Examples
    --------
    >>> import numpy as np, pyad
    >>> pyad.softmax(np.array([1000.0, 1000.0]))
    array([0.5, 0.5])
    """
    x = _as_operand(x)
    e = np.exp(x - _shift(x, axis))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x: Any, axis: int = -1) -> Any:
    """``x - logsumexp(x)`` along ``axis``, as ``(x - m) - log(sum(exp(x - m)))``.

    Exact for large differences, where ``log(softmax(x))`` would be ``log(0) = -inf``.

    Parameters
    ----------
    x : array_like or active value
        The values.
    axis : int
        The axis to normalize along.

    Returns
    -------
    numpy.ndarray or Array
        The log-probabilities along ``axis``.

    Raises
    ------
    TypeError
        ``x`` is not real numbers.

    Examples
    --------
    >>> import numpy as np, pyad
    >>> pyad.log_softmax(np.array([0.0, 1000.0]))
    array([-1000.,     0.])
    >>> pyad.grad(lambda x: pyad.log_softmax(x)[0])(np.array([0.0, 0.0]))
    array([ 0.5, -0.5])
    """
    x = _as_operand(x)
    shifted = x - _shift(x, axis)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


__all__ += ["logsumexp", "softmax", "log_softmax"]
