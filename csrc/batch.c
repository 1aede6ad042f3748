/* Batched sweeps: the same tape at nb points in one pass. Every slot holds nb
 * values (slot-major, v[k * nb + b]), so each op is one loop over the points,
 * which the compiler vectorizes. A guard that fails at a point marks that point
 * (bad[b] = the op) and the sweep goes on for the others. */
#include <string.h>

#include "rules.h"
#include "special_rules.h"
#include "block.h"
#include "linalg_lu.h"
#include "linalg_sym.h"
#include "vector_math.h"

/* Operand fetches at point b: slot s of point b is v[s * nb + b]. */
#define AT(array, slot) (array)[(int64_t)(slot) * nb + b]

#define FOR_POINTS for (int64_t b = 0; b < nb; ++b)

static int check_batch(const pyad_tape *t, int64_t nb)
{
    if (!t)
        return PYAD_ECLOSED;
    return nb < 1 ? PYAD_EINVAL : PYAD_OK;
}

static void mark_guards(const pyad_tape *t, int64_t k, int64_t nb, const double *v,
                        int64_t *bad)
{
    const double *c = v + (int64_t)t->arg_a[k] * nb;
    FOR_POINTS {
        if (!guard_holds(t->op[k], c[b]) && bad[b] < 0)
            bad[b] = k;
    }
}

static int64_t count_bad(const int64_t *bad, int64_t nb)
{
    int64_t n = 0;
    FOR_POINTS n += bad[b] >= 0;
    return n;
}

static void gather_batch_outputs(const pyad_tape *t, int64_t nb, const double *v, double *y)
{
    if (!y)
        return;
    for (int64_t i = 0; i < t->n_outputs; ++i) {
        const double *src = v + (int64_t)t->outputs[i] * nb;
        FOR_POINTS y[b * t->n_outputs + i] = src[b];
    }
}

VECTOR_CLONES
static int batch_values(const pyad_tape *t, int64_t nb, const double *x, double *v,
                        double *vd, const double *xd, int64_t *bad)
{
    const uint8_t *op = t->op;
    const int32_t *A = t->arg_a, *B = t->arg_b, *C = t->arg_c;
    const double *consts = t->consts;
    int64_t n_in = t->n_inputs;
    int64_t bi = 0, block_k = block_row(t, bi);
    int64_t shift = 0; /* slot - row (block.h) */
    for (int64_t k = 0; k < t->n_ops; ++k) {
        if (k == block_k) { /* a block row: one loop over its elements */
            int s = PYAD_OK;
            if (block_is_source(t, bi))
                block_source(t, bi, x, v, nb, xd, vd, nb);
            else if (vd)
                s = block_tangent(t, bi, nb, v, vd);
            else
                s = block_values(t, bi, nb, v);
            if (s)
                return s;
            if (block_is_lu(t, bi)) /* a singular matrix fails its point as a guard would */
                FOR_POINTS {
                    if (bad[b] < 0 && lu_singular(t, bi, v, nb, b))
                        bad[b] = k;
                }
            if (block_is_linalg_sym(t, bi)) /* failed points are marked as guards are */
                linalg_sym_failed(t, bi, nb, v, bad);
            shift += block_width(t, bi) - 1;
            block_k = block_row(t, ++bi);
            continue;
        }
        int64_t zs = k + shift;
        double *out = v + zs * nb;
        double *outd = vd ? vd + zs * nb : NULL;
        switch (op[k]) {
/* The partials are computed unconditionally (then scaled): a call inside a
 * condition would keep the loop over points from being vectorized. */
#define SPECIAL(name, differentiable)
#define UNARY(name, numpy, operator, differentiable, value, d_x, dd_x)                      \
        case OP_##name:                                                                     \
            if (outd) {                                                                     \
                FOR_POINTS {                                                                \
                    double x = AT(v, A[k]), xd = AT(vd, A[k]);                              \
                    double z = (value);                                                     \
                    out[b] = z;                                                             \
                    double da = (d_x);                                                      \
                    outd[b] = scaled(da, xd);                                               \
                }                                                                           \
            } else {                                                                        \
                FOR_POINTS { double x = AT(v, A[k]); out[b] = (value); }                    \
            }                                                                               \
            break;
#define BINARY(name, numpy, operator, cf, rcf, value, d_x, d_y, dd_x, dd_y)                 \
        case OP_##name:                                                                     \
            if (outd) {                                                                     \
                FOR_POINTS {                                                                \
                    double x = AT(v, A[k]), y = AT(v, B[k]);                                \
                    double xd = AT(vd, A[k]), yd = AT(vd, B[k]);                            \
                    double z = (value);                                                     \
                    out[b] = z;                                                             \
                    double da = (d_x), db = (d_y);                                          \
                    outd[b] = scaled(da, xd) + scaled(db, yd);                              \
                }                                                                           \
            } else {                                                                        \
                FOR_POINTS { double x = AT(v, A[k]), y = AT(v, B[k]); out[b] = (value); }   \
            }                                                                               \
            break;
#define WITH_CONST(name, value, d_x, dd_x)                                                  \
        case OP_##name:                                                                     \
            if (outd) {                                                                     \
                FOR_POINTS {                                                                \
                    double x = AT(v, A[k]), y = consts[B[k]], xd = AT(vd, A[k]);            \
                    double z = (value);                                                     \
                    out[b] = z;                                                             \
                    double da = (d_x);                                                      \
                    outd[b] = scaled(da, xd);                                               \
                }                                                                           \
            } else {                                                                        \
                FOR_POINTS { double x = AT(v, A[k]), y = consts[B[k]]; out[b] = (value); }  \
            }                                                                               \
            break;
#define COMPARE(name, numpy, operator, cf, rcf, value)                                      \
        case OP_##name:                                                                     \
            FOR_POINTS { double x = AT(v, A[k]), y = AT(v, B[k]); out[b] = (value) ? 1.0 : 0.0; } \
            goto no_tangent;
#define COMPARE_C(name, value)                                                              \
        case OP_##name:                                                                     \
            FOR_POINTS { double x = AT(v, A[k]), y = consts[B[k]]; out[b] = (value) ? 1.0 : 0.0; } \
            goto no_tangent;
#include "expand_ops.h"
        case OP_input:
            FOR_POINTS out[b] = x[b * n_in + A[k]];
            if (outd)
                FOR_POINTS outd[b] = xd[b * n_in + A[k]];
            break;
        case OP_constant:
            FOR_POINTS out[b] = consts[B[k]];
            goto no_tangent;
        case OP_select: {
            const double *c = v + (int64_t)A[k] * nb;
            const double *pa = v + (int64_t)B[k] * nb, *pb = v + (int64_t)C[k] * nb;
            FOR_POINTS out[b] = select_value(c[b], pa[b], pb[b]);
            if (outd) {
                const double *da = vd + (int64_t)B[k] * nb, *db = vd + (int64_t)C[k] * nb;
                FOR_POINTS outd[b] = select_value(c[b], da[b], db[b]);
            }
            break;
        }
        case OP_axpy_c: {
            double c = consts[C[k]];
            const double *pa = v + (int64_t)A[k] * nb, *pb = v + (int64_t)B[k] * nb;
            FOR_POINTS out[b] = axpy_value(pa[b], c, pb[b]);
            if (outd) {
                const double *da = vd + (int64_t)A[k] * nb, *db = vd + (int64_t)B[k] * nb;
                FOR_POINTS outd[b] = axpy_tangent(da[b], c, db[b]);
            }
            break;
        }
        case OP_max_n:
        case OP_min_n: {
            const int32_t *idx = t->pool + C[k];
            FOR_POINTS {
                double m = extremum(v, idx, B[k], op[k] == OP_max_n, nb, b);
                out[b] = m;
                if (outd)
                    outd[b] = tied_mean(v, idx, B[k], m, nb, b, vd, nb, b);
            }
            break;
        }
        case OP_guard_true:
        case OP_guard_false:
            memcpy(out, v + (int64_t)A[k] * nb, (size_t)nb * sizeof *out);
            mark_guards(t, k, nb, v, bad);
            goto no_tangent;
        }
        continue;
    no_tangent:
        if (outd)
            memset(outd, 0, (size_t)nb * sizeof *outd);
    }
    return PYAD_OK;
}

int pyad_forward_batch(pyad_tape *t, int64_t nb, const double *x, double *v, double *y,
                       int64_t *bad, int64_t *n_bad)
{
    int s = check_batch(t, nb);
    if (s)
        return s;
    if (!v || !bad || !n_bad || (t->n_inputs && !x))
        return PYAD_EINVAL;
    if ((s = tape_begin_sweep(t)))
        return s;
    FOR_POINTS bad[b] = -1;
    s = batch_values(t, nb, x, v, NULL, NULL, bad);
    if (s == PYAD_OK)
        gather_batch_outputs(t, nb, v, y);
    *n_bad = count_bad(bad, nb);
    tape_end_sweep(t);
    return s;
}

int pyad_tangent_batch(pyad_tape *t, int64_t nb, const double *x, const double *xd, double *v,
                       double *vd, double *y, double *yd, int64_t *bad, int64_t *n_bad)
{
    int s = check_batch(t, nb);
    if (s)
        return s;
    if (!v || !vd || !bad || !n_bad || (t->n_inputs && (!x || !xd)))
        return PYAD_EINVAL;
    if ((s = tape_begin_sweep(t)))
        return s;
    FOR_POINTS bad[b] = -1;
    s = batch_values(t, nb, x, v, vd, xd, bad);
    if (s == PYAD_OK)
        gather_batch_outputs(t, nb, v, y);
    if (s == PYAD_OK)
        gather_batch_outputs(t, nb, vd, yd);
    *n_bad = count_bad(bad, nb);
    tape_end_sweep(t);
    return s;
}

static void seed_batch(const pyad_tape *t, int64_t nb, const double *u, double *adj)
{
    memset(adj, 0, (size_t)(t->n_slots * nb) * sizeof *adj);
    for (int64_t i = 0; i < t->n_outputs; ++i) {
        double *dst = adj + (int64_t)t->outputs[i] * nb;
        FOR_POINTS dst[b] += u[b * t->n_outputs + i];
    }
}

static void gather_batch_inputs(const pyad_tape *t, int64_t nb, const double *adj, double *xbar)
{
    for (int64_t i = 0; i < t->n_inputs; ++i) {
        const double *src = adj + (int64_t)t->inputs[i] * nb;
        FOR_POINTS xbar[b * t->n_inputs + i] = src[b];
    }
}

VECTOR_CLONES
int pyad_reverse_batch(pyad_tape *t, int64_t nb, const double *v, const double *u, double *adj,
                       double *xbar)
{
    int s = check_batch(t, nb);
    if (s)
        return s;
    if (!v || !adj || !xbar || (t->n_outputs && !u))
        return PYAD_EINVAL;
    if ((s = tape_begin_sweep(t)))
        return s;
    const uint8_t *op = t->op;
    const int32_t *A = t->arg_a, *B = t->arg_b, *C = t->arg_c;
    const double *consts = t->consts;
    seed_batch(t, nb, u, adj);
    int64_t bi = t->n_blocks - 1, block_k = block_row(t, bi);
    int64_t shift = t->n_slots - t->n_ops; /* slot - row (block.h) */
    for (int64_t k = t->n_ops - 1; k >= 0; --k) {
        if (k == block_k) { /* a block row: one loop over its elements */
            if ((s = block_reverse(t, bi, nb, v, adj))) {
                tape_end_sweep(t);
                return s;
            }
            shift -= block_width(t, bi) - 1;
            block_k = block_row(t, --bi);
            continue;
        }
        int64_t zs = k + shift;
        if (row_passive(t, k))
            continue;
        const double *g = adj + zs * nb;
        double *ga = adj + (int64_t)A[k] * nb;
        switch (op[k]) {
#define SPECIAL(name, differentiable)
#define UNARY(name, numpy, operator, differentiable, value, d_x, dd_x)                      \
        case OP_##name:                                                                     \
            FOR_POINTS {                                                                    \
                double x = AT(v, A[k]), z = AT(v, zs);                                       \
                (void)x; (void)z;                                                           \
                double da = (d_x);                                                          \
                ga[b] += scaled(da, g[b]);                                                  \
            }                                                                               \
            break;
#define BINARY(name, numpy, operator, cf, rcf, value, d_x, d_y, dd_x, dd_y)                 \
        case OP_##name: {                                                                   \
            double *gb = adj + (int64_t)B[k] * nb;                                          \
            FOR_POINTS {                                                                    \
                double x = AT(v, A[k]), y = AT(v, B[k]), z = AT(v, zs);                      \
                (void)x; (void)y; (void)z;                                                  \
                double da = (d_x), db = (d_y);                                              \
                ga[b] += scaled(da, g[b]);                                                  \
                gb[b] += scaled(db, g[b]);                                                  \
            }                                                                               \
            break;                                                                          \
        }
#define WITH_CONST(name, value, d_x, dd_x)                                                  \
        case OP_##name:                                                                     \
            FOR_POINTS {                                                                    \
                double x = AT(v, A[k]), y = consts[B[k]], z = AT(v, zs);                     \
                (void)x; (void)y; (void)z;                                                  \
                double da = (d_x);                                                          \
                ga[b] += scaled(da, g[b]);                                                  \
            }                                                                               \
            break;
#define COMPARE(name, numpy, operator, cf, rcf, value)
#define COMPARE_C(name, value)
#include "expand_ops.h"
        case OP_select: {
            const double *c = v + (int64_t)A[k] * nb;
            double *pa = adj + (int64_t)B[k] * nb, *pb = adj + (int64_t)C[k] * nb;
            FOR_POINTS {
                pa[b] += select_value(c[b], g[b], 0.0);
                pb[b] += select_value(c[b], 0.0, g[b]);
            }
            break;
        }
        case OP_axpy_c: {
            double c = consts[C[k]];
            double *gb = adj + (int64_t)B[k] * nb;
            FOR_POINTS {
                ga[b] += g[b];
                gb[b] += axpy_b_adjoint(c, g[b]);
            }
            break;
        }
        case OP_max_n:
        case OP_min_n:
            FOR_POINTS share_among_ties(v, t->pool + C[k], B[k], AT(v, zs), nb, b, g[b], adj, nb, b);
            break;
        default:
            break;
        }
    }
    gather_batch_inputs(t, nb, adj, xbar);
    tape_end_sweep(t);
    return PYAD_OK;
}

VECTOR_CLONES
int pyad_second_batch(pyad_tape *t, int64_t nb, const double *v, const double *vd,
                      const double *u, double *adj, double *adjd, double *xbar, double *xbard)
{
    int s = check_batch(t, nb);
    if (s)
        return s;
    if (!v || !vd || !adj || !adjd || !xbar || !xbard || (t->n_outputs && !u))
        return PYAD_EINVAL;
    if ((s = tape_begin_sweep(t)))
        return s;
    const uint8_t *op = t->op;
    const int32_t *A = t->arg_a, *B = t->arg_b, *C = t->arg_c;
    const double *consts = t->consts;
    seed_batch(t, nb, u, adj);
    memset(adjd, 0, (size_t)(t->n_slots * nb) * sizeof *adjd);
    int64_t bi = t->n_blocks - 1, block_k = block_row(t, bi);
    int64_t shift = t->n_slots - t->n_ops; /* slot - row (block.h) */
    for (int64_t k = t->n_ops - 1; k >= 0; --k) {
        if (k == block_k) { /* a block row: one loop over its elements */
            if ((s = block_second(t, bi, nb, v, vd, adj, adjd))) {
                tape_end_sweep(t);
                return s;
            }
            shift -= block_width(t, bi) - 1;
            block_k = block_row(t, --bi);
            continue;
        }
        int64_t zs = k + shift;
        if (row_passive(t, k))
            continue;
        const double *g = adj + zs * nb, *gd = adjd + zs * nb;
        double *ga = adj + (int64_t)A[k] * nb, *gda = adjd + (int64_t)A[k] * nb;
        switch (op[k]) {
#define SPECIAL(name, differentiable)
#define UNARY(name, numpy, operator, differentiable, value, d_x, dd_x)                      \
        case OP_##name:                                                                     \
            FOR_POINTS {                                                                    \
                double x = AT(v, A[k]), xd = AT(vd, A[k]), z = AT(v, zs);                    \
                (void)x; (void)xd; (void)z;                                                 \
                double da = (d_x), dda = (dd_x);                                            \
                ga[b] += scaled(da, g[b]);                                                  \
                gda[b] += scaled(da, gd[b]) + scaled(dda, g[b]);                            \
            }                                                                               \
            break;
#define BINARY(name, numpy, operator, cf, rcf, value, d_x, d_y, dd_x, dd_y)                 \
        case OP_##name: {                                                                   \
            double *gb = adj + (int64_t)B[k] * nb, *gdb = adjd + (int64_t)B[k] * nb;        \
            FOR_POINTS {                                                                    \
                double x = AT(v, A[k]), y = AT(v, B[k]), z = AT(v, zs);                      \
                double xd = AT(vd, A[k]), yd = AT(vd, B[k]);                                \
                (void)x; (void)y; (void)z; (void)xd; (void)yd;                              \
                double da = (d_x), db = (d_y), dda = (dd_x), ddb = (dd_y);                  \
                ga[b] += scaled(da, g[b]);                                                  \
                gb[b] += scaled(db, g[b]);                                                  \
                gda[b] += scaled(da, gd[b]) + scaled(dda, g[b]);                            \
                gdb[b] += scaled(db, gd[b]) + scaled(ddb, g[b]);                            \
            }                                                                               \
            break;                                                                          \
        }
#define WITH_CONST(name, value, d_x, dd_x)                                                  \
        case OP_##name:                                                                     \
            FOR_POINTS {                                                                    \
                double x = AT(v, A[k]), y = consts[B[k]], xd = AT(vd, A[k]), z = AT(v, zs);  \
                (void)x; (void)y; (void)xd; (void)z;                                        \
                double da = (d_x), dda = (dd_x);                                            \
                ga[b] += scaled(da, g[b]);                                                  \
                gda[b] += scaled(da, gd[b]) + scaled(dda, g[b]);                            \
            }                                                                               \
            break;
#define COMPARE(name, numpy, operator, cf, rcf, value)
#define COMPARE_C(name, value)
#include "expand_ops.h"
        case OP_select: {
            const double *c = v + (int64_t)A[k] * nb;
            double *pa = adj + (int64_t)B[k] * nb, *pb = adj + (int64_t)C[k] * nb;
            double *qa = adjd + (int64_t)B[k] * nb, *qb = adjd + (int64_t)C[k] * nb;
            FOR_POINTS {
                pa[b] += select_value(c[b], g[b], 0.0);
                qa[b] += select_value(c[b], gd[b], 0.0);
                pb[b] += select_value(c[b], 0.0, g[b]);
                qb[b] += select_value(c[b], 0.0, gd[b]);
            }
            break;
        }
        case OP_axpy_c: {
            double c = consts[C[k]];
            double *gb = adj + (int64_t)B[k] * nb, *gdb = adjd + (int64_t)B[k] * nb;
            FOR_POINTS {
                ga[b] += g[b];
                gb[b] += axpy_b_adjoint(c, g[b]);
                gda[b] += gd[b];
                gdb[b] += axpy_b_adjoint(c, gd[b]);
            }
            break;
        }
        case OP_max_n:
        case OP_min_n:
            FOR_POINTS {
                share_among_ties(v, t->pool + C[k], B[k], AT(v, zs), nb, b, g[b], adj, nb, b);
                share_among_ties(v, t->pool + C[k], B[k], AT(v, zs), nb, b, gd[b], adjd, nb, b);
            }
            break;
        default:
            break;
        }
    }
    gather_batch_inputs(t, nb, adj, xbar);
    gather_batch_inputs(t, nb, adjd, xbard);
    tape_end_sweep(t);
    return PYAD_OK;
}

#undef AT
#undef FOR_POINTS
