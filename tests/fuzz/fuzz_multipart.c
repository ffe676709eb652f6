/* fuzz_multipart.c - multipart/form-data boundary and body parsing (api/multipart.c).
 *
 * Input: the Content-Type value up to the first '\n', then the body. Checks that every part
 * lies inside the body, that parts do not overlap and come in order, and that the header
 * fields are terminated strings. */
#include <string.h>

#include "fuzz_util.h"
#include "multipart.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nl = memchr(data, '\n', size);
    size_t ct_len = nl ? (size_t)(nl - data) : size;
    if (ct_len > 4096) return 0;
    char ctype[4097];
    memcpy(ctype, data, ct_len);
    ctype[ct_len] = '\0';
    const uint8_t *body = nl ? nl + 1 : data + size;
    size_t len = (size_t)(data + size - body);

    char boundary[80], err[256];
    if (multipart_boundary(ctype, boundary, sizeof boundary, err, sizeof err) != 0) {
        FUZZ_CHECK(memchr(err, '\0', sizeof err));
        return 0;
    }
    FUZZ_CHECK(strlen(boundary) >= 1 && strlen(boundary) <= 70);
    /* A copy of exactly len bytes, so ASan sees any read past the end. */
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, body, len);
    static multipart_part parts[8];
    for (int max_parts = 1; max_parts <= 8; max_parts += 7) {
        int n = multipart_parse(copy, len, boundary, parts, max_parts, err, sizeof err);
        FUZZ_CHECK(n >= -2 && n <= max_parts);
        const uint8_t *prev_end = copy;
        for (int i = 0; i < n; i++) {
            FUZZ_CHECK(parts[i].data >= prev_end && parts[i].data + parts[i].len <= copy + len);
            prev_end = parts[i].data + parts[i].len;
            FUZZ_CHECK(memchr(parts[i].name, '\0', sizeof parts[i].name));
            FUZZ_CHECK(memchr(parts[i].filename, '\0', sizeof parts[i].filename));
            FUZZ_CHECK(memchr(parts[i].content_type, '\0', sizeof parts[i].content_type));
        }
    }
    free(copy);
    return 0;
}
