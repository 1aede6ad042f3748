"""Make the golden saved tapes that tests/test_saved_format.py loads.

    python tests/golden/make_golden.py      (from the repository root, pyad installed)

writes tests/golden/golden_v<N>.pyad, N being the format version this pyad writes
(pyad.serialize.VERSION). Golden files are checked in and never regenerated: each
stands for the files users saved with that version, so a change that stops one
loading correctly is a change that breaks users' files.

* golden_v1.pyad was written by this script at commit 2c4b5d6 (format 1: raw op
  codes, no names), before format 2 existed. Today's pyad cannot write version 1.
* golden_v2.pyad was written by this script once format 2 existed.

The tape is golden_function traced at X0 with retrace=False. It uses the structural
ops a saved file has to keep apart (input, constant, select, both guards, axpy_c,
max_n, min_n), comparisons with and without a constant, and a few elementwise
ops. The test holds the closed form of its value and derivatives.
"""
import pathlib
import sys

import numpy as np

import pyad

X0 = np.array([1.5, 0.5, 2.0])
WEIGHTS = np.array([0.25, 0.5, 0.75])


def golden_function(x):
    a, b, c = x[0], x[1], x[2]
    s = pyad.where(a > b, a * b, a + b)                 # gt, mul, add, select
    if c > 0:                                           # gt_c, guard_true
        s = s + pyad.sin(c)
    if b < 0:                                           # lt_c, guard_false
        s = s - 1.0
    s = s + np.max(x) + np.min(x[:2])                   # max_n, min_n
    s = s + pyad.exp(a) * pyad.log(b)                   # exp, log
    s = s + x @ WEIGHTS                                 # mul_c, axpy_c
    s = s + c ** 2 + pyad.maximum(b, 0.1)               # square, maximum_c
    return s + pyad.where(c > 10.0, c, 7.0)             # a recorded constant


def main():
    tape = pyad.trace(golden_function, X0, retrace=False)
    path = pathlib.Path(__file__).with_name(f"golden_v{pyad.serialize.VERSION}.pyad")
    if path.exists() and "--force" not in sys.argv:
        sys.exit(f"{path} exists: golden files are never regenerated (see the docstring)")
    tape.save(path)
    print(f"wrote {path}: {tape.n_ops} ops, {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
