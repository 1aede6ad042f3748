/* Vector math for the values of elementwise block rows (array rows).
 *
 * A block row's transcendental values (tanh, exp, log, ...) come from glibc's
 * libmvec 4-lane AVX2 variants where the build found them (PYAD_ARRAY_MATH,
 * pyad/_build_ffi.py) and the CPU has AVX2 and FMA; else from the scalar libm.
 * libmvec is within 4 ulp of the correctly rounded value, as numpy's own SIMD
 * loops are, so array rows agree with numpy to a few ulp, not bit for bit, and
 * may differ from the scalar rows of the same program in the last bits.
 *
 * What does hold bit for bit: every element goes through the same 4-lane
 * call (a short tail is padded to 4 lanes, never handed to the scalar libm),
 * and the lanes are computed independently, so an element's value depends on
 * its input alone: the recording, every one-point replay and every sweep that
 * recomputes a value (tangent, vector tangent) give the same number. */
#ifndef PYAD_ARRAY_MATH_H
#define PYAD_ARRAY_MATH_H

#include <stdint.h>

/* 1 if op's block values come from array_math_values / array_math_one. */
int array_math_has(int op);

/* z[j] = op's value at x[j * sx], j < n; only for op with array_math_has. */
void array_math_values(int op, const double *x, int64_t sx, double *z, int64_t n);

/* One element of array_math_values: the same number for the same x. */
double array_math_one(int op, double x);

#endif
