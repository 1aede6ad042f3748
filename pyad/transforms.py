"""Functional transforms: trace f at the given point, sweep, return numpy values.

They follow JAX's conventions: arguments and results may be pytrees (nested
tuples, lists, dicts and namedtuples of arrays and numbers) and derivatives
come back in the structure of what they are taken with respect to; argnums
picks the differentiated positional arguments (an int: that argument's
derivative alone; a tuple: a tuple of them); has_aux=True lets f return
(output, aux) with aux passed through as plain values; keyword arguments are
passed to f and not differentiated; results keep the inputs' dtype."""
import functools
import operator
from typing import Any, Callable

import math

import numpy as np

from . import _linalg_eig, cached, diagnostics, pytree, recording
from .modes import mode_name
from .tape import Tape


def _argnums_tuple(argnums, nargs):
    """(argument indices, whether argnums was one int), checked as JAX checks them."""
    # cached only for exact ints: (0, 1.0) equals (0, 1) as a key, and is refused
    if type(argnums) is int or (type(argnums) is tuple
                                and all(type(i) is int for i in argnums)):
        return _checked_argnums(argnums, nargs)  # the same answer on every call
    return _check_argnums(argnums, nargs)


@functools.lru_cache(maxsize=256)
def _checked_argnums(argnums, nargs):
    return _check_argnums(argnums, nargs)


def _check_argnums(argnums, nargs):
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


def _check_args(args, nums):
    for i in nums:
        if args[i] is None:  # an empty pytree elsewhere; as a whole argument, a mistake
            raise TypeError(f"argument {i} is None: a differentiated argument must be a "
                            "real number, an array, or a pytree of them")


def _recording(f, args, nums, backend, kwargs=None, has_aux=False, retrace=False,
               shrink=False):
    """(Tape of f(*args, **kwargs) with the leaves of args[i], i in nums, as inputs;
    aux values or None). The transforms sweep it and close it at once, so its
    spare capacity is kept for the next recording unless shrink (pyad.trace)."""
    _check_args(args, nums)
    r = recording.record_tree(f, args, nums, backend, kwargs, has_aux, shrink)
    fn = recording.leaf_function(f, r.in_args, r.out_args) if retrace else None
    tape = Tape.from_store(r.store, r.in_shapes, r.out_shapes, backend, fn=fn,
                           in_args=r.in_args, out_args=r.out_args, in_dtypes=r.in_dtypes)
    return tape, r.aux


def record(f, args, argnums, backend=None, retrace=False):
    """A Tape of f(*args) whose inputs are the leaves of args[i] for i in argnums
    (keeping f to re-record where a branch flips, with retrace=True)."""
    return _recording(f, args, tuple(argnums), backend, retrace=retrace, shrink=True)[0]


def trace(f: Callable[..., Any], *args: Any, argnums: "int | tuple[int, ...] | None" = None,
          backend: "str | None" = None, retrace: bool = True) -> Tape:
    """Record ``f(*args)`` once; the returned Tape replays it at new points.

    The arguments may be pytrees (nested tuples, lists, dicts and namedtuples of
    arrays and numbers): replay takes arguments of the same structure, and
    derivatives come back in it. With ``retrace=True`` the tape keeps ``f`` and
    re-records when replay reaches a point where one of f's Python branches goes
    the other way (counted in ``tape.retraces``); with ``retrace=False`` such a
    replay raises ``pyad.BranchError``.

    Parameters
    ----------
    f : callable
        The function to record, called once as ``f(*args)``.
    *args : pytree
        The point to record at: numbers, arrays or pytrees of them.
    argnums : int or tuple of int, optional
        The arguments to differentiate (as for ``pyad.grad``); every other argument
        becomes a *parameter*: replay takes it again (``tape.gradient(w, X2, y2)``:
        new data, no re-record), no derivative is taken or returned for it, and the
        derivative sweeps skip the rows that depend on parameters and constants
        alone. Default: every argument is differentiated (a tuple of derivatives
        comes back for several).
    backend : {"c", "python"}, optional
        The tape's backend (default: ``PYAD_BACKEND``, else ``"c"``).
    retrace : bool
        Keep ``f`` to re-record where a branch flips (else ``BranchError`` there).

    Returns
    -------
    Tape
        The recording, ready to replay.

    Raises
    ------
    TypeError
        ``f`` is not callable, or an argument is not real numbers (a string, a
        complex array, ``None``).
    ValueError
        ``argnums`` is out of range, empty or repeats an argument.

    Examples
    --------
    >>> import numpy as np, pyad
    >>> tape = pyad.trace(lambda x: np.sum(x ** 2), np.array([1.0, 2.0]))
    >>> tape(np.array([3.0, 4.0]))
    25.0
    >>> tape.gradient(np.array([3.0, 4.0]))
    array([6., 8.])

    Data as parameters, replayed with new values:

    >>> loss = lambda w, X: np.sum((X @ w) ** 2)
    >>> tape = pyad.trace(loss, np.ones(2), np.eye(2), argnums=0)
    >>> tape.n_inputs, tape.n_params
    (2, 4)
    >>> tape.gradient(np.ones(2), 2 * np.eye(2))
    array([8., 8.])
    """
    if not callable(f):
        raise TypeError(f"pyad.trace needs a function, got {type(f).__name__}")
    if argnums is None:
        return record(f, args, range(len(args)), backend, retrace)
    nums, single = _argnums_tuple(argnums, len(args))
    tape = record(f, args, range(len(args)), backend, retrace)
    tape._hold_params([i not in nums for i in range(len(args))],
                      nums[0] if single else nums)
    return tape


def _need_scalar(tape, who):
    if len(tape._out_args) != 1 or not tape._out_args[0].is_leaf() or \
            tape._out_shapes != [()]:
        if len(tape._out_shapes) == 1 and tape._out_args[0].is_leaf():
            what = f"shape {tape._out_shapes[0]}"
        else:
            what = f"the structure {pytree.describe(tape._out_args[0])}"
        raise TypeError(f"{who} requires a function with one scalar output; the output had "
                        f"{what} (use pyad.jacobian or pyad.vjp)")


def _one_scalar_output(r):
    return len(r.out_shapes) == 1 and r.out_shapes[0] == () and r.out_args[0].is_leaf()


def _gradient_at_recorded_point(r, single):
    """(value, gradient) of a Recording with one scalar output, by one reverse
    sweep over the recorded values: what Tape._value_and_gradient gives, without
    building a Tape (pyad.grad records and drops one per call, and a Tape's set-up
    cost as much as the sweep of a small function)."""
    shapes, dtypes = r.in_shapes, r.in_dtypes
    try:
        y, xbar = r.store.recorded_gradient(sum(map(math.prod, shapes)))
    except np.linalg.LinAlgError as e:  # eigh at repeated eigenvalues: name row and point
        raise _linalg_eig.sweep_error(r.store, e, None) from None
    if len(shapes) == 1 and dtypes[0] is None and r.in_args[0].is_leaf():
        # one float64 argument (the usual loss(w)): the gradient is xbar itself
        g = float(xbar[0]) if shapes[0] == () else xbar.reshape(shapes[0])
        return y, g if single else (g,)
    parts, lo = [], 0
    for shape in r.in_shapes:
        n = math.prod(shape)
        parts.append(float(xbar[lo]) if shape == () else xbar[lo:lo + n].reshape(shape))
        lo += n
    parts = pytree.cast_all(parts, r.in_dtypes)
    args, lo = [], 0
    for spec in r.in_args:
        n = spec.num_leaves
        args.append(parts[lo] if spec.is_leaf() else pytree.unflatten(spec, parts[lo:lo + n]))
        lo += n
    value = pytree.cast(y, pytree.common(r.in_dtypes))
    return value, args[0] if single else tuple(args)


def _with_aux(result, aux, has_aux):
    return (result, aux) if has_aux else result


def _no_aux_cache(has_aux, cache):
    if cache and has_aux:
        raise ValueError("cache=True (pyad.jit) does not keep has_aux values: the tape "
                         "replays the differentiated output only; use an uncached transform "
                         "for has_aux")


def _transform(fn, make, **kwargs):
    """fn, marked as the transform make(**kwargs) (what pyad.jit re-makes cached)."""
    fn._pyad_transform = (make, kwargs)
    return fn


def value_and_grad(f: Callable[..., Any], argnums: "int | tuple[int, ...]" = 0,
                   has_aux: bool = False, backend: "str | None" = None,
                   cache: bool = False) -> Callable[..., Any]:
    """f's value and gradient with respect to ``args[argnums]``, as ``jax.value_and_grad``.

    Parameters
    ----------
    f : callable
        A function with one scalar output (or ``(output, aux)`` with ``has_aux``).
    argnums : int or tuple of int
        The positional arguments to differentiate; a tuple gives a tuple of gradients.
    has_aux : bool
        ``f`` returns ``(value, aux)``; the result is then ``((value, aux), grad)``
        with ``aux`` as plain values.
    backend : {"c", "python"}, optional
        The backend recording each call (default: ``PYAD_BACKEND``, else ``"c"``).
    cache : bool
        Keep one tape per input signature and replay it (the same as
        ``pyad.jit(pyad.value_and_grad(f))``).

    Returns
    -------
    callable
        ``g(*args, **kwargs) -> (value, gradient)``: the gradient has the structure
        and dtype of the differentiated argument; keyword arguments reach ``f``
        undifferentiated.

    Raises
    ------
    TypeError
        (when called) f's output is not one scalar, or ``argnums`` is not an int or
        a tuple of ints.
    ValueError
        ``has_aux`` together with ``cache``; (when called) ``argnums`` out of range.

    Examples
    --------
    >>> import numpy as np, pyad
    >>> pyad.value_and_grad(lambda x: np.sum(x ** 2))(np.array([1.0, 2.0]))
    (5.0, array([2., 4.]))
    """
    _no_aux_cache(has_aux, cache)
    if cache:
        return cached.cached("value_and_grad", f, argnums, backend, trace, _argnums_tuple)

    @functools.wraps(f)
    def value_and_grad_f(*args, **kwargs):
        nums, single = _argnums_tuple(argnums, len(args))
        _check_args(args, nums)
        r = recording.record_tree(f, args, nums, backend, kwargs, has_aux, shrink=False)
        if _one_scalar_output(r) and not diagnostics.DEBUG_NANS.enabled:
            try:
                value, g = _gradient_at_recorded_point(r, single)
            finally:
                r.store.close()
            return _with_aux(value, r.aux, has_aux), g
        tape = Tape.from_store(r.store, r.in_shapes, r.out_shapes, backend,
                               in_args=r.in_args, out_args=r.out_args, in_dtypes=r.in_dtypes)
        try:
            _need_scalar(tape, "value_and_grad")
            value, g = tape._value_and_gradient((), unwrap=single)
        finally:
            tape.close()
        return _with_aux(value, r.aux, has_aux), g
    return _transform(value_and_grad_f, value_and_grad, f=f, argnums=argnums,
                      has_aux=has_aux, backend=backend)


def grad(f: Callable[..., Any], argnums: "int | tuple[int, ...]" = 0, has_aux: bool = False,
         backend: "str | None" = None, cache: bool = False) -> Callable[..., Any]:
    """The gradient of scalar ``f`` with respect to ``args[argnums]``, as ``jax.grad``.

    Parameters
    ----------
    f : callable
        A function with one scalar output (or ``(output, aux)`` with ``has_aux``).
    argnums : int or tuple of int
        The positional arguments to differentiate; a tuple gives a tuple of gradients.
    has_aux : bool
        ``f`` returns ``(value, aux)``; the result is then ``(grad, aux)``.
    backend : {"c", "python"}, optional
        The backend recording each call (default: ``PYAD_BACKEND``, else ``"c"``).
    cache : bool
        Keep one tape per input signature (pytree structure, shapes, dtypes, static
        arguments), replayed at each call while its recorded branches hold and
        re-recorded where one flips (the same as ``pyad.jit(pyad.grad(f))``). Like
        ``jax.jit``, globals ``f`` reads are baked in when a signature is first
        recorded.

    Returns
    -------
    callable
        ``g(*args, **kwargs)``: the gradient, in the structure and dtype of the
        differentiated argument (a tuple of them for a tuple ``argnums``).

    Raises
    ------
    TypeError
        (when called) f's output is not one scalar, an argument is not real
        numbers, or ``argnums`` is not an int or a tuple of ints.
    ValueError
        ``has_aux`` together with ``cache``; (when called) ``argnums`` out of range.

    Examples
    --------
    >>> import numpy as np, pyad
    >>> pyad.grad(lambda x: np.sum(x ** 2))(np.array([1.0, 2.0]))
    array([2., 4.])
    >>> pyad.grad(lambda x, y: x * y, argnums=(0, 1))(2.0, 3.0)
    (3.0, 2.0)
    >>> pyad.grad(lambda p: p["w"] ** 2)({"w": 3.0})
    {'w': 6.0}
    """
    _no_aux_cache(has_aux, cache)
    if cache:
        return cached.cached("grad", f, argnums, backend, trace, _argnums_tuple)
    vg = value_and_grad(f, argnums, has_aux, backend)

    @functools.wraps(f)
    def grad_f(*args, **kwargs):
        value, g = vg(*args, **kwargs)
        return (g, value[1]) if has_aux else g
    return _transform(grad_f, grad, f=f, argnums=argnums, has_aux=has_aux, backend=backend)


def jacobian(f: Callable[..., Any], mode: str = "auto", backend: "str | None" = None,
             argnums: "int | tuple[int, ...]" = 0, has_aux: bool = False,
             cache: bool = False) -> Callable[..., Any]:
    """The Jacobian of ``f`` with respect to ``args[argnums]`` (``jax.jacfwd`` / ``jax.jacrev``).

    Nested as JAX nests it: f's output structure outside, the argument's structure
    inside, each block of shape ``output.shape + input.shape`` (for one array in
    and out: ``f(x).shape + x.shape``).

    Parameters
    ----------
    f : callable
        The function (any output: a number, an array or a pytree of them).
    mode : {"auto", "forward", "fwd", "reverse", "rev"}
        ``"forward"`` sweeps one tangent per input, ``"reverse"`` one adjoint per
        output; ``"auto"`` takes the one with fewer directions.
    backend : {"c", "python"}, optional
        The backend recording each call.
    argnums : int or tuple of int
        The positional arguments to differentiate.
    has_aux : bool
        ``f`` returns ``(output, aux)``; the result is then ``(jacobian, aux)``.
    cache : bool
        One tape per input signature, replayed (as for ``pyad.grad``).

    Returns
    -------
    callable
        ``jac(*args, **kwargs)``: the Jacobian.

    Raises
    ------
    ValueError
        An unknown ``mode``; ``has_aux`` together with ``cache``.
    TypeError
        (when called) an argument is not real numbers, or ``argnums`` is not an
        int or a tuple of ints.

    Examples
    --------
    >>> import numpy as np, pyad
    >>> pyad.jacobian(lambda x: x ** 2)(np.array([1.0, 2.0]))
    array([[2., 0.],
           [0., 4.]])
    """
    _no_aux_cache(has_aux, cache)
    if cache:
        mode_name(mode)
        return cached.cached("jacobian", f, argnums, backend, trace, _argnums_tuple, mode)

    @functools.wraps(f)
    def jacobian_f(*args, **kwargs):
        mode_name(mode)  # checked before f runs
        nums, single = _argnums_tuple(argnums, len(args))
        tape, aux = _recording(f, args, nums, backend, kwargs, has_aux)
        try:
            return _with_aux(tape._jacobian(None, mode=mode, unwrap=single), aux, has_aux)
        finally:
            tape.close()
    return _transform(jacobian_f, jacobian, f=f, mode=mode, backend=backend, argnums=argnums,
                      has_aux=has_aux)


def hessian(f: Callable[..., Any], argnums: "int | tuple[int, ...]" = 0, has_aux: bool = False,
            backend: "str | None" = None, cache: bool = False) -> Callable[..., Any]:
    """The Hessian of scalar ``f`` with respect to ``args[argnums]`` (forward-over-reverse).

    Nested as JAX nests it: the argument's structure outside and inside, each block
    of shape ``x_i.shape + x_j.shape`` (for one array: ``x.shape + x.shape``);
    exactly symmetric.

    Parameters
    ----------
    f : callable
        A function with one scalar output.
    argnums : int or tuple of int
        The positional arguments to differentiate.
    has_aux : bool
        ``f`` returns ``(output, aux)``; the result is then ``(hessian, aux)``.
    backend : {"c", "python"}, optional
        The backend recording each call.
    cache : bool
        One tape per input signature, replayed (as for ``pyad.grad``).

    Returns
    -------
    callable
        ``hess(*args, **kwargs)``: the Hessian.

    Raises
    ------
    TypeError
        (when called) f's output is not one scalar.
    ValueError
        ``has_aux`` together with ``cache``.

    Examples
    --------
    >>> import numpy as np, pyad
    >>> pyad.hessian(lambda x: x[0] ** 2 * x[1])(np.array([1.0, 2.0]))
    array([[4., 2.],
           [2., 0.]])
    """
    _no_aux_cache(has_aux, cache)
    if cache:
        return cached.cached("hessian", f, argnums, backend, trace, _argnums_tuple)

    @functools.wraps(f)
    def hessian_f(*args, **kwargs):
        nums, single = _argnums_tuple(argnums, len(args))
        tape, aux = _recording(f, args, nums, backend, kwargs, has_aux)
        try:
            _need_scalar(tape, "hessian")
            return _with_aux(tape._hessian(unwrap=single), aux, has_aux)
        finally:
            tape.close()
    return _transform(hessian_f, hessian, f=f, argnums=argnums, has_aux=has_aux,
                      backend=backend)


# ---- jvp, vjp, hvp: pyad's (f, x, v), and JAX's tuple of primals ----


def _primals(primals, argnums, who):
    """(args, argnums tuple, whether results are unwrapped) for pyad.jvp and kin:
    a plain tuple of primals is JAX's form (f(*primals), all differentiated by
    default); anything else is one argument, pyad's form f(x)."""
    if type(primals) is tuple:
        args = primals
        if argnums is None:
            if not args:
                raise ValueError(f"{who}: the tuple of primals is empty")
            return args, tuple(range(len(args))), False
    else:
        args = (primals,)
        if argnums is None:
            argnums = 0
    nums, single = _argnums_tuple(argnums, len(args))
    return args, nums, single


def _directions(tape, v, single, what, outputs=False):
    """The flat vector of directions v, given as one argument (single) or as a tuple
    with one per differentiated argument."""
    if single:
        v = (v,)
    elif type(v) is not tuple:
        n = len(tape._in_args)
        raise ValueError(f"{what}: with a tuple of primals, give a tuple of {n} of them "
                         f"(one per differentiated argument); got {type(v).__name__}")
    return tape._flat_of(v, what, varargs=True, outputs=outputs, directions=not outputs)[0]


def jvp(f: Callable[..., Any], primals: Any, tangents: Any,
        argnums: "int | tuple[int, ...] | None" = None, has_aux: bool = False,
        backend: "str | None" = None) -> tuple:
    """``(f(x), J v)``: the Jacobian-vector product, by one forward sweep.

    ``pyad.jvp(f, x, v)`` differentiates ``f(x)``; JAX's form
    ``pyad.jvp(f, (x, y), (v, w))`` (a plain tuple of primals and one of tangents)
    differentiates ``f(x, y)``. Wrap an argument that is itself a tuple:
    ``pyad.jvp(f, ((a, b),), ((va, vb),))``.

    Parameters
    ----------
    f : callable
        The function.
    primals : pytree or tuple
        The point: one argument, or a plain tuple of arguments.
    tangents : pytree or tuple
        The direction ``v``, in the structure of the differentiated argument(s).
    argnums : int or tuple of int, optional
        Limits the differentiated arguments of the tuple form (tangents then follow
        ``argnums``: one for an int, a tuple for a tuple).
    has_aux : bool
        ``f`` returns ``(output, aux)``; the result is then ``(f(x), J v, aux)``.
    backend : {"c", "python"}, optional
        The backend recording the call.

    Returns
    -------
    tuple
        ``(f(x), J v)``, both in f's output structure.

    Raises
    ------
    ValueError
        The tangents do not match the primals in structure or shape.

    Examples
    --------
    >>> import numpy as np, pyad
    >>> pyad.jvp(lambda x: x ** 2, np.array([1.0, 2.0]), np.array([1.0, 0.0]))
    (array([1., 4.]), array([2., 0.]))
    >>> pyad.jvp(lambda x, y: x * y, (2.0, 3.0), (1.0, 0.0))
    (6.0, 3.0)
    """
    args, nums, single = _primals(primals, argnums, "jvp")
    tape, aux = _recording(f, args, nums, backend, has_aux=has_aux)
    try:
        y, yd = tape._jvp(None, None, v_flat=_directions(tape, tangents, single,
                                                         "jvp tangent"))
    finally:
        tape.close()
    return (y, yd, aux) if has_aux else (y, yd)


def vjp(f: Callable[..., Any], primals: Any, cotangents: Any,
        argnums: "int | tuple[int, ...] | None" = None, has_aux: bool = False,
        backend: "str | None" = None) -> tuple:
    """``(f(x), u^T J)``: the vector-Jacobian product, by one reverse sweep.

    Unlike ``jax.vjp``, which returns a function, this takes the cotangent ``u``
    and returns the product. A plain tuple of primals differentiates
    ``f(*primals)`` and gives a tuple (one per differentiated argument).

    Parameters
    ----------
    f : callable
        The function.
    primals : pytree or tuple
        The point: one argument, or a plain tuple of arguments.
    cotangents : pytree
        ``u``, in f's output structure.
    argnums : int or tuple of int, optional
        Limits the differentiated arguments of the tuple form.
    has_aux : bool
        ``f`` returns ``(output, aux)``; the result is then ``(f(x), u^T J, aux)``.
    backend : {"c", "python"}, optional
        The backend recording the call.

    Returns
    -------
    tuple
        ``(f(x), u^T J)``; ``u^T J`` has the structure of the differentiated argument(s).

    Raises
    ------
    ValueError
        The cotangent does not match f's output in structure or shape.

    Examples
    --------
    >>> import numpy as np, pyad
    >>> pyad.vjp(lambda x: x ** 2, np.array([1.0, 2.0]), np.array([1.0, 1.0]))
    (array([1., 4.]), array([2., 4.]))
    """
    args, nums, single = _primals(primals, argnums, "vjp")
    tape, aux = _recording(f, args, nums, backend, has_aux=has_aux)
    try:
        y, g = tape._vjp(None, cotangents, unwrap=single)
    finally:
        tape.close()
    return (y, g, aux) if has_aux else (y, g)


def hvp(f: Callable[..., Any], primals: Any, tangents: Any,
        argnums: "int | tuple[int, ...] | None" = None, backend: "str | None" = None) -> Any:
    """``H v`` for scalar ``f`` at ``x``, by forward-over-reverse (no finite differences).

    Parameters
    ----------
    f : callable
        A function with one scalar output.
    primals : pytree or tuple
        The point: one argument, or a plain tuple of arguments (as for ``jvp``).
    tangents : pytree or tuple
        The direction ``v``, in the structure of the differentiated argument(s).
    argnums : int or tuple of int, optional
        Limits the differentiated arguments of the tuple form.
    backend : {"c", "python"}, optional
        The backend recording the call.

    Returns
    -------
    pytree
        ``H v``, in x's structure.

    Raises
    ------
    TypeError
        f's output is not one scalar.
    ValueError
        ``v`` does not match ``x`` in structure or shape.

    Examples
    --------
    >>> import numpy as np, pyad
    >>> pyad.hvp(lambda x: x[0] ** 2 * x[1], np.array([1.0, 2.0]), np.array([1.0, 0.0]))
    array([4., 2.])
    """
    args, nums, single = _primals(primals, argnums, "hvp")
    tape, _ = _recording(f, args, nums, backend)
    try:
        _need_scalar(tape, "hvp")
        return tape._hvp(None, None, unwrap=single,
                         v_flat=_directions(tape, tangents, single, "hvp direction"))
    finally:
        tape.close()
