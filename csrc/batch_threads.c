/* A whole batch in one call, split over the threads of a pool that outlives it.
 *
 * Why in C: splitting in Python costs a cffi call, fresh result arrays and a
 * concatenation per chunk, all under the GIL, which is what kept a second
 * thread from helping. Here the caller hands over the final result arrays and
 * every participant writes the rows of the chunks it takes, which no other
 * participant writes.
 *
 * Why a pool (pyad_batch_pool, created and freed by its owner: the core keeps
 * no global state): a profile of P6 (1e5 points, 2 threads, ~0.8 ms each)
 * showed the caller losing ~30 us to pthread_create and ~20 us to the join on
 * every call, and every new thread mallocing its work arrays afresh. A pool's
 * threads are started once, park on their own condition variable between
 * batches, and each keeps its work arrays (allocated, so first touched, by the
 * thread that uses them) from one batch to the next.
 *
 * A batch is a job: pyad_batch_begin opens it on a pool (one job per pool at a
 * time), participants call pyad_batch_work with distinct worker numbers, each
 * taking whole chunks from a shared counter, and pyad_batch_end closes it.
 * pyad_batch_sweep does all three with the caller as worker 0 and the pool's
 * threads as workers 1 .. n_threads-1; an executor's threads can be the
 * participants instead (pyad/backend_c.py), running the same chunk loop.
 *
 * An executor's tasks join by ticket (pyad_batch_hold, pyad_batch_join,
 * pyad_batch_finish) rather than being waited for by the caller in Python: a
 * profile of P6 at 1e5 points on ThreadPoolExecutor(2) showed the caller,
 * done with its own chunks, spending ~55 us waiting for the task's future,
 * which is set only after the task's thread has taken the GIL back. Here the
 * caller waits (without the GIL) just for the joined tasks to leave the chunk
 * loop. A task that runs after its batch was finished (it started late, or the
 * pool has moved on to another batch) finds its ticket stale and returns at
 * once, so nobody waits for tasks that never started; each task holds the
 * pool until it returns, so a late one never touches freed memory.
 *
 * Chunks are fixed by (nb, chunk) alone, whatever the number of participants,
 * and participants take whole chunks: every point is swept in the same
 * position of the same chunk, so the results are bit for bit those of one
 * thread (vector math may round a loop's tail differently from its body).
 * Taking the next chunk from a shared counter rather than a fixed share means a
 * participant slowed by other work on its core holds the others up by one chunk
 * at most, and one that starts late (or never) only takes fewer chunks.
 *
 * After fork() the child has the pool's memory but none of its threads: the
 * pool notices (its pid changed) and starts fresh threads when asked. */
/* posix_memalign, pthread_sigmask: aligned_alloc is C11 only, and the core also
 * builds as C99 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <signal.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "pyad.h"
#include "tape.h"

enum { MAX_THREADS = 1024 };
/* Work arrays above this many doubles (4 MB) are freed after each batch rather
 * than kept: chunks are sized so that a work array stays in cache (~1 MB), and
 * only a tape of more than ~16k slots per point makes bigger ones. */
enum { KEEP_DOUBLES = 1 << 19 };
enum { V, VD, ADJ, ADJD, N_WORK };

typedef struct {
    pyad_tape *t;
    int kind;
    int64_t nb, chunk, n_chunks, n_workers;
    const double *x, *xd, *u;
    int u_shared; /* one row of u for every point */
    double *y, *yd, *xbar, *xbard;
    int64_t *bad;
    atomic_int_fast64_t next_chunk;
    atomic_int_fast64_t n_bad;
    atomic_int status; /* the first failure, PYAD_OK while there is none */
} batch_job;

struct pyad_batch_pool;

/* One worker's share: its work arrays, kept between batches, and (for workers
 * 1 and up) the pool thread that serves it. Aligned so that two workers'
 * records never share a cache line. */
typedef struct {
    alignas(64) struct pyad_batch_pool *pool;
    double *work[N_WORK];
    int64_t cap[N_WORK];
    double *u_rows;
    int64_t u_cap;
    atomic_int busy;  /* a participant is using this worker's arrays */
    int go;           /* under the pool's lock: the open job waits for this thread */
    int has_thread;
    int parked;       /* under the pool's lock: the thread has finished starting */
    pthread_cond_t wake;
    pthread_t id;
} pool_worker;

struct pyad_batch_pool {
    pthread_mutex_t lock;
    pthread_cond_t done; /* n_running reached 0 */
    pid_t pid;           /* the process whose threads these are */
    int quit;
    int64_t n_threads;  /* pool threads started: they serve workers 1 .. n_threads */
    int64_t n_running;  /* pool threads still working on the open job */
    atomic_int in_use;  /* a job is open */
    batch_job job;
    /* Under the lock: the executors' side. */
    int64_t holds;       /* the owner (until pyad_pool_free) and each task not yet returned */
    int released;        /* the owner let go: the last hold frees the pool */
    uint64_t ticket;     /* the last job's; tasks of older jobs must not join */
    int joinable;        /* the open job takes joining tasks */
    int64_t next_joiner; /* the worker number the next joining task gets */
    int64_t n_joined;    /* joined tasks still in the chunk loop */
    pool_worker *workers[MAX_THREADS];
};

static int uses_tangents(int kind) { return kind == PYAD_BATCH_JVP || kind == PYAD_BATCH_HVP; }

static int uses_adjoints(int kind) { return kind == PYAD_BATCH_VJP || kind == PYAD_BATCH_HVP; }

static int needs_work(int kind, int which)
{
    switch (which) {
    case VD:
        return uses_tangents(kind);
    case ADJ:
        return uses_adjoints(kind);
    case ADJD:
        return kind == PYAD_BATCH_HVP;
    default:
        return 1;
    }
}

/* a holds at least n doubles (its contents need not survive) */
static int reserve(double **a, int64_t *cap, int64_t n)
{
    if (n < 1)
        n = 1;
    if (*a && *cap >= n)
        return PYAD_OK;
    free(*a);
    *a = malloc((size_t)n * sizeof(double));
    *cap = *a ? n : 0;
    return *a ? PYAD_OK : PYAD_ENOMEM;
}

/* The worker's arrays sized for the job, made when it takes its first chunk (a
 * participant that gets none touches nothing). */
static int ready_work(pool_worker *w, const batch_job *job)
{
    int64_t n = job->t->n_slots * job->chunk, n_out = job->t->n_outputs;
    for (int i = 0; i < N_WORK; ++i)
        if (needs_work(job->kind, i) && reserve(&w->work[i], &w->cap[i], n))
            return PYAD_ENOMEM;
    if (uses_adjoints(job->kind) && job->u_shared) {
        if (reserve(&w->u_rows, &w->u_cap, n_out * job->chunk))
            return PYAD_ENOMEM;
        for (int64_t r = 0; r < job->chunk; ++r)
            for (int64_t i = 0; i < n_out; ++i)
                w->u_rows[r * n_out + i] = job->u[i];
    }
    return PYAD_OK;
}

static void free_work(pool_worker *w, int64_t keep)
{
    for (int i = 0; i < N_WORK; ++i)
        if (w->cap[i] > keep) {
            free(w->work[i]);
            w->work[i] = NULL;
            w->cap[i] = 0;
        }
    if (w->u_cap > keep) {
        free(w->u_rows);
        w->u_rows = NULL;
        w->u_cap = 0;
    }
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

static int sweep_chunk(const batch_job *job, pool_worker *w, int64_t lo, int64_t n,
                       int64_t *n_bad)
{
    pyad_tape *t = job->t;
    int64_t n_in = t->n_inputs, n_out = t->n_outputs, chunk_bad = 0;
    const double *x = rows_in(job->x, lo, n_in), *xd = rows_in(job->xd, lo, n_in);
    const double *u = job->u_shared ? w->u_rows : rows_in(job->u, lo, n_out);
    double *y = rows_out(job->y, lo, n_out), *yd = rows_out(job->yd, lo, n_out);
    double *xbar = rows_out(job->xbar, lo, n_in), *xbard = rows_out(job->xbard, lo, n_in);
    double *v = w->work[V], *vd = w->work[VD], *adj = w->work[ADJ], *adjd = w->work[ADJD];
    int64_t *bad = job->bad + lo;
    int s;
    if (uses_tangents(job->kind))
        s = pyad_tangent_batch(t, n, x, xd, v, vd, y, yd, bad, &chunk_bad);
    else
        s = pyad_forward_batch(t, n, x, v, y, bad, &chunk_bad);
    if (s)
        return s;
    *n_bad += chunk_bad;
    if (job->kind == PYAD_BATCH_VJP)
        return pyad_reverse_batch(t, n, v, u, adj, xbar);
    if (job->kind == PYAD_BATCH_HVP)
        return pyad_second_batch(t, n, v, vd, u, adj, adjd, xbar, xbard);
    return PYAD_OK;
}

static void fail(batch_job *job, int s)
{
    int none = PYAD_OK;
    atomic_compare_exchange_strong(&job->status, &none, s);
}

/* Whole chunks, taken one at a time, until none is left or one failed. */
static void work_through_chunks(batch_job *job, pool_worker *w)
{
    int ready = 0;
    int64_t n_bad = 0;
    while (atomic_load(&job->status) == PYAD_OK) {
        int64_t c = atomic_fetch_add(&job->next_chunk, 1);
        if (c >= job->n_chunks)
            break;
        if (!ready) {
            int s = ready_work(w, job);
            ready = 1;
            if (s) {
                fail(job, s);
                break;
            }
        }
        int64_t lo = c * job->chunk, n = job->nb - lo < job->chunk ? job->nb - lo : job->chunk;
        int s = sweep_chunk(job, w, lo, n, &n_bad);
        if (s)
            fail(job, s);
    }
    atomic_fetch_add(&job->n_bad, n_bad);
    free_work(w, KEEP_DOUBLES);
}

/* ---- the pool ---- */

static void *serve(void *arg)
{
    pool_worker *w = arg;
    pyad_batch_pool *p = w->pool;
    pthread_mutex_lock(&p->lock);
    w->parked = 1;
    pthread_cond_signal(&p->done);
    for (;;) {
        while (!w->go && !p->quit)
            pthread_cond_wait(&w->wake, &p->lock);
        if (!w->go)
            break; /* quit, with no job waiting for this thread */
        w->go = 0;
        pthread_mutex_unlock(&p->lock);
        work_through_chunks(&p->job, w);
        pthread_mutex_lock(&p->lock);
        if (--p->n_running == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static pool_worker *new_worker(pyad_batch_pool *p)
{
    void *memory = NULL;
    /* aligned as the type says (malloc promises 16 bytes), for UBSan and the cache */
    if (posix_memalign(&memory, alignof(pool_worker), sizeof(pool_worker)))
        return NULL;
    pool_worker *w = memory;
    *w = (pool_worker){.pool = p};
    atomic_init(&w->busy, 0);
    if (pthread_cond_init(&w->wake, NULL)) {
        free(w);
        return NULL;
    }
    return w;
}

/* Worker i's record, made if it is missing (under the lock, or by the job's owner). */
static pool_worker *worker_at(pyad_batch_pool *p, int64_t i)
{
    if (!p->workers[i])
        p->workers[i] = new_worker(p);
    return p->workers[i];
}

/* Start the thread of worker i (its record exists), with every signal blocked:
 * signals are for the threads that run Python. Under the lock. */
static int start_thread(pyad_batch_pool *p, int64_t i)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int failed = pthread_create(&p->workers[i]->id, NULL, serve, p->workers[i]);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    p->workers[i]->has_thread = !failed;
    return failed ? PYAD_ENOMEM : PYAD_OK;
}

static int init_sync(pyad_batch_pool *p)
{
    if (pthread_mutex_init(&p->lock, NULL))
        return PYAD_ENOMEM;
    if (pthread_cond_init(&p->done, NULL)) {
        pthread_mutex_destroy(&p->lock);
        return PYAD_ENOMEM;
    }
    return PYAD_OK;
}

/* In a child of fork(): the parent's threads (and any job they were on) are not
 * here, and the lock may have been copied held. Start over with no threads. */
static int after_fork(pyad_batch_pool *p)
{
    if (p->pid == getpid())
        return PYAD_OK;
    p->pid = getpid();
    p->n_threads = p->n_running = 0;
    p->quit = 0;
    atomic_store(&p->in_use, 0);
    /* the parent's tasks, and the executor threads that would run them, are not here */
    p->holds = 1;
    p->joinable = 0;
    p->n_joined = 0;
    for (int64_t i = 0; i < MAX_THREADS; ++i)
        if (p->workers[i]) {
            p->workers[i]->has_thread = p->workers[i]->go = p->workers[i]->parked = 0;
            atomic_store(&p->workers[i]->busy, 0);
            if (pthread_cond_init(&p->workers[i]->wake, NULL))
                return PYAD_ENOMEM;
        }
    return init_sync(p);
}

int pyad_pool_new(pyad_batch_pool **out)
{
    if (!out)
        return PYAD_EINVAL;
    *out = NULL;
    pyad_batch_pool *p = calloc(1, sizeof *p);
    if (!p)
        return PYAD_ENOMEM;
    if (init_sync(p)) {
        free(p);
        return PYAD_ENOMEM;
    }
    p->pid = getpid();
    atomic_init(&p->in_use, 0);
    p->holds = 1;
    *out = p;
    return PYAD_OK;
}

static void destroy_pool(pyad_batch_pool *p, int own)
{
    for (int64_t i = 0; i < MAX_THREADS; ++i)
        if (p->workers[i]) {
            free_work(p->workers[i], -1);
            if (own)
                pthread_cond_destroy(&p->workers[i]->wake);
            free(p->workers[i]);
        }
    if (own) {
        pthread_cond_destroy(&p->done);
        pthread_mutex_destroy(&p->lock);
    }
    free(p);
}

/* Drop one hold (under the lock, which this releases): the last one frees a
 * pool its owner has let go of. */
static void drop_hold(pyad_batch_pool *p, int64_t n)
{
    p->holds -= n;
    int last = p->released && p->holds == 0;
    pthread_mutex_unlock(&p->lock);
    if (last)
        destroy_pool(p, 1);
}

void pyad_pool_free(pyad_batch_pool *p)
{
    if (!p)
        return;
    if (p->pid != getpid()) { /* a fork's child has the memory, not the threads or tasks */
        destroy_pool(p, 0);
        return;
    }
    pthread_mutex_lock(&p->lock);
    p->quit = 1;
    for (int64_t i = 1; i <= p->n_threads; ++i)
        pthread_cond_signal(&p->workers[i]->wake);
    pthread_mutex_unlock(&p->lock);
    for (int64_t i = 1; i <= p->n_threads; ++i)
        pthread_join(p->workers[i]->id, NULL);
    p->n_threads = 0;
    pthread_mutex_lock(&p->lock);
    p->released = 1;
    drop_hold(p, 1); /* an executor's task that has not returned yet frees it */
}

/* ---- a batch ---- */

static int check_batch_args(const pyad_tape *t, int kind, int64_t nb, int64_t chunk,
                            int64_t n_workers, const double *x, const double *xd,
                            const double *u, int64_t u_rows, const double *xbar,
                            const double *xbard, const int64_t *bad)
{
    if (kind < PYAD_BATCH_VALUES || kind > PYAD_BATCH_HVP || nb < 1 || chunk < 1
        || n_workers < 1 || n_workers > MAX_THREADS || !bad)
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

int pyad_batch_begin(pyad_batch_pool *p, pyad_tape *t, int kind, int64_t nb, int64_t chunk,
                     int64_t n_workers, const double *x, const double *xd, const double *u,
                     int64_t u_rows, double *y, double *yd, double *xbar, double *xbard,
                     int64_t *bad)
{
    if (!t)
        return PYAD_ECLOSED;
    if (!p)
        return PYAD_EINVAL;
    int s = after_fork(p);
    if (s)
        return s;
    if (atomic_exchange(&p->in_use, 1))
        return PYAD_EBUSY; /* one job per pool at a time */
    s = tape_begin_sweep(t); /* the sizes read below hold until pyad_batch_end */
    if (s) {
        atomic_store(&p->in_use, 0);
        return s;
    }
    s = check_batch_args(t, kind, nb, chunk, n_workers, x, xd, u, u_rows, xbar, xbard, bad);
    for (int64_t i = 0; !s && i < n_workers; ++i)
        if (!worker_at(p, i))
            s = PYAD_ENOMEM;
    if (s) {
        tape_end_sweep(t);
        atomic_store(&p->in_use, 0);
        return s;
    }
    if (chunk > nb)
        chunk = nb;
    batch_job *job = &p->job;
    job->t = t;
    job->kind = kind;
    job->nb = nb;
    job->chunk = chunk;
    job->n_chunks = (nb + chunk - 1) / chunk;
    job->n_workers = n_workers;
    job->x = x;
    job->xd = xd;
    job->u = u;
    job->u_shared = u_rows == 1 && nb > 1;
    job->y = y;
    job->yd = yd;
    job->xbar = xbar;
    job->xbard = xbard;
    job->bad = bad;
    atomic_store(&job->next_chunk, 0);
    atomic_store(&job->n_bad, 0);
    atomic_store(&job->status, PYAD_OK);
    pthread_mutex_lock(&p->lock); /* publishes the job to the tasks that join it */
    p->ticket++;
    p->joinable = 1;
    p->next_joiner = 1; /* worker 0 is the caller's */
    p->n_joined = 0;
    pthread_mutex_unlock(&p->lock);
    return PYAD_OK;
}

int pyad_batch_hold(pyad_batch_pool *p, int64_t n_tasks, uint64_t *ticket)
{
    if (!p || !ticket || n_tasks < 0 || !atomic_load(&p->in_use))
        return PYAD_EINVAL;
    pthread_mutex_lock(&p->lock);
    p->holds += n_tasks;
    *ticket = p->ticket;
    pthread_mutex_unlock(&p->lock);
    return PYAD_OK;
}

int pyad_batch_join(pyad_batch_pool *p, uint64_t ticket)
{
    if (!p)
        return PYAD_EINVAL;
    pthread_mutex_lock(&p->lock);
    if (p->holds <= !p->released) { /* no task hold is left to drop: a join not held for */
        pthread_mutex_unlock(&p->lock);
        return PYAD_EINVAL;
    }
    int64_t worker = -1;
    if (p->joinable && p->ticket == ticket && p->next_joiner < p->job.n_workers) {
        worker = p->next_joiner++;
        p->n_joined++;
    }
    pthread_mutex_unlock(&p->lock);
    int s = PYAD_OK;
    if (worker >= 0) {
        s = pyad_batch_work(p, worker);
        pthread_mutex_lock(&p->lock);
        if (--p->n_joined == 0)
            pthread_cond_signal(&p->done);
    } else {
        pthread_mutex_lock(&p->lock);
    }
    drop_hold(p, 1);
    return s;
}

int pyad_batch_work(pyad_batch_pool *p, int64_t worker)
{
    if (!p || !atomic_load(&p->in_use) || worker < 0 || worker >= p->job.n_workers)
        return PYAD_EINVAL;
    pool_worker *w = p->workers[worker];
    if (atomic_exchange(&w->busy, 1))
        return PYAD_EBUSY; /* two participants may not share a worker's arrays */
    work_through_chunks(&p->job, w);
    atomic_store(&w->busy, 0);
    return atomic_load(&p->job.status);
}

int pyad_batch_finish(pyad_batch_pool *p, int64_t n_unrun, int64_t *n_bad)
{
    if (!p || !n_bad || n_unrun < 0 || !atomic_load(&p->in_use))
        return PYAD_EINVAL;
    pthread_mutex_lock(&p->lock);
    if (n_unrun > p->holds - 1) { /* more than the tasks held for: the owner's is not */
        pthread_mutex_unlock(&p->lock);
        return PYAD_EINVAL;
    }
    p->joinable = 0; /* from here a task finds its ticket stale */
    p->holds -= n_unrun;
    while (p->n_joined > 0)
        pthread_cond_wait(&p->done, &p->lock);
    pthread_mutex_unlock(&p->lock);
    *n_bad = atomic_load(&p->job.n_bad);
    int s = atomic_load(&p->job.status);
    tape_end_sweep(p->job.t);
    p->job.t = NULL;
    atomic_store(&p->in_use, 0);
    return s;
}

int pyad_batch_end(pyad_batch_pool *p, int64_t *n_bad)
{
    return pyad_batch_finish(p, 0, n_bad);
}

/* Wake (or start) the pool threads of workers 1 .. n-1 for the open job. A
 * thread that cannot be started is not an error: the others take its chunks. */
static void call_threads(pyad_batch_pool *p, int64_t n)
{
    pthread_mutex_lock(&p->lock);
    for (int64_t i = 1; i < n; ++i) {
        pool_worker *w = p->workers[i];
        w->go = 1;
        if (i > p->n_threads) {
            if (start_thread(p, i)) {
                w->go = 0;
                break;
            }
            p->n_threads = i;
        } else {
            pthread_cond_signal(&w->wake);
        }
        p->n_running++;
    }
    pthread_mutex_unlock(&p->lock);
}

/* Every pool thread has reached its first park (under the lock). */
static int all_parked(const pyad_batch_pool *p)
{
    for (int64_t i = 1; i <= p->n_threads; ++i)
        if (!p->workers[i]->parked)
            return 0;
    return 1;
}

/* Called once the caller found no chunk left: a thread that has not woken yet
 * (its core busy with other work) is let off rather than waited for. A thread
 * still starting is waited for, once in its life: while it starts, the C
 * library and sanitizers hold locks of their own (ASan's allocator, taken in
 * its thread set-up, is not made fork-safe), and a fork() by the caller right
 * after the batch would copy them held into the child, whose first malloc
 * would then never return. */
static void wait_for_threads(pyad_batch_pool *p)
{
    pthread_mutex_lock(&p->lock);
    for (int64_t i = 1; i <= p->n_threads; ++i)
        if (p->workers[i]->go) {
            p->workers[i]->go = 0;
            p->n_running--;
        }
    while (p->n_running > 0 || !all_parked(p))
        pthread_cond_wait(&p->done, &p->lock);
    pthread_mutex_unlock(&p->lock);
}

int pyad_batch_sweep(pyad_batch_pool *p, pyad_tape *t, int kind, int64_t nb, int64_t chunk,
                     int64_t n_threads, const double *x, const double *xd, const double *u,
                     int64_t u_rows, double *y, double *yd, double *xbar, double *xbard,
                     int64_t *bad, int64_t *n_bad)
{
    if (!n_bad)
        return PYAD_EINVAL;
    int s = pyad_batch_begin(p, t, kind, nb, chunk, n_threads, x, xd, u, u_rows, y, yd, xbar,
                             xbard, bad);
    if (s)
        return s;
    if (n_threads > p->job.n_chunks)
        n_threads = p->job.n_chunks;
    if (n_threads > 1)
        call_threads(p, n_threads);
    pyad_batch_work(p, 0);
    wait_for_threads(p);
    return pyad_batch_finish(p, 0, n_bad);
}
