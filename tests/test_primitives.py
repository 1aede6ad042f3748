"""Table-driven tests of every primitive the C core reports.

The table (tests/primitive_table.py) maps each primitive name (as reported by
pyad.ops) to: how to record it from active operands (several equivalent
spellings where pyad has them), its numpy reference, its exact first and second
derivatives written out there, sample points across the domain, and kink points
with the values and derivatives the conventions of DESIGN.md prescribe.

Oracles: numpy values, the exact formulas, central differences of the numpy
reference (first derivatives) and of the replayed gradient (HVP), and
forward-vs-reverse agreement.
"""
import numpy as np
import pytest

import pyad
from helpers import central_diff_grad, central_diff_jvp

from primitive_table import (COMPARISONS, DIFFERENTIABLE, SPECIAL_TABLE, TABLE,
                             ZERO_BY_DEFINITION)

nan, inf = float("nan"), float("inf")


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
    first = store.export()["first"]   # a slot's row: the last row starting at or before it
    row = int(np.searchsorted(first, int(store.output_slots()[0]), side="right")) - 1
    return pyad.ops.NAME[store.op_at(row)]


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
    special = set(pyad.ops.names_of_kind("special"))
    missing = sorted(special - set(SPECIAL_TABLE))
    assert not missing, f"special primitives with no row in SPECIAL_TABLE: {missing}"
    assert not set(SPECIAL_TABLE) - special, sorted(set(SPECIAL_TABLE) - special)
    # and nothing the registry declares falls between the two tables
    unknown = sorted(set(pyad.ops.NAME) - set(TABLE) - special)
    assert not unknown, f"primitives of a kind the test table does not know: {unknown}"


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
        if name in ZERO_BY_DEFINITION:
            fd = np.zeros_like(fd)
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
        fd = 0.0 if name in ZERO_BY_DEFINITION else central_diff_jvp(case.ref, case.z, v)
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
# Whole Hessians: tape.hessian and pyad.hessian, a primitive's output flowing
# into a product, arrays of points, and every unary primitive in one function
# ---------------------------------------------------------------------------

def op_count(tape, name):
    """Elements the op computes: its slots (a block row counts each of its elements)."""
    return tape.stats()["slots"].get(name, 0)


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_hessian_matches_exact_second_derivative(name, backend):
    for case in cases(name):
        H = case.hess(case.z)
        for k, build in enumerate(case.prim.builds):
            msg = f"{case}, spelling {k}"
            tape = record(case, build, backend)
            assert op_count(tape, name) == 1, (msg, tape.stats()["ops"])
            got = tape.hessian(case.z)
            assert got.shape == (case.z.size, case.z.size), msg
            rel_close(got, H, 1e-13, msg)
            assert np.array_equal(got, got.T), msg
            rel_close(pyad.hessian(case.fn(build), backend=backend)(case.z), H, 1e-13, msg)
        replayed = record(case, case.prim.builds[0], backend, z=case.base_z())
        rel_close(replayed.hessian(case.z), H, 1e-13, f"{case}, replayed")


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_second_derivative_through_products(name, backend):
    """The tangent of the primitive's output meets the adjoint in a product:
    (f^2)'' = 2 f' f'^T + 2 f f'', and f(z) * w has the cross term f'(z)."""
    for case in cases(name):
        f, g, H = case.ref(case.z), case.grad(case.z), case.hess(case.z)
        n = case.z.size
        for k, build in enumerate(case.prim.builds):
            msg = f"{case}, spelling {k}"
            fn = case.fn(build)
            squared = pyad.hessian(lambda z: fn(z) * fn(z), backend=backend)(case.z)
            terms = 2.0 * np.outer(g, g), 2.0 * f * H
            # the two terms may cancel (sqrt: 2/(4x) - 2 sqrt(x) / (4 x^1.5) = 0)
            scale = float(np.max(np.abs(terms[0]) + np.abs(terms[1])))
            np.testing.assert_allclose(squared, terms[0] + terms[1], rtol=1e-12,
                                       atol=1e-12 * scale, err_msg=msg + ", f * f")
            w = 1.7
            zw = np.append(case.z, w)
            expected = np.zeros((n + 1, n + 1))
            expected[:n, :n], expected[:n, n], expected[n, :n] = w * H, g, g
            crossed = pyad.hessian(lambda zw: fn(zw[:n]) * zw[n], backend=backend)(zw)
            rel_close(crossed, expected, 1e-13, msg + ", f * w")


UNARY = pyad.ops.names_of_kind("unary")


def _elementwise(fn, xs):
    return np.array([float(fn(x)) for x in xs])


@pytest.mark.parametrize("name", UNARY)
def test_unary_primitive_on_an_array_of_points(name, backend):
    prim = TABLE[name]
    x = np.array(prim.points, dtype=float)
    d1, d2 = _elementwise(prim.d1, x), _elementwise(prim.d2, x)
    for k, build in enumerate(prim.builds):
        msg = f"{name} at {x.tolist()}, spelling {k}"
        f = lambda z: np.sum(build(z))
        tape = pyad.trace(f, x, backend=backend)
        assert op_count(tape, name) == x.size, (msg, tape.stats()["ops"])
        rel_close(tape.gradient(x), d1, 1e-13, msg)
        np.testing.assert_allclose(tape.hessian(x), np.diag(d2), rtol=1e-13,
                                   atol=1e-13 * np.max(np.abs(d2)), err_msg=msg)
        np.testing.assert_allclose(pyad.hessian(f, backend=backend)(x), np.diag(d2),
                                   rtol=1e-13, atol=1e-13 * np.max(np.abs(d2)), err_msg=msg)


@pytest.mark.parametrize("name", UNARY + pyad.ops.names_of_kind("with_const"))
def test_second_derivative_of_a_scalar_input(name, backend):
    """x.shape + x.shape is () for a plain float input, through every spelling."""
    for case in cases(name):
        s = float(case.z[0])
        c = case.c
        for k, build in enumerate(case.prim.builds):
            fn = (lambda z: build(z)) if c is None else (lambda z: build(z, c))
            H = pyad.hessian(fn, backend=backend)(s)
            assert np.shape(H) == (), (case, k)
            rel_close(H, case.hess(case.z)[0, 0], 1e-13, f"{case}, spelling {k}")


def test_sum_of_all_unary_primitives_has_the_analytic_diagonal(backend):
    xs = np.array([TABLE[n].points[0] for n in UNARY], dtype=float)

    def f(x):
        total = 0.0
        for i, n in enumerate(UNARY):
            total = total + TABLE[n].builds[0](x[i])
        return total

    H = pyad.hessian(f, backend=backend)(xs)
    expected = np.diag([TABLE[n].d2(x) for n, x in zip(UNARY, xs)])
    np.testing.assert_allclose(H, expected, rtol=1e-13, atol=1e-15)
    assert np.array_equal(H, H.T)


# ---------------------------------------------------------------------------
# Special rows, through a function that records each
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(SPECIAL_TABLE))
def test_special_rows(name, backend):
    row = SPECIAL_TABLE[name]
    first = row.trace(row.points[0], backend)
    for z in row.points:
        msg = f"{name} at {z.tolist()}"
        tape = row.trace(z, backend)
        assert op_count(tape, name) >= 1, (msg, tape.stats()["ops"])
        for t, how in ((tape, "recorded"), (first, "replayed")):
            val_close(t(z), row.value(z), f"{msg}, {how}")
            rel_close(t.gradient(z), row.grad(z), 1e-13, f"{msg}, {how}")
            for e in np.eye(z.size):
                rel_close(t.jvp(z, e)[1], row.grad(z) @ e, 1e-13, f"{msg}, {how}, jvp")
            rel_close(t.hessian(z), row.hess(z), 1e-13, f"{msg}, {how}")


# ---------------------------------------------------------------------------
# Kinks and IEEE edge values
# ---------------------------------------------------------------------------

# (a primitive missing from the table fails test_table_covers_every_reported_primitive)
KINKS = [(name, i) for name in TABLE if name in DIFFERENTIABLE
         for i in range(len(TABLE[name].kinks))]


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
