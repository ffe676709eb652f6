/* repository_dir.h - a model repository on disk: DIR/NAME/VERSION/model.safetensors.
 *
 * Layout (Triton's): each model is a folder NAME directly inside the repository DIR; each of
 * its versions a folder VERSION (a positive decimal integer, no sign or leading zero, at
 * most 18 digits) holding model.safetensors, and optionally labels.txt or labels.json beside
 * it (else the weights' own labels, model/labels.h). DIR/NAME/config.json (optional) holds
 * the model's settings (api/model_settings.h reads it).
 *
 * Names are the only thing a client chooses, so they are checked before any path is built
 * (repo_name_check: 1..63 bytes of [A-Za-z0-9_.-], not starting with '.', hence never "..",
 * never a '/'), and every path is then resolved (realpath) and must stay inside the resolved
 * repository: a link cannot lead a name, a version or a weights file out of DIR.
 *
 * A version counts only when its model.safetensors is a regular file (in poll mode also a
 * complete one: repo_weights_complete); the version policy (repo_version_policy) picks which
 * of them are served. Reentrant, no globals; errors come
 * back in err (naming the path), nothing is printed. */
#ifndef MODEL_REPOSITORY_DIR_H
#define MODEL_REPOSITORY_DIR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define REPO_MAX_NAME 64         /* a model name and its NUL */
#define REPO_MAX_VERSIONS 64     /* versions of one model considered (the highest kept) */
#define REPO_MAX_POLICY_VERSIONS 16
#define REPO_WEIGHTS_FILE "model.safetensors"
#define REPO_CONFIG_FILE "config.json"

/* How the set of models served changes (Triton's --model-control-mode). */
typedef enum {
    REPO_CONTROL_NONE = 0, /* every model loaded at start; the set is fixed */
    REPO_CONTROL_EXPLICIT, /* the named models at start, then the repository API */
    REPO_CONTROL_POLL,     /* every model at start, then the folder rescanned every
                            * repository_poll_secs and what is served made to match it */
    REPO_N_CONTROLS
} repo_control;

extern const char *const repo_control_names[REPO_N_CONTROLS + 1]; /* "none", "explicit", "poll" */

/* How a load replaces a version that is serving (--swap-policy). */
typedef enum {
    REPO_SWAP_AVAILABILITY = 0, /* build the new one beside the old, then switch: no 503s,
                                 * peak memory old + new (TF Serving's AvailabilityPreserving) */
    REPO_SWAP_MEMORY,           /* unload the old one first (503 meanwhile), then build: peak
                                 * memory the larger of the two */
    REPO_N_SWAPS
} repo_swap_policy;

extern const char *const repo_swap_names[REPO_N_SWAPS + 1]; /* "availability", "memory" */

/* Which of a model's versions are served (Triton's version_policy). */
typedef enum {
    REPO_POLICY_LATEST = 0, /* the n highest (default: 1) */
    REPO_POLICY_SPECIFIC,   /* exactly those listed that exist */
    REPO_POLICY_ALL,
} repo_policy_kind;

typedef struct {
    repo_policy_kind kind;
    int latest;                                   /* LATEST: how many */
    int n_specific;                               /* SPECIFIC: how many listed */
    long long specific[REPO_MAX_POLICY_VERSIONS]; /* SPECIFIC: the versions */
} repo_version_policy;

/* What identifies a weights file's contents for a reload: the same file unchanged is kept. */
typedef struct {
    dev_t dev;
    ino_t ino;
    off_t size;
    long long mtime_ns;
} repo_file_id;

/* 0 when name may name a model; else -1 with err saying why. */
int repo_name_check(const char *name, char *err, size_t errlen);

/* The resolved folder of model name inside root (out, cap bytes). 0; -1 with err when the
 * name is invalid, the folder missing, not a folder or outside root after links. */
int repo_model_dir(const char *root, const char *name, char *out, size_t cap, char *err,
                   size_t errlen);

/* The valid model names in root (folders only), sorted, at most max. The count, or -1 with
 * err when root cannot be read. */
int repo_list_models(const char *root, char (*names)[REPO_MAX_NAME], int max, char *err,
                     size_t errlen);

/* The versions of a (resolved) model folder whose weights file is a regular file inside it,
 * ascending; at most max (the highest kept). The count (0 when none or unreadable). */
int repo_list_versions(const char *model_dir, long long *versions, int max);

/* The resolved weights file of version v (out), its identity (*id, may be NULL) and a label
 * file beside it (labels, "" when none). 0, or -1 with err. */
int repo_version_files(const char *model_dir, long long v, char *out, size_t cap,
                       char *labels, size_t labels_cap, repo_file_id *id, char *err,
                       size_t errlen);

/* Whether the weights file at path is complete: its safetensors header (8-byte length, JSON)
 * parses and the file's size is 8 + the header's length + the largest data end offset, so a
 * file still being copied is not taken for a version. 0, or -1 with err saying what is
 * missing. Reads the header only. */
int repo_weights_complete(const char *path, char *err, size_t errlen);

/* The identity of the file at path (links followed). 0, or -1 when it cannot be stat'ed. */
int repo_file_identity(const char *path, repo_file_id *id);
bool repo_file_id_equal(const repo_file_id *a, const repo_file_id *b);

/* The versions policy p picks from avail (ascending, n of them) into out (ascending).
 * Returns how many. */
int repo_select_versions(const repo_version_policy *p, const long long *avail, int n,
                         long long *out);

/* A version segment of a path or a folder name as a number: 1..10^18-1 written without
 * sign or leading zero. 0 when s is not one. */
long long repo_parse_version(const char *s);

#endif
