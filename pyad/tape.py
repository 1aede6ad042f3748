"""pyad.Tape: record once, replay many times, in either backend."""
import os

import numpy as np

from . import ops
from .array import Array, is_active, slots_of, to_slots, wrap
from .errors import BranchError, PyadError
from .scalar import Scalar

BACKENDS = ("c", "python")


def resolve_backend(backend):
    name = backend if backend is not None else os.environ.get("PYAD_BACKEND", "c")
    if name not in BACKENDS:
        raise ValueError(f"unknown pyad backend {name!r}: expected one of {BACKENDS}")
    return name


def new_store(backend):
    if resolve_backend(backend) == "c":
        from .backend_c import CStore
        return CStore()
    from .backend_python import PyStore
    return PyStore()


def as_input(x, what="input"):
    """A float64 ndarray for a value that becomes (or feeds) tape inputs."""
    if is_active(x):
        raise TypeError(f"{what} is already an active pyad value: nested differentiation is "
                        "not supported (use pyad.hessian / pyad.hvp for second derivatives)")
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{what} must be a real number or an array of them, not {type(x).__name__}")
    try:
        a = np.asarray(x)
    except Exception as e:
        raise TypeError(f"{what} must be a real number or an array of them: {e}") from None
    if a.dtype == np.bool_ or not (np.issubdtype(a.dtype, np.integer)
                                   or np.issubdtype(a.dtype, np.floating)):
        kind = "complex" if np.iscomplexobj(a) else str(a.dtype)
        raise TypeError(f"{what} must be real numbers (float or int), got dtype {kind}")
    return a.astype(np.float64)


class Tape:
    """A recorded computation: a Wengert list of primitive operations.

    Use it as a context manager with `input` and `output`, or get one from
    `pyad.trace(f, *args)`. Replay with `tape(x)`, `tape.gradient(x)`,
    `tape.jvp(x, v)`, `tape.vjp(x, u)`, `tape.hvp(x, v)`.
    """

    def __init__(self, backend=None):
        self.backend = resolve_backend(backend)
        self._store = new_store(self.backend)
        self._in_shapes = []
        self._out_shapes = []
        self._fn = None          # the traced function, for re-recording (pyad.trace)
        self._fn_args = None
        self.retraces = 0

    # ---- recording ----

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self._store.closed:
            self._store.shrink()
        return False

    def input(self, x):
        """Mark x as an input: returns an active Scalar (for a number) or Array."""
        a = as_input(x, "tape.input")
        store = self._store
        if a.ndim == 0:
            slot = store.input(float(a))
            self._in_shapes.append(())
            return Scalar(store, slot)
        flat = np.ascontiguousarray(a.ravel())
        first = store.input_n(flat) if flat.size else store.n_ops
        self._in_shapes.append(a.shape)
        return wrap(store, np.arange(first, first + flat.size, dtype=np.int32).reshape(a.shape))

    def output(self, y):
        """Mark y (active, constant, or a list of them) as an output; returns y."""
        if y is None or isinstance(y, (str, bytes, dict)):
            raise TypeError(f"tape.output takes numbers or arrays, not {type(y).__name__}")
        slots = to_slots(self._store, y)
        self._store.output_n(np.ascontiguousarray(slots.ravel(), dtype=np.int32))
        self._out_shapes.append(slots.shape)
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
        return self._store.n_ops

    @property
    def nbytes(self):
        return self._store.nbytes

    @property
    def closed(self):
        return self._store.closed

    def close(self):
        """Free the tape's storage now; using the tape afterwards raises TapeClosedError."""
        self._store.close()

    def __repr__(self):
        if self.closed:
            return f"<pyad.Tape backend={self.backend!r} closed>"
        return (f"<pyad.Tape backend={self.backend!r} n_inputs={self.n_inputs} "
                f"n_outputs={self.n_outputs} n_ops={self.n_ops} nbytes={self.nbytes}>")

    # ---- packing points and results ----

    def _pack(self, xs, what, shapes=None, size=None):
        """A flat float64 vector from values matching the declared shapes."""
        shapes = self._in_shapes if shapes is None else shapes
        size = self.n_inputs if size is None else size
        if len(xs) == len(shapes):
            parts = []
            for i, (x, shape) in enumerate(zip(xs, shapes)):
                a = as_input(x, what)
                if a.shape != shape:
                    raise ValueError(f"{what}: argument {i} has shape {a.shape}, the tape "
                                     f"expects {shape}")
                parts.append(a.ravel())
            return np.concatenate(parts) if parts else np.zeros(0)
        if len(xs) == 1:
            a = as_input(xs[0], what)
            if a.size == size:
                return np.ascontiguousarray(a.ravel())
        raise ValueError(f"{what}: the tape has {len(shapes)} argument(s) of shapes "
                         f"{[tuple(s) for s in shapes]} ({size} numbers in all); got "
                         f"{len(xs)} argument(s)")

    @staticmethod
    def _unpack(flat, shapes):
        parts, start = [], 0
        for shape in shapes:
            n = int(np.prod(shape, dtype=np.int64))
            part = flat[start:start + n]
            parts.append(float(part[0]) if shape == () else part.reshape(shape).copy())
            start += n
        return parts[0] if len(parts) == 1 else tuple(parts)

    def _outputs(self, flat):
        return self._unpack(flat, self._out_shapes)

    def _inputs(self, flat):
        return self._unpack(flat, self._in_shapes)

    def _point(self, x):
        """The flat input vector for x (a tuple of arguments), or None for the recorded point."""
        if x is None:
            return None
        return self._pack(x if isinstance(x, tuple) else (x,), "tape replay")

    # ---- sweeps, with guards checked ----

    def _sweep(self, method, x, *args):
        try:
            return getattr(self._store, method)(x, *args)
        except BranchError as e:
            if x is None:
                raise
            if self._fn is not None:
                self._retrace(x)
                return getattr(self._store, method)(x, *args)
            k = e.args[0] if e.args and isinstance(e.args[0], int) else -1
            raise BranchError(self._branch_message(k, x)) from None

    def _branch_message(self, k, x):
        try:
            name = ops.NAME[self._store.op_at(k)]
        except Exception:
            name = "guard"
        expected = "true" if name == "guard_true" else "false"
        return (f"replay at x = {np.array2string(np.asarray(x), threshold=8)} takes another "
                f"branch: op {k} ({name}) recorded a Python `if` whose condition was "
                f"{expected}; record the tape at this point (pyad.trace re-records "
                "automatically) or use pyad.where for a branch that replays both ways")

    def _retrace(self, flat):
        from .transforms import record
        args = self._unpack(flat, self._in_shapes)
        args = args if len(self._in_shapes) > 1 else (args,)
        fresh = record(self._fn, args, range(len(args)), self.backend)
        self._store.close()
        self._store, self._out_shapes = fresh._store, fresh._out_shapes
        self.retraces += 1

    def __call__(self, *x):
        """Output values at a new point."""
        flat = self._point(x) if x else None
        if flat is None:
            return self._outputs(self._store.values(self._store.output_slots()))
        return self._outputs(self._sweep("forward", flat))

    def _need_scalar_output(self, what):
        if self.n_outputs != 1:
            raise ValueError(f"{what} needs one scalar output; this tape has {self.n_outputs} "
                             "outputs: use tape.vjp or tape.jacobian")

    def gradient(self, *x):
        """Gradient of the scalar output, at x (default: the recorded point)."""
        self._need_scalar_output("gradient")
        _, xbar = self._sweep("vjp", self._point(x) if x else None, np.ones(1))
        return self._inputs(xbar)

    def value_and_gradient(self, *x):
        self._need_scalar_output("value_and_gradient")
        y, xbar = self._sweep("vjp", self._point(x) if x else None, np.ones(1))
        return float(y[0]), self._inputs(xbar)

    def jvp(self, x, v):
        """(outputs, J v) at x; for several inputs, x and v are tuples."""
        flat = self._point(x)
        if flat is None:
            flat = self._store.values(self._store.input_slots())
        vflat = self._pack(v if isinstance(v, tuple) else (v,), "jvp tangent")
        y, yd = self._sweep("jvp", flat, vflat)
        return self._outputs(y), self._outputs(yd)

    def vjp(self, x, u):
        """(outputs, u^T J) at x; u has the outputs' shapes."""
        uflat = self._pack(u if isinstance(u, tuple) else (u,), "vjp cotangent",
                           self._out_shapes, self.n_outputs)
        y, xbar = self._sweep("vjp", self._point(x), uflat)
        return self._outputs(y), self._inputs(xbar)

    def hvp(self, x, v):
        """Hessian of the scalar output times v, at x (forward-over-reverse)."""
        self._need_scalar_output("hvp")
        flat = self._point(x)
        if flat is None:
            flat = self._store.values(self._store.input_slots())
        vflat = self._pack(v if isinstance(v, tuple) else (v,), "hvp direction")
        _, _, hv = self._sweep("hvp", flat, vflat, np.ones(1))
        return self._inputs(hv)
