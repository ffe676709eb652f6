/* preprocess_bench.c - what one image costs from upload bytes to network input, the work
 * the HTTP threads do beside inference, decoded by several threads at once as in the server.
 *
 *   build/bench_preprocess [--threads 2] [--iterations 200] [--glibc-defaults]
 *                          [--decode-scaling auto|off] IMAGE...
 *
 * Per image: ms per image per thread and minor page faults per image, for bytes -> tensor
 * (preprocess_bytes, torchvision mode, the service's decode settings: max_pixels 40000000,
 * EXIF applied), and the process's peak RSS so far (run one image per process to read it per
 * image). --glibc-defaults skips preprocess_tune_malloc(), to measure what the malloc settings
 * save; --decode-scaling off decodes every pixel. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli_common.h"
#include "image_decode.h"
#include "preprocess.h"

typedef struct {
    const uint8_t *bytes;
    size_t len;
    int iterations;
    int failed;
    const image_decode_options *opt;
} job;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *decode_loop(void *arg) {
    job *j = arg;
    float *out = malloc(sizeof(float) * 3 * 224 * 224);
    char err[256];
    for (int i = 0; i < j->iterations; i++)
        if (preprocess_bytes(j->bytes, j->len, j->opt, PREPROCESS_TORCHVISION, 224, out, err,
                             sizeof err) != PREPROCESS_OK)
            j->failed = 1;
    free(out);
    return NULL;
}

int main(int argc, char **argv) {
    int threads = 2, iterations = 200, defaults = 0, first = 1;
    image_decode_options opt = {.max_pixels = IMAGE_DECODE_DEFAULT_MAX_PIXELS};
    for (; first < argc && strncmp(argv[first], "--", 2) == 0; first++) {
        if (strcmp(argv[first], "--glibc-defaults") == 0) defaults = 1;
        else if (strcmp(argv[first], "--decode-scaling") == 0 && first + 1 < argc) {
            int scaling;
            if (cli_parse_choice("decode-scaling", argv[++first], image_decode_scaling_names,
                                 &scaling) != 0)
                return 2;
            opt = image_decode_options_of(opt.max_pixels, (image_decode_scaling)scaling,
                                          IMAGE_EXIF_APPLY);
        }
        else if (strcmp(argv[first], "--threads") == 0 && first + 1 < argc) threads = atoi(argv[++first]);
        else if (strcmp(argv[first], "--iterations") == 0 && first + 1 < argc) iterations = atoi(argv[++first]);
        else {
            fprintf(stderr, "usage: bench_preprocess [--threads N] [--iterations N] [--glibc-defaults] [--decode-scaling auto|off] IMAGE...\n");
            return 2;
        }
    }
    if (first >= argc || threads < 1 || threads > 64 || iterations < 1) {
        fprintf(stderr, "usage: bench_preprocess [--threads N] [--iterations N] [--glibc-defaults] [--decode-scaling auto|off] IMAGE...\n");
        return 2;
    }
    if (!defaults) preprocess_tune_malloc();
    printf("malloc: %s; decode_scaling %s; %d thread(s) x %d images each\n",
           defaults ? "glibc defaults" : "preprocess_tune_malloc()",
           opt.full_resolution ? "off" : "auto", threads, iterations);
    for (int a = first; a < argc; a++) {
        uint8_t *bytes;
        size_t got;
        if (cli_read_file(argv[a], &bytes, &got) != 0) {
            fprintf(stderr, "%s: cannot open\n", argv[a]);
            return 1;
        }
        job j = {bytes, got, iterations, 0, &opt};
        decode_loop(&(job){bytes, got, 3, 0, &opt}); /* warm up */
        pthread_t t[64];
        job jobs[64];
        struct rusage r0, r1;
        getrusage(RUSAGE_SELF, &r0);
        double t0 = now_s();
        for (int i = 0; i < threads; i++) {
            jobs[i] = j;
            pthread_create(&t[i], NULL, decode_loop, &jobs[i]);
        }
        int failed = 0;
        for (int i = 0; i < threads; i++) {
            pthread_join(t[i], NULL);
            failed |= jobs[i].failed;
        }
        double elapsed = now_s() - t0;
        getrusage(RUSAGE_SELF, &r1);
        if (failed) {
            fprintf(stderr, "%s: not decodable\n", argv[a]);
            return 1;
        }
        printf("%-40s %7.2f ms per image per thread %7ld minor faults per image %7.1f MB peak RSS\n",
               argv[a], elapsed / iterations * 1e3,
               (r1.ru_minflt - r0.ru_minflt) / ((long)threads * iterations), r1.ru_maxrss / 1024.0);
        free(bytes);
    }
    return 0;
}
