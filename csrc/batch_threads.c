/* A whole batch in one call, split over threads that this call starts and joins.
 *
 * Why in C: splitting in Python costs a cffi call, fresh result arrays and a
 * concatenation per chunk, all under the GIL, which is what kept a second
 * thread from helping. Here the caller hands over the final result arrays;
 * each thread owns its work arrays (allocated by itself, so their pages are
 * first touched where they are used) and writes the rows of the chunks it
 * takes, which no other thread writes.
 *
 * Chunks are fixed by (nb, chunk) alone, whatever the number of threads, and
 * threads take whole chunks: every point is swept in the same position of the
 * same chunk, so the results are bit for bit those of one thread (vector math
 * may round a loop's tail differently from its body). Threads take the next
 * chunk from a shared counter rather than a fixed share, so a thread slowed by
 * other work on its core holds the others up by one chunk at most.
 *
 * Nothing outlives the call: no global state, no pool kept between calls. */
/* posix_memalign: aligned_alloc is C11 only, and the core also builds as C99 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "pyad.h"
#include "tape.h"

enum { MAX_THREADS = 1024 };

typedef struct {
    pyad_tape *t;
    int kind;
    int64_t nb, chunk, n_chunks;
    const double *x, *xd, *u;
    int u_shared; /* one row of u for every point */
    double *y, *yd, *xbar, *xbard;
    int64_t *bad;
    atomic_int_fast64_t next_chunk;
    atomic_int status; /* the first failure, PYAD_OK while there is none */
} batch_job;

/* One thread's share: its own work arrays, padded so that two threads' records
 * never share a cache line. */
typedef struct {
    alignas(64) batch_job *job;
    double *v, *vd, *adj, *adjd, *u_rows;
    int64_t n_bad;
    pthread_t id;
    int started;
} batch_worker;

static int uses_tangents(int kind) { return kind == PYAD_BATCH_JVP || kind == PYAD_BATCH_HVP; }

static int uses_adjoints(int kind) { return kind == PYAD_BATCH_VJP || kind == PYAD_BATCH_HVP; }

static double *work_array(int64_t n)
{
    return malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
}

/* The worker's arrays, made when it takes its first chunk (a thread that gets
 * none allocates nothing). */
static int make_work(batch_worker *w)
{
    const batch_job *job = w->job;
    int64_t n = job->t->n_slots * job->chunk, n_out = job->t->n_outputs;
    int kind = job->kind;
    w->v = work_array(n);
    if (uses_tangents(kind))
        w->vd = work_array(n);
    if (uses_adjoints(kind))
        w->adj = work_array(n);
    if (kind == PYAD_BATCH_HVP)
        w->adjd = work_array(n);
    if (uses_adjoints(kind) && job->u_shared) {
        w->u_rows = work_array(n_out * job->chunk);
        for (int64_t r = 0; w->u_rows && r < job->chunk; ++r)
            for (int64_t i = 0; i < n_out; ++i)
                w->u_rows[r * n_out + i] = job->u[i];
    }
    int missing = !w->v || (uses_tangents(kind) && !w->vd) || (uses_adjoints(kind) && !w->adj)
                  || (kind == PYAD_BATCH_HVP && !w->adjd)
                  || (uses_adjoints(kind) && job->u_shared && !w->u_rows);
    return missing ? PYAD_ENOMEM : PYAD_OK;
}

static void free_work(batch_worker *w)
{
    free(w->v);
    free(w->vd);
    free(w->adj);
    free(w->adjd);
    free(w->u_rows);
}

/* Rows lo .. lo+n-1 of an nb x width array (NULL stays NULL). */
static const double *rows_in(const double *a, int64_t lo, int64_t width)
{
    return a ? a + lo * width : NULL;
}

static double *rows_out(double *a, int64_t lo, int64_t width)
{
    return a ? a + lo * width : NULL;
}

static int sweep_chunk(batch_worker *w, int64_t lo, int64_t n)
{
    const batch_job *job = w->job;
    pyad_tape *t = job->t;
    int64_t n_in = t->n_inputs, n_out = t->n_outputs, n_bad = 0;
    const double *x = rows_in(job->x, lo, n_in), *xd = rows_in(job->xd, lo, n_in);
    const double *u = job->u_shared ? w->u_rows : rows_in(job->u, lo, n_out);
    double *y = rows_out(job->y, lo, n_out), *yd = rows_out(job->yd, lo, n_out);
    double *xbar = rows_out(job->xbar, lo, n_in), *xbard = rows_out(job->xbard, lo, n_in);
    int64_t *bad = job->bad + lo;
    int s;
    if (uses_tangents(job->kind))
        s = pyad_tangent_batch(t, n, x, xd, w->v, w->vd, y, yd, bad, &n_bad);
    else
        s = pyad_forward_batch(t, n, x, w->v, y, bad, &n_bad);
    if (s)
        return s;
    w->n_bad += n_bad;
    if (job->kind == PYAD_BATCH_VJP)
        return pyad_reverse_batch(t, n, w->v, u, w->adj, xbar);
    if (job->kind == PYAD_BATCH_HVP)
        return pyad_second_batch(t, n, w->v, w->vd, u, w->adj, w->adjd, xbar, xbard);
    return PYAD_OK;
}

static void fail(batch_job *job, int s)
{
    int none = PYAD_OK;
    atomic_compare_exchange_strong(&job->status, &none, s);
}

static void *work_through_chunks(void *arg)
{
    batch_worker *w = arg;
    batch_job *job = w->job;
    int have_work = 0;
    while (atomic_load(&job->status) == PYAD_OK) {
        int64_t c = atomic_fetch_add(&job->next_chunk, 1);
        if (c >= job->n_chunks)
            break;
        if (!have_work) {
            int s = make_work(w);
            have_work = 1;
            if (s) {
                fail(job, s);
                break;
            }
        }
        int64_t lo = c * job->chunk, n = job->nb - lo < job->chunk ? job->nb - lo : job->chunk;
        int s = sweep_chunk(w, lo, n);
        if (s)
            fail(job, s);
    }
    free_work(w);
    return NULL;
}

static int check_batch_args(const pyad_tape *t, int kind, int64_t nb, int64_t chunk,
                            int64_t n_threads, const double *x, const double *xd,
                            const double *u, int64_t u_rows, const double *xbar,
                            const double *xbard, const int64_t *bad, const int64_t *n_bad)
{
    if (kind < PYAD_BATCH_VALUES || kind > PYAD_BATCH_HVP || nb < 1 || chunk < 1
        || n_threads < 1 || n_threads > MAX_THREADS || !bad || !n_bad)
        return PYAD_EINVAL;
    if (t->n_inputs && (!x || (uses_tangents(kind) && !xd)))
        return PYAD_EINVAL;
    if (uses_adjoints(kind)) {
        if (!xbar || (kind == PYAD_BATCH_HVP && !xbard))
            return PYAD_EINVAL;
        if (t->n_outputs && (!u || (u_rows != 1 && u_rows != nb)))
            return PYAD_EINVAL;
    }
    int64_t per_chunk = (t->n_slots > t->n_outputs ? t->n_slots : t->n_outputs) + 1;
    if (chunk > INT64_MAX / 8 / per_chunk)
        return PYAD_ENOMEM; /* a work array's size would not fit in size_t */
    return PYAD_OK;
}

int pyad_batch_sweep(pyad_tape *t, int kind, int64_t nb, int64_t chunk, int64_t n_threads,
                     const double *x, const double *xd, const double *u, int64_t u_rows,
                     double *y, double *yd, double *xbar, double *xbard, int64_t *bad,
                     int64_t *n_bad)
{
    if (!t)
        return PYAD_ECLOSED;
    int s = tape_begin_sweep(t); /* the sizes read below hold until the end */
    if (s)
        return s;
    s = check_batch_args(t, kind, nb, chunk, n_threads, x, xd, u, u_rows, xbar, xbard, bad,
                         n_bad);
    if (s) {
        tape_end_sweep(t);
        return s;
    }
    if (chunk > nb)
        chunk = nb;
    batch_job job = {.t = t, .kind = kind, .nb = nb, .chunk = chunk,
                     .n_chunks = (nb + chunk - 1) / chunk, .x = x, .xd = xd, .u = u,
                     .u_shared = u_rows == 1 && nb > 1, .y = y, .yd = yd, .xbar = xbar,
                     .xbard = xbard, .bad = bad};
    atomic_init(&job.next_chunk, 0);
    atomic_init(&job.status, PYAD_OK);
    if (n_threads > job.n_chunks)
        n_threads = job.n_chunks;
    /* aligned as the type says (calloc promises 16 bytes), for UBSan and the cache */
    void *memory = NULL;
    if (posix_memalign(&memory, alignof(batch_worker), (size_t)n_threads * sizeof(batch_worker)))
        memory = NULL;
    batch_worker *workers = memory;
    if (!workers) {
        tape_end_sweep(t);
        return PYAD_ENOMEM;
    }
    for (int64_t i = 0; i < n_threads; ++i)
        workers[i] = (batch_worker){.job = &job};
    /* A thread that cannot be started is not an error: the others take its chunks. */
    for (int64_t i = 1; i < n_threads; ++i)
        workers[i].started = pthread_create(&workers[i].id, NULL, work_through_chunks,
                                            &workers[i]) == 0;
    work_through_chunks(&workers[0]);
    int64_t total_bad = workers[0].n_bad;
    for (int64_t i = 1; i < n_threads; ++i) {
        if (workers[i].started)
            pthread_join(workers[i].id, NULL);
        total_bad += workers[i].n_bad;
    }
    free(workers);
    *n_bad = total_bad;
    s = atomic_load(&job.status);
    tape_end_sweep(t);
    return s;
}
