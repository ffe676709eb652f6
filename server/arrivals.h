/* arrivals.h - the count of inference uploads on their way to the batcher.
 *
 * An upload arrives from the moment its headers are accepted until its job is queued or
 * refused. Two readers use the count: the batcher holds a partial batch while uploads are
 * arriving (batcher.h), and the shutdown lets arriving uploads finish before it closes the
 * queue (cli/serve.c). The front end that receives uploads owns one `arrivals` and marks each
 * upload with an `arrival` token; ending a token twice is harmless, so every exit path of a
 * request may end it.
 *
 * Thread-safe: the count is atomic; a token belongs to its one request. */
#ifndef ARRIVALS_H
#define ARRIVALS_H

#include <stdatomic.h>
#include <stdbool.h>

typedef struct {
    atomic_int n;
} arrivals;

/* One upload's place in the count. Zero-initialised: not counted. */
typedef struct {
    bool counted;
} arrival;

/* The upload starts arriving (a counted token is left as it is). */
void arrivals_begin(arrivals *a, arrival *t);

/* The upload is queued, refused or gone; no-op for a token not counted. */
void arrivals_end(arrivals *a, arrival *t);

/* How many uploads are arriving now; 0 for a NULL a. */
int arrivals_count(const arrivals *a);

/* Waits (polling every 10 ms) until none is arriving or timeout_s has passed; returns
 * whether none is. */
bool arrivals_wait_none(const arrivals *a, double timeout_s);

#endif
