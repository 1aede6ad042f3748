"""Table-driven tests of every primitive the C core reports.

One table below maps each primitive name (as reported by pyad.ops) to: how to
record it from active operands (several equivalent spellings where pyad has
them), its numpy reference, its exact first and second derivatives written
out here, sample points across the domain, and kink points with the values
and derivatives the conventions of DESIGN.md prescribe.

Oracles: numpy values, the exact formulas, central differences of the numpy
reference (first derivatives) and of the replayed gradient (HVP), and
forward-vs-reverse agreement.
"""
import math

import numpy as np
import pytest

import pyad
from helpers import central_diff_grad, central_diff_jvp

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
    """

    def __init__(self, kind, builds, ref, d1=None, d2=None, points=(), kinks=(), base=None):
        self.kind, self.builds, self.ref = kind, builds, ref
        self.d1, self.d2, self.points, self.kinks, self.base = d1, d2, points, kinks, base


def U(builds, ref, d1, d2, points, kinks=()):
    return Prim("unary", builds, ref, d1, d2, points, kinks)


def B(builds, ref, d1, d2, points, kinks=(), base=None):
    return Prim("binary", builds, ref, d1, d2, points, kinks, base)


def K(builds, ref, d1, d2, points, kinks=(), base=None):
    return Prim("with_const", builds, ref, d1, d2, points, kinks, base)


def CMP(kind, builds, ref):
    pts = [(1.0, 2.0), (2.0, 1.0), (1.5, 1.5), (-0.0, 0.0), (-3.0, -3.5), (nan, 1.0),
           (1.0, nan)]
    return Prim(kind, builds, ref, points=pts, base=(0.25,) if kind == "compare_c" else None)


sec = lambda x: 1.0 / np.cos(x)
sech = lambda x: 1.0 / np.cosh(x)
ZERO2 = lambda x, y: ((0.0, 0.0), (0.0, 0.0))


def _sign(x):
    return 1.0 if x > 0 else (-1.0 if x < 0 else 0.0)


TABLE = {
    # ---------------- binary ----------------
    "add": B([lambda x, y: x + y, lambda x, y: np.add(x, y)], np.add,
             lambda x, y: (1.0, 1.0), ZERO2, [(1.0, 2.0), (-3.5, 0.25), (0.0, 0.0)]),
    "sub": B([lambda x, y: x - y, lambda x, y: np.subtract(x, y)], np.subtract,
             lambda x, y: (1.0, -1.0), ZERO2, [(1.0, 2.0), (-3.5, 0.25), (0.0, 0.0)]),
    "mul": B([lambda x, y: x * y, lambda x, y: np.multiply(x, y)], np.multiply,
             lambda x, y: (y, x), lambda x, y: ((0.0, 1.0), (1.0, 0.0)),
             [(1.5, -2.0), (0.0, 3.0), (-0.7, -0.2)]),
    "div": B([lambda x, y: x / y, lambda x, y: np.true_divide(x, y)], np.true_divide,
             lambda x, y: (1.0 / y, -x / y**2),
             lambda x, y: ((0.0, -1.0 / y**2), (-1.0 / y**2, 2.0 * x / y**3)),
             [(1.0, 2.0), (-3.0, 0.5), (0.0, -4.0), (7.0, 3.0)]),
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
             ]),
    "arctan2": B([lambda x, y: pyad.arctan2(x, y), lambda x, y: np.arctan2(x, y)], np.arctan2,
                 lambda x, y: (y / (x * x + y * y), -x / (x * x + y * y)),
                 lambda x, y: ((-2 * x * y / (x * x + y * y) ** 2,
                                (x * x - y * y) / (x * x + y * y) ** 2),
                               ((x * x - y * y) / (x * x + y * y) ** 2,
                                2 * x * y / (x * x + y * y) ** 2)),
                 [(1.0, 2.0), (-1.0, 0.5), (0.3, -2.0), (-2.0, -2.0), (0.0, 1.0), (1.0, 0.0)]),
    "maximum": B([lambda x, y: pyad.maximum(x, y), lambda x, y: np.maximum(x, y)], np.maximum,
                 lambda x, y: (1.0, 0.0) if x > y else (0.0, 1.0), ZERO2,
                 [(1.0, 2.0), (3.0, -1.0), (-0.5, -0.25)],
                 kinks=[((1.5, 1.5), 1.5, (0.5, 0.5), ((0.0, 0.0), (0.0, 0.0))),
                        ((0.0, 0.0), 0.0, (0.5, 0.5), ((0.0, 0.0), (0.0, 0.0)))]),
    "minimum": B([lambda x, y: pyad.minimum(x, y), lambda x, y: np.minimum(x, y)], np.minimum,
                 lambda x, y: (1.0, 0.0) if x < y else (0.0, 1.0), ZERO2,
                 [(1.0, 2.0), (3.0, -1.0), (-0.5, -0.25)],
                 kinks=[((1.5, 1.5), 1.5, (0.5, 0.5), ((0.0, 0.0), (0.0, 0.0))),
                        ((-2.0, -2.0), -2.0, (0.5, 0.5), ((0.0, 0.0), (0.0, 0.0)))]),
    # ---------------- one active operand, one constant ----------------
    "add_c": K([lambda x, c: x + c, lambda x, c: c + x, lambda x, c: np.add(x, c)],
               lambda x, c: np.add(x, c), lambda x, c: 1.0, lambda x, c: 0.0,
               [(1.0, 2.5), (-3.0, -0.5), (0.0, 0.0)]),
    "sub_c": K([lambda x, c: x - c, lambda x, c: np.subtract(x, c)],
               lambda x, c: np.subtract(x, c), lambda x, c: 1.0, lambda x, c: 0.0,
               [(1.0, 2.5), (-3.0, -0.5)]),
    "mul_c": K([lambda x, c: x * c, lambda x, c: c * x, lambda x, c: np.multiply(c, x)],
               lambda x, c: np.multiply(x, c), lambda x, c: c, lambda x, c: 0.0,
               [(1.5, -2.0), (-0.5, 3.0), (2.0, 0.0)]),
    "div_c": K([lambda x, c: x / c, lambda x, c: np.true_divide(x, c)],
               lambda x, c: np.true_divide(x, c), lambda x, c: 1.0 / c, lambda x, c: 0.0,
               [(1.0, 4.0), (-3.0, -0.5), (1.0, 3.0)]),
    "rsub_c": K([lambda x, c: c - x, lambda x, c: np.subtract(c, x)],
                lambda x, c: np.subtract(c, x), lambda x, c: -1.0, lambda x, c: 0.0,
                [(1.0, 2.5), (-3.0, -0.5)]),
    "rdiv_c": K([lambda x, c: c / x, lambda x, c: np.true_divide(c, x)],
                lambda x, c: np.true_divide(c, x), lambda x, c: -c / x**2,
                lambda x, c: 2.0 * c / x**3, [(2.0, 3.0), (-0.5, 1.5), (4.0, -2.0)],
                base=(1.25,)),
    "pow_c": K([lambda x, c: x ** c, lambda x, c: pyad.pow(x, c), lambda x, c: np.power(x, c)],
               lambda x, c: np.power(x, c), lambda x, c: c * x ** (c - 1),
               lambda x, c: c * (c - 1) * x ** (c - 2),
               [(2.0, 3.0), (0.5, -1.5), (3.0, 0.5), (1.7, 2.3), (-1.5, 3.0), (2.0, 1.0),
                (2.5, 0.0), (-2.0, -1.0)],
               kinks=[((0.0, 3.0), 0.0, 0.0, 0.0),
                      ((0.0, 2.5), 0.0, 0.0, 0.0),
                      ((0.0, 1.0), 0.0, 1.0, 0.0),
                      # d(x**0)/dx = 0, also at x = 0
                      ((0.0, 0.0), 1.0, 0.0, 0.0)],
               base=(1.25,)),
    "rpow_c": K([lambda x, c: c ** x, lambda x, c: pyad.pow(c, x), lambda x, c: np.power(c, x)],
                lambda x, c: np.power(c, x), lambda x, c: c**x * np.log(c),
                lambda x, c: c**x * np.log(c) ** 2,
                [(1.5, 2.0), (-1.0, 0.5), (0.3, 10.0), (2.0, 1.0), (-2.5, 3.0)],
                kinks=[((1.5, 0.0), 0.0, 0.0, 0.0)]),  # d(c**x)/dx = 0 at c = 0
    "maximum_c": K([lambda x, c: pyad.maximum(x, c), lambda x, c: pyad.maximum(c, x),
                    lambda x, c: np.maximum(x, c)],
                   lambda x, c: np.maximum(x, c), lambda x, c: 1.0 if x > c else 0.0,
                   lambda x, c: 0.0, [(1.0, 2.0), (3.0, -1.0)],
                   kinks=[((2.0, 2.0), 2.0, 0.5, 0.0), ((-1.0, -1.0), -1.0, 0.5, 0.0)]),
    "minimum_c": K([lambda x, c: pyad.minimum(x, c), lambda x, c: pyad.minimum(c, x),
                    lambda x, c: np.minimum(x, c)],
                   lambda x, c: np.minimum(x, c), lambda x, c: 1.0 if x < c else 0.0,
                   lambda x, c: 0.0, [(1.0, 2.0), (3.0, -1.0)],
                   kinks=[((2.0, 2.0), 2.0, 0.5, 0.0)]),
    # ---------------- unary ----------------
    "neg": U([lambda x: -x, pyad.neg, np.negative], np.negative,
             lambda x: -1.0, lambda x: 0.0, [-2.5, 0.0, 1.3, 7.0]),
    "square": U([lambda x: x**2, lambda x: x ** 2.0, pyad.square, np.square], np.square,
                lambda x: 2.0 * x, lambda x: 2.0, [-3.0, -0.5, 0.0, 2.2]),
    "reciprocal": U([pyad.reciprocal, np.reciprocal], lambda x: 1.0 / x,
                    lambda x: -1.0 / x**2, lambda x: 2.0 / x**3, [-2.0, -0.3, 0.4, 5.0]),
    "exp": U([pyad.exp, np.exp], np.exp, np.exp, np.exp, [-5.0, -0.5, 0.0, 1.7, 5.0]),
    "log": U([pyad.log, np.log], np.log, lambda x: 1.0 / x, lambda x: -1.0 / x**2,
             [0.1, 0.9, 1.0, 2.5, 100.0],
             # log(0) = -inf with no exception, as numpy; d/dx = 1/x = +inf (IEEE)
             kinks=[(0.0, -inf, inf, None)]),
    "log1p": U([pyad.log1p, np.log1p], np.log1p, lambda x: 1.0 / (1.0 + x),
               lambda x: -1.0 / (1.0 + x) ** 2, [-0.9, -1e-3, 0.0, 1e-8, 2.0, 50.0]),
    "expm1": U([pyad.expm1, np.expm1], np.expm1, np.exp, np.exp, [-3.0, -1e-8, 0.0, 1e-5, 2.0]),
    "sqrt": U([pyad.sqrt, np.sqrt], np.sqrt, lambda x: 0.5 / np.sqrt(x),
              lambda x: -0.25 * x**-1.5, [0.1, 1.0, 2.0, 1e4],
              kinks=[(0.0, 0.0, inf, None)]),
    "sin": U([pyad.sin, np.sin], np.sin, np.cos, lambda x: -np.sin(x),
             [-3.0, -0.5, 0.0, 1.0, 2.5, 10.0]),
    "cos": U([pyad.cos, np.cos], np.cos, lambda x: -np.sin(x), lambda x: -np.cos(x),
             [-3.0, -0.5, 0.0, 1.0, 2.5, 10.0]),
    "tan": U([pyad.tan, np.tan], np.tan, lambda x: sec(x) ** 2,
             lambda x: 2.0 * np.tan(x) * sec(x) ** 2, [-1.2, -0.3, 0.0, 0.7, 1.3]),
    "arcsin": U([pyad.arcsin, np.arcsin], np.arcsin, lambda x: 1.0 / np.sqrt(1.0 - x * x),
                lambda x: x / (1.0 - x * x) ** 1.5, [-0.9, -0.3, 0.0, 0.5, 0.95]),
    "arccos": U([pyad.arccos, np.arccos], np.arccos, lambda x: -1.0 / np.sqrt(1.0 - x * x),
                lambda x: -x / (1.0 - x * x) ** 1.5, [-0.9, -0.3, 0.0, 0.5, 0.95]),
    "arctan": U([pyad.arctan, np.arctan], np.arctan, lambda x: 1.0 / (1.0 + x * x),
                lambda x: -2.0 * x / (1.0 + x * x) ** 2, [-10.0, -1.0, 0.0, 0.5, 3.0]),
    "sinh": U([pyad.sinh, np.sinh], np.sinh, np.cosh, np.sinh, [-3.0, -0.2, 0.0, 1.0, 4.0]),
    "cosh": U([pyad.cosh, np.cosh], np.cosh, np.sinh, np.cosh, [-3.0, -0.2, 0.0, 1.0, 4.0]),
    "tanh": U([pyad.tanh, np.tanh], np.tanh, lambda x: sech(x) ** 2,
              lambda x: -2.0 * np.tanh(x) * sech(x) ** 2, [-3.0, -0.4, 0.0, 0.8, 2.5]),
    "abs": U([abs, pyad.abs, np.abs, np.fabs], np.abs, _sign, lambda x: 0.0,
             [-2.5, -1e-3, 1e-3, 3.0],
             kinks=[(0.0, 0.0, 0.0, 0.0), (-0.0, 0.0, 0.0, 0.0)]),  # abs'(0) = 0
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

DIFFERENTIABLE = [n for n in pyad.ops.names_of_kind("unary", "binary", "with_const")
                  if pyad.ops.OPS[n].differentiable]  # stop_gradient: tests/test_value_guard.py
COMPARISONS = pyad.ops.names_of_kind("compare", "compare_c")


# ---------------------------------------------------------------------------
# Turning a table row into functions of the vector z of active operands.
# ---------------------------------------------------------------------------

class Case:
    """One primitive at one point: z are the active operands (a float64 vector),
    c the constant (with_const / compare_c rows)."""

    def __init__(self, name, prim, point):
        self.name, self.prim = name, prim
        kind = prim.kind
        if kind == "unary":
            self.z, self.c = np.array([point], dtype=float), None
        elif kind in ("binary", "compare"):
            self.z, self.c = np.array(point, dtype=float), None
        else:
            self.z, self.c = np.array([point[0]], dtype=float), float(point[1])

    def fn(self, build):
        kind, c = self.prim.kind, self.c
        if kind == "unary":
            return lambda z: build(z[0])
        if kind in ("binary", "compare"):
            return lambda z: build(z[0], z[1])
        return lambda z: build(z[0], c)

    def ref(self, z):
        kind, c, ref = self.prim.kind, self.c, self.prim.ref
        with np.errstate(all="ignore"):
            if kind == "unary":
                r = ref(np.float64(z[0]))
            elif kind in ("binary", "compare"):
                r = ref(np.float64(z[0]), np.float64(z[1]))
            else:
                r = ref(np.float64(z[0]), np.float64(c))
        return float(r)

    def grad(self, z):
        kind, c, d1 = self.prim.kind, self.c, self.prim.d1
        if kind == "unary":
            return np.array([d1(z[0])], dtype=float)
        if kind == "binary":
            return np.array(d1(z[0], z[1]), dtype=float)
        return np.array([d1(z[0], c)], dtype=float)

    def hess(self, z):
        kind, c, d2 = self.prim.kind, self.c, self.prim.d2
        if kind == "unary":
            return np.array([[d2(z[0])]], dtype=float)
        if kind == "binary":
            return np.array(d2(z[0], z[1]), dtype=float)
        return np.array([[d2(z[0], c)]], dtype=float)

    def base_z(self):
        base = self.prim.base
        if base is not None:
            return np.array(base, dtype=float)
        first = Case(self.name, self.prim, self.prim.points[0])
        return first.z

    def __repr__(self):
        return f"{self.name} at z={self.z.tolist()} c={self.c}"


def cases(name):
    prim = TABLE[name]
    return [Case(name, prim, p) for p in prim.points]


def record(case, build, backend, z=None):
    return pyad.trace(case.fn(build), case.z if z is None else z, backend=backend)


def recorded_op(tape):
    """The name of the op that defines the tape's (single) output slot."""
    store = tape._store
    return pyad.ops.NAME[store.op_at(int(store.output_slots()[0]))]


def val_close(a, b, msg=""):
    """Values: relative to the value itself (log1p(1e-8) must be accurate too)."""
    np.testing.assert_allclose(a, b, rtol=1e-14, atol=0, err_msg=msg)


def rel_close(a, b, rtol, msg=""):
    """Derivatives: relative to the largest entry (an entry may be exactly 0)."""
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * float(np.max(np.abs(b))),
                               err_msg=msg)


# ---------------------------------------------------------------------------
# The table itself
# ---------------------------------------------------------------------------

def test_table_covers_every_reported_primitive():
    reported = set(DIFFERENTIABLE) | set(COMPARISONS)
    assert reported, "the C core reports no primitives"
    missing = sorted(reported - set(TABLE))
    assert not missing, f"primitives with no row in the test table: {missing}"
    stale = sorted(set(TABLE) - reported)
    assert not stale, f"test table rows for primitives the core does not report: {stale}"
    for name in TABLE:
        assert TABLE[name].kind == pyad.ops.KIND[name], name


@pytest.mark.parametrize("name", sorted(TABLE))
def test_every_spelling_records_the_named_primitive(name, backend):
    prim = TABLE[name]
    point = prim.points[0]
    case = Case(name, prim, point)
    for k, build in enumerate(prim.builds):
        tape = record(case, build, backend)
        assert recorded_op(tape) == name, f"spelling {k} of {name} recorded {recorded_op(tape)}"


# ---------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_value_matches_numpy(name, backend):
    for case in cases(name):
        expected = case.ref(case.z)
        for k, build in enumerate(case.prim.builds):
            tape = record(case, build, backend)
            msg = f"{case}, spelling {k}"
            # at record time, and by a forward sweep at the recorded point
            val_close(tape(), expected, msg)
            val_close(tape(case.z), expected, msg)
        # replay of a tape recorded elsewhere
        replayed = record(case, case.prim.builds[0], backend, z=case.base_z())
        val_close(replayed(case.z), expected, f"{case}, replayed")


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_active_value_equals_plain_function_value(name, backend):
    """The spelling applied to plain floats (numpy) and to active values agrees."""
    for case in cases(name):
        for build in case.prim.builds:
            plain = float(case.fn(build)(case.z))
            with pyad.Tape(backend=backend) as tape:
                z = tape.input(case.z)
                y = case.fn(build)(z)
                assert isinstance(y, pyad.Scalar)
                tape.output(y)
            val_close(y.value, plain, repr(case))


# ---------------------------------------------------------------------------
# First derivatives
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_gradient_matches_exact_formula(name, backend):
    for case in cases(name):
        exact = case.grad(case.z)
        for k, build in enumerate(case.prim.builds):
            tape = record(case, build, backend)
            g = tape.gradient()
            assert isinstance(g, np.ndarray) and g.dtype == np.float64 and g.shape == case.z.shape
            rel_close(g, exact, 1e-12, f"{case}, spelling {k}")
            rel_close(tape.gradient(case.z), exact, 1e-12, f"{case}, spelling {k}, replay")
        replayed = record(case, case.prim.builds[0], backend, z=case.base_z())
        rel_close(replayed.gradient(case.z), exact, 1e-12, f"{case}, replayed")


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_gradient_matches_central_differences(name, backend):
    for case in cases(name):
        tape = record(case, case.prim.builds[0], backend)
        fd = central_diff_grad(case.ref, case.z)
        np.testing.assert_allclose(tape.gradient(), fd, rtol=1e-6, atol=1e-6, err_msg=repr(case))
        # the oracle formula itself is consistent with the numpy reference
        np.testing.assert_allclose(case.grad(case.z), fd, rtol=1e-6, atol=1e-6,
                                   err_msg=f"test table: {case}")


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_forward_and_reverse_agree(name, backend, rng):
    for case in cases(name):
        tape = record(case, case.prim.builds[0], backend)
        g = tape.gradient(case.z)
        for _ in range(3):
            v = rng.standard_normal(case.z.shape)
            y, jv = tape.jvp(case.z, v)
            rel_close(jv, float(g @ v), 1e-12, repr(case))
            val_close(y, case.ref(case.z), repr(case))
            u = float(rng.standard_normal())
            y2, uj = tape.vjp(case.z, u)
            rel_close(uj, u * g, 1e-12, repr(case))
            rel_close(float(uj @ v), u * jv, 1e-12, repr(case))
        # forward directional derivative against central differences
        v = rng.standard_normal(case.z.shape)
        fd = central_diff_jvp(case.ref, case.z, v)
        np.testing.assert_allclose(tape.jvp(case.z, v)[1], fd, rtol=1e-6, atol=1e-6,
                                   err_msg=repr(case))


# ---------------------------------------------------------------------------
# Second derivatives (forward-over-reverse)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_hvp_matches_exact_second_derivative(name, backend, rng):
    for case in cases(name):
        H = case.hess(case.z)
        for k, build in enumerate(case.prim.builds):
            tape = record(case, build, backend)
            for e in np.eye(case.z.size):
                rel_close(tape.hvp(case.z, e), H @ e, 1e-10, f"{case}, spelling {k}, v={e}")
            v = rng.standard_normal(case.z.shape)
            rel_close(tape.hvp(case.z, v), H @ v, 1e-10, f"{case}, spelling {k}, v={v}")
        replayed = record(case, case.prim.builds[0], backend, z=case.base_z())
        v = rng.standard_normal(case.z.shape)
        rel_close(replayed.hvp(case.z, v), H @ v, 1e-10, f"{case}, replayed")


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_hvp_matches_central_differences_of_gradient(name, backend, rng):
    for case in cases(name):
        tape = record(case, case.prim.builds[0], backend)
        v = rng.standard_normal(case.z.shape)
        h = 1e-6 * max(1.0, float(np.max(np.abs(case.z))))
        fd = (tape.gradient(case.z + h * v) - tape.gradient(case.z - h * v)) / (2 * h)
        np.testing.assert_allclose(tape.hvp(case.z, v), fd, rtol=1e-5, atol=1e-5,
                                   err_msg=repr(case))
        # and the exact formula is the derivative of the exact gradient formula
        fd_exact = (case.grad(case.z + h * v) - case.grad(case.z - h * v)) / (2 * h)
        np.testing.assert_allclose(case.hess(case.z) @ v, fd_exact, rtol=1e-5, atol=1e-5,
                                   err_msg=f"test table: {case}")


# ---------------------------------------------------------------------------
# Kinks and IEEE edge values
# ---------------------------------------------------------------------------

KINKS = [(name, i) for name in DIFFERENTIABLE for i in range(len(TABLE[name].kinks))]


@pytest.mark.parametrize("name,i", KINKS, ids=[f"{n}-{i}" for n, i in KINKS])
def test_kink_conventions(name, i, backend):
    prim = TABLE[name]
    point, value, d1, d2 = prim.kinks[i]
    case = Case(name, prim, point)
    for k, build in enumerate(prim.builds):
        msg = f"{case}, spelling {k}"
        tape = record(case, build, backend)
        np.testing.assert_array_equal(tape(), value, err_msg=msg)
        np.testing.assert_array_equal(tape(case.z), value, err_msg=msg)
        np.testing.assert_array_equal(tape.gradient(), np.atleast_1d(d1), err_msg=msg)
        np.testing.assert_array_equal(tape.gradient(case.z), np.atleast_1d(d1), err_msg=msg)
        # forward mode follows the same convention
        for e in np.eye(case.z.size):
            np.testing.assert_array_equal(tape.jvp(case.z, e)[1], np.atleast_1d(d1) @ e,
                                          err_msg=msg)
        if d2 is not None:
            H = np.atleast_2d(np.array(d2, dtype=float))
            for e in np.eye(case.z.size):
                np.testing.assert_array_equal(tape.hvp(case.z, e), H @ e, err_msg=msg)
        # replaying a tape recorded at a smooth point reaches the same convention
        replayed = record(case, build, backend, z=case.base_z())
        np.testing.assert_array_equal(replayed(case.z), value, err_msg=msg + ", replayed")
        np.testing.assert_array_equal(replayed.gradient(case.z), np.atleast_1d(d1),
                                      err_msg=msg + ", replayed")


@pytest.mark.parametrize("name,i", KINKS, ids=[f"{n}-{i}" for n, i in KINKS])
def test_kink_values_match_numpy(name, i, backend):
    prim = TABLE[name]
    point, value, _, _ = prim.kinks[i]
    case = Case(name, prim, point)
    assert case.ref(case.z) == value or (np.isnan(value) and np.isnan(case.ref(case.z)))


def test_log_of_zero_and_negative_follow_ieee(backend):
    for x, expected in [(0.0, -inf), (-0.0, -inf), (-1.0, nan), (inf, inf)]:
        tape = pyad.trace(pyad.log, x, backend=backend)
        got = tape()
        with np.errstate(all="ignore"):
            ref = float(np.log(x))
        np.testing.assert_array_equal(got, ref)
        np.testing.assert_array_equal(got, expected)
    # replay into the singular point from a regular one
    tape = pyad.trace(pyad.log, 2.0, backend=backend)
    assert tape(0.0) == -inf
    assert np.isnan(tape(-2.0))
    assert tape.gradient(0.0) == inf


def test_sqrt_of_negative_is_nan_and_division_by_zero_is_inf(backend):
    assert np.isnan(pyad.trace(pyad.sqrt, 4.0, backend=backend)(-1.0))
    tape = pyad.trace(lambda x: 1.0 / x, 2.0, backend=backend)
    assert tape(0.0) == inf and tape(-0.0) == -inf
    tape = pyad.trace(lambda z: z[0] / z[1], np.array([1.0, 2.0]), backend=backend)
    assert tape(np.array([1.0, 0.0])) == inf
    assert np.isnan(tape(np.array([0.0, 0.0])))


def test_maximum_minimum_propagate_nan_like_numpy(backend):
    for name, f in (("maximum", pyad.maximum), ("minimum", pyad.minimum)):
        tape = pyad.trace(lambda z: f(z[0], z[1]), np.array([1.0, 2.0]), backend=backend)
        for p in ([nan, 1.0], [1.0, nan], [nan, nan]):
            assert np.isnan(tape(np.array(p))), (name, p)
            assert np.isnan(getattr(np, name)(*p))
        tape = pyad.trace(lambda x: f(x, 1.0), 2.0, backend=backend)
        assert np.isnan(tape(nan)), name


# ---------------------------------------------------------------------------
# Comparisons: 1.0 / 0.0, no derivative, replay both ways
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", COMPARISONS)
def test_comparison_values_and_zero_derivatives(name, backend):
    prim = TABLE[name]
    for point in prim.points:
        case = Case(name, prim, point)
        expected = 1.0 if case.ref(case.z) else 0.0
        zero = np.zeros_like(case.z)
        for k, build in enumerate(prim.builds):
            msg = f"{case}, spelling {k}"
            tape = record(case, build, backend)
            assert tape() == expected, msg
            assert tape(case.z) == expected, msg
            np.testing.assert_array_equal(tape.gradient(case.z), zero, err_msg=msg)
            np.testing.assert_array_equal(tape.jvp(case.z, np.ones_like(case.z))[1], 0.0,
                                          err_msg=msg)
            np.testing.assert_array_equal(tape.hvp(case.z, np.ones_like(case.z)), zero,
                                          err_msg=msg)
        # a comparison is data, not a branch: replay from elsewhere gives the new outcome
        replayed = record(case, prim.builds[0], backend, z=case.base_z())
        assert replayed(case.z) == expected, f"{case}, replayed"
        assert replayed.retraces == 0


@pytest.mark.parametrize("name", COMPARISONS)
def test_comparison_result_is_an_active_bool(name, backend):
    prim = TABLE[name]
    case = Case(name, prim, prim.points[0])
    with pyad.Tape(backend=backend) as tape:
        z = tape.input(case.z)
        r = case.fn(prim.builds[0])(z)
        assert isinstance(r, pyad.Bool)
        assert r.value == (1.0 if case.ref(case.z) else 0.0)
        tape.output(r * 3.0 + z[0])
    # d/dz0 of (cmp * 3 + z0) is 1: the comparison contributes nothing
    g = tape.gradient()
    assert g[0] == 1.0
    assert np.all(g[1:] == 0.0)
