/* image_check.h - structural checks of untrusted image bytes before stb_image sees them.
 *
 * Debian 12's stb_image is v2.27. Its JPEG decoder builds a Huffman table from the 16 code
 * counts of a DHT segment without checking that they add up to at most 256, and writes one
 * byte per code into fixed 257- and 256-byte arrays: a crafted JPEG overwrites the decoder's
 * state (function pointers included). v2.28 added the check (`n > 256` -> "bad DHT header");
 * until the system copy has it, this walks the markers the way stb does and refuses such
 * a file first. Found by tests/fuzz/fuzz_preprocess (regression inputs in
 * tests/fuzz/regress/).
 *
 * The same walk refuses a scan that uses a Huffman table no DHT segment defined: stb 2.27
 * does not check, and decodes with uninitialised heap memory as the table (an assertion
 * failure in builds with assertions, reads at garbage indices without them; 2.28 bounds the
 * index). Found by tests/fuzz/fuzz_classify_request.
 *
 * PNG: the header's width and height are 32-bit fields, but the format allows at most
 * 2^31 - 1; larger values are refused here, so that model/preprocess.c's pixel count
 * (width x height in int64_t) cannot overflow (UBSan finding of the same fuzzer). And every
 * chunk before IEND must lie inside the data: stb grows its IDAT buffer to a chunk's claimed
 * length before reading it, so a 100-byte file could make it allocate 2 GiB (a fuzzer
 * timeout under ASan; a 500 where memory is not overcommitted).
 *
 * Used by every request path that decodes images (api/classify_request.c, api/kserve_v2.c)
 * and by tests/fuzz/fuzz_preprocess.c.
 *
 * Pure, reentrant; reads only [bytes, bytes + len). */
#ifndef API_IMAGE_CHECK_H
#define API_IMAGE_CHECK_H

#include <stddef.h>
#include <stdint.h>

/* 0 when the bytes pass (JPEG: every Huffman table stb would build is within bounds and
 * every table a scan uses is defined; PNG: IHDR sides within 2^31 - 1 and every chunk
 * inside the data; anything else passes, for the decoder to judge), -1 with err (a message
 * for the client: 422 undecodable_image) otherwise. */
int image_check(const uint8_t *bytes, size_t len, char *err, size_t errlen);

#endif
