/* job_answer.c - finished jobs to answers: classify and explain JSON, the explain PNG, v2. */
#include "job_answer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "heatmap.h"
#include "kserve_v2.h"
#include "responses.h"

static double ms_between(int64_t a_ns, int64_t b_ns) { return (b_ns - a_ns) / 1e6; }

/* A job that did not finish: the status and message its client gets. */
static api_status unfinished(const inference_job *job, int64_t start_ns, char *msg,
                             size_t msglen) {
    switch (job->status) {
    case JOB_OK: return API_OK;
    case JOB_EXPIRED:
        snprintf(msg, msglen, "deadline of %.0f ms passed while the request was queued",
                 ms_between(start_ns, job->deadline_ns));
        return API_DEADLINE_EXCEEDED;
    case JOB_SHUTDOWN:
        snprintf(msg, msglen, "service shut down before the request was run");
        return API_NOT_READY;
    case JOB_FAILED: break;
    }
    snprintf(msg, msglen, "inference failed; see the server log");
    return API_INTERNAL;
}

/* Each image's Grad-CAM map and the window of the upload the network saw (POST /explain). */
static void add_explanations(const inference_job *job, json_t *body) {
    const served_model *m = job->model;
    double (*crops)[4] = malloc((size_t)job->n_images * sizeof *crops);
    if (!crops) return;
    for (int i = 0; i < job->n_images; i++)
        preprocess_view_window(m->preprocess, job->sizes[i][0], job->sizes[i][1],
                               PREPROCESS_RESIZE_TO, m->image_hw, crops[i]);
    api_add_explanations(body, m->labels, job->n_images, m->explain_layer, job->explained, job->maps,
                         m->explain_hw, (const double (*)[4])crops);
    free(crops);
}

static api_status classify_answer(const inference_job *job, const char *request_id,
                                  int64_t start_ns, job_answer *out) {
    const served_model *m = job->model;
    api_timings t = {job->decode_ms, job->max_queue_ns / 1e6, job->inference_ns / 1e6,
                     ms_between(start_ns, clock_monotonic_ns())};
    out->json = api_classify_json(m->name, m->labels, request_id, job->probs, job->n_images,
                                  m->n_classes, job->top_k, &t, job->max_batch_seen);
    if (job->answer == JOB_ANSWER_EXPLAIN_JSON) add_explanations(job, out->json);
    return API_OK;
}

/* The one image as the network saw it with its map over it (model/heatmap.h), the class it
 * explains in X-Explained-Class. PNG is compressed already. */
static api_status explanation_png(const inference_job *job, job_answer *out, char *msg,
                                  size_t msglen) {
    const served_model *m = job->model;
    unsigned char *png = heatmap_explanation_png(m->preprocess, job->inputs, m->image_hw,
                                                 job->maps, m->explain_hw, &out->len);
    if (!png) {
        snprintf(msg, msglen, "out of memory drawing the explanation");
        return API_INTERNAL;
    }
    out->body = (char *)png;
    out->content_type = "image/png";
    out->compressible = false;
    out->header = "X-Explained-Class";
    snprintf(out->header_value, sizeof out->header_value, "%d", job->explained[0]);
    return API_OK;
}

static kserve_v2_results v2_results(const inference_job *job) {
    const served_model *m = job->model;
    return (kserve_v2_results){job->probs, job->logits, m->n_classes, job->maps, m->explain_hw,
                               m->labels, m->version};
}

static api_status v2_answer(const inference_job *job, job_answer *out, char *msg, size_t msglen) {
    char name[KSERVE_V2_MAX_NAME];
    kserve_v2_view_name(job->model->name, job->v2_view, name, sizeof name);
    const kserve_v2_results res = v2_results(job);
    kserve_v2_body b;
    if (kserve_v2_infer_response(&job->v2, name, &res, &b, msg, msglen) != 0) return API_INTERNAL;
    out->body = b.data;
    out->len = b.len;
    out->content_type = b.binary ? "application/octet-stream" : "application/json";
    if (b.binary) {
        out->header = "Inference-Header-Content-Length";
        snprintf(out->header_value, sizeof out->header_value, "%zu", b.json_len);
    }
    return API_OK;
}

api_status job_answer_write(const inference_job *job, const char *request_id, int64_t start_ns,
                            job_answer *out, char *msg, size_t msglen) {
    memset(out, 0, sizeof *out);
    out->compressible = true;
    api_status st = unfinished(job, start_ns, msg, msglen);
    if (st != API_OK) return st;
    switch (job->answer) {
    case JOB_ANSWER_V2: return v2_answer(job, out, msg, msglen);
    case JOB_ANSWER_EXPLAIN_PNG: return explanation_png(job, out, msg, msglen);
    case JOB_ANSWER_CLASSIFY:
    case JOB_ANSWER_EXPLAIN_JSON: break;
    }
    return classify_answer(job, request_id, start_ns, out);
}

api_status job_answer_v2_tensors(const inference_job *job, int64_t start_ns,
                                 kserve_v2_tensors *out, char *model, char *msg, size_t msglen) {
    memset(out, 0, sizeof *out);
    kserve_v2_view_name(job->model->name, job->v2_view, model, KSERVE_V2_MAX_NAME);
    api_status st = unfinished(job, start_ns, msg, msglen);
    if (st != API_OK) return st;
    const kserve_v2_results res = v2_results(job);
    return kserve_v2_infer_tensors(&job->v2, &res, out, msg, msglen) == 0 ? API_OK : API_INTERNAL;
}
