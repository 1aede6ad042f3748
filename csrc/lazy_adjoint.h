/* Lazy zeroing of the adjoint column in the reverse sweeps.
 *
 * Zeroing every adjoint before a reverse sweep streams the whole column through
 * the cache once more (for an array program, as many bytes as a kernel pass)
 * and, for a fresh work array, faults in all of it at once. A block row's
 * adjoints need to be zero only from the moment the first row reading that
 * block (its last reader in tape order, reached first going backwards) adds to
 * them: zeroed then, they are in cache for that row's kernel, and a column whose
 * blocks are given back once consumed never holds more than the live ones.
 *
 * The plan says when: per large non-source block row ("lazy" block), the row
 * before whose reverse step its adjoints are zeroed (n_ops: before the sweep);
 * every other slot ("eager": scalar rows, constants, small blocks) is
 * zeroed up front as before. A row kind the plan does not know counts as
 * reading every slot below it, so a new row kind is slower, never wrong. */
#ifndef PYAD_LAZY_ADJOINT_H
#define PYAD_LAZY_ADJOINT_H

#include "tape.h"
#include "fused.h"

/* Blocks narrower than this are zeroed up front with their neighbours: one
 * memset over a few cache lines costs less than an entry in the plan. Runs
 * (fused.h) are made of blocks at least this wide. */
#define LAZY_MIN_WIDTH 512

struct lazy_block {
    int64_t row, first, w;
    int64_t due; /* zero before the reverse step of this row (n_ops: before the sweep) */
    int written; /* FIRST_A / FIRST_B (block.h): row `due` writes slots lo .. hi - 1 of
                    the block first through that operand; only the rest is zeroed */
    int64_t lo, hi;
    int input;   /* an input block: read after the sweep, never given back */
    int internal; /* a run's row read only inside it: its adjoints live in the run's
                     scratch (fused.h), the work array's are never touched */
};

struct due_entry {
    int64_t due, idx; /* idx: into by_slot */
};

struct adjoint_plan {
    int64_t n_ops, n_lazy;
    struct lazy_block *by_slot; /* lazy blocks in slot (= row) order */
    struct due_entry *by_due;   /* the same blocks, latest `due` first */
    int64_t n_runs;
    int64_t *runs; /* eager slot runs: [runs[2r], runs[2r + 1]) */
    int64_t n_fused;
    struct fused_run *fused; /* elementwise runs swept a tile at a time, in row order */
};

/* The tape's plan (computed on first use and kept until the tape is recorded
 * on again), or NULL where every adjoint is zeroed up front: a tape with no
 * lazy block, or no memory for the plan. Safe to call from concurrent sweeps. */
const struct adjoint_plan *adjoint_plan(pyad_tape *t);

/* Frees the tape's plan (the tape held exclusively: recording, or freeing). */
void adjoint_plan_drop(pyad_tape *t);

/* One reverse sweep's walk through the plan: adj (and adjd, if not NULL) have
 * `lanes` lanes per slot. */
struct lazy_zeroing {
    const struct adjoint_plan *plan;
    double *adj, *adjd;
    int64_t lanes;
    int64_t next;    /* next entry of by_due to zero */
    int64_t release; /* next lazy block (by_slot, counting down) to release */
    int give_back;   /* may release consumed pages (the caller owns adj, adjd) */
    int first;       /* for the row lazy_due was last called at: FIRST_A | FIRST_B */
};

/* Zeroes the eager runs and the lazy blocks due before the sweep; returns the
 * first row at which lazy_due must be called (-1: none). */
int64_t lazy_start(struct lazy_zeroing *z);

/* Zeroes the lazy blocks due at row k, or sets z->first for those row k writes
 * first (the caller hands it to block_reverse_first / block_second_first and
 * clears it); returns the next row that has some. */
int64_t lazy_due(struct lazy_zeroing *z, int64_t k);

/* The run (plan->fused) whose last row is k, or NULL; *ri starts at n_fused - 1
 * and walks down with k (a reverse sweep's rows). */
const struct fused_run *lazy_run_ending_at(const struct lazy_zeroing *z, int64_t *ri,
                                           int64_t k);

/* The reverse step of run r in a sweep that could not fuse it (a passive row,
 * no memory for the scratch): zeroes its internal rows' adjoints, which the
 * plan left alone, so the rows can be swept one by one. */
void lazy_unfuse(struct lazy_zeroing *z, const struct fused_run *r);

/* After the reverse step of block row k: gives back the pages of its adjoints
 * if it is a large lazy block and z->give_back (read by no later step). */
void lazy_consumed(struct lazy_zeroing *z, int64_t k);

#endif
