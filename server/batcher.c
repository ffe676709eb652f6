/* batcher.c - bounded image queue, dynamic batching, inference workers.
 *
 * DESIGN
 * One mutex (b->lock) guards the ring of queued images, the per-request bookkeeping
 * (remaining, timings) and the run state. Two condition variables hang off it:
 *   - work_ready: workers wait here for images; submit signals it, drain broadcasts it.
 *   - idle: drain waits here until the queue is empty and no batch is running; a worker
 *     signals it after finishing a batch.
 * Batching: a worker that finds the queue non-empty but shorter than max_batch waits on
 * work_ready until the oldest image has waited max_queue_delay_us (timed wait), then takes
 * up to max_batch images, possibly from several requests; a request's images may span
 * batches. Expired images are dropped at that point, never computed.
 * The worker drops the lock for the forward pass, then retakes it to write each request's
 * timings and decrement its `remaining`. The worker that takes `remaining` to zero calls
 * the job's on_complete after dropping the lock (the HTTP layer's callback resumes the
 * suspended connection, whose handler then writes the answer from the job). on_complete is the last time the
 * batcher touches a request.
 * Shutdown: drain sets `accepting = false` (submit answers BATCHER_STOPPED), waits on idle,
 * completes leftovers with JOB_SHUTDOWN, sets `stopping`, broadcasts, joins.
 * Several models: each served version of each model has its own batcher (server/repository.h
 * says how they are built, swapped and freed); their workers share the cores through the OS
 * scheduler, each with threads_per_worker oneDNN threads, and no queue is shared, so one
 * model's backlog fills only its own queue.
 */
#include "batcher.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"

typedef struct {
    inference_job *job;
    int index;
} queued_image;

typedef struct {
    batcher *b;
    pthread_t thread;
    int id;
    bool started;
} worker;

struct batcher {
    vgg_model *model;
    batcher_options opt;
    metrics *metrics;
    size_t image_floats; /* 3 * H * W */
    int n_classes;

    pthread_mutex_t lock;
    pthread_cond_t work_ready, idle, warm;
    queued_image *ring;
    inference_job **left; /* queue_capacity slots: what drain answers itself */
    int head, count;
    int running_batches;
    bool accepting, stopping;
    int warm_workers, failed_workers;
    atomic_bool abort_warmup;
    char warm_error[600];
    uint64_t next_batch_id;

    worker *workers;
};

/* Completes one image of r under the lock; returns true when it was the request's last. */
static bool finish_image_locked(inference_job *r, job_status st) {
    if (st > r->status) r->status = st;
    return --r->remaining == 0;
}

static queued_image pop_locked(batcher *b) {
    queued_image q = b->ring[b->head];
    b->head = (b->head + 1) % b->opt.queue_capacity;
    b->count--;
    return q;
}

/* One worker's engine and its batch-sized buffers. */
typedef struct {
    vgg_engine *e;
    float *in, *probs, *logits, *maps;
    int *classes, *explained;
    int map_floats; /* one explanation map */
    queued_image *taken;
    inference_job **finished; /* at most every queued image plus a batch */
    char err[512];
} worker_state;

static int worker_state_init(batcher *b, worker_state *ws) {
    const size_t max_batch = (size_t)b->opt.max_batch;
    ws->e = vgg_engine_create(b->model, b->opt.threads_per_worker, ws->err, sizeof ws->err);
    if (!ws->e) return -1; /* err set by vgg_engine_create */
    const int hw = vgg_model_explain_hw(b->model);
    ws->map_floats = hw * hw;
    ws->in = calloc(max_batch * b->image_floats, sizeof(float));
    ws->probs = malloc(max_batch * b->n_classes * sizeof(float));
    ws->logits = malloc(max_batch * b->n_classes * sizeof(float));
    ws->maps = malloc(max_batch * ws->map_floats * sizeof(float));
    ws->classes = malloc(max_batch * sizeof(int));
    ws->explained = malloc(max_batch * sizeof(int));
    ws->taken = malloc(max_batch * sizeof *ws->taken);
    ws->finished = malloc(((size_t)b->opt.queue_capacity + max_batch) * sizeof *ws->finished);
    if (!ws->in || !ws->probs || !ws->logits || !ws->maps || !ws->classes || !ws->explained ||
        !ws->taken || !ws->finished) {
        snprintf(ws->err, sizeof ws->err, "out of memory");
        return -1;
    }
    return 0;
}

static void worker_state_free(worker_state *ws) {
    free(ws->in);
    free(ws->probs);
    free(ws->logits);
    free(ws->maps);
    free(ws->classes);
    free(ws->explained);
    free(ws->taken);
    free(ws->finished);
    vgg_engine_free(ws->e);
}

/* Warm-up: build every plan (and with it every weight format) and run each once, so the first
 * real request pays no primitive creation or page faults. A shutdown stops it between plans
 * (each takes well under a second). */
static int warm_up(batcher *b, worker_state *ws) {
    const int max_batch = b->opt.max_batch;
    for (int n = 1; n <= max_batch; n++) {
        if (atomic_load(&b->abort_warmup)) {
            snprintf(ws->err, sizeof ws->err, "warm-up interrupted by shutdown");
            return -1;
        }
        if (vgg_engine_prepare(ws->e, n, ws->err, sizeof ws->err) != 0) return -1;
        if (b->opt.explanations && vgg_engine_prepare_explain(ws->e, n, ws->err, sizeof ws->err) != 0)
            return -1;
    }
    if (vgg_engine_forward(ws->e, ws->in, max_batch, NULL, ws->probs, ws->err, sizeof ws->err) != 0)
        return -1;
    if (max_batch > 1 && vgg_engine_forward(ws->e, ws->in, 1, NULL, ws->probs, ws->err,
                                            sizeof ws->err) != 0)
        return -1;
    return 0;
}

/* Dynamic batching (lock held): a partial batch waits while more images are on their way (the
 * HTTP layer is receiving or decoding them), at most max_queue_delay_us after its oldest
 * image; with nothing on its way it leaves after a short settle. Closed-loop clients
 * answered together re-send together, and this is what lets their requests meet in full
 * batches again. */
static void wait_for_fuller_batch(batcher *b) {
    const int max_batch = b->opt.max_batch;
    if (b->count >= max_batch || b->opt.max_queue_delay_us <= 0 || b->stopping) return;
    int64_t oldest = b->ring[b->head].job->enqueued_ns;
    int64_t cap = oldest + b->opt.max_queue_delay_us * 1000;
    int64_t settle_us = b->opt.max_queue_delay_us < BATCHER_SETTLE_US ? b->opt.max_queue_delay_us
                                                                     : BATCHER_SETTLE_US;
    int64_t settle = oldest + settle_us * 1000;
    for (;;) {
        bool more_coming = arrivals_count(b->opt.arriving) > 0;
        int64_t now_ns = clock_monotonic_ns(), until = more_coming ? cap : settle;
        if (now_ns >= until || b->count == 0 || b->count >= max_batch || b->stopping) return;
        /* Poll at least every millisecond: arrivals that end in an error don't signal. */
        int64_t wake = until < now_ns + 1000000 ? until : now_ns + 1000000;
        struct timespec abs = clock_after_ns(CLOCK_MONOTONIC, wake - now_ns);
        pthread_cond_timedwait(&b->work_ready, &b->lock, &abs);
    }
}

/* Takes up to max_batch images (lock held); those past their deadline, or whose client went
 * away, finish as expired (into ws->finished, *n_finished). Returns the batch size. */
static int take_batch(batcher *b, worker_state *ws, int *n_finished) {
    int64_t now = clock_monotonic_ns();
    int n = 0;
    while (b->count > 0 && n < b->opt.max_batch) {
        queued_image q = pop_locked(b);
        int64_t waited = now - q.job->enqueued_ns;
        if (waited > q.job->max_queue_ns) q.job->max_queue_ns = waited;
        metrics_series_queue_wait(b->metrics, b->opt.series, waited / 1e9);
        if (now > q.job->deadline_ns || inference_job_is_cancelled(q.job)) {
            if (finish_image_locked(q.job, JOB_EXPIRED)) ws->finished[(*n_finished)++] = q.job;
            continue;
        }
        ws->taken[n++] = q;
    }
    metrics_series_queue_depth(b->metrics, b->opt.series, b->count);
    return n;
}

/* Runs the batch (unlocked): a forward pass, or an explanation pass when any image asks for
 * one; the others in it pay nothing. Copies each image's outputs into its request. Returns
 * the engine's status; *took_ns the pass's time. */
static int run_batch(batcher *b, worker_state *ws, int n, uint64_t batch_id, int64_t *took_ns) {
    int explaining = 0;
    for (int i = 0; i < n; i++) {
        const queued_image *q = &ws->taken[i];
        memcpy(ws->in + (size_t)i * b->image_floats, q->job->inputs + (size_t)q->index * b->image_floats,
               b->image_floats * sizeof(float));
        ws->classes[i] = q->job->want & JOB_WANT_MAPS ? q->job->explain_class : VGG_EXPLAIN_NONE;
        explaining += ws->classes[i] != VGG_EXPLAIN_NONE;
    }
    int64_t t0 = clock_monotonic_ns();
    int rc = explaining ? vgg_engine_explain(ws->e, ws->in, n, ws->logits, ws->probs, ws->classes,
                                             ws->maps, ws->explained, ws->err, sizeof ws->err)
                        : vgg_engine_forward(ws->e, ws->in, n, ws->logits, ws->probs, ws->err,
                                             sizeof ws->err);
    *took_ns = clock_monotonic_ns() - t0;
    if (rc != 0) log_event_fields(LOG_ERROR, NULL, (long long)batch_id, ws->err, "forward failed");
    metrics_series_batch(b->metrics, b->opt.series, n, *took_ns / 1e9, rc == 0);
    if (explaining && rc == 0) metrics_observe_explain(b->metrics, explaining, *took_ns / 1e9);
    for (int i = 0; i < n && rc == 0; i++) {
        inference_job *r = ws->taken[i].job;
        const int k = ws->taken[i].index;
        const size_t row = (size_t)k * b->n_classes;
        memcpy(r->probs + row, ws->probs + (size_t)i * b->n_classes, b->n_classes * sizeof(float));
        if (r->logits)
            memcpy(r->logits + row, ws->logits + (size_t)i * b->n_classes,
                   b->n_classes * sizeof(float));
        if (r->maps) {
            memcpy(r->maps + (size_t)k * ws->map_floats, ws->maps + (size_t)i * ws->map_floats,
                   ws->map_floats * sizeof(float));
            if (r->explained) r->explained[k] = ws->explained[i];
        }
    }
    return rc;
}

/* Marks the batch's images done (lock held); requests whose last image it was go to
 * ws->finished. */
static void finish_batch_locked(worker_state *ws, int n, int rc, int64_t took, uint64_t batch_id,
                                int *n_finished) {
    for (int i = 0; i < n; i++) {
        inference_job *r = ws->taken[i].job;
        /* Count a batch's time once per request even when several of its images rode it. */
        bool first_of_request = true;
        for (int j = 0; j < i; j++) first_of_request &= ws->taken[j].job != r;
        if (first_of_request) r->inference_ns += took;
        if (n > r->max_batch_seen) r->max_batch_seen = n;
        r->last_batch_id = batch_id;
        if (finish_image_locked(r, rc == 0 ? JOB_OK : JOB_FAILED))
            ws->finished[(*n_finished)++] = r;
    }
}

static void complete(worker_state *ws, int n_finished) {
    for (int i = 0; i < n_finished; i++) ws->finished[i]->on_complete(ws->finished[i]);
}

static void *worker_main(void *arg) {
    worker *w = arg;
    batcher *b = w->b;
    worker_state ws = {0};
    int rc = worker_state_init(b, &ws);
    if (rc == 0) rc = warm_up(b, &ws);

    pthread_mutex_lock(&b->lock);
    if (rc == 0) b->warm_workers++;
    else if (b->failed_workers++ == 0)
        snprintf(b->warm_error, sizeof b->warm_error, "worker %d: %s", w->id, ws.err);
    pthread_cond_broadcast(&b->warm);
    while (rc == 0) {
        while (b->count == 0 && !b->stopping) pthread_cond_wait(&b->work_ready, &b->lock);
        if (b->count == 0 && b->stopping) break;
        wait_for_fuller_batch(b);
        if (b->count == 0) continue; /* another worker took them */
        int n_finished = 0;
        int n = take_batch(b, &ws, &n_finished);
        uint64_t batch_id = ++b->next_batch_id;
        if (n > 0) b->running_batches++;
        pthread_mutex_unlock(&b->lock);
        complete(&ws, n_finished);
        if (n > 0) {
            int64_t took;
            int frc = run_batch(b, &ws, n, batch_id, &took);
            pthread_mutex_lock(&b->lock);
            n_finished = 0;
            finish_batch_locked(&ws, n, frc, took, batch_id, &n_finished);
            b->running_batches--;
            if (b->count == 0 && b->running_batches == 0) pthread_cond_broadcast(&b->idle);
            pthread_mutex_unlock(&b->lock);
            complete(&ws, n_finished);
        }
        pthread_mutex_lock(&b->lock);
    }
    pthread_mutex_unlock(&b->lock);
    worker_state_free(&ws);
    return NULL;
}

batcher *batcher_create(vgg_model *model, const batcher_options *opt, metrics *m, char *err,
                        size_t errlen) {
    batcher *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    b->model = model;
    b->opt = *opt;
    if (b->opt.max_batch > VGG_MAX_BATCH) b->opt.max_batch = VGG_MAX_BATCH;
    b->metrics = m;
    const vgg_config *c = vgg_model_config(model);
    b->image_floats = (size_t)c->in_channels * c->input_hw * c->input_hw;
    b->n_classes = c->n_classes;
    b->ring = calloc((size_t)opt->queue_capacity, sizeof *b->ring);
    b->left = calloc((size_t)opt->queue_capacity, sizeof *b->left);
    b->workers = calloc((size_t)opt->workers, sizeof *b->workers);
    if (!b->ring || !b->left || !b->workers) {
        snprintf(err, errlen, "out of memory");
        free(b->ring);
        free(b->left);
        free(b->workers);
        free(b);
        return NULL;
    }
    b->accepting = true;
    pthread_mutex_init(&b->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->work_ready, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&b->idle, NULL);
    pthread_cond_init(&b->warm, NULL);
    for (int i = 0; i < opt->workers; i++) {
        b->workers[i].b = b;
        b->workers[i].id = i;
        if (pthread_create(&b->workers[i].thread, NULL, worker_main, &b->workers[i]) != 0) {
            snprintf(err, errlen, "cannot start worker thread %d", i);
            batcher_drain(b, 0);
            batcher_free(b);
            return NULL;
        }
        b->workers[i].started = true;
    }
    return b;
}

int batcher_is_warm(batcher *b) {
    pthread_mutex_lock(&b->lock);
    int done = b->warm_workers + b->failed_workers == b->opt.workers;
    pthread_mutex_unlock(&b->lock);
    return done;
}

void batcher_abort_warmup(batcher *b) { atomic_store(&b->abort_warmup, true); }

int batcher_wait_warm(batcher *b, char *err, size_t errlen) {
    pthread_mutex_lock(&b->lock);
    while (b->warm_workers + b->failed_workers < b->opt.workers) pthread_cond_wait(&b->warm, &b->lock);
    int rc = b->failed_workers ? -1 : 0;
    if (rc) snprintf(err, errlen, "%s", b->warm_error);
    pthread_mutex_unlock(&b->lock);
    return rc;
}

batcher_submit_result batcher_submit(batcher *b, inference_job *r) {
    pthread_mutex_lock(&b->lock);
    if (!b->accepting) {
        pthread_mutex_unlock(&b->lock);
        return BATCHER_STOPPED;
    }
    if (b->count + r->n_images > b->opt.queue_capacity) {
        pthread_mutex_unlock(&b->lock);
        return BATCHER_FULL;
    }
    r->status = JOB_OK;
    r->enqueued_ns = clock_monotonic_ns();
    r->max_queue_ns = r->inference_ns = 0;
    r->max_batch_seen = 0;
    r->remaining = r->n_images;
    for (int i = 0; i < r->n_images; i++) {
        int tail = (b->head + b->count) % b->opt.queue_capacity;
        b->ring[tail] = (queued_image){r, i};
        b->count++;
    }
    metrics_series_queue_depth(b->metrics, b->opt.series, b->count);
    /* Wake everyone when a full batch is ready, one worker otherwise. */
    if (b->count >= b->opt.max_batch) pthread_cond_broadcast(&b->work_ready);
    else pthread_cond_signal(&b->work_ready);
    pthread_mutex_unlock(&b->lock);
    return BATCHER_OK;
}

void batcher_drain(batcher *b, int64_t grace_ms) {
    pthread_mutex_lock(&b->lock);
    b->accepting = false;
    struct timespec abs = clock_after_ns(CLOCK_REALTIME, grace_ms * 1000000);
    while ((b->count > 0 || b->running_batches > 0) && b->warm_workers > 0 &&
           pthread_cond_timedwait(&b->idle, &b->lock, &abs) == 0) {
    }
    /* Whatever is still queued gets an answer too: 503, not silence. */
    int n_left = 0;
    while (b->count > 0) {
        queued_image q = pop_locked(b);
        if (finish_image_locked(q.job, JOB_SHUTDOWN)) b->left[n_left++] = q.job;
    }
    metrics_series_queue_depth(b->metrics, b->opt.series, 0);
    b->stopping = true;
    pthread_cond_broadcast(&b->work_ready);
    pthread_mutex_unlock(&b->lock);
    for (int i = 0; i < n_left; i++) b->left[i]->on_complete(b->left[i]);
    for (int i = 0; i < b->opt.workers; i++)
        if (b->workers[i].started) {
            pthread_join(b->workers[i].thread, NULL);
            b->workers[i].started = false;
        }
}

void batcher_free(batcher *b) {
    if (!b) return;
    free(b->ring);
    free(b->left);
    free(b->workers);
    pthread_mutex_destroy(&b->lock);
    pthread_cond_destroy(&b->work_ready);
    pthread_cond_destroy(&b->idle);
    pthread_cond_destroy(&b->warm);
    free(b);
}
