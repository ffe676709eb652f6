/* http_body.c - request bodies: storage, inflation, limits and the buffered-bytes budget. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "http_internal.h"

/* Whether a body follows the headers (Content-Length above 0, or chunked). */
bool http_has_body(struct MHD_Connection *conn) {
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_TRANSFER_ENCODING);
    return te || (cl && strspn(cl, "0 \t") != strlen(cl));
}

/* Content-Encoding of a POST body: identity, or an inflater for gzip and deflate. */
api_status http_start_body_decoding(request *r, char *msg, size_t msglen) {
    const char *ce = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_ENCODING);
    content_coding c = content_coding_parse(ce);
    if (c == CONTENT_CODING_UNSUPPORTED) {
        snprintf(msg, msglen, "Content-Encoding '%.64s' is not supported; send gzip, deflate or "
                 "none", ce);
        return API_UNSUPPORTED_MEDIA;
    }
    if (c != CONTENT_CODING_IDENTITY &&
        !(r->inflater = content_inflater_new(c, (size_t)r->srv->cfg->max_body_bytes))) {
        snprintf(msg, msglen, "out of memory");
        return API_INTERNAL;
    }
    return API_OK;
}

/* Takes n more bytes of max_buffered_bytes for r. */
bool http_reserve(request *r, long long n) {
    if (!guard_reserve(r->srv->guard, n)) return false;
    r->reserved += n;
    return true;
}

api_status http_over_budget(const request *r, char *msg, size_t msglen) {
    snprintf(msg, msglen, "uploads in progress hold the whole max_buffered_bytes (%lld bytes); "
             "retry later", guard_buffered(r->srv->guard));
    return API_MEMORY_BUDGET;
}

/* Appends n body bytes (inflated first when the body is compressed). */
static enum MHD_Result store_body(request *r, const uint8_t *data, size_t n) {
    if (r->received + n > (size_t)r->reserved &&
        !http_reserve(r, (long long)(r->received + n) - r->reserved)) {
        /* Over the budget mid-body: libmicrohttpd cannot answer before the body ends, so
         * the rest is drained unstored and answered 503 then; the bytes go back now. */
        r->body_fate = BODY_OVER_BUDGET;
        byte_buffer_free(&r->stored);
        guard_release(r->srv->guard, r->reserved);
        r->reserved = 0;
        return MHD_YES;
    }
    if (r->inflater) {
        content_status st = content_inflater_feed(r->inflater, data, n);
        if (st == CONTENT_TOO_LARGE) r->body_fate = BODY_TOO_LARGE;
        return st == CONTENT_NO_MEMORY ? MHD_NO : MHD_YES; /* other errors: at the end */
    }
    return byte_buffer_append(&r->stored, data, n) ? MHD_YES : MHD_NO;
}

enum MHD_Result http_take_body(request *r, const char *upload_data, size_t *upload_data_size) {
    http_server *s = r->srv;
    /* Without Content-Length the limit is enforced while streaming: keep counting, stop
     * storing; a client that goes far past it is cut off. */
    size_t n = *upload_data_size;
    *upload_data_size = 0;
    if (r->phase == REQUEST_ANSWERED || r->body_fate == BODY_OVER_BUDGET ||
        !http_routes[r->route].inference) {
        /* refused already, or a route that reads no body: let it drain, unstored; a chunked
         * one far past what such a route takes is cut. A repository load's small body is kept
         * (its config override), outside the budget: HTTP_SMALL_BODY_MAX at most. */
        if (r->phase != REQUEST_ANSWERED && r->route == ROUTE_V2_REPOSITORY &&
            r->received + n <= HTTP_SMALL_BODY_MAX &&
            !byte_buffer_append(&r->stored, upload_data, n))
            return MHD_NO;
        r->received += n;
        return r->received > 4 * (size_t)s->cfg->max_body_bytes ||
                       (!http_routes[r->route].inference && r->received > HTTP_SMALL_BODY_MAX)
                   ? MHD_NO
                   : MHD_YES;
    }
    /* Slow clients: MHD's timeout is an idle timeout, which a body sent a byte at a time
     * never trips; the whole upload gets connection_timeout_s too. */
    if (clock_monotonic_ns() - r->start_ns > s->cfg->connection_timeout_s * 1000000000LL) {
        snprintf(r->error, sizeof r->error, "body took longer than connection_timeout_s "
                 "(%lld s) to arrive: connection closed", s->cfg->connection_timeout_s);
        r->body_fate = BODY_TIMED_OUT;
        return MHD_NO;
    }
    if (r->body_fate == BODY_TOO_LARGE || r->received + n > (size_t)s->cfg->max_body_bytes) {
        r->body_fate = BODY_TOO_LARGE;
        r->received += n;
        return r->received > 4 * (size_t)s->cfg->max_body_bytes ? MHD_NO : MHD_YES;
    }
    enum MHD_Result res = store_body(r, (const uint8_t *)upload_data, n);
    r->received += n;
    return res;
}

/* A compressed body has fully arrived: it becomes the inflated bytes, or a 400. */
api_status http_finish_body(request *r, char *msg, size_t msglen) {
    if (r->body_fate == BODY_OVER_BUDGET) return http_over_budget(r, msg, msglen);
    if (!r->inflater || r->body_fate == BODY_TOO_LARGE) return API_OK;
    content_status st = content_inflater_finish(r->inflater);
    if (st == CONTENT_TOO_LARGE) {
        r->body_fate = BODY_TOO_LARGE;
        return API_OK;
    }
    if (st != CONTENT_OK) {
        snprintf(msg, msglen, "the body is not valid %s: %s",
                 content_coding_name(content_coding_parse(MHD_lookup_connection_value(
                     r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_ENCODING))),
                 st == CONTENT_TRUNCATED ? "the stream ends early" : "corrupt data");
        return API_BAD_REQUEST;
    }
    /* The inflated bytes stay the inflater's (freed with it in http_on_completed). */
    r->body_is_inflated = true;
    return API_OK;
}

/* The body as the parsers read it: inflated, or as it was sent. */
const unsigned char *http_body_bytes(const request *r, size_t *len) {
    if (r->body_is_inflated) return (const unsigned char *)content_inflater_data(r->inflater, len);
    *len = r->stored.len;
    return r->stored.data;
}
