/* Block rows in every sweep: each kernel runs one block row's elements (or, in
 * the batched sweeps, its elements times the points) in one loop, with the
 * registry's rules expanded once per kind. In the single-point and batched
 * sweeps an operand is a pointer plus a stride; a loop whose strides are all 1
 * gets its own copy with the strides written as constants, so the compiler
 * vectorizes it. Reverse loops run over the elements from last to first and add
 * in the order the equivalent scalar rows would (a stride-0 operand receives
 * the sum of its elements' contributions, bit for bit as per-element rows).
 *
 * Values: arithmetic is the scalar rows' own, bit for bit. Transcendental
 * functions (tanh, exp, log, sin, ...) are the exception: a block row computes
 * them with glibc's vector math where the build has it (array_math.h), within
 * 4 ulp, as numpy's SIMD loops are, so an array row agrees with numpy and with
 * the equivalent scalar rows to a few ulp, not bit for bit. Every sweep that
 * computes a block row's values (recording, replay, tangent, vector tangent)
 * goes through the same vector call per element, so they agree bit for bit
 * with one another, which guards rely on. */
#include <string.h>

#include "array_math.h"
#include "block.h"
#include "custom.h"
#include "gather.h"
#include "lanes.h"
#include "linalg_lu.h"
#include "linalg_sym.h"
#include "product.h"
#include "run.h"
#include "rules.h"
#include "special_rules.h"

/* No SIMD declarations of the libm here (batch.c has them for scalar rows): a
 * loop the compiler vectorizes with them hands its tail to the scalar libm, so
 * an element's value would depend on its position. The transcendental values
 * come from array_math.c instead, the same call for every element. The kernels
 * are still compiled for AVX2 as well (4 doubles a step), picked at load time. */
#ifdef PYAD_VECTOR_MATH
#define VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define VECTOR_CLONES
#endif

int64_t block_search(const pyad_tape *t, int64_t row)
{
    int64_t lo = 0, hi = t->n_blocks;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (t->blocks[mid * BLOCK_FIELDS + BLK_ROW] < row)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void block_source(const pyad_tape *t, int64_t i, const double *x, double *v, int64_t lanes,
                  const double *xd, double *vd, int64_t tlanes)
{
    struct block bl = block_at(t, i);
    int64_t f = t->first[bl.row], n_in = t->n_inputs;
    if (t->op[bl.row] == OP_constant) {
        const double *k = t->consts + t->arg_b[bl.row];
        for (int64_t e = 0; e < bl.w; ++e)
            for (int64_t j = 0; j < lanes; ++j)
                v[(f + e) * lanes + j] = k[e];
        if (vd)
            memset(vd + f * tlanes, 0, (size_t)(bl.w * tlanes) * sizeof *vd);
        return;
    }
    int64_t a = t->arg_a[bl.row];
    if (x && lanes == 1) /* one point: the inputs are one contiguous run of x */
        memcpy(v + f, x + a, (size_t)bl.w * sizeof *v);
    else if (x)
        for (int64_t e = 0; e < bl.w; ++e)
            for (int64_t j = 0; j < lanes; ++j)
                v[(f + e) * lanes + j] = x[a + e + j * n_in];
    if (vd && tlanes == 1)
        memcpy(vd + f, xd + a, (size_t)bl.w * sizeof *vd);
    else if (vd)
        for (int64_t e = 0; e < bl.w; ++e)
            for (int64_t j = 0; j < tlanes; ++j)
                vd[(f + e) * tlanes + j] = xd[a + e + j * n_in];
}

int block_input_adjoints(const pyad_tape *t, const double *adj, double *xbar)
{
    int64_t copied = 0;
    for (int64_t i = 0; i < t->n_blocks; ++i) {
        struct block bl = block_at(t, i);
        if (t->op[bl.row] != OP_input)
            continue;
        memcpy(xbar + t->arg_a[bl.row], adj + t->first[bl.row], (size_t)bl.w * sizeof *xbar);
        copied += bl.w;
    }
    return copied == t->n_inputs;
}

/* ---- single-point and batched sweeps: a run of n elements ---- */

#define UP for (int64_t j = 0; j < n; ++j)
#define DOWN for (int64_t j = n - 1; j >= 0; --j)
/* The loop `body`, in a copy with unit strides where `unit` holds. */
#define UNIT_OR_STRIDED(unit, shadow, loop, ...)                                            \
    if (unit) {                                                                             \
        shadow loop { __VA_ARGS__ }                                                         \
    } else {                                                                                \
        loop { __VA_ARGS__ }                                                                \
    }
#define A1 const int64_t sa = 1;
#define AB1 const int64_t sa = 1; const int64_t sb = 1;
#define AK1 const int64_t sa = 1; const int64_t sk = 0;
#define ONE_A sa == 1
#define ONE_AB sa == 1 && sb == 1
#define ONE_AK sa == 1 && sk == 0
/* A level of a pairwise sum reads x[0::2] and x[1::2]: its own copy too. (In
 * the reverse sweeps a and b may name the same slots, so they keep one copy
 * for unit strides, which the compiler checks for overlap at run time.) */
#define AB2 const int64_t sa = 2; const int64_t sb = 2;
#define BINARY_LOOP(loop, ...)                                                              \
    if (sa == 1 && sb == 1) {                                                               \
        AB1 loop { __VA_ARGS__ }                                                            \
    } else if (sa == 2 && sb == 2) {                                                        \
        AB2 loop { __VA_ARGS__ }                                                            \
    } else {                                                                                \
        loop { __VA_ARGS__ }                                                                \
    }
/* Operands whose adjoint runs do not overlap (r->disjoint: not x * x, not
 * x[1:] * x[:-1]) get a copy where the compiler is told so: with two adjoint
 * outputs (four in the second-order sweep) its run-time overlap checks give up,
 * and the loop would stay scalar. Each element adds to distinct slots in the
 * same order either way, so the sums are bit for bit the same. */
#if defined(__GNUC__) && !defined(__clang__)
#define NO_OVERLAP _Pragma("GCC ivdep")
#else
#define NO_OVERLAP
#endif
#define BINARY_SCATTER(loop, ...)                                                           \
    if (sa == 1 && sb == 1 && r->disjoint) {                                                \
        AB1 NO_OVERLAP loop { __VA_ARGS__ }                                                 \
    } else {                                                                                \
        UNIT_OR_STRIDED(ONE_AB, AB1, loop, __VA_ARGS__)                                     \
    }

#define RUN_LOCALS                                                                          \
    const int64_t n = r->n, sa = r->sa, sb = r->sb, sc = r->sc, sk = r->sk;                 \
    const double *restrict va = r->va, *restrict vb = r->vb, *restrict vc = r->vc;          \
    const double *restrict kk = r->k;                                                       \
    (void)sb; (void)sc; (void)vb; (void)vc; (void)kk

VECTOR_CLONES
static void run_values(const struct run *r)
{
    RUN_LOCALS;
    double *restrict z = r->z;
    if (array_math_has(r->op)) {
        array_math_values(r->op, va, sa, z, n);
        return;
    }
    switch (r->op) {
#define SPECIAL(name, differentiable)
#define UNARY(name, numpy, operator, differentiable, value, d_x, dd_x)                      \
    case OP_##name:                                                                         \
        UNIT_OR_STRIDED(ONE_A, A1, UP, double x = va[j * sa]; z[j] = (value);)              \
        break;
#define BINARY(name, numpy, operator, cf, rcf, value, d_x, d_y, dd_x, dd_y)                 \
    case OP_##name:                                                                         \
        BINARY_LOOP(UP, double x = va[j * sa], y = vb[j * sb]; z[j] = (value);)             \
        break;
#define WITH_CONST(name, value, d_x, dd_x)                                                  \
    case OP_##name:                                                                         \
        UNIT_OR_STRIDED(ONE_AK, AK1, UP,                                                    \
                        double x = va[j * sa], y = kk[j * sk]; z[j] = (value);)             \
        break;
#define COMPARE(name, numpy, operator, cf, rcf, value)                                      \
    case OP_##name:                                                                         \
        UNIT_OR_STRIDED(ONE_AB, AB1, UP,                                                    \
                        double x = va[j * sa], y = vb[j * sb]; z[j] = (value) ? 1.0 : 0.0;) \
        break;
#define COMPARE_C(name, value)                                                              \
    case OP_##name:                                                                         \
        UNIT_OR_STRIDED(ONE_AK, AK1, UP,                                                    \
                        double x = va[j * sa], y = kk[j * sk]; z[j] = (value) ? 1.0 : 0.0;) \
        break;
#include "expand_ops.h"
    case OP_select:
        UP z[j] = select_value(va[j * sa], vb[j * sb], vc[j * sc]);
        break;
    }
}

VECTOR_CLONES
static void run_tangent(const struct run *r)
{
    RUN_LOCALS;
    double *restrict z = r->z, *restrict zd = r->zd;
    const double *restrict ta = r->ta, *restrict tb = r->tb, *restrict tc = r->tc;
    /* values by run_values' own call, so a JVP's values are the replay's */
    const int vector_values = array_math_has(r->op);
    if (vector_values)
        array_math_values(r->op, va, sa, z, n);
    switch (r->op) {
#define SPECIAL(name, differentiable)
#define UNARY(name, numpy, operator, differentiable, value, d_x, dd_x)                      \
    case OP_##name:                                                                         \
        UNIT_OR_STRIDED(ONE_A, A1, UP,                                                      \
                        double x = va[j * sa], xd = ta[j * sa];                             \
                        double z_ = vector_values ? z[j] : (value);                         \
                        { double z = z_; zd[j] = scaled(d_x, xd); (void)z; } z[j] = z_;)    \
        break;
#define BINARY(name, numpy, operator, cf, rcf, value, d_x, d_y, dd_x, dd_y)                 \
    case OP_##name:                                                                         \
        BINARY_LOOP(UP, double x = va[j * sa], y = vb[j * sb];                              \
                        double xd = ta[j * sa], yd = tb[j * sb]; double z_ = (value);       \
                        { double z = z_; zd[j] = scaled(d_x, xd) + scaled(d_y, yd); (void)z; } \
                        z[j] = z_;)                                                         \
        break;
#define WITH_CONST(name, value, d_x, dd_x)                                                  \
    case OP_##name:                                                                         \
        UNIT_OR_STRIDED(ONE_AK, AK1, UP,                                                    \
                        double x = va[j * sa], y = kk[j * sk], xd = ta[j * sa];             \
                        double z_ = (value);                                                \
                        { double z = z_; zd[j] = scaled(d_x, xd); (void)z; } z[j] = z_;)    \
        break;
#define COMPARE(name, numpy, operator, cf, rcf, value)                                      \
    case OP_##name:                                                                         \
        UNIT_OR_STRIDED(ONE_AB, AB1, UP, double x = va[j * sa], y = vb[j * sb];             \
                        z[j] = (value) ? 1.0 : 0.0; zd[j] = 0.0;)                           \
        break;
#define COMPARE_C(name, value)                                                              \
    case OP_##name:                                                                         \
        UNIT_OR_STRIDED(ONE_AK, AK1, UP, double x = va[j * sa], y = kk[j * sk];             \
                        z[j] = (value) ? 1.0 : 0.0; zd[j] = 0.0;)                           \
        break;
#include "expand_ops.h"
    case OP_select:
        UP {
            double cond = va[j * sa];
            z[j] = select_value(cond, vb[j * sb], vc[j * sc]);
            zd[j] = select_value(cond, tb[j * sb], tc[j * sc]);
        }
        break;
    }
}

VECTOR_CLONES
static void run_reverse(const struct run *r)
{
    RUN_LOCALS;
    const double *restrict z = r->z, *restrict g = r->g;
    double *ga = r->ga, *gb = r->gb, *gc = r->gc;
    switch (r->op) {
#define SPECIAL(name, differentiable)
#define UNARY(name, numpy, operator, differentiable, value, d_x, dd_x)                      \
    case OP_##name:                                                                         \
        UNIT_OR_STRIDED(ONE_A, A1, DOWN,                                                    \
            double x = va[j * sa], z_ = z[j];                                               \
            { double z = z_; (void)x; (void)z; ga[j * sa] += scaled(d_x, g[j]); })         \
        break;
#define BINARY(name, numpy, operator, cf, rcf, value, d_x, d_y, dd_x, dd_y)                 \
    case OP_##name:                                                                         \
        BINARY_SCATTER(DOWN,                                                                \
            double x = va[j * sa], y = vb[j * sb], z_ = z[j];                               \
            { double z = z_; (void)x; (void)y; (void)z;                                     \
              ga[j * sa] += scaled(d_x, g[j]); gb[j * sb] += scaled(d_y, g[j]); })          \
        break;
#define WITH_CONST(name, value, d_x, dd_x)                                                  \
    case OP_##name:                                                                         \
        UNIT_OR_STRIDED(ONE_AK, AK1, DOWN,                                                  \
            double x = va[j * sa], y = kk[j * sk], z_ = z[j];                               \
            { double z = z_; (void)x; (void)y; (void)z; ga[j * sa] += scaled(d_x, g[j]); }) \
        break;
#define COMPARE(name, numpy, operator, cf, rcf, value)
#define COMPARE_C(name, value)
#include "expand_ops.h"
    case OP_select:
        DOWN {
            double cond = va[j * sa];
            gb[j * sb] += select_value(cond, g[j], 0.0);
            gc[j * sc] += select_value(cond, 0.0, g[j]);
        }
        break;
    default: /* comparisons pass nothing back */
        break;
    }
}

VECTOR_CLONES
static void run_second(const struct run *r)
{
    RUN_LOCALS;
    const double *restrict z = r->z, *restrict g = r->g, *restrict gd = r->gd;
    const double *restrict ta = r->ta, *restrict tb = r->tb;
    double *ga = r->ga, *gb = r->gb, *gc = r->gc, *qa = r->qa, *qb = r->qb, *qc = r->qc;
    (void)tb;
    switch (r->op) {
#define SPECIAL(name, differentiable)
#define UNARY(name, numpy, operator, differentiable, value, d_x, dd_x)                      \
    case OP_##name:                                                                         \
        UNIT_OR_STRIDED(ONE_A, A1, DOWN,                                                    \
            double x = va[j * sa], xd = ta[j * sa], z_ = z[j];                              \
            { double z = z_; (void)x; (void)xd; (void)z;                                    \
              double p = (d_x);                                                             \
              ga[j * sa] += scaled(p, g[j]);                                                \
              qa[j * sa] += scaled(p, gd[j]) + scaled(dd_x, g[j]); })                       \
        break;
#define BINARY(name, numpy, operator, cf, rcf, value, d_x, d_y, dd_x, dd_y)                 \
    case OP_##name:                                                                         \
        BINARY_SCATTER(DOWN,                                                                \
            double x = va[j * sa], y = vb[j * sb], xd = ta[j * sa], yd = tb[j * sb];        \
            double z_ = z[j];                                                               \
            { double z = z_; (void)x; (void)y; (void)xd; (void)yd; (void)z;                 \
              double p = (d_x), q = (d_y);                                                  \
              ga[j * sa] += scaled(p, g[j]);                                                \
              qa[j * sa] += scaled(p, gd[j]) + scaled(dd_x, g[j]);                          \
              gb[j * sb] += scaled(q, g[j]);                                                \
              qb[j * sb] += scaled(q, gd[j]) + scaled(dd_y, g[j]); })                       \
        break;
#define WITH_CONST(name, value, d_x, dd_x)                                                  \
    case OP_##name:                                                                         \
        UNIT_OR_STRIDED(ONE_AK, AK1, DOWN,                                                  \
            double x = va[j * sa], y = kk[j * sk], xd = ta[j * sa], z_ = z[j];             \
            { double z = z_; (void)x; (void)y; (void)xd; (void)z;                           \
              double p = (d_x);                                                             \
              ga[j * sa] += scaled(p, g[j]);                                                \
              qa[j * sa] += scaled(p, gd[j]) + scaled(dd_x, g[j]); })                       \
        break;
#define COMPARE(name, numpy, operator, cf, rcf, value)
#define COMPARE_C(name, value)
#include "expand_ops.h"
    case OP_select:
        DOWN {
            double cond = va[j * sa];
            gb[j * sb] += select_value(cond, g[j], 0.0);
            qb[j * sb] += select_value(cond, gd[j], 0.0);
            gc[j * sc] += select_value(cond, 0.0, g[j]);
            qc[j * sc] += select_value(cond, 0.0, gd[j]);
        }
        break;
    default:
        break;
    }
}

/* ---- first writes (lazy_adjoint.h) ----
 * The reverse kernels for a row that is the first to write an operand's
 * adjoints (r->first: FIRST_A, FIRST_B or both): that operand is a unit-stride
 * run covering a whole block no other operand of the row touches, so its
 * adjoints are stored, not zeroed beforehand and added to: one pass less over
 * the block. `+ 0.0` gives what 0.0 + d gives, bit for bit (-0.0 becomes 0.0). */
#define FIRST_LOOPS(...)                                                                    \
    if (r->first == (FIRST_A | FIRST_B)) {                                                  \
        const int64_t sa = 1, sb = 1;                                                       \
        NO_OVERLAP DOWN { __VA_ARGS__ SET_A SET_B }                                         \
    } else if (r->first == FIRST_A && sb == 1) { /* b: a block apart from a's */         \
        AB1 NO_OVERLAP DOWN { __VA_ARGS__ SET_A ADD_B }                                     \
    } else if (r->first == FIRST_A) {                                                       \
        const int64_t sa = 1;                                                               \
        DOWN { __VA_ARGS__ SET_A ADD_B }                                                    \
    } else if (sa == 1) {                                                                   \
        AB1 NO_OVERLAP DOWN { __VA_ARGS__ ADD_A SET_B }                                     \
    } else {                                                                                \
        const int64_t sb = 1;                                                               \
        DOWN { __VA_ARGS__ ADD_A SET_B }                                                    \
    }

VECTOR_CLONES
static void run_reverse_first(const struct run *r)
{
    RUN_LOCALS;
    const double *restrict z = r->z, *restrict g = r->g;
    double *ga = r->ga, *gb = r->gb;
    switch (r->op) {
#define SET_A ga[j] = scaled(p, g[j]) + 0.0;
#define SET_B gb[j] = scaled(q, g[j]) + 0.0;
#define ADD_A ga[j * sa] += scaled(p, g[j]);
#define ADD_B gb[j * sb] += scaled(q, g[j]);
#define SPECIAL(name, differentiable)
#define UNARY(name, numpy, operator, differentiable, value, d_x, dd_x)                      \
    case OP_##name: {                                                                       \
        DOWN { double x = va[j], z_ = z[j];                                                 \
               double p; { double z = z_; (void)x; (void)z; p = (d_x); } SET_A }            \
        break;                                                                              \
    }
#define BINARY(name, numpy, operator, cf, rcf, value, d_x, d_y, dd_x, dd_y)                 \
    case OP_##name:                                                                         \
        FIRST_LOOPS(double x = va[j * sa], y = vb[j * sb], z_ = z[j]; double p, q;          \
                    { double z = z_; (void)x; (void)y; (void)z; p = (d_x); q = (d_y); })    \
        break;
#define WITH_CONST(name, value, d_x, dd_x)                                                  \
    case OP_##name: {                                                                       \
        DOWN { double x = va[j], y = kk[j * sk], z_ = z[j];                                 \
               double p; { double z = z_; (void)x; (void)y; (void)z; p = (d_x); } SET_A }   \
        break;                                                                              \
    }
#define COMPARE(name, numpy, operator, cf, rcf, value)
#define COMPARE_C(name, value)
#include "expand_ops.h"
#undef SET_A
#undef SET_B
#undef ADD_A
#undef ADD_B
    default: /* not a row lazy_adjoint.c lets write first */
        break;
    }
}

VECTOR_CLONES
static void run_second_first(const struct run *r)
{
    RUN_LOCALS;
    const double *restrict z = r->z, *restrict g = r->g, *restrict gd = r->gd;
    const double *restrict ta = r->ta, *restrict tb = r->tb;
    double *ga = r->ga, *gb = r->gb, *qa = r->qa, *qb = r->qb;
    (void)tb;
    switch (r->op) {
#define SET_A ga[j] = scaled(p, g[j]) + 0.0; qa[j] = scaled(p, gd[j]) + scaled(pp, g[j]) + 0.0;
#define SET_B gb[j] = scaled(q, g[j]) + 0.0; qb[j] = scaled(q, gd[j]) + scaled(qq, g[j]) + 0.0;
#define ADD_A ga[j * sa] += scaled(p, g[j]); qa[j * sa] += scaled(p, gd[j]) + scaled(pp, g[j]);
#define ADD_B gb[j * sb] += scaled(q, g[j]); qb[j * sb] += scaled(q, gd[j]) + scaled(qq, g[j]);
#define SPECIAL(name, differentiable)
#define UNARY(name, numpy, operator, differentiable, value, d_x, dd_x)                      \
    case OP_##name: {                                                                       \
        DOWN { double x = va[j], xd = ta[j], z_ = z[j]; double p, pp;                       \
               { double z = z_; (void)x; (void)xd; (void)z; p = (d_x); pp = (dd_x); }        \
               SET_A }                                                                      \
        break;                                                                              \
    }
#define BINARY(name, numpy, operator, cf, rcf, value, d_x, d_y, dd_x, dd_y)                 \
    case OP_##name:                                                                         \
        FIRST_LOOPS(double x = va[j * sa], y = vb[j * sb], xd = ta[j * sa], yd = tb[j * sb]; \
                    double z_ = z[j]; double p, q, pp, qq;                                  \
                    { double z = z_; (void)x; (void)y; (void)xd; (void)yd; (void)z;         \
                      p = (d_x); q = (d_y); pp = (dd_x); qq = (dd_y); })                    \
        break;
#define WITH_CONST(name, value, d_x, dd_x)                                                  \
    case OP_##name: {                                                                       \
        DOWN { double x = va[j], y = kk[j * sk], xd = ta[j], z_ = z[j]; double p, pp;       \
               { double z = z_; (void)x; (void)y; (void)xd; (void)z; p = (d_x); pp = (dd_x); } \
               SET_A }                                                                      \
        break;                                                                              \
    }
#define COMPARE(name, numpy, operator, cf, rcf, value)
#define COMPARE_C(name, value)
#include "expand_ops.h"
#undef SET_A
#undef SET_B
#undef ADD_A
#undef ADD_B
    default:
        break;
    }
}

/* Which operand fields of a row name slots, and whether b names a constant. */
struct layout {
    int b_slot, c_slot, b_const;
};

static struct layout layout_of(int op)
{
    int kind = pyad_op_kind(op);
    struct layout l = {kind == PYAD_KIND_BINARY || kind == PYAD_KIND_COMPARE || op == OP_select,
                       op == OP_select,
                       kind == PYAD_KIND_WITH_CONST || kind == PYAD_KIND_COMPARE_C};
    return l;
}

/* Lane 0 of slot s in a work array (NULL for an array the sweep does not use). */
static double *lane0(const double *base, int64_t slot, int64_t lanes, int used)
{
    return used && base ? (double *)base + slot * lanes : NULL;
}

/* Whether the unit-stride runs of n slots from a and from b are apart (only
 * the unit-stride copy of a loop reads this). */
static int runs_disjoint(int64_t a, int64_t b, int64_t n)
{
    return a + n <= b || b + n <= a;
}

typedef void (*kernel)(const struct run *);

/* Runs the kernel over block i: one run of its w elements at one point; with
 * points (lanes > 1) block_lanes.c runs it, points innermost. */
static void run_block(const pyad_tape *t, int64_t i, int64_t lanes, kernel fn, const double *v,
                      const double *vd, const double *adj, const double *adjd, int first)
{
    if (block_is_source(t, i))
        return; /* block_source's */
    if (lanes > 1) { /* batched: points innermost, with vector math (block_lanes.c) */
        block_lanes(t, i, lanes, v, vd, adj, adjd);
        return;
    }
    struct block bl = block_at(t, i);
    int op = t->op[bl.row];
    struct layout l = layout_of(op);
    int64_t z = t->first[bl.row], a = t->arg_a[bl.row], b = t->arg_b[bl.row],
            c = t->arg_c[bl.row];
    struct run r = {
        .op = op,
        .n = bl.w,
        .z = lane0(v, z, 1, 1),
        .zd = lane0(vd, z, 1, 1),
        .g = lane0(adj, z, 1, 1),
        .gd = lane0(adjd, z, 1, 1),
        .va = lane0(v, a, 1, 1), .vb = lane0(v, b, 1, l.b_slot), .vc = lane0(v, c, 1, l.c_slot),
        .ta = lane0(vd, a, 1, 1), .tb = lane0(vd, b, 1, l.b_slot),
        .tc = lane0(vd, c, 1, l.c_slot),
        .ga = lane0(adj, a, 1, 1), .gb = lane0(adj, b, 1, l.b_slot),
        .gc = lane0(adj, c, 1, l.c_slot),
        .qa = lane0(adjd, a, 1, 1), .qb = lane0(adjd, b, 1, l.b_slot),
        .qc = lane0(adjd, c, 1, l.c_slot),
        .sa = bl.sa, .sb = bl.sb, .sc = bl.sc,
        .k = l.b_const ? t->consts + b : NULL,
        .sk = bl.sk,
        .disjoint = l.b_slot && runs_disjoint(a, b, bl.w),
        .first = first,
    };
    fn(&r);
}

int block_values(const pyad_tape *t, int64_t i, int64_t lanes, double *v)
{
    if (block_is_custom(t, i))
        return custom_values(t, i, lanes, v);
    if (rows_block(t, i)) {
        rows_values(t, i, lanes, v);
        return PYAD_OK;
    }
    if (block_is_product(t, i)) {
        product_values(t, i, lanes, v);
        return PYAD_OK;
    }
    if (block_is_linalg_sym(t, i)) {
        linalg_sym_values(t, i, lanes, v);
        return PYAD_OK;
    }
    if (block_is_lu(t, i)) {
        lu_values(t, i, lanes, v);
        return PYAD_OK;
    }
    run_block(t, i, lanes, run_values, v, NULL, NULL, NULL, 0);
    return PYAD_OK;
}

int block_tangent(const pyad_tape *t, int64_t i, int64_t lanes, double *v, double *vd)
{
    if (block_is_custom(t, i))
        return custom_tangent(t, i, lanes, v, lanes, vd);
    if (rows_block(t, i)) {
        rows_tangent(t, i, lanes, v, vd);
        return PYAD_OK;
    }
    if (block_is_product(t, i)) {
        product_tangent(t, i, lanes, v, lanes, vd);
        return PYAD_OK;
    }
    if (block_is_linalg_sym(t, i)) {
        return linalg_sym_tangent(t, i, lanes, v, lanes, vd);
    }
    if (block_is_lu(t, i)) {
        lu_tangent(t, i, lanes, v, lanes, vd);
        return PYAD_OK;
    }
    run_block(t, i, lanes, run_tangent, v, vd, NULL, NULL, 0);
    return PYAD_OK;
}

/* A block row no derivative reaches (activity.c): the reverse sweeps pass it by. */
static int block_passive(const pyad_tape *t, int64_t i)
{
    return row_passive(t, t->blocks[i * BLOCK_FIELDS + BLK_ROW]);
}

int block_reverse(const pyad_tape *t, int64_t i, int64_t lanes, const double *v, double *adj)
{
    if (block_passive(t, i))
        return PYAD_OK;
    if (block_is_custom(t, i))
        return custom_reverse(t, i, lanes, v, lanes, adj);
    if (rows_block(t, i)) {
        rows_reverse(t, i, lanes, v, adj);
        return PYAD_OK;
    }
    if (block_is_product(t, i)) {
        product_reverse(t, i, lanes, v, lanes, adj);
        return PYAD_OK;
    }
    if (block_is_linalg_sym(t, i)) {
        return linalg_sym_reverse(t, i, lanes, v, lanes, adj);
    }
    if (block_is_lu(t, i)) {
        lu_reverse(t, i, lanes, v, lanes, adj);
        return PYAD_OK;
    }
    run_block(t, i, lanes, run_reverse, v, NULL, adj, NULL, 0);
    return PYAD_OK;
}

int block_second(const pyad_tape *t, int64_t i, int64_t lanes, const double *v,
                 const double *vd, double *adj, double *adjd)
{
    if (block_passive(t, i))
        return PYAD_OK;
    if (block_is_custom(t, i))
        return custom_second(t, i, lanes, v, lanes, vd, lanes, adj, lanes, adjd);
    if (rows_block(t, i)) {
        rows_second(t, i, lanes, v, vd, adj, adjd);
        return PYAD_OK;
    }
    if (block_is_product(t, i)) {
        product_second(t, i, lanes, v, lanes, vd, lanes, adj, lanes, adjd);
        return PYAD_OK;
    }
    if (block_is_linalg_sym(t, i)) {
        return linalg_sym_second(t, i, lanes, v, lanes, vd, lanes, adj, lanes, adjd);
    }
    if (block_is_lu(t, i)) {
        lu_second(t, i, lanes, v, lanes, vd, lanes, adj, lanes, adjd);
        return PYAD_OK;
    }
    run_block(t, i, lanes, run_second, v, vd, adj, adjd, 0);
    return PYAD_OK;
}

void block_reverse_first(const pyad_tape *t, int64_t i, const double *v, double *adj,
                         int first)
{
    run_block(t, i, 1, run_reverse_first, v, NULL, adj, NULL, first);
}

void block_second_first(const pyad_tape *t, int64_t i, const double *v, const double *vd,
                        double *adj, double *adjd, int first)
{
    run_block(t, i, 1, run_second_first, v, vd, adj, adjd, first);
}

/* The kernels on a caller's run (run.h): fused.c sweeps tiles of rows with them. */
void run_kernel(enum run_kernel which, const struct run *r)
{
    switch (which) {
    case RUN_VALUES: run_values(r); break;
    case RUN_TANGENT: run_tangent(r); break;
    case RUN_REVERSE: r->first ? run_reverse_first(r) : run_reverse(r); break;
    case RUN_SECOND: r->first ? run_second_first(r) : run_second(r); break;
    }
}

/* ---- vector sweeps: values have one lane, tangents and adjoints p ---- */

/* Element e's slots: result zs, operands sA, sB, sC, constant index kB. */
#define ELEMENT_SLOTS                                                                       \
    int64_t zs = F + e, sA = A + bl.sa * e, sB = B + bl.sb * e;                  \
    int64_t sC = C + bl.sc * e, kB = B + bl.sk * e;                                         \
    (void)sB; (void)sC; (void)kB
#define VECTOR_LOCALS                                                                       \
    struct block bl = block_at(t, i);                                                       \
    int64_t F = t->first[bl.row], A = t->arg_a[bl.row], B = t->arg_b[bl.row];               \
    int64_t C = t->arg_c[bl.row];                                                           \
    const double *consts = t->consts
#define ELEMENTS for (int64_t e = 0; e < bl.w; ++e)
#define ELEMENTS_DOWN for (int64_t e = bl.w - 1; e >= 0; --e)

int block_tangent_vector(const pyad_tape *t, int64_t i, int64_t p, double *v, double *vd)
{
    if (block_is_custom(t, i))
        return custom_tangent(t, i, 1, v, p, vd);
    if (rows_block(t, i)) {
        rows_tangent_vector(t, i, p, v, vd);
        return PYAD_OK;
    }
    if (block_is_product(t, i)) {
        product_tangent(t, i, 1, v, p, vd);
        return PYAD_OK;
    }
    if (block_is_lu(t, i)) {
        lu_tangent(t, i, 1, v, p, vd);
        return PYAD_OK;
    }
    if (block_is_linalg_sym(t, i)) {
        return linalg_sym_tangent(t, i, 1, v, p, vd);
    }
    VECTOR_LOCALS;
    const int op = t->op[bl.row], vector_values = array_math_has(op);
    switch (op) {
#define SPECIAL(name, differentiable)
#define UNARY(name, numpy, operator, differentiable, value, d_x, dd_x)                      \
    case OP_##name:                                                                         \
        ELEMENTS {                                                                          \
            ELEMENT_SLOTS;                                                                  \
            double x = v[sA], z = vector_values ? array_math_one(op, x) : (value);          \
            v[zs] = z;                                                                      \
            double dx = (d_x);                                                              \
            double *out = vd + zs * p;                                                      \
            const double *ta = vd + sA * p;                                                 \
            for (int64_t j = 0; j < p; ++j) out[j] = scaled(dx, ta[j]);                     \
        }                                                                                   \
        break;
#define BINARY(name, numpy, operator, cf, rcf, value, d_x, d_y, dd_x, dd_y)                 \
    case OP_##name:                                                                         \
        ELEMENTS {                                                                          \
            ELEMENT_SLOTS;                                                                  \
            double x = v[sA], y = v[sB], z = (value);                                       \
            v[zs] = z;                                                                      \
            double dx = (d_x), dy = (d_y);                                                  \
            double *out = vd + zs * p;                                                      \
            const double *ta = vd + sA * p, *tb = vd + sB * p;                              \
            for (int64_t j = 0; j < p; ++j) out[j] = scaled(dx, ta[j]) + scaled(dy, tb[j]); \
        }                                                                                   \
        break;
#define WITH_CONST(name, value, d_x, dd_x)                                                  \
    case OP_##name:                                                                         \
        ELEMENTS {                                                                          \
            ELEMENT_SLOTS;                                                                  \
            double x = v[sA], y = consts[kB], z = (value);                                  \
            v[zs] = z;                                                                      \
            double dx = (d_x);                                                              \
            double *out = vd + zs * p;                                                      \
            const double *ta = vd + sA * p;                                                 \
            for (int64_t j = 0; j < p; ++j) out[j] = scaled(dx, ta[j]);                     \
        }                                                                                   \
        break;
#define COMPARE(name, numpy, operator, cf, rcf, value)                                      \
    case OP_##name:                                                                         \
        ELEMENTS {                                                                          \
            ELEMENT_SLOTS;                                                                  \
            double x = v[sA], y = v[sB];                                                    \
            v[zs] = (value) ? 1.0 : 0.0;                                                    \
            memset(vd + zs * p, 0, (size_t)p * sizeof *vd);                                 \
        }                                                                                   \
        break;
#define COMPARE_C(name, value)                                                              \
    case OP_##name:                                                                         \
        ELEMENTS {                                                                          \
            ELEMENT_SLOTS;                                                                  \
            double x = v[sA], y = consts[kB];                                               \
            v[zs] = (value) ? 1.0 : 0.0;                                                    \
            memset(vd + zs * p, 0, (size_t)p * sizeof *vd);                                 \
        }                                                                                   \
        break;
#include "expand_ops.h"
    case OP_select:
        ELEMENTS {
            ELEMENT_SLOTS;
            int64_t pick = select_taken(v[sA], (int32_t)sB, (int32_t)sC);
            v[zs] = v[pick];
            memcpy(vd + zs * p, vd + pick * p, (size_t)p * sizeof *vd);
        }
        break;
    }
    return PYAD_OK;
}

int block_reverse_vector(const pyad_tape *t, int64_t i, int64_t q, const double *v,
                         double *adj)
{
    if (block_passive(t, i))
        return PYAD_OK;
    if (block_is_custom(t, i))
        return custom_reverse(t, i, 1, v, q, adj);
    if (rows_block(t, i)) {
        rows_reverse_vector(t, i, q, v, adj);
        return PYAD_OK;
    }
    if (block_is_product(t, i)) {
        product_reverse(t, i, 1, v, q, adj);
        return PYAD_OK;
    }
    if (block_is_lu(t, i)) {
        lu_reverse(t, i, 1, v, q, adj);
        return PYAD_OK;
    }
    if (block_is_linalg_sym(t, i)) {
        return linalg_sym_reverse(t, i, 1, v, q, adj);
    }
    VECTOR_LOCALS;
    switch (t->op[bl.row]) {
#define SPECIAL(name, differentiable)
#define UNARY(name, numpy, operator, differentiable, value, d_x, dd_x)                      \
    case OP_##name:                                                                         \
        ELEMENTS_DOWN {                                                                     \
            ELEMENT_SLOTS;                                                                  \
            double x = v[sA], z = v[zs];                                                    \
            (void)x; (void)z;                                                               \
            double dx = (d_x);                                                              \
            const double *g = adj + zs * q;                                                 \
            double *ga = adj + sA * q;                                                      \
            for (int64_t j = 0; j < q; ++j) ga[j] += scaled(dx, g[j]);                      \
        }                                                                                   \
        break;
#define BINARY(name, numpy, operator, cf, rcf, value, d_x, d_y, dd_x, dd_y)                 \
    case OP_##name:                                                                         \
        ELEMENTS_DOWN {                                                                     \
            ELEMENT_SLOTS;                                                                  \
            double x = v[sA], y = v[sB], z = v[zs];                                         \
            (void)x; (void)y; (void)z;                                                      \
            double dx = (d_x), dy = (d_y);                                                  \
            const double *g = adj + zs * q;                                                 \
            double *ga = adj + sA * q, *gb = adj + sB * q;                                  \
            for (int64_t j = 0; j < q; ++j) ga[j] += scaled(dx, g[j]);                      \
            for (int64_t j = 0; j < q; ++j) gb[j] += scaled(dy, g[j]);                      \
        }                                                                                   \
        break;
#define WITH_CONST(name, value, d_x, dd_x)                                                  \
    case OP_##name:                                                                         \
        ELEMENTS_DOWN {                                                                     \
            ELEMENT_SLOTS;                                                                  \
            double x = v[sA], y = consts[kB], z = v[zs];                                    \
            (void)x; (void)y; (void)z;                                                      \
            double dx = (d_x);                                                              \
            const double *g = adj + zs * q;                                                 \
            double *ga = adj + sA * q;                                                      \
            for (int64_t j = 0; j < q; ++j) ga[j] += scaled(dx, g[j]);                      \
        }                                                                                   \
        break;
#define COMPARE(name, numpy, operator, cf, rcf, value)
#define COMPARE_C(name, value)
#include "expand_ops.h"
    case OP_select:
        ELEMENTS_DOWN {
            ELEMENT_SLOTS;
            const double *g = adj + zs * q;
            double *gp = adj + select_taken(v[sA], (int32_t)sB, (int32_t)sC) * q;
            for (int64_t j = 0; j < q; ++j)
                gp[j] += g[j];
        }
        break;
    default:
        break;
    }
    return PYAD_OK;
}

int block_second_vector(const pyad_tape *t, int64_t i, int64_t p, const double *v,
                        const double *vd, double *adj, double *adjd)
{
    if (block_passive(t, i))
        return PYAD_OK;
    if (block_is_custom(t, i))
        return custom_second(t, i, 1, v, p, vd, 1, adj, p, adjd);
    if (rows_block(t, i)) {
        rows_second_vector(t, i, p, v, vd, adj, adjd);
        return PYAD_OK;
    }
    if (block_is_product(t, i)) {
        product_second(t, i, 1, v, p, vd, 1, adj, p, adjd);
        return PYAD_OK;
    }
    if (block_is_lu(t, i)) {
        lu_second(t, i, 1, v, p, vd, 1, adj, p, adjd);
        return PYAD_OK;
    }
    if (block_is_linalg_sym(t, i)) {
        return linalg_sym_second(t, i, 1, v, p, vd, 1, adj, p, adjd);
    }
    VECTOR_LOCALS;
    switch (t->op[bl.row]) {
#define SPECIAL(name, differentiable)
#define UNARY(name, numpy, operator, differentiable, value, d_x, dd_x)                      \
    case OP_##name:                                                                         \
        ELEMENTS_DOWN {                                                                     \
            ELEMENT_SLOTS;                                                                  \
            double x = v[sA], z = v[zs], g = adj[zs];                                       \
            (void)x; (void)z;                                                               \
            double dx = (d_x);                                                              \
            adj[sA] += scaled(dx, g);                                                       \
            const double *gd = adjd + zs * p, *ta = vd + sA * p;                            \
            double *gda = adjd + sA * p;                                                    \
            for (int64_t j = 0; j < p; ++j) {                                               \
                double xd = ta[j];                                                          \
                (void)xd;                                                                   \
                gda[j] += scaled(dx, gd[j]) + scaled(dd_x, g);                              \
            }                                                                               \
        }                                                                                   \
        break;
#define BINARY(name, numpy, operator, cf, rcf, value, d_x, d_y, dd_x, dd_y)                 \
    case OP_##name:                                                                         \
        ELEMENTS_DOWN {                                                                     \
            ELEMENT_SLOTS;                                                                  \
            double x = v[sA], y = v[sB], z = v[zs], g = adj[zs];                            \
            (void)x; (void)y; (void)z;                                                      \
            double dx = (d_x), dy = (d_y);                                                  \
            adj[sA] += scaled(dx, g);                                                       \
            adj[sB] += scaled(dy, g);                                                       \
            const double *gd = adjd + zs * p, *ta = vd + sA * p, *tb = vd + sB * p;         \
            double *gda = adjd + sA * p, *gdb = adjd + sB * p;                              \
            for (int64_t j = 0; j < p; ++j) {                                               \
                double xd = ta[j], yd = tb[j];                                              \
                (void)xd; (void)yd;                                                         \
                double ddx = (dd_x), ddy = (dd_y);                                          \
                gda[j] += scaled(dx, gd[j]) + scaled(ddx, g);                               \
                gdb[j] += scaled(dy, gd[j]) + scaled(ddy, g);                               \
            }                                                                               \
        }                                                                                   \
        break;
#define WITH_CONST(name, value, d_x, dd_x)                                                  \
    case OP_##name:                                                                         \
        ELEMENTS_DOWN {                                                                     \
            ELEMENT_SLOTS;                                                                  \
            double x = v[sA], y = consts[kB], z = v[zs], g = adj[zs];                       \
            (void)x; (void)y; (void)z;                                                      \
            double dx = (d_x);                                                              \
            adj[sA] += scaled(dx, g);                                                       \
            const double *gd = adjd + zs * p, *ta = vd + sA * p;                            \
            double *gda = adjd + sA * p;                                                    \
            for (int64_t j = 0; j < p; ++j) {                                               \
                double xd = ta[j];                                                          \
                (void)xd;                                                                   \
                gda[j] += scaled(dx, gd[j]) + scaled(dd_x, g);                              \
            }                                                                               \
        }                                                                                   \
        break;
#define COMPARE(name, numpy, operator, cf, rcf, value)
#define COMPARE_C(name, value)
#include "expand_ops.h"
    case OP_select:
        ELEMENTS_DOWN {
            ELEMENT_SLOTS;
            int64_t pick = select_taken(v[sA], (int32_t)sB, (int32_t)sC);
            adj[pick] += adj[zs];
            const double *gd = adjd + zs * p;
            for (int64_t j = 0; j < p; ++j)
                adjd[pick * p + j] += gd[j];
        }
        break;
    default:
        break;
    }
    return PYAD_OK;
}
