"""The pure-Python backend's rules (pyad/_python_rules.py, the oracle of the
differential tests) cover exactly the primitives the registry (csrc/ops.def, read
through pyad.ops) declares: a missing, extra or misfiled rule stops the import
with an error naming the primitive.

The check is exercised on doctored copies of the rule tables, and once through
a real import in a subprocess whose registry view gains a row.
"""
import inspect
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pyad
from pyad import _python_rules as rules
from pyad._python_rules import RegistryMismatch, check_rules_match_registry


def real_tables():
    return {"RULES": dict(rules.RULES), "COMPARISONS": dict(rules.COMPARISONS),
            "SPECIAL": set(rules.SPECIAL)}


def table_of(op):
    return rules.TABLE_OF_KIND[pyad.ops.KIND[op]]


def test_the_rules_cover_exactly_the_registry():
    check_rules_match_registry(real_tables(), dict(pyad.ops.KIND))
    covered = set(rules.RULES) | set(rules.COMPARISONS) | set(rules.SPECIAL)
    assert covered == set(pyad.ops.NAME)
    assert set(rules.SPECIAL) == set(pyad.ops.names_of_kind("special"))


@pytest.mark.parametrize("op", pyad.ops.NAME)
def test_a_missing_rule_is_named(op):
    tables = real_tables()
    if isinstance(tables[table_of(op)], dict):
        del tables[table_of(op)][op]
    else:
        tables[table_of(op)].discard(op)
    with pytest.raises(RegistryMismatch, match=f"no rule for primitive '{op}' declared in "
                                               "csrc/ops.def"):
        check_rules_match_registry(tables, dict(pyad.ops.KIND))


@pytest.mark.parametrize("table", ["RULES", "COMPARISONS", "SPECIAL"])
def test_a_rule_for_an_undeclared_primitive_is_named(table):
    tables = real_tables()
    if table == "SPECIAL":
        tables[table].add("zeta")
    else:
        tables[table]["zeta"] = rules.RULES["sin"] if table == "RULES" else rules.COMPARISONS["lt"]
    with pytest.raises(RegistryMismatch, match="rule in .* for 'zeta', a primitive csrc/ops.def "
                                               "does not declare"):
        check_rules_match_registry(tables, dict(pyad.ops.KIND))


def test_a_rule_in_the_wrong_table_is_named():
    tables = real_tables()
    tables["RULES"]["lt"] = tables["COMPARISONS"]["lt"]
    with pytest.raises(RegistryMismatch, match="'lt' in RULES, but csrc/ops.def declares it a "
                                               "compare row"):
        check_rules_match_registry(tables, dict(pyad.ops.KIND))
    tables = real_tables()
    tables["SPECIAL"].add("sin")
    with pytest.raises(RegistryMismatch, match="'sin' in SPECIAL"):
        check_rules_match_registry(tables, dict(pyad.ops.KIND))


def test_a_row_of_an_unknown_kind_is_named():
    kinds = dict(pyad.ops.KIND, matmul="array_product")
    with pytest.raises(RegistryMismatch, match="kind 'array_product' of primitive 'matmul'"):
        check_rules_match_registry(real_tables(), kinds)


IMPORT_WITH_A_NEW_ROW = textwrap.dedent("""
    import pyad.ops
    pyad.ops.KIND["zeta"] = "unary"          # as a build whose ops.def gained a row
    pyad.ops.NAME.append("zeta")
    try:
        import pyad.backend_python
    except ImportError as e:
        print(type(e).__name__, e)
    else:
        print("imported")
""")


def test_importing_the_python_backend_fails_naming_a_primitive_without_a_rule():
    out = subprocess.run([sys.executable, "-c", IMPORT_WITH_A_NEW_ROW], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("RegistryMismatch pyad/_python_rules.py has no rule for "
                                  "primitive 'zeta' declared in csrc/ops.def (a unary row: "
                                  "add it to RULES)")


@pytest.mark.parametrize("name", sorted(rules.LIBM))
def test_each_libm_function_and_its_ieee_twin_are_the_same_function(name):
    """One LIBM entry gives both namespaces; a mispaired twin (asin with
    np.arccos) would change values only where math raises."""
    fast, ieee = getattr(rules.FAST, name), getattr(rules.IEEE, name)
    assert fast is getattr(math, name)
    arity = ieee.nin if isinstance(ieee, np.ufunc) else len(inspect.signature(fast).parameters)
    for args in ((0.3, 0.7), (0.7, 0.2), (0.05, 0.9)):        # inside every domain
        args = tuple(a + 1.0 for a in args) if name == "acosh" else args   # but acosh's, x >= 1
        args = args[:arity]
        want = fast(*args)
        assert float(ieee(*(np.float64(a) for a in args))) == pytest.approx(want, rel=1e-15)
