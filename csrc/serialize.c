/* A tape as plain arrays: copied out for saving, validated and copied in for
 * loading. Validation is the only defence against a corrupt file, so every
 * index is checked against what its op kind says it names. */
#include <stdlib.h>
#include <string.h>

#include "block.h"
#include "gather.h"
#include "linalg_sym.h"
#include "product.h"
#include "linalg_lu.h"
#include "record.h"

int pyad_tape_export(pyad_tape *t, uint8_t *op, int32_t *a, int32_t *b, int32_t *c,
                     int32_t *first, double *val, double *consts, int32_t *pool,
                     int32_t *inputs, int32_t *outputs, int32_t *blocks)
{
    if (!t)
        return PYAD_ECLOSED;
    if ((t->n_ops && (!op || !a || !b || !c || !first || !val)) || (t->n_consts && !consts)
        || (t->n_pool && !pool) || (t->n_inputs && !inputs) || (t->n_outputs && !outputs)
        || (t->n_blocks && !blocks))
        return PYAD_EINVAL;
    int s = tape_begin_sweep(t);
    if (s)
        return s;
    size_t n = (size_t)t->n_ops;
    if (n) {
        memcpy(op, t->op, n);
        memcpy(a, t->arg_a, n * sizeof *a);
        memcpy(b, t->arg_b, n * sizeof *b);
        memcpy(c, t->arg_c, n * sizeof *c);
        memcpy(first, t->first, n * sizeof *first);
        memcpy(val, t->val, (size_t)t->n_slots * sizeof *val);
    }
    if (t->n_consts)
        memcpy(consts, t->consts, (size_t)t->n_consts * sizeof *consts);
    if (t->n_pool)
        memcpy(pool, t->pool, (size_t)t->n_pool * sizeof *pool);
    if (t->n_inputs)
        memcpy(inputs, t->inputs, (size_t)t->n_inputs * sizeof *inputs);
    if (t->n_outputs)
        memcpy(outputs, t->outputs, (size_t)t->n_outputs * sizeof *outputs);
    if (t->n_blocks)
        memcpy(blocks, t->blocks, (size_t)(t->n_blocks * BLOCK_FIELDS) * sizeof *blocks);
    tape_end_sweep(t);
    return PYAD_OK;
}

static int in_range(int64_t i, int64_t n) { return i >= 0 && i < n; }

/* Every pool entry of a variadic op names an earlier slot. */
static int pool_ok(int64_t below, int32_t a, int32_t count, int32_t offset, int64_t n_pool,
                   const int32_t *pool)
{
    if (count < 1 || offset < 0 || (int64_t)offset + count > n_pool || pool[offset] != a)
        return 0;
    for (int64_t i = offset; i < (int64_t)offset + count; ++i)
        if (!in_range(pool[i], below))
            return 0;
    return 1;
}

/* Elements 0 .. w - 1 of an operand at x with stride s all lie in [0, n):
 * checking both ends is enough, the elements between them are in order. */
static int elements_in_range(int64_t x, int64_t s, int64_t w, int64_t n)
{
    return s >= 0 && in_range(x, n) && in_range(x + s * (w - 1), n);
}

/* An input row of width w defines inputs a .. a + w - 1, in order, each naming
 * its slot back: the inputs list and the rows then agree one to one. */
static int input_row_ok(int32_t a, struct block bl, int64_t n_inputs, const int32_t *inputs,
                        int32_t first)
{
    if (!elements_in_range(a, 1, bl.w, n_inputs) || (bl.w > 1 && bl.sa != 1) || bl.sb != 0
        || bl.sc != 0 || bl.sk != 0)
        return 0;
    for (int64_t i = 0; i < bl.w; ++i)
        if (inputs[a + i] != (int64_t)first + i)
            return 0;
    return 1;
}

/* One row, of width w with strides bl (all 0 for a scalar row), against its
 * op's operand layout; its elements may read only slots below `below`. */
static int row_ok(int op, int32_t a, int32_t b, int32_t c, struct block bl, int64_t below,
                  int64_t n_consts, int64_t n_pool, const int32_t *pool, int64_t n_inputs,
                  const int32_t *inputs, const int32_t *first_k)
{
    int64_t w = bl.w;
    switch (pyad_op_kind(op)) {
    case PYAD_KIND_UNARY:
        return elements_in_range(a, bl.sa, w, below) && bl.sb == 0 && bl.sc == 0 && bl.sk == 0;
    case PYAD_KIND_BINARY:
    case PYAD_KIND_COMPARE:
        return elements_in_range(a, bl.sa, w, below) && elements_in_range(b, bl.sb, w, below)
               && bl.sc == 0 && bl.sk == 0;
    case PYAD_KIND_WITH_CONST:
    case PYAD_KIND_COMPARE_C:
        return elements_in_range(a, bl.sa, w, below) && elements_in_range(b, bl.sk, w, n_consts)
               && bl.sb == 0 && bl.sc == 0;
    case PYAD_KIND_SPECIAL:
        if (is_product_op(op))
            return product_row_ok(op, a, b, c, bl, below, n_consts);
        if (is_lu_op(op))
            return lu_row_ok(op, a, b, c, bl, below);
        if (is_linalg_sym_op(op))
            return linalg_sym_row_ok(op, a, b, c, bl, below);
        if (op == OP_select)
            return elements_in_range(a, bl.sa, w, below) && elements_in_range(b, bl.sb, w, below)
                   && elements_in_range(c, bl.sc, w, below) && bl.sk == 0;
        if (op == OP_input)
            return input_row_ok(a, bl, n_inputs, inputs, *first_k);
        if (op == OP_constant) /* a block of constants reads consts[b + i] */
            return elements_in_range(b, bl.sk, w, n_consts) && (w == 1 || bl.sk == 1)
                   && bl.sa == 0 && bl.sb == 0 && bl.sc == 0;
        if (rows_op(op)) /* gathers, reductions, scans: gather.c */
            return rows_row_ok(op, a, b, c, bl, below, n_pool, pool);
        if (w != 1)
            return 0; /* the other special rows are scalar */
        switch (op) {
        case OP_guard_true:
        case OP_guard_false:
            return in_range(a, below);
        case OP_axpy_c:
            return in_range(a, below) && in_range(b, below) && in_range(c, n_consts);
        case OP_max_n:
        case OP_min_n:
            return in_range(a, below) && pool_ok(below, a, b, c, n_pool, pool);
        default:
            return 0;
        }
    default: /* op code out of range */
        return 0;
    }
}

int pyad_validate(int64_t n_ops, const uint8_t *op, const int32_t *a, const int32_t *b,
                  const int32_t *c, const int32_t *first, int64_t n_slots, int64_t n_consts,
                  int64_t n_pool, const int32_t *pool, int64_t n_inputs, const int32_t *inputs,
                  int64_t n_outputs, const int32_t *outputs, int64_t n_blocks,
                  const int32_t *blocks)
{
    if (n_ops < 0 || n_ops > INT32_MAX || n_slots < n_ops || n_slots > INT32_MAX
        || n_consts < 0 || n_consts > INT32_MAX || n_pool < 0 || n_pool > INT32_MAX
        || (n_pool && !pool) || n_inputs < 0 || n_inputs > n_slots || n_outputs < 0
        || n_outputs > INT32_MAX || n_blocks < 0 || n_blocks > n_ops)
        return PYAD_EFORMAT;
    if ((n_ops && (!op || !a || !b || !c || !first)) || (n_inputs && !inputs)
        || (n_outputs && !outputs) || (n_blocks && !blocks))
        return PYAD_EINVAL;
    int64_t slot = 0, bi = 0, n_input_rows = 0; /* input elements */
    for (int64_t k = 0; k < n_ops; ++k) {
        struct block bl = {k, 1, 0, 0, 0, 0};
        int entry = bi < n_blocks && blocks[bi * BLOCK_FIELDS + BLK_ROW] <= k;
        if (entry) {
            const int32_t *e = blocks + bi * BLOCK_FIELDS;
            bl = (struct block){e[BLK_ROW], e[BLK_WIDTH], e[BLK_SA], e[BLK_SB], e[BLK_SC],
                                e[BLK_SK]};
            /* in row order, one per block row (row_ok refuses ops that may not be
             * one); width >= 2 except for the rows that are always block rows */
            int always = rows_op(op[k]) || is_product_op(op[k]) || is_lu_op(op[k])
                         || is_linalg_sym_op(op[k]);
            if (bl.row != k || bl.w < (always ? 1 : 2) || bl.sa < 0 || bl.sb < 0 || bl.sc < 0 || bl.sk < 0)
                return PYAD_EFORMAT;
            ++bi;
        }
        if ((rows_op(op[k]) || is_lu_op(op[k])) && !entry)
            return PYAD_EFORMAT;
        if (first[k] != slot || bl.w > n_slots - slot)
            return PYAD_EFORMAT;
        if (!row_ok(op[k], a[k], b[k], c[k], bl, slot, n_consts, n_pool, pool, n_inputs,
                    inputs, first + k))
            return PYAD_EFORMAT;
        n_input_rows += op[k] == OP_input ? bl.w : 0;
        slot += bl.w;
    }
    if (bi != n_blocks || slot != n_slots)
        return PYAD_EFORMAT;
    /* Each input element names an input that names its slot back, so the elements
     * map one to one into the inputs; as many as inputs makes that map onto them. */
    if (n_input_rows != n_inputs)
        return PYAD_EFORMAT;
    for (int64_t i = 0; i < n_outputs; ++i)
        if (!in_range(outputs[i], n_slots))
            return PYAD_EFORMAT;
    return PYAD_OK;
}

int pyad_tape_import(pyad_tape **out, int64_t n_ops, const uint8_t *op, const int32_t *a,
                     const int32_t *b, const int32_t *c, const int32_t *first, int64_t n_slots,
                     const double *val, int64_t n_consts, const double *consts, int64_t n_pool,
                     const int32_t *pool, int64_t n_inputs, const int32_t *inputs,
                     int64_t n_outputs, const int32_t *outputs, int64_t n_blocks,
                     const int32_t *blocks)
{
    if (!out)
        return PYAD_EINVAL;
    *out = NULL;
    int s = pyad_validate(n_ops, op, a, b, c, first, n_slots, n_consts, n_pool, pool, n_inputs,
                          inputs, n_outputs, outputs, n_blocks, blocks);
    if (s)
        return s;
    if ((n_slots && !val) || (n_consts && !consts))
        return PYAD_EINVAL;
    pyad_tape *t;
    if ((s = pyad_tape_new(&t)))
        return s;
    if ((s = tape_reserve(t, n_ops, n_slots, n_blocks)) || (s = tape_reserve_consts(t, n_consts))
        || (s = tape_reserve_list(t, &t->pool, &t->cap_pool, 0, n_pool))
        || (s = tape_reserve_list(t, &t->inputs, &t->cap_inputs, 0, n_inputs))
        || (s = tape_reserve_list(t, &t->outputs, &t->cap_outputs, 0, n_outputs))) {
        pyad_tape_free(t);
        return s;
    }
    size_t n = (size_t)n_ops;
    if (n) {
        memcpy(t->op, op, n);
        memcpy(t->arg_a, a, n * sizeof *a);
        memcpy(t->arg_b, b, n * sizeof *b);
        memcpy(t->arg_c, c, n * sizeof *c);
        memcpy(t->first, first, n * sizeof *first);
    }
    if (n_slots)
        memcpy(t->val, val, (size_t)n_slots * sizeof *val);
    if (n_consts)
        memcpy(t->consts, consts, (size_t)n_consts * sizeof *consts);
    if (n_pool)
        memcpy(t->pool, pool, (size_t)n_pool * sizeof *pool);
    if (n_inputs)
        memcpy(t->inputs, inputs, (size_t)n_inputs * sizeof *inputs);
    if (n_outputs)
        memcpy(t->outputs, outputs, (size_t)n_outputs * sizeof *outputs);
    if (n_blocks)
        memcpy(t->blocks, blocks, (size_t)(n_blocks * BLOCK_FIELDS) * sizeof *blocks);
    t->n_ops = t->n_valued = n_ops;
    t->n_slots = n_slots;
    t->n_consts = n_consts;
    t->n_pool = n_pool;
    t->n_inputs = n_inputs;
    t->n_outputs = n_outputs;
    t->n_blocks = n_blocks;
    *out = t;
    return PYAD_OK;
}
