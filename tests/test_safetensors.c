/* test_safetensors.c - model/safetensors: a valid file's round trip (write, open, read as
 * f32), the F16/BF16 conversions value by value, and a table of malformed files each refused
 * with its own message (the same table as tests/fuzz/regress/safetensors). */
#include <jansson.h>
#include <unistd.h>

#include "safetensors.h"
#include "test_model_util.h"

/* A safetensors image: 8-byte length (claimed_len, or the header's own length when
 * claimed_len is UINT64_MAX), the header text, then n_data bytes (byte i is i & 0xff). The
 * buffer is exactly *size bytes so AddressSanitizer sees any read past it. */
static uint8_t *st_image(uint64_t claimed_len, const char *header, size_t n_data, size_t *size) {
    size_t hlen = strlen(header);
    if (claimed_len == UINT64_MAX) claimed_len = hlen;
    *size = 8 + hlen + n_data;
    uint8_t *buf = malloc(*size);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(claimed_len >> (8 * i));
    memcpy(buf + 8, header, hlen);
    for (size_t i = 0; i < n_data; i++) buf[8 + hlen + i] = (uint8_t)i;
    return buf;
}

static void test_safetensors_round_trip(void) {
    char path[512], err[512] = "";
    tmp_path(path, sizeof path, "tiny.safetensors");
    float a[6] = {1.5f, -2.0f, 0.0f, 3.25f, -0.125f, 1e-30f};
    float b[3] = {7.0f, 8.0f, 9.0f};
    const char *names[2] = {"layer.weight", "layer.bias"};
    const int64_t shapes[2][SAFETENSORS_MAX_DIMS] = {{2, 3}, {3}};
    const int ndims[2] = {2, 1};
    const float *data[2] = {a, b};
    const char *meta[] = {"format", "pt", "note", "unit test", NULL};
    EXPECT(safetensors_write_f32(path, 2, names, shapes, ndims, data, meta, err, sizeof err) == 0);

    safetensors_file f;
    EXPECT(safetensors_open(&f, path, err, sizeof err) == 0);
    EXPECT(f.n_tensors == 2); /* __metadata__ is not a tensor */
    const safetensors_tensor *ta = safetensors_find(&f, "layer.weight");
    const safetensors_tensor *tb = safetensors_find(&f, "layer.bias");
    EXPECT(safetensors_find(&f, "layer") == NULL);
    EXPECT(safetensors_find(&f, "__metadata__") == NULL);
    EXPECT(f.n_meta == 2 && safetensors_metadata(&f, "note") &&
           strcmp(safetensors_metadata(&f, "note"), "unit test") == 0 &&
           strcmp(safetensors_metadata(&f, "format"), "pt") == 0 &&
           safetensors_metadata(&f, "preprocess") == NULL);
    EXPECT(ta && tb);
    if (ta && tb) {
        EXPECT(ta->dtype == ST_F32 && strcmp(ta->dtype_name, "F32") == 0);
        EXPECT(ta->ndim == 2 && ta->shape[0] == 2 && ta->shape[1] == 3);
        EXPECT(ta->numel == 6 && ta->nbytes == 24);
        EXPECT(tb->ndim == 1 && tb->shape[0] == 3 && tb->numel == 3 && tb->nbytes == 12);
        /* The writer pads the header to 8 bytes so mapped F32 data stays aligned. */
        EXPECT((uintptr_t)ta->data % 4 == 0 && (uintptr_t)tb->data % 4 == 0);
        EXPECT(tb->data == ta->data + 24); /* stored in the order given */
        float out[6];
        EXPECT(safetensors_to_f32(ta, out) == 0);
        EXPECT(memcmp(out, a, sizeof a) == 0);
        EXPECT(safetensors_to_f32(tb, out) == 0);
        EXPECT(memcmp(out, b, sizeof b) == 0);
    }
    safetensors_close(&f);
    EXPECT(f.tensors == NULL && f.n_tensors == 0 && f.map == NULL);

    /* The same bytes through the buffer API. */
    size_t len;
    uint8_t *buf = read_bytes(path, &len);
    EXPECT(buf != NULL);
    if (buf) {
        uint64_t hlen = 0;
        for (int i = 7; i >= 0; i--) hlen = hlen << 8 | buf[i];
        EXPECT(hlen % 8 == 0 && len == 8 + hlen + 36);
        EXPECT(safetensors_parse(&f, buf, len, err, sizeof err) == 0);
        EXPECT(f.n_tensors == 2 && f.map == NULL);
        const safetensors_tensor *t = safetensors_find(&f, "layer.bias");
        EXPECT(t && t->data == buf + len - 12);
        safetensors_close(&f);
        free(buf);
    }

    /* Edge cases that are valid: no tensors, metadata only, an empty tensor. */
    const char *valid[] = {
        "{}",
        "{\"__metadata__\":{\"a\":\"b\"}}",
        "{\"__metadata__\":{\"n\":1,\"o\":{}}}", /* not strings: ignored */
        "{\"__metadata__\":[1]}",
        "{\"empty\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[0,0]}}",
        "{\"scalar\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[0,2]}}",
    };
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
        uint8_t *img = st_image(UINT64_MAX, valid[i], 2, &len);
        int rc = safetensors_parse(&f, img, len, err, sizeof err);
        EXPECT(rc == 0);
        if (rc != 0) fprintf(stderr, "  valid header %s refused: %s\n", valid[i], err);
        safetensors_close(&f);
        free(img);
    }
    uint8_t *img = st_image(UINT64_MAX, valid[4], 0, &len);
    EXPECT(safetensors_parse(&f, img, len, err, sizeof err) == 0);
    EXPECT(f.n_tensors == 1 && f.tensors[0].numel == 0 && f.tensors[0].nbytes == 0);
    safetensors_close(&f);
    free(img);
}

static void test_half_conversions(void) {
    /* Direct conversions against values built with ldexp (independent of the bit tricks). */
    EXPECT(safetensors_f16_to_f32(0x3c00) == 1.0f);
    EXPECT(safetensors_f16_to_f32(0xc100) == -2.5f);
    EXPECT(safetensors_f16_to_f32(0x7bff) == 65504.0f);
    EXPECT(safetensors_f16_to_f32(0x0001) == (float)ldexp(1.0, -24)); /* smallest subnormal */
    EXPECT(safetensors_f16_to_f32(0x0200) == (float)ldexp(1.0, -15));
    EXPECT(safetensors_f16_to_f32(0x03ff) == (float)ldexp(1023.0, -24)); /* largest subnormal */
    EXPECT(safetensors_f16_to_f32(0x8001) == -(float)ldexp(1.0, -24));
    EXPECT(safetensors_f16_to_f32(0x0400) == (float)ldexp(1.0, -14)); /* smallest normal */
    EXPECT(safetensors_f16_to_f32(0x3555) == (float)(1365.0 / 1024 / 4)); /* ~1/3 */
    float negzero = safetensors_f16_to_f32(0x8000);
    EXPECT(negzero == 0.0f && signbit(negzero));
    EXPECT(safetensors_f16_to_f32(0x0000) == 0.0f && !signbit(safetensors_f16_to_f32(0)));
    EXPECT(isinf(safetensors_f16_to_f32(0x7c00)) && safetensors_f16_to_f32(0x7c00) > 0);
    EXPECT(isinf(safetensors_f16_to_f32(0xfc00)) && safetensors_f16_to_f32(0xfc00) < 0);
    EXPECT(isnan(safetensors_f16_to_f32(0x7e00)));
    EXPECT(safetensors_bf16_to_f32(0x4049) == 3.140625f);
    EXPECT(safetensors_bf16_to_f32(0x3f80) == 1.0f);
    EXPECT(safetensors_bf16_to_f32(0xc020) == -2.5f);
    EXPECT(safetensors_bf16_to_f32(0x0001) == (float)ldexp(1.0, -133)); /* bf16 subnormal */
    EXPECT(isinf(safetensors_bf16_to_f32(0xff80)) && safetensors_bf16_to_f32(0xff80) < 0);

    /* The same through a file's tensors: little-endian 16-bit words. */
    const uint16_t h[6] = {0x3c00, 0xc100, 0x7bff, 0x0001, 0x03ff, 0x8000};
    const uint16_t bf[3] = {0x4049, 0x3f80, 0xc020};
    const char *header = "{\"h\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,12]},"
                         "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[12,18]}}";
    size_t len;
    uint8_t *buf = st_image(UINT64_MAX, header, 18, &len);
    uint8_t *data = buf + len - 18;
    for (int i = 0; i < 6; i++) {
        data[2 * i] = (uint8_t)(h[i] & 0xff);
        data[2 * i + 1] = (uint8_t)(h[i] >> 8);
    }
    for (int i = 0; i < 3; i++) {
        data[12 + 2 * i] = (uint8_t)(bf[i] & 0xff);
        data[12 + 2 * i + 1] = (uint8_t)(bf[i] >> 8);
    }
    safetensors_file f;
    char err[512] = "";
    EXPECT(safetensors_parse(&f, buf, len, err, sizeof err) == 0);
    const safetensors_tensor *th = safetensors_find(&f, "h"), *tb = safetensors_find(&f, "b");
    EXPECT(th && tb);
    if (th && tb) {
        EXPECT(th->dtype == ST_F16 && th->numel == 6 && th->nbytes == 12);
        EXPECT(tb->dtype == ST_BF16 && tb->numel == 3 && tb->nbytes == 6);
        float out[6];
        EXPECT(safetensors_to_f32(th, out) == 0);
        EXPECT(out[0] == 1.0f && out[1] == -2.5f && out[2] == 65504.0f);
        EXPECT(out[3] == (float)ldexp(1.0, -24) && out[4] == (float)ldexp(1023.0, -24));
        EXPECT(out[5] == 0.0f && signbit(out[5]));
        EXPECT(safetensors_to_f32(tb, out) == 0);
        EXPECT(out[0] == 3.140625f && out[1] == 1.0f && out[2] == -2.5f);
    }
    safetensors_close(&f);
    free(buf);
}

/* One malformed file per row, with what its error must mention (jansson's test/suites/invalid
 * style, kept in code so each case reads on one line). */
typedef struct {
    const char *what;
    uint64_t claimed_len; /* UINT64_MAX: the header's real length */
    const char *header;
    size_t n_data;
    long keep; /* keep only the first `keep` bytes; -1 keeps everything */
    const char *expect[3];
} bad_st_case;

#define ST_ENTRY(name, dtype, shape, offs) \
    "\"" name "\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":" offs "}"

static const bad_st_case bad_st_cases[] = {
    {"empty file", UINT64_MAX, "", 0, 0, {"too short"}},
    {"7 bytes", UINT64_MAX, "{}", 0, 7, {"7 bytes", "too short"}},
    {"header length 2^40", 1ull << 40, "{}", 16, -1, {"header length 1099511627776"}},
    {"header length past the end", 100, "{}", 8, -1, {"header length 100", "18-byte file"}},
    {"header length 0", 0, "{}", 8, -1, {"'{'"}},
    {"header not JSON", UINT64_MAX, "{this is not json}", 0, -1, {"not a JSON object"}},
    {"header JSON array", UINT64_MAX, "[{\"a\": 1}]", 0, -1, {"'{'"}},
    {"header JSON string", UINT64_MAX, "\"{}\"", 0, -1, {"'{'"}},
    {"header cut inside the JSON", 30, "{" ST_ENTRY("w", "F32", "[1]", "[0,4]") "}", 4, -1,
     {"not a JSON object"}},
    {"unknown dtype I64", UINT64_MAX, "{" ST_ENTRY("conv.weight", "I64", "[2]", "[0,16]") "}", 16,
     -1, {"'conv.weight'", "I64"}},
    {"offsets past the data", UINT64_MAX, "{" ST_ENTRY("conv.weight", "F32", "[4]", "[0,16]") "}",
     8, -1, {"'conv.weight'", "past the end"}},
    {"begin past the data", UINT64_MAX,
     "{" ST_ENTRY("conv.weight", "F32", "[1]", "[4096,4100]") "}", 8, -1, {"'conv.weight'"}},
    {"offsets size != shape x dtype", UINT64_MAX,
     "{" ST_ENTRY("conv.weight", "F32", "[2,3]", "[0,20]") "}", 24, -1,
     {"'conv.weight'", "20 bytes", "needs 24"}},
    {"F16 size counted as F32", UINT64_MAX, "{" ST_ENTRY("conv.weight", "F16", "[4]", "[0,16]") "}",
     16, -1, {"'conv.weight'", "needs 8"}},
    {"end < begin", UINT64_MAX, "{" ST_ENTRY("conv.weight", "F32", "[1]", "[8,4]") "}", 16, -1,
     {"'conv.weight'", "begin <= end"}},
    {"negative begin", UINT64_MAX, "{" ST_ENTRY("conv.weight", "F32", "[1]", "[-4,0]") "}", 16, -1,
     {"'conv.weight'"}},
    {"offsets not integers", UINT64_MAX, "{" ST_ENTRY("conv.weight", "F32", "[1]", "[0,4.0]") "}",
     16, -1, {"'conv.weight'", "data_offsets"}},
    {"three offsets", UINT64_MAX, "{" ST_ENTRY("conv.weight", "F32", "[1]", "[0,4,8]") "}", 16, -1,
     {"'conv.weight'", "data_offsets"}},
    {"negative shape", UINT64_MAX, "{" ST_ENTRY("conv.weight", "F32", "[2,-1]", "[0,0]") "}", 16,
     -1, {"'conv.weight'", "shape[1]"}},
    {"shape not an integer", UINT64_MAX, "{" ST_ENTRY("conv.weight", "F32", "[\"4\"]", "[0,16]") "}",
     16, -1, {"'conv.weight'", "shape[0]"}},
    {"shape overflows 64 bits", UINT64_MAX,
     "{" ST_ENTRY("conv.weight", "F32", "[4611686018427387904,4611686018427387904]", "[0,0]") "}",
     16, -1, {"'conv.weight'", "overflow"}},
    {"nine dimensions", UINT64_MAX,
     "{" ST_ENTRY("conv.weight", "F32", "[1,1,1,1,1,1,1,1,1]", "[0,4]") "}", 16, -1,
     {"'conv.weight'", "dimensions"}},
    {"entry not an object", UINT64_MAX, "{\"conv.weight\": [0, 4]}", 16, -1,
     {"'conv.weight'", "not an object"}},
    {"no data_offsets", UINT64_MAX, "{\"conv.weight\":{\"dtype\":\"F32\",\"shape\":[1]}}", 16, -1,
     {"'conv.weight'", "data_offsets"}},
    {"dtype not a string", UINT64_MAX,
     "{\"conv.weight\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 16, -1,
     {"'conv.weight'", "dtype"}},
    {"overlapping tensors", UINT64_MAX,
     "{" ST_ENTRY("first", "F32", "[4]", "[0,16]") "," ST_ENTRY("second", "F32", "[4]", "[8,24]") "}",
     24, -1, {"'first'", "'second'", "overlap"}},
    {"same range twice", UINT64_MAX,
     "{" ST_ENTRY("first", "F32", "[2]", "[0,8]") "," ST_ENTRY("second", "F32", "[2]", "[0,8]") "}",
     8, -1, {"'first'", "'second'", "overlap"}},
    {"duplicate keys", UINT64_MAX,
     "{" ST_ENTRY("dup", "F32", "[1]", "[0,4]") "," ST_ENTRY("dup", "F32", "[1]", "[4,8]") "}", 8,
     -1, {"duplicate"}},
};

static void test_safetensors_malformed(void) {
    const size_t n_cases = sizeof bad_st_cases / sizeof bad_st_cases[0];
    for (size_t i = 0; i < n_cases; i++) {
        const bad_st_case *c = &bad_st_cases[i];
        size_t size;
        uint8_t *full = st_image(c->claimed_len, c->header, c->n_data, &size);
        if (c->keep >= 0) size = (size_t)c->keep;
        /* An exact-size copy, so a read past the end is an ASan/valgrind error. */
        uint8_t *buf = malloc(size ? size : 1);
        memcpy(buf, full, size);
        free(full);

        safetensors_file f;
        char err[512] = "";
        int rc = safetensors_parse(&f, buf, size, err, sizeof err);
        EXPECT(rc == -1);
        EXPECT(err[0] != '\0');
        EXPECT(f.tensors == NULL && f.n_tensors == 0 && f.map == NULL); /* left closed */
        for (int k = 0; k < 3 && c->expect[k]; k++) EXPECT_HAS(err, c->expect[k]);
        if (rc != -1) {
            fprintf(stderr, "  case '%s' was accepted\n", c->what);
            safetensors_close(&f);
        }

        /* The same bytes as a file: the message also names the file. */
        char path[512], name[64];
        snprintf(name, sizeof name, "bad%02zu.safetensors", i);
        tmp_path(path, sizeof path, name);
        EXPECT(write_bytes(path, buf, size) == 0);
        err[0] = '\0';
        rc = safetensors_open(&f, path, err, sizeof err);
        EXPECT(rc == -1);
        EXPECT_HAS(err, path);
        for (int k = 0; k < 3 && c->expect[k]; k++) EXPECT_HAS(err, c->expect[k]);
        if (rc != -1) safetensors_close(&f);
        printf("  bad safetensors %-30s -> %s\n", c->what, err + strlen(path) + 2);
        free(buf);
    }

    /* A good file truncated: the tensor that runs off the end is named. */
    char path[512], err[512] = "";
    tmp_path(path, sizeof path, "truncated.safetensors");
    float a[4] = {1, 2, 3, 4}, b[100] = {0};
    const char *names[2] = {"small.tensor", "big.tensor"};
    const int64_t shapes[2][SAFETENSORS_MAX_DIMS] = {{4}, {10, 10}};
    const int ndims[2] = {1, 2};
    const float *data[2] = {a, b};
    EXPECT(safetensors_write_f32(path, 2, names, shapes, ndims, data, NULL, err, sizeof err) == 0);
    size_t len;
    uint8_t *good = read_bytes(path, &len);
    EXPECT(good != NULL && len > 416);
    if (good) {
        /* small.tensor is bytes [0, 16) of the data, big.tensor [16, 416). */
        const size_t cuts[] = {len - 1, len - 200, len - 400};
        for (size_t i = 0; i < 3; i++) {
            EXPECT(truncate(path, (off_t)cuts[i]) == 0);
            safetensors_file f;
            err[0] = '\0';
            EXPECT(safetensors_open(&f, path, err, sizeof err) == -1);
            EXPECT_HAS(err, "'big.tensor'");
            EXPECT_HAS(err, "truncated");
        }
        EXPECT(truncate(path, (off_t)(len - 416)) == 0); /* header only: both run off */
        safetensors_file f;
        err[0] = '\0';
        EXPECT(safetensors_open(&f, path, err, sizeof err) == -1);
        EXPECT_HAS(err, "truncated");
        free(good);
    }
    safetensors_file f;
    err[0] = '\0';
    EXPECT(safetensors_open(&f, "/nonexistent/x.safetensors", err, sizeof err) == -1);
    EXPECT_HAS(err, "/nonexistent/x.safetensors");
    err[0] = '\0';
    EXPECT(safetensors_open(&f, tmp_dir, err, sizeof err) == -1); /* a directory */
    EXPECT(err[0] != '\0');
}

/* A file truncated while it is mapped: the copy fails with -2 instead of SIGBUS. */
static void test_truncated_under_the_map(void) {
    char path[512], err[512] = "";
    tmp_path(path, sizeof path, "shrinks.safetensors");
    static float big[1 << 16]; /* 256 KiB: pages past the first few */
    const char *names[1] = {"w"};
    const int64_t shapes[1][SAFETENSORS_MAX_DIMS] = {{1 << 16}};
    const int ndims[1] = {1};
    const float *data[1] = {big};
    EXPECT(safetensors_write_f32(path, 1, names, shapes, ndims, data, NULL, err, sizeof err) == 0);
    safetensors_file f;
    EXPECT(safetensors_open(&f, path, err, sizeof err) == 0);
    EXPECT(truncate(path, 4096) == 0);
    static float out[1 << 16];
    const safetensors_tensor *t = safetensors_find(&f, "w");
    EXPECT(t && safetensors_to_f32(t, out) == -2);
    EXPECT(t && safetensors_to_f32(t, out) == -2); /* and again: the handler stays */
    safetensors_close(&f);
    unlink(path);
}

int main(int argc, char **argv) {
    static const test_case tests[] = {
        {"safetensors truncated under the map", test_truncated_under_the_map},
        {"safetensors round trip", test_safetensors_round_trip},
        {"f16/bf16 conversion", test_half_conversions},
        {"safetensors malformed", test_safetensors_malformed},
    };
    return model_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
