/* test_name_table.c - model/name_table: lookup, the '|' list cut at its capacity, and the
 * preprocess setting each spelling and each weights file's metadata resolve to. */
#include "engine.h"
#include "name_table.h"
#include "preprocess.h"
#include "test_model_util.h"
#include "vgg_config.h"

/* Name tables: lookup, the '|' list (cut at its capacity), and the preprocess setting each
 * spelling and each weights file's metadata resolve to. */
static void test_names(void) {
    EXPECT(name_table_index(vgg_algo_names, "winograd") == VGG_ALGO_WINOGRAD);
    EXPECT(name_table_index(vgg_precision_names, "int8") == VGG_PRECISION_INT8);
    EXPECT(name_table_index(vgg_model_names, "vgg12") == -1);
    EXPECT(name_table_index(vgg_model_names, "") == -1);
    char list[64];
    name_table_join(vgg_precision_names, list, sizeof list);
    EXPECT(strcmp(list, "f32|bf16|int8") == 0);
    name_table_join(vgg_precision_names, list, 6);
    EXPECT(strcmp(list, "f32|b") == 0);
    EXPECT(strcmp(preprocess_mode_name(PREPROCESS_CAFFE), "caffe") == 0);
    EXPECT(name_table_index(preprocess_mode_names, "auto") == -1);
    EXPECT(name_table_index(preprocess_setting_names, "auto") == PREPROCESS_SETTING_AUTO);
    static const struct {
        preprocess_setting setting;
        const char *weights_say;
        int rc;
        preprocess_mode mode;
    } cases[] = {
        {PREPROCESS_SETTING_AUTO, "", 0, PREPROCESS_TORCHVISION},
        {PREPROCESS_SETTING_AUTO, NULL, 0, PREPROCESS_TORCHVISION},
        {PREPROCESS_SETTING_AUTO, "caffe", 0, PREPROCESS_CAFFE},
        {PREPROCESS_SETTING_AUTO, "torchvision", 0, PREPROCESS_TORCHVISION},
        {PREPROCESS_SETTING_AUTO, "auto", 1, PREPROCESS_TORCHVISION},
        {PREPROCESS_SETTING_AUTO, "bgr", 1, PREPROCESS_TORCHVISION},
        {PREPROCESS_SETTING_CAFFE, "torchvision", 0, PREPROCESS_CAFFE},
        {PREPROCESS_SETTING_TORCHVISION, "caffe", 0, PREPROCESS_TORCHVISION},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        preprocess_mode m = (preprocess_mode)-1;
        EXPECT(preprocess_resolve(cases[i].setting, cases[i].weights_say, &m) == cases[i].rc);
        EXPECT(m == cases[i].mode);
    }
}

int main(int argc, char **argv) {
    static const test_case tests[] = {
        {"name tables", test_names},
    };
    return model_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
