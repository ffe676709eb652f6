/* image_check.c - PNG chunks and sides checked before stb_image reads them. */
#include "image_check.h"

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
