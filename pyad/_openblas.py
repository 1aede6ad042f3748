"""Loads the OpenBLAS that the C core's product rows call, before the core.

The core (pyad/_pyad_c) needs libscipy_openblas.so from the scipy-openblas32
wheel. Importing scipy_openblas32 loads that library by its full path with
RTLD_GLOBAL; once loaded, the dynamic loader satisfies the core's dependency by
its soname, wherever pip installed the wheel (the core's rpaths are only a
fallback). pyad leaves OpenBLAS's own thread count alone, except that a batch
split over several threads sets it to one while it runs (pyad/batch.py,
_BlasThreads; see the README).
"""
try:
    import scipy_openblas32  # noqa: F401  (loading it is the point)
except ImportError as e:  # pragma: no cover - a broken install
    raise ImportError(
        "pyad needs the scipy-openblas32 package (the BLAS its product rows call): "
        "pip install scipy-openblas32") from e
