/* Vector sweeps at one point: p tangent directions or q adjoints in one pass.
 * Values are shared by all directions; tangents and adjoints are slot-major
 * (vd[k * p + j]) so the inner loop over directions is contiguous. */
#include <string.h>

#include "rules.h"
#include "special_rules.h"
#include "block.h"
#include "linalg_lu.h"
#include "linalg_sym.h"

int pyad_tangent_vector(pyad_tape *t, int64_t p, const double *x, const double *xd,
                        double *v, double *vd, double *y, double *yd, int64_t *bad_op)
{
    if (!t)
        return PYAD_ECLOSED;
    if (p < 1 || !v || !vd || !bad_op || (t->n_inputs && (!x || !xd)))
        return PYAD_EINVAL;
    int s = tape_begin_sweep(t);
    if (s)
        return s;
    const uint8_t *op = t->op;
    const int32_t *A = t->arg_a, *B = t->arg_b, *C = t->arg_c;
    const double *consts = t->consts;
    int64_t bi = 0, block_k = block_row(t, bi);
    int64_t shift = 0; /* slot - row (block.h) */
    for (int64_t k = 0; k < t->n_ops && s == PYAD_OK; ++k) {
        if (k == block_k) { /* a block row: one loop over its elements */
            if (block_is_source(t, bi))
                block_source(t, bi, x, v, 1, xd, vd, p);
            else if (row_passive(t, k))
                s = passive_block(t, bi, v, vd, p);
            else
                s = block_tangent_vector(t, bi, p, v, vd);
            if (s == PYAD_OK && (block_singular(t, bi, v, 1, 0) || linalg_sym_failed_here(t, bi, v))) {
                *bad_op = k;
                s = PYAD_EBRANCH;
            }
            shift += block_width(t, bi) - 1;
            block_k = block_row(t, ++bi);
            continue;
        }
        int64_t zs = k + shift;
        double *out = vd + zs * p;
        if (row_passive(t, k)) { /* its value only: no derivative reaches it */
            s = forward_range(t, x, v, k, k + 1, bad_op);
            memset(out, 0, (size_t)p * sizeof *out);
            continue;
        }
        const double *ta = vd + (int64_t)A[k] * p; /* every op has a slot in A */
        switch (op[k]) {
#define SPECIAL(name, differentiable)
#define UNARY(name, numpy, operator, differentiable, value, d_x, dd_x)                      \
        case OP_##name: {                                                                   \
            double x = v[A[k]];                                                             \
            double z = (value);                                                             \
            v[zs] = z;                                                                       \
            double dx = (d_x);                                                              \
            for (int64_t j = 0; j < p; ++j) out[j] = scaled(dx, ta[j]);                     \
            break;                                                                          \
        }
#define BINARY(name, numpy, operator, cf, rcf, value, d_x, d_y, dd_x, dd_y)                 \
        case OP_##name: {                                                                   \
            double x = v[A[k]], y = v[B[k]];                                                \
            double z = (value);                                                             \
            v[zs] = z;                                                                       \
            double dx = (d_x), dy = (d_y);                                                  \
            const double *tb = vd + (int64_t)B[k] * p;                                      \
            for (int64_t j = 0; j < p; ++j) out[j] = scaled(dx, ta[j]) + scaled(dy, tb[j]); \
            break;                                                                          \
        }
#define WITH_CONST(name, value, d_x, dd_x)                                                  \
        case OP_##name: {                                                                   \
            double x = v[A[k]], y = consts[B[k]];                                           \
            double z = (value);                                                             \
            v[zs] = z;                                                                       \
            double dx = (d_x);                                                              \
            for (int64_t j = 0; j < p; ++j) out[j] = scaled(dx, ta[j]);                     \
            break;                                                                          \
        }
#define COMPARE(name, numpy, operator, cf, rcf, value)                                      \
        case OP_##name: {                                                                   \
            double x = v[A[k]], y = v[B[k]];                                                \
            v[zs] = (value) ? 1.0 : 0.0;                                                     \
            memset(out, 0, (size_t)p * sizeof *out);                                        \
            break;                                                                          \
        }
#define COMPARE_C(name, value)                                                              \
        case OP_##name: {                                                                   \
            double x = v[A[k]], y = consts[B[k]];                                           \
            v[zs] = (value) ? 1.0 : 0.0;                                                     \
            memset(out, 0, (size_t)p * sizeof *out);                                        \
            break;                                                                          \
        }
#include "expand_ops.h"
        case OP_input:
            v[zs] = x[A[k]];
            for (int64_t j = 0; j < p; ++j)
                out[j] = xd[j * t->n_inputs + A[k]];
            break;
        case OP_constant:
            v[zs] = consts[B[k]];
            memset(out, 0, (size_t)p * sizeof *out);
            break;
        case OP_select: {
            int64_t pick = select_taken(v[A[k]], B[k], C[k]);
            v[zs] = v[pick];
            memcpy(out, vd + pick * p, (size_t)p * sizeof *out);
            break;
        }
        case OP_axpy_c: {
            double c = consts[C[k]];
            const double *tb = vd + (int64_t)B[k] * p;
            v[zs] = axpy_value(v[A[k]], c, v[B[k]]);
            for (int64_t j = 0; j < p; ++j)
                out[j] = axpy_tangent(ta[j], c, tb[j]);
            break;
        }
        case OP_max_n:
        case OP_min_n: {
            const int32_t *idx = t->pool + C[k];
            double m = extremum(v, idx, B[k], op[k] == OP_max_n, 1, 0);
            v[zs] = m;
            for (int64_t j = 0; j < p; ++j)
                out[j] = tied_mean(v, idx, B[k], m, 1, 0, vd, p, j);
            break;
        }
        case OP_guard_true:
        case OP_guard_false:
            v[zs] = v[A[k]];
            memset(out, 0, (size_t)p * sizeof *out);
            if (!guard_holds(op[k], v[zs])) {
                *bad_op = k;
                s = PYAD_EBRANCH;
            }
            break;
        }
    }
    if (s == PYAD_OK) {
        for (int64_t i = 0; i < t->n_outputs; ++i) {
            int64_t slot = t->outputs[i];
            if (y)
                y[i] = v[slot];
            if (yd)
                for (int64_t j = 0; j < p; ++j)
                    yd[j * t->n_outputs + i] = vd[slot * p + j];
        }
    }
    tape_end_sweep(t);
    return s;
}

int pyad_reverse_vector(pyad_tape *t, int64_t q, const double *v, const double *u,
                        double *adj, double *xbar)
{
    if (!t)
        return PYAD_ECLOSED;
    if (q < 1 || !adj || !xbar || (t->n_outputs && !u))
        return PYAD_EINVAL;
    int s = tape_begin_sweep(t);
    if (s)
        return s;
    if (!v)
        v = t->val;
    const uint8_t *op = t->op;
    const int32_t *A = t->arg_a, *B = t->arg_b, *C = t->arg_c;
    const double *consts = t->consts;
    memset(adj, 0, (size_t)(t->n_slots * q) * sizeof *adj);
    for (int64_t i = 0; i < t->n_outputs; ++i)
        for (int64_t j = 0; j < q; ++j)
            adj[(int64_t)t->outputs[i] * q + j] += u[j * t->n_outputs + i];
    int64_t bi = t->n_blocks - 1, block_k = block_row(t, bi);
    int64_t shift = t->n_slots - t->n_ops; /* slot - row (block.h) */
    for (int64_t k = t->n_ops - 1; k >= 0; --k) {
        if (k == block_k) { /* a block row: one loop over its elements */
            if ((s = block_reverse_vector(t, bi, q, v, adj))) {
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
        const double *g = adj + zs * q;
        double *ga = adj + (int64_t)A[k] * q;
        switch (op[k]) {
#define SPECIAL(name, differentiable)
#define UNARY(name, numpy, operator, differentiable, value, d_x, dd_x)                      \
        case OP_##name: {                                                                   \
            double x = v[A[k]], z = v[zs];                                                   \
            (void)x; (void)z;                                                               \
            double dx = (d_x);                                                              \
            for (int64_t j = 0; j < q; ++j) ga[j] += scaled(dx, g[j]);                      \
            break;                                                                          \
        }
#define BINARY(name, numpy, operator, cf, rcf, value, d_x, d_y, dd_x, dd_y)                 \
        case OP_##name: {                                                                   \
            double x = v[A[k]], y = v[B[k]], z = v[zs];                                      \
            (void)x; (void)y; (void)z;                                                      \
            double dx = (d_x), dy = (d_y);                                                  \
            double *gb = adj + (int64_t)B[k] * q;                                           \
            for (int64_t j = 0; j < q; ++j) ga[j] += scaled(dx, g[j]);                      \
            for (int64_t j = 0; j < q; ++j) gb[j] += scaled(dy, g[j]);                      \
            break;                                                                          \
        }
#define WITH_CONST(name, value, d_x, dd_x)                                                  \
        case OP_##name: {                                                                   \
            double x = v[A[k]], y = consts[B[k]], z = v[zs];                                 \
            (void)x; (void)y; (void)z;                                                      \
            double dx = (d_x);                                                              \
            for (int64_t j = 0; j < q; ++j) ga[j] += scaled(dx, g[j]);                      \
            break;                                                                          \
        }
#define COMPARE(name, numpy, operator, cf, rcf, value)
#define COMPARE_C(name, value)
#include "expand_ops.h"
        case OP_select: {
            double *gp = adj + (int64_t)select_taken(v[A[k]], B[k], C[k]) * q;
            for (int64_t j = 0; j < q; ++j)
                gp[j] += g[j];
            break;
        }
        case OP_axpy_c: {
            double c = consts[C[k]];
            double *gb = adj + (int64_t)B[k] * q;
            for (int64_t j = 0; j < q; ++j) {
                ga[j] += g[j];
                gb[j] += axpy_b_adjoint(c, g[j]);
            }
            break;
        }
        case OP_max_n:
        case OP_min_n:
            for (int64_t j = 0; j < q; ++j)
                share_among_ties(v, t->pool + C[k], B[k], v[zs], 1, 0, g[j], adj, q, j);
            break;
        default:
            break;
        }
    }
    for (int64_t i = 0; i < t->n_inputs; ++i)
        for (int64_t j = 0; j < q; ++j)
            xbar[j * t->n_inputs + i] = adj[(int64_t)t->inputs[i] * q + j];
    tape_end_sweep(t);
    return PYAD_OK;
}

/* Forward-over-reverse for p directions at once: one adjoint (seeded with u),
 * p adjoint tangents. v, vd come from pyad_tangent_vector with the same p.
 * xbard[j * n_inputs + i] is (H xd_j)_i for a scalar output with u = 1. */
int pyad_second_vector(pyad_tape *t, int64_t p, const double *v, const double *vd,
                       const double *u, double *adj, double *adjd, double *xbar,
                       double *xbard)
{
    if (!t)
        return PYAD_ECLOSED;
    if (p < 1 || !v || !vd || !adj || !adjd || !xbar || !xbard || (t->n_outputs && !u))
        return PYAD_EINVAL;
    int s = tape_begin_sweep(t);
    if (s)
        return s;
    const uint8_t *op = t->op;
    const int32_t *A = t->arg_a, *B = t->arg_b, *C = t->arg_c;
    const double *consts = t->consts;
    memset(adj, 0, (size_t)t->n_slots * sizeof *adj);
    memset(adjd, 0, (size_t)(t->n_slots * p) * sizeof *adjd);
    for (int64_t i = 0; i < t->n_outputs; ++i)
        adj[t->outputs[i]] += u[i];
    int64_t bi = t->n_blocks - 1, block_k = block_row(t, bi);
    int64_t shift = t->n_slots - t->n_ops; /* slot - row (block.h) */
    for (int64_t k = t->n_ops - 1; k >= 0; --k) {
        if (k == block_k) { /* a block row: one loop over its elements */
            if ((s = block_second_vector(t, bi, p, v, vd, adj, adjd))) {
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
        double g = adj[zs];
        const double *gd = adjd + zs * p;
        const double *ta = vd + (int64_t)A[k] * p;
        double *gda = adjd + (int64_t)A[k] * p;
        switch (op[k]) {
#define SPECIAL(name, differentiable)
#define UNARY(name, numpy, operator, differentiable, value, d_x, dd_x)                      \
        case OP_##name: {                                                                   \
            double x = v[A[k]], z = v[zs];                                                   \
            (void)x; (void)z;                                                               \
            double dx = (d_x);                                                              \
            adj[A[k]] += scaled(dx, g);                                                     \
            for (int64_t j = 0; j < p; ++j) {                                               \
                double xd = ta[j];                                                          \
                (void)xd;                                                                   \
                gda[j] += scaled(dx, gd[j]) + scaled(dd_x, g);                              \
            }                                                                               \
            break;                                                                          \
        }
#define BINARY(name, numpy, operator, cf, rcf, value, d_x, d_y, dd_x, dd_y)                 \
        case OP_##name: {                                                                   \
            double x = v[A[k]], y = v[B[k]], z = v[zs];                                      \
            (void)x; (void)y; (void)z;                                                      \
            double dx = (d_x), dy = (d_y);                                                  \
            adj[A[k]] += scaled(dx, g);                                                     \
            adj[B[k]] += scaled(dy, g);                                                     \
            const double *tb = vd + (int64_t)B[k] * p;                                      \
            double *gdb = adjd + (int64_t)B[k] * p;                                         \
            for (int64_t j = 0; j < p; ++j) {                                               \
                double xd = ta[j], yd = tb[j];                                              \
                (void)xd; (void)yd;                                                         \
                double ddx = (dd_x), ddy = (dd_y);                                          \
                gda[j] += scaled(dx, gd[j]) + scaled(ddx, g);                               \
                gdb[j] += scaled(dy, gd[j]) + scaled(ddy, g);                               \
            }                                                                               \
            break;                                                                          \
        }
#define WITH_CONST(name, value, d_x, dd_x)                                                  \
        case OP_##name: {                                                                   \
            double x = v[A[k]], y = consts[B[k]], z = v[zs];                                 \
            (void)x; (void)y; (void)z;                                                      \
            double dx = (d_x);                                                              \
            adj[A[k]] += scaled(dx, g);                                                     \
            for (int64_t j = 0; j < p; ++j) {                                               \
                double xd = ta[j];                                                          \
                (void)xd;                                                                   \
                gda[j] += scaled(dx, gd[j]) + scaled(dd_x, g);                              \
            }                                                                               \
            break;                                                                          \
        }
#define COMPARE(name, numpy, operator, cf, rcf, value)
#define COMPARE_C(name, value)
#include "expand_ops.h"
        case OP_select: {
            int64_t pick = select_taken(v[A[k]], B[k], C[k]);
            adj[pick] += g;
            for (int64_t j = 0; j < p; ++j)
                adjd[pick * p + j] += gd[j];
            break;
        }
        case OP_axpy_c: {
            double c = consts[C[k]];
            double *gdb = adjd + (int64_t)B[k] * p;
            adj[A[k]] += g;
            adj[B[k]] += axpy_b_adjoint(c, g);
            for (int64_t j = 0; j < p; ++j) {
                gda[j] += gd[j];
                gdb[j] += axpy_b_adjoint(c, gd[j]);
            }
            break;
        }
        case OP_max_n:
        case OP_min_n:
            share_among_ties(v, t->pool + C[k], B[k], v[zs], 1, 0, g, adj, 1, 0);
            for (int64_t j = 0; j < p; ++j)
                share_among_ties(v, t->pool + C[k], B[k], v[zs], 1, 0, gd[j], adjd, p, j);
            break;
        default:
            break;
        }
    }
    for (int64_t i = 0; i < t->n_inputs; ++i) {
        int64_t slot = t->inputs[i];
        xbar[i] = adj[slot];
        for (int64_t j = 0; j < p; ++j)
            xbard[j * t->n_inputs + i] = adjd[slot * p + j];
    }
    tape_end_sweep(t);
    return PYAD_OK;
}
