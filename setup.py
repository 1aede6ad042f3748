# The project is described in pyproject.toml; this file only hooks in the two
# compiled parts: the C core through cffi, and the active scalars' recording
# fast path (a small CPython extension: cffi cannot define Python types).
import os

from setuptools import Extension, setup

speedups = Extension(
    "pyad._speedups",
    sources=["pyad/_speedups.c"],
    extra_compile_args=["-O2", "-Wall", "-Wextra"] + os.environ.get("PYAD_CFLAGS", "").split(),
    extra_link_args=os.environ.get("PYAD_LDFLAGS", "").split(),
)

setup(cffi_modules=["pyad/_build_ffi.py:ffibuilder"], ext_modules=[speedups])
