/* fuzz_model_settings.c - what a repository client controls: a model's config.json and the
 * load body's override (api/model_settings.c), and model names (model/repository_dir.c).
 *
 * The first byte picks the target, the rest is its input:
 *   0: config.json text for model_settings_parse on top of valid defaults: it either applies,
 *      leaving settings in the ranges the service allows, or refuses with a message and leaves
 *      the settings untouched;
 *   1: a load body for model_settings_load_body: refused with a message and no override, or
 *      accepted with an override (NUL-terminated) that model_settings_parse accepts again;
 *   2: a model name (up to the first NUL) for repo_name_check and repo_model_dir inside an
 *      empty repository made once: an accepted name has 1..63 bytes of [A-Za-z0-9_.-], does
 *      not start with '.', has no '/', and its folder, if found, is inside the repository. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "model_settings.h"
#include "repository_dir.h"

static model_settings defaults(void) {
    return (model_settings){.precision = VGG_PRECISION_F32,
                            .algo = VGG_ALGO_AUTO,
                            .max_batch_size = 8,
                            .max_queue_delay_us = 5000,
                            .queue_capacity = 64,
                            .workers = 1,
                            .version_policy = {.kind = REPO_POLICY_LATEST, .latest = 1}};
}

static void check_settings(const model_settings *s) {
    FUZZ_CHECK(s->max_batch_size >= 1 && s->max_batch_size <= VGG_MAX_BATCH);
    FUZZ_CHECK(s->max_queue_delay_us >= 0 && s->max_queue_delay_us <= 10000000);
    FUZZ_CHECK(s->queue_capacity >= 1 && s->queue_capacity <= 100000);
    FUZZ_CHECK(s->workers >= 1 && s->workers <= 64);
    FUZZ_CHECK(s->threads_per_worker >= 0 && s->threads_per_worker <= 1024);
    const repo_version_policy *p = &s->version_policy;
    FUZZ_CHECK(p->kind == REPO_POLICY_LATEST || p->kind == REPO_POLICY_SPECIFIC ||
               p->kind == REPO_POLICY_ALL);
    if (p->kind == REPO_POLICY_LATEST)
        FUZZ_CHECK(p->latest >= 1 && p->latest <= REPO_MAX_POLICY_VERSIONS);
    if (p->kind == REPO_POLICY_SPECIFIC) {
        FUZZ_CHECK(p->n_specific >= 1 && p->n_specific <= REPO_MAX_POLICY_VERSIONS);
        for (int i = 0; i < p->n_specific; i++) FUZZ_CHECK(p->specific[i] >= 1);
    }
}

static void fuzz_config(const char *text, size_t len) {
    model_settings s = defaults(), before = s;
    char err[512];
    if (model_settings_parse(text, len, "m", &s, err, sizeof err) == 0) {
        check_settings(&s);
    } else {
        FUZZ_CHECK(memchr(err, '\0', sizeof err) && err[0]);
        FUZZ_CHECK(memcmp(&s, &before, sizeof s) == 0);
    }
}

static void fuzz_load_body(const unsigned char *body, size_t len) {
    model_settings base = defaults();
    char *config = (char *)1, err[512];
    if (model_settings_load_body(body, len, "m", &base, &config, err, sizeof err) == 0) {
        if (config) {
            model_settings s = base;
            char again[512];
            FUZZ_CHECK(model_settings_parse(config, strlen(config), "m", &s, again,
                                            sizeof again) == 0);
            check_settings(&s);
            free(config);
        }
    } else {
        FUZZ_CHECK(memchr(err, '\0', sizeof err) && err[0]);
    }
}

/* A repository with one empty model folder "m", made once per process and removed at exit;
 * its resolved path (what repo_model_dir's answers start with). */
static char made_root[64], resolved_root[4096];

static void remove_repository(void) {
    char model[96];
    snprintf(model, sizeof model, "%s/m", made_root);
    rmdir(model);
    rmdir(made_root);
}

static const char *repository_root(void) {
    if (!made_root[0]) {
        snprintf(made_root, sizeof made_root, "/tmp/fuzz_model_settings.%d", (int)getpid());
        char model[96];
        snprintf(model, sizeof model, "%s/m", made_root);
        if (mkdir(made_root, 0700) != 0 || mkdir(model, 0700) != 0 ||
            !realpath(made_root, resolved_root))
            abort();
        atexit(remove_repository);
    }
    return made_root;
}

static void fuzz_name(const char *name) {
    char err[512];
    size_t n = strlen(name);
    if (repo_name_check(name, err, sizeof err) == 0) {
        FUZZ_CHECK(n >= 1 && n < REPO_MAX_NAME && name[0] != '.');
        for (size_t i = 0; i < n; i++)
            FUZZ_CHECK(strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-",
                              name[i]) != NULL);
    } else {
        FUZZ_CHECK(memchr(err, '\0', sizeof err) && err[0]);
    }
    const char *root = repository_root();
    char dir[4096], rerr[512];
    if (repo_model_dir(root, name, dir, sizeof dir, rerr, sizeof rerr) == 0) {
        FUZZ_CHECK(strcmp(name, "m") == 0); /* the one folder there is */
        const size_t k = strlen(resolved_root);
        FUZZ_CHECK(strncmp(dir, resolved_root, k) == 0 && dir[k] == '/');
    } else {
        FUZZ_CHECK(memchr(rerr, '\0', sizeof rerr) && rerr[0]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    /* An exact-size copy: ASan flags any read past the input (it is not NUL-terminated). */
    size_t n = size - 1;
    char *buf = malloc(n ? n : 1);
    memcpy(buf, data + 1, n);
    switch (data[0] % 3) {
    case 0: fuzz_config(buf, n); break;
    case 1: fuzz_load_body((const unsigned char *)buf, n); break;
    default: {
        char name[256];
        size_t k = n < sizeof name - 1 ? n : sizeof name - 1;
        memcpy(name, buf, k);
        name[k] = '\0';
        fuzz_name(name);
    }
    }
    free(buf);
    return 0;
}
