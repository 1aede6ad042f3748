"""The primitive table as Python sees it: read from the C core (csrc/ops.def).

There is no second list of primitives here: names, op codes and kinds come from
the compiled extension, and both backends use them.
"""
from ._pyad_c import ffi, lib

KIND_NAMES = {
    lib.PYAD_KIND_SPECIAL: "special",
    lib.PYAD_KIND_UNARY: "unary",
    lib.PYAD_KIND_BINARY: "binary",
    lib.PYAD_KIND_WITH_CONST: "with_const",
    lib.PYAD_KIND_COMPARE: "compare",
    lib.PYAD_KIND_COMPARE_C: "compare_c",
}

#: op name -> op code
CODE = {}
#: op code -> op name
NAME = []
#: op name -> kind name ("unary", "binary", "with_const", "compare", ...)
KIND = {}

for _code in range(lib.pyad_op_count()):
    _name = ffi.string(lib.pyad_op_name(_code)).decode()
    CODE[_name] = _code
    NAME.append(_name)
    KIND[_name] = KIND_NAMES[lib.pyad_op_kind(_code)]


def names_of_kind(*kinds):
    """The op names whose kind is one of `kinds`, in table order."""
    return [n for n in NAME if KIND[n] in kinds]
