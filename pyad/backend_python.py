"""The pure-Python backend: the same tape as csrc/, in Python lists.

It is the readable twin of the C core (same layout, same sweeps, one loop and
one branch per kind) and the baseline the C core is measured against. Op codes
and kinds come from the shared primitive table (pyad.ops), and its errors are
the C core's statuses and messages (pyad.errors.status_error); the value and
derivative rules are written independently in pyad/_python_rules.py.

The tape (see ARR_CONTRACT.md): row k has an op, operands a, b, c and
first[k], the first of the slots it defines. A scalar row defines one slot; a
block row defines w consecutive slots, and `blocks` holds its width and the
stride of each operand: element i reads slot a + stride_a * i (stride 0: one
slot broadcast), and a constant operand reads consts[b + stride_const * i].
Scalar rows are swept one float at a time, block rows with one numpy
expression per row, from the same rules (the branchy ones have array twins
below).
"""
import functools
import threading
from array import array

from _thread import get_ident

import numpy as np

from . import _python_gathers as gathers
from . import ops
from . import _python_products as products
from . import _python_linalg_lu as linalg_lu
from . import _python_linalg_sym as linalg_sym
from . import _python_linalg_eig as linalg_eig
from ._python_rules import COMPARISONS, IEEE, RULES, call
from .errors import (INTERLEAVED, BranchError, TapeBusyError, TapeClosedError,
                     TapeFormatError, status_error)
from .row_buffer import RowBuffer, recording

# The special rows (_python_rules.SPECIAL), swept by the hand-written cases below.
_INPUT, _CONST, _SELECT = ops.CODE["input"], ops.CODE["constant"], ops.CODE["select"]
_GUARD_T, _GUARD_F, _AXPY = ops.CODE["guard_true"], ops.CODE["guard_false"], ops.CODE["axpy_c"]
_MAX_N, _MIN_N = ops.CODE["max_n"], ops.CODE["min_n"]
_CUSTOM = ops.CODE["custom"]
_MAX_SLOTS = 2**31 - 1
_WAIT_S = 60.0  # how long recording waits for another thread's sweeps

# Per op code: its kind, and its rule (or comparison) for the sweeps. Importing
# _python_rules has checked that every row of the registry has its rule.
_KIND = [ops.KIND[name] for name in ops.NAME]
_RULE = [RULES.get(name) for name in ops.NAME]
_CMP = [COMPARISONS.get(name) for name in ops.NAME]
# The kinds a block row may have (guards, inputs, constants, axpy_c, max_n and
# min_n stay scalar rows).
_BLOCK_KINDS = ("unary", "binary", "with_const", "compare", "compare_c")


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


# ---- the rules on arrays (block rows) ----
#
# A rule of _python_rules evaluated with the IEEE namespace works on numpy
# arrays as it does on numbers, except where its helpers branch with a Python
# `if`. Those rules get array twins here, with np.where in place of each `if`
# (the same cases, in the same order, as the helpers in _python_rules).

def _sign_of(x):
    return np.where(x > 0, 1.0, np.where(x < 0, -1.0, x))


def _max_nan(x, y):
    return np.where((x != x) | (x >= y), x, y)


def _min_nan(x, y):
    return np.where((x != x) | (x <= y), x, y)


def _tie_share(x, y):
    return np.where(x > y, 1.0, np.where(x == y, 0.5, 0.0))


def _log_or_zero(x):
    return np.where(x == 0, 0.0, np.log(x))


def _pow_d_base(x, y):
    return np.where(y == 0, 0.0, y * np.power(x, y - 1.0))


def _pow_dd_base(x, y, xd, yd):
    second = np.where((y == 0) | (y == 1), 0.0, y * (y - 1.0) * np.power(x, y - 2.0))
    cross = np.where(yd == 0, 0.0,
                     yd * (np.power(x, y - 1.0) + _pow_d_base(x, y) * _log_or_zero(x)))
    return second * xd + cross


def _pow_dd_exponent(x, y, z, xd, yd):
    lx = _log_or_zero(x)
    cross = np.where(xd == 0, 0.0, xd * (np.power(x, y - 1.0) + _pow_d_base(x, y) * lx))
    return cross + yd * z * lx * lx


def _no_second(m, x, y, z, xd, yd):
    return 0.0, 0.0


_ARRAY_TWINS = {
    "pow": (lambda m, x, y: np.power(x, y),
            lambda m, x, y, z: (_pow_d_base(x, y), z * _log_or_zero(x)),
            lambda m, x, y, z, xd, yd: (_pow_dd_base(x, y, xd, yd),
                                        _pow_dd_exponent(x, y, z, xd, yd))),
    "pow_c": (lambda m, x, y: np.power(x, y),
              lambda m, x, y, z: (_pow_d_base(x, y), 0.0),
              lambda m, x, y, z, xd, yd: (_pow_dd_base(x, y, xd, 0.0), 0.0)),
    "rpow_c": (lambda m, x, y: np.power(y, x),
               lambda m, x, y, z: (z * _log_or_zero(y), 0.0),
               lambda m, x, y, z, xd, yd: (z * _log_or_zero(y) ** 2 * xd, 0.0)),
    "maximum": (lambda m, x, y: _max_nan(x, y),
                lambda m, x, y, z: (_tie_share(x, y), _tie_share(y, x)), _no_second),
    "minimum": (lambda m, x, y: _min_nan(x, y),
                lambda m, x, y, z: (_tie_share(y, x), _tie_share(x, y)), _no_second),
    "maximum_c": (lambda m, x, y: _max_nan(x, y),
                  lambda m, x, y, z: (_tie_share(x, y), 0.0), _no_second),
    "minimum_c": (lambda m, x, y: _min_nan(x, y),
                  lambda m, x, y, z: (_tie_share(y, x), 0.0), _no_second),
    "abs": (lambda m, x, y: np.fabs(x), lambda m, x, y, z: (_sign_of(x), 0.0), _no_second),
}
_ARRAY_TWIN = [_ARRAY_TWINS.get(name) for name in ops.NAME]


def _array_rule(op):
    """The rule block rows use: the twin of a branchy rule, else the one _RULE holds
    (read at each call, the same table the scalar rows use)."""
    return _ARRAY_TWIN[op] or _RULE[op]


def _on_arrays(f, *args):
    """A rule f evaluated elementwise on arrays, IEEE semantics (inf, NaN, no exception)."""
    with np.errstate(all="ignore"):
        return f(IEEE, *args)


def _scaled_array(d, t):
    """_scaled elementwise."""
    with np.errstate(all="ignore"):
        return np.where(t == 0, 0.0, d * t)


def _elements(values, slot, stride, w):
    """The w elements a block operand reads: values[slot + stride * i]."""
    if stride == 0:
        return np.full(w, values[slot], dtype=np.float64)
    return np.array(values[slot:slot + stride * (w - 1) + 1:stride], dtype=np.float64)


def _accumulate(values, slot, stride, contrib):
    """values[slot + stride * i] += contrib[i]. A broadcast operand (stride 0) read
    one slot for every element, so it gets the sum of all their contributions; with
    a stride >= 1 the elements name distinct slots, so one slice add is exact (two
    operands of a row that overlap, x[1:] * x[:-1], are accumulated one after the other)."""
    if stride == 0:
        values[slot] += float(np.sum(contrib))
        return
    w = len(contrib)
    where = slice(slot, slot + stride * (w - 1) + 1, stride)
    values[where] = (np.array(values[where], dtype=np.float64) + contrib).tolist()


def _block_operands(kind, a, b, blk, v, consts):
    """x and y of a block row: y is an operand's elements, the constants, or 0."""
    w, sa, sb, _, sk = blk
    x = _elements(v, a, sa, w)
    if kind in ("binary", "compare"):
        return x, _elements(v, b, sb, w)
    if kind in ("with_const", "compare_c"):
        return x, _elements(consts, b, sk, w)
    return x, np.zeros(w)


def _block_value(op, x, y):
    cmp = _CMP[op]
    if cmp:
        return cmp(x, y).astype(np.float64)
    z = _on_arrays(_array_rule(op)[0], x, y)
    return np.broadcast_to(np.asarray(z, dtype=np.float64), x.shape)


def _affine_stride(idx):
    """s if idx[i] == idx[0] + s * i for every i with s >= 0, else None."""
    idx = np.asarray(idx, dtype=np.int64).ravel()
    s = int(idx[1] - idx[0])
    if s < 0 or not np.array_equal(idx, idx[0] + s * np.arange(idx.size)):
        return None
    return s


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


# ---- one block row in a sweep: one numpy expression per row ----

@np.errstate(all="ignore")  # IEEE, as the scalar rows and the C core: inf - inf is NaN
def _forward_block(op, a, b, c, first, blk, v, vd, consts):
    """Values (and tangents) of the w slots a block row defines."""
    w = blk[0]
    out = slice(first, first + w)
    if op == _SELECT:
        _, s_cond, s_then, s_else, _ = blk
        pick = _elements(v, a, s_cond, w) != 0
        v[out] = np.where(pick, _elements(v, b, s_then, w), _elements(v, c, s_else, w)).tolist()
        if vd is not None:
            vd[out] = np.where(pick, _elements(vd, b, s_then, w), _elements(vd, c, s_else, w)).tolist()
        return
    kind = _KIND[op]
    x, y = _block_operands(kind, a, b, blk, v, consts)
    z = _block_value(op, x, y)
    v[out] = z.tolist()
    if vd is None or _CMP[op]:
        return  # a comparison's tangent is zero
    d_x, d_y = _on_arrays(_array_rule(op)[1], x, y, z)
    t = _scaled_array(d_x, _elements(vd, a, blk[1], w))
    if kind == "binary":
        t = t + _scaled_array(d_y, _elements(vd, b, blk[2], w))
    vd[out] = t.tolist()


@np.errstate(all="ignore")
def _reverse_block(op, a, b, c, first, blk, v, adj, vd, adjd, consts):
    """Move the adjoints (and their tangents) of a block row's slots to its operands."""
    w = blk[0]
    g = np.array(adj[first:first + w], dtype=np.float64)
    gd = np.array(adjd[first:first + w], dtype=np.float64) if adjd is not None else None
    if op == _SELECT:
        _, s_cond, s_then, s_else, _ = blk
        pick = _elements(v, a, s_cond, w) != 0
        _accumulate(adj, b, s_then, np.where(pick, g, 0.0))
        _accumulate(adj, c, s_else, np.where(pick, 0.0, g))
        if adjd is not None:
            _accumulate(adjd, b, s_then, np.where(pick, gd, 0.0))
            _accumulate(adjd, c, s_else, np.where(pick, 0.0, gd))
        return
    kind = _KIND[op]
    if kind not in ("unary", "binary", "with_const"):
        return  # comparisons pass nothing back
    x, y = _block_operands(kind, a, b, blk, v, consts)
    z = np.array(v[first:first + w], dtype=np.float64)
    _, partials, second = _array_rule(op)
    d_x, d_y = _on_arrays(partials, x, y, z)
    _accumulate(adj, a, blk[1], _scaled_array(d_x, g))
    if kind == "binary":
        _accumulate(adj, b, blk[2], _scaled_array(d_y, g))
    if adjd is None:
        return
    xd = _elements(vd, a, blk[1], w)
    yd = _elements(vd, b, blk[2], w) if kind == "binary" else np.zeros(w)
    dd_x, dd_y = _on_arrays(second, x, y, z, xd, yd)
    _accumulate(adjd, a, blk[1], _scaled_array(d_x, gd) + _scaled_array(dd_x, g))
    if kind == "binary":
        _accumulate(adjd, b, blk[2], _scaled_array(d_y, gd) + _scaled_array(dd_y, g))


def _source_block(op, a, b, first, w, x, xd, v, vd, consts):
    """An input block copies inputs a .. a + w - 1 (and their tangents), a constant
    block consts[b:b + w] (tangent zero). Neither passes anything back: an input's
    adjoint is read from its slot after the reverse sweep."""
    out = slice(first, first + w)
    if op == _INPUT:
        v[out] = [float(e) for e in x[a:a + w]]
        if vd is not None:
            vd[out] = [float(e) for e in xd[a:a + w]]
    else:
        v[out] = consts[b:b + w]
        if vd is not None:
            vd[out] = [0.0] * w


# ---- custom rows: the user's rules, through pyad/_custom_rows.py ----

def _column(values, start, n):
    return np.array(values[start:start + n], dtype=np.float64).reshape(n, 1)


def _forward_custom(row, a, first, v, vd):
    """Values (and tangents) of a custom row's row.n_out slots."""
    x = _column(v, a, row.n_in)
    out = slice(first, first + row.n_out)
    if vd is None:
        v[out] = row.value(x[:, 0]).tolist()
        return
    z, zd = row.tangents(x[:, 0], _column(vd, a, row.n_in))
    v[out], vd[out] = z.tolist(), zd[:, 0].tolist()


def _reverse_custom(row, a, first, v, adj, vd, adjd):
    """Move a custom row's adjoints (and their tangents) to its operands: the
    twin of csrc/custom.c and _custom_rows.run_call."""
    x = _column(v, a, row.n_in)[:, 0]
    g = _column(adj, first, row.n_out)
    ins = slice(a, a + row.n_in)
    if np.any(g != 0):
        adj[ins] = (np.array(adj[ins]) + row.cotangents(x, g)[:, 0]).tolist()
    if adjd is None:
        return
    gd = _column(adjd, first, row.n_out)
    d = np.zeros(row.n_in)
    if np.any(gd != 0):
        d += row.cotangents(x, gd)[:, 0]
    if np.any(g != 0):
        d += row.second(x, _column(vd, a, row.n_in)[:, 0], g[:, 0])
    adjd[ins] = (np.array(adjd[ins]) + d).tolist()


# ---- activity: rows no differentiated input reaches (the twin of csrc/activity.c) ----

PASSIVE_ROW, PASSIVE_A, PASSIVE_B = 1, 2, 4


def _reaches(act, slots):
    return any(act[s] for s in slots)


def _row_reached(op, a, b, c, blk, act, pool):
    """(whether an active slot feeds row op's derivative, product factor marks)."""
    kind = _KIND[op]
    if kind in ("compare", "compare_c") or op in (_CONST, _GUARD_T, _GUARD_F):
        return False, 0
    if op in products.PRODUCT_OPS:
        _, m, k, n, _ = blk
        on_a = not products.const_a(op) and _reaches(act, range(a, a + m * k))
        on_b = not products.const_b(op) and _reaches(act, range(b, b + k * n))
        return on_a or on_b, (0 if on_a else PASSIVE_A) | (0 if on_b else PASSIVE_B)
    if op in linalg_lu.LU_OPS:
        return linalg_lu.reaches(act, a, b, op, blk), 0
    if op in linalg_sym.LINALG_OPS:
        return linalg_sym.reached(op, a, b, blk, act)
    if op == gathers.GATHER:
        return _reaches(act, pool[a:a + blk[0]]), 0
    if op == _CUSTOM:  # the b slots from a
        return _reaches(act, range(a, a + b)), 0
    if op in gathers.REDUCE or op in gathers.SCAN:
        w, sa, sb = blk[0], blk[1], blk[2]
        m = w if op in gathers.REDUCE else w // max(b, 1)
        return _reaches(act, (a + sa * i + sb * j for i in range(m) for j in range(b))), 0
    w, sa, sb, sc = blk[:4] if blk else (1, 0, 0, 0)
    if op in (_MAX_N, _MIN_N):
        return _reaches(act, pool[c:c + b]), 0
    if op == _SELECT:  # the condition carries no derivative
        return _reaches(act, (b + sb * e for e in range(w))) or \
            _reaches(act, (c + sc * e for e in range(w))), 0
    on = _reaches(act, (a + sa * e for e in range(w)))
    if kind == "binary" or op == _AXPY:
        on = on or _reaches(act, (b + sb * e for e in range(w)))
    return on, 0


def passive_marks(op, A, B, C, F, blocks, pool, n_slots, active):
    """{row: marks} for the rows no input with a nonzero `active` entry reaches
    (PASSIVE_ROW) and the product rows with a passive factor (PASSIVE_A/_B)."""
    act = bytearray(n_slots)
    marks = {}
    for k, o in enumerate(op):
        blk, f = blocks.get(k), F[k]
        w = blk[0] if blk else 1
        if o == _INPUT:
            for e in range(w):
                act[f + e] = 1 if active[A[k] + e] else 0
            on, extra = _reaches(act, range(f, f + w)), 0
        else:
            on, extra = _row_reached(o, A[k], B[k], C[k], blk, act, pool)
            act[f:f + w] = bytes([on]) * w
        if not on or extra:
            marks[k] = extra if on else PASSIVE_ROW
    return marks


# ---- checking imported arrays (the twin of csrc's pyad_validate) ----

def _bad_tape(why):
    return TapeFormatError(f"not a valid pyad tape: {why}")


def _widths(n_ops, blocks, op):
    """The width of every row, from the blocks table (row, width, 4 strides)."""
    if blocks.size % 6:
        raise _bad_tape(f"blocks holds {blocks.size} numbers, not a multiple of 6")
    table = blocks.reshape(-1, 6).astype(np.int64)
    rows = table[:, 0]
    if rows.size and (rows[0] < 0 or rows[-1] >= n_ops or np.any(np.diff(rows) <= 0)):
        raise _bad_tape("the blocks table names rows out of order or out of range")
    # gathers, reductions, scans and products are block rows at any width, the others from 2
    always = (list(gathers.ROW_OPS) + list(products.PRODUCT_OPS) + list(linalg_lu.LU_OPS)
              + list(linalg_sym.LINALG_OPS))
    least = np.where(np.isin(op[rows], always), 1, 2)
    if np.any(table[:, 1] < least) or np.any(table[:, 2:] < 0):
        raise _bad_tape("a block row has width < 2 (< 1 for gathers, reductions, scans and "
                        "products) or a negative stride")
    width = np.ones(n_ops, dtype=np.int64)
    width[rows] = table[:, 1]
    return width, {int(r[0]): tuple(int(e) for e in r[1:]) for r in table}


def _operand_ok(slot, stride, w, limit):
    """Every element slot + stride * i (i < w) lies in 0 .. limit - 1 (both ends checked)."""
    return 0 <= slot < limit and slot + stride * (w - 1) < limit


def check_arrays(a):
    """Raise TapeFormatError unless the exported arrays `a` form a valid tape."""
    n_ops = a["op"].size
    if any(a[k].size != n_ops for k in ("a", "b", "c", "first")):
        raise _bad_tape("the row columns op, a, b, c, first differ in length")
    if np.any(a["op"] >= len(ops.NAME)):
        raise _bad_tape("an op code is out of range")
    width, blocks = _widths(n_ops, np.asarray(a["blocks"]), np.asarray(a["op"]))
    starts = np.concatenate([[0], np.cumsum(width)[:-1]]) if n_ops else width
    if not np.array_equal(a["first"].astype(np.int64), starts) or width.sum() != a["val"].size:
        raise _bad_tape("first[] is not consecutive by the rows' widths, or val does not "
                        "hold one value per slot")
    n_consts, n_inputs, n_slots = a["consts"].size, a["inputs"].size, a["val"].size
    inputs, pool = a["inputs"].tolist(), a["pool"].tolist()
    columns = (a[name].tolist() for name in ("op", "a", "b", "c", "first"))
    for k, (op, x, y, z, s) in enumerate(zip(*columns)):
        w, sa, sb, sc, sk = blocks.get(k, (1, 0, 0, 0, 0))
        kind, name = _KIND[op], ops.NAME[op]
        if op in products.PRODUCT_OPS:
            if not products.row_ok(op, x, y, z, blocks.get(k), s, n_consts):
                raise _bad_tape(f"row {k} ({name}) has an operand or constant index out of "
                                f"range, or a bad shape")
            continue
        if op in linalg_lu.LU_OPS:
            if not linalg_lu.row_ok(op, x, y, z, blocks.get(k), s):
                raise _bad_tape(f"row {k} ({name}) has an operand index out of range, or a "
                                f"bad shape")
            continue
        if op in linalg_sym.LINALG_OPS:
            if not linalg_sym.row_ok(op, x, y, z, blocks.get(k), s):
                raise _bad_tape(f"row {k} ({name}) has an operand index out of range, or a "
                                "bad shape")
            continue
        if w > 1 and kind not in _BLOCK_KINDS and op not in (_SELECT, _INPUT, _CONST) \
                and op not in gathers.ROW_OPS:
            raise _bad_tape(f"row {k} ({name}) cannot be a block row")
        if op in gathers.ROW_OPS:  # always block rows
            ok = k in blocks and gathers.row_ok(op, x, y, z, blocks[k], s, pool)
        elif kind == "unary":
            ok = _operand_ok(x, sa, w, s)
        elif kind in ("binary", "compare"):
            ok = _operand_ok(x, sa, w, s) and _operand_ok(y, sb, w, s)
        elif kind in ("with_const", "compare_c"):
            ok = _operand_ok(x, sa, w, s) and _operand_ok(y, sk, w, n_consts)
        elif op == _INPUT:  # inputs x .. x + w - 1, in order, each naming its slot
            ok = (_operand_ok(x, 1, w, n_inputs) and (sa, sb, sc, sk) == ((1 if w > 1 else 0), 0, 0, 0)
                  and inputs[x:x + w] == list(range(s, s + w)))
        elif op == _CONST:  # consts[y:y + w]
            ok = (_operand_ok(y, sk, w, n_consts) and (sa, sb, sc) == (0, 0, 0)
                  and (w == 1 or sk == 1))
        elif op == _SELECT:
            ok = all(_operand_ok(e, st, w, s) for e, st in ((x, sa), (y, sb), (z, sc)))
        elif op in (_GUARD_T, _GUARD_F):
            ok = 0 <= x < s
        elif op == _AXPY:
            ok = 0 <= x < s and 0 <= y < s and 0 <= z < n_consts
        elif op in (_MAX_N, _MIN_N):
            ok = (y >= 1 and 0 <= z and z + y <= len(pool) and pool[z] == x
                  and all(0 <= e < s for e in pool[z:z + y]))
        else:
            ok = False
        if not ok:
            raise _bad_tape(f"row {k} ({name}) has an operand or constant index out of range")
    # each input row's elements name their inputs, which name them back (checked
    # above): as many input elements as inputs makes that one to one
    input_elements = int(width[a["op"] == _INPUT].sum()) if n_ops else 0
    if input_elements != n_inputs:
        raise _bad_tape(f"{n_inputs} inputs, but {input_elements} input row elements")
    if any(not 0 <= s < n_slots for s in a["outputs"].tolist()):
        raise _bad_tape("an output names no slot")


class PyStore(RowBuffer):
    backend = "python"

    def __init__(self):
        self.op, self.a, self.b, self.c = [], [], [], []
        self.first = []      # first slot of each row
        self.blocks = {}     # block row -> (width, stride_a, stride_b, stride_c, stride_const)
        self.val = []        # recorded values, one per slot
        self.consts = []
        self.pool = []       # operand lists of max_n / min_n
        self.inputs = []     # slot of each input
        self.outputs = []    # slot of each output
        self.marks = {}      # activity marks of rows (set_active_inputs)
        self.custom_rows = []  # the pyad.custom calls recorded, by their rule number (c)
        self.max_ops = _MAX_SLOTS  # the limit counts slots (slot numbers are int32)
        self.closed = False
        # Rows buffered by the active types (in RowStore), as the C store buffers them.
        self._gate = threading.Condition()  # sweeps running vs. recording (see _records)
        self._sweeps = 0
        self._sweepers = {}  # thread -> sweeps it runs (a sweep never waits for itself)
        self._next = 0       # the next free slot (the row buffer numbers slots with it)
        self._owner = get_ident()  # the thread recording scalar ops (see scalar.claim)

    def close(self):
        # Sweeps hold their own references to the lists, so one that another
        # thread is running finishes; every later call raises TapeClosedError.
        self.closed = True
        self.op, self.a, self.b, self.c, self.first, self.val = [], [], [], [], [], []
        self.blocks = {}
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
        if self._pending != self._next - len(self.val):
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
        """Rows (a block row counts once)."""
        self._live()
        return len(self.op)

    @property
    def n_slots(self):
        self._live()
        return len(self.val)

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
        """What the same tape occupies in the C layout (the lists cost more): per row
        op, a, b, c, first; per slot its value; per block row its entry in blocks."""
        self._live()
        return (len(self.op) * 17 + len(self.val) * 8 + len(self.blocks) * 24
                + len(self.consts) * 8
                + (len(self.inputs) + len(self.outputs) + len(self.pool)) * 4)

    def shrink(self):
        self._live()

    @_records
    def set_max_ops(self, n):
        self._live()
        if n < len(self.val) or n > _MAX_SLOTS:
            raise status_error("PYAD_EINVAL")
        self.max_ops = n

    # ---- recording ----

    def _append(self, op, a, b, c, value):
        """A scalar row: one new slot."""
        if len(self.val) >= self.max_ops:
            self._next = len(self.val)
            raise status_error("PYAD_ETOOBIG")
        slot = len(self.val)
        self.op.append(op)
        self.a.append(a)
        self.b.append(b)
        self.c.append(c)
        self.first.append(slot)
        self.val.append(value)
        self._next = slot + 1
        return slot

    def _append_block(self, op, a, b, c, strides, values):
        """A block row: len(values) new slots; strides = (a, b, c, const)."""
        slot = len(self.val)
        self.blocks[len(self.op)] = (len(values), *strides)
        self.op.append(op)
        self.a.append(int(a))
        self.b.append(int(b))
        self.c.append(int(c))
        self.first.append(slot)
        self.val.extend(values.tolist())
        self._next = len(self.val)
        return slot

    def _slot(self, i):
        i = int(i)
        if not 0 <= i < len(self.val):
            raise status_error("PYAD_EINDEX")
        return i

    def _row(self, k):
        k = int(k)
        if not 0 <= k < len(self.op):
            raise IndexError(f"row {k} is not a row of this tape ({len(self.op)} rows)")
        return k

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
        return self._select(cond, a, b)

    def _select(self, cond, a, b):
        cond, a, b = self._slot(cond), self._slot(a), self._slot(b)
        value = self.val[a] if self.val[cond] != 0 else self.val[b]
        return self._append(_SELECT, cond, a, b, value)

    @_records
    def guard(self, cond, expected):
        self._live()
        cond = self._slot(cond)
        return self._append(_GUARD_T if expected else _GUARD_F, cond, 0, 0, self.val[cond])

    def value(self, slot):
        self._live()
        return self.val[self._slot(slot)]

    # Vectorized recording: results are consecutive slots. When every operand
    # index array is affine (a[i] = a0 + s*i, s >= 0) the call records one block
    # row, else one row per element. As in the C core, a call is refused whole:
    # sizes and indices are checked first.

    def _room(self, n, *slot_arrays):
        self._live()
        if len(self.val) + n > self.max_ops:
            raise status_error("PYAD_ETOOBIG")
        for arr in slot_arrays:
            arr = np.asarray(arr)
            if arr.size and (arr.min() < 0 or arr.max() >= len(self.val)):
                raise status_error("PYAD_EINDEX")
        return len(self.val)

    @_records
    def input_n(self, values):
        """One block row of inputs when there are two or more (stride 1 over x)."""
        first = self._room(values.size)
        if values.size < 2:
            for v in values.tolist():
                self._append(_INPUT, len(self.inputs), 0, 0, float(v))
                self.inputs.append(len(self.val) - 1)
            return first
        number = len(self.inputs)
        self._append_block(_INPUT, number, 0, 0, (1, 0, 0, 0), np.asarray(values, np.float64))
        self.inputs.extend(range(first, first + values.size))
        return first

    def _block_operands(self, *index_arrays):
        """(origin, stride) of each operand of a block row (n >= 2 elements): an
        affine index array is read in place; any other is first copied into
        consecutive slots by one gather row (once per distinct array, so x.T * x.T
        gathers once). Sizes and indices are checked before anything is recorded."""
        n = index_arrays[0].size
        strides = [_affine_stride(idx) for idx in index_arrays]
        to_gather = []
        for idx, stride in zip(index_arrays, strides):
            if stride is None and not any(np.array_equal(idx, g) for g in to_gather):
                to_gather.append(idx)
        self._room(n * (1 + len(to_gather)), *index_arrays)
        gathered = [(idx, self._append_gather(idx)) for idx in to_gather]
        out = []
        for idx, stride in zip(index_arrays, strides):
            if stride is not None:
                out.append((int(idx[0]), stride))
            else:
                out.append((next(slot for g, slot in gathered if np.array_equal(idx, g)), 1))
        return out

    def _append_gather(self, idx):
        """A gather row: slots idx copied into len(idx) new consecutive slots."""
        offset = len(self.pool)
        self.pool.extend(int(i) for i in np.asarray(idx).ravel().tolist())
        blk = (idx.size, 0, 0, 0, 0)
        values = gathers.row_values(gathers.GATHER, offset, 0, blk, self.val, self.pool)
        return self._append_block(gathers.GATHER, offset, 0, 0, blk[1:], values)

    @_records
    def gather(self, idx):
        """One gather row of the slots idx (n >= 1); its first slot."""
        idx = np.asarray(idx, dtype=np.int32).ravel()
        if idx.size < 1:
            raise status_error("PYAD_EINVAL")
        self._room(idx.size, idx)
        return self._append_gather(idx)

    @_records
    def rec1_n(self, op, a):
        if a.size < 2:
            first = self._room(a.size, a)
            for i in a.tolist():
                self._rec1(op, i)
            return first
        (oa, sa), = self._block_operands(a)
        blk = (a.size, sa, 0, 0, 0)
        x, y = _block_operands(_KIND[op], oa, 0, blk, self.val, self.consts)
        return self._append_block(op, oa, 0, 0, blk[1:], _block_value(op, x, y))

    @_records
    def rec2_n(self, op, a, b):
        if a.size < 2:
            first = self._room(a.size, a, b)
            for i, j in zip(a.tolist(), b.tolist()):
                self._rec2(op, i, j)
            return first
        (oa, sa), (ob, sb) = self._block_operands(a, b)
        blk = (a.size, sa, sb, 0, 0)
        x, y = _block_operands(_KIND[op], oa, ob, blk, self.val, self.consts)
        return self._append_block(op, oa, ob, 0, blk[1:], _block_value(op, x, y))

    @_records
    def rec_c_n(self, op, a, c):
        if a.size < 2:
            first = self._room(a.size, a)
            cs = c.tolist() if c.size == a.size else [float(c[0])] * a.size
            for i, v in zip(a.tolist(), cs):
                self._rec_c(op, i, v)
            return first
        (oa, sa), = self._block_operands(a)
        per_element = 1 if c.size == a.size else 0
        base = len(self.consts)
        self.consts.extend(np.asarray(c[:a.size if per_element else 1], dtype=np.float64).tolist())
        blk = (a.size, sa, 0, 0, per_element)
        x, y = _block_operands(_KIND[op], oa, base, blk, self.val, self.consts)
        return self._append_block(op, oa, base, 0, blk[1:], _block_value(op, x, y))

    @_records
    def const_n(self, values):
        first = self._room(values.size)
        if values.size < 2:
            for v in values.tolist():
                self.consts.append(float(v))
                self._append(_CONST, 0, len(self.consts) - 1, 0, float(v))
            return first
        base = len(self.consts)
        values = np.asarray(values, np.float64)
        self.consts.extend(values.tolist())
        return self._append_block(_CONST, 0, base, 0, (0, 0, 0, 1), values)

    def _layout_row(self, op, x, width):
        """One reduction / scan row of op over the (m, k) slots x, read in place
        where x is an affine layout, else after a gather; its first slot."""
        m, k = x.shape
        strides = gathers.affine_layout(x)
        self._room(width + (0 if strides else x.size), x)
        origin = int(x[0, 0])
        if strides is None:
            origin, strides = self._append_gather(x.ravel()), (k, 1)
        blk = (width, *strides, 0, 0)
        values = gathers.row_values(op, origin, k, blk, self.val, self.pool)
        return self._append_block(op, origin, k, 0, blk[1:], values)

    @_records
    def reduce(self, op, x):
        """Reduce each row of the (m, k) slot matrix x with the binary op (add, mul,
        maximum, minimum): one reduce_* row (after a gather where x is not an affine
        layout), as the C core does; k = 1 records nothing."""
        m, k = x.shape
        if op not in gathers.REDUCE_OF or k < 1:
            raise status_error("PYAD_EINVAL")
        if m == 0:
            return np.zeros(0, dtype=np.int32)
        if k == 1:
            self._room(0, x)
            return x[:, 0].astype(np.int32)
        first = self._layout_row(gathers.REDUCE_OF[op], x, m)
        return np.arange(first, first + m, dtype=np.int32)

    @_records
    def scan(self, op, x):
        """Running sums (add) or products (mul) along each row of the (m, k) slots x:
        one cumsum / cumprod row of m * k slots; its first slot."""
        if op not in gathers.SCAN_OF or x.size < 1:
            raise status_error("PYAD_EINVAL")
        return self._layout_row(gathers.SCAN_OF[op], x, x.size)

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
    def product(self, a, b, m, k, n, flags, w=None):
        """One product row z (m x n) = A @ B (pyad_rec_product's flags and checks)."""
        self._live()
        ca, cb = bool(flags & products.CONST_A), bool(flags & products.CONST_B)
        if (flags & ~15 or (ca and cb) or (ca and flags & products.TRANS_A)
                or (cb and flags & products.TRANS_B) or ((ca or cb) and w is None)
                or min(m, k, n) < 1 or max(m, k, n) > _MAX_SLOTS):
            raise status_error("PYAD_EINVAL")
        if max(m * k, k * n, m * n) > _MAX_SLOTS:
            raise status_error("PYAD_ETOOBIG")
        self._room(m * n)
        n_slots = len(self.val)
        if (not ca and not 0 <= a <= n_slots - m * k) or (not cb and not 0 <= b <= n_slots - k * n):
            raise status_error("PYAD_EINDEX")
        op = products.RMATMUL_C if ca else products.MATMUL_C if cb else products.MATMUL
        if ca or cb:
            base = len(self.consts)
            self.consts.extend(np.asarray(w, np.float64).ravel().tolist())
            a, b = (base, b) if ca else (a, base)
        blk = (m * n, m, k, n, flags & 3)
        r = products.Row(op, a, b, n_slots, blk)
        values = (r.A(self.val, self.consts) @ r.B(self.val, self.consts)).ravel()
        return self._append_block(op, a, b, 0, blk[1:], values)

    def rec_view(self, op, shape, operands, c=None):
        """The C store's rec_view: operands as views (first slot, strides over
        shape) or flat index arrays. Each view becomes its index array here, so
        this store stays an independent check of C's reading of views."""
        flat = [x if isinstance(x, np.ndarray) else self._view_slots(shape, *x)
                for x in operands]
        kind = _KIND[op]
        if kind in ("with_const", "compare_c"):
            return self.rec_c_n(op, *flat, c)
        if kind == "unary":
            return self.rec1_n(op, *flat)
        if kind in ("binary", "compare"):
            return self.rec2_n(op, *flat)
        if op == ops.CODE["select"]:
            return self.select_n(*flat)
        raise status_error("PYAD_EINVAL")

    def _view_slots(self, shape, first, strides):
        """The slots a view reads, row-major over shape, checked against the tape."""
        idx = np.full(shape, first, dtype=np.int64)
        for d, (n, s) in enumerate(zip(shape, strides)):
            idx += (s * np.arange(n, dtype=np.int64)).reshape((n,) + (1,) * (len(shape) - d - 1))
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_slots):
            raise status_error("PYAD_EINDEX")
        return idx.ravel().astype(np.int32)

    def reduce_view(self, op, first, m, k, sm, sk):
        """The C store's reduce_view: the m x k slots first + sm * i + sk * j."""
        if m < 1 or k < 2 or sm < 0 or sk < 0:
            raise status_error("PYAD_EINVAL")
        return int(self.reduce(op, self._view_slots((m, k), first, (sm, sk)).reshape(m, k))[0])

    @_records
    def lu(self, op, a, b, n, m):
        """One LU-family row (pyad_rec_lu's checks): its first slot."""
        self._live()
        if op not in linalg_lu.LU_OPS or (op != linalg_lu.SOLVE and (m != 0 or b != 0)):
            raise status_error("PYAD_EINVAL")
        w = linalg_lu.width(op, n, m)
        if w < 0:
            bad = n < 1 or m < 0 or (op == linalg_lu.SOLVE and m < 1)
            raise status_error("PYAD_EINVAL" if bad else "PYAD_ETOOBIG")
        self._room(w)
        n_slots = len(self.val)
        if not 0 <= a <= n_slots - n * n or (op == linalg_lu.SOLVE and not 0 <= b <= n_slots - n * m):
            raise status_error("PYAD_EINDEX")
        r = linalg_lu.Row(op, a, b, n_slots, (w, n, m, 0, 0))
        B = r.B(self.val) if op == linalg_lu.SOLVE else None
        values = linalg_lu.record_values(op, r.A(self.val), B, n, m)
        return self._append_block(op, a, b if op == linalg_lu.SOLVE else 0, 0, (n, m, 0, 0),
                                  values)

    @_records
    def linalg_sym(self, name, a, b, n, m, count, flags):
        """One cholesky / solve_triangular row (pyad_rec_cholesky's and
        pyad_rec_solve_triangular's checks): its first slot; LinAlgError (nothing
        recorded) where numpy's / scipy's would raise."""
        self._live()
        if name == "eigh":
            return self._eigh(a, n, count, flags)
        op = linalg_sym.CHOLESKY if name == "cholesky" else linalg_sym.SOLVE_TRIANGULAR
        if min(n, m, count) < 1 or flags & ~7 or (op == linalg_sym.CHOLESKY and (m != n or flags)):
            raise status_error("PYAD_EINVAL")
        if count * n * max(n, m) > _MAX_SLOTS:
            raise status_error("PYAD_ETOOBIG")
        self._room(count * n * m)
        n_slots = len(self.val)
        if not 0 <= a <= n_slots - count * n * n or (
                op != linalg_sym.CHOLESKY and not 0 <= b <= n_slots - count * n * m):
            raise status_error("PYAD_EINDEX")
        b = b if op != linalg_sym.CHOLESKY else 0
        blk = (count * n * m, n, m, count, flags)
        try:
            values = linalg_sym.values_of(linalg_sym.Row(op, a, b, n_slots, blk), self.val)
        except linalg_sym.RowFailed:
            raise status_error("PYAD_ELINALG") from None
        return self._append_block(op, a, b, 0, blk[1:], values.ravel())

    def _eigh(self, a, n, count, flags):
        """One eigh row (pyad_rec_eigh's checks; pyad/_python_linalg_eig.py)."""
        if min(n, count) < 1 or flags & ~3:
            raise status_error("PYAD_EINVAL")
        w = linalg_eig.width(n, count)
        if n > 46340 or w > _MAX_SLOTS:
            raise status_error("PYAD_ETOOBIG")
        self._room(w)
        if not 0 <= a <= len(self.val) - count * n * n:
            raise status_error("PYAD_EINDEX")
        blk = (w, n, n, count, flags)
        try:
            values = linalg_eig.values_of(a, len(self.val), blk, self.val)
        except linalg_eig.ValueFailed:
            raise status_error("PYAD_ELINALG") from None
        return self._append_block(linalg_eig.EIGH, a, 0, 0, blk[1:], values)

    @_records
    def select_n(self, cond, a, b):
        if a.size < 2:
            first = self._room(a.size, cond, a, b)
            for k, i, j in zip(cond.tolist(), a.tolist(), b.tolist()):
                self._select(k, i, j)
            return first
        (oc, sc), (oa, sa), (ob, sb) = self._block_operands(cond, a, b)
        w = a.size
        pick = _elements(self.val, oc, sc, w) != 0
        values = np.where(pick, _elements(self.val, oa, sa, w), _elements(self.val, ob, sb, w))
        return self._append_block(_SELECT, oc, oa, ob, (sc, sa, sb, 0), values)

    @_records
    def custom(self, a, row, values):
        """One custom row (pyad.custom): row's rules applied to the row.n_in slots
        from a; its row.n_out results (values, computed by the caller) the new slots."""
        self._room(row.n_out, np.arange(a, a + row.n_in))
        row.tape_rows = self.custom_rows
        self.custom_rows.append(row)
        return self._append_block(_CUSTOM, a, row.n_in, len(self.custom_rows) - 1,
                                  (0, 0, 0, 0), np.asarray(values, dtype=np.float64))

    @_records
    def output_n(self, slots):
        self._live()
        slots = [self._slot(s) for s in slots.tolist()]
        self.outputs.extend(slots)

    def values(self, slots):
        self._live()
        return np.array([self.val[self._slot(s)] for s in slots.tolist()], dtype=np.float64)

    def op_at(self, k):
        """The op code of row k (a guard's row, as BranchError names it)."""
        self._live()
        return self.op[self._row(k)]

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
        return (self.op, self.a, self.b, self.c, self.first, self.blocks, len(self.val),
                self.consts, self.pool, self.marks, self.custom_rows, self.inputs, self.outputs)

    def _forward(self, x, xd=None, snap=None):
        """Values (and tangents along xd) of every slot at inputs x."""
        (ops_, A, B, Cs, F, blocks, n_slots, consts, pool, marks, custom_rows,
         _, _) = snap or self._snapshot()
        v = [0.0] * n_slots
        vd = [0.0] * n_slots if xd is not None else None
        for k in range(len(ops_)):
            op, a, b, c, s = ops_[k], A[k], B[k], Cs[k], F[k]
            # a passive row gets its value only; its tangents stay zero
            rvd = None if marks.get(k, 0) & PASSIVE_ROW else vd
            if op in products.PRODUCT_OPS:
                products.forward(op, a, b, s, blocks[k], v, rvd, consts)
                continue
            if op == _CUSTOM:
                _forward_custom(custom_rows[c], a, s, v, rvd)
                continue
            if op in linalg_lu.LU_OPS:
                linalg_lu.forward(k, op, a, b, s, blocks[k], v, rvd)
                continue
            if op in linalg_sym.LINALG_OPS:
                try:
                    linalg_sym.forward(op, a, b, s, blocks[k], v, rvd)
                except linalg_sym.RowFailed:
                    raise BranchError(k) from None  # Python names the row and the point
                continue
            if k in blocks:
                if op == _INPUT or op == _CONST:
                    _source_block(op, a, b, s, blocks[k][0], x, xd, v, rvd, consts)
                elif op in gathers.ROW_OPS:
                    gathers.forward(op, a, b, s, blocks[k], v, rvd, pool)
                else:
                    _forward_block(op, a, b, c, s, blocks[k], v, rvd, consts)
                continue
            kind = _KIND[op]
            if op == _INPUT:
                v[s] = float(x[a])
                if rvd is not None:
                    rvd[s] = float(xd[a])
                continue
            if op == _CONST:
                v[s] = consts[b]
                continue
            if op == _SELECT:
                pick = b if v[a] != 0 else c
                v[s] = v[pick]
                if rvd is not None:
                    rvd[s] = rvd[pick]
                continue
            if op == _AXPY:
                v[s] = v[a] + consts[c] * v[b]
                if rvd is not None:
                    rvd[s] = rvd[a] + _scaled(consts[c], rvd[b])
                continue
            if op in (_GUARD_T, _GUARD_F):
                v[s] = v[a]
                if (v[s] != 0) != (op == _GUARD_T):
                    raise BranchError(k)
                continue
            if op in (_MAX_N, _MIN_N):
                operands = pool[c:c + b]
                vals = [v[i] for i in operands]
                v[s] = m = _extremum(vals, op == _MAX_N)
                if rvd is not None:
                    ties = _ties(vals, m)
                    rvd[s] = sum(rvd[operands[i]] for i in ties) / len(ties)
                continue
            xv = v[a]
            yv = v[b] if kind in ("binary", "compare") else (
                consts[b] if kind in ("with_const", "compare_c") else 0.0)
            if _CMP[op]:
                v[s] = 1.0 if _CMP[op](xv, yv) else 0.0
                continue
            value, partials, _ = _RULE[op]
            z = v[s] = call(value, xv, yv)
            if rvd is not None:
                d_x, d_y = call(partials, xv, yv, z)
                t = _scaled(d_x, rvd[a])
                if kind == "binary":
                    t += _scaled(d_y, rvd[b])
                rvd[s] = t
        return v, vd

    def _reverse(self, v, u, vd=None, snap=None):
        """Adjoints (and their tangents, given the tangents vd) seeded with u."""
        (ops_, A, B, Cs, F, blocks, n_slots, consts, pool, marks, custom_rows, _,
         outputs) = snap or self._snapshot()
        adj = [0.0] * n_slots
        adjd = [0.0] * n_slots if vd is not None else None
        for i, s in enumerate(outputs):
            adj[s] += float(u[i])
        for k in range(len(ops_) - 1, -1, -1):
            op, a, b, c, s = ops_[k], A[k], B[k], Cs[k], F[k]
            mark = marks.get(k, 0)
            if mark & PASSIVE_ROW:
                continue  # no derivative reaches it: its operands get nothing
            if op in linalg_lu.LU_OPS:
                linalg_lu.reverse(op, a, b, s, blocks[k], v, adj, vd, adjd)
                continue
            if op in products.PRODUCT_OPS:
                products.reverse(op, a, b, s, blocks[k], v, adj, vd, adjd, consts,
                                 mark & PASSIVE_A, mark & PASSIVE_B)
                continue
            if op == _CUSTOM:
                _reverse_custom(custom_rows[c], a, s, v, adj, vd, adjd)
                continue
            if op in linalg_sym.LINALG_OPS:
                linalg_sym.reverse(op, a, b, s, blocks[k], v, adj, vd, adjd,
                                   mark & PASSIVE_A, mark & PASSIVE_B)
                continue
            if k in blocks:
                if op in gathers.ROW_OPS:
                    gathers.reverse(op, a, b, s, blocks[k], v, adj, vd, adjd, pool)
                else:
                    _reverse_block(op, a, b, c, s, blocks[k], v, adj, vd, adjd, consts)
                continue
            kind = _KIND[op]
            g = adj[s]
            gd = adjd[s] if adjd is not None else 0.0
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
                ties = _ties([v[i] for i in operands], v[s])
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
            d_x, d_y = call(partials, xv, yv, v[s])
            adj[a] += _scaled(d_x, g)
            if kind == "binary":
                adj[b] += _scaled(d_y, g)
            if adjd is not None:
                xd = vd[a]
                yd = vd[b] if kind == "binary" else 0.0
                dd_x, dd_y = call(second, xv, yv, v[s], xd, yd)
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

    def recorded_gradient(self, n_inputs):
        y, xbar = self.vjp(None, (1.0,))
        return float(y[0]), xbar

    # Each sweep takes the input/output lists before it starts (see _forward).

    @_sweep
    def forward(self, x):
        self._live()
        snap = self._snapshot()
        v, _ = self._forward(x, None, snap)
        return self._gather(v, snap[-1])

    @_sweep
    def jvp(self, x, xd):
        self._live()
        snap = self._snapshot()
        v, vd = self._forward(x, xd, snap)
        return self._gather(v, snap[-1]), self._gather(vd, snap[-1])

    @_sweep
    def vjp(self, x, u):
        self._live()
        snap, val = self._snapshot(), self.val
        v = val if x is None else self._forward(x, None, snap)[0]
        adj, _ = self._reverse(v, u, None, snap)
        return self._gather(v, snap[-1]), self._gather(adj, snap[-2])

    @_sweep
    def hvp(self, x, xd, u, keep_gradient=True):
        self._live()  # keep_gradient: the C store's work-array hint; u^T J is fresh here
        snap = self._snapshot()
        v, vd = self._forward(x, xd, snap)
        adj, adjd = self._reverse(v, u, vd, snap)
        return self._gather(v, snap[-1]), self._gather(adj, snap[-2]), self._gather(adjd, snap[-2])

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

    @_records
    def set_active_inputs(self, active):
        """Declare the inputs whose `active` entry is 0 parameters: the rows recorded
        so far that no other input reaches become passive (skipped by the
        derivative sweeps)."""
        self._live()
        active = np.asarray(active).ravel()
        if active.size != len(self.inputs):
            raise ValueError(f"set_active_inputs: {active.size} flags for "
                             f"{len(self.inputs)} inputs")
        self.marks = passive_marks(self.op, self.a, self.b, self.c, self.first, self.blocks,
                                   self.pool, len(self.val), active.tolist())

    @property
    def n_passive(self):
        """Rows the derivative sweeps skip (no differentiated input reaches them)."""
        self._live()
        return sum(1 for m in self.marks.values() if m & PASSIVE_ROW)

    # ---- plain arrays (saving and loading), in the layout of ARR_CONTRACT.md ----

    @_sweep
    def export(self):
        self._live()
        blocks = [(k, *blk) for k, blk in self.blocks.items()]
        return {"op": np.array(self.op, np.uint8), "a": np.array(self.a, np.int32),
                "b": np.array(self.b, np.int32), "c": np.array(self.c, np.int32),
                "first": np.array(self.first, np.int32),
                "val": np.array(self.val, np.float64),
                "consts": np.array(self.consts, np.float64),
                "pool": np.array(self.pool, np.int32),
                "inputs": np.array(self.inputs, np.int32),
                "outputs": np.array(self.outputs, np.int32),
                "blocks": np.array(blocks, np.int32).reshape(-1)}

    @classmethod
    def from_arrays(cls, a):
        """A store from exported arrays; TapeFormatError unless they form a valid tape."""
        check_arrays(a)
        store = cls()
        store.op, store.a, store.b, store.c, store.first = (
            a[k].tolist() for k in ("op", "a", "b", "c", "first"))
        store.blocks = {int(r[0]): tuple(int(e) for e in r[1:])
                        for r in np.asarray(a["blocks"]).reshape(-1, 6)}
        store.val, store.consts = a["val"].tolist(), a["consts"].tolist()
        store.pool = a["pool"].tolist()
        store.inputs, store.outputs = a["inputs"].tolist(), a["outputs"].tolist()
        store._next = len(store.val)
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
