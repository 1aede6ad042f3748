"""The speed targets of pyad's issues, measured in the same run as the table.

Each line reads `target: measured (PASS/MISS)`. A number already in the table
(same problem, task and system) is reused; anything else is measured here with
the runner's timer. Lines whose feature is not built yet say n/a.
"""
import gc
import json
import os
import subprocess
import sys

import numpy as np

import problems
import pyad
from timing import fmt_time, measure

P3_RECORD = "record (1000 RK4 steps)"
P3_REPLAY = "gradient, replayed from one tape"
P1_REPLAY = "grad, replayed from one tape"
ROSEN_N = 100_000          # Issue 3 / Issue 5: the big Rosenbrock
SCALAR_LOOP_N = 10_000     # Issue 3: element-by-element recording is measured here
RSS_N = 10_000_000         # Issue 13: Rosenbrock size whose gradient's peak RSS is measured
RSS_TARGET = 1.5e9         # bytes
RSS_ADDRESS_LIMIT = 8 << 30  # the child's address-space cap, so a runaway tape fails cleanly
RSS_TIMEOUT_S = 600
PEER_MODULES = ("autograd", "jax", "torch", "casadi")


class Measurements:
    """Looks a number up in the table's results, else measures it (and remembers it)."""

    def __init__(self, results, budget):
        self.budget = budget
        self.known = {}
        for r in results:
            if r.status == "ok":
                self.known[(r.task.problem, r.task.name, r.cell.label)] = r.median
        self.failed = {}

    def get(self, key, make):
        """Median seconds per call of make()'s callable, or None if it failed."""
        if key in self.known:
            return self.known[key]
        if key in self.failed:
            return None
        gc.collect()
        try:
            fn = make()
            fn()                                  # warm-up
            med, _, _ = measure(fn, self.budget, min_reps=3)
        except Exception as e:
            self.failed[key] = f"{type(e).__name__}: {e}"
            return None
        self.known[key] = med
        return med


def verdict(ok):
    return "PASS" if ok else "MISS"


def _line(target, measured, ok):
    if ok is None:
        return f"- {target}: {measured}"
    return f"- {target}: {measured} ({verdict(ok)})"


def _ratio(a, b):
    return a / b if a is not None and b else None


def issue2(m):
    f, start = problems.lorenz_loss, problems.P3_START
    x = np.array(start)
    out = ["### Issue 2: scalar programs (P3 Lorenz, 1000 RK4 steps)"]
    tapes = {}
    for be in ("c", "python"):
        try:
            tapes[be] = pyad.trace(f, *start, backend=be)
        except Exception as e:
            out.append(f"- could not record P3 with backend {be!r}: {type(e).__name__}: {e}")
            return out, {}
    n_ops = {be: t.n_ops for be, t in tapes.items()}

    def rec(be):
        return lambda: (lambda: pyad.trace(f, *start, backend=be).close())
    label = {"c": "pyad-C", "python": "pyad-python"}
    rec_t = {be: m.get(("P3", P3_RECORD, label[be]), rec(be)) for be in tapes}
    per_op = {be: (rec_t[be] / n_ops[be] if rec_t[be] else None) for be in tapes}
    if None in per_op.values():
        out.append(_line("recording cost per primitive, C ≤ 400 ns/op and ≤ Python's",
                         "not measured", None))
    else:
        ok = per_op["c"] <= 400e-9 and per_op["c"] <= per_op["python"]
        out.append(_line("recording cost per primitive, C ≤ 400 ns/op and ≤ Python's",
                         f"C {per_op['c'] * 1e9:.0f} ns/op, Python {per_op['python'] * 1e9:.0f} "
                         f"ns/op ({n_ops['c']:,} ops)", ok))

    def replay(be):
        return lambda: (lambda t=tapes[be]: t.gradient(x))
    rep = {be: m.get(("P3", P3_REPLAY, label[be]), replay(be)) for be in tapes}
    r = _ratio(rep["python"], rep["c"])
    out.append(_line("Lorenz gradient replay, C vs Python ≥ 100x",
                     f"{r:.0f}x (C {fmt_time(rep['c'])}, Python {fmt_time(rep['python'])})"
                     if r else "not measured", (r >= 100) if r else None))
    t = tapes["c"]
    bpo = t.nbytes / t.n_ops
    out.append(_line("tape.nbytes / tape.n_ops ≤ 32", f"{bpo:.1f} bytes/op "
                     f"({t.nbytes:,} bytes, {t.n_ops:,} ops)", bpo <= 32))
    for t in tapes.values():
        t.close()
    return out, rep


def issue3(m):
    n = ROSEN_N
    x = problems.p2_x0(n)
    f = problems.rosenbrock
    out = [f"### Issue 3: vectorised recording (P2 Rosenbrock, n = {n:,})"]
    try:
        tape = pyad.trace(f, x)
    except Exception as e:
        return out + [f"- could not record: {type(e).__name__}: {e}"], {}
    rec = m.get(("P2", f"record n={n:,}", "pyad-C"),
                lambda: (lambda: pyad.trace(f, x).close()))
    # an element-op is a slot (a block row of w elements defines w slots)
    vec_per_op = rec / tape.n_slots if rec else None
    out.append(_line("recording, C: ns per recorded element-op ≤ 25",
                     f"{vec_per_op * 1e9:.1f} ns/op ({tape.n_slots:,} element-ops in "
                     f"{tape.n_ops:,} rows, {fmt_time(rec)})"
                     if vec_per_op else "not measured",
                     (vec_per_op <= 25e-9) if vec_per_op else None))

    # element by element with active scalars, at a smaller n, per op
    xs_small = problems.p2_x0(SCALAR_LOOP_N)

    def scalar_record():
        with pyad.Tape() as t:
            xs = list(t.input(xs_small))      # one input call; then active Scalars
            t.output(rosenbrock_scalar(xs))
        return t

    try:
        probe = scalar_record()
        scalar_ops = probe.n_slots
        want = float(problems.rosenbrock(xs_small))
        got = float(np.asarray(probe()).ravel()[0])
        probe.close()
        if abs(got - want) > 1e-9 * abs(want):
            raise ValueError(f"scalar-loop value {got} != {want}")
        st = m.get(("issue3", "scalar loop", "pyad-C"), lambda: (lambda: scalar_record().close()))
    except Exception as e:
        st, scalar_ops = None, 0
        out.append(f"- element-by-element recording failed: {type(e).__name__}: {e}")
    if st and vec_per_op:
        sp = st / scalar_ops / vec_per_op
        out.append(_line(f"vectorised vs element-by-element active scalars (n = "
                         f"{SCALAR_LOOP_N:,}, per op) ≥ 20x",
                         f"{sp:.1f}x (scalar loop {st / scalar_ops * 1e9:.0f} ns/op, "
                         f"{scalar_ops:,} ops)", sp >= 20))
    val = m.get(("P2", f"value n={n:,}", "pyad-C"), lambda: (lambda: tape(x)))
    grad = m.get(("P2", f"gradient n={n:,}", "pyad-C"), lambda: (lambda: tape.gradient(x)))
    hand = m.get(("P2", f"gradient n={n:,}", "numpy (hand)"),
                 lambda: (lambda: problems.rosenbrock_grad_hand(x)))
    r = _ratio(grad, val)
    out.append(_line("gradient replay / value replay ≤ 3",
                     f"{r:.2f} (gradient {fmt_time(grad)}, value {fmt_time(val)})"
                     if r else "not measured", (r <= 3) if r else None))
    r2 = _ratio(grad, hand)
    out.append(_line("gradient replay vs hand-written numpy gradient within 10x",
                     f"{r2:.1f}x (numpy {fmt_time(hand)})" if r2 else "not measured",
                     (r2 <= 10) if r2 else None))
    tape.close()
    return out, {"grad": grad, "hand": hand}


def issue4(m, selected):
    """HVP vs gradient (P2 n = 100,000) and the dense Hessian (P4) in gradient-equivalents."""
    out = ["### Issue 4: second order (P2 Rosenbrock n = 100,000; P4 Hessian n = 100)"]
    if "P2" in selected:
        n = ROSEN_N
        x = problems.p2_x0(n)
        tape = pyad.trace(problems.rosenbrock, x)
        v = np.ones_like(x)
        grad = m.get(("P2", f"gradient n={n:,}", "pyad-C"), lambda: (lambda: tape.gradient(x)))
        hvp = m.get(("P2", f"hvp n={n:,}", "pyad-C"), lambda: (lambda: tape.hvp(x, v)))
        r = _ratio(hvp, grad)
        out.append(_line("HVP ≤ 5x one gradient replay",
                         f"{r:.2f}x (hvp {fmt_time(hvp)}, gradient {fmt_time(grad)})"
                         if r else "not measured", (r <= 5) if r else None))
        tape.close()
    if "P4" in selected:
        A, x = problems.p4_data()
        tape = pyad.trace(lambda x: problems.p4_f(x, A), x)
        grad = m.get(("issue4", "P4 gradient", "pyad-C"), lambda: (lambda: tape.gradient(x)))
        hess = m.get(("P4", "hessian 100x100, replayed", "pyad-C"),
                     lambda: (lambda: tape.hessian(x)))
        r = _ratio(hess, grad)
        out.append(_line(f"dense Hessian ≤ 2n = {2 * problems.P4_N} gradient-equivalents",
                         f"{r:.0f} (hessian {fmt_time(hess)}, gradient {fmt_time(grad)})"
                         if r else "not measured", (r <= 2 * problems.P4_N) if r else None))
        tape.close()
    return out


def rosenbrock_scalar(xs):
    """Rosenbrock element by element: the same 8 primitives per element as the
    vectorised form (square, sub, square, mul_c, rsub_c, square, add, sum)."""
    s = 0.0
    for i in range(len(xs) - 1):
        a = xs[i]
        t = xs[i + 1] - a ** 2
        u = 1.0 - a
        s = s + (100.0 * t ** 2 + u ** 2)
    return s


def issue5(m, selected, p3_replay, p2):
    out = ["### Issue 5: replay latency and throughput"]
    if "P1" in selected:
        x = np.array(problems.P1_POINT)

        def make():
            t = pyad.trace(problems.p1_f, *problems.P1_POINT)
            return lambda: t.gradient(x)
        t1 = m.get(("P1", P1_REPLAY, "pyad-C"), make)
        out.append(_line("P1 replayed gradient per call ≤ 3 µs", fmt_time(t1) if t1 else
                         "not measured", (t1 <= 3e-6) if t1 else None))
    if "P3" in selected and p3_replay:
        r = _ratio(p3_replay.get("python"), p3_replay.get("c"))
        out.append(_line("P3 gradient replay, C vs Python ≥ 100x",
                         f"{r:.0f}x" if r else "not measured", (r >= 100) if r else None))
    if "P2" in selected and p2:
        r = _ratio(p2.get("grad"), p2.get("hand"))
        out.append(_line(f"P2 n = {ROSEN_N:,} gradient replay vs numpy (hand) within 10x",
                         f"{r:.1f}x" if r else "not measured", (r <= 10) if r else None))
    if "P6" in selected:
        X = problems.p6_points()
        try:
            t = pyad.trace(problems.p1_vec, X[0])
            t.gradient(X[:2], batch=True)
            have = True
        except (AttributeError, TypeError, NotImplementedError):
            have = False
        if not have:
            out.append("- P6 batched gradient per point ≤ 30 ns: n/a (tape.gradient(X, "
                       "batch=True) not implemented)")
        else:
            tb = m.get(("P6", f"grad at {problems.P6_N:,} points (batch)", "pyad-C"),
                       lambda: (lambda: t.gradient(X, batch=True)))
            per = tb / problems.P6_N if tb else None
            out.append(_line("P6 batched gradient per point ≤ 30 ns",
                             fmt_time(per) if per else "not measured",
                             (per <= 30e-9) if per else None))
    return out


# --------------------------------------------------------------------------
# Issue 13: array rows
# --------------------------------------------------------------------------

def _ratio_line(target, num, den, limit, num_label, den_label):
    """One `a / b <= limit` target line from two medians (None: not measured)."""
    r = _ratio(num, den)
    if r is None:
        missing = num_label if num is None else den_label
        return _line(target, f"not measured ({missing} has no time)", None)
    return _line(target, f"{r:.2f}x ({num_label} {fmt_time(num)}, {den_label} "
                         f"{fmt_time(den)})", r <= limit)


def _peer_line(target, pyad_t, peer, peer_t, limit=1.0):
    if peer_t is None:
        why = ("not installed" if peer in problems.ABSENT else "no time in this run")
        return _line(target, f"not measured ({peer} {why})", None)
    return _ratio_line(target, pyad_t, peer_t, limit, "pyad-C", peer)


def issue13_p2(m):
    n = ROSEN_N
    x = problems.p2_x0(n)
    v = np.ones_like(x)
    f = problems.rosenbrock
    out = [f"#### P2 Rosenbrock, n = {n:,}"]
    try:
        tape = pyad.trace(f, x)
    except Exception as e:
        return out + [f"- could not record: {type(e).__name__}: {e}"]
    task = lambda kind: ("P2", f"{kind} n={n:,}")
    grad = m.get(task("gradient") + ("pyad-C",), lambda: (lambda: tape.gradient(x)))
    grad_np = m.get(task("gradient") + ("numpy (hand)",),
                    lambda: (lambda: problems.rosenbrock_grad_hand(x)))
    out.append(_ratio_line("gradient replay / numpy by hand ≤ 2x", grad, grad_np, 2.0,
                           "pyad-C", "numpy"))
    torch_grad = None
    if problems.torch is not None:
        def torch_gradient():
            xt = problems.t64(x)

            def run():
                z = xt.clone().requires_grad_(True)
                return problems.torch.autograd.grad(f(z, problems.TorchNS), z)[0]
            return run
        torch_grad = m.get(task("gradient") + ("torch",), torch_gradient)
    out.append(_peer_line("gradient replay faster than torch", grad, "torch", torch_grad,
                          limit=1.0))
    hvp = m.get(task("hvp") + ("pyad-C",), lambda: (lambda: tape.hvp(x, v)))
    hvp_np = m.get(task("hvp") + ("numpy (hand)",),
                   lambda: (lambda: problems.rosenbrock_hvp_hand(x, v)))
    out.append(_ratio_line("HVP / numpy by hand ≤ 2x", hvp, hvp_np, 2.0, "pyad-C", "numpy"))
    rec = m.get(task("record") + ("pyad-C",), lambda: (lambda: pyad.trace(f, x).close()))
    value_np = m.get(task("value") + ("numpy (hand)",), lambda: (lambda: f(x)))
    out.append(_ratio_line("recording (pyad.trace) / one numpy evaluation of f ≤ 2x", rec,
                           value_np, 2.0, "pyad.trace", "numpy f(x)"))
    per_element = tape.nbytes / n
    out.append(_line("tape.nbytes per element ≤ 80 B", f"{per_element:.0f} B ({tape.nbytes:,} "
                     f"bytes, {tape.n_ops:,} ops)", per_element <= 80))
    tape.close()
    return out


def issue13_p7(m):
    X, y, w = problems.p7_data()
    f = lambda v: problems.p7_loss(v, X, y)
    out = ["#### P7 logistic regression, X 1000x100"]
    replayed = ("P7", "gradient 1000x100, replayed")
    traced = ("P7", "gradient 1000x100, traced")

    def replay():
        t = pyad.trace(f, w)
        return lambda: t.gradient(w)
    rep = m.get(replayed + ("pyad-C",), replay)
    rep_np = m.get(replayed + ("numpy (hand)",),
                   lambda: (lambda: problems.p7_grad_hand(w, X, y)))
    out.append(_ratio_line("gradient replay / numpy by hand ≤ 1.5x", rep, rep_np, 1.5,
                           "pyad-C", "numpy"))
    per_call = m.get(traced + ("pyad-C",), lambda: (lambda g=pyad.grad(f): g(w)))
    ag = None
    if problems.autograd is not None:
        ag = m.get(traced + ("autograd",), lambda: (
            lambda g=problems.autograd.grad(
                lambda v: problems.p7_loss(v, X, y, problems.agnp)): g(w)))
    out.append(_peer_line("pyad.grad per call / autograd ≤ 1x", per_call, "autograd", ag))
    return out


def issue13_p9(m):
    X, y, params = problems.p9_data()
    f = lambda *p: problems.p9_loss(*p, X, y)
    name = f"MLP gradient {problems.P9_BATCH}x{problems.P9_IN}->{problems.P9_HIDDEN}->1"
    out = [f"#### P9 {name}"]
    try:
        tape = pyad.trace(f, *params)
    except Exception as e:
        return out + [f"- could not record: {type(e).__name__}: {e}"]
    replayed, traced = ("P9", f"{name}, replayed"), ("P9", f"{name}, traced")
    rep = m.get(replayed + ("pyad-C",), lambda: (lambda: tape.gradient(*params)))
    rep_np = m.get(replayed + ("numpy (hand)",),
                   lambda: (lambda: problems.p9_grad_hand(*params, X, y)))
    out.append(_ratio_line("gradient replay / numpy by hand ≤ 1.5x", rep, rep_np, 1.5,
                           "pyad-C", "numpy"))
    per_call = m.get(traced + ("pyad-C",),
                     lambda: (lambda g=pyad.grad(f, argnums=(0, 1, 2, 3)): g(*params)))
    for peer in ("torch", "autograd"):
        # the peers' cells live in the table; they are not re-created here
        peer_t = m.known.get(traced + (peer,))
        out.append(_peer_line(f"pyad.grad per call / {peer} ≤ 1x", per_call, peer, peer_t))
    out.append(_line("tape.nbytes ≤ 2 MB", f"{tape.nbytes / 1e6:.3g} MB ({tape.nbytes:,} bytes, "
                     f"{tape.n_ops:,} ops)", tape.nbytes <= 2e6))
    tape.close()
    return out


def issue15_p10(m):
    """Issue 15's P10 targets: gradient replay within 2x of the hand-written numpy
    trace formula, pyad.grad per call faster than torch and autograd, and the
    Hessian exact (against central differences of the gradient)."""
    D, y = problems.p10_data()
    theta = problems.P10_THETA.copy()
    f = lambda t: problems.p10_pyad(t, D, y)
    name = f"GP NLL n={problems.P10_N}, 3 hyperparameters"
    out = [f"### Issue 15: linear algebra (P10 {name})"]
    try:
        tape = pyad.trace(f, theta)
    except Exception as e:
        return out + [f"- could not record: {type(e).__name__}: {e}"]
    replayed, traced = ("P10", f"{name}: gradient, replayed"), ("P10", f"{name}: gradient, traced")
    rep = m.get(replayed + ("pyad-C",), lambda: (lambda: tape.gradient(theta)))
    rep_np = m.get(replayed + ("numpy (hand)",),
                   lambda: (lambda: problems.p10_grad_hand(theta, D, y)))
    out.append(_ratio_line("gradient replay / numpy trace formula ≤ 2x", rep, rep_np, 2.0,
                           "pyad-C", "numpy"))
    per_call = m.get(traced + ("pyad-C",), lambda: (lambda g=pyad.grad(f): g(theta)))
    for peer in ("torch", "autograd"):
        peer_t = m.known.get(traced + (peer,))
        out.append(_peer_line(f"pyad.grad per call / {peer} ≤ 1x", per_call, peer, peer_t))
    H = tape.hessian(theta)
    H_fd = problems.p10_hessian_fd(D, y)
    err = np.max(np.abs(H - H_fd)) / np.max(np.abs(H_fd))
    out.append(_line("Hessian vs central differences of the gradient (h = "
                     f"{problems.P10_FD_H:g}) ≤ 1e-6 relative", f"{err:.2g}; symmetric to "
                     f"{np.max(np.abs(H - H.T)):.1g}", err <= 1e-6))
    tape.close()
    return out


def _peak_rss():
    """(bytes, source): this process's peak resident set size.

    Linux's getrusage ru_maxrss survives execve, so in a child it starts at the
    parent's RSS at fork (the runner's, ~1 GB with the peers loaded); VmHWM
    belongs to the process's own address space and starts from zero at exec.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024, "VmHWM"
    except OSError:
        pass
    import resource
    scale = 1 if sys.platform == "darwin" else 1024      # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale, "getrusage"


def _peak_rss_child(n):
    """Run in a fresh process: the gradient of Rosenbrock at size n; prints JSON figures."""
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (RSS_ADDRESS_LIMIT, RSS_ADDRESS_LIMIT))
    x = problems.p2_x0(n)
    before, _ = _peak_rss()
    g = pyad.grad(problems.rosenbrock)(x)
    peak, source = _peak_rss()
    # checked after reading the peak, so the check's own arrays are not counted
    want = problems.rosenbrock_grad_hand(x)
    err = float(np.max(np.abs(g - want)) / np.max(np.abs(want)))
    print(json.dumps({"before": before, "peak": peak, "source": source, "rel_err": err}))


def issue13_rss():
    """Peak RSS of Rosenbrock n = 1e7's gradient, measured in a fresh process."""
    target = (f"Rosenbrock n = {RSS_N:,} gradient (pyad.grad): peak RSS ≤ "
              f"{RSS_TARGET / 1e9:.1f} GB")
    here = os.path.dirname(os.path.abspath(__file__))
    # The peers are made unimportable in the child: torch or jax loaded by
    # problems.py would add hundreds of MB that are not pyad's.
    child = (f"import sys; sys.path.insert(0, {here!r})\n"
             f"for peer in {PEER_MODULES!r}: sys.modules[peer] = None\n"
             f"import targets; targets._peak_rss_child({RSS_N})")
    try:
        proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                              timeout=RSS_TIMEOUT_S, cwd=here)
    except subprocess.TimeoutExpired:
        return _line(target, f"not measured (took over {RSS_TIMEOUT_S} s)", None)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return _line(target, f"failed under a {RSS_ADDRESS_LIMIT >> 30} GiB address-space cap "
                             f"(exit {proc.returncode}: {tail[:120]})", False)
    fig = json.loads(proc.stdout.strip().splitlines()[-1])
    if fig["rel_err"] > 1e-12:
        return _line(target, f"WRONG gradient (relative error {fig['rel_err']:.3g})", False)
    return _line(target, f"{fig['peak'] / 1e9:.2f} GB ({fig['source']}; before pyad.grad: "
                         f"{fig['before'] / 1e9:.2f} GB)", fig["peak"] <= RSS_TARGET)


def issue13(m, selected, quick):
    out = ["### Issue 13: array rows (ratios of medians in this run)"]
    if "P2" in selected:
        out += issue13_p2(m)
    if "P7" in selected:
        out += issue13_p7(m)
    if "P9" in selected:
        out += issue13_p9(m)
    if "P2" in selected:
        out.append("#### memory")
        out.append(issue13_rss() if not quick else
                   f"- Rosenbrock n = {RSS_N:,} gradient peak RSS: not measured in --quick")
    return out


def report(results, selected, quick, budget):
    """The targets section, as lines of text."""
    m = Measurements(results, budget)
    lines = ["## Issue targets (target: measured)", ""]
    p3_replay, p2 = {}, {}
    if "P3" in selected:
        block, p3_replay = issue2(m)
        lines += block + [""]
    if "P2" in selected:
        block, p2 = issue3(m)
        lines += block + [""]
    if "P2" in selected or "P4" in selected:
        lines += issue4(m, selected) + [""]
    if any(p in selected for p in ("P1", "P2", "P3", "P6")):
        lines += issue5(m, selected, p3_replay, p2) + [""]
    if any(p in selected for p in ("P2", "P7", "P9")):
        lines += issue13(m, selected, quick)
    if "P10" in selected:
        lines += [""] + issue15_p10(m)
    for key, why in m.failed.items():
        lines.append(f"- (could not measure {key}: {why})")
    return lines

