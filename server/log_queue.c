/* log_queue.c - a bounded line buffer and its writer thread (log_queue.h has the DESIGN). */
#include "log_queue.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"

struct log_queue {
    int fd;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t writer;
    bool stopping;
    int64_t give_up_ns; /* when stopping: the writer drops what is left after this */
    char *buf, *spare;  /* buf: lines waiting (lock); spare: the writer's */
    size_t cap, len, lines;
    atomic_ullong dropped;
};

/* Writes n bytes, PIPE_BUF at a time as the fd takes them. Returns false when the fd failed
 * or, once stopping, the time to flush ran out. */
static bool write_all(log_queue *q, const char *p, size_t n) {
    while (n > 0) {
        struct pollfd pfd = {.fd = q->fd, .events = POLLOUT};
        int ready = poll(&pfd, 1, 100);
        if (ready < 0 && errno != EINTR) return false;
        if (ready <= 0 || !(pfd.revents & POLLOUT)) {
            if (pfd.revents & (POLLERR | POLLHUP | POLLNVAL)) return false;
            pthread_mutex_lock(&q->lock);
            bool late = q->stopping && clock_monotonic_ns() > q->give_up_ns;
            pthread_mutex_unlock(&q->lock);
            if (late) return false;
            continue;
        }
        ssize_t w = write(q->fd, p, n < PIPE_BUF ? n : PIPE_BUF);
        if (w < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (w <= 0) return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static void *writer_main(void *arg) {
    log_queue *q = arg;
    pthread_mutex_lock(&q->lock);
    for (;;) {
        while (!q->len && !q->stopping) pthread_cond_wait(&q->wake, &q->lock);
        if (!q->len) break; /* stopping, and nothing left */
        char *out = q->buf;
        size_t n = q->len, lines = q->lines;
        q->buf = q->spare;
        q->spare = out;
        q->len = q->lines = 0;
        pthread_mutex_unlock(&q->lock);
        if (!write_all(q, out, n)) atomic_fetch_add(&q->dropped, lines);
        pthread_mutex_lock(&q->lock);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

log_queue *log_queue_create(int fd, size_t capacity) {
    log_queue *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    q->fd = fd;
    q->cap = capacity;
    q->buf = malloc(capacity);
    q->spare = malloc(capacity);
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->wake, NULL);
    if (!q->buf || !q->spare || pthread_create(&q->writer, NULL, writer_main, q) != 0) {
        pthread_cond_destroy(&q->wake);
        pthread_mutex_destroy(&q->lock);
        free(q->buf);
        free(q->spare);
        free(q);
        return NULL;
    }
    return q;
}

void log_queue_free(log_queue *q, int flush_ms) {
    if (!q) return;
    pthread_mutex_lock(&q->lock);
    q->stopping = true;
    q->give_up_ns = clock_monotonic_ns() + (int64_t)flush_ms * 1000000;
    pthread_cond_signal(&q->wake);
    pthread_mutex_unlock(&q->lock);
    pthread_join(q->writer, NULL);
    pthread_cond_destroy(&q->wake);
    pthread_mutex_destroy(&q->lock);
    free(q->buf);
    free(q->spare);
    free(q);
}

void log_queue_put(log_queue *q, const char *line, size_t len) {
    pthread_mutex_lock(&q->lock);
    bool fits = !q->stopping && len <= q->cap - q->len;
    if (fits) {
        memcpy(q->buf + q->len, line, len);
        q->len += len;
        q->lines++;
        pthread_cond_signal(&q->wake);
    }
    pthread_mutex_unlock(&q->lock);
    if (!fits) atomic_fetch_add(&q->dropped, 1);
}

unsigned long long log_queue_dropped(const log_queue *q) {
    return atomic_load(&((log_queue *)q)->dropped);
}
