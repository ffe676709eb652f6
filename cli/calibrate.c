/* calibrate.c - `vggserve calibrate`: int8 activation ranges, stored beside the weights. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calibrate.h"
#include "cli_common.h"
#include "commands.h"
#include "preprocess.h"

/* act_max (out): w's layer ranges measured on the photos plus `generated` images made for
 * the purpose, preprocessed as the weights' metadata says. Returns 0, or -1 after printing. */
static int measure_ranges(const vgg_weights *w, const char *const *images, int n_images,
                          int generated, const image_decode_options *dopt,
                          const vgg_calib_method *method, float act_max[VGG_N_LAYERS]) {
    const int n = n_images + generated, hw = w->cfg.input_hw;
    const size_t per = (size_t)3 * hw * hw;
    float *inputs = malloc(per * (n > 0 ? n : 1) * sizeof(float));
    if (!inputs) {
        fprintf(stderr, "error: out of memory for %d images\n", n);
        return -1;
    }
    preprocess_mode mode; /* what the weights were trained with */
    preprocess_resolve(PREPROCESS_SETTING_AUTO, w->preprocess, &mode);
    char err[1024];
    int rc = cli_load_photos(images, n_images, mode, hw, dopt, inputs) != 0 ? -1 : 0;
    if (rc == 0) {
        vgg_calibration_images(inputs + (size_t)n_images * per, generated, hw, 1);
        rc = vgg_calibrate(w, inputs, n, 0, method, act_max, err, sizeof err);
        if (rc != 0) fprintf(stderr, "error: %s\n", err);
    }
    free(inputs);
    return rc;
}

int cmd_calibrate(int argc, char **argv) {
    const char *weights = NULL, *model = "vgg16", *out = NULL, *generated_s = "32", *seed_s = "1",
               *method_s = "mse";
    cli_decode_flags dflags = CLI_DECODE_FLAGS_DEFAULT;
    const cli_option opts[] = {
        {"weights", "FILE", "safetensors weights (default: generated from --seed)", &weights, NULL},
        {"seed", "N", "seed for generated weights (default 1)", &seed_s, NULL},
        {"model", "NAME", "vgg11|vgg13|vgg16|vgg19 (default vgg16)", &model, NULL},
        {"generated", "N", "generated images added to the photos (default 32)", &generated_s, NULL},
        {"out", "FILE", "output (default WEIGHTS.int8.json, where int8 mode looks)", &out, NULL},
        {"method", "M", "mse|max|pNN.N: clip of least squared error (default), max, percentile",
         &method_s, NULL},
        CLI_DECODE_OPTIONS(dflags),
    };
    const char *images[256];
    int n_images;
    int rc = cli_parse(argc, argv, opts, sizeof opts / sizeof opts[0],
                       "usage: vggserve calibrate --weights FILE [--generated 32] [--method mse] [IMAGE...]\n"
                       "Measures each layer's activation range for int8 on the photos given plus\n"
                       "generated images, and stores it beside the weights.",
                       images, sizeof images / sizeof images[0], &n_images);
    if (rc != 0) return rc < 0 ? 2 : 0;
    image_decode_options dopt;
    if (cli_decode_options(&dflags, &dopt) != 0) return 2;
    long generated, seed;
    if (cli_parse_int("generated", generated_s, 0, 10000, &generated) ||
        cli_parse_int("seed", seed_s, 0, 0x7fffffffffffffffL, &seed))
        return 2;
    vgg_calib_method method;
    if (vgg_calib_method_parse(method_s, &method) != 0) {
        fprintf(stderr, "error: --method: expected mse, max or pNN.N (a percentile), got '%s'\n",
                method_s);
        return 2;
    }
    if (!out && !weights) {
        fprintf(stderr, "error: give --out when the weights are generated\n");
        return 2;
    }
    cli_model_spec spec = {0};
    spec.seed = (uint64_t)seed;
    if (cli_model_spec_parse(&spec, weights, model, NULL, NULL) != 0) return 2;
    vgg_config cfg;
    vgg_config_init(&cfg, spec.model);
    vgg_weights w;
    char err[1024];
    if (weights ? vgg_weights_load(&w, &cfg, weights, err, sizeof err) != 0
                : vgg_weights_generate(&w, &cfg, spec.seed) != 0) {
        fprintf(stderr, "error: %s\n", weights ? err : "out of memory");
        return 1;
    }
    const int n = n_images + (int)generated;
    float act_max[VGG_N_LAYERS];
    if (measure_ranges(&w, images, n_images, (int)generated, &dopt, &method, act_max) != 0) {
        vgg_weights_free(&w);
        return 1;
    }
    char path[4200];
    if (out) snprintf(path, sizeof path, "%s", out);
    else cli_calibration_path(weights, path, sizeof path);
    rc = vgg_calibration_save(path, &w, n, method, act_max, err, sizeof err);
    if (rc != 0) fprintf(stderr, "error: %s\n", err);
    else fprintf(stderr, "wrote %s: ranges of %d layers from %d photos + %ld generated images\n",
                 path, w.cfg.n_conv + w.cfg.n_fc, n_images, generated);
    vgg_weights_free(&w);
    return rc ? 1 : 0;
}
