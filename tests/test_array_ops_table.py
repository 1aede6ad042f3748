"""Every numpy operation pyad.Array supports, table-driven, at several layouts.

One row per operation (a numpy function, a ufunc, a ufunc method, an Array
method or operator). Each row runs on operands of shape (3, 4) laid out as
numpy would hand them over: contiguous, strided (x[::2, 1::2]), reversed
(negative strides), transposed, broadcast (stride 0: np.broadcast_to) and
fancy-indexed with repeated rows and columns; elementwise binary rows also meet
a broadcast row or column operand, an active scalar and constants on either side.

For each (row, layout), on each backend: the value equals numpy's on the plain
arrays; the gradient of a weighted sum of the result matches central
differences; forward and reverse mode agree (u.Jv == (u^T J).v); C and Python
agree on value, gradient and HVP; the HVP matches a central difference of the
gradient. test_the_table_covers_the_dispatch_table fails when pyad starts
supporting a numpy function without a row here.

Input values are drawn on a jittered grid, so no two are closer than a fraction
of the grid step: no ties for maximum/minimum/max/min, no zero for abs, and no
comparison with the thresholds used below (0.137, -0.263, ...) is close.
"""
import operator

import numpy as np
import pytest
import scipy.special  # noqa: F401  (scipy ufuncs the registry names: erf, erfc)

import pyad
from pyad import numpy_api

from helpers import close, flat, unflatten
from helpers import point_arg as arg

numpy_api._resolve_rows(import_modules=True)

SHAPE = (3, 4)
C34 = np.array([[0.5, -1.25, 0.75, 2.0], [1.5, 0.25, -0.5, -1.0], [-0.75, 1.0, 0.125, 0.5]])
C42 = np.array([[0.5, -1.0], [1.5, 0.25], [-0.75, 2.0], [1.0, -0.5]])
C23 = np.array([[1.0, -0.5, 0.25], [0.75, 1.5, -2.0]])
C4 = np.array([0.75, -1.5, 0.5, 1.25])
MASK = np.array([[True, False, True, True], [False, False, True, False], [True, True, False, True]])


# ---- layouts: how an operand of shape (3, 4) reaches the operation ----

LAYOUTS = {
    "contiguous": ((3, 4), lambda x: x),
    "strided": ((5, 8), lambda x: x[::2, 1::2]),
    "reversed": ((3, 4), lambda x: x[::-1, ::-1]),
    "transposed": ((4, 3), lambda x: x.T),
    "broadcast": ((4,), lambda x: np.broadcast_to(x, SHAPE)),
    "fancy": ((3, 4), lambda x: x[[0, 2, 2]][:, [3, 1, 1, 0]]),
}
# Extra ways an elementwise binary row meets its second operand.
OPERAND_FORMS = ["row_operand", "column_operand", "scalar_operand", "const_right", "const_left"]


def grid(shape, lo, hi, offset, rng):
    """Distinct values in (lo, hi): a shuffled grid, jittered by at most 10% of its step."""
    n = int(np.prod(shape))
    step = (hi - lo) / n
    k = rng.permutation(n) + offset + rng.uniform(-0.1, 0.1, n)
    return (lo + step * k).reshape(shape)


class Row:
    """fn(*operands) on operands of shape (3, 4); covers: the dispatch keys it tests."""

    def __init__(self, name, covers, fn, arity=1, domains=((-1.2, 1.2),), elementwise=False,
                 meta=False):
        self.name, self.covers, self.fn, self.arity = name, tuple(covers), fn, arity
        self.domains = domains if len(domains) == arity else domains * arity
        self.elementwise = elementwise  # binary rows: also the OPERAND_FORMS
        self.meta = meta                # returns plain numbers (np.shape, np.zeros_like, ...)


ROWS = []


def row(*args, **kwargs):
    ROWS.append(Row(*args, **kwargs))


# ---- elementwise ufuncs, generated from the dispatch tables ----

UNARY_DOMAINS = {
    "log": (0.3, 2.0), "sqrt": (0.3, 2.0), "reciprocal": (0.3, 2.0), "log2": (0.3, 2.0),
    "log10": (0.3, 2.0), "log1p": (-0.6, 1.5), "arcsin": (-0.85, 0.85),
    "arccos": (-0.85, 0.85), "arccosh": (1.2, 3.0), "arctanh": (-0.85, 0.85),
    "cbrt": (0.3, 2.0), "logit": (0.1, 0.9), "gammaln": (0.3, 2.0), "psi": (0.3, 2.0),
}
BINARY_DOMAINS = {
    "power": ((0.3, 2.0), (-1.5, 1.5)), "float_power": ((0.3, 2.0), (-1.5, 1.5)),
    "divide": ((-1.2, 1.2), (0.4, 1.6)), "true_divide": ((-1.2, 1.2), (0.4, 1.6)),
    "xlogy": ((-1.2, 1.2), (0.3, 2.0)), "xlog1py": ((-1.2, 1.2), (-0.6, 1.5)),
}
BOOLEAN_UFUNCS = {np.greater, np.greater_equal, np.less, np.less_equal, np.equal,
                  np.not_equal, np.logical_and, np.logical_or, np.logical_not, np.sign,
                  np.floor, np.ceil}   # and piecewise constant ones: tested through a select
BITWISE_UFUNCS = {np.bitwise_and, np.bitwise_or}   # recorded for comparison outcomes only


def _select_by(mask_fn):
    """A boolean result as a select, so the test sees both its values and a derivative."""
    return lambda a, b: pyad.where(mask_fn(a, b), a * 1.5, b - a)


for uf in sorted(set(numpy_api.UNARY_UFUNCS) | {u for u in numpy_api.COMPOSED_UFUNCS
                                               if u.nin == 1}, key=lambda u: u.__name__):
    name = uf.__name__
    if uf in BOOLEAN_UFUNCS:   # sign, floor, ceil, logical_not: piecewise constant
        row(name, [uf], lambda a, b, uf=uf: pyad.where(uf(a - 0.137) > 0, a * 1.5, b - a),
            arity=2)
    else:
        row(name, [uf], uf, domains=(UNARY_DOMAINS.get(name, (-1.2, 1.2)),))

for uf in sorted(set(numpy_api.BINARY_UFUNCS) | {u for u in numpy_api.COMPOSED_UFUNCS
                                                if u.nin == 2}, key=lambda u: u.__name__):
    name = uf.__name__
    if uf in BOOLEAN_UFUNCS:
        row(name, [uf], _select_by(lambda a, b, uf=uf: uf(a - 0.137, b)), arity=2,
            elementwise=True)
    elif uf in BITWISE_UFUNCS:
        row(name, [uf], _select_by(lambda a, b, uf=uf: uf(a > 0.137, b < -0.263)), arity=2,
            elementwise=True)
    else:
        row(name, [uf], uf, arity=2, domains=BINARY_DOMAINS.get(name, ((-1.2, 1.2),)),
            elementwise=True)

row("positive", [np.positive], np.positive)
row("matmul ufunc", [np.matmul], lambda a, b: np.matmul(a, b.T), arity=2)

# ---- ufunc methods ----

row("add.reduce", ["reduce:add"], lambda a: np.add.reduce(a, axis=1))
row("multiply.reduce", ["reduce:multiply"], lambda a: np.multiply.reduce(a, axis=0))
row("maximum.reduce", ["reduce:maximum"], lambda a: np.maximum.reduce(a, axis=1))
row("minimum.reduce", ["reduce:minimum"], lambda a: np.minimum.reduce(a, axis=0, keepdims=True))
row("add.accumulate", ["accumulate:add"], lambda a: np.add.accumulate(a, axis=1))
row("multiply.accumulate", ["accumulate:multiply"], lambda a: np.multiply.accumulate(a, axis=0))
row("multiply.outer", ["outer"], lambda a, b: np.multiply.outer(a[0], b[:, 2]), arity=2)
row("subtract.outer", ["outer"], lambda a, b: np.subtract.outer(a[1], b), arity=2)
row("less.outer", ["outer"], lambda a, b: pyad.where(np.less.outer(a[0], b[1]),
                                                     np.multiply.outer(a[0], b[1]), 2.0),
    arity=2)

# ---- numpy functions (numpy_api.FUNCTIONS) ----

for f, fname in [(np.sum, "sum"), (np.prod, "prod"), (np.max, "max"), (np.min, "min"),
                 (np.amax, "amax"), (np.amin, "amin"), (np.mean, "mean")]:
    for axis, keep in [(None, False), (0, False), (1, True), (-1, False), ((0, 1), True)]:
        row(f"{fname} axis={axis} keepdims={keep}", [f],
            lambda a, f=f, axis=axis, keep=keep: f(a, axis=axis, keepdims=keep))
for f in (np.cumsum, np.cumprod):
    for axis in (None, 0, 1):
        row(f"{f.__name__} axis={axis}", [f], lambda a, f=f, axis=axis: f(a, axis=axis))

row("dot const", [np.dot], lambda a: np.dot(a, C42))
row("dot active", [np.dot], lambda a, b: np.dot(a, b.T), arity=2)
row("dot vectors", [np.dot], lambda a, b: np.dot(a[0], b[2]), arity=2)
row("dot matrix-vector", [np.dot], lambda a, b: np.dot(a, b[1]), arity=2)
row("matmul const left", [np.matmul], lambda a: np.matmul(C23, a))
row("matmul active", [np.matmul], lambda a, b: np.matmul(a.T, b), arity=2)
row("inner", [np.inner], lambda a, b: np.inner(a, b), arity=2)
row("inner const", [np.inner], lambda a: np.inner(a, C4))
row("outer", [np.outer], lambda a, b: np.outer(a[1], b[:, 0]), arity=2)
row("outer const", [np.outer], lambda a: np.outer(C4, a[2]))
for spec in ("ij,kj->ik", "ij,ij->i", "ij,ij->j", "ij,ik->jk", "ij,ij->ji"):
    row(f"einsum {spec}", [np.einsum], lambda a, b, spec=spec: np.einsum(spec, a, b), arity=2)
row("einsum const", [np.einsum], lambda a: np.einsum("ij,j->i", a, C4))
for axes in (1, 2, ([1], [1]), ([0], [0])):
    row(f"tensordot axes={axes}", [np.tensordot],
        lambda a, b, axes=axes: np.tensordot(a, b.T if axes == 1 else b, axes=axes), arity=2)
row("tensordot const right", [np.tensordot], lambda a: np.tensordot(a, C42, axes=1))
row("tensordot const left", [np.tensordot], lambda a: np.tensordot(C34, a, axes=([0, 1], [0, 1])))
for kwargs in [{}, {"axis": 1}, {"ord": 1, "axis": 0}, {"ord": "fro"}, {"ord": np.inf},
               {"ord": 1}, {"ord": -np.inf, "axis": 1}, {"ord": 3, "axis": 1},
               {"axis": 0, "keepdims": True}]:
    row(f"norm {kwargs}", [np.linalg.norm], lambda a, kw=kwargs: np.linalg.norm(a, **kw))
row("norm vector", [np.linalg.norm], lambda a: np.linalg.norm(a[1]))
# LU-family rows on a well-conditioned square part of the operand (tests/test_linalg_lu.py)
row("linalg.solve", [np.linalg.solve],
    lambda a, b: np.linalg.solve(a[:, :3] + 3 * np.eye(3), b), arity=2)
row("linalg.solve const vector", [np.linalg.solve],
    lambda a: np.linalg.solve(a[:, 1:] - 3 * np.eye(3), C34[:, 0]))
row("linalg.inv", [np.linalg.inv], lambda a: np.linalg.inv(a[:, 1:] + 3 * np.eye(3)))
row("linalg.det", [np.linalg.det], lambda a: np.linalg.det(a[:, :3] - 3 * np.eye(3)))
row("linalg.slogdet", [np.linalg.slogdet],
    lambda a: np.stack(np.linalg.slogdet(a[:, :3] - 3 * np.eye(3))))
row("where active", [np.where], lambda a, b: np.where(a > -0.263, a * b, b), arity=2)
row("where constant mask", [np.where], lambda a: np.where(MASK, a, 2.0 * a))
row("concatenate", [np.concatenate], lambda a, b: np.concatenate([a, b], axis=1), arity=2)
row("concatenate const", [np.concatenate], lambda a: np.concatenate([C34, a]))
row("stack", [np.stack], lambda a, b: np.stack([a, b], axis=1), arity=2)
row("pyad.stack", [pyad.stack], lambda a, b: pyad.stack([b, a, b]), arity=2)
row("hstack", [np.hstack], lambda a, b: np.hstack([a, b]), arity=2)
row("vstack", [np.vstack], lambda a, b: np.vstack([a, b[0]]), arity=2)
row("split", [np.split],
    lambda a: np.concatenate([p * (k + 1) for k, p in enumerate(np.split(a, 2, axis=1))]))
row("array_split", [np.array_split],
    lambda a: np.concatenate([p * (k + 1) for k, p in enumerate(np.array_split(a, 3, axis=1))],
                             axis=1))
row("reshape", [np.reshape], lambda a: np.reshape(a, (2, 6)))
row("ravel", [np.ravel], np.ravel)
row("transpose", [np.transpose], np.transpose)
row("swapaxes", [np.swapaxes], lambda a: np.swapaxes(a, 0, 1))
row("moveaxis", [np.moveaxis], lambda a: np.moveaxis(a[None], 0, 2))
row("flip", [np.flip], lambda a: np.flip(a, axis=1))
row("flip all", [np.flip], np.flip)
row("fliplr", [np.fliplr], np.fliplr)
row("flipud", [np.flipud], np.flipud)
row("broadcast_to", [np.broadcast_to], lambda a: np.broadcast_to(a[:, 1:2], (2, 3, 4)))
row("expand_dims", [np.expand_dims], lambda a: np.expand_dims(a, 1))
row("squeeze", [np.squeeze], lambda a: np.squeeze(a[:, None, 1:2]))
row("atleast_1d", [np.atleast_1d], np.atleast_1d)
row("atleast_2d", [np.atleast_2d], lambda a: np.atleast_2d(a[1]))
row("diagonal", [np.diagonal], np.diagonal)
row("diagonal offset", [np.diagonal], lambda a: np.diagonal(a, 1))
row("roll", [np.roll], lambda a: np.roll(a, 1, axis=1))
row("roll flat", [np.roll], lambda a: np.roll(a, 5))
row("tile", [np.tile], lambda a: np.tile(a, (1, 2)))
row("repeat", [np.repeat], lambda a: np.repeat(a, 2, axis=0))
row("take", [np.take], lambda a: np.take(a, [0, 2, 2, 3], axis=1))
row("clip", [np.clip], lambda a: np.clip(a, -0.537, 0.537))
row("clip one side", [np.clip], lambda a: np.clip(a, None, 0.213))
row("diff", [np.diff], lambda a: np.diff(a, axis=1))
row("diff n=2", [np.diff], lambda a: np.diff(a, n=2, axis=0))
row("trace", [np.trace], np.trace)
row("cholesky", [np.linalg.cholesky], lambda a: np.linalg.cholesky(a @ a.T + 3.0 * np.eye(3)))
row("cholesky upper", [np.linalg.cholesky],
    lambda a: np.linalg.cholesky(a.T @ a + 4.0 * np.eye(4), upper=True))
row("eigvalsh", [np.linalg.eigvalsh],
    lambda a: np.linalg.eigvalsh(a @ a.T + np.diag([0.0, 3.0, 6.0])))
row("eigh UPLO U", [np.linalg.eigh], lambda a: (lambda r: r[1] ** 2 * r[0])(
    np.linalg.eigh(a.T @ a + np.diag([0.0, 3.0, 6.0, 9.0]), UPLO="U")))
row("trace offset", [np.trace], lambda a: np.trace(a, 1))
row("var", [np.var], lambda a: np.var(a, axis=1))
row("var ddof keepdims", [np.var], lambda a: np.var(a, axis=0, ddof=1, keepdims=True))
row("var all", [np.var], np.var)
row("std", [np.std], lambda a: np.std(a, axis=1, ddof=1))
row("std all", [np.std], np.std)
row("diag of a matrix", [np.diag], lambda a: np.diag(a, 1))
row("diag of a vector", [np.diag], lambda a: np.diag(a[1], -1))
row("sort", [np.sort], np.sort)
row("sort axis 0", [np.sort], lambda a: np.sort(a, axis=0))
row("sort flat", [np.sort], lambda a: np.sort(a, axis=None))
for f in (np.shape, np.ndim, np.size, np.zeros_like, np.ones_like):
    row(f.__name__, [f], f, meta=True)

# ---- Array methods and operators ----

for method in ("sum", "prod", "max", "min", "mean"):
    row(f"Array.{method}", [f"Array.{method}"],
        lambda a, m=method: getattr(a, m)(axis=1, keepdims=True))
    row(f"Array.{method} all", [f"Array.{method}"], lambda a, m=method: getattr(a, m)())
for method in ("cumsum", "cumprod"):
    row(f"Array.{method}", [f"Array.{method}"], lambda a, m=method: getattr(a, m)(axis=0))
row("Array.dot", ["Array.dot"], lambda a: a.dot(C42))
row("Array.dot active", ["Array.dot"], lambda a, b: a.dot(b[0]), arity=2)
row("Array.reshape", ["Array.reshape"], lambda a: a.reshape(4, 3))
row("Array.reshape F", ["Array.reshape"], lambda a: a.reshape((2, 6), order="F"))
row("Array.ravel", ["Array.ravel"], lambda a: a.ravel())
row("Array.flatten", ["Array.flatten"], lambda a: a.flatten())
row("Array.transpose", ["Array.transpose"], lambda a: a.transpose(1, 0))
row("Array.T", ["Array.T"], lambda a: a.T)
row("Array.swapaxes", ["Array.swapaxes"], lambda a: a.swapaxes(1, 0))
row("Array.squeeze", ["Array.squeeze"], lambda a: a[None].squeeze(0))
row("Array.copy", ["Array.copy"], lambda a: a.copy())
row("Array.astype", ["Array.astype"], lambda a: a.astype(np.float64))
row("Array.__getitem__", ["Array.__getitem__"], lambda a: a[1:, [2, 0, 0]])
row("Array.__getitem__ mask", ["Array.__getitem__"], lambda a: a[MASK])


def _set(a, b):
    c = a.copy()
    c[1] = b[0] * 2.0
    c[:, [3, 0]] = b[:, :2]
    return c


row("Array.__setitem__", ["Array.__setitem__"], _set, arity=2)
for op in ("add", "sub", "mul", "truediv", "pow", "matmul"):
    f = getattr(operator, op)
    domains = ((0.3, 2.0), (-1.5, 1.5)) if op == "pow" else (
        ((-1.2, 1.2), (0.4, 1.6)) if op == "truediv" else ((-1.2, 1.2),))
    if op == "matmul":
        row("a @ b", [f"Array.__{op}__"], lambda a, b: a @ b.T, arity=2)
        row("C @ a", ["Array.__rmatmul__"], lambda a: C23 @ a)
        row("a @ C", [f"Array.__{op}__"], lambda a: a @ C4)
    else:
        row(f"a {op} b", [f"Array.__{op}__"], f, arity=2, domains=domains, elementwise=True)
    iop = getattr(operator, "i" + op)

    def in_place(a, b, iop=iop, op=op):
        c = a.copy()
        if op == "matmul":
            return iop(c, np.eye(4) + 0.5)
        return iop(c, b)
    row(f"a {op}= b", [f"Array.__i{op}__"], in_place, arity=2, domains=domains)
row("3 ** a", ["Array.__rpow__"], lambda a: 3.0 ** a)
row("2 - a", ["Array.__rsub__"], lambda a: 2.0 - a)
row("1 / a", ["Array.__rtruediv__"], lambda a: 1.0 / a, domains=((0.4, 1.6),))
row("-a", ["Array.__neg__"], operator.neg)
row("+a", ["Array.__pos__"], operator.pos)
row("abs(a)", ["Array.__abs__"], abs)
row("a ** 2", ["Array.__pow__"], lambda a: a ** 2)
for op in ("lt", "le", "gt", "ge", "eq", "ne"):
    row(f"a {op} b", [f"Array.__{op}__"], _select_by(lambda a, b, f=getattr(operator, op):
                                                     f(a, b)), arity=2)
row("mask ops", ["BoolArray.all", "BoolArray.any", "BoolArray.__and__", "BoolArray.__or__",
                 "BoolArray.__invert__"],
    lambda a, b: pyad.where(((a > 0.137) & ~(b > -0.263)) | (a < -0.263), a, b * 2.0), arity=2)
row("mask any/all", ["BoolArray.any", "BoolArray.all"],
    lambda a, b: pyad.where((a > 0.137).any(axis=1, keepdims=True)
                            & (b < 0.413).all(axis=0), a, b), arity=2)
row("iteration", ["Array.__iter__"], lambda a: pyad.stack([r * (k + 1) for k, r in enumerate(a)]))

IDS = [r.name for r in ROWS]
assert len(set(IDS)) == len(IDS), "row names must be unique"


# ---- the checks ----

def inputs_for(r, layout, seed):
    rng = np.random.default_rng(seed)
    shape = LAYOUTS[layout][0]
    return tuple(grid(shape, lo, hi, offset, rng)
                 for (lo, hi), offset in zip(r.domains, (0.3, 0.7)))


def bound(r, layout):
    """f(*inputs): the row applied to its operands in the given layout or operand form."""
    if layout in LAYOUTS:
        view = LAYOUTS[layout][1]
        return lambda *xs: r.fn(*[view(x) for x in xs])
    left = layout == "const_left"
    const = grid(SHAPE, *r.domains[0 if left else 1], 0.5, np.random.default_rng(11))
    return {
        "row_operand": lambda a, b: r.fn(a, b),                # (3, 4) with (4,)
        "column_operand": lambda a, b: r.fn(a, b[:, None]),    # (3, 4) with (3, 1)
        "scalar_operand": lambda a, b: r.fn(a, b[1, 2]),       # with an active scalar
        "const_right": lambda a: r.fn(a, const),
        "const_left": lambda b: r.fn(const, b),
    }[layout]


def operand_inputs(r, layout, seed):
    rng = np.random.default_rng(seed)
    (lo, hi), (lo_b, hi_b) = r.domains
    if layout == "const_left":   # the active operand is the right one
        return (grid(SHAPE, lo_b, hi_b, 0.7, rng),)
    a = grid(SHAPE, lo, hi, 0.3, rng)
    b_shape = {"row_operand": (4,), "column_operand": (3,), "scalar_operand": (3, 4)}.get(layout)
    return (a,) if b_shape is None else (a, grid(b_shape, lo_b, hi_b, 0.7, rng))


CASES = [(r, layout) for r in ROWS for layout in LAYOUTS]
CASES += [(r, form) for r in ROWS if r.elementwise for form in OPERAND_FORMS]






def weighted(f, w):
    def g(*xs):
        y = f(*xs) * w
        return y.sum() if np.ndim(w) else y
    return g


def central_gradient(g, xs, h=1e-6):
    x0 = flat(xs)
    out = np.zeros_like(x0)
    for i in range(x0.size):
        e = np.zeros_like(x0)
        e[i] = h
        out[i] = (g(*unflatten(x0 + e, xs)) - g(*unflatten(x0 - e, xs))) / (2 * h)
    return out


@pytest.mark.parametrize("r, layout", CASES, ids=[f"{r.name}-{lay}" for r, lay in CASES])
def test_operation(backend, r, layout):
    f = bound(r, layout)
    xs = inputs_for(r, layout, 5) if layout in LAYOUTS else operand_inputs(r, layout, 5)
    with np.errstate(all="raise"):
        ref = f(*xs)
    if r.meta:
        with pyad.Tape(backend=backend) as tape:
            got = f(*[tape.input(x) for x in xs])
        assert np.shape(got) == np.shape(ref) and np.all(np.asarray(got) == np.asarray(ref))
        return

    tape = pyad.trace(f, *xs, backend=backend)
    assert np.shape(tape()) == np.shape(ref), "result shape"
    close(tape(), ref, 1e-12, "value vs numpy")
    moved = tuple(x * 0.97 for x in xs)   # replayed at another point, same branches
    close(tape(*moved), f(*moved), 1e-12, "replayed value vs numpy")

    rng = np.random.default_rng(1)
    w = rng.uniform(0.5, 1.5, np.shape(ref))
    g = weighted(f, w)
    gtape = pyad.trace(g, *xs, backend=backend)
    grad = flat(gtape.gradient(*xs))
    close(grad, central_gradient(g, xs), 1e-6, "gradient vs central differences")

    v = unflatten(rng.standard_normal(grad.size), xs)
    u = rng.standard_normal(np.shape(ref))
    _, jv = tape.jvp(arg(xs), arg(v))
    _, uj = tape.vjp(arg(xs), u)
    scale = 1.0 + float(np.abs(flat(u)) @ np.abs(flat(jv)))
    np.testing.assert_allclose(float(flat(u) @ flat(jv)), float(flat(uj) @ flat(v)),
                               rtol=1e-12, atol=1e-12 * scale, err_msg="u.Jv vs uJ.v")

    hv = flat(gtape.hvp(arg(xs), arg(v)))
    h = 1e-6
    x0, dv = flat(xs), flat(v)
    hv_fd = (flat(gtape.gradient(*unflatten(x0 + h * dv, xs)))
             - flat(gtape.gradient(*unflatten(x0 - h * dv, xs)))) / (2 * h)
    close(hv, hv_fd, 1e-5, "HVP vs central difference of the gradient")

    if backend == "c":   # the Python backend is the oracle
        other = pyad.trace(g, *xs, backend="python")
        close(grad, flat(other.gradient(*xs)), 1e-12, "gradient C vs Python")
        close(hv, flat(other.hvp(arg(xs), arg(v))), 1e-12, "HVP C vs Python")
        close(jv, pyad.trace(f, *xs, backend="python").jvp(arg(xs), arg(v))[1], 1e-12,
              "JVP C vs Python")


# ---- coverage: a newly supported operation without a row fails here ----

COVERED = {key for r in ROWS for key in r.covers}
NOT_OPERATIONS = {"shape", "ndim", "size", "dtype", "value", "slots"}   # attributes, no math


def test_the_table_covers_the_dispatch_table():
    missing = [numpy_api.public_name(f) for f in numpy_api.FUNCTIONS if f not in COVERED]
    missing += [f.__name__ for f in numpy_api.UNARY_UFUNCS if f not in COVERED]
    missing += [f.__name__ for f in numpy_api.BINARY_UFUNCS if f not in COVERED]
    missing += [f.__name__ for f in numpy_api.COMPOSED_UFUNCS if f not in COVERED]
    missing += [f"reduce:{u.__name__}" for u in numpy_api.REDUCING_UFUNCS
                if f"reduce:{u.__name__}" not in COVERED]
    assert not missing, f"supported numpy operations without a row in this table: {missing}"


def test_the_table_covers_every_array_method_and_operator():
    public = [name for name in vars(pyad.Array)
              if not name.startswith("_") and name not in NOT_OPERATIONS]
    dunder = [name for name in vars(pyad.Array)
              if name.startswith("__") and name.endswith("__") and callable(
                  getattr(pyad.Array, name)) and name not in (
                  "__init__", "__repr__", "__len__", "__array__", "__float__", "__int__",
                  "__index__", "__complex__", "__bool__", "__array_ufunc__",
                  "__array_function__", "__radd__", "__rmul__", "__class__", "__getattr__")]
    missing = [n for n in public + dunder if f"Array.{n}" not in COVERED]
    bool_methods = [n for n in vars(pyad.BoolArray) if not n.startswith("_")
                    or n in ("__and__", "__or__", "__invert__")]
    missing += [f"BoolArray.{n}" for n in bool_methods if f"BoolArray.{n}" not in COVERED]
    assert not missing, f"Array methods/operators without a row in this table: {missing}"
