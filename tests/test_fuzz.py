"""Differential fuzzing: random programs, recorded on the C and the pure-Python
backends, must agree on values and on every derivative; forward and reverse
mode must agree with each other; batched replay must equal replay point by point.

Programs draw from the whole primitive table (the unary and binary names come
from pyad.ops, so a new primitive is fuzzed as soon as it exists), with array
broadcasting, reductions (sum, prod, max, min), products with constant matrices,
pyad.where selects over comparisons, constants on either side of an operator
(the *_c rows), and, for scalar programs, Python `if` statements (guards).
Operands of functions with a restricted domain are mapped into it (log of
x*x + 0.5, arcsin of 0.9*tanh(x), ...), so values and derivatives stay finite
and every comparison below is a real one.

PYAD_FUZZ_EXAMPLES sets the examples per test (default 40); the examples are
derandomized so a run is reproducible; PYAD_FUZZ_RANDOM=1 explores new ones.
"""
import operator
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pyad
from pyad import ops

EXAMPLES = int(os.environ.get("PYAD_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                derandomize=not os.environ.get("PYAD_FUZZ_RANDOM"),
                suppress_health_check=list(HealthCheck), print_blob=True)

UNARY = [n for n in ops.names_of_kind("unary") if hasattr(pyad, n)]
BINARY = ops.names_of_kind("binary")
COMPARE = ["lt", "le", "gt", "ge", "eq", "ne"]
CMP_FN = {"lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge,
          "eq": operator.eq, "ne": operator.ne}
REDUCE = ["sum", "prod", "max", "min"]
MAX_SIZE = 12  # elements per intermediate array


def test_the_fuzzer_covers_the_table():
    assert len(UNARY) == len(ops.names_of_kind("unary")), "a unary primitive has no pyad.<name>"
    assert set(COMPARE) <= set(ops.names_of_kind("compare"))
    assert {"add", "sub", "mul", "div", "pow", "maximum", "minimum"} <= set(BINARY)


# ---- the interpreter: one program, run on active values while recording ----

def _safe_unary(name, v):
    """pyad.<name> of v, with v mapped into the function's domain."""
    f = getattr(pyad, name)
    if name in ("log", "sqrt", "reciprocal", "log2", "log10", "cbrt", "gammaln", "digamma"):
        return f(v * v + 0.5)
    if name == "arccosh":
        return f(v * v + 1.25)
    if name == "logit":
        return f(pyad.tanh(v) * 0.4 + 0.5)
    if name == "arctanh":
        return f(pyad.tanh(v) * 0.9)
    if name == "log1p":
        return f(v * v)
    if name in ("arcsin", "arccos"):
        return f(pyad.tanh(v) * 0.9)
    if name in ("exp", "expm1", "sinh", "cosh"):
        return f(pyad.tanh(v) * 2.0)
    if name == "tan":
        return f(pyad.tanh(v))
    return f(v)


def _positive(c):
    """A constant in (0.5, ...) for bases of powers and divisors."""
    return np.abs(c) + 0.5 if isinstance(c, np.ndarray) else abs(c) + 0.5


def _safe_binary(name, a, b, a_const=False, b_const=False):
    """a <name> b with at most one constant operand, kept inside the domain."""
    if name == "div":
        return a / (_positive(b) if b_const else b * b + 0.5)
    if name == "pow":
        base = _positive(a) if a_const else a * a + 0.5
        expo = np.tanh(b) if b_const else pyad.tanh(b)
        return base ** expo
    if name == "arctan2":
        return pyad.arctan2(a, _positive(b) if b_const else b * b + 0.5)
    if name in ("xlogy", "xlog1py"):
        return getattr(pyad, name)(a, _positive(b) if b_const else b * b + 0.5)
    if name in ("add", "sub", "mul"):
        return {"add": operator.add, "sub": operator.sub, "mul": operator.mul}[name](a, b)
    return getattr(pyad, name)(a, b)  # maximum, minimum, and any new binary primitive


def _raw_unary(name, v):
    return getattr(pyad, name)(v)


def _raw_binary(name, a, b, a_const=False, b_const=False):
    if name in ("add", "sub", "mul", "div", "pow"):
        return {"add": operator.add, "sub": operator.sub, "mul": operator.mul,
                "div": operator.truediv, "pow": operator.pow}[name](a, b)
    return getattr(pyad, name)(a, b)


def _shape(v):
    return tuple(getattr(v, "shape", ()))


def _total(v):
    return v.sum() if _shape(v) else v


def _fit(*vals):
    """Operands that broadcast together within MAX_SIZE (arrays summed otherwise)."""
    try:
        shape = np.broadcast_shapes(*(_shape(v) for v in vals))
        if int(np.prod(shape)) <= MAX_SIZE:
            return vals
    except ValueError:
        pass
    return tuple(_total(v) for v in vals)


def _constant(seed, shape):
    return np.random.default_rng(seed).uniform(-1.5, 1.5, size=shape)


def run(program, x, safe=True):
    """Interpret program on the active array x; returns every value it made.
    safe=False applies the functions as they are, outside their domains too."""
    _safe_unary = globals()["_safe_unary" if safe else "_raw_unary"]
    _safe_binary = globals()["_safe_binary" if safe else "_raw_binary"]
    env = [x, x[0]]
    for ins in program:
        kind = ins[0]
        pick = lambda i: env[i % len(env)]  # noqa: E731
        if kind == "unary":
            _, name, i = ins
            env.append(_safe_unary(name, pick(i)))
        elif kind == "binary":
            _, name, i, j = ins
            a, b = _fit(pick(i), pick(j))
            env.append(_safe_binary(name, a, b))
        elif kind == "binary_const":
            _, name, i, seed, as_array, reflected = ins
            a = pick(i)
            c = _constant(seed, _shape(a)) if as_array else float(_constant(seed, ()))
            env.append(_safe_binary(name, c, a, a_const=True) if reflected
                       else _safe_binary(name, a, c, b_const=True))
        elif kind == "compare":
            _, name, i, j, seed, with_const = ins
            a = pick(i)
            b = float(_constant(seed, ())) if with_const else pick(j)
            a, b = _fit(a, b) if not with_const else (a, b)
            env.append(CMP_FN[name](a, b) + 0.0)
        elif kind == "where":
            _, name, i, j, k, l = ins
            a, b, c, d = _fit(pick(i), pick(j), pick(k), pick(l))
            env.append(pyad.where(CMP_FN[name](a, b), c, d))
        elif kind == "reduce":
            _, how, i, axis = ins
            v = pick(i)
            if not _shape(v):
                env.append(v * 1.0)
                continue
            ax = None if axis is None else axis % len(_shape(v))
            if how == "prod":  # keep products of many factors in range
                v = pyad.tanh(v) + 1.5
            env.append(getattr(v, how)(axis=ax))
        elif kind == "outer":
            _, i, j, name = ins
            a, b = pick(i), pick(j)
            if len(_shape(a)) == 1 and len(_shape(b)) == 1 and a.size * b.size <= MAX_SIZE:
                env.append(_safe_binary(name, a[:, None], b[None, :]))
            else:
                env.append(_safe_binary(name, _total(a), _total(b)))
        elif kind == "matmul":
            _, i, seed, p, left = ins
            v = pick(i)
            if not _shape(v) or len(_shape(v)) > 2:
                env.append(v * float(_constant(seed, ())))
            elif left and len(_shape(v)) == 1:
                env.append(_constant(seed, (p, v.shape[0])) @ v)
            else:
                env.append(v @ _constant(seed, (v.shape[-1], p)))
        elif kind == "index":
            _, i, j = ins
            v = pick(i)
            env.append(v[j % v.shape[0]] if _shape(v) else v)
        elif kind == "stack":
            _, i, j = ins
            env.append(pyad.stack([_total(pick(i)), _total(pick(j)), x[-1]]))
        elif kind == "if":
            _, i, name, seed, then_name, else_name = ins
            s = _total(pick(i))
            if CMP_FN[name](s, float(_constant(seed, ()))):  # records a guard
                env.append(_safe_unary(then_name, s))
            else:
                env.append(_safe_unary(else_name, s) * 0.5)
        else:  # pragma: no cover
            raise AssertionError(kind)
    return env


def scalar_output(program, safe=True):
    def f(x):
        return sum(_total(v) * (1.0 / (k + 1)) for k, v in enumerate(run(program, x, safe)))
    return f


def vector_output(program):
    def f(x):
        return pyad.stack([_total(v) for v in run(program, x)])
    return f


# ---- the programs ----

seeds = st.integers(0, 2**31 - 1)
idx = st.integers(0, 50)


def instructions(branches):
    options = [
        st.tuples(st.just("unary"), st.sampled_from(UNARY), idx),
        st.tuples(st.just("binary"), st.sampled_from(BINARY), idx, idx),
        st.tuples(st.just("binary_const"), st.sampled_from(BINARY), idx, seeds, st.booleans(),
                  st.booleans()),
        st.tuples(st.just("compare"), st.sampled_from(COMPARE), idx, idx, seeds, st.booleans()),
        st.tuples(st.just("where"), st.sampled_from(COMPARE), idx, idx, idx, idx),
        st.tuples(st.just("reduce"), st.sampled_from(REDUCE), idx, st.none() | st.integers(0, 1)),
        st.tuples(st.just("outer"), idx, idx, st.sampled_from(BINARY)),
        st.tuples(st.just("matmul"), idx, seeds, st.integers(1, 3), st.booleans()),
        st.tuples(st.just("index"), idx, idx),
        st.tuples(st.just("stack"), idx, idx),
    ]
    if branches:
        options.append(st.tuples(st.just("if"), idx, st.sampled_from(COMPARE), seeds,
                                 st.sampled_from(UNARY), st.sampled_from(UNARY)))
    return st.one_of(options)


@st.composite
def cases(draw, branches=False):
    n = draw(st.integers(1, 4))
    program = draw(st.lists(instructions(branches), min_size=1, max_size=10))
    x0 = np.array(draw(st.lists(st.floats(-1.5, 1.5), min_size=n, max_size=n)))
    rng = np.random.default_rng(draw(seeds))
    return program, x0, rng


# ---- comparisons ----

def assert_agree(got, want, what, rtol=1e-9):
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    assert got.shape == want.shape, f"{what}: shapes {got.shape} and {want.shape}"
    scale = 1.0 + (np.max(np.abs(want[np.isfinite(want)])) if np.isfinite(want).any() else 0.0)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale, equal_nan=True,
                               err_msg=what)


def traced(f, x0):
    return {be: pyad.trace(f, x0, backend=be) for be in ("c", "python")}


def nearby(x0, rng, scale=0.05):
    return x0 + rng.uniform(-scale, scale, size=x0.shape)


@FUZZ
@given(cases())
def test_scalar_programs_agree_on_values_gradients_and_hvps(case):
    program, x0, rng = case
    tapes = traced(scalar_output(program), x0)
    x1, v = nearby(x0, rng), rng.uniform(-1, 1, size=x0.shape)
    X = np.stack([x0, x1, nearby(x0, rng)])
    results = {}
    for be, tape in tapes.items():
        g1 = tape.gradient(x1)
        hv = tape.hvp(x1, v)
        results[be] = {"value at x0": tape(), "value at x1": tape(x1),
                       "gradient at x0": tape.gradient(), "gradient at x1": g1,
                       "hvp": hv, "batch values": tape(X, batch=True),
                       "batch gradients": tape.gradient(X, batch=True),
                       "batch hvps": tape.hvp(X, np.stack([v] * 3), batch=True)}
        # batched replay is replay point by point
        assert_agree(results[be]["batch values"], [tape(p) for p in X], f"{be}: batch values")
        assert_agree(results[be]["batch gradients"], [tape.gradient(p) for p in X],
                     f"{be}: batch gradients")
        assert_agree(results[be]["batch hvps"], [tape.hvp(p, v) for p in X], f"{be}: batch hvps")
        # forward over reverse is symmetric: w.(H v) == v.(H w)
        w = rng.uniform(-1, 1, size=x0.shape)
        hw = tape.hvp(x1, w)
        lhs, rhs = float(w @ hv), float(v @ hw)
        assert abs(lhs - rhs) <= 1e-8 * (1 + abs(w) @ abs(hv) + abs(v) @ abs(hw)), (lhs, rhs)
        # the gradient is the tangent of the value: g.v == J v
        _, jv = tape.jvp(x1, v)
        assert abs(float(g1 @ v) - jv) <= 1e-9 * (1 + abs(g1) @ abs(v)), (float(g1 @ v), jv)
    for key in results["c"]:
        assert_agree(results["c"][key], results["python"][key], f"C vs Python: {key}")


@FUZZ
@given(cases())
def test_vector_programs_agree_on_jvp_vjp_and_jacobians(case):
    program, x0, rng = case
    tapes = traced(vector_output(program), x0)
    x1 = nearby(x0, rng)
    m = tapes["c"].n_outputs
    v, u = rng.uniform(-1, 1, size=x0.shape), rng.uniform(-1, 1, size=m)
    X = np.stack([x0, x1])
    V = rng.uniform(-1, 1, size=(2,) + x0.shape)
    U = rng.uniform(-1, 1, size=(2, m))
    results = {}
    for be, tape in tapes.items():
        y, jv = tape.jvp(x1, v)
        y2, ut_j = tape.vjp(x1, u)
        assert_agree(y, y2, f"{be}: values of jvp and vjp")
        # forward and reverse mode agree: u.(J v) == (u^T J).v
        J = tape.jacobian(x1, mode="forward")
        lhs, rhs = float(u @ jv), float(ut_j @ v)
        assert abs(lhs - rhs) <= 1e-9 * (1 + np.abs(u) @ np.abs(J) @ np.abs(v)), (lhs, rhs)
        assert_agree(tape.jacobian(x1, mode="reverse"), J, f"{be}: reverse vs forward Jacobian")
        assert_agree(J @ v, jv, f"{be}: Jacobian times v vs jvp")
        by, bjv = tape.jvp(X, V, batch=True)
        assert_agree(bjv, [tape.jvp(X[k], V[k])[1] for k in range(2)], f"{be}: batch jvp")
        _, bvjp = tape.vjp(X, U, batch=True)
        assert_agree(bvjp, [tape.vjp(X[k], U[k])[1] for k in range(2)], f"{be}: batch vjp")
        results[be] = {"values": y, "jvp": jv, "vjp": ut_j, "jacobian": J, "batch jvp": bjv,
                       "batch vjp": bvjp}
    for key in results["c"]:
        assert_agree(results["c"][key], results["python"][key], f"C vs Python: {key}")


@FUZZ
@given(cases(branches=True))
def test_programs_with_branches_agree_and_replay_safely(case):
    program, x0, rng = case
    f = scalar_output(program)
    tapes = traced(f, x0)
    # points near x0 and far from it, where recorded branches may go the other way
    X = np.stack([x0, nearby(x0, rng), rng.uniform(-1.5, 1.5, size=x0.shape),
                  rng.uniform(-1.5, 1.5, size=x0.shape)])
    results = {}
    for be, tape in tapes.items():
        values = [tape(p) for p in X]
        grads = [tape.gradient(p) for p in X]
        # each point's result is that of a fresh recording at the point
        for p, val, g in zip(X, values, grads):
            fresh = pyad.trace(f, p, backend=be)
            assert_agree(val, fresh(), f"{be}: replayed value vs a fresh recording")
            assert_agree(g, fresh.gradient(), f"{be}: replayed gradient vs a fresh recording")
        batch = pyad.trace(f, x0, backend=be)
        assert_agree(batch.gradient(X, batch=True), grads, f"{be}: batch gradients")
        assert_agree(batch(X, batch=True), values, f"{be}: batch values")
        # a tape that may not re-record either replays the same or refuses
        strict = pyad.trace(f, x0, backend=be, retrace=False)
        outcome = []
        for p, g in zip(X, grads):
            try:
                outcome.append(strict.gradient(p))
                assert_agree(outcome[-1], g, f"{be}: strict replay")
            except pyad.BranchError:
                outcome.append("branch")
        results[be] = {"values": values, "gradients": grads, "strict": outcome}
    assert_agree(results["c"]["values"], results["python"]["values"], "C vs Python: values")
    assert_agree(results["c"]["gradients"], results["python"]["gradients"],
                 "C vs Python: gradients")
    assert [isinstance(o, str) for o in results["c"]["strict"]] == \
        [isinstance(o, str) for o in results["python"]["strict"]], "C vs Python: BranchError"


@FUZZ
@given(cases(branches=True), st.sampled_from([0.0, np.nan, np.inf, -np.inf, 1e300, -0.0]))
def test_programs_outside_their_domains_agree_nan_for_nan(case, special):
    # no mapping into domains, and a special value among the inputs: NaN and inf
    # go wherever IEEE takes them, the same way in both backends
    program, x0, rng = case
    x0 = x0.copy()
    x0[rng.integers(x0.size)] = special
    f = scalar_output(program, safe=False)
    x1 = nearby(x0, rng)
    results = {}
    with np.errstate(all="ignore"):
        for be, tape in traced(f, x0).items():
            X = np.stack([x0, x1])
            results[be] = {"value": tape(), "gradient": tape.gradient(),
                           "gradient at x1": tape.gradient(x1),
                           "hvp": tape.hvp(x0, np.ones_like(x0)),
                           "batch gradients": tape.gradient(X, batch=True)}
    for key in results["c"]:
        assert_agree(results["c"][key], results["python"][key], f"C vs Python: {key}")


@FUZZ
@given(cases())
def test_saved_programs_replay_identically(case):
    program, x0, rng = case
    x1 = nearby(x0, rng)
    for be, tape in traced(scalar_output(program), x0).items():
        for load_be in ("c", "python"):
            loaded = pyad.loads(pyad.serialize.dumps(tape), backend=load_be)
            assert_agree(loaded(x1), tape(x1), f"{be} -> {load_be}: loaded value")
            assert_agree(loaded.gradient(x1), tape.gradient(x1), f"{be} -> {load_be}: gradient")


@pytest.mark.parametrize("name", UNARY + BINARY)
def test_every_primitive_through_the_interpreter(name):
    # fixed programs per primitive (plain, and with a constant on either side),
    # so that no primitive depends on the random draw
    if name in UNARY:
        program = [("unary", name, 0), ("binary_const", "mul", 2, 7, True, False)]
    else:
        program = [("binary", name, 0, 1), ("binary_const", name, 0, 3, False, True),
                   ("binary_const", name, 0, 4, True, False), ("outer", 0, 0, name)]
    x0 = np.array([0.3, -0.7, 1.1])
    tapes = traced(scalar_output(program), x0)
    for be, tape in tapes.items():
        _, jv = tape.jvp(x0 + 0.01, np.ones(3))
        assert abs(float(tape.gradient(x0 + 0.01).sum()) - jv) < 1e-9 * (1 + abs(jv)), be
    assert_agree(tapes["c"].gradient(x0 + 0.01), tapes["python"].gradient(x0 + 0.01),
                 f"C vs Python gradient through {name}")
    assert_agree(tapes["c"].hvp(x0, np.ones(3)), tapes["python"].hvp(x0, np.ones(3)),
                 f"C vs Python hvp through {name}")
