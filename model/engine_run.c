/* engine_run.c - an engine: one worker's stream, cached plans and shared buffers over a shared
 * model; running plans (engine_internal.h). */
#include "engine_internal.h"

#include <dnnl.h>
#include <dnnl_debug.h>
#include <omp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topk.h"

/* Grows a buffer to at least `need` bytes (contents are not kept). */
int ensure_buffer(void **buf, size_t *have, size_t need) {
    if (*have >= need && *buf) return 0;
    free(*buf);
    *buf = alloc_aligned(need);
    *have = *buf ? need : 0;
    return *buf ? 0 : -1;
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
    CHECK(dnnl_stream_create(&e->stream, m->eng, dnnl_stream_default_flags),
          "creating a stream", err, errlen);
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
int run_steps(vgg_engine *e, plan *p, int first, int end, const float *input,
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
            CHECK(dnnl_memory_set_data_handle(st->args[a].memory, h), st->desc, err, errlen);
        }
        CHECK(dnnl_primitive_execute(st->prim, e->stream, st->n_args, st->args),
              st->desc, err, errlen);
        if (observe && st->layer >= 0 && st->dst >= 0) {
            CHECK(dnnl_stream_wait(e->stream), "forward", err, errlen);
            const dnnl_memory_desc_t *md;
            void *h;
            dnnl_memory_get_memory_desc(st->args[st->dst].memory, &md);
            dnnl_memory_get_data_handle(st->args[st->dst].memory, &h);
            observe(ctx, st->layer, h, dnnl_memory_desc_get_size(md) / sizeof(float));
        }
    }
    CHECK(dnnl_stream_wait(e->stream), "forward", err, errlen);
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


bool engine_dnnl_failed(dnnl_status_t s, const char *what, char *err, size_t errlen) {
    if (s == dnnl_success) return false;
    snprintf(err, errlen, "%s: oneDNN %s", what, dnnl_status2str(s));
    return true;
}
