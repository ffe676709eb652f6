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
    int model_i;
    if (cli_parse_choice("model", model, vgg_model_names, &model_i) != 0) return 2;
    vgg_config_init(&c, vgg_model_names[model_i]);
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
