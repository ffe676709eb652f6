/* preprocess.c - resample the crop window of decoded pixels, normalise. */
#include "preprocess.h"

#include <malloc.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image_decode.h"
#include "name_table.h"

const char *const preprocess_setting_names[PREPROCESS_N_SETTINGS + 1] = {
    "auto", "torchvision", "caffe", "rescale", "tf", NULL};

const char *const *const preprocess_mode_names = &preprocess_setting_names[1];

const char *preprocess_mode_name(preprocess_mode m) { return preprocess_mode_names[m]; }

int preprocess_resolve(preprocess_setting s, const char *weights_says, preprocess_mode *out) {
    *out = PREPROCESS_TORCHVISION;
    if (s != PREPROCESS_SETTING_AUTO) {
        *out = (preprocess_mode)(s - 1);
        return 0;
    }
    if (!weights_says || !weights_says[0]) return 0;
    int m = name_table_index(preprocess_mode_names, weights_says);
    if (m < 0) return 1;
    *out = (preprocess_mode)m;
    return 0;
}

/* ---------------------------------------------------------------- orientation */

/* Where upright pixel (x, y) lies in the stored buffer: origin + x * dx + y * dy (bytes). The
 * eight EXIF orientations are the eight ways to walk a grid (PIL's exif_transpose: 2 mirror,
 * 3 rotate 180, 4 flip, 5 transpose, 6 rotate 270 = a quarter turn clockwise, 7 transverse,
 * 8 rotate 90); reading through them costs no copy of the pixels. */
typedef struct {
    const uint8_t *origin;
    ptrdiff_t dx, dy;
} pixel_view;

static pixel_view view_of(const preprocess_image *img) {
    const int o = img->orientation;
    const bool quarter = o >= 5 && o <= 8;
    const ptrdiff_t sw = quarter ? img->height : img->width; /* stored size */
    const ptrdiff_t sh = quarter ? img->width : img->height;
    const ptrdiff_t row = sw * 3, last_col = (sw - 1) * 3, last_row = (sh - 1) * row;
    const uint8_t *p = img->rgb;
    switch (o) {
    case 2: return (pixel_view){p + last_col, -3, row};
    case 3: return (pixel_view){p + last_col + last_row, -3, -row};
    case 4: return (pixel_view){p + last_row, 3, -row};
    case 5: return (pixel_view){p, row, 3};
    case 6: return (pixel_view){p + last_row, -row, 3};
    case 7: return (pixel_view){p + last_col + last_row, -row, -3};
    case 8: return (pixel_view){p + last_col, row, -3};
    default: return (pixel_view){p, 3, row};
    }
}

/* ---------------------------------------------------------------- resampling */

/* Filter taps for one output coordinate: source indices [first, first + n) with weights. */
typedef struct {
    int first, n;
    float *w;
} taps;

static double triangle(double x) {
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* PIL's precompute_coeffs for the bilinear filter (support 1), restricted to output indices
 * [out_first, out_first + out_n) of a resize from in_size to out_size. When shrinking, the
 * filter is widened by the scale so every source pixel contributes (antialiasing). */
static int make_taps(int in_size, double in_span, int out_size, int out_first, int out_n, taps *t,
                     float **pool) {
    /* in_span: the source's extent in pixels, which a DCT-scaled decode leaves fractional
     * (the last pixel partly outside the image); mapping with the rounded-up size instead
     * shifted the crop by up to half a pixel (1.7/255 mean difference on a 2773x2080 photo at
     * 1/4 against 0.4/255 on 3200x2400). */
    double scale = in_span / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale;
    int max_n = (int)ceil(support) * 2 + 1;
    float *buf = malloc((size_t)out_n * max_n * sizeof(float));
    if (!buf) return -1;
    *pool = buf;
    for (int k = 0; k < out_n; k++) {
        int x = out_first + k;
        double center = (x + 0.5) * scale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        int n = xmax - xmin;
        if (n > max_n) n = max_n;
        float *w = buf + (size_t)k * max_n;
        double total = 0;
        for (int j = 0; j < n; j++) {
            double v = triangle((j + xmin - center + 0.5) / filterscale);
            w[j] = (float)v;
            total += v;
        }
        for (int j = 0; j < n && total != 0; j++) w[j] = (float)(w[j] / total);
        t[k].first = xmin;
        t[k].n = n;
        t[k].w = w;
    }
    return 0;
}

/* Resamples the window [x0, x0 + out_w) x [y0, y0 + out_h) of the image resized to
 * (resized_w, resized_h) into planar RGB floats in 0..255: horizontal pass over only the
 * source rows the vertical taps touch, then the vertical pass. */
static preprocess_status resample_window(const preprocess_image *img, int resized_w,
                                         int resized_h, int x0, int y0, int out_w, int out_h,
                                         float *out /* (3, out_h, out_w) */) {
    taps *tx = malloc(out_w * sizeof *tx), *ty = malloc(out_h * sizeof *ty);
    float *wx = NULL, *wy = NULL, *rows = NULL;
    preprocess_status st = PREPROCESS_NO_MEMORY;
    const double span_w = img->span_width > 0 ? img->span_width : img->width;
    const double span_h = img->span_height > 0 ? img->span_height : img->height;
    if (!tx || !ty || make_taps(img->width, span_w, resized_w, x0, out_w, tx, &wx) != 0 ||
        make_taps(img->height, span_h, resized_h, y0, out_h, ty, &wy) != 0)
        goto done;
    int row_first = ty[0].first, row_last = ty[out_h - 1].first + ty[out_h - 1].n;
    int n_rows = row_last - row_first;
    rows = malloc((size_t)n_rows * out_w * 3 * sizeof(float));
    if (!rows) goto done;
    const pixel_view v = view_of(img);
    for (int r = 0; r < n_rows; r++) {
        const uint8_t *src = v.origin + (ptrdiff_t)(row_first + r) * v.dy;
        float *dst = rows + (size_t)r * out_w * 3;
        for (int x = 0; x < out_w; x++) {
            float acc[3] = {0, 0, 0};
            const uint8_t *p = src + (ptrdiff_t)tx[x].first * v.dx;
            for (int j = 0; j < tx[x].n; j++, p += v.dx) {
                acc[0] += tx[x].w[j] * p[0];
                acc[1] += tx[x].w[j] * p[1];
                acc[2] += tx[x].w[j] * p[2];
            }
            memcpy(dst + x * 3, acc, sizeof acc);
        }
    }
    const size_t plane = (size_t)out_h * out_w;
    for (int y = 0; y < out_h; y++) {
        for (int x = 0; x < out_w; x++) {
            float acc[3] = {0, 0, 0};
            for (int j = 0; j < ty[y].n; j++) {
                const float *p = rows + ((size_t)(ty[y].first - row_first + j) * out_w + x) * 3;
                acc[0] += ty[y].w[j] * p[0];
                acc[1] += ty[y].w[j] * p[1];
                acc[2] += ty[y].w[j] * p[2];
            }
            for (int c = 0; c < 3; c++) {
                /* PIL works in 8 bits: clamp like it does so overshoot cannot leak through. */
                float v = acc[c] < 0 ? 0 : acc[c] > 255 ? 255 : acc[c];
                out[c * plane + (size_t)y * out_w + x] = v;
            }
        }
    }
    st = PREPROCESS_OK;
done:
    free(tx);
    free(ty);
    free(wx);
    free(wy);
    free(rows);
    return st;
}

/* torchvision geometry: shorter side to resize_to (the longer one int(resize_to * long /
 * short), as torchvision computes it), then the centre out_hw square (crop offsets
 * int(round((size - out) / 2))). Writes 0..255 planar RGB. */
/* torchvision's Resize(resize_to) size and CenterCrop(out_hw) offset for a w x h image. */
static void resize_and_crop(int w, int h, int resize_to, int out_hw, int *rw, int *rh, int *x0,
                            int *y0) {
    resize_to = preprocess_resize_for(resize_to, out_hw);
    if (w <= h) {
        *rw = resize_to;
        *rh = (int)((int64_t)resize_to * h / w);
    } else {
        *rh = resize_to;
        *rw = (int)((int64_t)resize_to * w / h);
    }
    /* Python's round() is round-half-to-even, and so is nearbyint in the default mode. */
    *x0 = (int)nearbyint((*rw - out_hw) / 2.0);
    *y0 = (int)nearbyint((*rh - out_hw) / 2.0);
}

static preprocess_status torchvision_geometry(const preprocess_image *img, int resize_to,
                                              int out_hw, float *out) {
    /* The sizes from the full-resolution image, as PIL computes them on it; the resampler then
     * maps them onto the (maybe DCT-scaled) pixels at hand. */
    int w = img->full_width ? img->full_width : img->width;
    int h = img->full_height ? img->full_height : img->height;
    int rw, rh, x0, y0;
    resize_and_crop(w, h, resize_to, out_hw, &rw, &rh, &x0, &y0);
    if (rw < out_hw || rh < out_hw) return PREPROCESS_UNDECODABLE; /* cannot happen for 256/224 */
    return resample_window(img, rw, rh, x0, y0, out_hw, out_hw, out);
}

int preprocess_resize_for(int resize_to, int out_hw) {
    if (resize_to != PREPROCESS_RESIZE_TO || out_hw == 224) return resize_to;
    return (int)lround(out_hw * 256.0 / 224.0);
}

/* Whether mode squeezes the whole image to the input (Keras's modes) instead of torchvision's
 * resize and centre crop. */
static bool whole_image(preprocess_mode mode) { return mode != PREPROCESS_TORCHVISION; }

void preprocess_view_window(preprocess_mode mode, int w, int h, int resize_to, int out_hw,
                            double box[4]) {
    if (whole_image(mode)) { /* the whole image, squeezed to out_hw x out_hw */
        box[0] = box[1] = 0;
        box[2] = w;
        box[3] = h;
        return;
    }
    int rw, rh, x0, y0;
    resize_and_crop(w, h, resize_to, out_hw, &rw, &rh, &x0, &y0);
    const double sx = (double)w / rw, sy = (double)h / rh;
    box[0] = x0 * sx;
    box[1] = y0 * sy;
    box[2] = (x0 + out_hw) * sx;
    box[3] = (y0 + out_hw) * sy;
}

preprocess_status preprocess_rgb_unit(const preprocess_image *img, int resize_to, int out_hw,
                                      float *out) {
    preprocess_status st = torchvision_geometry(img, resize_to, out_hw, out);
    if (st != PREPROCESS_OK) return st;
    for (size_t i = 0; i < (size_t)3 * out_hw * out_hw; i++) out[i] /= 255.0f;
    return PREPROCESS_OK;
}

/* The normalisations: torchvision's ImageNet mean and std of [0, 1] RGB, and caffe's BGR
 * means of 0..255 pixels. */
static const float torch_mean[3] = {0.485f, 0.456f, 0.406f}, torch_std[3] = {0.229f, 0.224f, 0.225f};
static const float caffe_mean_bgr[3] = {103.939f, 116.779f, 123.68f};

/* Keras's whole-image modes from 0..255 RGB planes: caffe (BGR minus the means), rescale
 * (/255), tf (/127.5 - 1). */
static void keras_normalise(preprocess_mode mode, const float *rgb, size_t plane, float *out) {
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < plane; i++) {
            const float v = rgb[c * plane + i];
            if (mode == PREPROCESS_CAFFE) /* output channel c (BGR) takes input channel 2 - c */
                out[c * plane + i] = rgb[(2 - c) * plane + i] - caffe_mean_bgr[c];
            else if (mode == PREPROCESS_RESCALE) out[c * plane + i] = v / 255.0f;
            else out[c * plane + i] = v / 127.5f - 1.0f;
        }
}

preprocess_status preprocess_rgb(const preprocess_image *img, preprocess_mode mode,
                                 int resize_to, int out_hw, float *out) {
    const size_t plane = (size_t)out_hw * out_hw;
    if (whole_image(mode)) {
        float *rgb = malloc(3 * plane * sizeof(float));
        if (!rgb) return PREPROCESS_NO_MEMORY;
        preprocess_status st =
            resample_window(img, out_hw, out_hw, 0, 0, out_hw, out_hw, rgb);
        if (st == PREPROCESS_OK) keras_normalise(mode, rgb, plane, out);
        free(rgb);
        return st;
    }
    preprocess_status st = torchvision_geometry(img, resize_to, out_hw, out);
    if (st != PREPROCESS_OK) return st;
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < plane; i++)
            out[c * plane + i] = (out[c * plane + i] / 255.0f - torch_mean[c]) / torch_std[c];
    return PREPROCESS_OK;
}

/* The 0..255 value of RGB channel c at i that mode's tensor holds. */
static float unnormalise(preprocess_mode mode, const float *tensor, size_t plane, int c, size_t i) {
    switch (mode) {
    case PREPROCESS_CAFFE: return tensor[(2 - c) * plane + i] + caffe_mean_bgr[2 - c];
    case PREPROCESS_RESCALE: return tensor[c * plane + i] * 255.0f;
    case PREPROCESS_TF: return (tensor[c * plane + i] + 1.0f) * 127.5f;
    default: return (tensor[c * plane + i] * torch_std[c] + torch_mean[c]) * 255.0f;
    }
}

void preprocess_tensor_rgb(preprocess_mode mode, const float *tensor, int hw, uint8_t *rgb) {
    const size_t plane = (size_t)hw * hw;
    for (int c = 0; c < 3; c++) /* RGB channel c */
        for (size_t i = 0; i < plane; i++) {
            float v = unnormalise(mode, tensor, plane, c, i);
            rgb[i * 3 + c] = (uint8_t)(v <= 0 ? 0 : v >= 255 ? 255 : lrintf(v));
        }
}

void preprocess_tune_malloc(void) {
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
}

preprocess_status preprocess_bytes(const uint8_t *bytes, size_t len,
                                   const image_decode_options *opt, preprocess_mode mode,
                                   int out_hw, float *out, char *err, size_t errlen) {
    return preprocess_bytes_sized(bytes, len, opt, mode, out_hw, out, NULL, err, errlen);
}

int preprocess_decode_min_side(preprocess_mode mode, int out_hw) {
    return whole_image(mode) ? out_hw : preprocess_resize_for(PREPROCESS_RESIZE_TO, out_hw);
}

preprocess_status preprocess_bytes_sized(const uint8_t *bytes, size_t len,
                                         const image_decode_options *opt, preprocess_mode mode,
                                         int out_hw, float *out, int size[2], char *err,
                                         size_t errlen) {
    image_decode_options o = opt ? *opt
                                 : (image_decode_options){.max_pixels = IMAGE_DECODE_DEFAULT_MAX_PIXELS};
    o.min_side = preprocess_decode_min_side(mode, out_hw);
    preprocess_image img;
    preprocess_status st = image_decode(bytes, len, &o, &img, err, errlen);
    if (st != PREPROCESS_OK) return st;
    if (size) {
        size[0] = img.full_width ? img.full_width : img.width;
        size[1] = img.full_height ? img.full_height : img.height;
    }
    st = preprocess_rgb(&img, mode, PREPROCESS_RESIZE_TO, out_hw, out);
    if (st == PREPROCESS_NO_MEMORY) snprintf(err, errlen, "out of memory while resizing");
    preprocess_image_free(&img);
    return st;
}
