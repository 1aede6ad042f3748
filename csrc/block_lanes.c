/* Batched sweeps of elementwise block rows. Slot s holds the batch's nb points at
 * s * nb .. s * nb + nb - 1, so element e of a row is a run of nb contiguous
 * doubles, and a row whose operands all have unit stride is one run of w * nb.
 * Each kernel loops over runs and, inside, over contiguous doubles only, which
 * the compiler vectorizes, calling glibc's vector math (vector_math.h) as
 * batch.c does for scalar rows. The one-point sweeps (block.c) keep the scalar
 * libm, so a batch may differ from a loop of one-point sweeps in the last bits,
 * exactly as scalar rows in a batch already do (README, "Conventions").
 *
 * Reverse sweeps take the runs from last to first, so an operand read by many
 * elements (stride 0) receives their contributions in the order scalar rows
 * would add them. Within a run, the two operands of a binary row (or select's
 * two branches) name either the same slot (x * x) or disjoint ones; the same
 * slot gets both contributions in one loop, in the scalar rows' order. */
#include <stddef.h>

#include "lanes.h"
#include "rules.h"
#include "special_rules.h"
#include "sweep.h"
#include "vector_math.h"

/* m runs of n doubles. Run e of the result starts at e * dz of z (and of zd, g,
 * gd), of operand a at e * da of va (ta, ga, qa), and so on; its constant is
 * k[e * dk]. Arrays a sweep does not use are NULL and never indexed. */
struct runs {
    int op;
    int64_t m, n, dz, da, db, dc, dk;
    double *z, *zd;
    const double *g, *gd;
    const double *va, *vb, *vc, *ta, *tb, *tc;
    double *ga, *gb, *gc, *qa, *qb, *qc;
    const double *k;
};

/* The loop over one run's doubles: no loop-carried dependence (results and
 * operands are distinct slots; operands that may be one slot are handled by
 * the caller of each loop), so no run-time overlap checks. */
#define LANES _Pragma("GCC ivdep") for (int64_t j = 0; j < n; ++j)
#define RUNS for (int64_t e = 0; e < r->m; ++e)
#define RUNS_DOWN for (int64_t e = r->m - 1; e >= 0; --e)
/* Run e's offsets into each array, and its constant. */
#define RUN_OFFSETS                                                                         \
    const int64_t oz = e * r->dz, oa = e * r->da, ob = e * r->db, oc = e * r->dc;           \
    const double y_run = r->k ? r->k[e * r->dk] : 0.0;                                      \
    (void)ob; (void)oc; (void)y_run
#define LOCALS                                                                              \
    const int64_t n = r->n;                                                                 \
    double *z = r->z, *zd = r->zd;                                                          \
    const double *g = r->g, *gd = r->gd;                                                    \
    const double *va = r->va, *vb = r->vb, *vc = r->vc, *ta = r->ta, *tb = r->tb;           \
    const double *tc = r->tc;                                                               \
    double *ga = r->ga, *gb = r->gb, *gc = r->gc, *qa = r->qa, *qb = r->qb, *qc = r->qc;    \
    (void)z; (void)zd; (void)g; (void)gd; (void)vb; (void)vc; (void)ta; (void)tb;           \
    (void)tc; (void)ga; (void)gb; (void)gc; (void)qa; (void)qb; (void)qc

VECTOR_CLONES
static void runs_values(const struct runs *r)
{
    LOCALS;
    switch (r->op) {
#define SPECIAL(name, differentiable)
#define UNARY(name, numpy, operator, differentiable, value, d_x, dd_x)                      \
    case OP_##name:                                                                         \
        RUNS { RUN_OFFSETS; LANES { double x = va[oa + j]; z[oz + j] = (value); } }         \
        break;
#define BINARY(name, numpy, operator, cf, rcf, value, d_x, d_y, dd_x, dd_y)                 \
    case OP_##name:                                                                         \
        RUNS {                                                                              \
            RUN_OFFSETS;                                                                    \
            LANES { double x = va[oa + j], y = vb[ob + j]; z[oz + j] = (value); }           \
        }                                                                                   \
        break;
#define WITH_CONST(name, value, d_x, dd_x)                                                  \
    case OP_##name:                                                                         \
        RUNS {                                                                              \
            RUN_OFFSETS;                                                                    \
            const double y = y_run;                                                         \
            LANES { double x = va[oa + j]; z[oz + j] = (value); }                           \
        }                                                                                   \
        break;
#define COMPARE(name, numpy, operator, cf, rcf, value)                                      \
    case OP_##name:                                                                         \
        RUNS {                                                                              \
            RUN_OFFSETS;                                                                    \
            LANES { double x = va[oa + j], y = vb[ob + j]; z[oz + j] = (value) ? 1.0 : 0.0; } \
        }                                                                                   \
        break;
#define COMPARE_C(name, value)                                                              \
    case OP_##name:                                                                         \
        RUNS {                                                                              \
            RUN_OFFSETS;                                                                    \
            const double y = y_run;                                                         \
            LANES { double x = va[oa + j]; z[oz + j] = (value) ? 1.0 : 0.0; }               \
        }                                                                                   \
        break;
#include "expand_ops.h"
    case OP_select:
        RUNS {
            RUN_OFFSETS;
            LANES z[oz + j] = select_value(va[oa + j], vb[ob + j], vc[oc + j]);
        }
        break;
    }
}

/* Values and tangents; the derivative rules may name z, the result. */
VECTOR_CLONES
static void runs_tangent(const struct runs *r)
{
    LOCALS;
    double *zv = z;
    switch (r->op) {
#define SPECIAL(name, differentiable)
#define UNARY(name, numpy, operator, differentiable, value, d_x, dd_x)                      \
    case OP_##name:                                                                         \
        RUNS {                                                                              \
            RUN_OFFSETS;                                                                    \
            LANES {                                                                         \
                double x = va[oa + j], xd = ta[oa + j], z = (value);                        \
                zv[oz + j] = z;                                                             \
                double da = (d_x);                                                          \
                zd[oz + j] = scaled(da, xd);                                                \
            }                                                                               \
        }                                                                                   \
        break;
#define BINARY(name, numpy, operator, cf, rcf, value, d_x, d_y, dd_x, dd_y)                 \
    case OP_##name:                                                                         \
        RUNS {                                                                              \
            RUN_OFFSETS;                                                                    \
            LANES {                                                                         \
                double x = va[oa + j], y = vb[ob + j], xd = ta[oa + j], yd = tb[ob + j];    \
                double z = (value);                                                         \
                zv[oz + j] = z;                                                             \
                double da = (d_x), db = (d_y);                                              \
                zd[oz + j] = scaled(da, xd) + scaled(db, yd);                               \
            }                                                                               \
        }                                                                                   \
        break;
#define WITH_CONST(name, value, d_x, dd_x)                                                  \
    case OP_##name:                                                                         \
        RUNS {                                                                              \
            RUN_OFFSETS;                                                                    \
            const double y = y_run;                                                         \
            LANES {                                                                         \
                double x = va[oa + j], xd = ta[oa + j], z = (value);                        \
                zv[oz + j] = z;                                                             \
                double da = (d_x);                                                          \
                zd[oz + j] = scaled(da, xd);                                                \
            }                                                                               \
        }                                                                                   \
        break;
#define COMPARE(name, numpy, operator, cf, rcf, value)                                      \
    case OP_##name:                                                                         \
        RUNS {                                                                              \
            RUN_OFFSETS;                                                                    \
            LANES {                                                                         \
                double x = va[oa + j], y = vb[ob + j];                                      \
                zv[oz + j] = (value) ? 1.0 : 0.0;                                           \
                zd[oz + j] = 0.0;                                                           \
            }                                                                               \
        }                                                                                   \
        break;
#define COMPARE_C(name, value)                                                              \
    case OP_##name:                                                                         \
        RUNS {                                                                              \
            RUN_OFFSETS;                                                                    \
            const double y = y_run;                                                         \
            LANES {                                                                         \
                double x = va[oa + j];                                                      \
                zv[oz + j] = (value) ? 1.0 : 0.0;                                           \
                zd[oz + j] = 0.0;                                                           \
            }                                                                               \
        }                                                                                   \
        break;
#include "expand_ops.h"
    case OP_select:
        RUNS {
            RUN_OFFSETS;
            LANES {
                double cond = va[oa + j];
                zv[oz + j] = select_value(cond, vb[ob + j], vc[oc + j]);
                zd[oz + j] = select_value(cond, tb[ob + j], tc[oc + j]);
            }
        }
        break;
    }
}

/* Adjoints. Where both operands of a run are one slot, its two contributions
 * are added in one loop, first a's then b's, as the scalar rows add them. */
VECTOR_CLONES
static void runs_reverse(const struct runs *r)
{
    LOCALS;
    const double *zv = z;
    switch (r->op) {
#define SPECIAL(name, differentiable)
#define UNARY(name, numpy, operator, differentiable, value, d_x, dd_x)                      \
    case OP_##name:                                                                         \
        RUNS_DOWN {                                                                         \
            RUN_OFFSETS;                                                                    \
            LANES {                                                                         \
                double x = va[oa + j], z = zv[oz + j];                                      \
                (void)x; (void)z;                                                           \
                double da = (d_x);                                                          \
                ga[oa + j] += scaled(da, g[oz + j]);                                        \
            }                                                                               \
        }                                                                                   \
        break;
#define BINARY_ADJOINTS(d_x, d_y, add)                                                      \
    LANES {                                                                                 \
        double x = va[oa + j], y = vb[ob + j], z = zv[oz + j];                              \
        (void)x; (void)y; (void)z;                                                          \
        double da = (d_x), db = (d_y);                                                      \
        add                                                                                 \
    }
#define BINARY(name, numpy, operator, cf, rcf, value, d_x, d_y, dd_x, dd_y)                 \
    case OP_##name:                                                                         \
        RUNS_DOWN {                                                                         \
            RUN_OFFSETS;                                                                    \
            if (ga + oa == gb + ob) {                                                       \
                BINARY_ADJOINTS(d_x, d_y, {                                                 \
                    double s = ga[oa + j] + scaled(da, g[oz + j]);                          \
                    ga[oa + j] = s + scaled(db, g[oz + j]);                                 \
                })                                                                          \
            } else {                                                                        \
                BINARY_ADJOINTS(d_x, d_y, {                                                 \
                    ga[oa + j] += scaled(da, g[oz + j]);                                    \
                    gb[ob + j] += scaled(db, g[oz + j]);                                    \
                })                                                                          \
            }                                                                               \
        }                                                                                   \
        break;
#define WITH_CONST(name, value, d_x, dd_x)                                                  \
    case OP_##name:                                                                         \
        RUNS_DOWN {                                                                         \
            RUN_OFFSETS;                                                                    \
            const double y = y_run;                                                         \
            LANES {                                                                         \
                double x = va[oa + j], z = zv[oz + j];                                      \
                (void)x; (void)y; (void)z;                                                  \
                double da = (d_x);                                                          \
                ga[oa + j] += scaled(da, g[oz + j]);                                        \
            }                                                                               \
        }                                                                                   \
        break;
#define COMPARE(name, numpy, operator, cf, rcf, value)
#define COMPARE_C(name, value)
#include "expand_ops.h"
    case OP_select: /* one branch takes each lane's adjoint: one slot or two, no overlap */
        RUNS_DOWN {
            RUN_OFFSETS;
            if (gb + ob == gc + oc) {
                LANES gb[ob + j] += g[oz + j];
            } else {
                LANES {
                    double cond = va[oa + j];
                    gb[ob + j] += select_value(cond, g[oz + j], 0.0);
                    gc[oc + j] += select_value(cond, 0.0, g[oz + j]);
                }
            }
        }
        break;
    default: /* comparisons pass nothing back */
        break;
    }
}

/* Adjoints and their tangents (forward over reverse). */
VECTOR_CLONES
static void runs_second(const struct runs *r)
{
    LOCALS;
    const double *zv = z;
    switch (r->op) {
#define SPECIAL(name, differentiable)
#define UNARY(name, numpy, operator, differentiable, value, d_x, dd_x)                      \
    case OP_##name:                                                                         \
        RUNS_DOWN {                                                                         \
            RUN_OFFSETS;                                                                    \
            LANES {                                                                         \
                double x = va[oa + j], xd = ta[oa + j], z = zv[oz + j];                     \
                (void)x; (void)xd; (void)z;                                                 \
                double da = (d_x), dda = (dd_x);                                            \
                ga[oa + j] += scaled(da, g[oz + j]);                                        \
                qa[oa + j] += scaled(da, gd[oz + j]) + scaled(dda, g[oz + j]);              \
            }                                                                               \
        }                                                                                   \
        break;
#define BINARY_SECOND(d_x, d_y, dd_x, dd_y, add)                                            \
    LANES {                                                                                 \
        double x = va[oa + j], y = vb[ob + j], z = zv[oz + j];                              \
        double xd = ta[oa + j], yd = tb[ob + j];                                            \
        (void)x; (void)y; (void)z; (void)xd; (void)yd;                                      \
        double da = (d_x), db = (d_y), dda = (dd_x), ddb = (dd_y);                          \
        double pa = scaled(da, g[oz + j]), pb = scaled(db, g[oz + j]);                      \
        double qa_ = scaled(da, gd[oz + j]) + scaled(dda, g[oz + j]);                       \
        double qb_ = scaled(db, gd[oz + j]) + scaled(ddb, g[oz + j]);                       \
        add                                                                                 \
    }
#define BINARY(name, numpy, operator, cf, rcf, value, d_x, d_y, dd_x, dd_y)                 \
    case OP_##name:                                                                         \
        RUNS_DOWN {                                                                         \
            RUN_OFFSETS;                                                                    \
            if (ga + oa == gb + ob) {                                                       \
                BINARY_SECOND(d_x, d_y, dd_x, dd_y, {                                       \
                    double s = ga[oa + j] + pa;                                             \
                    double t = qa[oa + j] + qa_;                                            \
                    ga[oa + j] = s + pb;                                                    \
                    qa[oa + j] = t + qb_;                                                   \
                })                                                                          \
            } else {                                                                        \
                BINARY_SECOND(d_x, d_y, dd_x, dd_y, {                                       \
                    ga[oa + j] += pa;                                                       \
                    qa[oa + j] += qa_;                                                      \
                    gb[ob + j] += pb;                                                       \
                    qb[ob + j] += qb_;                                                      \
                })                                                                          \
            }                                                                               \
        }                                                                                   \
        break;
#define WITH_CONST(name, value, d_x, dd_x)                                                  \
    case OP_##name:                                                                         \
        RUNS_DOWN {                                                                         \
            RUN_OFFSETS;                                                                    \
            const double y = y_run;                                                         \
            LANES {                                                                         \
                double x = va[oa + j], xd = ta[oa + j], z = zv[oz + j];                     \
                (void)x; (void)y; (void)xd; (void)z;                                        \
                double da = (d_x), dda = (dd_x);                                            \
                ga[oa + j] += scaled(da, g[oz + j]);                                        \
                qa[oa + j] += scaled(da, gd[oz + j]) + scaled(dda, g[oz + j]);              \
            }                                                                               \
        }                                                                                   \
        break;
#define COMPARE(name, numpy, operator, cf, rcf, value)
#define COMPARE_C(name, value)
#include "expand_ops.h"
    case OP_select:
        RUNS_DOWN {
            RUN_OFFSETS;
            if (gb + ob == gc + oc) {
                LANES {
                    gb[ob + j] += g[oz + j];
                    qb[ob + j] += gd[oz + j];
                }
            } else {
                LANES {
                    double cond = va[oa + j];
                    gb[ob + j] += select_value(cond, g[oz + j], 0.0);
                    qb[ob + j] += select_value(cond, gd[oz + j], 0.0);
                    gc[oc + j] += select_value(cond, 0.0, g[oz + j]);
                    qc[oc + j] += select_value(cond, 0.0, gd[oz + j]);
                }
            }
        }
        break;
    default:
        break;
    }
}

/* Lane 0 of slot s in a work array, or NULL for an array the sweep does not use
 * (or an operand field the row does not have). */
static double *lane0(const double *base, int64_t slot, int64_t lanes, int used)
{
    return used && base ? (double *)base + slot * lanes : NULL;
}

/* Whether the w-slot runs from a and from b are the same slots or disjoint ones
 * (so one run of w * lanes doubles never adds into slots the other reads). */
static int same_or_apart(int64_t a, int64_t b, int64_t w)
{
    return a == b || a + w <= b || b + w <= a;
}

void block_lanes(const pyad_tape *t, int64_t i, int64_t lanes, const double *v,
                 const double *vd, const double *adj, const double *adjd)
{
    struct block bl = block_at(t, i);
    int op = t->op[bl.row], kind = pyad_op_kind(op);
    int b_slot = kind == PYAD_KIND_BINARY || kind == PYAD_KIND_COMPARE || op == OP_select;
    int c_slot = op == OP_select;
    int b_const = kind == PYAD_KIND_WITH_CONST || kind == PYAD_KIND_COMPARE_C;
    int64_t z = t->first[bl.row], a = t->arg_a[bl.row], b = t->arg_b[bl.row],
            c = t->arg_c[bl.row];
    int unit = bl.sa == 1 && (!b_slot || bl.sb == 1) && (!c_slot || bl.sc == 1)
               && (!b_const || bl.sk == 0);
    if (unit && adj) /* the adjoints added to may not overlap in part */
        unit = op == OP_select ? same_or_apart(b, c, bl.w)
                               : !b_slot || same_or_apart(a, b, bl.w);
    int64_t m = unit ? 1 : bl.w, n = unit ? bl.w * lanes : lanes;
    int tangent = vd && !adj;
    struct runs r = {
        .op = op, .m = m, .n = n,
        .dz = lanes, .da = bl.sa * lanes, .db = bl.sb * lanes, .dc = bl.sc * lanes,
        .dk = bl.sk,
        .z = lane0(v, z, lanes, 1), .zd = lane0(vd, z, lanes, tangent),
        .g = lane0(adj, z, lanes, 1), .gd = lane0(adjd, z, lanes, 1),
        .va = lane0(v, a, lanes, 1), .vb = lane0(v, b, lanes, b_slot),
        .vc = lane0(v, c, lanes, c_slot),
        .ta = lane0(vd, a, lanes, 1), .tb = lane0(vd, b, lanes, b_slot),
        .tc = lane0(vd, c, lanes, c_slot),
        .ga = lane0(adj, a, lanes, 1), .gb = lane0(adj, b, lanes, b_slot),
        .gc = lane0(adj, c, lanes, c_slot),
        .qa = lane0(adjd, a, lanes, 1), .qb = lane0(adjd, b, lanes, b_slot),
        .qc = lane0(adjd, c, lanes, c_slot),
        .k = b_const ? t->consts + b : NULL,
    };
    if (adjd)
        runs_second(&r);
    else if (adj)
        runs_reverse(&r);
    else if (vd)
        runs_tangent(&r);
    else
        runs_values(&r);
}
