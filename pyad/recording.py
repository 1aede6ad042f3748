"""Recording: marking inputs and outputs (pytrees of them) on a store, and
recording a function at a point (for pyad.trace and the transforms, and to
re-record a traced function where replay takes another branch)."""
import numbers

import numpy as np

from . import pytree
from .array import _fresh as fresh, is_active, to_slots, wrap
from .backends import new_store
from .errors import BranchError
from .scalar import Scalar


_F64 = np.dtype(np.float64)


def as_input(x, what="input"):
    """A float64 ndarray for a value that becomes (or feeds) tape inputs."""
    if type(x) is np.ndarray and x.dtype is _F64:
        return x
    if is_active(x):
        raise TypeError(f"{what} is already an active pyad value: nested differentiation is "
                        "not supported (use pyad.hessian / pyad.hvp for second derivatives)")
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{what} must be a real number or an array of them, not {type(x).__name__}")
    try:
        a = np.asarray(x)
    except Exception as e:
        raise TypeError(f"{what} must be a real number or an array of them: {e}") from None
    if a.dtype.kind not in "iuf":  # signed, unsigned or floating; not bool
        kind = "complex" if a.dtype.kind == "c" else str(a.dtype)
        raise TypeError(f"{what} must be real numbers (float or int), got dtype {kind}")
    return a.astype(np.float64, copy=False)


def mark_input(store, in_shapes, x):
    """Record x as the next input of store (its shape appended to in_shapes);
    returns the active Scalar or Array that stands for it."""
    if type(x) is float or type(x) is int:
        slot = store.input(float(x))
        in_shapes.append(())
        return Scalar(store, slot)
    return _mark_array(store, in_shapes, as_input(x, "tape.input"))


def _mark_array(store, in_shapes, a):
    """mark_input for a value already converted by as_input."""
    if a.ndim == 0:
        slot = store.input(float(a))
        in_shapes.append(())
        return Scalar(store, slot)
    flat = np.ascontiguousarray(a.ravel())
    first = store.input_n(flat) if flat.size else store.n_ops
    in_shapes.append(a.shape)
    return fresh(store, first, a.shape)


def mark_output(store, out_shapes, y):
    """Record y (active, constant, or a list of them) as the next output of store."""
    if type(y) is Scalar and y._s is store:   # the common end of a loss function
        store.output_n(np.array([y._i], dtype=np.int32))
        out_shapes.append(())
        return
    if y is None or isinstance(y, (str, bytes, dict)):
        raise TypeError(f"tape.output takes numbers or arrays, not {type(y).__name__}")
    slots = to_slots(store, y)
    store.output_n(np.ascontiguousarray(slots.ravel(), dtype=np.int32))
    out_shapes.append(slots.shape)


def seal(store, shrink=True):
    """Recording is over: reading .value records no guard; spare capacity goes back
    (shrink) unless the store is swept and dropped at once (the transforms): a
    dropped tape's allocations serve the next recording (backend_c's spare
    tapes), which a shrunk one would grow again, copying and faulting in pages."""
    store._sealed = True
    if shrink and not store.closed:
        store.shrink()


# ---- pytrees (pyad.pytree): arguments and results are trees of leaves ----


def mark_input_tree(store, in_shapes, x):
    """Record each leaf of the pytree x as the next inputs of store: (the same tree
    of active values, its PyTreeSpec, the dtype each leaf's results keep)."""
    if x is None:  # an empty node inside a pytree; alone, nothing to record
        raise TypeError("tape.input takes a real number, an array or a pytree of them, "
                        "not None")
    if type(x) is np.ndarray and x.dtype is _F64:  # the usual single float64 array
        return _mark_array(store, in_shapes, x), pytree.leaf_spec(), [None]
    leaves, spec = pytree.flatten_fast(x)
    # all converted (and so checked) first: a refused leaf records nothing
    converted = [v if type(v) is float or type(v) is int else as_input(v, "tape.input")
                 for v in leaves]
    active = [mark_input(store, in_shapes, v) if type(v) is float or type(v) is int
              else _mark_array(store, in_shapes, v) for v in converted]
    dtypes = [pytree.leaf_dtype(v) for v in leaves]
    if spec is pytree.leaf_spec():
        return active[0], spec, dtypes
    return pytree.unflatten(spec, active), spec, dtypes


def mark_output_tree(store, out_shapes, y, what="tape.output takes"):
    """Record each leaf of the pytree y as the next outputs of store; its PyTreeSpec."""
    if y is None:
        raise TypeError(f"{what} numbers or arrays (or pytrees of them), not None")
    leaves, spec = ([y], pytree.leaf_spec()) if is_active(y) else pytree.flatten(y)
    if not leaves:
        raise TypeError(f"{what} numbers or arrays (or pytrees of them); "
                        f"{pytree.describe(spec)} has none")
    for leaf in leaves:
        if is_active(leaf) or isinstance(leaf, (numbers.Real, np.ndarray)):
            continue
        raise TypeError(f"{what} numbers or arrays (or pytrees of them); the output "
                        f"{pytree.describe(spec)} has a leaf of type {type(leaf).__name__}")
    for leaf in leaves:
        mark_output(store, out_shapes, leaf)
    return spec


class Recording:
    """A function recorded at a point: the store; shapes and PyTreeSpecs of its
    differentiated arguments (in_args, one spec per argument) and of its output
    (out_args, one spec); the dtype each input leaf's results keep; and aux, the
    plain values of the auxiliary output (has_aux=True)."""

    __slots__ = ("store", "in_shapes", "out_shapes", "in_args", "out_args", "in_dtypes",
                 "aux")

    def __init__(self, store, in_shapes, out_shapes, in_args, out_args, in_dtypes, aux):
        self.store, self.in_shapes, self.out_shapes = store, in_shapes, out_shapes
        self.in_args, self.out_args, self.in_dtypes = in_args, out_args, in_dtypes
        self.aux = aux


def record_tree(f, args, argnums, backend, kwargs=None, has_aux=False, shrink=True):
    """A Recording of f(*args, **kwargs) with the leaves of args[i], i in argnums,
    as inputs (the other arguments and kwargs pass through as constants);
    shrink=False for a recording swept once and dropped (see seal)."""
    store, in_shapes, out_shapes = new_store(backend), [], []
    in_args, in_dtypes, aux = [], [], None
    try:
        call_args = list(args)
        for i in argnums:
            call_args[i], spec, dtypes = mark_input_tree(store, in_shapes, args[i])
            in_args.append(spec)
            in_dtypes += dtypes
        out = f(*call_args, **(kwargs or {}))
        if has_aux:
            out, aux = _split_aux(out)
        out_args = [mark_output_tree(store, out_shapes, out,
                                     "the differentiated function must return")]
    finally:
        seal(store, shrink)
    if has_aux:
        aux = plain_values(aux, pytree.common(in_dtypes))
    return Recording(store, in_shapes, out_shapes, in_args, out_args, in_dtypes, aux)


def _split_aux(out):
    if type(out) is not tuple and type(out) is not list or len(out) != 2:
        raise TypeError("with has_aux=True the function must return a pair (output, aux); "
                        f"it returned {pytree.describe_value(out)}")
    return out[0], out[1]


def plain_values(tree, dtype):
    """tree with each active leaf replaced by its value (in dtype, the inputs'):
    what has_aux returns, as JAX returns concrete values. Read after recording,
    so no guard is recorded."""
    leaves, spec = pytree.flatten(tree)
    return pytree.unflatten(spec, [pytree.cast(leaf.value, dtype) if is_active(leaf) else leaf
                                   for leaf in leaves])


def record(f, args, argnums, backend):
    """(store, input shapes, output shapes) of f(*args) recorded with the leaves of
    args[i] as inputs for i in argnums."""
    r = record_tree(f, args, argnums, backend)
    return r.store, r.in_shapes, r.out_shapes


def leaf_function(f, in_args, out_args):
    """f as a function of its input leaves returning its output leaves: what a
    tape re-records where replay takes another branch. An output of another
    structure than the recorded one raises BranchError."""
    in_spec = pytree.tuple_spec(in_args)
    out_spec = pytree.tuple_spec(out_args)

    def f_of_leaves(*leaves):
        out = f(*pytree.unflatten(in_spec, leaves))
        out_leaves, spec = pytree.flatten((out,))
        if spec != out_spec:
            raise BranchError(
                f"re-recording (a Python branch went the other way) gave an output of "
                f"structure {pytree.describe(spec)}; the tape was recorded with "
                f"{pytree.describe(out_spec)}. A function replayed by one tape must "
                "return the same structure on every branch (use pyad.where to select "
                "between branches)")
        return out_leaves
    return f_of_leaves
