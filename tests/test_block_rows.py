"""Block rows (ARR_CONTRACT.md): one tape row for one elementwise numpy operation.

Every case is one function written twice: with numpy on the active array (the
recorders compress affine operands into block rows) and as a Python loop over
active Scalars (one scalar row per element, the reference). On both backends
the two tapes must agree on values and every derivative, each must match the
exact formulas, and the C and Python block tapes must agree with each other.
Then: the row counts (Rosenbrock), the exported layout, save / load / pickle,
the teaching views and debug_nans on block rows, and what a loader refuses.
"""
import pathlib
import pickle

import numpy as np
import pytest

import pyad
from pyad import ops, serialize
from pyad.array import wrap

N = 7                       # odd: the sum's pairwise tree has a leftover
X0 = np.array([0.7, -1.3, 0.4, 2.1, -0.6, 1.5, 0.9])
X1 = np.array([1.1, 0.3, -0.8, 0.5, 1.9, -1.2, 0.2])
C7 = np.array([2.0, -1.0, 0.5, 3.0, 1.0, -2.5, 0.25])
K7 = np.array([2.0, 3.0, 1.0, 2.0, 4.0, 3.0, 2.0])     # integer powers: negative bases are fine
W = np.array([0.3, -1.1, 0.7, 1.9, -0.4, 0.8, 1.3, -0.2])  # output weights (up to 8)


def loop(f, *xs):
    """[f(x_0, ...), f(x_1, ...), ...] over the elements of the active arrays xs, as
    scalar code: one scalar row per element."""
    return pyad.stack([f(*e) for e in zip(*xs)])


# name -> (numpy version, scalar-loop version, exact value, exact Jacobian)
# Each maps x (7,) to a vector; the comments say which operand layout it exercises.
def _cases():
    eye = np.eye(N)
    d = {}
    # unary, contiguous
    d["unary"] = (lambda x: np.sin(x),
                  lambda x: loop(pyad.sin, x),
                  np.sin, lambda x: np.diag(np.cos(x)))
    # unary, strided (x[::2] reads slots 0, 2, 4, 6)
    d["unary_strided"] = (lambda x: np.exp(x[::2]),
                          lambda x: loop(pyad.exp, x[::2]),
                          lambda x: np.exp(x[::2]), lambda x: np.diag(np.exp(x))[::2])
    # binary, both contiguous and overlapping (x[1:] and x[:-1])
    d["binary"] = (lambda x: x[1:] * x[:-1],
                   lambda x: loop(lambda a, b: a * b, x[1:], x[:-1]),
                   lambda x: x[1:] * x[:-1],
                   lambda x: x[:-1, None] * eye[1:] + x[1:, None] * eye[:-1])
    # binary, stride-0 broadcast on the left / on the right
    d["broadcast_left"] = (lambda x: x[2] / x,
                           lambda x: loop(lambda b: x[2] / b, x),
                           lambda x: x[2] / x,
                           lambda x: eye[2][None, :] / x[:, None] - np.diag(x[2] / x ** 2))
    d["broadcast_right"] = (lambda x: np.arctan2(x, x[3]),
                            lambda x: loop(lambda a: pyad.arctan2(a, x[3]), x),
                            lambda x: np.arctan2(x, x[3]),
                            lambda x: (np.diag(x[3] / (x ** 2 + x[3] ** 2))
                                       - np.outer(x / (x ** 2 + x[3] ** 2), eye[3])))
    # binary, strided on both sides
    d["binary_strided"] = (lambda x: x[0:6:2] ** 2 - x[1::2] * x[0:6:2],
                           lambda x: loop(lambda a, b: a ** 2 - b * a, x[0:6:2], x[1::2]),
                           lambda x: x[0:6:2] ** 2 - x[1::2] * x[0:6:2],
                           lambda x: ((2 * x[0:6:2] - x[1::2])[:, None] * eye[0:6:2]
                                      - x[0:6:2, None] * eye[1::2]))
    # with a shared constant, and with one constant per element
    d["const_shared"] = (lambda x: 2.0 ** x - 3.0 * x,
                         lambda x: loop(lambda a: 2.0 ** a - 3.0 * a, x),
                         lambda x: 2.0 ** x - 3.0 * x,
                         lambda x: np.diag(np.log(2.0) * 2.0 ** x - 3.0))
    d["const_per_element"] = (lambda x: C7 * x + x ** K7,
                              lambda x: loop(lambda a, c, k: c * a + a ** k, x, C7, K7),
                              lambda x: C7 * x + x ** K7,
                              lambda x: np.diag(C7 + K7 * x ** (K7 - 1)))
    # maximum with constants and with a stride-0 operand: ties split the derivative
    d["maximum_ties"] = (lambda x: np.maximum(x[:6], X0[1]) + np.minimum(x[1:], x[1]),
                         lambda x: loop(lambda a, b: pyad.maximum(a, X0[1]) + pyad.minimum(b, x[1]),
                                        x[:6], x[1:]),
                         None, None)
    # compare (x > x[0]), compare_c (x < C7) and select of strided / broadcast operands
    d["select"] = (lambda x: pyad.where(x > x[0], x * x, -x) + pyad.where(x < C7, x[4], 2.0 * x),
                   lambda x: loop(lambda a, c: (pyad.where(a > x[0], a * a, -a)
                                                + pyad.where(a < c, x[4], 2.0 * a)), x, C7),
                   lambda x: np.where(x > x[0], x * x, -x) + np.where(x < C7, x[4], 2.0 * x),
                   lambda x: (np.diag(np.where(x > x[0], 2 * x, -1.0))
                              + np.where((x < C7)[:, None], eye[4][None, :], 2.0 * eye)))
    # the pairwise sum of a contiguous array: levels with stride 2 (and a leftover)
    d["sum"] = (lambda x: pyad.stack([np.sum(x * x), np.sum(x[1:])]),
                lambda x: pyad.stack([sum_loop([e * e for e in x]), sum_loop(list(x[1:]))]),
                lambda x: np.array([np.sum(x * x), np.sum(x[1:])]),
                lambda x: np.array([2 * x, np.r_[0.0, np.ones(N - 1)]]))
    return d


def sum_loop(items):
    s = items[0]
    for e in items[1:]:
        s = s + e
    return s


CASES = _cases()
POINTS = (X0, X1)


def weighted(g):
    """A scalar function of x: the weighted sum of g's outputs, as a loop of scalar rows
    (the same for both versions, so only g's rows differ)."""
    def f(x):
        y = g(x)
        return sum_loop([W[i] * y[i] for i in range(len(y))])
    return f


def tapes(name, backend, point=X0):
    vec, scal = CASES[name][:2]
    return (pyad.trace(vec, point, backend=backend), pyad.trace(scal, point, backend=backend))


def close(a, b, what, rtol=1e-12, atol=1e-13):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=what)


# ---- every layout, every sweep: block tape == per-element tape == exact ----

@pytest.mark.parametrize("name", sorted(CASES))
def test_block_tape_is_smaller_and_has_block_rows(name, backend):
    block, ref = tapes(name, backend)
    assert block.stats()["n_blocks"] >= 1
    assert block.n_ops < ref.n_ops
    assert block.n_slots >= block.n_ops


@pytest.mark.parametrize("name", sorted(CASES))
def test_values_and_first_derivatives(name, backend):
    block, ref = tapes(name, backend)
    rng = np.random.default_rng(3)
    for x in POINTS:
        what = f"{name} at {x}"
        close(block(x), ref(x), what)
        v = rng.normal(size=N)
        u = rng.normal(size=np.shape(ref(x)))
        for i, (b, r) in enumerate(zip(block.jvp(x, v), ref.jvp(x, v))):
            close(b, r, f"jvp[{i}] {what}")
        for i, (b, r) in enumerate(zip(block.vjp(x, u), ref.vjp(x, u))):
            close(b, r, f"vjp[{i}] {what}")
        for mode in ("forward", "reverse"):
            close(block.jacobian(x, mode=mode), ref.jacobian(x, mode=mode), f"{mode} J {what}")
        _, _, exact_value, exact_jac = CASES[name]
        if exact_value is not None:
            close(block(x), exact_value(x), f"exact value {what}")
        if exact_jac is not None:
            close(block.jacobian(x), exact_jac(x), f"exact J {what}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_second_derivatives(name, backend):
    vec, scal, _, exact_jac = CASES[name]
    block = pyad.trace(weighted(vec), X0, backend=backend)
    ref = pyad.trace(weighted(scal), X0, backend=backend)
    v = np.random.default_rng(4).normal(size=N)
    for x in POINTS:
        what = f"{name} at {x}"
        close(block.gradient(x), ref.gradient(x), f"gradient {what}")
        close(block.hvp(x, v), ref.hvp(x, v), f"hvp {what}")
        H = block.hessian(x)
        close(H, ref.hessian(x), f"hessian {what}")
        if exact_jac is not None:
            m = exact_jac(x).shape[0]
            grad = lambda z: W[:m] @ exact_jac(z)
            close(block.gradient(x), grad(x), f"exact gradient {what}")
            h = 1e-6
            fd = np.array([(grad(x + h * e) - grad(x - h * e)) / (2 * h) for e in np.eye(N)])
            close(H, fd, f"hessian vs differences of the exact gradient {what}",
                  rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_batched_sweeps(name, backend):
    vec, scal = CASES[name][:2]
    block = pyad.trace(weighted(vec), X0, backend=backend)
    ref = pyad.trace(weighted(scal), X0, backend=backend)
    X = np.stack([X0, X1, 0.5 * X0 - X1])
    V = np.random.default_rng(5).normal(size=X.shape)
    close(block.gradient(X, batch=True), ref.gradient(X, batch=True), f"{name} batch gradient")
    close(block.jvp(X, V, batch=True)[1], ref.jvp(X, V, batch=True)[1], f"{name} batch jvp")
    close(block.hvp(X, V, batch=True), ref.hvp(X, V, batch=True), f"{name} batch hvp")
    for k in range(len(X)):   # batch = the loop of single points
        close(block.hvp(X, V, batch=True)[k], block.hvp(X[k], V[k]), f"{name} batch[{k}]")


@pytest.mark.parametrize("name", sorted(CASES))
def test_c_and_python_block_tapes_agree(name):
    vec = CASES[name][0]
    c, p = (pyad.trace(weighted(vec), X0, backend=b) for b in ("c", "python"))
    assert (c.n_ops, c.n_slots) == (p.n_ops, p.n_slots)
    ec, ep = c._store.export(), p._store.export()
    for key in ("op", "a", "b", "c", "first", "blocks"):
        np.testing.assert_array_equal(ec[key], ep[key], err_msg=f"{name}: {key}")
    v = np.ones(N)
    for x in POINTS:
        close(c(x), p(x), name)
        close(c.gradient(x), p.gradient(x), name)
        close(c.hvp(x, v), p.hvp(x, v), name)


# ---- the vectorized rules equal the scalar rules, for every primitive ----

SPECIAL = np.array([0.0, -0.0, 1.0, -1.0, 0.5, 2.0, -2.5, 1e-300, np.inf, -np.inf, np.nan, 3.0])


def op_rows(backend, name, xs, ys, block):
    """A tape of primitive `name` on the elements of xs (and ys): one block row, or
    one scalar row per element, recorded one at a time (same values either way)."""
    t = pyad.Tape(backend=backend)
    x, y = t.input(xs), t.input(ys)
    st, code, kind = t._store, ops.CODE[name], ops.KIND[name]
    sx, sy = x.slots, y.slots
    if block:
        if kind == "unary":
            first = st.rec1_n(code, sx)
        elif kind in ("binary", "compare"):
            first = st.rec2_n(code, sx, sy)
        else:
            first = st.rec_c_n(code, sx, np.ascontiguousarray(ys))
        out = np.arange(first, first + xs.size, dtype=np.int32)
    elif kind == "unary":
        out = np.array([st.rec1(code, int(i)) for i in sx], dtype=np.int32)
    elif kind in ("binary", "compare"):
        out = np.array([st.rec2(code, int(i), int(j)) for i, j in zip(sx, sy)], dtype=np.int32)
    else:
        out = np.array([st.rec_c(code, int(i), float(c)) for i, c in zip(sx, ys)], dtype=np.int32)
    t.output(wrap(st, out))
    t._store._sealed = True
    return t


ELEMENTWISE = ops.names_of_kind("unary", "binary", "with_const", "compare", "compare_c")


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_every_primitive_as_a_block_row_matches_its_scalar_rows(name, backend):
    xs = np.repeat(SPECIAL, SPECIAL.size)   # every pair of special values, ties included
    ys = np.tile(SPECIAL, SPECIAL.size)
    block = op_rows(backend, name, xs, ys, True)
    ref = op_rows(backend, name, xs, ys, False)
    assert block.n_ops == 2 + 1 and ref.n_ops == 2 + xs.size   # two input blocks
    z = np.r_[xs, ys]
    v = np.r_[np.ones(xs.size), 0.5 * np.ones(xs.size)]
    u = np.linspace(-1, 1, xs.size)
    b, r = block._store, ref._store
    same = dict(rtol=1e-13, atol=0, equal_nan=True)
    with np.errstate(all="ignore"):
        for what, got, want in [("values", b.forward(z), r.forward(z)),
                                ("jvp", b.jvp(z, v)[1], r.jvp(z, v)[1]),
                                ("vjp", b.vjp(z, u)[1], r.vjp(z, u)[1]),
                                ("hvp", b.hvp(z, v, u)[2], r.hvp(z, v, u)[2])]:
            np.testing.assert_allclose(got, want, **same, err_msg=f"{name} {what}")


# ---- Rosenbrock: a few rows however long x is ----

def rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosen_gradient(x):
    g = np.zeros_like(x)
    r = x[1:] - x[:-1] ** 2
    g[:-1] += -400.0 * x[:-1] * r - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * r
    return g


def test_rosenbrock_records_a_few_rows_and_many_slots(backend):
    n = 1000
    x = np.linspace(-1.2, 1.3, n)
    tape = pyad.trace(rosen, x, backend=backend)
    # the inputs are one block row too: a few dozen rows in all
    assert tape.n_ops < 40, tape.stats()["ops"]
    assert tape.n_slots > 7 * n   # seven elementwise rows of n - 1 slots, inputs, the sum
    close(tape.gradient(x), rosen_gradient(x), "gradient", rtol=1e-11)
    x2 = x[::-1].copy()
    close(tape.gradient(x2), rosen_gradient(x2), "replayed gradient", rtol=1e-11)
    v = np.sin(np.arange(n))
    h = 1e-6
    fd = (rosen_gradient(x + h * v) - rosen_gradient(x - h * v)) / (2 * h)
    close(tape.hvp(x, v), fd, "hvp", rtol=1e-6, atol=1e-4)


# ---- the exported layout ----

def block_table(tape):
    return {int(r[0]): tuple(int(e) for e in r[1:])
            for r in tape._store.export()["blocks"].reshape(-1, 6)}


def test_the_blocks_table_holds_widths_and_strides(backend):
    with pyad.Tape(backend=backend) as t:
        x = t.input(np.arange(1.0, 9.0))           # row 0: inputs 0..7, stride 1
        a = x[0] * x                                # row 1: a broadcast, b contiguous
        b = x[::2] + C7[:4]                         # row 2: strided, one constant per element
        c = pyad.where(x > 3.0, a, x[1])            # rows 3 (compare_c), 4 (select)
        s = np.sum(c)                               # row 5: one reduction of 1 x 8
        t.output(s + np.sum(b))
    e = t._store.export()
    assert e["first"][:3].tolist() == [0, 8, 16]
    blocks = block_table(t)
    assert blocks[0] == (8, 1, 0, 0, 0) and e["a"][0] == 0   # input number 0 + i
    assert blocks[1] == (8, 0, 1, 0, 0)
    assert blocks[2] == (4, 2, 0, 0, 1)
    assert blocks[3] == (8, 1, 0, 0, 0)
    assert blocks[4] == (8, 1, 1, 0, 0)             # select: cond, then a; b broadcast
    assert blocks[5] == (1, 0, 1, 0, 0) and e["b"][5] == 8   # m = 1 output, k = 8
    assert 7 not in blocks                           # s + ...: a scalar row
    assert e["val"].size == t.n_slots == sum(w for w, *_ in blocks.values()) + t.n_ops - len(blocks)


def test_a_sum_of_any_length_is_one_row(backend):
    for n in (2, 7, 13, 1000):
        tape = pyad.trace(lambda x: np.sum(x), np.ones(n), backend=backend)
        assert tape.n_ops - 1 == 1 and tape.stats()["ops"]["reduce_add"] == 1
        close(tape.gradient(np.arange(float(n))), np.ones(n), "sum gradient")


def test_non_affine_operands_are_gathered_first(backend):
    with pyad.Tape(backend=backend) as t:
        x = t.input(X0)
        n0, s0 = t.n_ops, t.n_slots
        y = x[::-1] * x                  # a negative stride is gathered, then one block row
        assert (t.n_ops - n0, t.n_slots - s0) == (2, 2 * N)
        assert t.stats()["ops"]["gather"] == 1
        t.output(np.sum(y))
    close(t.gradient(), 2 * X0[::-1], "reversed product")


# ---- save / load / pickle ----

@pytest.mark.parametrize("load_as", ["c", "python"])
def test_save_and_load_round_trip(backend, load_as, tmp_path):
    f = weighted(CASES["select"][0])
    tape = pyad.trace(f, X0, backend=backend)
    tape.save(tmp_path / "t.pyad")
    loaded = pyad.load(tmp_path / "t.pyad", backend=load_as)
    assert (loaded.n_ops, loaded.n_slots) == (tape.n_ops, tape.n_slots)
    assert block_table(loaded) == block_table(tape)
    assert serialize.dumps(loaded) == serialize.dumps(tape)
    v = np.ones(N)
    for x in POINTS:
        close(loaded(x), tape(x), "value", rtol=1e-15)
        close(loaded.gradient(x), tape.gradient(x), "gradient", rtol=1e-15)
        close(loaded.hvp(x, v), tape.hvp(x, v), "hvp", rtol=1e-15)
    clone = pickle.loads(pickle.dumps(tape))
    assert clone.n_slots == tape.n_slots and block_table(clone) == block_table(tape)
    close(clone.gradient(X1), tape.gradient(X1), "pickled", rtol=1e-15)


def tampered(tape, **changes):
    """The tape's bytes with some exported arrays replaced."""
    a = dict(tape._store.export())
    a.update(changes)
    return serialize.encode(a, tape._in_shapes, tape._out_shapes)


@pytest.mark.parametrize("load_as", ["c", "python"])
def test_a_loader_refuses_inconsistent_blocks(load_as):
    tape = pyad.trace(lambda x: np.sum(np.sin(x) * x[0]), X0, backend="python")
    e = tape._store.export()
    blocks = e["blocks"].reshape(-1, 6)
    assert blocks[0, 0] == 0                         # block 0: the inputs; block 1: sin
    sin_row = int(blocks[1, 0])
    bad = {}
    wide = blocks.copy()
    wide[1, 1] += 1                                  # first[] no longer consecutive
    bad["width"] = dict(blocks=wide.ravel())
    one = blocks.copy()
    one[1, 1] = 1
    bad["width 1"] = dict(blocks=one.ravel())
    neg = blocks.copy()
    neg[1, 2] = -1
    bad["negative stride"] = dict(blocks=neg.ravel())
    far = blocks.copy()
    far[1, 2] = 2                                    # sin's last element reads past its row
    bad["last element"] = dict(blocks=far.ravel())
    order = blocks[::-1].copy()
    bad["order"] = dict(blocks=order.ravel())
    for stride in (0, 2):                            # inputs: exactly stride 1
        strided = blocks.copy()
        strided[0, 2] = stride
        bad[f"input block of stride {stride}"] = dict(blocks=strided.ravel())
    first = e["first"].copy()
    first[sin_row + 1] += 1
    bad["first"] = dict(first=first)
    store_type = type(pyad.Tape(backend=load_as)._store)
    for why, change in bad.items():
        with pytest.raises(pyad.TapeFormatError):
            pyad.loads(tampered(tape, **change), backend=load_as)
        # the store's own import checks too (loads checks in C first)
        with pytest.raises(pyad.TapeFormatError):
            store_type.from_arrays(dict(e, **change))
    assert pyad.loads(tampered(tape), backend=load_as).n_slots == tape.n_slots  # the control
    assert store_type.from_arrays(dict(e)).n_slots == tape.n_slots


# ---- teaching views and debug_nans ----

def test_table_shows_one_line_per_row_with_slot_ranges(backend):
    def f(x):
        return np.sum(np.sin(x) * x[0] + x[::2].sum() * C7[:4])
    tape = pyad.trace(f, X0[:4], backend=backend)
    t = tape.table()
    assert len(t) == tape.n_ops - 1 + 4     # the input block row: one line per input
    assert [r["op"] for r in t.rows[:4]] == ["x_1", "x_2", "x_3", "x_4"]
    ops_by_name = {r["name"]: r["op"] for r in t.rows}
    assert ops_by_name["v[1:5]"] == "sin(v[-3:1])"
    assert ops_by_name["v[5:9]"] == "v[1:5] * v_{-3}"           # stride 0: one slot
    assert ops_by_name["v_9"] == "sum(v[-3:1:2])"               # x[::2].sum(): strided
    assert ops_by_name["v[10:14]"] == "v_9 * [2, -1, 0.5, 3]"  # a constant per element
    assert ops_by_name["v[14:18]"] == "v[5:9] + v[10:14]"
    assert ops_by_name["v_{18}"] == "sum(v[14:18])"             # one row for the sum
    assert [r["primitive"] for r in t.rows if r["primitive"].startswith("reduce")] == \
        ["reduce_add", "reduce_add"]
    row = t["v[1:5]"]
    assert row["width"] == 4 and row["primitive"] == "sin"
    close(row["value"], np.sin(X0[:4]), "block values")
    close(row["tangent"], [np.cos(X0[0]), 0, 0, 0], "block tangents")
    assert t.column("value").size == tape.n_slots
    text = str(t)
    assert "v[1:5]" in text and "sin(v[-3:1])" in text
    assert t.to_markdown().count("\n") == len(t) + 1
    adj = tape.table(mode="reverse")
    close(adj.column("adjoint")[:4], tape.gradient(), "input adjoints")


def test_stats_and_dot_count_rows(backend):
    tape = pyad.trace(lambda x: np.sum(np.sin(x) * x[0]), X0, backend=backend)
    s = tape.stats()
    assert s["ops"]["sin"] == 1 and s["slots"]["sin"] == N
    assert s["ops"]["mul"] == 1 and s["slots"]["mul"] == N
    assert s["n_ops"] == tape.n_ops == sum(s["ops"].values())
    assert s["n_slots"] == tape.n_slots == sum(s["slots"].values())
    assert s["n_blocks"] == len(block_table(tape))
    dot = tape.to_dot(values=True)
    # one node per row, the input block row drawn as one node per input
    assert dot.count("[label=") == tape.n_ops - 1 + N
    assert "sin (block of 7)" in dot
    sin_row = N                                                # after the 7 inputs
    for i in range(N):                                         # sin reads all 7 inputs
        assert f"  s{i} -> s{sin_row};" in dot
    # the product reads the sin block (one edge) and x[0] broadcast (one edge)
    assert dot.count(f"-> s{sin_row + 1} ") + dot.count(f"-> s{sin_row + 1};") == 2


def test_debug_nans_names_the_row_and_the_element(backend):
    tape = pyad.trace(lambda x: np.sum(np.log(x) * x), np.abs(X0), backend=backend)
    bad = np.abs(X0)
    bad[4] = -1.0
    with pyad.debug_nans():
        with pytest.raises(FloatingPointError) as info:
            tape.gradient(bad)
    msg = str(info.value)
    assert f"op 1 (log), element 4 of {N}" in msg and "[-1.0]" in msg


# ---- the golden file with block rows (tests/golden/make_golden_blocks.py) ----

GOLDEN = pathlib.Path(__file__).with_name("golden") / "golden_v3_blocks.pyad"
G_X0 = np.array([0.5, -1.0, 1.5, 2.0, -0.3, 0.8])
G_C6 = np.array([0.0, 0.0, 1.0, 3.0, -1.0, 1.0])


def golden_value(x):
    return (np.sum(np.sin(x)) * x[0] + np.sum(x[::2] * x[1::2])
            + np.sum(np.where(x > G_C6, x * x, 2.0 * x)))


def golden_gradient(x):
    g = np.cos(x) * x[0] + np.where(x > G_C6, 2.0 * x, 2.0)
    g[0] += np.sum(np.sin(x))
    g[::2] += x[1::2]
    g[1::2] += x[::2]
    return g


def test_the_golden_block_file_loads_to_the_closed_form(backend):
    tape = pyad.load(GOLDEN, backend=backend)
    assert (tape.n_inputs, tape.n_outputs, tape.n_ops, tape.n_slots) == (6, 1, 23, 59)
    op = tape._store.export()["op"]
    blocks = sorted((ops.NAME[op[k]], *layout) for k, layout in block_table(tape).items())
    assert blocks == sorted([
        ("sin", 6, 1, 0, 0, 0), ("mul", 6, 1, 0, 0, 0),        # sin(x) * x[0] broadcast
        ("mul", 3, 2, 2, 0, 0),                                  # x[::2] * x[1::2]
        ("gt_c", 6, 1, 0, 0, 1), ("mul", 6, 1, 1, 0, 0),        # x > C6 (per element), x * x
        ("mul_c", 6, 1, 0, 0, 0), ("select", 6, 1, 1, 1, 0),   # 2.0 * x (shared), where
        # the first levels (3 pairs) of the two sums of 6; the sum of 3 is scalar rows
        ("add", 3, 2, 2, 0, 0), ("add", 3, 2, 2, 0, 0)])
    close(tape(), golden_value(G_X0), "recorded value", rtol=1e-15)
    for x in (G_X0, np.array([0.2, 0.4, 0.9, 3.5, -1.5, 1.2])):
        close(tape(x), golden_value(x), "value", rtol=1e-14)
        close(tape.gradient(x), golden_gradient(x), "gradient", rtol=1e-14)


# ---- inputs and constants recorded in bulk: one block row each ----

def g_arrays(x):
    """Array inputs and two arrays of constants (arctan2 and where take them as
    constant slots: pyad_rec_const_n)."""
    return np.arctan2(x, C7) * np.where(x > 0.5, x, K7) + np.sin(x) * x[0]


def g_scalars(*xs):
    """g_arrays on scalar inputs with scalar constants: one row per element."""
    return pyad.stack([pyad.arctan2(a, float(c)) * pyad.where(a > 0.5, a, float(k))
                       + pyad.sin(a) * xs[0] for a, c, k in zip(xs, C7, K7)])


def input_tapes(backend, weights=None):
    """(block tape, scalar tape) of g, or of W . g when weights is given."""
    out = (lambda y: y) if weights is None else (lambda y: np.sum(y * weights))
    block = pyad.trace(lambda x: out(g_arrays(x)), X0, backend=backend)
    scalar = pyad.trace(lambda *xs: out(g_scalars(*xs)), *X0, backend=backend)
    return block, scalar


IN_POINTS = [X0, X1, np.linspace(-1.0, 1.0, N)]   # the where takes other branches (retraced)


def test_array_inputs_and_constants_are_one_block_row_each(backend):
    block, scalar = input_tapes(backend)
    sb, ss = block.stats(), scalar.stats()
    assert sb["ops"]["input"] == 1 and sb["slots"]["input"] == N
    assert sb["ops"]["constant"] == 2 and sb["slots"]["constant"] == 2 * N
    assert ss["ops"]["input"] == N and ss["ops"]["constant"] == 2 * N
    table = block_table(block)
    e = block._store.export()
    assert table[0] == (N, 1, 0, 0, 0) and e["a"][0] == 0          # x[0 + i]
    const_rows = [k for k in table if ops.NAME[e["op"][k]] == "constant"]
    assert [table[k] for k in const_rows] == [(N, 0, 0, 0, 1)] * 2  # consts[b + i]
    assert e["inputs"].tolist() == list(range(N))                   # input i's slot


def test_block_inputs_and_constants_replay_like_scalar_rows(backend):
    block, scalar = input_tapes(backend)
    sblock, sscalar = input_tapes(backend, W[:N])
    v, u = np.cos(np.arange(N)), W[:N]
    for x in IN_POINTS:
        xs = tuple(x)
        close(block(x), scalar(*xs), "values")
        close(block.jvp(x, v)[1], scalar.jvp(xs, tuple(v))[1], "jvp")
        close(block.vjp(x, u)[1], np.array(scalar.vjp(xs, u)[1]).ravel(), "vjp")
        # N scalar arguments: one (N,) column per argument, as JAX nests it
        close(block.jacobian(x), np.stack(scalar.jacobian(xs), axis=-1), "jacobian")
        close(sblock.gradient(x), np.array(sscalar.gradient(*xs)).ravel(), "gradient")
        close(sblock.hvp(x, v), np.array(sscalar.hvp(xs, tuple(v))).ravel(), "hvp")
        close(sblock.hessian(x), np.array(sscalar.hessian(xs)).reshape(N, N), "hessian")
    # batched sweeps of the block tape against the scalar tape point by point
    X = np.stack(IN_POINTS[:2])        # same branches as X0: no re-recording in a batch
    V = np.stack([v, v[::-1]])
    close(sblock.gradient(X, batch=True),
          np.stack([np.array(sscalar.gradient(*p)).ravel() for p in X]), "batched gradient")
    close(block.jvp(X, V, batch=True)[1],
          np.stack([scalar.jvp(tuple(p), tuple(d))[1] for p, d in zip(X, V)]), "batched jvp")
    close(sblock.hvp(X, V, batch=True),
          np.stack([np.array(sscalar.hvp(tuple(p), tuple(d))).ravel() for p, d in zip(X, V)]),
          "batched hvp")


def test_block_input_store_sweeps_match_scalar_rows(backend):
    """The flat sweeps (vector and batched forms too)."""
    block, scalar = input_tapes(backend)
    b, r = block._store, scalar._store
    v, u = np.cos(np.arange(N)), W[:N]
    V, U = np.stack([v, v[::-1], X1]), np.stack([u, u[::-1]])
    for what, got, want in [
            ("values", b.forward(X0), r.forward(X0)),
            ("jvp", b.jvp(X0, v)[1], r.jvp(X0, v)[1]),
            ("vjp", b.vjp(X0, u)[1], r.vjp(X0, u)[1]),
            ("hvp", b.hvp(X0, v, u)[2], r.hvp(X0, v, u)[2]),
            ("jvp_vec", b.jvp_vec(X0, V)[1], r.jvp_vec(X0, V)[1]),
            ("vjp_vec", b.vjp_vec(X0, U)[1], r.vjp_vec(X0, U)[1]),
            ("hvp_vec", b.hvp_vec(X0, V, u)[2], r.hvp_vec(X0, V, u)[2]),
            ("forward_batch", b.forward_batch(np.stack([X0, X1]))[0],
             r.forward_batch(np.stack([X0, X1]))[0]),
            ("jvp_batch", b.jvp_batch(np.stack([X0, X1]), V[:2])[1],
             r.jvp_batch(np.stack([X0, X1]), V[:2])[1]),
            ("vjp_batch", b.vjp_batch(np.stack([X0, X1]), U)[1],
             r.vjp_batch(np.stack([X0, X1]), U)[1]),
            ("hvp_batch", b.hvp_batch(np.stack([X0, X1]), V[:2], U)[2],
             r.hvp_batch(np.stack([X0, X1]), V[:2], U)[2])]:
        close(np.asarray(got), np.asarray(want), what, rtol=1e-14, atol=1e-15)


def test_rosenbrock_has_fewer_than_40_rows_in_all(backend):
    tape = pyad.trace(rosen, np.linspace(-1.2, 1.3, 1000), backend=backend)
    assert tape.n_ops < 40 and tape.n_inputs == 1000, tape.stats()["ops"]
    assert tape.stats()["ops"]["input"] == 1


@pytest.mark.parametrize("load_as", ["c", "python"])
def test_block_inputs_and_constants_survive_save_and_load(backend, load_as, tmp_path):
    block, _ = input_tapes(backend, W[:N])
    path = tmp_path / "inputs.pyad"
    block.save(path)
    for copy in (pyad.load(path, backend=load_as), pickle.loads(pickle.dumps(block))):
        assert copy.n_ops == block.n_ops and block_table(copy) == block_table(block)
        # the same backend replays bit for bit; the other one computes array
        # rows' transcendental values with other vector math (a few ulp apart)
        tol = 0 if copy.backend == backend else 1e-15
        for x in IN_POINTS[:2]:
            close(copy(x), block(x), "loaded value", rtol=tol, atol=tol)
            close(copy.gradient(x), block.gradient(x), "loaded gradient", rtol=tol, atol=tol)


@pytest.mark.parametrize("load_as", ["c", "python"])
def test_a_loader_refuses_bad_input_and_constant_blocks(load_as):
    block, _ = input_tapes("python", W[:N])
    e = block._store.export()
    table = e["blocks"].reshape(-1, 6)
    const_block = [i for i, r in enumerate(table) if ops.NAME[e["op"][r[0]]] == "constant"][0]
    const_row = int(table[const_block, 0])

    def with_block(i, field, value):
        t = table.copy()
        t[i, field] = value
        return dict(blocks=t.ravel())

    def with_column(name, k, value):
        col = e[name].copy()
        col[k] = value
        return {name: col}

    swapped = e["inputs"].copy()
    swapped[[0, 1]] = swapped[[1, 0]]
    bad = {"input stride 0": with_block(0, 2, 0), "input stride 2": with_block(0, 2, 2),
           "input with a constant stride": with_block(0, 5, 1),
           "input numbers past the end": with_column("a", 0, 1),
           "input number negative": with_column("a", 0, -1),
           "inputs not in the row's order": dict(inputs=swapped),
           "constant stride 0": with_block(const_block, 5, 0),
           "constant stride 2": with_block(const_block, 5, 2),
           "constant with an operand stride": with_block(const_block, 2, 1),
           "constants past the pool": with_column("b", const_row, e["consts"].size - N + 1)}
    store_type = type(pyad.Tape(backend=load_as)._store)
    for why, change in bad.items():
        with pytest.raises(pyad.TapeFormatError):
            pyad.loads(tampered(block, **change), backend=load_as)
        with pytest.raises(pyad.TapeFormatError):
            store_type.from_arrays(dict(e, **change))
    assert store_type.from_arrays(dict(e)).n_ops == block.n_ops     # the control
