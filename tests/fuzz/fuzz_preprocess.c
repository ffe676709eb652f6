/* fuzz_preprocess.c - image decoding (image_decode: every format) and preprocessing.
 *
 * The input is an image file, taken the way the service takes it: preprocess_bytes() with the
 * service's decode settings (scaling auto, EXIF applied; image_decode runs the guard of
 * model/image_check.h itself) and a 4-megapixel limit (the service allows 40, but the fuzzer
 * must stay fast). On success every output value must be finite and within the range
 * normalisation can produce. fuzz_decode varies the settings (scaling off, EXIF ignored,
 * the caffe geometry, the smallest scale factors). */
#include <math.h>
#include <string.h>

#include "fuzz_util.h"
#include "image_decode.h"
#include "preprocess.h"

#define HW 224

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static float out[3 * HW * HW];
    char err[384];
    const image_decode_options opt = {.max_pixels = 4 << 20};
    preprocess_status st =
        preprocess_bytes(data, size, &opt, PREPROCESS_TORCHVISION, HW, out, err, sizeof err);
    FUZZ_CHECK(st >= PREPROCESS_OK && st <= PREPROCESS_NO_MEMORY);
    if (st != PREPROCESS_OK) {
        FUZZ_CHECK(memchr(err, '\0', sizeof err) && err[0]);
        return 0;
    }
    /* (0 - 0.485) / 0.229 = -2.12 .. (1 - 0.406) / 0.225 = 2.64 */
    for (size_t i = 0; i < sizeof out / sizeof out[0]; i++)
        FUZZ_CHECK(isfinite(out[i]) && out[i] > -2.2f && out[i] < 2.7f);
    return 0;
}
