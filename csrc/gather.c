/* Gathers, reductions and scans: recording, validation and every sweep.
 *
 * One kernel per row kind and sweep works on ONE lane of each work array (a
 * pointer and the distance between consecutive slots): the one-point sweeps
 * have one lane, the batched ones nb (slot s, lane j at s * nb + j), the vector
 * sweeps one value lane and p tangent / adjoint lanes. So each rule is written
 * once and every sweep loops over lanes around it.
 *
 * Products stay exact at zeros: no rule divides by an operand. The reverse of a
 * product multiplies the products of the two halves of its operands into the
 * seed and recurses (a prefix/suffix scan at the leaves), the reverse of a
 * cumulative product runs the recurrence z_j = z_{j-1} x_j backwards. Second
 * order carries (value, tangent) pairs through the same steps. */
#include <string.h>

#include "gather.h"
#include "lanes.h"
#include "record.h"
#include "sweep.h"

/* ---- lanes ---- */

struct lane {
    double *p; /* NULL: a lane the sweep does not update */
    int64_t step;
};

#define AT(l, s) ((l).p[(int64_t)(s) * (l).step])

static struct lane lane_of(const double *base, int64_t j, int64_t step)
{
    return (struct lane){(double *)base + j, step};
}

static const struct lane NO_LANE = {NULL, 0};

/* ---- one row, widened ---- */

struct row {
    int op;
    int64_t f;    /* first slot defined */
    int64_t a;    /* operand origin (gather: pool offset) */
    int64_t m, k; /* layout: m rows of k; gather: m = width, k = 1 */
    int64_t sa, sb;
    const int32_t *idx; /* gather's slot list */
};

static struct row row_at(const pyad_tape *t, int64_t i)
{
    struct block bl = block_at(t, i);
    struct row r = {t->op[bl.row], t->first[bl.row], t->arg_a[bl.row], bl.w, t->arg_b[bl.row],
                    bl.sa, bl.sb, NULL};
    if (r.op == OP_gather) {
        r.idx = t->pool + r.a;
        r.k = 1;
    } else if (r.op == OP_cumsum || r.op == OP_cumprod) {
        r.m = bl.w / r.k;
    }
    return r;
}

/* Slot of element (i, j) of the operand layout. */
#define XS(r, i, j) ((r)->a + (r)->sa * (i) + (r)->sb * (j))

/* ---- sums: numpy's pairwise summation (8 partial sums in blocks of <= 128,
 * halves above), so a sum's rounding error grows with log n, not n ---- */

static double pairwise_sum(const double *x, int64_t s, int64_t n)
{
    if (n < 8) {
        double r = -0.0; /* the identity of +, for -0.0 too */
        for (int64_t j = 0; j < n; ++j)
            r += x[j * s];
        return r;
    }
    if (n <= 128) {
        double p[8];
        for (int q = 0; q < 8; ++q)
            p[q] = x[q * s];
        int64_t j = 8;
        for (; j + 8 <= n; j += 8)
            for (int q = 0; q < 8; ++q)
                p[q] += x[(j + q) * s];
        double r = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
        for (; j < n; ++j)
            r += x[j * s];
        return r;
    }
    int64_t h = n / 2;
    h -= h % 8;
    return pairwise_sum(x, s, h) + pairwise_sum(x + h * s, s, n - h);
}

/* ---- max / min: NaN wins (numpy), ties share the derivative evenly (JAX) ---- */

static int is_tie(double x, double m) { return x == m || (x != x && m != m); }

static double extremum_strided(const double *x, int64_t s, int64_t n, int is_max)
{
    double m = x[0];
    for (int64_t j = 1; j < n && m == m; ++j) {
        double y = x[j * s];
        if (y != y || (is_max ? y > m : y < m))
            m = y;
    }
    return m;
}

/* ---- products on (value, tangent) pairs; a zero tangent is a structural zero ---- */

struct dual {
    double v, d;
};

static struct dual dual_mul(struct dual a, struct dual b)
{
    return (struct dual){a.v * b.v, scaled(a.v, b.d) + scaled(b.v, a.d)};
}

/* A seed (adjoint, adjoint tangent) times a factor: a zero seed stays zero even
 * where the factor is inf (scaled). */
static struct dual seed_mul(struct dual g, struct dual f)
{
    return (struct dual){scaled(f.v, g.v), scaled(f.v, g.d) + scaled(f.d, g.v)};
}

/* Operand j of a product: x[j * xs], its tangent t[j * ts] (t NULL: 0). */
static struct dual operand(const double *x, int64_t xs, const double *t, int64_t ts, int64_t j)
{
    return (struct dual){x[j * xs], t ? t[j * ts] : 0.0};
}

static struct dual product(const double *x, int64_t xs, const double *t, int64_t ts, int64_t n)
{
    struct dual p = operand(x, xs, t, ts, 0);
    for (int64_t j = 1; j < n; ++j)
        p = dual_mul(p, operand(x, xs, t, ts, j));
    return p;
}

#define PRODUCT_LEAF 16

/* For each operand j of the n-term product: adj[j * as] += g.v * (product of the
 * others) and adjd[j * ds] += the tangent of that (adj or adjd NULL: skipped). */
static void product_reverse(const double *x, int64_t xs, const double *t, int64_t ts,
                            int64_t n, struct dual g, double *adj, int64_t as, double *adjd,
                            int64_t ds)
{
    if (g.v == 0.0 && g.d == 0.0)
        return;
    if (n <= PRODUCT_LEAF) {
        struct dual after[PRODUCT_LEAF], before = {1.0, 0.0};
        after[n - 1] = before;
        for (int64_t j = n - 2; j >= 0; --j)
            after[j] = dual_mul(after[j + 1], operand(x, xs, t, ts, j + 1));
        for (int64_t j = 0; j < n; ++j) {
            struct dual c = seed_mul(g, dual_mul(before, after[j]));
            if (adj)
                adj[j * as] += c.v;
            if (adjd)
                adjd[j * ds] += c.d;
            before = dual_mul(before, operand(x, xs, t, ts, j));
        }
        return;
    }
    int64_t h = n / 2;
    const double *t2 = t ? t + h * ts : NULL;
    struct dual left = product(x, xs, t, ts, h), right = product(x + h * xs, xs, t2, ts, n - h);
    product_reverse(x, xs, t, ts, h, seed_mul(g, right), adj, as, adjd, ds);
    product_reverse(x + h * xs, xs, t2, ts, n - h, seed_mul(g, left), adj ? adj + h * as : NULL,
                    as, adjd ? adjd + h * ds : NULL, ds);
}

/* ---- the kernels: one lane ---- */

static void lane_values(const struct row *r, struct lane v)
{
    if (r->op == OP_gather) {
        for (int64_t e = 0; e < r->m; ++e)
            AT(v, r->f + e) = AT(v, r->idx[e]);
        return;
    }
    int64_t xs = r->sb * v.step;
    for (int64_t i = 0; i < r->m; ++i) {
        const double *x = &AT(v, XS(r, i, 0));
        switch (r->op) {
        case OP_reduce_add:
            AT(v, r->f + i) = pairwise_sum(x, xs, r->k);
            break;
        case OP_reduce_mul:
            AT(v, r->f + i) = product(x, xs, NULL, 0, r->k).v;
            break;
        case OP_reduce_max:
        case OP_reduce_min:
            AT(v, r->f + i) = extremum_strided(x, xs, r->k, r->op == OP_reduce_max);
            break;
        case OP_cumsum: {
            double s = -0.0;
            for (int64_t j = 0; j < r->k; ++j)
                AT(v, r->f + i * r->k + j) = s += x[j * xs];
            break;
        }
        case OP_cumprod: {
            double p = 1.0;
            for (int64_t j = 0; j < r->k; ++j)
                AT(v, r->f + i * r->k + j) = p = j ? p * x[j * xs] : x[0];
            break;
        }
        }
    }
}

/* Tangents, the values being in v already. */
static void lane_tangent(const struct row *r, struct lane v, struct lane vd)
{
    if (r->op == OP_gather) {
        for (int64_t e = 0; e < r->m; ++e)
            AT(vd, r->f + e) = AT(vd, r->idx[e]);
        return;
    }
    int64_t xs = r->sb * v.step, ts = r->sb * vd.step;
    for (int64_t i = 0; i < r->m; ++i) {
        const double *x = &AT(v, XS(r, i, 0)), *t = &AT(vd, XS(r, i, 0));
        double *zd = &AT(vd, r->f + i);
        switch (r->op) {
        case OP_reduce_add:
            *zd = pairwise_sum(t, ts, r->k);
            break;
        case OP_reduce_mul:
            *zd = product(x, xs, t, ts, r->k).d;
            break;
        case OP_reduce_max:
        case OP_reduce_min: {
            double m = AT(v, r->f + i), sum = 0.0;
            int64_t ties = 0;
            for (int64_t j = 0; j < r->k; ++j)
                if (is_tie(x[j * xs], m)) {
                    sum += t[j * ts];
                    ++ties;
                }
            *zd = sum / (double)ties;
            break;
        }
        case OP_cumsum: {
            double s = -0.0;
            for (int64_t j = 0; j < r->k; ++j)
                AT(vd, r->f + i * r->k + j) = s += t[j * ts];
            break;
        }
        case OP_cumprod: {
            struct dual p = operand(x, xs, t, ts, 0);
            AT(vd, r->f + i * r->k) = p.d;
            for (int64_t j = 1; j < r->k; ++j) {
                p = dual_mul(p, operand(x, xs, t, ts, j));
                AT(vd, r->f + i * r->k + j) = p.d;
            }
            break;
        }
        }
    }
}

/* Reverse, and forward-over-reverse: vd.p NULL means zero tangents and adjd.p
 * NULL no adjoint tangents; write_adj 0 reads the adjoints (second order needs
 * them) but leaves them to another lane (the vector sweep's direction 0). */
static void lane_reverse2(const struct row *r, struct lane v, struct lane vd, struct lane adj,
                          struct lane adjd, int write_adj)
{
    if (r->op == OP_gather) { /* a scatter-add: repeated slots accumulate */
        for (int64_t e = r->m - 1; e >= 0; --e) {
            int64_t s = r->idx[e];
            if (write_adj)
                AT(adj, s) += AT(adj, r->f + e);
            if (adjd.p)
                AT(adjd, s) += AT(adjd, r->f + e);
        }
        return;
    }
    int64_t xs = r->sb * v.step, ts = r->sb * vd.step, as = r->sb * adj.step,
            ds = r->sb * adjd.step;
    for (int64_t i = r->m - 1; i >= 0; --i) {
        int64_t x0 = XS(r, i, 0);
        const double *x = &AT(v, x0), *t = vd.p ? &AT(vd, x0) : NULL;
        double *ga = write_adj ? &AT(adj, x0) : NULL, *gd = adjd.p ? &AT(adjd, x0) : NULL;
        switch (r->op) {
        case OP_reduce_add: {
            double g = AT(adj, r->f + i), h = adjd.p ? AT(adjd, r->f + i) : 0.0;
            for (int64_t j = r->k - 1; j >= 0; --j) {
                if (ga)
                    ga[j * as] += g;
                if (gd)
                    gd[j * ds] += h;
            }
            break;
        }
        case OP_reduce_mul: {
            struct dual g = {AT(adj, r->f + i), adjd.p ? AT(adjd, r->f + i) : 0.0};
            product_reverse(x, xs, t, ts, r->k, g, ga, as, gd, ds);
            break;
        }
        case OP_reduce_max:
        case OP_reduce_min: {
            double m = AT(v, r->f + i), ties = 0.0;
            for (int64_t j = 0; j < r->k; ++j)
                ties += is_tie(x[j * xs], m);
            double g = AT(adj, r->f + i) / ties;
            double h = adjd.p ? AT(adjd, r->f + i) / ties : 0.0;
            for (int64_t j = r->k - 1; j >= 0; --j)
                if (is_tie(x[j * xs], m)) {
                    if (ga)
                        ga[j * as] += g;
                    if (gd)
                        gd[j * ds] += h;
                }
            break;
        }
        case OP_cumsum: {
            double c = 0.0, cd = 0.0;
            for (int64_t j = r->k - 1; j >= 0; --j) {
                int64_t z = r->f + i * r->k + j;
                c += AT(adj, z);
                cd += adjd.p ? AT(adjd, z) : 0.0;
                if (ga)
                    ga[j * as] += c;
                if (gd)
                    gd[j * ds] += cd;
            }
            break;
        }
        case OP_cumprod: {
            /* c: the adjoint of z_j, all later results included (z_{j+1} = z_j x_{j+1}) */
            struct dual c = {0.0, 0.0};
            for (int64_t j = r->k - 1; j >= 0; --j) {
                int64_t z = r->f + i * r->k + j;
                struct dual g = {AT(adj, z), adjd.p ? AT(adjd, z) : 0.0};
                if (j < r->k - 1)
                    c = seed_mul(c, operand(x, xs, t, ts, j + 1));
                c.v += g.v;
                c.d += g.d;
                struct dual before = {1.0, 0.0}; /* z_{j-1} and its tangent */
                if (j > 0)
                    before = (struct dual){AT(v, z - 1), vd.p ? AT(vd, z - 1) : 0.0};
                struct dual e = seed_mul(c, before);
                if (ga)
                    ga[j * as] += e.v;
                if (gd)
                    gd[j * ds] += e.d;
            }
            break;
        }
        }
    }
}

/* ---- the sweeps: lanes around the kernels (with points, reductions and scans
 * go to reduce_lanes.c, which puts them innermost) ---- */

void rows_values(const pyad_tape *t, int64_t i, int64_t lanes, double *v)
{
    if (lanes > 1 && reduce_lanes_values(t, i, lanes, v))
        return;
    struct row r = row_at(t, i);
    if (r.op == OP_gather && lanes > 1) { /* lanes are contiguous: copy each slot's */
        for (int64_t e = 0; e < r.m; ++e)
            memcpy(v + (r.f + e) * lanes, v + (int64_t)r.idx[e] * lanes,
                   (size_t)lanes * sizeof *v);
        return;
    }
    for (int64_t j = 0; j < lanes; ++j)
        lane_values(&r, lane_of(v, j, lanes));
}

void rows_tangent(const pyad_tape *t, int64_t i, int64_t lanes, double *v, double *vd)
{
    if (lanes > 1 && reduce_lanes_tangent(t, i, lanes, v, vd))
        return;
    struct row r = row_at(t, i);
    for (int64_t j = 0; j < lanes; ++j) {
        lane_values(&r, lane_of(v, j, lanes));
        lane_tangent(&r, lane_of(v, j, lanes), lane_of(vd, j, lanes));
    }
}

void rows_reverse(const pyad_tape *t, int64_t i, int64_t lanes, const double *v, double *adj)
{
    if (lanes > 1 && reduce_lanes_reverse(t, i, lanes, v, adj))
        return;
    struct row r = row_at(t, i);
    if (r.op == OP_gather && lanes > 1) {
        for (int64_t e = r.m - 1; e >= 0; --e) {
            const double *g = adj + (r.f + e) * lanes;
            double *ga = adj + (int64_t)r.idx[e] * lanes;
            for (int64_t j = 0; j < lanes; ++j)
                ga[j] += g[j];
        }
        return;
    }
    for (int64_t j = 0; j < lanes; ++j)
        lane_reverse2(&r, lane_of(v, j, lanes), NO_LANE, lane_of(adj, j, lanes), NO_LANE, 1);
}

void rows_second(const pyad_tape *t, int64_t i, int64_t lanes, const double *v,
                 const double *vd, double *adj, double *adjd)
{
    if (lanes > 1 && reduce_lanes_second(t, i, lanes, v, vd, adj, adjd))
        return;
    struct row r = row_at(t, i);
    for (int64_t j = 0; j < lanes; ++j)
        lane_reverse2(&r, lane_of(v, j, lanes), lane_of(vd, j, lanes), lane_of(adj, j, lanes),
                      lane_of(adjd, j, lanes), 1);
}

void rows_tangent_vector(const pyad_tape *t, int64_t i, int64_t p, double *v, double *vd)
{
    struct row r = row_at(t, i);
    lane_values(&r, lane_of(v, 0, 1));
    for (int64_t j = 0; j < p; ++j)
        lane_tangent(&r, lane_of(v, 0, 1), lane_of(vd, j, p));
}

void rows_reverse_vector(const pyad_tape *t, int64_t i, int64_t q, const double *v,
                         double *adj)
{
    struct row r = row_at(t, i);
    for (int64_t j = 0; j < q; ++j)
        lane_reverse2(&r, lane_of(v, 0, 1), NO_LANE, lane_of(adj, j, q), NO_LANE, 1);
}

void rows_second_vector(const pyad_tape *t, int64_t i, int64_t p, const double *v,
                        const double *vd, double *adj, double *adjd)
{
    struct row r = row_at(t, i);
    for (int64_t j = 0; j < p; ++j) /* the one adjoint lane moves with direction 0 */
        lane_reverse2(&r, lane_of(v, 0, 1), lane_of(vd, j, p), lane_of(adj, 0, 1),
                      lane_of(adjd, j, p), j == 0);
}

/* ---- validation ---- */

int rows_row_ok(int op, int32_t a, int32_t b, int32_t c, struct block bl, int64_t below,
                int64_t n_pool, const int32_t *pool)
{
    if (bl.w < 1 || bl.sa < 0 || bl.sb < 0 || bl.sc != 0 || bl.sk != 0 || c != 0 || a < 0)
        return 0;
    if (op == OP_gather) {
        if (b != 0 || bl.sa != 0 || bl.sb != 0 || (int64_t)a + bl.w > n_pool)
            return 0;
        for (int64_t e = a; e < (int64_t)a + bl.w; ++e)
            if (pool[e] < 0 || pool[e] >= below)
                return 0;
        return 1;
    }
    int64_t k = b, m = bl.w;
    if (k < 1)
        return 0;
    if (op == OP_cumsum || op == OP_cumprod) {
        if (bl.w % k)
            return 0;
        m = bl.w / k;
    }
    /* strides and counts are below 2**31, so each product is below 2**62 and the
     * sum of a and two of them fits in int64 */
    return (int64_t)a + bl.sa * (m - 1) + bl.sb * (k - 1) < below;
}

/* ---- recording ---- */

void rows_put_pool_gather(pyad_tape *t, int64_t k, int64_t slot, int64_t n)
{
    int64_t offset = t->n_pool;
    t->n_pool += n;
    tape_put_row(t, k, slot, OP_gather, (int32_t)offset, 0, 0);
    tape_put_block(t, k, n, 0, 0, 0, 0);
}

void rows_put_gather(pyad_tape *t, int64_t k, int64_t slot, const int32_t *idx, int64_t n)
{
    memcpy(t->pool + t->n_pool, idx, (size_t)n * sizeof *idx);
    rows_put_pool_gather(t, k, slot, n);
}

int pyad_rec_gather(pyad_tape *t, const int32_t *idx, int64_t n)
{
    if (!t)
        return PYAD_ECLOSED;
    if (n < 1 || !idx)
        return PYAD_EINVAL;
    if (n > INT32_MAX)
        return PYAD_ETOOBIG;
    int s = tape_begin_record(t);
    if (s)
        return s;
    if (!(s = tape_reserve(t, 1, n, 1))
        && !(s = tape_reserve_list(t, &t->pool, &t->cap_pool, t->n_pool, n))
        && !(s = tape_check_slots(t, idx, n))) {
        int64_t first = t->n_ops, slot = t->n_slots;
        rows_put_gather(t, first, slot, idx, n);
        tape_finish_rows(t, first, 1, n);
        s = (int)slot;
    }
    tape_end_record(t);
    return s;
}

/* Whether the m x k slots x (row-major) are x[0] + sa * i + sb * j, sa, sb >= 0. */
static int affine_layout(const int32_t *x, int64_t m, int64_t k, int64_t *sa, int64_t *sb)
{
    *sa = m > 1 ? (int64_t)x[k] - x[0] : 0;
    *sb = k > 1 ? (int64_t)x[1] - x[0] : 0;
    if (*sa < 0 || *sb < 0)
        return 0;
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < k; ++j)
            if (x[i * k + j] != x[0] + *sa * i + *sb * j)
                return 0;
    return 1;
}

/* Whether the m x k layout a + sa * i + sb * j (sa, sb >= 0) names existing
 * slots only. Each product is below 2**62 (all factors below 2**31). */
static int layout_in_range(const pyad_tape *t, int64_t a, int64_t sa, int64_t sb, int64_t m,
                           int64_t k)
{
    return a >= 0 && sa >= 0 && sb >= 0 && sa <= INT32_MAX && sb <= INT32_MAX
           && a + sa * (m - 1) + sb * (k - 1) < t->n_slots;
}

/* One row of op over m x k slots defining `width` slots: the slots x
 * (row-major), read in place where they are an affine layout, else after a
 * gather row; or, x NULL, the layout a + sa * i + sb * j. Returns the row's
 * first slot. */
static int record_layout_row(pyad_tape *t, int op, const int32_t *x, int64_t a, int64_t sa,
                             int64_t sb, int64_t m, int64_t k, int64_t width)
{
    int64_t n = m * k;
    int gathered = x && !affine_layout(x, m, k, &sa, &sb);
    int64_t rows = 1 + gathered, slots = width + (gathered ? n : 0);
    int s = tape_begin_record(t);
    if (s)
        return s;
    if (!(s = tape_reserve(t, rows, slots, rows))
        && !(s = tape_reserve_list(t, &t->pool, &t->cap_pool, t->n_pool, gathered ? n : 0))
        && !(s = x ? tape_check_slots(t, x, n)
                   : layout_in_range(t, a, sa, sb, m, k) ? PYAD_OK : PYAD_EINDEX)) {
        int64_t first = t->n_ops, slot = t->n_slots;
        if (x)
            a = x[0];
        if (gathered) {
            rows_put_gather(t, first, slot, x, n);
            a = slot, sa = k, sb = 1;
            slot += n;
        }
        tape_put_row(t, first + gathered, slot, op, (int32_t)a, (int32_t)k, 0);
        tape_put_block(t, first + gathered, width, sa, sb, 0, 0);
        tape_finish_rows(t, first, rows, slots);
        s = (int)slot;
    }
    tape_end_record(t);
    return s;
}

/* The row kind reducing (or scanning) with the binary op, or -1. */
static int layout_op(int op, int scan)
{
    if (op == OP_add)
        return scan ? OP_cumsum : OP_reduce_add;
    if (op == OP_mul)
        return scan ? OP_cumprod : OP_reduce_mul;
    if (op == OP_maximum && !scan)
        return OP_reduce_max;
    if (op == OP_minimum && !scan)
        return OP_reduce_min;
    return -1;
}

int pyad_rec_reduce(pyad_tape *t, int op, const int32_t *x, int64_t m, int64_t k, int32_t *out)
{
    if (!t)
        return PYAD_ECLOSED;
    int row_op = layout_op(op, 0);
    if (row_op < 0 || m < 0 || k < 1 || m > INT32_MAX || k > INT32_MAX
        || (m > 0 && (!x || !out)))
        return PYAD_EINVAL;
    if (m * k + m > INT32_MAX)
        return PYAD_ETOOBIG;
    if (m == 0)
        return PYAD_OK;
    if (k == 1) { /* each result is its one operand: nothing to record */
        int s = tape_begin_record(t);
        if (s)
            return s;
        if ((s = tape_check_slots(t, x, m)) == PYAD_OK)
            memcpy(out, x, (size_t)m * sizeof *x);
        tape_end_record(t);
        return s;
    }
    int s = record_layout_row(t, row_op, x, 0, 0, 0, m, k, m);
    if (s < 0)
        return s;
    for (int64_t i = 0; i < m; ++i)
        out[i] = (int32_t)(s + i);
    return PYAD_OK;
}

int pyad_rec_scan(pyad_tape *t, int op, const int32_t *x, int64_t m, int64_t k)
{
    if (!t)
        return PYAD_ECLOSED;
    int row_op = layout_op(op, 1);
    if (row_op < 0 || m < 1 || k < 1 || m > INT32_MAX || k > INT32_MAX || !x)
        return PYAD_EINVAL;
    if (2 * m * k > INT32_MAX)
        return PYAD_ETOOBIG;
    return record_layout_row(t, row_op, x, 0, 0, 0, m, k, m * k);
}

int pyad_rec_reduce_view(pyad_tape *t, int op, int64_t first, int64_t m, int64_t k, int64_t sm,
                         int64_t sk)
{
    if (!t)
        return PYAD_ECLOSED;
    int row_op = layout_op(op, 0);
    if (row_op < 0 || m < 1 || k < 2 || m > INT32_MAX || k > INT32_MAX || sm < 0 || sk < 0)
        return PYAD_EINVAL;
    if (m * k + m > INT32_MAX)
        return PYAD_ETOOBIG;
    return record_layout_row(t, row_op, NULL, first, sm, sk, m, k, m);
}
