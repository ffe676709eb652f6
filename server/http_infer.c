/* http_infer.c - POST /classify and /explain, and the path every inference request takes:
 * its job is submitted to the batcher, the connection suspended, and the finished job
 * answered by api/job_answer.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "http_internal.h"
#include "infer_request.h"
#include "job_answer.h"
#include "repository_dir.h"

/* The job's one completion (on a worker thread, or the draining one): resume the suspended
 * connection, whose handler then answers from the job. */
static void on_inference_done(inference_job *job) {
    request *r = job->user;
    pthread_mutex_lock(&r->lock);
    if (r->phase == REQUEST_QUEUED) { /* always: submit suspends under this lock */
        r->phase = REQUEST_COMPUTED;
        MHD_resume_connection(r->conn);
    }
    pthread_mutex_unlock(&r->lock);
}

/* The client may shorten the deadline, never lengthen it. */
int64_t http_deadline_ns(request *r) {
    const char *v = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-Request-Timeout-Ms");
    return r->start_ns + classify_timeout_ms(v, r->srv->cfg->request_timeout_ms) * 1000000;
}

/* Queues r->job for the workers and suspends the connection; the worker that finishes its
 * last image resumes it (on_inference_done). */
api_status http_submit_job(request *r, batcher *b, char *msg, size_t msglen) {
    http_server *s = r->srv;
    inference_job *job = r->job;
    service_state state = atomic_load(&s->state);
    /* An upload that was arriving when the drain began is still computed: the drain waits
     * for arrivals before it stops the batcher (cli/serve.c). */
    bool admitted = state == SERVICE_READY || (state == SERVICE_DRAINING && r->arrival.counted);
    if (!admitted || !b) {
        snprintf(msg, msglen, "service is %s", service_state_name(atomic_load(&s->state)));
        return API_NOT_READY;
    }
    if (inference_job_alloc_results(job) != 0) {
        snprintf(msg, msglen, "out of memory");
        return API_INTERNAL;
    }
    job->deadline_ns = http_deadline_ns(r);
    job->on_complete = on_inference_done;
    job->user = r;
    pthread_mutex_lock(&r->lock);
    batcher_submit_result sr = batcher_submit(b, job);
    if (sr == BATCHER_OK) {
        r->queued = true;
        atomic_fetch_add(&s->pending, 1);
        r->phase = REQUEST_QUEUED;
        MHD_suspend_connection(r->conn);
    }
    http_arrived(r); /* after the images are in the queue, so the batcher never sees a gap */
    pthread_mutex_unlock(&r->lock);
    if (sr == BATCHER_FULL) {
        snprintf(msg, msglen, "queue is full (%lld images); retry later", s->cfg->queue_capacity);
        return API_QUEUE_FULL;
    }
    if (sr == BATCHER_STOPPED) {
        snprintf(msg, msglen, "service is draining");
        return API_NOT_READY;
    }
    return API_OK;
}

inference_job *http_job_for(request *r, const char *name, long long version,
                            job_answer_kind answer, image_input_format *input, batcher **b,
                            api_status *st, char *msg, size_t msglen) {
    http_server *s = r->srv;
    repository *repo = atomic_load(&s->repo);
    if (!repo) {
        *st = API_NOT_READY;
        snprintf(msg, msglen, "service is %s", service_state_name(atomic_load(&s->state)));
        return NULL;
    }
    repository_version *v = repository_acquire(repo, name, version, st, msg, msglen);
    if (!v) return NULL;
    const served_model *m = repository_version_model(v);
    inference_job *job = inference_job_new(m, answer);
    if (!job) {
        repository_release(v);
        *st = API_INTERNAL;
        snprintf(msg, msglen, "out of memory");
        return NULL;
    }
    job->release = repository_release_hold;
    job->hold = v;
    *b = repository_version_batcher(v);
    *input = (image_input_format){
        .image_hw = m->image_hw,
        .preprocess = m->preprocess,
        .decode = image_decode_options_of(s->cfg->max_pixels, s->cfg->decode_scaling,
                                          s->cfg->exif_orientation),
    };
    return job;
}

/* POST /classify and /explain: the body and query to a job, submitted. ?model=NAME and
 * &version=V choose the model (else the default one). */
enum MHD_Result http_classify_body_done(request *r) {
    http_server *s = r->srv;
    char msg[800];
    const char *model = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "model");
    const char *version = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "version");
    char name[REPO_MAX_NAME];
    repository *repo = atomic_load(&s->repo);
    if (model) {
        /* Checked whole: a name cut to fit could reach another model sharing its prefix. */
        if (repo_name_check(model, msg, sizeof msg) != 0)
            return http_send_error(r, API_BAD_REQUEST, msg);
        snprintf(name, sizeof name, "%s", model);
    } else if (!repo || !repository_default_model(repo, name, sizeof name)) {
        return http_send_error(r, API_BAD_REQUEST, "this server serves several models: name "
                               "one with ?model=NAME (POST /v2/repository/index lists them)");
    }
    long long v = 0;
    if (version && !(v = repo_parse_version(version)))
        return http_send_error(r, API_BAD_REQUEST, "version must be a positive integer");
    image_input_format input;
    batcher *b = NULL;
    api_status st;
    r->job = http_job_for(r, name, v, r->route == ROUTE_EXPLAIN ? JOB_ANSWER_EXPLAIN_JSON
                                                                : JOB_ANSWER_CLASSIFY,
                          &input, &b, &st, msg, sizeof msg);
    if (!r->job) return http_send_error(r, st, msg);
    classify_http_request in = {
        .content_type = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                    MHD_HTTP_HEADER_CONTENT_TYPE),
        .top_k = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "top_k"),
        .body_over_limit = r->body_fate == BODY_TOO_LARGE,
        .deadline_ns = http_deadline_ns(r),
    };
    in.body = http_body_bytes(r, &in.body_len);
    const classify_explain_request explain = {
        .class_id = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "class_id"),
        .accept = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT),
    };
    st = classify_job_parse(&in, &explain, &s->limits, &input, r->job, msg, sizeof msg);
    r->n_images = r->job->n_images;
    if (st == API_OK) st = http_submit_job(r, b, msg, sizeof msg);
    return st == API_OK ? MHD_YES : http_send_error(r, st, msg);
}

/* Answers a job the workers finished, with what the answer writer made of it. */
enum MHD_Result http_job_answered(request *r) {
    const int64_t t0 = clock_monotonic_ns();
    job_answer a;
    char msg[200];
    api_status st = job_answer_write(r->job, r->id, r->start_ns, &a, msg, sizeof msg);
    if (st != API_OK) {
        enum MHD_Result res = http_send_error(r, st, msg);
        if (r->job->status == JOB_OK) r->output_ns = clock_monotonic_ns() - t0;
        return res;
    }
    if (!a.compressible) r->answer_coding = CONTENT_CODING_IDENTITY;
    if (a.header) {
        r->answer_header = a.header;
        memcpy(r->answer_header_value, a.header_value, sizeof r->answer_header_value);
    }
    enum MHD_Result res = a.json ? http_send_json(r, 200, a.json, API_OK)
                                 : http_send_body(r, 200, a.content_type, a.body, a.len, API_OK);
    r->output_ns = clock_monotonic_ns() - t0;
    return res;
}
