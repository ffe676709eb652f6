/* fuzz_preprocess.c - image decoding (stb_image, JPEG and PNG only) and preprocessing.
 *
 * The input is an image file, taken the way the service takes it: image_check() (the guard
 * against stb v2.27's DHT overflow, api/image_check.h), then preprocess_bytes() with a
 * 4-megapixel limit (the service allows 40, but the fuzzer must stay fast). On success every
 * output value must be finite and within the range normalisation can produce. Set
 * FUZZ_NO_GUARD=1 in the environment to fuzz stb without the guard. */
#include <math.h>
#include <string.h>

#include "fuzz_util.h"
#include "image_check.h"
#include "preprocess.h"

#define HW 224

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static float out[3 * HW * HW];
    static int guard = -1;
    if (guard < 0) guard = !getenv("FUZZ_NO_GUARD");
    char err[384];
    if (guard && image_check(data, size, err, sizeof err) != 0) return 0;
    preprocess_status st =
        preprocess_bytes(data, size, 4 << 20, PREPROCESS_TORCHVISION, HW, out, err, sizeof err);
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
