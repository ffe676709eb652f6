/* fuzz_classify_request.c - the whole request path of POST /classify, without sockets.
 *
 * Input: header lines "name: value\n" (content-type, content-length, top_k (the query
 * value), authorization, x-request-timeout-ms), an empty line, then the body. It runs what
 * server/http_screen.c and http_infer.c run for such a request: the auth check, the Content-Length check, the
 * timeout header, classify_request_parse() (top_k, multipart, decode, preprocess), and
 * builds the JSON the client would get. Invariants: never a 5xx (the request path has no
 * internal errors for any input), every error body serialises, every tensor is finite. */
#include <jansson.h>
#include <math.h>
#include <string.h>

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
    static const char *const names[] = {"content-type", "content-length", "top_k",
                                        "authorization", "x-request-timeout-ms"};
    char *h[5] = {NULL};
    size_t body_len;
    const uint8_t *p = fuzz_split_headers(data, size, names, h, 5, &body_len);
    char *ctype = h[0], *clen = h[1], *top_k = h[2], *auth = h[3], *timeout = h[4];
    unsigned char *body = malloc(body_len ? body_len : 1); /* exact size for ASan */
    memcpy(body, p, body_len);

    classify_limits lim = {1 << 20, 4};
    image_input_format fmt = {224, PREPROCESS_TORCHVISION, {.max_pixels = 1 << 20}};
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
    st = classify_request_parse(&req, &lim, &fmt, &in, msg, sizeof msg);
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
        vgg_labels imagenet;
        vgg_labels_imagenet(&imagenet);
        json_t *resp = api_classify_json("vgg16", &imagenet, "fuzz-1", probs, in.n_images,
                                         N_CLASSES, in.top_k, &t, 1);
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
