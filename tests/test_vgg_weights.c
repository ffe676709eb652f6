/* test_vgg_weights.c - model/vgg_weights: loading by name and shape (torchvision and timm
 * names, F16/BF16 files, each kind of mismatch named in the error), and generation
 * (deterministic values, save and load back, the PRNG's moments). */
#include <jansson.h>

#include "safetensors.h"
#include "test_model_util.h"
#include "vgg_config.h"
#include "vgg_weights.h"

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

int main(int argc, char **argv) {
    static const test_case tests[] = {
        {"weights load", test_weights_load},
        {"weights generate", test_weights_generate},
    };
    return model_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
