"""Gather, reduction and scan rows (csrc/gather.c, pyad/_python_gathers.py): every
numpy operation on active arrays is one row, plus one gather row per operand whose
slots are not an affine layout. Each layout and reduction is checked against numpy,
central differences, forward vs reverse, the HVP, batched replay, save/load and its
row count, on both backends."""
import numpy as np
import pytest

import pyad
from pyad import serialize

RNG = np.random.default_rng(7)


def _x(*shape):
    return RNG.uniform(0.5, 1.5, size=shape) * RNG.choice([-1.0, 1.0], size=shape)


# name: (f, the shape of x for size factor s); f's output may be an array
CASES = {
    "contiguous": (lambda x: np.sin(x) * x, lambda s: (4 * s,)),
    "strided": (lambda x: x[::2] ** 2 + x[1::2], lambda s: (4 * s,)),
    "transposed": (lambda X: X.T * X.T[::-1] + X.T, lambda s: (3, 4 * s)),
    "broadcast": (lambda X: X * X[:, :1] - X[0], lambda s: (3, 4 * s)),
    "fancy_repeats": (lambda x: x[[0, 2, 2, 1]] * 3.0 + x[[1, 1, 0, 3]] * x[:4],
                      lambda s: (4 * s,)),
    "concatenate": (lambda x: np.concatenate([x[:3], x[1:]]) ** 2, lambda s: (4 * s,)),
    "stack_scalars": (lambda x: pyad.stack([x[0], x[2], x[0]]) * x[:3], lambda s: (4 * s,)),
    "sum_all": (lambda X: np.sum(X * X), lambda s: (3, 4 * s)),
    "sum_axis0": (lambda X: X.sum(axis=0), lambda s: (3, 4 * s)),
    "sum_axis1_keepdims": (lambda X: np.sin(X).sum(axis=1, keepdims=True) * X,
                           lambda s: (3, 4 * s)),
    "sum_axes_0_2": (lambda X: X.sum(axis=(0, 2)), lambda s: (2, 3, 2 * s)),
    "sum_transposed": (lambda X: X.T.sum(axis=1), lambda s: (3, 4 * s)),
    "sum_gathered": (lambda x: x[[3, 0, 0, 2]].sum(), lambda s: (4 * s,)),
    "mean": (lambda X: X.mean(axis=1) + np.mean(X), lambda s: (3, 4 * s)),
    "prod_axis0": (lambda X: X.prod(axis=0), lambda s: (3, 4 * s)),
    "prod_all": (lambda x: np.prod(x[:20]), lambda s: (4 * s + 16,)),
    "max_axis1": (lambda X: X.max(axis=1) * X[:, 0], lambda s: (3, 4 * s)),
    "min_all_amax": (lambda X: np.min(X) + np.amax(X, axis=0), lambda s: (3, 4 * s)),
    "cumsum_flat": (lambda x: np.cumsum(x) ** 2, lambda s: (4 * s,)),
    "cumsum_axis0": (lambda X: np.cumsum(X, axis=0) * X, lambda s: (3, 4 * s)),
    "cumprod_axis1": (lambda X: np.cumprod(X[:, :6], axis=1), lambda s: (3, 4 * s + 4)),
}


def objective(name):
    """A scalar function of x: a fixed weighting of the case's outputs."""
    f = CASES[name][0]

    def obj(x):
        y = f(x)
        shape = getattr(y, "shape", ())   # not .value: reading values records guards
        if not shape:
            return y * 1.5
        w = np.cos(np.arange(int(np.prod(shape))) + 1.0).reshape(shape)
        return (y * w).sum()
    return obj


def obj_numpy(name, x):
    y = np.asarray(CASES[name][0](x), dtype=float)
    w = np.cos(np.arange(y.size) + 1.0).reshape(y.shape)
    return float((y * w).sum()) if y.ndim else float(y) * 1.5


def fd_grad(f, x, h=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g


def close(a, b, what, rtol=1e-12, atol=1e-13):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=what)


@pytest.fixture(params=sorted(CASES))
def case(request):
    return request.param


def test_values_match_numpy(case, backend):
    f, shape = CASES[case]
    x0, x1 = _x(*shape(1)), _x(*shape(1))
    tape = pyad.trace(f, x0, backend=backend)
    for x in (x0, x1):
        close(tape(x), f(x), f"{case} values", rtol=1e-13)


def test_gradient_matches_central_differences(case, backend):
    x0 = _x(*CASES[case][1](1))
    tape = pyad.trace(objective(case), x0, backend=backend)
    x1 = _x(*CASES[case][1](1))
    for x in (x0, x1):
        close(tape.gradient(x), fd_grad(lambda z: obj_numpy(case, z), x), f"{case} gradient",
              rtol=1e-6, atol=1e-7)


def test_forward_agrees_with_reverse_and_hvp_with_the_gradient(case, backend):
    x = _x(*CASES[case][1](1))
    f = CASES[case][0]
    tape = pyad.trace(f, x, backend=backend)
    v = RNG.normal(size=x.shape)
    y, yd = tape.jvp(x, v)
    u = RNG.normal(size=np.shape(y))
    _, xbar = tape.vjp(x, u)
    a, b = float(np.sum(u * yd)), float(np.sum(xbar * v))
    assert abs(a - b) <= 1e-12 * max(1.0, abs(a)), (case, a, b)
    scalar = pyad.trace(objective(case), x, backend=backend)
    h = 1e-6
    fd = (scalar.gradient(x + h * v) - scalar.gradient(x - h * v)) / (2 * h)
    close(scalar.hvp(x, v), fd, f"{case} hvp", rtol=1e-6, atol=1e-6)


def test_batch_equals_a_loop(case, backend):
    shape = CASES[case][1](1)
    x = _x(*shape)
    tape = pyad.trace(objective(case), x, backend=backend)
    xs = np.stack([_x(*shape) for _ in range(3)])
    vs = RNG.normal(size=xs.shape)
    close(tape.gradient(xs, batch=True), [tape.gradient(p) for p in xs], f"{case} batch grad",
          rtol=1e-13)
    close(tape.hvp(xs, vs, batch=True), [tape.hvp(p, q) for p, q in zip(xs, vs)],
          f"{case} batch hvp", rtol=1e-13)
    _, yd = tape.jvp(xs, vs, batch=True)
    close(np.ravel(yd), [tape.jvp(p, q)[1] for p, q in zip(xs, vs)], f"{case} batch jvp",
          rtol=1e-13)


def test_vector_sweeps_agree_with_single_ones(case, backend):
    x = _x(*CASES[case][1](1))
    tape = pyad.trace(objective(case), x, backend=backend)
    H = tape.hessian(x)                      # vector second-order sweep
    n = x.size
    cols = [tape.hvp(x, e.reshape(x.shape)).ravel() for e in np.eye(n)]
    close(np.reshape(H, (n, n)), np.array(cols).T, f"{case} hessian", rtol=1e-12)
    J = tape.jacobian(x, mode="forward")
    close(np.ravel(J), tape.gradient(x).ravel(), f"{case} forward jacobian", rtol=1e-12)


@pytest.mark.parametrize("load_as", ["c", "python"])
def test_save_and_load_round_trip(case, backend, load_as, tmp_path):
    x = _x(*CASES[case][1](1))
    tape = pyad.trace(objective(case), x, backend=backend)
    tape.save(tmp_path / "t.pyad")
    loaded = pyad.load(tmp_path / "t.pyad", backend=load_as)
    assert (loaded.n_ops, loaded.n_slots) == (tape.n_ops, tape.n_slots)
    assert serialize.dumps(loaded) == serialize.dumps(tape)
    x1 = _x(*x.shape)
    close(loaded.gradient(x1), tape.gradient(x1), f"{case} loaded", rtol=1e-13)


def test_rows_do_not_grow_with_the_array(case, backend):
    f, shape = CASES[case]
    small = pyad.trace(objective(case), _x(*shape(1)), backend=backend)
    big = pyad.trace(objective(case), _x(*shape(50)), backend=backend)
    assert big.n_ops == small.n_ops, (case, small.stats()["ops"], big.stats()["ops"])
    assert big.n_ops <= 16, big.stats()["ops"]


def test_backends_agree_row_for_row(case):
    x = _x(*CASES[case][1](2))
    c = pyad.trace(objective(case), x, backend="c")
    p = pyad.trace(objective(case), x, backend="python")
    assert c.stats()["ops"] == p.stats()["ops"]
    v = RNG.normal(size=x.shape)
    close(c.gradient(x), p.gradient(x), f"{case} C vs Python gradient", rtol=1e-13)
    close(c.hvp(x, v), p.hvp(x, v), f"{case} C vs Python hvp", rtol=1e-12)


# ---- one row per call, gathers where the layout needs them ----

@pytest.mark.parametrize("f, rows, gathers", [
    (lambda x, y: x.T + y, 2, 1),
    (lambda x, y: x[[0, 2, 2]] * 3.0, 2, 1),
    (lambda x, y: np.concatenate([x[0], y[1]]) ** 2, 2, 1),
    (lambda x, y: pyad.stack([x[0, 0], y[1, 2], x[2, 1]]) * 2.0, 2, 1),
    (lambda x, y: x.T * x.T, 2, 1),                 # one gather for both operands
    (lambda x, y: x.sum(axis=0), 1, 0),
    (lambda x, y: x.T.sum(axis=1), 1, 0),           # an affine 2-D layout: read in place
    (lambda x, y: x[[0, 2]].max(), 2, 1),
    (lambda x, y: np.cumsum(x, axis=0), 1, 0),
    (lambda x, y: x.mean(), 2, 0),                  # the sum and one scale row
])
def test_row_counts(f, rows, gathers, backend):
    with pyad.Tape(backend=backend) as t:
        x, y = t.input(np.arange(9.0).reshape(3, 3) + 1), t.input(np.ones((3, 3)))
        n0 = t.n_ops
        g0 = t.stats()["ops"].get("gather", 0)
        out = f(x, y)
        assert t.n_ops - n0 == rows
        assert t.stats()["ops"].get("gather", 0) - g0 == gathers
        t.output(out)


def test_a_guard_on_np_all_is_one_guard_on_one_reduction(backend):
    def f(x):
        if (x > 0).all():
            return np.sum(x)
        return -np.sum(x)
    tape = pyad.trace(f, np.ones(100), backend=backend)
    ops = tape.stats()["ops"]
    assert ops.get("guard_true", 0) == 1 and ops["reduce_min"] == 1
    assert tape.n_ops <= 6, ops


# ---- conventions: ties, zeros, NaN ----

def test_max_and_min_ties_share_the_gradient_evenly(backend):
    x = np.array([[3.0, 1.0, 3.0, 3.0], [0.0, -2.0, -2.0, 1.0]])
    g = pyad.grad(lambda X: np.sum(X.max(axis=1)), backend=backend)(x)
    close(g[0], [1 / 3, 0, 1 / 3, 1 / 3], "max ties", rtol=1e-15)
    g = pyad.grad(lambda X: np.sum(X.min(axis=1)), backend=backend)(x)
    close(g[1], [0, 0.5, 0.5, 0], "min ties", rtol=1e-15)
    tape = pyad.trace(lambda X: np.sum(X.max(axis=1)) ** 2, x, backend=backend)
    v = np.ones_like(x)
    # max is piecewise linear: its second derivative only comes from the square
    H = tape.hvp(x, v)
    # H v = 2 g (g . v), g the shared gradient: g . v = 1 + 1 (one max per row)
    close(H[0], 2 * 2 * np.array([1 / 3, 0, 1 / 3, 1 / 3]), "ties hvp", rtol=1e-14)


@pytest.mark.parametrize("x", [[2.0, 0.0, 3.0, -1.5], [0.0, 4.0, 0.0, 2.0], [0.0] * 4])
def test_prod_is_exact_at_zeros(x, backend):
    x = np.array(x)
    tape = pyad.trace(np.prod, x, backend=backend)
    others = np.array([np.prod(np.delete(x, i)) for i in range(4)])
    np.testing.assert_array_equal(tape.gradient(x), others)
    hess = np.array([[0.0 if i == j else np.prod(np.delete(x, [i, j])) for j in range(4)]
                     for i in range(4)])
    np.testing.assert_array_equal(tape.hessian(x), hess)
    cp = pyad.trace(lambda z: np.sum(np.cumprod(z)), x, backend=backend)
    want = sum(np.r_[[np.prod(np.delete(x[:j + 1], i)) for i in range(j + 1)], np.zeros(3 - j)]
               for j in range(4))
    np.testing.assert_array_equal(cp.gradient(x), want)


def test_nan_propagates_like_numpy(backend):
    x = np.array([1.0, np.nan, 3.0])
    tape = pyad.trace(lambda z: pyad.stack([np.max(z), np.min(z), np.sum(z), np.prod(z)]),
                      np.array([1.0, 2.0, 3.0]), backend=backend)
    with np.errstate(all="ignore"):
        assert np.all(np.isnan(tape(x)))
    g = pyad.grad(np.max, backend=backend)(x)
    assert np.isnan(g[1]) or g[1] == 1.0   # the NaN is the maximum: it gets the gradient
    assert g[0] == 0.0 and g[2] == 0.0


def test_debug_nans_names_the_reduction_row(backend):
    tape = pyad.trace(lambda z: np.sum(np.sqrt(z)), np.ones(4), backend=backend)
    with pyad.debug_nans():
        with pytest.raises(FloatingPointError, match="sqrt"):
            tape(np.array([1.0, -1.0, 2.0, 3.0]))


def test_table_and_stats_show_the_new_rows(backend):
    tape = pyad.trace(lambda X: np.sum(X.max(axis=1)) + X[[0, 0]].sum() + np.cumsum(X).sum(),
                      np.arange(6.0).reshape(2, 3), backend=backend)
    ops = [r["op"] for r in tape.table().rows]
    assert "max(v[-5:1] over 2 x 3)" in ops
    assert "gather(v[-5, -4, -3, -5, -4, -3])" in ops, ops
    assert "cumsum(v[-5:1])" in ops
    s = tape.stats()
    assert s["ops"]["gather"] == 1 and s["ops"]["reduce_max"] == 1 and s["ops"]["cumsum"] == 1
    assert s["slots"]["gather"] == 6


# ---- validation ----

def _gather_tape(backend):
    return pyad.trace(lambda x: np.sum(x[[2, 0, 0, 1]] ** 2), np.arange(1.0, 4.0),
                      backend=backend)


@pytest.mark.parametrize("load_as", ["c", "python"])
@pytest.mark.parametrize("corrupt", ["pool entry past the row", "pool entry -1",
                                     "gather past the pool", "no block entry",
                                     "reduce reads its own slots"])
def test_corrupted_rows_are_refused_on_load(backend, load_as, corrupt):
    tape = _gather_tape(backend)
    a = {k: np.array(v) for k, v in tape._store.export().items()}
    g = int(np.flatnonzero(a["op"] == pyad.ops.CODE["gather"])[0])
    r = int(np.flatnonzero(a["op"] == pyad.ops.CODE["reduce_add"])[0])
    if corrupt == "pool entry past the row":
        a["pool"][a["a"][g] + 1] = a["first"][g]
    elif corrupt == "pool entry -1":
        a["pool"][a["a"][g]] = -1
    elif corrupt == "gather past the pool":
        a["a"][g] = a["pool"].size - 1
    elif corrupt == "no block entry":
        blocks = a["blocks"].reshape(-1, 6)
        a["blocks"] = blocks[blocks[:, 0] != r].reshape(-1)
    else:
        a["a"][r] = a["first"][r]
    store_type = type(pyad.Tape(backend=load_as)._store)
    with pytest.raises(pyad.TapeFormatError):
        store_type.from_arrays(a)
    data = serialize.encode(a, [(3,)], [()]) if hasattr(serialize, "encode") else None
    if data is not None:
        with pytest.raises(pyad.TapeFormatError):
            pyad.loads(data, backend=load_as)


def test_store_gather_copies_slots(backend):
    with pyad.Tape(backend=backend) as t:
        x = t.input(np.array([1.0, 2.0, 3.0]))
        first = t._store.gather(np.array([2, 2, 0], dtype=np.int32))
        y = pyad.Array(t._store, np.arange(first, first + 3))
        t.output(np.sum(y * np.array([1.0, 10.0, 100.0])))
    close(t(), 3 + 30 + 100, "gathered value")
    close(t.gradient(), [100.0, 0.0, 11.0], "scatter-add of repeats")
    with pytest.raises(Exception):
        t._store.gather(np.array([99], dtype=np.int32))
