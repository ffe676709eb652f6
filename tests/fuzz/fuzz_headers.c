/* fuzz_headers.c - the request headers the service reads itself and compressed bodies:
 * Content-Encoding, Accept-Encoding and Accept (api/content_coding.c), traceparent
 * (api/trace_context.c), and the inflater under a limit.
 *
 * Input: one header value line, "\n", then a body. The line is read as each header; the
 * body is inflated as gzip and as deflate, fed in pieces of varying size, under a 64 KiB
 * limit. Invariants: no more than the limit ever comes out; a parsed traceparent is
 * lower-case hex with nonzero ids and formats back to 55 characters; whatever inflates
 * completely compresses and inflates back to the same bytes. */
#include <string.h>

#include "content_coding.h"
#include "fuzz_util.h"
#include "trace_context.h"

#define LIMIT (64 * 1024)

static void check_headers(const char *line) {
    content_coding c = content_coding_parse(line);
    FUZZ_CHECK(c >= CONTENT_CODING_IDENTITY && c <= CONTENT_CODING_UNSUPPORTED);
    (void)content_coding_accepts(line, CONTENT_CODING_GZIP);
    (void)content_coding_accepts(line, CONTENT_CODING_DEFLATE);
    bool exact;
    const double q = content_accept_media_q(line, "image/png", &exact);
    FUZZ_CHECK(q == -1 || (q >= 0 && q <= 1));
    FUZZ_CHECK(!exact || q >= 0);
    trace_context tc;
    if (trace_context_parse(line, &tc)) {
        FUZZ_CHECK(strlen(tc.trace_id) == 32 && strlen(tc.parent_id) == 16);
        FUZZ_CHECK(strspn(tc.trace_id, "0123456789abcdef") == 32);
        FUZZ_CHECK(strspn(tc.trace_id, "0") < 32 && strspn(tc.parent_id, "0") < 16);
        char out[56];
        trace_context_format(tc.trace_id, tc.parent_id, tc.flags, out);
        FUZZ_CHECK(strlen(out) == 55);
        trace_context back;
        FUZZ_CHECK(trace_context_parse(out, &back) && strcmp(back.trace_id, tc.trace_id) == 0);
    }
}

static void check_inflate(content_coding c, const uint8_t *body, size_t n, size_t piece) {
    content_inflater *z = content_inflater_new(c, LIMIT);
    if (!z) return;
    content_status st = CONTENT_OK;
    for (size_t at = 0; at < n && st == CONTENT_OK; at += piece)
        st = content_inflater_feed(z, body + at, n - at < piece ? n - at : piece);
    if (st == CONTENT_OK) st = content_inflater_finish(z);
    size_t len;
    const uint8_t *out = content_inflater_data(z, &len);
    FUZZ_CHECK(len <= LIMIT + 1); /* one byte past the limit is how it notices */
    if (st == CONTENT_OK) {
        FUZZ_CHECK(len <= LIMIT);
        uint8_t *packed;
        size_t packed_len;
        if (content_coding_compress(c, out, len, &packed, &packed_len) == 0) {
            content_inflater *back = content_inflater_new(c, LIMIT);
            FUZZ_CHECK(back && content_inflater_feed(back, packed, packed_len) == CONTENT_OK &&
                       content_inflater_finish(back) == CONTENT_OK);
            size_t back_len;
            const uint8_t *again = content_inflater_data(back, &back_len);
            FUZZ_CHECK(back_len == len && (len == 0 || memcmp(again, out, len) == 0));
            content_inflater_free(back);
            free(packed);
        }
    }
    content_inflater_free(z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nl = memchr(data, '\n', size);
    size_t line_len = nl ? (size_t)(nl - data) : size;
    char *line = malloc(line_len + 1); /* exact size for ASan */
    memcpy(line, data, line_len);
    line[line_len] = '\0';
    check_headers(line);
    free(line);
    if (!nl) return 0;
    const uint8_t *body = nl + 1;
    size_t n = size - line_len - 1;
    size_t piece = n ? 1 + body[0] % 7 : 1; /* 1..7 bytes a call, and whole below */
    check_inflate(CONTENT_CODING_GZIP, body, n, piece);
    check_inflate(CONTENT_CODING_DEFLATE, body, n, piece);
    check_inflate(CONTENT_CODING_GZIP, body, n, n ? n : 1);
    return 0;
}
