"""Views of a tape for people: the Wengert table, a Graphviz graph, statistics.

The table follows the textbook convention (Griewank & Walther, "Evaluating
Derivatives"): for n inputs the input slots are v_{1-n} .. v_0 (v_{i-n} = x_i)
and the recorded operations are v_1, v_2, ... in the order they ran. For
y = ln(x1) + x1*x2 - sin(x2) at (2, 5):

    >>> tape = pyad.trace(lambda x: pyad.log(x[0]) + x[0] * x[1] - pyad.sin(x[1]),
    ...                   np.array([2.0, 5.0]))
    >>> print(tape.table())                    # tangents along x1 (forward mode)
    >>> print(tape.table(mode="reverse"))      # adjoints of y (reverse mode)
    >>> tape.to_dot(values=True)               # Graphviz text: dot -Tsvg
    >>> tape.stats()                           # op counts, sizes, guards

A block row (one numpy operation on arrays, ARR_CONTRACT.md) is one line: its
slots are numbered like w scalar rows and written as a range, its operands as
ranges too (a broadcast operand as its one slot, a stride as a step):

    v[12:112]   sin(v[2:102])
    v[112:212]  v[12:112] * v_1                 (v_1 broadcast: stride 0)
    v[212:262]  v[12:112:2] + v[13:113:2]       (strided operands)

Gathers, reductions and scans read a list or an (m, k) layout of slots:

    v[262:266]  gather(v[12, 14, 14, 13])       (fancy indexing with repeats)
    v_{266}     sum(v[12:112])                  (a reduction to one value)
    v[267:269]  max(v[12:22] over 2 x 5)        (row i of the 2 x 5 layout to v_{267+i})
"""
import numpy as np

from . import _python_gathers as gathers
from . import _python_linalg_sym as linalg_sym
from . import ops
from .store import Sweep


# ---- reading the tape ----

_PRODUCTS = ("matmul", "matmul_c", "rmatmul_c")


def _number(c):
    c = float(c)
    if c.is_integer() and abs(c) < 1e15:
        return str(int(c))
    return repr(c)


def _name(k):
    return f"v_{k}" if 0 <= k <= 9 else f"v_{{{k}}}"


def _inputs_one_per_row(a):
    """(arrays, the tape row of each of their rows): the exported arrays with
    each input block row (tape.input of an array) split into one input row per
    element, so the table and the graph name every input on its own,
    v_{i-n} = x_i, as the textbook does, however the inputs were recorded."""
    blocks = np.asarray(a["blocks"], dtype=np.int64).reshape(-1, 6)
    is_input = a["op"][blocks[:, 0]] == ops.CODE["input"] if blocks.size else np.zeros(0, bool)
    if not is_input.any():
        return a, np.arange(a["op"].size)
    width = np.ones(a["op"].size, dtype=np.int64)
    width[blocks[is_input, 0]] = blocks[is_input, 1]
    row = np.repeat(np.arange(a["op"].size), width)       # the old row of each new row
    element = np.arange(row.size) - np.repeat(np.cumsum(width) - width, width)
    split = dict(a)
    for name in ("op", "b", "c"):
        split[name] = a[name][row]
    split["a"] = (a["a"][row] + element).astype(a["a"].dtype)
    split["first"] = (a["first"][row] + element).astype(a["first"].dtype)
    kept = blocks[~is_input].copy()
    kept[:, 0] = np.searchsorted(row, kept[:, 0])         # the block rows' new numbers
    split["blocks"] = kept.astype(np.int32).reshape(-1)
    return split, row


class _Graph:
    """The tape's arrays with a name, an operand list and a text for every row."""

    def __init__(self, tape):
        a, self.tape_row = _inputs_one_per_row(tape._store.export())
        self.arrays = a
        self.op = a["op"].astype(np.int64)
        self.a, self.b, self.c = a["a"], a["b"], a["c"]
        self.first = a["first"].astype(np.int64)
        self.consts = a["consts"]
        self.pool = a.get("pool", np.zeros(0, np.int32))
        self.inputs, self.outputs = a["inputs"], a["outputs"]
        blocks = np.asarray(a["blocks"], dtype=np.int64).reshape(-1, 6)
        self.block = {int(r[0]): tuple(int(e) for e in r[1:]) for r in blocks}
        self.width = np.ones(self.op.size, dtype=np.int64)
        self.width[blocks[:, 0]] = blocks[:, 1]
        # the row that defines each slot
        self.row_of = np.repeat(np.arange(self.op.size), self.width)
        # each slot's number in the textbook convention: inputs v_{1-n} .. v_0,
        # the other slots v_1, v_2, ... in recording order
        n_in = self.inputs.size
        self.number = np.zeros(int(self.width.sum()), dtype=np.int64)
        counter = 0
        for k in range(self.op.size):
            s, w = int(self.first[k]), int(self.width[k])
            if ops.NAME[self.op[k]] == "input":
                self.number[s] = int(self.a[k]) + 1 - n_in
            else:
                self.number[s:s + w] = np.arange(counter + 1, counter + 1 + w)
                counter += w
        self.names = [self.slot_text(int(self.first[k]), 1, int(self.width[k]))
                      for k in range(self.op.size)]
        self.output_of = {}
        m = self.outputs.size
        for j, s in enumerate(self.outputs.tolist()):
            self.output_of.setdefault(int(self.row_of[s]), []).append(
                "y" if m == 1 else f"y_{j + 1}")

    def slot_text(self, slot, stride, w):
        """The name of slot, or of the w slots slot + stride * i (a range where it can be)."""
        if w == 1 or stride == 0:
            return _name(int(self.number[slot]))
        return self.slots_text(slot + stride * np.arange(w))

    def slots_text(self, slots):
        """The names of the slots listed: a range where they are one, else a list
        (its middle elided when long)."""
        nums = self.number[np.asarray(slots, dtype=np.int64)]
        if nums.size == 1:
            return _name(int(nums[0]))
        step = int(nums[1] - nums[0])
        if step > 0 and np.array_equal(nums, nums[0] + step * np.arange(nums.size)):
            stop = int(nums[-1]) + step
            return f"v[{nums[0]}:{stop}]" if step == 1 else f"v[{nums[0]}:{stop}:{step}]"
        shown = [str(n) for n in nums.tolist()]
        if len(shown) > 8:
            shown = shown[:3] + ["..."] + shown[-3:]
        return "v[" + ", ".join(shown) + "]"

    def layout(self, k):
        """A gather's, reduction's or scan's (m, k) array of the slots it reads."""
        return gathers.layout(int(self.op[k]), int(self.a[k]), int(self.b[k]), self.strides(k),
                              self.pool)

    def element_operands(self, k, e):
        """The slots element e of row k reads."""
        if int(self.op[k]) in gathers.ROW_OPS:
            slots = self.layout(k)
            if int(self.op[k]) in gathers.SCAN:   # element (i, j) reads x(i, 0..j)
                i, j = divmod(e, slots.shape[1])
                return slots[i, :j + 1].tolist()
            return slots[e].tolist()
        if self.primitive(k) == "custom":  # each result may depend on every operand
            return self.operands(k)
        return [slot + stride * e for slot, stride, _ in self.operand_refs(k)]

    def primitive(self, k):
        return ops.NAME[self.op[k]]

    def strides(self, k):
        """(width, stride_a, stride_b, stride_c, stride_const); scalar rows have width 1."""
        return self.block.get(k, (1, 0, 0, 0, 0))

    def operand_refs(self, k):
        """The operands of row k as (slot, stride, width): what each element reads."""
        name = self.primitive(k)
        kind = ops.KIND[name]
        a, b, c = int(self.a[k]), int(self.b[k]), int(self.c[k])
        w, sa, sb, sc, _ = self.strides(k)
        if name in ("input", "constant"):
            return []
        if self.op[k] == gathers.GATHER:
            return [(int(e), 0, 1) for e in self.layout(k)[:, 0]]
        if self.op[k] in gathers.ROW_OPS:   # the (m, n) layout by its shorter side
            slots = self.layout(k)
            m, n = slots.shape
            if m <= n:
                return [(int(row[0]), sb, n) for row in slots]
            return [(int(col[0]), sa, m) for col in slots.T]
        if name in _PRODUCTS:  # each tape operand: its m*k (k*n) slots
            _, m, kk, n, _ = self.strides(k)
            return [ref for ref, const in (((a, 1, m * kk), name == "rmatmul_c"),
                                           ((b, 1, kk * n), name == "matmul_c")) if not const]
        if name == "custom":  # the b consecutive slots from a (pyad.custom_jvp / _vjp)
            return [(a, 1, b)]
        if self.op[k] in linalg_sym.LINALG_OPS:  # stacks of matrices, read in place
            _, n, m, count, _ = self.strides(k)
            refs = [(a, 1, count * n * n)]
            return refs + [(b, 1, count * n * m)] if name == "solve_triangular" else refs
        if name == "select":
            return [(a, sa, w), (b, sb, w), (c, sc, w)]
        if name == "axpy_c":
            return [(a, 0, 1), (b, 0, 1)]
        if name in ("max_n", "min_n"):   # b operands listed in the pool from offset c
            return [(int(e), 0, 1) for e in self.pool[c:c + b]]
        if kind in ("binary", "compare"):
            return [(a, sa, w), (b, sb, w)]
        if kind in ("unary", "with_const", "compare_c") or name.startswith("guard"):
            return [(a, sa, w)]
        return []

    def operands(self, k):
        """Every slot row k reads (a block operand's slots in element order)."""
        return [s + st * i for s, st, w in self.operand_refs(k)
                for i in range(1 if st == 0 else w)]

    def constant(self, k):
        """The recorded constant(s) of a *_c op or constant slot (as text), else None."""
        name = self.primitive(k)
        kind = ops.KIND[name]
        if name == "constant" or kind in ("with_const", "compare_c"):
            w, *_, sk = self.strides(k)
            b = int(self.b[k])
            if w == 1 or sk == 0:
                return _number(self.consts[b])
            values = self.consts[b:b + sk * (w - 1) + 1:sk]
            shown = [_number(c) for c in values[:3]] + (["..."] if w > 4 else []) + \
                [_number(c) for c in values[max(3, w - 1):]]
            return "[" + ", ".join(shown) + "]"
        if name == "axpy_c":
            return _number(self.consts[int(self.c[k])])
        return None

    def product_text(self, k, name, refs):
        """A @ B with shapes: v[0:12] @ c[3:11] (3x4 @ 4x2); .T marks an operand
        whose slots hold its transpose, c[..] a constant."""
        _, m, kk, n, flags = self.strides(k)
        refs = iter(refs)

        def operand(const, start, size, trans):
            text = f"c[{start}:{start + size}]" if const else next(refs)
            return text + ".T" if trans else text

        left = operand(name == "rmatmul_c", int(self.a[k]), m * kk, flags & 1)
        right = operand(name == "matmul_c", int(self.b[k]), kk * n, flags & 2)
        return f"{left} @ {right} ({m}x{kk} @ {kk}x{n})"

    def text(self, k):
        """The operation of row k as an expression of earlier slots."""
        name = self.primitive(k)
        kind = ops.KIND[name]
        v = [self.slot_text(*ref) for ref in self.operand_refs(k)]
        c = self.constant(k)
        if name == "input":
            return f"x_{int(self.a[k]) + 1}"
        if name in _PRODUCTS:
            return self.product_text(k, name, v)
        if name == "constant":
            return c
        if self.op[k] in gathers.ROW_OPS:
            slots = self.layout(k)
            m, n = slots.shape
            if self.op[k] == gathers.GATHER or m == 1:
                return gathers.text(int(self.op[k]), self.slots_text(slots.ravel()), 1, n) \
                    .replace(" over 1 x " + str(n), "")
            return gathers.text(int(self.op[k]), self.slots_text(slots.ravel()), m, n)
        if name == "eigh":  # eigvalsh too (a flag)
            return linalg_sym.eig.call_text(v[0], self.strides(k)[4])
        if name == "solve_triangular":
            flags = self.strides(k)[4]
            opts = ["lower" if flags & linalg_sym.LOWER else "upper"]
            opts += ["trans"] * bool(flags & linalg_sym.TRANS) + ["unit"] * bool(flags & linalg_sym.UNIT)
            return f"solve_triangular({v[0]}, {v[1]}, {', '.join(opts)})"
        if name == "select":
            return f"where({v[0]}, {v[1]}, {v[2]})"
        if name == "guard_true":
            return f"guard({v[0]} is true)"
        if name == "guard_false":
            return f"guard({v[0]} is false)"
        if name == "axpy_c":
            return f"{v[0]} + {c} * {v[1]}"
        if name in ("max_n", "min_n"):
            return f"{name[:3]}({', '.join(v)})"
        if kind in ("binary", "compare"):
            sym = _INFIX.get(name)
            return f"{v[0]} {sym} {v[1]}" if sym else f"{name}({v[0]}, {v[1]})"
        if kind in ("with_const", "compare_c"):
            if name in _REVERSED:
                return f"{c} {_INFIX[_REVERSED[name]]} {v[0]}"
            base = _CONSTANT_FORM_OF.get(name, name)
            sym = _INFIX.get(base)
            return f"{v[0]} {sym} {c}" if sym else f"{base}({v[0]}, {c})"
        if name == "neg":
            return f"-{v[0]}"
        if v:
            return f"{name}({', '.join(v)})"
        return name


def _shown(x, digits):
    """A value of the table as text: a number, or a block row's values in brief."""
    if np.ndim(x) == 0:
        return f"{float(x) + 0.0:.{digits}g}"
    return np.array2string(np.asarray(x) + 0.0, separator=", ", threshold=4, edgeitems=2,
                           formatter={"float_kind": lambda e: f"{e:.{digits}g}"})



# How Python writes its binary operators (a table of the language, not of pyad's ops).
_SYMBOL_OF_OPERATOR = {"__add__": "+", "__sub__": "-", "__mul__": "*", "__truediv__": "/",
                       "__floordiv__": "//", "__mod__": "%", "__pow__": "**", "__matmul__": "@",
                       "__and__": "&", "__or__": "|", "__xor__": "^", "__lshift__": "<<",
                       "__rshift__": ">>", "__lt__": "<", "__le__": "<=", "__gt__": ">",
                       "__ge__": ">=", "__eq__": "==", "__ne__": "!="}
# Read from the registry: the rows written infix, their constant forms
# (sub_c is x - c), and the forms that put the constant first (rsub_c is c - x;
# gt_c, which records c < x, is read as gt's own x > c).
_BINARY_ROWS = [op for op in ops.OPS.values() if op.kind in ("binary", "compare")]
_INFIX = {op.name: _SYMBOL_OF_OPERATOR[op.operator] for op in _BINARY_ROWS
          if op.operator in _SYMBOL_OF_OPERATOR}
_CONSTANT_FORM_OF = {op.const_form: op.name for op in _BINARY_ROWS if op.const_form}
_REVERSED = {op.rconst_form: op.name for op in _BINARY_ROWS
             if op.rconst_form and op.rconst_form not in _CONSTANT_FORM_OF}


# ---- the Wengert table ----

class WengertTable:
    """The Wengert table of a tape at one point.

    rows: one dict per row of the tape, in recording order, with keys
      row, index (its first slot), width (the slots it defines: 1, or a block
      row's w), name ("v_{-1}", "v_0", "v_1", ..., or "v[12:112]" for a block
      row), op (the operation as text, e.g. "log(v_{-1})", "v_1 + v_2" or
      "sin(v[2:102])"), primitive (its name, e.g. "log"), value, and "tangent"
      (mode="forward") or "adjoint" (mode="reverse"): floats, or arrays of w
      for a block row, and output (a list like ["y"] for output rows, else []).
    str(table) is the aligned table; table["v_3"] or table[k] is one row;
    column("value") etc. give every slot's number in slot order.
    """

    def __init__(self, rows, mode, x, seed):
        self.rows = rows
        self.mode = mode
        self.derivative = "tangent" if mode == "forward" else "adjoint"
        self.x = x
        self.seed = seed
        self._by_name = {r["name"]: r for r in rows}

    def __len__(self):
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, key):
        if isinstance(key, str):
            try:
                return self._by_name[key]
            except KeyError:
                raise KeyError(f"no slot named {key!r}; names run {self.rows[0]['name']} .. "
                               f"{self.rows[-1]['name']}" if self.rows else "empty table") from None
        return self.rows[key]

    def column(self, key):
        """One column: value, tangent, adjoint as a float array of every slot (a block
        row's elements in order), index as an int array, the others as a list."""
        col = [r[key] for r in self.rows]
        if key in ("value", "tangent", "adjoint"):
            return np.concatenate([np.ravel(e) for e in col]) if col else np.zeros(0)
        return np.array(col) if key in ("index", "row", "width") else col

    def _header(self):
        x = np.array2string(np.asarray(self.x), separator=", ", threshold=8)
        seed = np.array2string(np.asarray(self.seed), separator=", ", threshold=8)
        if self.mode == "forward":
            return f"Wengert table at x = {x}: values and tangents along x_dot = {seed}"
        return f"Wengert table at x = {x}: values and adjoints for y_bar = {seed}"

    def __str__(self, digits=6):
        d = self.derivative
        head = ["v", "op", "value", d, ""]
        body = [[r["name"], r["op"], _shown(r["value"], digits), _shown(r[d], digits),
                 ("= " + ", ".join(r["output"])) if r["output"] else ""] for r in self.rows]
        widths = [max(len(row[i]) for row in [head] + body) for i in range(5)]

        def line(row):
            cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1]),
                     row[2].rjust(widths[2]), row[3].rjust(widths[3]), row[4]]
            return "  ".join(cells).rstrip()

        rule = "  ".join("-" * w for w in widths[:4])
        return "\n".join([self._header(), line(head), rule] + [line(r) for r in body])

    def to_markdown(self, digits=6):
        """The table as Markdown (for notebooks and docs)."""
        d = self.derivative
        out = [f"| v | op | value | {d} | output |", "|---|---|---:|---:|---|"]
        for r in self.rows:
            out.append(f"| ${r['name']}$ | `{r['op']}` | {_shown(r['value'], digits)} | "
                       f"{_shown(r[d], digits)} | {', '.join(r['output'])} |")
        return "\n".join(out)

    def __repr__(self):
        return f"<pyad.WengertTable {self.mode} mode, {len(self.rows)} rows>"


def _flat_seed(tape, seed, shapes, size):
    """A flat seed vector: from one flat array of `size` numbers, or per argument."""
    if not isinstance(seed, tuple):
        a = np.asarray(seed, dtype=np.float64)
        if a.size == size:
            return np.ascontiguousarray(a.ravel())
    return tape._pack(seed if isinstance(seed, tuple) else (seed,), "table seed", shapes, size)


def table(tape, x=None, mode="forward", seed=None):
    """The Wengert table of tape at x (default: the recorded point).

    mode="forward": every slot's value and tangent along `seed` (default: the
    first unit vector, i.e. d/dx_1). mode="reverse": every slot's value and
    adjoint for output weights `seed` (default: 1 on the first output).
    """
    modes = {"forward": "forward", "fwd": "forward", "reverse": "reverse", "rev": "reverse"}
    if mode not in modes:
        raise ValueError(f"mode must be 'forward' or 'reverse', not {mode!r}")
    mode = modes[mode]
    point = tape._point(x) if x is not None else None
    point = tape._recorded_point() if point is None else point
    n, m = tape.n_inputs, tape.n_outputs
    if mode == "forward":
        if seed is None:
            seed = np.zeros(n)
            seed[:1] = 1.0
        seed = _flat_seed(tape, seed, tape._d_shapes, n)
        values, derivs = tape._sweep(Sweep.SLOT_VALUES, point, seed)
    else:
        if seed is None:
            seed = np.zeros(m)
            seed[:1] = 1.0
        seed = _flat_seed(tape, seed, tape._out_shapes, m)
        values, derivs = tape._sweep(Sweep.SLOT_ADJOINTS, point, seed)
    g = _Graph(tape)          # after the sweep: a re-recording replaces the store
    key = "tangent" if mode == "forward" else "adjoint"
    rows = []
    for k in range(g.op.size):
        s, w = int(g.first[k]), int(g.width[k])
        part = slice(s, s + w)
        value, deriv = ((float(values[s]), float(derivs[s])) if w == 1 else
                        (np.array(values[part]), np.array(derivs[part])))
        rows.append({"row": k, "index": s, "width": w, "name": g.names[k], "op": g.text(k),
                     "primitive": g.primitive(k), "value": value, key: deriv,
                     "output": list(g.output_of.get(k, []))})
    return WengertTable(rows, mode, point, seed)


# ---- Graphviz ----

def _quote(s):
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _label(lines):
    return '"' + "\\n".join(str(s).replace("\\", "\\\\").replace('"', '\\"')
                            for s in lines) + '"'


# Operand order does not matter: a binary row that records x ∘ c and c ∘ x alike
# (the registry gives it one constant form for both), and the max/min of a pool.
_COMMUTATIVE = frozenset([op.name for op in _BINARY_ROWS
                          if op.const_form and op.const_form == op.rconst_form]
                         + ["max_n", "min_n"])


def to_dot(tape, values=False):
    """Graphviz DOT text of the tape: one node per row (inputs as boxes, guards
    as diamonds, outputs with a double border and their y label; a block row
    shows its slot range and width), an edge from the row defining each operand
    slot to the row that reads it (numbered where the order matters; a block
    operand gives one edge per row it reads from). values=True adds each row's
    recorded value(s) to its label. Render with `dot -Tsvg`."""
    g = _Graph(tape)
    vals = g.arrays["val"]
    out = ["digraph pyad {", "  graph [rankdir=TB];",
           '  node [shape=ellipse, fontname="Helvetica", fontsize=10];',
           '  edge [fontname="Helvetica", fontsize=8];']
    for k in range(g.op.size):
        name = g.primitive(k)
        s, w = int(g.first[k]), int(g.width[k])
        lines = [g.names[k]]
        if name == "input":
            lines.append(f"input {g.text(k)}")
        else:
            c = g.constant(k)
            lines.append(name if c is None or name == "constant" else f"{name} {c}")
            if name == "constant":
                lines[-1] = f"constant {c}"
        if w > 1:
            lines[-1] += f" (block of {w})"
        if values:
            lines.append("= " + _shown(vals[s] if w == 1 else vals[s:s + w], 6))
        attrs = [f"label={_label(lines)}", f"tooltip={_quote(g.names[k] + ' = ' + g.text(k))}"]
        if name == "input":
            attrs += ["shape=box", "style=filled", 'fillcolor="#dbe9ff"']
        elif name == "constant":
            attrs += ["shape=plaintext"]
        elif name.startswith("guard"):
            attrs += ["shape=diamond"]
        elif w > 1:
            attrs += ["shape=box3d"]
        if k in g.output_of:
            attrs[0] = f"label={_label(lines + [' '.join(g.output_of[k])])}"
            attrs += ["peripheries=2", "style=filled", 'fillcolor="#ffe8c2"']
        out.append(f"  s{k} [{', '.join(attrs)}];")
    for k in range(g.op.size):
        name = g.primitive(k)
        refs = g.operand_refs(k)
        for pos, (slot, stride, w) in enumerate(refs):
            attrs = []
            if name == "select":
                attrs.append(f"label={_quote(('if', 'then', 'else')[pos])}")
                if pos == 0:
                    attrs.append("style=dashed")
            elif len(refs) > 1 and name not in _COMMUTATIVE:
                attrs.append(f"label={_quote(pos + 1)}")
            tail = f" [{', '.join(attrs)}]" if attrs else ""
            read = slot + stride * np.arange(1 if stride == 0 else w)
            for j in dict.fromkeys(g.row_of[read].tolist()):   # each row read, once, in order
                out.append(f"  s{j} -> s{k}{tail};")
    out.append("}")
    return "\n".join(out) + "\n"


# ---- statistics ----

def stats(tape):
    """A dict describing the tape: ops (rows per primitive name, most frequent
    first), slots (values each primitive defines: a block row counts its width),
    n_ops (rows, inputs and constants included), n_slots, n_blocks (block rows),
    n_inputs, n_outputs, n_consts (numbers in the constant pool), nbytes, guards
    (recorded Python branches), backend, n_params (numbers taken as parameters:
    replayed, not differentiated) and passive_rows (rows no differentiated input
    reaches: the derivative sweeps skip them; 0 without parameters)."""
    a = tape._store.export()
    op = a["op"].astype(np.int64)
    width = np.ones(op.size, dtype=np.int64)
    blocks = np.asarray(a["blocks"], dtype=np.int64).reshape(-1, 6)
    width[blocks[:, 0]] = blocks[:, 1]
    rows = np.bincount(op, minlength=len(ops.NAME))
    slots = np.bincount(op, weights=width, minlength=len(ops.NAME))
    by_name = {ops.NAME[i]: int(c) for i, c in enumerate(rows) if c}
    by_name = dict(sorted(by_name.items(), key=lambda kv: (-kv[1], kv[0])))
    slots_by_name = {name: int(slots[ops.CODE[name]]) for name in by_name}
    return {"ops": by_name, "slots": slots_by_name, "n_ops": int(op.size),
            "n_slots": int(a["val"].size), "n_blocks": int(blocks.shape[0]),
            "n_inputs": int(a["inputs"].size),
            "n_outputs": int(a["outputs"].size), "n_consts": int(a["consts"].size),
            "nbytes": int(tape.nbytes),
            "guards": by_name.get("guard_true", 0) + by_name.get("guard_false", 0),
            "backend": tape.backend, "n_params": tape.n_params,
            "passive_rows": int(tape._store.n_passive)}


# ---- Jupyter ----

HTML_TABLE_ROWS = 40  # a larger tape shows its stats only


def tape_html(tape):
    """HTML for Tape._repr_html_: stats, then the Wengert table of a small tape."""
    from html import escape
    if tape.closed:
        return f"<p><b>pyad.Tape</b> (backend {escape(tape.backend)}): closed</p>"
    st = stats(tape)
    counts = ", ".join(f"{escape(k)} {v}" for k, v in sorted(st["ops"].items()))
    facts = [("backend", st["backend"]), ("inputs", st["n_inputs"]), ("outputs", st["n_outputs"]),
             ("rows", st["n_ops"]), ("slots", st["n_slots"]), ("guards", st["guards"]),
             ("bytes", st["nbytes"]), ("rows by op", counts)]
    head = "".join(f"<tr><th style='text-align:left'>{escape(str(k))}</th>"
                   f"<td style='text-align:left'>{escape(str(v))}</td></tr>" for k, v in facts)
    out = [f"<p><b>pyad.Tape</b></p><table>{head}</table>"]
    if st["n_ops"] <= HTML_TABLE_ROWS:
        wt = table(tape)
        cells = "".join(
            f"<tr><td>{escape(r['name'])}</td><td>{escape(r['op'])}</td>"
            f"<td>{escape(_shown(r['value'], 6))}</td><td>{escape(_shown(r['tangent'], 6))}</td>"
            f"<td>{escape(' '.join(r['output']))}</td></tr>" for r in wt.rows)
        out.append("<p>Wengert table at the recorded point (tangent along the first input)</p>"
                   "<table><tr><th>v</th><th>op</th><th>value</th><th>tangent</th><th></th></tr>"
                   f"{cells}</table>")
    return "".join(out)
