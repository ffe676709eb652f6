/* preprocess_bench.c - what one image costs from upload bytes to network input, the work
 * the HTTP threads do beside inference, decoded by several threads at once as in the server.
 *
 *   build/bench_preprocess [--threads 2] [--iterations 200] [--glibc-defaults] IMAGE...
 *
 * Per image: ms per image per thread and minor page faults per image, for bytes -> tensor
 * (preprocess_bytes, torchvision mode). --glibc-defaults skips preprocess_tune_malloc(), to
 * measure what the malloc settings save. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli_common.h"
#include "preprocess.h"

typedef struct {
    const uint8_t *bytes;
    size_t len;
    int iterations;
    int failed;
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
        if (preprocess_bytes(j->bytes, j->len, 40000000, PREPROCESS_TORCHVISION, 224, out, err,
                             sizeof err) != PREPROCESS_OK)
            j->failed = 1;
    free(out);
    return NULL;
}

int main(int argc, char **argv) {
    int threads = 2, iterations = 200, defaults = 0, first = 1;
    for (; first < argc && strncmp(argv[first], "--", 2) == 0; first++) {
        if (strcmp(argv[first], "--glibc-defaults") == 0) defaults = 1;
        else if (strcmp(argv[first], "--threads") == 0 && first + 1 < argc) threads = atoi(argv[++first]);
        else if (strcmp(argv[first], "--iterations") == 0 && first + 1 < argc) iterations = atoi(argv[++first]);
        else {
            fprintf(stderr, "usage: bench_preprocess [--threads N] [--iterations N] [--glibc-defaults] IMAGE...\n");
            return 2;
        }
    }
    if (first >= argc || threads < 1 || threads > 64 || iterations < 1) {
        fprintf(stderr, "usage: bench_preprocess [--threads N] [--iterations N] [--glibc-defaults] IMAGE...\n");
        return 2;
    }
    if (!defaults) preprocess_tune_malloc();
    printf("malloc: %s; %d thread(s) x %d images each\n",
           defaults ? "glibc defaults" : "preprocess_tune_malloc()", threads, iterations);
    for (int a = first; a < argc; a++) {
        uint8_t *bytes;
        size_t got;
        if (cli_read_file(argv[a], &bytes, &got) != 0) {
            fprintf(stderr, "%s: cannot open\n", argv[a]);
            return 1;
        }
        job j = {bytes, got, iterations, 0};
        decode_loop(&(job){bytes, got, 3, 0}); /* warm up */
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
        printf("%-40s %7.2f ms per image per thread %7ld minor faults per image\n", argv[a],
               elapsed / iterations * 1e3,
               (r1.ru_minflt - r0.ru_minflt) / ((long)threads * iterations));
        free(bytes);
    }
    return 0;
}
