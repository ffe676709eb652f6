/* log.h - the service's one event log: JSON lines on stderr.
 *
 *   {"level":"info","msg":"ready in 9.8 s: ..."}
 *   {"level":"error","msg":"forward failed","batch_id":12,"error":"..."}
 *
 * Events are start-up, shutdown and failures; the access log (one line per request, on
 * stdout) is http.c's. Every string is JSON-escaped by jansson after being made valid UTF-8
 * (it may quote a client or a library), so a line is always one line of valid JSON. Lines
 * from different threads never interleave (one fputs of the whole line). */
#ifndef SERVER_LOG_H
#define SERVER_LOG_H

#include <stdarg.h>

typedef enum { LOG_INFO, LOG_WARNING, LOG_ERROR } log_level;

/* One event: level, printf-style message. */
void log_event(log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_eventv(log_level level, const char *fmt, va_list ap);

/* One event with extra fields: source (e.g. "libmicrohttpd") may be NULL; batch_id < 0 and
 * error NULL are left out. */
void log_event_fields(log_level level, const char *source, long long batch_id,
                      const char *error, const char *msg);

#endif
