/* The LAPACK routines the linear-algebra rows call, from the OpenBLAS of the
 * scipy-openblas32 wheel (symbols prefixed scipy_, Fortran interface, 32-bit
 * integers, column-major). Declared here, like blas.h, so the core compiles
 * from csrc/ alone.
 *
 * Column-major vs row-major: a row-major n x n block read as column-major is
 * its transpose, so a row's code factors A^T (getrf of A^T gives A^T = P L U)
 * or, for symmetric input, A itself with uplo swapped ('U' in LAPACK's terms
 * is the lower triangle in ours).
 *
 * Every character argument is followed, at the end of the list, by its
 * hidden Fortran length (gfortran's ABI); passing 1 is always right. */
#ifndef PYAD_LAPACK_H
#define PYAD_LAPACK_H

#include <stddef.h>

/* LU with partial pivoting; ipiv is 1-based. */
void scipy_dgetrf_(const int *m, const int *n, double *a, const int *lda, int *ipiv, int *info);
void scipy_dgetrs_(const char *trans, const int *n, const int *nrhs, const double *a,
                   const int *lda, const int *ipiv, double *b, const int *ldb, int *info,
                   size_t trans_len);
void scipy_dgetri_(const int *n, double *a, const int *lda, const int *ipiv, double *work,
                   const int *lwork, int *info);

/* Cholesky factorisation and solves with it. */
void scipy_dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info,
                   size_t uplo_len);
void scipy_dpotrs_(const char *uplo, const int *n, const int *nrhs, const double *a,
                   const int *lda, double *b, const int *ldb, int *info, size_t uplo_len);

/* Triangular solves: one right-hand side block (trtrs), or op(A) X = alpha B
 * on either side (trsm, BLAS level 3). */
void scipy_dtrtrs_(const char *uplo, const char *trans, const char *diag, const int *n,
                   const int *nrhs, const double *a, const int *lda, double *b, const int *ldb,
                   int *info, size_t uplo_len, size_t trans_len, size_t diag_len);
void scipy_dtrsm_(const char *side, const char *uplo, const char *transa, const char *diag,
                  const int *m, const int *n, const double *alpha, const double *a,
                  const int *lda, double *b, const int *ldb, size_t side_len,
                  size_t uplo_len, size_t transa_len, size_t diag_len);

/* Symmetric eigenproblem (divide and conquer); lwork = -1 / liwork = -1 asks
 * for the work sizes. */
void scipy_dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
                   double *w, double *work, const int *lwork, int *iwork, const int *liwork,
                   int *info, size_t jobz_len, size_t uplo_len);

/* Singular value decomposition (divide and conquer). */
void scipy_dgesdd_(const char *jobz, const int *m, const int *n, double *a, const int *lda,
                   double *s, double *u, const int *ldu, double *vt, const int *ldvt,
                   double *work, const int *lwork, int *iwork, int *info, size_t jobz_len);

/* Triangular matrix product op(A) B or B op(A) (BLAS level 3): the linear
 * algebra rows' products with a triangular factor, at half a dgemm's cost. */
void scipy_dtrmm_(const char *side, const char *uplo, const char *transa, const char *diag,
                  const int *m, const int *n, const double *alpha, const double *a,
                  const int *lda, double *b, const int *ldb, size_t side_len,
                  size_t uplo_len, size_t transa_len, size_t diag_len);

/* Symmetric times general (dsymm, one triangle of the symmetric factor read):
 * the recursive Cholesky reverse rule's update. */
void scipy_dsymm_(const char *side, const char *uplo, const int *m, const int *n,
                  const double *alpha, const double *a, const int *lda, const double *b,
                  const int *ldb, const double *beta, double *c, const int *ldc,
                  size_t side_len, size_t uplo_len);

#endif
