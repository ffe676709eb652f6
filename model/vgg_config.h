/* vgg_config.h - the VGG family as data: one table of channel counts and pool markers.
 *
 * VGG11/13/16/19 (configs A, B, D, E of Simonyan & Zisserman) differ only in how many 3x3
 * convolutions sit between the five 2x2 max-pools. A vgg_config is that table expanded into
 * per-convolution facts, plus the classifier sizes. Reduced variants (narrow channels, small
 * input, small classifier) exist so tests can compare the oneDNN engine against a naive C
 * forward pass in seconds.
 *
 * Everything here is plain data and pure functions: thread-safe, no allocation.
 */
#ifndef VGG_CONFIG_H
#define VGG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VGG_MAX_CONV 16   /* VGG19 has 16 convolutions */
#define VGG_N_FC 3        /* fc1, fc2, fc3 */
#define VGG_N_POOL 5
/* The side of the full-size networks' square input (reduced test variants choose their own):
 * what every image is preprocessed to. */
#define VGG_INPUT_HW 224
/* The most images one forward pass takes in the service: config's max_batch_size limit and
 * the batcher's clamp; the metrics and v2 statistics keep one counter per batch size
 * 1..VGG_MAX_BATCH. */
#define VGG_MAX_BATCH 64

typedef struct {
    char name[16];                   /* "vgg16" */
    int n_conv;
    int conv_out[VGG_MAX_CONV];      /* output channels of conv i */
    int conv_in[VGG_MAX_CONV];       /* input channels of conv i */
    int conv_hw[VGG_MAX_CONV];       /* spatial size (H = W) at conv i's input and output */
    bool pool_after[VGG_MAX_CONV];   /* a 2x2/2 max-pool follows conv i */
    int feature_index[VGG_MAX_CONV]; /* torchvision's `features.N` index of conv i */
    int in_channels;                 /* 3 */
    int input_hw;                    /* VGG_INPUT_HW = 224 */
    int final_hw;                    /* input_hw / 32 = 7 */
    int final_channels;              /* 512 */
    int fc_in[VGG_N_FC];             /* 25088, 4096, 4096 */
    int fc_out[VGG_N_FC];            /* 4096, 4096, 1000 */
    int n_classes;                   /* 1000 */
} vgg_config;

/* Fills *cfg for "vgg11", "vgg13", "vgg16" or "vgg19" at full size. Returns false for an
 * unknown name. */
bool vgg_config_init(vgg_config *cfg, const char *name);

/* A reduced variant for tests: channel counts divided by width_div, input_hw x input_hw
 * input (a multiple of 32), classifier hidden size fc_hidden, n_classes outputs. */
bool vgg_config_init_reduced(vgg_config *cfg, const char *name, int width_div, int input_hw,
                             int fc_hidden, int n_classes);

/* Parameter counts: per conv (weights + bias), per fc, and the total. */
int64_t vgg_config_conv_params(const vgg_config *cfg, int i);
/* The conventional name of conv i: "conv<block>_<index in block>" (VGG16's last: conv5_3). */
void vgg_config_conv_name(const vgg_config *cfg, int i, char *out, size_t cap);
int64_t vgg_config_fc_params(const vgg_config *cfg, int i);
int64_t vgg_config_total_params(const vgg_config *cfg);

/* Multiply-add count x 2 for one image (the usual FLOP figure: 30.9 G for VGG16). */
double vgg_config_flops(const vgg_config *cfg);

/* The family's names, "vgg11".."vgg19", NULL-terminated: the one table that
 * vgg_config_init, config and the CLI's --model read. */
#define VGG_N_MODELS 4
extern const char *const vgg_model_names[VGG_N_MODELS + 1];

#endif
