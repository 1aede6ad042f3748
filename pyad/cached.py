"""Cached transforms: pyad.jit(pyad.grad(f)), or pyad.grad(f, cache=True).

An uncached transform records f at every call. A cached one keeps one tape per
input signature (each argument's pytree structure, its leaves' shapes and
dtypes, and the values of static arguments and keyword arguments) and replays
it while its guards hold; where a recorded Python branch flips, the tape
re-records itself (pyad.trace's retrace). Arguments outside argnums are the
tape's parameters: new data replays without re-recording and costs no
derivative work.

Like jax.jit, a cached transform bakes in what f reads from outside its
arguments (globals, closed-over arrays) at recording time: change those and the
cached tapes are stale (call .cache_clear()).

An argument with a leaf that is not a number or a numeric array (a string, a
function, None alone) is static: its value is part of the signature (it must be
hashable) and it is not recorded. Keyword arguments are static too.
"""
import functools
import numbers
from typing import Any, Callable

import numpy as np

from . import pytree

_F64 = np.dtype(np.float64)


def _leaf_key(leaf):
    """A numeric leaf's part of the signature, or None for a leaf that makes its
    argument static."""
    t = type(leaf)
    if t is float or t is int:
        return "weak"  # Python numbers are weakly typed: their value is traced
    if t is np.ndarray:
        kind = leaf.dtype.kind
        return (leaf.shape, leaf.dtype.str) if kind in "fiu" else None
    if isinstance(leaf, numbers.Real) and not isinstance(leaf, (bool, np.bool_)):
        dt = np.asarray(leaf).dtype
        return ((), dt.str) if dt.kind in "fiu" else None
    return None


def _arg_key(arg):
    """(whether the argument is traced, its part of the signature)."""
    if arg is None:
        return False, None
    leaves, spec = pytree.flatten(arg)
    keys = tuple(_leaf_key(leaf) for leaf in leaves)
    if leaves and None not in keys:
        return True, (spec, keys)
    try:
        hash(arg)
    except TypeError:
        raise TypeError(f"a cached pyad transform takes an argument of type "
                        f"{type(arg).__name__} that is neither numbers/arrays (traced) nor "
                        "hashable (static, part of the cache key)") from None
    return False, ("static", type(arg), arg)


def _kwargs_key(kwargs):
    try:
        key = tuple(sorted(kwargs.items()))
        hash(key)
    except TypeError:
        raise TypeError("a cached pyad transform takes keyword arguments as static values, "
                        "part of the cache key: they must be hashable") from None
    return key


class _Cache:
    """The tapes of one cached transform, by signature, and their counts."""

    def __init__(self, f, argnums, backend, trace, argnums_of):
        self.f, self.argnums, self.backend = f, argnums, backend
        # pyad.trace and the argnums check, passed in: pyad.transforms imports this
        self._trace, self._argnums_of = trace, argnums_of
        self.tapes = {}
        self.floats = {}  # number of arguments -> the tape of that many Python floats
        self.arrays = {}  # shape -> the tape of one float64 array of that shape
        self.records = 0
        self._nums = {}

    def nums(self, nargs):
        """(argument indices, whether argnums was one int) for nargs arguments."""
        if nargs not in self._nums:
            self._nums[nargs] = self._argnums_of(self.argnums, nargs)
        return self._nums[nargs]

    def tape_for(self, args, kwargs):
        """(tape, the traced arguments): the signature's tape, recorded if new."""
        nums, single = self.nums(len(args))
        traced, key = [], []
        for i, arg in enumerate(args):
            is_traced, k = _arg_key(arg)
            if i in nums and not is_traced:
                raise TypeError(f"argument {i} is differentiated (argnums) but is "
                                f"{type(arg).__name__}, not numbers or arrays")
            traced.append(is_traced)
            key.append(k)
        full_key = (tuple(key), _kwargs_key(kwargs) if kwargs else ())
        tape = self.tapes.get(full_key)
        dynamic = [a for a, t in zip(args, traced) if t]
        if tape is None:
            tape = self.tapes[full_key] = self._record(args, traced, kwargs, dynamic, nums,
                                                       single)
            if not kwargs and tape._d_index is None:  # for the lean paths of grad
                if len(args) > 1 and all(type(a) is float for a in args) \
                        and self.nums(len(args))[0] == tuple(range(len(args))):
                    self.floats[len(args)] = tape
                elif len(args) == 1 and type(args[0]) is np.ndarray and args[0].dtype == _F64:
                    self.arrays[args[0].shape] = tape
        return tape, dynamic

    def _record(self, args, traced, kwargs, dynamic, nums, single):
        positions = [i for i, t in enumerate(traced) if t]
        where = {i: j for j, i in enumerate(positions)}
        f, fixed = self.f, list(args)

        def of_traced(*values):
            call = list(fixed)
            for i, v in zip(positions, values):
                call[i] = v
            return f(*call, **kwargs)

        argnums = tuple(where[i] for i in nums)
        self.records += 1
        return self._trace(of_traced, *dynamic, argnums=argnums[0] if single else argnums,
                           backend=self.backend)

    def info(self):
        return {"tapes": len(self.tapes), "records": self.records,
                "retraces": sum(t.retraces for t in self.tapes.values())}

    def clear(self):
        for tape in self.tapes.values():
            tape.close()
        self.tapes.clear()
        self.floats.clear()
        self.arrays.clear()


def cached(kind, f, argnums, backend, trace, argnums_of, mode="auto"):
    """The cached form of the transform `kind` ("grad", "value_and_grad",
    "jacobian", "hessian") of f with respect to args[argnums], recording with
    trace (pyad.trace) and checking argnums with argnums_of."""
    cache = _Cache(f, argnums, backend, trace, argnums_of)
    arrays, floats = cache.arrays, cache.floats

    if kind == "grad":
        def run(*args, **kwargs):
            # the lean paths: one float64 array, a signature of its shape; or plain
            # floats, every one differentiated; then the tape's gradient fast path
            if not kwargs:
                if len(args) == 1:
                    a = args[0]
                    if type(a) is np.ndarray and a.dtype == _F64:
                        tape = arrays.get(a.shape)
                        if tape is not None:
                            return tape.gradient(a)
                else:
                    tape = floats.get(len(args))
                    if tape is not None:
                        try:
                            x = np.array(args)
                        except ValueError:  # ragged: arrays among them
                            x = None
                        # numbers all: what the tape recorded (ints and bools are not)
                        if x is not None and x.dtype == _F64 and x.ndim == 1:
                            return tape._scalars_gradient(x)
            tape, dynamic = cache.tape_for(args, kwargs)
            return tape.gradient(*dynamic)
    elif kind == "value_and_grad":
        def run(*args, **kwargs):
            tape, dynamic = cache.tape_for(args, kwargs)
            return tape._value_and_gradient(tuple(dynamic))
    elif kind == "jacobian":
        def run(*args, **kwargs):
            tape, dynamic = cache.tape_for(args, kwargs)
            return tape._jacobian(dynamic[0] if len(dynamic) == 1 else tuple(dynamic), mode)
    elif kind == "hessian":
        def run(*args, **kwargs):
            tape, dynamic = cache.tape_for(args, kwargs)
            tape._need_scalar_output("hessian")
            return tape._hessian(dynamic[0] if len(dynamic) == 1 else tuple(dynamic))
    else:
        raise ValueError(f"no cached form of {kind!r}")

    run = functools.wraps(f)(run)
    run.cache_info = cache.info
    run.cache_clear = cache.clear
    run._pyad_cached = True
    return run



def jit(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The cached form of a pyad transform: one tape per input signature, replayed.

    ``pyad.jit(pyad.grad(f, argnums=...))`` is ``pyad.grad(f, argnums=...,
    cache=True)``; likewise for ``value_and_grad``, ``jacobian`` and ``hessian``.
    The signature is each argument's pytree structure, its leaves' shapes and
    dtypes, and the values of static (non-numeric) and keyword arguments. A known
    signature replays its tape while its guards hold; a flipped branch re-records
    it. Like ``jax.jit``, what ``f`` reads from globals or closures is baked in when
    a signature is first recorded: call ``.cache_clear()`` after changing it.

    Parameters
    ----------
    fn : callable
        A transform made by ``pyad.grad``, ``value_and_grad``, ``jacobian`` or
        ``hessian`` (an already cached one is returned as it is).

    Returns
    -------
    callable
        The cached transform, with ``.cache_info()`` (tapes, records, re-records)
        and ``.cache_clear()``.

    Raises
    ------
    TypeError
        ``fn`` is not a pyad transform (to replay f's value, use ``pyad.trace``).
    ValueError
        The transform has ``has_aux=True`` (not cached).

    Examples
    --------
    >>> import numpy as np, pyad
    >>> rosen = lambda x: np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
    >>> g = pyad.jit(pyad.grad(rosen))
    >>> g(np.zeros(3))
    array([-2., -2.,  0.])
    >>> g(np.ones(3))                     # the same signature: replayed
    array([0., 0., 0.])
    >>> g.cache_info()
    {'tapes': 1, 'records': 1, 'retraces': 0}
    """
    if getattr(fn, "_pyad_cached", False):
        return fn
    spec = getattr(fn, "_pyad_transform", None)
    if spec is None:
        raise TypeError("pyad.jit caches a pyad transform (pyad.grad, value_and_grad, "
                        "jacobian, hessian): write pyad.jit(pyad.grad(f)); to replay f's "
                        "value, record it once with pyad.trace")
    make, kwargs = spec
    return make(**dict(kwargs, cache=True))
