/* One loop of a block kernel (block.c), shared with the tile-fused sweeps
 * (fused.c), which run the same kernels on tiles of a row's elements. */
#ifndef PYAD_RUN_H
#define PYAD_RUN_H

#include <stdint.h>

/* One loop of a kernel: result arrays from element 0, operand element j at
 * j * stride; g / gd are the result's adjoints, ga.. the operands'. */
struct run {
    int op;
    int64_t n;
    double *z, *zd;
    const double *g, *gd;
    const double *va, *vb, *vc, *ta, *tb, *tc;
    double *ga, *gb, *gc, *qa, *qb, *qc; /* adjoints, adjoint tangents */
    int64_t sa, sb, sc;
    const double *k; /* the constants, element j's at k[j * sk] */
    int64_t sk;
    int disjoint; /* operands a and b read slot runs that do not overlap */
    int first;    /* FIRST_A / FIRST_B (block.h): that operand's adjoints are written, not added to */
};


enum run_kernel { RUN_VALUES, RUN_TANGENT, RUN_REVERSE, RUN_SECOND };

/* Runs one kernel of block.c on r: values (z), values and tangents (z, zd), the
 * adjoints of the operands (ga.. += from g), or those and their tangents; with
 * r->first, the reverse kernels store the adjoints of the operands it names
 * (each a unit-stride run the other operand does not read) instead of adding. */
void run_kernel(enum run_kernel which, const struct run *r);

#endif
