/* Custom rows: one callback per row and sweep. The rules live with the caller
 * (Python), so this file only points the callback at the row's lanes and turns
 * its answer into a status; it never reads past the row's operand and result
 * slots, which pyad_rec_custom checked against the tape. */
#include <string.h>

#include "custom.h"
#include "record.h"

static int call_rule(const pyad_tape *t, int64_t i, struct pyad_custom_call *c)
{
    if (!t->custom_fn)
        return PYAD_EINVAL;
    struct block bl = block_at(t, i);
    c->rule = t->arg_c[bl.row];
    c->n_in = t->arg_b[bl.row];
    c->n_out = bl.w;
    return t->custom_fn(t->custom_ctx, c) == PYAD_OK ? PYAD_OK : PYAD_ECALLBACK;
}

static int64_t operand(const pyad_tape *t, int64_t i)
{
    return t->arg_a[t->blocks[i * BLOCK_FIELDS + BLK_ROW]];
}

static int64_t result(const pyad_tape *t, int64_t i)
{
    return t->first[t->blocks[i * BLOCK_FIELDS + BLK_ROW]];
}

/* Whether every one of the row's n lanes of w slots from s is zero: a structural
 * zero (sweep.h's scaled) passes nothing back, so the rule is not called. */
static int all_zero(const double *a, int64_t s, int64_t w, int64_t lanes)
{
    for (int64_t e = s * lanes; e < (s + w) * lanes; ++e)
        if (a[e] != 0.0)
            return 0;
    return 1;
}

int custom_values(const pyad_tape *t, int64_t i, int64_t lv, double *v)
{
    struct pyad_custom_call c = {.sweep = PYAD_CUSTOM_VALUES, .lv = lv, .lt = 1, .lg = 1,
                                 .lq = 1, .x = v + operand(t, i) * lv,
                                 .z = v + result(t, i) * lv};
    return call_rule(t, i, &c);
}

int custom_tangent(const pyad_tape *t, int64_t i, int64_t lv, double *v, int64_t lt,
                   double *vd)
{
    int64_t a = operand(t, i), f = result(t, i);
    struct pyad_custom_call c = {.sweep = PYAD_CUSTOM_TANGENT, .lv = lv, .lt = lt, .lg = 1,
                                 .lq = 1, .x = v + a * lv, .z = v + f * lv,
                                 .xd = vd + a * lt, .zd = vd + f * lt};
    return call_rule(t, i, &c);
}

int custom_reverse(const pyad_tape *t, int64_t i, int64_t lv, const double *v, int64_t lg,
                   double *adj)
{
    int64_t a = operand(t, i), f = result(t, i);
    if (all_zero(adj, f, block_width(t, i), lg))
        return PYAD_OK;
    struct pyad_custom_call c = {.sweep = PYAD_CUSTOM_REVERSE, .lv = lv, .lt = 1, .lg = lg,
                                 .lq = 1, .x = v + a * lv, .zbar = adj + f * lg,
                                 .xbar = adj + a * lg};
    return call_rule(t, i, &c);
}

int custom_second(const pyad_tape *t, int64_t i, int64_t lv, const double *v, int64_t lt,
                  const double *vd, int64_t lg, double *adj, int64_t lq, double *adjd)
{
    int64_t a = operand(t, i), f = result(t, i), w = block_width(t, i);
    if (all_zero(adj, f, w, lg) && all_zero(adjd, f, w, lq))
        return PYAD_OK;
    struct pyad_custom_call c = {.sweep = PYAD_CUSTOM_SECOND, .lv = lv, .lt = lt, .lg = lg,
                                 .lq = lq, .x = v + a * lv, .xd = vd + a * lt,
                                 .zbar = adj + f * lg, .xbar = adj + a * lg,
                                 .zbard = adjd + f * lq, .xbard = adjd + a * lq};
    return call_rule(t, i, &c);
}

int pyad_set_custom_callback(pyad_tape *t, pyad_custom_fn fn, void *ctx)
{
    if (!t)
        return PYAD_ECLOSED;
    int s = tape_begin_record(t);
    if (s)
        return s;
    t->custom_fn = fn;
    t->custom_ctx = ctx;
    tape_end_record(t);
    return PYAD_OK;
}

int pyad_rec_custom(pyad_tape *t, int32_t a, int64_t n_in, int64_t n_out, int32_t rule,
                    const double *values)
{
    if (!t)
        return PYAD_ECLOSED;
    if (n_in < 1 || n_out < 1 || rule < 0 || !values)
        return PYAD_EINVAL;
    if (n_in > INT32_MAX || n_out > INT32_MAX)
        return PYAD_ETOOBIG;
    int s = tape_begin_record(t);
    if (s)
        return s;
    if (!t->custom_fn)
        s = PYAD_EINVAL;
    else if (a < 0 || a > t->n_slots - n_in)
        s = PYAD_EINDEX;
    else
        s = tape_reserve(t, 1, n_out, 1);
    if (s == PYAD_OK) {
        /* the rows before it first: evaluating a custom row would call its rule */
        tape_settle(t);
        int64_t row = t->n_ops, slot = t->n_slots;
        tape_put_row(t, row, slot, OP_custom, a, (int32_t)n_in, rule);
        tape_put_block(t, row, n_out, 0, 0, 0, 0);
        memcpy(t->val + slot, values, (size_t)n_out * sizeof *values);
        t->n_ops = t->n_valued = row + 1;
        t->n_slots = slot + n_out;
        s = (int)slot;
    }
    tape_end_record(t);
    return s;
}
