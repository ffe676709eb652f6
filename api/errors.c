/* errors.c - the status table. */
#include "errors.h"

#include <stddef.h>

static const struct {
    int http;
    const char *type;
    int retry_after;
    int grpc; /* gRPC status code: 3 INVALID_ARGUMENT, 4 DEADLINE_EXCEEDED, 5 NOT_FOUND,
               * 7 PERMISSION_DENIED, 8 RESOURCE_EXHAUSTED, 12 UNIMPLEMENTED, 13 INTERNAL,
               * 14 UNAVAILABLE, 16 UNAUTHENTICATED */
} table[API_STATUS_COUNT] = {
    [API_OK] = {200, "ok", 0, 0},
    [API_BAD_REQUEST] = {400, "bad_request", 0, 3},
    [API_NOT_FOUND] = {404, "not_found", 0, 5},
    [API_METHOD_NOT_ALLOWED] = {405, "method_not_allowed", 0, 12},
    [API_BODY_TOO_LARGE] = {413, "payload_too_large", 0, 8},
    [API_TOO_MANY_IMAGES] = {413, "too_many_images", 0, 3},
    [API_UNSUPPORTED_MEDIA] = {415, "unsupported_media_type", 0, 3},
    [API_UNDECODABLE] = {422, "undecodable_image", 0, 3},
    [API_TOO_MANY_PIXELS] = {422, "image_too_large", 0, 3},
    [API_QUEUE_FULL] = {503, "queue_full", 1, 14},
    [API_NOT_READY] = {503, "not_ready", 1, 14},
    [API_DEADLINE_EXCEEDED] = {504, "deadline_exceeded", 0, 4},
    [API_INTERNAL] = {500, "internal_error", 0, 13},
    [API_UNAUTHORIZED] = {401, "unauthorized", 0, 16},
    [API_FORBIDDEN] = {403, "forbidden", 0, 7},
    [API_FRAMING] = {400, "framing", 0, 3},
    [API_NOT_IMPLEMENTED] = {501, "not_implemented", 0, 12},
    [API_HEADER_TIMEOUT] = {408, "header_timeout", 0, 4},
    [API_BODY_TIMEOUT] = {408, "body_timeout", 0, 4},
    [API_MEMORY_BUDGET] = {503, "memory_budget", 1, 14},
    [API_HEADERS_TOO_LARGE] = {431, "headers_too_large", 0, 8},
    [API_URI_TOO_LONG] = {414, "uri_too_long", 0, 3},
    [API_SHUTDOWN] = {503, "shutdown", 0, 14},
    [API_DECODE_BUSY] = {503, "decode_busy", 1, 14},
};

int api_status_http(api_status s) { return s < API_STATUS_COUNT ? table[s].http : 500; }

const char *api_status_type(api_status s) {
    return s < API_STATUS_COUNT ? table[s].type : "internal_error";
}

api_status api_status_from_preprocess(preprocess_status st) {
    switch (st) {
    case PREPROCESS_OK: return API_OK;
    case PREPROCESS_UNSUPPORTED: return API_UNSUPPORTED_MEDIA;
    case PREPROCESS_TOO_LARGE: return API_TOO_MANY_PIXELS;
    case PREPROCESS_UNDECODABLE: return API_UNDECODABLE;
    case PREPROCESS_NO_MEMORY: return API_INTERNAL;
    case PREPROCESS_BUSY: return API_DECODE_BUSY;
    }
    return API_INTERNAL;
}

int api_status_grpc(api_status s) { return s < API_STATUS_COUNT ? table[s].grpc : 13; }

int api_status_retry_after(api_status s) { return s < API_STATUS_COUNT && table[s].retry_after; }

/* Length of the valid UTF-8 sequence at s (1..4), or 0 (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF). */
static size_t utf8_sequence(const unsigned char *s) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t n;
    unsigned lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf) return 0;
    return n;
}

char *api_utf8_sanitize(const char *s, char *out, size_t cap) {
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t o = 0;
    while (*p && o + 1 < cap) {
        size_t n = utf8_sequence(p); /* stops at the terminator: it is never a continuation */
        if (n == 0 || (n == 1 && ((*p < 0x20 && *p != '\t') || *p == 0x7f))) {
            out[o++] = '?';
            p++;
            continue;
        }
        if (o + n >= cap) break; /* never cut a sequence in half */
        for (size_t i = 0; i < n; i++) out[o++] = (char)*p++;
    }
    out[o] = '\0';
    return out;
}

json_t *api_error_json(api_status s, const char *message) {
    char clean[1024];
    api_utf8_sanitize(message, clean, sizeof clean);
    return json_pack("{s:{s:i, s:s, s:s}}", "error", "code", api_status_http(s), "type",
                     api_status_type(s), "message", clean);
}
