/* http_log.c - the access log line, request metrics, and why a request went unanswered. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "http_internal.h"
#include "log_queue.h"

static double ms_between(int64_t a_ns, int64_t b_ns) { return (b_ns - a_ns) / 1e6; }

/* Appends " key=value" to the line at *n (cap bytes), the value quoted when it needs to be
 * (empty, or holding a space, '=', '"', '\\' or a control byte) with '"' and '\\' escaped:
 * whatever a client puts in a path, each line has one key of each name (issue 25:
 * "/a%20status=200" logged a second status). */
static void put_logfmt(char *line, size_t cap, size_t *n, const char *key, const char *value) {
    bool quote = !value[0] || strpbrk(value, " =\"\\") != NULL;
    for (const char *c = value; *c && !quote; c++) quote = (unsigned char)*c < 0x20 || *c == 0x7f;
    size_t at = *n;
    at += (size_t)snprintf(line + at, at < cap ? cap - at : 0, " %s=%s", key, quote ? "\"" : "");
    for (const char *c = value; *c && at + 3 < cap; c++) {
        if (*c == '"' || *c == '\\') line[at++] = '\\';
        line[at++] = (unsigned char)*c < 0x20 || *c == 0x7f ? ' ' : *c;
    }
    if (quote && at + 1 < cap) line[at++] = '"';
    line[at < cap ? at : cap - 1] = '\0';
    *n = at < cap ? at : cap - 1;
}

/* The access log line, logfmt or JSON, with its newline. Returns its length (0: none). */
static size_t access_log_line(request *r, char *line, size_t cap) {
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
    if (s->cfg->log_format == ACCESS_LOG_LOGFMT) {
        size_t n = (size_t)snprintf(line, cap, "ts=%s.%03ldZ", ts, now.tv_nsec / 1000000);
        put_logfmt(line, cap, &n, "request_id", r->id);
        put_logfmt(line, cap, &n, "trace_id", r->trace_id);
        put_logfmt(line, cap, &n, "method", method);
        put_logfmt(line, cap, &n, "path", path);
        n += (size_t)snprintf(line + n, cap - n, " status=%d bytes=%zu images=%d queue_ms=%.2f "
                              "inference_ms=%.2f total_ms=%.2f batch_id=%llu", r->http_code,
                              r->response_bytes, r->n_images, queue_ms, infer_ms, total_ms, batch);
        if (n >= cap) n = cap - 1;
        if (error[0]) put_logfmt(line, cap, &n, "error", error);
        if (n + 1 >= cap) n = cap - 2;
        line[n++] = '\n';
        return n;
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:I, s:i, s:f, s:f, s:f, s:I}", "ts",
                          ts, "request_id", r->id, "trace_id", r->trace_id, "method", method,
                          "path", path, "status", r->http_code, "bytes",
                          (json_int_t)r->response_bytes, "images", r->n_images, "queue_ms",
                          queue_ms, "inference_ms", infer_ms, "total_ms", total_ms, "batch_id",
                          (json_int_t)batch);
    if (!o) return 0;
    if (error[0]) json_object_set_new(o, "error", json_string(error));
    char *text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(o);
    size_t n = text ? strlen(text) : 0;
    if (n + 1 >= cap) n = 0; /* cannot happen: every field is bounded */
    if (n) memcpy(line, text, n), line[n++] = '\n';
    free(text);
    return n;
}

/* The line goes to the access log's queue (server/log_queue.h): never blocks on stdout. */
void http_access_log(request *r) {
    char line[2048];
    size_t n = access_log_line(r, line, sizeof line);
    if (n) log_queue_put(r->srv->access_log, line, n);
}

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
    /* The version that ran it; a request that failed before it got one counts against the
     * model it named (its latest version), when that one is loaded. */
    const char *model = r->job ? r->job->model->name : r->target.model;
    long long version = r->job ? r->job->model->version : r->target.version;
    char fallback[KSERVE_V2_MAX_NAME];
    repository *repo = atomic_load(&r->srv->repo);
    if (!model[0] && repo && repository_default_model(repo, fallback, sizeof fallback))
        model = fallback;
    metrics_observe_inference(r->srv->metrics, model, version, r->view, &x);
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
        if (r->body_fate == BODY_TIMED_OUT) why = API_BODY_TIMEOUT;
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

void http_count_request(request *r, enum MHD_RequestTerminationCode toe) {
    if (r->phase != REQUEST_ANSWERED) explain_unanswered(r, toe);
    else note_lost_answer(r, toe);
    double total_s = ms_between(r->start_ns, clock_monotonic_ns()) / 1e3;
    metrics_observe_request(r->srv->metrics, http_routes[r->route].endpoint, r->http_code,
                            total_s);
    if (http_routes[r->route].inference) observe_inference(r, total_s);
}
