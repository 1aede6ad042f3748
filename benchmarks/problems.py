"""The pyad benchmark problem set, defined once, with fixed seeds.

Each problem builds a list of Tasks. A Task holds a reference answer that is
independent of pyad (published values, hand-written analytic derivatives,
central differences) and one Cell per system. A Cell's `make()` does the
untimed set-up (recording a tape, jit-compiling, building a CasADi Function)
and returns the zero-argument callable that is timed; the runner calls it once
and checks its answer against the reference before timing it.

Systems: pyad-C, pyad-python, "numpy (hand)" (a hand-written analytic
derivative: the practical limit), and every installed peer (autograd, JAX with
and without jit, PyTorch, CasADi); peers are import-guarded.

A cell that calls a pyad feature which is not built yet (pyad.hessian,
pyad.jacobian, tape.jacobian, tape.hessian, tape.gradient(X, batch=True)) is
marked with that feature's name: while `feature_available(name)` says no, the
cell is shown as "n/a (not implemented)", so the table fills in when it lands.
(Once the feature exists, any exception is reported as an error.)
"""
import math

import numpy as np

import pyad

# --------------------------------------------------------------------------
# peers (import-guarded)
# --------------------------------------------------------------------------

PEERS = {}          # name -> version string, for installed peers
ABSENT = []         # names of peers that are not installed

try:
    import autograd
    import autograd.numpy as agnp
    from autograd import hessian as ag_hessian
    from autograd import hessian_tensor_product as ag_hvp
    from autograd import jacobian as ag_jacobian
except Exception:  # pragma: no cover - optional
    autograd = None
    ABSENT.append("autograd")

try:
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    PEERS["jax"] = jax.__version__
except Exception:  # pragma: no cover - optional
    jax = None
    ABSENT.append("jax")

try:
    import torch
    torch.set_default_dtype(torch.float64)
    PEERS["torch"] = torch.__version__
except Exception:  # pragma: no cover - optional
    torch = None
    ABSENT.append("torch")

try:
    import casadi
    PEERS["casadi"] = casadi.__version__
except Exception:  # pragma: no cover - optional
    casadi = None
    ABSENT.append("casadi")


def _dist_version(name):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:
        return "?"


if autograd is not None:
    PEERS["autograd"] = _dist_version("autograd")

SYSTEM_ORDER = ["pyad-C", "pyad-python", "numpy (hand)", "autograd", "jax", "jax.jit",
                "torch", "casadi"]


# --------------------------------------------------------------------------
# the framework: Problem, Task, Cell
# --------------------------------------------------------------------------

class Skipped(Exception):
    """A cell that is deliberately not run (too slow, not written for this peer)."""


def _batch_available():
    try:
        t = pyad.trace(lambda v: v[0] * v[1], np.ones(2))
        g = t.gradient(np.ones((3, 2)), batch=True)
        return np.shape(g) == (3, 2)
    except (AttributeError, TypeError, NotImplementedError):
        return False


FEATURES = {
    "pyad.hessian": lambda: hasattr(pyad, "hessian"),
    "pyad.jacobian": lambda: hasattr(pyad, "jacobian"),
    "tape.hessian": lambda: hasattr(pyad.Tape, "hessian"),
    "tape.jacobian": lambda: hasattr(pyad.Tape, "jacobian"),
    "tape.gradient(X, batch=True)": _batch_available,
}
_feature_cache = {}


def feature_available(name):
    """Is the pyad feature `name` (a key of FEATURES) built?"""
    if name not in _feature_cache:
        try:
            _feature_cache[name] = bool(FEATURES[name]())
        except Exception:
            _feature_cache[name] = False
    return _feature_cache[name]


class Cell:
    """One system's implementation of a task.

    make() -> fn, or (check_fn, time_fn). feature: the name (a key of FEATURES)
    of a pyad feature the cell needs, which may not be built yet. per: units per call (points, ops) for a
    per-unit note. slow=True: skipped under --quick. variant: a label shown
    after the system name (e.g. a stand-in). note: a zero-argument callable
    whose text the table shows in the note column once make() has run (figures
    only known after set-up, such as the size of the recorded tape).
    """

    def __init__(self, system, make, feature=None, variant=None, per=None, unit=None,
                 slow=False, skip=None, note=None):
        self.system, self.make, self.feature = system, make, feature
        self.variant, self.per, self.unit, self.slow, self.skip = variant, per, unit, slow, skip
        self.note = note

    @property
    def label(self):
        return self.system + (f" [{self.variant}]" if self.variant else "")


class Task:
    """One measured quantity of a problem: a reference and the cells that compute it."""

    def __init__(self, problem, name, reference, cells, rtol=1e-9, atol=0.0, check=None,
                 n=None, kind=None):
        self.problem, self.name, self.reference = problem, name, reference
        self.cells, self.rtol, self.atol, self.check = cells, rtol, atol, check
        self.n, self.kind = n, kind   # for the P2 plot: problem size and task kind

    def compare(self, result):
        """(ok, message): does result match the reference?"""
        if self.check is not None:
            return self.check(result)
        return compare_arrays(result, self.reference, self.rtol, self.atol)


def to_numpy(r):
    """Any system's result (tuples, jax/torch arrays, CasADi DMs) as a flat float64 array."""
    if isinstance(r, (tuple, list)):
        parts = [to_numpy(p) for p in r]
        return np.concatenate(parts) if parts else np.zeros(0)
    if hasattr(r, "detach"):                       # torch
        r = r.detach().cpu().numpy()
    elif casadi is not None and isinstance(r, (casadi.DM,)):
        r = r.full()
    return np.asarray(r, dtype=np.float64).ravel()


def compare_arrays(result, reference, rtol, atol):
    got, want = to_numpy(result), to_numpy(reference)
    if got.shape != want.shape:
        # allow a transposed/reshaped result of the same size only when the reference
        # says so by being 2-D (handled by the task's own check); otherwise wrong
        return False, f"shape {got.shape} != reference {want.shape}"
    if not np.all(np.isfinite(got)):
        return False, "non-finite entries"
    scale = np.max(np.abs(want)) if want.size else 0.0
    err = np.max(np.abs(got - want)) if want.size else 0.0
    ok = err <= atol + rtol * max(scale, 1e-300)
    return ok, f"max abs err {err:.3g} (scale {scale:.3g})"


class Problem:
    def __init__(self, pid, title, build):
        self.id, self.title, self.build = pid, title, build


# --------------------------------------------------------------------------
# helpers used by several problems
# --------------------------------------------------------------------------

def jax_ready(r):
    """Block on a jax result (tuples too) so the timing covers the computation."""
    if isinstance(r, (tuple, list)):
        for p in r:
            jax_ready(p)
    elif hasattr(r, "block_until_ready"):
        r.block_until_ready()
    return r


def pyad_cells(make_for_backend, python_skip=None, slow_python=False, feature=None,
               variant=None, per=None, unit=None, note_for_backend=None):
    """The pyad-C and pyad-python cells from one make(backend) function.

    note_for_backend(backend) -> str, if given, is each cell's note.
    """
    def note(backend):
        return None if note_for_backend is None else (lambda: note_for_backend(backend))
    cells = [Cell("pyad-C", lambda: make_for_backend("c"), feature=feature, variant=variant,
                  per=per, unit=unit, note=note("c"))]
    cells.append(Cell("pyad-python", lambda: make_for_backend("python"), feature=feature,
                      variant=variant, per=per, unit=unit, slow=slow_python, skip=python_skip,
                      note=note("python")))
    return cells


class TorchNS:
    """The few numpy-style functions the problems use, on torch tensors."""
    if torch is not None:
        sin, cos, exp, log, log1p = torch.sin, torch.cos, torch.exp, torch.log, torch.log1p
        tanh = torch.tanh

    @staticmethod
    def sum(a, axis=None):
        return torch.sum(a) if axis is None else torch.sum(a, dim=axis)

    @staticmethod
    def max(a, axis=None):
        return torch.max(a) if axis is None else torch.amax(a, dim=axis)

    @staticmethod
    def mean(a):
        return torch.mean(a)

    @staticmethod
    def concatenate(xs):
        return torch.cat(xs)


def t64(a, grad=False):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


# ==========================================================================
# P1  tiny scalar function
# ==========================================================================

P1_POINT = (43.0, 3.0, 2.0)
P1_GRAD = (60.85353612046653, 872.2331479536114, -3.2853671032530305)


def p1_f(a, b, c, xp=pyad):
    g = xp.sin(a * b) + xp.exp(c - a / b)
    return xp.log(g * g) * c


def p1_grad_hand(a, b, c):
    """Hand-written gradient of P1 (plain floats, the math module)."""
    ab = a * b
    e = math.exp(c - a / b)
    g = math.sin(ab) + e
    cab = math.cos(ab)
    fg = 2.0 * c / g
    return (fg * (b * cab - e / b), fg * (a * cab + e * a / (b * b)), math.log(g * g) + fg * e)


def p1_grad_hand_vec(X):
    """Hand-written gradient of P1 at many points: X (N, 3) -> (N, 3)."""
    a, b, c = X[:, 0], X[:, 1], X[:, 2]
    ab = a * b
    e = np.exp(c - a / b)
    g = np.sin(ab) + e
    cab = np.cos(ab)
    fg = 2.0 * c / g
    return np.stack([fg * (b * cab - e / b), fg * (a * cab + e * a / (b * b)),
                     np.log(g * g) + fg * e], axis=1)


def build_p1(quick):
    x = np.array(P1_POINT)
    ref = np.array(P1_GRAD)

    def traced(backend):
        g = pyad.grad(p1_f, argnums=(0, 1, 2), backend=backend)
        return lambda: g(*P1_POINT)

    def replay(backend):
        tape = pyad.trace(p1_f, *P1_POINT, backend=backend)
        return lambda: tape.gradient(x)

    hand = Cell("numpy (hand)", lambda: (lambda: p1_grad_hand(*P1_POINT)))
    traced_cells = pyad_cells(traced) + [hand]
    replay_cells = pyad_cells(replay) + [hand]

    if autograd is not None:
        def ag():
            g = autograd.grad(lambda v: p1_f(v[0], v[1], v[2], agnp))
            return lambda: g(x)
        traced_cells.append(Cell("autograd", ag))
    if jax is not None:
        f = lambda a, b, c: p1_f(a, b, c, jnp)
        traced_cells.append(Cell("jax", lambda: (
            lambda g=jax.grad(f, argnums=(0, 1, 2)): jax_ready(g(*P1_POINT)))))
        replay_cells.append(Cell("jax.jit", lambda: (
            lambda g=jax.jit(jax.grad(f, argnums=(0, 1, 2))): jax_ready(g(*P1_POINT)))))
    if torch is not None:
        def tg():
            def run():
                a, b, c = (torch.tensor(v, requires_grad=True) for v in P1_POINT)
                return torch.autograd.grad(p1_f(a, b, c, torch), (a, b, c))
            return run
        traced_cells.append(Cell("torch", tg))
    if casadi is not None:
        def cg():
            v = casadi.SX.sym("v", 3)
            F = casadi.Function("g", [v], [casadi.gradient(p1_f(v[0], v[1], v[2], casadi), v)])
            return lambda: F(x)
        replay_cells.append(Cell("casadi", cg))

    return [Task("P1", "grad, traced every call", ref, traced_cells, rtol=1e-12),
            Task("P1", "grad, replayed from one tape", ref, replay_cells, rtol=1e-12)]


# ==========================================================================
# P2  Rosenbrock
# ==========================================================================

P2_SIZES = (100, 10_000, 100_000)
P2_SIZES_QUICK = (100, 10_000)
P2_PYTHON_MAX_N = 10_000


def rosenbrock(x, xp=np):
    return xp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosenbrock_grad_hand(x):
    x0, x1 = x[:-1], x[1:]
    d = x1 - x0 * x0
    g = np.zeros_like(x)
    g[:-1] = -400.0 * x0 * d - 2.0 * (1.0 - x0)
    g[1:] += 200.0 * d
    return g


def rosenbrock_hvp_hand(x, v):
    x0, x1 = x[:-1], x[1:]
    hv = np.zeros_like(x)
    hv[:-1] = (1200.0 * x0 * x0 - 400.0 * x1 + 2.0) * v[:-1] - 400.0 * x0 * v[1:]
    hv[1:] += 200.0 * v[1:] - 400.0 * x0 * v[:-1]
    return hv


def p2_x0(n):
    return np.linspace(-1.2, 1.0, n)


def rosenbrock_scalar_loop(xs):
    """Rosenbrock written element by element (active scalars, a Python loop)."""
    s = 0.0
    for i in range(len(xs) - 1):
        a, b = xs[i], xs[i + 1]
        s = s + 100.0 * (b - a * a) * (b - a * a) + (1.0 - a) * (1.0 - a)
    return s


def build_p2(quick):
    tasks = []
    for n in (P2_SIZES_QUICK if quick else P2_SIZES):
        tasks += _p2_tasks(n)
    return tasks


def _p2_tasks(n):
    x = p2_x0(n)
    v = np.ones(n)
    val_ref = np.array([rosenbrock(x)])
    g_ref = rosenbrock_grad_hand(x)
    hv_ref = rosenbrock_hvp_hand(x, v)
    py_skip = (f"skipped (too slow: pyad-python is capped at n = {P2_PYTHON_MAX_N:,})"
               if n > P2_PYTHON_MAX_N else None)

    def record(backend):
        def check():
            tape = pyad.trace(rosenbrock, x, backend=backend)
            try:
                return tape()
            finally:
                tape.close()

        def timed():
            pyad.trace(rosenbrock, x, backend=backend).close()
        return check, timed

    def tape_of(backend):
        return pyad.trace(rosenbrock, x, backend=backend)

    def value(backend):
        t = tape_of(backend)
        return lambda: t(x)

    def gradient(backend):
        t = tape_of(backend)
        return lambda: t.gradient(x)

    def hvp(backend):
        t = tape_of(backend)
        return lambda: t.hvp(x, v)

    rec_cells = pyad_cells(record, python_skip=py_skip)
    val_cells = pyad_cells(value, python_skip=py_skip) + [
        Cell("numpy (hand)", lambda: (lambda: rosenbrock(x)))]
    g_cells = pyad_cells(gradient, python_skip=py_skip) + [
        Cell("numpy (hand)", lambda: (lambda: rosenbrock_grad_hand(x)))]
    h_cells = pyad_cells(hvp, python_skip=py_skip) + [
        Cell("numpy (hand)", lambda: (lambda: rosenbrock_hvp_hand(x, v)))]

    if autograd is not None:
        g_cells.append(Cell("autograd", lambda: (
            lambda g=autograd.grad(lambda z: rosenbrock(z, agnp)): g(x))))
        h_cells.append(Cell("autograd", lambda: (
            lambda h=ag_hvp(lambda z: rosenbrock(z, agnp)): h(x, v))))
    if jax is not None:
        f = lambda z: rosenbrock(z, jnp)
        xj, vj = jnp.asarray(x), jnp.asarray(v)
        val_cells.append(Cell("jax.jit", lambda: (lambda F=jax.jit(f): jax_ready(F(xj)))))
        g_cells.append(Cell("jax", lambda: (lambda G=jax.grad(f): jax_ready(G(xj)))))
        g_cells.append(Cell("jax.jit", lambda: (lambda G=jax.jit(jax.grad(f)): jax_ready(G(xj)))))
        hv = jax.jit(lambda z, w: jax.jvp(jax.grad(f), (z,), (w,))[1])
        h_cells.append(Cell("jax.jit", lambda: (lambda: jax_ready(hv(xj, vj)))))
    if torch is not None:
        xt, vt = t64(x), t64(v)

        def tval():
            def run():
                with torch.no_grad():
                    return rosenbrock(xt, TorchNS)
            return run

        def tgrad():
            def run():
                z = xt.clone().requires_grad_(True)
                return torch.autograd.grad(rosenbrock(z, TorchNS), z)[0]
            return run

        def thvp():
            def run():
                z = xt.clone().requires_grad_(True)
                (g,) = torch.autograd.grad(rosenbrock(z, TorchNS), z, create_graph=True)
                return torch.autograd.grad(g, z, vt)[0]
            return run
        val_cells.append(Cell("torch", tval))
        g_cells.append(Cell("torch", tgrad))
        h_cells.append(Cell("torch", thvp))
    if casadi is not None:
        def cas(what):
            def make():
                if n > 10_000:
                    raise Skipped("skipped (CasADi graph set-up too slow at this n)")
                z = casadi.MX.sym("x", n)
                fz = casadi.sum1(100.0 * (z[1:] - z[:-1] ** 2) ** 2 + (1.0 - z[:-1]) ** 2)
                if what == "value":
                    F = casadi.Function("f", [z], [fz])
                    return lambda: F(x)
                gz = casadi.gradient(fz, z)
                if what == "gradient":
                    F = casadi.Function("g", [z], [gz])
                    return lambda: F(x)
                w = casadi.MX.sym("v", n)
                F = casadi.Function("hv", [z, w], [casadi.jtimes(gz, z, w)])
                return lambda: F(x, v)
            return make
        val_cells.append(Cell("casadi", cas("value")))
        g_cells.append(Cell("casadi", cas("gradient")))
        h_cells.append(Cell("casadi", cas("hvp")))

    return [Task("P2", f"record n={n:,}", val_ref, rec_cells, rtol=1e-12, n=n, kind="record"),
            Task("P2", f"value n={n:,}", val_ref, val_cells, rtol=1e-12, n=n, kind="value"),
            Task("P2", f"gradient n={n:,}", g_ref, g_cells, rtol=1e-12, n=n, kind="gradient"),
            Task("P2", f"hvp n={n:,}", hv_ref, h_cells, rtol=1e-12, n=n, kind="hvp")]


# ==========================================================================
# P3  Lorenz-63, RK4, scalar Python code
# ==========================================================================

P3_START = (1.0, 1.0, 1.0, 10.0, 28.0, 8.0 / 3.0)   # x, y, z, sigma, rho, beta
P3_STEPS = 1000
P3_DT = 0.01


def lorenz_loss(x, y, z, sigma, rho, beta, steps=P3_STEPS, dt=P3_DT):
    """|state|^2 after `steps` RK4 steps of Lorenz-63, in plain scalar arithmetic."""
    h2, h6 = 0.5 * dt, dt / 6.0
    for _ in range(steps):
        k1x, k1y, k1z = sigma * (y - x), x * (rho - z) - y, x * y - beta * z
        ax, ay, az = x + h2 * k1x, y + h2 * k1y, z + h2 * k1z
        k2x, k2y, k2z = sigma * (ay - ax), ax * (rho - az) - ay, ax * ay - beta * az
        ax, ay, az = x + h2 * k2x, y + h2 * k2y, z + h2 * k2z
        k3x, k3y, k3z = sigma * (ay - ax), ax * (rho - az) - ay, ax * ay - beta * az
        ax, ay, az = x + dt * k3x, y + dt * k3y, z + dt * k3z
        k4x, k4y, k4z = sigma * (ay - ax), ax * (rho - az) - ay, ax * ay - beta * az
        x = x + h6 * (k1x + 2.0 * k2x + 2.0 * k3x + k4x)
        y = y + h6 * (k1y + 2.0 * k2y + 2.0 * k3y + k4y)
        z = z + h6 * (k1z + 2.0 * k2z + 2.0 * k3z + k4z)
    return x * x + y * y + z * z


def lorenz_grad_hand(x, y, z, sigma, rho, beta, steps=P3_STEPS, dt=P3_DT):
    """Hand-written discrete adjoint of lorenz_loss (plain floats; independent of pyad)."""
    h2, h6, h3 = 0.5 * dt, dt / 6.0, dt / 3.0

    def rhs(x, y, z):
        return sigma * (y - x), x * (rho - z) - y, x * y - beta * z

    stages = []
    for _ in range(steps):
        k1 = rhs(x, y, z)
        s2 = (x + h2 * k1[0], y + h2 * k1[1], z + h2 * k1[2])
        k2 = rhs(*s2)
        s3 = (x + h2 * k2[0], y + h2 * k2[1], z + h2 * k2[2])
        k3 = rhs(*s3)
        s4 = (x + dt * k3[0], y + dt * k3[1], z + dt * k3[2])
        k4 = rhs(*s4)
        stages.append(((x, y, z), s2, s3, s4))
        x = x + h6 * (k1[0] + 2.0 * k2[0] + 2.0 * k3[0] + k4[0])
        y = y + h6 * (k1[1] + 2.0 * k2[1] + 2.0 * k3[1] + k4[1])
        z = z + h6 * (k1[2] + 2.0 * k2[2] + 2.0 * k3[2] + k4[2])

    bx, by, bz = 2.0 * x, 2.0 * y, 2.0 * z
    bs = br = bb = 0.0

    def back(s, kx, ky, kz):
        """Adjoint of k = rhs(s) with k-adjoint (kx, ky, kz): (s-adjoint, param adjoints)."""
        sx, sy, sz = s
        return ((-sigma * kx + (rho - sz) * ky + sy * kz,
                 sigma * kx - ky + sx * kz,
                 -sx * ky - beta * kz),
                ((sy - sx) * kx, sx * ky, -sz * kz))

    for s1, s2, s3, s4 in reversed(stages):
        k1 = [h6 * bx, h6 * by, h6 * bz]
        k2 = [h3 * bx, h3 * by, h3 * bz]
        k3 = [h3 * bx, h3 * by, h3 * bz]
        k4 = (h6 * bx, h6 * by, h6 * bz)
        (ax, ay, az), p = back(s4, *k4)          # s4 = s + dt k3
        bs, br, bb = bs + p[0], br + p[1], bb + p[2]
        bx, by, bz = bx + ax, by + ay, bz + az
        k3 = [k3[0] + dt * ax, k3[1] + dt * ay, k3[2] + dt * az]
        (ax, ay, az), p = back(s3, *k3)          # s3 = s + h2 k2
        bs, br, bb = bs + p[0], br + p[1], bb + p[2]
        bx, by, bz = bx + ax, by + ay, bz + az
        k2 = [k2[0] + h2 * ax, k2[1] + h2 * ay, k2[2] + h2 * az]
        (ax, ay, az), p = back(s2, *k2)          # s2 = s + h2 k1
        bs, br, bb = bs + p[0], br + p[1], bb + p[2]
        bx, by, bz = bx + ax, by + ay, bz + az
        k1 = [k1[0] + h2 * ax, k1[1] + h2 * ay, k1[2] + h2 * az]
        (ax, ay, az), p = back(s1, *k1)          # k1 = rhs(s)
        bs, br, bb = bs + p[0], br + p[1], bb + p[2]
        bx, by, bz = bx + ax, by + ay, bz + az
    return np.array([bx, by, bz, bs, br, bb])


def lorenz_grad_fd(point=P3_START, h=1e-7):
    """Central differences of lorenz_loss (only used to validate the hand adjoint)."""
    g = np.zeros(6)
    for i in range(6):
        hp, hm = list(point), list(point)
        hi = h * max(1.0, abs(point[i]))
        hp[i] += hi
        hm[i] -= hi
        g[i] = (lorenz_loss(*hp) - lorenz_loss(*hm)) / (2 * hi)
    return g


def build_p3(quick):
    x = np.array(P3_START)
    ref = lorenz_grad_hand(*P3_START)
    f = lorenz_loss

    def record(backend):
        def check():
            t = pyad.trace(f, *P3_START, backend=backend)
            try:
                return t.gradient()
            finally:
                t.close()
        return check, lambda: pyad.trace(f, *P3_START, backend=backend).close()

    def traced(backend):
        g = pyad.grad(f, argnums=tuple(range(6)), backend=backend)
        return lambda: g(*P3_START)

    def replay(backend):
        t = pyad.trace(f, *P3_START, backend=backend)
        return lambda: t.gradient(x)

    hand = Cell("numpy (hand)", lambda: (lambda: lorenz_grad_hand(*P3_START)),
                variant="hand adjoint, Python floats")
    rec_cells = pyad_cells(record)
    traced_cells = pyad_cells(traced) + [hand]
    replay_cells = pyad_cells(replay) + [hand]

    if autograd is not None:
        traced_cells.append(Cell("autograd", lambda: (
            lambda g=autograd.grad(lambda v: f(*[v[i] for i in range(6)])): g(x)), slow=True))
    if jax is not None:
        traced_cells.append(Cell("jax", None, skip="skipped (op-by-op dispatch of ~70k scalar "
                                                   "ops is too slow; see jax.jit)"))

        def jjit():
            def loss(p):
                def body(_, s):
                    return _lorenz_rk4_step(s, p[3], p[4], p[5], P3_DT)
                s = jax.lax.fori_loop(0, P3_STEPS, body, (p[0], p[1], p[2]))
                return s[0] * s[0] + s[1] * s[1] + s[2] * s[2]
            g = jax.jit(jax.grad(loss))
            xj = jnp.asarray(x)
            return lambda: jax_ready(g(xj))
        replay_cells.append(Cell("jax.jit", jjit, variant="lax.fori_loop"))
    if torch is not None:
        def tg():
            def run():
                ps = [torch.tensor(v, requires_grad=True) for v in P3_START]
                return torch.autograd.grad(f(*ps), ps)
            return run
        traced_cells.append(Cell("torch", tg, slow=True))
    if casadi is not None:
        def cg():
            p = casadi.SX.sym("p", 6)
            F = casadi.Function("g", [p], [casadi.gradient(f(*[p[i] for i in range(6)]), p)])
            return lambda: F(x)
        replay_cells.append(Cell("casadi", cg))

    return [Task("P3", "record (1000 RK4 steps)", ref, rec_cells, rtol=1e-9),
            Task("P3", "gradient, traced every call", ref, traced_cells, rtol=1e-9),
            Task("P3", "gradient, replayed from one tape", ref, replay_cells, rtol=1e-9)]


def _lorenz_rk4_step(s, sigma, rho, beta, dt):
    x, y, z = s
    h2, h6 = 0.5 * dt, dt / 6.0

    def rhs(x, y, z):
        return sigma * (y - x), x * (rho - z) - y, x * y - beta * z
    k1 = rhs(x, y, z)
    k2 = rhs(x + h2 * k1[0], y + h2 * k1[1], z + h2 * k1[2])
    k3 = rhs(x + h2 * k2[0], y + h2 * k2[1], z + h2 * k2[2])
    k4 = rhs(x + dt * k3[0], y + dt * k3[1], z + dt * k3[2])
    return tuple(s[i] + h6 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]) for i in range(3))


# ==========================================================================
# P4  dense Hessian of logsumexp(A x) + 0.5 x.x
# ==========================================================================

P4_N = 100


def p4_data():
    A = 0.1 * np.random.default_rng(0).standard_normal((P4_N, P4_N))
    return A, 0.1 * np.ones(P4_N)


def p4_f(x, A, xp=np):
    z = A @ x
    return xp.log(xp.sum(xp.exp(z))) + 0.5 * xp.sum(x * x)


def p4_hessian_hand(x, A):
    z = A @ x
    p = np.exp(z - z.max())
    p /= p.sum()
    return A.T @ (np.diag(p) - np.outer(p, p)) @ A + np.eye(len(x))


def build_p4(quick):
    A, x = p4_data()
    n = len(x)
    ref = p4_hessian_hand(x, A)
    f = lambda z: p4_f(z, A)
    eye = np.eye(n)

    def hess_replay(backend):
        t = pyad.trace(f, x, backend=backend)
        return lambda: t.hessian(x)

    def hess_traced(backend):
        h = pyad.hessian(f, backend=backend)
        return lambda: h(x)

    def n_hvps(backend):
        t = pyad.trace(f, x, backend=backend)
        return lambda: np.stack([t.hvp(x, eye[i]) for i in range(n)])

    hand = Cell("numpy (hand)", lambda: (lambda: p4_hessian_hand(x, A)))
    replay_cells = (pyad_cells(hess_replay, feature="tape.hessian", slow_python=True)
                    + pyad_cells(n_hvps, variant=f"stand-in: {n} x tape.hvp", slow_python=True)
                    + [hand])
    traced_cells = pyad_cells(hess_traced, feature="pyad.hessian", slow_python=True) + [hand]

    if autograd is not None:
        traced_cells.append(Cell("autograd", lambda: (
            lambda H=ag_hessian(lambda z: p4_f(z, A, agnp)): H(x))))
    if jax is not None:
        Aj, xj = jnp.asarray(A), jnp.asarray(x)
        fj = lambda z: p4_f(z, Aj, jnp)
        traced_cells.append(Cell("jax", lambda: (lambda H=jax.hessian(fj): jax_ready(H(xj)))))
        replay_cells.append(Cell("jax.jit", lambda: (
            lambda H=jax.jit(jax.hessian(fj)): jax_ready(H(xj)))))
    if torch is not None:
        At, xt = t64(A), t64(x)
        traced_cells.append(Cell("torch", lambda: (
            lambda: torch.autograd.functional.hessian(lambda z: p4_f(z, At, TorchNS), xt))))
    if casadi is not None:
        def cg():
            z = casadi.SX.sym("x", n)
            H, _ = casadi.hessian(casadi.log(casadi.sum1(casadi.exp(casadi.mtimes(A, z))))
                                  + 0.5 * casadi.dot(z, z), z)
            F = casadi.Function("H", [z], [H])
            return lambda: F(x)
        replay_cells.append(Cell("casadi", cg))

    return [Task("P4", "hessian 100x100, traced", ref, traced_cells, rtol=1e-10),
            Task("P4", "hessian 100x100, replayed", ref, replay_cells, rtol=1e-10)]


# ==========================================================================
# P5  Jacobian of a discretised Bratu-like operator
# ==========================================================================

P5_N = 1000


def p5_F(x, xp=np):
    n = x.shape[0]
    zero = np.zeros(1)
    left = xp.concatenate([zero, x[:-1]])
    right = xp.concatenate([x[1:], zero])
    return (left - 2.0 * x + right) * float((n + 1) ** 2) + xp.exp(x)


def p5_jacobian_hand(x):
    n = len(x)
    s = float((n + 1) ** 2)
    J = np.diag(-2.0 * s + np.exp(x))
    i = np.arange(n - 1)
    J[i, i + 1] = s
    J[i + 1, i] = s
    return J


def build_p5(quick):
    n = P5_N
    x = 0.1 * np.ones(n)
    ref = p5_jacobian_hand(x)
    eye = np.eye(n)

    def jac_replay(backend):
        t = pyad.trace(p5_F, x, backend=backend)
        return lambda: t.jacobian(x)

    def jac_traced(backend):
        J = pyad.jacobian(p5_F, backend=backend)
        return lambda: J(x)

    def n_jvps(backend):
        t = pyad.trace(p5_F, x, backend=backend)
        return lambda: np.stack([t.jvp(x, eye[i])[1] for i in range(n)], axis=1)

    py_skip = "skipped (too slow: 1000 JVP sweeps in pure Python)"
    hand = Cell("numpy (hand)", lambda: (lambda: p5_jacobian_hand(x)))
    replay_cells = (pyad_cells(jac_replay, feature="tape.jacobian", slow_python=True)
                    + pyad_cells(n_jvps, variant=f"stand-in: {n} x tape.jvp", python_skip=py_skip)
                    + [hand])
    traced_cells = pyad_cells(jac_traced, feature="pyad.jacobian", slow_python=True) + [hand]

    if autograd is not None:
        traced_cells.append(Cell("autograd", lambda: (
            lambda J=ag_jacobian(lambda z: p5_F(z, agnp)): J(x)), slow=True))
    if jax is not None:
        xj = jnp.asarray(x)

        def fj(z):
            return p5_F(z, jnp)
        traced_cells.append(Cell("jax", lambda: (lambda J=jax.jacfwd(fj): jax_ready(J(xj)))))
        replay_cells.append(Cell("jax.jit", lambda: (
            lambda J=jax.jit(jax.jacfwd(fj)): jax_ready(J(xj)))))
    if torch is not None:
        xt = t64(x)

        def tF(z):
            zero = torch.zeros(1)
            return ((torch.cat([zero, z[:-1]]) - 2.0 * z + torch.cat([z[1:], zero]))
                    * float((n + 1) ** 2) + torch.exp(z))
        traced_cells.append(Cell("torch", lambda: (
            lambda: torch.autograd.functional.jacobian(tF, xt, vectorize=True))))
    if casadi is not None:
        def cg():
            z = casadi.SX.sym("x", n)
            zero = casadi.SX(1, 1)
            Fz = ((casadi.vertcat(zero, z[:-1]) - 2.0 * z + casadi.vertcat(z[1:], zero))
                  * float((n + 1) ** 2) + casadi.exp(z))
            F = casadi.Function("J", [z], [casadi.densify(casadi.jacobian(Fz, z))])
            return lambda: F(x)
        replay_cells.append(Cell("casadi", cg))

    return [Task("P5", "jacobian 1000x1000, traced", ref, traced_cells, rtol=1e-12),
            Task("P5", "jacobian 1000x1000, replayed", ref, replay_cells, rtol=1e-12)]


# ==========================================================================
# P6  P1's gradient at 100,000 points
# ==========================================================================

P6_N = 100_000
P6_LOOP = 2_000


def p6_points():
    return np.random.default_rng(0).uniform(1.0, 2.0, size=(P6_N, 3))


def p1_vec(v, xp=pyad):
    return p1_f(v[0], v[1], v[2], xp)


def build_p6(quick):
    X = p6_points()
    ref = p1_grad_hand_vec(X)
    sub = X[:P6_LOOP]
    sub_ref = ref[:P6_LOOP]

    def batch(backend):
        t = pyad.trace(p1_vec, X[0], backend=backend)
        return lambda: t.gradient(X, batch=True)

    def loop(backend):
        t = pyad.trace(p1_vec, X[0], backend=backend)
        return lambda: np.stack([t.gradient(p) for p in sub])

    batch_cells = pyad_cells(batch, feature="tape.gradient(X, batch=True)", slow_python=True,
                             per=P6_N, unit="point") + [
        Cell("numpy (hand)", lambda: (lambda: p1_grad_hand_vec(X)), per=P6_N, unit="point")]

    def vec_f(xp):
        return lambda Z: xp.sum(p1_f(Z[:, 0], Z[:, 1], Z[:, 2], xp))

    if autograd is not None:
        batch_cells.append(Cell("autograd", lambda: (
            lambda g=autograd.grad(vec_f(agnp)): g(X)), per=P6_N, unit="point"))
    if jax is not None:
        Xj = jnp.asarray(X)
        gj = jax.jit(jax.vmap(jax.grad(lambda v: p1_f(v[0], v[1], v[2], jnp))))
        batch_cells.append(Cell("jax.jit", lambda: (lambda: jax_ready(gj(Xj))),
                                variant="vmap(grad)", per=P6_N, unit="point"))
    if torch is not None:
        Xt = t64(X)

        def tg():
            def run():
                Z = Xt.clone().requires_grad_(True)
                return torch.autograd.grad(vec_f(TorchNS)(Z), Z)[0]
            return run
        batch_cells.append(Cell("torch", tg, variant="vectorised f", per=P6_N, unit="point"))
    if casadi is not None:
        def cg():
            v = casadi.SX.sym("v", 3)
            G = casadi.Function("g", [v], [casadi.gradient(p1_f(v[0], v[1], v[2], casadi), v)])
            M = G.map(P6_N)
            XT = np.ascontiguousarray(X.T)
            return lambda: M(XT).full().T
        batch_cells.append(Cell("casadi", cg, variant="Function.map", per=P6_N, unit="point"))

    loop_cells = pyad_cells(loop, per=P6_LOOP, unit="point")
    return [Task("P6", f"grad at {P6_N:,} points (batch)", ref, batch_cells, rtol=1e-10),
            Task("P6", f"stand-in: loop of tape.gradient, {P6_LOOP:,} points", sub_ref,
                 loop_cells, rtol=1e-10)]


# ==========================================================================
# P7  logistic regression
# ==========================================================================

def p7_data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1000, 100))
    y = np.where(rng.standard_normal(1000) >= 0.0, 1.0, -1.0)
    return X, y, 0.01 * np.ones(100)


def p7_loss(w, X, y, xp=np):
    return xp.mean(xp.log(1.0 + xp.exp(-y * (X @ w))))


def p7_grad_hand(w, X, y):
    m = -y * (X @ w)
    s = 1.0 / (1.0 + np.exp(-m))     # sigmoid(m) = d log(1 + e^m) / dm
    return X.T @ (-y * s) / len(y)


def build_p7(quick):
    X, y, w = p7_data()
    ref = p7_grad_hand(w, X, y)
    f = lambda v: p7_loss(v, X, y)

    def traced(backend):
        g = pyad.grad(f, backend=backend)
        return lambda: g(w)

    def replay(backend):
        t = pyad.trace(f, w, backend=backend)
        return lambda: t.gradient(w)

    hand = Cell("numpy (hand)", lambda: (lambda: p7_grad_hand(w, X, y)))
    traced_cells = pyad_cells(traced, slow_python=True) + [hand]
    replay_cells = pyad_cells(replay) + [hand]
    if autograd is not None:
        traced_cells.append(Cell("autograd", lambda: (
            lambda g=autograd.grad(lambda v: p7_loss(v, X, y, agnp)): g(w))))
    if jax is not None:
        Xj, yj, wj = jnp.asarray(X), jnp.asarray(y), jnp.asarray(w)
        fj = lambda v: p7_loss(v, Xj, yj, jnp)
        traced_cells.append(Cell("jax", lambda: (lambda g=jax.grad(fj): jax_ready(g(wj)))))
        replay_cells.append(Cell("jax.jit", lambda: (
            lambda g=jax.jit(jax.grad(fj)): jax_ready(g(wj)))))
    if torch is not None:
        Xt, yt, wt = t64(X), t64(y), t64(w)

        def tg():
            def run():
                v = wt.clone().requires_grad_(True)
                return torch.autograd.grad(p7_loss(v, Xt, yt, TorchNS), v)[0]
            return run
        traced_cells.append(Cell("torch", tg))
    if casadi is not None:
        def cg():
            v = casadi.MX.sym("w", 100)
            m = -y * casadi.mtimes(casadi.DM(X), v)
            loss = casadi.sum1(casadi.log(1.0 + casadi.exp(m))) / len(y)
            F = casadi.Function("g", [v], [casadi.gradient(loss, v)])
            return lambda: F(w)
        replay_cells.append(Cell("casadi", cg))
    return [Task("P7", "gradient 1000x100, traced", ref, traced_cells, rtol=1e-10),
            Task("P7", "gradient 1000x100, replayed", ref, replay_cells, rtol=1e-10)]


# ==========================================================================
# P8  ADBench GMM objective (d = 2, k = 5, n = 1000)
# ==========================================================================
#
# The objective of microsoft/ADBench (src/python/modules/*/gmm_objective.py),
# restated here: parameters alphas (k), means (k, d), icf (k, d(d+1)/2) whose
# first d entries per component are log-diagonals of the inverse-covariance
# factor Q and whose remaining entries fill Q's strict lower triangle column by
# column; data X (n, d); Wishart prior (gamma, m).
#
#   f = -n d/2 log(2 pi)
#       + sum_i logsumexp_k( alpha_k + sum(q_k) - 1/2 |Q_k (x_i - mu_k)|^2 )
#       - n logsumexp(alpha)
#       + sum_k [ gamma^2/2 (|exp(q_k)|^2 + |l_k|^2) - m sum(q_k) ]
#       - k (n' d log(gamma / sqrt 2) - log Gamma_d(n'/2)),   n' = d + m + 1

P8_D, P8_K, P8_N = 2, 5, 1000
P8_GAMMA, P8_M = 1.0, 0


def p8_data():
    rng = np.random.default_rng(0)
    d, k, n = P8_D, P8_K, P8_N
    alphas = rng.standard_normal(k)
    means = rng.uniform(size=(k, d))
    icf = rng.standard_normal((k, d * (d + 1) // 2))
    X = rng.standard_normal((n, d))
    theta = np.concatenate([alphas, means.ravel(), icf.ravel()])
    return theta, X


def _multigammaln(a, p):
    return p * (p - 1) / 4.0 * math.log(math.pi) + sum(
        math.lgamma(a + (1.0 - j) / 2.0) for j in range(1, p + 1))


def gmm_objective(theta, X, xp=np, d=P8_D, k=P8_K, gamma=P8_GAMMA, m=P8_M):
    n = X.shape[0]
    alphas = theta[:k]
    means = theta[k:k + k * d].reshape(k, d)
    icf = theta[k + k * d:].reshape(k, d * (d + 1) // 2)
    qs = icf[:, :d]
    qdiag = xp.exp(qs)
    sum_qs = xp.sum(qs, axis=1)
    xc = X[:, None, :] - means[None, :, :]                       # (n, k, d)
    # |Q_k xc|^2 with Q_k = diag(exp q_k) + strictly lower L_k (column-major params)
    col_start, pos = [], d
    for c in range(d):
        col_start.append(pos)
        pos += d - c - 1
    sq = 0.0
    for r in range(d):
        row = qdiag[:, r] * xc[:, :, r]
        for c in range(r):
            row = row + icf[:, col_start[c] + (r - c - 1)] * xc[:, :, c]
        sq = sq + row * row
    inner = alphas + sum_qs - 0.5 * sq                           # (n, k)
    mx = xp.max(inner, axis=1)
    lse = xp.log(xp.sum(xp.exp(inner - mx[:, None]), axis=1)) + mx
    ma = xp.max(alphas)
    lse_alpha = xp.log(xp.sum(xp.exp(alphas - ma))) + ma
    nn = d + m + 1
    prior = xp.sum(0.5 * gamma * gamma * (xp.sum(qdiag * qdiag, axis=1)
                                          + xp.sum(icf[:, d:] * icf[:, d:], axis=1))
                   - m * sum_qs)
    prior = prior - k * (nn * d * math.log(gamma / math.sqrt(2.0)) - _multigammaln(0.5 * nn, d))
    const = -n * d * 0.5 * math.log(2.0 * math.pi)
    return const + xp.sum(lse) - n * lse_alpha + prior


class _GmmNS:
    """What gmm_objective_linalg needs of a framework: exp, sum, logsumexp along
    an axis, log|det| of a stack of matrices, and constants of its array type."""

    def __init__(self, exp, sum_, logsumexp, logabsdet, const=lambda a: a):
        self.exp, self.sum, self.logsumexp = exp, sum_, logsumexp
        self.logabsdet, self.const = logabsdet, const


def _np_logsumexp(x, axis=None):
    m = np.max(x, axis=axis, keepdims=True)
    return np.squeeze(np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m, axis=axis)


# numpy itself (pyad.logsumexp runs on plain arrays as scipy's does) and pyad,
# which takes the same code: np.linalg.slogdet dispatches to pyad's row.
P8_NUMPY_NS = _GmmNS(np.exp, np.sum, pyad.logsumexp, lambda q: np.linalg.slogdet(q)[1])


def _p8_lower_map(d):
    """(d(d-1)/2, d*d) 0/1 matrix placing ADBench's strict-lower icf entries
    (column by column) at their (r, c) of a row-major d x d matrix."""
    out, j = np.zeros((d * (d - 1) // 2, d * d)), 0
    for c in range(d):
        for r in range(c + 1, d):
            out[j, r * d + c] = 1.0
            j += 1
    return out


def gmm_objective_linalg(theta, X, ns=P8_NUMPY_NS, d=P8_D, k=P8_K, gamma=P8_GAMMA, m=P8_M):
    """gmm_objective as ADBench's own terms read: Q_k built as a matrix, sum(q_k)
    as log|det Q_k| (np.linalg.slogdet), |Q_k (x_i - mu_k)|^2 by a stacked matrix
    product, and the two log-sum-exps by the framework's logsumexp."""
    n = X.shape[0]
    alphas = theta[:k]
    means = theta[k:k + k * d].reshape(k, d)
    icf = theta[k + k * d:].reshape(k, d * (d + 1) // 2)
    qdiag = ns.exp(icf[:, :d])
    Q = (qdiag[:, :, None] * ns.const(np.eye(d))
         + (icf[:, d:] @ ns.const(_p8_lower_map(d))).reshape(k, d, d))
    logdet = ns.logabsdet(Q)                                     # = sum(q_k)
    xc = ns.const(X.T)[None, :, :] - means[:, :, None]           # (k, d, n)
    Qx = Q @ xc
    inner = (alphas + logdet)[:, None] - 0.5 * ns.sum(Qx * Qx, 1)  # (k, n)
    nn = d + m + 1
    prior = ns.sum(0.5 * gamma * gamma * (ns.sum(qdiag * qdiag, 1) + ns.sum(icf[:, d:] * icf[:, d:], 1))
                   - m * logdet)
    prior = prior - k * (nn * d * math.log(gamma / math.sqrt(2.0)) - _multigammaln(0.5 * nn, d))
    const = -n * d * 0.5 * math.log(2.0 * math.pi)
    return const + ns.sum(ns.logsumexp(inner, 0)) - n * ns.logsumexp(alphas, 0) + prior


P8_FD_COORDS = 10


def p8_reference(theta, X):
    """Central differences (4th order) of the numpy objective on a few random coordinates."""
    coords = np.sort(np.random.default_rng(1).choice(theta.size, P8_FD_COORDS, replace=False))
    vals = []
    for i in coords:
        h = 1e-3 * max(1.0, abs(theta[i]))

        def at(s):
            t = theta.copy()
            t[i] += s * h
            return gmm_objective(t, X)
        vals.append((8 * (at(1) - at(-1)) - (at(2) - at(-2))) / (12 * h))
    return coords, np.array(vals)


def build_p8(quick):
    theta, X = p8_data()
    coords, fd = p8_reference(theta, X)
    f = lambda t: gmm_objective(t, X)

    def check(result):
        g = to_numpy(result)
        if g.shape != theta.shape:
            return False, f"shape {g.shape} != {theta.shape}"
        err = np.max(np.abs(g[coords] - fd))
        scale = np.max(np.abs(fd))
        return err <= 1e-6 * scale, (f"max abs err {err:.3g} on {len(coords)} central-difference "
                                     f"coordinates (scale {scale:.3g})")

    def traced(backend):
        g = pyad.grad(f, backend=backend)
        return lambda: g(theta)

    def replay(backend):
        t = pyad.trace(f, theta, backend=backend)
        return lambda: t.gradient(theta)

    traced_cells = pyad_cells(traced, slow_python=True)
    replay_cells = pyad_cells(replay)
    if autograd is not None:
        traced_cells.append(Cell("autograd", lambda: (
            lambda g=autograd.grad(lambda t: gmm_objective(t, X, agnp)): g(theta))))
    if jax is not None:
        Xj, tj = jnp.asarray(X), jnp.asarray(theta)
        fj = lambda t: gmm_objective(t, Xj, jnp)
        traced_cells.append(Cell("jax", lambda: (lambda g=jax.grad(fj): jax_ready(g(tj)))))
        replay_cells.append(Cell("jax.jit", lambda: (
            lambda g=jax.jit(jax.grad(fj)): jax_ready(g(tj)))))
    if torch is not None:
        Xt, tt = t64(X), t64(theta)

        def tg():
            def run():
                v = tt.clone().requires_grad_(True)
                return torch.autograd.grad(gmm_objective(v, Xt, TorchNS), v)[0]
            return run
        traced_cells.append(Cell("torch", tg))
    ref = ("FD", coords, fd)
    return [Task("P8", "GMM gradient d=2 k=5 n=1000, traced", ref, traced_cells, check=check),
            Task("P8", "GMM gradient d=2 k=5 n=1000, replayed", ref, replay_cells, check=check)
            ] + _p8_linalg_tasks(theta, X, ref, check)


def _p8_linalg_tasks(theta, X, ref, check):
    """P8 as ADBench's formulation reads with slogdet and logsumexp: the same
    objective (its value must equal the numpy reference's), each system using its
    own slogdet and logsumexp."""
    value = gmm_objective_linalg(theta, X)
    expected = gmm_objective(theta, X)
    if not abs(value - expected) <= 1e-10 * abs(expected):
        raise AssertionError(f"P8 slogdet/logsumexp objective {value!r} != numpy reference "
                             f"{expected!r}")
    f = lambda t: gmm_objective_linalg(t, X)

    def traced(backend):
        g = pyad.grad(f, backend=backend)
        return lambda: g(theta)

    def replay(backend):
        t = pyad.trace(f, theta, backend=backend)
        return lambda: t.gradient(theta)

    traced_cells, replay_cells = pyad_cells(traced, slow_python=True), pyad_cells(replay)
    if autograd is not None:
        from autograd.scipy.special import logsumexp as ag_lse
        ns = _GmmNS(agnp.exp, agnp.sum, lambda x, axis: ag_lse(x, axis=axis),
                    lambda q: agnp.linalg.slogdet(q)[1])
        traced_cells.append(Cell("autograd", lambda: (
            lambda g=autograd.grad(lambda t: gmm_objective_linalg(t, X, ns)): g(theta))))
    if jax is not None:
        from jax.scipy.special import logsumexp as jax_lse
        ns_j = _GmmNS(jnp.exp, jnp.sum, lambda x, axis: jax_lse(x, axis=axis),
                      lambda q: jnp.linalg.slogdet(q)[1], jnp.asarray)
        Xj, tj = jnp.asarray(X), jnp.asarray(theta)
        fj = lambda t: gmm_objective_linalg(t, Xj, ns_j)
        traced_cells.append(Cell("jax", lambda: (lambda g=jax.grad(fj): jax_ready(g(tj)))))
        replay_cells.append(Cell("jax.jit", lambda: (
            lambda g=jax.jit(jax.grad(fj)): jax_ready(g(tj)))))
    if torch is not None:
        ns_t = _GmmNS(torch.exp, lambda a, axis=None: TorchNS.sum(a, axis),
                      lambda x, axis: torch.logsumexp(x, dim=axis),
                      lambda q: torch.linalg.slogdet(q)[1], t64)
        Xt, tt = t64(X), t64(theta)

        def tg():
            def run():
                v = tt.clone().requires_grad_(True)
                return torch.autograd.grad(gmm_objective_linalg(v, Xt, ns_t), v)[0]
            return run
        traced_cells.append(Cell("torch", tg))
    name = "GMM gradient d=2 k=5 n=1000, slogdet + logsumexp"
    return [Task("P8", name + ", traced", ref, traced_cells, check=check),
            Task("P8", name + ", replayed", ref, replay_cells, check=check)]


# ==========================================================================
# P9  a small MLP's loss (batch 256, 200 -> 64 -> 1, tanh)
# ==========================================================================
#
#   L = mean((tanh(X @ W1 + b1) @ W2 + b2 - y)^2)
#
# The prediction is a (256, 1) column, so y enters as a (256, 1) column too: a
# flat y of 256 would broadcast the difference to (256, 256) in every system.

P9_BATCH, P9_IN, P9_HIDDEN = 256, 200, 64
P9_PYTHON_MAX_OPS = 500_000     # pyad-python replays element rows at ~1 µs each
P9_FD_PER_PARAM = 2             # central-difference coordinates checked per parameter


def p9_data():
    """X, the target column y, and the parameters (W1, b1, W2, b2), seeded."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((P9_BATCH, P9_IN))
    y = rng.standard_normal(P9_BATCH).reshape(-1, 1)
    # scaled so tanh works in its curved range rather than saturated at +-1
    W1 = rng.standard_normal((P9_IN, P9_HIDDEN)) / math.sqrt(P9_IN)
    b1 = 0.1 * rng.standard_normal(P9_HIDDEN)
    W2 = rng.standard_normal((P9_HIDDEN, 1)) / math.sqrt(P9_HIDDEN)
    b2 = np.array([0.1])
    return X, y, (W1, b1, W2, b2)


def p9_loss(W1, b1, W2, b2, X, y, xp=np):
    return xp.mean((xp.tanh(X @ W1 + b1) @ W2 + b2 - y) ** 2)


def p9_grad_hand(W1, b1, W2, b2, X, y):
    """Backpropagation by hand: the gradients with respect to (W1, b1, W2, b2)."""
    H = np.tanh(X @ W1 + b1)
    dP = (2.0 / y.size) * (H @ W2 + b2 - y)          # dL / d(prediction)
    dZ = (dP @ W2.T) * (1.0 - H * H)                  # through tanh' = 1 - tanh^2
    return X.T @ dZ, dZ.sum(axis=0), H.T @ dP, dP.sum(axis=0)


def p9_check_hand_gradient(params, X, y, grads):
    """Raise unless the hand gradient matches 4th-order central differences on a
    few coordinates of every parameter (run at build, so a wrong reference never
    marks correct cells WRONG)."""
    rng = np.random.default_rng(1)
    for k, (p, g) in enumerate(zip(params, grads)):
        for i in rng.choice(p.size, min(P9_FD_PER_PARAM, p.size), replace=False):
            h = 1e-3 * max(1.0, abs(p.flat[i]))

            def at(s):
                moved = [q.copy() for q in params]
                moved[k].flat[i] += s * h
                return p9_loss(*moved, X, y)
            fd = (8 * (at(1) - at(-1)) - (at(2) - at(-2))) / (12 * h)
            if abs(fd - g.flat[i]) > 1e-7 * max(1.0, abs(fd)):
                raise AssertionError(f"P9 hand gradient of parameter {k} at {i}: "
                                     f"{g.flat[i]!r} != central difference {fd!r}")


def build_p9(quick):
    X, y, params = p9_data()
    ref = p9_grad_hand(*params, X, y)
    p9_check_hand_gradient(params, X, y, ref)
    f = lambda W1, b1, W2, b2: p9_loss(W1, b1, W2, b2, X, y)
    tape_size = {}                  # backend -> (n_ops, nbytes) of the recorded tape

    def record(backend):
        t = pyad.trace(f, *params, backend=backend)
        tape_size[backend] = (t.n_ops, t.nbytes)
        return t

    def python_affordable():
        if "c" not in tape_size:
            record("c").close()
        n_ops = tape_size["c"][0]
        if n_ops > P9_PYTHON_MAX_OPS:
            raise Skipped(f"skipped (too slow: the tape has {n_ops:,} rows; pyad-python "
                          f"runs up to {P9_PYTHON_MAX_OPS:,})")

    def traced(backend):
        if backend == "python":
            python_affordable()
        g = pyad.grad(f, argnums=(0, 1, 2, 3), backend=backend)
        return lambda: g(*params)

    def replay(backend):
        if backend == "python":
            python_affordable()
        t = record(backend)
        return lambda: t.gradient(*params)

    def size_note(backend):
        n_ops, nbytes = tape_size.get(backend, (None, None))
        return "" if n_ops is None else f"tape: {n_ops:,} ops, {nbytes / 1e6:.3g} MB"

    hand = Cell("numpy (hand)", lambda: (lambda: p9_grad_hand(*params, X, y)))
    traced_cells = pyad_cells(traced) + [hand]
    replay_cells = pyad_cells(replay, note_for_backend=size_note) + [hand]
    if autograd is not None:
        traced_cells.append(Cell("autograd", lambda: (
            lambda g=autograd.grad(lambda *p: p9_loss(*p, X, y, agnp), argnum=(0, 1, 2, 3)):
            g(*params))))
    if jax is not None:
        Xj, yj = jnp.asarray(X), jnp.asarray(y)
        pj = tuple(jnp.asarray(p) for p in params)
        fj = lambda *p: p9_loss(*p, Xj, yj, jnp)
        traced_cells.append(Cell("jax", lambda: (
            lambda g=jax.grad(fj, argnums=(0, 1, 2, 3)): jax_ready(g(*pj)))))
        replay_cells.append(Cell("jax.jit", lambda: (
            lambda g=jax.jit(jax.grad(fj, argnums=(0, 1, 2, 3))): jax_ready(g(*pj)))))
    if torch is not None:
        Xt, yt = t64(X), t64(y)
        pt = tuple(t64(p) for p in params)

        def tg():
            def run():
                p = tuple(q.clone().requires_grad_(True) for q in pt)
                return torch.autograd.grad(p9_loss(*p, Xt, yt, TorchNS), p)
            return run
        traced_cells.append(Cell("torch", tg))
    name = f"MLP gradient {P9_BATCH}x{P9_IN}->{P9_HIDDEN}->1"
    return [Task("P9", f"{name}, traced", ref, traced_cells, rtol=1e-10),
            Task("P9", f"{name}, replayed", ref, replay_cells, rtol=1e-10)]


# ==========================================================================
# P10  Gaussian-process negative log-likelihood (n = 200, squared exponential)
# ==========================================================================
#
#   K = s exp(-D / (2 l^2)) + noise I,   D_ij = (x_i - x_j)^2
#   nll(l, s, noise) = 0.5 yᵀ K⁻¹ y + 0.5 log det K,   via K = L Lᵀ:
#                    = 0.5 |L⁻¹ y|² + sum(log diag L)
#
# The reference gradient is the trace formula, by hand:
#   d nll / dθ = 0.5 tr(K⁻¹ dK/dθ) − 0.5 αᵀ (dK/dθ) α,   α = K⁻¹ y.

P10_N = 200
P10_THETA = np.array([1.3, 0.8, 0.1])   # length scale, signal variance, noise variance
P10_FD_H = 1e-5


def p10_data():
    rng = np.random.default_rng(0)
    x = np.sort(rng.uniform(0.0, 10.0, P10_N))
    y = np.sin(x) + 0.1 * rng.standard_normal(P10_N)
    return (x[:, None] - x[None, :]) ** 2, y


def p10_nll(theta, D, y, xp=np, cholesky=np.linalg.cholesky, solve_lower=None):
    """The NLL in any numpy-like namespace; solve_lower(L, y) = L⁻¹ y."""
    ell, s, noise = theta[0], theta[1], theta[2]
    K = s * xp.exp(-D / (2.0 * ell * ell)) + noise * xp.eye(D.shape[0])
    L = cholesky(K)
    a = solve_lower(L, y)
    return 0.5 * xp.sum(a * a) + xp.sum(xp.log(xp.diagonal(L, 0, -1, -2)))  # autograd: these axes


def p10_pyad(theta, D, y):
    return p10_nll(theta, D, y, solve_lower=lambda L, b: pyad.linalg.solve_triangular(
        L, b, lower=True))


def p10_grad_hand(theta, D, y):
    """The trace formula with one Cholesky factorisation and K⁻¹ from it."""
    import scipy.linalg
    ell, s, noise = theta
    E = np.exp(-D / (2.0 * ell * ell))
    K = s * E + noise * np.eye(D.shape[0])
    c = scipy.linalg.cho_factor(K, lower=True)
    Kinv = scipy.linalg.cho_solve(c, np.eye(D.shape[0]))
    alpha = Kinv @ y
    W = Kinv - np.outer(alpha, alpha)          # 0.5 tr(W dK) for each dK (all symmetric)
    dK = (s * E * D / ell ** 3, E)
    return np.array([0.5 * np.sum(W * dK[0]), 0.5 * np.sum(W * dK[1]), 0.5 * np.trace(W)])


def p10_check_hand_gradient(D, y, g):
    """Raise unless the hand gradient matches 4th-order central differences (at
    build, so a wrong reference never marks correct cells WRONG)."""
    f = lambda t: p10_nll(t, D, y, solve_lower=lambda L, b: np.linalg.solve(L, b))
    for i in range(3):
        h = 1e-4

        def at(k):
            t = P10_THETA.copy()
            t[i] += k * h
            return f(t)
        fd = (8 * (at(1) - at(-1)) - (at(2) - at(-2))) / (12 * h)
        if abs(fd - g[i]) > 1e-7 * max(1.0, abs(fd)):
            raise AssertionError(f"P10 hand gradient {i}: {g[i]!r} != central difference {fd!r}")


def p10_hessian_fd(D, y):
    """Central differences of the hand gradient: the Hessian's reference."""
    cols = []
    for i in range(3):
        e = np.zeros(3)
        e[i] = P10_FD_H
        cols.append((p10_grad_hand(P10_THETA + e, D, y) - p10_grad_hand(P10_THETA - e, D, y))
                    / (2 * P10_FD_H))
    H = np.array(cols)
    return 0.5 * (H + H.T)


def build_p10(quick):
    D, y = p10_data()
    theta = P10_THETA.copy()
    ref = p10_grad_hand(theta, D, y)
    p10_check_hand_gradient(D, y, ref)
    H_ref = p10_hessian_fd(D, y)
    f = lambda t: p10_pyad(t, D, y)

    def traced(backend):
        g = pyad.grad(f, backend=backend)
        return lambda: g(theta)

    def replay(backend):
        t = pyad.trace(f, theta, backend=backend)
        return lambda: t.gradient(theta)

    def hessian(backend):
        t = pyad.trace(f, theta, backend=backend)
        return lambda: t.hessian(theta)

    hand = Cell("numpy (hand)", lambda: (lambda: p10_grad_hand(theta, D, y)))
    traced_cells = pyad_cells(traced) + [hand]
    replay_cells = pyad_cells(replay) + [hand]
    hess_cells = pyad_cells(hessian)
    if autograd is not None:
        import autograd.scipy.linalg as asl
        fa = lambda t: p10_nll(t, D, y, agnp, agnp.linalg.cholesky,
                               lambda L, b: asl.solve_triangular(L, b, lower=True))
        traced_cells.append(Cell("autograd", lambda: (lambda g=autograd.grad(fa): g(theta))))
        hess_cells.append(Cell("autograd", lambda: (lambda h=ag_hessian(fa): h(theta))))
    if jax is not None:
        import jax.scipy.linalg as jsl
        Dj, yj, tj = jnp.asarray(D), jnp.asarray(y), jnp.asarray(theta)
        fj = lambda t: p10_nll(t, Dj, yj, jnp, jnp.linalg.cholesky,
                               lambda L, b: jsl.solve_triangular(L, b, lower=True))
        traced_cells.append(Cell("jax", lambda: (lambda g=jax.grad(fj): jax_ready(g(tj)))))
        replay_cells.append(Cell("jax.jit", lambda: (
            lambda g=jax.jit(jax.grad(fj)): jax_ready(g(tj)))))
        hess_cells.append(Cell("jax.jit", lambda: (
            lambda h=jax.jit(jax.hessian(fj)): jax_ready(h(tj)))))
    if torch is not None:
        Dt, yt, tt = t64(D), t64(y), t64(theta)
        ft = lambda t: p10_nll(t, Dt, yt, torch, torch.linalg.cholesky,
                               lambda L, b: torch.linalg.solve_triangular(
                                   L, b[:, None], upper=False)[:, 0])

        def tg():
            def run():
                v = tt.clone().requires_grad_(True)
                return torch.autograd.grad(ft(v), v)[0]
            return run
        traced_cells.append(Cell("torch", tg))
        hess_cells.append(Cell("torch", lambda: (
            lambda: torch.autograd.functional.hessian(ft, tt))))
    name = f"GP NLL n={P10_N}, 3 hyperparameters"
    return [Task("P10", f"{name}: gradient, traced", ref, traced_cells, rtol=1e-9),
            Task("P10", f"{name}: gradient, replayed", ref, replay_cells, rtol=1e-9),
            Task("P10", f"{name}: Hessian, replayed (vs differences of the gradient)", H_ref,
                 hess_cells, rtol=1e-6)]


# --------------------------------------------------------------------------

PROBLEMS = [
    Problem("P1", "tiny scalar function f(a, b, c), gradient per call", build_p1),
    Problem("P2", "Rosenbrock, vectorised numpy code", build_p2),
    Problem("P3", "Lorenz-63 RK4, 1000 steps, scalar code, gradient w.r.t. 6 numbers", build_p3),
    Problem("P4", "dense Hessian of logsumexp(A x) + x.x/2, n = 100", build_p4),
    Problem("P5", "Jacobian of a tridiagonal operator, n = 1000", build_p5),
    Problem("P6", "P1's gradient at 100,000 points", build_p6),
    Problem("P7", "logistic regression gradient, X 1000x100", build_p7),
    Problem("P8", "ADBench GMM objective gradient, d=2 k=5 n=1000", build_p8),
    Problem("P9", "MLP loss gradient, X 256x200, tanh hidden layer of 64, w.r.t. (W1, b1, W2, b2)",
            build_p9),
    Problem("P10", "Gaussian-process NLL via Cholesky, n = 200, gradient and Hessian w.r.t. "
                   "3 hyperparameters", build_p10),
]

CLASSIC_EXAMPLES = [
    # (description, f on an array, point, expected gradient)
    ("y = ln(x1) + x1*x2 - sin(x2) at (2, 5)",
     lambda x: pyad.log(x[0]) + x[0] * x[1] - pyad.sin(x[1]), (2.0, 5.0),
     (5.5, 2.0 - math.cos(5.0))),
    ("d = a*(a + b) at (4, 3)", lambda x: x[0] * (x[0] + x[1]), (4.0, 3.0), (11.0, 4.0)),
]
