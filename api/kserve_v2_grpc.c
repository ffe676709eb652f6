/* kserve_v2_grpc.c - gRPC's v2 requests to the REST request the v2 parser reads. */
#include "kserve_v2_grpc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byte_buffer.h"
#include "infer_request.h"

/* ---------------------------------------------------------------- routes */

static const char *route_suffix(kserve_v2_route route) {
    switch (route) {
    case KSERVE_V2_ROUTE_MODEL_READY: return "/ready";
    case KSERVE_V2_ROUTE_INFER: return "/infer";
    case KSERVE_V2_ROUTE_MODEL_CONFIG: return "/config";
    case KSERVE_V2_ROUTE_MODEL_STATS: return "/stats";
    default: return "";
    }
}

/* Whether s can be a path segment: 1..200 bytes, no '/', NUL, '?' or '#'. */
static bool segment_ok(kserve_v2_str s) {
    if (s.len == 0 || s.len > 200) return false;
    for (size_t i = 0; i < s.len; i++)
        if (s.s[i] == '/' || s.s[i] == '\0' || s.s[i] == '?' || s.s[i] == '#') return false;
    return true;
}

api_status kserve_v2_grpc_route(const kserve_v2_catalog *catalog, kserve_v2_str name,
                                kserve_v2_str version, kserve_v2_route route, kserve_v2_target *t,
                                char *msg, size_t msglen) {
    char clean[256];
    *t = (kserve_v2_target){.view = KSERVE_V2_VIEW_FULL};
    if (!segment_ok(name) || (version.len && !segment_ok(version))) {
        snprintf(clean, sizeof clean, "%.*s", (int)(name.len < 200 ? name.len : 200), name.s ? name.s : "");
        char quoted[256];
        api_utf8_sanitize(clean, quoted, sizeof quoted);
        snprintf(msg, msglen, "unknown model '%s'%s", quoted,
                 segment_ok(name) ? " version" : "");
        return API_NOT_FOUND;
    }
    char path[512];
    if (version.len)
        snprintf(path, sizeof path, "/v2/models/%.*s/versions/%.*s%s", (int)name.len, name.s,
                 (int)version.len, version.s, route_suffix(route));
    else
        snprintf(path, sizeof path, "/v2/models/%.*s%s", (int)name.len, name.s,
                 route_suffix(route));
    char why[400];
    kserve_v2_route got = kserve_v2_route_resolve(path, catalog, t, why, sizeof why);
    if (got == route) return API_OK;
    api_utf8_sanitize(got == KSERVE_V2_ROUTE_NOT_FOUND ? why : "no such model", clean,
                      sizeof clean);
    snprintf(msg, msglen, "%s", clean);
    return API_NOT_FOUND;
}

/* ---------------------------------------------------------------- infer requests */

/* A protobuf string as JSON; bytes that are not UTF-8 (protobuf checks proto3 strings, but not
 * every client library does) become '?', and the parser then names what is wrong. */
static json_t *str_json(kserve_v2_str s) {
    json_t *j = json_stringn(s.s ? s.s : "", s.len);
    if (j || s.len == 0) return j;
    char raw[1024], clean[1024];
    snprintf(raw, sizeof raw, "%.*s", (int)(s.len < sizeof raw ? s.len : sizeof raw - 1), s.s);
    return json_string(api_utf8_sanitize(raw, clean, sizeof clean));
}

static json_t *param_json(const kserve_v2_param *p) {
    switch (p->kind) {
    case KSERVE_V2_PARAM_BOOL: return json_boolean(p->b);
    case KSERVE_V2_PARAM_INT64: return json_integer((json_int_t)p->i);
    case KSERVE_V2_PARAM_STRING: return str_json(p->s);
    case KSERVE_V2_PARAM_DOUBLE: return json_real(p->d);
    case KSERVE_V2_PARAM_UINT64:
        return p->u <= INT64_MAX ? json_integer((json_int_t)p->u) : json_real((double)p->u);
    case KSERVE_V2_PARAM_UNSET: break;
    }
    return NULL;
}

/* {"key": value, ...} of the set parameters (new reference, NULL when out of memory). */
static json_t *params_json(kserve_v2_params ps) {
    json_t *o = json_object();
    for (int i = 0; o && i < ps.n; i++) {
        json_t *v = param_json(&ps.items[i]);
        if (!v) continue;
        char key[128], clean[128];
        const kserve_v2_str k = ps.items[i].key;
        snprintf(key, sizeof key, "%.*s", (int)(k.len < sizeof key ? k.len : sizeof key - 1),
                 k.s ? k.s : "");
        json_object_set_new(o, api_utf8_sanitize(key, clean, sizeof clean), v);
    }
    return o;
}

static json_t *input_json(const kserve_v2_grpc_input *in) {
    json_t *shape = json_array();
    for (int d = 0; shape && d < in->ndim; d++) json_array_append_new(shape, json_integer(in->shape[d]));
    json_t *params = params_json(in->params);
    if (params)
        json_object_set_new(params, "binary_data_size", json_integer((json_int_t)in->data_len));
    return json_pack("{s:o, s:o, s:o, s:o}", "name", str_json(in->name), "datatype",
                     str_json(in->datatype), "shape", shape, "parameters", params);
}

/* The REST JSON header of r (new reference, NULL when out of memory). */
static json_t *request_json(const kserve_v2_grpc_request *r) {
    json_t *root = json_object(), *inputs = json_array();
    if (!root || !inputs) {
        json_decref(root);
        json_decref(inputs);
        return NULL;
    }
    if (r->id.len) json_object_set_new(root, "id", str_json(r->id));
    if (r->params.n) json_object_set_new(root, "parameters", params_json(r->params));
    for (int i = 0; i < r->n_inputs; i++) json_array_append_new(inputs, input_json(&r->inputs[i]));
    json_object_set_new(root, "inputs", inputs);
    if (r->n_outputs) {
        json_t *outputs = json_array();
        for (int i = 0; outputs && i < r->n_outputs; i++)
            json_array_append_new(outputs, json_pack("{s:o, s:o}", "name",
                                                     str_json(r->outputs[i].name), "parameters",
                                                     params_json(r->outputs[i].params)));
        json_object_set_new(root, "outputs", outputs);
    }
    return root;
}

static bool is_job_model(void *ctx, const char *name) { return strcmp(ctx, name) == 0; }

api_status kserve_v2_grpc_job_parse(const kserve_v2_grpc_request *r, const classify_limits *lim,
                                    const image_input_format *fmt, inference_job *job, char *msg,
                                    size_t msglen) {
    /* The service chose job->model from this request's name and version: only the view is
     * read here. */
    const kserve_v2_catalog one = {is_job_model, (void *)job->model->name};
    kserve_v2_target t;
    api_status st = kserve_v2_grpc_route(&one, r->model_name, r->model_version,
                                         KSERVE_V2_ROUTE_INFER, &t, msg, msglen);
    if (st != API_OK) return st;
    const kserve_v2_view view = t.view;
    json_t *root = request_json(r);
    char *header = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    byte_buffer body = {0};
    if (header) byte_buffer_append(&body, header, strlen(header));
    for (int i = 0; i < r->n_inputs; i++)
        if (r->inputs[i].data_len) byte_buffer_append(&body, r->inputs[i].data, r->inputs[i].data_len);
    if (!header || body.failed) {
        free(header);
        byte_buffer_free(&body);
        snprintf(msg, msglen, "out of memory");
        return API_INTERNAL;
    }
    char header_length[24];
    snprintf(header_length, sizeof header_length, "%zu", strlen(header));
    free(header);
    /* The header holds no values (they are binary), so its JSON costs nothing to charge. */
    const kserve_v2_http_request req = {.header_length = header_length, .body = body.data,
                                        .body_len = body.len, .view = view,
                                        .deadline_ns = r->deadline_ns};
    st = kserve_v2_job_parse(&req, lim, fmt, job, msg, msglen);
    byte_buffer_free(&body);
    return st;
}
