/* exif.c - EXIF orientation from JPEG APP1 segments and WebP EXIF chunks, bounds-checked. */
#include "exif.h"

#include <string.h>

#define TAG_ORIENTATION 0x0112
#define TYPE_SHORT 3

static unsigned rd16(const uint8_t *p, int big) {
    return big ? (unsigned)p[0] << 8 | p[1] : (unsigned)p[1] << 8 | p[0];
}

static uint32_t rd32(const uint8_t *p, int big) {
    return big ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
               : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

int exif_orientation_tiff(const uint8_t *t, size_t len) {
    if (len < 8) return 0;
    int big;
    if (t[0] == 'I' && t[1] == 'I') big = 0;
    else if (t[0] == 'M' && t[1] == 'M') big = 1;
    else return 0;
    if (rd16(t + 2, big) != 42) return 0;
    uint32_t ifd = rd32(t + 4, big);
    /* Sizes compared by subtraction so that no sum can wrap. */
    if (ifd > len || len - ifd < 2) return 0;
    unsigned n = rd16(t + ifd, big);
    size_t pos = (size_t)ifd + 2;
    for (unsigned i = 0; i < n && len - pos >= 12; i++, pos += 12) {
        const uint8_t *e = t + pos;
        if (rd16(e, big) != TAG_ORIENTATION) continue;
        /* A SHORT with count 1 sits in the first two bytes of the 4-byte value field. */
        if (rd16(e + 2, big) != TYPE_SHORT || rd32(e + 4, big) < 1) return 0;
        unsigned v = rd16(e + 8, big);
        return v >= 1 && v <= 8 ? (int)v : 0;
    }
    return 0;
}

int exif_orientation_jpeg(const uint8_t *b, size_t len) {
    if (len < 4 || b[0] != 0xff || b[1] != 0xd8) return 0;
    size_t pos = 2;
    while (len - pos >= 4) {
        if (b[pos] != 0xff) return 0;
        uint8_t m = b[pos + 1];
        if (m == 0xff) { /* fill byte before a marker */
            pos++;
            continue;
        }
        if (m == 0xda || m == 0xd9) return 0; /* the first scan, or the end: no EXIF before */
        if (m == 0x01 || (m >= 0xd0 && m <= 0xd7)) { /* markers without a length */
            pos += 2;
            continue;
        }
        size_t seg = (size_t)b[pos + 2] << 8 | b[pos + 3]; /* counts itself, not the marker */
        if (seg < 2 || seg > len - pos - 2) return 0;      /* cut short: ignored */
        if (m == 0xe1 && seg >= 8 && memcmp(b + pos + 4, "Exif\0\0", 6) == 0)
            return exif_orientation_tiff(b + pos + 10, seg - 8);
        pos += 2 + seg;
    }
    return 0;
}

int exif_orientation_webp(const uint8_t *b, size_t len) {
    if (len < 12 || memcmp(b, "RIFF", 4) != 0 || memcmp(b + 8, "WEBP", 4) != 0) return 0;
    size_t pos = 12;
    while (len - pos >= 8) {
        const uint8_t *c = b + pos;
        uint32_t size = rd32(c + 4, 0);
        if (size > len - pos - 8) return 0; /* a chunk past the data: ignored */
        if (memcmp(c, "EXIF", 4) == 0) {
            const uint8_t *t = c + 8;
            size_t n = size;
            if (n >= 6 && memcmp(t, "Exif\0\0", 6) == 0) t += 6, n -= 6;
            return exif_orientation_tiff(t, n);
        }
        size_t step = 8 + (size_t)size + (size & 1); /* chunks are padded to even sizes */
        if (step > len - pos) return 0;
        pos += step;
    }
    return 0;
}
