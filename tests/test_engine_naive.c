/* test_engine_naive.c - the oneDNN engine against a naive C forward pass on reduced VGGs.
 *
 * Narrow channels (width / 16) and a 32x32 input keep it to seconds while exercising every
 * code path: the input reorder, conv+ReLU, pools, fc1 in both layouts, Winograd (in a run of
 * its own, ctest's engine_naive_winograd, skipped without AVX-512), several batch sizes, and
 * two engines running at once on one shared model from two threads; and Grad-CAM maps
 * (vgg_engine_explain) against a hand-written backward pass. */
#include <dnnl.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calibrate.h"
#include "engine.h"
#include "test_util.h"
#include "vgg_weights.h"

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

static void maxpool2(const float *in, int c, int hw, float *out) {
    int oh = hw / 2;
    for (int k = 0; k < c; k++)
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < oh; x++) {
                const float *p = in + (k * hw + 2 * y) * hw + 2 * x;
                float m = fmaxf(fmaxf(p[0], p[1]), fmaxf(p[hw], p[hw + 1]));
                out[(k * oh + y) * oh + x] = m;
            }
}

static void linear(const float *in, int n_in, const float *w, const float *b, int n_out,
                   int relu, float *out) {
    for (int o = 0; o < n_out; o++) {
        double acc = b[o];
        for (int i = 0; i < n_in; i++) acc += (double)w[(size_t)o * n_in + i] * in[i];
        out[o] = relu && acc < 0 ? 0.0f : (float)acc;
    }
}

/* One image (3, hw, hw) to logits (n_classes). */
static void naive_forward(const vgg_weights *wt, const float *image, float *logits) {
    const vgg_config *c = &wt->cfg;
    size_t max = (size_t)64 * c->input_hw * c->input_hw * 4;
    float *a = malloc(max * sizeof(float)), *b = malloc(max * sizeof(float));
    memcpy(a, image, sizeof(float) * 3 * c->input_hw * c->input_hw);
    for (int i = 0; i < c->n_conv; i++) {
        conv3x3_relu(a, c->conv_in[i], c->conv_hw[i], wt->conv_w[i], wt->conv_b[i], c->conv_out[i], b);
        float *t = a; a = b; b = t;
        if (c->pool_after[i]) {
            maxpool2(a, c->conv_out[i], c->conv_hw[i], b);
            t = a; a = b; b = t;
        }
    }
    linear(a, c->fc_in[0], wt->fc_w[0], wt->fc_b[0], c->fc_out[0], 1, b);
    linear(b, c->fc_in[1], wt->fc_w[1], wt->fc_b[1], c->fc_out[1], 1, a);
    linear(a, c->fc_in[2], wt->fc_w[2], wt->fc_b[2], c->fc_out[2], 0, logits);
    free(a);
    free(b);
}

/* Grad-CAM for one image and class by hand: the forward pass keeping A (the last
 * convolution's output) and the classifier's hidden outputs, then d logit_cls / d A back
 * through fc3, ReLU, fc2, ReLU, fc1 and pool5 (to the first maximum of each window: which one
 * of a tie gets it does not change the channel means), then the map (engine.h). */
static void naive_gradcam(const vgg_weights *wt, const float *image, int cls, float *map) {
    const vgg_config *c = &wt->cfg;
    const int last = c->n_conv - 1, ch = c->conv_out[last], hw = c->conv_hw[last], ph = hw / 2;
    size_t max = (size_t)64 * c->input_hw * c->input_hw * 4;
    float *a = malloc(max * sizeof(float)), *b = malloc(max * sizeof(float));
    memcpy(a, image, sizeof(float) * 3 * c->input_hw * c->input_hw);
    for (int i = 0; i < c->n_conv; i++) {
        conv3x3_relu(a, c->conv_in[i], c->conv_hw[i], wt->conv_w[i], wt->conv_b[i], c->conv_out[i], b);
        float *t = a; a = b; b = t;
        if (c->pool_after[i] && i != last) {
            maxpool2(a, c->conv_out[i], c->conv_hw[i], b);
            t = a; a = b; b = t;
        }
    }
    /* a = A (ch, hw, hw); b = pool5 */
    maxpool2(a, ch, hw, b);
    const int h = c->fc_out[0];
    float *h1 = malloc(h * sizeof(float)), *h2 = malloc(h * sizeof(float));
    float *logits = malloc(c->n_classes * sizeof(float));
    linear(b, c->fc_in[0], wt->fc_w[0], wt->fc_b[0], h, 1, h1);
    linear(h1, c->fc_in[1], wt->fc_w[1], wt->fc_b[1], c->fc_out[1], 1, h2);
    linear(h2, c->fc_in[2], wt->fc_w[2], wt->fc_b[2], c->fc_out[2], 0, logits);
    double *d2 = calloc(h, sizeof(double)), *d1 = calloc(h, sizeof(double));
    double *dp = calloc(c->fc_in[0], sizeof(double));
    for (int i = 0; i < c->fc_in[2]; i++) d2[i] = h2[i] > 0 ? wt->fc_w[2][(size_t)cls * c->fc_in[2] + i] : 0;
    for (int o = 0; o < c->fc_out[1]; o++)
        for (int i = 0; i < c->fc_in[1]; i++) d1[i] += d2[o] * wt->fc_w[1][(size_t)o * c->fc_in[1] + i];
    for (int i = 0; i < h; i++) d1[i] = h1[i] > 0 ? d1[i] : 0;
    for (int o = 0; o < h; o++)
        for (int i = 0; i < c->fc_in[0]; i++) dp[i] += d1[o] * wt->fc_w[0][(size_t)o * c->fc_in[0] + i];
    /* Every window sends its whole gradient into one position, so the mean of channel k's
     * gradient over A's positions is the sum of its pool5 gradients over hw * hw. */
    double cam[64 * 64] = {0}, top = 0;
    for (int k = 0; k < ch; k++) {
        double alpha = 0;
        for (int p = 0; p < ph * ph; p++) alpha += dp[k * ph * ph + p];
        alpha /= hw * hw;
        for (int p = 0; p < hw * hw; p++) cam[p] += alpha * a[k * hw * hw + p];
    }
    for (int p = 0; p < hw * hw; p++) top = fmax(top, cam[p]);
    for (int p = 0; p < hw * hw; p++) map[p] = top > 0 && cam[p] > 0 ? (float)(cam[p] / top) : 0;
    free(a); free(b); free(h1); free(h2); free(logits); free(d2); free(d1); free(dp);
}

/* ---------------------------------------------------------------- checks */

enum { N_MAX = 5 };

static double max_rel_diff(const float *x, const float *ref, int n) {
    double worst = 0, scale = 0;
    for (int i = 0; i < n; i++) scale = fmax(scale, fabs(ref[i]));
    for (int i = 0; i < n; i++) worst = fmax(worst, fabs(x[i] - ref[i]));
    return worst / (scale > 0 ? scale : 1);
}

/* oneDNN has its Winograd convolutions (jit_wino_4x3) for AVX-512 CPUs only; elsewhere the
 * engine falls back to direct for every layer. */
static bool winograd_kernels(void) {
    return dnnl_get_effective_cpu_isa() >= dnnl_cpu_isa_avx512_core;
}

/* Every convolution of the plan (describe()'s "convK  implementation  dst format" lines) runs
 * Winograd exactly where engine.h says it does: in f32 every one but the 3-channel first, in
 * bf16 those of >= 128 input channels at 56x56 or less, in int8 those of >= 256 input
 * channels, with direct none. oneDNN has a
 * Winograd kernel for each of these shapes, so a direct one here is the engine not taking
 * the Winograd path. */
static void expect_conv_kernels(const vgg_config *c, const vgg_model_options *opt,
                                const char *plan) {
    int convs = 0;
    for (const char *line = plan; *line; line = strchr(line, '\n') + 1) {
        int k;
        char impl[64];
        if (sscanf(line, "conv%d %63s", &k, impl) != 2 || k < 1 || k > c->n_conv) continue;
        const int l = k - 1;
        bool want = opt->algo == VGG_ALGO_WINOGRAD && c->conv_in[l] > 3 &&
                    (opt->precision == VGG_PRECISION_F32 ||
                     (opt->precision == VGG_PRECISION_BF16 && c->conv_in[l] >= 128 &&
                      c->conv_hw[l] <= 56) ||
                     (opt->precision == VGG_PRECISION_INT8 && c->conv_in[l] >= 256));
        bool wino = strstr(impl, "wino") != NULL;
        if (wino != want)
            fprintf(stderr, "conv%d (%d->%d channels, %dx%d) wants %s, runs %s\n", k, c->conv_in[l],
                    c->conv_out[l], c->conv_hw[l], c->conv_hw[l], want ? "Winograd" : "direct", impl);
        EXPECT(wino == want);
        convs++;
    }
    EXPECT(convs == c->n_conv);
}

/* N_MAX inputs of standard normal values for cfg, from seed (the caller frees them). */
static float *normal_inputs(const vgg_config *cfg, uint64_t seed) {
    const size_t n = (size_t)3 * cfg->input_hw * cfg->input_hw * N_MAX;
    float *in = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) in[i] = (float)vgg_normal_from_u64(vgg_splitmix64(&seed));
    return in;
}

/* Classifier weights 30 times the 0.01 default, so that logits are well above rounding. */
static void scale_classifier(vgg_weights *w) {
    for (int j = 0; j < VGG_N_FC; j++)
        for (int64_t i = 0; i < (int64_t)w->cfg.fc_out[j] * w->cfg.fc_in[j]; i++) w->fc_w[j][i] *= 30;
}

/* The naive pass's logits of each of the N_MAX inputs. */
static void naive_logits(const vgg_weights *w, const float *in, float ref[N_MAX][10]) {
    const size_t per = (size_t)3 * w->cfg.input_hw * w->cfg.input_hw;
    for (int i = 0; i < N_MAX; i++) naive_forward(w, in + i * per, ref[i]);
}

static void check_config(const char *name, int width_div, vgg_algo algo, vgg_fc1_layout fc1,
                         vgg_precision precision) {
    /* bf16 keeps 8 bits of mantissa: about 3 significant digits through 16 layers. */
    const double tol = precision == VGG_PRECISION_BF16 ? 3e-2 : 1e-4;
    vgg_config cfg;
    EXPECT(vgg_config_init_reduced(&cfg, name, width_div, 64, 32, 10));
    vgg_weights w;
    EXPECT(vgg_weights_generate(&w, &cfg, 7) == 0);
    scale_classifier(&w);
    float *in = normal_inputs(&cfg, 99);
    float ref[N_MAX][10];
    naive_logits(&w, in, ref);

    char err[512];
    vgg_model_options opt = {.algo = algo, .precision = precision, .fc1_layout = fc1, .max_batch = N_MAX};
    vgg_model *m = vgg_model_create(&w, &opt, err, sizeof err);
    EXPECT(m != NULL);
    if (!m) return;
    vgg_engine *e = vgg_engine_create(m, 2, err, sizeof err);
    EXPECT(e != NULL);
    static const int batches[] = {1, 3, N_MAX};
    for (int b = 0; b < 3; b++) {
        int n = batches[b];
        float logits[N_MAX * 10], probs[N_MAX * 10];
        EXPECT(vgg_engine_forward(e, in, n, logits, probs, err, sizeof err) == 0);
        for (int i = 0; i < n; i++) {
            double d = max_rel_diff(logits + i * 10, ref[i], 10);
            if (d > tol)
                fprintf(stderr, "%s %s %s fc1=%s batch %d row %d: rel diff %.3g\n", name,
                        vgg_algo_name(algo), vgg_precision_name(precision),
                        fc1 == VGG_FC1_FLAT ? "flat" : "4d", n, i, d);
            EXPECT(d <= tol);
            double sum = 0, mx = -1e30;
            for (int k = 0; k < 10; k++) mx = fmax(mx, ref[i][k]);
            for (int k = 0; k < 10; k++) sum += exp(ref[i][k] - mx);
            for (int k = 0; k < 10; k++)
                EXPECT(fabs(probs[i * 10 + k] - exp(ref[i][k] - mx) / sum) <
                       (precision == VGG_PRECISION_BF16 ? 2e-2 : 1e-5));
        }
    }
    /* The plan holds what was asked for: each convolution in the kernel family engine.h
     * promises (checked where oneDNN has Winograd kernels, see main), and bf16 kernels. */
    char *plan = vgg_engine_describe(e, N_MAX);
    if (algo == VGG_ALGO_DIRECT || winograd_kernels()) expect_conv_kernels(&cfg, &opt, plan);
    if (precision == VGG_PRECISION_BF16) EXPECT(strstr(plan, "bf16") != NULL);
    free(plan);
    printf("%s %-8s %s fc1=%-4s ok: weights %zu bytes, activations %zu bytes\n", name,
           vgg_algo_name(algo), vgg_precision_name(precision), fc1 == VGG_FC1_FLAT ? "flat" : "4d",
           vgg_model_weight_bytes(m),
           vgg_engine_activation_bytes(e));
    /* After releasing the source, prepared batch sizes keep working. */
    vgg_model_release_source(m);
    float logits[10];
    EXPECT(vgg_engine_forward(e, in, 1, logits, NULL, err, sizeof err) == 0);
    EXPECT(max_rel_diff(logits, ref[0], 10) <= tol);
    /* A batch size over max_batch is refused, not crashed on. */
    EXPECT(vgg_engine_prepare(e, N_MAX + 1, err, sizeof err) != 0);
    vgg_engine_free(e);
    vgg_model_free(m);
    vgg_weights_free(&w);
    free(in);
}

/* ---------------------------------------------------------------- explanations */

/* vgg_engine_explain against naive_gradcam on a reduced VGG with a 96x96 input (6x6 maps):
 * each image's top-1, explicit classes and an image left out, at several batch sizes; its
 * logits and probabilities equal forward()'s bit for bit. plain_fc: the backward on plain
 * copies of the fc weights (vgg_model_options.explain_plain_fc). */
static void check_explain(int width_div, vgg_algo algo, vgg_fc1_layout fc1, vgg_precision precision,
                          bool plain_fc) {
    const double tol = precision == VGG_PRECISION_BF16 ? 0.05 : 1e-4; /* measured 0.015, 1e-6 */
    vgg_config cfg;
    EXPECT(vgg_config_init_reduced(&cfg, "vgg16", width_div, 96, 32, 10));
    vgg_weights w;
    EXPECT(vgg_weights_generate(&w, &cfg, 21) == 0);
    scale_classifier(&w);
    const size_t per = (size_t)3 * cfg.input_hw * cfg.input_hw;
    float *in = normal_inputs(&cfg, 17);
    char err[512];
    vgg_model_options opt = {.algo = algo, .precision = precision, .fc1_layout = fc1,
                             .max_batch = N_MAX, .explain_plain_fc = plain_fc};
    vgg_model *m = vgg_model_create(&w, &opt, err, sizeof err);
    vgg_engine *e = m ? vgg_engine_create(m, 2, err, sizeof err) : NULL;
    EXPECT(e != NULL);
    if (!e) return;
    const int hw = vgg_model_explain_hw(m), area = hw * hw;
    EXPECT(hw == 6);
    double worst = 0;
    for (int n = 1; n <= N_MAX; n += 2) {
        float logits[N_MAX * 10], probs[N_MAX * 10], xl[N_MAX * 10], xp[N_MAX * 10];
        float maps[N_MAX * 36], ref[36];
        int classes[N_MAX], explained[N_MAX];
        for (int i = 0; i < n; i++) classes[i] = i == 1 ? VGG_EXPLAIN_NONE : i < 2 ? VGG_EXPLAIN_TOP1 : (3 * i) % 10;
        EXPECT(vgg_engine_forward(e, in, n, logits, probs, err, sizeof err) == 0);
        EXPECT(vgg_engine_explain(e, in, n, xl, xp, classes, maps, explained, err, sizeof err) == 0);
        EXPECT(memcmp(logits, xl, n * 10 * sizeof(float)) == 0);
        EXPECT(memcmp(probs, xp, n * 10 * sizeof(float)) == 0);
        for (int i = 0; i < n; i++) {
            int want = classes[i];
            if (want == VGG_EXPLAIN_TOP1)
                for (int k = want = 0; k < 10; k++) want = probs[i * 10 + k] > probs[i * 10 + want] ? k : want;
            EXPECT(explained[i] == (want == VGG_EXPLAIN_NONE ? -1 : want));
            if (want == VGG_EXPLAIN_NONE) {
                for (int p = 0; p < area; p++) EXPECT(maps[i * area + p] == 0);
                continue;
            }
            naive_gradcam(&w, in + i * per, want, ref);
            float top = 0;
            for (int p = 0; p < area; p++) {
                worst = fmax(worst, fabs(maps[i * area + p] - ref[p]));
                top = fmaxf(top, maps[i * area + p]);
            }
            EXPECT(top == 1.0f);
        }
    }
    printf("explain vgg16/%d %-8s %s fc1=%-4s%s: worst |map - naive| %.3g\n", width_div,
           vgg_algo_name(algo), vgg_precision_name(precision), fc1 == VGG_FC1_FLAT ? "flat" : "4d",
           plain_fc ? " plain fc" : "", worst);
    EXPECT(worst <= tol);
    float maps[36];
    int bad = 10;
    EXPECT(vgg_engine_explain(e, in, 1, NULL, NULL, &bad, maps, NULL, err, sizeof err) != 0);
    EXPECT(strstr(err, "class id 10 outside 0..9") != NULL);
    vgg_engine_free(e);
    vgg_model_free(m);
    vgg_weights_free(&w);
    free(in);
}

/* int8 says so instead of explaining. */
static void check_explain_int8_refused(void) {
    vgg_config cfg;
    vgg_config_init_reduced(&cfg, "vgg16", 16, 64, 32, 10);
    vgg_weights w;
    vgg_weights_generate(&w, &cfg, 3);
    float act_max[VGG_N_LAYERS];
    for (int l = 0; l < VGG_N_LAYERS; l++) act_max[l] = 1.0f;
    vgg_model_options opt = {.precision = VGG_PRECISION_INT8, .max_batch = 1, .act_max = act_max};
    char err[256];
    vgg_model *m = vgg_model_create(&w, &opt, err, sizeof err);
    vgg_engine *e = m ? vgg_engine_create(m, 1, err, sizeof err) : NULL;
    EXPECT(e != NULL);
    float *in = calloc((size_t)3 * 64 * 64, sizeof(float)), maps[16];
    EXPECT(e && vgg_engine_explain(e, in, 1, NULL, NULL, NULL, maps, NULL, err, sizeof err) != 0);
    EXPECT(strstr(err, "explanations are not supported in int8") != NULL);
    free(in);
    vgg_engine_free(e);
    vgg_model_free(m);
    vgg_weights_free(&w);
}

/* ---------------------------------------------------------------- concurrency */

typedef struct {
    vgg_model *model;
    const float *in;
    int n, iterations;
    float logits[N_MAX * 10];
    int failures;
} worker_arg;

static void *worker(void *p) {
    worker_arg *a = p;
    char err[256];
    vgg_engine *e = vgg_engine_create(a->model, 1, err, sizeof err);
    if (!e) {
        a->failures++;
        return NULL;
    }
    float first[N_MAX * 10];
    for (int it = 0; it < a->iterations; it++) {
        if (vgg_engine_forward(e, a->in, a->n, a->logits, NULL, err, sizeof err) != 0) a->failures++;
        if (it == 0) memcpy(first, a->logits, sizeof first);
        else if (memcmp(first, a->logits, sizeof(float) * a->n * 10) != 0) a->failures++;
    }
    vgg_engine_free(e);
    return NULL;
}

static void check_concurrent_engines(void) {
    vgg_config cfg;
    vgg_config_init_reduced(&cfg, "vgg16", 16, 64, 32, 10);
    vgg_weights w;
    vgg_weights_generate(&w, &cfg, 11);
    float *in = normal_inputs(&cfg, 5);
    float ref[N_MAX][10];
    naive_logits(&w, in, ref);
    char err[256];
    vgg_model_options opt = {.algo = VGG_ALGO_DIRECT, .precision = VGG_PRECISION_F32, .fc1_layout = VGG_FC1_FLAT, .max_batch = N_MAX};
    vgg_model *m = vgg_model_create(&w, &opt, err, sizeof err);
    worker_arg args[2] = {{m, in, 2, 20, {0}, 0}, {m, in, N_MAX, 20, {0}, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, worker, &args[i]);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++) {
        EXPECT(args[i].failures == 0);
        for (int r = 0; r < args[i].n; r++) EXPECT(max_rel_diff(args[i].logits + r * 10, ref[r], 10) <= 1e-4);
    }
    /* Both workers share one copy of the weights. */
    size_t weight_bytes = vgg_model_weight_bytes(m);
    EXPECT(weight_bytes <= (size_t)(w.n_params * sizeof(float) * 1.15));
    printf("two concurrent engines ok; shared weights %zu bytes for %lld parameters\n",
           weight_bytes, (long long)w.n_params);
    vgg_model_free(m);
    vgg_weights_free(&w);
    free(in);
}

/* int8 against the naive f32 pass: calibrated on the test inputs themselves, with biases
 * large enough that adding them on the wrong side of the output scale would show. */
static void check_int8(void) {
    vgg_config cfg;
    vgg_config_init_reduced(&cfg, "vgg16", 16, 64, 32, 10);
    vgg_weights w;
    vgg_weights_generate(&w, &cfg, 3);
    scale_classifier(&w);
    for (int j = 0; j < VGG_N_FC; j++)
        for (int i = 0; i < cfg.fc_out[j]; i++) w.fc_b[j][i] *= 20;
    for (int l = 0; l < cfg.n_conv; l++)
        for (int i = 0; i < cfg.conv_out[l]; i++) w.conv_b[l][i] *= 20;
    const size_t per = (size_t)3 * cfg.input_hw * cfg.input_hw;
    float *in = malloc(per * N_MAX * sizeof(float));
    vgg_calibration_images(in, N_MAX, cfg.input_hw, 9);
    float ref[N_MAX][10], act_max[VGG_N_LAYERS];
    naive_logits(&w, in, ref);
    char err[512];
    EXPECT(vgg_calibrate(&w, in, N_MAX, 1, NULL, act_max, err, sizeof err) == 0);
    EXPECT(act_max[0] > 0 && act_max[VGG_MAX_CONV] > 0 && act_max[1] > 0);
    vgg_model_options opt = {.precision = VGG_PRECISION_INT8, .max_batch = N_MAX, .act_max = act_max};
    vgg_model *m = vgg_model_create(&w, &opt, err, sizeof err);
    EXPECT(m != NULL);
    vgg_engine *e = m ? vgg_engine_create(m, 2, err, sizeof err) : NULL;
    float logits[N_MAX * 10];
    EXPECT(e && vgg_engine_forward(e, in, N_MAX, logits, NULL, err, sizeof err) == 0);
    double worst = 0;
    for (int i = 0; i < N_MAX; i++) worst = fmax(worst, max_rel_diff(logits + i * 10, ref[i], 10));
    printf("int8 vs naive f32: worst relative logit difference %.3g\n", worst);
    EXPECT(worst < 0.05);
    /* Mixed: layers kept in f32 inside an int8 model, so activations cross u8 <-> f32 both
     * between convolutions and between inner products (scaled reorders at each boundary). */
    uint32_t mixed;
    EXPECT(vgg_layer_set_parse("conv2,conv5,fc1,fc3", &mixed) == 0);
    EXPECT(mixed == (1u << 1 | 1u << 4 | 1u << VGG_MAX_CONV | 1u << (VGG_MAX_CONV + 2)));
    uint32_t none = 1;
    EXPECT(vgg_layer_set_parse("none", &none) == 0 && none == 0);
    EXPECT(vgg_layer_set_parse("conv0", &none) != 0 && vgg_layer_set_parse("fc4", &none) != 0 &&
           vgg_layer_set_parse("conv2,", &none) != 0 && vgg_layer_set_parse("conv2x", &none) != 0);
    vgg_model_options mopt = opt;
    mopt.int8_float_layers = mixed;
    vgg_model *mm = vgg_model_create(&w, &mopt, err, sizeof err);
    vgg_engine *me = mm ? vgg_engine_create(mm, 2, err, sizeof err) : NULL;
    EXPECT(me && vgg_engine_forward(me, in, N_MAX, logits, NULL, err, sizeof err) == 0);
    double worst_mixed = 0;
    for (int i = 0; i < N_MAX; i++)
        worst_mixed = fmax(worst_mixed, max_rel_diff(logits + i * 10, ref[i], 10));
    printf("int8 with conv2,conv5,fc1,fc3 in f32 vs naive f32: worst relative logit difference "
           "%.3g\n", worst_mixed);
    EXPECT(worst_mixed < 0.05);
    vgg_engine_free(me);
    vgg_model_free(mm);
    /* Clips: the largest value, a percentile, and the least-squared-error clip, which never
     * exceeds the largest value and below it trades clipped outliers for a finer step. */
    vgg_calib_method how;
    float clip_max[VGG_N_LAYERS], clip_p[VGG_N_LAYERS];
    EXPECT(vgg_calib_method_parse("max", &how) == 0 && how.kind == VGG_CALIB_MAX);
    EXPECT(vgg_calibrate(&w, in, N_MAX, 1, &how, clip_max, err, sizeof err) == 0);
    EXPECT(vgg_calib_method_parse("p99.5", &how) == 0 && how.kind == VGG_CALIB_PERCENTILE &&
           how.percentile == 99.5);
    EXPECT(vgg_calibrate(&w, in, N_MAX, 1, &how, clip_p, err, sizeof err) == 0);
    EXPECT(vgg_calib_method_parse("p0", &how) != 0 && vgg_calib_method_parse("p101", &how) != 0 &&
           vgg_calib_method_parse("mean", &how) != 0 && vgg_calib_method_parse("p", &how) != 0);
    int below = 0;
    for (int l = 0; l < VGG_N_LAYERS; l++) {
        if (clip_max[l] == 0) {
            EXPECT(act_max[l] == 0 && clip_p[l] == 0); /* a layer the model lacks */
            continue;
        }
        EXPECT(act_max[l] > 0 && act_max[l] <= clip_max[l]);
        EXPECT(clip_p[l] > 0 && clip_p[l] <= clip_max[l]);
        below += act_max[l] < clip_max[l];
    }
    EXPECT(below > 0);
    /* Without calibration int8 is refused, not guessed. */
    vgg_model_options bare = {.precision = VGG_PRECISION_INT8, .max_batch = 1};
    EXPECT(vgg_model_create(&w, &bare, err, sizeof err) == NULL);
    vgg_engine_free(e);
    vgg_model_free(m);
    vgg_weights_free(&w);
    free(in);
}

/* int8 Winograd against the naive f32 pass and against int8 direct, on a half-width VGG16
 * (32..256 channels, so conv4_1 to conv5_3 have the 256 input channels int8 Winograd needs):
 * the plan runs oneDNN's int8 Winograd kernel on exactly those layers, and its logits stay
 * near f32's. Its source transform keeps 6 of the u8 source's 8 bits (engine_weights.c,
 * INT8_WINOGRAD_SRC_MAX) on six layers in a row, so its error here is about three times
 * direct's (measured: direct 0.077, Winograd 0.256; a wrong scale or a wrapped transform
 * gives errors of order 1). On full VGG16 over 209 inputs the ratio is 1.3 (docs/engine.md). */
static void check_int8_winograd(void) {
    vgg_config cfg;
    EXPECT(vgg_config_init_reduced(&cfg, "vgg16", 2, 64, 32, 10));
    vgg_weights w;
    EXPECT(vgg_weights_generate(&w, &cfg, 3) == 0);
    scale_classifier(&w);
    const size_t per = (size_t)3 * cfg.input_hw * cfg.input_hw;
    float *in = malloc(per * N_MAX * sizeof(float));
    EXPECT(in != NULL);
    if (!in) return;
    vgg_calibration_images(in, N_MAX, cfg.input_hw, 9);
    float ref[N_MAX][10], act_max[VGG_N_LAYERS];
    naive_logits(&w, in, ref);
    char err[512];
    EXPECT(vgg_calibrate(&w, in, N_MAX, 2, NULL, act_max, err, sizeof err) == 0);
    double worst[2] = {0, 0};
    for (int a = 0; a < 2; a++) {
        vgg_model_options opt = {.algo = a ? VGG_ALGO_WINOGRAD : VGG_ALGO_DIRECT,
                                 .precision = VGG_PRECISION_INT8, .max_batch = N_MAX,
                                 .act_max = act_max};
        vgg_model *m = vgg_model_create(&w, &opt, err, sizeof err);
        vgg_engine *e = m ? vgg_engine_create(m, 2, err, sizeof err) : NULL;
        float logits[N_MAX * 10];
        EXPECT(e && vgg_engine_forward(e, in, N_MAX, logits, NULL, err, sizeof err) == 0);
        for (int i = 0; e && i < N_MAX; i++)
            worst[a] = fmax(worst[a], max_rel_diff(logits + i * 10, ref[i], 10));
        char *plan = e ? vgg_engine_describe(e, N_MAX) : NULL;
        if (plan) expect_conv_kernels(&cfg, &opt, plan);
        EXPECT(plan && (strstr(plan, "int8_wino") != NULL) == (a == 1));
        free(plan);
        vgg_engine_free(e);
        vgg_model_free(m);
    }
    printf("int8 vs naive f32, half-width vgg16: worst relative logit difference direct %.3g, "
           "winograd %.3g\n", worst[0], worst[1]);
    EXPECT(worst[0] < 0.1);
    EXPECT(worst[1] < 0.3);
    vgg_weights_free(&w);
    free(in);
}

/* Usage: test_engine_naive            every variant in direct, bf16, int8, two engines at once
 *        test_engine_naive winograd   the Winograd variants; exit 77 (ctest's skip) where
 *                                     oneDNN has no Winograd kernels, after checking the
 *                                     direct fallback's numbers */
int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "winograd") == 0) {
        check_config("vgg16", 16, VGG_ALGO_WINOGRAD, VGG_FC1_FLAT, VGG_PRECISION_F32);
        if (!winograd_kernels()) { /* nor bf16 kernels */
            if (test_failed) return test_summary();
            printf("SKIPPED: no AVX-512 (oneDNN's CPU ISA is below avx512_core), so no Winograd "
                   "kernels: only f32 Winograd's fallback to direct was checked\n");
            return 77;
        }
        /* bf16 + Winograd runs layers of >= 128 input channels in f32 Winograd, so it needs
         * the wider variant (16..128 channels) to mix both, with reorders at the boundaries. */
        check_config("vgg16", 4, VGG_ALGO_WINOGRAD, VGG_FC1_FLAT, VGG_PRECISION_BF16);
        check_explain(16, VGG_ALGO_WINOGRAD, VGG_FC1_FLAT, VGG_PRECISION_F32, false);
        check_explain(4, VGG_ALGO_WINOGRAD, VGG_FC1_FLAT, VGG_PRECISION_BF16, false);
        check_int8_winograd();
        return test_summary();
    }
    static const char *const names[] = {"vgg11", "vgg16", "vgg19"};
    for (int i = 0; i < 3; i++)
        check_config(names[i], 16, VGG_ALGO_DIRECT, VGG_FC1_FLAT, VGG_PRECISION_F32);
    check_config("vgg16", 16, VGG_ALGO_DIRECT, VGG_FC1_4D, VGG_PRECISION_F32);
    check_config("vgg16", 16, VGG_ALGO_DIRECT, VGG_FC1_FLAT, VGG_PRECISION_BF16);
    check_concurrent_engines();
    check_int8();
    check_explain(16, VGG_ALGO_DIRECT, VGG_FC1_FLAT, VGG_PRECISION_F32, false);
    check_explain(16, VGG_ALGO_DIRECT, VGG_FC1_4D, VGG_PRECISION_F32, false);
    check_explain(16, VGG_ALGO_DIRECT, VGG_FC1_FLAT, VGG_PRECISION_BF16, false);
    check_explain(16, VGG_ALGO_DIRECT, VGG_FC1_FLAT, VGG_PRECISION_F32, true);
    check_explain(16, VGG_ALGO_DIRECT, VGG_FC1_4D, VGG_PRECISION_F32, true);
    check_explain(16, VGG_ALGO_DIRECT, VGG_FC1_FLAT, VGG_PRECISION_BF16, true);
    check_explain_int8_refused();
    return test_summary();
}
