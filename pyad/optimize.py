"""Optimizer glue: scipy.optimize driven by one pyad tape.

    res = pyad.minimize(f, x0, method="trust-ncg")        # f recorded once
    obj = pyad.scipy_objective(f, x0)                       # or call scipy yourself:
    scipy.optimize.minimize(obj.fun, x0, jac=obj.jac, hessp=obj.hessp, method="trust-krylov")
    pyad.least_squares(residuals, x0)                       # Jacobian from the tape

The objective is recorded once; scipy's `fun` and `jac` share one sweep per
point (a forward sweep and a reverse sweep give the value and the gradient
together, and the last point is cached), `hessp` is one forward-over-reverse
sweep and `hess` the whole Hessian. scipy is optional: install it with
``pip install "pyad-tape[optimize]"``.
"""
from typing import Any, Callable

import numpy as np

from .recording import as_input
from .store import Sweep
from .transforms import trace

#: methods (lower case) that use a gradient / Hessian-vector products / a Hessian
JAC_METHODS = frozenset(("cg", "bfgs", "newton-cg", "l-bfgs-b", "tnc", "slsqp", "dogleg",
                         "trust-ncg", "trust-krylov", "trust-exact", "trust-constr"))
HESSP_METHODS = frozenset(("newton-cg", "trust-ncg", "trust-krylov", "trust-constr"))
HESS_METHODS = frozenset(("newton-cg", "dogleg", "trust-ncg", "trust-krylov", "trust-exact",
                          "trust-constr"))
#: methods that cannot run without a full Hessian matrix
HESS_REQUIRED = frozenset(("dogleg", "trust-exact"))


def _scipy_optimize():
    try:
        import scipy.optimize
    except ImportError as e:
        raise ImportError('pyad\'s optimizer glue needs scipy: pip install "pyad-tape[optimize]" '
                          '(or pip install scipy)') from e
    return scipy.optimize


def _flat_problem(f, x0, args, what):
    """(1-D float64 x0, f of a 1-D vector, original shape of x0)."""
    x0 = as_input(x0, f"{what} x0")
    shape = x0.shape
    args = tuple(args)
    if x0.ndim == 1 and not args:
        return x0.copy(), f, shape
    if x0.ndim == 1:
        return x0.copy(), (lambda x: f(x, *args)), shape
    return x0.ravel().copy(), (lambda x: f(x.reshape(shape), *args)), shape


class ScipyObjective:
    """scipy.optimize callables for scalar f, all from one recording of f.

    Attributes: fun(x), jac(x), fun_and_jac(x) (for jac=True), hessp(x, p),
    hess(x), the Tape `tape`, and counters: `n_points` (value-and-gradient
    sweeps, one per distinct point), `n_fun`, `n_jac`, `n_hessp`, `n_hess`
    (calls from scipy). `tape.sweeps` counts every sweep of the tape.

    fun and jac at the same x share one sweep: the first of them to see a new
    x sweeps forward and backward once, and the other reads the cached result.
    Extra positional arguments (scipy's `args`) are accepted and ignored: pass
    them to scipy_objective instead, where they are recorded as constants.
    """

    def __init__(self, f, x0, backend=None, args=()):
        x0, fx, self._shape = _flat_problem(f, x0, args, "scipy_objective")
        self.x0 = x0
        self.tape = trace(fx, x0, backend=backend)
        if self.tape.n_outputs != 1:
            n = self.tape.n_outputs
            self.tape.close()
            raise ValueError(f"the objective must return one scalar; it returned {n} values "
                             "(for residuals use pyad.least_squares)")
        self._x = None
        self._value = None
        self._grad = None
        self.n_points = self.n_fun = self.n_jac = self.n_hessp = self.n_hess = 0

    def _point(self, x):
        x = np.asarray(x, dtype=np.float64).ravel()
        if x.size != self.x0.size:
            raise ValueError(f"the objective was recorded with {self.x0.size} variables; "
                             f"got a point with {x.size}")
        return x

    def _value_and_gradient(self, x):
        x = self._point(x)
        if self._x is None or not np.array_equal(x, self._x):
            value, grad = self.tape.value_and_gradient(x)   # one forward + one reverse sweep
            self._x = x.copy()
            self._value, self._grad = value, np.asarray(grad, dtype=np.float64).ravel()
            self.n_points += 1
        return self._value, self._grad

    def fun(self, x, *_):
        """f(x), a float."""
        self.n_fun += 1
        return self._value_and_gradient(x)[0]

    def jac(self, x, *_):
        """The gradient of f at x (a new array each call)."""
        self.n_jac += 1
        return self._value_and_gradient(x)[1].copy()

    def fun_and_jac(self, x, *_):
        """(f(x), gradient) for scipy's jac=True."""
        self.n_fun += 1
        self.n_jac += 1
        value, grad = self._value_and_gradient(x)
        return value, grad.copy()

    def hessp(self, x, p, *_):
        """H(x) p by one forward-over-reverse sweep."""
        self.n_hessp += 1
        x = self._point(x)
        p = np.asarray(p, dtype=np.float64).ravel()
        return np.asarray(self.tape.hvp(x, p), dtype=np.float64).ravel()

    def hess(self, x, *_):
        """The Hessian matrix at x, (n, n) and exactly symmetric."""
        self.n_hess += 1
        n = self.x0.size
        return np.asarray(self.tape.hessian(self._point(x)), dtype=np.float64).reshape(n, n)

    @property
    def sweeps(self):
        """Sweeps run on the tape so far."""
        return self.tape.sweeps

    def close(self):
        self.tape.close()

    def __repr__(self):
        return (f"<pyad.ScipyObjective n={self.x0.size} points={self.n_points} "
                f"sweeps={self.tape.sweeps}>")


def scipy_objective(f: Callable[..., Any], x0: Any, backend: "str | None" = None,
                    args: tuple = ()) -> "ScipyObjective":
    """Record scalar ``f`` at ``x0`` once; return scipy.optimize's callables for it.

    Parameters
    ----------
    f : callable
        The scalar objective ``f(x, *args)``.
    x0 : array_like
        The point to record at (scipy sees it flat).
    backend : {"c", "python"}, optional
        The tape's backend.
    args : tuple
        Extra arguments of ``f``, recorded as constants.

    Returns
    -------
    ScipyObjective
        ``.fun(x)``, ``.jac(x)``, ``.fun_and_jac(x)`` (for ``jac=True``),
        ``.hessp(x, p)``, ``.hess(x)``, the Tape ``.tape`` and call counters; fun
        and jac at the same x share one sweep.

    Raises
    ------
    ValueError
        ``f`` does not return one scalar.

    Examples
    --------
    >>> import numpy as np, pyad
    >>> rosen = lambda x: np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
    >>> obj = pyad.scipy_objective(rosen, np.zeros(3))
    >>> obj.fun(np.ones(3)), obj.jac(np.zeros(3))
    (0.0, array([-2., -2.,  0.]))
    """
    return ScipyObjective(f, x0, backend=backend, args=args)


class _ConstraintTape:
    """A constraint function c(x) recorded once: its Jacobian and the Hessian
    of v . c(x) come from the tape."""

    def __init__(self, fun, x0, args, backend):
        self.fun_py = fun
        self.args = tuple(args)
        self.tape = trace(lambda x: fun(x, *self.args), x0, backend=backend)
        self.n = x0.size

    def fun(self, x, *_):
        return np.asarray(self.tape(np.asarray(x, dtype=np.float64)), dtype=np.float64)

    def jac(self, x, *_):
        J = np.asarray(self.tape.jacobian(np.asarray(x, dtype=np.float64)), dtype=np.float64)
        return J.reshape(self.tape.n_outputs, self.n) if self.tape.n_outputs != 1 else J.ravel()

    def hess(self, x, v):
        """sum_i v_i * Hessian of c_i, from n forward-over-reverse directions."""
        tape, n = self.tape, self.n
        x = np.asarray(x, dtype=np.float64).ravel()
        v = np.atleast_1d(np.asarray(v, dtype=np.float64)).ravel()
        _, _, H = tape._sweep(Sweep.HVP_VEC, x, np.eye(n), v)
        H = np.asarray(H).reshape(n, n)
        return 0.5 * (H + H.T)


def _is_nonlinear_constraint(con, so):
    return isinstance(con, so.NonlinearConstraint)


def _prepare_constraints(constraints, x0, meth, backend, so, tapes):
    """scipy constraints with Jacobians (and, for trust-constr, Hessians) from tapes."""
    if constraints is None:
        return ()
    single = isinstance(constraints, dict) or _is_nonlinear_constraint(constraints, so) \
        or isinstance(constraints, so.LinearConstraint)
    cons = [constraints] if single else list(constraints)
    out = []
    for i, con in enumerate(cons):
        if isinstance(con, dict):
            if "fun" not in con:
                raise ValueError(f"constraint {i} has no 'fun'")
            if "jac" in con and con["jac"] is not None:
                out.append(con)
                continue
            ct = _ConstraintTape(con["fun"], x0, con.get("args", ()), backend)
            tapes.append(ct.tape)
            if meth == "trust-constr":
                kind = str(con.get("type", "")).lower()
                if kind not in ("eq", "ineq"):
                    raise ValueError(f"constraint {i} has type {con.get('type')!r}; "
                                     "expected 'eq' or 'ineq'")
                ub = 0.0 if kind == "eq" else np.inf
                out.append(so.NonlinearConstraint(ct.fun, 0.0, ub, jac=ct.jac, hess=ct.hess))
            else:
                new = dict(con)
                new["fun"] = ct.fun
                new["jac"] = ct.jac
                new.pop("args", None)
                out.append(new)
        elif _is_nonlinear_constraint(con, so) and not callable(con.jac):
            ct = _ConstraintTape(con.fun, x0, (), backend)
            tapes.append(ct.tape)
            hess = con.hess if con.hess is not None else ct.hess
            out.append(so.NonlinearConstraint(ct.fun, con.lb, con.ub, jac=ct.jac, hess=hess,
                                              keep_feasible=con.keep_feasible))
        else:
            out.append(con)
    return out[0] if single else out


def minimize(f: Callable[..., Any], x0: Any, method: "str | Callable[..., Any] | None" = None,
             backend: "str | None" = None, args: tuple = (), hessian: "str | None" = "auto",
             constraints: Any = (), **scipy_kwargs: Any) -> Any:
    """``scipy.optimize.minimize`` with derivatives from one recording of ``f``.

    ``f`` is recorded once at ``x0`` (``pyad.trace``); scipy gets ``jac``, and
    ``hessp`` or ``hess`` where the method uses them: fun and jac share one sweep
    per point, hessp is one forward-over-reverse sweep. Needs scipy
    (``pip install "pyad-tape[optimize]"``).

    Parameters
    ----------
    f : callable
        The scalar objective ``f(x, *args)``.
    x0 : array_like
        The starting point (any shape; scipy sees it flat).
    method : str or callable, optional
        scipy's method (``"BFGS"``, ``"L-BFGS-B"``, ``"Newton-CG"``, ``"trust-ncg"``,
        ``"trust-krylov"``, ``"trust-constr"``, ...); None: scipy's default.
    backend : {"c", "python"}, optional
        The tape's backend.
    args : tuple
        Extra arguments of ``f``, recorded as constants.
    hessian : {"auto", "hess", "hessp", None}
        ``"auto"`` passes ``hessp`` to Newton-CG, trust-ncg, trust-krylov and
        trust-constr and the full Hessian to dogleg and trust-exact; ``"hess"`` the
        full Hessian wherever the method takes one; None neither.
    constraints : dict, sequence or NonlinearConstraint
        scipy's constraints; dicts (``{"type": "eq"/"ineq", "fun": c}``) and
        ``NonlinearConstraint`` objects without a Jacobian are recorded too and get
        ``jac`` (and for trust-constr the Hessian) from their tapes.
    **scipy_kwargs
        Passed to scipy unchanged; a ``jac``/``hess``/``hessp`` you pass is used
        instead of the tape's.

    Returns
    -------
    scipy.optimize.OptimizeResult
        scipy's result with ``nsweeps`` (sweeps of the objective's tape) and
        ``npoints`` (points where value and gradient were swept) added.

    Raises
    ------
    ValueError
        An unknown ``hessian``, or ``f`` does not return one scalar.
    ImportError
        scipy is not installed.

    Examples
    --------
    >>> import numpy as np, pyad
    >>> rosen = lambda x: np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
    >>> res = pyad.minimize(rosen, np.zeros(3), method="trust-ncg")
    >>> bool(res.success), np.round(res.x, 6)
    (True, array([1., 1., 1.]))
    """
    so = _scipy_optimize()
    if hessian not in ("auto", "hess", "hessp", None):
        raise ValueError(f"hessian must be 'auto', 'hess', 'hessp' or None, not {hessian!r}")
    obj = ScipyObjective(f, x0, backend=backend, args=args)
    tapes = [obj.tape]
    try:
        meth = "_custom" if callable(method) else (method.lower() if method else None)
        if meth is None:   # scipy's own default choice
            has_cons = (bool(constraints) if isinstance(constraints, (list, tuple, dict))
                        else constraints is not None)
            meth = "slsqp" if has_cons else ("l-bfgs-b" if scipy_kwargs.get("bounds") is not None
                                             else "bfgs")
        kw = dict(scipy_kwargs)
        custom = meth == "_custom"
        if custom or meth in JAC_METHODS:
            kw.setdefault("jac", obj.jac)
        user_hess = "hess" in kw or "hessp" in kw
        if not user_hess and hessian is not None:
            if hessian == "hess" or (hessian == "auto" and meth in HESS_REQUIRED):
                if custom or meth in HESS_METHODS:
                    kw["hess"] = obj.hess
            elif hessian in ("hessp", "auto") and (custom or meth in HESSP_METHODS):
                kw["hessp"] = obj.hessp
        if hessian == "hessp" and meth in HESS_REQUIRED and not user_hess:
            raise ValueError(f"method {method!r} needs the full Hessian: use hessian='auto' "
                             "or 'hess'")
        cons = _prepare_constraints(constraints, obj.x0, meth, backend, so, tapes)
        if cons is not None and not (isinstance(cons, (list, tuple)) and len(cons) == 0):
            kw["constraints"] = cons
        res = so.minimize(obj.fun, obj.x0, method=method, **kw)
    except BaseException:
        obj.close()
        raise
    finally:
        for t in tapes[1:]:
            t.close()
    if obj._shape != (obj.x0.size,) and getattr(res, "x", None) is not None:
        res.x = np.asarray(res.x).reshape(obj._shape)
    res.nsweeps = obj.tape.sweeps
    res.npoints = obj.n_points
    obj.close()
    return res


def least_squares(residuals: Callable[..., Any], x0: Any, backend: "str | None" = None,
                  args: tuple = (), **kw: Any) -> Any:
    """``scipy.optimize.least_squares`` with the Jacobian of the residuals from a tape.

    ``residuals`` is recorded once at ``x0``; scipy gets ``jac`` = the tape's
    Jacobian (forward or reverse mode, whichever sweeps fewer directions).

    Parameters
    ----------
    residuals : callable
        ``residuals(x, *args)``: a vector (or a scalar).
    x0 : array_like
        The starting point.
    backend : {"c", "python"}, optional
        The tape's backend.
    args : tuple
        Extra arguments of ``residuals``, recorded as constants.
    **kw
        Passed to scipy unchanged; a ``jac`` you pass is used instead.

    Returns
    -------
    scipy.optimize.OptimizeResult
        scipy's result with ``nsweeps`` added.

    Raises
    ------
    ImportError
        scipy is not installed.

    Examples
    --------
    >>> import numpy as np, pyad
    >>> r = lambda p: np.exp(p[0]) * np.arange(4.0) + p[1] - np.array([1.0, 3.0, 5.0, 7.5])
    >>> res = pyad.least_squares(r, np.zeros(2))
    >>> bool(res.success), np.round(res.x, 3)
    (True, array([0.765, 0.9  ]))
    """
    so = _scipy_optimize()
    x0, rx, shape = _flat_problem(residuals, x0, args, "least_squares")
    tape = trace(rx, x0, backend=backend)
    n, m = x0.size, tape.n_outputs
    try:
        def fun(x, *_):
            return np.atleast_1d(np.asarray(tape(np.asarray(x, dtype=np.float64)),
                                            dtype=np.float64)).ravel()

        def jac(x, *_):
            return np.asarray(tape.jacobian(np.asarray(x, dtype=np.float64)),
                              dtype=np.float64).reshape(m, n)

        kw.setdefault("jac", jac)
        res = so.least_squares(fun, x0, **kw)
        res.nsweeps = tape.sweeps
    finally:
        tape.close()
    if shape != (x0.size,):
        res.x = np.asarray(res.x).reshape(shape)
    return res
