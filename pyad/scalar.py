"""Active scalars: a tape slot that records every operation done to it.

A Scalar holds its tape's store and its slot index, nothing else; each operator
is a short call into the recorder. Operations with an Array or an ndarray go to
the array recorder (pyad.array), which broadcasts.
"""
import numbers
from types import SimpleNamespace

import numpy as np

from . import ops
from _thread import get_ident

from ._speedups import OPERATORS as FAST_OPERATORS, ScalarBase, configure
from .errors import INTERLEAVED, MixedTapeError, TapeBusyError, TapeClosedError, status_error

C = ops.CODE

# All read from the registry (csrc/ops.def, through pyad.ops).
#: For x ∘ c and c ∘ x with a constant c: the op that records it with c as the
#: row's constant, or None where a constant slot is recorded instead.
CONSTANT_FORMS = {op.name: (op.const_form, op.rconst_form)
                  for op in ops.OPS.values() if op.kind in ("binary", "compare")}
#: The ops whose result is a truth value (an active Bool).
COMPARISONS = frozenset(ops.names_of_kind("compare"))
#: Python operator method ("__add__") -> the row it records.
ROW_OF_OPERATOR = {op.operator: op for op in ops.OPS.values() if op.operator}

_PLAIN_NUMBERS = (float, int, np.float64)
_FLOAT_HINT = ("use pyad functions (pyad.sin, pyad.exp, ...) or numpy ufuncs on active "
               "values; read the untracked number with .value")


# The layers above (array.py, numpy_api.py) import this module, so it reaches them
# only through these handlers, which they fill at their import (provide_handlers):
# a Scalar meeting an Array or ndarray operand, and the numpy protocols (shared
# with Array), hand over to them.
UPPER = SimpleNamespace(
    is_array_operand=None,            # array.py: an Array, or a constant array operand?
    array_binary=None,                # array.py: elementwise_binary(x, y, name)
    array_ufunc=None,                 # numpy_api.py: __array_ufunc__
    array_function=None,              # numpy_api.py: __array_function__
    converting_library_function=None,  # numpy_api.py: who is calling __array__
    unsupported=None,                 # numpy_api.py: the TypeError naming a function
    dot=None,                         # numpy_api.py: Array.dot
)


def provide_handlers(**handlers):
    """Fill UPPER's handlers (called by array.py and numpy_api.py at import)."""
    for name, fn in handlers.items():
        if not hasattr(UPPER, name):
            raise TypeError(f"pyad.scalar has no handler named {name!r}")
        setattr(UPPER, name, fn)


def refuse_conversion(what):
    """__array__ of an active value: name the numpy/scipy function that tried
    (logsumexp calls np.asarray) rather than numpy's confusing follow-up error."""
    name = UPPER.converting_library_function()
    if name is not None:
        raise UPPER.unsupported(name)
    raise TypeError(what)


def mixed_tapes():
    return MixedTapeError("values from two different tapes met in one operation; "
                          "record the whole computation on one tape")


def is_constant_number(c):
    return isinstance(c, (numbers.Real, np.bool_)) and not isinstance(c, Scalar)


class Scalar(ScalarBase):
    """An active float: one slot of a tape.

    ``tape.input(2.0)``, ``pyad.trace`` and the elements of an active ``Array`` give
    these. Python operators (``+ - * / ** @``, comparisons), ``pyad.sin`` and
    friends and numpy's ufuncs record rows on the tape; the common binary operators
    run in a small C extension. ``float(x)`` and ``math.sin(x)`` raise
    ``TypeError`` (they would drop the derivative): use ``pyad.sin`` or ``.value``.
    ``Scalar(store, slot)`` is the low-level constructor (``store``: the tape's
    store, the ``._s`` of an active value; ``slot``: the slot holding the value).

    Examples
    --------
    >>> import pyad
    >>> with pyad.Tape() as tape:
    ...     x = tape.input(3.0)
    ...     y = tape.output(x * x + pyad.sin(x))
    >>> type(x).__name__, y.value
    ('Scalar', 9.141120008059866)
    >>> float(x)
    Traceback (most recent call last):
    ...
    TypeError: float() of an active pyad value would drop its derivative: ...
    """

    __slots__ = ()
    __array_priority__ = 1000  # numpy defers binary operators to us

    # ---- the untracked number ----

    @property
    def value(self) -> float:
        """The number in this slot (a float, with no derivative).

        Read while the tape is still recording, the number enters the recording as a
        constant, so a guard is recorded that this slot keeps it: replay at a point
        where it differs re-records (``pyad.trace``) or raises ``BranchError``, as an
        ``if`` on the value would (JAX refuses to concretize under trace). For a number
        that should follow the point, use ``pyad.stop_gradient``.
        """
        s = self._s
        v = s.value(self._i)
        if not getattr(s, "_sealed", False):
            guard_value(s, self._i, v)
        return v

    @property
    def slot(self) -> int:
        """The index of this value's slot on its tape."""
        return self._i

    shape = ()
    ndim = 0
    size = 1
    dtype = np.dtype(np.float64)   # as Array's: libraries that ask get float64, not a crash

    def __repr__(self):
        try:
            return f"Scalar({self._s.value(self._i)!r}, slot={self._i})"
        except Exception:
            return f"Scalar(<closed tape>, slot={self._i})"

    def __float__(self):
        raise TypeError(f"float() of an active pyad value would drop its derivative: {_FLOAT_HINT}")

    def __int__(self):
        raise TypeError(f"int() of an active pyad value would drop its derivative: {_FLOAT_HINT}")

    __index__ = __complex__ = __int__

    def __bool__(self):
        return record_truth(self, C["ne_c"])

    def __array__(self, dtype=None, copy=None):
        refuse_conversion("an active pyad value cannot go into a plain numpy array (that would "
                          "drop its derivative): build active arrays with pyad.stack([...]) or "
                          "pyad.array([...]); read plain numbers with .value")

    __hash__ = None

    # An active value is immutable: a copy is the value itself.
    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        raise TypeError("an active pyad value cannot be pickled on its own: save the "
                        "tape (tape.save, or pickle the Tape) and replay it instead")

    # ---- recording ----

    def _unary(self, op):
        s = self._s
        if s._owner != get_ident():
            claim(s)
        return Scalar(s, s.push1(op, self._i))

    # The operators of the registry's rows are installed below the class
    # (install_operators); these are the ones no row stands for.

    def __pos__(self):
        return self

    def __pow__(self, o):
        # x ** 2 records square: one row with cheaper rules than pow's
        if (o.__class__ is float or o.__class__ is int) and o == 2:
            return self._unary(_SQUARE)
        return binary(self, o, ROW_OF_OPERATOR["__pow__"].name)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return UPPER.array_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        return UPPER.array_function(func, types, args, kwargs)


class Bool(Scalar):
    """The active outcome of a comparison: a slot holding 1.0 or 0.0.

    ``pyad.where`` selects with it and replays both ways; using it in a Python
    ``if`` records a guard, so replay at a point where it flips is caught (re-recorded
    by ``pyad.trace``, ``BranchError`` otherwise). As a number it is 1.0 or 0.0
    with derivative zero, like numpy's bools.

    Examples
    --------
    >>> import pyad
    >>> with pyad.Tape() as tape:
    ...     x = tape.input(3.0)
    ...     positive = x > 0.0
    ...     y = tape.output(pyad.where(positive, x, -x))
    >>> type(positive).__name__
    'Bool'
    >>> tape.gradient(-2.0)        # no guard: where replays both ways
    -1.0
    """

    __slots__ = ()

    def __repr__(self):
        try:
            return f"Bool({self._s.value(self._i) != 0}, slot={self._i})"
        except Exception:
            return f"Bool(<closed tape>, slot={self._i})"

    def __bool__(self):
        outcome = self._s.value(self._i) != 0
        self._s.guard(self._i, outcome)
        return outcome

    def __invert__(self):
        return Bool(self._s, self._s.push_c(C["rsub_c"], self._i, 1.0))

    def __and__(self, o):
        return logical(self, o, "mul")

    __rand__ = __and__

    def __or__(self, o):
        return logical(self, o, "maximum")

    __ror__ = __or__


_SQUARE = C["square"]


def operator_methods(record_unary, record_binary):
    """{dunder: method} for the Python operator of every registry row that has one:
    record_unary(x, op code) and record_binary(x, y, op name) record the row. A
    binary row gets its reflected method too (__radd__); comparisons need none,
    Python swaps them (2 < x runs x > 2)."""
    methods = {}
    for dunder, op in ROW_OF_OPERATOR.items():
        if op.kind == "unary":
            methods[dunder] = _unary_method(record_unary, op.code)
        else:
            methods[dunder] = _binary_method(record_binary, op.name, reflected=False)
            if op.kind == "binary":
                methods["__r" + dunder[2:]] = _binary_method(record_binary, op.name,
                                                             reflected=True)
    return methods


def _unary_method(record_unary, code):
    def method(self):
        return record_unary(self, code)
    return method


def _binary_method(record_binary, name, reflected):
    if reflected:
        def method(self, o):
            return record_binary(o, self, name)
    else:
        def method(self, o):
            return record_binary(self, o, name)
    return method


def install_operators(cls, methods, skip=()):
    """Give cls the methods it does not define itself (nor is told to skip)."""
    for dunder, method in methods.items():
        if dunder not in vars(cls) and dunder not in skip:
            method.__name__ = dunder
            method.__qualname__ = f"{cls.__name__}.{dunder}"
            setattr(cls, dunder, method)


def claim(store):
    """The calling thread records on `store` from now on. Rows another thread
    has buffered and not yet handed over mean two threads record at once: the
    tape is closed, with an error (rather than rows interleaved silently)."""
    if store._pending:
        store.close()
        raise TapeBusyError(INTERLEAVED)
    store._owner = get_ident()


def record_truth(x, op_ne_c):
    """`if x:` on an active scalar: record x != 0 and a guard on it."""
    cond = x._s.push_c(op_ne_c, x._i, 0.0)
    outcome = x._s.value(cond) != 0
    x._s.guard(cond, outcome)
    return outcome


def guard_value(store, slot, v):
    """Record that `slot` holds v at replay (NaN: that it is NaN)."""
    if store._owner != get_ident():
        claim(store)
    if v != v:
        cond = store.push2(C["ne"], slot, slot)
    else:
        cond = store.push_c(C["eq_c"], slot, v)
    store.guard(cond, True)


def logical(x, o, name):
    r = binary(x, o, name)
    if isinstance(r, Scalar) and not isinstance(r, Bool):
        r = Bool(r._s, r._i)
    return r


def binary(x, y, name):
    """Record x ∘ y where at least one of x, y is an active Scalar."""
    cls = Bool if name in COMPARISONS else Scalar
    xs, ys = isinstance(x, Scalar), isinstance(y, Scalar)
    for s in {v._s for v in (x, y) if isinstance(v, Scalar)}:
        if s._owner != get_ident():
            claim(s)
    if xs and ys:
        s = x._s
        if y._s is not s:
            raise mixed_tapes()
        return cls(s, s.push2(C[name], x._i, y._i))
    if xs and is_constant_number(y):
        form = CONSTANT_FORMS[name][0]
        s = x._s
        if form is None:
            return cls(s, s.push2(C[name], x._i, s.const(float(y))))
        return cls(s, s.push_c(C[form], x._i, float(y)))
    if ys and is_constant_number(x):
        form = CONSTANT_FORMS[name][1]
        s = y._s
        if form is None:
            return cls(s, s.push2(C[name], s.const(float(x)), y._i))
        return cls(s, s.push_c(C[form], y._i, float(x)))
    if UPPER.is_array_operand(x) or UPPER.is_array_operand(y):
        return UPPER.array_binary(x, y, name)
    return NotImplemented


def _speedup_codes():
    """What _speedups.c records for each operator it implements and the registry
    gives a row: {dunder: (op name, op, op with a constant after, op with a
    constant before (-1: none), whether the result is a Bool)}."""
    def code(form):
        return C[form] if form else -1
    return {dunder: (op.name, op.code, code(op.const_form), code(op.rconst_form),
                     op.kind == "compare")
            for dunder, op in ROW_OF_OPERATOR.items() if dunder in FAST_OPERATORS}


def _fast_operators():
    """The dunders _speedups.c implements (for both operand orders)."""
    return {d for fast in FAST_OPERATORS for d in (fast, "__r" + fast[2:])}


install_operators(Scalar, operator_methods(Scalar._unary, binary), skip=_fast_operators())
configure(Scalar, Bool, binary, _speedup_codes(), TapeClosedError,
          bytes(ops.KIND[name] in ("binary", "compare") for name in ops.NAME),
          str(status_error("PYAD_ECLOSED")))
