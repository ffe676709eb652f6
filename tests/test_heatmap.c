/* test_heatmap.c - model/heatmap, the Grad-CAM overlay drawn over what the network saw. */
#include "heatmap.h"
#include "image_decode.h"
#include "preprocess.h"
#include "test_model_util.h"

/* The jet ramp's fixed points, the upsampling's corners and centre, the opacity ramp, the
 * inverse normalisation and a PNG that decodes back to the same pixels. */
static void test_heatmap(void) {
    uint8_t c[3];
    heatmap_color(0.0f, c);
    EXPECT(c[0] == 0 && c[1] == 0 && c[2] == 128); /* dark blue */
    heatmap_color(0.5f, c);
    EXPECT(c[0] == 128 && c[1] == 255 && c[2] == 128);
    heatmap_color(1.0f, c);
    EXPECT(c[0] == 128 && c[1] == 0 && c[2] == 0); /* dark red */
    heatmap_color(7.0f, c);
    EXPECT(c[0] == 128 && c[1] == 0 && c[2] == 0); /* clamped */
    /* A 2 x 2 map (0 top-left, 1 bottom-right) over a grey 4 x 4: the corners keep the map's
     * own values (edges clamp), the middle is their mean. */
    const float map[4] = {0, 0.5f, 0.5f, 1};
    uint8_t grey[4 * 4 * 3], out[4 * 4 * 3];
    memset(grey, 100, sizeof grey);
    heatmap_blend(grey, 4, 4, map, 2, out);
    heatmap_color(0.0f, c);
    const float a0 = HEATMAP_ALPHA_MIN, a1 = HEATMAP_ALPHA_MAX;
    EXPECT(out[0] == (uint8_t)lrintf((1 - a0) * 100 + a0 * c[0]));
    EXPECT(out[2] == (uint8_t)lrintf((1 - a0) * 100 + a0 * c[2]));
    heatmap_color(1.0f, c);
    EXPECT(out[15 * 3] == (uint8_t)lrintf((1 - a1) * 100 + a1 * c[0]));
    uint8_t mid[3];
    const float middle[1] = {0.5f};
    heatmap_blend(grey, 1, 1, middle, 1, mid);
    heatmap_blend(grey, 2, 2, map, 2, out); /* same size: the map itself */
    heatmap_color(0.5f, c);
    const float am = HEATMAP_ALPHA_MIN + (a1 - a0) * 0.5f;
    EXPECT(out[1 * 3 + 1] == (uint8_t)lrintf((1 - am) * 100 + am * c[1]));
    EXPECT(mid[1] == out[1 * 3 + 1]);
    /* The tensor of a picture is that picture again (torchvision normalisation). */
    const float mean[3] = {0.485f, 0.456f, 0.406f}, sd[3] = {0.229f, 0.224f, 0.225f};
    float t[3 * 4];
    uint8_t want[4 * 3] = {0, 10, 200, 255, 128, 3, 77, 77, 77, 1, 254, 9}, back[4 * 3];
    for (int ch = 0; ch < 3; ch++)
        for (int i = 0; i < 4; i++) t[ch * 4 + i] = (want[i * 3 + ch] / 255.0f - mean[ch]) / sd[ch];
    preprocess_tensor_rgb(PREPROCESS_TORCHVISION, t, 2, back);
    EXPECT(memcmp(back, want, sizeof want) == 0);
    /* PNG round trip through the service's own decoder. */
    size_t len;
    unsigned char *png = heatmap_png(out, 2, 2, &len);
    EXPECT(png && len > 8 && memcmp(png, "\x89PNG", 4) == 0);
    preprocess_image img = {0};
    char err[256];
    EXPECT(png && image_decode(png, len, NULL, &img, err, sizeof err) == PREPROCESS_OK);
    EXPECT(img.width == 2 && img.height == 2 && img.rgb && memcmp(img.rgb, out, 12) == 0);
    preprocess_image_free(&img);
    free(png);
}

int main(int argc, char **argv) {
    static const test_case tests[] = {
        {"heatmap", test_heatmap},
    };
    return model_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
