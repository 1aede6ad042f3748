/* Helpers for the value and derivative rules in ops.def, and the macros that
 * turn a row's kind into operand fetches and adjoint updates. Conventions
 * follow JAX at kinks: abs'(0) = 0, ties of maximum/minimum split evenly,
 * d(x**y)/dy = 0 at x = 0, d(x**0)/dx = 0. */
#ifndef PYAD_RULES_H
#define PYAD_RULES_H

#include <math.h>

#include "special_functions.h"

static inline double sign_of(double x) { return x > 0 ? 1.0 : (x < 0 ? -1.0 : x); }

/* numpy's maximum/minimum propagate NaN from either side. */
static inline double max_nan(double x, double y) { return (x != x || x >= y) ? x : y; }
static inline double min_nan(double x, double y) { return (x != x || x <= y) ? x : y; }

/* d max(x, y)/dx; the same with arguments swapped gives d/dy and min's. */
static inline double tie_share(double x, double y) { return x > y ? 1.0 : (x == y ? 0.5 : 0.0); }

static inline double log_or_zero(double x) { return x == 0.0 ? 0.0 : log(x); }
static inline double cube_sqrt(double s) { return s * sqrt(s); }

/* d(x**y)/dx = y x**(y-1), taken as 0 when y = 0 (x**0 is constant). */
static inline double pow_d_base(double x, double y) { return y == 0.0 ? 0.0 : y * pow(x, y - 1.0); }

/* Directional derivative of pow_d_base along (xd, yd). */
static inline double pow_dd_base(double x, double y, double xd, double yd) {
    double second = (y == 0.0 || y == 1.0) ? 0.0 : y * (y - 1.0) * pow(x, y - 2.0);
    double cross = yd == 0.0 ? 0.0 : yd * (pow(x, y - 1.0) + pow_d_base(x, y) * log_or_zero(x));
    return second * xd + cross;
}

/* Directional derivative of z log x along (xd, yd). */
static inline double pow_dd_exponent(double x, double y, double z, double xd, double yd) {
    double lx = log_or_zero(x);
    double cross = xd == 0.0 ? 0.0 : xd * (pow(x, y - 1.0) + pow_d_base(x, y) * lx);
    return cross + yd * z * lx * lx;
}

static inline double atan2_dd_x(double x, double y, double xd, double yd) {
    double r = x * x + y * y;
    return yd / r - y * (2.0 * x * xd + 2.0 * y * yd) / (r * r);
}

static inline double atan2_dd_y(double x, double y, double xd, double yd) {
    double r = x * x + y * y;
    return -xd / r + x * (2.0 * x * xd + 2.0 * y * yd) / (r * r);
}

#endif
