/* cmd_tools.c - `vggserve gen-weights`, `preprocess` and `summary`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calibrate.h"
#include "cli_common.h"
#include "commands.h"
#include "npy.h"
#include "preprocess.h"

int cmd_gen_weights(int argc, char **argv) {
    const char *model = "vgg16", *seed_s = NULL, *out = NULL;
    const cli_option opts[] = {
        {"model", "NAME", "vgg11|vgg13|vgg16|vgg19 (default vgg16)", &model, NULL},
        {"seed", "N", "PRNG seed (required)", &seed_s, NULL},
        {"out", "FILE", "output .safetensors path (required)", &out, NULL},
    };
    const char *pos[1];
    int n_pos;
    int rc = cli_parse(argc, argv, opts, 3,
                       "usage: vggserve gen-weights [--model vgg16] --seed N --out FILE.safetensors\n"
                       "Deterministic weights (same bytes on every machine): SplitMix64 streams,\n"
                       "Kaiming-normal (fan_out) convolutions, N(0, 0.01^2) linear weights and biases.",
                       pos, 0, &n_pos);
    if (rc != 0) return rc < 0 ? 2 : 0;
    long seed;
    if (!seed_s || !out) {
        fprintf(stderr, "error: --seed and --out are required (see --help)\n");
        return 2;
    }
    if (cli_parse_int("seed", seed_s, 0, 0x7fffffffffffffffL, &seed)) return 2;
    vgg_config cfg;
    if (!vgg_config_init(&cfg, model)) {
        fprintf(stderr, "error: --model must be vgg11, vgg13, vgg16 or vgg19, got '%s'\n", model);
        return 2;
    }
    vgg_weights w;
    if (vgg_weights_generate(&w, &cfg, (uint64_t)seed) != 0) {
        fprintf(stderr, "error: out of memory\n");
        return 1;
    }
    const char *meta[] = {"format", "pt", "generator", "vggserve gen-weights", "model", model,
                          "seed", seed_s, NULL};
    char err[512];
    rc = vgg_weights_save(&w, out, meta, err, sizeof err);
    if (rc != 0) fprintf(stderr, "error: %s\n", err);
    else fprintf(stderr, "wrote %s: %s, %lld parameters, seed %ld\n", out, model,
                 (long long)w.n_params, seed);
    vgg_weights_free(&w);
    return rc ? 1 : 0;
}

int cmd_preprocess(int argc, char **argv) {
    const char *mode_s = "torchvision", *out = NULL;
    bool unit = false;
    const cli_option opts[] = {
        {"mode", "MODE", "torchvision|caffe (default torchvision)", &mode_s, NULL},
        {"out", "FILE.npy", "output (1,3,224,224) float32 array (required)", &out, NULL},
        {"unnormalized", NULL, "torchvision geometry, RGB in [0,1] before mean/std", NULL, &unit},
    };
    const char *pos[1];
    int n_pos;
    int rc = cli_parse(argc, argv, opts, 3,
                       "usage: vggserve preprocess [--mode torchvision|caffe] IMAGE --out FILE.npy",
                       pos, 1, &n_pos);
    if (rc != 0) return rc < 0 ? 2 : 0;
    if (n_pos != 1 || !out) {
        fprintf(stderr, "error: give one IMAGE and --out FILE.npy\n");
        return 2;
    }
    preprocess_mode mode;
    if (strcmp(mode_s, "torchvision") == 0) mode = PREPROCESS_TORCHVISION;
    else if (strcmp(mode_s, "caffe") == 0) mode = PREPROCESS_CAFFE;
    else {
        fprintf(stderr, "error: --mode must be torchvision or caffe, got '%s'\n", mode_s);
        return 2;
    }
    uint8_t *bytes;
    size_t got;
    if (cli_read_file(pos[0], &bytes, &got) != 0) {
        fprintf(stderr, "error: %s: cannot open\n", pos[0]);
        return 1;
    }
    float *tensor = malloc(3 * 224 * 224 * sizeof(float));
    char err[512];
    preprocess_image img;
    preprocess_status st = preprocess_decode(bytes, got, 0, &img, err, sizeof err);
    if (st == PREPROCESS_OK) {
        st = unit ? preprocess_rgb_unit(&img, 256, 224, tensor)
                  : preprocess_rgb(&img, mode, 256, 224, tensor);
        if (st != PREPROCESS_OK) snprintf(err, sizeof err, "cannot resize the image");
        preprocess_image_free(&img);
    }
    free(bytes);
    if (st != PREPROCESS_OK) {
        fprintf(stderr, "error: %s: %s\n", pos[0], err);
        free(tensor);
        return 1;
    }
    const int64_t shape[4] = {1, 3, 224, 224};
    rc = npy_write_f32(out, tensor, shape, 4, err, sizeof err);
    if (rc != 0) fprintf(stderr, "error: %s\n", err);
    free(tensor);
    return rc ? 1 : 0;
}

static void print_row(const char *layer, const char *shape, long long params) {
    char p[32];
    if (params < 0) snprintf(p, sizeof p, "0");
    else snprintf(p, sizeof p, "%lld", params);
    printf("%-16s %-22s %14s\n", layer, shape, p);
}

/* Groups digits by thousands: 138357544 -> "138,357,544". */
static void with_commas(long long v, char *buf, size_t len) {
    char raw[32];
    snprintf(raw, sizeof raw, "%lld", v);
    size_t n = strlen(raw), j = 0;
    for (size_t i = 0; i < n && j + 2 < len; i++) {
        if (i && (n - i) % 3 == 0) buf[j++] = ',';
        buf[j++] = raw[i];
    }
    buf[j] = '\0';
}

int cmd_summary(int argc, char **argv) {
    const char *model = "vgg16";
    bool dot = false;
    const cli_option opts[] = {
        {"model", "NAME", "vgg11|vgg13|vgg16|vgg19 (default vgg16)", &model, NULL},
        {"dot", NULL, "print a Graphviz DOT graph instead of the table", NULL, &dot},
    };
    const char *pos[1];
    int n_pos;
    int rc = cli_parse(argc, argv, opts, 2, "usage: vggserve summary [--model vgg16] [--dot]", pos,
                       0, &n_pos);
    if (rc != 0) return rc < 0 ? 2 : 0;
    vgg_config c;
    if (!vgg_config_init(&c, model)) {
        fprintf(stderr, "error: --model must be vgg11, vgg13, vgg16 or vgg19, got '%s'\n", model);
        return 2;
    }
    char name[32], shape[48], total[32];
    with_commas(vgg_config_total_params(&c), total, sizeof total);
    if (dot) {
        printf("digraph %s {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];\n", c.name);
        printf("  input [label=\"input\\n(3, %d, %d)\"];\n", c.input_hw, c.input_hw);
        const char *prev = "input";
        char prev_buf[32];
        int block = 1, in_block = 0;
        for (int i = 0; i < c.n_conv; i++) {
            snprintf(name, sizeof name, "block%d_conv%d", block, ++in_block);
            printf("  %s [label=\"%s\\nconv3x3+ReLU\\n(%d, %d, %d)\\n%lld params\"];\n  %s -> %s;\n",
                   name, name, c.conv_out[i], c.conv_hw[i], c.conv_hw[i],
                   (long long)vgg_config_conv_params(&c, i), prev, name);
            snprintf(prev_buf, sizeof prev_buf, "%s", name);
            prev = prev_buf;
            if (c.pool_after[i]) {
                snprintf(name, sizeof name, "block%d_pool", block);
                printf("  %s [label=\"%s\\nmaxpool 2x2\\n(%d, %d, %d)\"];\n  %s -> %s;\n", name,
                       name, c.conv_out[i], c.conv_hw[i] / 2, c.conv_hw[i] / 2, prev, name);
                snprintf(prev_buf, sizeof prev_buf, "%s", name);
                block++;
                in_block = 0;
            }
        }
        for (int j = 0; j < VGG_N_FC; j++) {
            printf("  fc%d [label=\"fc%d%s\\n(%d)\\n%lld params\"];\n  %s -> fc%d;\n", j + 1, j + 1,
                   j < 2 ? "+ReLU" : "", c.fc_out[j], (long long)vgg_config_fc_params(&c, j), prev,
                   j + 1);
            snprintf(prev_buf, sizeof prev_buf, "fc%d", j + 1);
        }
        printf("  softmax [label=\"softmax\\n(%d)\"];\n  fc3 -> softmax;\n", c.n_classes);
        printf("  label=\"%s: %s parameters\";\n}\n", c.name, total);
        return 0;
    }
    printf("Model: %s\n%-16s %-22s %14s\n", c.name, "Layer", "Output shape", "Params");
    snprintf(shape, sizeof shape, "(None, %d, %d, 3)", c.input_hw, c.input_hw);
    print_row("input", shape, 0);
    int block = 1, in_block = 0;
    for (int i = 0; i < c.n_conv; i++) {
        snprintf(name, sizeof name, "block%d_conv%d", block, ++in_block);
        snprintf(shape, sizeof shape, "(None, %d, %d, %d)", c.conv_hw[i], c.conv_hw[i], c.conv_out[i]);
        print_row(name, shape, vgg_config_conv_params(&c, i));
        if (c.pool_after[i]) {
            snprintf(name, sizeof name, "block%d_pool", block++);
            snprintf(shape, sizeof shape, "(None, %d, %d, %d)", c.conv_hw[i] / 2, c.conv_hw[i] / 2,
                     c.conv_out[i]);
            print_row(name, shape, 0);
            in_block = 0;
        }
    }
    snprintf(shape, sizeof shape, "(None, %d)", c.fc_in[0]);
    print_row("flatten", shape, 0);
    static const char *const fc_names[VGG_N_FC] = {"fc1", "fc2", "predictions"};
    for (int j = 0; j < VGG_N_FC; j++) {
        snprintf(shape, sizeof shape, "(None, %d)", c.fc_out[j]);
        print_row(fc_names[j], shape, vgg_config_fc_params(&c, j));
    }
    printf("Total params: %s\n", total);
    printf("FLOPs per image: %.2f G\n", vgg_config_flops(&c) / 1e9);
    return 0;
}

int cmd_calibrate(int argc, char **argv) {
    const char *weights = NULL, *model = "vgg16", *out = NULL, *generated_s = "32", *seed_s = "1",
               *method_s = "mse";
    const cli_option opts[] = {
        {"weights", "FILE", "safetensors weights (default: generated from --seed)", &weights, NULL},
        {"seed", "N", "seed for generated weights (default 1)", &seed_s, NULL},
        {"model", "NAME", "vgg11|vgg13|vgg16|vgg19 (default vgg16)", &model, NULL},
        {"generated", "N", "generated images added to the photos (default 32)", &generated_s, NULL},
        {"out", "FILE", "output (default WEIGHTS.int8.json, where int8 mode looks)", &out, NULL},
        {"method", "M", "mse|max|pNN.N: clip of least squared error (default), max, percentile",
         &method_s, NULL},
    };
    const char *images[256];
    int n_images;
    int rc = cli_parse(argc, argv, opts, 6,
                       "usage: vggserve calibrate --weights FILE [--generated 32] [--method mse] [IMAGE...]\n"
                       "Measures each layer's activation range for int8 on the photos given plus\n"
                       "generated images, and stores it beside the weights.",
                       images, 256, &n_images);
    if (rc != 0) return rc < 0 ? 2 : 0;
    long generated, seed;
    if (cli_parse_int("generated", generated_s, 0, 10000, &generated) ||
        cli_parse_int("seed", seed_s, 0, 0x7fffffffffffffffL, &seed))
        return 2;
    vgg_calib_method method;
    if (vgg_calib_method_parse(method_s, &method) != 0) {
        fprintf(stderr, "error: --method: expected mse, max or pNN.N (a percentile), got '%s'\n",
                method_s);
        return 2;
    }
    if (!out && !weights) {
        fprintf(stderr, "error: give --out when the weights are generated\n");
        return 2;
    }
    cli_model_spec spec = {0};
    spec.seed = (uint64_t)seed;
    if (cli_model_spec_parse(&spec, weights, model, NULL, NULL) != 0) return 2;
    vgg_config cfg;
    vgg_config_init(&cfg, spec.model);
    vgg_weights w;
    char err[1024];
    if (weights ? vgg_weights_load(&w, &cfg, weights, err, sizeof err) != 0
                : vgg_weights_generate(&w, &cfg, spec.seed) != 0) {
        fprintf(stderr, "error: %s\n", weights ? err : "out of memory");
        return 1;
    }
    int n = n_images + (int)generated, hw = cfg.input_hw;
    size_t per = (size_t)3 * hw * hw;
    float *inputs = malloc(per * (n > 0 ? n : 1) * sizeof(float));
    preprocess_mode mode; /* what the weights were trained with */
    cli_preprocess_mode("auto", &w, &mode);
    if (cli_load_photos(images, n_images, mode, hw, inputs) != 0) return 1;
    vgg_calibration_images(inputs + (size_t)n_images * per, (int)generated, hw, 1);
    float act_max[VGG_N_LAYERS];
    if (vgg_calibrate(&w, inputs, n, 0, &method, act_max, err, sizeof err) != 0) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    char path[4200];
    if (out) snprintf(path, sizeof path, "%s", out);
    else cli_calibration_path(weights, path, sizeof path);
    rc = vgg_calibration_save(path, &w, n, method, act_max, err, sizeof err);
    if (rc != 0) fprintf(stderr, "error: %s\n", err);
    else fprintf(stderr, "wrote %s: ranges of %d layers from %d photos + %ld generated images\n",
                 path, cfg.n_conv + VGG_N_FC, n_images, generated);
    free(inputs);
    vgg_weights_free(&w);
    return rc ? 1 : 0;
}
