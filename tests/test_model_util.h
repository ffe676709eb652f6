/* test_model_util.h - what the unit tests of model/ share (tests/test_<module>.c): two more
 * EXPECTs, one temporary directory per program, file helpers and the full-resolution decode.
 *
 * A test program's main is model_test_main(): it reads the tests directory (argv[1]; it holds
 * data/images and fixtures/), makes the mkdtemp directory under /tmp that tmp_path() names
 * files in, runs the cases and removes the directory. Everything here is static inline, so a
 * program that does not use a helper gets no warning for it. Single-threaded. */
#ifndef TEST_MODEL_UTIL_H
#define TEST_MODEL_UTIL_H

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "image_decode.h"
#include "test_util.h"

static char tmp_dir[] = "/tmp/test_model.XXXXXX";
static const char *tests_dir;

/* Fails (and prints both) unless s contains sub. */
#define EXPECT_HAS(s, sub) expect_has(__FILE__, __LINE__, (s), (sub))
static inline void expect_has(const char *file, int line, const char *s, const char *sub) {
    if (s && strstr(s, sub)) {
        test_passed++;
        return;
    }
    test_failed++;
    fprintf(stderr, "%s:%d: FAILED: \"%s\" does not contain \"%s\"\n", file, line,
            s ? s : "(null)", sub);
}

#define EXPECT_NEAR(a, b, tol) expect_near(__FILE__, __LINE__, #a, (double)(a), (double)(b), (tol))
static inline void expect_near(const char *file, int line, const char *what, double a, double b,
                        double tol) {
    if (fabs(a - b) <= tol) {
        test_passed++;
        return;
    }
    test_failed++;
    fprintf(stderr, "%s:%d: FAILED: %s = %.9g, expected %.9g within %g\n", file, line, what, a,
            b, tol);
}

static inline const char *tmp_path(char *buf, size_t len, const char *name) {
    snprintf(buf, len, "%s/%s", tmp_dir, name);
    return buf;
}

static inline void remove_tmp_dir(void) {
    DIR *d = opendir(tmp_dir);
    if (!d) return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            unlink(tmp_path(path, sizeof path, e->d_name));
    closedir(d);
    rmdir(tmp_dir);
}

static inline int write_bytes(const char *path, const void *buf, size_t len) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return -1;
    int ok = fwrite(buf, 1, len, fp) == len;
    return (fclose(fp) == 0 && ok) ? 0 : -1;
}

/* Whole file into a malloc'd buffer (caller frees), or NULL. */
static inline uint8_t *read_bytes(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(fp);
    *len = (size_t)n;
    return buf;
}

static inline uint8_t *read_image(const char *name, size_t *len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/data/images/%s", tests_dir, name);
    uint8_t *b = read_bytes(path, len);
    if (!b) fprintf(stderr, "cannot read %s\n", path);
    return b;
}

static inline double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The one decoder at full resolution (decode_scaling = off) with a pixel limit: what these
 * tests compare against fixtures made from full-resolution PIL decodes. */
static inline preprocess_status decode_full(const uint8_t *b, size_t len, int64_t max_pixels,
                                     preprocess_image *img, char *err, size_t errlen) {
    const image_decode_options o = {.max_pixels = max_pixels, .full_resolution = true};
    return image_decode(b, len, &o, img, err, errlen);
}

/* qsort's comparison of C strings (an array of char *). */
static inline int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static inline int model_test_main(int argc, char **argv, const test_case *tests, size_t n) {
    tests_dir = argc > 1 ? argv[1] : "tests";
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 2;
    }
    test_run(tests, n);
    remove_tmp_dir();
    return test_summary();
}

#endif
