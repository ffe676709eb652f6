/* inference_job.c - a job's allocation and its one free. */
#include "inference_job.h"

#include <stdlib.h>

#include "engine.h"

inference_job *inference_job_new(const served_model *model, job_answer_kind answer) {
    inference_job *job = calloc(1, sizeof *job);
    if (!job) return NULL;
    job->model = model;
    job->answer = answer;
    job->want = JOB_WANT_PROBS;
    job->explain_class = VGG_EXPLAIN_NONE;
    return job;
}

int inference_job_alloc_results(inference_job *job) {
    const size_t n = (size_t)job->n_images, rows = n * job->model->n_classes;
    const size_t map_floats = (size_t)job->model->explain_hw * job->model->explain_hw;
    job->probs = malloc(rows * sizeof(float));
    if (job->want & JOB_WANT_LOGITS) job->logits = malloc(rows * sizeof(float));
    if (job->want & JOB_WANT_MAPS) {
        job->maps = malloc(n * map_floats * sizeof(float));
        job->explained = malloc(n * sizeof(int));
    }
    if (!job->probs || (job->want & JOB_WANT_LOGITS && !job->logits) ||
        (job->want & JOB_WANT_MAPS && (!job->maps || !job->explained)))
        return -1; /* what was allocated goes with the job */
    return 0;
}

void inference_job_free(inference_job *job) {
    if (!job) return;
    free(job->inputs);
    free(job->sizes);
    kserve_v2_infer_free(&job->v2);
    free(job->probs);
    free(job->logits);
    free(job->maps);
    free(job->explained);
    if (job->release) job->release(job->hold);
    free(job);
}
