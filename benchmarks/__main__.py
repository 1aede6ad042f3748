"""`python -m benchmarks [--quick] [--only P1,P3] [--plot out.png] [--targets]`: the runner."""
import glob
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# `python -m benchmarks` from the repository root puts the root first on sys.path,
# where ./pyad is the source without its compiled parts (`pip install .` builds
# them into site-packages): measure the installed pyad, not fail on the source.
if not glob.glob(os.path.join(ROOT, "pyad", "_pyad_c*")):
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != ROOT]
sys.path.insert(0, HERE)

import run  # noqa: E402

sys.exit(run.main())
