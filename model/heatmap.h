/* heatmap.h - a Grad-CAM map drawn over the image it explains, and that picture as a PNG.
 *
 * heatmap_blend: the map (map_hw x map_hw values in [0, 1], row 0 at the top, as
 * vgg_engine_explain writes it) is upsampled bilinearly to the picture's w x h (pixel centres
 * aligned and edges clamped: what torch's interpolate(mode="bilinear", align_corners=False)
 * gives), coloured with the jet ramp (dark blue 0, cyan, yellow, dark red 1) and laid over
 * the picture with an opacity that grows with the value (HEATMAP_ALPHA_MIN at 0 to
 * HEATMAP_ALPHA_MAX at 1), so the photo stays readable where the network did not look.
 * heatmap_png: w x h RGB as PNG bytes (stb_image_write, zlib level 8).
 * heatmap_explanation_png: both, over the picture an input tensor shows.
 *
 * Pure functions of their arguments: no globals besides stb's compression level, which is never
 * changed. Fuzzing has nothing to parse here; tests/test_heatmap.c checks the colours, the
 * upsampling and a round trip through stb_image. */
#ifndef MODEL_HEATMAP_H
#define MODEL_HEATMAP_H

#include <stddef.h>
#include <stdint.h>

#include "preprocess.h"

#define HEATMAP_ALPHA_MIN 0.25f
#define HEATMAP_ALPHA_MAX 0.65f

/* The jet colour of v (clamped to [0, 1]) into rgb[3]. */
void heatmap_color(float v, uint8_t rgb[3]);

/* out (w x h x 3) = rgb (w x h x 3, row-major, top row first) with map over it; rgb and out
 * may be the same buffer. */
void heatmap_blend(const uint8_t *rgb, int w, int h, const float *map, int map_hw, uint8_t *out);

/* PNG bytes of the w x h x 3 picture, malloc'd (caller frees) with *len; NULL when out of
 * memory. */
unsigned char *heatmap_png(const uint8_t *rgb, int w, int h, size_t *len);

/* What `Accept: image/png` answers and `explain --png` writes: the network's view of the
 * image (the (3, hw, hw) input tensor of mode's normalisation, made a picture again by
 * preprocess_tensor_rgb) with map blended over it, as PNG bytes (see heatmap_png). */
unsigned char *heatmap_explanation_png(preprocess_mode mode, const float *tensor, int hw,
                                       const float *map, int map_hw, size_t *len);

#endif
