/* The rules of the special rows (ops.def), each written once and shared by
 * every sweep that needs it: forward.c, reverse.c, vector.c and batch.c.
 *
 * The sweeps lay slots out differently (one value per slot, p lanes per slot,
 * nb points per slot), so the rules that read several slots take each array
 * with its layout: element i of slot s is at s * stride + off. */
#ifndef PYAD_SPECIAL_RULES_H
#define PYAD_SPECIAL_RULES_H

#include <stdint.h>

#include "sweep.h"

/* ---- select: z = cond != 0 ? a : b ----
 * The same choice picks the value, the tangent, and where the adjoint goes. */
static inline double select_value(double cond, double a, double b) { return cond != 0.0 ? a : b; }

static inline int32_t select_taken(double cond, int32_t a, int32_t b) { return cond != 0.0 ? a : b; }

/* ---- guard_true / guard_false: z = cond; replay fails where cond flipped ---- */
static inline int guard_holds(int op, double cond)
{
    return (cond != 0.0) == (op == OP_guard_true);
}

/* ---- axpy_c: z = a + c * b, c a constant; linear, so the tangent is the
 * same map on the operand tangents and the adjoint of b is c times z's ---- */
static inline double axpy_value(double a, double c, double b) { return a + c * b; }

static inline double axpy_tangent(double ad, double c, double bd) { return ad + scaled(c, bd); }

static inline double axpy_b_adjoint(double c, double g) { return scaled(c, g); }

/* ---- max_n / min_n: one op over an operand list in the tape's pool ----
 * Ties share the derivative evenly (JAX's rule for max/min reductions); NaN
 * propagates like numpy's, and NaN operands count as ties of a NaN result. */

/* The extremum of the n >= 1 operands idx[0..n) in v. */
static inline double extremum(const double *v, const int32_t *idx, int64_t n, int is_max,
                              int64_t stride, int64_t off)
{
    double m = v[(int64_t)idx[0] * stride + off];
    for (int64_t i = 1; i < n && m == m; ++i) {
        double x = v[(int64_t)idx[i] * stride + off];
        if (x != x || (is_max ? x > m : x < m))
            m = x;
    }
    return m;
}

static inline int is_tie(double x, double m) { return x == m || (x != x && m != m); }

/* How many operands equal the extremum m. */
static inline int64_t tie_count(const double *v, const int32_t *idx, int64_t n, double m,
                                int64_t stride, int64_t off)
{
    int64_t c = 0;
    for (int64_t i = 0; i < n; ++i)
        c += is_tie(v[(int64_t)idx[i] * stride + off], m);
    return c;
}

/* The tangent rule: the mean of the tangents t of the operands tied with m
 * (values v laid out by vs, vo; tangents by ts, to). */
static inline double tied_mean(const double *v, const int32_t *idx, int64_t n, double m,
                               int64_t vs, int64_t vo, const double *t, int64_t ts, int64_t to)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i)
        if (is_tie(v[(int64_t)idx[i] * vs + vo], m))
            sum += t[(int64_t)idx[i] * ts + to];
    return sum / (double)tie_count(v, idx, n, m, vs, vo);
}

/* The reverse rule: the adjoint g is shared evenly by the operands tied with
 * m (values v laid out by vs, vo; adjoints adj by as, ao). Piecewise linear:
 * an adjoint tangent is shared the same way, with no curvature term. */
static inline void share_among_ties(const double *v, const int32_t *idx, int64_t n, double m,
                                    int64_t vs, int64_t vo, double g,
                                    double *adj, int64_t as, int64_t ao)
{
    double c = (double)tie_count(v, idx, n, m, vs, vo);
    for (int64_t i = 0; i < n; ++i)
        if (is_tie(v[(int64_t)idx[i] * vs + vo], m))
            adj[(int64_t)idx[i] * as + ao] += g / c;
}

#endif
