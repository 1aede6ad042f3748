/* Recording: append rows to the tape; their values at the recorded point come
 * with the forward sweep when something first reads them (tape_settle). */
#include <string.h>

#include "gather.h"
#include "record.h"
#include "sweep.h"

/* ---- argument checks ---- */

static int is_kind(int op, int kind) { return op >= 0 && op < OP_COUNT && pyad_op_kind(op) == kind; }

/* Both loops below test a chunk of elements without an early exit, so the
 * compiler vectorizes them, and stop after the first chunk that fails. */
enum { SCAN_CHUNK = 4096 };

int tape_check_slots(const pyad_tape *t, const int32_t *s, int64_t n)
{
    const uint32_t limit = (uint32_t)t->n_slots; /* a negative slot reads as >= limit */
    for (int64_t i0 = 0; i0 < n; i0 += SCAN_CHUNK) {
        int64_t end = n - i0 < SCAN_CHUNK ? n : i0 + SCAN_CHUNK;
        int bad = 0;
        for (int64_t i = i0; i < end; ++i)
            bad |= (uint32_t)s[i] >= limit;
        if (bad)
            return PYAD_EINDEX;
    }
    return PYAD_OK;
}

int64_t affine_stride(const int32_t *x, int64_t n)
{
    if (n < 2)
        return -1;
    int64_t step = (int64_t)x[1] - x[0];
    /* The true last element: with it, equal differences modulo 2^32 (what the
     * loop compares) mean equal differences, since a nondecreasing run from
     * x[0] to x[n - 1] never leaves the int32 range and so never wraps. */
    if (step < 0 || (int64_t)x[0] + step * (n - 1) != x[n - 1])
        return -1;
    const uint32_t d = (uint32_t)step;
    for (int64_t i0 = 1; i0 < n; i0 += SCAN_CHUNK) {
        int64_t end = n - i0 < SCAN_CHUNK ? n : i0 + SCAN_CHUNK;
        int bad = 0;
        for (int64_t i = i0; i < end; ++i)
            bad |= (uint32_t)x[i] - (uint32_t)x[i - 1] != d;
        if (bad)
            return -1;
    }
    return step;
}

/* ---- recording: append rows; evaluate them when they are read ---- */

void tape_finish_rows(pyad_tape *t, int64_t first_row, int64_t n_rows, int64_t n_slots)
{
    t->n_ops = first_row + n_rows;
    t->n_slots += n_slots;
}

/* One pass of the forward sweep over the rows not yet evaluated keeps each
 * row's operands in cache while they are fresh, and costs nothing to a tape
 * that is only replayed at other points. A row that fails at the recorded
 * point (a singular matrix: the sweep stops there) gets the values it got
 * alone, and the rows after it are evaluated on. */
void tape_settle(pyad_tape *t)
{
    int64_t k = t->n_valued, end = t->n_ops;
    while (k < end) {
        int64_t bad = -1;
        if (forward_range(t, NULL, t->val, k, end, &bad) == PYAD_OK)
            break;
        if (bad < k) { /* no row named: each one alone, as if recorded one by one */
            for (; k < end; ++k)
                forward_range(t, NULL, t->val, k, k + 1, &bad);
            break;
        }
        k = bad + 1;
    }
    t->n_valued = end;
}

/* Appends a linear-algebra block row of w slots (space reserved, t held by the
 * caller) and evaluates it at once: numpy factorises, and raises, right there.
 * Where failed() finds the factorisation failed the row goes as if never
 * recorded (its block with it) and PYAD_ELINALG is returned; else its first slot. */
int tape_put_factored_row(pyad_tape *t, int op, int32_t a, int32_t b, int64_t w, int64_t n,
                          int64_t m, int64_t count, int flags, factor_failed_fn failed)
{
    int64_t row = t->n_ops, slot = t->n_slots;
    tape_put_row(t, row, slot, op, a, b, 0);
    tape_put_block(t, row, w, n, m, count, flags);
    tape_finish_rows(t, row, 1, w);
    tape_settle(t);
    if (failed(t, t->n_blocks - 1, 1, t->val, NULL)) {
        t->n_ops = t->n_valued = row;
        t->n_slots = slot;
        t->n_blocks--;
        return PYAD_ELINALG;
    }
    return (int)slot;
}

/* n inputs: one block row (element i is input number n_inputs + i) when n >= 2,
 * so a vector of inputs costs one row, not one per element. */
int pyad_rec_input_n(pyad_tape *t, const double *values, int64_t n)
{
    if (!t)
        return PYAD_ECLOSED;
    if (n < 0 || (n > 0 && !values))
        return PYAD_EINVAL;
    int s = tape_begin_record(t);
    if (s)
        return s;
    int block = n >= 2;
    int64_t rows = block ? 1 : n;
    if (!(s = tape_reserve(t, rows, n, block))
        && !(s = tape_reserve_list(t, &t->inputs, &t->cap_inputs, t->n_inputs, n))) {
        int64_t first = t->n_ops, slot = t->n_slots;
        if (block) {
            tape_put_row(t, first, slot, OP_input, (int32_t)t->n_inputs, 0, 0);
            tape_put_block(t, first, n, 1, 0, 0, 0);
        } else if (n) {
            tape_put_row(t, first, slot, OP_input, (int32_t)t->n_inputs, 0, 0);
        }
        for (int64_t i = 0; i < n; ++i) {
            t->val[slot + i] = values[i];
            t->inputs[t->n_inputs + i] = (int32_t)(slot + i);
        }
        t->n_inputs += n;
        t->n_ops += rows;
        t->n_slots += n;
        s = (int)slot;
    }
    tape_end_record(t);
    return s;
}

int pyad_rec_input(pyad_tape *t, double value) { return pyad_rec_input_n(t, &value, 1); }

/* ---- operands of a row of n slots ----
 *
 * A block row reads each operand with one stride. An operand is given either
 * as an index array (its n slots, row-major over the row's shape) or as a view
 * (a first slot and one stride per dimension of the row's shape, stride 0
 * where the operand is broadcast). One that the block row cannot read in
 * place (an index array that is not affine, a view that is not one run with a
 * stride >= 0) is first copied into consecutive slots by a gather row; two
 * operands of the same layout (x.T * x.T) are gathered once. */
struct operand {
    const int32_t *idx;     /* the index array, or NULL for a view */
    int64_t first;          /* a view's first slot */
    const int64_t *strides; /* a view's strides, one per dimension */
    int64_t stride;         /* planned: read in place with this stride, or -1 */
    int gather;             /* planned: which gather row copies it (stride -1) */
};

/* The shape of a row's result, in the row-major order its n slots take. */
struct layout {
    int ndim;
    const int64_t *dims;
    int64_t n;
};

static struct operand index_operand(const int32_t *idx)
{
    struct operand x = {idx, 0, NULL, -1, -1};
    return x;
}

/* The one stride s >= 0 with which the view reads element i (row-major) at
 * first + s * i, or -1 where there is none (a transpose, a broadcast along an
 * outer axis only, a negative stride). */
static int64_t view_stride(const struct layout *l, const int64_t *strides)
{
    int64_t s = -1, run = 1;
    for (int d = l->ndim - 1; d >= 0; --d) {
        if (l->dims[d] == 1)
            continue;
        if (s < 0)
            s = strides[d];
        if (s < 0 || strides[d] != s * run)
            return -1;
        run *= l->dims[d];
    }
    return s < 0 ? 0 : s;
}

/* PYAD_OK if every slot the view reads names an existing slot. The extremes
 * grow monotonically, so checking after each axis stops before they could
 * overflow (each step is below 2**62). */
static int view_in_range(const pyad_tape *t, const struct layout *l, const int64_t *strides,
                         int64_t first)
{
    int64_t lo = first, hi = first;
    if (first < 0 || first >= t->n_slots)
        return PYAD_EINDEX;
    for (int d = 0; d < l->ndim; ++d) {
        if (strides[d] > INT32_MAX || strides[d] < -(int64_t)INT32_MAX)
            return PYAD_EINDEX;
        int64_t span = strides[d] * (l->dims[d] - 1);
        if (span > 0)
            hi += span;
        else
            lo += span;
        if (lo < 0 || hi >= t->n_slots)
            return PYAD_EINDEX;
    }
    return PYAD_OK;
}

/* Writes the view's n slots, row-major, to out: the last axis in one loop the
 * compiler vectorizes (a broadcast row `Z + b` reads b's run once per row of Z),
 * an odometer over the axes before it. */
static void view_slots(const struct layout *l, const int64_t *strides, int64_t first,
                       int32_t *out)
{
    if (l->ndim == 0) { /* one element */
        if (l->n)
            out[0] = (int32_t)first;
        return;
    }
    const int last = l->ndim - 1;
    const int64_t inner = l->dims[last], step = strides[last];
    int64_t pos[PYAD_MAX_VIEW_DIMS] = {0};
    int64_t slot = first;
    for (int64_t i = 0; i < l->n; i += inner) {
        for (int64_t j = 0; j < inner; ++j)
            out[i + j] = (int32_t)(slot + j * step);
        for (int d = last - 1; d >= 0; --d) {
            slot += strides[d];
            if (++pos[d] < l->dims[d])
                break;
            slot -= strides[d] * l->dims[d];
            pos[d] = 0;
        }
    }
}

static int same_layout(const struct operand *x, const struct operand *y, const struct layout *l)
{
    if (x->idx || y->idx)
        return x->idx && y->idx
               && (x->idx == y->idx || !memcmp(x->idx, y->idx, (size_t)l->n * sizeof *x->idx));
    if (x->first != y->first)
        return 0;
    for (int d = 0; d < l->ndim; ++d)
        if (x->strides[d] != y->strides[d])
            return 0;
    return 1;
}

/* Plans the operands of a block row (n >= 2): each one's stride, or its gather
 * row. Returns the number of gather rows. */
static int plan_operands(struct operand *x, int n_x, const struct layout *l)
{
    int n_gathers = 0;
    for (int j = 0; j < n_x; ++j) {
        x[j].stride = x[j].idx ? affine_stride(x[j].idx, l->n) : view_stride(l, x[j].strides);
        x[j].gather = -1;
        if (x[j].stride >= 0)
            continue;
        for (int i = 0; i < j && x[j].gather < 0; ++i)
            if (x[i].stride < 0 && same_layout(&x[i], &x[j], l))
                x[j].gather = x[i].gather;
        if (x[j].gather < 0)
            x[j].gather = n_gathers++;
    }
    return n_gathers;
}

/* The slot check of operand x, planned (block) or not (a scalar row). An
 * affine index array is nondecreasing, so its two ends bound every element. */
static int check_operand(const pyad_tape *t, const struct operand *x, const struct layout *l,
                         int block)
{
    if (!x->idx)
        return l->n ? view_in_range(t, l, x->strides, x->first) : PYAD_OK;
    if (!block || x->stride < 0 || l->n < 1)
        return tape_check_slots(t, x->idx, l->n);
    return x->idx[0] >= 0 && x->idx[l->n - 1] < t->n_slots ? PYAD_OK : PYAD_EINDEX;
}

/* Writes the gather rows the plan asked for, from row `row` and slot `slot` on
 * (room reserved): gather g fills slots slot + g * n on. */
static void put_gathers(pyad_tape *t, const struct operand *x, int n_x, int n_gathers,
                        int64_t row, int64_t slot, const struct layout *l)
{
    for (int g = 0; g < n_gathers; ++g) {
        const struct operand *src = NULL;
        for (int j = 0; j < n_x && !src; ++j)
            if (x[j].stride < 0 && x[j].gather == g)
                src = &x[j];
        if (src->idx)
            memcpy(t->pool + t->n_pool, src->idx, (size_t)l->n * sizeof *src->idx);
        else
            view_slots(l, src->strides, src->first, t->pool + t->n_pool);
        rows_put_pool_gather(t, row + g, slot + g * l->n, l->n);
    }
}

/* Where the block row reads planned operand x: in place, or from its gather. */
static int32_t operand_origin(const struct operand *x, int64_t gather_slot, int64_t n,
                              int64_t *stride)
{
    if (x->stride >= 0) {
        *stride = x->stride;
        return x->idx ? x->idx[0] : (int32_t)x->first;
    }
    *stride = 1;
    return (int32_t)(gather_slot + x->gather * n);
}

/* n results of op on the n_x slot operands x (at most 3), and, where c is not
 * NULL, on constants: the n_c constants c go to the pool (n_c is n, or 1 for
 * one constant shared by every element) and take the place of operand b. One
 * block row when n >= 2 (after any gather rows), else n scalar rows. Returns
 * the first result slot. */
static int record_operands(pyad_tape *t, int op, struct operand *x, int n_x,
                           const struct layout *l, const double *c, int64_t n_c)
{
    int s = tape_begin_record(t);
    if (s)
        return s;
    const int64_t n = l->n;
    int block = n >= 2;
    int n_gathers = block ? plan_operands(x, n_x, l) : 0;
    if (block)
        s = tape_reserve(t, 1 + n_gathers, n * (1 + n_gathers), 1 + n_gathers);
    else
        s = tape_reserve(t, n, n, 0);
    if (!s && n_gathers)
        s = tape_reserve_list(t, &t->pool, &t->cap_pool, t->n_pool, n * n_gathers);
    if (!s && c)
        s = tape_reserve_consts(t, n_c);
    for (int j = 0; j < n_x && !s; ++j)
        s = check_operand(t, &x[j], l, block);
    if (s) {
        tape_end_record(t);
        return s;
    }
    int64_t first = t->n_ops, slot = t->n_slots, base = t->n_consts;
    int64_t step = c && n_c == n ? 1 : 0;
    if (c && n_c)
        memcpy(t->consts + base, c, (size_t)n_c * sizeof *c);
    if (block) {
        put_gathers(t, x, n_x, n_gathers, first, slot, l);
        int64_t row = first + n_gathers, main_slot = slot + n_gathers * n;
        int32_t origin[3] = {0, 0, 0};
        int64_t stride[3] = {0, 0, 0};
        for (int j = 0; j < n_x; ++j)
            origin[j] = operand_origin(&x[j], slot, n, &stride[j]);
        if (c)
            origin[1] = (int32_t)base;
        tape_put_row(t, row, main_slot, op, origin[0], origin[1], origin[2]);
        tape_put_block(t, row, n, stride[0], stride[1], stride[2], step);
        tape_finish_rows(t, first, 1 + n_gathers, n * (1 + n_gathers));
        s = (int)main_slot;
    } else {
        for (int64_t i = 0; i < n; ++i) {
            int32_t arg[3] = {0, 0, 0};
            for (int j = 0; j < n_x; ++j)
                arg[j] = x[j].idx ? x[j].idx[i] : (int32_t)x[j].first;
            if (c)
                arg[1] = (int32_t)(base + i * step);
            tape_put_row(t, first + i, slot + i, op, arg[0], arg[1], arg[2]);
        }
        tape_finish_rows(t, first, n, n);
        s = (int)slot;
    }
    if (c)
        t->n_consts += n_c;
    tape_end_record(t);
    return s;
}

/* Appends the n_c constants c to the pool and the n results of `op` with a =
 * a[i] (0 when a is NULL) and b = the index of element i's constant. */
static int record_with_consts(pyad_tape *t, int op, const int32_t *a, const double *c,
                              int64_t n_c, int64_t n)
{
    struct operand x = index_operand(a);
    struct layout l = {1, &n, n};
    return record_operands(t, op, &x, a ? 1 : 0, &l, c, n_c);
}

int pyad_rec_const_n(pyad_tape *t, const double *values, int64_t n)
{
    if (!t)
        return PYAD_ECLOSED;
    if (n < 0 || (n > 0 && !values))
        return PYAD_EINVAL;
    return record_with_consts(t, OP_constant, NULL, values, n, n);
}

int pyad_rec_const(pyad_tape *t, double value) { return pyad_rec_const_n(t, &value, 1); }

int pyad_rec_c_n(pyad_tape *t, int op, const int32_t *a, const double *c, int64_t n_c,
                 int64_t n)
{
    if (!t)
        return PYAD_ECLOSED;
    if (!(is_kind(op, PYAD_KIND_WITH_CONST) || is_kind(op, PYAD_KIND_COMPARE_C))
        || n < 0 || !(n_c == n || n_c == 1) || (n > 0 && (!a || !c)))
        return PYAD_EINVAL;
    return record_with_consts(t, op, a, c, n_c, n);
}

int pyad_rec_c(pyad_tape *t, int op, int a, double c)
{
    int32_t a32 = a;
    return pyad_rec_c_n(t, op, &a32, &c, 1, 1);
}

/* n results of an op whose operands are all slots (b, c NULL when unused). */
static int record_slot_rows(pyad_tape *t, int op, const int32_t *a, const int32_t *b,
                            const int32_t *c, int64_t n)
{
    struct operand x[3] = {index_operand(a), index_operand(b), index_operand(c)};
    struct layout l = {1, &n, n};
    return record_operands(t, op, x, c ? 3 : b ? 2 : 1, &l, NULL, 0);
}

/* How many slot operands op reads, and whether it takes constants; -1 for an
 * op pyad_rec_view_n does not record. */
static int slot_operands(int op, int *with_consts)
{
    *with_consts = is_kind(op, PYAD_KIND_WITH_CONST) || is_kind(op, PYAD_KIND_COMPARE_C);
    if (*with_consts || is_kind(op, PYAD_KIND_UNARY))
        return 1;
    if (is_kind(op, PYAD_KIND_BINARY) || is_kind(op, PYAD_KIND_COMPARE))
        return 2;
    return op == OP_select ? 3 : -1;
}

int pyad_rec_view_n(pyad_tape *t, int op, int ndim, const int64_t *dims, const int64_t *views,
                    const int32_t *ia, const int32_t *ib, const int32_t *ic, const double *c,
                    int64_t n_c)
{
    if (!t)
        return PYAD_ECLOSED;
    int with_consts;
    int n_x = slot_operands(op, &with_consts);
    if (n_x < 0 || ndim < 0 || ndim > PYAD_MAX_VIEW_DIMS || (ndim && !dims))
        return PYAD_EINVAL;
    int64_t n = 1;
    for (int d = 0; d < ndim; ++d) {
        if (dims[d] < 0)
            return PYAD_EINVAL;
        if (dims[d] > INT32_MAX || (n *= dims[d]) > INT32_MAX)
            return PYAD_ETOOBIG;
    }
    if (with_consts && (!(n_c == n || n_c == 1) || (n > 0 && !c)))
        return PYAD_EINVAL;
    const int32_t *idx[3] = {ia, ib, ic};
    struct operand x[3];
    for (int j = 0; j < n_x; ++j) {
        if (!idx[j] && !views && n > 0)
            return PYAD_EINVAL;
        x[j].idx = idx[j];
        x[j].first = idx[j] || !views ? 0 : views[j * (1 + ndim)];
        x[j].strides = idx[j] || !views ? NULL : views + j * (1 + ndim) + 1;
        x[j].stride = -1;
        x[j].gather = -1;
    }
    struct layout l = {ndim, dims, n};
    return record_operands(t, op, x, n_x, &l, with_consts ? c : NULL, with_consts ? n_c : 0);
}

int pyad_rec1_n(pyad_tape *t, int op, const int32_t *a, int64_t n)
{
    if (!t)
        return PYAD_ECLOSED;
    if (!is_kind(op, PYAD_KIND_UNARY) || n < 0 || (n > 0 && !a))
        return PYAD_EINVAL;
    return record_slot_rows(t, op, a, NULL, NULL, n);
}

int pyad_rec1(pyad_tape *t, int op, int a)
{
    int32_t a32 = a;
    return pyad_rec1_n(t, op, &a32, 1);
}

int pyad_rec2_n(pyad_tape *t, int op, const int32_t *a, const int32_t *b, int64_t n)
{
    if (!t)
        return PYAD_ECLOSED;
    if (!(is_kind(op, PYAD_KIND_BINARY) || is_kind(op, PYAD_KIND_COMPARE))
        || n < 0 || (n > 0 && (!a || !b)))
        return PYAD_EINVAL;
    return record_slot_rows(t, op, a, b, NULL, n);
}

int pyad_rec2(pyad_tape *t, int op, int a, int b)
{
    int32_t a32 = a, b32 = b;
    return pyad_rec2_n(t, op, &a32, &b32, 1);
}

int pyad_rec_select_n(pyad_tape *t, const int32_t *cond, const int32_t *a,
                      const int32_t *b, int64_t n)
{
    if (!t)
        return PYAD_ECLOSED;
    if (n < 0 || (n > 0 && (!cond || !a || !b)))
        return PYAD_EINVAL;
    return record_slot_rows(t, OP_select, cond, a, b, n);
}

int pyad_rec_select(pyad_tape *t, int cond, int a, int b)
{
    int32_t c32 = cond, a32 = a, b32 = b;
    return pyad_rec_select_n(t, &c32, &a32, &b32, 1);
}

int pyad_rec_guard(pyad_tape *t, int cond, int expected)
{
    if (!t)
        return PYAD_ECLOSED;
    int32_t c32 = cond;
    return record_slot_rows(t, expected ? OP_guard_true : OP_guard_false, &c32, NULL, NULL, 1);
}

int pyad_rec_output_n(pyad_tape *t, const int32_t *slots, int64_t n)
{
    if (!t)
        return PYAD_ECLOSED;
    if (n < 0 || (n > 0 && !slots))
        return PYAD_EINVAL;
    int s = tape_begin_record(t);
    if (s)
        return s;
    if (!(s = tape_check_slots(t, slots, n))
        && !(s = tape_reserve_list(t, &t->outputs, &t->cap_outputs, t->n_outputs, n))) {
        if (n)
            memcpy(t->outputs + t->n_outputs, slots, (size_t)n * sizeof *slots);
        s = (int)t->n_outputs;
        t->n_outputs += n;
    }
    tape_end_record(t);
    return s;
}

int pyad_rec_output(pyad_tape *t, int slot)
{
    int32_t s32 = slot;
    return pyad_rec_output_n(t, &s32, 1);
}


/* ---- reading ---- */

int pyad_values(pyad_tape *t, const int32_t *slots, int64_t n, double *out)
{
    if (!t)
        return PYAD_ECLOSED;
    if (n < 0 || (n > 0 && (!slots || !out)))
        return PYAD_EINVAL;
    /* under pyad_begin_sweep they have values already (tape_begin_sweep) */
    int s = t->n_valued == t->n_ops ? PYAD_OK : tape_settle_idle(t);
    if (s == PYAD_OK)
        s = tape_check_slots(t, slots, n);
    if (s)
        return s;
    for (int64_t i = 0; i < n; ++i)
        out[i] = t->val[slots[i]];
    return PYAD_OK;
}

int pyad_input_slots(const pyad_tape *t, int32_t *out)
{
    if (!t)
        return PYAD_ECLOSED;
    if (t->n_inputs)
        memcpy(out, t->inputs, (size_t)t->n_inputs * sizeof *out);
    return PYAD_OK;
}

int pyad_output_slots(const pyad_tape *t, int32_t *out)
{
    if (!t)
        return PYAD_ECLOSED;
    if (t->n_outputs)
        memcpy(out, t->outputs, (size_t)t->n_outputs * sizeof *out);
    return PYAD_OK;
}


int pyad_op_at(const pyad_tape *t, int64_t k)
{
    if (!t)
        return PYAD_ECLOSED;
    if (k < 0 || k >= t->n_ops)
        return PYAD_EINDEX;
    return t->op[k];
}

/* Rows buffered by the caller: n rows of unary, binary, with-constant or
 * comparison ops. For a row with a constant, b[i] indexes the n_consts
 * constants passed here; slot operands may name earlier rows of the batch. */
int pyad_rec_rows(pyad_tape *t, const uint8_t *op, const int32_t *a, const int32_t *b,
                  int64_t n, const double *consts, int64_t n_consts)
{
    if (!t)
        return PYAD_ECLOSED;
    if (n < 0 || n_consts < 0 || (n > 0 && (!op || !a || !b)) || (n_consts > 0 && !consts))
        return PYAD_EINVAL;
    int s = tape_begin_record(t);
    if (s)
        return s;
    if (!(s = tape_reserve_ops(t, n)) && !(s = tape_reserve_consts(t, n_consts))) {
        int64_t first = t->n_ops, slot = t->n_slots, base = t->n_consts;
        for (int64_t i = 0; i < n && s == PYAD_OK; ++i) {
            int kind = pyad_op_kind(op[i]);
            int64_t k = slot + i; /* scalar rows: row i defines slot k */
            int a_ok = a[i] >= 0 && a[i] < k;
            int with_const = kind == PYAD_KIND_WITH_CONST || kind == PYAD_KIND_COMPARE_C;
            if (kind == PYAD_KIND_UNARY)
                s = a_ok ? PYAD_OK : PYAD_EINDEX;
            else if (kind == PYAD_KIND_BINARY || kind == PYAD_KIND_COMPARE)
                s = a_ok && b[i] >= 0 && b[i] < k ? PYAD_OK : PYAD_EINDEX;
            else if (with_const)
                s = a_ok && b[i] >= 0 && b[i] < n_consts ? PYAD_OK : PYAD_EINDEX;
            else
                s = PYAD_EINVAL;
            if (s == PYAD_OK)
                tape_put_row(t, first + i, k, op[i], a[i],
                             with_const ? (int32_t)(base + b[i]) : b[i], 0);
        }
        if (s == PYAD_OK) {
            if (n_consts)
                memcpy(t->consts + base, consts, (size_t)n_consts * sizeof *consts);
            t->n_consts += n_consts;
            tape_finish_rows(t, first, n, n);
            s = (int)slot;
        }
    }
    tape_end_record(t);
    return s;
}
