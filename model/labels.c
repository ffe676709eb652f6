/* labels.c - label values: ImageNet's table, class_N names, files, and a model's choice. */
#include "labels.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

extern const char *const labels_names[LABELS_COUNT];
extern const char *const labels_wnids[LABELS_COUNT];

const char *labels_name(int class_id) {
    return class_id >= 0 && class_id < LABELS_COUNT ? labels_names[class_id] : NULL;
}

const char *labels_wnid(int class_id) {
    return class_id >= 0 && class_id < LABELS_COUNT ? labels_wnids[class_id] : NULL;
}

static const char *const format_names[VGG_LABELS_FORMAT_COUNT] = {
    [VGG_LABELS_IMAGENET] = "imagenet",           [VGG_LABELS_GENERATED] = "generated",
    [VGG_LABELS_TEXT] = "text",                   [VGG_LABELS_INDEX_TO_NAME] = "index_to_name",
    [VGG_LABELS_CLASS_INDICES] = "class_indices", [VGG_LABELS_LIST] = "list",
};

const char *vgg_labels_format_name(vgg_labels_format f) {
    return f >= 0 && f < VGG_LABELS_FORMAT_COUNT ? format_names[f] : "?";
}

const char *vgg_labels_name(const vgg_labels *l, int i) {
    if (!l || i < 0 || i >= l->n) return NULL;
    return l->format == VGG_LABELS_IMAGENET ? labels_name(i) : l->names[i];
}

const char *vgg_labels_wnid(const vgg_labels *l, int i) {
    if (!l || i < 0 || i >= l->n) return NULL;
    if (l->format == VGG_LABELS_IMAGENET) return labels_wnid(i);
    return l->wnids ? l->wnids[i] : NULL;
}

void vgg_labels_imagenet(vgg_labels *out) {
    *out = (vgg_labels){.n = LABELS_COUNT, .format = VGG_LABELS_IMAGENET};
}

int vgg_labels_generated(int n, vgg_labels *out) {
    *out = (vgg_labels){.format = VGG_LABELS_GENERATED};
    if (n <= 0 || n > VGG_LABELS_MAX_CLASSES) return -1;
    out->names = calloc((size_t)n, sizeof *out->names);
    if (!out->names) return -1;
    out->n = n;
    for (int i = 0; i < n; i++) {
        char s[32];
        snprintf(s, sizeof s, "class_%d", i);
        if (!(out->names[i] = strdup(s))) {
            vgg_labels_free(out);
            return -1;
        }
    }
    return 0;
}

void vgg_labels_free(vgg_labels *l) {
    for (int i = 0; i < l->n; i++) {
        if (l->names) free(l->names[i]);
        if (l->wnids) free(l->wnids[i]);
    }
    free(l->names);
    free(l->wnids);
    *l = (vgg_labels){0};
}

int vgg_labels_read_file(const char *path, vgg_labels *out, char *err, size_t errlen) {
    *out = (vgg_labels){0};
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "labels %s: %s", path, strerror(errno));
        return -1;
    }
    /* One byte past the limit tells a file that is too large without reading it all. */
    uint8_t *buf = malloc(VGG_LABELS_MAX_BYTES + 1);
    size_t len = buf ? fread(buf, 1, VGG_LABELS_MAX_BYTES + 1, f) : 0;
    int read_failed = ferror(f);
    fclose(f);
    char why[512];
    int rc = -1;
    if (!buf) snprintf(why, sizeof why, "out of memory");
    else if (read_failed) snprintf(why, sizeof why, "read error");
    else if (len > VGG_LABELS_MAX_BYTES)
        snprintf(why, sizeof why, "larger than %u bytes: not a label file", VGG_LABELS_MAX_BYTES);
    else rc = vgg_labels_parse(buf, len, out, why, sizeof why);
    free(buf);
    if (rc != 0) snprintf(err, errlen, "labels %s: %s", path, why);
    return rc;
}

/* The "labels" metadata of the weights file: 0 with *out filled, 1 when it has none. */
static int labels_of_weights(const char *path, vgg_labels *out, char *err, size_t errlen) {
    safetensors_file f;
    char why[512];
    if (safetensors_open(&f, path, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    const char *text = safetensors_metadata(&f, "labels");
    int rc = 1;
    if (text) {
        rc = vgg_labels_parse((const uint8_t *)text, strlen(text), out, why, sizeof why);
        if (rc != 0) snprintf(err, errlen, "%s: metadata \"labels\": %s", path, why);
    }
    safetensors_close(&f);
    return rc;
}

int vgg_labels_for_model(const char *labels_path, const char *weights_path, int n_classes,
                         vgg_labels *out, char *err, size_t errlen) {
    *out = (vgg_labels){0};
    const char *source = labels_path;
    int rc = 1;
    if (labels_path) rc = vgg_labels_read_file(labels_path, out, err, errlen);
    else if (weights_path) {
        rc = labels_of_weights(weights_path, out, err, errlen);
        source = weights_path;
    }
    if (rc < 0) return -1;
    if (rc == 1) { /* no labels anywhere: the defaults fit by construction */
        if (n_classes == LABELS_COUNT) {
            vgg_labels_imagenet(out);
            return 0;
        }
        if (vgg_labels_generated(n_classes, out) == 0) return 0;
        snprintf(err, errlen, "cannot name %d classes: out of memory", n_classes);
        return -1;
    }
    if (out->n != n_classes) {
        if (labels_path)
            snprintf(err, errlen, "labels %s has %d labels, but the model has %d classes",
                     source, out->n, n_classes);
        else
            snprintf(err, errlen, "%s: metadata \"labels\" has %d labels, but the model has %d "
                     "classes (--labels FILE overrides them)", source, out->n, n_classes);
        vgg_labels_free(out);
        return -1;
    }
    return 0;
}
