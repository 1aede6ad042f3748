"""Gathers, reductions and scans in the pure-Python backend: the twin of
csrc/gather.c, written for reading, one numpy expression per step.

These rows are always block rows (a `blocks` entry at any width). A gather's
element e reads slot pool[a + e]; the others read an (m, k) layout of slots,
element (i, j) at a + sa * i + sb * j with k = the row's b. A reduction defines
m slots (output i reduces row i), a scan m * k (element (i, j) at first + i * k
+ j). Their reverse sweeps scatter-add (np.add.at): repeated slots accumulate.

The rules match the C core's: numpy's NaN propagation for max / min with ties
sharing the derivative evenly (JAX's rule), products differentiated without
dividing by an operand (exact at zeros), and a zero adjoint or tangent is a
structural zero (it contributes nothing even against inf).
"""
import numpy as np

from . import ops

GATHER = ops.CODE["gather"]
REDUCE = {ops.CODE[n]: n for n in ("reduce_add", "reduce_mul", "reduce_max", "reduce_min")}
SCAN = {ops.CODE[n]: n for n in ("cumsum", "cumprod")}
ROW_OPS = frozenset({GATHER, *REDUCE, *SCAN})

# the row that reduces / scans with a binary op of the registry
REDUCE_OF = {ops.CODE["add"]: ops.CODE["reduce_add"], ops.CODE["mul"]: ops.CODE["reduce_mul"],
             ops.CODE["maximum"]: ops.CODE["reduce_max"],
             ops.CODE["minimum"]: ops.CODE["reduce_min"]}
SCAN_OF = {ops.CODE["add"]: ops.CODE["cumsum"], ops.CODE["mul"]: ops.CODE["cumprod"]}


def _scaled(d, t):
    """d * t with a zero t a structural zero (as csrc's scaled)."""
    return np.where(t == 0, 0.0, d * t)


# ---- where a row's operand elements are ----

def shape_of(op, b, w):
    """(m, k) of a row's operand layout."""
    if op == GATHER:
        return w, 1
    return (w // b, b) if op in SCAN else (w, b)


def layout(op, a, b, blk, pool):
    """The (m, k) array of slots the row reads."""
    w, sa, sb = blk[0], blk[1], blk[2]
    if op == GATHER:
        return np.asarray(pool[a:a + w], dtype=np.int64).reshape(w, 1)
    m, k = shape_of(op, b, w)
    return a + sa * np.arange(m, dtype=np.int64)[:, None] + sb * np.arange(k, dtype=np.int64)


def _read(values, idx):
    """values[idx] for a list, converting only the span idx covers."""
    lo = int(idx.min())
    return np.array(values[lo:int(idx.max()) + 1], dtype=np.float64)[idx - lo]


def _scatter_add(values, idx, contrib):
    """values[idx] += contrib, repeated indices accumulating."""
    lo, hi = int(idx.min()), int(idx.max()) + 1
    span = np.array(values[lo:hi], dtype=np.float64)
    np.add.at(span, (idx - lo).ravel(), np.broadcast_to(contrib, idx.shape).ravel())
    values[lo:hi] = span.tolist()


def _out(first, w):
    return slice(first, first + w)


# ---- rules on the (m, k) operand X, tangents T, results Z ----

def _ties(X, Z):
    """Where X equals its row's extremum Z (NaN ties with a NaN result)."""
    Zc = Z[:, None]
    return (X == Zc) | (np.isnan(X) & np.isnan(Zc))


def _dual_mul(a, ad, b, bd):
    return a * b, _scaled(a, bd) + _scaled(b, ad)


def _others(X, T):
    """(O, Od): O[:, j] the product of row's other elements, Od its tangent along
    T (T None: not needed). Exclusive prefix times exclusive suffix: no division."""
    m, k = X.shape
    if T is None:
        ones = np.ones((m, 1))
        before = np.cumprod(np.hstack([ones, X[:, :-1]]), axis=1)
        after = np.cumprod(np.hstack([ones, X[:, :0:-1]]), axis=1)[:, ::-1]
        return before * after, None
    P, Pd = np.ones((m, k)), np.zeros((m, k))
    S, Sd = np.ones((m, k)), np.zeros((m, k))
    for j in range(1, k):
        P[:, j], Pd[:, j] = _dual_mul(P[:, j - 1], Pd[:, j - 1], X[:, j - 1], T[:, j - 1])
    for j in range(k - 2, -1, -1):
        S[:, j], Sd[:, j] = _dual_mul(S[:, j + 1], Sd[:, j + 1], X[:, j + 1], T[:, j + 1])
    return _dual_mul(P, Pd, S, Sd)


def _values(op, X):
    name = REDUCE.get(op) or SCAN.get(op)
    with np.errstate(all="ignore"):
        if op == GATHER:
            return X[:, 0]
        if name == "reduce_add":
            return np.sum(X, axis=1)
        if name == "reduce_mul":
            return np.prod(X, axis=1)
        if name == "reduce_max":
            return np.max(X, axis=1)
        if name == "reduce_min":
            return np.min(X, axis=1)
        if name == "cumsum":
            return np.cumsum(X, axis=1).ravel()
        return np.cumprod(X, axis=1).ravel()


def _tangents(op, X, T, Z):
    name = REDUCE.get(op) or SCAN.get(op)
    with np.errstate(all="ignore"):
        if op == GATHER:
            return T[:, 0]
        if name == "reduce_add":
            return np.sum(T, axis=1)
        if name == "reduce_mul":
            O, _ = _others(X, None)
            return np.sum(_scaled(O, T), axis=1)
        if name in ("reduce_max", "reduce_min"):
            ties = _ties(X, Z)
            return np.sum(np.where(ties, T, 0.0), axis=1) / np.sum(ties, axis=1)
        if name == "cumsum":
            return np.cumsum(T, axis=1).ravel()
        Zs = Z.reshape(X.shape)  # cumprod: z_j = z_{j-1} x_j, differentiated
        Zd = np.empty_like(X)
        Zd[:, 0] = T[:, 0]
        for j in range(1, X.shape[1]):
            Zd[:, j] = _scaled(X[:, j], Zd[:, j - 1]) + _scaled(Zs[:, j - 1], T[:, j])
        return Zd.ravel()


def _adjoints(op, X, T, Z, Zd, G, Gd):
    """(contribution to the operands' adjoints, to their tangents (None without Gd)),
    each shaped like X. T, Zd None: zero tangents."""
    name = REDUCE.get(op) or SCAN.get(op)
    shape = X.shape
    second = Gd is not None
    with np.errstate(all="ignore"):
        if op == GATHER or name == "reduce_add":
            return (np.broadcast_to(G[:, None], shape),
                    np.broadcast_to(Gd[:, None], shape) if second else None)
        if name == "reduce_mul":
            O, Od = _others(X, T if second else None)
            if not second:
                return _scaled(O, G[:, None]), None
            return (_scaled(O, G[:, None]),
                    _scaled(O, Gd[:, None]) + _scaled(Od, G[:, None]))
        if name in ("reduce_max", "reduce_min"):
            ties = _ties(X, Z)
            count = np.sum(ties, axis=1)
            return (np.where(ties, (G / count)[:, None], 0.0),
                    np.where(ties, (Gd / count)[:, None], 0.0) if second else None)
        G = G.reshape(shape)
        Gd = Gd.reshape(shape) if second else None
        if name == "cumsum":  # a sum over the later results: reversed running sums
            run = np.cumsum(G[:, ::-1], axis=1)[:, ::-1]
            return run, (np.cumsum(Gd[:, ::-1], axis=1)[:, ::-1] if second else None)
        # cumprod: c_j, the adjoint of z_j with all later results, runs backwards
        Zs, k = Z.reshape(shape), shape[1]
        Zds = Zd.reshape(shape) if second else np.zeros(shape)
        Ts = T if second else np.zeros(shape)
        gd = Gd if second else np.zeros(shape)
        out, outd = np.empty(shape), np.empty(shape)
        c, cd = np.zeros(shape[0]), np.zeros(shape[0])
        for j in range(k - 1, -1, -1):
            if j < k - 1:
                c, cd = _scaled(X[:, j + 1], c), _scaled(X[:, j + 1], cd) + _scaled(Ts[:, j + 1], c)
            c, cd = c + G[:, j], cd + gd[:, j]
            before, befored = (Zs[:, j - 1], Zds[:, j - 1]) if j else (1.0, 0.0)
            out[:, j] = _scaled(before, c)
            outd[:, j] = _scaled(before, cd) + _scaled(befored, c)
        return out, (outd if second else None)


# ---- the row in a sweep ----

def row_values(op, a, b, blk, v, pool):
    """The values the row defines, from the values v (a list)."""
    return _values(op, _read(v, layout(op, a, b, blk, pool)))


def forward(op, a, b, first, blk, v, vd, pool):
    """Values (and tangents, vd not None) of the row's slots."""
    idx = layout(op, a, b, blk, pool)
    X = _read(v, idx)
    Z = _values(op, X)
    v[_out(first, blk[0])] = Z.tolist()
    if vd is not None:
        vd[_out(first, blk[0])] = _tangents(op, X, _read(vd, idx), Z).tolist()


def reverse(op, a, b, first, blk, v, adj, vd, adjd, pool):
    """Move the row's adjoints (and adjoint tangents, vd and adjd not None) to its operands."""
    w = blk[0]
    idx = layout(op, a, b, blk, pool)
    X = _read(v, idx)
    Z = np.array(v[first:first + w], dtype=np.float64)
    G = np.array(adj[first:first + w], dtype=np.float64)
    second = adjd is not None
    T = _read(vd, idx) if second else None
    Zd = np.array(vd[first:first + w], dtype=np.float64) if second else None
    Gd = np.array(adjd[first:first + w], dtype=np.float64) if second else None
    contrib, contribd = _adjoints(op, X, T, Z, Zd, G, Gd)
    _scatter_add(adj, idx, contrib)
    if second:
        _scatter_add(adjd, idx, contribd)


# ---- recording and validation ----

def affine_layout(x):
    """(sa, sb) with x[i, j] = x[0, 0] + sa * i + sb * j (sa, sb >= 0), else None."""
    m, k = x.shape
    x = x.astype(np.int64)
    sa = int(x[1, 0] - x[0, 0]) if m > 1 else 0
    sb = int(x[0, 1] - x[0, 0]) if k > 1 else 0
    if sa < 0 or sb < 0:
        return None
    expect = x[0, 0] + sa * np.arange(m)[:, None] + sb * np.arange(k)
    return (sa, sb) if np.array_equal(x, expect) else None


def row_ok(op, a, b, c, blk, below, pool):
    """The twin of csrc's rows_row_ok: every slot read lies below `below`, every
    pool entry read exists, the sizes are consistent."""
    w, sa, sb, sc, sk = blk
    if w < 1 or min(sa, sb) < 0 or sc or sk or c or a < 0:
        return False
    if op == GATHER:
        if b or sa or sb or a + w > len(pool):
            return False
        read = np.asarray(pool[a:a + w], dtype=np.int64)
        return bool(np.all((read >= 0) & (read < below)))
    if b < 1 or (op in SCAN and w % b):
        return False
    m, k = shape_of(op, b, w)
    return a + sa * (m - 1) + sb * (k - 1) < below


def text(op, operand, m, k):
    """The table's expression for the row, its operand layout as text."""
    if op == GATHER:
        return f"gather({operand})"
    name = (REDUCE.get(op) or SCAN[op]).replace("reduce_", "")
    name = {"add": "sum", "mul": "prod"}.get(name, name)
    return f"{name}({operand} over {m} x {k})"
