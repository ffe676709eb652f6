/* vgg_weights.c - load, generate and save VGG parameters. */
#include "vgg_weights.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "name_table.h"
#include "safetensors.h"

/* ---------------------------------------------------------------- layout */

/* One parameter tensor of the network: its canonical (torchvision) name and shape. */
typedef struct {
    char name[48];
    char timm_name[48]; /* empty when timm uses the torchvision name */
    int ndim, timm_ndim;
    int64_t shape[4], timm_shape[4];
    float **slot;
    int64_t numel;   /* as the file holds it */
    int64_t reserve; /* floats stored: numel, or twice it for a sigmoid head's last layer */
    bool aux;        /* BatchNorm's: read at load, folded, not kept in storage */
} param_spec;

#define MAX_PARAMS (6 * VGG_MAX_CONV + 2 * VGG_N_FC)

/* BatchNorm's four tensors of one conv, in torchvision's order. */
enum { BN_WEIGHT, BN_BIAS, BN_MEAN, BN_VAR, BN_N };
static const char *const bn_suffix[BN_N] = {"weight", "bias", "running_mean", "running_var"};

static param_spec *next_spec(param_spec *specs, int *n, const char *name, int ndim,
                             int64_t d0, int64_t d1, float **slot) {
    param_spec *s = &specs[(*n)++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->ndim = s->timm_ndim = ndim;
    s->shape[0] = s->timm_shape[0] = d0;
    s->shape[1] = s->timm_shape[1] = d1;
    s->slot = slot;
    return s;
}

static void conv_specs(vgg_weights *w, float *bn[][BN_N], param_spec *specs, int *n) {
    const vgg_config *c = &w->cfg;
    char name[48];
    for (int i = 0; i < c->n_conv; i++) {
        snprintf(name, sizeof name, "features.%d.weight", c->feature_index[i]);
        param_spec *s = next_spec(specs, n, name, 4, c->conv_out[i], c->conv_in[i], &w->conv_w[i]);
        s->shape[2] = s->shape[3] = 3;
        snprintf(name, sizeof name, "features.%d.bias", c->feature_index[i]);
        next_spec(specs, n, name, 1, c->conv_out[i], 0, &w->conv_b[i]);
        for (int k = 0; c->batch_norm && bn && k < BN_N; k++) {
            snprintf(name, sizeof name, "features.%d.%s", c->feature_index[i] + 1, bn_suffix[k]);
            next_spec(specs, n, name, 1, c->conv_out[i], 0, &bn[i][k])->aux = true;
        }
    }
}

/* Every tensor of w's network in file order. bn (may be NULL: none) receives BatchNorm's. */
static int param_specs(vgg_weights *w, float *bn[][BN_N], param_spec *specs) {
    const vgg_config *c = &w->cfg;
    int n = 0;
    conv_specs(w, bn, specs, &n);
    static const char *const timm_prefix[VGG_N_FC] = {"pre_logits.fc1", "pre_logits.fc2",
                                                      "head.fc"};
    char name[48];
    for (int i = 0; i < c->n_fc; i++) {
        const int last = i == c->n_fc - 1, out = last ? c->head_units : c->fc_out[i];
        snprintf(name, sizeof name, "classifier.%d.weight", 3 * i);
        param_spec *s = next_spec(specs, &n, name, 2, out, c->fc_in[i], &w->fc_w[i]);
        /* timm (the ImageNet head only) keeps fc1/fc2 as convolutions: (4096, 512, 7, 7) and
         * (4096, 4096, 1, 1). */
        snprintf(s->timm_name, sizeof s->timm_name, "%s.weight", timm_prefix[i]);
        s->timm_ndim = i == 2 ? 2 : 4;
        s->timm_shape[1] = i == 0 ? c->final_channels : c->fc_in[i];
        s->timm_shape[2] = s->timm_shape[3] = i == 0 ? c->final_hw : 1;
        snprintf(name, sizeof name, "classifier.%d.bias", 3 * i);
        param_spec *sb = next_spec(specs, &n, name, 1, out, 0, &w->fc_b[i]);
        snprintf(sb->timm_name, sizeof sb->timm_name, "%s.bias", timm_prefix[i]);
    }
    for (int k = 0; k < n; k++) {
        specs[k].numel = 1;
        for (int d = 0; d < specs[k].ndim; d++) specs[k].numel *= specs[k].shape[d];
        specs[k].reserve = specs[k].numel;
    }
    if (c->head_act == VGG_ACT_SIGMOID) specs[n - 1].reserve *= 2, specs[n - 2].reserve *= 2;
    return n;
}

/* Allocates storage (and *aux for BatchNorm's tensors, when bn is given) and points every
 * slot into them. */
static int alloc_and_point(vgg_weights *w, const vgg_config *cfg, float *bn[][BN_N],
                           float **aux, param_spec *specs, int *n) {
    memset(w, 0, sizeof *w);
    w->cfg = *cfg;
    *n = param_specs(w, bn, specs);
    int64_t total = 0, total_aux = 0;
    for (int k = 0; k < *n; k++) *(specs[k].aux ? &total_aux : &total) += specs[k].reserve;
    w->storage = malloc((size_t)total * sizeof(float));
    if (aux) *aux = malloc((size_t)(total_aux ? total_aux : 1) * sizeof(float));
    if (!w->storage || (aux && !*aux)) {
        free(w->storage);
        if (aux) free(*aux);
        w->storage = NULL;
        return -1;
    }
    float *p = w->storage, *q = aux ? *aux : NULL;
    for (int k = 0; k < *n; k++) {
        float **at = specs[k].aux ? &q : &p;
        *specs[k].slot = *at;
        *at += specs[k].reserve;
    }
    w->n_params = total;
    return 0;
}

void vgg_weights_free(vgg_weights *w) {
    free(w->storage);
    memset(w, 0, sizeof *w);
}

/* A sigmoid head's one unit z (row 0 as read) becomes two logits [-z/2, z/2]: softmax of
 * them is [1 - sigmoid(z), sigmoid(z)] (vgg_config.h). */
static void expand_sigmoid(vgg_weights *w) {
    const vgg_config *c = &w->cfg;
    if (c->head_act != VGG_ACT_SIGMOID) return;
    const int j = c->n_fc - 1, k = c->fc_in[j];
    float *row = w->fc_w[j], *b = w->fc_b[j];
    for (int i = 0; i < k; i++) {
        row[k + i] = 0.5f * row[i];
        row[i] = -row[k + i];
    }
    b[1] = 0.5f * b[0];
    b[0] = -b[1];
}

/* BatchNorm after conv i folded into it: y = gamma (conv(x) - mean) / sqrt(var + eps) + beta
 * = conv'(x) with w' = w * s and b' = (b - mean) * s + beta, s = gamma / sqrt(var + eps).
 * A negative variance is refused (-1 with the conv index). */
static int fold_batch_norm(vgg_weights *w, float *bn[][BN_N]) {
    const vgg_config *c = &w->cfg;
    for (int i = 0; c->batch_norm && i < c->n_conv; i++) {
        const int64_t per = (int64_t)c->conv_in[i] * 9;
        for (int o = 0; o < c->conv_out[i]; o++) {
            const double var = bn[i][BN_VAR][o];
            if (!(var >= 0)) return i;
            const double s = bn[i][BN_WEIGHT][o] / sqrt(var + c->bn_eps);
            for (int64_t k = 0; k < per; k++)
                w->conv_w[i][o * per + k] = (float)(w->conv_w[i][o * per + k] * s);
            w->conv_b[i][o] = (float)((w->conv_b[i][o] - bn[i][BN_MEAN][o]) * s +
                                      bn[i][BN_BIAS][o]);
        }
    }
    return -1;
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

/* Parses "4096,4096,10" (1..VGG_N_FC positive integers) into h. */
static bool parse_units(const char *s, vgg_head *h) {
    h->n_dense = 0;
    for (;;) {
        char *end;
        errno = 0;
        if (*s < '0' || *s > '9') return false;
        long v = strtol(s, &end, 10);
        if (errno || v < 1 || v > 1 << 20 || h->n_dense == VGG_N_FC) return false;
        h->units[h->n_dense++] = (int)v;
        if (*end == '\0') return true;
        if (*end != ',') return false;
        s = end + 1;
    }
}

/* The head metadata's value for key, or def when absent. */
static const char *meta_or(const safetensors_file *f, const char *key, const char *def) {
    const char *v = safetensors_metadata(f, key);
    return v ? v : def;
}

/* The architecture a file with head metadata describes (vgg_weights.h), into *cfg; the
 * channel width follows the first convolution's tensor (reduced test models). 0, or -1 with
 * the problem in err. */
static int config_from_metadata(const safetensors_file *f, const char *path, vgg_config *cfg,
                                char *err, size_t errlen) {
    char model[32], why[160] = "";
    const char *m = meta_or(f, "model", ""), *v;
    vgg_head h;
    memset(&h, 0, sizeof h);
    snprintf(model, sizeof model, "%s", m);
    const size_t len = strlen(model);
    const bool bn = len > 3 && strcmp(model + len - 3, "_bn") == 0;
    if (bn) model[len - 3] = '\0';
    const char *pool = meta_or(f, "head_pool", "flatten"), *act = meta_or(f, "head_activation", "softmax");
    const int pool_i = name_table_index(vgg_head_pool_names, pool),
              act_i = name_table_index(vgg_head_act_names, act);
    if (!parse_units(safetensors_metadata(f, "head_dense"), &h))
        snprintf(why, sizeof why, "head_dense '%.40s' is not 1 to 3 unit counts",
                 safetensors_metadata(f, "head_dense"));
    else if (pool_i < 0)
        snprintf(why, sizeof why, "head_pool '%.40s' (flatten, avg, max)", pool);
    else if (act_i < 0)
        snprintf(why, sizeof why, "head_activation '%.40s' (softmax, sigmoid)", act);
    h.pool = (vgg_head_pool)pool_i;
    h.act = (vgg_head_act)act_i;
    if (why[0]) {
        snprintf(err, errlen, "%s: head metadata: %s", path, why);
        return -1;
    }
    char *end;
    v = meta_or(f, "input_size", "224");
    long hw = strtol(v, &end, 10);
    if (*end || end == v) hw = -1;
    double eps = strtod(meta_or(f, "bn_eps", "1e-5"), &end);
    if (*end || !(eps > 0 && eps < 1)) {
        snprintf(err, errlen, "%s: head metadata: bn_eps '%.40s' is not a number in (0, 1)", path,
                 meta_or(f, "bn_eps", ""));
        return -1;
    }
    const safetensors_tensor *first = safetensors_find(f, "features.0.weight");
    int width_div = 1;
    if (first && first->ndim == 4 && first->shape[0] >= 1 && first->shape[0] < 64 &&
        64 % first->shape[0] == 0)
        width_div = (int)(64 / first->shape[0]);
    if (!vgg_config_init_head(cfg, model, width_div, bn, (int)(hw > 0 && hw < 1 << 16 ? hw : -1),
                              &h, why, sizeof why)) {
        snprintf(err, errlen, "%s: head metadata: %s", path, why);
        return -1;
    }
    cfg->bn_eps = (float)eps;
    return 0;
}

int vgg_weights_read_config(const char *path, const vgg_config *dflt, vgg_config *out,
                            char preprocess[16], char *err, size_t errlen) {
    safetensors_file f;
    if (safetensors_open(&f, path, err, errlen) != 0) return -1;
    *out = *dflt;
    const char *pre = safetensors_metadata(&f, "preprocess");
    if (preprocess) snprintf(preprocess, 16, "%s", pre && strlen(pre) < 16 ? pre : "");
    int rc = safetensors_metadata(&f, "head_dense") ? config_from_metadata(&f, path, out, err, errlen)
                                                    : 0;
    safetensors_close(&f);
    return rc;
}

/* Reads every tensor specs name into its slot; counts the problems into err. Returns -1 when out
 * of memory, -2 (err says so) when the file changed under its mapping. */
static int read_tensors(const safetensors_file *f, const char *path, const param_spec *specs,
                        int n, bool use_timm, char *err, size_t errlen) {
    char *used = calloc(f->n_tensors + 1, 1); /* [i]: the file's tensor i is a parameter */
    if (!used) return -1;
    int n_problems = 0;
    for (int k = 0; k < n; k++) {
        const param_spec *s = &specs[k];
        const bool timm = use_timm && s->timm_name[0];
        const char *name = timm ? s->timm_name : s->name;
        const int64_t *shape = timm ? s->timm_shape : s->shape;
        int ndim = timm ? s->timm_ndim : s->ndim;
        const safetensors_tensor *t = safetensors_find(f, name);
        char want[96], got[96];
        shape_str(want, sizeof want, shape, ndim);
        if (!t) {
            add_problem(err, errlen, &n_problems, "missing %s %s%s", name, want, "");
            continue;
        }
        used[t - f->tensors] = 1;
        if (!same_shape(t, shape, ndim)) {
            shape_str(got, sizeof got, t->shape, t->ndim);
            add_problem(err, errlen, &n_problems, "%s has shape %s, expected %s", name, got, want);
            continue;
        }
        if (safetensors_to_f32(t, *s->slot) != 0) {
            snprintf(err, errlen, "%s: cannot read %s: the file was truncated or replaced while "
                     "it was being loaded; load it again", path, name);
            free(used);
            return -2;
        }
    }
    for (int i = 0; i < f->n_tensors; i++)
        if (!used[i])
            add_problem(err, errlen, &n_problems, "unexpected %s%s%s", f->tensors[i].name, "", "");
    free(used);
    return n_problems;
}

int vgg_weights_load(vgg_weights *w, const vgg_config *cfg, const char *path, char *err,
                     size_t errlen) {
    safetensors_file f;
    memset(w, 0, sizeof *w);
    if (safetensors_open(&f, path, err, errlen) != 0) return -1;
    vgg_config file_cfg = *cfg;
    const bool has_head = safetensors_metadata(&f, "head_dense") != NULL;
    if (has_head && config_from_metadata(&f, path, &file_cfg, err, errlen) != 0) {
        safetensors_close(&f);
        return -1;
    }
    param_spec specs[MAX_PARAMS];
    float *bn[VGG_MAX_CONV][BN_N], *aux = NULL;
    int n;
    if (alloc_and_point(w, &file_cfg, bn, &aux, specs, &n) != 0) {
        snprintf(err, errlen, "%s: out of memory for %s weights", path, file_cfg.name);
        safetensors_close(&f);
        return -1;
    }
    const bool use_timm = !has_head && safetensors_find(&f, "head.fc.weight") != NULL;
    snprintf(err, errlen, "%s: not %s%s weights: ", path, file_cfg.name,
             file_cfg.batch_norm ? "_bn" : "");
    int n_problems = read_tensors(&f, path, specs, n, use_timm, err, errlen);
    if (n_problems == -1) snprintf(err, errlen, "%s: out of memory", path);
    int bad_bn = n_problems == 0 ? fold_batch_norm(w, bn) : -1;
    if (bad_bn >= 0) {
        snprintf(err, errlen, "%s: features.%d.running_var has a negative value", path,
                 file_cfg.feature_index[bad_bn] + 1);
        n_problems = 1;
    }
    free(aux);
    const char *pre = safetensors_metadata(&f, "preprocess");
    if (pre && strlen(pre) < sizeof w->preprocess) strcpy(w->preprocess, pre);
    safetensors_close(&f);
    if (n_problems) {
        vgg_weights_free(w);
        return -1;
    }
    expand_sigmoid(w);
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
    /* A BatchNorm config gets folded weights straight away (no BatchNorm tensors); a sigmoid
     * head draws its one unit, then expands it as loading does. */
    param_spec specs[MAX_PARAMS];
    int n;
    if (alloc_and_point(w, cfg, NULL, NULL, specs, &n) != 0) return -1;
    for (int k = 0; k < n; k++) {
        double std = 0.01;
        if (specs[k].ndim == 4) std = sqrt(2.0 / (double)(specs[k].shape[0] * 9));
        fill_normal(*specs[k].slot, specs[k].numel, std, seed, k);
    }
    expand_sigmoid(w);
    return 0;
}

/* The head metadata of cfg (vgg_weights.h) appended to kv (key, value, ..., NULL) at *n,
 * the values in vals. Nothing for the default head. */
static void head_metadata(const vgg_config *cfg, char vals[4][64], const char **kv, int *n) {
    if (vgg_config_default_head(cfg)) return;
    int used = 0;
    for (int j = 0; j < cfg->n_fc; j++)
        used += snprintf(vals[0] + used, 64 - used, "%s%d", j ? "," : "",
                         j == cfg->n_fc - 1 ? cfg->head_units : cfg->fc_out[j]);
    snprintf(vals[1], 64, "%d", cfg->input_hw);
    snprintf(vals[2], 64, "%s", cfg->name);
    const char *pairs[] = {"head_dense", vals[0], "head_pool", vgg_head_pool_names[cfg->head_pool],
                           "head_activation", vgg_head_act_names[cfg->head_act],
                           "input_size", vals[1], "model", vals[2]};
    for (size_t k = 0; k < sizeof pairs / sizeof *pairs; k++) kv[(*n)++] = pairs[k];
}

int vgg_weights_save(const vgg_weights *w, const char *path, const char *const *metadata,
                     char *err, size_t errlen) {
    if (w->cfg.batch_norm) {
        snprintf(err, errlen, "%s: saving a BatchNorm model is not supported (its BatchNorm is "
                 "folded)", path);
        return -1;
    }
    param_spec specs[MAX_PARAMS];
    vgg_weights shadow = *w; /* param_specs wants a mutable struct to record slots */
    int n = param_specs(&shadow, NULL, specs);
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
    /* A sigmoid head's unit z is row 1 (z/2) doubled. */
    const int j = w->cfg.n_fc - 1, k_in = w->cfg.fc_in[j];
    float *unit = NULL;
    if (w->cfg.head_act == VGG_ACT_SIGMOID) {
        unit = malloc(((size_t)k_in + 1) * sizeof(float));
        if (!unit) {
            snprintf(err, errlen, "%s: out of memory", path);
            return -1;
        }
        for (int i = 0; i < k_in; i++) unit[i] = 2 * w->fc_w[j][k_in + i];
        unit[k_in] = 2 * w->fc_b[j][1];
        data[n - 2] = unit;
        data[n - 1] = unit + k_in;
    }
    const char *kv[2 * 16 + 12];
    char vals[4][64];
    int n_kv = 0;
    for (; metadata && metadata[n_kv] && n_kv < 2 * 16; n_kv++) kv[n_kv] = metadata[n_kv];
    head_metadata(&w->cfg, vals, kv, &n_kv);
    kv[n_kv] = NULL;
    int rc = safetensors_write_f32(path, n, names, (const int64_t(*)[SAFETENSORS_MAX_DIMS])shapes,
                                   ndims, data, kv, err, errlen);
    free(unit);
    return rc;
}
