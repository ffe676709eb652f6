/* grpc_service.c - the service's side of the gRPC front end: state, jobs, documents, log. */
#include "grpc_service.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arrivals.h"
#include "auth.h"
#include "batcher.h"
#include "repository.h"
#include "clock.h"
#include "grpc_frontend.h"
#include "labels.h"
#include "vgg_config.h"
#include "log.h"
#include "model_settings.h"
#include "v2_facts.h"

struct grpc_service {
    const vggserve_config *cfg;
    metrics *metrics;
    grpc_frontend *frontend;
    int port;
    _Atomic int state;
    served_model loading_model; /* what metadata says of a model not served yet */
    classify_limits limits;
    repository *_Atomic repo; /* the models: NULL until grpc_service_serve */
    atomic_int pending;
    arrivals arriving; /* ModelInfer calls between their start and their job's submission */
};

/* ---------------------------------------------------------------- serve.c */

grpc_service *grpc_service_start(const vggserve_config *cfg, metrics *m, char *err,
                                 size_t errlen) {
    grpc_service *g = calloc(1, sizeof *g);
    if (!g) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    g->cfg = cfg;
    g->metrics = m;
    g->loading_model = (served_model){.name = cfg->model, .version = 1,
                                      .n_classes = LABELS_COUNT, .image_hw = VGG_INPUT_HW,
                                      .image_floats = 3 * VGG_INPUT_HW * VGG_INPUT_HW};
    g->limits = (classify_limits){cfg->max_body_bytes, (int)cfg->max_images_per_request};
    atomic_store(&g->state, SERVICE_LOADING);
    const grpc_frontend_options o = {
        .host = cfg->host,
        .port = (int)cfg->grpc_port,
        .max_message_bytes = cfg->max_body_bytes,
        .idle_timeout_ms = cfg->connection_timeout_s * 1000,
        .tls_cert_file = cfg->tls_cert_file,
        .tls_key_file = cfg->tls_key_file,
    };
    g->frontend = grpc_frontend_start(g, &o, &g->port, err, errlen);
    if (!g->frontend) {
        free(g);
        return NULL;
    }
    return g;
}

int grpc_service_port(const grpc_service *g) { return g->port; }

void grpc_service_serve(grpc_service *g, repository *repo) { atomic_store(&g->repo, repo); }

void grpc_service_set_state(grpc_service *g, service_state st) { atomic_store(&g->state, st); }

int grpc_service_pending(grpc_service *g) { return atomic_load(&g->pending); }

void grpc_service_stop(grpc_service *g, int64_t grace_ms) {
    if (!g) return;
    grpc_frontend_stop(g->frontend, grace_ms);
    free(g);
}

/* ---------------------------------------------------------------- the front end */

bool grpc_service_ready(grpc_service *g) { return atomic_load(&g->state) == SERVICE_READY; }

const char *grpc_service_state_name(grpc_service *g) {
    return service_state_name(atomic_load(&g->state));
}

static bool knows_model(void *ctx, const char *name) {
    grpc_service *g = ctx;
    repository *repo = atomic_load(&g->repo);
    return repo ? repository_knows(repo, name) : strcmp(name, g->cfg->model) == 0;
}

api_status grpc_service_route(grpc_service *g, kserve_v2_str name, kserve_v2_str version,
                              kserve_v2_route route, kserve_v2_target *t, char *msg,
                              size_t msglen) {
    const kserve_v2_catalog c = {knows_model, g};
    api_status st = kserve_v2_grpc_route(&c, name, version, route, t, msg, msglen);
    repository *repo = atomic_load(&g->repo);
    if (st != API_OK || !t->version || !repo) return st;
    /* A version named must be served (or loading): as HTTP's metadata routes answer. */
    api_status vst = API_OK;
    repository_version *v = repository_acquire(repo, t->model, t->version, &vst, msg, msglen);
    repository_release(v);
    return v || vst != API_NOT_FOUND ? API_OK : API_NOT_FOUND;
}

bool grpc_service_model_ready(grpc_service *g, const kserve_v2_target *t) {
    repository *repo = atomic_load(&g->repo);
    if (!grpc_service_ready(g) || !repo) return false;
    char msg[200];
    api_status st;
    repository_version *v = repository_acquire(repo, t->model, t->version, &st, msg, sizeof msg);
    repository_release(v);
    return v != NULL;
}

api_status grpc_service_repository_api(grpc_service *g, char *msg, size_t msglen) {
    if (!g->cfg->repository_api_admin_only) return API_OK;
    snprintf(msg, msglen, "the repository API is served on the HTTP admin port only "
             "(repository_api_admin_only)");
    return API_BAD_REQUEST;
}

api_status grpc_service_repository_writable(grpc_service *g, char *msg, size_t msglen) {
    repository *repo = atomic_load(&g->repo);
    api_status st = grpc_service_repository_api(g, msg, msglen);
    if (st != API_OK) return st;
    if (repo && repository_control_mode(repo) == REPO_CONTROL_POLL) {
        snprintf(msg, msglen, "%s", KSERVE_V2_REPOSITORY_POLLING);
        return API_BAD_REQUEST;
    }
    if (!repo || repository_control_mode(repo) != REPO_CONTROL_EXPLICIT) {
        snprintf(msg, msglen, "%s", KSERVE_V2_REPOSITORY_FIXED);
        return API_BAD_REQUEST;
    }
    return API_OK;
}

api_status grpc_service_repository_control(grpc_service *g, bool unload, const char *name,
                                           const char *config, grpc_control_done done,
                                           void *ctx, char *msg, size_t msglen) {
    repository *repo = atomic_load(&g->repo);
    api_status st = grpc_service_repository_writable(g, msg, msglen);
    if (st != API_OK) return st;
    if (config) { /* checked now, as HTTP checks its load body: a bad one is refused at once */
        model_settings any = {0};
        if (model_settings_parse(config, strlen(config), name, &any, msg, msglen) != 0)
            return API_BAD_REQUEST;
    }
    return repository_request(repo, unload ? REPOSITORY_UNLOAD : REPOSITORY_LOAD, name, config,
                              done, ctx, msg, msglen);
}

api_status grpc_service_auth(grpc_service *g, const char *authorization, bool health, char *msg,
                             size_t msglen) {
    if (health && !g->cfg->auth_health) return API_OK;
    const char *www;
    return api_auth_check(authorization, g->cfg->auth_token, msg, msglen, &www);
}

/* The repository index as HTTP answers it (ready_only: READY rows only). */
char *grpc_service_doc(grpc_service *g, grpc_doc doc, const kserve_v2_target *t) {
    repository *repo = atomic_load(&g->repo);
    const char *model = t && t->model[0] ? t->model : g->cfg->model;
    const kserve_v2_view view = t ? t->view : KSERVE_V2_VIEW_COUNT;
    repository_version *v = NULL;
    if (repo && (doc == GRPC_DOC_MODEL_METADATA || doc == GRPC_DOC_MODEL_CONFIG)) {
        char msg[200];
        api_status st;
        v = repository_acquire(repo, model, t ? t->version : 0, &st, msg, sizeof msg);
    }
    served_model fallback = g->loading_model;
    fallback.name = model;
    const kserve_v2_model_facts f =
        v2_model_facts(g->cfg, v ? repository_version_model(v) : &fallback,
                       v ? repository_version_settings(v) : NULL, grpc_service_ready(g) && v);
    json_t *j = NULL;
    switch (doc) {
    case GRPC_DOC_SERVER_METADATA: j = kserve_v2_server_metadata_json(); break;
    case GRPC_DOC_MODEL_METADATA: j = kserve_v2_model_metadata_json(&f, view); break;
    case GRPC_DOC_MODEL_CONFIG: j = kserve_v2_model_config_json(&f, view); break;
    case GRPC_DOC_MODEL_STATS:
        j = v2_stats_json(g->metrics, t && t->model[0] ? model : NULL, t ? t->version : 0, view);
        break;
    case GRPC_DOC_REPOSITORY_INDEX:
    case GRPC_DOC_REPOSITORY_INDEX_READY:
        j = repo ? v2_repository_index_json(repo, grpc_service_ready(g),
                                            doc == GRPC_DOC_REPOSITORY_INDEX_READY)
                 : kserve_v2_repository_index_json(&f);
        break;
    }
    repository_release(v);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return text;
}

/* The call's deadline: request_timeout_ms after it arrived; the client may shorten it, never
 * lengthen it. */
static int64_t deadline_of(const grpc_service *g, const grpc_infer_call *c) {
    const int64_t d = c->start_ns + g->cfg->request_timeout_ms * 1000000;
    return c->client_deadline_ns && c->client_deadline_ns < d ? c->client_deadline_ns : d;
}

/* Queues a parsed job. A call that started while the service was ready is still admitted
 * when the drain has begun since: the drain waits for such arrivals (grpc_service_drain_wait)
 * before it closes the queue, as it does for HTTP uploads. */
static api_status submit(grpc_service *g, inference_job *job, batcher *b,
                         const grpc_infer_call *c, char *msg, size_t msglen) {
    const service_state st = atomic_load(&g->state);
    if ((st != SERVICE_READY && st != SERVICE_DRAINING) || !b) {
        snprintf(msg, msglen, "service is %s", service_state_name(st));
        return API_NOT_READY;
    }
    if (inference_job_alloc_results(job) != 0) {
        snprintf(msg, msglen, "out of memory");
        return API_INTERNAL;
    }
    job->deadline_ns = deadline_of(g, c);
    job->on_complete = c->on_complete;
    job->user = c->user;
    atomic_fetch_add(&g->pending, 1); /* before: on_complete may run before submit returns */
    batcher_submit_result sr = batcher_submit(b, job);
    if (sr == BATCHER_OK) return API_OK;
    atomic_fetch_sub(&g->pending, 1);
    if (sr == BATCHER_FULL) {
        snprintf(msg, msglen, "queue is full (%lld images); retry later",
                 g->cfg->queue_capacity);
        return API_QUEUE_FULL;
    }
    snprintf(msg, msglen, "service is draining");
    return API_NOT_READY;
}

api_status grpc_service_infer(grpc_service *g, const grpc_infer_call *c, inference_job **job,
                              char *msg, size_t msglen) {
    *job = NULL;
    if (!grpc_service_ready(g)) { /* as HTTP: refused before the body is read */
        snprintf(msg, msglen, "service is %s", grpc_service_state_name(g));
        return API_NOT_READY;
    }
    arrival t = {0};
    arrivals_begin(&g->arriving, &t);
    kserve_v2_grpc_request r = *c->request;
    r.deadline_ns = deadline_of(g, c);
    /* The model and version the call names, held by the job until it is freed. */
    kserve_v2_target target;
    repository *repo = atomic_load(&g->repo);
    repository_version *v = NULL;
    api_status st = grpc_service_route(g, r.model_name, r.model_version, KSERVE_V2_ROUTE_INFER,
                                       &target, msg, msglen);
    if (st == API_OK && !repo) {
        st = API_NOT_READY;
        snprintf(msg, msglen, "service is %s", grpc_service_state_name(g));
    }
    if (st == API_OK)
        v = repository_acquire(repo, target.model, target.version, &st, msg, msglen);
    if (v && !(*job = inference_job_new(repository_version_model(v), JOB_ANSWER_V2))) {
        repository_release(v);
        v = NULL;
        st = API_INTERNAL;
        snprintf(msg, msglen, "out of memory");
    }
    image_input_format input = {0};
    if (v) {
        (*job)->release = repository_release_hold;
        (*job)->hold = v;
        const served_model *m = repository_version_model(v);
        input = (image_input_format){
            .image_hw = m->image_hw,
            .preprocess = m->preprocess,
            .decode = image_decode_options_of(g->cfg->max_pixels, g->cfg->decode_scaling,
                                              g->cfg->exif_orientation),
        };
        st = kserve_v2_grpc_job_parse(&r, &g->limits, &input, *job, msg, msglen);
    }
    if (st == API_OK) st = submit(g, *job, repository_version_batcher(v), c, msg, msglen);
    arrivals_end(&g->arriving, &t); /* after the images are queued: the drain sees no gap */
    return st;
}

bool grpc_service_drain_wait(grpc_service *g, double timeout_s) {
    return !g || arrivals_wait_none(&g->arriving, timeout_s);
}

/* ---------------------------------------------------------------- access log and metrics */

static void observe(grpc_service *g, const grpc_call_record *rec, double total_s) {
    if (rec->status != API_OK && !rec->cancelled) metrics_add_rejected(g->metrics, rec->status);
    const bool infer = strcmp(rec->method, "ModelInfer") == 0 ||
                       strcmp(rec->method, "ModelStreamInfer") == 0;
    metrics_observe_request_by(g->metrics, METRICS_PROTO_GRPC,
                               infer ? METRICS_EP_V2_INFER : METRICS_EP_V2,
                               rec->cancelled ? 499 : api_status_http(rec->status), total_s);
    if (!rec->job || rec->job->answer != JOB_ANSWER_V2) return;
    const inference_job *job = rec->job;
    metrics_inference x = {
        .ok = rec->status == API_OK,
        .images = rec->queued && job->status == JOB_OK ? job->n_images : 0,
        .total_s = total_s,
        .queue_s = rec->queued ? job->max_queue_ns / 1e9 : 0,
        .input_s = job->decode_ms / 1e3,
        .infer_s = rec->queued ? job->inference_ns / 1e9 : 0,
        .output_s = rec->output_ns / 1e9,
    };
    metrics_observe_inference(g->metrics, job->model->name, job->model->version, job->v2_view,
                              &x);
}

/* The access log line: HTTP's fields where they mean the same, protocol=grpc, the RPC as the
 * method and its gRPC status. */
void grpc_service_log(grpc_service *g, const grpc_call_record *rec) {
    const double total_ms = (clock_monotonic_ns() - rec->start_ns) / 1e6;
    const inference_job *job = rec->job;
    const bool q = rec->queued && job;
    if (rec->queued) atomic_fetch_sub(&g->pending, 1);
    observe(g, rec, total_ms / 1e3);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char ts[32], error[512], peer[128];
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    api_utf8_sanitize(rec->error ? rec->error : "", error, sizeof error);
    api_utf8_sanitize(rec->peer ? rec->peer : "", peer, sizeof peer);
    const int images = job ? job->n_images : 0;
    const int code = rec->cancelled ? 1 /* CANCELLED */ : api_status_grpc(rec->status);
    if (rec->cancelled)
        snprintf(error, sizeof error, "cancelled by the client: its queued images were dropped");
    const double queue_ms = q ? job->max_queue_ns / 1e6 : 0;
    const double infer_ms = q ? job->inference_ns / 1e6 : 0;
    const json_int_t batch = (json_int_t)(q ? job->last_batch_id : 0);
    if (g->cfg->log_format == ACCESS_LOG_LOGFMT) {
        char e[600] = "";
        if (error[0]) {
            for (char *c = error; *c; c++) if (*c == '"') *c = '\'';
            snprintf(e, sizeof e, " error=\"%s\"", error);
        }
        printf("ts=%s.%03ldZ protocol=grpc peer=%s method=%s grpc_status=%d bytes=%zu images=%d "
               "queue_ms=%.2f inference_ms=%.2f total_ms=%.2f batch_id=%lld%s\n", ts,
               now.tv_nsec / 1000000, peer, rec->method, code, rec->response_bytes, images,
               queue_ms, infer_ms, total_ms, (long long)batch, e);
        fflush(stdout);
        return;
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:i, s:I, s:i, s:f, s:f, s:f, s:I}", "ts", ts,
                          "protocol", "grpc", "peer", peer, "method", rec->method, "grpc_status",
                          code, "bytes", (json_int_t)rec->response_bytes, "images", images,
                          "queue_ms", queue_ms, "inference_ms", infer_ms, "total_ms", total_ms,
                          "batch_id", batch);
    if (o && error[0]) json_object_set_new(o, "error", json_string(error));
    char *line = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
    if (line) {
        puts(line);
        fflush(stdout);
    }
    free(line);
    json_decref(o);
}
