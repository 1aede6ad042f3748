/* Tile-fused sweeps of elementwise runs.
 *
 * A run is a stretch of consecutive block rows that are elementwise (unary,
 * binary, with a constant) over the same width w, each operand either a row of
 * the run read whole at the same element index or a slot range before the run
 * (a view with any stride >= 0, a broadcast scalar), optionally ended by the
 * full sum of one of its rows. A reverse sweep reaching the run's last row
 * sweeps it a tile of elements at a time: the values and tangents of the rows
 * read only inside the run are recomputed per tile and their adjoints live in
 * tile-sized scratch, so only the run's external operands (and the rows read
 * after it) have adjoints in the full work arrays. Per row, the unfused sweeps
 * stream four full arrays through the cache (value, tangent, adjoint, adjoint
 * tangent); a run streams its external operands once.
 *
 * The plan (which rows form runs, which of their rows are read after the run)
 * is part of the tape's adjoint plan (lazy_adjoint.h). */
#ifndef PYAD_FUSED_H
#define PYAD_FUSED_H

#include "tape.h"

/* Where an operand of a member reads: member index inside the run, or -1 for
 * the slots slot, slot + stride, ... before the run. */
struct fused_operand {
    int32_t member;
    int64_t slot, stride;
};

struct fused_member {
    int64_t row, z; /* its row and first slot */
    int op;
    struct fused_operand a, b;
    int64_t kb, sk; /* a constant operand: consts[kb + e * sk] */
    int keep_adj;   /* read after the run, or an output: adjoints in the work array */
    int keep_val;   /* the forward stores its values and tangents (keep_adj, or summed) */
};

struct fused_run {
    int64_t k0, k_last;    /* rows: first member .. last row (the sum, if any) */
    int64_t bi0, n_blocks; /* block entries of the rows k0 .. k_last */
    int64_t w, first;      /* width; first slot of member 0 */
    int n;                 /* members (elementwise rows) */
    int sum_of;            /* member the ending sum reads, -1 if none */
    int64_t sum_slot;      /* the sum's slot */
    struct fused_member *m;
};

/* The runs of t in row order (*out, *n_out; none: NULL, 0). PYAD_OK or
 * PYAD_ENOMEM. keep_adj / keep_val are left 0 for the caller to mark. */
int fused_find(const pyad_tape *t, struct fused_run **out, int64_t *n_out);
void fused_free(struct fused_run *runs, int64_t n);

/* Whether a member of run r is passive now (activity.c): the sweep then runs
 * the rows one by one instead. */
int fused_has_passive(const pyad_tape *t, const struct fused_run *r);

/* Doubles of scratch a sweep of any of the n runs needs. */
int64_t fused_scratch_size(const struct fused_run *runs, int64_t n);

/* The reverse step of the whole run at one point: adds to the adjoints of its
 * external operands and kept rows (vd, adjd NULL: first order; else forward-
 * over-reverse). v, vd hold the values and tangents of the slots before the
 * run and of its kept rows; scratch holds fused_scratch_size doubles. */
void fused_reverse(const pyad_tape *t, const struct fused_run *r, const double *v,
                   const double *vd, double *adj, double *adjd, double *scratch);

/* Where the tile sweeps read a run's external operands (values, tangents) and
 * add their adjoints: the work arrays by slot (origin 0), or, for a run that
 * reads nothing but the tape's inputs (fused_inputs_direct), the caller's x,
 * xd and gradient arrays, slot s at index s - origin. */
struct fused_io {
    const double *v, *vd;
    double *adj, *adjd;
    int64_t origin;
};

/* Whether run r can be swept forward and back in one pass (fused_one_pass):
 * a sum at the end, no row kept, and after it only a short scalar tail whose
 * rows are affine in the sum (+, -, * or / by a constant; fused_tail_seed) or
 * do not depend on it, so the sum's adjoint is known from the outputs' seeds
 * before any value of the run is. */
int fused_one_pass_fits(const pyad_tape *t, const struct fused_run *r);

/* For such a run: the adjoint (*gs) and adjoint tangent (*gds) that the
 * outputs seeded with u give the sum, passed back through the tail with the
 * reverse sweeps' own rules, in their order (bit for bit what they leave in
 * the sum's slot). */
void fused_tail_seed(const pyad_tape *t, const struct fused_run *r, const double *u,
                     double *gs, double *gds);

/* Whether such a run can read the caller's inputs in place and add straight
 * into the gradient arrays (struct fused_io): every row before it is an
 * input, in slot order, and its tail and the outputs read only the sum and
 * the tail. Nothing else then needs the work arrays' input slots or
 * adjoints. */
int fused_inputs_direct(const pyad_tape *t, const struct fused_run *r);

/* Whether the tail of such a run holds a guard (which reads the sum's value). */
int fused_tail_guarded(const pyad_tape *t, const struct fused_run *r);

/* fused_reverse for such a run, from the sum's adjoint gs (and its tangent
 * gds); external operands through io. With want_sum, every member's values
 * (and tangents) are computed, the summed one's into v (vd) for the sum row's
 * forward step; else only those the derivative rules read, nothing into v. */
void fused_one_pass(const pyad_tape *t, const struct fused_run *r, double *v, double *vd,
                    const struct fused_io *io, double gs, double gds, int want_sum,
                    double *scratch);

/* The forward step of the run's members (not the sum): values (and tangents,
 * vd not NULL) of its kept rows only. */
void fused_forward(const pyad_tape *t, const struct fused_run *r, double *v, double *vd,
                   double *scratch);

/* A forward sweep (values, or values and tangents where vd is not NULL) that
 * stores only what the fused reverse sweeps read, over rows [0, end): the
 * runs (in row order, n of them, all before end) store their kept rows only. Returns as forward_range (sweep.h). */
int fused_forward_sweep(const pyad_tape *t, const struct fused_run *runs, int64_t n,
                        int64_t end, const double *x, const double *xd, double *v,
                        double *vd, double *scratch, int64_t *bad_op);

#endif
