/* Internal entry points shared by the recorder and the public sweeps, and the
 * macros that turn a primitive's kind into operand fetches. */
#ifndef PYAD_SWEEP_H
#define PYAD_SWEEP_H

#include "tape.h"

/* Values of ops [begin, end) into v; input ops read x. Returns PYAD_OK, or
 * PYAD_EBRANCH with *bad_op set when a guard does not hold. */
int forward_range(const pyad_tape *t, const double *x, double *v,
                  int64_t begin, int64_t end, int64_t *bad_op);

/* Operand fetches by kind. A, B, C are the operand columns, v the values,
 * consts the constant pool, k the current op. */
#define FETCH_UNARY      double x = v[A[k]]; double y = 0.0; (void)x; (void)y;
#define FETCH_BINARY     double x = v[A[k]]; double y = v[B[k]]; (void)x; (void)y;
#define FETCH_WITH_CONST double x = v[A[k]]; double y = consts[B[k]]; (void)x; (void)y;

/* d * t, where a zero tangent or adjoint t is a structural zero: it contributes
 * nothing even when d is inf or NaN, so an op no output depends on (or an input
 * that is not varied) never turns a derivative into NaN. JAX's symbolic zeros
 * and CppAD's skipping of unused ops behave the same way. */
static inline double scaled(double d, double t)
{
    double p = d * t; /* unconditional, so loops over points still vectorize */
    return t == 0.0 ? 0.0 : p;
}
#define SCALED(d, t) scaled((d), (t))

/* Tangent fetches by kind (constants and absent operands have tangent 0). */
#define TANGENT_UNARY      double xd = vd[A[k]]; double yd = 0.0; (void)xd; (void)yd;
#define TANGENT_BINARY     double xd = vd[A[k]]; double yd = vd[B[k]]; (void)xd; (void)yd;
#define TANGENT_WITH_CONST TANGENT_UNARY

#endif
