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

/* Prints one JSON line for row i of the batch results. Returns 0, or -1 after printing an
 * error (out of memory). */
static int print_result(const char *file, const vgg_labels *labels, const float *probs,
                        const float *logits, int n_classes, int k, bool all) {
    json_t *o = json_pack("{s:s, s:o}", "file", file, "top_k",
                          api_topk_json(labels, probs, n_classes, k));
    if (all) {
        json_t *p = json_array(), *l = json_array();
        for (int c = 0; c < n_classes; c++) {
            json_array_append_new(p, json_real(probs[c]));
            json_array_append_new(l, json_real(logits[c]));
        }
        json_object_set_new(o, "probabilities", p);
        json_object_set_new(o, "logits", l);
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9)); /* NULL if any part failed */
    json_decref(o);
    if (!s) {
        fprintf(stderr, "error: %s: out of memory\n", file);
        return -1;
    }
    puts(s);
    free(s);
    return 0;
}

/* Every row through the engine, batch at a time, one JSON line each. Returns the exit status. */
static int run_batches(const cli_inputs *src, vgg_engine *e, const vgg_labels *labels,
                       int batch, int n_classes, int k, bool all) {
    float *in = malloc(src->per_image * batch * sizeof(float));
    float *probs = malloc((size_t)batch * n_classes * sizeof(float));
    float *logits = malloc((size_t)batch * n_classes * sizeof(float));
    cli_row_name *names = malloc((size_t)batch * sizeof *names);
    char err[1024];
    int status = 0;
    if (!in || !probs || !logits || !names) {
        fprintf(stderr, "error: out of memory for a batch of %d\n", batch);
        status = 1;
        goto done;
    }
    for (int next = 0; next < src->n_rows;) {
        int n = cli_fill_batch(src, &next, batch, in, names, &status);
        if (n == 0) continue;
        if (vgg_engine_forward(e, in, n, logits, probs, err, sizeof err) != 0) {
            fprintf(stderr, "error: forward pass: %s\n", err);
            status = 1;
            break;
        }
        for (int i = 0; i < n; i++)
            if (print_result(names[i], labels, probs + (size_t)i * n_classes,
                             logits + (size_t)i * n_classes, n_classes, k, all) != 0)
                status = 1;
        fflush(stdout);
    }
done:
    free(in);
    free(probs);
    free(logits);
    free(names);
    return status;
}

int cmd_classify(int argc, char **argv) {
    const char *topk_s = "5";
    bool all = false;
    cli_run_flags rf = CLI_RUN_FLAGS_DEFAULT;
    const cli_option opts[] = {
        CLI_RUN_OPTIONS(rf),
        {"top-k", "K", "classes per image (default 5)", &topk_s, NULL},
        {"all", NULL, "also print all probabilities and logits", NULL, &all},
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
    long k;
    cli_run_settings rs;
    if (cli_parse_int("top-k", topk_s, 1, 1000, &k) || cli_run_options(&rf, n_inputs, &rs) != 0)
        return 2;
    cli_run run;
    int status = cli_run_open(&run, &rs, inputs, n_inputs);
    if (status == 0)
        status = run_batches(&run.src, run.e, &run.labels, rs.batch,
                             vgg_model_config(run.m)->n_classes, (int)k, all);
    cli_run_close(&run);
    return status;
}
