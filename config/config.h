/* config.h - the service's settings: one table of keys, three sources.
 *
 * Precedence, lowest first: built-in defaults < JSON file (--config) < VGGSERVE_* environment
 * variables < command-line flags. Every key is a flag spelled with dashes (max_batch_size ->
 * --max-batch-size) and an environment variable in upper case (VGGSERVE_MAX_BATCH_SIZE).
 * Every value is checked as it is set; an error names the key and where it came from. Settings
 * with a fixed set of values are held as the enums of the modules they configure, spelled by
 * those modules' name tables.
 *
 * Start-up only: not thread-safe; after start-up the struct is read-only. */
#ifndef CONFIG_H
#define CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "engine.h"
#include "image_decode.h"
#include "preprocess.h"
#include "repository_dir.h"

/* The access log's line format (log_format). */
typedef enum { ACCESS_LOG_JSON, ACCESS_LOG_LOGFMT } access_log_format;

typedef struct {
    char host[256];
    long long port;
    char weights[4096];   /* empty: generate from seed */
    char model_repository[4096]; /* DIR/NAME/VERSION/model.safetensors; empty: --weights alone */
    repo_control model_control_mode;
    long long repository_poll_secs; /* poll mode: seconds between rescans of the repository */
    repo_swap_policy swap_policy;   /* a version replacing one that serves: beside it, or after */
    bool repository_api_admin_only; /* the repository API on admin_port only */
    char load_model[4096];        /* explicit mode: models loaded at start, comma-separated */
    char default_model[64];       /* /classify without ?model=; empty: the only model */
    char labels[4096];    /* empty: the weights' own labels (model/labels.h) */
    char model[16];                 /* one of vgg_model_names */
    vgg_algo algo;
    vgg_precision precision;
    preprocess_setting preprocess;
    long long seed;
    long long workers;
    long long threads_per_worker; /* 0: the machine's cores divided among workers */
    long long max_batch_size;
    long long max_queue_delay_us;
    long long queue_capacity;     /* images waiting, not requests */
    long long request_timeout_ms;
    long long max_body_bytes;
    long long max_pixels;
    image_decode_scaling decode_scaling;
    image_exif_orientation exif_orientation;
    long long max_images_per_request;
    long long http_threads;       /* 0: number of cores */
    long long connection_timeout_s;
    long long shutdown_grace_s;
    access_log_format log_format;
    long long max_header_bytes;   /* per-connection memory for request line + headers */
    long long max_connections;    /* open connections, all clients together */
    long long max_connections_per_ip; /* 0: no limit; -1: max_connections / 4 */
    long long header_timeout_s;   /* request line and headers must arrive within this */
    long long max_buffered_bytes; /* request bytes held by all uploads together; 0: auto */
    long long admin_port;         /* -1: none; else /healthz, /readyz, /metrics listen here */
    long long admin_max_connections;
    long long grpc_port;          /* -1: no gRPC listener; else the KServe v2 gRPC service */
    char auth_token[256];         /* empty: no auth; secret (redacted by config_to_json) */
    char auth_token_file[4096];   /* read into auth_token by config_load_secrets */
    bool auth_metrics;            /* GET /metrics needs the token too */
    bool auth_health;             /* GET /healthz and /readyz need the token too */
    char tls_cert_file[4096];     /* PEM; both set: HTTPS only */
    char tls_key_file[4096];
    bool demo_page;               /* GET / serves the demo page */
    char cors_allowed_origins[1024]; /* "" off; "*" any; else a comma-separated list */
} vggserve_config;

void config_defaults(vggserve_config *c);

/* Sets one key from its text form (env and flags). source names the origin for errors
 * ("flag --port", "VGGSERVE_PORT"). Returns 0 or -1 with err. */
int config_set(vggserve_config *c, const char *key, const char *value, const char *source,
               char *err, size_t errlen);

int config_load_file(vggserve_config *c, const char *path, char *err, size_t errlen);
int config_load_env(vggserve_config *c, char *err, size_t errlen);

/* Maps a flag name without dashes ("max-batch-size") to its key, or NULL. */
const char *config_key_for_flag(const char *flag);

/* Checks the combination (model name, algo, ...). */
int config_validate(const vggserve_config *c, char *err, size_t errlen);

/* Reads auth_token_file (when set) into auth_token, trimming one trailing newline, and
 * checks the token's syntax. Call after config_validate; errors name the file. */
int config_load_secrets(vggserve_config *c, char *err, size_t errlen);

/* Like config_load_file, from a buffer (the fuzzer's entry); source names it in errors. */
int config_load_buffer(vggserve_config *c, const char *text, size_t len, const char *source,
                       char *err, size_t errlen);

/* The effective configuration as a JSON object (new reference); auth_token is shown as
 * "***" when set, so the printed config never carries the secret. */
json_t *config_to_json(const vggserve_config *c);

/* Prints "--flag VALUE   help (default ...)" lines for --help. */
void config_print_flags(FILE *out);

#endif
