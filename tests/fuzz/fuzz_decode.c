/* fuzz_decode.c - image_decode() under every setting the service offers.
 *
 * The first input byte picks the settings, the rest is the image file:
 *   bit 0  decode_scaling = off (full_resolution)
 *   bit 1  exif_orientation = ignore
 *   bit 2  caffe (min_side 224, direct resize) instead of torchvision (min_side 256)
 *   bit 3  a tiny min_side (16), which drives JPEG to its 1/8 scale and WebP's rescaler hard
 * fuzz_preprocess covers the defaults; this one adds the paths a setting switches on: DCT
 * scaling off, orientation ignored, the caffe geometry, and every scale factor.
 *
 * Checked on success: the image is non-empty and within max_pixels at full size; the
 * orientation is 0..8 (1 when EXIF is ignored); a reduced decode still covers what the caller
 * asked for (shorter side >= min_side, or the whole image when it is smaller); with
 * full_resolution nothing is reduced; and preprocessing it gives finite values in range. */
#include <math.h>
#include <string.h>

#include "fuzz_util.h"
#include "image_decode.h"
#include "preprocess.h"

#define HW 224

static int shorter(int w, int h) { return w < h ? w : h; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const uint8_t flags = data[0];
    const bool caffe = flags & 4;
    const image_decode_options opt = {
        .max_pixels = 4 << 20, /* the service allows 40 M; the fuzzer must stay fast */
        .min_side = flags & 8 ? 16 : caffe ? HW : 256,
        .full_resolution = flags & 1,
        .ignore_exif = flags & 2,
    };
    preprocess_image img;
    char err[384];
    preprocess_status st = image_decode(data + 1, size - 1, &opt, &img, err, sizeof err);
    FUZZ_CHECK(st >= PREPROCESS_OK && st <= PREPROCESS_NO_MEMORY);
    if (st != PREPROCESS_OK) {
        FUZZ_CHECK(memchr(err, '\0', sizeof err) && err[0]);
        return 0;
    }
    const int fw = img.full_width ? img.full_width : img.width;
    const int fh = img.full_height ? img.full_height : img.height;
    FUZZ_CHECK(img.rgb && img.width > 0 && img.height > 0);
    FUZZ_CHECK((int64_t)fw * fh <= opt.max_pixels);
    FUZZ_CHECK(img.width <= fw && img.height <= fh);
    FUZZ_CHECK(img.orientation >= 0 && img.orientation <= 8);
    if (opt.ignore_exif) FUZZ_CHECK(img.orientation <= 1);
    if (opt.full_resolution) FUZZ_CHECK(img.width == fw && img.height == fh);
    const int need = shorter(fw, fh) < opt.min_side ? shorter(fw, fh) : opt.min_side;
    FUZZ_CHECK(shorter(img.width, img.height) >= need);

    static float out[3 * HW * HW];
    st = preprocess_rgb(&img, caffe ? PREPROCESS_CAFFE : PREPROCESS_TORCHVISION, 256, HW, out);
    preprocess_image_free(&img);
    if (st == PREPROCESS_NO_MEMORY) return 0;
    FUZZ_CHECK(st == PREPROCESS_OK);
    /* torchvision: (0 - 0.485) / 0.229 = -2.12 .. (1 - 0.406) / 0.225 = 2.64;
     * caffe: 0 - 123.68 .. 255 - 103.939 */
    const float lo = caffe ? -123.7f : -2.2f, hi = caffe ? 151.1f : 2.7f;
    for (size_t i = 0; i < sizeof out / sizeof out[0]; i++)
        FUZZ_CHECK(isfinite(out[i]) && out[i] >= lo && out[i] <= hi);
    return 0;
}
