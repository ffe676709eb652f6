/* accuracy.c - `vggserve accuracy`: one mode against f32 direct on the same weights and inputs.
 *
 * Inputs are the given photos plus --random deterministic variations of them (brightness and
 * contrast scaled, Gaussian noise added, from SplitMix64), so the comparison covers realistic
 * and off-distribution activations alike. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"
#include "preprocess.h"
#include "topk.h"

/* What the comparison accumulates over every input. */
typedef struct {
    int inputs, top1_agree, top5_overlap;
    double max_prob_diff, err_sq, spread_sq, max_flip_margin;
    /* f32's margin per input: (p1 - p2) / p1 of its first two classes. A flip inside a small
     * margin is a near-tie that any rounding may break; a flip across a large one is an error. */
    double *margins;
} accuracy_tally;

/* Inputs start..start+n-1 into batch: the photos first, then variations of them (contrast in
 * [0.5, 1.5), Gaussian noise of sigma 0.3) drawn from *state. */
static void make_inputs(float *batch, const float *photos, int n_photos, int start, int n,
                        size_t per, uint64_t *state) {
    for (int k = 0; k < n; k++) {
        int idx = start + k;
        float *x = batch + k * per;
        memcpy(x, photos + (idx % n_photos) * per, per * sizeof(float));
        if (idx < n_photos) continue;
        double contrast = 0.5 + (vgg_splitmix64(state) >> 11) * (1.0 / 9007199254740992.0);
        for (size_t i = 0; i < per; i++)
            x[i] = (float)(x[i] * contrast + 0.3 * vgg_normal_from_u64(vgg_splitmix64(state)));
    }
}

/* One input's reference and candidate probabilities (pr, pc) and logits (lr, lc). */
static void tally_input(accuracy_tally *t, const float *pr, const float *pc, const float *lr,
                        const float *lc, int nc) {
    int tr[5], tc[5];
    topk_indices(pr, nc, 5, tr);
    topk_indices(pc, nc, 5, tc);
    t->top1_agree += tr[0] == tc[0];
    t->margins[t->inputs++] = (pr[tr[0]] - pr[tr[1]]) / pr[tr[0]];
    const double crossed = (pr[tr[0]] - pr[tc[0]]) / pr[tr[0]]; /* 0 when they agree */
    if (crossed > t->max_flip_margin) t->max_flip_margin = crossed;
    for (int a = 0; a < 5; a++)
        for (int b = 0; b < 5; b++) t->top5_overlap += tr[a] == tc[b];
    for (int c = 0; c < nc; c++) {
        double d = fabs((double)pr[c] - pc[c]);
        if (d > t->max_prob_diff) t->max_prob_diff = d;
    }
    /* Logit error relative to how much the logits differ between classes, both taken about
     * the input's mean logit (softmax ignores a shift): a numerics measure that, unlike top-1
     * agreement, does not depend on how close the classes happen to be. */
    double mean_ref = 0, mean_err = 0;
    for (int c = 0; c < nc; c++) {
        mean_ref += lr[c];
        mean_err += (double)lc[c] - lr[c];
    }
    mean_ref /= nc;
    mean_err /= nc;
    for (int c = 0; c < nc; c++) {
        double r = lr[c] - mean_ref, d = (double)lc[c] - lr[c] - mean_err;
        t->spread_sq += r * r;
        t->err_sq += d * d;
    }
}

/* Runs total inputs (made by make_inputs, 8 at a time) through both engines into t. */
static int compare(vgg_engine *ref_e, vgg_engine *cand_e, const float *photos, int n_photos,
                   int total, size_t per, int nc, accuracy_tally *t, char *err, size_t errlen) {
    float *batch = malloc(per * 8 * sizeof(float));
    float *p_ref = malloc((size_t)8 * nc * sizeof(float)), *p_cand = malloc((size_t)8 * nc * sizeof(float));
    float *l_ref = malloc((size_t)8 * nc * sizeof(float)), *l_cand = malloc((size_t)8 * nc * sizeof(float));
    uint64_t state = 0x5eed;
    int rc = batch && p_ref && p_cand && l_ref && l_cand && t->margins ? 0 : -1;
    if (rc) snprintf(err, errlen, "out of memory");
    for (int start = 0; rc == 0 && start < total; start += 8) {
        int n = total - start < 8 ? total - start : 8;
        make_inputs(batch, photos, n_photos, start, n, per, &state);
        rc = vgg_engine_forward(ref_e, batch, n, l_ref, p_ref, err, errlen);
        if (rc == 0) rc = vgg_engine_forward(cand_e, batch, n, l_cand, p_cand, err, errlen);
        for (int k = 0; rc == 0 && k < n; k++)
            tally_input(t, p_ref + k * nc, p_cand + k * nc, l_ref + k * nc, l_cand + k * nc, nc);
    }
    free(batch);
    free(p_ref);
    free(p_cand);
    free(l_ref);
    free(l_cand);
    return rc;
}

static void print_report(accuracy_tally *t, const cli_model_spec *cand, bool json) {
    const int total = t->inputs;
    double agree = (double)t->top1_agree / total, overlap = t->top5_overlap / (5.0 * total);
    double rel_logit_err = t->spread_sq > 0 ? sqrt(t->err_sq / t->spread_sq) : 0;
    qsort(t->margins, (size_t)total, sizeof *t->margins, cli_cmp_double);
    const double median_margin = t->margins[total / 2];
    const char *algo = vgg_algo_name(cand->algo), *precision = vgg_precision_name(cand->precision);
    if (json)
        printf("{\"algo\": \"%s\", \"precision\": \"%s\", \"inputs\": %d, \"top1_agreement\": %.4f, "
               "\"top5_overlap\": %.4f, \"max_abs_prob_diff\": %.3g, \"rel_logit_err\": %.3g, "
               "\"median_f32_margin\": %.3g, \"max_flipped_margin\": %.3g}\n",
               algo, precision, total, agree, overlap, t->max_prob_diff, rel_logit_err,
               median_margin, t->max_flip_margin);
    else
        printf("%s %s vs f32 direct on %d inputs: top-1 agreement %.2f%%, top-5 overlap %.2f%%, "
               "max |prob diff| %.3g, relative logit error %.3g; f32's top-2 margin: median %.3g, "
               "largest flipped %.3g\n",
               algo, precision, total, 100 * agree, 100 * overlap, t->max_prob_diff,
               rel_logit_err, median_margin, t->max_flip_margin);
}

/* The reference (f32 direct) and the candidate, two models over one set of weights. */
typedef struct {
    vgg_weights w;
    vgg_model *ref_m, *cand_m;
    vgg_engine *ref_e, *cand_e;
} model_pair;

static void pair_close(model_pair *p) {
    vgg_engine_free(p->ref_e);
    vgg_engine_free(p->cand_e);
    vgg_model_free(p->ref_m);
    vgg_model_free(p->cand_m);
    vgg_weights_free(&p->w);
}

/* Returns 0, or -1 after printing (pair_close is safe either way). */
static int pair_open(model_pair *p, const cli_model_spec *ref, const cli_model_spec *cand,
                     int threads) {
    memset(p, 0, sizeof *p);
    if (cli_build_model(ref, &p->w, &p->ref_m, true) != 0) {
        memset(&p->w, 0, sizeof p->w); /* cli_build_model frees what it held */
        return -1;
    }
    char err[512];
    vgg_model_options copt;
    float act_max[VGG_N_LAYERS]; /* read while the candidate is created */
    if (cli_model_options(cand, &p->w, act_max, &copt, false) != 0) return -1;
    p->cand_m = vgg_model_create(&p->w, &copt, err, sizeof err);
    p->ref_e = vgg_engine_create(p->ref_m, threads, err, sizeof err);
    p->cand_e = p->cand_m ? vgg_engine_create(p->cand_m, threads, err, sizeof err) : NULL;
    if (p->cand_m && p->ref_e && p->cand_e) return 0;
    fprintf(stderr, "error: %s\n", err);
    return -1;
}

int cmd_accuracy(int argc, char **argv) {
    const char *weights = NULL, *model = NULL, *algo = NULL, *precision = "bf16",
               *random_s = "200", *seed_s = "1", *threads_s = "0", *float_layers = NULL;
    bool json = false;
    cli_decode_flags dflags = CLI_DECODE_FLAGS_DEFAULT;
    const cli_option opts[] = {
        {"weights", "FILE", "safetensors weights (default: generated)", &weights, NULL},
        {"seed", "N", "seed for generated weights (default 1)", &seed_s, NULL},
        {"model", "NAME", "vgg11|vgg13|vgg16|vgg19 (default vgg16)", &model, NULL},
        {"algo", "ALGO", "candidate's convolution algorithm (default direct)", &algo, NULL},
        {"precision", "P", "candidate's precision (default bf16)", &precision, NULL},
        {"random", "N", "deterministic variations of the photos to add (default 200)", &random_s, NULL},
        {"threads", "T", "oneDNN threads (default: all cores)", &threads_s, NULL},
        {"int8-float-layers", "LIST", "int8: layers kept in f32, e.g. conv2,fc3 (default none)",
         &float_layers, NULL},
        {"json", NULL, "one JSON line", NULL, &json},
        CLI_DECODE_OPTIONS(dflags),
    };
    const char *images[64];
    int n_images;
    int rc = cli_parse(argc, argv, opts, sizeof opts / sizeof opts[0],
                       "usage: vggserve accuracy [--precision bf16] [--algo winograd] "
                       "[--random 200] IMAGE...\n"
                       "Compares a mode with f32 direct: top-1 agreement, top-5 overlap, max abs "
                       "probability difference.",
                       images, sizeof images / sizeof images[0], &n_images);
    if (rc != 0) return rc < 0 ? 2 : 0;
    image_decode_options dopt;
    if (cli_decode_options(&dflags, &dopt) != 0) return 2;
    long n_random, seed, threads;
    if (cli_parse_int("random", random_s, 0, 100000, &n_random) ||
        cli_parse_int("seed", seed_s, 0, 0x7fffffffffffffffL, &seed) ||
        cli_parse_int("threads", threads_s, 0, 1024, &threads))
        return 2;
    if (n_images == 0) {
        fprintf(stderr, "error: give at least one IMAGE to derive inputs from\n");
        return 2;
    }
    cli_model_spec ref_spec = {0}, cand_spec = {0};
    ref_spec.seed = cand_spec.seed = (uint64_t)seed;
    ref_spec.max_batch = cand_spec.max_batch = 8;
    if (cli_model_spec_parse(&ref_spec, weights, model, "direct", "f32") != 0 ||
        cli_model_spec_parse(&cand_spec, weights, model, algo, precision) != 0 ||
        cli_int8_float_layers_parse(&cand_spec, float_layers) != 0)
        return 2;
    model_pair pair;
    if (pair_open(&pair, &ref_spec, &cand_spec, (int)threads) != 0) {
        pair_close(&pair);
        return 1;
    }
    const vgg_config *cfg = vgg_model_config(pair.ref_m);
    const size_t per = (size_t)3 * cfg->input_hw * cfg->input_hw;
    const int total = n_images + (int)n_random, nc = cfg->n_classes;
    float *photos = malloc(per * (n_images > 0 ? n_images : 1) * sizeof(float));
    preprocess_mode mode; /* what the weights were trained with */
    preprocess_resolve(PREPROCESS_SETTING_AUTO, pair.w.preprocess, &mode);
    accuracy_tally tally = {.margins = malloc((size_t)(total > 0 ? total : 1) * sizeof(double))};
    char err[512];
    int status = !photos || !tally.margins;
    if (status) fprintf(stderr, "error: out of memory for %d inputs\n", total);
    else status = cli_load_photos(images, n_images, mode, cfg->input_hw, &dopt, photos) != 0;
    if (!status && compare(pair.ref_e, pair.cand_e, photos, n_images, total, per, nc, &tally,
                           err, sizeof err) != 0) {
        fprintf(stderr, "error: %s\n", err);
        status = 1;
    }
    if (!status) print_report(&tally, &cand_spec, json);
    free(photos);
    free(tally.margins);
    pair_close(&pair);
    return status;
}
