"""Random programs (hypothesis): the C and pure-Python backends agree on values
and every derivative, forward and reverse mode agree, and replay equals a fresh
recording.

A program is a list of nodes; each new node applies one primitive of the table
(every unary, binary, with-constant and comparison primitive the core reports)
to earlier nodes or constants, so subexpressions are shared freely. Arguments
that need a safe domain are wrapped (exp(sin a), a*a + 1, tanh(a) ...), and
growth is kept at most linear so that nothing overflows.
"""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pyad

CONSTS = (-2.5, -1.0, -0.5, 0.5, 1.0, 1.5, 3.0)
POS_CONSTS = (0.5, 2.0, 3.0)

S, T = pyad.sin, pyad.tanh


def _cmp(name):
    return {
        "lt": lambda a, b: a < b, "le": lambda a, b: a <= b, "gt": lambda a, b: a > b,
        "ge": lambda a, b: a >= b, "eq": lambda a, b: a == b, "ne": lambda a, b: a != b,
    }[name.replace("_c", "")]


def _compare_node(name, with_const):
    cmp = _cmp(name)

    def node(a, b, c, k):
        rhs = c if with_const else b
        cond = cmp(a, rhs)
        if k % 2:
            return pyad.where(cond, a, b)  # a select, replays both ways
        return cond * b + a                # the 1.0/0.0 as a number (derivative 0)
    return node


# name -> node(a, b, c, k): a, b earlier nodes, c a constant, k a spare random int
NODES = {
    # unary
    "neg": lambda a, b, c, k: -a,
    "abs": lambda a, b, c, k: abs(a),
    "square": lambda a, b, c, k: pyad.square(S(a)) if k % 2 else (T(a) * 2.0) ** 2,
    "reciprocal": lambda a, b, c, k: pyad.reciprocal(a * a + 1.0),
    "exp": lambda a, b, c, k: pyad.exp(S(a)),
    "log": lambda a, b, c, k: pyad.log(a * a + 1.0),
    "log1p": lambda a, b, c, k: pyad.log1p(a * a),
    "expm1": lambda a, b, c, k: pyad.expm1(S(a)),
    "sqrt": lambda a, b, c, k: pyad.sqrt(a * a + 0.5),
    "sin": lambda a, b, c, k: pyad.sin(a),
    "cos": lambda a, b, c, k: pyad.cos(a),
    "tan": lambda a, b, c, k: pyad.tan(T(a)),
    "arcsin": lambda a, b, c, k: pyad.arcsin(T(a) * 0.9),
    "arccos": lambda a, b, c, k: pyad.arccos(T(a) * 0.9),
    "arctan": lambda a, b, c, k: pyad.arctan(a),
    "sinh": lambda a, b, c, k: pyad.sinh(S(a) * 2.0),
    "cosh": lambda a, b, c, k: pyad.cosh(S(a) * 2.0),
    "tanh": lambda a, b, c, k: pyad.tanh(a),
    "stop_gradient": lambda a, b, c, k: pyad.stop_gradient(a) * b,
    # binary
    "add": lambda a, b, c, k: a + b,
    "sub": lambda a, b, c, k: a - b,
    "mul": lambda a, b, c, k: a * T(b),
    "div": lambda a, b, c, k: a / (b * b + 1.0),
    "pow": lambda a, b, c, k: pyad.exp(S(a)) ** (T(b) * 2.0),
    # all four quadrants and the branch cut, but |(y, x)| >= 0.5: the partials
    # 1/r stay bounded (near the origin they are huge and cancel, so that no
    # two summation orders agree to 1e-12)
    "arctan2": lambda a, b, c, k: pyad.arctan2(S(a) + S(b) * 1.5, pyad.cos(b) * 1.5),
    "maximum": lambda a, b, c, k: pyad.maximum(a, b),
    "minimum": lambda a, b, c, k: pyad.minimum(a, b),
    # with a constant
    "add_c": lambda a, b, c, k: a + c,
    "sub_c": lambda a, b, c, k: a - c,
    "rsub_c": lambda a, b, c, k: c - a,
    "mul_c": lambda a, b, c, k: a * c,
    "div_c": lambda a, b, c, k: a / c,
    "rdiv_c": lambda a, b, c, k: c / (a * a + 1.0),
    "pow_c": lambda a, b, c, k: pyad.exp(S(a)) ** c,
    "rpow_c": lambda a, b, c, k: POS_CONSTS[k % len(POS_CONSTS)] ** S(a),
    "maximum_c": lambda a, b, c, k: pyad.maximum(a, c),
    "minimum_c": lambda a, b, c, k: pyad.minimum(a, c),
}
for _name in pyad.ops.names_of_kind("compare"):
    NODES[_name] = _compare_node(_name, False)
for _name in pyad.ops.names_of_kind("compare_c"):
    NODES[_name] = _compare_node(_name, True)

PRIMITIVES = pyad.ops.names_of_kind("unary", "binary", "with_const", "compare", "compare_c")
OP_NAMES = sorted(NODES)


def test_random_programs_can_use_every_primitive():
    missing = sorted(set(PRIMITIVES) - set(NODES))
    assert not missing, f"primitives the random programs never use: {missing}"


def run_program(x, program):
    """All node values of the program at inputs x (active array or float64 ndarray)."""
    plain = isinstance(x, np.ndarray)
    nodes = [x[i] for i in range(len(x))]
    for name, i, j, ci, k in program:
        a, b = nodes[i % len(nodes)], nodes[j % len(nodes)]
        r = NODES[name](a, b, CONSTS[ci % len(CONSTS)], k)
        nodes.append(np.float64(r) if plain else r)
    return nodes


def vector_program(program):
    return lambda x: pyad.stack(run_program(x, program))


def scalar_program(program, w):
    def f(x):
        nodes = run_program(x, program)
        s = nodes[0] * w[0]
        for wk, node in zip(w[1:], nodes[1:]):
            s = s + node * wk
        return s
    return f


programs = st.lists(
    st.tuples(st.sampled_from(OP_NAMES), st.integers(0, 1000), st.integers(0, 1000),
              st.integers(0, 100), st.integers(0, 100)),
    min_size=1, max_size=20)
points = st.floats(-2.0, 2.0, allow_nan=False, allow_infinity=False)


def close(a, b, rtol, what):
    """NaN-aware comparison, relative to the vector's scale."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    finite = np.abs(b[np.isfinite(b)])
    scale = max(1.0, float(finite.max())) if finite.size else 1.0
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale, equal_nan=True, err_msg=what)


SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


@SETTINGS
@given(program=programs, n=st.integers(2, 4), data=st.data())
def test_c_and_python_backends_agree(program, n, data):
    x0 = np.array(data.draw(st.lists(points, min_size=n, max_size=n)))
    x1 = np.array(data.draw(st.lists(points, min_size=n, max_size=n)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    f = vector_program(program)
    tc = pyad.trace(f, x0, backend="c")
    tp = pyad.trace(f, x0, backend="python")
    assert tc.n_inputs == tp.n_inputs == n
    assert tc.n_outputs == tp.n_outputs == n + len(program)
    assert tc.n_ops == tp.n_ops

    # values at the recorded point, and replayed at a new one
    close(tc(), tp(), 1e-12, "recorded values")
    for x in (x0, x1):
        yc, yp = tc(x), tp(x)
        close(yc, yp, 1e-12, f"values at {x}")
        # and both against the program run on plain numpy floats
        with np.errstate(all="ignore"):
            ref = np.array(run_program(x.copy(), program))
        close(yc, ref, 1e-9, f"values vs numpy at {x}")

    v = rng.standard_normal(n)
    u = rng.standard_normal(n + len(program))
    for x in (x0, x1):
        (yc, jc), (yp, jp) = tc.jvp(x, v), tp.jvp(x, v)
        close(jc, jp, 1e-12, f"JVP at {x}")
        (yc, gc), (yp, gp) = tc.vjp(x, u), tp.vjp(x, u)
        close(gc, gp, 1e-12, f"VJP at {x}")

    # scalar output: gradient and HVP
    w = rng.standard_normal(n + len(program))
    g = scalar_program(program, w)
    sc = pyad.trace(g, x0, backend="c")
    sp = pyad.trace(g, x0, backend="python")
    for x in (x0, x1):
        close(sc(x), sp(x), 1e-12, f"scalar value at {x}")
        close(sc.gradient(x), sp.gradient(x), 1e-12, f"gradient at {x}")
        close(sc.hvp(x, v), sp.hvp(x, v), 1e-12, f"HVP at {x}")
    # the transforms agree as well
    close(pyad.grad(g, backend="c")(x1), pyad.grad(g, backend="python")(x1), 1e-12, "grad")
    close(pyad.hvp(g, x1, v, backend="c"), pyad.hvp(g, x1, v, backend="python"), 1e-12, "hvp")


def _abs_jacobian(tape, x, n):
    return np.abs(np.stack([tape.jvp(x, e)[1] for e in np.eye(n)], axis=1))


@SETTINGS
@given(program=programs, n=st.integers(2, 4), data=st.data())
def test_forward_and_reverse_agree_on_random_programs(backend, program, n, data):
    x0 = np.array(data.draw(st.lists(points, min_size=n, max_size=n)))
    x1 = np.array(data.draw(st.lists(points, min_size=n, max_size=n)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    m = n + len(program)
    tape = pyad.trace(vector_program(program), x0, backend=backend)
    for x in (x0, x1):
        v, u = rng.standard_normal(n), rng.standard_normal(m)
        _, jv = tape.jvp(x, v)
        _, uj = tape.vjp(x, u)
        # every node is an output, so |J| bounds the size of every intermediate
        # tangent and adjoint: the two summation orders differ by rounding of those
        scale = np.max(np.abs(u)) * np.sum(_abs_jacobian(tape, x, n) @ np.abs(v))
        np.testing.assert_allclose(u @ jv, uj @ v, rtol=1e-12, atol=1e-12 * max(1.0, scale))
        # J e_i by forward mode equals column i of the reverse-mode Jacobian
        for i, e in enumerate(np.eye(n)):
            col = tape.jvp(x, e)[1]
            rows = np.array([tape.vjp(x, ej)[1][i] for ej in np.eye(m)])
            close(col, rows, 1e-12, f"column {i} at {x}")


@SETTINGS
@given(program=programs, n=st.integers(2, 4), data=st.data())
def test_replay_equals_fresh_recording(backend, program, n, data):
    x0 = np.array(data.draw(st.lists(points, min_size=n, max_size=n)))
    x1 = np.array(data.draw(st.lists(points, min_size=n, max_size=n)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    w = rng.standard_normal(n + len(program))
    v = rng.standard_normal(n)
    g = scalar_program(program, w)
    replayed = pyad.trace(g, x0, backend=backend)
    fresh = pyad.trace(g, x1, backend=backend)
    close(replayed(x1), fresh(), 1e-12, "value")
    close(replayed.gradient(x1), fresh.gradient(), 1e-12, "gradient")
    close(replayed.hvp(x1, v), fresh.hvp(x1, v), 1e-12, "hvp")
    # the Hessian is symmetric: u.Hv == v.Hu
    u = rng.standard_normal(n)
    hv, hu = fresh.hvp(x1, v), fresh.hvp(x1, u)
    if np.all(np.isfinite(hv)) and np.all(np.isfinite(hu)):
        scale = max(1.0, float(np.abs(u) @ np.abs(hv) + np.abs(v) @ np.abs(hu)))
        np.testing.assert_allclose(u @ hv, v @ hu, rtol=1e-10, atol=1e-10 * scale)
    assert replayed.retraces == 0
