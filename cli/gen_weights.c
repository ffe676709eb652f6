/* gen_weights.c - `vggserve gen-weights`: deterministic weights from a seed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"


int cmd_gen_weights(int argc, char **argv) {
    const char *model = "vgg16", *seed_s = NULL, *out = NULL;
    const cli_option opts[] = {
        {"model", "NAME", "vgg11|vgg13|vgg16|vgg19 (default vgg16)", &model, NULL},
        {"seed", "N", "PRNG seed (required)", &seed_s, NULL},
        {"out", "FILE", "output .safetensors path (required)", &out, NULL},
    };
    const char *pos[1];
    int n_pos;
    int rc = cli_parse(argc, argv, opts, 3,
                       "usage: vggserve gen-weights [--model vgg16] --seed N --out FILE.safetensors\n"
                       "Deterministic weights (same bytes on every machine): SplitMix64 streams,\n"
                       "Kaiming-normal (fan_out) convolutions, N(0, 0.01^2) linear weights and biases.",
                       pos, 0, &n_pos);
    if (rc != 0) return rc < 0 ? 2 : 0;
    long seed;
    if (!seed_s || !out) {
        fprintf(stderr, "error: --seed and --out are required (see --help)\n");
        return 2;
    }
    if (cli_parse_int("seed", seed_s, 0, 0x7fffffffffffffffL, &seed)) return 2;
    vgg_config cfg;
    int model_i;
    if (cli_parse_choice("model", model, vgg_model_names, &model_i) != 0) return 2;
    vgg_config_init(&cfg, vgg_model_names[model_i]);
    vgg_weights w;
    if (vgg_weights_generate(&w, &cfg, (uint64_t)seed) != 0) {
        fprintf(stderr, "error: out of memory\n");
        return 1;
    }
    const char *meta[] = {"format", "pt", "generator", "vggserve gen-weights", "model", model,
                          "seed", seed_s, NULL};
    char err[512];
    rc = vgg_weights_save(&w, out, meta, err, sizeof err);
    if (rc != 0) fprintf(stderr, "error: %s\n", err);
    else fprintf(stderr, "wrote %s: %s, %lld parameters, seed %ld\n", out, model,
                 (long long)w.n_params, seed);
    vgg_weights_free(&w);
    return rc ? 1 : 0;
}
