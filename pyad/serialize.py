"""Saving and loading tapes: a versioned binary format of plain arrays.

No Python code is stored or run on load (unlike a plain pickle of objects); a
tape's pickle is these same bytes. Format version 3, all little-endian:

    offset  size        field
    0       8           magic b"PYADTAPE"
    8       4           format version (uint32): 3
    12      4           reserved flags (uint32), 0
    16      7 x 8       n_ops (rows), n_consts, n_pool, n_inputs, n_outputs,
                        n_input_args, n_output_args (int64)
    72      2 x 8       n_slots, n_blocks (int64)
    88      8           n_names (int64), at most 256
    96      ...         the op-name table: for each name, its length (uint8,
                        1..255) then its ASCII bytes
    ...     ...         for each input argument, then each output argument:
                        ndim (int64), then ndim dimensions (int64)
    ...     n_ops       op codes (uint8): indices into the op-name table
            4 x 4n_ops  operand columns a, b, c and first, the first slot
                        each row defines (int32)
            8 n_slots   recorded values, one per slot (float64)
            8 n_consts  constant pool (float64)
            4 n_pool    operand lists of variadic ops (int32)
            4 n_inputs  slot of each input (int32)
            4 n_outputs slot of each output (int32)
            24 n_blocks for each block row, in row order: row, width, stride_a,
                        stride_b, stride_c, stride_const (int32)
    (v4)    n_input_args  per input argument (leaf), 1 if it is a parameter, else 0
                        (uint8): only in version 4, written for tapes with parameters
    end-4   4           CRC-32 of all bytes before it, name table included (uint32)

Version 4 is version 3 plus the parameter flags; a tape without parameters is
written as version 3, so older readers keep reading it, and one with parameters
as version 4, which they refuse rather than misread. Loading a version-4 file
marks the parameters again (the derivative sweeps skip the rows they alone
reach) and the loaded Tape takes them at replay without differentiating them.

A row defines the slots first[k] .. first[k] + w - 1: w = 1 for a scalar row,
w = its width in the blocks table for a block row (one numpy operation on
arrays whose operands are affine in the element index: element i reads slot
a + stride_a * i, and so on; see ARR_CONTRACT.md).

The op-name table holds the names of the ops the tape uses, each once, ordered
by the writing build's op codes; the op column numbers rows by their place in
that table, not by any build's codes. So a file means the same thing to every
build: loading maps each name to the op code of the running build
(pyad.ops.CODE, read from the C table csrc/ops.def), whatever order or codes the
writing build had. A reader accepts the names in any order and names it does
not use; it refuses a name it does not know (a newer pyad's primitive, or one
since removed) with TapeFormatError naming it, a repeated name, and an op code
past the end of the table.

Older versions keep loading; every row of theirs defines one slot (first[k] = k,
no blocks, one value per row):
  * version 2 has the layout above without n_slots, n_blocks, the first column
    and the blocks table;
  * version 1 (written until format 2 existed) is version 2 without n_names and
    the name table: its op column holds the op codes of the C table as it was
    then, which V1_OP_NAMES keeps frozen. Version-1 files load through that
    list, so they keep loading whatever the C table becomes.

After the names are mapped, loading checks in C (pyad_validate) that every
operand names what its op's kind says: earlier slots (both ends of a block
operand), a constant or an input, and that first[] and the blocks table agree.
Anything wrong raises pyad.TapeFormatError.
"""
import os
import struct
import zlib
from typing import Any

import numpy as np

from . import ops
from .backends import store_class
from ._pyad_c import ffi, lib
from .errors import CustomRuleError, TapeFormatError

MAGIC = b"PYADTAPE"
VERSION = 3          # what a tape without parameters is written as
PARAMS_VERSION = 4   # a tape with parameters
READABLE_VERSIONS = (1, 2, 3, 4)
MAX_NAMES = 256  # op codes on disk are uint8

# What the op codes of a version-1 file meant: the C table's names in code order
# from commit 7366cb3 (which added max_n/min_n and the pool column; files from
# before it do not parse as version 1) until format 2. NEVER CHANGE THIS TUPLE,
# whatever csrc/ops.def becomes: it is the only record of what v1 files say.
V1_OP_NAMES = (
    "input", "constant", "select", "guard_true", "guard_false", "axpy_c", "max_n", "min_n",
    "add", "sub", "mul", "div", "pow", "arctan2", "maximum", "minimum",
    "add_c", "sub_c", "mul_c", "div_c", "rsub_c", "rdiv_c", "pow_c", "rpow_c",
    "maximum_c", "minimum_c",
    "neg", "square", "reciprocal", "exp", "log", "log1p", "expm1", "sqrt",
    "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "abs",
    "lt", "le", "gt", "ge", "eq", "ne", "lt_c", "le_c", "gt_c", "ge_c", "eq_c", "ne_c",
)

_HEAD = struct.Struct("<8sII7q")
_COUNTS = ("n_ops", "n_consts", "n_pool", "n_inputs", "n_outputs", "n_in_args", "n_out_args")
_V3_COUNTS = struct.Struct("<2q")  # n_slots, n_blocks
_COLUMNS = [("op", "<u1"), ("a", "<i4"), ("b", "<i4"), ("c", "<i4"), ("first", "<i4"),
            ("val", "<f8"), ("consts", "<f8"), ("pool", "<i4"), ("inputs", "<i4"),
            ("outputs", "<i4"), ("blocks", "<i4")]
_SIZES = {"op": "n_ops", "a": "n_ops", "b": "n_ops", "c": "n_ops", "first": "n_ops",
          "val": "n_slots", "consts": "n_consts", "pool": "n_pool", "inputs": "n_inputs",
          "outputs": "n_outputs", "blocks": "n_block_ints"}
# Versions 1 and 2: no first column and no blocks table (first[k] = k).
_OLD_COLUMNS = [(name, dt) for name, dt in _COLUMNS if name not in ("first", "blocks")]

def _bad(why):
    return TapeFormatError(f"not a valid pyad tape: {why}")


# ---- writing ----

def dumps(tape):
    """The tape's bytes in the format above."""
    arrays = tape._store.export()
    _refuse_custom_rows(arrays)
    return encode(arrays, tape._in_shapes, tape._out_shapes,
                  param_leaves=tape._param_leaves())


def _refuse_custom_rows(arrays):
    """A custom row's rules are Python functions, which a saved tape never holds."""
    n = int(np.count_nonzero(arrays["op"] == ops.CODE["custom"]))
    if n:
        raise CustomRuleError(
            f"this tape holds {n} call(s) of pyad.custom_jvp / pyad.custom_vjp functions, "
            "whose rules are Python code: pyad never serializes Python code, so it cannot "
            "be saved or pickled. Keep the tape in memory, or record it again (pyad.trace) "
            "where it is needed")


def encode(arrays, in_shapes, out_shapes, op_names=None, param_leaves=None):
    """The format-3 bytes of a tape's plain arrays (as a store's export() gives them);
    format 4 where param_leaves (one flag per input leaf) marks a parameter.

    op_names[code] is the name of op code `code` in `arrays["op"]`: the running
    build's table (pyad.ops.NAME) unless given. Tests pass another table to write
    a file as a build with other op codes would."""
    op_names = ops.NAME if op_names is None else op_names
    used, file_ops = np.unique(np.asarray(arrays["op"], dtype=np.uint8), return_inverse=True)
    names = [op_names[code].encode("ascii") for code in used]
    with_params = param_leaves is not None and any(param_leaves)
    version = PARAMS_VERSION if with_params else VERSION
    out = [_HEAD.pack(MAGIC, version, 0, arrays["op"].size, arrays["consts"].size,
                      arrays["pool"].size, arrays["inputs"].size, arrays["outputs"].size,
                      len(in_shapes), len(out_shapes)),
           _V3_COUNTS.pack(arrays["val"].size, arrays["blocks"].size // 6),
           struct.pack("<q", len(names))]
    out += [struct.pack("<B", len(name)) + name for name in names]
    for shape in list(in_shapes) + list(out_shapes):
        out.append(struct.pack(f"<q{len(shape)}q", len(shape), *shape))
    columns = dict(arrays, op=file_ops.reshape(-1))
    for name, dtype in _COLUMNS:
        out.append(np.ascontiguousarray(columns[name], dtype=dtype).tobytes())
    if with_params:
        out.append(np.array([bool(p) for p in param_leaves], dtype=np.uint8).tobytes())
    body = b"".join(out)
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


# ---- reading ----

def loads(data: bytes, backend: "str | None" = None) -> Any:
    """A Tape from bytes made by ``pyad.serialize.dumps``, ``pickle`` or ``Tape.save``.

    Every operand index is validated in C; no Python code is executed. A loaded
    tape keeps no Python function, so where a branch flips it raises
    ``BranchError``.

    Parameters
    ----------
    data : bytes
        The saved tape.
    backend : {"c", "python"}, optional
        The backend to load into.

    Returns
    -------
    Tape
        The tape, ready to replay.

    Raises
    ------
    TapeFormatError
        The bytes are corrupt, truncated, of an unknown version, or use an op this
        pyad does not know (named).
    TypeError
        ``data`` is not bytes.

    Examples
    --------
    >>> import pyad
    >>> from pyad import serialize
    >>> data = serialize.dumps(pyad.trace(lambda x: x * x, 3.0))
    >>> pyad.loads(data).gradient(2.0)
    4.0
    """
    store, in_shapes, out_shapes, params = _load_parts(data, backend)
    return _tape_class().from_store(store, in_shapes, out_shapes, backend=backend,
                                    params=params)


def load_store(data, backend=None):
    """(store, input shapes, output shapes) from bytes made by dumps / Tape.save
    (a store with parameters has them marked: see Store.set_active_inputs)."""
    return _load_parts(data, backend)[:3]


def _load_parts(data, backend):
    arrays, in_shapes, out_shapes = decode(data)
    params = arrays.pop("param_leaves", None)
    validate(arrays)
    store = store_class(backend).from_arrays(arrays)
    if params is not None:
        active = np.repeat(1 - params, [int(np.prod(s, dtype=np.int64)) for s in in_shapes])
        store.set_active_inputs(active.astype(np.uint8))
        params = params.astype(bool).tolist()
    return store, list(in_shapes), list(out_shapes), params


# serialize sits below tape.py (Tape pickles and saves through it), so the Tape
# class that loads() builds is registered here by pyad.tape at its import.
_TAPE_CLASS = []


def register_tape_class(cls):
    """Called by pyad.tape: loads() returns cls.from_store(store, in_shapes, out_shapes)."""
    _TAPE_CLASS[:] = [cls]


def _tape_class():
    if not _TAPE_CLASS:
        raise RuntimeError("pyad.serialize.loads needs pyad.tape imported (import pyad)")
    return _TAPE_CLASS[0]


def decode(data, op_codes=None):
    """(arrays, input shapes, output shapes) of a saved tape, op codes mapped to
    op_codes[name]: the running build's codes (pyad.ops.CODE) unless given.
    Checks everything but the operands (validate does that, in C)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"pyad.loads takes bytes (from Tape.save / pickle), not "
                        f"{type(data).__name__}")
    body, version, n = _checked_body(bytes(data))
    pos = _HEAD.size
    if version >= 3:
        pos = _read_block_counts(body, pos, n)
    if version == 1:
        names = V1_OP_NAMES
    else:
        names, pos = _read_names(body, pos)
    shapes, pos = _read_shapes(body, pos, n["n_in_args"] + n["n_out_args"])
    in_shapes, out_shapes = shapes[:n["n_in_args"]], shapes[n["n_in_args"]:]
    if _total_size(in_shapes) != n["n_inputs"] or _total_size(out_shapes) != n["n_outputs"]:
        raise _bad("argument shapes do not match the numbers of inputs and outputs")
    if version >= 4:  # the parameter flags end the body
        n_flags = n["n_in_args"]
        if len(body) - pos < n_flags:
            raise _bad("truncated parameter flags")
        flags = np.frombuffer(body[len(body) - n_flags:], dtype=np.uint8).copy()
        if flags.max(initial=0) > 1:
            raise _bad("a parameter flag is neither 0 nor 1")
        body = body[:len(body) - n_flags]
    if version >= 3:
        arrays = _read_columns(body, pos, n, _COLUMNS)
    else:
        arrays = _one_slot_per_row(_read_columns(body, pos, dict(n, n_slots=n["n_ops"]),
                                                 _OLD_COLUMNS))
    arrays["op"] = _current_codes(arrays["op"], names, version,
                                  ops.CODE if op_codes is None else op_codes)
    if version >= 4:
        arrays["param_leaves"] = flags.astype(np.int64)
    return arrays, in_shapes, out_shapes


def _checked_body(data):
    """(the bytes before the CRC, the version, the counts) once magic, version,
    CRC and counts are checked."""
    if len(data) < _HEAD.size + 4:
        raise _bad(f"{len(data)} bytes is shorter than the header")
    magic, version, _flags, *counts = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise _bad("wrong magic bytes")
    if version not in READABLE_VERSIONS:
        raise _bad(f"format version {version}; this pyad reads versions "
                   f"{', '.join(map(str, READABLE_VERSIONS))}")
    body, (crc,) = data[:-4], struct.unpack("<I", data[-4:])
    if zlib.crc32(body) & 0xFFFFFFFF != crc:
        raise _bad("checksum mismatch (the file is damaged or truncated)")
    n = dict(zip(_COUNTS, counts))
    if min(n.values()) < 0 or n["n_ops"] > 2**31 - 1 or n["n_in_args"] + n["n_out_args"] > 2**20:
        raise _bad("negative or oversized counts")
    return body, version, n


def _read_names(body, pos):
    """The op-name table at pos, and the position after it."""
    if pos + 8 > len(body):
        raise _bad("truncated op-name table")
    (count,) = struct.unpack_from("<q", body, pos)
    if not 0 <= count <= MAX_NAMES:
        raise _bad(f"{count} op names (at most {MAX_NAMES})")
    pos += 8
    names = []
    for _ in range(count):
        length = body[pos] if pos < len(body) else 0
        raw = body[pos + 1:pos + 1 + length]
        if length == 0 or len(raw) != length:
            raise _bad("truncated or empty op name")
        if not (raw.isascii() and raw.decode().isidentifier()):
            raise _bad(f"op name {raw!r} is not an identifier")
        names.append(raw.decode())
        pos += 1 + length
    if len(set(names)) != len(names):
        raise _bad(f"op-name table names an op twice: {names}")
    return tuple(names), pos


def _read_shapes(body, pos, count):
    """`count` argument shapes at pos, and the position after them."""
    shapes = []
    for _ in range(count):
        if pos + 8 > len(body):
            raise _bad("truncated argument shapes")
        (ndim,) = struct.unpack_from("<q", body, pos)
        if not 0 <= ndim <= 64 or pos + 8 + 8 * ndim > len(body):
            raise _bad("invalid argument shape")
        shape = struct.unpack_from(f"<{ndim}q", body, pos + 8)
        if min(shape, default=0) < 0:
            raise _bad("negative dimension")
        shapes.append(tuple(shape))
        pos += 8 + 8 * ndim
    return shapes, pos


def _total_size(shapes):
    return sum(int(np.prod(s, dtype=object)) for s in shapes)


def _read_block_counts(body, pos, n):
    """n_slots and n_blocks of a version-3 header into n; the position after them."""
    if pos + _V3_COUNTS.size > len(body):
        raise _bad("truncated header")
    n["n_slots"], n_blocks = _V3_COUNTS.unpack_from(body, pos)
    if not 0 <= n["n_slots"] <= 2**31 - 1 or not 0 <= n_blocks <= n["n_ops"]:
        raise _bad("negative or oversized counts")
    n["n_block_ints"] = 6 * n_blocks
    return pos + _V3_COUNTS.size


def _read_columns(body, pos, n, columns):
    expected = pos + sum(n[_SIZES[name]] * np.dtype(dt).itemsize for name, dt in columns)
    if expected != len(body):
        raise _bad(f"{len(body)} bytes of body where the counts need {expected}")
    arrays = {}
    for name, dtype in columns:
        count = n[_SIZES[name]]
        arrays[name] = np.frombuffer(body, dtype=dtype, count=count, offset=pos).astype(dtype[1:])
        pos += count * np.dtype(dtype).itemsize
    return arrays


def _one_slot_per_row(arrays):
    """The arrays of a version 1 or 2 file in today's layout: row k defines slot k."""
    arrays["first"] = np.arange(arrays["op"].size, dtype=np.int32)
    arrays["blocks"] = np.zeros(0, dtype=np.int32)
    return arrays


def _current_codes(file_ops, names, version, op_codes):
    """The op column in the running build's codes: file code k means names[k]."""
    used = np.unique(file_ops)
    if used.size and used[-1] >= len(names):
        row = int(np.argmax(file_ops >= len(names)))
        raise _bad(f"op code {int(file_ops[row])} at row {row} is outside the file's "
                   f"table of {len(names)} op names")
    # A v2 table is the file's own; the v1 list is every v1 op, and only the
    # ones a file uses need to exist still.
    named = names if version > 1 else [names[k] for k in used]
    unknown = [name for name in named if name not in op_codes]
    if unknown:
        raise _bad(f"the file names op {unknown[0]!r}, which this pyad does not know "
                   f"(saved by another pyad version? re-save it with one that knows it)")
    table = np.array([op_codes.get(name, 0) for name in names], dtype=np.uint8)
    return table[file_ops]


def validate(arrays):
    """Raise TapeFormatError unless the arrays form a valid tape (checked in C)."""
    a = {k: np.ascontiguousarray(v) for k, v in arrays.items()}

    def ints(name):
        return ffi.from_buffer("int32_t[]", a[name])

    s = lib.pyad_validate(
        a["op"].size, ffi.from_buffer("uint8_t[]", a["op"]), ints("a"), ints("b"), ints("c"),
        ints("first"), a["val"].size, a["consts"].size, a["pool"].size, ints("pool"),
        a["inputs"].size, ints("inputs"), a["outputs"].size, ints("outputs"),
        a["blocks"].size // 6, ints("blocks"))
    if s:
        raise _bad("an operand, input or output index is out of range, or first[] and "
                   "the blocks table do not describe the rows")


def save(tape, path):
    with open(path, "wb") as f:
        f.write(dumps(tape))


def load(path: "str | os.PathLike[str]", backend: "str | None" = None) -> Any:
    """A Tape from a file written by ``Tape.save`` (no Python code is executed).

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    backend : {"c", "python"}, optional
        The backend to load into.

    Returns
    -------
    Tape
        The tape, ready to replay.

    Raises
    ------
    OSError
        The file cannot be read.
    TapeFormatError
        The file is not a valid saved tape.

    Examples
    --------
    >>> import pyad
    >>> pyad.trace(lambda x: x * x, 3.0).save("square.pyad")
    >>> pyad.load("square.pyad").gradient(2.0)
    4.0
    """
    with open(path, "rb") as f:
        return loads(f.read(), backend)
