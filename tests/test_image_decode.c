/* test_image_decode.c - model/image_decode: sniffing, each format decoded, gray and alpha to
 * RGB, truncated and corrupt files refused, the pixel limit before any pixel is decoded, and
 * preprocess_bytes as decode + preprocess. */
#include "image_decode.h"
#include "preprocess.h"
#include "test_model_util.h"

static uint32_t crc32_png(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xffffffffu;
}

/* A PNG signature + IHDR claiming w x h RGB + IEND, no pixel data (45 bytes): stbi_info
 * accepts it when stb's own size limits allow, decoding cannot succeed. */
static void png_header_only(uint8_t out[45], uint32_t w, uint32_t h) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memcpy(out, sig, 8);
    const uint8_t ihdr[17] = {'I', 'H', 'D', 'R', (uint8_t)(w >> 24), (uint8_t)(w >> 16),
                              (uint8_t)(w >> 8), (uint8_t)w, (uint8_t)(h >> 24), (uint8_t)(h >> 16),
                              (uint8_t)(h >> 8), (uint8_t)h, 8, 2, 0, 0, 0};
    out[8] = 0, out[9] = 0, out[10] = 0, out[11] = 13;
    memcpy(out + 12, ihdr, 17);
    uint32_t crc = crc32_png(ihdr, 17);
    out[29] = (uint8_t)(crc >> 24), out[30] = (uint8_t)(crc >> 16), out[31] = (uint8_t)(crc >> 8),
    out[32] = (uint8_t)crc;
    static const uint8_t iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};
    memcpy(out + 33, iend, 12);
}

static void test_preprocess_decode(void) {
    char err[512];
    preprocess_image img;
    size_t len;

    /* Sniffing looks at bytes only. */
    const uint8_t jpeg_sig[3] = {0xff, 0xd8, 0xff}, png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    EXPECT(image_format_sniff(jpeg_sig, 3) == IMAGE_FORMAT_JPEG);
    EXPECT(image_format_sniff(jpeg_sig, 2) == IMAGE_FORMAT_UNKNOWN);
    EXPECT(image_format_sniff(png_sig, 8) == IMAGE_FORMAT_PNG);
    EXPECT(image_format_sniff(png_sig, 7) == IMAGE_FORMAT_UNKNOWN);
    EXPECT(image_format_sniff((const uint8_t *)"GIF89a\x01\x00", 8) == IMAGE_FORMAT_UNKNOWN);
    EXPECT(image_format_sniff((const uint8_t *)"", 0) == IMAGE_FORMAT_UNKNOWN);
    EXPECT(strcmp(image_format_name(IMAGE_FORMAT_JPEG), "jpeg") == 0);
    EXPECT(strcmp(image_format_name(IMAGE_FORMAT_PNG), "png") == 0);
    EXPECT(strcmp(image_format_name(IMAGE_FORMAT_UNKNOWN), "unknown") == 0);

    /* Not an image. */
    const char *text = "{\"this\": \"is json, not an image\"}";
    err[0] = '\0';
    EXPECT(decode_full((const uint8_t *)text, strlen(text), 0, &img, err, sizeof err) ==
           PREPROCESS_UNSUPPORTED);
    EXPECT(err[0] != '\0' && img.rgb == NULL);
    err[0] = '\0';
    EXPECT(decode_full((const uint8_t *)"GIF89a\x01\x00\x01\x00", 10, 0, &img, err,
                             sizeof err) == PREPROCESS_UNSUPPORTED);
    EXPECT(err[0] != '\0');
    err[0] = '\0';
    EXPECT(decode_full(jpeg_sig, 0, 0, &img, err, sizeof err) == PREPROCESS_UNSUPPORTED);

    /* Grayscale JPEG: R = G = B. */
    uint8_t *bytes = read_image("camera.jpg", &len);
    EXPECT(bytes != NULL);
    if (bytes) {
        EXPECT(image_format_sniff(bytes, len) == IMAGE_FORMAT_JPEG);
        preprocess_status st = decode_full(bytes, len, 0, &img, err, sizeof err);
        EXPECT(st == PREPROCESS_OK);
        if (st == PREPROCESS_OK) {
            EXPECT(img.width == 512 && img.height == 512 && img.source_channels == 1);
            EXPECT(img.format == IMAGE_FORMAT_JPEG);
            int gray = 1, lo = 255, hi = 0;
            for (size_t i = 0; i < (size_t)img.width * img.height; i++) {
                const uint8_t *p = img.rgb + 3 * i;
                gray &= p[0] == p[1] && p[1] == p[2];
                lo = p[0] < lo ? p[0] : lo;
                hi = p[0] > hi ? p[0] : hi;
            }
            EXPECT(gray);
            EXPECT(hi - lo > 100); /* a real photo, not a flat buffer */
            preprocess_image_free(&img);
        }
        free(bytes);
    }

    /* RGBA PNG: alpha dropped, RGB identical to the RGB PNG. */
    size_t len_rgb, len_rgba;
    uint8_t *b_rgb = read_image("chelsea.png", &len_rgb), *b_rgba = read_image("chelsea_rgba.png", &len_rgba);
    EXPECT(b_rgb && b_rgba);
    if (b_rgb && b_rgba) {
        preprocess_image a, b;
        EXPECT(image_format_sniff(b_rgba, len_rgba) == IMAGE_FORMAT_PNG);
        EXPECT(decode_full(b_rgb, len_rgb, 0, &a, err, sizeof err) == PREPROCESS_OK);
        EXPECT(decode_full(b_rgba, len_rgba, 0, &b, err, sizeof err) == PREPROCESS_OK);
        EXPECT(a.rgb && b.rgb);
        if (a.rgb && b.rgb) {
            EXPECT(a.source_channels == 3 && b.source_channels == 4 && b.format == IMAGE_FORMAT_PNG);
            EXPECT(a.width == 451 && a.height == 300 && b.width == 451 && b.height == 300);
            EXPECT(memcmp(a.rgb, b.rgb, (size_t)451 * 300 * 3) == 0);
        }
        preprocess_image_free(&a);
        preprocess_image_free(&b);

        /* A PNG cut short, and a PNG signature on garbage. */
        err[0] = '\0';
        preprocess_status st = decode_full(b_rgb, 100, 0, &img, err, sizeof err);
        EXPECT(st == PREPROCESS_UNDECODABLE && err[0] != '\0' && img.rgb == NULL);
        printf("  PNG cut to 100 bytes -> status %d: %s\n", st, err);
        uint8_t junk[64];
        memcpy(junk, png_sig, 8);
        for (int i = 8; i < 64; i++) junk[i] = (uint8_t)(i * 37);
        err[0] = '\0';
        EXPECT(decode_full(junk, sizeof junk, 0, &img, err, sizeof err) ==
               PREPROCESS_UNDECODABLE);
        EXPECT_HAS(err, "png");
    }
    free(b_rgb);
    free(b_rgba);

    bytes = read_image("chelsea.jpg", &len);
    EXPECT(bytes != NULL);
    if (bytes) {
        /* Truncated JPEG: the first 200 bytes hold the frame header (451x300) but no Huffman
         * tables, so stb must refuse it: a status and a message, never a crash. */
        uint8_t *cut = malloc(200);
        memcpy(cut, bytes, 200);
        err[0] = '\0';
        preprocess_status st = decode_full(cut, 200, 0, &img, err, sizeof err);
        EXPECT(st == PREPROCESS_UNDECODABLE);
        EXPECT(err[0] != '\0' && img.rgb == NULL);
        printf("  JPEG cut to 200 bytes -> status %d: %s\n", st, err);
        free(cut);
        /* Cut in the scan data: stb pads missing entropy data, so either outcome is allowed;
         * what must hold is a coherent result. */
        const size_t keep[] = {len / 2, len - 2, 3, 20};
        for (size_t i = 0; i < 4; i++) {
            cut = malloc(keep[i]);
            memcpy(cut, bytes, keep[i]);
            err[0] = '\0';
            st = decode_full(cut, keep[i], 0, &img, err, sizeof err);
            if (st == PREPROCESS_OK) {
                EXPECT(img.rgb && img.width == 451 && img.height == 300);
            } else {
                EXPECT(st == PREPROCESS_UNDECODABLE && err[0] != '\0' && img.rgb == NULL);
            }
            printf("  JPEG cut to %zu bytes -> status %d%s%s\n", keep[i], st, st ? ": " : "",
                   st ? err : "");
            preprocess_image_free(&img);
            free(cut);
        }

        /* The pixel limit: 451 x 300 = 135300. */
        err[0] = '\0';
        EXPECT(decode_full(bytes, len, 135299, &img, err, sizeof err) == PREPROCESS_TOO_LARGE);
        EXPECT_HAS(err, "135300");
        EXPECT(img.rgb == NULL);
        EXPECT(decode_full(bytes, len, 135300, &img, err, sizeof err) == PREPROCESS_OK);
        preprocess_image_free(&img);

        /* preprocess_bytes = decode (the defaults, with min_side 256: 451x300 is too small to
         * scale, whose shorter side must stay >= 320) + torchvision preprocessing at 256/224. */
        float *x = malloc(3 * 224 * 224 * sizeof(float)), *y = malloc(3 * 224 * 224 * sizeof(float));
        EXPECT(preprocess_bytes(bytes, len, NULL, PREPROCESS_TORCHVISION, 224, x, err, sizeof err) ==
               PREPROCESS_OK);
        const image_decode_options scaled = {.max_pixels = IMAGE_DECODE_DEFAULT_MAX_PIXELS, .min_side = 256};
        EXPECT(image_decode(bytes, len, &scaled, &img, err, sizeof err) == PREPROCESS_OK);
        EXPECT(img.width == 451 && img.height == 300 && img.full_width == 451 && img.full_height == 300);
        EXPECT(preprocess_rgb(&img, PREPROCESS_TORCHVISION, 256, 224, y) == PREPROCESS_OK);
        EXPECT(memcmp(x, y, 3 * 224 * 224 * sizeof(float)) == 0);
        preprocess_image_free(&img);
        const image_decode_options small = {.max_pixels = 1000};
        EXPECT(preprocess_bytes(bytes, len, &small, PREPROCESS_TORCHVISION, 224, x, err, sizeof err) ==
               PREPROCESS_TOO_LARGE);
        free(x);
        free(y);
        free(bytes);
    }

    /* The limit applies before decoding: a header-only PNG claiming 5000 x 5000 is refused as
     * too large, not attempted; without a limit the decoder runs and finds no pixel data. */
    uint8_t png[45];
    png_header_only(png, 5000, 5000);
    EXPECT(image_format_sniff(png, sizeof png) == IMAGE_FORMAT_PNG);
    err[0] = '\0';
    EXPECT(decode_full(png, sizeof png, 20000000, &img, err, sizeof err) == PREPROCESS_TOO_LARGE);
    EXPECT_HAS(err, "5000x5000");
    EXPECT(img.rgb == NULL);
    err[0] = '\0';
    preprocess_status st = decode_full(png, sizeof png, 0, &img, err, sizeof err);
    EXPECT(st == PREPROCESS_UNDECODABLE && img.rgb == NULL);
    EXPECT_HAS(err, "IDAT");
    /* Beyond stb's own limits (1 GiB of pixels, 65536 a side) stbi_info itself refuses, so the
     * status is not OK whatever max_pixels says; see the report on which status. */
    const uint32_t huge[3][2] = {{60000, 60000}, {70000, 10}, {0, 10}};
    for (int i = 0; i < 3; i++) {
        png_header_only(png, huge[i][0], huge[i][1]);
        err[0] = '\0';
        st = decode_full(png, sizeof png, 50000000, &img, err, sizeof err);
        EXPECT(st != PREPROCESS_OK && err[0] != '\0' && img.rgb == NULL);
        printf("  PNG header %ux%u, limit 5e7 -> status %d: %s\n", huge[i][0], huge[i][1], st, err);
    }
}

/* Heavy decodes (image_decode.h, DESIGN): with no slot free a heavy image is refused before
 * decoding, a light one is decoded; the slot a decode takes comes back when it ends. */
static void test_heavy_slots(void) {
    char err[512];
    preprocess_image img;
    uint8_t heavy[45], light[45];
    png_header_only(heavy, 4096, 4096); /* 16 Mpixel: heavy */
    png_header_only(light, 4095, 4096);
    image_decode_set_heavy_slots(0);
    EXPECT(image_decode(heavy, sizeof heavy, NULL, &img, err, sizeof err) == PREPROCESS_BUSY);
    EXPECT(strstr(err, "retry later") != NULL);
    EXPECT(image_decode(light, sizeof light, NULL, &img, err, sizeof err) ==
           PREPROCESS_UNDECODABLE); /* it got past the gate to the missing pixel data */
    image_decode_set_heavy_slots(1);
    EXPECT(image_decode(heavy, sizeof heavy, NULL, &img, err, sizeof err) ==
           PREPROCESS_UNDECODABLE);
    EXPECT(image_decode(heavy, sizeof heavy, NULL, &img, err, sizeof err) ==
           PREPROCESS_UNDECODABLE); /* the first one's slot came back */
    image_decode_set_heavy_slots(-1);
}

int main(int argc, char **argv) {
    static const test_case tests[] = {
        {"preprocess decode", test_preprocess_decode},
        {"heavy decode slots", test_heavy_slots},
    };
    return model_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
