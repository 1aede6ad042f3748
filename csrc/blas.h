/* The one BLAS routine the core calls: cblas_dgemm of the OpenBLAS in the
 * scipy-openblas32 wheel (symbols prefixed scipy_, 32-bit integers). Declared
 * here, with the CBLAS interface's values, so the core compiles from csrc/
 * alone; the wheel only has to be there to link. */
#ifndef PYAD_BLAS_H
#define PYAD_BLAS_H

enum blas_order { BLAS_ROW_MAJOR = 101 };
enum blas_trans { BLAS_NO_TRANS = 111, BLAS_TRANS = 112 };

void scipy_cblas_dgemm(enum blas_order order, enum blas_trans trans_a, enum blas_trans trans_b,
                       int m, int n, int k, double alpha, const double *a, int lda,
                       const double *b, int ldb, double beta, double *c, int ldc);

#endif
