/* Gathers, reductions and scans (ops.def's last section): rows that read their
 * operand through a list of slots in the pool (gather) or an (m, k) layout of
 * slots (reduce_*, cumsum, cumprod). They are always block rows (tape.h gives
 * the fields); block.c hands them here in every sweep. */
#ifndef PYAD_GATHER_H
#define PYAD_GATHER_H

#include "block.h"

/* Whether op is one of these rows (any int, so validation may ask). */
static inline int rows_op(int op)
{
    return op == OP_gather || op == OP_reduce_add || op == OP_reduce_mul || op == OP_reduce_max
           || op == OP_reduce_min || op == OP_cumsum || op == OP_cumprod;
}

static inline int rows_block(const pyad_tape *t, int64_t i)
{
    return rows_op(t->op[t->blocks[i * BLOCK_FIELDS + BLK_ROW]]);
}

/* The sweeps of block i (one of these rows), with block.c's lane conventions:
 * slot s's lane j at s * lanes + j. */
void rows_values(const pyad_tape *t, int64_t i, int64_t lanes, double *v);
void rows_tangent(const pyad_tape *t, int64_t i, int64_t lanes, double *v, double *vd);
void rows_reverse(const pyad_tape *t, int64_t i, int64_t lanes, const double *v, double *adj);
void rows_second(const pyad_tape *t, int64_t i, int64_t lanes, const double *v,
                 const double *vd, double *adj, double *adjd);
/* Vector sweeps at one point: values one lane, tangents / adjoints p. */
void rows_tangent_vector(const pyad_tape *t, int64_t i, int64_t p, double *v, double *vd);
void rows_reverse_vector(const pyad_tape *t, int64_t i, int64_t q, const double *v,
                         double *adj);
void rows_second_vector(const pyad_tape *t, int64_t i, int64_t p, const double *v,
                        const double *vd, double *adj, double *adjd);

/* Validation (serialize.c): the row of op with operands a, b, c and block entry
 * bl, defining slots from `below` on, reads only slots < below and pool entries
 * in range, with sizes that overflow nothing. */
int rows_row_ok(int op, int32_t a, int32_t b, int32_t c, struct block bl, int64_t below,
                int64_t n_pool, const int32_t *pool);

/* For record.c: appends a gather row of the n slots idx at row k, slot `slot`
 * (rows, slots, block entry and n pool entries reserved, idx checked). */
void rows_put_gather(pyad_tape *t, int64_t k, int64_t slot, const int32_t *idx, int64_t n);
/* The same, for n slot indices the caller already wrote at t->pool + t->n_pool. */
void rows_put_pool_gather(pyad_tape *t, int64_t k, int64_t slot, int64_t n);

#endif
