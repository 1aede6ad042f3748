"""The row buffer both stores share: scalar ops wait here as (op, a, b) rows,
with their slots already numbered, until the store hands them over (the C store
to C in one call, the Python store to its own recorder).

The buffer itself lives in RowStore (pyad/_speedups.c), where the active
scalars' fast path appends to it: _pending (rows waiting), _next (the next slot
number), _owner (the recording thread), _take() and _close_rows(). These
methods are the other paths. For *_c ops, b holds the constant.
"""
from ._speedups import RowStore


class RowBuffer(RowStore):
    def push1(self, op, a):
        return self._push(op, a, 0.0)

    def push_c(self, op, a, c):
        return self._push(op, a, float(c))

    def push2(self, op, a, b):
        return self._push(op, a, b)
