/* Internal entry points shared by the recorder and the public sweeps. */
#ifndef PYAD_SWEEP_H
#define PYAD_SWEEP_H

#include "tape.h"

/* Values of ops [begin, end) into v; input ops read x. Returns PYAD_OK,
 * PYAD_EBRANCH with *bad_op set when a guard does not hold, or a custom row's
 * failure status. */
int forward_range(const pyad_tape *t, const double *x, double *v,
                  int64_t begin, int64_t end, int64_t *bad_op);

/* Values and one tangent of ops [begin, end) into v, vd; inputs read x, xdot.
 * Returns as forward_range does. */
int tangent_range(const pyad_tape *t, const double *x, const double *xdot, double *v,
                  double *vd, int64_t begin, int64_t end, int64_t *bad_op);

/* A passive block row (activity.c) in a tangent sweep with p directions: its
 * values, and zero tangents. PYAD_OK or a custom row's failure (block.h). */
int passive_block(const pyad_tape *t, int64_t i, double *v, double *vd, int64_t p);

/* d * t, where a zero tangent or adjoint t is a structural zero: it contributes
 * nothing even when d is inf or NaN, so an op no output depends on (or an input
 * that is not varied) never turns a derivative into NaN. JAX's symbolic zeros
 * and CppAD's skipping of unused ops behave the same way. */
static inline double scaled(double d, double t)
{
    double p = d * t; /* unconditional, so loops over points still vectorize */
    return t == 0.0 ? 0.0 : p;
}

#endif
