/* fuzz_kserve_v2.c - KServe v2 routes, infer requests and responses, without sockets.
 *
 * Input: header lines "name: value\n" (path, inference-header-content-length), an empty line,
 * then the body. It runs what server/http_v2.c runs for such a request: kserve_v2_route_parse()
 * on the path, kserve_v2_infer_parse() on the body, and on success builds the response from
 * made-up probabilities and logits. The network side is 8x8 here (the code takes the side
 * from the limits), so FP32 tensors small enough for the fuzzer to write are accepted too.
 * Invariants: never a 5xx, every error body serialises, every tensor is finite and within
 * bounds, and the response's JSON header parses and announces exactly the binary bytes that
 * follow it. */
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "errors.h"
#include "fuzz_util.h"
#include "kserve_v2.h"

#define N_CLASSES 1000
#define HW 8
#define MAP_HW 3 /* the gradcam map side; any small side will do */

static void check_error(api_status st, const char *msg) {
    int code = api_status_http(st);
    FUZZ_CHECK(code >= 400 && code < 500);
    json_t *body = kserve_v2_error_json(msg);
    FUZZ_CHECK(body != NULL);
    char *text = json_dumps(body, JSON_COMPACT);
    FUZZ_CHECK(text != NULL);
    free(text);
    json_decref(body);
}

/* The response's JSON header parses, and its binary_data_size values add up to the rest. */
static void check_response(const kserve_v2_infer *in, const kserve_v2_body *b) {
    FUZZ_CHECK(b->json_len <= b->len);
    json_error_t jerr;
    json_t *root = json_loadb(b->data, b->json_len, 0, &jerr);
    FUZZ_CHECK(root != NULL);
    json_t *outputs = json_object_get(root, "outputs");
    FUZZ_CHECK(json_array_size(outputs) == (size_t)in->n_outputs);
    size_t binary = 0, i;
    json_t *o;
    json_array_foreach(outputs, i, o) {
        json_t *size = json_object_get(json_object_get(o, "parameters"), "binary_data_size");
        FUZZ_CHECK(in->outputs[i].binary == (size != NULL));
        if (size) binary += (size_t)json_integer_value(size);
        else FUZZ_CHECK(json_is_array(json_object_get(o, "data")));
    }
    FUZZ_CHECK(binary == b->len - b->json_len);
    bool any_binary = false;
    for (int k = 0; k < in->n_outputs; k++) any_binary |= in->outputs[k].binary;
    FUZZ_CHECK(b->binary == any_binary);
    json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const names[] = {"path", "inference-header-content-length"};
    char *h[2] = {NULL};
    size_t body_len;
    const uint8_t *p = fuzz_split_headers(data, size, names, h, 2, &body_len);
    char *path = h[0], *hlen = h[1];

    kserve_v2_view view = KSERVE_V2_VIEW_FULL; /* the path's view decides the inputs and outputs */
    if (path) {
        char msg[300];
        msg[0] = '\0';
        kserve_v2_route rt = kserve_v2_route_parse(path, "vgg16", &view, msg, sizeof msg);
        FUZZ_CHECK(rt >= KSERVE_V2_ROUTE_NONE && rt <= KSERVE_V2_ROUTE_REPOSITORY_CONTROL);
        FUZZ_CHECK(view >= KSERVE_V2_VIEW_FULL && view < KSERVE_V2_VIEW_COUNT);
        if (rt == KSERVE_V2_ROUTE_NOT_FOUND) check_error(API_NOT_FOUND, msg);
    }

    unsigned char *body = malloc(body_len ? body_len : 1); /* exact size for ASan */
    memcpy(body, p, body_len);
    classify_limits lim = {1 << 20, 4};
    image_input_format fmt = {HW, PREPROCESS_TORCHVISION, {.max_pixels = 1 << 20}};
    kserve_v2_http_request req = {hlen, body, body_len, body_len > (size_t)lim.max_body_bytes,
                                  view < KSERVE_V2_VIEW_COUNT ? view : KSERVE_V2_VIEW_FULL,
                                  N_CLASSES, MAP_HW, NULL, NULL, 0};
    kserve_v2_infer in;
    char msg[800];
    api_status st = kserve_v2_infer_parse(&req, &lim, &fmt, &in, msg, sizeof msg);
    if (st != API_OK) {
        FUZZ_CHECK(in.inputs == NULL);
        check_error(st, msg);
    } else {
        FUZZ_CHECK(in.n_images >= 1 && in.n_images <= lim.max_images);
        FUZZ_CHECK(in.n_outputs >= 1 && in.n_outputs <= KSERVE_V2_MAX_OUTPUTS);
        size_t n = (size_t)in.n_images * 3 * HW * HW;
        for (size_t i = 0; i < n; i++)
            FUZZ_CHECK(isfinite(in.inputs[i]) && fabsf(in.inputs[i]) <= KSERVE_V2_MAX_ABS_INPUT);
        FUZZ_CHECK(in.gradcam_class >= -1 && in.gradcam_class < N_CLASSES);
        static float probs[4 * N_CLASSES], logits[4 * N_CLASSES], maps[4 * MAP_HW * MAP_HW];
        for (int i = 0; i < in.n_images * N_CLASSES; i++) {
            probs[i] = (float)((i * 7919) % N_CLASSES) / (N_CLASSES * (N_CLASSES - 1) / 2.0f);
            logits[i] = (float)(i % 97) - 48.5f;
        }
        for (int i = 0; i < in.n_images * MAP_HW * MAP_HW; i++) maps[i] = (float)(i % 13) / 12;
        vgg_labels imagenet;
        vgg_labels_imagenet(&imagenet);
        const kserve_v2_results res = {probs, in.want_logits ? logits : NULL, N_CLASSES,
                                       in.want_gradcam ? maps : NULL, MAP_HW, &imagenet, 1};
        kserve_v2_body b;
        FUZZ_CHECK(kserve_v2_infer_response(&in, "vgg16", &res, &b, msg, sizeof msg) == 0);
        check_response(&in, &b);
        free(b.data);
        kserve_v2_infer_free(&in);
    }
    free(body);
    free(path);
    free(hlen);
    return 0;
}
