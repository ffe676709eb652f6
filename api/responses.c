/* responses.c - success bodies. */
#include "responses.h"

#include "labels.h"
#include "topk.h"

json_t *api_topk_json(const vgg_labels *labels, const float *probs, int n_classes, int k) {
    int idx[LABELS_COUNT];
    if (k > LABELS_COUNT) k = LABELS_COUNT;
    int got = topk_indices(probs, n_classes, k, idx);
    json_t *arr = json_array();
    for (int i = 0; i < got; i++)
        json_array_append_new(arr, json_pack("{s:i, s:s*, s:s?, s:f}", "class_id", idx[i], "wnid",
                                             vgg_labels_wnid(labels, idx[i]), "label",
                                             vgg_labels_name(labels, idx[i]),
                                             "probability", (double)probs[idx[i]]));
    return arr;
}

json_t *api_classify_json(const char *model, const vgg_labels *labels, const char *request_id,
                          const float *probs, int n_images, int n_classes, int top_k,
                          const api_timings *t, int batch_size) {
    json_t *preds = json_array();
    for (int i = 0; i < n_images; i++)
        json_array_append_new(preds, json_pack("{s:o}", "top_k",
                                               api_topk_json(labels, probs + (size_t)i * n_classes,
                                                             n_classes, top_k)));
    return json_pack("{s:s, s:s, s:o, s:{s:f, s:f, s:f, s:f}, s:i}", "model", model, "request_id",
                     request_id, "predictions", preds, "timing_ms", "decode", t->decode_ms,
                     "queue", t->queue_ms, "inference", t->inference_ms, "total", t->total_ms,
                     "batch_size", batch_size);
}

void api_add_explanations(json_t *classify_body, const vgg_labels *labels, int n_images,
                          const char *layer,
                          const int *class_ids, const float *maps, int map_hw,
                          const double (*crops)[4]) {
    json_t *preds = json_object_get(classify_body, "predictions");
    for (int i = 0; i < n_images; i++) {
        const float *map = maps + (size_t)i * map_hw * map_hw;
        json_t *grid = json_array();
        for (int y = 0; y < map_hw; y++) {
            json_t *row = json_array();
            for (int x = 0; x < map_hw; x++) json_array_append_new(row, json_real(map[y * map_hw + x]));
            json_array_append_new(grid, row);
        }
        const double *c = crops[i];
        json_t *e = json_pack("{s:s, s:s, s:i, s:s?, s:o, s:[f, f, f, f]}", "method", "grad-cam",
                              "layer", layer, "class_id", class_ids[i], "label",
                              vgg_labels_name(labels, class_ids[i]), "grid", grid, "crop", c[0], c[1], c[2],
                              c[3]);
        json_object_set_new(json_array_get(preds, (size_t)i), "explanation", e);
    }
}
