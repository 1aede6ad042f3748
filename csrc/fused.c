/* Tile-fused sweeps of elementwise runs (fused.h). */
#include <stdlib.h>
#include <string.h>

#include "fused.h"
#include "block.h"
#include "lazy_adjoint.h"
#include "rules.h"
#include "run.h"
#include "sweep.h"

/* A run longer than this is split: its scratch (four tiles a member) stays
 * small enough for a useful tile. */
#define MAX_MEMBERS 32
/* The scratch of one sweep, in bytes: a tile of every internal member's
 * values, tangents, adjoints and adjoint tangents stays in L2 while the tile's
 * rows are swept down and up. */
#define SCRATCH_BYTES ((int64_t)192 << 10)
#define MIN_TILE 64
#define MAX_TILE 4096

static int elementwise(int op)
{
    int kind = pyad_op_kind(op);
    return kind == PYAD_KIND_UNARY || kind == PYAD_KIND_BINARY || kind == PYAD_KIND_WITH_CONST;
}

/* ---- finding the runs ---- */

struct building {
    struct fused_run run;
    struct fused_member m[MAX_MEMBERS];
};

/* Operand (slot, stride) of a w-wide row as the open run sees it; returns 0
 * when the row cannot join: it reads a member other than whole and aligned,
 * or a range reaching into the run. */
static int classify(const struct building *b, int64_t slot, int64_t stride, int64_t w,
                    struct fused_operand *o)
{
    int64_t f = b->run.first, end = f + b->run.n * w;
    *o = (struct fused_operand){-1, slot, stride};
    if (stride < 0)
        return 0;
    if (slot >= f && slot < end) {
        if (stride != 1 || (slot - f) % w != 0)
            return 0;
        o->member = (int32_t)((slot - f) / w);
        return 1;
    }
    return slot + stride * (w - 1) < f;
}

/* Whether block i (elementwise, width w) joins b's open run, filling *m. */
static int joins(const pyad_tape *t, const struct building *b, int64_t i,
                 struct fused_member *m)
{
    struct block bl = block_at(t, i);
    int op = t->op[bl.row];
    if (!elementwise(op) || bl.w < LAZY_MIN_WIDTH || b->run.n >= MAX_MEMBERS)
        return 0;
    if (b->run.n > 0 && (bl.w != b->run.w || bl.row != b->m[b->run.n - 1].row + 1))
        return 0;
    int kind = pyad_op_kind(op);
    *m = (struct fused_member){bl.row, t->first[bl.row], op, {-1, 0, 0}, {-1, 0, 0}, 0, 0, 0, 0};
    if (!classify(b, t->arg_a[bl.row], bl.sa, bl.w, &m->a))
        return 0;
    if (kind == PYAD_KIND_BINARY && !classify(b, t->arg_b[bl.row], bl.sb, bl.w, &m->b))
        return 0;
    if (kind == PYAD_KIND_WITH_CONST) {
        if (bl.sk < 0)
            return 0;
        m->kb = t->arg_b[bl.row], m->sk = bl.sk;
    }
    return 1;
}

/* The member block i sums whole (a reduce_add over all w elements right after
 * the run), or -1. */
static int summed_member(const pyad_tape *t, const struct building *b, int64_t i)
{
    if (i >= t->n_blocks || b->run.n == 0)
        return -1;
    struct block bl = block_at(t, i);
    int64_t a = t->arg_a[bl.row], f = b->run.first, w = b->run.w;
    if (t->op[bl.row] != OP_reduce_add || bl.row != b->m[b->run.n - 1].row + 1 || bl.w != 1
        || t->arg_b[bl.row] != w || bl.sb != 1 || a < f || a >= f + b->run.n * w
        || (a - f) % w != 0)
        return -1;
    return (int)((a - f) / w);
}

struct found {
    struct fused_run *runs;
    int64_t n, cap;
};

/* Keeps b's run if it saves a pass (two rows or more); returns PYAD_OK or
 * PYAD_ENOMEM. */
static int close_run(struct found *f, struct building *b, int64_t bi_next)
{
    struct fused_run *r = &b->run;
    int rows = r->n + (r->sum_of >= 0);
    if (r->n == 0 || rows < 2)
        return PYAD_OK;
    if (f->n == f->cap) {
        int64_t cap = f->cap ? 2 * f->cap : 8;
        struct fused_run *more = realloc(f->runs, (size_t)cap * sizeof *more);
        if (!more)
            return PYAD_ENOMEM;
        f->runs = more, f->cap = cap;
    }
    r->m = malloc((size_t)r->n * sizeof *r->m);
    if (!r->m)
        return PYAD_ENOMEM;
    memcpy(r->m, b->m, (size_t)r->n * sizeof *r->m);
    r->n_blocks = bi_next - r->bi0;
    r->k0 = b->m[0].row;
    r->k_last = r->sum_of >= 0 ? b->m[r->n - 1].row + 1 : b->m[r->n - 1].row;
    f->runs[f->n++] = *r;
    return PYAD_OK;
}

static void open_run(struct building *b, const pyad_tape *t, int64_t i)
{
    b->run = (struct fused_run){0};
    b->run.bi0 = i;
    b->run.w = block_width(t, i);
    b->run.first = t->first[block_row(t, i)];
    b->run.sum_of = -1;
}

void fused_free(struct fused_run *runs, int64_t n)
{
    for (int64_t j = 0; j < n; ++j)
        free(runs[j].m);
    free(runs);
}

int fused_find(const pyad_tape *t, struct fused_run **out, int64_t *n_out)
{
    struct found f = {NULL, 0, 0};
    struct building *b = malloc(sizeof *b);
    if (!b)
        return PYAD_ENOMEM;
    int s = PYAD_OK;
    b->run = (struct fused_run){0};
    for (int64_t i = 0; i < t->n_blocks && s == PYAD_OK; ++i) {
        struct fused_member m;
        if (b->run.n > 0 && joins(t, b, i, &m)) {
            b->m[b->run.n++] = m;
            continue;
        }
        int sum = summed_member(t, b, i);
        if (sum >= 0) {
            b->run.sum_of = sum;
            b->run.sum_slot = t->first[block_row(t, i)];
            s = close_run(&f, b, i + 1);
            b->run = (struct fused_run){0};
            continue;
        }
        s = close_run(&f, b, i);
        open_run(b, t, i);
        if (joins(t, b, i, &m))
            b->m[b->run.n++] = m;
        else
            b->run = (struct fused_run){0};
    }
    if (s == PYAD_OK)
        s = close_run(&f, b, t->n_blocks);
    free(b);
    if (s) {
        fused_free(f.runs, f.n);
        return s;
    }
    *out = f.runs, *n_out = f.n;
    return PYAD_OK;
}

int fused_has_passive(const pyad_tape *t, const struct fused_run *r)
{
    for (int64_t k = r->k0; k <= r->k_last; ++k)
        if (row_passive(t, k))
            return 1;
    return 0;
}

/* ---- sweeping tiles ---- */

/* One tile's arrays per member: values, tangents, adjoints, adjoint tangents
 * (into the work arrays for kept rows, else into scratch). */
struct tile {
    int64_t e0, n;
    double *val[MAX_MEMBERS], *tan[MAX_MEMBERS], *g[MAX_MEMBERS], *gd[MAX_MEMBERS];
};

static int64_t tile_width(const struct fused_run *r)
{
    int64_t tw = SCRATCH_BYTES / ((int64_t)sizeof(double) * 4 * r->n);
    tw -= tw % 8;
    tw = tw < MIN_TILE ? MIN_TILE : tw > MAX_TILE ? MAX_TILE : tw;
    return tw < r->w ? tw : r->w;
}

/* Element e0 of an operand in array base, where slot s is at s - origin (or
 * in the member's tile array). */
static double *operand(double *base, int64_t origin, double *const *member,
                       const struct fused_operand *o, int64_t e0)
{
    if (o->member >= 0)
        return member[o->member];
    return base ? base + (o->slot - origin) + o->stride * e0 : NULL;
}

static int64_t stride_of(const struct fused_operand *o)
{
    return o->member >= 0 ? 1 : o->stride;
}

/* Whether the adjoint runs of a and b are apart (read only by the kernels'
 * unit-stride copies). */
static int apart(const struct fused_operand *a, const struct fused_operand *b, int64_t w)
{
    if (a->member >= 0 || b->member >= 0)
        return a->member != b->member;
    return a->slot + w <= b->slot || b->slot + w <= a->slot;
}

/* The kernel's view of member i in tile tl: values and tangents from io
 * (external operands) and the tile; adjoints likewise (io's adj, adjd NULL:
 * none, a forward step). */
static struct run member_run(const pyad_tape *t, const struct fused_run *r, int i,
                             const struct tile *tl, const struct fused_io *io)
{
    const struct fused_member *m = &r->m[i];
    int binary = pyad_op_kind(m->op) == PYAD_KIND_BINARY;
    int with_const = pyad_op_kind(m->op) == PYAD_KIND_WITH_CONST;
    double *vv = (double *)io->v, *tt = (double *)io->vd, *aa = io->adj, *qq = io->adjd;
    int64_t o = io->origin;
    return (struct run){
        .op = m->op,
        .n = tl->n,
        .z = tl->val[i], .zd = tl->tan[i], .g = tl->g[i], .gd = tl->gd[i],
        .va = operand(vv, o, tl->val, &m->a, tl->e0),
        .vb = binary ? operand(vv, o, tl->val, &m->b, tl->e0) : NULL,
        .ta = operand(tt, o, tl->tan, &m->a, tl->e0),
        .tb = binary ? operand(tt, o, tl->tan, &m->b, tl->e0) : NULL,
        .ga = operand(aa, o, tl->g, &m->a, tl->e0),
        .gb = binary ? operand(aa, o, tl->g, &m->b, tl->e0) : NULL,
        .qa = operand(qq, o, tl->gd, &m->a, tl->e0),
        .qb = binary ? operand(qq, o, tl->gd, &m->b, tl->e0) : NULL,
        .sa = stride_of(&m->a), .sb = binary ? stride_of(&m->b) : 0,
        .k = with_const ? t->consts + m->kb + m->sk * tl->e0 : NULL,
        .sk = m->sk,
        .disjoint = binary && apart(&m->a, &m->b, r->w),
    };
}

/* Points member i's values and tangents at the work arrays (kept rows) or at
 * its scratch tiles; returns whether they must be computed. */
static int place_values(const struct fused_run *r, int i, struct tile *tl, double *v,
                        double *vd, double *scratch, int64_t tw, int keep_in_place)
{
    const struct fused_member *m = &r->m[i];
    if (m->keep_val && keep_in_place) {
        tl->val[i] = v + m->z + tl->e0;
        tl->tan[i] = vd ? vd + m->z + tl->e0 : NULL;
        return 0;
    }
    tl->val[i] = scratch + (int64_t)(4 * i) * tw;
    tl->tan[i] = vd ? scratch + (int64_t)(4 * i + 1) * tw : NULL;
    return 1;
}

int64_t fused_scratch_size(const struct fused_run *runs, int64_t n)
{
    int64_t most = 0;
    for (int64_t j = 0; j < n; ++j) {
        int64_t need = 4 * runs[j].n * tile_width(&runs[j]);
        most = need > most ? need : most;
    }
    return most;
}

void fused_forward(const pyad_tape *t, const struct fused_run *r, double *v, double *vd,
                   double *scratch)
{
    int64_t tw = tile_width(r);
    struct tile tl;
    memset(&tl, 0, sizeof tl);
    for (tl.e0 = 0; tl.e0 < r->w; tl.e0 += tw) {
        tl.n = r->w - tl.e0 < tw ? r->w - tl.e0 : tw;
        const struct fused_io io = {v, vd, NULL, NULL, 0};
        for (int i = 0; i < r->n; ++i) {
            place_values(r, i, &tl, v, vd, scratch, tw, 1);
            struct run k = member_run(t, r, i, &tl, &io);
            run_kernel(vd ? RUN_TANGENT : RUN_VALUES, &k);
        }
    }
}

int fused_forward_sweep(const pyad_tape *t, const struct fused_run *runs, int64_t n,
                        int64_t end, const double *x, const double *xd, double *v,
                        double *vd, double *scratch, int64_t *bad_op)
{
    int64_t k = 0;
    for (int64_t j = 0; j <= n; ++j) {
        /* the rows up to the next run (or the end), then the run's members */
        int64_t until = j < n ? runs[j].k0 : end;
        int s = vd ? tangent_range(t, x, xd, v, vd, k, until, bad_op)
                   : forward_range(t, x, v, k, until, bad_op);
        if (s || j == n)
            return s;
        k = runs[j].k0 + runs[j].n;
        if (fused_has_passive(t, &runs[j]))
            k = runs[j].k0; /* stored whole, as the reverse sweeps them one by one */
        else
            fused_forward(t, &runs[j], v, vd, scratch);
    }
    return PYAD_OK;
}

/* Who writes each internal member's tile adjoints first in the reverse step
 * (the members are swept last to first): the sum, when it reads the member
 * (fills them), or the last member reading it through one operand (stores
 * them: FIRST_A / FIRST_B in first[j]); a member nobody writes first (read by
 * no member, or as both operands of one) is zeroed (zero[i]). */
struct first_writes {
    int first[MAX_MEMBERS];
    int zero[MAX_MEMBERS];
};

static struct first_writes plan_first_writes(const struct fused_run *r)
{
    struct first_writes fw;
    memset(&fw, 0, sizeof fw);
    for (int i = 0; i < r->n; ++i) {
        if (r->m[i].keep_adj || i == r->sum_of)
            continue;
        int j = r->n - 1;
        while (j > i && r->m[j].a.member != i && r->m[j].b.member != i)
            --j;
        if (j == i || (r->m[j].a.member == i && r->m[j].b.member == i))
            fw.zero[i] = 1;
        else
            fw.first[j] |= r->m[j].a.member == i ? FIRST_A : FIRST_B;
    }
    return fw;
}

/* Points member i's tile adjoints (and tangents) at the work arrays for a kept
 * row, else at its scratch, zeroed if nothing writes them first. */
static void place_adjoints(const struct fused_run *r, int i, struct tile *tl, double *adj,
                           double *adjd, double *scratch, int64_t tw, int zero)
{
    const struct fused_member *m = &r->m[i];
    if (m->keep_adj) {
        tl->g[i] = adj + m->z + tl->e0;
        tl->gd[i] = adjd ? adjd + m->z + tl->e0 : NULL;
        return;
    }
    tl->g[i] = scratch + (int64_t)(4 * i + 2) * tw;
    tl->gd[i] = adjd ? scratch + (int64_t)(4 * i + 3) * tw : NULL;
    if (zero) {
        memset(tl->g[i], 0, (size_t)tl->n * sizeof(double));
        if (adjd)
            memset(tl->gd[i], 0, (size_t)tl->n * sizeof(double));
    }
}

/* The sum's reverse step on the member it reads: its adjoint reaches every
 * element (stored where the member is internal, added where it is kept). */
static void sum_reverse(const struct fused_run *r, const struct tile *tl, double gs, double gds)
{
    double *g = tl->g[r->sum_of], *gd = tl->gd[r->sum_of];
    if (r->m[r->sum_of].keep_adj) {
        for (int64_t j = tl->n - 1; j >= 0; --j)
            g[j] += gs;
        if (gd)
            for (int64_t j = tl->n - 1; j >= 0; --j)
                gd[j] += gds;
        return;
    }
    for (int64_t j = tl->n - 1; j >= 0; --j)
        g[j] = gs + 0.0; /* what 0.0 + gs gives, -0.0 included */
    if (gd)
        for (int64_t j = tl->n - 1; j >= 0; --j)
            gd[j] = gds + 0.0;
}

/* How sweep_tiles computes the members' values: read the kept rows' (in v,
 * vd from the forward sweep), compute them all (storing the kept ones), or
 * compute only those the derivative rules read (needed_members), in scratch. */
enum tile_values { READ_KEPT, COMPUTE_ALL, COMPUTE_NEEDED };

static void sweep_tiles(const pyad_tape *t, const struct fused_run *r, double *v, double *vd,
                        double *adj, double *adjd, const struct fused_io *io, double gs,
                        double gds, double *scratch, enum tile_values how);

/* Whether the summed member's tile adjoints keep what sum_reverse stores: in
 * scratch, and no member adds to them. They are then stored once, a whole
 * tile's width at the first tile swept, not again at every tile. */
static int sum_stays(const struct fused_run *r)
{
    if (r->sum_of < 0 || r->m[r->sum_of].keep_adj)
        return 0;
    for (int i = r->sum_of + 1; i < r->n; ++i)
        if (r->m[i].a.member == r->sum_of || r->m[i].b.member == r->sum_of)
            return 0;
    return 1;
}

void fused_reverse(const pyad_tape *t, const struct fused_run *r, const double *v,
                   const double *vd, double *adj, double *adjd, double *scratch)
{
    const struct fused_io io = {v, adjd ? vd : NULL, adj, adjd, 0};
    double gs = r->sum_of >= 0 ? adj[r->sum_slot] : 0.0;
    double gds = r->sum_of >= 0 && adjd ? adjd[r->sum_slot] : 0.0;
    sweep_tiles(t, r, (double *)v, (double *)vd, adj, adjd, &io, gs, gds, scratch, READ_KEPT);
}

/* ---- one pass: a run whose sum's adjoint is known before its values ---- */

/* A tail longer than this is swept the usual way. */
#define MAX_TAIL 64

/* Ops whose derivatives are constants (the registry's d_x, d_y read only the
 * constant y) and whose second derivatives are zero. */
static int affine(int op)
{
    return op == OP_add || op == OP_sub || op == OP_neg || op == OP_add_c || op == OP_sub_c
        || op == OP_rsub_c || op == OP_mul_c || op == OP_div_c;
}

/* The first (or with b_operand, second) derivative of an affine op, and its
 * second derivative, by the registry's rules (consts: the op's constant y). */
static void affine_rule(int op, double c, int b_operand, double *d, double *dd)
{
    const double x = 0.0, y = c, z = 0.0, xd = 0.0, yd = 0.0;
    (void)x, (void)y, (void)z, (void)xd, (void)yd;
    *d = *dd = 0.0;
    switch (op) {
#define SPECIAL(name, differentiable)
#define UNARY(name, numpy, operator, differentiable, value, d_x, dd_x)                      \
    case OP_##name: *d = (d_x), *dd = (dd_x); break;
#define BINARY(name, numpy, operator, cf, rcf, value, d_x, d_y, dd_x, dd_y)                 \
    case OP_##name:                                                                         \
        *d = b_operand ? (d_y) : (d_x), *dd = b_operand ? (dd_y) : (dd_x);                  \
        break;
#define WITH_CONST(name, value, d_x, dd_x)                                                  \
    case OP_##name: *d = (d_x), *dd = (dd_x); break;
#define COMPARE(name, numpy, operator, cf, rcf, value)
#define COMPARE_C(name, value)
#include "expand_ops.h"
    default:
        break;
    }
}

/* A tail row's operand slots (n of them: 0, 1 or 2); -1 for a row kind the
 * one-pass sweep does not take. Comparisons and guards pass nothing back. */
static int tail_operands(const pyad_tape *t, int64_t k, int64_t *s)
{
    int op = t->op[k], kind = pyad_op_kind(op);
    s[0] = t->arg_a[k], s[1] = t->arg_b[k];
    if (kind == PYAD_KIND_BINARY || kind == PYAD_KIND_COMPARE)
        return 2;
    if (kind == PYAD_KIND_UNARY || kind == PYAD_KIND_WITH_CONST
        || kind == PYAD_KIND_COMPARE_C || op == OP_guard_true || op == OP_guard_false)
        return 1;
    return -1;
}

static int passes_back(const pyad_tape *t, int64_t k)
{
    int kind = pyad_op_kind(t->op[k]);
    return kind == PYAD_KIND_UNARY || kind == PYAD_KIND_BINARY
        || kind == PYAD_KIND_WITH_CONST;
}

/* Rows after the run's sum: scalar rows at the next slots (the sum is the
 * tape's last block), each in tail position k - k_last - 1. */
static int64_t tail_rows(const pyad_tape *t, const struct fused_run *r)
{
    return t->n_ops - 1 - r->k_last;
}

/* Slot s as a tail position: -1 the sum, 0.. a tail row, -2 neither. */
static int64_t tail_position(const struct fused_run *r, int64_t n_tail, int64_t s)
{
    int64_t p = s - r->sum_slot - 1;
    return p >= -1 && p < n_tail ? p : -2;
}

int fused_one_pass_fits(const pyad_tape *t, const struct fused_run *r)
{
    int64_t n_tail = tail_rows(t, r);
    if (r->sum_of < 0 || n_tail > MAX_TAIL || r->bi0 + r->n_blocks != t->n_blocks
        || fused_has_passive(t, r))
        return 0;
    for (int i = 0; i < r->n; ++i)
        if (r->m[i].keep_adj)
            return 0;
    /* which tail rows depend on the sum: those may only be affine in it */
    int on_sum[MAX_TAIL];
    for (int64_t j = 0; j < n_tail; ++j) {
        int64_t k = r->k_last + 1 + j, s[2];
        int n = tail_operands(t, k, s);
        if (n < 0 || t->first[k] != r->sum_slot + 1 + j || row_passive(t, k))
            return 0;
        on_sum[j] = 0;
        for (int q = 0; q < n; ++q) {
            int64_t p = tail_position(r, n_tail, s[q]);
            on_sum[j] |= p == -1 || (p >= 0 && p < j && on_sum[p]);
        }
        if (on_sum[j] && passes_back(t, k) && !affine(t->op[k]))
            return 0;
        if (!passes_back(t, k))
            on_sum[j] = 0;
    }
    return 1;
}

/* Adds the seed u[i] of each output at the sum (g[0]) or a tail row (g[1 + p]). */
static void seed_tail(const pyad_tape *t, const struct fused_run *r, int64_t n_tail,
                      const double *u, double *g)
{
    for (int64_t i = 0; i < t->n_outputs; ++i) {
        int64_t p = tail_position(r, n_tail, t->outputs[i]);
        if (p >= -1)
            g[1 + p] += u[i];
    }
}

void fused_tail_seed(const pyad_tape *t, const struct fused_run *r, const double *u,
                     double *gs, double *gds)
{
    int64_t n_tail = tail_rows(t, r);
    double g[MAX_TAIL + 1] = {0.0}, gd[MAX_TAIL + 1] = {0.0};
    seed_tail(t, r, n_tail, u, g);
    for (int64_t j = n_tail - 1; j >= 0; --j) {
        int64_t k = r->k_last + 1 + j, s[2];
        int n = tail_operands(t, k, s);
        if (!affine(t->op[k]) || (g[1 + j] == 0.0 && gd[1 + j] == 0.0))
            continue; /* the rest pass nothing to the sum (fused_one_pass_fits) */
        double c = pyad_op_kind(t->op[k]) == PYAD_KIND_WITH_CONST ? t->consts[s[1]] : 0.0;
        for (int q = 0; q < n; ++q) {
            int64_t p = tail_position(r, n_tail, s[q]);
            if (p < -1)
                continue;
            double d, dd;
            affine_rule(t->op[k], c, q, &d, &dd);
            g[1 + p] += scaled(d, g[1 + j]);
            gd[1 + p] += scaled(d, gd[1 + j]) + scaled(dd, g[1 + j]);
        }
    }
    *gs = g[0], *gds = gd[0];
}

int fused_tail_guarded(const pyad_tape *t, const struct fused_run *r)
{
    for (int64_t k = r->k_last + 1; k < t->n_ops; ++k)
        if (t->op[k] == OP_guard_true || t->op[k] == OP_guard_false)
            return 1;
    return 0;
}

int fused_inputs_direct(const pyad_tape *t, const struct fused_run *r)
{
    int64_t origin = t->first[0];
    for (int64_t k = 0; k < r->k0; ++k)
        if (t->op[k] != OP_input || t->arg_a[k] != t->first[k] - origin)
            return 0;
    if (t->n_inputs != t->first[r->k0] - origin)
        return 0;
    int64_t n_tail = tail_rows(t, r);
    for (int64_t i = 0; i < t->n_outputs; ++i)
        if (tail_position(r, n_tail, t->outputs[i]) < -1)
            return 0;
    for (int64_t j = 0; j < n_tail; ++j) {
        int64_t s[2];
        int n = tail_operands(t, r->k_last + 1 + j, s);
        for (int q = 0; q < n; ++q)
            if (tail_position(r, n_tail, s[q]) < -1)
                return 0;
    }
    return 1;
}

void fused_one_pass(const pyad_tape *t, const struct fused_run *r, double *v, double *vd,
                    const struct fused_io *io, double gs, double gds, int want_sum,
                    double *scratch)
{
    /* no row kept (fused_one_pass_fits): io's adjoints only say the order */
    sweep_tiles(t, r, v, vd, io->adj, io->adjd, io, gs, gds, scratch,
                want_sum ? COMPUTE_ALL : COMPUTE_NEEDED);
}

/* The members whose values (and tangents) a reverse step reads: the operands
 * of a member whose rules are not affine, and that member itself (its rules
 * may read its result), and what those are computed from. */
static void needed_members(const struct fused_run *r, int *need)
{
    for (int i = 0; i < r->n; ++i)
        need[i] = !affine(r->m[i].op);
    for (int i = r->n - 1; i >= 0; --i) {
        if (!need[i])
            continue;
        if (r->m[i].a.member >= 0)
            need[r->m[i].a.member] = 1;
        if (pyad_op_kind(r->m[i].op) == PYAD_KIND_BINARY && r->m[i].b.member >= 0)
            need[r->m[i].b.member] = 1;
    }
}

/* The tiles of run r, last to first: each member's values (and tangents)
 * recomputed as `how` says (enum tile_values), then the
 * reverse steps of the sum (its adjoint gs, gds) and the members. Kept rows
 * live in v, vd, adj, adjd; external operands are read through io. */
static void sweep_tiles(const pyad_tape *t, const struct fused_run *r, double *v, double *vd,
                        double *adj, double *adjd, const struct fused_io *io, double gs,
                        double gds, double *scratch, enum tile_values how)
{
    int need[MAX_MEMBERS];
    for (int i = 0; i < r->n; ++i)
        need[i] = 1;
    if (how == COMPUTE_NEEDED)
        needed_members(r, need);
    int64_t tw = tile_width(r);
    double *tangents = adjd ? vd : NULL;
    const struct fused_io values = {io->v, adjd ? io->vd : NULL, NULL, NULL, io->origin};
    struct first_writes fw = plan_first_writes(r);
    int sum_once = sum_stays(r);
    struct tile tl;
    memset(&tl, 0, sizeof tl);
    for (int64_t e0 = (r->w - 1) / tw * tw; e0 >= 0; e0 -= tw) {
        int first_tile = e0 + tw >= r->w;
        tl.e0 = e0;
        tl.n = r->w - e0 < tw ? r->w - e0 : tw;
        for (int i = 0; i < r->n; ++i) {
            /* recomputed: the forward may have stored only the kept rows */
            int placed = place_values(r, i, &tl, v, tangents, scratch, tw, how != COMPUTE_NEEDED);
            if ((placed || how != READ_KEPT) && need[i]) {
                struct run k = member_run(t, r, i, &tl, &values);
                run_kernel(tangents ? RUN_TANGENT : RUN_VALUES, &k);
            }
            place_adjoints(r, i, &tl, adj, adjd, scratch, tw, fw.zero[i]);
        }
        if (r->sum_of >= 0 && (first_tile || !sum_once)) {
            struct tile whole = tl;
            whole.n = sum_once ? tw : tl.n;
            sum_reverse(r, &whole, gs, gds);
        }
        for (int i = r->n - 1; i >= 0; --i) {
            struct run k = member_run(t, r, i, &tl, io);
            k.first = fw.first[i];
            run_kernel(adjd ? RUN_SECOND : RUN_REVERSE, &k);
        }
    }
}

int64_t pyad_fused_runs(pyad_tape *t, int64_t *out, int64_t cap)
{
    if (!t)
        return PYAD_ECLOSED;
    if (cap < 0 || (cap > 0 && !out))
        return PYAD_EINVAL;
    int s = tape_begin_sweep(t);
    if (s)
        return s;
    const struct adjoint_plan *p = adjoint_plan(t);
    int64_t n = p ? p->n_fused : 0;
    for (int64_t j = 0; j < n && j < cap; ++j) {
        const struct fused_run *r = &p->fused[j];
        int64_t internal = 0;
        for (int i = 0; i < r->n; ++i)
            internal += !r->m[i].keep_adj;
        out[3 * j] = r->k0, out[3 * j + 1] = r->k_last, out[3 * j + 2] = internal;
    }
    tape_end_sweep(t);
    return n;
}
