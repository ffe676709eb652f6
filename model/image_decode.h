/* image_decode.h - untrusted image bytes to 8-bit RGB pixels: the one decoder every path calls.
 *
 * POST /classify, v2 BYTES inputs, `vggserve classify|preprocess|calibrate|accuracy` and
 * bench_preprocess all decode through image_decode() (directly or via preprocess_bytes), so
 * the format sniffing, the guard (image_check.h) and the pixel limit are the same everywhere.
 *
 * Formats, sniffed from the bytes (never from a Content-Type or a file name):
 *   JPEG  libjpeg-turbo's TurboJPEG API (baseline, progressive, gray, CMYK/YCCK).
 *   PNG   stb_image, after image_check().
 *   WebP  libwebp (lossy, lossless, alpha; not animations).
 * Gray and alpha become RGB; alpha is dropped as PIL's convert("RGB") drops it.
 *
 * Order of checks: the format (PREPROCESS_UNSUPPORTED), the guard and the header
 * (PREPROCESS_UNDECODABLE), max_pixels on the header's width x height before any pixel is
 * decoded (PREPROCESS_TOO_LARGE), then decoding (PREPROCESS_UNDECODABLE; a JPEG cut short is
 * undecodable, as it is for PIL).
 *
 * Reduced-size decoding (decode_scaling = auto, the default): the caller says the smallest
 * shorter side it needs (min_side: 256 for torchvision's Resize(256), 224 for caffe's direct
 * 224x224 resize). JPEG is then decoded at the smallest DCT scale m/8 whose output keeps its
 * shorter side >= 1.25 x min_side (the margin keeps the last, exact resampling step doing
 * real filtering; see decode_jpeg), which skips most of the IDCT work and allocates only the
 * scaled pixels (a 4032x3024 photo at 1/8: 504x378, 0.6 MB instead of 36 MB); WebP is decoded through
 * libwebp's own rescaler to a shorter side of 2 x min_side when it is larger than that.
 * full_width/full_height keep the size the image has at full resolution, so the geometry
 * (torchvision's int(256 * long / short) and the centre crop) is computed as for the full image.
 * full_resolution (decode_scaling = off) decodes every pixel, for bit-closeness to PIL.
 *
 * EXIF orientation (exif_orientation = apply, the default): JPEG APP1 and WebP EXIF chunks
 * are read (model/exif.h) and the orientation is recorded in the image, not applied to its
 * buffer: preprocess_rgb() reads the buffer through the orientation, so turning a photo
 * costs no copy. width/height are the upright size, as PIL's exif_transpose gives it.
 *
 * The decoder's output types (preprocess_image, preprocess_status, image_format) are defined
 * here, where they are produced; preprocess.h includes this header for them. This header
 * includes no project header, so api/errors.h can name preprocess_status without pulling in
 * the preprocessing API.
 *
 * Reentrant; the decoders keep no state between calls, but for the heavy-decode slots below.
 * img->rgb is owned by the caller: preprocess_image_free().
 *
 * DESIGN (heavy decodes; issue 25). Images are decoded on the thread that parsed the request,
 * which for the server is a libmicrohttpd thread: a few large images on every HTTP thread
 * would leave none to answer /healthz. An image whose header says it has at least
 * IMAGE_DECODE_HEAVY_PIXELS pixels is heavy: it must take one of image_decode_set_heavy_slots()
 * slots for the length of its decode (an atomic counter; a thread holds at most one, marked
 * in a _Thread_local flag, and gives it back at the end of image_decode). It never waits:
 * with no slot free the image is refused with PREPROCESS_BUSY (503 decode_busy, Retry-After),
 * so a thread is never parked behind another's decode. The server sets http_threads - 1 slots
 * (at least 1): one HTTP thread is always free of heavy decodes. The bar, 16 Mpixel (a
 * 4096 x 4096 PNG, about 0.5 s of stb's work here), leaves phone photos (12 Mpixel) out of
 * the gate; the header is all it reads, so a 24 Mpixel JPEG counts as heavy even when it is
 * decoded at 1/8 scale. Without a call to image_decode_set_heavy_slots (the CLI tools) there
 * is no gate. */
#ifndef MODEL_IMAGE_DECODE_H
#define MODEL_IMAGE_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    PREPROCESS_OK = 0,
    PREPROCESS_UNSUPPORTED, /* not JPEG, PNG or WebP (or an animated WebP) */
    PREPROCESS_TOO_LARGE,   /* over max_pixels */
    PREPROCESS_UNDECODABLE, /* a known signature but broken data */
    PREPROCESS_NO_MEMORY,
    PREPROCESS_BUSY,        /* a heavy image, and every heavy-decode slot is taken: retry */
} preprocess_status;

typedef enum { IMAGE_FORMAT_UNKNOWN, IMAGE_FORMAT_JPEG, IMAGE_FORMAT_PNG, IMAGE_FORMAT_WEBP } image_format;

/* Decoded pixels. A zero-initialised struct with rgb, width and height set is an upright
 * image at full resolution (what tests build by hand). */
typedef struct {
    uint8_t *rgb; /* width * height * 3 as stored, owned: free with preprocess_image_free */
    int width, height; /* upright size (after orientation); the buffer is height x width
                        * pixels, or width x height for orientations 5..8 */
    int orientation;   /* EXIF 1..8 to apply when reading rgb; 0 or 1: as stored */
    int full_width, full_height; /* upright size at full resolution; 0: width, height */
    double span_width, span_height; /* how many decoded pixels the full image spans: JPEG's
                                     * DCT scaling rounds up, so 2773 at 1/4 spans 693.25 of
                                     * 694 pixels; 0: width, height */
    int source_channels; /* 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA or CMYK */
    image_format format;
} preprocess_image;

/* Frees img->rgb and sets it to NULL; the rest of *img is left as it was. */
void preprocess_image_free(preprocess_image *img);

/* What preprocess_bytes() and the CLI use when given no options: the service's defaults. */
#define IMAGE_DECODE_DEFAULT_MAX_PIXELS 40000000

typedef struct image_decode_options {
    int64_t max_pixels;   /* width x height from the header; over it PREPROCESS_TOO_LARGE. 0: no limit */
    int min_side;         /* the smallest shorter side the caller needs; 0: full resolution */
    bool full_resolution; /* decode_scaling = off: never decode at a reduced size */
    bool ignore_exif;     /* exif_orientation = ignore: keep the pixels as stored */
} image_decode_options;

image_format image_format_sniff(const uint8_t *bytes, size_t len);
const char *image_format_name(image_format f);

/* Decodes bytes into *img (out; on failure it owns nothing and err says why, in words fit for
 * a client). opt: borrowed; NULL means the defaults (IMAGE_DECODE_DEFAULT_MAX_PIXELS,
 * full resolution, EXIF applied). */
preprocess_status image_decode(const uint8_t *bytes, size_t len, const image_decode_options *opt,
                               preprocess_image *img, char *err, size_t errlen);

/* The two settings (config decode_scaling and exif_orientation, the CLI's flags of the same
 * names) and their spellings, indexed by value, NULL-terminated, default first. */
typedef enum { IMAGE_DECODE_SCALING_AUTO, IMAGE_DECODE_SCALING_OFF } image_decode_scaling;
typedef enum { IMAGE_EXIF_APPLY, IMAGE_EXIF_IGNORE } image_exif_orientation;
extern const char *const image_decode_scaling_names[3];
extern const char *const image_decode_exif_names[3];

/* The options the settings mean (min_side 0: the caller sets it for its resize). */
image_decode_options image_decode_options_of(int64_t max_pixels, image_decode_scaling scaling,
                                             image_exif_orientation exif);

/* Heavy decodes (DESIGN above): images of at least this many pixels take a slot. */
#define IMAGE_DECODE_HEAVY_PIXELS (16LL << 20)
/* n >= 1 slots from now on (call before decoding starts); n < 0: no gate. Not thread-safe
 * against decodes in progress. */
void image_decode_set_heavy_slots(int n);

#endif
