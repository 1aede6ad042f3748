"""pyad.check_grads: passes on correct derivatives, catches wrong ones and names them."""
import sys
import types

import numpy as np
import pytest

import pyad
from pyad import backend_python, ops
from pyad._python_rules import RULES


def textbook(x):
    return pyad.log(x[0]) + x[0] * x[1] - pyad.sin(x[1])


def value_of(x):
    """The recorded number of an active value (no derivative), or x itself."""
    return x.value if hasattr(x, "value") else x


# ---- correct derivatives pass ----

def test_scalar_function_passes(backend):
    assert pyad.check_grads(textbook, np.array([2.0, 5.0]), backend=backend) is None
    rosen = lambda x: np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
    pyad.check_grads(rosen, np.linspace(-1, 1, 7), backend=backend, n_directions=5)


def test_vector_function_passes_first_and_second_order(backend):
    f = lambda x: pyad.exp(x) * x[::-1] + pyad.tanh(x.sum())
    x = np.array([0.3, -1.1, 0.2])
    pyad.check_grads(f, x, order=1, backend=backend)
    pyad.check_grads(f, x, order=2, backend=backend)     # Hessian of u . f, random u
    pyad.check_grads(f, x, modes="fwd", backend=backend)
    pyad.check_grads(f, x, modes=("rev",), backend=backend)


def test_several_arguments_scalars_and_matrices(backend):
    pyad.check_grads(lambda a, b: pyad.sin(a) * b + a ** 3, (0.5, 2.0), backend=backend)
    A = np.array([[1.0, 2.0], [0.5, -1.0]])
    pyad.check_grads(lambda m: np.sum(pyad.sqrt(m * m + 1.0) @ A), np.array([[0.1, 0.2],
                                                                            [0.3, 0.4]]),
                     backend=backend)
    pyad.check_grads(lambda x: pyad.sin(x) * x, 0.7, backend=backend)


SAFE_POINTS = {"arcsin": 0.3, "arccos": 0.3, "arctan": 0.3, "log": 1.7, "log1p": 0.4,
               "sqrt": 1.3, "reciprocal": 1.4, "tan": 0.4, "abs": -0.8, "arccosh": 3.0}


@pytest.mark.parametrize("name", [n for n in ops.names_of_kind("unary")
                                  if ops.OPS[n].differentiable])
def test_every_unary_primitive_passes(backend, name):
    fn = getattr(pyad, name)
    x = np.array([SAFE_POINTS.get(name, 0.6), SAFE_POINTS.get(name, 0.6) * 0.5])
    pyad.check_grads(lambda x: fn(x) * (1.0 + x[::-1]), x, backend=backend, n_directions=2)


def test_branches_replay_during_checks(backend):
    def f(x):
        if x[0] > 0:
            return x[0] ** 2 * x[1]
        return -x[0] * x[1]
    pyad.check_grads(f, np.array([1.5, 2.0]), backend=backend)
    pyad.check_grads(f, np.array([-1.5, 2.0]), backend=backend)


# ---- wrong derivatives are caught ----

def mis_specified(x):
    """Value x0**2 + x1, but the tape's derivative in x0 is x0, not 2 x0: the
    second factor is read with .value and recorded as a constant."""
    return x[0] * value_of(x[0]) + x[1]


def test_mis_specified_tape_is_caught_in_forward_mode(backend):
    with pytest.raises(AssertionError) as info:
        pyad.check_grads(mis_specified, np.array([2.0, 5.0]), backend=backend)
    msg = str(info.value)
    assert "forward-mode JVP" in msg
    assert "direction 1 of 3" in msg
    assert "expected" in msg and "got" in msg


def test_mis_specified_tape_is_caught_in_reverse_mode(backend):
    with pytest.raises(AssertionError, match="reverse-mode VJP") as info:
        pyad.check_grads(mis_specified, np.array([2.0, 5.0]), modes="rev", backend=backend)
    # the numbers in the message are the directional derivatives: check them
    msg = str(info.value)
    v = np.random.default_rng(0).standard_normal(2)
    v /= np.linalg.norm(v)
    expected, got = 2 * 2.0 * v[0] + v[1], 2.0 * v[0] + v[1]
    assert f"{expected:.12f}"[:7] in msg and f"{got:.12f}"[:7] in msg


def test_vector_function_mismatch_names_output_weights(backend):
    f = lambda x: pyad.stack([x[0] * value_of(x[1]), x[0] + x[1]])
    with pytest.raises(AssertionError, match="output weights u"):
        pyad.check_grads(f, np.array([1.0, 3.0]), modes="rev", backend=backend)


def test_tolerances(backend):
    # derivative off by 5e-4 relative
    f = lambda x: x ** 2 + 1e-3 * (x * value_of(x) - x ** 2)
    x = np.array([1.3, -0.4])
    with pytest.raises(AssertionError):
        pyad.check_grads(f, x, order=1, backend=backend)
    pyad.check_grads(f, x, order=1, rtol=1e-2, backend=backend)
    pyad.check_grads(f, x, order=1, atol=1e-2, rtol=0.0, backend=backend)


def _patch_rule(monkeypatch, name, rule):
    """Replace a pure-Python rule for this test (the backend reads its own table)."""
    monkeypatch.setitem(RULES, name, rule)
    table = list(backend_python._RULE)
    table[ops.CODE[name]] = rule
    monkeypatch.setattr(backend_python, "_RULE", table)


def test_wrong_first_derivative_rule_is_caught(monkeypatch):
    value, partials, second = RULES["sin"]
    wrong = (value, lambda m, x, y, z: (1.1 * m.cos(x), 0.0), second)
    _patch_rule(monkeypatch, "sin", wrong)
    f = lambda x: np.sum(pyad.sin(x) * x)
    x = np.array([0.4, 1.2])
    with pytest.raises(AssertionError, match="forward-mode JVP"):
        pyad.check_grads(f, x, backend="python")
    with pytest.raises(AssertionError, match="reverse-mode VJP"):
        pyad.check_grads(f, x, modes="rev", backend="python")
    pyad.check_grads(f, x, backend="c")           # the C core is untouched


def test_wrong_second_derivative_rule_is_caught_only_at_order_2(monkeypatch):
    value, partials, _ = RULES["sin"]
    wrong = (value, partials, lambda m, x, y, z, xd, yd: (0.5 * -z * xd, 0.0))
    _patch_rule(monkeypatch, "sin", wrong)
    f = lambda x: np.sum(pyad.sin(x) * x)
    x = np.array([0.4, 1.2])
    pyad.check_grads(f, x, order=1, backend="python")
    with pytest.raises(AssertionError, match="Hessian-vector product"):
        pyad.check_grads(f, x, order=2, backend="python")
    with pytest.raises(AssertionError, match=r"v \. H v"):
        pyad.check_grads(f, x, order=2, modes="fwd", backend="python")


def test_wrong_value_rule_is_caught(monkeypatch):
    _, partials, second = RULES["exp"]
    _patch_rule(monkeypatch, "exp", (lambda m, x, y: m.exp(x) + 1e-3, partials, second))
    with pytest.raises(AssertionError, match="value mismatch"):
        pyad.check_grads(lambda x: np.sum(pyad.exp(x)), np.array([0.1, 0.2]), backend="python")


# ---- arguments ----

def test_bad_arguments(backend):
    x = np.array([2.0, 5.0])
    with pytest.raises(ValueError, match="order"):
        pyad.check_grads(textbook, x, order=3, backend=backend)
    with pytest.raises(ValueError, match="modes"):
        pyad.check_grads(textbook, x, modes=("sideways",), backend=backend)
    with pytest.raises(ValueError, match="n_directions"):
        pyad.check_grads(textbook, x, n_directions=0, backend=backend)
    with pytest.raises(ValueError, match="eps"):
        pyad.check_grads(textbook, x, eps=0.0, backend=backend)


def test_seed_changes_directions(backend):
    f = mis_specified
    msgs = []
    for seed in (0, 1):
        with pytest.raises(AssertionError) as info:
            pyad.check_grads(f, np.array([2.0, 5.0]), seed=seed, backend=backend)
        msgs.append(str(info.value))
    assert msgs[0] != msgs[1]


# ---- progress ----

def test_progress_line_without_tqdm(backend, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    pyad.check_grads(textbook, np.array([2.0, 5.0]), backend=backend, progress=True)
    err = capsys.readouterr().err
    # 3 directions x (fwd, rev, fwd-vs-rev, 2 second-order checks)
    assert "check_grads: 15/15" in err and err.endswith("\n")
    pyad.check_grads(textbook, np.array([2.0, 5.0]), backend=backend)
    assert capsys.readouterr().err == ""


def test_progress_uses_tqdm_when_installed(backend, monkeypatch):
    bars = []

    class FakeTqdm:
        def __init__(self, total, desc, unit, file):
            self.total, self.desc, self.n, self.closed = total, desc, 0, False
            bars.append(self)

        def update(self, n):
            self.n += n

        def close(self):
            self.closed = True

    auto = types.ModuleType("tqdm.auto")
    auto.tqdm = FakeTqdm
    pkg = types.ModuleType("tqdm")
    pkg.auto = auto
    monkeypatch.setitem(sys.modules, "tqdm", pkg)
    monkeypatch.setitem(sys.modules, "tqdm.auto", auto)
    pyad.check_grads(textbook, np.array([2.0, 5.0]), order=1, n_directions=4, backend=backend,
                     progress=True)
    assert len(bars) == 1
    assert bars[0].desc == "check_grads" and bars[0].total == bars[0].n == 12 and bars[0].closed


def test_batched_replay_progress(backend, monkeypatch, capsys):
    """batch.run(progress=True) (behind tape.gradient(X, batch=True, progress=True))."""
    from pyad import batch
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    tape = pyad.trace(textbook, np.array([2.0, 5.0]), backend=backend)
    X = np.column_stack([np.linspace(1, 3, 50), np.linspace(4, 6, 50)])
    ones = np.ones((50, 1))
    plain = batch.run(tape._store, "vjp_batch", (X, ones))
    assert capsys.readouterr().err == ""
    for threads in (None, 2):
        shown = batch.run(tape._store, "vjp_batch", (X, ones), threads=threads, progress=True)
        for a, b in zip(plain, shown):       # chunking may change the last bit
            np.testing.assert_allclose(a, b, rtol=1e-15, atol=0)
        err = capsys.readouterr().err
        assert "pyad vjp_batch: 50/50" in err and err.endswith("\n")
    np.testing.assert_allclose(plain[1], np.column_stack([1 / X[:, 0] + X[:, 1],
                                                          X[:, 0] - np.cos(X[:, 1])]),
                               rtol=1e-14)
    from concurrent.futures import ThreadPoolExecutor
    from pyad.serialize import dumps
    with ThreadPoolExecutor(2) as pool:
        shown = batch.run(tape._store, "vjp_batch", (X, ones), executor=pool,
                          tape_bytes=dumps(tape), progress=True)
    np.testing.assert_allclose(shown[1], plain[1], rtol=1e-15, atol=0)
    assert "pyad vjp_batch: 50/50" in capsys.readouterr().err
    # chunk by chunk: the count advances by the points of each chunk
    bar = batch.Progress(50, "chunks")
    batch.sweep_chunks(tape._store, "forward_batch", (X,), chunk=8, progress=bar)
    assert bar.done == 50
    bar.close()
    assert "chunks: 50/50" in capsys.readouterr().err
