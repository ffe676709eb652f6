/* served_model.h - what the front ends must know of the model being served.
 *
 * server/repository.c fills one for each version it serves, once its workers are warm;
 * parsers size and check requests by it and answer writers label their answers with it. Plain
 * data: nobody writes it after that, and it lives as long as a job holds its version
 * (inference_job.release), so any thread may read it. */
#ifndef API_SERVED_MODEL_H
#define API_SERVED_MODEL_H

#include "labels.h"
#include "preprocess.h"

typedef struct {
    const char *name;           /* the model's name (vgg16, or its repository folder); borrowed,
                                 * lives as long */
    long long version;          /* its version (1 for --weights alone) */
    int n_classes;              /* rows of probabilities and logits: 1000 */
    const vgg_labels *labels;   /* n_classes names (labels.h); borrowed, lives as long */
    int image_hw;               /* side of the network's input: 224 */
    int image_floats;           /* one input image: 3 x image_hw x image_hw */
    preprocess_mode preprocess; /* how uploads are turned into inputs */
    int explain_hw;             /* Grad-CAM map side (14); 0: no explanations (int8) */
    char explain_layer[16];     /* the layer the maps explain: conv5_3 */
} served_model;

#endif
