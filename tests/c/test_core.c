/* A plain C test of pyad's core API (csrc/pyad.h), with no Python in between.
 *
 * It records every primitive of the table (read through pyad_op_count /
 * pyad_op_kind, so a new row is picked up or reported), runs every sweep on
 * the tapes and checks the sweeps against each other and against central
 * differences, and walks every error path: a NULL tape, bad op codes,
 * operand indices and counts, the size limit, the allocation budget, failed
 * guards, corrupt serialized arrays, a busy tape, and (when built with
 * -DPYAD_TEST_FAULTS and -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc)
 * every allocation of a recording session failing in turn.
 *
 * Each group runs in a forked child, so a crash or a sanitizer / valgrind
 * report in one group is counted as a failure of that group and the others
 * still run. The last line is "N passed, M failed"; the exit status is
 * nonzero when anything failed. tests/c/run.sh builds and runs it.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pyad.h"
#include "tape.h" /* white box, only for the EBUSY test: the tape's user count */

/* ---- checks ---- */

static long passed, failed;

static void check_at(int ok, const char *what, const char *file, int line)
{
    if (ok) {
        passed++;
        return;
    }
    failed++;
    fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
}

#define CHECK(cond) check_at(!!(cond), #cond, __FILE__, __LINE__)

static void check_status_at(long got, long want, const char *expr, const char *file, int line)
{
    if (got == want) {
        passed++;
        return;
    }
    failed++;
    fprintf(stderr, "%s:%d: %s returned %ld (%s), expected %ld (%s)\n", file, line, expr, got,
            pyad_strerror((int)got), want, pyad_strerror((int)want));
}

#define CHECK_STATUS(expr, want) check_status_at((long)(expr), (long)(want), #expr, __FILE__, __LINE__)

static int close_to(double a, double b, double rtol, double atol)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    if (isinf(a) || isinf(b))
        return a == b;
    return fabs(a - b) <= atol + rtol * fmax(fabs(a), fabs(b));
}

static void check_close_at(double got, double want, double rtol, double atol, const char *ctx,
                           const char *file, int line)
{
    if (close_to(got, want, rtol, atol)) {
        passed++;
        return;
    }
    failed++;
    fprintf(stderr, "%s:%d: %s: got %.17g, expected %.17g\n", file, line, ctx, got, want);
}

#define CHECK_CLOSE(got, want, rtol, atol, ctx) \
    check_close_at((got), (want), (rtol), (atol), (ctx), __FILE__, __LINE__)

/* Several results that should agree element by element (one check for all). */
static void check_all_close_at(const double *got, const double *want, int64_t n, double rtol,
                               double atol, const char *ctx, const char *file, int line)
{
    for (int64_t i = 0; i < n; ++i)
        if (!close_to(got[i], want[i], rtol, atol)) {
            failed++;
            fprintf(stderr, "%s:%d: %s: element %ld: got %.17g, expected %.17g\n", file, line,
                    ctx, (long)i, got[i], want[i]);
            return;
        }
    passed++;
}

#define CHECK_ALL_CLOSE(got, want, n, rtol, atol, ctx) \
    check_all_close_at((got), (want), (n), (rtol), (atol), (ctx), __FILE__, __LINE__)

/* ---- allocation fault injection (the C core's malloc/calloc/realloc) ---- */

#ifdef PYAD_TEST_FAULTS
static long fault_at = -1;  /* the allocation number to fail; -1: none */
static long alloc_count;    /* allocations seen since the counter was reset */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);

static int fault_now(void) { return alloc_count++ == fault_at; }

void *__wrap_malloc(size_t n) { return fault_now() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t size) { return fault_now() ? NULL : __real_calloc(n, size); }
void *__wrap_realloc(void *p, size_t n) { return fault_now() ? NULL : __real_realloc(p, n); }
/* the driver's own allocations never fail and are not counted */
#define driver_calloc __real_calloc
#else
#define driver_calloc calloc
#endif

/* Zeroed doubles for the driver itself; never fails quietly. */
static double *dbl(int64_t n)
{
    double *p = driver_calloc((size_t)(n > 0 ? n : 1), sizeof *p);
    if (!p) {
        fprintf(stderr, "test driver out of memory (%ld doubles)\n", (long)n);
        exit(2);
    }
    return p;
}

static void *raw(size_t bytes)
{
    void *p = driver_calloc(bytes ? bytes : 1, 1);
    if (!p) {
        fprintf(stderr, "test driver out of memory\n");
        exit(2);
    }
    return p;
}

/* ---- the primitive table ---- */

static int op_code(const char *name)
{
    for (int i = 0; i < pyad_op_count(); ++i)
        if (strcmp(pyad_op_name(i), name) == 0)
            return i;
    return -1;
}

static int OP(const char *name)
{
    int k = op_code(name);
    if (k < 0) {
        failed++;
        fprintf(stderr, "primitive %s is missing from the table\n", name);
    }
    return k;
}

/* n inputs as n scalar rows (pyad_rec_input_n records one block row), for
 * tests that name rows by their slots. Returns the first slot or a status. */
static int scalar_inputs(pyad_tape *t, const double *x, int n)
{
    int first = (int)pyad_n_slots(t);
    for (int i = 0; i < n; ++i) {
        int s = pyad_rec_input(t, x[i]);
        if (s < 0)
            return s;
    }
    return first;
}

static pyad_tape *new_tape(void)
{
    pyad_tape *t = NULL;
    int s = pyad_tape_new(&t);
    if (s != PYAD_OK || !t) {
        fprintf(stderr, "pyad_tape_new failed: %s\n", pyad_strerror(s));
        exit(2);
    }
    return t;
}

/* ---- every sweep of one tape at one point, checked against the others ---- */

/* Central-difference step for x. */
static double step_for(double x) { return 1e-6 * fmax(1.0, fabs(x)); }

static int forward_at(pyad_tape *t, const double *x, double *y)
{
    double *v = dbl(pyad_n_slots(t));
    int64_t bad = -1;
    int s = pyad_forward(t, x, v, y, &bad);
    free(v);
    return s;
}

/* Gradient rows: xbar = u^T J at x. */
static int reverse_at(pyad_tape *t, const double *x, const double *u, double *xbar)
{
    int64_t N = pyad_n_slots(t), m = pyad_n_outputs(t);
    double *v = dbl(N), *adj = dbl(N), *y = dbl(m);
    int64_t bad = -1;
    int s = pyad_forward(t, x, v, y, &bad);
    if (s == PYAD_OK)
        s = pyad_reverse(t, v, u, adj, xbar);
    free(v);
    free(adj);
    free(y);
    return s;
}

/* A copy of the tape through export / validate / import. */
static pyad_tape *round_trip(pyad_tape *t)
{
    int64_t N = pyad_n_ops(t), S = pyad_n_slots(t), nc = pyad_n_consts(t), np_ = pyad_n_pool(t);
    int64_t n = pyad_n_inputs(t), m = pyad_n_outputs(t), nbk = pyad_n_blocks(t);
    uint8_t *op = raw((size_t)N);
    int32_t *a = raw((size_t)N * 4), *b = raw((size_t)N * 4), *c = raw((size_t)N * 4);
    int32_t *first = raw((size_t)N * 4), *blocks = raw((size_t)nbk * 24);
    int32_t *pool = raw((size_t)np_ * 4), *in = raw((size_t)n * 4), *out = raw((size_t)m * 4);
    double *val = dbl(S), *consts = dbl(nc);
    pyad_tape *copy = NULL;
    CHECK_STATUS(pyad_tape_export(t, op, a, b, c, first, val, consts, pool, in, out, blocks),
                 PYAD_OK);
    CHECK_STATUS(pyad_validate(N, op, a, b, c, first, S, nc, np_, pool, n, in, m, out, nbk,
                               blocks), PYAD_OK);
    CHECK_STATUS(pyad_tape_import(&copy, N, op, a, b, c, first, S, val, nc, consts, np_, pool,
                                  n, in, m, out, nbk, blocks), PYAD_OK);
    free(op), free(a), free(b), free(c), free(first), free(blocks), free(pool), free(in),
        free(out), free(val), free(consts);
    return copy;
}

/* Every sweep of t at x, checked against each other and against central
 * differences. at_recorded: x is the point the tape was recorded at, so the
 * recorded values (v = NULL) must give the same results. */
static void check_sweeps(pyad_tape *t, const double *x, int at_recorded, const char *label)
{
    const int64_t N = pyad_n_slots(t), n = pyad_n_inputs(t), m = pyad_n_outputs(t);
    if (N <= 0 || n <= 0 || m <= 0) {
        failed++;
        fprintf(stderr, "%s: check_sweeps needs inputs and outputs\n", label);
        return;
    }
    const double tight = 1e-11, fd_rtol = 2e-5, fd_atol = 2e-6;
    double *v = dbl(N), *vd = dbl(N), *adj = dbl(N), *adjd = dbl(N);
    double *y = dbl(m), *y2 = dbl(m), *yd = dbl(m), *yp = dbl(m), *ym = dbl(m);
    double *J = dbl(m * n), *Jr = dbl(m * n), *H = dbl(m * n * n);
    double *xd = dbl(n), *u = dbl(m), *xbar = dbl(n), *xbard = dbl(n);
    double *xp = dbl(n), *gp = dbl(n), *gm = dbl(n), *fd = dbl(n);
    int64_t bad = -1;
    char ctx[160];

    /* values */
    CHECK_STATUS(pyad_forward(t, x, v, y, &bad), PYAD_OK);
    CHECK_STATUS(pyad_forward(t, x, v, NULL, &bad), PYAD_OK); /* y is optional */
    if (at_recorded) {
        int32_t *outs = raw((size_t)m * 4);
        CHECK_STATUS(pyad_output_slots(t, outs), PYAD_OK);
        CHECK_STATUS(pyad_values(t, outs, m, y2), PYAD_OK);
        snprintf(ctx, sizeof ctx, "%s: replay at the recorded point", label);
        CHECK_ALL_CLOSE(y, y2, m, 0.0, 0.0, ctx);
        free(outs);
    }

    /* forward mode, one direction at a time: column j of J */
    for (int64_t j = 0; j < n; ++j) {
        memset(xd, 0, (size_t)n * sizeof *xd);
        xd[j] = 1.0;
        CHECK_STATUS(pyad_forward_tangent(t, x, xd, v, vd, y2, yd, &bad), PYAD_OK);
        snprintf(ctx, sizeof ctx, "%s: tangent sweep values", label);
        CHECK_ALL_CLOSE(y2, y, m, 0.0, 0.0, ctx);
        for (int64_t i = 0; i < m; ++i)
            J[i * n + j] = yd[i];
        /* central differences */
        memcpy(xp, x, (size_t)n * sizeof *xp);
        double h = step_for(x[j]);
        xp[j] = x[j] + h;
        CHECK_STATUS(forward_at(t, xp, yp), PYAD_OK);
        xp[j] = x[j] - h;
        CHECK_STATUS(forward_at(t, xp, ym), PYAD_OK);
        for (int64_t i = 0; i < m; ++i) {
            snprintf(ctx, sizeof ctx, "%s: dy%ld/dx%ld vs central difference", label, (long)i,
                     (long)j);
            CHECK_CLOSE(J[i * n + j], (yp[i] - ym[i]) / (2 * h), fd_rtol, fd_atol, ctx);
        }
    }
    /* the tangent sweep also works without y / yd */
    CHECK_STATUS(pyad_forward_tangent(t, x, xd, v, vd, NULL, NULL, &bad), PYAD_OK);

    /* reverse mode, one output at a time: row i of J */
    for (int64_t i = 0; i < m; ++i) {
        memset(u, 0, (size_t)m * sizeof *u);
        u[i] = 1.0;
        CHECK_STATUS(reverse_at(t, x, u, Jr + i * n), PYAD_OK);
        if (at_recorded) {
            CHECK_STATUS(pyad_reverse(t, NULL, u, adj, xbar), PYAD_OK);
            snprintf(ctx, sizeof ctx, "%s: reverse at the recorded values", label);
            CHECK_ALL_CLOSE(xbar, Jr + i * n, n, 0.0, 0.0, ctx);
        }
    }
    snprintf(ctx, sizeof ctx, "%s: forward and reverse Jacobians", label);
    CHECK_ALL_CLOSE(Jr, J, m * n, tight, tight, ctx);

    /* the one-call gradient, for tapes with one output */
    if (m == 1) {
        CHECK_STATUS(pyad_gradient(t, x, v, adj, y2, xbar, &bad), PYAD_OK);
        snprintf(ctx, sizeof ctx, "%s: pyad_gradient", label);
        CHECK_ALL_CLOSE(y2, y, 1, 0.0, 0.0, ctx);
        CHECK_ALL_CLOSE(xbar, J, n, tight, tight, ctx);
    } else {
        CHECK_STATUS(pyad_gradient(t, x, v, adj, y2, xbar, &bad), PYAD_EINVAL);
    }

    /* forward over reverse: H[i][j][l] = d2 y_i / dx_j dx_l */
    for (int64_t i = 0; i < m; ++i) {
        memset(u, 0, (size_t)m * sizeof *u);
        u[i] = 1.0;
        for (int64_t j = 0; j < n; ++j) {
            memset(xd, 0, (size_t)n * sizeof *xd);
            xd[j] = 1.0;
            CHECK_STATUS(pyad_forward_tangent(t, x, xd, v, vd, y2, yd, &bad), PYAD_OK);
            CHECK_STATUS(pyad_reverse_second(t, v, vd, u, adj, adjd, xbar, xbard), PYAD_OK);
            snprintf(ctx, sizeof ctx, "%s: gradient from the second-order sweep", label);
            CHECK_ALL_CLOSE(xbar, J + i * n, n, tight, tight, ctx);
            memcpy(H + (i * n + j) * n, xbard, (size_t)n * sizeof *xbard);
            /* central differences of the gradient */
            memcpy(xp, x, (size_t)n * sizeof *xp);
            double h = step_for(x[j]);
            xp[j] = x[j] + h;
            CHECK_STATUS(reverse_at(t, xp, u, gp), PYAD_OK);
            xp[j] = x[j] - h;
            CHECK_STATUS(reverse_at(t, xp, u, gm), PYAD_OK);
            for (int64_t l = 0; l < n; ++l)
                fd[l] = (gp[l] - gm[l]) / (2 * h);
            snprintf(ctx, sizeof ctx, "%s: H of output %ld along x%ld vs differences of the "
                     "gradient", label, (long)i, (long)j);
            CHECK_ALL_CLOSE(xbard, fd, n, 1e-4, 1e-5, ctx);
        }
        for (int64_t j = 0; j < n; ++j)
            for (int64_t l = 0; l < j; ++l) {
                snprintf(ctx, sizeof ctx, "%s: Hessian symmetry", label);
                CHECK_CLOSE(H[(i * n + j) * n + l], H[(i * n + l) * n + j], 1e-9, 1e-9, ctx);
            }
    }

    /* vector tangents: all n directions in one sweep, and one mixed direction */
    {
        double *X = dbl(n * n), *V = dbl(N * n), *YD = dbl(n * m);
        for (int64_t j = 0; j < n; ++j)
            X[j * n + j] = 1.0;
        CHECK_STATUS(pyad_tangent_vector(t, n, x, X, v, V, y2, YD, &bad), PYAD_OK);
        snprintf(ctx, sizeof ctx, "%s: vector tangent values", label);
        CHECK_ALL_CLOSE(y2, y, m, 0.0, 0.0, ctx);
        for (int64_t j = 0; j < n; ++j)
            for (int64_t i = 0; i < m; ++i) {
                snprintf(ctx, sizeof ctx, "%s: vector tangent lane %ld", label, (long)j);
                CHECK_CLOSE(YD[j * m + i], J[i * n + j], tight, tight, ctx);
            }
        for (int64_t j = 0; j < n; ++j)
            xd[j] = 1.0 + 0.5 * (double)j;
        CHECK_STATUS(pyad_tangent_vector(t, 1, x, xd, v, V, NULL, YD, &bad), PYAD_OK);
        for (int64_t i = 0; i < m; ++i) {
            double jv = 0.0;
            for (int64_t j = 0; j < n; ++j)
                jv += J[i * n + j] * xd[j];
            snprintf(ctx, sizeof ctx, "%s: one-lane vector tangent J v", label);
            CHECK_CLOSE(YD[i], jv, tight, tight, ctx);
        }
        free(X), free(V), free(YD);
    }

    /* vector adjoints: every output seeded in one sweep, and u^T J for a mixed u */
    {
        double *U = dbl(m * m), *A = dbl(N * m), *XB = dbl(m * n);
        for (int64_t i = 0; i < m; ++i)
            U[i * m + i] = 1.0;
        CHECK_STATUS(forward_at(t, x, y2), PYAD_OK);
        CHECK_STATUS(pyad_forward(t, x, v, y2, &bad), PYAD_OK);
        CHECK_STATUS(pyad_reverse_vector(t, m, v, U, A, XB), PYAD_OK);
        snprintf(ctx, sizeof ctx, "%s: vector adjoint rows", label);
        CHECK_ALL_CLOSE(XB, J, m * n, tight, tight, ctx);
        if (at_recorded) {
            CHECK_STATUS(pyad_reverse_vector(t, m, NULL, U, A, XB), PYAD_OK);
            snprintf(ctx, sizeof ctx, "%s: vector adjoint at the recorded values", label);
            CHECK_ALL_CLOSE(XB, J, m * n, tight, tight, ctx);
        }
        for (int64_t i = 0; i < m; ++i)
            u[i] = 1.0 - 0.25 * (double)i;
        CHECK_STATUS(pyad_reverse(t, v, u, adj, xbar), PYAD_OK);
        for (int64_t j = 0; j < n; ++j) {
            double uj = 0.0;
            for (int64_t i = 0; i < m; ++i)
                uj += u[i] * J[i * n + j];
            snprintf(ctx, sizeof ctx, "%s: u^T J for a mixed u", label);
            CHECK_CLOSE(xbar[j], uj, tight, tight, ctx);
        }
        free(U), free(A), free(XB);
    }

    /* vector second order: u^T H along every direction at once */
    {
        double *X = dbl(n * n), *V = dbl(N * n), *YD = dbl(n * m), *AD = dbl(N * n);
        double *XBD = dbl(n * n);
        for (int64_t j = 0; j < n; ++j)
            X[j * n + j] = 1.0;
        for (int64_t i = 0; i < m; ++i)
            u[i] = 1.0 - 0.25 * (double)i;
        CHECK_STATUS(pyad_tangent_vector(t, n, x, X, v, V, y2, YD, &bad), PYAD_OK);
        CHECK_STATUS(pyad_second_vector(t, n, v, V, u, adj, AD, xbar, XBD), PYAD_OK);
        for (int64_t j = 0; j < n; ++j)
            for (int64_t l = 0; l < n; ++l) {
                double want = 0.0, wantg = 0.0;
                for (int64_t i = 0; i < m; ++i) {
                    want += u[i] * H[(i * n + j) * n + l];
                    wantg += u[i] * J[i * n + l];
                }
                snprintf(ctx, sizeof ctx, "%s: vector second-order lane %ld", label, (long)j);
                CHECK_CLOSE(XBD[j * n + l], want, 1e-10, 1e-10, ctx);
                if (j == 0) {
                    snprintf(ctx, sizeof ctx, "%s: vector second-order gradient", label);
                    CHECK_CLOSE(xbar[l], wantg, tight, tight, ctx);
                }
            }
        free(X), free(V), free(YD), free(AD), free(XBD);
    }

    /* batches: three nearby points, checked against one sweep per point */
    {
        const int64_t nb = 3;
        double *X = dbl(nb * n), *XD = dbl(nb * n), *U = dbl(nb * m);
        double *BV = dbl(N * nb), *BVD = dbl(N * nb), *BA = dbl(N * nb), *BAD = dbl(N * nb);
        double *BY = dbl(nb * m), *BYD = dbl(nb * m), *BXB = dbl(nb * n), *BXBD = dbl(nb * n);
        int64_t badv[3], n_bad = -1;
        for (int64_t b = 0; b < nb; ++b) {
            for (int64_t j = 0; j < n; ++j) {
                X[b * n + j] = x[j] + 1e-3 * (double)b * (j % 2 ? -1.0 : 1.0);
                XD[b * n + j] = (double)((b + j) % 3) - 0.5;
            }
            for (int64_t i = 0; i < m; ++i)
                U[b * m + i] = 1.0 + (double)b - 0.5 * (double)i;
        }
        CHECK_STATUS(pyad_forward_batch(t, nb, X, BV, BY, badv, &n_bad), PYAD_OK);
        CHECK(n_bad == 0 && badv[0] == -1 && badv[1] == -1 && badv[2] == -1);
        CHECK_STATUS(pyad_forward_batch(t, nb, X, BV, NULL, badv, &n_bad), PYAD_OK);
        CHECK_STATUS(pyad_reverse_batch(t, nb, BV, U, BA, BXB), PYAD_OK);
        for (int64_t b = 0; b < nb; ++b) {
            CHECK_STATUS(reverse_at(t, X + b * n, U + b * m, xbar), PYAD_OK);
            CHECK_STATUS(forward_at(t, X + b * n, y2), PYAD_OK);
            snprintf(ctx, sizeof ctx, "%s: batch values at point %ld", label, (long)b);
            CHECK_ALL_CLOSE(BY + b * m, y2, m, 0.0, 0.0, ctx);
            snprintf(ctx, sizeof ctx, "%s: batch adjoints at point %ld", label, (long)b);
            CHECK_ALL_CLOSE(BXB + b * n, xbar, n, tight, tight, ctx);
        }
        CHECK_STATUS(pyad_tangent_batch(t, nb, X, XD, BV, BVD, BY, BYD, badv, &n_bad), PYAD_OK);
        CHECK(n_bad == 0);
        CHECK_STATUS(pyad_second_batch(t, nb, BV, BVD, U, BA, BAD, BXB, BXBD), PYAD_OK);
        for (int64_t b = 0; b < nb; ++b) {
            CHECK_STATUS(pyad_forward_tangent(t, X + b * n, XD + b * n, v, vd, y2, yd, &bad),
                         PYAD_OK);
            snprintf(ctx, sizeof ctx, "%s: batch tangents at point %ld", label, (long)b);
            CHECK_ALL_CLOSE(BYD + b * m, yd, m, tight, tight, ctx);
            CHECK_STATUS(pyad_reverse_second(t, v, vd, U + b * m, adj, adjd, xbar, xbard),
                         PYAD_OK);
            snprintf(ctx, sizeof ctx, "%s: batch second order at point %ld", label, (long)b);
            CHECK_ALL_CLOSE(BXBD + b * n, xbard, n, 1e-10, 1e-10, ctx);
            CHECK_ALL_CLOSE(BXB + b * n, xbar, n, tight, tight, ctx);
        }
        free(X), free(XD), free(U), free(BV), free(BVD), free(BA), free(BAD), free(BY),
            free(BYD), free(BXB), free(BXBD);
    }

    /* export / validate / import: the copy replays identically */
    {
        pyad_tape *copy = round_trip(t);
        if (copy) {
            CHECK(pyad_n_slots(copy) == N && pyad_n_ops(copy) == pyad_n_ops(t)
                  && pyad_n_blocks(copy) == pyad_n_blocks(t) && pyad_n_inputs(copy) == n
                  && pyad_n_outputs(copy) == m && pyad_n_consts(copy) == pyad_n_consts(t)
                  && pyad_n_pool(copy) == pyad_n_pool(t));
            CHECK_STATUS(forward_at(copy, x, y2), PYAD_OK);
            snprintf(ctx, sizeof ctx, "%s: imported copy values", label);
            CHECK_ALL_CLOSE(y2, y, m, 0.0, 0.0, ctx);
            for (int64_t i = 0; i < m; ++i) {
                memset(u, 0, (size_t)m * sizeof *u);
                u[i] = 1.0;
                CHECK_STATUS(reverse_at(copy, x, u, xbar), PYAD_OK);
                snprintf(ctx, sizeof ctx, "%s: imported copy gradient", label);
                CHECK_ALL_CLOSE(xbar, J + i * n, n, tight, tight, ctx);
            }
            pyad_tape_free(copy);
        }
    }

    free(v), free(vd), free(adj), free(adjd), free(y), free(y2), free(yd), free(yp), free(ym);
    free(J), free(Jr), free(H), free(xd), free(u), free(xbar), free(xbard), free(xp), free(gp);
    free(gm), free(fd);
}

/* ---- group: the table itself ---- */

static void group_table(void)
{
    int count = pyad_op_count();
    CHECK(count > 0 && count <= 256); /* op codes are stored in one byte */
    for (int i = 0; i < count; ++i) {
        const char *name = pyad_op_name(i);
        int kind = pyad_op_kind(i);
        CHECK(name && name[0] != '\0');
        CHECK(kind >= PYAD_KIND_SPECIAL && kind <= PYAD_KIND_COMPARE_C);
        CHECK(op_code(name) == i); /* names are unique */
    }
    CHECK(strcmp(pyad_op_name(-1), "") == 0);
    CHECK(strcmp(pyad_op_name(count), "") == 0);
    CHECK(strcmp(pyad_op_name(1000), "") == 0);
    CHECK_STATUS(pyad_op_kind(-1), PYAD_EINVAL);
    CHECK_STATUS(pyad_op_kind(count), PYAD_EINVAL);
    CHECK_STATUS(pyad_op_kind(255), PYAD_EINVAL);
    const int statuses[] = {PYAD_OK, PYAD_ENOMEM, PYAD_EINVAL, PYAD_EINDEX, PYAD_ETOOBIG,
                            PYAD_EBRANCH, PYAD_ECLOSED, PYAD_EBUSY, PYAD_EFORMAT,
                            PYAD_ECALLBACK};
    for (size_t i = 0; i < sizeof statuses / sizeof *statuses; ++i) {
        const char *msg = pyad_strerror(statuses[i]);
        CHECK(msg && msg[0] != '\0' && strcmp(msg, "unknown status") != 0);
    }
    CHECK(strcmp(pyad_strerror(-99), "unknown status") == 0);
    CHECK(strcmp(pyad_strerror(7), "unknown status") == 0);
    const char *const status_names[] = {"PYAD_OK", "PYAD_ENOMEM", "PYAD_EINVAL", "PYAD_EINDEX",
                                        "PYAD_ETOOBIG", "PYAD_EBRANCH", "PYAD_ECLOSED",
                                        "PYAD_EBUSY", "PYAD_EFORMAT", "PYAD_ECALLBACK"};
    for (size_t i = 0; i < sizeof statuses / sizeof *statuses; ++i)
        CHECK(strcmp(pyad_status_name(statuses[i]), status_names[i]) == 0);
    CHECK(pyad_status_name(-99) == NULL && pyad_status_name(7) == NULL);
}

/* ---- group: the registry's facts about each row ---- */

static void group_registry_facts(void)
{
    int count = pyad_op_count();
    for (int i = 0; i < count; ++i) {
        int kind = pyad_op_kind(i), forms[2] = {pyad_op_const_form(i), pyad_op_rconst_form(i)};
        int keyed = kind == PYAD_KIND_BINARY || kind == PYAD_KIND_COMPARE;
        int constant_kind = kind == PYAD_KIND_COMPARE ? PYAD_KIND_COMPARE_C : PYAD_KIND_WITH_CONST;
        for (int j = 0; j < 2; ++j) {
            /* a constant form is an op of the matching constant kind, or -1 */
            CHECK(forms[j] == -1 || (keyed && pyad_op_kind(forms[j]) == constant_kind));
        }
        CHECK(pyad_op_differentiable(i) == 0 || pyad_op_differentiable(i) == 1);
        if (kind == PYAD_KIND_COMPARE || kind == PYAD_KIND_COMPARE_C)
            CHECK(pyad_op_differentiable(i) == 0);
        const char *np = pyad_op_numpy(i), *op = pyad_op_operator(i);
        CHECK(!np || strncmp(np, "numpy.", 6) == 0 || strncmp(np, "scipy.", 6) == 0);
        CHECK(!op || (strncmp(op, "__", 2) == 0 && strlen(op) > 4));
        if (kind == PYAD_KIND_WITH_CONST || kind == PYAD_KIND_COMPARE_C)
            CHECK(!np && !op);
    }
    CHECK(pyad_op_const_form(op_code("sub")) == op_code("sub_c"));
    CHECK(pyad_op_rconst_form(op_code("sub")) == op_code("rsub_c"));
    CHECK(pyad_op_rconst_form(op_code("lt")) == op_code("gt_c"));
    CHECK(pyad_op_const_form(op_code("arctan2")) == -1);
    CHECK(strcmp(pyad_op_numpy(op_code("neg")), "numpy.negative") == 0);
    CHECK(strcmp(pyad_op_operator(op_code("div")), "__truediv__") == 0);
    CHECK(pyad_op_numpy(op_code("rsub_c")) == NULL);
    CHECK(pyad_op_numpy(-1) == NULL && pyad_op_operator(count) == NULL);
    CHECK_STATUS(pyad_op_const_form(-1), PYAD_EINVAL);
    CHECK_STATUS(pyad_op_rconst_form(count), PYAD_EINVAL);
    CHECK_STATUS(pyad_op_differentiable(count), PYAD_EINVAL);
}

/* ---- group: every primitive of the table ---- */

static const char *const KNOWN_SPECIALS[] = {"input", "constant", "select", "guard_true",
                                             "guard_false", "axpy_c", "max_n", "min_n",
                                             /* gathers, reductions, scans: group_specials
                                              * and composite() */
                                             "gather", "reduce_add", "reduce_mul",
                                             "reduce_max", "reduce_min", "cumsum", "cumprod",
                                             /* products: group_products */
                                             "matmul", "matmul_c", "rmatmul_c",
                                             /* the caller's rules: group_custom */
                                             "custom",
                                             /* LU family: test_linalg_lu.c */
                                             "solve", "inv", "det", "slogdet",
                                             /* group_linalg_sym */
                                             "cholesky", "solve_triangular",
                                             /* test_linalg_eig.c */
                                             "eigh"};

/* The value a comparison primitive must give (by its name). */
static int compare_by_name(const char *name, double x, double y, double *want)
{
    static const char *const names[] = {"lt", "le", "gt", "ge", "eq", "ne"};
    char base[8];
    size_t len = strlen(name);
    if (len >= sizeof base)
        return 0;
    memcpy(base, name, len + 1);
    if (len > 2 && strcmp(base + len - 2, "_c") == 0)
        base[len - 2] = '\0';
    for (int i = 0; i < 6; ++i)
        if (strcmp(base, names[i]) == 0) {
            int r = i == 0 ? x < y : i == 1 ? x <= y : i == 2 ? x > y
                  : i == 3 ? x >= y : i == 4 ? x == y : x != y;
            *want = r ? 1.0 : 0.0;
            return 1;
        }
    return 0;
}

/* The slot value of one recorded row, recorded again through the buffered
 * path (pyad_rec_rows, what Python uses for scalars) and the _n path. */
static void check_other_recorders(int op, int kind, const double *xin, int64_t n_in, double c,
                                  double want, const char *name)
{
    char ctx[160];
    pyad_tape *t = new_tape();
    CHECK_STATUS(pyad_rec_input_n(t, xin, n_in), 0);
    double got = NAN;
    int32_t slot;
    uint8_t ops[1] = {(uint8_t)op};
    int32_t a[1] = {0}, b[1] = {n_in > 1 ? 1 : 0};
    int with_const = kind == PYAD_KIND_WITH_CONST || kind == PYAD_KIND_COMPARE_C;
    if (with_const)
        b[0] = 0; /* index into the constants of this call */
    slot = pyad_rec_rows(t, ops, a, b, 1, &c, with_const ? 1 : 0);
    CHECK_STATUS(slot, n_in);
    CHECK_STATUS(pyad_values(t, &slot, 1, &got), PYAD_OK);
    snprintf(ctx, sizeof ctx, "%s recorded by pyad_rec_rows", name);
    CHECK_CLOSE(got, want, 0.0, 0.0, ctx);
    /* two rows per call through the _n recorders */
    int32_t a2[2] = {0, 0}, b2[2] = {b[0], b[0]};
    double c2[2] = {c, c};
    int first;
    if (kind == PYAD_KIND_UNARY)
        first = pyad_rec1_n(t, op, a2, 2);
    else if (kind == PYAD_KIND_BINARY || kind == PYAD_KIND_COMPARE)
        first = pyad_rec2_n(t, op, a2, b2, 2);
    else
        first = pyad_rec_c_n(t, op, a2, c2, 2, 2);
    CHECK_STATUS(first, n_in + 1);
    int32_t s2[2] = {first, first + 1};
    double got2[2] = {NAN, NAN};
    CHECK_STATUS(pyad_values(t, s2, 2, got2), PYAD_OK);
    snprintf(ctx, sizeof ctx, "%s recorded by the _n recorder", name);
    CHECK_CLOSE(got2[0], want, 0.0, 0.0, ctx);
    CHECK_CLOSE(got2[1], want, 0.0, 0.0, ctx);
    if (with_const) { /* one constant shared by every row */
        first = pyad_rec_c_n(t, op, a2, &c, 1, 2);
        CHECK_STATUS(first, n_in + 3);
        s2[0] = first, s2[1] = first + 1;
        CHECK_STATUS(pyad_values(t, s2, 2, got2), PYAD_OK);
        CHECK_CLOSE(got2[1], want, 0.0, 0.0, ctx);
    }
    pyad_tape_free(t);
}

/* A unary row that is not differentiable (stop_gradient, sign, floor, ceil)
 * has a zero derivative in every sweep: t records z = x * op(x), whose
 * derivative is op(x) (the row's value, v[1]) and whose second derivative is 0
 * (without the rule, 2x and 2 for stop_gradient). stop_gradient's value is x. */
static void check_zero_derivative_row(int op, const char *name)
{
    char ctx[160];
    const double x0 = 0.3, one = 1.0;
    pyad_tape *t = new_tape();
    CHECK_STATUS(pyad_rec_input(t, x0), 0);
    CHECK_STATUS(pyad_rec1(t, op, 0), 1);
    CHECK_STATUS(pyad_rec2(t, op_code("mul"), 0, 1), 2);
    CHECK_STATUS(pyad_rec_output(t, 2), 0);
    double v[3], vd[3], adj[3], adjd[3], y, yd, xbar, xbard;
    int64_t bad = -1;
    snprintf(ctx, sizeof ctx, "%s: value and first derivative", name);
    CHECK_STATUS(pyad_forward_tangent(t, &x0, &one, v, vd, &y, &yd, &bad), PYAD_OK);
    if (strcmp(name, "stop_gradient") == 0)
        CHECK_CLOSE(v[1], x0, 0.0, 0.0, ctx);
    const double op_x0 = v[1];
    CHECK_CLOSE(vd[1], 0.0, 0.0, 0.0, ctx);
    CHECK_CLOSE(yd, op_x0, 0.0, 0.0, ctx);
    CHECK_STATUS(pyad_reverse_second(t, v, vd, &one, adj, adjd, &xbar, &xbard), PYAD_OK);
    CHECK_CLOSE(xbar, op_x0, 0.0, 0.0, ctx);
    CHECK_CLOSE(xbard, 0.0, 0.0, 0.0, ctx); /* the derivative op(x) has derivative 0 */
    double vv[3], vvd[6], xd2[2] = {1.0, 2.0}, yv, yvd[2], vadj[3], vadjd[6], vxbar, vxbard[2];
    CHECK_STATUS(pyad_tangent_vector(t, 2, &x0, xd2, vv, vvd, &yv, yvd, &bad), PYAD_OK);
    CHECK_CLOSE(yvd[0], op_x0, 0.0, 0.0, ctx);
    CHECK_CLOSE(yvd[1], 2.0 * op_x0, 0.0, 0.0, ctx);
    CHECK_STATUS(pyad_second_vector(t, 2, vv, vvd, &one, vadj, vadjd, &vxbar, vxbard), PYAD_OK);
    CHECK_CLOSE(vxbard[0], 0.0, 0.0, 0.0, ctx);
    CHECK_CLOSE(vxbard[1], 0.0, 0.0, 0.0, ctx);
    double xb[2] = {0.3, -1.5}, xbd[2] = {1.0, 1.0}, bv[6], bvd[6], by[2], byd[2], bu[2] = {1.0, 1.0};
    double badj[6], badjd[6], bxbar[2], bxbard[2];
    int64_t bbad[2], n_bad = -1;
    CHECK_STATUS(pyad_tangent_batch(t, 2, xb, xbd, bv, bvd, by, byd, bbad, &n_bad), PYAD_OK);
    CHECK(n_bad == 0);
    /* slot-major: bv[k * 2 + b] is slot k at point b; slot 1 is op(x) */
    CHECK_CLOSE(byd[1], bv[3], 0.0, 0.0, ctx);
    CHECK_STATUS(pyad_second_batch(t, 2, bv, bvd, bu, badj, badjd, bxbar, bxbard), PYAD_OK);
    CHECK_CLOSE(bxbar[1], bv[3], 0.0, 0.0, ctx);
    CHECK_CLOSE(bxbard[1], 0.0, 0.0, 0.0, ctx);
    CHECK_STATUS(pyad_reverse_batch(t, 2, bv, bu, badj, bxbar), PYAD_OK);
    CHECK_CLOSE(bxbar[0], bv[2], 0.0, 0.0, ctx);
    pyad_tape_free(t);
}

/* A point inside the unary row's domain (0.3 is inside every one but arccosh's,
 * x >= 1), and a second one to replay at. */
static void unary_points(const char *name, double *x0, double *again)
{
    int shifted = strcmp(name, "arccosh") == 0;
    *x0 = shifted ? 1.3 : 0.3;
    *again = shifted ? 1.45 : 0.45;
}

static void group_ops(void)
{
    char label[96];
    int count = pyad_op_count();
    int tested = 0;
    for (int op = 0; op < count; ++op) {
        const char *name = pyad_op_name(op);
        int kind = pyad_op_kind(op);
        snprintf(label, sizeof label, "op %s", name);
        if (kind == PYAD_KIND_UNARY && !pyad_op_differentiable(op)) {
            check_zero_derivative_row(op, name);
            tested++;
        } else if (kind == PYAD_KIND_UNARY) {
            double x0, again;
            unary_points(name, &x0, &again);
            pyad_tape *t = new_tape();
            int in = pyad_rec_input(t, x0);
            CHECK_STATUS(in, 0);
            int z = pyad_rec1(t, op, in);
            CHECK_STATUS(z, 1);
            int zz = pyad_rec1(t, op, z); /* composed with itself: a second derivative path */
            CHECK_STATUS(zz, 2);
            CHECK_STATUS(pyad_rec_output(t, z), 0);
            double zval = NAN;
            int32_t zs = z;
            CHECK_STATUS(pyad_values(t, &zs, 1, &zval), PYAD_OK);
            CHECK(isfinite(zval));
            check_other_recorders(op, kind, &x0, 1, 0.0, zval, name);
            check_sweeps(t, &x0, 1, label);
            check_sweeps(t, &again, 0, label);
            pyad_tape_free(t);
            tested++;
        } else if (kind == PYAD_KIND_BINARY || kind == PYAD_KIND_COMPARE) {
            double x[2] = {0.7, 0.4}, again[2] = {0.55, 0.35};
            pyad_tape *t = new_tape();
            CHECK_STATUS(pyad_rec_input_n(t, x, 2), 0);
            int z = pyad_rec2(t, op, 0, 1);
            CHECK_STATUS(z, 2);
            int w = pyad_rec2(t, op, 1, 0); /* operands swapped */
            int s = pyad_rec2(t, op, 0, 0); /* one slot as both operands */
            CHECK_STATUS(w, 3);
            CHECK_STATUS(s, 4);
            CHECK_STATUS(pyad_rec_output(t, z), 0);
            CHECK_STATUS(pyad_rec_output(t, w), 1);
            CHECK_STATUS(pyad_rec_output(t, s), 2);
            int32_t slots[3] = {z, w, s};
            double vals[3];
            CHECK_STATUS(pyad_values(t, slots, 3, vals), PYAD_OK);
            if (kind == PYAD_KIND_COMPARE) {
                double want;
                CHECK(compare_by_name(name, x[0], x[1], &want) && vals[0] == want);
                CHECK(compare_by_name(name, x[1], x[0], &want) && vals[1] == want);
                CHECK(compare_by_name(name, x[0], x[0], &want) && vals[2] == want);
            }
            check_other_recorders(op, kind, x, 2, 0.0, vals[0], name);
            check_sweeps(t, x, 1, label);
            check_sweeps(t, again, 0, label);
            pyad_tape_free(t);
            tested++;
        } else if (kind == PYAD_KIND_WITH_CONST || kind == PYAD_KIND_COMPARE_C) {
            double x0 = 0.3, again = 0.45;
            pyad_tape *t = new_tape();
            CHECK_STATUS(pyad_rec_input(t, x0), 0);
            int z = pyad_rec_c(t, op, 0, 1.3);
            int w = pyad_rec_c(t, op, 0, 2.0);
            int e = pyad_rec_c(t, op, 0, 0.3); /* the constant equals x */
            CHECK_STATUS(z, 1);
            CHECK_STATUS(w, 2);
            CHECK_STATUS(e, 3);
            CHECK(pyad_n_consts(t) == 3);
            CHECK_STATUS(pyad_rec_output(t, z), 0);
            CHECK_STATUS(pyad_rec_output(t, w), 1);
            int32_t slots[3] = {z, w, e};
            double vals[3];
            CHECK_STATUS(pyad_values(t, slots, 3, vals), PYAD_OK);
            if (kind == PYAD_KIND_COMPARE_C) {
                double want;
                CHECK(compare_by_name(name, x0, 1.3, &want) && vals[0] == want);
                CHECK(compare_by_name(name, x0, 2.0, &want) && vals[1] == want);
                CHECK(compare_by_name(name, x0, 0.3, &want) && vals[2] == want);
            }
            check_other_recorders(op, kind, &x0, 1, 1.3, vals[0], name);
            check_sweeps(t, &x0, 1, label);
            check_sweeps(t, &again, 0, label);
            pyad_tape_free(t);
            tested++;
        } else if (kind == PYAD_KIND_SPECIAL) {
            int known = 0;
            for (size_t i = 0; i < sizeof KNOWN_SPECIALS / sizeof *KNOWN_SPECIALS; ++i)
                known |= strcmp(name, KNOWN_SPECIALS[i]) == 0;
            if (!known) {
                failed++;
                fprintf(stderr, "special op %s has no test in tests/c/test_core.c\n", name);
            }
            tested++; /* the specials are exercised in group_specials */
        } else {
            failed++;
            fprintf(stderr, "op %s has an unknown kind %d\n", name, kind);
        }
    }
    CHECK(tested == count);

    /* ties of maximum / minimum share the derivative evenly */
    const char *ties[] = {"maximum", "minimum"};
    for (int i = 0; i < 2; ++i) {
        int op = OP(ties[i]), op_c = OP(i ? "minimum_c" : "maximum_c");
        if (op < 0 || op_c < 0)
            continue;
        pyad_tape *t = new_tape();
        double x[2] = {0.5, 0.5}, g[2], one = 1.0;
        CHECK_STATUS(pyad_rec_input_n(t, x, 2), 0);
        CHECK_STATUS(pyad_rec_output(t, pyad_rec2(t, op, 0, 1)), 0);
        CHECK_STATUS(reverse_at(t, x, &one, g), PYAD_OK);
        CHECK(g[0] == 0.5 && g[1] == 0.5);
        pyad_tape_free(t);
        t = new_tape();
        CHECK_STATUS(pyad_rec_input(t, 0.5), 0);
        CHECK_STATUS(pyad_rec_output(t, pyad_rec_c(t, op_c, 0, 0.5)), 0);
        CHECK_STATUS(reverse_at(t, x, &one, g), PYAD_OK);
        CHECK(g[0] == 0.5);
        pyad_tape_free(t);
    }
    /* the kinks of abs and pow follow JAX: abs'(0) = 0, d(0**y)/dy = 0, d(x**0)/dx = 0 */
    {
        int op_abs = OP("abs"), op_pow = OP("pow");
        if (op_abs >= 0 && op_pow >= 0) {
            pyad_tape *t = new_tape();
            double x[2] = {0.0, 0.0}, g[2], one = 1.0;
            CHECK_STATUS(pyad_rec_input_n(t, x, 2), 0);
            CHECK_STATUS(pyad_rec_output(t, pyad_rec1(t, op_abs, 0)), 0);
            CHECK_STATUS(reverse_at(t, x, &one, g), PYAD_OK);
            CHECK(g[0] == 0.0);
            pyad_tape_free(t);
            t = new_tape();
            double p[2] = {0.0, 2.0};
            CHECK_STATUS(pyad_rec_input_n(t, p, 2), 0);
            CHECK_STATUS(pyad_rec_output(t, pyad_rec2(t, op_pow, 0, 1)), 0);
            CHECK_STATUS(reverse_at(t, p, &one, g), PYAD_OK);
            CHECK(g[0] == 0.0 && g[1] == 0.0);
            double q[2] = {3.0, 0.0};
            CHECK_STATUS(reverse_at(t, q, &one, g), PYAD_OK);
            CHECK(g[0] == 0.0 && close_to(g[1], log(3.0), 1e-15, 0));
            pyad_tape_free(t);
        }
    }
}

/* ---- group: product rows (z = A @ B, one row calling BLAS in every sweep) ---- */

/* cholesky and solve_triangular rows (csrc/linalg_sym.c) over a symmetric /
 * triangular 2 x 2 matrix gathered from inputs (a, b, c), B = (d, e). */
static void group_linalg_sym(void)
{
    int sin_ = OP("sin");
    if (sin_ < 0)
        return;
    double x[5] = {2.0, 0.3, 1.5, 0.7, -0.4}, again[5] = {1.0, -0.2, 2.0, 0.5, 0.3};
    int32_t sym[4] = {0, 1, 1, 2}, low[4] = {0, 0, 1, 2};
    for (int op = 0; op < 2; ++op) {
        const char *label = op ? "solve_triangular" : "cholesky";
        pyad_tape *t = new_tape();
        CHECK_STATUS(pyad_rec_input_n(t, x, 5), 0);
        int a = pyad_rec_gather(t, op ? low : sym, 4);
        CHECK_STATUS(a, 5);
        int z = op ? pyad_rec_solve_triangular(t, a, 3, 2, 1, 1, PYAD_TRI_LOWER)
                   : pyad_rec_cholesky(t, a, 2, 1);
        CHECK_STATUS(z, 9);
        int w = op ? 2 : 4;
        int32_t zs[4] = {9, 10, 11, 12}, outs[4];
        int s = pyad_rec1_n(t, sin_, zs, w);
        for (int i = 0; i < w; ++i)
            outs[i] = s + i;
        CHECK_STATUS(pyad_rec_output_n(t, outs, w), 0);
        double got[4], want[4];
        CHECK_STATUS(pyad_values(t, zs, w, got), PYAD_OK);
        if (op) {
            want[0] = x[3] / x[0];
            want[1] = (x[4] - x[1] * want[0]) / x[2];
        } else {
            want[0] = sqrt(x[0]);
            want[1] = 0.0;
            want[2] = x[1] / want[0];
            want[3] = sqrt(x[2] - want[2] * want[2]);
        }
        CHECK_ALL_CLOSE(got, want, w, 1e-15, 1e-15, label);
        check_sweeps(t, x, 1, label);
        check_sweeps(t, again, 0, label);
        pyad_tape_free(t);
    }
    /* a matrix that is not positive definite, a singular triangle: refused, the
     * tape unchanged; bad sizes and flags */
    double bad[5] = {-1.0, 0.0, 1.0, 1.0, 1.0};
    pyad_tape *t = new_tape();
    CHECK_STATUS(pyad_rec_input_n(t, bad, 5), 0);
    CHECK_STATUS(pyad_rec_gather(t, sym, 4), 5);
    int64_t ops = pyad_n_ops(t), slots = pyad_n_slots(t), blocks = pyad_n_blocks(t);
    CHECK_STATUS(pyad_rec_cholesky(t, 5, 2, 1), PYAD_ELINALG);
    CHECK(pyad_n_ops(t) == ops && pyad_n_slots(t) == slots && pyad_n_blocks(t) == blocks);
    CHECK_STATUS(pyad_rec_solve_triangular(t, 1, 3, 1, 1, 1, 0), PYAD_ELINALG); /* A = 0 */
    CHECK_STATUS(pyad_rec_solve_triangular(t, 5, 3, 2, 1, 1, PYAD_TRI_UNIT), 9);
    CHECK_STATUS(pyad_rec_cholesky(t, 0, 0, 1), PYAD_EINVAL);
    CHECK_STATUS(pyad_rec_cholesky(t, 0, 2, 0), PYAD_EINVAL);
    CHECK_STATUS(pyad_rec_solve_triangular(t, 0, 0, 2, 1, 1, 8), PYAD_EINVAL);
    CHECK_STATUS(pyad_rec_cholesky(t, 1000, 2, 1), PYAD_EINDEX);
    CHECK_STATUS(pyad_rec_cholesky(NULL, 0, 2, 1), PYAD_ECLOSED);
    pyad_tape_free(t);
}

static void group_products(void)
{
    int sin_ = OP("sin");
    if (sin_ < 0)
        return;
    /* A is 2 x 3, B 3 x 2: A's slots 0..5, B's 6..11; a constant is W (2x3 or 3x2) */
    static const double W[6] = {0.5, -1.0, 2.0, 0.25, 1.5, -0.75};
    double x[12], again[12];
    for (int i = 0; i < 12; ++i) {
        x[i] = 0.1 * (i + 1) * (i % 2 ? -1.0 : 1.0);
        again[i] = 0.3 - 0.05 * i;
    }
    char label[96];
    for (int kind = 0; kind < 3; ++kind) /* active @ active, active @ W, W @ active */
        for (int trans = 0; trans < 4; ++trans) {
            int const_a = kind == 2, const_b = kind == 1;
            if ((const_a && (trans & 1)) || (const_b && (trans & 2)))
                continue;
            snprintf(label, sizeof label, "product kind %d trans %d", kind, trans);
            int flags = trans | (const_a ? PYAD_PRODUCT_CONST_A : 0)
                        | (const_b ? PYAD_PRODUCT_CONST_B : 0);
            pyad_tape *t = new_tape();
            CHECK_STATUS(pyad_rec_input_n(t, x, 12), 0);
            int z = pyad_rec_product(t, 0, 6, 2, 3, 2, flags, kind ? W : NULL);
            CHECK_STATUS(z, 12);
            CHECK(pyad_n_ops(t) == 2 && pyad_n_slots(t) == 16 && pyad_n_blocks(t) == 2);
            int32_t zs[4] = {12, 13, 14, 15}, outs[4] = {16, 17, 18, 19};
            CHECK_STATUS(pyad_rec1_n(t, sin_, zs, 4), 16); /* second derivatives too */
            CHECK_STATUS(pyad_rec_output_n(t, outs, 4), 0);
            double got[4], want[4] = {0};
            CHECK_STATUS(pyad_values(t, zs, 4, got), PYAD_OK);
            for (int i = 0; i < 2; ++i)
                for (int j = 0; j < 2; ++j)
                    for (int q = 0; q < 3; ++q) {
                        double a = const_a ? W[i * 3 + q] : (trans & 1) ? x[q * 2 + i] : x[i * 3 + q];
                        double b = const_b ? W[q * 2 + j]
                                   : (trans & 2) ? x[6 + j * 3 + q] : x[6 + q * 2 + j];
                        want[i * 2 + j] += a * b;
                    }
            CHECK_ALL_CLOSE(got, want, 4, 1e-15, 1e-15, label);
            check_sweeps(t, x, 1, label);
            check_sweeps(t, again, 0, label);
            pyad_tape_free(t);
        }
    /* arguments refused, the tape unchanged */
    pyad_tape *t = new_tape();
    CHECK_STATUS(pyad_rec_input_n(t, x, 6), 0);
    CHECK_STATUS(pyad_rec_product(NULL, 0, 0, 1, 1, 1, 0, NULL), PYAD_ECLOSED);
    CHECK_STATUS(pyad_rec_product(t, 0, 0, 0, 1, 1, 0, NULL), PYAD_EINVAL); /* m = 0 */
    CHECK_STATUS(pyad_rec_product(t, 0, 0, 1, 1, 1, 16, NULL), PYAD_EINVAL); /* unknown flag */
    CHECK_STATUS(pyad_rec_product(t, 0, 0, 1, 1, 1, PYAD_PRODUCT_CONST_A | PYAD_PRODUCT_CONST_B, W),
                 PYAD_EINVAL);
    CHECK_STATUS(pyad_rec_product(t, 0, 0, 1, 1, 1, PYAD_PRODUCT_CONST_A | PYAD_PRODUCT_TRANS_A, W),
                 PYAD_EINVAL);
    CHECK_STATUS(pyad_rec_product(t, 0, 0, 1, 1, 1, PYAD_PRODUCT_CONST_B, NULL), PYAD_EINVAL);
    CHECK_STATUS(pyad_rec_product(t, 0, 4, 2, 1, 3, 0, NULL), PYAD_EINDEX); /* B: slots 4..6 */
    CHECK_STATUS(pyad_rec_product(t, -1, 0, 1, 1, 1, 0, NULL), PYAD_EINDEX);
    CHECK_STATUS(pyad_rec_product(t, 0, 0, (int64_t)1 << 20, (int64_t)1 << 12, 1,
                                  PYAD_PRODUCT_CONST_B, W), PYAD_ETOOBIG); /* m * k */
    CHECK(pyad_n_ops(t) == 1 && pyad_n_slots(t) == 6 && pyad_n_consts(t) == 0);
    pyad_tape_free(t);
}

/* ---- group: the special rows (inputs, constants, select, guards, axpy, max_n) ---- */

static void group_specials(void)
{
    int gt_c = OP("gt_c"), mul = OP("mul"), sin_ = OP("sin"), add = OP("add");
    int maximum = OP("maximum"), minimum = OP("minimum"), mul_op = OP("mul");
    int axpy = OP("axpy_c");
    if (gt_c < 0 || mul < 0 || sin_ < 0 || add < 0 || maximum < 0 || minimum < 0 || axpy < 0)
        return;

    /* inputs and constants: slots, counts, values */
    {
        pyad_tape *t = new_tape();
        double xs[3] = {1.5, -2.0, 0.25}, cs[2] = {7.0, -1.0};
        CHECK_STATUS(pyad_rec_input_n(t, xs, 3), 0);
        CHECK_STATUS(pyad_rec_input(t, 4.0), 3);
        CHECK_STATUS(pyad_rec_const(t, 3.0), 4);
        CHECK_STATUS(pyad_rec_const_n(t, cs, 2), 5);
        CHECK_STATUS(pyad_rec_input_n(t, xs, 0), 7); /* n = 0 records nothing */
        CHECK_STATUS(pyad_rec_const_n(t, cs, 0), 7);
        /* rows: the input block, an input, a constant, the constant block */
        CHECK(pyad_n_ops(t) == 4 && pyad_n_slots(t) == 7 && pyad_n_inputs(t) == 4
              && pyad_n_consts(t) == 3 && pyad_n_blocks(t) == 2);
        int32_t in[4], slots[7] = {0, 1, 2, 3, 4, 5, 6};
        double vals[7];
        CHECK_STATUS(pyad_input_slots(t, in), PYAD_OK);
        CHECK(in[0] == 0 && in[1] == 1 && in[2] == 2 && in[3] == 3);
        CHECK_STATUS(pyad_values(t, slots, 7, vals), PYAD_OK);
        CHECK(vals[0] == 1.5 && vals[3] == 4.0 && vals[4] == 3.0 && vals[5] == 7.0
              && vals[6] == -1.0);
        for (int k = 0; k < 2; ++k)
            CHECK_STATUS(pyad_op_at(t, k), OP("input"));
        for (int k = 2; k < 4; ++k)
            CHECK_STATUS(pyad_op_at(t, k), OP("constant"));
        /* y = x0 * c0 + x3: constants have no derivative */
        int p = pyad_rec2(t, mul, 0, 4);
        int y = pyad_rec2(t, add, p, 3);
        CHECK_STATUS(pyad_rec_output(t, y), 0);
        double x4[4] = {1.5, -2.0, 0.25, 4.0};
        check_sweeps(t, x4, 1, "inputs and constants");
        CHECK(pyad_nbytes(t) > 0);
        int64_t before = pyad_nbytes(t);
        CHECK_STATUS(pyad_shrink(t), PYAD_OK);
        CHECK(pyad_nbytes(t) <= before);
        check_sweeps(t, x4, 1, "after shrink");
        CHECK_STATUS(pyad_rec1(t, sin_, y), 9); /* grows again after shrinking */
        pyad_tape_free(t);
    }

    /* select: the branch follows the condition at replay, both ways */
    {
        pyad_tape *t = new_tape();
        double x[2] = {0.7, 1.3};
        CHECK_STATUS(scalar_inputs(t, x, 2), 0);
        int cond = pyad_rec_c(t, gt_c, 0, 0.5);
        int a = pyad_rec2(t, mul, 0, 1);
        int b = pyad_rec1(t, sin_, 1);
        int s = pyad_rec_select(t, cond, a, b);
        CHECK_STATUS(s, 5);
        CHECK_STATUS(pyad_op_at(t, s), OP("select"));
        int s2 = pyad_rec_select(t, cond, b, a); /* the other way round */
        CHECK_STATUS(pyad_rec_output(t, s), 0);
        CHECK_STATUS(pyad_rec_output(t, s2), 1);
        double y[2];
        CHECK_STATUS(forward_at(t, x, y), PYAD_OK);
        CHECK(y[0] == 0.7 * 1.3 && y[1] == sin(1.3));
        double other[2] = {0.2, 1.1};
        CHECK_STATUS(forward_at(t, other, y), PYAD_OK);
        CHECK(y[0] == sin(1.1) && y[1] == 0.2 * 1.1);
        check_sweeps(t, x, 1, "select (true)");
        check_sweeps(t, other, 0, "select (false)");
        /* select_n: several at once */
        int32_t c3[2] = {cond, cond}, a3[2] = {a, b}, b3[2] = {b, a};
        CHECK_STATUS(pyad_rec_select_n(t, c3, a3, b3, 2), 9); /* b3 gathered into 7, 8 */
        pyad_tape_free(t);
    }

    /* guards pass their value through and hold at the recorded point */
    {
        pyad_tape *t = new_tape();
        double x[2] = {0.7, 0.2};
        CHECK_STATUS(scalar_inputs(t, x, 2), 0);
        int c0 = pyad_rec_c(t, gt_c, 0, 0.5), c1 = pyad_rec_c(t, gt_c, 1, 0.5);
        int g0 = pyad_rec_guard(t, c0, 1), g1 = pyad_rec_guard(t, c1, 0);
        CHECK_STATUS(g0, 4);
        CHECK_STATUS(g1, 5);
        CHECK_STATUS(pyad_op_at(t, g0), OP("guard_true"));
        CHECK_STATUS(pyad_op_at(t, g1), OP("guard_false"));
        int32_t gs[2] = {g0, g1};
        double gv[2];
        CHECK_STATUS(pyad_values(t, gs, 2, gv), PYAD_OK);
        CHECK(gv[0] == 1.0 && gv[1] == 0.0);
        CHECK_STATUS(pyad_rec_output(t, pyad_rec2(t, mul, 0, 1)), 0);
        CHECK_STATUS(pyad_rec_output(t, pyad_rec1(t, sin_, 0)), 1);
        check_sweeps(t, x, 1, "guards");
        double near_[2] = {0.8, 0.1};
        check_sweeps(t, near_, 0, "guards at a point where they hold");
        pyad_tape_free(t);
    }

    /* axpy_c through a product with a constant matrix: y (1 x 2) = x (1 x 3) @ W */
    {
        pyad_tape *t = new_tape();
        double x[3] = {0.5, -1.25, 2.0};
        double W[6] = {1.0, 2.0, -3.0, 0.5, 4.0, -0.75};
        int32_t xs[3] = {0, 1, 2}, out[2];
        CHECK_STATUS(scalar_inputs(t, x, 3), 0);
        CHECK_STATUS(pyad_rec_matmul_c(t, xs, 1, 3, W, 2, out), PYAD_OK);
        CHECK(pyad_n_ops(t) == 3 + 2 * 3);
        CHECK_STATUS(pyad_op_at(t, out[0]), axpy);
        double y[2];
        CHECK_STATUS(pyad_rec_output_n(t, out, 2), 0);
        CHECK_STATUS(forward_at(t, x, y), PYAD_OK);
        CHECK(close_to(y[0], 0.5 * 1.0 - 1.25 * -3.0 + 2.0 * 4.0, 1e-15, 0));
        CHECK(close_to(y[1], 0.5 * 2.0 - 1.25 * 0.5 + 2.0 * -0.75, 1e-15, 0));
        check_sweeps(t, x, 1, "matmul_c / axpy_c");
        /* a 2 x 1 product: m > 1, k = 1 (no axpy) */
        int32_t xs2[2] = {0, 1}, out2[2];
        CHECK_STATUS(pyad_rec_matmul_c(t, xs2, 2, 1, W, 1, out2), PYAD_OK);
        CHECK_STATUS(pyad_op_at(t, out2[0]), OP("mul_c"));
        pyad_tape_free(t);
    }

    /* reductions: one reduce_* row each (rows of x not affine: after a gather row) */
    {
        pyad_tape *t = new_tape();
        double x[5] = {0.5, -1.25, 2.0, 0.75, 1.5};
        int32_t rows[6] = {0, 1, 2, 3, 4, 0}, out[2];
        CHECK_STATUS(scalar_inputs(t, x, 5), 0);
        const int reducers[4] = {add, mul_op, maximum, minimum};
        for (int r = 0; r < 4; ++r) {
            CHECK_STATUS(pyad_rec_reduce(t, reducers[r], rows, 2, 3, out), PYAD_OK);
            CHECK_STATUS(pyad_rec_output_n(t, out, 2), 2 * r);
            double vals[2];
            CHECK_STATUS(pyad_values(t, out, 2, vals), PYAD_OK);
            double want0 = r == 0 ? 0.5 - 1.25 + 2.0 : r == 1 ? 0.5 * -1.25 * 2.0
                         : r == 2 ? 2.0 : -1.25;
            double want1 = r == 0 ? 0.75 + 1.5 + 0.5 : r == 1 ? 0.75 * 1.5 * 0.5
                         : r == 2 ? 1.5 : 0.5;
            CHECK(close_to(vals[0], want0, 1e-15, 0) && close_to(vals[1], want1, 1e-15, 0));
            /* one reduce_* row for both outputs, their slots consecutive */
            CHECK(out[1] == out[0] + 1);
            CHECK_STATUS(pyad_op_at(t, pyad_n_ops(t) - 1),
                         op_code(r == 0 ? "reduce_add" : r == 1 ? "reduce_mul"
                                 : r == 2 ? "reduce_max" : "reduce_min"));
        }
        /* k = 1: the row's own slot, nothing recorded */
        int64_t before = pyad_n_ops(t);
        CHECK_STATUS(pyad_rec_reduce(t, add, rows, 2, 1, out), PYAD_OK);
        CHECK(out[0] == 0 && out[1] == 1 && pyad_n_ops(t) == before);
        check_sweeps(t, x, 1, "reductions");
        double again[5] = {0.4, -1.0, 2.2, 0.9, 1.45};
        check_sweeps(t, again, 0, "reductions at a new point");
        pyad_tape_free(t);

        /* ties of a max / min reduction share the derivative (evenly for max_n) */
        t = new_tape();
        double tie[4] = {1.0, 3.0, 3.0, -2.0};
        int32_t all[4] = {0, 1, 2, 3};
        double g[4], one = 1.0;
        CHECK_STATUS(pyad_rec_input_n(t, tie, 4), 0);
        CHECK_STATUS(pyad_rec_reduce(t, maximum, all, 1, 4, out), PYAD_OK);
        CHECK_STATUS(pyad_rec_output(t, out[0]), 0);
        CHECK_STATUS(reverse_at(t, tie, &one, g), PYAD_OK);
        CHECK(g[0] == 0.0 && g[1] == 0.5 && g[2] == 0.5 && g[3] == 0.0);
        pyad_tape_free(t);
    }

    /* rows buffered by the caller may name earlier rows of the same call */
    {
        pyad_tape *t = new_tape();
        double x[2] = {0.3, 0.9}, cs[2] = {2.0, -1.0};
        CHECK_STATUS(pyad_rec_input_n(t, x, 2), 0);
        uint8_t ops[4] = {(uint8_t)mul, (uint8_t)sin_, (uint8_t)OP("add_c"),
                          (uint8_t)OP("pow_c")};
        int32_t a[4] = {0, 2, 3, 4}, b[4] = {1, 0, 0, 1};
        CHECK_STATUS(pyad_rec_rows(t, ops, a, b, 4, cs, 2), 2);
        CHECK(pyad_n_consts(t) == 2);
        int32_t last = 5;
        double v;
        CHECK_STATUS(pyad_values(t, &last, 1, &v), PYAD_OK);
        CHECK(close_to(v, pow(sin(0.3 * 0.9) + 2.0, -1.0), 1e-15, 0));
        CHECK_STATUS(pyad_rec_rows(t, ops, a, b, 0, NULL, 0), 6); /* n = 0 */
        CHECK_STATUS(pyad_rec_output(t, last), 0);
        check_sweeps(t, x, 1, "pyad_rec_rows");
        pyad_tape_free(t);
    }
}

/* ---- group: one larger program through every sweep ---- */

/* Records a program of 3 inputs and 2 outputs that touches every kind of row. */
static pyad_tape *composite(const double *x)
{
    pyad_tape *t = new_tape();
    int mul = OP("mul"), sin_ = OP("sin"), add_c = OP("add_c"), exp_ = OP("exp");
    int mul_c = OP("mul_c"), div = OP("div"), gt_c = OP("gt_c"), neg = OP("neg");
    int add = OP("add"), pow_ = OP("pow"), maximum = OP("maximum"), tanh_ = OP("tanh");
    int lt = OP("lt"), log1p_ = OP("log1p");
    CHECK_STATUS(pyad_rec_input_n(t, x, 3), 0);
    int a = pyad_rec2(t, mul, 0, 1);
    int b = pyad_rec1(t, sin_, a);
    int c = pyad_rec_c(t, add_c, b, 2.0);
    int d = pyad_rec1(t, exp_, pyad_rec_c(t, mul_c, 2, 0.3));
    int e = pyad_rec2(t, div, c, d);
    int cond = pyad_rec_c(t, gt_c, 0, 0.0);
    int f = pyad_rec_select(t, cond, e, pyad_rec1(t, neg, e));
    CHECK(pyad_rec_guard(t, pyad_rec_c(t, gt_c, 2, 1.0), 1) > 0);
    int32_t row[4] = {0, 1, 2, f}, r;
    CHECK_STATUS(pyad_rec_reduce(t, add, row, 1, 4, &r), PYAD_OK);
    int32_t xs[3] = {0, 1, 2}, mm[2];
    double W[6] = {0.5, -1.0, 2.0, 0.25, -0.5, 1.5};
    CHECK_STATUS(pyad_rec_matmul_c(t, xs, 1, 3, W, 2, mm), PYAD_OK);
    int32_t ext[3] = {0, 2, mm[0]}, mx;
    CHECK_STATUS(pyad_rec_reduce(t, maximum, ext, 1, 3, &mx), PYAD_OK);
    int lt_ = pyad_rec2(t, lt, 1, 0);
    int sel = pyad_rec_select(t, lt_, pyad_rec1(t, tanh_, 1), pyad_rec1(t, log1p_, 2));
    int k = pyad_rec_const(t, 0.75);
    int y0 = pyad_rec2(t, add, r, pyad_rec2(t, mul, pyad_rec2(t, mul, mm[0], k), mm[1]));
    /* scans and the other reductions: cumprod in place, cumsum of 2 x 2 after a
     * gather, a product and a minimum of slots that are not affine */
    int cp = pyad_rec_scan(t, mul, xs, 1, 3);
    int cs = pyad_rec_scan(t, add, (int32_t[4]){0, 2, 1, 0}, 2, 2);
    int32_t pr_in[3] = {cp + 2, cs + 3, 1}, mn_in[3] = {cp, cs, 2}, pr, mn;
    CHECK_STATUS(pyad_rec_reduce(t, mul, pr_in, 1, 3, &pr), PYAD_OK);
    CHECK_STATUS(pyad_rec_reduce(t, OP("minimum"), mn_in, 1, 3, &mn), PYAD_OK);
    int y1 = pyad_rec2(t, add, pyad_rec2(t, pow_, 2, 0), pyad_rec2(t, mul, mx, sel));
    y1 = pyad_rec2(t, add, y1, pyad_rec2(t, mul, pr, mn));
    CHECK_STATUS(pyad_rec_output(t, y0), 0);
    CHECK_STATUS(pyad_rec_output(t, y1), 1);
    return t;
}

static void group_composite(void)
{
    double x[3] = {0.6, -0.3, 1.7};
    pyad_tape *t = composite(x);
    check_sweeps(t, x, 1, "composite program");
    double again[3] = {0.65, -0.25, 1.6};
    check_sweeps(t, again, 0, "composite program at a new point");
    CHECK_STATUS(pyad_shrink(t), PYAD_OK);
    check_sweeps(t, again, 0, "composite program after shrink");
    pyad_tape_free(t);
}

/* ---- group: a block row against the same elements as scalar rows ---- */

#define BX 9 /* inputs of the block-row programs */

/* One block-row program, recorded either with the vectorized recorders
 * (blocked: affine operands give block rows) or one scalar row per element.
 * Either way the results take the same slots, so the two tapes must agree. */
static void record_block_case(pyad_tape *t, int which, int blocked)
{
    static const double X[BX] = {0.35, 0.8, -0.45, 1.3, 0.6, -0.9, 0.25, 1.1, 0.7};
    /* the inputs too: one block row against BX scalar rows */
    CHECK_STATUS(blocked ? pyad_rec_input_n(t, X, BX) : scalar_inputs(t, X, BX), 0);
    int32_t a[20], b[20], c[20];
    double k[8];
    int n = 0, op = -1, op2 = -1;
    for (int i = 0; i < 8; ++i)
        k[i] = 0.5 + 0.25 * i;
#define ARGS(count, ea, eb, ec)                                             \
    do {                                                                    \
        for (int i = 0; i < (count); ++i)                                   \
            a[i] = (ea), b[i] = (eb), c[i] = (ec);                          \
        n = (count);                                                        \
    } while (0)
    switch (which) {
    case 0: op = OP("sin"); ARGS(6, i, 0, 0); break;                /* contiguous */
    case 1: op = OP("exp"); ARGS(5, 3, 0, 0); break;                /* stride 0 */
    case 2: op = OP("tanh"); ARGS(4, 1 + 2 * i, 0, 0); break;       /* stride 2 */
    case 3: op = OP("mul"); ARGS(6, i, 7, 0); break;                /* b broadcast */
    case 4: op = OP("div"); ARGS(6, 2, i, 0); break;                /* a broadcast */
    case 5: op = OP("mul"); ARGS(4, 2 * i, 2 * i + 1, 0); break;    /* x[0::2] * x[1::2] */
    case 6: op = OP("pow"); ARGS(8, i + 1, i, 0); break;            /* overlapping a, b */
    case 7: op = OP("mul"); ARGS(7, i, i, 0); break;                /* a and b the same */
    case 8: op = OP("arctan2"); ARGS(3, 4 * i, 8, 0); break;        /* stride 4 */
    case 9: op = OP("pow_c"); ARGS(7, i, 0, 0); break;              /* shared constant */
    case 10: op2 = 1; op = OP("rdiv_c"); ARGS(7, i + 1, 0, 0); break; /* one per element */
    case 11: op = OP("gt_c"); op2 = 1; ARGS(8, i, 0, 0); break;     /* compare_c */
    case 12: op = OP("lt"); ARGS(8, i, i + 1, 0); break;           /* compare */
    case 15: /* strides 2 over 40 earlier slots: overlapping, or apart as a sum level's */
    case 17: { /* a block of constants (one per element) times the inputs */
        int32_t base = (int32_t)pyad_n_slots(t);
        if (blocked)
            CHECK_STATUS(pyad_rec_const_n(t, k, 8), base);
        for (int i = 0; i < 8 && !blocked; ++i)
            CHECK_STATUS(pyad_rec_const(t, k[i]), base + i);
        op = OP("mul");
        ARGS(8, i, base + i, 0);
        break;
    }
    case 16: {
        int32_t base = (int32_t)pyad_n_slots(t);
        for (int i = 0; i < 40; ++i)
            CHECK_STATUS(pyad_rec1(t, OP("cos"), i % BX), base + i);
        op = OP(which == 15 ? "mul" : "sub");
        ARGS(19, base + 2 * i, base + 2 * i + (which == 15 ? 2 : 1), 0);
        break;
    }
    default: break;
    }
    int32_t first = (int32_t)pyad_n_slots(t);
    if (which <= 8 || which == 12 || which >= 15) {
        int kind = pyad_op_kind(op);
        if (blocked)
            CHECK_STATUS(kind == PYAD_KIND_UNARY ? pyad_rec1_n(t, op, a, n) : pyad_rec2_n(t, op, a, b, n),
                         first);
        for (int i = 0; i < n && !blocked; ++i)
            CHECK_STATUS(kind == PYAD_KIND_UNARY ? pyad_rec1(t, op, a[i]) : pyad_rec2(t, op, a[i], b[i]),
                         first + i);
    } else if (which <= 11) {
        int per_element = op2 == 1;
        if (blocked)
            CHECK_STATUS(pyad_rec_c_n(t, op, a, k, per_element ? n : 1, n), first);
        for (int i = 0; i < n && !blocked; ++i)
            CHECK_STATUS(pyad_rec_c(t, op, a[i], k[per_element ? i : 0]), first + i);
    } else { /* select between strided and broadcast operands on a compare block */
        int32_t cond = (int32_t)pyad_n_slots(t);
        ARGS(5, i, 0, 0);
        if (blocked)
            CHECK_STATUS(pyad_rec_c_n(t, OP("gt_c"), a, k, 1, n), cond);
        for (int i = 0; i < n && !blocked; ++i)
            CHECK_STATUS(pyad_rec_c(t, OP("gt_c"), a[i], k[0]), cond + i);
        first = (int32_t)pyad_n_slots(t);
        ARGS(5, cond + i, 1 + i, which == 13 ? 8 : 2 * i);
        if (blocked)
            CHECK_STATUS(pyad_rec_select_n(t, a, b, c, n), first);
        for (int i = 0; i < n && !blocked; ++i)
            CHECK_STATUS(pyad_rec_select(t, a[i], b[i], c[i]), first + i);
        n = (int)(pyad_n_slots(t) - BX);
        first = BX;
    }
#undef ARGS
    /* a nonlinear use of every result, so second order has something to carry */
    int32_t outs[64];
    int m = 0;
    int sq = OP("square"), mul = OP("mul");
    for (int i = 0; i < n; ++i) {
        outs[m++] = first + i;
        outs[m++] = pyad_rec2(t, mul, pyad_rec1(t, sq, first + i), i % BX);
    }
    CHECK_STATUS(pyad_rec_output_n(t, outs, m), 0);
}

#define N_BLOCK_CASES 18

/* The tapes agree on every sweep: bit for bit at one point and in the vector
 * sweeps, to rounding in the batched ones (their scalar rows may take glibc's
 * vector libm, whose last bits differ from the scalar one's). */
static void compare_tapes(pyad_tape *A, pyad_tape *B, const char *label)
{
    const int64_t S = pyad_n_slots(A), n = BX, m = pyad_n_outputs(A), p = 3, nb = 3;
    CHECK(S == pyad_n_slots(B) && m == pyad_n_outputs(B));
    double *x = dbl(n), *xd = dbl(n * p), *u = dbl(m * nb);
    for (int64_t i = 0; i < n; ++i)
        x[i] = 0.3 + 0.07 * (double)i - (i % 3 == 1 ? 0.9 : 0.0);
    for (int64_t i = 0; i < n * p; ++i)
        xd[i] = (double)((i * 7) % 5) - 1.5;
    for (int64_t i = 0; i < m * nb; ++i)
        u[i] = 1.0 + 0.5 * (double)((i * 3) % 4);
    double *r[2][12];
    pyad_tape *T[2] = {A, B};
    for (int w = 0; w < 2; ++w) {
        pyad_tape *t = T[w];
        double *v = dbl(S * p), *vd = dbl(S * p), *adj = dbl(S * p), *adjd = dbl(S * p);
        int64_t bad = -1, badv[3], n_bad;
        for (int j = 0; j < 12; ++j)
            r[w][j] = dbl((m + n) * p * nb);
        double **o = r[w];
        CHECK_STATUS(pyad_forward(t, x, v, o[0], &bad), PYAD_OK);
        CHECK_STATUS(pyad_reverse(t, v, u, adj, o[1]), PYAD_OK);
        CHECK_STATUS(pyad_reverse(t, NULL, u, adj, o[2]), PYAD_OK);
        CHECK_STATUS(pyad_forward_tangent(t, x, xd, v, vd, o[0] + m, o[3], &bad), PYAD_OK);
        CHECK_STATUS(pyad_reverse_second(t, v, vd, u, adj, adjd, o[4], o[4] + n), PYAD_OK);
        CHECK_STATUS(pyad_tangent_vector(t, p, x, xd, v, vd, o[5], o[5] + m, &bad), PYAD_OK);
        CHECK_STATUS(pyad_second_vector(t, p, v, vd, u, adj, adjd, o[6], o[6] + n), PYAD_OK);
        CHECK_STATUS(pyad_reverse_vector(t, nb, v, u, adj, o[7]), PYAD_OK);
        double *BV = dbl(S * nb), *BVD = dbl(S * nb), *BA = dbl(S * nb), *BAD = dbl(S * nb);
        CHECK_STATUS(pyad_forward_batch(t, nb, xd, BV, o[8], badv, &n_bad), PYAD_OK);
        CHECK_STATUS(pyad_reverse_batch(t, nb, BV, u, BA, o[9]), PYAD_OK);
        CHECK_STATUS(pyad_tangent_batch(t, nb, xd, xd, BV, BVD, o[10], o[10] + m * nb, badv,
                                        &n_bad), PYAD_OK);
        CHECK_STATUS(pyad_second_batch(t, nb, BV, BVD, u, BA, BAD, o[11], o[11] + n * nb),
                     PYAD_OK);
        free(v), free(vd), free(adj), free(adjd), free(BV), free(BVD), free(BA), free(BAD);
    }
    static const char *names[12] = {"values", "reverse", "reverse at the recorded point",
                                    "tangent", "forward-over-reverse", "vector tangent",
                                    "vector second", "vector reverse", "batch values",
                                    "batch reverse", "batch tangent", "batch second"};
    char ctx[160];
    for (int j = 0; j < 12; ++j) {
        double tol = j >= 8 ? 1e-13 : 0.0;
        snprintf(ctx, sizeof ctx, "%s: %s, block row vs scalar rows", label, names[j]);
        CHECK_ALL_CLOSE(r[0][j], r[1][j], (m + n) * p * nb, tol, tol, ctx);
    }
    for (int w = 0; w < 2; ++w)
        for (int j = 0; j < 12; ++j)
            free(r[w][j]);
    free(x), free(xd), free(u);
}

static void group_blocks(void)
{
    for (int which = 0; which < N_BLOCK_CASES; ++which) {
        pyad_tape *A = new_tape(), *B = new_tape();
        record_block_case(A, which, 1);
        record_block_case(B, which, 0);
        char label[64];
        snprintf(label, sizeof label, "block case %d", which);
        /* the block program is shorter by rows, not by slots */
        CHECK(pyad_n_blocks(A) >= 1 && pyad_n_blocks(B) == 0);
        CHECK(pyad_n_ops(A) < pyad_n_ops(B) && pyad_n_slots(A) == pyad_n_slots(B));
        compare_tapes(A, B, label);
        pyad_tape *copy = round_trip(A);
        if (copy) {
            snprintf(label, sizeof label, "block case %d after a round trip", which);
            compare_tapes(copy, B, label);
            pyad_tape_free(copy);
        }
        CHECK_STATUS(pyad_shrink(A), PYAD_OK);
        compare_tapes(A, B, label);
        pyad_tape_free(A), pyad_tape_free(B);
    }
    /* an operand that is not affine with a stride >= 0 is gathered first (one
     * gather row), and a sum of contiguous slots is one reduce_add row */
    pyad_tape *t = new_tape();
    double x[BX] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    CHECK_STATUS(scalar_inputs(t, x, BX), 0);
    int32_t down[4] = {8, 6, 4, 2}, zig[4] = {0, 1, 0, 1}, all[BX] = {0, 1, 2, 3, 4, 5, 6, 7, 8}, r;
    CHECK_STATUS(pyad_rec2_n(t, OP("add"), all, down, 4), BX + 4);   /* after the gather */
    CHECK_STATUS(pyad_rec1_n(t, OP("neg"), zig, 4), BX + 12);
    CHECK(pyad_n_ops(t) == BX + 4 && pyad_n_blocks(t) == 4);
    CHECK(pyad_op_at(t, BX) == OP("gather") && pyad_op_at(t, BX + 2) == OP("gather"));
    CHECK_STATUS(pyad_rec1_n(t, OP("neg"), all, 1), BX + 16); /* n = 1: a scalar row */
    CHECK(pyad_n_blocks(t) == 4);
    int64_t rows = pyad_n_ops(t);
    CHECK_STATUS(pyad_rec_reduce(t, OP("add"), all, 1, BX, &r), PYAD_OK);
    CHECK(pyad_n_ops(t) == rows + 1 && pyad_n_blocks(t) == 5);
    double sum;
    CHECK_STATUS(pyad_values(t, &r, 1, &sum), PYAD_OK);
    CHECK(sum == 45.0);
    pyad_tape_free(t);
}

/* ---- group: NaN and inf propagate as IEEE says, with no error ---- */

static void group_ieee(void)
{
    int log_ = OP("log"), sqrt_ = OP("sqrt"), div = OP("div"), sin_ = OP("sin");
    pyad_tape *t = new_tape();
    double x[2] = {1.0, 2.0};
    CHECK_STATUS(scalar_inputs(t, x, 2), 0);
    CHECK_STATUS(pyad_rec_output(t, pyad_rec1(t, log_, 0)), 0);
    CHECK_STATUS(pyad_rec_output(t, pyad_rec1(t, sqrt_, 1)), 1);
    CHECK_STATUS(pyad_rec_output(t, pyad_rec2(t, div, 0, 1)), 2);
    CHECK_STATUS(pyad_rec_output(t, pyad_rec1(t, sin_, 0)), 3);
    double y[4], u[4] = {1, 1, 1, 1}, g[2];
    double zero[2] = {0.0, -1.0};
    CHECK_STATUS(forward_at(t, zero, y), PYAD_OK);
    CHECK(isinf(y[0]) && y[0] < 0 && isnan(y[1]) && y[2] == 0.0 && y[3] == 0.0);
    double nan_[2] = {NAN, 1.0};
    CHECK_STATUS(forward_at(t, nan_, y), PYAD_OK);
    CHECK(isnan(y[0]) && y[1] == 1.0 && isnan(y[2]) && isnan(y[3]));
    CHECK_STATUS(reverse_at(t, nan_, u, g), PYAD_OK);
    CHECK(isnan(g[0]));
    double inf_[2] = {INFINITY, 0.0};
    CHECK_STATUS(forward_at(t, inf_, y), PYAD_OK);
    CHECK(isinf(y[0]) && y[1] == 0.0 && isinf(y[2]) && isnan(y[3]));
    /* a NaN condition: select takes the "true" side (NaN != 0) as C says */
    pyad_tape_free(t);
}

/* ---- group: a NULL (closed) tape ---- */

static void group_null_tape(void)
{
    pyad_tape *t = NULL;
    double d[4] = {0}, v[4] = {0};
    int32_t i32[4] = {0};
    uint8_t u8[4] = {0};
    int64_t i64[4] = {0};
    CHECK_STATUS(pyad_tape_new(NULL), PYAD_EINVAL);
    pyad_tape_free(NULL); /* a no-op */
    CHECK_STATUS(pyad_set_max_ops(t, 10), PYAD_ECLOSED);
    CHECK_STATUS(pyad_set_max_bytes(t, 10), PYAD_ECLOSED);
    CHECK_STATUS(pyad_shrink(t), PYAD_ECLOSED);
    CHECK_STATUS(pyad_tape_reset(t), PYAD_ECLOSED);
    CHECK_STATUS(pyad_n_ops(t), PYAD_ECLOSED);
    CHECK_STATUS(pyad_n_inputs(t), PYAD_ECLOSED);
    CHECK_STATUS(pyad_n_outputs(t), PYAD_ECLOSED);
    CHECK_STATUS(pyad_n_consts(t), PYAD_ECLOSED);
    CHECK_STATUS(pyad_n_pool(t), PYAD_ECLOSED);
    CHECK_STATUS(pyad_nbytes(t), PYAD_ECLOSED);
    CHECK_STATUS(pyad_rec_input(t, 1.0), PYAD_ECLOSED);
    CHECK_STATUS(pyad_rec_const(t, 1.0), PYAD_ECLOSED);
    CHECK_STATUS(pyad_rec1(t, OP("sin"), 0), PYAD_ECLOSED);
    CHECK_STATUS(pyad_rec2(t, OP("add"), 0, 0), PYAD_ECLOSED);
    CHECK_STATUS(pyad_rec_c(t, OP("add_c"), 0, 1.0), PYAD_ECLOSED);
    CHECK_STATUS(pyad_rec_select(t, 0, 0, 0), PYAD_ECLOSED);
    CHECK_STATUS(pyad_rec_guard(t, 0, 1), PYAD_ECLOSED);
    CHECK_STATUS(pyad_rec_output(t, 0), PYAD_ECLOSED);
    CHECK_STATUS(pyad_rec_rows(t, u8, i32, i32, 1, d, 1), PYAD_ECLOSED);
    CHECK_STATUS(pyad_rec_input_n(t, d, 2), PYAD_ECLOSED);
    CHECK_STATUS(pyad_rec1_n(t, OP("sin"), i32, 2), PYAD_ECLOSED);
    CHECK_STATUS(pyad_rec2_n(t, OP("add"), i32, i32, 2), PYAD_ECLOSED);
    CHECK_STATUS(pyad_rec_c_n(t, OP("add_c"), i32, d, 1, 2), PYAD_ECLOSED);
    CHECK_STATUS(pyad_rec_const_n(t, d, 2), PYAD_ECLOSED);
    CHECK_STATUS(pyad_rec_select_n(t, i32, i32, i32, 2), PYAD_ECLOSED);
    CHECK_STATUS(pyad_rec_output_n(t, i32, 2), PYAD_ECLOSED);
    CHECK_STATUS(pyad_rec_reduce(t, OP("add"), i32, 1, 2, i32), PYAD_ECLOSED);
    CHECK_STATUS(pyad_rec_matmul_c(t, i32, 1, 2, d, 1, i32), PYAD_ECLOSED);
    CHECK_STATUS(pyad_values(t, i32, 1, d), PYAD_ECLOSED);
    CHECK_STATUS(pyad_op_at(t, 0), PYAD_ECLOSED);
    CHECK_STATUS(pyad_input_slots(t, i32), PYAD_ECLOSED);
    CHECK_STATUS(pyad_output_slots(t, i32), PYAD_ECLOSED);
    CHECK_STATUS(pyad_forward(t, d, v, d, i64), PYAD_ECLOSED);
    CHECK_STATUS(pyad_forward_tangent(t, d, d, v, v, d, d, i64), PYAD_ECLOSED);
    CHECK_STATUS(pyad_reverse(t, v, d, v, d), PYAD_ECLOSED);
    CHECK_STATUS(pyad_gradient(t, d, v, v, d, d, i64), PYAD_ECLOSED);
    CHECK_STATUS(pyad_reverse_second(t, v, v, d, v, v, d, d), PYAD_ECLOSED);
    CHECK_STATUS(pyad_tangent_vector(t, 1, d, d, v, v, d, d, i64), PYAD_ECLOSED);
    CHECK_STATUS(pyad_reverse_vector(t, 1, v, d, v, d), PYAD_ECLOSED);
    CHECK_STATUS(pyad_second_vector(t, 1, v, v, d, v, v, d, d), PYAD_ECLOSED);
    CHECK_STATUS(pyad_forward_batch(t, 1, d, v, d, i64, i64), PYAD_ECLOSED);
    CHECK_STATUS(pyad_tangent_batch(t, 1, d, d, v, v, d, d, i64, i64), PYAD_ECLOSED);
    CHECK_STATUS(pyad_reverse_batch(t, 1, v, d, v, d), PYAD_ECLOSED);
    CHECK_STATUS(pyad_second_batch(t, 1, v, v, d, v, v, d, d), PYAD_ECLOSED);
    CHECK_STATUS(pyad_tape_export(t, u8, i32, i32, i32, i32, d, d, i32, i32, i32, i32), PYAD_ECLOSED);
    CHECK_STATUS(pyad_tape_import(NULL, 0, u8, i32, i32, i32, i32, 0, d, 0, d, 0, i32, 0, i32, 0, i32, 0, i32),
                 PYAD_EINVAL);
}

/* ---- group: bad op codes, operand indices, counts and pointers ---- */

static void group_bad_arguments(void)
{
    int sin_ = OP("sin"), add = OP("add"), add_c = OP("add_c"), lt = OP("lt");
    int lt_c = OP("lt_c"), input = OP("input"), select = OP("select"), count = pyad_op_count();
    pyad_tape *t = new_tape();
    double x[2] = {0.5, 1.5}, d[4] = {1, 2, 3, 4}, v[16], y[4];
    CHECK_STATUS(scalar_inputs(t, x, 2), 0);
    CHECK_STATUS(pyad_rec_const(t, 2.0), 2);
    const int64_t N = pyad_n_ops(t), NC = pyad_n_consts(t);
    int64_t bad = -1, n_bad = 0, badv[2];
#define UNCHANGED() CHECK(pyad_n_ops(t) == N && pyad_n_consts(t) == NC && pyad_n_inputs(t) == 2 \
                          && pyad_n_outputs(t) == 0)

    /* op codes of the wrong kind or out of the table */
    const int not_unary[] = {-1, count, 255, 256, add, add_c, lt, lt_c, input, select};
    for (size_t i = 0; i < sizeof not_unary / sizeof *not_unary; ++i) {
        int32_t a2[2] = {0, 1};
        CHECK_STATUS(pyad_rec1(t, not_unary[i], 0), PYAD_EINVAL);
        CHECK_STATUS(pyad_rec1_n(t, not_unary[i], a2, 2), PYAD_EINVAL);
    }
    const int not_binary[] = {-1, count, 255, sin_, add_c, lt_c, input, select};
    for (size_t i = 0; i < sizeof not_binary / sizeof *not_binary; ++i) {
        int32_t a2[2] = {0, 1};
        CHECK_STATUS(pyad_rec2(t, not_binary[i], 0, 1), PYAD_EINVAL);
        CHECK_STATUS(pyad_rec2_n(t, not_binary[i], a2, a2, 2), PYAD_EINVAL);
    }
    const int not_const[] = {-1, count, 255, sin_, add, lt, input, select};
    for (size_t i = 0; i < sizeof not_const / sizeof *not_const; ++i) {
        int32_t a2[2] = {0, 1};
        CHECK_STATUS(pyad_rec_c(t, not_const[i], 0, 1.0), PYAD_EINVAL);
        CHECK_STATUS(pyad_rec_c_n(t, not_const[i], a2, d, 2, 2), PYAD_EINVAL);
    }
    const int not_reducer[] = {-1, count, sin_, add_c, lt, input};
    for (size_t i = 0; i < sizeof not_reducer / sizeof *not_reducer; ++i) {
        int32_t a2[2] = {0, 1}, out[1];
        CHECK_STATUS(pyad_rec_reduce(t, not_reducer[i], a2, 1, 2, out), PYAD_EINVAL);
    }
    {
        /* rec_rows takes unary, binary, with-constant and comparison rows only */
        const int rows_bad[] = {input, select, OP("constant"), OP("guard_true"), OP("axpy_c"),
                                count, 255};
        for (size_t i = 0; i < sizeof rows_bad / sizeof *rows_bad; ++i) {
            if (rows_bad[i] < 0)
                continue;
            uint8_t op8[2] = {(uint8_t)sin_, (uint8_t)rows_bad[i]};
            int32_t a2[2] = {0, 1}, b2[2] = {0, 0};
            CHECK_STATUS(pyad_rec_rows(t, op8, a2, b2, 2, d, 1), PYAD_EINVAL);
        }
    }
    UNCHANGED();

    /* operands that do not name an earlier slot */
    const int bad_slots[] = {-1, (int)N, (int)N + 1, 1000, INT32_MAX, INT32_MIN};
    for (size_t i = 0; i < sizeof bad_slots / sizeof *bad_slots; ++i) {
        int s = bad_slots[i];
        int32_t s2[2] = {0, s}, ok2[2] = {0, 1}, out[2];
        CHECK_STATUS(pyad_rec1(t, sin_, s), PYAD_EINDEX);
        CHECK_STATUS(pyad_rec2(t, add, 0, s), PYAD_EINDEX);
        CHECK_STATUS(pyad_rec2(t, add, s, 0), PYAD_EINDEX);
        CHECK_STATUS(pyad_rec_c(t, add_c, s, 1.0), PYAD_EINDEX);
        CHECK_STATUS(pyad_rec_select(t, s, 0, 1), PYAD_EINDEX);
        CHECK_STATUS(pyad_rec_select(t, 0, s, 1), PYAD_EINDEX);
        CHECK_STATUS(pyad_rec_select(t, 0, 1, s), PYAD_EINDEX);
        CHECK_STATUS(pyad_rec_guard(t, s, 1), PYAD_EINDEX);
        CHECK_STATUS(pyad_rec_guard(t, s, 0), PYAD_EINDEX);
        CHECK_STATUS(pyad_rec_output(t, s), PYAD_EINDEX);
        CHECK_STATUS(pyad_rec1_n(t, sin_, s2, 2), PYAD_EINDEX);
        CHECK_STATUS(pyad_rec2_n(t, add, ok2, s2, 2), PYAD_EINDEX);
        CHECK_STATUS(pyad_rec_c_n(t, add_c, s2, d, 1, 2), PYAD_EINDEX);
        CHECK_STATUS(pyad_rec_select_n(t, ok2, s2, ok2, 2), PYAD_EINDEX);
        CHECK_STATUS(pyad_rec_output_n(t, s2, 2), PYAD_EINDEX);
        CHECK_STATUS(pyad_rec_reduce(t, add, s2, 1, 2, out), PYAD_EINDEX);
        CHECK_STATUS(pyad_rec_reduce(t, OP("maximum"), s2, 1, 2, out), PYAD_EINDEX);
        CHECK_STATUS(pyad_rec_matmul_c(t, s2, 1, 2, d, 2, out), PYAD_EINDEX);
        CHECK_STATUS(pyad_values(t, s2, 2, y), PYAD_EINDEX);
        CHECK_STATUS(pyad_op_at(t, s), PYAD_EINDEX);
        /* buffered rows: operands must be earlier rows, constants within the call's */
        uint8_t op1[1] = {(uint8_t)sin_}, opb[1] = {(uint8_t)add}, opc[1] = {(uint8_t)add_c};
        int32_t as[1] = {s}, zero[1] = {0}, bs[1] = {s};
        CHECK_STATUS(pyad_rec_rows(t, op1, as, zero, 1, NULL, 0), PYAD_EINDEX);
        CHECK_STATUS(pyad_rec_rows(t, opb, zero, bs, 1, NULL, 0), PYAD_EINDEX);
        CHECK_STATUS(pyad_rec_rows(t, opc, as, zero, 1, d, 1), PYAD_EINDEX);
    }
    {
        uint8_t op2[2] = {(uint8_t)sin_, (uint8_t)sin_}, opc[1] = {(uint8_t)add_c};
        int32_t self[2] = {0, (int32_t)N + 1}, fwd[2] = {(int32_t)N + 1, 0}, zero[2] = {0, 0};
        int32_t cb[1] = {1}, cneg[1] = {-1};
        CHECK_STATUS(pyad_rec_rows(t, op2, self, zero, 2, NULL, 0), PYAD_EINDEX); /* row names itself */
        CHECK_STATUS(pyad_rec_rows(t, op2, fwd, zero, 2, NULL, 0), PYAD_EINDEX);  /* a later row */
        CHECK_STATUS(pyad_rec_rows(t, opc, zero, cb, 1, d, 1), PYAD_EINDEX);      /* constant 1 of 1 */
        CHECK_STATUS(pyad_rec_rows(t, opc, zero, cneg, 1, d, 1), PYAD_EINDEX);
        CHECK_STATUS(pyad_rec_rows(t, opc, zero, zero, 1, NULL, 0), PYAD_EINDEX); /* no constants */
    }
    UNCHANGED();

    /* negative counts and missing arrays */
    {
        int32_t i2[2] = {0, 1}, out[2];
        uint8_t op8[1] = {(uint8_t)sin_};
        CHECK_STATUS(pyad_rec_input_n(t, x, -1), PYAD_EINVAL);
        CHECK_STATUS(pyad_rec_input_n(t, NULL, 2), PYAD_EINVAL);
        CHECK_STATUS(pyad_rec_const_n(t, d, -1), PYAD_EINVAL);
        CHECK_STATUS(pyad_rec_const_n(t, NULL, 1), PYAD_EINVAL);
        CHECK_STATUS(pyad_rec1_n(t, sin_, i2, -1), PYAD_EINVAL);
        CHECK_STATUS(pyad_rec1_n(t, sin_, NULL, 1), PYAD_EINVAL);
        CHECK_STATUS(pyad_rec2_n(t, add, i2, i2, -1), PYAD_EINVAL);
        CHECK_STATUS(pyad_rec2_n(t, add, i2, NULL, 1), PYAD_EINVAL);
        CHECK_STATUS(pyad_rec_c_n(t, add_c, i2, d, 1, -1), PYAD_EINVAL);
        CHECK_STATUS(pyad_rec_c_n(t, add_c, i2, d, 3, 2), PYAD_EINVAL); /* n_c not 1 or n */
        CHECK_STATUS(pyad_rec_c_n(t, add_c, i2, d, 0, 2), PYAD_EINVAL);
        CHECK_STATUS(pyad_rec_c_n(t, add_c, i2, NULL, 1, 1), PYAD_EINVAL);
        CHECK_STATUS(pyad_rec_select_n(t, i2, i2, i2, -1), PYAD_EINVAL);
        CHECK_STATUS(pyad_rec_select_n(t, i2, NULL, i2, 1), PYAD_EINVAL);
        CHECK_STATUS(pyad_rec_output_n(t, i2, -1), PYAD_EINVAL);
        CHECK_STATUS(pyad_rec_output_n(t, NULL, 1), PYAD_EINVAL);
        CHECK_STATUS(pyad_rec_rows(t, op8, i2, i2, -1, NULL, 0), PYAD_EINVAL);
        CHECK_STATUS(pyad_rec_rows(t, op8, i2, i2, 1, d, -1), PYAD_EINVAL);
        CHECK_STATUS(pyad_rec_rows(t, NULL, i2, i2, 1, NULL, 0), PYAD_EINVAL);
        CHECK_STATUS(pyad_rec_rows(t, op8, i2, i2, 1, NULL, 2), PYAD_EINVAL);
        CHECK_STATUS(pyad_rec_reduce(t, add, i2, -1, 2, out), PYAD_EINVAL);
        CHECK_STATUS(pyad_rec_reduce(t, add, i2, 1, 0, out), PYAD_EINVAL);
        CHECK_STATUS(pyad_rec_reduce(t, add, i2, 1, -2, out), PYAD_EINVAL);
        CHECK_STATUS(pyad_rec_reduce(t, add, NULL, 1, 2, out), PYAD_EINVAL);
        CHECK_STATUS(pyad_rec_reduce(t, add, i2, 1, 2, NULL), PYAD_EINVAL);
        CHECK_STATUS(pyad_rec_reduce(t, add, i2, (int64_t)INT32_MAX + 1, 1, out), PYAD_EINVAL);
        CHECK_STATUS(pyad_rec_matmul_c(t, i2, -1, 2, d, 1, out), PYAD_EINVAL);
        CHECK_STATUS(pyad_rec_matmul_c(t, i2, 1, 0, d, 1, out), PYAD_EINVAL);
        CHECK_STATUS(pyad_rec_matmul_c(t, i2, 1, 2, d, -1, out), PYAD_EINVAL);
        CHECK_STATUS(pyad_rec_matmul_c(t, i2, 1, 2, NULL, 1, out), PYAD_EINVAL);
        CHECK_STATUS(pyad_rec_matmul_c(t, NULL, 1, 2, d, 1, out), PYAD_EINVAL);
        CHECK_STATUS(pyad_rec_matmul_c(t, i2, 1, 2, d, 1, NULL), PYAD_EINVAL);
        CHECK_STATUS(pyad_values(t, i2, -1, y), PYAD_EINVAL);
        CHECK_STATUS(pyad_values(t, i2, 1, NULL), PYAD_EINVAL);
        CHECK_STATUS(pyad_values(t, i2, 0, NULL), PYAD_OK);
        CHECK_STATUS(pyad_set_max_ops(t, -1), PYAD_EINVAL);
        CHECK_STATUS(pyad_set_max_ops(t, N - 1), PYAD_EINVAL); /* below what is recorded */
        CHECK_STATUS(pyad_set_max_ops(t, (int64_t)INT32_MAX + 1), PYAD_EINVAL);
        CHECK_STATUS(pyad_set_max_bytes(t, -1), PYAD_EINVAL);
    }
    UNCHANGED();

    /* sweeps: missing work arrays and bad counts */
    CHECK_STATUS(pyad_rec_output(t, pyad_rec2(t, add, 0, 1)), 0);
    {
        double u[1] = {1.0}, xbar[2], xbard[2], big[64];
        CHECK_STATUS(pyad_forward(t, x, NULL, y, &bad), PYAD_EINVAL);
        CHECK_STATUS(pyad_forward(t, x, v, y, NULL), PYAD_EINVAL);
        CHECK_STATUS(pyad_forward(t, NULL, v, y, &bad), PYAD_EINVAL);
        CHECK_STATUS(pyad_forward_tangent(t, x, NULL, v, v + 8, y, y, &bad), PYAD_EINVAL);
        CHECK_STATUS(pyad_forward_tangent(t, x, x, v, NULL, y, y, &bad), PYAD_EINVAL);
        CHECK_STATUS(pyad_reverse(t, NULL, NULL, v, xbar), PYAD_EINVAL);
        CHECK_STATUS(pyad_reverse(t, NULL, u, NULL, xbar), PYAD_EINVAL);
        CHECK_STATUS(pyad_reverse(t, NULL, u, v, NULL), PYAD_EINVAL);
        CHECK_STATUS(pyad_reverse_second(t, NULL, v, u, v, v, xbar, xbard), PYAD_EINVAL);
        CHECK_STATUS(pyad_reverse_second(t, v, v, u, v, NULL, xbar, xbard), PYAD_EINVAL);
        CHECK_STATUS(pyad_tangent_vector(t, 0, x, x, big, big, y, y, &bad), PYAD_EINVAL);
        CHECK_STATUS(pyad_tangent_vector(t, -3, x, x, big, big, y, y, &bad), PYAD_EINVAL);
        CHECK_STATUS(pyad_tangent_vector(t, 1, x, NULL, big, big, y, y, &bad), PYAD_EINVAL);
        CHECK_STATUS(pyad_reverse_vector(t, 0, NULL, u, big, xbar), PYAD_EINVAL);
        CHECK_STATUS(pyad_reverse_vector(t, 1, NULL, NULL, big, xbar), PYAD_EINVAL);
        CHECK_STATUS(pyad_second_vector(t, 0, big, big, u, big, big, xbar, xbard), PYAD_EINVAL);
        CHECK_STATUS(pyad_second_vector(t, 1, big, NULL, u, big, big, xbar, xbard), PYAD_EINVAL);
        CHECK_STATUS(pyad_forward_batch(t, 0, x, big, y, badv, &n_bad), PYAD_EINVAL);
        CHECK_STATUS(pyad_forward_batch(t, -1, x, big, y, badv, &n_bad), PYAD_EINVAL);
        CHECK_STATUS(pyad_forward_batch(t, 1, x, big, y, NULL, &n_bad), PYAD_EINVAL);
        CHECK_STATUS(pyad_forward_batch(t, 1, NULL, big, y, badv, &n_bad), PYAD_EINVAL);
        CHECK_STATUS(pyad_tangent_batch(t, 0, x, x, big, big, y, y, badv, &n_bad), PYAD_EINVAL);
        CHECK_STATUS(pyad_tangent_batch(t, 1, x, NULL, big, big, y, y, badv, &n_bad),
                     PYAD_EINVAL);
        CHECK_STATUS(pyad_reverse_batch(t, 0, big, u, big, xbar), PYAD_EINVAL);
        CHECK_STATUS(pyad_reverse_batch(t, 1, NULL, u, big, xbar), PYAD_EINVAL);
        CHECK_STATUS(pyad_second_batch(t, 0, big, big, u, big, big, xbar, xbard), PYAD_EINVAL);
        CHECK_STATUS(pyad_second_batch(t, 1, big, big, u, big, NULL, xbar, xbard), PYAD_EINVAL);
        uint8_t op8[8];
        int32_t i8[8];
        CHECK_STATUS(pyad_tape_export(t, NULL, i8, i8, i8, i8, big, big, i8, i8, i8, i8), PYAD_EINVAL);
        CHECK_STATUS(pyad_tape_export(t, op8, i8, i8, i8, i8, big, NULL, i8, i8, i8, i8), PYAD_EINVAL);
        CHECK_STATUS(pyad_tape_export(t, op8, i8, i8, i8, i8, big, big, i8, NULL, i8, i8), PYAD_EINVAL);
        /* the tape still works */
        double g[2];
        CHECK_STATUS(reverse_at(t, x, u, g), PYAD_OK);
        CHECK(g[0] == 1.0 && g[1] == 1.0);
    }
    pyad_tape_free(t);
#undef UNCHANGED
}

/* ---- group: the size limit (pyad_set_max_ops) ---- */

static void group_size_limit(void)
{
    int sin_ = OP("sin"), add = OP("add"), add_c = OP("add_c");
    pyad_tape *t = new_tape();
    double x[2] = {0.5, 1.5}, xs[8] = {0}, W[4] = {1, 2, 3, 4};
    CHECK_STATUS(scalar_inputs(t, x, 2), 0);
    CHECK_STATUS(pyad_set_max_ops(t, 5), PYAD_OK);
    CHECK_STATUS(pyad_rec1(t, sin_, 0), 2);
    CHECK_STATUS(pyad_rec2(t, add, 0, 2), 3);
    CHECK_STATUS(pyad_rec_output(t, 3), 0); /* outputs are not ops */
    /* one slot left: anything needing two is refused whole */
    int32_t a2[2] = {0, 1}, out[2];
    uint8_t op2[2] = {(uint8_t)sin_, (uint8_t)sin_};
    CHECK_STATUS(pyad_rec_input_n(t, xs, 2), PYAD_ETOOBIG);
    CHECK_STATUS(pyad_rec1_n(t, sin_, a2, 2), PYAD_ETOOBIG);
    CHECK_STATUS(pyad_rec_rows(t, op2, a2, a2, 2, NULL, 0), PYAD_ETOOBIG);
    CHECK_STATUS(pyad_rec_reduce(t, add, (int32_t[3]){0, 2, 1}, 1, 3, out), PYAD_ETOOBIG);
    CHECK_STATUS(pyad_rec_matmul_c(t, a2, 1, 2, W, 2, out), PYAD_ETOOBIG);
    CHECK(pyad_n_ops(t) == 4 && pyad_n_inputs(t) == 2 && pyad_n_consts(t) == 0);
    CHECK_STATUS(pyad_rec_c(t, add_c, 3, 1.0), 4);
    /* full */
    CHECK_STATUS(pyad_rec1(t, sin_, 0), PYAD_ETOOBIG);
    CHECK_STATUS(pyad_rec_input(t, 1.0), PYAD_ETOOBIG);
    CHECK_STATUS(pyad_rec_const(t, 1.0), PYAD_ETOOBIG);
    CHECK_STATUS(pyad_rec_select(t, 0, 0, 1), PYAD_ETOOBIG);
    CHECK_STATUS(pyad_rec_guard(t, 0, 1), PYAD_ETOOBIG);
    CHECK_STATUS(pyad_rec_c(t, add_c, 0, 2.0), PYAD_ETOOBIG);
    CHECK(pyad_n_ops(t) == 5 && pyad_n_consts(t) == 1);
    CHECK_STATUS(pyad_set_max_ops(t, 4), PYAD_EINVAL);
    /* the tape is intact and replays */
    CHECK_STATUS(pyad_rec_output(t, 4), 1);
    check_sweeps(t, x, 1, "at the size limit");
    /* raising the limit lets recording go on */
    CHECK_STATUS(pyad_set_max_ops(t, INT32_MAX), PYAD_OK);
    CHECK_STATUS(pyad_rec1(t, sin_, 4), 5);
    /* reset: an empty tape again, at the default limit, recording from slot 0 */
    CHECK_STATUS(pyad_set_max_ops(t, 6), PYAD_OK);
    CHECK_STATUS(pyad_tape_reset(t), PYAD_OK);
    CHECK(pyad_n_ops(t) == 0 && pyad_n_slots(t) == 0 && pyad_n_inputs(t) == 0
          && pyad_n_outputs(t) == 0 && pyad_n_consts(t) == 0 && pyad_n_blocks(t) == 0);
    CHECK_STATUS(pyad_rec_input_n(t, xs, 8), 0);
    CHECK_STATUS(pyad_rec_c(t, add_c, 7, 1.0), 8);
    CHECK_STATUS(pyad_rec_output(t, 8), 0);
    check_sweeps(t, xs, 8, "after a reset");
    pyad_tape_free(t);

    /* a limit of 0 on a fresh tape */
    t = new_tape();
    CHECK_STATUS(pyad_set_max_ops(t, 0), PYAD_OK);
    CHECK_STATUS(pyad_rec_input(t, 1.0), PYAD_ETOOBIG);
    CHECK(pyad_n_ops(t) == 0 && pyad_n_inputs(t) == 0);
    pyad_tape_free(t);
}

/* ---- group: allocation failure through the byte budget (pyad_set_max_bytes) ---- */

static void group_byte_budget(void)
{
    int sin_ = OP("sin"), add = OP("add"), add_c = OP("add_c"), maximum = OP("maximum");
    double x[3] = {0.5, 1.5, -0.25};

    /* nothing at all may be allocated */
    pyad_tape *t = new_tape();
    CHECK_STATUS(pyad_set_max_bytes(t, 0), PYAD_OK);
    CHECK_STATUS(pyad_rec_input(t, 1.0), PYAD_ENOMEM);
    CHECK_STATUS(pyad_rec_input_n(t, x, 3), PYAD_ENOMEM);
    CHECK_STATUS(pyad_rec_const(t, 1.0), PYAD_ENOMEM);
    CHECK(pyad_n_ops(t) == 0 && pyad_n_inputs(t) == 0 && pyad_n_consts(t) == 0);
    CHECK_STATUS(pyad_set_max_bytes(t, INT64_MAX), PYAD_OK);
    CHECK_STATUS(pyad_rec_input_n(t, x, 3), 0);
    pyad_tape_free(t);

    /* a budget of what the tape holds now: growth fails, the tape stays usable */
    t = new_tape();
    CHECK_STATUS(scalar_inputs(t, x, 3), 0);
    int last = pyad_rec2(t, add, 0, 1);
    CHECK_STATUS(pyad_rec_output(t, last), 0);
    CHECK_STATUS(pyad_set_max_bytes(t, pyad_nbytes(t)), PYAD_OK);
    int s = 0, recorded = 0;
    for (int i = 0; i < 100000 && s >= 0; ++i) {
        s = pyad_rec1(t, sin_, last);
        if (s >= 0)
            last = s, recorded++;
    }
    CHECK_STATUS(s, PYAD_ENOMEM);
    int64_t N = pyad_n_ops(t), NC = pyad_n_consts(t), NB = pyad_n_inputs(t);
    CHECK(recorded > 0 && N == 4 + recorded);
    int32_t a3[3] = {0, 1, 2}, out[3];
    uint8_t op2[2] = {(uint8_t)sin_, (uint8_t)sin_};
    int32_t r2[2] = {0, 1};
    double W[6] = {1, 2, 3, 4, 5, 6};
    CHECK_STATUS(pyad_rec1(t, sin_, 0), PYAD_ENOMEM);
    CHECK_STATUS(pyad_rec_c(t, add_c, 0, 1.0), PYAD_ENOMEM);
    CHECK_STATUS(pyad_rec_const(t, 1.0), PYAD_ENOMEM);
    CHECK_STATUS(pyad_rec_input(t, 1.0), PYAD_ENOMEM);
    CHECK_STATUS(pyad_rec_input_n(t, x, 3), PYAD_ENOMEM);
    CHECK_STATUS(pyad_rec_rows(t, op2, r2, r2, 2, NULL, 0), PYAD_ENOMEM);
    CHECK_STATUS(pyad_rec_reduce(t, add, a3, 1, 3, out), PYAD_ENOMEM);
    CHECK_STATUS(pyad_rec_reduce(t, maximum, a3, 1, 3, out), PYAD_ENOMEM);
    CHECK_STATUS(pyad_rec_matmul_c(t, a3, 1, 3, W, 2, out), PYAD_ENOMEM);
    CHECK_STATUS(pyad_rec_select(t, 0, 1, 2), PYAD_ENOMEM);
    CHECK_STATUS(pyad_rec_guard(t, 0, 1), PYAD_ENOMEM);
    CHECK(pyad_n_ops(t) == N && pyad_n_consts(t) == NC && pyad_n_inputs(t) == NB
          && pyad_n_outputs(t) == 1);
    /* every sweep still works on what was recorded */
    CHECK_STATUS(pyad_rec_output(t, last), 1);
    check_sweeps(t, x, 1, "after out of memory");
    /* a bigger budget: recording goes on */
    CHECK_STATUS(pyad_set_max_bytes(t, INT64_MAX), PYAD_OK);
    CHECK(pyad_rec1(t, sin_, last) == N);
    CHECK_STATUS(pyad_rec_matmul_c(t, a3, 1, 3, W, 2, out), PYAD_OK);
    int64_t n_outputs = pyad_n_outputs(t);
    CHECK_STATUS(pyad_rec_output_n(t, out, 2), n_outputs);
    check_sweeps(t, x, 1, "after the budget was raised");
    pyad_tape_free(t);

    /* the budget covers every allocation: the input, output and pool lists too */
    t = new_tape();
    CHECK_STATUS(pyad_rec_input_n(t, x, 3), 0);
    CHECK_STATUS(pyad_set_max_bytes(t, pyad_nbytes(t)), PYAD_OK);
    int32_t *many = raw(4 * 100000);
    int so = pyad_rec_output_n(t, many, 100000);
    CHECK_STATUS(so, PYAD_ENOMEM);
    CHECK(pyad_n_outputs(t) == (so < 0 ? 0 : 100000));
    int32_t *row = raw(4 * 100000);
    for (int i = 0; i < 100000; ++i)
        row[i] = i % 2; /* not affine: gathered, 100000 pool entries */
    so = pyad_rec_reduce(t, maximum, row, 1, 100000, out);
    CHECK_STATUS(so, PYAD_ENOMEM);
    free(many);
    free(row);
    pyad_tape_free(t);
}

/* ---- group: calls with a count of 0 may pass NULL for the arrays ---- */

static void group_empty_calls(void)
{
    pyad_tape *t = new_tape();
    double x[1] = {0.5};
    CHECK_STATUS(pyad_rec_input_n(t, x, 1), 0);
    CHECK_STATUS(pyad_rec_input_n(t, NULL, 0), 1);
    CHECK_STATUS(pyad_rec1_n(t, OP("sin"), NULL, 0), 1);
    CHECK_STATUS(pyad_rec2_n(t, OP("add"), NULL, NULL, 0), 1);
    CHECK_STATUS(pyad_rec_select_n(t, NULL, NULL, NULL, 0), 1);
    CHECK_STATUS(pyad_rec_rows(t, NULL, NULL, NULL, 0, NULL, 0), 1);
    CHECK_STATUS(pyad_rec_output_n(t, NULL, 0), 0);
    CHECK_STATUS(pyad_values(t, NULL, 0, NULL), PYAD_OK);
    CHECK_STATUS(pyad_rec_const_n(t, NULL, 0), 1);
    CHECK_STATUS(pyad_rec_c_n(t, OP("add_c"), NULL, NULL, 0, 0), 1);
    CHECK(pyad_n_ops(t) == 1 && pyad_n_consts(t) == 0 && pyad_n_outputs(t) == 0);
    pyad_tape_free(t);
}

/* ---- group: a guard that fails at replay ---- */

static void group_branch(void)
{
    int gt_c = OP("gt_c"), mul = OP("mul");
    pyad_tape *t = new_tape();
    double x[2] = {0.7, 2.0};
    CHECK_STATUS(scalar_inputs(t, x, 2), 0);
    int c = pyad_rec_c(t, gt_c, 0, 0.5);
    int g = pyad_rec_guard(t, c, 1);
    CHECK_STATUS(g, 3);
    int y = pyad_rec2(t, mul, 0, 1);
    CHECK_STATUS(pyad_rec_output(t, y), 0);
    const int64_t N = pyad_n_slots(t);
    double v[8], vd[8], out[2], outd[2], xd[2] = {1, 0}, u[1] = {1}, big[64], badx[2] = {0.2, 2.0};
    int64_t bad = -1;
    CHECK_STATUS(pyad_forward(t, badx, v, out, &bad), PYAD_EBRANCH);
    CHECK(bad == g);
    bad = -1;
    CHECK_STATUS(pyad_gradient(t, badx, v, vd, out, outd, &bad), PYAD_EBRANCH);
    CHECK(bad == g);
    bad = -1;
    CHECK_STATUS(pyad_forward_tangent(t, badx, xd, v, vd, out, outd, &bad), PYAD_EBRANCH);
    CHECK(bad == g);
    bad = -1;
    CHECK_STATUS(pyad_tangent_vector(t, 2, badx, (double[4]){1, 0, 0, 1}, v, big, out, big,
                                     &bad), PYAD_EBRANCH);
    CHECK(bad == g);
    /* a batch marks the failing points and computes the others */
    double X[6] = {0.7, 2.0, 0.2, 2.0, 0.9, -1.0}, XD[6] = {1, 0, 1, 0, 0, 1};
    double *BV = dbl(N * 3), *BVD = dbl(N * 3), *BA = dbl(N * 3), *BAD = dbl(N * 3);
    double Y[3], YD[3], U[3] = {1, 1, 1}, XB[6], XBD[6];
    int64_t badv[3] = {7, 7, 7}, n_bad = -1;
    CHECK_STATUS(pyad_forward_batch(t, 3, X, BV, Y, badv, &n_bad), PYAD_OK);
    CHECK(n_bad == 1 && badv[0] == -1 && badv[1] == g && badv[2] == -1);
    CHECK(Y[0] == 0.7 * 2.0 && Y[2] == 0.9 * -1.0);
    CHECK_STATUS(pyad_reverse_batch(t, 3, BV, U, BA, XB), PYAD_OK);
    CHECK(XB[0] == 2.0 && XB[1] == 0.7 && XB[4] == -1.0 && XB[5] == 0.9);
    n_bad = -1;
    CHECK_STATUS(pyad_tangent_batch(t, 3, X, XD, BV, BVD, Y, YD, badv, &n_bad), PYAD_OK);
    CHECK(n_bad == 1 && badv[1] == g && YD[0] == 2.0 && YD[2] == 0.9);
    CHECK_STATUS(pyad_second_batch(t, 3, BV, BVD, U, BA, BAD, XB, XBD), PYAD_OK);
    CHECK(XBD[0] == 0.0 && XBD[1] == 1.0 && XBD[4] == 1.0 && XBD[5] == 0.0);
    /* the tape is unharmed: replay where the guard holds */
    CHECK_STATUS(pyad_forward(t, x, v, out, &bad), PYAD_OK);
    CHECK(out[0] == 1.4);
    CHECK_STATUS(pyad_reverse(t, v, u, big, out), PYAD_OK);
    CHECK(out[0] == 2.0 && out[1] == 0.7);
    /* a guard recorded false fails where its condition is true */
    CHECK_STATUS(pyad_rec_guard(t, pyad_rec_c(t, gt_c, 1, 5.0), 0), N + 1);
    double high[2] = {0.7, 6.0};
    CHECK_STATUS(pyad_forward(t, high, big, out, &bad), PYAD_EBRANCH);
    CHECK(bad == N + 1);
    free(BV), free(BVD), free(BA), free(BAD);
    pyad_tape_free(t);
}

/* ---- group: pyad_validate / pyad_tape_import on corrupt arrays ---- */

typedef struct {
    int64_t n_ops, n_slots, n_consts, n_pool, n_inputs, n_outputs, n_blocks;
    uint8_t *op;
    int32_t *a, *b, *c, *first, *pool, *inputs, *outputs, *blocks;
    double *val, *consts;
} arrays;

static arrays export_arrays(pyad_tape *t)
{
    arrays r;
    r.n_ops = pyad_n_ops(t), r.n_consts = pyad_n_consts(t), r.n_pool = pyad_n_pool(t);
    r.n_inputs = pyad_n_inputs(t), r.n_outputs = pyad_n_outputs(t);
    r.n_slots = pyad_n_slots(t), r.n_blocks = pyad_n_blocks(t);
    r.op = raw((size_t)r.n_ops);
    r.a = raw((size_t)r.n_ops * 4), r.b = raw((size_t)r.n_ops * 4), r.c = raw((size_t)r.n_ops * 4);
    r.first = raw((size_t)r.n_ops * 4), r.blocks = raw((size_t)r.n_blocks * 24);
    r.pool = raw((size_t)r.n_pool * 4), r.inputs = raw((size_t)r.n_inputs * 4);
    r.outputs = raw((size_t)r.n_outputs * 4);
    r.val = dbl(r.n_slots), r.consts = dbl(r.n_consts);
    CHECK_STATUS(pyad_tape_export(t, r.op, r.a, r.b, r.c, r.first, r.val, r.consts, r.pool,
                                  r.inputs, r.outputs, r.blocks), PYAD_OK);
    return r;
}

static arrays copy_arrays(const arrays *s)
{
    arrays r = *s;
    r.op = raw((size_t)s->n_ops), memcpy(r.op, s->op, (size_t)s->n_ops);
#define DUP(f, n, size) r.f = raw((size_t)(n) * (size)), memcpy(r.f, s->f, (size_t)(n) * (size))
    DUP(a, s->n_ops, 4);
    DUP(b, s->n_ops, 4);
    DUP(c, s->n_ops, 4);
    DUP(first, s->n_ops, 4);
    DUP(blocks, s->n_blocks, 24);
    DUP(pool, s->n_pool, 4);
    DUP(inputs, s->n_inputs, 4);
    DUP(outputs, s->n_outputs, 4);
    DUP(val, s->n_slots, 8);
    DUP(consts, s->n_consts, 8);
#undef DUP
    return r;
}

static void free_arrays(arrays *r)
{
    free(r->op), free(r->a), free(r->b), free(r->c), free(r->first), free(r->blocks);
    free(r->pool), free(r->inputs);
    free(r->outputs), free(r->val), free(r->consts);
}

static int validate(const arrays *r)
{
    return pyad_validate(r->n_ops, r->op, r->a, r->b, r->c, r->first, r->n_slots, r->n_consts,
                         r->n_pool, r->pool, r->n_inputs, r->inputs, r->n_outputs, r->outputs,
                         r->n_blocks, r->blocks);
}

static int import(const arrays *r, pyad_tape **out)
{
    return pyad_tape_import(out, r->n_ops, r->op, r->a, r->b, r->c, r->first, r->n_slots,
                            r->val, r->n_consts, r->consts, r->n_pool, r->pool, r->n_inputs,
                            r->inputs, r->n_outputs, r->outputs, r->n_blocks, r->blocks);
}

/* Both validate and import refuse the arrays, and import leaves *out NULL. */
static void expect_format_error(const arrays *r, const char *what)
{
    int s = validate(r);
    if (s != PYAD_EFORMAT) {
        failed++;
        fprintf(stderr, "corrupt arrays (%s): pyad_validate returned %d, expected EFORMAT\n",
                what, s);
        return;
    }
    passed++;
    pyad_tape *t = (pyad_tape *)&s; /* must be overwritten with NULL */
    CHECK_STATUS(import(r, &t), PYAD_EFORMAT);
    CHECK(t == NULL);
}

/* Every sweep of an imported (valid but arbitrary) tape must run without a
 * memory error and return OK or EBRANCH. */
static void sweep_everything(pyad_tape *t)
{
    int64_t N = pyad_n_slots(t), n = pyad_n_inputs(t), m = pyad_n_outputs(t);
    int64_t nb = 2, bad = -1, badv[2], n_bad;
    double *x = dbl(n * nb), *xd = dbl(n * nb), *u = dbl(m * nb), *v = dbl(N * nb);
    double *vd = dbl(N * nb), *adj = dbl(N * nb), *adjd = dbl(N * nb), *y = dbl(m * nb);
    double *yd = dbl(m * nb), *xb = dbl(n * nb), *xbd = dbl(n * nb);
    for (int64_t i = 0; i < n * nb; ++i)
        x[i] = 0.3 + 0.1 * (double)(i % 7), xd[i] = 1.0;
    for (int64_t i = 0; i < m * nb; ++i)
        u[i] = 1.0;
    int s = pyad_forward(t, x, v, y, &bad);
    CHECK(s == PYAD_OK || s == PYAD_EBRANCH);
    if (s == PYAD_OK)
        CHECK_STATUS(pyad_reverse(t, v, u, adj, xb), PYAD_OK);
    CHECK_STATUS(pyad_reverse(t, NULL, u, adj, xb), PYAD_OK);
    s = pyad_forward_tangent(t, x, xd, v, vd, y, yd, &bad);
    CHECK(s == PYAD_OK || s == PYAD_EBRANCH);
    if (s == PYAD_OK)
        CHECK_STATUS(pyad_reverse_second(t, v, vd, u, adj, adjd, xb, xbd), PYAD_OK);
    s = pyad_tangent_vector(t, nb, x, xd, v, vd, y, yd, &bad);
    CHECK(s == PYAD_OK || s == PYAD_EBRANCH);
    if (s == PYAD_OK)
        CHECK_STATUS(pyad_second_vector(t, nb, v, vd, u, adj, adjd, xb, xbd), PYAD_OK);
    CHECK_STATUS(pyad_reverse_vector(t, nb, NULL, u, adj, xbd), PYAD_OK);
    CHECK_STATUS(pyad_tangent_batch(t, nb, x, xd, v, vd, y, yd, badv, &n_bad), PYAD_OK);
    CHECK_STATUS(pyad_second_batch(t, nb, v, vd, u, adj, adjd, xb, xbd), PYAD_OK);
    CHECK_STATUS(pyad_forward_batch(t, nb, x, v, y, badv, &n_bad), PYAD_OK);
    CHECK_STATUS(pyad_reverse_batch(t, nb, v, u, adj, xb), PYAD_OK);
    free(x), free(xd), free(u), free(v), free(vd), free(adj), free(adjd), free(y), free(yd);
    free(xb), free(xbd);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint32_t next_random(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

static int index_of(const arrays *r, const char *name)
{
    int code = op_code(name);
    for (int64_t k = 0; k < r->n_ops; ++k)
        if (r->op[k] == code)
            return (int)k;
    return -1;
}

static void group_format(void)
{
    double x[3] = {0.6, -0.3, 1.7};
    pyad_tape *t = composite(x);
    arrays good = export_arrays(t);
    CHECK_STATUS(validate(&good), PYAD_OK);
    int count = pyad_op_count();

    /* one targeted corruption at a time */
    struct { const char *op; char field; int delta_kind; } cases[] = {
        /* delta_kind: 0 = self (row k's slot), 1 = -1, 2 = n_slots, 3 = n_consts, 4 = n_pool,
         * 5 = INT32_MAX */
        {"sin", 'a', 0}, {"sin", 'a', 1}, {"sin", 'a', 2}, {"sin", 'a', 5},
        {"mul", 'a', 0}, {"mul", 'b', 0}, {"mul", 'b', 1}, {"mul", 'b', 5},
        {"add_c", 'a', 0}, {"add_c", 'b', 3}, {"add_c", 'b', 1},
        {"gt_c", 'b', 3}, {"lt", 'b', 0}, {"constant", 'b', 3},
        {"select", 'a', 0}, {"select", 'b', 0}, {"select", 'c', 0}, {"select", 'c', 1},
        {"guard_true", 'a', 0}, {"guard_true", 'a', 1},
        {"axpy_c", 'a', 0}, {"axpy_c", 'b', 0}, {"axpy_c", 'c', 3}, {"axpy_c", 'c', 1},
        {"gather", 'a', 4}, {"gather", 'a', 1}, {"gather", 'b', 1}, {"gather", 'c', 1},
        {"reduce_max", 'a', 0}, {"reduce_max", 'a', 1}, {"reduce_max", 'b', 1},
        {"reduce_max", 'b', 5}, {"reduce_max", 'c', 1}, {"cumprod", 'a', 0},
        {"cumprod", 'b', 5}, {"cumsum", 'b', 2}, {"input", 'a', 1}, {"input", 'a', 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; ++i) {
        int k = index_of(&good, cases[i].op);
        if (k < 0) {
            if (op_code(cases[i].op) >= 0) {
                failed++;
                fprintf(stderr, "the composite tape has no %s row\n", cases[i].op);
            }
            continue;
        }
        arrays r = copy_arrays(&good);
        int32_t *f = cases[i].field == 'a' ? r.a : cases[i].field == 'b' ? r.b : r.c;
        const int32_t values[] = {r.first[k], -1, (int32_t)r.n_slots, (int32_t)r.n_consts,
                                  (int32_t)r.n_pool, INT32_MAX};
        f[k] = values[cases[i].delta_kind];
        char what[64];
        snprintf(what, sizeof what, "%s.%c", cases[i].op, cases[i].field);
        expect_format_error(&r, what);
        free_arrays(&r);
    }
    /* unknown op codes */
    for (int bad_op = count; bad_op < 256; bad_op += 37) {
        arrays r = copy_arrays(&good);
        r.op[r.n_ops / 2] = (uint8_t)bad_op;
        expect_format_error(&r, "op code out of the table");
        free_arrays(&r);
    }
    /* inputs and outputs lists */
    {
        arrays r = copy_arrays(&good);
        int32_t tmp = r.inputs[0];
        r.inputs[0] = r.inputs[1];
        r.inputs[1] = tmp; /* not one-to-one with the input rows */
        expect_format_error(&r, "inputs swapped");
        free_arrays(&r);
        r = copy_arrays(&good);
        r.inputs[2] = (int32_t)r.n_slots - 1; /* names a row that is not an input */
        expect_format_error(&r, "input names a non-input row");
        free_arrays(&r);
        r = copy_arrays(&good);
        r.inputs[0] = -1;
        expect_format_error(&r, "input -1");
        free_arrays(&r);
        r = copy_arrays(&good);
        r.outputs[1] = (int32_t)r.n_slots;
        expect_format_error(&r, "output past the end");
        free_arrays(&r);
        r = copy_arrays(&good);
        r.outputs[0] = -1;
        expect_format_error(&r, "output -1");
        free_arrays(&r);
    }
    /* counts */
    {
        arrays r = copy_arrays(&good);
        int64_t saved;
#define COUNT_CASE(field, value, what) \
        saved = r.field, r.field = (value), expect_format_error(&r, what), r.field = saved
        COUNT_CASE(n_ops, -1, "n_ops < 0");
        COUNT_CASE(n_ops, (int64_t)INT32_MAX + 1, "n_ops > INT32_MAX");
        COUNT_CASE(n_consts, -1, "n_consts < 0");
        COUNT_CASE(n_consts, (int64_t)INT32_MAX + 1, "n_consts > INT32_MAX");
        COUNT_CASE(n_pool, -1, "n_pool < 0");
        COUNT_CASE(n_inputs, -1, "n_inputs < 0");
        COUNT_CASE(n_inputs, r.n_ops + 1, "n_inputs > n_ops");
        COUNT_CASE(n_outputs, -1, "n_outputs < 0");
        COUNT_CASE(n_consts, 0, "constants removed");
        COUNT_CASE(n_pool, 0, "pool removed");
#undef COUNT_CASE
        CHECK_STATUS(validate(&r), PYAD_OK); /* restored */
        free_arrays(&r);
    }
    /* the pool of a gather row: every entry an earlier slot */
    if (good.n_pool > 0) {
        int k = index_of(&good, "gather");
        arrays r = copy_arrays(&good);
        r.pool[r.a[k] + 1] = r.first[k]; /* an operand that is the row itself */
        expect_format_error(&r, "gather pool entry names its own row");
        free_arrays(&r);
        r = copy_arrays(&good);
        r.pool[r.a[k]] = -1;
        expect_format_error(&r, "gather pool entry -1");
        free_arrays(&r);
    }

    /* every op code at every row, and random operand mutations: whatever
     * validates must import and sweep without a memory error */
    long accepted = 0, refused = 0;
    for (int64_t k = 0; k < good.n_ops; ++k)
        for (int code = 0; code < count; ++code) {
            arrays r = copy_arrays(&good);
            r.op[k] = (uint8_t)code;
            int s = validate(&r);
            if (s == PYAD_OK) {
                pyad_tape *u = NULL;
                CHECK_STATUS(import(&r, &u), PYAD_OK);
                if (u) {
                    sweep_everything(u);
                    pyad_tape_free(u);
                }
                accepted++;
            } else {
                CHECK_STATUS(s, PYAD_EFORMAT);
                refused++;
            }
            free_arrays(&r);
        }
    for (int iter = 0; iter < 3000; ++iter) {
        arrays r = copy_arrays(&good);
        int n_mut = 1 + (int)(next_random() % 3);
        for (int j = 0; j < n_mut; ++j) {
            int64_t k = next_random() % (uint32_t)r.n_ops;
            uint32_t which = next_random() % 8;
            int32_t interesting[] = {-1, 0, 1, (int32_t)k - 1, (int32_t)k, (int32_t)k + 1,
                                     (int32_t)r.n_ops, (int32_t)r.n_consts, (int32_t)r.n_pool,
                                     INT32_MAX, INT32_MIN, (int32_t)(next_random() % 64)};
            int32_t value = interesting[next_random() % 12];
            switch (which) {
            case 0: r.op[k] = (uint8_t)(next_random() % (uint32_t)(count + 2)); break;
            case 1: r.a[k] = value; break;
            case 2: r.b[k] = value; break;
            case 3: r.c[k] = value; break;
            case 4: if (r.n_pool) r.pool[next_random() % (uint32_t)r.n_pool] = value; break;
            case 5: r.inputs[next_random() % (uint32_t)r.n_inputs] = value; break;
            case 6: r.outputs[next_random() % (uint32_t)r.n_outputs] = value; break;
            default: r.val[k] = value; break;
            }
        }
        int s = validate(&r);
        pyad_tape *u = NULL;
        if (s == PYAD_OK) {
            CHECK_STATUS(import(&r, &u), PYAD_OK);
            if (u) {
                sweep_everything(u);
                pyad_tape_free(u);
            }
            accepted++;
        } else {
            CHECK_STATUS(s, PYAD_EFORMAT);
            CHECK_STATUS(import(&r, &u), PYAD_EFORMAT);
            CHECK(u == NULL);
            refused++;
        }
        free_arrays(&r);
    }
    CHECK(accepted > 0 && refused > 0);
    free_arrays(&good);
    pyad_tape_free(t);
}

/* ---- group: validation of block rows, one bad layout at a time ---- */

/* The block entry (index i) of row k's block, or -1. */
static int64_t block_of(const arrays *r, int64_t k)
{
    for (int64_t i = 0; i < r->n_blocks; ++i)
        if (r->blocks[i * 6] == k)
            return i;
    return -1;
}

static int row_with_op(const arrays *r, const char *name, int block)
{
    for (int64_t k = 0; k < r->n_ops; ++k)
        if (r->op[k] == op_code(name) && (block_of(r, k) >= 0) == block)
            return (int)k;
    return -1;
}

static void group_block_format(void)
{
    pyad_tape *t = new_tape();
    record_block_case(t, 13, 1); /* gt_c block (shared constant), select block */
    int32_t a[4] = {1, 3, 5, 7}, b[4] = {0, 2, 4, 6};
    double c[4] = {1, 2, 3, 4};
    CHECK(pyad_rec2_n(t, OP("mul"), a, b, 4) > 0);       /* strides 2, 2 */
    CHECK(pyad_rec_c_n(t, OP("rdiv_c"), a, c, 4, 4) > 0);  /* a constant per element */
    CHECK(pyad_rec1_n(t, OP("sin"), a, 4) > 0);          /* unary, stride 2 */
    CHECK(pyad_rec_const_n(t, c, 4) > 0);                /* constants, stride 1 */
    arrays good = export_arrays(t);
    CHECK_STATUS(validate(&good), PYAD_OK);
    CHECK(good.n_blocks == 7); /* and the input block, row 0 */
    int crow = row_with_op(&good, "constant", 1);
    int64_t bin = block_of(&good, 0), bc = block_of(&good, crow);
    CHECK(crow >= 0 && bin == 0 && good.op[0] == op_code("input"));
    int sel = row_with_op(&good, "select", 1), mul = row_with_op(&good, "mul", 1);
    int rdiv = row_with_op(&good, "rdiv_c", 1), sin_ = row_with_op(&good, "sin", 1);
    int64_t bs = block_of(&good, sel), bm = block_of(&good, mul), br = block_of(&good, rdiv);
    int64_t bsin = block_of(&good, sin_);
    CHECK(sel >= 0 && mul >= 0 && rdiv >= 0 && sin_ >= 0);
    if (sel < 0 || mul < 0 || rdiv < 0 || sin_ < 0) {
        free_arrays(&good);
        pyad_tape_free(t);
        return;
    }
#define BAD(what, edit)                                                     \
    do {                                                                    \
        arrays r = copy_arrays(&good);                                      \
        edit;                                                               \
        expect_format_error(&r, what);                                      \
        free_arrays(&r);                                                    \
    } while (0)
    BAD("first not consecutive", r.first[mul + 1] += 1);
    BAD("first of row 0 not 0", r.first[0] = 1);
    BAD("n_slots one too many", r.n_slots += 1);
    BAD("n_slots one too few", r.n_slots -= 1);
    BAD("block width 1", r.blocks[bm * 6 + 1] = 1);
    BAD("block width 0", r.blocks[bm * 6 + 1] = 0);
    BAD("block wider than the slots", r.blocks[bsin * 6 + 1] = (int32_t)r.n_slots);
    BAD("block width changed (first no longer consecutive)", r.blocks[bm * 6 + 1] += 1);
    BAD("negative stride a", r.blocks[bm * 6 + 2] = -1);
    BAD("negative stride b", r.blocks[bm * 6 + 3] = -2);
    BAD("negative stride const", r.blocks[br * 6 + 5] = -1);
    BAD("last element of a not earlier", r.blocks[bm * 6 + 2] = r.first[mul] / 3 + 1);
    BAD("last element of b not earlier", r.blocks[bm * 6 + 3] = 1000);
    BAD("last element of select's c not earlier", r.blocks[bs * 6 + 4] = 9);
    BAD("first element of a is the row itself", r.a[mul] = r.first[mul]);
    BAD("stride overflows int32 range", r.blocks[bm * 6 + 2] = INT32_MAX);
    BAD("constant past the pool", r.blocks[br * 6 + 5] = (int32_t)r.n_consts);
    BAD("shared-constant row reads past the pool", r.b[rdiv] = (int32_t)r.n_consts - 1);
    BAD("unused stride b of a unary row", r.blocks[bsin * 6 + 3] = 1);
    BAD("unused stride c of a binary row", r.blocks[bm * 6 + 4] = 1);
    BAD("unused constant stride of a binary row", r.blocks[bm * 6 + 5] = 1);
    BAD("unused stride b of a with-constant row", r.blocks[br * 6 + 3] = 1);
    BAD("block row names a row past the end", r.blocks[bsin * 6] = (int32_t)r.n_ops);
    BAD("block entries out of order", {
        int32_t tmp[6];
        memcpy(tmp, r.blocks + bm * 6, sizeof tmp);
        memcpy(r.blocks + bm * 6, r.blocks + br * 6, sizeof tmp);
        memcpy(r.blocks + br * 6, tmp, sizeof tmp);
    });
    BAD("block entry repeated", memcpy(r.blocks + br * 6, r.blocks + bm * 6, 24));
    BAD("a block entry dropped", r.n_blocks -= 1);
    BAD("n_blocks < 0", r.n_blocks = -1);
    BAD("n_blocks > n_ops", r.n_blocks = r.n_ops + 1);
    BAD("input op at a block row", r.op[mul] = (uint8_t)op_code("input"));
    BAD("constant op at a block row", r.op[mul] = (uint8_t)op_code("constant"));
    BAD("guard at a block row", r.op[sin_] = (uint8_t)op_code("guard_true"));
    BAD("axpy_c at a block row", r.op[mul] = (uint8_t)op_code("axpy_c"));
    BAD("max_n at a block row", r.op[sin_] = (uint8_t)op_code("max_n"));
    BAD("output past the last slot", r.outputs[0] = (int32_t)r.n_slots);
    /* input and constant blocks: exactly stride 1 over their inputs / constants */
    BAD("input block of stride 0", r.blocks[bin * 6 + 2] = 0);
    BAD("input block of stride 2", r.blocks[bin * 6 + 2] = 2);
    BAD("input block with a constant stride", r.blocks[bin * 6 + 5] = 1);
    BAD("input block with a stride b", r.blocks[bin * 6 + 3] = 1);
    BAD("input block past the last input", r.a[0] = 1);
    BAD("input block before the first input", r.a[0] = -1);
    BAD("inputs not in the block's order", {
        int32_t tmp = r.inputs[0];
        r.inputs[0] = r.inputs[1];
        r.inputs[1] = tmp;
    });
    BAD("an input naming a slot of no input row", r.inputs[2] = r.first[crow]);
    BAD("one input too many", r.n_inputs += 1);
    BAD("constant block of stride 0", r.blocks[bc * 6 + 5] = 0);
    BAD("constant block of stride 2", r.blocks[bc * 6 + 5] = 2);
    BAD("constant block with a stride a", r.blocks[bc * 6 + 2] = 1);
    BAD("constant block past the pool", r.b[crow] = (int32_t)r.n_consts - 3);
    BAD("constant block before the pool", r.b[crow] = -1);
#undef BAD
    /* a valid change: a stride that still ends below the row is accepted */
    {
        arrays r = copy_arrays(&good);
        r.blocks[bm * 6 + 2] = 0;
        CHECK_STATUS(validate(&r), PYAD_OK);
        free_arrays(&r);
    }
    /* random mutations of the new columns: whatever validates must sweep */
    long accepted = 0, refused = 0;
    for (int iter = 0; iter < 3000; ++iter) {
        arrays r = copy_arrays(&good);
        int n_mut = 1 + (int)(next_random() % 3);
        for (int j = 0; j < n_mut; ++j) {
            int64_t k = next_random() % (uint32_t)r.n_ops;
            int32_t f = r.first[k] > INT32_MIN && r.first[k] < INT32_MAX ? r.first[k] : 0;
            int32_t interesting[] = {-1, 0, 1, 2, 3, f - 1, f, f + 1,
                                     (int32_t)r.n_slots, (int32_t)r.n_consts, INT32_MAX,
                                     (int32_t)(next_random() % 64)};
            int32_t value = interesting[next_random() % 12];
            switch (next_random() % 4) {
            case 0: r.first[k] = value; break;
            case 1: r.blocks[next_random() % (uint32_t)(r.n_blocks * 6)] = value; break;
            case 2: r.a[k] = value; break;
            default: r.op[k] = (uint8_t)(next_random() % (uint32_t)pyad_op_count()); break;
            }
        }
        int s = validate(&r);
        pyad_tape *u = NULL;
        if (s == PYAD_OK) {
            CHECK_STATUS(import(&r, &u), PYAD_OK);
            if (u) {
                sweep_everything(u);
                pyad_tape_free(u);
            }
            accepted++;
        } else {
            CHECK_STATUS(s, PYAD_EFORMAT);
            refused++;
        }
        free_arrays(&r);
    }
    CHECK(accepted > 0 && refused > 0);
    free_arrays(&good);
    pyad_tape_free(t);
}

/* ---- group: a tape in use by another thread ---- */

static void group_busy(void)
{
    int sin_ = OP("sin");
    pyad_tape *t = new_tape();
    double x[1] = {0.5}, v[8], y[2], u[1] = {1}, xb[1];
    int64_t bad;
    CHECK_STATUS(pyad_rec_input_n(t, x, 1), 0);
    CHECK_STATUS(pyad_rec_output(t, pyad_rec1(t, sin_, 0)), 0);
    /* a recorder holds the tape: sweeps and other recorders are refused */
    atomic_store(&t->users, -1);
    CHECK_STATUS(pyad_forward(t, x, v, y, &bad), PYAD_EBUSY);
    CHECK_STATUS(pyad_reverse(t, NULL, u, v, xb), PYAD_EBUSY);
    CHECK_STATUS(pyad_gradient(t, x, v, v + 4, y, xb, &bad), PYAD_EBUSY);
    CHECK_STATUS(pyad_rec1(t, sin_, 0), PYAD_EBUSY);
    CHECK_STATUS(pyad_rec_input(t, 1.0), PYAD_EBUSY);
    CHECK_STATUS(pyad_shrink(t), PYAD_EBUSY);
    CHECK_STATUS(pyad_tape_reset(t), PYAD_EBUSY);
    {
        uint8_t op8[2];
        int32_t i8[4];
        double d8[4];
        CHECK_STATUS(pyad_tape_export(t, op8, i8, i8, i8, i8, d8, d8, i8, i8, i8, i8), PYAD_EBUSY);
    }
    /* sweeps are running: more sweeps may start, recording may not. The first
     * sweep evaluated the recorded rows (held as by a recorder), so running
     * sweeps mean a tape with values; while they run, none is written. */
    atomic_store(&t->users, 0);
    CHECK_STATUS(pyad_forward(t, x, v, y, &bad), PYAD_OK);
    CHECK(t->n_valued == t->n_ops);
    atomic_store(&t->users, 2);
    CHECK_STATUS(pyad_forward(t, x, v, y, &bad), PYAD_OK);
    CHECK_STATUS(pyad_rec1(t, sin_, 0), PYAD_EBUSY);
    CHECK_STATUS(pyad_rec_output(t, 0), PYAD_EBUSY);
    CHECK(atomic_load(&t->users) == 2); /* a sweep gives back what it took */
    atomic_store(&t->users, 0);
    CHECK(pyad_n_ops(t) == 2 && pyad_n_outputs(t) == 1);
    CHECK_STATUS(pyad_rec1(t, sin_, 0), 2);
    CHECK(atomic_load(&t->users) == 0);
    pyad_tape_free(t);
}

/* ---- group: recorded rows get their values when first read ---- */

/* Rows wait for their values until pyad_values or a sweep reads the tape; all
 * of them are then evaluated in one pass, which goes on past a row that fails
 * at the recorded point (inv of a singular matrix), as row-by-row evaluation
 * did. */
static void group_values_when_read(void)
{
    int sin_ = OP("sin"), mul = OP("mul"), inv = OP("inv");
    pyad_tape *t = new_tape();
    double a[4] = {1.0, 2.0, 2.0, 4.0}, v[64], y[2], x[4], want;
    int64_t bad;
    CHECK_STATUS(pyad_rec_input_n(t, a, 4), 0);
    int zi = pyad_rec_lu(t, inv, 0, 0, 2, 0); /* singular: its values are inf/nan */
    CHECK(zi == 4);
    int zs = pyad_rec1(t, sin_, 1), zm = pyad_rec2(t, mul, zs, 3);
    CHECK(t->n_valued < t->n_ops); /* nothing evaluated yet */
    CHECK_STATUS(pyad_values(t, (int32_t[]){(int32_t)zm}, 1, y), PYAD_OK);
    want = sin(2.0) * 4.0;
    CHECK(t->n_valued == t->n_ops && y[0] == want);
    /* a row recorded later waits again; a sweep at another point evaluates it */
    int zc = pyad_rec1(t, sin_, zm);
    CHECK_STATUS(pyad_rec_output(t, zc), 0);
    CHECK(t->n_valued < t->n_ops);
    memcpy(x, a, sizeof x);
    x[1] = 0.5;
    CHECK_STATUS(pyad_forward(t, x, v, y + 1, &bad), PYAD_OK); /* inv of [1 .5; 2 4] */
    CHECK(t->n_valued == t->n_ops);
    CHECK_STATUS(pyad_values(t, (int32_t[]){(int32_t)zc}, 1, y), PYAD_OK);
    CHECK(y[0] == sin(want));
    /* while another thread holds the tape, an unevaluated row is not read */
    int zd = pyad_rec1(t, sin_, zc);
    atomic_store(&t->users, 1);
    CHECK_STATUS(pyad_values(t, (int32_t[]){(int32_t)zd}, 1, y), PYAD_EBUSY);
    atomic_store(&t->users, 0);
    CHECK_STATUS(pyad_values(t, (int32_t[]){(int32_t)zd}, 1, y), PYAD_OK);
    CHECK(y[0] == sin(sin(want)));
    pyad_tape_free(t);
}

/* ---- group: every allocation of a session failing in turn ---- */

#ifdef PYAD_TEST_FAULTS
/* A recording session through every recorder, shrink, more recording, the
 * sweeps and a round trip. Every call may fail with ENOMEM (and must then
 * leave the tape as it was) and nothing else; the sweeps must still work. */
static void faulty_session(int shrink)
{
    int sin_ = OP("sin"), add = OP("add"), add_c = OP("add_c"), maximum = OP("maximum");
    pyad_tape *t = NULL;
    int s = pyad_tape_new(&t);
    if (s != PYAD_OK) {
        CHECK_STATUS(s, PYAD_ENOMEM);
        CHECK(t == NULL);
        return;
    }
    double x[3] = {0.5, 1.5, -0.25}, W[6] = {1, 2, 3, 4, 5, 6};
    int64_t before, slots_before, blocks_before;
#define STEP(call)                                                             \
    do {                                                                       \
        before = pyad_n_ops(t);                                                \
        slots_before = pyad_n_slots(t), blocks_before = pyad_n_blocks(t);      \
        s = (call);                                                            \
        CHECK(s >= 0 || s == PYAD_ENOMEM);                                     \
        if (s == PYAD_ENOMEM)                                                  \
            CHECK(pyad_n_ops(t) == before && pyad_n_slots(t) == slots_before   \
                  && pyad_n_blocks(t) == blocks_before);                       \
    } while (0)
    STEP(pyad_rec_input_n(t, x, 3));
    CHECK(s >= 0 || pyad_n_inputs(t) == 0);
    if (pyad_n_inputs(t) == 3) {
        STEP(pyad_rec_const_n(t, W, 3));
        CHECK(s >= 0 || pyad_n_consts(t) == 0);
        int last = 0;
        uint8_t ops[2] = {(uint8_t)sin_, (uint8_t)add_c};
        int32_t a[2], b[2] = {0, 0};
        double c[1] = {0.125};
        for (int i = 0; i < 120; ++i) {
            a[0] = last, a[1] = (int32_t)pyad_n_slots(t);
            STEP(pyad_rec_rows(t, ops, a, b, 2, c, 1));
            if (s >= 0)
                last = s + 1;
        }
        int32_t row[3] = {0, 1, 2}, out[2];
        STEP(pyad_rec_reduce(t, add, row, 1, 3, out));
        STEP(pyad_rec_reduce(t, maximum, row, 1, 3, out));
        STEP(pyad_rec_matmul_c(t, row, 1, 3, W, 2, out));
        /* block rows: a unary and a with-constant block, then a sum of their six
         * contiguous slots, whose tree levels are blocks too */
        STEP(pyad_rec1_n(t, sin_, row, 3));
        if (s >= 0) {
            int32_t blk[3] = {s, s + 1, s + 2}, six[6], sum;
            STEP(pyad_rec_c_n(t, add_c, blk, c, 1, 3));
            if (s == blk[2] + 1) {
                for (int i = 0; i < 6; ++i)
                    six[i] = blk[0] + i;
                STEP(pyad_rec_reduce(t, add, six, 1, 6, &sum));
                if (s >= 0)
                    STEP(pyad_rec_output(t, sum));
            }
        }
        STEP(pyad_rec_output(t, last));
        if (shrink)
            STEP(pyad_shrink(t));
        for (int i = 0; i < 80; ++i) {
            STEP(pyad_rec1(t, sin_, last));
            if (s >= 0)
                last = s;
            STEP(pyad_rec_c(t, add_c, last, 1.0));
            if (s >= 0)
                last = s;
        }
        STEP(pyad_rec_output(t, last));
        if (shrink)
            STEP(pyad_shrink(t));
        /* the sweeps allocate nothing: they must work */
        int64_t N = pyad_n_slots(t), m = pyad_n_outputs(t);
        if (m > 0) {
            int64_t bad;
            double *v = dbl(N), *adj = dbl(N), *y = dbl(m), *u = dbl(m), xb[3];
            for (int64_t i = 0; i < m; ++i)
                u[i] = 1.0;
            CHECK_STATUS(pyad_forward(t, x, v, y, &bad), PYAD_OK);
            CHECK_STATUS(pyad_reverse(t, v, u, adj, xb), PYAD_OK);
            free(v), free(adj), free(y), free(u);
            /* a round trip may fail to allocate, and then leaves nothing behind */
            arrays r = export_arrays(t);
            pyad_tape *copy = NULL;
            s = import(&r, &copy);
            CHECK(s == PYAD_OK || (s == PYAD_ENOMEM && copy == NULL));
            pyad_tape_free(copy);
            free_arrays(&r);
        }
    }
#undef STEP
    pyad_tape_free(t);
}

/* Counts the allocations of a clean session, then fails each one in turn. */
static void fail_each_allocation(int shrink)
{
    fault_at = -1;
    alloc_count = 0;
    faulty_session(shrink);
    long total = alloc_count;
    CHECK(total > 10);
    for (long f = 0; f < total; ++f) {
        alloc_count = 0;
        fault_at = f;
        faulty_session(shrink);
        fault_at = -1;
    }
}

static void group_faults(void) { fail_each_allocation(0); }

/* pyad_shrink reallocates downwards, and then recording goes on */
static void group_faults_shrink(void) { fail_each_allocation(1); }
#endif

/* ---- running the groups, each in its own process ---- */

static long total_passed, total_failed;
static const char *only; /* argv[1]: run the groups whose name contains it */

static void run_group(const char *name, void (*fn)(void))
{
    if (only && !strstr(name, only))
        return;
    int fd[2];
    if (pipe(fd) != 0) {
        perror("pipe");
        exit(2);
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(2);
    }
    if (pid == 0) {
        close(fd[0]);
        passed = failed = 0;
        fn();
        long counts[2] = {passed, failed};
        if (write(fd[1], counts, sizeof counts) != (ssize_t)sizeof counts)
            exit(3);
        close(fd[1]);
        exit(failed ? 1 : 0); /* exit() runs the leak checks of the sanitizers */
    }
    close(fd[1]);
    long counts[2] = {0, 0};
    ssize_t got = read(fd[0], counts, sizeof counts);
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    int clean_exit = WIFEXITED(status) && WEXITSTATUS(status) == (counts[1] ? 1 : 0);
    if (got != (ssize_t)sizeof counts || !clean_exit) {
        counts[1]++;
        if (WIFSIGNALED(status))
            fprintf(stderr, "group %s: killed by signal %d\n", name, WTERMSIG(status));
        else
            fprintf(stderr, "group %s: exit status %d (a crash, a leak, or a sanitizer or "
                    "valgrind report; see above)\n", name, WEXITSTATUS(status));
    }
    printf("%-16s %5ld passed, %ld failed\n", name, counts[0], counts[1]);
    total_passed += counts[0];
    total_failed += counts[1];
}

/* ---- group: custom rows (the caller's rules, through the tape's callback) ---- */

/* z = 2 x, elementwise, with its exact derivatives; fails when *ctx is nonzero.
 * Counts its calls per sweep kind in custom_calls. */
static long custom_calls[4];

static int doubling_rule(void *ctx, const struct pyad_custom_call *c)
{
    if (*(const int *)ctx || c->n_in != c->n_out || c->sweep < 0 || c->sweep > 3)
        return 1;
    custom_calls[c->sweep]++;
    int64_t n = c->n_in;
    for (int64_t i = 0; i < n; ++i) {
        if (c->sweep == PYAD_CUSTOM_VALUES || c->sweep == PYAD_CUSTOM_TANGENT)
            for (int64_t j = 0; j < c->lv; ++j)
                c->z[i * c->lv + j] = 2.0 * c->x[i * c->lv + j];
        if (c->sweep == PYAD_CUSTOM_TANGENT)
            for (int64_t j = 0; j < c->lt; ++j)
                c->zd[i * c->lt + j] = 2.0 * c->xd[i * c->lt + j];
        if (c->sweep == PYAD_CUSTOM_REVERSE || c->sweep == PYAD_CUSTOM_SECOND)
            for (int64_t j = 0; j < c->lg; ++j)
                c->xbar[i * c->lg + j] += 2.0 * c->zbar[i * c->lg + j];
        if (c->sweep == PYAD_CUSTOM_SECOND)
            for (int64_t j = 0; j < c->lq; ++j)
                c->xbard[i * c->lq + j] += 2.0 * c->zbard[i * c->lq + j];
    }
    return 0;
}

static void group_custom(void)
{
    int sin_ = OP("sin");
    if (sin_ < 0)
        return;
    static const double x0[3] = {0.5, -1.0, 2.0}, one[3] = {1.0, 1.0, 1.0};
    int fail = 0;
    pyad_tape *t = new_tape();
    CHECK_STATUS(pyad_rec_input_n(t, x0, 3), 0);
    const double z0[3] = {1.0, -2.0, 4.0};
    /* no callback yet: refused, the tape unchanged */
    CHECK_STATUS(pyad_rec_custom(t, 0, 3, 3, 0, z0), PYAD_EINVAL);
    CHECK_STATUS(pyad_set_custom_callback(NULL, doubling_rule, &fail), PYAD_ECLOSED);
    CHECK_STATUS(pyad_set_custom_callback(t, doubling_rule, &fail), PYAD_OK);
    CHECK_STATUS(pyad_rec_custom(t, 1, 3, 3, 0, z0), PYAD_EINDEX); /* reads slot 3 */
    CHECK_STATUS(pyad_rec_custom(t, -1, 3, 3, 0, z0), PYAD_EINDEX);
    CHECK_STATUS(pyad_rec_custom(t, 0, 0, 3, 0, z0), PYAD_EINVAL);
    CHECK_STATUS(pyad_rec_custom(t, 0, 3, 0, 0, z0), PYAD_EINVAL);
    CHECK_STATUS(pyad_rec_custom(t, 0, 3, 3, -1, z0), PYAD_EINVAL);
    CHECK_STATUS(pyad_rec_custom(t, 0, 3, 3, 0, NULL), PYAD_EINVAL);
    CHECK(pyad_n_ops(t) == 1 && pyad_n_slots(t) == 3);
    CHECK_STATUS(pyad_rec_custom(t, 0, 3, 3, 0, z0), 3);
    int32_t zs[3] = {3, 4, 5}, outs[3] = {6, 7, 8};
    CHECK_STATUS(pyad_rec1_n(t, sin_, zs, 3), 6);
    CHECK_STATUS(pyad_rec_output_n(t, outs, 3), 0);
    double y[3], yd[3], v[9], vd[9], adj[9], adjd[9], xbar[3], xbard[3];
    int64_t bad = -1;
    const double x1[3] = {0.25, 0.75, -0.5};
    CHECK_STATUS(pyad_forward(t, x1, v, y, &bad), PYAD_OK);
    for (int i = 0; i < 3; ++i)
        CHECK_CLOSE(y[i], sin(2.0 * x1[i]), 1e-15, 0, "custom forward");
    CHECK_STATUS(pyad_forward_tangent(t, x1, one, v, vd, y, yd, &bad), PYAD_OK);
    for (int i = 0; i < 3; ++i)
        CHECK_CLOSE(yd[i], 2.0 * cos(2.0 * x1[i]), 1e-15, 0, "custom tangent");
    CHECK_STATUS(pyad_reverse(t, v, one, adj, xbar), PYAD_OK);
    for (int i = 0; i < 3; ++i)
        CHECK_CLOSE(xbar[i], 2.0 * cos(2.0 * x1[i]), 1e-15, 0, "custom reverse");
    CHECK_STATUS(pyad_reverse_second(t, v, vd, one, adj, adjd, xbar, xbard), PYAD_OK);
    for (int i = 0; i < 3; ++i)
        CHECK_CLOSE(xbard[i], -4.0 * sin(2.0 * x1[i]), 1e-14, 0, "custom second");
    /* batched: two points, each with its own lane */
    double xb[6] = {0.25, 0.75, -0.5, 1.0, 2.0, 3.0}, ub[6] = {1, 1, 1, 1, 1, 1};
    double vb[18], adjb[18], yb[6], xbarb[6];
    int64_t badb[2], n_bad = 0;
    CHECK_STATUS(pyad_forward_batch(t, 2, xb, vb, yb, badb, &n_bad), PYAD_OK);
    CHECK_STATUS(pyad_reverse_batch(t, 2, vb, ub, adjb, xbarb), PYAD_OK);
    for (int i = 0; i < 6; ++i) {
        CHECK_CLOSE(yb[i], sin(2.0 * xb[i]), 1e-15, 0, "custom batch");
        CHECK_CLOSE(xbarb[i], 2.0 * cos(2.0 * xb[i]), 1e-15, 0, "custom batch reverse");
    }
    /* a zero adjoint is a structural zero: the rule is not called */
    long before = custom_calls[PYAD_CUSTOM_REVERSE];
    const double zero[3] = {0, 0, 0};
    CHECK_STATUS(pyad_reverse(t, v, zero, adj, xbar), PYAD_OK);
    CHECK(custom_calls[PYAD_CUSTOM_REVERSE] == before && xbar[0] == 0.0);
    /* a failing rule stops every sweep with PYAD_ECALLBACK */
    fail = 1;
    CHECK_STATUS(pyad_forward(t, x1, v, y, &bad), PYAD_ECALLBACK);
    CHECK_STATUS(pyad_forward_tangent(t, x1, one, v, vd, y, yd, &bad), PYAD_ECALLBACK);
    CHECK_STATUS(pyad_reverse(t, NULL, one, adj, xbar), PYAD_ECALLBACK);
    CHECK_STATUS(pyad_reverse_second(t, v, vd, one, adj, adjd, xbar, xbard), PYAD_ECALLBACK);
    CHECK_STATUS(pyad_tangent_vector(t, 1, x1, one, v, vd, y, yd, &bad), PYAD_ECALLBACK);
    CHECK_STATUS(pyad_reverse_vector(t, 1, NULL, one, adj, xbar), PYAD_ECALLBACK);
    CHECK_STATUS(pyad_second_vector(t, 1, v, vd, one, adj, adjd, xbar, xbard), PYAD_ECALLBACK);
    CHECK_STATUS(pyad_forward_batch(t, 2, xb, vb, yb, badb, &n_bad), PYAD_ECALLBACK);
    CHECK_STATUS(pyad_reverse_batch(t, 2, vb, ub, adjb, xbarb), PYAD_ECALLBACK);
    fail = 0;
    CHECK_STATUS(pyad_forward(t, x1, v, y, &bad), PYAD_OK); /* the tape is not held */
    /* a custom row is never saved: the exported arrays do not validate */
    arrays r = export_arrays(t);
    CHECK_STATUS(validate(&r), PYAD_EFORMAT);
    free_arrays(&r);
    /* a reset tape forgets the callback */
    CHECK_STATUS(pyad_tape_reset(t), PYAD_OK);
    CHECK_STATUS(pyad_rec_input_n(t, x0, 3), 0);
    CHECK_STATUS(pyad_rec_custom(t, 0, 3, 3, 0, z0), PYAD_EINVAL);
    pyad_tape_free(t);
}

#include "test_linalg_lu.c"
#include "test_linalg_eig.c"

int main(int argc, char **argv)
{
    only = argc > 1 ? argv[1] : NULL;
    setvbuf(stdout, NULL, _IOLBF, 0);
    run_group("table", group_table);
    run_group("registry facts", group_registry_facts);
    run_group("ops", group_ops);
    run_group("specials", group_specials);
    run_group("products", group_products);
    run_group("linalg lu", group_linalg_lu);
    run_group("linalg sym", group_linalg_sym);
    run_group("linalg eig", group_linalg_eig);
    run_group("composite", group_composite);
    run_group("blocks", group_blocks);
    run_group("ieee", group_ieee);
    run_group("null tape", group_null_tape);
    run_group("bad arguments", group_bad_arguments);
    run_group("size limit", group_size_limit);
    run_group("byte budget", group_byte_budget);
    run_group("empty calls", group_empty_calls);
    run_group("branch", group_branch);
    run_group("format", group_format);
    run_group("block format", group_block_format);
    run_group("busy", group_busy);
    run_group("values when read", group_values_when_read);
    run_group("custom", group_custom);
#ifdef PYAD_TEST_FAULTS
    run_group("alloc faults", group_faults);
    run_group("shrink faults", group_faults_shrink);
#endif
    printf("%ld passed, %ld failed\n", total_passed, total_failed);
    return total_failed ? 1 : 0;
}
