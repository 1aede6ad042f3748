"""pyad.linalg: linear algebra on active arrays, where numpy's dispatch does not reach.

numpy.linalg functions work on active arrays directly (np.linalg.cholesky(x));
scipy.linalg has no dispatch hook, so its functions are here under their scipy
names and signatures. Each works on plain arrays too (it calls scipy then).
"""
from ._linalg_sym import cho_factor, cho_solve, cholesky, solve_triangular

__all__ = ["cholesky", "solve_triangular", "cho_factor", "cho_solve"]
