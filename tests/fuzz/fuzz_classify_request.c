/* fuzz_classify_request.c - the whole request path of POST /classify, without sockets.
 *
 * Input: header lines "name: value\n" (content-type, content-length, top_k (the query
 * value), authorization, x-request-timeout-ms), an empty line, then the body. It runs what
 * server/http.c runs for such a request: the auth check, the Content-Length check, the
 * timeout header, classify_request_parse() (top_k, multipart, decode, preprocess), and
 * builds the JSON the client would get. Invariants: never a 5xx (the request path has no
 * internal errors for any input), every error body serialises, every tensor is finite. */
#include <jansson.h>
#include <math.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "classify_request.h"
#include "errors.h"
#include "fuzz_util.h"
#include "responses.h"

#define N_CLASSES 1000

static void check_error(api_status st, const char *msg) {
    int code = api_status_http(st);
    FUZZ_CHECK(code >= 400 && code < 500);
    json_t *body = api_error_json(st, msg);
    FUZZ_CHECK(body != NULL);
    char *text = json_dumps(body, JSON_COMPACT);
    FUZZ_CHECK(text != NULL);
    free(text);
    json_decref(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* Header lines up to an empty line; copies are NUL-terminated like MHD's values. */
    char *ctype = NULL, *clen = NULL, *top_k = NULL, *auth = NULL, *timeout = NULL;
    const uint8_t *p = data, *end = data + size;
    while (p < end) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) nl = end;
        size_t n = (size_t)(nl - p);
        if (n == 0) {
            p = nl + 1;
            break;
        }
        const uint8_t *colon = memchr(p, ':', n);
        if (colon) {
            size_t klen = (size_t)(colon - p);
            const uint8_t *v = colon + 1;
            while (v < nl && *v == ' ') v++;
            char *value = strndup((const char *)v, (size_t)(nl - v));
            char **slot = NULL;
            if (klen == 12 && strncasecmp((const char *)p, "content-type", 12) == 0) slot = &ctype;
            else if (klen == 14 && strncasecmp((const char *)p, "content-length", 14) == 0) slot = &clen;
            else if (klen == 5 && strncasecmp((const char *)p, "top_k", 5) == 0) slot = &top_k;
            else if (klen == 13 && strncasecmp((const char *)p, "authorization", 13) == 0) slot = &auth;
            else if (klen == 20 && strncasecmp((const char *)p, "x-request-timeout-ms", 20) == 0) slot = &timeout;
            if (slot) {
                free(*slot);
                *slot = value;
            } else {
                free(value);
            }
        }
        p = nl < end ? nl + 1 : end;
    }
    if (p > end) p = end;
    size_t body_len = (size_t)(end - p);
    unsigned char *body = malloc(body_len ? body_len : 1); /* exact size for ASan */
    memcpy(body, p, body_len);

    classify_limits lim = {1 << 20, 1 << 20, 4, 224, PREPROCESS_TORCHVISION, false, false};
    char msg[800];
    const char *challenge;
    api_status st = api_auth_check(auth, "fuzz-token", msg, sizeof msg, &challenge);
    if (st != API_OK) {
        FUZZ_CHECK(st == API_UNAUTHORIZED && challenge != NULL);
        check_error(st, msg);
    }
    st = classify_check_content_length(clen, &lim, msg, sizeof msg);
    if (st != API_OK) check_error(st, msg);
    long long ms = classify_timeout_ms(timeout, 30000);
    FUZZ_CHECK(ms >= 1 && ms <= 30000);

    classify_http_request req = {ctype, top_k, body, body_len, body_len > (size_t)lim.max_body_bytes};
    classify_input in;
    st = classify_request_parse(&req, &lim, &in, msg, sizeof msg);
    if (st != API_OK) {
        FUZZ_CHECK(in.inputs == NULL);
        check_error(st, msg);
    } else {
        FUZZ_CHECK(in.n_images >= 1 && in.n_images <= lim.max_images);
        FUZZ_CHECK(in.top_k >= 1 && in.top_k <= CLASSIFY_MAX_TOP_K);
        size_t n = (size_t)in.n_images * 3 * 224 * 224;
        for (size_t i = 0; i < n; i++) FUZZ_CHECK(isfinite(in.inputs[i]));
        static float probs[4 * N_CLASSES];
        for (int i = 0; i < in.n_images * N_CLASSES; i++) probs[i] = 1.0f / N_CLASSES;
        api_timings t = {in.decode_ms, 0, 0, in.decode_ms};
        json_t *resp = api_classify_json("vgg16", "fuzz-1", probs, in.n_images, N_CLASSES,
                                         in.top_k, &t, 1);
        FUZZ_CHECK(resp != NULL);
        char *text = json_dumps(resp, JSON_COMPACT);
        FUZZ_CHECK(text != NULL);
        free(text);
        json_decref(resp);
        classify_input_free(&in);
    }
    free(body);
    free(ctype);
    free(clen);
    free(top_k);
    free(auth);
    free(timeout);
    return 0;
}
