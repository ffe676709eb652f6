/* engine.h - the VGG forward pass on oneDNN primitives.
 *
 * Two objects, split by what is shared:
 *
 *   vgg_model   weights in the primitives' own formats, read-only once built, shared by every
 *               worker and every batch size. Built from a vgg_weights (borrowed until
 *               vgg_model_release_source()). A weight format the primitives ask for is reordered
 *               once, on first use, under the model's lock; after release_source no new
 *               formats can be made, so callers warm up every batch size first.
 *   vgg_engine  one worker's state: its oneDNN stream, its thread count, and per batch size a
 *               plan (primitives) created on first use and cached. Activation, scratchpad and
 *               output buffers belong to the engine, sized for its largest plan and shared by
 *               all of them; nothing allocates on the forward path.
 *
 * Graph per image:  {N,3,224,224} -reorder-> conv3x3+ReLU ... maxpool ... (13 convs, 5 pools)
 *   -> fc1+ReLU -> fc2+ReLU -> fc3 (logits) -> softmax (probabilities)
 * Convolutions and pools use format `any`, so activations stay in oneDNN's blocked layout;
 * the only activation reorder is the input's (in int8, also each boundary between an f32
 * layer and a u8 one, which the reorder scales; in bf16 + Winograd, each boundary between bf16
 * layers and the f32 Winograd ones). fc1 reads pool5's output as it is: either as a
 * flat (N, 25088) matrix with fc1's weights permuted once to pool5's layout (fast: brgemm), or
 * as a 4-D (N, 512, 7, 7) tensor with weights described as (4096, 512, 7, 7).
 *
 * Explanations (Grad-CAM, Selvaraju et al. 2017) run a plan of their own per batch size: the
 * forward plan's steps, with A, the last convolution's output after its ReLU, copied out;
 * then, from one-hot rows for each image's class c, the backward steps fc3 -> ReLU -> fc2 ->
 * ReLU (inner product backward data, eltwise ReLU backward on the kept outputs) -> fc1 on its
 * weights summed over each channel's 7 x 7 positions. That last step gives, per channel k,
 * the sum of g = d logit_c / d A over k's positions without forming g: pool5's backward only
 * moves each gradient to one position of its own channel, so the sum is the same before and
 * after it, and alpha_k (the mean of g_k) is all Grad-CAM takes from g. fc1's channel sums
 * are 8 MB in f32, made once from the source weights, where a true fc1 backward reads its
 * 400 MB again. The host then forms the map: map = ReLU(sum_k alpha_k A_k) divided by its
 * maximum (all zeros when that is 0). No convolution is differentiated: an explanation costs
 * the forward pass plus the backward of fc3 and fc2 on the forward's own weights (f32 direct,
 * one thread, batch 1: 1.03-1.09x a classification, `vggserve bench --explain`; before the
 * channel sums, a full fc1 backward made it 1.25-1.35x). With explain_plain_fc the backward
 * of fc2 and fc3 reads plain copies (83 MB more in f32), which gemm reads at memory speed.
 * Forward plans are untouched by all this: an engine that never explains builds and runs
 * what it did before.
 * Precisions: f32 and bf16, direct or Winograd (in bf16 the backward runs in the forward's
 * bf16 layouts, gradients included, up to fc1's channel sums, which are f32: maps up to
 * about 0.05 from f32's). int8 refuses
 * ("explanations are not supported in int8"): its inner products are u8 x s8 with scaled
 * reorders between them, and a backward in f32 would need f32 copies of fc1..fc3 that the
 * model may already have released.
 *
 * Threads: a vgg_engine is used by one thread at a time (the one that calls forward); several
 * engines over one model may run at once from different threads. vgg_model is thread-safe.
 */
#ifndef ENGINE_H
#define ENGINE_H

#include <stdbool.h>
#include <stddef.h>

#include "vgg_config.h"
#include "vgg_weights.h"

/* AUTO is the measured choice for the precision: Winograd in int8 (oneDNN's int8 Winograd on
 * the layers where it beats direct, engine_weights.c), direct in f32 and bf16. */
typedef enum { VGG_ALGO_DIRECT, VGG_ALGO_WINOGRAD, VGG_ALGO_AUTO, VGG_N_ALGOS } vgg_algo;
typedef enum { VGG_PRECISION_F32, VGG_PRECISION_BF16, VGG_PRECISION_INT8, VGG_N_PRECISIONS } vgg_precision;
/* Their spellings, indexed by value and NULL-terminated: the one table that flags, config
 * and metrics all read. */
extern const char *const vgg_algo_names[VGG_N_ALGOS + 1];
extern const char *const vgg_precision_names[VGG_N_PRECISIONS + 1];

/* Layers in index order for per-layer data: conv i is i, fc j is VGG_MAX_CONV + j. */
#define VGG_N_LAYERS (VGG_MAX_CONV + VGG_N_FC)
typedef enum { VGG_FC1_FLAT, VGG_FC1_4D } vgg_fc1_layout;

typedef struct {
    /* WINOGRAD: f32 runs every convolution but the 3-channel first one in Winograd; bf16 runs
     * the convolutions where f32 Winograd beats bf16 direct (>= 128 input channels at 56x56 or
     * less) in f32 Winograd and the rest in bf16; int8 has no Winograd (direct). */
    vgg_algo algo;
    vgg_precision precision;
    vgg_fc1_layout fc1_layout;
    int max_batch; /* largest batch a plan may be built for */
    /* int8 only: the calibrated clip of each layer's output (VGG_N_LAYERS values, read at
     * creation; see calibrate.h), and the layers that stay f32 (bit l for layer l; the first
     * convolution always does). */
    const float *act_max;
    uint32_t int8_float_layers;
    /* Explanations: the backward of fc2 and fc3 reads plain (O, K) copies of their weights
     * instead of the forward's blocked ones: 83 MB more in f32 (42 in bf16), made on the
     * first explanation (see "Explanations" above). */
    bool explain_plain_fc;
} vgg_model_options;

typedef struct vgg_model vgg_model;
typedef struct vgg_engine vgg_engine;

/* A set of layers by name, "conv1".."conv16" and "fc1".."fc3", comma-separated ("" or "none":
 * empty), as a bit mask over the VGG_N_LAYERS index order. */
int vgg_layer_set_parse(const char *s, uint32_t *out);
const char *vgg_algo_name(vgg_algo a);
/* The algorithm a runs as at precision p: AUTO resolved, others as they are. */
vgg_algo vgg_algo_resolve(vgg_algo a, vgg_precision p);
const char *vgg_precision_name(vgg_precision p);

/* Creates the shared model. `weights` is borrowed until vgg_model_release_source() (or
 * vgg_model_free); its config is copied. Returns NULL with err on failure. */
vgg_model *vgg_model_create(const vgg_weights *weights, const vgg_model_options *opt, char *err,
                            size_t errlen);
const vgg_config *vgg_model_config(const vgg_model *m);
const vgg_model_options *vgg_model_get_options(const vgg_model *m);
/* Forget the source weights: from now on only formats already made are available. */
void vgg_model_release_source(vgg_model *m);
/* Bytes held in primitive-format weights (all formats made so far). */
size_t vgg_model_weight_bytes(const vgg_model *m);
void vgg_model_free(vgg_model *m);

/* Creates a worker engine that runs its primitives on n_threads OpenMP threads. The engine
 * must only be used from one thread at a time. */
vgg_engine *vgg_engine_create(vgg_model *m, int n_threads, char *err, size_t errlen);
void vgg_engine_free(vgg_engine *e);

/* Builds (if needed) the plan for batch size n; forward() does this on demand, warm-up calls
 * it ahead of time. */
int vgg_engine_prepare(vgg_engine *e, int n, char *err, size_t errlen);

/* Runs n images: input (n, 3, H, W) float NCHW, logits and probs (n, n_classes), either of
 * the outputs may be NULL. Returns 0, or -1 with err. */
int vgg_engine_forward(vgg_engine *e, const float *input, int n, float *logits, float *probs,
                       char *err, size_t errlen);

/* Grad-CAM maps for n images, batched: input, logits and probs as in forward(), which they
 * equal bit for bit (an explanation never changes the probabilities). class_id (n entries,
 * or NULL for all top-1) names each image's class: VGG_EXPLAIN_TOP1 for its most probable one
 * as topk ranks them, VGG_EXPLAIN_NONE for no map (the image still gets its logits; its map is
 * zeros), else 0..n_classes-1. maps (out): n maps of vgg_model_explain_hw() squared floats,
 * row-major, in [0, 1] with maximum 1 (or all 0). explained_class (out, n entries, may be NULL):
 * the class each map explains, -1 for none. Returns 0, or -1 with err (an int8 model, a
 * class id out of range). */
#define VGG_EXPLAIN_TOP1 (-1)
#define VGG_EXPLAIN_NONE (-2)
int vgg_engine_explain(vgg_engine *e, const float *input, int n, float *logits, float *probs,
                       const int *class_id, float *maps, int *explained_class, char *err,
                       size_t errlen);
/* Builds (if needed) the explain plan for batch size n: for warm-up before
 * vgg_model_release_source(), as its backward may need weight formats of its own. */
int vgg_engine_prepare_explain(vgg_engine *e, int n, char *err, size_t errlen);
/* The side of an explanation map: the last convolution's (14 for a 224 input). */
int vgg_model_explain_hw(const vgg_model *m);

/* Called with every value a conv/fc layer wrote (count floats, in the layer's own memory
 * format, padding included, which holds zeros), after its ReLU; for calibration. */
typedef void (*vgg_layer_observer)(void *ctx, int layer, const float *values, size_t count);

/* Runs an f32 model on n images like forward(), calling observe(ctx, layer, ...) once per
 * conv/fc layer as soon as that layer has run. */
int vgg_engine_observe(vgg_engine *e, const float *input, int n, vgg_layer_observer observe,
                       void *ctx, char *err, size_t errlen);

/* Human-readable plan for batch n: one line per step with the oneDNN implementation chosen
 * and memory format (for `bench --verbose` and debugging). Caller frees. */
char *vgg_engine_describe(vgg_engine *e, int n);
/* The same for the explain plan of batch n. Caller frees. */
char *vgg_engine_describe_explain(vgg_engine *e, int n);

/* Bytes of activation, scratchpad and output buffers held by this engine (shared by all of
 * its plans, sized for the largest). */
size_t vgg_engine_activation_bytes(const vgg_engine *e);
int vgg_engine_threads(const vgg_engine *e);

#endif
