/* http_v2.c - the KServe v2 routes: health, metadata, config, statistics, repository and
 * infer. The bodies come from api/kserve_v2.h; only headers, state and the queue are here. */
#include <stdio.h>
#include <string.h>

#include "http_internal.h"
#include "infer_request.h"
#include "v2_facts.h"

/* GET (and the repository POSTs): the bodies come from api/kserve_v2.h; only the state is here. */
enum MHD_Result http_v2_answer(request *r) {
    http_server *s = r->srv;
    bool ready = atomic_load(&s->state) == SERVICE_READY;
    const kserve_v2_model_facts f = v2_model_facts(s->cfg, atomic_load(&s->model), ready);
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
        return http_send_json(r, 200, v2_stats_json(s->metrics, s->cfg->model, r->view), API_OK);
    case KSERVE_V2_ROUTE_MODEL_LABELS: {
        const vgg_labels *labels = atomic_load(&s->model)->labels;
        if (!labels) /* known once the weights are loaded */
            return http_send_error(r, API_NOT_READY, "the model's labels are not loaded yet");
        return http_send_json(r, 200, kserve_v2_model_labels_json(name, labels), API_OK);
    }
    case KSERVE_V2_ROUTE_ALL_STATS:
        return http_send_json(r, 200, v2_stats_json(s->metrics, s->cfg->model, KSERVE_V2_VIEW_COUNT), API_OK);
    case KSERVE_V2_ROUTE_REPOSITORY_INDEX:
        return http_send_json(r, 200, kserve_v2_repository_index_json(&f), API_OK);
    case KSERVE_V2_ROUTE_REPOSITORY_CONTROL:
        return http_send_error(r, API_BAD_REQUEST, KSERVE_V2_REPOSITORY_FIXED);
    default:
        return http_send_error(r, API_INTERNAL, "unroutable");
    }
}

/* The JSON header's cost, charged to max_buffered_bytes with the body's (released at the
 * request's completion). */
static bool reserve_for_json(void *ctx, long long bytes) { return http_reserve(ctx, bytes); }

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
        .reserve = reserve_for_json,
        .reserve_ctx = r,
        .deadline_ns = http_deadline_ns(r),
    };
    in.body = http_body_bytes(r, &in.body_len);
    api_status st = kserve_v2_job_parse(&in, &r->srv->limits, &r->srv->input, r->job, msg,
                                        sizeof msg);
    r->n_images = r->job->n_images;
    if (st == API_OK) st = http_submit_job(r, msg, sizeof msg);
    return st == API_OK ? MHD_YES : http_send_error(r, st, msg);
}
