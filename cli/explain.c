/* explain.c - `vggserve explain`: Grad-CAM maps for images (or a preprocessed .npy), JSON lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"
#include "heatmap.h"
#include "labels.h"

#define MAX_INPUTS 4096

/* One JSON line: the explained class, its probability, the map as hw rows of hw numbers
 * (row 0 is the top of the network's view of the image) and the picture written, if any.
 * Returns 0, or -1 after printing an error (out of memory). */
static int print_explanation(const char *file, const char *label, int class_id,
                             float probability, const float *map, int hw, const char *png) {
    json_t *grid = json_array();
    for (int y = 0; y < hw; y++) {
        json_t *row = json_array();
        for (int x = 0; x < hw; x++) json_array_append_new(row, json_real(map[y * hw + x]));
        json_array_append_new(grid, row);
    }
    json_t *o = json_pack("{s:s, s:i, s:s?, s:f, s:o}", "file", file, "class_id", class_id,
                          "label", label, "probability", (double)probability,
                          "grid", grid);
    if (png) json_object_set_new(o, "png", json_string(png));
    /* Floats round-trip; NULL if any part failed. */
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(o);
    if (!s) {
        fprintf(stderr, "error: %s: out of memory\n", file);
        return -1;
    }
    puts(s);
    free(s);
    return 0;
}

/* What each batch is asked: every image's class (or VGG_EXPLAIN_TOP1), the map's side, and
 * where pictures go (NULL: none). */
typedef struct {
    int class_id;
    int n_classes;
    const vgg_labels *labels;
    int hw;
    const char *png;
} explain_request;

/* The picture path of the k-th image explained (from 0): --png itself for a single input,
 * else with "-<k + 1>" before its extension (out.png -> out-1.png, out-2.png ...); the JSON
 * line says which file each is. */
static void png_path(const char *base, int k, int n_rows, char *out, size_t cap) {
    if (n_rows == 1) {
        snprintf(out, cap, "%s", base);
        return;
    }
    const char *dot = strrchr(base, '.'), *slash = strrchr(base, '/');
    int stem = dot && (!slash || dot > slash) ? (int)(dot - base) : (int)strlen(base);
    snprintf(out, cap, "%.*s-%d%s", stem, base, k + 1, base + stem);
}

/* The picture of one explanation (heatmap_explanation_png) into path. Returns 0 or -1. */
static int write_png(const char *path, preprocess_mode mode, const float *tensor, int image_hw,
                     const float *map, int hw) {
    size_t len;
    unsigned char *png = heatmap_explanation_png(mode, tensor, image_hw, map, hw, &len);
    FILE *f = png ? fopen(path, "wb") : NULL;
    int ok = f && fwrite(png, 1, len, f) == len;
    if (f && fclose(f) != 0) ok = 0;
    if (!ok) fprintf(stderr, "error: cannot write %s\n", path);
    free(png);
    return ok ? 0 : -1;
}

/* Every row through the engine, batch at a time, one JSON line each. Returns the exit status. */
static int run_batches(const cli_inputs *src, vgg_engine *e, int batch, const explain_request *rq) {
    const size_t map_floats = (size_t)rq->hw * rq->hw;
    float *in = malloc(src->per_image * batch * sizeof(float));
    float *probs = malloc((size_t)batch * rq->n_classes * sizeof(float));
    float *maps = malloc(batch * map_floats * sizeof(float));
    int *classes = malloc((size_t)batch * sizeof(int)), *explained = malloc((size_t)batch * sizeof(int));
    cli_row_name *names = malloc((size_t)batch * sizeof *names);
    char err[1024];
    int status = 0, explained_so_far = 0;
    if (!in || !probs || !maps || !classes || !explained || !names) {
        fprintf(stderr, "error: out of memory for a batch of %d\n", batch);
        status = 1;
        goto done;
    }
    for (int i = 0; i < batch; i++) classes[i] = rq->class_id;
    for (int next = 0; next < src->n_rows;) {
        int n = cli_fill_batch(src, &next, batch, in, names, &status);
        if (n == 0) continue;
        if (vgg_engine_explain(e, in, n, NULL, probs, classes, maps, explained, err, sizeof err) != 0) {
            fprintf(stderr, "error: explanation: %s\n", err);
            status = 1;
            break;
        }
        for (int i = 0; i < n; i++) {
            char path[4096];
            if (rq->png) {
                png_path(rq->png, explained_so_far++, src->n_rows, path, sizeof path);
                if (write_png(path, src->mode, in + i * src->per_image, src->hw,
                              maps + i * map_floats, rq->hw) != 0)
                    status = 1;
            }
            const int c = explained[i];
            if (print_explanation(names[i], vgg_labels_name(rq->labels, c), c,
                                  probs[(size_t)i * rq->n_classes + c], maps + i * map_floats,
                                  rq->hw, rq->png ? path : NULL) != 0)
                status = 1;
        }
        fflush(stdout);
    }
done:
    free(in);
    free(probs);
    free(maps);
    free(classes);
    free(explained);
    free(names);
    return status;
}

int cmd_explain(int argc, char **argv) {
    const char *class_s = NULL, *png = NULL;
    cli_run_flags rf = CLI_RUN_FLAGS_DEFAULT;
    const cli_option opts[] = {
        CLI_RUN_OPTIONS(rf),
        {"class-id", "C", "the class to explain, 0..999 (default: each image's top-1)", &class_s, NULL},
        {"png", "OUT.png", "also write each image's heat map over what the network saw (several "
                           "images: OUT-1.png, OUT-2.png ...)", &png, NULL},
    };
    const char *inputs[MAX_INPUTS];
    int n_inputs;
    int rc = cli_parse(argc, argv, opts, sizeof opts / sizeof opts[0],
                       "usage: vggserve explain [--weights FILE] [--class-id C] [--png OUT.png] [options] IMAGE...\n"
                       "       vggserve explain [--weights FILE] [--class-id C] [options] --tensor FILE.npy\n"
                       "Prints one JSON object per image: {\"file\", \"class_id\", \"label\", "
                       "\"probability\", \"grid\"}: the Grad-CAM map of the last convolution (14 x 14 "
                       "for VGG16), in [0, 1]. Precision f32 or bf16 (int8 has no explanations).",
                       inputs, MAX_INPUTS, &n_inputs);
    if (rc != 0) return rc < 0 ? 2 : 0;
    long class_id = VGG_EXPLAIN_TOP1;
    cli_run_settings rs;
    if ((class_s && cli_parse_int("class-id", class_s, 0, LABELS_COUNT - 1, &class_id)) ||
        cli_run_options(&rf, n_inputs, &rs) != 0)
        return 2;
    if (rs.spec.precision == VGG_PRECISION_INT8) {
        fprintf(stderr, "error: explanations are not supported in int8 (use f32 or bf16)\n");
        return 2;
    }
    cli_run run;
    int status = cli_run_open(&run, &rs, inputs, n_inputs);
    if (status == 0) {
        const explain_request rq = {(int)class_id, vgg_model_config(run.m)->n_classes,
                                    &run.labels, vgg_model_explain_hw(run.m), png};
        status = run_batches(&run.src, run.e, rs.batch, &rq);
    }
    cli_run_close(&run);
    return status;
}
