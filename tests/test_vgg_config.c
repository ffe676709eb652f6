/* test_vgg_config.c - model/vgg_config: each variant's parameter count, convolutions and
 * pools, VGG16's FLOPs, and the reduced variants' limits. */
#include "engine.h"
#include "test_model_util.h"
#include "vgg_config.h"

static void test_config(void) {
    static const struct {
        const char *name;
        int64_t params;
        int n_conv, last_feature;
    } want[4] = {{"vgg11", 132863336, 8, 18},
                 {"vgg13", 133047848, 10, 22},
                 {"vgg16", 138357544, 13, 28},
                 {"vgg19", 143667240, 16, 34}};
    for (int i = 0; i < 4; i++) {
        vgg_config c;
        EXPECT(vgg_config_init(&c, want[i].name));
        EXPECT(strcmp(vgg_model_names[i], want[i].name) == 0);
        EXPECT(vgg_config_total_params(&c) == want[i].params);
        if (vgg_config_total_params(&c) != want[i].params)
            fprintf(stderr, "  %s: %lld params\n", want[i].name,
                    (long long)vgg_config_total_params(&c));
        EXPECT(c.n_conv == want[i].n_conv && c.feature_index[c.n_conv - 1] == want[i].last_feature);
        EXPECT(c.final_hw == 7 && c.final_channels == 512 && c.fc_in[0] == 25088);
        EXPECT(c.fc_out[0] == 4096 && c.fc_out[1] == 4096 && c.fc_out[2] == 1000);
        int pools = 0;
        for (int j = 0; j < c.n_conv; j++) pools += c.pool_after[j];
        EXPECT(pools == VGG_N_POOL && c.pool_after[c.n_conv - 1]);
    }
    vgg_config c;
    EXPECT(vgg_config_init(&c, "vgg16"));
    double flops = vgg_config_flops(&c);
    printf("  vgg16: %.4g FLOPs\n", flops);
    EXPECT_NEAR(flops / 30.94e9, 1.0, 0.005);
    EXPECT(c.conv_hw[0] == 224 && c.conv_hw[12] == 14 && c.conv_in[0] == 3);
    EXPECT(vgg_config_conv_params(&c, 0) == 64 * 3 * 9 + 64);
    EXPECT(vgg_config_fc_params(&c, 0) == 25088LL * 4096 + 4096);
    EXPECT(!vgg_config_init(&c, "vgg15"));
    EXPECT(!vgg_config_init_reduced(&c, "vgg16", 16, 48, 8, 10)); /* not a multiple of 32 */
    EXPECT(!vgg_config_init_reduced(&c, "vgg16", 0, 32, 8, 10));
    EXPECT(!vgg_config_init_reduced(&c, "vgg16", 1, 224, 0, 10));
}

int main(int argc, char **argv) {
    static const test_case tests[] = {
        {"config counts", test_config},
    };
    return model_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
