/* kserve_v2.c - KServe v2 routes, infer requests to tensors, tensors to infer responses. */
#include "kserve_v2.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "labels.h"
#include "preprocess.h"
#include "topk.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "binary tensor data is little-endian; this file copies floats as they are in memory"
#endif

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---------------------------------------------------------------- model views */

/* What each view of the one model offers; the one table of view names. */
typedef struct {
    const char *suffix;
    bool image_input, tensor_input;
    bool outputs[KSERVE_V2_OUT_COUNT]; /* gradcam also needs a model that explains */
} view_spec;

static const view_spec views[KSERVE_V2_VIEW_COUNT] = {
    [KSERVE_V2_VIEW_FULL] = {"", true, true, {true, true, true}},
    [KSERVE_V2_VIEW_IMAGE] = {"_image", true, false, {true, false, false}},
    [KSERVE_V2_VIEW_TENSOR] = {"_tensor", false, true, {true, false, false}},
};

/* The one table of output names, by kserve_v2_output_kind. */
static const char *const output_names[KSERVE_V2_OUT_COUNT] = {
    [KSERVE_V2_OUT_PROBABILITIES] = "probabilities",
    [KSERVE_V2_OUT_LOGITS] = "logits",
    [KSERVE_V2_OUT_GRADCAM] = "gradcam",
};

/* Whether view v offers output k on a model whose maps are gradcam_hw wide (0: none). */
static bool view_has_output(const view_spec *v, kserve_v2_output_kind k, int gradcam_hw) {
    return v->outputs[k] && (k != KSERVE_V2_OUT_GRADCAM || gradcam_hw > 0);
}

void kserve_v2_view_name(const char *model, kserve_v2_view v, char *out, size_t cap) {
    snprintf(out, cap, "%s%s", model, views[v].suffix);
}

/* The view named name, or -1. */
static int view_of_name(const char *model, const char *name) {
    for (int v = 0; v < KSERVE_V2_VIEW_COUNT; v++) {
        char n[KSERVE_V2_MAX_NAME];
        kserve_v2_view_name(model, (kserve_v2_view)v, n, sizeof n);
        if (strcmp(n, name) == 0) return v;
    }
    return -1;
}

/* ---------------------------------------------------------------- routes */

/* Copies the next path segment of *p (up to '/' or the end) into seg; advances past it. */
static void next_segment(const char **p, char *seg, size_t cap) {
    const char *s = *p;
    if (*s == '/') s++;
    size_t n = strcspn(s, "/");
    snprintf(seg, cap, "%.*s", (int)(n < cap ? n : cap - 1), s);
    *p = s + n;
}

static kserve_v2_route not_found(char *msg, size_t msglen, const char *fmt, const char *a,
                                 const char *b) {
    if (msg) snprintf(msg, msglen, fmt, a, b);
    return KSERVE_V2_ROUTE_NOT_FOUND;
}

bool kserve_v2_route_is_post(kserve_v2_route rt) {
    return rt == KSERVE_V2_ROUTE_INFER || rt == KSERVE_V2_ROUTE_REPOSITORY_INDEX ||
           rt == KSERVE_V2_ROUTE_REPOSITORY_CONTROL;
}

/* /v2/repository/index and /v2/repository/models/M/load|unload; p is past "repository". */
static kserve_v2_route repository_route(const char *path, const char *p, char *msg,
                                        size_t msglen) {
    char seg[128], name[128];
    next_segment(&p, seg, sizeof seg);
    if (strcmp(seg, "index") == 0 && *p == '\0') return KSERVE_V2_ROUTE_REPOSITORY_INDEX;
    if (strcmp(seg, "models") == 0) {
        next_segment(&p, name, sizeof name);
        next_segment(&p, seg, sizeof seg);
        if (name[0] && *p == '\0' && (strcmp(seg, "load") == 0 || strcmp(seg, "unload") == 0))
            return KSERVE_V2_ROUTE_REPOSITORY_CONTROL;
    }
    return not_found(msg, msglen, "no route %.128s%s", path, "");
}

kserve_v2_route kserve_v2_route_parse(const char *path, const char *model, kserve_v2_view *view,
                                      char *msg, size_t msglen) {
    *view = KSERVE_V2_VIEW_FULL;
    if (strncmp(path, "/v2", 3) != 0 || (path[3] != '\0' && path[3] != '/'))
        return KSERVE_V2_ROUTE_NONE;
    const char *p = path + 3;
    if (strcmp(p, "") == 0 || strcmp(p, "/") == 0) return KSERVE_V2_ROUTE_SERVER_METADATA;
    if (strcmp(p, "/health/live") == 0) return KSERVE_V2_ROUTE_LIVE;
    if (strcmp(p, "/health/ready") == 0) return KSERVE_V2_ROUTE_READY;
    if (strcmp(p, "/models/stats") == 0) return KSERVE_V2_ROUTE_ALL_STATS;
    char seg[128], name[128];
    next_segment(&p, seg, sizeof seg);
    if (strcmp(seg, "repository") == 0) return repository_route(path, p, msg, msglen);
    if (strcmp(seg, "models") != 0 || *p == '\0')
        return not_found(msg, msglen, "no route %.128s%s", path, "");
    next_segment(&p, name, sizeof name);
    int v = view_of_name(model, name);
    if (v < 0) {
        char served[3 * KSERVE_V2_MAX_NAME + 16];
        snprintf(served, sizeof served, "'%.80s', '%.80s_image' and '%.80s_tensor'", model, model,
                 model);
        return not_found(msg, msglen, "unknown model '%.100s'; this server serves %s (POST "
                         "/v2/repository/index lists them)", name, served);
    }
    *view = (kserve_v2_view)v;
    if (strncmp(p, "/versions/", 10) == 0) {
        p += 9;
        next_segment(&p, seg, sizeof seg);
        if (strcmp(seg, KSERVE_V2_MODEL_VERSION) != 0)
            return not_found(msg, msglen, "unknown version '%.100s' of model '%s'; the one "
                             "version is " KSERVE_V2_MODEL_VERSION, seg, name);
    }
    if (*p == '\0') return KSERVE_V2_ROUTE_MODEL_METADATA;
    if (strcmp(p, "/ready") == 0) return KSERVE_V2_ROUTE_MODEL_READY;
    if (strcmp(p, "/infer") == 0) return KSERVE_V2_ROUTE_INFER;
    if (strcmp(p, "/config") == 0) return KSERVE_V2_ROUTE_MODEL_CONFIG;
    if (strcmp(p, "/stats") == 0) return KSERVE_V2_ROUTE_MODEL_STATS;
    return not_found(msg, msglen, "no route %.128s%s", path, "");
}

/* ---------------------------------------------------------------- request parsing */

/* Everything one parse needs, so helpers stay short. */
typedef struct {
    const classify_limits *lim;
    const view_spec *view;
    const kserve_v2_http_request *req;
    char *msg;
    size_t msglen;
} parse_ctx;

static api_status fail(parse_ctx *c, api_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static api_status fail(parse_ctx *c, api_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg, c->msglen, fmt, ap);
    va_end(ap);
    return st;
}

/* Base64 (standard or URL-safe alphabet, padding optional, whitespace ignored) into a new
 * buffer. Returns its length, or -1. */
static long long base64_decode(const char *s, size_t len, unsigned char **out) {
    unsigned char *buf = malloc(len / 4 * 3 + 3);
    if (!buf) return -1;
    size_t n = 0;
    unsigned acc = 0;
    int bits = 0, pad = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        int v;
        if (ch >= 'A' && ch <= 'Z') v = ch - 'A';
        else if (ch >= 'a' && ch <= 'z') v = ch - 'a' + 26;
        else if (ch >= '0' && ch <= '9') v = ch - '0' + 52;
        else if (ch == '+' || ch == '-') v = 62;
        else if (ch == '/' || ch == '_') v = 63;
        else if (ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t') continue;
        else if (ch == '=') {
            pad++;
            continue;
        } else v = -1;
        if (v < 0 || pad) { /* a foreign byte, or data after padding */
            free(buf);
            return -1;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (bits >= 6 || pad > 2) { /* one leftover sextet cannot end a valid encoding */
        free(buf);
        return -1;
    }
    *out = buf;
    return (long long)n;
}

/* The input's shape as integers. Returns the number of dimensions, or -1. */
static int read_shape(json_t *shape, long long *dims, int max_dims) {
    if (!json_is_array(shape) || json_array_size(shape) == 0 ||
        json_array_size(shape) > (size_t)max_dims)
        return -1;
    size_t i;
    json_t *d;
    json_array_foreach(shape, i, d) {
        if (!json_is_integer(d)) return -1;
        dims[i] = json_integer_value(d);
    }
    return (int)json_array_size(shape);
}

/* Copies the FP32 "data" (flat, or nested exactly by the shape) into out. Returns the number
 * of values written, or -1 for a value that is not a number or a wrong nesting. */
static long long read_fp32_json(json_t *a, const long long *dims, int ndim, int depth,
                                float *out, size_t total, size_t *pos) {
    if (!json_is_array(a)) return -1;
    size_t n = json_array_size(a);
    bool flat = depth == 0 && n == total && n > 0 && json_is_number(json_array_get(a, 0));
    if (!flat && (long long)n != dims[depth]) return -1;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(a, i);
        if (flat || depth + 1 == ndim) {
            if (!json_is_number(v) || *pos >= total) return -1;
            out[(*pos)++] = (float)json_number_value(v);
        } else if (read_fp32_json(v, dims, ndim, depth + 1, out, total, pos) < 0) {
            return -1;
        }
    }
    return (long long)*pos;
}

static api_status decode_image(parse_ctx *c, int i, int n, const unsigned char *bytes,
                               size_t len, float *out) {
    char why[384];
    preprocess_status ps = preprocess_bytes(bytes, len, &c->lim->decode, c->lim->preprocess,
                                            c->lim->image_hw, out, why, sizeof why);
    if (ps == PREPROCESS_OK) return API_OK;
    if (n > 1) return fail(c, api_status_from_preprocess(ps), "image element %d: %s", i, why);
    return fail(c, api_status_from_preprocess(ps), "%s", why);
}

/* "image" BYTES elements, from base64 JSON strings or length-prefixed binary data. */
static api_status read_images(parse_ctx *c, json_t *data, const unsigned char *bin,
                              size_t bin_len, int n, float *out) {
    const size_t image_floats = (size_t)3 * c->lim->image_hw * c->lim->image_hw;
    if (data) {
        if (!json_is_array(data) || json_array_size(data) != (size_t)n)
            return fail(c, API_BAD_REQUEST, "input 'image': \"data\" must be an array of %d "
                        "base64 strings (the shape's first dimension)", n);
        for (int i = 0; i < n; i++) {
            json_t *el = json_array_get(data, i);
            if (!json_is_string(el))
                return fail(c, API_BAD_REQUEST, "input 'image': element %d is not a string of "
                            "base64", i);
            unsigned char *bytes;
            long long len = base64_decode(json_string_value(el), json_string_length(el), &bytes);
            if (len < 0)
                return fail(c, API_BAD_REQUEST, "input 'image': element %d is not valid base64", i);
            api_status st =
                decode_image(c, i, n, bytes, (size_t)len, out + (size_t)i * image_floats);
            free(bytes);
            if (st != API_OK) return st;
        }
        return API_OK;
    }
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        if (bin_len - at < 4)
            return fail(c, API_BAD_REQUEST, "input 'image': binary data ends before element %d's "
                        "4-byte length (shape says %d elements)", i, n);
        uint32_t len = (uint32_t)bin[at] | (uint32_t)bin[at + 1] << 8 |
                       (uint32_t)bin[at + 2] << 16 | (uint32_t)bin[at + 3] << 24;
        at += 4;
        if (len > bin_len - at)
            return fail(c, API_BAD_REQUEST, "input 'image': element %d claims %u bytes, %zu are "
                        "left in binary_data_size", i, len, bin_len - at);
        api_status st = decode_image(c, i, n, bin + at, len, out + (size_t)i * image_floats);
        if (st != API_OK) return st;
        at += len;
    }
    if (at != bin_len)
        return fail(c, API_BAD_REQUEST, "input 'image': %zu bytes of binary data after the %d "
                    "elements of the shape", bin_len - at, n);
    return API_OK;
}

/* "input" FP32 values, from JSON "data" or binary data; each finite and within bounds. */
static api_status read_tensor(parse_ctx *c, json_t *data, const unsigned char *bin,
                              size_t bin_len, const long long *dims, int ndim, float *out) {
    size_t total = 1;
    for (int d = 0; d < ndim; d++) total *= (size_t)dims[d];
    if (data) {
        size_t pos = 0;
        if (read_fp32_json(data, dims, ndim, 0, out, total, &pos) != (long long)total)
            return fail(c, API_BAD_REQUEST, "input 'input': \"data\" must hold %zu numbers, flat "
                        "or nested as the shape [%lld,%lld,%lld,%lld]", total, dims[0], dims[1],
                        dims[2], dims[3]);
    } else {
        if (bin_len != total * sizeof(float))
            return fail(c, API_BAD_REQUEST, "input 'input': binary_data_size is %zu bytes; shape "
                        "[%lld,%lld,%lld,%lld] of FP32 needs %zu", bin_len, dims[0], dims[1],
                        dims[2], dims[3], total * sizeof(float));
        memcpy(out, bin, bin_len);
    }
    for (size_t i = 0; i < total; i++)
        if (!(fabsf(out[i]) <= KSERVE_V2_MAX_ABS_INPUT))
            return fail(c, API_BAD_REQUEST, "input 'input': value %zu is %g; values must be "
                        "finite and within +-%g (preprocessed pixels)", i, (double)out[i],
                        KSERVE_V2_MAX_ABS_INPUT);
    return API_OK;
}

/* The view's output names as a list for messages ("probabilities, logits, gradcam"); returns
 * how many. */
static int output_list(const parse_ctx *c, char *out, size_t cap) {
    int n = 0;
    out[0] = '\0';
    for (int k = 0; k < KSERVE_V2_OUT_COUNT; k++)
        if (view_has_output(c->view, (kserve_v2_output_kind)k, c->req->gradcam_hw))
            snprintf(out + strlen(out), cap - strlen(out), "%s%s", n++ ? ", " : "",
                     output_names[k]);
    return n;
}

/* gradcam's "class_id" parameter (absent: each image's top-1) into out->gradcam_class. */
static api_status read_gradcam_class(parse_ctx *c, json_t *params, kserve_v2_infer *out) {
    json_t *cls = json_object_get(params, "class_id");
    out->gradcam_class = -1;
    if (!cls) return API_OK;
    if (!json_is_integer(cls) || json_integer_value(cls) < 0 ||
        json_integer_value(cls) >= c->req->n_classes)
        return fail(c, API_BAD_REQUEST, "output 'gradcam': class_id must be an integer from 0 "
                    "to %d", c->req->n_classes - 1);
    out->gradcam_class = (int)json_integer_value(cls);
    return API_OK;
}

/* One named output: its kind, then its parameters (binary_data, classification, class_id). */
static api_status read_output(parse_ctx *c, json_t *o, size_t i, bool binary_default,
                              kserve_v2_infer *out) {
    json_t *name = json_object_get(o, "name");
    if (!json_is_object(o) || !json_is_string(name))
        return fail(c, API_BAD_REQUEST, "output %zu: needs a \"name\" string", i);
    const char *n = json_string_value(name);
    kserve_v2_output spec = {KSERVE_V2_OUT_COUNT, binary_default, 0};
    for (int k = 0; k < KSERVE_V2_OUT_COUNT; k++)
        if (strcmp(n, output_names[k]) == 0 && c->view->outputs[k]) spec.kind = k;
    if (spec.kind == KSERVE_V2_OUT_GRADCAM && !c->req->gradcam_hw)
        return fail(c, API_BAD_REQUEST, "output 'gradcam': explanations are not supported in "
                    "int8; serve with --precision f32 or bf16");
    if (spec.kind == KSERVE_V2_OUT_COUNT) {
        char names[64];
        output_list(c, names, sizeof names);
        return fail(c, API_BAD_REQUEST, "unknown output '%.64s'; this model's outputs: %s", n,
                    names);
    }
    for (size_t j = 0; j < i; j++)
        if (out->outputs[j].kind == spec.kind)
            return fail(c, API_BAD_REQUEST, "output '%s' is asked for twice", n);
    json_t *p = json_object_get(o, "parameters");
    if (p && !json_is_object(p))
        return fail(c, API_BAD_REQUEST, "output '%s': \"parameters\" must be an object", n);
    json_t *b = json_object_get(p, "binary_data");
    if (b && !json_is_boolean(b))
        return fail(c, API_BAD_REQUEST, "output '%s': binary_data must be true or false", n);
    if (b) spec.binary = json_is_true(b);
    json_t *k = json_object_get(p, "classification");
    if (k && spec.kind == KSERVE_V2_OUT_GRADCAM)
        return fail(c, API_BAD_REQUEST, "output 'gradcam': classification applies to "
                    "probabilities and logits only");
    if (k) {
        if (!json_is_integer(k) || json_integer_value(k) < 1 ||
            json_integer_value(k) > CLASSIFY_MAX_TOP_K)
            return fail(c, API_BAD_REQUEST, "output '%s': classification must be an integer "
                        "from 1 to %d", n, CLASSIFY_MAX_TOP_K);
        spec.classification = (int)json_integer_value(k);
    }
    if (spec.kind == KSERVE_V2_OUT_GRADCAM) {
        api_status st = read_gradcam_class(c, p, out);
        if (st != API_OK) return st;
        out->want_gradcam = true;
    }
    if (spec.kind == KSERVE_V2_OUT_LOGITS) out->want_logits = true;
    out->outputs[out->n_outputs++] = spec;
    return API_OK;
}

static api_status read_outputs(parse_ctx *c, json_t *root, kserve_v2_infer *out) {
    bool binary_default = false;
    json_t *params = json_object_get(root, "parameters");
    if (params) {
        if (!json_is_object(params))
            return fail(c, API_BAD_REQUEST, "\"parameters\" must be an object");
        json_t *b = json_object_get(params, "binary_data_output");
        if (b && !json_is_boolean(b))
            return fail(c, API_BAD_REQUEST, "parameter binary_data_output must be true or false");
        binary_default = json_is_true(b);
    }
    json_t *outputs = json_object_get(root, "outputs");
    if (!outputs || (json_is_array(outputs) && json_array_size(outputs) == 0)) {
        /* None named: every output of the view but gradcam, which costs a backward pass. */
        for (int k = 0; k < KSERVE_V2_OUT_COUNT; k++)
            if (k != KSERVE_V2_OUT_GRADCAM && c->view->outputs[k])
                out->outputs[out->n_outputs++] =
                    (kserve_v2_output){(kserve_v2_output_kind)k, binary_default, 0};
        out->want_logits = c->view->outputs[KSERVE_V2_OUT_LOGITS];
        return API_OK;
    }
    if (!json_is_array(outputs) || json_array_size(outputs) > KSERVE_V2_MAX_OUTPUTS) {
        char names[64];
        int n = output_list(c, names, sizeof names);
        return fail(c, API_BAD_REQUEST, "\"outputs\" must be an array of at most %d outputs "
                    "(%s)", n, names);
    }
    size_t i;
    json_t *o;
    json_array_foreach(outputs, i, o) {
        api_status st = read_output(c, o, i, binary_default, out);
        if (st != API_OK) return st;
    }
    return API_OK;
}

/* The header length, the JSON header and the binary tail; the one input and its shape. */
static api_status parse_root(parse_ctx *c, const kserve_v2_http_request *req, json_t **root_out,
                             const unsigned char **bin, size_t *bin_len) {
    size_t json_len = req->body_len;
    if (req->header_length) {
        char *end;
        errno = 0;
        unsigned long long h = strtoull(req->header_length, &end, 10);
        if (errno || end == req->header_length || *end || req->header_length[0] == '-' ||
            h > req->body_len)
            return fail(c, API_BAD_REQUEST, "Inference-Header-Content-Length '%.40s' must be the "
                        "length of the JSON header, at most the body's %zu bytes",
                        req->header_length, req->body_len);
        json_len = (size_t)h;
    }
    *bin = req->body ? req->body + json_len : NULL;
    *bin_len = req->body_len - json_len;
    if (json_len == 0)
        return fail(c, API_BAD_REQUEST, "empty request: POST a JSON inference request");
    /* Without the header the body is JSON alone; parsing only the first value tells a client
     * that sent binary data without the header what it missed. */
    json_error_t jerr;
    size_t flags = JSON_REJECT_DUPLICATES | (req->header_length ? 0 : JSON_DISABLE_EOF_CHECK);
    json_t *root = json_loadb((const char *)req->body, json_len, flags, &jerr);
    if (!root)
        return fail(c, API_BAD_REQUEST, "the inference request is not JSON: %s (line %d, column "
                    "%d)", jerr.text, jerr.line, jerr.column);
    *root_out = root;
    if (!req->header_length) {
        size_t end = (size_t)jerr.position;
        while (end < json_len && strchr(" \t\r\n", req->body[end])) end++;
        if (end < json_len)
            return fail(c, API_BAD_REQUEST, "%zu bytes follow the JSON request; binary data needs "
                        "the Inference-Header-Content-Length header (the JSON's length)",
                        json_len - end);
    }
    if (!json_is_object(root))
        return fail(c, API_BAD_REQUEST, "the inference request must be a JSON object");
    return API_OK;
}

static api_status read_id(parse_ctx *c, json_t *root, kserve_v2_infer *out) {
    json_t *id = json_object_get(root, "id");
    if (!id) return API_OK;
    if (!json_is_string(id) || json_string_length(id) > KSERVE_V2_MAX_ID ||
        strlen(json_string_value(id)) != json_string_length(id))
        return fail(c, API_BAD_REQUEST, "\"id\" must be a string of at most %d bytes",
                    KSERVE_V2_MAX_ID);
    snprintf(out->id, sizeof out->id, "%s", json_string_value(id));
    return API_OK;
}

/* The one input, as its JSON names it. */
typedef struct {
    json_t *json;
    long long dims[4];
    int ndim;
    json_t *data; /* JSON "data", or NULL for binary data */
} input_spec;

/* "inputs": one input this view has, with the datatype and a shape it takes. */
static api_status read_input_spec(parse_ctx *c, json_t *root, kserve_v2_infer *out,
                                  input_spec *in) {
    const int hw = c->lim->image_hw;
    char named[96], tensor_named[48];
    snprintf(tensor_named, sizeof tensor_named, "\"input\" (FP32 [N,3,%d,%d])", hw, hw);
    snprintf(named, sizeof named, "%s%s%s", c->view->image_input ? "\"image\" (BYTES [N])" : "",
             c->view->image_input && c->view->tensor_input ? " or " : "",
             c->view->tensor_input ? tensor_named : "");
    json_t *inputs = json_object_get(root, "inputs");
    if (!json_is_array(inputs) || json_array_size(inputs) != 1)
        return fail(c, API_BAD_REQUEST, "\"inputs\" must be an array of one input: %s", named);
    in->json = json_array_get(inputs, 0);
    json_t *name = json_object_get(in->json, "name"), *dtype = json_object_get(in->json, "datatype");
    if (!json_is_string(name) || !json_is_string(dtype))
        return fail(c, API_BAD_REQUEST, "the input needs \"name\", \"datatype\" and \"shape\"");
    const char *n = json_string_value(name);
    out->tensor_input = strcmp(n, "input") == 0;
    bool known = out->tensor_input ? c->view->tensor_input
                                   : c->view->image_input && strcmp(n, "image") == 0;
    if (!known)
        return fail(c, API_BAD_REQUEST, "unknown input '%.64s'; this model's input: %s", n, named);
    const char *want_type = out->tensor_input ? "FP32" : "BYTES";
    if (strcmp(json_string_value(dtype), want_type) != 0)
        return fail(c, API_BAD_REQUEST, "input '%s' has datatype %s, not %.32s", n, want_type,
                    json_string_value(dtype));
    long long *d = in->dims;
    in->ndim = read_shape(json_object_get(in->json, "shape"), d, 4);
    bool ok = in->ndim >= 1 && d[0] >= 1 &&
              (out->tensor_input ? in->ndim == 4 && d[1] == 3 && d[2] == hw && d[3] == hw
                                 : in->ndim == 1 || (in->ndim == 2 && d[1] == 1));
    if (!ok && out->tensor_input)
        return fail(c, API_BAD_REQUEST, "input 'input' needs shape [N,3,%d,%d] with N >= 1", hw, hw);
    if (!ok) return fail(c, API_BAD_REQUEST, "input 'image' needs shape [N] with N >= 1");
    if (d[0] > c->lim->max_images)
        return fail(c, API_TOO_MANY_IMAGES, "%lld images in one request; the limit is %d", d[0],
                    c->lim->max_images);
    out->n_images = (int)d[0];
    return API_OK;
}

/* Where the values are: JSON "data", or binary_data_size bytes after the JSON header. */
static api_status read_data_source(parse_ctx *c, const kserve_v2_http_request *req,
                                   size_t bin_len, input_spec *in) {
    in->data = json_object_get(in->json, "data");
    json_t *params = json_object_get(in->json, "parameters");
    if (params && !json_is_object(params))
        return fail(c, API_BAD_REQUEST, "the input's \"parameters\" must be an object");
    json_t *bsize = params ? json_object_get(params, "binary_data_size") : NULL;
    if (!in->data == !bsize)
        return fail(c, API_BAD_REQUEST, "the input needs either \"data\" or the parameter "
                    "binary_data_size (binary data after the JSON header), not %s",
                    in->data ? "both" : "neither");
    if (!bsize) {
        if (bin_len > 0)
            return fail(c, API_BAD_REQUEST, "%zu bytes follow the JSON header but no input has "
                        "binary_data_size", bin_len);
        return API_OK;
    }
    if (!json_is_integer(bsize) || json_integer_value(bsize) < 0)
        return fail(c, API_BAD_REQUEST, "binary_data_size must be a non-negative integer");
    if (!req->header_length)
        return fail(c, API_BAD_REQUEST, "binary_data_size needs the "
                    "Inference-Header-Content-Length header (the JSON header's length)");
    if ((unsigned long long)json_integer_value(bsize) != bin_len)
        return fail(c, API_BAD_REQUEST, "binary_data_size is %lld but %zu bytes follow the JSON "
                    "header", (long long)json_integer_value(bsize), bin_len);
    return API_OK;
}

/* The tensors themselves: decoded images or the floats, into a new buffer. */
static api_status read_values(parse_ctx *c, const input_spec *in, const unsigned char *bin,
                              size_t bin_len, kserve_v2_infer *out) {
    const size_t image_floats = (size_t)3 * c->lim->image_hw * c->lim->image_hw;
    float *inputs = malloc((size_t)out->n_images * image_floats * sizeof(float));
    if (!inputs) return fail(c, API_INTERNAL, "out of memory");
    double t0 = now_ms();
    api_status st = out->tensor_input
                        ? read_tensor(c, in->data, bin, bin_len, in->dims, in->ndim, inputs)
                        : read_images(c, in->data, bin, bin_len, out->n_images, inputs);
    out->decode_ms = now_ms() - t0;
    if (st != API_OK) {
        free(inputs);
        return st;
    }
    out->inputs = inputs;
    return API_OK;
}

api_status kserve_v2_infer_parse(const kserve_v2_http_request *req, const classify_limits *lim,
                                 kserve_v2_infer *out, char *msg, size_t msglen) {
    memset(out, 0, sizeof *out);
    parse_ctx c = {lim, &views[req->view < KSERVE_V2_VIEW_COUNT ? req->view : 0], req, msg,
                   msglen};
    if (req->body_over_limit)
        return fail(&c, API_BODY_TOO_LARGE, "request body is over the limit of %lld bytes",
                    lim->max_body_bytes);
    if (lim->max_images < 1 || lim->image_hw < 1)
        return fail(&c, API_INTERNAL, "server limits are misconfigured");
    json_t *root = NULL;
    const unsigned char *bin = NULL;
    size_t bin_len = 0;
    input_spec in;
    /* In the order a client fixes them: framing, id, outputs, the input, its values. */
    api_status st = parse_root(&c, req, &root, &bin, &bin_len);
    if (st == API_OK) st = read_id(&c, root, out);
    if (st == API_OK) st = read_outputs(&c, root, out);
    if (st == API_OK) st = read_input_spec(&c, root, out, &in);
    if (st == API_OK) st = read_data_source(&c, req, bin_len, &in);
    if (st == API_OK) st = read_values(&c, &in, bin, bin_len, out);
    json_decref(root);
    if (st != API_OK) {
        int n_images = out->n_images;
        memset(out, 0, sizeof *out);
        out->n_images = n_images; /* for the access log */
    }
    return st;
}

void kserve_v2_infer_free(kserve_v2_infer *in) {
    free(in->inputs);
    memset(in, 0, sizeof *in);
}

/* ---------------------------------------------------------------- answers */

/* A growing byte buffer for the binary outputs. */
typedef struct {
    unsigned char *p;
    size_t len, cap;
    bool failed;
} bytes;

static void bytes_put(bytes *b, const void *src, size_t n) {
    if (b->failed) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        unsigned char *grown = realloc(b->p, cap);
        if (!grown) {
            b->failed = true;
            return;
        }
        b->p = grown;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

/* An output's values: n rows of `row` floats, a row being one image's [d1] or [d1, d2]. */
typedef struct {
    const float *values;
    int n, d1, d2; /* d2 0: rows are vectors */
} output_values;

static output_values values_of(const kserve_v2_output *o, int n, const kserve_v2_results *r) {
    switch (o->kind) {
    case KSERVE_V2_OUT_LOGITS: return (output_values){r->logits, n, r->n_classes, 0};
    case KSERVE_V2_OUT_GRADCAM: return (output_values){r->gradcam, n, r->gradcam_hw, r->gradcam_hw};
    default: return (output_values){r->probs, n, r->n_classes, 0};
    }
}

/* The top k of each row as BYTES "score:index:label", into data (JSON) or bin. */
static void classification_values(const output_values *v, int k, json_t *data, bytes *bin) {
    int idx[LABELS_COUNT];
    const int n_classes = v->d1;
    for (int i = 0; i < v->n; i++) {
        const float *row = v->values + (size_t)i * n_classes;
        int got = topk_indices(row, n_classes < LABELS_COUNT ? n_classes : LABELS_COUNT, k, idx);
        for (int j = 0; j < got; j++) {
            char s[160];
            const char *label = labels_name(idx[j]);
            int len = snprintf(s, sizeof s, "%.9g:%d:%s", (double)row[idx[j]], idx[j],
                               label ? label : "");
            if (len < 0) len = 0;
            if ((size_t)len >= sizeof s) len = (int)sizeof s - 1;
            if (data) {
                json_array_append_new(data, json_stringn(s, (size_t)len));
            } else {
                unsigned char le[4] = {(unsigned char)len, (unsigned char)(len >> 8), 0, 0};
                bytes_put(bin, le, 4);
                bytes_put(bin, s, (size_t)len);
            }
        }
    }
}

/* One output tensor: the JSON object, and its bytes into bin when binary. Returns NULL for
 * a non-finite value (JSON has no NaN), missing values or no memory. */
static json_t *output_json(const kserve_v2_output *o, const output_values *v, bytes *bin) {
    if (!v->values) return NULL;
    const size_t count = (size_t)v->n * v->d1 * (v->d2 ? v->d2 : 1);
    for (size_t i = 0; i < count; i++)
        if (!isfinite(v->values[i])) return NULL;
    json_t *data = o->binary ? NULL : json_array();
    size_t start = bin->len;
    const int k = o->classification > v->d1 ? v->d1 : o->classification;
    if (k > 0) classification_values(v, k, data, bin);
    else if (data)
        for (size_t i = 0; i < count; i++) json_array_append_new(data, json_real(v->values[i]));
    else bytes_put(bin, v->values, count * sizeof(float));
    json_t *o_json = json_pack("{s:s, s:s, s:[i, i]}", "name", output_names[o->kind], "datatype",
                               k > 0 ? "BYTES" : "FP32", "shape", v->n, k > 0 ? k : v->d1);
    if (o_json && v->d2 && k == 0)
        json_array_append_new(json_object_get(o_json, "shape"), json_integer(v->d2));
    if (!o_json || bin->failed) {
        json_decref(o_json);
        json_decref(data);
        return NULL;
    }
    if (data) json_object_set_new(o_json, "data", data);
    else json_object_set_new(o_json, "parameters", json_pack("{s:I}", "binary_data_size",
                                                             (json_int_t)(bin->len - start)));
    return o_json;
}

int kserve_v2_infer_response(const kserve_v2_infer *in, const char *model,
                             const kserve_v2_results *res, kserve_v2_body *out, char *msg,
                             size_t msglen) {
    memset(out, 0, sizeof *out);
    bytes bin = {0};
    json_t *outputs = json_array();
    bool binary = false;
    for (int i = 0; i < in->n_outputs; i++) {
        const kserve_v2_output *o = &in->outputs[i];
        const output_values v = values_of(o, in->n_images, res);
        json_t *t = output_json(o, &v, &bin);
        if (!t) {
            snprintf(msg, msglen, "cannot encode output %d: %s", i,
                     bin.failed ? "out of memory" : "non-finite values or no data");
            json_decref(outputs);
            free(bin.p);
            return -1;
        }
        binary |= o->binary;
        json_array_append_new(outputs, t);
    }
    json_t *root = json_pack("{s:s, s:s}", "model_name", model, "model_version",
                             KSERVE_V2_MODEL_VERSION);
    if (root && in->id[0]) json_object_set_new(root, "id", json_string(in->id));
    if (root) json_object_set_new(root, "outputs", outputs);
    else json_decref(outputs);
    /* Nine significant digits: every float32 survives the trip through decimal. */
    char *text = root ? json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(root);
    size_t json_len = text ? strlen(text) : 0;
    char *body = text ? malloc(json_len + bin.len + 1) : NULL;
    if (!body) {
        snprintf(msg, msglen, "out of memory");
        free(text);
        free(bin.p);
        return -1;
    }
    memcpy(body, text, json_len);
    if (bin.len) memcpy(body + json_len, bin.p, bin.len);
    body[json_len + bin.len] = '\0';
    free(text);
    free(bin.p);
    out->data = body;
    out->len = json_len + bin.len;
    out->json_len = json_len;
    out->binary = binary;
    return 0;
}

json_t *kserve_v2_server_metadata_json(void) {
    return json_pack("{s:s, s:s, s:[s, s, s, s, s]}", "name", "vggserve", "version",
                     VGGSERVE_VERSION, "extensions", "binary_tensor_data", "classification",
                     "model_configuration", "model_repository", "statistics");
}

/* The view's inputs and outputs as metadata tensors ({"name", "datatype", "shape"}, batch
 * dimension -1) or, with config, as Triton's configuration ({"name", "data_type", "dims"}
 * without the batch dimension, and "format" for the tensor input). */
static json_t *view_inputs(const kserve_v2_model_facts *f, const view_spec *v, bool config) {
    json_t *a = json_array();
    if (v->image_input)
        json_array_append_new(a, config ? json_pack("{s:s, s:s, s:s, s:[i]}", "name", "image",
                                                    "data_type", "TYPE_STRING", "format",
                                                    "FORMAT_NONE", "dims", 1)
                                        : json_pack("{s:s, s:s, s:[i]}", "name", "image",
                                                    "datatype", "BYTES", "shape", -1));
    if (v->tensor_input)
        json_array_append_new(a, config ? json_pack("{s:s, s:s, s:s, s:[i, i, i]}", "name",
                                                    "input", "data_type", "TYPE_FP32", "format",
                                                    "FORMAT_NCHW", "dims", 3, f->image_hw,
                                                    f->image_hw)
                                        : json_pack("{s:s, s:s, s:[i, i, i, i]}", "name", "input",
                                                    "datatype", "FP32", "shape", -1, 3,
                                                    f->image_hw, f->image_hw));
    return a;
}

static json_t *view_outputs(const kserve_v2_model_facts *f, const view_spec *v, bool config) {
    json_t *a = json_array();
    for (int k = 0; k < KSERVE_V2_OUT_COUNT; k++) {
        if (!view_has_output(v, (kserve_v2_output_kind)k, f->gradcam_hw)) continue;
        const bool map = k == KSERVE_V2_OUT_GRADCAM;
        json_t *dims = map ? json_pack("[i, i]", f->gradcam_hw, f->gradcam_hw)
                           : json_pack("[i]", f->n_classes);
        if (!config) json_array_insert_new(dims, 0, json_integer(-1));
        json_array_append_new(a, json_pack("{s:s, s:s, s:o}", "name", output_names[k],
                                           config ? "data_type" : "datatype",
                                           config ? "TYPE_FP32" : "FP32",
                                           config ? "dims" : "shape", dims));
    }
    return a;
}

json_t *kserve_v2_model_metadata_json(const kserve_v2_model_facts *f, kserve_v2_view v) {
    char name[KSERVE_V2_MAX_NAME];
    kserve_v2_view_name(f->model, v, name, sizeof name);
    return json_pack("{s:s, s:[s], s:s, s:o, s:o}", "name", name, "versions",
                     KSERVE_V2_MODEL_VERSION, "platform", KSERVE_V2_PLATFORM, "inputs",
                     view_inputs(f, &views[v], false), "outputs", view_outputs(f, &views[v], false));
}

json_t *kserve_v2_model_config_json(const kserve_v2_model_facts *f, kserve_v2_view v) {
    char name[KSERVE_V2_MAX_NAME];
    kserve_v2_view_name(f->model, v, name, sizeof name);
    return json_pack("{s:s, s:s, s:s, s:{s:{s:i}}, s:i, s:o, s:o, s:{s:[i], s:I}, "
                     "s:[{s:s, s:s, s:i}]}",
                     "name", name, "platform", KSERVE_V2_PLATFORM, "backend", "onednn",
                     "version_policy", "latest", "num_versions", 1, "max_batch_size",
                     f->max_images_per_request, "input", view_inputs(f, &views[v], true),
                     "output", view_outputs(f, &views[v], true), "dynamic_batching",
                     "preferred_batch_size", f->max_batch, "max_queue_delay_microseconds",
                     (json_int_t)f->max_queue_delay_us, "instance_group", "name", f->model,
                     "kind", "KIND_CPU", "count", f->workers);
}

json_t *kserve_v2_repository_index_json(const kserve_v2_model_facts *f) {
    json_t *a = json_array();
    for (int v = 0; v < KSERVE_V2_VIEW_COUNT; v++) {
        char name[KSERVE_V2_MAX_NAME];
        kserve_v2_view_name(f->model, (kserve_v2_view)v, name, sizeof name);
        json_t *m = json_pack("{s:s, s:s, s:s}", "name", name, "version", KSERVE_V2_MODEL_VERSION,
                              "state", f->ready ? "READY" : "UNAVAILABLE");
        if (!f->ready) json_object_set_new(m, "reason", json_string("the service is not ready"));
        json_array_append_new(a, m);
    }
    return a;
}

static json_t *duration_json(kserve_v2_duration d) {
    return json_pack("{s:I, s:I}", "count", (json_int_t)d.count, "ns", (json_int_t)d.ns);
}

static json_t *view_stats_json(const char *model, kserve_v2_view v, const kserve_v2_view_stats *s,
                               const kserve_v2_engine_stats *e) {
    char name[KSERVE_V2_MAX_NAME];
    kserve_v2_view_name(model, v, name, sizeof name);
    json_t *batches = json_array();
    const kserve_v2_duration none = {0, 0};
    for (int b = 0; b < KSERVE_V2_MAX_BATCH_STATS; b++)
        if (e->batch_infer[b].count)
            json_array_append_new(batches, json_pack("{s:i, s:o, s:o, s:o}", "batch_size", b + 1,
                                                     "compute_input", duration_json(none),
                                                     "compute_infer",
                                                     duration_json(e->batch_infer[b]),
                                                     "compute_output", duration_json(none)));
    return json_pack("{s:s, s:s, s:I, s:I, s:I, s:{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}, "
                     "s:o, s:[]}",
                     "name", name, "version", KSERVE_V2_MODEL_VERSION, "last_inference",
                     (json_int_t)s->last_inference_ms, "inference_count",
                     (json_int_t)s->inference_count, "execution_count",
                     (json_int_t)e->execution_count, "inference_stats", "success",
                     duration_json(s->success), "fail", duration_json(s->fail), "queue",
                     duration_json(s->queue), "compute_input", duration_json(s->compute_input),
                     "compute_infer", duration_json(s->compute_infer), "compute_output",
                     duration_json(s->compute_output), "cache_hit", duration_json(none),
                     "cache_miss", duration_json(none), "batch_stats", batches, "memory_usage");
}

json_t *kserve_v2_stats_json(const char *model, kserve_v2_view v,
                             const kserve_v2_view_stats views_stats[KSERVE_V2_VIEW_COUNT],
                             const kserve_v2_engine_stats *engine) {
    json_t *a = json_array();
    for (int i = 0; i < KSERVE_V2_VIEW_COUNT; i++)
        if (v == KSERVE_V2_VIEW_COUNT || (int)v == i)
            json_array_append_new(a, view_stats_json(model, (kserve_v2_view)i, &views_stats[i],
                                                     engine));
    return json_pack("{s:o}", "model_stats", a);
}

json_t *kserve_v2_error_json(const char *message) {
    char clean[1024];
    api_utf8_sanitize(message, clean, sizeof clean);
    return json_pack("{s:s}", "error", clean);
}
