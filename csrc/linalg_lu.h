/* LU-family linear algebra rows: solve, inv, det, slogdet (one row per matrix,
 * LAPACK in the value sweep, BLAS in the derivative sweeps). Slot layout and
 * rules: the comment at the top of linalg_lu.c. */
#ifndef PYAD_LINALG_LU_H
#define PYAD_LINALG_LU_H

#include "block.h"

static inline int is_lu_op(int op)
{
    return op == OP_solve || op == OP_inv || op == OP_det || op == OP_slogdet;
}

static inline int block_is_lu(const pyad_tape *t, int64_t i)
{
    return is_lu_op(t->op[t->blocks[i * BLOCK_FIELDS + BLK_ROW]]);
}

/* The width of an n x n row (m: the right-hand side's columns, solve only);
 * -1 for sizes out of range. */
int64_t lu_width(int op, int64_t n, int64_t m);

/* Whether an LU row (its block entry bl) has a consistent shape and reads only
 * slots below `below`. */
int lu_row_ok(int op, int32_t a, int32_t b, int32_t c, struct block bl, int64_t below);

/* Whether the row's operands hold any slot marked in act (activity.c). */
int lu_row_active(const pyad_tape *t, int64_t i, const uint8_t *act);

/* Whether lane l of LU block i met a singular matrix in the last value sweep
 * (solve and inv; det and slogdet define a value there). */
int lu_singular(const pyad_tape *t, int64_t i, const double *v, int64_t lanes, int64_t l);

/* Whether block i is an LU row whose lane l met a singular matrix. */
static inline int block_singular(const pyad_tape *t, int64_t i, const double *v, int64_t lanes,
                                 int64_t l)
{
    return block_is_lu(t, i) && lu_singular(t, i, v, lanes, l);
}

/* The sweeps, with lane counts per work array as product.h's. */
void lu_values(const pyad_tape *t, int64_t i, int64_t lv, double *v);
void lu_tangent(const pyad_tape *t, int64_t i, int64_t lv, double *v, int64_t lt, double *vd);
void lu_reverse(const pyad_tape *t, int64_t i, int64_t lv, const double *v, int64_t lg,
                double *adj);
void lu_second(const pyad_tape *t, int64_t i, int64_t lv, const double *v, int64_t lt,
               const double *vd, int64_t lg, double *adj, int64_t lq, double *adjd);

#endif
