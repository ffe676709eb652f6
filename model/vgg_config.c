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

const char *const vgg_head_pool_names[VGG_N_HEAD_POOLS + 1] = {"flatten", "avg", "max", NULL};
const char *const vgg_head_act_names[VGG_N_HEAD_ACTS + 1] = {"softmax", "sigmoid", NULL};

static bool fail(char *err, size_t errlen, const char *msg, int value) {
    if (err) snprintf(err, errlen, msg, value);
    return false;
}

/* The features: torchvision's table t, channels / width_div, at cfg->input_hw. */
static void expand_features(vgg_config *cfg, int t, int width_div, bool batch_norm) {
    int channels = 3, hw = cfg->input_hw, feature_index = 0;
    for (const int *l = vgg_tables[t]; *l != END; l++) {
        if (*l == POOL) {
            cfg->pool_after[cfg->n_conv - 1] = true;
            hw /= 2; /* floors, like torch's and Keras's MaxPool2d(2) */
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
        feature_index += batch_norm ? 3 : 2; /* Conv2d, [BatchNorm2d,] ReLU */
        channels = out;
    }
    cfg->final_hw = hw;
    cfg->final_channels = channels;
}

static bool check_head(const vgg_head *h, char *err, size_t errlen) {
    if ((unsigned)h->pool >= VGG_N_HEAD_POOLS) return fail(err, errlen, "unknown head pooling %d", h->pool);
    if ((unsigned)h->act >= VGG_N_HEAD_ACTS) return fail(err, errlen, "unknown head activation %d", h->act);
    if (h->n_dense < 1 || h->n_dense > VGG_N_FC)
        return fail(err, errlen, "%d dense layers in the head; 1 to 3 are supported", h->n_dense);
    for (int j = 0; j < h->n_dense; j++)
        if (h->units[j] < 1 || h->units[j] > 1 << 20)
            return fail(err, errlen, "a dense layer of %d units", h->units[j]);
    const int last = h->units[h->n_dense - 1];
    if (h->act == VGG_ACT_SOFTMAX && last < 2)
        return fail(err, errlen, "softmax over %d unit: it needs at least 2 classes (use sigmoid "
                    "for one unit)", last);
    if (h->act == VGG_ACT_SIGMOID && last != 1)
        return fail(err, errlen, "sigmoid on %d units: vggserve answers a sigmoid head of one "
                    "unit (binary); use softmax for several classes", last);
    return true;
}

bool vgg_config_init_head(vgg_config *cfg, const char *name, int width_div, bool batch_norm,
                          int input_hw, const vgg_head *head, char *err, size_t errlen) {
    memset(cfg, 0, sizeof *cfg);
    const int t = name_table_index(vgg_model_names, name);
    if (t < 0) {
        if (err) snprintf(err, errlen, "unknown model '%s' (vgg11, vgg13, vgg16, vgg19)", name);
        return false;
    }
    if (width_div < 1) return fail(err, errlen, "width divisor %d", width_div);
    if (input_hw < VGG_MIN_INPUT_HW || input_hw > VGG_MAX_INPUT_HW)
        return fail(err, errlen, "input size %d outside the 32..1024 the features accept", input_hw);
    if (!check_head(head, err, errlen)) return false;
    snprintf(cfg->name, sizeof cfg->name, "%s", name);
    cfg->batch_norm = batch_norm;
    cfg->bn_eps = 1e-5f;
    cfg->in_channels = 3;
    cfg->input_hw = input_hw;
    expand_features(cfg, t, width_div, batch_norm);
    cfg->head_pool = head->pool;
    cfg->head_act = head->act;
    cfg->head_hw = head->pool == VGG_POOL_FLATTEN ? cfg->final_hw : 1;
    cfg->n_fc = head->n_dense;
    int in = cfg->final_channels * cfg->head_hw * cfg->head_hw;
    for (int j = 0; j < cfg->n_fc; j++) {
        cfg->fc_in[j] = in;
        cfg->fc_out[j] = in = head->units[j];
    }
    cfg->head_units = head->units[cfg->n_fc - 1];
    if (head->act == VGG_ACT_SIGMOID) cfg->fc_out[cfg->n_fc - 1] = 2; /* [-z/2, z/2] */
    cfg->n_classes = cfg->fc_out[cfg->n_fc - 1];
    return true;
}

bool vgg_config_init_reduced(vgg_config *cfg, const char *name, int width_div, int input_hw,
                             int fc_hidden, int n_classes) {
    memset(cfg, 0, sizeof *cfg);
    if (input_hw % 32 != 0) return false;
    vgg_head h = {VGG_POOL_FLATTEN, VGG_ACT_SOFTMAX, 3, {fc_hidden, fc_hidden, n_classes}};
    return vgg_config_init_head(cfg, name, width_div, false, input_hw, &h, NULL, 0);
}

bool vgg_config_init(vgg_config *cfg, const char *name) {
    return vgg_config_init_reduced(cfg, name, 1, VGG_INPUT_HW, 4096, 1000);
}

bool vgg_config_default_head(const vgg_config *cfg) {
    return !cfg->batch_norm && cfg->input_hw == VGG_INPUT_HW && cfg->head_pool == VGG_POOL_FLATTEN &&
           cfg->head_act == VGG_ACT_SOFTMAX && cfg->n_fc == 3 && cfg->fc_out[0] == 4096 &&
           cfg->fc_out[1] == 4096 && cfg->fc_out[2] == 1000;
}

int64_t vgg_config_conv_params(const vgg_config *cfg, int i) {
    return (int64_t)cfg->conv_out[i] * cfg->conv_in[i] * 9 + cfg->conv_out[i];
}

int64_t vgg_config_bn_params(const vgg_config *cfg, int i) {
    return cfg->batch_norm ? 2 * (int64_t)cfg->conv_out[i] : 0;
}

int64_t vgg_config_fc_params(const vgg_config *cfg, int i) {
    const int64_t out = i == cfg->n_fc - 1 ? cfg->head_units : cfg->fc_out[i];
    return out * cfg->fc_in[i] + out;
}

int64_t vgg_config_total_params(const vgg_config *cfg) {
    int64_t total = 0;
    for (int i = 0; i < cfg->n_conv; i++)
        total += vgg_config_conv_params(cfg, i) + vgg_config_bn_params(cfg, i);
    for (int i = 0; i < cfg->n_fc; i++) total += vgg_config_fc_params(cfg, i);
    return total;
}

double vgg_config_flops(const vgg_config *cfg) {
    double macs = 0;
    for (int i = 0; i < cfg->n_conv; i++)
        macs += (double)cfg->conv_out[i] * cfg->conv_in[i] * 9 * cfg->conv_hw[i] * cfg->conv_hw[i];
    for (int i = 0; i < cfg->n_fc; i++) macs += (double)cfg->fc_out[i] * cfg->fc_in[i];
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
