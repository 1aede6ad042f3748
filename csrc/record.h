/* Internals shared by the files that append rows to a tape. */
#ifndef PYAD_RECORD_H
#define PYAD_RECORD_H

#include "tape.h"

/* Make room for `rows` more rows defining `slots` more slots, `blocks` of them
 * block rows (all or nothing: the tape is unchanged on failure).
 * tape_reserve_ops(t, n) is room for n scalar rows. */
int tape_reserve(pyad_tape *t, int64_t rows, int64_t slots, int64_t blocks);
int tape_reserve_ops(pyad_tape *t, int64_t extra);
int tape_reserve_consts(pyad_tape *t, int64_t extra);
int tape_reserve_list(pyad_tape *t, int32_t **list, int64_t *cap, int64_t n, int64_t extra);

/* PYAD_OK if every s[i] names an existing slot, else PYAD_EINDEX. */
int tape_check_slots(const pyad_tape *t, const int32_t *s, int64_t n);

/* Writes row k defining slots from `slot` on (the caller keeps rows in slot order). */
static inline void tape_put_row(pyad_tape *t, int64_t k, int64_t slot, int op, int32_t a,
                                int32_t b, int32_t c)
{
    t->op[k] = (uint8_t)op;
    t->arg_a[k] = a;
    t->arg_b[k] = b;
    t->arg_c[k] = c;
    t->first[k] = (int32_t)slot;
}

/* Appends the block entry of row k (room reserved): width w >= 2, strides of a,
 * b, c and of the constant index. */
static inline void tape_put_block(pyad_tape *t, int64_t k, int64_t w, int64_t sa, int64_t sb,
                                  int64_t sc, int64_t sk)
{
    int32_t *e = t->blocks + t->n_blocks * BLOCK_FIELDS;
    e[BLK_ROW] = (int32_t)k;
    e[BLK_WIDTH] = (int32_t)w;
    e[BLK_SA] = (int32_t)sa;
    e[BLK_SB] = (int32_t)sb;
    e[BLK_SC] = (int32_t)sc;
    e[BLK_SK] = (int32_t)sk;
    t->n_blocks++;
}

/* The stride s >= 0 with x[i] = x[0] + s * i for every i < n (n >= 2), or -1. */
int64_t affine_stride(const int32_t *x, int64_t n);

/* Rows [first_row, first_row + n_rows), defining the slots from t->n_slots on
 * (n_slots of them), are written: count them in (their values wait for tape_settle). */
void tape_finish_rows(pyad_tape *t, int64_t first_row, int64_t n_rows, int64_t n_slots);
/* Evaluate the rows [n_valued, n_ops) at the recorded point (t held by the caller). */
void tape_settle(pyad_tape *t);
/* Whether a linear-algebra block's factorisation failed (eig_failed, linalg_sym_failed). */
typedef int64_t (*factor_failed_fn)(const pyad_tape *t, int64_t i, int64_t lanes,
                                    const double *v, int64_t *bad);
int tape_put_factored_row(pyad_tape *t, int op, int32_t a, int32_t b, int64_t w, int64_t n,
                          int64_t m, int64_t count, int flags, factor_failed_fn failed);

#endif
