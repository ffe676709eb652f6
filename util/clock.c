/* clock.c - monotonic time and timed-wait deadlines. */
#include "clock.h"

#define NS_PER_S 1000000000LL

int64_t clock_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

struct timespec clock_after_ns(clockid_t clock, int64_t ns) {
    struct timespec t;
    clock_gettime(clock, &t);
    t.tv_sec += ns / NS_PER_S;
    t.tv_nsec += ns % NS_PER_S;
    if (t.tv_nsec >= NS_PER_S) {
        t.tv_sec++;
        t.tv_nsec -= NS_PER_S;
    }
    return t;
}
