"""The registry (csrc/ops.def, read through pyad.ops) is the only list of
primitives: the table's own shape, and the behaviour every Python layer derives
from it. Each test walks the registry's rows, so a new row is covered by it
without an edit here: its operator records it (both operand orders, with a
constant, on Scalar and Array, through _speedups.c's fast path or the Python
fallback), its numpy/scipy function records it, pyad.<name> exists, the Wengert
table writes it, and the C statuses map to exceptions by name."""
import dataclasses
import operator
import sys
from fractions import Fraction

import numpy as np
import pytest

import pyad
from pyad import _speedups, errors, numpy_api, ops, scalar, teaching
from pyad._pyad_c import ffi, lib

OPS = ops.OPS
BINARY_LIKE = [op for op in OPS.values() if op.kind in ("binary", "compare")]
CONSTANT_KIND = {"binary": "with_const", "compare": "compare_c"}
WITH_OPERATOR = [op for op in OPS.values() if op.operator]
WITH_NUMPY = [op for op in OPS.values() if op.numpy]
# The slot whose b operand is a slot, per op code (configure()'s last argument).
B_IS_SLOT = bytes(ops.KIND[name] in ("binary", "compare") for name in ops.NAME)


def ids(op):
    return op.name


def op_of_slot(store, slot):
    """The op of the row that defines `slot` (a block row defines several slots)."""
    first = store.export()["first"]
    return ops.NAME[store.op_at(int(np.searchsorted(first, slot, side="right")) - 1)]


def last_op(x):
    """The op recorded in x's slot (for an array: its first element's)."""
    slot = x._i if isinstance(x, pyad.Scalar) else int(np.ravel(x._i)[0])
    return op_of_slot(x._s, slot)


def ops_of(x):
    """The ops recorded in every slot of an active array."""
    return {op_of_slot(x._s, int(s)) for s in np.ravel(x._i)}


# ---- shape of the table ----

def test_ops_rows_are_in_code_order_and_agree_with_code_name_kind():
    assert [op.code for op in OPS.values()] == list(range(lib.pyad_op_count()))
    assert ops.NAME == list(OPS)
    for name, op in OPS.items():
        assert op.name == name and ops.CODE[name] == op.code and ops.KIND[name] == op.kind
    assert ops.names_of_kind("compare") == [op.name for op in OPS.values()
                                            if op.kind == "compare"]


def test_out_of_range_op_codes_read_as_nothing():
    for bad in (-1, lib.pyad_op_count(), 1000):
        assert ffi.string(lib.pyad_op_name(bad)) == b""
        assert lib.pyad_op_numpy(bad) == ffi.NULL and lib.pyad_op_operator(bad) == ffi.NULL
        assert lib.pyad_op_kind(bad) == lib.PYAD_EINVAL
        assert lib.pyad_op_const_form(bad) == lib.PYAD_EINVAL
        assert lib.pyad_op_differentiable(bad) == lib.PYAD_EINVAL


def test_every_constant_form_names_a_row_of_the_constant_kind():
    for op in OPS.values():
        for form in (op.const_form, op.rconst_form):
            if form is not None:
                assert OPS[form].kind == CONSTANT_KIND[op.kind], (op.name, form)
        if op.kind not in ("binary", "compare"):
            assert op.const_form is None and op.rconst_form is None, op.name


def test_rows_with_a_constant_implement_no_numpy_function_or_operator():
    for op in OPS.values():
        if op.kind in ("with_const", "compare_c", "special"):
            assert op.numpy is None and op.operator is None, op.name


def test_differentiable_rows():
    for op in OPS.values():
        if op.kind in ("compare", "compare_c") or op.name in ("guard_true", "guard_false"):
            assert not op.differentiable, op.name
        elif op.kind in ("binary", "with_const"):
            assert op.differentiable, op.name
    assert OPS["select"].differentiable and OPS["max_n"].differentiable


def test_every_numpy_name_resolves_or_names_a_module_not_installed():
    assert len(WITH_NUMPY) >= 30
    for op in WITH_NUMPY:
        f = numpy_api.resolve(op.numpy)
        if f is None:   # only an optional module (scipy) may be missing
            module = op.numpy.rpartition(".")[0]
            assert not module.startswith("numpy"), op.numpy
            with pytest.raises(ImportError):
                __import__(module)
        else:
            assert callable(f), op.numpy


# ---- Python operators: Scalar and Array record the row the registry names ----

CONSTANTS = {"float": 2.5, "int": 3, "Fraction": Fraction(5, 2), "np.float64": np.float64(2.5)}


def operator_function(op):
    return getattr(operator, op.operator)


def reflected(op):
    """The method Python calls for `c op x` with an active x."""
    if op.kind == "compare":   # Python swaps comparisons: 2 < x runs x > 2
        swapped = {"__lt__": "__gt__", "__le__": "__ge__", "__gt__": "__lt__",
                   "__ge__": "__le__", "__eq__": "__eq__", "__ne__": "__ne__"}
        return swapped[op.operator]
    return "__r" + op.operator[2:]


@pytest.mark.parametrize("op", WITH_OPERATOR, ids=ids)
def test_each_operator_records_its_row_on_scalars(backend, op):
    with pyad.Tape(backend) as t:
        x, y = t.input(1.5), t.input(0.75)
        if op.kind == "unary":
            assert last_op(operator_function(op)(x)) == op.name
            return
        f = operator_function(op)
        result_type = pyad.Bool if op.kind == "compare" else pyad.Scalar
        for r in (f(x, y), f(y, x), f(x, x)):
            assert type(r) is result_type and last_op(r) == op.name
        for kind, c in CONSTANTS.items():
            after, before = f(x, c), f(c, x)
            assert type(after) is result_type and type(before) is result_type, kind
            assert last_op(after) == (op.const_form or op.name), kind
            assert last_op(before) == (op.rconst_form or op.name), kind
            assert after.value == f(1.5, float(c)) and before.value == f(float(c), 1.5), kind
        assert last_op(getattr(x, reflected(op))(2.5)) == (op.rconst_form or op.name)


@pytest.mark.parametrize("op", WITH_OPERATOR, ids=ids)
def test_each_operator_records_its_row_on_arrays(backend, op):
    with pyad.Tape(backend) as t:
        x, y = t.input(np.array([1.5, 0.25])), t.input(np.array([0.75, 2.0]))
        if op.kind == "unary":
            assert ops_of(operator_function(op)(x)) == {op.name}
            return
        f = operator_function(op)
        result_type = pyad.BoolArray if op.kind == "compare" else pyad.Array
        assert type(f(x, y)) is result_type and ops_of(f(x, y)) == {op.name}
        for c in (2.5, np.array([2.5, 3.5])):
            assert ops_of(f(x, c)) == {op.const_form or op.name}
            assert ops_of(f(c, x)) == {op.rconst_form or op.name}
            np.testing.assert_array_equal(f(c, x).value, f(c, x.value))


def test_the_fast_path_records_every_operator_the_registry_gives_it(backend):
    """The operators _speedups.c implements reach the C fast path (no Python
    fallback call) with the rows and constant forms configure() gave it."""
    calls = []

    def spy(x, y, name):
        calls.append(name)
        return scalar.binary(x, y, name)

    fast = [op for op in WITH_OPERATOR if op.operator in _speedups.OPERATORS]
    assert {op.name for op in fast} >= {"add", "sub", "mul", "div", "lt", "eq"}
    _speedups.configure(pyad.Scalar, pyad.Bool, spy, scalar._speedup_codes(),
                        pyad.TapeClosedError, B_IS_SLOT)
    try:
        with pyad.Tape(backend) as t:
            x, y = t.input(1.5), t.input(0.75)
            for op in fast:
                f = operator_function(op)
                assert [last_op(f(x, y)), last_op(f(x, 2.0)), last_op(f(2, x))] == \
                    [op.name, op.const_form, op.rconst_form], op.name
            assert calls == []
            f = operator_function(fast[0])
            f(x, Fraction(1, 3))   # not a float or int: the fallback, told the row's name
            assert calls == [fast[0].name]
    finally:
        _speedups.configure(pyad.Scalar, pyad.Bool, scalar.binary, scalar._speedup_codes(),
                            pyad.TapeClosedError, B_IS_SLOT)


def test_configure_refuses_a_bad_operator_table_and_keeps_the_old_one():
    codes = scalar._speedup_codes()
    add = next(op for op in WITH_OPERATOR if op.operator == "__add__")
    unary = ops.names_of_kind("unary")[0]
    bad_tables = {
        "unknown operator": ({**codes, "__matmul__": codes["__add__"]}, KeyError),
        "not a tuple": ({**codes, "__add__": [*codes["__add__"]]}, TypeError),
        "a unary row": ({**codes, "__add__": (unary, ops.CODE[unary], -1, -1, False)},
                        ValueError),
        "slot row as constant form": ({**codes, "__add__": ("add", add.code, add.code, -1,
                                                           False)}, ValueError),
        "op code past the table": ({**codes, "__add__": ("add", 999, -1, -1, False)},
                                   ValueError),
    }
    for what, (table, error) in bad_tables.items():
        with pytest.raises(error):
            _speedups.configure(pyad.Scalar, pyad.Bool, scalar.binary, table,
                                pyad.TapeClosedError, B_IS_SLOT)
        with pyad.Tape() as t:
            x = t.input(1.0)
            assert last_op(x + x) == add.name and last_op(x + 1.0) == add.const_form, what


def test_an_operator_the_registry_gives_no_row_is_not_supported():
    codes = {k: v for k, v in scalar._speedup_codes().items() if k != "__truediv__"}
    _speedups.configure(pyad.Scalar, pyad.Bool, scalar.binary, codes,
                        pyad.TapeClosedError, B_IS_SLOT)
    try:
        with pyad.Tape() as t:
            x = t.input(1.0)
            with pytest.raises(TypeError, match="unsupported operand"):
                x / x
            with pytest.raises(TypeError, match="unsupported operand"):
                2.0 / x
            assert (x + 1.0).value == 2.0
    finally:
        _speedups.configure(pyad.Scalar, pyad.Bool, scalar.binary, scalar._speedup_codes(),
                            pyad.TapeClosedError, B_IS_SLOT)


def test_every_python_operator_method_comes_from_a_row():
    """Scalar and Array define no arithmetic operator of their own beyond the
    registry's (+x and the x ** 2 shortcut aside)."""
    from_rows = set(scalar.operator_methods(None, None))
    arithmetic = {"__add__", "__sub__", "__mul__", "__truediv__", "__pow__", "__neg__",
                  "__abs__", "__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__",
                  "__floordiv__", "__mod__"}
    for cls in (pyad.Scalar, pyad.Array):
        for dunder in arithmetic:
            if dunder not in from_rows and dunder != "__pow__":
                assert not hasattr(cls, dunder) or getattr(cls, dunder) is \
                    getattr(object, dunder, None), (cls, dunder)
    assert {op.operator for op in WITH_OPERATOR} <= from_rows


# ---- numpy / scipy functions ----

@pytest.mark.parametrize("op", [op for op in WITH_NUMPY if numpy_api.resolve(op.numpy)],
                         ids=ids)
def test_each_numpy_function_records_its_row(backend, op):
    f = numpy_api.resolve(op.numpy)
    with pyad.Tape(backend) as t:
        x, y = t.input(0.5), t.input(0.25)
        xs = t.input(np.array([0.5, 0.125]))
        args = (x,) if op.kind == "unary" else (x, y)
        arrays = (xs,) if op.kind == "unary" else (xs, xs[::-1])
        assert last_op(f(*args)) == op.name
        assert ops_of(f(*arrays)) == {op.name}
        # libm and numpy's vector loops may differ in the last bit (arccosh: NaN on both)
        with np.errstate(invalid="ignore"):
            np.testing.assert_allclose(f(*arrays).value, f(*(a.value for a in arrays)),
                                       rtol=1e-15)
        if op.kind == "binary":   # ufunc.outer goes through the same row
            assert ops_of(f.outer(xs, xs)) == {op.name}


@pytest.mark.parametrize("op", [op for op in OPS.values()
                                if op.kind == "unary" or (op.kind == "binary" and op.numpy)],
                         ids=ids)
def test_each_row_has_a_pyad_function(backend, op):
    f = getattr(pyad, op.name)
    aliases = [getattr(pyad, op.numpy.rpartition(".")[2])] if op.numpy else []
    assert all(g is f for g in aliases) and op.name in pyad.__all__
    args = (0.5,) if op.kind == "unary" else (0.5, 0.25)
    with pyad.Tape(backend) as t:
        active = [t.input(a) for a in args]
        assert last_op(f(*active)) == op.name
        assert ops_of(f(*[t.input(np.full(2, a)) for a in args])) == {op.name}
    if op.numpy and numpy_api.resolve(op.numpy):
        with np.errstate(invalid="ignore"):   # arccosh(0.5): NaN on both sides
            np.testing.assert_equal(f(*args), numpy_api.resolve(op.numpy)(*args))


def test_the_ufunc_tables_hold_only_registry_rows():
    for table in (numpy_api.UNARY_UFUNCS, numpy_api.BINARY_UFUNCS):
        for ufunc, name in table.items():
            named = numpy_api.resolve(OPS[name].numpy)
            assert ufunc is named or numpy_api._SAME_AS.get(ufunc) is named, (ufunc, name)


def _a_scipy_row(monkeypatch):
    """numpy_api's tables as they are for a registry row naming a scipy ufunc
    (expm1 as scipy.special.expm1, which computes the same) before scipy is found."""
    row = dataclasses.replace(OPS["expm1"], numpy="scipy.special.expm1")
    monkeypatch.setattr(numpy_api, "UNARY_UFUNCS", {
        f: n for f, n in numpy_api.UNARY_UFUNCS.items() if n != "expm1"})
    monkeypatch.setattr(numpy_api, "FUNCTION_OF_ROW", {
        n: f for n, f in numpy_api.FUNCTION_OF_ROW.items() if n != "expm1"})
    monkeypatch.setattr(numpy_api, "_UNRESOLVED", {"expm1": row})
    return row


def test_a_scipy_row_dispatches_through_array_ufunc_once_scipy_is_imported(backend,
                                                                          monkeypatch):
    special = pytest.importorskip("scipy.special")
    _a_scipy_row(monkeypatch)
    numpy_api._resolve_rows(import_modules=False)
    assert numpy_api.UNARY_UFUNCS[special.expm1] == "expm1"
    assert numpy_api._UNRESOLVED == {}
    with pyad.Tape(backend) as t:
        assert ops_of(special.expm1(t.input(np.array([0.5, -1.0])))) == {"expm1"}
    with pyad.Tape(backend) as t:
        y = special.expm1(t.input(0.5))
        assert last_op(y) == "expm1"
        t.output(y)
    assert t.gradient(0.25) == pytest.approx(np.exp(0.25), rel=1e-15)
    assert pyad.expm1(0.5) == special.expm1(0.5)


def test_a_scipy_row_is_found_when_scipy_is_imported_after_pyad(monkeypatch):
    special = pytest.importorskip("scipy.special")
    _a_scipy_row(monkeypatch)
    assert special.expm1 not in numpy_api.UNARY_UFUNCS
    with pyad.Tape() as t:
        assert last_op(special.expm1(t.input(0.5))) == "expm1"


def test_a_scipy_row_without_scipy_is_skipped_silently(backend, monkeypatch):
    row = _a_scipy_row(monkeypatch)
    monkeypatch.setitem(sys.modules, "scipy", None)          # import scipy fails
    monkeypatch.setitem(sys.modules, "scipy.special", None)
    assert numpy_api.resolve(row.numpy) is None
    assert numpy_api._resolve_rows(import_modules=True) is False
    assert numpy_api._UNRESOLVED == {"expm1": row}
    with pyad.Tape(backend) as t:   # recording needs no scipy
        assert last_op(pyad.expm1(t.input(0.5))) == "expm1"
    with pytest.raises(TypeError, match=r"pyad\.expm1 .* scipy\.special\.expm1.* not installed"):
        pyad.expm1(0.5)


# ---- the Wengert table writes each row as Python would ----

@pytest.mark.parametrize("op", [op for op in BINARY_LIKE if op.operator], ids=ids)
def test_the_table_writes_operator_rows_and_their_constant_forms_as_python(op):
    """Each line of tape.table() for x ∘ y, x ∘ c and c ∘ x, evaluated as Python
    with the recorded values, gives the recorded value."""
    f = operator_function(op)
    with pyad.Tape() as t:
        x, y = t.input(1.5), t.input(0.75)
        t.output([f(x, y), f(x, 2.5), f(2.5, x)])
    g = teaching._Graph(t)
    # the table's slot names (v_{-1}) as Python names
    python_name = {g.names[k]: f"s{k}" for k in range(g.op.size)}
    values = {f"s{k}": float(g.arrays["val"][k]) for k in range(g.op.size)}
    for k in range(t.n_inputs, g.op.size):
        text = g.text(k)
        for name in sorted(python_name, key=len, reverse=True):
            text = text.replace(name, python_name[name])
        assert eval(text, {}, values) == values[f"s{k}"], (op.name, g.text(k))


# ---- status codes ----

def test_status_names_and_messages_come_from_c():
    assert ops.STATUS[0] == ("PYAD_OK", "ok")
    for code, (name, message) in ops.STATUS.items():
        assert getattr(lib, name) == code
        assert message == ffi.string(lib.pyad_strerror(code)).decode()
    assert lib.pyad_status_name(1) == ffi.NULL
    assert lib.pyad_status_name(min(ops.STATUS) - 1) == ffi.NULL


def test_every_status_maps_to_an_exception_by_its_c_name():
    for code, (name, message) in ops.STATUS.items():
        if code == 0:
            continue
        by_code, by_name = errors.status_error(code), errors.status_error(name)
        assert type(by_code) is type(by_name) is errors._ERROR_OF_STATUS[name]
        assert str(by_code) == str(by_name) and str(by_code).startswith(message)
    assert isinstance(errors.status_error("PYAD_ENOMEM"), MemoryError)
    assert isinstance(errors.status_error("PYAD_EFORMAT"), pyad.TapeFormatError)


def test_a_status_python_does_not_map_fails_at_import():
    statuses = {**ops.STATUS, -99: ("PYAD_ENEW", "a new failure")}
    with pytest.raises(ImportError, match="PYAD_ENEW"):
        errors._errors_by_code(statuses, errors._ERROR_OF_STATUS)


def _refusals(t):
    """What each status-raising misuse of a store raises (type, message)."""
    store = t._store
    x = t.input(np.ones(2))
    add = ops.CODE[ops.names_of_kind("binary")[0]]
    cases = {
        "PYAD_EINVAL": lambda: store.set_max_ops(0),
        "PYAD_EINDEX": lambda: store.rec2_n(add, np.array([0], np.int32),
                                            np.array([999], np.int32)),
        "PYAD_EINDEX (one slot)": lambda: store.value(999),
    }
    out = {}
    for what, call in cases.items():
        with pytest.raises(Exception) as info:
            call()
        out[what] = (type(info.value), str(info.value))
    store.set_max_ops(t.n_slots)   # max_ops bounds slots: full
    with pytest.raises(Exception) as info:
        x * 2.0
    out["PYAD_ETOOBIG"] = (type(info.value), str(info.value))
    t.close()
    with pytest.raises(Exception) as info:
        store.n_ops
    out["PYAD_ECLOSED"] = (type(info.value), str(info.value))
    return out


def test_both_backends_raise_the_c_messages():
    got = {backend: _refusals(pyad.Tape(backend)) for backend in ("c", "python")}
    assert got["c"] == got["python"]
    for what, (cls, message) in got["python"].items():
        want = errors.status_error(what.split()[0])
        assert (cls, message) == (type(want), str(want)), name


def test_the_row_buffer_raises_the_c_message_for_a_closed_tape(backend):
    t = pyad.Tape(backend)
    x = t.input(1.0)
    t.close()
    want = errors.status_error("PYAD_ECLOSED")
    for call in (lambda: t._store._push(ops.CODE[ops.names_of_kind("unary")[0]], 0, 0.0),
                 lambda: t._store._take(), lambda: x + 1.0):
        with pytest.raises(pyad.TapeClosedError) as info:
            call()
        assert str(info.value) == str(want)
