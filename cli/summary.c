/* summary.c - `vggserve summary`: the layer table with parameter counts, or a DOT graph. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"


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

/* The head's rows: its pooling, the dense layers (the last is "predictions"). */
static void print_head(const vgg_config *c) {
    static const char *const pool_rows[VGG_N_HEAD_POOLS] = {"flatten", "global_avg_pool",
                                                            "global_max_pool"};
    char shape[48], name[32];
    snprintf(shape, sizeof shape, "(None, %d)", c->fc_in[0]);
    print_row(pool_rows[c->head_pool], shape, 0);
    for (int j = 0; j < c->n_fc; j++) {
        const bool last = j == c->n_fc - 1;
        snprintf(name, sizeof name, last ? "predictions" : "fc%d", j + 1);
        snprintf(shape, sizeof shape, "(None, %d)", last ? c->head_units : c->fc_out[j]);
        print_row(name, shape, vgg_config_fc_params(c, j));
    }
}

/* The layer table, Keras's model.summary() style. */
static void print_table(const vgg_config *c, const char *total) {
    char name[32], shape[48];
    printf("Model: %s%s\n%-16s %-22s %14s\n", c->name, c->batch_norm ? "_bn" : "", "Layer",
           "Output shape", "Params");
    snprintf(shape, sizeof shape, "(None, %d, %d, 3)", c->input_hw, c->input_hw);
    print_row("input", shape, 0);
    int block = 1, in_block = 0;
    for (int i = 0; i < c->n_conv; i++) {
        snprintf(name, sizeof name, "block%d_conv%d", block, ++in_block);
        snprintf(shape, sizeof shape, "(None, %d, %d, %d)", c->conv_hw[i], c->conv_hw[i], c->conv_out[i]);
        print_row(name, shape, vgg_config_conv_params(c, i));
        if (c->batch_norm) {
            snprintf(name, sizeof name, "block%d_bn%d", block, in_block);
            print_row(name, shape, vgg_config_bn_params(c, i));
        }
        if (c->pool_after[i]) {
            snprintf(name, sizeof name, "block%d_pool", block++);
            snprintf(shape, sizeof shape, "(None, %d, %d, %d)", c->conv_hw[i] / 2, c->conv_hw[i] / 2,
                     c->conv_out[i]);
            print_row(name, shape, 0);
            in_block = 0;
        }
    }
    print_head(c);
    printf("Total params: %s\n", total);
    if (c->batch_norm) {
        int64_t bn = 0;
        for (int i = 0; i < c->n_conv; i++) bn += vgg_config_bn_params(c, i);
        char served[32];
        with_commas(vgg_config_total_params(c) - bn, served, sizeof served);
        printf("BatchNorm: folded into the convolutions at load (its weight and bias are counted "
               "above, its running statistics are buffers, not parameters); %s parameters "
               "served\n", served);
    }
    if (c->head_act == VGG_ACT_SIGMOID)
        printf("Output: sigmoid on one unit, answered as two classes [1-p, p]\n");
    printf("FLOPs per image: %.2f G\n", vgg_config_flops(c) / 1e9);
}

/* A Graphviz DOT graph of the same. */
static void print_dot(const vgg_config *c, const char *total) {
    char name[32], prev_buf[32];
    printf("digraph %s {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];\n", c->name);
    printf("  input [label=\"input\\n(3, %d, %d)\"];\n", c->input_hw, c->input_hw);
    const char *prev = "input";
    int block = 1, in_block = 0;
    for (int i = 0; i < c->n_conv; i++) {
        snprintf(name, sizeof name, "block%d_conv%d", block, ++in_block);
        printf("  %s [label=\"%s\\nconv3x3%s+ReLU\\n(%d, %d, %d)\\n%lld params\"];\n  %s -> %s;\n",
               name, name, c->batch_norm ? "+BN" : "", c->conv_out[i], c->conv_hw[i], c->conv_hw[i],
               (long long)(vgg_config_conv_params(c, i) + vgg_config_bn_params(c, i)), prev, name);
        snprintf(prev_buf, sizeof prev_buf, "%s", name);
        prev = prev_buf;
        if (c->pool_after[i]) {
            snprintf(name, sizeof name, "block%d_pool", block);
            printf("  %s [label=\"%s\\nmaxpool 2x2\\n(%d, %d, %d)\"];\n  %s -> %s;\n", name,
                   name, c->conv_out[i], c->conv_hw[i] / 2, c->conv_hw[i] / 2, prev, name);
            snprintf(prev_buf, sizeof prev_buf, "%s", name);
            block++;
            in_block = 0;
        }
    }
    if (c->head_pool != VGG_POOL_FLATTEN) {
        printf("  head_pool [label=\"global %s pool\\n(%d)\"];\n  %s -> head_pool;\n",
               vgg_head_pool_names[c->head_pool], c->fc_in[0], prev);
        snprintf(prev_buf, sizeof prev_buf, "head_pool");
    }
    for (int j = 0; j < c->n_fc; j++) {
        const bool last = j == c->n_fc - 1;
        printf("  fc%d [label=\"fc%d%s\\n(%d)\\n%lld params\"];\n  %s -> fc%d;\n", j + 1, j + 1,
               last ? "" : "+ReLU", last ? c->head_units : c->fc_out[j],
               (long long)vgg_config_fc_params(c, j), prev, j + 1);
        snprintf(prev_buf, sizeof prev_buf, "fc%d", j + 1);
    }
    printf("  %s [label=\"%s\\n(%d)\"];\n  fc%d -> %s;\n", vgg_head_act_names[c->head_act],
           vgg_head_act_names[c->head_act], c->head_units, c->n_fc, vgg_head_act_names[c->head_act]);
    printf("  label=\"%s: %s parameters\";\n}\n", c->name, total);
}

int cmd_summary(int argc, char **argv) {
    const char *model = "vgg16", *weights = NULL;
    bool dot = false;
    const cli_option opts[] = {
        {"model", "NAME", "vgg11|vgg13|vgg16|vgg19 (default vgg16)", &model, NULL},
        {"weights", "FILE", "the network a weights file describes (its head, input size, "
         "BatchNorm)", &weights, NULL},
        {"dot", NULL, "print a Graphviz DOT graph instead of the table", NULL, &dot},
    };
    const char *pos[1];
    int n_pos;
    int rc = cli_parse(argc, argv, opts, 3,
                       "usage: vggserve summary [--model vgg16] [--weights FILE] [--dot]", pos, 0,
                       &n_pos);
    if (rc != 0) return rc < 0 ? 2 : 0;
    vgg_config dflt, c;
    int model_i;
    if (cli_parse_choice("model", model, vgg_model_names, &model_i) != 0) return 2;
    vgg_config_init(&dflt, vgg_model_names[model_i]);
    char err[1024], total[32];
    c = dflt;
    if (weights && vgg_weights_read_config(weights, &dflt, &c, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    with_commas(vgg_config_total_params(&c), total, sizeof total);
    if (dot) print_dot(&c, total);
    else print_table(&c, total);
    return 0;
}
