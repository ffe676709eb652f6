/* fuzz_util.h - what the harnesses share: a checked abort, an in-memory file and a header
 * splitter.
 *
 * FUZZ_CHECK(cond) stops the run (a crash libFuzzer records) when a harness's invariant
 * breaks; it is not assert(), so release builds keep it. fuzz_memfile() gives a path
 * (/proc/self/fd/N of a memfd) whose content is the input, for the APIs that take a file.
 * fuzz_split_headers() reads the "name: value\n" lines, an empty line, then the body, that
 * the request-path harnesses take as input. */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#define FUZZ_CHECK(cond)                                                          \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
            abort();                                                              \
        }                                                                         \
    } while (0)

/* Replaces the content of one process-wide memfd with data; returns its path (static). */
static inline const char *fuzz_memfile(const uint8_t *data, size_t size) {
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("fuzz", 0);
        FUZZ_CHECK(fd >= 0);
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    FUZZ_CHECK(ftruncate(fd, 0) == 0);
    size_t off = 0;
    while (off < size) {
        ssize_t n = pwrite(fd, data + off, size - off, (off_t)off);
        FUZZ_CHECK(n > 0);
        off += (size_t)n;
    }
    return path;
}

/* Splits data into header lines "name: value\n" up to the first empty line, and the body after
 * it (all of data is headers when there is no empty line). For a line whose name is names[k]
 * (case-insensitive), values[k] becomes a malloc'd, NUL-terminated copy of the value, its
 * leading spaces skipped, like MHD's; a later line of the same name replaces it. values[k]
 * must start NULL; the caller frees them. Lines without ':' and other names are ignored.
 * Returns the body; *body_len its length. */
static inline const uint8_t *fuzz_split_headers(const uint8_t *data, size_t size,
                                                const char *const *names, char **values,
                                                int n_names, size_t *body_len) {
    const uint8_t *p = data, *end = data + size;
    while (p < end) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) nl = end;
        size_t n = (size_t)(nl - p);
        if (n == 0) {
            p = nl + 1;
            break;
        }
        const uint8_t *colon = memchr(p, ':', n);
        if (colon) {
            size_t klen = (size_t)(colon - p);
            const uint8_t *v = colon + 1;
            while (v < nl && *v == ' ') v++;
            int k = 0;
            while (k < n_names &&
                   !(klen == strlen(names[k]) && strncasecmp((const char *)p, names[k], klen) == 0))
                k++;
            if (k < n_names) {
                free(values[k]);
                values[k] = strndup((const char *)v, (size_t)(nl - v));
            }
        }
        p = nl < end ? nl + 1 : end;
    }
    if (p > end) p = end;
    *body_len = (size_t)(end - p);
    return p;
}

#endif
