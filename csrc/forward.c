/* Forward sweeps: values (zero order) and one tangent (first order).
 * In the registry's rules x, y are the operand values (y the constant of a
 * row with one) and xd, yd their tangents; see ops.def. */
#include <stddef.h>
#include <string.h>

#include "rules.h"
#include "special_rules.h"
#include "block.h"
#include "linalg_lu.h"
#include "linalg_sym.h"

/* Values of scalar rows begin .. end - 1 (no block row among them), row k's at
 * slot k + shift: nothing per row but the row's own step. */
static int scalar_forward(const pyad_tape *t, const double *x, double *v, int64_t shift,
                          int64_t begin, int64_t end, int64_t *bad_op)
{
    const uint8_t *op = t->op;
    const int32_t *A = t->arg_a, *B = t->arg_b, *C = t->arg_c;
    const double *consts = t->consts;
    double *vz = v + shift;
    for (int64_t k = begin; k < end; ++k) {
        switch (op[k]) {
#define SPECIAL(name, differentiable)
#define UNARY(name, numpy, operator, differentiable, value, d_x, dd_x) \
        case OP_##name: { double x = v[A[k]]; vz[k] = (value); break; }
#define BINARY(name, numpy, operator, cf, rcf, value, d_x, d_y, dd_x, dd_y) \
        case OP_##name: { double x = v[A[k]], y = v[B[k]]; vz[k] = (value); break; }
#define WITH_CONST(name, value, d_x, dd_x) \
        case OP_##name: { double x = v[A[k]], y = consts[B[k]]; vz[k] = (value); break; }
#define COMPARE(name, numpy, operator, cf, rcf, value) \
        case OP_##name: { double x = v[A[k]], y = v[B[k]]; vz[k] = (value) ? 1.0 : 0.0; break; }
#define COMPARE_C(name, value) \
        case OP_##name: { double x = v[A[k]], y = consts[B[k]]; vz[k] = (value) ? 1.0 : 0.0; break; }
#include "expand_ops.h"
        case OP_input: if (x) vz[k] = x[A[k]]; break;
        case OP_constant: vz[k] = consts[B[k]]; break;
        case OP_select: vz[k] = select_value(v[A[k]], v[B[k]], v[C[k]]); break;
        case OP_axpy_c: vz[k] = axpy_value(v[A[k]], consts[C[k]], v[B[k]]); break;
        case OP_max_n:
        case OP_min_n: vz[k] = extremum(v, t->pool + C[k], B[k], op[k] == OP_max_n, 1, 0); break;
        case OP_guard_true:
        case OP_guard_false:
            vz[k] = v[A[k]];
            if (!guard_holds(op[k], vz[k])) {
                *bad_op = k;
                return PYAD_EBRANCH;
            }
            break;
        }
    }
    return PYAD_OK;
}

int forward_range(const pyad_tape *t, const double *x, double *v,
                  int64_t begin, int64_t end, int64_t *bad_op)
{
    int64_t bi = block_search(t, begin), block_k = block_row(t, bi);
    int64_t shift = begin < end ? t->first[begin] - begin : 0; /* slot - row (block.h) */
    int s;
    for (int64_t k = begin; k < end;) {
        if (k == block_k) { /* a block row: one loop over its elements */
            if (block_is_source(t, bi))
                block_source(t, bi, x, v, 1, NULL, NULL, 1);
            else if ((s = block_values(t, bi, 1, v)))
                return s;
            /* a singular or non positive-definite matrix: Python names the row and the point */
            if (block_singular(t, bi, v, 1, 0) || linalg_sym_failed_here(t, bi, v)) {
                *bad_op = k;
                return PYAD_EBRANCH;
            }
            shift += block_width(t, bi) - 1;
            block_k = block_row(t, ++bi);
            ++k;
            continue;
        }
        int64_t stop = block_k > k && block_k < end ? block_k : end;
        if ((s = scalar_forward(t, x, v, shift, k, stop, bad_op)))
            return s;
        k = stop;
    }
    return PYAD_OK;
}

int passive_block(const pyad_tape *t, int64_t i, double *v, double *vd, int64_t p)
{
    int64_t f = t->first[block_at(t, i).row];
    memset(vd + f * p, 0, (size_t)(block_width(t, i) * p) * sizeof *vd);
    return block_values(t, i, 1, v);
}

static void gather_outputs(const pyad_tape *t, const double *v, double *y)
{
    if (y)
        for (int64_t i = 0; i < t->n_outputs; ++i)
            y[i] = v[t->outputs[i]];
}

int pyad_forward(pyad_tape *t, const double *x, double *v, double *y, int64_t *bad_op)
{
    if (!t)
        return PYAD_ECLOSED;
    if (!v || !bad_op || (t->n_inputs && !x))
        return PYAD_EINVAL;
    int s = tape_begin_sweep(t);
    if (s)
        return s;
    s = forward_range(t, x, v, 0, t->n_ops, bad_op);
    if (s == PYAD_OK)
        gather_outputs(t, v, y);
    tape_end_sweep(t);
    return s;
}

int tangent_range(const pyad_tape *t, const double *x, const double *xdot, double *v,
                  double *vd, int64_t begin, int64_t end, int64_t *bad_op)
{
    const uint8_t *op = t->op;
    const int32_t *A = t->arg_a, *B = t->arg_b, *C = t->arg_c;
    const double *consts = t->consts;
    int64_t bi = block_search(t, begin), block_k = block_row(t, bi);
    int64_t shift = begin < end ? t->first[begin] - begin : 0; /* slot - row (block.h) */
    for (int64_t k = begin; k < end; ++k) {
        if (k == block_k) { /* a block row: one loop over its elements */
            int s = PYAD_OK;
            if (block_is_source(t, bi))
                block_source(t, bi, x, v, 1, xdot, vd, 1);
            else if (row_passive(t, k))
                s = passive_block(t, bi, v, vd, 1);
            else
                s = block_tangent(t, bi, 1, v, vd);
            if (s)
                return s;
            if (block_singular(t, bi, v, 1, 0) || linalg_sym_failed_here(t, bi, v)) {
                *bad_op = k;
                return PYAD_EBRANCH;
            }
            shift += block_width(t, bi) - 1;
            block_k = block_row(t, ++bi);
            continue;
        }
        int64_t zs = k + shift;
        if (row_passive(t, k)) { /* its value only: no derivative reaches it */
            if (forward_range(t, x, v, k, k + 1, bad_op))
                return PYAD_EBRANCH;
            vd[zs] = 0.0;
            continue;
        }
        switch (op[k]) {
#define SPECIAL(name, differentiable)
#define UNARY(name, numpy, operator, differentiable, value, d_x, dd_x)                      \
        case OP_##name: {                                                                   \
            double x = v[A[k]], xd = vd[A[k]];                                              \
            double z = (value);                                                             \
            v[zs] = z;                                                                       \
            vd[zs] = scaled(d_x, xd);                                                        \
            break;                                                                          \
        }
#define BINARY(name, numpy, operator, cf, rcf, value, d_x, d_y, dd_x, dd_y)                 \
        case OP_##name: {                                                                   \
            double x = v[A[k]], y = v[B[k]], xd = vd[A[k]], yd = vd[B[k]];                  \
            double z = (value);                                                             \
            v[zs] = z;                                                                       \
            vd[zs] = scaled(d_x, xd) + scaled(d_y, yd);                                      \
            break;                                                                          \
        }
#define WITH_CONST(name, value, d_x, dd_x)                                                  \
        case OP_##name: {                                                                   \
            double x = v[A[k]], y = consts[B[k]], xd = vd[A[k]];                            \
            double z = (value);                                                             \
            v[zs] = z;                                                                       \
            vd[zs] = scaled(d_x, xd);                                                        \
            break;                                                                          \
        }
#define COMPARE(name, numpy, operator, cf, rcf, value)                                      \
        case OP_##name: {                                                                   \
            double x = v[A[k]], y = v[B[k]];                                                \
            v[zs] = (value) ? 1.0 : 0.0;                                                     \
            vd[zs] = 0.0;                                                                    \
            break;                                                                          \
        }
#define COMPARE_C(name, value)                                                              \
        case OP_##name: {                                                                   \
            double x = v[A[k]], y = consts[B[k]];                                           \
            v[zs] = (value) ? 1.0 : 0.0;                                                     \
            vd[zs] = 0.0;                                                                    \
            break;                                                                          \
        }
#include "expand_ops.h"
        case OP_input: v[zs] = x[A[k]]; vd[zs] = xdot[A[k]]; break;
        case OP_constant: v[zs] = consts[B[k]]; vd[zs] = 0.0; break;
        case OP_select:
            v[zs] = select_value(v[A[k]], v[B[k]], v[C[k]]);
            vd[zs] = select_value(v[A[k]], vd[B[k]], vd[C[k]]);
            break;
        case OP_axpy_c:
            v[zs] = axpy_value(v[A[k]], consts[C[k]], v[B[k]]);
            vd[zs] = axpy_tangent(vd[A[k]], consts[C[k]], vd[B[k]]);
            break;
        case OP_max_n:
        case OP_min_n: {
            const int32_t *idx = t->pool + C[k];
            double m = extremum(v, idx, B[k], op[k] == OP_max_n, 1, 0);
            v[zs] = m;
            vd[zs] = tied_mean(v, idx, B[k], m, 1, 0, vd, 1, 0);
            break;
        }
        case OP_guard_true:
        case OP_guard_false:
            v[zs] = v[A[k]];
            vd[zs] = 0.0;
            if (!guard_holds(op[k], v[zs])) {
                *bad_op = k;
                return PYAD_EBRANCH;
            }
            break;
        }
    }
    return PYAD_OK;
}

int pyad_forward_tangent(pyad_tape *t, const double *x, const double *xd,
                         double *v, double *vd, double *y, double *yd, int64_t *bad_op)
{
    if (!t)
        return PYAD_ECLOSED;
    if (!v || !vd || !bad_op || (t->n_inputs && (!x || !xd)))
        return PYAD_EINVAL;
    int s = tape_begin_sweep(t);
    if (s)
        return s;
    s = tangent_range(t, x, xd, v, vd, 0, t->n_ops, bad_op);
    if (s == PYAD_OK) {
        gather_outputs(t, v, y);
        gather_outputs(t, vd, yd);
    }
    tape_end_sweep(t);
    return s;
}
