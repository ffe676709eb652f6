/* log.c - JSON event lines on stderr. */
#include "log.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"

static const char *const level_names[] = {[LOG_INFO] = "info", [LOG_WARNING] = "warning",
                                          [LOG_ERROR] = "error"};

void log_event_fields(log_level level, const char *source, long long batch_id,
                      const char *error, const char *msg) {
    char clean_msg[1024], clean_err[512];
    json_t *o = json_pack("{s:s}", "level", level_names[level]);
    if (source) json_object_set_new(o, "source", json_string(source));
    json_object_set_new(o, "msg", json_string(api_utf8_sanitize(msg, clean_msg, sizeof clean_msg)));
    if (batch_id >= 0) json_object_set_new(o, "batch_id", json_integer(batch_id));
    if (error)
        json_object_set_new(o, "error",
                            json_string(api_utf8_sanitize(error, clean_err, sizeof clean_err)));
    char *line = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!line) return;
    size_t n = strlen(line);
    line = realloc(line, n + 2);
    if (!line) return;
    memcpy(line + n, "\n", 2);
    fputs(line, stderr); /* one write per line: threads never interleave within it */
    fflush(stderr);
    free(line);
}

void log_eventv(log_level level, const char *fmt, va_list ap) {
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
    log_event_fields(level, NULL, -1, NULL, msg);
}

void log_event(log_level level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_eventv(level, fmt, ap);
    va_end(ap);
}
