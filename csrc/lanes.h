/* The batched sweeps' kernels for block rows (lanes = nb > 1: slot s holds the
 * batch's points at s * nb .. s * nb + nb - 1). They put the points innermost, so
 * every loop runs over contiguous doubles: block_lanes.c for elementwise rows
 * (with glibc's vector math where batch.c uses it), reduce_lanes.c for
 * reductions and scans. The one-point sweeps never come here. */
#ifndef PYAD_LANES_H
#define PYAD_LANES_H

#include "block.h"

/* Block i (an elementwise row: unary, binary, with a constant, comparison,
 * select) of t, swept at `lanes` points. Which sweep follows block.c's
 * run_block: values (vd, adj, adjd NULL), tangent (adj NULL), reverse (adjd
 * NULL), forward-over-reverse (all given). */
void block_lanes(const pyad_tape *t, int64_t i, int64_t lanes, const double *v,
                 const double *vd, const double *adj, const double *adjd);

/* Block i (reduce_add / reduce_mul / reduce_max / reduce_min / cumsum /
 * cumprod) at `lanes` > 1 points, each lane bit for bit what gather.c's
 * one-lane kernels give. Return 0 for any other row (gather.c keeps it). */
int reduce_lanes_values(const pyad_tape *t, int64_t i, int64_t lanes, double *v);
int reduce_lanes_tangent(const pyad_tape *t, int64_t i, int64_t lanes, double *v, double *vd);
int reduce_lanes_reverse(const pyad_tape *t, int64_t i, int64_t lanes, const double *v,
                         double *adj);
int reduce_lanes_second(const pyad_tape *t, int64_t i, int64_t lanes, const double *v,
                        const double *vd, double *adj, double *adjd);

#endif
