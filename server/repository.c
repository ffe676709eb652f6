/* repository.c - the models being served: the loader thread, swaps, lookups, the index.
 * The DESIGN is in repository.h. */
#include "repository.h"

#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "repository_dir.h"
#include "repository_internal.h"


/* ---------------------------------------------------------------- versions */

static void free_unheld_locked(repository *r);

static void version_free(repository_version *v) {
    if (!v) return;
    if (v->b) {
        batcher_drain(v->b, 0);
        batcher_free(v->b);
    }
    if (v->repo->o.metrics) metrics_series_remove(v->repo->o.metrics, v->series);
    vgg_model_free(v->built.model);
    vgg_weights_free(&v->built.w);
    vgg_labels_free(&v->built.labels);
    free(v);
}

/* Builds and warms one version (loader thread, lock not held). NULL with err. */
static repository_version *version_build(repository *r, const char *name, long long version,
                                         const char *weights, const char *labels,
                                         const model_settings *s, const repo_file_id *file,
                                         char *err, size_t errlen) {
    repository_version *v = calloc(1, sizeof *v);
    if (!v) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    v->repo = r;
    snprintf(v->name, sizeof v->name, "%s", name);
    v->version = version;
    v->settings = *s;
    if (file) v->file = *file;
    atomic_store(&v->refs, 1);
    const repository_build_spec spec = {name, weights, labels, s};
    if (r->o.build(r->o.build_ctx, &spec, &v->built, err, errlen) != 0) {
        free(v);
        return NULL;
    }
    const int threads = s->threads_per_worker
                            ? s->threads_per_worker
                            : (r->cores / s->workers > 0 ? r->cores / s->workers : 1);
    const bool explains = s->precision != VGG_PRECISION_INT8;
    if (r->o.metrics) v->series = metrics_series_add(r->o.metrics, name, version);
    batcher_options bo = {s->workers, threads, s->max_batch_size, s->max_queue_delay_us,
                          s->queue_capacity, r->o.arriving, explains, v->series};
    pthread_mutex_lock(&r->lock);
    bool aborted = r->abort;
    if (!aborted) v->b = batcher_create(v->built.model, &bo, r->o.metrics, err, errlen);
    r->warming = v->b;
    pthread_mutex_unlock(&r->lock);
    if (aborted) snprintf(err, errlen, "stopped by the shutdown");
    int rc = v->b && !aborted ? batcher_wait_warm(v->b, err, errlen) : -1;
    pthread_mutex_lock(&r->lock);
    r->warming = NULL;
    pthread_mutex_unlock(&r->lock);
    if (rc != 0) {
        version_free(v);
        return NULL;
    }
    /* Every batch size has its weight formats now: the plain copy can go. */
    vgg_model_release_source(v->built.model);
    vgg_weights_free(&v->built.w);
    const vgg_config *mc = vgg_model_config(v->built.model);
    v->served = (served_model){.name = v->name, .version = version,
                               .n_classes = mc->n_classes, .labels = &v->built.labels,
                               .image_hw = mc->input_hw,
                               .image_floats = mc->in_channels * mc->input_hw * mc->input_hw,
                               .preprocess = v->built.preprocess};
    if (explains) {
        v->served.explain_hw = vgg_model_explain_hw(v->built.model);
        vgg_config_conv_name(mc, mc->n_conv - 1, v->served.explain_layer,
                             sizeof v->served.explain_layer);
    }
    return v;
}

/* Drops the listing reference of v, now out of its model's list (lock held): the loader
 * frees it once its last job is answered. */
static void retire_locked(repository *r, repository_version *v) {
    v->next_retired = r->retired;
    v->retired_ns = clock_monotonic_ns();
    r->retired = v;
    atomic_fetch_sub(&v->refs, 1);
    pthread_cond_broadcast(&r->cond);
}

void repository_release(repository_version *v) {
    if (!v) return;
    repository *r = v->repo; /* v may be freed as soon as the count reaches 0 */
    if (atomic_fetch_sub(&v->refs, 1) == 1) {
        pthread_mutex_lock(&r->lock);
        pthread_cond_broadcast(&r->cond);
        pthread_mutex_unlock(&r->lock);
    }
}

void repository_release_hold(void *v) { repository_release(v); }

const served_model *repository_version_model(const repository_version *v) { return &v->served; }
batcher *repository_version_batcher(repository_version *v) { return v->b; }
long long repository_version_number(const repository_version *v) { return v->version; }
const model_settings *repository_version_settings(const repository_version *v) {
    return &v->settings;
}

/* ---------------------------------------------------------------- the model table */

model_entry *repository_find_locked(repository *r, const char *name) {
    for (int i = 0; i < r->n_models; i++)
        if (strcmp(r->models[i]->name, name) == 0) return r->models[i];
    return NULL;
}

model_entry *repository_find_or_add_locked(repository *r, const char *name) {
    model_entry *e = repository_find_locked(r, name);
    if (e || r->n_models == MAX_MODELS || !(e = calloc(1, sizeof *e))) return e;
    snprintf(e->name, sizeof e->name, "%.63s", name);
    r->models[r->n_models++] = e;
    return e;
}

/* The model folders on disk get entries (index and lookups see new ones). */
static void scan_root(repository *r) {
    if (!r->root[0]) return;
    static char names[MAX_MODELS][REPO_MAX_NAME]; /* loader or index callers: under scan_lock */
    static pthread_mutex_t scan_lock = PTHREAD_MUTEX_INITIALIZER;
    char err[256];
    pthread_mutex_lock(&scan_lock);
    int n = repo_list_models(r->root, names, MAX_MODELS, err, sizeof err);
    pthread_mutex_lock(&r->lock);
    for (int i = 0; i < n; i++) repository_find_or_add_locked(r, names[i]);
    pthread_mutex_unlock(&r->lock);
    pthread_mutex_unlock(&scan_lock);
}

/* ---------------------------------------------------------------- operations */

/* config.json of a model folder into *s (when there is one). 0, or -1 with err. */
int repository_read_config(const char *dir, const char *name, model_settings *s, char *err,
                            size_t errlen) {
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/" REPO_CONFIG_FILE, dir);
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char *text = malloc(MODEL_SETTINGS_MAX_BYTES + 1);
    size_t n = text ? fread(text, 1, MODEL_SETTINGS_MAX_BYTES + 1, f) : 0;
    fclose(f);
    if (!text) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    char why[300];
    int rc = model_settings_parse(text, n, name, s, why, sizeof why);
    if (rc) snprintf(err, errlen, "%.300s: %.390s", path, why);
    free(text);
    return rc;
}

void repository_set_failure(repository *r, model_entry *e, long long version, const char *why) {
    pthread_mutex_lock(&r->lock);
    e->loading = false;
    e->failed_version = version ? version : -1;
    snprintf(e->reason, sizeof e->reason, "%s", why);
    pthread_mutex_unlock(&r->lock);
}

/* Waits until no retired version of name is left: its last job answered, it is freed (loader
 * thread, lock held). Ends early when the service stops. */
static void wait_freed_locked(repository *r, const char *name) {
    for (;;) {
        free_unheld_locked(r);
        bool left = false;
        for (const repository_version *v = r->retired; v; v = v->next_retired)
            left |= strcmp(v->name, name) == 0;
        if (!left || r->stopping) return;
        pthread_cond_wait(&r->cond, &r->lock);
    }
}

/* Swap policy memory: takes the served versions of e that the load does not keep (same
 * version, file and settings as wanted) out of the list, and waits until they are freed. */
static void unload_replaced_first(repository *r, model_entry *e, const char *dir,
                                  const long long *want, int n_want, const model_settings *s) {
    repo_file_id ids[REPO_MAX_POLICY_VERSIONS] = {0};
    bool have[REPO_MAX_POLICY_VERSIONS] = {0};
    for (int i = 0; i < n_want; i++) {
        char path[PATH_MAX], why[8];
        have[i] = !r->root[0] || repo_version_files(dir, want[i], path, sizeof path, NULL, 0,
                                                    &ids[i], why, sizeof why) == 0;
    }
    pthread_mutex_lock(&r->lock);
    int kept = 0, dropped = 0;
    for (int j = 0; j < e->n_served; j++) {
        repository_version *old = e->served[j];
        bool keep = false;
        for (int i = 0; i < n_want; i++)
            keep |= have[i] && old->version == want[i] && model_settings_equal(&old->settings, s) &&
                    (!r->root[0] || repo_file_id_equal(&old->file, &ids[i]));
        if (keep) e->served[kept++] = old;
        else {
            retire_locked(r, old);
            dropped++;
        }
    }
    e->n_served = kept;
    if (dropped) {
        log_event(LOG_INFO, "model %s: swap policy memory: unloading %d version(s) before "
                  "building (requests get 503 meanwhile)", e->name, dropped);
        wait_freed_locked(r, e->name);
    }
    pthread_mutex_unlock(&r->lock);
}

/* Loads name: builds the versions its policy picks that are not served unchanged, then swaps
 * the model's list. only (n_only of them, ascending), when not NULL: the versions to pick
 * from instead of every folder (the poller's complete ones). API_OK, or a status with msg
 * (the serving versions untouched, except those swap policy memory unloaded first). */
api_status repository_do_load(repository *r, const char *name, const char *config,
                          const long long *only, int n_only, char *msg, size_t msglen) {
    const double t0 = clock_monotonic_ns() / 1e9;
    model_settings s = r->o.defaults;
    char dir[PATH_MAX] = "", err[2100] = "";
    long long want[REPO_MAX_POLICY_VERSIONS];
    int n_want = 0;
    pthread_mutex_lock(&r->lock);
    model_entry *e = repository_find_or_add_locked(r, name);
    if (e) {
        e->loading = true;
        e->loading_version = 0;
    }
    pthread_mutex_unlock(&r->lock);
    if (!e) {
        snprintf(msg, msglen, "too many models (at most %d)", MAX_MODELS);
        return API_INTERNAL;
    }
    if (r->root[0]) {
        if (repo_model_dir(r->root, name, dir, sizeof dir, err, sizeof err) != 0) goto fail;
        if (config ? model_settings_parse(config, strlen(config), name, &s, err, sizeof err)
                   : repository_read_config(dir, name, &s, err, sizeof err))
            goto fail;
        long long avail[REPO_MAX_VERSIONS];
        int n = only ? n_only : repo_list_versions(dir, avail, REPO_MAX_VERSIONS);
        if (!only && r->o.control == REPO_CONTROL_POLL) { /* start-up: complete files only */
            int k = 0;
            for (int i = 0; i < n; i++) {
                char path[PATH_MAX], why[600];
                if (repo_version_files(dir, avail[i], path, sizeof path, NULL, 0, NULL, why,
                                       sizeof why) == 0 &&
                    repo_weights_complete(path, why, sizeof why) == 0)
                    avail[k++] = avail[i];
                else log_event(LOG_WARNING, "model %s version %lld: %s; left to the rescans",
                               name, avail[i], why);
            }
            n = k;
        }
        n_want = repo_select_versions(&s.version_policy, only ? only : avail, n, want);
        if (n_want > REPO_MAX_POLICY_VERSIONS) n_want = REPO_MAX_POLICY_VERSIONS;
        if (n_want == 0) {
            snprintf(err, sizeof err, "no version of model '%s' to serve: %d version folder(s) "
                     "with " REPO_WEIGHTS_FILE ", none picked by its version_policy", name, n);
            goto fail;
        }
    } else {
        if (config && model_settings_parse(config, strlen(config), name, &s, err, sizeof err))
            goto fail;
        want[n_want++] = 1;
    }
    if (r->o.swap == REPO_SWAP_MEMORY) unload_replaced_first(r, e, dir, want, n_want, &s);

    repository_version *next[REPO_MAX_POLICY_VERSIONS] = {0};
    bool built[REPO_MAX_POLICY_VERSIONS] = {0};
    for (int i = 0; i < n_want; i++) {
        char weights[PATH_MAX] = "", labels[PATH_MAX] = "";
        repo_file_id id = {0};
        if (r->root[0] &&
            repo_version_files(dir, want[i], weights, sizeof weights, labels, sizeof labels, &id,
                               err, sizeof err) != 0) {
            repository_set_failure(r, e, want[i], err);
            goto fail_built;
        }
        /* A version served unchanged (same file, same settings) is kept, not rebuilt. */
        pthread_mutex_lock(&r->lock);
        e->loading_version = want[i];
        for (int j = 0; j < e->n_served; j++) {
            repository_version *old = e->served[j];
            if (old->version == want[i] && model_settings_equal(&old->settings, &s) &&
                (!r->root[0] || repo_file_id_equal(&old->file, &id)))
                next[i] = old;
        }
        pthread_mutex_unlock(&r->lock);
        if (next[i]) continue;
        log_event(LOG_INFO, "model %s version %lld: loading%s", name, want[i],
                  e->n_served ? " beside the versions serving" : "");
        const char *w = r->root[0] ? weights : (r->single_weights[0] ? r->single_weights : NULL);
        const char *l = r->root[0] ? (labels[0] ? labels : NULL)
                                   : (r->single_labels[0] ? r->single_labels : NULL);
        char why[2048];
        next[i] = version_build(r, name, want[i], w, l, &s, r->root[0] ? &id : NULL, why,
                                sizeof why);
        if (!next[i]) {
            snprintf(err, sizeof err, "version %lld: %s", want[i], why);
            repository_set_failure(r, e, want[i], err);
            goto fail_built;
        }
        built[i] = true;
    }

    /* The swap: one step under the lock. */
    pthread_mutex_lock(&r->lock);
    const bool swap = e->n_served > 0;
    for (int j = 0; j < e->n_served; j++) {
        bool kept = false;
        for (int i = 0; i < n_want; i++) kept |= next[i] == e->served[j];
        if (!kept) retire_locked(r, e->served[j]);
    }
    for (int i = 0; i < n_want; i++) e->served[i] = next[i];
    e->n_served = n_want;
    e->loading = e->unloading = false;
    e->failed_version = 0;
    e->reason[0] = '\0';
    pthread_mutex_unlock(&r->lock);
    int n_built = 0;
    for (int i = 0; i < n_want; i++) n_built += built[i];
    const double took = clock_monotonic_ns() / 1e9 - t0;
    log_event(LOG_INFO, "model %s: %s: serving version %lld (%d version(s), %d built) after %.2f s",
              name, !n_built ? "reloaded unchanged" : swap ? "swapped" : "loaded", want[n_want - 1],
              n_want, n_built, took);
    if (n_built && r->o.metrics) metrics_observe_model_load(r->o.metrics, name, took);
    return API_OK;

fail_built:
    for (int i = 0; i < n_want; i++)
        if (built[i]) version_free(next[i]);
    snprintf(msg, msglen, "failed to load '%s': %s", name, err);
    log_event(LOG_ERROR, "%s (after %.2f s)", msg, clock_monotonic_ns() / 1e9 - t0);
    return API_BAD_REQUEST;
fail:
    repository_set_failure(r, e, 0, err);
    snprintf(msg, msglen, "failed to load '%s': %s", name, err);
    log_event(LOG_ERROR, "%s (after %.2f s)", msg, clock_monotonic_ns() / 1e9 - t0);
    return API_BAD_REQUEST;
}

api_status repository_do_unload(repository *r, const char *name, char *msg, size_t msglen) {
    pthread_mutex_lock(&r->lock);
    model_entry *e = repository_find_locked(r, name);
    int n = e ? e->n_served : 0;
    if (e) {
        for (int j = 0; j < e->n_served; j++) retire_locked(r, e->served[j]);
        e->n_served = 0;
        e->unloading = false; /* done: "not loaded" from now, not "unloading" */
        e->failed_version = 0;
        snprintf(e->reason, sizeof e->reason, "unloaded");
    }
    pthread_mutex_unlock(&r->lock);
    if (!e) {
        snprintf(msg, msglen, "unknown model '%s'", name);
        return API_NOT_FOUND;
    }
    log_event(LOG_INFO, "model %s: unloading %d version(s); each is freed after its last request",
              name, n);
    return API_OK;
}

/* Frees the retired versions no job holds any more (loader thread, lock held on entry and
 * exit; dropped while freeing). */
static void free_unheld_locked(repository *r) {
    for (;;) {
        repository_version **p = &r->retired, *v = NULL;
        while (*p && atomic_load(&(*p)->refs) > 0) p = &(*p)->next_retired;
        if (!(v = *p)) return;
        *p = v->next_retired;
        pthread_mutex_unlock(&r->lock);
        const double t0 = clock_monotonic_ns() / 1e9;
        char name[REPO_MAX_NAME];
        snprintf(name, sizeof name, "%s", v->name);
        long long version = v->version;
        const int64_t retired_ns = v->retired_ns;
        version_free(v);
        malloc_trim(0); /* the network's pages go back to the OS, not to glibc's arenas */
        log_event(LOG_INFO, "model %s version %lld: unloaded: freed in %.2f s, %.2f s after it "
                  "stopped taking requests", name, version, clock_monotonic_ns() / 1e9 - t0,
                  (clock_monotonic_ns() - retired_ns) / 1e9);
        pthread_mutex_lock(&r->lock);
    }
}

static bool any_unheld_locked(const repository *r) {
    for (const repository_version *v = r->retired; v; v = v->next_retired)
        if (atomic_load(&v->refs) == 0) return true;
    return false;
}

static void *loader_main(void *arg) {
    repository *r = arg;
    const int64_t poll_ns = (int64_t)(r->o.poll_secs > 0 ? r->o.poll_secs : 15) * 1000000000LL;
    int64_t next_poll = 0;
    pthread_mutex_lock(&r->lock);
    for (;;) {
        while (!r->stopping && !r->ops && !any_unheld_locked(r)) {
            if (!r->polling) {
                pthread_cond_wait(&r->cond, &r->lock);
                continue;
            }
            const int64_t now = clock_monotonic_ns();
            if (!next_poll) next_poll = now + poll_ns;
            if (now >= next_poll) break;
            struct timespec abs = clock_after_ns(CLOCK_REALTIME, next_poll - now);
            pthread_cond_timedwait(&r->cond, &r->lock, &abs);
        }
        free_unheld_locked(r);
        if (r->stopping) break;
        pending_op *op = r->ops;
        if (!op) {
            if (r->polling && next_poll && clock_monotonic_ns() >= next_poll) {
                pthread_mutex_unlock(&r->lock);
                repository_poll_scan(r);
                pthread_mutex_lock(&r->lock);
                next_poll = clock_monotonic_ns() + poll_ns;
            }
            continue;
        }
        r->ops = op->next;
        if (!r->ops) r->ops_tail = NULL;
        pthread_mutex_unlock(&r->lock);
        char msg[2200] = "";
        api_status st = op->op == REPOSITORY_LOAD
                            ? repository_do_load(r, op->name, op->config, NULL, 0, msg, sizeof msg)
                            : repository_do_unload(r, op->name, msg, sizeof msg);
        op->done(op->ctx, st, msg);
        free(op->config);
        free(op);
        pthread_mutex_lock(&r->lock);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

api_status repository_request(repository *r, repository_op op, const char *name,
                              const char *config, repository_done done, void *ctx, char *msg,
                              size_t msglen) {
    char dir[PATH_MAX];
    if (repo_name_check(name, msg, msglen) != 0) return API_BAD_REQUEST;
    if (r->root[0] ? repo_model_dir(r->root, name, dir, sizeof dir, msg, msglen) != 0
                   : strcmp(name, r->single_name) != 0) {
        if (!r->root[0]) snprintf(msg, msglen, "unknown model '%s'", name);
        /* an unload of a model whose folder went away still unloads it */
        if (!(op == REPOSITORY_UNLOAD && repository_knows(r, name))) return API_NOT_FOUND;
    }
    pending_op *p = calloc(1, sizeof *p);
    if (!p || (config && !(p->config = strdup(config)))) {
        free(p);
        snprintf(msg, msglen, "out of memory");
        return API_INTERNAL;
    }
    p->op = op;
    snprintf(p->name, sizeof p->name, "%s", name);
    p->done = done;
    p->ctx = ctx;
    pthread_mutex_lock(&r->lock);
    if (r->stopping) {
        pthread_mutex_unlock(&r->lock);
        free(p->config);
        free(p);
        snprintf(msg, msglen, "service is draining");
        return API_NOT_READY;
    }
    if (op == REPOSITORY_UNLOAD) {
        model_entry *e = repository_find_locked(r, name);
        if (e && e->n_served) e->unloading = true;
    }
    if (r->ops_tail) r->ops_tail->next = p;
    else r->ops = p;
    r->ops_tail = p;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    return API_OK;
}

/* ---------------------------------------------------------------- start-up loads */

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int left;
    char err[2300];
} initial_loads;

static void initial_done(void *ctx, api_status st, const char *msg) {
    initial_loads *w = ctx;
    pthread_mutex_lock(&w->lock);
    if (st != API_OK && !w->err[0]) snprintf(w->err, sizeof w->err, "%s", msg);
    w->left--;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

int repository_load_initial(repository *r, const char *names, bool (*aborted)(void *ctx),
                            void *ctx, char *err, size_t errlen) {
    initial_loads w = {.left = 0};
    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.cond, NULL);
    /* The names to load: the one model, every model of the table, or the comma-separated
     * list (load_model); a list sized to the table, so no name is ever cut. */
    char *list = NULL;
    if (!r->root[0] || r->o.control == REPO_CONTROL_NONE || r->o.control == REPO_CONTROL_POLL) {
        pthread_mutex_lock(&r->lock);
        list = calloc((size_t)r->n_models + 1, REPO_MAX_NAME);
        for (int i = 0; list && i < r->n_models; i++)
            snprintf(list + strlen(list), REPO_MAX_NAME + 1, "%s%s", i ? "," : "",
                     r->models[i]->name);
        pthread_mutex_unlock(&r->lock);
    } else {
        list = strdup(names ? names : "");
    }
    if (!list) {
        snprintf(err, errlen, "out of memory");
        pthread_mutex_destroy(&w.lock);
        pthread_cond_destroy(&w.cond);
        return -1;
    }
    int rc = 0;
    for (char *save = NULL, *n = strtok_r(list, ",", &save); n; n = strtok_r(NULL, ",", &save)) {
        char msg[512];
        pthread_mutex_lock(&w.lock);
        w.left++;
        pthread_mutex_unlock(&w.lock);
        if (repository_request(r, REPOSITORY_LOAD, n, NULL, initial_done, &w, msg, sizeof msg) !=
            API_OK) {
            initial_done(&w, API_BAD_REQUEST, msg);
        }
    }
    free(list);
    pthread_mutex_lock(&w.lock);
    while (w.left > 0) {
        struct timespec abs = clock_after_ns(CLOCK_REALTIME, 100000000);
        pthread_cond_timedwait(&w.cond, &w.lock, &abs);
        if (rc == 0 && aborted && aborted(ctx)) {
            rc = 1;
            pthread_mutex_lock(&r->lock);
            r->abort = true; /* later builds stop before they start */
            if (r->warming) batcher_abort_warmup(r->warming);
            pthread_mutex_unlock(&r->lock);
        }
    }
    pthread_mutex_unlock(&w.lock);
    if (rc == 0 && w.err[0]) {
        snprintf(err, errlen, "%s", w.err);
        rc = -1;
    }
    if (rc == 0 && r->root[0] && r->o.control == REPO_CONTROL_POLL) {
        pthread_mutex_lock(&r->lock);
        r->polling = true; /* the loader's rescans start */
        pthread_cond_broadcast(&r->cond);
        pthread_mutex_unlock(&r->lock);
    }
    pthread_mutex_destroy(&w.lock);
    pthread_cond_destroy(&w.cond);
    return rc;
}

/* ---------------------------------------------------------------- lookups */

bool repository_knows(repository *r, const char *name) {
    pthread_mutex_lock(&r->lock);
    bool known = repository_find_locked(r, name) != NULL;
    pthread_mutex_unlock(&r->lock);
    return known;
}

bool repository_default_model(repository *r, char *out, size_t cap) {
    if (r->default_model[0]) {
        snprintf(out, cap, "%s", r->default_model);
        return true;
    }
    pthread_mutex_lock(&r->lock);
    bool one = r->n_models == 1;
    if (one) snprintf(out, cap, "%s", r->models[0]->name);
    pthread_mutex_unlock(&r->lock);
    return one;
}

repository_version *repository_acquire(repository *r, const char *name, long long version,
                                       api_status *st, char *msg, size_t msglen) {
    repository_version *v = NULL;
    pthread_mutex_lock(&r->lock);
    model_entry *e = repository_find_locked(r, name);
    if (!e) {
        *st = API_NOT_FOUND;
        snprintf(msg, msglen, "unknown model '%.64s' (POST /v2/repository/index lists them)", name);
    } else if (version == 0 && e->n_served) {
        v = e->served[e->n_served - 1];
    } else if (version) {
        for (int j = 0; j < e->n_served; j++)
            if (e->served[j]->version == version) v = e->served[j];
        if (!v && e->loading && e->loading_version == version) {
            *st = API_NOT_READY;
            snprintf(msg, msglen, "version %lld of model '%s' is loading", version, name);
        } else if (!v) {
            *st = API_NOT_FOUND;
            char served[160] = "";
            for (int j = 0; j < e->n_served; j++)
                snprintf(served + strlen(served), sizeof served - strlen(served), "%s%lld",
                         j ? ", " : "", e->served[j]->version);
            snprintf(msg, msglen, "unknown version '%lld' of model '%s'; served: %s", version, name,
                     served[0] ? served : "none");
        }
    }
    if (e && !v && version == 0) {
        *st = API_NOT_READY;
        snprintf(msg, msglen, "model '%s' is %s", name,
                 e->loading ? "loading" : e->unloading ? "unloading" : "not loaded");
    }
    if (v) atomic_fetch_add(&v->refs, 1);
    pthread_mutex_unlock(&r->lock);
    return v;
}

/* The index rows of the model table as it stands (no disk read). */
static int table_rows(repository *r, kserve_v2_index_entry *out, int max) {
    int n = 0;
#define ADD(nm, ver, stt, why)                                                                 \
    do {                                                                                       \
        if (n < max) {                                                                         \
            out[n] = (kserve_v2_index_entry){.version = (ver), .state = (stt)};                \
            snprintf(out[n].name, sizeof out[n].name, "%s", (nm));                             \
            snprintf(out[n].reason, sizeof out[n].reason, "%s", (why));                        \
            n++;                                                                               \
        }                                                                                      \
    } while (0)
    pthread_mutex_lock(&r->lock);
    for (int i = 0; i < r->n_models; i++) {
        const model_entry *e = r->models[i];
        int before = n;
        for (int j = 0; j < e->n_served; j++)
            ADD(e->name, e->served[j]->version,
                e->unloading ? KSERVE_V2_MODEL_UNLOADING : KSERVE_V2_MODEL_READY, "");
        for (const repository_version *v = r->retired; v; v = v->next_retired)
            if (strcmp(v->name, e->name) == 0)
                ADD(e->name, v->version, KSERVE_V2_MODEL_UNLOADING,
                    "finishing the requests it accepted");
        if (e->loading) ADD(e->name, e->loading_version, KSERVE_V2_MODEL_LOADING, "");
        if (e->failed_version)
            ADD(e->name, e->failed_version > 0 ? e->failed_version : 0,
                KSERVE_V2_MODEL_UNAVAILABLE, e->reason);
        if (n == before)
            ADD(e->name, 0, KSERVE_V2_MODEL_UNAVAILABLE, e->reason[0] ? e->reason : "not loaded");
    }
    pthread_mutex_unlock(&r->lock);
#undef ADD
    return n;
}

repo_control repository_control_mode(const repository *r) { return r->o.control; }

/* vggserve_model_state's rows: the index (metrics.h's state source). */
int repository_index(repository *r, kserve_v2_index_entry *out, int max) {
    /* Folders copied in since are listed, as Triton's index lists the repository's models;
     * in poll mode the rescans add them (a scan here could race the poller's gone-check). */
    if (r->o.control != REPO_CONTROL_POLL) scan_root(r);
    return table_rows(r, out, max);
}

/* /metrics' state gauge, at each scrape: the table only, no disk read. */
static int index_rows(void *ctx, kserve_v2_index_entry *out, int max) {
    return table_rows(ctx, out, max);
}

/* ---------------------------------------------------------------- life */

repository *repository_create(const repository_options *o, char *err, size_t errlen) {
    repository *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->o = *o;
    if (o->root && o->root[0]) {
        struct stat st;
        if (!realpath(o->root, r->root) || stat(r->root, &st) != 0 || !S_ISDIR(st.st_mode)) {
            snprintf(err, errlen, "model repository %s is not a folder", o->root);
            free(r);
            return NULL;
        }
    }
    snprintf(r->single_name, sizeof r->single_name, "%s", o->single_name ? o->single_name : "");
    snprintf(r->single_weights, sizeof r->single_weights, "%s",
             o->single_weights ? o->single_weights : "");
    snprintf(r->single_labels, sizeof r->single_labels, "%s",
             o->single_labels ? o->single_labels : "");
    snprintf(r->default_model, sizeof r->default_model, "%s",
             o->default_model ? o->default_model : "");
    r->o.root = r->root;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    r->cores = cores > 0 ? (int)cores : 1;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    if (r->root[0]) scan_root(r);
    else repository_find_or_add_locked(r, r->single_name);
    if (pthread_create(&r->loader, NULL, loader_main, r) != 0) {
        snprintf(err, errlen, "cannot start the model loader thread");
        repository_free(r);
        return NULL;
    }
    r->loader_started = true;
    if (r->o.metrics) metrics_set_state_source(r->o.metrics, index_rows, r);
    return r;
}

/* Stops the loader: the op in progress ends (a warm-up is cut short), the queued ones are
 * answered, retired versions are freed. */
static void stop_loader(repository *r) {
    pthread_mutex_lock(&r->lock);
    r->stopping = r->abort = true;
    if (r->warming) batcher_abort_warmup(r->warming);
    pending_op *ops = r->ops;
    r->ops = r->ops_tail = NULL;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    for (pending_op *p = ops, *next; p; p = next) {
        next = p->next;
        p->done(p->ctx, API_NOT_READY, "service is draining");
        free(p->config);
        free(p);
    }
    if (r->loader_started) {
        pthread_join(r->loader, NULL);
        r->loader_started = false;
    }
}

void repository_drain(repository *r, int64_t grace_ms) {
    if (!r) return;
    stop_loader(r);
    const int64_t until = clock_monotonic_ns() + grace_ms * 1000000;
    pthread_mutex_lock(&r->lock);
    for (int i = 0; i < r->n_models; i++)
        for (int j = 0; j < r->models[i]->n_served; j++) {
            int64_t left = (until - clock_monotonic_ns()) / 1000000;
            batcher *b = r->models[i]->served[j]->b;
            pthread_mutex_unlock(&r->lock); /* completions may release references */
            batcher_drain(b, left > 0 ? left : 0);
            pthread_mutex_lock(&r->lock);
        }
    for (repository_version *v = r->retired; v; v = v->next_retired) {
        batcher *b = v->b;
        pthread_mutex_unlock(&r->lock);
        batcher_drain(b, 0);
        pthread_mutex_lock(&r->lock);
    }
    pthread_mutex_unlock(&r->lock);
}

void repository_free(repository *r) {
    if (!r) return;
    if (r->o.metrics) metrics_set_state_source(r->o.metrics, NULL, NULL); /* waits for a scrape */
    stop_loader(r);
    for (int i = 0; i < r->n_models; i++) {
        for (int j = 0; j < r->models[i]->n_served; j++) version_free(r->models[i]->served[j]);
        free(r->models[i]);
    }
    for (repository_version *v = r->retired, *next; v; v = next) {
        next = v->next_retired;
        version_free(v);
    }
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    free(r);
}
