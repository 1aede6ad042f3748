"""Pytrees and result dtypes: what the transforms and the Tape do with nested
arguments and results.

Arguments and results may be nested tuples, lists, dicts and namedtuples of
arrays and numbers (optree walks them; None is an empty node, as in JAX). A tape
records the leaves, in optree's order, as its inputs and outputs, and keeps the
structure (a PyTreeSpec of the tuple of arguments, and of the tuple of outputs)
to give results back in it.

Results keep the input dtype: every sweep computes in float64, and a leaf that
came in as float32 (or float16) goes back as float32. Python numbers are weakly
typed as in JAX (a float32 array times 2.0 stays float32); integer inputs are
converted to float64, pyad's documented convention."""
import numpy as np
import optree

# A leaf given as a Python number: it does not decide the dtype of outputs.
WEAK = "weak"

_F64 = np.dtype(np.float64)


def flatten(tree):
    """(leaves, PyTreeSpec) of tree; None is an empty node, as in JAX."""
    return optree.tree_flatten(tree, none_is_leaf=False)


def structure(tree):
    return optree.tree_structure(tree, none_is_leaf=False)


def unflatten(spec, leaves):
    return optree.tree_unflatten(spec, leaves)


_LEAF = optree.tree_structure(0.0, none_is_leaf=False)


def leaf_spec():
    return _LEAF  # specs are immutable: one serves every leaf


def flatten_fast(tree):
    """flatten, without optree's walk for the common single leaf (an ndarray or a
    Python number)."""
    t = type(tree)
    if t is np.ndarray or t is float or t is int:
        return [tree], _LEAF
    return flatten(tree)


def tuple_spec(children):
    """The spec of a tuple whose elements have the given specs."""
    return optree.treespec_tuple(list(children), none_is_leaf=False)


def describe(spec):
    """A spec as people read it: (*, {'b': *, 'w': *}) with * for each leaf."""
    text = str(spec)
    return text[len("PyTreeSpec("):-1] if text.startswith("PyTreeSpec(") else text


def describe_value(tree):
    try:
        return describe(structure(tree))
    except Exception:  # a value optree cannot walk: name its type
        return type(tree).__name__


def leaf_names(spec):
    """For each leaf of the spec of a tuple of arguments, a name such as
    "argument 0['w'][1]" (used in error messages)."""
    names = []
    for path in spec.paths():
        if not path:
            names.append("the argument")
            continue
        names.append(f"argument {path[0]}" + "".join(f"[{k!r}]" for k in path[1:]))
    return names


def match(spec, args):
    """The subtrees of args at spec's leaves, or None when args has another structure.
    A subtree stands for one leaf: a list of numbers where an array was recorded is
    that array, as numpy reads it."""
    try:
        return spec.flatten_up_to(args)
    except (ValueError, TypeError):
        return None


def is_node(x):
    """Whether x is a pytree container with leaves (not a leaf, not None)."""
    return x is not None and not structure(x).is_leaf() and structure(x).num_leaves > 0


# ---- dtypes ----


def leaf_dtype(x):
    """The dtype the results for leaf x keep: WEAK for a Python number, a float32 or
    float16 dtype for such values, else None (float64; ints are converted)."""
    if type(x) is float or type(x) is int:
        return WEAK
    dt = getattr(x, "dtype", None)
    if not isinstance(dt, np.dtype):
        try:
            dt = np.asarray(x).dtype
        except Exception:
            return None  # as_input names the problem
    return dt if dt.kind == "f" and dt.itemsize < 8 else None


def common(dtypes):
    """The dtype of a result computed from values of these dtypes: float64 (None)
    as soon as one is float64 or an int, else their numpy promotion (WEAK ignored)."""
    strong = [d for d in dtypes if d is not WEAK]
    if not strong or any(d is None for d in strong):
        return None
    return np.result_type(*strong)


def cast(value, dtype):
    """value (a float, or a float64 array) in the dtype its input had."""
    if dtype is None or dtype is WEAK:
        return value
    if isinstance(value, float):
        return dtype.type(value)
    return np.asarray(value).astype(dtype)


def cast_all(values, dtypes):
    if all(d is None or d is WEAK for d in dtypes):
        return list(values)
    return [cast(v, d) for v, d in zip(values, dtypes)]
