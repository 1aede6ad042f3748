/* Internals shared by the files that append rows to a tape. */
#ifndef PYAD_RECORD_H
#define PYAD_RECORD_H

#include "tape.h"

/* Make room for more ops / constants / list entries; the tape is unchanged on failure. */
int tape_reserve_ops(pyad_tape *t, int64_t extra);
int tape_reserve_consts(pyad_tape *t, int64_t extra);
int tape_reserve_list(pyad_tape *t, int32_t **list, int64_t *cap, int64_t n, int64_t extra);

/* PYAD_OK if every s[i] names an existing slot, else PYAD_EINDEX. */
int tape_check_slots(const pyad_tape *t, const int32_t *s, int64_t n);

static inline void tape_put_row(pyad_tape *t, int64_t k, int op, int32_t a, int32_t b, int32_t c)
{
    t->op[k] = (uint8_t)op;
    t->arg_a[k] = a;
    t->arg_b[k] = b;
    t->arg_c[k] = c;
}

/* Rows [first, first + n) are written: evaluate them and count them in. */
void tape_finish_rows(pyad_tape *t, int64_t first, int64_t n);

#endif
