/* engine.c - VGG on oneDNN: shared primitive-format weights, per-worker cached plans. */
#include "engine.h"

#include <dnnl.h>
#include <dnnl_debug.h>
#include <omp.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topk.h"

#define N_LAYERS (VGG_MAX_CONV + VGG_N_FC)
#define FC_LAYER(j) (VGG_MAX_CONV + (j))
#define MAX_STEPS 64
#define MAX_ARGS 6

#define CHECK(call, what)                                                                    \
    do {                                                                                     \
        dnnl_status_t s_ = (call);                                                           \
        if (s_ != dnnl_success) {                                                            \
            snprintf(err, errlen, "%s: oneDNN %s", (what), dnnl_status2str(s_));             \
            goto fail;                                                                       \
        }                                                                                    \
    } while (0)

/* ---------------------------------------------------------------- names */

const char *const vgg_algo_names[VGG_N_ALGOS + 1] = {"direct", "winograd", NULL};
const char *const vgg_precision_names[VGG_N_PRECISIONS + 1] = {"f32", "bf16", "int8", NULL};

int vgg_layer_set_parse(const char *s, uint32_t *out) {
    uint32_t set = 0;
    if (strcmp(s, "none") != 0) {
        while (*s) {
            size_t len = strcspn(s, ",");
            char name[16];
            int k, used = 0;
            if (len == 0 || len >= sizeof name) return -1;
            memcpy(name, s, len);
            name[len] = '\0';
            if (sscanf(name, "conv%d%n", &k, &used) == 1 && used == (int)len && k >= 1 &&
                k <= VGG_MAX_CONV)
                set |= 1u << (k - 1);
            else if (sscanf(name, "fc%d%n", &k, &used) == 1 && used == (int)len && k >= 1 &&
                     k <= VGG_N_FC)
                set |= 1u << (VGG_MAX_CONV + k - 1);
            else
                return -1;
            s += len;
            if (*s == ',' && *++s == '\0') return -1;
        }
    }
    *out = set;
    return 0;
}

const char *vgg_algo_name(vgg_algo a) {
    return (unsigned)a < VGG_N_ALGOS ? vgg_algo_names[a] : "unknown";
}
const char *vgg_precision_name(vgg_precision p) {
    return (unsigned)p < VGG_N_PRECISIONS ? vgg_precision_names[p] : "unknown";
}

/* ---------------------------------------------------------------- model */

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

static void *alloc_aligned(size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) return NULL;
    return p;
}

/* Runs a one-off reorder src -> dst on the calling thread. */
static int reorder_now(dnnl_engine_t eng, const dnnl_memory_desc_t *src_md, const void *src,
                       const dnnl_memory_desc_t *dst_md, void *dst,
                       const_dnnl_primitive_attr_t attr, char *err, size_t errlen) {
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t prim = NULL;
    dnnl_memory_t sm = NULL, dm = NULL;
    dnnl_stream_t stream = NULL;
    int rc = -1;
    CHECK(dnnl_reorder_primitive_desc_create(&pd, src_md, eng, dst_md, eng, attr), "weight reorder");
    CHECK(dnnl_primitive_create(&prim, pd), "weight reorder");
    CHECK(dnnl_memory_create(&sm, src_md, eng, (void *)src), "weight reorder");
    CHECK(dnnl_memory_create(&dm, dst_md, eng, dst), "weight reorder");
    CHECK(dnnl_stream_create(&stream, eng, dnnl_stream_default_flags), "weight reorder");
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, sm}, {DNNL_ARG_TO, dm}};
    CHECK(dnnl_primitive_execute(prim, stream, 2, args), "weight reorder");
    CHECK(dnnl_stream_wait(stream), "weight reorder");
    rc = 0;
fail:
    if (stream) dnnl_stream_destroy(stream);
    if (sm) dnnl_memory_destroy(sm);
    if (dm) dnnl_memory_destroy(dm);
    if (prim) dnnl_primitive_destroy(prim);
    if (pd) dnnl_primitive_desc_destroy(pd);
    return rc;
}

static bool md_equal_or_both_zero(const dnnl_memory_desc_t *a, const dnnl_memory_desc_t *b) {
    if (a->ndims == 0 || b->ndims == 0) return a->ndims == b->ndims;
    return dnnl_memory_desc_equal(a, b);
}

/* Makes the layer's weights in format `md` from the plain source (OIHW / OI). */
/* Attributes quantising f32 weights to s8 with one scale per output channel (dim 0). */
static dnnl_primitive_attr_t weight_quant_attr(const vgg_model *m, int layer, const dnnl_memory_desc_t *md) {
    if (md->data_type != dnnl_s8) return NULL;
    dnnl_primitive_attr_t attr;
    dnnl_primitive_attr_create(&attr);
    dnnl_primitive_attr_set_output_scales(attr, md->dims[0], 1 << 0, m->w_scale[layer]);
    return attr;
}

/* fc1's weights summed over each input channel's positions, (O, C) plain f32, as explain
 * plans read them: fold[o][k] = sum over p of W[o][k * H * W + p], W in torch's (C, H, W)
 * order. Grad-CAM needs d logit_c / d A only through alpha_k, its mean over channel k, and
 * pool5's backward moves each gradient within its channel; so alpha_k is (fold^T x d/d fc1's
 * output)_k / (A's H x W), and the backward reads these 8 MB instead of fc1's 400. */
static int fold_fc1_channels(const vgg_config *c, const float *w, const dnnl_memory_desc_t *md,
                             float *fold, char *err, size_t errlen) {
    const int channels = c->final_channels, positions = c->final_hw * c->final_hw;
    const dnnl_blocking_desc_t *blk = &md->format_desc.blocking;
    if (md->data_type != dnnl_f32 || md->dims[0] != c->fc_out[0] || blk->inner_nblks != 0 ||
        blk->strides[1] != 1) {
        snprintf(err, errlen, "fc1's channel sums are made in f32 only");
        return -1;
    }
    for (int64_t o = 0; o < c->fc_out[0]; o++)
        for (int k = 0; k < channels; k++) {
            const float *row = w + (o * channels + k) * positions;
            double sum = 0;
            for (int p = 0; p < positions; p++) sum += row[p];
            fold[o * channels + k] = (float)sum;
        }
    return 0;
}

static int make_variant(vgg_model *m, int layer, weight_variant *v, char *err, size_t errlen) {
    const vgg_config *c = &m->cfg;
    const vgg_weights *w = m->src;
    dnnl_memory_desc_t user;
    const float *data;
    dnnl_primitive_attr_t quant = weight_quant_attr(m, layer, &v->md);
    int rc;
    if (layer < VGG_MAX_CONV) {
        dnnl_dims_t d = {c->conv_out[layer], c->conv_in[layer], 3, 3};
        dnnl_memory_desc_init_by_tag(&user, 4, d, dnnl_f32, dnnl_oihw);
        data = w->conv_w[layer];
    } else if (layer == FC_LAYER(0) && v->md.ndims == 2 && v->md.dims[1] == c->final_channels &&
               c->final_hw > 1) {
        if (quant) dnnl_primitive_attr_destroy(quant);
        return fold_fc1_channels(c, w->fc_w[0], &v->md, v->data, err, errlen);
    } else if (layer == FC_LAYER(0) && v->md.ndims == 4) {
        dnnl_dims_t d = {c->fc_out[0], c->final_channels, c->final_hw, c->final_hw};
        dnnl_memory_desc_init_by_tag(&user, 4, d, dnnl_f32, dnnl_oihw);
        data = w->fc_w[0];
    } else if (layer == FC_LAYER(0) && v->row_layout.ndims == 4) {
        /* Flat fc1: permute each row from (C, H, W) to the order pool5's layout stores one
         * image in, then hand the (O, K) matrix to the inner product's own format. */
        dnnl_dims_t d = {c->fc_out[0], c->final_channels, c->final_hw, c->final_hw};
        dnnl_memory_desc_init_by_tag(&user, 4, d, dnnl_f32, dnnl_oihw);
        size_t bytes = dnnl_memory_desc_get_size(&v->row_layout);
        float *rows = alloc_aligned(bytes);
        if (!rows) {
            snprintf(err, errlen, "out of memory permuting fc1 weights");
            if (quant) dnnl_primitive_attr_destroy(quant);
            return -1;
        }
        dnnl_memory_desc_t flat;
        dnnl_dims_t d2 = {c->fc_out[0], c->fc_in[0]};
        dnnl_memory_desc_init_by_tag(&flat, 2, d2, dnnl_f32, dnnl_ab);
        rc = reorder_now(m->eng, &user, w->fc_w[0], &v->row_layout, rows, NULL, err, errlen);
        if (rc == 0) rc = reorder_now(m->eng, &flat, rows, &v->md, v->data, quant, err, errlen);
        free(rows);
        if (quant) dnnl_primitive_attr_destroy(quant);
        return rc;
    } else {
        int j = layer - VGG_MAX_CONV;
        dnnl_dims_t d = {c->fc_out[j], c->fc_in[j]};
        dnnl_memory_desc_init_by_tag(&user, 2, d, dnnl_f32, dnnl_ab);
        data = w->fc_w[j];
    }
    rc = reorder_now(m->eng, &user, data, &v->md, v->data, quant, err, errlen);
    if (quant) dnnl_primitive_attr_destroy(quant);
    return rc;
}

/* Returns the layer's weights in format md (made on first request), or NULL with err. */
static void *model_weights(vgg_model *m, int layer, const dnnl_memory_desc_t *md,
                           const dnnl_memory_desc_t *row_layout, char *err, size_t errlen) {
    dnnl_memory_desc_t no_layout;
    memset(&no_layout, 0, sizeof no_layout);
    if (!row_layout) row_layout = &no_layout;
    pthread_mutex_lock(&m->lock);
    weight_variant *v;
    for (v = m->variants[layer]; v; v = v->next)
        if (dnnl_memory_desc_equal(&v->md, md) && md_equal_or_both_zero(&v->row_layout, row_layout))
            break;
    if (!v && !m->src) {
        snprintf(err, errlen, "layer %d wants a weight format not prepared before the source "
                 "weights were released (warm up every batch size first)", layer);
    } else if (!v) {
        v = calloc(1, sizeof *v);
        v->md = *md;
        v->row_layout = *row_layout;
        v->bytes = dnnl_memory_desc_get_size(md);
        v->data = alloc_aligned(v->bytes);
        if (!v->data) {
            snprintf(err, errlen, "out of memory for layer %d weights", layer);
            free(v);
            v = NULL;
        } else if (make_variant(m, layer, v, err, errlen) != 0) {
            free(v->data);
            free(v);
            v = NULL;
        } else {
            v->next = m->variants[layer];
            m->variants[layer] = v;
        }
    }
    pthread_mutex_unlock(&m->lock);
    return v ? v->data : NULL;
}

/* The layer that feeds layer l (its input's scale is that layer's act_scale). */
static int input_layer(const vgg_config *c, int l) {
    if (l < VGG_MAX_CONV) return l - 1;
    return l == FC_LAYER(0) ? c->n_conv - 1 : l - 1;
}

static bool layer_exists(const vgg_config *c, int l) {
    return l < VGG_MAX_CONV ? l < c->n_conv : true;
}

/* int8 runs every layer in u8 x s8 except the first convolution (3 input channels: little
 * to gain, and the normalised image is signed) and the layers the options keep in f32. */
static bool layer_is_int8(const vgg_model *m, int l) {
    return m->opt.precision == VGG_PRECISION_INT8 && l != 0 &&
           !(m->opt.int8_float_layers >> l & 1u);
}

/* int8 Winograd (oneDNN 2.6's jit_avx512_core_u8s8s32x_wino_convolution, F(2x2, 3x3)) on
 * layers with at least this many input channels. Measured at batch 8 on 2 cores against the
 * direct VNNI kernel (build/bench_conv_layers --kinds int8, min of 8, ms direct / Winograd):
 * 128->256 at 56x56 16.3 / 18.8, 256->256 at 56x56 32.0 / 26.2, 256->512 at 28x28
 * 15.7 / 11.7, 512->512 at 28x28 31.5 / 21.4, 512->512 at 14x14 7.4 / 5.1; it loses on the
 * layers of fewer channels at 112x112 (16.6 / 46.3, 32.6 / 49.2). In VGG16: conv3_2 to conv5_3. */
#define INT8_WINOGRAD_MIN_IN_CHANNELS 256

/* The u8 value a calibrated range maps to when the layer's output feeds an int8 Winograd
 * convolution, instead of 255. That kernel first scales its u8 source by 1/4 (rounding to
 * nearest: 0..255 -> 0..64), then runs the 4x4 input transform (sums and differences of four
 * values) in wrapping 8-bit arithmetic, which holds only while each scaled value is at most
 * 63: d0 - d2 - d8 + d10 with two values of 64 and two of 0 is 128, which wraps to -128.
 * Values past the calibrated range saturate to 255 (a Winograd layer fuses ReLU only, no
 * clip), so the range must leave headroom: at 192 (48 of the kernel's 64 steps) values up
 * to 1.32x the calibrated clip are exact. Measured on VGG16 (vggserve accuracy, 209 inputs,
 * relative logit error against f32): 255 0.172, 252 0.168, 224 0.131, 200 0.112, 184 0.109,
 * 160 0.112, 128 0.124 (where the coarser step costs more than the wraps it avoids). */
#define INT8_WINOGRAD_SRC_MAX 192.0f

/* Whether conv layer l runs Winograd. It pays where there are input channels to save
 * multiplications on: never for the 3-channel first convolution (direct: batch 8 7.9 ms
 * against 18.5), which int8 also keeps in f32.
 *   f32: every other layer.
 *   bf16: a Winograd layer is an f32 layer (oneDNN 2.6 has no bf16 Winograd), so it must also
 *     beat bf16's doubled arithmetic rate. Measured per layer at batch 8 (oneDNN alone,
 *     interleaved: build/bench_conv_layers), f32 Winograd against bf16 direct took
 *     16.6/28.8/13.7/30.4 ms against 18.9/37.2/17.7/35.3 for 128->256 and 256->256 at 56x56
 *     and 256->512 and 512->512 at 28x28, tied at 14x14 (8.4 against 8.5), and lost where
 *     channels are few and images large (45.6/22.5/38.6 against 38.1/18.8/36.7 for conv1_2 to
 *     conv2_2). So bf16 + Winograd runs layers with at least 128 input channels at 56x56 or
 *     less in f32 Winograd, the rest in bf16.
 *   int8: oneDNN's u8 x s8 Winograd (jit_int8_wino, F(2x2, 3x3)) on the int8 layers where
 *     it beats the direct VNNI kernel: INT8_WINOGRAD_MIN_IN_CHANNELS (see there). */
static bool layer_runs_winograd(const vgg_model *m, int l) {
    const vgg_config *c = &m->cfg;
    if (m->opt.algo != VGG_ALGO_WINOGRAD || l >= c->n_conv || c->conv_in[l] <= 3) return false;
    switch (m->opt.precision) {
    case VGG_PRECISION_F32: return true;
    case VGG_PRECISION_BF16: return c->conv_in[l] >= 128 && c->conv_hw[l] <= 56;
    case VGG_PRECISION_INT8:
        return layer_is_int8(m, l) && c->conv_in[l] >= INT8_WINOGRAD_MIN_IN_CHANNELS;
    default: return false;
    }
}

/* Per-channel weight scales, activation scales from calibration, prescaled biases. */
static int quant_init(vgg_model *m, const vgg_weights *w, char *err, size_t errlen) {
    const vgg_config *c = &m->cfg;
    if (!m->opt.act_max) {
        snprintf(err, errlen, "int8 needs calibrated activation ranges (vggserve calibrate)");
        return -1;
    }
    for (int l = 0; l < N_LAYERS; l++) {
        if (!layer_exists(c, l)) continue;
        float mx = m->opt.act_max[l];
        /* Layer l feeds layer l + 1 (a pool between keeps the scale). */
        float top = l + 1 < c->n_conv && layer_runs_winograd(m, l + 1) ? INT8_WINOGRAD_SRC_MAX
                                                                        : 255.0f;
        m->act_scale[l] = mx > 0 ? top / mx : 1.0f;
    }
    for (int l = 0; l < N_LAYERS; l++) {
        if (!layer_exists(c, l) || !layer_is_int8(m, l)) continue;
        int out = l < VGG_MAX_CONV ? c->conv_out[l] : c->fc_out[l - VGG_MAX_CONV];
        int64_t per = l < VGG_MAX_CONV ? (int64_t)c->conv_in[l] * 9 : c->fc_in[l - VGG_MAX_CONV];
        const float *wt = l < VGG_MAX_CONV ? w->conv_w[l] : w->fc_w[l - VGG_MAX_CONV];
        m->w_scale[l] = malloc(out * sizeof(float));
        m->out_scale[l] = malloc(out * sizeof(float));
        m->bias_q[l] = malloc(out * sizeof(float));
        float s_in = m->act_scale[input_layer(c, l)];
        /* The logits leave in f32: no output quantisation for the last layer. */
        float s_out = l == FC_LAYER(2) ? 1.0f : m->act_scale[l];
        for (int o = 0; o < out; o++) {
            float mx = 0;
            for (int64_t k = 0; k < per; k++) mx = fmaxf(mx, fabsf(wt[o * per + k]));
            m->w_scale[l][o] = mx > 0 ? 127.0f / mx : 1.0f;
            m->out_scale[l][o] = s_out / (s_in * m->w_scale[l][o]);
            m->bias_q[l][o] = m->bias[l][o] * s_in * m->w_scale[l][o];
        }
    }
    (void)err;
    (void)errlen;
    return 0;
}

vgg_model *vgg_model_create(const vgg_weights *weights, const vgg_model_options *opt, char *err,
                            size_t errlen) {
    vgg_model *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    m->cfg = weights->cfg;
    m->opt = *opt;
    if (m->opt.max_batch < 1) m->opt.max_batch = 1;
    m->src = weights;
    pthread_mutex_init(&m->lock, NULL);
    CHECK(dnnl_engine_create(&m->eng, dnnl_cpu, 0), "creating the CPU engine");
    for (int i = 0; i < m->cfg.n_conv; i++) {
        m->bias[i] = malloc(m->cfg.conv_out[i] * sizeof(float));
        memcpy(m->bias[i], weights->conv_b[i], m->cfg.conv_out[i] * sizeof(float));
    }
    for (int j = 0; j < VGG_N_FC; j++) {
        m->bias[FC_LAYER(j)] = malloc(m->cfg.fc_out[j] * sizeof(float));
        memcpy(m->bias[FC_LAYER(j)], weights->fc_b[j], m->cfg.fc_out[j] * sizeof(float));
    }
    if (m->opt.precision == VGG_PRECISION_INT8 && quant_init(m, weights, err, errlen) != 0)
        goto fail;
    return m;
fail:
    vgg_model_free(m);
    return NULL;
}

const vgg_config *vgg_model_config(const vgg_model *m) { return &m->cfg; }
const vgg_model_options *vgg_model_get_options(const vgg_model *m) { return &m->opt; }

void vgg_model_release_source(vgg_model *m) {
    pthread_mutex_lock(&m->lock);
    m->src = NULL;
    pthread_mutex_unlock(&m->lock);
}

size_t vgg_model_weight_bytes(const vgg_model *m) {
    size_t total = 0;
    pthread_mutex_lock((pthread_mutex_t *)&m->lock);
    for (int l = 0; l < N_LAYERS; l++)
        for (weight_variant *v = m->variants[l]; v; v = v->next) total += v->bytes;
    pthread_mutex_unlock((pthread_mutex_t *)&m->lock);
    return total;
}

void vgg_model_free(vgg_model *m) {
    if (!m) return;
    for (int l = 0; l < N_LAYERS; l++) {
        for (weight_variant *v = m->variants[l], *next; v; v = next) {
            next = v->next;
            free(v->data);
            free(v);
        }
        free(m->bias[l]);
        free(m->w_scale[l]);
        free(m->out_scale[l]);
        free(m->bias_q[l]);
    }
    if (m->eng) dnnl_engine_destroy(m->eng);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

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

/* Grows a buffer to at least `need` bytes (contents are not kept). */
static int ensure_buffer(void **buf, size_t *have, size_t need) {
    if (*have >= need && *buf) return 0;
    free(*buf);
    *buf = alloc_aligned(need);
    *have = *buf ? need : 0;
    return *buf ? 0 : -1;
}

/* A short format name for a memory desc: "aBcd16b", "wino", "ab". */
static void md_format_str(const dnnl_memory_desc_t *md, char *buf, size_t len) {
    if (md->format_kind != dnnl_blocked) {
        snprintf(buf, len, "%s", dnnl_fmt_kind2str(md->format_kind));
        return;
    }
    const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
    int order[DNNL_MAX_NDIMS], nd = md->ndims, used = 0;
    for (int i = 0; i < nd; i++) order[i] = i;
    for (int i = 0; i < nd; i++) /* outermost (largest stride) first */
        for (int j = i + 1; j < nd; j++)
            if (b->strides[order[j]] > b->strides[order[i]]) {
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
    for (int i = 0; i < nd && used + 2 < (int)len; i++) {
        bool blocked = false;
        for (int k = 0; k < b->inner_nblks; k++) blocked |= b->inner_idxs[k] == order[i];
        buf[used++] = (char)((blocked ? 'A' : 'a') + order[i]);
    }
    buf[used] = '\0';
    for (int k = 0; k < b->inner_nblks; k++)
        used += snprintf(buf + used, len - used, "%lld%c", (long long)b->inner_blks[k],
                         (char)('a' + b->inner_idxs[k]));
}

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

static pending_arg pa(int arg, int where, const dnnl_memory_desc_t *md, void *ptr) {
    pending_arg a = {arg, where, *md, ptr};
    return a;
}

/* The ping-pong buffer an activation at `at` is not in (the caller's input counts as neither). */
static int other_buf(int at) { return at == AT_BUF0 ? AT_BUF1 : AT_BUF0; }

/* Which of a step's arguments is its output: DIFF_SRC in a backward step (where DST, if any,
 * is an input), else DST, or a reorder's TO. -1 if none. */
static int output_arg(const pending_arg *args, int n) {
    int out = -1;
    for (int a = 0; a < n && out < 0; a++)
        if (args[a].arg == DNNL_ARG_DIFF_SRC) out = a;
    for (int a = 0; a < n && out < 0; a++)
        if (args[a].arg == DNNL_ARG_DST || args[a].arg == DNNL_ARG_TO) out = a;
    return out;
}

/* Appends a step, taking pd, and returns its output for the next step to read (output_arg).
 * The scratchpad argument is added from the pd. */
static activation push_step(pending_plan *pp, dnnl_primitive_desc_t pd, const char *name,
                            int layer, const pending_arg *args, int n) {
    pending_step *s = &pp->steps[pp->n_steps++];
    s->pd = pd;
    s->layer = layer;
    snprintf(s->name, sizeof s->name, "%s", name);
    memcpy(s->args, args, n * sizeof *args);
    const dnnl_memory_desc_t *sp = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (sp && dnnl_memory_desc_get_size(sp) > 0) s->args[n++] = pa(DNNL_ARG_SCRATCHPAD, AT_SCRATCH, sp, NULL);
    s->n_args = n;
    activation out;
    memset(&out, 0, sizeof out);
    const int o = output_arg(s->args, n);
    if (o >= 0) {
        out.md = s->args[o].md;
        out.at = s->args[o].where;
    }
    return out;
}

static const dnnl_memory_desc_t *q(dnnl_primitive_desc_t pd, dnnl_query_t what) {
    return dnnl_primitive_desc_query_md(pd, what, 0);
}

/* Attributes every primitive shares: user-managed scratchpad (so concurrent engines never
 * share library scratch memory) and, optionally, a fused ReLU. */
static dnnl_primitive_attr_t make_attr(bool relu) {
    dnnl_primitive_attr_t attr;
    dnnl_primitive_attr_create(&attr);
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (relu) {
        dnnl_post_ops_t po;
        dnnl_post_ops_create(&po);
        dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f);
        dnnl_primitive_attr_set_post_ops(attr, po);
        dnnl_post_ops_destroy(po);
    }
    return attr;
}

/* Appends a reorder of the activation *x into `to` at slot to_at, and makes it current. At a
 * precision boundary of an int8 model the reorder also scales: u8 = x * scale going in,
 * x = u8 / scale coming out (oneDNN copies the scale). */
static dnnl_status_t push_reorder(pending_plan *pp, dnnl_engine_t eng, activation *x,
                                  const dnnl_memory_desc_t *to, int to_at, float scale,
                                  const char *name) {
    dnnl_primitive_attr_t attr = make_attr(false);
    const dnnl_data_type_t from_type = x->md.data_type;
    float s = to->data_type == dnnl_u8 && from_type != dnnl_u8   ? scale
              : from_type == dnnl_u8 && to->data_type != dnnl_u8 ? 1.0f / scale
                                                                 : 1.0f;
    if (s != 1.0f) dnnl_primitive_attr_set_output_scales(attr, 1, 0, &s);
    dnnl_primitive_desc_t rpd;
    dnnl_status_t rs = dnnl_reorder_primitive_desc_create(&rpd, &x->md, eng, to, eng, attr);
    dnnl_primitive_attr_destroy(attr);
    if (rs != dnnl_success) return rs;
    pending_arg ra[2] = {pa(DNNL_ARG_FROM, x->at, &x->md, NULL),
                         pa(DNNL_ARG_TO, to_at, to, NULL)};
    *x = push_step(pp, rpd, name, -1, ra, 2);
    return dnnl_success;
}

/* A conv or inner product's attributes: ReLU, and for int8 the per-channel output scales. */
static dnnl_primitive_attr_t layer_attr(const vgg_model *m, int l, bool relu, int out) {
    dnnl_primitive_attr_t attr = make_attr(relu);
    if (layer_is_int8(m, l)) dnnl_primitive_attr_set_output_scales(attr, out, 1 << 1, m->out_scale[l]);
    return attr;
}

/* Layer l's bias as its primitive reads it: prescaled in int8 layers, plain elsewhere. */
static void *layer_bias(const vgg_model *m, int l) { return m->bias_q[l] ? m->bias_q[l] : m->bias[l]; }

/* Data types of layer l: {src, weights, dst}. bf16: activations and weights in bf16 (f32
 * accumulation inside oneDNN), except its Winograd layers, which are f32; int8: u8
 * activations and s8 weights (s32 accumulation), Winograd or direct alike. Biases, the
 * caller's input, the logits and the probabilities stay f32. */
static void layer_types(const vgg_model *m, int l, dnnl_data_type_t t[3]) {
    const bool last = l == FC_LAYER(2);
    if (layer_is_int8(m, l)) {
        t[0] = dnnl_u8;
        t[1] = dnnl_s8;
        t[2] = last ? dnnl_f32 : dnnl_u8;
    } else if (m->opt.precision == VGG_PRECISION_BF16 && !layer_runs_winograd(m, l)) {
        t[0] = t[1] = dnnl_bf16;
        t[2] = last ? dnnl_f32 : dnnl_bf16;
    } else {
        t[0] = t[1] = t[2] = dnnl_f32;
        /* int8 model, f32 layer: the next layer reads u8, which a scaled reorder makes. */
    }
}

/* Layer i's 3x3, pad 1 convolution for n images with data types t: every memory format
 * `any` (oneDNN picks), except the destination when dst is given. */
static dnnl_status_t conv_desc(const vgg_config *c, int i, int n, const dnnl_data_type_t t[3],
                               dnnl_alg_kind_t alg, const dnnl_memory_desc_t *dst,
                               dnnl_convolution_desc_t *cd) {
    int hw = c->conv_hw[i];
    dnnl_memory_desc_t src_any, w_any, bias, dst_any;
    dnnl_dims_t sd = {n, c->conv_in[i], hw, hw}, wd = {c->conv_out[i], c->conv_in[i], 3, 3},
                bd = {c->conv_out[i]}, dd = {n, c->conv_out[i], hw, hw};
    dnnl_memory_desc_init_by_tag(&src_any, 4, sd, t[0], dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&w_any, 4, wd, t[1], dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&bias, 1, bd, dnnl_f32, dnnl_x);
    if (dst) dst_any = *dst;
    else dnnl_memory_desc_init_by_tag(&dst_any, 4, dd, t[2], dnnl_format_tag_any);
    dnnl_dims_t strides = {1, 1}, pad = {1, 1};
    return dnnl_convolution_forward_desc_init(cd, dnnl_forward_inference, alg, &src_any, &w_any,
                                              &bias, &dst_any, strides, pad, pad);
}

/* fc1 can read pool5's output as a flat (N, C*H*W) matrix when each image is one dense,
 * unpadded run of memory, which holds for plain and channel-blocked layouts. */
static bool flat_compatible(const dnnl_memory_desc_t *md) {
    if (md->format_kind != dnnl_blocked || md->offset0 != 0) return false;
    dnnl_dim_t per_image = 1;
    for (int d = 1; d < md->ndims; d++) {
        if (md->padded_dims[d] != md->dims[d]) return false;
        per_image *= md->dims[d];
    }
    const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
    for (int k = 0; k < b->inner_nblks; k++)
        if (b->inner_idxs[k] == 0) return false;
    return b->strides[0] == per_image;
}

/* ---------------------------------------------------------------- the graph, layer by layer */

/* The source layout Winograd convolution i+1 will read, when a direct f32 convolution i comes
 * before it (the first convolution of f32 Winograd): i then writes it straight away instead
 * of needing a reorder between the two. False where that does not apply or Winograd has no
 * kernel for i+1. */
static bool conv_winograd_next_src(const plan_builder *b, int i, const dnnl_data_type_t t[3],
                                   dnnl_memory_desc_t *out) {
    vgg_model *m = b->m;
    if (layer_runs_winograd(m, i) || !layer_runs_winograd(m, i + 1) || t[2] != dnnl_f32 ||
        b->c->pool_after[i])
        return false;
    static const dnnl_data_type_t f32[3] = {dnnl_f32, dnnl_f32, dnnl_f32};
    dnnl_convolution_desc_t ncd;
    dnnl_primitive_desc_t npd = NULL;
    conv_desc(b->c, i + 1, b->n, f32, dnnl_convolution_winograd, NULL, &ncd);
    if (dnnl_primitive_desc_create(&npd, &ncd, b->attr_plain, m->eng, NULL) != dnnl_success)
        return false;
    *out = *q(npd, dnnl_query_src_md);
    dnnl_primitive_desc_destroy(npd);
    return true;
}

/* Convolution i's primitive: Winograd where layer_runs_winograd says so and oneDNN has a
 * kernel for the shape, else direct (writing dst_fixed when given). */
static dnnl_status_t conv_pd_create(const plan_builder *b, int i, const dnnl_data_type_t t[3],
                                    const dnnl_memory_desc_t *dst_fixed,
                                    dnnl_primitive_desc_t *pd /* out */) {
    vgg_model *m = b->m;
    dnnl_primitive_attr_t attr = layer_attr(m, i, true, b->c->conv_out[i]);
    dnnl_convolution_desc_t cd;
    dnnl_status_t st = dnnl_unimplemented;
    *pd = NULL;
    if (layer_runs_winograd(m, i)) {
        conv_desc(b->c, i, b->n, t, dnnl_convolution_winograd, NULL, &cd);
        st = dnnl_primitive_desc_create(pd, &cd, attr, m->eng, NULL);
    }
    if (st != dnnl_success) { /* direct, or Winograd has no kernel for this shape */
        st = conv_desc(b->c, i, b->n, t, dnnl_convolution_direct, dst_fixed, &cd);
        if (st == dnnl_success) st = dnnl_primitive_desc_create(pd, &cd, attr, m->eng, NULL);
    }
    dnnl_primitive_attr_destroy(attr);
    return st;
}

/* Convolution i, 3x3 pad 1, its ReLU fused; preceded by a reorder when the primitive wants
 * another source layout (or, in int8, data type).
 * {N, C_in, H, W} -> {N, C_out, H, W} */
static int push_conv(plan_builder *b, int i, activation *x) {
    vgg_model *m = b->m;
    char *err = b->err;
    size_t errlen = b->errlen;
    dnnl_data_type_t t[3];
    dnnl_memory_desc_t next_src, bias;
    dnnl_primitive_desc_t pd = NULL;
    char what[24];
    snprintf(what, sizeof what, "conv%d", i + 1);
    layer_types(m, i, t);
    const bool fixed = conv_winograd_next_src(b, i, t, &next_src);
    CHECK(conv_pd_create(b, i, t, fixed ? &next_src : NULL, &pd), what);
    const dnnl_memory_desc_t *want_src = q(pd, dnnl_query_src_md);
    if (!dnnl_memory_desc_equal(want_src, &x->md)) {
        /* The input reorder (and any layout change the primitives insist on). In int8 the
         * f32 output of the first convolution is quantised to u8 here. */
        CHECK(push_reorder(b->pp, m->eng, x, want_src, other_buf(x->at),
                           i ? m->act_scale[i - 1] : 1.0f, i ? "reorder" : "reorder_input"),
              "reorder");
    }
    const dnnl_memory_desc_t *wmd = q(pd, dnnl_query_weights_md);
    void *wp = model_weights(m, i, wmd, NULL, err, errlen);
    if (!wp) goto fail;
    dnnl_dims_t bd = {b->c->conv_out[i]};
    dnnl_memory_desc_init_by_tag(&bias, 1, bd, dnnl_f32, dnnl_x);
    pending_arg args[4] = {pa(DNNL_ARG_SRC, x->at, &x->md, NULL),
                           pa(DNNL_ARG_WEIGHTS, AT_EXTERNAL, wmd, wp),
                           pa(DNNL_ARG_BIAS, AT_EXTERNAL, &bias, layer_bias(m, i)),
                           pa(DNNL_ARG_DST, other_buf(x->at), q(pd, dnnl_query_dst_md), NULL)};
    *x = push_step(b->pp, pd, what, i, args, 4);
    return 0;
fail:
    if (pd) dnnl_primitive_desc_destroy(pd);
    return -1;
}

/* 2x2 max pool, stride 2, after convolution i; oneDNN picks the output layout.
 * {N, C, H, W} -> {N, C, H/2, W/2} */
static int push_pool(plan_builder *b, int i, activation *x) {
    char *err = b->err;
    size_t errlen = b->errlen;
    const vgg_config *c = b->c;
    dnnl_memory_desc_t dst;
    dnnl_dims_t od = {b->n, c->conv_out[i], c->conv_hw[i] / 2, c->conv_hw[i] / 2};
    dnnl_memory_desc_init_by_tag(&dst, 4, od, x->md.data_type, dnnl_format_tag_any);
    dnnl_dims_t k2 = {2, 2}, dil = {0, 0}, zero = {0, 0};
    dnnl_pooling_v2_desc_t pld;
    dnnl_primitive_desc_t pd = NULL;
    char what[32];
    snprintf(what, sizeof what, "pool_after_conv%d", i + 1);
    CHECK(dnnl_pooling_v2_forward_desc_init(&pld, dnnl_forward_inference, dnnl_pooling_max,
                                            &x->md, &dst, k2, k2, dil, zero, zero),
          what);
    CHECK(dnnl_primitive_desc_create(&pd, &pld, b->attr_plain, b->m->eng, NULL), what);
    pending_arg args[2] = {pa(DNNL_ARG_SRC, x->at, &x->md, NULL),
                           pa(DNNL_ARG_DST, other_buf(x->at), q(pd, dnnl_query_dst_md), NULL)};
    *x = push_step(b->pp, pd, "maxpool", -1, args, 2);
    return 0;
fail:
    return -1;
}

/* fc j's source and weights descriptors for its input x. fc1 reads pool5's output either as
 * a flat (N, C*H*W) matrix (returns true, and row_layout is the pool5 layout its weight rows
 * are permuted to) or as the 4-D tensor it is; fc2 and fc3 read (N, K). */
static bool fc_input_descs(const plan_builder *b, int j, dnnl_data_type_t wt,
                           const dnnl_memory_desc_t *x, dnnl_memory_desc_t *src /* out */,
                           dnnl_memory_desc_t *w_any /* out */,
                           dnnl_memory_desc_t *row_layout /* out */) {
    const vgg_config *c = b->c;
    *src = *x;
    memset(row_layout, 0, sizeof *row_layout);
    if (j != 0) {
        dnnl_dims_t wd = {c->fc_out[j], c->fc_in[j]};
        dnnl_memory_desc_init_by_tag(w_any, 2, wd, wt, dnnl_format_tag_any);
        return false;
    }
    if (b->m->opt.fc1_layout != VGG_FC1_FLAT || !flat_compatible(x)) {
        dnnl_dims_t wd = {c->fc_out[0], c->final_channels, c->final_hw, c->final_hw};
        dnnl_memory_desc_init_by_tag(w_any, 4, wd, wt, dnnl_format_tag_any);
        return false;
    }
    dnnl_dims_t d2 = {b->n, c->fc_in[0]};
    dnnl_memory_desc_init_by_tag(src, 2, d2, x->data_type, dnnl_ab);
    /* Weights rows laid out like one pool5 image: the same desc with N -> O, in f32 since it
     * only holds the permuted plain weights on their way. */
    *row_layout = *x;
    row_layout->dims[0] = row_layout->padded_dims[0] = c->fc_out[0];
    row_layout->data_type = dnnl_f32;
    dnnl_dims_t wd = {c->fc_out[0], c->fc_in[0]};
    dnnl_memory_desc_init_by_tag(w_any, 2, wd, wt, dnnl_format_tag_any);
    return true;
}

/* Inner product j, ReLU fused into fc1 and fc2; preceded, at a precision boundary of an int8
 * model, by a scaled reorder to the data type it reads. The logits come out plain (ab) so
 * they can be read back; hidden layers choose their layout.
 * {N, K} (fc1: {N, C, H, W}) -> {N, fc_out[j]} */
static int push_fc(plan_builder *b, int j, activation *x) {
    vgg_model *m = b->m;
    const vgg_config *c = b->c;
    char *err = b->err;
    size_t errlen = b->errlen;
    const int l = FC_LAYER(j);
    dnnl_data_type_t t[3];
    dnnl_primitive_desc_t pd = NULL;
    char what[24];
    snprintf(what, sizeof what, "fc%d", j + 1);
    layer_types(m, l, t);
    if (x->md.data_type != t[0]) {
        /* A precision boundary of an int8 model: same layout, the other data type. */
        dnnl_memory_desc_t to = x->md;
        to.data_type = t[0];
        CHECK(push_reorder(b->pp, m->eng, x, &to, other_buf(x->at),
                           m->act_scale[input_layer(c, l)], "reorder"),
              "reorder");
    }
    dnnl_memory_desc_t src, w_any, row_layout, bias, dst;
    const bool flat = fc_input_descs(b, j, t[1], &x->md, &src, &w_any, &row_layout);
    dnnl_dims_t bd = {c->fc_out[j]}, dd = {b->n, c->fc_out[j]};
    dnnl_memory_desc_init_by_tag(&bias, 1, bd, dnnl_f32, dnnl_x);
    dnnl_memory_desc_init_by_tag(&dst, 2, dd, t[2], j == 2 ? dnnl_ab : dnnl_format_tag_any);
    dnnl_inner_product_desc_t ipd;
    CHECK(dnnl_inner_product_forward_desc_init(&ipd, dnnl_forward_inference, &src, &w_any,
                                               &bias, &dst),
          what);
    dnnl_primitive_attr_t attr = layer_attr(m, l, j < 2, c->fc_out[j]);
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, &ipd, attr, m->eng, NULL);
    dnnl_primitive_attr_destroy(attr);
    CHECK(st, what);
    if (!dnnl_memory_desc_equal(q(pd, dnnl_query_src_md), &src)) {
        snprintf(err, errlen, "%s: the inner product wants another source layout than "
                 "the previous layer produced", what);
        goto fail;
    }
    const dnnl_memory_desc_t *wmd = q(pd, dnnl_query_weights_md);
    void *wp = model_weights(m, l, wmd, flat ? &row_layout : NULL, err, errlen);
    if (!wp) goto fail;
    pending_arg args[4] = {pa(DNNL_ARG_SRC, x->at, &src, NULL),
                           pa(DNNL_ARG_WEIGHTS, AT_EXTERNAL, wmd, wp),
                           pa(DNNL_ARG_BIAS, AT_EXTERNAL, &bias, layer_bias(m, l)),
                           pa(DNNL_ARG_DST, j == 2 ? AT_LOGITS : other_buf(x->at),
                              q(pd, dnnl_query_dst_md), NULL)};
    if (b->marks) {
        b->marks->fc_pd[j] = pd;
        b->marks->fc_src[j] = (activation){src, x->at};
    }
    *x = push_step(b->pp, pd, flat ? "fc1_flat" : what, l, args, 4);
    if (b->marks) b->marks->fc_dst[j] = *x;
    return 0;
fail:
    if (pd) dnnl_primitive_desc_destroy(pd);
    return -1;
}

/* Softmax over the classes, from the logits buffer into the probabilities buffer.
 * {N, n_classes} -> {N, n_classes} */
static int push_softmax(plan_builder *b, const activation *x) {
    char *err = b->err;
    size_t errlen = b->errlen;
    dnnl_softmax_desc_t smd;
    dnnl_primitive_desc_t pd = NULL;
    CHECK(dnnl_softmax_forward_desc_init(&smd, dnnl_forward_inference, &x->md, 1), "softmax");
    CHECK(dnnl_primitive_desc_create(&pd, &smd, b->attr_plain, b->m->eng, NULL), "softmax");
    pending_arg args[2] = {pa(DNNL_ARG_SRC, AT_LOGITS, &x->md, NULL),
                           pa(DNNL_ARG_DST, AT_PROBS, &x->md, NULL)};
    push_step(b->pp, pd, "softmax", -1, args, 2);
    return 0;
fail:
    return -1;
}

/* ---------------------------------------------------------------- explain: the backward pass */

/* The backward pass of an explain plan runs from d logit_c / d logits (one-hot rows the host
 * writes after the forward steps) down to d logit_c / d A summed over each channel's
 * positions, A being the last convolution's output after its ReLU; the convolutions are never
 * differentiated. Every gradient above fc1 has the memory desc of the tensor it is the
 * gradient of, so each step mirrors a forward one and reads the layouts that one chose. */

/* The gradient slot a gradient at `at` is not in (the one-hot logits count as neither). */
static int other_grad(int at) { return at == AT_GRAD0 ? AT_GRAD1 : AT_GRAD0; }

/* {N, C, H, W} in plain f32, where the host reads A. */
static void plain_nchw(const dnnl_memory_desc_t *like, dnnl_memory_desc_t *out) {
    dnnl_memory_desc_init_by_tag(out, 4, like->dims, dnnl_f32, dnnl_nchw);
}

/* Appends a copy of activation x, plain f32, into slot `at`; x stays current. */
static int push_plain_copy(plan_builder *b, const activation *x, int at, const char *name) {
    char *err = b->err;
    size_t errlen = b->errlen;
    activation copy = *x;
    dnnl_memory_desc_t plain;
    plain_nchw(&x->md, &plain);
    CHECK(push_reorder(b->pp, b->m->eng, &copy, &plain, at, 1.0f, name), name);
    return 0;
fail:
    return -1;
}

/* The backward data primitive of inner product j (fc2 or fc3) reading gradient g. It takes
 * the forward's weights where it can (no second copy), else a format of its choosing; with
 * the model's explain_plain_fc, plain (O, K) weights first, which the gemm kernel reads at
 * memory speed where brgemm's backward on the forward's blocked format is slower at batch 1.
 * model_weights makes a new format once. */
static dnnl_status_t fc_backward_pd(const plan_builder *b, int j, const dnnl_memory_desc_t *g,
                                    dnnl_primitive_desc_t *pd /* out */) {
    const explain_marks *mk = b->marks;
    dnnl_memory_desc_t w = *q(mk->fc_pd[j], dnnl_query_weights_md), w_plain, w_any;
    dnnl_memory_desc_init_by_tag(&w_plain, 2, w.dims, w.data_type, dnnl_ab);
    dnnl_memory_desc_init_by_tag(&w_any, 2, w.dims, w.data_type, dnnl_format_tag_any);
    const bool plain = b->m->opt.explain_plain_fc;
    const dnnl_memory_desc_t *choices[3] = {plain ? &w_plain : &w, plain ? &w : &w_any, &w_any};
    dnnl_status_t st = dnnl_unimplemented;
    for (int k = 0; k < 3 && st != dnnl_success; k++) {
        dnnl_inner_product_desc_t ipd;
        st = dnnl_inner_product_backward_data_desc_init(&ipd, &mk->fc_src[j].md, choices[k], g);
        if (st == dnnl_success)
            st = dnnl_primitive_desc_create(pd, &ipd, b->attr_plain, b->m->eng, mk->fc_pd[j]);
    }
    return st;
}

/* Makes gradient g the data type t (same dims, plain) with a reorder into the other gradient
 * slot, where a backward primitive has no kernel for g's type (bf16 weights and the f32
 * logits, or fc1's f32 channel sums after bf16 layers). */
static int push_grad_retype(plan_builder *b, activation *g, dnnl_data_type_t t) {
    char *err = b->err;
    size_t errlen = b->errlen;
    dnnl_memory_desc_t to;
    dnnl_memory_desc_init_by_tag(&to, g->md.ndims, g->md.dims, t, dnnl_ab);
    CHECK(push_reorder(b->pp, b->m->eng, g, &to, other_grad(g->at), 1.0f, "reorder_grad"),
          "reorder_grad");
    return 0;
fail:
    return -1;
}

/* d/d src = d/d dst x W for inner product j (fc2 or fc3), into the other gradient slot.
 * {N, fc_out[j]} -> {N, fc_in[j]} */
static int push_fc_backward(plan_builder *b, int j, activation *g) {
    const explain_marks *mk = b->marks;
    char *err = b->err;
    size_t errlen = b->errlen;
    dnnl_primitive_desc_t pd = NULL;
    char what[24];
    snprintf(what, sizeof what, "fc%d_backward", j + 1);
    dnnl_status_t st = fc_backward_pd(b, j, &g->md, &pd);
    const dnnl_data_type_t wt = q(mk->fc_pd[j], dnnl_query_weights_md)->data_type;
    if (st == dnnl_unimplemented && g->md.data_type != wt) {
        if (push_grad_retype(b, g, wt) != 0) return -1;
        st = fc_backward_pd(b, j, &g->md, &pd);
    }
    CHECK(st, what);
    const dnnl_memory_desc_t *wmd = q(pd, dnnl_query_weights_md);
    void *wp = model_weights(b->m, FC_LAYER(j), wmd, NULL, err, errlen);
    if (!wp) goto fail;
    pending_arg args[3] = {pa(DNNL_ARG_DIFF_DST, g->at, &g->md, NULL),
                           pa(DNNL_ARG_WEIGHTS, AT_EXTERNAL, wmd, wp),
                           pa(DNNL_ARG_DIFF_SRC, other_grad(g->at), &mk->fc_src[j].md, NULL)};
    *g = push_step(b->pp, pd, what, -1, args, 3);
    return 0;
fail:
    if (pd) dnnl_primitive_desc_destroy(pd);
    return -1;
}

/* The backward of fc j's fused ReLU, in place: the gradient passes where fc j's output is
 * positive. That output is still in its buffer: with no step between the inner products (none
 * in f32 or bf16; int8's reorders are why it has no explanations), fc1's and fc2's outputs
 * are the two ping-pong buffers after the forward steps. Eltwise backward wants a forward
 * primitive as its hint; fc j's ReLU is a post-op, so one is made for the purpose and dropped.
 * {N, fc_out[j]} -> {N, fc_out[j]} */
static int push_relu_backward(plan_builder *b, int j, activation *g) {
    const activation *y = &b->marks->fc_dst[j];
    char *err = b->err;
    size_t errlen = b->errlen;
    dnnl_eltwise_desc_t fd, bd;
    dnnl_primitive_desc_t hint = NULL, pd = NULL;
    char what[24];
    snprintf(what, sizeof what, "relu%d_backward", j + 1);
    const dnnl_alg_kind_t relu = dnnl_eltwise_relu_use_dst_for_bwd;
    CHECK(dnnl_eltwise_forward_desc_init(&fd, dnnl_forward_training, relu, &y->md, 0.0f, 0.0f),
          what);
    CHECK(dnnl_primitive_desc_create(&hint, &fd, b->attr_plain, b->m->eng, NULL), what);
    CHECK(dnnl_eltwise_backward_desc_init(&bd, relu, &g->md, &y->md, 0.0f, 0.0f), what);
    CHECK(dnnl_primitive_desc_create(&pd, &bd, b->attr_plain, b->m->eng, hint), what);
    dnnl_primitive_desc_destroy(hint);
    pending_arg args[3] = {pa(DNNL_ARG_DST, y->at, &y->md, NULL),
                           pa(DNNL_ARG_DIFF_DST, g->at, &g->md, NULL),
                           pa(DNNL_ARG_DIFF_SRC, g->at, &g->md, NULL)};
    *g = push_step(b->pp, pd, what, -1, args, 3);
    return 0;
fail:
    if (hint) dnnl_primitive_desc_destroy(hint);
    return -1;
}

/* fc1's backward data through its weights summed over each channel's positions
 * (fold_fc1_channels), in f32 whatever the model's precision: d logit_c / d (fc1's output
 * before its ReLU) -> for each channel k the sum of d logit_c / d pool5 over k's positions,
 * which equals the sum of d logit_c / d A over k's positions because pool5's backward moves
 * each gradient to one position of the same channel. That sum is all alpha_k needs, so
 * neither pool5's backward nor fc1's full 400 MB of weights is read a second time.
 * {N, fc_out[0]} -> {N, C} in AT_CHANNEL_G */
static int push_fc1_channel_backward(plan_builder *b, activation *g) {
    const vgg_config *c = b->c;
    char *err = b->err;
    size_t errlen = b->errlen;
    dnnl_memory_desc_t w, sums, g_f32;
    dnnl_dims_t wd = {c->fc_out[0], c->final_channels}, sd = {b->n, c->final_channels};
    dnnl_memory_desc_init_by_tag(&w, 2, wd, dnnl_f32, dnnl_ab);
    dnnl_memory_desc_init_by_tag(&sums, 2, sd, dnnl_f32, dnnl_ab);
    dnnl_memory_desc_init_by_tag(&g_f32, 2, g->md.dims, dnnl_f32, dnnl_ab);
    if (!dnnl_memory_desc_equal(&g->md, &g_f32) && push_grad_retype(b, g, dnnl_f32) != 0)
        return -1;
    dnnl_inner_product_desc_t fd, bd;
    dnnl_primitive_desc_t hint = NULL, pd = NULL;
    CHECK(dnnl_inner_product_forward_desc_init(&fd, dnnl_forward_training, &sums, &w, NULL,
                                               &g->md),
          "fc1_channel_backward");
    CHECK(dnnl_primitive_desc_create(&hint, &fd, b->attr_plain, b->m->eng, NULL),
          "fc1_channel_backward");
    CHECK(dnnl_inner_product_backward_data_desc_init(&bd, &sums, &w, &g->md),
          "fc1_channel_backward");
    CHECK(dnnl_primitive_desc_create(&pd, &bd, b->attr_plain, b->m->eng, hint),
          "fc1_channel_backward");
    dnnl_primitive_desc_destroy(hint);
    hint = NULL;
    void *wp = model_weights(b->m, FC_LAYER(0), &w, NULL, err, errlen);
    if (!wp) goto fail;
    pending_arg args[3] = {pa(DNNL_ARG_DIFF_DST, g->at, &g->md, NULL),
                           pa(DNNL_ARG_WEIGHTS, AT_EXTERNAL, &w, wp),
                           pa(DNNL_ARG_DIFF_SRC, AT_CHANNEL_G, &sums, NULL)};
    *g = push_step(b->pp, pd, "fc1_channel_backward", -1, args, 3);
    return 0;
fail:
    if (hint) dnnl_primitive_desc_destroy(hint);
    if (pd) dnnl_primitive_desc_destroy(pd);
    return -1;
}

/* d logit_c / d A summed per channel, from the one-hot rows down: fc3, ReLU, fc2, ReLU, then
 * fc1 on its channel sums (dropout is the identity at inference).
 * {N, n_classes} -> ... -> {N, C} in AT_CHANNEL_G */
static int push_explain_backward(plan_builder *b) {
    const explain_marks *mk = b->marks;
    activation g = {mk->fc_dst[VGG_N_FC - 1].md, AT_DIFF_LOGITS};
    for (int j = VGG_N_FC - 1; j > 0; j--)
        if (push_fc_backward(b, j, &g) != 0 || push_relu_backward(b, j - 1, &g) != 0) return -1;
    return push_fc1_channel_backward(b, &g);
}

/* The forward pass for n images as pending steps, top to bottom; for an explain plan also a
 * plain copy of A and, after the forward, the backward steps. The
 * forward steps are otherwise the forward plan's, so they compute the same logits bit for
 * bit. On failure the steps pushed so far stay in pp for the caller to free. */
static int build_pending(vgg_engine *e, int n, bool explain, pending_plan *pp, char *err,
                         size_t errlen) {
    vgg_model *m = e->model;
    const vgg_config *c = &m->cfg;
    explain_marks marks;
    memset(&marks, 0, sizeof marks);
    plan_builder b = {m, c, n, pp, make_attr(false), explain ? &marks : NULL, err, errlen};
    int rc = -1;
    /* The caller's images: {N, 3, 224, 224} f32 NCHW. */
    activation x = {.at = AT_INPUT};
    dnnl_dims_t in_dims = {n, c->in_channels, c->input_hw, c->input_hw};
    dnnl_memory_desc_init_by_tag(&x.md, 4, in_dims, dnnl_f32, dnnl_nchw);
    for (int i = 0; i < c->n_conv; i++) {
        if (push_conv(&b, i, &x) != 0) goto done; /* -> {N, conv_out[i], hw, hw} */
        /* A: {N, 512, 14, 14} after the last ReLU, kept for the map */
        if (explain && i == c->n_conv - 1 && push_plain_copy(&b, &x, AT_PLAIN_A, "plain_a") != 0)
            goto done;
        if (c->pool_after[i] && push_pool(&b, i, &x) != 0) goto done; /* -> {.., hw/2, hw/2} */
    }
    /* {N, 512, 7, 7} -> fc1 {N, 4096} -> fc2 {N, 4096} -> fc3 {N, 1000} logits */
    for (int j = 0; j < VGG_N_FC; j++)
        if (push_fc(&b, j, &x) != 0) goto done;
    rc = push_softmax(&b, &x); /* -> {N, 1000} probabilities */
    pp->n_forward_steps = pp->n_steps;
    if (rc == 0 && explain) rc = push_explain_backward(&b); /* -> {N, 512} per-channel sums */
done:
    dnnl_primitive_attr_destroy(b.attr_plain);
    return rc;
}

static void plan_free(plan *p) {
    for (int s = 0; s < p->n_steps; s++) {
        for (int a = 0; a < p->steps[s].n_args; a++) dnnl_memory_destroy(p->steps[s].args[a].memory);
        dnnl_primitive_destroy(p->steps[s].prim);
    }
    memset(p, 0, sizeof *p);
}

/* ---------------------------------------------------------------- prepare */

/* Records what plan p needs of each of the engine's buffers (the largest argument placed
 * there) and grows them to fit. */
static int plan_size_buffers(vgg_engine *e, plan *p, const pending_plan *pp) {
    for (int s = 0; s < pp->n_steps; s++)
        for (int a = 0; a < pp->steps[s].n_args; a++) {
            const pending_arg *x = &pp->steps[s].args[a];
            size_t sz = dnnl_memory_desc_get_size(&x->md);
            if (x->where < N_SLOTS && sz > p->slot_bytes[x->where]) p->slot_bytes[x->where] = sz;
        }
    for (int k = 0; k < N_SLOTS; k++)
        if (p->slot_bytes[k] && ensure_buffer(&e->slot[k], &e->slot_bytes[k], p->slot_bytes[k]) != 0)
            return -1;
    return 0;
}

/* A step's line in vgg_engine_describe: its name, the oneDNN implementation, the output's
 * memory format. */
static void step_describe(const pending_step *ps, char *out, size_t len) {
    const char *impl = "?";
    dnnl_primitive_desc_query(ps->pd, dnnl_query_impl_info_str, 0, &impl);
    char fmt[48] = "";
    const int o = output_arg(ps->args, ps->n_args);
    if (o >= 0) md_format_str(&ps->args[o].md, fmt, sizeof fmt);
    snprintf(out, len, "%-16s %-28s %s %s", ps->name, impl,
             o >= 0 && ps->args[o].arg == DNNL_ARG_DIFF_SRC ? "diff_src" : "dst", fmt);
}

/* Appends the pending step's primitive and argument memories to plan p. Counts stay exact on
 * failure so plan_free releases what was made. */
static int plan_add_step(vgg_engine *e, plan *p, const pending_step *ps, char *err,
                         size_t errlen) {
    plan_step *st = &p->steps[p->n_steps];
    CHECK(dnnl_primitive_create(&st->prim, ps->pd), ps->name);
    p->n_steps++;
    st->layer = ps->layer;
    st->dst = -1;
    step_describe(ps, st->desc, sizeof st->desc);
    for (int a = 0; a < ps->n_args; a++) {
        const pending_arg *x = &ps->args[a];
        st->args[st->n_args].arg = x->arg;
        st->where[st->n_args] = x->where;
        /* Handles other than weights are set before each run (engine buffers move). */
        void *h = x->where == AT_EXTERNAL ? x->ptr : DNNL_MEMORY_NONE;
        CHECK(dnnl_memory_create(&st->args[st->n_args].memory, &x->md, e->model->eng, h),
              ps->name);
        if (x->arg == DNNL_ARG_DST) st->dst = st->n_args;
        st->n_args++;
    }
    return 0;
fail:
    return -1;
}

/* The cached plan for n images, forward or explain, built on first use; NULL with err. */
static plan *prepared_plan(vgg_engine *e, int n, bool explain, char *err, size_t errlen) {
    vgg_model *m = e->model;
    if (n < 1 || n > m->opt.max_batch) {
        snprintf(err, errlen, "batch size %d outside 1..%d", n, m->opt.max_batch);
        return NULL;
    }
    if (explain && m->opt.precision == VGG_PRECISION_INT8) {
        snprintf(err, errlen, "explanations are not supported in int8 (use f32 or bf16)");
        return NULL;
    }
    if (explain && !e->explain_plans) {
        e->explain_plans = calloc(m->opt.max_batch + 1, sizeof *e->explain_plans);
        e->explain_classes = calloc(m->opt.max_batch, sizeof *e->explain_classes);
        if (!e->explain_plans || !e->explain_classes) {
            free(e->explain_plans);
            free(e->explain_classes);
            e->explain_plans = NULL;
            e->explain_classes = NULL;
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
    }
    plan *p = explain ? &e->explain_plans[n] : &e->plans[n];
    if (p->ready) return p;
    omp_set_num_threads(e->n_threads); /* kernels are chosen for the threads they will get */
    pending_plan *pp = calloc(1, sizeof *pp);
    int rc = -1;
    if (!pp) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (build_pending(e, n, explain, pp, err, errlen) != 0) goto done;
    if (plan_size_buffers(e, p, pp) != 0) {
        snprintf(err, errlen, "out of memory for batch %d activations", n);
        goto done;
    }
    for (int s = 0; s < pp->n_steps; s++)
        if (plan_add_step(e, p, &pp->steps[s], err, errlen) != 0) goto done;
    p->n_forward_steps = pp->n_forward_steps;
    p->ready = true;
    rc = 0;
done:
    for (int s = 0; s < pp->n_steps; s++) dnnl_primitive_desc_destroy(pp->steps[s].pd);
    free(pp);
    if (rc != 0) plan_free(p);
    return rc == 0 ? p : NULL;
}

int vgg_engine_prepare(vgg_engine *e, int n, char *err, size_t errlen) {
    return prepared_plan(e, n, false, err, errlen) ? 0 : -1;
}

int vgg_engine_prepare_explain(vgg_engine *e, int n, char *err, size_t errlen) {
    return prepared_plan(e, n, true, err, errlen) ? 0 : -1;
}

/* ---------------------------------------------------------------- engine */

vgg_engine *vgg_engine_create(vgg_model *m, int n_threads, char *err, size_t errlen) {
    vgg_engine *e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    e->model = m;
    e->n_threads = n_threads > 0 ? n_threads : omp_get_num_procs();
    e->plans = calloc(m->opt.max_batch + 1, sizeof *e->plans);
    size_t out_bytes = (size_t)m->opt.max_batch * m->cfg.n_classes * sizeof(float);
    e->logits = alloc_aligned(out_bytes);
    e->probs = alloc_aligned(out_bytes);
    if (!e->plans || !e->logits || !e->probs) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    CHECK(dnnl_stream_create(&e->stream, m->eng, dnnl_stream_default_flags), "creating a stream");
    return e;
fail:
    vgg_engine_free(e);
    return NULL;
}

void vgg_engine_free(vgg_engine *e) {
    if (!e) return;
    for (int n = 0; n <= e->model->opt.max_batch; n++) {
        if (e->plans) plan_free(&e->plans[n]);
        if (e->explain_plans) plan_free(&e->explain_plans[n]);
    }
    free(e->plans);
    free(e->explain_plans);
    free(e->explain_classes);
    for (int k = 0; k < N_SLOTS; k++) free(e->slot[k]);
    free(e->logits);
    free(e->probs);
    if (e->stream) dnnl_stream_destroy(e->stream);
    free(e);
}

/* Runs steps [first, end) of plan p and waits for them. With observe, also shows it what each
 * conv/fc layer wrote (f32 plans only; for calibration). */
static int run_steps(vgg_engine *e, plan *p, int first, int end, const float *input,
                     vgg_layer_observer observe, void *ctx, char *err, size_t errlen) {
    omp_set_num_threads(e->n_threads);
    for (int s = first; s < end; s++) {
        plan_step *st = &p->steps[s];
        for (int a = 0; a < st->n_args; a++) {
            void *h;
            switch (st->where[a]) {
            case AT_INPUT: h = (void *)input; break;
            case AT_LOGITS: h = e->logits; break;
            case AT_PROBS: h = e->probs; break;
            case AT_EXTERNAL: continue; /* weights and biases never move */
            default: h = e->slot[st->where[a]];
            }
            CHECK(dnnl_memory_set_data_handle(st->args[a].memory, h), st->desc);
        }
        CHECK(dnnl_primitive_execute(st->prim, e->stream, st->n_args, st->args), st->desc);
        if (observe && st->layer >= 0 && st->dst >= 0) {
            CHECK(dnnl_stream_wait(e->stream), "forward");
            const dnnl_memory_desc_t *md;
            void *h;
            dnnl_memory_get_memory_desc(st->args[st->dst].memory, &md);
            dnnl_memory_get_data_handle(st->args[st->dst].memory, &h);
            observe(ctx, st->layer, h, dnnl_memory_desc_get_size(md) / sizeof(float));
        }
    }
    CHECK(dnnl_stream_wait(e->stream), "forward");
    return 0;
fail:
    return -1;
}

/* Runs the forward plan for n images. */
static int run_plan(vgg_engine *e, const float *input, int n, vgg_layer_observer observe,
                    void *ctx, char *err, size_t errlen) {
    plan *p = prepared_plan(e, n, false, err, errlen);
    return p ? run_steps(e, p, 0, p->n_steps, input, observe, ctx, err, errlen) : -1;
}

int vgg_engine_observe(vgg_engine *e, const float *input, int n, vgg_layer_observer observe,
                       void *ctx, char *err, size_t errlen) {
    if (e->model->opt.precision != VGG_PRECISION_F32) {
        snprintf(err, errlen, "calibration runs the f32 model");
        return -1;
    }
    return run_plan(e, input, n, observe, ctx, err, errlen);
}

int vgg_engine_forward(vgg_engine *e, const float *input, int n, float *logits, float *probs,
                       char *err, size_t errlen) {
    if (run_plan(e, input, n, NULL, NULL, err, errlen) != 0) return -1;
    size_t out_bytes = (size_t)n * e->model->cfg.n_classes * sizeof(float);
    if (logits) memcpy(logits, e->logits, out_bytes);
    if (probs) memcpy(probs, e->probs, out_bytes);
    return 0;
}

/* ---------------------------------------------------------------- explain: the maps */

int vgg_model_explain_hw(const vgg_model *m) { return m->cfg.conv_hw[m->cfg.n_conv - 1]; }

/* Each image's class (its own, or its top-1 as classify ranks them), and one-hot rows of
 * d logit_c / d logits for the backward steps; a row left out is all zeros. Returns -1 with
 * err for a class outside 0..n_classes-1. */
static int pick_classes(vgg_engine *e, int n, const int *class_id, int *classes /* out */,
                        char *err, size_t errlen) {
    const int n_classes = e->model->cfg.n_classes;
    float *one_hot = e->slot[AT_DIFF_LOGITS];
    memset(one_hot, 0, (size_t)n * n_classes * sizeof(float));
    for (int i = 0; i < n; i++) {
        int c = class_id ? class_id[i] : VGG_EXPLAIN_TOP1;
        if (c == VGG_EXPLAIN_TOP1) topk_indices(e->probs + (size_t)i * n_classes, n_classes, 1, &c);
        if (c != VGG_EXPLAIN_NONE && (c < 0 || c >= n_classes)) {
            snprintf(err, errlen, "class id %d outside 0..%d", c, n_classes - 1);
            return -1;
        }
        classes[i] = c;
        if (c >= 0) one_hot[(size_t)i * n_classes + c] = 1.0f;
    }
    return 0;
}

/* Grad-CAM for one image from plain A, (C, hw, hw), and g_sum[k], the sum over channel k of
 * g = d logit_c / d A: alpha_k = mean of g_k, map = ReLU(sum_k alpha_k A_k) / its maximum
 * (zeros when that is 0). */
static void gradcam_map(const float *a, const float *g_sum, int channels, int hw, float *map) {
    const int area = hw * hw;
    for (int p = 0; p < area; p++) map[p] = 0;
    for (int k = 0; k < channels; k++) {
        const double alpha = (double)g_sum[k] / area;
        for (int p = 0; p < area; p++) map[p] += (float)(alpha * a[(size_t)k * area + p]);
    }
    float max = 0;
    for (int p = 0; p < area; p++) max = fmaxf(max, map[p]);
    for (int p = 0; p < area; p++) map[p] = max > 0 && map[p] > 0 ? map[p] / max : 0.0f;
}

int vgg_engine_explain(vgg_engine *e, const float *input, int n, float *logits, float *probs,
                       const int *class_id, float *maps, int *explained_class, char *err,
                       size_t errlen) {
    const vgg_config *c = &e->model->cfg;
    plan *p = prepared_plan(e, n, true, err, errlen);
    if (!p || run_steps(e, p, 0, p->n_forward_steps, input, NULL, NULL, err, errlen) != 0)
        return -1;
    int *classes = e->explain_classes;
    if (pick_classes(e, n, class_id, classes, err, errlen) != 0 ||
        run_steps(e, p, p->n_forward_steps, p->n_steps, input, NULL, NULL, err, errlen) != 0)
        return -1;
    const int hw = vgg_model_explain_hw(e->model), channels = c->conv_out[c->n_conv - 1];
    const size_t per_image = (size_t)channels * hw * hw;
    for (int i = 0; i < n; i++) {
        float *map = maps + (size_t)i * hw * hw;
        if (classes[i] < 0) memset(map, 0, (size_t)hw * hw * sizeof(float));
        else gradcam_map((const float *)e->slot[AT_PLAIN_A] + i * per_image,
                         (const float *)e->slot[AT_CHANNEL_G] + (size_t)i * channels, channels,
                         hw, map);
        if (explained_class) explained_class[i] = classes[i] < 0 ? -1 : classes[i];
    }
    size_t out_bytes = (size_t)n * c->n_classes * sizeof(float);
    if (logits) memcpy(logits, e->logits, out_bytes);
    if (probs) memcpy(probs, e->probs, out_bytes);
    return 0;
}

/* One line per step of plan p (vgg_engine_describe). */
static char *describe_plan(const plan *p) {
    size_t cap = (size_t)p->n_steps * 200 + 64, used = 0;
    char *out = malloc(cap);
    out[0] = '\0';
    for (int s = 0; s < p->n_steps; s++)
        used += (size_t)snprintf(out + used, cap - used, "%s\n", p->steps[s].desc);
    return out;
}

char *vgg_engine_describe(vgg_engine *e, int n) {
    char err[256];
    plan *p = prepared_plan(e, n, false, err, sizeof err);
    return p ? describe_plan(p) : strdup(err);
}

char *vgg_engine_describe_explain(vgg_engine *e, int n) {
    char err[256];
    plan *p = prepared_plan(e, n, true, err, sizeof err);
    return p ? describe_plan(p) : strdup(err);
}

size_t vgg_engine_activation_bytes(const vgg_engine *e) {
    size_t total = 2 * (size_t)e->model->opt.max_batch * e->model->cfg.n_classes * sizeof(float);
    for (int k = 0; k < N_SLOTS; k++) total += e->slot_bytes[k];
    return total;
}

int vgg_engine_threads(const vgg_engine *e) { return e->n_threads; }
