/* clock.h - the one monotonic clock and the one deadline helper of the project.
 *
 * Every duration the service measures (queue waits, decode times, request deadlines, the
 * guard's timeouts, the CLI's timings) reads clock_monotonic_ns(); every timed wait on a
 * condition variable gets its absolute deadline from clock_after_ns(). No state: thread-safe. */
#ifndef UTIL_CLOCK_H
#define UTIL_CLOCK_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in nanoseconds: for intervals and deadlines, never for wall time. */
int64_t clock_monotonic_ns(void);

/* The time ns nanoseconds from now on clock (CLOCK_MONOTONIC or CLOCK_REALTIME, whichever
 * the condition variable waits on), as pthread_cond_timedwait() takes it: tv_nsec in
 * [0, 1e9). ns >= 0. */
struct timespec clock_after_ns(clockid_t clock, int64_t ns);

#endif
