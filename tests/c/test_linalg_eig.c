/* The eigh row (csrc/linalg_eig.c): eigh, eigh with UPLO='U' and eigvalsh in
 * every sweep (check_sweeps: central differences, forward vs reverse, second
 * order, vector and batched sweeps, a saved copy), A V = V diag(w), the
 * repeated-eigenvalue errors of the derivative sweeps (and the first
 * derivatives of eigenvalues that stay defined there), LAPACK's failure at
 * record time, and the arguments pyad_rec_eigh refuses. Included by
 * test_core.c (its helpers are static there); run as the group "linalg eig". */

/* The 3 x 3 symmetric matrix of six inputs (a b c / b d e / c e f): a gather. */
static const int32_t EIG_SYM[9] = {0, 1, 2, 1, 3, 4, 2, 4, 5};

/* Inputs, the gathered matrix (slots 6..14), one eigh row with `flags`, sin of
 * its results as outputs (eigh: w and V, 12; eigvalsh: w, 3). */
static pyad_tape *eig_tape(const double *x, int flags, int *z)
{
    pyad_tape *t = new_tape();
    CHECK_STATUS(pyad_rec_input_n(t, x, 6), 0);
    CHECK_STATUS(pyad_rec_gather(t, EIG_SYM, 9), 6);
    *z = pyad_rec_eigh(t, 6, 3, 1, flags);
    CHECK_STATUS(*z, 15);
    int n_out = flags & PYAD_EIGH_VALUES ? 3 : 12;
    int32_t zs[12], outs[12];
    for (int i = 0; i < n_out; ++i)
        zs[i] = *z + i;
    int first = pyad_rec1_n(t, OP("sin"), zs, n_out);
    for (int i = 0; i < n_out; ++i)
        outs[i] = first + i;
    CHECK_STATUS(pyad_rec_output_n(t, outs, n_out), 0);
    return t;
}

/* Status of a reverse sweep of t at x with every output weighted 1. */
static int eig_reverse_status(pyad_tape *t, const double *x)
{
    double u[12] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, xbar[6];
    return reverse_at(t, x, u, xbar);
}

/* Status of a tangent sweep of t at x along xd. */
static int eig_tangent_status(pyad_tape *t, const double *x, const double *xd)
{
    int64_t N = pyad_n_slots(t), bad = -1;
    double *v = dbl(N), *vd = dbl(N), y[12], yd[12];
    int s = pyad_forward_tangent(t, x, xd, v, vd, y, yd, &bad);
    free(v);
    free(vd);
    return s;
}

/* Status of a second-order sweep of t at x along xd. */
static int eig_second_status(pyad_tape *t, const double *x, const double *xd)
{
    int64_t N = pyad_n_slots(t), bad = -1;
    double *v = dbl(N), *vd = dbl(N), *adj = dbl(N), *adjd = dbl(N), y[12], yd[12];
    double u[12] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, xbar[6], xbard[6];
    int s = pyad_forward_tangent(t, x, xd, v, vd, y, yd, &bad);
    if (s == PYAD_OK)
        s = pyad_reverse_second(t, v, vd, u, adj, adjd, xbar, xbard);
    free(v), free(vd), free(adj), free(adjd);
    return s;
}

#ifdef PYAD_TEST_FAULTS
/* Every sweep once with allocation fault_at failing (none: -1): a kernel without
 * scratch writes NaN or fails the point, never crashes or leaks (ASan, valgrind). */
static void eig_sweeps_once(pyad_tape *t, const double *x, const double *xd)
{
    int ok[3] = {eig_reverse_status(t, x), eig_tangent_status(t, x, xd),
                 eig_second_status(t, x, xd)};
    for (int i = 0; i < 3; ++i)
        CHECK(ok[i] == PYAD_OK || ok[i] == PYAD_EBRANCH || ok[i] == PYAD_ENOMEM);
}

static void eig_faults(const double *x, const double *xd)
{
    for (int flags = 0; flags <= PYAD_EIGH_VALUES; flags += PYAD_EIGH_VALUES) {
        int z;
        pyad_tape *t = eig_tape(x, flags, &z);
        fault_at = -1;
        alloc_count = 0;
        eig_sweeps_once(t, x, xd);
        long total = alloc_count;
        for (long f = 0; f < total; ++f) {
            alloc_count = 0;
            fault_at = f;
            eig_sweeps_once(t, x, xd);
            fault_at = -1;
        }
        pyad_tape_free(t);
    }
}
#endif

static void group_linalg_eig(void)
{
    if (OP("eigh") < 0 || OP("sin") < 0)
        return;
    /* distinct eigenvalues (diagonal spread 0, 3, 6) at two points */
    double x[6] = {0.3, 0.5, -0.2, 3.1, 0.4, 5.8}, again[6] = {-0.1, 0.7, 0.3, 2.6, -0.5, 6.4};
    const int flags[3] = {0, PYAD_EIGH_UPPER, PYAD_EIGH_VALUES};
    const char *names[3] = {"eigh", "eigh upper", "eigvalsh"};
    for (int k = 0; k < 3; ++k) {
        int z;
        pyad_tape *t = eig_tape(x, flags[k], &z);
        check_sweeps(t, x, 1, names[k]);
        check_sweeps(t, again, 0, names[k]);
        /* A V = V diag(w), Vᵀ V = I, w ascending */
        double wv[12];
        int32_t s12[12];
        for (int i = 0; i < 12; ++i)
            s12[i] = z + i;
        CHECK_STATUS(pyad_values(t, s12, 12, wv), PYAD_OK);
        const double *w = wv, *V = wv + 3;
        CHECK(w[0] < w[1] && w[1] < w[2]);
        for (int i = 0; i < 3; ++i)
            for (int j = 0; j < 3; ++j) {
                double av = 0.0, vv = 0.0;
                for (int q = 0; q < 3; ++q) {
                    av += x[EIG_SYM[i * 3 + q]] * V[q * 3 + j];
                    vv += V[q * 3 + i] * V[q * 3 + j];
                }
                CHECK(fabs(av - V[i * 3 + j] * w[j]) < 1e-13);
                CHECK(fabs(vv - (i == j)) < 1e-14);
            }
        pyad_tape_free(t);
    }

    /* repeated eigenvalues: diag(1, 1, 2) */
    double rep[6] = {1.0, 0.0, 0.0, 1.0, 0.0, 2.0}, dir[6] = {0.1, 0.2, -0.3, 0.4, 0.5, -0.6};
    double none[6] = {0, 0, 0, 0, 0, 0};
    int z;
    pyad_tape *t = eig_tape(rep, 0, &z); /* eigh, sin(V) an output: V̄ turns the pair */
    CHECK_STATUS(eig_reverse_status(t, rep), PYAD_ELINALG);
    CHECK_STATUS(eig_tangent_status(t, rep, dir), PYAD_ELINALG);
    CHECK_STATUS(eig_tangent_status(t, rep, none), PYAD_OK); /* a zero tangent moves nothing */
    CHECK_STATUS(eig_second_status(t, rep, dir), PYAD_ELINALG);
    CHECK_STATUS(eig_reverse_status(t, x), PYAD_OK);
    pyad_tape_free(t);
    t = eig_tape(rep, PYAD_EIGH_VALUES, &z); /* eigvalsh: first order is defined */
    double u[3] = {1.0, 2.0, 3.0}, xbar[6];
    CHECK_STATUS(reverse_at(t, rep, u, xbar), PYAD_OK);
    for (int i = 0; i < 6; ++i)
        CHECK(isfinite(xbar[i]));
    CHECK_STATUS(eig_tangent_status(t, rep, dir), PYAD_OK);
    CHECK_STATUS(eig_second_status(t, rep, dir), PYAD_ELINALG);
    CHECK_STATUS(eig_second_status(t, x, dir), PYAD_OK);
    pyad_tape_free(t);

#ifdef PYAD_TEST_FAULTS
    eig_faults(x, dir);
#endif

    /* no convergence (an all-NaN matrix) at record time: refused, the tape
     * unchanged; bad sizes and flags */
    double nan6[6] = {NAN, NAN, NAN, NAN, NAN, NAN};
    t = new_tape();
    CHECK_STATUS(pyad_rec_input_n(t, nan6, 6), 0);
    CHECK_STATUS(pyad_rec_gather(t, EIG_SYM, 9), 6);
    int64_t ops = pyad_n_ops(t), slots = pyad_n_slots(t), blocks = pyad_n_blocks(t);
    CHECK_STATUS(pyad_rec_eigh(t, 6, 3, 1, 0), PYAD_ELINALG);
    CHECK(pyad_n_ops(t) == ops && pyad_n_slots(t) == slots && pyad_n_blocks(t) == blocks);
    CHECK_STATUS(pyad_rec_eigh(t, 0, 0, 1, 0), PYAD_EINVAL);
    CHECK_STATUS(pyad_rec_eigh(t, 0, 2, 0, 0), PYAD_EINVAL);
    CHECK_STATUS(pyad_rec_eigh(t, 0, 2, 1, 4), PYAD_EINVAL);
    CHECK_STATUS(pyad_rec_eigh(t, 0, 100000, 1, 0), PYAD_ETOOBIG);
    CHECK_STATUS(pyad_rec_eigh(t, 1000, 2, 1, 0), PYAD_EINDEX);
    CHECK_STATUS(pyad_rec_eigh(NULL, 0, 2, 1, 0), PYAD_ECLOSED);
    pyad_tape_free(t);
}
