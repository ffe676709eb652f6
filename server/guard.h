/* guard.h - what keeps hostile clients from starving the service: deadlines a trickle cannot
 * reset, and one budget for the request bytes held in memory.
 *
 * libmicrohttpd's connection timeout is an idle timeout: a client that sends one header byte
 * every few seconds never trips it and holds its connection slot for ever (slowloris). The
 * guard tracks every connection from accept to close and knows which phase it is in:
 *
 *   WAITING  for a request line and headers, since the accept or the previous answer:
 *            header_timeout after that, the connection is shut down (header_timeout);
 *   BODY     headers complete, the body still arriving: body_timeout after the headers, it
 *            is shut down (body_timeout);
 *   ANSWER   the request is complete and being computed or answered: no deadline here (the
 *            request's own deadline, request_timeout_ms, bounds it);
 *   IDLE     answered, kept alive, no next request line yet: body_timeout (connection_timeout_s)
 *            after the answer it is closed, and not counted: an idle pooled connection is not
 *            an attack. Its next request line moves it to WAITING, so header_timeout runs from
 *            there (libmicrohttpd shows no earlier byte of a request).
 *
 * A new connection starts in WAITING: its first request's header_timeout runs from the accept.
 *
 * A sweeper thread checks the deadlines four times a second and shuts an expired connection's
 * socket down (shutdown(2), which libmicrohttpd sees as the peer's close and cleans up as
 * usual); guard_conn_expired() says why afterwards, for the access log and the metrics.
 *
 * The budget: every buffered request byte is reserved first (guard_reserve) and released
 * when its request ends (guard_release), so all uploads together never hold more than
 * max_buffered_bytes, however many connections send them.
 *
 * Thread-safe: the connection list has one mutex; the budget is an atomic. */
#ifndef SERVER_GUARD_H
#define SERVER_GUARD_H

#include <stdbool.h>
#include <stdint.h>

#include "errors.h"

typedef struct guard guard;
typedef struct guard_conn guard_conn;

/* Timeouts in nanoseconds; budget in bytes. NULL when the thread cannot start. */
guard *guard_create(int64_t header_timeout_ns, int64_t body_timeout_ns, long long budget);

/* Stops the sweeper; every connection must have been closed (guard_close) first. */
void guard_free(guard *g);

/* A connection was accepted on fd: WAITING from now. NULL when out of memory (then the
 * connection is simply not guarded). */
guard_conn *guard_open(guard *g, int fd);

/* The connection closed; c is freed. */
void guard_close(guard *g, guard_conn *c);

void guard_headers_done(guard *g, guard_conn *c); /* WAITING -> BODY */
void guard_body_done(guard *g, guard_conn *c);    /* BODY -> ANSWER */
void guard_answered(guard *g, guard_conn *c);     /* -> IDLE until the next request line */
void guard_request_line(guard *g, guard_conn *c); /* IDLE -> WAITING (others: unchanged) */

/* API_OK, or API_HEADER_TIMEOUT / API_BODY_TIMEOUT when the sweeper shut c down. */
api_status guard_conn_expired(guard *g, const guard_conn *c);
/* The expiry was logged and counted with a request (so the close does not count it again). */
void guard_mark_reported(guard *g, guard_conn *c);
bool guard_conn_reported(guard *g, const guard_conn *c);

/* Reserves n more buffered bytes: false (nothing reserved) when that would pass the budget. */
bool guard_reserve(guard *g, long long n);
void guard_release(guard *g, long long n);
long long guard_buffered(const guard *g);

#endif
