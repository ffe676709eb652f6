/* model_settings.c - config.json and the load body to a model's settings. */
#include "model_settings.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "name_table.h"

static int set_choice(json_t *v, const char *key, const char *const *names, int *out, char *err,
                      size_t errlen) {
    int i = json_is_string(v) ? name_table_index(names, json_string_value(v)) : -1;
    if (i >= 0) {
        *out = i;
        return 0;
    }
    char list[160];
    name_table_join(names, list, sizeof list);
    snprintf(err, errlen, "config: \"%s\" must be one of %s", key, list);
    return -1;
}

static int set_int(json_t *v, const char *key, long long lo, long long hi, long long *out,
                   char *err, size_t errlen) {
    if (json_is_integer(v) && json_integer_value(v) >= lo && json_integer_value(v) <= hi) {
        *out = json_integer_value(v);
        return 0;
    }
    snprintf(err, errlen, "config: \"%s\" must be an integer in %lld..%lld", key, lo, hi);
    return -1;
}

/* {"latest": {"num_versions": N}} | {"specific": {"versions": [...]}} | {"all": {}} */
static int set_policy(json_t *v, repo_version_policy *p, char *err, size_t errlen) {
    const char *bad = "config: \"version_policy\" must be {\"latest\": {\"num_versions\": N}}, "
                      "{\"specific\": {\"versions\": [V, ...]}} or {\"all\": {}}";
    json_t *x;
    if (!json_is_object(v) || json_object_size(v) != 1) goto fail;
    *p = (repo_version_policy){0};
    if ((x = json_object_get(v, "all"))) {
        if (!json_is_object(x) || json_object_size(x) != 0) goto fail;
        p->kind = REPO_POLICY_ALL;
        return 0;
    }
    if ((x = json_object_get(v, "latest"))) {
        json_t *n = json_is_object(x) ? json_object_get(x, "num_versions") : NULL;
        if (json_object_size(x) != 1 || !json_is_integer(n) || json_integer_value(n) < 1 ||
            json_integer_value(n) > REPO_MAX_POLICY_VERSIONS)
            goto fail;
        p->kind = REPO_POLICY_LATEST;
        p->latest = (int)json_integer_value(n);
        return 0;
    }
    if ((x = json_object_get(v, "specific"))) {
        json_t *a = json_is_object(x) ? json_object_get(x, "versions") : NULL;
        if (json_object_size(x) != 1 || !json_is_array(a) || json_array_size(a) == 0 ||
            json_array_size(a) > REPO_MAX_POLICY_VERSIONS)
            goto fail;
        p->kind = REPO_POLICY_SPECIFIC;
        size_t i;
        json_t *e;
        json_array_foreach(a, i, e) {
            /* Triton's JSON carries int64 versions as numbers or strings. */
            long long ver = json_is_integer(e)  ? json_integer_value(e)
                            : json_is_string(e) ? repo_parse_version(json_string_value(e))
                                                : 0;
            if (ver < 1) goto fail;
            p->specific[p->n_specific++] = ver;
        }
        return 0;
    }
fail:
    snprintf(err, errlen, "%s", bad);
    return -1;
}

int model_settings_parse(const char *text, size_t len, const char *name, model_settings *s,
                         char *err, size_t errlen) {
    if (len > MODEL_SETTINGS_MAX_BYTES) {
        snprintf(err, errlen, "config: longer than %d bytes", MODEL_SETTINGS_MAX_BYTES);
        return -1;
    }
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root || !json_is_object(root)) {
        if (root) snprintf(err, errlen, "config: not a JSON object");
        else snprintf(err, errlen, "config: invalid JSON at line %d: %.120s", je.line, je.text);
        json_decref(root);
        return -1;
    }
    model_settings t = *s;
    const char *key;
    json_t *v;
    int rc = 0;
    json_object_foreach(root, key, v) {
        long long x = 0;
        int c = 0;
        if (strcmp(key, "name") == 0) {
            if (!json_is_string(v) || strcmp(json_string_value(v), name) != 0) {
                snprintf(err, errlen, "config: \"name\" must be the model's name, '%s'", name);
                rc = -1;
            }
        } else if (strcmp(key, "precision") == 0) {
            if (!(rc = set_choice(v, key, vgg_precision_names, &c, err, errlen)))
                t.precision = (vgg_precision)c;
        } else if (strcmp(key, "algo") == 0) {
            if (!(rc = set_choice(v, key, vgg_algo_names, &c, err, errlen))) t.algo = (vgg_algo)c;
        } else if (strcmp(key, "preprocess") == 0) {
            if (!(rc = set_choice(v, key, preprocess_setting_names, &c, err, errlen)))
                t.preprocess = (preprocess_setting)c;
        } else if (strcmp(key, "max_batch_size") == 0) {
            if (!(rc = set_int(v, key, 1, VGG_MAX_BATCH, &x, err, errlen))) t.max_batch_size = (int)x;
        } else if (strcmp(key, "max_queue_delay_us") == 0) {
            if (!(rc = set_int(v, key, 0, 10000000, &x, err, errlen))) t.max_queue_delay_us = x;
        } else if (strcmp(key, "queue_capacity") == 0) {
            if (!(rc = set_int(v, key, 1, 100000, &x, err, errlen))) t.queue_capacity = (int)x;
        } else if (strcmp(key, "workers") == 0) {
            if (!(rc = set_int(v, key, 1, 64, &x, err, errlen))) t.workers = (int)x;
        } else if (strcmp(key, "threads_per_worker") == 0) {
            if (!(rc = set_int(v, key, 0, 1024, &x, err, errlen))) t.threads_per_worker = (int)x;
        } else if (strcmp(key, "version_policy") == 0) {
            rc = set_policy(v, &t.version_policy, err, errlen);
        } else {
            char clean[64];
            size_t k = 0;
            for (const char *p = key; *p && k + 1 < sizeof clean; p++)
                clean[k++] = *p >= 0x20 && *p < 0x7f && *p != '"' ? *p : '?';
            clean[k] = '\0';
            snprintf(err, errlen, "config: unknown key \"%s\" (keys: precision, algo, preprocess, "
                     "max_batch_size, max_queue_delay_us, queue_capacity, workers, "
                     "threads_per_worker, version_policy, name)", clean);
            rc = -1;
        }
        if (rc) break;
    }
    json_decref(root);
    if (rc == 0) *s = t;
    return rc;
}

int model_settings_load_body(const unsigned char *body, size_t len, const char *name,
                             const model_settings *base, char **config, char *err,
                             size_t errlen) {
    *config = NULL;
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
        i++;
    if (i == len) return 0; /* no body */
    if (len > MODEL_SETTINGS_MAX_BYTES) {
        snprintf(err, errlen, "load: a body longer than %d bytes", MODEL_SETTINGS_MAX_BYTES);
        return -1;
    }
    json_error_t je;
    json_t *root = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &je);
    const char *bad = NULL;
    json_t *params = NULL, *cfg = NULL;
    if (!root) bad = "the body is not JSON";
    else if (!json_is_object(root)) bad = "the body must be a JSON object";
    else {
        params = json_object_get(root, "parameters");
        if (json_object_size(root) > (params ? 1u : 0u))
            bad = "the body may hold only \"parameters\"";
        else if (params && !json_is_object(params))
            bad = "\"parameters\" must be an object";
        else if (params) {
            cfg = json_object_get(params, "config");
            if (json_object_size(params) > (cfg ? 1u : 0u))
                bad = "the only parameter a load takes is \"config\" (files are read from the "
                      "repository, never from the request)";
            else if (cfg && !json_is_string(cfg))
                bad = "\"config\" must be a string holding config.json's text";
        }
    }
    int rc = 0;
    if (bad) {
        snprintf(err, errlen, "load: %s", bad);
        rc = -1;
    } else if (cfg) {
        model_settings check = *base;
        const char *text = json_string_value(cfg);
        size_t n = json_string_length(cfg);
        rc = model_settings_parse(text, n, name, &check, err, errlen);
        if (rc == 0 && !(*config = malloc(n + 1))) {
            snprintf(err, errlen, "out of memory");
            rc = -1;
        }
        if (rc == 0) {
            memcpy(*config, text, n);
            (*config)[n] = '\0';
        }
    }
    json_decref(root);
    return rc;
}

bool model_settings_equal(const model_settings *a, const model_settings *b) {
    return a->precision == b->precision && a->algo == b->algo && a->preprocess == b->preprocess &&
           a->max_batch_size == b->max_batch_size &&
           a->max_queue_delay_us == b->max_queue_delay_us &&
           a->queue_capacity == b->queue_capacity && a->workers == b->workers &&
           a->threads_per_worker == b->threads_per_worker;
}
