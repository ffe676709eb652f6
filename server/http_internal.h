/* http_internal.h - what the HTTP front end's files share; nothing outside server/http*.c
 * includes it.
 *
 * The front end is split by job:
 *   http.c         lifecycle: a request from its request line (on_uri) through on_request's
 *                  calls to its completion, and the server's start, hand-over and stop;
 *   http_routes.c  the route table: path, methods, auth, admin port, CORS, metrics label
 *                  and handler of every route, and the GET answers of health and metrics;
 *   http_screen.c  the checks the line and headers decide (framing, method, auth, CORS);
 *   http_body.c    body storage, inflation, limits and the buffered-bytes budget;
 *   http_infer.c   /classify and /explain, and submitting and answering inference jobs;
 *   http_v2.c      the KServe v2 routes;
 *   http_answer.c  sending answers (headers, compression) and the one error path;
 *   http_log.c     the access log and request metrics;
 *   http_listen.c  listeners, TLS and connection notifications.
 *
 * Errors: checks return an api_status with a message and their caller sends it, once, with
 * http_send_error(); sending any answer moves the request to REQUEST_ANSWERED, after which
 * nothing answers it again. Threads: a request is handled by one libmicrohttpd thread at a time; a
 * worker touches it only through its job's completion (r->lock). */
#ifndef HTTP_INTERNAL_H
#define HTTP_INTERNAL_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "arrivals.h"
#include "batcher.h"
#include "byte_buffer.h"
#include "classify_request.h"
#include "config.h"
#include "content_coding.h"
#include "errors.h"
#include "guard.h"
#include "inference_job.h"
#include "kserve_v2.h"
#include "metrics.h"
#include "repository.h"
#include "served_model.h"
#include "service_state.h"

typedef struct http_server http_server; /* http.h's; its definition is below */

/* A daemon's cls: which server, and whether it is the admin listener (health and metrics
 * only, its own connection budget). */
typedef struct {
    http_server *srv;
    bool admin;
} listener;

struct http_server {
    const vggserve_config *cfg;
    metrics *metrics;
    struct MHD_Daemon *daemon, *admin_daemon;
    listener main_listener, admin_listener;
    int port, admin_port;
    guard *guard; /* deadlines and the buffered-bytes budget (guard.h) */
    _Atomic int state;
    /* What the v2 metadata describes of a model no version of which is served yet (its
     * name, the default input, no explanations). */
    served_model loading_model;
    classify_limits limits;   /* the settings' limits, made at start */
    /* The models being served (repository.h), handed over once by http_server_serve;
     * NULL until then (the configured model's name routes, nothing is served). */
    repository *_Atomic repo;
    atomic_int pending; /* accepted inference requests not yet completed */
    arrivals arrivals;  /* inference uploads between their headers and the queue */
    atomic_ullong next_id;
    unsigned id_prefix;
    struct log_queue *access_log; /* stdout, written by its own thread (log_queue.h) */
    char *tls_cert, *tls_key; /* PEM text, owned; the key is wiped before it is freed */
};

/* ---------------------------------------------------------------- routes */

typedef enum {
    ROUTE_NONE,
    ROUTE_CLASSIFY,
    ROUTE_EXPLAIN, /* POST /explain: /classify with Grad-CAM maps */
    ROUTE_HEALTHZ,
    ROUTE_READYZ,
    ROUTE_METRICS,
    ROUTE_DEMO,          /* GET /, when demo_page is on */
    ROUTE_V2,            /* KServe v2 health, metadata, config, stats (v2_route) */
    ROUTE_V2_REPOSITORY, /* POST /v2/repository/...: index, load and unload (v2_route) */
    ROUTE_V2_INFER,      /* POST /v2/models/M[/versions/1]/infer */
    ROUTE_V2_MISSING,    /* under /v2 but unknown: a v2-shaped 404 */
    ROUTE_COUNT
} route;

typedef enum {
    ROUTE_AUTH_NONE,    /* never asks for the token */
    ROUTE_AUTH_ALWAYS,  /* inference: the token whenever one is set */
    ROUTE_AUTH_HEALTH,  /* health, readiness, v2 metadata: when auth_health is on */
    ROUTE_AUTH_METRICS, /* /metrics: when auth_metrics is on */
} route_auth;

typedef struct request request;

/* Where a request is; it only moves forward (an answer may come at any phase). */
typedef enum {
    REQUEST_HEADERS,  /* the headers are in, not yet screened (a request without a body is
                       * screened at on_request's last call, so the connection stays open) */
    REQUEST_BODY,     /* screened and accepted: its body is arriving */
    REQUEST_QUEUED,   /* its job is with the batcher; the connection is suspended */
    REQUEST_COMPUTED, /* the job completed and the connection was resumed: answer it */
    REQUEST_ANSWERED, /* an answer is queued; http_code says which */
} request_phase;

/* What became of the body's bytes (the limits are counted, not stored). */
typedef enum {
    BODY_KEPT,        /* stored (or inflating) */
    BODY_TOO_LARGE,   /* over max_body_bytes: counted, not stored; answered 413 at its end */
    BODY_OVER_BUDGET, /* max_buffered_bytes was full: drained unstored, answered 503 */
    BODY_TIMED_OUT,   /* not whole within connection_timeout_s: the connection was cut */
} body_fate;

/* One row of the route table: everything the server decides by route. */
typedef struct {
    const char *path;  /* the exact path; NULL: matched by kserve_v2_route_parse */
    bool post;         /* answers POST only; otherwise GET and HEAD */
    route_auth auth;
    bool admin;        /* served on the admin listener too */
    bool cors;         /* pages on cors_allowed_origins may call it and preflight it */
    bool v2_errors;    /* errors in KServe v2's shape, {"error": "message"} */
    bool inference;    /* runs the network: counts in the per-model statistics */
    metrics_endpoint endpoint;
    /* Answers a GET, or takes the whole body of a POST; NULL for the 404 routes. */
    enum MHD_Result (*handler)(request *r);
} route_spec;

extern const route_spec http_routes[ROUTE_COUNT];

/* Runs r's route handler: a GET's answer, or a POST's whole body. */
enum MHD_Result http_answer_route(request *r);

/* Which route url names (and for /v2 paths which v2 route, model, view and version). */
route http_route_of(http_server *s, const char *url, kserve_v2_route *v2, kserve_v2_target *t);
/* The models v2 paths may name (kserve_v2_route_resolve's catalog). */
kserve_v2_catalog http_catalog(http_server *s);

/* ---------------------------------------------------------------- requests */

/* One HTTP request, from its request line (on_uri: MHD's URI log callback allocates it, with
 * the path as sent) to MHD's completion callback. srv is NULL until on_request's first call:
 * a request libmicrohttpd refused itself (414, 431, a bad Content-Length) never gets one. */
struct request {
    http_server *srv;
    const listener *listener;
    struct MHD_Connection *conn;
    guard_conn *gc;         /* the connection's deadlines */
    bool raw_path_smuggles; /* the path as sent holds %00 or an encoded '/' */
    bool http11;            /* HTTP/1.1 (Host is required), not 1.0 */
    request_phase phase;    /* r->lock guards QUEUED -> COMPUTED (the worker's one write) */
    bool body_seen;         /* the last on_request call came: the whole body is here */
    long long reserved;     /* bytes of the budget this request holds */
    route route;
    kserve_v2_route v2_route;
    kserve_v2_view view;     /* the v2 model view the path names (FULL for /classify) */
    kserve_v2_target target; /* the model and version the v2 path names */
    char *url;           /* the whole path, owned (path below is cut for the log) */
    char id[48];
    char method[8];
    char path[128];
    int64_t start_ns;
    /* body */
    byte_buffer stored; /* the body as sent, unless it is compressed (then the inflater's) */
    size_t received;    /* body bytes as sent (compressed, when they are), stored or not */
    body_fate body_fate;
    bool body_is_inflated;        /* the inflater holds the whole body, inflated */
    content_inflater *inflater;   /* Content-Encoding gzip/deflate: the body as it inflates */
    content_coding answer_coding; /* Accept-Encoding: how a long answer may be compressed */
    const char *cors_origin;      /* the request's Origin, when cors_allowed_origins has it */
    char trace_id[33];            /* W3C trace context: the caller's trace, or a new one */
    char traceparent[56];         /* sent back: that trace, our span */
    /* inference */
    inference_job *job; /* what the parser made of the body; owned, freed in on_completed */
    int n_images;       /* images found in the body (for the log, also when refused) */
    int64_t output_ns;  /* writing the answer (Triton's compute_output) */
    const char *answer_header;    /* a header the answer writer asked for, or NULL */
    char answer_header_value[24];
    pthread_mutex_t lock; /* orders suspend (HTTP thread) before resume (worker) */
    bool queued;          /* its job was accepted by the batcher (pending, log timings) */
    bool controlling;     /* a repository load or unload is running for it (suspended) */
    api_status control_status; /* how it ended (written under lock by the loader thread) */
    char control_msg[512];
    arrival arrival; /* counted in srv->arrivals until queued or refused */
    /* answer, for the access log */
    const char *www_authenticate; /* static challenge for a 401 */
    int http_code;                /* the status sent (or, at completion, logged) */
    size_t response_bytes;
    char error[256];
};

/* http.c: libmicrohttpd's callbacks, and the end of a request's arrival. */
enum MHD_Result http_on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version,
                                const char *upload_data, size_t *upload_data_size,
                                void **req_cls);
void http_on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                       enum MHD_RequestTerminationCode toe);
void *http_on_uri(void *cls, const char *uri, struct MHD_Connection *conn);
void http_arrived(request *r);

/* http_answer.c: body is malloc'd and taken (libmicrohttpd frees it); json is stolen. */
enum MHD_Result http_send_body(request *r, int code, const char *content_type, char *body,
                               size_t len, api_status st);
enum MHD_Result http_send_json(request *r, int code, json_t *body, api_status st);
enum MHD_Result http_send_error(request *r, api_status st, const char *message);
void http_add_cors_headers(request *r, struct MHD_Response *resp);

/* http_screen.c */
enum MHD_Result http_screen_request(request *r);
bool http_cors_allows(const char *allowed, const char *origin);

/* The body a POST route that is not inference may have (the v2 repository's): drained, never
 * stored or charged to max_buffered_bytes. */
#define HTTP_SMALL_BODY_MAX 65536

/* http_body.c: the checks return API_OK, or the status to answer with msg. */
bool http_has_body(struct MHD_Connection *conn);
/* Content-Encoding of a POST body: identity, or an inflater for gzip and deflate. */
api_status http_start_body_decoding(request *r, char *msg, size_t msglen);
/* Takes n more bytes of max_buffered_bytes for r; false when they are not there. */
bool http_reserve(request *r, long long n);
/* The 503 of a request the buffered-bytes budget cannot hold. */
api_status http_over_budget(const request *r, char *msg, size_t msglen);
/* One piece of the body: stored, counted, or cut (MHD_NO closes the connection). */
enum MHD_Result http_take_body(request *r, const char *upload_data, size_t *upload_data_size);
/* The body has fully arrived: over the budget, not valid gzip or deflate, or ready to parse. */
api_status http_finish_body(request *r, char *msg, size_t msglen);
/* The body as the parsers read it (inflated, or as sent); borrowed from r. */
const unsigned char *http_body_bytes(const request *r, size_t *len);

/* http_infer.c */
/* r's deadline on clock_monotonic_ns(): request_timeout_ms, or X-Request-Timeout-Ms if shorter. */
int64_t http_deadline_ns(request *r);
/* Submits r->job to b and suspends the connection: API_OK, or the status to answer with msg. */
api_status http_submit_job(request *r, batcher *b, char *msg, size_t msglen);
/* A job for the version of model name (version 0: the latest served) that the repository
 * serves, holding it until the job is freed, and the input format of that version (*input).
 * NULL with *st and msg: unknown (404), not ready (503), out of memory. */
inference_job *http_job_for(request *r, const char *name, long long version,
                            job_answer_kind answer, image_input_format *input, batcher **b,
                            api_status *st, char *msg, size_t msglen);
enum MHD_Result http_classify_body_done(request *r);
enum MHD_Result http_job_answered(request *r);

/* http_v2.c */
enum MHD_Result http_v2_answer(request *r);
enum MHD_Result http_v2_infer_body_done(request *r);
/* A repository load or unload finished (its completion resumed the connection): answer it. */
enum MHD_Result http_v2_control_answered(request *r);

/* http_log.c: at completion, the request's status (explaining one that got no answer of ours)
 * into the metrics; then its access log line. */
void http_count_request(request *r, enum MHD_RequestTerminationCode toe);
void http_access_log(request *r);

/* http_listen.c */
int http_start_listeners(http_server *s, char *err, size_t errlen);
void http_free_tls(http_server *s);

#endif
