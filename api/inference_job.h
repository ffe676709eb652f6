/* inference_job.h - one request's work, as every front end hands it to the batcher.
 *
 * A parser (classify_job_parse for POST /classify and /explain, kserve_v2_job_parse for v2
 * infer) fills a job from what a client sent: the model it is for, the preprocessed input
 * tensors, the outputs wanted, the class to explain and how the answer is to be written.
 * The front end sets the deadline and the completion callback, gives the job result buffers
 * (inference_job_alloc_results) and submits it (batcher_submit, server/batcher.h); the
 * batcher's workers write the results and call on_complete exactly once; an answer writer
 * (job_answer.h) turns the finished job into bytes. Nothing here knows HTTP: a second front
 * end (gRPC) builds, submits and answers jobs the same way.
 *
 * Ownership: the job owns its inputs, upload sizes, v2 request and results, and
 * inference_job_free() frees them all, once. From batcher_submit until on_complete the
 * batcher writes the results and the "set by the batcher" fields; nobody else touches the job
 * then. Not thread-safe otherwise: one owner at a time. */
#ifndef API_INFERENCE_JOB_H
#define API_INFERENCE_JOB_H

#include <stdint.h>

#include "kserve_v2.h"
#include "served_model.h"

/* How the finished job is answered (job_answer.h). */
typedef enum {
    JOB_ANSWER_CLASSIFY,     /* POST /classify: the top k JSON */
    JOB_ANSWER_EXPLAIN_JSON, /* POST /explain: the top k JSON with each image's map and crop */
    JOB_ANSWER_EXPLAIN_PNG,  /* POST /explain, Accept: image/png: one picture */
    JOB_ANSWER_V2,           /* KServe v2 infer: the outputs its request named */
} job_answer_kind;

/* Outputs a job wants (a bitmask); probabilities are always computed. */
enum {
    JOB_WANT_PROBS = 1u << 0,
    JOB_WANT_LOGITS = 1u << 1,
    JOB_WANT_MAPS = 1u << 2, /* Grad-CAM maps of explain_class, and the class each explains */
};

/* How the job ended (the worst over its images). */
typedef enum {
    JOB_OK = 0,
    JOB_EXPIRED,  /* the deadline passed while an image was queued: never computed */
    JOB_FAILED,   /* the engine reported an error */
    JOB_SHUTDOWN, /* still queued when the shutdown grace ran out */
} job_status;

typedef struct inference_job inference_job;
struct inference_job {
    /* What to compute: set by the parser. */
    const served_model *model; /* borrowed; outlives the job (held through release) */
    /* What keeps model alive: release(hold) runs once, in inference_job_free (the model
     * repository's reference of the version; NULL: nothing to release). */
    void (*release)(void *hold);
    void *hold;
    job_answer_kind answer;
    unsigned want;             /* JOB_WANT_* */
    int explain_class;         /* with JOB_WANT_MAPS: a class id, or VGG_EXPLAIN_TOP1 */
    int n_images;              /* also set when parsing failed: the images found, for logs */
    float *inputs;             /* n_images x model->image_floats, owned */
    double decode_ms;          /* decoding and preprocessing every input */
    /* How to answer: set by the parser. */
    int top_k;                 /* classify and explain answers */
    int (*sizes)[2];           /* classify and explain: each upload's upright (width, height),
                                * owned; the explain answers' crop windows come from them */
    kserve_v2_infer v2;        /* v2: the request's id and outputs (its inputs moved above) */
    kserve_v2_view v2_view;    /* v2: the model view the path named */

    /* Set by the submitter. */
    int64_t deadline_ns;                     /* CLOCK_MONOTONIC (util/clock.h) */
    void (*on_complete)(inference_job *job); /* called once, on a worker or draining thread */
    void *user;
    int cancelled; /* the client went away: images not yet run finish as JOB_EXPIRED; read
                    * and written only through inference_job_cancel / _is_cancelled */

    /* Results, allocated by inference_job_alloc_results, written by the workers. */
    float *probs;   /* n_images x n_classes */
    float *logits;  /* the same; NULL unless JOB_WANT_LOGITS */
    float *maps;    /* n_images x explain_hw^2; NULL unless JOB_WANT_MAPS */
    int *explained; /* n_images: the class each map explains; NULL unless JOB_WANT_MAPS */

    /* Set by the batcher before on_complete. */
    job_status status;
    int64_t enqueued_ns;
    int64_t max_queue_ns;  /* longest wait of any image */
    int64_t inference_ns;  /* summed forward time of the batches it was in */
    int max_batch_seen;    /* largest batch any of its images was in */
    uint64_t last_batch_id;
    int remaining;         /* images not yet finished (guarded by the batcher's lock) */
};

/* A new empty job for model (borrowed), or NULL when out of memory. */
inference_job *inference_job_new(const served_model *model, job_answer_kind answer);

/* Allocates the result buffers the job's `want` needs. 0, or -1 when out of memory. */
int inference_job_alloc_results(inference_job *job);

/* Marks the job cancelled (any thread, while it is with the batcher): its images still queued
 * are dropped instead of computed. Atomic builtins, so the C++ front end may call it too. */
static inline void inference_job_cancel(inference_job *job) {
    __atomic_store_n(&job->cancelled, 1, __ATOMIC_RELAXED);
}
static inline int inference_job_is_cancelled(const inference_job *job) {
    return __atomic_load_n(&job->cancelled, __ATOMIC_RELAXED);
}

/* Frees the job and everything it owns; NULL is ignored. */
void inference_job_free(inference_job *job);

#endif
