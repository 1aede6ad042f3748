/* The symmetric eigenproblem row (csrc/linalg_eig.c): np.linalg.eigh and
 * eigvalsh, one row per stack of matrices, LAPACK dsyevd in the value sweep.
 * Reached through linalg_sym.c's dispatch (an eigh row is one of its rows);
 * slot layout, block fields and rules: the comment at the top of linalg_eig.c. */
#ifndef PYAD_LINALG_EIG_H
#define PYAD_LINALG_EIG_H

#include "block.h"

/* Two eigenvalues w_i, w_j count as repeated when |w_i - w_j| <= this times
 * max |w|: at that gap LAPACK's eigenvectors already carry an error of about
 * eps ||A|| / gap = sqrt(eps), half the digits, and a rule dividing by the gap
 * (twice at second order) would return noise. Rules that would divide there
 * with a nonzero coefficient fail with PYAD_ELINALG. */
#define PYAD_EIGH_GAP_REL 1.4901161193847656e-08 /* sqrt(DBL_EPSILON) */

static inline int is_eig_op(int op) { return op == OP_eigh; }

/* Width of a row over `count` n x n matrices: w, V, info per matrix; -1 for
 * sizes out of range. */
int64_t eig_width(int64_t n, int64_t count);

int eig_row_ok(int32_t a, int32_t b, int32_t c, struct block bl, int64_t below);
int eig_active(const pyad_tape *t, int64_t i, const uint8_t *act, uint8_t *marks);
int64_t eig_failed(const pyad_tape *t, int64_t i, int64_t lanes, const double *v, int64_t *bad);

/* The sweeps, with linalg_sym.h's lane conventions. The derivative sweeps
 * return PYAD_ELINALG at (near-)repeated eigenvalues where a rule would
 * divide by their gap with a nonzero coefficient, else PYAD_OK. */
void eig_values(const pyad_tape *t, int64_t i, int64_t lv, double *v);
int eig_tangent(const pyad_tape *t, int64_t i, int64_t lv, double *v, int64_t lt, double *vd);
int eig_reverse(const pyad_tape *t, int64_t i, int64_t lv, const double *v, int64_t lg,
                double *adj);
int eig_second(const pyad_tape *t, int64_t i, int64_t lv, const double *v, int64_t lt,
               const double *vd, int64_t lg, double *adj, int64_t lq, double *adjd);

#endif
