/* batcher.h - one bounded queue of images, a pool of inference workers, dynamic batching.
 *
 * A front end hands over an inference_job (api/inference_job.h: decoded and preprocessed
 * tensors, the outputs wanted, a deadline, a completion callback); the batcher never sees
 * JSON, image bytes or HTTP. It writes the job's results and completes every job through its
 * one callback, job->on_complete. Each worker owns a vgg_engine (its oneDNN stream and
 * primitives) over the shared vgg_model.
 *
 * Thread-safety: batcher_submit and batcher_drain may be called from any thread. A job
 * belongs to the batcher from a successful batcher_submit until on_complete runs; after
 * on_complete the batcher never touches it again.
 */
#ifndef BATCHER_H
#define BATCHER_H

#include <stdatomic.h>
#include <stdint.h>

#include "arrivals.h"
#include "engine.h"
#include "inference_job.h"
#include "metrics.h"

typedef enum { BATCHER_OK = 0, BATCHER_FULL, BATCHER_STOPPED } batcher_submit_result;

typedef struct batcher batcher;

typedef struct {
    int workers;
    int threads_per_worker;
    int max_batch;
    int64_t max_queue_delay_us;
    int queue_capacity; /* images */
    /* Uploads the front end is still receiving or decoding (may be NULL). While any is, a
     * partial batch waits for them, up to max_queue_delay_us; when nothing is on its way the
     * batch leaves after BATCHER_SETTLE_US, so an idle request does not wait. */
    const arrivals *arriving;
    bool explanations; /* warm-up also builds the explain plans (not for int8) */
    metrics_series *series; /* this version's metrics (metrics.h; NULL: service-wide only) */
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

/* Queues all of the job's images, or none: BATCHER_FULL when they do not fit, BATCHER_STOPPED
 * once draining began. The job must have its results allocated (inference_job_alloc_results),
 * a deadline and on_complete. */
batcher_submit_result batcher_submit(batcher *b, inference_job *job);

/* Refuses new work, waits up to grace_ms for queued and running work to finish, answers
 * what is still queued with JOB_SHUTDOWN, then stops and joins the workers. */
void batcher_drain(batcher *b, int64_t grace_ms);

void batcher_free(batcher *b);

#endif
