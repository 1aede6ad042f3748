"""The pure-Python backend: the same tape as csrc/, in Python lists.

It is the readable twin of the C core (same layout, same sweeps, one loop and
one branch per kind) and the baseline the C core is measured against. Op codes
and kinds come from the shared primitive table (pyad.ops), and its errors are
the C core's statuses and messages (pyad.errors.status_error); the value and
derivative rules are written independently in pyad/_python_rules.py.
"""
import functools
import threading
from array import array

from _thread import get_ident

import numpy as np

from . import ops
from ._python_rules import COMPARISONS, RULES, call
from .errors import INTERLEAVED, BranchError, TapeBusyError, TapeClosedError, status_error
from .row_buffer import RowBuffer, recording

# The special rows (_python_rules.SPECIAL), swept by the hand-written cases below.
_INPUT, _CONST, _SELECT = ops.CODE["input"], ops.CODE["constant"], ops.CODE["select"]
_GUARD_T, _GUARD_F, _AXPY = ops.CODE["guard_true"], ops.CODE["guard_false"], ops.CODE["axpy_c"]
_MAX_N, _MIN_N = ops.CODE["max_n"], ops.CODE["min_n"]
_MAX_OPS = 2**31 - 1
_WAIT_S = 60.0  # how long recording waits for another thread's sweeps

# Per op code: its kind, and its rule (or comparison) for the sweeps. Importing
# _python_rules has checked that every row of the registry has its rule.
_KIND = [ops.KIND[name] for name in ops.NAME]
_RULE = [RULES.get(name) for name in ops.NAME]
_CMP = [COMPARISONS.get(name) for name in ops.NAME]


def _scaled(d, t):
    """d * t where a zero t is a structural zero: an op no output depends on, or
    an input that is not varied, never turns a derivative into NaN (as csrc's SCALED)."""
    return 0.0 if t == 0 else d * t


def _extremum(values, is_max):
    """max / min with numpy's NaN propagation."""
    m = values[0]
    for x in values[1:]:
        if m != m:
            break
        if x != x or (x > m if is_max else x < m):
            m = x
    return m


def _ties(values, m):
    """Indices of the values equal to the extremum m (NaNs tie with a NaN m)."""
    return [i for i, x in enumerate(values) if x == m or (x != x and m != m)]


def _sweep(method):
    """A sweep that another thread's close() cuts short raises TapeClosedError, not
    whatever the emptied lists made of it (close() sets `closed` before it drops them;
    a sweep that finishes with `closed` still False read the lists whole).

    While it runs, the tape does not grow: recording waits (see _records)."""
    @functools.wraps(method)
    def run(self, *args):
        if self._pending:
            self._sync()
        me = get_ident()
        with self._gate:
            self._sweeps += 1
            self._sweepers[me] = self._sweepers.get(me, 0) + 1
        try:
            result = method(self, *args)
        except Exception:
            if self.closed:
                raise status_error("PYAD_ECLOSED") from None
            raise
        finally:
            with self._gate:
                self._sweeps -= 1
                self._sweepers[me] -= 1
                if not self._sweepers[me]:
                    del self._sweepers[me]
                self._gate.notify_all()
        if self.closed:
            raise status_error("PYAD_ECLOSED")
        return result
    return run


def _records(method):
    """A recording method: the owner rule (row_buffer.recording), and no sweep
    running while the lists grow (the C store has the same rule in C)."""
    @functools.wraps(method)
    def run(self, *args):
        with self._gate:
            self._wait_for_sweeps()
            return method(self, *args)
    return recording(run)


class PyStore(RowBuffer):
    backend = "python"

    def __init__(self):
        self.op, self.a, self.b, self.c = [], [], [], []
        self.val = []        # recorded values, one per slot
        self.consts = []
        self.pool = []       # operand lists of max_n / min_n
        self.inputs = []     # slot of each input
        self.outputs = []    # slot of each output
        self.max_ops = _MAX_OPS
        self.closed = False
        # Rows buffered by the active types (in RowStore), as the C store buffers them.
        self._gate = threading.Condition()  # sweeps running vs. recording (see _records)
        self._sweeps = 0
        self._sweepers = {}  # thread -> sweeps it runs (a sweep never waits for itself)
        self._next = 0
        self._owner = get_ident()  # the thread recording scalar ops (see scalar.claim)

    def close(self):
        # Sweeps hold their own references to the lists, so one that another
        # thread is running finishes; every later call raises TapeClosedError.
        self.closed = True
        self.op, self.a, self.b, self.c, self.val = [], [], [], [], []
        self.consts, self.pool, self.inputs, self.outputs = [], [], [], []
        self._close_rows()

    def _live(self):
        if self.closed:
            raise status_error("PYAD_ECLOSED")
        if self._pending:
            self._sync()

    def _hand_over(self):
        """Record the buffered rows (their slots were numbered when buffered)."""
        with self._gate:
            if get_ident() in self._sweepers:
                return  # rows another thread buffered during this sweep stay buffered
            self._wait_for_sweeps()
            self._record_buffered()

    def _wait_for_sweeps(self):
        """Called holding the gate: return once no sweep runs."""
        if not self._gate.wait_for(lambda: self._sweeps == 0, timeout=_WAIT_S):
            raise TapeBusyError("another thread is replaying this tape; recording waited "
                                f"{_WAIT_S:.0f} s for it to finish")

    def _record_buffered(self):
        if self._pending != self._next - len(self.op):
            self.close()
            raise TapeBusyError(INTERLEAVED)
        po, pa, pb = (array(code, rows) for code, rows in zip("Bid", self._take()))
        try:
            for op, a, b in zip(po, pa, pb):
                kind = _KIND[op]
                if kind == "unary":
                    self._rec1(op, a)
                elif kind in ("binary", "compare"):
                    self._rec2(op, a, int(b))  # b holds a slot
                else:
                    self._rec_c(op, a, b)  # b holds the constant itself
        except Exception as e:
            # Values already handed out name the buffered slots; none may be reused.
            self.close()
            raise type(e)(f"{e} (recording buffered operations; the tape is now closed)") from None

    @property
    def n_ops(self):
        self._live()
        return len(self.op)

    @property
    def n_inputs(self):
        self._live()
        return len(self.inputs)

    @property
    def n_outputs(self):
        self._live()
        return len(self.outputs)

    @property
    def nbytes(self):
        """What the same tape occupies in the C layout (the lists cost more)."""
        self._live()
        return (len(self.op) * 21 + len(self.consts) * 8
                + (len(self.inputs) + len(self.outputs) + len(self.pool)) * 4)

    def shrink(self):
        self._live()

    @_records
    def set_max_ops(self, n):
        self._live()
        if n < len(self.op) or n > _MAX_OPS:
            raise status_error("PYAD_EINVAL")
        self.max_ops = n

    # ---- recording ----

    def _append(self, op, a, b, c, value):
        if len(self.op) >= self.max_ops:
            self._next = len(self.op)
            raise status_error("PYAD_ETOOBIG")
        self.op.append(op)
        self.a.append(a)
        self.b.append(b)
        self.c.append(c)
        self.val.append(value)
        self._next = len(self.op)
        return len(self.op) - 1

    def _slot(self, i):
        i = int(i)
        if not 0 <= i < len(self.op):
            raise status_error("PYAD_EINDEX")
        return i

    @_records
    def input(self, value):
        self._live()
        k = self._append(_INPUT, len(self.inputs), 0, 0, float(value))
        self.inputs.append(k)
        return k

    @_records
    def const(self, value):
        self._live()
        self.consts.append(float(value))
        return self._append(_CONST, 0, len(self.consts) - 1, 0, float(value))

    @_records
    def rec1(self, op, a):
        self._live()
        return self._rec1(op, a)

    @_records
    def rec2(self, op, a, b):
        self._live()
        return self._rec2(op, a, b)

    @_records
    def rec_c(self, op, a, c):
        self._live()
        return self._rec_c(op, a, c)

    def _rec1(self, op, a):
        a = self._slot(a)
        return self._append(op, a, 0, 0, call(_RULE[op][0], self.val[a], 0.0))

    def _rec2(self, op, a, b):
        a, b = self._slot(a), self._slot(b)
        x, y = self.val[a], self.val[b]
        cmp = _CMP[op]
        value = (1.0 if cmp(x, y) else 0.0) if cmp else call(_RULE[op][0], x, y)
        return self._append(op, a, b, 0, value)

    def _rec_c(self, op, a, c):
        a, c = self._slot(a), float(c)
        x = self.val[a]
        cmp = _CMP[op]
        value = (1.0 if cmp(x, c) else 0.0) if cmp else call(_RULE[op][0], x, c)
        self.consts.append(c)
        return self._append(op, a, len(self.consts) - 1, 0, value)

    @_records
    def select(self, cond, a, b):
        self._live()
        cond, a, b = self._slot(cond), self._slot(a), self._slot(b)
        return self._append(_SELECT, cond, a, b, self.val[a] if self.val[cond] != 0 else self.val[b])

    @_records
    def guard(self, cond, expected):
        self._live()
        cond = self._slot(cond)
        return self._append(_GUARD_T if expected else _GUARD_F, cond, 0, 0, self.val[cond])

    def value(self, slot):
        self._live()
        return self.val[self._slot(slot)]

    # Vectorized recording is a loop here; results are consecutive slots. As in
    # the C core, a call is refused whole: sizes and indices are checked first.

    def _room(self, n, *slot_arrays):
        self._live()
        if len(self.op) + n > self.max_ops:
            raise status_error("PYAD_ETOOBIG")
        for arr in slot_arrays:
            arr = np.asarray(arr)
            if arr.size and (arr.min() < 0 or arr.max() >= len(self.op)):
                raise status_error("PYAD_EINDEX")
        return len(self.op)

    @_records
    def input_n(self, values):
        first = self._room(values.size)
        for v in values.tolist():
            self.input(v)
        return first

    @_records
    def rec1_n(self, op, a):
        first = self._room(a.size, a)
        for i in a.tolist():
            self.rec1(op, i)
        return first

    @_records
    def rec2_n(self, op, a, b):
        first = self._room(a.size, a, b)
        for i, j in zip(a.tolist(), b.tolist()):
            self.rec2(op, i, j)
        return first

    @_records
    def rec_c_n(self, op, a, c):
        first = self._room(a.size, a)
        cs = c.tolist() if c.size == a.size else [float(c[0])] * a.size
        for i, v in zip(a.tolist(), cs):
            self.rec_c(op, i, v)
        return first

    @_records
    def const_n(self, values):
        first = self._room(values.size)
        for v in values.tolist():
            self.const(v)
        return first

    @_records
    def reduce(self, op, x):
        """Reduce each row of the (m, k) slot matrix x by a pairwise tree, as the C core
        does; maximum / minimum record one variadic op per row."""
        m, k = x.shape
        variadic_op = ops.NAME[op] in ("maximum", "minimum")
        self._room(m if variadic_op else m * (k - 1), x)
        if variadic_op:
            variadic = _MAX_N if ops.NAME[op] == "maximum" else _MIN_N
            out = []
            for row in x.tolist():
                row = [self._slot(r) for r in row]
                offset = len(self.pool)
                self.pool.extend(row)
                vals = [self.val[r] for r in row]
                out.append(self._append(variadic, row[0], len(row), offset,
                                        _extremum(vals, variadic == _MAX_N)))
            return np.array(out, dtype=np.int32)
        out = []
        for row in x.tolist():
            level = row
            while len(level) > 1:
                pairs = [self.rec2(op, level[j], level[j + 1]) for j in range(0, len(level) - 1, 2)]
                level = pairs + (level[-1:] if len(level) % 2 else [])
            out.append(level[0])
        return np.array(out, dtype=np.int32)

    @_records
    def matmul_c(self, x, w):
        """Slots of x (m, k) @ w (k, p) for constant w: a mul_c, then axpy_c terms."""
        self._room(x.shape[0] * w.shape[1] * x.shape[1], x)
        base = len(self.consts)
        self.consts.extend(w.ravel().tolist())
        p = w.shape[1]
        out = np.empty((x.shape[0], p), dtype=np.int32)
        for i, row in enumerate(x.tolist()):
            row = [self._slot(r) for r in row]
            for j in range(p):
                acc = self._append(ops.CODE["mul_c"], row[0], base + j, 0,
                                   self.val[row[0]] * self.consts[base + j])
                for l in range(1, len(row)):
                    c = base + l * p + j
                    acc = self._append(_AXPY, acc, row[l], c,
                                       self.val[acc] + self.consts[c] * self.val[row[l]])
                out[i, j] = acc
        return out

    @_records
    def select_n(self, cond, a, b):
        first = self._room(a.size, cond, a, b)
        for k, i, j in zip(cond.tolist(), a.tolist(), b.tolist()):
            self.select(k, i, j)
        return first

    @_records
    def output_n(self, slots):
        self._live()
        slots = [self._slot(s) for s in slots.tolist()]
        self.outputs.extend(slots)

    def values(self, slots):
        self._live()
        return np.array([self.val[self._slot(s)] for s in slots.tolist()], dtype=np.float64)

    def op_at(self, k):
        self._live()
        return self.op[self._slot(k)]

    def input_slots(self):
        self._live()
        return np.array(self.inputs, dtype=np.int32)

    def output_slots(self):
        self._live()
        return np.array(self.outputs, dtype=np.int32)

    # ---- sweeps ----

    def _snapshot(self):
        """The tape's lists, taken once per call: a close() from another thread
        then does not cut a running sweep short."""
        return (self.op, self.a, self.b, self.c, self.consts, self.pool, self.inputs,
                self.outputs)

    def _forward(self, x, xd=None, snap=None):
        """Values (and tangents along xd) of every slot at inputs x."""
        ops_, A, B, Cs, consts, pool, _, _ = snap or self._snapshot()
        n = len(ops_)
        v = [0.0] * n
        vd = [0.0] * n if xd is not None else None
        for k in range(n):
            op, a, b, c = ops_[k], A[k], B[k], Cs[k]
            kind = _KIND[op]
            if op == _INPUT:
                v[k] = float(x[a])
                if vd is not None:
                    vd[k] = float(xd[a])
                continue
            if op == _CONST:
                v[k] = consts[b]
                continue
            if op == _SELECT:
                pick = b if v[a] != 0 else c
                v[k] = v[pick]
                if vd is not None:
                    vd[k] = vd[pick]
                continue
            if op == _AXPY:
                v[k] = v[a] + consts[c] * v[b]
                if vd is not None:
                    vd[k] = vd[a] + _scaled(consts[c], vd[b])
                continue
            if op in (_GUARD_T, _GUARD_F):
                v[k] = v[a]
                if (v[k] != 0) != (op == _GUARD_T):
                    raise BranchError(k)
                continue
            if op in (_MAX_N, _MIN_N):
                operands = pool[c:c + b]
                vals = [v[i] for i in operands]
                v[k] = m = _extremum(vals, op == _MAX_N)
                if vd is not None:
                    ties = _ties(vals, m)
                    vd[k] = sum(vd[operands[i]] for i in ties) / len(ties)
                continue
            xv = v[a]
            yv = v[b] if kind in ("binary", "compare") else (
                consts[b] if kind in ("with_const", "compare_c") else 0.0)
            if _CMP[op]:
                v[k] = 1.0 if _CMP[op](xv, yv) else 0.0
                continue
            value, partials, _ = _RULE[op]
            z = v[k] = call(value, xv, yv)
            if vd is not None:
                d_x, d_y = call(partials, xv, yv, z)
                t = _scaled(d_x, vd[a])
                if kind == "binary":
                    t += _scaled(d_y, vd[b])
                vd[k] = t
        return v, vd

    def _reverse(self, v, u, vd=None, snap=None):
        """Adjoints (and their tangents, given the tangents vd) seeded with u."""
        ops_, A, B, Cs, consts, pool, _, outputs = snap or self._snapshot()
        n = len(ops_)
        adj = [0.0] * n
        adjd = [0.0] * n if vd is not None else None
        for i, s in enumerate(outputs):
            adj[s] += float(u[i])
        for k in range(n - 1, -1, -1):
            op, a, b, c = ops_[k], A[k], B[k], Cs[k]
            kind = _KIND[op]
            g = adj[k]
            gd = adjd[k] if adjd is not None else 0.0
            if g == 0 and gd == 0:
                continue  # nothing flows back (see _scaled)
            if op == _SELECT:
                pick = b if v[a] != 0 else c
                adj[pick] += g
                if adjd is not None:
                    adjd[pick] += gd
                continue
            if op == _AXPY:
                adj[a] += g
                adj[b] += _scaled(consts[c], g)
                if adjd is not None:
                    adjd[a] += gd
                    adjd[b] += _scaled(consts[c], gd)
                continue
            if op in (_MAX_N, _MIN_N):
                operands = pool[c:c + b]
                ties = _ties([v[i] for i in operands], v[k])
                for i in ties:
                    adj[operands[i]] += g / len(ties)
                    if adjd is not None:
                        adjd[operands[i]] += gd / len(ties)
                continue
            if kind not in ("unary", "binary", "with_const"):
                continue
            xv = v[a]
            yv = v[b] if kind == "binary" else (consts[b] if kind == "with_const" else 0.0)
            _, partials, second = _RULE[op]
            d_x, d_y = call(partials, xv, yv, v[k])
            adj[a] += _scaled(d_x, g)
            if kind == "binary":
                adj[b] += _scaled(d_y, g)
            if adjd is not None:
                xd = vd[a]
                yd = vd[b] if kind == "binary" else 0.0
                dd_x, dd_y = call(second, xv, yv, v[k], xd, yd)
                adjd[a] += _scaled(d_x, gd) + _scaled(dd_x, g)
                if kind == "binary":
                    adjd[b] += _scaled(d_y, gd) + _scaled(dd_y, g)
        return adj, adjd

    @staticmethod
    def _gather(values, slots):
        return np.array([values[s] for s in slots], dtype=np.float64)

    @_sweep
    def gradient_flat(self, x, n_inputs):
        return self.vjp(x.ravel(), (1.0,))[1]

    # Each sweep takes the input/output lists before it starts (see _forward).

    @_sweep
    def forward(self, x):
        self._live()
        snap = self._snapshot()
        v, _ = self._forward(x, None, snap)
        return self._gather(v, snap[7])

    @_sweep
    def jvp(self, x, xd):
        self._live()
        snap = self._snapshot()
        v, vd = self._forward(x, xd, snap)
        return self._gather(v, snap[7]), self._gather(vd, snap[7])

    @_sweep
    def vjp(self, x, u):
        self._live()
        snap, val = self._snapshot(), self.val
        v = val if x is None else self._forward(x, None, snap)[0]
        adj, _ = self._reverse(v, u, None, snap)
        return self._gather(v, snap[7]), self._gather(adj, snap[6])

    @_sweep
    def hvp(self, x, xd, u):
        self._live()
        snap = self._snapshot()
        v, vd = self._forward(x, xd, snap)
        adj, adjd = self._reverse(v, u, vd, snap)
        return self._gather(v, snap[7]), self._gather(adj, snap[6]), self._gather(adjd, snap[6])

    # ---- vector and batched sweeps: loops over the one-direction sweeps ----

    @_sweep
    def jvp_vec(self, x, xd):
        self._live()
        v, _ = self._forward(x)
        ys = [self.jvp(x, row)[1] for row in xd]
        return self._gather(v, self.outputs), np.array(ys).reshape(len(xd), self.n_outputs)

    @_sweep
    def vjp_vec(self, x, u):
        self._live()
        v = self.val if x is None else self._forward(x)[0]
        rows = [self._gather(self._reverse(v, row)[0], self.inputs) for row in u]
        return self._gather(v, self.outputs), np.array(rows).reshape(len(u), self.n_inputs)

    @_sweep
    def hvp_vec(self, x, xd, u):
        self._live()
        rows = [self.hvp(x, row, u) for row in xd]
        y, xbar, _ = self.hvp(x, np.zeros(self.n_inputs), u)
        return y, xbar, np.array([r[2] for r in rows]).reshape(len(xd), self.n_inputs)

    def _each_point(self, x, sweep):
        """Apply sweep(b) to every point; a point whose guard fails is marked in bad."""
        bad = np.full(len(x), -1, dtype=np.int64)
        results = []
        for b in range(len(x)):
            try:
                results.append(sweep(b))
            except BranchError as e:
                bad[b] = e.args[0]
                results.append(None)
        return results, bad

    def _stack(self, results, i, width):
        return np.array([r[i] if r is not None else np.full(width, np.nan) for r in results]
                        ).reshape(len(results), width)

    @_sweep
    def forward_batch(self, x):
        res, bad = self._each_point(x, lambda b: (self.forward(x[b]),))
        return self._stack(res, 0, self.n_outputs), bad

    @_sweep
    def jvp_batch(self, x, xd):
        res, bad = self._each_point(x, lambda b: self.jvp(x[b], xd[b]))
        return self._stack(res, 0, self.n_outputs), self._stack(res, 1, self.n_outputs), bad

    @_sweep
    def vjp_batch(self, x, u):
        res, bad = self._each_point(x, lambda b: self.vjp(x[b], u[b]))
        return self._stack(res, 0, self.n_outputs), self._stack(res, 1, self.n_inputs), bad

    @_sweep
    def hvp_batch(self, x, xd, u):
        res, bad = self._each_point(x, lambda b: self.hvp(x[b], xd[b], u[b]))
        n, m = self.n_inputs, self.n_outputs
        return self._stack(res, 0, m), self._stack(res, 1, n), self._stack(res, 2, n), bad

    # ---- plain arrays (saving and loading) ----

    @_sweep
    def export(self):
        self._live()
        return {"op": np.array(self.op, np.uint8), "a": np.array(self.a, np.int32),
                "b": np.array(self.b, np.int32), "c": np.array(self.c, np.int32),
                "val": np.array(self.val, np.float64),
                "consts": np.array(self.consts, np.float64),
                "pool": np.array(self.pool, np.int32),
                "inputs": np.array(self.inputs, np.int32),
                "outputs": np.array(self.outputs, np.int32)}

    @classmethod
    def from_arrays(cls, a):
        """A store from arrays already checked by pyad.serialize.validate."""
        store = cls()
        store.op, store.a, store.b, store.c = (a[k].tolist() for k in ("op", "a", "b", "c"))
        store.val, store.consts = a["val"].tolist(), a["consts"].tolist()
        store.pool = a["pool"].tolist()
        store.inputs, store.outputs = a["inputs"].tolist(), a["outputs"].tolist()
        store._next = len(store.op)
        return store

    # ---- every slot's value, tangent or adjoint (teaching views, diagnostics) ----

    @_sweep
    def slot_values(self, x, xd=None):
        self._live()
        v, vd = self._forward(x, xd)
        return np.array(v), (np.array(vd) if vd is not None else None)

    @_sweep
    def slot_adjoints(self, x, u):
        self._live()
        v, _ = self._forward(x)
        adj, _ = self._reverse(v, u)
        return np.array(v), np.array(adj)

    def set_max_bytes(self, n):
        """Only the C core allocates; the Python backend has no byte budget."""
        self._live()
        raise NotImplementedError("set_max_bytes is a hook of the C backend")
