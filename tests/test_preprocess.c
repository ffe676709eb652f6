/* test_preprocess.c - model/preprocess: the geometry on synthetic images (1x1, 5000x1, gray,
 * RGBA, every EXIF orientation, both modes) and parity with torchvision's crops of the shipped
 * photos (tests/fixtures/preprocess, made from full-resolution PIL decodes). */
#include <dirent.h>

#include "npy.h"
#include "preprocess.h"
#include "test_model_util.h"

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

int main(int argc, char **argv) {
    static const test_case tests[] = {
        {"preprocess geometry", test_preprocess_geometry},
        {"preprocess parity", test_preprocess_parity},
    };
    return model_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
