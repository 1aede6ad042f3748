/* Activity: which rows a derivative can flow through, once some inputs are
 * parameters (values given at every replay, never differentiated).
 *
 * A slot is active when a differentiated input reaches it through rows with a
 * derivative; a row none of whose differentiated operands is active is passive.
 * The tangent sweeps give a passive row its value and a zero tangent, the
 * reverse sweeps skip it, and a product row with a passive factor skips that
 * factor's tangent and adjoint products (product.c). The marks cover the rows
 * recorded when they are made; later rows count as active (conservative). */
#include <stdlib.h>

#include "gather.h"
#include "linalg_sym.h"
#include "product.h"
#include "linalg_lu.h"

/* Whether any of the n slots s, s + stride, ... is active. */
static int any_active(const uint8_t *act, int64_t s, int64_t stride, int64_t n)
{
    for (int64_t e = 0; e < n; ++e)
        if (act[s + stride * e])
            return 1;
    return 0;
}

static int any_listed(const uint8_t *act, const int32_t *idx, int64_t n)
{
    for (int64_t e = 0; e < n; ++e)
        if (act[idx[e]])
            return 1;
    return 0;
}

/* A scalar row: whether a derivative flows to it from an active operand.
 * Comparisons and guards pass no derivative; a select's condition neither. */
static int scalar_active(const pyad_tape *t, int64_t k, const uint8_t *act)
{
    int op = t->op[k];
    const int32_t a = t->arg_a[k], b = t->arg_b[k], c = t->arg_c[k];
    switch (pyad_op_kind(op)) {
    case PYAD_KIND_UNARY:
    case PYAD_KIND_WITH_CONST:
        return act[a];
    case PYAD_KIND_BINARY:
        return act[a] || act[b];
    case PYAD_KIND_COMPARE:
    case PYAD_KIND_COMPARE_C:
        return 0;
    default:
        break;
    }
    if (op == OP_select)
        return act[b] || act[c];
    if (op == OP_axpy_c)
        return act[a] || act[b];
    if (op == OP_max_n || op == OP_min_n)
        return any_listed(act, t->pool + c, b);
    return 0; /* constants and guards (inputs are handled by the caller) */
}

/* A block row that is not a source: whether any active slot feeds it; for a
 * product, *marks gets the passive factors' bits. */
static int block_active(const pyad_tape *t, int64_t i, const uint8_t *act, uint8_t *marks)
{
    struct block bl = block_at(t, i);
    int op = t->op[bl.row];
    int64_t a = t->arg_a[bl.row], b = t->arg_b[bl.row], c = t->arg_c[bl.row];
    if (is_product_op(op)) {
        int64_t m = bl.sa, k = bl.sb, n = bl.sc;
        int on_a = op != OP_rmatmul_c && any_active(act, a, 1, m * k);
        int on_b = op != OP_matmul_c && any_active(act, b, 1, k * n);
        *marks = (uint8_t)((on_a ? 0 : PYAD_PASSIVE_A) | (on_b ? 0 : PYAD_PASSIVE_B));
        return on_a || on_b;
    }
    if (is_lu_op(op))
        return lu_row_active(t, i, act);
    if (is_linalg_sym_op(op))
        return linalg_sym_active(t, i, act, marks);
    if (op == OP_gather)
        return any_listed(act, t->pool + a, bl.w);
    if (op == OP_custom) /* the n_in = b slots from a */
        return any_active(act, a, 1, b);
    if (rows_op(op)) { /* reductions read m rows of k, scans m * k = w slots */
        int64_t m = bl.w, kk = b;
        if (op == OP_cumsum || op == OP_cumprod)
            m = kk > 0 ? bl.w / kk : 0;
        for (int64_t r = 0; r < m; ++r)
            if (any_active(act, a + bl.sa * r, bl.sb, kk))
                return 1;
        return 0;
    }
    int kind = pyad_op_kind(op);
    if (kind == PYAD_KIND_COMPARE || kind == PYAD_KIND_COMPARE_C)
        return 0;
    if (op == OP_select)
        return any_active(act, b, bl.sb, bl.w) || any_active(act, c, bl.sc, bl.w);
    return any_active(act, a, bl.sa, bl.w)
           || (kind == PYAD_KIND_BINARY && any_active(act, b, bl.sb, bl.w));
}

int pyad_set_active_inputs(pyad_tape *t, const uint8_t *active, int64_t n)
{
    if (!t)
        return PYAD_ECLOSED;
    if (n != t->n_inputs || (n && !active))
        return PYAD_EINVAL;
    int s = tape_begin_record(t);
    if (s)
        return s;
    uint8_t *act = calloc((size_t)(t->n_slots > 0 ? t->n_slots : 1), 1);
    uint8_t *marks = calloc((size_t)(t->n_ops > 0 ? t->n_ops : 1), 1);
    if (!act || !marks) {
        free(act);
        free(marks);
        tape_end_record(t);
        return PYAD_ENOMEM;
    }
    int64_t bi = 0, block_k = block_row(t, bi);
    for (int64_t k = 0; k < t->n_ops; ++k) {
        int64_t f = t->first[k], w = 1, on;
        uint8_t product_marks = 0;
        if (k == block_k) {
            w = block_width(t, bi);
            if (t->op[k] == OP_input) {
                on = 0;
                for (int64_t e = 0; e < w; ++e)
                    on |= act[f + e] = active[t->arg_a[k] + e] != 0;
            } else {
                on = !block_is_source(t, bi) && block_active(t, bi, act, &product_marks);
                for (int64_t e = 0; e < w; ++e)
                    act[f + e] = (uint8_t)on;
            }
            block_k = block_row(t, ++bi);
        } else {
            on = t->op[k] == OP_input ? active[t->arg_a[k]] != 0 : scalar_active(t, k, act);
            act[f] = (uint8_t)on;
        }
        marks[k] = on ? product_marks : PYAD_PASSIVE_ROW;
    }
    free(act);
    free(t->passive);
    t->passive = marks;
    t->n_marked = t->n_ops;
    tape_end_record(t);
    return PYAD_OK;
}

int64_t pyad_n_passive(const pyad_tape *t)
{
    if (!t)
        return PYAD_ECLOSED;
    int64_t count = 0;
    for (int64_t k = 0; k < t->n_marked; ++k)
        count += (t->passive[k] & PYAD_PASSIVE_ROW) != 0;
    return count;
}
