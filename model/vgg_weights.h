/* vgg_weights.h - VGG parameters in float32, as torchvision lays them out.
 *
 * One allocation holds every parameter; the named pointers below point into it, so a
 * vgg_weights is freed with one call. Shapes (VGG16 at full size):
 *   conv_w[i]  (cout, cin, 3, 3) OIHW         conv_b[i] (cout)
 *   fc_w[0]    (4096, 512, 7, 7) = (4096, 25088) in torchvision's flatten order (C, H, W)
 *   fc_w[1]    (4096, 4096)                   fc_w[2]   (1000, 4096)
 *   fc_b[i]    (fc_out[i])
 *
 * Loading accepts torchvision names (features.N.weight|bias, classifier.{0,3,6}.weight|bias)
 * and timm names (pre_logits.fc1/fc2 as 4-D conv weights, head.fc), converts F16/BF16 to
 * F32, and rejects every missing, unexpected or mis-shaped tensor by name.
 *
 * Heads (vgg_config.h). A file whose "__metadata__" has "head_dense" describes its own
 * network, and the caller's config is ignored:
 *   "model"            "vgg11".."vgg19", "_bn" appended for BatchNorm (required)
 *   "head_dense"       the dense layers' units as trained, "4096,4096,10" or "256,1" (1..3)
 *   "head_pool"        "flatten" (default), "avg" or "max"
 *   "head_activation"  "softmax" (default) or "sigmoid" (on one unit)
 *   "input_size"       the square input's side (default 224)
 *   "bn_eps"           BatchNorm's epsilon (default 1e-5)
 * Tensors: features.N.weight|bias for each conv, N = torchvision's index (in a _bn model
 * Conv2d, BatchNorm2d, ReLU take three indices); features.N+1.weight|bias|running_mean|
 * running_var for its BatchNorm, folded into the conv at load and then dropped; dense layer
 * j as classifier.{3j}.weight (out, in) and .bias, whatever indices the trained Sequential
 * used (the converters renumber). A FLATTEN head's first layer reads (C, H, W) order (Keras's
 * (H, W, C) is permuted by the converter). A file without "head_dense" is the ImageNet VGG of
 * the caller's config, as before heads existed. Nothing is kept from a file that fails.
 *
 * Generated weights are deterministic from a seed (same bytes on every machine): see
 * vgg_weights_generate() for the PRNG and the initialisation.
 *
 * Not thread-safe to create or free; read-only use from many threads is fine.
 */
#ifndef VGG_WEIGHTS_H
#define VGG_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "vgg_config.h"

typedef struct {
    vgg_config cfg;
    float *conv_w[VGG_MAX_CONV];
    float *conv_b[VGG_MAX_CONV];
    float *fc_w[VGG_N_FC];
    float *fc_b[VGG_N_FC];
    float *storage; /* owns every tensor above */
    int64_t n_params; /* floats in storage: BatchNorm folded, a sigmoid unit as two logits */
    /* The input preprocessing the weights were trained with, from the file's metadata
     * ("preprocess": "torchvision" or "caffe", as our converters write it); "" when the file
     * does not say (and for generated weights, which follow torchvision). */
    char preprocess[16];
} vgg_weights;

/* Loads path into *w: for the architecture cfg, or the one the file's head metadata describes
 * (w->cfg says which). Returns 0, or -1 with every problem named in err (the file, then the
 * head metadata or the tensors); on failure *w holds nothing. */
int vgg_weights_load(vgg_weights *w, const vgg_config *cfg, const char *path, char *err,
                     size_t errlen);

/* The architecture path holds, from its metadata only (no tensor is read): the one its head
 * metadata describes, else *dflt; and its "preprocess" value into preprocess (may be NULL;
 * 16 bytes, "" when absent). Returns 0, or -1 with err. */
int vgg_weights_read_config(const char *path, const vgg_config *dflt, vgg_config *out,
                            char preprocess[16], char *err, size_t errlen);

/* Fills *w with deterministic weights from seed (see the .c file for the exact recipe). */
int vgg_weights_generate(vgg_weights *w, const vgg_config *cfg, uint64_t seed);

/* Writes *w as F32 safetensors with torchvision names, and head metadata (above) unless its
 * head is the default one; a sigmoid head as its one unit. Not for BatchNorm models (-1). */
int vgg_weights_save(const vgg_weights *w, const char *path, const char *const *metadata,
                     char *err, size_t errlen);

void vgg_weights_free(vgg_weights *w);

/* One step of SplitMix64 (Steele, Lea, Flood 2014), the documented generator. */
uint64_t vgg_splitmix64(uint64_t *state);

/* Approximately standard-normal value from one 64-bit draw: the sum of its four 16-bit lanes
 * (Irwin-Hall, n = 4) centred and scaled to unit variance. Integer arithmetic and one
 * multiply, so it is bit-identical everywhere. */
double vgg_normal_from_u64(uint64_t x);

#endif
