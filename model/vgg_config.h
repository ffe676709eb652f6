/* vgg_config.h - the VGG family as data: one table of channel counts and pool markers, then
 * a head described by data.
 *
 * VGG11/13/16/19 (configs A, B, D, E of Simonyan & Zisserman) differ only in how many 3x3
 * convolutions sit between the five 2x2 max-pools. A vgg_config is that table expanded into
 * per-convolution facts, plus the head. Reduced variants (narrow channels, small input, small
 * classifier) exist so tests can compare the oneDNN engine against a naive C forward pass in
 * seconds.
 *
 * DESIGN: the network is features + head.
 *   features  the table's convolutions (3x3, pad 1, ReLU), optionally each followed by
 *             BatchNorm (torchvision's vgg16_bn). BatchNorm is folded into the convolution's
 *             weights and bias when the weights are loaded (vgg_weights.c), so the engine
 *             never sees it and a _bn model costs what the plain one costs. The input is
 *             input_hw x input_hw for any input_hw >= 32 (VGG_MIN_INPUT_HW..VGG_MAX_INPUT_HW);
 *             each 2x2/2 max-pool floors odd sizes, as torch and Keras do.
 *   head      pooling of the last feature map (pool5's output, final_hw x final_hw):
 *               FLATTEN  (C, H, W) in torch's order, fc1 reads C * final_hw^2 inputs;
 *               AVG/MAX  global average / max over H x W, fc1 reads C inputs;
 *             then 1..VGG_N_FC dense layers of any sizes, ReLU between them (dropout is the
 *             identity at inference), and the last activation:
 *               SOFTMAX  over fc_out[n_fc - 1] >= 2 classes;
 *               SIGMOID  on one unit z, answered as two classes [1 - p, p]. The loader
 *                        expands the unit into two logits [-z/2, z/2], whose softmax is
 *                        exactly [1 - sigmoid(z), sigmoid(z)], so the engine has one last
 *                        activation (softmax) and Grad-CAM of either class is defined; the
 *                        config then says fc_out[n_fc - 1] = n_classes = 2, head_units = 1.
 *   The default (vgg_config_init, and every weights file without head metadata) is
 *   today's ImageNet VGG: 224 input, FLATTEN at 7x7, 4096/4096/1000, SOFTMAX, no BatchNorm.
 *   The file side (safetensors metadata keys and tensor names) is in vgg_weights.h.
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

/* The input sides the features accept: five floor-halvings must leave at least 1. */
#define VGG_MIN_INPUT_HW 32
#define VGG_MAX_INPUT_HW 1024

typedef enum { VGG_POOL_FLATTEN, VGG_POOL_AVG, VGG_POOL_MAX, VGG_N_HEAD_POOLS } vgg_head_pool;
typedef enum { VGG_ACT_SOFTMAX, VGG_ACT_SIGMOID, VGG_N_HEAD_ACTS } vgg_head_act;
/* Their spellings ("flatten", "avg", "max"; "softmax", "sigmoid"), indexed by value and
 * NULL-terminated: the one table the loader, summary and the converters' metadata use. */
extern const char *const vgg_head_pool_names[VGG_N_HEAD_POOLS + 1];
extern const char *const vgg_head_act_names[VGG_N_HEAD_ACTS + 1];

/* A head as the weights file describes it. units: the dense layers' output sizes as trained
 * (a sigmoid head's last is 1). */
typedef struct {
    vgg_head_pool pool;
    vgg_head_act act;
    int n_dense;             /* 1..VGG_N_FC */
    int units[VGG_N_FC];
} vgg_head;

typedef struct {
    char name[16];                   /* "vgg16" (BatchNorm or not: see batch_norm) */
    int n_conv;
    int conv_out[VGG_MAX_CONV];      /* output channels of conv i */
    int conv_in[VGG_MAX_CONV];       /* input channels of conv i */
    int conv_hw[VGG_MAX_CONV];       /* spatial size (H = W) at conv i's input and output */
    bool pool_after[VGG_MAX_CONV];   /* a 2x2/2 max-pool follows conv i */
    int feature_index[VGG_MAX_CONV]; /* torchvision's `features.N` index of conv i */
    bool batch_norm;                 /* trained with BatchNorm after each conv (folded at load) */
    float bn_eps;                    /* BatchNorm's epsilon (torch 1e-5) */
    int in_channels;                 /* 3 */
    int input_hw;                    /* VGG_INPUT_HW = 224 */
    int final_hw;                    /* after five floor-halvings: 7 */
    int final_channels;              /* 512 */
    vgg_head_pool head_pool;         /* FLATTEN */
    vgg_head_act head_act;           /* SOFTMAX */
    int head_hw;                     /* the side fc1 reads: final_hw (FLATTEN) or 1 */
    int n_fc;                        /* dense layers: 3 */
    int fc_in[VGG_N_FC];             /* 25088, 4096, 4096 (the first n_fc are used) */
    int fc_out[VGG_N_FC];            /* 4096, 4096, 1000 (a sigmoid head's last: 2) */
    int head_units;                  /* the last layer's units as trained: 1000 (sigmoid: 1) */
    int n_classes;                   /* fc_out[n_fc - 1]: 1000 */
} vgg_config;

/* Fills *cfg for "vgg11", "vgg13", "vgg16" or "vgg19" at full size. Returns false for an
 * unknown name. */
bool vgg_config_init(vgg_config *cfg, const char *name);

/* A reduced variant for tests: channel counts divided by width_div, input_hw x input_hw
 * input (a multiple of 32), classifier hidden size fc_hidden, n_classes (>= 2) outputs. */
bool vgg_config_init_reduced(vgg_config *cfg, const char *name, int width_div, int input_hw,
                             int fc_hidden, int n_classes);

/* The general form: `name` features (channels / width_div), BatchNorm or not, input_hw x
 * input_hw input, then `head`. Returns false with the reason in err (which may be NULL) for
 * an unknown name, an input side outside VGG_MIN_INPUT_HW..VGG_MAX_INPUT_HW, 0 or more than
 * VGG_N_FC dense layers, a size < 1, softmax over fewer than 2 classes or sigmoid on other
 * than 1 unit. */
bool vgg_config_init_head(vgg_config *cfg, const char *name, int width_div, bool batch_norm,
                          int input_hw, const vgg_head *head, char *err, size_t errlen);

/* True when cfg is the default ImageNet head (what a file without head metadata means). */
bool vgg_config_default_head(const vgg_config *cfg);

/* Parameter counts: per conv (weights + bias), per fc, and the total. */
int64_t vgg_config_conv_params(const vgg_config *cfg, int i);
/* The conventional name of conv i: "conv<block>_<index in block>" (VGG16's last: conv5_3). */
void vgg_config_conv_name(const vgg_config *cfg, int i, char *out, size_t cap);
int64_t vgg_config_fc_params(const vgg_config *cfg, int i);
/* Parameters as trained, torchvision's sum(p.numel() for p in model.parameters()): dense
 * layers at their trained units (a sigmoid's 1), BatchNorm's weight and bias counted, its
 * running statistics not (they are buffers, and folded here). */
int64_t vgg_config_total_params(const vgg_config *cfg);
/* Per conv, BatchNorm's trainable parameters (2 x cout, 0 without BatchNorm). */
int64_t vgg_config_bn_params(const vgg_config *cfg, int i);

/* Multiply-add count x 2 for one image (the usual FLOP figure: 30.9 G for VGG16). */
double vgg_config_flops(const vgg_config *cfg);

/* The family's names, "vgg11".."vgg19", NULL-terminated: the one table that
 * vgg_config_init, config and the CLI's --model read. */
#define VGG_N_MODELS 4
extern const char *const vgg_model_names[VGG_N_MODELS + 1];

#endif
