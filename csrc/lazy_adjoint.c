/* Lazy zeroing of the adjoint column (lazy_adjoint.h). */
#define _DEFAULT_SOURCE /* madvise */
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

#include "lazy_adjoint.h"
#include "block.h"
#include "gather.h"
#include "product.h"

/* A consumed block's adjoint pages are given back only from this size on: a
 * work array kept for the next call faults them in again (about 2 us a page
 * here), which pays off only where holding them would cost real memory. */
#define GIVE_BACK_MIN_BYTES ((int64_t)8 << 20)

/* Constant blocks pass nothing back; an input block's adjoints are read after
 * the sweep, so it is zeroed at its own row at the latest. */
static int is_lazy(const pyad_tape *t, int64_t i)
{
    return t->op[block_row(t, i)] != OP_constant && block_width(t, i) >= LAZY_MIN_WIDTH;
}

/* ---- building the plan ---- */

struct builder {
    struct lazy_block *lazy;
    int64_t n;
    int64_t as_row; /* >= 0: the reads counted as this row's (a run's last row) */
};

/* The first lazy block whose slots end after slot lo. */
static int64_t first_ending_after(const struct builder *b, int64_t lo)
{
    int64_t l = 0, h = b->n;
    while (l < h) {
        int64_t mid = l + (h - l) / 2;
        if (b->lazy[mid].first + b->lazy[mid].w <= lo)
            l = mid + 1;
        else
            h = mid;
    }
    return l;
}

/* Row k reads slots lo .. hi (some of them): every lazy block among them must be
 * zero before k's reverse step. Rows come in increasing order, so the last
 * call for a block names its last reader. */
static void reads(struct builder *b, int64_t lo, int64_t hi, int64_t k)
{
    if (b->as_row >= 0)
        k = b->as_row;
    for (int64_t j = first_ending_after(b, lo); j < b->n && b->lazy[j].first <= hi; ++j)
        b->lazy[j].due = k;
}

/* Elements 0 .. w - 1 of an operand at slot a with stride s >= 0. */
static void reads_strided(struct builder *b, int64_t a, int64_t s, int64_t w, int64_t k)
{
    reads(b, a, a + s * (w - 1), k);
}

/* Marks what scalar row k reads; returns 0 for an op it does not know. */
static int scalar_reads(const pyad_tape *t, struct builder *b, int64_t k)
{
    int op = t->op[k];
    int64_t a = t->arg_a[k], bb = t->arg_b[k], c = t->arg_c[k];
    switch (pyad_op_kind(op)) {
    case PYAD_KIND_UNARY:
    case PYAD_KIND_WITH_CONST:
    case PYAD_KIND_COMPARE_C:
        reads(b, a, a, k);
        return 1;
    case PYAD_KIND_BINARY:
    case PYAD_KIND_COMPARE:
        reads(b, a, a, k);
        reads(b, bb, bb, k);
        return 1;
    default:
        break;
    }
    switch (op) {
    case OP_input:
    case OP_constant:
        return 1;
    case OP_guard_true:
    case OP_guard_false:
        reads(b, a, a, k);
        return 1;
    case OP_select:
        reads(b, a, a, k), reads(b, bb, bb, k), reads(b, c, c, k);
        return 1;
    case OP_axpy_c:
        reads(b, a, a, k), reads(b, bb, bb, k);
        return 1;
    case OP_max_n:
    case OP_min_n:
        for (int64_t e = 0; e < bb; ++e)
            reads(b, t->pool[c + e], t->pool[c + e], k);
        return 1;
    default:
        return 0;
    }
}

/* Marks what block row bl reads; returns 0 for an op it does not know. */
static int block_reads(const pyad_tape *t, struct builder *b, struct block bl)
{
    int64_t k = bl.row, op = t->op[k];
    int64_t a = t->arg_a[k], bb = t->arg_b[k], c = t->arg_c[k], w = bl.w;
    switch (pyad_op_kind((int)op)) {
    case PYAD_KIND_UNARY:
    case PYAD_KIND_WITH_CONST:
    case PYAD_KIND_COMPARE_C:
        reads_strided(b, a, bl.sa, w, k);
        return 1;
    case PYAD_KIND_BINARY:
    case PYAD_KIND_COMPARE:
        reads_strided(b, a, bl.sa, w, k);
        reads_strided(b, bb, bl.sb, w, k);
        return 1;
    default:
        break;
    }
    switch (op) {
    case OP_input:
    case OP_constant:
        return 1;
    case OP_select:
        reads_strided(b, a, bl.sa, w, k);
        reads_strided(b, bb, bl.sb, w, k);
        reads_strided(b, c, bl.sc, w, k);
        return 1;
    case OP_gather: { /* as reading its slots' whole span: a lazy block inside the
                       * span that the gather skips is zeroed earlier than needed,
                       * never later, and a broadcast `Z + b` (one gather of
                       * rows x cols slots) costs one search, not one per slot */
        int64_t lo = INT64_MAX, hi = -1;
        for (int64_t e = 0; e < w; ++e) {
            int64_t s = t->pool[a + e];
            lo = s < lo ? s : lo;
            hi = s > hi ? s : hi;
        }
        if (w > 0)
            reads(b, lo, hi, k);
        return 1;
    }
    case OP_reduce_add:
    case OP_reduce_mul:
    case OP_reduce_max:
    case OP_reduce_min:
    case OP_cumsum:
    case OP_cumprod: { /* an (m, n) layout, n = arg_b (tape.h) */
        int64_t n = bb, m = op == OP_cumsum || op == OP_cumprod ? w / n : w;
        reads(b, a, a + bl.sa * (m - 1) + bl.sb * (n - 1), k);
        return 1;
    }
    case OP_matmul: /* A: m x k slots from a, B: k x n from b (tape.h) */
        reads(b, a, a + bl.sa * bl.sb - 1, k);
        reads(b, bb, bb + bl.sb * bl.sc - 1, k);
        return 1;
    case OP_matmul_c:
        reads(b, a, a + bl.sa * bl.sb - 1, k);
        return 1;
    case OP_rmatmul_c:
        reads(b, bb, bb + bl.sb * bl.sc - 1, k);
        return 1;
    default:
        return 0;
    }
}

/* Every row's reads; a row of unknown kind reads every lazy block before it.
 * A run's rows read at its last row: the sweep fuses them into that step. */
static void find_last_readers(const pyad_tape *t, struct builder *b,
                              const struct adjoint_plan *p)
{
    int64_t barrier = -1, bi = 0, block_k = block_row(t, 0), ri = 0;
    for (int64_t k = 0; k < t->n_ops; ++k) {
        int known;
        while (ri < p->n_fused && p->fused[ri].k_last < k)
            ++ri;
        b->as_row = ri < p->n_fused && p->fused[ri].k0 <= k ? p->fused[ri].k_last : -1;
        if (k == block_k) {
            known = block_reads(t, b, block_at(t, bi));
            block_k = block_row(t, ++bi);
        } else {
            known = scalar_reads(t, b, k);
        }
        if (!known)
            barrier = k;
    }
    for (int64_t j = 0; j < b->n; ++j)
        if (barrier > b->lazy[j].row && barrier > b->lazy[j].due)
            b->lazy[j].due = barrier;
    b->as_row = -1;
    for (int64_t i = 0; i < t->n_outputs; ++i) /* seeded before the sweep */
        reads(b, t->outputs[i], t->outputs[i], t->n_ops);
}

/* The run holding row k, or NULL. */
static const struct fused_run *run_of(const struct adjoint_plan *p, int64_t k)
{
    int64_t lo = 0, hi = p->n_fused;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (p->fused[mid].k_last < k)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < p->n_fused && p->fused[lo].k0 <= k ? &p->fused[lo] : NULL;
}

/* Which rows of each run are read after it (or are outputs): those keep
 * their adjoints, values and tangents in the work arrays; the rest are
 * internal, never zeroed. The lazy blocks are the run rows' own (every run
 * row is at least LAZY_MIN_WIDTH wide). */
static void mark_kept_rows(struct adjoint_plan *p, struct builder *b)
{
    for (int64_t r = 0; r < p->n_fused; ++r) {
        struct fused_run *run = &p->fused[r];
        for (int i = 0; i < run->n; ++i) {
            struct fused_member *m = &run->m[i];
            struct lazy_block *lb = &b->lazy[first_ending_after(b, m->z)];
            m->keep_adj = lb->due > run->k_last;
            m->keep_val = m->keep_adj || i == run->sum_of;
            lb->internal = !m->keep_adj;
        }
    }
}

/* Whether [lo, hi] and block lb share a slot. */
static int touches(int64_t lo, int64_t hi, const struct lazy_block *lb)
{
    return lo < lb->first + lb->w && hi >= lb->first;
}

/* Whether the w slots from a (unit stride) lie inside block lb. */
static int inside(int64_t a, int64_t w, const struct lazy_block *lb)
{
    return a >= lb->first && a + w <= lb->first + lb->w;
}

/* FIRST_A / FIRST_B if lb's last reader (row lb->due) is an elementwise block
 * row, not passive, reading a unit-stride run inside lb through one operand
 * and nothing of lb through the other; then its reverse step writes that run's
 * adjoints before any other row adds to them (the last reader is the first
 * writer), and only the rest of lb needs zeroing. Else 0. */
static int written_first(const pyad_tape *t, struct lazy_block *lb)
{
    int64_t k = lb->due;
    if (k >= t->n_ops || row_passive(t, k))
        return 0;
    int64_t i = block_search(t, k);
    if (block_row(t, i) != k)
        return 0;
    struct block bl = block_at(t, i);
    int kind = pyad_op_kind(t->op[k]);
    int64_t a = t->arg_a[k], b = t->arg_b[k], w = bl.w;
    int a_covers = (bl.sa == 1 || w == 1) && inside(a, w, lb);
    int b_covers = (bl.sb == 1 || w == 1) && inside(b, w, lb);
    int first = 0;
    if (kind == PYAD_KIND_UNARY || kind == PYAD_KIND_WITH_CONST)
        first = a_covers ? FIRST_A : 0;
    else if (kind == PYAD_KIND_BINARY && a_covers && !touches(b, b + bl.sb * (w - 1), lb))
        first = FIRST_A;
    else if (kind == PYAD_KIND_BINARY && b_covers && !touches(a, a + bl.sa * (w - 1), lb))
        first = FIRST_B;
    lb->lo = first == FIRST_A ? a : b;
    lb->hi = lb->lo + w;
    return first;
}

/* by_due order: the latest due first. */
static int later_due_first(const void *x, const void *y)
{
    int64_t dx = ((const struct due_entry *)x)->due, dy = ((const struct due_entry *)y)->due;
    return (dx < dy) - (dx > dy);
}

static void free_plan(struct adjoint_plan *p)
{
    if (p) {
        fused_free(p->fused, p->n_fused);
        free(p->by_slot), free(p->by_due), free(p->runs);
        free(p);
    }
}

static struct adjoint_plan *build_plan(const pyad_tape *t)
{
    int64_t n_lazy = 0;
    for (int64_t i = 0; i < t->n_blocks; ++i)
        n_lazy += is_lazy(t, i);
    struct adjoint_plan *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->n_lazy = n_lazy;
    p->n_ops = t->n_ops;
    if (n_lazy == 0)
        return p;
    p->by_slot = malloc((size_t)n_lazy * sizeof *p->by_slot);
    p->by_due = malloc((size_t)n_lazy * sizeof *p->by_due);
    p->runs = malloc((size_t)(2 * (n_lazy + 1)) * sizeof *p->runs);
    if (!p->by_slot || !p->by_due || !p->runs) {
        free_plan(p);
        return NULL;
    }
    if (fused_find(t, &p->fused, &p->n_fused)) {
        free_plan(p);
        return NULL;
    }
    struct builder b = {p->by_slot, 0, -1};
    for (int64_t i = 0; i < t->n_blocks; ++i) {
        if (!is_lazy(t, i))
            continue;
        int64_t row = block_row(t, i);
        /* read by no row: zeroed just before its own step reads it */
        b.lazy[b.n++] = (struct lazy_block){row, t->first[row], block_width(t, i), row, 0, 0, 0,
                                            t->op[row] == OP_input, 0};
    }
    find_last_readers(t, &b, p);
    mark_kept_rows(p, &b);
    for (int64_t j = 0; j < n_lazy; ++j) {
        /* a fused step adds to every adjoint; it writes none first */
        int fused = run_of(p, p->by_slot[j].due) != NULL;
        p->by_slot[j].written = fused ? 0 : written_first(t, p->by_slot + j);
        p->by_due[j] = (struct due_entry){p->by_slot[j].due, j};
    }
    qsort(p->by_due, (size_t)n_lazy, sizeof *p->by_due, later_due_first);
    int64_t start = 0;
    for (int64_t j = 0; j < n_lazy; ++j) {
        if (p->by_slot[j].first > start) {
            p->runs[2 * p->n_runs] = start;
            p->runs[2 * p->n_runs + 1] = p->by_slot[j].first;
            ++p->n_runs;
        }
        start = p->by_slot[j].first + p->by_slot[j].w;
    }
    if (t->n_slots > start) {
        p->runs[2 * p->n_runs] = start;
        p->runs[2 * p->n_runs + 1] = t->n_slots;
        ++p->n_runs;
    }
    return p;
}

const struct adjoint_plan *adjoint_plan(pyad_tape *t)
{
    if (t->n_blocks == 0)
        return NULL; /* scalar code: the sweeps as they always were */
    struct adjoint_plan *p = atomic_load(&t->adjoint_plan);
    if (!p) {
        struct adjoint_plan *mine = build_plan(t), *none = NULL;
        if (!mine)
            return NULL;
        /* Another sweep may have built one meanwhile: the first one stays. */
        if (atomic_compare_exchange_strong(&t->adjoint_plan, &none, mine))
            p = mine;
        else
            free_plan(mine), p = none;
    }
    return p->n_lazy ? p : NULL;
}

void adjoint_plan_drop(pyad_tape *t)
{
    free_plan(atomic_exchange(&t->adjoint_plan, NULL));
}

/* ---- one sweep's walk ---- */

static void zero_slots(const struct lazy_zeroing *z, int64_t from, int64_t to)
{
    size_t n = (size_t)((to - from) * z->lanes) * sizeof(double);
    memset(z->adj + from * z->lanes, 0, n);
    if (z->adjd)
        memset(z->adjd + from * z->lanes, 0, n);
}

static int64_t next_due(const struct lazy_zeroing *z)
{
    const struct adjoint_plan *p = z->plan;
    return z->next < p->n_lazy ? p->by_due[z->next].due : -1;
}

int64_t lazy_due(struct lazy_zeroing *z, int64_t k)
{
    const struct adjoint_plan *p = z->plan;
    for (; z->next < p->n_lazy && p->by_due[z->next].due >= k; ++z->next) {
        const struct lazy_block *lb = p->by_slot + p->by_due[z->next].idx;
        if (lb->internal)
            continue;
        if (lb->written && lb->due == k) {
            z->first |= lb->written;
            zero_slots(z, lb->first, lb->lo);
            zero_slots(z, lb->hi, lb->first + lb->w);
        } else {
            zero_slots(z, lb->first, lb->first + lb->w);
        }
    }
    return next_due(z);
}

int64_t lazy_start(struct lazy_zeroing *z)
{
    const struct adjoint_plan *p = z->plan;
    for (int64_t r = 0; r < p->n_runs; ++r)
        zero_slots(z, p->runs[2 * r], p->runs[2 * r + 1]);
    z->next = 0;
    z->release = p->n_lazy - 1;
    return lazy_due(z, p->n_ops); /* the blocks holding outputs, seeded next */
}

#if defined(__linux__) && defined(MADV_DONTNEED)
/* Gives the whole pages inside [p, p + bytes) back to the OS: they read as zero
 * when touched again. Only for private anonymous memory the caller owns. */
static void give_back(double *p, int64_t bytes)
{
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0)
        return;
    uintptr_t lo = ((uintptr_t)p + (uintptr_t)page - 1) / (uintptr_t)page * (uintptr_t)page;
    uintptr_t hi = ((uintptr_t)p + (uintptr_t)bytes) / (uintptr_t)page * (uintptr_t)page;
    if (hi > lo)
        madvise((void *)lo, hi - lo, MADV_DONTNEED);
}
#else
static void give_back(double *p, int64_t bytes) { (void)p, (void)bytes; }
#endif

void lazy_consumed(struct lazy_zeroing *z, int64_t k)
{
    const struct adjoint_plan *p = z->plan;
    while (z->release >= 0 && p->by_slot[z->release].row > k)
        --z->release;
    if (z->release < 0 || p->by_slot[z->release].row != k || !z->give_back
        || p->by_slot[z->release].input || p->by_slot[z->release].internal)
        return;
    const struct lazy_block *lb = p->by_slot + z->release;
    int64_t bytes = lb->w * z->lanes * (int64_t)sizeof(double);
    if (bytes < GIVE_BACK_MIN_BYTES)
        return;
    give_back(z->adj + lb->first * z->lanes, bytes);
    if (z->adjd)
        give_back(z->adjd + lb->first * z->lanes, bytes);
}

const struct fused_run *lazy_run_ending_at(const struct lazy_zeroing *z, int64_t *ri,
                                           int64_t k)
{
    const struct adjoint_plan *p = z->plan;
    if (!p)
        return NULL;
    while (*ri >= 0 && p->fused[*ri].k_last > k)
        --*ri;
    return *ri >= 0 && p->fused[*ri].k_last == k ? &p->fused[*ri] : NULL;
}

void lazy_unfuse(struct lazy_zeroing *z, const struct fused_run *r)
{
    for (int i = 0; i < r->n; ++i)
        if (!r->m[i].keep_adj)
            zero_slots(z, r->m[i].z, r->m[i].z + r->w);
}
