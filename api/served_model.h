/* served_model.h - what the front ends must know of the model being served.
 *
 * cli/serve.c fills one when the workers are warm and hands it to the HTTP server once
 * (http_server_serve); parsers size and check requests by it and answer writers label their
 * answers with it. Plain data: after the hand-over nobody writes it, so any thread may read it. */
#ifndef API_SERVED_MODEL_H
#define API_SERVED_MODEL_H

#include "labels.h"
#include "preprocess.h"

typedef struct {
    const char *name;           /* the configured model name (vgg16); borrowed, lives as long */
    int n_classes;              /* rows of probabilities and logits: 1000 */
    const vgg_labels *labels;   /* n_classes names (labels.h); borrowed, lives as long */
    int image_hw;               /* side of the network's input: 224 */
    int image_floats;           /* one input image: 3 x image_hw x image_hw */
    preprocess_mode preprocess; /* how uploads are turned into inputs */
    int explain_hw;             /* Grad-CAM map side (14); 0: no explanations (int8) */
    char explain_layer[16];     /* the layer the maps explain: conv5_3 */
} served_model;

#endif
