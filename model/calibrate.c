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

int vgg_calibrate(const vgg_weights *w, const float *inputs, int n, int threads,
                  float act_max[VGG_N_LAYERS], char *err, size_t errlen) {
    const int batch = 8;
    vgg_model_options opt = {.algo = VGG_ALGO_DIRECT, .precision = VGG_PRECISION_F32,
                             .max_batch = batch};
    vgg_model *m = vgg_model_create(w, &opt, err, errlen);
    if (!m) return -1;
    vgg_engine *e = vgg_engine_create(m, threads, err, errlen);
    int rc = e ? 0 : -1;
    for (int l = 0; l < VGG_N_LAYERS; l++) act_max[l] = 0;
    const size_t per = (size_t)w->cfg.in_channels * w->cfg.input_hw * w->cfg.input_hw;
    for (int i = 0; rc == 0 && i < n; i += batch)
        rc = vgg_engine_observe(e, inputs + i * per, n - i < batch ? n - i : batch, act_max, err,
                                errlen);
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

static bool layer_used(const vgg_config *c, int l) { return l >= VGG_MAX_CONV || l < c->n_conv; }

int vgg_calibration_save(const char *path, const vgg_weights *w, int n_inputs,
                         const float act_max[VGG_N_LAYERS], char *err, size_t errlen) {
    char fp[32];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)vgg_weights_fingerprint(w));
    json_t *layers = json_object();
    for (int l = 0; l < VGG_N_LAYERS; l++)
        if (layer_used(&w->cfg, l)) json_object_set_new(layers, layer_names[l], json_real(act_max[l]));
    json_t *root = json_pack("{s:s, s:s, s:s, s:i, s:o}", "format", "vggserve-int8-calibration/1",
                             "model", w->cfg.name, "weights_fingerprint", fp, "inputs", n_inputs,
                             "act_max", layers);
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
