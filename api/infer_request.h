/* infer_request.h - what a client sent, as an inference job (inference_job.h).
 *
 * The two request formats become the one job a front end submits: POST /classify and
 * /explain (classify_request.h, plus /explain's Accept and class_id) and KServe v2 infer
 * (kserve_v2.h). On success the job owns the tensors and wants exactly the outputs its
 * answer needs; on failure the status and msg say why and job->n_images counts the images
 * found (for the access log). The job's model (job->model) gives the class count and
 * whether maps can be made.
 *
 * Borrowed: requests, bodies and limits. Reentrant, no globals. */
#ifndef API_INFER_REQUEST_H
#define API_INFER_REQUEST_H

#include <stddef.h>

#include "classify_request.h"
#include "errors.h"
#include "inference_job.h"
#include "kserve_v2.h"

/* What POST /explain adds to a classify request. */
typedef struct {
    const char *class_id; /* query value, or NULL: each image's top-1 */
    const char *accept;   /* Accept header, or NULL: image/png asks for a picture */
} classify_explain_request;

/* POST /classify or /explain, as job->answer says (the route chose it):
 * classify_request_parse's checks, then for /explain (explain; NULL for /classify) in order
 * explanations supported (400 in int8), Accept (image/png answers one image; several get
 * JSON when the client takes it, else 400) and class_id (400 outside 0..n_classes-1). */
api_status classify_job_parse(const classify_http_request *req,
                              const classify_explain_request *explain, const classify_limits *lim,
                              const image_input_format *fmt, inference_job *job, char *msg,
                              size_t msglen);

/* KServe v2 infer: kserve_v2_infer_parse (with req's n_classes and gradcam_hw taken from
 * job->model), then the request moves into job->v2, its tensors into job->inputs, and the
 * outputs it names into job->want. */
api_status kserve_v2_job_parse(const kserve_v2_http_request *req, const classify_limits *lim,
                               const image_input_format *fmt, inference_job *job, char *msg,
                               size_t msglen);

#endif
