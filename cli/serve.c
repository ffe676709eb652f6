/* serve.c - `vggserve serve`: the HTTP classification service.
 *
 * Start-up order: HTTP first (so /healthz and /readyz answer while loading), then weights,
 * then workers warm every batch size, then the plain weights are dropped and the state turns
 * ready. SIGTERM/SIGINT are blocked in every thread and taken by the main thread with
 * sigwait: readiness turns 503 draining, accepted work is finished (or answered 503 when the
 * grace runs out), answers are flushed, and the process exits 0. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "batcher.h"
#include "cli_common.h"
#include "commands.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "metrics.h"

static void serve_usage(void) {
    printf("usage: vggserve serve [--config FILE] [--print-config] [--SETTING VALUE]...\n\n"
           "Settings (also VGGSERVE_<SETTING> environment variables and keys of the JSON\n"
           "config file; precedence: flags > environment > file > defaults):\n");
    config_print_flags(stdout);
    printf("  %-26s %s\n  %-26s %s\n", "--config FILE", "JSON config file",
           "--print-config", "print the effective configuration as JSON and exit");
}

/* Defaults < file < environment < flags. Returns 0, 1 (exit 0 after help/print), -1. */
static int load_config(int argc, char **argv, vggserve_config *cfg) {
    char err[1024];
    const char *file = NULL;
    bool print = false;
    config_defaults(cfg);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            serve_usage();
            return 1;
        }
        if (strcmp(argv[i], "--print-config") == 0) print = true;
        else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) file = argv[++i];
        else if (strncmp(argv[i], "--config=", 9) == 0) file = argv[i] + 9;
    }
    if (file && config_load_file(cfg, file, err, sizeof err) != 0) goto fail;
    if (config_load_env(cfg, err, sizeof err) != 0) goto fail;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--print-config") == 0) continue;
        if (strcmp(a, "--config") == 0) {
            i++;
            continue;
        }
        if (strncmp(a, "--config=", 9) == 0) continue;
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err, sizeof err, "unexpected argument '%s'", a);
            goto fail;
        }
        char flag[64];
        const char *eq = strchr(a + 2, '=');
        size_t n = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        snprintf(flag, sizeof flag, "%.*s", (int)n, a + 2);
        const char *key = config_key_for_flag(flag);
        if (!key) {
            snprintf(err, sizeof err, "unknown option '--%s' (see vggserve serve --help)", flag);
            goto fail;
        }
        const char *value = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!value) {
            snprintf(err, sizeof err, "--%s needs a value", flag);
            goto fail;
        }
        char source[80];
        snprintf(source, sizeof source, "flag --%s", flag);
        if (config_set(cfg, key, value, source, err, sizeof err) != 0) goto fail;
    }
    if (config_validate(cfg, err, sizeof err) != 0) goto fail;
    if (print) {
        json_t *j = config_to_json(cfg);
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", s);
        free(s);
        json_decref(j);
        return 1;
    }
    if (config_load_secrets(cfg, err, sizeof err) != 0) goto fail;
    return 0;
fail:
    fprintf(stderr, "error: %s\n", err);
    return -1;
}

/* What a running service holds; service_close() frees whatever is there, so each stage
 * below just returns and the one cleanup runs. */
typedef struct {
    vggserve_config cfg;
    sigset_t sigs;
    double t_start;
    int threads; /* oneDNN threads per worker */
    bool explanations; /* POST /explain works (every precision but int8) */
    preprocess_mode preprocess; /* what the weights were trained with */
    metrics *m;
    http_server *http;
    vgg_weights w;
    bool have_weights;
    vgg_model *model;
    vgg_labels labels; /* the model's class names, lent to the HTTP server */
    batcher *b;
} service;

static void service_close(service *svc) {
    if (svc->b) {
        batcher_drain(svc->b, 0);
        batcher_free(svc->b);
    }
    http_server_stop(svc->http);
    vgg_model_free(svc->model);
    if (svc->have_weights) vgg_weights_free(&svc->w);
    vgg_labels_free(&svc->labels);
    metrics_free(svc->m);
}

/* A shutdown signal already waiting (sent during loading or warm-up)? */
static bool signal_pending(service *svc, long wait_ns) {
    struct timespec t = {0, wait_ns};
    return sigtimedwait(&svc->sigs, NULL, &t) > 0;
}

/* The HTTP server first, so /healthz and /readyz answer while the model loads. */
static int start_http(service *svc) {
    const vggserve_config *cfg = &svc->cfg;
    char err[2048];
    svc->m = metrics_create();
    svc->http = http_server_start(cfg, svc->m, err, sizeof err);
    if (!svc->http) {
        fprintf(stderr, "error: %s\n", err);
        return -1;
    }
    log_event(LOG_INFO, "listening on %s://%s:%d (state loading)",
              cfg->tls_cert_file[0] ? "https" : "http", cfg->host, http_server_port(svc->http));
    if (http_server_admin_port(svc->http) >= 0)
        log_event(LOG_INFO, "admin listener on %s:%d: /healthz, /readyz, /metrics", cfg->host,
                  http_server_admin_port(svc->http));
    if (cfg->auth_token[0])
        log_event(LOG_INFO, "auth: bearer token required on POST /classify, v2 infer%s%s",
                  cfg->auth_metrics ? ", GET /metrics" : "",
                  cfg->auth_health ? ", health, readiness, v2 metadata" : "");
    return 0;
}

static int load_model(service *svc) {
    const vggserve_config *cfg = &svc->cfg;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    svc->threads = cfg->threads_per_worker
                       ? (int)cfg->threads_per_worker
                       : (int)(cores / cfg->workers > 0 ? cores / cfg->workers : 1);
    const cli_model_spec spec = {.weights = cfg->weights[0] ? cfg->weights : NULL,
                                 .model = cfg->model, .seed = (uint64_t)cfg->seed,
                                 .algo = vgg_algo_resolve(cfg->algo, cfg->precision),
                                 .precision = cfg->precision,
                                 .max_batch = (int)cfg->max_batch_size};
    svc->explanations = spec.precision != VGG_PRECISION_INT8;
    if (!cfg->weights[0])
        log_event(LOG_WARNING, "no weights given: using GENERATED weights (seed %lld); predictions "
                  "are meaningless. Pass --weights FILE.safetensors for real ones", cfg->seed);
    metrics_set_model_info(svc->m, cfg->model, spec.algo, cfg->precision,
                           cfg->weights[0] ? "file" : "generated", (int)cfg->max_batch_size,
                           (int)cfg->workers, svc->threads);
    if (cli_build_model(&spec, &svc->w, &svc->model, true) != 0) return -1;
    svc->have_weights = true;
    char err[1024];
    if (vgg_labels_for_model(cfg->labels[0] ? cfg->labels : NULL, spec.weights,
                             vgg_model_config(svc->model)->n_classes, &svc->labels, err,
                             sizeof err) != 0) {
        fprintf(stderr, "error: %s\n", err);
        return -1;
    }
    preprocess_mode pre;
    if (preprocess_resolve(cfg->preprocess, svc->w.preprocess, &pre) == 1)
        log_event(LOG_WARNING, "the weights file asks for preprocessing '%s', which vggserve does "
                  "not know; using torchvision's", svc->w.preprocess);
    svc->preprocess = pre;
    log_event(LOG_INFO, "weights loaded in %.1f s: %s %s %s, %s preprocessing, %d labels (%s)",
              cli_now_s() - svc->t_start, cfg->model, vgg_algo_name(spec.algo),
              vgg_precision_name(cfg->precision), preprocess_mode_name(pre), svc->labels.n,
              vgg_labels_format_name(svc->labels.format));
    return 0;
}

/* Workers build and run every batch size once. Returns 0 when warm, 1 when a signal stopped
 * it (exit 0), -1 on failure. */
static int warm_up(service *svc) {
    const vggserve_config *cfg = &svc->cfg;
    char err[2048];
    http_server_set_state(svc->http, SERVICE_WARMING);
    batcher_options bo = {(int)cfg->workers, svc->threads, (int)cfg->max_batch_size,
                          cfg->max_queue_delay_us, (int)cfg->queue_capacity,
                          http_server_arrivals(svc->http), svc->explanations};
    svc->b = batcher_create(svc->model, &bo, svc->m, err, sizeof err);
    if (!svc->b) {
        fprintf(stderr, "error: warm-up: %s\n", err);
        return -1;
    }
    /* Warm-up takes seconds: keep answering SIGTERM meanwhile (stop early, exit 0). */
    while (!batcher_is_warm(svc->b)) {
        if (!signal_pending(svc, 100000000)) continue;
        http_server_set_state(svc->http, SERVICE_DRAINING);
        batcher_abort_warmup(svc->b);
        log_event(LOG_INFO, "signal during warm-up: stopping");
        batcher_wait_warm(svc->b, err, sizeof err);
        return 1;
    }
    if (batcher_wait_warm(svc->b, err, sizeof err) != 0) {
        fprintf(stderr, "error: warm-up: %s\n", err);
        return -1;
    }
    /* Every batch size has its weight formats now: the plain copy can go. */
    vgg_model_release_source(svc->model);
    vgg_weights_free(&svc->w);
    svc->have_weights = false;
    const vgg_config *mc = vgg_model_config(svc->model);
    served_model served = {.name = cfg->model, .n_classes = mc->n_classes,
                           .labels = &svc->labels,
                           .image_hw = mc->input_hw,
                           .image_floats = mc->in_channels * mc->input_hw * mc->input_hw,
                           .preprocess = svc->preprocess};
    if (svc->explanations) {
        served.explain_hw = vgg_model_explain_hw(svc->model);
        vgg_config_conv_name(mc, mc->n_conv - 1, served.explain_layer, sizeof served.explain_layer);
    }
    http_server_serve(svc->http, &served, svc->b);
    http_server_set_state(svc->http, SERVICE_READY);
    log_event(LOG_INFO, "ready in %.1f s: %lld worker(s) x %d thread(s), batches up to %lld, "
              "weights %.0f MiB, RSS %.0f MiB",
              cli_now_s() - svc->t_start, cfg->workers, svc->threads, cfg->max_batch_size,
              vgg_model_weight_bytes(svc->model) / 1048576.0, cli_rss_bytes() / 1048576.0);
    return 0;
}

/* SIGTERM or SIGINT: 503 for new requests, arriving uploads finish, accepted work is
 * answered. Returns the number of answers left unsent. */
static int drain(service *svc, int sig) {
    const vggserve_config *cfg = &svc->cfg;
    log_event(LOG_INFO, "%s: draining (grace %lld s, %d request(s) in progress)",
              sig == SIGINT ? "SIGINT" : "SIGTERM", cfg->shutdown_grace_s,
              http_server_pending(svc->http));
    http_server_set_state(svc->http, SERVICE_DRAINING);
    double t_drain = cli_now_s();
    /* Uploads already arriving get the grace to finish and be computed: new ones are refused
     * (503) from now, and the batcher stays open until the last arrival is queued. */
    arrivals_wait_none(http_server_arrivals(svc->http), (double)cfg->shutdown_grace_s);
    long long grace_left_ms = (long long)((cfg->shutdown_grace_s - (cli_now_s() - t_drain)) * 1000);
    batcher_drain(svc->b, grace_left_ms > 0 ? grace_left_ms : 0);
    /* Every accepted request is resumed now; give MHD a moment to send the answers (counted
     * from here: a batch already running when the grace ran out is waited for). */
    double t_flush = cli_now_s();
    while (http_server_pending(svc->http) > 0 && cli_now_s() - t_flush < 5) usleep(10000);
    int left = http_server_pending(svc->http);
    http_server_stop(svc->http);
    svc->http = NULL;
    batcher_free(svc->b);
    svc->b = NULL;
    log_event(left ? LOG_WARNING : LOG_INFO, "stopped after %.2f s of draining%s",
              cli_now_s() - t_drain, left ? " with unsent answers" : "");
    return left;
}

int cmd_serve(int argc, char **argv) {
    service svc = {0};
    int rc = load_config(argc, argv, &svc.cfg);
    if (rc != 0) return rc < 0 ? 2 : 0;
    /* Block the shutdown signals before any thread exists, so only sigwait sees them. */
    sigemptyset(&svc.sigs);
    sigaddset(&svc.sigs, SIGTERM);
    sigaddset(&svc.sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &svc.sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    svc.t_start = cli_now_s();

    int exit_code = 1;
    if (start_http(&svc) != 0 || load_model(&svc) != 0) goto out;
    if (signal_pending(&svc, 0)) { /* a signal while the weights loaded */
        log_event(LOG_INFO, "signal during loading: stopping");
        exit_code = 0;
        goto out;
    }
    int warm = warm_up(&svc);
    if (warm != 0) {
        exit_code = warm > 0 ? 0 : 1;
        goto out;
    }
    int sig = 0;
    sigwait(&svc.sigs, &sig);
    exit_code = drain(&svc, sig) ? 1 : 0;
out:
    service_close(&svc);
    return exit_code;
}
