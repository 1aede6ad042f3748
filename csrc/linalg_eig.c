/* The symmetric eigenproblem in every sweep: np.linalg.eigh and eigvalsh.
 *
 *   op    arg_a     WIDTH                 SA  SB  SC     SK
 *   eigh  A's slot  count * (n + n*n + 1)  n   n   count  flags
 *
 * A is `count` stacked row-major n x n matrices in consecutive slots; only the
 * triangle UPLO names is read (flags PYAD_EIGH_UPPER: 'U', else numpy's 'L').
 * The row's slots, from its first: the eigenvalues w (count * n, ascending per
 * matrix), the eigenvectors V (count * n * n, row-major, column k for w_k),
 * then one info slot per matrix (1 where LAPACK failed). Under
 * PYAD_EIGH_VALUES (eigvalsh) only w is a result: V and info are values the
 * derivative sweeps keep (their tangents are zero, their adjoints never read).
 * For eigh V is a result and also what the sweeps keep: no derivative sweep
 * decomposes again, and batched replay has its own lane of w and V per point.
 *
 * Values: dsyevd on a column-major copy with numpy's UPLO, the call numpy.linalg
 * makes, so the eigenvectors' signs are LAPACK's choice as numpy's are. The
 * derivatives are those of that fixed choice of V.
 *
 * Rules (Giles 2008), A taken symmetric as for cholesky (JAX, PyTorch): a
 * tangent enters as S = sym(Ȧ) = (Ȧ + Ȧᵀ)/2, adjoints of A are symmetric.
 * F_ij = 1/(w_j − w_i) (i ≠ j, 0 on the diagonal), skew(X) = (X − Xᵀ)/2:
 *   tangent   P = Vᵀ S V,  ẇ = diag(P),  Ω = F ∘ P,  V̇ = V Ω
 *   reverse   M = Vᵀ V̄,  G = diag(w̄) + F ∘ skew(M),  Ā += V G Vᵀ
 *   second    M' = Vᵀ V̄' − Ω M,  Ḟ_ij = −(ẇ_j − ẇ_i) F_ij²,
 *             G' = diag(w̄') + Ḟ ∘ skew(M) + F ∘ skew(M'),
 *             Ā' += V (Ω G − G Ω + G') Vᵀ
 * (G and Ω G − G Ω + G' are symmetric; Ā and Ā' are symmetrised all the same.)
 *
 * Repeated eigenvalues (gap <= PYAD_EIGH_GAP_REL max|w|, linalg_eig.h): ẇ and
 * the diagonal of G never divide, so eigenvalue-only first derivatives (eigvalsh,
 * or eigh whose V gets no adjoint) are given there. A pair (i, j) fails the
 * sweep with PYAD_ELINALG where the rule would divide by its gap:
 *   reverse   M_ij or M_ji nonzero (V̄ has a component that would turn v_i
 *             toward v_j: the true gradient needs the limit of a difference
 *             quotient the rule cannot see, e.g. trace(V f(diag w) Vᵀ B));
 *   tangent   row i or j of P nonzero (eigh only: the pair is split or turned;
 *             even P_ij = 0 is not enough, second-order perturbation then turns
 *             the pair at first order);
 *   second    the tangent rule (eigvalsh too), and the reverse rule on M and M'.
 * Coefficients are tested exactly against zero: a rounding-level coefficient
 * still stands for a term the rule cannot compute.
 *
 * Failure: dsyevd's info != 0 (no convergence; numpy raises LinAlgError) gives
 * NaN results and info = 1; eig_failed reports the point as linalg_sym_failed
 * does. NaN input gives NaN results without failing, as numpy's. Without memory
 * for scratch a value kernel writes NaN and fails the point; a derivative
 * kernel writes NaN adjoints / tangents. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "lapack.h"
#include "linalg_eig.h"
#include "record.h"

struct erow {
    int64_t row, n, count, a, z;
    int upper, values_only;
};

static struct erow erow_at(const pyad_tape *t, int64_t i)
{
    struct block bl = block_at(t, i);
    return (struct erow){bl.row, bl.sa, bl.sc, t->arg_a[bl.row], t->first[bl.row],
                         (bl.sk & PYAD_EIGH_UPPER) != 0, (bl.sk & PYAD_EIGH_VALUES) != 0};
}

static int64_t w_at(const struct erow *r, int64_t j) { return r->z + j * r->n; }
static int64_t v_at(const struct erow *r, int64_t j)
{
    return r->z + r->count * r->n + j * r->n * r->n;
}
static int64_t info_at(const struct erow *r, int64_t j)
{
    return r->z + r->count * (r->n + r->n * r->n) + j;
}

int64_t eig_width(int64_t n, int64_t count)
{
    if (n < 1 || count < 1 || n > 46340 || count > INT32_MAX)
        return -1;
    int64_t per = n + n * n + 1;
    return per > INT32_MAX / count ? -1 : per * count;
}

/* ---- lanes (slot s, lane l at s * lanes + l; one lane is shared) ---- */

static void load(double *dst, const double *arr, int64_t lanes, int64_t l, int64_t at,
                 int64_t sz)
{
    const double *p = arr + at * lanes + (lanes > 1 ? l : 0);
    for (int64_t e = 0; e < sz; ++e)
        dst[e] = p[e * lanes];
}

static void store(double *arr, int64_t lanes, int64_t l, int64_t at, int64_t sz,
                  const double *src, int add)
{
    double *p = arr + at * lanes + (lanes > 1 ? l : 0);
    for (int64_t e = 0; e < sz; ++e)
        p[e * lanes] = add ? p[e * lanes] + src[e] : src ? src[e] : 0.0;
}

static void poison(double *arr, int64_t lanes, int64_t at, int64_t sz)
{
    int64_t total = sz * lanes;
    for (int64_t e = 0; e < total; ++e)
        arr[at * lanes + e] = NAN;
}

/* ---- n x n row-major algebra ---- */

/* c = alpha op(a) op(b) + beta c */
static void mm(int ta, int tb, int64_t n, double alpha, const double *a, const double *b,
               double beta, double *c)
{
    scipy_cblas_dgemm(BLAS_ROW_MAJOR, ta ? BLAS_TRANS : BLAS_NO_TRANS,
                      tb ? BLAS_TRANS : BLAS_NO_TRANS, (int)n, (int)n, (int)n, alpha, a,
                      (int)n, b, (int)n, beta, c, (int)n);
}

/* out = V g Vᵀ, symmetrised; tmp: n*n scratch. */
static void sandwich(int64_t n, const double *vv, const double *g, double *out, double *tmp)
{
    mm(0, 0, n, 1.0, vv, g, 0.0, tmp);
    mm(0, 1, n, 1.0, tmp, vv, 0.0, out);
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < i; ++j) {
            double s = 0.5 * (out[i * n + j] + out[j * n + i]);
            out[i * n + j] = out[j * n + i] = s;
        }
}

/* Whether w_i and w_j (i < j, w ascending) are repeated in the sense of
 * PYAD_EIGH_GAP_REL. NaN eigenvalues never are (NaN flows, as in numpy). */
static int repeated(const double *w, int64_t n, int64_t i, int64_t j)
{
    double scale = fmax(fabs(w[0]), fabs(w[n - 1]));
    return fabs(w[j] - w[i]) <= PYAD_EIGH_GAP_REL * scale;
}

/* F_ij = 1/(w_j - w_i) off the diagonal, 0 on it and at repeated pairs. */
static double f_at(const double *w, int64_t n, int64_t i, int64_t j)
{
    if (i == j || repeated(w, n, i < j ? i : j, i < j ? j : i))
        return 0.0;
    return 1.0 / (w[j] - w[i]);
}

static int row_zero(const double *x, int64_t n, int64_t i)
{
    for (int64_t l = 0; l < n; ++l)
        if (x[i * n + l] != 0.0)
            return 0;
    return 1;
}

/* The tangent rule's test: no repeated pair whose rows of P are nonzero. */
static int tangent_ok(const double *w, const double *p, int64_t n)
{
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = i + 1; j < n && repeated(w, n, i, j); ++j)
            if (!row_zero(p, n, i) || !row_zero(p, n, j))
                return 0;
    return 1;
}

/* The reverse rule's test: no repeated pair with M_ij or M_ji nonzero. */
static int adjoint_ok(const double *w, const double *m, int64_t n)
{
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = i + 1; j < n && repeated(w, n, i, j); ++j)
            if (m[i * n + j] != 0.0 || m[j * n + i] != 0.0)
                return 0;
    return 1;
}

/* ---- scratch: one lane of one matrix ---- */

struct work {
    double *w, *vv, *s, *p, *om, *m, *g, *h, *t1, *t2;
    double *cm, *lwork; /* the value sweep's LAPACK arrays */
    int *iwork;
    int n_lwork, n_iwork;
};

static void *work_new(struct work *k, int64_t n, int for_values)
{
    int64_t nn = n * n, nd = 10 * nn + n;
    k->iwork = NULL; /* work_free frees it whatever happens here */
    if (for_values && 1 + 6 * n + 2 * nn > INT32_MAX) /* beyond LAPACK's int work sizes */
        return NULL;
    k->n_lwork = for_values ? (int)(1 + 6 * n + 2 * nn) : 0;
    k->n_iwork = for_values ? (int)(3 + 5 * n) : 0;
    double *buf = malloc((size_t)(nd + nn + k->n_lwork) * sizeof *buf);
    int *ibuf = for_values ? malloc((size_t)k->n_iwork * sizeof *ibuf) : NULL;
    if (!buf || (for_values && !ibuf)) {
        free(buf);
        free(ibuf);
        return NULL;
    }
    double **each[] = {&k->vv, &k->s, &k->p, &k->om, &k->m, &k->g, &k->h, &k->t1, &k->t2};
    for (int e = 0; e < 9; ++e)
        *each[e] = buf + e * nn;
    k->w = buf + 9 * nn;
    k->cm = k->w + n;
    k->lwork = k->cm + nn;
    k->iwork = ibuf;
    return buf;
}

static void work_free(struct work *k, void *buf)
{
    free(buf);
    free(k->iwork);
}

/* ---- values ---- */

/* w, V of the symmetric matrix one triangle of a holds; 0 if LAPACK failed. */
static int decompose(int64_t n, int upper, const double *a, struct work *k)
{
    for (int64_t i = 0; i < n; ++i) /* column-major: the matrix numpy hands LAPACK */
        for (int64_t j = 0; j < n; ++j)
            k->cm[i + j * n] = a[i * n + j];
    char jobz = 'V', uplo = upper ? 'U' : 'L';
    int nn = (int)n, info = 0;
    scipy_dsyevd_(&jobz, &uplo, &nn, k->cm, &nn, k->w, k->lwork, &k->n_lwork, k->iwork,
                  &k->n_iwork, &info, 1, 1);
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j)
            k->vv[i * n + j] = k->cm[i + j * n];
    return info == 0;
}

void eig_values(const pyad_tape *t, int64_t i, int64_t lv, double *v)
{
    struct erow r = erow_at(t, i);
    int64_t n = r.n, nn = n * n;
    struct work k;
    void *buf = work_new(&k, n, 1);
    for (int64_t l = 0; l < lv; ++l)
        for (int64_t j = 0; j < r.count; ++j) {
            int ok = 0;
            if (buf) {
                load(k.s, v, lv, l, r.a + j * nn, nn);
                ok = decompose(n, r.upper, k.s, &k);
            }
            if (!ok) {
                double one = 1.0, nan = NAN;
                for (int64_t e = 0; e < nn; ++e)
                    store(v, lv, l, v_at(&r, j) + e, 1, &nan, 0);
                for (int64_t e = 0; e < n; ++e)
                    store(v, lv, l, w_at(&r, j) + e, 1, &nan, 0);
                store(v, lv, l, info_at(&r, j), 1, &one, 0);
                continue;
            }
            double zero = 0.0;
            store(v, lv, l, w_at(&r, j), n, k.w, 0);
            store(v, lv, l, v_at(&r, j), nn, k.vv, 0);
            store(v, lv, l, info_at(&r, j), 1, &zero, 0);
        }
    work_free(&k, buf);
}

int64_t eig_failed(const pyad_tape *t, int64_t i, int64_t lanes, const double *v, int64_t *bad)
{
    struct erow r = erow_at(t, i);
    int64_t n_failed = 0;
    for (int64_t l = 0; l < lanes; ++l) {
        int failed = 0;
        for (int64_t j = 0; j < r.count && !failed; ++j)
            failed = v[info_at(&r, j) * lanes + l] != 0.0;
        if (failed) {
            ++n_failed;
            if (bad && bad[l] < 0)
                bad[l] = r.row;
        }
    }
    return n_failed;
}

/* ---- derivatives of one matrix at one lane (w, V loaded into k) ---- */

/* P = Vᵀ sym(Ȧ) V from the tangent in k->s (overwritten). */
static void tangent_p(int64_t n, struct work *k)
{
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j <= i; ++j) {
            double s = 0.5 * (k->s[i * n + j] + k->s[j * n + i]);
            k->s[i * n + j] = k->s[j * n + i] = s;
        }
    mm(0, 0, n, 1.0, k->s, k->vv, 0.0, k->t1);
    mm(1, 0, n, 1.0, k->vv, k->t1, 0.0, k->p);
}

/* Ω = F ∘ P */
static void omega(int64_t n, struct work *k)
{
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j)
            k->om[i * n + j] = f_at(k->w, n, i, j) * k->p[i * n + j];
}

/* G = diag(w̄) + F ∘ skew(M) from w̄ (wb) and M in k->m. */
static void adjoint_g(int64_t n, const double *wb, struct work *k)
{
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j)
            k->g[i * n + j] = i == j ? wb[i]
                            : f_at(k->w, n, i, j) * 0.5 * (k->m[i * n + j] - k->m[j * n + i]);
}

int eig_tangent(const pyad_tape *t, int64_t i, int64_t lv, double *v, int64_t lt, double *vd)
{
    eig_values(t, i, lv, v);
    struct erow r = erow_at(t, i);
    int64_t n = r.n, nn = n * n;
    struct work k;
    void *buf = work_new(&k, n, 0);
    if (!buf) {
        poison(vd, lt, r.z, r.count * (n + nn + 1));
        return PYAD_OK;
    }
    int s = PYAD_OK;
    for (int64_t l = 0; l < lt && s == PYAD_OK; ++l)
        for (int64_t j = 0; j < r.count; ++j) {
            load(k.w, v, lv, l, w_at(&r, j), n);
            load(k.vv, v, lv, l, v_at(&r, j), nn);
            load(k.s, vd, lt, l, r.a + j * nn, nn);
            tangent_p(n, &k);
            for (int64_t e = 0; e < n; ++e)
                k.t2[e] = k.p[e * n + e];
            store(vd, lt, l, w_at(&r, j), n, k.t2, 0);
            store(vd, lt, l, info_at(&r, j), 1, NULL, 0);
            if (r.values_only) {
                store(vd, lt, l, v_at(&r, j), nn, NULL, 0);
                continue;
            }
            if (!tangent_ok(k.w, k.p, n)) {
                s = PYAD_ELINALG;
                break;
            }
            omega(n, &k);
            mm(0, 0, n, 1.0, k.vv, k.om, 0.0, k.t1);
            store(vd, lt, l, v_at(&r, j), nn, k.t1, 0);
        }
    work_free(&k, buf);
    return s;
}

/* Loads w, V and forms M = Vᵀ V̄ (zero for eigvalsh) and G at lane l; 0 where a
 * repeated pair makes the adjoint rule fail. wb gets w̄. */
static int adjoint_at(const struct erow *r, int64_t j, int64_t lv, const double *v, int64_t lg,
                      const double *adj, int64_t l, struct work *k, double *wb)
{
    int64_t n = r->n, nn = n * n;
    load(k->w, v, lv, l, w_at(r, j), n);
    load(k->vv, v, lv, l, v_at(r, j), nn);
    load(wb, adj, lg, l, w_at(r, j), n);
    if (r->values_only) {
        memset(k->m, 0, (size_t)nn * sizeof *k->m);
    } else {
        load(k->t1, adj, lg, l, v_at(r, j), nn);
        mm(1, 0, n, 1.0, k->vv, k->t1, 0.0, k->m);
        if (!adjoint_ok(k->w, k->m, n))
            return 0;
    }
    adjoint_g(n, wb, k);
    return 1;
}

int eig_reverse(const pyad_tape *t, int64_t i, int64_t lv, const double *v, int64_t lg,
                double *adj)
{
    struct erow r = erow_at(t, i);
    int64_t n = r.n, nn = n * n;
    struct work k;
    void *buf = work_new(&k, n, 0);
    double *wb = malloc((size_t)n * sizeof *wb);
    if (!buf || !wb) {
        work_free(&k, buf);
        free(wb);
        poison(adj, lg, r.a, r.count * nn);
        return PYAD_OK;
    }
    int s = PYAD_OK;
    for (int64_t l = 0; l < lg && s == PYAD_OK; ++l)
        for (int64_t j = 0; j < r.count; ++j) {
            if (!adjoint_at(&r, j, lv, v, lg, adj, l, &k, wb)) {
                s = PYAD_ELINALG;
                break;
            }
            sandwich(n, k.vv, k.g, k.h, k.t1);
            store(adj, lg, l, r.a + j * nn, nn, k.h, 1);
        }
    work_free(&k, buf);
    free(wb);
    return s;
}

/* Ā' at lane l of matrix j, into k->h, given w, V, M, G (adjoint_at) and the
 * tangents; 0 where a repeated pair makes a rule fail. */
static int second_at(const struct erow *r, int64_t j, int64_t lt, const double *vd,
                     int64_t lq, const double *adjd, int64_t l, struct work *k, double *wq)
{
    int64_t n = r->n, nn = n * n;
    load(k->s, vd, lt, l, r->a + j * nn, nn);
    tangent_p(n, k);
    if (!tangent_ok(k->w, k->p, n))
        return 0;
    omega(n, k);
    load(wq, adjd, lq, l, w_at(r, j), n);
    /* t2 = M' = Vᵀ V̄' − Ω M (zero for eigvalsh) */
    if (r->values_only) {
        memset(k->t2, 0, (size_t)nn * sizeof *k->t2);
    } else {
        load(k->t1, adjd, lq, l, v_at(r, j), nn);
        mm(1, 0, n, 1.0, k->vv, k->t1, 0.0, k->t2);
        mm(0, 0, n, -1.0, k->om, k->m, 1.0, k->t2);
        if (!adjoint_ok(k->w, k->t2, n))
            return 0;
    }
    /* h = G' = diag(w̄') + Ḟ ∘ skew(M) + F ∘ skew(M') */
    for (int64_t a = 0; a < n; ++a)
        for (int64_t b = 0; b < n; ++b) {
            if (a == b) {
                k->h[a * n + b] = wq[a];
                continue;
            }
            double f = f_at(k->w, n, a, b);
            double fdot = -(k->p[b * n + b] - k->p[a * n + a]) * f * f;
            k->h[a * n + b] = fdot * 0.5 * (k->m[a * n + b] - k->m[b * n + a])
                            + f * 0.5 * (k->t2[a * n + b] - k->t2[b * n + a]);
        }
    mm(0, 0, n, 1.0, k->om, k->g, 1.0, k->h);  /* + Ω G */
    mm(0, 0, n, -1.0, k->g, k->om, 1.0, k->h); /* − G Ω */
    memcpy(k->t2, k->h, (size_t)nn * sizeof *k->t2);
    sandwich(n, k->vv, k->t2, k->h, k->t1);
    return 1;
}

int eig_second(const pyad_tape *t, int64_t i, int64_t lv, const double *v, int64_t lt,
               const double *vd, int64_t lg, double *adj, int64_t lq, double *adjd)
{
    struct erow r = erow_at(t, i);
    int64_t n = r.n, nn = n * n;
    struct work k;
    void *buf = work_new(&k, n, 0);
    double *wb = malloc((size_t)(2 * n) * sizeof *wb);
    if (!buf || !wb) {
        work_free(&k, buf);
        free(wb);
        poison(adj, lg, r.a, r.count * nn);
        poison(adjd, lq, r.a, r.count * nn);
        return PYAD_OK;
    }
    int64_t lanes = lg > lq ? lg : lq;
    int s = PYAD_OK;
    for (int64_t l = 0; l < lanes && s == PYAD_OK; ++l)
        for (int64_t j = 0; j < r.count; ++j) {
            if (!adjoint_at(&r, j, lv, v, lg, adj, l, &k, wb)) {
                s = PYAD_ELINALG;
                break;
            }
            if (l < lg) {
                sandwich(n, k.vv, k.g, k.h, k.t1);
                store(adj, lg, l, r.a + j * nn, nn, k.h, 1);
            }
            if (l >= lq)
                continue;
            if (!second_at(&r, j, lt, vd, lq, adjd, l, &k, wb + n)) {
                s = PYAD_ELINALG;
                break;
            }
            store(adjd, lq, l, r.a + j * nn, nn, k.h, 1);
        }
    work_free(&k, buf);
    free(wb);
    return s;
}

/* ---- activity, validation, recording ---- */

int eig_active(const pyad_tape *t, int64_t i, const uint8_t *act, uint8_t *marks)
{
    struct erow r = erow_at(t, i);
    *marks = 0;
    for (int64_t e = 0; e < r.count * r.n * r.n; ++e)
        if (act[r.a + e])
            return 1;
    *marks = PYAD_PASSIVE_A | PYAD_PASSIVE_B;
    return 0;
}

static int span_ok(int64_t start, int64_t count, int64_t limit)
{
    return start >= 0 && count <= limit - start;
}

int eig_row_ok(int32_t a, int32_t b, int32_t c, struct block bl, int64_t below)
{
    int64_t n = bl.sa, count = bl.sc;
    return b == 0 && c == 0 && bl.sb == n && bl.sk >= 0 && bl.sk <= 3
           && eig_width(n, count) == bl.w && span_ok(a, count * n * n, below);
}

int pyad_rec_eigh(pyad_tape *t, int32_t a, int64_t n, int64_t count, int flags)
{
    if (!t)
        return PYAD_ECLOSED;
    if (n < 1 || count < 1 || (flags & ~3))
        return PYAD_EINVAL;
    int64_t w = eig_width(n, count);
    if (w < 0)
        return PYAD_ETOOBIG;
    int s = tape_begin_record(t);
    if (s)
        return s;
    if (!(s = tape_reserve(t, 1, w, 1)) && !span_ok(a, count * n * n, t->n_slots))
        s = PYAD_EINDEX;
    if (s == PYAD_OK)
        s = tape_put_factored_row(t, OP_eigh, a, 0, w, n, n, count, flags, eig_failed);
    tape_end_record(t);
    return s;
}
