/* engine_explain.c - Grad-CAM: the backward steps of explain plans and the explain call
 * (engine_internal.h). */
#include "engine_internal.h"

#include <dnnl.h>
#include <dnnl_debug.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topk.h"

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
int push_plain_copy(plan_builder *b, const activation *x, int at, const char *name) {
    activation copy = *x;
    dnnl_memory_desc_t plain;
    plain_nchw(&x->md, &plain);
    CHECK(push_reorder(b->pp, b->m->eng, &copy, &plain, at, 1.0f, name), name, b->err, b->errlen);
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
    dnnl_memory_desc_t to;
    dnnl_memory_desc_init_by_tag(&to, g->md.ndims, g->md.dims, t, dnnl_ab);
    CHECK(push_reorder(b->pp, b->m->eng, g, &to, other_grad(g->at), 1.0f, "reorder_grad"),
          "reorder_grad", b->err, b->errlen);
    return 0;
fail:
    return -1;
}

/* d/d src = d/d dst x W for inner product j (fc2 or fc3), into the other gradient slot.
 * {N, fc_out[j]} -> {N, fc_in[j]} */
static int push_fc_backward(plan_builder *b, int j, activation *g) {
    const explain_marks *mk = b->marks;
    dnnl_primitive_desc_t pd = NULL;
    char what[24];
    snprintf(what, sizeof what, "fc%d_backward", j + 1);
    dnnl_status_t st = fc_backward_pd(b, j, &g->md, &pd);
    const dnnl_data_type_t wt = q(mk->fc_pd[j], dnnl_query_weights_md)->data_type;
    if (st == dnnl_unimplemented && g->md.data_type != wt) {
        if (push_grad_retype(b, g, wt) != 0) return -1;
        st = fc_backward_pd(b, j, &g->md, &pd);
    }
    CHECK(st, what, b->err, b->errlen);
    const dnnl_memory_desc_t *wmd = q(pd, dnnl_query_weights_md);
    void *wp = model_weights(b->m, FC_LAYER(j), wmd, NULL, b->err, b->errlen);
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
    dnnl_eltwise_desc_t fd, bd;
    dnnl_primitive_desc_t hint = NULL, pd = NULL;
    char what[24];
    snprintf(what, sizeof what, "relu%d_backward", j + 1);
    const dnnl_alg_kind_t relu = dnnl_eltwise_relu_use_dst_for_bwd;
    CHECK(dnnl_eltwise_forward_desc_init(&fd, dnnl_forward_training, relu, &y->md, 0.0f, 0.0f),
          what, b->err, b->errlen);
    CHECK(dnnl_primitive_desc_create(&hint, &fd, b->attr_plain, b->m->eng, NULL),
          what, b->err, b->errlen);
    CHECK(dnnl_eltwise_backward_desc_init(&bd, relu, &g->md, &y->md, 0.0f, 0.0f),
          what, b->err, b->errlen);
    CHECK(dnnl_primitive_desc_create(&pd, &bd, b->attr_plain, b->m->eng, hint),
          what, b->err, b->errlen);
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
          "fc1_channel_backward", b->err, b->errlen);
    CHECK(dnnl_primitive_desc_create(&hint, &fd, b->attr_plain, b->m->eng, NULL),
          "fc1_channel_backward", b->err, b->errlen);
    CHECK(dnnl_inner_product_backward_data_desc_init(&bd, &sums, &w, &g->md),
          "fc1_channel_backward", b->err, b->errlen);
    CHECK(dnnl_primitive_desc_create(&pd, &bd, b->attr_plain, b->m->eng, hint),
          "fc1_channel_backward", b->err, b->errlen);
    dnnl_primitive_desc_destroy(hint);
    hint = NULL;
    void *wp = model_weights(b->m, FC_LAYER(0), &w, NULL, b->err, b->errlen);
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
int push_explain_backward(plan_builder *b) {
    const explain_marks *mk = b->marks;
    activation g = {mk->fc_dst[b->c->n_fc - 1].md, AT_DIFF_LOGITS};
    for (int j = b->c->n_fc - 1; j > 0; j--)
        if (push_fc_backward(b, j, &g) != 0 || push_relu_backward(b, j - 1, &g) != 0) return -1;
    return push_fc1_channel_backward(b, &g);
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
