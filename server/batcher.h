/* batcher.h - one bounded queue of images, a pool of inference workers, dynamic batching.
 *
 * The HTTP layer hands over a batch_request (already decoded and preprocessed tensors, a
 * deadline, a completion callback); the batcher never sees JSON or image bytes. Each worker
 * owns a vgg_engine (its oneDNN stream and primitives) over the shared vgg_model.
 *
 * Thread-safety: batcher_submit and batcher_drain may be called from any thread. A
 * batch_request belongs to the caller until on_complete runs; after on_complete the batcher
 * never touches it again.
 */
#ifndef BATCHER_H
#define BATCHER_H

#include <stdatomic.h>
#include <stdint.h>

#include "engine.h"
#include "metrics.h"

typedef enum {
    BATCH_IMAGE_OK = 0,
    BATCH_IMAGE_EXPIRED,  /* deadline passed while queued: never computed */
    BATCH_IMAGE_FAILED,   /* the engine reported an error */
    BATCH_IMAGE_SHUTDOWN, /* still queued when the shutdown grace ran out */
} batch_image_status;

typedef struct batch_request batch_request;
struct batch_request {
    /* Set by the submitter. */
    int n_images;
    const float *inputs;   /* n_images x (3, H, W), borrowed until on_complete */
    float *probs;          /* n_images x n_classes, written by the workers */
    float *logits;         /* n_images x n_classes, written by the workers; NULL: not wanted */
    /* Grad-CAM (engine.h vgg_engine_explain): per image a class, VGG_EXPLAIN_TOP1 or
     * VGG_EXPLAIN_NONE; NULL: no image of this request asks. maps (n_images x map_hw^2) and
     * explained_class (n_images) are written by the workers when explain_class is set. */
    const int *explain_class;
    float *maps;
    int *explained_class;
    int64_t deadline_ns;   /* CLOCK_MONOTONIC */
    void (*on_complete)(batch_request *r); /* called once, on a worker (or draining) thread */
    void *user;

    /* Set by the batcher before on_complete. */
    batch_image_status status; /* worst status over the images */
    int64_t enqueued_ns;
    int64_t max_queue_ns;      /* longest wait of any image */
    int64_t inference_ns;      /* summed forward time of the batches it was in */
    int max_batch_seen;        /* largest batch any of its images was in */
    uint64_t last_batch_id;
    int remaining;             /* images not yet finished (guarded by the batcher's lock) */
};

typedef enum { BATCHER_OK = 0, BATCHER_FULL, BATCHER_STOPPED } batcher_submit_result;

typedef struct batcher batcher;

typedef struct {
    int workers;
    int threads_per_worker;
    int max_batch;
    int64_t max_queue_delay_us;
    int queue_capacity; /* images */
    /* Requests the HTTP layer is still receiving or decoding (may be NULL). While it is
     * non-zero a partial batch waits for them, up to max_queue_delay_us; when nothing is on
     * its way the batch leaves after BATCHER_SETTLE_US, so an idle request does not wait. */
    atomic_int *arriving;
    bool explanations; /* warm-up also builds the explain plans (not for int8) */
} batcher_options;

#define BATCHER_SETTLE_US 500

/* Starts the workers; each creates its engine and warms up every batch size 1..max_batch.
 * Returns NULL with err if a worker cannot start. */
batcher *batcher_create(vgg_model *model, const batcher_options *opt, metrics *m, char *err,
                        size_t errlen);

/* Non-blocking: 1 once every worker has finished warming up (or failed). */
int batcher_is_warm(batcher *b);

/* Asks warming workers to stop early (shutdown during start-up); batcher_wait_warm then
 * reports an error. */
void batcher_abort_warmup(batcher *b);

/* Blocks until every worker has warmed up. Returns 0, or -1 with the first worker's error. */
int batcher_wait_warm(batcher *b, char *err, size_t errlen);

/* Queues all of r's images, or none: BATCHER_FULL when they do not fit, BATCHER_STOPPED once
 * draining began. */
batcher_submit_result batcher_submit(batcher *b, batch_request *r);

/* Refuses new work, waits up to grace_ms for queued and running work to finish, answers
 * what is still queued with BATCH_IMAGE_SHUTDOWN, then stops and joins the workers. */
void batcher_drain(batcher *b, int64_t grace_ms);

void batcher_free(batcher *b);

int64_t batcher_now_ns(void);

#endif
