/* image_check.c - JPEG markers walked as stb_image v2.27 does (DHT code counts); PNG sides. */
#include "image_check.h"

#include <stdbool.h>
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

/* stb 2.27 allocates its decoder without zeroing it and does not check that a scan's Huffman
 * tables were ever defined: a scan naming a table no DHT defined decodes with uninitialised
 * heap memory as the table (an assertion in debug builds, reads at garbage indices in
 * release builds). Refuses such a scan: baseline scans use each component's DC and AC table,
 * progressive scans the DC table (first DC scan) or the AC table (AC scans). */
static int check_scan_tables(reader *r, bool progressive, bool defined[2][4], char *err,
                             size_t errlen) {
    int n = get8(r);
    if (n < 1 || n > 4) return 0; /* stb refuses it */
    int tables[4];
    for (int i = 0; i < n; i++) {
        get8(r); /* component id */
        tables[i] = get8(r);
    }
    int ss = get8(r);
    get8(r); /* spectral end */
    int ah = get8(r) >> 4;
    for (int i = 0; i < n; i++) {
        int dc = tables[i] >> 4, ac = tables[i] & 15;
        if (dc > 3 || ac > 3) return 0; /* stb refuses it */
        bool need_dc = progressive ? ss == 0 && ah == 0 : true;
        bool need_ac = progressive ? ss > 0 : true;
        if ((need_dc && !defined[0][dc]) || (need_ac && !defined[1][ac])) {
            snprintf(err, errlen, "cannot decode jpeg: a scan uses %s Huffman table %d, which "
                     "no DHT segment defines", need_dc && !defined[0][dc] ? "DC" : "AC",
                     need_dc && !defined[0][dc] ? dc : ac);
            return -1;
        }
    }
    return 0;
}

static int check_jpeg(const uint8_t *bytes, size_t len, char *err, size_t errlen) {
    reader r = {bytes, len, 2};
    int sof = 0;                   /* the frame's SOF marker, once seen */
    bool defined[2][4] = {{false}}; /* [DC, AC][table id]: a DHT defined it */
    int m = next_marker(&r);
    while (m >= 0) {
        if (m == 0xd9) return 0; /* EOI: stb reads no further */
        if (m == 0xc4) {         /* DHT: tables until the segment length runs out */
            long seg = get16(&r) - 2;
            while (seg > 0) {
                int q = get8(&r), n = 0;
                if (q >> 4 > 1 || (q & 15) > 3) return 0; /* stb refuses it */
                defined[q >> 4][q & 15] = true;
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
            if (!sof) return 0;  /* stb refuses a scan before the frame header */
            size_t start = r.pos;
            long seg = get16(&r);
            if (seg < 2) return 0;
            if (check_scan_tables(&r, sof == 0xc2, defined, err, errlen) != 0) return -1;
            r.pos = start + (size_t)seg;
            m = skip_entropy(&r);
        } else if (m == 0xdc) { /* DNL */
            r.pos += 4;
            m = next_marker(&r);
        } else if ((m >= 0xc0 && m <= 0xc2) || m == 0xdb || m == 0xdd ||
                   (m >= 0xe0 && m <= 0xef) || m == 0xfe) { /* segments with a length */
            if (m >= 0xc0 && m <= 0xc2) sof = m;
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

/* PNG: the IHDR chunk comes first, right after the 8-byte signature; then every chunk up to
 * IEND must lie inside the data. stb 2.27 grows its IDAT buffer to what a chunk's length
 * field claims before it reads the chunk, so a 100-byte file could make it allocate 2 GiB
 * (and then fail, "outofdata"). */
static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int check_png(const uint8_t *b, size_t len, char *err, size_t errlen) {
    size_t pos = 8; /* after the signature; stb also accepts Apple's CgBI chunk before IHDR */
    while (pos + 8 <= len) {
        uint32_t n = be32(b + pos);
        const uint8_t *type = b + pos + 4;
        if (n > 0x7fffffffu || n > len - pos - 8 || len - pos - 8 - n < 4) {
            snprintf(err, errlen, "cannot decode png: a chunk claims %lu bytes, more than the "
                     "data holds (truncated or corrupt)", (unsigned long)n);
            return -1;
        }
        if (memcmp(type, "IHDR", 4) == 0 && n >= 8 && ((type[4] | type[8]) & 0x80)) {
            snprintf(err, errlen, "cannot decode png: header gives a side over 2^31 - 1 pixels");
            return -1;
        }
        if (memcmp(type, "IEND", 4) == 0) return 0;
        pos += 12 + (size_t)n;
    }
    return 0; /* no IEND: stb fails on its own, having allocated nothing large */
}

int image_check(const uint8_t *bytes, size_t len, char *err, size_t errlen) {
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len >= 3 && bytes[0] == 0xff && bytes[1] == 0xd8 && bytes[2] == 0xff)
        return check_jpeg(bytes, len, err, errlen);
    if (len >= 8 && memcmp(bytes, png_sig, 8) == 0) return check_png(bytes, len, err, errlen);
    return 0;
}
