"""Timing helpers shared by the runner and the targets."""
import statistics
import time


def measure(fn, budget, min_reps=3, max_samples=2000):
    """Median and minimum seconds per call of fn (already warmed up).

    Calls are grouped so one sample lasts at least ~1 ms (timer noise), and
    samples are taken until `budget` seconds have passed and at least
    `min_reps` samples exist.
    """
    t0 = time.perf_counter()
    fn()
    single = time.perf_counter() - t0
    number = 1 if single >= 1e-3 else max(1, min(10_000, int(1e-3 / max(single, 1e-8))))
    samples = [single] if number == 1 else []
    start = time.perf_counter()
    while True:
        if (len(samples) >= min_reps and time.perf_counter() - start >= budget) \
                or len(samples) >= max_samples:
            break
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number)
    return statistics.median(samples), min(samples), len(samples) * number


def fmt_time(t):
    if t is None:
        return ""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if t >= scale or unit == "ns":
            v = t / scale
            return f"{v:.3g} {unit}" if v < 1000 else f"{v:.0f} {unit}"
    return str(t)
