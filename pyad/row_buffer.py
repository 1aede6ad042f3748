"""The row buffer both stores share: scalar ops wait here as (op, a, b) rows,
with their slots already numbered, until the store hands them over (the C store
to C in one call, the Python store to its own recorder).

The buffer itself lives in RowStore (pyad/_speedups.c), where the active
scalars' fast path appends to it: _pending (rows waiting), _next (the next slot
number), _owner (the recording thread), _take() and _close_rows(). These
methods are the other paths. For *_c ops, b holds the constant.

One owner rule guards every way of recording: the scalar fast path buffers only
for the owner thread; every other recording call goes through `recording`,
which makes its thread the owner and marks it inside a record call (atomically,
in RowStore._enter) so that no other thread buffers or records until it
returns. Only the owner hands buffered rows over (`_sync`).
"""
import functools

from ._custom_rows import RECORDING_IN_A_RULE, refuses_recording
from ._speedups import RowStore
from .errors import INTERLEAVED, CustomRuleError, TapeBusyError
from .store import sweep_table

BUSY = ("another thread is recording on this tape right now: record each tape in one "
        "thread at a time (replaying one tape from many threads is safe)")


def recording(method):
    """A store method that records: run it as the tape's one recording thread."""
    @functools.wraps(method)
    def run(self, *args):
        if self.custom_rows and refuses_recording(self):  # no custom row: not in its rule
            raise CustomRuleError(RECORDING_IN_A_RULE)
        status = self._enter(True)
        if status:
            if status == 1:
                self.close()
                raise TapeBusyError(INTERLEAVED)
            raise TapeBusyError(BUSY)
        try:
            if self._pending:
                self._hand_over()
            return method(self, *args)
        finally:
            self._leave()
    return run


class RowBuffer(RowStore):
    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._SWEEPS = sweep_table(cls)

    def sweep(self, kind, *args):
        """Run the sweep `kind` (a pyad.store.Sweep) with its method's arguments."""
        return self._SWEEPS[kind](self, *args)

    def push1(self, op, a):
        return self._push(op, a, 0.0)

    def push_c(self, op, a, c):
        return self._push(op, a, float(c))

    def push2(self, op, a, b):
        return self._push(op, a, b)

    def _sync(self):
        """Hand the buffered rows over. While this thread does (inside _enter),
        no other thread buffers or records, so the rows keep the slots they were
        numbered with. If another thread is recording right now, its rows stay
        where they are (it hands them over itself) and a reader sees the tape
        without them."""
        if self._enter(False):
            return
        try:
            if self._pending:
                self._hand_over()
        finally:
            self._leave()
