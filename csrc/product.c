/* Product rows, z = A @ B, in every sweep: each term is one matrix product
 * handed to BLAS (the OpenBLAS of the scipy-openblas32 wheel, symbols prefixed
 * scipy_) with the operands' own layout: a pointer, a leading dimension and a
 * transpose flag, no copies.
 *
 *   values    Z  = A B
 *   tangent   Ż  = Ȧ B + A Ḃ
 *   reverse   Ā += Z̄ Bᵀ            B̄ += Aᵀ Z̄
 *   second    Ā' += Z̄' Bᵀ + Z̄ Ḃᵀ   B̄' += Aᵀ Z̄' + Ȧᵀ Z̄   (' : the adjoint's tangent)
 *
 * With lanes (p directions, or nb points) slot s, lane l lives at s * L + l.
 * A product where only one factor has lanes is still a BLAS product: lanes
 * become extra columns (Z[:, j, :] = A @ B[:, j, :], one gemm over all j when
 * the rows are contiguous). Where both factors have lanes (the batched sweeps of
 * an active @ active row) each lane is its own small product over strided
 * memory, which BLAS cannot read: those run as a loop with the lanes innermost
 * (contiguous, vectorized), as does any layout BLAS cannot take. */
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "product.h"
#include "record.h"

/* A matrix with lanes: element (r, c) of lane l at p[r * rs + c * cs + l * ls]
 * (ls 0: one value shared by every lane, as the values of a vector sweep or a
 * constant are). */
struct lmat {
    double *p;
    int64_t rows, cols, rs, cs, ls;
};

static struct lmat transposed(struct lmat x)
{
    return (struct lmat){x.p, x.cols, x.rows, x.cs, x.rs, x.ls};
}

/* A product row, decoded from its row and block entry. */
struct product {
    int64_t m, k, n, a, b, z;
    int trans_a, trans_b, const_a, const_b;
    int zero_a, zero_b; /* no tangent / adjoint: a constant or a passive factor */
    double *consts;
};

static struct product product_at(const pyad_tape *t, int64_t i)
{
    struct block bl = block_at(t, i);
    int op = t->op[bl.row], marks = row_marks(t, bl.row);
    return (struct product){bl.sa, bl.sb, bl.sc, t->arg_a[bl.row], t->arg_b[bl.row],
                            t->first[bl.row], (int)(bl.sk & PYAD_PRODUCT_TRANS_A),
                            (int)(bl.sk & PYAD_PRODUCT_TRANS_B), op == OP_rmatmul_c,
                            op == OP_matmul_c,
                            op == OP_rmatmul_c || (marks & PYAD_PASSIVE_A) != 0,
                            op == OP_matmul_c || (marks & PYAD_PASSIVE_B) != 0, t->consts};
}

/* A rows x cols operand starting at slot `at` of a work array with `lanes`
 * lanes, stored row-major or (trans) as its row-major transpose. */
static struct lmat slots_view(const double *arr, int64_t at, int64_t rows, int64_t cols,
                              int trans, int64_t lanes)
{
    double *p = (double *)arr + at * lanes;
    int64_t ls = lanes > 1;
    if (trans)
        return (struct lmat){p, rows, cols, lanes, rows * lanes, ls};
    return (struct lmat){p, rows, cols, cols * lanes, lanes, ls};
}

/* A (m x k) over the work array arr, or the constant A wherever arr is. */
static struct lmat operand_a(const struct product *p, const double *arr, int64_t lanes)
{
    if (p->const_a)
        return (struct lmat){p->consts + p->a, p->m, p->k, p->k, 1, 0};
    return slots_view(arr, p->a, p->m, p->k, p->trans_a, lanes);
}

static struct lmat operand_b(const struct product *p, const double *arr, int64_t lanes)
{
    if (p->const_b)
        return (struct lmat){p->consts + p->b, p->k, p->n, p->n, 1, 0};
    return slots_view(arr, p->b, p->k, p->n, p->trans_b, lanes);
}

static struct lmat result(const struct product *p, const double *arr, int64_t lanes)
{
    return slots_view(arr, p->z, p->m, p->n, 0, lanes);
}

/* ---- the products ---- */

/* scipy-openblas32 takes 32-bit sizes. */
static int fits_blas(int64_t x) { return x >= 1 && x <= INT32_MAX; }

/* How BLAS reads x (one lane): row-major with leading dimension *ld, or as the
 * transpose of a row-major matrix; 0 if neither stride is 1. A dimension of 1
 * makes its stride irrelevant. */
static int blas_layout(struct lmat x, enum blas_trans *trans, int64_t *ld)
{
    if (x.cs == 1 || x.cols == 1) {
        *trans = BLAS_NO_TRANS;
        *ld = x.rows > 1 ? x.rs : x.cols;
    } else if (x.rs == 1 || x.rows == 1) {
        *trans = BLAS_TRANS;
        *ld = x.cols > 1 ? x.cs : x.rows;
    } else {
        return 0;
    }
    return fits_blas(*ld);
}

/* out (+)= x @ y by one dgemm (one lane each); 0, with nothing written, when a
 * layout or size is not one BLAS takes. */
static int gemm(struct lmat out, struct lmat x, struct lmat y, int accumulate)
{
    enum blas_trans tz, tx, ty;
    int64_t lz, lx, ly;
    if (!blas_layout(out, &tz, &lz) || !blas_layout(x, &tx, &lx) || !blas_layout(y, &ty, &ly)
        || !fits_blas(out.rows) || !fits_blas(out.cols) || !fits_blas(x.cols))
        return 0;
    if (tz == BLAS_TRANS) /* a transposed result: (x y)ᵀ = yᵀ xᵀ */
        return gemm(transposed(out), transposed(y), transposed(x), accumulate);
    scipy_cblas_dgemm(BLAS_ROW_MAJOR, tx, ty, (int)out.rows, (int)out.cols,
                      (int)x.cols, 1.0, x.p, (int)lx, y.p, (int)ly,
                      accumulate ? 1.0 : 0.0, out.p, (int)lz);
    return 1;
}

/* out (+)= x @ y where x is shared by the lanes and y, out have them:
 * out[:, c, :] = x @ y[:, c, :], one product per column c, or one for all when
 * both keep their lanes contiguous across columns. 0, with nothing written,
 * when BLAS cannot take it (every column has the first column's layout, so
 * trying the first decides for all). */
static int gemm_lanes_right(struct lmat out, struct lmat x, struct lmat y, int64_t lanes,
                            int accumulate)
{
    if (y.cs == lanes && out.cs == lanes)
        return gemm((struct lmat){out.p, out.rows, out.cols * lanes, out.rs, 1, 0}, x,
                    (struct lmat){y.p, y.rows, y.cols * lanes, y.rs, 1, 0}, accumulate);
    for (int64_t c = 0; c < out.cols; ++c) {
        struct lmat oc = {out.p + c * out.cs, out.rows, lanes, out.rs, 1, 0};
        struct lmat yc = {y.p + c * y.cs, y.rows, lanes, y.rs, 1, 0};
        if (!gemm(oc, x, yc, accumulate))
            return 0;
    }
    return 1;
}

/* Lane l of x as the one-lane matrix it is at one point (strides / lanes), in
 * buf (to_buf) or written back from it. */
static struct lmat lane_copy(struct lmat x, int64_t lanes, int64_t l, double *buf, int to_buf)
{
    struct lmat one = {buf, x.rows, x.cols, x.rs / lanes, x.cs / lanes, 0};
    for (int64_t r = 0; r < x.rows; ++r)
        for (int64_t c = 0; c < x.cols; ++c) {
            double *at = x.p + r * x.rs + c * x.cs + l;
            if (to_buf)
                buf[r * one.rs + c * one.cs] = *at;
            else
                *at = buf[r * one.rs + c * one.cs];
        }
    return one;
}

static int64_t lane_span(struct lmat x, int64_t lanes)
{
    return (x.rows - 1) * (x.rs / lanes) + (x.cols - 1) * (x.cs / lanes) + 1;
}

/* out (+)= x @ y where both factors have lanes: lane by lane, each copied out to
 * the layout the one-point sweep hands BLAS, so a batched product gives the
 * one-point sweep's bits. 0, with nothing written, without memory for the
 * copies (the loop below then gives the same values to rounding). */
static int gemm_each_lane(struct lmat out, struct lmat x, struct lmat y, int64_t lanes,
                          int accumulate)
{
    int64_t nx = lane_span(x, lanes), ny = lane_span(y, lanes), no = lane_span(out, lanes);
    double *buf = malloc((size_t)(nx + ny + no) * sizeof *buf);
    if (!buf)
        return 0;
    int ok = 1;
    for (int64_t l = 0; l < lanes && ok; ++l) {
        struct lmat xl = lane_copy(x, lanes, l, buf, 1);
        struct lmat yl = lane_copy(y, lanes, l, buf + nx, 1);
        struct lmat ol = lane_copy(out, lanes, l, buf + nx + ny, accumulate);
        ok = gemm(ol, xl, yl, accumulate);
        if (ok)
            lane_copy(out, lanes, l, buf + nx + ny, 0);
    }
    free(buf);
    return ok;
}

/* out (+)= x @ y lane by lane, for layouts BLAS cannot take. */
static void product_loop(struct lmat out, struct lmat x, struct lmat y, int64_t lanes,
                         int accumulate)
{
    for (int64_t r = 0; r < out.rows; ++r)
        for (int64_t c = 0; c < out.cols; ++c) {
            double *o = out.p + r * out.rs + c * out.cs;
            if (!accumulate)
                for (int64_t l = 0; l < lanes; ++l)
                    o[l * out.ls] = 0.0;
            for (int64_t s = 0; s < x.cols; ++s) {
                const double *xp = x.p + r * x.rs + s * x.cs, *yp = y.p + s * y.rs + c * y.cs;
                if (x.ls && y.ls) /* both have lanes, so out has */
                    for (int64_t l = 0; l < lanes; ++l)
                        o[l] += xp[l] * yp[l];
                else
                    for (int64_t l = 0; l < lanes; ++l)
                        o[l * out.ls] += xp[l * x.ls] * yp[l * y.ls];
            }
        }
}

/* out (+)= x @ y over `lanes` lanes (out has them when lanes > 1). */
static void contract(struct lmat out, struct lmat x, struct lmat y, int64_t lanes,
                     int accumulate)
{
    if (lanes == 1) {
        if (gemm(out, x, y, accumulate))
            return;
    } else if (!x.ls && y.ls) {
        if (gemm_lanes_right(out, x, y, lanes, accumulate))
            return;
    } else if (x.ls && !y.ls) { /* outᵀ = yᵀ xᵀ, lanes on the right again */
        if (gemm_lanes_right(transposed(out), transposed(y), transposed(x), lanes, accumulate))
            return;
    } else if (x.ls && y.ls) {
        if (gemm_each_lane(out, x, y, lanes, accumulate))
            return;
    }
    product_loop(out, x, y, lanes, accumulate);
}

/* ---- the sweeps ---- */

void product_values(const pyad_tape *t, int64_t i, int64_t lv, double *v)
{
    struct product p = product_at(t, i);
    contract(result(&p, v, lv), operand_a(&p, v, lv), operand_b(&p, v, lv), lv, 0);
}

void product_tangent(const pyad_tape *t, int64_t i, int64_t lv, double *v, int64_t lt,
                     double *vd)
{
    struct product p = product_at(t, i);
    product_values(t, i, lv, v);
    struct lmat zd = result(&p, vd, lt);
    if (p.zero_a && p.zero_b) /* both factors passive (activity.c) */
        memset(zd.p, 0, (size_t)(p.m * p.n * lt) * sizeof *zd.p);
    if (!p.zero_a)
        contract(zd, operand_a(&p, vd, lt), operand_b(&p, v, lv), lt, 0);
    if (!p.zero_b)
        contract(zd, operand_a(&p, v, lv), operand_b(&p, vd, lt), lt, !p.zero_a);
}

void product_reverse(const pyad_tape *t, int64_t i, int64_t lv, const double *v, int64_t lg,
                     double *adj)
{
    struct product p = product_at(t, i);
    struct lmat g = result(&p, adj, lg);
    if (!p.zero_a)
        contract(operand_a(&p, adj, lg), g, transposed(operand_b(&p, v, lv)), lg, 1);
    if (!p.zero_b)
        contract(operand_b(&p, adj, lg), transposed(operand_a(&p, v, lv)), g, lg, 1);
}

void product_second(const pyad_tape *t, int64_t i, int64_t lv, const double *v, int64_t lt,
                    const double *vd, int64_t lg, double *adj, int64_t lq, double *adjd)
{
    struct product p = product_at(t, i);
    product_reverse(t, i, lv, v, lg, adj);
    struct lmat g = result(&p, adj, lg), q = result(&p, adjd, lq);
    if (!p.zero_a) {
        struct lmat qa = operand_a(&p, adjd, lq);
        contract(qa, q, transposed(operand_b(&p, v, lv)), lq, 1);
        if (!p.zero_b)
            contract(qa, g, transposed(operand_b(&p, vd, lt)), lq, 1);
    }
    if (!p.zero_b) {
        struct lmat qb = operand_b(&p, adjd, lq);
        contract(qb, transposed(operand_a(&p, v, lv)), q, lq, 1);
        if (!p.zero_a)
            contract(qb, transposed(operand_a(&p, vd, lt)), g, lq, 1);
    }
}

/* ---- recording and validation ---- */

/* count elements from start all lie in [0, limit). */
static int span_ok(int64_t start, int64_t count, int64_t limit)
{
    return start >= 0 && count <= limit - start;
}

int product_row_ok(int op, int32_t a, int32_t b, int32_t c, struct block bl, int64_t below,
                   int64_t n_consts)
{
    int64_t m = bl.sa, k = bl.sb, n = bl.sc, flags = bl.sk;
    if (m < 1 || k < 1 || n < 1 || c != 0 || flags < 0 || flags > 3 || m * n != bl.w
        || m * k > INT32_MAX || k * n > INT32_MAX)
        return 0;
    int const_a = op == OP_rmatmul_c, const_b = op == OP_matmul_c;
    if ((const_a && (flags & PYAD_PRODUCT_TRANS_A)) || (const_b && (flags & PYAD_PRODUCT_TRANS_B)))
        return 0;
    return span_ok(a, m * k, const_a ? n_consts : below)
           && span_ok(b, k * n, const_b ? n_consts : below);
}

int pyad_rec_product(pyad_tape *t, int32_t a, int32_t b, int64_t m, int64_t k, int64_t n,
                     int flags, const double *w)
{
    if (!t)
        return PYAD_ECLOSED;
    int const_a = flags & PYAD_PRODUCT_CONST_A, const_b = flags & PYAD_PRODUCT_CONST_B;
    if ((flags & ~15) || (const_a && const_b) || (const_a && (flags & PYAD_PRODUCT_TRANS_A))
        || (const_b && (flags & PYAD_PRODUCT_TRANS_B)) || ((const_a || const_b) && !w)
        || m < 1 || k < 1 || n < 1 || m > INT32_MAX || k > INT32_MAX || n > INT32_MAX)
        return PYAD_EINVAL;
    if (m * k > INT32_MAX || k * n > INT32_MAX || m * n > INT32_MAX)
        return PYAD_ETOOBIG;
    int s = tape_begin_record(t);
    if (s)
        return s;
    int64_t n_const = const_a ? m * k : const_b ? k * n : 0;
    if (!(s = tape_reserve(t, 1, m * n, 1)) && !(s = tape_reserve_consts(t, n_const))) {
        if (!(const_a || span_ok(a, m * k, t->n_slots)) || !(const_b || span_ok(b, k * n, t->n_slots)))
            s = PYAD_EINDEX;
    }
    if (s == PYAD_OK) {
        int64_t row = t->n_ops, slot = t->n_slots, base = t->n_consts;
        int op = const_a ? OP_rmatmul_c : const_b ? OP_matmul_c : OP_matmul;
        if (n_const)
            memcpy(t->consts + base, w, (size_t)n_const * sizeof *w);
        t->n_consts += n_const;
        tape_put_row(t, row, slot, op, const_a ? (int32_t)base : a, const_b ? (int32_t)base : b, 0);
        tape_put_block(t, row, m * n, m, k, n, flags & 3);
        tape_finish_rows(t, row, 1, m * n);
        s = (int)slot;
    }
    tape_end_record(t);
    return s;
}
