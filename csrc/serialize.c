/* A tape as plain arrays: copied out for saving, validated and copied in for
 * loading. Validation is the only defence against a corrupt file, so every
 * index is checked against what its op kind says it names. */
#include <stdlib.h>
#include <string.h>

#include "record.h"

int pyad_tape_export(pyad_tape *t, uint8_t *op, int32_t *a, int32_t *b, int32_t *c,
                     double *val, double *consts, int32_t *pool, int32_t *inputs,
                     int32_t *outputs)
{
    if (!t)
        return PYAD_ECLOSED;
    if ((t->n_ops && (!op || !a || !b || !c || !val)) || (t->n_consts && !consts)
        || (t->n_pool && !pool) || (t->n_inputs && !inputs) || (t->n_outputs && !outputs))
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
        memcpy(val, t->val, n * sizeof *val);
    }
    if (t->n_consts)
        memcpy(consts, t->consts, (size_t)t->n_consts * sizeof *consts);
    if (t->n_pool)
        memcpy(pool, t->pool, (size_t)t->n_pool * sizeof *pool);
    if (t->n_inputs)
        memcpy(inputs, t->inputs, (size_t)t->n_inputs * sizeof *inputs);
    if (t->n_outputs)
        memcpy(outputs, t->outputs, (size_t)t->n_outputs * sizeof *outputs);
    tape_end_sweep(t);
    return PYAD_OK;
}

static int in_range(int64_t i, int64_t n) { return i >= 0 && i < n; }

/* Every pool entry of a variadic op at k names an earlier slot. */
static int pool_ok(int64_t k, int32_t a, int32_t count, int32_t offset, int64_t n_pool,
                   const int32_t *pool)
{
    if (count < 1 || offset < 0 || (int64_t)offset + count > n_pool || pool[offset] != a)
        return 0;
    for (int64_t i = offset; i < (int64_t)offset + count; ++i)
        if (!in_range(pool[i], k))
            return 0;
    return 1;
}

int pyad_validate(int64_t n_ops, const uint8_t *op, const int32_t *a, const int32_t *b,
                  const int32_t *c, int64_t n_consts, int64_t n_pool, const int32_t *pool,
                  int64_t n_inputs, const int32_t *inputs, int64_t n_outputs,
                  const int32_t *outputs)
{
    if (n_ops < 0 || n_ops > INT32_MAX || n_consts < 0 || n_consts > INT32_MAX
        || n_pool < 0 || n_pool > INT32_MAX || (n_pool && !pool)
        || n_inputs < 0 || n_inputs > n_ops || n_outputs < 0 || n_outputs > INT32_MAX)
        return PYAD_EFORMAT;
    if ((n_ops && (!op || !a || !b || !c)) || (n_inputs && !inputs) || (n_outputs && !outputs))
        return PYAD_EINVAL;
    for (int64_t k = 0; k < n_ops; ++k) {
        int ok;
        switch (pyad_op_kind(op[k])) {
        case PYAD_KIND_UNARY:
            ok = in_range(a[k], k);
            break;
        case PYAD_KIND_BINARY:
        case PYAD_KIND_COMPARE:
            ok = in_range(a[k], k) && in_range(b[k], k);
            break;
        case PYAD_KIND_WITH_CONST:
        case PYAD_KIND_COMPARE_C:
            ok = in_range(a[k], k) && in_range(b[k], n_consts);
            break;
        case PYAD_KIND_SPECIAL:
            switch (op[k]) {
            case OP_input:
                ok = in_range(a[k], n_inputs) && inputs[a[k]] == k;
                break;
            case OP_constant:
                ok = in_range(b[k], n_consts);
                break;
            case OP_select:
                ok = in_range(a[k], k) && in_range(b[k], k) && in_range(c[k], k);
                break;
            case OP_guard_true:
            case OP_guard_false:
                ok = in_range(a[k], k);
                break;
            case OP_axpy_c:
                ok = in_range(a[k], k) && in_range(b[k], k) && in_range(c[k], n_consts);
                break;
            case OP_max_n:
            case OP_min_n:
                ok = in_range(a[k], k) && pool_ok(k, a[k], b[k], c[k], n_pool, pool);
                break;
            default:
                ok = 0;
            }
            break;
        default: /* op code out of range */
            ok = 0;
        }
        if (!ok)
            return PYAD_EFORMAT;
    }
    /* Every input names an input op that names it back: a one-to-one map. */
    for (int64_t i = 0; i < n_inputs; ++i)
        if (!in_range(inputs[i], n_ops) || op[inputs[i]] != OP_input || a[inputs[i]] != i)
            return PYAD_EFORMAT;
    for (int64_t i = 0; i < n_outputs; ++i)
        if (!in_range(outputs[i], n_ops))
            return PYAD_EFORMAT;
    return PYAD_OK;
}

int pyad_tape_import(pyad_tape **out, int64_t n_ops, const uint8_t *op, const int32_t *a,
                     const int32_t *b, const int32_t *c, const double *val, int64_t n_consts,
                     const double *consts, int64_t n_pool, const int32_t *pool,
                     int64_t n_inputs, const int32_t *inputs, int64_t n_outputs,
                     const int32_t *outputs)
{
    if (!out)
        return PYAD_EINVAL;
    *out = NULL;
    int s = pyad_validate(n_ops, op, a, b, c, n_consts, n_pool, pool, n_inputs, inputs,
                          n_outputs, outputs);
    if (s)
        return s;
    if ((n_ops && !val) || (n_consts && !consts))
        return PYAD_EINVAL;
    pyad_tape *t;
    if ((s = pyad_tape_new(&t)))
        return s;
    if ((s = tape_reserve_ops(t, n_ops)) || (s = tape_reserve_consts(t, n_consts))
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
        memcpy(t->val, val, n * sizeof *val);
    }
    if (n_consts)
        memcpy(t->consts, consts, (size_t)n_consts * sizeof *consts);
    if (n_pool)
        memcpy(t->pool, pool, (size_t)n_pool * sizeof *pool);
    if (n_inputs)
        memcpy(t->inputs, inputs, (size_t)n_inputs * sizeof *inputs);
    if (n_outputs)
        memcpy(t->outputs, outputs, (size_t)n_outputs * sizeof *outputs);
    t->n_ops = n_ops;
    t->n_consts = n_consts;
    t->n_pool = n_pool;
    t->n_inputs = n_inputs;
    t->n_outputs = n_outputs;
    *out = t;
    return PYAD_OK;
}
