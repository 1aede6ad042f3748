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
    int64_t first = t->n_ops;
    int variadic = op == OP_maximum ? OP_max_n : OP_min_n;
    if (m)
        memcpy(t->pool + t->n_pool, x, (size_t)(m * k) * sizeof *x);
    for (int64_t i = 0; i < m; ++i) {
        tape_put_row(t, first + i, variadic, x[i * k], (int32_t)k, (int32_t)(t->n_pool + i * k));
        out[i] = (int32_t)(first + i);
    }
    t->n_pool += m * k;
    tape_finish_rows(t, first, m);
    return PYAD_OK;
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
    int32_t *level = NULL;
    if (!(s = tape_reserve_ops(t, m * (k - 1))) && !(s = tape_check_slots(t, x, m * k))) {
        level = malloc((size_t)k * sizeof *level);
        if (!level)
            s = PYAD_ENOMEM;
    }
    if (s == PYAD_OK) {
        /* A pairwise tree: as many ops as a chain, rounding error growing with log k. */
        int64_t first = t->n_ops, next = first;
        for (int64_t i = 0; i < m; ++i) {
            memcpy(level, x + i * k, (size_t)k * sizeof *level);
            for (int64_t len = k; len > 1; len = (len + 1) / 2) {
                for (int64_t j = 0; j + 1 < len; j += 2) {
                    tape_put_row(t, next, op, level[j], level[j + 1], 0);
                    level[j / 2] = (int32_t)next++;
                }
                if (len % 2)
                    level[len / 2] = level[len - 1];
            }
            out[i] = level[0];
        }
        tape_finish_rows(t, first, next - first);
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
        if (p)
            memcpy(t->consts + base, w, (size_t)(k * p) * sizeof *w);
        t->n_consts += k * p;
        for (int64_t i = 0; i < m; ++i) {
            const int32_t *row = x + i * k;
            for (int64_t j = 0; j < p; ++j) {
                tape_put_row(t, next, OP_mul_c, row[0], (int32_t)(base + j), 0);
                for (int64_t l = 1; l < k; ++l, ++next)
                    tape_put_row(t, next + 1, OP_axpy_c, (int32_t)next, row[l],
                                 (int32_t)(base + l * p + j));
                out[i * p + j] = (int32_t)next++;
            }
        }
        tape_finish_rows(t, first, next - first);
    }
    tape_end_record(t);
    return s;
}
