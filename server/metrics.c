/* metrics.c - counters, gauges and histograms, rendered in Prometheus text format. */
#include "metrics.h"

#include <stdbool.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const endpoint_names[METRICS_EP_COUNT] = {
    "classify", "healthz", "readyz", "metrics", "v2_infer", "v2", "demo", "explain", "other"};
static const char *const protocol_names[METRICS_PROTO_COUNT] = {"http", "grpc"};
/* The status codes the service can send, plus 499 (the client left before the answer, as
 * nginx counts it); anything else is counted under 500. */
static const int codes[] = {200, 204, 400, 401, 403, 404, 405, 408, 413, 414, 415, 422, 429,
                            431, 499, 500, 501, 503, 504};
#define N_CODES (sizeof codes / sizeof codes[0])
/* Rejections are counted by api_status; the reason label is its api_status_type(), so the
 * one table of names is api/errors.c's. */
#define N_REASONS API_STATUS_COUNT

#define MAX_BUCKETS 16
typedef struct {
    pthread_mutex_t lock;
    int n_bounds;
    double bounds[MAX_BUCKETS];
    uint64_t counts[MAX_BUCKETS + 1]; /* last: +Inf */
    double sum;
    uint64_t count;
} histogram;

/* One model's inference counters (nanoseconds, so they add atomically). */
typedef struct {
    atomic_ullong images, last_unix_ms;
    atomic_ullong success, success_ns, fail, fail_ns;
    atomic_ullong queue_ns, input_ns, infer_ns, output_ns; /* over the successes */
} model_counters;

/* One loaded version (metrics.h): its views' counters, its batcher's passes and queue. */
struct metrics_series {
    char model[KSERVE_V2_MAX_NAME];
    char views[METRICS_VIEWS][KSERVE_V2_MAX_NAME]; /* the views' names: M, M_image, M_tensor */
    long long version;
    model_counters c[METRICS_VIEWS];
    atomic_ullong batches, batches_of[METRICS_MAX_BATCH], batch_ns_of[METRICS_MAX_BATCH];
    atomic_int queue_depth;
    histogram queue_wait, inference;
    /* A newer series of the same model and version exists (a rebuild with other settings, its
     * old build finishing its requests): this one is neither rendered nor looked up, so a
     * scrape never holds one label set twice. Written under the write lock. */
    bool hidden;
    metrics_series *next;
};

typedef struct {
    char model[KSERVE_V2_MAX_NAME];
    histogram seconds;
} load_times;

struct metrics {
    pthread_rwlock_t series_lock; /* the list; the counters themselves are atomics */
    metrics_series *series, *series_tail;
    pthread_mutex_t loads_lock;
    load_times *loads[METRICS_MAX_LOADED_NAMES];
    int n_loads;
    pthread_mutex_t state_lock; /* the state source: held while a scrape calls it */
    metrics_state_source state_fn;
    void *state_ctx;
    atomic_ullong requests[METRICS_PROTO_COUNT][METRICS_EP_COUNT][N_CODES];
    histogram request_seconds[METRICS_EP_COUNT];
    histogram queue_wait_seconds, inference_seconds, batch_size, explain_seconds;
    atomic_ullong explanations;
    atomic_ullong images, batches, batch_failures;
    atomic_ullong rejected[N_REASONS];
    atomic_ullong log_lines_dropped;
    atomic_int queue_depth, in_flight;
    char model_info[512];
    _Atomic int state; /* service_state */
    pthread_mutex_t info_lock;
};

static void histogram_init(histogram *h, const double *bounds, int n) {
    memset(h, 0, sizeof *h);
    pthread_mutex_init(&h->lock, NULL);
    h->n_bounds = n;
    memcpy(h->bounds, bounds, n * sizeof *bounds);
}

static void histogram_observe(histogram *h, double v) {
    pthread_mutex_lock(&h->lock);
    int i = 0;
    while (i < h->n_bounds && v > h->bounds[i]) i++;
    h->counts[i]++;
    h->sum += v;
    h->count++;
    pthread_mutex_unlock(&h->lock);
}

static const double latency[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
#define N_LATENCY (int)(sizeof latency / sizeof latency[0])
static const double load_bounds[] = {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300};
#define N_LOAD_BOUNDS (int)(sizeof load_bounds / sizeof load_bounds[0])

metrics *metrics_create(void) {
    metrics *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    pthread_rwlock_init(&m->series_lock, NULL);
    pthread_mutex_init(&m->loads_lock, NULL);
    pthread_mutex_init(&m->state_lock, NULL);
    static const double sizes[] = {1, 2, 4, 8, 16, 32, 64};
    for (int e = 0; e < METRICS_EP_COUNT; e++) histogram_init(&m->request_seconds[e], latency, 12);
    histogram_init(&m->queue_wait_seconds, latency, 12);
    histogram_init(&m->inference_seconds, latency, 12);
    histogram_init(&m->batch_size, sizes, 7);
    histogram_init(&m->explain_seconds, latency, 12);
    pthread_mutex_init(&m->info_lock, NULL);
    atomic_store(&m->state, SERVICE_LOADING);
    return m;
}

void metrics_free(metrics *m) {
    if (!m) return;
    for (int e = 0; e < METRICS_EP_COUNT; e++) pthread_mutex_destroy(&m->request_seconds[e].lock);
    pthread_mutex_destroy(&m->queue_wait_seconds.lock);
    pthread_mutex_destroy(&m->inference_seconds.lock);
    pthread_mutex_destroy(&m->batch_size.lock);
    pthread_mutex_destroy(&m->explain_seconds.lock);
    pthread_mutex_destroy(&m->info_lock);
    for (metrics_series *x = m->series, *next; x; x = next) {
        next = x->next;
        pthread_mutex_destroy(&x->queue_wait.lock);
        pthread_mutex_destroy(&x->inference.lock);
        free(x);
    }
    for (int i = 0; i < m->n_loads; i++) {
        pthread_mutex_destroy(&m->loads[i]->seconds.lock);
        free(m->loads[i]);
    }
    pthread_rwlock_destroy(&m->series_lock);
    pthread_mutex_destroy(&m->loads_lock);
    pthread_mutex_destroy(&m->state_lock);
    free(m);
}

void metrics_set_model_info(metrics *m, const char *model, vgg_algo algo,
                            vgg_precision precision, const char *weights_source, int max_batch,
                            int workers, int threads_per_worker) {
    pthread_mutex_lock(&m->info_lock);
    snprintf(m->model_info, sizeof m->model_info,
             "model=\"%s\",algo=\"%s\",precision=\"%s\",weights=\"%s\",max_batch_size=\"%d\","
             "workers=\"%d\",threads_per_worker=\"%d\"",
             model, vgg_algo_name(algo), vgg_precision_name(precision), weights_source, max_batch,
             workers, threads_per_worker);
    pthread_mutex_unlock(&m->info_lock);
}

void metrics_set_state(metrics *m, service_state state) { atomic_store(&m->state, (int)state); }

void metrics_observe_request(metrics *m, metrics_endpoint ep, int http_code, double seconds) {
    metrics_observe_request_by(m, METRICS_PROTO_HTTP, ep, http_code, seconds);
}

void metrics_observe_request_by(metrics *m, metrics_protocol proto, metrics_endpoint ep,
                                int http_code, double seconds) {
    size_t c = 0;
    while (c < N_CODES && codes[c] != http_code) c++;
    if (c == N_CODES)
        for (c = 0; codes[c] != 500; c++) {
        }
    atomic_fetch_add(&m->requests[proto][ep][c], 1);
    histogram_observe(&m->request_seconds[ep], seconds);
}

/* ---------------------------------------------------------------- series */

metrics_series *metrics_series_add(metrics *m, const char *model, long long version) {
    metrics_series *x = calloc(1, sizeof *x);
    if (!x) return NULL;
    snprintf(x->model, sizeof x->model, "%.*s", KSERVE_V2_MAX_NAME - 8, model);
    for (int v = 0; v < METRICS_VIEWS; v++)
        kserve_v2_view_name(x->model, (kserve_v2_view)v, x->views[v], sizeof x->views[v]);
    x->version = version;
    histogram_init(&x->queue_wait, latency, N_LATENCY);
    histogram_init(&x->inference, latency, N_LATENCY);
    pthread_rwlock_wrlock(&m->series_lock);
    for (metrics_series *old = m->series; old; old = old->next)
        if (old->version == version && strcmp(old->model, x->model) == 0) old->hidden = true;
    if (m->series_tail) m->series_tail->next = x;
    else m->series = x;
    m->series_tail = x;
    pthread_rwlock_unlock(&m->series_lock);
    return x;
}

void metrics_series_remove(metrics *m, metrics_series *s) {
    if (!s) return;
    pthread_rwlock_wrlock(&m->series_lock);
    metrics_series *prev = NULL;
    for (metrics_series *x = m->series; x; prev = x, x = x->next)
        if (x == s) {
            if (prev) prev->next = x->next;
            else m->series = x->next;
            if (m->series_tail == x) m->series_tail = prev;
            break;
        }
    /* The shown series of a model and version went (a rebuild that failed): the newest one
     * left of them, serving still, is shown again. */
    metrics_series *newest = NULL;
    for (metrics_series *x = m->series; x && !s->hidden; x = x->next)
        if (x->version == s->version && strcmp(x->model, s->model) == 0) newest = x;
    if (newest) newest->hidden = false;
    pthread_rwlock_unlock(&m->series_lock);
    atomic_fetch_sub(&m->queue_depth, atomic_load(&s->queue_depth)); /* 0 once drained */
    pthread_mutex_destroy(&s->queue_wait.lock);
    pthread_mutex_destroy(&s->inference.lock);
    free(s);
}

void metrics_series_queue_wait(metrics *m, metrics_series *s, double seconds) {
    histogram_observe(&m->queue_wait_seconds, seconds);
    if (s) histogram_observe(&s->queue_wait, seconds);
}

void metrics_series_batch(metrics *m, metrics_series *s, int batch_size, double seconds,
                          bool ok) {
    histogram_observe(&m->batch_size, batch_size);
    histogram_observe(&m->inference_seconds, seconds);
    atomic_fetch_add(&m->batches, 1);
    if (ok) atomic_fetch_add(&m->images, (unsigned long long)batch_size);
    else atomic_fetch_add(&m->batch_failures, 1);
    if (!s) return;
    histogram_observe(&s->inference, seconds);
    atomic_fetch_add(&s->batches, 1);
    if (batch_size >= 1 && batch_size <= METRICS_MAX_BATCH && ok) {
        atomic_fetch_add(&s->batches_of[batch_size - 1], 1);
        atomic_fetch_add(&s->batch_ns_of[batch_size - 1], (unsigned long long)(seconds * 1e9));
    }
}

void metrics_series_queue_depth(metrics *m, metrics_series *s, int depth) {
    if (!s) {
        atomic_store(&m->queue_depth, depth);
        return;
    }
    int was = atomic_exchange(&s->queue_depth, depth);
    atomic_fetch_add(&m->queue_depth, depth - was);
}

void metrics_observe_explain(metrics *m, int n, double seconds) {
    atomic_fetch_add(&m->explanations, (unsigned long long)n);
    histogram_observe(&m->explain_seconds, seconds);
}

void metrics_add_images(metrics *m, int n) { atomic_fetch_add(&m->images, (unsigned long long)n); }

void metrics_set_log_lines_dropped(metrics *m, unsigned long long n) {
    atomic_store(&m->log_lines_dropped, n);
}

void metrics_add_rejected(metrics *m, api_status why) {
    if (why > API_OK && why < API_STATUS_COUNT) atomic_fetch_add(&m->rejected[why], 1);
}

static unsigned long long ns_of(double seconds) {
    return seconds > 0 ? (unsigned long long)(seconds * 1e9) : 0;
}

/* The series of model and version (0: the highest); series_lock held. */
static metrics_series *find_series_locked(metrics *m, const char *model, long long version) {
    metrics_series *best = NULL;
    for (metrics_series *x = m->series; x; x = x->next)
        if (!x->hidden && strcmp(x->model, model) == 0 &&
            (version ? x->version == version : !best || x->version > best->version))
            best = x;
    return best;
}

void metrics_observe_inference(metrics *m, const char *model, long long version,
                               kserve_v2_view view, const metrics_inference *x) {
    if (!model || (int)view < 0 || (int)view >= METRICS_VIEWS) return;
    pthread_rwlock_rdlock(&m->series_lock);
    metrics_series *s = find_series_locked(m, model, version);
    if (!s) {
        pthread_rwlock_unlock(&m->series_lock);
        return;
    }
    model_counters *c = &s->c[view];
    atomic_fetch_add(&c->images, (unsigned long long)(x->images > 0 ? x->images : 0));
    if (!x->ok) {
        atomic_fetch_add(&c->fail, 1);
        atomic_fetch_add(&c->fail_ns, ns_of(x->total_s));
    } else {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        atomic_store(&c->last_unix_ms,
                     (unsigned long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
        atomic_fetch_add(&c->success, 1);
        atomic_fetch_add(&c->success_ns, ns_of(x->total_s));
        atomic_fetch_add(&c->queue_ns, ns_of(x->queue_s));
        atomic_fetch_add(&c->input_ns, ns_of(x->input_s));
        atomic_fetch_add(&c->infer_ns, ns_of(x->infer_s));
        atomic_fetch_add(&c->output_ns, ns_of(x->output_s));
    }
    pthread_rwlock_unlock(&m->series_lock);
}

static void totals_of(model_counters *c, metrics_model_totals *out) {
    unsigned long long ok = atomic_load(&c->success);
    out->images = atomic_load(&c->images);
    out->last_unix_ms = atomic_load(&c->last_unix_ms);
    out->success = (metrics_duration){ok, atomic_load(&c->success_ns)};
    out->fail = (metrics_duration){atomic_load(&c->fail), atomic_load(&c->fail_ns)};
    out->queue = (metrics_duration){ok, atomic_load(&c->queue_ns)};
    out->input = (metrics_duration){ok, atomic_load(&c->input_ns)};
    out->infer = (metrics_duration){ok, atomic_load(&c->infer_ns)};
    out->output = (metrics_duration){ok, atomic_load(&c->output_ns)};
}

static void version_totals_of(metrics_series *x, metrics_version_totals *out) {
    memset(out, 0, sizeof *out);
    snprintf(out->model, sizeof out->model, "%s", x->model);
    out->version = x->version;
    for (int v = 0; v < METRICS_VIEWS; v++) totals_of(&x->c[v], &out->views[v]);
    out->batches = atomic_load(&x->batches);
    for (int b = 0; b < METRICS_MAX_BATCH; b++)
        out->batch_of[b] = (metrics_duration){atomic_load(&x->batches_of[b]),
                                              atomic_load(&x->batch_ns_of[b])};
}

int metrics_version_totals_get(metrics *m, const char *model, long long version,
                               metrics_version_totals *out, int max) {
    int n = 0;
    pthread_rwlock_rdlock(&m->series_lock);
    for (metrics_series *x = m->series; x && n < max; x = x->next)
        if (!x->hidden && (!model || strcmp(x->model, model) == 0) &&
            (!version || x->version == version))
            version_totals_of(x, &out[n++]);
    pthread_rwlock_unlock(&m->series_lock);
    return n;
}

/* ---------------------------------------------------------------- loads and states */

void metrics_observe_model_load(metrics *m, const char *model, double seconds) {
    pthread_mutex_lock(&m->loads_lock);
    load_times *t = NULL;
    for (int i = 0; i < m->n_loads && !t; i++)
        if (strcmp(m->loads[i]->model, model) == 0) t = m->loads[i];
    if (!t && m->n_loads < METRICS_MAX_LOADED_NAMES && (t = calloc(1, sizeof *t))) {
        snprintf(t->model, sizeof t->model, "%s", model);
        histogram_init(&t->seconds, load_bounds, N_LOAD_BOUNDS);
        m->loads[m->n_loads++] = t;
    }
    if (t) histogram_observe(&t->seconds, seconds);
    pthread_mutex_unlock(&m->loads_lock);
}

void metrics_set_state_source(metrics *m, metrics_state_source fn, void *ctx) {
    pthread_mutex_lock(&m->state_lock);
    m->state_fn = fn;
    m->state_ctx = ctx;
    pthread_mutex_unlock(&m->state_lock);
}

void metrics_add_in_flight(metrics *m, int delta) { atomic_fetch_add(&m->in_flight, delta); }

/* ---------------------------------------------------------------- rendering */

typedef struct {
    char *buf; /* NULL once an allocation failed: every later put is dropped */
    size_t len, cap;
} text;

static void put(text *t, const char *fmt, ...) {
    va_list ap;
    while (t->buf) {
        va_start(ap, fmt);
        int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        t->cap = t->cap * 2 + (size_t)n + 1;
        char *grown = realloc(t->buf, t->cap);
        if (!grown) free(t->buf);
        t->buf = grown;
    }
}

static void header(text *t, const char *name, const char *type, const char *help) {
    put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void put_histogram(text *t, const char *name, const char *labels, histogram *h) {
    pthread_mutex_lock(&h->lock);
    uint64_t cumulative = 0;
    const char *sep = labels[0] ? "," : "";
    for (int i = 0; i < h->n_bounds; i++) {
        cumulative += h->counts[i];
        put(t, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, h->bounds[i],
            (unsigned long long)cumulative);
    }
    cumulative += h->counts[h->n_bounds];
    put(t, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long)cumulative);
    if (labels[0]) {
        put(t, "%s_sum{%s} %.9g\n%s_count{%s} %llu\n", name, labels, h->sum, name, labels,
            (unsigned long long)h->count);
    } else {
        put(t, "%s_sum %.9g\n%s_count %llu\n", name, h->sum, name, (unsigned long long)h->count);
    }
    pthread_mutex_unlock(&h->lock);
}

static long long resident_bytes(void) {
    FILE *fp = fopen("/proc/self/statm", "r");
    long long pages = 0, resident = 0;
    if (fp) {
        if (fscanf(fp, "%lld %lld", &pages, &resident) != 2) resident = 0;
        fclose(fp);
    }
    return resident * sysconf(_SC_PAGESIZE);
}

/* x, or the first series after it that is not hidden. */
static metrics_series *shown(metrics_series *x) {
    while (x && x->hidden) x = x->next;
    return x;
}

/* The per-version families of the views' requests: the `model` label is the view's name, as
 * Triton's statistics name it. Each family's samples stay together after its HELP and TYPE,
 * as the format requires; series_lock is held for reading throughout. */
static void render_view_counters(metrics_series *first, text *t) {
    header(t, "vggserve_model_requests_total", "counter",
           "Inference requests by model view, version and outcome (success: answered 200).");
    for (metrics_series *s = shown(first); s; s = shown(s->next))
        for (int v = 0; v < METRICS_VIEWS; v++)
            put(t, "vggserve_model_requests_total{model=\"%s\",version=\"%lld\","
                   "outcome=\"success\"} %llu\nvggserve_model_requests_total{model=\"%s\","
                   "version=\"%lld\",outcome=\"fail\"} %llu\n",
                s->views[v], s->version, atomic_load(&s->c[v].success), s->views[v], s->version,
                atomic_load(&s->c[v].fail));
    header(t, "vggserve_model_request_seconds_total", "counter",
           "Time from first byte to answer of those requests, summed.");
    for (metrics_series *s = shown(first); s; s = shown(s->next))
        for (int v = 0; v < METRICS_VIEWS; v++)
            put(t, "vggserve_model_request_seconds_total{model=\"%s\",version=\"%lld\","
                   "outcome=\"success\"} %.9f\nvggserve_model_request_seconds_total{model=\"%s\","
                   "version=\"%lld\",outcome=\"fail\"} %.9f\n",
                s->views[v], s->version, atomic_load(&s->c[v].success_ns) / 1e9, s->views[v],
                s->version, atomic_load(&s->c[v].fail_ns) / 1e9);
    header(t, "vggserve_model_images_total", "counter",
           "Images inferred, by model view and version.");
    for (metrics_series *s = shown(first); s; s = shown(s->next))
        for (int v = 0; v < METRICS_VIEWS; v++)
            put(t, "vggserve_model_images_total{model=\"%s\",version=\"%lld\"} %llu\n", s->views[v],
                s->version, atomic_load(&s->c[v].images));
    header(t, "vggserve_model_phase_seconds_total", "counter",
           "Time of the successful requests by phase (queue, compute_input: decoding, "
           "compute_infer: forward passes, compute_output: the answer), summed.");
    static const char *const phase_names[] = {"queue", "compute_input", "compute_infer",
                                              "compute_output"};
    for (metrics_series *s = shown(first); s; s = shown(s->next))
        for (int v = 0; v < METRICS_VIEWS; v++) {
            const atomic_ullong *phases[] = {&s->c[v].queue_ns, &s->c[v].input_ns,
                                             &s->c[v].infer_ns, &s->c[v].output_ns};
            for (int p = 0; p < 4; p++)
                put(t, "vggserve_model_phase_seconds_total{model=\"%s\",version=\"%lld\","
                       "phase=\"%s\"} %.9f\n",
                    s->views[v], s->version, phase_names[p], atomic_load(phases[p]) / 1e9);
        }
    header(t, "vggserve_model_last_inference_timestamp_seconds", "gauge",
           "When the model view last answered an inference (0: never).");
    for (metrics_series *s = shown(first); s; s = shown(s->next))
        for (int v = 0; v < METRICS_VIEWS; v++)
            put(t, "vggserve_model_last_inference_timestamp_seconds{model=\"%s\",version=\"%lld\"} "
                   "%.3f\n", s->views[v], s->version, atomic_load(&s->c[v].last_unix_ms) / 1e3);
}

/* The per-version families of the batcher's passes and queue (`model`: the repository's
 * name); series_lock held for reading. */
static void render_batcher_counters(metrics_series *first, text *t) {
    header(t, "vggserve_batches_by_size_total", "counter",
           "Forward passes run, by model, version and batch size.");
    for (metrics_series *s = shown(first); s; s = shown(s->next))
        for (int b = 1; b <= METRICS_MAX_BATCH; b++) {
            unsigned long long n = atomic_load(&s->batches_of[b - 1]);
            if (n)
                put(t, "vggserve_batches_by_size_total{model=\"%s\",version=\"%lld\","
                       "batch_size=\"%d\"} %llu\n", s->model, s->version, b, n);
        }
    header(t, "vggserve_batch_compute_seconds_total", "counter",
           "Forward pass time by model, version and batch size, summed.");
    for (metrics_series *s = shown(first); s; s = shown(s->next))
        for (int b = 1; b <= METRICS_MAX_BATCH; b++)
            if (atomic_load(&s->batches_of[b - 1]))
                put(t, "vggserve_batch_compute_seconds_total{model=\"%s\",version=\"%lld\","
                       "batch_size=\"%d\"} %.9f\n", s->model, s->version, b,
                    atomic_load(&s->batch_ns_of[b - 1]) / 1e9);
    char labels[KSERVE_V2_MAX_NAME + 64];
    header(t, "vggserve_model_queue_wait_seconds", "histogram",
           "Time an image of this model and version waited in its queue.");
    for (metrics_series *s = shown(first); s; s = shown(s->next)) {
        snprintf(labels, sizeof labels, "model=\"%s\",version=\"%lld\"", s->model, s->version);
        put_histogram(t, "vggserve_model_queue_wait_seconds", labels, &s->queue_wait);
    }
    header(t, "vggserve_model_inference_duration_seconds", "histogram",
           "Forward pass time of one batch of this model and version.");
    for (metrics_series *s = shown(first); s; s = shown(s->next)) {
        snprintf(labels, sizeof labels, "model=\"%s\",version=\"%lld\"", s->model, s->version);
        put_histogram(t, "vggserve_model_inference_duration_seconds", labels, &s->inference);
    }
    header(t, "vggserve_model_queue_depth", "gauge",
           "Images waiting for a worker of this model and version.");
    for (metrics_series *s = shown(first); s; s = shown(s->next))
        put(t, "vggserve_model_queue_depth{model=\"%s\",version=\"%lld\"} %d\n", s->model,
            s->version, atomic_load(&s->queue_depth));
}

/* The per-version counters (series_lock held for reading). */
static void render_models(metrics *m, text *t) {
    render_view_counters(m->series, t);
    render_batcher_counters(m->series, t);
}

/* vggserve_model_load_seconds and vggserve_model_state (the state source's rows, the first
 * of each model and version). */
static void render_loads_and_states(metrics *m, text *t) {
    char labels[KSERVE_V2_MAX_NAME + 16];
    header(t, "vggserve_model_load_seconds", "histogram",
           "Time of a model's successful loads and swaps: settings, weights, warm-up, switch.");
    pthread_mutex_lock(&m->loads_lock);
    for (int i = 0; i < m->n_loads; i++) {
        snprintf(labels, sizeof labels, "model=\"%s\"", m->loads[i]->model);
        put_histogram(t, "vggserve_model_load_seconds", labels, &m->loads[i]->seconds);
    }
    pthread_mutex_unlock(&m->loads_lock);
    enum { MAX_ROWS = 4096 };
    pthread_mutex_lock(&m->state_lock);
    kserve_v2_index_entry *rows = m->state_fn ? malloc(MAX_ROWS * sizeof *rows) : NULL;
    int n = rows ? m->state_fn(m->state_ctx, rows, MAX_ROWS) : 0;
    pthread_mutex_unlock(&m->state_lock);
    header(t, "vggserve_model_state", "gauge",
           "State of each model version the repository index lists (1 for the current one; "
           "version \"\": the model as a whole, none of its versions loaded).");
    for (int i = 0; i < n; i++) {
        bool seen = false;
        for (int j = 0; j < i && !seen; j++)
            seen = rows[j].version == rows[i].version && strcmp(rows[j].name, rows[i].name) == 0;
        if (seen) continue;
        char version[24] = "";
        if (rows[i].version > 0) snprintf(version, sizeof version, "%lld", rows[i].version);
        for (int st = 0; st <= (int)KSERVE_V2_MODEL_UNLOADING; st++)
            put(t, "vggserve_model_state{model=\"%s\",version=\"%s\",state=\"%s\"} %d\n",
                rows[i].name, version, kserve_v2_model_state_names[st], (int)rows[i].state == st);
    }
    free(rows);
}

char *metrics_render(metrics *m, size_t *len) {
    text t = {malloc(8192), 0, 8192};
    header(&t, "vggserve_requests_total", "counter",
           "Requests by protocol (http, grpc), endpoint and status code (gRPC's as HTTP's).");
    for (int p = 0; p < METRICS_PROTO_COUNT; p++)
        for (int e = 0; e < METRICS_EP_COUNT; e++)
            for (size_t c = 0; c < N_CODES; c++) {
                unsigned long long v = atomic_load(&m->requests[p][e][c]);
                if (v || (p == METRICS_PROTO_HTTP && e == METRICS_EP_CLASSIFY && codes[c] == 200))
                    put(&t, "vggserve_requests_total{protocol=\"%s\",endpoint=\"%s\",code=\"%d\"} "
                        "%llu\n", protocol_names[p], endpoint_names[e], codes[c], v);
            }
    header(&t, "vggserve_request_duration_seconds", "histogram",
           "Time from the first byte of a request to its answer.");
    for (int e = 0; e < METRICS_EP_COUNT; e++) {
        char labels[64];
        snprintf(labels, sizeof labels, "endpoint=\"%s\"", endpoint_names[e]);
        put_histogram(&t, "vggserve_request_duration_seconds", labels, &m->request_seconds[e]);
    }
    header(&t, "vggserve_queue_wait_seconds", "histogram",
           "Time an image waited in the queue before a worker took it.");
    put_histogram(&t, "vggserve_queue_wait_seconds", "", &m->queue_wait_seconds);
    header(&t, "vggserve_inference_duration_seconds", "histogram",
           "Forward pass time of one batch.");
    put_histogram(&t, "vggserve_inference_duration_seconds", "", &m->inference_seconds);
    header(&t, "vggserve_batch_size", "histogram", "Images per forward pass.");
    put_histogram(&t, "vggserve_batch_size", "", &m->batch_size);
    header(&t, "vggserve_explanations_total", "counter", "Grad-CAM maps computed.");
    put(&t, "vggserve_explanations_total %llu\n", (unsigned long long)atomic_load(&m->explanations));
    header(&t, "vggserve_explain_pass_duration_seconds", "histogram",
           "Time of the passes that explained (forward and backward of their whole batch).");
    put_histogram(&t, "vggserve_explain_pass_duration_seconds", "", &m->explain_seconds);
    header(&t, "vggserve_batches_total", "counter", "Forward passes run.");
    put(&t, "vggserve_batches_total %llu\n", (unsigned long long)atomic_load(&m->batches));
    header(&t, "vggserve_batch_failures_total", "counter", "Forward passes that failed.");
    put(&t, "vggserve_batch_failures_total %llu\n",
        (unsigned long long)atomic_load(&m->batch_failures));
    header(&t, "vggserve_images_classified_total", "counter", "Images run through the network.");
    put(&t, "vggserve_images_classified_total %llu\n", (unsigned long long)atomic_load(&m->images));
    header(&t, "vggserve_rejected_total", "counter", "Requests refused, by reason.");
    for (int i = API_OK + 1; i < API_STATUS_COUNT; i++)
        put(&t, "vggserve_rejected_total{reason=\"%s\"} %llu\n", api_status_type((api_status)i),
            (unsigned long long)atomic_load(&m->rejected[i]));
    header(&t, "vggserve_log_lines_dropped_total", "counter",
           "Access log lines dropped because stdout did not take them in time.");
    put(&t, "vggserve_log_lines_dropped_total %llu\n",
        (unsigned long long)atomic_load(&m->log_lines_dropped));
    pthread_rwlock_rdlock(&m->series_lock);
    render_models(m, &t);
    pthread_rwlock_unlock(&m->series_lock);
    render_loads_and_states(m, &t);
    header(&t, "vggserve_queue_depth", "gauge", "Images waiting for a worker.");
    put(&t, "vggserve_queue_depth %d\n", atomic_load(&m->queue_depth));
    header(&t, "vggserve_in_flight_requests", "gauge", "Requests being processed.");
    put(&t, "vggserve_in_flight_requests %d\n", atomic_load(&m->in_flight));
    pthread_mutex_lock(&m->info_lock);
    header(&t, "vggserve_model_info", "gauge",
           "The loaded model; weights=\"generated\" means meaningless predictions.");
    put(&t, "vggserve_model_info{%s} 1\n", m->model_info);
    header(&t, "vggserve_state", "gauge", "Service state (1 for the current one).");
    for (int i = 0; i < SERVICE_STATE_COUNT; i++)
        put(&t, "vggserve_state{state=\"%s\"} %d\n", service_state_name((service_state)i),
            atomic_load(&m->state) == i);
    pthread_mutex_unlock(&m->info_lock);
    header(&t, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    put(&t, "process_resident_memory_bytes %lld\n", resident_bytes());
    *len = t.buf ? t.len : 0;
    return t.buf;
}
