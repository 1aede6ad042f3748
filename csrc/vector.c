/* Vector sweeps at one point: p tangent directions or q adjoints in one pass.
 * Values are shared by all directions; tangents and adjoints are slot-major
 * (vd[k * p + j]) so the inner loop over directions is contiguous. */
#include <string.h>

#include "rules.h"
#include "sweep.h"
#include "variadic.h"

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
    for (int64_t k = 0; k < t->n_ops && s == PYAD_OK; ++k) {
        double *out = vd + k * p;
        const double *ta = vd + (int64_t)A[k] * p; /* every op has a slot in A */
        switch (op[k]) {
#define SPECIAL(name)
#define LANES_UNARY(d_x, d_y) for (int64_t j = 0; j < p; ++j) out[j] = SCALED(dx, ta[j]);
#define LANES_WITH_CONST LANES_UNARY
#define LANES_BINARY(d_x, d_y)                                              \
            {                                                               \
                const double *tb = vd + (int64_t)B[k] * p;                  \
                for (int64_t j = 0; j < p; ++j) out[j] = SCALED(dx, ta[j]) + SCALED(dy, tb[j]); \
            }
#define PRIMITIVE(name, kind, value, d_x, d_y, dd_x, dd_y)          \
        case OP_##name: {                                           \
            FETCH_##kind                                            \
            double z = (value);                                     \
            v[k] = z;                                               \
            double dx = (d_x), dy = (d_y);                          \
            (void)dy;                                               \
            LANES_##kind(d_x, d_y)                                  \
            break;                                                  \
        }
#define COMPARE(name, value) \
        case OP_##name: { FETCH_BINARY v[k] = (value) ? 1.0 : 0.0; memset(out, 0, (size_t)p * sizeof *out); break; }
#define COMPARE_C(name, value) \
        case OP_##name: { FETCH_WITH_CONST v[k] = (value) ? 1.0 : 0.0; memset(out, 0, (size_t)p * sizeof *out); break; }
#include "expand_ops.h"
        case OP_input:
            v[k] = x[A[k]];
            for (int64_t j = 0; j < p; ++j)
                out[j] = xd[j * t->n_inputs + A[k]];
            break;
        case OP_constant:
            v[k] = consts[B[k]];
            memset(out, 0, (size_t)p * sizeof *out);
            break;
        case OP_select: {
            int64_t pick = v[A[k]] != 0.0 ? B[k] : C[k];
            v[k] = v[pick];
            memcpy(out, vd + pick * p, (size_t)p * sizeof *out);
            break;
        }
        case OP_axpy_c: {
            double c = consts[C[k]];
            const double *tb = vd + (int64_t)B[k] * p;
            v[k] = v[A[k]] + c * v[B[k]];
            for (int64_t j = 0; j < p; ++j)
                out[j] = ta[j] + SCALED(c, tb[j]);
            break;
        }
        case OP_max_n:
        case OP_min_n: {
            const int32_t *idx = t->pool + C[k];
            double m = extremum(v, idx, B[k], op[k] == OP_max_n, 1, 0);
            double c = (double)tie_count(v, idx, B[k], m, 1, 0);
            v[k] = m;
            memset(out, 0, (size_t)p * sizeof *out);
            for (int64_t i = 0; i < B[k]; ++i)
                if (is_tie(v[idx[i]], m))
                    for (int64_t j = 0; j < p; ++j)
                        out[j] += vd[(int64_t)idx[i] * p + j];
            for (int64_t j = 0; j < p; ++j)
                out[j] /= c;
            break;
        }
        case OP_guard_true:
        case OP_guard_false:
            v[k] = v[A[k]];
            memset(out, 0, (size_t)p * sizeof *out);
            if ((v[k] != 0.0) != (op[k] == OP_guard_true)) {
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
    memset(adj, 0, (size_t)(t->n_ops * q) * sizeof *adj);
    for (int64_t i = 0; i < t->n_outputs; ++i)
        for (int64_t j = 0; j < q; ++j)
            adj[(int64_t)t->outputs[i] * q + j] += u[j * t->n_outputs + i];
    for (int64_t k = t->n_ops - 1; k >= 0; --k) {
        const double *g = adj + k * q;
        double *ga = adj + (int64_t)A[k] * q;
        switch (op[k]) {
#define SPECIAL(name)
#define ADJ_LANES_UNARY for (int64_t j = 0; j < q; ++j) ga[j] += SCALED(dx, g[j]);
#define ADJ_LANES_WITH_CONST ADJ_LANES_UNARY
#define ADJ_LANES_BINARY                                                    \
            ADJ_LANES_UNARY                                                 \
            {                                                               \
                double *gb = adj + (int64_t)B[k] * q;                       \
                for (int64_t j = 0; j < q; ++j) gb[j] += SCALED(dy, g[j]);  \
            }
#define PRIMITIVE(name, kind, value, d_x, d_y, dd_x, dd_y)          \
        case OP_##name: {                                           \
            FETCH_##kind                                            \
            double z = v[k];                                        \
            (void)z;                                                \
            double dx = (d_x), dy = (d_y);                          \
            (void)dy;                                               \
            ADJ_LANES_##kind                                        \
            break;                                                  \
        }
#define COMPARE(name, value)
#define COMPARE_C(name, value)
#include "expand_ops.h"
        case OP_select: {
            double *gp = adj + (int64_t)(v[A[k]] != 0.0 ? B[k] : C[k]) * q;
            for (int64_t j = 0; j < q; ++j)
                gp[j] += g[j];
            break;
        }
        case OP_axpy_c: {
            double c = consts[C[k]];
            double *gb = adj + (int64_t)B[k] * q;
            for (int64_t j = 0; j < q; ++j) {
                ga[j] += g[j];
                gb[j] += SCALED(c, g[j]);
            }
            break;
        }
        case OP_max_n:
        case OP_min_n: {
            const int32_t *idx = t->pool + C[k];
            double c = (double)tie_count(v, idx, B[k], v[k], 1, 0);
            for (int64_t i = 0; i < B[k]; ++i)
                if (is_tie(v[idx[i]], v[k]))
                    for (int64_t j = 0; j < q; ++j)
                        adj[(int64_t)idx[i] * q + j] += g[j] / c;
            break;
        }
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
    memset(adj, 0, (size_t)t->n_ops * sizeof *adj);
    memset(adjd, 0, (size_t)(t->n_ops * p) * sizeof *adjd);
    for (int64_t i = 0; i < t->n_outputs; ++i)
        adj[t->outputs[i]] += u[i];
    for (int64_t k = t->n_ops - 1; k >= 0; --k) {
        double g = adj[k];
        const double *gd = adjd + k * p;
        const double *ta = vd + (int64_t)A[k] * p;
        double *gda = adjd + (int64_t)A[k] * p;
        switch (op[k]) {
#define SPECIAL(name)
#define SECOND_LANES_UNARY(dd_x, dd_y)                                  \
            adj[A[k]] += SCALED(dx, g);                                 \
            for (int64_t j = 0; j < p; ++j) {                           \
                double xd = ta[j], yd = 0.0;                            \
                (void)xd; (void)yd;                                     \
                double ddx = (dd_x);                                    \
                gda[j] += SCALED(dx, gd[j]) + SCALED(ddx, g);           \
            }
#define SECOND_LANES_WITH_CONST SECOND_LANES_UNARY
#define SECOND_LANES_BINARY(dd_x, dd_y)                                 \
            adj[A[k]] += SCALED(dx, g);                                 \
            adj[B[k]] += SCALED(dy, g);                                 \
            const double *tb = vd + (int64_t)B[k] * p;                  \
            double *gdb = adjd + (int64_t)B[k] * p;                     \
            for (int64_t j = 0; j < p; ++j) {                           \
                double xd = ta[j], yd = tb[j];                          \
                (void)xd; (void)yd;                                     \
                double ddx = (dd_x), ddy = (dd_y);                      \
                gda[j] += SCALED(dx, gd[j]) + SCALED(ddx, g);           \
                gdb[j] += SCALED(dy, gd[j]) + SCALED(ddy, g);           \
            }
#define PRIMITIVE(name, kind, value, d_x, d_y, dd_x, dd_y)          \
        case OP_##name: {                                           \
            FETCH_##kind                                            \
            double z = v[k];                                        \
            (void)z;                                                \
            double dx = (d_x), dy = (d_y);                          \
            (void)dy;                                               \
            SECOND_LANES_##kind(dd_x, dd_y)                         \
            break;                                                  \
        }
#define COMPARE(name, value)
#define COMPARE_C(name, value)
#include "expand_ops.h"
        case OP_select: {
            int64_t pick = v[A[k]] != 0.0 ? B[k] : C[k];
            adj[pick] += g;
            for (int64_t j = 0; j < p; ++j)
                adjd[pick * p + j] += gd[j];
            break;
        }
        case OP_axpy_c: {
            double c = consts[C[k]];
            double *gdb = adjd + (int64_t)B[k] * p;
            adj[A[k]] += g;
            adj[B[k]] += SCALED(c, g);
            for (int64_t j = 0; j < p; ++j) {
                gda[j] += gd[j];
                gdb[j] += SCALED(c, gd[j]);
            }
            break;
        }
        case OP_max_n:
        case OP_min_n: {
            const int32_t *idx = t->pool + C[k];
            double c = (double)tie_count(v, idx, B[k], v[k], 1, 0);
            for (int64_t i = 0; i < B[k]; ++i)
                if (is_tie(v[idx[i]], v[k])) {
                    adj[idx[i]] += g / c;
                    for (int64_t j = 0; j < p; ++j)
                        adjd[(int64_t)idx[i] * p + j] += gd[j] / c;
                }
            break;
        }
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
