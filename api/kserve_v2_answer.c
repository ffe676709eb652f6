/* kserve_v2_answer.c - what the workers computed to a KServe v2 infer response. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byte_buffer.h"
#include "kserve_v2.h"
#include "kserve_v2_views.h"
#include "labels.h"
#include "topk.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "binary tensor data is little-endian; this file copies floats as they are in memory"
#endif

/* ---------------------------------------------------------------- answers */

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
static void classification_values(const output_values *v, const vgg_labels *labels, int k,
                                  json_t *data, byte_buffer *bin) {
    int idx[LABELS_COUNT];
    const int n_classes = v->d1;
    if (k > LABELS_COUNT) k = LABELS_COUNT;
    for (int i = 0; i < v->n; i++) {
        const float *row = v->values + (size_t)i * n_classes;
        int got = topk_indices(row, n_classes, k, idx);
        for (int j = 0; j < got; j++) {
            char s[64 + VGG_LABELS_MAX_NAME];
            const char *label = vgg_labels_name(labels, idx[j]);
            int len = snprintf(s, sizeof s, "%.9g:%d:%s", (double)row[idx[j]], idx[j],
                               label ? label : "");
            if (len < 0) len = 0;
            if ((size_t)len >= sizeof s) len = (int)sizeof s - 1;
            if (data) {
                json_array_append_new(data, json_stringn(s, (size_t)len));
            } else {
                unsigned char le[4] = {(unsigned char)len, (unsigned char)(len >> 8), 0, 0};
                byte_buffer_append(bin, le, 4);
                byte_buffer_append(bin, s, (size_t)len);
            }
        }
    }
}

/* Whether every value of v is finite (JSON has no NaN; binary answers are held to the same). */
static bool all_finite(const output_values *v) {
    const size_t count = (size_t)v->n * v->d1 * (v->d2 ? v->d2 : 1);
    for (size_t i = 0; i < count; i++)
        if (!isfinite(v->values[i])) return false;
    return true;
}

/* One output tensor: the JSON object, and its bytes into bin when binary. Returns NULL for
 * a non-finite value (JSON has no NaN), missing values or no memory. */
static json_t *output_json(const kserve_v2_output *o, const output_values *v,
                           const vgg_labels *labels, byte_buffer *bin) {
    if (!v->values || !all_finite(v)) return NULL;
    const size_t count = (size_t)v->n * v->d1 * (v->d2 ? v->d2 : 1);
    json_t *data = o->binary ? NULL : json_array();
    size_t start = bin->len;
    const int k = o->classification > v->d1 ? v->d1 : o->classification;
    if (k > 0) classification_values(v, labels, k, data, bin);
    else if (data)
        for (size_t i = 0; i < count; i++) json_array_append_new(data, json_real(v->values[i]));
    else byte_buffer_append(bin, v->values, count * sizeof(float));
    json_t *o_json = json_pack("{s:s, s:s, s:[i, i]}", "name", kserve_v2_output_names[o->kind], "datatype",
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
    byte_buffer bin = {0};
    json_t *outputs = json_array();
    bool binary = false;
    for (int i = 0; i < in->n_outputs; i++) {
        const kserve_v2_output *o = &in->outputs[i];
        const output_values v = values_of(o, in->n_images, res);
        json_t *t = output_json(o, &v, res->labels, &bin);
        if (!t) {
            snprintf(msg, msglen, "cannot encode output %d: %s", i,
                     bin.failed ? "out of memory" : "non-finite values or no data");
            json_decref(outputs);
            byte_buffer_free(&bin);
            return -1;
        }
        binary |= o->binary;
        json_array_append_new(outputs, t);
    }
    char version[24];
    snprintf(version, sizeof version, "%lld", res->version > 0 ? res->version : 1);
    json_t *root = json_pack("{s:s, s:s}", "model_name", model, "model_version", version);
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
        byte_buffer_free(&bin);
        return -1;
    }
    memcpy(body, text, json_len);
    if (bin.len) memcpy(body + json_len, bin.data, bin.len);
    body[json_len + bin.len] = '\0';
    free(text);
    out->data = body;
    out->len = json_len + bin.len;
    out->json_len = json_len;
    out->binary = binary;
    byte_buffer_free(&bin);
    return 0;
}

/* ---------------------------------------------------------------- structured answers */

int kserve_v2_infer_tensors(const kserve_v2_infer *in, const kserve_v2_results *res,
                            kserve_v2_tensors *out, char *msg, size_t msglen) {
    memset(out, 0, sizeof *out);
    byte_buffer bin = {0};
    for (int i = 0; i < in->n_outputs; i++) {
        const kserve_v2_output *o = &in->outputs[i];
        const output_values v = values_of(o, in->n_images, res);
        if (!v.values || !all_finite(&v)) {
            snprintf(msg, msglen, "cannot encode output %d: non-finite values or no data", i);
            byte_buffer_free(&bin);
            return -1;
        }
        kserve_v2_tensor *t = &out->t[out->n++];
        const int k = o->classification > v.d1 ? v.d1 : o->classification;
        t->name = kserve_v2_output_names[o->kind];
        t->datatype = k > 0 ? "BYTES" : "FP32";
        t->shape[0] = v.n;
        t->shape[1] = k > 0 ? k : v.d1;
        t->shape[2] = v.d2;
        t->ndim = v.d2 && k == 0 ? 3 : 2;
        t->offset = bin.len;
        if (k > 0) classification_values(&v, res->labels, k, NULL, &bin);
        else byte_buffer_append(&bin, v.values, (size_t)v.n * v.d1 * (v.d2 ? v.d2 : 1) * sizeof(float));
        t->len = bin.len - t->offset;
    }
    if (bin.failed) {
        snprintf(msg, msglen, "out of memory");
        byte_buffer_free(&bin);
        return -1;
    }
    out->data = byte_buffer_take(&bin, &out->len);
    return 0;
}

void kserve_v2_tensors_free(kserve_v2_tensors *t) {
    free(t->data);
    memset(t, 0, sizeof *t);
}
