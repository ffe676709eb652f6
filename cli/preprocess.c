/* preprocess.c - `vggserve preprocess`: the tensor the network sees for an image, as .npy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"
#include "npy.h"
#include "image_decode.h"
#include "preprocess.h"
#include "vgg_config.h"

/* The input side and mode for weights (NULL: 224, and `auto` is refused). 0, or -1 after
 * printing. */
static int model_input(const char *weights, preprocess_setting setting, int *hw,
                       preprocess_mode *mode) {
    vgg_config dflt, c;
    char says[16] = "", err[1024];
    vgg_config_init(&dflt, "vgg16");
    c = dflt;
    if (!weights && setting == PREPROCESS_SETTING_AUTO) {
        fprintf(stderr, "error: --mode auto follows a weights file: give --weights FILE\n");
        return -1;
    }
    if (weights && vgg_weights_read_config(weights, &dflt, &c, says, err, sizeof err) != 0) {
        fprintf(stderr, "error: %s\n", err);
        return -1;
    }
    *hw = c.input_hw;
    if (preprocess_resolve(setting, says, mode) == 1)
        fprintf(stderr, "warning: the weights file asks for preprocessing '%s', which vggserve "
                "does not know; using torchvision's\n", says);
    return 0;
}

int cmd_preprocess(int argc, char **argv) {
    const char *mode_s = NULL, *out = NULL, *weights = NULL;
    bool unit = false;
    cli_decode_flags dflags = CLI_DECODE_FLAGS_DEFAULT;
    const cli_option opts[] = {
        {"mode", "MODE", "torchvision|caffe|rescale|tf, or auto with --weights (default: auto "
         "with --weights, else torchvision)", &mode_s, NULL},
        {"weights", "FILE", "the tensor that model sees: its input size and, with auto, its "
         "preprocessing", &weights, NULL},
        {"out", "FILE.npy", "output (1,3,H,W) float32 array (H = W = 224 or the model's; "
         "required)", &out, NULL},
        {"unnormalized", NULL, "torchvision geometry, RGB in [0,1] before mean/std", NULL, &unit},
        CLI_DECODE_OPTIONS(dflags),
    };
    const char *pos[1];
    int n_pos;
    int rc = cli_parse(argc, argv, opts, sizeof opts / sizeof opts[0],
                       "usage: vggserve preprocess [--weights FILE] [--mode MODE] IMAGE --out FILE.npy",
                       pos, 1, &n_pos);
    if (rc != 0) return rc < 0 ? 2 : 0;
    image_decode_options dopt;
    if (cli_decode_options(&dflags, &dopt) != 0) return 2;
    if (n_pos != 1 || !out) {
        fprintf(stderr, "error: give one IMAGE and --out FILE.npy\n");
        return 2;
    }
    int hw, setting;
    preprocess_mode mode;
    if (!mode_s) mode_s = weights ? "auto" : "torchvision";
    if (cli_parse_choice("mode", mode_s, preprocess_setting_names, &setting) != 0) return 2;
    if (model_input(weights, (preprocess_setting)setting, &hw, &mode) != 0) return weights ? 1 : 2;
    uint8_t *bytes;
    size_t got;
    if (cli_read_file(pos[0], &bytes, &got) != 0) {
        fprintf(stderr, "error: %s: cannot open\n", pos[0]);
        return 1;
    }
    float *tensor = malloc(3 * hw * hw * sizeof(float));
    if (!tensor) {
        fprintf(stderr, "error: out of memory\n");
        free(bytes);
        return 1;
    }
    char err[512];
    /* The decoder's smallest side follows the geometry that comes after it, as in
     * preprocess_bytes; --unnormalized always has torchvision's. */
    dopt.min_side = preprocess_decode_min_side(unit ? PREPROCESS_TORCHVISION : mode, hw);
    preprocess_image img;
    preprocess_status st = image_decode(bytes, got, &dopt, &img, err, sizeof err);
    if (st == PREPROCESS_OK) {
        st = unit ? preprocess_rgb_unit(&img, PREPROCESS_RESIZE_TO, hw, tensor)
                  : preprocess_rgb(&img, mode, PREPROCESS_RESIZE_TO, hw, tensor);
        if (st != PREPROCESS_OK) snprintf(err, sizeof err, "cannot resize the image");
        preprocess_image_free(&img);
    }
    free(bytes);
    if (st != PREPROCESS_OK) {
        fprintf(stderr, "error: %s: %s\n", pos[0], err);
        free(tensor);
        return 1;
    }
    const int64_t shape[4] = {1, 3, hw, hw};
    rc = npy_write_f32(out, tensor, shape, 4, err, sizeof err);
    if (rc != 0) fprintf(stderr, "error: %s\n", err);
    free(tensor);
    return rc ? 1 : 0;
}
