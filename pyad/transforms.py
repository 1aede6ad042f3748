"""Functional transforms: trace f at the given point, sweep, return numpy values."""
import functools
import operator

from . import recording
from .tape import Tape


def _argnums_tuple(argnums, nargs):
    """(argument indices, whether argnums was one int), checked as JAX checks them."""
    single = not isinstance(argnums, (tuple, list))
    nums = (argnums,) if single else tuple(argnums)
    if not nums:
        raise ValueError("argnums is empty: name at least one argument to differentiate")
    checked = []
    for i in nums:
        try:
            i = None if isinstance(i, bool) else operator.index(i)
        except TypeError:
            i = None
        if i is None:
            raise TypeError(f"argnums must be an int or a tuple of ints, got {argnums!r}")
        if not -nargs <= i < nargs:
            raise ValueError(f"argnums {i} is out of range for a call with {nargs} positional "
                             "argument(s)")
        checked.append(i % nargs)
    if len(set(checked)) != len(checked):
        raise ValueError(f"argnums {argnums!r} names an argument twice: each argument is "
                         "differentiated once")
    return tuple(checked), single


def record(f, args, argnums, backend=None, retrace=False):
    """A Tape of f(*args) whose inputs are args[i] for i in argnums (keeping f to
    re-record where a branch flips, with retrace=True)."""
    store, in_shapes, out_shapes = recording.record(f, args, argnums, backend)
    return Tape.from_store(store, in_shapes, out_shapes, backend, fn=f if retrace else None)


def trace(f, *args, backend=None, retrace=True):
    """Record f(*args) once; the returned Tape replays it at new points.

    With retrace=True the tape keeps f and re-records when replay reaches a
    point where one of f's Python branches goes the other way (counted in
    tape.retraces); with retrace=False such a replay raises pyad.BranchError.
    """
    if not callable(f):
        raise TypeError(f"pyad.trace needs a function, got {type(f).__name__}")
    return record(f, args, range(len(args)), backend, retrace)


def _scalar_tape(f, args, argnums, backend, who):
    nums, single = _argnums_tuple(argnums, len(args))
    tape = record(f, args, nums, backend)
    if tape._out_shapes != [()]:
        shape = tape._out_shapes[0] if len(tape._out_shapes) == 1 else "several outputs"
        raise TypeError(f"{who} requires a function with one scalar output; the output had "
                        f"shape {shape} (use pyad.jacobian or pyad.vjp)")
    return tape, single


def value_and_grad(f, argnums=0, backend=None):
    """f's value and gradient with respect to args[argnums] (JAX semantics)."""
    @functools.wraps(f)
    def value_and_grad_f(*args):
        tape, single = _scalar_tape(f, args, argnums, backend, "value_and_grad")
        try:
            value, g = tape.value_and_gradient()
        finally:
            tape.close()
        return value, (g if single or isinstance(g, tuple) else (g,))
    return value_and_grad_f


def grad(f, argnums=0, backend=None):
    """The gradient of scalar f with respect to args[argnums]: same shape as that argument."""
    vg = value_and_grad(f, argnums, backend)

    @functools.wraps(f)
    def grad_f(*args):
        return vg(*args)[1]
    return grad_f


def jvp(f, x, v, backend=None):
    """(f(x), J v): the Jacobian-vector product by one forward sweep."""
    tape = record(f, (x,), (0,), backend)
    try:
        return tape.jvp(x, v)
    finally:
        tape.close()


def vjp(f, x, u, backend=None):
    """(f(x), u^T J): the vector-Jacobian product by one reverse sweep."""
    tape = record(f, (x,), (0,), backend)
    try:
        y = tape()
        _, g = tape.vjp(None, u)
        return y, g
    finally:
        tape.close()


def hvp(f, x, v, backend=None):
    """H v for scalar f at x, by forward-over-reverse (no finite differences)."""
    tape, _ = _scalar_tape(f, (x,), 0, backend, "hvp")
    try:
        return tape.hvp(x, v)
    finally:
        tape.close()


def jacobian(f, mode="auto", backend=None):
    """x -> the Jacobian of f at x, shape f(x).shape + x.shape (see Tape.jacobian)."""
    @functools.wraps(f)
    def jacobian_f(x):
        tape = record(f, (x,), (0,), backend)
        try:
            return tape.jacobian(None, mode=mode)
        finally:
            tape.close()
    return jacobian_f


def hessian(f, backend=None):
    """x -> the Hessian of scalar f at x, shape x.shape + x.shape (forward-over-reverse)."""
    @functools.wraps(f)
    def hessian_f(x):
        tape, _ = _scalar_tape(f, (x,), 0, backend, "hessian")
        try:
            return tape.hessian()
        finally:
            tape.close()
    return hessian_f
