"""The saved format names its ops (pyad/serialize.py): a file means the same to
every build, whatever order or codes the C table (csrc/ops.def) has.

* golden files of both format versions (tests/golden/, made by make_golden.py)
  load to the closed-form values and derivatives of the function they hold;
* a file whose name table is reordered, or written by a build with other op
  codes, loads to the same tape; an unknown op name is refused by name;
* saving while another thread closes the tape raises TapeClosedError.
"""
import os
import pathlib
import pickle
import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest

import pyad
from pyad import ops, serialize

GOLDEN = pathlib.Path(__file__).with_name("golden")
RECORDED_AT = np.array([1.5, 0.5, 2.0])
# points where no guard flips and c is the largest input; the select and
# maximum(b, 0.1) take either side among them
POINTS = [RECORDED_AT, np.array([1.2, 0.7, 2.5]), np.array([0.4, 0.9, 2.5]),
          np.array([2.0, 0.05, 3.0])]


# ---- the golden function (tests/golden/make_golden.py) in closed form ----

def golden_value(x):
    a, b, c = x
    return ((a * b if a > b else a + b) + np.sin(c) + max(a, b, c) + min(a, b)
            + np.exp(a) * np.log(b) + 0.25 * a + 0.5 * b + 0.75 * c + c * c + max(b, 0.1) + 7.0)


def golden_gradient(x):
    a, b, c = x
    g = np.array([0.25 + np.exp(a) * np.log(b), 0.5 + np.exp(a) / b, 0.75 + np.cos(c) + 1.0 + 2 * c])
    g += [b, a, 0.0] if a > b else [1.0, 1.0, 0.0]       # the select
    g[0 if a < b else 1] += 1.0                           # min(a, b)
    g[1] += 1.0 if b > 0.1 else 0.0                       # maximum(b, 0.1)
    return g


def golden_hessian(x):
    a, b, c = x
    ea = np.exp(a)
    h = np.array([[ea * np.log(b), ea / b, 0.0],
                  [ea / b, -ea / (b * b), 0.0],
                  [0.0, 0.0, 2.0 - np.sin(c)]])
    if a > b:
        h[0, 1] += 1.0
        h[1, 0] += 1.0
    return h


@pytest.mark.parametrize("version", [1, 2])
def test_golden_file_loads_to_the_closed_form(backend, version):
    tape = pyad.load(GOLDEN / f"golden_v{version}.pyad", backend=backend)
    assert (tape.n_inputs, tape.n_outputs, tape.n_ops) == (3, 1, 33)
    assert tape() == golden_value(RECORDED_AT)
    for x in POINTS:
        np.testing.assert_allclose(tape(x), golden_value(x), rtol=1e-14)
        np.testing.assert_allclose(tape.gradient(x), golden_gradient(x), rtol=1e-14)
        np.testing.assert_allclose(tape.hessian(x), golden_hessian(x), rtol=1e-14, atol=1e-15)
    # both guards came back as the guards they were: each flips where its test does
    for flipped in ([1.5, 0.5, -2.0], [1.5, -0.5, 2.0]):
        with pytest.raises(pyad.BranchError):
            tape.gradient(np.array(flipped))


def test_golden_files_of_both_versions_hold_the_same_tape(backend):
    v1, v2 = (pyad.load(GOLDEN / f"golden_v{v}.pyad", backend=backend) for v in (1, 2))
    x = POINTS[2]
    assert v1(x) == v2(x)
    assert np.array_equal(v1.hessian(x), v2.hessian(x))
    assert pyad.serialize.dumps(v1) == pyad.serialize.dumps(v2)


def test_the_v2_golden_file_names_the_ops_it_uses():
    parts = split_v2((GOLDEN / "golden_v2.pyad").read_bytes())
    assert sorted(parts["names"]) == sorted([
        "input", "constant", "select", "guard_true", "guard_false", "axpy_c", "max_n", "min_n",
        "add", "mul", "gt", "gt_c", "lt_c", "sin", "exp", "log", "mul_c", "square",
        "maximum_c"])


def test_the_frozen_version_1_names_never_change():
    """V1_OP_NAMES is what version-1 op codes meant; editing it reinterprets every
    version-1 file (the golden v1 file checks only the ops it uses)."""
    names = serialize.V1_OP_NAMES
    assert isinstance(names, tuple) and len(names) == 56 == len(set(names))
    assert zlib.crc32(",".join(names).encode()) == 0x64DF2603  # the tuple as the C table was at format 2


# ---- the name table, read and rewritten by hand, as the docstring lays it out ----

def split_v2(data):
    """The parts of a format-2 or format-3 file: header (format 3 adds n_slots and
    n_blocks to format 2's), names, shapes, op column, the rest."""
    body = data[:-4]
    (version,) = struct.unpack_from("<I", body, 8)
    assert body[:8] == b"PYADTAPE" and version in (2, 3)
    n_ops, *_, n_in_args, n_out_args = struct.unpack_from("<7q", body, 16)
    at = names_offset(version)
    (count,), pos, names = struct.unpack_from("<q", body, at), at + 8, []
    for _ in range(count):
        names.append(body[pos + 1:pos + 1 + body[pos]].decode())
        pos += 1 + body[pos]
    shapes_at = pos
    for _ in range(n_in_args + n_out_args):
        pos += 8 + 8 * struct.unpack_from("<q", body, pos)[0]
    return {"head": body[:at], "names": names, "shapes": body[shapes_at:pos],
            "ops": np.frombuffer(body, np.uint8, n_ops, pos).copy(),
            "rest": body[pos + n_ops:]}


def names_offset(version):
    """Where n_names sits: after the 72-byte header, and in format 3 after n_slots, n_blocks."""
    return 72 if version == 2 else 88


def join_v2(parts):
    names = b"".join(struct.pack("<B", len(n)) + n.encode() for n in parts["names"])
    body = (parts["head"] + struct.pack("<q", len(parts["names"])) + names + parts["shapes"]
            + parts["ops"].astype(np.uint8).tobytes() + parts["rest"])
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


def permuted(parts, order):
    """The file with its name table in `order` (old positions), op column to match."""
    new_place = np.argsort(order)
    return dict(parts, names=[parts["names"][k] for k in order], ops=new_place[parts["ops"]])


def golden_tape(backend):
    return pyad.load(GOLDEN / "golden_v2.pyad", backend=backend)


def same_tape(loaded, tape):
    for x in POINTS:
        assert loaded(x) == tape(x)
        assert np.array_equal(loaded.gradient(x), tape.gradient(x))
        assert np.array_equal(loaded.hessian(x), tape.hessian(x))


def test_a_reordered_name_table_loads_to_the_same_tape(backend):
    tape = golden_tape(backend)
    parts = split_v2(serialize.dumps(tape))
    order = np.roll(np.arange(len(parts["names"]))[::-1], 3)
    data = join_v2(permuted(parts, order))
    assert split_v2(data)["names"] != parts["names"]
    same_tape(pyad.loads(data, backend=backend), tape)
    # the names are what counts: the reordered table with the old op column is
    # another tape (or an invalid one)
    try:
        wrong = pyad.loads(join_v2(dict(parts, names=split_v2(data)["names"])), backend=backend)
    except pyad.TapeFormatError:
        return
    assert any(wrong(x) != tape(x) for x in POINTS)


def future_table():
    """A build with two primitives inserted at the top and the rest reversed."""
    return ["zeta", "polygamma"] + list(reversed(ops.NAME))


def test_a_file_from_a_build_with_other_op_codes_loads_to_the_same_tape(backend):
    tape = golden_tape(backend)
    arrays = tape._store.export()
    future = future_table()
    future_code = {name: code for code, name in enumerate(future)}
    arrays["op"] = np.array([future_code[ops.NAME[k]] for k in arrays["op"]], np.uint8)
    data = serialize.encode(arrays, tape._in_shapes, tape._out_shapes, op_names=future)
    same_tape(pyad.loads(data, backend=backend), tape)


def test_a_build_with_other_op_codes_reads_todays_file_as_the_same_ops():
    tape = golden_tape("c")
    future = future_table()
    arrays, in_shapes, out_shapes = serialize.decode(
        serialize.dumps(tape), op_codes={name: code for code, name in enumerate(future)})
    assert [future[k] for k in arrays["op"]] == [ops.NAME[k] for k in tape._store.export()["op"]]
    assert (in_shapes, out_shapes) == ([(3,)], [()])


def test_a_version_1_file_maps_through_the_frozen_names_not_todays_table(monkeypatch):
    """In a build whose C table is reordered, version-1 codes still mean what
    version 1 meant (simulated by giving serialize that build's table)."""
    data = (GOLDEN / "golden_v1.pyad").read_bytes()
    future = future_table()
    monkeypatch.setattr(ops, "NAME", future)
    monkeypatch.setattr(ops, "CODE", {name: code for code, name in enumerate(future)})
    arrays, _, _ = serialize.decode(data)
    file_ops = np.frombuffer(data, np.uint8, 33, _v1_op_offset(data))
    assert [future[k] for k in arrays["op"]] == [serialize.V1_OP_NAMES[k] for k in file_ops]
    assert {"guard_true", "guard_false", "select", "max_n", "min_n"} <= {
        future[k] for k in arrays["op"]}


def _v1_op_offset(data):
    n_in_args, n_out_args = struct.unpack_from("<2q", data, 56)
    pos = 72
    for _ in range(n_in_args + n_out_args):
        pos += 8 + 8 * struct.unpack_from("<q", data, pos)[0]
    return pos


# ---- what a loader refuses ----

def test_an_unknown_op_name_is_refused_by_name(backend):
    parts = split_v2(serialize.dumps(golden_tape(backend)))
    names = ["zeta" if n == "sin" else n for n in parts["names"]]
    with pytest.raises(pyad.TapeFormatError, match="'zeta'"):
        pyad.loads(join_v2(dict(parts, names=names)), backend=backend)
    # even where no row uses it
    with pytest.raises(pyad.TapeFormatError, match="'lgamma'"):
        pyad.loads(join_v2(dict(parts, names=parts["names"] + ["lgamma"])), backend=backend)


def test_an_op_removed_since_version_1_is_refused_by_name():
    data = (GOLDEN / "golden_v1.pyad").read_bytes()
    without_sin = {name: code for name, code in ops.CODE.items() if name != "sin"}
    with pytest.raises(pyad.TapeFormatError, match="'sin'"):
        serialize.decode(data, op_codes=without_sin)
    # an op the file does not use may go
    without_tanh = {name: code for name, code in ops.CODE.items() if name != "tanh"}
    assert serialize.decode(data, op_codes=without_tanh)[0]["op"].size == 33


def test_a_bad_name_table_is_refused(backend):
    parts = split_v2(serialize.dumps(golden_tape(backend)))
    names = parts["names"]
    bad_tables = {"twice": names + [names[0]], "not an identifier": names[:-1] + ["si n"],
                  "op code": names[:-1]}
    for why, table in bad_tables.items():
        with pytest.raises(pyad.TapeFormatError, match=why):
            pyad.loads(join_v2(dict(parts, names=table)), backend=backend)
    data = bytearray(join_v2(parts)[:-4])
    at = names_offset(serialize.VERSION)
    data[at:at + 8] = struct.pack("<q", 257)
    with pytest.raises(pyad.TapeFormatError, match="257 op names"):
        pyad.loads(bytes(data) + struct.pack("<I", zlib.crc32(data)), backend=backend)


def test_the_checksum_covers_the_name_table(backend):
    data = bytearray(serialize.dumps(golden_tape(backend)))
    at = data.index(b"\x03sin") + 1
    data[at:at + 3] = b"cos"
    with pytest.raises(pyad.TapeFormatError, match="checksum"):
        pyad.loads(bytes(data), backend=backend)


def test_a_version_1_op_code_past_the_frozen_table_is_refused(backend):
    data = bytearray((GOLDEN / "golden_v1.pyad").read_bytes()[:-4])
    data[_v1_op_offset(data) + 5] = 56
    with pytest.raises(pyad.TapeFormatError, match="op code 56 at row 5 .* 56 op names"):
        pyad.loads(bytes(data) + struct.pack("<I", zlib.crc32(data)), backend=backend)


def test_an_unknown_version_is_refused_naming_the_readable_ones(backend):
    data = bytearray(serialize.dumps(golden_tape(backend))[:-4])
    data[8:12] = struct.pack("<I", 5)
    with pytest.raises(pyad.TapeFormatError,
                       match="version 5; this pyad reads versions 1, 2, 3, 4"):
        pyad.loads(bytes(data) + struct.pack("<I", zlib.crc32(data)), backend=backend)


def test_save_and_pickle_write_version_3(backend, tmp_path):
    tape = golden_tape(backend)
    tape.save(tmp_path / "t.pyad")
    saved = (tmp_path / "t.pyad").read_bytes()
    assert struct.unpack_from("<I", saved, 8) == (3,)
    assert saved == serialize.dumps(tape) and split_v2(saved)["names"]
    assert saved in pickle.dumps(tape)
    same_tape(pickle.loads(pickle.dumps(tape)), tape)


def test_an_empty_tape_round_trips(backend):
    with pyad.Tape(backend=backend) as tape:
        pass
    data = serialize.dumps(tape)
    assert split_v2(data)["names"] == []
    assert pyad.loads(data, backend=backend).n_ops == 0


# ---- saving while another thread closes the tape (issue 12, item 15) ----

SAVE_WHILE_CLOSING = r"""
    import sys, threading, time
    import numpy as np
    import pyad
    backend, trials = sys.argv[1], int(sys.argv[2])
    sys.setswitchinterval(1e-6)
    x0 = np.linspace(0.1, 1.0, 30)

    def f(x):
        return np.sum(pyad.sin(x) * x) + np.max(x)

    want = pyad.trace(f, x0, backend=backend).gradient()
    errors, closed = [], []
    for trial in range(trials):
        tape = pyad.trace(f, x0, backend=backend)
        barrier = threading.Barrier(2)

        def save_until_closed():
            barrier.wait()
            while True:
                try:
                    data = pyad.serialize.dumps(tape)
                except pyad.TapeClosedError:
                    closed.append(trial)
                    return
                except Exception as e:
                    errors.append(f"{type(e).__name__}: {e}")
                    return
                if not np.array_equal(pyad.loads(data, backend=backend).gradient(), want):
                    errors.append("a tape saved during close() replays wrong")
                    return

        saver = threading.Thread(target=save_until_closed)
        saver.start()
        barrier.wait()
        time.sleep(0.0005 * (trial % 4))
        tape.close()
        saver.join()
        if errors:
            sys.exit(f"trial {trial}: {errors[0]}")
    assert len(closed) == trials
    print("ok")
"""


def test_saving_while_another_thread_closes_raises_tape_closed_error(backend):
    """Before the fix, the C backend read the op count and then the constant count
    of a tape closed in between: 'negative dimensions are not allowed' within
    tens of trials."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(SAVE_WHILE_CLOSING), backend,
                           "300"], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONFAULTHANDLER="1"))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
