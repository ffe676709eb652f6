/* engine_weights.c - the model: names, weights in primitive formats, int8 scales, the
 * per-layer choices plans follow (engine_internal.h). */
#include "engine_internal.h"

#include <dnnl.h>
#include <dnnl_debug.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- names */

const char *const vgg_algo_names[VGG_N_ALGOS + 1] = {"direct", "winograd", "auto", NULL};
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
vgg_algo vgg_algo_resolve(vgg_algo a, vgg_precision p) {
    if (a != VGG_ALGO_AUTO) return a;
    return p == VGG_PRECISION_INT8 ? VGG_ALGO_WINOGRAD : VGG_ALGO_DIRECT;
}

const char *vgg_precision_name(vgg_precision p) {
    return (unsigned)p < VGG_N_PRECISIONS ? vgg_precision_names[p] : "unknown";
}


void *alloc_aligned(size_t bytes) {
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
    CHECK(dnnl_reorder_primitive_desc_create(&pd, src_md, eng, dst_md, eng, attr),
          "weight reorder", err, errlen);
    CHECK(dnnl_primitive_create(&prim, pd), "weight reorder", err, errlen);
    CHECK(dnnl_memory_create(&sm, src_md, eng, (void *)src), "weight reorder", err, errlen);
    CHECK(dnnl_memory_create(&dm, dst_md, eng, dst), "weight reorder", err, errlen);
    CHECK(dnnl_stream_create(&stream, eng, dnnl_stream_default_flags),
          "weight reorder", err, errlen);
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, sm}, {DNNL_ARG_TO, dm}};
    CHECK(dnnl_primitive_execute(prim, stream, 2, args), "weight reorder", err, errlen);
    CHECK(dnnl_stream_wait(stream), "weight reorder", err, errlen);
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
    const int channels = c->final_channels, positions = c->head_hw * c->head_hw;
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
               c->head_hw > 1) {
        if (quant) dnnl_primitive_attr_destroy(quant);
        return fold_fc1_channels(c, w->fc_w[0], &v->md, v->data, err, errlen);
    } else if (layer == FC_LAYER(0) && v->md.ndims == 4) {
        dnnl_dims_t d = {c->fc_out[0], c->final_channels, c->head_hw, c->head_hw};
        dnnl_memory_desc_init_by_tag(&user, 4, d, dnnl_f32, dnnl_oihw);
        data = w->fc_w[0];
    } else if (layer == FC_LAYER(0) && v->row_layout.ndims == 4) {
        /* Flat fc1: permute each row from (C, H, W) to the order pool5's layout stores one
         * image in, then hand the (O, K) matrix to the inner product's own format. */
        dnnl_dims_t d = {c->fc_out[0], c->final_channels, c->head_hw, c->head_hw};
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
void *model_weights(vgg_model *m, int layer, const dnnl_memory_desc_t *md,
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
int input_layer(const vgg_config *c, int l) {
    if (l < VGG_MAX_CONV) return l - 1;
    return l == FC_LAYER(0) ? c->n_conv - 1 : l - 1;
}

static bool layer_exists(const vgg_config *c, int l) {
    return l < VGG_MAX_CONV ? l < c->n_conv : l - VGG_MAX_CONV < c->n_fc;
}

/* int8 runs every layer in u8 x s8 except the first convolution (3 input channels: little
 * to gain, and the normalised image is signed) and the layers the options keep in f32. */
bool layer_is_int8(const vgg_model *m, int l) {
    return m->opt.precision == VGG_PRECISION_INT8 && l != 0 &&
           !(m->opt.int8_float_layers >> l & 1u);
}

/* int8 Winograd (oneDNN 2.6's jit_avx512_core_u8s8s32x_wino_convolution, F(2x2, 3x3)) on
 * layers with at least this many input channels. Measured at batch 8 on 2 cores against the
 * direct VNNI kernel on an idle machine (build/bench_conv_layers --batch 8 --repeats 7 --kinds
 * int8, 2026-12-07 12:28, min ms direct / Winograd): 256->256 at 56x56 14.2 / 8.5, 256->512
 * at 28x28 6.8 / 3.8, 512->512 at 28x28 13.8 / 7.9, 512->512 at 14x14 3.2 / 1.8. At 112x112
 * and 224x224 it ties or loses (64->128 7.4 / 8.2, 128->128 14.3 / 14.1, 64->64 14.8 / 13.8).
 * 128->256 at 56x56 (conv3_1) would gain too (7.2 / 4.7), but an earlier run under load had
 * it losing (16.3 / 18.8), and each Winograd layer adds the coarser source's error: it stays
 * direct until its accuracy is measured. In VGG16: conv3_2 to conv5_3. */
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
bool layer_runs_winograd(const vgg_model *m, int l) {
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
        float s_out = l == FC_LAYER(c->n_fc - 1) ? 1.0f : m->act_scale[l];
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
    m->opt.algo = vgg_algo_resolve(opt->algo, opt->precision);
    if (m->opt.max_batch < 1) m->opt.max_batch = 1;
    m->src = weights;
    pthread_mutex_init(&m->lock, NULL);
    CHECK(dnnl_engine_create(&m->eng, dnnl_cpu, 0), "creating the CPU engine", err, errlen);
    for (int i = 0; i < m->cfg.n_conv; i++) {
        m->bias[i] = malloc(m->cfg.conv_out[i] * sizeof(float));
        memcpy(m->bias[i], weights->conv_b[i], m->cfg.conv_out[i] * sizeof(float));
    }
    for (int j = 0; j < m->cfg.n_fc; j++) {
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

