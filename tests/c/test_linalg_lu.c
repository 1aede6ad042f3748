/* The LU-family rows (csrc/linalg_lu.c): solve, inv, det, slogdet in every sweep
 * (check_sweeps: central differences, forward vs reverse, second order, vector
 * and batched sweeps), singular points, det's cofactor gradient at a singular
 * matrix, and the arguments pyad_rec_lu refuses. Included by test_core.c (its
 * helpers are static there); run as the group "linalg lu". */

/* A well-conditioned 3 x 3 matrix (slots 0..8) and a 3 x 2 right-hand side. */
static void lu_point(double *x, double shift)
{
    static const double a[9] = {4.0, 1.0, -0.5, 0.5, 3.5, 1.0, -1.0, 0.25, 5.0};
    static const double b[6] = {1.0, -2.0, 0.5, 0.75, -1.5, 2.0};
    for (int i = 0; i < 9; ++i)
        x[i] = a[i] + shift * (i % 3 - 1);
    for (int i = 0; i < 6; ++i)
        x[9 + i] = b[i] - shift;
}

/* Records op over the inputs, then sin of its results (for second derivatives
 * through them) as the outputs; returns the tape. */
static pyad_tape *lu_tape(int op, int n_results, const double *x, const char *label)
{
    pyad_tape *t = new_tape();
    CHECK_STATUS(pyad_rec_input_n(t, x, 15), 0);
    int solve = op == OP("solve");
    int z = pyad_rec_lu(t, op, 0, solve ? 9 : 0, 3, solve ? 2 : 0);
    if (z < 0) {
        failed++;
        fprintf(stderr, "%s: pyad_rec_lu failed with %d\n", label, z);
        return t;
    }
    CHECK(pyad_n_blocks(t) == 2);
    int32_t zs[9], outs[9];
    for (int i = 0; i < n_results; ++i)
        zs[i] = z + i;
    int first = pyad_rec1_n(t, OP("sin"), zs, n_results);
    for (int i = 0; i < n_results; ++i)
        outs[i] = first + i;
    CHECK_STATUS(pyad_rec_output_n(t, outs, n_results), 0);
    return t;
}

static void group_linalg_lu(void)
{
    int solve = OP("solve"), inv = OP("inv"), det = OP("det"), slogdet = OP("slogdet");
    if (solve < 0 || inv < 0 || det < 0 || slogdet < 0 || OP("sin") < 0)
        return;
    double x[15], again[15];
    lu_point(x, 0.0);
    lu_point(again, 0.3);
    const int ops[4] = {solve, inv, det, slogdet}, results[4] = {6, 9, 1, 2};
    const char *names[4] = {"solve", "inv", "det", "slogdet"};
    for (int k = 0; k < 4; ++k) {
        pyad_tape *t = lu_tape(ops[k], results[k], x, names[k]);
        check_sweeps(t, x, 1, names[k]);
        check_sweeps(t, again, 0, names[k]);
        pyad_tape_free(t);
    }

    /* values: solve's and inv's against A Z = B and A Z = I, det against the
     * rule of Sarrus, slogdet against det */
    {
        pyad_tape *t = new_tape();
        CHECK_STATUS(pyad_rec_input_n(t, x, 15), 0);
        int zs = pyad_rec_lu(t, solve, 0, 9, 3, 2), zi = pyad_rec_lu(t, inv, 0, 0, 3, 0);
        int zd = pyad_rec_lu(t, det, 0, 0, 3, 0), zl = pyad_rec_lu(t, slogdet, 0, 0, 3, 0);
        CHECK(zs == 15 && zi > zs && zd > zi && zl > zd);
        double z[9], w[9], d, l[2];
        int32_t s6[6], s9[9], sd = zd, sl[2] = {zl, zl + 1};
        for (int i = 0; i < 9; ++i) {
            s6[i % 6] = zs + i % 6;
            s9[i] = zi + i;
        }
        CHECK_STATUS(pyad_values(t, s6, 6, z), PYAD_OK);
        CHECK_STATUS(pyad_values(t, s9, 9, w), PYAD_OK);
        CHECK_STATUS(pyad_values(t, &sd, 1, &d), PYAD_OK);
        CHECK_STATUS(pyad_values(t, sl, 2, l), PYAD_OK);
        for (int i = 0; i < 3; ++i)
            for (int j = 0; j < 3; ++j) {
                double az = 0.0, aw = 0.0;
                for (int q = 0; q < 3; ++q) {
                    az += j < 2 ? x[i * 3 + q] * z[q * 2 + j] : 0.0;
                    aw += x[i * 3 + q] * w[q * 3 + j];
                }
                CHECK(j == 2 || fabs(az - x[9 + i * 2 + j]) < 1e-14);
                CHECK(fabs(aw - (i == j)) < 1e-14);
            }
        const double *a = x;
        double sarrus = a[0] * a[4] * a[8] + a[1] * a[5] * a[6] + a[2] * a[3] * a[7]
                        - a[2] * a[4] * a[6] - a[1] * a[3] * a[8] - a[0] * a[5] * a[7];
        CHECK(fabs(d - sarrus) < 1e-13 * fabs(sarrus));
        CHECK(l[0] == (sarrus > 0 ? 1.0 : -1.0) && fabs(l[1] - log(fabs(sarrus))) < 1e-14);
        pyad_tape_free(t);
    }

    /* a singular point: the value sweeps fail naming the row, a batch marks
     * only its singular point; det is 0 there with the cofactors as gradient */
    {
        double sing[15];
        lu_point(sing, 0.0);
        for (int j = 0; j < 3; ++j)
            sing[3 + j] = 2.0 * sing[j]; /* row 1 = 2 row 0, exactly: a zero pivot */
        for (int k = 0; k < 2; ++k) {
            pyad_tape *t = lu_tape(ops[k], results[k], x, names[k]);
            int64_t n_slots = pyad_n_slots(t), bad = -1;
            double *v = dbl(n_slots), *vd = dbl(n_slots), y[9], yd[9], xd[15] = {1.0};
            CHECK_STATUS(pyad_forward(t, sing, v, y, &bad), PYAD_EBRANCH);
            CHECK(bad == 1);
            bad = -1;
            CHECK_STATUS(pyad_forward_tangent(t, sing, xd, v, vd, y, yd, &bad), PYAD_EBRANCH);
            CHECK(bad == 1);
            bad = -1;
            CHECK_STATUS(pyad_tangent_vector(t, 1, sing, xd, v, vd, y, yd, &bad), PYAD_EBRANCH);
            CHECK(bad == 1);
            double X[30], *bv = dbl(2 * n_slots), by[18];
            int64_t badv[2], n_bad = 0;
            memcpy(X, x, sizeof x);
            memcpy(X + 15, sing, sizeof sing);
            CHECK_STATUS(pyad_forward_batch(t, 2, X, bv, by, badv, &n_bad), PYAD_OK);
            CHECK(n_bad == 1 && badv[0] == -1 && badv[1] == 1);
            CHECK_STATUS(pyad_forward(t, x, v, y, &bad), PYAD_OK); /* still fine elsewhere */
            free(v);
            free(vd);
            free(bv);
            pyad_tape_free(t);
        }
        pyad_tape *t = new_tape();
        CHECK_STATUS(pyad_rec_input_n(t, sing, 9), 0);
        int zd = pyad_rec_lu(t, det, 0, 0, 3, 0);
        CHECK_STATUS(pyad_rec_output(t, zd), 0);
        double y, xbar[9], *v = dbl(pyad_n_slots(t)), *adj = dbl(pyad_n_slots(t));
        int64_t bad = -1;
        CHECK_STATUS(pyad_gradient(t, sing, v, adj, &y, xbar, &bad), PYAD_OK);
        CHECK(y == 0.0);
        const double *a = sing;
        for (int i = 0; i < 3; ++i)
            for (int j = 0; j < 3; ++j) { /* the cofactor of (i, j) */
                int r0 = (i + 1) % 3, r1 = (i + 2) % 3, c0 = (j + 1) % 3, c1 = (j + 2) % 3;
                double cof = a[r0 * 3 + c0] * a[r1 * 3 + c1] - a[r0 * 3 + c1] * a[r1 * 3 + c0];
                CHECK(fabs(xbar[i * 3 + j] - cof) < 1e-12 * (1.0 + fabs(cof)));
            }
        check_sweeps(t, sing, 1, "det at a singular matrix");
        free(v);
        free(adj);
        pyad_tape_free(t);
    }

    /* arguments refused, the tape unchanged */
    pyad_tape *t = new_tape();
    CHECK_STATUS(pyad_rec_input_n(t, x, 15), 0);
    CHECK_STATUS(pyad_rec_lu(NULL, det, 0, 0, 3, 0), PYAD_ECLOSED);
    CHECK_STATUS(pyad_rec_lu(t, OP("sin"), 0, 0, 3, 0), PYAD_EINVAL);
    CHECK_STATUS(pyad_rec_lu(t, det, 0, 0, 0, 0), PYAD_EINVAL);   /* n = 0 */
    CHECK_STATUS(pyad_rec_lu(t, det, 0, 0, 3, 2), PYAD_EINVAL);   /* m for det */
    CHECK_STATUS(pyad_rec_lu(t, det, 0, 4, 3, 0), PYAD_EINVAL);   /* b for det */
    CHECK_STATUS(pyad_rec_lu(t, solve, 0, 9, 3, 0), PYAD_EINVAL); /* solve without m */
    CHECK_STATUS(pyad_rec_lu(t, solve, 0, 10, 3, 2), PYAD_EINDEX);
    CHECK_STATUS(pyad_rec_lu(t, inv, 7, 0, 3, 0), PYAD_EINDEX);
    CHECK_STATUS(pyad_rec_lu(t, inv, -1, 0, 3, 0), PYAD_EINDEX);
    CHECK_STATUS(pyad_rec_lu(t, solve, 0, 0, 40000, 1 << 20), PYAD_ETOOBIG);
    CHECK(pyad_n_ops(t) == 1 && pyad_n_slots(t) == 15);
    pyad_tape_free(t);
}
