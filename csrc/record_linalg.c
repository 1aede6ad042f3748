/* Recording products with constant matrices in one call each (reductions: gather.c). */
#include <stdlib.h>
#include <string.h>

#include "record.h"

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
