/* config.h - the service's settings: one table of keys, three sources.
 *
 * Precedence, lowest first: built-in defaults < JSON file (--config) < VGGSERVE_* environment
 * variables < command-line flags. Every key is a flag spelled with dashes (max_batch_size ->
 * --max-batch-size) and an environment variable in upper case (VGGSERVE_MAX_BATCH_SIZE).
 * Every value is checked as it is set; an error names the key and where it came from.
 *
 * Start-up only: not thread-safe; after start-up the struct is read-only. */
#ifndef CONFIG_H
#define CONFIG_H

#include <jansson.h>
#include <stddef.h>

typedef struct {
    char host[256];
    long long port;
    char weights[4096];   /* empty: generate from seed */
    char model[16];
    char algo[16];
    char precision[16];
    long long seed;
    long long workers;
    long long threads_per_worker; /* 0: the machine's cores divided among workers */
    long long max_batch_size;
    long long max_queue_delay_us;
    long long queue_capacity;     /* images waiting, not requests */
    long long request_timeout_ms;
    long long max_body_bytes;
    long long max_pixels;
    long long max_images_per_request;
    long long http_threads;       /* 0: number of cores */
    long long connection_timeout_s;
    long long shutdown_grace_s;
    char log_format[16];          /* json | logfmt */
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

/* The effective configuration as a JSON object (new reference). */
json_t *config_to_json(const vggserve_config *c);

/* Prints "--flag VALUE   help (default ...)" lines for --help. */
void config_print_flags(FILE *out);

#endif
