"""The row buffer both stores share: scalar ops wait here as (op, a, b) rows,
with their slot numbers already given out, until the store hands them over
(the C store to C in one call, the Python store to its own recorder).

The active types append to _po / _pa / _pb directly on their fast path; these
methods are the same for the other paths. For *_c ops, b holds the constant.
"""


class RowBuffer:
    def push1(self, op, a):
        return self.push2(op, a, 0)

    def push_c(self, op, a, c):
        return self.push2(op, a, float(c))

    def push2(self, op, a, b):
        self._po.append(op)
        self._pa.append(a)
        self._pb.append(b)
        k = self._next
        self._next = k + 1
        return k
