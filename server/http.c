/* http.c - libmicrohttpd handlers for the vggserve API. */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "byte_buffer.h"
#include "classify_request.h"
#include "clock.h"
#include "content_coding.h"
#include "demo_page.h"
#include "errors.h"
#include "guard.h"
#include "inference_job.h"
#include "job_answer.h"
#include "kserve_v2.h"
#include "labels.h"
#include "log.h"
#include "responses.h"
#include "trace_context.h"

/* The network's input side; preprocessing resizes every image to this square. */
#define IMAGE_HW VGG_INPUT_HW
/* Answers at least this long are compressed for a client that accepts gzip or deflate; below
 * it the header costs more than it saves. */
#define COMPRESS_MIN_BYTES 1024

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
    /* The model being served: &loading_model (its name, no explanations) until
     * http_server_serve() points it at served, once, before the state turns ready. */
    const served_model *_Atomic model;
    served_model loading_model, served;
    classify_limits limits; /* made with served; read only once the state is ready */
    batcher *_Atomic batcher;
    atomic_int pending; /* accepted classify requests not yet completed */
    arrivals arrivals;  /* inference uploads between their headers and the queue */
    atomic_ullong next_id;
    unsigned id_prefix;
    pthread_mutex_t log_lock;
    char *tls_cert, *tls_key; /* PEM text, owned; the key is wiped before it is freed */
};

typedef enum {
    ROUTE_NONE,
    ROUTE_CLASSIFY,
    ROUTE_EXPLAIN, /* POST /explain: /classify with Grad-CAM maps */
    ROUTE_HEALTHZ,
    ROUTE_READYZ,
    ROUTE_METRICS,
    ROUTE_DEMO,       /* GET /, when demo_page is on */
    ROUTE_V2,         /* KServe v2 health, metadata, config, stats, repository (v2_route) */
    ROUTE_V2_INFER,   /* POST /v2/models/M[/versions/1]/infer */
    ROUTE_V2_MISSING, /* under /v2 but unknown: a v2-shaped 404 */
} route;

/* Routes that run the network (and count in the per-model statistics). */
static bool route_is_inference(route rt) {
    return rt == ROUTE_CLASSIFY || rt == ROUTE_V2_INFER || rt == ROUTE_EXPLAIN;
}

/* Routes a page on another origin may call when cors_allowed_origins allows it. */
static bool route_allows_cors(route rt) {
    return rt == ROUTE_CLASSIFY || rt == ROUTE_EXPLAIN || rt == ROUTE_V2 || rt == ROUTE_V2_INFER;
}

/* KServe v2 routes answer errors in the protocol's shape, {"error": "message"}. */
static bool route_is_v2(route rt) {
    return rt == ROUTE_V2 || rt == ROUTE_V2_INFER || rt == ROUTE_V2_MISSING;
}

/* One HTTP request, from its request line (on_uri: MHD's URI log callback allocates it, with
 * the path as sent) to MHD's completion callback. srv is NULL until on_request's first call:
 * a request libmicrohttpd refused itself (414, 431, a bad Content-Length) never gets one. */
typedef struct {
    http_server *srv;
    const listener *listener;
    struct MHD_Connection *conn;
    guard_conn *gc;         /* the connection's deadlines */
    bool raw_path_smuggles; /* the path as sent holds %00 or an encoded '/' */
    bool headers_seen;      /* on_request ran: the guard knows the headers came */
    bool body_seen;         /* the last on_request call came: the whole body is here */
    bool over_budget;       /* max_buffered_bytes was full: drained, answered 503 */
    long long reserved;     /* bytes of the budget this request holds */
    route route;
    kserve_v2_view view; /* the v2 model view the path names (FULL for /classify) */
    char *url;           /* the whole path, owned (path below is cut for the log) */
    char id[48];
    char method[8];
    char path[128];
    int64_t start_ns;
    bool screened; /* screen_request() ran: the checks that need only the headers */
    /* body */
    byte_buffer stored; /* the body as sent, unless it is compressed (then the inflater's) */
    size_t received;    /* body bytes as sent (compressed, when they are), stored or not */
    bool body_too_large;
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
    kserve_v2_route v2_route;
    pthread_mutex_t lock; /* orders suspend (HTTP thread) before resume (worker) */
    bool suspended, done, queued;
    arrival arrival; /* counted in srv->arrivals until queued or refused */
    bool body_timed_out; /* take_body cut it: connection_timeout_s */
    /* answer, for the access log */
    const char *www_authenticate; /* static challenge for a 401 */
    int http_code;
    size_t response_bytes;
    char error[256];
} request;

static void arrived(request *r);
static bool route_is_post(const request *r);

static bool reserve(request *r, long long n);
static enum MHD_Result refuse_over_budget(request *r);
static void make_request_id(http_server *s, struct MHD_Connection *conn, char *out, size_t cap);
static void start_trace(request *r);

/* The guard's record of conn (on_connection put it in the socket context). */
static guard_conn *connection_guard(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static double ms_between(int64_t a_ns, int64_t b_ns) { return (b_ns - a_ns) / 1e6; }

/* ---------------------------------------------------------------- answering */

/* Replaces *body by its compressed form when the client accepts one and it pays. */
static const char *compress_answer(request *r, char **body, size_t *len) {
    if (r->answer_coding == CONTENT_CODING_IDENTITY || *len < COMPRESS_MIN_BYTES) return NULL;
    uint8_t *z;
    size_t zlen;
    if (content_coding_compress(r->answer_coding, *body, *len, &z, &zlen) != 0) return NULL;
    if (zlen >= *len) { /* incompressible: random-looking floats can be */
        free(z);
        return NULL;
    }
    free(*body);
    *body = (char *)z;
    *len = zlen;
    return content_coding_name(r->answer_coding);
}

static void add_cors_headers(request *r, struct MHD_Response *resp) {
    if (!r->cors_origin) return;
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", r->cors_origin);
    MHD_add_response_header(resp, "Access-Control-Expose-Headers",
                            "X-Request-Id, Inference-Header-Content-Length, X-Explained-Class, "
                            "traceparent, Retry-After");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Origin, Accept-Encoding");
}

static enum MHD_Result send_body(request *r, int code, const char *content_type, char *body,
                                 size_t len, api_status st) {
    const char *coding = compress_answer(r, &body, &len);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (content_type) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, "X-Request-Id", r->id);
    MHD_add_response_header(resp, "traceparent", r->traceparent);
    if (coding) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING, coding);
    if (r->cors_origin) add_cors_headers(r, resp);
    else if (coding) MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Accept-Encoding");
    if (st == API_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
                                route_is_post(r) ? "POST" : "GET, HEAD");
    if (r->answer_header) MHD_add_response_header(resp, r->answer_header, r->answer_header_value);
    if (r->route == ROUTE_DEMO)
        MHD_add_response_header(resp, "Content-Security-Policy", DEMO_PAGE_CSP);
    if (api_status_retry_after(st)) MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (st == API_UNAUTHORIZED && r->www_authenticate)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, r->www_authenticate);
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)code, resp);
    MHD_destroy_response(resp);
    r->http_code = code;
    r->response_bytes = len;
    return ret;
}

static enum MHD_Result send_json(request *r, int code, json_t *body, api_status st) {
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(7)) : NULL;
    json_decref(body);
    if (!text) { /* a body jansson refused (never expected: messages are sanitised) */
        text = strdup("{\"error\":{\"code\":500,\"type\":\"internal_error\","
                      "\"message\":\"the answer could not be encoded\"}}");
        if (!text) return MHD_NO;
        code = 500;
        st = API_INTERNAL;
    }
    size_t len = strlen(text);
    /* json_dumps allocates with malloc, which MHD_RESPMEM_MUST_FREE frees. */
    return send_body(r, code, "application/json", text, len, st);
}

static enum MHD_Result send_error(request *r, api_status st, const char *message) {
    arrived(r);
    size_t n = strnlen(message, sizeof r->error - 1); /* the log keeps the start */
    memcpy(r->error, message, n);
    r->error[n] = '\0';
    metrics_add_rejected(r->srv->metrics, st);
    json_t *body = route_is_v2(r->route) ? kserve_v2_error_json(message)
                                          : api_error_json(st, message);
    return send_json(r, api_status_http(st), body, st);
}

/* ---------------------------------------------------------------- logging */

static void access_log(request *r) {
    http_server *s = r->srv;
    double total_ms = ms_between(r->start_ns, clock_monotonic_ns());
    double queue_ms = r->queued ? r->job->max_queue_ns / 1e6 : 0;
    double infer_ms = r->queued ? r->job->inference_ns / 1e6 : 0;
    unsigned long long batch = r->queued ? (unsigned long long)r->job->last_batch_id : 0;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char ts[32];
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    /* Method, path and error may hold client bytes: keep log lines one line of valid UTF-8. */
    char method[sizeof r->method], path[sizeof r->path], error[sizeof r->error];
    api_utf8_sanitize(r->method, method, sizeof method);
    api_utf8_sanitize(r->path, path, sizeof path);
    api_utf8_sanitize(r->error, error, sizeof error);
    pthread_mutex_lock(&s->log_lock);
    if (s->cfg->log_format == ACCESS_LOG_LOGFMT) {
        printf("ts=%s.%03ldZ request_id=%s trace_id=%s method=%s path=%s status=%d bytes=%zu "
               "images=%d queue_ms=%.2f inference_ms=%.2f total_ms=%.2f batch_id=%llu",
               ts, now.tv_nsec / 1000000, r->id, r->trace_id, method, path, r->http_code,
               r->response_bytes, r->n_images, queue_ms, infer_ms, total_ms, batch);
        if (error[0]) {
            printf(" error=\"");
            for (const char *c = error; *c; c++) printf(*c == '"' ? "\\\"" : "%c", *c);
            printf("\"");
        }
        printf("\n");
    } else {
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:I, s:i, s:f, s:f, s:f, s:I}", "ts",
                              ts, "request_id", r->id, "trace_id", r->trace_id, "method",
                              method, "path", path, "status",
                              r->http_code, "bytes", (json_int_t)r->response_bytes, "images",
                              r->n_images, "queue_ms", queue_ms, "inference_ms", infer_ms,
                              "total_ms", total_ms, "batch_id", (json_int_t)batch);
        if (error[0]) json_object_set_new(o, "error", json_string(error));
        char *line = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
        puts(line);
        free(line);
        json_decref(o);
    }
    fflush(stdout);
    pthread_mutex_unlock(&s->log_lock);
}

static metrics_endpoint endpoint_of(route rt) {
    switch (rt) {
    case ROUTE_CLASSIFY: return METRICS_EP_CLASSIFY;
    case ROUTE_HEALTHZ: return METRICS_EP_HEALTHZ;
    case ROUTE_READYZ: return METRICS_EP_READYZ;
    case ROUTE_METRICS: return METRICS_EP_METRICS;
    case ROUTE_V2_INFER: return METRICS_EP_V2_INFER;
    case ROUTE_V2:
    case ROUTE_V2_MISSING: return METRICS_EP_V2;
    case ROUTE_DEMO: return METRICS_EP_DEMO;
    case ROUTE_EXPLAIN: return METRICS_EP_EXPLAIN;
    default: return METRICS_EP_OTHER;
    }
}

/* The request is queued, refused or gone: no longer on its way to the batcher. */
static void arrived(request *r) { arrivals_end(&r->srv->arrivals, &r->arrival); }

/* The per-model statistics (Triton's statistics extension reads them back). */
static void observe_inference(request *r, double total_s) {
    bool ok = r->http_code == 200;
    metrics_inference x = {
        .ok = ok,
        .images = r->queued && r->job->status == JOB_OK ? r->n_images : 0,
        .total_s = total_s,
        .queue_s = r->queued ? r->job->max_queue_ns / 1e9 : 0,
        .input_s = r->job ? r->job->decode_ms / 1e3 : 0,
        .infer_s = r->queued ? r->job->inference_ns / 1e9 : 0,
        .output_s = r->output_ns / 1e9,
    };
    metrics_observe_inference(r->srv->metrics, (int)r->view, &x);
}

/* What ended a request that got no answer of ours: libmicrohttpd's own answer (414, 431, a
 * malformed request), the guard's deadline, the shutdown, or the client leaving (499, as
 * nginx counts it). Sets http_code, error and the rejection reason. */
static void explain_unanswered(request *r, enum MHD_RequestTerminationCode toe) {
    http_server *s = r->srv;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_HTTP_STATUS);
    unsigned mhd_status = ci ? ci->http_status : 0;
    api_status why = API_OK;
    if (mhd_status >= 400) { /* libmicrohttpd answered it itself */
        r->http_code = (int)mhd_status;
        why = mhd_status == 431 ? API_HEADERS_TOO_LARGE
              : mhd_status == 414 ? API_URI_TOO_LONG
              : mhd_status == 413 ? API_BODY_TOO_LARGE
                                  : API_FRAMING;
        snprintf(r->error, sizeof r->error, "refused by libmicrohttpd (%u)", mhd_status);
    } else if ((why = guard_conn_expired(s->guard, r->gc)) != API_OK) {
        guard_mark_reported(s->guard, r->gc);
        r->http_code = api_status_http(why);
        snprintf(r->error, sizeof r->error, "%s", why == API_HEADER_TIMEOUT
                 ? "headers not complete within header_timeout_s: connection closed"
                 : "body not complete within connection_timeout_s: connection closed");
    } else if (toe == MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN) {
        why = API_SHUTDOWN;
        r->http_code = api_status_http(why);
        snprintf(r->error, sizeof r->error, "the upload was still arriving when the shutdown "
                 "grace ran out: connection closed");
    } else {
        if (r->body_timed_out) why = API_BODY_TIMEOUT;
        r->http_code = why == API_BODY_TIMEOUT ? api_status_http(why) : 499;
        if (!r->error[0])
            snprintf(r->error, sizeof r->error, "connection ended before the answer was sent (%d)",
                     (int)toe);
    }
    if (why != API_OK) metrics_add_rejected(s->metrics, why);
}

/* Our answer was queued, but the connection failed before libmicrohttpd had written it all:
 * the client left (a reset made the write fail), so it never saw the answer. Logged and
 * counted as 499, like an unanswered request, with the status it missed in the error. An
 * answer written whole before the client left is not known to be lost and keeps its status. */
static void note_lost_answer(request *r, enum MHD_RequestTerminationCode toe) {
    if (toe != MHD_REQUEST_TERMINATED_WITH_ERROR && toe != MHD_REQUEST_TERMINATED_READ_ERROR &&
        toe != MHD_REQUEST_TERMINATED_CLIENT_ABORT)
        return;
    size_t n = strlen(r->error);
    snprintf(r->error + n, sizeof r->error - n, "%sconnection ended before the answer (%d) was "
             "sent", n ? "; " : "", r->http_code);
    r->http_code = 499;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe) {
    request *r = *req_cls;
    if (!r) return;
    if (!r->srv) { /* refused by libmicrohttpd before on_request: log it all the same */
        r->srv = ((const listener *)cls)->srv;
        r->conn = conn;
        r->start_ns = clock_monotonic_ns();
        r->gc = connection_guard(conn);
        snprintf(r->method, sizeof r->method, "-");
        make_request_id(r->srv, conn, r->id, sizeof r->id);
        start_trace(r);
        metrics_add_in_flight(r->srv->metrics, 1);
        pthread_mutex_init(&r->lock, NULL);
    }
    http_server *s = r->srv;
    if (r->http_code == 0) explain_unanswered(r, toe);
    else note_lost_answer(r, toe);
    double total_s = ms_between(r->start_ns, clock_monotonic_ns()) / 1e3;
    metrics_observe_request(s->metrics, endpoint_of(r->route), r->http_code, total_s);
    if (route_is_inference(r->route)) observe_inference(r, total_s);
    metrics_add_in_flight(s->metrics, -1);
    arrived(r);
    access_log(r);
    guard_answered(s->guard, r->gc);
    guard_release(s->guard, r->reserved);
    if (r->queued) atomic_fetch_sub(&s->pending, 1);
    pthread_mutex_destroy(&r->lock);
    byte_buffer_free(&r->stored);
    free(r->url);
    content_inflater_free(r->inflater);
    inference_job_free(r->job);
    free(r);
    *req_cls = NULL;
}

/* ---------------------------------------------------------------- classify */

/* The job's one completion (on a worker thread, or the draining one): resume the suspended
 * connection, whose handler then answers from the job. */
static void on_inference_done(inference_job *job) {
    request *r = job->user;
    pthread_mutex_lock(&r->lock);
    r->done = true;
    if (r->suspended) {
        r->suspended = false;
        MHD_resume_connection(r->conn);
    }
    pthread_mutex_unlock(&r->lock);
}

/* The client may shorten the deadline, never lengthen it. */
static int64_t deadline_of(request *r) {
    const char *v = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-Request-Timeout-Ms");
    return r->start_ns + classify_timeout_ms(v, r->srv->cfg->request_timeout_ms) * 1000000;
}

/* Queues r->job for the workers and suspends the connection; the worker that finishes its
 * last image resumes it (on_inference_done). */
static enum MHD_Result submit_inference(request *r) {
    http_server *s = r->srv;
    inference_job *job = r->job;
    char msg[160];
    batcher *b = atomic_load(&s->batcher);
    service_state state = atomic_load(&s->state);
    /* An upload that was arriving when the drain began is still computed: the drain waits
     * for arrivals before it stops the batcher (cli/serve.c). */
    bool admitted = state == SERVICE_READY || (state == SERVICE_DRAINING && r->arrival.counted);
    if (!admitted || !b) {
        snprintf(msg, sizeof msg, "service is %s", service_state_name(atomic_load(&s->state)));
        return send_error(r, API_NOT_READY, msg);
    }
    if (inference_job_alloc_results(job) != 0) return send_error(r, API_INTERNAL, "out of memory");
    job->deadline_ns = deadline_of(r);
    job->on_complete = on_inference_done;
    job->user = r;
    pthread_mutex_lock(&r->lock);
    batcher_submit_result sr = batcher_submit(b, job);
    if (sr == BATCHER_OK) {
        r->queued = true;
        atomic_fetch_add(&s->pending, 1);
        r->suspended = true;
        MHD_suspend_connection(r->conn);
    }
    arrived(r); /* after the images are in the queue, so the batcher never sees a gap */
    pthread_mutex_unlock(&r->lock);
    if (sr == BATCHER_FULL) {
        snprintf(msg, sizeof msg, "queue is full (%lld images); retry later",
                 s->cfg->queue_capacity);
        return send_error(r, API_QUEUE_FULL, msg);
    }
    if (sr == BATCHER_STOPPED) return send_error(r, API_NOT_READY, "service is draining");
    return MHD_YES;
}

/* The body as the parsers read it: inflated, or as it was sent. */
static const unsigned char *body_bytes(const request *r, size_t *len) {
    if (r->body_is_inflated) return (const unsigned char *)content_inflater_data(r->inflater, len);
    *len = r->stored.len;
    return r->stored.data;
}

/* POST /classify and /explain: the body and query to a job, submitted. */
static enum MHD_Result classify_body_done(request *r) {
    http_server *s = r->srv;
    char msg[800];
    r->job = inference_job_new(atomic_load(&s->model), r->route == ROUTE_EXPLAIN
                                                           ? JOB_ANSWER_EXPLAIN_JSON
                                                           : JOB_ANSWER_CLASSIFY);
    if (!r->job) return send_error(r, API_INTERNAL, "out of memory");
    classify_http_request in = {
        .content_type = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                    MHD_HTTP_HEADER_CONTENT_TYPE),
        .top_k = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "top_k"),
        .body_over_limit = r->body_too_large,
    };
    in.body = body_bytes(r, &in.body_len);
    const classify_explain_request explain = {
        .class_id = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "class_id"),
        .accept = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT),
    };
    api_status st = classify_job_parse(&in, &explain, &s->limits, r->job, msg, sizeof msg);
    r->n_images = r->job->n_images;
    if (st != API_OK) return send_error(r, st, msg);
    return submit_inference(r);
}

/* Answers a job the workers finished, with what the answer writer made of it. */
static enum MHD_Result job_answered(request *r) {
    const int64_t t0 = clock_monotonic_ns();
    job_answer a;
    char msg[200];
    api_status st = job_answer_write(r->job, r->id, r->start_ns, &a, msg, sizeof msg);
    if (st != API_OK) {
        enum MHD_Result res = send_error(r, st, msg);
        if (r->job->status == JOB_OK) r->output_ns = clock_monotonic_ns() - t0;
        return res;
    }
    if (!a.compressible) r->answer_coding = CONTENT_CODING_IDENTITY;
    if (a.header) {
        r->answer_header = a.header;
        memcpy(r->answer_header_value, a.header_value, sizeof r->answer_header_value);
    }
    enum MHD_Result res = a.json ? send_json(r, 200, a.json, API_OK)
                                 : send_body(r, 200, a.content_type, a.body, a.len, API_OK);
    r->output_ns = clock_monotonic_ns() - t0;
    return res;
}

/* ---------------------------------------------------------------- KServe v2, demo page */

static kserve_v2_model_facts facts_of(const http_server *s) {
    const served_model *m = atomic_load(&s->model);
    kserve_v2_model_facts f = {
        .model = s->cfg->model,
        .image_hw = m->image_hw,
        .n_classes = m->n_classes,
        .max_images_per_request = (int)s->cfg->max_images_per_request,
        .max_batch = (int)s->cfg->max_batch_size,
        .max_queue_delay_us = s->cfg->max_queue_delay_us,
        .workers = (int)s->cfg->workers,
        .ready = atomic_load(&s->state) == SERVICE_READY,
        .gradcam_hw = m->explain_hw,
    };
    return f;
}

/* Triton's statistics, read from the counters /metrics renders. */
static json_t *v2_stats_json(const http_server *s, kserve_v2_view v) {
    kserve_v2_view_stats views[KSERVE_V2_VIEW_COUNT];
    kserve_v2_engine_stats engine;
    for (int i = 0; i < KSERVE_V2_VIEW_COUNT; i++) {
        metrics_model_totals t;
        metrics_model_totals_get(s->metrics, i, &t);
        views[i] = (kserve_v2_view_stats){
            t.images, t.last_unix_ms,
            {t.success.count, t.success.ns}, {t.fail.count, t.fail.ns},
            {t.queue.count, t.queue.ns}, {t.input.count, t.input.ns},
            {t.infer.count, t.infer.ns}, {t.output.count, t.output.ns}};
    }
    engine.execution_count = metrics_batches_run(s->metrics);
    for (int b = 1; b <= KSERVE_V2_MAX_BATCH_STATS; b++) {
        metrics_duration d = metrics_batch_size_totals(s->metrics, b);
        engine.batch_infer[b - 1] = (kserve_v2_duration){d.count, d.ns};
    }
    return kserve_v2_stats_json(s->cfg->model, v, views, &engine);
}

/* The bodies come from api/kserve_v2.c; only headers, state and the queue are handled here. */
static enum MHD_Result v2_answer_get(request *r) {
    http_server *s = r->srv;
    bool ready = atomic_load(&s->state) == SERVICE_READY;
    const kserve_v2_model_facts f = facts_of(s);
    char name[KSERVE_V2_MAX_NAME];
    kserve_v2_view_name(s->cfg->model, r->view, name, sizeof name);
    if (!ready &&
        (r->v2_route == KSERVE_V2_ROUTE_READY || r->v2_route == KSERVE_V2_ROUTE_MODEL_READY))
        snprintf(r->error, sizeof r->error, "service is %s",
                 service_state_name(atomic_load(&s->state)));
    switch (r->v2_route) {
    case KSERVE_V2_ROUTE_SERVER_METADATA:
        return send_json(r, 200, kserve_v2_server_metadata_json(), API_OK);
    case KSERVE_V2_ROUTE_LIVE:
        return send_json(r, 200, json_pack("{s:b}", "live", 1), API_OK);
    case KSERVE_V2_ROUTE_READY:
        return send_json(r, ready ? 200 : 503, json_pack("{s:b}", "ready", ready),
                         ready ? API_OK : API_NOT_READY);
    case KSERVE_V2_ROUTE_MODEL_READY:
        return send_json(r, ready ? 200 : 503, json_pack("{s:s, s:b}", "name", name, "ready", ready),
                         ready ? API_OK : API_NOT_READY);
    case KSERVE_V2_ROUTE_MODEL_METADATA:
        return send_json(r, 200, kserve_v2_model_metadata_json(&f, r->view), API_OK);
    case KSERVE_V2_ROUTE_MODEL_CONFIG:
        return send_json(r, 200, kserve_v2_model_config_json(&f, r->view), API_OK);
    case KSERVE_V2_ROUTE_MODEL_STATS:
        return send_json(r, 200, v2_stats_json(s, r->view), API_OK);
    case KSERVE_V2_ROUTE_ALL_STATS:
        return send_json(r, 200, v2_stats_json(s, KSERVE_V2_VIEW_COUNT), API_OK);
    case KSERVE_V2_ROUTE_REPOSITORY_INDEX:
        return send_json(r, 200, kserve_v2_repository_index_json(&f), API_OK);
    case KSERVE_V2_ROUTE_REPOSITORY_CONTROL:
        return send_error(r, API_BAD_REQUEST, "models cannot be loaded or unloaded: the model "
                          "set is fixed at start-up (POST /v2/repository/index lists it)");
    default:
        return send_error(r, API_INTERNAL, "unroutable");
    }
}

/* POST /v2/models/M/infer: the body to a job, submitted. */
static enum MHD_Result v2_infer_body_done(request *r) {
    char msg[800];
    r->job = inference_job_new(atomic_load(&r->srv->model), JOB_ANSWER_V2);
    if (!r->job) return send_error(r, API_INTERNAL, "out of memory");
    kserve_v2_http_request in = {
        .view = r->view,
        .header_length = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                     "Inference-Header-Content-Length"),
        .body_over_limit = r->body_too_large,
    };
    in.body = body_bytes(r, &in.body_len);
    api_status st = kserve_v2_job_parse(&in, &r->srv->limits, r->job, msg, sizeof msg);
    r->n_images = r->job->n_images;
    if (st != API_OK) return send_error(r, st, msg);
    return submit_inference(r);
}

static enum MHD_Result demo_answer(request *r) {
    size_t len;
    const char *page = demo_page_html(&len);
    char *copy = malloc(len); /* send_body hands MHD a buffer to free */
    if (!copy) return send_error(r, API_INTERNAL, "out of memory");
    memcpy(copy, page, len);
    return send_body(r, 200, "text/html; charset=utf-8", copy, len, API_OK);
}

/* ---------------------------------------------------------------- routing */

static route route_of(const http_server *s, const char *url, kserve_v2_route *v2,
                      kserve_v2_view *view) {
    *view = KSERVE_V2_VIEW_FULL;
    if (strcmp(url, "/classify") == 0) return ROUTE_CLASSIFY;
    if (strcmp(url, "/explain") == 0) return ROUTE_EXPLAIN;
    if (strcmp(url, "/healthz") == 0) return ROUTE_HEALTHZ;
    if (strcmp(url, "/readyz") == 0) return ROUTE_READYZ;
    if (strcmp(url, "/metrics") == 0) return ROUTE_METRICS;
    if (strcmp(url, "/") == 0 && s->cfg->demo_page) return ROUTE_DEMO;
    switch (*v2 = kserve_v2_route_parse(url, s->cfg->model, view, NULL, 0)) {
    case KSERVE_V2_ROUTE_NONE: return ROUTE_NONE;
    case KSERVE_V2_ROUTE_NOT_FOUND: return ROUTE_V2_MISSING;
    case KSERVE_V2_ROUTE_INFER: return ROUTE_V2_INFER;
    default: return ROUTE_V2;
    }
}

static void make_request_id(http_server *s, struct MHD_Connection *conn, char *out, size_t cap) {
    /* Keep a caller's id when it is short and plain, so logs join across services. */
    const char *given = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
    if (given) {
        size_t n = strlen(given);
        bool ok = n > 0 && n < cap && n <= 40;
        for (size_t i = 0; ok && i < n; i++)
            ok = (given[i] >= '0' && given[i] <= '9') || (given[i] >= 'a' && given[i] <= 'z') ||
                 (given[i] >= 'A' && given[i] <= 'Z') || given[i] == '-' || given[i] == '_';
        if (ok) {
            snprintf(out, cap, "%s", given);
            return;
        }
    }
    snprintf(out, cap, "%08x-%06llu", s->id_prefix,
             (unsigned long long)atomic_fetch_add(&s->next_id, 1) + 1);
}

/* Inference always needs the token when one is set; health and metrics only when asked. */
static bool needs_auth(const vggserve_config *cfg, route rt) {
    if (!cfg->auth_token[0]) return false;
    switch (rt) {
    case ROUTE_CLASSIFY:
    case ROUTE_EXPLAIN:
    case ROUTE_V2_INFER: return true;
    case ROUTE_V2: return cfg->auth_health; /* v2 health and metadata */
    case ROUTE_METRICS: return cfg->auth_metrics;
    case ROUTE_HEALTHZ:
    case ROUTE_READYZ: return cfg->auth_health;
    default: return false;
    }
}

/* Routes answered to POST only; every other route answers GET and HEAD. */
static bool route_is_post(const request *r) {
    return route_is_inference(r->route) ||
           (r->route == ROUTE_V2 && kserve_v2_route_is_post(r->v2_route));
}

static enum MHD_Result answer_get(request *r) {
    http_server *s = r->srv;
    switch (r->route) {
    case ROUTE_HEALTHZ:
        return send_json(r, 200, json_pack("{s:s}", "status", "ok"), API_OK);
    case ROUTE_READYZ: {
        service_state st = atomic_load(&s->state);
        if (st == SERVICE_READY) return send_json(r, 200, json_pack("{s:s}", "status", "ready"), API_OK);
        char msg[64];
        snprintf(msg, sizeof msg, "service is %s", service_state_name(st));
        json_t *body = api_error_json(API_NOT_READY, msg);
        json_object_set_new(body, "status", json_string(service_state_name(st)));
        snprintf(r->error, sizeof r->error, "%s", msg);
        return send_json(r, 503, body, API_NOT_READY);
    }
    case ROUTE_METRICS: {
        size_t len;
        char *text = metrics_render(s->metrics, &len);
        return send_body(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, API_OK);
    }
    case ROUTE_V2: return v2_answer_get(r);
    case ROUTE_DEMO: return demo_answer(r);
    default:
        return send_error(r, API_INTERNAL, "unroutable");
    }
}

/* The caller's trace (a valid traceparent) or a fresh one; our span id in the answer. */
static void start_trace(request *r) {
    uint8_t rnd[24];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) { /* never expected */
        uint64_t t = (uint64_t)r->start_ns ^ (uint64_t)(uintptr_t)r;
        for (size_t i = 0; i < sizeof rnd; i++) rnd[i] = (uint8_t)(t >> (8 * (i % 8))) ^ (uint8_t)i;
    }
    trace_context tc;
    const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "traceparent");
    uint8_t flags = 0;
    if (trace_context_parse(h, &tc)) {
        memcpy(r->trace_id, tc.trace_id, sizeof r->trace_id);
        flags = tc.flags;
    } else {
        trace_context_hex(rnd, 16, r->trace_id);
    }
    char span[17];
    trace_context_hex(rnd + 16, 8, span);
    trace_context_format(r->trace_id, span, flags, r->traceparent);
}

/* "*" allows every origin; otherwise the comma-separated list must name it. */
static bool cors_allows(const char *allowed, const char *origin) {
    if (!allowed[0] || !origin || !origin[0]) return false; /* an empty Origin names no page */
    if (strcmp(allowed, "*") == 0) return true;
    size_t n = strlen(origin);
    for (const char *p = allowed; *p;) {
        while (*p == ' ' || *p == ',') p++;
        size_t len = strcspn(p, ", ");
        if (len == n && strncasecmp(p, origin, n) == 0) return true;
        p += len;
    }
    return false;
}

/* MHD's URI log callback: the request line is in. The request is allocated here, the only
 * place that sees the path as sent: %00 and %2F are decoded before on_request sees them. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn) {
    (void)cls;
    (void)conn;
    request *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    size_t n = strcspn(uri, "?"); /* the query may carry anything; it is not routed */
    for (size_t i = 0; i + 2 < n; i++)
        if (uri[i] == '%' &&
            (strncmp(uri + i + 1, "00", 2) == 0 || strncasecmp(uri + i + 1, "2f", 2) == 0))
            r->raw_path_smuggles = true;
    return r;
}

/* on_request's first call: the headers are in. Returns -1 when out of memory. */
static int request_init(request *r, const listener *l, struct MHD_Connection *conn,
                        const char *url, const char *method) {
    http_server *s = l->srv;
    if (!(r->url = strdup(url))) return -1;
    r->srv = s;
    r->listener = l;
    r->conn = conn;
    r->gc = connection_guard(conn);
    guard_headers_done(s->guard, r->gc);
    r->start_ns = clock_monotonic_ns();
    r->route = route_of(s, url, &r->v2_route, &r->view);
    pthread_mutex_init(&r->lock, NULL);
    snprintf(r->method, sizeof r->method, "%s", method);
    snprintf(r->path, sizeof r->path, "%s", url);
    make_request_id(s, conn, r->id, sizeof r->id);
    start_trace(r);
    const char *accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_ACCEPT_ENCODING);
    r->answer_coding = content_coding_accepts(accept, CONTENT_CODING_GZIP) ? CONTENT_CODING_GZIP
                       : content_coding_accepts(accept, CONTENT_CODING_DEFLATE)
                           ? CONTENT_CODING_DEFLATE
                           : CONTENT_CODING_IDENTITY;
    const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    if (route_allows_cors(r->route) && cors_allows(s->cfg->cors_allowed_origins, origin))
        r->cors_origin = origin; /* MHD keeps header values until the request completes */
    metrics_add_in_flight(s->metrics, 1);
    return 0;
}

/* A CORS preflight (OPTIONS with Origin) on a route pages may call, when CORS is on. */
static enum MHD_Result answer_preflight(request *r) {
    if (!r->cors_origin) {
        snprintf(r->error, sizeof r->error, "origin not in cors_allowed_origins");
        return send_error(r, API_FORBIDDEN, "this origin may not call the service "
                          "(cors_allowed_origins)");
    }
    arrived(r);
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    add_cors_headers(r, resp);
    MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, HEAD, POST, OPTIONS");
    MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                            "Authorization, Content-Type, Content-Encoding, "
                            "Inference-Header-Content-Length, X-Request-Id, "
                            "X-Request-Timeout-Ms, traceparent");
    MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
    MHD_add_response_header(resp, "X-Request-Id", r->id);
    enum MHD_Result ret = MHD_queue_response(r->conn, MHD_HTTP_NO_CONTENT, resp);
    MHD_destroy_response(resp);
    r->http_code = MHD_HTTP_NO_CONTENT;
    return ret;
}

/* Whether a body follows the headers (Content-Length above 0, or chunked). */
static bool has_body(struct MHD_Connection *conn) {
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_TRANSFER_ENCODING);
    return te || (cl && strspn(cl, "0 \t") != strlen(cl));
}

/* Content-Encoding of a POST body: identity, or an inflater for gzip and deflate. */
static enum MHD_Result start_body_decoding(request *r) {
    const char *ce = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_ENCODING);
    content_coding c = content_coding_parse(ce);
    if (c == CONTENT_CODING_UNSUPPORTED) {
        char msg[160];
        snprintf(msg, sizeof msg, "Content-Encoding '%.64s' is not supported; send gzip, "
                 "deflate or none", ce);
        return send_error(r, API_UNSUPPORTED_MEDIA, msg);
    }
    if (c != CONTENT_CODING_IDENTITY &&
        !(r->inflater = content_inflater_new(c, (size_t)r->srv->cfg->max_body_bytes)))
        return send_error(r, API_INTERNAL, "out of memory");
    return MHD_YES;
}

/* The checks that need only the request line and headers: route, method, token, readiness,
 * length and coding. Answers what fails (and every GET); MHD_YES to go on to the body. */
/* Counts the Content-Length headers (MHD keeps every header line). */
static enum MHD_Result count_content_length(void *cls, enum MHD_ValueKind kind, const char *key,
                                            const char *value) {
    (void)kind;
    (void)value;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) (*(int *)cls)++;
    return MHD_YES;
}

/* Request smuggling and path tricks: anything two parsers could read two ways is refused
 * before it is routed (RFC 9112 6.3: such a message must be treated as an error). */
static enum MHD_Result screen_framing(request *r) {
    int n_cl = 0;
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, count_content_length, &n_cl);
    const char *te = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if (n_cl > 1)
        return send_error(r, API_FRAMING, "more than one Content-Length header");
    if (te && n_cl)
        return send_error(r, API_FRAMING, "Content-Length together with Transfer-Encoding");
    if (te) {
        size_t b = strspn(te, " \t"), len = strlen(te);
        while (len > b && (te[len - 1] == ' ' || te[len - 1] == '\t')) len--;
        if (len - b != 7 || strncasecmp(te + b, "chunked", 7) != 0) {
            char msg[160];
            snprintf(msg, sizeof msg, "Transfer-Encoding '%.64s' is not supported; only chunked", te);
            return send_error(r, API_NOT_IMPLEMENTED, msg);
        }
    }
    if (r->raw_path_smuggles)
        return send_error(r, API_FRAMING, "the path holds an encoded NUL or '/' (%00, %2F)");
    return MHD_YES;
}

/* The admin listener answers health, readiness and metrics only. */
static bool admin_route(route rt) {
    return rt == ROUTE_HEALTHZ || rt == ROUTE_READYZ || rt == ROUTE_METRICS;
}

static enum MHD_Result screen_request(request *r) {
    http_server *s = r->srv;
    r->screened = true;
    enum MHD_Result framing = screen_framing(r);
    if (r->http_code) return framing;
    bool is_get = strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;
    if (r->listener->admin && !admin_route(r->route)) {
        char msg[200];
        snprintf(msg, sizeof msg, "no route %.128s on the admin port (it serves /healthz, "
                 "/readyz and /metrics)", r->url);
        r->route = ROUTE_NONE; /* the service's own error shape, also for /v2 paths */
        return send_error(r, API_NOT_FOUND, msg);
    }
    if (r->route == ROUTE_NONE || r->route == ROUTE_V2_MISSING) {
        char msg[300];
        kserve_v2_view v;
        if (r->route == ROUTE_NONE)
            snprintf(msg, sizeof msg, "no route %.128s; try POST /classify", r->url);
        else kserve_v2_route_parse(r->url, s->cfg->model, &v, msg, sizeof msg);
        return send_error(r, API_NOT_FOUND, msg);
    }
    if (strcmp(r->method, "OPTIONS") == 0 && s->cfg->cors_allowed_origins[0] &&
        route_allows_cors(r->route))
        return answer_preflight(r);
    if (route_is_post(r) ? strcmp(r->method, "POST") != 0 : !is_get) {
        char msg[200];
        snprintf(msg, sizeof msg, "%.16s is not allowed on %.128s", r->method, r->url);
        return send_error(r, API_METHOD_NOT_ALLOWED, msg);
    }
    /* Before any body is read: an unauthenticated client cannot make us buffer it. */
    if (needs_auth(s->cfg, r->route)) {
        char msg[128];
        const char *auth = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                       MHD_HTTP_HEADER_AUTHORIZATION);
        if (api_auth_check(auth, s->cfg->auth_token, msg, sizeof msg, &r->www_authenticate) !=
            API_OK)
            return send_error(r, API_UNAUTHORIZED, msg);
    }
    if (!route_is_post(r)) return answer_get(r);
    if (!route_is_inference(r->route)) return MHD_YES; /* v2 repository: body ignored */
    /* Refuse early what can be refused from the headers alone. */
    service_state st = atomic_load(&s->state);
    if (st != SERVICE_READY) {
        char msg[64];
        snprintf(msg, sizeof msg, "service is %s", service_state_name(st));
        return send_error(r, API_NOT_READY, msg);
    }
    const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    char msg[160];
    if (classify_check_content_length(cl, &s->limits, msg, sizeof msg) != API_OK)
        return send_error(r, API_BODY_TOO_LARGE, msg);
    enum MHD_Result res = start_body_decoding(r);
    if (r->http_code) return res;
    /* The budget: a known length is reserved whole now; a compressed body may inflate to
     * max_body_bytes, so that is reserved; a chunked one reserves as it grows. */
    long long want = r->inflater ? s->cfg->max_body_bytes : cl ? atoll(cl) : 0;
    if (want > 0 && !reserve(r, want)) return refuse_over_budget(r);
    arrivals_begin(&s->arrivals, &r->arrival);
    return MHD_YES;
}

/* Takes n more bytes of max_buffered_bytes for r. */
static bool reserve(request *r, long long n) {
    if (!guard_reserve(r->srv->guard, n)) return false;
    r->reserved += n;
    return true;
}

static enum MHD_Result refuse_over_budget(request *r) {
    char msg[200];
    snprintf(msg, sizeof msg, "uploads in progress hold the whole max_buffered_bytes (%lld "
             "bytes); retry later", guard_buffered(r->srv->guard));
    return send_error(r, API_MEMORY_BUDGET, msg);
}

/* Appends n body bytes (inflated first when the body is compressed). */
static enum MHD_Result store_body(request *r, const uint8_t *data, size_t n) {
    if (r->received + n > (size_t)r->reserved &&
        !reserve(r, (long long)(r->received + n) - r->reserved)) {
        /* Over the budget mid-body: libmicrohttpd cannot answer before the body ends, so
         * the rest is drained unstored and answered 503 then; the bytes go back now. */
        r->over_budget = true;
        byte_buffer_free(&r->stored);
        guard_release(r->srv->guard, r->reserved);
        r->reserved = 0;
        return MHD_YES;
    }
    if (r->inflater) {
        content_status st = content_inflater_feed(r->inflater, data, n);
        if (st == CONTENT_TOO_LARGE) r->body_too_large = true;
        return st == CONTENT_NO_MEMORY ? MHD_NO : MHD_YES; /* other errors: at the end */
    }
    return byte_buffer_append(&r->stored, data, n) ? MHD_YES : MHD_NO;
}

static enum MHD_Result take_body(request *r, const char *upload_data, size_t *upload_data_size) {
    http_server *s = r->srv;
    /* Without Content-Length the limit is enforced while streaming: keep counting, stop
     * storing; a client that goes far past it is cut off. */
    size_t n = *upload_data_size;
    *upload_data_size = 0;
    if (r->http_code || r->over_budget) { /* refused already: let the rest drain */
        r->received += n;
        return MHD_YES;
    }
    /* Slow clients: MHD's timeout is an idle timeout, which a body sent a byte at a time
     * never trips; the whole upload gets connection_timeout_s too. */
    if (clock_monotonic_ns() - r->start_ns > s->cfg->connection_timeout_s * 1000000000LL) {
        snprintf(r->error, sizeof r->error, "body took longer than connection_timeout_s "
                 "(%lld s) to arrive: connection closed", s->cfg->connection_timeout_s);
        r->body_timed_out = true;
        return MHD_NO;
    }
    if (r->body_too_large || r->received + n > (size_t)s->cfg->max_body_bytes) {
        r->body_too_large = true;
        r->received += n;
        return r->received > 4 * (size_t)s->cfg->max_body_bytes ? MHD_NO : MHD_YES;
    }
    enum MHD_Result res = store_body(r, (const uint8_t *)upload_data, n);
    r->received += n;
    return res;
}

/* A compressed body has fully arrived: it becomes the inflated bytes, or a 400. */
static enum MHD_Result finish_body_decoding(request *r) {
    if (!r->inflater || r->body_too_large) return MHD_YES;
    content_status st = content_inflater_finish(r->inflater);
    if (st == CONTENT_TOO_LARGE) {
        r->body_too_large = true;
        return MHD_YES;
    }
    if (st != CONTENT_OK) {
        char msg[160];
        snprintf(msg, sizeof msg, "the body is not valid %s: %s",
                 content_coding_name(content_coding_parse(MHD_lookup_connection_value(
                     r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_ENCODING))),
                 st == CONTENT_TRUNCATED ? "the stream ends early" : "corrupt data");
        return send_error(r, API_BAD_REQUEST, msg);
    }
    /* The inflated bytes stay the inflater's (freed with it in on_completed). */
    r->body_is_inflated = true;
    return MHD_YES;
}

static enum MHD_Result body_done(request *r) {
    if (r->over_budget) return refuse_over_budget(r);
    enum MHD_Result res = finish_body_decoding(r);
    if (r->http_code) return res;
    switch (r->route) {
    case ROUTE_CLASSIFY:
    case ROUTE_EXPLAIN: return classify_body_done(r);
    case ROUTE_V2_INFER: return v2_infer_body_done(r);
    default: return answer_get(r); /* the v2 repository routes */
    }
}

/* MHD calls this for the headers (first call), for each piece of the body, and once more
 * when the request is complete. A request without a body is answered at that last call,
 * which keeps the connection open for the next request; answering from the first call
 * makes MHD close it. A request with one is screened at the first call, so that nothing is
 * buffered for a refused request. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **req_cls) {
    (void)version;
    const listener *l = cls;
    request *r = *req_cls;
    if (!r) return MHD_NO; /* on_uri ran out of memory */
    if (!r->srv) {
        if (request_init(r, l, conn, url, method) != 0) return MHD_NO;
        return has_body(conn) ? screen_request(r) : MHD_YES;
    }
    if (*upload_data_size > 0) return take_body(r, upload_data, upload_data_size);
    if (!r->body_seen) {
        r->body_seen = true;
        guard_body_done(r->srv->guard, r->gc);
    }
    if (r->http_code) return MHD_YES; /* already answered */
    if (!r->screened) {
        enum MHD_Result res = screen_request(r);
        if (r->http_code || res != MHD_YES) return res;
    }
    if (r->queued) {
        pthread_mutex_lock(&r->lock);
        bool done = r->done;
        pthread_mutex_unlock(&r->lock);
        return done ? job_answered(r) : MHD_YES;
    }
    return body_done(r);
}

/* ---------------------------------------------------------------- lifecycle */

/* MHD's connection notifications: every accepted connection is guarded (guard.h) from its
 * accept to its close. A connection the guard cut before it finished any request line is
 * counted here; one with a request line is logged by on_completed. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    http_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_context = ci ? guard_open(s->guard, ci->connect_fd) : NULL;
        return;
    }
    guard_conn *gc = *socket_context;
    api_status why = guard_conn_expired(s->guard, gc);
    if (why != API_OK && !guard_conn_reported(s->guard, gc)) metrics_add_rejected(s->metrics, why);
    guard_close(s->guard, gc);
    *socket_context = NULL;
}

/* libmicrohttpd's own complaints (bind failures, TLS handshakes, closed connections) as JSON
 * lines on stderr, like the start-up events. */
static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
    log_event_fields(LOG_WARNING, "libmicrohttpd", -1, NULL, msg);
}

/* Tries the address first, so that a port in use is reported as such (errno), not as a
 * generic start failure. */
static int check_bind(const struct sockaddr_in *addr, char *err, size_t errlen) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0; /* let MHD report it */
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one); /* as MHD does */
    int rc = bind(fd, (const struct sockaddr *)addr, sizeof *addr);
    int e = errno;
    close(fd);
    if (rc == 0) return 0;
    char host[INET_ADDRSTRLEN] = "?";
    inet_ntop(AF_INET, &addr->sin_addr, host, sizeof host);
    snprintf(err, errlen, "cannot listen on %s:%d: %s%s", host, ntohs(addr->sin_port),
             strerror(e), e == EADDRINUSE ? " (another process has the port; pick another with "
                                            "--port)" : "");
    return -1;
}

/* Reads a PEM file for TLS (start-up: errors name the key and the file). */
static int read_pem(const char *path, const char *key, char **out, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s %s: %s", key, path, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 20, n;
    char *buf = malloc(cap + 1);
    n = buf ? fread(buf, 1, cap, f) : 0;
    bool more = buf && fgetc(f) != EOF;
    fclose(f);
    if (!buf || more || n == 0 || !memmem(buf, n, "-----BEGIN ", 11)) {
        snprintf(err, errlen, "%s %s: %s", key, path,
                 !buf ? "out of memory" : more ? "larger than 1 MiB" : "not a PEM file");
        free(buf);
        return -1;
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
}

static void free_tls(http_server *s) {
    if (s->tls_key) memset(s->tls_key, 0, strlen(s->tls_key));
    free(s->tls_key);
    free(s->tls_cert);
    s->tls_key = s->tls_cert = NULL;
}

/* Reads the certificate and key named by s->cfg into s (both set: HTTPS only). 0, or -1 with
 * err and nothing held. */
static int load_tls(http_server *s, char *err, size_t errlen) {
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        snprintf(err, errlen, "tls_cert_file is set but this libmicrohttpd has no TLS support");
        return -1;
    }
    if (read_pem(s->cfg->tls_cert_file, "tls_cert_file", &s->tls_cert, err, errlen) != 0 ||
        read_pem(s->cfg->tls_key_file, "tls_key_file", &s->tls_key, err, errlen) != 0) {
        free_tls(s);
        return -1;
    }
    return 0;
}

/* max_buffered_bytes = 0: a quarter of the cgroup's memory limit (the container's), at most
 * 256 MiB, and room for at least two whole bodies. */
static long long buffered_budget(const vggserve_config *cfg) {
    if (cfg->max_buffered_bytes > 0) return cfg->max_buffered_bytes;
    long long budget = 256LL << 20;
    FILE *f = fopen("/sys/fs/cgroup/memory.max", "r");
    long long limit = 0;
    if (f) {
        if (fscanf(f, "%lld", &limit) == 1 && limit > 0 && limit / 4 < budget) budget = limit / 4;
        fclose(f);
    }
    if (budget < 2 * cfg->max_body_bytes) budget = 2 * cfg->max_body_bytes;
    return budget;
}

/* Starts one libmicrohttpd daemon on addr for listener l. */
static struct MHD_Daemon *start_daemon(http_server *s, listener *l, struct sockaddr_in *addr,
                                       long long max_connections, long long per_ip, long threads,
                                       bool tls) {
    const vggserve_config *cfg = s->cfg;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG | (tls ? MHD_USE_TLS : 0);
    /* Limits: header memory (431 beyond it); connections in all (beyond it MHD stops
     * accepting: new ones wait in the listen backlog) and per address (closed at once); the
     * idle timeout, which ends silent clients (the guard ends slow ones). */
    struct MHD_OptionItem opts[14];
    int n_opts = 0;
#define ADD_OPTION(o, v, p) opts[n_opts++] = (struct MHD_OptionItem){(o), (intptr_t)(v), (p)}
    ADD_OPTION(MHD_OPTION_SOCK_ADDR, 0, addr);
    ADD_OPTION(MHD_OPTION_CONNECTION_TIMEOUT, cfg->connection_timeout_s, NULL);
    ADD_OPTION(MHD_OPTION_CONNECTION_MEMORY_LIMIT, cfg->max_header_bytes, NULL);
    ADD_OPTION(MHD_OPTION_CONNECTION_LIMIT, max_connections, NULL);
    ADD_OPTION(MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip, NULL);
    ADD_OPTION(MHD_OPTION_NOTIFY_COMPLETED, on_completed, l);
    ADD_OPTION(MHD_OPTION_NOTIFY_CONNECTION, on_connection, s);
    ADD_OPTION(MHD_OPTION_URI_LOG_CALLBACK, on_uri, l);
    /* a pool of one is no pool: libmicrohttpd's own thread serves */
    if (threads > 1) ADD_OPTION(MHD_OPTION_THREAD_POOL_SIZE, threads, NULL);
    if (tls) {
        ADD_OPTION(MHD_OPTION_HTTPS_MEM_CERT, 0, s->tls_cert);
        ADD_OPTION(MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls_key);
    }
    ADD_OPTION(MHD_OPTION_END, 0, NULL);
#undef ADD_OPTION
    return MHD_start_daemon(flags, ntohs(addr->sin_port), NULL, NULL, on_request, l,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, /* first */
                            MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
}

static int bound_port(struct MHD_Daemon *d, int fallback) {
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    return info ? info->port : fallback;
}

static void server_free(http_server *s) {
    guard_free(s->guard);
    free_tls(s);
    pthread_mutex_destroy(&s->log_lock);
    free(s);
}

/* The server before any socket: settings, v2 model names, request ids, the guard thread. */
static http_server *server_create(const vggserve_config *cfg, metrics *m, char *err,
                                  size_t errlen) {
    http_server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->cfg = cfg;
    s->metrics = m;
    s->main_listener = (listener){s, false};
    s->admin_listener = (listener){s, true};
    s->admin_port = -1;
    char names[KSERVE_V2_VIEW_COUNT][KSERVE_V2_MAX_NAME];
    const char *name_ptrs[KSERVE_V2_VIEW_COUNT];
    for (int v = 0; v < KSERVE_V2_VIEW_COUNT; v++) {
        kserve_v2_view_name(cfg->model, (kserve_v2_view)v, names[v], sizeof names[v]);
        name_ptrs[v] = names[v];
    }
    metrics_set_model_names(m, name_ptrs, KSERVE_V2_VIEW_COUNT); /* index = kserve_v2_view */
    s->loading_model = (served_model){.name = cfg->model, .n_classes = LABELS_COUNT,
                                      .image_hw = IMAGE_HW, .image_floats = 3 * IMAGE_HW * IMAGE_HW};
    atomic_store(&s->model, &s->loading_model);
    atomic_store(&s->state, SERVICE_LOADING);
    pthread_mutex_init(&s->log_lock, NULL);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s->id_prefix = (unsigned)(ts.tv_nsec ^ (ts.tv_sec << 20) ^ (unsigned)getpid());
    s->guard = guard_create(cfg->header_timeout_s * 1000000000LL,
                            cfg->connection_timeout_s * 1000000000LL, buffered_budget(cfg));
    if (!s->guard) {
        snprintf(err, errlen, "cannot start the connection guard thread");
        server_free(s);
        return NULL;
    }

    return s;
}

/* Checks the addresses, then starts the main daemon and, when admin_port >= 0, the admin
 * listener. Returns 0, or -1 with err and no daemon running. */
static int start_listeners(http_server *s, char *err, size_t errlen) {
    const vggserve_config *cfg = s->cfg;
    struct sockaddr_in addr, admin_addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)cfg->port);
    if (inet_pton(AF_INET, cfg->host, &addr.sin_addr) != 1) {
        snprintf(err, errlen, "host: '%s' is not an IPv4 address", cfg->host);
        return -1;
    }
    admin_addr = addr;
    admin_addr.sin_port = htons((uint16_t)(cfg->admin_port > 0 ? cfg->admin_port : 0));
    if (check_bind(&addr, err, errlen) != 0 ||
        (cfg->admin_port > 0 && check_bind(&admin_addr, err, errlen) != 0)) {
        return -1;
    }
    long threads = cfg->http_threads ? cfg->http_threads : sysconf(_SC_NPROCESSORS_ONLN);
    if (threads < 1) threads = 1;
    if (threads > cfg->max_connections) threads = (long)cfg->max_connections;
    bool tls = cfg->tls_cert_file[0] && cfg->tls_key_file[0];
    if (tls && load_tls(s, err, errlen) != 0) {
        return -1;
    }
    /* -1: one address may take a quarter of the slots, so three others always find room. */
    long long per_ip = cfg->max_connections_per_ip >= 0 ? cfg->max_connections_per_ip
                       : cfg->max_connections >= 4 ? cfg->max_connections / 4
                                                   : 1;
    s->daemon = start_daemon(s, &s->main_listener, &addr, cfg->max_connections, per_ip, threads,
                             tls);
    if (!s->daemon) {
        if (tls)
            snprintf(err, errlen, "cannot start HTTPS with tls_cert_file %s and tls_key_file %s: "
                     "not a PEM certificate and key, or the key does not match (see the log "
                     "line above)", cfg->tls_cert_file, cfg->tls_key_file);
        else
            snprintf(err, errlen, "cannot start the HTTP server on %s:%lld (see the log line "
                     "above)", cfg->host, cfg->port);
        return -1;
    }
    s->port = bound_port(s->daemon, (int)cfg->port);
    if (cfg->admin_port >= 0) {
        /* Probes and scrapers: a budget of their own, which a flood on the main port cannot
         * take (per address: half of it). One thread is plenty for them. */
        long long admin_per_ip = cfg->admin_max_connections >= 2 ? cfg->admin_max_connections / 2 : 1;
        s->admin_daemon = start_daemon(s, &s->admin_listener, &admin_addr,
                                       cfg->admin_max_connections, admin_per_ip, 1, tls);
        if (!s->admin_daemon) {
            snprintf(err, errlen, "cannot start the admin listener on %s:%lld (see the log line "
                     "above)", cfg->host, cfg->admin_port);
            MHD_stop_daemon(s->daemon);
            s->daemon = NULL;
            return -1;
        }
        s->admin_port = bound_port(s->admin_daemon, (int)cfg->admin_port);
    }
    return 0;
}

http_server *http_server_start(const vggserve_config *cfg, metrics *m, char *err, size_t errlen) {
    http_server *s = server_create(cfg, m, err, errlen);
    if (s && start_listeners(s, err, errlen) != 0) {
        server_free(s);
        return NULL;
    }
    return s;
}

int http_server_port(const http_server *s) { return s->port; }

void http_server_serve(http_server *s, const served_model *m, batcher *b) {
    const vggserve_config *cfg = s->cfg;
    s->served = *m;
    s->limits = (classify_limits){
        .max_body_bytes = cfg->max_body_bytes,
        .max_images = (int)cfg->max_images_per_request,
        .image_hw = m->image_hw,
        .preprocess = m->preprocess,
        .decode = image_decode_options_of(cfg->max_pixels, cfg->decode_scaling,
                                          cfg->exif_orientation),
    };
    atomic_store(&s->model, &s->served); /* after served and limits are whole */
    atomic_store(&s->batcher, b);
}

void http_server_set_state(http_server *s, service_state st) {
    atomic_store(&s->state, st);
    metrics_set_state(s->metrics, st);
}

service_state http_server_state(const http_server *s) { return atomic_load(&s->state); }

int http_server_pending(http_server *s) { return atomic_load(&s->pending); }

const arrivals *http_server_arrivals(const http_server *s) { return &s->arrivals; }

int http_server_admin_port(const http_server *s) { return s->admin_port; }

void http_server_stop(http_server *s) {
    if (!s) return;
    if (s->admin_daemon) MHD_stop_daemon(s->admin_daemon);
    MHD_stop_daemon(s->daemon);
    server_free(s);
}
