/* infer_request.c - /classify, /explain and v2 infer requests to inference jobs. */
#include "infer_request.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "content_coding.h"
#include "engine.h"

/* ---------------------------------------------------------------- POST /explain */

/* Whether POST /explain answers a PNG: image/png is named in Accept and preferred to JSON
 * (at equal q the PNG wins over JSON that only a wildcard accepts, such as curl's and
 * browsers' trailing * / *). */
static bool accept_prefers_png(const char *accept) {
    bool png_named, json_named;
    const double png = content_accept_media_q(accept, "image/png", &png_named);
    const double json = content_accept_media_q(accept, "application/json", &json_named);
    return png_named && png > 0 && (png > json || (png == json && !json_named));
}

/* Accept: image/png answers one image as a picture; several get JSON when the client takes
 * it, else 400. Sets job->answer. */
static api_status negotiate_explanation(const char *accept, inference_job *job, char *msg,
                                        size_t msglen) {
    if (!accept_prefers_png(accept)) return API_OK;
    if (job->n_images == 1) {
        job->answer = JOB_ANSWER_EXPLAIN_PNG;
        return API_OK;
    }
    if (content_accept_media_q(accept, "application/json", NULL) > 0) return API_OK;
    snprintf(msg, msglen, "Accept: image/png answers one image; this request has %d "
             "(accept application/json for several)", job->n_images);
    return API_BAD_REQUEST;
}

/* ?class_id=C (else each image's top-1) for every image of the request. */
static api_status parse_class_id(const char *q, int n_classes, int *cls, char *msg,
                                 size_t msglen) {
    *cls = VGG_EXPLAIN_TOP1;
    if (!q) return API_OK;
    char *end;
    errno = 0;
    long v = strtol(q, &end, 10);
    if (errno || end == q || *end || v < 0 || v >= n_classes) {
        snprintf(msg, msglen, "class_id '%.32s' must be an integer from 0 to %d", q,
                 n_classes - 1);
        return API_BAD_REQUEST;
    }
    *cls = (int)v;
    return API_OK;
}

static api_status parse_explanation(const classify_explain_request *req, inference_job *job,
                                    char *msg, size_t msglen) {
    if (!job->model->explain_hw) {
        snprintf(msg, msglen, "explanations are not supported in int8; serve with --precision "
                 "f32 or bf16");
        return API_BAD_REQUEST;
    }
    api_status st = negotiate_explanation(req->accept, job, msg, msglen);
    if (st == API_OK)
        st = parse_class_id(req->class_id, job->model->n_classes, &job->explain_class, msg,
                            msglen);
    if (st == API_OK) job->want |= JOB_WANT_MAPS;
    return st;
}

api_status classify_job_parse(const classify_http_request *req,
                              const classify_explain_request *explain, const classify_limits *lim,
                              const image_input_format *fmt, inference_job *job, char *msg,
                              size_t msglen) {
    classify_input in;
    api_status st = classify_request_parse(req, lim, fmt, &in, msg, msglen);
    job->n_images = in.n_images;
    if (st != API_OK) return st;
    job->inputs = in.inputs; /* moved: the job frees them */
    job->sizes = in.sizes;
    job->decode_ms = in.decode_ms;
    job->top_k = in.top_k;
    if (job->answer == JOB_ANSWER_CLASSIFY) return API_OK;
    const classify_explain_request none = {NULL, NULL};
    return parse_explanation(explain ? explain : &none, job, msg, msglen);
}

/* ---------------------------------------------------------------- KServe v2 infer */

api_status kserve_v2_job_parse(const kserve_v2_http_request *req, const classify_limits *lim,
                               const image_input_format *fmt, inference_job *job, char *msg,
                               size_t msglen) {
    kserve_v2_http_request r = *req;
    r.n_classes = job->model->n_classes;
    r.gradcam_hw = job->model->explain_hw;
    api_status st = kserve_v2_infer_parse(&r, lim, fmt, &job->v2, msg, msglen);
    job->n_images = job->v2.n_images;
    if (st != API_OK) return st;
    job->inputs = job->v2.inputs; /* moved: the job frees them */
    job->v2.inputs = NULL;
    job->decode_ms = job->v2.decode_ms;
    job->v2_view = req->view;
    if (job->v2.want_logits) job->want |= JOB_WANT_LOGITS;
    if (job->v2.want_gradcam) {
        job->want |= JOB_WANT_MAPS;
        job->explain_class = job->v2.gradcam_class < 0 ? VGG_EXPLAIN_TOP1 : job->v2.gradcam_class;
    }
    return API_OK;
}
