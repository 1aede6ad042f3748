"""Issue 14: special functions and the numpy functions composed from rows.

The elementwise rows (gammaln, digamma, expit, logaddexp, hypot, ...) are
checked row by row in tests/primitive_table.py; here are what that table
cannot say: the C digamma family against scipy over a wide range, extreme
inputs, and the composites (np.var, np.std, np.diag, np.trace, np.sort,
pyad.logsumexp, pyad.softmax, pyad.log_softmax): values against numpy/scipy,
gradients against central differences, forward against reverse, HVPs, on both
backends, and the stable forms at inputs where the naive ones overflow.
"""
import numpy as np
import pytest
import scipy.special

import pyad
from helpers import central_diff_grad

RNG = np.random.default_rng(14)


def assert_rel(got, want, rtol, msg=""):
    np.testing.assert_allclose(got, want, rtol=rtol, atol=0, err_msg=msg)


# ---- the C digamma, trigamma, tetragamma against scipy over a wide range ----

POSITIVE = np.concatenate([np.geomspace(1e-8, 1e8, 400), RNG.uniform(0.0, 20.0, 400),
                           np.linspace(1.2, 1.8, 101)])   # around digamma's root 1.4616...
NEGATIVE = -np.concatenate([np.geomspace(1e-3, 1e3, 300), RNG.uniform(0.0, 30.0, 300)])
NEGATIVE = NEGATIVE[np.abs(NEGATIVE - np.round(NEGATIVE)) > 0.05]   # off the poles


def _away_from_roots(f, xs, scale):
    """Points where f is not within `scale` (relative) of a root: near a root a
    value has no relative accuracy to compare, in scipy's result as in ours."""
    return xs[np.abs(f(xs)) > scale]


def _digamma_family(backend, xs):
    """digamma's value, first and second derivative at each x, through one
    recorded row: the value, a gradient sweep, and a Hessian (forward over reverse)."""
    tape = pyad.trace(lambda x: np.sum(scipy.special.digamma(x)), xs, backend=backend)
    with pyad.Tape(backend=backend) as t:
        x = t.input(xs)
        t.output(scipy.special.digamma(x))
    values = t()
    return values, tape.gradient(xs), tape.hvp(xs, np.ones_like(xs))


@pytest.mark.parametrize("side", ["positive", "negative"])
def test_c_digamma_trigamma_tetragamma_match_scipy(side):
    xs = POSITIVE if side == "positive" else NEGATIVE
    values, d1, d2 = _digamma_family("c", xs)
    keep = lambda f: np.abs(f(xs)) > 1e-2   # noqa: E731  off the roots (negative side)
    ok0 = keep(scipy.special.digamma)
    ok1 = keep(lambda x: scipy.special.polygamma(1, x))
    ok2 = keep(lambda x: scipy.special.polygamma(2, x))
    # positive x: within a few ulp; negative x: the reflection formula's cot(pi x)
    # cancels against psi(1 - x) near the roots, for scipy as for us
    rtol = 1e-14 if side == "positive" else 1e-12
    assert_rel(values[ok0], scipy.special.digamma(xs[ok0]), rtol, "digamma")
    assert_rel(d1[ok1], scipy.special.polygamma(1, xs[ok1]), rtol, "trigamma")
    assert_rel(d2[ok2], scipy.special.polygamma(2, xs[ok2]), rtol, "tetragamma")


def test_digamma_at_poles_and_infinities_as_scipy(backend):
    xs = np.array([0.0, -0.0, -1.0, -7.0, np.inf, np.nan, 1e-300, -1e-300])
    with pyad.Tape(backend=backend) as t:
        t.output(scipy.special.digamma(t.input(xs)))
    np.testing.assert_array_equal(t(), scipy.special.digamma(xs))


def test_gammaln_gradient_is_digamma_on_both_sides_of_zero(backend):
    xs = np.array([0.01, 0.5, 3.7, 150.0, -0.5, -3.3, -10.25])
    g = pyad.grad(lambda x: np.sum(scipy.special.gammaln(x)), backend=backend)(xs)
    assert_rel(g, scipy.special.digamma(xs), 1e-13)


# ---- extreme inputs of the elementwise rows ----

def _value_grad(f, x, backend):
    """f elementwise on an array: its values and its elementwise derivative."""
    with pyad.Tape(backend=backend) as t:
        t.output(f(t.input(x)))
    return t(), pyad.grad(lambda v: np.sum(f(v)), backend=backend)(x)


def test_expit_derivative_keeps_its_tail(backend):
    """z (1 - z) rounds to 0 once expit(x) rounds to 1 (x > 37); e^-|x| / (1 + e^-|x|)^2
    keeps the tail exactly, on both sides."""
    x = np.array([-700.0, -100.0, -40.0, 0.0, 40.0, 100.0, 700.0])
    z, g = _value_grad(scipy.special.expit, x, backend)
    np.testing.assert_array_equal(z, scipy.special.expit(x))
    want = np.exp(-np.abs(x)) / (1.0 + np.exp(-np.abs(x))) ** 2
    assert_rel(g, want, 1e-14)
    assert g[-2] > 0 and g[1] > 0


def test_logaddexp_at_extremes_has_no_nan(backend):
    x = np.array([1000.0, -1000.0, 800.0, -np.inf, np.inf, 0.0])
    y = np.array([1000.0, -1000.0, -800.0, -np.inf, 3.0, -np.inf])
    tape = pyad.trace(lambda z: np.logaddexp(z[0], z[1]), np.stack([x, y]), backend=backend)
    np.testing.assert_array_equal(tape(), np.logaddexp(x, y))
    gx, gy = tape.vjp(np.stack([x, y]), np.ones(6))[1]
    np.testing.assert_array_equal(gx, [0.5, 0.5, 1.0, 0.5, 1.0, 1.0])
    np.testing.assert_array_equal(gy, [0.5, 0.5, 0.0, 0.5, 0.0, 0.0])


def test_hypot_partials_neither_overflow_nor_underflow(backend):
    x = np.array([1e200, -2e-200, 3.0, 0.0])
    y = np.array([3e200, 1e-200, 4.0, 0.0])
    with pyad.Tape(backend=backend) as t:
        a, b = t.input(x), t.input(y)
        t.output(np.sum(np.hypot(a, b)))
    r = np.hypot(x, y)
    gx, gy = t.gradient()
    with np.errstate(invalid="ignore"):
        want_x, want_y = np.where(r > 0, x / r, 0.0), np.where(r > 0, y / r, 0.0)
    assert_rel(gx, want_x, 1e-15)
    assert_rel(gy, want_y, 1e-15)
    # the Hessian of hypot is (y^2, -xy; -xy, x^2) / r^3, finite as ratios
    H = pyad.hessian(lambda v: np.hypot(v[0], v[1]), backend=backend)(np.array([3e100, 4e100]))
    assert_rel(H, np.array([[16.0, -12.0], [-12.0, 9.0]]) / 125.0 * 1e-100, 1e-14)


def test_arcsinh_far_out(backend):
    x = np.array([-1e300, -1e10, 1e10, 1e300])
    z, g = _value_grad(np.arcsinh, x, backend)
    assert_rel(z, np.arcsinh(x), 1e-15)
    assert_rel(g, 1.0 / np.abs(x), 1e-15)


def test_sign_floor_ceil_values_and_zero_derivatives(backend):
    x = np.array([-2.5, -0.0, 0.0, 0.3, 4.0, np.nan, -np.inf])
    for f in (np.sign, np.floor, np.ceil):
        z, g = _value_grad(f, x, backend)
        np.testing.assert_array_equal(z, f(x))
        assert np.signbit(z[1]) == np.signbit(f(x)[1])
        np.testing.assert_array_equal(g, np.zeros_like(x))


def test_xlogy_is_zero_where_x_is_zero_but_nan_stays(backend):
    x = np.array([0.0, 0.0, 2.0, 0.0])
    y = np.array([0.0, 5.0, 3.0, np.nan])
    with pyad.Tape(backend=backend) as t:
        t.output(scipy.special.xlogy(t.input(x), t.input(y)))
    np.testing.assert_array_equal(t(), scipy.special.xlogy(x, y))


# ---- composites: values, gradients, forward vs reverse, HVP ----

M = RNG.standard_normal((3, 4))
V = RNG.standard_normal(5)

COMPOSITES = {
    "var": (lambda x: np.var(x), np.var, M),
    "var axis ddof": (lambda x: np.var(x, axis=0, ddof=1), lambda x: np.var(x, axis=0, ddof=1), M),
    "var keepdims": (lambda x: np.var(x, axis=1, keepdims=True),
                     lambda x: np.var(x, axis=1, keepdims=True), M),
    "var correction": (lambda x: np.var(x, correction=1), lambda x: np.var(x, ddof=1), M),
    "std": (lambda x: np.std(x), np.std, M),
    "std axis ddof keepdims": (lambda x: np.std(x, axis=(0, 1), ddof=2, keepdims=True),
                               lambda x: np.std(x, axis=(0, 1), ddof=2, keepdims=True), M),
    "diag of a vector": (lambda x: np.diag(x), np.diag, V),
    "diag of a vector, k": (lambda x: np.diag(x, 2), lambda x: np.diag(x, 2), V),
    "diag of a matrix": (lambda x: np.diag(x, -1), lambda x: np.diag(x, -1), M),
    "trace": (lambda x: np.trace(x), np.trace, M),
    "trace offset": (lambda x: np.trace(x, offset=1), lambda x: np.trace(x, offset=1), M),
    "sort": (lambda x: np.sort(x), np.sort, V),
    "sort axis 0": (lambda x: np.sort(x, axis=0), lambda x: np.sort(x, axis=0), M),
    "sort flat": (lambda x: np.sort(x, axis=None), lambda x: np.sort(x, axis=None), M),
    "logsumexp": (pyad.logsumexp, scipy.special.logsumexp, M),
    "logsumexp axis": (lambda x: pyad.logsumexp(x, axis=1),
                       lambda x: scipy.special.logsumexp(x, axis=1), M),
    "logsumexp keepdims": (lambda x: pyad.logsumexp(x, axis=0, keepdims=True),
                           lambda x: scipy.special.logsumexp(x, axis=0, keepdims=True), M),
    "softmax": (pyad.softmax, lambda x: scipy.special.softmax(x, axis=-1), M),
    "softmax axis 0": (lambda x: pyad.softmax(x, axis=0),
                       lambda x: scipy.special.softmax(x, axis=0), M),
    "log_softmax": (pyad.log_softmax, lambda x: scipy.special.log_softmax(x, axis=-1), M),
    "log_softmax axis 0": (lambda x: pyad.log_softmax(x, axis=0),
                           lambda x: scipy.special.log_softmax(x, axis=0), M),
}
WEIGHTS = {name: RNG.standard_normal(np.shape(ref(x0))) for name, (_, ref, x0) in COMPOSITES.items()}


def _scalarized(f, w):
    """sum(w * f(x) ** 2): a scalar with curvature even where f is linear."""
    return lambda x: np.sum(w * f(x) ** 2)


@pytest.mark.parametrize("name", sorted(COMPOSITES))
def test_composite_value_matches_numpy(name, backend):
    f, ref, x0 = COMPOSITES[name]
    with pyad.Tape(backend=backend) as t:
        y = f(t.input(x0))
        t.output(y)
    assert np.shape(t()) == np.shape(ref(x0))
    assert_rel(t(), ref(x0), 1e-14)
    x1 = x0 + 0.01 * RNG.standard_normal(x0.shape)   # replayed (same sort order)
    assert_rel(pyad.trace(f, x0, backend=backend)(x1), ref(x1), 1e-14)


@pytest.mark.parametrize("name", sorted(COMPOSITES))
def test_composite_gradient_matches_central_differences(name, backend):
    f, ref, x0 = COMPOSITES[name]
    w = WEIGHTS[name]
    g = pyad.grad(_scalarized(f, w), backend=backend)(x0)
    fd = central_diff_grad(_scalarized(ref, w), x0)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", sorted(COMPOSITES))
def test_composite_forward_and_reverse_agree(name, backend):
    f, ref, x0 = COMPOSITES[name]
    tape = pyad.trace(f, x0, backend=backend)
    J_fwd = tape.jacobian(x0, mode="forward")
    J_rev = tape.jacobian(x0, mode="reverse")
    np.testing.assert_allclose(J_fwd, J_rev, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", sorted(COMPOSITES))
def test_composite_hvp_matches_differences_of_the_gradient(name, backend):
    f, ref, x0 = COMPOSITES[name]
    s = _scalarized(f, WEIGHTS[name])
    tape = pyad.trace(s, x0, backend=backend)
    v = RNG.standard_normal(x0.shape)
    h = 1e-6
    fd = (tape.gradient(x0 + h * v) - tape.gradient(x0 - h * v)) / (2 * h)
    np.testing.assert_allclose(tape.hvp(x0, v), fd, rtol=1e-6, atol=1e-7)


def test_the_backends_agree_on_the_composites():
    for name, (f, ref, x0) in COMPOSITES.items():
        s = _scalarized(f, WEIGHTS[name])
        v = np.ones_like(x0)
        c, p = pyad.trace(s, x0, backend="c"), pyad.trace(s, x0, backend="python")
        np.testing.assert_allclose(c.gradient(x0), p.gradient(x0), rtol=1e-12, atol=1e-14,
                                   err_msg=name)
        np.testing.assert_allclose(c.hvp(x0, v), p.hvp(x0, v), rtol=1e-11, atol=1e-13,
                                   err_msg=name)


# ---- exact derivatives of the stable forms ----

def test_logsumexp_gradient_is_softmax_and_hessian_is_its_jacobian(backend):
    x = RNG.standard_normal(6)
    p = scipy.special.softmax(x)
    assert_rel(pyad.grad(pyad.logsumexp, backend=backend)(x), p, 1e-14)
    H = pyad.hessian(pyad.logsumexp, backend=backend)(x)
    np.testing.assert_allclose(H, np.diag(p) - np.outer(p, p), rtol=1e-13, atol=1e-15)
    J = pyad.jacobian(pyad.softmax, backend=backend)(x)
    np.testing.assert_allclose(J, np.diag(p) - np.outer(p, p), rtol=1e-13, atol=1e-15)
    J = pyad.jacobian(pyad.log_softmax, backend=backend)(x)
    np.testing.assert_allclose(J, np.eye(6) - p, rtol=1e-13, atol=1e-15)


def test_the_shift_does_not_split_the_gradient_at_a_tied_maximum(backend):
    """With the maximum's derivative cut, a tie in x changes nothing: the gradient
    of logsumexp is still softmax (the max's tie rule would not cancel exactly)."""
    x = np.array([2.0, 2.0, -1.0])
    assert_rel(pyad.grad(pyad.logsumexp, backend=backend)(x), scipy.special.softmax(x), 1e-15)


# ---- extreme inputs: the stable forms stay finite where the naive ones do not ----

def test_logsumexp_of_large_equal_values(backend):
    x = np.array([1000.0, 1000.0])
    value, g = pyad.value_and_grad(pyad.logsumexp, backend=backend)(x)
    assert value == pytest.approx(1000.0 + np.log(2.0), rel=1e-15)
    np.testing.assert_array_equal(g, [0.5, 0.5])
    value, g = pyad.value_and_grad(pyad.logsumexp, backend=backend)(-x)
    assert value == pytest.approx(-1000.0 + np.log(2.0), rel=1e-15)
    np.testing.assert_array_equal(g, [0.5, 0.5])


def test_softmax_and_log_softmax_of_large_values_have_no_nan(backend):
    x = np.array([[1000.0, 0.0, -1000.0], [800.0, 800.0, 799.0]])
    for f, ref in ((pyad.softmax, scipy.special.softmax),
                   (pyad.log_softmax, scipy.special.log_softmax)):
        tape = pyad.trace(f, x, backend=backend)
        assert_rel(tape(x), ref(x, axis=-1), 1e-15)
        J = tape.jacobian(x)
        assert np.all(np.isfinite(J)), f.__name__
        H = pyad.hessian(lambda v: np.sum(f(v)[:, 0]), backend=backend)(x)
        assert np.all(np.isfinite(H)), f.__name__
    # log_softmax is exact where log(softmax) is log(0) = -inf
    assert float(pyad.log_softmax(np.array([1000.0, -1000.0]))[1]) == -2000.0


def test_logsumexp_with_infinities_as_scipy(backend):
    for x in ([-np.inf, -np.inf], [np.inf, 1.0], [-np.inf, 2.0]):
        x = np.array(x)
        with pyad.Tape(backend=backend) as t:
            t.output(pyad.logsumexp(t.input(x)))
        with np.errstate(all="ignore"):
            np.testing.assert_array_equal(t(), scipy.special.logsumexp(x))


def test_stable_forms_on_plain_arrays_and_lists():
    x = [[1.0, 2.0, 3.0], [0.5, -1.0, 4.0]]
    assert_rel(pyad.logsumexp(x), scipy.special.logsumexp(x), 1e-15)
    assert_rel(pyad.logsumexp(x, axis=0), scipy.special.logsumexp(x, axis=0), 1e-15)
    assert_rel(pyad.softmax(x), scipy.special.softmax(x, axis=-1), 1e-15)
    assert_rel(pyad.log_softmax(x, axis=0), scipy.special.log_softmax(x, axis=0), 1e-15)
    assert isinstance(pyad.logsumexp(np.array([1.0, 2.0])), float)


def test_scipy_logsumexp_on_an_active_array_names_pyad_logsumexp(backend):
    with pyad.Tape(backend=backend) as t:
        x = t.input(np.array([1.0, 2.0]))
        for call, name in ((scipy.special.logsumexp, "pyad.logsumexp"),
                           (scipy.special.softmax, "pyad.softmax"),
                           (scipy.special.log_softmax, "pyad.log_softmax")):
            with pytest.raises(TypeError, match=name.replace(".", r"\.")):
                call(x)


# ---- sort: the recorded order is guarded ----

def test_sort_replays_while_the_order_holds_and_re_records_where_it_changes(backend):
    f = lambda x: np.sum(np.sort(x) * np.arange(1.0, 4.0))   # noqa: E731
    x0 = np.array([3.0, 1.0, 2.0])
    tape = pyad.trace(f, x0, backend=backend)
    x1 = np.array([3.5, 0.5, 2.5])                            # same order
    assert tape(x1) == pytest.approx(f(x1))
    np.testing.assert_array_equal(tape.gradient(x1), [3.0, 1.0, 2.0])
    assert tape.retraces == 0
    x2 = np.array([1.0, 3.0, 2.0])                            # another order
    assert tape(x2) == pytest.approx(f(x2))
    np.testing.assert_array_equal(tape.gradient(x2), [1.0, 3.0, 2.0])
    assert tape.retraces >= 1


def test_sort_replay_at_another_order_raises_without_the_function(backend):
    with pyad.Tape(backend=backend) as t:
        x = t.input(np.array([3.0, 1.0, 2.0]))
        t.output(np.sum(np.sort(x) * np.arange(1.0, 4.0)))
    assert t.gradient(np.array([5.0, 0.0, 1.0])).tolist() == [3.0, 1.0, 2.0]
    with pytest.raises(pyad.BranchError):
        t.gradient(np.array([1.0, 3.0, 2.0]))
    with pytest.raises(pyad.BranchError):   # a NaN moved off the end is an order change too
        t(np.array([3.0, np.nan, 2.0]))


def test_sort_puts_nans_last_as_numpy(backend):
    x0 = np.array([2.0, np.nan, -1.0, 0.5])
    with pyad.Tape(backend=backend) as t:
        t.output(np.sort(t.input(x0)))
    np.testing.assert_array_equal(t(), np.sort(x0))
    np.testing.assert_array_equal(t(np.array([3.0, np.nan, -2.0, 0.0])),
                                  np.sort([3.0, np.nan, -2.0, 0.0]))
