/* arrivals.c - the count of uploads on their way to the batcher. */
#include "arrivals.h"

#include <unistd.h>

#include "clock.h"

void arrivals_begin(arrivals *a, arrival *t) {
    if (t->counted) return;
    t->counted = true;
    atomic_fetch_add(&a->n, 1);
}

void arrivals_end(arrivals *a, arrival *t) {
    if (!t->counted) return;
    t->counted = false;
    atomic_fetch_sub(&a->n, 1);
}

int arrivals_count(const arrivals *a) { return a ? atomic_load(&a->n) : 0; }

bool arrivals_wait_none(const arrivals *a, double timeout_s) {
    const int64_t until = clock_monotonic_ns() + (int64_t)(timeout_s * 1e9);
    while (arrivals_count(a) > 0 && clock_monotonic_ns() < until) usleep(10000);
    return arrivals_count(a) == 0;
}
