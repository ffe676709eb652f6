/* engine_internal.h - what the engine's files share; nothing outside model/engine*.c
 * includes it.
 *
 * The engine is four files:
 *   engine_weights.c  the model: weights in each primitive format oneDNN asks for (made on
 *                     first request, shared by every engine), int8 scales, and the per-layer
 *                     choices (precision, Winograd) that plans follow;
 *   engine_plan.c     the forward graph, layer by layer, as oneDNN primitives for one batch
 *                     size; a plan's preparation (buffers, primitives) and description;
 *   engine_explain.c  the backward steps of Grad-CAM plans, and the explain call;
 *   engine_run.c      an engine (stream, cached plans, shared buffers) and running plans.
 *
 * Threading: the model is shared and locks its weight variants; an engine is one worker's. */
#ifndef ENGINE_INTERNAL_H
#define ENGINE_INTERNAL_H

#include <dnnl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "engine.h"

#define N_LAYERS (VGG_MAX_CONV + VGG_N_FC)
#define FC_LAYER(j) (VGG_MAX_CONV + (j))
#define MAX_STEPS 64
#define MAX_ARGS 6

/* True, with "what: oneDNN <status>" in err, when s is a failure. */
bool engine_dnnl_failed(dnnl_status_t s, const char *what, char *err, size_t errlen);

/* Runs a oneDNN call; on failure writes the message into err and jumps to the caller's
 * `fail:` label. */
#define CHECK(call, what, err, errlen)                                                        \
    do {                                                                                      \
        if (engine_dnnl_failed((call), (what), (err), (errlen))) goto fail;                   \
    } while (0)

/* ---------------------------------------------------------------- the model */


/* One layer's weights in one primitive format. fc1 in flat mode also records the pool5
 * layout its rows were permuted to, since that is part of what makes the bytes right. */
typedef struct weight_variant {
    dnnl_memory_desc_t md;
    dnnl_memory_desc_t row_layout; /* zeroed unless fc1 flat */
    void *data;
    size_t bytes;
    struct weight_variant *next;
} weight_variant;

struct vgg_model {
    vgg_config cfg;
    vgg_model_options opt;
    dnnl_engine_t eng;
    const vgg_weights *src; /* borrowed; NULL after release */
    pthread_mutex_t lock;   /* guards variants and src */
    weight_variant *variants[N_LAYERS];
    float *bias[N_LAYERS];  /* plain copies: tiny, and the source may be released */
    /* int8 only (NULL otherwise), per output channel of layer l:
     *   w_scale   127 / max|w[oc]|: weights are stored as round(w * w_scale)
     *   out_scale s_out / (s_in * w_scale): what oneDNN multiplies the s32 accumulator by
     *   bias_q    b * s_in * w_scale: oneDNN 2.x adds the bias before the output scale
     * act_scale[l] = 255 / calibrated max of layer l's (post-ReLU) output: u8 = x * act_scale
 *   (INT8_WINOGRAD_SRC_MAX instead of 255 where the next layer is an int8 Winograd conv). */
    float *w_scale[N_LAYERS], *out_scale[N_LAYERS], *bias_q[N_LAYERS];
    float act_scale[N_LAYERS];
};

void *alloc_aligned(size_t bytes);
/* Layer `layer`'s weights in format md (made on first request), or NULL with err. */
void *model_weights(vgg_model *m, int layer, const dnnl_memory_desc_t *md,
                    const dnnl_memory_desc_t *row_layout, char *err, size_t errlen);
int input_layer(const vgg_config *c, int l);
bool layer_is_int8(const vgg_model *m, int l);
bool layer_runs_winograd(const vgg_model *m, int l);

/* ---------------------------------------------------------------- plans */

/* ---------------------------------------------------------------- plans */

/* Where an argument's bytes live. The slots before N_SLOTS are the engine's own buffers,
 * shared by all of its plans and grown to fit the largest: activations ping-pong between
 * BUF0 and BUF1, and each tensor only an explain plan keeps has a slot of its own. The rest
 * are the caller's input, the engine's outputs and, never moved, weights (AT_EXTERNAL). */
enum {
    AT_BUF0,
    AT_BUF1,
    AT_SCRATCH,
    /* explain plans only */
    AT_PLAIN_A,     /* the last convolution's output (A), plain f32 NCHW, for the map */
    AT_DIFF_LOGITS, /* d logit_c / d logits: one-hot rows, plain f32 */
    AT_GRAD0,       /* gradients ping-pong, each in its forward tensor's layout */
    AT_GRAD1,
    AT_CHANNEL_G,   /* d logit_c / d A summed over each channel's positions: (N, C) f32 */
    N_SLOTS,
    AT_INPUT = N_SLOTS,
    AT_LOGITS,
    AT_PROBS,
    AT_EXTERNAL
};

typedef struct {
    int arg;   /* DNNL_ARG_* */
    int where; /* AT_* */
    dnnl_memory_desc_t md;
    void *ptr; /* AT_EXTERNAL only */
} pending_arg;

typedef struct {
    dnnl_primitive_t prim;
    int n_args;
    dnnl_exec_arg_t args[MAX_ARGS];
    int where[MAX_ARGS]; /* AT_*: which buffer the handle is pointed at before each run */
    int layer;           /* conv/fc index, or -1 */
    int dst;             /* index of the DST argument, or -1 */
    char desc[192];
} plan_step;

/* The primitives for one batch size. Buffers are the engine's: plans run one at a time on a
 * worker, so every plan shares the engine's activation, scratchpad and output buffers, sized
 * for the largest plan built so far. */
typedef struct {
    bool ready;
    int n_steps;
    int n_forward_steps; /* explain plans: steps before the host picks each image's class */
    plan_step steps[MAX_STEPS];
    size_t slot_bytes[N_SLOTS]; /* what this plan needs of the engine's buffers */
} plan;

struct vgg_engine {
    vgg_model *model;
    int n_threads;
    dnnl_stream_t stream;
    plan *plans;             /* [max_batch + 1], built on first use */
    plan *explain_plans;     /* the same for explanations; made on first use, with: */
    int *explain_classes;    /* [max_batch]: each image's class in the current explanation */
    void *slot[N_SLOTS];     /* AT_BUF0 ... : buffers shared by all plans */
    size_t slot_bytes[N_SLOTS];
    float *logits, *probs;   /* (max_batch, n_classes) plain */
};

/* An activation between two steps: its layout and which buffer holds it. Each push_* takes the
 * current one and leaves its output in its place, so the graph reads as a chain. */
typedef struct {
    dnnl_memory_desc_t md;
    int at; /* AT_* */
} activation;

/* A step before its primitive exists: what prepare needs to size the buffers, create the
 * primitive and its memories, and describe it. Owns pd until prepare destroys it. */
typedef struct {
    dnnl_primitive_desc_t pd;
    int n_args;
    pending_arg args[MAX_ARGS];
    int layer; /* conv/fc index (VGG_N_LAYERS numbering) or -1 */
    char name[24];
} pending_step;

typedef struct {
    int n_steps, n_forward_steps;
    pending_step steps[MAX_STEPS];
} pending_plan;

/* What an explain plan's backward steps take from its forward ones, noted as the forward is
 * built: each inner product's primitive (the hint for its backward) with its input as the
 * primitive reads it, and its output. The pds are borrowed from the pending steps. */
typedef struct {
    dnnl_primitive_desc_t fc_pd[VGG_N_FC];
    activation fc_src[VGG_N_FC], fc_dst[VGG_N_FC];
} explain_marks;

/* What every push_* reads: the model, the batch size, the plan being built, where errors go. */
typedef struct {
    vgg_model *m;
    const vgg_config *c;
    int n;
    pending_plan *pp;
    dnnl_primitive_attr_t attr_plain; /* scratchpad mode only: pools, softmax, layout probes */
    explain_marks *marks;             /* explain plans only, else NULL */
    char *err;
    size_t errlen;
} plan_builder;

/* engine_plan.c: the steps every graph builder uses. */
pending_arg pa(int arg, int where, const dnnl_memory_desc_t *md, void *ptr);
int other_buf(int at);
activation push_step(pending_plan *pp, dnnl_primitive_desc_t pd, const char *name, int layer,
                     const pending_arg *args, int n_args);
const dnnl_memory_desc_t *q(dnnl_primitive_desc_t pd, dnnl_query_t what);
dnnl_primitive_attr_t make_attr(bool relu);
/* Appends a reorder of *x into `to` at slot to_at (scaled at an int8 precision boundary) and
 * makes it current. */
dnnl_status_t push_reorder(pending_plan *pp, dnnl_engine_t eng, activation *x,
                           const dnnl_memory_desc_t *to, int to_at, float scale, const char *name);
/* The prepared plan for n images (explain or forward), built on first use; NULL with err. */
plan *prepared_plan(vgg_engine *e, int n, bool explain, char *err, size_t errlen);
void plan_free(plan *p);
char *describe_plan(const plan *p);

/* engine_explain.c: the backward steps appended to an explain plan's forward ones. */
int push_explain_backward(plan_builder *b);
/* Appends a copy of x, plain f32 NCHW, into slot `at` (the map's A); x stays current. */
int push_plain_copy(plan_builder *b, const activation *x, int at, const char *name);

/* engine_run.c */
int ensure_buffer(void **buf, size_t *have, size_t need);
int run_steps(vgg_engine *e, plan *p, int first, int end, const float *input,
              vgg_layer_observer observe, void *ctx, char *err, size_t errlen);

#endif
