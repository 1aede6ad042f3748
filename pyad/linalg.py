"""pyad.linalg: linear algebra on active arrays, as numpy.linalg computes it.

np.linalg.solve / inv / det / slogdet on active arrays reach these through
numpy's dispatch; they are also importable here.
"""
from ._linalg_lu import det, inv, slogdet, solve

__all__ = ["solve", "inv", "det", "slogdet"]
