/* test_engine_heads.c - the oneDNN engine on heads described by data (vgg_config.h) against
 * a naive C forward and Grad-CAM pass written from the definitions.
 *
 * Reduced VGGs (channels / 16) with input sides that are not multiples of 32, so pools floor
 * (70: 35, 17, 8, 4, 2); heads: flatten with 2 dense layers, global average with 2, global
 * max with 1, a sigmoid unit (answered as [1-p, p]); in f32 (flat and 4-D fc1), bf16, int8
 * calibrated on the inputs, and Winograd where oneDNN has it. Grad-CAM's maps are checked
 * against a full backward to the last convolution's output (through the dense layers, the
 * head's pooling and pool5), which the engine never forms: it takes the per-channel sums
 * (engine.h). The save/load round trip keeps the head (metadata) and the sigmoid unit. */
#include <dnnl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "calibrate.h"
#include "engine.h"
#include "safetensors.h"
#include "test_util.h"
#include "vgg_weights.h"

enum { N_IMG = 3, MAX_CLASSES = 16 };

/* ---------------------------------------------------------------- naive reference */

static void conv3x3_relu(const float *in, int cin, int hw, const float *w, const float *b,
                         int cout, float *out) {
    for (int o = 0; o < cout; o++)
        for (int y = 0; y < hw; y++)
            for (int x = 0; x < hw; x++) {
                double acc = b[o];
                for (int c = 0; c < cin; c++)
                    for (int ky = 0; ky < 3; ky++)
                        for (int kx = 0; kx < 3; kx++) {
                            int iy = y + ky - 1, ix = x + kx - 1;
                            if (iy < 0 || ix < 0 || iy >= hw || ix >= hw) continue;
                            acc += (double)in[(c * hw + iy) * hw + ix] *
                                   w[((o * cin + c) * 3 + ky) * 3 + kx];
                        }
                out[(o * hw + y) * hw + x] = acc > 0 ? (float)acc : 0.0f;
            }
}

/* 2x2/2 max-pool flooring odd sides; where[] (may be NULL) records each output's source. */
static void maxpool2(const float *in, int c, int hw, float *out, int *where) {
    const int oh = hw / 2;
    for (int k = 0; k < c; k++)
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < oh; x++) {
                int best = (k * hw + 2 * y) * hw + 2 * x;
                for (int dy = 0; dy < 2; dy++)
                    for (int dx = 0; dx < 2; dx++) {
                        int at = (k * hw + 2 * y + dy) * hw + 2 * x + dx;
                        if (in[at] > in[best]) best = at;
                    }
                out[(k * oh + y) * oh + x] = in[best];
                if (where) where[(k * oh + y) * oh + x] = best;
            }
}

static void linear(const float *in, int n_in, const float *w, const float *b, int n_out,
                   bool relu, float *out) {
    for (int o = 0; o < n_out; o++) {
        double acc = b[o];
        for (int i = 0; i < n_in; i++) acc += (double)w[(size_t)o * n_in + i] * in[i];
        out[o] = relu && acc < 0 ? 0.0f : (float)acc;
    }
}

/* What the naive pass keeps for the backward. */
typedef struct {
    float *a;                /* the last conv's output (C, hw, hw) */
    float *p5;               /* pool5 (C, fh, fh) */
    int *p5_where;           /* each pool5 value's index in a */
    float *pooled;           /* the head's input (fc_in[0]) */
    int *pooled_where;       /* GMP: each channel's index in p5 */
    float *h[VGG_N_FC];      /* dense outputs after ReLU (the last: logits) */
} naive_state;

static void naive_free(naive_state *s) {
    free(s->a);
    free(s->p5);
    free(s->p5_where);
    free(s->pooled);
    free(s->pooled_where);
    for (int j = 0; j < VGG_N_FC; j++) free(s->h[j]);
}

/* One image through the features and the head, as vgg_config.h defines them. */
static void naive_forward(const vgg_weights *wt, const float *image, naive_state *s) {
    const vgg_config *c = &wt->cfg;
    const size_t max = (size_t)64 * c->input_hw * c->input_hw;
    float *x = malloc(max * sizeof(float)), *y = malloc(max * sizeof(float));
    memcpy(x, image, sizeof(float) * 3 * c->input_hw * c->input_hw);
    const int last = c->n_conv - 1, ch = c->final_channels, hw = c->conv_hw[last];
    for (int i = 0; i < c->n_conv; i++) {
        conv3x3_relu(x, c->conv_in[i], c->conv_hw[i], wt->conv_w[i], wt->conv_b[i], c->conv_out[i], y);
        float *t = x; x = y; y = t;
        if (c->pool_after[i] && i != last) {
            maxpool2(x, c->conv_out[i], c->conv_hw[i], y, NULL);
            t = x; x = y; y = t;
        }
    }
    const int fh = c->final_hw, positions = fh * fh;
    s->a = x;
    s->p5 = y;
    s->p5_where = malloc((size_t)ch * positions * sizeof(int));
    maxpool2(s->a, ch, hw, s->p5, s->p5_where);
    s->pooled = malloc((size_t)c->fc_in[0] * sizeof(float));
    s->pooled_where = malloc((size_t)ch * sizeof(int));
    if (c->head_pool == VGG_POOL_FLATTEN) memcpy(s->pooled, s->p5, (size_t)c->fc_in[0] * sizeof(float));
    for (int k = 0; c->head_pool != VGG_POOL_FLATTEN && k < ch; k++) {
        double sum = 0;
        int best = k * positions;
        for (int p = 0; p < positions; p++) {
            sum += s->p5[k * positions + p];
            if (s->p5[k * positions + p] > s->p5[best]) best = k * positions + p;
        }
        s->pooled[k] = c->head_pool == VGG_POOL_AVG ? (float)(sum / positions) : s->p5[best];
        s->pooled_where[k] = best;
    }
    const float *in = s->pooled;
    for (int j = 0; j < c->n_fc; j++) {
        s->h[j] = malloc((size_t)c->fc_out[j] * sizeof(float));
        linear(in, c->fc_in[j], wt->fc_w[j], wt->fc_b[j], c->fc_out[j], j < c->n_fc - 1, s->h[j]);
        in = s->h[j];
    }
}

/* Grad-CAM by hand: d logit_cls / d A in full (dense layers, ReLUs, the head's pooling,
 * pool5), alpha_k its mean over channel k, map = ReLU(sum alpha_k A_k) / max. */
static void naive_gradcam(const vgg_weights *wt, const naive_state *s, int cls, float *map) {
    const vgg_config *c = &wt->cfg;
    const int last = c->n_conv - 1, ch = c->final_channels, hw = c->conv_hw[last];
    const int positions = c->final_hw * c->final_hw;
    double *g = calloc(4096, sizeof(double)), *gin = calloc(4096, sizeof(double));
    g[cls] = 1;
    for (int j = c->n_fc - 1; j >= 0; j--) {
        memset(gin, 0, (size_t)c->fc_in[j] * sizeof(double));
        for (int o = 0; o < c->fc_out[j]; o++)
            for (int i = 0; i < c->fc_in[j]; i++) gin[i] += g[o] * wt->fc_w[j][(size_t)o * c->fc_in[j] + i];
        if (j > 0)
            for (int i = 0; i < c->fc_in[j]; i++) gin[i] = s->h[j - 1][i] > 0 ? gin[i] : 0;
        double *t = g; g = gin; gin = t;
    }
    /* g: d / d pooled. To pool5's output: */
    double *gp5 = calloc((size_t)ch * positions, sizeof(double));
    for (int k = 0; k < ch; k++)
        for (int p = 0; p < positions; p++) {
            const int at = k * positions + p;
            if (c->head_pool == VGG_POOL_FLATTEN) gp5[at] = g[at];
            else if (c->head_pool == VGG_POOL_AVG) gp5[at] = g[k] / positions;
            else if (s->pooled_where[k] == at) gp5[at] = g[k];
        }
    double *ga = calloc((size_t)ch * hw * hw, sizeof(double));
    for (int at = 0; at < ch * positions; at++) ga[s->p5_where[at]] += gp5[at];
    double cam[64 * 64] = {0}, top = 0;
    for (int k = 0; k < ch; k++) {
        double alpha = 0;
        for (int p = 0; p < hw * hw; p++) alpha += ga[k * hw * hw + p];
        alpha /= hw * hw;
        for (int p = 0; p < hw * hw; p++) cam[p] += alpha * s->a[k * hw * hw + p];
    }
    for (int p = 0; p < hw * hw; p++) top = fmax(top, cam[p]);
    for (int p = 0; p < hw * hw; p++) map[p] = top > 0 && cam[p] > 0 ? (float)(cam[p] / top) : 0;
    free(g);
    free(gin);
    free(gp5);
    free(ga);
}

/* ---------------------------------------------------------------- checks */

typedef struct {
    const char *name;
    int input_hw;
    vgg_head head;
} head_case;

static const head_case cases[] = {
    {"vgg16", 70, {VGG_POOL_FLATTEN, VGG_ACT_SOFTMAX, 2, {24, 7}}},
    {"vgg11", 100, {VGG_POOL_AVG, VGG_ACT_SOFTMAX, 2, {16, 3}}},
    {"vgg13", 64, {VGG_POOL_MAX, VGG_ACT_SOFTMAX, 1, {5}}},
    {"vgg19", 72, {VGG_POOL_AVG, VGG_ACT_SIGMOID, 2, {12, 1}}},
    {"vgg16", 150, {VGG_POOL_FLATTEN, VGG_ACT_SOFTMAX, 3, {20, 10, 4}}},
};
#define N_CASES (int)(sizeof cases / sizeof cases[0])

static double max_rel_diff(const float *x, const float *ref, int n) {
    double worst = 0, scale = 0;
    for (int i = 0; i < n; i++) scale = fmax(scale, fabs(ref[i]));
    for (int i = 0; i < n; i++) worst = fmax(worst, fabs(x[i] - ref[i]));
    return worst / (scale > 0 ? scale : 1);
}

static float *normal_inputs(const vgg_config *cfg, uint64_t seed) {
    const size_t n = (size_t)3 * cfg->input_hw * cfg->input_hw * N_IMG;
    float *in = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) in[i] = (float)vgg_normal_from_u64(vgg_splitmix64(&seed));
    return in;
}

/* Generated weights with the dense layers 30x the 0.01 default (logits well above rounding). */
static int make_weights(const head_case *hc, vgg_weights *w) {
    vgg_config cfg;
    char err[256];
    if (!vgg_config_init_head(&cfg, hc->name, 16, false, hc->input_hw, &hc->head, err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", hc->name, err);
        return -1;
    }
    if (vgg_weights_generate(w, &cfg, 5) != 0) return -1;
    for (int j = 0; j < cfg.n_fc; j++)
        for (int64_t i = 0; i < (int64_t)cfg.fc_out[j] * cfg.fc_in[j]; i++) w->fc_w[j][i] *= 30;
    return 0;
}

static const char *case_str(const head_case *hc, char *buf, size_t len) {
    snprintf(buf, len, "%s %dpx %s %d dense %s", hc->name, hc->input_hw,
             vgg_head_pool_names[hc->head.pool], hc->head.n_dense, vgg_head_act_names[hc->head.act]);
    return buf;
}

/* Forward in one mode against the naive logits; the probabilities are their softmax, and a
 * sigmoid head's are [1 - p, p] with p = sigmoid(z), z = logit 1 - logit 0. */
static void check_forward(const head_case *hc, const vgg_model_options *opt, double tol) {
    vgg_weights w;
    EXPECT(make_weights(hc, &w) == 0);
    const vgg_config *c = &w.cfg;
    const int nc = c->n_classes;
    float *in = normal_inputs(c, 11);
    const size_t per = (size_t)3 * c->input_hw * c->input_hw;
    float ref[N_IMG][MAX_CLASSES];
    for (int i = 0; i < N_IMG; i++) {
        naive_state s = {0};
        naive_forward(&w, in + i * per, &s);
        memcpy(ref[i], s.h[c->n_fc - 1], nc * sizeof(float));
        naive_free(&s);
    }
    float act_max[VGG_N_LAYERS];
    char err[512], what[96];
    vgg_model_options o = *opt;
    if (o.precision == VGG_PRECISION_INT8) {
        EXPECT(vgg_calibrate(&w, in, N_IMG, 1, NULL, act_max, err, sizeof err) == 0);
        o.act_max = act_max;
    }
    vgg_model *m = vgg_model_create(&w, &o, err, sizeof err);
    vgg_engine *e = m ? vgg_engine_create(m, 2, err, sizeof err) : NULL;
    EXPECT(e != NULL);
    double worst = 0;
    for (int n = 1; e && n <= N_IMG; n += 2) {
        float logits[N_IMG * MAX_CLASSES], probs[N_IMG * MAX_CLASSES];
        EXPECT(vgg_engine_forward(e, in, n, logits, probs, err, sizeof err) == 0);
        for (int i = 0; i < n; i++) {
            worst = fmax(worst, max_rel_diff(logits + i * nc, ref[i], nc));
            double mx = -1e30, sum = 0;
            for (int k = 0; k < nc; k++) mx = fmax(mx, logits[i * nc + k]);
            for (int k = 0; k < nc; k++) sum += exp(logits[i * nc + k] - mx);
            for (int k = 0; k < nc; k++)
                EXPECT(fabs(probs[i * nc + k] - exp(logits[i * nc + k] - mx) / sum) < 1e-5);
            if (c->head_act == VGG_ACT_SIGMOID) {
                const double z = ref[i][1] - ref[i][0], p = 1 / (1 + exp(-z));
                EXPECT(nc == 2 && fabs(ref[i][0] + ref[i][1]) < 1e-5 * fabs(z) + 1e-7);
                EXPECT(fabs(probs[i * 2 + 1] - p) < 1e-3 && fabs(probs[i * 2] - (1 - p)) < 1e-3);
            }
        }
    }
    printf("%-36s %-8s %-4s fc1=%-4s: worst relative logit difference %.3g\n",
           case_str(hc, what, sizeof what), vgg_algo_name(o.algo), vgg_precision_name(o.precision),
           o.fc1_layout == VGG_FC1_FLAT ? "flat" : "4d", worst);
    EXPECT(worst <= tol);
    vgg_engine_free(e);
    vgg_model_free(m);
    vgg_weights_free(&w);
    free(in);
}

/* Grad-CAM on every class of each image against the full naive backward. */
static void check_explain(const head_case *hc, vgg_precision precision, double tol) {
    vgg_weights w;
    EXPECT(make_weights(hc, &w) == 0);
    const vgg_config *c = &w.cfg;
    const int nc = c->n_classes;
    float *in = normal_inputs(c, 23);
    const size_t per = (size_t)3 * c->input_hw * c->input_hw;
    char err[512], what[96];
    vgg_model_options opt = {.precision = precision, .max_batch = N_IMG};
    vgg_model *m = vgg_model_create(&w, &opt, err, sizeof err);
    vgg_engine *e = m ? vgg_engine_create(m, 2, err, sizeof err) : NULL;
    EXPECT(e != NULL);
    if (!e) return;
    const int hw = vgg_model_explain_hw(m), area = hw * hw;
    EXPECT(hw == c->conv_hw[c->n_conv - 1]);
    double worst = 0;
    float *maps = malloc((size_t)N_IMG * area * sizeof(float)), *ref = malloc(area * sizeof(float));
    for (int cls = 0; cls < nc; cls++) {
        int classes[N_IMG], explained[N_IMG];
        for (int i = 0; i < N_IMG; i++) classes[i] = cls;
        EXPECT(vgg_engine_explain(e, in, N_IMG, NULL, NULL, classes, maps, explained, err,
                                  sizeof err) == 0);
        for (int i = 0; i < N_IMG; i++) {
            naive_state s = {0};
            naive_forward(&w, in + i * per, &s);
            naive_gradcam(&w, &s, cls, ref);
            naive_free(&s);
            EXPECT(explained[i] == cls);
            for (int p = 0; p < area; p++) worst = fmax(worst, fabs(maps[i * area + p] - ref[p]));
        }
    }
    printf("explain %-36s %-4s: worst |map - naive| %.3g over %d classes\n",
           case_str(hc, what, sizeof what), vgg_precision_name(precision), worst, nc);
    EXPECT(worst <= tol);
    free(maps);
    free(ref);
    vgg_engine_free(e);
    vgg_model_free(m);
    vgg_weights_free(&w);
    free(in);
}

/* save writes the head as metadata (a sigmoid as its one unit), load reads it back equal. */
static void check_save_load(const head_case *hc) {
    vgg_weights w, l;
    EXPECT(make_weights(hc, &w) == 0);
    char path[64], err[1024];
    snprintf(path, sizeof path, "/tmp/test_engine_heads.%d.safetensors", (int)getpid());
    EXPECT(vgg_weights_save(&w, path, NULL, err, sizeof err) == 0);
    vgg_config other;
    vgg_config_init(&other, "vgg16"); /* ignored: the file describes itself */
    int rc = vgg_weights_load(&l, &other, path, err, sizeof err);
    EXPECT(rc == 0);
    if (rc != 0) fprintf(stderr, "%s\n", err);
    if (rc == 0) {
        EXPECT(memcmp(&l.cfg, &w.cfg, sizeof w.cfg) == 0);
        EXPECT(l.n_params == w.n_params);
        EXPECT(memcmp(l.storage, w.storage, (size_t)w.n_params * sizeof(float)) == 0);
        vgg_weights_free(&l);
    }
    unlink(path);
    vgg_weights_free(&w);
}

/* ---------------------------------------------------------------- bad files */

/* Writes w's tensors (dropping the last `drop` dense tensors, adding BatchNorm tensors with
 * variance var when bn) with metadata kv; returns the path. */
static const char *write_variant(const vgg_weights *w, const char *const *kv, int drop, bool bn,
                                 float var) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/test_engine_heads.bad.%d.safetensors", (int)getpid());
    const vgg_config *c = &w->cfg;
    enum { MAX_T = 6 * VGG_MAX_CONV + 2 * VGG_N_FC };
    char names[MAX_T][48];
    const char *np[MAX_T];
    int64_t shapes[MAX_T][SAFETENSORS_MAX_DIMS] = {{0}};
    int ndims[MAX_T], n = 0;
    const float *data[MAX_T];
    static float stats[4][512];
    for (int k = 0; k < 512; k++) stats[0][k] = 1, stats[1][k] = 0, stats[2][k] = 0, stats[3][k] = var;
    vgg_config cbn; /* torchvision's _bn indices: Conv2d, BatchNorm2d, ReLU per conv */
    vgg_head head = {c->head_pool, c->head_act, c->n_fc, {c->fc_out[0], c->fc_out[1], c->fc_out[2]}};
    vgg_config_init_head(&cbn, c->name, 16, true, c->input_hw, &head, NULL, 0);
    for (int i = 0; i < c->n_conv; i++) {
        const int fi = bn ? cbn.feature_index[i] : c->feature_index[i];
        snprintf(names[n], 48, "features.%d.weight", fi);
        shapes[n][0] = c->conv_out[i], shapes[n][1] = c->conv_in[i], shapes[n][2] = shapes[n][3] = 3;
        ndims[n] = 4, data[n++] = w->conv_w[i];
        snprintf(names[n], 48, "features.%d.bias", fi);
        shapes[n][0] = c->conv_out[i], ndims[n] = 1, data[n++] = w->conv_b[i];
        static const char *const bn_names[4] = {"weight", "bias", "running_mean", "running_var"};
        for (int k = 0; bn && k < 4; k++) {
            snprintf(names[n], 48, "features.%d.%s", fi + 1, bn_names[k]);
            shapes[n][0] = c->conv_out[i], ndims[n] = 1, data[n++] = stats[k];
        }
    }
    for (int j = 0; j < c->n_fc; j++) {
        snprintf(names[n], 48, "classifier.%d.weight", 3 * j);
        shapes[n][0] = c->fc_out[j], shapes[n][1] = c->fc_in[j], ndims[n] = 2, data[n++] = w->fc_w[j];
        snprintf(names[n], 48, "classifier.%d.bias", 3 * j);
        shapes[n][0] = c->fc_out[j], ndims[n] = 1, data[n++] = w->fc_b[j];
    }
    n -= drop;
    for (int k = 0; k < n; k++) np[k] = names[k];
    char err[256];
    if (safetensors_write_f32(path, n, np, (const int64_t(*)[SAFETENSORS_MAX_DIMS])shapes, ndims,
                              data, kv, err, sizeof err) != 0)
        fprintf(stderr, "%s\n", err);
    return path;
}

/* Each bad head is refused with a message naming the problem, and nothing stays loaded. */
static void check_bad_heads(void) {
    const head_case hc = {"vgg11", 64, {VGG_POOL_FLATTEN, VGG_ACT_SOFTMAX, 2, {6, 3}}};
    vgg_weights w;
    EXPECT(make_weights(&hc, &w) == 0);
    vgg_config other;
    vgg_config_init(&other, "vgg16");
#define HEAD(...) (const char *const[]){"model", "vgg11", "input_size", "64", __VA_ARGS__, NULL}
    const struct {
        const char *const *kv;
        int drop;
        bool bn;
        float var;
        const char *why;
    } cases[] = {
        {HEAD("head_dense", "6,3"), 0, false, 1, NULL},
        {HEAD("head_dense", "6,3"), 2, false, 1, "missing classifier.3.weight (3, 6)"},
        {HEAD("head_dense", "6"), 0, false, 1, "unexpected classifier.3.weight"},
        {HEAD("head_dense", "6,4"), 0, false, 1, "classifier.3.weight has shape (3, 6), expected (4, 6)"},
        {HEAD("head_dense", "6,3", "head_pool", "median"), 0, false, 1, "head_pool 'median' (flatten, avg, max)"},
        {HEAD("head_dense", "6,3", "head_pool", "avg"), 0, false, 1, "classifier.0.weight has shape (6, 128), expected (6, 32)"},
        {HEAD("head_dense", "6,3", "head_activation", "tanh"), 0, false, 1, "head_activation 'tanh'"},
        {HEAD("head_dense", "6,3", "head_activation", "sigmoid"), 0, false, 1, "sigmoid on 3 units"},
        {HEAD("head_dense", "1,2,3,4"), 0, false, 1, "head_dense '1,2,3,4' is not 1 to 3 unit counts"},
        {HEAD("head_dense", "6,x"), 0, false, 1, "head_dense '6,x' is not 1 to 3 unit counts"},
        {HEAD("head_dense", ""), 0, false, 1, "head_dense '' is not 1 to 3 unit counts"},
        {HEAD("head_dense", "6,1"), 0, false, 1, "softmax over 1 unit"},
        {(const char *const[]){"model", "vgg11", "input_size", "16", "head_dense", "6,3", NULL}, 0, false, 1,
         "input size 16 outside the 32..1024"},
        {(const char *const[]){"model", "resnet50", "head_dense", "6,3", NULL}, 0, false, 1,
         "unknown model 'resnet50'"},
        {(const char *const[]){"head_dense", "6,3", NULL}, 0, false, 1, "unknown model ''"},
        {(const char *const[]){"model", "vgg11_bn", "input_size", "64", "head_dense", "6,3", NULL}, 0,
         false, 1, "missing features.1.running_var"},
        {(const char *const[]){"model", "vgg11_bn", "input_size", "64", "head_dense", "6,3", NULL}, 0,
         true, -1, "features.1.running_var has a negative value"},
        {(const char *const[]){"model", "vgg11_bn", "input_size", "64", "head_dense", "6,3",
                               "bn_eps", "0", NULL}, 0, true, 1, "bn_eps '0' is not a number in (0, 1)"},
        {(const char *const[]){"model", "vgg11_bn", "input_size", "64", "head_dense", "6,3", NULL}, 0,
         true, 1, NULL},
    };
#undef HEAD
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const char *path = write_variant(&w, cases[k].kv, cases[k].drop, cases[k].bn, cases[k].var);
        vgg_weights l;
        char err[2048] = "";
        const int rc = vgg_weights_load(&l, &other, path, err, sizeof err);
        if (!cases[k].why) {
            EXPECT(rc == 0);
            if (rc != 0) fprintf(stderr, "case %zu: %s\n", k, err);
            else EXPECT(l.cfg.n_fc == 2 && l.cfg.n_classes == 3 && l.cfg.batch_norm == cases[k].bn);
            if (rc == 0) vgg_weights_free(&l);
        } else {
            EXPECT(rc == -1 && strstr(err, cases[k].why) != NULL);
            if (rc != -1 || !strstr(err, cases[k].why))
                fprintf(stderr, "case %zu: want \"%s\" in \"%s\"\n", k, cases[k].why, err);
            EXPECT(l.storage == NULL && l.n_params == 0);
        }
        unlink(path);
    }
    printf("bad heads: %zu files, each refused with its reason (or loaded when valid)\n",
           sizeof cases / sizeof cases[0]);
    vgg_weights_free(&w);
}

int main(void) {
    check_bad_heads();
    const bool wino = dnnl_get_effective_cpu_isa() >= dnnl_cpu_isa_avx512_core;
    for (int k = 0; k < N_CASES; k++) {
        const head_case *hc = &cases[k];
        vgg_model_options f32 = {.max_batch = N_IMG};
        check_forward(hc, &f32, 1e-4);
        f32.fc1_layout = VGG_FC1_4D;
        check_forward(hc, &f32, 1e-4);
        vgg_model_options bf16 = {.precision = VGG_PRECISION_BF16, .max_batch = N_IMG};
        check_forward(hc, &bf16, 4e-2);
        vgg_model_options int8 = {.precision = VGG_PRECISION_INT8, .max_batch = N_IMG};
        check_forward(hc, &int8, 0.1);
        if (wino) {
            vgg_model_options wf = {.algo = VGG_ALGO_WINOGRAD, .max_batch = N_IMG};
            check_forward(hc, &wf, 1e-3);
        }
        check_explain(hc, VGG_PRECISION_F32, 1e-4);
        check_save_load(hc);
    }
    check_explain(&cases[1], VGG_PRECISION_BF16, 0.06);
    return test_summary();
}
