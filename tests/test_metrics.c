/* test_metrics.c - the per-model-and-version series of server/metrics.c, rendered, no server.
 *
 * Labels: each loaded version's series render with its model (the view's name on request
 * counters, the model's on the batcher's) and version; a removed series leaves no line. A
 * rebuild of the same version (its old build still finishing) shows one label set, the new
 * one, and a rebuild that fails gives the label set back to the build serving.
 * vggserve_queue_depth is the sum of the versions' queues. The state gauge shows one row
 * per model and version (the first the source gives), 1 for its state. Load seconds are kept
 * per model. Triton's statistics snapshots are per series. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "test_util.h"

static char *render(metrics *m) {
    size_t len;
    char *text = metrics_render(m, &len);
    EXPECT(text != NULL && strlen(text) == len);
    return text;
}

/* How many lines of text start with prefix. */
static int lines_starting(const char *text, const char *prefix) {
    int n = 0;
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        n += strncmp(p, prefix, strlen(prefix)) == 0;
    return n;
}

/* The value of the one line starting with prefix (the sample's name and labels), or -1. */
static double value_of(const char *text, const char *prefix) {
    if (lines_starting(text, prefix) != 1) return -1;
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, prefix, strlen(prefix)) == 0) return atof(p + strlen(prefix));
    return -1;
}

static const metrics_inference ok_one = {.ok = true, .images = 1, .total_s = 0.01,
                                         .queue_s = 0.001, .infer_s = 0.005};

static void test_labels_and_removal(void) {
    metrics *m = metrics_create();
    metrics_series *a = metrics_series_add(m, "alpha", 1);
    metrics_series *b = metrics_series_add(m, "beta", 3);
    EXPECT(a && b);
    metrics_observe_inference(m, "alpha", 1, KSERVE_V2_VIEW_IMAGE, &ok_one);
    metrics_observe_inference(m, "alpha", 0, KSERVE_V2_VIEW_FULL, &ok_one); /* the latest */
    metrics_observe_inference(m, "beta", 0, KSERVE_V2_VIEW_FULL, &ok_one);
    metrics_observe_inference(m, "beta", 2, KSERVE_V2_VIEW_FULL, &ok_one); /* not loaded */
    metrics_observe_inference(m, "gamma", 0, KSERVE_V2_VIEW_FULL, &ok_one); /* unknown */
    metrics_series_batch(m, a, 2, 0.004, true);
    char *t = render(m);
    EXPECT(value_of(t, "vggserve_model_requests_total{model=\"alpha_image\",version=\"1\","
                       "outcome=\"success\"} ") == 1);
    EXPECT(value_of(t, "vggserve_model_requests_total{model=\"alpha\",version=\"1\","
                       "outcome=\"success\"} ") == 1);
    EXPECT(value_of(t, "vggserve_model_requests_total{model=\"beta\",version=\"3\","
                       "outcome=\"success\"} ") == 1);
    EXPECT(value_of(t, "vggserve_model_images_total{model=\"alpha_tensor\",version=\"1\"} ") == 0);
    EXPECT(value_of(t, "vggserve_batches_by_size_total{model=\"alpha\",version=\"1\","
                       "batch_size=\"2\"} ") == 1);
    EXPECT(value_of(t, "vggserve_model_inference_duration_seconds_count{model=\"alpha\","
                       "version=\"1\"} ") == 1);
    EXPECT(value_of(t, "vggserve_batch_size_count ") == 1); /* the service-wide family */
    EXPECT(strstr(t, "gamma") == NULL);
    EXPECT(strstr(t, "version=\"2\"") == NULL);
    free(t);

    metrics_series_remove(m, b);
    t = render(m);
    EXPECT(strstr(t, "beta") == NULL);
    EXPECT(lines_starting(t, "vggserve_model_requests_total{model=\"alpha") == 8); /* 4 views */
    free(t);
    metrics_series_remove(m, a);
    t = render(m);
    EXPECT(strstr(t, "alpha") == NULL);
    EXPECT(lines_starting(t, "# TYPE vggserve_model_requests_total counter") == 1);
    free(t);
    metrics_free(m);
}

static void test_rebuild_of_the_same_version_shows_one_label_set(void) {
    metrics *m = metrics_create();
    metrics_series *old = metrics_series_add(m, "alpha", 1);
    metrics_observe_inference(m, "alpha", 1, KSERVE_V2_VIEW_FULL, &ok_one);
    metrics_series *rebuilt = metrics_series_add(m, "alpha", 1);
    metrics_observe_inference(m, "alpha", 1, KSERVE_V2_VIEW_FULL, &ok_one);
    metrics_observe_inference(m, "alpha", 1, KSERVE_V2_VIEW_FULL, &ok_one);
    char *t = render(m);
    EXPECT(lines_starting(t, "vggserve_model_images_total{model=\"alpha\",version=\"1\"} ") == 1);
    EXPECT(value_of(t, "vggserve_model_images_total{model=\"alpha\",version=\"1\"} ") == 2);
    EXPECT(lines_starting(t, "vggserve_model_queue_depth{model=\"alpha\"") == 1);
    free(t);
    metrics_version_totals x[4];
    EXPECT(metrics_version_totals_get(m, "alpha", 0, x, 4) == 1);
    EXPECT(x[0].views[KSERVE_V2_VIEW_FULL].success.count == 2);
    metrics_series_remove(m, old); /* the old build's last request answered */
    t = render(m);
    EXPECT(value_of(t, "vggserve_model_images_total{model=\"alpha\",version=\"1\"} ") == 2);
    free(t);
    metrics_series_remove(m, rebuilt);
    /* A rebuild that fails: its series goes, and the build still serving is shown again. */
    metrics_series *serving = metrics_series_add(m, "alpha", 1);
    metrics_observe_inference(m, "alpha", 1, KSERVE_V2_VIEW_FULL, &ok_one);
    metrics_series *failed = metrics_series_add(m, "alpha", 1);
    metrics_series_remove(m, failed);
    t = render(m);
    EXPECT(value_of(t, "vggserve_model_images_total{model=\"alpha\",version=\"1\"} ") == 1);
    free(t);
    metrics_series_remove(m, serving);
    metrics_free(m);
}

static void test_queue_depth_is_the_sum(void) {
    metrics *m = metrics_create();
    metrics_series *a = metrics_series_add(m, "alpha", 1);
    metrics_series *b = metrics_series_add(m, "beta", 1);
    metrics_series_queue_depth(m, a, 3);
    metrics_series_queue_depth(m, b, 2);
    metrics_series_queue_depth(m, a, 4);
    char *t = render(m);
    EXPECT(value_of(t, "vggserve_queue_depth ") == 6);
    EXPECT(value_of(t, "vggserve_model_queue_depth{model=\"alpha\",version=\"1\"} ") == 4);
    EXPECT(value_of(t, "vggserve_model_queue_depth{model=\"beta\",version=\"1\"} ") == 2);
    free(t);
    metrics_series_remove(m, a); /* what it still counted leaves the sum */
    t = render(m);
    EXPECT(value_of(t, "vggserve_queue_depth ") == 2);
    free(t);
    metrics_series_remove(m, b);
    metrics_free(m);
}

static int fake_index(void *ctx, kserve_v2_index_entry *out, int max) {
    (void)ctx;
    const kserve_v2_index_entry rows[] = {
        {"alpha", 2, KSERVE_V2_MODEL_READY, ""},
        {"alpha", 1, KSERVE_V2_MODEL_UNLOADING, "finishing"},
        {"alpha", 2, KSERVE_V2_MODEL_UNAVAILABLE, "a later row of the same version"},
        {"beta", 0, KSERVE_V2_MODEL_UNAVAILABLE, "not loaded"},
    };
    int n = (int)(sizeof rows / sizeof rows[0]);
    for (int i = 0; i < n && i < max; i++) out[i] = rows[i];
    return n < max ? n : max;
}

static void test_state_gauge_and_load_seconds(void) {
    metrics *m = metrics_create();
    char *t = render(m);
    EXPECT(lines_starting(t, "vggserve_model_state{") == 0); /* no source: no rows */
    free(t);
    metrics_set_state_source(m, fake_index, NULL);
    metrics_observe_model_load(m, "alpha", 0.5);
    metrics_observe_model_load(m, "alpha", 3.0);
    t = render(m);
    EXPECT(lines_starting(t, "vggserve_model_state{") == 3 * 4);
    EXPECT(value_of(t, "vggserve_model_state{model=\"alpha\",version=\"2\","
                       "state=\"READY\"} ") == 1);
    EXPECT(value_of(t, "vggserve_model_state{model=\"alpha\",version=\"2\","
                       "state=\"UNAVAILABLE\"} ") == 0);
    EXPECT(value_of(t, "vggserve_model_state{model=\"alpha\",version=\"1\","
                       "state=\"UNLOADING\"} ") == 1);
    EXPECT(value_of(t, "vggserve_model_state{model=\"beta\",version=\"\","
                       "state=\"UNAVAILABLE\"} ") == 1);
    EXPECT(value_of(t, "vggserve_model_state{model=\"beta\",version=\"\",state=\"READY\"} ") == 0);
    EXPECT(value_of(t, "vggserve_model_load_seconds_count{model=\"alpha\"} ") == 2);
    EXPECT(value_of(t, "vggserve_model_load_seconds_sum{model=\"alpha\"} ") == 3.5);
    EXPECT(value_of(t, "vggserve_model_load_seconds_bucket{model=\"alpha\",le=\"1\"} ") == 1);
    EXPECT(lines_starting(t, "# TYPE vggserve_model_load_seconds histogram") == 1);
    free(t);
    metrics_set_state_source(m, NULL, NULL);
    t = render(m);
    EXPECT(lines_starting(t, "vggserve_model_state{") == 0);
    free(t);
    metrics_free(m);
}

int main(void) {
    static const test_case tests[] = {
        {"labels, and removal", test_labels_and_removal},
        {"a rebuild of the same version", test_rebuild_of_the_same_version_shows_one_label_set},
        {"queue depth sum", test_queue_depth_is_the_sum},
        {"state gauge and load seconds", test_state_gauge_and_load_seconds},
    };
    test_run(tests, sizeof tests / sizeof tests[0]);
    return test_summary();
}
