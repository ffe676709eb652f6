/* test_npy.c - model/npy: float32 and uint8 arrays written and read back, and malformed
 * headers refused. */
#include "npy.h"
#include "test_model_util.h"

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

int main(int argc, char **argv) {
    static const test_case tests[] = {
        {"npy", test_npy},
    };
    return model_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
