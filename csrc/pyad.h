/* pyad's C core: a Wengert tape and the sweeps over it.
 *
 * Every function that can fail returns a status (PYAD_OK or a negative PYAD_E*);
 * recording functions return the new slot index (>= 0) or a negative status.
 * Nothing here aborts, prints or keeps global state: the tape is passed in.
 * A NULL tape is reported as PYAD_ECLOSED, so a closed Python tape is never
 * dereferenced.
 */
#ifndef PYAD_H
#define PYAD_H

#include <stdint.h>

typedef struct pyad_tape pyad_tape;

enum pyad_status {
    PYAD_OK = 0,
    PYAD_ENOMEM = -1,   /* an allocation failed; the tape is unchanged */
    PYAD_EINVAL = -2,   /* an argument is out of range (op code, count, kind) */
    PYAD_EINDEX = -3,   /* an operand index does not name an earlier slot */
    PYAD_ETOOBIG = -4,  /* the tape would pass its size limit */
    PYAD_EBRANCH = -5,  /* a recorded guard does not hold at this point */
    PYAD_ECLOSED = -6,  /* the tape was freed */
    PYAD_EBUSY = -7,    /* another thread is recording on, or sweeping, this tape */
    PYAD_EFORMAT = -8,  /* a serialized tape is corrupt */
    PYAD_ECALLBACK = -9, /* a custom row's rule (the caller's callback) failed */
    PYAD_ELINALG = -10  /* a matrix is not positive definite, or singular (LAPACK) */
};

enum pyad_kind {
    PYAD_KIND_SPECIAL = 0,
    PYAD_KIND_UNARY = 1,
    PYAD_KIND_BINARY = 2,
    PYAD_KIND_WITH_CONST = 3,
    PYAD_KIND_COMPARE = 4,
    PYAD_KIND_COMPARE_C = 5
};

const char *pyad_strerror(int status);
/* The status's C name ("PYAD_ENOMEM"), or NULL for a code that is none. */
const char *pyad_status_name(int status);

/* The registry (csrc/ops.def), for Python to read (no second list of names
 * there). For an op code out of range: "" / NULL / PYAD_EINVAL. */
int pyad_op_count(void);
const char *pyad_op_name(int op);
int pyad_op_kind(int op);
/* The dotted numpy/scipy function the op implements ("numpy.sin"), or NULL. */
const char *pyad_op_numpy(int op);
/* The Python operator method it implements ("__add__"), or NULL. */
const char *pyad_op_operator(int op);
/* The op recording x op c (const_form) or c op x (rconst_form) with a
 * constant c, or -1 where there is none. */
int pyad_op_const_form(int op);
int pyad_op_rconst_form(int op);
/* 1 if derivatives flow through the op by its rules, 0 if not. */
int pyad_op_differentiable(int op);

/* Lifetime and size. */
int pyad_tape_new(pyad_tape **out);
void pyad_tape_free(pyad_tape *t);
/* Empties the tape for a new recording, keeping its allocations (a spare tape
 * recorded into again skips growing and faulting in fresh pages); its limits go
 * back to the defaults. PYAD_EBUSY while another call holds it. */
int pyad_tape_reset(pyad_tape *t);
/* Caps the tape's slots (so its rows); at most 2**31 - 1, the default. */
int pyad_set_max_ops(pyad_tape *t, int64_t max_ops);
/* Caps the bytes the tape may allocate: growth past it fails with PYAD_ENOMEM,
 * as a failed malloc would (a hook for testing out-of-memory handling). */
int pyad_set_max_bytes(pyad_tape *t, int64_t max_bytes);
/* Releases spare capacity once recording is done, so nbytes is what is used. */
int pyad_shrink(pyad_tape *t);
/* Rows; a row defines one slot (scalar rows) or a block of consecutive slots. */
int64_t pyad_n_ops(const pyad_tape *t);
/* Slots: what values and every sweep's work arrays are indexed by. */
int64_t pyad_n_slots(const pyad_tape *t);
/* Block rows (rows defining two or more slots). */
int64_t pyad_n_blocks(const pyad_tape *t);
int64_t pyad_n_inputs(const pyad_tape *t);
int64_t pyad_n_outputs(const pyad_tape *t);
int64_t pyad_n_consts(const pyad_tape *t);
int64_t pyad_n_pool(const pyad_tape *t);
int64_t pyad_nbytes(const pyad_tape *t);

/* Parameters: active[j] is 0 for each input j that is a parameter (given at every
 * replay, never differentiated), else 1; n is n_inputs. Marks the rows recorded so
 * far that no differentiated input reaches: the derivative sweeps give them zero
 * tangents and skip them in reverse (their operands' adjoints stay zero), and a
 * product skips a parameter factor's products. pyad_n_passive counts those rows. */
int pyad_set_active_inputs(pyad_tape *t, const uint8_t *active, int64_t n);
int64_t pyad_n_passive(const pyad_tape *t);

/* A caller that sizes work arrays for a sweep brackets the sizes and the sweeps
 * with these: between them the tape cannot grow (recording returns PYAD_EBUSY),
 * so the sizes read here stay true. Sweeps may overlap each other. */
int pyad_begin_sweep(pyad_tape *t, int64_t *n_slots, int64_t *n_inputs, int64_t *n_outputs);
int pyad_end_sweep(pyad_tape *t);
/* pyad_gradient for a caller whose v and adj hold cap_slots doubles and whose x and
 * xbar hold n_x: PYAD_EINVAL (nothing swept) unless the tape, held for the call,
 * fits them and has one output. The replay fast path: one call. x NULL: at the
 * recorded point (the reverse sweep alone, over the recorded values; v unused, adj
 * is taken as pyad_reverse_owned takes it), what pyad.grad does once per call. */
int pyad_gradient_sized(pyad_tape *t, int64_t cap_slots, int64_t n_x, const double *x,
                        double *v, double *adj, double *y, double *xbar, int64_t *bad_op);

/* Recording: each call defines exactly one new slot, its index is returned. */
int pyad_rec_input(pyad_tape *t, double value);
int pyad_rec_const(pyad_tape *t, double value);
int pyad_rec1(pyad_tape *t, int op, int a);
int pyad_rec2(pyad_tape *t, int op, int a, int b);
int pyad_rec_c(pyad_tape *t, int op, int a, double c);
int pyad_rec_select(pyad_tape *t, int cond, int a, int b);
int pyad_rec_guard(pyad_tape *t, int cond, int expected);
int pyad_rec_output(pyad_tape *t, int slot);

/* Rows buffered by the caller (unary, binary, with-constant and comparison
 * ops): for a row with a constant, b[i] indexes the consts passed here; slot
 * operands may name earlier rows of the same batch. Returns the first slot. */
int pyad_rec_rows(pyad_tape *t, const uint8_t *op, const int32_t *a, const int32_t *b,
                  int64_t n, const double *consts, int64_t n_consts);

/* Vectorized recording: n results in the consecutive slots first..first+n-1.
 * Each returns the first new slot or a negative status; on error nothing is recorded.
 * For n >= 2 the n results are one block row, operands read in place where their
 * index array is affine (x[i] = x[0] + s * i, s >= 0), each other operand first
 * copied by one gather row (pyad_rec_gather); n = 1 is a scalar row. */
int pyad_rec_input_n(pyad_tape *t, const double *values, int64_t n);
int pyad_rec1_n(pyad_tape *t, int op, const int32_t *a, int64_t n);
int pyad_rec2_n(pyad_tape *t, int op, const int32_t *a, const int32_t *b, int64_t n);
/* c holds n_c constants: n (one per row) or 1 (shared by every row). */
int pyad_rec_c_n(pyad_tape *t, int op, const int32_t *a, const double *c, int64_t n_c,
                 int64_t n);
int pyad_rec_const_n(pyad_tape *t, const double *values, int64_t n);
int pyad_rec_select_n(pyad_tape *t, const int32_t *cond, const int32_t *a,
                      const int32_t *b, int64_t n);
int pyad_rec_output_n(pyad_tape *t, const int32_t *slots, int64_t n);

/* The same rows with operands given as views, no index array to build or scan:
 * n = prod(dims[0..ndim)) results of op (unary, binary, comparison, select,
 * with-constant or compare-constant), row-major over dims. Operand j (a; b; c
 * of select) is views[j * (1 + ndim)], the slot of element 0, then ndim
 * strides in slots (any sign; 0 where it is broadcast), unless its index
 * array ia / ib / ic (n slots, row-major) is given instead. A view the row
 * cannot read with one stride >= 0 is copied by a gather row first. Constants
 * as in pyad_rec_c_n (c, n_c = n or 1; ignored for ops without one). An
 * operand reading any slot outside the tape is PYAD_EINDEX, nothing recorded. */
enum { PYAD_MAX_VIEW_DIMS = 64 };
int pyad_rec_view_n(pyad_tape *t, int op, int ndim, const int64_t *dims, const int64_t *views,
                    const int32_t *ia, const int32_t *ib, const int32_t *ic, const double *c,
                    int64_t n_c);

/* Reductions, written to out[]: each row of the m x k slot matrix x (row-major)
 * reduced with the binary op add, mul, maximum or minimum (NaN propagates as in
 * numpy; ties of a max / min share the derivative evenly, JAX's rule). One
 * reduce_* row for all m rows, out[i] = its first slot + i, read from x in
 * place where x is an affine layout (x[i * k + j] = x[0] + sa * i + sb * j,
 * sa, sb >= 0), else after one gather row. k = 1 records nothing: out = x. */
int pyad_rec_reduce(pyad_tape *t, int op, const int32_t *x, int64_t m, int64_t k,
                    int32_t *out);
/* The same for the m x k slots first + sm * i + sk * j (m >= 1, k >= 2,
 * sm, sk >= 0), read in place: one row, its m results from the returned slot on. */
int pyad_rec_reduce_view(pyad_tape *t, int op, int64_t first, int64_t m, int64_t k, int64_t sm,
                         int64_t sk);
/* One gather row: the n >= 1 slots idx copied into n new consecutive slots (its
 * reverse scatter-adds, so repeated slots accumulate). Returns the first. */
int pyad_rec_gather(pyad_tape *t, const int32_t *idx, int64_t n);
/* Running sums (op add) or products (op mul) along each row of the m x k slot
 * matrix x: one cumsum / cumprod row (after a gather where x is not an affine
 * layout) defining m * k slots, (i, j) at first + i * k + j. Returns the first. */
int pyad_rec_scan(pyad_tape *t, int op, const int32_t *x, int64_t m, int64_t k);
/* out (m x p) = x (m x k slots) @ w (k x p constants, row-major): k ops per
 * output (a mul_c then k - 1 axpy_c), and w enters the constant pool once. */
int pyad_rec_matmul_c(pyad_tape *t, const int32_t *x, int64_t m, int64_t k,
                      const double *w, int64_t p, int32_t *out);

/* A product row (csrc/product.c): z = A @ B, A m x k, B k x n, z the next
 * m * n slots (row-major); one row, read by BLAS in every sweep. An operand on
 * the tape is the m*k (k*n) slots from a (b) on, row-major, or with TRANS_A
 * (TRANS_B) the row-major transpose (BLAS's trans flag); a constant operand
 * (CONST_A / CONST_B, not both, never transposed) is w, row-major, copied once
 * into the constant pool. Returns the first result slot. */
enum pyad_product_flag {
    PYAD_PRODUCT_TRANS_A = 1,
    PYAD_PRODUCT_TRANS_B = 2,
    PYAD_PRODUCT_CONST_A = 4,
    PYAD_PRODUCT_CONST_B = 8
};
int pyad_rec_product(pyad_tape *t, int32_t a, int32_t b, int64_t m, int64_t k, int64_t n,
                     int flags, const double *w);

/* Custom rows (pyad.custom_jvp / pyad.custom_vjp): a function whose derivative
 * rules are the caller's, recorded as one row of n_out slots reading the n_in
 * consecutive slots from `a`. Every sweep reaching the row calls the tape's
 * callback once for the whole row, with the row's operand and result lanes:
 * slot s, lane j of a work array with l lanes is at [s * l + j], and the
 * pointers below are already offset to the row's first operand (x, xd, xbar,
 * xbard: n_in rows of lanes) or first result (z, zd, zbar, zbard: n_out rows).
 * lv counts the value lanes (points), lt the tangent lanes, lg the adjoint
 * lanes and lq the adjoint-tangent lanes (1 at one point and one direction; p
 * directions in the vector sweeps; nb points in the batched ones); a lane of
 * an array with one lane serves every lane of the others.
 *
 *   VALUES   z = f(x)
 *   TANGENT  z = f(x), zd = J xd
 *   REVERSE  xbar += J^T zbar
 *   SECOND   xbar += J^T zbar, xbard += J^T zbard + (d/dt J^T zbar along xd)
 *
 * The callback returns PYAD_OK, or anything else when the rule failed: the
 * sweep then stops and returns PYAD_ECALLBACK (the caller keeps the reason).
 * It is called only from sweeps of the tape it is set on, in the thread that
 * runs the sweep. A tape never saves its callback: pyad_validate refuses
 * custom rows, and pyad_tape_reset forgets the callback. */
enum pyad_custom_sweep {
    PYAD_CUSTOM_VALUES = 0,
    PYAD_CUSTOM_TANGENT = 1,
    PYAD_CUSTOM_REVERSE = 2,
    PYAD_CUSTOM_SECOND = 3
};
struct pyad_custom_call {
    int32_t rule;   /* the caller's number for the function (given to pyad_rec_custom) */
    int32_t sweep;  /* enum pyad_custom_sweep */
    int64_t n_in, n_out;
    int64_t lv, lt, lg, lq;
    const double *x;
    double *z;
    const double *xd;
    double *zd;
    const double *zbar;
    double *xbar;
    const double *zbard;
    double *xbard;
};
typedef int (*pyad_custom_fn)(void *ctx, const struct pyad_custom_call *call);
/* The callback every custom row of t calls, and the context it is given. */
int pyad_set_custom_callback(pyad_tape *t, pyad_custom_fn fn, void *ctx);
/* One custom row: z (n_out slots, whose values the caller computed) = rule
 * number `rule` applied to the n_in slots from a. PYAD_EINVAL unless the tape
 * has a callback. Returns the first result slot. */
int pyad_rec_custom(pyad_tape *t, int32_t a, int64_t n_in, int64_t n_out, int32_t rule,
                    const double *values);
/* A linear-algebra row of the LU family (csrc/linalg_lu.c): op is the code of
 * solve, inv, det or slogdet; A is the n x n slots from a on (row-major), B
 * (solve only, else b = 0 and m = 0) the n x m slots from b on. The row's
 * results come first among its slots (solve: Z, n * m; inv: n * n; det: 1;
 * slogdet: sign, log|det|), then the values its derivative sweeps keep.
 * Returns the first slot. A singular matrix gives NaN results and makes the
 * value sweeps fail with PYAD_EBRANCH naming the row (a failed point in the
 * batched ones). */
int pyad_rec_lu(pyad_tape *t, int op, int32_t a, int32_t b, int64_t n, int64_t m);
/* Symmetric and triangular linear algebra (csrc/linalg_sym.c), one row each,
 * LAPACK / BLAS in every sweep. Operands are `count` stacked row-major matrices
 * in consecutive slots from a (A, n x n) and b (B, n x m); the result is the
 * next count * n * m slots. Returns the first result slot, or PYAD_ELINALG
 * (nothing recorded) where a matrix is not positive definite (cholesky) or a
 * triangular A has a zero on its diagonal. At replay such a point fails as a
 * guard does (PYAD_EBRANCH, bad_op / bad[point] = the row).
 * cholesky: L with A = L Lᵀ from A's lower triangle (numpy.linalg.cholesky).
 * solve_triangular: X = op(A)⁻¹ B reading one triangle of A (scipy's). */
enum pyad_triangular_flag {
    PYAD_TRI_LOWER = 1, /* A is lower triangular (else upper) */
    PYAD_TRI_TRANS = 2, /* solve Aᵀ X = B */
    PYAD_TRI_UNIT = 4   /* A's diagonal is taken as 1 and never read */
};
int pyad_rec_cholesky(pyad_tape *t, int32_t a, int64_t n, int64_t count);
int pyad_rec_solve_triangular(pyad_tape *t, int32_t a, int32_t b, int64_t n, int64_t m,
                              int64_t count, int flags);
/* np.linalg.eigh / eigvalsh (csrc/linalg_eig.c) of `count` stacked row-major
 * n x n matrices from slot a, one triangle read (numpy's UPLO). The results,
 * from the returned first slot: the eigenvalues (count * n, ascending per
 * matrix), the eigenvectors (count * n * n, column k for eigenvalue k; kept
 * values, not results, under PYAD_EIGH_VALUES), one info slot per matrix.
 * PYAD_ELINALG (nothing recorded) where LAPACK does not converge; at replay
 * that point fails as a guard does. Derivative sweeps return PYAD_ELINALG at
 * repeated eigenvalues where a rule would divide by their gap. */
enum pyad_eigh_flag {
    PYAD_EIGH_UPPER = 1, /* read the upper triangle (UPLO='U'; else 'L') */
    PYAD_EIGH_VALUES = 2 /* eigvalsh: only the eigenvalues are results */
};
int pyad_rec_eigh(pyad_tape *t, int32_t a, int64_t n, int64_t count, int flags);

/* Reading what was recorded: slots (pyad_values) and rows (pyad_op_at).
 * Recorded rows get their values at the recorded point when first read: by
 * pyad_values, or when a sweep begins (pyad_values waits, PYAD_EBUSY, while
 * another thread records or sweeps a tape whose new rows have none yet). */
int pyad_values(pyad_tape *t, const int32_t *slots, int64_t n, double *out);
int pyad_op_at(const pyad_tape *t, int64_t k);
int pyad_input_slots(const pyad_tape *t, int32_t *out);
int pyad_output_slots(const pyad_tape *t, int32_t *out);

/* Sweeps. Work arrays are the caller's, so one tape can be swept by many
 * threads at once: v, vd, adj, adjd hold n_slots doubles each.
 * On PYAD_EBRANCH, *bad_op is the row of the guard that failed. */
int pyad_forward(pyad_tape *t, const double *x, double *v, double *y,
                 int64_t *bad_op);
int pyad_forward_tangent(pyad_tape *t, const double *x, const double *xd,
                         double *v, double *vd, double *y, double *yd,
                         int64_t *bad_op);
/* Reverse at the values v of a forward sweep (NULL: the recorded values):
 * seeds the outputs with u, returns the input adjoints in xbar (adj is scratch). */
int pyad_reverse(pyad_tape *t, const double *v, const double *u, double *adj,
                 double *xbar);
/* pyad_reverse for an adj the caller allocated as private anonymous memory
 * (malloc's, numpy's) and does not read afterwards: on Linux the pages of the
 * adjoints of large block rows are given back to the OS once consumed, so adj's
 * resident size peaks at the blocks live at once, not the whole column. */
int pyad_reverse_owned(pyad_tape *t, const double *v, const double *u, double *adj,
                       double *xbar);
/* Forward then reverse for a tape with one output: its gradient in xbar
 * (one call, for the lowest latency per replayed gradient). */
int pyad_gradient(pyad_tape *t, const double *x, double *v, double *adj, double *y,
                  double *xbar, int64_t *bad_op);
/* Forward-over-reverse: v, vd from pyad_forward_tangent; returns xbar = u^T J
 * and xbard = its derivative along the tangent (for u = 1: H xd). */
int pyad_reverse_second(pyad_tape *t, const double *v, const double *vd,
                        const double *u, double *adj, double *adjd,
                        double *xbar, double *xbard);
/* The tape's fused runs (fused.h), for tests and stats: returns how many, and
 * writes up to cap of them as (first row, last row, rows whose adjoints stay in
 * tiles) triples into out; or a negative status. */
int64_t pyad_fused_runs(pyad_tape *t, int64_t *out, int64_t cap);
/* pyad_forward_tangent and pyad_reverse_second in one call; v, vd are work
 * arrays only (the forward may leave slots no derivative reads unset). y and yd
 * (the outputs and their tangents) may both be NULL: then values no derivative
 * needs may go uncomputed. */
int pyad_hvp(pyad_tape *t, const double *x, const double *xd, const double *u, double *v,
             double *vd, double *adj, double *adjd, double *y, double *yd, double *xbar,
             double *xbard, int64_t *bad_op);


/* The tape as plain arrays (sizes from pyad_n_ops, pyad_n_slots, pyad_n_consts,
 * pyad_n_pool, pyad_n_inputs, pyad_n_outputs, pyad_n_blocks): per row op, a, b,
 * c, first; per slot val; blocks holds 6 int32 per block row, in row order:
 * (row, width, stride_a, stride_b, stride_c, stride_const). */
int pyad_tape_export(pyad_tape *t, uint8_t *op, int32_t *a, int32_t *b, int32_t *c,
                     int32_t *first, double *val, double *consts, int32_t *pool,
                     int32_t *inputs, int32_t *outputs, int32_t *blocks);
/* PYAD_OK if the arrays form a valid tape: op codes in range, rows defining
 * consecutive slots by their widths, every operand element naming an earlier
 * slot (or a constant / input, as its kind says), block entries in row order
 * with width >= 2, strides >= 0 (0 where unused) and an op that may be a block
 * row, inputs and outputs consistent; PYAD_EFORMAT otherwise. */
int pyad_validate(int64_t n_ops, const uint8_t *op, const int32_t *a, const int32_t *b,
                  const int32_t *c, const int32_t *first, int64_t n_slots, int64_t n_consts,
                  int64_t n_pool, const int32_t *pool, int64_t n_inputs, const int32_t *inputs,
                  int64_t n_outputs, const int32_t *outputs, int64_t n_blocks,
                  const int32_t *blocks);
/* A new tape from validated copies of the arrays. */
int pyad_tape_import(pyad_tape **out, int64_t n_ops, const uint8_t *op, const int32_t *a,
                     const int32_t *b, const int32_t *c, const int32_t *first, int64_t n_slots,
                     const double *val, int64_t n_consts, const double *consts, int64_t n_pool,
                     const int32_t *pool, int64_t n_inputs, const int32_t *inputs,
                     int64_t n_outputs, const int32_t *outputs, int64_t n_blocks,
                     const int32_t *blocks);

/* Vector sweeps at one point, directions in rows: xd is p x n_inputs, yd is
 * p x n_outputs; u is q x n_outputs and xbar q x n_inputs. Work arrays hold
 * n_slots doubles (v, adj of pyad_second_vector) or n_slots * p (vd, adj, adjd). */
int pyad_tangent_vector(pyad_tape *t, int64_t p, const double *x, const double *xd,
                        double *v, double *vd, double *y, double *yd, int64_t *bad_op);
int pyad_reverse_vector(pyad_tape *t, int64_t q, const double *v, const double *u,
                        double *adj, double *xbar);
int pyad_second_vector(pyad_tape *t, int64_t p, const double *v, const double *vd,
                       const double *u, double *adj, double *adjd, double *xbar,
                       double *xbard);

/* Batched sweeps over nb points, points in rows: x is nb x n_inputs, y is
 * nb x n_outputs, u nb x n_outputs, xbar nb x n_inputs. Work arrays hold
 * n_slots * nb doubles. bad[b] is -1, or the guard that failed at point b;
 * *n_bad counts those points (the others are computed as usual). */
int pyad_forward_batch(pyad_tape *t, int64_t nb, const double *x, double *v, double *y,
                       int64_t *bad, int64_t *n_bad);
int pyad_tangent_batch(pyad_tape *t, int64_t nb, const double *x, const double *xd, double *v,
                       double *vd, double *y, double *yd, int64_t *bad, int64_t *n_bad);
int pyad_reverse_batch(pyad_tape *t, int64_t nb, const double *v, const double *u, double *adj,
                       double *xbar);
int pyad_second_batch(pyad_tape *t, int64_t nb, const double *v, const double *vd,
                      const double *u, double *adj, double *adjd, double *xbar, double *xbard);

/* A whole batch (csrc/batch_threads.c): the sweep `kind` at nb points, in
 * chunks of `chunk` points. The results are bit for bit those of one thread:
 * chunk boundaries do not depend on how many take part. Arrays are as above,
 * full size (nb rows); u has u_rows = nb rows, or 1 row used at every point.
 * VALUES fills y; JVP y, yd (either may be NULL); VJP y (or NULL), xbar; HVP y
 * (or NULL), xbar, xbard. bad and *n_bad as above.
 *
 * A pool (made and freed by its owner) holds threads parked between batches and
 * each worker's work arrays; it runs one batch at a time (else PYAD_EBUSY).
 * pyad_batch_sweep runs the batch on the caller and up to n_threads - 1 pool
 * threads. Or: pyad_batch_begin opens it for n_workers participants, each
 * calls pyad_batch_work once with its own worker number 0 .. n_workers-1 (from
 * any thread, concurrently), and pyad_batch_end, called when every
 * pyad_batch_work has returned, gives the status and *n_bad.
 *
 * An executor's tasks, which may start late or never: after pyad_batch_begin,
 * pyad_batch_hold(pool, n, &ticket) before submitting n tasks, each of which
 * calls pyad_batch_join(pool, ticket) exactly once (it takes the next free
 * worker number 1 .. n_workers-1 and works, or returns at once if the batch
 * was finished or is full); the caller works as worker 0, then
 * pyad_batch_finish(pool, n_unrun, n_bad) closes the batch to joiners, waits
 * for the joined ones, and ends it as pyad_batch_end does; n_unrun is how many
 * of the n tasks will never call pyad_batch_join (cancelled, never submitted).
 * pyad_pool_free (never during a batch) joins the threads; the memory is freed
 * once every held task has returned. */
enum pyad_batch_kind {
    PYAD_BATCH_VALUES = 0,
    PYAD_BATCH_JVP = 1,
    PYAD_BATCH_VJP = 2,
    PYAD_BATCH_HVP = 3
};
typedef struct pyad_batch_pool pyad_batch_pool;
int pyad_pool_new(pyad_batch_pool **out);
void pyad_pool_free(pyad_batch_pool *pool);
int pyad_batch_sweep(pyad_batch_pool *pool, pyad_tape *t, int kind, int64_t nb, int64_t chunk,
                     int64_t n_threads, const double *x, const double *xd, const double *u,
                     int64_t u_rows, double *y, double *yd, double *xbar, double *xbard,
                     int64_t *bad, int64_t *n_bad);
int pyad_batch_begin(pyad_batch_pool *pool, pyad_tape *t, int kind, int64_t nb, int64_t chunk,
                     int64_t n_workers, const double *x, const double *xd, const double *u,
                     int64_t u_rows, double *y, double *yd, double *xbar, double *xbard,
                     int64_t *bad);
int pyad_batch_work(pyad_batch_pool *pool, int64_t worker);
int pyad_batch_end(pyad_batch_pool *pool, int64_t *n_bad);
int pyad_batch_hold(pyad_batch_pool *pool, int64_t n_tasks, uint64_t *ticket);
int pyad_batch_join(pyad_batch_pool *pool, uint64_t ticket);
int pyad_batch_finish(pyad_batch_pool *pool, int64_t n_unrun, int64_t *n_bad);

#endif
