/* calibrate.h - activation ranges for int8, measured once and kept beside the weights.
 *
 * int8 stores each layer's output as u8 = round(x * 255 / max), so it needs, per conv/fc
 * layer, the largest value that layer produces on realistic inputs. vgg_calibrate() runs the
 * f32 model over a calibration set (photos the caller decoded, plus generated images) and
 * records those maxima; the result is saved as JSON next to the weights
 * (`WEIGHTS.int8.json`) with a fingerprint of the weights, so start-up reuses it and a
 * changed weights file is never paired with stale ranges.
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

/* Runs the f32 model over inputs (n images) and writes act_max[VGG_N_LAYERS]. */
int vgg_calibrate(const vgg_weights *w, const float *inputs, int n, int threads,
                  float act_max[VGG_N_LAYERS], char *err, size_t errlen);

/* A 64-bit fingerprint of every parameter (order and value). */
uint64_t vgg_weights_fingerprint(const vgg_weights *w);

int vgg_calibration_save(const char *path, const vgg_weights *w, int n_inputs,
                         const float act_max[VGG_N_LAYERS], char *err, size_t errlen);

/* Returns 0 when path holds ranges for exactly these weights, 1 when the file does not
 * exist, -1 (with err) when it is unreadable or belongs to other weights. */
int vgg_calibration_load(const char *path, const vgg_weights *w, float act_max[VGG_N_LAYERS],
                         char *err, size_t errlen);

#endif
