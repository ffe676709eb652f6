/* json_scan.c - counting a JSON text's values and depth without building it. */
#include "json_scan.h"

#include <stdbool.h>
#include <string.h>

/* The bytes of a string after its opening quote, up to and including the closing one (or the
 * end of the text). */
static size_t skip_string(const char *s, size_t len, size_t i) {
    while (i < len) {
        char c = s[i++];
        if (c == '\\') i++;
        else if (c == '"') break;
    }
    return i < len ? i : len;
}

/* A number or a literal: letters, digits, '.', '+', '-'. */
static bool is_token_byte(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           c == '.' || c == '+' || c == '-';
}

json_scan_status json_scan(const char *text, size_t len, const json_scan_limits *lim,
                           json_scan_counts *out) {
    memset(out, 0, sizeof *out);
    int depth = 0;
    size_t i = 0;
    while (i < len) {
        char c = text[i++];
        if (c == '{' || c == '[') {
            if (++out->containers > lim->max_containers) return JSON_SCAN_TOO_MANY_CONTAINERS;
            if (++depth > out->depth) out->depth = depth;
            if (depth > lim->max_depth) return JSON_SCAN_TOO_DEEP;
        } else if (c == '}' || c == ']') {
            if (depth > 0) depth--;
        } else if (c == '"') {
            size_t end = skip_string(text, len, i);
            out->string_bytes += end - i;
            i = end;
            if (++out->values > lim->max_values) return JSON_SCAN_TOO_MANY_VALUES;
        } else if (is_token_byte(c)) {
            while (i < len && is_token_byte(text[i])) i++;
            if (++out->values > lim->max_values) return JSON_SCAN_TOO_MANY_VALUES;
        }
    }
    return JSON_SCAN_OK;
}

long long json_scan_cost_bytes(const json_scan_counts *c) {
    return (long long)c->values * 48 + (long long)c->containers * 256 +
           (long long)c->string_bytes;
}
