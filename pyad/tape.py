"""pyad.Tape: record once, replay many times, in either backend.

The Tape holds a recording (its store, the shapes of its inputs and outputs and,
for pyad.trace, the traced function) and runs every unbatched sweep through
_sweep, where guards are checked, re-recording happens and sweeps are counted.
The work lives below it: pyad.recording (marking inputs and outputs),
pyad.replay (packing points, re-recording, Jacobian/Hessian assembly) and
pyad.batch (batched replay)."""
import numpy as np

from . import batch, diagnostics, replay, serialize, teaching
from .backends import new_store, resolve_backend
from .errors import BranchError
from .recording import mark_input, mark_output, seal
from .store import SWEEP_KINDS, Sweep

_F64 = np.dtype(np.float64)


# An enum member and its properties cost ~100 ns a lookup: the gradient fast path
# (2-3 µs in all) reads this instead.
_VJP_NAME = Sweep.VJP.value

class Tape:
    """A recorded computation: a Wengert list of primitive operations.

    Use it as a context manager with `input` and `output`, or get one from
    `pyad.trace(f, *args)`. Replay with `tape(x)`, `tape.gradient(x)`,
    `tape.jvp(x, v)`, `tape.vjp(x, u)`, `tape.hvp(x, v)`.

    `tape.sweeps` counts the (unbatched) sweeps run so far and `tape.sweep_counts`
    splits them into "forward", "reverse" and "forward_over_reverse".
    """

    def __init__(self, backend=None):
        self.backend = resolve_backend(backend)
        self._hold(new_store(self.backend), [], [], None)

    def _hold(self, store, in_shapes, out_shapes, fn):
        self._store = store
        self._in_shapes = list(in_shapes)
        self._out_shapes = list(out_shapes)
        self._fn = fn            # the traced function, for re-recording (pyad.trace)
        self.retraces = 0
        self.sweeps = 0          # sweeps run on this tape (optimizer glue shares them)
        # tape.sweeps by kind, so one can see which way jacobian(mode="auto") went;
        # batched sweeps are counted in neither.
        self._counted = dict.fromkeys(SWEEP_KINDS, 0)  # all but the fast-path gradients
        self._facts = None       # cached sizes for the fast replay path (see _fast)

    @classmethod
    def from_store(cls, store, in_shapes, out_shapes, backend=None, fn=None):
        """A Tape of a finished recording: a store (pyad.store.Store) with its
        inputs' and outputs' shapes, e.g. from pyad.serialize.load_store or
        pyad.recording.record. fn: the recorded function, to re-record where
        replay takes another branch (None: BranchError there)."""
        tape = cls.__new__(cls)
        tape.backend = resolve_backend(backend if backend is not None else store.backend)
        if store.backend != tape.backend:
            raise ValueError(f"a {store.backend!r} store cannot make a {tape.backend!r} tape")
        tape._hold(store, in_shapes, out_shapes, fn)
        return tape

    @property
    def sweep_counts(self):
        """tape.sweeps by kind: {"forward": n, "reverse": n, "forward_over_reverse": n}.
        The gradient fast path only counts tape.sweeps (a dict update would cost it
        ~70 ns of ~2.5 µs): the sweeps not counted by kind are its reverse sweeps."""
        counts = dict(self._counted)
        counts["reverse"] += self.sweeps - sum(counts.values())
        return counts

    # ---- recording ----

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        seal(self._store)
        return False

    def input(self, x):
        """Mark x as an input: returns an active Scalar (for a number) or Array."""
        self._facts = None
        return mark_input(self._store, self._in_shapes, x)

    def output(self, y):
        """Mark y (active, constant, or a list of them) as an output; returns y."""
        self._facts = None
        mark_output(self._store, self._out_shapes, y)
        return y

    # ---- facts ----

    @property
    def n_inputs(self):
        return self._store.n_inputs

    @property
    def n_outputs(self):
        return self._store.n_outputs

    @property
    def n_ops(self):
        """Rows of the tape: a numpy operation recorded as one block row counts once."""
        return self._store.n_ops

    @property
    def n_slots(self):
        """Values the tape defines (a block row defines one per element)."""
        return self._store.n_slots

    @property
    def nbytes(self):
        return self._store.nbytes

    @property
    def closed(self):
        return self._store.closed

    def close(self):
        """Free the tape's storage now; using the tape afterwards raises TapeClosedError."""
        self._store.close()

    # ---- views for people (pyad.teaching) ----

    def table(self, x=None, mode="forward", seed=None):
        """The Wengert table at x: one row per op with its value and its tangent
        (mode="forward", along seed) or adjoint (mode="reverse")."""
        return teaching.table(self, x, mode, seed)

    def to_dot(self, values=False):
        """Graphviz DOT text of the computational graph."""
        return teaching.to_dot(self, values)

    def stats(self):
        """Op counts by primitive, slots, bytes and guards."""
        return teaching.stats(self)

    def save(self, path):
        """Write the tape to a file (pyad.load reads it back; see pyad.serialize)."""
        serialize.save(self, path)

    def __reduce__(self):
        # A pickle holds the tape's validated binary form, not Python objects;
        # the traced function is not kept, so a loaded tape raises BranchError
        # where the original would re-record.
        return (serialize.loads, (serialize.dumps(self), self.backend))

    def __repr__(self):
        if self.closed:
            return f"<pyad.Tape backend={self.backend!r} closed>"
        return (f"<pyad.Tape backend={self.backend!r} n_inputs={self.n_inputs} "
                f"n_outputs={self.n_outputs} n_ops={self.n_ops} nbytes={self.nbytes}>")

    # ---- packing points and results (pyad.replay) ----

    def _pack(self, xs, what, shapes=None, size=None):
        """A flat float64 vector from values matching the declared shapes."""
        return replay.pack(xs, what, self._in_shapes if shapes is None else shapes,
                           self.n_inputs if size is None else size)

    def _outputs(self, flat):
        return replay.unpack(flat, self._out_shapes)

    def _inputs(self, flat):
        return replay.unpack_inputs(flat, self._fast())

    def _point(self, x):
        """The flat input vector for x (a tuple of arguments), or None for the recorded point."""
        if x is None:
            return None
        return self._pack(x if isinstance(x, tuple) else (x,), "tape replay")

    def _recorded_point(self):
        return self._store.values(self._store.input_slots())

    def _dirs(self, v, what, shapes, size):
        return self._pack(v if isinstance(v, tuple) else (v,), what, shapes, size)

    def _pack_batch(self, xs, what, shapes=None, size=None):
        """(nb, size) float64 rows from per-argument arrays with a leading batch axis."""
        return replay.pack_batch(xs, what, self._in_shapes if shapes is None else shapes,
                                 self.n_inputs if size is None else size)

    def _fast(self):
        """replay.input_facts, cached until the tape records more: the replay fast
        path reads no C sizes."""
        if self._facts is None:
            self._facts = replay.input_facts(self.n_inputs, self.n_outputs, self._in_shapes)
        return self._facts

    # ---- sweeps, with guards checked ----

    def _sweep(self, method, x, *args):
        """Run the sweep `method` (a pyad.store.Sweep, or its name) at the flat point
        x, counted; where a guard fails, re-record (pyad.trace) or raise BranchError."""
        if method.__class__ is not Sweep:
            method = Sweep(method)  # a name, from callers that still spell it
        self.sweeps += 1
        self._counted[method.kind] += 1
        try:
            result = self._store.sweep(method, x, *args)
            if diagnostics.DEBUG_NANS.enabled:
                diagnostics.check_finite(self, method.value, x, result)
            return result
        except BranchError as e:
            if x is None:
                raise
            if self._fn is not None:
                # Sweep the store recorded here: another thread may re-record too.
                return self._retrace(x).sweep(method, x, *args)
            k = e.args[0] if e.args and isinstance(e.args[0], int) else -1
            raise BranchError(self._branch_message(k, x)) from None

    def _branch_message(self, k, x):
        return replay.branch_message(self._store, k, x)

    def _retrace(self, flat):
        """Re-record the traced function at flat and keep that recording."""
        store, out_shapes = replay.rerecord(
            self._fn, flat, self._in_shapes, self._out_shapes, self.backend,
            f"at x = {np.array2string(np.asarray(flat), threshold=8)}")
        # The old store is dropped, not closed: a sweep in another thread may hold it.
        self._store, self._out_shapes = store, out_shapes
        self._facts = None
        self.retraces += 1
        return store

    def _batched(self, method, x, extra, threads, executor, grads=(), packed=False,
                 progress=False):
        """A batched sweep (pyad.batch.replay); results shaped per point unless packed."""
        return batch.replay(self, method, x, extra, threads, executor, grads, packed, progress)

    def _direction_blocks(self, count):
        """Blocks of directions per vector sweep, keeping work arrays near 32 MB."""
        step = max(1, min(count, 2**22 // max(self.n_ops, 1)))
        return [(lo, min(count, lo + step)) for lo in range(0, count, step)] or [(0, 0)]

    # ---- replay ----

    def __call__(self, *x, batch=False, threads=None, executor=None, progress=False):
        """Output values at a new point (default: the recorded values).

        With batch=True, x[k] (each argument's rows) is the k-th point and the
        results gain a leading axis; threads= / executor= spread the batch."""
        if batch:
            return self._batched(Sweep.FORWARD_BATCH, x, (), threads, executor,
                                 progress=progress)[0]
        flat = self._point(x) if x else None
        if flat is None:
            return self._outputs(self._store.values(self._store.output_slots()))
        return self._outputs(self._sweep(Sweep.FORWARD, flat))

    def _need_scalar_output(self, what):
        if self.n_outputs != 1:
            raise ValueError(f"{what} needs one scalar output; this tape has {self.n_outputs} "
                             "outputs: use tape.vjp or tape.jacobian")

    def gradient(self, *x, batch=False, threads=None, executor=None, progress=False):
        """Gradient of the scalar output, at x (default: the recorded point)."""
        if len(x) == 1 and not batch and type(x[0]) is np.ndarray:
            # The fast path: one float64 array (of the input's shape, or flat).
            a, facts = x[0], self._fast()
            if (a.dtype == _F64 and facts[1] == 1 and a.flags.c_contiguous
                    and (a.shape == facts[2] or (facts[2] is None and a.shape == (facts[0],)))):
                self.sweeps += 1
                try:
                    flat = self._store.gradient_flat(a, facts[0])
                except BranchError:
                    self.sweeps -= 1  # the general path below re-records or explains
                else:
                    if diagnostics.DEBUG_NANS.enabled:
                        diagnostics.check_finite(self, _VJP_NAME, a.ravel(), (flat,))
                    return replay.unpack_inputs(flat, facts)
        self._need_scalar_output("gradient")
        if batch:
            ones = np.ones((self._pack_batch(x, "batch points").shape[0], 1))
            return self._batched(Sweep.VJP_BATCH, x, (ones,), threads, executor, grads=(1,),
                                 progress=progress)[1]
        _, xbar = self._sweep(Sweep.VJP, self._point(x) if x else None, np.ones(1))
        return self._inputs(xbar)

    def value_and_gradient(self, *x):
        self._need_scalar_output("value_and_gradient")
        y, xbar = self._sweep(Sweep.VJP, self._point(x) if x else None, np.ones(1))
        return float(y[0]), self._inputs(xbar)

    def jvp(self, x, v, batch=False, threads=None, executor=None, progress=False):
        """(outputs, J v) at x; for several inputs, x and v are tuples."""
        if batch:
            V = self._pack_batch(v, "jvp tangents")
            y, yd = self._batched(Sweep.JVP_BATCH, x, (V,), threads, executor,
                                  progress=progress)
            return (y, yd)
        flat = self._point(x)
        flat = self._recorded_point() if flat is None else flat
        y, yd = self._sweep(Sweep.JVP, flat, self._dirs(v, "jvp tangent", None, None))
        return self._outputs(y), self._outputs(yd)

    def vjp(self, x, u, batch=False, threads=None, executor=None, progress=False):
        """(outputs, u^T J) at x; u has the outputs' shapes."""
        if batch:
            U = self._pack_batch(u, "vjp cotangents", self._out_shapes, self.n_outputs)
            return tuple(self._batched(Sweep.VJP_BATCH, x, (U,), threads, executor,
                                       grads=(1,), progress=progress))
        uflat = self._dirs(u, "vjp cotangent", self._out_shapes, self.n_outputs)
        y, xbar = self._sweep(Sweep.VJP, self._point(x), uflat)
        return self._outputs(y), self._inputs(xbar)

    def hvp(self, x, v, batch=False, threads=None, executor=None, progress=False):
        """Hessian of the scalar output times v, at x (forward-over-reverse)."""
        self._need_scalar_output("hvp")
        if batch:
            V = self._pack_batch(v, "hvp directions")
            ones = np.ones((V.shape[0], 1))
            return self._batched(Sweep.HVP_BATCH, x, (V, ones), threads, executor,
                                 grads=(2,), progress=progress)[2]
        flat = self._point(x)
        flat = self._recorded_point() if flat is None else flat
        _, _, hv = self._sweep(Sweep.HVP, flat, self._dirs(v, "hvp direction", None, None),
                               np.ones(1))
        return self._inputs(hv)

    # ---- whole derivative objects (pyad.replay assembles them) ----

    def jacobian(self, x=None, mode="auto", batch=False, threads=None, executor=None,
                 progress=False):
        """The Jacobian, shape outputs.shape + inputs.shape (a 2-D matrix when the tape
        has several input or output arguments).

        mode="forward" sweeps n tangent directions, "reverse" m adjoints; "auto"
        takes forward when n_inputs <= n_outputs (a forward sweep is the cheaper
        pass), else reverse. With batch=True, x[k] is the k-th point; threads= /
        executor= / progress= as for the other batched methods."""
        if mode not in ("auto", "forward", "reverse"):
            raise ValueError(f"mode must be 'auto', 'forward' or 'reverse', not {mode!r}")
        forward = mode == "forward" or (mode == "auto" and self.n_inputs <= self.n_outputs)
        J = replay.jacobian(self, x, forward, batch, threads, executor, progress)
        return replay.jacobian_shape(J, self._in_shapes, self._out_shapes)

    def hessian(self, x=None, batch=False, threads=None, executor=None, progress=False):
        """The Hessian of the scalar output (shape inputs.shape * 2, a float for a
        scalar input), from n forward-over-reverse directions swept together;
        exactly symmetric."""
        self._need_scalar_output("hessian")
        if self.n_inputs == 0 and not batch:
            return np.zeros((0, 0))
        H = replay.hessian(self, x, batch, threads, executor, progress)
        if len(self._in_shapes) == 1:
            shape = tuple(self._in_shapes[0])
            H = H.reshape(H.shape[:-2] + shape + shape)
            if H.ndim == 0:
                return float(H)
        return H


serialize.register_tape_class(Tape)
