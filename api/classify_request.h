/* classify_request.h - the request path of POST /classify without sockets.
 *
 * What arrives (a Content-Type, a top_k query value, a Content-Length, the buffered body)
 * becomes either the preprocessed tensors of every image, in upload order, or an api_status
 * with a message for the client. The HTTP layer (server/http_infer.c) only moves bytes in
 * and out; everything a client controls is judged here, so tests/fuzz/fuzz_classify_request.c
 * can feed it whole requests at fuzzing speed.
 *
 * Checks, in order: body over max_body_bytes (413), top_k (400), an empty body (400), the
 * multipart framing (400) and its part count (413 too_many_images), then each image through
 * image_decode() (model/image_decode.h): not JPEG, PNG or WebP (415), over max_pixels (422),
 * undecodable (422, including the guard of image_check.h). The first failure wins.
 *
 * Messages never name files or internals of the server; they may quote what the client sent
 * (a query value, a part's file name), which api_error_json() makes valid UTF-8.
 *
 * Ownership: the input strings and body are borrowed; classify_input.inputs is owned by the
 * caller after success (classify_input_free), or moves into a job (infer_request.h).
 * Reentrant: no globals. */
#ifndef API_CLASSIFY_REQUEST_H
#define API_CLASSIFY_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#include "errors.h"
#include "image_decode.h"
#include "preprocess.h"

#define CLASSIFY_DEFAULT_TOP_K 5
#define CLASSIFY_MAX_TOP_K 1000

/* What a client may send at most (the server's settings). */
typedef struct {
    long long max_body_bytes; /* 413 above this */
    int max_images;           /* images of one request (multipart parts, v2's N); 413 above */
} classify_limits;

/* How an upload becomes a network input, on both request paths (/classify, v2 BYTES): decoded
 * with decode (max_pixels: 422 above it), then preprocessed as the served model was trained
 * into an image_hw square. */
typedef struct {
    int image_hw;                /* side of the network's input (224) */
    preprocess_mode preprocess;  /* what the weights were trained with (0: torchvision) */
    image_decode_options decode; /* the decoder's settings */
} image_input_format;

typedef struct {
    const char *content_type;  /* header value, or NULL */
    const char *top_k;         /* query value, or NULL */
    const unsigned char *body; /* borrowed; may be NULL when body_len is 0 */
    size_t body_len;           /* bytes stored in body */
    bool body_over_limit;      /* more than max_body_bytes arrived (counted, not stored) */
    int64_t deadline_ns;       /* clock_monotonic_ns() past which decoding stops (504); 0: none */
} classify_http_request;


typedef struct {
    int top_k;
    int n_images;
    float *inputs;    /* n_images x (3, image_hw, image_hw), owned */
    int (*sizes)[2];  /* n_images upright (width, height) as uploaded, owned */
    double decode_ms; /* decode + preprocess of every image */
} classify_input;

/* From the headers alone: 413 (API_BODY_TOO_LARGE) when Content-Length (NULL: absent)
 * announces more than max_body_bytes, else API_OK. */
api_status classify_check_content_length(const char *content_length, const classify_limits *lim,
                                         char *msg, size_t msglen);

/* Parses the top_k query value (NULL: absent, gives CLASSIFY_DEFAULT_TOP_K) into *top_k. */
api_status classify_parse_top_k(const char *value, int *top_k, char *msg, size_t msglen);

/* The request's timeout: X-Request-Timeout-Ms (NULL: absent) may shorten default_ms, never
 * lengthen it; anything but a positive integer is ignored. */
long long classify_timeout_ms(const char *header, long long default_ms);

/* Judges the whole request. On API_OK *out holds the tensors (free with
 * classify_input_free); otherwise msg says why and *out owns nothing (n_images still counts
 * the images found when one of them failed to decode, for the access log). */
api_status classify_request_parse(const classify_http_request *req, const classify_limits *lim,
                                  const image_input_format *fmt, classify_input *out, char *msg,
                                  size_t msglen);

void classify_input_free(classify_input *in);

#endif
