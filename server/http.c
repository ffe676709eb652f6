/* http.c - the HTTP front end's lifecycle: a request from its request line to its
 * completion, and the server's start, hand-over and stop. The other jobs are in the
 * http_*.c files (http_internal.h lists them). */
#include "http.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "http_internal.h"
#include "labels.h"
#include "log_queue.h"
#include "trace_context.h"

/* The network's input side, for the v2 metadata answered while the model loads. */
#define IMAGE_HW VGG_INPUT_HW

/* The access log's buffer (about 5,000 lines), and how long the shutdown waits for stdout. */
#define ACCESS_LOG_BUFFER_BYTES (1u << 20)
#define ACCESS_LOG_FLUSH_MS 2000

/* A request that held this much of the budget gives the memory back to the OS when it ends. */
#define TRIM_AFTER_BYTES (4LL << 20)

/* The request is queued, refused or gone: no longer on its way to the batcher. */
void http_arrived(request *r) { arrivals_end(&r->srv->arrivals, &r->arrival); }

/* The guard's record of conn (on_connection put it in the socket context). */
static guard_conn *connection_guard(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
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

/* libmicrohttpd's completion: the request is answered, refused or abandoned. Logs and counts
 * it, gives back what it held, frees it. */
void http_on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
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
    http_count_request(r, toe);
    metrics_add_in_flight(s->metrics, -1);
    http_arrived(r);
    http_access_log(r);
    guard_answered(s->guard, r->gc);
    guard_release(s->guard, r->reserved);
    /* glibc keeps freed memory in its arenas: a large body and its JSON document (tens to
     * hundreds of MiB) would stay in this thread's arena for good (issue 25: 607 -> 3,594 MiB
     * after three bombs). malloc_trim hands the free pages back (docs/security.md: the cost). */
    if (r->reserved >= TRIM_AFTER_BYTES) malloc_trim(0);
    if (r->queued) atomic_fetch_sub(&s->pending, 1);
    pthread_mutex_destroy(&r->lock);
    byte_buffer_free(&r->stored);
    free(r->url);
    content_inflater_free(r->inflater);
    inference_job_free(r->job);
    free(r);
    *req_cls = NULL;
}

/* MHD's URI log callback: the request line is in. The request is allocated here, the only
 * place that sees the path as sent: %00 and %2F are decoded before on_request sees them. */
void *http_on_uri(void *cls, const char *uri, struct MHD_Connection *conn) {
    guard_request_line(((const listener *)cls)->srv->guard, connection_guard(conn));
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
    r->route = http_route_of(s, url, &r->v2_route, &r->target);
    r->view = r->target.view;
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
    if (http_routes[r->route].cors && http_cors_allows(s->cfg->cors_allowed_origins, origin))
        r->cors_origin = origin; /* MHD keeps header values until the request completes */
    metrics_add_in_flight(s->metrics, 1);
    return 0;
}

/* The whole body is here: the route's handler takes it (the v2 repository routes ignore it). */
static enum MHD_Result body_done(request *r) {
    char msg[200];
    api_status st = http_finish_body(r, msg, sizeof msg);
    return st == API_OK ? http_answer_route(r) : http_send_error(r, st, msg);
}

/* MHD calls this for the headers (first call), for each piece of the body, and once more
 * when the request is complete. A request without a body is answered at that last call,
 * which keeps the connection open for the next request; answering from the first call
 * makes MHD close it. A request with one is screened at the first call, so that nothing is
 * buffered for a refused request. */
enum MHD_Result http_on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version,
                                const char *upload_data, size_t *upload_data_size,
                                void **req_cls) {
    const listener *l = cls;
    request *r = *req_cls;
    if (!r) return MHD_NO; /* on_uri ran out of memory */
    if (!r->srv) {
        if (request_init(r, l, conn, url, method) != 0) return MHD_NO;
        r->http11 = strcmp(version, MHD_HTTP_VERSION_1_1) == 0;
        return http_has_body(conn) ? http_screen_request(r) : MHD_YES;
    }
    if (*upload_data_size > 0) return http_take_body(r, upload_data, upload_data_size);
    if (!r->body_seen) {
        r->body_seen = true;
        guard_body_done(r->srv->guard, r->gc);
    }
    if (r->phase == REQUEST_ANSWERED) return MHD_YES;
    if (r->phase == REQUEST_HEADERS) {
        enum MHD_Result res = http_screen_request(r);
        if (r->phase == REQUEST_ANSWERED || res != MHD_YES) return res;
    }
    if (r->queued || r->controlling) {
        pthread_mutex_lock(&r->lock);
        bool computed = r->phase == REQUEST_COMPUTED;
        pthread_mutex_unlock(&r->lock);
        if (!computed) return MHD_YES;
        return r->queued ? http_job_answered(r) : http_v2_control_answered(r);
    }
    return body_done(r);
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

static void server_free(http_server *s) {
    guard_free(s->guard);
    http_free_tls(s);
    log_queue_free(s->access_log, ACCESS_LOG_FLUSH_MS);
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
    s->loading_model = (served_model){.name = cfg->model, .version = 1,
                                      .n_classes = LABELS_COUNT, .image_hw = IMAGE_HW,
                                      .image_floats = 3 * IMAGE_HW * IMAGE_HW};
    s->limits = (classify_limits){cfg->max_body_bytes, (int)cfg->max_images_per_request};
    atomic_store(&s->state, SERVICE_LOADING);
    s->access_log = log_queue_create(STDOUT_FILENO, ACCESS_LOG_BUFFER_BYTES);
    if (!s->access_log) {
        snprintf(err, errlen, "cannot start the access log's writer thread");
        free(s);
        return NULL;
    }
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

http_server *http_server_start(const vggserve_config *cfg, metrics *m, char *err, size_t errlen) {
    http_server *s = server_create(cfg, m, err, errlen);
    if (s && http_start_listeners(s, err, errlen) != 0) {
        server_free(s);
        return NULL;
    }
    return s;
}

int http_server_port(const http_server *s) { return s->port; }

void http_server_serve(http_server *s, repository *repo) { atomic_store(&s->repo, repo); }

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
