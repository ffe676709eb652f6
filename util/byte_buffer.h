/* byte_buffer.h - a growable byte buffer whose every allocation is checked.
 *
 * The one growing buffer of the project: request bodies, binary v2 outputs, PNG files as
 * stb_image_write emits them, files the CLI reads. Zero-initialise it ({0}); append to it;
 * take the bytes (the caller then owns them and frees them with free()) or free them.
 * Growth doubles, from BYTE_BUFFER_FIRST_CAP. When an allocation fails the buffer keeps what
 * it held, `failed` is set, and every later append is a no-op returning false, so a writer
 * may append several times and check once.
 *
 * Not thread-safe: one owner at a time. */
#ifndef UTIL_BYTE_BUFFER_H
#define UTIL_BYTE_BUFFER_H

#include <stdbool.h>
#include <stddef.h>

#define BYTE_BUFFER_FIRST_CAP 4096

typedef struct {
    unsigned char *data; /* malloc'd, owned; NULL until the first append */
    size_t len, cap;
    bool failed; /* an allocation failed: the content is incomplete */
} byte_buffer;

/* Makes room for extra more bytes after len. Returns false (and sets failed) when out of
 * memory or already failed. */
bool byte_buffer_reserve(byte_buffer *b, size_t extra);

/* Appends n bytes of src. Returns false (and sets failed) when out of memory. */
bool byte_buffer_append(byte_buffer *b, const void *src, size_t n);

/* Hands the bytes to the caller (free() them; NULL when nothing was appended) and empties
 * the buffer. */
unsigned char *byte_buffer_take(byte_buffer *b, size_t *len);

/* Frees the bytes and empties the buffer (failed cleared too). */
void byte_buffer_free(byte_buffer *b);

#endif
