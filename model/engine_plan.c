/* engine_plan.c - the forward graph on oneDNN primitives, layer by layer, for one batch size;
 * preparing a plan (buffers, primitives) and describing it (engine_internal.h). */
#include "engine_internal.h"

#include <dnnl.h>
#include <dnnl_debug.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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


pending_arg pa(int arg, int where, const dnnl_memory_desc_t *md, void *ptr) {
    pending_arg a = {arg, where, *md, ptr};
    return a;
}

/* The ping-pong buffer an activation at `at` is not in (the caller's input counts as neither). */
int other_buf(int at) { return at == AT_BUF0 ? AT_BUF1 : AT_BUF0; }

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
activation push_step(pending_plan *pp, dnnl_primitive_desc_t pd, const char *name,
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

const dnnl_memory_desc_t *q(dnnl_primitive_desc_t pd, dnnl_query_t what) {
    return dnnl_primitive_desc_query_md(pd, what, 0);
}

/* Attributes every primitive shares: user-managed scratchpad (so concurrent engines never
 * share library scratch memory) and, optionally, a fused ReLU. */
dnnl_primitive_attr_t make_attr(bool relu) {
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
dnnl_status_t push_reorder(pending_plan *pp, dnnl_engine_t eng, activation *x,
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
    const bool last = l == FC_LAYER(m->cfg.n_fc - 1);
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
    dnnl_data_type_t t[3];
    dnnl_memory_desc_t next_src, bias;
    dnnl_primitive_desc_t pd = NULL;
    char what[24];
    snprintf(what, sizeof what, "conv%d", i + 1);
    layer_types(m, i, t);
    const bool fixed = conv_winograd_next_src(b, i, t, &next_src);
    CHECK(conv_pd_create(b, i, t, fixed ? &next_src : NULL, &pd), what, b->err, b->errlen);
    const dnnl_memory_desc_t *want_src = q(pd, dnnl_query_src_md);
    if (!dnnl_memory_desc_equal(want_src, &x->md)) {
        /* The input reorder (and any layout change the primitives insist on). In int8 the
         * f32 output of the first convolution is quantised to u8 here. */
        CHECK(push_reorder(b->pp, m->eng, x, want_src, other_buf(x->at),
                           i ? m->act_scale[i - 1] : 1.0f, i ? "reorder" : "reorder_input"),
              "reorder", b->err, b->errlen);
    }
    const dnnl_memory_desc_t *wmd = q(pd, dnnl_query_weights_md);
    void *wp = model_weights(m, i, wmd, NULL, b->err, b->errlen);
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
    const vgg_config *c = b->c;
    dnnl_memory_desc_t dst;
    dnnl_dims_t od = {b->n, c->conv_out[i], c->conv_hw[i] / 2, c->conv_hw[i] / 2}; /* floors */
    dnnl_memory_desc_init_by_tag(&dst, 4, od, x->md.data_type, dnnl_format_tag_any);
    dnnl_dims_t k2 = {2, 2}, dil = {0, 0}, zero = {0, 0};
    dnnl_pooling_v2_desc_t pld;
    dnnl_primitive_desc_t pd = NULL;
    char what[32];
    snprintf(what, sizeof what, "pool_after_conv%d", i + 1);
    CHECK(dnnl_pooling_v2_forward_desc_init(&pld, dnnl_forward_inference, dnnl_pooling_max,
                                            &x->md, &dst, k2, k2, dil, zero, zero),
          what, b->err, b->errlen);
    CHECK(dnnl_primitive_desc_create(&pd, &pld, b->attr_plain, b->m->eng, NULL),
          what, b->err, b->errlen);
    pending_arg args[2] = {pa(DNNL_ARG_SRC, x->at, &x->md, NULL),
                           pa(DNNL_ARG_DST, other_buf(x->at), q(pd, dnnl_query_dst_md), NULL)};
    *x = push_step(b->pp, pd, "maxpool", -1, args, 2);
    return 0;
fail:
    return -1;
}

/* The head's global pooling (average or max over the whole last feature map), for GAP and
 * GMP heads; oneDNN picks the output layout. {N, C, H, W} -> {N, C, 1, 1} */
static int push_global_pool(plan_builder *b, activation *x) {
    const vgg_config *c = b->c;
    const dnnl_alg_kind_t alg = c->head_pool == VGG_POOL_MAX ? dnnl_pooling_max
                                                             : dnnl_pooling_avg_exclude_padding;
    dnnl_memory_desc_t dst;
    dnnl_dims_t od = {b->n, c->final_channels, 1, 1};
    dnnl_memory_desc_init_by_tag(&dst, 4, od, x->md.data_type, dnnl_format_tag_any);
    dnnl_dims_t k = {c->final_hw, c->final_hw}, dil = {0, 0}, zero = {0, 0};
    dnnl_pooling_v2_desc_t pld;
    dnnl_primitive_desc_t pd = NULL;
    CHECK(dnnl_pooling_v2_forward_desc_init(&pld, dnnl_forward_inference, alg, &x->md, &dst, k,
                                            k, dil, zero, zero),
          "global_pool", b->err, b->errlen);
    CHECK(dnnl_primitive_desc_create(&pd, &pld, b->attr_plain, b->m->eng, NULL),
          "global_pool", b->err, b->errlen);
    pending_arg args[2] = {pa(DNNL_ARG_SRC, x->at, &x->md, NULL),
                           pa(DNNL_ARG_DST, other_buf(x->at), q(pd, dnnl_query_dst_md), NULL)};
    *x = push_step(b->pp, pd, c->head_pool == VGG_POOL_MAX ? "global_maxpool" : "global_avgpool",
                   -1, args, 2);
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
        dnnl_dims_t wd = {c->fc_out[0], c->final_channels, c->head_hw, c->head_hw};
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

/* Inner product j, ReLU fused into every one but the last; preceded, at a precision boundary of an int8
 * model, by a scaled reorder to the data type it reads. The logits come out plain (ab) so
 * they can be read back; hidden layers choose their layout.
 * {N, K} (fc1: {N, C, H, W}) -> {N, fc_out[j]} */
static int push_fc(plan_builder *b, int j, activation *x) {
    vgg_model *m = b->m;
    const vgg_config *c = b->c;
    const int l = FC_LAYER(j);
    const bool last = j == c->n_fc - 1;
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
              "reorder", b->err, b->errlen);
    }
    dnnl_memory_desc_t src, w_any, row_layout, bias, dst;
    const bool flat = fc_input_descs(b, j, t[1], &x->md, &src, &w_any, &row_layout);
    dnnl_dims_t bd = {c->fc_out[j]}, dd = {b->n, c->fc_out[j]};
    dnnl_memory_desc_init_by_tag(&bias, 1, bd, dnnl_f32, dnnl_x);
    dnnl_memory_desc_init_by_tag(&dst, 2, dd, t[2], last ? dnnl_ab : dnnl_format_tag_any);
    dnnl_inner_product_desc_t ipd;
    CHECK(dnnl_inner_product_forward_desc_init(&ipd, dnnl_forward_inference, &src, &w_any,
                                               &bias, &dst),
          what, b->err, b->errlen);
    dnnl_primitive_attr_t attr = layer_attr(m, l, !last, c->fc_out[j]);
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, &ipd, attr, m->eng, NULL);
    dnnl_primitive_attr_destroy(attr);
    CHECK(st, what, b->err, b->errlen);
    if (!dnnl_memory_desc_equal(q(pd, dnnl_query_src_md), &src)) {
        snprintf(b->err, b->errlen, "%s: the inner product wants another source layout than "
                 "the previous layer produced", what);
        goto fail;
    }
    const dnnl_memory_desc_t *wmd = q(pd, dnnl_query_weights_md);
    void *wp = model_weights(m, l, wmd, flat ? &row_layout : NULL, b->err, b->errlen);
    if (!wp) goto fail;
    pending_arg args[4] = {pa(DNNL_ARG_SRC, x->at, &src, NULL),
                           pa(DNNL_ARG_WEIGHTS, AT_EXTERNAL, wmd, wp),
                           pa(DNNL_ARG_BIAS, AT_EXTERNAL, &bias, layer_bias(m, l)),
                           pa(DNNL_ARG_DST, last ? AT_LOGITS : other_buf(x->at),
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
    dnnl_softmax_desc_t smd;
    dnnl_primitive_desc_t pd = NULL;
    CHECK(dnnl_softmax_forward_desc_init(&smd, dnnl_forward_inference, &x->md, 1),
          "softmax", b->err, b->errlen);
    CHECK(dnnl_primitive_desc_create(&pd, &smd, b->attr_plain, b->m->eng, NULL),
          "softmax", b->err, b->errlen);
    pending_arg args[2] = {pa(DNNL_ARG_SRC, AT_LOGITS, &x->md, NULL),
                           pa(DNNL_ARG_DST, AT_PROBS, &x->md, NULL)};
    push_step(b->pp, pd, "softmax", -1, args, 2);
    return 0;
fail:
    return -1;
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
    /* GAP/GMP heads: {N, 512, 7, 7} -> {N, 512, 1, 1} */
    if (c->head_pool != VGG_POOL_FLATTEN && push_global_pool(&b, &x) != 0) goto done;
    /* {N, 512, 7, 7} -> fc1 {N, 4096} -> fc2 {N, 4096} -> fc3 {N, 1000} logits (n_fc layers) */
    for (int j = 0; j < c->n_fc; j++)
        if (push_fc(&b, j, &x) != 0) goto done;
    rc = push_softmax(&b, &x); /* -> {N, 1000} probabilities */
    pp->n_forward_steps = pp->n_steps;
    if (rc == 0 && explain) rc = push_explain_backward(&b); /* -> {N, 512} per-channel sums */
done:
    dnnl_primitive_attr_destroy(b.attr_plain);
    return rc;
}

void plan_free(plan *p) {
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
    CHECK(dnnl_primitive_create(&st->prim, ps->pd), ps->name, err, errlen);
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
              ps->name, err, errlen);
        if (x->arg == DNNL_ARG_DST) st->dst = st->n_args;
        st->n_args++;
    }
    return 0;
fail:
    return -1;
}

/* The cached plan for n images, forward or explain, built on first use; NULL with err. */
plan *prepared_plan(vgg_engine *e, int n, bool explain, char *err, size_t errlen) {
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


/* One line per step of plan p (vgg_engine_describe). */
char *describe_plan(const plan *p) {
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

