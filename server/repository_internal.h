/* repository_internal.h - what repository.c (the table, the loader thread, loads and
 * unloads) and repository_poll.c (poll mode's rescans) share; nothing else includes it.
 *
 * The structs below are guarded by repository.lock as repository.h's DESIGN says; the
 * functions are the loader thread's, with the locking each comment states. */
#ifndef SERVER_REPOSITORY_INTERNAL_H
#define SERVER_REPOSITORY_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "repository_types.h"

#define MAX_MODELS 1024

struct repository_version {
    repository *repo;
    char name[REPO_MAX_NAME];
    long long version;
    served_model served; /* .name is name above, .labels is &built.labels */
    repository_built built;
    batcher *b;
    metrics_series *series; /* its labels in /metrics, from build to free */
    model_settings settings;
    repo_file_id file;
    atomic_int refs; /* one while listed as served, one per job holding it */
    repository_version *next_retired;
    int64_t retired_ns; /* when it left its model's list (unload or swap) */
};

typedef struct {
    char name[REPO_MAX_NAME];
    repository_version *served[REPO_MAX_POLICY_VERSIONS]; /* ascending version */
    int n_served;
    bool loading, unloading;
    long long loading_version;
    long long failed_version; /* the last load's failure: a version, or -1 the model's */
    char reason[256];
    /* poll: the weights files the previous scan saw (a file unchanged since counts), and the
     * signature of a target whose load failed (not retried until it changes; 0: none) */
    long long seen_version[REPO_MAX_VERSIONS];
    repo_file_id seen_id[REPO_MAX_VERSIONS];
    int n_seen;
    uint64_t poll_failed;
} model_entry;

typedef struct pending_op {
    repository_op op;
    char name[REPO_MAX_NAME];
    char *config;
    repository_done done;
    void *ctx;
    struct pending_op *next;
} pending_op;

struct repository {
    repository_options o;
    char root[PATH_MAX];
    char single_name[REPO_MAX_NAME], single_weights[PATH_MAX], single_labels[PATH_MAX];
    char default_model[REPO_MAX_NAME];
    int cores;

    pthread_mutex_t lock;
    pthread_cond_t cond; /* an op queued, a reference dropped, stopping */
    model_entry *models[MAX_MODELS];
    int n_models;
    pending_op *ops, *ops_tail;
    repository_version *retired;
    batcher *warming; /* the batcher the loader is warming up, for an abort */
    bool abort, stopping, loader_started;
    bool polling; /* poll mode, the start-up loads ended: the loader rescans */
    pthread_t loader;
};

/* The model entry of name, or NULL (lock held). */
model_entry *repository_find_locked(repository *r, const char *name);
/* The same, added when missing (NULL: the table is full or out of memory; lock held). */
model_entry *repository_find_or_add_locked(repository *r, const char *name);
/* config.json of a model folder into *s (when there is one). 0, or -1 with err. */
int repository_read_config(const char *dir, const char *name, model_settings *s, char *err,
                           size_t errlen);
/* Records a failed load of e (version 0: the model's) with why, for the index (lock not held). */
void repository_set_failure(repository *r, model_entry *e, long long version, const char *why);
/* Loads name (loader thread, lock not held): builds the versions its policy picks among only
 * (n_only, ascending; NULL: every folder) that are not served unchanged, then swaps. API_OK,
 * or a status with msg. */
api_status repository_do_load(repository *r, const char *name, const char *config,
                              const long long *only, int n_only, char *msg, size_t msglen);
/* Unloads name (loader thread, lock not held). API_OK, or a status with msg. */
api_status repository_do_unload(repository *r, const char *name, char *msg, size_t msglen);

/* poll mode's rescan (repository_poll.c; loader thread, lock not held): models whose folder
 * is gone are unloaded and forgotten, every folder's model made to match it. */
void repository_poll_scan(repository *r);

#endif
