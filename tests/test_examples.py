"""Each example runs as a script; the numbers it prints are checked against
independent oracles (closed forms, scipy with finite differences, central
differences)."""
import importlib.util
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import scipy.optimize as so  # in the test extra: a missing scipy is a broken install

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
FLOAT = r"[-+]?\d+\.?\d*(?:[eE][-+]?\d+)?"


def run_example(name, *args):
    # The installed pyad, as a user runs the examples (the source folder's pyad/
    # has no compiled extension; the session runs from a scratch folder).
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def numbers_after(text, label):
    """The numbers on the line that starts with `label`, after it."""
    for line in text.splitlines():
        if line.startswith(label):
            return np.array([float(v) for v in re.findall(FLOAT, line[len(label):])])
    raise AssertionError(f"no line starting with {label!r} in:\n{text}")


def load_module(name):
    spec = importlib.util.spec_from_file_location(name[:-3], EXAMPLES / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rosenbrock_trust_ncg():
    out = run_example("rosenbrock_trust_ncg.py", "50")
    assert "converged: True" in out
    assert numbers_after(out, "n =")[0] == 50
    assert numbers_after(out, "f(x*) =")[0] < 1e-12
    assert numbers_after(out, "max |x* - 1| =")[0] < 1e-6
    sweeps, nfev, njev = numbers_after(out, "value+gradient sweeps:")
    assert sweeps <= max(nfev, njev) < nfev + njev          # value and gradient shared
    assert numbers_after(out, "Hessian-vector products:")[0] > 0


def test_logistic_newton_cg():
    out = run_example("logistic_newton_cg.py")
    assert "converged: True" in out
    w = numbers_after(out, "w* =")
    example = load_module("logistic_newton_cg.py")
    X, y = example.make_data()

    def nll(w):
        z = X @ w
        return np.sum(np.logaddexp(0.0, z) - y * z)

    ref = so.minimize(nll, np.zeros(X.shape[1]), method="BFGS", jac="3-point",
                      options={"gtol": 1e-9})
    np.testing.assert_allclose(w, ref.x, atol=1e-5)
    np.testing.assert_allclose(numbers_after(out, "negative log-likelihood =")[0], nll(w),
                               rtol=1e-9)
    assert numbers_after(out, "max |gradient| at w* =")[0] < 1e-6


def test_lorenz_sensitivity():
    out = run_example("lorenz_sensitivity.py")
    value = numbers_after(out, "|x(T)| =")[0]
    grad = numbers_after(out, "d|x(T)|/d(sigma, rho, beta) =")
    example = load_module("lorenz_sensitivity.py")
    p0 = example.P0
    np.testing.assert_allclose(value, float(example.final_norm(p0)), rtol=1e-9)
    fd = np.empty(3)
    for i in range(3):
        h = 1e-5 * p0[i]
        e = np.zeros(3)
        e[i] = h
        fd[i] = (float(example.final_norm(p0 + e)) - float(example.final_norm(p0 - e))) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-7)
    # the replayed tape at rho = 20 matches a fresh evaluation
    replay = numbers_after(out, "rho = 20.0:")
    p20 = np.array([p0[0], 20.0, p0[2]])
    np.testing.assert_allclose(replay[0], float(example.final_norm(p20)), rtol=1e-6)


def test_wengert_tables():
    out = run_example("wengert_tables.py")
    assert numbers_after(out, "forward:  dy/dx1 =")[0] == 5.5
    dx1, dx2 = numbers_after(out, "reverse:  dy/dx1 =")[[0, 2]]    # "... , dy/dx2 = ..."
    assert dx1 == 5.5
    np.testing.assert_allclose(dx2, 2.0 - math.cos(5.0), rtol=1e-9)
    np.testing.assert_allclose(numbers_after(out, "y =")[0],
                               math.log(2) + 10 - math.sin(5), rtol=1e-9)
    for row in ("v_1     log(v_{-1})", "v_5     v_3 - v_4", "v_{-1}  x_1"):
        assert row in out
    assert out.count("Wengert table at x = [2., 5.]") == 2
    dot = run_example("wengert_tables.py", "--dot")
    assert "digraph pyad {" in dot and "sin" in dot


def test_mlp_params_dict_trains_and_matches_hand_backprop():
    out = run_example("mlp_params_dict.py")
    assert "gradient keys: ['W1', 'W2', 'b1', 'b2']" in out
    assert numbers_after(out, "gradient vs hand backprop, max relative error:")[0] < 1e-12
    first, last = numbers_after(out, "loss:")
    assert last < 0.5 * first
    acc_first, acc_last = numbers_after(out, "accuracy:")
    assert acc_last > max(acc_first, 0.9)
    assert numbers_after(out, "tapes recorded by the training loop:")[0] == 1


def test_curve_fit_with_data_as_parameters_matches_scipy_curve_fit():
    out = run_example("curve_fit_parameters.py")
    assert numbers_after(out, "inputs differentiated:").tolist() == [3, 120]
    for name in ("first", "second"):
        mine = numbers_after(out, f"{name} data set: a, b, c =")
        ref = numbers_after(out, f"{name} data set, scipy curve_fit:")
        np.testing.assert_allclose(mine, ref, atol=2e-6)
    assert numbers_after(out, "re-recordings:")[0] == 0
