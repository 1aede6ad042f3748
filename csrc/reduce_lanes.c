/* Batched sweeps of reductions and scans with the points innermost. gather.c's
 * kernels run one lane (point) at a time, reading a slot's lanes `lanes` doubles
 * apart; here a step of a reduction over k terms is one loop over a chunk of
 * contiguous lanes, so a sum over k of rows of nb points is k vector adds of
 * length nb. Each lane does exactly the arithmetic of gather.c's one-lane
 * kernels, in the same order (numpy's pairwise sum, the same product tree,
 * NaN first, ties shared evenly, no division by an operand), so a batch gives
 * bit for bit the values of a loop of one-point sweeps. A step whose one-lane
 * form skips work (a zero seed, a non-tied element) leaves the lane unchanged
 * with a select, never adds a zero in its place (which would turn -0 into +0). */
#include <stddef.h>

#include "gather.h"
#include "lanes.h"
#include "sweep.h"
#include "vector_math.h"

/* Lanes per chunk: the scratch arrays of the pairwise sum and the product tree
 * live on the stack at this width. */
#define LC 64

#define LANES for (int64_t l = 0; l < L; ++l)

/* A row and a chunk of its lanes: slot s's lane j0 + l is at s * lanes + j0 + l
 * of each work array; consecutive terms of a reduction are `step` doubles apart. */
struct chunk {
    int op;
    int64_t f, a, m, k, sa, sb; /* as gather.c's row: outputs m, terms k */
    int64_t lanes, j0, L, step;
};

static struct chunk chunk_at(const pyad_tape *t, int64_t i, int64_t lanes)
{
    struct block bl = block_at(t, i);
    struct chunk c = {t->op[bl.row], t->first[bl.row], t->arg_a[bl.row], bl.w,
                      t->arg_b[bl.row], bl.sa, bl.sb, lanes, 0, 0, bl.sb * lanes};
    if (c.op == OP_cumsum || c.op == OP_cumprod)
        c.m = bl.w / c.k;
    return c;
}

static int lanes_op(int op)
{
    return op == OP_reduce_add || op == OP_reduce_mul || op == OP_reduce_max
           || op == OP_reduce_min || op == OP_cumsum || op == OP_cumprod;
}

#define FOR_CHUNKS(c)                                                                       \
    for ((c).j0 = 0; (c).L = (c).lanes - (c).j0 < LC ? (c).lanes - (c).j0 : LC,             \
         (c).j0 < (c).lanes; (c).j0 += LC)

/* Lane j0 of slot s in work array p (NULL stays NULL). */
static double *at(const struct chunk *c, const double *p, int64_t s)
{
    return p ? (double *)p + s * c->lanes + c->j0 : NULL;
}

/* Slot of term j of output i. */
static int64_t term(const struct chunk *c, int64_t i, int64_t j)
{
    return c->a + c->sa * i + c->sb * j;
}

/* ---- sums: gather.c's pairwise_sum, L lanes at once ---- */

VECTOR_CLONES
static void pairwise_lanes(const double *x, int64_t s, int64_t n, int64_t L, double *out)
{
    if (n < 8) {
        LANES out[l] = -0.0;
        for (int64_t j = 0; j < n; ++j)
            LANES out[l] += x[j * s + l];
        return;
    }
    if (n <= 128) {
        double p[8][LC];
        for (int q = 0; q < 8; ++q)
            LANES p[q][l] = x[q * s + l];
        int64_t j = 8;
        for (; j + 8 <= n; j += 8)
            for (int q = 0; q < 8; ++q)
                LANES p[q][l] += x[(j + q) * s + l];
        LANES out[l] = ((p[0][l] + p[1][l]) + (p[2][l] + p[3][l]))
                       + ((p[4][l] + p[5][l]) + (p[6][l] + p[7][l]));
        for (; j < n; ++j)
            LANES out[l] += x[j * s + l];
        return;
    }
    int64_t h = n / 2;
    h -= h % 8;
    double right[LC];
    pairwise_lanes(x, s, h, L, out);
    pairwise_lanes(x + h * s, s, n - h, L, right);
    LANES out[l] += right[l];
}

/* ---- max / min: the first NaN wins, else the first extreme ---- */

#define EXTREMUM(better)                                                                    \
    do {                                                                                    \
        LANES out[l] = x[l];                                                                \
        for (int64_t j = 1; j < n; ++j)                                                     \
            LANES {                                                                         \
                double y = x[j * s + l], m = out[l];                                        \
                out[l] = m != m ? m : (y != y || (better)) ? y : m;                         \
            }                                                                               \
    } while (0)

VECTOR_CLONES
static void extremum_lanes(const double *x, int64_t s, int64_t n, int64_t L, int is_max,
                           double *out)
{
    if (is_max)
        EXTREMUM(y > m);
    else
        EXTREMUM(y < m);
}

static inline int tied(double x, double m) { return x == m || (x != x && m != m); }

/* ---- products on (value, tangent) lanes; a zero tangent is a structural zero ---- */

/* p = p * (x, t), lane by lane (gather.c's dual_mul); t NULL: zero tangents. */
VECTOR_CLONES
static void dual_mul_lanes(double *pv, double *pd, const double *x, const double *t, int64_t L)
{
    if (t)
        LANES {
            double v = pv[l];
            pv[l] = v * x[l];
            pd[l] = scaled(v, t[l]) + scaled(x[l], pd[l]);
        }
    else
        LANES {
            double v = pv[l];
            pv[l] = v * x[l];
            pd[l] = scaled(v, 0.0) + scaled(x[l], pd[l]);
        }
}

/* The product of n terms (x, t) s doubles apart, as gather.c's product. */
static void product_lanes(const double *x, const double *t, int64_t s, int64_t n, int64_t L,
                          double *pv, double *pd)
{
    LANES {
        pv[l] = x[l];
        pd[l] = t ? t[l] : 0.0;
    }
    for (int64_t j = 1; j < n; ++j)
        dual_mul_lanes(pv, pd, x + j * s, t ? t + j * s : NULL, L);
}

/* A seed (gv, gd) times a factor (fv, fd), as gather.c's seed_mul. */
VECTOR_CLONES
static void seed_mul_lanes(const double *gv, const double *gd, const double *fv,
                           const double *fd, int64_t L, double *ov, double *od)
{
    LANES {
        double v = scaled(fv[l], gv[l]), d = scaled(fv[l], gd[l]) + scaled(fd[l], gv[l]);
        ov[l] = v;
        od[l] = d;
    }
}

#define PRODUCT_LEAF 16

/* gather.c's product_reverse, L lanes at once: for each term j, adj[j * s] +=
 * gv * (the product of the others), adjd[j * s] += its tangent, in lanes whose
 * seed is not (0, 0) (the one-lane form returns at once for those). */
static void product_reverse_lanes(const double *x, const double *t, int64_t s, int64_t n,
                                  int64_t L, const double *gv, const double *gd, double *adj,
                                  double *adjd)
{
    double live[LC];
    int any = 0;
    LANES {
        live[l] = gv[l] != 0.0 || gd[l] != 0.0;
        any |= live[l] != 0.0;
    }
    if (!any)
        return;
    if (n <= PRODUCT_LEAF) {
        double av[PRODUCT_LEAF][LC], ad[PRODUCT_LEAF][LC], bv[LC], bd[LC], pv[LC], pd[LC];
        double cv[LC], cd[LC];
        LANES {
            av[n - 1][l] = 1.0;
            ad[n - 1][l] = 0.0;
        }
        for (int64_t j = n - 2; j >= 0; --j) {
            LANES {
                av[j][l] = av[j + 1][l];
                ad[j][l] = ad[j + 1][l];
            }
            dual_mul_lanes(av[j], ad[j], x + (j + 1) * s, t ? t + (j + 1) * s : NULL, L);
        }
        LANES {
            bv[l] = 1.0;
            bd[l] = 0.0;
        }
        for (int64_t j = 0; j < n; ++j) {
            LANES {
                pv[l] = bv[l];
                pd[l] = bd[l];
            }
            dual_mul_lanes(pv, pd, av[j], ad[j], L);
            seed_mul_lanes(gv, gd, pv, pd, L, cv, cd);
            if (adj)
                LANES adj[j * s + l] = live[l] != 0.0 ? adj[j * s + l] + cv[l] : adj[j * s + l];
            if (adjd)
                LANES adjd[j * s + l] =
                    live[l] != 0.0 ? adjd[j * s + l] + cd[l] : adjd[j * s + l];
            dual_mul_lanes(bv, bd, x + j * s, t ? t + j * s : NULL, L);
        }
        return;
    }
    int64_t h = n / 2;
    const double *t2 = t ? t + h * s : NULL;
    double lv[LC], ld[LC], rv[LC], rd[LC], sv[LC], sd[LC];
    product_lanes(x, t, s, h, L, lv, ld);
    product_lanes(x + h * s, t2, s, n - h, L, rv, rd);
    /* a dead lane's seed is (0, 0) here too: scaled() keeps it zero */
    seed_mul_lanes(gv, gd, rv, rd, L, sv, sd);
    product_reverse_lanes(x, t, s, h, L, sv, sd, adj, adjd);
    seed_mul_lanes(gv, gd, lv, ld, L, sv, sd);
    product_reverse_lanes(x + h * s, t2, s, n - h, L, sv, sd, adj ? adj + h * s : NULL,
                          adjd ? adjd + h * s : NULL);
}

/* ---- the kernels: one chunk of lanes ---- */

static void chunk_values(const struct chunk *c, double *v)
{
    int64_t L = c->L, s = c->step;
    for (int64_t i = 0; i < c->m; ++i) {
        const double *x = at(c, v, term(c, i, 0));
        switch (c->op) {
        case OP_reduce_add:
            pairwise_lanes(x, s, c->k, L, at(c, v, c->f + i));
            break;
        case OP_reduce_mul: {
            double *out = at(c, v, c->f + i);
            LANES out[l] = x[l];
            for (int64_t j = 1; j < c->k; ++j)
                LANES out[l] *= x[j * s + l];
            break;
        }
        case OP_reduce_max:
        case OP_reduce_min:
            extremum_lanes(x, s, c->k, L, c->op == OP_reduce_max, at(c, v, c->f + i));
            break;
        case OP_cumsum: {
            double acc[LC];
            LANES acc[l] = -0.0;
            for (int64_t j = 0; j < c->k; ++j) {
                double *out = at(c, v, c->f + i * c->k + j);
                LANES out[l] = acc[l] += x[j * s + l];
            }
            break;
        }
        case OP_cumprod: {
            double *out = at(c, v, c->f + i * c->k);
            LANES out[l] = x[l];
            for (int64_t j = 1; j < c->k; ++j) {
                double *prev = out;
                out = at(c, v, c->f + i * c->k + j);
                LANES out[l] = prev[l] * x[j * s + l];
            }
            break;
        }
        }
    }
}

/* Tangents, the values being in v already. */
static void chunk_tangent(const struct chunk *c, const double *v, double *vd)
{
    int64_t L = c->L, s = c->step;
    for (int64_t i = 0; i < c->m; ++i) {
        const double *x = at(c, v, term(c, i, 0)), *t = at(c, vd, term(c, i, 0));
        double *zd = at(c, vd, c->f + i);
        switch (c->op) {
        case OP_reduce_add:
            pairwise_lanes(t, s, c->k, L, zd);
            break;
        case OP_reduce_mul: {
            double pv[LC];
            product_lanes(x, t, s, c->k, L, pv, zd);
            break;
        }
        case OP_reduce_max:
        case OP_reduce_min: {
            const double *m = at(c, v, c->f + i);
            double sum[LC], ties[LC];
            LANES sum[l] = ties[l] = 0.0;
            for (int64_t j = 0; j < c->k; ++j)
                LANES {
                    int tie = tied(x[j * s + l], m[l]);
                    sum[l] += tie ? t[j * s + l] : 0.0; /* sum is never -0: + 0 is exact */
                    ties[l] += tie ? 1.0 : 0.0;
                }
            LANES zd[l] = sum[l] / ties[l];
            break;
        }
        case OP_cumsum: {
            double acc[LC];
            LANES acc[l] = -0.0;
            for (int64_t j = 0; j < c->k; ++j) {
                double *out = at(c, vd, c->f + i * c->k + j);
                LANES out[l] = acc[l] += t[j * s + l];
            }
            break;
        }
        case OP_cumprod: {
            double pv[LC], pd[LC];
            LANES {
                pv[l] = x[l];
                pd[l] = t[l];
            }
            double *out = at(c, vd, c->f + i * c->k);
            LANES out[l] = pd[l];
            for (int64_t j = 1; j < c->k; ++j) {
                dual_mul_lanes(pv, pd, x + j * s, t + j * s, L);
                out = at(c, vd, c->f + i * c->k + j);
                LANES out[l] = pd[l];
            }
            break;
        }
        }
    }
}

/* Reverse (vd, adjd NULL) and forward over reverse, as gather.c's lane_reverse2. */
static void chunk_reverse(const struct chunk *c, const double *v, const double *vd, double *adj,
                          double *adjd)
{
    int64_t L = c->L, s = c->step;
    double zero[LC];
    LANES zero[l] = 0.0;
    for (int64_t i = c->m - 1; i >= 0; --i) {
        int64_t x0 = term(c, i, 0);
        const double *x = at(c, v, x0), *t = at(c, vd, x0);
        double *ga = at(c, adj, x0), *gd = at(c, adjd, x0);
        const double *g = at(c, adj, c->f + i);
        const double *h = adjd ? at(c, adjd, c->f + i) : zero;
        switch (c->op) {
        case OP_reduce_add:
            for (int64_t j = c->k - 1; j >= 0; --j) {
                LANES ga[j * s + l] += g[l];
                if (gd)
                    LANES gd[j * s + l] += h[l];
            }
            break;
        case OP_reduce_mul:
            product_reverse_lanes(x, t, s, c->k, L, g, h, ga, gd);
            break;
        case OP_reduce_max:
        case OP_reduce_min: {
            const double *m = at(c, v, c->f + i);
            double ties[LC], gs[LC], hs[LC];
            LANES ties[l] = 0.0;
            for (int64_t j = 0; j < c->k; ++j)
                LANES ties[l] += tied(x[j * s + l], m[l]) ? 1.0 : 0.0;
            LANES {
                gs[l] = g[l] / ties[l];
                hs[l] = gd ? h[l] / ties[l] : 0.0;
            }
            for (int64_t j = c->k - 1; j >= 0; --j) {
                LANES ga[j * s + l] = tied(x[j * s + l], m[l]) ? ga[j * s + l] + gs[l]
                                                                : ga[j * s + l];
                if (gd)
                    LANES gd[j * s + l] = tied(x[j * s + l], m[l]) ? gd[j * s + l] + hs[l]
                                                                    : gd[j * s + l];
            }
            break;
        }
        case OP_cumsum: {
            double cv[LC], cd[LC];
            LANES cv[l] = cd[l] = 0.0;
            for (int64_t j = c->k - 1; j >= 0; --j) {
                int64_t z = c->f + i * c->k + j;
                const double *gz = at(c, adj, z);
                LANES cv[l] += gz[l];
                LANES ga[j * s + l] += cv[l];
                if (gd) {
                    const double *hz = at(c, adjd, z);
                    LANES cd[l] += hz[l];
                    LANES gd[j * s + l] += cd[l];
                }
            }
            break;
        }
        case OP_cumprod: {
            /* (cv, cd): the adjoint of z_j, all later results included */
            double cv[LC], cd[LC], ev[LC], ed[LC], one[LC];
            LANES {
                cv[l] = cd[l] = 0.0;
                one[l] = 1.0;
            }
            for (int64_t j = c->k - 1; j >= 0; --j) {
                int64_t z = c->f + i * c->k + j;
                const double *gz = at(c, adj, z), *hz = adjd ? at(c, adjd, z) : zero;
                if (j < c->k - 1) {
                    const double *xn = x + (j + 1) * s;
                    const double *tn = t ? t + (j + 1) * s : zero;
                    seed_mul_lanes(cv, cd, xn, tn, L, cv, cd);
                }
                LANES {
                    cv[l] += gz[l];
                    cd[l] += hz[l];
                }
                const double *bv = j > 0 ? at(c, v, z - 1) : one;
                const double *bd = j > 0 && vd ? at(c, vd, z - 1) : zero;
                seed_mul_lanes(cv, cd, bv, bd, L, ev, ed);
                LANES ga[j * s + l] += ev[l];
                if (gd)
                    LANES gd[j * s + l] += ed[l];
            }
            break;
        }
        }
    }
}

/* ---- the sweeps ---- */

int reduce_lanes_values(const pyad_tape *t, int64_t i, int64_t lanes, double *v)
{
    struct chunk c = chunk_at(t, i, lanes);
    if (!lanes_op(c.op))
        return 0;
    FOR_CHUNKS(c) chunk_values(&c, v);
    return 1;
}

int reduce_lanes_tangent(const pyad_tape *t, int64_t i, int64_t lanes, double *v, double *vd)
{
    struct chunk c = chunk_at(t, i, lanes);
    if (!lanes_op(c.op))
        return 0;
    FOR_CHUNKS(c) {
        chunk_values(&c, v);
        chunk_tangent(&c, v, vd);
    }
    return 1;
}

int reduce_lanes_reverse(const pyad_tape *t, int64_t i, int64_t lanes, const double *v,
                         double *adj)
{
    struct chunk c = chunk_at(t, i, lanes);
    if (!lanes_op(c.op))
        return 0;
    FOR_CHUNKS(c) chunk_reverse(&c, v, NULL, adj, NULL);
    return 1;
}

int reduce_lanes_second(const pyad_tape *t, int64_t i, int64_t lanes, const double *v,
                        const double *vd, double *adj, double *adjd)
{
    struct chunk c = chunk_at(t, i, lanes);
    if (!lanes_op(c.op))
        return 0;
    FOR_CHUNKS(c) chunk_reverse(&c, v, vd, adj, adjd);
    return 1;
}
