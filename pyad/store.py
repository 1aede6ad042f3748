"""The interface both backends implement (pyad.backend_c.CStore and
pyad.backend_python.PyStore), and the Sweep enum that names their sweeps.

A store is one recorded tape: the layers above (tape, recording, replay, batch,
serialize, teaching, diagnostics, and the active values' operators) reach the
backend only through the members of Store. This module imports nothing from
pyad, so every layer may import it.
"""
import enum
from typing import Protocol, runtime_checkable

import numpy as np


class Sweep(enum.Enum):
    """A sweep of a store; its value is the store method that runs it.

    kind is what Tape.sweep_counts counts it as ("forward", "reverse",
    "forward_over_reverse"), None for the batched and the slot-by-slot sweeps."""

    FORWARD = "forward"
    JVP = "jvp"
    VJP = "vjp"
    HVP = "hvp"
    JVP_VEC = "jvp_vec"
    VJP_VEC = "vjp_vec"
    HVP_VEC = "hvp_vec"
    SLOT_VALUES = "slot_values"
    SLOT_ADJOINTS = "slot_adjoints"
    FORWARD_BATCH = "forward_batch"
    JVP_BATCH = "jvp_batch"
    VJP_BATCH = "vjp_batch"
    HVP_BATCH = "hvp_batch"

    @property
    def kind(self):
        return _KIND[self]

    @property
    def batched(self):
        return self in _BATCH_RESULTS

    @property
    def n_results(self):
        """How many result arrays a batched sweep returns before its `bad` flags."""
        return _BATCH_RESULTS[self]

    @property
    def input_sized(self):
        """Which results of a batched sweep have one column per input (the others
        one per output)."""
        return _BATCH_INPUT_SIZED[self]


# A reverse sweep recomputes values on its way, but it is counted once, as in Tape.sweeps;
# teaching's slot-by-slot sweeps count as the sweep they extend.
_KIND = {Sweep.FORWARD: "forward", Sweep.JVP: "forward", Sweep.JVP_VEC: "forward",
         Sweep.SLOT_VALUES: "forward", Sweep.VJP: "reverse", Sweep.VJP_VEC: "reverse",
         Sweep.SLOT_ADJOINTS: "reverse", Sweep.HVP: "forward_over_reverse",
         Sweep.HVP_VEC: "forward_over_reverse", Sweep.FORWARD_BATCH: None,
         Sweep.JVP_BATCH: None, Sweep.VJP_BATCH: None, Sweep.HVP_BATCH: None}
_BATCH_RESULTS = {Sweep.FORWARD_BATCH: 1, Sweep.JVP_BATCH: 2, Sweep.VJP_BATCH: 2,
                  Sweep.HVP_BATCH: 3}
_BATCH_INPUT_SIZED = {Sweep.FORWARD_BATCH: (), Sweep.JVP_BATCH: (), Sweep.VJP_BATCH: (1,),
                      Sweep.HVP_BATCH: (1, 2)}

SWEEP_KINDS = ("forward", "reverse", "forward_over_reverse")


def sweep_table(cls):
    """{Sweep: the function of cls that runs it}, built once per backend class (at
    its definition, by RowBuffer), so that a sweep is chosen by enum, not by name."""
    missing = [s.value for s in Sweep if not callable(getattr(cls, s.value, None))]
    if missing:
        raise TypeError(f"pyad store {cls.__name__} lacks the sweep method(s) {missing}")
    return {s: getattr(cls, s.value) for s in Sweep}


@runtime_checkable
class Store(Protocol):
    """One recorded tape in one backend: what Tape, recording, replay, batch,
    serialize, teaching, diagnostics and the active values call on it.

    Points x, tangents xd and cotangents u are contiguous float64 vectors (x=None:
    the recorded point, where a method allows it); a batched method takes one
    point per row and returns float64 rows plus int64 `bad` flags (-1, or the
    guard op that failed at that point).

    pyad.recording.seal sets `_sealed` on a store whose recording is over (reading
    .value then records no guard); the active values read it with a default."""

    backend: str
    """"c" or "python"."""

    # ---- lifecycle and sizes ----

    @property
    def closed(self) -> bool:
        """Whether close() has freed the tape."""

    def close(self) -> None:
        """Free the tape now; later use raises TapeClosedError."""

    @property
    def n_ops(self) -> int:
        """Rows recorded (every slot: inputs, constants, ops)."""

    @property
    def n_inputs(self) -> int:
        """Input slots."""

    @property
    def n_outputs(self) -> int:
        """Output slots."""

    @property
    def nbytes(self) -> int:
        """Bytes the tape holds."""

    def shrink(self) -> None:
        """Give back the capacity beyond what is recorded."""

    def set_max_ops(self, n: int) -> None:
        """Refuse to record beyond n rows (MemoryError)."""

    def set_max_bytes(self, n: int) -> None:
        """Refuse to grow beyond n bytes (MemoryError)."""

    # ---- recording (slot numbers in, slot numbers out) ----

    def input(self, value: float) -> int:
        """A new input slot holding value."""

    def input_n(self, values: np.ndarray) -> int:
        """len(values) new input slots; returns the first."""

    def const(self, value: float) -> int:
        """A constant slot."""

    def const_n(self, values: np.ndarray) -> np.ndarray:
        """Constant slots for values."""

    def push1(self, op: int, a: int) -> int:
        """A unary row, through the row buffer."""

    def push2(self, op: int, a: int, b: int) -> int:
        """A binary row, through the row buffer."""

    def push_c(self, op: int, a: int, c: float) -> int:
        """A row of slot a and the constant c, through the row buffer."""

    def rec1(self, op: int, a: int) -> int:
        """A unary row, recorded at once."""

    def rec2(self, op: int, a: int, b: int) -> int:
        """A binary row, recorded at once."""

    def rec_c(self, op: int, a: int, c: float) -> int:
        """A row of slot a and the constant c, recorded at once."""

    def rec1_n(self, op: int, a: np.ndarray) -> np.ndarray:
        """A unary row per slot of a."""

    def rec2_n(self, op: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """A binary row per pair of slots."""

    def rec_c_n(self, op: int, a: np.ndarray, c: np.ndarray) -> np.ndarray:
        """A row per slot of a with its constant in c."""

    def select(self, cond: int, a: int, b: int) -> int:
        """A row taking a where cond is true, else b."""

    def select_n(self, cond: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """select, elementwise."""

    def guard(self, cond: int, expected: bool) -> None:
        """A row that fails a replay where cond is not `expected` (a Python branch)."""

    def reduce(self, op: int, x: np.ndarray) -> int:
        """One n-ary row (sum, max_n, min_n, ...) over the slots x."""

    def rec_view(self, op: int, shape: tuple, operands: list,
                 c: "np.ndarray | None" = None) -> int:
        """prod(shape) results of op in one row (csrc/pyad.h pyad_rec_view_n), each
        operand a view (first slot, strides in slots over shape) or a flat index
        array; c the constants of a with-constant op. Its first result slot."""

    def reduce_view(self, op: int, first: int, m: int, k: int, sm: int, sk: int) -> int:
        """One reduce row over the m x k slots first + sm * i + sk * j; its first slot."""

    def matmul_c(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Slots of x @ w for active x and constant w."""

    def product(self, a: int, b: int, m: int, k: int, n: int, flags: int,
                w: "np.ndarray | None" = None) -> int:
        """One product row z (m x n) = A @ B (csrc/pyad.h pyad_rec_product); its first slot."""

    def custom(self, a: int, row, values: np.ndarray) -> int:
        """One custom row (pyad.custom_jvp / custom_vjp): row (a
        pyad._custom_rows.CustomRow) applied to the row.n_in consecutive slots from
        a, its row.n_out results, already computed, in values; its first slot. The
        row's rules are called by every sweep that reaches it."""

    custom_rows: list
    """The CustomRows recorded, by their rule number (the row's c operand)."""
    def lu(self, op: int, a: int, b: int, n: int, m: int) -> int:
        """One LU-family row (solve, inv, det, slogdet; csrc/pyad.h pyad_rec_lu) over
        the n x n slots from a (and the n x m from b); its first slot."""

    def linalg_sym(self, name: str, a: int, b: int, n: int, m: int, count: int,
                   flags: int) -> int:
        """One "cholesky" (b unused, m = n) or "solve_triangular" row over `count`
        stacked row-major matrices from slots a (n x n) and b (n x m); its first
        slot. numpy.linalg.LinAlgError, nothing recorded, where a matrix is not
        positive definite or a triangular one singular (csrc/pyad.h)."""

    def output_n(self, slots: np.ndarray) -> None:
        """Mark slots as outputs."""

    def set_active_inputs(self, active: np.ndarray) -> None:
        """active[j] == 0 makes input j a parameter: the rows recorded so far that
        only parameters and constants reach become passive (zero tangents, skipped
        in reverse; a product skips a passive factor's products). Results for the
        other inputs are unchanged; a parameter's own derivative is not computed."""

    @property
    def n_passive(self) -> int:
        """Rows marked passive by set_active_inputs."""

    # ---- reading the recording ----

    def value(self, slot: int) -> float:
        """The recorded value of a slot."""

    def values(self, slots: np.ndarray) -> np.ndarray:
        """The recorded values of slots."""

    def op_at(self, k: int) -> int:
        """The op code of row k."""

    def input_slots(self) -> np.ndarray:
        """The input slots, in order."""

    def output_slots(self) -> np.ndarray:
        """The output slots, in order."""

    def export(self) -> dict:
        """The tape as plain arrays (op, a, b, c, val, consts, pool, inputs, outputs)."""

    @classmethod
    def from_arrays(cls, a: dict) -> "Store":
        """A store holding a validated copy of exported arrays."""

    # ---- sweeps ----

    def sweep(self, kind: Sweep, *args):
        """Run the sweep `kind` with its method's arguments."""

    def gradient_flat(self, x: np.ndarray, n_inputs: int) -> np.ndarray:
        """The gradient of a one-output tape at x: the lowest-latency replay."""

    def recorded_gradient(self, n_inputs: int) -> "tuple[float, np.ndarray]":
        """(value, gradient) of a one-output tape at its recorded point."""

    def forward(self, x):
        """Output values at x."""

    def jvp(self, x, xd):
        """(outputs, J xd)."""

    def vjp(self, x, u):
        """(outputs, u^T J)."""

    def hvp(self, x, xd, u, keep_gradient=True):
        """(outputs, u^T J, the Hessian of u . f times xd). keep_gradient=False: the
        caller wants only the last: u^T J may then be a work array of the store,
        and the outputs may be None."""

    def jvp_vec(self, x, xd):
        """jvp for the rows of xd at once."""

    def vjp_vec(self, x, u):
        """vjp for the rows of u at once."""

    def hvp_vec(self, x, xd, u):
        """hvp for the rows of xd at once."""

    def forward_batch(self, x):
        """forward at each row of x; (outputs, bad)."""

    def jvp_batch(self, x, xd):
        """jvp at each row; (outputs, tangents, bad)."""

    def vjp_batch(self, x, u):
        """vjp at each row; (outputs, gradients, bad)."""

    def hvp_batch(self, x, xd, u):
        """hvp at each row; (outputs, gradients, Hessian products, bad)."""

    def slot_values(self, x, xd=None):
        """(values, tangents or None) of every slot at x."""

    def slot_adjoints(self, x, u):
        """(values, adjoints) of every slot at x for output weights u."""
