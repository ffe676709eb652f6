/* trace_context.c - the traceparent header, read and written. */
#include "trace_context.h"

#include <stdio.h>
#include <string.h>

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1; /* upper case is invalid in traceparent */
}

/* n lower-case hex digits at s, not all zero when nonzero is asked. */
static bool hex_field(const char *s, int n, bool nonzero) {
    bool any = false;
    for (int i = 0; i < n; i++) {
        int v = hex_value(s[i]);
        if (v < 0) return false;
        any |= v != 0;
    }
    return any || !nonzero;
}

bool trace_context_parse(const char *h, trace_context *out) {
    if (!h) return false;
    while (*h == ' ' || *h == '\t') h++;
    /* 2 version, '-', 32 trace id, '-', 16 parent id, '-', 2 flags: 55 characters */
    if (strnlen(h, 56) < 55 || !hex_field(h, 2, false) || h[2] != '-' || h[35] != '-' ||
        h[52] != '-')
        return false;
    if (strncmp(h, "ff", 2) == 0) return false;
    bool v00 = strncmp(h, "00", 2) == 0;
    size_t n = strlen(h);
    while (n > 55 && (h[n - 1] == ' ' || h[n - 1] == '\t')) n--;
    if (v00 ? n != 55 : n > 55 && h[55] != '-') return false; /* 00 has exactly four fields */
    if (!hex_field(h + 3, 32, true) || !hex_field(h + 36, 16, true) || !hex_field(h + 53, 2, false))
        return false;
    memcpy(out->trace_id, h + 3, 32);
    out->trace_id[32] = '\0';
    memcpy(out->parent_id, h + 36, 16);
    out->parent_id[16] = '\0';
    out->flags = (uint8_t)(hex_value(h[53]) << 4 | hex_value(h[54]));
    return true;
}

void trace_context_hex(const uint8_t *bytes, int n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

void trace_context_format(const char *trace_id, const char *span_id, uint8_t flags, char out[56]) {
    snprintf(out, 56, "00-%.32s-%.16s-%02x", trace_id, span_id, flags);
}
