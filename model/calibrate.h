/* calibrate.h - activation ranges for int8, measured once and kept beside the weights.
 *
 * int8 stores each layer's output as u8 = round(min(x, clip) * 255 / clip), so it needs, per
 * conv/fc layer, a clip chosen from the values that layer produces on realistic inputs.
 * vgg_calibrate() runs the f32 model over a calibration set (photos the caller decoded, plus
 * generated images) and picks each clip (by default the one with the least squared error);
 * the result is saved as JSON next to the weights (`WEIGHTS.int8.json`) with a fingerprint
 * of the weights, so start-up reuses it and a changed weights file is never paired with
 * stale ranges.
 *
 * Reentrant; the model built for calibration is private to the call. */
#ifndef CALIBRATE_H
#define CALIBRATE_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "vgg_weights.h"

/* Fills n generated images (3, hw, hw), already normalised like torchvision's pipeline:
 * smooth random colour fields with edges and noise (natural-image-like statistics), from
 * SplitMix64 seeded with seed. */
void vgg_calibration_images(float *out, int n, int hw, uint64_t seed);

/* How a layer's range is chosen from the values it produced on the calibration set:
 * MAX      the largest value (no clipping; one outlier coarsens every other value's step);
 * MSE      the clip that minimises the expected squared error of u8 storage, rounding noise
 *          below the clip plus the clipped excess above it (from a 2048-bin histogram);
 * PERCENTILE  the given percentile of the layer's positive values. */
typedef enum { VGG_CALIB_MAX, VGG_CALIB_MSE, VGG_CALIB_PERCENTILE } vgg_calib_kind;
typedef struct {
    vgg_calib_kind kind;
    double percentile; /* PERCENTILE only, in (0, 100] */
} vgg_calib_method;

#define VGG_CALIB_DEFAULT ((vgg_calib_method){VGG_CALIB_MSE, 0})

/* "max", "mse" or "pNN.NN" (a percentile). Returns 0, or -1 when text is none of those. */
int vgg_calib_method_parse(const char *text, vgg_calib_method *out);
/* The name vgg_calib_method_parse() reads back, in buf. */
const char *vgg_calib_method_name(vgg_calib_method m, char *buf, size_t len);

/* Runs the f32 model over inputs (n images) and writes act_max[VGG_N_LAYERS]: for each layer,
 * the value its int8 output maps to 255, chosen by method (NULL: VGG_CALIB_DEFAULT). Layers
 * the model lacks get 0. */
int vgg_calibrate(const vgg_weights *w, const float *inputs, int n, int threads,
                  const vgg_calib_method *method, float act_max[VGG_N_LAYERS], char *err,
                  size_t errlen);

/* A 64-bit fingerprint of every parameter (order and value). */
uint64_t vgg_weights_fingerprint(const vgg_weights *w);

int vgg_calibration_save(const char *path, const vgg_weights *w, int n_inputs,
                         vgg_calib_method method, const float act_max[VGG_N_LAYERS], char *err,
                         size_t errlen);

/* Returns 0 when path holds ranges for exactly these weights, 1 when the file does not
 * exist, -1 (with err) when it is unreadable or belongs to other weights. */
int vgg_calibration_load(const char *path, const vgg_weights *w, float act_max[VGG_N_LAYERS],
                         char *err, size_t errlen);

#endif
