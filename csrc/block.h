/* Block rows: one row defining w consecutive slots, each element read from its
 * operands with a per-operand stride (tape.h). Every sweep hands a block row to
 * one of the kernels here, which run the registry's rules (ops.def) in one loop
 * over the elements: no per-element dispatch. */
#ifndef PYAD_BLOCK_H
#define PYAD_BLOCK_H

#include "tape.h"

/* The block entry of a block row, widened. */
struct block {
    int64_t row, w, sa, sb, sc, sk;
};

static inline struct block block_at(const pyad_tape *t, int64_t i)
{
    const int32_t *e = t->blocks + i * BLOCK_FIELDS;
    return (struct block){e[BLK_ROW], e[BLK_WIDTH], e[BLK_SA], e[BLK_SB], e[BLK_SC], e[BLK_SK]};
}

/* The row of block entry i, or one no row has (past either end), so a sweep
 * tests one integer per row to find its block rows. */
static inline int64_t block_row(const pyad_tape *t, int64_t i)
{
    return i >= 0 && i < t->n_blocks ? t->blocks[i * BLOCK_FIELDS + BLK_ROW] : -1;
}

/* The width of block entry i. Scalar rows between block rows define
 * consecutive slots, so a sweep tracks slot - row and adds each block's
 * width - 1 as it passes it, instead of reading every row's first slot. */
static inline int64_t block_width(const pyad_tape *t, int64_t i)
{
    return t->blocks[i * BLOCK_FIELDS + BLK_WIDTH];
}

/* The first block entry whose row is >= row (n_blocks if none). */
int64_t block_search(const pyad_tape *t, int64_t row);

/* Input and constant block rows read no slots: the sweeps that set values or
 * tangents hand them to block_source, not to the kernels below (which leave
 * them alone); the reverse sweeps need nothing of them, as an input's adjoint
 * is read from its slot afterwards. */
static inline int block_is_source(const pyad_tape *t, int64_t i)
{
    int op = t->op[t->blocks[i * BLOCK_FIELDS + BLK_ROW]];
    return op == OP_input || op == OP_constant;
}

/* Element e of input block i copies input a + e, of constant block i consts[b + e].
 * x and xd hold input m of lane j at m + j * n_inputs; v has `lanes` lanes per
 * slot and vd `tlanes`. x NULL (while recording) keeps the recorded input
 * values; vd NULL sets no tangents. */
void block_source(const pyad_tape *t, int64_t i, const double *x, double *v, int64_t lanes,
                  const double *xd, double *vd, int64_t tlanes);

/* Copies the adjoints of the inputs that input block rows define into xbar (input
 * m at xbar[m]), one run per row; returns whether those rows define every input
 * (else the caller reads the scalar inputs' adjoints). */
int block_input_adjoints(const pyad_tape *t, const double *adj, double *xbar);

/* Sweeps over block i of t. Slot s's lanes are at s * lanes .. s * lanes +
 * lanes - 1 in every work array (lanes = 1 for the one-point sweeps, nb for the
 * batched ones). Arrays not used by a sweep may be NULL. The reverse and
 * second-order kernels pass by a block row no derivative reaches (activity.c).
 * Each returns PYAD_OK, or a custom row's failure status (custom.h): the
 * sweep stops there and returns it. */
int block_values(const pyad_tape *t, int64_t i, int64_t lanes, double *v);
int block_tangent(const pyad_tape *t, int64_t i, int64_t lanes, double *v, double *vd);
int block_reverse(const pyad_tape *t, int64_t i, int64_t lanes, const double *v, double *adj);
int block_second(const pyad_tape *t, int64_t i, int64_t lanes, const double *v,
                 const double *vd, double *adj, double *adjd);

/* block_reverse / block_second at one point for a row that writes the first
 * adjoints of operand a and/or b (`first`: FIRST_A | FIRST_B), which lazy_adjoint.c
 * checked: an elementwise row, not passive, each such operand a unit-stride
 * run over a whole block no other operand of the row reads. */
enum { FIRST_A = 1, FIRST_B = 2 };
void block_reverse_first(const pyad_tape *t, int64_t i, const double *v, double *adj,
                         int first);
void block_second_first(const pyad_tape *t, int64_t i, const double *v, const double *vd,
                        double *adj, double *adjd, int first);

/* Vector sweeps at one point: values have one lane, tangents / adjoints p. */
int block_tangent_vector(const pyad_tape *t, int64_t i, int64_t p, double *v, double *vd);
int block_reverse_vector(const pyad_tape *t, int64_t i, int64_t q, const double *v,
                         double *adj);
int block_second_vector(const pyad_tape *t, int64_t i, int64_t p, const double *v,
                        const double *vd, double *adj, double *adjd);

#endif
