"""pyad.Tape: record once, replay many times, in either backend."""
import os
import warnings

import numpy as np

from . import diagnostics, ops
from .array import Array, is_active, slots_of, to_slots, wrap
from .errors import BranchError, PyadError, RetraceWarning
from .scalar import Scalar

BACKENDS = ("c", "python")
_F64 = np.dtype(np.float64)


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
    return a.astype(np.float64, copy=False)


# The kind of sweep each store method runs (Tape.sweep_counts); a reverse sweep
# recomputes values on its way, but it is counted once, as in Tape.sweeps.
_SWEEP_KINDS = {"forward": "forward", "jvp": "forward", "jvp_vec": "forward",
                "slot_values": "forward", "vjp": "reverse", "vjp_vec": "reverse",
                "slot_adjoints": "reverse", "hvp": "forward_over_reverse",
                "hvp_vec": "forward_over_reverse"}


def _identity_rows(lo, hi, n):
    """Rows lo..hi-1 of the n x n identity, without building the whole identity."""
    rows = np.zeros((hi - lo, n))
    rows[np.arange(hi - lo), np.arange(lo, hi)] = 1.0
    return rows


def _unit_columns(nb, n, i):
    """nb copies of the i-th unit vector of length n."""
    rows = np.zeros((nb, n))
    rows[:, i] = 1.0
    return rows


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
        self._store = new_store(self.backend)
        self._in_shapes = []
        self._out_shapes = []
        self._fn = None          # the traced function, for re-recording (pyad.trace)
        self.retraces = 0
        self.sweeps = 0          # sweeps run on this tape (optimizer glue shares them)
        # tape.sweeps by kind, so one can see which way jacobian(mode="auto") went;
        # batched sweeps are counted in neither.
        self.sweep_counts = {"forward": 0, "reverse": 0, "forward_over_reverse": 0}
        self._facts = None       # cached sizes for the fast replay path (see _fast)

    # ---- recording ----

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._store._sealed = True  # recording is over: reading .value records no guard
        if not self._store.closed:
            self._store.shrink()
        return False

    def input(self, x):
        """Mark x as an input: returns an active Scalar (for a number) or Array."""
        self._facts = None
        store = self._store
        if type(x) is float or type(x) is int:
            slot = store.input(float(x))
            self._in_shapes.append(())
            return Scalar(store, slot)
        a = as_input(x, "tape.input")
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
        self._facts = None
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
        from .teaching import table
        return table(self, x, mode, seed)

    def to_dot(self, values=False):
        """Graphviz DOT text of the computational graph."""
        from .teaching import to_dot
        return to_dot(self, values)

    def stats(self):
        """Op counts by primitive, slots, bytes and guards."""
        from .teaching import stats
        return stats(self)

    def save(self, path):
        """Write the tape to a file (pyad.load reads it back; see pyad.serialize)."""
        from .serialize import save
        save(self, path)

    def __reduce__(self):
        # A pickle holds the tape's validated binary form, not Python objects;
        # the traced function is not kept, so a loaded tape raises BranchError
        # where the original would re-record.
        from .serialize import dumps, loads
        return (loads, (dumps(self), self.backend))

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
        return self._unpack_inputs(flat, self._fast())

    def _point(self, x):
        """The flat input vector for x (a tuple of arguments), or None for the recorded point."""
        if x is None:
            return None
        return self._pack(x if isinstance(x, tuple) else (x,), "tape replay")

    # ---- sweeps, with guards checked ----

    def _sweep(self, method, x, *args):
        self.sweeps += 1
        self.sweep_counts[_SWEEP_KINDS[method]] += 1
        try:
            result = getattr(self._store, method)(x, *args)
            if diagnostics.DEBUG_NANS.enabled:
                diagnostics.check_finite(self, method, x, result)
            return result
        except BranchError as e:
            if x is None:
                raise
            if self._fn is not None:
                # Sweep the store recorded here: another thread may re-record too.
                return getattr(self._retrace(x), method)(x, *args)
            k = e.args[0] if e.args and isinstance(e.args[0], int) else -1
            raise BranchError(self._branch_message(k, x)) from None

    def _branch_message(self, k, x):
        try:
            name = ops.NAME[self._store.op_at(k)]
        except Exception:
            name = "guard"
        expected = "true" if name == "guard_true" else "false"
        return (f"replay at x = {np.array2string(np.asarray(x), threshold=8)} takes another "
                f"branch: op {k} ({name}) recorded a Python `if` (or a read of .value) "
                f"whose condition was {expected}; record the tape at this point (pyad.trace "
                "re-records automatically) or use pyad.where for a branch that replays both ways")

    def _retrace(self, flat):
        from .transforms import record
        args = self._unpack(flat, self._in_shapes)
        args = args if len(self._in_shapes) > 1 else (args,)
        fresh = record(self._fn, args, range(len(args)), self.backend)
        self._check_same_outputs(fresh, f"at x = {np.array2string(np.asarray(flat), threshold=8)}")
        # The old store is dropped, not closed: a sweep in another thread may hold it.
        self._store, self._out_shapes = fresh._store, fresh._out_shapes
        self._facts = None
        self.retraces += 1
        return fresh._store

    # ---- replay ----

    def __call__(self, *x, batch=False, threads=None, executor=None, progress=False):
        """Output values at a new point (default: the recorded values).

        With batch=True, x[k] (each argument's rows) is the k-th point and the
        results gain a leading axis; threads= / executor= spread the batch."""
        if batch:
            return self._batched("forward_batch", x, (), threads, executor,
                                 progress=progress)[0]
        flat = self._point(x) if x else None
        if flat is None:
            return self._outputs(self._store.values(self._store.output_slots()))
        return self._outputs(self._sweep("forward", flat))

    def _need_scalar_output(self, what):
        if self.n_outputs != 1:
            raise ValueError(f"{what} needs one scalar output; this tape has {self.n_outputs} "
                             "outputs: use tape.vjp or tape.jacobian")

    def _fast(self):
        """(n_inputs, n_outputs, the one input shape or None, unpack offsets), cached
        until the tape records more: the replay fast path reads no C sizes."""
        facts = self._facts
        if facts is None:
            sizes = [int(np.prod(s, dtype=np.int64)) for s in self._in_shapes]
            offsets = np.cumsum([0] + sizes).tolist()
            single = tuple(self._in_shapes[0]) if len(self._in_shapes) == 1 else None
            all_scalars = all(tuple(s) == () for s in self._in_shapes)
            facts = self._facts = (self.n_inputs, self.n_outputs, single,
                                   list(zip(offsets[:-1], offsets[1:], self._in_shapes)),
                                   all_scalars)
        return facts

    def _unpack_inputs(self, flat, facts):
        single = facts[2]
        if single is not None:
            return float(flat[0]) if single == () else flat.reshape(single)
        if facts[4]:
            return tuple(flat.tolist())
        return tuple(float(flat[lo]) if shape == () else flat[lo:hi].reshape(shape)
                     for lo, hi, shape in facts[3])

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
                    self.sweep_counts["reverse"] += 1
                    if diagnostics.DEBUG_NANS.enabled:
                        diagnostics.check_finite(self, "vjp", a.ravel(), (flat,))
                    return self._unpack_inputs(flat, facts)
        self._need_scalar_output("gradient")
        if batch:
            ones = np.ones((self._batch_size(x), 1))
            return self._batched("vjp_batch", x, (ones,), threads, executor, grads=(1,),
                                 progress=progress)[1]
        _, xbar = self._sweep("vjp", self._point(x) if x else None, np.ones(1))
        return self._inputs(xbar)

    def value_and_gradient(self, *x):
        self._need_scalar_output("value_and_gradient")
        y, xbar = self._sweep("vjp", self._point(x) if x else None, np.ones(1))
        return float(y[0]), self._inputs(xbar)

    def _recorded_point(self):
        return self._store.values(self._store.input_slots())

    def _dirs(self, v, what, shapes, size):
        return self._pack(v if isinstance(v, tuple) else (v,), what, shapes, size)

    def jvp(self, x, v, batch=False, threads=None, executor=None, progress=False):
        """(outputs, J v) at x; for several inputs, x and v are tuples."""
        if batch:
            V = self._pack_batch(v, "jvp tangents")
            y, yd = self._batched("jvp_batch", x, (V,), threads, executor, progress=progress)
            return (y, yd)
        flat = self._point(x)
        flat = self._recorded_point() if flat is None else flat
        y, yd = self._sweep("jvp", flat, self._dirs(v, "jvp tangent", None, None))
        return self._outputs(y), self._outputs(yd)

    def vjp(self, x, u, batch=False, threads=None, executor=None, progress=False):
        """(outputs, u^T J) at x; u has the outputs' shapes."""
        if batch:
            U = self._pack_batch(u, "vjp cotangents", self._out_shapes, self.n_outputs)
            return tuple(self._batched("vjp_batch", x, (U,), threads, executor, grads=(1,),
                                       progress=progress))
        uflat = self._dirs(u, "vjp cotangent", self._out_shapes, self.n_outputs)
        y, xbar = self._sweep("vjp", self._point(x), uflat)
        return self._outputs(y), self._inputs(xbar)

    def hvp(self, x, v, batch=False, threads=None, executor=None, progress=False):
        """Hessian of the scalar output times v, at x (forward-over-reverse)."""
        self._need_scalar_output("hvp")
        if batch:
            V = self._pack_batch(v, "hvp directions")
            ones = np.ones((V.shape[0], 1))
            return self._batched("hvp_batch", x, (V, ones), threads, executor, grads=(2,),
                                 progress=progress)[2]
        flat = self._point(x)
        flat = self._recorded_point() if flat is None else flat
        _, _, hv = self._sweep("hvp", flat, self._dirs(v, "hvp direction", None, None),
                               np.ones(1))
        return self._inputs(hv)

    # ---- whole derivative objects ----

    def _jacobian_shape(self, rows):
        """Shape a (m, n) matrix (or batch of them) as outputs.shape + inputs.shape;
        a float for a scalar function of a scalar."""
        if len(self._in_shapes) == 1 and len(self._out_shapes) == 1:
            rows = rows.reshape(rows.shape[:-2] + tuple(self._out_shapes[0]) +
                                tuple(self._in_shapes[0]))
            return float(rows) if rows.ndim == 0 else rows
        return rows

    def jacobian(self, x=None, mode="auto", batch=False, threads=None, executor=None,
                 progress=False):
        """The Jacobian, shape outputs.shape + inputs.shape (a 2-D matrix when the tape
        has several input or output arguments).

        mode="forward" sweeps n tangent directions, "reverse" m adjoints; "auto"
        takes forward when n_inputs <= n_outputs (a forward sweep is the cheaper
        pass), else reverse. With batch=True, x[k] is the k-th point; threads= /
        executor= / progress= as for the other batched methods."""
        n, m = self.n_inputs, self.n_outputs
        if mode not in ("auto", "forward", "reverse"):
            raise ValueError(f"mode must be 'auto', 'forward' or 'reverse', not {mode!r}")
        forward = mode == "forward" or (mode == "auto" and n <= m)
        if (n == 0 or m == 0) and not batch:
            return self._jacobian_shape(np.zeros((m, n)))
        if batch:
            return self._jacobian_shape(self._batch_jacobian(x, forward, threads, executor,
                                                             progress))
        flat = self._point(x) if x is not None else None
        J = np.empty((m, n))
        if forward:
            flat = self._recorded_point() if flat is None else flat
            for lo, hi in self._direction_blocks(n):
                _, yd = self._sweep("jvp_vec", flat, _identity_rows(lo, hi, n))
                J[:, lo:hi] = yd.T
        else:
            for lo, hi in self._direction_blocks(m):
                _, xbar = self._sweep("vjp_vec", flat, _identity_rows(lo, hi, m))
                J[lo:hi] = xbar
        return self._jacobian_shape(J)

    def hessian(self, x=None, batch=False, threads=None, executor=None, progress=False):
        """The Hessian of the scalar output (shape inputs.shape * 2, a float for a
        scalar input), from n forward-over-reverse directions swept together;
        exactly symmetric."""
        self._need_scalar_output("hessian")
        n = self.n_inputs
        if n == 0 and not batch:
            return np.zeros((0, 0))
        if batch:
            X = self._pack_batch(x, "hessian points", self._in_shapes, n)
            nb = X.shape[0]
            H = np.empty((nb, n, n))
            ones = np.ones((nb, 1))
            for i in range(n):
                H[:, :, i] = self._batched("hvp_batch", X, (_unit_columns(nb, n, i), ones),
                                           threads, executor, grads=(2,), packed=True,
                                           progress=progress)[2]
        else:
            flat = self._point(x) if x is not None else None
            flat = self._recorded_point() if flat is None else flat
            H = np.empty((n, n))
            for lo, hi in self._direction_blocks(n):
                _, _, hv = self._sweep("hvp_vec", flat, _identity_rows(lo, hi, n), np.ones(1))
                H[lo:hi] = hv
        H = 0.5 * (H + np.swapaxes(H, -1, -2))
        if len(self._in_shapes) == 1:
            shape = tuple(self._in_shapes[0])
            H = H.reshape(H.shape[:-2] + shape + shape)
            if H.ndim == 0:
                return float(H)
        return H

    def _direction_blocks(self, count):
        """Blocks of directions per vector sweep, keeping work arrays near 32 MB."""
        step = max(1, min(count, 2**22 // max(self.n_ops, 1)))
        return [(lo, min(count, lo + step)) for lo in range(0, count, step)] or [(0, 0)]

    def _batch_jacobian(self, x, forward, threads, executor, progress):
        X = self._pack_batch(x, "jacobian points", self._in_shapes, self.n_inputs)
        nb, n, m = X.shape[0], self.n_inputs, self.n_outputs
        J = np.empty((nb, m, n))
        if forward:
            for i in range(n):
                J[:, :, i] = self._batched("jvp_batch", X, (_unit_columns(nb, n, i),), threads,
                                           executor, packed=True, progress=progress)[1]
        else:
            for j in range(m):
                J[:, j, :] = self._batched("vjp_batch", X, (_unit_columns(nb, m, j),), threads,
                                           executor, grads=(1,), packed=True,
                                           progress=progress)[1]
        return J

    # ---- batches ----

    def _pack_batch(self, xs, what, shapes=None, size=None):
        """(nb, size) float64 rows from per-argument arrays with a leading batch axis."""
        shapes = self._in_shapes if shapes is None else shapes
        size = self.n_inputs if size is None else size
        xs = xs if isinstance(xs, tuple) else (xs,)
        if len(xs) == 1 and len(shapes) != 1:
            a = as_input(xs[0], what)
            if a.ndim == 2 and a.shape[1] == size:
                return np.ascontiguousarray(a)
        if len(xs) != len(shapes):
            raise ValueError(f"{what}: the tape has {len(shapes)} argument(s); got {len(xs)}")
        parts = []
        for i, (x, shape) in enumerate(zip(xs, shapes)):
            a = as_input(x, what)
            if a.shape[1:] != tuple(shape) or a.ndim != len(shape) + 1:
                raise ValueError(f"{what}: argument {i} has shape {a.shape}; a batch needs "
                                 f"(n_points,) + {tuple(shape)}")
            parts.append(a.reshape(a.shape[0], int(np.prod(shape, dtype=np.int64))))
        if len({p.shape[0] for p in parts}) != 1:
            raise ValueError(f"{what}: the arguments have different numbers of points")
        return np.ascontiguousarray(np.concatenate(parts, axis=1))

    def _batch_size(self, x):
        return self._pack_batch(x, "batch points").shape[0]

    def _batched(self, method, x, extra, threads, executor, grads=(), packed=False,
                 progress=False):
        """Sweep a batch; points whose guards fail are re-recorded (pyad.trace)
        or reported with BranchError. Results are shaped per point."""
        from . import batch
        batch.n_threads(threads)
        if executor is not None and not callable(getattr(executor, "submit", None)):
            raise TypeError("executor must have a submit() method, like concurrent.futures "
                            f"executors or a dask Client; got {type(executor).__name__}")
        X = x if packed else self._pack_batch(x, "batch points")
        if X.shape[0] == 0:
            raise ValueError("a batch needs at least one point (got an array of 0 points)")
        for e in extra:
            if e.shape[0] != X.shape[0]:
                raise ValueError(f"a batch of {X.shape[0]} points needs {X.shape[0]} rows of "
                                 f"directions / cotangents, got {e.shape[0]}")
        tape_bytes = None
        if executor is not None:
            from .serialize import dumps
            tape_bytes = dumps(self)
        bar = batch.progress_bar(progress, X.shape[0], f"pyad {method}", unit="pt")
        try:
            *results, bad = batch.run(self._store, method, (X,) + tuple(extra), threads,
                                      executor, tape_bytes, bar if bar is not None else False)
            self._fix_points(method, X, extra, results, bad, bar)
        finally:
            if bar is not None:
                bar.close()
        if diagnostics.DEBUG_NANS.enabled:
            self._check_finite_batch(method, X, extra, results)
        if packed:
            return results
        shaped = []
        for j, r in enumerate(results):
            if j in grads:
                shaped.append(self._batch_unpack(r, self._in_shapes))
            else:
                shaped.append(self._batch_unpack(r, self._out_shapes))
        return shaped

    def _fix_points(self, method, X, extra, results, bad, bar):
        """Re-record (or report) the points of a batch where a recorded branch flips."""
        flipped = np.flatnonzero(bad >= 0)
        if flipped.size and self._fn is not None and 2 * flipped.size > X.shape[0]:
            warnings.warn(RetraceWarning(
                f"{flipped.size} of the {X.shape[0]} points of this batch take another Python "
                "branch than the recorded one, so each is re-recorded and swept alone "
                "(slow). Write the branch with pyad.where, which records both sides, so one "
                "tape replays at every point"), stacklevel=4)
        for b in flipped:
            self._fix_point(method, X, extra, results, b, int(bad[b]))
            if bar is not None:
                bar.update(1)

    def _check_finite_batch(self, method, X, extra, results):
        """pyad.debug_nans for a batch: the first point with a NaN or inf result is
        swept alone, to name the op that made it."""
        finite = np.ones(X.shape[0], dtype=bool)
        for r in results:
            finite &= np.isfinite(r).all(axis=1)
        if finite.all():
            return
        b = int(np.flatnonzero(~finite)[0])
        try:
            diagnostics.check_finite(self, method, X[b], tuple(r[b] for r in results))
        except FloatingPointError as e:
            raise FloatingPointError(f"batch point {b}: {e}") from None
        raise FloatingPointError(f"pyad.debug_nans: batch point {b} "
                                 f"(x = {X[b].tolist()}) gives a non-finite result")

    @staticmethod
    def _batch_unpack(rows, shapes):
        parts, start = [], 0
        for shape in shapes:
            n = int(np.prod(shape, dtype=np.int64))
            parts.append(rows[:, start:start + n].reshape((rows.shape[0],) + tuple(shape)))
            start += n
        return parts[0] if len(parts) == 1 else tuple(parts)

    def _check_same_outputs(self, fresh, where):
        """A re-recording must give the outputs the tape has (their number and
        shapes): results are sized and shaped from them."""
        shapes = [tuple(sh) for sh in fresh._out_shapes]
        if shapes != [tuple(sh) for sh in self._out_shapes]:
            fresh.close()
            raise BranchError(
                f"re-recording {where} (a Python branch went the other way) gave outputs "
                f"of shapes {shapes}; the tape was recorded with outputs of shapes "
                f"{[tuple(sh) for sh in self._out_shapes]}. A function replayed by one tape "
                "must return the same number and shapes of outputs on every branch "
                "(use pyad.where to select between branches)")

    def _fix_point(self, method, X, extra, results, b, op):
        """One point of a batch where a recorded branch flips."""
        if self._fn is None:
            raise BranchError(self._branch_message(op, X[b]))
        from .transforms import record
        args = self._unpack(X[b], self._in_shapes)
        args = args if len(self._in_shapes) > 1 else (args,)
        fresh = record(self._fn, args, range(len(args)), self.backend)
        self._check_same_outputs(fresh, f"at batch point {b}")
        try:
            single = getattr(fresh._store, method)(X[b:b + 1], *(e[b:b + 1] for e in extra))
        finally:
            fresh.close()
        self.retraces += 1
        for j, r in enumerate(results):
            r[b] = single[j][0]
