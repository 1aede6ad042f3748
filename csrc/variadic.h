/* The variadic extremum ops max_n / min_n: one op over an operand list in the
 * tape's pool. Ties share the derivative evenly (JAX's rule for max/min
 * reductions); NaN propagates like numpy's, and NaN operands count as ties of
 * a NaN result. */
#ifndef PYAD_VARIADIC_H
#define PYAD_VARIADIC_H

#include <stdint.h>

/* The extremum of v[idx[i] * stride + off] over n >= 1 operands. */
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

/* The reverse rule: the adjoint g (and, with gd, its tangent) is shared
 * evenly by the operands tied with the extremum m; adjd may be NULL. Strides
 * as in extremum (the adjoints are laid out like the values). */
static inline void share_among_ties(const double *v, const int32_t *idx, int64_t n, double m,
                                    int64_t stride, int64_t off, double g, double gd,
                                    double *adj, double *adjd)
{
    double c = (double)tie_count(v, idx, n, m, stride, off);
    for (int64_t i = 0; i < n; ++i) {
        int64_t at = (int64_t)idx[i] * stride + off;
        if (is_tie(v[at], m)) {
            adj[at] += g / c;
            if (adjd)
                adjd[at] += gd / c;
        }
    }
}

#endif
