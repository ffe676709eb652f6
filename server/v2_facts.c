/* v2_facts.c - the service's state as the v2 metadata, config and statistics answers see it. */
#include "v2_facts.h"

kserve_v2_model_facts v2_model_facts(const vggserve_config *cfg, const served_model *m,
                                     const model_settings *s, bool ready) {
    kserve_v2_model_facts f = {
        .model = m->name,
        .version = m->version,
        .image_hw = m->image_hw,
        .n_classes = m->n_classes,
        .max_images_per_request = (int)cfg->max_images_per_request,
        .max_batch = s ? s->max_batch_size : (int)cfg->max_batch_size,
        .max_queue_delay_us = s ? s->max_queue_delay_us : cfg->max_queue_delay_us,
        .workers = s ? s->workers : (int)cfg->workers,
        .ready = ready,
        .gradcam_hw = m->explain_hw,
    };
    return f;
}

json_t *v2_stats_json(metrics *m, const char *model, kserve_v2_view v) {
    kserve_v2_view_stats views[KSERVE_V2_VIEW_COUNT];
    kserve_v2_engine_stats engine;
    for (int i = 0; i < KSERVE_V2_VIEW_COUNT; i++) {
        metrics_model_totals t;
        metrics_model_totals_get(m, i, &t);
        views[i] = (kserve_v2_view_stats){
            t.images, t.last_unix_ms,
            {t.success.count, t.success.ns}, {t.fail.count, t.fail.ns},
            {t.queue.count, t.queue.ns}, {t.input.count, t.input.ns},
            {t.infer.count, t.infer.ns}, {t.output.count, t.output.ns}};
    }
    engine.execution_count = metrics_batches_run(m);
    for (int b = 1; b <= KSERVE_V2_MAX_BATCH_STATS; b++) {
        metrics_duration d = metrics_batch_size_totals(m, b);
        engine.batch_infer[b - 1] = (kserve_v2_duration){d.count, d.ns};
    }
    return kserve_v2_stats_json(model, v, views, &engine);
}
