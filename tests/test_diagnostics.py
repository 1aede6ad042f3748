"""pyad.debug_nans: sweeps that produce NaN/inf raise, naming the op; off by default."""
import math

import numpy as np
import pytest

import pyad
from pyad import diagnostics


@pytest.fixture(autouse=True)
def checking_off_afterwards():
    yield
    pyad.debug_nans(False)


def test_off_by_default_ieee_results(backend):
    assert diagnostics.DEBUG_NANS.enabled is False
    tape = pyad.trace(lambda x: pyad.log(x) * 2.0, 1.0, backend=backend)
    assert math.isnan(tape(-1.0))
    assert tape(0.0) == -math.inf
    value, grad = tape.value_and_gradient(-1.0)
    assert math.isnan(value) and grad == -2.0


def test_names_the_op_that_makes_a_nan(backend):
    tape = pyad.trace(lambda x: pyad.sin(x[0]) + pyad.log(x[1]), np.array([0.5, 1.0]),
                      backend=backend)
    with pyad.debug_nans():
        with pytest.raises(FloatingPointError) as info:
            tape(np.array([0.5, -2.0]))
    msg = str(info.value)
    assert "op 2 (log)" in msg and "from finite operands [-2.0]" in msg   # row 0: both inputs
    assert "[0.5, -2.0]" in msg                       # the point
    assert math.isnan(tape(np.array([0.5, -2.0])))   # off again after the block


def test_names_an_infinity_from_division(backend):
    tape = pyad.trace(lambda x: 3.0 / x + x, 2.0, backend=backend)
    with pyad.debug_nans():
        with pytest.raises(FloatingPointError, match=r"op 1 \(rdiv_c\) gives inf"):
            tape.gradient(0.0)
        assert tape.gradient(2.0) == 1.0 - 3.0 / 4.0   # finite results pass unchanged


def test_every_kind_of_sweep_is_checked(backend):
    tape = pyad.trace(lambda x: np.sum(pyad.sqrt(x) * x), np.array([1.0, 4.0]), backend=backend)
    bad = np.array([1.0, -1.0])
    with pyad.debug_nans():
        for sweep in (lambda: tape(bad), lambda: tape.gradient(bad),
                      lambda: tape.jvp(bad, np.ones(2)), lambda: tape.vjp(bad, 1.0),
                      lambda: tape.hvp(bad, np.ones(2)), lambda: tape.hessian(bad),
                      lambda: tape.jacobian(bad)):
            with pytest.raises(FloatingPointError, match=r"\(sqrt\)"):
                sweep()


def test_nan_input_is_named(backend):
    tape = pyad.trace(lambda x: x[0] * x[1], np.array([1.0, 2.0]), backend=backend)
    with pyad.debug_nans():
        with pytest.raises(FloatingPointError, match="input 1 is nan"):
            tape.gradient(np.array([1.0, np.nan]))


def test_infinite_derivative_of_finite_values(backend):
    tape = pyad.trace(lambda x: pyad.sqrt(x), 1.0, backend=backend)
    assert tape.gradient(0.0) == math.inf             # quietly, by default
    with pyad.debug_nans():
        with pytest.raises(FloatingPointError, match="non-finite derivative"):
            tape.gradient(0.0)


def test_at_the_recorded_point(backend):
    tape = pyad.trace(lambda x: pyad.log(x - 3.0), 1.0, backend=backend)
    with pyad.debug_nans():
        with pytest.raises(FloatingPointError, match=r"\(log\)"):
            tape.gradient()


def test_call_form_and_nesting(backend):
    tape = pyad.trace(lambda x: pyad.log(x), 1.0, backend=backend)
    pyad.debug_nans()                                 # on from now
    assert diagnostics.DEBUG_NANS.enabled
    with pytest.raises(FloatingPointError):
        tape(-1.0)
    with pyad.debug_nans(False):                      # off inside the block only
        assert math.isnan(tape(-1.0))
        with pyad.debug_nans(True):
            with pytest.raises(FloatingPointError):
                tape(-1.0)
        assert math.isnan(tape(-1.0))
    with pytest.raises(FloatingPointError):           # back on after the block
        tape(-1.0)
    pyad.debug_nans(False)
    assert math.isnan(tape(-1.0))


def test_flag_restored_when_the_block_raises(backend):
    with pytest.raises(RuntimeError):
        with pyad.debug_nans():
            raise RuntimeError("boom")
    assert diagnostics.DEBUG_NANS.enabled is False


def test_transforms_are_checked_too(backend):
    with pyad.debug_nans():
        with pytest.raises(FloatingPointError, match=r"\(arcsin\)"):
            pyad.grad(lambda x: pyad.arcsin(x) * 2.0, backend=backend)(2.0)
        np.testing.assert_allclose(pyad.grad(lambda x: pyad.arcsin(x), backend=backend)(0.5),
                                   1 / math.sqrt(0.75), rtol=1e-14)
