"""Recording: marking inputs and outputs on a store, and recording a function
at a point (for pyad.trace and the transforms, and to re-record a traced
function where replay takes another branch)."""
import numbers

import numpy as np

from .array import is_active, to_slots, wrap
from .backends import new_store
from .scalar import Scalar


def as_input(x, what="input"):
    """A float64 ndarray for a value that becomes (or feeds) tape inputs."""
    if is_active(x):
        raise TypeError(f"{what} is already an active pyad value: nested differentiation is "
                        "not supported (use pyad.hessian / pyad.hvp for second derivatives)")
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{what} must be a real number or an array of them, not {type(x).__name__}")
    try:
        a = np.asarray(x)
    except Exception as e:
        raise TypeError(f"{what} must be a real number or an array of them: {e}") from None
    if a.dtype == np.bool_ or not (np.issubdtype(a.dtype, np.integer)
                                   or np.issubdtype(a.dtype, np.floating)):
        kind = "complex" if np.iscomplexobj(a) else str(a.dtype)
        raise TypeError(f"{what} must be real numbers (float or int), got dtype {kind}")
    return a.astype(np.float64, copy=False)


def mark_input(store, in_shapes, x):
    """Record x as the next input of store (its shape appended to in_shapes);
    returns the active Scalar or Array that stands for it."""
    if type(x) is float or type(x) is int:
        slot = store.input(float(x))
        in_shapes.append(())
        return Scalar(store, slot)
    a = as_input(x, "tape.input")
    if a.ndim == 0:
        slot = store.input(float(a))
        in_shapes.append(())
        return Scalar(store, slot)
    flat = np.ascontiguousarray(a.ravel())
    first = store.input_n(flat) if flat.size else store.n_ops
    in_shapes.append(a.shape)
    return wrap(store, np.arange(first, first + flat.size, dtype=np.int32).reshape(a.shape))


def mark_output(store, out_shapes, y):
    """Record y (active, constant, or a list of them) as the next output of store."""
    if y is None or isinstance(y, (str, bytes, dict)):
        raise TypeError(f"tape.output takes numbers or arrays, not {type(y).__name__}")
    slots = to_slots(store, y)
    store.output_n(np.ascontiguousarray(slots.ravel(), dtype=np.int32))
    out_shapes.append(slots.shape)


def seal(store):
    """Recording is over: reading .value records no guard, spare capacity goes back."""
    store._sealed = True
    if not store.closed:
        store.shrink()


def check_output(out):
    if is_active(out) or isinstance(out, (numbers.Real, np.ndarray, list, tuple)):
        return
    raise TypeError(f"the differentiated function must return a number or an array, "
                    f"not {type(out).__name__}")


def record(f, args, argnums, backend):
    """(store, input shapes, output shapes) of f(*args) recorded with args[i] as
    inputs for i in argnums."""
    store, in_shapes, out_shapes = new_store(backend), [], []
    try:
        call_args = list(args)
        for i in argnums:
            call_args[i] = mark_input(store, in_shapes, args[i])
        out = f(*call_args)
        check_output(out)
        mark_output(store, out_shapes, out)
    finally:
        seal(store)
    return store, in_shapes, out_shapes
