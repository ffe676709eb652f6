/* classify.c - `vggserve classify`: images (or a preprocessed .npy) to JSON lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"
#include "npy.h"
#include "preprocess.h"
#include "responses.h"

#define MAX_INPUTS 4096

/* Prints one JSON line for row i of the batch results. */
static void print_result(const char *file, const float *probs, const float *logits,
                         int n_classes, int k, bool all) {
    json_t *o = json_pack("{s:s, s:o}", "file", file, "top_k", api_topk_json(probs, n_classes, k));
    if (all) {
        json_t *p = json_array(), *l = json_array();
        for (int c = 0; c < n_classes; c++) {
            json_array_append_new(p, json_real(probs[c]));
            json_array_append_new(l, json_real(logits[c]));
        }
        json_object_set_new(o, "probabilities", p);
        json_object_set_new(o, "logits", l);
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
    puts(s);
    free(s);
    json_decref(o);
}

/* Every row through the engine, batch at a time, one JSON line each. Returns the exit status. */
static int run_batches(const cli_inputs *src, vgg_engine *e, int batch, int n_classes,
                       int k, bool all) {
    float *in = malloc(src->per_image * batch * sizeof(float));
    float *probs = malloc((size_t)batch * n_classes * sizeof(float));
    float *logits = malloc((size_t)batch * n_classes * sizeof(float));
    cli_row_name *names = malloc((size_t)batch * sizeof *names);
    char err[1024];
    int status = 0;
    for (int next = 0; next < src->n_rows;) {
        int n = cli_fill_batch(src, &next, batch, in, names, &status);
        if (n == 0) continue;
        if (vgg_engine_forward(e, in, n, logits, probs, err, sizeof err) != 0) {
            fprintf(stderr, "error: forward pass: %s\n", err);
            status = 1;
            break;
        }
        for (int i = 0; i < n; i++)
            print_result(names[i], probs + (size_t)i * n_classes, logits + (size_t)i * n_classes,
                         n_classes, k, all);
        fflush(stdout);
    }
    free(in);
    free(probs);
    free(logits);
    free(names);
    return status;
}

/* Options, their checks, the inputs, the model, then run_batches: longer than 80 lines only by
 * its declarative option table and one check per option. */
int cmd_classify(int argc, char **argv) {
    const char *weights = NULL, *model = NULL, *topk_s = "5", *algo = NULL, *threads_s = "0",
               *precision = NULL, *tensor = NULL, *batch_s = "8", *mode_s = "auto",
               *seed_s = "1";
    bool all = false;
    cli_decode_flags dflags = CLI_DECODE_FLAGS_DEFAULT;
    const cli_option opts[] = {
        {"weights", "FILE", "safetensors weights (default: generated from --seed)", &weights, NULL},
        {"seed", "N", "seed for generated weights when --weights is absent (default 1)", &seed_s, NULL},
        {"model", "NAME", "vgg11|vgg13|vgg16|vgg19 (default vgg16)", &model, NULL},
        {"top-k", "K", "classes per image (default 5)", &topk_s, NULL},
        {"algo", "ALGO", "direct|winograd convolutions (default direct)", &algo, NULL},
        {"precision", "P", "f32|bf16|int8 (default f32)", &precision, NULL},
        {"threads", "T", "oneDNN threads (default: all cores)", &threads_s, NULL},
        {"batch", "B", "images per forward pass (default 8)", &batch_s, NULL},
        {"mode", "MODE", "preprocessing: auto|torchvision|caffe (default auto: what the weights "
                         "file says, else torchvision)", &mode_s, NULL},
        {"tensor", "FILE.npy", "classify a preprocessed float32 (N,3,224,224) array", &tensor, NULL},
        {"all", NULL, "also print all probabilities and logits", NULL, &all},
        CLI_DECODE_OPTIONS(dflags),
    };
    const char *inputs[MAX_INPUTS];
    int n_inputs;
    int rc = cli_parse(argc, argv, opts, sizeof opts / sizeof opts[0],
                       "usage: vggserve classify [--weights FILE] [options] IMAGE...\n"
                       "       vggserve classify [--weights FILE] [options] --tensor FILE.npy\n"
                       "Prints one JSON object per image: {\"file\", \"top_k\": [{class_id, wnid, "
                       "label, probability}]}.",
                       inputs, MAX_INPUTS, &n_inputs);
    if (rc != 0) return rc < 0 ? 2 : 0;
    image_decode_options dopt;
    if (cli_decode_options(&dflags, &dopt) != 0) return 2;
    long k, threads, batch, seed;
    if (cli_parse_int("top-k", topk_s, 1, 1000, &k) || cli_parse_int("threads", threads_s, 0, 1024, &threads) ||
        cli_parse_int("batch", batch_s, 1, 256, &batch) ||
        cli_parse_int("seed", seed_s, 0, 0x7fffffffffffffffL, &seed))
        return 2;
    const vgg_weights no_weights = {0}; /* only the setting's spelling is checked here */
    preprocess_mode mode;
    if (cli_preprocess_mode(mode_s, &no_weights, &mode) < 0) {
        fprintf(stderr, "error: --mode must be auto, torchvision or caffe, got '%s'\n", mode_s);
        return 2;
    }
    if (!tensor && n_inputs == 0) {
        fprintf(stderr, "error: give at least one IMAGE or --tensor FILE.npy (see --help)\n");
        return 2;
    }
    cli_model_spec spec = {0};
    spec.seed = (uint64_t)seed;
    spec.max_batch = (int)batch;
    if (cli_model_spec_parse(&spec, weights, model, algo, precision) != 0) return 2;

    cli_run run;
    int status = cli_run_open(&run, &spec, inputs, n_inputs, tensor, &dopt, mode_s, (int)threads);
    if (status == 0)
        status = run_batches(&run.src, run.e, (int)batch, vgg_model_config(run.m)->n_classes,
                             (int)k, all);
    cli_run_close(&run);
    return status;
}
