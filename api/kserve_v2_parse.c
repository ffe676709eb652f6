/* kserve_v2_parse.c - KServe v2 infer requests (JSON and binary tensor data) to jobs. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "clock.h"
#include "json_scan.h"
#include "kserve_v2.h"
#include "kserve_v2_views.h"
#include "preprocess.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "binary tensor data is little-endian; this file copies floats as they are in memory"
#endif

/* ---------------------------------------------------------------- request parsing */

/* Everything one parse needs, so helpers stay short. */
typedef struct {
    const classify_limits *lim;
    const image_input_format *fmt;
    const kserve_v2_view_spec *view;
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
    if (c->req->deadline_ns && clock_monotonic_ns() > c->req->deadline_ns)
        return fail(c, API_DEADLINE_EXCEEDED, "the request's deadline passed after %d of its %d "
                    "images were decoded", i, n);
    preprocess_status ps = preprocess_bytes(bytes, len, &c->fmt->decode, c->fmt->preprocess,
                                            c->fmt->image_hw, out, why, sizeof why);
    if (ps == PREPROCESS_OK) return API_OK;
    if (n > 1) return fail(c, api_status_from_preprocess(ps), "image element %d: %s", i, why);
    return fail(c, api_status_from_preprocess(ps), "%s", why);
}

/* "image" BYTES elements, from base64 JSON strings or length-prefixed binary data. */
static api_status read_images(parse_ctx *c, json_t *data, const unsigned char *bin,
                              size_t bin_len, int n, float *out) {
    const size_t image_floats = (size_t)3 * c->fmt->image_hw * c->fmt->image_hw;
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
        if (kserve_v2_view_has_output(c->view, (kserve_v2_output_kind)k, c->req->gradcam_hw))
            snprintf(out + strlen(out), cap - strlen(out), "%s%s", n++ ? ", " : "",
                     kserve_v2_output_names[k]);
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
        if (strcmp(n, kserve_v2_output_names[k]) == 0 && c->view->outputs[k]) spec.kind = k;
    const bool gradcam_named = strcmp(n, kserve_v2_output_names[KSERVE_V2_OUT_GRADCAM]) == 0;
    if (gradcam_named && !c->req->gradcam_hw)
        return fail(c, API_BAD_REQUEST, "output 'gradcam': explanations are not supported in "
                    "int8; serve with --precision f32 or bf16");
    if (gradcam_named && spec.kind == KSERVE_V2_OUT_COUNT)
        return fail(c, API_BAD_REQUEST, "output 'gradcam' is served by the model's explain "
                    "view (its name with _explain, e.g. vgg16_explain), not by this one");
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
        /* None named: every output the view lists (the explain view's gradcam with each
         * image's top-1 class). */
        for (int k = 0; k < KSERVE_V2_OUT_COUNT; k++)
            if (kserve_v2_view_has_output(c->view, (kserve_v2_output_kind)k, c->req->gradcam_hw))
                out->outputs[out->n_outputs++] =
                    (kserve_v2_output){(kserve_v2_output_kind)k, binary_default, 0};
        out->want_logits = c->view->outputs[KSERVE_V2_OUT_LOGITS];
        out->want_gradcam =
            kserve_v2_view_has_output(c->view, KSERVE_V2_OUT_GRADCAM, c->req->gradcam_hw);
        out->gradcam_class = -1;
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

/* What jansson may build for the JSON header: as many numbers as max_images tensors hold
 * (FP32 "data"), the arrays that nest them by the shape, a little more for the rest; then its
 * memory, charged before it is built (issue 25: 20 MiB of {} cost 1.5 GiB). */
static api_status check_json_cost(parse_ctx *c, const kserve_v2_http_request *req,
                                  size_t json_len) {
    const size_t n = (size_t)c->lim->max_images, hw = (size_t)c->fmt->image_hw;
    const json_scan_limits lim = {.max_values = n * 3 * hw * hw + 4096,
                                  .max_containers = n * (3 * hw + 4) + 1024,
                                  .max_depth = 32};
    json_scan_counts counts;
    switch (json_scan((const char *)req->body, json_len, &lim, &counts)) {
    case JSON_SCAN_TOO_MANY_VALUES:
        return fail(c, API_BODY_TOO_LARGE, "the JSON request holds more than %zu values (%d "
                    "images of 3x%dx%d floats at most)", lim.max_values, c->lim->max_images,
                    c->fmt->image_hw, c->fmt->image_hw);
    case JSON_SCAN_TOO_MANY_CONTAINERS:
        return fail(c, API_BODY_TOO_LARGE, "the JSON request holds more than %zu objects and "
                    "arrays", lim.max_containers);
    case JSON_SCAN_TOO_DEEP:
        return fail(c, API_BAD_REQUEST, "the JSON request nests deeper than %d levels",
                    lim.max_depth);
    case JSON_SCAN_OK: break;
    }
    long long cost = json_scan_cost_bytes(&counts);
    if (req->reserve && !req->reserve(req->reserve_ctx, cost))
        return fail(c, API_MEMORY_BUDGET, "parsing this request needs about %lld bytes and "
                    "uploads in progress hold max_buffered_bytes; retry later", cost);
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
    api_status st = check_json_cost(c, req, json_len);
    if (st != API_OK) return st;
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
    const int hw = c->fmt->image_hw;
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
    const size_t image_floats = (size_t)3 * c->fmt->image_hw * c->fmt->image_hw;
    float *inputs = malloc((size_t)out->n_images * image_floats * sizeof(float));
    if (!inputs) return fail(c, API_INTERNAL, "out of memory");
    double t0 = clock_monotonic_ns() / 1e6;
    api_status st = out->tensor_input
                        ? read_tensor(c, in->data, bin, bin_len, in->dims, in->ndim, inputs)
                        : read_images(c, in->data, bin, bin_len, out->n_images, inputs);
    out->decode_ms = clock_monotonic_ns() / 1e6 - t0;
    if (st != API_OK) {
        free(inputs);
        return st;
    }
    out->inputs = inputs;
    return API_OK;
}

api_status kserve_v2_infer_parse(const kserve_v2_http_request *req, const classify_limits *lim,
                                 const image_input_format *fmt, kserve_v2_infer *out, char *msg,
                                 size_t msglen) {
    memset(out, 0, sizeof *out);
    parse_ctx c = {lim, fmt, &kserve_v2_views[req->view < KSERVE_V2_VIEW_COUNT ? req->view : 0],
                   req, msg, msglen};
    if (req->body_over_limit)
        return fail(&c, API_BODY_TOO_LARGE, "request body is over the limit of %lld bytes",
                    lim->max_body_bytes);
    if (lim->max_images < 1 || fmt->image_hw < 1)
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

