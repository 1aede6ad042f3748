"""Operands a block row cannot read with one stride (a row vector broadcast
over a matrix, `Z + b`; a column, `Z * c[:, None]`; a reversed or fancy-indexed
view) are copied by a gather row: every sweep must pass their adjoints back,
summed over the broadcast axis, also where the gathered block is wide enough for
the lazy zeroing of adjoints (csrc/lazy_adjoint.c, 512 slots and up)."""
import numpy as np
import pytest

import pyad

Z0 = np.linspace(-1.0, 1.0, 40 * 30).reshape(40, 30)
B0 = np.linspace(0.0, 1.0, 30)
C0 = np.linspace(-0.5, 0.5, 40)
X0 = np.linspace(-1.0, 1.0, 600)
IDX = np.array([5, 3, 3, 599, 0])

PROGRAMS = {
    "row broadcast Z + b": (lambda Z, b, c: np.sum(np.tanh(Z * 2.0 + b) ** 2), 1),
    "column broadcast Z * c[:, None]": (lambda Z, b, c: np.sum(np.sin(Z * c[:, None]) * Z), 2),
    "both, of computed rows": (lambda Z, b, c: np.sum((np.exp(b) + Z) * np.cos(c)[:, None]), 0),
}


def central(f, x, h=1e-6):
    g = np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e.flat[i] = h
        g.flat[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_broadcast_operands_in_every_sweep(backend, name):
    f, _ = PROGRAMS[name]
    args = (Z0, B0, C0)
    tape = pyad.trace(f, *args, backend=backend)
    other = pyad.trace(f, *args, backend="python" if backend == "c" else "c")
    assert tape(*args) == pytest.approx(f(*args), rel=1e-13)
    g = tape.gradient(*args)
    for mine, theirs in zip(g, other.gradient(*args)):
        np.testing.assert_allclose(mine, theirs, rtol=1e-13, atol=1e-13)
    # b and c against central differences (Z has too many coordinates to difference)
    np.testing.assert_allclose(g[1], central(lambda b: f(Z0, b, C0), B0), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(g[2], central(lambda c: f(Z0, B0, c), C0), rtol=1e-6, atol=1e-7)
    rng = np.random.default_rng(3)
    v = tuple(rng.standard_normal(a.shape) for a in args)
    _, jv = tape.jvp(args, v)
    assert jv == pytest.approx(sum(np.sum(gi * vi) for gi, vi in zip(g, v)), rel=1e-12)
    hv = tape.hvp(args, v)
    for mine, theirs in zip(hv, other.hvp(args, v)):
        np.testing.assert_allclose(mine, theirs, rtol=1e-12, atol=1e-12)
    points = tuple(np.stack([a, a * 0.5]) for a in args)
    gb = tape.gradient(*points, batch=True)
    for k in range(2):
        gk = tape.gradient(*(p[k] for p in points))
        for mine, one in zip(gb, gk):
            np.testing.assert_allclose(mine[k], one, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("f", [lambda v: np.sum(np.tanh(v)[IDX] ** 2),
                               lambda v: np.sum(np.sin(2.0 * v)[::-1][::3] * 3.0)],
                         ids=["fancy index with repeats", "reversed strided view"])
def test_a_wide_block_read_only_through_a_gather_gets_its_adjoints(backend, f):
    """600 slots: lazily zeroed; the gather is its only reader, so the plan must
    count the gather as reading it (else its adjoints are wiped after the
    gather added to them)."""
    want = pyad.grad(f, backend="python")(X0)
    np.testing.assert_allclose(pyad.grad(f, backend=backend)(X0), want, rtol=1e-13, atol=1e-14)
    tape = pyad.trace(f, X0, backend=backend)
    for _ in range(2):   # the second sweep reuses the plan and the work arrays
        np.testing.assert_allclose(tape.gradient(X0), want, rtol=1e-13, atol=1e-14)
