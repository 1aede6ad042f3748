"""cffi builder (out-of-line, API mode): compiles csrc/ into pyad._pyad_c.

The declarations are read from csrc/pyad.h itself, so the C header is the only
description of the API.
"""
import os
import re

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC_ABS = os.path.join(os.path.dirname(HERE), "csrc")
CSRC = os.path.relpath(CSRC_ABS)
SOURCES = ["tape.c", "record.c", "record_linalg.c", "forward.c", "reverse.c", "vector.c",
           "batch.c", "block.c", "block_lanes.c", "reduce_lanes.c", "serialize.c", "gather.c",
           "product.c", "activity.c", "custom.c", "batch_threads.c", "lazy_adjoint.c", "fused.c",
           "linalg_lu.c", "linalg_sym.c", "linalg_eig.c", "array_math.c"]


def _declarations(header):
    """pyad.h without preprocessor lines: what cffi's cdef can parse."""
    with open(header) as f:
        text = f.read()
    return re.sub(r"^\s*#.*$", "", text, flags=re.MULTILINE)


def _vector_math():
    """Use glibc's vector math (libmvec) for batched sweeps where it exists."""
    import ctypes.util
    import platform
    if os.environ.get("PYAD_NO_VECTOR_MATH") or platform.machine() not in ("x86_64", "AMD64"):
        return [], []
    name = ctypes.util.find_library("mvec")
    if not name:
        return [], []
    flags = ["-DPYAD_VECTOR_MATH", "-fno-math-errno", "-fno-trapping-math"]
    # glibc 2.35 added tanh, log1p, expm1, ... : array rows' values use them
    # (csrc/array_math.c) where this libmvec has them
    try:
        if hasattr(ctypes.CDLL(name), "_ZGVdN4v_tanh"):
            flags.append("-DPYAD_ARRAY_MATH")
    except OSError:
        pass
    return flags, ["mvec"]


VECTOR_FLAGS, VECTOR_LIBS = _vector_math()


def _openblas():
    """Product rows call the OpenBLAS of the scipy-openblas32 wheel (a build and
    run dependency). At run time pyad/_openblas.py loads it by path before the
    core is imported, so the loader finds it by its soname wherever pip put the
    wheel; the rpaths here are fallbacks: beside pyad in the same site-packages
    (a normal install), and the build-time location (an editable install; under
    pip's build isolation that folder is gone afterwards)."""
    import scipy_openblas32 as ob
    lib_dir = ob.get_lib_dir()
    rpaths = ["$ORIGIN/../scipy_openblas32/lib", lib_dir]
    return [lib_dir], [ob.get_library()], [f"-Wl,-rpath,{r}" for r in rpaths]


BLAS_LIB_DIRS, BLAS_LIBS, BLAS_LINK = _openblas()

ffibuilder = FFI()
ffibuilder.cdef(_declarations(os.path.join(CSRC_ABS, "pyad.h")))
# The custom rows' callback (pyad.h's pyad_custom_fn), written in Python:
# pyad/backend_c.py defines it with ffi.def_extern and hands its address to each
# tape that records a custom row.
ffibuilder.cdef('extern "Python" int pyad_custom_callback(void *, const struct pyad_custom_call *);')
ffibuilder.set_source(
    "pyad._pyad_c",
    '#include "pyad.h"',
    sources=[os.path.join(CSRC, name) for name in SOURCES],
    include_dirs=[CSRC],
    library_dirs=BLAS_LIB_DIRS,
    # every header and the registry: a change to any of them rebuilds the core
    depends=sorted(os.path.join(CSRC, name) for name in os.listdir(CSRC_ABS)
                   if name.endswith((".h", ".def"))),
    extra_compile_args=["-std=c11", "-O3", "-Wall", "-Wextra", "-pthread"] + VECTOR_FLAGS
    + os.environ.get("PYAD_CFLAGS", "").split(),
    extra_link_args=["-pthread"] + BLAS_LINK + os.environ.get("PYAD_LDFLAGS", "").split(),
    libraries=["m"] + VECTOR_LIBS + BLAS_LIBS,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
