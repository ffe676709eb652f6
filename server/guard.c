/* guard.c - per-connection deadlines enforced by a sweeper thread, and the buffered-bytes budget. */
#include "guard.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "clock.h"

typedef enum { PHASE_WAITING, PHASE_BODY, PHASE_ANSWER, PHASE_IDLE } phase;

struct guard_conn {
    guard_conn *prev, *next;
    int fd;
    phase phase;
    int64_t since_ns;   /* when the phase began */
    api_status expired; /* set once by the sweeper */
    bool reported;
};

struct guard {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t sweeper;
    bool stopping;
    guard_conn *head;
    int n_open;
    int64_t header_timeout_ns, body_timeout_ns;
    long long budget;
    atomic_llong buffered;
};

#define SWEEP_INTERVAL_NS 250000000LL

/* One pass over the open connections (lock held). */
static void sweep(guard *g, int64_t now) {
    for (guard_conn *c = g->head; c; c = c->next) {
        if (c->expired != API_OK) continue;
        int64_t limit = c->phase == PHASE_WAITING                            ? g->header_timeout_ns
                        : c->phase == PHASE_BODY || c->phase == PHASE_IDLE ? g->body_timeout_ns
                                                                           : 0;
        if (limit <= 0 || now - c->since_ns <= limit) continue;
        /* An idle keep-alive connection is closed, not refused: nothing counts it. */
        if (c->phase == PHASE_IDLE) {
            c->phase = PHASE_ANSWER;
            shutdown(c->fd, SHUT_RDWR);
            continue;
        }
        c->expired = c->phase == PHASE_WAITING ? API_HEADER_TIMEOUT : API_BODY_TIMEOUT;
        /* Not close(): the fd stays libmicrohttpd's; it reads the shutdown as a close. */
        shutdown(c->fd, SHUT_RDWR);
    }
}

static void *sweeper_main(void *arg) {
    guard *g = arg;
    pthread_mutex_lock(&g->lock);
    while (!g->stopping) {
        struct timespec until = clock_after_ns(CLOCK_REALTIME, SWEEP_INTERVAL_NS);
        pthread_cond_timedwait(&g->wake, &g->lock, &until);
        if (!g->stopping) sweep(g, clock_monotonic_ns());
    }
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

guard *guard_create(int64_t header_timeout_ns, int64_t body_timeout_ns, long long budget) {
    guard *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->wake, NULL);
    g->header_timeout_ns = header_timeout_ns;
    g->body_timeout_ns = body_timeout_ns;
    g->budget = budget;
    if (pthread_create(&g->sweeper, NULL, sweeper_main, g) != 0) {
        pthread_cond_destroy(&g->wake);
        pthread_mutex_destroy(&g->lock);
        free(g);
        return NULL;
    }
    return g;
}

void guard_free(guard *g) {
    if (!g) return;
    pthread_mutex_lock(&g->lock);
    g->stopping = true;
    pthread_cond_signal(&g->wake);
    pthread_mutex_unlock(&g->lock);
    pthread_join(g->sweeper, NULL);
    while (g->head) { /* none expected: the daemon closed every connection */
        guard_conn *c = g->head;
        g->head = c->next;
        free(c);
    }
    pthread_cond_destroy(&g->wake);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

guard_conn *guard_open(guard *g, int fd) {
    guard_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->fd = fd;
    c->phase = PHASE_WAITING;
    c->since_ns = clock_monotonic_ns();
    pthread_mutex_lock(&g->lock);
    c->next = g->head;
    if (g->head) g->head->prev = c;
    g->head = c;
    g->n_open++;
    pthread_mutex_unlock(&g->lock);
    return c;
}

void guard_close(guard *g, guard_conn *c) {
    if (!c) return;
    pthread_mutex_lock(&g->lock);
    if (c->prev) c->prev->next = c->next;
    else g->head = c->next;
    if (c->next) c->next->prev = c->prev;
    g->n_open--;
    pthread_mutex_unlock(&g->lock);
    free(c);
}

static void enter(guard *g, guard_conn *c, phase p) {
    if (!c) return;
    pthread_mutex_lock(&g->lock);
    c->phase = p;
    c->since_ns = clock_monotonic_ns();
    pthread_mutex_unlock(&g->lock);
}

void guard_headers_done(guard *g, guard_conn *c) { enter(g, c, PHASE_BODY); }
void guard_body_done(guard *g, guard_conn *c) { enter(g, c, PHASE_ANSWER); }
void guard_answered(guard *g, guard_conn *c) { enter(g, c, PHASE_IDLE); }

void guard_request_line(guard *g, guard_conn *c) {
    if (!c) return;
    pthread_mutex_lock(&g->lock);
    if (c->phase == PHASE_IDLE) {
        c->phase = PHASE_WAITING;
        c->since_ns = clock_monotonic_ns();
    }
    pthread_mutex_unlock(&g->lock);
}

api_status guard_conn_expired(guard *g, const guard_conn *c) {
    if (!c) return API_OK;
    pthread_mutex_lock(&g->lock);
    api_status st = c->expired;
    pthread_mutex_unlock(&g->lock);
    return st;
}

void guard_mark_reported(guard *g, guard_conn *c) {
    if (!c) return;
    pthread_mutex_lock(&g->lock);
    c->reported = true;
    pthread_mutex_unlock(&g->lock);
}

bool guard_conn_reported(guard *g, const guard_conn *c) {
    if (!c) return false;
    pthread_mutex_lock(&g->lock);
    bool r = c->reported;
    pthread_mutex_unlock(&g->lock);
    return r;
}

bool guard_reserve(guard *g, long long n) {
    long long have = atomic_load(&g->buffered);
    do {
        if (have + n > g->budget) return false;
    } while (!atomic_compare_exchange_weak(&g->buffered, &have, have + n));
    return true;
}

void guard_release(guard *g, long long n) { atomic_fetch_sub(&g->buffered, n); }

long long guard_buffered(const guard *g) { return atomic_load(&((guard *)g)->buffered); }

