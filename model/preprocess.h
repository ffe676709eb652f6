/* preprocess.h - image bytes to the float tensor VGG sees.
 *
 * Decoding (bytes to preprocess_image) is model/image_decode.h's image_decode(), which every
 * path calls; preprocess_bytes() is the two in one.
 *
 * preprocess_rgb() turns RGB pixels into a (3, out_hw, out_hw) planar float tensor:
 *   PREPROCESS_TORCHVISION: Resize(256) (shorter side, antialiased bilinear = PIL's triangle
 *     filter widened by the scale factor), CenterCrop(224), /255, then (x - mean) / std with
 *     ImageNet's mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225).
 *   PREPROCESS_CAFFE: resize to 224x224 (same filter), BGR order, 0..255 minus
 *     (103.939, 116.779, 123.68) - what Keras-converted weights expect.
 *   PREPROCESS_RESCALE: the whole image resized to out_hw x out_hw, RGB / 255: what Keras's
 *     ImageDataGenerator(rescale=1./255) feeds a model trained from directories.
 *   PREPROCESS_TF: the same geometry, RGB / 127.5 - 1 (Keras's preprocess_input "tf" mode).
 * At an input other than 224, torchvision's Resize(256) becomes Resize(round(out_hw * 256 /
 * 224)), the same 0.875 crop ratio (preprocess_resize_for).
 * The crop window is mapped back to source coordinates and only it is resampled, so memory
 * is O(crop x source rows touched), whatever the aspect ratio. The source is read through
 * the image's EXIF orientation (a view with strides, no copy), and the geometry comes from
 * full_width x full_height when the decoder scaled the image down.
 *
 * All functions are reentrant; outputs are owned by the caller.
 */
#ifndef PREPROCESS_H
#define PREPROCESS_H

#include <stddef.h>
#include <stdint.h>

#include "image_decode.h" /* preprocess_image, preprocess_status, image_decode_options */

typedef enum {
    PREPROCESS_TORCHVISION,
    PREPROCESS_CAFFE,
    PREPROCESS_RESCALE,
    PREPROCESS_TF
} preprocess_mode;

/* torchvision's Resize(256): the shorter side an image is resized to before the centre crop to
 * the network's input (VGG_INPUT_HW), in torchvision mode. */
#define PREPROCESS_RESIZE_TO 256

/* The preprocess setting (config, `--mode`): AUTO, which follows the weights file
 * ("preprocess" in its metadata) and is torchvision when the file says nothing, or a mode
 * (setting = 1 + mode). */
typedef enum {
    PREPROCESS_SETTING_AUTO,
    PREPROCESS_SETTING_TORCHVISION = 1 + PREPROCESS_TORCHVISION,
    PREPROCESS_SETTING_CAFFE = 1 + PREPROCESS_CAFFE,
    PREPROCESS_SETTING_RESCALE = 1 + PREPROCESS_RESCALE,
    PREPROCESS_SETTING_TF = 1 + PREPROCESS_TF,
    PREPROCESS_N_SETTINGS
} preprocess_setting;
/* The spellings, indexed by setting, NULL-terminated (name_table.h); the modes' are the same
 * table after "auto", indexed by mode. */
extern const char *const preprocess_setting_names[PREPROCESS_N_SETTINGS + 1];
extern const char *const *const preprocess_mode_names;
const char *preprocess_mode_name(preprocess_mode m);
/* The mode setting s means for weights whose metadata says weights_says ("": nothing).
 * Returns 0; 1 when AUTO met a value it does not know (torchvision is used; the caller
 * warns). */
int preprocess_resolve(preprocess_setting s, const char *weights_says, preprocess_mode *out);

/* The shorter side torchvision mode resizes to for an out_hw input: resize_to itself unless it
 * is PREPROCESS_RESIZE_TO and out_hw is not 224, then round(out_hw * 256 / 224). */
int preprocess_resize_for(int resize_to, int out_hw);

/* Writes the (3, out_hw, out_hw) tensor (out_hw = VGG_INPUT_HW for VGG) into out. resize_to
 * is the shorter-side size in torchvision mode (PREPROCESS_RESIZE_TO); ignored in caffe mode. */
preprocess_status preprocess_rgb(const preprocess_image *img, preprocess_mode mode,
                                 int resize_to, int out_hw, float *out);

/* The window of a w x h (upright) image that the network sees, in its pixels: {x0, y0, x1,
 * y1}. torchvision mode: the centre crop after the resize; caffe: the whole image. So a
 * client can place an explanation's grid on the photo. */
void preprocess_view_window(preprocess_mode mode, int w, int h, int resize_to, int out_hw,
                            double box[4]);

/* The picture a (3, hw, hw) tensor of mode's normalisation shows: hw x hw RGB bytes,
 * row-major (preprocess_rgb undone, rounded and clamped), for drawing over what the network
 * saw. */
void preprocess_tensor_rgb(preprocess_mode mode, const float *tensor, int hw, uint8_t *rgb);

/* The same before normalisation: RGB in [0, 1] (torchvision geometry), for parity tests. */
preprocess_status preprocess_rgb_unit(const preprocess_image *img, int resize_to, int out_hw,
                                      float *out);

/* Sets glibc's malloc to keep freed blocks up to 64 MiB in the process (mmap threshold and
 * trim threshold). Each image is decoded into fresh buffers of a few MB that are freed right
 * after; when glibc hands them back to the kernel, every page faults in again for the next
 * image, which costs more than the decoding. glibc's adaptive threshold avoids that for small
 * photos once it has seen a few, but not for large ones: build/bench_preprocess on retina.jpg
 * (1411x1411, 2 threads) 83.6 ms and 2989 page faults per image with glibc's defaults, 20.2 ms
 * and 15 with this. Call once at start-up, before threads exist. Larger blocks (images above
 * ~20 megapixels) still come from mmap and go back at once. */
void preprocess_tune_malloc(void);

/* The shorter side the decoder must keep (image_decode_options.min_side) for mode's geometry
 * and an out_hw x out_hw tensor: PREPROCESS_RESIZE_TO for torchvision's Resize(256), out_hw
 * for caffe's direct resize. */
int preprocess_decode_min_side(preprocess_mode mode, int out_hw);

/* Decode (image_decode with opt; NULL: the defaults) + preprocess in one call. opt's
 * min_side is set here from mode (preprocess_decode_min_side). */
preprocess_status preprocess_bytes(const uint8_t *bytes, size_t len,
                                   const struct image_decode_options *opt, preprocess_mode mode,
                                   int out_hw, float *out, char *err, size_t errlen);
/* The same, and the image's upright size at full resolution into size (w, h) when not NULL. */
preprocess_status preprocess_bytes_sized(const uint8_t *bytes, size_t len,
                                         const struct image_decode_options *opt,
                                         preprocess_mode mode,
                                         int out_hw, float *out, int size[2], char *err,
                                         size_t errlen);

#endif
