"""Make the golden saved tape with block rows that tests/test_block_rows.py loads.

    python tests/golden/make_golden_blocks.py      (from the repository root, pyad installed)

writes tests/golden/golden_v<N>_blocks.pyad, N being the format version this pyad
writes (pyad.serialize.VERSION, 3 when block rows came). Like the other golden
files it is checked in and never regenerated: it stands for the files users saved.

block_function uses every kind of block row this format has: a unary row, binary
rows with a contiguous, a broadcast (stride 0) and a strided operand, a shared and
a per-element constant, a comparison with constants and a select, and the levels
of a pairwise sum. The test holds the closed form of its value and gradient.
"""
import pathlib
import sys

import numpy as np

import pyad

X0 = np.array([0.5, -1.0, 1.5, 2.0, -0.3, 0.8])
C6 = np.array([0.0, 0.0, 1.0, 3.0, -1.0, 1.0])


def block_function(x):
    s = np.sum(np.sin(x) * x[0])                        # sin, mul with x[0] broadcast
    s = s + np.sum(x[::2] * x[1::2])                    # mul of strided operands
    return s + np.sum(pyad.where(x > C6, x * x, 2.0 * x))  # gt_c, mul, mul_c, select


def main():
    tape = pyad.trace(block_function, X0, retrace=False)
    path = pathlib.Path(__file__).with_name(f"golden_v{pyad.serialize.VERSION}_blocks.pyad")
    if path.exists() and "--force" not in sys.argv:
        sys.exit(f"{path} exists: golden files are never regenerated (see the docstring)")
    tape.save(path)
    print(f"wrote {path}: {tape.n_ops} rows, {tape.n_slots} slots, {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
