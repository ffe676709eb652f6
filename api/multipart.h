/* multipart.h - split a buffered multipart/form-data body into its parts (RFC 7578).
 *
 * The whole body is in memory (bounded by max_body_bytes before it is read), so parsing is a
 * pass over one buffer with no allocation per byte. Parts point into the caller's buffer
 * (borrowed). Reentrant; fuzzed by tests/fuzz. */
#ifndef API_MULTIPART_H
#define API_MULTIPART_H

#include <stddef.h>

#define MULTIPART_MAX_PARTS 1024

typedef struct {
    const unsigned char *data; /* borrowed from the body */
    size_t len;
    char name[128];            /* form field name, may be empty */
    char filename[256];        /* may be empty */
    char content_type[128];    /* may be empty */
} multipart_part;

/* Extracts the boundary parameter from a Content-Type header value
 * ("multipart/form-data; boundary=xyz"). Returns 0, or -1 with err. */
int multipart_boundary(const char *content_type, char *boundary, size_t cap, char *err,
                       size_t errlen);

/* Parses body into at most max_parts parts. Returns the number of parts (>= 0), or -1 with
 * err for a malformed body; -2 when there are more than max_parts parts. */
int multipart_parse(const unsigned char *body, size_t len, const char *boundary,
                    multipart_part *parts, int max_parts, char *err, size_t errlen);

#endif
