/* image_check.c - JPEG markers walked as stb_image v2.27 does (DHT code counts); PNG sides. */
#include "image_check.h"

#include <stdio.h>
#include <string.h>

/* A reader that, like stbi__get8, yields 0 past the end. */
typedef struct {
    const uint8_t *b;
    size_t len, pos;
} reader;

static int get8(reader *r) { return r->pos < r->len ? r->b[r->pos++] : (r->pos++, 0); }
static int get16(reader *r) {
    int hi = get8(r);
    return hi << 8 | get8(r);
}
static int at_eof(const reader *r) { return r->pos >= r->len; }

/* The next marker, skipping junk and 0xff fill bytes the way stb's header loop does; -1 at
 * the end of the data. */
static int next_marker(reader *r) {
    while (!at_eof(r)) {
        if (get8(r) != 0xff) continue;
        int m;
        do m = get8(r);
        while (m == 0xff && !at_eof(r));
        return at_eof(r) && m == 0 ? -1 : m;
    }
    return -1;
}

/* Entropy-coded data after an SOS: stops after the first 0xff that is neither a stuffed
 * 0x00 nor a restart marker (stb's decoder reads to there; reading less only means stb
 * stops earlier, on an error). Returns that marker, or -1 at the end. */
static int skip_entropy(reader *r) {
    while (!at_eof(r)) {
        if (get8(r) != 0xff) continue;
        int c;
        do c = get8(r);
        while (c == 0xff && !at_eof(r));
        if (at_eof(r) && c == 0) return -1;
        if (c == 0x00 || (c >= 0xd0 && c <= 0xd7)) continue;
        return c;
    }
    return -1;
}

static int check_jpeg(const uint8_t *bytes, size_t len, char *err, size_t errlen) {
    reader r = {bytes, len, 2};
    int m = next_marker(&r);
    while (m >= 0) {
        if (m == 0xd9) return 0; /* EOI: stb reads no further */
        if (m == 0xc4) {         /* DHT: tables until the segment length runs out */
            long seg = get16(&r) - 2;
            while (seg > 0) {
                int q = get8(&r), n = 0;
                if (q >> 4 > 1 || (q & 15) > 3) return 0; /* stb refuses it */
                for (int i = 0; i < 16; i++) n += get8(&r);
                if (n > 256) {
                    snprintf(err, errlen, "cannot decode jpeg: bad DHT header (a Huffman table "
                             "with %d codes; at most 256)", n);
                    return -1;
                }
                r.pos += (size_t)n;
                seg -= 17 + n;
            }
            if (seg != 0) return 0; /* stb refuses the segment */
            m = next_marker(&r);
        } else if (m == 0xda) { /* SOS: its header, then entropy-coded data */
            long seg = get16(&r);
            if (seg < 2) return 0;
            r.pos += (size_t)(seg - 2);
            m = skip_entropy(&r);
        } else if (m == 0xdc) { /* DNL */
            r.pos += 4;
            m = next_marker(&r);
        } else if ((m >= 0xc0 && m <= 0xc2) || m == 0xdb || m == 0xdd ||
                   (m >= 0xe0 && m <= 0xef) || m == 0xfe) { /* segments with a length */
            long seg = get16(&r);
            if (seg < 2) return 0;
            r.pos += (size_t)(seg - 2);
            m = next_marker(&r);
        } else {
            return 0; /* stb stops on any other marker ("unknown marker") */
        }
        if (r.pos > len) return 0;
    }
    return 0;
}

/* PNG: the IHDR chunk comes first, right after the 8-byte signature. */
static int check_png(const uint8_t *b, size_t len, char *err, size_t errlen) {
    if (len < 24 || b[12] != 'I' || b[13] != 'H' || b[14] != 'D' || b[15] != 'R') return 0;
    if ((b[16] | b[20]) & 0x80) {
        snprintf(err, errlen, "cannot decode png: header gives a side over 2^31 - 1 pixels");
        return -1;
    }
    return 0;
}

int image_check(const uint8_t *bytes, size_t len, char *err, size_t errlen) {
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len >= 3 && bytes[0] == 0xff && bytes[1] == 0xd8 && bytes[2] == 0xff)
        return check_jpeg(bytes, len, err, errlen);
    if (len >= 8 && memcmp(bytes, png_sig, 8) == 0) return check_png(bytes, len, err, errlen);
    return 0;
}
