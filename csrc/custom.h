/* Custom rows: a function whose rules are the caller's, reached through the
 * tape's callback (pyad.h, pyad_rec_custom). Operand layout: tape.h. */
#ifndef PYAD_CUSTOM_H
#define PYAD_CUSTOM_H

#include "block.h"

static inline int block_is_custom(const pyad_tape *t, int64_t i)
{
    return t->op[t->blocks[i * BLOCK_FIELDS + BLK_ROW]] == OP_custom;
}

/* The sweeps over custom block i, each one callback for the whole row. Lane
 * counts as in product.h: lv for values, lt tangents, lg adjoints, lq adjoint
 * tangents. PYAD_OK, or PYAD_ECALLBACK when the rule failed (PYAD_EINVAL when
 * the tape has no callback). */
int custom_values(const pyad_tape *t, int64_t i, int64_t lv, double *v);
int custom_tangent(const pyad_tape *t, int64_t i, int64_t lv, double *v, int64_t lt,
                   double *vd);
int custom_reverse(const pyad_tape *t, int64_t i, int64_t lv, const double *v, int64_t lg,
                   double *adj);
int custom_second(const pyad_tape *t, int64_t i, int64_t lv, const double *v, int64_t lt,
                  const double *vd, int64_t lg, double *adj, int64_t lq, double *adjd);

#endif
