/* calibrate.c - int8 activation ranges: generate, measure, save, load. */
#include "calibrate.h"

#include <errno.h>
#include <stdbool.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double unit(uint64_t *state) { return (vgg_splitmix64(state) >> 11) * (1.0 / 9007199254740992.0); }

void vgg_calibration_images(float *out, int n, int hw, uint64_t seed) {
    static const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    uint64_t st = seed ^ 0xca11b4a7e5eedull;
    const size_t plane = (size_t)hw * hw;
    for (int k = 0; k < n; k++) {
        float *img = out + (size_t)k * 3 * plane;
        /* A few low-frequency waves per channel, a hard edge, and pixel noise. */
        double fx[3][3], fy[3][3], ph[3][3], amp[3][3], base[3];
        for (int c = 0; c < 3; c++) {
            base[c] = 0.2 + 0.6 * unit(&st);
            for (int w = 0; w < 3; w++) {
                fx[c][w] = (unit(&st) - 0.5) * 0.2;
                fy[c][w] = (unit(&st) - 0.5) * 0.2;
                ph[c][w] = unit(&st) * 6.283185307;
                amp[c][w] = 0.25 * unit(&st);
            }
        }
        double edge_a = unit(&st) - 0.5, edge_b = unit(&st) - 0.5, edge_c = (unit(&st) - 0.5) * hw;
        double edge_gain = 0.3 * (unit(&st) - 0.5), noise = 0.08 * unit(&st);
        for (int y = 0; y < hw; y++)
            for (int x = 0; x < hw; x++) {
                bool side = edge_a * (x - hw / 2) + edge_b * (y - hw / 2) > edge_c * 0.2;
                for (int c = 0; c < 3; c++) {
                    double v = base[c] + (side ? edge_gain : 0);
                    for (int w = 0; w < 3; w++) v += amp[c][w] * sin(fx[c][w] * x + fy[c][w] * y + ph[c][w]);
                    v += noise * vgg_normal_from_u64(vgg_splitmix64(&st));
                    v = v < 0 ? 0 : v > 1 ? 1 : v;
                    img[c * plane + (size_t)y * hw + x] = (float)((v - mean[c]) / std[c]);
                }
            }
    }
}

int vgg_calib_method_parse(const char *text, vgg_calib_method *out) {
    if (strcmp(text, "max") == 0) {
        *out = (vgg_calib_method){VGG_CALIB_MAX, 0};
        return 0;
    }
    if (strcmp(text, "mse") == 0) {
        *out = (vgg_calib_method){VGG_CALIB_MSE, 0};
        return 0;
    }
    char *end;
    if (text[0] == 'p') {
        errno = 0;
        double p = strtod(text + 1, &end);
        if (end != text + 1 && *end == '\0' && errno == 0 && p > 0 && p <= 100) {
            *out = (vgg_calib_method){VGG_CALIB_PERCENTILE, p};
            return 0;
        }
    }
    return -1;
}

const char *vgg_calib_method_name(vgg_calib_method m, char *buf, size_t len) {
    if (m.kind == VGG_CALIB_PERCENTILE) snprintf(buf, len, "p%g", m.percentile);
    else snprintf(buf, len, "%s", m.kind == VGG_CALIB_MAX ? "max" : "mse");
    return buf;
}

/* Two passes over the calibration set: the first finds each layer's maximum, the second
 * histograms its positive values over [0, max] (zeros, most of a ReLU's output, are exact in
 * u8 and are left out). */
#define CALIB_BINS 2048

typedef struct {
    float max[VGG_N_LAYERS];
    double *hist; /* [VGG_N_LAYERS][CALIB_BINS], second pass only */
} calib_state;

static void observe_max(void *ctx, int layer, const float *v, size_t count) {
    calib_state *s = ctx;
    float mx = s->max[layer];
    for (size_t i = 0; i < count; i++) mx = fmaxf(mx, v[i]);
    s->max[layer] = mx;
}

static void observe_hist(void *ctx, int layer, const float *v, size_t count) {
    calib_state *s = ctx;
    double *h = s->hist + (size_t)layer * CALIB_BINS;
    float mx = s->max[layer];
    if (!(mx > 0)) return;
    const float to_bin = CALIB_BINS / mx;
    for (size_t i = 0; i < count; i++) {
        if (!(v[i] > 0)) continue;
        int b = (int)(v[i] * to_bin);
        h[b < CALIB_BINS ? b : CALIB_BINS - 1] += 1;
    }
}

/* The clip, in (0, max], for one layer's histogram. */
static float choose_clip(const double *h, float max, vgg_calib_method method) {
    const double width = (double)max / CALIB_BINS;
    if (method.kind == VGG_CALIB_PERCENTILE) {
        double total = 0, seen = 0;
        for (int b = 0; b < CALIB_BINS; b++) total += h[b];
        double want = total * method.percentile / 100.0;
        for (int b = 0; b < CALIB_BINS; b++) {
            seen += h[b];
            if (seen >= want) return (float)((b + 1) * width);
        }
        return max;
    }
    /* MSE: clip c at a bin's upper edge. Values below c round to a step of c/255: error
     * step^2/12 each; values above are stored as c: error (x - c)^2, x at its bin's centre. */
    double best_err = INFINITY;
    int best = CALIB_BINS;
    double below = 0;
    for (int k = 1; k <= CALIB_BINS; k++) {
        below += h[k - 1];
        double c = k * width, step = c / 255;
        double e = below * step * step / 12;
        for (int b = k; b < CALIB_BINS && e < best_err; b++) {
            double d = (b + 0.5) * width - c;
            e += h[b] * d * d;
        }
        if (e < best_err) {
            best_err = e;
            best = k;
        }
    }
    return (float)(best * width);
}

int vgg_calibrate(const vgg_weights *w, const float *inputs, int n, int threads,
                  const vgg_calib_method *method, float act_max[VGG_N_LAYERS], char *err,
                  size_t errlen) {
    const vgg_calib_method how = method ? *method : VGG_CALIB_DEFAULT;
    const int batch = 8;
    vgg_model_options opt = {.algo = VGG_ALGO_DIRECT, .precision = VGG_PRECISION_F32,
                             .max_batch = batch};
    vgg_model *m = vgg_model_create(w, &opt, err, errlen);
    if (!m) return -1;
    vgg_engine *e = vgg_engine_create(m, threads, err, errlen);
    int rc = e ? 0 : -1;
    calib_state st = {{0}, NULL};
    const size_t per = (size_t)w->cfg.in_channels * w->cfg.input_hw * w->cfg.input_hw;
    for (int i = 0; rc == 0 && i < n; i += batch)
        rc = vgg_engine_observe(e, inputs + i * per, n - i < batch ? n - i : batch, observe_max,
                                &st, err, errlen);
    if (rc == 0 && how.kind != VGG_CALIB_MAX) {
        st.hist = calloc((size_t)VGG_N_LAYERS * CALIB_BINS, sizeof(double));
        if (!st.hist) {
            snprintf(err, errlen, "out of memory");
            rc = -1;
        }
        for (int i = 0; rc == 0 && i < n; i += batch)
            rc = vgg_engine_observe(e, inputs + i * per, n - i < batch ? n - i : batch,
                                    observe_hist, &st, err, errlen);
    }
    for (int l = 0; rc == 0 && l < VGG_N_LAYERS; l++)
        act_max[l] = how.kind == VGG_CALIB_MAX || !(st.max[l] > 0)
                         ? st.max[l]
                         : choose_clip(st.hist + (size_t)l * CALIB_BINS, st.max[l], how);
    free(st.hist);
    vgg_engine_free(e);
    vgg_model_free(m);
    return rc;
}

uint64_t vgg_weights_fingerprint(const vgg_weights *w) {
    /* Word-wise multiply-xorshift: order- and value-sensitive, ~0.1 s for VGG16. */
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t)w->n_params;
    const uint32_t *p = (const uint32_t *)w->storage;
    for (int64_t i = 0; i < w->n_params; i++) {
        h = (h ^ p[i]) * 0xff51afd7ed558ccdull;
        h ^= h >> 29;
    }
    return h;
}

static const char *const layer_names[VGG_N_LAYERS] = {
    "conv1", "conv2", "conv3", "conv4", "conv5", "conv6", "conv7", "conv8", "conv9", "conv10",
    "conv11", "conv12", "conv13", "conv14", "conv15", "conv16", "fc1", "fc2", "fc3"};

static bool layer_used(const vgg_config *c, int l) {
    return l >= VGG_MAX_CONV ? l < VGG_MAX_CONV + c->n_fc : l < c->n_conv;
}

int vgg_calibration_save(const char *path, const vgg_weights *w, int n_inputs,
                         vgg_calib_method method, const float act_max[VGG_N_LAYERS], char *err,
                         size_t errlen) {
    char how[32];
    char fp[32];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)vgg_weights_fingerprint(w));
    json_t *layers = json_object();
    for (int l = 0; l < VGG_N_LAYERS; l++)
        if (layer_used(&w->cfg, l)) json_object_set_new(layers, layer_names[l], json_real(act_max[l]));
    json_t *root = json_pack("{s:s, s:s, s:s, s:i, s:s, s:o}", "format",
                             "vggserve-int8-calibration/1", "model", w->cfg.name,
                             "weights_fingerprint", fp, "inputs", n_inputs, "method",
                             vgg_calib_method_name(method, how, sizeof how), "act_max", layers);
    if (!root) { /* jansson passes a NULL part along: one check covers the whole document */
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    int rc = json_dump_file(root, path, JSON_INDENT(2) | JSON_REAL_PRECISION(9));
    json_decref(root);
    if (rc != 0) snprintf(err, errlen, "%s: cannot write: %s", path, strerror(errno));
    return rc ? -1 : 0;
}

int vgg_calibration_load(const char *path, const vgg_weights *w, float act_max[VGG_N_LAYERS],
                         char *err, size_t errlen) {
    FILE *probe = fopen(path, "r");
    if (!probe) return 1;
    fclose(probe);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        snprintf(err, errlen, "%s: %s", path, jerr.text);
        return -1;
    }
    char fp[32];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)vgg_weights_fingerprint(w));
    const char *file_fp = json_string_value(json_object_get(root, "weights_fingerprint"));
    json_t *layers = json_object_get(root, "act_max");
    int rc = 0;
    if (!file_fp || strcmp(file_fp, fp) != 0) {
        snprintf(err, errlen, "%s was made for other weights (fingerprint %s, these are %s)", path,
                 file_fp ? file_fp : "missing", fp);
        rc = -1;
    }
    for (int l = 0; rc == 0 && l < VGG_N_LAYERS; l++) {
        act_max[l] = 0;
        if (!layer_used(&w->cfg, l)) continue;
        json_t *v = json_object_get(layers, layer_names[l]);
        if (!json_is_number(v) || json_number_value(v) <= 0) {
            snprintf(err, errlen, "%s: act_max.%s missing or not positive", path, layer_names[l]);
            rc = -1;
        } else {
            act_max[l] = (float)json_number_value(v);
        }
    }
    json_decref(root);
    return rc;
}
