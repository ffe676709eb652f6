/* image_check.c - PNG chunks and sides checked before stb_image reads them. */
#include "image_check.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

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
    if (len >= 8 && memcmp(bytes, png_sig, 8) == 0) return check_png(bytes, len, err, errlen);
    return 0;
}

/* Samples per pixel of a PNG color type, 0 for one the format does not define. */
static int png_channels(uint8_t color_type) {
    switch (color_type) {
    case 0: case 3: return 1; /* gray, palette */
    case 2: return 3;
    case 4: return 2;
    case 6: return 4;
    default: return 0;
    }
}

/* Rows of w x h pixels at bits_per_pixel, each with its filter byte. */
static int64_t png_rows_bytes(int64_t w, int64_t h, int64_t bits_per_pixel) {
    if (w <= 0 || h <= 0) return 0;
    return h * (1 + (w * bits_per_pixel + 7) / 8);
}

int image_png_need_of(const uint8_t *b, size_t len, image_png_need *out) {
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len < 29 || memcmp(b, png_sig, 8) != 0 || memcmp(b + 12, "IHDR", 4) != 0) return -1;
    out->width = be32(b + 16);
    out->height = be32(b + 20);
    out->bits = b[24];
    out->channels = png_channels(b[25]);
    bool interlaced = b[28] == 1;
    if (!out->channels || out->width == 0 || out->height == 0 || out->width > 0x7fffffff ||
        out->height > 0x7fffffff ||
        (out->bits != 1 && out->bits != 2 && out->bits != 4 && out->bits != 8 && out->bits != 16))
        return -1;
    const int64_t bpp = (int64_t)out->channels * out->bits, w = out->width, h = out->height;
    if (!interlaced) {
        out->raw_bytes = png_rows_bytes(w, h, bpp);
    } else { /* Adam7: x and y origin and spacing of the seven passes */
        static const int pass[7][4] = {{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4},
                                       {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}};
        out->raw_bytes = 0;
        for (int p = 0; p < 7; p++)
            out->raw_bytes += png_rows_bytes((w - pass[p][0] + pass[p][2] - 1) / pass[p][2],
                                             (h - pass[p][1] + pass[p][3] - 1) / pass[p][3], bpp);
    }
    const int stored = b[25] == 3 ? 4 : out->channels;
    out->pixel_bytes = w * h * stored * (out->bits == 16 ? 2 : 1);
    return 0;
}
