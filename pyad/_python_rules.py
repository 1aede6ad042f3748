"""Value and derivative rules of every primitive, in Python, keyed by op name.

This is the pure-Python backend's twin of csrc/ops.def, written independently so
that the two backends check each other (the one deliberate second list of
primitives). At import, check_rules_match_registry() compares the names here
with the registry the C core reports (pyad.ops): a primitive without a rule, or
a rule for a primitive the registry does not declare, stops the import with an
error naming it.

Three tables, by the kind of row in ops.def:
    RULES        unary, binary and with_const rows:
                 (value(m, x, y), partials(m, x, y, z) -> (d_x, d_y),
                  second(m, x, y, z, xd, yd) -> (dd_x, dd_y))
                 with the same meaning as the columns of ops.def;
    COMPARISONS  compare and compare_c rows: cmp(x, y) -> bool;
    SPECIAL      special rows, whose sweeps are written out by hand in
                 backend_python.py (their operands are not (x, y)).

`m` is a math namespace holding the libm functions of LIBM under their C names:
the fast one uses the math module; when it raises (math.log(0), 1/0, overflow),
the rule is evaluated again with numpy scalars, which follow IEEE like the C core.
"""
import math
from types import SimpleNamespace

import numpy as np

from . import ops

# C name -> its IEEE twin (a numpy ufunc; for a function math never raises on,
# math's own). The fast version is always math's function of the same C name.
# numpy has no erf: math's, applied elementwise (block rows evaluate rules on arrays)
_ARRAY_ERF = np.vectorize(math.erf, otypes=[float])
_ARRAY_ERFC = np.vectorize(math.erfc, otypes=[float])
LIBM = {
    "exp": np.exp, "log": np.log, "log1p": np.log1p, "expm1": np.expm1, "sqrt": np.sqrt,
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "asin": np.arcsin, "acos": np.arccos,
    "atan": np.arctan, "atan2": np.arctan2, "sinh": np.sinh, "cosh": np.cosh,
    "tanh": np.tanh, "fabs": np.fabs, "pow": np.power, "erf": _ARRAY_ERF, "erfc": _ARRAY_ERFC,
    "asinh": np.arcsinh, "acosh": np.arccosh, "atanh": np.arctanh, "log2": np.log2,
    "log10": np.log10, "hypot": np.hypot,
}
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
FAST = SimpleNamespace(**{name: getattr(math, name) for name in LIBM})
IEEE = SimpleNamespace(**LIBM)


def call(f, *args):
    """f(FAST, *args), or with IEEE numpy scalars where plain math raises."""
    try:
        return f(FAST, *args)
    except (ArithmeticError, ValueError):
        with np.errstate(all="ignore"):
            r = f(IEEE, *(np.float64(a) for a in args))
        return tuple(float(e) for e in r) if isinstance(r, tuple) else float(r)


# ---- helpers mirroring csrc/rules.h (JAX's conventions at kinks) ----

def sign_of(x):
    return 1.0 if x > 0 else (-1.0 if x < 0 else x)


def max_nan(x, y):
    return x if (x != x or x >= y) else y


def min_nan(x, y):
    return x if (x != x or x <= y) else y


def tie_share(x, y):
    return 1.0 if x > y else (0.5 if x == y else 0.0)


def log_or_zero(m, x):
    return 0.0 if x == 0 else m.log(x)


def pow_d_base(m, x, y):
    return 0.0 if y == 0 else y * m.pow(x, y - 1.0)


def pow_dd_base(m, x, y, xd, yd):
    second = 0.0 if y in (0.0, 1.0) else y * (y - 1.0) * m.pow(x, y - 2.0)
    cross = 0.0 if yd == 0 else yd * (m.pow(x, y - 1.0) + pow_d_base(m, x, y) * log_or_zero(m, x))
    return second * xd + cross


def pow_dd_exponent(m, x, y, z, xd, yd):
    lx = log_or_zero(m, x)
    cross = 0.0 if xd == 0 else xd * (m.pow(x, y - 1.0) + pow_d_base(m, x, y) * lx)
    return cross + yd * z * lx * lx


def _zero2(m, x, y, z, xd, yd):
    return 0.0, 0.0


def unary(value, d, dd=None):
    """A rule for z = f(x): d(m, x, z) is f'(x); dd(m, x, z, xd) is f''(x) xd."""
    return (
        lambda m, x, y: value(m, x),
        lambda m, x, y, z: (d(m, x, z), 0.0),
        (lambda m, x, y, z, xd, yd: (dd(m, x, z, xd), 0.0)) if dd else _zero2,
    )


def linear(value, d_x, d_y=0.0):
    """A rule whose partials are constants."""
    return (value, lambda m, x, y, z: (d_x, d_y), _zero2)


RULES = {
    # binary
    "add": linear(lambda m, x, y: x + y, 1.0, 1.0),
    "sub": linear(lambda m, x, y: x - y, 1.0, -1.0),
    "mul": (lambda m, x, y: x * y, lambda m, x, y, z: (y, x),
            lambda m, x, y, z, xd, yd: (yd, xd)),
    "div": (lambda m, x, y: x / y, lambda m, x, y, z: (1.0 / y, -z / y),
            lambda m, x, y, z, xd, yd: (-yd / (y * y), (2.0 * z * yd - xd) / (y * y))),
    "pow": (lambda m, x, y: m.pow(x, y),
            lambda m, x, y, z: (pow_d_base(m, x, y), z * log_or_zero(m, x)),
            lambda m, x, y, z, xd, yd: (pow_dd_base(m, x, y, xd, yd),
                                        pow_dd_exponent(m, x, y, z, xd, yd))),
    "arctan2": (lambda m, x, y: m.atan2(x, y),
                lambda m, x, y, z: (y / (x * x + y * y), -x / (x * x + y * y)),
                lambda m, x, y, z, xd, yd: (
                    yd / (x * x + y * y) - y * (2 * x * xd + 2 * y * yd) / (x * x + y * y) ** 2,
                    -xd / (x * x + y * y) + x * (2 * x * xd + 2 * y * yd) / (x * x + y * y) ** 2)),
    "maximum": (lambda m, x, y: max_nan(x, y),
                lambda m, x, y, z: (tie_share(x, y), tie_share(y, x)), _zero2),
    "minimum": (lambda m, x, y: min_nan(x, y),
                lambda m, x, y, z: (tie_share(y, x), tie_share(x, y)), _zero2),
    # one constant operand (y is the constant)
    "add_c": linear(lambda m, x, y: x + y, 1.0),
    "sub_c": linear(lambda m, x, y: x - y, 1.0),
    "mul_c": (lambda m, x, y: x * y, lambda m, x, y, z: (y, 0.0), _zero2),
    "div_c": (lambda m, x, y: x / y, lambda m, x, y, z: (1.0 / y, 0.0), _zero2),
    "rsub_c": linear(lambda m, x, y: y - x, -1.0),
    "rdiv_c": (lambda m, x, y: y / x, lambda m, x, y, z: (-z / x, 0.0),
               lambda m, x, y, z, xd, yd: (2.0 * z * xd / (x * x), 0.0)),
    "pow_c": (lambda m, x, y: m.pow(x, y), lambda m, x, y, z: (pow_d_base(m, x, y), 0.0),
              lambda m, x, y, z, xd, yd: (pow_dd_base(m, x, y, xd, 0.0), 0.0)),
    "rpow_c": (lambda m, x, y: m.pow(y, x), lambda m, x, y, z: (z * log_or_zero(m, y), 0.0),
               lambda m, x, y, z, xd, yd: (z * log_or_zero(m, y) ** 2 * xd, 0.0)),
    "maximum_c": (lambda m, x, y: max_nan(x, y), lambda m, x, y, z: (tie_share(x, y), 0.0), _zero2),
    "minimum_c": (lambda m, x, y: min_nan(x, y), lambda m, x, y, z: (tie_share(y, x), 0.0), _zero2),
    # unary
    "neg": unary(lambda m, x: -x, lambda m, x, z: -1.0),
    "square": unary(lambda m, x: x * x, lambda m, x, z: 2.0 * x, lambda m, x, z, xd: 2.0 * xd),
    "reciprocal": unary(lambda m, x: 1.0 / x, lambda m, x, z: -z * z,
                        lambda m, x, z, xd: 2.0 * z * z * z * xd),
    "exp": unary(lambda m, x: m.exp(x), lambda m, x, z: z, lambda m, x, z, xd: z * xd),
    "log": unary(lambda m, x: m.log(x), lambda m, x, z: 1.0 / x,
                 lambda m, x, z, xd: -xd / (x * x)),
    "log1p": unary(lambda m, x: m.log1p(x), lambda m, x, z: 1.0 / (1.0 + x),
                   lambda m, x, z, xd: -xd / ((1.0 + x) * (1.0 + x))),
    "expm1": unary(lambda m, x: m.expm1(x), lambda m, x, z: m.exp(x),
                   lambda m, x, z, xd: m.exp(x) * xd),
    "sqrt": unary(lambda m, x: m.sqrt(x), lambda m, x, z: 0.5 / z,
                  lambda m, x, z, xd: -0.25 * xd / (z * z * z)),
    "sin": unary(lambda m, x: m.sin(x), lambda m, x, z: m.cos(x), lambda m, x, z, xd: -z * xd),
    "cos": unary(lambda m, x: m.cos(x), lambda m, x, z: -m.sin(x), lambda m, x, z, xd: -z * xd),
    "tan": unary(lambda m, x: m.tan(x), lambda m, x, z: 1.0 + z * z,
                 lambda m, x, z, xd: 2.0 * z * (1.0 + z * z) * xd),
    "arcsin": unary(lambda m, x: m.asin(x), lambda m, x, z: 1.0 / m.sqrt(1.0 - x * x),
                    lambda m, x, z, xd: x * xd / ((1.0 - x * x) * m.sqrt(1.0 - x * x))),
    "arccos": unary(lambda m, x: m.acos(x), lambda m, x, z: -1.0 / m.sqrt(1.0 - x * x),
                    lambda m, x, z, xd: -x * xd / ((1.0 - x * x) * m.sqrt(1.0 - x * x))),
    "arctan": unary(lambda m, x: m.atan(x), lambda m, x, z: 1.0 / (1.0 + x * x),
                    lambda m, x, z, xd: -2.0 * x * xd / ((1.0 + x * x) * (1.0 + x * x))),
    "sinh": unary(lambda m, x: m.sinh(x), lambda m, x, z: m.cosh(x), lambda m, x, z, xd: z * xd),
    "cosh": unary(lambda m, x: m.cosh(x), lambda m, x, z: m.sinh(x), lambda m, x, z, xd: z * xd),
    "tanh": unary(lambda m, x: m.tanh(x), lambda m, x, z: 1.0 - z * z,
                  lambda m, x, z, xd: -2.0 * z * (1.0 - z * z) * xd),
    "abs": unary(lambda m, x: m.fabs(x), lambda m, x, z: sign_of(x)),
    # the value passes, the derivative is zero by definition (pyad.stop_gradient)
    "stop_gradient": unary(lambda m, x: x, lambda m, x, z: 0.0),
    "erf": unary(lambda m, x: m.erf(x), lambda m, x, z: _TWO_OVER_SQRT_PI * m.exp(-x * x),
                 lambda m, x, z, xd: -2.0 * x * _TWO_OVER_SQRT_PI * m.exp(-x * x) * xd),
    "erfc": unary(lambda m, x: m.erfc(x), lambda m, x, z: -_TWO_OVER_SQRT_PI * m.exp(-x * x),
                  lambda m, x, z, xd: 2.0 * x * _TWO_OVER_SQRT_PI * m.exp(-x * x) * xd),
}

# ---- special functions (issue 14) ----
#
# Written apart from csrc/special_functions.h: values from scipy.special where
# scipy has the function (imported when first needed: scipy is optional for pyad,
# so the Python backend needs it only for these rows) and from numpy otherwise;
# derivatives from the textbook formulas. Each rule works on numbers and on
# arrays alike (block rows evaluate rules on arrays), so branches are np.where.

def _scipy_special(name, *first_args):
    """scipy.special.<name>(*first_args, x), imported on first use."""
    def f(*args):
        try:
            import scipy.special
        except ImportError as e:
            raise ImportError(f"the pure-Python backend computes {name} with scipy.special, "
                              "which is not installed (pip install scipy)") from e
        return getattr(scipy.special, name)(*first_args, *args)
    return f


_gammaln = _scipy_special("gammaln")
_digamma = _scipy_special("digamma")
_trigamma = _scipy_special("polygamma", 1)
_tetragamma = _scipy_special("polygamma", 2)
_expit = _scipy_special("expit")
_logit = _scipy_special("logit")
_xlogy = _scipy_special("xlogy")
_xlog1py = _scipy_special("xlog1py")
_LN2, _LN10 = math.log(2.0), math.log(10.0)


def _ieee(f):
    """f computed with numpy under IEEE rules (inf, NaN, no warning); a 0-d result
    comes back as a number."""
    def g(*args):
        with np.errstate(all="ignore"):
            r = f(*args)
        return r[()] if isinstance(r, np.ndarray) and r.ndim == 0 else r
    return g


@_ieee
def _log_gamma(x):
    """scipy's gammaln, but -log(x) for subnormal x, where scipy gives inf."""
    return np.where((x > 0) & (x < 1e-300), -np.log(x), _gammaln(x))


@_ieee
def _expit_d(x):
    # sigma(x) sigma(-x), each from its own stable form
    return _expit(x) * _expit(-x)


@_ieee
def _logaddexp_weight(x, y, z, base):
    """d/dx log_b(b^x + b^y) = b^(x - z): the weight of x; 1/2 at a tie (equal
    infinities included), 1 where x is z (x = inf > y included: x - z is NaN)."""
    return np.where(x == y, 0.5, np.where(x == z, 1.0, np.power(base, x - z)))


@_ieee
def _logaddexp_weight_d(x, y, z, base, xd, yd):
    """The weights' product times ln b (xd - yd): d(weight of x)/dt."""
    wx, wy = _logaddexp_weight(x, y, z, base), _logaddexp_weight(y, x, z, base)
    return np.log(base) * wx * wy * (np.subtract(xd, yd))


@_ieee
def _hypot_partial(x, z):
    return np.where(z == 0, 0.0, np.divide(x, z))


@_ieee
def _hypot_second(x, y, z, xd, yd):
    """d(x / z)/dt = (y^2 xd - x y yd) / z^3; 0 at the origin with the partials."""
    return np.where(z == 0, 0.0, (y * y * xd - x * y * yd) / (z * z * z))


@_ieee
def _cbrt(x):
    return np.cbrt(x)


@_ieee
def _flat(f, x):
    """A piecewise constant function's value (sign, floor, ceil)."""
    return f(x)


def _zero(m, x, z):
    return 0.0


SPECIAL_FUNCTION_RULES = {
    "gammaln": unary(lambda m, x: _log_gamma(x), lambda m, x, z: _digamma(x),
                     lambda m, x, z, xd: _trigamma(x) * xd),
    "digamma": unary(lambda m, x: _digamma(x), lambda m, x, z: _trigamma(x),
                     lambda m, x, z, xd: _tetragamma(x) * xd),
    "expit": unary(lambda m, x: _expit(x), lambda m, x, z: _expit_d(x),
                   lambda m, x, z, xd: _expit_d(x) * (1.0 - 2.0 * _expit(x)) * xd),
    "logit": unary(lambda m, x: _logit(x), lambda m, x, z: 1.0 / x + 1.0 / (1.0 - x),
                   lambda m, x, z, xd: (1.0 / ((1.0 - x) * (1.0 - x)) - 1.0 / (x * x)) * xd),
    # sqrt(1 + x^2) as hypot(1, x): 1 + x * x overflows for |x| > 1e154
    "arcsinh": unary(lambda m, x: m.asinh(x), lambda m, x, z: 1.0 / m.hypot(1.0, x),
                     lambda m, x, z, xd: -x * xd / m.pow(m.hypot(1.0, x), 3)),
    "arccosh": unary(lambda m, x: m.acosh(x),
                     lambda m, x, z: 1.0 / (m.sqrt(x - 1.0) * m.sqrt(x + 1.0)),
                     lambda m, x, z, xd: -x * xd / m.pow(m.sqrt(x - 1.0) * m.sqrt(x + 1.0), 3)),
    "arctanh": unary(lambda m, x: m.atanh(x), lambda m, x, z: 0.5 / (1.0 - x) + 0.5 / (1.0 + x),
                     lambda m, x, z, xd: 2.0 * x * xd / ((1.0 - x * x) ** 2)),
    "cbrt": unary(lambda m, x: _cbrt(x), lambda m, x, z: 1.0 / (3.0 * z * z),
                  lambda m, x, z, xd: -2.0 / 9.0 * xd / (x * z * z)),
    "exp2": unary(lambda m, x: m.pow(2.0, x), lambda m, x, z: _LN2 * z,
                  lambda m, x, z, xd: _LN2 * _LN2 * z * xd),
    "log2": unary(lambda m, x: m.log2(x), lambda m, x, z: 1.0 / (_LN2 * x),
                  lambda m, x, z, xd: -xd / (_LN2 * x * x)),
    "log10": unary(lambda m, x: m.log10(x), lambda m, x, z: 1.0 / (_LN10 * x),
                   lambda m, x, z, xd: -xd / (_LN10 * x * x)),
    # piecewise constant: derivative zero (declared not differentiable in ops.def)
    "sign": unary(lambda m, x: _flat(np.sign, x), _zero),
    "floor": unary(lambda m, x: _flat(np.floor, x), _zero),
    "ceil": unary(lambda m, x: _flat(np.ceil, x), _zero),
    "xlogy": (lambda m, x, y: _xlogy(x, y), lambda m, x, y, z: (m.log(y), x / y),
              lambda m, x, y, z, xd, yd: (yd / y, (xd * y - x * yd) / (y * y))),
    "xlog1py": (lambda m, x, y: _xlog1py(x, y),
                lambda m, x, y, z: (m.log1p(y), x / (1.0 + y)),
                lambda m, x, y, z, xd, yd: (yd / (1.0 + y),
                                            (xd * (1.0 + y) - x * yd) / ((1.0 + y) * (1.0 + y)))),
    "logaddexp": (lambda m, x, y: _ieee(np.logaddexp)(x, y),
                  lambda m, x, y, z: (_logaddexp_weight(x, y, z, np.e),
                                      _logaddexp_weight(y, x, z, np.e)),
                  lambda m, x, y, z, xd, yd: (_logaddexp_weight_d(x, y, z, np.e, xd, yd),
                                              _logaddexp_weight_d(y, x, z, np.e, yd, xd))),
    "logaddexp2": (lambda m, x, y: _ieee(np.logaddexp2)(x, y),
                   lambda m, x, y, z: (_logaddexp_weight(x, y, z, 2.0),
                                       _logaddexp_weight(y, x, z, 2.0)),
                   lambda m, x, y, z, xd, yd: (_logaddexp_weight_d(x, y, z, 2.0, xd, yd),
                                               _logaddexp_weight_d(y, x, z, 2.0, yd, xd))),
    "hypot": (lambda m, x, y: m.hypot(x, y),
              lambda m, x, y, z: (_hypot_partial(x, z), _hypot_partial(y, z)),
              lambda m, x, y, z, xd, yd: (_hypot_second(x, y, z, xd, yd),
                                          _hypot_second(y, x, z, yd, xd))),
}
RULES.update(SPECIAL_FUNCTION_RULES)

COMPARISONS = {
    "lt": lambda x, y: x < y, "le": lambda x, y: x <= y,
    "gt": lambda x, y: x > y, "ge": lambda x, y: x >= y,
    "eq": lambda x, y: x == y, "ne": lambda x, y: x != y,
}
# x compared with a recorded constant y: the same test
COMPARISONS.update({name + "_c": cmp for name, cmp in list(COMPARISONS.items())})

SPECIAL = frozenset({
    "input", "constant", "select", "guard_true", "guard_false", "axpy_c", "max_n", "min_n",
    # gathers, reductions, scans: their rules are in _python_gathers
    "gather", "reduce_add", "reduce_mul", "reduce_max", "reduce_min", "cumsum", "cumprod",
    "matmul", "matmul_c", "rmatmul_c",  # products: pyad/_python_products.py
    "custom",  # the user's rules: pyad/_custom_rows.py
    "solve", "inv", "det", "slogdet",  # LU family: pyad/_python_linalg_lu.py
    "cholesky", "solve_triangular",  # pyad/_python_linalg_sym.py
    "eigh",  # pyad/_python_linalg_eig.py
})

# which table must hold the rule of a row of each kind
TABLE_OF_KIND = {
    "unary": "RULES", "binary": "RULES", "with_const": "RULES",
    "compare": "COMPARISONS", "compare_c": "COMPARISONS",
    "special": "SPECIAL",
}


class RegistryMismatch(ImportError):
    """The rules here and the primitives csrc/ops.def declares differ."""


def check_rules_match_registry(tables, kind_of):
    """Raise RegistryMismatch naming the first primitive whose rule is missing,
    extra, or in the wrong table. `tables` maps a table name ("RULES",
    "COMPARISONS", "SPECIAL") to its names; `kind_of` maps every op name the
    registry declares to its kind."""
    for op, kind in kind_of.items():
        table = TABLE_OF_KIND.get(kind)
        if table is None:
            raise RegistryMismatch(
                f"pyad/_python_rules.py does not know the kind {kind!r} of primitive {op!r} "
                f"declared in csrc/ops.def")
        if op not in tables[table]:
            raise RegistryMismatch(
                f"pyad/_python_rules.py has no rule for primitive {op!r} declared in "
                f"csrc/ops.def (a {kind} row: add it to {table})")
    for table, names in tables.items():
        for op in names:
            if op not in kind_of:
                raise RegistryMismatch(
                    f"pyad/_python_rules.py has a rule in {table} for {op!r}, a primitive "
                    f"csrc/ops.def does not declare")
            if TABLE_OF_KIND.get(kind_of[op]) != table:
                raise RegistryMismatch(
                    f"pyad/_python_rules.py has the rule for {op!r} in {table}, but "
                    f"csrc/ops.def declares it a {kind_of[op]} row")


check_rules_match_registry({"RULES": RULES, "COMPARISONS": COMPARISONS, "SPECIAL": SPECIAL},
                           ops.KIND)
