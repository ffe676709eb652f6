/* content_coding.h - HTTP content codings (RFC 9110 8.4) of request and response bodies, on zlib.
 *
 * Requests: tritonclient's request_compression_algorithm and browsers' CompressionStream send
 * bodies with Content-Encoding gzip or deflate. content_coding_parse() judges the header;
 * an inflater then turns the body back into what the handlers parse, as it arrives, never
 * holding more than the limit the caller gives: a compression bomb stops at that many
 * inflated bytes (CONTENT_TOO_LARGE), however small its compressed form.
 * "deflate" is the zlib format (RFC 1950), as the RFC and tritonclient mean it; a raw deflate
 * stream, which some clients send under that name, is accepted too.
 *
 * Responses: content_coding_accepts() reads Accept-Encoding; content_coding_compress() makes
 * a gzip or zlib body in one call; content_accept_media_q() reads Accept (RFC 9110 12.5.1),
 * for POST /explain's image/png answers.
 *
 * No globals; each inflater belongs to one request. Fuzzed by tests/fuzz/fuzz_headers.c. */
#ifndef API_CONTENT_CODING_H
#define API_CONTENT_CODING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    CONTENT_CODING_IDENTITY = 0,
    CONTENT_CODING_GZIP,
    CONTENT_CODING_DEFLATE,
    CONTENT_CODING_UNSUPPORTED, /* anything else, or more than one coding */
} content_coding;

/* The Content-Encoding header's coding (NULL or empty: identity). Case-insensitive; "x-gzip"
 * is gzip; "identity" may appear beside one coding. */
content_coding content_coding_parse(const char *header);

/* Whether an Accept-Encoding header accepts coding c (a q-value of 0 refuses it; "*" counts). */
bool content_coding_accepts(const char *accept_encoding, content_coding c);

/* The q-value an Accept header gives media type `type` (such as "image/png"): that of its own
 * entry, else of its major type's wildcard ("image" then "/" and "*"), else of the any-type
 * wildcard (case-insensitive; media parameters other than q
 * ignored; a q outside 0..1 counts as 0); -1 when no entry covers it or accept is NULL.
 * exact (may be NULL): whether the entry was the type itself, not a wildcard. */
double content_accept_media_q(const char *accept, const char *type, bool *exact);

/* The header spelling of c: "gzip", "deflate" (identity: "identity"). */
const char *content_coding_name(content_coding c);

typedef enum {
    CONTENT_OK = 0,
    CONTENT_TOO_LARGE, /* more than the limit came out */
    CONTENT_CORRUPT,   /* not a valid stream of its coding, or data after its end */
    CONTENT_TRUNCATED, /* content_inflater_finish: the stream did not end */
    CONTENT_NO_MEMORY,
} content_status;

typedef struct content_inflater content_inflater;

/* An inflater for c (gzip or deflate), whose output may grow to at most limit bytes. NULL when
 * out of memory. */
content_inflater *content_inflater_new(content_coding c, size_t limit);

/* Inflates n more compressed bytes, appending what comes out to the inflater's buffer. After
 * an error the inflater refuses further input with the same status. */
content_status content_inflater_feed(content_inflater *z, const uint8_t *in, size_t n);

/* The body ended: CONTENT_OK when the stream ended properly too. */
content_status content_inflater_finish(content_inflater *z);

/* The inflated bytes so far; *len their count. Owned by the inflater: valid until
 * content_inflater_free. */
const uint8_t *content_inflater_data(const content_inflater *z, size_t *len);

void content_inflater_free(content_inflater *z);

/* Compresses in (n bytes) with c (gzip or deflate) into a new malloc'd buffer. Returns 0, or -1
 * when out of memory. Level 1: the bodies are float tensors and JSON, where speed matters
 * more than the last percent. */
int content_coding_compress(content_coding c, const void *in, size_t n, uint8_t **out,
                            size_t *out_len);

#endif
