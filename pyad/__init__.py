"""pyad: automatic differentiation on a compact Wengert tape in C.

    import pyad, numpy as np
    f = lambda x: np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
    pyad.grad(f)(np.zeros(5))            # gradient, traced and swept once
    tape = pyad.trace(f, np.zeros(5))    # record once ...
    tape.gradient(np.ones(5))            # ... replay at C speed
"""
import importlib.util as _util
import os as _os

# Imported from a source checkout that was never built (python run from the
# repository root finds ./pyad before the installed package), the compiled parts
# are missing: say what to do instead of a bare ModuleNotFoundError.
for _part in ("_pyad_c", "_speedups"):
    if _util.find_spec(f"{__name__}.{_part}") is None:
        raise ImportError(
            f"pyad's compiled part {__name__}.{_part} is not built in "
            f"{_os.path.dirname(__file__)} (a source checkout): build it there with "
            f"`pip install -e .`, or run Python from another folder so that the installed "
            f"pyad is imported")

from . import _openblas  # before the C core: it links against this OpenBLAS
from . import ops
from .array import Array, BoolArray
from .diagnostics import debug_nans
from .errors import (BranchError, CustomRuleError, MixedTapeError, PyadError, RepeatedEigenvalueError,
                     RetraceWarning, SingularMatrixError, TapeBusyError, TapeClosedError, TapeFormatError)
from .custom import custom_jvp, custom_vjp
from .functions import *  # noqa: F401,F403  (pyad.sin, pyad.exp, ..., pyad.where)
from .functions import __all__ as _function_names
from .scalar import Bool, Scalar
from .serialize import load, loads
from . import linalg
from .check import check_grads
from .optimize import least_squares, minimize, scipy_objective
from .tape import Tape
from .cached import jit
from . import linalg
from .transforms import grad, hessian, hvp, jacobian, jvp, trace, value_and_grad, vjp

__version__ = "0.1.0"

__all__ = ["Tape", "Scalar", "Bool", "Array", "BoolArray", "trace", "grad", "value_and_grad",
           "jvp", "vjp", "hvp", "jacobian", "hessian", "jit", "load", "loads", "debug_nans",
           "minimize", "scipy_objective", "least_squares", "check_grads", "custom_jvp", "custom_vjp",
           "CustomRuleError", "PyadError", "BranchError", "SingularMatrixError", "RepeatedEigenvalueError", "MixedTapeError", "TapeClosedError",
           "TapeBusyError", "TapeFormatError", "RetraceWarning", "ops", "linalg"] + list(_function_names)
