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
#include "kserve_v2.h"
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
void metrics_add_images(metrics *m, int n);
/* A pass that explained n images (Grad-CAM) and took seconds in all. */
void metrics_observe_explain(metrics *m, int n, double seconds);
void metrics_add_rejected(metrics *m, api_status why); /* reason label: api_status_type() */
void metrics_set_log_lines_dropped(metrics *m, unsigned long long n); /* the log queue's count */
void metrics_add_in_flight(metrics *m, int delta);
void metrics_set_state(metrics *m, service_state state);

/* ---------------------------------------------------------------- per model and version
 *
 * A series is one loaded version of one model: its requests by view (the KServe v2 views M,
 * M_image, M_tensor, each Triton's "model"), its batcher's forward passes by batch size, its
 * queue. The repository adds a series when it starts building a version and removes it when
 * it frees the version, so /metrics shows `model` and `version` labels only for versions
 * loaded (or finishing their last requests): the label sets are bounded by what is loaded.
 * Lookups by name take a read lock over the list; adding and removing take it for writing.
 * Never call add or remove while holding a lock that a state source (below) takes. */
#define METRICS_MAX_BATCH VGG_MAX_BATCH /* max_batch_size's limit */
#define METRICS_VIEWS KSERVE_V2_VIEW_COUNT

typedef struct metrics_series metrics_series;

/* A new series for version of model (its name as the repository knows it; at most
 * KSERVE_V2_MAX_NAME - 8 bytes), or NULL when out of memory (nothing is then counted for it). */
metrics_series *metrics_series_add(metrics *m, const char *model, long long version);
/* Removes and frees s (NULL: nothing); no batcher may use it any more. */
void metrics_series_remove(metrics *m, metrics_series *s);

/* The batcher's observations (s may be NULL: only the service-wide figures are kept). */
void metrics_series_queue_wait(metrics *m, metrics_series *s, double seconds);
void metrics_series_batch(metrics *m, metrics_series *s, int batch_size, double seconds, bool ok);
/* The images waiting in s's queue; vggserve_queue_depth is the sum over the series. */
void metrics_series_queue_depth(metrics *m, metrics_series *s, int depth);

typedef struct {
    bool ok;                /* answered 200 */
    int images;             /* images inferred (0 when it failed before the queue) */
    double total_s;         /* first byte to answer */
    double queue_s, input_s, infer_s, output_s; /* success only: waiting, decoding, forward
                                                 * passes, writing the answer */
} metrics_inference;

/* An inference request for view `view` of model (the repository's name, without the view's
 * suffix), version (0: the highest version with a series, for a request that failed before
 * it got one). Not counted when no such series exists (an unknown or unloaded model). */
void metrics_observe_inference(metrics *m, const char *model, long long version,
                               kserve_v2_view view, const metrics_inference *x);

typedef struct {
    unsigned long long count, ns;
} metrics_duration;

typedef struct {
    unsigned long long images, last_unix_ms;
    metrics_duration success, fail, queue, input, infer, output; /* phases count successes */
} metrics_model_totals;

/* A snapshot of one series: the same counters /metrics renders (no second bookkeeping). */
typedef struct {
    char model[KSERVE_V2_MAX_NAME];
    long long version;
    metrics_model_totals views[METRICS_VIEWS];
    unsigned long long batches; /* forward passes of this version's batcher */
    metrics_duration batch_of[METRICS_MAX_BATCH]; /* [b - 1]: successful passes of b images */
} metrics_version_totals;

/* The series of model (NULL: every model), version (0: every version), in the order they
 * were added, into out (at most max). The count. */
int metrics_version_totals_get(metrics *m, const char *model, long long version,
                               metrics_version_totals *out, int max);

/* ---------------------------------------------------------------- model loads and states */

/* A load (or a swap: a load beside the serving versions) of model that succeeded after
 * seconds: vggserve_model_load_seconds{model}. Kept per model name, for at most
 * METRICS_MAX_LOADED_NAMES names. */
#define METRICS_MAX_LOADED_NAMES 256
void metrics_observe_model_load(metrics *m, const char *model, double seconds);

/* Where vggserve_model_state reads the models' states at each scrape: the repository's
 * index (rows of one model and version after the first are ignored). fn NULL: none. Setting
 * waits for a scrape in progress, so the source may be freed once it is unset. */
typedef int (*metrics_state_source)(void *ctx, kserve_v2_index_entry *out, int max);
void metrics_set_state_source(metrics *m, metrics_state_source fn, void *ctx);

/* Renders the exposition text; caller frees. NULL when out of memory. */
char *metrics_render(metrics *m, size_t *len);

#endif
