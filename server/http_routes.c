/* http_routes.c - the route table, and the GET answers of health, readiness, metrics and the
 * demo page. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo_page.h"
#include "http_internal.h"
#include "log_queue.h"

static enum MHD_Result healthz_answer(request *r) {
    return http_send_json(r, 200, json_pack("{s:s}", "status", "ok"), API_OK);
}

static enum MHD_Result readyz_answer(request *r) {
    service_state st = atomic_load(&r->srv->state);
    if (st == SERVICE_READY)
        return http_send_json(r, 200, json_pack("{s:s}", "status", "ready"), API_OK);
    char msg[64];
    snprintf(msg, sizeof msg, "service is %s", service_state_name(st));
    json_t *body = api_error_json(API_NOT_READY, msg);
    json_object_set_new(body, "status", json_string(service_state_name(st)));
    snprintf(r->error, sizeof r->error, "%s", msg);
    return http_send_json(r, 503, body, API_NOT_READY);
}

static enum MHD_Result metrics_answer(request *r) {
    size_t len;
    metrics_set_log_lines_dropped(r->srv->metrics, log_queue_dropped(r->srv->access_log));
    char *text = metrics_render(r->srv->metrics, &len);
    if (!text) return http_send_error(r, API_INTERNAL, "out of memory");
    return http_send_body(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, API_OK);
}

static enum MHD_Result demo_answer(request *r) {
    size_t len;
    const char *page = demo_page_html(&len);
    char *copy = malloc(len); /* http_send_body hands MHD a buffer to free */
    if (!copy) return http_send_error(r, API_INTERNAL, "out of memory");
    memcpy(copy, page, len);
    return http_send_body(r, 200, "text/html; charset=utf-8", copy, len, API_OK);
}

/* path, post, auth, admin, cors, v2_errors, inference, endpoint, handler */
const route_spec http_routes[ROUTE_COUNT] = {
    [ROUTE_NONE] = {NULL, false, ROUTE_AUTH_NONE, false, false, false, false, METRICS_EP_OTHER,
                    NULL},
    [ROUTE_CLASSIFY] = {"/classify", true, ROUTE_AUTH_ALWAYS, false, true, false, true,
                        METRICS_EP_CLASSIFY, http_classify_body_done},
    [ROUTE_EXPLAIN] = {"/explain", true, ROUTE_AUTH_ALWAYS, false, true, false, true,
                       METRICS_EP_EXPLAIN, http_classify_body_done},
    [ROUTE_HEALTHZ] = {"/healthz", false, ROUTE_AUTH_HEALTH, true, false, false, false,
                       METRICS_EP_HEALTHZ, healthz_answer},
    [ROUTE_READYZ] = {"/readyz", false, ROUTE_AUTH_HEALTH, true, false, false, false,
                      METRICS_EP_READYZ, readyz_answer},
    [ROUTE_METRICS] = {"/metrics", false, ROUTE_AUTH_METRICS, true, false, false, false,
                       METRICS_EP_METRICS, metrics_answer},
    [ROUTE_DEMO] = {"/", false, ROUTE_AUTH_NONE, false, false, false, false, METRICS_EP_DEMO,
                    demo_answer},
    [ROUTE_V2] = {NULL, false, ROUTE_AUTH_HEALTH, false, true, true, false, METRICS_EP_V2,
                  http_v2_answer},
    [ROUTE_V2_REPOSITORY] = {NULL, true, ROUTE_AUTH_ALWAYS, false, true, true, false,
                             METRICS_EP_V2, http_v2_answer},
    [ROUTE_V2_INFER] = {NULL, true, ROUTE_AUTH_ALWAYS, false, true, true, true,
                        METRICS_EP_V2_INFER, http_v2_infer_body_done},
    [ROUTE_V2_MISSING] = {NULL, false, ROUTE_AUTH_NONE, false, false, true, false, METRICS_EP_V2,
                          NULL},
};

/* The catalog v2 paths are routed by: the repository's models, or before it is handed over
 * the configured model's name. */
static bool knows_model(void *ctx, const char *name) {
    http_server *s = ctx;
    repository *repo = atomic_load(&s->repo);
    return repo ? repository_knows(repo, name) : strcmp(name, s->cfg->model) == 0;
}

kserve_v2_catalog http_catalog(http_server *s) { return (kserve_v2_catalog){knows_model, s}; }

route http_route_of(http_server *s, const char *url, kserve_v2_route *v2, kserve_v2_target *t) {
    *t = (kserve_v2_target){.view = KSERVE_V2_VIEW_FULL};
    for (int rt = 0; rt < ROUTE_COUNT; rt++)
        if (http_routes[rt].path && strcmp(url, http_routes[rt].path) == 0 &&
            (rt != ROUTE_DEMO || s->cfg->demo_page))
            return (route)rt;
    const kserve_v2_catalog c = http_catalog(s);
    switch (*v2 = kserve_v2_route_resolve(url, &c, t, NULL, 0)) {
    case KSERVE_V2_ROUTE_NONE: return ROUTE_NONE;
    case KSERVE_V2_ROUTE_NOT_FOUND: return ROUTE_V2_MISSING;
    case KSERVE_V2_ROUTE_INFER: return ROUTE_V2_INFER;
    default: return kserve_v2_route_is_post(*v2) ? ROUTE_V2_REPOSITORY : ROUTE_V2;
    }
}

enum MHD_Result http_answer_route(request *r) {
    if (!http_routes[r->route].handler) return http_send_error(r, API_INTERNAL, "unroutable");
    return http_routes[r->route].handler(r);
}
