/* preprocess.h - image bytes to the float tensor VGG sees.
 *
 * preprocess_decode() sniffs JPEG/PNG from the bytes (never from a Content-Type), checks the
 * pixel count with stbi_info before decoding, and decodes to 8-bit RGB (gray and RGBA become
 * RGB; alpha is dropped as PIL's convert("RGB") drops it).
 *
 * preprocess_rgb() turns RGB pixels into a (3, out_hw, out_hw) planar float tensor:
 *   PREPROCESS_TORCHVISION: Resize(256) (shorter side, antialiased bilinear = PIL's triangle
 *     filter widened by the scale factor), CenterCrop(224), /255, then (x - mean) / std with
 *     ImageNet's mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225).
 *   PREPROCESS_CAFFE: resize to 224x224 (same filter), BGR order, 0..255 minus
 *     (103.939, 116.779, 123.68) - what Keras-converted weights expect.
 * The crop window is mapped back to source coordinates and only it is resampled, so memory
 * is O(crop x source rows touched), whatever the aspect ratio.
 *
 * All functions are reentrant; outputs are owned by the caller.
 */
#ifndef PREPROCESS_H
#define PREPROCESS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { PREPROCESS_TORCHVISION, PREPROCESS_CAFFE } preprocess_mode;

typedef enum {
    PREPROCESS_OK = 0,
    PREPROCESS_UNSUPPORTED, /* not JPEG or PNG */
    PREPROCESS_TOO_LARGE,   /* over max_pixels */
    PREPROCESS_UNDECODABLE, /* JPEG/PNG signature but broken data */
    PREPROCESS_NO_MEMORY,
} preprocess_status;

typedef enum { IMAGE_FORMAT_UNKNOWN, IMAGE_FORMAT_JPEG, IMAGE_FORMAT_PNG } image_format;

typedef struct {
    uint8_t *rgb; /* width * height * 3, owned: free with preprocess_image_free */
    int width, height;
    int source_channels; /* 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA */
    image_format format;
} preprocess_image;

image_format preprocess_sniff(const uint8_t *bytes, size_t len);
const char *preprocess_format_name(image_format f);

/* Decodes bytes into *img. max_pixels = 0 means no limit beyond stb's own. On failure err
 * says why (stb's reason for undecodable data). */
preprocess_status preprocess_decode(const uint8_t *bytes, size_t len, int64_t max_pixels,
                                    preprocess_image *img, char *err, size_t errlen);
void preprocess_image_free(preprocess_image *img);

/* Writes the (3, out_hw, out_hw) tensor (out_hw = 224 for VGG) into out. resize_to is the
 * shorter-side size in torchvision mode (256); ignored in caffe mode. */
preprocess_status preprocess_rgb(const preprocess_image *img, preprocess_mode mode,
                                 int resize_to, int out_hw, float *out);

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

/* Decode + preprocess in one call. */
preprocess_status preprocess_bytes(const uint8_t *bytes, size_t len, int64_t max_pixels,
                                   preprocess_mode mode, int out_hw, float *out, char *err,
                                   size_t errlen);

#endif
