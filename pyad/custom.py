"""Custom derivative rules: pyad.custom_jvp and pyad.custom_vjp, as in JAX.

    @pyad.custom_vjp
    def clip_gradient(x):
        return x

    def fwd(x):
        return x, None                     # (result, residuals for bwd)

    def bwd(res, g):
        return (np.clip(g, -1.0, 1.0),)    # one cotangent per argument

    clip_gradient.defvjp(fwd, bwd)

    @pyad.custom_jvp
    def log1pexp(x):
        return np.log1p(np.exp(x))

    @log1pexp.defjvp
    def log1pexp_jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return log1pexp(x), t * scipy.special.expit(x)

Called on active values (inside pyad.grad, pyad.trace, a Tape), a custom
function records ONE row: its value comes from calling the function on plain
numbers (so nothing inside it is recorded, and no Python branch in it becomes a
guard), and every sweep that reaches the row calls the rules again at the
sweep's point (pyad/_custom_rows.py says which rule each sweep needs).
Called on plain numbers it is the plain function.

Second order (hvp, hessian): give a second-order rule with f.defhvp(rule),
rule(primals, tangents, cotangent) returning, one per argument, the derivative
of the cotangents J(x)^T g along the tangents (for a scalar function and g = 1,
the Hessian times the tangents). Without one, hvp / hessian raise
pyad.CustomRuleError naming it.

Arguments and results are arrays, numbers, or pytrees of them (tuples, lists,
dicts); a plain (non-active) argument is recorded as a constant.

Batched replay (tape.gradient(X, batch=True), threads= too) calls the rules at
each point; pyad.custom_vjp(f, vectorized=True) (likewise custom_jvp) says that
f, fwd / bwd and the JVP rule also take every leaf with a leading batch axis, as
numpy's ufuncs do: the batched value, tangent and reverse sweeps then call them
once for all the points of a chunk. A tape holding
a custom row cannot be saved or pickled (Python code is never serialized).
"""
import functools
from typing import Callable

import numpy as np

from . import pytree
from ._custom_rows import CustomRow
from .array import contains_active, is_active, slots_of, store_of, to_slots, wrap
from .transforms import trace

_INDEX = np.int32


class _Custom:
    kind = "custom"

    def __init__(self, fun, vectorized=False):
        if not callable(fun):
            raise TypeError(f"pyad.{self.kind} wraps a function, got {type(fun).__name__}")
        if not isinstance(vectorized, bool):
            raise TypeError(f"pyad.{self.kind}: vectorized must be True or False, "
                            f"not {vectorized!r}")
        self.fun = fun
        # Batched replay may call f and its rules once for all points, each leaf with
        # a leading batch axis (else once per point).
        self.vectorized = vectorized
        self.jvp_rule = self.fwd_rule = self.bwd_rule = self.hvp_rule = None
        functools.update_wrapper(self, fun)

    @property
    def name(self):
        return getattr(self.fun, "__name__", repr(self.fun))

    def defhvp(self, rule: Callable) -> Callable:
        """Give the second-order rule that hvp / hessian use.

        Parameters
        ----------
        rule : callable
            ``rule(primals, tangents, cotangent)`` returns one array per
            argument: d/dt [J(x + t v)^T g] at t = 0 for the tangents v and the
            cotangent g (for a scalar function and g = 1 that is H v).

        Returns
        -------
        callable
            ``rule`` itself, so ``defhvp`` serves as a decorator.

        Raises
        ------
        TypeError
            If ``rule`` is not callable.

        Examples
        --------
        >>> import numpy as np, pyad
        >>> @pyad.custom_vjp
        ... def cube(x):
        ...     return x ** 3
        >>> cube.defvjp(lambda x: (x ** 3, x), lambda x, g: (3 * x ** 2 * g,))
        <pyad.custom_vjp cube>
        >>> @cube.defhvp
        ... def cube_hvp(primals, tangents, g):
        ...     return (6 * primals[0] * tangents[0] * g,)
        >>> float(pyad.hessian(cube)(2.0))
        12.0
        """
        _check_callable(rule, "defhvp")
        self.hvp_rule = rule
        return rule

    def __call__(self, *args, **kwargs):
        if kwargs:
            raise TypeError(f"{self.name}: a pyad.{self.kind} function takes its arguments "
                            "by position (bind keyword arguments with functools.partial)")
        self._check_rules()
        leaves, _ = pytree.flatten(args)
        store = store_of(*leaves)
        if store is None:
            return self.fun(*args)
        return _record(self, store, args)

    def __repr__(self):
        return f"<pyad.{self.kind} {self.name}>"


def _check_callable(rule, what):
    if not callable(rule):
        raise TypeError(f"{what} takes a function, got {type(rule).__name__}")


class custom_jvp(_Custom):
    """A function with its own JVP rule, as ``jax.custom_jvp``.

    ``f = pyad.custom_jvp(f)`` then ``f.defjvp(rule)`` (or ``@f.defjvp`` as a
    decorator), with ``rule(primals, tangents) -> (primal_out, tangent_out)``;
    primals and tangents are tuples with one entry per argument. Called on
    active values, ``f`` records one row whose sweeps call the rule. Reverse
    mode (grad, vjp) uses the same rule, which is linear in the tangents: pyad
    records it on active tangents and transposes it with a reverse sweep (for a
    function of few input numbers, or a rule that cannot be recorded so, J is
    assembled from one rule call per input number).

    Parameters
    ----------
    fun : callable
        The primal function; it is called on plain numbers only.
    vectorized : bool, optional
        True if ``fun`` and its rules accept every leaf with a leading batch
        axis, so batched replay calls them once per chunk of points.

    Examples
    --------
    >>> import numpy as np, pyad
    >>> @pyad.custom_jvp
    ... def log1pexp(x):
    ...     return np.log1p(np.exp(x))
    >>> @log1pexp.defjvp
    ... def log1pexp_jvp(primals, tangents):
    ...     (x,), (t,) = primals, tangents
    ...     return log1pexp(x), t / (1.0 + np.exp(-x))
    >>> round(float(pyad.grad(log1pexp)(3.0)), 6)
    0.952574
    """

    kind = "custom_jvp"

    def defjvp(self, rule: Callable) -> Callable:
        """Give the JVP rule.

        Parameters
        ----------
        rule : callable
            ``rule(primals, tangents) -> (primal_out, tangent_out)``, linear in
            the tangents.

        Returns
        -------
        callable
            ``rule`` itself, so ``defjvp`` serves as a decorator.

        Raises
        ------
        TypeError
            If ``rule`` is not callable.

        Examples
        --------
        >>> import pyad
        >>> square = pyad.custom_jvp(lambda x: x * x)
        >>> _ = square.defjvp(lambda p, t: (p[0] * p[0], 2 * p[0] * t[0]))
        >>> float(pyad.grad(square)(3.0))
        6.0
        """
        _check_callable(rule, "defjvp")
        self.jvp_rule = rule
        return rule

    def _check_rules(self):
        if self.jvp_rule is None:
            raise TypeError(f"{self.name}: a pyad.custom_jvp function needs its rule: "
                            f"{self.name}.defjvp(rule) before it is called")


class custom_vjp(_Custom):
    """A function with its own VJP rule, as ``jax.custom_vjp``.

    ``f = pyad.custom_vjp(f)`` then ``f.defvjp(fwd, bwd)``, with
    ``fwd(*args) -> (out, residuals)`` and ``bwd(residuals, g) ->`` a tuple
    with one cotangent per argument (None for a zero one). Reverse mode (grad,
    vjp, jacobian(mode='reverse')) calls fwd and bwd at the sweep's point;
    forward mode raises ``pyad.CustomRuleError``, as JAX does, unless a
    second-order rule is given (``defhvp``), with which J is built from bwd.

    Parameters
    ----------
    fun : callable
        The primal function; it is called on plain numbers only.
    vectorized : bool, optional
        True if ``fun``, ``fwd`` and ``bwd`` accept every leaf with a leading
        batch axis, so batched replay calls them once per chunk of points.

    Examples
    --------
    >>> import numpy as np, pyad
    >>> @pyad.custom_vjp
    ... def clip_gradient(x):
    ...     return x
    >>> clip_gradient.defvjp(lambda x: (x, None),
    ...                      lambda res, g: (np.clip(g, -1.0, 1.0),))
    <pyad.custom_vjp clip_gradient>
    >>> pyad.grad(lambda x: 5.0 * clip_gradient(x))(2.0)
    1.0
    """

    kind = "custom_vjp"

    def defvjp(self, fwd: Callable, bwd: Callable) -> "custom_vjp":
        """Give the forward and backward rules.

        Parameters
        ----------
        fwd : callable
            ``fwd(*args) -> (out, residuals)``.
        bwd : callable
            ``bwd(residuals, g)`` returns a tuple with one cotangent per
            argument (None for a zero one).

        Returns
        -------
        custom_vjp
            This function, so the call can be chained.

        Raises
        ------
        TypeError
            If ``fwd`` or ``bwd`` is not callable.

        Examples
        --------
        >>> import pyad
        >>> double = pyad.custom_vjp(lambda x: 2 * x)
        >>> _ = double.defvjp(lambda x: (2 * x, None), lambda r, g: (2 * g,))
        >>> float(pyad.grad(double)(1.0))
        2.0
        """
        _check_callable(fwd, "defvjp's fwd")
        _check_callable(bwd, "defvjp's bwd")
        self.fwd_rule, self.bwd_rule = fwd, bwd
        return self

    def _check_rules(self):
        if self.bwd_rule is None:
            raise TypeError(f"{self.name}: a pyad.custom_vjp function needs its rules: "
                            f"{self.name}.defvjp(fwd, bwd) before it is called")


def _plain(store, leaf):
    """The float64 value of one argument leaf (an active one read without a guard:
    the rules are called again at every point, so nothing depends on this one)."""
    if is_active(leaf):
        idx = slots_of(leaf)
        return store.values(idx.ravel()).reshape(idx.shape)
    if contains_active(leaf):
        return store.values(to_slots(store, leaf).ravel()).reshape(np.shape(leaf))
    try:
        return np.asarray(leaf, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"arguments of a pyad custom function are arrays or numbers (or "
                        f"pytrees of them), got {type(leaf).__name__}: bind other values "
                        "with functools.partial or a closure") from None


def _record(fn, store, args):
    leaves, arg_spec = pytree.flatten(args)
    values = [_plain(store, leaf) for leaf in leaves]
    plain = [np.float64(v) if v.shape == () else v for v in values]
    out = fn.fun(*pytree.unflatten(arg_spec, plain))
    out_leaves, out_spec = pytree.flatten(out)
    try:
        outs = [np.asarray(o, dtype=np.float64) for o in out_leaves]
    except (TypeError, ValueError):
        raise TypeError(f"{fn.name}: a pyad custom function returns arrays or numbers (or "
                        f"pytrees of them), got {pytree.describe_value(out)}") from None
    row = CustomRow(fn, arg_spec, [v.shape for v in values], out_spec, [o.shape for o in outs],
                    store.backend, trace)
    if row.n_in == 0 or row.n_out == 0:
        return out  # nothing flows through an empty argument or result
    slots = np.concatenate([to_slots(store, leaf).ravel() for leaf in leaves]).astype(_INDEX)
    first_in = int(slots[0])
    if not np.array_equal(slots, first_in + np.arange(slots.size)):
        first_in = store.gather(slots)  # the row reads consecutive slots
    z = np.ascontiguousarray(np.concatenate([o.ravel() for o in outs]))
    first = store.custom(first_in, row, z)
    results, pos = [], first
    for o in outs:
        results.append(wrap(store, np.arange(pos, pos + o.size, dtype=_INDEX).reshape(o.shape)))
        pos += o.size
    return pytree.unflatten(out_spec, results)
