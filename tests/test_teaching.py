"""Teaching views: the Wengert table (Griewank & Walther's example), DOT, stats."""
import math
import re

import numpy as np
import pytest

import pyad
from pyad.teaching import WengertTable


def textbook(x):
    return pyad.log(x[0]) + x[0] * x[1] - pyad.sin(x[1])


def textbook_tape(backend):
    return pyad.trace(textbook, np.array([2.0, 5.0]), backend=backend)


NAMES = ["v_{-1}", "v_0", "v_1", "v_2", "v_3", "v_4", "v_5"]
OPS = ["x_1", "x_2", "log(v_{-1})", "v_{-1} * v_0", "v_1 + v_2", "sin(v_0)", "v_3 - v_4"]


def primal(x1, x2):
    v1, v2 = math.log(x1), x1 * x2
    return [x1, x2, v1, v2, v1 + v2, math.sin(x2), v1 + v2 - math.sin(x2)]


# ---- the Wengert table ----

def test_forward_table_reproduces_the_textbook(backend):
    t = textbook_tape(backend).table()
    assert isinstance(t, WengertTable) and t.mode == "forward" and len(t) == 7
    assert [r["name"] for r in t.rows] == NAMES
    assert [r["op"] for r in t.rows] == OPS
    assert [r["primitive"] for r in t.rows] == ["input", "input", "log", "mul", "add", "sin",
                                                "sub"]
    assert [r["index"] for r in t.rows] == list(range(7))
    np.testing.assert_allclose(t.column("value"), primal(2.0, 5.0), rtol=1e-15)
    # tangents seeded on x1 (the default): dy/dx1 = 1/x1 + x2 = 5.5
    np.testing.assert_allclose(t.column("tangent"), [1, 0, 0.5, 5, 5.5, 0, 5.5], rtol=1e-15)
    assert t["v_5"]["tangent"] == 5.5
    assert t["v_5"]["output"] == ["y"] and all(r["output"] == [] for r in t.rows[:-1])
    assert "adjoint" not in t.rows[0]


def test_reverse_table_reproduces_the_textbook(backend):
    t = textbook_tape(backend).table(mode="reverse")
    assert t.mode == "reverse" and t.derivative == "adjoint"
    assert [r["op"] for r in t.rows] == OPS
    np.testing.assert_allclose(t.column("value"), primal(2.0, 5.0), rtol=1e-15)
    adj = t.column("adjoint")
    assert adj[0] == 5.5                                  # x1_bar
    np.testing.assert_allclose(adj[1], 2.0 - math.cos(5.0), rtol=1e-14)   # x2_bar
    np.testing.assert_allclose(adj[1], 1.716337814536774, rtol=1e-12)
    np.testing.assert_allclose(adj[2:], [1, 1, 1, -1, 1], rtol=1e-15)
    assert "tangent" not in t.rows[0]


def test_table_at_a_new_point_and_seed(backend):
    tape = textbook_tape(backend)
    t = tape.table(np.array([3.0, 4.0]), seed=[0.0, 1.0])
    np.testing.assert_allclose(t.column("value"), primal(3.0, 4.0), rtol=1e-15)
    np.testing.assert_allclose(t["v_5"]["tangent"], 3.0 - math.cos(4.0), rtol=1e-14)
    t = tape.table(np.array([3.0, 4.0]), mode="rev", seed=2.0)
    np.testing.assert_allclose(t["v_{-1}"]["adjoint"], 2 * (1 / 3 + 4), rtol=1e-14)
    with pytest.raises(ValueError, match="mode"):
        tape.table(mode="sideways")
    with pytest.raises(KeyError, match="v_9"):
        t["v_9"]


def test_two_scalar_arguments_give_the_same_names(backend):
    tape = pyad.trace(lambda a, b: pyad.log(a) + a * b - pyad.sin(b), 2.0, 5.0, backend=backend)
    t = tape.table(seed=(1.0, 0.0))
    assert [r["name"] for r in t.rows] == NAMES and [r["op"] for r in t.rows] == OPS
    assert t["v_5"]["tangent"] == 5.5
    t = tape.table((3.0, 4.0), mode="reverse")
    np.testing.assert_allclose(t["v_0"]["adjoint"], 3.0 - math.cos(4.0), rtol=1e-14)


def test_str_is_an_aligned_table(backend):
    text = str(textbook_tape(backend).table())
    lines = text.splitlines()
    assert lines[0].startswith("Wengert table at x = [2., 5.]")
    header, rule, body = lines[1], lines[2], lines[3:]
    assert header.split() == ["v", "op", "value", "tangent"] and set(rule) <= {"-", " "}
    assert len(body) == 7
    value_end = header.index("value") + len("value")
    tangent_end = header.index("tangent") + len("tangent")
    op_start = header.index("op")
    for line, name, op in zip(body, NAMES, OPS):
        assert line.startswith(name) and line[op_start:].startswith(op)
        assert line[value_end - 1] != " " and line[tangent_end - 1] != " "
        assert line[value_end] == " " and line[tangent_end:].strip() in ("", "= y")
    assert body[-1].endswith("5.5  = y") and "0.693147" in body[2]
    rev = str(textbook_tape(backend).table(mode="reverse"))
    assert rev.splitlines()[1].split()[-1] == "adjoint" and "1.71634" in rev
    md = textbook_tape(backend).table().to_markdown()
    assert md.count("\n") == 8 and "`log(v_{-1})`" in md


def test_vector_outputs_constants_selects_and_guards(backend):
    def f(x):
        a = 3.0 * x[0] - 2.0 / x[1]
        b = pyad.where(x[0] > 1.0, x[0], x[1]) + x @ np.array([1.0, 2.0])
        if x[1] > 0:
            b = b * 2.0
        return pyad.stack([a, b])

    tape = pyad.trace(f, np.array([2.0, 5.0]), backend=backend)
    t = tape.table()
    ops_text = [r["op"] for r in t.rows]
    assert "v_{-1} * 3" in ops_text and "2 / v_0" in ops_text
    assert any(o.startswith("where(") for o in ops_text)
    assert any(o.startswith("guard(") for o in ops_text)
    assert "v[-1:1] @ c[3:5] (1x2 @ 2x1)" in ops_text   # a product row
    outs = [r["output"] for r in t.rows if r["output"]]
    assert outs == [["y_1"], ["y_2"]]
    # the tangents of the outputs are J e1 at (2, 5): (3, 2 * (1 + 1))
    y_rows = [r for r in t.rows if r["output"]]
    np.testing.assert_allclose([r["tangent"] for r in y_rows], [3.0, 4.0])
    # reverse mode seeds the first output by default; seed picks another
    r1 = tape.table(mode="reverse")
    np.testing.assert_allclose([r1["v_{-1}"]["adjoint"], r1["v_0"]["adjoint"]], [3.0, 0.08])
    r2 = tape.table(mode="reverse", seed=[0.0, 1.0])
    np.testing.assert_allclose([r2["v_{-1}"]["adjoint"], r2["v_0"]["adjoint"]], [4.0, 4.0])


def test_table_where_a_branch_flips(backend):
    def f(x):
        return x * x if x > 0 else -x

    tape = pyad.trace(f, 2.0, backend=backend)
    t = tape.table(-3.0)                      # re-records: the other branch
    assert t.rows[-1]["op"] == "-v_0" and t.rows[-1]["value"] == 3.0
    assert t.rows[-1]["tangent"] == -1.0
    with pyad.Tape(backend=backend) as explicit:
        x = explicit.input(2.0)
        explicit.output(x * x if x > 0 else -x)
    with pytest.raises(pyad.BranchError):
        explicit.table(-3.0)


def test_variadic_reductions_list_their_operands(backend):
    tape = pyad.trace(lambda x: np.max(x) + np.min(x * 2.0), np.array([1.0, 3.0, 2.0]),
                      backend=backend)
    t = tape.table(mode="reverse")
    reduction_ops = [r["op"] for r in t.rows if r["primitive"] in ("reduce_max", "reduce_min")]
    assert reduction_ops == ["max(v[-2:1])", "min(v[2:5])"]
    np.testing.assert_allclose(t.column("adjoint")[:3], [2.0, 1.0, 0.0])
    nodes, edges = parse_dot(tape.to_dot())
    for k, row in enumerate(t.rows):   # an edge from every row read: 3 inputs, 1 block
        if row["primitive"] in ("reduce_max", "reduce_min"):
            assert sum(1 for e in edges if e[1] == f"s{k}") == (3 if "max" in row["op"] else 1)


# ---- Graphviz ----

def parse_dot(text):
    """A tiny DOT reader for what to_dot writes: nodes {id: attrs}, edges [(a, b, attrs)]."""
    lines = text.strip().splitlines()
    assert lines[0] == "digraph pyad {" and lines[-1] == "}"
    attr_re = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|[^,\]\s]+)')

    def attrs(s):
        out = {}
        for key, val in attr_re.findall(s or ""):
            out[key] = val[1:-1].replace('\\"', '"').replace("\\n", "\n") \
                if val.startswith('"') else val
        return out

    nodes, edges = {}, []
    for line in lines[1:-1]:
        line = line.strip()
        m = re.fullmatch(r"(\w+) -> (\w+)(?: \[(.*)\])?;", line)
        if m:
            edges.append((m.group(1), m.group(2), attrs(m.group(3))))
            continue
        m = re.fullmatch(r"(\w+) \[(.*)\];", line)
        assert m, f"unparsed DOT line: {line!r}"
        if m.group(1) in ("node", "edge", "graph"):
            continue
        assert m.group(1) not in nodes
        nodes[m.group(1)] = attrs(m.group(2))
    for a, b, _ in edges:
        assert a in nodes and b in nodes
    return nodes, edges


def test_dot_of_the_textbook_example(backend):
    tape = textbook_tape(backend)
    nodes, edges = parse_dot(tape.to_dot())
    # the two inputs are one block row, drawn as one node per input
    assert len(nodes) == 7 and tape.n_ops == 6
    for k, prim in enumerate(["input", "input", "log", "mul", "add", "sin", "sub"]):
        label = nodes[f"s{k}"]["label"].split("\n")
        assert label[0] == NAMES[k] and prim in label[1]
    assert {(a, b) for a, b, _ in edges} == {("s0", "s2"), ("s0", "s3"), ("s1", "s3"),
                                            ("s2", "s4"), ("s3", "s4"), ("s1", "s5"),
                                            ("s4", "s6"), ("s5", "s6")}
    assert nodes["s0"]["shape"] == "box" and nodes["s1"]["shape"] == "box"
    assert nodes["s6"].get("peripheries") == "2" and nodes["s6"]["label"].endswith("\ny")
    assert all("peripheries" not in nodes[f"s{k}"] for k in range(6))
    sub_edges = {a: e.get("label") for a, b, e in edges if b == "s6"}
    assert sub_edges == {"s4": "1", "s5": "2"}          # operand order of v_3 - v_4
    assert all(len(n["label"].split("\n")) == 2 for k, n in nodes.items() if k != "s6")
    assert nodes["s3"]["tooltip"] == "v_2 = v_{-1} * v_0"
    nodes, _ = parse_dot(tape.to_dot(values=True))
    assert nodes["s6"]["label"].split("\n")[2] == "= 11.6521"
    assert nodes["s2"]["label"].split("\n")[2] == "= 0.693147"


def test_dot_names_every_op(backend):
    def f(x):
        y = pyad.where(x[0] > x[1], pyad.exp(x[0]), pyad.tanh(x[1]))
        if x[1] > 0:
            y = y / x[1]
        return pyad.stack([y ** 2.5, pyad.arctan2(x[0], x[1]) - 1.0, x @ np.array([1.0, -4.0])])

    tape = pyad.trace(f, np.array([1.0, 0.5]), backend=backend)
    # the graph draws the input block row as one node per input: its rows are these
    arrays, _ = pyad.teaching._inputs_one_per_row(tape._store.export())
    nodes, edges = parse_dot(tape.to_dot(values=True))
    assert len(nodes) == arrays["op"].size == tape.n_ops + 1
    for k, code in enumerate(arrays["op"]):
        assert pyad.ops.NAME[code] in nodes[f"s{k}"]["label"]
    outs = [k for k in range(arrays["op"].size) if nodes[f"s{k}"].get("peripheries") == "2"]
    assert outs == sorted(arrays["outputs"].tolist())
    select = [k for k, c in enumerate(arrays["op"]) if pyad.ops.NAME[c] == "select"][0]
    into_select = [e for e in edges if e[1] == f"s{select}"]
    assert [e[2]["label"] for e in into_select] == ["if", "then", "else"]
    guards = [k for k, c in enumerate(arrays["op"]) if pyad.ops.NAME[c].startswith("guard")]
    assert guards and all(nodes[f"s{k}"]["shape"] == "diamond" for k in guards)
    # every non-input, non-constant op has as many in-edges as operands (>= 1)
    for k, code in enumerate(arrays["op"]):
        name = pyad.ops.NAME[code]
        n_in = sum(1 for e in edges if e[1] == f"s{k}")
        assert (n_in == 0) == (name in ("input", "constant"))


# ---- stats ----

def test_stats(backend):
    tape = textbook_tape(backend)
    s = tape.stats()
    # rows: the two inputs are one block row, of two slots
    assert s["ops"] == {"input": 1, "log": 1, "mul": 1, "add": 1, "sin": 1, "sub": 1}
    assert s["slots"]["input"] == 2
    assert (s["n_ops"], s["n_inputs"], s["n_outputs"], s["n_consts"], s["guards"]) == \
        (6, 2, 1, 0, 0)
    assert s["nbytes"] == tape.nbytes > 0 and s["backend"] == backend

    def g(x):
        y = 3.0 * x[0] + 2.0 * x[1]
        if y > 0:
            y = y * 7.0
        return y

    s = pyad.trace(g, np.array([1.0, 1.0]), backend=backend).stats()
    assert s["guards"] == 1 and s["ops"]["mul_c"] == 3 and s["ops"]["guard_true"] == 1
    assert list(s["ops"])[0] == "mul_c"                # most frequent first
    assert s["n_consts"] >= 3
    assert sum(s["ops"].values()) == s["n_ops"]
