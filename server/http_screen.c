/* http_screen.c - the checks a request's line and headers decide: framing, route and
 * method, the admin port, CORS, the token, readiness, the announced length and coding. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "http_internal.h"

/* Counts the Content-Length headers (MHD keeps every header line). */
static enum MHD_Result count_content_length(void *cls, enum MHD_ValueKind kind, const char *key,
                                            const char *value) {
    (void)kind;
    (void)value;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) (*(int *)cls)++;
    return MHD_YES;
}

/* What the header walk found: the first header whose value holds a control byte, and the
 * Host lines. libmicrohttpd cuts a value at a NUL and reports the cut length everywhere
 * (MHD_get_connection_values_n too, in 0.9.75), but it parses the headers in place in its
 * read buffer, in order: after a value's end only its line's terminator (CR, LF, turned into
 * NULs) and blanks may come before the next header's name. A byte other than those there
 * is what followed a NUL inside the value. For the last header only the byte after the
 * value's end is checked (the buffer holds at least its terminator and the blank line). */
typedef struct {
    char bad_name[48];
    int n_host;
    const char *prev_key, *prev_end; /* the previous header's name, and its value's end */
} header_scan;

static bool line_end_byte(char c) { return !c || c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

static void flag(header_scan *hs, const char *key) {
    if (!hs->bad_name[0]) snprintf(hs->bad_name, sizeof hs->bad_name, "%.40s", key);
}

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value) {
    header_scan *hs = cls;
    if (kind != MHD_HEADER_KIND || !key) return MHD_YES;
    if (strcasecmp(key, "Host") == 0) hs->n_host++;
    if (hs->prev_end && key > hs->prev_end && key - hs->prev_end < 64)
        for (const char *c = hs->prev_end; c < key; c++)
            if (!line_end_byte(*c)) flag(hs, hs->prev_key);
    hs->prev_key = key;
    hs->prev_end = value ? value + strlen(value) : NULL;
    for (const char *c = value; c && *c; c++)
        if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f) flag(hs, key);
    return MHD_YES;
}

/* Header values with control bytes (RFC 9110 5.5: a recipient may reject them; behind a proxy
 * that reads past a NUL, the two would disagree on Content-Length or Transfer-Encoding), and
 * an HTTP/1.1 request without exactly one Host (RFC 9112 3.2: 400). */
static api_status check_headers(const request *r, char *msg, size_t msglen) {
    header_scan hs = {{0}, 0, NULL, NULL};
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, scan_header, &hs);
    const char after = hs.prev_end ? hs.prev_end[1] : '\0'; /* CR-LF's LF, or the blank line */
    if (after && after != '\r' && after != '\n') flag(&hs, hs.prev_key);
    if (hs.bad_name[0]) {
        snprintf(msg, msglen, "header %s holds a control byte (NUL, CR, LF or another below 0x20)",
                 hs.bad_name);
        return API_FRAMING;
    }
    if (r->http11 && hs.n_host != 1) {
        snprintf(msg, msglen, "an HTTP/1.1 request needs exactly one Host header (it has %d)",
                 hs.n_host);
        return API_FRAMING;
    }
    return API_OK;
}

/* Request smuggling and path tricks: anything two parsers could read two ways is refused
 * before it is routed (RFC 9112 6.3: such a message must be treated as an error). */
static api_status check_framing(const request *r, char *msg, size_t msglen) {
    api_status st = check_headers(r, msg, msglen);
    if (st != API_OK) return st;
    int n_cl = 0;
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, count_content_length, &n_cl);
    const char *te = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_TRANSFER_ENCODING);
    const char *why = n_cl > 1     ? "more than one Content-Length header"
                      : te && n_cl ? "Content-Length together with Transfer-Encoding"
                                   : NULL;
    if (why) {
        snprintf(msg, msglen, "%s", why);
        return API_FRAMING;
    }
    if (te) {
        size_t b = strspn(te, " \t"), len = strlen(te);
        while (len > b && (te[len - 1] == ' ' || te[len - 1] == '\t')) len--;
        if (len - b != 7 || strncasecmp(te + b, "chunked", 7) != 0) {
            snprintf(msg, msglen, "Transfer-Encoding '%.64s' is not supported; only chunked", te);
            return API_NOT_IMPLEMENTED;
        }
    }
    if (r->raw_path_smuggles) {
        snprintf(msg, msglen, "the path holds an encoded NUL or '/' (%%00, %%2F)");
        return API_FRAMING;
    }
    return API_OK;
}

/* "*" allows every origin; otherwise the comma-separated list must name it. */
bool http_cors_allows(const char *allowed, const char *origin) {
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

/* Whether route rt asks for the token: inference whenever one is set; health and metrics
 * only when asked. */
static bool needs_auth(const vggserve_config *cfg, route rt) {
    if (!cfg->auth_token[0]) return false;
    switch (http_routes[rt].auth) {
    case ROUTE_AUTH_ALWAYS: return true;
    case ROUTE_AUTH_HEALTH: return cfg->auth_health;
    case ROUTE_AUTH_METRICS: return cfg->auth_metrics;
    case ROUTE_AUTH_NONE: break;
    }
    return false;
}

/* A CORS preflight (OPTIONS with Origin) on a route pages may call, when CORS is on. */
static enum MHD_Result answer_preflight(request *r) {
    if (!r->cors_origin) {
        snprintf(r->error, sizeof r->error, "origin not in cors_allowed_origins");
        return http_send_error(r, API_FORBIDDEN, "this origin may not call the service "
                               "(cors_allowed_origins)");
    }
    http_arrived(r);
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    http_add_cors_headers(r, resp);
    MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, HEAD, POST, OPTIONS");
    MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                            "Authorization, Content-Type, Content-Encoding, "
                            "Inference-Header-Content-Length, X-Request-Id, "
                            "X-Request-Timeout-Ms, traceparent");
    MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
    MHD_add_response_header(resp, "X-Request-Id", r->id);
    enum MHD_Result ret = MHD_queue_response(r->conn, MHD_HTTP_NO_CONTENT, resp);
    MHD_destroy_response(resp);
    r->phase = REQUEST_ANSWERED;
    r->http_code = MHD_HTTP_NO_CONTENT;
    return ret;
}

/* Framing, then whether the route exists (on this listener). */
static api_status check_route(request *r, char *msg, size_t msglen) {
    api_status st = check_framing(r, msg, msglen);
    if (st != API_OK) return st;
    /* repository_api_admin_only moves the repository API (index, load, unload) to the admin
     * listener: the main port answers it as no route. */
    const bool repository_api = r->route == ROUTE_V2_REPOSITORY;
    const bool admin_only = repository_api && r->srv->cfg->repository_api_admin_only;
    if (admin_only && !r->listener->admin) {
        snprintf(msg, msglen, "no route %.128s on this port: the repository API is served on the "
                 "admin port (repository_api_admin_only)", r->url);
        r->route = ROUTE_NONE;
        return API_NOT_FOUND;
    }
    if (r->listener->admin && !http_routes[r->route].admin && !admin_only) {
        snprintf(msg, msglen, "no route %.128s on the admin port (it serves /healthz, /readyz "
                 "and /metrics)", r->url);
        r->route = ROUTE_NONE; /* the service's own error shape, also for /v2 paths */
        return API_NOT_FOUND;
    }
    if (r->route == ROUTE_NONE) {
        snprintf(msg, msglen, "no route %.128s; try POST /classify", r->url);
        return API_NOT_FOUND;
    }
    if (r->route == ROUTE_V2_MISSING) {
        kserve_v2_target t;
        const kserve_v2_catalog c = http_catalog(r->srv);
        kserve_v2_route_resolve(r->url, &c, &t, msg, msglen);
        return API_NOT_FOUND;
    }
    return API_OK;
}

/* The method the route answers, then the token (before any body is read: an
 * unauthenticated client cannot make us buffer it). */
static api_status check_access(request *r, char *msg, size_t msglen) {
    const vggserve_config *cfg = r->srv->cfg;
    bool is_get = strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;
    if (http_routes[r->route].post ? strcmp(r->method, "POST") != 0 : !is_get) {
        snprintf(msg, msglen, "%.16s is not allowed on %.128s", r->method, r->url);
        return API_METHOD_NOT_ALLOWED;
    }
    if (!needs_auth(cfg, r->route)) return API_OK;
    const char *auth = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                   MHD_HTTP_HEADER_AUTHORIZATION);
    char why[128]; /* the checker's message, as long as it ever was */
    if (api_auth_check(auth, cfg->auth_token, why, sizeof why, &r->www_authenticate) == API_OK)
        return API_OK;
    snprintf(msg, msglen, "%s", why);
    return API_UNAUTHORIZED;
}

/* An upload: refused early what can be refused from the headers alone (readiness, length,
 * coding), then its share of the buffered-bytes budget. */
static api_status check_upload(request *r, char *msg, size_t msglen) {
    http_server *s = r->srv;
    service_state state = atomic_load(&s->state);
    if (state != SERVICE_READY) {
        snprintf(msg, msglen, "service is %s", service_state_name(state));
        return API_NOT_READY;
    }
    const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    api_status st = classify_check_content_length(cl, &s->limits, msg, msglen);
    if (st == API_OK) st = http_start_body_decoding(r, msg, msglen);
    if (st != API_OK) return st;
    /* A known length is reserved whole now; a compressed body may inflate to max_body_bytes,
     * so that is reserved; a chunked one reserves as it grows. */
    long long want = r->inflater ? s->cfg->max_body_bytes : cl ? atoll(cl) : 0;
    if (want > 0 && !http_reserve(r, want)) return http_over_budget(r, msg, msglen);
    return API_OK;
}

/* The v2 repository routes read nothing of their body: one of up to HTTP_SMALL_BODY_MAX
 * bytes is drained unstored (http_take_body), a longer one refused from its length. */
static api_status check_small_body(request *r, char *msg, size_t msglen) {
    const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!cl || strtoull(cl, NULL, 10) <= HTTP_SMALL_BODY_MAX) return API_OK;
    snprintf(msg, msglen, "a body of %.24s bytes on %.128s, which reads at most %d", cl, r->url,
             HTTP_SMALL_BODY_MAX);
    return API_BODY_TOO_LARGE;
}

/* The checks that need only the request line and headers. Answers what fails, preflights and
 * every GET; MHD_YES (unanswered) to go on to the body. */
enum MHD_Result http_screen_request(request *r) {
    const route_spec *spec = &http_routes[r->route];
    char msg[300];
    api_status st = check_route(r, msg, sizeof msg);
    if (st == API_OK && strcmp(r->method, "OPTIONS") == 0 &&
        r->srv->cfg->cors_allowed_origins[0] && spec->cors)
        return answer_preflight(r);
    if (st == API_OK) st = check_access(r, msg, sizeof msg);
    if (st != API_OK) return http_send_error(r, st, msg);
    if (!spec->post) return http_answer_route(r);
    st = spec->inference ? check_upload(r, msg, sizeof msg) : check_small_body(r, msg, sizeof msg);
    if (st != API_OK) return http_send_error(r, st, msg);
    r->phase = REQUEST_BODY; /* the v2 repository routes ignore theirs */
    if (spec->inference) arrivals_begin(&r->srv->arrivals, &r->arrival);
    return MHD_YES;
}
