/* test_util.h - the assertion counter every C test shares. Prints file:line and the failing
 * expression, keeps going, and ends with the "N passed, M failed" line CI reads. A test
 * program of named cases runs them with test_run().
 *
 * A program that ran no check fails, however it ends (return from main, exit(), exit 77 for
 * ctest's skip): a test whose cases were never registered, or that returned before its first
 * EXPECT, would otherwise pass having proved nothing. */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int test_passed, test_failed;

static void test_fail_when_nothing_checked(void) {
    if (test_passed + test_failed > 0) return;
    fflush(NULL);
    fprintf(stderr, "FAILED: no check ran (a test that checks nothing proves nothing)\n");
    _exit(1); /* overrides the exit status main returned */
}

__attribute__((constructor)) static void test_util_init(void) {
    atexit(test_fail_when_nothing_checked);
}

#define EXPECT(cond)                                                                   \
    do {                                                                               \
        if (cond) {                                                                    \
            test_passed++;                                                             \
        } else {                                                                       \
            test_failed++;                                                             \
            fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond);         \
        }                                                                              \
    } while (0)

typedef struct {
    const char *name;
    void (*fn)(void);
} test_case;

/* Runs each case in order, printing its name and, when it failed, its number of failures. */
static inline void test_run(const test_case *tests, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int failed_before = test_failed;
        printf("%s\n", tests[i].name);
        fflush(stdout);
        tests[i].fn();
        if (test_failed != failed_before) printf("  -> %d failure(s)\n", test_failed - failed_before);
        fflush(stdout);
    }
}

static inline int test_summary(void) {
    printf("%d passed, %d failed\n", test_passed, test_failed);
    return test_failed ? 1 : 0;
}

#endif
