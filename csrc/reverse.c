/* Reverse sweep: one adjoint (a vector-Jacobian product). */
#include <string.h>

#include "rules.h"
#include "sweep.h"
#include "variadic.h"

/* Zero the adjoints and seed each output with its weight in u. */
static void seed_outputs(const pyad_tape *t, const double *u, double *adj)
{
    memset(adj, 0, (size_t)t->n_ops * sizeof *adj);
    for (int64_t i = 0; i < t->n_outputs; ++i)
        adj[t->outputs[i]] += u[i];
}

static void gather_inputs(const pyad_tape *t, const double *adj, double *xbar)
{
    for (int64_t j = 0; j < t->n_inputs; ++j)
        xbar[j] = adj[t->inputs[j]];
}

static void reverse_range(const pyad_tape *t, const double *v, double *adj)
{
    const uint8_t *op = t->op;
    const int32_t *A = t->arg_a, *B = t->arg_b, *C = t->arg_c;
    const double *consts = t->consts;
    for (int64_t k = t->n_ops - 1; k >= 0; --k) {
        double g = adj[k];
        if (g == 0.0)
            continue; /* nothing flows back (see SCALED) */
        switch (op[k]) {
#define SPECIAL(name)
#define ADJOINT_UNARY(d_x, d_y) adj[A[k]] += g * (d_x);
#define ADJOINT_WITH_CONST(d_x, d_y) adj[A[k]] += g * (d_x);
#define ADJOINT_BINARY(d_x, d_y) adj[A[k]] += g * (d_x); adj[B[k]] += g * (d_y);
#define PRIMITIVE(name, kind, value, d_x, d_y, dd_x, dd_y)   \
        case OP_##name: {                                    \
            FETCH_##kind                                     \
            double z = v[k];                                 \
            (void)z;                                         \
            ADJOINT_##kind(d_x, d_y)                         \
            break;                                           \
        }
#define COMPARE(name, value)
#define COMPARE_C(name, value)
#include "expand_ops.h"
        case OP_select:
            adj[v[A[k]] != 0.0 ? B[k] : C[k]] += g;
            break;
        case OP_axpy_c:
            adj[A[k]] += g;
            adj[B[k]] += g * consts[C[k]];
            break;
        case OP_max_n:
        case OP_min_n:
            share_among_ties(v, t->pool + C[k], B[k], v[k], 1, 0, g, 0.0, adj, NULL);
            break;
        default: /* inputs, constants, comparisons and guards pass nothing back */
            break;
        }
    }
}

int pyad_reverse(pyad_tape *t, const double *v, const double *u, double *adj, double *xbar)
{
    if (!t)
        return PYAD_ECLOSED;
    if (!adj || !xbar || (t->n_outputs && !u))
        return PYAD_EINVAL;
    int s = tape_begin_sweep(t);
    if (s)
        return s;
    seed_outputs(t, u, adj);
    reverse_range(t, v ? v : t->val, adj);
    gather_inputs(t, adj, xbar);
    tape_end_sweep(t);
    return PYAD_OK;
}

static void reverse_second_range(const pyad_tape *t, const double *v, const double *vd,
                                 double *adj, double *adjd)
{
    const uint8_t *op = t->op;
    const int32_t *A = t->arg_a, *B = t->arg_b, *C = t->arg_c;
    const double *consts = t->consts;
    for (int64_t k = t->n_ops - 1; k >= 0; --k) {
        double g = adj[k], gd = adjd[k];
        if (g == 0.0 && gd == 0.0)
            continue;
        switch (op[k]) {
#define SPECIAL(name)
#define SECOND_UNARY(d_x, d_y, dd_x, dd_y)                          \
            { double p = (d_x); adj[A[k]] += SCALED(p, g); adjd[A[k]] += SCALED(p, gd) + SCALED(dd_x, g); }
#define SECOND_WITH_CONST SECOND_UNARY
#define SECOND_BINARY(d_x, d_y, dd_x, dd_y)                         \
            SECOND_UNARY(d_x, d_y, dd_x, dd_y)                      \
            { double q = (d_y); adj[B[k]] += SCALED(q, g); adjd[B[k]] += SCALED(q, gd) + SCALED(dd_y, g); }
#define PRIMITIVE(name, kind, value, d_x, d_y, dd_x, dd_y)          \
        case OP_##name: {                                           \
            FETCH_##kind TANGENT_##kind                             \
            double z = v[k];                                        \
            (void)z;                                      \
            SECOND_##kind(d_x, d_y, dd_x, dd_y)                     \
            break;                                                  \
        }
#define COMPARE(name, value)
#define COMPARE_C(name, value)
#include "expand_ops.h"
        case OP_select: {
            int64_t pick = v[A[k]] != 0.0 ? B[k] : C[k];
            adj[pick] += g;
            adjd[pick] += gd;
            break;
        }
        case OP_axpy_c:
            adj[A[k]] += g;
            adjd[A[k]] += gd;
            adj[B[k]] += SCALED(consts[C[k]], g);
            adjd[B[k]] += SCALED(consts[C[k]], gd);
            break;
        case OP_max_n:
        case OP_min_n: /* piecewise linear: no curvature term */
            share_among_ties(v, t->pool + C[k], B[k], v[k], 1, 0, g, gd, adj, adjd);
            break;
        default:
            break;
        }
    }
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
    seed_outputs(t, u, adj);
    memset(adjd, 0, (size_t)t->n_ops * sizeof *adjd);
    reverse_second_range(t, v, vd, adj, adjd);
    gather_inputs(t, adj, xbar);
    gather_inputs(t, adjd, xbard);
    tape_end_sweep(t);
    return PYAD_OK;
}

int pyad_gradient(pyad_tape *t, const double *x, double *v, double *adj, double *y,
                  double *xbar, int64_t *bad_op)
{
    if (!t)
        return PYAD_ECLOSED;
    if (t->n_outputs != 1)
        return PYAD_EINVAL;
    int s = pyad_forward(t, x, v, y, bad_op);
    if (s)
        return s;
    const double one = 1.0;
    return pyad_reverse(t, v, &one, adj, xbar);
}
