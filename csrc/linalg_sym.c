/* Symmetric and triangular linear-algebra rows in every sweep, computed by
 * LAPACK (dpotrf) and BLAS (dtrsm, dtrmm, dgemm, dsymm) of the scipy-openblas32
 * wheel.
 *
 *   op                arg_a      arg_b      WIDTH        SA  SB  SC     SK
 *   cholesky          A's slot   0          count*n*n    n   n   count  0
 *   solve_triangular  A's slot   B's slot   count*n*m    n   m   count  flags
 *
 * Operands are `count` stacked row-major matrices in consecutive slots: A
 * n x n, B n x m; the result likewise (L n x n, X n x m). flags (pyad.h
 * enum pyad_triangular_flag): LOWER (else upper), TRANS (solve A^T X = B),
 * UNIT (the diagonal is taken as 1 and never read).
 *
 * Where the factorisation lives: the result slots. L is cholesky's value and
 * its whole factorisation; a triangular solve's factor is its operand A. The
 * derivative sweeps read them from the values array, so no sweep factors
 * again and batched replay needs nothing more than the lanes of the values.
 *
 * cholesky (numpy's: only A's lower triangle is read). The derivative is
 * attributed as JAX and PyTorch do: A is taken symmetric, so a tangent enters
 * as sym(Ȧ) = (Ȧ + Ȧᵀ)/2 and the adjoint of A is symmetric. Φ(X) is X's lower
 * triangle with its diagonal halved (Giles 2008, Murray 2016):
 *   values    L  = chol(A)
 *   tangent   L̇  = L Φ(L⁻¹ sym(Ȧ) L⁻ᵀ)
 *   reverse   S  = L⁻ᵀ Φ(Lᵀ L̄) L⁻¹,   Ā += sym(S)     (L̄: its lower triangle)
 *   second    Ṡ  = L⁻ᵀ Φ(L̇ᵀ L̄ + Lᵀ L̄') L⁻¹ − L⁻ᵀ L̇ᵀ S − S L̇ L⁻¹,  Ā' += sym(Ṡ)
 *
 * solve_triangular (scipy's: only the triangle named is read), op(A) = A or
 * Aᵀ, tri(M) = M on that triangle (strict for UNIT), zero elsewhere:
 *   values    X  = op(A)⁻¹ B
 *   tangent   Ẋ  = op(A)⁻¹ (Ḃ − op(tri(Ȧ)) X)
 *   reverse   B̄ += W = op(A)⁻ᵀ X̄,            Ā += tri(−W Xᵀ) (TRANS: tri(−X Wᵀ))
 *   second    W' = op(A)⁻ᵀ (X̄' − op(tri(Ȧ))ᵀ W),  B̄' += W',
 *             Ā' += tri(−(W' Xᵀ + W Ẋᵀ))     (TRANS: tri(−(X W'ᵀ + Ẋ Wᵀ)))
 *
 * Failure (A not positive definite, a zero on a triangular A's diagonal): the
 * result is NaN, and linalg_sym_failed tells the sweep, which reports the row
 * (PYAD_EBRANCH with bad_op, or bad[point] in a batch; Python turns that into
 * numpy.linalg.LinAlgError naming the row and the point). Recording such a row
 * fails with PYAD_ELINALG and records nothing. Without memory for scratch a
 * kernel writes NaN: never a silently wrong number. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "lapack.h"
#include "linalg_sym.h"
#include "record.h"

/* A row, decoded from its row and block entry. */
struct lrow {
    int op;
    int64_t row, n, m, count, a, b, z;
    int lower, trans, unit;
    int zero_a, zero_b; /* a passive operand (activity.c): no tangent / adjoint */
};

static struct lrow lrow_at(const pyad_tape *t, int64_t i)
{
    struct block bl = block_at(t, i);
    int marks = row_marks(t, bl.row);
    return (struct lrow){t->op[bl.row], bl.row, bl.sa, bl.sb, bl.sc, t->arg_a[bl.row],
                         t->arg_b[bl.row], t->first[bl.row],
                         (bl.sk & PYAD_TRI_LOWER) != 0, (bl.sk & PYAD_TRI_TRANS) != 0,
                         (bl.sk & PYAD_TRI_UNIT) != 0, (marks & PYAD_PASSIVE_A) != 0,
                         (marks & PYAD_PASSIVE_B) != 0};
}

/* ---- lanes: slot s, lane l of a work array with `lanes` lanes ---- */

/* The sz values from slot `at`, lane l (lanes 1: the one shared lane): a
 * pointer into arr where they are contiguous, else copied into buf. */
static const double *lane_read(const double *arr, int64_t lanes, int64_t l, int64_t at,
                               int64_t sz, double *buf)
{
    if (lanes == 1)
        return arr + at;
    const double *p = arr + at * lanes + l;
    for (int64_t e = 0; e < sz; ++e)
        buf[e] = p[e * lanes];
    return buf;
}

static void lane_write(double *arr, int64_t lanes, int64_t l, int64_t at, int64_t sz,
                       const double *src, int add)
{
    double *p = arr + at * lanes + (lanes > 1 ? l : 0);
    int64_t s = lanes > 1 ? lanes : 1;
    for (int64_t e = 0; e < sz; ++e)
        p[e * s] = add ? p[e * s] + src[e] : src[e];
}

static void fill_nan(double *x, int64_t sz)
{
    for (int64_t e = 0; e < sz; ++e)
        x[e] = NAN;
}

/* ---- row-major BLAS / LAPACK calls (a row-major block read column-major is
 * its transpose, so each call swaps sides and triangles) ---- */

/* c (m x n) = alpha op(a) op(b) + beta c, each with its natural leading dimension. */
static void gemm_rm(int ta, int tb, int64_t m, int64_t n, int64_t k, double alpha,
                    const double *a, const double *b, double beta, double *c)
{
    scipy_cblas_dgemm(BLAS_ROW_MAJOR, ta ? BLAS_TRANS : BLAS_NO_TRANS,
                      tb ? BLAS_TRANS : BLAS_NO_TRANS, (int)m, (int)n, (int)k, alpha, a,
                      (int)(ta ? m : k), b, (int)(tb ? k : n), beta, c, (int)n);
}

/* x (rows x cols, leading dimension lx) := op(tri)⁻¹ x (left, tri rows x rows)
 * or x op(tri)⁻¹ (right, tri cols x cols), tri (leading dimension lt) lower or
 * upper triangular, unit: diagonal taken as 1. */
static void trsm_ld(int left, int lower, int trans, int unit, int64_t rows, int64_t cols,
                    const double *tri, int64_t lt, double *x, int64_t lx)
{
    char side = left ? 'R' : 'L', uplo = lower ? 'U' : 'L', ta = trans ? 'T' : 'N';
    char diag = unit ? 'U' : 'N';
    int m = (int)cols, n = (int)rows, ilt = (int)lt, ilx = (int)lx;
    double one = 1.0;
    scipy_dtrsm_(&side, &uplo, &ta, &diag, &m, &n, &one, tri, &ilt, x, &ilx, 1, 1, 1, 1);
}

/* trsm_ld on whole blocks: each matrix its natural leading dimension. */
static void trsm_rm(int left, int lower, int trans, int unit, int64_t rows, int64_t cols,
                    const double *tri, double *x)
{
    trsm_ld(left, lower, trans, unit, rows, cols, tri, left ? rows : cols, x, cols);
}

/* x (rows x cols) := op(tri) x (left, tri rows x rows) or x op(tri) (right),
 * tri lower or upper triangular (the other triangle is not read). */
static void trmm_rm(int left, int lower, int trans, int64_t rows, int64_t cols,
                    const double *tri, double *x)
{
    char side = left ? 'R' : 'L', uplo = lower ? 'U' : 'L', ta = trans ? 'T' : 'N';
    char diag = 'N';
    int m = (int)cols, n = (int)rows, lt = (int)(left ? rows : cols), lx = (int)cols;
    double one = 1.0;
    scipy_dtrmm_(&side, &uplo, &ta, &diag, &m, &n, &one, tri, &lt, x, &lx, 1, 1, 1, 1);
}

/* ---- cholesky ---- */

static int cholesky_value(int64_t n, const double *a, double *l)
{
    memcpy(l, a, (size_t)(n * n) * sizeof *l);
    char uplo = 'U'; /* our lower triangle, read column-major */
    int nn = (int)n, info = 0;
    scipy_dpotrf_(&uplo, &nn, l, &nn, &info, 1);
    if (info != 0) {
        fill_nan(l, n * n);
        return 1;
    }
    for (int64_t i = 0; i < n; ++i) /* dpotrf leaves the other triangle as it was */
        memset(l + i * n + i + 1, 0, (size_t)(n - i - 1) * sizeof *l);
    return 0;
}

/* Φ: the lower triangle, diagonal halved. */
static void phi(int64_t n, double *x)
{
    for (int64_t i = 0; i < n; ++i) {
        memset(x + i * n + i + 1, 0, (size_t)(n - i - 1) * sizeof *x);
        x[i * n + i] *= 0.5;
    }
}

static void lower_copy(int64_t n, const double *src, double *dst)
{
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j)
            dst[i * n + j] = j <= i ? src[i * n + j] : 0.0;
}

/* out (+)= (s + sᵀ)/2 */
static void add_sym(int64_t n, const double *s, double *out)
{
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j)
            out[i * n + j] += 0.5 * (s[i * n + j] + s[j * n + i]);
}

/* L̇ = L Φ(L⁻¹ sym(Ȧ) L⁻ᵀ); w: n*n scratch. */
static void cholesky_tangent(int64_t n, const double *l, const double *ad, double *ld, double *w)
{
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j)
            w[i * n + j] = 0.5 * (ad[i * n + j] + ad[j * n + i]);
    trsm_rm(1, 1, 0, 0, n, n, l, w);
    trsm_rm(0, 1, 1, 0, n, n, l, w);
    phi(n, w);
    memcpy(ld, w, (size_t)(n * n) * sizeof *ld);
    trmm_rm(1, 1, 0, n, n, l, ld);
}

/* s = L⁻ᵀ Φ(p) L⁻¹ where p already holds the product inside Φ. */
static void sandwich(int64_t n, const double *l, double *p)
{
    phi(n, p);
    trsm_rm(1, 1, 1, 0, n, n, l, p);
    trsm_rm(0, 1, 0, 0, n, n, l, p);
}

/* s = L⁻ᵀ Φ(Lᵀ tril(L̄)) L⁻¹; w: n*n scratch (left holding tril(L̄)). */
static void cholesky_s(int64_t n, const double *l, const double *lb, double *s, double *w)
{
    lower_copy(n, lb, w);
    memcpy(s, w, (size_t)(n * n) * sizeof *s);
    trmm_rm(1, 1, 1, n, n, l, s);
    sandwich(n, l, s);
}

/* The first-order reverse rule by recursion on halves, in place of the
 * formula's three n x n triangular products (3 n³ flops): this costs
 * about n³, mostly in matrix products, as the blocked algorithms of Murray
 * (2016) do. With the adjoint in the "lower triangle read" convention T
 * (Ā = (T + Tᵀ)/2), and L = [L11 0; L21 L22] split after h rows, the forward
 * L11 = chol(A11), L21 = A21 L11⁻ᵀ, L22 = chol(A22 − L21 L21ᵀ) runs backwards:
 *   T22 = rev(L22, L̄22)
 *   T21 = (L̄21 − (T22 + T22ᵀ) L21) L11⁻¹
 *   T11 = rev(L11, L̄11 − tril(T21ᵀ L21))
 * Below CHOL_REV_BASE rows the formula itself runs: T = Φ(S + Sᵀ) with the S
 * of cholesky_s. Only lower triangles are read or meaningful: L is lower, and
 * the upper part of t (leading dimension ld for both) is scratch. */
enum { CHOL_REV_BASE = 32 };

/* The formula on one small diagonal block; w: 2 * n * n scratch. */
static void cholesky_rev_base(int64_t n, const double *l, int64_t ld, double *t, double *w)
{
    double *lw = w, *s = w + n * n;
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j) {
            lw[i * n + j] = j <= i ? l[i * ld + j] : 0.0;
            s[i * n + j] = j <= i ? t[i * ld + j] : 0.0;
        }
    trmm_rm(1, 1, 1, n, n, lw, s);
    sandwich(n, lw, s);
    for (int64_t i = 0; i < n; ++i) {
        for (int64_t j = 0; j < i; ++j)
            t[i * ld + j] = s[i * n + j] + s[j * n + i];
        t[i * ld + i] = s[i * n + i];
    }
}

/* t -= (f + fᵀ) b for lower-triangular f (m x m) and b (m x h), all leading
 * dimension ld: dsymm with f's diagonal doubled for the call (exact). */
static void sub_symmetrised(int64_t m, int64_t h, double *f, const double *b, double *t,
                            int64_t ld)
{
    for (int64_t i = 0; i < m; ++i)
        f[i * ld + i] *= 2.0;
    char side = 'R', uplo = 'U'; /* row-major: t = -b' f + t in column-major terms */
    int im = (int)h, in = (int)m, ild = (int)ld;
    double minus = -1.0, one = 1.0;
    scipy_dsymm_(&side, &uplo, &im, &in, &minus, f, &ild, b, &ild, &one, t, &ild, 1, 1);
    for (int64_t i = 0; i < m; ++i)
        f[i * ld + i] *= 0.5;
}

/* c (h x h) -= aᵀ b for a, b (m x h), leading dimension ld. Only c's lower
 * triangle is wanted; the whole product is still one dgemm (an eighth more
 * flops at the top split than a triangle-only product, and plain BLAS). */
static void sub_atb(int64_t h, int64_t m, const double *a, const double *b, double *c,
                    int64_t ld)
{
    scipy_cblas_dgemm(BLAS_ROW_MAJOR, BLAS_TRANS, BLAS_NO_TRANS, (int)h, (int)h, (int)m, -1.0,
                      a, (int)ld, b, (int)ld, 1.0, c, (int)ld);
}

static void cholesky_rev(int64_t n, const double *l, int64_t ld, double *t, double *w)
{
    if (n <= CHOL_REV_BASE) {
        cholesky_rev_base(n, l, ld, t, w);
        return;
    }
    int64_t h = n / 2, m = n - h;
    const double *l21 = l + h * ld, *l22 = l21 + h;
    double *t21 = t + h * ld, *t22 = t21 + h;
    cholesky_rev(m, l22, ld, t22, w);
    sub_symmetrised(m, h, t22, l21, t21, ld);
    trsm_ld(0, 1, 0, 0, m, h, l, ld, t21, ld);
    sub_atb(h, m, t21, l21, t, ld);
    cholesky_rev(h, l, ld, t, w);
}

/* Ā = sym(S) from L and L̄ (its lower triangle), added to slot `at`, lane l,
 * of adj (`lanes` lanes); t: n*n, w: 2*n*n scratch (the recursion's base needs
 * 2 * CHOL_REV_BASE² at most). */
static void cholesky_adjoint(int64_t n, const double *l, const double *lb, double *adj,
                             int64_t lanes, int64_t lane, int64_t at, double *t, double *w)
{
    memcpy(t, lb, (size_t)(n * n) * sizeof *t);
    cholesky_rev(n, l, n, t, w);
    int64_t s = lanes > 1 ? lanes : 1;
    double *out = adj + at * lanes + (lanes > 1 ? lane : 0);
    for (int64_t i = 0; i < n; ++i) {
        for (int64_t j = 0; j < i; ++j) {
            double half = 0.5 * t[i * n + j];
            out[(i * n + j) * s] += half;
            out[(j * n + i) * s] += half;
        }
        out[(i * n + i) * s] += t[i * n + i];
    }
}

/* ṡ = L⁻ᵀ Φ(L̇ᵀ L̄ + Lᵀ L̄') L⁻¹ − L⁻ᵀ L̇ᵀ S − S L̇ L⁻¹, given s and wb =
 * tril(L̄); w1, w2: n*n scratch. */
static void cholesky_sdot(int64_t n, const double *l, const double *ld, const double *wb,
                          const double *lbd, const double *s, double *sd, double *w1, double *w2)
{
    lower_copy(n, lbd, sd);
    trmm_rm(1, 1, 1, n, n, l, sd);
    memcpy(w1, wb, (size_t)(n * n) * sizeof *w1);
    trmm_rm(1, 1, 1, n, n, ld, w1);
    for (int64_t e = 0; e < n * n; ++e)
        sd[e] += w1[e];
    sandwich(n, l, sd);
    memcpy(w1, s, (size_t)(n * n) * sizeof *w1); /* L⁻ᵀ L̇ᵀ S */
    trmm_rm(1, 1, 1, n, n, ld, w1);
    trsm_rm(1, 1, 1, 0, n, n, l, w1);
    memcpy(w2, s, (size_t)(n * n) * sizeof *w2); /* S L̇ L⁻¹ */
    trmm_rm(0, 1, 0, n, n, ld, w2);
    trsm_rm(0, 1, 0, 0, n, n, l, w2);
    for (int64_t e = 0; e < n * n; ++e)
        sd[e] -= w1[e] + w2[e];
}

/* ---- solve_triangular ---- */

/* Zero what lies outside the triangle the row reads (and the diagonal for UNIT). */
static void tri_mask(const struct lrow *r, double *x)
{
    int64_t n = r->n;
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j) {
            int inside = r->lower ? j < i : j > i;
            if (!inside && !(i == j && !r->unit))
                x[i * n + j] = 0.0;
        }
}

static int triangular_singular(const struct lrow *r, const double *a, int64_t lanes, int64_t l)
{
    if (r->unit)
        return 0;
    for (int64_t d = 0; d < r->n; ++d)
        if (a[(d * r->n + d) * lanes + l] == 0.0)
            return 1;
    return 0;
}

static void triangular_value(const struct lrow *r, const double *a, const double *b, double *x)
{
    int64_t n = r->n, m = r->m;
    memcpy(x, b, (size_t)(n * m) * sizeof *x);
    if (triangular_singular(r, a, 1, 0)) {
        fill_nan(x, n * m);
        return;
    }
    trsm_rm(1, r->lower, r->trans, r->unit, n, m, a, x);
}

/* ---- scratch ---- */

/* `count` blocks of sz doubles, or NULL. */
static double *scratch(int64_t count, int64_t sz)
{
    return malloc((size_t)(count * sz) * sizeof(double));
}

static int64_t a_size(const struct lrow *r) { return r->n * r->n; }
static int64_t z_size(const struct lrow *r) { return r->n * r->m; }

/* Whether matrix j of lane l failed to factor. A failed factorisation is all
 * NaN, a successful one has zeros above the diagonal, so L[0][1] tells them
 * apart even where NaN input gave NaN factors (numpy returns those without an
 * error: LAPACK's pivot test lets NaN through). A 1 x 1 matrix has no upper
 * part: it fails where its one element is <= 0 (not where it is NaN). */
static int cholesky_failed(const struct lrow *r, const double *v, int64_t lanes, int64_t l,
                           int64_t j)
{
    if (r->n == 1)
        return v[(r->a + j) * lanes + l] <= 0.0;
    return isnan(v[(r->z + j * a_size(r) + 1) * lanes + l]);
}

/* ---- the sweeps ---- */

void linalg_sym_values(const pyad_tape *t, int64_t i, int64_t lv, double *v)
{
    if (is_eig_op(t->op[block_at(t, i).row])) {
        eig_values(t, i, lv, v);
        return;
    }
    struct lrow r = lrow_at(t, i);
    int64_t na = a_size(&r), nz = z_size(&r);
    double *buf = scratch(3, na > nz ? na : nz);
    for (int64_t l = 0; l < lv; ++l)
        for (int64_t j = 0; j < r.count; ++j) {
            int64_t at = r.a + j * na, zt = r.z + j * nz;
            if (!buf) {
                for (int64_t e = 0; e < nz; ++e)
                    v[(zt + e) * lv + l] = NAN;
                continue;
            }
            double *ba = buf, *bb = buf + na, *bz = bb + nz;
            const double *pa = lane_read(v, lv, l, at, na, ba);
            if (r.op == OP_cholesky) {
                cholesky_value(r.n, pa, bz);
            } else {
                const double *pb = lane_read(v, lv, l, r.b + j * nz, nz, bb);
                triangular_value(&r, pa, pb, bz);
            }
            lane_write(v, lv, l, zt, nz, bz, 0);
        }
    free(buf);
}

int64_t linalg_sym_failed(const pyad_tape *t, int64_t i, int64_t lanes, const double *v,
                          int64_t *bad)
{
    if (is_eig_op(t->op[block_at(t, i).row]))
        return eig_failed(t, i, lanes, v, bad);
    struct lrow r = lrow_at(t, i);
    int64_t n_failed = 0;
    for (int64_t l = 0; l < lanes; ++l) {
        int failed = 0;
        for (int64_t j = 0; j < r.count && !failed; ++j) {
            if (r.op == OP_cholesky)
                failed = cholesky_failed(&r, v, lanes, l, j);
            else
                failed = triangular_singular(&r, v + (r.a + j * a_size(&r)) * lanes, lanes, l);
        }
        if (failed) {
            ++n_failed;
            if (bad && bad[l] < 0)
                bad[l] = r.row;
        }
    }
    return n_failed;
}

static void nan_lanes(double *arr, int64_t lanes, int64_t at, int64_t sz)
{
    fill_nan(arr + at * lanes, sz * lanes);
}

int linalg_sym_tangent(const pyad_tape *t, int64_t i, int64_t lv, double *v, int64_t lt,
                       double *vd)
{
    if (is_eig_op(t->op[block_at(t, i).row]))
        return eig_tangent(t, i, lv, v, lt, vd);
    linalg_sym_values(t, i, lv, v);
    struct lrow r = lrow_at(t, i);
    int64_t n = r.n, m = r.m, na = a_size(&r), nz = z_size(&r);
    double *buf = scratch(6, na > nz ? na : nz);
    if (!buf) {
        nan_lanes(vd, lt, r.z, r.count * nz);
        return PYAD_OK;
    }
    int64_t big = na > nz ? na : nz;
    double *b0 = buf, *b1 = buf + big, *b2 = b1 + big, *b3 = b2 + big, *b4 = b3 + big;
    for (int64_t l = 0; l < lt; ++l)
        for (int64_t j = 0; j < r.count; ++j) {
            int64_t at = r.a + j * na, zt = r.z + j * nz;
            if (r.op == OP_cholesky) {
                const double *pl = lane_read(v, lv, l, zt, na, b0);
                const double *pad = lane_read(vd, lt, l, at, na, b1);
                cholesky_tangent(n, pl, pad, b2, b3);
                lane_write(vd, lt, l, zt, nz, b2, 0);
                continue;
            }
            const double *pa = lane_read(v, lv, l, at, na, b0);
            const double *px = lane_read(v, lv, l, zt, nz, b1);
            if (r.zero_b)
                memset(b2, 0, (size_t)nz * sizeof *b2);
            else
                memcpy(b2, lane_read(vd, lt, l, r.b + j * nz, nz, b4), (size_t)nz * sizeof *b2);
            if (!r.zero_a) {
                memcpy(b3, lane_read(vd, lt, l, at, na, b4), (size_t)na * sizeof *b3);
                tri_mask(&r, b3);
                gemm_rm(r.trans, 0, n, m, n, -1.0, b3, px, 1.0, b2);
            }
            trsm_rm(1, r.lower, r.trans, r.unit, n, m, pa, b2);
            lane_write(vd, lt, l, zt, nz, b2, 0);
        }
    free(buf);
    return PYAD_OK;
}

/* The adjoint and (adjd non-NULL) its tangent of one triangular solve at one
 * lane: w = op(A)⁻ᵀ X̄ into bw; bufs: 4 blocks of scratch. */
static void triangular_adjoints(const struct lrow *r, const double *pa, const double *px,
                                const double *pxb, double *bw, double *bg, double *out_a,
                                double *out_b)
{
    int64_t n = r->n, m = r->m;
    memcpy(bw, pxb, (size_t)(n * m) * sizeof *bw);
    trsm_rm(1, r->lower, !r->trans, r->unit, n, m, pa, bw);
    if (out_b)
        memcpy(out_b, bw, (size_t)(n * m) * sizeof *bw);
    if (out_a) {
        if (r->trans)
            gemm_rm(0, 1, n, n, m, -1.0, px, bw, 0.0, bg);
        else
            gemm_rm(0, 1, n, n, m, -1.0, bw, px, 0.0, bg);
        tri_mask(r, bg);
        memcpy(out_a, bg, (size_t)(n * n) * sizeof *bg);
    }
}

int linalg_sym_reverse(const pyad_tape *t, int64_t i, int64_t lv, const double *v, int64_t lg,
                       double *adj)
{
    if (is_eig_op(t->op[block_at(t, i).row]))
        return eig_reverse(t, i, lv, v, lg, adj);
    struct lrow r = lrow_at(t, i);
    int64_t n = r.n, na = a_size(&r), nz = z_size(&r), big = na > nz ? na : nz;
    double *buf = scratch(6, big);
    if (!buf) {
        if (!r.zero_a)
            nan_lanes(adj, lg, r.a, r.count * na);
        if (r.op != OP_cholesky && !r.zero_b)
            nan_lanes(adj, lg, r.b, r.count * nz);
        return PYAD_OK;
    }
    double *b0 = buf, *b1 = buf + big, *b2 = b1 + big, *b3 = b2 + big, *b4 = b3 + big,
           *b5 = b4 + big;
    for (int64_t l = 0; l < lg; ++l)
        for (int64_t j = 0; j < r.count; ++j) {
            int64_t at = r.a + j * na, zt = r.z + j * nz;
            if (r.op == OP_cholesky) {
                const double *pl = lane_read(v, lv, l, zt, na, b0);
                const double *plb = lane_read(adj, lg, l, zt, na, b1);
                cholesky_adjoint(n, pl, plb, adj, lg, l, at, b2, b3);
                continue;
            }
            const double *pa = lane_read(v, lv, l, at, na, b0);
            const double *px = lane_read(v, lv, l, zt, nz, b1);
            const double *pxb = lane_read(adj, lg, l, zt, nz, b2);
            triangular_adjoints(&r, pa, px, pxb, b3, b4, r.zero_a ? NULL : b5,
                                r.zero_b ? NULL : b3);
            if (!r.zero_b)
                lane_write(adj, lg, l, r.b + j * nz, nz, b3, 1);
            if (!r.zero_a)
                lane_write(adj, lg, l, at, na, b5, 1);
        }
    free(buf);
    return PYAD_OK;
}

static void cholesky_second(const struct lrow *r, int64_t lv, const double *v, int64_t lt,
                            const double *vd, int64_t lg, double *adj, int64_t lq,
                            double *adjd, double *buf, int64_t big)
{
    int64_t n = r->n, na = a_size(r);
    double *b[9];
    for (int k = 0; k < 9; ++k)
        b[k] = buf + k * big;
    int64_t lanes = lg > lq ? lg : lq;
    /* one point's values and adjoint under p tangent lanes (the vector sweep):
     * S is the same for every lane of a matrix, computed at its first */
    int shared = lv == 1 && lg == 1 && r->count == 1;
    for (int64_t l = 0; l < lanes; ++l)
        for (int64_t j = 0; j < r->count; ++j) {
            int64_t at = r->a + j * na, zt = r->z + j * na;
            const double *pl = lane_read(v, lv, l, zt, na, b[0]);
            double *s = b[2], *wb = b[3];
            if (!shared || l == 0)
                cholesky_s(n, pl, lane_read(adj, lg, l, zt, na, b[1]), s, wb);
            if (l < lg) {
                memset(b[4], 0, (size_t)na * sizeof *b[4]);
                add_sym(n, s, b[4]);
                lane_write(adj, lg, l, at, na, b[4], 1);
            }
            if (l >= lq)
                continue;
            const double *pld = lane_read(vd, lt, l, zt, na, b[5]);
            const double *plbd = lane_read(adjd, lq, l, zt, na, b[6]);
            cholesky_sdot(n, pl, pld, wb, plbd, s, b[4], b[7], b[8]);
            memset(b[7], 0, (size_t)na * sizeof *b[7]);
            add_sym(n, b[4], b[7]);
            lane_write(adjd, lq, l, at, na, b[7], 1);
        }
}

static void triangular_second(const struct lrow *r, int64_t lv, const double *v, int64_t lt,
                              const double *vd, int64_t lg, double *adj, int64_t lq,
                              double *adjd, double *buf, int64_t big)
{
    int64_t n = r->n, m = r->m, na = a_size(r), nz = z_size(r);
    double *b[10];
    for (int k = 0; k < 10; ++k)
        b[k] = buf + k * big;
    int64_t lanes = lg > lq ? lg : lq;
    for (int64_t l = 0; l < lanes; ++l)
        for (int64_t j = 0; j < r->count; ++j) {
            int64_t at = r->a + j * na, bt = r->b + j * nz, zt = r->z + j * nz;
            const double *pa = lane_read(v, lv, l, at, na, b[0]);
            const double *px = lane_read(v, lv, l, zt, nz, b[1]);
            const double *pxb = lane_read(adj, lg, l, zt, nz, b[2]);
            double *w = b[3];
            triangular_adjoints(r, pa, px, pxb, w, b[4], l < lg && !r->zero_a ? b[5] : NULL,
                                NULL);
            if (l < lg && !r->zero_b)
                lane_write(adj, lg, l, bt, nz, w, 1);
            if (l < lg && !r->zero_a)
                lane_write(adj, lg, l, at, na, b[5], 1);
            if (l >= lq)
                continue;
            /* W' = op(A)⁻ᵀ (X̄' − op(tri(Ȧ))ᵀ W) */
            double *wd = b[6];
            memcpy(wd, lane_read(adjd, lq, l, zt, nz, b[7]), (size_t)nz * sizeof *wd);
            if (!r->zero_a) {
                memcpy(b[8], lane_read(vd, lt, l, at, na, b[7]), (size_t)na * sizeof *b[8]);
                tri_mask(r, b[8]);
                gemm_rm(!r->trans, 0, n, m, n, -1.0, b[8], w, 1.0, wd);
            }
            trsm_rm(1, r->lower, !r->trans, r->unit, n, m, pa, wd);
            if (!r->zero_b)
                lane_write(adjd, lq, l, bt, nz, wd, 1);
            if (r->zero_a)
                continue;
            const double *pxd = lane_read(vd, lt, l, zt, nz, b[7]);
            double *g = b[9];
            if (r->trans) {
                gemm_rm(0, 1, n, n, m, -1.0, px, wd, 0.0, g);
                gemm_rm(0, 1, n, n, m, -1.0, pxd, w, 1.0, g);
            } else {
                gemm_rm(0, 1, n, n, m, -1.0, wd, px, 0.0, g);
                gemm_rm(0, 1, n, n, m, -1.0, w, pxd, 1.0, g);
            }
            tri_mask(r, g);
            lane_write(adjd, lq, l, at, na, g, 1);
        }
}

int linalg_sym_second(const pyad_tape *t, int64_t i, int64_t lv, const double *v, int64_t lt,
                      const double *vd, int64_t lg, double *adj, int64_t lq, double *adjd)
{
    if (is_eig_op(t->op[block_at(t, i).row]))
        return eig_second(t, i, lv, v, lt, vd, lg, adj, lq, adjd);
    struct lrow r = lrow_at(t, i);
    int64_t na = a_size(&r), nz = z_size(&r), big = na > nz ? na : nz;
    double *buf = scratch(10, big);
    if (!buf) {
        if (!r.zero_a) {
            nan_lanes(adj, lg, r.a, r.count * na);
            nan_lanes(adjd, lq, r.a, r.count * na);
        }
        if (r.op != OP_cholesky && !r.zero_b) {
            nan_lanes(adj, lg, r.b, r.count * nz);
            nan_lanes(adjd, lq, r.b, r.count * nz);
        }
        return PYAD_OK;
    }
    if (r.op == OP_cholesky)
        cholesky_second(&r, lv, v, lt, vd, lg, adj, lq, adjd, buf, big);
    else
        triangular_second(&r, lv, v, lt, vd, lg, adj, lq, adjd, buf, big);
    free(buf);
    return PYAD_OK;
}

/* ---- activity, validation, recording ---- */

static int any_active(const uint8_t *act, int64_t start, int64_t n)
{
    for (int64_t e = 0; e < n; ++e)
        if (act[start + e])
            return 1;
    return 0;
}

int linalg_sym_active(const pyad_tape *t, int64_t i, const uint8_t *act, uint8_t *marks)
{
    if (is_eig_op(t->op[block_at(t, i).row]))
        return eig_active(t, i, act, marks);
    struct lrow r = lrow_at(t, i);
    int on_a = any_active(act, r.a, r.count * a_size(&r));
    int on_b = r.op != OP_cholesky && any_active(act, r.b, r.count * z_size(&r));
    *marks = (uint8_t)((on_a ? 0 : PYAD_PASSIVE_A) | (on_b ? 0 : PYAD_PASSIVE_B));
    return on_a || on_b;
}

static int span_ok(int64_t start, int64_t count, int64_t limit)
{
    return start >= 0 && count <= limit - start;
}

/* Sizes that fit: every operand and the result below 2**31 slots. */
static int sizes_ok(int64_t n, int64_t m, int64_t count)
{
    return n >= 1 && m >= 1 && count >= 1 && n <= INT32_MAX && m <= INT32_MAX
           && count <= INT32_MAX && n * n <= INT32_MAX / count && n * m <= INT32_MAX / count;
}

int linalg_sym_row_ok(int op, int32_t a, int32_t b, int32_t c, struct block bl, int64_t below)
{
    if (is_eig_op(op))
        return eig_row_ok(a, b, c, bl, below);
    int64_t n = bl.sa, m = bl.sb, count = bl.sc, flags = bl.sk;
    if (!sizes_ok(n, m, count) || c != 0 || bl.w != count * n * m)
        return 0;
    if (op == OP_cholesky)
        return m == n && b == 0 && flags == 0 && span_ok(a, count * n * n, below);
    return flags >= 0 && flags <= 7 && span_ok(a, count * n * n, below)
           && span_ok(b, count * n * m, below);
}

static int record_row(pyad_tape *t, int op, int32_t a, int32_t b, int64_t n, int64_t m,
                      int64_t count, int flags)
{
    if (!t)
        return PYAD_ECLOSED;
    if (n < 1 || m < 1 || count < 1 || (flags & ~7))
        return PYAD_EINVAL;
    if (!sizes_ok(n, m, count))
        return PYAD_ETOOBIG;
    int s = tape_begin_record(t);
    if (s)
        return s;
    int64_t w = count * n * m;
    if (!(s = tape_reserve(t, 1, w, 1))
        && (!span_ok(a, count * n * n, t->n_slots)
            || (op != OP_cholesky && !span_ok(b, count * n * m, t->n_slots))))
        s = PYAD_EINDEX;
    if (s == PYAD_OK)
        s = tape_put_factored_row(t, op, a, op == OP_cholesky ? 0 : b, w, n, m, count, flags,
                                  linalg_sym_failed);
    tape_end_record(t);
    return s;
}

int pyad_rec_cholesky(pyad_tape *t, int32_t a, int64_t n, int64_t count)
{
    return record_row(t, OP_cholesky, a, 0, n, n, count, 0);
}

int pyad_rec_solve_triangular(pyad_tape *t, int32_t a, int32_t b, int64_t n, int64_t m,
                              int64_t count, int flags)
{
    return record_row(t, OP_solve_triangular, a, b, n, m, count, flags);
}
