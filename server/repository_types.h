/* repository_types.h - the types of the model repository's contract (repository.h, whose
 * comment explains them), apart so that repository_internal.h can build on them without
 * including the contract itself. Include repository.h, not this. */
#ifndef SERVER_REPOSITORY_TYPES_H
#define SERVER_REPOSITORY_TYPES_H

#include <stdbool.h>
#include <stddef.h>

#include "arrivals.h"
#include "batcher.h"
#include "errors.h"
#include "kserve_v2.h"
#include "labels.h"
#include "metrics.h"
#include "model_settings.h"
#include "repository_dir.h"
#include "served_model.h"
#include "vgg_weights.h"

typedef struct repository repository;
typedef struct repository_version repository_version;

/* What a build produces: the network over its weights (the weights stay until warm-up has
 * made every format, then are freed), its labels and its preprocessing. */
typedef struct {
    vgg_weights w;
    vgg_model *model;
    vgg_labels labels;
    preprocess_mode preprocess;
} repository_built;

/* One version to build: its weights file (NULL: generated weights from the seed), its label
 * file beside it (NULL: the weights' own), and its settings. */
typedef struct {
    const char *name;
    const char *weights;
    const char *labels;
    const model_settings *settings;
} repository_build_spec;

/* Builds spec into *out (the start-up code's model building: cli/serve.c). 0, or -1 with err. */
typedef int (*repository_builder)(void *ctx, const repository_build_spec *spec,
                                  repository_built *out, char *err, size_t errlen);

typedef struct {
    const char *root;    /* the repository folder; NULL: the one model below */
    const char *single_name;    /* without root: the model's name (vgg16) */
    const char *single_weights; /* without root: its weights (NULL: generated) */
    const char *single_labels;  /* without root: its label file (NULL: its own) */
    const char *default_model;  /* /classify without ?model=: this one ("" or NULL: the only
                                 * model, when there is one) */
    repo_control control;
    int poll_secs;          /* control poll: seconds between rescans */
    repo_swap_policy swap;  /* a new version beside the serving one, or after unloading it */
    model_settings defaults; /* the service's settings, which config.json overrides */
    repository_builder build;
    void *build_ctx;
    metrics *metrics;
    const arrivals *arriving; /* the batchers' partial-batch waits read it */
} repository_options;

typedef enum { REPOSITORY_LOAD, REPOSITORY_UNLOAD } repository_op;

/* Called once when an operation ends, on the loader thread: API_OK, or the status and why. */
typedef void (*repository_done)(void *ctx, api_status st, const char *msg);

#endif
