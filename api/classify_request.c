/* classify_request.c - headers and body of POST /classify to tensors, or to an error. */
#include "classify_request.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "clock.h"
#include "image_decode.h"
#include "multipart.h"
#include "preprocess.h"

api_status classify_check_content_length(const char *content_length, const classify_limits *lim,
                                         char *msg, size_t msglen) {
    if (!content_length || strtoull(content_length, NULL, 10) <= (unsigned long long)lim->max_body_bytes)
        return API_OK;
    snprintf(msg, msglen, "request body of %.40s bytes is over the limit of %lld bytes",
             content_length, lim->max_body_bytes);
    return API_BODY_TOO_LARGE;
}

api_status classify_parse_top_k(const char *value, int *top_k, char *msg, size_t msglen) {
    *top_k = CLASSIFY_DEFAULT_TOP_K;
    if (!value) return API_OK;
    char *end;
    long k = strtol(value, &end, 10);
    if (end == value || *end || k < 1 || k > CLASSIFY_MAX_TOP_K) {
        snprintf(msg, msglen, "top_k must be an integer from 1 to %d, got '%.64s'",
                 CLASSIFY_MAX_TOP_K, value);
        return API_BAD_REQUEST;
    }
    *top_k = (int)k;
    return API_OK;
}

long long classify_timeout_ms(const char *header, long long default_ms) {
    if (!header) return default_ms;
    char *end;
    long long asked = strtoll(header, &end, 10);
    return end != header && !*end && asked > 0 && asked < default_ms ? asked : default_ms;
}

void classify_input_free(classify_input *in) {
    free(in->inputs);
    free(in->sizes);
    memset(in, 0, sizeof *in);
}

/* Splits the body into images: the parts of a multipart body, or the body itself. Returns
 * the count, or -1 with *st and msg. */
static int split_images(const classify_http_request *req, const classify_limits *lim,
                        multipart_part *parts, api_status *st, char *msg, size_t msglen) {
    const char *ctype = req->content_type;
    /* The media type exactly: "multipart/form-dataX" is not multipart. */
    if (ctype && strncasecmp(ctype, "multipart/form-data", 19) == 0 &&
        (ctype[19] == '\0' || ctype[19] == ';' || ctype[19] == ' ' || ctype[19] == '\t')) {
        char boundary[80];
        *st = API_BAD_REQUEST;
        if (multipart_boundary(ctype, boundary, sizeof boundary, msg, msglen) != 0) return -1;
        int n = multipart_parse(req->body, req->body_len, boundary, parts, lim->max_images, msg,
                                msglen);
        if (n == -2) {
            snprintf(msg, msglen, "more than %d images in one request", lim->max_images);
            *st = API_TOO_MANY_IMAGES;
            return -1;
        }
        if (n < 0) return -1;
        if (n == 0) {
            snprintf(msg, msglen, "multipart body has no parts");
            return -1;
        }
        return n;
    }
    if (req->body_len == 0) {
        snprintf(msg, msglen, "empty body: POST a JPEG, PNG or WebP image, or multipart/form-data");
        *st = API_BAD_REQUEST;
        return -1;
    }
    memset(&parts[0], 0, sizeof parts[0]);
    parts[0].data = req->body;
    parts[0].len = req->body_len;
    return 1;
}

api_status classify_request_parse(const classify_http_request *req, const classify_limits *lim,
                                  const image_input_format *fmt, classify_input *out, char *msg,
                                  size_t msglen) {
    memset(out, 0, sizeof *out);
    if (req->body_over_limit) {
        snprintf(msg, msglen, "request body is over the limit of %lld bytes", lim->max_body_bytes);
        return API_BODY_TOO_LARGE;
    }
    int top_k;
    api_status st = classify_parse_top_k(req->top_k, &top_k, msg, msglen);
    if (st != API_OK) return st;
    if (lim->max_images < 1 || fmt->image_hw < 1) {
        snprintf(msg, msglen, "server limits are misconfigured");
        return API_INTERNAL;
    }
    multipart_part *parts = calloc((size_t)lim->max_images, sizeof *parts);
    if (!parts) {
        snprintf(msg, msglen, "out of memory");
        return API_INTERNAL;
    }
    int n = split_images(req, lim, parts, &st, msg, msglen);
    if (n < 0) {
        free(parts);
        return st;
    }
    const size_t image_floats = (size_t)3 * fmt->image_hw * fmt->image_hw;
    float *inputs = malloc((size_t)n * image_floats * sizeof(float));
    int (*sizes)[2] = malloc((size_t)n * sizeof *sizes);
    if (!inputs || !sizes) {
        free(inputs);
        free(sizes);
        free(parts);
        snprintf(msg, msglen, "out of memory");
        return API_INTERNAL;
    }
    double t0 = clock_monotonic_ns() / 1e6;
    for (int i = 0; i < n; i++) {
        char why[384];
        if (req->deadline_ns && clock_monotonic_ns() > req->deadline_ns) {
            snprintf(msg, msglen, "the request's deadline passed after %d of its %d images were "
                     "decoded", i, n);
            free(parts);
            free(inputs);
            free(sizes);
            out->n_images = n;
            return API_DEADLINE_EXCEEDED;
        }
        preprocess_status ps =
            preprocess_bytes_sized(parts[i].data, parts[i].len, &fmt->decode, fmt->preprocess,
                                   fmt->image_hw, inputs + (size_t)i * image_floats, sizes[i],
                                   why, sizeof why);
        if (ps != PREPROCESS_OK) {
            const char *fn = parts[i].filename;
            if (n > 1) snprintf(msg, msglen, "image %d%s%s%s: %s", i + 1, fn[0] ? " (" : "", fn,
                                fn[0] ? ")" : "", why);
            else snprintf(msg, msglen, "%s", why);
            free(parts);
            free(inputs);
            free(sizes);
            out->n_images = n; /* for the access log */
            return api_status_from_preprocess(ps);
        }
    }
    free(parts);
    out->top_k = top_k;
    out->n_images = n;
    out->inputs = inputs;
    out->sizes = sizes;
    out->decode_ms = clock_monotonic_ns() / 1e6 - t0;
    return API_OK;
}
