/* test_model.c - unit tests of the model/ modules that need no oneDNN engine.
 *
 * safetensors (valid round trip, F16/BF16 values, a table of malformed files), VGG weights
 * (load by name and shape, timm names, F16/BF16 files, generate/save/load, the PRNG), the
 * config's parameter and FLOP counts, preprocessing (geometry on synthetic images, decoding
 * and its limits, parity with torchvision's fixtures), top-k, labels and .npy.
 *
 * Usage: test_model <tests dir>  (finds data/images and fixtures/preprocess under it).
 * Temporary files live in one mkdtemp directory under /tmp, removed at exit. */
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "heatmap.h"
#include "engine.h"
#include "labels.h"
#include "name_table.h"
#include "npy.h"
#include "image_decode.h"
#include "preprocess.h"
#include "safetensors.h"
#include "test_util.h"
#include "topk.h"
#include "vgg_config.h"
#include "vgg_weights.h"

/* ---------------------------------------------------------------- helpers */

static char tmp_dir[] = "/tmp/test_model.XXXXXX";
static const char *tests_dir;

/* Fails (and prints both) unless s contains sub. */
#define EXPECT_HAS(s, sub) expect_has(__FILE__, __LINE__, (s), (sub))
static void expect_has(const char *file, int line, const char *s, const char *sub) {
    if (s && strstr(s, sub)) {
        test_passed++;
        return;
    }
    test_failed++;
    fprintf(stderr, "%s:%d: FAILED: \"%s\" does not contain \"%s\"\n", file, line,
            s ? s : "(null)", sub);
}

#define EXPECT_NEAR(a, b, tol) expect_near(__FILE__, __LINE__, #a, (double)(a), (double)(b), (tol))
static void expect_near(const char *file, int line, const char *what, double a, double b,
                        double tol) {
    if (fabs(a - b) <= tol) {
        test_passed++;
        return;
    }
    test_failed++;
    fprintf(stderr, "%s:%d: FAILED: %s = %.9g, expected %.9g within %g\n", file, line, what, a,
            b, tol);
}

static const char *tmp_path(char *buf, size_t len, const char *name) {
    snprintf(buf, len, "%s/%s", tmp_dir, name);
    return buf;
}

static void remove_tmp_dir(void) {
    DIR *d = opendir(tmp_dir);
    if (!d) return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            unlink(tmp_path(path, sizeof path, e->d_name));
    closedir(d);
    rmdir(tmp_dir);
}

static int write_bytes(const char *path, const void *buf, size_t len) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return -1;
    int ok = fwrite(buf, 1, len, fp) == len;
    return (fclose(fp) == 0 && ok) ? 0 : -1;
}

/* Whole file into a malloc'd buffer (caller frees), or NULL. */
static uint8_t *read_bytes(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(fp);
    *len = (size_t)n;
    return buf;
}

static uint8_t *read_image(const char *name, size_t *len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/data/images/%s", tests_dir, name);
    uint8_t *b = read_bytes(path, len);
    if (!b) fprintf(stderr, "cannot read %s\n", path);
    return b;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---------------------------------------------------------------- safetensors */

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

/* ---------------------------------------------------------------- VGG weights */

/* The reduced VGG11 of the brief: channels / 16, 32x32 input, fc 8, 10 classes. torchvision's
 * vgg11 `features` puts its convolutions at these indices (conv, relu, [pool]). */
static const int vgg11_feature_index[8] = {0, 3, 6, 8, 11, 13, 16, 18};

/* Every parameter of a config in torchvision order, with values exact in F16 and BF16. */
typedef struct {
    int n;
    char names[2 * VGG_MAX_CONV + 2 * VGG_N_FC][48];
    int64_t shapes[2 * VGG_MAX_CONV + 2 * VGG_N_FC][SAFETENSORS_MAX_DIMS];
    int ndims[2 * VGG_MAX_CONV + 2 * VGG_N_FC];
    float *data[2 * VGG_MAX_CONV + 2 * VGG_N_FC]; /* owned */
    int64_t numel[2 * VGG_MAX_CONV + 2 * VGG_N_FC];
} tensor_set;

static void set_add(tensor_set *s, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2,
                    int64_t d3) {
    int k = s->n++;
    snprintf(s->names[k], sizeof s->names[k], "%s", name);
    int64_t dims[4] = {d0, d1, d2, d3};
    s->ndims[k] = ndim;
    s->numel[k] = 1;
    for (int d = 0; d < ndim; d++) {
        s->shapes[k][d] = dims[d];
        s->numel[k] *= dims[d];
    }
    s->data[k] = malloc((size_t)s->numel[k] * sizeof(float));
    /* Multiples of 1/64 below 2 in magnitude: exact in F16 and BF16, different per tensor. */
    for (int64_t i = 0; i < s->numel[k]; i++)
        s->data[k][i] = (float)((int)((k * 131 + i * 7) % 251) - 125) / 64.0f;
}

static void set_free(tensor_set *s) {
    for (int k = 0; k < s->n; k++) free(s->data[k]);
    s->n = 0;
}

/* torchvision names (timm = 0) or timm names (timm = 1) for a reduced vgg11. */
static void set_vgg11(tensor_set *s, const vgg_config *c, int timm) {
    memset(s, 0, sizeof *s);
    char name[48];
    for (int i = 0; i < 8; i++) {
        snprintf(name, sizeof name, "features.%d.weight", vgg11_feature_index[i]);
        set_add(s, name, 4, c->conv_out[i], c->conv_in[i], 3, 3);
        snprintf(name, sizeof name, "features.%d.bias", vgg11_feature_index[i]);
        set_add(s, name, 1, c->conv_out[i], 0, 0, 0);
    }
    int fc = c->fc_out[0], ch = c->final_channels, hw = c->final_hw;
    if (!timm) {
        set_add(s, "classifier.0.weight", 2, fc, (int64_t)ch * hw * hw, 0, 0);
        set_add(s, "classifier.0.bias", 1, fc, 0, 0, 0);
        set_add(s, "classifier.3.weight", 2, fc, fc, 0, 0);
        set_add(s, "classifier.3.bias", 1, fc, 0, 0, 0);
        set_add(s, "classifier.6.weight", 2, c->n_classes, fc, 0, 0);
        set_add(s, "classifier.6.bias", 1, c->n_classes, 0, 0, 0);
    } else {
        set_add(s, "pre_logits.fc1.weight", 4, fc, ch, hw, hw);
        set_add(s, "pre_logits.fc1.bias", 1, fc, 0, 0, 0);
        set_add(s, "pre_logits.fc2.weight", 4, fc, fc, 1, 1);
        set_add(s, "pre_logits.fc2.bias", 1, fc, 0, 0, 0);
        set_add(s, "head.fc.weight", 2, c->n_classes, fc, 0, 0);
        set_add(s, "head.fc.bias", 1, c->n_classes, 0, 0, 0);
    }
}

static int set_find(const tensor_set *s, const char *name) {
    for (int k = 0; k < s->n; k++)
        if (strcmp(s->names[k], name) == 0) return k;
    return -1;
}

/* Writes tensors of s except `skip` (may be NULL) with the library's F32 writer. */
static int set_write_f32(const tensor_set *s, const char *path, const char *skip) {
    const char *names[64];
    const float *data[64];
    int64_t shapes[64][SAFETENSORS_MAX_DIMS];
    int ndims[64], n = 0;
    for (int k = 0; k < s->n; k++) {
        if (skip && strcmp(s->names[k], skip) == 0) continue;
        names[n] = s->names[k];
        data[n] = s->data[k];
        memcpy(shapes[n], s->shapes[k], sizeof shapes[n]);
        ndims[n] = s->ndims[k];
        n++;
    }
    char err[512];
    int rc = safetensors_write_f32(path, n, names, (const int64_t(*)[SAFETENSORS_MAX_DIMS])shapes,
                                   ndims, data, NULL, err, sizeof err);
    if (rc != 0) fprintf(stderr, "  write %s: %s\n", path, err);
    return rc;
}

/* float -> F16 bits for values that F16 holds exactly (normal or zero): test data only. */
static uint16_t f32_to_f16_exact(float v) {
    uint32_t b;
    memcpy(&b, &v, 4);
    uint16_t sign = (uint16_t)(b >> 16 & 0x8000);
    if ((b & 0x7fffffff) == 0) return sign;
    int exp = (int)(b >> 23 & 0xff) - 127 + 15;
    return (uint16_t)(sign | exp << 10 | (b >> 13 & 0x3ff));
}

/* Writes s with 16-bit dtype "F16" or "BF16" through a test-side writer (jansson header). */
static int set_write_half(const tensor_set *s, const char *path, const char *dtype) {
    json_t *root = json_object();
    uint64_t off = 0;
    for (int k = 0; k < s->n; k++) {
        json_t *shape = json_array();
        for (int d = 0; d < s->ndims[k]; d++) json_array_append_new(shape, json_integer(s->shapes[k][d]));
        uint64_t nb = (uint64_t)s->numel[k] * 2;
        json_object_set_new(root, s->names[k],
                            json_pack("{s:s, s:o, s:[I,I]}", "dtype", dtype, "shape", shape,
                                      "data_offsets", (json_int_t)off, (json_int_t)(off + nb)));
        off += nb;
    }
    char *header = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    size_t hlen = strlen(header);
    FILE *fp = fopen(path, "wb");
    int ok = fp != NULL;
    for (int i = 0; ok && i < 8; i++) ok = fputc((int)((uint64_t)hlen >> (8 * i) & 0xff), fp) != EOF;
    ok = ok && fwrite(header, 1, hlen, fp) == hlen;
    for (int k = 0; ok && k < s->n; k++)
        for (int64_t i = 0; ok && i < s->numel[k]; i++) {
            uint32_t bits;
            memcpy(&bits, &s->data[k][i], 4);
            uint16_t h = strcmp(dtype, "BF16") == 0 ? (uint16_t)(bits >> 16)
                                                    : f32_to_f16_exact(s->data[k][i]);
            ok = fputc(h & 0xff, fp) != EOF && fputc(h >> 8, fp) != EOF;
        }
    if (fp) ok = (fclose(fp) == 0) && ok;
    free(header);
    return ok ? 0 : -1;
}

/* Checks that every tensor of w holds the same floats as the torchvision-order set s. */
static int weights_match(const vgg_weights *w, const tensor_set *s) {
    const vgg_config *c = &w->cfg;
    int k = 0, ok = 1;
    for (int i = 0; i < c->n_conv; i++) {
        ok &= memcmp(w->conv_w[i], s->data[k], (size_t)s->numel[k] * 4) == 0, k++;
        ok &= memcmp(w->conv_b[i], s->data[k], (size_t)s->numel[k] * 4) == 0, k++;
    }
    for (int i = 0; i < VGG_N_FC; i++) {
        ok &= memcmp(w->fc_w[i], s->data[k], (size_t)s->numel[k] * 4) == 0, k++;
        ok &= memcmp(w->fc_b[i], s->data[k], (size_t)s->numel[k] * 4) == 0, k++;
    }
    return ok && k == s->n;
}

/* Loads the same parameters written four ways (torchvision F32, timm F32, F16, BF16, timm
 * BF16) and expects the same floats every time. */
static void check_load_variants(const vgg_config *c) {
    char path[512], err[2048] = "";
    tensor_set tv, tm;
    set_vgg11(&tv, c, 0);
    set_vgg11(&tm, c, 1);
    EXPECT(tv.n == 22 && tm.n == 22);
    static const struct {
        int timm;
        const char *dtype;
    } variants[] = {{0, "F32"}, {1, "F32"}, {0, "F16"}, {0, "BF16"}, {1, "BF16"}, {1, "F16"}};
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        const tensor_set *s = variants[v].timm ? &tm : &tv;
        tmp_path(path, sizeof path, "variant.safetensors");
        EXPECT((strcmp(variants[v].dtype, "F32") == 0 ? set_write_f32(s, path, NULL)
                                                      : set_write_half(s, path, variants[v].dtype)) == 0);
        vgg_weights w;
        err[0] = '\0';
        int rc = vgg_weights_load(&w, c, path, err, sizeof err);
        EXPECT(rc == 0);
        if (rc != 0) {
            fprintf(stderr, "  %s %s (input %d): %s\n", variants[v].timm ? "timm" : "torchvision",
                    variants[v].dtype, c->input_hw, err);
            continue;
        }
        EXPECT(err[0] == '\0');
        EXPECT(w.n_params == vgg_config_total_params(c));
        EXPECT(strcmp(w.cfg.name, "vgg11") == 0 && w.cfg.input_hw == c->input_hw);
        /* timm's fc1 (fc, C, h, w) flattens exactly like torchvision's (fc, C*h*w). */
        EXPECT(weights_match(&w, &tv));
        /* One allocation, tensors back to back in torchvision order. */
        EXPECT(w.conv_w[0] == w.storage && w.conv_b[0] == w.conv_w[0] + tv.numel[0]);
        EXPECT(w.fc_b[2] + c->n_classes == w.storage + w.n_params);
        vgg_weights_free(&w);
        EXPECT(w.storage == NULL);
    }
    set_free(&tv);
    set_free(&tm);
}

static void test_weights_load(void) {
    vgg_config cfg, cfg64;
    EXPECT(vgg_config_init_reduced(&cfg, "vgg11", 16, 32, 8, 10));
    EXPECT(vgg_config_init_reduced(&cfg64, "vgg11", 16, 64, 8, 10)); /* final 2x2: flatten order */
    EXPECT(cfg.n_conv == 8 && cfg.final_hw == 1 && cfg.final_channels == 32);
    EXPECT(cfg.fc_in[0] == 32 && cfg64.fc_in[0] == 128 && cfg.n_classes == 10);
    for (int i = 0; i < 8; i++) EXPECT(cfg.feature_index[i] == vgg11_feature_index[i]);
    check_load_variants(&cfg);
    check_load_variants(&cfg64);

    char path[512], err[2048];
    tensor_set tv;
    vgg_weights w;
    set_vgg11(&tv, &cfg, 0);

    /* Missing one tensor: named with the shape it should have, and nothing else blamed. */
    tmp_path(path, sizeof path, "missing.safetensors");
    EXPECT(set_write_f32(&tv, path, "features.0.weight") == 0);
    err[0] = '\0';
    EXPECT(vgg_weights_load(&w, &cfg, path, err, sizeof err) == -1);
    EXPECT_HAS(err, path);
    EXPECT_HAS(err, "missing features.0.weight (4, 3, 3, 3)");
    EXPECT(strstr(err, "unexpected") == NULL && strstr(err, "features.3") == NULL);
    EXPECT(w.storage == NULL); /* nothing to free after a failure */
    printf("  missing tensor -> %s\n", err);

    /* Two missing: both named. */
    tensor_set two = tv;
    two.n = 21; /* drops classifier.6.bias, the last one */
    EXPECT(set_write_f32(&two, path, "features.18.bias") == 0);
    err[0] = '\0';
    EXPECT(vgg_weights_load(&w, &cfg, path, err, sizeof err) == -1);
    EXPECT_HAS(err, "missing features.18.bias");
    EXPECT_HAS(err, "missing classifier.6.bias");

    /* Mis-shaped: both shapes named, for a different byte count and for the same one. */
    tmp_path(path, sizeof path, "misshaped.safetensors");
    tensor_set bad = tv;
    int k = set_find(&bad, "classifier.3.weight");
    bad.shapes[k][1] = 4; /* (8, 4) instead of (8, 8): writes the first 32 floats */
    EXPECT(set_write_f32(&bad, path, NULL) == 0);
    err[0] = '\0';
    EXPECT(vgg_weights_load(&w, &cfg, path, err, sizeof err) == -1);
    EXPECT_HAS(err, "classifier.3.weight has shape (8, 4), expected (8, 8)");
    printf("  mis-shaped tensor -> %s\n", err);
    bad = tv;
    k = set_find(&bad, "features.0.weight");
    bad.shapes[k][0] = 3;
    bad.shapes[k][1] = 4; /* (3, 4, 3, 3): transposed, same bytes */
    EXPECT(set_write_f32(&bad, path, NULL) == 0);
    err[0] = '\0';
    EXPECT(vgg_weights_load(&w, &cfg, path, err, sizeof err) == -1);
    EXPECT_HAS(err, "features.0.weight has shape (3, 4, 3, 3), expected (4, 3, 3, 3)");
    bad = tv;
    k = set_find(&bad, "features.0.bias");
    bad.ndims[k] = 2;
    bad.shapes[k][1] = 1; /* (4, 1) instead of (4) */
    EXPECT(set_write_f32(&bad, path, NULL) == 0);
    err[0] = '\0';
    EXPECT(vgg_weights_load(&w, &cfg, path, err, sizeof err) == -1);
    EXPECT_HAS(err, "features.0.bias has shape (4, 1), expected (4)");

    /* An extra tensor is unexpected, by name. */
    tensor_set extra = tv;
    set_add(&extra, "features.99.weight", 1, 3, 0, 0, 0);
    tmp_path(path, sizeof path, "extra.safetensors");
    EXPECT(set_write_f32(&extra, path, NULL) == 0);
    free(extra.data[extra.n - 1]);
    err[0] = '\0';
    EXPECT(vgg_weights_load(&w, &cfg, path, err, sizeof err) == -1);
    EXPECT_HAS(err, "unexpected features.99.weight");
    EXPECT(strstr(err, "missing") == NULL);
    printf("  extra tensor -> %s\n", err);

    /* Wrong architecture: a vgg11 file is not vgg13 weights. */
    vgg_config c13;
    EXPECT(vgg_config_init_reduced(&c13, "vgg13", 16, 32, 8, 10));
    tmp_path(path, sizeof path, "tv.safetensors");
    EXPECT(set_write_f32(&tv, path, NULL) == 0);
    err[0] = '\0';
    EXPECT(vgg_weights_load(&w, &c13, path, err, sizeof err) == -1);
    EXPECT_HAS(err, "vgg13");
    EXPECT(w.storage == NULL);

    /* A broken container fails with the file named; so does a missing file. */
    tmp_path(path, sizeof path, "bad02.safetensors"); /* written by test_safetensors_malformed */
    err[0] = '\0';
    EXPECT(vgg_weights_load(&w, &cfg, path, err, sizeof err) == -1);
    EXPECT_HAS(err, path);
    err[0] = '\0';
    EXPECT(vgg_weights_load(&w, &cfg, "/nonexistent/w.safetensors", err, sizeof err) == -1);
    EXPECT_HAS(err, "/nonexistent/w.safetensors");
    set_free(&tv);
}

static void test_weights_generate(void) {
    /* SplitMix64 test vector (state 0), checked against an independent implementation. */
    uint64_t state = 0;
    EXPECT(vgg_splitmix64(&state) == 0xe220a8397b1dcdafull);
    EXPECT(vgg_splitmix64(&state) == 0x6e789e6aa1b965f4ull);
    EXPECT(vgg_splitmix64(&state) == 0x06c45d188009454full);
    EXPECT(state == 3 * 0x9e3779b97f4a7c15ull);

    /* The normal approximation: exact at the ends and the centre, moments over 1e6 draws. */
    const double half_range = 131070 * 1.7320508075688772 / 65536.0;
    EXPECT(vgg_normal_from_u64(0) == -half_range);
    EXPECT(vgg_normal_from_u64(UINT64_MAX) == (262140.0 - 131070) * 1.7320508075688772 / 65536.0);
    EXPECT(vgg_normal_from_u64(0x7fff7fff7fff8001ull) == 0.0); /* lanes sum to 131070 */
    double sum = 0, sum2 = 0, lo = 0, hi = 0;
    const int n = 1000000;
    state = 12345;
    for (int i = 0; i < n; i++) {
        double x = vgg_normal_from_u64(vgg_splitmix64(&state));
        sum += x;
        sum2 += x * x;
        if (x < lo) lo = x;
        if (x > hi) hi = x;
    }
    double mean = sum / n, var = sum2 / n - mean * mean;
    EXPECT_NEAR(mean, 0.0, 0.01);
    EXPECT_NEAR(var, 1.0, 0.01);
    EXPECT(lo >= -half_range && hi <= half_range && lo < -3.0 && hi > 3.0);

    /* generate -> save -> load is bit-identical; generation is a function of the seed. */
    vgg_config cfg;
    EXPECT(vgg_config_init_reduced(&cfg, "vgg11", 16, 32, 8, 10));
    vgg_weights a, b, c, l;
    EXPECT(vgg_weights_generate(&a, &cfg, 42) == 0);
    EXPECT(vgg_weights_generate(&b, &cfg, 42) == 0);
    EXPECT(vgg_weights_generate(&c, &cfg, 43) == 0);
    EXPECT(a.n_params == vgg_config_total_params(&cfg) && a.n_params == b.n_params);
    EXPECT(memcmp(a.storage, b.storage, (size_t)a.n_params * 4) == 0);
    EXPECT(memcmp(a.storage, c.storage, (size_t)a.n_params * 4) != 0);
    int n_same = 0;
    for (int64_t i = 0; i < a.n_params; i++) n_same += a.storage[i] == c.storage[i];
    EXPECT(n_same < a.n_params / 100); /* a different seed changes essentially every value */

    /* The documented recipe, value by value for the first entries of every tensor. */
    tensor_set order;
    set_vgg11(&order, &cfg, 0);
    int k = 0, recipe_ok = 1;
    for (int i = 0; i < cfg.n_conv + VGG_N_FC; i++)
        for (int wb = 0; wb < 2; wb++, k++) {
            const float *t = i < cfg.n_conv ? (wb ? a.conv_b[i] : a.conv_w[i])
                                            : (wb ? a.fc_b[i - cfg.n_conv] : a.fc_w[i - cfg.n_conv]);
            double std = order.ndims[k] == 4 ? sqrt(2.0 / (double)(order.shapes[k][0] * 9)) : 0.01;
            uint64_t s = 42 ^ (0xd1b54a32d192ed03ull * (uint64_t)(k + 1));
            for (int j = 0; j < 3 && j < order.numel[k]; j++)
                recipe_ok &= t[j] == (float)(std * vgg_normal_from_u64(vgg_splitmix64(&s)));
        }
    EXPECT(recipe_ok && k == 22);
    set_free(&order);

    char path[512], err[512] = "";
    tmp_path(path, sizeof path, "generated.safetensors");
    const char *meta[] = {"format", "pt", "seed", "42", NULL};
    EXPECT(vgg_weights_save(&a, path, meta, err, sizeof err) == 0);
    int rc = vgg_weights_load(&l, &cfg, path, err, sizeof err);
    EXPECT(rc == 0);
    if (rc == 0) {
        EXPECT(l.n_params == a.n_params);
        EXPECT(memcmp(l.storage, a.storage, (size_t)a.n_params * 4) == 0);
        vgg_weights_free(&l);
    }
    safetensors_file f;
    EXPECT(safetensors_open(&f, path, err, sizeof err) == 0);
    EXPECT(f.n_tensors == 22);
    const safetensors_tensor *t = safetensors_find(&f, "classifier.0.weight");
    EXPECT(t && t->dtype == ST_F32 && t->ndim == 2 && t->shape[0] == 8 && t->shape[1] == 32);
    EXPECT(safetensors_find(&f, "features.18.bias") != NULL);
    safetensors_close(&f);
    vgg_weights_free(&a);
    vgg_weights_free(&b);
    vgg_weights_free(&c);
    EXPECT(a.storage == NULL && a.n_params == 0);

    /* Full-width convolutions (vgg11, small input and classifier: 9 M values): the Kaiming
     * fan-out std, and distinct streams for same-shaped tensors. */
    EXPECT(vgg_config_init_reduced(&cfg, "vgg11", 1, 32, 8, 10));
    EXPECT(vgg_weights_generate(&a, &cfg, 1) == 0);
    for (int i = 6; i <= 7; i++) {
        int64_t m = (int64_t)cfg.conv_out[i] * cfg.conv_in[i] * 9;
        double s1 = 0, s2 = 0;
        for (int64_t j = 0; j < m; j++) {
            s1 += a.conv_w[i][j];
            s2 += (double)a.conv_w[i][j] * a.conv_w[i][j];
        }
        double sd = sqrt(s2 / m - (s1 / m) * (s1 / m)), want = sqrt(2.0 / (512 * 9));
        EXPECT(m == 512 * 512 * 9);
        EXPECT_NEAR(sd / want, 1.0, 0.01);
        EXPECT_NEAR(s1 / m / want, 0.0, 0.01);
    }
    EXPECT(memcmp(a.conv_w[6], a.conv_w[7], 16) != 0);
    double s2 = 0;
    for (int j = 0; j < cfg.fc_out[0] * cfg.fc_in[0]; j++) s2 += (double)a.fc_w[0][j] * a.fc_w[0][j];
    EXPECT_NEAR(sqrt(s2 / (cfg.fc_out[0] * cfg.fc_in[0])), 0.01, 0.0005);
    vgg_weights_free(&a);
}

/* ---------------------------------------------------------------- config */

static void test_config(void) {
    static const struct {
        const char *name;
        int64_t params;
        int n_conv, last_feature;
    } want[4] = {{"vgg11", 132863336, 8, 18},
                 {"vgg13", 133047848, 10, 22},
                 {"vgg16", 138357544, 13, 28},
                 {"vgg19", 143667240, 16, 34}};
    for (int i = 0; i < 4; i++) {
        vgg_config c;
        EXPECT(vgg_config_init(&c, want[i].name));
        EXPECT(strcmp(vgg_model_names[i], want[i].name) == 0);
        EXPECT(vgg_config_total_params(&c) == want[i].params);
        if (vgg_config_total_params(&c) != want[i].params)
            fprintf(stderr, "  %s: %lld params\n", want[i].name,
                    (long long)vgg_config_total_params(&c));
        EXPECT(c.n_conv == want[i].n_conv && c.feature_index[c.n_conv - 1] == want[i].last_feature);
        EXPECT(c.final_hw == 7 && c.final_channels == 512 && c.fc_in[0] == 25088);
        EXPECT(c.fc_out[0] == 4096 && c.fc_out[1] == 4096 && c.fc_out[2] == 1000);
        int pools = 0;
        for (int j = 0; j < c.n_conv; j++) pools += c.pool_after[j];
        EXPECT(pools == VGG_N_POOL && c.pool_after[c.n_conv - 1]);
    }
    vgg_config c;
    EXPECT(vgg_config_init(&c, "vgg16"));
    double flops = vgg_config_flops(&c);
    printf("  vgg16: %.4g FLOPs\n", flops);
    EXPECT_NEAR(flops / 30.94e9, 1.0, 0.005);
    EXPECT(c.conv_hw[0] == 224 && c.conv_hw[12] == 14 && c.conv_in[0] == 3);
    EXPECT(vgg_config_conv_params(&c, 0) == 64 * 3 * 9 + 64);
    EXPECT(vgg_config_fc_params(&c, 0) == 25088LL * 4096 + 4096);
    EXPECT(!vgg_config_init(&c, "vgg15"));
    EXPECT(!vgg_config_init_reduced(&c, "vgg16", 16, 48, 8, 10)); /* not a multiple of 32 */
    EXPECT(!vgg_config_init_reduced(&c, "vgg16", 0, 32, 8, 10));
    EXPECT(!vgg_config_init_reduced(&c, "vgg16", 1, 224, 0, 10));
}

/* ---------------------------------------------------------------- preprocessing geometry */

static preprocess_image make_image(int w, int h) {
    preprocess_image img = {0};
    img.width = w;
    img.height = h;
    img.source_channels = 3;
    img.rgb = malloc((size_t)w * h * 3);
    return img;
}

static void fill_solid(preprocess_image *img, uint8_t r, uint8_t g, uint8_t b) {
    for (size_t i = 0; i < (size_t)img->width * img->height; i++) {
        img->rgb[3 * i] = r;
        img->rgb[3 * i + 1] = g;
        img->rgb[3 * i + 2] = b;
    }
}

/* Largest |out[c] - v[c]| over a (3, hw, hw) tensor. */
static double max_dev_per_channel(const float *out, int hw, const double v[3]) {
    double m = 0;
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < hw * hw; i++) m = fmax(m, fabs(out[(size_t)c * hw * hw + i] - v[c]));
    return m;
}

static void test_preprocess_geometry(void) {
    const int hw = 224;
    float *out = malloc(3 * hw * hw * sizeof(float));
    static const double mean[3] = {0.485, 0.456, 0.406}, std[3] = {0.229, 0.224, 0.225};

    /* 1x1: every output pixel is that pixel. */
    preprocess_image one = make_image(1, 1);
    fill_solid(&one, 10, 200, 255);
    EXPECT(preprocess_rgb_unit(&one, 256, hw, out) == PREPROCESS_OK);
    const double unit1[3] = {10 / 255.0, 200 / 255.0, 1.0};
    EXPECT(max_dev_per_channel(out, hw, unit1) < 1e-6);
    EXPECT(preprocess_rgb(&one, PREPROCESS_TORCHVISION, 256, hw, out) == PREPROCESS_OK);
    double norm1[3];
    for (int c = 0; c < 3; c++) norm1[c] = (unit1[c] - mean[c]) / std[c];
    EXPECT(max_dev_per_channel(out, hw, norm1) < 1e-5);
    preprocess_image_free(&one);
    EXPECT(one.rgb == NULL);

    /* A solid colour stays exactly that colour after normalisation. */
    preprocess_image solid = make_image(300, 200);
    fill_solid(&solid, 200, 100, 30);
    EXPECT(preprocess_rgb(&solid, PREPROCESS_TORCHVISION, 256, hw, out) == PREPROCESS_OK);
    const double rgb[3] = {200, 100, 30};
    double norm[3];
    for (int c = 0; c < 3; c++) norm[c] = (rgb[c] / 255.0 - mean[c]) / std[c];
    double dev = max_dev_per_channel(out, hw, norm);
    EXPECT(dev <= 1e-5);
    if (dev > 1e-5) fprintf(stderr, "  solid colour deviates by %g\n", dev);
    /* Caffe: BGR order, 0..255 minus the BGR means. */
    EXPECT(preprocess_rgb(&solid, PREPROCESS_CAFFE, 256, hw, out) == PREPROCESS_OK);
    const double caffe[3] = {30 - 103.939, 100 - 116.779, 200 - 123.68};
    dev = max_dev_per_channel(out, hw, caffe);
    EXPECT(dev <= 1e-3);
    if (dev > 1e-3) fprintf(stderr, "  caffe solid colour deviates by %g\n", dev);
    preprocess_image_free(&solid);

    /* Caffe squashes the whole image to 224x224 (no crop); torchvision crops the centre.
     * 1000x100, left 100 columns green, the rest gray. */
    preprocess_image wide = make_image(1000, 100);
    fill_solid(&wide, 128, 128, 128);
    for (int y = 0; y < 100; y++)
        for (int x = 0; x < 100; x++) {
            uint8_t *p = wide.rgb + ((size_t)y * 1000 + x) * 3;
            p[0] = 0, p[1] = 255, p[2] = 0;
        }
    EXPECT(preprocess_rgb(&wide, PREPROCESS_CAFFE, 256, hw, out) == PREPROCESS_OK);
    const size_t plane = (size_t)hw * hw;
    EXPECT_NEAR(out[plane + 100 * hw + 0], 255 - 116.779, 1e-3);          /* G at column 0 */
    EXPECT_NEAR(out[2 * plane + 100 * hw + 0], 0 - 123.68, 1e-3);         /* R at column 0 */
    EXPECT_NEAR(out[plane + 100 * hw + 223], 128 - 116.779, 1e-3);        /* gray at the right */
    EXPECT(preprocess_rgb_unit(&wide, 256, hw, out) == PREPROCESS_OK);
    const double gray[3] = {128 / 255.0, 128 / 255.0, 128 / 255.0};
    EXPECT(max_dev_per_channel(out, hw, gray) < 1e-5); /* the centre crop is all gray */
    preprocess_image_free(&wide);

    /* 5000x1 and 1x5000: a gradient along the long side, constant across the short one. The
     * output must be constant along the axis the source is constant on, the crop must come
     * from the middle of the gradient, and the call must stay cheap (the crop window only). */
    for (int vertical = 0; vertical < 2; vertical++) {
        preprocess_image line = make_image(vertical ? 1 : 5000, vertical ? 5000 : 1);
        uint8_t src[5000];
        for (int i = 0; i < 5000; i++) {
            src[i] = (uint8_t)(i * 255 / 4999);
            line.rgb[3 * i] = src[i];
            line.rgb[3 * i + 1] = (uint8_t)(255 - src[i]);
            line.rgb[3 * i + 2] = 77;
        }
        double t0 = now_s();
        preprocess_status st = preprocess_rgb_unit(&line, 256, hw, out);
        double dt = now_s() - t0;
        EXPECT(st == PREPROCESS_OK);
        EXPECT(dt < 5.0);
        int constant = 1, in_range = 1;
        /* The centre crop maps to source positions 2499.5 +- 0.44. */
        double lo = src[2498] / 255.0 - 1e-6, hi = src[2501] / 255.0 + 1e-6;
        for (int a = 0; a < hw; a++)
            for (int b = 0; b < hw; b++) {
                /* vertical: source varies with y, so out must not vary with x. */
                size_t i = vertical ? (size_t)a * hw + b : (size_t)b * hw + a;
                size_t i0 = vertical ? (size_t)a * hw : (size_t)a;
                for (int c = 0; c < 3; c++) constant &= out[c * plane + i] == out[c * plane + i0];
                in_range &= out[i] >= lo && out[i] <= hi;
                in_range &= fabsf(out[2 * plane + i] - 77 / 255.0f) < 1e-6f;
            }
        EXPECT(constant);
        EXPECT(in_range);
        EXPECT(preprocess_rgb(&line, PREPROCESS_CAFFE, 256, hw, out) == PREPROCESS_OK);
        printf("  %s line image: %.1f ms\n", vertical ? "1x5000" : "5000x1", dt * 1e3);
        preprocess_image_free(&line);
    }
    free(out);
}

/* Minimal CRC-32 (PNG's) for the synthetic header below. */
static uint32_t crc32_png(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xffffffffu;
}

/* A PNG signature + IHDR claiming w x h RGB + IEND, no pixel data (45 bytes): stbi_info
 * accepts it when stb's own size limits allow, decoding cannot succeed. */
static void png_header_only(uint8_t out[45], uint32_t w, uint32_t h) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memcpy(out, sig, 8);
    const uint8_t ihdr[17] = {'I', 'H', 'D', 'R', (uint8_t)(w >> 24), (uint8_t)(w >> 16),
                              (uint8_t)(w >> 8), (uint8_t)w, (uint8_t)(h >> 24), (uint8_t)(h >> 16),
                              (uint8_t)(h >> 8), (uint8_t)h, 8, 2, 0, 0, 0};
    out[8] = 0, out[9] = 0, out[10] = 0, out[11] = 13;
    memcpy(out + 12, ihdr, 17);
    uint32_t crc = crc32_png(ihdr, 17);
    out[29] = (uint8_t)(crc >> 24), out[30] = (uint8_t)(crc >> 16), out[31] = (uint8_t)(crc >> 8),
    out[32] = (uint8_t)crc;
    static const uint8_t iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};
    memcpy(out + 33, iend, 12);
}

/* The one decoder at full resolution (decode_scaling = off) with a pixel limit: what these
 * tests compare against fixtures made from full-resolution PIL decodes. */
static preprocess_status decode_full(const uint8_t *b, size_t len, int64_t max_pixels,
                                     preprocess_image *img, char *err, size_t errlen) {
    const image_decode_options o = {.max_pixels = max_pixels, .full_resolution = true};
    return image_decode(b, len, &o, img, err, errlen);
}

static void test_preprocess_decode(void) {
    char err[512];
    preprocess_image img;
    size_t len;

    /* Sniffing looks at bytes only. */
    const uint8_t jpeg_sig[3] = {0xff, 0xd8, 0xff}, png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    EXPECT(image_format_sniff(jpeg_sig, 3) == IMAGE_FORMAT_JPEG);
    EXPECT(image_format_sniff(jpeg_sig, 2) == IMAGE_FORMAT_UNKNOWN);
    EXPECT(image_format_sniff(png_sig, 8) == IMAGE_FORMAT_PNG);
    EXPECT(image_format_sniff(png_sig, 7) == IMAGE_FORMAT_UNKNOWN);
    EXPECT(image_format_sniff((const uint8_t *)"GIF89a\x01\x00", 8) == IMAGE_FORMAT_UNKNOWN);
    EXPECT(image_format_sniff((const uint8_t *)"", 0) == IMAGE_FORMAT_UNKNOWN);
    EXPECT(strcmp(image_format_name(IMAGE_FORMAT_JPEG), "jpeg") == 0);
    EXPECT(strcmp(image_format_name(IMAGE_FORMAT_PNG), "png") == 0);
    EXPECT(strcmp(image_format_name(IMAGE_FORMAT_UNKNOWN), "unknown") == 0);

    /* Not an image. */
    const char *text = "{\"this\": \"is json, not an image\"}";
    err[0] = '\0';
    EXPECT(decode_full((const uint8_t *)text, strlen(text), 0, &img, err, sizeof err) ==
           PREPROCESS_UNSUPPORTED);
    EXPECT(err[0] != '\0' && img.rgb == NULL);
    err[0] = '\0';
    EXPECT(decode_full((const uint8_t *)"GIF89a\x01\x00\x01\x00", 10, 0, &img, err,
                             sizeof err) == PREPROCESS_UNSUPPORTED);
    EXPECT(err[0] != '\0');
    err[0] = '\0';
    EXPECT(decode_full(jpeg_sig, 0, 0, &img, err, sizeof err) == PREPROCESS_UNSUPPORTED);

    /* Grayscale JPEG: R = G = B. */
    uint8_t *bytes = read_image("camera.jpg", &len);
    EXPECT(bytes != NULL);
    if (bytes) {
        EXPECT(image_format_sniff(bytes, len) == IMAGE_FORMAT_JPEG);
        preprocess_status st = decode_full(bytes, len, 0, &img, err, sizeof err);
        EXPECT(st == PREPROCESS_OK);
        if (st == PREPROCESS_OK) {
            EXPECT(img.width == 512 && img.height == 512 && img.source_channels == 1);
            EXPECT(img.format == IMAGE_FORMAT_JPEG);
            int gray = 1, lo = 255, hi = 0;
            for (size_t i = 0; i < (size_t)img.width * img.height; i++) {
                const uint8_t *p = img.rgb + 3 * i;
                gray &= p[0] == p[1] && p[1] == p[2];
                lo = p[0] < lo ? p[0] : lo;
                hi = p[0] > hi ? p[0] : hi;
            }
            EXPECT(gray);
            EXPECT(hi - lo > 100); /* a real photo, not a flat buffer */
            preprocess_image_free(&img);
        }
        free(bytes);
    }

    /* RGBA PNG: alpha dropped, RGB identical to the RGB PNG. */
    size_t len_rgb, len_rgba;
    uint8_t *b_rgb = read_image("chelsea.png", &len_rgb), *b_rgba = read_image("chelsea_rgba.png", &len_rgba);
    EXPECT(b_rgb && b_rgba);
    if (b_rgb && b_rgba) {
        preprocess_image a, b;
        EXPECT(image_format_sniff(b_rgba, len_rgba) == IMAGE_FORMAT_PNG);
        EXPECT(decode_full(b_rgb, len_rgb, 0, &a, err, sizeof err) == PREPROCESS_OK);
        EXPECT(decode_full(b_rgba, len_rgba, 0, &b, err, sizeof err) == PREPROCESS_OK);
        EXPECT(a.rgb && b.rgb);
        if (a.rgb && b.rgb) {
            EXPECT(a.source_channels == 3 && b.source_channels == 4 && b.format == IMAGE_FORMAT_PNG);
            EXPECT(a.width == 451 && a.height == 300 && b.width == 451 && b.height == 300);
            EXPECT(memcmp(a.rgb, b.rgb, (size_t)451 * 300 * 3) == 0);
        }
        preprocess_image_free(&a);
        preprocess_image_free(&b);

        /* A PNG cut short, and a PNG signature on garbage. */
        err[0] = '\0';
        preprocess_status st = decode_full(b_rgb, 100, 0, &img, err, sizeof err);
        EXPECT(st == PREPROCESS_UNDECODABLE && err[0] != '\0' && img.rgb == NULL);
        printf("  PNG cut to 100 bytes -> status %d: %s\n", st, err);
        uint8_t junk[64];
        memcpy(junk, png_sig, 8);
        for (int i = 8; i < 64; i++) junk[i] = (uint8_t)(i * 37);
        err[0] = '\0';
        EXPECT(decode_full(junk, sizeof junk, 0, &img, err, sizeof err) ==
               PREPROCESS_UNDECODABLE);
        EXPECT_HAS(err, "png");
    }
    free(b_rgb);
    free(b_rgba);

    bytes = read_image("chelsea.jpg", &len);
    EXPECT(bytes != NULL);
    if (bytes) {
        /* Truncated JPEG: the first 200 bytes hold the frame header (451x300) but no Huffman
         * tables, so stb must refuse it: a status and a message, never a crash. */
        uint8_t *cut = malloc(200);
        memcpy(cut, bytes, 200);
        err[0] = '\0';
        preprocess_status st = decode_full(cut, 200, 0, &img, err, sizeof err);
        EXPECT(st == PREPROCESS_UNDECODABLE);
        EXPECT(err[0] != '\0' && img.rgb == NULL);
        printf("  JPEG cut to 200 bytes -> status %d: %s\n", st, err);
        free(cut);
        /* Cut in the scan data: stb pads missing entropy data, so either outcome is allowed;
         * what must hold is a coherent result. */
        const size_t keep[] = {len / 2, len - 2, 3, 20};
        for (size_t i = 0; i < 4; i++) {
            cut = malloc(keep[i]);
            memcpy(cut, bytes, keep[i]);
            err[0] = '\0';
            st = decode_full(cut, keep[i], 0, &img, err, sizeof err);
            if (st == PREPROCESS_OK) {
                EXPECT(img.rgb && img.width == 451 && img.height == 300);
            } else {
                EXPECT(st == PREPROCESS_UNDECODABLE && err[0] != '\0' && img.rgb == NULL);
            }
            printf("  JPEG cut to %zu bytes -> status %d%s%s\n", keep[i], st, st ? ": " : "",
                   st ? err : "");
            preprocess_image_free(&img);
            free(cut);
        }

        /* The pixel limit: 451 x 300 = 135300. */
        err[0] = '\0';
        EXPECT(decode_full(bytes, len, 135299, &img, err, sizeof err) == PREPROCESS_TOO_LARGE);
        EXPECT_HAS(err, "135300");
        EXPECT(img.rgb == NULL);
        EXPECT(decode_full(bytes, len, 135300, &img, err, sizeof err) == PREPROCESS_OK);
        preprocess_image_free(&img);

        /* preprocess_bytes = decode (the defaults, with min_side 256: 451x300 is too small to
         * scale, whose shorter side must stay >= 320) + torchvision preprocessing at 256/224. */
        float *x = malloc(3 * 224 * 224 * sizeof(float)), *y = malloc(3 * 224 * 224 * sizeof(float));
        EXPECT(preprocess_bytes(bytes, len, NULL, PREPROCESS_TORCHVISION, 224, x, err, sizeof err) ==
               PREPROCESS_OK);
        const image_decode_options scaled = {.max_pixels = IMAGE_DECODE_DEFAULT_MAX_PIXELS, .min_side = 256};
        EXPECT(image_decode(bytes, len, &scaled, &img, err, sizeof err) == PREPROCESS_OK);
        EXPECT(img.width == 451 && img.height == 300 && img.full_width == 451 && img.full_height == 300);
        EXPECT(preprocess_rgb(&img, PREPROCESS_TORCHVISION, 256, 224, y) == PREPROCESS_OK);
        EXPECT(memcmp(x, y, 3 * 224 * 224 * sizeof(float)) == 0);
        preprocess_image_free(&img);
        const image_decode_options small = {.max_pixels = 1000};
        EXPECT(preprocess_bytes(bytes, len, &small, PREPROCESS_TORCHVISION, 224, x, err, sizeof err) ==
               PREPROCESS_TOO_LARGE);
        free(x);
        free(y);
        free(bytes);
    }

    /* The limit applies before decoding: a header-only PNG claiming 5000 x 5000 is refused as
     * too large, not attempted; without a limit the decoder runs and finds no pixel data. */
    uint8_t png[45];
    png_header_only(png, 5000, 5000);
    EXPECT(image_format_sniff(png, sizeof png) == IMAGE_FORMAT_PNG);
    err[0] = '\0';
    EXPECT(decode_full(png, sizeof png, 20000000, &img, err, sizeof err) == PREPROCESS_TOO_LARGE);
    EXPECT_HAS(err, "5000x5000");
    EXPECT(img.rgb == NULL);
    err[0] = '\0';
    preprocess_status st = decode_full(png, sizeof png, 0, &img, err, sizeof err);
    EXPECT(st == PREPROCESS_UNDECODABLE && img.rgb == NULL);
    EXPECT_HAS(err, "IDAT");
    /* Beyond stb's own limits (1 GiB of pixels, 65536 a side) stbi_info itself refuses, so the
     * status is not OK whatever max_pixels says; see the report on which status. */
    const uint32_t huge[3][2] = {{60000, 60000}, {70000, 10}, {0, 10}};
    for (int i = 0; i < 3; i++) {
        png_header_only(png, huge[i][0], huge[i][1]);
        err[0] = '\0';
        st = decode_full(png, sizeof png, 50000000, &img, err, sizeof err);
        EXPECT(st != PREPROCESS_OK && err[0] != '\0' && img.rgb == NULL);
        printf("  PNG header %ux%u, limit 5e7 -> status %d: %s\n", huge[i][0], huge[i][1], st, err);
    }
}

/* ---------------------------------------------------------------- preprocessing parity */

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void test_preprocess_parity(void) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/data/images", tests_dir);
    DIR *d = opendir(dir);
    EXPECT(d != NULL);
    if (!d) return;
    char *names[64];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 64)
        if (e->d_name[0] != '.') names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_str);
    EXPECT(n >= 9);

    float *out = malloc(3 * 224 * 224 * sizeof(float));
    for (int i = 0; i < n; i++) {
        size_t len;
        char err[1024], fixture[1024];
        uint8_t *bytes = read_image(names[i], &len);
        EXPECT(bytes != NULL);
        preprocess_image img;
        preprocess_status st =
            bytes ? decode_full(bytes, len, 0, &img, err, sizeof err) : PREPROCESS_UNDECODABLE;
        EXPECT(st == PREPROCESS_OK);
        free(bytes);
        if (st != PREPROCESS_OK) continue;
        EXPECT(preprocess_rgb_unit(&img, 256, 224, out) == PREPROCESS_OK);
        preprocess_image_free(&img);

        snprintf(fixture, sizeof fixture, "%s/fixtures/preprocess/%s.npy", tests_dir, names[i]);
        npy_array ref;
        int rc = npy_read(fixture, &ref, err, sizeof err);
        EXPECT(rc == 0);
        if (rc != 0) {
            fprintf(stderr, "  %s\n", err);
            continue;
        }
        EXPECT(strcmp(ref.dtype, "|u1") == 0 && ref.ndim == 3 && ref.shape[0] == 3 &&
               ref.shape[1] == 224 && ref.shape[2] == 224);
        if (ref.numel == 3 * 224 * 224 && strcmp(ref.dtype, "|u1") == 0) {
            const uint8_t *r = ref.data;
            double sum = 0, max = 0;
            for (int64_t j = 0; j < ref.numel; j++) {
                double diff = fabs(out[j] - r[j] / 255.0);
                sum += diff;
                max = diff > max ? diff : max;
            }
            double mean = sum / (double)ref.numel;
            printf("  parity %-22s mean |diff| %.3f/255  max %.1f/255\n", names[i], mean * 255,
                   max * 255);
            EXPECT(mean <= 2.0 / 255);
        }
        free(ref.data);
    }
    free(out);
    for (int i = 0; i < n; i++) free(names[i]);
}

/* ---------------------------------------------------------------- top-k, labels, npy */

/* Reference: full sort by (score desc, index asc). */
static const float *ref_scores;
static int cmp_ref(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    if (ref_scores[i] != ref_scores[j]) return ref_scores[i] > ref_scores[j] ? -1 : 1;
    return (i > j) - (i < j);
}

static void test_topk(void) {
    const float s[6] = {0.1f, 0.5f, 0.3f, 0.5f, 0.9f, -1.0f};
    int idx[8] = {0};
    EXPECT(topk_indices(s, 6, 3, idx) == 3);
    EXPECT(idx[0] == 4 && idx[1] == 1 && idx[2] == 3); /* tie 1 vs 3: lower id first */
    EXPECT(topk_indices(s, 6, 2, idx) == 2);
    EXPECT(idx[0] == 4 && idx[1] == 1); /* the tie at the cut keeps the lower id */
    EXPECT(topk_indices(s, 6, 1, idx) == 1 && idx[0] == 4);
    EXPECT(topk_indices(s, 6, 8, idx) == 6); /* k > n: all, sorted */
    EXPECT(idx[0] == 4 && idx[1] == 1 && idx[2] == 3 && idx[3] == 2 && idx[4] == 0 && idx[5] == 5);
    const float flat[5] = {2, 2, 2, 2, 2};
    EXPECT(topk_indices(flat, 5, 3, idx) == 3 && idx[0] == 0 && idx[1] == 1 && idx[2] == 2);
    const float rising[5] = {-INFINITY, -3, -2, -1, 0};
    EXPECT(topk_indices(rising, 5, 2, idx) == 2 && idx[0] == 4 && idx[1] == 3);

    /* Against a full sort on 1000 scores with many ties. */
    float big[1000];
    uint64_t st = 7;
    for (int i = 0; i < 1000; i++) big[i] = (float)(vgg_splitmix64(&st) % 50) / 7.0f;
    int ref[1000], got[1000];
    for (int i = 0; i < 1000; i++) ref[i] = i;
    ref_scores = big;
    qsort(ref, 1000, sizeof ref[0], cmp_ref);
    const int ks[4] = {1, 5, 37, 1000};
    for (int t = 0; t < 4; t++) {
        EXPECT(topk_indices(big, 1000, ks[t], got) == ks[t]);
        EXPECT(memcmp(got, ref, (size_t)ks[t] * sizeof(int)) == 0);
    }
}

static void test_labels(void) {
    EXPECT(labels_name(281) && strcmp(labels_name(281), "tabby") == 0);
    EXPECT(labels_wnid(0) && strcmp(labels_wnid(0), "n01440764") == 0);
    EXPECT(labels_name(0) && strcmp(labels_name(0), "tench") == 0);
    EXPECT(labels_name(134) && strcmp(labels_name(134), "crane") == 0);
    EXPECT(labels_name(517) && strcmp(labels_name(517), "crane") == 0);
    EXPECT(labels_name(999) && strcmp(labels_name(999), "toilet tissue") == 0);
    EXPECT(labels_wnid(999) && strcmp(labels_wnid(999), "n15075141") == 0);
    EXPECT(labels_name(-1) == NULL && labels_name(1000) == NULL && labels_wnid(1000) == NULL);
    /* WordNet ids are unique and well formed; names are non-empty. */
    const char *w[LABELS_COUNT];
    int ok = 1;
    for (int i = 0; i < LABELS_COUNT; i++) {
        w[i] = labels_wnid(i);
        ok &= w[i] && strlen(w[i]) == 9 && w[i][0] == 'n' && labels_name(i) && labels_name(i)[0];
    }
    EXPECT(ok);
    if (ok) {
        qsort(w, LABELS_COUNT, sizeof w[0], cmp_str);
        int unique = 1;
        for (int i = 1; i < LABELS_COUNT; i++) unique &= strcmp(w[i - 1], w[i]) != 0;
        EXPECT(unique);
    }
}

static void test_npy(void) {
    char path[512], err[512];
    float data[24];
    for (int i = 0; i < 24; i++) data[i] = (float)i * 0.5f - 3.0f;
    const int64_t shape3[3] = {2, 3, 4}, shape1[1] = {24};
    const int64_t *shapes[3] = {shape3, shape1, NULL};
    const int ndims[3] = {3, 1, 0};
    for (int t = 0; t < 3; t++) {
        tmp_path(path, sizeof path, "a.npy");
        EXPECT(npy_write_f32(path, data, shapes[t], ndims[t], err, sizeof err) == 0);
        size_t len;
        uint8_t *raw = read_bytes(path, &len);
        int64_t numel = ndims[t] ? 24 : 1;
        EXPECT(raw && (len - (size_t)numel * 4) % 64 == 0); /* header padded to 64 */
        EXPECT(raw && memcmp(raw, "\x93NUMPY\x01\x00", 8) == 0);
        free(raw);
        npy_array a;
        int rc = npy_read(path, &a, err, sizeof err);
        EXPECT(rc == 0);
        if (rc != 0) {
            fprintf(stderr, "  %s\n", err);
            continue;
        }
        EXPECT(strcmp(a.dtype, "<f4") == 0 && a.ndim == ndims[t] && a.numel == numel);
        for (int d = 0; d < ndims[t]; d++) EXPECT(a.shape[d] == shapes[t][d]);
        EXPECT(memcmp(a.data, data, (size_t)numel * 4) == 0);
        free(a.data);
    }

    npy_array a;
    err[0] = '\0';
    EXPECT(npy_read("/nonexistent/x.npy", &a, err, sizeof err) == -1);
    EXPECT_HAS(err, "/nonexistent/x.npy");
    EXPECT(a.data == NULL);

    tmp_path(path, sizeof path, "bad.npy");
    EXPECT(write_bytes(path, "\x93NUMPZ\x01\x00\x10\x00{}              ", 26) == 0);
    err[0] = '\0';
    EXPECT(npy_read(path, &a, err, sizeof err) == -1);
    EXPECT_HAS(err, "not a .npy");
    EXPECT(a.data == NULL);
    EXPECT(write_bytes(path, "", 0) == 0);
    EXPECT(npy_read(path, &a, err, sizeof err) == -1 && a.data == NULL);

    /* Headers it must refuse: other dtypes, Fortran order, truncated data. */
    static const struct {
        const char *dict;
        size_t n_data;
        const char *expect;
    } bad[] = {
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", 16, "<f8"},
        {"{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 16, "Fortran"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 20, "truncated"},
        {"{'descr': '<f4', 'fortran_order': False, }", 16, "shape"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", 16, "shape"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", 16, "shape"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t buf[256] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
        size_t dl = strlen(bad[i].dict);
        buf[8] = (uint8_t)(dl + 1);
        buf[9] = 0;
        memcpy(buf + 10, bad[i].dict, dl);
        buf[10 + dl] = '\n';
        EXPECT(write_bytes(path, buf, 11 + dl + bad[i].n_data) == 0);
        err[0] = '\0';
        EXPECT(npy_read(path, &a, err, sizeof err) == -1);
        EXPECT_HAS(err, bad[i].expect);
        EXPECT(a.data == NULL);
    }
    /* Version 2 header (4-byte length) and uint8 data. */
    {
        const char *dict = "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }\n";
        uint8_t buf[128] = {0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0};
        size_t dl = strlen(dict);
        buf[8] = (uint8_t)dl;
        memcpy(buf + 12, dict, dl);
        buf[12 + dl] = 7, buf[13 + dl] = 8, buf[14 + dl] = 9;
        EXPECT(write_bytes(path, buf, 15 + dl) == 0);
        int rc = npy_read(path, &a, err, sizeof err);
        EXPECT(rc == 0);
        if (rc == 0) {
            const uint8_t *u = a.data;
            EXPECT(strcmp(a.dtype, "|u1") == 0 && a.ndim == 1 && a.numel == 3);
            EXPECT(u[0] == 7 && u[1] == 8 && u[2] == 9);
            free(a.data);
        }
    }
}

/* ---------------------------------------------------------------- main */

/* The jet ramp's fixed points, the upsampling's corners and centre, the opacity ramp, the
 * inverse normalisation and a PNG that decodes back to the same pixels. */
static void test_heatmap(void) {
    uint8_t c[3];
    heatmap_color(0.0f, c);
    EXPECT(c[0] == 0 && c[1] == 0 && c[2] == 128); /* dark blue */
    heatmap_color(0.5f, c);
    EXPECT(c[0] == 128 && c[1] == 255 && c[2] == 128);
    heatmap_color(1.0f, c);
    EXPECT(c[0] == 128 && c[1] == 0 && c[2] == 0); /* dark red */
    heatmap_color(7.0f, c);
    EXPECT(c[0] == 128 && c[1] == 0 && c[2] == 0); /* clamped */
    /* A 2 x 2 map (0 top-left, 1 bottom-right) over a grey 4 x 4: the corners keep the map's
     * own values (edges clamp), the middle is their mean. */
    const float map[4] = {0, 0.5f, 0.5f, 1};
    uint8_t grey[4 * 4 * 3], out[4 * 4 * 3];
    memset(grey, 100, sizeof grey);
    heatmap_blend(grey, 4, 4, map, 2, out);
    heatmap_color(0.0f, c);
    const float a0 = HEATMAP_ALPHA_MIN, a1 = HEATMAP_ALPHA_MAX;
    EXPECT(out[0] == (uint8_t)lrintf((1 - a0) * 100 + a0 * c[0]));
    EXPECT(out[2] == (uint8_t)lrintf((1 - a0) * 100 + a0 * c[2]));
    heatmap_color(1.0f, c);
    EXPECT(out[15 * 3] == (uint8_t)lrintf((1 - a1) * 100 + a1 * c[0]));
    uint8_t mid[3];
    const float middle[1] = {0.5f};
    heatmap_blend(grey, 1, 1, middle, 1, mid);
    heatmap_blend(grey, 2, 2, map, 2, out); /* same size: the map itself */
    heatmap_color(0.5f, c);
    const float am = HEATMAP_ALPHA_MIN + (a1 - a0) * 0.5f;
    EXPECT(out[1 * 3 + 1] == (uint8_t)lrintf((1 - am) * 100 + am * c[1]));
    EXPECT(mid[1] == out[1 * 3 + 1]);
    /* The tensor of a picture is that picture again (torchvision normalisation). */
    const float mean[3] = {0.485f, 0.456f, 0.406f}, sd[3] = {0.229f, 0.224f, 0.225f};
    float t[3 * 4];
    uint8_t want[4 * 3] = {0, 10, 200, 255, 128, 3, 77, 77, 77, 1, 254, 9}, back[4 * 3];
    for (int ch = 0; ch < 3; ch++)
        for (int i = 0; i < 4; i++) t[ch * 4 + i] = (want[i * 3 + ch] / 255.0f - mean[ch]) / sd[ch];
    preprocess_tensor_rgb(PREPROCESS_TORCHVISION, t, 2, back);
    EXPECT(memcmp(back, want, sizeof want) == 0);
    /* PNG round trip through the service's own decoder. */
    size_t len;
    unsigned char *png = heatmap_png(out, 2, 2, &len);
    EXPECT(png && len > 8 && memcmp(png, "\x89PNG", 4) == 0);
    preprocess_image img = {0};
    char err[256];
    EXPECT(png && image_decode(png, len, NULL, &img, err, sizeof err) == PREPROCESS_OK);
    EXPECT(img.width == 2 && img.height == 2 && img.rgb && memcmp(img.rgb, out, 12) == 0);
    preprocess_image_free(&img);
    free(png);
}

/* Name tables: lookup, the '|' list (cut at its capacity), and the preprocess setting each
 * spelling and each weights file's metadata resolve to. */
static void test_names(void) {
    EXPECT(name_table_index(vgg_algo_names, "winograd") == VGG_ALGO_WINOGRAD);
    EXPECT(name_table_index(vgg_precision_names, "int8") == VGG_PRECISION_INT8);
    EXPECT(name_table_index(vgg_model_names, "vgg12") == -1);
    EXPECT(name_table_index(vgg_model_names, "") == -1);
    char list[64];
    name_table_join(vgg_precision_names, list, sizeof list);
    EXPECT(strcmp(list, "f32|bf16|int8") == 0);
    name_table_join(vgg_precision_names, list, 6);
    EXPECT(strcmp(list, "f32|b") == 0);
    EXPECT(strcmp(preprocess_mode_name(PREPROCESS_CAFFE), "caffe") == 0);
    EXPECT(name_table_index(preprocess_mode_names, "auto") == -1);
    EXPECT(name_table_index(preprocess_setting_names, "auto") == PREPROCESS_SETTING_AUTO);
    static const struct {
        preprocess_setting setting;
        const char *weights_say;
        int rc;
        preprocess_mode mode;
    } cases[] = {
        {PREPROCESS_SETTING_AUTO, "", 0, PREPROCESS_TORCHVISION},
        {PREPROCESS_SETTING_AUTO, NULL, 0, PREPROCESS_TORCHVISION},
        {PREPROCESS_SETTING_AUTO, "caffe", 0, PREPROCESS_CAFFE},
        {PREPROCESS_SETTING_AUTO, "torchvision", 0, PREPROCESS_TORCHVISION},
        {PREPROCESS_SETTING_AUTO, "auto", 1, PREPROCESS_TORCHVISION},
        {PREPROCESS_SETTING_AUTO, "bgr", 1, PREPROCESS_TORCHVISION},
        {PREPROCESS_SETTING_CAFFE, "torchvision", 0, PREPROCESS_CAFFE},
        {PREPROCESS_SETTING_TORCHVISION, "caffe", 0, PREPROCESS_TORCHVISION},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        preprocess_mode m = (preprocess_mode)-1;
        EXPECT(preprocess_resolve(cases[i].setting, cases[i].weights_say, &m) == cases[i].rc);
        EXPECT(m == cases[i].mode);
    }
}

int main(int argc, char **argv) {
    tests_dir = argc > 1 ? argv[1] : "tests";
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 2;
    }
    static const test_case tests[] = {
        {"safetensors round trip", test_safetensors_round_trip},
        {"f16/bf16 conversion", test_half_conversions},
        {"safetensors malformed", test_safetensors_malformed},
        {"weights load", test_weights_load},
        {"weights generate", test_weights_generate},
        {"config counts", test_config},
        {"name tables", test_names},
        {"preprocess geometry", test_preprocess_geometry},
        {"preprocess decode", test_preprocess_decode},
        {"preprocess parity", test_preprocess_parity},
        {"topk", test_topk},
        {"labels", test_labels},
        {"npy", test_npy},
        {"heatmap", test_heatmap},
    };
    test_run(tests, sizeof tests / sizeof tests[0]);
    remove_tmp_dir();
    return test_summary();
}
