# The project is described in pyproject.toml; this file only hooks in the cffi build.
from setuptools import setup

setup(cffi_modules=["pyad/_build_ffi.py:ffibuilder"])
