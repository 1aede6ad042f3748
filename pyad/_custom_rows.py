"""Custom rows in the sweeps: the user's rules of a pyad.custom_jvp /
pyad.custom_vjp function, applied to flat float64 vectors.

A CustomRow is one recorded call: the function (its rules), the structure of
its arguments and of its result. Both backends sweep the row through it: the
pure-Python backend calls its methods directly, the C core through its callback
(pyad.backend_c's pyad_custom_callback, which hands over the row's lanes, and
run_call here, which walks them).

Which rule each sweep needs (x: the operands, all arguments' leaves flattened):

    values    f(x)                                   the primal function
    tangent   f(x), J xd                             custom_jvp's rule; a custom_vjp
                                                     function with a second-order
                                                     rule builds J from n_out bwd calls
    reverse   J^T g                                  custom_vjp's fwd + bwd; for
                                                     custom_jvp, its rule (linear in
                                                     the tangents) recorded with pyad
                                                     and transposed by a reverse
                                                     sweep, or for few inputs J from
                                                     n_in calls of it
    second    J^T g, J^T gd + d/dt (J^T g) along xd  the second-order rule (defhvp)
"""
import functools
import threading

import numpy as np

from . import pytree
from .errors import CustomRuleError

VALUES, TANGENT, REVERSE, SECOND = 0, 1, 2, 3
# A custom_jvp function of at most this many input numbers gets its reverse mode
# from J assembled by that many rule calls; above it, its rule is recorded and
# transposed (one recording and one reverse sweep per point).
ASSEMBLE_UP_TO = 4


# The tape whose custom row this thread is sweeping (its stores' custom_rows list):
# a rule that records on it (an active value it closes over) is refused at once,
# rather than waiting for the sweep that is waiting for the rule.
_sweeping = threading.local()


def refuses_recording(store):
    """Whether this thread is inside a rule of one of store's custom rows."""
    rows = getattr(_sweeping, "rows", None)
    return rows is not None and rows is getattr(store, "custom_rows", None)


RECORDING_IN_A_RULE = (
    "a custom rule recorded on the tape it is being swept for: pyad calls the rules "
    "with plain numbers, so an active value they use must come in as an argument of "
    "the custom function (not from a closure)")


def _in_a_rule(method):
    @functools.wraps(method)
    def run(self, *args):
        outer = getattr(_sweeping, "rows", None)
        _sweeping.rows = self.tape_rows
        try:
            return method(self, *args)
        finally:
            _sweeping.rows = outer
    return run


def _leaf_values(flat, shapes):
    """The leaves of flat, cut into the given shapes: 0-d leaves as np.float64 (a
    float), the others as float64 arrays (copies: a rule may keep or modify them)."""
    out, pos = [], 0
    for shape in shapes:
        size = int(np.prod(shape, dtype=np.int64))
        part = flat[pos:pos + size]
        out.append(np.float64(part[0]) if shape == () else np.array(part).reshape(shape))
        pos += size
    return out


def _batch_leaves(flat, shapes):
    """The leaves of the nb points in the columns of flat (n, nb), each leaf with a
    leading batch axis: shape (nb, *shape)."""
    out, pos, nb = [], 0, flat.shape[1]
    for shape in shapes:
        size = int(np.prod(shape, dtype=np.int64))
        out.append(np.array(flat[pos:pos + size].T).reshape((nb,) + shape))
        pos += size
    return out


def _columns(flat, shapes, nb):
    """_flat_leaves of batched leaves (each (nb, *shape), raveled in turn) as the
    (n, nb) columns of the points."""
    parts, pos = [], 0
    for shape in shapes:
        size = int(np.prod(shape, dtype=np.int64))
        parts.append(flat[pos:pos + nb * size].reshape(nb, size).T)
        pos += nb * size
    return np.concatenate(parts, axis=0) if parts else np.zeros((0, nb))


def _flat_leaves(name, tree, spec, shapes, what):
    """tree (the structure spec, leaves of the given shapes; a None leaf is zero) as
    one float64 vector, or a clear error naming `name` and `what` it should be."""
    parts = spec.flatten_up_to(tree) if spec.num_leaves else []
    if len(parts) != len(shapes):
        raise ValueError(f"{name}: {what} has {len(parts)} leaves, expected {len(shapes)}")
    flat = []
    for i, (leaf, shape) in enumerate(zip(parts, shapes)):
        if leaf is None:
            flat.append(np.zeros(int(np.prod(shape, dtype=np.int64))))
            continue
        try:
            a = np.asarray(leaf, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{name}: leaf {i} of {what} is {type(leaf).__name__}, not an "
                            "array of numbers") from None
        if a.shape != shape:
            try:
                a = np.broadcast_to(a, shape)
            except ValueError:
                raise ValueError(f"{name}: leaf {i} of {what} has shape {a.shape}, expected "
                                 f"{shape}") from None
        flat.append(a.ravel())
    return np.concatenate(flat) if flat else np.zeros(0)


def _structured(name, tree, spec, what):
    """tree with spec's structure (lists and tuples alike), else a clear error."""
    got = pytree.match(spec, tree)
    if got is None:
        raise ValueError(f"{name}: {what} has the structure {pytree.describe_value(tree)}, "
                         f"expected {pytree.describe(spec)}")
    return pytree.unflatten(spec, got)


class CustomRow:
    """One recorded call of a custom function (pyad.custom): its rules and the
    shapes of its arguments' leaves and its result's leaves."""

    def __init__(self, fn, arg_spec, arg_shapes, out_spec, out_shapes, backend="c",
                 trace=None):
        self.fn = fn  # the pyad.custom_jvp / custom_vjp object
        self.backend = backend  # of the tape it is on: a rule transposed is recorded there
        self.trace = trace  # pyad.trace (handed in: this module sits below the transforms)
        self.tape_rows = None  # the custom_rows list of the store it is recorded on
        self.arg_spec, self.arg_shapes = arg_spec, arg_shapes
        self.out_spec, self.out_shapes = out_spec, out_shapes
        self.n_in = sum(int(np.prod(s, dtype=np.int64)) for s in arg_shapes)
        self.n_out = sum(int(np.prod(s, dtype=np.int64)) for s in out_shapes)

    @property
    def name(self):
        return self.fn.name

    # ---- between flat vectors and the user's structures ----

    def args(self, x):
        """The argument tuple at the flat point x."""
        return pytree.unflatten(self.arg_spec, _leaf_values(x, self.arg_shapes))

    def out_tree(self, z):
        return pytree.unflatten(self.out_spec, _leaf_values(z, self.out_shapes))

    def flat_out(self, tree, what, nb=None):
        """A result-structured tree as one flat vector, or for nb points (leaves
        with a leading batch axis) as the (n_out, nb) columns of the points."""
        tree = _structured(self.name, tree, self.out_spec, what)
        if nb is None:
            return _flat_leaves(self.name, tree, self.out_spec, self.out_shapes, what)
        shapes = [(nb,) + s for s in self.out_shapes]
        return _columns(_flat_leaves(self.name, tree, self.out_spec, shapes, what),
                        self.out_shapes, nb)

    def flat_cotangents(self, cts, what, nb=None):
        """One cotangent per argument (a tuple, as JAX's bwd returns; a bare value
        for a function of one argument) as one flat vector over the operands (for
        nb points with a leading batch axis: their (n_in, nb) columns)."""
        n_args = self.arg_spec.num_children
        if n_args == 1 and not (isinstance(cts, (tuple, list)) and len(cts) == 1):
            cts = (cts,)
        if not isinstance(cts, (tuple, list)) or len(cts) != n_args:
            raise ValueError(f"{self.name}: {what} must be a tuple of {n_args} cotangents, one "
                             f"per argument, got {pytree.describe_value(cts)}")
        cts = tuple(cts)
        filled = tuple(pytree.unflatten(child, [None] * child.num_leaves) if c is None else c
                       for c, child in zip(cts, self.arg_spec.children()))
        tree = _structured(self.name, filled, self.arg_spec, what)
        if nb is None:
            return _flat_leaves(self.name, tree, self.arg_spec, self.arg_shapes, what)
        shapes = [(nb,) + s for s in self.arg_shapes]
        return _columns(_flat_leaves(self.name, tree, self.arg_spec, shapes, what),
                        self.arg_shapes, nb)

    # ---- a vectorized function (pyad.custom_*(f, vectorized=True)) at nb points ----

    def _batch_args(self, X):
        return pytree.unflatten(self.arg_spec, _batch_leaves(X, self.arg_shapes))

    @_in_a_rule
    def values_batch(self, X):
        """f at the points in the columns of X (n_in, nb), in one call: (n_out, nb)."""
        nb = X.shape[1]
        return self.flat_out(self.fn.fun(*self._batch_args(X)), "the function's result", nb)

    @_in_a_rule
    def tangents_batch(self, X, XD):
        """(f, J xd) at each point (custom_jvp), in one call of the rule."""
        nb = X.shape[1]
        out, tan = self.fn.jvp_rule(self._batch_args(X), self._batch_args(XD))
        return (self.flat_out(out, "the primal result of the JVP rule", nb),
                self.flat_out(tan, "the tangent result of the JVP rule", nb))

    @_in_a_rule
    def cotangents_batch(self, X, G):
        """J^T g at each point (custom_vjp), in one call of fwd and one of bwd."""
        nb = X.shape[1]
        _, res = _fwd_pair(self.name, self.fn.fwd_rule(*self._batch_args(X)))
        g = pytree.unflatten(self.out_spec, _batch_leaves(G, self.out_shapes))
        return self.flat_cotangents(self.fn.bwd_rule(res, g), "the result of bwd", nb)

    # ---- the sweeps, at one point x ----

    @_in_a_rule
    def value(self, x):
        return self.flat_out(self.fn.fun(*self.args(x)), "the function's result")

    @_in_a_rule
    def tangents(self, x, xd):
        """(f(x), J xd[:, j] for each column j of xd)."""
        fn = self.fn
        if fn.jvp_rule is not None:
            primals = self.args(x)
            cols, z = [], None
            for j in range(xd.shape[1]):
                out, tan = fn.jvp_rule(primals, self.args(xd[:, j]))
                if z is None:
                    z = self.flat_out(out, "the primal result of the JVP rule")
                cols.append(self.flat_out(tan, "the tangent result of the JVP rule"))
            if z is None:
                z = self.value(x)
            return z, np.stack(cols, axis=1)
        if fn.hvp_rule is None:
            raise CustomRuleError(
                f"{self.name} is a pyad.custom_vjp function: forward mode (jvp, "
                f"jacobian(mode='forward'), hvp, hessian) needs its JVP, which it has not "
                f"got. Use mode='reverse' (grad, vjp, jacobian(f, mode='reverse')), or "
                f"define it with pyad.custom_jvp; for hvp / hessian, give it a second-order "
                f"rule with {self.name}.defhvp(rule)")
        z, jac = self._jacobian_from_vjp(x)
        return z, jac @ xd

    def _jacobian_from_vjp(self, x):
        res_out = self.fn.fwd_rule(*self.args(x))
        out, res = _fwd_pair(self.name, res_out)
        z = self.flat_out(out, "the primal result of fwd")
        rows = [self._bwd(res, np.eye(1, self.n_out, i).ravel()) for i in range(self.n_out)]
        return z, np.stack(rows, axis=0)

    def _bwd(self, res, g):
        return self.flat_cotangents(self.fn.bwd_rule(res, self.out_tree(g)),
                                    "the result of bwd")

    @_in_a_rule
    def cotangents(self, x, g):
        """J^T g[:, j] for each column j of g, as the columns of an (n_in, q) array."""
        fn = self.fn
        if fn.bwd_rule is not None:
            out, res = _fwd_pair(self.name, fn.fwd_rule(*self.args(x)))
            return np.stack([self._bwd(res, g[:, j]) for j in range(g.shape[1])], axis=1)
        # custom_jvp: the rule is linear in the tangents. With many inputs its tangent
        # map is recorded and transposed by a reverse sweep; with few (or a rule
        # pyad cannot record on active tangents) J is assembled from its columns at
        # the unit tangents, n_in calls, then J^T g for every g at once.
        if self.n_in > ASSEMBLE_UP_TO and self.trace is not None:
            transposed = self._transposed_jvp(x, g)
            if transposed is not None:
                return transposed
        eye = np.eye(self.n_in)
        _, jac = self.tangents(x, eye)
        return jac.T @ g

    def _transposed_jvp(self, x, g):
        """J^T g[:, j] for each column j: the JVP rule's tangent map (linear) recorded
        with pyad at zero tangents, then reverse sweeps; None where the rule cannot
        be recorded so (it reads its tangents as plain numbers, say)."""
        primals, rule, trace = self.args(x), self.fn.jvp_rule, self.trace
        zeros = self.args(np.zeros(self.n_in))
        try:
            tape = trace(lambda ts: rule(primals, ts)[1], zeros, backend=self.backend,
                         retrace=False)
            cts = [tape.vjp((zeros,), self.out_tree(g[:, j]))[1] for j in range(g.shape[1])]
        except Exception:  # noqa: BLE001 (assembling J calls the rule again: its own error shows)
            return None
        return np.stack([self.flat_cotangents(ct, "the JVP rule's transpose") for ct in cts],
                        axis=1)

    @_in_a_rule
    def second(self, x, xd, g):
        """d/dt (J(x + t xd)^T g) at t = 0 (for a scalar f and g = 1: H xd)."""
        rule = self.fn.hvp_rule
        if rule is None:
            raise CustomRuleError(
                f"{self.name}: hvp / hessian need a second-order rule, which this "
                f"{self.fn.kind} function has not got: give one with "
                f"{self.name}.defhvp(rule), rule(primals, tangents, cotangent) returning one "
                f"array per argument, the derivative of the cotangents J(x)^T g along the "
                f"tangents (for a scalar function and g = 1: the Hessian times the tangents)")
        return self.flat_cotangents(rule(self.args(x), self.args(xd), self.out_tree(g)),
                                    "the result of the second-order rule")


def _fwd_pair(name, res_out):
    if not (isinstance(res_out, (tuple, list)) and len(res_out) == 2):
        raise ValueError(f"{name}: fwd must return a pair (result, residuals), got "
                         f"{pytree.describe_value(res_out)}")
    return res_out


def _nonzero(a):
    return bool(np.any(a != 0))


def run_call(row, sweep, lv, lt, lg, lq, x, z, xd, zd, zbar, xbar, zbard, xbard):
    """One sweep over a custom row. Arrays are (slots, lanes) views of the work
    arrays (None where the sweep has none); a sweep with one value lane and several
    tangent / adjoint lanes has one point and several directions, one with lv
    lanes has lv points (each with its lane of the others)."""
    if lv > 1 and row.fn.vectorized and _batched(row, sweep, x, z, xd, zd, zbar, xbar):
        return
    if sweep == VALUES:
        for j in range(lv):
            z[:, j] = row.value(x[:, j])
        return
    points = range(lv)
    for j in points:
        xj = x[:, j]

        def lanes(n):  # this point's lanes of an array with n lanes
            return slice(j, j + 1) if lv > 1 else slice(0, n)

        if sweep == TANGENT:
            zj, zd[:, lanes(lt)] = row.tangents(xj, xd[:, lanes(lt)])
            z[:, j] = zj
            continue
        g = zbar[:, lanes(lg)]
        if _nonzero(g):
            xbar[:, lanes(lg)] += row.cotangents(xj, g)
        if sweep != SECOND:
            continue
        gd = zbard[:, lanes(lq)]
        dq = row.cotangents(xj, gd) if _nonzero(gd) else np.zeros((row.n_in, gd.shape[1]))
        if _nonzero(g):
            t = xd[:, lanes(lt)]
            # one adjoint lane serves every tangent direction (the vector sweep)
            for i in range(dq.shape[1]):
                dq[:, i] += row.second(xj, t[:, i], g[:, i if g.shape[1] > 1 else 0])
        xbard[:, lanes(lq)] += dq


def _batched(row, sweep, x, z, xd, zd, zbar, xbar):
    """A batched sweep of a vectorized function: one call of its rule for all the
    points, where it has that rule; False where the sweep goes point by point."""
    fn = row.fn
    if sweep == VALUES:
        z[:] = row.values_batch(x)
    elif sweep == TANGENT and fn.jvp_rule is not None:
        z[:], zd[:] = row.tangents_batch(x, xd)
    elif sweep == REVERSE and fn.bwd_rule is not None:
        if _nonzero(zbar):
            xbar += row.cotangents_batch(x, zbar)
    elif sweep == REVERSE and row.n_in <= ASSEMBLE_UP_TO:
        # custom_jvp of few inputs: J's column i at every point from one rule call
        # with the unit tangent e_i at all of them (more inputs: transposed per point)
        if _nonzero(zbar):
            for i in range(row.n_in):
                unit = np.zeros_like(x)
                unit[i] = 1.0
                xbar[i] += np.sum(row.tangents_batch(x, unit)[1] * zbar, axis=0)
    else:
        return False
    return True
