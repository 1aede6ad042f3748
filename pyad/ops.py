"""The primitive registry as Python sees it: read from the C core (csrc/ops.def).

There is no second list of primitives here: every fact about an op (its name,
code, kind, the numpy function and Python operator it implements, its constant
forms, whether derivatives flow through it) comes from the compiled extension,
and both backends use them. The status codes' names and messages come from the
C core the same way.
"""
from dataclasses import dataclass

from ._pyad_c import ffi, lib

KIND_NAMES = {
    lib.PYAD_KIND_SPECIAL: "special",
    lib.PYAD_KIND_UNARY: "unary",
    lib.PYAD_KIND_BINARY: "binary",
    lib.PYAD_KIND_WITH_CONST: "with_const",
    lib.PYAD_KIND_COMPARE: "compare",
    lib.PYAD_KIND_COMPARE_C: "compare_c",
}


@dataclass(frozen=True)
class Op:
    """One row of the registry."""
    name: str
    code: int
    kind: str                 # "special" | "unary" | "binary" | "with_const" | "compare" | "compare_c"
    numpy: "str | None"       # the dotted function it implements ("numpy.sin"), or None
    operator: "str | None"    # the Python operator method it implements ("__add__"), or None
    const_form: "str | None"  # the op recording x ∘ c with a constant c ("sub_c"), or None
    rconst_form: "str | None" # the op recording c ∘ x ("rsub_c"), or None
    differentiable: bool      # derivatives flow from the operands through its rules


def _text(p):
    return None if p == ffi.NULL else ffi.string(p).decode()


def _op_name(code):
    return None if code < 0 else ffi.string(lib.pyad_op_name(code)).decode()


def _read_op(code):
    return Op(
        name=_op_name(code),
        code=code,
        kind=KIND_NAMES[lib.pyad_op_kind(code)],
        numpy=_text(lib.pyad_op_numpy(code)),
        operator=_text(lib.pyad_op_operator(code)),
        const_form=_op_name(lib.pyad_op_const_form(code)),
        rconst_form=_op_name(lib.pyad_op_rconst_form(code)),
        differentiable=bool(lib.pyad_op_differentiable(code)),
    )


#: op name -> Op, every row in code order
OPS = {op.name: op for op in map(_read_op, range(lib.pyad_op_count()))}
#: op name -> op code
CODE = {name: op.code for name, op in OPS.items()}
#: op code -> op name
NAME = list(OPS)
#: op name -> kind name ("unary", "binary", "with_const", "compare", ...)
KIND = {name: op.kind for name, op in OPS.items()}


def names_of_kind(*kinds):
    """The op names whose kind is one of `kinds`, in table order."""
    return [n for n in NAME if KIND[n] in kinds]


def _read_statuses():
    statuses, code = {}, 0
    while (name := _text(lib.pyad_status_name(code))) is not None:
        statuses[code] = (name, ffi.string(lib.pyad_strerror(code)).decode())
        code -= 1
    return statuses


#: status code -> (its C name, "PYAD_ENOMEM", and its message)
STATUS = _read_statuses()
