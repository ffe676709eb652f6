/* job_answer.h - a finished inference job (inference_job.h) to the bytes of its answer.
 *
 * Writes what job->answer says: the /classify JSON, the /explain JSON with each image's
 * Grad-CAM grid and crop window, the /explain PNG (the image as the network saw it with its
 * map over it), or the KServe v2 infer response. A job that did not finish (expired, failed,
 * shut down) becomes the status and message to answer instead. Everything an answer computes
 * (crop windows, the heat-map picture, the v2 tensors) is done here, so a front end only sends
 * what it gets. Reentrant, no globals. */
#ifndef API_JOB_ANSWER_H
#define API_JOB_ANSWER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "inference_job.h"

typedef struct {
    json_t *json;             /* a JSON answer (new reference; the caller decrefs), or NULL */
    char *body;               /* otherwise the bytes: malloc'd, the caller frees them */
    size_t len;
    const char *content_type; /* of body; JSON answers are application/json */
    bool compressible;        /* false: already compressed (PNG) */
    const char *header;       /* an answer header to add (static name), or NULL */
    char header_value[24];
} job_answer;

/* The answer to the finished job; request_id and start_ns (CLOCK_MONOTONIC, when the request
 * arrived) go into the timings and ids of the classify answers. API_OK with *out filled, or
 * the status to answer with msg. */
api_status job_answer_write(const inference_job *job, const char *request_id, int64_t start_ns,
                            job_answer *out, char *msg, size_t msglen);

/* A finished v2 job's outputs as structured tensors (kserve_v2_infer_tensors) and the name
 * of the view that answers (model, KSERVE_V2_MAX_NAME bytes), for front ends that frame
 * tensors themselves (gRPC). API_OK with *out filled (kserve_v2_tensors_free), or the status
 * to answer with msg, as job_answer_write decides it. */
api_status job_answer_v2_tensors(const inference_job *job, int64_t start_ns,
                                 kserve_v2_tensors *out, char *model, char *msg, size_t msglen);

#endif
