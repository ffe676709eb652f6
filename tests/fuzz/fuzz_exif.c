/* fuzz_exif.c - the EXIF orientation reader (model/exif.c).
 *
 * The input is read three ways: as a JPEG file (APP1 "Exif" segment), as a WebP file (RIFF EXIF
 * chunk) and as a bare TIFF structure. Whatever it holds, each answer is an orientation 1..8 or
 * 0 (none), and reading never leaves [data, data + size) (ASan checks that). */
#include "exif.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const int jpeg = exif_orientation_jpeg(data, size), webp = exif_orientation_webp(data, size),
              tiff = exif_orientation_tiff(data, size);
    FUZZ_CHECK(jpeg >= 0 && jpeg <= 8);
    FUZZ_CHECK(webp >= 0 && webp <= 8);
    FUZZ_CHECK(tiff >= 0 && tiff <= 8);
    return 0;
}
