"""Tile-fused sweeps of elementwise runs (csrc/fused.c).

The C core sweeps a run of same-width elementwise rows (optionally ending in
a full sum) a tile at a time in tape.gradient, tape.vjp and tape.hvp: the rows
read only inside the run keep their adjoints in tile scratch and have their
values and tangents recomputed. What must hold: every result equals the
unfused sweeps' (the batched and vector sweeps never fuse) and the pure-Python
backend's, whatever the operands: views with offsets into one block
(x[1:], x[:-1]), strided views, broadcast scalars (their adjoint is a sum),
rows also read after the run or returned as outputs (then not internal), a
run feeding a product, float32, batches, guards, parameters (passive rows),
widths that leave a partial last tile.

Runs are made of rows at least 512 wide (LAZY_MIN_WIDTH), so arrays here are
wider."""
import pickle

import numpy as np
import pytest

import pyad

RTOL = 1e-12
# a width below one tile, one with a partial last tile, several tiles
WIDTHS = (600, 1003, 5001)


def fused_runs(tape):
    """(first row, last row, internal rows) of each fused run of a C tape."""
    from pyad._pyad_c import ffi, lib
    out = ffi.new("int64_t[300]")
    n = lib.pyad_fused_runs(tape._store._h, out, 100)
    assert n >= 0
    return [tuple(out[3 * j:3 * j + 3]) for j in range(n)]


def close(a, b, rtol=RTOL):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    scale = max(1.0, float(np.max(np.abs(b)))) if b.size else 1.0
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale)


def check_everywhere(f, x, backend, v=None, argnums=None):
    """The fused sweeps (gradient, vjp, hvp) against the batched sweeps of the
    same tape, the Python backend's tape and pyad.grad's fresh recording."""
    v = np.cos(np.arange(x.size)).reshape(x.shape) if v is None else v
    tape = pyad.trace(f, x, backend=backend)
    oracle = pyad.trace(f, x, backend="python")
    x2 = x * 0.9 + 0.05  # replayed at another point
    for point in (x, x2, x):
        # first at each point: the values the one-call sweeps compute on the way
        # (the work arrays hold the previous point's)
        if backend == "c":
            flat = np.ascontiguousarray(point, dtype=float).ravel()
            y = tape._store.hvp(flat, np.ascontiguousarray(v, dtype=float).ravel(),
                                np.ones(1))[0]
            close(y, [oracle(point)])
        value, g = tape.value_and_gradient(point)
        close(value, oracle(point))
        close(g, tape.gradient(point))
        close(g, oracle.gradient(point))
        close(tape.vjp(point, 1.0)[1], g)
        close(tape.gradient(point[None], batch=True)[0], g)
        hv = tape.hvp(point, v)
        close(hv, oracle.hvp(point, v))
        close(tape.hvp(point[None], v[None], batch=True)[0], hv)
    return tape


def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


@pytest.mark.parametrize("n", WIDTHS)
def test_rosenbrock_is_one_run_with_offset_views_of_one_block(backend, n):
    x = np.linspace(-1.2, 1.0, n)
    tape = check_everywhere(rosenbrock, x, backend)
    if backend == "c":
        assert fused_runs(tape) == [(1, 8, 7)]  # every row, none kept
    x0, x1, v = x[:-1], x[1:], np.sin(np.arange(n))
    d = x1 - x0 * x0
    g = np.zeros_like(x)
    g[:-1] = -400.0 * x0 * d - 2.0 * (1.0 - x0)
    g[1:] += 200.0 * d
    hv = np.zeros_like(x)
    hv[:-1] = (1200.0 * x0 * x0 - 400.0 * x1 + 2.0) * v[:-1] - 400.0 * x0 * v[1:]
    hv[1:] += 200.0 * v[1:] - 400.0 * x0 * v[:-1]
    close(tape.gradient(x), g, 1e-11)
    close(tape.hvp(x, v), hv, 1e-11)


@pytest.mark.parametrize("n", WIDTHS)
def test_broadcast_scalars_receive_the_sum_of_every_element(backend, n):
    def f(x):
        c = x[2] * 2.0                    # a scalar row, broadcast into the run
        return np.sum(pyad.sin(x * x[3]) * c + x[0] + (x * c) ** 2 + (x[1] - x * 0.5) ** 2)

    x = np.linspace(0.1, 0.9, n)
    tape = check_everywhere(f, x, backend)
    if backend == "c":
        assert len(fused_runs(tape)) == 1
    # x[0]'s adjoint: 1 per element, plus its own element's terms
    s = x[3]
    c = 2.0 * x[2]
    g = np.cos(x * s) * s * c + 2.0 * x * c * c - (x[1] - x * 0.5)
    g[0] += n
    g[1] += 2.0 * np.sum(x[1] - x * 0.5)
    g[2] += 2.0 * np.sum(np.sin(x * s)) + 2.0 * np.sum(2.0 * x * x * c)
    g[3] += np.sum(np.cos(x * s) * x * c)
    close(tape.gradient(x), g, 1e-11)


@pytest.mark.parametrize("n", (1200, 4000))
def test_strided_views_and_a_row_read_as_both_operands(backend, n):
    def f(x):
        a = pyad.sin(x[::2]) + x[1::2]
        b = a * a                         # one member read through both operands
        unused = b * 3.0                  # a member nothing reads
        del unused
        return np.sum(pyad.exp(b * 0.1) - a)

    x = np.linspace(-1.0, 1.0, n)
    tape = check_everywhere(f, x, backend)
    if backend == "c":
        runs = fused_runs(tape)
        assert len(runs) == 1 and runs[0][2] >= 4


def test_a_run_feeding_a_product_keeps_that_row(backend):
    rng = np.random.default_rng(3)
    A = rng.standard_normal((800, 7))

    def f(x):
        y = pyad.tanh(x * 0.5 + 0.25)      # read by the product after the run
        z = y @ A
        return np.sum(z ** 2) + np.sum(y * y)

    x = np.linspace(-2.0, 2.0, 800)
    tape = check_everywhere(f, x, backend)
    if backend == "c":
        runs = fused_runs(tape)
        assert runs and all(k0 <= k1 for k0, k1, _ in runs)
        first = runs[0]
        assert first[2] == first[1] - first[0]  # the tanh row is kept


def test_a_row_read_after_the_run_is_not_internal(backend):
    def f(x):
        a = pyad.exp(x * 0.5)
        s = np.sum(a * a)                 # the run: a * 0.5, exp, square, sum
        return np.sum(a * s)              # reads a again, after the run

    x = np.linspace(-1.0, 1.0, 900)
    tape = check_everywhere(f, x, backend)
    if backend == "c":
        runs = fused_runs(tape)
        assert runs[0][2] == 2  # x * 0.5 and a * a; exp's row is kept
    a = np.exp(x * 0.5)
    s = np.sum(a * a)
    g = 0.5 * a * s + np.sum(a) * a * a
    close(tape.gradient(x), g, 1e-11)


def test_an_intermediate_that_is_an_output_keeps_its_adjoints(backend):
    def f(x):
        a = pyad.sin(x) * 2.0
        return np.sum(a * x), a

    x = np.linspace(0.0, 3.0, 700)
    tape = pyad.trace(f, x, backend=backend)
    oracle = pyad.trace(f, x, backend="python")
    u = (np.array(1.5), np.cos(np.arange(700)))
    for mode in ("fwd", "rev"):
        close(tape.jacobian(x, mode=mode)[1], oracle.jacobian(x, mode=mode)[1])
    y, xbar = tape.vjp(x, u)
    y2, xbar2 = oracle.vjp(x, u)
    close(xbar, xbar2)
    close(xbar, 1.5 * (2.0 * np.cos(x) * x + 2.0 * np.sin(x)) + u[1] * 2.0 * np.cos(x))


def test_float32_inputs_and_batches(backend):
    x = np.linspace(-1.2, 1.0, 1003).astype(np.float32)
    tape = pyad.trace(rosenbrock, x, backend=backend)
    oracle = pyad.trace(rosenbrock, x.astype(float), backend="python")
    g = tape.gradient(x)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, oracle.gradient(x.astype(float)), rtol=1e-5, atol=1e-3)
    X = np.stack([x, x * 0.5, x + 0.1]).astype(float)
    V = np.cos(X)
    G = tape.gradient(X, batch=True)
    H = tape.hvp(X, V, batch=True)
    for k in range(3):
        close(G[k], tape.gradient(X[k]))
        close(H[k], tape.hvp(X[k], V[k]))
        close(H[k], oracle.hvp(X[k], V[k]))


def test_hessian_of_a_run(backend):
    def f(x):
        return np.sum(pyad.log(1.0 + x * x) * x[0])

    x = np.linspace(0.2, 1.4, 520)
    tape = pyad.trace(f, x, backend=backend)
    H = tape.hessian(x)
    e = np.zeros(520)
    for j in (0, 1, 300, 519):
        e[:] = 0.0
        e[j] = 1.0
        close(tape.hvp(x, e), H[:, j])
    close(pyad.hessian(f, backend="python")(x), H)


def test_guards_still_rerecord_or_raise(backend):
    def f(x):
        if np.min(x) > 0:
            return np.sum(pyad.sqrt(x * 2.0) + x)
        return np.sum(x * x * 3.0)

    x = np.linspace(0.5, 2.0, 800)
    tape = pyad.trace(f, x, backend=backend)
    close(tape.gradient(x), 1.0 / np.sqrt(2.0 * x) + 1.0)
    close(tape.hvp(x, np.ones(800)), -0.5 / np.sqrt(2.0 * x) ** 3 * 2.0)
    flipped = x - 1.0
    close(tape.gradient(flipped), 6.0 * flipped)
    close(tape.hvp(flipped, np.ones(800)), np.full(800, 6.0))


def test_parameters_make_passive_rows_and_the_run_is_swept_row_by_row(backend):
    def loss(w, X):
        s = X * 2.0                          # passive: from the parameter only
        return np.sum(pyad.sin(w * s) + s * w * w)

    w = np.linspace(0.1, 1.0, 640)
    X = np.linspace(1.0, 2.0, 640)
    tape = pyad.trace(loss, w, X, argnums=0, backend=backend)
    X2 = X[::-1].copy()
    s = 2.0 * X2
    close(tape.gradient(w, X2), np.cos(w * s) * s + 2.0 * s * w)
    close(tape.hvp((w, X2), np.ones(640)), -np.sin(w * s) * s * s + 2.0 * s)


def test_dirty_work_arrays_and_repeated_sweeps_agree(backend):
    x = np.linspace(-1.2, 1.0, 5001)
    v = np.sin(np.arange(5001))
    tape = pyad.trace(rosenbrock, x, backend=backend)
    g, hv = tape.gradient(x), tape.hvp(x, v)
    for _ in range(3):
        tape.jvp(x * 2.0, v * 5.0)
        tape.hvp(x * 3.0, v)
        close(tape.gradient(x), g)
        close(tape.hvp(x, v), hv)
        close(tape.vjp(x, 1.0)[1], g)


# ---- one pass: a run swept forward and back at once (csrc/fused.c) ----
# Where the sum's adjoint is known from the outputs' seeds before any value
# (the run's sum is the output, or feeds a short tail affine in it), the run
# is swept forward and back in one pass; where every row before it is an
# input, it reads the inputs in place and adds straight into the gradient.


def hvp_by_differences(tape, x, v, h=1e-5):
    """Central differences of the gradient along v."""
    return (tape.gradient(x + h * v) - tape.gradient(x - h * v)) / (2.0 * h)


def run_body(x):
    return 100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2


TAILS = {
    "mean": lambda x: np.mean(run_body(x)),
    "sum times c": lambda x: np.sum(run_body(x)) * 0.25,
    "sum over c, plus c": lambda x: np.sum(run_body(x)) / 3.0 - 1.5,
    "minus sum, negated": lambda x: -(2.0 - np.sum(run_body(x))),
    "the sum used twice": lambda x: (lambda s: s * 0.5 + s - s / 4.0)(np.sum(run_body(x))),
    "two sums": lambda x: np.sum(pyad.sin(x) * x) + np.sum(run_body(x)) * 2.0,
    "a tail reading an input": lambda x: np.sum(run_body(x)) * 0.5 + x[3] * x[0],
    "a tail not affine in the sum": lambda x: pyad.log(np.sum(run_body(x))) * 2.0,
    "sum and a constant-only tail row": lambda x: np.sum(run_body(x)) * (np.sum(x[:2] * 0.0) + 2.0),
}


@pytest.mark.parametrize("tail", sorted(TAILS))
@pytest.mark.parametrize("n", (600, 5001))
def test_a_run_feeding_a_scalar_tail(backend, tail, n):
    f = TAILS[tail]
    x = np.linspace(-1.2, 1.0, n)
    v = np.cos(np.arange(n))
    tape = check_everywhere(f, x, backend, v=v)
    close(tape.hvp(x, v), hvp_by_differences(tape, x, v), 1e-6)


def test_inputs_given_as_several_arguments_and_scalars(backend):
    def f(a, b, c):
        return np.sum((a * c - b) ** 2 + pyad.sin(a) * b) * 0.5

    n = 1500
    a, b, c = np.linspace(0.1, 2.0, n), np.linspace(-1.0, 1.0, n), 1.75
    tape = pyad.trace(f, a, b, c, backend=backend)
    oracle = pyad.trace(f, a, b, c, backend="python")
    va, vb, vc = np.sin(np.arange(n)), np.cos(np.arange(n)), 0.5
    for point in ((a, b, c), (a * 0.5, b + 1.0, -2.0)):
        got, want = tape.gradient(*point), oracle.gradient(*point)
        for g, w in zip(got, want):
            close(g, w)
        got = tape.hvp(point, (va, vb, vc))
        want = oracle.hvp(point, (va, vb, vc))
        for g, w in zip(got, want):
            close(g, w)


def test_a_guard_on_the_sum_in_the_tail(backend):
    def f(x):
        s = np.sum(x * x - 1.0)
        if s > 0:
            return s * 2.0
        return s * -3.0

    x = np.linspace(0.5, 2.0, 800)
    tape = pyad.trace(f, x, backend=backend)
    close(tape.gradient(x), 4.0 * x)
    close(tape.hvp(x, np.ones(800)), np.full(800, 4.0))
    small = x * 0.1  # the guard flips: re-recorded, by the HVP (which wants no value) first
    close(tape.hvp(small, np.ones(800)), np.full(800, -6.0))
    close(tape.gradient(small), -6.0 * small)
    frozen = pickle.loads(pickle.dumps(pyad.trace(f, x, backend=backend)))
    with pytest.raises(pyad.BranchError):  # nothing to re-record: the HVP alone raises
        frozen.hvp(small, np.ones(800))


def test_one_pass_values_are_the_replays_bit_for_bit(backend):
    x = np.linspace(-1.2, 1.0, 5001)
    for f in (rosenbrock, TAILS["mean"], TAILS["two sums"]):
        tape = pyad.trace(f, x, backend=backend)
        value, _ = tape.value_and_gradient(x * 0.7)
        assert value == tape(x * 0.7)


@pytest.mark.parametrize("tail", ["mean", "two sums"])
def test_one_pass_in_float32_and_batches(backend, tail):
    f = TAILS[tail]
    x = np.linspace(-1.2, 1.0, 1003)
    tape = pyad.trace(f, x.astype(np.float32), backend=backend)
    oracle = pyad.trace(f, x, backend="python")
    v = np.cos(np.arange(1003))
    hv = tape.hvp(x.astype(np.float32), v.astype(np.float32))
    assert hv.dtype == np.float32
    want = oracle.hvp(x.astype(np.float32).astype(float), v.astype(np.float32).astype(float))
    np.testing.assert_allclose(hv, want, rtol=1e-5, atol=1e-3 * np.max(np.abs(want)))
    X = np.stack([x, x * 0.5, x + 0.1])
    V = np.cos(X)
    H = tape.hvp(X, V, batch=True)
    for k in range(3):
        close(H[k], tape.hvp(X[k], V[k]))
        close(H[k], oracle.hvp(X[k], V[k]))


def test_hvp_fast_path_agrees_with_the_general_one(backend):
    def f(x):
        return np.mean((x[:, 1:] - x[:, :-1] ** 2) ** 2) * 3.0

    x = np.linspace(-1.0, 1.0, 1200).reshape(30, 40)
    v = np.sin(np.arange(1200)).reshape(30, 40)
    tape = pyad.trace(f, x, backend=backend)
    oracle = pyad.trace(f, x, backend="python")
    hv = tape.hvp(x, v)                           # float64, contiguous: the fast path
    assert hv.shape == (30, 40) and hv.dtype == np.float64
    close(hv, oracle.hvp(x, v))
    close(tape.hvp(x.tolist(), v.tolist()), hv)   # the general path
    close(tape.hvp(np.asfortranarray(x), v), hv)  # not C-contiguous: general
    with pytest.raises(ValueError, match="shape"):
        tape.hvp(x, v.ravel()[:-1])
    with pytest.raises(ValueError, match="shape"):
        tape.hvp(x[:, :-1].copy(), v[:, :-1].copy())
