/* Symmetric and triangular linear-algebra rows (csrc/linalg_sym.c): cholesky
 * and solve_triangular, each one row calling LAPACK / BLAS in every sweep.
 * Operand layout and block fields: the table at the top of linalg_sym.c. The
 * eigh row (csrc/linalg_eig.c) is reached through this dispatch too. */
#ifndef PYAD_LINALG_SYM_H
#define PYAD_LINALG_SYM_H

#include "block.h"
#include "linalg_eig.h"

static inline int is_linalg_sym_op(int op)
{
    return op == OP_cholesky || op == OP_solve_triangular || is_eig_op(op);
}

static inline int block_is_linalg_sym(const pyad_tape *t, int64_t i)
{
    return is_linalg_sym_op(t->op[t->blocks[i * BLOCK_FIELDS + BLK_ROW]]);
}

/* Whether a row of these ops (its block entry bl) reads only slots below
 * `below`, with sizes that fit the tape's int32 indices. */
int linalg_sym_row_ok(int op, int32_t a, int32_t b, int32_t c, struct block bl, int64_t below);

/* Whether an active slot feeds the row; *marks gets PYAD_PASSIVE_A / _B for
 * an operand no active slot reaches (act: one byte per slot). */
int linalg_sym_active(const pyad_tape *t, int64_t i, const uint8_t *act, uint8_t *marks);

/* The points (lanes) where block i's factorisation failed after its values
 * were computed (v with `lanes` lanes): each such lane l gets bad[l] = the
 * row when bad[l] < 0 (bad may be NULL). Returns how many lanes failed. */
int64_t linalg_sym_failed(const pyad_tape *t, int64_t i, int64_t lanes, const double *v,
                          int64_t *bad);

/* Whether block i is one of these rows and failed at a one-point sweep's values. */
static inline int linalg_sym_failed_here(const pyad_tape *t, int64_t i, const double *v)
{
    return block_is_linalg_sym(t, i) && linalg_sym_failed(t, i, 1, v, NULL) > 0;
}

/* The sweeps, with product.c's lane conventions: each work array has its own
 * lane count (slot s, lane j at s * lanes + j; a count of 1 is shared by every
 * lane of the others). The derivative sweeps return PYAD_OK, or PYAD_ELINALG
 * (eigh at repeated eigenvalues, linalg_eig.h). */
void linalg_sym_values(const pyad_tape *t, int64_t i, int64_t lv, double *v);
int linalg_sym_tangent(const pyad_tape *t, int64_t i, int64_t lv, double *v, int64_t lt,
                        double *vd);
int linalg_sym_reverse(const pyad_tape *t, int64_t i, int64_t lv, const double *v, int64_t lg,
                        double *adj);
int linalg_sym_second(const pyad_tape *t, int64_t i, int64_t lv, const double *v, int64_t lt,
                       const double *vd, int64_t lg, double *adj, int64_t lq, double *adjd);

#endif
