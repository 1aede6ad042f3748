"""Saving and loading tapes: a versioned binary format of plain arrays.

No Python code is stored or run on load (unlike a plain pickle of objects); a
tape's pickle is these same bytes. Layout, all little-endian:

    offset  size        field
    0       8           magic b"PYADTAPE"
    8       4           format version (uint32), currently 1
    12      4           reserved flags (uint32), 0
    16      7 x 8       n_ops, n_consts, n_pool, n_inputs, n_outputs,
                        n_input_args, n_output_args (int64)
    72      ...         for each input argument, then each output argument:
                        ndim (int64), then ndim dimensions (int64)
    ...     n_ops       op codes (uint8)
            3 x 4n_ops  operand columns a, b, c (int32)
            8 n_ops     recorded values (float64)
            8 n_consts  constant pool (float64)
            4 n_pool    operand lists of variadic ops (int32)
            4 n_inputs  slot of each input (int32)
            4 n_outputs slot of each output (int32)
    end-4   4           CRC-32 of all bytes before it (uint32)

Loading checks the magic, version, CRC, that every size is consistent with the
file's length, and then (in C, pyad_validate) that every op code is known and
every operand names what its kind says: an earlier slot, a constant or an
input. Anything else raises pyad.TapeFormatError.
"""
import struct
import zlib

import numpy as np

from ._pyad_c import ffi, lib
from .errors import TapeFormatError

MAGIC = b"PYADTAPE"
VERSION = 1
_HEAD = struct.Struct("<8sII7q")


def dumps(tape):
    """The tape's bytes in the format above."""
    arrays = tape._store.export()
    out = [_HEAD.pack(MAGIC, VERSION, 0, arrays["op"].size, arrays["consts"].size,
                      arrays["pool"].size, arrays["inputs"].size, arrays["outputs"].size, len(tape._in_shapes),
                      len(tape._out_shapes))]
    for shape in list(tape._in_shapes) + list(tape._out_shapes):
        out.append(struct.pack(f"<q{len(shape)}q", len(shape), *shape))
    for name, dtype in _COLUMNS:
        out.append(np.ascontiguousarray(arrays[name], dtype=dtype).tobytes())
    body = b"".join(out)
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


_COLUMNS = [("op", "<u1"), ("a", "<i4"), ("b", "<i4"), ("c", "<i4"), ("val", "<f8"),
            ("consts", "<f8"), ("pool", "<i4"), ("inputs", "<i4"), ("outputs", "<i4")]
_SIZES = {"op": "n_ops", "a": "n_ops", "b": "n_ops", "c": "n_ops", "val": "n_ops",
          "consts": "n_consts", "pool": "n_pool", "inputs": "n_inputs",
          "outputs": "n_outputs"}


def _bad(why):
    return TapeFormatError(f"not a valid pyad tape: {why}")


def loads(data, backend=None):
    """A Tape from bytes made by dumps / Tape.save; TapeFormatError if they are corrupt."""
    from .tape import Tape
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"pyad.loads takes bytes (from Tape.save / pickle), not "
                        f"{type(data).__name__}")
    data = bytes(data)
    if len(data) < _HEAD.size + 4:
        raise _bad(f"{len(data)} bytes is shorter than the header")
    magic, version, _flags, *counts = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise _bad("wrong magic bytes")
    if version != VERSION:
        raise _bad(f"format version {version}; this pyad reads version {VERSION}")
    body, (crc,) = data[:-4], struct.unpack("<I", data[-4:])
    if zlib.crc32(body) & 0xFFFFFFFF != crc:
        raise _bad("checksum mismatch (the file is damaged or truncated)")
    n = dict(zip(("n_ops", "n_consts", "n_pool", "n_inputs", "n_outputs", "n_in_args",
                  "n_out_args"),
                 counts))
    if min(n.values()) < 0 or n["n_ops"] > 2**31 - 1 or n["n_in_args"] + n["n_out_args"] > 2**20:
        raise _bad("negative or oversized counts")
    pos, shapes = _HEAD.size, []
    for _ in range(n["n_in_args"] + n["n_out_args"]):
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
    in_shapes, out_shapes = shapes[:n["n_in_args"]], shapes[n["n_in_args"]:]
    if sum(int(np.prod(s, dtype=object)) for s in in_shapes) != n["n_inputs"] or \
            sum(int(np.prod(s, dtype=object)) for s in out_shapes) != n["n_outputs"]:
        raise _bad("argument shapes do not match the numbers of inputs and outputs")
    expected = pos + sum(n[_SIZES[name]] * np.dtype(dt).itemsize for name, dt in _COLUMNS)
    if expected != len(body):
        raise _bad(f"{len(body)} bytes of body where the counts need {expected}")
    arrays = {}
    for name, dtype in _COLUMNS:
        count = n[_SIZES[name]]
        arrays[name] = np.frombuffer(body, dtype=dtype, count=count, offset=pos).astype(
            dtype[1:] if dtype[0] == "<" else dtype)
        pos += count * np.dtype(dtype).itemsize
    validate(arrays)
    tape = Tape(backend)
    tape._store.close()
    tape._store = type(tape._store).from_arrays(arrays)
    tape._in_shapes, tape._out_shapes = list(in_shapes), list(out_shapes)
    return tape


def validate(arrays):
    """Raise TapeFormatError unless the arrays form a valid tape (checked in C)."""
    a = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    s = lib.pyad_validate(
        a["op"].size, ffi.from_buffer("uint8_t[]", a["op"]), ffi.from_buffer("int32_t[]", a["a"]),
        ffi.from_buffer("int32_t[]", a["b"]), ffi.from_buffer("int32_t[]", a["c"]),
        a["consts"].size, a["pool"].size, ffi.from_buffer("int32_t[]", a["pool"]),
        a["inputs"].size, ffi.from_buffer("int32_t[]", a["inputs"]),
        a["outputs"].size, ffi.from_buffer("int32_t[]", a["outputs"]))
    if s:
        raise _bad("an op code or operand index is out of range")


def save(tape, path):
    with open(path, "wb") as f:
        f.write(dumps(tape))


def load(path, backend=None):
    """A Tape from a file written by Tape.save (no Python code is executed)."""
    with open(path, "rb") as f:
        return loads(f.read(), backend)
