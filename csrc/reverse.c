/* Reverse sweeps: one adjoint (a vector-Jacobian product), and forward-over-
 * reverse for second order. The registry's rules read x, y (operand values),
 * z (the result) and, in the second-order sweep, xd, yd (tangents). */
#include <stdlib.h>
#include <string.h>

#include "rules.h"
#include "special_rules.h"
#include "block.h"
#include "lazy_adjoint.h"
#include "fused.h"
#include "sweep.h"

/* Zeroes the adjoints (adjd too, if not NULL) that must be zero before the
 * sweep, all of them or, where the tape has a plan, those it says
 * (lazy_adjoint.h); returns the first row with lazy blocks due (-1: none). */
static int64_t start_adjoints(pyad_tape *t, double *adj, double *adjd, int give_back,
                              struct lazy_zeroing *z)
{
    *z = (struct lazy_zeroing){adjoint_plan(t), adj, adjd, 1, 0, 0, give_back, 0};
    if (z->plan)
        return lazy_start(z);
    memset(adj, 0, (size_t)t->n_slots * sizeof *adj);
    if (adjd)
        memset(adjd, 0, (size_t)t->n_slots * sizeof *adjd);
    return -1;
}

/* Seeds each output with its weight in u (its adjoint already zero). */
static void seed_outputs(const pyad_tape *t, const double *u, double *adj)
{
    for (int64_t i = 0; i < t->n_outputs; ++i)
        adj[t->outputs[i]] += u[i];
}

static void gather_inputs(const pyad_tape *t, const double *adj, double *xbar)
{
    if (block_input_adjoints(t, adj, xbar))
        return;
    for (int64_t j = 0; j < t->n_inputs; ++j)
        xbar[j] = adj[t->inputs[j]];
}

/* Where a reverse sweep stands: the next block entry and the slot shift; and
 * the scratch of its fused runs (NULL: none fused). */
struct walk {
    int64_t bi, block_k, shift;
    double *scratch;
    const struct fused_run *done; /* swept already (fused_one_pass) */
};

/* Scratch for the fused runs of the tape's plan; NULL where it has none (or no
 * memory: the runs are then swept row by row). */
static double *fused_scratch(const pyad_tape *t)
{
    const struct adjoint_plan *p = atomic_load(&((pyad_tape *)t)->adjoint_plan);
    if (!p || p->n_fused == 0)
        return NULL;
    return malloc((size_t)fused_scratch_size(p->fused, p->n_fused) * sizeof(double));
}

/* Reverse step of the run ending at row k (lazy_adjoint.h): the whole run a
 * tile at a time (fused.h), vd and adjd NULL in a first-order sweep. Returns 1
 * with the walk moved past the run's first row, or 0 where the run could not
 * be fused (then its rows are swept one by one as usual). */
static int fused_step(const pyad_tape *t, const struct fused_run *r, const double *v,
                      const double *vd, double *adj, double *adjd, struct lazy_zeroing *z,
                      int64_t *zero_k, struct walk *w)
{
    if (r == w->done)
        ;
    else if (!w->scratch || fused_has_passive(t, r)) {
        lazy_unfuse(z, r);
        return 0;
    } else {
        fused_reverse(t, r, v, vd, adj, adjd, w->scratch);
    }
    for (int64_t j = 0; j < r->n_blocks; ++j) {
        lazy_consumed(z, block_row(t, w->bi));
        w->shift -= block_width(t, w->bi) - 1;
        w->block_k = block_row(t, --w->bi);
    }
    if (*zero_k >= r->k0) /* internal rows read by no row: nothing to zero */
        *zero_k = lazy_due(z, r->k0);
    return 1;
}

/* Reverse steps of scalar rows hi down to lo (no block row, no lazy block due,
 * no passive row among them), row k's result at slot k + shift. Nothing per
 * row but the row's own step: the walk (reverse_walk) finds the rows that need
 * more. */
static void scalar_reverse(const pyad_tape *t, const double *v, double *adj, int64_t shift,
                           int64_t lo, int64_t hi)
{
    const uint8_t *op = t->op;
    const int32_t *A = t->arg_a, *B = t->arg_b, *C = t->arg_c;
    const double *consts = t->consts;
    const double *vz = v + shift;
    double *adjz = adj + shift;
    for (int64_t k = hi; k >= lo; --k) {
        double g = adjz[k];
        if (g == 0.0)
            continue; /* nothing flows back (see scaled) */
        switch (op[k]) {
#define SPECIAL(name, differentiable)
#define UNARY(name, numpy, operator, differentiable, value, d_x, dd_x)                      \
        case OP_##name: {                                                                   \
            double x = v[A[k]], z = vz[k];                                                   \
            (void)x; (void)z;                                                               \
            adj[A[k]] += g * (d_x);                                                         \
            break;                                                                          \
        }
#define BINARY(name, numpy, operator, cf, rcf, value, d_x, d_y, dd_x, dd_y)                 \
        case OP_##name: {                                                                   \
            double x = v[A[k]], y = v[B[k]], z = vz[k];                                      \
            (void)x; (void)y; (void)z;                                                      \
            adj[A[k]] += g * (d_x);                                                         \
            adj[B[k]] += g * (d_y);                                                         \
            break;                                                                          \
        }
#define WITH_CONST(name, value, d_x, dd_x)                                                  \
        case OP_##name: {                                                                   \
            double x = v[A[k]], y = consts[B[k]], z = vz[k];                                 \
            (void)x; (void)y; (void)z;                                                      \
            adj[A[k]] += g * (d_x);                                                         \
            break;                                                                          \
        }
#define COMPARE(name, numpy, operator, cf, rcf, value)
#define COMPARE_C(name, value)
#include "expand_ops.h"
        case OP_select:
            adj[select_taken(v[A[k]], B[k], C[k])] += g;
            break;
        case OP_axpy_c:
            adj[A[k]] += g;
            adj[B[k]] += axpy_b_adjoint(consts[C[k]], g);
            break;
        case OP_max_n:
        case OP_min_n:
            share_among_ties(v, t->pool + C[k], B[k], vz[k], 1, 0, g, adj, 1, 0);
            break;
        default: /* inputs, constants, comparisons and guards pass nothing back */
            break;
        }
    }
}

/* scalar_reverse's forward-over-reverse twin: adjd the adjoints' tangents. */
static void scalar_second(const pyad_tape *t, const double *v, const double *vd, double *adj,
                          double *adjd, int64_t shift, int64_t lo, int64_t hi)
{
    const uint8_t *op = t->op;
    const int32_t *A = t->arg_a, *B = t->arg_b, *C = t->arg_c;
    const double *consts = t->consts;
    const double *vz = v + shift;
    double *adjz = adj + shift, *adjdz = adjd + shift;
    for (int64_t k = hi; k >= lo; --k) {
        double g = adjz[k], gd = adjdz[k];
        if (g == 0.0 && gd == 0.0)
            continue;
        switch (op[k]) {
#define SPECIAL(name, differentiable)
#define UNARY(name, numpy, operator, differentiable, value, d_x, dd_x)                      \
        case OP_##name: {                                                                   \
            double x = v[A[k]], xd = vd[A[k]], z = vz[k];                                    \
            (void)x; (void)xd; (void)z;                                                     \
            double p = (d_x);                                                               \
            adj[A[k]] += scaled(p, g);                                                      \
            adjd[A[k]] += scaled(p, gd) + scaled(dd_x, g);                                  \
            break;                                                                          \
        }
#define BINARY(name, numpy, operator, cf, rcf, value, d_x, d_y, dd_x, dd_y)                 \
        case OP_##name: {                                                                   \
            double x = v[A[k]], y = v[B[k]], xd = vd[A[k]], yd = vd[B[k]], z = vz[k];       \
            (void)x; (void)y; (void)xd; (void)yd; (void)z;                                  \
            double p = (d_x), q = (d_y);                                                    \
            adj[A[k]] += scaled(p, g);                                                      \
            adjd[A[k]] += scaled(p, gd) + scaled(dd_x, g);                                  \
            adj[B[k]] += scaled(q, g);                                                      \
            adjd[B[k]] += scaled(q, gd) + scaled(dd_y, g);                                  \
            break;                                                                          \
        }
#define WITH_CONST(name, value, d_x, dd_x)                                                  \
        case OP_##name: {                                                                   \
            double x = v[A[k]], y = consts[B[k]], xd = vd[A[k]], z = vz[k];                  \
            (void)x; (void)y; (void)xd; (void)z;                                            \
            double p = (d_x);                                                               \
            adj[A[k]] += scaled(p, g);                                                      \
            adjd[A[k]] += scaled(p, gd) + scaled(dd_x, g);                                  \
            break;                                                                          \
        }
#define COMPARE(name, numpy, operator, cf, rcf, value)
#define COMPARE_C(name, value)
#include "expand_ops.h"
        case OP_select: {
            int32_t pick = select_taken(v[A[k]], B[k], C[k]);
            adj[pick] += g;
            adjd[pick] += gd;
            break;
        }
        case OP_axpy_c:
            adj[A[k]] += g;
            adjd[A[k]] += gd;
            adj[B[k]] += axpy_b_adjoint(consts[C[k]], g);
            adjd[B[k]] += axpy_b_adjoint(consts[C[k]], gd);
            break;
        case OP_max_n:
        case OP_min_n:
            share_among_ties(v, t->pool + C[k], B[k], vz[k], 1, 0, g, adj, 1, 0);
            share_among_ties(v, t->pool + C[k], B[k], vz[k], 1, 0, gd, adjd, 1, 0);
            break;
        default:
            break;
        }
    }
}

/* The first row of the run ending at active row hi (down to lo) that one loop
 * sweeps: rows at or past n_marked carry no marks, all active; below, the run
 * stops at a passive row. */
static int64_t active_run_start(const pyad_tape *t, int64_t lo, int64_t hi)
{
    int64_t m = t->n_marked;
    if (hi >= m)
        return lo > m ? lo : m;
    while (hi > lo && !row_passive(t, hi - 1))
        --hi;
    return hi;
}

/* The scalar rows hi down to lo (no special row among them), a run of active
 * rows at a time, so that no row loop tests activity marks. */
static void scalar_rows(const pyad_tape *t, const double *v, const double *vd, double *adj,
                        double *adjd, int64_t shift, int64_t lo, int64_t hi)
{
    while (lo <= hi) {
        if (row_passive(t, hi)) { /* passes nothing back (activity.c) */
            --hi;
            continue;
        }
        int64_t from = active_run_start(t, lo, hi);
        if (vd)
            scalar_second(t, v, vd, adj, adjd, shift, from, hi);
        else
            scalar_reverse(t, v, adj, shift, from, hi);
        hi = from - 1;
    }
}

/* The reverse step of block row *k (a fused run's, if one ends there), moving
 * *k past what it swept; vd and adjd NULL in a first-order sweep. */
static int block_step(const pyad_tape *t, const double *v, const double *vd, double *adj,
                      double *adjd, struct lazy_zeroing *z, int64_t *zero_k, int64_t *ri,
                      struct walk *w, int64_t *k)
{
    const struct fused_run *run = lazy_run_ending_at(z, ri, *k);
    if (run && fused_step(t, run, v, vd, adj, adjd, z, zero_k, w)) {
        *k = run->k0 - 1;
        return PYAD_OK;
    }
    int64_t bi = w->bi;
    int s = PYAD_OK;
    if (z->first && vd)
        block_second_first(t, bi, v, vd, adj, adjd, z->first);
    else if (z->first)
        block_reverse_first(t, bi, v, adj, z->first);
    else
        s = vd ? block_second(t, bi, 1, v, vd, adj, adjd) : block_reverse(t, bi, 1, v, adj);
    if (s)
        return s;
    if (z->plan)
        lazy_consumed(z, *k), z->first = 0;
    w->shift -= block_width(t, bi) - 1;
    w->block_k = block_row(t, --w->bi);
    --*k;
    return PYAD_OK;
}

/* One reverse sweep, first order (vd, adjd NULL) or forward-over-reverse. The
 * special rows, where more happens than a scalar row's step, are block rows
 * (with the fused runs ending at them) and rows with lazy blocks due; the walk
 * finds the next one and sweeps the scalar rows before it in one tight loop. */
static int reverse_walk(const pyad_tape *t, const double *v, const double *vd, double *adj,
                        double *adjd, struct lazy_zeroing *z, int64_t zero_k, double *scratch,
                        const struct fused_run *done)
{
    struct walk w = {t->n_blocks - 1, block_row(t, t->n_blocks - 1), t->n_slots - t->n_ops,
                     scratch, done};
    int64_t ri = z->plan ? z->plan->n_fused - 1 : -1;
    for (int64_t k = t->n_ops - 1; k >= 0;) {
        if (k == zero_k) /* lazy blocks that row k is the first to add to */
            zero_k = lazy_due(z, k);
        if (k == w.block_k) {
            int s = block_step(t, v, vd, adj, adjd, z, &zero_k, &ri, &w, &k);
            if (s)
                return s;
            continue;
        }
        int64_t stop = zero_k < k && zero_k > w.block_k ? zero_k : w.block_k;
        scalar_rows(t, v, vd, adj, adjd, w.shift, stop + 1, k);
        k = stop;
    }
    return PYAD_OK;
}

static int reverse(pyad_tape *t, const double *v, const double *u, double *adj, double *xbar,
                   int give_back)
{
    if (!t)
        return PYAD_ECLOSED;
    if (!adj || !xbar || (t->n_outputs && !u))
        return PYAD_EINVAL;
    int s = tape_begin_sweep(t);
    if (s)
        return s;
    struct lazy_zeroing z;
    int64_t zero_k = start_adjoints(t, adj, NULL, give_back, &z);
    double *scratch = fused_scratch(t);
    seed_outputs(t, u, adj);
    s = reverse_walk(t, v ? v : t->val, NULL, adj, NULL, &z, zero_k, scratch, NULL);
    free(scratch);
    if (s == PYAD_OK)
        gather_inputs(t, adj, xbar);
    tape_end_sweep(t);
    return s;
}

int pyad_reverse(pyad_tape *t, const double *v, const double *u, double *adj, double *xbar)
{
    return reverse(t, v, u, adj, xbar, 0);
}

int pyad_reverse_owned(pyad_tape *t, const double *v, const double *u, double *adj,
                       double *xbar)
{
    return reverse(t, v, u, adj, xbar, 1);
}

int pyad_reverse_second(pyad_tape *t, const double *v, const double *vd, const double *u,
                        double *adj, double *adjd, double *xbar, double *xbard)
{
    if (!t)
        return PYAD_ECLOSED;
    if (!v || !vd || !adj || !adjd || !xbar || !xbard || (t->n_outputs && !u))
        return PYAD_EINVAL;
    int s = tape_begin_sweep(t);
    if (s)
        return s;
    struct lazy_zeroing z;
    int64_t zero_k = start_adjoints(t, adj, adjd, 0, &z);
    double *scratch = fused_scratch(t);
    seed_outputs(t, u, adj);
    s = reverse_walk(t, v, vd, adj, adjd, &z, zero_k, scratch, NULL);
    free(scratch);
    if (s == PYAD_OK) {
        gather_inputs(t, adj, xbar);
        gather_inputs(t, adjd, xbard);
    }
    tape_end_sweep(t);
    return s;
}

/* Forward and reverse of a tape that is its inputs, then a run swept in one
 * pass and its tail (fused_inputs_direct): the run reads x, xd in place and
 * adds straight into xbar, xbard, so neither the inputs nor their adjoints
 * pass through the work arrays; only the summed row's values are stored, for
 * the sum and the tail's values. */
static int direct_one_pass(pyad_tape *t, const struct fused_run *one, const double *x,
                           const double *xd, const double *u, double *v, double *vd,
                           double *y, double *yd, double *xbar, double *xbard,
                           double *scratch, int64_t *bad_op)
{
    if (t->n_inputs > 0) {
        memset(xbar, 0, (size_t)t->n_inputs * sizeof *xbar);
        if (xbard)
            memset(xbard, 0, (size_t)t->n_inputs * sizeof *xbard);
    }
    double gs, gds;
    fused_tail_seed(t, one, u, &gs, &gds);
    const struct fused_io io = {x, xd, xbar, xbard, t->first[0]};
    /* the sum's value: for the outputs, or a guard on it */
    int want_sum = y || yd || fused_tail_guarded(t, one);
    fused_one_pass(t, one, v, vd, &io, gs, gds, want_sum, scratch);
    if (!want_sum)
        return PYAD_OK;
    int64_t after = one->k0 + one->n;
    int s = vd ? tangent_range(t, x, xd, v, vd, after, t->n_ops, bad_op)
               : forward_range(t, x, v, after, t->n_ops, bad_op);
    for (int64_t i = 0; s == PYAD_OK && i < t->n_outputs; ++i) {
        if (y)
            y[i] = v[t->outputs[i]];
        if (yd)
            yd[i] = vd[t->outputs[i]];
    }
    return s;
}

/* Forward and reverse in one call, at one point (vd, xd, adjd NULL: the
 * gradient; else forward-over-reverse): where the tape has fused runs, the
 * forward stores only what their reverse steps read (fused.h). */
static int forward_reverse(pyad_tape *t, const double *x, const double *xd, const double *u,
                           double *v, double *vd, double *adj, double *adjd, double *y,
                           double *yd, double *xbar, double *xbard, int64_t *bad_op)
{
    const struct adjoint_plan *p = adjoint_plan(t);
    double *scratch = fused_scratch(t);
    /* a run at the end whose sum's adjoint follows from the outputs' seeds
     * (fused_one_pass_fits): forward and reverse in one pass, after the rows
     * before it and the adjoint seeds */
    const struct fused_run *last = scratch ? &p->fused[p->n_fused - 1] : NULL;
    const struct fused_run *one = last && fused_one_pass_fits(t, last) ? last : NULL;
    if (one && fused_inputs_direct(t, one)) {
        int s = direct_one_pass(t, one, x, xd, u, v, vd, y, yd, xbar, xbard, scratch, bad_op);
        free(scratch);
        return s;
    }
    int64_t end = one ? one->k0 : t->n_ops;
    int s = scratch ? fused_forward_sweep(t, p->fused, p->n_fused - (one != NULL), end, x, xd,
                                          v, vd, scratch, bad_op)
          : vd      ? tangent_range(t, x, xd, v, vd, 0, end, bad_op)
                    : forward_range(t, x, v, 0, end, bad_op);
    struct lazy_zeroing z;
    int64_t zero_k = -1;
    if (s == PYAD_OK) {
        zero_k = start_adjoints(t, adj, adjd, 0, &z);
        seed_outputs(t, u, adj);
    }
    if (s == PYAD_OK && one) {
        if (zero_k >= one->k_last) /* its external operands' adjoints */
            zero_k = lazy_due(&z, one->k_last);
        double gs, gds; /* the sum's adjoint, through its tail from the seeds */
        fused_tail_seed(t, one, u, &gs, &gds);
        const struct fused_io io = {v, vd, adj, adjd, 0};
        fused_one_pass(t, one, v, vd, &io, gs, gds, 1, scratch);
        s = vd ? tangent_range(t, x, xd, v, vd, end + one->n, t->n_ops, bad_op)
               : forward_range(t, x, v, end + one->n, t->n_ops, bad_op);
    }
    if (s == PYAD_OK) {
        for (int64_t i = 0; i < t->n_outputs; ++i) {
            if (y)
                y[i] = v[t->outputs[i]];
            if (yd)
                yd[i] = vd[t->outputs[i]];
        }
        s = reverse_walk(t, v, vd, adj, adjd, &z, zero_k, scratch, one);
    }
    free(scratch);
    if (s == PYAD_OK) {
        gather_inputs(t, adj, xbar);
        if (xbard)
            gather_inputs(t, adjd, xbard);
    }
    return s;
}

int pyad_gradient(pyad_tape *t, const double *x, double *v, double *adj, double *y,
                  double *xbar, int64_t *bad_op)
{
    if (!t)
        return PYAD_ECLOSED;
    if (t->n_outputs != 1)
        return PYAD_EINVAL;
    if (!v || !adj || !xbar || !bad_op || (t->n_inputs && !x))
        return PYAD_EINVAL;
    int s = tape_begin_sweep(t);
    if (s)
        return s;
    const double one = 1.0;
    s = forward_reverse(t, x, NULL, &one, v, NULL, adj, NULL, y, NULL, xbar, NULL, bad_op);
    tape_end_sweep(t);
    return s;
}

int pyad_hvp(pyad_tape *t, const double *x, const double *xd, const double *u, double *v,
             double *vd, double *adj, double *adjd, double *y, double *yd, double *xbar,
             double *xbard, int64_t *bad_op)
{
    if (!t)
        return PYAD_ECLOSED;
    if (!v || !vd || !adj || !adjd || !xbar || !xbard || !bad_op
        || (t->n_inputs && (!x || !xd)) || (t->n_outputs && !u))
        return PYAD_EINVAL;
    int s = tape_begin_sweep(t);
    if (s)
        return s;
    s = forward_reverse(t, x, xd, u, v, vd, adj, adjd, y, yd, xbar, xbard, bad_op);
    tape_end_sweep(t);
    return s;
}
