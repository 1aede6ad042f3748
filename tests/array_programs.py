"""Random array programs for tests/test_array_programs.py, built so that a failing
example prints as numpy code one can paste and run.

A Program has 1-3 input arrays v0, v1, ... (shapes up to 4x5) and a list of
steps; step k defines the value v{n_inputs + k} from earlier values and constants
C0, C1, ... through numpy/pyad code (views, fancy indexing with repeats, joins,
elementwise functions, selects, reductions, cumsum, products). The same code runs
on plain ndarrays (the numpy oracle) and on active arrays (recording a tape).

Derivatives are undefined at kinks (abs at 0, ties of maximum/minimum and of
max/min reductions, a select whose comparison is an equality): each such step
reports how far its operands are from the kink (`margin`), and the tests reject
a point whose margin is small. Exact ties are allowed, as they only arise
between copies of one value (x[[0, 0]], concatenate([a, a])), where every split
of the derivative sums to the same total. Domains are kept by construction:
log and sqrt see v*v + 0.5, a divisor is b*b + 1.
"""
from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

import pyad

# Small shapes: products and outer broadcasts stay at most MAX_SIZE elements.
INPUT_SHAPES = [(3,), (4,), (5,), (2, 3), (3, 4), (4, 3), (4, 5), (3, 3)]
MAX_SIZE = 30
KINK_MARGIN = 1e-3


@dataclass
class Step:
    """v_new = fn(*[values[i] for i in args]); `text` is the same code as numpy source."""
    text: str
    fn: object
    args: tuple
    margin: object = None      # fn of the plain operands -> distance from a kink


@dataclass
class Program:
    shapes: list
    steps: list = field(default_factory=list)
    consts: list = field(default_factory=list)
    weights: list = field(default_factory=list)   # one per step, for the outputs
    output: str = "scalar"    # "scalar": a weighted sum; "vector": pyad.stack of sums

    @property
    def n_inputs(self):
        return len(self.shapes)

    def values(self, *xs):
        """Every value of the program (inputs first) for inputs xs."""
        env = list(xs)
        for step in self.steps:
            env.append(step.fn(*[env[i] for i in step.args]))
        return env

    def __call__(self, *xs):
        env = self.values(*xs)
        sums = [_weighted_sum(w, v) for w, v in zip(self.weights, env[self.n_inputs:])]
        if self.output == "scalar":
            total = sums[0]
            for s in sums[1:]:
                total = total + s
            return total
        return pyad.stack(sums)

    def margin(self, *xs):
        """The smallest distance from a kink of any step, at plain inputs xs."""
        env = list(xs)
        worst = np.inf
        for step in self.steps:
            operands = [env[i] for i in step.args]
            if step.margin is not None:
                worst = min(worst, step.margin(*operands))
            env.append(step.fn(*operands))
        return worst

    def __str__(self):
        lines = [f"def f({', '.join(f'v{i}' for i in range(self.n_inputs))}):  "
                 f"# input shapes {self.shapes}"]
        for k, c in enumerate(self.consts):
            lines.append(f"    C{k} = np.array({np.asarray(c).tolist()!r})")
        for k, step in enumerate(self.steps):
            lines.append(f"    v{self.n_inputs + k} = {step.text}")
        terms = [f"W{k} * v{self.n_inputs + k}" for k in range(len(self.steps))]
        if self.output == "scalar":
            lines.append(f"    return {' + '.join(f'np.sum({t})' for t in terms)}")
        else:
            lines.append(f"    return pyad.stack([{', '.join(f'np.sum({t})' for t in terms)}])")
        lines.append(f"  # W_k: {[np.asarray(w).tolist() for w in self.weights]}")
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_pretty_(self, printer, cycle):
        # hypothesis prints a falsifying example through this: as code, not as fields
        printer.text(str(self))


def _weighted_sum(w, v):
    p = v * w
    return p.sum() if np.ndim(w) else p


# ---- gaps to kinks, on plain operands ----

def _gap(a, b):
    """Smallest nonzero |a - b| (exact ties are copies of one value, see the docstring)."""
    d = np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)).ravel()
    d = d[d > 0]
    return float(d.min()) if d.size else np.inf


def _abs_gap(a):
    d = np.abs(np.asarray(a, dtype=float)).ravel()
    d = d[d > 0]
    return float(d.min()) if d.size else np.inf


def _extreme_gap(a, axis):
    """How far the runner-up is from the max (min) along axis, over all lanes."""
    a = np.asarray(a, dtype=float)
    lanes = a.reshape(-1, 1) if axis is None else np.moveaxis(a, axis, -1)
    lanes = lanes.reshape(-1, lanes.shape[-1]) if axis is not None else a.reshape(1, -1)
    worst = np.inf
    for lane in lanes:
        for extreme in (lane.max(), lane.min()):
            d = np.abs(lane - extreme)
            d = d[d > 0]
            if d.size:
                worst = min(worst, float(d.min()))
    return worst


# ---- the step builders: each returns a Step, or None where it does not apply ----

def _shape(v):
    return np.shape(v)


def _broadcast_size(*shapes):
    try:
        return int(np.prod(np.broadcast_shapes(*shapes)))
    except ValueError:
        return None


class Builder:
    """Draws steps that fit the shapes of the values defined so far."""

    def __init__(self, draw, probe, rng):
        self.draw = draw
        self.env = list(probe)      # plain values at the recorded point: shapes and margins
        self.rng = rng
        self.program = Program(shapes=[np.shape(p) for p in probe])

    def name(self, i):
        return f"v{i}"

    def const(self, shape, low=-1.5, high=1.5):
        c = np.round(self.rng.uniform(low, high, size=shape), 3)
        self.program.consts.append(c)
        return c, f"C{len(self.program.consts) - 1}"

    def add(self, step):
        value = step.fn(*[self.env[i] for i in step.args])
        if np.size(value) == 0 or np.size(value) > MAX_SIZE:
            return False
        self.program.steps.append(step)
        self.env.append(value)
        return True

    def pick(self, ok=lambda s: True):
        """An earlier value whose shape satisfies ok (None if none does)."""
        # newest first: hypothesis favours early options, and chains of steps are the point
        options = [i for i, v in reversed(list(enumerate(self.env))) if ok(_shape(v))]
        if not options:
            return None
        return self.draw(st.sampled_from(options))

    def partner(self, i, ok):
        """A value j (possibly i itself) whose shape fits with value i."""
        si = _shape(self.env[i])
        options = [j for j, v in reversed(list(enumerate(self.env))) if ok(si, _shape(v))]
        options.sort(key=lambda j: j == i)     # another value first, i itself last
        return self.draw(st.sampled_from(options)) if options else None

    # views: record nothing today, a strided or gather operand after the rewrite
    def view(self):
        i = self.pick(lambda s: len(s) >= 1)
        if i is None:
            return None
        s = _shape(self.env[i])
        n = self.name(i)
        forms = [(f"{n}[::-1]", lambda a: a[::-1]), (f"{n}[None]", lambda a: a[None])]
        if s[0] >= 2:
            forms += [(f"{n}[1:]", lambda a: a[1:]), (f"{n}[:-1]", lambda a: a[:-1]),
                      (f"{n}[::2]", lambda a: a[::2])]
        k = self.draw(st.integers(0, s[0] - 1))
        forms.append((f"{n}[{k}]", lambda a: a[k]))
        if len(s) == 1:
            forms.append((f"{n}.reshape(1, -1).T", lambda a: a.reshape(1, -1).T))
            if s[0] in (4, 6):
                forms.append((f"{n}.reshape(2, -1)", lambda a: a.reshape(2, -1)))
        if len(s) == 2:
            forms += [(f"{n}.T", lambda a: a.T), (f"{n}.reshape(-1)", lambda a: a.reshape(-1)),
                      (f"{n}[:, ::-1]", lambda a: a[:, ::-1]),
                      (f"{n}.T[1:, ::2]", lambda a: a.T[1:, ::2]),
                      (f"{n}[:, {k % s[1]}]", lambda a: a[:, k % s[1]])]
        text, fn = self.draw(st.sampled_from(forms))
        return Step(text, fn, (i,))

    def fancy(self):
        i = self.pick(lambda s: len(s) >= 1)
        if i is None:
            return None
        s = _shape(self.env[i])
        n = self.name(i)
        idx = self.draw(st.lists(st.integers(0, s[0] - 1), min_size=2, max_size=5))
        idx.append(idx[0])                     # at least one repeat, always
        forms = [(f"{n}[{idx}]", lambda a: a[idx])]
        if len(s) == 2:
            jdx = [j % s[1] for j in idx]
            forms += [(f"{n}[:, {jdx}]", lambda a: a[:, jdx]),
                      (f"{n}[{idx}, {jdx}]", lambda a: a[idx, jdx])]
        text, fn = self.draw(st.sampled_from(forms))
        return Step(text, fn, (i,))

    def join(self):
        i = self.pick(lambda s: len(s) >= 1)
        if i is None:
            return None
        j = self.partner(i, lambda a, b: a == b)
        ni, nj = self.name(i), self.name(j)
        axis = self.draw(st.integers(0, len(_shape(self.env[i])) - 1))
        forms = [
            (f"np.concatenate([{ni}, {nj}[::-1]], axis={axis})",
             lambda a, b: np.concatenate([a, b[::-1]], axis=axis)),
            (f"np.stack([{ni}, {nj}], axis={axis})", lambda a, b: np.stack([a, b], axis=axis)),
            (f"pyad.stack([{nj}, {ni}])", lambda a, b: pyad.stack([b, a])),
            (f"pyad.stack([{ni}[0], {nj}[-1], {ni}[0]])",
             lambda a, b: pyad.stack([a[0], b[-1], a[0]])),
        ]
        text, fn = self.draw(st.sampled_from(forms))
        return Step(text, fn, (i, j))

    def unary(self):
        i = self.pick()
        n = self.name(i)
        forms = [
            (f"np.sin({n})", np.sin, None),
            (f"np.exp(0.5 * {n})", lambda a: np.exp(0.5 * a), None),
            (f"np.tanh({n})", np.tanh, None),
            (f"np.square({n})", np.square, None),
            (f"{n} ** 2", lambda a: a ** 2, None),
            (f"np.abs({n})", np.abs, _abs_gap),
            (f"abs({n})", abs, _abs_gap),
            (f"np.log({n} * {n} + 0.5)", lambda a: np.log(a * a + 0.5), None),
            (f"np.sqrt({n} * {n} + 0.5)", lambda a: np.sqrt(a * a + 0.5), None),
            (f"-{n}", lambda a: -a, None),
        ]
        text, fn, margin = self.draw(st.sampled_from(forms))
        return Step(text, fn, (i,), margin)

    def binary(self):
        i = self.pick()
        si = _shape(self.env[i])
        ni = self.name(i)

        def fits(a, b):
            size = _broadcast_size(a, b)
            return size is not None and size <= MAX_SIZE

        def outer_fits(a, b):
            return len(a) == 1 and len(b) == 1 and a[0] * b[0] <= MAX_SIZE

        def column_fits(a, b):
            return len(a) == 2 and len(b) == 1 and a[0] == b[0]

        kinds = ["const", "const_left"]
        if any(fits(si, _shape(v)) for v in self.env):
            kinds.append("active")
        if any(outer_fits(si, _shape(v)) for v in self.env):
            kinds.append("outer")
        if any(column_fits(si, _shape(v)) for v in self.env):
            kinds.append("column")
        kind = self.draw(st.sampled_from(kinds))
        op = self.draw(st.sampled_from(["+", "-", "*", "/", "maximum", "minimum"]))
        if kind in ("const", "const_left"):
            cshape = self.draw(st.sampled_from([(), si, si[-1:]]))
            c, cn = self.const(cshape)
            left = kind == "const_left"
            a_text, b_text = (cn, ni) if left else (ni, cn)
            return self._binary_step(op, a_text, b_text,
                                     (lambda x: (c, x)) if left else (lambda x: (x, c)), (i,))
        if kind == "active":
            j = self.partner(i, fits)
            a_text, b_text, split = ni, self.name(j), (lambda x, y: (x, y))
        elif kind == "outer":
            j = self.partner(i, outer_fits)
            a_text, b_text, split = f"{ni}[:, None]", self.name(j), (lambda x, y: (x[:, None], y))
        else:
            j = self.partner(i, column_fits)
            a_text, b_text = ni, f"{self.name(j)}[:, None]"
            split = lambda x, y: (x, y[:, None])
        return self._binary_step(op, a_text, b_text, split, (i, j))

    @staticmethod
    def _binary_step(op, a_text, b_text, split, args):
        if op == "/":
            text = f"{a_text} / ({b_text} * {b_text} + 1)"
            return Step(text, lambda *v: (lambda a, b: a / (b * b + 1))(*split(*v)), args)
        if op in ("maximum", "minimum"):
            f = getattr(np, op)
            return Step(f"np.{op}({a_text}, {b_text})", lambda *v: f(*split(*v)), args,
                        lambda *v: _gap(*np.broadcast_arrays(*split(*v))))
        f = {"+": np.add, "-": np.subtract, "*": np.multiply}[op]
        return Step(f"{a_text} {op} {b_text}", lambda *v: f(*split(*v)), args)

    def select(self):
        i = self.pick()
        ni = self.name(i)
        j = self.partner(i, lambda a, b: a == b)
        nj = self.name(j)
        t = float(np.round(self.rng.uniform(-1, 1), 3))
        forms = [
            (f"pyad.where({ni} > {nj}, {ni} * {nj}, {ni} - {nj})",
             lambda a, b: pyad.where(a > b, a * b, a - b), lambda a, b: _gap(a, b)),
            (f"pyad.where({ni} < {t}, np.sin({nj}), {ni} * 2.0)",
             lambda a, b: pyad.where(a < t, np.sin(b), a * 2.0), lambda a, b: _gap(a, t)),
            (f"pyad.where({ni} >= {t}, {ni}, 0.0)",
             lambda a, b: pyad.where(a >= t, a, 0.0), lambda a, b: _gap(a, t)),
        ]
        text, fn, margin = self.draw(st.sampled_from(forms))
        return Step(text, fn, (i, j), margin)

    def reduction(self):
        i = self.pick(lambda s: len(s) >= 1)
        if i is None:
            return None
        s = _shape(self.env[i])
        n = self.name(i)
        axis = self.draw(st.sampled_from([None] + list(range(len(s))) + [-1]))
        keep = self.draw(st.booleans())
        kind = self.draw(st.sampled_from(["sum", "mean", "prod", "max", "min", "cumsum"]))
        if kind == "cumsum":
            return Step(f"np.cumsum({n}, axis={axis})", lambda a: np.cumsum(a, axis=axis), (i,))
        margin = (lambda a: _extreme_gap(a, axis)) if kind in ("max", "min") else None
        if self.draw(st.booleans()):   # the method spelling
            return Step(f"{n}.{kind}(axis={axis}, keepdims={keep})",
                        lambda a: getattr(a, kind)(axis=axis, keepdims=keep), (i,), margin)
        f = getattr(np, kind)
        return Step(f"np.{kind}({n}, axis={axis}, keepdims={keep})",
                    lambda a: f(a, axis=axis, keepdims=keep), (i,), margin)

    def product(self):
        i = self.pick(lambda s: len(s) in (1, 2))
        if i is None:
            return None
        s = _shape(self.env[i])
        n = self.name(i)
        p = self.draw(st.integers(1, 3))
        kind = self.draw(st.sampled_from(["const_right", "const_left", "active", "dot",
                                          "outer", "inner", "einsum"]))
        if kind == "const_right":
            c, cn = self.const((s[-1], p) if self.draw(st.booleans()) else (s[-1],))
            return Step(f"{n} @ {cn}", lambda a: a @ c, (i,))
        if kind == "const_left":
            c, cn = self.const((p, s[0]))
            return Step(f"{cn} @ {n}", lambda a: c @ a, (i,))
        if kind in ("active", "dot"):
            j = self.partner(i, lambda a, b: len(b) in (1, 2) and b[0] == a[-1])
            if j is None:          # x @ x.T always fits
                j, right, rt = i, (lambda b: b.T), f"{n}.T"
            else:
                right, rt = (lambda b: b), self.name(j)
            if kind == "active":
                return Step(f"{n} @ {rt}", lambda a, b: a @ right(b), (i, j))
            return Step(f"np.dot({n}, {rt})", lambda a, b: np.dot(a, right(b)), (i, j))
        if kind == "outer":
            j = self.partner(i, lambda a, b: int(np.prod(a)) * int(np.prod(b)) <= MAX_SIZE)
            if j is None:
                return None
            return Step(f"np.outer({n}, {self.name(j)})", np.outer, (i, j))
        if kind == "inner":
            j = self.partner(i, lambda a, b: len(b) in (1, 2) and b[-1] == a[-1])
            return Step(f"np.inner({n}, {self.name(j)})", np.inner, (i, j))
        j = self.partner(i, lambda a, b: a == b)
        nj = self.name(j)
        if len(s) == 1:
            spec = self.draw(st.sampled_from(["i,i->", "i,j->ij", "i,j->ji"]))
        else:
            spec = self.draw(st.sampled_from(["ij,ij->i", "ij,ij->j", "ij,kj->ik",
                                              "ij,ik->jk", "ij,ij->ji"]))
        return Step(f"np.einsum({spec!r}, {n}, {nj})",
                    lambda a, b: np.einsum(spec, a, b), (i, j))


STEP_KINDS = ["view", "fancy", "join", "unary", "binary", "select", "reduction", "product"]


@st.composite
def programs(draw, max_steps=8):
    """(program, inputs): a random Program and a point (tuple of ndarrays) to record it at."""
    n_inputs = draw(st.integers(1, 3))
    shapes = [draw(st.sampled_from(INPUT_SHAPES)) for _ in range(n_inputs)]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    xs = tuple(rng.uniform(-1.5, 1.5, size=s) for s in shapes)
    b = Builder(draw, xs, rng)
    n_steps = draw(st.integers(3, max_steps))
    attempts = 0
    while len(b.program.steps) < n_steps and attempts < 4 * max_steps:
        attempts += 1
        step = getattr(b, draw(st.sampled_from(STEP_KINDS)))()
        if step is not None:
            b.add(step)
    if not b.program.steps:
        b.add(Step("np.sin(v0)", np.sin, (0,)))
    b.program.weights = [np.round(rng.uniform(-1, 1, size=np.shape(v)), 3)
                         for v in b.env[n_inputs:]]
    b.program.output = draw(st.sampled_from(["scalar", "vector"]))
    return b.program, xs
