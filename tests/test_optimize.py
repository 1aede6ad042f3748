"""Optimizer glue: pyad.minimize, pyad.scipy_objective, pyad.least_squares.

Oracles: the closed-form Rosenbrock gradient and Hessian (scipy.optimize.rosen_der,
rosen_hess), known minimizers, and scipy run with finite-difference gradients.
"""
import sys
import warnings

import numpy as np
import pytest
import scipy.optimize as so  # in the test extra: a missing scipy is a broken install

import pyad


def rosen(x):
    return np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


# ---- the callables scipy gets ----

def test_objective_callables_match_closed_forms(backend):
    rng = np.random.default_rng(3)
    x0 = rng.uniform(-1, 1, 6)
    obj = pyad.scipy_objective(rosen, x0, backend=backend)
    for _ in range(3):
        x = rng.uniform(-2, 2, 6)
        p = rng.standard_normal(6)
        np.testing.assert_allclose(obj.fun(x), so.rosen(x), rtol=1e-13)
        np.testing.assert_allclose(obj.jac(x), so.rosen_der(x), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(obj.hessp(x, p), so.rosen_hess_prod(x, p), rtol=1e-12,
                                   atol=1e-10)
        H = obj.hess(x)
        assert H.shape == (6, 6)
        np.testing.assert_allclose(H, so.rosen_hess(x), rtol=1e-12, atol=1e-10)
        value, grad = obj.fun_and_jac(x)
        assert value == obj.fun(x)
        np.testing.assert_array_equal(grad, obj.jac(x))


def test_value_and_gradient_share_one_sweep(backend):
    obj = pyad.scipy_objective(rosen, np.zeros(5), backend=backend)
    tape = obj.tape
    x = np.array([0.3, -0.2, 0.9, 1.1, 0.4])
    before = tape.sweeps
    f = obj.fun(x)
    assert tape.sweeps == before + 1
    g = obj.jac(x)                    # same point: read from the cache, no sweep
    assert tape.sweeps == before + 1
    assert obj.n_points == 1 and obj.n_fun == 1 and obj.n_jac == 1
    np.testing.assert_allclose(f, so.rosen(x), rtol=1e-13)
    np.testing.assert_allclose(g, so.rosen_der(x), rtol=1e-12)
    # jac first, then fun: still one sweep
    y = x + 0.125
    obj.jac(y)
    obj.fun(y)
    assert tape.sweeps == before + 2 and obj.n_points == 2
    # a new point sweeps again; the returned gradient is a copy scipy may modify
    g2 = obj.jac(x)
    g2[:] = 0.0
    np.testing.assert_allclose(obj.jac(x), so.rosen_der(x), rtol=1e-12)
    assert tape.sweeps == before + 3


def test_bfgs_sweeps_once_per_point(backend):
    """Every point scipy visits costs one sweep although it asks for value and gradient."""
    obj = pyad.scipy_objective(rosen, np.zeros(4), backend=backend)
    seen = []

    def fun(x):
        seen.append(x.copy())
        return obj.fun(x)

    def jac(x):
        seen.append(x.copy())
        return obj.jac(x)

    res = so.minimize(fun, np.zeros(4), jac=jac, method="BFGS")
    assert res.success
    distinct = {tuple(x) for x in seen}
    assert obj.tape.sweeps == obj.n_points == len(distinct)
    assert obj.n_fun + obj.n_jac >= 1.8 * obj.n_points      # both were asked at most points
    assert res.nfev + res.njev > obj.tape.sweeps


def test_minimize_reports_fewer_sweeps_than_calls(backend):
    res = pyad.minimize(rosen, np.zeros(6), method="BFGS", backend=backend)
    assert res.success
    assert res.nsweeps == res.npoints
    assert res.nsweeps <= max(res.nfev, res.njev) < res.nfev + res.njev


# ---- convergence of every method that takes derivatives ----

OPTIONS = {
    "BFGS": {"gtol": 1e-10},
    "L-BFGS-B": {"gtol": 1e-12, "ftol": 1e-16, "maxiter": 10000},
    "Newton-CG": {"xtol": 1e-12},
    "trust-ncg": {"gtol": 1e-10},
    "trust-krylov": {"gtol": 1e-10},
    "trust-constr": {"gtol": 1e-12, "xtol": 1e-14, "maxiter": 5000},
    "dogleg": {"gtol": 1e-10},
    "trust-exact": {"gtol": 1e-10},
    "CG": {"gtol": 1e-10},
}


@pytest.mark.parametrize("method", list(OPTIONS))
def test_rosenbrock_10(backend, method):
    res = pyad.minimize(rosen, np.zeros(10), method=method, backend=backend,
                        options=OPTIONS[method])
    assert res.success, res.message
    np.testing.assert_allclose(res.x, np.ones(10), atol=1e-6)
    assert res.fun < 1e-12


# trust-krylov is left out at n = 1000: scipy's trlib solver stops there with "a bad
# approximation" or converges depending on the state of the process (seen with the
# same objective, gradients and Hessian-vector products bit for bit); it runs at n = 10.
@pytest.mark.parametrize("method", ["trust-ncg", "Newton-CG", "L-BFGS-B"])
def test_rosenbrock_1000(method):
    """n = 1000 on the C backend (the pure-Python sweeps take tens of seconds here)."""
    res = pyad.minimize(rosen, np.full(1000, 0.5), method=method, backend="c",
                        options=OPTIONS[method])
    assert res.success, res.message
    np.testing.assert_allclose(res.x, np.ones(1000), atol=1e-6)


def test_hessian_choice_and_methods_without_derivatives(backend):
    res = pyad.minimize(rosen, np.zeros(5), method="trust-ncg", hessian="hess",
                        backend=backend, options={"gtol": 1e-10})
    np.testing.assert_allclose(res.x, np.ones(5), atol=1e-6)
    assert res.nhev > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # no "does not use gradient information" warning
        res = pyad.minimize(lambda x: np.sum((x - 2.0) ** 2), np.zeros(2),
                            method="Nelder-Mead", backend=backend,
                            options={"xatol": 1e-10, "fatol": 1e-14})
    np.testing.assert_allclose(res.x, [2.0, 2.0], atol=1e-6)
    assert res.nsweeps == res.npoints > 0
    with pytest.raises(ValueError, match="full Hessian"):
        pyad.minimize(rosen, np.zeros(3), method="dogleg", hessian="hessp", backend=backend)
    with pytest.raises(ValueError, match="hessian must be"):
        pyad.minimize(rosen, np.zeros(3), method="BFGS", hessian="yes", backend=backend)


def test_user_supplied_jac_is_used(backend):
    calls = []

    def my_jac(x):
        calls.append(1)
        return so.rosen_der(x)

    res = pyad.minimize(rosen, np.zeros(3), method="BFGS", jac=my_jac, backend=backend)
    assert res.success and calls


def test_args_shapes_and_bounds(backend):
    target = np.array([[1.0, -2.0], [0.5, 3.0]])

    def f(m, scale):
        return scale * np.sum((m - target) ** 2)

    res = pyad.minimize(f, np.zeros((2, 2)), args=(3.0,), method="L-BFGS-B",
                        backend=backend, bounds=[(-1, 1)] * 4)
    assert res.x.shape == (2, 2)
    np.testing.assert_allclose(res.x, np.clip(target, -1, 1), atol=1e-6)


def test_objective_must_be_scalar(backend):
    with pytest.raises(ValueError, match="one scalar"):
        pyad.minimize(lambda x: x ** 2, np.ones(3), backend=backend)


# ---- logistic regression: against scipy with finite-difference gradients ----

def _logistic_data():
    rng = np.random.default_rng(42)
    n, d = 200, 4
    X = np.column_stack([np.ones(n), rng.standard_normal((n, d - 1))])
    w_true = np.array([0.5, -1.0, 2.0, 0.7])
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-X @ w_true))).astype(float)
    return X, y


@pytest.mark.parametrize("method", ["Newton-CG", "trust-ncg", "BFGS"])
def test_logistic_regression_matches_scipy_finite_differences(backend, method):
    X, y = _logistic_data()

    def nll(w):
        z = w @ X.T
        return np.sum(pyad.log1p(pyad.exp(z)) - y * z)

    def nll_np(w):
        z = X @ w
        return np.sum(np.logaddexp(0, z) - y * z)

    opts = {"xtol": 1e-12} if method == "Newton-CG" else {"gtol": 1e-10}
    res = pyad.minimize(nll, np.zeros(4), method=method, backend=backend, options=opts)
    ref = so.minimize(nll_np, np.zeros(4), method="BFGS", jac="3-point",
                      options={"gtol": 1e-9})
    np.testing.assert_allclose(res.x, ref.x, atol=1e-5)
    # the closed-form gradient X^T (sigmoid(X w) - y) vanishes at the optimum
    grad = X.T @ (1 / (1 + np.exp(-X @ res.x)) - y)
    assert np.abs(grad).max() < 1e-6
    np.testing.assert_allclose(res.fun, nll_np(res.x), rtol=1e-12)


# ---- constraints ----

@pytest.mark.parametrize("method", ["SLSQP", "trust-constr"])
def test_dict_constraints_get_jacobians(backend, method):
    f = lambda x: x[0] ** 2 + x[1] ** 2
    tight = {"gtol": 1e-12, "xtol": 1e-14, "barrier_tol": 1e-12} \
        if method == "trust-constr" else {"ftol": 1e-14}
    atol = 1e-6 if method == "SLSQP" else 1e-4   # an interior-point method stops near the wall
    res = pyad.minimize(f, [2.0, 0.0], method=method, backend=backend, options=tight,
                        constraints=[{"type": "eq", "fun": lambda x: x[0] + x[1] - 1}])
    np.testing.assert_allclose(res.x, [0.5, 0.5], atol=atol)
    res = pyad.minimize(f, [2.0, 1.0], method=method, backend=backend, options=tight,
                        constraints=[{"type": "ineq", "fun": lambda x, c: x[0] - c,
                                      "args": (0.7,)}])
    np.testing.assert_allclose(res.x, [0.7, 0.0], atol=atol)
    # a vector-valued nonlinear constraint: the unit disc (and x0 >= 0)
    res = pyad.minimize(lambda x: -(x[0] + x[1]), [0.1, 0.0], method=method,
                        backend=backend, options=tight,
                        constraints={"type": "ineq",
                                     "fun": lambda x: pyad.stack([1 - x[0] ** 2 - x[1] ** 2,
                                                                 x[0]])})
    np.testing.assert_allclose(res.x, [2 ** -0.5, 2 ** -0.5], atol=atol)


def test_constraint_jacobian_is_the_tapes(backend, monkeypatch):
    """scipy receives a callable jac for each dict constraint (no finite differences)."""
    seen = {}
    real = so.minimize
    x = np.array([0.3, 1.7])

    def spy(fun, x0, **kw):
        con = kw["constraints"][0]
        seen["jac"], seen["fun"] = con["jac"](x), con["fun"](x)   # while the tapes are open
        return real(fun, x0, **kw)

    monkeypatch.setattr(so, "minimize", spy)
    c = lambda x: pyad.stack([x[0] * x[1] - 1.0, pyad.exp(x[0]) - x[1]])
    res = pyad.minimize(lambda x: np.sum(x ** 2), [1.0, 2.0], method="SLSQP", backend=backend,
                        constraints=[{"type": "ineq", "fun": c}])
    J_exact = np.array([[x[1], x[0]], [np.exp(x[0]), -1.0]])
    np.testing.assert_allclose(seen["jac"], J_exact, rtol=1e-13)
    np.testing.assert_allclose(seen["fun"], [x[0] * x[1] - 1, np.exp(x[0]) - x[1]])
    assert res.success
    np.testing.assert_allclose(res.x, [1.0, 1.0], atol=1e-6)   # min |x|^2 on x0 x1 >= 1


def test_nonlinear_constraint_object(backend):
    con = so.NonlinearConstraint(lambda x: x[0] ** 2 + x[1] ** 2, -np.inf, 1.0)
    res = pyad.minimize(lambda x: -(x[0] + x[1]), [0.1, 0.0], method="trust-constr",
                        backend=backend, constraints=con,
                        options={"gtol": 1e-12, "xtol": 1e-14, "barrier_tol": 1e-12})
    np.testing.assert_allclose(res.x, [2 ** -0.5, 2 ** -0.5], atol=1e-5)


# ---- least squares ----

def test_least_squares_exponential_fit(backend):
    t = np.linspace(0, 3, 30)
    y = 2.5 * np.exp(-1.3 * t) + 0.5
    resid = lambda p: p[0] * pyad.exp(-p[1] * t) + p[2] - y
    for method in ("trf", "lm"):
        res = pyad.least_squares(resid, [1.0, 1.0, 0.0], backend=backend, method=method,
                                 xtol=1e-14, ftol=1e-14, gtol=1e-14)
        np.testing.assert_allclose(res.x, [2.5, 1.3, 0.5], atol=1e-8)
        p = res.x
        J_exact = np.column_stack([np.exp(-p[1] * t), -p[0] * t * np.exp(-p[1] * t),
                                   np.ones_like(t)])
        np.testing.assert_allclose(res.jac, J_exact, rtol=1e-10, atol=1e-12)
    ref = so.least_squares(lambda p: p[0] * np.exp(-p[1] * t) + p[2] - y, [1.0, 1.0, 0.0],
                           jac="3-point")
    np.testing.assert_allclose(res.x, ref.x, atol=1e-6)


def test_least_squares_more_parameters_than_residuals(backend):
    # one residual, two parameters: reverse-mode Jacobian of shape (1, 2)
    res = pyad.least_squares(lambda p: p[0] ** 2 + p[1] ** 2 - 4.0, [1.0, 1.0],
                             backend=backend)
    np.testing.assert_allclose(np.hypot(*res.x), 2.0, rtol=1e-8)
    assert res.jac.shape == (1, 2)


# ---- scipy is optional ----

def test_missing_scipy_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.optimize", None)
    with pytest.raises(ImportError, match=r'pip install "pyad-tape\[optimize\]"'):
        pyad.minimize(rosen, np.zeros(3))
    with pytest.raises(ImportError, match=r'pip install "pyad-tape\[optimize\]"'):
        pyad.least_squares(lambda x: x - 1.0, np.zeros(3))
    # scipy_objective needs no scipy
    obj = pyad.scipy_objective(rosen, np.zeros(3))
    assert obj.fun(np.ones(3)) == 0.0
