/* http_v2.c - the KServe v2 routes: health, metadata, config, statistics, repository and
 * infer. The bodies come from api/kserve_v2.h; only headers, state and the queue are here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"
#include "infer_request.h"
#include "model_settings.h"
#include "v2_facts.h"

/* POST /v2/repository/index: every model and version, with its state. */
static enum MHD_Result index_answer(request *r, repository *repo, bool ready) {
    if (!repo) {
        const kserve_v2_model_facts f = v2_model_facts(r->srv->cfg, &r->srv->loading_model, NULL,
                                                       false);
        return http_send_json(r, 200, kserve_v2_repository_index_json(&f), API_OK);
    }
    json_t *j = v2_repository_index_json(repo, ready, false);
    if (!j) return http_send_error(r, API_INTERNAL, "out of memory");
    return http_send_json(r, 200, j, API_OK);
}

/* The loader thread: the load or unload ended; resume the connection to answer it. */
static void on_control_done(void *ctx, api_status st, const char *msg) {
    request *r = ctx;
    pthread_mutex_lock(&r->lock);
    r->control_status = st;
    snprintf(r->control_msg, sizeof r->control_msg, "%s", msg);
    if (r->phase == REQUEST_QUEUED) { /* always: the request suspended under this lock */
        r->phase = REQUEST_COMPUTED;
        MHD_resume_connection(r->conn);
    }
    pthread_mutex_unlock(&r->lock);
}

/* POST /v2/repository/models/M/load|unload: queued for the loader; the connection waits
 * suspended (no HTTP thread is held) and is answered when the operation ends. */
static enum MHD_Result control_start(request *r, repository *repo) {
    if (repo && repository_control_mode(repo) == REPO_CONTROL_POLL)
        return http_send_error(r, API_BAD_REQUEST, KSERVE_V2_REPOSITORY_POLLING);
    if (!repo || repository_control_mode(repo) != REPO_CONTROL_EXPLICIT)
        return http_send_error(r, API_BAD_REQUEST, KSERVE_V2_REPOSITORY_FIXED);
    const char *name = r->target.model;
    char msg[600], *config = NULL;
    if (!r->target.unload) {
        size_t len;
        const unsigned char *body = http_body_bytes(r, &len);
        model_settings any = {0};
        if (model_settings_load_body(body, len, name, &any, &config, msg, sizeof msg) != 0)
            return http_send_error(r, API_BAD_REQUEST, msg);
    }
    pthread_mutex_lock(&r->lock);
    api_status st = repository_request(repo, r->target.unload ? REPOSITORY_UNLOAD : REPOSITORY_LOAD,
                                       name, config, on_control_done, r, msg, sizeof msg);
    if (st == API_OK) {
        r->controlling = true;
        r->phase = REQUEST_QUEUED;
        MHD_suspend_connection(r->conn);
    }
    pthread_mutex_unlock(&r->lock);
    free(config);
    return st == API_OK ? MHD_YES : http_send_error(r, st, msg);
}

enum MHD_Result http_v2_control_answered(request *r) {
    if (r->control_status != API_OK) {
        snprintf(r->error, sizeof r->error, "%.255s", r->control_msg);
        return http_send_error(r, r->control_status, r->control_msg);
    }
    /* Triton answers a load or unload with 200 and an empty body. */
    char *empty = malloc(1);
    if (!empty) return http_send_error(r, API_INTERNAL, "out of memory");
    return http_send_body(r, 200, "application/json", empty, 0, API_OK);
}

/* GET (and the repository POSTs): the bodies come from api/kserve_v2.h; only the state is here. */
enum MHD_Result http_v2_answer(request *r) {
    http_server *s = r->srv;
    repository *repo = atomic_load(&s->repo);
    bool ready = atomic_load(&s->state) == SERVICE_READY;
    if (r->v2_route == KSERVE_V2_ROUTE_REPOSITORY_INDEX) return index_answer(r, repo, ready);
    if (r->v2_route == KSERVE_V2_ROUTE_REPOSITORY_CONTROL) return control_start(r, repo);
    /* A model route: the version it names (or the latest), when one is served. */
    repository_version *v = NULL;
    const char *model = r->target.model[0] ? r->target.model : s->cfg->model;
    bool model_route = r->v2_route != KSERVE_V2_ROUTE_SERVER_METADATA &&
                       r->v2_route != KSERVE_V2_ROUTE_LIVE && r->v2_route != KSERVE_V2_ROUTE_READY &&
                       r->v2_route != KSERVE_V2_ROUTE_ALL_STATS;
    char why[300] = "";
    if (model_route && repo) {
        api_status st = API_OK;
        v = repository_acquire(repo, model, r->target.version, &st, why, sizeof why);
        if (!v && st == API_NOT_FOUND) return http_send_error(r, st, why);
    }
    served_model fallback = s->loading_model;
    fallback.name = model;
    if (r->target.version) fallback.version = r->target.version;
    const served_model *m = v ? repository_version_model(v) : &fallback;
    const bool model_ready = ready && v;
    const kserve_v2_model_facts f =
        v2_model_facts(s->cfg, m, v ? repository_version_settings(v) : NULL, model_ready);
    char name[KSERVE_V2_MAX_NAME];
    kserve_v2_view_name(model, r->view, name, sizeof name);
    if (!ready && (r->v2_route == KSERVE_V2_ROUTE_READY || r->v2_route == KSERVE_V2_ROUTE_MODEL_READY))
        snprintf(r->error, sizeof r->error, "service is %s",
                 service_state_name(atomic_load(&s->state)));
    else if (!model_ready && r->v2_route == KSERVE_V2_ROUTE_MODEL_READY)
        snprintf(r->error, sizeof r->error, "%.200s", why); /* the reason, cut to fit */
    enum MHD_Result res;
    switch (r->v2_route) {
    case KSERVE_V2_ROUTE_SERVER_METADATA:
        res = http_send_json(r, 200, kserve_v2_server_metadata_json(), API_OK);
        break;
    case KSERVE_V2_ROUTE_LIVE:
        res = http_send_json(r, 200, json_pack("{s:b}", "live", 1), API_OK);
        break;
    case KSERVE_V2_ROUTE_READY:
        res = http_send_json(r, ready ? 200 : 503, json_pack("{s:b}", "ready", ready),
                             ready ? API_OK : API_NOT_READY);
        break;
    case KSERVE_V2_ROUTE_MODEL_READY:
        res = http_send_json(r, model_ready ? 200 : 503,
                             json_pack("{s:s, s:b}", "name", name, "ready", model_ready),
                             model_ready ? API_OK : API_NOT_READY);
        break;
    case KSERVE_V2_ROUTE_MODEL_METADATA:
        res = http_send_json(r, 200, kserve_v2_model_metadata_json(&f, r->view), API_OK);
        break;
    case KSERVE_V2_ROUTE_MODEL_CONFIG:
        res = http_send_json(r, 200, kserve_v2_model_config_json(&f, r->view), API_OK);
        break;
    case KSERVE_V2_ROUTE_MODEL_STATS:
        res = http_send_json(r, 200, v2_stats_json(s->metrics, model, r->target.version, r->view),
                             API_OK);
        break;
    case KSERVE_V2_ROUTE_MODEL_LABELS:
        if (!m->labels) /* known once the weights are loaded */
            res = http_send_error(r, API_NOT_READY, "the model's labels are not loaded yet");
        else res = http_send_json(r, 200, kserve_v2_model_labels_json(name, m->labels), API_OK);
        break;
    case KSERVE_V2_ROUTE_ALL_STATS:
        res = http_send_json(r, 200, v2_stats_json(s->metrics, NULL, 0, KSERVE_V2_VIEW_COUNT),
                             API_OK);
        break;
    default:
        res = http_send_error(r, API_INTERNAL, "unroutable");
    }
    repository_release(v); /* the answer is written: nothing of it is read any more */
    return res;
}

/* The JSON header's cost, charged to max_buffered_bytes with the body's (released at the
 * request's completion). */
static bool reserve_for_json(void *ctx, long long bytes) { return http_reserve(ctx, bytes); }

/* POST /v2/models/M[/versions/V]/infer: the body to a job, submitted. */
enum MHD_Result http_v2_infer_body_done(request *r) {
    char msg[800];
    image_input_format input;
    batcher *b = NULL;
    api_status st;
    r->job = http_job_for(r, r->target.model, r->target.version, JOB_ANSWER_V2, &input, &b, &st,
                          msg, sizeof msg);
    if (!r->job) return http_send_error(r, st, msg);
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
    st = kserve_v2_job_parse(&in, &r->srv->limits, &input, r->job, msg, sizeof msg);
    r->n_images = r->job->n_images;
    if (st == API_OK) st = http_submit_job(r, b, msg, sizeof msg);
    return st == API_OK ? MHD_YES : http_send_error(r, st, msg);
}
