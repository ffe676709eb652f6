/* test_util.h - the assertion counter every C test shares. Prints file:line and the failing
 * expression, keeps going, and ends with the "N passed, M failed" line CI reads. A test
 * program of named cases runs them with test_run(). */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H

#include <stddef.h>
#include <stdio.h>

static int test_passed, test_failed;

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
