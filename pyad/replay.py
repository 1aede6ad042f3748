"""Replay support for Tape: packing points and directions into flat vectors and
results back into the declared shapes, re-recording a traced function where a
branch flips, and assembling Jacobians and Hessians from vector sweeps.

The assembly functions take the Tape and sweep through its _sweep / _batched,
so that guards, retracing and sweep counting stay in one place (tape.py)."""
import itertools
import math

import numpy as np

from . import ops
from .errors import BranchError, SingularMatrixError
from .recording import as_input, record
from .store import Sweep

# ---- points and results ----


def pack(xs, what, shapes, size):
    """A flat float64 vector from values matching the declared shapes (or one
    flat vector of all size numbers)."""
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


def unpack(flat, shapes):
    """flat split into the shapes: a float per () shape; one part alone, else a tuple."""
    parts, start = [], 0
    for shape in shapes:
        n = math.prod(shape)
        part = flat[start:start + n]
        parts.append(float(part[0]) if shape == () else part.reshape(shape).copy())
        start += n
    return parts[0] if len(parts) == 1 else tuple(parts)


def input_facts(n_inputs, n_outputs, in_shapes):
    """(n_inputs, n_outputs, the one input shape or None, unpack offsets, whether
    every input is a scalar): what the replay fast path needs, computed once."""
    offsets = list(itertools.accumulate(map(math.prod, in_shapes), initial=0))
    single = tuple(in_shapes[0]) if len(in_shapes) == 1 else None
    all_scalars = all(tuple(s) == () for s in in_shapes)
    return (n_inputs, n_outputs, single, list(zip(offsets[:-1], offsets[1:], in_shapes)),
            all_scalars)


def unpack_inputs(flat, facts):
    """unpack for the inputs, from their input_facts."""
    single = facts[2]
    if single is not None:
        return float(flat[0]) if single == () else flat.reshape(single)
    if facts[4]:
        return tuple(flat.tolist())
    return tuple(float(flat[lo]) if shape == () else flat[lo:hi].reshape(shape)
                 for lo, hi, shape in facts[3])


def pack_batch(xs, what, shapes, size):
    """(nb, size) float64 rows from per-argument arrays with a leading batch axis."""
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
        parts.append(a.reshape(a.shape[0], math.prod(shape)))
    if len({p.shape[0] for p in parts}) != 1:
        raise ValueError(f"{what}: the arguments have different numbers of points")
    if len(parts) == 1:  # the common case: no copy of a batch already in rows
        return np.ascontiguousarray(parts[0])
    return np.ascontiguousarray(np.concatenate(parts, axis=1))


def batch_unpack(rows, shapes):
    """unpack for a batch: every part keeps the leading batch axis."""
    parts, start = [], 0
    for shape in shapes:
        n = math.prod(shape)
        parts.append(rows[:, start:start + n].reshape((rows.shape[0],) + tuple(shape)))
        start += n
    return parts[0] if len(parts) == 1 else tuple(parts)


def identity_rows(lo, hi, n):
    """Rows lo..hi-1 of the n x n identity, without building the whole identity."""
    rows = np.zeros((hi - lo, n))
    rows[np.arange(hi - lo), np.arange(lo, hi)] = 1.0
    return rows


def unit_columns(nb, n, i):
    """nb copies of the i-th unit vector of length n."""
    rows = np.zeros((nb, n))
    rows[:, i] = 1.0
    return rows


# ---- branches ----


def branch_message(store, k, x):
    """What BranchError says when replay at x fails the guard at op k."""
    try:
        name = ops.NAME[store.op_at(k)]
    except Exception:
        name = "guard"
    expected = "true" if name == "guard_true" else "false"
    return (f"replay at x = {np.array2string(np.asarray(x), threshold=8)} takes another "
            f"branch: op {k} ({name}) recorded a Python `if` (or a read of .value) "
            f"whose condition was {expected}; record the tape at this point (pyad.trace "
            "re-records automatically) or use pyad.where for a branch that replays both ways")


# rows whose failure at a point (a singular matrix, one not positive definite)
# comes back from a sweep the way a failed guard does, and what numpy calls it
_LINALG_FAILURE = {"solve": "the matrix is singular",
                   "inv": "the matrix is singular",
                   "cholesky": "the matrix is not positive definite",
                   "solve_triangular": "the triangular matrix is singular (a zero on its "
                                       "diagonal)",
                   "eigh": "the eigenvalues did not converge (LAPACK's dsyevd)"}


def linalg_failure(store, k, x, where=""):
    """The error naming row k and the point x (where: e.g. " (batch point 3)")
    when row k is a linear-algebra row whose matrix failed there, else None (row
    k is a guard): SingularMatrixError for solve / inv, numpy.linalg.LinAlgError
    (its base class) for the others, as numpy / scipy would raise."""
    try:
        name = ops.NAME[store.op_at(k)]
    except Exception:
        return None
    why = _LINALG_FAILURE.get(name)
    if why is None:
        return None
    error = SingularMatrixError if name in ("solve", "inv") else np.linalg.LinAlgError
    point = np.array2string(np.asarray(x), threshold=8, max_line_width=200)
    return error(f"replay at x = {point}{where}: row {k} ({name}): {why}, "
                 "so numpy / scipy would raise LinAlgError here")


def rerecord(fn, flat, in_shapes, out_shapes, backend, where, active=None):
    """(store, output shapes) of fn recorded afresh at the flat point. Outputs of
    other shapes than out_shapes raise BranchError: results are sized and shaped
    from them. active: which inputs are differentiated (None: all), for the
    store's passive rows (see Store.set_active_inputs)."""
    args = unpack(flat, in_shapes)
    args = args if len(in_shapes) > 1 else (args,)
    store, _, fresh_shapes = record(fn, args, range(len(args)), backend)
    if active is not None:
        store.set_active_inputs(active)
    shapes = [tuple(sh) for sh in fresh_shapes]
    if shapes != [tuple(sh) for sh in out_shapes]:
        store.close()
        raise BranchError(
            f"re-recording {where} (a Python branch went the other way) gave outputs "
            f"of shapes {shapes}; the tape was recorded with outputs of shapes "
            f"{[tuple(sh) for sh in out_shapes]}. A function replayed by one tape "
            "must return the same number and shapes of outputs on every branch "
            "(use pyad.where to select between branches)")
    return store, fresh_shapes


# ---- Jacobians and Hessians from vector sweeps ----


def jacobian_shape(rows, in_shapes, out_shapes):
    """Shape a (m, n) matrix (or batch of them) as outputs.shape + inputs.shape;
    a float for a scalar function of a scalar."""
    if len(in_shapes) == 1 and len(out_shapes) == 1:
        rows = rows.reshape(rows.shape[:-2] + tuple(out_shapes[0]) + tuple(in_shapes[0]))
        return float(rows) if rows.ndim == 0 else rows
    return rows


def jacobian(tape, x, forward, batch, threads, executor, progress):
    """The (m, n) Jacobian at x by n tangent (forward) or m adjoint sweeps; a
    (nb, m, n) stack of them for a batch."""
    n, m = tape.n_inputs, tape.n_outputs
    if batch:
        return batch_jacobian(tape, x, forward, threads, executor, progress)
    if n == 0 or m == 0:
        return np.zeros((m, n))
    flat = tape._point(x) if x is not None else None
    J = np.empty((m, n))
    if forward:
        flat = tape._recorded_point() if flat is None else flat
        for lo, hi in tape._direction_blocks(n):
            _, yd = tape._sweep(Sweep.JVP_VEC, flat, identity_rows(lo, hi, n))
            J[:, lo:hi] = yd.T
    else:
        for lo, hi in tape._direction_blocks(m):
            _, xbar = tape._sweep(Sweep.VJP_VEC, flat, identity_rows(lo, hi, m))
            J[lo:hi] = xbar
    return J


def batch_jacobian(tape, x, forward, threads, executor, progress):
    X = pack_batch(x, "jacobian points", tape._in_shapes, tape._n_points)
    nb, n, m = X.shape[0], tape.n_inputs, tape.n_outputs
    J = np.empty((nb, m, n))
    if forward:
        for i in range(n):
            J[:, :, i] = tape._batched(Sweep.JVP_BATCH, X, (unit_columns(nb, n, i),), threads,
                                       executor, packed=True, progress=progress)[1]
    else:
        for j in range(m):
            J[:, j, :] = tape._batched(Sweep.VJP_BATCH, X, (unit_columns(nb, m, j),), threads,
                                       executor, grads=(1,), packed=True,
                                       progress=progress)[1]
    return J


def hessian(tape, x, batch, threads, executor, progress):
    """The (n, n) Hessian of the one output at x (or a (nb, n, n) stack), from n
    forward-over-reverse directions, made exactly symmetric."""
    n = tape.n_inputs
    if batch:
        X = pack_batch(x, "hessian points", tape._in_shapes, tape._n_points)
        nb = X.shape[0]
        H = np.empty((nb, n, n))
        ones = np.ones((nb, 1))
        for i in range(n):
            H[:, :, i] = tape._batched(Sweep.HVP_BATCH, X, (unit_columns(nb, n, i), ones),
                                       threads, executor, grads=(2,), packed=True,
                                       progress=progress)[2]
    else:
        flat = tape._point(x) if x is not None else None
        flat = tape._recorded_point() if flat is None else flat
        H = np.empty((n, n))
        for lo, hi in tape._direction_blocks(n):
            _, _, hv = tape._sweep(Sweep.HVP_VEC, flat, identity_rows(lo, hi, n), np.ones(1))
            H[lo:hi] = hv
    return 0.5 * (H + np.swapaxes(H, -1, -2))
