/* exif.h - the orientation tag of an image's EXIF block, read with every offset checked.
 *
 * Phone cameras store the sensor's pixels as they come off it and record how the phone was
 * held in EXIF tag 0x0112 (Orientation, TIFF 6.0): 1 upright, 2 mirrored left-right, 3 turned
 * 180 degrees, 4 mirrored top-bottom, 5 transposed (mirrored about the top-left to
 * bottom-right diagonal), 6 to be turned 90 degrees clockwise, 7 transversed, 8 to be turned
 * 90 degrees counter-clockwise. PIL's ImageOps.exif_transpose applies the same eight values.
 *
 * Only IFD0 is read (the orientation lives there; no IFD chain is followed, so a block whose
 * offsets loop cannot make this loop). Anything malformed - an offset or a count pointing
 * outside the block, a byte order that is neither II nor MM, a wrong type, a value outside
 * 1..8, a segment cut short - gives 0 ("no orientation"), never an error: a broken EXIF block
 * must not stop a photo from being classified.
 *
 * Pure and reentrant; reads only [bytes, bytes + len). Fuzzed by tests/fuzz/fuzz_exif.c. */
#ifndef MODEL_EXIF_H
#define MODEL_EXIF_H

#include <stddef.h>
#include <stdint.h>

/* The orientation (1..8) in a TIFF structure ("II*\0" or "MM\0*" and IFDs), or 0. */
int exif_orientation_tiff(const uint8_t *tiff, size_t len);

/* The orientation in the first APP1 "Exif\0\0" segment of a JPEG file (before its first scan),
 * or 0. */
int exif_orientation_jpeg(const uint8_t *jpeg, size_t len);

/* The orientation in the EXIF chunk of a WebP file (RIFF "WEBP" with a VP8X header), or 0.
 * The chunk holds the TIFF structure itself; a leading "Exif\0\0", which some writers add,
 * is skipped. */
int exif_orientation_webp(const uint8_t *webp, size_t len);

#endif
