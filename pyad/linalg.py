"""pyad.linalg: linear algebra on active arrays.

numpy.linalg functions work on active arrays directly (np.linalg.solve(a, b),
np.linalg.cholesky(x)) through numpy's dispatch; they are also importable here.
scipy.linalg has no dispatch hook, so its functions are here under their scipy
names and signatures. Each works on plain arrays too (it calls scipy then).
"""
from ._linalg_lu import det, inv, slogdet, solve
from ._linalg_eig import eigh, eigvalsh
from ._linalg_sym import cho_factor, cho_solve, cholesky, solve_triangular

__all__ = ["solve", "inv", "det", "slogdet", "cholesky", "solve_triangular", "cho_factor",
           "cho_solve", "eigh", "eigvalsh"]
