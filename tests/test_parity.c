/* test_parity.c - full VGG16 against torchvision's logits (tests/fixtures, made by
 * tests/reference/torch_reference.py from `gen-weights --seed 1`).
 *
 * Generates the seed-1 weights, writes and re-reads them through safetensors (so the loader
 * is on the path), runs the fixture inputs through the engine and checks:
 *   direct:   max |logit - ref| <= 1e-3 * max |ref|, and the same top-5 in the same order;
 *   winograd: the difference is printed, and top-1 must be the same.
 * Also checks the memory contract: after warm-up and release of the plain weights, RSS stays
 * within 1.15 x the primitive-format weights plus activations plus the process baseline.
 *
 * usage: test_parity TESTS_DIR */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "npy.h"
#include "test_util.h"
#include "topk.h"
#include "vgg_weights.h"

static long long rss_bytes(void) {
    FILE *fp = fopen("/proc/self/status", "r");
    char line[256];
    long long kb = 0;
    while (fp && fgets(line, sizeof line, fp))
        if (sscanf(line, "VmRSS: %lld kB", &kb) == 1) break;
    if (fp) fclose(fp);
    return kb * 1024;
}

static void run_algo(const char *weights_path, vgg_algo algo, const npy_array *in,
                     const npy_array *ref, long long baseline_rss) {
    char err[1024];
    int n = (int)in->shape[0];
    vgg_config cfg;
    vgg_config_init(&cfg, "vgg16");
    vgg_weights w;
    EXPECT(vgg_weights_load(&w, &cfg, weights_path, err, sizeof err) == 0);
    if (test_failed) return;
    vgg_model_options opt = {.algo = algo, .precision = VGG_PRECISION_F32, .max_batch = n};
    vgg_model *m = vgg_model_create(&w, &opt, err, sizeof err);
    EXPECT(m != NULL);
    vgg_engine *e = vgg_engine_create(m, 0, err, sizeof err);
    EXPECT(e != NULL);
    if (!m || !e) return;
    float *logits = malloc((size_t)n * 1000 * sizeof(float));
    EXPECT(vgg_engine_forward(e, in->data, n, logits, NULL, err, sizeof err) == 0);
    const float *r = ref->data;
    double worst_rel = 0;
    for (int i = 0; i < n; i++) {
        double max_ref = 0, max_diff = 0;
        for (int k = 0; k < 1000; k++) {
            max_ref = fmax(max_ref, fabs(r[i * 1000 + k]));
            max_diff = fmax(max_diff, fabs(logits[i * 1000 + k] - r[i * 1000 + k]));
        }
        int ours[5], theirs[5];
        topk_indices(logits + i * 1000, 1000, 5, ours);
        topk_indices(r + i * 1000, 1000, 5, theirs);
        double rel = max_diff / max_ref;
        worst_rel = fmax(worst_rel, rel);
        printf("%-8s row %d: max|diff| %.3g, max|logit| %.3g, relative %.3g, top-5 %s\n",
               vgg_algo_name(algo), i, max_diff, max_ref, rel,
               memcmp(ours, theirs, sizeof ours) == 0 ? "identical" : "DIFFERENT");
        if (algo == VGG_ALGO_DIRECT) {
            EXPECT(rel <= 1e-3);
            EXPECT(memcmp(ours, theirs, sizeof ours) == 0);
        } else {
            EXPECT(ours[0] == theirs[0]);
        }
    }
    printf("%-8s worst relative logit difference %.3g\n", vgg_algo_name(algo), worst_rel);
    /* Every format is made: drop the plain copy, as the server does after warm-up. */
    vgg_model_release_source(m);
    vgg_weights_free(&w);
    if (algo == VGG_ALGO_DIRECT) {
        long long rss = rss_bytes();
        size_t weights = vgg_model_weight_bytes(m), acts = vgg_engine_activation_bytes(e);
        printf("RSS %.0f MiB = baseline %.0f MiB + weights %.0f MiB + activations %.0f MiB "
               "+ %.0f MiB other\n", rss / 1048576.0, baseline_rss / 1048576.0,
               weights / 1048576.0, acts / 1048576.0,
               (rss - baseline_rss - (long long)weights - (long long)acts) / 1048576.0);
        EXPECT(rss <= baseline_rss + 1.15 * weights + acts);
    }
    free(logits);
    vgg_engine_free(e);
    vgg_model_free(m);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_parity TESTS_DIR\n");
        return 2;
    }
    char path[4096], err[1024];
    npy_array in, ref;
    snprintf(path, sizeof path, "%s/fixtures/parity_inputs.npy", argv[1]);
    EXPECT(npy_read(path, &in, err, sizeof err) == 0);
    snprintf(path, sizeof path, "%s/fixtures/ref_logits_vgg16_seed1.npy", argv[1]);
    EXPECT(npy_read(path, &ref, err, sizeof err) == 0);
    if (test_failed) return test_summary();

    vgg_config cfg;
    vgg_config_init(&cfg, "vgg16");
    char tmpl[] = "/tmp/vggserve_parity_XXXXXX";
    int fd = mkstemp(tmpl);
    close(fd);
    {
        vgg_weights gen;
        EXPECT(vgg_weights_generate(&gen, &cfg, 1) == 0);
        EXPECT(vgg_weights_save(&gen, tmpl, NULL, err, sizeof err) == 0);
        vgg_weights_free(&gen);
    }
    /* Baseline: the process with the fixtures loaded but no weights or oneDNN state. */
    long long baseline = rss_bytes();
    run_algo(tmpl, VGG_ALGO_DIRECT, &in, &ref, baseline);
    run_algo(tmpl, VGG_ALGO_WINOGRAD, &in, &ref, baseline);
    unlink(tmpl);
    free(in.data);
    free(ref.data);
    return test_summary();
}
