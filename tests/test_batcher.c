/* test_batcher.c - the dynamic batcher (server/batcher.c) on a reduced VGG11, no HTTP.
 *
 * Batching: requests submitted together ride shared batches, their images' results equal the
 * engine's own forward pass, and each request completes exactly once. Deadlines: an image
 * whose deadline passed while queued is answered EXPIRED and never computed. Capacity: a
 * request that does not fit the queue is refused whole. Drain: work queued before the drain
 * is computed within the grace; with no grace left it is answered SHUTDOWN, never dropped;
 * after the drain submit answers STOPPED. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batcher.h"
#include "clock.h"
#include "engine.h"
#include "metrics.h"
#include "test_util.h"
#include "vgg_weights.h"

#define HW 32
#define N_CLASSES 10
#define MAX_BATCH 4

typedef struct {
    inference_job req;
    float *inputs, *probs;
    atomic_int completions;
} job;

static atomic_int total_completions;

static void on_complete(inference_job *r) {
    job *j = r->user;
    atomic_fetch_add(&j->completions, 1);
    atomic_fetch_add(&total_completions, 1);
}

static const size_t image_floats = (size_t)3 * HW * HW;

/* A request of n deterministic images (image k of request id: a ramp scaled by id and k). */
static void job_init(job *j, int id, int n, int64_t deadline_ns) {
    memset(j, 0, sizeof *j);
    j->inputs = malloc(n * image_floats * sizeof(float));
    j->probs = calloc((size_t)n * N_CLASSES, sizeof(float));
    for (int k = 0; k < n; k++)
        for (size_t i = 0; i < image_floats; i++)
            j->inputs[k * image_floats + i] = sinf(0.01f * (float)i * (1 + id) + (float)k);
    /* The batcher reads the tensors and writes the results; the job's buffers stay this
     * test's (no inference_job_free). */
    j->req = (inference_job){.n_images = n, .want = JOB_WANT_PROBS, .inputs = j->inputs,
                             .probs = j->probs, .deadline_ns = deadline_ns,
                             .on_complete = on_complete, .user = j};
}

static void job_free(job *j) {
    free(j->inputs);
    free(j->probs);
}

static void wait_completions(int want) {
    for (int i = 0; i < 30000 && atomic_load(&total_completions) < want; i++) usleep(1000);
}

static float max_abs_diff(const float *a, const float *b, size_t n) {
    float d = 0;
    for (size_t i = 0; i < n; i++) d = fmaxf(d, fabsf(a[i] - b[i]));
    return d;
}

int main(void) {
    vgg_config cfg;
    vgg_weights w;
    char err[512];
    EXPECT(vgg_config_init_reduced(&cfg, "vgg11", 16, HW, 32, N_CLASSES));
    EXPECT(vgg_weights_generate(&w, &cfg, 3) == 0);
    vgg_model_options mo = {.algo = VGG_ALGO_DIRECT, .precision = VGG_PRECISION_F32,
                            .max_batch = MAX_BATCH};
    vgg_model *model = vgg_model_create(&w, &mo, err, sizeof err);
    EXPECT(model != NULL);
    if (!model) return test_summary();
    metrics *m = metrics_create();
    /* The arrival counter holds partial batches back, as the HTTP layer does while uploads are
     * still being read: 5 images queued under it leave as one batch of 4 and one of 1. */
    arrivals arriving = {0};
    arrival upload = {false};
    arrivals_begin(&arriving, &upload);
    batcher_options opt = {.workers = 1, .threads_per_worker = 1, .max_batch = MAX_BATCH,
                           .max_queue_delay_us = 200000, .queue_capacity = 8,
                           .arriving = &arriving};
    batcher *b = batcher_create(model, &opt, m, err, sizeof err);
    EXPECT(b != NULL);
    EXPECT(batcher_wait_warm(b, err, sizeof err) == 0);

    /* Batching: requests of 2, 1 and 2 images. */
    const int64_t later = clock_monotonic_ns() + 60 * 1000000000LL;
    job jobs[3];
    const int sizes[3] = {2, 1, 2};
    for (int i = 0; i < 3; i++) job_init(&jobs[i], i, sizes[i], later);
    for (int i = 0; i < 3; i++) EXPECT(batcher_submit(b, &jobs[i].req) == BATCHER_OK);
    arrivals_end(&arriving, &upload);
    arrivals_end(&arriving, &upload); /* a second end is harmless */
    EXPECT(arrivals_count(&arriving) == 0);
    wait_completions(3);
    vgg_engine *ref = vgg_engine_create(model, 1, err, sizeof err);
    EXPECT(ref != NULL);
    int max_seen = 0;
    for (int i = 0; i < 3; i++) {
        EXPECT(atomic_load(&jobs[i].completions) == 1);
        EXPECT(jobs[i].req.status == JOB_OK);
        EXPECT(jobs[i].req.inference_ns > 0);
        if (jobs[i].req.max_batch_seen > max_seen) max_seen = jobs[i].req.max_batch_seen;
        float expect[2 * N_CLASSES];
        EXPECT(vgg_engine_forward(ref, jobs[i].inputs, sizes[i], NULL, expect, err, sizeof err) == 0);
        EXPECT(max_abs_diff(expect, jobs[i].probs, (size_t)sizes[i] * N_CLASSES) < 1e-5f);
    }
    EXPECT(max_seen == MAX_BATCH); /* the first four images rode one batch */

    /* Deadline: already past when queued, so never computed (probabilities stay zero). */
    job late;
    job_init(&late, 7, 2, clock_monotonic_ns() - 1);
    EXPECT(batcher_submit(b, &late.req) == BATCHER_OK);
    wait_completions(4);
    EXPECT(atomic_load(&late.completions) == 1);
    EXPECT(late.req.status == JOB_EXPIRED);
    EXPECT(late.req.max_batch_seen == 0);
    EXPECT(late.probs[0] == 0.0f && late.probs[N_CLASSES] == 0.0f);

    /* Capacity: 9 images never fit a queue of 8; refused whole, no completion. */
    job big;
    job_init(&big, 8, 9, later);
    EXPECT(batcher_submit(b, &big.req) == BATCHER_FULL);

    /* Drain with grace: queued work is still computed. */
    job queued;
    job_init(&queued, 9, 3, later);
    EXPECT(batcher_submit(b, &queued.req) == BATCHER_OK);
    batcher_drain(b, 30000);
    EXPECT(atomic_load(&queued.completions) == 1);
    EXPECT(queued.req.status == JOB_OK);
    job after;
    job_init(&after, 10, 1, later);
    EXPECT(batcher_submit(b, &after.req) == BATCHER_STOPPED);
    EXPECT(atomic_load(&total_completions) == 5);
    EXPECT(atomic_load(&big.completions) == 0 && atomic_load(&after.completions) == 0);
    batcher_free(b);

    /* Drain without grace while a batch waits for arrivals: answered SHUTDOWN, not lost. */
    arrivals_begin(&arriving, &upload);
    opt.max_queue_delay_us = 10 * 1000000;
    b = batcher_create(model, &opt, m, err, sizeof err);
    EXPECT(b != NULL && batcher_wait_warm(b, err, sizeof err) == 0);
    job held;
    job_init(&held, 11, 1, later);
    EXPECT(batcher_submit(b, &held.req) == BATCHER_OK);
    batcher_drain(b, 0);
    EXPECT(atomic_load(&held.completions) == 1);
    EXPECT(held.req.status == JOB_SHUTDOWN);
    batcher_free(b);

    for (int i = 0; i < 3; i++) job_free(&jobs[i]);
    job_free(&late);
    job_free(&big);
    job_free(&queued);
    job_free(&after);
    job_free(&held);
    vgg_engine_free(ref);
    metrics_free(m);
    vgg_model_free(model);
    vgg_weights_free(&w);
    return test_summary();
}
