"""Batched sweeps of block rows with the points innermost (csrc/block_lanes.c,
csrc/reduce_lanes.c): every sweep of a batch equals a loop of one-point sweeps,
for every operand layout an elementwise row can have (contiguous, one slot
broadcast, strided, a constant per element, both operands one slot, operands
overlapping in part, select with one branch twice) and for every reduction and
scan. Elementwise rows may round differently in the last bits (glibc's vector
math, as scalar rows in a batch already do); reductions and scans are bit for
bit the loop. Both backends."""
import numpy as np
import pytest

import pyad

RNG = np.random.default_rng(11)
# odd point counts: the vectorized loops' ragged ends are exercised too
N_POINTS = (1, 7, 37)


def _points(n_points, shape, low=0.4, high=1.6):
    return RNG.uniform(low, high, (n_points,) + shape) * RNG.choice([-1.0, 1.0],
                                                                    (n_points,) + shape)


# name: (f, the shape of x); every f maps an array to an array
ELEMENTWISE = {
    "contiguous_transcendental": (lambda x: np.sin(x) * np.exp(np.cos(x)) + np.log(x * x),
                                  (9,)),
    "pow_and_pow_c": (lambda x: np.abs(x) ** x[::-1] + np.abs(x) ** 2.5, (6,)),
    "one_slot_twice": (lambda x: np.multiply(x, x) + np.divide(x, x) * np.sin(x), (5,)),
    "overlapping_in_part": (lambda x: x[1:] * x[:-1] + np.arctan2(x[2:], x[:-2]).sum(), (8,)),
    "broadcast_slot": (lambda x: x * x[0] + np.maximum(x, x[2]) - x[1] ** x[3], (7,)),
    "strided": (lambda x: x[::2] * x[1::2] + np.tanh(x[::3]).sum(), (10,)),
    "constant_per_element": (lambda x: x * np.arange(1.0, 7.0) - np.linspace(2, 3, 6) / x
                             + np.minimum(x, np.linspace(-1, 1, 6)), (6,)),
    "select": (lambda x: pyad.where(x > 0.0, x * x, np.exp(x))
               + pyad.where(x < x[::-1], x, x) * np.sqrt(np.abs(x)), (8,)),
    "compare_rows": (lambda x: (x > x[::-1]) * 1.0 + (x <= 0.5) * x, (6,)),
    "transposed_2d": (lambda X: np.cos(X.T) * X.T[::-1] + X[:, 0], (3, 4)),
}


def close(a, b, what, rtol=1e-12, atol=1e-13):
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float),
                               rtol=rtol, atol=atol, err_msg=what)


def weighted(f):
    """A scalar objective: a fixed weighting of f's outputs."""
    def obj(x):
        y = f(x)
        w = np.cos(np.arange(int(np.prod(y.shape))) + 1.0).reshape(y.shape)
        return np.sum(y * w)
    return obj


def every_sweep(tape, X, V, U, scalar):
    """{sweep: (batched result, the loop of one-point results)}."""
    out = {"value": (tape(X, batch=True), [tape(x) for x in X]),
           "gradient" if scalar else "jacobian":
               (tape.gradient(X, batch=True), [tape.gradient(x) for x in X]) if scalar else
               (tape.jacobian(X, batch=True), [tape.jacobian(x) for x in X]),
           "jvp": (tape.jvp(X, V, batch=True)[1], [tape.jvp(x, v)[1] for x, v in zip(X, V)]),
           "vjp": (tape.vjp(X, U, batch=True)[1], [tape.vjp(x, u)[1] for x, u in zip(X, U)])}
    if scalar:
        out["hvp"] = (tape.hvp(X, V, batch=True), [tape.hvp(x, v) for x, v in zip(X, V)])
        out["hessian"] = (tape.hessian(X, batch=True), [tape.hessian(x) for x in X])
    return out


@pytest.mark.parametrize("n_points", N_POINTS)
@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_batch_equals_the_loop(name, n_points, backend):
    f, shape = ELEMENTWISE[name]
    X, V = _points(n_points, shape), _points(n_points, shape)
    for scalar, g in ((True, weighted(f)), (False, f)):
        tape = pyad.trace(g, X[0], backend=backend)
        U = _points(n_points, np.shape(tape(X[0])))
        for sweep, (batched, loop) in every_sweep(tape, X, V, U, scalar).items():
            close(batched, np.stack(loop), f"{name}: {sweep} at {n_points} points")
        assert tape.retraces == 0, "the points share the recorded branches"


def test_elementwise_batch_matches_numpy_by_hand(backend):
    """The batch itself is right, not only equal to the loop."""
    X = _points(13, (6,))
    tape = pyad.trace(lambda x: np.sum(np.exp(np.sin(x)) * x[0] + x[1:].sum() * x), X[0],
                      backend=backend)
    G = tape.gradient(X, batch=True)
    e = np.exp(np.sin(X))
    ref = e * np.cos(X) * X[:, :1] + X[:, 1:].sum(axis=1, keepdims=True)
    ref[:, 0] += e.sum(axis=1)
    ref[:, 1:] += X.sum(axis=1, keepdims=True)
    close(G, ref, "gradient against numpy by hand")


# ---- reductions and scans: bit for bit the loop ----

REDUCTIONS = {
    "sum_all": (lambda X: np.sum(X * 2.0), (3, 5)),
    "sum_long": (lambda x: np.sum(x * x), (300,)),   # pairwise: blocks of 8, halves above 128
    "sum_axis0": (lambda X: X.sum(axis=0), (4, 3)),
    "sum_axis1_strided": (lambda X: X[:, ::2].sum(axis=1), (3, 8)),
    "prod_axis1": (lambda X: X.prod(axis=1), (3, 5)),
    "prod_long": (lambda x: np.prod(x), (40,)),       # the product tree has leaves of 16
    "max_axis0": (lambda X: X.max(axis=0), (4, 3)),
    "min_all": (lambda X: np.min(X * 1.5), (3, 4)),
    "cumsum": (lambda x: np.cumsum(x), (9,)),
    "cumsum_axis0": (lambda X: np.cumsum(X, axis=0), (3, 4)),
    "cumprod_axis1": (lambda X: np.cumprod(X, axis=1), (2, 6)),
}


def special_values(X):
    """Ties, zeros and -0 at some points (the product's zero-safe reverse, the
    even split among ties)."""
    X = X.copy()
    flat = X.reshape(X.shape[0], -1)
    flat[1, :3] = flat[1, 0]          # a three-way tie
    flat[2, 1] = 0.0                  # a zero in a product
    flat[2, 4] = -0.0
    if flat.shape[1] > 7:
        flat[3, [2, 7]] = 0.0         # two zeros
    return X


def assert_same(a, b, what):
    np.testing.assert_array_equal(np.asarray(a, dtype=float), np.asarray(b, dtype=float),
                                  err_msg=what)
    assert np.array_equal(np.signbit(a), np.signbit(b)), f"{what}: signs of zeros differ"


@pytest.mark.parametrize("n_points", (7, 70))
@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reductions_batch_is_bit_for_bit_the_loop(name, n_points, backend):
    f, shape = REDUCTIONS[name]
    if backend == "python":   # its one-point Hessians of 300 inputs are slow; few points
        n_points = 4 + n_points // 35
    X, V = special_values(_points(n_points, shape)), _points(n_points, shape)
    for scalar, g in ((True, weighted(f)), (False, f)):
        tape = pyad.trace(g, X[0], backend=backend)
        U = _points(n_points, np.shape(tape(X[0])))
        for sweep, (batched, loop) in every_sweep(tape, X, V, U, scalar).items():
            if backend == "c":
                assert_same(batched, np.stack(loop), f"{name}: {sweep} at {n_points} points")
            else:
                close(batched, np.stack(loop), f"{name}: {sweep} at {n_points} points")


def test_reduction_conventions_in_a_batch(backend):
    """Ties share evenly, a zero factor still gets the product of the others,
    NaN wins the maximum: per point, as at one point."""
    X = np.array([[2.0, 2.0, 1.0, 2.0], [0.0, 3.0, 4.0, 5.0], [1.0, np.nan, 3.0, 0.5],
                  [0.0, 0.0, 2.0, 3.0]])
    tmax = pyad.trace(lambda x: np.max(x), X[0], backend=backend)
    G = tmax.gradient(X, batch=True)
    close(G[0], [1 / 3, 1 / 3, 0, 1 / 3], "ties share", rtol=1e-15)
    assert np.isnan(tmax(X, batch=True)[2])
    tprod = pyad.trace(lambda x: np.prod(x), X[0], backend=backend)
    close(tprod.gradient(X, batch=True)[1], [60.0, 0, 0, 0], "zero factor", rtol=1e-15)
    close(tprod.gradient(X, batch=True)[3], [0.0, 0, 0, 0], "two zeros", rtol=1e-15)
    close(tprod.hvp(X[[3]], np.ones((1, 4)), batch=True)[0], [6.0, 6, 0, 0],
          "two zeros: the mixed second derivatives", rtol=1e-15)


def test_many_points_across_chunks_and_threads(backend):
    """More points than one chunk holds (chunks are sized by slots), on threads:
    the same numbers as one call per point."""
    n = 400 if backend == "c" else 40
    X = _points(n, (50,))
    tape = pyad.trace(lambda x: np.sum(np.sin(x[1:]) * x[:-1] ** 2) + np.max(x) * np.sum(x),
                      X[0], backend=backend)
    G = tape.gradient(X, batch=True)
    close(G, [tape.gradient(x) for x in X], "batch vs loop")
    close(tape.gradient(X, batch=True, threads=2), G, "threads=2")
