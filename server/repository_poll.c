/* repository_poll.c - poll mode: each rescan makes what is served match the repository's
 * folders (repository.h's DESIGN; docs/configuration.md "Poll mode" for the rules). Runs on
 * the loader thread only, between operations. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "repository_dir.h"
#include "repository_internal.h"

/* What one rescan sees of a model folder. */
typedef struct {
    char dir[PATH_MAX];
    model_settings settings; /* the service's, with config.json's on top */
    int config_rc;           /* config.json read: 0, or -1 with config_err */
    char config_err[2100];
    repo_file_id config_id;
    int n; /* version folders, ascending */
    long long on_disk[REPO_MAX_VERSIONS];
    repo_file_id ids[REPO_MAX_VERSIONS];
    int n_avail; /* those whose weights file counts */
    long long avail[REPO_MAX_VERSIONS];
    int n_served; /* versions serving when the scan looked */
} folder_view;

static void sig_add(uint64_t *h, const void *p, size_t n) {
    for (size_t i = 0; i < n; i++) *h = (*h ^ ((const unsigned char *)p)[i]) * 1099511628211ULL;
}

static void sig_add_id(uint64_t *h, const repo_file_id *id) {
    long long f[4] = {(long long)id->dev, (long long)id->ino, (long long)id->size, id->mtime_ns};
    sig_add(h, f, sizeof f);
}

/* Takes model entry e out of the table and frees it (loader thread, lock held; nothing but
 * the loader keeps an entry's address across the lock). */
static void remove_entry_locked(repository *r, model_entry *e) {
    for (int i = 0; i < r->n_models; i++)
        if (r->models[i] == e) {
            memmove(&r->models[i], &r->models[i + 1],
                    (size_t)(r->n_models - i - 1) * sizeof r->models[0]);
            r->n_models--;
            free(e);
            return;
        }
}

/* The folder's config and version files into *f (the files' paths into files, whether each
 * is there into have). false when the folder cannot be resolved. */
static bool read_folder(repository *r, const char *name, folder_view *f, char (*files)[PATH_MAX],
                        bool *have) {
    if (repo_model_dir(r->root, name, f->dir, sizeof f->dir, f->config_err,
                       sizeof f->config_err) != 0)
        return false;
    char path[PATH_MAX + 16], why[600];
    snprintf(path, sizeof path, "%s/" REPO_CONFIG_FILE, f->dir);
    repo_file_identity(path, &f->config_id);
    f->settings = r->o.defaults;
    f->config_rc = repository_read_config(f->dir, name, &f->settings, f->config_err,
                                          sizeof f->config_err);
    f->n = repo_list_versions(f->dir, f->on_disk, REPO_MAX_VERSIONS);
    for (int k = 0; k < f->n; k++)
        have[k] = repo_version_files(f->dir, f->on_disk[k], files[k], sizeof files[k], NULL, 0,
                                     &f->ids[k], why, sizeof why) == 0;
    return true;
}

/* Which files count (lock held): a file serving unchanged, or one unchanged since the
 * previous scan, whose completeness *check asks for (outside the lock). e's seen list
 * becomes this scan's. */
static void judge_stability_locked(model_entry *e, folder_view *f, bool *have, bool *check) {
    for (int k = 0; k < f->n; k++) {
        bool served = false, stable = false;
        for (int j = 0; j < e->n_served && have[k]; j++)
            served |= e->served[j]->version == f->on_disk[k] &&
                      repo_file_id_equal(&e->served[j]->file, &f->ids[k]);
        for (int j = 0; j < e->n_seen && have[k]; j++)
            stable |= e->seen_version[j] == f->on_disk[k] &&
                      repo_file_id_equal(&e->seen_id[j], &f->ids[k]);
        check[k] = !served && stable;
        have[k] = have[k] && (served || stable);
    }
    f->n_served = e->n_served;
    e->n_seen = f->n;
    memcpy(e->seen_version, f->on_disk, (size_t)f->n * sizeof f->on_disk[0]);
    memcpy(e->seen_id, f->ids, (size_t)f->n * sizeof f->ids[0]);
}

/* f->avail: the versions whose file counts, the stable new ones checked complete. */
static void collect_available(folder_view *f, char (*files)[PATH_MAX], const bool *have,
                              const bool *check) {
    char why[600];
    f->n_avail = 0;
    for (int k = 0; k < f->n; k++)
        if (have[k] && (!check[k] || repo_weights_complete(files[k], why, sizeof why) == 0))
            f->avail[f->n_avail++] = f->on_disk[k];
}

/* Whether a version the policy picks among all the folders is not ready yet (being copied or
 * rewritten) while the model serves: that holds every change back, so a file in the making
 * never makes the model fall back to an older version (that is for a folder deleted). */
static bool wanted_version_in_the_making(const folder_view *f) {
    if (f->config_rc != 0 || !f->n_served) return false;
    long long want[REPO_MAX_VERSIONS];
    const int n_want = repo_select_versions(&f->settings.version_policy, f->on_disk, f->n, want);
    for (int i = 0; i < n_want; i++) {
        bool ready = false;
        for (int k = 0; k < f->n_avail; k++) ready |= f->avail[k] == want[i];
        if (!ready) return true;
    }
    return false;
}

/* The file identity of on-disk version v. */
static const repo_file_id *id_of(const folder_view *f, long long v) {
    for (int k = 0; k < f->n; k++)
        if (f->on_disk[k] == v) return &f->ids[k];
    return &f->ids[0];
}

/* The target (want, n_want) against what e serves (lock held): whether it is served already,
 * and its signature (config and files), which a failed load records so that it is not
 * retried until something changes. */
static bool target_served_locked(const model_entry *e, const folder_view *f,
                                 const long long *want, int n_want, uint64_t *sig) {
    *sig = 14695981039346656037ULL;
    sig_add(sig, &f->config_rc, sizeof f->config_rc);
    sig_add_id(sig, &f->config_id);
    bool same = f->config_rc == 0 && n_want == e->n_served;
    for (int i = 0; i < n_want; i++) {
        const repo_file_id *id = id_of(f, want[i]);
        sig_add(sig, &want[i], sizeof want[i]);
        sig_add_id(sig, id);
        same = same && e->served[i]->version == want[i] &&
               model_settings_equal(&e->served[i]->settings, &f->settings) &&
               repo_file_id_equal(&e->served[i]->file, id);
    }
    *sig |= 1; /* never 0, which means "no failure" */
    return same;
}

/* Makes e serve its target: config.json broken (kept as is, the reason in the index), no
 * version folder left (unloaded), or a load. Returns what e->poll_failed becomes: sig when
 * the config or the load failed, 0 after a load, failed (as it was) otherwise. */
static uint64_t move_to_target(repository *r, model_entry *e, const char *name,
                               const folder_view *f, int n_want, uint64_t sig, uint64_t failed) {
    char msg[2200];
    if (f->config_rc != 0) {
        repository_set_failure(r, e, 0, f->config_err);
        log_event(LOG_ERROR, "model %s: %s; what serves is kept", name, f->config_err);
        return sig;
    }
    if (n_want > 0) return repository_do_load(r, name, NULL, f->avail, f->n_avail, msg,
                                              sizeof msg) == API_OK ? 0 : sig;
    /* Nothing complete yet keeps what serves; no version folder at all unloads it. */
    if (f->n > 0 || f->n_served == 0) return failed;
    log_event(LOG_INFO, "model %s: no version folder left in the repository", name);
    repository_do_unload(r, name, msg, sizeof msg);
    pthread_mutex_lock(&r->lock);
    snprintf(e->reason, sizeof e->reason, "unloaded: no version folder with "
             REPO_WEIGHTS_FILE " in the repository");
    pthread_mutex_unlock(&r->lock);
    return failed;
}

/* One model folder of a rescan: what serves made to match what the folder holds. */
static void poll_model(repository *r, const char *name) {
    folder_view *f = calloc(1, sizeof *f);
    char (*files)[PATH_MAX] = malloc(REPO_MAX_VERSIONS * sizeof *files);
    bool have[REPO_MAX_VERSIONS], check[REPO_MAX_VERSIONS];
    if (!f || !files || !read_folder(r, name, f, files, have)) goto out;
    pthread_mutex_lock(&r->lock);
    model_entry *e = repository_find_or_add_locked(r, name);
    if (e) judge_stability_locked(e, f, have, check);
    pthread_mutex_unlock(&r->lock);
    if (!e) goto out;
    collect_available(f, files, have, check);
    if (wanted_version_in_the_making(f)) goto out;
    long long want[REPO_MAX_VERSIONS];
    int n_want = f->config_rc == 0
                     ? repo_select_versions(&f->settings.version_policy, f->avail, f->n_avail, want)
                     : 0;
    if (n_want > REPO_MAX_POLICY_VERSIONS) n_want = REPO_MAX_POLICY_VERSIONS;

    uint64_t sig;
    pthread_mutex_lock(&r->lock);
    const bool same = target_served_locked(e, f, want, n_want, &sig);
    const bool failed_before = e->poll_failed == sig;
    if (same && (e->poll_failed || e->failed_version)) { /* the failed target went away */
        e->poll_failed = 0;
        e->failed_version = 0;
        e->reason[0] = '\0';
    }
    const uint64_t failed = e->poll_failed;
    pthread_mutex_unlock(&r->lock);
    if (!same && !failed_before) {
        const uint64_t now_failed = move_to_target(r, e, name, f, n_want, sig, failed);
        pthread_mutex_lock(&r->lock);
        e->poll_failed = now_failed;
        pthread_mutex_unlock(&r->lock);
    }
out:
    free(files);
    free(f);
}

void repository_poll_scan(repository *r) {
    char (*names)[REPO_MAX_NAME] = malloc(MAX_MODELS * sizeof *names);
    char err[512], msg[2200], gone[REPO_MAX_NAME];
    if (!names) return;
    const int n = repo_list_models(r->root, names, MAX_MODELS, err, sizeof err);
    if (n < 0) { /* an unreadable folder is no reason to unload everything */
        log_event(LOG_ERROR, "repository rescan: %s; nothing changed", err);
        free(names);
        return;
    }
    for (;;) {
        gone[0] = '\0';
        pthread_mutex_lock(&r->lock);
        for (int i = 0; i < r->n_models && !gone[0]; i++) {
            bool listed = false;
            for (int k = 0; k < n && !listed; k++) listed = strcmp(names[k], r->models[i]->name) == 0;
            if (!listed) snprintf(gone, sizeof gone, "%s", r->models[i]->name);
        }
        pthread_mutex_unlock(&r->lock);
        if (!gone[0]) break;
        log_event(LOG_INFO, "model %s: its folder left the repository", gone);
        repository_do_unload(r, gone, msg, sizeof msg);
        pthread_mutex_lock(&r->lock);
        model_entry *e = repository_find_locked(r, gone);
        if (e) remove_entry_locked(r, e);
        pthread_mutex_unlock(&r->lock);
    }
    for (int k = 0; k < n; k++) {
        pthread_mutex_lock(&r->lock);
        const bool stopping = r->stopping;
        pthread_mutex_unlock(&r->lock);
        if (stopping) break;
        poll_model(r, names[k]);
    }
    free(names);
}

