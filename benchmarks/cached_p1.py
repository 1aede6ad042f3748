"""P1's gradient per call through the cached transform (pyad.grad(..., cache=True),
i.e. pyad.jit) next to jax.jit(jax.grad) when JAX is installed: medians of 21
interleaved rounds in one process.

    python benchmarks/cached_p1.py
"""
import os
import statistics
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import problems as P  # noqa: E402

import pyad  # noqa: E402


def per_call(fn, n):
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n


def main():
    a, b, c = P.P1_POINT
    cells = {"pyad.grad(cache=True)": (pyad.grad(P.p1_f, argnums=(0, 1, 2), cache=True), 20000)}
    try:
        import jax
        import jax.numpy as jnp
        jax.config.update("jax_enable_x64", True)
        gj = jax.jit(jax.grad(lambda a, b, c: P.p1_f(a, b, c, xp=jnp), argnums=(0, 1, 2)))
        cells["jax.jit(jax.grad)"] = (lambda a, b, c: [x.block_until_ready()
                                                       for x in gj(a, b, c)], 5000)
    except ImportError:
        pass
    for fn, _ in cells.values():
        fn(a, b, c)
    times = {k: [] for k in cells}
    for _ in range(21):
        for k, (fn, n) in cells.items():
            times[k].append(per_call(lambda: fn(a, b, c), n))
    for k, ts in times.items():
        print(f"P1 gradient per call, {k}: {statistics.median(ts) * 1e6:.2f} µs")


if __name__ == "__main__":
    main()
