/* vgg_config.c - expands torchvision's `cfgs` table into a vgg_config. */
#include "vgg_config.h"

#include "name_table.h"

#include <stdio.h>
#include <string.h>

const char *const vgg_model_names[VGG_N_MODELS + 1] = {"vgg11", "vgg13", "vgg16", "vgg19", NULL};

/* Channel counts with POOL for a max-pool, END to terminate: torchvision's cfgs A/B/D/E,
 * indexed like vgg_model_names. */
enum { POOL = 0, END = -1 };
static const int vgg_tables[VGG_N_MODELS][24] = {
    {64, POOL, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512, POOL, END},
    {64, 64, POOL, 128, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512, POOL, END},
    {64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL, 512, 512, 512, POOL, 512, 512, 512, POOL,
     END},
    {64, 64, POOL, 128, 128, POOL, 256, 256, 256, 256, POOL, 512, 512, 512, 512, POOL, 512, 512,
     512, 512, POOL, END},
};

bool vgg_config_init_reduced(vgg_config *cfg, const char *name, int width_div, int input_hw,
                             int fc_hidden, int n_classes) {
    memset(cfg, 0, sizeof *cfg);
    if (width_div < 1 || input_hw < 32 || input_hw % 32 != 0 || fc_hidden < 1 || n_classes < 1)
        return false;
    const int t = name_table_index(vgg_model_names, name);
    if (t < 0) return false;
    snprintf(cfg->name, sizeof cfg->name, "%s", name);
    cfg->in_channels = 3;
    cfg->input_hw = input_hw;
    int channels = 3, hw = input_hw, feature_index = 0;
    for (const int *l = vgg_tables[t]; *l != END; l++) {
        if (*l == POOL) {
            cfg->pool_after[cfg->n_conv - 1] = true;
            hw /= 2;
            feature_index += 1; /* MaxPool2d */
            continue;
        }
        int out = *l / width_div;
        if (out < 1) out = 1;
        int i = cfg->n_conv++;
        cfg->conv_in[i] = channels;
        cfg->conv_out[i] = out;
        cfg->conv_hw[i] = hw;
        cfg->feature_index[i] = feature_index;
        feature_index += 2; /* Conv2d, ReLU */
        channels = out;
    }
    cfg->final_hw = hw;
    cfg->final_channels = channels;
    cfg->fc_in[0] = channels * hw * hw;
    cfg->fc_out[0] = fc_hidden;
    cfg->fc_in[1] = fc_hidden;
    cfg->fc_out[1] = fc_hidden;
    cfg->fc_in[2] = fc_hidden;
    cfg->fc_out[2] = n_classes;
    cfg->n_classes = n_classes;
    return true;
}

bool vgg_config_init(vgg_config *cfg, const char *name) {
    return vgg_config_init_reduced(cfg, name, 1, VGG_INPUT_HW, 4096, 1000);
}

int64_t vgg_config_conv_params(const vgg_config *cfg, int i) {
    return (int64_t)cfg->conv_out[i] * cfg->conv_in[i] * 9 + cfg->conv_out[i];
}

int64_t vgg_config_fc_params(const vgg_config *cfg, int i) {
    return (int64_t)cfg->fc_out[i] * cfg->fc_in[i] + cfg->fc_out[i];
}

int64_t vgg_config_total_params(const vgg_config *cfg) {
    int64_t total = 0;
    for (int i = 0; i < cfg->n_conv; i++) total += vgg_config_conv_params(cfg, i);
    for (int i = 0; i < VGG_N_FC; i++) total += vgg_config_fc_params(cfg, i);
    return total;
}

double vgg_config_flops(const vgg_config *cfg) {
    double macs = 0;
    for (int i = 0; i < cfg->n_conv; i++)
        macs += (double)cfg->conv_out[i] * cfg->conv_in[i] * 9 * cfg->conv_hw[i] * cfg->conv_hw[i];
    for (int i = 0; i < VGG_N_FC; i++) macs += (double)cfg->fc_out[i] * cfg->fc_in[i];
    return 2 * macs;
}

void vgg_config_conv_name(const vgg_config *cfg, int i, char *out, size_t cap) {
    int block = 1, in_block = 0;
    for (int j = 0; j <= i && j < cfg->n_conv; j++) {
        in_block++;
        if (j < i && cfg->pool_after[j]) {
            block++;
            in_block = 0;
        }
    }
    snprintf(out, cap, "conv%d_%d", block, in_block);
}
