/* image_check.h - structural checks of untrusted PNG bytes before stb_image sees them.
 *
 * stb_image (Debian 12: v2.27) decodes PNG only; JPEG goes to libjpeg-turbo and WebP to
 * libwebp (model/image_decode.c), which check their own structures.
 *
 * PNG: the header's width and height are 32-bit fields, but the format allows at most
 * 2^31 - 1; larger values are refused here, so that the pixel count (width x height in
 * int64_t) cannot overflow (UBSan finding of tests/fuzz/fuzz_classify_request). And every
 * chunk before IEND must lie inside the data: stb grows its IDAT buffer to a chunk's claimed
 * length before reading it, so a 100-byte file could make it allocate 2 GiB (a fuzzer
 * timeout under ASan; a 500 where memory is not overcommitted).
 *
 * Until this project moved JPEG to libjpeg-turbo the same walk also refused the JPEG Huffman
 * tables that overflow stb 2.27 (more than 256 codes) and scans naming tables no DHT
 * defined; libjpeg-turbo refuses the first itself ("Bogus Huffman table definition") and
 * decodes the second with the standard tables, as PIL does.
 *
 * Called by image_decode() (model/image_decode.h) before any PNG decoding: every path that
 * decodes an image passes through it.
 *
 * Pure, reentrant; reads only [bytes, bytes + len). */
#ifndef MODEL_IMAGE_CHECK_H
#define MODEL_IMAGE_CHECK_H

#include <stddef.h>
#include <stdint.h>

/* 0 when the bytes pass (PNG: IHDR sides within 2^31 - 1 and every chunk inside the data;
 * anything else passes, for its decoder to judge), -1 with err (a message for the client:
 * 422 undecodable_image) otherwise. */
int image_check(const uint8_t *bytes, size_t len, char *err, size_t errlen);

/* What a PNG's header (IHDR) says decoding it needs: the bound on the inflated data and on the
 * decoder's memory (issue 25: an IDAT stream may inflate far past what the header needs). */
typedef struct {
    int64_t width, height;
    int channels;        /* samples per stored pixel: 1 (gray, palette), 2, 3 or 4 */
    int bits;            /* per sample: 1, 2, 4, 8 or 16 */
    int64_t raw_bytes;   /* the inflated IDAT data: a filter byte per row, every Adam7 pass */
    int64_t pixel_bytes; /* the decoded image at its depth: 4 channels for a palette, 2 bytes
                          * a sample at 16 bits, 1 below */
} image_png_need;

/* 0 with *out from a PNG's IHDR (a valid color type and depth), -1 otherwise. */
int image_png_need_of(const uint8_t *bytes, size_t len, image_png_need *out);

#endif
