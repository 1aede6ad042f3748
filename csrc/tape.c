/* Tape lifetime, growth and recording. */
#define _DEFAULT_SOURCE /* madvise */
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "sweep.h"
#include "record.h"
#include "lazy_adjoint.h"

#define DEFAULT_MAX_OPS ((int64_t)INT32_MAX)

/* What every layer needs to know about an op, one entry per registry row. */
struct op_facts {
    const char *name;
    unsigned char kind;
    unsigned char differentiable;
    short const_form, rconst_form; /* op codes, or OP_NONE */
    const char *numpy;             /* NULL: implements no numpy function */
    const char *operator;          /* NULL: implements no Python operator */
};

static const struct op_facts op_facts[OP_COUNT] = {
#define SPECIAL(name, differentiable) \
    { #name, PYAD_KIND_SPECIAL, differentiable, OP_NONE, OP_NONE, NULL, NULL },
#define UNARY(name, numpy, operator, differentiable, value, d_x, dd_x) \
    { #name, PYAD_KIND_UNARY, differentiable, OP_NONE, OP_NONE, numpy, operator },
#define BINARY(name, numpy, operator, cf, rcf, value, d_x, d_y, dd_x, dd_y) \
    { #name, PYAD_KIND_BINARY, 1, OP_##cf, OP_##rcf, numpy, operator },
#define WITH_CONST(name, value, d_x, dd_x) \
    { #name, PYAD_KIND_WITH_CONST, 1, OP_NONE, OP_NONE, NULL, NULL },
#define COMPARE(name, numpy, operator, cf, rcf, value) \
    { #name, PYAD_KIND_COMPARE, 0, OP_##cf, OP_##rcf, numpy, operator },
#define COMPARE_C(name, value) \
    { #name, PYAD_KIND_COMPARE_C, 0, OP_NONE, OP_NONE, NULL, NULL },
#include "expand_ops.h"
};

static int is_op(int op) { return op >= 0 && op < OP_COUNT; }

int pyad_op_count(void) { return OP_COUNT; }

const char *pyad_op_name(int op) { return is_op(op) ? op_facts[op].name : ""; }

int pyad_op_kind(int op) { return is_op(op) ? op_facts[op].kind : PYAD_EINVAL; }

const char *pyad_op_numpy(int op) { return is_op(op) ? op_facts[op].numpy : NULL; }

const char *pyad_op_operator(int op) { return is_op(op) ? op_facts[op].operator : NULL; }

int pyad_op_const_form(int op) { return is_op(op) ? op_facts[op].const_form : PYAD_EINVAL; }

int pyad_op_rconst_form(int op) { return is_op(op) ? op_facts[op].rconst_form : PYAD_EINVAL; }

int pyad_op_differentiable(int op) { return is_op(op) ? op_facts[op].differentiable : PYAD_EINVAL; }

const char *pyad_strerror(int status)
{
    switch (status) {
    case PYAD_OK: return "ok";
    case PYAD_ENOMEM: return "out of memory";
    case PYAD_EINVAL: return "invalid argument";
    case PYAD_EINDEX: return "operand does not name an earlier slot of this tape";
    case PYAD_ETOOBIG: return "tape size limit reached";
    case PYAD_EBRANCH: return "a recorded branch does not hold at this point";
    case PYAD_ECLOSED: return "tape is closed";
    case PYAD_EBUSY: return "tape is in use by another thread";
    case PYAD_EFORMAT: return "corrupt serialized tape";
    case PYAD_ECALLBACK: return "a custom derivative rule failed";
    case PYAD_ELINALG: return "matrix is not positive definite, or singular";
    default: return "unknown status";
    }
}

const char *pyad_status_name(int status)
{
    switch (status) {
    case PYAD_OK: return "PYAD_OK";
    case PYAD_ENOMEM: return "PYAD_ENOMEM";
    case PYAD_EINVAL: return "PYAD_EINVAL";
    case PYAD_EINDEX: return "PYAD_EINDEX";
    case PYAD_ETOOBIG: return "PYAD_ETOOBIG";
    case PYAD_EBRANCH: return "PYAD_EBRANCH";
    case PYAD_ECLOSED: return "PYAD_ECLOSED";
    case PYAD_EBUSY: return "PYAD_EBUSY";
    case PYAD_EFORMAT: return "PYAD_EFORMAT";
    case PYAD_ECALLBACK: return "PYAD_ECALLBACK";
    case PYAD_ELINALG: return "PYAD_ELINALG";
    default: return NULL;
    }
}

/* ---- concurrency guards ---- */

int tape_begin_record(pyad_tape *t)
{
    int idle = 0;
    if (!atomic_compare_exchange_strong(&t->users, &idle, -1))
        return PYAD_EBUSY;
    adjoint_plan_drop(t); /* made for the rows the recorder may now change */
    return PYAD_OK;
}

void tape_end_record(pyad_tape *t) { atomic_store(&t->users, 0); }

/* Evaluates the rows recorded since the last reader, holding t as a recorder
 * does (the values are written, so no sweep may read them meanwhile).
 * PYAD_EBUSY while another thread holds t: its caller waits and comes back. */
int tape_settle_idle(pyad_tape *t)
{
    int idle = 0;
    if (!atomic_compare_exchange_strong(&t->users, &idle, -1))
        return PYAD_EBUSY;
    tape_settle(t);
    tape_end_record(t);
    return PYAD_OK;
}

int tape_begin_sweep(pyad_tape *t)
{
    int n = atomic_load(&t->users);
    while (n >= 0) {
        if (!atomic_compare_exchange_weak(&t->users, &n, n + 1))
            continue;
        /* held: no recorder can change n_ops or n_valued until the sweep ends */
        if (t->n_valued == t->n_ops)
            return PYAD_OK;
        tape_end_sweep(t);
        int s = tape_settle_idle(t);
        if (s)
            return s;
        n = atomic_load(&t->users);
    }
    return PYAD_EBUSY;
}

void tape_end_sweep(pyad_tape *t) { atomic_fetch_sub(&t->users, 1); }

int pyad_begin_sweep(pyad_tape *t, int64_t *n_slots, int64_t *n_inputs, int64_t *n_outputs)
{
    if (!t)
        return PYAD_ECLOSED;
    if (!n_slots || !n_inputs || !n_outputs)
        return PYAD_EINVAL;
    int s = tape_begin_sweep(t);
    if (s)
        return s;
    *n_slots = t->n_slots;
    *n_inputs = t->n_inputs;
    *n_outputs = t->n_outputs;
    return PYAD_OK;
}

int pyad_gradient_sized(pyad_tape *t, int64_t cap_slots, int64_t n_x, const double *x,
                        double *v, double *adj, double *y, double *xbar, int64_t *bad_op)
{
    if (!t)
        return PYAD_ECLOSED;
    int s = tape_begin_sweep(t);
    if (s)
        return s;
    const double one = 1.0;
    if (t->n_slots > cap_slots || t->n_inputs != n_x || t->n_outputs != 1)
        s = PYAD_EINVAL;
    else if (x)
        s = pyad_gradient(t, x, v, adj, y, xbar, bad_op);
    else if (!(s = pyad_reverse_owned(t, NULL, &one, adj, xbar)) && y)
        *y = t->val[t->outputs[0]];  /* held, so settled: the recorded values are in */
    tape_end_sweep(t);
    return s;
}

int pyad_end_sweep(pyad_tape *t)
{
    if (!t)
        return PYAD_ECLOSED;
    if (atomic_load(&t->users) <= 0)
        return PYAD_EINVAL;
    tape_end_sweep(t);
    return PYAD_OK;
}

/* ---- lifetime ---- */

int pyad_tape_new(pyad_tape **out)
{
    if (!out)
        return PYAD_EINVAL;
    *out = NULL;
    pyad_tape *t = calloc(1, sizeof *t);
    if (!t)
        return PYAD_ENOMEM;
    t->max_ops = DEFAULT_MAX_OPS;
    t->max_bytes = INT64_MAX;
    atomic_init(&t->users, 0);
    atomic_init(&t->adjoint_plan, NULL);
    *out = t;
    return PYAD_OK;
}

int pyad_tape_reset(pyad_tape *t)
{
    if (!t)
        return PYAD_ECLOSED;
    int s = tape_begin_record(t);
    if (s)
        return s;
    t->n_ops = t->n_valued = t->n_slots = t->n_blocks = t->n_consts = t->n_pool = 0;
    t->n_inputs = t->n_outputs = 0;
    free(t->passive); /* activity marks belong to the recording they were made for */
    t->passive = NULL;
    t->n_marked = 0;
    t->max_ops = DEFAULT_MAX_OPS;
    t->max_bytes = INT64_MAX;
    t->custom_fn = NULL; /* the rules belong to the recording that set them */
    t->custom_ctx = NULL;
    tape_end_record(t);
    return PYAD_OK;
}

/* Frees every table and the activity marks; the caller zeroes the counts or frees t. */
static void release_tables(pyad_tape *t)
{
    free(t->op), free(t->arg_a), free(t->arg_b), free(t->arg_c), free(t->first);
    free(t->val), free(t->blocks), free(t->consts), free(t->pool), free(t->inputs);
    free(t->outputs), free(t->passive);
    t->op = NULL, t->arg_a = t->arg_b = t->arg_c = t->first = NULL;
    t->val = NULL, t->blocks = NULL, t->consts = NULL, t->pool = NULL;
    t->inputs = t->outputs = NULL;
    t->passive = NULL;
    t->n_marked = 0;
    t->cap_ops = t->cap_slots = t->cap_blocks = t->cap_consts = t->cap_pool = 0;
    t->cap_inputs = t->cap_outputs = 0;
}

void pyad_tape_free(pyad_tape *t)
{
    if (!t)
        return;
    release_tables(t);
    adjoint_plan_drop(t);
    free(t);
}

int pyad_set_max_ops(pyad_tape *t, int64_t max_ops)
{
    if (!t)
        return PYAD_ECLOSED;
    if (max_ops < t->n_slots || max_ops > DEFAULT_MAX_OPS)
        return PYAD_EINVAL;
    t->max_ops = max_ops;
    return PYAD_OK;
}

int pyad_set_max_bytes(pyad_tape *t, int64_t max_bytes)
{
    if (!t)
        return PYAD_ECLOSED;
    if (max_bytes < 0)
        return PYAD_EINVAL;
    t->max_bytes = max_bytes;
    /* The budget counts what the tape holds: an empty tape (a fresh one, or a
     * spare one reset for reuse) holds nothing, so it starts like a new tape. */
    if (t->n_ops == 0 && t->n_consts == 0 && t->n_pool == 0 && tape_begin_record(t) == PYAD_OK) {
        release_tables(t);
        tape_end_record(t);
    }
    return PYAD_OK;
}

int64_t pyad_n_ops(const pyad_tape *t) { return t ? t->n_ops : PYAD_ECLOSED; }
int64_t pyad_n_inputs(const pyad_tape *t) { return t ? t->n_inputs : PYAD_ECLOSED; }
int64_t pyad_n_outputs(const pyad_tape *t) { return t ? t->n_outputs : PYAD_ECLOSED; }
int64_t pyad_n_consts(const pyad_tape *t) { return t ? t->n_consts : PYAD_ECLOSED; }
int64_t pyad_n_pool(const pyad_tape *t) { return t ? t->n_pool : PYAD_ECLOSED; }
int64_t pyad_n_slots(const pyad_tape *t) { return t ? t->n_slots : PYAD_ECLOSED; }
int64_t pyad_n_blocks(const pyad_tape *t) { return t ? t->n_blocks : PYAD_ECLOSED; }

/* Capacities of the three growing tables: rows, slots, block entries. */
struct caps {
    int64_t ops, slots, blocks;
};

static const int64_t ROW_BYTES = (int64_t)(sizeof(uint8_t) + 4 * sizeof(int32_t));
static const int64_t SLOT_BYTES = (int64_t)sizeof(double);
static const int64_t BLOCK_BYTES = (int64_t)(BLOCK_FIELDS * sizeof(int32_t));

static int64_t table_bytes(struct caps c)
{
    return c.ops * ROW_BYTES + c.slots * SLOT_BYTES + c.blocks * BLOCK_BYTES;
}

static struct caps current_caps(const pyad_tape *t)
{
    return (struct caps){t->cap_ops, t->cap_slots, t->cap_blocks};
}

int64_t pyad_nbytes(const pyad_tape *t)
{
    if (!t)
        return PYAD_ECLOSED;
    return (int64_t)sizeof *t + table_bytes(current_caps(t))
           + t->cap_consts * (int64_t)sizeof(double)
           + (t->cap_inputs + t->cap_outputs + t->cap_pool) * (int64_t)sizeof(int32_t);
}

/* ---- growth ---- */

/* Would the tape stay within its allocation budget with these capacities? */
static int within_budget(const pyad_tape *t, struct caps c, int64_t cap_consts, int64_t cap_lists)
{
    int64_t bytes = table_bytes(c) + cap_consts * (int64_t)sizeof(double)
                    + cap_lists * (int64_t)sizeof(int32_t);
    return bytes <= t->max_bytes;
}

/* realloc that leaves *p untouched on failure. */
static int grow_array(void **p, int64_t count, size_t elem)
{
    void *q = realloc(*p, (size_t)count * elem);
    if (!q)
        return PYAD_ENOMEM;
    *p = q;
    return PYAD_OK;
}

static int64_t next_capacity(int64_t cap, int64_t need, int64_t limit)
{
    /* doubling: large tapes grow by few (copying) reallocs */
    int64_t c = cap < 64 ? 64 : 2 * cap;
    if (c < need)
        c = need;
    return c > limit ? limit : c;
}

/* A column of a large tape: on Linux, 2 MB aligned and marked for huge pages,
 * since sweeps stream through every column and 4 KB pages cost TLB misses. */
static void *alloc_column(size_t bytes)
{
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const size_t huge = (size_t)2 << 20;
    if (bytes >= 2 * huge) {
        size_t rounded = (bytes + huge - 1) / huge * huge;
        void *p = NULL;
        if (posix_memalign(&p, huge, rounded))
            return NULL;
        madvise(p, rounded, MADV_HUGEPAGE);
        return p;
    }
#endif
    return malloc(bytes);
}

/* Resizes the row columns, the value column and the block table to the
 * capacities c. The row columns and blocks are copied to new arrays, all
 * allocated before any old one is freed; the value column, the one that array
 * rows make large, grows by realloc, which for a large block moves no data
 * (mremap) and faults in only the pages later written, where a copy to a fresh
 * huge-page array re-faulted and re-wrote every value at each doubling. On
 * failure every capacity stays as it was (a value column that did grow is
 * merely larger than its capacity says), so the tape stays valid. */
static int resize_tables(pyad_tape *t, struct caps c)
{
    int rows = c.ops != t->cap_ops, slots = c.slots != t->cap_slots;
    int blocks = c.blocks != t->cap_blocks && c.blocks > 0;
    size_t nr = (size_t)c.ops;
    uint8_t *op = rows ? alloc_column(nr) : NULL;
    int32_t *a = rows ? alloc_column(nr * sizeof *a) : NULL;
    int32_t *b = rows ? alloc_column(nr * sizeof *b) : NULL;
    int32_t *cc = rows ? alloc_column(nr * sizeof *cc) : NULL;
    int32_t *first = rows ? alloc_column(nr * sizeof *first) : NULL;
    int val_failed = slots && grow_array((void **)&t->val, c.slots, sizeof *t->val);
    int32_t *blk = blocks ? malloc((size_t)c.blocks * (size_t)BLOCK_BYTES) : NULL;
    if ((rows && (!op || !a || !b || !cc || !first)) || val_failed || (blocks && !blk)) {
        free(op), free(a), free(b), free(cc), free(first), free(blk);
        return PYAD_ENOMEM;
    }
    if (rows) {
        size_t n = (size_t)t->n_ops;
        if (n) {
            memcpy(op, t->op, n);
            memcpy(a, t->arg_a, n * sizeof *a);
            memcpy(b, t->arg_b, n * sizeof *b);
            memcpy(cc, t->arg_c, n * sizeof *cc);
            memcpy(first, t->first, n * sizeof *first);
        }
        free(t->op), free(t->arg_a), free(t->arg_b), free(t->arg_c), free(t->first);
        t->op = op, t->arg_a = a, t->arg_b = b, t->arg_c = cc, t->first = first;
        t->cap_ops = c.ops;
    }
    if (slots)
        t->cap_slots = c.slots;
    if (blocks) {
        if (t->n_blocks)
            memcpy(blk, t->blocks, (size_t)t->n_blocks * (size_t)BLOCK_BYTES);
        free(t->blocks);
        t->blocks = blk;
        t->cap_blocks = c.blocks;
    }
    return PYAD_OK;
}

static int64_t grown(int64_t cap, int64_t need, int64_t limit)
{
    return need <= cap ? cap : next_capacity(cap, need, limit);
}

/* Make room for `rows` more rows defining `slots` more slots, `blocks` of them
 * block rows; the tape is unchanged on failure. */
int tape_reserve(pyad_tape *t, int64_t rows, int64_t slots, int64_t blocks)
{
    if (rows < 0 || slots < rows || blocks < 0 || blocks > rows)
        return PYAD_EINVAL;
    struct caps need = {t->n_ops + rows, t->n_slots + slots, t->n_blocks + blocks};
    if (need.slots > t->max_ops)
        return PYAD_ETOOBIG;
    struct caps cur = current_caps(t);
    if (need.ops <= cur.ops && need.slots <= cur.slots && need.blocks <= cur.blocks)
        return PYAD_OK;
    struct caps cap = {grown(cur.ops, need.ops, t->max_ops), grown(cur.slots, need.slots, t->max_ops),
                       grown(cur.blocks, need.blocks, t->max_ops)};
    int64_t lists = t->cap_inputs + t->cap_outputs + t->cap_pool;
    /* Doubling failed: the exact size may still fit, so a tape near its memory
     * limit keeps recording small rows after a large one was refused. */
    if (within_budget(t, cap, t->cap_consts, lists) && resize_tables(t, cap) == PYAD_OK)
        return PYAD_OK;
    struct caps exact = {need.ops > cur.ops ? need.ops : cur.ops,
                         need.slots > cur.slots ? need.slots : cur.slots,
                         need.blocks > cur.blocks ? need.blocks : cur.blocks};
    if ((exact.ops == cap.ops && exact.slots == cap.slots && exact.blocks == cap.blocks)
        || !within_budget(t, exact, t->cap_consts, lists))
        return PYAD_ENOMEM;
    return resize_tables(t, exact);
}

int tape_reserve_ops(pyad_tape *t, int64_t extra) { return tape_reserve(t, extra, extra, 0); }

int tape_reserve_consts(pyad_tape *t, int64_t extra)
{
    int64_t need = t->n_consts + extra;
    if (need > DEFAULT_MAX_OPS)
        return PYAD_ETOOBIG;
    if (need <= t->cap_consts)
        return PYAD_OK;
    int64_t cap = next_capacity(t->cap_consts, need, DEFAULT_MAX_OPS);
    int64_t lists = t->cap_inputs + t->cap_outputs + t->cap_pool;
    if (!within_budget(t, current_caps(t), cap, lists)
        || grow_array((void **)&t->consts, cap, sizeof *t->consts)) {
        cap = need; /* doubling failed: try the exact size */
        if (!within_budget(t, current_caps(t), cap, lists)
            || grow_array((void **)&t->consts, cap, sizeof *t->consts))
            return PYAD_ENOMEM;
    }
    t->cap_consts = cap;
    return PYAD_OK;
}

int tape_reserve_list(pyad_tape *t, int32_t **list, int64_t *cap, int64_t n, int64_t extra)
{
    int64_t need = n + extra;
    if (need > DEFAULT_MAX_OPS)
        return PYAD_ETOOBIG;
    if (need <= *cap)
        return PYAD_OK;
    int64_t c = next_capacity(*cap, need, DEFAULT_MAX_OPS);
    int64_t others = t->cap_inputs + t->cap_outputs + t->cap_pool - *cap;
    if (!within_budget(t, current_caps(t), t->cap_consts, others + c)
        || grow_array((void **)list, c, sizeof **list)) {
        c = need; /* doubling failed: try the exact size */
        if (!within_budget(t, current_caps(t), t->cap_consts, others + c)
            || grow_array((void **)list, c, sizeof **list))
            return PYAD_ENOMEM;
    }
    *cap = c;
    return PYAD_OK;
}

/* Gives back a column's unused tail. realloc to a smaller size keeps the
 * block where it is (glibc splits it, or unmaps the tail of a mapped one), so
 * unlike a copy to a fresh exact-size array it moves no data and touches no new
 * pages. Should it fail, the larger block stays: still valid, only not smaller. */
static void shrink_column(void **p, int64_t count, size_t elem)
{
    void *q = realloc(*p, (size_t)count * elem);
    if (q)
        *p = q;
}

int pyad_shrink(pyad_tape *t)
{
    if (!t)
        return PYAD_ECLOSED;
    int s = tape_begin_record(t);
    if (s)
        return s;
    int64_t ops = t->n_ops > 0 ? t->n_ops : 1, slots = t->n_slots > 0 ? t->n_slots : 1;
    if (ops < t->cap_ops) {
        shrink_column((void **)&t->op, ops, sizeof *t->op);
        shrink_column((void **)&t->arg_a, ops, sizeof *t->arg_a);
        shrink_column((void **)&t->arg_b, ops, sizeof *t->arg_b);
        shrink_column((void **)&t->arg_c, ops, sizeof *t->arg_c);
        shrink_column((void **)&t->first, ops, sizeof *t->first);
        t->cap_ops = ops;
    }
    if (slots < t->cap_slots) {
        shrink_column((void **)&t->val, slots, sizeof *t->val);
        t->cap_slots = slots;
    }
    if (t->n_blocks == 0 && t->cap_blocks) {
        free(t->blocks);
        t->blocks = NULL;
        t->cap_blocks = 0;
    } else if (t->n_blocks < t->cap_blocks) {
        shrink_column((void **)&t->blocks, t->n_blocks, (size_t)BLOCK_BYTES);
        t->cap_blocks = t->n_blocks;
    }
    int64_t nc = t->n_consts > 0 ? t->n_consts : 1;
    if (nc < t->cap_consts && !grow_array((void **)&t->consts, nc, sizeof *t->consts))
        t->cap_consts = nc;
    tape_end_record(t);
    return PYAD_OK;
}
