/* kserve_v2_routes.c - KServe v2 paths to routes and views, the views' table, v2 errors. */
#include <stdio.h>
#include <string.h>

#include "kserve_v2.h"
#include "kserve_v2_views.h"

/* ---------------------------------------------------------------- model views */

/* What each view of the one model offers; the one table of view names. */
const kserve_v2_view_spec kserve_v2_views[KSERVE_V2_VIEW_COUNT] = {
    [KSERVE_V2_VIEW_FULL] = {"", true, true, {true, true, true}},
    [KSERVE_V2_VIEW_IMAGE] = {"_image", true, false, {true, false, false}},
    [KSERVE_V2_VIEW_TENSOR] = {"_tensor", false, true, {true, false, false}},
};

/* The one table of output names, by kserve_v2_output_kind. */
const char *const kserve_v2_output_names[KSERVE_V2_OUT_COUNT] = {
    [KSERVE_V2_OUT_PROBABILITIES] = "probabilities",
    [KSERVE_V2_OUT_LOGITS] = "logits",
    [KSERVE_V2_OUT_GRADCAM] = "gradcam",
};

/* Whether view v offers output k on a model whose maps are gradcam_hw wide (0: none). */
bool kserve_v2_view_has_output(const kserve_v2_view_spec *v, kserve_v2_output_kind k,
                               int gradcam_hw) {
    return v->outputs[k] && (k != KSERVE_V2_OUT_GRADCAM || gradcam_hw > 0);
}

void kserve_v2_view_name(const char *model, kserve_v2_view v, char *out, size_t cap) {
    snprintf(out, cap, "%s%s", model, kserve_v2_views[v].suffix);
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
    if (strcmp(p, "/labels") == 0) return KSERVE_V2_ROUTE_MODEL_LABELS;
    return not_found(msg, msglen, "no route %.128s%s", path, "");
}

/* ---------------------------------------------------------------- errors */

json_t *kserve_v2_error_json(const char *message) {
    char clean[1024];
    api_utf8_sanitize(message, clean, sizeof clean);
    return json_pack("{s:s}", "error", clean);
}

