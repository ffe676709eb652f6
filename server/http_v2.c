/* http_v2.c - the KServe v2 routes: health, metadata, config, statistics, repository and
 * infer. The bodies come from api/kserve_v2.h; only headers, state and the queue are here. */
#include <stdio.h>
#include <string.h>

#include "http_internal.h"
#include "infer_request.h"

static kserve_v2_model_facts facts_of(const http_server *s) {
    const served_model *m = atomic_load(&s->model);
    kserve_v2_model_facts f = {
        .model = s->cfg->model,
        .image_hw = m->image_hw,
        .n_classes = m->n_classes,
        .max_images_per_request = (int)s->cfg->max_images_per_request,
        .max_batch = (int)s->cfg->max_batch_size,
        .max_queue_delay_us = s->cfg->max_queue_delay_us,
        .workers = (int)s->cfg->workers,
        .ready = atomic_load(&s->state) == SERVICE_READY,
        .gradcam_hw = m->explain_hw,
    };
    return f;
}

/* Triton's statistics, read from the counters /metrics renders. */
static json_t *v2_stats_json(const http_server *s, kserve_v2_view v) {
    kserve_v2_view_stats views[KSERVE_V2_VIEW_COUNT];
    kserve_v2_engine_stats engine;
    for (int i = 0; i < KSERVE_V2_VIEW_COUNT; i++) {
        metrics_model_totals t;
        metrics_model_totals_get(s->metrics, i, &t);
        views[i] = (kserve_v2_view_stats){
            t.images, t.last_unix_ms,
            {t.success.count, t.success.ns}, {t.fail.count, t.fail.ns},
            {t.queue.count, t.queue.ns}, {t.input.count, t.input.ns},
            {t.infer.count, t.infer.ns}, {t.output.count, t.output.ns}};
    }
    engine.execution_count = metrics_batches_run(s->metrics);
    for (int b = 1; b <= KSERVE_V2_MAX_BATCH_STATS; b++) {
        metrics_duration d = metrics_batch_size_totals(s->metrics, b);
        engine.batch_infer[b - 1] = (kserve_v2_duration){d.count, d.ns};
    }
    return kserve_v2_stats_json(s->cfg->model, v, views, &engine);
}

/* GET (and the repository POSTs): the bodies come from api/kserve_v2.h; only the state is here. */
enum MHD_Result http_v2_answer(request *r) {
    http_server *s = r->srv;
    bool ready = atomic_load(&s->state) == SERVICE_READY;
    const kserve_v2_model_facts f = facts_of(s);
    char name[KSERVE_V2_MAX_NAME];
    kserve_v2_view_name(s->cfg->model, r->view, name, sizeof name);
    if (!ready &&
        (r->v2_route == KSERVE_V2_ROUTE_READY || r->v2_route == KSERVE_V2_ROUTE_MODEL_READY))
        snprintf(r->error, sizeof r->error, "service is %s",
                 service_state_name(atomic_load(&s->state)));
    switch (r->v2_route) {
    case KSERVE_V2_ROUTE_SERVER_METADATA:
        return http_send_json(r, 200, kserve_v2_server_metadata_json(), API_OK);
    case KSERVE_V2_ROUTE_LIVE:
        return http_send_json(r, 200, json_pack("{s:b}", "live", 1), API_OK);
    case KSERVE_V2_ROUTE_READY:
        return http_send_json(r, ready ? 200 : 503, json_pack("{s:b}", "ready", ready),
                              ready ? API_OK : API_NOT_READY);
    case KSERVE_V2_ROUTE_MODEL_READY:
        return http_send_json(r, ready ? 200 : 503, json_pack("{s:s, s:b}", "name", name, "ready", ready),
                              ready ? API_OK : API_NOT_READY);
    case KSERVE_V2_ROUTE_MODEL_METADATA:
        return http_send_json(r, 200, kserve_v2_model_metadata_json(&f, r->view), API_OK);
    case KSERVE_V2_ROUTE_MODEL_CONFIG:
        return http_send_json(r, 200, kserve_v2_model_config_json(&f, r->view), API_OK);
    case KSERVE_V2_ROUTE_MODEL_STATS:
        return http_send_json(r, 200, v2_stats_json(s, r->view), API_OK);
    case KSERVE_V2_ROUTE_MODEL_LABELS: {
        const vgg_labels *labels = atomic_load(&s->model)->labels;
        if (!labels) /* known once the weights are loaded */
            return http_send_error(r, API_NOT_READY, "the model's labels are not loaded yet");
        return http_send_json(r, 200, kserve_v2_model_labels_json(name, labels), API_OK);
    }
    case KSERVE_V2_ROUTE_ALL_STATS:
        return http_send_json(r, 200, v2_stats_json(s, KSERVE_V2_VIEW_COUNT), API_OK);
    case KSERVE_V2_ROUTE_REPOSITORY_INDEX:
        return http_send_json(r, 200, kserve_v2_repository_index_json(&f), API_OK);
    case KSERVE_V2_ROUTE_REPOSITORY_CONTROL:
        return http_send_error(r, API_BAD_REQUEST, "models cannot be loaded or unloaded: the model "
                               "set is fixed at start-up (POST /v2/repository/index lists it)");
    default:
        return http_send_error(r, API_INTERNAL, "unroutable");
    }
}

/* POST /v2/models/M/infer: the body to a job, submitted. */
enum MHD_Result http_v2_infer_body_done(request *r) {
    char msg[800];
    r->job = inference_job_new(atomic_load(&r->srv->model), JOB_ANSWER_V2);
    if (!r->job) return http_send_error(r, API_INTERNAL, "out of memory");
    kserve_v2_http_request in = {
        .view = r->view,
        .header_length = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                                     "Inference-Header-Content-Length"),
        .body_over_limit = r->body_fate == BODY_TOO_LARGE,
    };
    in.body = http_body_bytes(r, &in.body_len);
    api_status st = kserve_v2_job_parse(&in, &r->srv->limits, &r->srv->input, r->job, msg,
                                        sizeof msg);
    r->n_images = r->job->n_images;
    if (st == API_OK) st = http_submit_job(r, msg, sizeof msg);
    return st == API_OK ? MHD_YES : http_send_error(r, st, msg);
}
