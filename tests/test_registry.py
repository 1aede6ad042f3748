"""The registry (csrc/ops.def through pyad.ops) against the facts the rest of
pyad holds today, so the hand-written tables can be replaced by it safely."""
import importlib
import operator

import numpy as np
import pytest

import pyad
from pyad import numpy_api, ops, scalar, teaching
from pyad._pyad_c import ffi, lib

OPS = ops.OPS
BINARY_LIKE = [op for op in OPS.values() if op.kind in ("binary", "compare")]
CONSTANT_KIND = {"binary": "with_const", "compare": "compare_c"}
REFLECTED = {"__add__": "__radd__", "__sub__": "__rsub__", "__mul__": "__rmul__",
             "__truediv__": "__rtruediv__", "__pow__": "__rpow__"}


def resolve(dotted):
    module, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(module), attr)


# ---- shape of the table ----

def test_ops_rows_are_in_code_order_and_agree_with_code_name_kind():
    assert [op.code for op in OPS.values()] == list(range(lib.pyad_op_count()))
    assert ops.NAME == list(OPS)
    for name, op in OPS.items():
        assert op.name == name and ops.CODE[name] == op.code and ops.KIND[name] == op.kind
    assert ops.names_of_kind("compare") == ["lt", "le", "gt", "ge", "eq", "ne"]


def test_out_of_range_op_codes_read_as_nothing():
    for bad in (-1, lib.pyad_op_count(), 1000):
        assert ffi.string(lib.pyad_op_name(bad)) == b""
        assert lib.pyad_op_numpy(bad) == ffi.NULL and lib.pyad_op_operator(bad) == ffi.NULL
        assert lib.pyad_op_kind(bad) == lib.PYAD_EINVAL
        assert lib.pyad_op_const_form(bad) == lib.PYAD_EINVAL
        assert lib.pyad_op_differentiable(bad) == lib.PYAD_EINVAL


# ---- constant forms ----

def test_constant_forms_match_scalar_constant_forms():
    assert {op.name for op in BINARY_LIKE} == set(scalar.CONSTANT_FORMS)
    for name, (form, rform) in scalar.CONSTANT_FORMS.items():
        assert (OPS[name].const_form, OPS[name].rconst_form) == (form, rform), name


def test_every_constant_form_names_a_row_of_the_constant_kind():
    for op in OPS.values():
        for form in (op.const_form, op.rconst_form):
            if form is not None:
                assert OPS[form].kind == CONSTANT_KIND[op.kind], (op.name, form)
        if op.kind not in ("binary", "compare"):
            assert op.const_form is None and op.rconst_form is None, op.name


def test_reversed_constant_forms_match_the_teaching_table():
    reversed_forms = {op.rconst_form: op.name for op in OPS.values()
                      if op.kind == "binary" and op.rconst_form not in (None, op.const_form)}
    assert reversed_forms == teaching._REVERSED


# ---- numpy names ----

def test_every_numpy_name_resolves_to_a_real_function():
    named = [op for op in OPS.values() if op.numpy is not None]
    assert len(named) >= 30
    for op in named:
        module = op.numpy.rpartition(".")[0]
        try:
            importlib.import_module(module)
        except ImportError:
            continue  # an optional module (scipy) that is not installed here
        assert callable(resolve(op.numpy)), op.numpy


def test_numpy_names_match_the_ufunc_tables():
    ufuncs = {**numpy_api.UNARY_UFUNCS, **numpy_api.BINARY_UFUNCS}
    # every primitive numpy_api dispatches to names the ufunc it is reached from
    for name in set(ufuncs.values()):
        f = resolve(OPS[name].numpy)
        assert ufuncs[f] == name, name
        assert getattr(np, numpy_api._NUMPY_NAME.get(name, name)) is f, name
    # and no row claims a numpy function numpy_api does not send to it
    for op in OPS.values():
        if op.numpy is not None and op.numpy.startswith("numpy."):
            assert ufuncs.get(resolve(op.numpy)) == op.name, op.name


def test_rows_with_a_constant_implement_no_numpy_function_or_operator():
    for op in OPS.values():
        if op.kind in ("with_const", "compare_c", "special"):
            assert op.numpy is None and op.operator is None, op.name


# ---- Python operators ----

def test_infix_operators_match_the_teaching_table():
    symbol_of = {"__add__": "+", "__sub__": "-", "__mul__": "*", "__truediv__": "/",
                 "__pow__": "**", "__lt__": "<", "__le__": "<=", "__gt__": ">",
                 "__ge__": ">=", "__eq__": "==", "__ne__": "!="}
    infix = {op.name: symbol_of[op.operator] for op in BINARY_LIKE if op.operator}
    assert infix == teaching._INFIX


def _last_op(x):
    return ops.NAME[x._s.op_at(x._i)]


@pytest.mark.parametrize("op", [op for op in OPS.values() if op.operator], ids=lambda op: op.name)
def test_each_operator_records_its_row_and_constant_forms(backend, op):
    with pyad.Tape(backend) as t:
        x, y = t.input(1.5), t.input(0.75)
        if op.kind == "unary":
            assert _last_op(getattr(x, op.operator)()) == op.name
            return
        f = getattr(operator, op.operator)
        assert _last_op(f(x, y)) == op.name
        assert _last_op(f(x, 2.5)) == op.const_form
        assert _last_op(f(2.5, x)) == op.rconst_form
        if op.operator in REFLECTED:
            assert _last_op(getattr(x, REFLECTED[op.operator])(2.5)) == op.rconst_form


def test_operators_of_active_scalars_are_all_in_the_registry():
    claimed = {op.operator for op in OPS.values() if op.operator}
    recorded = {"__add__", "__sub__", "__mul__", "__truediv__", "__pow__", "__neg__",
                "__abs__", "__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__"}
    assert claimed == recorded
    for dunder in claimed:
        assert hasattr(pyad.Scalar, dunder)


def test_a_binary_row_without_constant_forms_records_a_constant_slot(backend):
    for op in BINARY_LIKE:
        if op.const_form is None:
            with pyad.Tape(backend) as t:
                x = t.input(0.5)
                z = getattr(pyad, op.name)(x, 2.0)
                assert _last_op(z) == op.name


# ---- differentiability ----

def test_differentiable_rows():
    for op in OPS.values():
        if op.kind in ("compare", "compare_c") or op.name in ("guard_true", "guard_false"):
            assert not op.differentiable, op.name
        elif op.kind in ("binary", "with_const"):
            assert op.differentiable, op.name
    assert OPS["select"].differentiable and OPS["max_n"].differentiable


# ---- status codes ----

def test_status_names_and_messages_come_from_c():
    assert ops.STATUS[0] == ("PYAD_OK", "ok")
    for code, (name, message) in ops.STATUS.items():
        assert getattr(lib, name) == code
        assert message == ffi.string(lib.pyad_strerror(code)).decode()
    assert sorted(ops.STATUS) == list(range(-8, 1))
    assert lib.pyad_status_name(1) == ffi.NULL and lib.pyad_status_name(-9) == ffi.NULL
