/* test_util.h - the assertion counter every C test shares. Prints file:line and the failing
 * expression, keeps going, and ends with the "N passed, M failed" line CI reads. */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H

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

static inline int test_summary(void) {
    printf("%d passed, %d failed\n", test_passed, test_failed);
    return test_failed ? 1 : 0;
}

#endif
