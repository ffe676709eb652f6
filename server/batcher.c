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
 * on_complete after dropping the lock; the HTTP layer's callback resumes the suspended
 * connection, whose handler then reads the results. on_complete is the last time the
 * batcher touches a request.
 * Shutdown: drain sets `accepting = false` (submit answers BATCHER_STOPPED), waits on idle,
 * completes leftovers with BATCH_IMAGE_SHUTDOWN, sets `stopping`, broadcasts, joins.
 */
#include "batcher.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

typedef struct {
    batch_request *req;
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
    int head, count;
    int running_batches;
    bool accepting, stopping;
    int warm_workers, failed_workers;
    atomic_bool abort_warmup;
    char warm_error[600];
    uint64_t next_batch_id;

    worker *workers;
};

int64_t batcher_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Completes one image of r under the lock; returns true when it was the request's last. */
static bool finish_image_locked(batch_request *r, batch_image_status st) {
    if (st > r->status) r->status = st;
    return --r->remaining == 0;
}

static queued_image pop_locked(batcher *b) {
    queued_image q = b->ring[b->head];
    b->head = (b->head + 1) % b->opt.queue_capacity;
    b->count--;
    return q;
}

static void *worker_main(void *arg) {
    worker *w = arg;
    batcher *b = w->b;
    char err[512];
    const int max_batch = b->opt.max_batch;
    vgg_engine *e = vgg_engine_create(b->model, b->opt.threads_per_worker, err, sizeof err);
    /* Warm-up: build every plan (and with it every weight format) and run each once, so the
     * first real request pays no primitive creation or page faults. */
    float *in = e ? calloc((size_t)max_batch * b->image_floats, sizeof(float)) : NULL;
    float *probs = e ? malloc((size_t)max_batch * b->n_classes * sizeof(float)) : NULL;
    float *logits = e ? malloc((size_t)max_batch * b->n_classes * sizeof(float)) : NULL;
    int rc = e && in && probs && logits ? 0 : -1;
    if (!e) {
        /* err set by vgg_engine_create */
    } else if (rc != 0) {
        snprintf(err, sizeof err, "out of memory");
    }
    /* A shutdown during warm-up stops it between plans (each takes well under a second). */
    for (int n = 1; rc == 0 && n <= max_batch && !atomic_load(&b->abort_warmup); n++)
        rc = vgg_engine_prepare(e, n, err, sizeof err);
    if (rc == 0 && atomic_load(&b->abort_warmup)) {
        rc = -1;
        snprintf(err, sizeof err, "warm-up interrupted by shutdown");
    }
    if (rc == 0) rc = vgg_engine_forward(e, in, max_batch, NULL, probs, err, sizeof err);
    if (rc == 0 && max_batch > 1) rc = vgg_engine_forward(e, in, 1, NULL, probs, err, sizeof err);

    pthread_mutex_lock(&b->lock);
    if (rc == 0) {
        b->warm_workers++;
    } else {
        if (b->failed_workers++ == 0) snprintf(b->warm_error, sizeof b->warm_error, "worker %d: %s", w->id, err);
    }
    pthread_cond_broadcast(&b->warm);
    queued_image *taken = malloc((size_t)max_batch * sizeof *taken);
    /* Requests finished by one pass: at most every queued image plus a batch. */
    batch_request **finished = malloc(((size_t)b->opt.queue_capacity + max_batch) * sizeof *finished);
    while (rc == 0) {
        while (b->count == 0 && !b->stopping) pthread_cond_wait(&b->work_ready, &b->lock);
        if (b->count == 0 && b->stopping) break;
        /* Dynamic batching: a partial batch waits while more images are on their way (the
         * HTTP layer is receiving or decoding them), at most max_queue_delay_us after its
         * oldest image; with nothing on its way it leaves after a short settle. Closed-loop
         * clients answered together re-send together, and this is what lets their requests
         * meet in full batches again. */
        if (b->count < max_batch && b->opt.max_queue_delay_us > 0 && !b->stopping) {
            int64_t oldest = b->ring[b->head].req->enqueued_ns;
            int64_t cap = oldest + b->opt.max_queue_delay_us * 1000;
            int64_t settle_us = b->opt.max_queue_delay_us < BATCHER_SETTLE_US ? b->opt.max_queue_delay_us
                                                                             : BATCHER_SETTLE_US;
            int64_t settle = oldest + settle_us * 1000;
            for (;;) {
                bool more_coming = b->opt.arriving && atomic_load(b->opt.arriving) > 0;
                int64_t now_ns = batcher_now_ns(), until = more_coming ? cap : settle;
                if (now_ns >= until || b->count == 0 || b->count >= max_batch || b->stopping) break;
                /* Poll at least every millisecond: arrivals that end in an error don't signal. */
                int64_t wake = until < now_ns + 1000000 ? until : now_ns + 1000000;
                struct timespec abs;
                clock_gettime(CLOCK_MONOTONIC, &abs);
                int64_t wait_ns = wake - now_ns;
                abs.tv_sec += wait_ns / 1000000000;
                abs.tv_nsec += wait_ns % 1000000000;
                if (abs.tv_nsec >= 1000000000) {
                    abs.tv_sec++;
                    abs.tv_nsec -= 1000000000;
                }
                pthread_cond_timedwait(&b->work_ready, &b->lock, &abs);
            }
            if (b->count == 0) continue; /* another worker took them */
        }
        int64_t now = batcher_now_ns();
        int n = 0;
        int n_finished = 0;
        while (b->count > 0 && n < max_batch) {
            queued_image q = pop_locked(b);
            int64_t waited = now - q.req->enqueued_ns;
            if (waited > q.req->max_queue_ns) q.req->max_queue_ns = waited;
            metrics_observe_queue_wait(b->metrics, waited / 1e9);
            if (now > q.req->deadline_ns) {
                if (finish_image_locked(q.req, BATCH_IMAGE_EXPIRED)) finished[n_finished++] = q.req;
                continue;
            }
            taken[n++] = q;
        }
        metrics_set_queue_depth(b->metrics, b->count);
        uint64_t batch_id = ++b->next_batch_id;
        if (n > 0) b->running_batches++;
        pthread_mutex_unlock(&b->lock);
        for (int i = 0; i < n_finished; i++) finished[i]->on_complete(finished[i]);
        n_finished = 0;
        if (n == 0) {
            pthread_mutex_lock(&b->lock);
            continue;
        }

        for (int i = 0; i < n; i++)
            memcpy(in + (size_t)i * b->image_floats,
                   taken[i].req->inputs + (size_t)taken[i].index * b->image_floats,
                   b->image_floats * sizeof(float));
        int64_t t0 = batcher_now_ns();
        int frc = vgg_engine_forward(e, in, n, logits, probs, err, sizeof err);
        int64_t took = batcher_now_ns() - t0;
        if (frc != 0) log_event_fields(LOG_ERROR, NULL, (long long)batch_id, err, "forward failed");
        metrics_observe_batch(b->metrics, n, took / 1e9, frc == 0);
        for (int i = 0; i < n && frc == 0; i++) {
            const size_t row = (size_t)taken[i].index * b->n_classes;
            memcpy(taken[i].req->probs + row, probs + (size_t)i * b->n_classes,
                   b->n_classes * sizeof(float));
            if (taken[i].req->logits)
                memcpy(taken[i].req->logits + row, logits + (size_t)i * b->n_classes,
                       b->n_classes * sizeof(float));
        }

        pthread_mutex_lock(&b->lock);
        for (int i = 0; i < n; i++) {
            batch_request *r = taken[i].req;
            /* Count a batch's time once per request even when several of its images rode it. */
            bool first_of_request = true;
            for (int j = 0; j < i; j++) first_of_request &= taken[j].req != r;
            if (first_of_request) r->inference_ns += took;
            if (n > r->max_batch_seen) r->max_batch_seen = n;
            r->last_batch_id = batch_id;
            if (finish_image_locked(r, frc == 0 ? BATCH_IMAGE_OK : BATCH_IMAGE_FAILED))
                finished[n_finished++] = r;
        }
        b->running_batches--;
        if (b->count == 0 && b->running_batches == 0) pthread_cond_broadcast(&b->idle);
        pthread_mutex_unlock(&b->lock);
        for (int i = 0; i < n_finished; i++) finished[i]->on_complete(finished[i]);
        pthread_mutex_lock(&b->lock);
    }
    pthread_mutex_unlock(&b->lock);
    free(taken);
    free(finished);
    free(in);
    free(probs);
    free(logits);
    vgg_engine_free(e);
    return NULL;
}

batcher *batcher_create(vgg_model *model, const batcher_options *opt, metrics *m, char *err,
                        size_t errlen) {
    batcher *b = calloc(1, sizeof *b);
    b->model = model;
    b->opt = *opt;
    if (b->opt.max_batch > 64) b->opt.max_batch = 64;
    b->metrics = m;
    const vgg_config *c = vgg_model_config(model);
    b->image_floats = (size_t)c->in_channels * c->input_hw * c->input_hw;
    b->n_classes = c->n_classes;
    b->ring = calloc((size_t)opt->queue_capacity, sizeof *b->ring);
    b->accepting = true;
    pthread_mutex_init(&b->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->work_ready, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&b->idle, NULL);
    pthread_cond_init(&b->warm, NULL);
    b->workers = calloc((size_t)opt->workers, sizeof *b->workers);
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

batcher_submit_result batcher_submit(batcher *b, batch_request *r) {
    pthread_mutex_lock(&b->lock);
    if (!b->accepting) {
        pthread_mutex_unlock(&b->lock);
        return BATCHER_STOPPED;
    }
    if (b->count + r->n_images > b->opt.queue_capacity) {
        pthread_mutex_unlock(&b->lock);
        return BATCHER_FULL;
    }
    r->status = BATCH_IMAGE_OK;
    r->enqueued_ns = batcher_now_ns();
    r->max_queue_ns = r->inference_ns = 0;
    r->max_batch_seen = 0;
    r->remaining = r->n_images;
    for (int i = 0; i < r->n_images; i++) {
        int tail = (b->head + b->count) % b->opt.queue_capacity;
        b->ring[tail] = (queued_image){r, i};
        b->count++;
    }
    metrics_set_queue_depth(b->metrics, b->count);
    /* Wake everyone when a full batch is ready, one worker otherwise. */
    if (b->count >= b->opt.max_batch) pthread_cond_broadcast(&b->work_ready);
    else pthread_cond_signal(&b->work_ready);
    pthread_mutex_unlock(&b->lock);
    return BATCHER_OK;
}

int batcher_queue_depth(batcher *b) {
    pthread_mutex_lock(&b->lock);
    int n = b->count;
    pthread_mutex_unlock(&b->lock);
    return n;
}

void batcher_drain(batcher *b, int64_t grace_ms) {
    pthread_mutex_lock(&b->lock);
    b->accepting = false;
    struct timespec abs;
    clock_gettime(CLOCK_REALTIME, &abs);
    abs.tv_sec += grace_ms / 1000;
    abs.tv_nsec += (grace_ms % 1000) * 1000000;
    if (abs.tv_nsec >= 1000000000) {
        abs.tv_sec++;
        abs.tv_nsec -= 1000000000;
    }
    while ((b->count > 0 || b->running_batches > 0) && b->warm_workers > 0 &&
           pthread_cond_timedwait(&b->idle, &b->lock, &abs) == 0) {
    }
    /* Whatever is still queued gets an answer too: 503, not silence. */
    batch_request **left = malloc(((size_t)b->count + 1) * sizeof *left);
    int n_left = 0;
    while (b->count > 0) {
        queued_image q = pop_locked(b);
        if (finish_image_locked(q.req, BATCH_IMAGE_SHUTDOWN)) left[n_left++] = q.req;
    }
    metrics_set_queue_depth(b->metrics, 0);
    b->stopping = true;
    pthread_cond_broadcast(&b->work_ready);
    pthread_mutex_unlock(&b->lock);
    for (int i = 0; i < n_left; i++) left[i]->on_complete(left[i]);
    free(left);
    for (int i = 0; i < b->opt.workers; i++)
        if (b->workers[i].started) {
            pthread_join(b->workers[i].thread, NULL);
            b->workers[i].started = false;
        }
}

void batcher_free(batcher *b) {
    if (!b) return;
    free(b->ring);
    free(b->workers);
    pthread_mutex_destroy(&b->lock);
    pthread_cond_destroy(&b->work_ready);
    pthread_cond_destroy(&b->idle);
    pthread_cond_destroy(&b->warm);
    free(b);
}
