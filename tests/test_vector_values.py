"""Array rows' transcendental values (csrc/array_math.c): glibc's vector math
where the build has it, so within a few ulp of numpy and of the scalar libm,
not bit for bit. What must hold bit for bit: an element's value depends on its
input alone (not on its position in the row, nor on the row's length), and the
recording and every one-point sweep of a row give the same number."""
import math

import numpy as np
import pytest

import pyad

# numpy name -> (the scalar libm's function, the domain sampled)
FUNCTIONS = {
    "exp": (math.exp, (-700.0, 700.0)),
    "log": (math.log, (1e-300, 1e300)),
    "log1p": (math.log1p, (-0.999, 1e10)),
    "expm1": (math.expm1, (-50.0, 700.0)),
    "sin": (math.sin, (-1e4, 1e4)),
    "cos": (math.cos, (-1e4, 1e4)),
    "tan": (math.tan, (-10.0, 10.0)),
    "tanh": (math.tanh, (-20.0, 20.0)),
    "sinh": (math.sinh, (-700.0, 700.0)),
    "cosh": (math.cosh, (-700.0, 700.0)),
    "arcsin": (math.asin, (-1.0, 1.0)),
    "arccos": (math.acos, (-1.0, 1.0)),
    "arctan": (math.atan, (-1e6, 1e6)),
    "arcsinh": (math.asinh, (-1e6, 1e6)),
    "arccosh": (math.acosh, (1.0, 1e6)),
    "arctanh": (math.atanh, (-0.999999, 0.999999)),
    "exp2": (lambda v: math.pow(2.0, v), (-1000.0, 1000.0)),
    "log2": (math.log2, (1e-300, 1e300)),
    "log10": (math.log10, (1e-300, 1e300)),
}
MAX_ULP = 4        # libmvec's bound; numpy's own SIMD loops are a few ulp off too

EDGES = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -5e-324, 1e-310, -1e-310,
                  2.2250738585072014e-308, 1e-20, -1e-20, 0.5, -0.5, 1.0, -1.0, 2.0, 1e300,
                  -1e300, 1.7976931348623157e308, -1.7976931348623157e308, 710.0, -745.5,
                  1e22, 3.0e5 * np.pi])


def sample(name, n=3000, seed=0):
    lo, hi = FUNCTIONS[name][1]
    rng = np.random.default_rng(seed)
    wide = rng.uniform(lo, hi, n)
    near0 = np.clip(rng.uniform(-3.0, 3.0, n), lo, hi)
    return np.concatenate([wide, near0])


def ulp_distance(a, b):
    """Elementwise distance in units of the larger one's last place (0 where
    both are equal, inf included; NaN where exactly one is NaN)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    with np.errstate(all="ignore"):
        d = np.abs(a - b) / np.spacing(np.maximum(np.abs(a), np.abs(b)))
    return np.where(same, 0.0, np.where(np.isnan(a) | np.isnan(b), np.nan, d))


def assert_within_ulp(got, want, what):
    d = ulp_distance(got, want)
    bad = ~(d <= MAX_ULP)
    assert not bad.any(), (f"{what}: {int(bad.sum())} element(s) more than {MAX_ULP} ulp "
                           f"off, first got {got[bad][:3]} want {want[bad][:3]}")


def row_values(name, x, backend):
    tape = pyad.trace(getattr(np, name), x, backend=backend)
    return tape, tape(x)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_array_values_are_within_a_few_ulp_of_numpy_and_libm(name, backend):
    x = sample(name)
    _, z = row_values(name, x, backend)
    assert_within_ulp(z, getattr(np, name)(x), f"{name} vs numpy")
    libm = np.array([FUNCTIONS[name][0](v) for v in x])
    assert_within_ulp(z, libm, f"{name} vs the scalar libm")


def _libm_or_nan(fn, v):
    try:
        return fn(v)
    except (ValueError, OverflowError):  # math raises where numpy gives nan / inf
        return np.nan


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_edge_values_follow_numpy(name, backend):
    """inf, nan, signed zeros, subnormals, huge and out-of-domain inputs: the
    same nan / inf / zero (with its sign) as numpy, the rest within a few ulp."""
    with np.errstate(all="ignore"):
        want = getattr(np, name)(EDGES)
        _, z = row_values(name, EDGES, backend)
    assert np.array_equal(np.isnan(z), np.isnan(want)), (name, EDGES, z, want)
    inf = np.isinf(want)
    assert np.array_equal(z[inf], want[inf]), (name, EDGES[inf], z[inf])
    zero = want == 0.0
    assert np.array_equal(z[zero], want[zero]) and \
        np.array_equal(np.signbit(z[zero]), np.signbit(want[zero])), (name, EDGES[zero], z[zero])
    finite = np.isfinite(want)
    assert_within_ulp(z[finite], want[finite], f"{name} at edge inputs")
    libm = np.array([_libm_or_nan(FUNCTIONS[name][0], v) for v in EDGES])
    ok = finite & np.isfinite(libm)
    assert_within_ulp(z[ok], libm[ok], f"{name} at edge inputs vs the scalar libm")


@pytest.mark.parametrize("name", ["tanh", "exp", "log1p", "sin"])
def test_an_elements_value_does_not_depend_on_its_position(name, backend):
    """Every element goes through the same vector call: a short row, the tail
    of a row (length not a multiple of 4) and a strided operand give each
    element the value it has inside a long row."""
    x = sample(name, 40)
    _, whole = row_values(name, x, backend)
    for start in range(5):
        for n in range(2, 10):
            _, part = row_values(name, x[start:start + n], backend)
            assert np.array_equal(part, whole[start:start + n]), (name, start, n)
    strided = pyad.trace(lambda v: getattr(np, name)(v[1::3]), x, backend=backend)(x)
    assert np.array_equal(strided, whole[1::3])
    scalar = pyad.trace(lambda v: getattr(np, name)(v[7]), x, backend=backend)(x)
    assert 0 <= ulp_distance(scalar, whole[7]) <= MAX_ULP   # a scalar row: the scalar libm


@pytest.mark.parametrize("name", ["tanh", "exp", "log", "cos", "arcsinh"])
def test_recording_and_every_one_point_sweep_give_the_same_values(name, backend):
    x = sample(name, 50, seed=3)
    v = np.random.default_rng(4).standard_normal(x.size)
    with pyad.Tape(backend=backend) as tape:
        a = tape.input(x)
        y = getattr(np, name)(a)
        tape.output(y)
    recorded = np.asarray(y.value)
    assert np.array_equal(tape(), recorded)
    assert np.array_equal(tape(x), recorded)
    assert np.array_equal(tape.jvp(x, v)[0], recorded)
    assert np.array_equal(tape.vjp(x, v)[0], recorded)
    # a guard on an exact value: replay at the recorded point keeps its branch
    fn = getattr(np, name)
    g = pyad.trace(lambda u: np.sum(fn(u)) if fn(u)[3] == recorded[3] else 0.0 * u[0],
                   x, backend=backend, retrace=False)
    assert g(x) == np.sum(recorded)
    assert np.array_equal(g.gradient(x), pyad.grad(lambda u: np.sum(fn(u)),
                                                   backend=backend)(x))


@pytest.mark.parametrize("name", ["tanh", "exp", "sin"])
def test_vector_tangents_see_the_recorded_values(name, backend):
    """The Jacobian in forward mode (vector tangents) differentiates at the
    values the one-point sweeps compute: tanh' = 1 - tanh^2, exp' = exp read
    from the row's values."""
    x = sample(name, 9, seed=5)
    tape = pyad.trace(lambda u: getattr(np, name)(u) * 1.0, x, backend=backend)
    z = tape(x)
    jac = tape.jacobian(x, mode="forward")
    rev = tape.jacobian(x, mode="reverse")
    np.testing.assert_allclose(jac, rev, rtol=1e-15, atol=0)
    if name == "tanh":
        np.testing.assert_array_equal(np.diag(rev), 1.0 - z * z)
    if name == "exp":
        np.testing.assert_array_equal(np.diag(rev), z)


def test_c_and_python_backends_agree_to_a_few_ulp():
    x = sample("tanh", 500)
    f = lambda u: np.sum(np.tanh(u) * np.exp(-u * u) + np.log1p(u * u))
    gc = pyad.grad(f, backend="c")(x)
    gp = pyad.grad(f, backend="python")(x)
    np.testing.assert_allclose(gc, gp, rtol=1e-14, atol=1e-15)
    assert abs(pyad.trace(f, x, backend="c")(x) - f(x)) <= 1e-13 * abs(f(x))
