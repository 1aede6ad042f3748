"""The C core's own driver, tests/c/run.sh: every primitive of the table, every
sweep and every error path of csrc/pyad.h, called from C, under AddressSanitizer
and UndefinedBehaviorSanitizer, then under valgrind when it is installed."""
import os
import re
import subprocess
import sys
from pathlib import Path

RUN_SH = Path(__file__).resolve().parent / "c" / "run.sh"


def test_c_driver_passes_under_sanitizers_and_valgrind():
    # The driver builds its own sanitized binary: a preloaded libasan (as in
    # .ci/sanitize.sh) must not leak into gcc, valgrind or the driver.
    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS")}
    env["PYTHON"] = sys.executable  # the interpreter whose scipy_openblas32 the core links
    proc = subprocess.run(["bash", str(RUN_SH)], capture_output=True, text=True, env=env,
                          timeout=900)
    report = (proc.stdout + proc.stderr)[-12000:]
    totals = re.findall(r"^(\d+) passed, (\d+) failed$", proc.stdout, re.MULTILINE)
    assert totals, f"the driver printed no closing 'N passed, M failed' line:\n{report}"
    for n_passed, n_failed in totals:
        assert int(n_passed) > 1000 and int(n_failed) == 0, report
    assert proc.returncode == 0, report
