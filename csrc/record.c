/* Recording: append rows to the tape, then evaluate them with the forward sweep. */
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

/* The slot check of an operand read with `stride` (-1: not affine). An affine
 * run is nondecreasing, so its two ends bound every element. */
static int check_operand(const pyad_tape *t, const int32_t *x, int64_t n, int64_t stride)
{
    if (stride < 0 || n < 1)
        return tape_check_slots(t, x, n);
    return x[0] >= 0 && x[n - 1] < t->n_slots ? PYAD_OK : PYAD_EINDEX;
}

/* ---- recording: append rows, then evaluate them with the forward sweep ---- */

void tape_finish_rows(pyad_tape *t, int64_t first_row, int64_t n_rows, int64_t n_slots)
{
    int64_t bad = -1;
    forward_range(t, NULL, t->val, first_row, first_row + n_rows, &bad);
    t->n_ops = first_row + n_rows;
    t->n_slots += n_slots;
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

/* Gathering operands. A block row reads each operand with a stride; an operand
 * whose index array is not affine is first copied into consecutive slots by a
 * gather row. At most 3 operands; one gathered twice (x.T * x.T) is gathered once. */
struct gathers {
    const int32_t *of[3]; /* the distinct operand arrays to gather */
    int n;
};

/* Plans operand x (n >= 2 elements): *stride its stride, or -1 where it is to
 * be gathered (then noted in g). */
static void plan_operand(struct gathers *g, const int32_t *x, int64_t n, int64_t *stride)
{
    *stride = affine_stride(x, n);
    if (*stride >= 0)
        return;
    for (int i = 0; i < g->n; ++i)
        if (g->of[i] == x || !memcmp(g->of[i], x, (size_t)n * sizeof *x))
            return;
    g->of[g->n++] = x;
}

/* Writes the planned gather rows from row `first`, slot `slot` on (room
 * reserved); operand x then reads slot *a with stride 1. Returns the next row. */
static int64_t put_gathers(pyad_tape *t, const struct gathers *g, int64_t first, int64_t slot,
                           int64_t n)
{
    for (int i = 0; i < g->n; ++i)
        rows_put_gather(t, first + i, slot + i * n, g->of[i], n);
    return first + g->n;
}

/* Where a planned operand x is read from: its own first slot (affine) or the
 * first slot of its gather row. */
static int32_t operand_origin(const struct gathers *g, const int32_t *x, int64_t n,
                              int64_t stride, int64_t gather_slot, int64_t *stride_out)
{
    *stride_out = stride;
    if (stride >= 0)
        return x[0];
    *stride_out = 1;
    for (int i = 0; i < g->n; ++i)
        if (g->of[i] == x || !memcmp(g->of[i], x, (size_t)n * sizeof *x))
            return (int32_t)(gather_slot + i * n);
    return x[0]; /* not reached: every non-affine operand was planned */
}

/* Room for a block row of n slots after g's gather rows. */
static int reserve_gathered(pyad_tape *t, const struct gathers *g, int64_t n)
{
    int s = tape_reserve(t, 1 + g->n, n * (1 + g->n), 1 + g->n);
    if (!s && g->n)
        s = tape_reserve_list(t, &t->pool, &t->cap_pool, t->n_pool, n * g->n);
    return s;
}

/* Appends the n_c constants c to the pool (n_c is n, or 1 for one constant
 * shared by every element) and the n results of `op` with a = a[i] (0 when a is
 * NULL) and b = the index of element i's constant: one block row when n >= 2
 * (after a gather of a where a is not affine), else a scalar row. */
static int record_with_consts(pyad_tape *t, int op, const int32_t *a, const double *c,
                              int64_t n_c, int64_t n)
{
    int s = tape_begin_record(t);
    if (s)
        return s;
    struct gathers g = {{NULL}, 0};
    int64_t sa = 0;
    int block = n >= 2;
    if (block && a)
        plan_operand(&g, a, n, &sa);
    if (!(s = block ? reserve_gathered(t, &g, n) : tape_reserve(t, n, n, 0))
        && !(s = tape_reserve_consts(t, n_c))
        && !(s = a ? check_operand(t, a, n, block ? sa : -1) : PYAD_OK)) {
        int64_t first = t->n_ops, slot = t->n_slots, base = t->n_consts;
        if (n_c)
            memcpy(t->consts + base, c, (size_t)n_c * sizeof *c);
        int64_t step = n_c == n ? 1 : 0;
        if (block) {
            int64_t row = put_gathers(t, &g, first, slot, n), main_slot = slot + g.n * n;
            int32_t origin = a ? operand_origin(&g, a, n, sa, slot, &sa) : 0;
            tape_put_row(t, row, main_slot, op, origin, (int32_t)base, 0);
            tape_put_block(t, row, n, sa, 0, 0, step);
            tape_finish_rows(t, first, 1 + g.n, n * (1 + g.n));
            s = (int)main_slot;
        } else {
            for (int64_t i = 0; i < n; ++i)
                tape_put_row(t, first + i, slot + i, op, a ? a[i] : 0,
                             (int32_t)(base + i * step), 0);
            tape_finish_rows(t, first, n, n);
            s = (int)slot;
        }
        t->n_consts += n_c;
    }
    tape_end_record(t);
    return s;
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

/* n results of an op whose operands are all slots (a, b, c may be NULL for
 * unused fields): one block row when n >= 2, each operand read with its stride
 * or gathered first, else a scalar row. Either way the results are the next n
 * slots after any gather rows; the first of them is returned. */
static int record_slot_rows(pyad_tape *t, int op, const int32_t *a, const int32_t *b,
                            const int32_t *c, int64_t n)
{
    int s = tape_begin_record(t);
    if (s)
        return s;
    struct gathers g = {{NULL}, 0};
    int64_t sa = 0, sb = 0, sc = 0;
    int block = n >= 2;
    if (block) {
        plan_operand(&g, a, n, &sa);
        if (b)
            plan_operand(&g, b, n, &sb);
        if (c)
            plan_operand(&g, c, n, &sc);
    }
    if (!(s = block ? reserve_gathered(t, &g, n) : tape_reserve(t, n, n, 0))
        && !(s = check_operand(t, a, n, block ? sa : -1))
        && !(s = b ? check_operand(t, b, n, block ? sb : -1) : PYAD_OK)
        && !(s = c ? check_operand(t, c, n, block ? sc : -1) : PYAD_OK)) {
        int64_t first = t->n_ops, slot = t->n_slots;
        if (block) {
            int64_t row = put_gathers(t, &g, first, slot, n), main_slot = slot + g.n * n;
            int32_t oa = operand_origin(&g, a, n, sa, slot, &sa);
            int32_t ob = b ? operand_origin(&g, b, n, sb, slot, &sb) : 0;
            int32_t oc = c ? operand_origin(&g, c, n, sc, slot, &sc) : 0;
            tape_put_row(t, row, main_slot, op, oa, ob, oc);
            tape_put_block(t, row, n, sa, sb, sc, 0);
            tape_finish_rows(t, first, 1 + g.n, n * (1 + g.n));
            s = (int)main_slot;
        } else {
            for (int64_t i = 0; i < n; ++i)
                tape_put_row(t, first + i, slot + i, op, a[i], b ? b[i] : 0, c ? c[i] : 0);
            tape_finish_rows(t, first, n, n);
            s = (int)slot;
        }
    }
    tape_end_record(t);
    return s;
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

int pyad_values(const pyad_tape *t, const int32_t *slots, int64_t n, double *out)
{
    if (!t)
        return PYAD_ECLOSED;
    if (n < 0 || (n > 0 && (!slots || !out)))
        return PYAD_EINVAL;
    int s = tape_check_slots(t, slots, n);
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
