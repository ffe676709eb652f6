/* http_answer.c - sending answers: headers, compression, the one error path. */
#include <stdlib.h>
#include <string.h>

#include "demo_page.h"
#include "http_internal.h"

/* Answers at least this long are compressed for a client that accepts gzip or deflate; below
 * it the header costs more than it saves. */
#define COMPRESS_MIN_BYTES 1024

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

void http_add_cors_headers(request *r, struct MHD_Response *resp) {
    if (!r->cors_origin) return;
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", r->cors_origin);
    MHD_add_response_header(resp, "Access-Control-Expose-Headers",
                            "X-Request-Id, Inference-Header-Content-Length, X-Explained-Class, "
                            "traceparent, Retry-After");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Origin, Accept-Encoding");
}

enum MHD_Result http_send_body(request *r, int code, const char *content_type, char *body,
                               size_t len, api_status st) {
    const char *coding = compress_answer(r, &body, &len);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (content_type) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, "X-Request-Id", r->id);
    MHD_add_response_header(resp, "traceparent", r->traceparent);
    if (coding) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING, coding);
    if (r->cors_origin) http_add_cors_headers(r, resp);
    else if (coding) MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Accept-Encoding");
    if (st == API_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
                                http_routes[r->route].post ? "POST" : "GET, HEAD");
    if (r->answer_header) MHD_add_response_header(resp, r->answer_header, r->answer_header_value);
    if (r->route == ROUTE_DEMO)
        MHD_add_response_header(resp, "Content-Security-Policy", DEMO_PAGE_CSP);
    if (api_status_retry_after(st)) MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (st == API_UNAUTHORIZED && r->www_authenticate)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, r->www_authenticate);
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)code, resp);
    MHD_destroy_response(resp);
    r->phase = REQUEST_ANSWERED;
    r->http_code = code;
    r->response_bytes = len;
    return ret;
}

enum MHD_Result http_send_json(request *r, int code, json_t *body, api_status st) {
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
    return http_send_body(r, code, "application/json", text, len, st);
}

enum MHD_Result http_send_error(request *r, api_status st, const char *message) {
    http_arrived(r);
    size_t n = strnlen(message, sizeof r->error - 1); /* the log keeps the start */
    memcpy(r->error, message, n);
    r->error[n] = '\0';
    metrics_add_rejected(r->srv->metrics, st);
    json_t *body = http_routes[r->route].v2_errors ? kserve_v2_error_json(message)
                                                   : api_error_json(st, message);
    return http_send_json(r, api_status_http(st), body, st);
}
