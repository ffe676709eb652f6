/* v2_facts.c - the service's state as the v2 metadata, config and statistics answers see it. */
#include "v2_facts.h"

#include <stdio.h>
#include <stdlib.h>

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

json_t *v2_stats_json(metrics *m, const char *model, long long version, kserve_v2_view v) {
    enum { MAX_SERIES = 256 };
    metrics_version_totals *x = malloc(MAX_SERIES * sizeof *x);
    json_t *a = json_array();
    int n = x ? metrics_version_totals_get(m, model, version, x, MAX_SERIES) : 0;
    for (int k = 0; k < n; k++) {
        kserve_v2_view_stats views[KSERVE_V2_VIEW_COUNT];
        kserve_v2_engine_stats engine;
        for (int i = 0; i < KSERVE_V2_VIEW_COUNT; i++) {
            const metrics_model_totals *t = &x[k].views[i];
            views[i] = (kserve_v2_view_stats){
                t->images, t->last_unix_ms,
                {t->success.count, t->success.ns}, {t->fail.count, t->fail.ns},
                {t->queue.count, t->queue.ns}, {t->input.count, t->input.ns},
                {t->infer.count, t->infer.ns}, {t->output.count, t->output.ns}};
        }
        engine.execution_count = x[k].batches;
        for (int b = 1; b <= KSERVE_V2_MAX_BATCH_STATS && b <= METRICS_MAX_BATCH; b++)
            engine.batch_infer[b - 1] =
                (kserve_v2_duration){x[k].batch_of[b - 1].count, x[k].batch_of[b - 1].ns};
        kserve_v2_stats_append(a, x[k].model, x[k].version, v, views, &engine);
    }
    free(x);
    return json_pack("{s:o}", "model_stats", a);
}

json_t *v2_repository_index_json(repository *repo, bool ready, bool ready_only) {
    enum { MAX_INDEX_ROWS = 4096 };
    kserve_v2_index_entry *rows = malloc(MAX_INDEX_ROWS * sizeof *rows);
    if (!rows) return NULL;
    int n = repository_index(repo, rows, MAX_INDEX_ROWS);
    for (int i = 0; i < n && !ready; i++)
        if (rows[i].state == KSERVE_V2_MODEL_READY) {
            rows[i].state = KSERVE_V2_MODEL_UNAVAILABLE;
            snprintf(rows[i].reason, sizeof rows[i].reason, "the service is not ready");
        }
    json_t *j = kserve_v2_repository_entries_json(rows, n, ready_only);
    free(rows);
    return j;
}
