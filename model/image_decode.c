/* image_decode.c - JPEG (TurboJPEG), PNG (stb_image) and WebP (libwebp) to RGB, guarded. */
#include "image_decode.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stb/stb_image.h>
#include <turbojpeg.h>
#include <webp/decode.h>

#include "exif.h"
#include "image_check.h"
#include "stb_budget.h"

void preprocess_image_free(preprocess_image *img) {
    free(img->rgb); /* every decoder allocates with malloc (stb_image's STBI_MALLOC default) */
    img->rgb = NULL;
}

image_format image_format_sniff(const uint8_t *b, size_t len) {
    if (len >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) return IMAGE_FORMAT_JPEG;
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len >= 8 && memcmp(b, png_sig, 8) == 0) return IMAGE_FORMAT_PNG;
    if (len >= 12 && memcmp(b, "RIFF", 4) == 0 && memcmp(b + 8, "WEBP", 4) == 0)
        return IMAGE_FORMAT_WEBP;
    return IMAGE_FORMAT_UNKNOWN;
}

const char *image_format_name(image_format f) {
    switch (f) {
    case IMAGE_FORMAT_JPEG: return "jpeg";
    case IMAGE_FORMAT_PNG: return "png";
    case IMAGE_FORMAT_WEBP: return "webp";
    case IMAGE_FORMAT_UNKNOWN: break;
    }
    return "unknown";
}

const char *const image_decode_scaling_names[3] = {"auto", "off", NULL};
const char *const image_decode_exif_names[3] = {"apply", "ignore", NULL};

image_decode_options image_decode_options_of(int64_t max_pixels, image_decode_scaling scaling,
                                             image_exif_orientation exif) {
    return (image_decode_options){.max_pixels = max_pixels,
                                  .full_resolution = scaling == IMAGE_DECODE_SCALING_OFF,
                                  .ignore_exif = exif == IMAGE_EXIF_IGNORE};
}

/* ---------------------------------------------------------------- heavy-decode slots */

static atomic_int heavy_free = -1; /* free slots; -1: no gate */
static _Thread_local bool holding_heavy;

void image_decode_set_heavy_slots(int n) { atomic_store(&heavy_free, n < 0 ? -1 : n); }

/* A slot for this thread's decode: true when it holds one (or there is no gate). */
static bool take_heavy_slot(void) {
    if (holding_heavy) return true;
    int n = atomic_load(&heavy_free);
    if (n < 0) return true;
    while (n > 0)
        if (atomic_compare_exchange_weak(&heavy_free, &n, n - 1)) return holding_heavy = true;
    return false;
}

static void give_heavy_slot(void) {
    if (!holding_heavy) return;
    holding_heavy = false;
    atomic_fetch_add(&heavy_free, 1);
}

/* The pixel limit, on the header's size, before anything is decoded; then a heavy image's
 * slot. */
static preprocess_status check_size(int64_t w, int64_t h, const image_decode_options *o,
                                    const char *fmt, char *err, size_t errlen) {
    if (w <= 0 || h <= 0) {
        snprintf(err, errlen, "%s image has no pixels (%lldx%lld)", fmt, (long long)w,
                 (long long)h);
        return PREPROCESS_UNDECODABLE;
    }
    /* w * h compared by division: a PNG header's sides reach 2^32 - 1 each, whose product
     * overflows int64_t (UBSan finding of fuzz_preprocess, tests/fuzz/regress/preprocess/). */
    if (o->max_pixels > 0 && w > o->max_pixels / h) {
        snprintf(err, errlen, "image is %lldx%lld = %llu pixels, over the limit of %lld",
                 (long long)w, (long long)h, (unsigned long long)w * (unsigned long long)h,
                 (long long)o->max_pixels);
        return PREPROCESS_TOO_LARGE;
    }
    if (w >= IMAGE_DECODE_HEAVY_PIXELS / h && !take_heavy_slot()) {
        snprintf(err, errlen, "%s image of %lldx%lld pixels: every slot for large images is "
                 "decoding one; retry later", fmt, (long long)w, (long long)h);
        return PREPROCESS_BUSY;
    }
    return PREPROCESS_OK;
}

/* ---------------------------------------------------------------- JPEG (TurboJPEG) */

/* True when the entropy-coded data after the first scan header is followed by an EOI marker.
 * libjpeg-turbo pads a file cut short with gray and only warns; PIL refuses such a file
 * ("image file is truncated"), and so do we. Bytes after the EOI are ignored, as by every
 * decoder. Inside entropy-coded data 0xff is always followed by 0x00 or a restart marker, so
 * the first 0xff 0xd9 after the scan header is the real end (an EXIF thumbnail's EOI lies in
 * an APP1 segment, before the scan, and is skipped by the marker walk). */
static bool jpeg_has_end(const uint8_t *b, size_t len) {
    size_t pos = 2;
    while (len - pos >= 4) {
        if (b[pos] != 0xff) return true; /* not a marker walk we understand: trust libjpeg */
        uint8_t m = b[pos + 1];
        if (m == 0xff || m == 0x01 || (m >= 0xd0 && m <= 0xd7)) {
            pos += m == 0xff ? 1 : 2;
            continue;
        }
        size_t seg = (size_t)b[pos + 2] << 8 | b[pos + 3];
        if (seg > len - pos - 2) return false; /* a segment cut short */
        pos += 2 + seg;
        if (m == 0xda) return memmem(b + pos, len - pos, "\xff\xd9", 2) != NULL;
    }
    return false;
}

/* stb_image's rounding of c * k / 255 (stbi__blinn_8x8), so CMYK photos keep the pixels they
 * had before JPEG moved to libjpeg-turbo. Adobe's CMYK JPEGs store inverted inks: red is
 * (255 - cyan) x (255 - black) / 255 of the stored complements, i.e. c x k / 255. */
static uint8_t blinn_8x8(unsigned x, unsigned y) {
    unsigned t = x * y + 128;
    return (uint8_t)((t + (t >> 8)) >> 8);
}

/* The smallest scale m/n <= 1 libjpeg-turbo offers whose output keeps the shorter side
 * >= min_side (1/1 when none does). */
static tjscalingfactor jpeg_scale_for(int w, int h, int min_side) {
    tjscalingfactor best = {1, 1};
    int n = 0;
    const tjscalingfactor *f = tjGetScalingFactors(&n);
    for (int i = 0; f && i < n; i++) {
        if (f[i].num > f[i].denom) continue; /* never upscale in the decoder */
        int sw = TJSCALED(w, f[i]), sh = TJSCALED(h, f[i]);
        if ((sw < sh ? sw : sh) < min_side) continue;
        if ((int64_t)f[i].num * best.denom < (int64_t)best.num * f[i].denom) best = f[i];
    }
    return best;
}

static preprocess_status decode_jpeg(const uint8_t *b, size_t len, const image_decode_options *o,
                                     preprocess_image *img, char *err, size_t errlen) {
    tjhandle tj = tjInitDecompress();
    if (!tj) {
        snprintf(err, errlen, "out of memory starting the JPEG decoder");
        return PREPROCESS_NO_MEMORY;
    }
    preprocess_status st = PREPROCESS_UNDECODABLE;
    uint8_t *px = NULL;
    int w, h, subsamp, cs;
    if (tjDecompressHeader3(tj, b, (unsigned long)len, &w, &h, &subsamp, &cs) != 0) {
        snprintf(err, errlen, "cannot read jpeg header: %s", tjGetErrorStr2(tj));
        goto done;
    }
    if ((st = check_size(w, h, o, "jpeg", err, errlen)) != PREPROCESS_OK) goto done;
    tjscalingfactor sf = {1, 1};
    /* A quarter above the caller's side: when the scaled image is barely larger than the
     * resize target, the last resampling step filters almost nothing and the DCT scaling's
     * sharper cut-off shows. Measured against torchvision on JPEGs whose shorter side lands
     * just above 256 at some scale (300, 520, 1040, 2080 pixels): 1.3-1.5/255 mean difference
     * at a margin of 1, at most 0.84/255 at 1.25; a 4032x3024 photo still decodes at 1/8. */
    if (!o->full_resolution && o->min_side > 0)
        sf = jpeg_scale_for(w, h, o->min_side + o->min_side / 4);
    const int sw = TJSCALED(w, sf), sh = TJSCALED(h, sf);
    /* libjpeg-turbo has no CMYK -> RGB conversion: take the inks and convert below. */
    const bool cmyk = cs == TJCS_CMYK || cs == TJCS_YCCK;
    const size_t n_px = (size_t)sw * sh;
    px = malloc(n_px * (cmyk ? 4 : 3));
    if (!px) {
        snprintf(err, errlen, "out of memory decoding a %dx%d jpeg", sw, sh);
        st = PREPROCESS_NO_MEMORY;
        goto done;
    }
    /* LIMITSCANS: a progressive file with thousands of tiny scans would otherwise take
     * minutes of CPU (libjpeg-turbo's guard against "Two Issues with the JPEG Standard"). */
    if (tjDecompress2(tj, b, (unsigned long)len, px, sw, 0, sh, cmyk ? TJPF_CMYK : TJPF_RGB,
                      TJFLAG_LIMITSCANS) != 0) {
        bool warning = tjGetErrorCode(tj) == TJERR_WARNING;
        if (!warning || !jpeg_has_end(b, len)) {
            snprintf(err, errlen, "cannot decode jpeg: %s",
                     warning ? "the data ends before the image does (truncated)"
                             : tjGetErrorStr2(tj));
            st = PREPROCESS_UNDECODABLE;
            goto done;
        }
        /* Other warnings (extraneous bytes before a marker, ...) leave a complete image, which
         * PIL and browsers show too. */
    }
    if (cmyk)
        for (size_t i = 0; i < n_px; i++) { /* in place: pixel i moves from 4i to 3i <= 4i */
            const uint8_t *s = px + 4 * i;
            uint8_t k = s[3], r = blinn_8x8(s[0], k), g = blinn_8x8(s[1], k),
                    bl = blinn_8x8(s[2], k);
            px[3 * i] = r, px[3 * i + 1] = g, px[3 * i + 2] = bl;
        }
    img->rgb = px;
    px = NULL;
    img->width = sw, img->height = sh;
    img->full_width = w, img->full_height = h;
    img->span_width = (double)w * sf.num / sf.denom, img->span_height = (double)h * sf.num / sf.denom;
    img->source_channels = cs == TJCS_GRAY ? 1 : cmyk ? 4 : 3;
    if (!o->ignore_exif) img->orientation = exif_orientation_jpeg(b, len);
    st = PREPROCESS_OK;
done:
    free(px);
    tjDestroy(tj);
    return st;
}

/* ---------------------------------------------------------------- PNG (stb_image) */

static preprocess_status decode_png(const uint8_t *b, size_t len, const image_decode_options *o,
                                    preprocess_image *img, char *err, size_t errlen) {
    if (image_check(b, len, err, errlen) != 0) return PREPROCESS_UNDECODABLE;
    /* The size from IHDR ourselves first: stb refuses sides over its maximum with a generic
     * message, and such images must be reported as too large, not as broken. */
    if (len >= 24 && memcmp(b + 12, "IHDR", 4) == 0) {
        int64_t w = (int64_t)b[16] << 24 | b[17] << 16 | b[18] << 8 | b[19];
        int64_t h = (int64_t)b[20] << 24 | b[21] << 16 | b[22] << 8 | b[23];
        preprocess_status st = w > 0 && h > 0 ? check_size(w, h, o, "png", err, errlen)
                                              : PREPROCESS_OK;
        if (st != PREPROCESS_OK) return st;
    }
    if (len > (size_t)INT32_MAX) {
        snprintf(err, errlen, "image of %zu bytes is too large", len);
        return PREPROCESS_TOO_LARGE;
    }
    int w, h, comp;
    if (!stbi_info_from_memory(b, (int)len, &w, &h, &comp)) {
        snprintf(err, errlen, "cannot read png header: %s", stbi_failure_reason());
        return PREPROCESS_UNDECODABLE;
    }
    preprocess_status st = check_size(w, h, o, "png", err, errlen);
    if (st != PREPROCESS_OK) return st;
    image_png_need need;
    if (image_png_need_of(b, len, &need) != 0) {
        snprintf(err, errlen, "cannot decode png: the header (IHDR) names no valid color type "
                 "and bit depth");
        return PREPROCESS_UNDECODABLE;
    }
    if (o->max_pixels > 0 && need.pixel_bytes > o->max_pixels * 4) {
        snprintf(err, errlen, "png of %lldx%lld at %d bits x %d channels needs %lld bytes to "
                 "decode, over the limit of %lld (max_pixels x 4)", (long long)need.width,
                 (long long)need.height, need.bits, need.channels, (long long)need.pixel_bytes,
                 (long long)o->max_pixels * 4);
        return PREPROCESS_TOO_LARGE;
    }
    /* What stb may hold: the compressed data (grown by doubling), the inflated rows (one
     * doubling past what the header needs: further, the stream is a bomb), the image at its
     * depth, its conversions, and 1 MiB of slack. */
    stb_budget_begin(2 * len + 2 * (size_t)need.raw_bytes + 2 * (size_t)need.pixel_bytes +
                     3 * (size_t)w * (size_t)h + (1u << 20));
    img->rgb = stbi_load_from_memory(b, (int)len, &img->width, &img->height,
                                     &img->source_channels, 3);
    bool over_budget = stb_budget_end();
    if (!img->rgb && over_budget) {
        snprintf(err, errlen, "cannot decode png: its data inflates past the %lld bytes its "
                 "header (%lldx%lld, %d bits x %d channels) needs", (long long)need.raw_bytes,
                 (long long)need.width, (long long)need.height, need.bits, need.channels);
        return PREPROCESS_UNDECODABLE;
    }
    if (!img->rgb) {
        const char *why = stbi_failure_reason();
        snprintf(err, errlen, "cannot decode png: %s", why && *why ? why : "corrupt or truncated data");
        return strcmp(why ? why : "", "outofmem") == 0 ? PREPROCESS_NO_MEMORY
                                                       : PREPROCESS_UNDECODABLE;
    }
    return PREPROCESS_OK;
}

/* ---------------------------------------------------------------- WebP (libwebp) */

static const char *webp_status_text(VP8StatusCode s) {
    switch (s) {
    case VP8_STATUS_NOT_ENOUGH_DATA: return "the data ends before the image does (truncated)";
    case VP8_STATUS_BITSTREAM_ERROR: return "bitstream error";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "a feature libwebp does not support";
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    default: return "corrupt data";
    }
}

static preprocess_status decode_webp(const uint8_t *b, size_t len, const image_decode_options *o,
                                     preprocess_image *img, char *err, size_t errlen) {
    WebPDecoderConfig cfg;
    if (!WebPInitDecoderConfig(&cfg)) {
        snprintf(err, errlen, "the WebP decoder could not start (library version mismatch)");
        return PREPROCESS_NO_MEMORY;
    }
    VP8StatusCode vs = WebPGetFeatures(b, len, &cfg.input);
    if (vs != VP8_STATUS_OK) {
        snprintf(err, errlen, "cannot read webp header: %s", webp_status_text(vs));
        return PREPROCESS_UNDECODABLE;
    }
    const int w = cfg.input.width, h = cfg.input.height;
    if (cfg.input.has_animation) {
        snprintf(err, errlen, "animated WebP is not supported: send one frame as a still image");
        return PREPROCESS_UNSUPPORTED;
    }
    preprocess_status st = check_size(w, h, o, "webp", err, errlen);
    if (st != PREPROCESS_OK) return st;
    /* libwebp decodes every pixel whatever the output size; what its rescaler (area
     * averaging) saves is the full RGB buffer and our resampler's work on it. Scaled to twice
     * the size the caller needs, so our triangle filter still does the last step. */
    int sw = w, sh = h;
    const int want = 2 * o->min_side;
    if (!o->full_resolution && o->min_side > 0 && (w < h ? w : h) > want) {
        if (w <= h) sw = want, sh = (int)(((int64_t)h * want + w / 2) / w);
        else sh = want, sw = (int)(((int64_t)w * want + h / 2) / h);
        cfg.options.use_scaling = 1;
        cfg.options.scaled_width = sw;
        cfg.options.scaled_height = sh;
    }
    uint8_t *px = malloc((size_t)sw * sh * 3);
    if (!px) {
        snprintf(err, errlen, "out of memory decoding a %dx%d webp", sw, sh);
        return PREPROCESS_NO_MEMORY;
    }
    cfg.output.colorspace = MODE_RGB;
    cfg.output.is_external_memory = 1;
    cfg.output.u.RGBA.rgba = px;
    cfg.output.u.RGBA.stride = sw * 3;
    cfg.output.u.RGBA.size = (size_t)sw * sh * 3;
    vs = WebPDecode(b, len, &cfg);
    WebPFreeDecBuffer(&cfg.output); /* external memory: frees only libwebp's own state */
    if (vs != VP8_STATUS_OK) {
        free(px);
        snprintf(err, errlen, "cannot decode webp: %s", webp_status_text(vs));
        return vs == VP8_STATUS_OUT_OF_MEMORY ? PREPROCESS_NO_MEMORY : PREPROCESS_UNDECODABLE;
    }
    img->rgb = px;
    img->width = sw, img->height = sh;
    img->full_width = w, img->full_height = h;
    img->source_channels = cfg.input.has_alpha ? 4 : 3;
    if (!o->ignore_exif) img->orientation = exif_orientation_webp(b, len);
    return PREPROCESS_OK;
}

/* ---------------------------------------------------------------- the one entry */

preprocess_status image_decode(const uint8_t *bytes, size_t len, const image_decode_options *opt,
                               preprocess_image *img, char *err, size_t errlen) {
    static const image_decode_options defaults = {.max_pixels = IMAGE_DECODE_DEFAULT_MAX_PIXELS};
    const image_decode_options *o = opt ? opt : &defaults;
    memset(img, 0, sizeof *img);
    img->format = image_format_sniff(bytes, len);
    preprocess_status st;
    switch (img->format) {
    case IMAGE_FORMAT_JPEG: st = decode_jpeg(bytes, len, o, img, err, errlen); break;
    case IMAGE_FORMAT_PNG: st = decode_png(bytes, len, o, img, err, errlen); break;
    case IMAGE_FORMAT_WEBP: st = decode_webp(bytes, len, o, img, err, errlen); break;
    default:
        snprintf(err, errlen, "not a JPEG, PNG or WebP image (checked the bytes, not the header)");
        return PREPROCESS_UNSUPPORTED;
    }
    give_heavy_slot();
    if (st != PREPROCESS_OK) {
        preprocess_image_free(img);
        return st;
    }
    if (img->orientation <= 1) img->orientation = 0;
    if (img->orientation >= 5) { /* turned a quarter: the upright size swaps sides */
        int t = img->width;
        img->width = img->height, img->height = t;
        if (img->full_width) t = img->full_width, img->full_width = img->full_height, img->full_height = t;
        double s = img->span_width;
        img->span_width = img->span_height, img->span_height = s;
    }
    return PREPROCESS_OK;
}
