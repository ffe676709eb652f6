/* repository_dir.c - the model repository's folders: names, versions, files, policies. */
#include "repository_dir.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "safetensors.h"

const char *const repo_control_names[REPO_N_CONTROLS + 1] = {"none", "explicit", "poll", NULL};
const char *const repo_swap_names[REPO_N_SWAPS + 1] = {"availability", "memory", NULL};

int repo_name_check(const char *name, char *err, size_t errlen) {
    size_t n = strlen(name);
    const char *why = NULL;
    if (n == 0) why = "is empty";
    else if (n >= REPO_MAX_NAME) why = "is longer than 63 bytes";
    else if (name[0] == '.') why = "starts with '.'";
    for (size_t i = 0; !why && i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            why = "holds a character other than letters, digits, '_', '-' and '.'";
    }
    if (!why) return 0;
    /* The name is the client's: quote only what is printable. */
    char shown[REPO_MAX_NAME];
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < sizeof shown; i++)
        shown[k++] = name[i] >= 0x20 && name[i] < 0x7f && name[i] != '\'' ? name[i] : '?';
    shown[k] = '\0';
    snprintf(err, errlen, "invalid model name '%s': it %s", shown, why);
    return -1;
}

/* Whether resolved path p is root itself's child or deeper (root resolved too). */
static bool inside(const char *root, const char *p) {
    size_t n = strlen(root);
    return strncmp(root, p, n) == 0 && p[n] == '/' && p[n + 1] != '\0';
}

int repo_model_dir(const char *root, const char *name, char *out, size_t cap, char *err,
                   size_t errlen) {
    if (repo_name_check(name, err, errlen) != 0) return -1;
    char rroot[PATH_MAX], joined[PATH_MAX + REPO_MAX_NAME + 2], resolved[PATH_MAX];
    if (!realpath(root, rroot)) {
        snprintf(err, errlen, "model repository %s: %s", root, strerror(errno));
        return -1;
    }
    snprintf(joined, sizeof joined, "%s/%s", rroot, name);
    struct stat st;
    if (!realpath(joined, resolved) || stat(resolved, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "no model '%s' in the repository %s", name, root);
        return -1;
    }
    if (!inside(rroot, resolved)) {
        snprintf(err, errlen, "model '%s' leads outside the repository %s", name, root);
        return -1;
    }
    if (strlen(resolved) >= cap) {
        snprintf(err, errlen, "model '%s': path too long", name);
        return -1;
    }
    snprintf(out, cap, "%s", resolved);
    return 0;
}

static int cmp_name(const void *a, const void *b) { return strcmp(a, b); }

int repo_list_models(const char *root, char (*names)[REPO_MAX_NAME], int max, char *err,
                     size_t errlen) {
    DIR *d = opendir(root);
    if (!d) {
        snprintf(err, errlen, "model repository %s: %s", root, strerror(errno));
        return -1;
    }
    int n = 0;
    struct dirent *e;
    char dir[PATH_MAX], why[160];
    while ((e = readdir(d)) && n < max) {
        if (repo_name_check(e->d_name, why, sizeof why) != 0) continue;
        if (repo_model_dir(root, e->d_name, dir, sizeof dir, why, sizeof why) != 0) continue;
        snprintf(names[n++], REPO_MAX_NAME, "%.63s", e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, REPO_MAX_NAME, cmp_name);
    return n;
}

long long repo_parse_version(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 18 || s[0] == '0') return 0;
    long long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static int cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

int repo_file_identity(const char *path, repo_file_id *id) {
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    *id = (repo_file_id){st.st_dev, st.st_ino, st.st_size,
                         (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec};
    return 0;
}

int repo_weights_complete(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    unsigned char len8[8];
    int rc = -1;
    char *header = NULL;
    if (fstat(fileno(f), &st) != 0 || fread(len8, 1, 8, f) != 8) {
        snprintf(err, errlen, "%s: shorter than the 8-byte header length", path);
        goto out;
    }
    unsigned long long n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | len8[i];
    if (n == 0 || n > SAFETENSORS_MAX_HEADER || 8 + n > (unsigned long long)st.st_size) {
        snprintf(err, errlen, "%s: header of %llu bytes in a file of %lld bytes", path, n,
                 (long long)st.st_size);
        goto out;
    }
    if (!(header = malloc(n)) || fread(header, 1, n, f) != n) {
        snprintf(err, errlen, "%s: cannot read its %llu-byte header", path, n);
        goto out;
    }
    json_error_t jerr;
    json_t *root = json_loadb(header, n, 0, &jerr);
    if (!json_is_object(root)) {
        snprintf(err, errlen, "%s: header is not a JSON object (%s)", path, jerr.text);
        json_decref(root);
        goto out;
    }
    unsigned long long end = 0;
    const char *key;
    json_t *t;
    json_object_foreach(root, key, t) {
        json_t *off = json_object_get(t, "data_offsets");
        json_t *e = json_array_get(off, 1);
        if (json_is_integer(e) && json_integer_value(e) > 0 &&
            (unsigned long long)json_integer_value(e) > end)
            end = (unsigned long long)json_integer_value(e);
    }
    json_decref(root);
    if (8 + n + end != (unsigned long long)st.st_size) {
        snprintf(err, errlen, "%s: %lld bytes, its header describes %llu: incomplete (still "
                 "being copied?)", path, (long long)st.st_size, 8 + n + end);
        goto out;
    }
    rc = 0;
out:
    free(header);
    fclose(f);
    return rc;
}

bool repo_file_id_equal(const repo_file_id *a, const repo_file_id *b) {
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime_ns == b->mtime_ns;
}

int repo_version_files(const char *model_dir, long long v, char *out, size_t cap,
                       char *labels, size_t labels_cap, repo_file_id *id, char *err,
                       size_t errlen) {
    char joined[PATH_MAX + 64], resolved[PATH_MAX];
    snprintf(joined, sizeof joined, "%s/%lld/" REPO_WEIGHTS_FILE, model_dir, v);
    struct stat st;
    if (!realpath(joined, resolved) || stat(resolved, &st) != 0) {
        snprintf(err, errlen, "%s: %s", joined, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode) || !inside(model_dir, resolved) || strlen(resolved) >= cap) {
        snprintf(err, errlen, "%s: not a regular file inside the model's folder", joined);
        return -1;
    }
    snprintf(out, cap, "%s", resolved);
    if (id) repo_file_identity(resolved, id);
    if (labels) {
        labels[0] = '\0';
        static const char *const names[] = {"labels.txt", "labels.json"};
        for (int i = 0; i < 2 && !labels[0]; i++) {
            snprintf(joined, sizeof joined, "%s/%lld/%s", model_dir, v, names[i]);
            if (realpath(joined, resolved) && stat(resolved, &st) == 0 && S_ISREG(st.st_mode) &&
                inside(model_dir, resolved) && strlen(resolved) < labels_cap)
                snprintf(labels, labels_cap, "%s", resolved);
        }
    }
    return 0;
}

int repo_list_versions(const char *model_dir, long long *versions, int max) {
    DIR *d = opendir(model_dir);
    if (!d) return 0;
    long long all[REPO_MAX_VERSIONS * 4];
    int n = 0;
    struct dirent *e;
    char path[PATH_MAX], why[8];
    while ((e = readdir(d))) {
        long long v = repo_parse_version(e->d_name);
        if (!v) continue;
        if (repo_version_files(model_dir, v, path, sizeof path, NULL, 0, NULL, why, sizeof why) != 0)
            continue;
        if (n < (int)(sizeof all / sizeof all[0])) all[n++] = v;
    }
    closedir(d);
    qsort(all, (size_t)n, sizeof all[0], cmp_ll);
    int first = n > max ? n - max : 0;
    for (int i = first; i < n; i++) versions[i - first] = all[i];
    return n - first;
}

int repo_select_versions(const repo_version_policy *p, const long long *avail, int n,
                         long long *out) {
    int k = 0;
    switch (p->kind) {
    case REPO_POLICY_ALL:
        for (int i = 0; i < n; i++) out[k++] = avail[i];
        break;
    case REPO_POLICY_LATEST: {
        int want = p->latest > 0 ? p->latest : 1;
        for (int i = n > want ? n - want : 0; i < n; i++) out[k++] = avail[i];
        break;
    }
    case REPO_POLICY_SPECIFIC:
        for (int i = 0; i < n; i++)
            for (int j = 0; j < p->n_specific; j++)
                if (avail[i] == p->specific[j]) {
                    out[k++] = avail[i];
                    break;
                }
        break;
    }
    return k;
}
