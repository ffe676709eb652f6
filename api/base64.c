/* base64.c - base64 to bytes. */
#include "base64.h"

#include <stdlib.h>

long long base64_decode(const char *s, size_t len, unsigned char **out) {
    unsigned char *buf = malloc(len / 4 * 3 + 3);
    if (!buf) return -1;
    size_t n = 0;
    unsigned acc = 0;
    int bits = 0, pad = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        int v;
        if (ch >= 'A' && ch <= 'Z') v = ch - 'A';
        else if (ch >= 'a' && ch <= 'z') v = ch - 'a' + 26;
        else if (ch >= '0' && ch <= '9') v = ch - '0' + 52;
        else if (ch == '+' || ch == '-') v = 62;
        else if (ch == '/' || ch == '_') v = 63;
        else if (ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t') continue;
        else if (ch == '=') {
            pad++;
            continue;
        } else v = -1;
        if (v < 0 || pad) { /* a foreign byte, or data after padding */
            free(buf);
            return -1;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (bits >= 6 || pad > 2) { /* one leftover sextet cannot end a valid encoding */
        free(buf);
        return -1;
    }
    *out = buf;
    return (long long)n;
}
