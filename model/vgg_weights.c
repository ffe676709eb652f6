/* vgg_weights.c - load, generate and save VGG parameters. */
#include "vgg_weights.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

/* ---------------------------------------------------------------- layout */

/* One parameter tensor of the network: its canonical (torchvision) name and shape. */
typedef struct {
    char name[48];
    char timm_name[48]; /* empty when timm uses the torchvision name */
    int ndim, timm_ndim;
    int64_t shape[4], timm_shape[4];
    float **slot;
    int64_t numel;
} param_spec;

#define MAX_PARAMS (2 * VGG_MAX_CONV + 2 * VGG_N_FC)

static int param_specs(vgg_weights *w, param_spec *specs) {
    const vgg_config *c = &w->cfg;
    int n = 0;
    for (int i = 0; i < c->n_conv; i++) {
        param_spec *s = &specs[n++];
        memset(s, 0, sizeof *s);
        snprintf(s->name, sizeof s->name, "features.%d.weight", c->feature_index[i]);
        s->ndim = 4;
        s->shape[0] = c->conv_out[i];
        s->shape[1] = c->conv_in[i];
        s->shape[2] = s->shape[3] = 3;
        s->slot = &w->conv_w[i];
        s = &specs[n++];
        memset(s, 0, sizeof *s);
        snprintf(s->name, sizeof s->name, "features.%d.bias", c->feature_index[i]);
        s->ndim = 1;
        s->shape[0] = c->conv_out[i];
        s->slot = &w->conv_b[i];
    }
    static const int tv_index[VGG_N_FC] = {0, 3, 6};
    static const char *const timm_prefix[VGG_N_FC] = {"pre_logits.fc1", "pre_logits.fc2",
                                                      "head.fc"};
    for (int i = 0; i < VGG_N_FC; i++) {
        param_spec *s = &specs[n++];
        memset(s, 0, sizeof *s);
        snprintf(s->name, sizeof s->name, "classifier.%d.weight", tv_index[i]);
        snprintf(s->timm_name, sizeof s->timm_name, "%s.weight", timm_prefix[i]);
        s->ndim = 2;
        s->shape[0] = c->fc_out[i];
        s->shape[1] = c->fc_in[i];
        /* timm keeps fc1/fc2 as convolutions: (4096, 512, 7, 7) and (4096, 4096, 1, 1). */
        s->timm_ndim = i == 2 ? 2 : 4;
        s->timm_shape[0] = c->fc_out[i];
        s->timm_shape[1] = i == 0 ? c->final_channels : c->fc_in[i];
        s->timm_shape[2] = s->timm_shape[3] = i == 0 ? c->final_hw : 1;
        if (i == 2) s->timm_shape[1] = c->fc_in[i];
        s->slot = &w->fc_w[i];
        s = &specs[n++];
        memset(s, 0, sizeof *s);
        snprintf(s->name, sizeof s->name, "classifier.%d.bias", tv_index[i]);
        snprintf(s->timm_name, sizeof s->timm_name, "%s.bias", timm_prefix[i]);
        s->ndim = s->timm_ndim = 1;
        s->shape[0] = s->timm_shape[0] = c->fc_out[i];
        s->slot = &w->fc_b[i];
    }
    for (int k = 0; k < n; k++) {
        specs[k].numel = 1;
        for (int d = 0; d < specs[k].ndim; d++) specs[k].numel *= specs[k].shape[d];
    }
    return n;
}

/* Allocates storage and points every slot into it. */
static int alloc_and_point(vgg_weights *w, const vgg_config *cfg, param_spec *specs, int *n) {
    memset(w, 0, sizeof *w);
    w->cfg = *cfg;
    *n = param_specs(w, specs);
    int64_t total = 0;
    for (int k = 0; k < *n; k++) total += specs[k].numel;
    w->storage = malloc((size_t)total * sizeof(float));
    if (!w->storage) return -1;
    float *p = w->storage;
    for (int k = 0; k < *n; k++) {
        *specs[k].slot = p;
        p += specs[k].numel;
    }
    w->n_params = total;
    return 0;
}

void vgg_weights_free(vgg_weights *w) {
    free(w->storage);
    memset(w, 0, sizeof *w);
}

/* ---------------------------------------------------------------- loading */

static void shape_str(char *buf, size_t len, const int64_t *shape, int ndim) {
    size_t used = (size_t)snprintf(buf, len, "(");
    for (int d = 0; d < ndim && used < len; d++)
        used += (size_t)snprintf(buf + used, len - used, "%s%lld", d ? ", " : "",
                                 (long long)shape[d]);
    if (used < len) snprintf(buf + used, len - used, ")");
}

static int same_shape(const safetensors_tensor *t, const int64_t *shape, int ndim) {
    if (t->ndim != ndim) return 0;
    for (int d = 0; d < ndim; d++)
        if (t->shape[d] != shape[d]) return 0;
    return 1;
}

/* Appends one problem to err, keeping what fits. */
static void add_problem(char *err, size_t errlen, int *n_problems, const char *fmt,
                        const char *a, const char *b, const char *c) {
    size_t used = strlen(err);
    if (used + 1 >= errlen) return;
    if (*n_problems) used += (size_t)snprintf(err + used, errlen - used, "; ");
    if (used < errlen) snprintf(err + used, errlen - used, fmt, a, b, c);
    (*n_problems)++;
}

int vgg_weights_load(vgg_weights *w, const vgg_config *cfg, const char *path, char *err,
                     size_t errlen) {
    safetensors_file f;
    if (safetensors_open(&f, path, err, errlen) != 0) return -1;
    param_spec specs[MAX_PARAMS];
    int n;
    if (alloc_and_point(w, cfg, specs, &n) != 0) {
        snprintf(err, errlen, "%s: out of memory for %s weights", path, cfg->name);
        safetensors_close(&f);
        return -1;
    }
    const int use_timm = safetensors_find(&f, "head.fc.weight") != NULL;
    char *used = calloc(f.n_tensors + 1, 1); /* [i]: the file's tensor i is a parameter */
    if (!used) {
        snprintf(err, errlen, "%s: out of memory for %s weights", path, cfg->name);
        vgg_weights_free(w);
        safetensors_close(&f);
        return -1;
    }
    int n_problems = 0;
    snprintf(err, errlen, "%s: not %s weights: ", path, cfg->name);
    for (int k = 0; k < n; k++) {
        const param_spec *s = &specs[k];
        const char *name = use_timm && s->timm_name[0] ? s->timm_name : s->name;
        const int64_t *shape = use_timm && s->timm_name[0] ? s->timm_shape : s->shape;
        int ndim = use_timm && s->timm_name[0] ? s->timm_ndim : s->ndim;
        const safetensors_tensor *t = safetensors_find(&f, name);
        char want[96], got[96];
        shape_str(want, sizeof want, shape, ndim);
        if (!t) {
            add_problem(err, errlen, &n_problems, "missing %s %s%s", name, want, "");
            continue;
        }
        used[t - f.tensors] = 1;
        if (!same_shape(t, shape, ndim)) {
            shape_str(got, sizeof got, t->shape, t->ndim);
            add_problem(err, errlen, &n_problems, "%s has shape %s, expected %s", name, got, want);
            continue;
        }
        if (safetensors_to_f32(t, *s->slot) != 0) {
            snprintf(err, errlen, "%s: cannot read %s: the file was truncated or replaced while "
                     "it was being loaded; load it again", path, name);
            free(used);
            vgg_weights_free(w);
            safetensors_close(&f);
            return -1;
        }
    }
    for (int i = 0; i < f.n_tensors; i++)
        if (!used[i]) add_problem(err, errlen, &n_problems, "unexpected %s%s%s", f.tensors[i].name,
                                  "", "");
    free(used);
    const char *pre = safetensors_metadata(&f, "preprocess");
    w->preprocess[0] = '\0';
    if (pre && strlen(pre) < sizeof w->preprocess) strcpy(w->preprocess, pre);
    safetensors_close(&f);
    if (n_problems) {
        vgg_weights_free(w);
        return -1;
    }
    err[0] = '\0';
    return 0;
}

/* ---------------------------------------------------------------- generation */

uint64_t vgg_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double vgg_normal_from_u64(uint64_t x) {
    /* Each lane k is uniform on {0..65535}; (k + 0.5) / 65536 has mean 1/2, variance ~1/12.
     * Sum of four minus 2, times sqrt(3): mean 0, variance 1, support about +-3.46.
     * Rewritten as (S - 131070) * (sqrt(3) / 65536): exact integer part, one rounding. */
    int64_t s = (int64_t)(x & 0xffff) + (int64_t)(x >> 16 & 0xffff) + (int64_t)(x >> 32 & 0xffff) +
                (int64_t)(x >> 48);
    return (double)(s - 131070) * (1.7320508075688772 / 65536.0);
}

/* Fills n floats with std * N(0,1) draws from a stream seeded by (seed, tensor_index). */
static void fill_normal(float *out, int64_t n, double std, uint64_t seed, int tensor_index) {
    uint64_t state = seed ^ (0xd1b54a32d192ed03ull * (uint64_t)(tensor_index + 1));
    for (int64_t i = 0; i < n; i++) out[i] = (float)(std * vgg_normal_from_u64(vgg_splitmix64(&state)));
}

int vgg_weights_generate(vgg_weights *w, const vgg_config *cfg, uint64_t seed) {
    /* Recipe (torchvision's VGG init, plus biases so bias handling is exercised):
     *   conv weight: Kaiming normal, fan_out mode, ReLU gain: std = sqrt(2 / (cout * 9))
     *   conv bias:   N(0, 0.01^2)   (torchvision: 0)
     *   fc weight:   N(0, 0.01^2)
     *   fc bias:     N(0, 0.01^2)   (torchvision: 0)
     * Tensor k (in torchvision order, weight then bias per layer) draws from its own
     * SplitMix64 stream seeded with seed ^ (0xd1b54a32d192ed03 * (k + 1)). */
    param_spec specs[MAX_PARAMS];
    int n;
    if (alloc_and_point(w, cfg, specs, &n) != 0) return -1;
    for (int k = 0; k < n; k++) {
        double std = 0.01;
        if (specs[k].ndim == 4) std = sqrt(2.0 / (double)(specs[k].shape[0] * 9));
        fill_normal(*specs[k].slot, specs[k].numel, std, seed, k);
    }
    return 0;
}

int vgg_weights_save(const vgg_weights *w, const char *path, const char *const *metadata,
                     char *err, size_t errlen) {
    param_spec specs[MAX_PARAMS];
    vgg_weights shadow = *w; /* param_specs wants a mutable struct to record slots */
    int n = param_specs(&shadow, specs);
    const char *names[MAX_PARAMS];
    int64_t shapes[MAX_PARAMS][SAFETENSORS_MAX_DIMS];
    int ndims[MAX_PARAMS];
    const float *data[MAX_PARAMS];
    for (int k = 0; k < n; k++) {
        names[k] = specs[k].name;
        ndims[k] = specs[k].ndim;
        memcpy(shapes[k], specs[k].shape, sizeof specs[k].shape);
        data[k] = *specs[k].slot;
    }
    return safetensors_write_f32(path, n, names, (const int64_t(*)[SAFETENSORS_MAX_DIMS])shapes,
                                 ndims, data, metadata, err, errlen);
}
