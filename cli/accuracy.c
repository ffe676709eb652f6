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
                       images, 64, &n_images);
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
    vgg_weights w;
    vgg_model *ref_m;
    if (cli_build_model(&ref_spec, &w, &ref_m, true) != 0) return 1;
    char err[512];
    vgg_model_options copt;
    float act_max[VGG_N_LAYERS];
    if (cli_model_options(&cand_spec, &w, act_max, &copt, false) != 0) return 1;
    vgg_model *cand_m = vgg_model_create(&w, &copt, err, sizeof err);
    vgg_engine *ref_e = vgg_engine_create(ref_m, (int)threads, err, sizeof err);
    vgg_engine *cand_e = cand_m ? vgg_engine_create(cand_m, (int)threads, err, sizeof err) : NULL;
    if (!cand_m || !ref_e || !cand_e) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    const vgg_config *cfg = vgg_model_config(ref_m);
    const size_t per = (size_t)3 * cfg->input_hw * cfg->input_hw;
    const int total = n_images + (int)n_random, nc = cfg->n_classes;
    float *photos = malloc(per * n_images * sizeof(float));
    preprocess_mode mode; /* what the weights were trained with */
    cli_preprocess_mode("auto", &w, &mode);
    if (cli_load_photos(images, n_images, mode, cfg->input_hw, &dopt, photos) != 0) return 1;
    float *batch = malloc(per * 8 * sizeof(float));
    float *p_ref = malloc((size_t)8 * nc * sizeof(float)), *p_cand = malloc((size_t)8 * nc * sizeof(float));
    float *l_ref = malloc((size_t)8 * nc * sizeof(float)), *l_cand = malloc((size_t)8 * nc * sizeof(float));
    int top1_agree = 0, top5_overlap = 0;
    double max_prob_diff = 0, err_sq = 0, spread_sq = 0, max_flip_margin = 0;
    /* f32's margin per input: (p1 - p2) / p1 of its first two classes. A flip inside a small
     * margin is a near-tie that any rounding may break; a flip across a large one is an error. */
    double *margins = malloc((size_t)total * sizeof(double));
    uint64_t state = 0x5eed;
    for (int start = 0; start < total; start += 8) {
        int n = total - start < 8 ? total - start : 8;
        for (int k = 0; k < n; k++) {
            int idx = start + k;
            float *x = batch + k * per;
            memcpy(x, photos + (idx % n_images) * per, per * sizeof(float));
            if (idx >= n_images) { /* a variation: contrast in [0.5, 1.5), noise sigma 0.3 */
                double contrast = 0.5 + (vgg_splitmix64(&state) >> 11) * (1.0 / 9007199254740992.0);
                for (size_t i = 0; i < per; i++)
                    x[i] = (float)(x[i] * contrast + 0.3 * vgg_normal_from_u64(vgg_splitmix64(&state)));
            }
        }
        if (vgg_engine_forward(ref_e, batch, n, l_ref, p_ref, err, sizeof err) != 0 ||
            vgg_engine_forward(cand_e, batch, n, l_cand, p_cand, err, sizeof err) != 0) {
            fprintf(stderr, "error: %s\n", err);
            return 1;
        }
        for (int k = 0; k < n; k++) {
            int tr[5], tc[5];
            topk_indices(p_ref + k * nc, nc, 5, tr);
            topk_indices(p_cand + k * nc, nc, 5, tc);
            top1_agree += tr[0] == tc[0];
            const float *pr = p_ref + k * nc;
            margins[start + k] = (pr[tr[0]] - pr[tr[1]]) / pr[tr[0]];
            const double crossed = (pr[tr[0]] - pr[tc[0]]) / pr[tr[0]]; /* 0 when they agree */
            if (crossed > max_flip_margin) max_flip_margin = crossed;
            for (int a = 0; a < 5; a++)
                for (int b = 0; b < 5; b++) top5_overlap += tr[a] == tc[b];
            for (int c = 0; c < nc; c++) {
                double d = fabs((double)p_ref[k * nc + c] - p_cand[k * nc + c]);
                if (d > max_prob_diff) max_prob_diff = d;
            }
            /* Logit error relative to how much the logits differ between classes, both taken
             * about the input's mean logit (softmax ignores a shift): a numerics measure that,
             * unlike top-1 agreement, does not depend on how close the classes happen to be. */
            double mean_ref = 0, mean_err = 0;
            for (int c = 0; c < nc; c++) {
                mean_ref += l_ref[k * nc + c];
                mean_err += (double)l_cand[k * nc + c] - l_ref[k * nc + c];
            }
            mean_ref /= nc;
            mean_err /= nc;
            for (int c = 0; c < nc; c++) {
                double r = l_ref[k * nc + c] - mean_ref;
                double d = (double)l_cand[k * nc + c] - l_ref[k * nc + c] - mean_err;
                spread_sq += r * r;
                err_sq += d * d;
            }
        }
    }
    double agree = (double)top1_agree / total, overlap = top5_overlap / (5.0 * total);
    double rel_logit_err = spread_sq > 0 ? sqrt(err_sq / spread_sq) : 0;
    qsort(margins, (size_t)total, sizeof *margins, cli_cmp_double);
    const double median_margin = margins[total / 2];
    if (json)
        printf("{\"algo\": \"%s\", \"precision\": \"%s\", \"inputs\": %d, \"top1_agreement\": %.4f, "
               "\"top5_overlap\": %.4f, \"max_abs_prob_diff\": %.3g, \"rel_logit_err\": %.3g, "
               "\"median_f32_margin\": %.3g, \"max_flipped_margin\": %.3g}\n",
               vgg_algo_name(cand_spec.algo), vgg_precision_name(cand_spec.precision), total, agree,
               overlap, max_prob_diff, rel_logit_err, median_margin, max_flip_margin);
    else
        printf("%s %s vs f32 direct on %d inputs: top-1 agreement %.2f%%, top-5 overlap %.2f%%, "
               "max |prob diff| %.3g, relative logit error %.3g; f32's top-2 margin: median %.3g, "
               "largest flipped %.3g\n",
               vgg_algo_name(cand_spec.algo), vgg_precision_name(cand_spec.precision), total,
               100 * agree, 100 * overlap, max_prob_diff, rel_logit_err, median_margin,
               max_flip_margin);
    free(photos);
    free(batch);
    free(p_ref);
    free(p_cand);
    free(l_ref);
    free(l_cand);
    free(margins);
    vgg_engine_free(ref_e);
    vgg_engine_free(cand_e);
    vgg_model_free(ref_m);
    vgg_model_free(cand_m);
    vgg_weights_free(&w);
    return 0;
}
