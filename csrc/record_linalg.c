/* Recording reductions and products with constant matrices in one call each. */
#include <stdlib.h>
#include <string.h>

#include "record.h"

static int is_binary(int op)
{
    int kind = pyad_op_kind(op);
    return kind == PYAD_KIND_BINARY;
}

/* max / min: one variadic op per row, its operands listed in the pool. */
static int record_extrema(pyad_tape *t, int op, const int32_t *x, int64_t m, int64_t k,
                          int32_t *out)
{
    int s;
    if ((s = tape_reserve_ops(t, m)) || (s = tape_reserve_list(t, &t->pool, &t->cap_pool,
                                                                  t->n_pool, m * k))
        || (s = tape_check_slots(t, x, m * k)))
        return s;
    int64_t first = t->n_ops, slot = t->n_slots;
    int variadic = op == OP_maximum ? OP_max_n : OP_min_n;
    if (m)
        memcpy(t->pool + t->n_pool, x, (size_t)(m * k) * sizeof *x);
    for (int64_t i = 0; i < m; ++i) {
        tape_put_row(t, first + i, slot + i, variadic, x[i * k], (int32_t)k,
                     (int32_t)(t->n_pool + i * k));
        out[i] = (int32_t)(slot + i);
    }
    t->n_pool += m * k;
    tape_finish_rows(t, first, m, m);
    return PYAD_OK;
}

/* Where a pairwise tree puts its rows: counted first (write = 0), then written. */
struct tree_cursor {
    int64_t row, slot, blocks;
    int write;
};

/* How many leading pairs (level[2j], level[2j + 1]) of the npairs are affine in
 * both operands (0 when fewer than 2), with the strides in *sa, *sb. */
static int64_t affine_pairs(const int32_t *level, int64_t npairs, int64_t *sa, int64_t *sb)
{
    if (npairs < 2)
        return 0;
    *sa = (int64_t)level[2] - level[0];
    *sb = (int64_t)level[3] - level[1];
    if (*sa < 0 || *sb < 0)
        return 0;
    int64_t j = 2;
    while (j < npairs && level[2 * j] == level[0] + *sa * j && level[2 * j + 1] == level[1] + *sb * j)
        ++j;
    return j;
}

/* One level of the tree: its affine leading pairs as one block row, the rest
 * as scalar rows; level[j] becomes the slot of pair j's sum, and an odd
 * leftover moves up to level[npairs]. Returns the new length. */
static int64_t tree_level(pyad_tape *t, int op, int32_t *level, int64_t len, struct tree_cursor *at)
{
    int64_t npairs = len / 2, sa = 0, sb = 0;
    int64_t run = affine_pairs(level, npairs, &sa, &sb);
    if (run >= 2) {
        if (at->write) {
            tape_put_row(t, at->row, at->slot, op, level[0], level[1], 0);
            tape_put_block(t, at->row, run, sa, sb, 0, 0);
        }
        for (int64_t j = 0; j < run; ++j)
            level[j] = (int32_t)(at->slot + j);
        at->row++, at->blocks++, at->slot += run;
    }
    for (int64_t j = run; j < npairs; ++j) {
        if (at->write)
            tape_put_row(t, at->row, at->slot, op, level[2 * j], level[2 * j + 1], 0);
        level[j] = (int32_t)at->slot;
        at->row++, at->slot++;
    }
    if (len % 2)
        level[npairs] = level[len - 1];
    return (len + 1) / 2;
}

/* The pairwise trees of the m rows of x (m x k slots); roots in out. */
static void reduce_trees(pyad_tape *t, int op, const int32_t *x, int64_t m, int64_t k,
                         int32_t *level, int32_t *out, struct tree_cursor *at)
{
    for (int64_t i = 0; i < m; ++i) {
        memcpy(level, x + i * k, (size_t)k * sizeof *level);
        for (int64_t len = k; len > 1;)
            len = tree_level(t, op, level, len, at);
        if (out)
            out[i] = level[0];
    }
}

int pyad_rec_reduce(pyad_tape *t, int op, const int32_t *x, int64_t m, int64_t k, int32_t *out)
{
    if (!t)
        return PYAD_ECLOSED;
    if (!is_binary(op) || m < 0 || k < 1 || m > INT32_MAX || k > INT32_MAX
        || (m > 0 && (!x || !out)))
        return PYAD_EINVAL;
    int s = tape_begin_record(t);
    if (s)
        return s;
    if (op == OP_maximum || op == OP_minimum) {
        s = record_extrema(t, op, x, m, k, out);
        tape_end_record(t);
        return s;
    }
    if (m * (k - 1) > INT32_MAX) {
        tape_end_record(t);
        return PYAD_ETOOBIG;
    }
    int32_t *level = NULL;
    if (!(s = tape_check_slots(t, x, m * k))) {
        level = malloc((size_t)k * sizeof *level);
        if (!level)
            s = PYAD_ENOMEM;
    }
    if (s == PYAD_OK) {
        /* A pairwise tree: as many sums as a chain, rounding error growing with
         * log k; counted first, so room is reserved for exactly its rows. */
        struct tree_cursor plan = {t->n_ops, t->n_slots, 0, 0};
        reduce_trees(t, op, x, m, k, level, NULL, &plan);
        int64_t rows = plan.row - t->n_ops, slots = plan.slot - t->n_slots;
        if (!(s = tape_reserve(t, rows, slots, plan.blocks))) {
            struct tree_cursor at = {t->n_ops, t->n_slots, 0, 1};
            reduce_trees(t, op, x, m, k, level, out, &at);
            tape_finish_rows(t, t->n_ops, rows, slots);
        }
    }
    free(level);
    tape_end_record(t);
    return s;
}

int pyad_rec_matmul_c(pyad_tape *t, const int32_t *x, int64_t m, int64_t k,
                      const double *w, int64_t p, int32_t *out)
{
    if (!t)
        return PYAD_ECLOSED;
    if (m < 0 || p < 0 || k < 1 || m > INT32_MAX || k > INT32_MAX || p > INT32_MAX
        || (m * k > 0 && !x) || (k * p > 0 && !w) || (m * p > 0 && !out))
        return PYAD_EINVAL;
    int s = tape_begin_record(t);
    if (s)
        return s;
    if (!(s = tape_reserve_ops(t, m * p * k)) && !(s = tape_reserve_consts(t, k * p))
        && !(s = tape_check_slots(t, x, m * k))) {
        int64_t first = t->n_ops, next = first, base = t->n_consts;
        int64_t shift = t->n_slots - first; /* scalar rows: row r defines slot r + shift */
        if (p)
            memcpy(t->consts + base, w, (size_t)(k * p) * sizeof *w);
        t->n_consts += k * p;
        for (int64_t i = 0; i < m; ++i) {
            const int32_t *row = x + i * k;
            for (int64_t j = 0; j < p; ++j) {
                tape_put_row(t, next, next + shift, OP_mul_c, row[0], (int32_t)(base + j), 0);
                for (int64_t l = 1; l < k; ++l, ++next)
                    tape_put_row(t, next + 1, next + 1 + shift, OP_axpy_c,
                                 (int32_t)(next + shift), row[l], (int32_t)(base + l * p + j));
                out[i * p + j] = (int32_t)(next++ + shift);
            }
        }
        tape_finish_rows(t, first, next - first, next - first);
    }
    tape_end_record(t);
    return s;
}
