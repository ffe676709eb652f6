/* metrics.h - the service's Prometheus metrics: one struct, one name/help/type table.
 *
 * Counters and gauges are C11 atomics; each histogram has its own small mutex. Every
 * function is thread-safe and cheap enough for the request path. metrics_render() writes the
 * text exposition format (version 0.0.4) that `promtool check metrics` accepts. */
#ifndef METRICS_H
#define METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "engine.h"
#include "errors.h"
#include "service_state.h"

typedef struct metrics metrics;

typedef enum {
    METRICS_EP_CLASSIFY,
    METRICS_EP_HEALTHZ,
    METRICS_EP_READYZ,
    METRICS_EP_METRICS,
    METRICS_EP_V2_INFER, /* POST /v2/models/M/infer */
    METRICS_EP_V2,       /* the other /v2 routes: health and metadata */
    METRICS_EP_DEMO,     /* GET / */
    METRICS_EP_EXPLAIN,  /* POST /explain */
    METRICS_EP_OTHER,
    METRICS_EP_COUNT
} metrics_endpoint;

metrics *metrics_create(void);
void metrics_free(metrics *m);

/* Static facts shown as vggserve_model_info{...} 1. weights_source: "file" or "generated". */
void metrics_set_model_info(metrics *m, const char *model, vgg_algo algo,
                            vgg_precision precision, const char *weights_source, int max_batch,
                            int workers, int threads_per_worker);

/* The protocol a request came by: vggserve_requests_total's `protocol` label. */
typedef enum { METRICS_PROTO_HTTP, METRICS_PROTO_GRPC, METRICS_PROTO_COUNT } metrics_protocol;

/* An HTTP request answered with http_code. */
void metrics_observe_request(metrics *m, metrics_endpoint ep, int http_code, double seconds);
/* A request by either protocol; a gRPC call counts under its status's HTTP code (499:
 * cancelled by the client), so one `code` label serves both. */
void metrics_observe_request_by(metrics *m, metrics_protocol proto, metrics_endpoint ep,
                                int http_code, double seconds);
void metrics_observe_queue_wait(metrics *m, double seconds);
void metrics_observe_batch(metrics *m, int batch_size, double seconds, bool ok);
void metrics_add_images(metrics *m, int n);
/* A pass that explained n images (Grad-CAM) and took seconds in all. */
void metrics_observe_explain(metrics *m, int n, double seconds);
void metrics_add_rejected(metrics *m, api_status why); /* reason label: api_status_type() */
void metrics_set_log_lines_dropped(metrics *m, unsigned long long n); /* the log queue's count */
void metrics_set_queue_depth(metrics *m, int depth);
void metrics_add_in_flight(metrics *m, int delta);
void metrics_set_state(metrics *m, service_state state);

/* Per model (the KServe v2 views; POST /classify counts as the full model, index 0): what
 * each inference request cost, the numbers Triton's statistics extension reports. */
#define METRICS_MAX_MODELS 4
#define METRICS_MAX_BATCH VGG_MAX_BATCH /* max_batch_size's limit */

void metrics_set_model_names(metrics *m, const char *const *names, int n);

typedef struct {
    bool ok;                /* answered 200 */
    int images;             /* images inferred (0 when it failed before the queue) */
    double total_s;         /* first byte to answer */
    double queue_s, input_s, infer_s, output_s; /* success only: waiting, decoding, forward
                                                 * passes, writing the answer */
} metrics_inference;

void metrics_observe_inference(metrics *m, int model, const metrics_inference *x);

typedef struct {
    unsigned long long count, ns;
} metrics_duration;

typedef struct {
    unsigned long long images, last_unix_ms;
    metrics_duration success, fail, queue, input, infer, output; /* phases count successes */
} metrics_model_totals;

/* Snapshots of the same counters /metrics renders (no second bookkeeping). */
void metrics_model_totals_get(metrics *m, int model, metrics_model_totals *out);
unsigned long long metrics_batches_run(metrics *m);
metrics_duration metrics_batch_size_totals(metrics *m, int batch_size); /* 1..METRICS_MAX_BATCH */

/* Renders the exposition text; caller frees. */
char *metrics_render(metrics *m, size_t *len);

#endif
