/* errors.c - the status table. */
#include "errors.h"

static const struct {
    int http;
    const char *type;
    int retry_after;
} table[API_STATUS_COUNT] = {
    [API_OK] = {200, "ok", 0},
    [API_BAD_REQUEST] = {400, "bad_request", 0},
    [API_NOT_FOUND] = {404, "not_found", 0},
    [API_METHOD_NOT_ALLOWED] = {405, "method_not_allowed", 0},
    [API_BODY_TOO_LARGE] = {413, "payload_too_large", 0},
    [API_TOO_MANY_IMAGES] = {413, "too_many_images", 0},
    [API_UNSUPPORTED_MEDIA] = {415, "unsupported_media_type", 0},
    [API_UNDECODABLE] = {422, "undecodable_image", 0},
    [API_TOO_MANY_PIXELS] = {422, "image_too_large", 0},
    [API_QUEUE_FULL] = {503, "queue_full", 1},
    [API_NOT_READY] = {503, "not_ready", 1},
    [API_DEADLINE_EXCEEDED] = {504, "deadline_exceeded", 0},
    [API_INTERNAL] = {500, "internal_error", 0},
};

int api_status_http(api_status s) { return s < API_STATUS_COUNT ? table[s].http : 500; }

const char *api_status_type(api_status s) {
    return s < API_STATUS_COUNT ? table[s].type : "internal_error";
}

int api_status_retry_after(api_status s) { return s < API_STATUS_COUNT && table[s].retry_after; }

json_t *api_error_json(api_status s, const char *message) {
    return json_pack("{s:{s:i, s:s, s:s}}", "error", "code", api_status_http(s), "type",
                     api_status_type(s), "message", message ? message : "");
}
