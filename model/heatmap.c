/* heatmap.c - a Grad-CAM map over its image, and PNG encoding (see heatmap.h). */
#include "heatmap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The one translation unit that compiles stb_image_write, PNG only (the others are unused). */
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
#include <stb/stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#include "byte_buffer.h"

static float clamp01(float v) { return v < 0 ? 0 : v > 1 ? 1 : v; }

/* Matplotlib's jet as four linear pieces: each channel is a tent of slope 4 centred at
 * 0.75 (red), 0.5 (green) and 0.25 (blue), clipped to [0, 1]. */
void heatmap_color(float v, uint8_t rgb[3]) {
    v = clamp01(v);
    const float centre[3] = {0.75f, 0.5f, 0.25f};
    for (int c = 0; c < 3; c++) {
        float t = clamp01(1.5f - 4.0f * fabsf(v - centre[c]));
        rgb[c] = (uint8_t)lrintf(t * 255.0f);
    }
}

/* The source coordinate of destination pixel i when n_src pixels are stretched over n_dst
 * (pixel centres aligned), as the lower index and the weight of the upper one. */
static void source_of(int i, int n_dst, int n_src, int *lo, float *frac) {
    float s = ((float)i + 0.5f) * (float)n_src / (float)n_dst - 0.5f;
    if (s < 0) s = 0;
    int k = (int)s;
    if (k > n_src - 1) k = n_src - 1;
    *lo = k;
    *frac = k + 1 < n_src ? s - (float)k : 0.0f;
}

void heatmap_blend(const uint8_t *rgb, int w, int h, const float *map, int map_hw, uint8_t *out) {
    for (int y = 0; y < h; y++) {
        int y0;
        float fy;
        source_of(y, h, map_hw, &y0, &fy);
        const int y1 = fy > 0 ? y0 + 1 : y0;
        for (int x = 0; x < w; x++) {
            int x0;
            float fx;
            source_of(x, w, map_hw, &x0, &fx);
            const int x1 = fx > 0 ? x0 + 1 : x0;
            const float top = map[y0 * map_hw + x0] * (1 - fx) + map[y0 * map_hw + x1] * fx;
            const float bottom = map[y1 * map_hw + x0] * (1 - fx) + map[y1 * map_hw + x1] * fx;
            const float v = clamp01(top * (1 - fy) + bottom * fy);
            uint8_t color[3];
            heatmap_color(v, color);
            const float a = HEATMAP_ALPHA_MIN + (HEATMAP_ALPHA_MAX - HEATMAP_ALPHA_MIN) * v;
            const size_t p = ((size_t)y * w + x) * 3;
            for (int c = 0; c < 3; c++)
                out[p + c] = (uint8_t)lrintf((1 - a) * rgb[p + c] + a * color[c]);
        }
    }
}

/* stb_image_write's sink: the PNG grows in a byte buffer. */
static void sink_write(void *ctx, void *data, int size) {
    if (size > 0) byte_buffer_append(ctx, data, (size_t)size);
}

unsigned char *heatmap_png(const uint8_t *rgb, int w, int h, size_t *len) {
    byte_buffer png = {0};
    if (!stbi_write_png_to_func(sink_write, &png, w, h, 3, rgb, w * 3) || png.failed) {
        byte_buffer_free(&png);
        return NULL;
    }
    return byte_buffer_take(&png, len);
}

unsigned char *heatmap_explanation_png(preprocess_mode mode, const float *tensor, int hw,
                                       const float *map, int map_hw, size_t *len) {
    uint8_t *rgb = malloc((size_t)hw * hw * 3);
    if (!rgb) return NULL;
    preprocess_tensor_rgb(mode, tensor, hw, rgb);
    heatmap_blend(rgb, hw, hw, map, map_hw, rgb);
    unsigned char *png = heatmap_png(rgb, hw, hw, len);
    free(rgb);
    return png;
}
