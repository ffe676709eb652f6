/* preprocess.c - decode with stb_image, resample the crop window, normalise. */
#include "preprocess.h"

#include <malloc.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stb/stb_image.h>

image_format preprocess_sniff(const uint8_t *b, size_t len) {
    if (len >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) return IMAGE_FORMAT_JPEG;
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len >= 8 && memcmp(b, png_sig, 8) == 0) return IMAGE_FORMAT_PNG;
    return IMAGE_FORMAT_UNKNOWN;
}

const char *preprocess_format_name(image_format f) {
    return f == IMAGE_FORMAT_JPEG ? "jpeg" : f == IMAGE_FORMAT_PNG ? "png" : "unknown";
}

/* Width and height from a PNG IHDR or a JPEG SOFn marker, without decoding. */
static int header_dimensions(const uint8_t *b, size_t len, image_format f, int64_t *w,
                             int64_t *h) {
    if (f == IMAGE_FORMAT_PNG) {
        if (len < 24 || memcmp(b + 12, "IHDR", 4) != 0) return -1;
        *w = (int64_t)b[16] << 24 | b[17] << 16 | b[18] << 8 | b[19];
        *h = (int64_t)b[20] << 24 | b[21] << 16 | b[22] << 8 | b[23];
        return 0;
    }
    size_t i = 2; /* after SOI */
    while (i + 9 < len) {
        if (b[i] != 0xff) return -1;
        uint8_t marker = b[i + 1];
        if (marker == 0xff) { /* fill byte */
            i++;
            continue;
        }
        size_t seg = (size_t)b[i + 2] << 8 | b[i + 3];
        bool sof = marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 &&
                   marker != 0xcc;
        if (sof) {
            *h = b[i + 5] << 8 | b[i + 6];
            *w = b[i + 7] << 8 | b[i + 8];
            return 0;
        }
        if (marker == 0xda || seg < 2) return -1; /* scan data before any frame header */
        i += 2 + seg;
    }
    return -1;
}

preprocess_status preprocess_decode(const uint8_t *bytes, size_t len, int64_t max_pixels,
                                    preprocess_image *img, char *err, size_t errlen) {
    memset(img, 0, sizeof *img);
    img->format = preprocess_sniff(bytes, len);
    if (img->format == IMAGE_FORMAT_UNKNOWN) {
        snprintf(err, errlen, "not a JPEG or PNG image (checked the bytes, not the header)");
        return PREPROCESS_UNSUPPORTED;
    }
    if (len > (size_t)INT32_MAX) {
        snprintf(err, errlen, "image of %zu bytes is too large", len);
        return PREPROCESS_TOO_LARGE;
    }
    int w, h, comp;
    /* Read the size from the header ourselves first: stb refuses sides over its maximum with
     * a generic message, and such images must be reported as too large, not as broken. */
    int64_t hw, hh;
    if (header_dimensions(bytes, len, img->format, &hw, &hh) == 0 && max_pixels > 0 &&
        hw * hh > max_pixels) {
        snprintf(err, errlen, "image is %lldx%lld = %lld pixels, over the limit of %lld",
                 (long long)hw, (long long)hh, (long long)(hw * hh), (long long)max_pixels);
        return PREPROCESS_TOO_LARGE;
    }
    if (!stbi_info_from_memory(bytes, (int)len, &w, &h, &comp)) {
        snprintf(err, errlen, "cannot read %s header: %s", preprocess_format_name(img->format),
                 stbi_failure_reason());
        return PREPROCESS_UNDECODABLE;
    }
    if (w <= 0 || h <= 0) {
        snprintf(err, errlen, "image has no pixels (%dx%d)", w, h);
        return PREPROCESS_UNDECODABLE;
    }
    if (max_pixels > 0 && (int64_t)w * h > max_pixels) {
        snprintf(err, errlen, "image is %dx%d = %lld pixels, over the limit of %lld", w, h,
                 (long long)w * h, (long long)max_pixels);
        return PREPROCESS_TOO_LARGE;
    }
    img->rgb = stbi_load_from_memory(bytes, (int)len, &img->width, &img->height,
                                     &img->source_channels, 3);
    if (!img->rgb) {
        const char *why = stbi_failure_reason();
        snprintf(err, errlen, "cannot decode %s: %s", preprocess_format_name(img->format),
                 why && *why ? why : "corrupt or truncated data");
        return strcmp(why ? why : "", "outofmem") == 0 ? PREPROCESS_NO_MEMORY
                                                       : PREPROCESS_UNDECODABLE;
    }
    return PREPROCESS_OK;
}

void preprocess_image_free(preprocess_image *img) {
    stbi_image_free(img->rgb);
    img->rgb = NULL;
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
static int make_taps(int in_size, int out_size, int out_first, int out_n, taps *t, float **pool) {
    double scale = (double)in_size / out_size;
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
    if (!tx || !ty || make_taps(img->width, resized_w, x0, out_w, tx, &wx) != 0 ||
        make_taps(img->height, resized_h, y0, out_h, ty, &wy) != 0)
        goto done;
    int row_first = ty[0].first, row_last = ty[out_h - 1].first + ty[out_h - 1].n;
    int n_rows = row_last - row_first;
    rows = malloc((size_t)n_rows * out_w * 3 * sizeof(float));
    if (!rows) goto done;
    for (int r = 0; r < n_rows; r++) {
        const uint8_t *src = img->rgb + (size_t)(row_first + r) * img->width * 3;
        float *dst = rows + (size_t)r * out_w * 3;
        for (int x = 0; x < out_w; x++) {
            float acc[3] = {0, 0, 0};
            const uint8_t *p = src + (size_t)tx[x].first * 3;
            for (int j = 0; j < tx[x].n; j++, p += 3) {
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
static preprocess_status torchvision_geometry(const preprocess_image *img, int resize_to,
                                              int out_hw, float *out) {
    int w = img->width, h = img->height, rw, rh;
    if (w <= h) {
        rw = resize_to;
        rh = (int)((int64_t)resize_to * h / w);
    } else {
        rh = resize_to;
        rw = (int)((int64_t)resize_to * w / h);
    }
    if (rw < out_hw || rh < out_hw) return PREPROCESS_UNDECODABLE; /* cannot happen for 256/224 */
    /* Python's round() is round-half-to-even, and so is nearbyint in the default mode. */
    int x0 = (int)nearbyint((rw - out_hw) / 2.0), y0 = (int)nearbyint((rh - out_hw) / 2.0);
    return resample_window(img, rw, rh, x0, y0, out_hw, out_hw, out);
}

preprocess_status preprocess_rgb_unit(const preprocess_image *img, int resize_to, int out_hw,
                                      float *out) {
    preprocess_status st = torchvision_geometry(img, resize_to, out_hw, out);
    if (st != PREPROCESS_OK) return st;
    for (size_t i = 0; i < (size_t)3 * out_hw * out_hw; i++) out[i] /= 255.0f;
    return PREPROCESS_OK;
}

preprocess_status preprocess_rgb(const preprocess_image *img, preprocess_mode mode,
                                 int resize_to, int out_hw, float *out) {
    const size_t plane = (size_t)out_hw * out_hw;
    if (mode == PREPROCESS_CAFFE) {
        float *rgb = malloc(3 * plane * sizeof(float));
        if (!rgb) return PREPROCESS_NO_MEMORY;
        preprocess_status st =
            resample_window(img, out_hw, out_hw, 0, 0, out_hw, out_hw, rgb);
        if (st == PREPROCESS_OK) {
            static const float mean_bgr[3] = {103.939f, 116.779f, 123.68f};
            for (int c = 0; c < 3; c++) /* output channel c (BGR) takes input channel 2 - c */
                for (size_t i = 0; i < plane; i++)
                    out[c * plane + i] = rgb[(2 - c) * plane + i] - mean_bgr[c];
        }
        free(rgb);
        return st;
    }
    preprocess_status st = torchvision_geometry(img, resize_to, out_hw, out);
    if (st != PREPROCESS_OK) return st;
    static const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < plane; i++)
            out[c * plane + i] = (out[c * plane + i] / 255.0f - mean[c]) / std[c];
    return PREPROCESS_OK;
}

void preprocess_tune_malloc(void) {
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
}

preprocess_status preprocess_bytes(const uint8_t *bytes, size_t len, int64_t max_pixels,
                                   preprocess_mode mode, int out_hw, float *out, char *err,
                                   size_t errlen) {
    preprocess_image img;
    preprocess_status st = preprocess_decode(bytes, len, max_pixels, &img, err, errlen);
    if (st != PREPROCESS_OK) return st;
    st = preprocess_rgb(&img, mode, 256, out_hw, out);
    if (st == PREPROCESS_NO_MEMORY) snprintf(err, errlen, "out of memory while resizing");
    preprocess_image_free(&img);
    return st;
}
