/* model_settings.h - one model's settings: DIR/NAME/config.json and the repository API's
 * load body.
 *
 * config.json is a JSON object; every key is optional and overrides the service's setting of
 * the same name (docs/configuration.md):
 *   "precision": "f32" | "bf16" | "int8",   "algo": "auto" | "direct" | "winograd" | ...,
 *   "preprocess": "auto" | "torchvision" | "caffe" | ...,
 *   "max_batch_size", "max_queue_delay_us", "queue_capacity", "workers",
 *   "threads_per_worker": integers in the ranges the service's settings allow,
 *   "version_policy": {"latest": {"num_versions": N}} | {"specific": {"versions": [V, ...]}}
 *                     | {"all": {}}   (Triton's spelling; default latest 1),
 *   "name": ignored when it equals the model's name (Triton configs carry it).
 * Any other key, a wrong type or a value out of range is refused, naming the key.
 *
 * The load body (POST /v2/repository/models/NAME/load): empty, {}, or
 * {"parameters": {"config": "<config.json's text>"}}, which replaces config.json for this
 * load (Triton's override); other parameters are refused.
 *
 * Reentrant, no globals: fuzzed directly (tests/fuzz). Errors fill err; nothing is printed. */
#ifndef API_MODEL_SETTINGS_H
#define API_MODEL_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>

#include "engine.h"
#include "preprocess.h"
#include "repository_dir.h"

typedef struct {
    vgg_precision precision;
    vgg_algo algo;
    preprocess_setting preprocess;
    int max_batch_size;
    long long max_queue_delay_us;
    int queue_capacity; /* images */
    int workers;
    int threads_per_worker; /* 0: the cores divided among workers */
    repo_version_policy version_policy;
} model_settings;

#define MODEL_SETTINGS_MAX_BYTES 65536 /* config.json and the load body at most */

/* Applies the keys of config text (len bytes) on top of *s; name is the model's. 0, or -1
 * with err (then *s is unchanged). */
int model_settings_parse(const char *text, size_t len, const char *name, model_settings *s,
                         char *err, size_t errlen);

/* Reads a load body: *config (malloc'd, NUL-terminated; NULL when the body carries none) is
 * the override's text, already checked with model_settings_parse against base. 0, or -1 with
 * err. */
int model_settings_load_body(const unsigned char *body, size_t len, const char *name,
                             const model_settings *base, char **config, char *err,
                             size_t errlen);

/* Whether two settings build the same model (a reload keeps a version whose settings and file
 * are unchanged). */
bool model_settings_equal(const model_settings *a, const model_settings *b);

#endif
