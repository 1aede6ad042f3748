/* Product rows: z = A @ B as one row, run by BLAS (OpenBLAS's cblas_dgemm) in
 * every sweep. Operand layout and block fields: the table in tape.h. */
#ifndef PYAD_PRODUCT_H
#define PYAD_PRODUCT_H

#include "block.h"

static inline int is_product_op(int op)
{
    return op == OP_matmul || op == OP_matmul_c || op == OP_rmatmul_c;
}

static inline int block_is_product(const pyad_tape *t, int64_t i)
{
    return is_product_op(t->op[t->blocks[i * BLOCK_FIELDS + BLK_ROW]]);
}

/* Whether a product row (its block entry bl; a row without one has m = 0 and
 * fails) reads only slots below `below` and constants below n_consts, with
 * sizes that fit the tape's int32 indices. */
int product_row_ok(int op, int32_t a, int32_t b, int32_t c, struct block bl, int64_t below,
                   int64_t n_consts);

/* The sweeps over product block i. Each work array has its own lane count: slot
 * s, lane j at s * lanes + j (1 for the one-point sweeps; p directions for the
 * tangents / adjoints of the vector sweeps; nb points in the batched sweeps). */
void product_values(const pyad_tape *t, int64_t i, int64_t lv, double *v);
void product_tangent(const pyad_tape *t, int64_t i, int64_t lv, double *v, int64_t lt,
                     double *vd);
void product_reverse(const pyad_tape *t, int64_t i, int64_t lv, const double *v, int64_t lg,
                     double *adj);
void product_second(const pyad_tape *t, int64_t i, int64_t lv, const double *v, int64_t lt,
                    const double *vd, int64_t lg, double *adj, int64_t lq, double *adjd);

#endif
