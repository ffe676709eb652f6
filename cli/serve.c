/* serve.c - `vggserve serve`: the HTTP classification service.
 *
 * Start-up order: HTTP first (so /healthz and /readyz answer while loading), then the model
 * repository (server/repository.h: the --weights model, or DIR's), whose loader builds each
 * model's weights and warms its workers on every batch size, then the state turns ready. SIGTERM/SIGINT are blocked in every thread and taken by the main thread with
 * sigwait: readiness turns 503 draining, accepted work is finished (or answered 503 when the
 * grace runs out), answers are flushed, and the process exits 0. SIGHUP, SIGUSR1 and SIGUSR2
 * are ignored. */
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
#ifdef VGGSERVE_GRPC
#include "grpc_service.h"
#else
typedef struct grpc_service grpc_service; /* a C-only build has no gRPC listener */
#endif
#include "log.h"
#include "metrics.h"
#include "repository.h"

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
    int load_model_flags = 0;
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
        char source[80], joined[sizeof cfg->load_model];
        snprintf(source, sizeof source, "flag --%s", flag);
        /* --load-model repeats: each flag adds a model to those of the flags before it. */
        if (strcmp(key, "load_model") == 0 && load_model_flags++ > 0) {
            snprintf(joined, sizeof joined, "%.2040s,%.2040s", cfg->load_model, value);
            value = joined;
        }
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
    metrics *m;
    http_server *http;
    grpc_service *grpc; /* NULL unless grpc_port is set */
    repository *repo;   /* the models served, each version with its own workers */
} service;

static void service_close(service *svc) {
    repository_drain(svc->repo, 0);
#ifdef VGGSERVE_GRPC
    grpc_service_stop(svc->grpc, 0); /* before the models go: no call can reach them then */
#endif
    http_server_stop(svc->http);
    repository_free(svc->repo); /* last: the front ends' requests released their versions */
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

/* The gRPC listener (grpc_port), after HTTP: the same state, model, batcher, auth and TLS. */
static int start_grpc(service *svc) {
    const vggserve_config *cfg = &svc->cfg;
    if (cfg->grpc_port < 0) return 0;
#ifdef VGGSERVE_GRPC
    char err[1024];
    svc->grpc = grpc_service_start(cfg, svc->m, err, sizeof err);
    if (!svc->grpc) {
        fprintf(stderr, "error: %s\n", err);
        return -1;
    }
    log_event(LOG_INFO, "gRPC (KServe v2%s) listening on %s:%d", cfg->tls_cert_file[0] ? ", TLS" : "",
              cfg->host, grpc_service_port(svc->grpc));
    return 0;
#else
    fprintf(stderr, "error: grpc_port is set but this vggserve was built without gRPC "
            "(cmake -DVGGSERVE_GRPC=ON)\n");
    return -1;
#endif
}

/* The service state, as both front ends answer it. */
static void set_state(service *svc, service_state st) {
    http_server_set_state(svc->http, st);
#ifdef VGGSERVE_GRPC
    if (svc->grpc) grpc_service_set_state(svc->grpc, st);
#endif
}

/* The repository's builder: one version's weights (a file, or generated from the seed), its
 * network in the settings' precision, labels and preprocessing. Runs on the loader thread. */
static int build_version(void *ctx, const repository_build_spec *spec, repository_built *out,
                         char *err, size_t errlen) {
    const service *svc = ctx;
    const vggserve_config *cfg = &svc->cfg;
    const model_settings *s = spec->settings;
    const double t0 = cli_now_s();
    vgg_config vc;
    vgg_config_init(&vc, cfg->model);
    if (spec->weights) {
        if (vgg_weights_load(&out->w, &vc, spec->weights, err, errlen) != 0) return -1;
    } else if (vgg_weights_generate(&out->w, &vc, (uint64_t)cfg->seed) != 0) {
        snprintf(err, errlen, "out of memory generating weights");
        return -1;
    }
    const cli_model_spec ms = {.weights = spec->weights, .model = cfg->model,
                               .seed = (uint64_t)cfg->seed,
                               .algo = vgg_algo_resolve(s->algo, s->precision),
                               .precision = s->precision, .max_batch = s->max_batch_size};
    vgg_model_options opt;
    float act_max[VGG_N_LAYERS];
    if (cli_model_options(&ms, &out->w, act_max, &opt, true) != 0) {
        snprintf(err, errlen, "int8 calibration failed (the log says why)");
        vgg_weights_free(&out->w);
        return -1;
    }
    if (!(out->model = vgg_model_create(&out->w, &opt, err, errlen))) {
        vgg_weights_free(&out->w);
        return -1;
    }
    if (vgg_labels_for_model(spec->labels, spec->weights, vgg_model_config(out->model)->n_classes,
                             &out->labels, err, errlen) != 0) {
        vgg_model_free(out->model);
        out->model = NULL;
        vgg_weights_free(&out->w);
        return -1;
    }
    if (preprocess_resolve(s->preprocess, out->w.preprocess, &out->preprocess) == 1)
        log_event(LOG_WARNING, "%s: the weights file asks for preprocessing '%s', which vggserve "
                  "does not know; using torchvision's", spec->name, out->w.preprocess);
    log_event(LOG_INFO, "%s: weights loaded in %.1f s: %s %s %s, %s preprocessing, %d labels (%s)",
              spec->name, cli_now_s() - t0, out->w.cfg.name,
              vgg_algo_name(ms.algo), vgg_precision_name(s->precision),
              preprocess_mode_name(out->preprocess), out->labels.n,
              vgg_labels_format_name(out->labels.format));
    return 0;
}

static bool signal_seen(void *ctx) { return signal_pending(ctx, 0); }

/* The models: a repository (model_repository) or the one model of --weights, loaded (and
 * warmed) at start as the control mode says. Returns 0 when ready, 1 when a signal stopped it
 * (exit 0), -1 on failure. */
static int load_models(service *svc) {
    const vggserve_config *cfg = &svc->cfg;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    const int threads = cfg->threads_per_worker
                            ? (int)cfg->threads_per_worker
                            : (int)(cores / cfg->workers > 0 ? cores / cfg->workers : 1);
    const model_settings defaults = {
        .precision = cfg->precision, .algo = cfg->algo, .preprocess = cfg->preprocess,
        .max_batch_size = (int)cfg->max_batch_size, .max_queue_delay_us = cfg->max_queue_delay_us,
        .queue_capacity = (int)cfg->queue_capacity, .workers = (int)cfg->workers,
        .threads_per_worker = (int)cfg->threads_per_worker,
        .version_policy = {.kind = REPO_POLICY_LATEST, .latest = 1}};
    const bool repo_dir = cfg->model_repository[0] != '\0';
    if (!repo_dir && !cfg->weights[0])
        log_event(LOG_WARNING, "no weights given: using GENERATED weights (seed %lld); predictions "
                  "are meaningless. Pass --weights FILE.safetensors for real ones", cfg->seed);
    metrics_set_model_info(svc->m, cfg->model, vgg_algo_resolve(cfg->algo, cfg->precision),
                           cfg->precision,
                           repo_dir ? "repository" : cfg->weights[0] ? "file" : "generated",
                           (int)cfg->max_batch_size, (int)cfg->workers, threads);
    const repository_options o = {
        .root = repo_dir ? cfg->model_repository : NULL,
        .single_name = cfg->model,
        .single_weights = cfg->weights[0] ? cfg->weights : NULL,
        .single_labels = cfg->labels[0] ? cfg->labels : NULL,
        .default_model = cfg->default_model,
        .control = repo_dir ? cfg->model_control_mode : REPO_CONTROL_NONE,
        .poll_secs = (int)cfg->repository_poll_secs,
        .swap = cfg->swap_policy,
        .defaults = defaults,
        .build = build_version,
        .build_ctx = svc,
        .metrics = svc->m,
        .arriving = http_server_arrivals(svc->http),
    };
    char err[2048];
    if (!(svc->repo = repository_create(&o, err, sizeof err))) {
        fprintf(stderr, "error: %s\n", err);
        return -1;
    }
    http_server_serve(svc->http, svc->repo);
#ifdef VGGSERVE_GRPC
    if (svc->grpc) grpc_service_serve(svc->grpc, svc->repo);
#endif
    int rc = repository_load_initial(svc->repo, cfg->load_model, signal_seen, svc, err,
                                     sizeof err);
    if (rc > 0) {
        set_state(svc, SERVICE_DRAINING);
        log_event(LOG_INFO, "signal during loading: stopping");
        return 1;
    }
    if (rc < 0) {
        fprintf(stderr, "error: %s\n", err);
        return -1;
    }
    set_state(svc, SERVICE_READY);
    log_event(LOG_INFO, "ready in %.1f s: %s, RSS %.0f MiB", cli_now_s() - svc->t_start,
              repo_dir ? cfg->model_repository : cfg->model, cli_rss_bytes() / 1048576.0);
    return 0;
}

/* SIGTERM or SIGINT: 503 for new requests, arriving uploads finish, accepted work is
 * answered. Returns the number of answers left unsent. */
static int drain(service *svc, int sig) {
    const vggserve_config *cfg = &svc->cfg;
    log_event(LOG_INFO, "%s: draining (grace %lld s, %d request(s) in progress)",
              sig == SIGINT ? "SIGINT" : "SIGTERM", cfg->shutdown_grace_s,
              http_server_pending(svc->http));
    set_state(svc, SERVICE_DRAINING);
    double t_drain = cli_now_s();
    /* Uploads already arriving get the grace to finish and be computed: new ones are refused
     * (503) from now, and the batcher stays open until the last arrival is queued. */
    arrivals_wait_none(http_server_arrivals(svc->http), (double)cfg->shutdown_grace_s);
#ifdef VGGSERVE_GRPC
    grpc_service_drain_wait(svc->grpc, cfg->shutdown_grace_s - (cli_now_s() - t_drain));
#endif
    long long grace_left_ms = (long long)((cfg->shutdown_grace_s - (cli_now_s() - t_drain)) * 1000);
    repository_drain(svc->repo, grace_left_ms > 0 ? grace_left_ms : 0);
    /* Every accepted request is resumed now; give MHD a moment to send the answers (counted
     * from here: a batch already running when the grace ran out is waited for). */
    double t_flush = cli_now_s();
    while (http_server_pending(svc->http) > 0 && cli_now_s() - t_flush < 5) usleep(10000);
    int left = http_server_pending(svc->http);
#ifdef VGGSERVE_GRPC
    /* gRPC calls were answered as their jobs completed; Shutdown waits for the last writes. */
    grpc_service_stop(svc->grpc, 5000);
    svc->grpc = NULL;
#endif
    http_server_stop(svc->http);
    svc->http = NULL;
    repository_free(svc->repo);
    svc->repo = NULL;
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
    /* The access log is stdout, which the service never opens: SIGHUP (logrotate's) has
     * nothing to reopen and, like SIGUSR1/2, is ignored rather than fatal. */
    signal(SIGHUP, SIG_IGN);
    signal(SIGUSR1, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);
    svc.t_start = cli_now_s();

    int exit_code = 1;
    if (start_http(&svc) != 0 || start_grpc(&svc) != 0) goto out;
    int loaded = load_models(&svc);
    if (loaded != 0) {
        exit_code = loaded > 0 ? 0 : 1;
        goto out;
    }
    int sig = 0;
    sigwait(&svc.sigs, &sig);
    exit_code = drain(&svc, sig) ? 1 : 0;
out:
    service_close(&svc);
    return exit_code;
}
