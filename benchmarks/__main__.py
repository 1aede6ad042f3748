"""`python -m benchmarks [--quick] [--only P1,P3] [--plot out.png]`: the runner."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import run  # noqa: E402

sys.exit(run.main())
