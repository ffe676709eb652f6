/* grpc_service.h - the service as the gRPC front end sees it.
 *
 * The gRPC listener itself is C++ (grpc_frontend.cc, behind grpc_frontend.h); this C module
 * is everything it asks of the service: the state, the model being served and its limits,
 * the batcher, the bearer token, the v2 documents (api/kserve_v2.h, the same bytes HTTP
 * sends), the access log and the metrics. So the C++ file holds no model or HTTP logic, and
 * the C side never sees C++.
 *
 * serve.c: grpc_service_start binds grpc_port (after HTTP), grpc_service_serve hands over the
 * model and batcher once, grpc_service_set_state follows the service state, and on SIGTERM
 * grpc_service_stop (after batcher_drain, before batcher_free) waits for the calls to send
 * their answers. The front end: every other function, from gRPC's threads. All functions are
 * thread-safe; the struct is opaque. */
#ifndef SERVER_GRPC_SERVICE_H
#define SERVER_GRPC_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "errors.h"
#include "inference_job.h"
#include "kserve_v2.h"
#include "kserve_v2_grpc.h"
#include "metrics.h"
#include "served_model.h"
#include "service_state.h"

typedef struct grpc_service grpc_service;
typedef struct batcher batcher;       /* batcher.h, which C++ cannot include */
typedef struct repository repository; /* repository.h, likewise */

/* ---------------------------------------------------------------- serve.c */

/* Binds cfg->host:cfg->grpc_port and starts serving (health and metadata answer at once;
 * inference once ready). cfg and m are borrowed for the service's lifetime. NULL with err. */
grpc_service *grpc_service_start(const vggserve_config *cfg, metrics *m, char *err,
                                 size_t errlen);
int grpc_service_port(const grpc_service *g); /* the port bound (useful with 0) */
/* The models (server/repository.h; borrowed, outlives g), handed over once. */
void grpc_service_serve(grpc_service *g, repository *repo);
void grpc_service_set_state(grpc_service *g, service_state st);
int grpc_service_pending(grpc_service *g); /* calls whose job is with the batcher */
/* Stops the listener: calls in flight get up to grace_ms to send their answers, then are
 * cancelled. Frees g; NULL is ignored. */
void grpc_service_stop(grpc_service *g, int64_t grace_ms);

/* ---------------------------------------------------------------- the front end */

typedef enum {
    GRPC_DOC_SERVER_METADATA,
    GRPC_DOC_MODEL_METADATA,
    GRPC_DOC_MODEL_CONFIG,
    GRPC_DOC_MODEL_STATS, /* of one view; KSERVE_V2_VIEW_COUNT: every view */
    GRPC_DOC_REPOSITORY_INDEX,
    GRPC_DOC_REPOSITORY_INDEX_READY, /* the READY rows only (RepositoryIndexRequest.ready) */
} grpc_doc;

bool grpc_service_ready(grpc_service *g);
const char *grpc_service_state_name(grpc_service *g);
/* Which model, view and version a call's name and version name, for route (as the REST path
 * would route): API_OK with *t, or API_NOT_FOUND with msg. */
api_status grpc_service_route(grpc_service *g, kserve_v2_str name, kserve_v2_str version,
                              kserve_v2_route route, kserve_v2_target *t, char *msg,
                              size_t msglen);
/* Whether t's model (and version) is served and the service ready. */
bool grpc_service_model_ready(grpc_service *g, const kserve_v2_target *t);

/* The bearer token of the `authorization` metadata (NULL: absent) for an inference call, or
 * with health for health and metadata calls (checked only under auth_health). */
api_status grpc_service_auth(grpc_service *g, const char *authorization, bool health, char *msg,
                             size_t msglen);

/* Whether the repository API (index, load, unload) is served over gRPC: API_OK, or (under
 * repository_api_admin_only) API_BAD_REQUEST with msg. */
api_status grpc_service_repository_api(grpc_service *g, char *msg, size_t msglen);

/* Whether loads and unloads are taken at all (explicit mode, not admin-only): API_OK, or
 * API_BAD_REQUEST with HTTP's message. */
api_status grpc_service_repository_writable(grpc_service *g, char *msg, size_t msglen);

/* Called once when a load or unload ends, from the repository's loader thread: API_OK, or
 * the status and why. */
typedef void (*grpc_control_done)(void *ctx, api_status st, const char *msg);

/* RepositoryModelLoad (unload false) or RepositoryModelUnload of name, as HTTP's POST
 * /v2/repository/models/NAME/load|unload: config is the load's "config" parameter (the text
 * that replaces config.json for this load), or NULL. API_OK: queued, and done will be called
 * once; otherwise (not explicit mode, a bad name or config, an unknown model) msg says why
 * and done is never called. */
api_status grpc_service_repository_control(grpc_service *g, bool unload, const char *name,
                                           const char *config, grpc_control_done done,
                                           void *ctx, char *msg, size_t msglen);

/* The v2 document as HTTP's route answers it, for the model t names (NULL: none, or every
 * model's statistics): JSON text, malloc'd (NULL: out of memory). */
char *grpc_service_doc(grpc_service *g, grpc_doc doc, const kserve_v2_target *t);

/* One ModelInfer request on its way to the batcher. */
typedef struct {
    const kserve_v2_grpc_request *request;
    int64_t start_ns;           /* CLOCK_MONOTONIC when it arrived */
    int64_t client_deadline_ns; /* the call's deadline on the same clock; 0: none */
    void (*on_complete)(inference_job *job); /* once, on a worker; job->user is user */
    void *user;
} grpc_infer_call;

/* Makes the call's job (*job; the caller frees it after a failure, or after on_complete) and
 * queues it: kserve_v2_grpc_job_parse with the service's limits, then the batcher, with the
 * deadline start_ns + request_timeout_ms or the client's when sooner. API_OK (pending counts
 * it until grpc_service_log), or API_NOT_READY (*job NULL when refused before parsing),
 * API_QUEUE_FULL, a parse status, with msg. A call that started while ready is still queued
 * when the drain begins meanwhile. */
api_status grpc_service_infer(grpc_service *g, const grpc_infer_call *c, inference_job **job,
                              char *msg, size_t msglen);

/* serve.c's drain: waits until no call is between its start and its job's submission, or
 * timeout_s. Returns whether none is (true for a NULL g). */
bool grpc_service_drain_wait(grpc_service *g, double timeout_s);

/* One finished call, for the access log (protocol grpc) and the metrics. */
typedef struct {
    const char *method;        /* the RPC's name: "ModelInfer" */
    const char *peer;          /* "ipv4:127.0.0.1:5555" */
    int64_t start_ns;          /* CLOCK_MONOTONIC when it arrived */
    api_status status;
    const char *error;         /* the message sent with a failure, or "" */
    const inference_job *job;  /* its job, or NULL */
    bool queued;               /* the job went through grpc_service_submit */
    int64_t output_ns;         /* writing the answer */
    size_t response_bytes;
    bool cancelled;            /* the client cancelled before its deadline: its images still
                                * queued were dropped (logged as CANCELLED, not a rejection) */
} grpc_call_record;

void grpc_service_log(grpc_service *g, const grpc_call_record *rec);

#endif
