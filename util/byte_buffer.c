/* byte_buffer.c - the growable byte buffer. */
#include "byte_buffer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

bool byte_buffer_reserve(byte_buffer *b, size_t extra) {
    if (b->failed) return false;
    if (extra <= b->cap - b->len) return true;
    if (extra > SIZE_MAX / 2 - b->len) {
        b->failed = true;
        return false;
    }
    size_t cap = b->cap ? b->cap : BYTE_BUFFER_FIRST_CAP;
    while (cap < b->len + extra) cap *= 2;
    unsigned char *grown = realloc(b->data, cap);
    if (!grown) {
        b->failed = true;
        return false;
    }
    b->data = grown;
    b->cap = cap;
    return true;
}

bool byte_buffer_append(byte_buffer *b, const void *src, size_t n) {
    if (!byte_buffer_reserve(b, n)) return false;
    if (n) memcpy(b->data + b->len, src, n);
    b->len += n;
    return true;
}

unsigned char *byte_buffer_take(byte_buffer *b, size_t *len) {
    unsigned char *p = b->data;
    *len = b->len;
    memset(b, 0, sizeof *b);
    return p;
}

void byte_buffer_free(byte_buffer *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}
