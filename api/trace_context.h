/* trace_context.h - W3C Trace Context (https://www.w3.org/TR/trace-context/): the traceparent
 * header, version 00.
 *
 *   traceparent: 00-<trace-id: 32 hex>-<parent-id: 16 hex>-<flags: 2 hex>
 *
 * A request that carries a valid one keeps its trace id; the service answers with the same
 * trace id, its own span id and the caller's flags, and logs the trace id. A request without
 * one (or with an invalid one, which the spec says to ignore) gets a fresh trace id. Lower-case
 * hex only; all-zero ids and version ff are invalid; a later version may carry more fields
 * after the flags, which are ignored. Pure functions; fuzzed by tests/fuzz/fuzz_headers.c. */
#ifndef API_TRACE_CONTEXT_H
#define API_TRACE_CONTEXT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    char trace_id[33];  /* 32 lower-case hex digits */
    char parent_id[17]; /* 16: the caller's span */
    uint8_t flags;      /* bit 0: sampled */
} trace_context;

/* Reads a traceparent header value. Returns false (and leaves *out unspecified) when the
 * header is absent or invalid. */
bool trace_context_parse(const char *header, trace_context *out);

/* Writes 16 random bytes as a trace id and 8 as a span id (lower-case hex). */
void trace_context_hex(const uint8_t *bytes, int n, char *out);

/* The traceparent to answer with: "00-" trace_id "-" span_id "-" flags; out holds 56 bytes. */
void trace_context_format(const char *trace_id, const char *span_id, uint8_t flags, char out[56]);

#endif
