/* kserve_v2_routes.c - KServe v2 paths to routes and views, the views' table, v2 errors. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kserve_v2.h"
#include "kserve_v2_views.h"
#include "repository_dir.h" /* repo_parse_version: a version as folders and paths name it */

const char *const kserve_v2_model_state_names[] = {"UNAVAILABLE", "LOADING", "READY",
                                                   "UNLOADING", NULL};

/* ---------------------------------------------------------------- model views */

/* What each view of the one model offers; the one table of view names. */
const kserve_v2_view_spec kserve_v2_views[KSERVE_V2_VIEW_COUNT] = {
    [KSERVE_V2_VIEW_FULL] = {"", true, true, {true, true, false}},
    [KSERVE_V2_VIEW_IMAGE] = {"_image", true, false, {true, false, false}},
    [KSERVE_V2_VIEW_TENSOR] = {"_tensor", false, true, {true, false, false}},
    [KSERVE_V2_VIEW_EXPLAIN] = {"_explain", true, true, {true, true, true}},
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

/* ---------------------------------------------------------------- routes */

/* Copies the next path segment of *p (up to '/' or the end) into seg; advances past it. */
static void next_segment(const char **p, char *seg, size_t cap) {
    const char *s = *p;
    if (*s == '/') s++;
    size_t n = strcspn(s, "/");
    snprintf(seg, cap, "%.*s", (int)(n < cap ? n : cap - 1), s);
    *p = s + n;
}

static kserve_v2_route not_found(char *msg, size_t msglen, const char *fmt, ...) {
    if (msg) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, msglen, fmt, ap);
        va_end(ap);
    }
    return KSERVE_V2_ROUTE_NOT_FOUND;
}

bool kserve_v2_route_is_post(kserve_v2_route rt) {
    return rt == KSERVE_V2_ROUTE_INFER || rt == KSERVE_V2_ROUTE_REPOSITORY_INDEX ||
           rt == KSERVE_V2_ROUTE_REPOSITORY_CONTROL;
}

/* /v2/repository/index and /v2/repository/models/M/load|unload; p is past "repository". */
static kserve_v2_route repository_route(const char *path, const char *p, kserve_v2_target *t,
                                        char *msg, size_t msglen) {
    char seg[128], name[128];
    next_segment(&p, seg, sizeof seg);
    if (strcmp(seg, "index") == 0 && *p == '\0') return KSERVE_V2_ROUTE_REPOSITORY_INDEX;
    if (strcmp(seg, "models") == 0) {
        next_segment(&p, name, sizeof name);
        next_segment(&p, seg, sizeof seg);
        if (name[0] && *p == '\0' && (strcmp(seg, "load") == 0 || strcmp(seg, "unload") == 0)) {
            snprintf(t->model, sizeof t->model, "%.*s", (int)sizeof t->model - 1, name);
            t->unload = strcmp(seg, "unload") == 0;
            return KSERVE_V2_ROUTE_REPOSITORY_CONTROL;
        }
    }
    return not_found(msg, msglen, "no route %.128s%s", path, "");
}

/* The model and view a model segment names: the model itself, or a model and a view's
 * suffix. false when the catalog knows neither. */
static bool model_of_segment(const kserve_v2_catalog *c, const char *seg, kserve_v2_target *t) {
    if (strlen(seg) >= sizeof t->model) return false;
    if (c->known(c->ctx, seg)) {
        snprintf(t->model, sizeof t->model, "%s", seg);
        t->view = KSERVE_V2_VIEW_FULL;
        return true;
    }
    for (int v = 1; v < KSERVE_V2_VIEW_COUNT; v++) {
        size_t n = strlen(seg), k = strlen(kserve_v2_views[v].suffix);
        if (n <= k || strcmp(seg + n - k, kserve_v2_views[v].suffix) != 0) continue;
        snprintf(t->model, sizeof t->model, "%.*s", (int)(n - k), seg);
        if (c->known(c->ctx, t->model)) {
            t->view = (kserve_v2_view)v;
            return true;
        }
    }
    t->model[0] = '\0';
    return false;
}

kserve_v2_route kserve_v2_route_resolve(const char *path, const kserve_v2_catalog *catalog,
                                        kserve_v2_target *t, char *msg, size_t msglen) {
    *t = (kserve_v2_target){.view = KSERVE_V2_VIEW_FULL};
    if (strncmp(path, "/v2", 3) != 0 || (path[3] != '\0' && path[3] != '/'))
        return KSERVE_V2_ROUTE_NONE;
    const char *p = path + 3;
    if (strcmp(p, "") == 0 || strcmp(p, "/") == 0) return KSERVE_V2_ROUTE_SERVER_METADATA;
    if (strcmp(p, "/health/live") == 0) return KSERVE_V2_ROUTE_LIVE;
    if (strcmp(p, "/health/ready") == 0) return KSERVE_V2_ROUTE_READY;
    if (strcmp(p, "/models/stats") == 0) return KSERVE_V2_ROUTE_ALL_STATS;
    char seg[128], name[128];
    next_segment(&p, seg, sizeof seg);
    if (strcmp(seg, "repository") == 0) return repository_route(path, p, t, msg, msglen);
    if (strcmp(seg, "models") != 0 || *p == '\0')
        return not_found(msg, msglen, "no route %.128s%s", path, "");
    next_segment(&p, name, sizeof name);
    if (!model_of_segment(catalog, name, t))
        return not_found(msg, msglen, "unknown model '%.100s'%s (POST /v2/repository/index lists "
                         "the models)", name, "");
    if (strncmp(p, "/versions/", 10) == 0) {
        p += 9;
        next_segment(&p, seg, sizeof seg);
        if (!(t->version = repo_parse_version(seg)))
            return not_found(msg, msglen, "unknown version '%.100s' of model '%s'", seg, name);
    }
    if (*p == '\0') return KSERVE_V2_ROUTE_MODEL_METADATA;
    if (strcmp(p, "/ready") == 0) return KSERVE_V2_ROUTE_MODEL_READY;
    if (strcmp(p, "/infer") == 0) return KSERVE_V2_ROUTE_INFER;
    if (strcmp(p, "/config") == 0) return KSERVE_V2_ROUTE_MODEL_CONFIG;
    if (strcmp(p, "/stats") == 0) return KSERVE_V2_ROUTE_MODEL_STATS;
    if (strcmp(p, "/labels") == 0) return KSERVE_V2_ROUTE_MODEL_LABELS;
    return not_found(msg, msglen, "no route %.128s%s", path, "");
}

/* The one-model catalog of kserve_v2_route_parse. */
static bool is_the_model(void *ctx, const char *name) { return strcmp(ctx, name) == 0; }

kserve_v2_route kserve_v2_route_parse(const char *path, const char *model, kserve_v2_view *view,
                                      char *msg, size_t msglen) {
    const kserve_v2_catalog one = {is_the_model, (void *)model};
    kserve_v2_target t;
    char why[400] = "";
    kserve_v2_route rt = kserve_v2_route_resolve(path, &one, &t, why, sizeof why);
    *view = t.view;
    if (rt == KSERVE_V2_ROUTE_NOT_FOUND && strncmp(why, "unknown model", 13) == 0)
        return not_found(msg, msglen, "%s; this server serves '%.80s', '%.80s_image' and "
                         "'%.80s_tensor'", why, model, model, model);
    if (rt == KSERVE_V2_ROUTE_NOT_FOUND) {
        if (msg) snprintf(msg, msglen, "%s", why);
        return rt;
    }
    if (t.version > 1)
        return not_found(msg, msglen, "unknown version '%lld' of model '%.80s'; the one version "
                         "is " KSERVE_V2_MODEL_VERSION, t.version, model);
    return rt;
}

/* ---------------------------------------------------------------- errors */

json_t *kserve_v2_error_json(const char *message) {
    char clean[1024];
    api_utf8_sanitize(message, clean, sizeof clean);
    return json_pack("{s:s}", "error", clean);
}

