"""Random array programs (hypothesis): views, broadcasting, transposes, fancy
indexing with repeats, joins, reductions over axes, cumsum and products, over
1-3 input arrays (tests/array_programs.py builds them and prints a failing one
as numpy code).

For each program, on both backends: the value equals the program run on plain
numpy arrays; C and Python agree on value, JVP, VJP, HVP and (small inputs) the
Hessian; forward and reverse mode agree (u.Jv == (u^T J).v); the gradient and
the HVP match central differences; batch=True over 3 points equals a loop;
save/load and pickle replay to the same value and gradient.

PYAD_FUZZ_EXAMPLES scales the examples; PYAD_FUZZ_RANDOM=1 explores new ones
(the default is derandomized, so a run is reproducible).
"""
import os
import pickle
import tempfile

import numpy as np
from hypothesis import HealthCheck, assume, given, note, settings

import pyad

from array_programs import KINK_MARGIN, programs
from helpers import block_matrix, close, flat, unflatten
from helpers import point_arg as arg

EXAMPLES = int(os.environ.get("PYAD_FUZZ_EXAMPLES", "200"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    derandomize=not os.environ.get("PYAD_FUZZ_RANDOM"),
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.data_too_large], print_blob=True)
BACKENDS = ("c", "python")
TIGHT = 1e-10          # C against Python, batch against loop: the same rows, other code
HESSIAN_MAX_INPUTS = 12
SAVED = tempfile.mkdtemp(prefix="pyad-array-programs-")




def hessian_matrix(tape, xs):
    """The Hessian as one (n, n) matrix: for several inputs pyad nests it as JAX
    does (block [i][j] for inputs i, j)."""
    h = tape.hessian(arg(xs))
    if len(xs) == 1:
        return np.reshape(h, (np.size(xs[0]),) * 2)
    sizes = [np.size(x) for x in xs]
    return block_matrix(h, sizes, sizes)



def like(xs, rng):
    return tuple(rng.standard_normal(np.shape(x)) for x in xs)



def plain(program, xs):
    with np.errstate(all="raise"):
        return program(*xs)


def usable(program, xs):
    """Values stay moderate and every kink is at least KINK_MARGIN away."""
    try:
        values = [np.asarray(v, dtype=float) for v in np.errstate(all="raise")(
            program.values)(*xs)]
    except FloatingPointError:
        return False
    return (all(np.all(np.abs(v) < 1e4) for v in values)
            and program.margin(*xs) > KINK_MARGIN)


def traced(program, xs):
    return {b: pyad.trace(program, *xs, backend=b) for b in BACKENDS}


@SETTINGS
@given(case=programs())
def test_backends_agree_with_numpy_and_each_other(case):
    program, xs = case
    note(str(program))
    assume(usable(program, xs))
    rng = np.random.default_rng(len(program.steps))
    tapes = traced(program, xs)
    c, p = tapes["c"], tapes["python"]
    assert c.n_inputs == p.n_inputs == sum(np.size(x) for x in xs)
    ref = plain(program, xs)
    v = like(xs, rng)
    u = rng.standard_normal(np.shape(ref))
    for name, tape in tapes.items():
        close(tape(), ref, 1e-12, f"{name}: recorded value vs numpy")
        close(tape(*xs), ref, 1e-12, f"{name}: replayed value vs numpy")
    # and at a second point, replayed (no re-recording: the programs have no Python branches)
    xs2 = tuple(x + 0.05 * rng.standard_normal(np.shape(x)) for x in xs)
    close(c(*xs2), plain(program, xs2), 1e-12, "C replayed at another point vs numpy")
    close(p(*xs2), plain(program, xs2), 1e-12, "Python replayed at another point vs numpy")

    for point in (xs, xs2):
        (yc, jc), (yp, jp) = c.jvp(arg(point), arg(v)), p.jvp(arg(point), arg(v))
        close(yc, yp, TIGHT, "jvp values")
        close(jc, jp, TIGHT, "JVP C vs Python")
        (_, gc), (_, gp) = c.vjp(arg(point), u), p.vjp(arg(point), u)
        close(gc, gp, TIGHT, "VJP C vs Python")
        # forward and reverse mode: u . (J v) == (u^T J) . v
        scale = float(np.abs(u).sum() * np.abs(flat(gc)).sum() + np.abs(flat(jc)).sum()) + 1.0
        np.testing.assert_allclose(np.dot(flat(u), flat(jc)), np.dot(flat(gc), flat(v)),
                                   rtol=1e-10, atol=1e-10 * scale, err_msg="u.Jv vs uJ.v")
    assert c.retraces == p.retraces == 0

    if np.shape(ref) == ():
        close(c.gradient(*xs), p.gradient(*xs), TIGHT, "gradient C vs Python")
        close(c.hvp(arg(xs), arg(v)), p.hvp(arg(xs), arg(v)), TIGHT, "HVP C vs Python")
        if c.n_inputs <= HESSIAN_MAX_INPUTS:
            n = c.n_inputs
            hc, hp = hessian_matrix(c, xs), hessian_matrix(p, xs)
            assert hc.shape == (n, n)
            close(hc, hp, TIGHT, "Hessian C vs Python")
            close(hc @ flat(v), c.hvp(arg(xs), arg(v)), 1e-10, "Hessian @ v vs HVP")
            np.testing.assert_allclose(hc, hc.T, rtol=1e-10, atol=1e-10, err_msg="symmetry")


def central_gradient(f, x, h=1e-6):
    g = np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g


@SETTINGS
@given(case=programs())
def test_derivatives_match_central_differences(case):
    program, xs = case
    note(str(program))
    assume(usable(program, xs))
    x0 = flat(xs)
    rng = np.random.default_rng(7)
    v = rng.standard_normal(x0.size)
    if np.shape(plain(program, xs)) != ():
        # a vector output: the JVP against a central difference along v
        for b in BACKENDS:
            tape = pyad.trace(program, *xs, backend=b)
            _, jv = tape.jvp(arg(xs), arg(unflatten(v, xs)))
            h = 1e-6
            fd = (flat(plain(program, unflatten(x0 + h * v, xs)))
                  - flat(plain(program, unflatten(x0 - h * v, xs)))) / (2 * h)
            close(jv, fd, 1e-5, f"{b}: JVP vs central difference")
        return
    f = lambda x: float(plain(program, unflatten(x, xs)))
    fd = central_gradient(f, x0)
    for b in BACKENDS:
        tape = pyad.trace(program, *xs, backend=b)
        g = flat(tape.gradient(*xs))
        close(g, fd, 1e-5, f"{b}: gradient vs central differences")
        # the HVP against a central difference of the (exact) gradient along v
        h = 1e-6
        hv_fd = (flat(tape.gradient(*unflatten(x0 + h * v, xs)))
                 - flat(tape.gradient(*unflatten(x0 - h * v, xs)))) / (2 * h)
        close(tape.hvp(arg(xs), arg(unflatten(v, xs))), hv_fd, 1e-5,
              f"{b}: HVP vs central difference of the gradient")


@SETTINGS
@given(case=programs())
def test_batch_equals_loop_and_saved_tapes_replay(case):
    program, xs = case
    note(str(program))
    assume(usable(program, xs))
    rng = np.random.default_rng(3)
    points = [tuple(x + 0.1 * rng.standard_normal(np.shape(x)) for x in xs) for _ in range(3)]
    batched = tuple(np.stack([pt[k] for pt in points]) for k in range(len(xs)))
    dirs = [like(xs, rng) for _ in points]
    V = tuple(np.stack([d[k] for d in dirs]) for k in range(len(xs)))
    scalar = np.shape(plain(program, xs)) == ()
    for b in BACKENDS:
        tape = pyad.trace(program, *xs, backend=b)
        values = tape(*batched, batch=True)
        for k, pt in enumerate(points):
            close(values[k], tape(*pt), TIGHT, f"{b}: batched value {k}")
        _, jv = tape.jvp(arg(batched), arg(V), batch=True)
        for k, pt in enumerate(points):
            close(jv[k], tape.jvp(arg(pt), arg(dirs[k]))[1], TIGHT, f"{b}: batched JVP {k}")
        if scalar:
            g = tape.gradient(*batched, batch=True)
            hv = tape.hvp(arg(batched), arg(V), batch=True)
            for k, pt in enumerate(points):
                gk = tuple(part[k] for part in g) if isinstance(g, tuple) else g[k]
                close(gk, tape.gradient(*pt), TIGHT, f"{b}: batched gradient {k}")
                hk = tuple(part[k] for part in hv) if isinstance(hv, tuple) else hv[k]
                close(hk, tape.hvp(arg(pt), arg(dirs[k])), TIGHT, f"{b}: batched HVP {k}")

        # a saved tape (file and pickle, into either backend) replays identically
        path = os.path.join(SAVED, f"{b}.pyad")
        tape.save(path)
        copies = [pickle.loads(pickle.dumps(tape))] + [pyad.load(path, backend=other)
                                                      for other in BACKENDS]
        pt = points[0]
        for copy in copies:
            close(copy(*pt), tape(*pt), TIGHT, f"{b} -> {copy.backend}: saved value")
            if scalar:
                close(copy.gradient(*pt), tape.gradient(*pt), TIGHT,
                      f"{b} -> {copy.backend}: saved gradient")
            else:
                u = np.ones(np.shape(tape(*pt)))
                close(copy.vjp(arg(pt), u)[1], tape.vjp(arg(pt), u)[1], TIGHT,
                      f"{b} -> {copy.backend}: saved VJP")


def test_save_to_a_file_round_trips_an_array_program(tmp_path):
    """tape.save / pyad.load on a fixed program touching every step kind."""
    def f(a, b):
        m = a[[0, 2, 2]] @ b.T[:, ::-1]
        return np.sum(np.cumsum(np.maximum(m, 0.1) * a[1:].mean(axis=0, keepdims=True)[:, :2],
                                axis=1) + np.einsum("ij,ij->i", a, a)[:, None][:3])
    a = np.linspace(-1.2, 1.3, 12).reshape(4, 3)
    b = np.linspace(0.7, -0.9, 6).reshape(2, 3)
    for backend in BACKENDS:
        tape = pyad.trace(f, a, b, backend=backend)
        path = tmp_path / f"{backend}.pyad"
        tape.save(path)
        for other in BACKENDS:
            loaded = pyad.load(path, backend=other)
            close(loaded(a * 0.9, b), f(a * 0.9, b), 1e-12, f"{backend} -> {other}: value")
            close(loaded.gradient(a * 0.9, b), tape.gradient(a * 0.9, b), TIGHT,
                  f"{backend} -> {other}: gradient")
