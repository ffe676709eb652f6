/* responses.h - JSON bodies of successful answers, built from plain numbers.
 *
 * The model never sees JSON; the HTTP layer never computes: these functions turn results
 * (probabilities, timings) into the documented shapes. Thread-safe; results are new
 * references. */
#ifndef API_RESPONSES_H
#define API_RESPONSES_H

#include <jansson.h>

#include "labels.h"

/* [{"class_id", "wnid", "label", "probability"}, ...] for the top k of probs (at most
 * n_classes), named by labels (borrowed; "wnid" only where they carry one). */
json_t *api_topk_json(const vgg_labels *labels, const float *probs, int n_classes, int k);

typedef struct {
    double decode_ms, queue_ms, inference_ms, total_ms;
} api_timings;

/* {"model", "request_id", "predictions": [{"top_k": [...]}...], "timing_ms": {...},
 *  "batch_size"}: probs holds n_images rows of n_classes. */
json_t *api_classify_json(const char *model, const vgg_labels *labels, const char *request_id,
                          const float *probs, int n_images, int n_classes, int top_k,
                          const api_timings *t, int batch_size);

/* One Grad-CAM explanation per prediction of a /classify body (api_classify_json's), as
 * POST /explain answers: predictions[i].explanation = {"method": "grad-cam", "layer",
 * "class_id", "label", "grid": map_hw rows of map_hw numbers, "crop": [x0, y0, x1, y1]},
 * crop being the window of the uploaded (upright) image the network saw. */
void api_add_explanations(json_t *classify_body, const vgg_labels *labels, int n_images,
                          const char *layer,
                          const int *class_ids, const float *maps, int map_hw,
                          const double (*crops)[4]);

#endif
