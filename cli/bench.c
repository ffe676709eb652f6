/* bench.c - `vggserve bench`: engine-only throughput per batch size, no HTTP.
 *
 * For each batch size: one warm-up pass (builds the plan), then timed passes until --seconds
 * have passed and at least --min-runs were made. Reports img/s of the slowest and the median
 * pass: on a noisy machine the median is the figure to quote, the min shows the spread.
 * With --explain each round times a forward pass and then an explanation of the same batch
 * (--explain-images of its images asking for a map), so both medians see the same machine. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"

/* What one timed pass runs: forward, or explain with classes[] asking (maps: its output). */
typedef struct {
    bool explain;
    const int *classes;
    float *maps;
} bench_pass;

static int run_pass(vgg_engine *e, const float *in, int n, const bench_pass *p, char *err,
                    size_t errlen) {
    return p->explain
               ? vgg_engine_explain(e, in, n, NULL, NULL, p->classes, p->maps, NULL, err, errlen)
               : vgg_engine_forward(e, in, n, NULL, NULL, err, errlen);
}

static double median_sorted(double *t, int runs) {
    qsort(t, runs, sizeof *t, cli_cmp_double);
    return runs % 2 ? t[runs / 2] : (t[runs / 2 - 1] + t[runs / 2]) / 2;
}

/* Times the passes in turn, round after round, until `seconds` have passed and min_runs rounds
 * were made: t[k] (out, malloc'd) holds pass k's times in seconds. Returns the round count, or
 * -1 after printing. */
static int time_rounds(vgg_engine *e, const float *in, int n, const bench_pass *passes,
                       int n_passes, double seconds, long min_runs, double *t[2]) {
    char err[512];
    int cap = 1024, runs = 0;
    for (int k = 0; k < n_passes; k++)
        if (!(t[k] = malloc(cap * sizeof *t[k]))) goto out_of_memory;
    double start = cli_now_s();
    while (runs < min_runs || cli_now_s() - start < seconds) {
        if (runs == cap) {
            cap *= 2;
            for (int k = 0; k < n_passes; k++) {
                double *grown = realloc(t[k], cap * sizeof *t[k]);
                if (!grown) goto out_of_memory; /* t[k] stays the caller's to free */
                t[k] = grown;
            }
        }
        for (int k = 0; k < n_passes; k++) {
            double t0 = cli_now_s();
            if (run_pass(e, in, n, &passes[k], err, sizeof err) != 0) {
                fprintf(stderr, "error: %s\n", err);
                return -1;
            }
            t[k][runs] = cli_now_s() - t0;
        }
        runs++;
    }
    return runs;
out_of_memory:
    fprintf(stderr, "error: out of memory for %d timings\n", cap);
    return -1;
}

/* What the command line asks for. */
typedef struct {
    cli_model_spec spec;
    long threads, seconds, min_runs, explain_images;
    int batches[32], n_batches, max_batch;
    bool json, verbose, explain;
} bench_args;

/* The options into *a. Returns 0, 1 after --help, or -1 after printing an error. */
static int parse_args(int argc, char **argv, bench_args *a) {
    const char *weights = NULL, *model = NULL, *algo = NULL, *precision = NULL, *threads_s = "0",
               *batches_s = "1,8,16", *seconds_s = "5", *runs_s = "3", *seed_s = "1",
               *fc1_s = "flat", *float_layers = NULL, *explain_images_s = NULL;
    bool explain_plain_fc = false;
    const cli_option opts[] = {
        {"weights", "FILE", "safetensors weights (default: generated)", &weights, NULL},
        {"seed", "N", "seed for generated weights (default 1)", &seed_s, NULL},
        {"model", "NAME", "vgg11|vgg13|vgg16|vgg19 (default vgg16)", &model, NULL},
        {"algo", "ALGO", "direct|winograd|auto (default auto)", &algo, NULL},
        {"precision", "P", "f32|bf16|int8 (default f32)", &precision, NULL},
        {"threads", "T", "oneDNN threads (default: all cores)", &threads_s, NULL},
        {"batch", "LIST", "comma-separated batch sizes (default 1,8,16)", &batches_s, NULL},
        {"seconds", "S", "timed seconds per batch size (default 5)", &seconds_s, NULL},
        {"min-runs", "N", "at least this many timed passes (default 3)", &runs_s, NULL},
        {"fc1", "LAYOUT", "flat|4d: how fc1 reads pool5 (default flat)", &fc1_s, NULL},
        {"int8-float-layers", "LIST", "int8: layers kept in f32, e.g. conv2,fc3 (default none)",
         &float_layers, NULL},
        {"explain", NULL, "also time Grad-CAM explanations, interleaved with forward passes",
         NULL, &a->explain},
        {"explain-images", "K", "with --explain: images of each batch asking for a map (default "
                                "all)", &explain_images_s, NULL},
        {"explain-plain-fc", NULL, "with --explain: the backward of fc2 and fc3 reads plain "
                                   "copies of their weights (~83 MB more in f32)", NULL,
         &explain_plain_fc},
        {"json", NULL, "one JSON line per batch size", NULL, &a->json},
        {"verbose", NULL, "print each plan's primitives and formats", NULL, &a->verbose},
    };
    const char *pos[1];
    int n_pos;
    int rc = cli_parse(argc, argv, opts, sizeof opts / sizeof opts[0],
                       "usage: vggserve bench [--weights FILE] [--algo direct|winograd|auto] "
                       "[--batch 1,8,16] [--seconds S] [--explain] [--json]",
                       pos, 0, &n_pos);
    if (rc != 0) return rc;
    long seed;
    a->explain_images = 256;
    if ((explain_images_s &&
         cli_parse_int("explain-images", explain_images_s, 0, 256, &a->explain_images)) ||
        cli_parse_int("threads", threads_s, 0, 1024, &a->threads) ||
        cli_parse_int("seconds", seconds_s, 0, 3600, &a->seconds) ||
        cli_parse_int("min-runs", runs_s, 1, 1000000, &a->min_runs) ||
        cli_parse_int("seed", seed_s, 0, 0x7fffffffffffffffL, &seed))
        return -1;
    char list[256];
    snprintf(list, sizeof list, "%s", batches_s);
    a->max_batch = 1;
    for (char *save, *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        long b;
        if (a->n_batches == 32 || cli_parse_int("batch", tok, 1, CLI_MAX_BATCH, &b)) return -1;
        a->batches[a->n_batches++] = (int)b;
        if (b > a->max_batch) a->max_batch = (int)b;
    }
    a->spec.seed = (uint64_t)seed;
    a->spec.max_batch = a->max_batch;
    a->spec.explain_plain_fc = explain_plain_fc;
    if (strcmp(fc1_s, "4d") == 0) a->spec.fc1_layout = VGG_FC1_4D;
    else if (strcmp(fc1_s, "flat") != 0) {
        fprintf(stderr, "error: --fc1 must be flat or 4d\n");
        return -1;
    }
    if (cli_model_spec_parse(&a->spec, weights, model, algo, precision) != 0 ||
        cli_int8_float_layers_parse(&a->spec, float_layers) != 0)
        return -1;
    return 0;
}

/* The model and one engine with a plan for every batch size (and its explanation's). The
 * weights' plain copy is dropped once everything is in primitive formats, as the server does.
 * Returns 0, or -1 after printing. */
static int open_engine(const bench_args *a, vgg_model **m, vgg_engine **e) {
    vgg_weights w;
    char err[512];
    *e = NULL;
    if (cli_build_model(&a->spec, &w, m, true) != 0) return -1;
    *e = vgg_engine_create(*m, (int)a->threads, err, sizeof err);
    for (int b = 0; *e && b < a->n_batches; b++)
        if (vgg_engine_prepare(*e, a->batches[b], err, sizeof err) != 0 ||
            (a->explain && vgg_engine_prepare_explain(*e, a->batches[b], err, sizeof err) != 0)) {
            vgg_engine_free(*e);
            *e = NULL;
        }
    vgg_model_release_source(*m);
    vgg_weights_free(&w);
    if (*e) return 0;
    fprintf(stderr, "error: %s\n", err);
    vgg_model_free(*m);
    return -1;
}

static void print_plans(vgg_engine *e, int n, bool explain) {
    char *d = vgg_engine_describe(e, n);
    fprintf(stderr, "plan for batch %d:\n%s", n, d);
    free(d);
    if (!explain) return;
    d = vgg_engine_describe_explain(e, n);
    fprintf(stderr, "explain plan for batch %d:\n%s", n, d);
    free(d);
}

/* One batch size: a warm-up of each pass, the timed rounds, one printed line. Returns 0, or
 * 1 after printing. */
static int bench_batch(vgg_engine *e, const vgg_config *cfg, const bench_args *a,
                       const float *in, int n, const bench_pass passes[2]) {
    const int n_passes = a->explain ? 2 : 1;
    char err[512];
    if (a->verbose) print_plans(e, n, a->explain);
    for (int k = 0; k < n_passes; k++) /* warm-up */
        if (run_pass(e, in, n, &passes[k], err, sizeof err) != 0) {
            fprintf(stderr, "error: %s\n", err);
            return 1;
        }
    double *t[2] = {NULL, NULL};
    int runs = time_rounds(e, in, n, passes, n_passes, a->seconds, a->min_runs, t);
    if (runs < 0) {
        free(t[0]);
        free(t[1]);
        return 1;
    }
    double med = median_sorted(t[0], runs), med_x = a->explain ? median_sorted(t[1], runs) : 0;
    double ips_min = n / t[0][runs - 1], ips_med = n / med, ips_max = n / t[0][0];
    char extra[160] = "";
    if (a->json && a->explain)
        snprintf(extra, sizeof extra, ", \"explain_images\": %ld, \"explain_ms_per_batch_median\": "
                 "%.3f, \"explain_over_forward\": %.4f",
                 a->explain_images < n ? a->explain_images : n, med_x * 1e3, med_x / med);
    else if (a->explain)
        snprintf(extra, sizeof extra, " %15.1f %16.3f", med_x * 1e3, med_x / med);
    if (a->json)
        printf("{\"model\": \"%s\", \"algo\": \"%s\", \"precision\": \"%s\", \"batch\": %d, "
               "\"runs\": %d, \"img_per_s_min\": %.3f, \"img_per_s_median\": %.3f, "
               "\"img_per_s_max\": %.3f, \"ms_per_batch_median\": %.3f, \"rss_mb\": %.1f%s}\n",
               cfg->name, vgg_algo_name(a->spec.algo), vgg_precision_name(a->spec.precision), n,
               runs, ips_min, ips_med, ips_max, med * 1e3, cli_rss_bytes() / 1048576.0, extra);
    else
        printf("%6d %6d %12.2f %12.2f %12.2f %14.1f%s\n", n, runs, ips_min, ips_med, ips_max,
               med * 1e3, extra);
    fflush(stdout);
    free(t[0]);
    free(t[1]);
    return 0;
}

int cmd_bench(int argc, char **argv) {
    bench_args a = {0};
    int rc = parse_args(argc, argv, &a);
    if (rc != 0) return rc < 0 ? 2 : 0;
    vgg_model *m;
    vgg_engine *e;
    if (open_engine(&a, &m, &e) != 0) return 1;
    const vgg_config *cfg = vgg_model_config(m);
    const int max_batch = a.max_batch;
    size_t per_image = (size_t)3 * cfg->input_hw * cfg->input_hw;
    float *in = malloc(per_image * max_batch * sizeof(float));
    int *classes = malloc(max_batch * sizeof *classes);
    const int map_hw = vgg_model_explain_hw(m);
    float *maps = malloc((size_t)max_batch * map_hw * map_hw * sizeof *maps);
    if (!in || !classes || !maps) {
        fprintf(stderr, "error: out of memory for a batch of %d\n", max_batch);
        free(in);
        free(classes);
        free(maps);
        vgg_engine_free(e);
        vgg_model_free(m);
        return 1;
    }
    uint64_t state = 42;
    for (size_t i = 0; i < per_image * max_batch; i++)
        in[i] = (float)vgg_normal_from_u64(vgg_splitmix64(&state));
    /* Explanations: the first --explain-images of each batch ask for their top-1's map. */
    for (int i = 0; i < max_batch; i++)
        classes[i] = i < a.explain_images ? VGG_EXPLAIN_TOP1 : VGG_EXPLAIN_NONE;
    const bench_pass passes[2] = {{false, NULL, NULL}, {true, classes, maps}};
    if (!a.json)
        printf("%s %s %s, %ld thread(s); weights %.0f MiB in primitive formats, RSS %.0f MiB\n"
               "%6s %6s %12s %12s %12s %14s%s\n",
               cfg->name, vgg_algo_name(a.spec.algo), vgg_precision_name(a.spec.precision),
               a.threads, vgg_model_weight_bytes(m) / 1048576.0, cli_rss_bytes() / 1048576.0,
               "batch", "runs", "img/s min", "img/s median", "img/s max", "ms/batch med",
               a.explain ? "  explain ms med  explain/forward" : "");
    int status = 0;
    for (int b = 0; b < a.n_batches && status == 0; b++)
        status = bench_batch(e, cfg, &a, in, a.batches[b], passes);
    free(in);
    free(classes);
    free(maps);
    vgg_engine_free(e);
    vgg_model_free(m);
    return status;
}
