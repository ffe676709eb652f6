/* base64.h - base64 decoding for the KServe v2 BYTES inputs sent as JSON strings.
 *
 * Standard or URL-safe alphabet, padding optional, whitespace ignored. Pure: thread-safe. */
#ifndef API_BASE64_H
#define API_BASE64_H

#include <stddef.h>

/* Decodes len characters of s into a new buffer (*out, malloc'd: the caller frees it).
 * Returns the decoded length, or -1 for invalid input or no memory (then *out is unset). */
long long base64_decode(const char *s, size_t len, unsigned char **out);

#endif
