"""The checks every kind of array row passes, written once for the test files of
product rows and linear-algebra rows.

A test file subclasses CaseChecks with its cases and the tolerances its rows
reach, and hands its module's pytest_generate_tests to this module's:

    class TestCases(row_cases.CaseChecks):
        CASES = {name: (f of a flat vector z, size of z, rows f records)}
        VECTOR_CASES = {name: (f with a vector result, size of z)}
        OPS = ("eigh",)     # the op names whose rows are counted
        AGREE = 1e-11       # two exact computations of one derivative agree to this

    pytest_generate_tests = row_cases.generate_tests

Every f is nonlinear after its row, so second derivatives exercise the
second-order sweeps. The oracles: numpy's value of f, central differences of f
and of the gradient, forward against reverse, one point against a batch, the
C backend against the Python one, a tape against its saved and loaded copy."""
import numpy as np

import pyad
from pyad import serialize

from helpers import central_diff_grad


def point(size, seed=0):
    return np.random.default_rng(seed).normal(size=size)


def rel(a, b):
    """The largest difference, relative to b's largest entry (or absolute below 1)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.max(np.abs(a - b)) / max(1.0, np.max(np.abs(b)))


def generate_tests(metafunc):
    """Parametrizes `case` over the class's CASES and `vector_case` over its VECTOR_CASES."""
    cls = metafunc.cls
    if cls is None or not issubclass(cls, CaseChecks):
        return
    for name, cases in (("case", cls.CASES), ("vector_case", cls.VECTOR_CASES)):
        if name in metafunc.fixturenames:
            metafunc.parametrize(name, sorted(cases))


class CaseChecks:
    CASES: dict = {}
    VECTOR_CASES: dict = {}
    OPS: tuple = ()
    AGREE = 1e-12

    def rows(self, tape):
        ops = tape.stats()["ops"]
        return sum(ops.get(name, 0) for name in self.OPS)

    def close(self, actual, desired, factor=1.0):
        """Two exact computations of the same numbers agree."""
        tol = self.AGREE * factor
        np.testing.assert_allclose(actual, desired, rtol=tol, atol=tol / 10)

    def test_value_gradient_and_row_count(self, backend, case):
        f, size, rows = self.CASES[case]
        tape = pyad.trace(f, point(size), backend=backend)
        assert self.rows(tape) == rows, tape.stats()["ops"]
        for seed in (1, 2):
            x = point(size, seed)
            np.testing.assert_allclose(tape(x), f(x), rtol=1e-12, atol=1e-13)
            np.testing.assert_allclose(tape.gradient(x), central_diff_grad(f, x), rtol=1e-6,
                                       atol=1e-7)

    def test_forward_and_reverse_agree(self, backend, case):
        f, size, _ = self.CASES[case]
        tape = pyad.trace(f, point(size), backend=backend)
        x, v = point(size, 3), point(size, 4)
        _, jv = tape.jvp(x, v)
        assert rel(jv, tape.gradient(x) @ v) < self.AGREE

    def test_hvp_matches_differences_of_the_gradient(self, backend, case):
        f, size, _ = self.CASES[case]
        tape = pyad.trace(f, point(size), backend=backend)
        x, v = point(size, 5), point(size, 6)
        h = 1e-6
        fd = (tape.gradient(x + h * v) - tape.gradient(x - h * v)) / (2 * h)
        np.testing.assert_allclose(tape.hvp(x, v), fd, rtol=1e-6, atol=1e-6)
        H = tape.hessian(x)  # the vector second sweep, all directions at once
        self.close(H @ v, tape.hvp(x, v), 10)
        self.close(H, H.T, 10)

    def test_batch_equals_a_loop_over_points(self, backend, case):
        f, size, _ = self.CASES[case]
        tape = pyad.trace(f, point(size), backend=backend)
        X = np.stack([point(size, s) for s in range(10, 15)])
        V = np.stack([point(size, s) for s in range(20, 25)])
        np.testing.assert_allclose(tape(X, batch=True), [tape(x) for x in X], rtol=1e-12)
        for threads in (1, 2):
            self.close(tape.gradient(X, batch=True, threads=threads),
                       [tape.gradient(x) for x in X])
        _, jv = tape.jvp(X, V, batch=True)
        self.close(jv, [tape.jvp(x, v)[1] for x, v in zip(X, V)])
        self.close(tape.hvp(X, V, batch=True, threads=2), [tape.hvp(x, v) for x, v in zip(X, V)],
                   10)

    def test_save_load_round_trip(self, backend, case):
        f, size, rows = self.CASES[case]
        tape = pyad.trace(f, point(size), backend=backend)
        for other in ("c", "python"):
            back = serialize.loads(serialize.dumps(tape), backend=other)
            assert self.rows(back) == rows
            x, v = point(size, 8), point(size, 9)
            np.testing.assert_allclose(back(x), tape(x), rtol=1e-12)
            self.close(back.gradient(x), tape.gradient(x))
            self.close(back.hvp(x, v), tape.hvp(x, v), 10)

    def test_backends_agree_on_every_derivative(self, case):
        f, size, _ = self.CASES[case]
        z, x, v = point(size), point(size, 15), point(size, 16)
        c, p = (pyad.trace(f, z, backend=b) for b in ("c", "python"))
        assert rel(c(x), p(x)) < 1e-13
        assert rel(c.gradient(x), p.gradient(x)) < self.AGREE
        assert rel(c.jvp(x, v)[1], p.jvp(x, v)[1]) < self.AGREE
        assert rel(c.hvp(x, v), p.hvp(x, v)) < self.AGREE * 10

    def test_jacobian_modes_agree(self, backend, vector_case):
        f, size = self.VECTOR_CASES[vector_case]
        tape = pyad.trace(f, point(size), backend=backend)
        x = point(size, 11)
        Jf, Jr = tape.jacobian(x, mode="forward"), tape.jacobian(x, mode="reverse")
        assert rel(Jf, Jr) < self.AGREE
        h = 1e-6
        fd = np.stack([(f(x + h * e) - f(x - h * e)) / (2 * h) for e in np.eye(size)], axis=-1)
        np.testing.assert_allclose(Jf, fd, rtol=1e-6, atol=1e-7)
        # batched Jacobians (vector sweeps with lanes per point) equal a loop
        X = np.stack([point(size, s) for s in (12, 13, 14)])
        for mode in ("forward", "reverse"):
            self.close(tape.jacobian(X, mode=mode, batch=True),
                       [tape.jacobian(x, mode=mode) for x in X])
