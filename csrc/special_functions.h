/* The special functions the registry's rules need and libm lacks (digamma and
 * its derivatives), and the numerically careful forms of the rows of issue 14
 * (expit, logit, logaddexp, hypot's second derivative, ...). Written for pyad;
 * tested against scipy.special in tests/test_special_functions.py.
 *
 * digamma, trigamma, tetragamma (psi, psi', psi''):
 *   x >= SHIFT_TO   the asymptotic (Stirling) series in 1/x, whose terms at
 *                   x >= 16 fall below 1e-17 of the result by the last one kept;
 *   0 < x < SHIFT_TO  the recurrence psi(x) = psi(x + 1) - 1/x (and its
 *                   derivatives) moves x up first;
 *   x < 0           the reflection formulas, with the trigonometric part
 *                   evaluated on x reduced exactly to [-1/2, 1/2] (its period
 *                   is 1), so that large |x| and x near an integer keep their
 *                   accuracy;
 *   on (0, 3) digamma is instead a Taylor series about its root x0 (in [1, 2]),
 *   moved by one step of the recurrence: there the recurrence from 16 down
 *   would cancel (psi is small, its parts are not).
 * Poles (x = 0, -1, -2, ...): psi(+-0) = -+inf and NaN at negative integers,
 * psi' = +inf, psi'' = -inf, as scipy.special gives them. */
#ifndef PYAD_SPECIAL_FUNCTIONS_H
#define PYAD_SPECIAL_FUNCTIONS_H

#include <math.h>

#define PYAD_PI 3.14159265358979323846
#define PYAD_LN2 0.69314718055994530942
#define PYAD_LN10 2.30258509299404568402
#define PYAD_LOG2E 1.44269504088896340736

/* Below this the recurrence shifts x up before the asymptotic series. */
#define SHIFT_TO 16.0

/* x - n for the nearest integer n: exact in floating point, in [-1/2, 1/2]. */
static inline double offset_from_integer(double x)
{
    double r = fmod(x, 1.0);              /* exact, in (-1, 1), sign of x */
    if (r > 0.5)
        r -= 1.0;                         /* exact (Sterbenz) */
    else if (r < -0.5)
        r += 1.0;
    return r;
}

static inline int is_nonpositive_integer(double x) { return x <= 0.0 && x == floor(x); }

/* psi(x) on [1, 2] as its Taylor series about the root x0 = X0_HI + X0_LO:
 * sum of c_k d^k, d = x - x0, c_k = psi^(k)(x0) / k! (computed with mpmath at 60
 * digits). The nearest pole (0) is 1.46 away and |d| <= 0.54, so the terms fall
 * as 0.37^k: the 41 kept leave less than 1e-17 out. Here the recurrence would
 * cancel (psi(x) is small, the parts it is the difference of are not). */
#define DIGAMMA_ROOT_HI 1.4616321449683622
#define DIGAMMA_ROOT_LO 9.549995429965697e-17

static inline double digamma_one_to_two(double x)
{
    static const double c[41] = {
        0.9676722454476212, -0.4427631689835921, 0.258499760955651,
        -0.16394270544240652, 0.10782405069126237, -0.07219956125645471,
        0.04880428816414311, -0.03316112647484736, 0.022597648232218104,
        -0.01542476590494896, 0.010538791616612175, -0.007204534386356869,
        0.004926781395729853, -0.003369801655439328, 0.002305126326734928,
        -0.0015769367714301972, 0.0010788252019162967, -0.0007380709389960052,
        0.000504953265834602, -0.0003454680251063077, 0.00023635601564027053,
        -0.00016170622091974803, 0.0001106337276874741, -7.569179582195066e-05,
        5.178575795222081e-05, -3.5430070947659604e-05, 2.424006611860132e-05,
        -1.6584242271854135e-05, 1.134638458466385e-05, -7.762817668462094e-06,
        5.3110609208898636e-06, -3.6336507898010456e-06, 2.486022733129538e-06,
        -1.7008538854332607e-06, 1.1636675363548843e-06, -7.96142543124197e-07,
        5.446941930669446e-07, -3.7266161283438227e-07, 2.549626552021554e-07,
        -1.7443695117727745e-07, 1.1934394829830244e-07,
    };
    double d = (x - DIGAMMA_ROOT_HI) - DIGAMMA_ROOT_LO;
    double s = 0.0;
    for (int k = 40; k >= 0; --k)
        s = s * d + c[k];
    return s * d;
}

/* psi(x) for x > 0. */
static inline double digamma_positive(double x)
{
    if (x < 1.0)                          /* psi(x) = psi(x + 1) - 1/x: no cancellation */
        return digamma_one_to_two(x + 1.0) - 1.0 / x;
    if (x <= 2.0)
        return digamma_one_to_two(x);
    if (x < 3.0)                          /* both terms positive */
        return digamma_one_to_two(x - 1.0) + 1.0 / (x - 1.0);
    double shifted = 0.0;
    while (x < SHIFT_TO) {
        shifted -= 1.0 / x;
        x += 1.0;
    }
    double t = 1.0 / (x * x);
    /* -sum B_2k / (2k x^2k), k = 1..7, in Horner form in t = 1/x^2 */
    double series = t * (-1.0 / 12 + t * (1.0 / 120 + t * (-1.0 / 252 + t * (1.0 / 240
                    + t * (-1.0 / 132 + t * (691.0 / 32760 + t * (-1.0 / 12)))))));
    return shifted + (log(x) - 0.5 / x + series);
}

static inline double digamma(double x)
{
    if (x != x || x == INFINITY)
        return x;
    if (x == 0.0)
        return signbit(x) ? INFINITY : -INFINITY;
    if (is_nonpositive_integer(x))
        return NAN;                       /* includes -inf */
    if (x > 0.0)
        return digamma_positive(x);
    /* psi(x) = psi(1 - x) - pi cot(pi x); cot has period 1 */
    double r = offset_from_integer(x);
    return digamma_positive(1.0 - x) - PYAD_PI / tan(PYAD_PI * r);
}

/* psi'(x) for x > 0. */
static inline double trigamma_positive(double x)
{
    double shifted = 0.0;
    while (x < SHIFT_TO) {
        shifted += 1.0 / (x * x);
        x += 1.0;
    }
    double t = 1.0 / (x * x);
    /* 1/x + 1/(2x^2) + sum B_2k / x^(2k+1), k = 1..7 */
    double series = t * (1.0 / 6 + t * (-1.0 / 30 + t * (1.0 / 42 + t * (-1.0 / 30
                    + t * (5.0 / 66 + t * (-691.0 / 2730 + t * (7.0 / 6)))))));
    return shifted + (1.0 + 0.5 / x + series) / x;
}

static inline double trigamma(double x)
{
    if (x != x)
        return x;
    if (x == INFINITY)
        return 0.0;
    if (is_nonpositive_integer(x))
        return INFINITY;
    if (x > 0.0)
        return trigamma_positive(x);
    /* psi'(x) = pi^2 / sin^2(pi x) - psi'(1 - x) */
    double s = sin(PYAD_PI * offset_from_integer(x));
    return PYAD_PI * PYAD_PI / (s * s) - trigamma_positive(1.0 - x);
}

/* psi''(x) for x > 0. */
static inline double tetragamma_positive(double x)
{
    double shifted = 0.0;
    while (x < SHIFT_TO) {
        shifted -= 2.0 / (x * x * x);
        x += 1.0;
    }
    double t = 1.0 / (x * x);
    /* -1/x^2 - 1/x^3 - sum (2k+1) B_2k / x^(2k+2), k = 1..7 */
    double series = t * (-0.5 + t * (1.0 / 6 + t * (-1.0 / 6 + t * (3.0 / 10
                    + t * (-5.0 / 6 + t * (691.0 / 210 + t * (-35.0 / 2)))))));
    return shifted + t * (-1.0 - 1.0 / x + series);
}

static inline double tetragamma(double x)
{
    if (x != x)
        return x;
    if (x == INFINITY)
        return -0.0;
    if (is_nonpositive_integer(x))
        return -INFINITY;                 /* scipy's value (-2/(x - n)^3 has both signs there) */
    if (x > 0.0)
        return tetragamma_positive(x);
    /* psi''(x) = psi''(1 - x) - 2 pi^3 cos(pi x) / sin^3(pi x); period 1 */
    double a = PYAD_PI * offset_from_integer(x), s = sin(a);
    return tetragamma_positive(1.0 - x) - 2.0 * PYAD_PI * PYAD_PI * PYAD_PI * cos(a) / (s * s * s);
}

/* log|Gamma(x)|: C's lgamma, except at -inf, where |Gamma| -> 0 between the
 * poles and scipy's gammaln gives -inf (C99 says +inf). lgamma writes the sign
 * of Gamma to the global signgam: a write only, never read here. */
static inline double log_gamma(double x) { return x == -INFINITY ? -INFINITY : lgamma(x); }

/* ---- the logistic pair ---- */

/* 1 / (1 + e^-x): exp overflows to inf for x < -709 and the result is 0. */
static inline double expit(double x) { return 1.0 / (1.0 + exp(-x)); }

/* expit'(x) = e^-|x| / (1 + e^-|x|)^2: z (1 - z) would round to 0 for x > 37. */
static inline double expit_d(double x)
{
    double e = exp(-fabs(x));
    return e / ((1.0 + e) * (1.0 + e));
}

/* log(x / (1 - x)); near 1/2 the quotient's rounding dominates the small result,
 * so there it is log1p(s) - log1p(-s) with s = 2x - 1 (exact). */
static inline double logit(double x)
{
    if (x >= 0.3 && x <= 0.65) {
        double s = 2.0 * (x - 0.5);
        return log1p(s) - log1p(-s);
    }
    return log(x / (1.0 - x));
}

/* ---- x log y with 0 log y = 0 (scipy: unless y is NaN) ---- */
static inline double xlogy(double x, double y) { return (x == 0.0 && y == y) ? 0.0 : x * log(y); }
static inline double xlog1py(double x, double y)
{
    return (x == 0.0 && y == y) ? 0.0 : x * log1p(y);
}

/* ---- log(e^x + e^y) and log2(2^x + 2^y), as numpy computes them ---- */
static inline double logaddexp(double x, double y)
{
    if (x == y)                           /* also both +inf or both -inf */
        return x + PYAD_LN2;
    double d = x - y;
    if (d > 0.0)
        return x + log1p(exp(-d));
    if (d <= 0.0)
        return y + log1p(exp(d));
    return d;                             /* NaN */
}

static inline double logaddexp2(double x, double y)
{
    if (x == y)
        return x + 1.0;
    double d = x - y;
    if (d > 0.0)
        return x + log1p(exp2(-d)) * PYAD_LOG2E;
    if (d <= 0.0)
        return y + log1p(exp2(d)) * PYAD_LOG2E;
    return d;
}

/* d logaddexp / dx = e^x / (e^x + e^y) = expit(x - y); exactly 1/2 at ties (also
 * at equal infinities, where x - y is NaN). logaddexp2's is expit((x - y) ln 2). */
static inline double logaddexp_share(double x, double y, double scale)
{
    return x == y ? 0.5 : expit((x - y) * scale);
}

/* The second-order term of both: d(share)/dt = s (1 - s) scale (xd - yd). */
static inline double logaddexp_share_d(double x, double y, double scale, double xd, double yd)
{
    return x == y ? 0.25 * scale * (xd - yd) : expit_d((x - y) * scale) * scale * (xd - yd);
}

/* ---- hypot: the partials x / z, y / z are 0 at the origin (JAX's convention,
 * as abs'(0) = 0); the second order in ratios, which neither overflow nor
 * underflow as z^3 would ---- */
static inline double hypot_d(double x, double z) { return z == 0.0 ? 0.0 : x / z; }

/* d(x / z)/dt = (y / z) (xd y / z - yd x / z) / z */
static inline double hypot_dd(double x, double y, double z, double xd, double yd)
{
    if (z == 0.0)
        return 0.0;
    double u = x / z, w = y / z;
    return w * (xd * w - yd * u) / z;
}

static inline double cube(double s) { return s * s * s; }

/* asinh''(x) xd = -x / (1 + x^2)^(3/2) xd, with h = hypot(1, x): x / h is at most 1
 * and h^2 overflows only where the result is 0 anyway. */
static inline double asinh_dd(double x, double xd)
{
    double h = hypot(1.0, x);
    return -(x / h) / (h * h) * xd;
}

/* numpy's sign: +0.0 at both zeros, NaN at NaN. */
static inline double numpy_sign(double x) { return x > 0.0 ? 1.0 : (x < 0.0 ? -1.0 : (x == 0.0 ? 0.0 : x)); }

#endif
