"""numpy's protocols on active values: which ufuncs and array functions pyad
records, and how. Anything not listed raises TypeError naming the function, so
active values never silently turn into object arrays or plain floats."""
import importlib
import inspect
import sys

import numpy as np

from . import _linalg_lu
from . import array as A
from . import _linalg_eig, _linalg_sym, ops
from .scalar import Scalar, binary, provide_handlers

C = ops.CODE


def resolve(dotted, import_module=True):
    """The function a registry row names ("numpy.sin", "scipy.special.erf"), or
    None where its module is not installed (scipy is optional), or, with
    import_module=False, not imported yet."""
    module, _, attr = dotted.rpartition(".")
    if not import_module and module not in sys.modules:
        return None
    try:
        return getattr(importlib.import_module(module), attr, None)
    except ImportError:
        return None


# The ufuncs recorded as one row each, read from the registry (Op.numpy).
UNARY_UFUNCS = {}
BINARY_UFUNCS = {}
#: row name -> the function it computes on plain numbers (pyad.sin(2.0))
FUNCTION_OF_ROW = {}
# Rows whose function is not found yet: a scipy function is looked up once
# scipy is imported (pyad does not import it: it is optional, and slow to import).
_UNRESOLVED = {op.name: op for op in ops.OPS.values()
               if op.numpy and op.kind in ("unary", "binary", "compare")}
# numpy ufuncs that compute what another, registry-named ufunc computes on float64.
_SAME_AS = {np.fabs: np.absolute, np.float_power: np.power}


def _resolve_rows(import_modules):
    """Enter the rows whose function can now be found into the tables; True if any."""
    found = False
    for name, op in list(_UNRESOLVED.items()):
        f = resolve(op.numpy, import_modules or op.numpy.startswith("numpy."))
        if f is None or _UNRESOLVED.pop(name, None) is None:
            continue
        table = UNARY_UFUNCS if op.kind == "unary" else BINARY_UFUNCS
        table[f] = name
        FUNCTION_OF_ROW[name] = f
        for alias, same in _SAME_AS.items():
            if same is f:
                table[alias] = name
        found = True
    return found


_resolve_rows(import_modules=False)

REDUCING_UFUNCS = {np.add: "add", np.multiply: "mul", np.maximum: "maximum",
                   np.minimum: "minimum"}


def unary(name, x):
    """Apply a unary primitive to a float, ndarray or active value."""
    if isinstance(x, Scalar):
        return x._unary(C[name])
    if isinstance(x, A.Array):
        return A.elementwise_unary(x, C[name])
    if isinstance(x, (list, tuple)) and A.store_of(x) is not None:
        store = A.store_of(x)
        return A.elementwise_unary(A.wrap(store, A.to_slots(store, x)), C[name])
    return _on_constants(name, A.as_constant(x))


def binary_op(name, x, y):
    """Apply a binary primitive to any mix of floats, ndarrays and active values."""
    if isinstance(x, Scalar) or isinstance(y, Scalar):
        r = binary(x, y, name)
        if r is not NotImplemented:
            return r
    if A.is_active(x) or A.is_active(y) or A.store_of(x, y) is not None:
        return A.elementwise_binary(x, y, name)
    return _on_constants(name, A.as_constant(x), A.as_constant(y))


def _on_constants(name, *args):
    """Row `name` applied to plain numbers: the numpy/scipy function it implements."""
    f = FUNCTION_OF_ROW.get(name)
    if f is None and name in _UNRESOLVED:
        _resolve_rows(import_modules=True)
        f = FUNCTION_OF_ROW.get(name)
    if f is None:
        dotted = (_UNRESOLVED.get(name) or ops.OPS[name]).numpy
        raise TypeError(f"pyad.{name} on plain numbers needs {dotted}, which is not installed"
                        if dotted else f"the primitive {name} implements no numpy function")
    return f(*args)[()]


# ---- naming what the user called ----

# Where pyad records the same mathematics another way.
ALTERNATIVES = {
    "scipy.special.logsumexp": "pyad.logsumexp(x, axis=None, keepdims=False)",
    "scipy.special.log_expit": "-np.logaddexp(0.0, -x)",
    "scipy.special.softmax": "pyad.softmax(x, axis=-1)",
    "scipy.special.log_softmax": "pyad.log_softmax(x, axis=-1)",
    "scipy.special.psi": "scipy.special.digamma (the same function)",
    "scipy.linalg.norm": "np.linalg.norm",
    "numpy.linalg.vector_norm": "np.linalg.norm(x, ord, axis)",
    "numpy.linalg.matrix_norm": "np.linalg.norm(x, ord, axis=(-2, -1))",
    "numpy.average": "np.sum(w * x) / np.sum(w) for constant weights w",
    "numpy.nansum": "np.sum(pyad.where(x == x, x, 0.0))",
    "numpy.tensordot": "np.einsum with two operands",
    "numpy.vdot": "np.dot(a.ravel(), b.ravel())",
    "scipy.linalg.solve_triangular": "pyad.linalg.solve_triangular(a, b, trans=0, lower=False, "
                                     "unit_diagonal=False)",
    "scipy.linalg.cho_solve": "pyad.linalg.cho_solve((c, lower), b)",
    "scipy.linalg.cho_factor": "pyad.linalg.cho_factor(a, lower=False)",
    "scipy.linalg.cholesky": "np.linalg.cholesky(a) (the lower factor; scipy's default upper "
                             "factor is np.linalg.cholesky(a, upper=True))",
}


def _is_public(path):
    return not any(part.startswith("_") for part in path.split("."))


def public_name(obj, module=None, name=None):
    """The dotted name a user calls obj by (numpy.linalg.inv, scipy.special.erf):
    the shortest public module that holds it, else its own module, else None."""
    name = name or getattr(obj, "__name__", None)
    if name is None:
        return None
    own = module or getattr(obj, "__module__", None) or ""
    candidates = [own] if own else []
    candidates += ["numpy", "numpy.linalg", "numpy.fft", "scipy.special", "scipy.linalg"]
    parts = own.split(".")
    candidates += [".".join(parts[:n]) for n in range(1, len(parts))]
    public = [c for c in candidates if c and _is_public(c)]
    for path in sorted(dict.fromkeys(public), key=len):
        mod = sys.modules.get(path)
        if mod is not None and getattr(mod, name, None) is obj:
            return f"{path}.{name}"
    return f"{own}.{name}" if own else name


def _with_alternative(name, message):
    alt = ALTERNATIVES.get(name)
    return f"{message}; instead: {alt}" if alt else message


MASKED_HINT = A.MASKED_HINT


def unsupported(name):
    """The TypeError for a numpy/scipy function pyad does not record."""
    if name is not None and name.startswith("numpy.ma."):
        return TypeError(f"{name}: {MASKED_HINT}")
    shown = name or "this numpy/scipy function"
    return TypeError(_with_alternative(name, f"pyad does not support {shown} on active values "
                                       "(see the numpy coverage table in the README)"))


def converting_library_function():
    """The public name of the numpy/scipy function, called from user code,
    that is turning an active value into a plain array (None if not found).

    Functions that are not numpy-dispatched (scipy.linalg.solve,
    scipy.special.logsumexp) just call np.asarray; the frames between the
    user's call and __array__ tell which one it was."""
    frame = sys._getframe(1)
    library = []
    while frame is not None:
        top = frame.f_globals.get("__name__", "").split(".")[0]
        if top in ("numpy", "scipy"):
            library.append(frame)
        elif top != "pyad" and library:
            break
        frame = frame.f_back
    for f in reversed(library):            # outermost first: what the user called
        name = _function_of_frame(f)
        if name is not None:
            return name
    return None


def _function_of_frame(frame):
    module = frame.f_globals.get("__name__", "")
    code = frame.f_code
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        path = ".".join(parts[:n])
        if not _is_public(path):
            continue
        obj = getattr(sys.modules.get(path), code.co_name, None)
        try:
            target = inspect.unwrap(obj) if callable(obj) else None
        except ValueError:
            target = None
        if getattr(target, "__code__", None) is code:
            return f"{path}.{code.co_name}"
    return _wrapped_in_frame(frame)


def _wrapped_in_frame(frame):
    """The public function a decorator's wrapper frame stands for: scipy's
    batching wrapper (scipy.linalg.solve_triangular in scipy >= 1.15) converts
    the arguments itself, before the function it wraps runs; the wrapped
    function is one of the frame's variables."""
    for value in list(frame.f_locals.values()):
        if not inspect.isfunction(value):
            continue
        parts = getattr(value, "__module__", "").split(".")
        for n in range(len(parts), 0, -1):
            path = ".".join(parts[:n])
            obj = getattr(sys.modules.get(path), value.__name__, None) if _is_public(path) else None
            try:
                if obj is not None and obj is not value and inspect.unwrap(obj) is value:
                    return f"{path}.{value.__name__}"
            except ValueError:
                continue
    return None


def _unsupported_ufunc(ufunc, method):
    name = public_name(ufunc)
    what = name + ("" if method == "__call__" else "." + method)
    return TypeError(_with_alternative(name, f"pyad does not support {what} on active values "
                                       "(see the numpy coverage table in the README)"))


_ARRAY_OPERANDS = (A.Array, np.ndarray, float)


def array_ufunc(ufunc, method, inputs, kwargs):
    if method == "__call__" and not kwargs:
        # the usual call, straight to its row: an active array with another, a
        # float64 ndarray or a float (binary_op's other cases: Scalars, lists)
        x = inputs[0]
        if len(inputs) == 1:
            name = UNARY_UFUNCS.get(ufunc)
            if name is not None and type(x) is A.Array:
                return A.elementwise_unary(x, C[name])
        else:
            name = BINARY_UFUNCS.get(ufunc)
            y = inputs[1]
            if name is not None and (type(x) is A.Array or type(y) is A.Array) \
                    and type(x) in _ARRAY_OPERANDS and type(y) in _ARRAY_OPERANDS:
                return A.elementwise_binary(x, y, name)
    if kwargs:
        _check_ufunc_kwargs(ufunc, kwargs)
    if (ufunc not in UNARY_UFUNCS and ufunc not in BINARY_UFUNCS and ufunc is not np.matmul
            and _UNRESOLVED):
        _resolve_rows(import_modules=False)   # a scipy ufunc, scipy imported since
    if method == "__call__":
        if ufunc in UNARY_UFUNCS:
            return unary(UNARY_UFUNCS[ufunc], inputs[0])
        if ufunc in BINARY_UFUNCS:
            return binary_op(BINARY_UFUNCS[ufunc], inputs[0], inputs[1])
        if ufunc is np.positive:   # a copy, as in numpy: in-place writes must not reach x
            return _copy(inputs[0])
        if ufunc is np.matmul:  # a ufunc since numpy 2
            return A.matmul(inputs[0], inputs[1])
        if ufunc in COMPOSED_UFUNCS:
            return COMPOSED_UFUNCS[ufunc](*inputs)
    elif method == "reduce" and ufunc in REDUCING_UFUNCS:
        return A.reduce(_active(inputs[0]), REDUCING_UFUNCS[ufunc], kwargs.get("axis", 0),
                        kwargs.get("keepdims", False))
    elif method == "accumulate" and ufunc in (np.add, np.multiply):
        return A.cumulative(_active(inputs[0]), REDUCING_UFUNCS[ufunc], kwargs.get("axis", 0))
    elif method == "outer" and ufunc in BINARY_UFUNCS:
        x, y = inputs
        return binary_op(BINARY_UFUNCS[ufunc], _expand(x, np.ndim(y)), y)
    raise _unsupported_ufunc(ufunc, method)


def _check_ufunc_kwargs(ufunc, kwargs):
    """Refuse the keyword arguments of a ufunc call that pyad cannot honour.
    (The ufunc's public name is looked up only for a message: it costs more
    than recording a small operation.)"""
    if kwargs.get("out") is not None:
        raise TypeError(f"{public_name(ufunc)}: pyad cannot write into an out= array; "
                        "use the returned value")
    extra = set(kwargs) - {"out", "axis", "keepdims", "dtype"}
    if extra:
        raise TypeError(f"{public_name(ufunc)}: pyad does not support the arguments "
                        f"{sorted(extra)}")
    if kwargs.get("dtype") is not None:
        A.check_dtype(public_name(ufunc), kwargs["dtype"])


def _copy(x):
    """A new active array over the same slots, as numpy returns a new array."""
    return x.copy() if isinstance(x, A.Array) else x


def _expand(x, extra_dims):
    """x with `extra_dims` trailing axes of length 1 (for ufunc.outer)."""
    if A.is_active(x):
        return A.wrap(x._s, A.slots_of(x).reshape(np.shape(A.slots_of(x)) + (1,) * extra_dims))
    return np.reshape(x, np.shape(x) + (1,) * extra_dims)


def _active(x):
    """x as an active value (constant lists of active elements stacked)."""
    if A.is_active(x):
        return x
    store = A.store_of(x)
    if store is None:
        raise TypeError("expected an active pyad value")
    return A.wrap(store, A.to_slots(store, x))


COMPOSED_UFUNCS = {
    np.logical_not: lambda x: binary_op("eq", x, 0.0),
    np.logical_and: lambda x, y: binary_op("ne", x, 0.0) & binary_op("ne", y, 0.0),
    np.logical_or: lambda x, y: binary_op("ne", x, 0.0) | binary_op("ne", y, 0.0),
    np.bitwise_and: lambda x, y: binary_op("mul", x, y),
    np.bitwise_or: lambda x, y: binary_op("maximum", x, y),
}


# ---- array functions ----

def _refuse(what, out=None, **kwargs):
    """Arguments pyad does not implement raise rather than being ignored."""
    if out is not None:
        raise TypeError(f"numpy.{what}: pyad cannot write into an out= array; use the "
                        "returned value")
    if all(v is None for v in kwargs.values()):  # the usual call
        return
    given = sorted(k for k, v in kwargs.items() if v is not None)
    if given:
        raise TypeError(f"numpy.{what}: pyad does not support the arguments {given} on "
                        "active values")


def _reduction(name, what):
    # numpy's signatures: sum/prod take dtype third, max/min take out third.
    if name in ("maximum", "minimum"):
        def f(a, axis=None, out=None, keepdims=False, initial=None, where=None):
            _refuse(what, out, initial=initial, where=where)
            return A.reduce(_active(a), name, axis, keepdims)
    else:
        def f(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
            _refuse(what, out, initial=initial, where=where)
            A.check_dtype(f"numpy.{what}", dtype)
            return A.reduce(_active(a), name, axis, keepdims)
    return f


def _mean(a, axis=None, dtype=None, out=None, keepdims=False, where=None):
    _refuse("mean", out, where=where)
    A.check_dtype("numpy.mean", dtype)
    return A.mean(_active(a), axis, keepdims)


def _cumulative(name, what):
    def f(a, axis=None, dtype=None, out=None):
        _refuse(what, out)
        A.check_dtype(f"numpy.{what}", dtype)
        return A.cumulative(_active(a), name, axis)
    return f


def _concatenate(xs, axis=0, out=None, dtype=None, casting=None):
    _refuse("concatenate", out)
    return A.concatenate(xs, axis)


def dot(a, b):
    if np.ndim(_shape_source(a)) == 0 or np.ndim(_shape_source(b)) == 0:
        return binary_op("mul", a, b)
    if np.ndim(_shape_source(a)) > 2 or np.ndim(_shape_source(b)) > 2:
        raise TypeError("pyad supports numpy.dot for operands of at most 2 dimensions; "
                        "use numpy.matmul or numpy.einsum for stacks")
    return A.matmul(a, b)


def _shape_source(x):
    return A.slots_of(x) if A.is_active(x) else np.asarray(x)


def inner(a, b):
    """numpy.inner: a sum over the last axes; shape a.shape[:-1] + b.shape[:-1].
    One product row: a (M, k) @ b (N, k)ᵀ."""
    na, nb = np.ndim(_shape_source(a)), np.ndim(_shape_source(b))
    if na == 0 or nb == 0:
        return binary_op("mul", a, b)
    return tensordot(a, b, ([na - 1], [nb - 1]))


def _transpose(x, perm):
    if A.is_active(x):
        return A.wrap(x._s, A.slots_of(x).transpose(perm))
    return np.transpose(x, perm)


def _axes_pair(axes, na, nb):
    """tensordot's axes argument as two lists of axes of a and of b."""
    if isinstance(axes, (int, np.integer)):
        if axes < 0 or axes > min(na, nb):
            raise ValueError(f"tensordot: axes={axes} is out of range for operands of "
                             f"{na} and {nb} dimensions")
        return list(range(na - axes, na)), list(range(axes))
    try:
        xa, xb = axes
    except (TypeError, ValueError):
        raise TypeError("tensordot: axes must be an integer or a pair of axis lists") from None
    xa = [xa] if isinstance(xa, (int, np.integer)) else list(xa)
    xb = [xb] if isinstance(xb, (int, np.integer)) else list(xb)
    if len(xa) != len(xb):
        raise ValueError("tensordot: shape-mismatch for sum (axis lists of different lengths)")
    return [int(i) % na if na else int(i) for i in xa], [int(i) % nb if nb else int(i) for i in xb]


def tensordot(a, b, axes=2):
    """numpy.tensordot as one product row: the summed axes of a moved last and
    of b first (transposes and reshapes of the slot indices record nothing)."""
    sa, sb = np.shape(_shape_source(a)), np.shape(_shape_source(b))
    xa, xb = _axes_pair(axes, len(sa), len(sb))
    if any(sa[i] != sb[j] for i, j in zip(xa, xb)):
        raise ValueError("tensordot: shape-mismatch for sum")
    free_a = [i for i in range(len(sa)) if i not in xa]
    free_b = [j for j in range(len(sb)) if j not in xb]
    K = int(np.prod([sa[i] for i in xa], dtype=np.int64))
    left = _reshape(_transpose(a, free_a + xa), (-1, K) if K else (int(np.prod([sa[i] for i in free_a], dtype=np.int64)), 0))
    right = _reshape(_transpose(b, xb + free_b), (K, -1) if K else (0, int(np.prod([sb[j] for j in free_b], dtype=np.int64))))
    out = A.matmul(left, right)
    return _reshape(out, tuple(sa[i] for i in free_a) + tuple(sb[j] for j in free_b))


def _reshape(x, shape):
    if A.is_active(x):
        return A.wrap(x._s, A.slots_of(x).reshape(shape))
    return np.reshape(x, shape)


def _flat(x):
    return _reshape(x, (-1,)) if A.is_active(x) else np.ravel(x)


def outer(a, b, out=None):
    """numpy.outer as one product row: a (m, 1) @ b (1, n)."""
    _refuse("outer", out)
    a = _active(a) if not A.is_active(a) and A.store_of(a) else a
    b = _active(b) if not A.is_active(b) and A.store_of(b) else b
    return A.matmul(_reshape(_flat(a), (-1, 1)), _reshape(_flat(b), (1, -1)))


def norm(x, ord=None, axis=None, keepdims=False):
    """numpy.linalg.norm, case by case as numpy computes it; the matrix norms
    that need singular values (ord 2, -2, 'nuc') are refused, never replaced."""
    x = _active(x)
    nd = np.ndim(A.slots_of(x))
    if axis is None and (ord is None or (ord in ("f", "fro") and nd == 2)
                         or (_is_number(ord) and ord == 2 and nd == 1)):
        r = unary("sqrt", A.reduce(x * x, "add", None))
        return _reshape(r, (1,) * nd) if keepdims else r
    if axis is None:
        axis = tuple(range(nd))
    elif not isinstance(axis, tuple):
        try:
            axis = (int(axis),)
        except Exception as e:
            raise TypeError("'axis' must be None, an integer or a tuple of integers") from e
    if len(axis) == 1:
        return _vector_norm(x, ord, axis, keepdims)
    if len(axis) == 2:
        return _matrix_norm(x, ord, axis, keepdims, nd)
    raise ValueError("Improper number of dimensions to norm.")


def _is_number(ord):
    return isinstance(ord, (int, float, np.integer, np.floating)) and not isinstance(ord, bool)


def _vector_norm(x, ord, axis, keepdims):
    if ord is not None and not _is_number(ord):
        if isinstance(ord, str):
            raise ValueError(f"Invalid norm order '{ord}' for vectors")
        raise TypeError(f"numpy.linalg.norm: ord must be a number, None or a string, "
                        f"not {type(ord).__name__}")
    if ord is None or ord == 2:
        return unary("sqrt", A.reduce(x * x, "add", axis, keepdims))
    if ord == 1:
        return A.reduce(abs(x), "add", axis, keepdims)
    if ord == np.inf:
        return _max_or_zero(abs(x), axis, keepdims)
    if ord == -np.inf:
        return A.reduce(abs(x), "minimum", axis, keepdims)
    if ord == 0:   # a count of nonzeros: constant almost everywhere, derivative 0
        return A.reduce(binary_op("ne", x, 0.0), "add", axis, keepdims)
    p = float(ord)
    return binary_op("pow", A.reduce(binary_op("pow", abs(x), p), "add", axis, keepdims), 1.0 / p)


def _max_or_zero(x, axis, keepdims):
    """max over axis with numpy's initial=0 (an empty vector has norm 0)."""
    idx = A.slots_of(x)
    axes = A._normalize_axes(axis, idx.ndim)
    if any(idx.shape[d] == 0 for d in axes):
        shape = [1 if d in axes else n for d, n in enumerate(idx.shape)]
        if not keepdims:
            shape = [n for d, n in enumerate(shape) if d not in axes]
        return A.wrap(x._s, A.to_slots(x._s, np.zeros(shape)))
    return A.reduce(x, "maximum", axis, keepdims)


def _extreme(sums, largest, axis):
    return _max_or_zero(sums, axis, False) if largest else A.reduce(sums, "minimum", axis)


def _matrix_norm(x, ord, axis, keepdims, nd):
    row, col = (A._normalize_axes(ax, nd)[0] for ax in axis)
    if row == col:
        raise ValueError("Duplicate axes given.")
    number = _is_number(ord)
    if (number and ord in (2, -2)) or ord == "nuc":
        raise TypeError(f"numpy.linalg.norm: pyad does not support the matrix norm ord={ord!r} "
                        "(it needs singular values, which pyad does not record); supported "
                        "over two axes: ord=None, 'fro', 1, -1, inf, -inf")
    absx = abs(x) if number else None
    if number and ord in (1, -1):
        r = _extreme(A.reduce(absx, "add", row), ord > 0, col - 1 if col > row else col)
    elif number and ord in (np.inf, -np.inf):
        r = _extreme(A.reduce(absx, "add", col), ord > 0, row - 1 if row > col else row)
    elif ord is None or ord in ("fro", "f"):
        r = unary("sqrt", A.reduce(x * x, "add", (row, col)))
    else:
        raise ValueError("Invalid norm order for matrices.")
    if keepdims:
        shape = list(np.shape(A.slots_of(x)))
        shape[row] = shape[col] = 1
        r = _reshape(r, tuple(shape))
    return r


def _structural(fn):
    """An index-only numpy function applied to the slot array."""
    def f(a, *args, **kwargs):
        a = _active(a)
        return A.wrap(a._s, fn(A.slots_of(a), *args, **kwargs), isinstance(a, A.BoolArray))
    f.__name__ = fn.__name__
    return f


def _split(fn):
    def f(a, *args, **kwargs):
        a = _active(a)
        return [A.wrap(a._s, part) for part in fn(A.slots_of(a), *args, **kwargs)]
    return f


def _clip(a, a_min=np._NoValue, a_max=np._NoValue, out=None, *, min=np._NoValue,
          max=np._NoValue, **kwargs):
    # numpy's own rules for the numpy 2 keywords min= / max= against a_min / a_max.
    if a_min is np._NoValue and a_max is np._NoValue:
        a_min = None if min is np._NoValue else min
        a_max = None if max is np._NoValue else max
    elif a_min is np._NoValue:
        raise TypeError("clip() missing 1 required positional argument: 'a_min'")
    elif a_max is np._NoValue:
        raise TypeError("clip() missing 1 required positional argument: 'a_max'")
    elif min is not np._NoValue or max is not np._NoValue:
        raise ValueError("Passing `min` or `max` keyword argument when `a_min` and `a_max` "
                         "are provided is forbidden.")
    _refuse("clip", out, **kwargs)
    r = a
    if a_min is not None:
        r = binary_op("maximum", r, a_min)
    if a_max is not None:
        r = binary_op("minimum", r, a_max)
    return _copy(r) if r is a else r


def _diff(a, n=1, axis=-1):
    a = _active(a)
    if np.ndim(A.slots_of(a)) == 0:
        raise ValueError("diff requires input that is at least one dimensional")
    for _ in range(n):
        idx = A.slots_of(a)
        ax = axis % idx.ndim
        hi = [slice(None)] * idx.ndim
        lo = [slice(None)] * idx.ndim
        hi[ax], lo[ax] = slice(1, None), slice(None, -1)
        a = a[tuple(hi)] - a[tuple(lo)]
    return a


def _einsum(subscripts, *operands, **kwargs):
    """Two-operand einsum by broadcasting and summing (no optimization)."""
    if kwargs or len(operands) != 2 or "->" not in subscripts or "..." in subscripts:
        raise TypeError("pyad supports numpy.einsum for two operands with an explicit '->' "
                        "output and no ellipsis")
    ins, out = subscripts.replace(" ", "").split("->")
    sa, sb = ins.split(",")
    letters = list(dict.fromkeys(sa + sb))
    x, y = operands
    as_product = _einsum_as_product(sa, sb, out, x, y)
    if as_product is not None:
        return as_product

    def aligned(v, s):
        if len(set(s)) != len(s):
            raise TypeError("pyad's einsum does not support repeated indices within one operand")
        perm = sorted(range(len(s)), key=lambda i: letters.index(s[i]))
        shape_src = _shape_source(v)
        vt = (A.wrap(v._s, A.slots_of(v).transpose(perm)) if A.is_active(v)
              else np.transpose(shape_src, perm))
        present = [s[i] for i in perm]
        shape = [shape_src.shape[s.index(ch)] if ch in present else 1 for ch in letters]
        return vt.reshape(shape) if A.is_active(vt) else np.reshape(vt, shape)

    prod = binary_op("mul", aligned(x, sa), aligned(y, sb))
    summed = tuple(i for i, ch in enumerate(letters) if ch not in out)
    r = A.reduce(_active(prod), "add", summed) if summed else prod
    kept = [ch for ch in letters if ch in out]
    perm = [kept.index(ch) for ch in out]
    if A.is_active(r):
        return A.wrap(r._s, A.slots_of(r).transpose(perm))
    return np.transpose(r, perm)


def _einsum_as_product(sa, sb, out, x, y):
    """A two-operand einsum that is a (stack of) matrix product(s): batch letters
    in both operands and the output, summed letters in both operands only, free
    letters in one operand and the output. Becomes transposes and reshapes of the
    slot indices around A.matmul; None for other forms (repeated or one-sided
    summed letters, sizes that broadcast), which keep the general route."""
    if len(set(sa)) != len(sa) or len(set(sb)) != len(sb) or len(set(out)) != len(out):
        return None
    if any(ch not in sa + sb for ch in out) or any((ch in sa) != (ch in sb) and ch not in out
                                                     for ch in sa + sb):
        return None
    shape_a, shape_b = np.shape(_shape_source(x)), np.shape(_shape_source(y))
    if len(shape_a) != len(sa) or len(shape_b) != len(sb):
        return None
    size = {}
    for s, shape in ((sa, shape_a), (sb, shape_b)):
        for ch, n in zip(s, shape):
            if size.setdefault(ch, n) != n:
                return None  # mismatched or broadcast sizes: the general route says why
    batch = [ch for ch in sa if ch in sb and ch in out]
    summed = [ch for ch in sa if ch in sb and ch not in out]
    free_a = [ch for ch in sa if ch not in sb]
    free_b = [ch for ch in sb if ch not in sa]
    dims = lambda letters: tuple(size[ch] for ch in letters)
    prod = lambda letters: int(np.prod(dims(letters), dtype=np.int64))
    left = _reshape(_transpose(x, [sa.index(ch) for ch in batch + free_a + summed]),
                    dims(batch) + (prod(free_a), prod(summed)))
    right = _reshape(_transpose(y, [sb.index(ch) for ch in batch + summed + free_b]),
                     dims(batch) + (prod(summed), prod(free_b)))
    r = _reshape(A.matmul(left, right), dims(batch + free_a + free_b))
    order = batch + free_a + free_b
    return _transpose(r, [order.index(ch) for ch in out])


def _var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None,
         mean=None, correction=None):
    """numpy.var: the mean squared deviation from the mean, divided by n - ddof
    (numpy's `correction` is another name for ddof). n - ddof <= 0 divides by
    zero as numpy does (inf or NaN, no exception)."""
    _refuse("var", out, where=where, mean=mean)
    A.check_dtype("numpy.var", dtype)
    if correction is not None:
        if ddof != 0:
            raise ValueError("ddof and correction can't be provided simultaneously.")
        ddof = correction
    x = _active(a)
    axes = A._normalize_axes(axis, np.ndim(A.slots_of(x)))
    n = int(np.prod([np.shape(A.slots_of(x))[d] for d in axes], dtype=np.int64))
    deviation = x - A.mean(x, axis, keepdims=True)
    return A.reduce(deviation * deviation, "add", axis, keepdims) / float(max(n - ddof, 0))


def _std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None,
         mean=None, correction=None):
    """numpy.std: sqrt(var). Where every element is equal the derivative is NaN
    (sqrt'(0) = inf meets a zero deviation), as in JAX."""
    return unary("sqrt", _var(a, axis, dtype, out, ddof, keepdims, where=where, mean=mean,
                              correction=correction))


def _diag(v, k=0):
    """numpy.diag: a 2-D operand's k-th diagonal (a copy, as numpy's is not a
    view to write through), or the square matrix with a 1-D operand on its k-th
    diagonal and constant zeros elsewhere (one constant slot, read everywhere)."""
    x = _active(v)
    idx = A.slots_of(x)
    if idx.ndim == 2:
        return A.wrap(x._s, np.diagonal(idx, k).copy())
    if idx.ndim != 1:
        raise ValueError("Input must be 1- or 2-d.")
    position = np.diag(np.arange(1, idx.size + 1), k)       # 1 + the element, 0 off it
    out = np.full(position.shape, A.to_slots(x._s, 0.0), dtype=idx.dtype)
    on = position > 0
    out[on] = idx[position[on] - 1]
    return A.wrap(x._s, out)


def _trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    _refuse("trace", out)
    A.check_dtype("numpy.trace", dtype)
    x = _active(a)
    return A.reduce(A.wrap(x._s, np.diagonal(A.slots_of(x), offset, axis1, axis2)), "add", -1)


def _sort(a, axis=-1, kind=None, order=None, *, stable=None):
    """numpy.sort as a gather by the order of the recorded values: each sorted
    element's derivative goes to the element it came from (JAX's sort).

    The order is a fact of the recording point, so it is guarded: one guard on
    "each sorted element is <= the next, or the next is NaN" (numpy puts NaNs
    last). Replay at a point where the order differs re-records, or raises
    BranchError when the tape cannot re-record; it never returns a wrongly
    ordered result."""
    _refuse("sort", None, order=order)
    x = _active(a)
    idx = A.slots_of(x)
    if axis is None:
        idx, axis = idx.ravel(), -1
    values = x._s.values(np.ascontiguousarray(idx.ravel())).reshape(idx.shape)
    extra = {} if stable is None else {"stable": stable}
    order_ = np.argsort(values, axis=axis, kind=kind, **extra)
    result = A.wrap(x._s, np.take_along_axis(idx, order_, axis=axis))
    last = np.moveaxis(A.slots_of(result), axis, -1)
    if last.shape[-1] > 1:
        lo, hi = A.wrap(x._s, last[..., :-1]), A.wrap(x._s, last[..., 1:])
        in_order = (hi >= lo) | (hi != hi)
        bool(in_order.all())   # records the guard (true here: argsort made the order)
    return result


FUNCTIONS = {
    np.var: _var, np.std: _std, np.diag: _diag, np.sort: _sort,
    np.sum: _reduction("add", "sum"), np.prod: _reduction("mul", "prod"),
    np.max: _reduction("maximum", "max"), np.min: _reduction("minimum", "min"),
    np.amax: _reduction("maximum", "amax"), np.amin: _reduction("minimum", "amin"),
    np.mean: _mean,
    np.cumsum: _cumulative("add", "cumsum"), np.cumprod: _cumulative("mul", "cumprod"),
    np.dot: dot, np.matmul: lambda a, b, **kw: A.matmul(a, b), np.inner: inner,
    np.outer: outer, np.tensordot: tensordot, np.einsum: _einsum, np.linalg.norm: norm,
    np.where: lambda c, a=None, b=None: A.where(c, a, b) if a is not None else _no("where with one argument"),
    np.concatenate: _concatenate,
    np.stack: lambda xs, axis=0, **kw: A.stack_values(xs, axis),
    np.hstack: lambda xs, **kw: A.hstack(xs), np.vstack: lambda xs, **kw: A.vstack(xs),
    np.split: _split(np.split), np.array_split: _split(np.array_split),
    np.reshape: _structural(np.reshape), np.ravel: _structural(np.ravel),
    np.transpose: _structural(np.transpose), np.swapaxes: _structural(np.swapaxes),
    np.moveaxis: _structural(np.moveaxis), np.flip: _structural(np.flip),
    np.fliplr: _structural(np.fliplr), np.flipud: _structural(np.flipud),
    np.broadcast_to: _structural(np.broadcast_to), np.expand_dims: _structural(np.expand_dims),
    np.squeeze: _structural(np.squeeze), np.atleast_1d: _structural(np.atleast_1d),
    np.atleast_2d: _structural(np.atleast_2d), np.diagonal: _structural(np.diagonal),
    np.roll: _structural(np.roll), np.tile: _structural(np.tile),
    np.repeat: _structural(np.repeat), np.take: _structural(np.take),
    np.shape: lambda a: np.shape(A.slots_of(_active(a))),
    np.ndim: lambda a: np.ndim(A.slots_of(_active(a))),
    np.size: lambda a, axis=None: np.size(A.slots_of(_active(a)), axis),
    np.clip: _clip, np.diff: _diff, np.trace: _trace,
    np.linalg.cholesky: _linalg_sym.cholesky,
    np.zeros_like: lambda a, dtype=None, **kw: np.zeros(np.shape(A.slots_of(_active(a))), dtype or float),
    np.ones_like: lambda a, dtype=None, **kw: np.ones(np.shape(A.slots_of(_active(a))), dtype or float),
}

FUNCTIONS.update(_linalg_lu.FUNCTIONS)
FUNCTIONS.update(_linalg_eig.FUNCTIONS)


def _no(what):
    raise TypeError(f"pyad does not support numpy.{what} on active values")


def array_function(func, types, args, kwargs):
    impl = FUNCTIONS.get(func)
    if impl is None:
        # Called inside a numpy/scipy function (logsumexp asks numpy.result_type):
        # name the function the user called.
        raise unsupported(converting_library_function() or public_name(func))
    return impl(*args, **kwargs)


provide_handlers(array_ufunc=array_ufunc, array_function=array_function,
                 converting_library_function=converting_library_function,
                 unsupported=unsupported, dot=dot)
