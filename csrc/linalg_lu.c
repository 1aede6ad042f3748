/* LU-family rows: np.linalg.solve, inv, det, slogdet, one row per matrix.
 *
 * The value sweep factors with LAPACK (getrf, then getrs / getri; gesdd for
 * det) and keeps what the derivative sweeps need in extra slots of the row's
 * own block, after its results, so every sweep (and batched replay, where each
 * point has its own lane of those slots) reads them without factoring again.
 * They hold values only: tangents there are set to zero and adjoints there are
 * never read. What is kept is what numpy can also compute (an inverse, an SVD),
 * not LAPACK's packed LU, so that a tape saved by one backend replays in the
 * other (pyad/_python_linalg_lu.py is the twin), and so that the derivative
 * sweeps are BLAS-3 products rather than triangular solves.
 *
 *   op       results (from the first slot)  kept after them                 block SA, SB
 *   solve    Z = A^-1 B (n*m)               W = A^-1 (n*n), info            n, m
 *   inv      Z = A^-1   (n*n)               info                            n, 0
 *   det      d = det A                      sigma, C (n*n), U (n*n), s (n), n, 0
 *                                           Vt (n*n)
 *   slogdet  sign, l = log|det A|           W = A^-1 (n*n)                  n, 0
 *
 * A (arg_a) and B (arg_b, solve only) are contiguous row-major slots. info is
 * 1 where the matrix is exactly singular (getrf's zero pivot): the results are
 * NaN there and the sweeps report the row (lu_singular). det keeps an SVD
 * A = U diag(s) Vt with sigma = det(U) det(Vt), so its gradient, the cofactor
 * matrix C = sigma U diag(c) Vt with c_i = prod_{j != i} s_j, is exact for a
 * singular matrix too (nonzero at rank n - 1).
 *
 * Rules (Giles 2008 for first order; ' marks the tangent of an adjoint):
 *   solve    Zd = W (Bd - Ad Z);  Bb = W^T Zb, B_adj += Bb, A_adj -= Bb Z^T;
 *            Bq = W^T (Zb' - Ad^T Bb), B_adj' += Bq, A_adj' -= Bq Z^T + Bb Zd^T
 *   inv      Zd = -Z Ad Z;  A_adj -= Z^T Zb Z^T;
 *            A_adj' -= Zd^T Zb Z^T + Z^T Zb' Z^T + Z^T Zb Zd^T
 *   det      dd = <C, Ad>;  A_adj += db C;  A_adj' += db' C + db sigma U G Vt, where
 *            M = U^T Ad Vt^T, G_jj = sum_{i != j} c_ij M_ii, G_ji = -c_ij M_ij (i != j),
 *            c_ij = prod_{k != i, j} s_k: the second-order term of det(S + t M)
 *   slogdet  ld = <W^T, Ad>;  A_adj += lb W^T;  A_adj' += lb' W^T - lb (W Ad W)^T;
 *            the sign has no derivative
 *
 * Lanes: slot s, lane l at s * L + l (L = 1 for a one-point array, as in
 * product.c). Each lane is copied into contiguous scratch, computed, copied
 * back. Scratch that cannot be allocated leaves NaN where the results would
 * go, which the value sweep reports as a singular row would be. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "lapack.h"
#include "linalg_lu.h"
#include "record.h"

struct lu {
    int op;
    int64_t n, m, a, b, z, w;
};

static struct lu lu_at(const pyad_tape *t, int64_t i)
{
    struct block bl = block_at(t, i);
    return (struct lu){t->op[bl.row], bl.sa, bl.sb, t->arg_a[bl.row], t->arg_b[bl.row],
                       t->first[bl.row], bl.w};
}

/* Offsets, from the first slot, of what each row keeps. */
static int64_t kept_w(const struct lu *r) { return r->op == OP_solve ? r->n * r->m : 2; }
static int64_t kept_info(const struct lu *r)
{
    return r->op == OP_solve ? r->n * r->m + r->n * r->n : r->n * r->n;
}
enum { DET_SIGMA = 1, DET_C = 2 };
static int64_t det_u(int64_t n) { return DET_C + n * n; }
static int64_t det_s(int64_t n) { return DET_C + 2 * n * n; }
static int64_t det_vt(int64_t n) { return DET_C + 2 * n * n + n; }

int64_t lu_width(int op, int64_t n, int64_t m)
{
    if (n < 1 || n > 46340 || m < 0 || m > INT32_MAX / n) /* n * n and n * m fit int32 */
        return -1;
    int64_t w = op == OP_solve ? n * m + n * n + 1
              : op == OP_inv   ? n * n + 1
              : op == OP_det   ? 2 + 3 * n * n + n
              : op == OP_slogdet ? 2 + n * n : -1;
    if ((op == OP_solve) != (m > 0))
        return -1;
    return w > INT32_MAX ? -1 : w;
}

/* ---- lanes and scratch ---- */

static int64_t lane_of(int64_t lanes, int64_t l) { return lanes > 1 ? l : 0; }

static void load(double *dst, const double *arr, int64_t slot, int64_t count, int64_t lanes,
                 int64_t l)
{
    const double *p = arr + slot * lanes + lane_of(lanes, l);
    for (int64_t e = 0; e < count; ++e)
        dst[e] = p[e * lanes];
}

static void put(double *arr, int64_t slot, int64_t count, int64_t lanes, int64_t l,
                const double *src)
{
    double *p = arr + slot * lanes + lane_of(lanes, l);
    for (int64_t e = 0; e < count; ++e)
        p[e * lanes] = src ? src[e] : 0.0;
}

static void put_value(double *arr, int64_t slot, int64_t lanes, int64_t l, double x)
{
    arr[slot * lanes + lane_of(lanes, l)] = x;
}

static void accumulate(double *arr, int64_t slot, int64_t count, int64_t lanes, int64_t l,
                       const double *src)
{
    double *p = arr + slot * lanes + lane_of(lanes, l);
    for (int64_t e = 0; e < count; ++e)
        p[e * lanes] += src[e];
}

static void fill(double *x, int64_t count, double value)
{
    for (int64_t e = 0; e < count; ++e)
        x[e] = value;
}

/* out (m x n) = alpha op(x) op(y) + beta out, all row-major and contiguous. */
static void mm(int tx, int ty, int64_t m, int64_t n, int64_t k, double alpha, const double *x,
               const double *y, double beta, double *out)
{
    scipy_cblas_dgemm(BLAS_ROW_MAJOR, tx ? BLAS_TRANS : BLAS_NO_TRANS,
                      ty ? BLAS_TRANS : BLAS_NO_TRANS, (int)m, (int)n, (int)k, alpha, x,
                      (int)(tx ? m : k), y, (int)(ty ? k : n), beta, out, (int)n);
}

static double frobenius_dot(const double *x, const double *y, int64_t count)
{
    double s = 0.0;
    for (int64_t e = 0; e < count; ++e)
        s += x[e] * y[e];
    return s;
}

/* ---- the value sweep ---- */

/* getrf of the row-major x (LAPACK factors its transpose, whose determinant is
 * the same); returns info, the sign of det in *sign and log|det| in *logabs. */
static int factor(double *x, int n, int *ipiv, double *sign, double *logabs)
{
    int info = 0;
    scipy_dgetrf_(&n, &n, x, &n, ipiv, &info);
    double sg = 1.0, la = 0.0;
    for (int i = 0; i < n; ++i) {
        double u = x[i * n + i];
        if (ipiv[i] != i + 1)
            sg = -sg;
        if (u < 0)
            sg = -sg;
        la += log(fabs(u));
    }
    if (info > 0)
        sg = 0.0;
    *sign = sg;
    *logabs = la;
    return info;
}

/* Turns factor()'s result in place into the inverse of the matrix it was
 * (getri inverts A^T column-major: read row-major that is A^-1). */
static int invert(double *x, int n, const int *ipiv, double *work, int lwork)
{
    int info = 0;
    scipy_dgetri_(&n, x, &n, ipiv, work, &lwork, &info);
    return info;
}

/* Solves A X = y in place (y row-major n x m) with factor()'s result of A. */
static int solve_factored(const double *f, int n, int m, const int *ipiv, double *y,
                          double *cm)
{
    for (int i = 0; i < n; ++i)
        for (int j = 0; j < m; ++j)
            cm[i + (int64_t)j * n] = y[(int64_t)i * m + j];
    int info = 0;
    const char trans = 'T'; /* f factors A^T, so its transpose system is A X = y */
    scipy_dgetrs_(&trans, &n, &m, f, &n, ipiv, cm, &n, &info, 1);
    for (int i = 0; i < n; ++i)
        for (int j = 0; j < m; ++j)
            y[(int64_t)i * m + j] = cm[i + (int64_t)j * n];
    return info;
}

/* The sign of det x (x is overwritten). */
static double det_sign(double *x, int n, int *ipiv)
{
    double sign, logabs;
    factor(x, n, ipiv, &sign, &logabs);
    return sign;
}

/* The products c_i = prod_{j != i} s_j (no division: exact with zeros). */
static void others_product(const double *s, int64_t n, double *c)
{
    for (int64_t i = 0; i < n; ++i) {
        double p = 1.0;
        for (int64_t j = 0; j < n; ++j)
            if (j != i)
                p *= s[j];
        c[i] = p;
    }
}

/* det's kept values: the SVD, sigma and the cofactor matrix, into kept (laid
 * out from DET_SIGMA as the row's slots are, minus one). 0 if gesdd failed. */
static int det_svd(const double *a, int n, double *kept, double *scratch, int *iscratch)
{
    int64_t nn = (int64_t)n * n;
    double *u = kept + det_u(n) - 1, *s = kept + det_s(n) - 1, *vt = kept + det_vt(n) - 1;
    double *c = kept + DET_C - 1, *x = scratch, *cs = scratch + nn, *work = scratch + nn + n;
    memcpy(x, a, (size_t)nn * sizeof *x);
    /* LAPACK decomposes A^T = Ux S Vx^T: A = Vx S Ux^T, so our U is its vt read
     * row-major and our Vt its u. */
    int info = 0, lwork = -1;
    double size = 0.0;
    const char jobz = 'A';
    scipy_dgesdd_(&jobz, &n, &n, x, &n, s, vt, &n, u, &n, &size, &lwork, iscratch, &info, 1);
    lwork = (int)size;
    double *big = malloc((size_t)(lwork > 1 ? lwork : 1) * sizeof *big);
    if (!big || info)
        info = -1;
    else
        scipy_dgesdd_(&jobz, &n, &n, x, &n, s, vt, &n, u, &n, big, &lwork, iscratch, &info, 1);
    free(big);
    if (info)
        return 0;
    memcpy(x, u, (size_t)nn * sizeof *x);
    double sigma = det_sign(x, n, iscratch);
    memcpy(x, vt, (size_t)nn * sizeof *x);
    sigma *= det_sign(x, n, iscratch);
    kept[DET_SIGMA - 1] = sigma;
    others_product(s, n, cs);
    for (int64_t i = 0; i < n; ++i) /* work = diag(sigma c) Vt */
        for (int64_t j = 0; j < n; ++j)
            work[i * n + j] = sigma * cs[i] * vt[i * n + j];
    mm(0, 0, n, n, n, 1.0, u, work, 0.0, c);
    return 1;
}

/* Scratch doubles and ints a value sweep of r needs per lane. */
static int64_t value_scratch(const struct lu *r)
{
    int64_t n = r->n, nn = n * n;
    return nn + 2 * n * r->m + 64 * n + (1 + 3 * nn + n) + (2 * nn + n);
}

static void values_one(const struct lu *r, double *v, int64_t lanes, int64_t l, double *buf,
                       int *ipiv)
{
    int n = (int)r->n, m = (int)r->m;
    int64_t nn = r->n * r->n;
    double *f = buf, *y = f + nn, *cm = y + r->n * r->m, *work = cm + r->n * r->m;
    int lwork = 64 * n;
    double *kept = work + lwork, *svd = kept + 1 + 3 * nn + r->n; /* det: from sigma on */
    double sign, logabs;
    load(f, v, r->a, nn, lanes, l);
    int info = factor(f, n, ipiv, &sign, &logabs);
    switch (r->op) {
    case OP_solve:
        load(y, v, r->b, r->n * r->m, lanes, l);
        if (!info)
            info = solve_factored(f, n, m, ipiv, y, cm);
        if (!info)
            info = invert(f, n, ipiv, work, lwork);
        if (info) {
            fill(y, r->n * r->m, NAN);
            fill(f, nn, NAN);
        }
        put(v, r->z, r->n * r->m, lanes, l, y);
        put(v, r->z + kept_w(r), nn, lanes, l, f);
        put_value(v, r->z + kept_info(r), lanes, l, info ? 1.0 : 0.0);
        break;
    case OP_inv:
        if (!info)
            info = invert(f, n, ipiv, work, lwork);
        if (info)
            fill(f, nn, NAN);
        put(v, r->z, nn, lanes, l, f);
        put_value(v, r->z + kept_info(r), lanes, l, info ? 1.0 : 0.0);
        break;
    case OP_slogdet:
        put_value(v, r->z, lanes, l, sign);
        put_value(v, r->z + 1, lanes, l, info ? -INFINITY : logabs);
        if (info || invert(f, n, ipiv, work, lwork))
            fill(f, nn, NAN); /* log|det| has a pole here: its derivatives are NaN */
        put(v, r->z + kept_w(r), nn, lanes, l, f);
        break;
    case OP_det: {
        put_value(v, r->z, lanes, l, info ? 0.0 : sign * exp(logabs));
        load(f, v, r->a, nn, lanes, l);
        if (!det_svd(f, n, kept, svd, ipiv))
            fill(kept, 1 + 3 * nn + r->n, NAN);
        put(v, r->z + DET_SIGMA, 1 + 3 * nn + r->n, lanes, l, kept);
        break;
    }
    }
}

void lu_values(const pyad_tape *t, int64_t i, int64_t lv, double *v)
{
    struct lu r = lu_at(t, i);
    double *buf = malloc((size_t)value_scratch(&r) * sizeof *buf);
    int *ipiv = malloc((size_t)(8 * r.n) * sizeof *ipiv);
    for (int64_t l = 0; l < lv; ++l) {
        if (buf && ipiv) {
            values_one(&r, v, lv, l, buf, ipiv);
        } else { /* no memory: NaN results, reported as a singular row would be */
            for (int64_t e = 0; e < r.w; ++e)
                put_value(v, r.z + e, lv, l, NAN);
            if (r.op == OP_solve || r.op == OP_inv)
                put_value(v, r.z + kept_info(&r), lv, l, 1.0);
        }
    }
    free(buf);
    free(ipiv);
}

int lu_singular(const pyad_tape *t, int64_t i, const double *v, int64_t lanes, int64_t l)
{
    struct lu r = lu_at(t, i);
    if (r.op != OP_solve && r.op != OP_inv)
        return 0;
    return v[(r.z + kept_info(&r)) * lanes + lane_of(lanes, l)] != 0.0;
}

/* ---- derivative sweeps ---- */

/* One lane of what a derivative rule reads, copied out (Z, the kept values,
 * A's and Z's tangents, Z's adjoint and its tangent), and three temporaries. */
struct lane_vals {
    double *z, *kept, *ad, *zd, *g, *q, *t1, *t2, *t3;
};

static double *lane_scratch(const struct lu *r, struct lane_vals *s)
{
    int64_t nn = r->n * r->n, big = r->m > r->n ? r->n * r->m : nn;
    double *buf = malloc((size_t)(8 * big + 1 + 3 * nn + r->n) * sizeof *buf);
    if (!buf)
        return NULL;
    double **each[] = {&s->z, &s->zd, &s->g, &s->q, &s->ad, &s->t1, &s->t2, &s->t3};
    for (int k = 0; k < 8; ++k)
        *each[k] = buf + k * big;
    s->kept = buf + 8 * big; /* det: sigma, C, U, s, Vt */
    return buf;
}

/* NaN in count slots of lane l: a rule that could not get scratch. */
static void poison(double *arr, int64_t slot, int64_t count, int64_t lanes, int64_t l)
{
    double *p = arr + slot * lanes + lane_of(lanes, l);
    for (int64_t e = 0; e < count; ++e)
        p[e * lanes] = NAN;
}

static void tangent_one(const struct lu *r, const double *v, int64_t lv, double *vd, int64_t lt,
                        int64_t l, struct lane_vals *s)
{
    int64_t n = r->n, nn = n * n, m = r->m, lvl = lane_of(lv, l);
    load(s->ad, vd, r->a, nn, lt, l);
    put(vd, r->z, r->w, lt, l, NULL); /* the kept slots' tangents stay zero */
    switch (r->op) {
    case OP_solve: /* Zd = W (Bd - Ad Z) */
        load(s->z, v, r->z, n * m, lv, lvl);
        load(s->kept, v, r->z + kept_w(r), nn, lv, lvl);
        load(s->t1, vd, r->b, n * m, lt, l);
        mm(0, 0, n, m, n, -1.0, s->ad, s->z, 1.0, s->t1);
        mm(0, 0, n, m, n, 1.0, s->kept, s->t1, 0.0, s->zd);
        put(vd, r->z, n * m, lt, l, s->zd);
        break;
    case OP_inv: /* Zd = -Z Ad Z */
        load(s->z, v, r->z, nn, lv, lvl);
        mm(0, 0, n, n, n, 1.0, s->ad, s->z, 0.0, s->t1);
        mm(0, 0, n, n, n, -1.0, s->z, s->t1, 0.0, s->zd);
        put(vd, r->z, nn, lt, l, s->zd);
        break;
    case OP_det:
        load(s->kept, v, r->z + DET_C, nn, lv, lvl);
        put_value(vd, r->z, lt, l, frobenius_dot(s->kept, s->ad, nn));
        break;
    case OP_slogdet: { /* ld = tr(W Ad) */
        load(s->kept, v, r->z + kept_w(r), nn, lv, lvl);
        double d = 0.0;
        for (int64_t i = 0; i < n; ++i)
            for (int64_t j = 0; j < n; ++j)
                d += s->kept[j * n + i] * s->ad[i * n + j];
        put_value(vd, r->z + 1, lt, l, d);
        break;
    }
    }
}

void lu_tangent(const pyad_tape *t, int64_t i, int64_t lv, double *v, int64_t lt, double *vd)
{
    lu_values(t, i, lv, v);
    struct lu r = lu_at(t, i);
    struct lane_vals s;
    double *buf = lane_scratch(&r, &s);
    for (int64_t l = 0; l < lt; ++l) {
        if (buf)
            tangent_one(&r, v, lv, vd, lt, l, &s);
        else
            poison(vd, r.z, r.w, lt, l);
    }
    free(buf);
}

/* Bb = W^T Zb into s->t1 (solve), after loading Z, W and Zb. */
static void solve_adjoint_b(const struct lu *r, const double *v, int64_t lv, int64_t lvl,
                            const double *adj, int64_t lg, int64_t lgl, struct lane_vals *s)
{
    int64_t n = r->n, m = r->m;
    load(s->z, v, r->z, n * m, lv, lvl);
    load(s->kept, v, r->z + kept_w(r), n * n, lv, lvl);
    load(s->g, adj, r->z, n * m, lg, lgl);
    mm(1, 0, n, m, n, 1.0, s->kept, s->g, 0.0, s->t1);
}

static void reverse_one(const struct lu *r, const double *v, int64_t lv, double *adj,
                        int64_t lg, int64_t l, struct lane_vals *s)
{
    int64_t n = r->n, nn = n * n, m = r->m, lvl = lane_of(lv, l);
    switch (r->op) {
    case OP_solve: /* B_adj += W^T Zb, A_adj -= (W^T Zb) Z^T */
        solve_adjoint_b(r, v, lv, lvl, adj, lg, l, s);
        mm(0, 1, n, n, m, -1.0, s->t1, s->z, 0.0, s->t2);
        accumulate(adj, r->b, n * m, lg, l, s->t1);
        accumulate(adj, r->a, nn, lg, l, s->t2);
        break;
    case OP_inv: /* A_adj -= Z^T Zb Z^T */
        load(s->z, v, r->z, nn, lv, lvl);
        load(s->g, adj, r->z, nn, lg, l);
        mm(1, 0, n, n, n, 1.0, s->z, s->g, 0.0, s->t1);
        mm(0, 1, n, n, n, -1.0, s->t1, s->z, 0.0, s->t2);
        accumulate(adj, r->a, nn, lg, l, s->t2);
        break;
    case OP_det: { /* A_adj += db C */
        double g = adj[r->z * lg + lane_of(lg, l)];
        load(s->kept, v, r->z + DET_C, nn, lv, lvl);
        for (int64_t e = 0; e < nn; ++e)
            s->t1[e] = g * s->kept[e];
        accumulate(adj, r->a, nn, lg, l, s->t1);
        break;
    }
    case OP_slogdet: { /* A_adj += lb W^T */
        double g = adj[(r->z + 1) * lg + lane_of(lg, l)];
        load(s->kept, v, r->z + kept_w(r), nn, lv, lvl);
        for (int64_t i = 0; i < n; ++i)
            for (int64_t j = 0; j < n; ++j)
                s->t1[i * n + j] = g * s->kept[j * n + i];
        accumulate(adj, r->a, nn, lg, l, s->t1);
        break;
    }
    }
}

void lu_reverse(const pyad_tape *t, int64_t i, int64_t lv, const double *v, int64_t lg,
                double *adj)
{
    struct lu r = lu_at(t, i);
    struct lane_vals s;
    double *buf = lane_scratch(&r, &s);
    for (int64_t l = 0; l < lg; ++l) {
        if (buf)
            reverse_one(&r, v, lv, adj, lg, l, &s);
        else
            poison(adj, r.a, r.n * r.n, lg, l);
    }
    free(buf);
}

/* det's second-order term: into out, sigma U G Vt for M = U^T Ad Vt^T. */
static void det_second(int64_t n, const double *kept, const double *ad, double *out,
                       double *m, double *g)
{
    const double *u = kept + det_u(n) - DET_C, *s = kept + det_s(n) - DET_C;
    const double *vt = kept + det_vt(n) - DET_C;
    double sigma = kept[-1];
    mm(0, 1, n, n, n, 1.0, ad, vt, 0.0, out); /* Ad Vt^T */
    mm(1, 0, n, n, n, 1.0, u, out, 0.0, m);   /* M = U^T Ad Vt^T */
    for (int64_t j = 0; j < n; ++j) {
        g[j * n + j] = 0.0;
        for (int64_t i = 0; i < n; ++i) {
            if (i == j)
                continue;
            double cij = 1.0;
            for (int64_t k = 0; k < n; ++k)
                if (k != i && k != j)
                    cij *= s[k];
            g[j * n + j] += cij * m[i * n + i];
            g[j * n + i] = -cij * m[i * n + j];
        }
    }
    mm(0, 0, n, n, n, sigma, g, vt, 0.0, m); /* sigma G Vt */
    mm(0, 0, n, n, n, 1.0, u, m, 0.0, out);
}

static void second_one(const struct lu *r, const double *v, int64_t lv, const double *vd,
                       int64_t lt, const double *adj, int64_t lg, double *adjd, int64_t lq,
                       int64_t l, struct lane_vals *s)
{
    int64_t n = r->n, nn = n * n, m = r->m;
    int64_t lvl = lane_of(lv, l), ltl = lane_of(lt, l), lgl = lane_of(lg, l);
    load(s->ad, vd, r->a, nn, lt, ltl);
    switch (r->op) {
    case OP_solve: { /* Bq = W^T (Zb' - Ad^T Bb); A_adj' -= Bq Z^T + Bb Zd^T */
        solve_adjoint_b(r, v, lv, lvl, adj, lg, lgl, s); /* Bb in t1 */
        load(s->q, adjd, r->z, n * m, lq, l);
        load(s->zd, vd, r->z, n * m, lt, ltl);
        mm(1, 0, n, m, n, -1.0, s->ad, s->t1, 1.0, s->q);
        mm(1, 0, n, m, n, 1.0, s->kept, s->q, 0.0, s->t2); /* Bq */
        mm(0, 1, n, n, m, -1.0, s->t2, s->z, 0.0, s->t3);
        mm(0, 1, n, n, m, -1.0, s->t1, s->zd, 1.0, s->t3);
        accumulate(adjd, r->b, n * m, lq, l, s->t2);
        accumulate(adjd, r->a, nn, lq, l, s->t3);
        break;
    }
    case OP_inv: { /* A_adj' -= (Zd^T Zb + Z^T Zb') Z^T + (Z^T Zb) Zd^T */
        load(s->z, v, r->z, nn, lv, lvl);
        load(s->zd, vd, r->z, nn, lt, ltl);
        load(s->g, adj, r->z, nn, lg, lgl);
        load(s->q, adjd, r->z, nn, lq, l);
        mm(1, 0, n, n, n, 1.0, s->z, s->g, 0.0, s->t1);
        mm(1, 0, n, n, n, 1.0, s->zd, s->g, 0.0, s->t2);
        mm(1, 0, n, n, n, 1.0, s->z, s->q, 1.0, s->t2);
        mm(0, 1, n, n, n, -1.0, s->t2, s->z, 0.0, s->t3);
        mm(0, 1, n, n, n, -1.0, s->t1, s->zd, 1.0, s->t3);
        accumulate(adjd, r->a, nn, lq, l, s->t3);
        break;
    }
    case OP_det: { /* A_adj' += db' C + db sigma U G Vt */
        double g = adj[r->z * lg + lgl], q = adjd[r->z * lq + lane_of(lq, l)];
        load(s->kept, v, r->z + DET_SIGMA, 1 + 3 * nn + n, lv, lvl);
        det_second(n, s->kept + 1, s->ad, s->t3, s->t1, s->t2);
        for (int64_t e = 0; e < nn; ++e)
            s->t3[e] = q * s->kept[1 + e] + g * s->t3[e];
        accumulate(adjd, r->a, nn, lq, l, s->t3);
        break;
    }
    case OP_slogdet: { /* A_adj' += lb' W^T - lb (W Ad W)^T */
        double g = adj[(r->z + 1) * lg + lgl], q = adjd[(r->z + 1) * lq + lane_of(lq, l)];
        load(s->kept, v, r->z + kept_w(r), nn, lv, lvl);
        mm(0, 0, n, n, n, 1.0, s->ad, s->kept, 0.0, s->t1);
        mm(0, 0, n, n, n, 1.0, s->kept, s->t1, 0.0, s->t2);
        for (int64_t i = 0; i < n; ++i)
            for (int64_t j = 0; j < n; ++j)
                s->t3[i * n + j] = q * s->kept[j * n + i] - g * s->t2[j * n + i];
        accumulate(adjd, r->a, nn, lq, l, s->t3);
        break;
    }
    }
}

void lu_second(const pyad_tape *t, int64_t i, int64_t lv, const double *v, int64_t lt,
               const double *vd, int64_t lg, double *adj, int64_t lq, double *adjd)
{
    lu_reverse(t, i, lv, v, lg, adj);
    struct lu r = lu_at(t, i);
    struct lane_vals s;
    double *buf = lane_scratch(&r, &s);
    for (int64_t l = 0; l < lq; ++l) {
        if (buf)
            second_one(&r, v, lv, vd, lt, adj, lg, adjd, lq, l, &s);
        else
            poison(adjd, r.a, r.n * r.n, lq, l);
    }
    free(buf);
}

/* ---- recording and validation ---- */

static int span_ok(int64_t start, int64_t count, int64_t limit)
{
    return start >= 0 && count <= limit - start;
}

int lu_row_ok(int op, int32_t a, int32_t b, int32_t c, struct block bl, int64_t below)
{
    int64_t n = bl.sa, m = bl.sb;
    if (!is_lu_op(op) || c != 0 || bl.sc != 0 || bl.sk != 0 || lu_width(op, n, m) != bl.w)
        return 0;
    if (op != OP_solve && b != 0)
        return 0;
    return span_ok(a, n * n, below) && (op != OP_solve || span_ok(b, n * m, below));
}

int lu_row_active(const pyad_tape *t, int64_t i, const uint8_t *act)
{
    struct lu r = lu_at(t, i);
    for (int64_t e = 0; e < r.n * r.n; ++e)
        if (act[r.a + e])
            return 1;
    if (r.op == OP_solve)
        for (int64_t e = 0; e < r.n * r.m; ++e)
            if (act[r.b + e])
                return 1;
    return 0;
}

int pyad_rec_lu(pyad_tape *t, int op, int32_t a, int32_t b, int64_t n, int64_t m)
{
    if (!t)
        return PYAD_ECLOSED;
    if (!is_lu_op(op) || (op != OP_solve && (m != 0 || b != 0)))
        return PYAD_EINVAL;
    int64_t w = lu_width(op, n, m);
    if (w < 0)
        return n < 1 || m < 0 || (op == OP_solve && m < 1) ? PYAD_EINVAL : PYAD_ETOOBIG;
    int s = tape_begin_record(t);
    if (s)
        return s;
    if (!(s = tape_reserve(t, 1, w, 1))) {
        if (!span_ok(a, n * n, t->n_slots) || (op == OP_solve && !span_ok(b, n * m, t->n_slots)))
            s = PYAD_EINDEX;
    }
    if (s == PYAD_OK) {
        int64_t row = t->n_ops, slot = t->n_slots;
        tape_put_row(t, row, slot, op, a, op == OP_solve ? b : 0, 0);
        tape_put_block(t, row, w, n, m, 0, 0);
        tape_finish_rows(t, row, 1, w);
        s = (int)slot;
    }
    tape_end_record(t);
    return s;
}
