/* conv_layers.c - each VGG16 convolution shape timed alone on oneDNN, in every kernel family
 * the engine can pick for it: f32 direct, f32 Winograd, bf16 direct, int8 direct and int8
 * Winograd (u8 source, s8 weights, u8 destination, per-channel output scales as the engine
 * sets them). This is the measurement behind the engine's per-layer choices in bf16 +
 * Winograd and int8 + Winograd modes (engine_weights.c, layer_runs_winograd).
 *
 *   build/bench_conv_layers [--batch 8] [--repeats 8] [--kinds int8]
 *
 * --kinds keeps the kinds whose name contains the given text ("int8", "winograd", ...).
 *
 * Per shape and kind: the implementation oneDNN picked and the min / mean ms over --repeats
 * executions after two warm-up runs, with ReLU fused as in the engine; kinds run one after the
 * other per shape, so a slow spell of the machine hits neighbours alike. Weights and inputs
 * are zeros: the kernels' speed does not depend on the values. */
#include <dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Times one convolution and names oneDNN's implementation in impl; returns 0, or -1 when
 * oneDNN has no kernel for it. */
/* One kernel family: the algorithm and the {src, weights, dst} data types. */
typedef struct {
    const char *name;
    dnnl_alg_kind_t alg;
    dnnl_data_type_t t[3];
} conv_kind;

static int time_conv(dnnl_engine_t eng, dnnl_stream_t stream, int n, int ic, int oc, int hw,
                     const conv_kind *kind, int repeats, char *impl, size_t impl_len,
                     double *min_ms, double *mean_ms) {
    dnnl_memory_desc_t src, wei, bias, dst;
    dnnl_dims_t sd = {n, ic, hw, hw}, wd = {oc, ic, 3, 3}, bd = {oc}, dd = {n, oc, hw, hw};
    dnnl_dims_t strides = {1, 1}, pad = {1, 1};
    const dnnl_alg_kind_t alg = kind->alg;
    dnnl_memory_desc_init_by_tag(&src, 4, sd, kind->t[0], dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&wei, 4, wd, kind->t[1], dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&bias, 1, bd, dnnl_f32, dnnl_x);
    dnnl_memory_desc_init_by_tag(&dst, 4, dd, kind->t[2], dnnl_format_tag_any);
    dnnl_convolution_desc_t cd;
    if (dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, alg, &src, &wei, &bias,
                                           &dst, strides, pad, pad) != dnnl_success)
        return -1;
    dnnl_primitive_attr_t attr;
    dnnl_post_ops_t ops;
    dnnl_primitive_attr_create(&attr);
    dnnl_post_ops_create(&ops);
    dnnl_post_ops_append_eltwise(ops, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f);
    dnnl_primitive_attr_set_post_ops(attr, ops);
    dnnl_post_ops_destroy(ops);
    float *scales = NULL;
    if (kind->t[1] == dnnl_s8) { /* int8: one output scale per channel, as the engine's */
        scales = malloc(oc * sizeof *scales);
        if (!scales) return -1;
        for (int o = 0; o < oc; o++) scales[o] = 1.0f / 64;
        dnnl_primitive_attr_set_output_scales(attr, oc, 1 << 1, scales);
    }
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, &cd, attr, eng, NULL);
    dnnl_primitive_attr_destroy(attr);
    free(scales);
    if (st != dnnl_success) return -1;
    const char *name;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name);
    snprintf(impl, impl_len, "%s", name); /* name lives in pd */
    static const dnnl_query_t what[4] = {dnnl_query_src_md, dnnl_query_weights_md,
                                         dnnl_query_weights_md, dnnl_query_dst_md};
    static const int index[4] = {0, 0, 1, 0}, arg[4] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS,
                                                        DNNL_ARG_BIAS, DNNL_ARG_DST};
    dnnl_exec_arg_t args[4];
    for (int k = 0; k < 4; k++) {
        const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, what[k], index[k]);
        dnnl_memory_t mem;
        void *h;
        dnnl_memory_create(&mem, md, eng, DNNL_MEMORY_ALLOCATE);
        dnnl_memory_get_data_handle(mem, &h);
        memset(h, 0, dnnl_memory_desc_get_size(md));
        args[k] = (dnnl_exec_arg_t){arg[k], mem};
    }
    dnnl_primitive_t prim;
    dnnl_primitive_create(&prim, pd);
    double total = 0, best = 1e30;
    for (int r = 0; r < repeats + 2; r++) {
        double t0 = now_s();
        dnnl_primitive_execute(prim, stream, 4, args);
        dnnl_stream_wait(stream);
        double t = (now_s() - t0) * 1e3;
        if (r < 2) continue; /* warm-up: first touch, kernel generation */
        total += t;
        if (t < best) best = t;
    }
    *min_ms = best;
    *mean_ms = total / repeats;
    dnnl_primitive_destroy(prim);
    for (int k = 0; k < 4; k++) dnnl_memory_destroy(args[k].memory);
    dnnl_primitive_desc_destroy(pd);
    return 0;
}

int main(int argc, char **argv) {
    static const char usage[] = "usage: bench_conv_layers [--batch 8] [--repeats 8] [--kinds TEXT]\n";
    int batch = 8, repeats = 8;
    const char *only = "";
    for (int a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--batch") == 0 && a + 1 < argc) batch = atoi(argv[++a]);
        else if (strcmp(argv[a], "--repeats") == 0 && a + 1 < argc) repeats = atoi(argv[++a]);
        else if (strcmp(argv[a], "--kinds") == 0 && a + 1 < argc) only = argv[++a];
        else {
            fputs(usage, stderr);
            return 2;
        }
    }
    if (batch < 1 || repeats < 1) {
        fputs(usage, stderr);
        return 2;
    }
    /* VGG16's distinct convolution shapes: input channels, output channels, image size. */
    static const int shapes[][3] = {{3, 64, 224},    {64, 64, 224},   {64, 128, 112},
                                    {128, 128, 112}, {128, 256, 56},  {256, 256, 56},
                                    {256, 512, 28},  {512, 512, 28},  {512, 512, 14}};
    static const conv_kind kinds[] = {
        {"f32 direct", dnnl_convolution_direct, {dnnl_f32, dnnl_f32, dnnl_f32}},
        {"f32 winograd", dnnl_convolution_winograd, {dnnl_f32, dnnl_f32, dnnl_f32}},
        {"bf16 direct", dnnl_convolution_direct, {dnnl_bf16, dnnl_bf16, dnnl_bf16}},
        {"int8 direct", dnnl_convolution_direct, {dnnl_u8, dnnl_s8, dnnl_u8}},
        {"int8 winograd", dnnl_convolution_winograd, {dnnl_u8, dnnl_s8, dnnl_u8}}};
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    if (dnnl_engine_create(&eng, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&stream, eng, dnnl_stream_default_flags) != dnnl_success) {
        fprintf(stderr, "no oneDNN CPU engine\n");
        return 1;
    }
    printf("batch %d, %d timed runs each; ms min / mean\n", batch, repeats);
    printf("%-16s %-13s %-34s %8s %8s\n", "shape", "kind", "implementation", "min", "mean");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        char shape[32];
        snprintf(shape, sizeof shape, "%d->%d @%d", shapes[s][0], shapes[s][1], shapes[s][2]);
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
            char impl[64];
            double mn, mean;
            if (!strstr(kinds[k].name, only)) continue;
            if (time_conv(eng, stream, batch, shapes[s][0], shapes[s][1], shapes[s][2],
                          &kinds[k], repeats, impl, sizeof impl, &mn, &mean) != 0)
                printf("%-16s %-13s %-34s\n", shape, kinds[k].name, "(no kernel)");
            else
                printf("%-16s %-13s %-34s %8.2f %8.2f\n", shape, kinds[k].name, impl, mn, mean);
        }
    }
    dnnl_stream_destroy(stream);
    dnnl_engine_destroy(eng);
    return 0;
}
