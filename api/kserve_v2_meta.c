/* kserve_v2_meta.c - KServe v2 server and model metadata, Triton's model configuration,
 * repository index and statistics. */
#include "kserve_v2.h"
#include "kserve_v2_views.h"

/* ---------------------------------------------------------------- metadata and config */

json_t *kserve_v2_server_metadata_json(void) {
    return json_pack("{s:s, s:s, s:[s, s, s, s, s]}", "name", "vggserve", "version",
                     VGGSERVE_VERSION, "extensions", "binary_tensor_data", "classification",
                     "model_configuration", "model_repository", "statistics");
}

/* The view's inputs and outputs as metadata tensors ({"name", "datatype", "shape"}, batch
 * dimension -1) or, with config, as Triton's configuration ({"name", "data_type", "dims"}
 * without the batch dimension, and "format" for the tensor input). */
static json_t *view_inputs(const kserve_v2_model_facts *f, const kserve_v2_view_spec *v, bool config) {
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

static json_t *view_outputs(const kserve_v2_model_facts *f, const kserve_v2_view_spec *v, bool config) {
    json_t *a = json_array();
    for (int k = 0; k < KSERVE_V2_OUT_COUNT; k++) {
        if (!kserve_v2_view_has_output(v, (kserve_v2_output_kind)k, f->gradcam_hw)) continue;
        const bool map = k == KSERVE_V2_OUT_GRADCAM;
        json_t *dims = map ? json_pack("[i, i]", f->gradcam_hw, f->gradcam_hw)
                           : json_pack("[i]", f->n_classes);
        if (!config) json_array_insert_new(dims, 0, json_integer(-1));
        json_array_append_new(a, json_pack("{s:s, s:s, s:o}", "name", kserve_v2_output_names[k],
                                           config ? "data_type" : "datatype",
                                           config ? "TYPE_FP32" : "FP32",
                                           config ? "dims" : "shape", dims));
    }
    return a;
}

json_t *kserve_v2_model_metadata_json(const kserve_v2_model_facts *f, kserve_v2_view v) {
    char name[KSERVE_V2_MAX_NAME];
    kserve_v2_view_name(f->model, v, name, sizeof name);
    char version[24];
    snprintf(version, sizeof version, "%lld", f->version > 0 ? f->version : 1);
    return json_pack("{s:s, s:[s], s:s, s:o, s:o}", "name", name, "versions",
                     version, "platform", KSERVE_V2_PLATFORM, "inputs",
                     view_inputs(f, &kserve_v2_views[v], false), "outputs", view_outputs(f, &kserve_v2_views[v], false));
}

json_t *kserve_v2_model_config_json(const kserve_v2_model_facts *f, kserve_v2_view v) {
    char name[KSERVE_V2_MAX_NAME];
    kserve_v2_view_name(f->model, v, name, sizeof name);
    return json_pack("{s:s, s:s, s:s, s:{s:{s:i}}, s:i, s:o, s:o, s:{s:[i], s:I}, "
                     "s:[{s:s, s:s, s:i}]}",
                     "name", name, "platform", KSERVE_V2_PLATFORM, "backend", "onednn",
                     "version_policy", "latest", "num_versions", 1, "max_batch_size",
                     f->max_images_per_request, "input", view_inputs(f, &kserve_v2_views[v], true),
                     "output", view_outputs(f, &kserve_v2_views[v], true), "dynamic_batching",
                     "preferred_batch_size", f->max_batch, "max_queue_delay_microseconds",
                     (json_int_t)f->max_queue_delay_us, "instance_group", "name", f->model,
                     "kind", "KIND_CPU", "count", f->workers);
}

json_t *kserve_v2_model_labels_json(const char *name, const vgg_labels *labels) {
    json_t *names = json_array(), *wnids = NULL;
    for (int i = 0; i < labels->n; i++) {
        const char *w = vgg_labels_wnid(labels, i);
        if (!wnids && w) {
            wnids = json_array(); /* nulls for the classes before the first that has one */
            for (int j = 0; j < i; j++) json_array_append_new(wnids, json_null());
        }
        if (wnids) json_array_append_new(wnids, w ? json_string(w) : json_null());
        json_array_append_new(names, json_string(vgg_labels_name(labels, i)));
    }
    json_t *o = json_pack("{s:s, s:s, s:i, s:o}", "name", name, "version",
                          KSERVE_V2_MODEL_VERSION, "count", labels->n, "labels", names);
    if (o && wnids) json_object_set_new(o, "wnids", wnids);
    else json_decref(wnids);
    return o;
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

json_t *kserve_v2_repository_entries_json(const kserve_v2_index_entry *e, int n,
                                          bool ready_only) {
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++) {
        const bool ready = e[i].state == KSERVE_V2_MODEL_READY;
        if (ready_only && !ready) continue;
        char version[24];
        snprintf(version, sizeof version, "%lld", e[i].version);
        /* A served version is every view's; another state is the model's. */
        for (int v = 0; v < (ready ? KSERVE_V2_VIEW_COUNT : 1); v++) {
            char name[KSERVE_V2_MAX_NAME];
            kserve_v2_view_name(e[i].name, (kserve_v2_view)v, name, sizeof name);
            json_t *m = json_pack("{s:s, s:s}", "name", name, "state",
                                  kserve_v2_model_state_names[e[i].state]);
            if (m && e[i].version > 0) json_object_set_new(m, "version", json_string(version));
            if (m && e[i].reason[0]) {
                char clean[300];
                json_object_set_new(m, "reason",
                                    json_string(api_utf8_sanitize(e[i].reason, clean, sizeof clean)));
            }
            json_array_append_new(a, m);
        }
    }
    return a;
}

static json_t *duration_json(kserve_v2_duration d) {
    return json_pack("{s:I, s:I}", "count", (json_int_t)d.count, "ns", (json_int_t)d.ns);
}

static json_t *view_stats_json(const char *model, const char *version, kserve_v2_view v,
                               const kserve_v2_view_stats *s, const kserve_v2_engine_stats *e) {
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
                     "name", name, "version", version, "last_inference",
                     (json_int_t)s->last_inference_ms, "inference_count",
                     (json_int_t)s->inference_count, "execution_count",
                     (json_int_t)e->execution_count, "inference_stats", "success",
                     duration_json(s->success), "fail", duration_json(s->fail), "queue",
                     duration_json(s->queue), "compute_input", duration_json(s->compute_input),
                     "compute_infer", duration_json(s->compute_infer), "compute_output",
                     duration_json(s->compute_output), "cache_hit", duration_json(none),
                     "cache_miss", duration_json(none), "batch_stats", batches, "memory_usage");
}

void kserve_v2_stats_append(json_t *model_stats, const char *model, long long version,
                            kserve_v2_view v,
                            const kserve_v2_view_stats views_stats[KSERVE_V2_VIEW_COUNT],
                            const kserve_v2_engine_stats *engine) {
    char ver[24];
    snprintf(ver, sizeof ver, "%lld", version);
    for (int i = 0; i < KSERVE_V2_VIEW_COUNT; i++)
        if (v == KSERVE_V2_VIEW_COUNT || (int)v == i)
            json_array_append_new(model_stats, view_stats_json(model, ver, (kserve_v2_view)i,
                                                               &views_stats[i], engine));
}

json_t *kserve_v2_stats_json(const char *model, kserve_v2_view v,
                             const kserve_v2_view_stats views_stats[KSERVE_V2_VIEW_COUNT],
                             const kserve_v2_engine_stats *engine) {
    json_t *a = json_array();
    kserve_v2_stats_append(a, model, 1, v, views_stats, engine);
    return json_pack("{s:o}", "model_stats", a);
}
