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

int cmd_preprocess(int argc, char **argv) {
    const char *mode_s = "torchvision", *out = NULL;
    bool unit = false;
    cli_decode_flags dflags = CLI_DECODE_FLAGS_DEFAULT;
    const cli_option opts[] = {
        {"mode", "MODE", "torchvision|caffe (default torchvision)", &mode_s, NULL},
        {"out", "FILE.npy", "output (1,3,224,224) float32 array (required)", &out, NULL},
        {"unnormalized", NULL, "torchvision geometry, RGB in [0,1] before mean/std", NULL, &unit},
        CLI_DECODE_OPTIONS(dflags),
    };
    const char *pos[1];
    int n_pos;
    int rc = cli_parse(argc, argv, opts, sizeof opts / sizeof opts[0],
                       "usage: vggserve preprocess [--mode torchvision|caffe] IMAGE --out FILE.npy",
                       pos, 1, &n_pos);
    if (rc != 0) return rc < 0 ? 2 : 0;
    image_decode_options dopt;
    if (cli_decode_options(&dflags, &dopt) != 0) return 2;
    if (n_pos != 1 || !out) {
        fprintf(stderr, "error: give one IMAGE and --out FILE.npy\n");
        return 2;
    }
    int m; /* a mode, not "auto": there are no weights here to ask */
    if (cli_parse_choice("mode", mode_s, preprocess_mode_names, &m) != 0) return 2;
    const preprocess_mode mode = (preprocess_mode)m;
    uint8_t *bytes;
    size_t got;
    if (cli_read_file(pos[0], &bytes, &got) != 0) {
        fprintf(stderr, "error: %s: cannot open\n", pos[0]);
        return 1;
    }
    const int hw = VGG_INPUT_HW;
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
