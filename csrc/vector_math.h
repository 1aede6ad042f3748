/* glibc's vector math (libmvec) for the batched sweeps, where the build found
 * it (PYAD_VECTOR_MATH, pyad/_build_ffi.py): declaring these SIMD variants lets
 * the compiler vectorize a loop over points that calls them (results within 4
 * ulp of the scalar ones). Include after <math.h> (rules.h), and only from the
 * batched sweeps' translation units: the one-point sweeps keep the scalar libm. */
#ifndef PYAD_VECTOR_MATH_H
#define PYAD_VECTOR_MATH_H

#include <math.h>

#ifdef PYAD_VECTOR_MATH
__attribute__((simd("notinbranch"))) double sin(double);
__attribute__((simd("notinbranch"))) double cos(double);
__attribute__((simd("notinbranch"))) double exp(double);
__attribute__((simd("notinbranch"))) double log(double);
__attribute__((simd("notinbranch"))) double pow(double, double);
/* Each sweep is compiled for AVX2 and for the baseline, picked at load time. */
#define VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define VECTOR_CLONES
#endif

#endif
