/* The tape's storage, shared by the recorder and the sweeps (not public). */
#ifndef PYAD_TAPE_H
#define PYAD_TAPE_H

#include <stdatomic.h>
#include <stdint.h>

#include "pyad.h"

/* The opcode enum, expanded from the registry. */
enum pyad_op {
#define SPECIAL(name, differentiable) OP_##name,
#define UNARY(name, numpy, operator, differentiable, value, d_x, dd_x) OP_##name,
#define BINARY(name, numpy, operator, cf, rcf, value, d_x, d_y, dd_x, dd_y) OP_##name,
#define WITH_CONST(name, value, d_x, dd_x) OP_##name,
#define COMPARE(name, numpy, operator, cf, rcf, value) OP_##name,
#define COMPARE_C(name, value) OP_##name,
#include "expand_ops.h"
    OP_COUNT
};
/* A registry row's constant form "NONE": the op has none. */
#define OP_NONE (-1)

/* Struct of arrays. Row k defines the block of slots first[k] .. first[k] + w - 1,
 * numbered in row order; w is 1 for a scalar row, and a block row (w >= 2) has
 * one entry in `blocks` (BLOCK_FIELDS int32 each, in row order) giving its width
 * and the element stride of each operand. Per row: 1 byte op code, three 32-bit
 * operand fields and the 32-bit first slot; per slot: one recorded value. */
#define BLOCK_FIELDS 6
enum block_field { BLK_ROW, BLK_WIDTH, BLK_SA, BLK_SB, BLK_SC, BLK_SK };
/* What the fields mean for the rows that are ALWAYS block rows (an entry even at
 * width 1; every other block row has width >= 2):
 *
 *   op              WIDTH     SA, SB                 SC, SK  arg_a        arg_b  arg_c
 *   gather          n         0, 0                   0, 0    pool offset  0      0
 *   reduce_*        m         row, column strides    0, 0    first slot   k      0
 *   cumsum/cumprod  m * k     row, column strides    0, 0    first slot   k      0
 *
 * gather's element e reads v[pool[a + e]]. The reductions and scans read an (m, k)
 * layout: element (i, j) is slot a + SA * i + SB * j (SA, SB >= 0; a layout that is
 * not affine is gathered first). A reduction defines m slots, output i reducing
 * row i; a scan defines m * k slots, (i, j) at first + i * k + j.
 *
 * Products, also always block rows:
 *
 *   op                  arg_a        arg_b        arg_c  WIDTH  SA  SB  SC  SK
 *   matmul              A's slot     B's slot     0      m*n    m   k   n   flags
 *   matmul_c            A's slot     B's const    0      m*n    m   k   n   flags
 *   rmatmul_c           A's const    B's slot     0      m*n    m   k   n   flags
 *
 *   custom              x's slot     n_in         rule   n_out  0   0   0   0
 *
 *   custom: z = the caller's function (rule number c) of the n_in slots from a,
 *   all below the row's first slot; every sweep calls the tape's custom_fn.
 *
 *   products: z = A @ B, A m x k, B k x n, z row-major. flags bit 0: A's slots
 *   hold A transposed (k x m, row-major), bit 1: likewise B; a constant operand
 *   is row-major, never transposed. An operand on the tape reads exactly the
 *   slots [a, a + m*k) (B: [b, b + k*n)).
 *
 * cholesky and solve_triangular, also always block rows: csrc/linalg_sym.c. */

struct pyad_tape {
    int64_t n_ops, cap_ops;
    /* Rows [0, n_valued) hold their values at the recorded point in val. A
     * recorder appends rows without evaluating them (pyad.trace of a numpy
     * function then costs no more than its Python); the first reader or sweep
     * evaluates them all at once (tape_begin_sweep, tape_settle). */
    int64_t n_valued;
    int64_t n_slots, cap_slots, max_ops; /* max_ops bounds slots (so rows too) */
    int64_t max_bytes; /* allocation budget (a test hook for out-of-memory paths) */
    uint8_t *op;
    int32_t *arg_a, *arg_b, *arg_c, *first;
    double *val; /* per slot */

    int64_t n_blocks, cap_blocks;
    int32_t *blocks;

    int64_t n_consts, cap_consts;
    double *consts;

    int64_t n_pool, cap_pool;
    int32_t *pool;    /* operand lists of variadic ops (max_n, min_n) */

    int64_t n_inputs, cap_inputs;
    int32_t *inputs;  /* slot of each input, in input order */
    int64_t n_outputs, cap_outputs;
    int32_t *outputs; /* slot of each output */

    /* Activity marks per row (activity.c), NULL until inputs are declared
     * parameters; rows from n_marked on count as active. */
    uint8_t *passive;
    int64_t n_marked;

    /* Custom rows' callback and its context (pyad.h); NULL until set. */
    pyad_custom_fn custom_fn;
    void *custom_ctx;

    /* 0: idle; -1: a recorder holds the tape; n > 0: n sweeps are running. */
    atomic_int users;

    /* When the reverse sweeps zero each block's adjoints (lazy_adjoint.h): built
     * by the first sweep that needs it, dropped when a recorder takes the tape. */
    struct adjoint_plan *_Atomic adjoint_plan;
};

/* Activity marks (activity.c): a passive row has no derivative with respect to
 * the differentiated inputs; a product row marks a passive factor. */
enum { PYAD_PASSIVE_ROW = 1, PYAD_PASSIVE_A = 2, PYAD_PASSIVE_B = 4 };

static inline int row_marks(const pyad_tape *t, int64_t k)
{
    return k < t->n_marked ? t->passive[k] : 0;
}

static inline int row_passive(const pyad_tape *t, int64_t k)
{
    return row_marks(t, k) & PYAD_PASSIVE_ROW;
}

/* Concurrency guards: recording is exclusive, sweeps may overlap each other. */
int tape_begin_record(pyad_tape *t);
void tape_end_record(pyad_tape *t);
/* A sweep begins on a settled tape: rows still without values get them first
 * (tape_settle_idle: t held as by a recorder meanwhile; PYAD_EBUSY if not idle). */
int tape_settle_idle(pyad_tape *t);
int tape_begin_sweep(pyad_tape *t);
void tape_end_sweep(pyad_tape *t);

#endif
