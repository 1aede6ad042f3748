"""The one per-primitive test table, shared by the table-driven tests.

One row per primitive the registry (csrc/ops.def, read through pyad.ops)
declares as differentiable or comparison: how to record it from active operands
(several equivalent spellings where pyad has them), its numpy reference, its
exact first and second derivatives written out here, sample points across the
domain, kink points with the values and derivatives the conventions of
DESIGN.md prescribe, and how random programs feed it operands in its smooth
domain. test_primitives checks every row; test_backends_agree builds its random
programs from the rows; test_hostile takes its numpy references from them.

A registry row without a row here fails test_primitives
(test_table_covers_every_reported_primitive). Special rows (input, constant,
select, guards, axpy_c, max_n / min_n) have no operands of the (x, y) form:
SPECIAL_TABLE checks each through a function that records it, and a special row
missing there fails the same test.
"""
import math

import numpy as np
import scipy.special

import pyad

nan, inf = float("nan"), float("inf")


class Prim:
    """One row of the table.

    kind     "unary" (f(x)), "binary" (f(x, y)), "with_const" (f(x, c), c a
             constant), "compare" / "compare_c" (1.0 / 0.0, no derivative)
    builds   functions recording the primitive from active operands
    ref      numpy reference of the value
    d1       exact first derivative: unary f'(x); binary (f_x, f_y);
             with_const df/dx
    d2       exact second derivative: unary f''(x); binary ((f_xx, f_xy),
             (f_yx, f_yy)); with_const d2f/dx2
    points   smooth points: x (unary), (x, y) (binary), (x, c) (with_const)
    kinks    (point, value, d1, d2) with values prescribed here; d2 None
             where no second derivative is asserted
    base     active operands of a point where each tape is also recorded and
             then replayed at the test points (None: the first point)
    safe     safe(a, b, c) -> the operands a random program passes to the
             builds, given earlier nodes a, b (any values in about [-10, 10])
             and a nonzero constant c: inside the smooth domain, and growing
             at most linearly so that long programs do not overflow
    """

    def __init__(self, kind, builds, ref, d1=None, d2=None, points=(), kinks=(), base=None,
                 safe=None):
        self.kind, self.builds, self.ref = kind, builds, ref
        self.d1, self.d2, self.points, self.kinks, self.base = d1, d2, points, kinks, base
        self.safe = safe or _AS_IS[kind]


_AS_IS = {
    "unary": lambda a, b, c: (a,),
    "binary": lambda a, b, c: (a, b),
    "compare": lambda a, b, c: (a, b),
    "with_const": lambda a, b, c: (a, c),
    "compare_c": lambda a, b, c: (a, c),
}


def U(builds, ref, d1, d2, points, kinks=(), safe=None):
    return Prim("unary", builds, ref, d1, d2, points, kinks, safe=safe)


def B(builds, ref, d1, d2, points, kinks=(), base=None, safe=None):
    return Prim("binary", builds, ref, d1, d2, points, kinks, base, safe)


def K(builds, ref, d1, d2, points, kinks=(), base=None, safe=None):
    return Prim("with_const", builds, ref, d1, d2, points, kinks, base, safe)


def CMP(kind, builds, ref):
    pts = [(1.0, 2.0), (2.0, 1.0), (1.5, 1.5), (-0.0, 0.0), (-3.0, -3.5), (nan, 1.0),
           (1.0, nan)]
    return Prim(kind, builds, ref, points=pts, base=(0.25,) if kind == "compare_c" else None)


S, T = pyad.sin, pyad.tanh   # bounded wrappers for safe operands
sec = lambda x: 1.0 / np.cos(x)
sech = lambda x: 1.0 / np.cosh(x)
ZERO2 = lambda x, y: ((0.0, 0.0), (0.0, 0.0))


def _gammaln(x):
    """scipy.special.gammaln, but -log(x) at subnormal x, where scipy gives inf
    (log|Gamma(x)| = -log(x) - 0.577... x there)."""
    with np.errstate(all="ignore"):
        return np.where((x > 0) & (x < 1e-300), -np.log(x), scipy.special.gammaln(x))[()]


def _logaddexp_hess(x, y, scale):
    """Second derivatives of log_b(b^x + b^y), ln b = scale: s (1 - s) scale times
    [[1, -1], [-1, 1]], s = expit((x - y) scale)."""
    s = scipy.special.expit((x - y) * scale)
    h = s * (1.0 - s) * scale
    return ((h, -h), (-h, h))


def _sign(x):
    return 1.0 if x > 0 else (-1.0 if x < 0 else 0.0)


TABLE = {
    # ---------------- binary ----------------
    "add": B([lambda x, y: x + y, lambda x, y: np.add(x, y)], np.add,
             lambda x, y: (1.0, 1.0), ZERO2, [(1.0, 2.0), (-3.5, 0.25), (0.0, 0.0), (0.7, -1.2)]),
    "sub": B([lambda x, y: x - y, lambda x, y: np.subtract(x, y)], np.subtract,
             lambda x, y: (1.0, -1.0), ZERO2, [(1.0, 2.0), (-3.5, 0.25), (0.0, 0.0), (0.7, -1.2)]),
    "mul": B([lambda x, y: x * y, lambda x, y: np.multiply(x, y)], np.multiply,
             lambda x, y: (y, x), lambda x, y: ((0.0, 1.0), (1.0, 0.0)),
             [(1.5, -2.0), (0.0, 3.0), (-0.7, -0.2), (0.7, -1.2)],
             safe=lambda a, b, c: (a, T(b))),
    "div": B([lambda x, y: x / y, lambda x, y: np.true_divide(x, y)], np.true_divide,
             lambda x, y: (1.0 / y, -x / y**2),
             lambda x, y: ((0.0, -1.0 / y**2), (-1.0 / y**2, 2.0 * x / y**3)),
             [(1.0, 2.0), (-3.0, 0.5), (0.0, -4.0), (7.0, 3.0), (0.7, -1.2)],
             safe=lambda a, b, c: (a, b * b + 1.0)),
    "pow": B([lambda x, y: x ** y, lambda x, y: pyad.pow(x, y), lambda x, y: np.power(x, y)],
             np.power,
             lambda x, y: (y * x ** (y - 1), x**y * np.log(x)),
             lambda x, y: ((y * (y - 1) * x ** (y - 2), x ** (y - 1) * (1 + y * np.log(x))),
                           (x ** (y - 1) * (1 + y * np.log(x)), x**y * np.log(x) ** 2)),
             [(2.0, 3.0), (0.5, -1.5), (3.0, 0.5), (1.7, 2.3), (1.0, 5.0), (4.0, 1.0)],
             kinks=[
                 # d(x**y)/dy = 0 at x = 0; d(0**y)/dx = y 0**(y-1) = 0 for y > 1
                 ((0.0, 3.0), 0.0, (0.0, 0.0), None),
                 ((0.0, 2.5), 0.0, (0.0, 0.0), None),
                 # d(x**0)/dx = 0 even at x = 0; and d/dy = 0 at x = 0
                 ((0.0, 0.0), 1.0, (0.0, 0.0), None),
                 # x**0 away from 0: value 1, d/dx = 0, d/dy = log(x)
                 ((2.0, 0.0), 1.0, (0.0, math.log(2.0)), None),
             ],
             safe=lambda a, b, c: (pyad.exp(S(a)), T(b) * 2.0)),
    "arctan2": B([lambda x, y: pyad.arctan2(x, y), lambda x, y: np.arctan2(x, y)], np.arctan2,
                 lambda x, y: (y / (x * x + y * y), -x / (x * x + y * y)),
                 lambda x, y: ((-2 * x * y / (x * x + y * y) ** 2,
                                (x * x - y * y) / (x * x + y * y) ** 2),
                               ((x * x - y * y) / (x * x + y * y) ** 2,
                                2 * x * y / (x * x + y * y) ** 2)),
                 [(1.0, 2.0), (-1.0, 0.5), (0.3, -2.0), (-2.0, -2.0), (0.0, 1.0), (1.0, 0.0),
                  (0.7, -1.2)],
                 # all four quadrants and the branch cut, but |(y, x)| >= 0.5: the partials
                 # 1/r stay bounded (near the origin they are huge and cancel, so that no
                 # two summation orders agree to 1e-12)
                 safe=lambda a, b, c: (S(a) + S(b) * 1.5, pyad.cos(b) * 1.5)),
    "maximum": B([lambda x, y: pyad.maximum(x, y), lambda x, y: np.maximum(x, y)], np.maximum,
                 lambda x, y: (1.0, 0.0) if x > y else (0.0, 1.0), ZERO2,
                 [(1.0, 2.0), (3.0, -1.0), (-0.5, -0.25), (0.7, -1.2)],
                 kinks=[((1.5, 1.5), 1.5, (0.5, 0.5), ((0.0, 0.0), (0.0, 0.0))),
                        ((0.0, 0.0), 0.0, (0.5, 0.5), ((0.0, 0.0), (0.0, 0.0)))]),
    "minimum": B([lambda x, y: pyad.minimum(x, y), lambda x, y: np.minimum(x, y)], np.minimum,
                 lambda x, y: (1.0, 0.0) if x < y else (0.0, 1.0), ZERO2,
                 [(1.0, 2.0), (3.0, -1.0), (-0.5, -0.25), (0.7, -1.2)],
                 kinks=[((1.5, 1.5), 1.5, (0.5, 0.5), ((0.0, 0.0), (0.0, 0.0))),
                        ((-2.0, -2.0), -2.0, (0.5, 0.5), ((0.0, 0.0), (0.0, 0.0)))]),
    # ---------------- one active operand, one constant ----------------
    "add_c": K([lambda x, c: x + c, lambda x, c: c + x, lambda x, c: np.add(x, c)],
               lambda x, c: np.add(x, c), lambda x, c: 1.0, lambda x, c: 0.0,
               [(1.0, 2.5), (-3.0, -0.5), (0.0, 0.0), (0.7, 3.0)]),
    "sub_c": K([lambda x, c: x - c, lambda x, c: np.subtract(x, c)],
               lambda x, c: np.subtract(x, c), lambda x, c: 1.0, lambda x, c: 0.0,
               [(1.0, 2.5), (-3.0, -0.5), (0.7, 3.0)]),
    "mul_c": K([lambda x, c: x * c, lambda x, c: c * x, lambda x, c: np.multiply(c, x)],
               lambda x, c: np.multiply(x, c), lambda x, c: c, lambda x, c: 0.0,
               [(1.5, -2.0), (-0.5, 3.0), (2.0, 0.0), (0.7, 3.0)]),
    "div_c": K([lambda x, c: x / c, lambda x, c: np.true_divide(x, c)],
               lambda x, c: np.true_divide(x, c), lambda x, c: 1.0 / c, lambda x, c: 0.0,
               [(1.0, 4.0), (-3.0, -0.5), (1.0, 3.0), (0.7, 4.0)]),
    "rsub_c": K([lambda x, c: c - x, lambda x, c: np.subtract(c, x)],
                lambda x, c: np.subtract(c, x), lambda x, c: -1.0, lambda x, c: 0.0,
                [(1.0, 2.5), (-3.0, -0.5), (0.7, 3.0)]),
    "rdiv_c": K([lambda x, c: c / x, lambda x, c: np.true_divide(c, x)],
                lambda x, c: np.true_divide(c, x), lambda x, c: -c / x**2,
                lambda x, c: 2.0 * c / x**3, [(2.0, 3.0), (-0.5, 1.5), (4.0, -2.0), (0.7, 3.0)],
                base=(1.25,), safe=lambda a, b, c: (a * a + 1.0, c)),
    "pow_c": K([lambda x, c: x ** c, lambda x, c: pyad.pow(x, c), lambda x, c: np.power(x, c)],
               lambda x, c: np.power(x, c), lambda x, c: c * x ** (c - 1),
               lambda x, c: c * (c - 1) * x ** (c - 2),
               [(2.0, 3.0), (0.5, -1.5), (3.0, 0.5), (1.7, 2.3), (-1.5, 3.0), (2.0, 1.0),
                (2.5, 0.0), (-2.0, -1.0), (0.7, 2.5)],
               kinks=[((0.0, 3.0), 0.0, 0.0, 0.0),
                      ((0.0, 2.5), 0.0, 0.0, 0.0),
                      ((0.0, 1.0), 0.0, 1.0, 0.0),
                      # d(x**0)/dx = 0, also at x = 0
                      ((0.0, 0.0), 1.0, 0.0, 0.0)],
               base=(1.25,), safe=lambda a, b, c: (pyad.exp(S(a)), c)),
    "rpow_c": K([lambda x, c: c ** x, lambda x, c: pyad.pow(c, x), lambda x, c: np.power(c, x)],
                lambda x, c: np.power(c, x), lambda x, c: c**x * np.log(c),
                lambda x, c: c**x * np.log(c) ** 2,
                [(1.5, 2.0), (-1.0, 0.5), (0.3, 10.0), (2.0, 1.0), (-2.5, 3.0), (0.7, 2.0)],
                kinks=[((1.5, 0.0), 0.0, 0.0, 0.0)],  # d(c**x)/dx = 0 at c = 0
                safe=lambda a, b, c: (S(a), abs(c))),
    "maximum_c": K([lambda x, c: pyad.maximum(x, c), lambda x, c: pyad.maximum(c, x),
                    lambda x, c: np.maximum(x, c)],
                   lambda x, c: np.maximum(x, c), lambda x, c: 1.0 if x > c else 0.0,
                   lambda x, c: 0.0, [(1.0, 2.0), (3.0, -1.0), (0.7, 0.2)],
                   kinks=[((2.0, 2.0), 2.0, 0.5, 0.0), ((-1.0, -1.0), -1.0, 0.5, 0.0)]),
    "minimum_c": K([lambda x, c: pyad.minimum(x, c), lambda x, c: pyad.minimum(c, x),
                    lambda x, c: np.minimum(x, c)],
                   lambda x, c: np.minimum(x, c), lambda x, c: 1.0 if x < c else 0.0,
                   lambda x, c: 0.0, [(1.0, 2.0), (3.0, -1.0), (-0.7, 0.2)],
                   kinks=[((2.0, 2.0), 2.0, 0.5, 0.0)]),
    # ---------------- unary ----------------
    # value x, derivative zero by definition (not the identity's 1): see ZERO_BY_DEFINITION
    "stop_gradient": U([pyad.stop_gradient], np.positive, lambda x: 0.0, lambda x: 0.0,
                       [-2.5, 0.0, 1.3, 7.0]),
    "neg": U([lambda x: -x, pyad.neg, np.negative], np.negative,
             lambda x: -1.0, lambda x: 0.0, [-2.5, 0.0, 1.3, 7.0, -1.3, 0.2, 2.5]),
    "square": U([lambda x: x**2, lambda x: x ** 2.0, pyad.square, np.square], np.square,
                lambda x: 2.0 * x, lambda x: 2.0, [-3.0, -0.5, 0.0, 2.2, -1.3, 0.2, 2.5],
                safe=lambda a, b, c: (T(a) * 2.0,)),
    "reciprocal": U([pyad.reciprocal, np.reciprocal], lambda x: 1.0 / x,
                    lambda x: -1.0 / x**2, lambda x: 2.0 / x**3,
                    [-2.0, -0.3, 0.4, 5.0, -1.7, 2.5], safe=lambda a, b, c: (a * a + 1.0,)),
    "exp": U([pyad.exp, np.exp], np.exp, np.exp, np.exp,
             [-5.0, -0.5, 0.0, 1.7, 5.0, -1.3, 0.2, 1.5], safe=lambda a, b, c: (S(a),)),
    "log": U([pyad.log, np.log], np.log, lambda x: 1.0 / x, lambda x: -1.0 / x**2,
             [0.1, 0.9, 1.0, 2.5, 100.0, 0.3, 1.2, 4.0],
             # log(0) = -inf with no exception, as numpy; d/dx = 1/x = +inf (IEEE)
             kinks=[(0.0, -inf, inf, None)], safe=lambda a, b, c: (a * a + 1.0,)),
    "log1p": U([pyad.log1p, np.log1p], np.log1p, lambda x: 1.0 / (1.0 + x),
               lambda x: -1.0 / (1.0 + x) ** 2,
               [-0.9, -1e-3, 0.0, 1e-8, 2.0, 50.0, -0.6, 0.2, 3.0], safe=lambda a, b, c: (a * a,)),
    "expm1": U([pyad.expm1, np.expm1], np.expm1, np.exp, np.exp,
               [-3.0, -1e-8, 0.0, 1e-5, 2.0, -1.3, 0.2, 1.5], safe=lambda a, b, c: (S(a),)),
    "sqrt": U([pyad.sqrt, np.sqrt], np.sqrt, lambda x: 0.5 / np.sqrt(x),
              lambda x: -0.25 * x**-1.5, [0.1, 1.0, 2.0, 1e4, 0.3, 1.2, 4.0],
              kinks=[(0.0, 0.0, inf, None)], safe=lambda a, b, c: (a * a + 0.5,)),
    "sin": U([pyad.sin, np.sin], np.sin, np.cos, lambda x: -np.sin(x),
             [-3.0, -0.5, 0.0, 1.0, 2.5, 10.0, -1.3, 0.2]),
    "cos": U([pyad.cos, np.cos], np.cos, lambda x: -np.sin(x), lambda x: -np.cos(x),
             [-3.0, -0.5, 0.0, 1.0, 2.5, 10.0, -1.3, 0.2]),
    "tan": U([pyad.tan, np.tan], np.tan, lambda x: sec(x) ** 2,
             lambda x: 2.0 * np.tan(x) * sec(x) ** 2, [-1.2, -0.3, 0.0, 0.7, 1.3, -1.1, 0.2],
             safe=lambda a, b, c: (T(a),)),
    "arcsin": U([pyad.arcsin, np.arcsin], np.arcsin, lambda x: 1.0 / np.sqrt(1.0 - x * x),
                lambda x: x / (1.0 - x * x) ** 1.5,
                [-0.9, -0.3, 0.0, 0.5, 0.95, -0.8, 0.1, 0.6], safe=lambda a, b, c: (T(a) * 0.9,)),
    "arccos": U([pyad.arccos, np.arccos], np.arccos, lambda x: -1.0 / np.sqrt(1.0 - x * x),
                lambda x: -x / (1.0 - x * x) ** 1.5,
                [-0.9, -0.3, 0.0, 0.5, 0.95, -0.8, 0.1, 0.6], safe=lambda a, b, c: (T(a) * 0.9,)),
    "arctan": U([pyad.arctan, np.arctan], np.arctan, lambda x: 1.0 / (1.0 + x * x),
                lambda x: -2.0 * x / (1.0 + x * x) ** 2,
                [-10.0, -1.0, 0.0, 0.5, 3.0, -1.3, 0.2, 2.5]),
    "sinh": U([pyad.sinh, np.sinh], np.sinh, np.cosh, np.sinh,
              [-3.0, -0.2, 0.0, 1.0, 4.0, -1.3, 2.5], safe=lambda a, b, c: (S(a) * 2.0,)),
    "cosh": U([pyad.cosh, np.cosh], np.cosh, np.sinh, np.cosh,
              [-3.0, -0.2, 0.0, 1.0, 4.0, -1.3, 2.5], safe=lambda a, b, c: (S(a) * 2.0,)),
    "tanh": U([pyad.tanh, np.tanh], np.tanh, lambda x: sech(x) ** 2,
              lambda x: -2.0 * np.tanh(x) * sech(x) ** 2,
              [-3.0, -0.4, 0.0, 0.8, 2.5, -1.3, 0.2]),
    "abs": U([abs, pyad.abs, np.abs, np.fabs], np.abs, _sign, lambda x: 0.0,
             [-2.5, -1e-3, 1e-3, 3.0, -1.3, 0.2, 2.5],
             kinks=[(0.0, 0.0, 0.0, 0.0), (-0.0, 0.0, 0.0, 0.0)]),  # abs'(0) = 0
    "erf": U([pyad.erf, scipy.special.erf], scipy.special.erf,
             lambda x: 2.0 / np.sqrt(np.pi) * np.exp(-x * x),
             lambda x: -4.0 * x / np.sqrt(np.pi) * np.exp(-x * x),
             [-3.0, -0.7, 0.0, 0.4, 1.5, 6.0]),
    "erfc": U([pyad.erfc, scipy.special.erfc], scipy.special.erfc,
              lambda x: -2.0 / np.sqrt(np.pi) * np.exp(-x * x),
              lambda x: 4.0 * x / np.sqrt(np.pi) * np.exp(-x * x),
              [-3.0, -0.7, 0.0, 0.4, 1.5, 6.0]),
    # ---------------- special functions (issue 14) ----------------
    # points keep away from the zeros of gammaln (1, 2, -2.457..., -2.747...) and
    # digamma's roots, where a value has no relative accuracy to compare at 1e-14
    "gammaln": U([pyad.gammaln, scipy.special.gammaln], lambda x: _gammaln(x),
                 scipy.special.digamma, lambda x: scipy.special.polygamma(1, x),
                 [0.3, 1.5, 2.5, 7.25, 40.0, -0.5, -3.3],
                 safe=lambda a, b, c: (a * a + 0.5,)),
    "digamma": U([pyad.digamma, scipy.special.digamma, scipy.special.psi], scipy.special.digamma,
                 lambda x: scipy.special.polygamma(1, x), lambda x: scipy.special.polygamma(2, x),
                 [0.05, 0.8, 1.2, 2.5, 9.0, 30.0, -0.7, -4.2],
                 safe=lambda a, b, c: (a * a + 0.5,)),
    "expit": U([pyad.expit, scipy.special.expit], scipy.special.expit,
               lambda x: np.exp(-x) / (1.0 + np.exp(-x)) ** 2,
               lambda x: -np.exp(-x) * np.tanh(x / 2) / (1.0 + np.exp(-x)) ** 2,
               [-30.0, -2.0, 0.0, 0.4, 3.0, 45.0]),
    "logit": U([pyad.logit, scipy.special.logit], scipy.special.logit,
               lambda x: 1.0 / (x * (1.0 - x)), lambda x: (2.0 * x - 1.0) / (x * (1.0 - x)) ** 2,
               [1e-3, 0.1, 0.35, 0.45, 0.6, 0.9, 0.99],
               safe=lambda a, b, c: (0.5 + 0.4 * T(a),)),
    "arcsinh": U([pyad.arcsinh, np.arcsinh], np.arcsinh, lambda x: 1.0 / np.sqrt(1.0 + x * x),
                 lambda x: -x / (1.0 + x * x) ** 1.5, [-50.0, -1.2, 0.0, 0.3, 2.0, 1e5]),
    "arccosh": U([pyad.arccosh, np.arccosh], np.arccosh, lambda x: 1.0 / np.sqrt(x * x - 1.0),
                 lambda x: -x / (x * x - 1.0) ** 1.5, [1.01, 1.5, 3.0, 20.0, 1e4],
                 safe=lambda a, b, c: (a * a + 1.25,)),
    "arctanh": U([pyad.arctanh, np.arctanh], np.arctanh, lambda x: 1.0 / (1.0 - x * x),
                 lambda x: 2.0 * x / (1.0 - x * x) ** 2, [-0.95, -0.3, 0.0, 0.5, 0.99],
                 safe=lambda a, b, c: (0.9 * T(a),)),
    "cbrt": U([pyad.cbrt, np.cbrt], np.cbrt, lambda x: 1.0 / (3.0 * np.cbrt(x) ** 2),
              lambda x: -2.0 / (9.0 * np.cbrt(x) ** 5), [-27.0, -0.4, 0.001, 0.5, 8.0, 1e6],
              safe=lambda a, b, c: (a * a + 0.5,)),
    "exp2": U([pyad.exp2, np.exp2], np.exp2, lambda x: np.log(2.0) * 2.0 ** x,
              lambda x: np.log(2.0) ** 2 * 2.0 ** x, [-10.0, -0.5, 0.0, 1.5, 20.0],
              safe=lambda a, b, c: (S(a),)),
    "log2": U([pyad.log2, np.log2], np.log2, lambda x: 1.0 / (x * np.log(2.0)),
              lambda x: -1.0 / (x * x * np.log(2.0)), [0.01, 0.7, 3.0, 1024.0],
              kinks=[(0.0, -inf, inf, None)], safe=lambda a, b, c: (a * a + 1.0,)),
    "log10": U([pyad.log10, np.log10], np.log10, lambda x: 1.0 / (x * np.log(10.0)),
               lambda x: -1.0 / (x * x * np.log(10.0)), [0.01, 0.7, 3.0, 1e5],
               kinks=[(0.0, -inf, inf, None)], safe=lambda a, b, c: (a * a + 1.0,)),
    # piecewise constant, derivative zero by definition (JAX): see ZERO_BY_DEFINITION;
    # points keep off the jumps, where central differences see them
    "sign": U([pyad.sign, np.sign], np.sign, lambda x: 0.0, lambda x: 0.0,
              [-3.5, -1e-3, 2e-3, 7.0],
              kinks=[(0.0, 0.0, 0.0, 0.0), (-0.0, 0.0, 0.0, 0.0), (nan, nan, 0.0, None)]),
    "floor": U([pyad.floor, np.floor], np.floor, lambda x: 0.0, lambda x: 0.0,
               [-2.5, -0.3, 0.4, 3.7], kinks=[(2.0, 2.0, 0.0, 0.0), (-1.0, -1.0, 0.0, 0.0)]),
    "ceil": U([pyad.ceil, np.ceil], np.ceil, lambda x: 0.0, lambda x: 0.0,
              [-2.5, -0.3, 0.4, 3.7], kinks=[(2.0, 2.0, 0.0, 0.0), (-1.0, -1.0, 0.0, 0.0)]),
    "xlogy": B([pyad.xlogy, scipy.special.xlogy], scipy.special.xlogy,
               lambda x, y: (np.log(y), x / y),
               lambda x, y: ((0.0, 1.0 / y), (1.0 / y, -x / y ** 2)),
               [(2.0, 3.0), (-1.5, 0.25), (0.5, 7.0), (3.0, 1.0)],
               # 0 log 0 = 0 (scipy); the partials are JAX's: d/dx = log y, d/dy = x / y
               kinks=[((0.0, 2.0), 0.0, (math.log(2.0), 0.0), None),
                      ((0.0, 0.5), 0.0, (math.log(0.5), 0.0), None)],
               safe=lambda a, b, c: (a, b * b + 0.5)),
    "xlog1py": B([pyad.xlog1py, scipy.special.xlog1py], scipy.special.xlog1py,
                 lambda x, y: (np.log1p(y), x / (1.0 + y)),
                 lambda x, y: ((0.0, 1.0 / (1.0 + y)), (1.0 / (1.0 + y), -x / (1.0 + y) ** 2)),
                 [(2.0, 3.0), (-1.5, -0.75), (0.5, 1e-9), (3.0, 0.0)],
                 kinks=[((0.0, 1.0), 0.0, (math.log(2.0), 0.0), None)],
                 safe=lambda a, b, c: (a, b * b)),
    "logaddexp": B([pyad.logaddexp, np.logaddexp], np.logaddexp,
                   lambda x, y: (scipy.special.expit(x - y), scipy.special.expit(y - x)),
                   lambda x, y: _logaddexp_hess(x, y, 1.0),
                   [(1.0, 2.0), (-3.0, 0.5), (700.0, 705.0), (-40.0, 10.0), (0.3, 0.3)],
                   # ties: the gradient is shared evenly, also at equal infinities
                   kinks=[((inf, inf), inf, (0.5, 0.5), None),
                          ((-inf, -inf), -inf, (0.5, 0.5), None),
                          ((-inf, 1.0), 1.0, (0.0, 1.0), None)]),
    "logaddexp2": B([pyad.logaddexp2, np.logaddexp2], np.logaddexp2,
                    lambda x, y: (scipy.special.expit((x - y) * np.log(2.0)),
                                  scipy.special.expit((y - x) * np.log(2.0))),
                    lambda x, y: _logaddexp_hess(x, y, np.log(2.0)),
                    [(1.0, 2.0), (-3.0, 0.5), (1000.0, 1004.0), (-60.0, 10.0), (0.3, 0.3)],
                    kinks=[((inf, inf), inf, (0.5, 0.5), None)]),
    "hypot": B([pyad.hypot, np.hypot], np.hypot,
               lambda x, y: (x / np.hypot(x, y), y / np.hypot(x, y)),
               lambda x, y: ((y * y / np.hypot(x, y) ** 3, -x * y / np.hypot(x, y) ** 3),
                             (-x * y / np.hypot(x, y) ** 3, x * x / np.hypot(x, y) ** 3)),
               [(3.0, 4.0), (-1.0, 0.5), (0.0, 2.0), (1e3, -3e3), (-0.02, 0.01)],
               # the partials are 0 at the origin (as abs'(0) = 0, JAX's hypot)
               kinks=[((0.0, 0.0), 0.0, (0.0, 0.0), ((0.0, 0.0), (0.0, 0.0)))],
               safe=lambda a, b, c: (a, b * b + 0.5)),
    # ---------------- comparisons ----------------
    "lt": CMP("compare", [lambda x, y: x < y, lambda x, y: np.less(x, y)], np.less),
    "le": CMP("compare", [lambda x, y: x <= y, lambda x, y: np.less_equal(x, y)], np.less_equal),
    "gt": CMP("compare", [lambda x, y: x > y, lambda x, y: np.greater(x, y)], np.greater),
    "ge": CMP("compare", [lambda x, y: x >= y, lambda x, y: np.greater_equal(x, y)],
              np.greater_equal),
    "eq": CMP("compare", [lambda x, y: x == y, lambda x, y: np.equal(x, y)], np.equal),
    "ne": CMP("compare", [lambda x, y: x != y, lambda x, y: np.not_equal(x, y)], np.not_equal),
    "lt_c": CMP("compare_c", [lambda x, c: x < c, lambda x, c: c > x,
                              lambda x, c: np.less(x, c)], np.less),
    "le_c": CMP("compare_c", [lambda x, c: x <= c, lambda x, c: c >= x,
                              lambda x, c: np.less_equal(x, c)], np.less_equal),
    "gt_c": CMP("compare_c", [lambda x, c: x > c, lambda x, c: c < x,
                              lambda x, c: np.less(c, x)], np.greater),
    "ge_c": CMP("compare_c", [lambda x, c: x >= c, lambda x, c: c <= x,
                              lambda x, c: np.less_equal(c, x)], np.greater_equal),
    "eq_c": CMP("compare_c", [lambda x, c: x == c, lambda x, c: c == x,
                              lambda x, c: np.equal(x, c)], np.equal),
    "ne_c": CMP("compare_c", [lambda x, c: x != c, lambda x, c: c != x,
                              lambda x, c: np.not_equal(c, x)], np.not_equal),
}


DIFFERENTIABLE = pyad.ops.names_of_kind("unary", "binary", "with_const")
COMPARISONS = pyad.ops.names_of_kind("compare", "compare_c")
#: rows whose derivative the registry declares zero (stop_gradient): central
#: differences of their value would say 1, so their oracle is the definition, 0
ZERO_BY_DEFINITION = [n for n in DIFFERENTIABLE if not pyad.ops.OPS[n].differentiable]


class Special:
    """A special row (its operands are not (x, y)), checked through a function
    that records it: f of an active vector, points, and the exact value, gradient
    and Hessian of f there (numpy functions of the point)."""

    def __init__(self, f, points, value, grad, hess, legacy=None):
        self.f, self.points = f, [np.array(p, dtype=float) for p in points]
        self.value, self.grad, self.hess = value, grad, hess
        self.legacy = legacy

    def trace(self, z, backend):
        """The tape of f at z. A legacy row (one no recorder writes any more, kept
        so saved tapes load) is made from the tape f records by rewriting the
        rows that replaced it back into it (self.legacy does that)."""
        tape = pyad.trace(self.f, z, backend=backend)
        if self.legacy is None:
            return tape
        arrays = self.legacy(tape._store.export())
        store = type(tape._store).from_arrays(arrays)
        return type(tape).from_store(store, [z.shape], [()], backend=backend)


def as_variadic(name):
    """Rewrites each reduce_max / reduce_min row of 1 output into the max_n / min_n
    row tapes saved before reductions were one row held: its operands listed in
    the pool, no block entry."""
    reduce_op = pyad.ops.CODE["reduce_" + name[:3]]

    def rewrite(a):
        a = {k: np.array(v) for k, v in a.items()}
        blocks = a["blocks"].reshape(-1, 6)
        keep = []
        pool = a["pool"].tolist()
        for row, w, sa, sb, sc, sk in blocks.tolist():
            if a["op"][row] != reduce_op:
                keep.append((row, w, sa, sb, sc, sk))
                continue
            assert w == 1
            k, first = int(a["b"][row]), int(a["a"][row])
            operands = [first + sb * j for j in range(k)]
            a["op"][row] = pyad.ops.CODE[name]
            a["a"][row], a["b"][row], a["c"][row] = operands[0], k, len(pool)
            pool += operands
        a["pool"] = np.array(pool, dtype=np.int32)
        a["blocks"] = np.array(keep, dtype=np.int32).reshape(-1)
        return a
    return rewrite


def _branchy(z):
    if z[0] > 0:                     # a guard: guard_true for z0 > 0, guard_false else
        return z[0] * z[1]
    return z[1] * 3.0


_BRANCHY_GRAD = lambda z: np.array([z[1], z[0]]) if z[0] > 0 else np.array([0.0, 3.0])
_BRANCHY_HESS = lambda z: np.array([[0.0, 1.0], [1.0, 0.0]]) if z[0] > 0 else np.zeros((2, 2))
_A = np.array([[1.0, 2.0], [3.0, -1.0]])
_SELECT = lambda z: pyad.where(z[0] < z[1], z[0] * z[1], z[1] * z[1])
_WITH_CONSTANT = lambda z: pyad.where(z[0] < z[1], z[0] * z[1], 2.0)
_MUL_HESS = lambda z: np.array([[0.0, 1.0], [1.0, 0.0]])


def _LOGDET_CHOL(z):
    L = np.linalg.cholesky(z[[0, 1, 1, 2]].reshape(2, 2))
    return 2 * np.sum(np.log(np.diagonal(L)))


def _LAMBDA_MAX(z):
    return np.linalg.eigh(z[[0, 1, 1, 2]].reshape(2, 2))[0][1]


def _lambda_max_grad(z):
    d, b = (z[0] - z[2]) / 2, z[1]
    r = np.hypot(d, b)
    return np.array([0.5 + d / (2 * r), b / r, 0.5 - d / (2 * r)])


def _lambda_max_hess(z):
    d, b = (z[0] - z[2]) / 2, z[1]
    r3 = np.hypot(d, b) ** 3
    return np.array([[b * b / 4, -d * b / 2, -b * b / 4],
                     [-d * b / 2, d * d, d * b / 2],
                     [-b * b / 4, d * b / 2, b * b / 4]]) / r3


def _TRI_SUM(z):
    return np.sum(pyad.linalg.solve_triangular(z[[0, 0, 1, 2]].reshape(2, 2), np.ones(2),
                                               lower=True))


def _tri_grad(z):
    a, b, c = z
    return np.array([-1 / a**2 + b / (a**2 * c), -1 / (a * c), -1 / c**2 + b / (a * c**2)])


def _tri_hess(z):
    a, b, c = z
    return np.array([[2 / a**3 - 2 * b / (a**3 * c), 1 / (a**2 * c), -b / (a**2 * c**2)],
                     [1 / (a**2 * c), 0.0, 1 / (a * c**2)],
                     [-b / (a**2 * c**2), 1 / (a * c**2), 2 / c**3 - 2 * b / (a * c**3)]])


def _logdet_hess(z):
    d = z[0] * z[2] - z[1] ** 2
    g = np.array([z[2], -2 * z[1], z[0]])
    return np.array([[0.0, 0.0, 1.0], [0.0, -2.0, 0.0], [1.0, 0.0, 0.0]]) / d - np.outer(g, g) / d**2


def _by_terms(z):
    """_A @ z through the store's per-term recorder (what products recorded before
    product rows): a mul_c, then one axpy_c per further term."""
    if not isinstance(z, pyad.Array):
        return _A @ z
    out = z._s.matmul_c(np.ascontiguousarray(z._i.reshape(1, -1)), np.ascontiguousarray(_A.T))
    return pyad.Array(z._s, out.reshape(-1))


def _tie_share(z, m):
    """d(max or min)/dz: shared evenly by the elements equal to m (JAX's rule)."""
    ties = (z == m).astype(float)
    return ties / ties.sum()


@pyad.custom_jvp
def _custom_cube(x):
    """A custom row (pyad.custom_jvp) with its first- and second-order rules."""
    return x ** 3


@_custom_cube.defjvp
def _custom_cube_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return x ** 3, 3.0 * x * x * t


@_custom_cube.defhvp
def _custom_cube_hvp(primals, tangents, g):
    (x,), (t,) = primals, tangents
    return (6.0 * x * t * g,)


_CUSTOM_W = np.array([1.0, -2.0])

SPECIAL_TABLE = {
    "custom": Special(lambda z: np.sum(_custom_cube(z) * _CUSTOM_W), [(1.5, -2.0), (0.0, 3.0)],
                      lambda z: np.sum(z ** 3 * _CUSTOM_W), lambda z: 3.0 * z * z * _CUSTOM_W,
                      lambda z: np.diag(6.0 * z * _CUSTOM_W)),
    "input": Special(lambda z: z[0] * z[1], [(1.5, -2.0), (0.0, 3.0)],
                     lambda z: z[0] * z[1], lambda z: np.array([z[1], z[0]]), _MUL_HESS),
    "constant": Special(_WITH_CONSTANT, [(1.0, 2.0), (3.0, 2.0)],
                        lambda z: z[0] * z[1] if z[0] < z[1] else 2.0,
                        lambda z: np.array([z[1], z[0]]) if z[0] < z[1] else np.zeros(2),
                        lambda z: _MUL_HESS(z) if z[0] < z[1] else np.zeros((2, 2))),
    "select": Special(_SELECT, [(1.0, 2.0), (3.0, 2.0), (-1.0, 0.5)],
                      lambda z: z[0] * z[1] if z[0] < z[1] else z[1] * z[1],
                      lambda z: np.array([z[1], z[0]]) if z[0] < z[1] else
                      np.array([0.0, 2.0 * z[1]]),
                      lambda z: _MUL_HESS(z) if z[0] < z[1] else np.array([[0.0, 0.0],
                                                                           [0.0, 2.0]])),
    "guard_true": Special(_branchy, [(1.0, 2.0), (0.5, -3.0)], _branchy, _BRANCHY_GRAD,
                          _BRANCHY_HESS),
    "guard_false": Special(_branchy, [(-1.0, 2.0), (-0.5, 3.0)], _branchy, _BRANCHY_GRAD,
                           _BRANCHY_HESS),
    # A @ z by the store's per-term recorder: one mul_c, then axpy_c terms
    "axpy_c": Special(lambda z: np.sum(_by_terms(z) ** 2), [(1.0, 2.0), (-0.5, 0.25)],
                      lambda z: np.sum((_A @ z) ** 2), lambda z: 2.0 * _A.T @ _A @ z,
                      lambda z: 2.0 * _A.T @ _A),
    # max(z)**2, at a tie too
    "max_n": Special(lambda z: np.max(z) ** 2, [(1.0, 3.0, 2.0), (2.0, 2.0, 1.0)],
                     lambda z: np.max(z) ** 2,
                     lambda z: 2.0 * np.max(z) * _tie_share(z, np.max(z)),
                     lambda z: 2.0 * np.outer(_tie_share(z, np.max(z)),
                                              _tie_share(z, np.max(z))),
                     legacy=as_variadic("max_n")),
    "min_n": Special(lambda z: np.min(z) ** 2, [(1.0, 3.0, 2.0), (-1.0, 2.0, -1.0)],
                     lambda z: np.min(z) ** 2,
                     lambda z: 2.0 * np.min(z) * _tie_share(z, np.min(z)),
                     lambda z: 2.0 * np.outer(_tie_share(z, np.min(z)),
                                              _tie_share(z, np.min(z))),
                     legacy=as_variadic("min_n")),
    # gathers, reductions, scans (one row each; products at zeros, extrema at ties)
    "gather": Special(lambda z: np.sum(z[[0, 2, 2, 1]] ** 2), [(1.0, -2.0, 0.5), (0.0, 3.0, 1.0)],
                      lambda z: z[0] ** 2 + z[1] ** 2 + 2 * z[2] ** 2,
                      lambda z: np.array([2 * z[0], 2 * z[1], 4 * z[2]]),
                      lambda z: np.diag([2.0, 2.0, 4.0])),
    "reduce_add": Special(lambda z: np.sum(z) ** 2, [(1.0, -2.0, 0.5), (0.0, 3.0, 1.0)],
                          lambda z: np.sum(z) ** 2, lambda z: 2 * np.sum(z) * np.ones(3),
                          lambda z: 2 * np.ones((3, 3))),
    "reduce_mul": Special(lambda z: np.prod(z), [(1.5, -2.0, 0.5), (0.0, 3.0, 2.0), (0.0, 0.0, 2.0)],
                          lambda z: np.prod(z), lambda z: _others(z), lambda z: _others2(z)),
    "reduce_max": Special(lambda z: np.max(z) ** 2, [(1.0, 3.0, 2.0), (2.0, 2.0, 1.0)],
                          lambda z: np.max(z) ** 2,
                          lambda z: 2.0 * np.max(z) * _tie_share(z, np.max(z)),
                          lambda z: 2.0 * np.outer(_tie_share(z, np.max(z)),
                                                   _tie_share(z, np.max(z)))),
    "reduce_min": Special(lambda z: np.min(z) ** 2, [(1.0, 3.0, 2.0), (-1.0, 2.0, -1.0)],
                          lambda z: np.min(z) ** 2,
                          lambda z: 2.0 * np.min(z) * _tie_share(z, np.min(z)),
                          lambda z: 2.0 * np.outer(_tie_share(z, np.min(z)),
                                                   _tie_share(z, np.min(z)))),
    "cumsum": Special(lambda z: np.sum(np.cumsum(z) ** 2), [(1.0, -2.0, 0.5), (0.0, 3.0, 1.0)],
                      lambda z: np.sum(np.cumsum(z) ** 2),
                      lambda z: 2 * np.cumsum(np.cumsum(z)[::-1])[::-1],
                      lambda z: 2.0 * (3 - np.maximum.outer(np.arange(3), np.arange(3)))),
    "cumprod": Special(lambda z: np.sum(np.cumprod(z)), [(1.5, -2.0, 0.5), (0.0, 3.0, 2.0),
                                                         (2.0, 0.0, 0.0)],
                      lambda z: np.sum(np.cumprod(z)),
                      lambda z: sum(np.r_[_others(z[:j + 1]), np.zeros(2 - j)] for j in range(3)),
                      lambda z: sum(np.pad(_others2(z[:j + 1]), (0, 2 - j)) for j in range(3))),
    # products: one row, BLAS in every sweep
    "matmul": Special(lambda z: z[:2] @ z[2:], [(1.0, 2.0, -3.0, 0.5), (0.0, 1.5, 2.0, -1.0)],
                      lambda z: z[:2] @ z[2:], lambda z: np.concatenate([z[2:], z[:2]]),
                      lambda z: np.kron([[0.0, 1.0], [1.0, 0.0]], np.eye(2))),
    "matmul_c": Special(lambda z: np.sum((z @ _A) ** 2), [(1.0, 2.0), (-0.5, 0.25)],
                        lambda z: np.sum((z @ _A) ** 2), lambda z: 2.0 * _A @ _A.T @ z,
                        lambda z: 2.0 * _A @ _A.T),
    "rmatmul_c": Special(lambda z: np.sum((_A @ z) ** 2), [(1.0, 2.0), (-0.5, 0.25)],
                         lambda z: np.sum((_A @ z) ** 2), lambda z: 2.0 * _A.T @ _A @ z,
                         lambda z: 2.0 * _A.T @ _A),
    # LU family: one row per matrix, LAPACK in the value sweep (tests/test_linalg_lu.py
    # covers shapes, stacks, singular points and every sweep)
    "solve": Special(lambda z: _K2 @ np.linalg.solve(z.reshape(2, 2), _B2),
                     [(2.0, 1.0, -0.5, 3.0), (1.5, 2.0, 3.0, -1.0)],
                     lambda z: _K2 @ np.linalg.solve(z.reshape(2, 2), _B2),
                     lambda z: _solve_grad(z), lambda z: _solve_hess(z)),
    "inv": Special(lambda z: np.sum(_K22 * np.linalg.inv(z.reshape(2, 2))),
                   [(2.0, 1.0, -0.5, 3.0), (1.5, 2.0, 3.0, -1.0)],
                   lambda z: np.sum(_K22 * np.linalg.inv(z.reshape(2, 2))),
                   lambda z: _inv_grad(z), lambda z: _inv_hess(z)),
    # a singular point: det is 0 and its gradient the (nonzero) cofactors
    "det": Special(lambda z: np.linalg.det(z.reshape(2, 2)),
                   [(2.0, 1.0, -0.5, 3.0), (1.0, 2.0, 2.0, 4.0)],
                   lambda z: z[0] * z[3] - z[1] * z[2],
                   lambda z: np.array([z[3], -z[2], -z[1], z[0]]),
                   lambda z: np.array([[0.0, 0, 0, 1], [0, 0, -1, 0], [0, -1, 0, 0], [1, 0, 0, 0]])),
    "slogdet": Special(lambda z: np.linalg.slogdet(z.reshape(2, 2))[1],
                       [(2.0, 1.0, -0.5, 3.0), (1.5, 2.0, 3.0, -1.0)],
                       lambda z: np.log(abs(z[0] * z[3] - z[1] * z[2])),
                       lambda z: np.linalg.inv(z.reshape(2, 2)).T.ravel(),
                       lambda z: -np.einsum("li,jk->ijkl", *(np.linalg.inv(z.reshape(2, 2)),) * 2
                                            ).reshape(4, 4)),
    # linear algebra (csrc/linalg_sym.c): log det [[z0, z1], [z1, z2]] through its
    # Cholesky factor, and the sum of a lower-triangular solve [[z0, .], [z1, z2]] x = 1
    "cholesky": Special(_LOGDET_CHOL, [(2.0, 0.5, 1.5), (1.0, -0.9, 3.0)],
                        lambda z: np.log(z[0] * z[2] - z[1] ** 2),
                        lambda z: np.array([z[2], -2 * z[1], z[0]]) / (z[0] * z[2] - z[1] ** 2),
                        _logdet_hess),
    "solve_triangular": Special(_TRI_SUM, [(2.0, 0.5, 1.5), (1.0, -1.0, 3.0)],
                                lambda z: 1 / z[0] + 1 / z[2] - z[1] / (z[0] * z[2]),
                                _tri_grad, _tri_hess),
    # linear algebra (csrc/linalg_eig.c): the larger eigenvalue of [[z0, z1], [z1, z2]],
    # (z0 + z2)/2 + r with r = hypot((z0 - z2)/2, z1)
    "eigh": Special(_LAMBDA_MAX, [(2.0, 0.5, 1.5), (1.0, -0.9, 3.0)],
                    lambda z: (z[0] + z[2]) / 2 + np.hypot((z[0] - z[2]) / 2, z[1]),
                    _lambda_max_grad, _lambda_max_hess),
}

# Constants and closed forms of the LU rows above: f = k^T A^-1 b has
# d2f[E, F] = k^T W E W F W b + k^T W F W E W b (W = A^-1); sum(K * A^-1) likewise.
_K2, _B2 = np.array([1.0, -2.0]), np.array([0.5, 1.5])
_K22 = np.array([[1.0, -2.0], [0.5, 3.0]])


def _solve_grad(z):
    W = np.linalg.inv(z.reshape(2, 2))
    return -np.outer(W.T @ _K2, W @ _B2).ravel()


def _solve_hess(z):
    W = np.linalg.inv(z.reshape(2, 2))
    k, x = W.T @ _K2, W @ _B2
    return (np.einsum("i,jk,l->ijkl", k, W, x) + np.einsum("k,li,j->ijkl", k, W, x)).reshape(4, 4)


def _inv_grad(z):
    W = np.linalg.inv(z.reshape(2, 2))
    return (-W.T @ _K22 @ W.T).ravel()


def _inv_hess(z):
    W = np.linalg.inv(z.reshape(2, 2))
    M = W @ _K22.T @ W
    return (np.einsum("li,jk->ijkl", M, W) + np.einsum("jk,li->ijkl", M, W)).reshape(4, 4)



def _others(z):
    """The gradient of prod(z): each element's product of the others (no division)."""
    return np.array([np.prod(np.delete(z, i)) for i in range(z.size)])


def _others2(z):
    """The Hessian of prod(z)."""
    n = z.size
    return np.array([[0.0 if i == j else np.prod(np.delete(z, [i, j])) for j in range(n)]
                     for i in range(n)])
