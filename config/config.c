/* config.c - table-driven settings: defaults, JSON file, environment, flags. */
#include <stdio.h>

#include "config.h"

#include "auth.h"
#include "name_table.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* KIND_CHOICE: an enum (held as int) whose value is its index in choices. */
typedef enum { KIND_INT, KIND_STRING, KIND_BOOL, KIND_CHOICE } field_kind;

typedef struct {
    const char *key;
    field_kind kind;
    size_t offset, size;         /* size: string capacity */
    long long min, max;          /* ints */
    const char *const *choices;  /* NULL-terminated: the values of a choice, or of a string
                                  * limited to a set; else NULL */
    const char *def;
    const char *help;
} config_field;

static const char *const access_log_format_names[] = {"json", "logfmt", NULL};

#define INT_FIELD(k, lo, hi, d, h) {#k, KIND_INT, offsetof(vggserve_config, k), 0, lo, hi, NULL, d, h}
#define BOOL_FIELD(k, d, h) {#k, KIND_BOOL, offsetof(vggserve_config, k), 0, 0, 1, NULL, d, h}
#define STR_FIELD(k, ch, d, h) \
    {#k, KIND_STRING, offsetof(vggserve_config, k), sizeof(((vggserve_config *)0)->k), 0, 0, ch, d, h}
#define CHOICE_FIELD(k, ch, d, h) {#k, KIND_CHOICE, offsetof(vggserve_config, k), 0, 0, 0, ch, d, h}

static const config_field fields[] = {
    STR_FIELD(host, NULL, "127.0.0.1", "address to listen on (0.0.0.0 for all)"),
    INT_FIELD(port, 0, 65535, "8080", "TCP port (0 picks a free one, printed in the log)"),
    STR_FIELD(weights, NULL, "", "safetensors weights; empty generates them from seed"),
    STR_FIELD(model_repository, NULL, "",
              "model repository: DIR/NAME/VERSION/model.safetensors and DIR/NAME/config.json "
              "(empty: --weights alone, one model)"),
    CHOICE_FIELD(model_control_mode, repo_control_names, "none",
                 "none: load every model at start; explicit: --load-model at start, then POST "
                 "/v2/repository/models/NAME/load and unload; poll: every model at start, then "
                 "rescan the repository every repository_poll_secs and serve what it holds"),
    INT_FIELD(repository_poll_secs, 1, 86400, "15",
              "poll mode: seconds between rescans (a new or changed model.safetensors is loaded "
              "once complete and unchanged over one rescan)"),
    CHOICE_FIELD(swap_policy, repo_swap_names, "availability",
                 "a new version of a serving model: availability builds it beside the old one "
                 "(no 503s, peak memory old + new); memory unloads the old one first (503 "
                 "with Retry-After meanwhile, peak the larger of the two)"),
    BOOL_FIELD(repository_api_admin_only, "false",
               "the repository API (POST /v2/repository/index, .../load, .../unload) on admin_port "
               "only: 404 on the main port, refused over gRPC"),
    STR_FIELD(load_model, NULL, "",
              "explicit mode: a model to load at start (repeat the flag, or a comma-separated "
              "list)"),
    STR_FIELD(default_model, NULL, "", "the model /classify answers without ?model= (empty: "
              "the only model)"),
    STR_FIELD(labels, NULL, "",
              "label file overriding the weights' own labels (text, or JSON list or object)"),
    STR_FIELD(model, vgg_model_names, "vgg16", "the VGG family member"),
    CHOICE_FIELD(algo, vgg_algo_names, "auto", "convolution algorithm (auto: winograd in int8, else direct)"),
    CHOICE_FIELD(precision, vgg_precision_names, "f32", "compute precision"),
    CHOICE_FIELD(preprocess, preprocess_setting_names, "auto",
              "image preprocessing (auto: what the weights file says, else torchvision)"),
    INT_FIELD(seed, 0, 0x7fffffffffffffffLL, "1", "seed of generated weights"),
    INT_FIELD(workers, 1, 64, "1", "inference workers (each its own oneDNN stream)"),
    INT_FIELD(threads_per_worker, 0, 1024, "0", "oneDNN threads per worker (0: cores / workers)"),
    INT_FIELD(max_batch_size, 1, VGG_MAX_BATCH, "8", "images per forward pass at most"),
    INT_FIELD(max_queue_delay_us, 0, 10000000, "10000",
              "longest a batch waits for images on their way after the first (0: never)"),
    INT_FIELD(queue_capacity, 1, 100000, "64", "images waiting for a worker at most; then 503"),
    INT_FIELD(request_timeout_ms, 1, 3600000, "30000",
              "deadline of a request (clients may shorten it: X-Request-Timeout-Ms)"),
    INT_FIELD(max_body_bytes, 1, 1LL << 32, "20971520", "largest request body; then 413"),
    INT_FIELD(max_pixels, 1, 1LL << 32, "40000000", "largest image (width x height); then 422"),
    CHOICE_FIELD(decode_scaling, image_decode_scaling_names, "auto",
              "JPEG/WebP decoded at a reduced size that still covers the resize (auto), or "
              "every pixel for bit-closeness to PIL (off)"),
    CHOICE_FIELD(exif_orientation, image_decode_exif_names, "apply",
              "turn photos upright by their EXIF orientation (apply) or keep the stored pixels (ignore)"),
    INT_FIELD(max_images_per_request, 1, 1024, "16", "images in one multipart request at most"),
    INT_FIELD(http_threads, 0, 256, "0", "HTTP threads, which also decode images (0: cores)"),
    INT_FIELD(connection_timeout_s, 1, 3600, "30",
              "idle connection timeout, and the longest a request body may take to arrive"),
    INT_FIELD(shutdown_grace_s, 0, 3600, "30", "time to finish accepted work after SIGTERM"),
    CHOICE_FIELD(log_format, access_log_format_names, "json", "access log lines"),
    INT_FIELD(max_header_bytes, 4096, 16LL << 20, "32768",
              "libmicrohttpd's memory per connection: request line, headers (and about 76 "
              "bytes per header line), answer headers; beyond it 431"),
    INT_FIELD(max_connections, 1, 1000000, "1000",
              "open connections at most, all clients together; beyond it new ones wait"),
    INT_FIELD(max_connections_per_ip, -1, 1000000, "-1",
              "open connections from one IP address at most (-1: a quarter of "
              "max_connections; 0: no limit)"),
    INT_FIELD(header_timeout_s, 1, 3600, "10",
              "the request line and headers must arrive within this, however slowly they trickle"),
    INT_FIELD(max_buffered_bytes, 0, 1LL << 40, "0",
              "request body bytes all uploads together may hold; beyond it 503 (0: a quarter of "
              "the container's memory limit, at most 256 MiB, at least 2 x max_body_bytes)"),
    INT_FIELD(admin_port, -1, 65535, "-1",
              "a second listener for /healthz, /readyz and /metrics only, with its own "
              "connections (-1: none; 0: any free port)"),
    INT_FIELD(admin_max_connections, 1, 1000, "16", "open connections on admin_port at most"),
    INT_FIELD(grpc_port, -1, 65535, "-1",
              "KServe v2 gRPC listener (Triton's port 8001) with the same auth and TLS (-1: none; "
              "0: any free port)"),
    STR_FIELD(auth_token, NULL, "", "bearer token for POST /classify and v2 infer (empty: no auth)"),
    STR_FIELD(auth_token_file, NULL, "", "file holding the bearer token (instead of auth_token)"),
    BOOL_FIELD(auth_metrics, "false", "GET /metrics needs the bearer token too"),
    BOOL_FIELD(auth_health, "false", "health, readiness and v2 metadata need the bearer token too"),
    STR_FIELD(tls_cert_file, NULL, "", "PEM certificate (chain): with tls_key_file, serve HTTPS only"),
    STR_FIELD(tls_key_file, NULL, "", "PEM private key of tls_cert_file"),
    BOOL_FIELD(demo_page, "true", "GET / serves a demo page (upload an image, see the top 5)"),
    STR_FIELD(cors_allowed_origins, NULL, "",
              "origins whose pages may call /classify and /v2 (CORS): comma-separated, * for "
              "any; empty: none"),
};
#define N_FIELDS (sizeof fields / sizeof fields[0])

/* A choice is stored through an int: every enum above must be one. */
_Static_assert(sizeof(vgg_algo) == sizeof(int) && sizeof(vgg_precision) == sizeof(int) &&
                   sizeof(preprocess_setting) == sizeof(int) &&
                   sizeof(image_decode_scaling) == sizeof(int) &&
                   sizeof(image_exif_orientation) == sizeof(int) &&
                   sizeof(access_log_format) == sizeof(int) &&
                   sizeof(repo_control) == sizeof(int) &&
                   sizeof(repo_swap_policy) == sizeof(int),
               "config choices are ints");

static const config_field *find_field(const char *key) {
    for (size_t i = 0; i < N_FIELDS; i++)
        if (strcmp(fields[i].key, key) == 0) return &fields[i];
    return NULL;
}

static int set_field(vggserve_config *c, const config_field *f, const char *value,
                     const char *source, char *err, size_t errlen) {
    char *dst = (char *)c + f->offset;
    if (f->kind == KIND_INT) {
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end || v < f->min || v > f->max) {
            snprintf(err, errlen, "%s: %s must be an integer in %lld..%lld, got '%s'", source,
                     f->key, f->min, f->max, value);
            return -1;
        }
        memcpy(dst, &v, sizeof v);
        return 0;
    }
    if (f->kind == KIND_BOOL) {
        bool v;
        if (strcmp(value, "true") == 0 || strcmp(value, "1") == 0) v = true;
        else if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0) v = false;
        else {
            snprintf(err, errlen, "%s: %s must be true or false, got '%s'", source, f->key, value);
            return -1;
        }
        memcpy(dst, &v, sizeof v);
        return 0;
    }
    if (f->kind == KIND_STRING && strlen(value) >= f->size) {
        snprintf(err, errlen, "%s: %s is too long (at most %zu characters)", source, f->key,
                 f->size - 1);
        return -1;
    }
    if (f->choices) {
        int index = name_table_index(f->choices, value);
        if (index < 0) {
            char list[128];
            name_table_join(f->choices, list, sizeof list);
            snprintf(err, errlen, "%s: %s must be one of %s, got '%s'", source, f->key, list,
                     value);
            return -1;
        }
        if (f->kind == KIND_CHOICE) {
            memcpy(dst, &index, sizeof index);
            return 0;
        }
    }
    snprintf(dst, f->size, "%s", value);
    return 0;
}

void config_defaults(vggserve_config *c) {
    char err[256];
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < N_FIELDS; i++) set_field(c, &fields[i], fields[i].def, "default", err, sizeof err);
}

int config_set(vggserve_config *c, const char *key, const char *value, const char *source,
               char *err, size_t errlen) {
    const config_field *f = find_field(key);
    if (!f) {
        snprintf(err, errlen, "%s: unknown setting '%s'", source, key);
        return -1;
    }
    return set_field(c, f, value, source, err, errlen);
}

/* Applies every key of a parsed config (steals root). path names the source in errors. */
static int load_json(vggserve_config *c, json_t *root, const char *path, char *err,
                     size_t errlen) {
    if (!json_is_object(root)) {
        snprintf(err, errlen, "%s: the config must be a JSON object", path);
        json_decref(root);
        return -1;
    }
    const char *key;
    json_t *v;
    char source[4200], text[4200];
    int rc = 0;
    json_object_foreach(root, key, v) {
        snprintf(source, sizeof source, "%s", path);
        const config_field *f = find_field(key);
        if (!f) {
            snprintf(err, errlen, "%s: unknown setting '%s'", path, key);
            rc = -1;
            break;
        }
        if (f->kind == KIND_INT && json_is_integer(v)) {
            snprintf(text, sizeof text, "%lld", (long long)json_integer_value(v));
        } else if (f->kind == KIND_BOOL && json_is_boolean(v)) {
            snprintf(text, sizeof text, "%s", json_is_true(v) ? "true" : "false");
        } else if ((f->kind == KIND_STRING || f->kind == KIND_CHOICE) && json_is_string(v)) {
            snprintf(text, sizeof text, "%s", json_string_value(v));
        } else {
            snprintf(err, errlen, "%s: %s must be %s", path, key,
                     f->kind == KIND_INT    ? "an integer"
                     : f->kind == KIND_BOOL ? "true or false"
                                            : "a string");
            rc = -1;
            break;
        }
        if (set_field(c, f, text, source, err, errlen) != 0) {
            rc = -1;
            break;
        }
    }
    json_decref(root);
    return rc;
}

int config_load_file(vggserve_config *c, const char *path, char *err, size_t errlen) {
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, errlen, "%s:%d: %s", path, jerr.line, jerr.text);
        return -1;
    }
    return load_json(c, root, path, err, errlen);
}

int config_load_buffer(vggserve_config *c, const char *text, size_t len, const char *source,
                       char *err, size_t errlen) {
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, errlen, "%s:%d: %s", source, jerr.line, jerr.text);
        return -1;
    }
    return load_json(c, root, source, err, errlen);
}

int config_load_env(vggserve_config *c, char *err, size_t errlen) {
    for (size_t i = 0; i < N_FIELDS; i++) {
        char name[64] = "VGGSERVE_";
        size_t n = strlen(name);
        for (const char *k = fields[i].key; *k && n + 1 < sizeof name; k++)
            name[n++] = (char)toupper((unsigned char)*k);
        name[n] = '\0';
        const char *v = getenv(name);
        if (v && set_field(c, &fields[i], v, name, err, errlen) != 0) return -1;
    }
    return 0;
}

const char *config_key_for_flag(const char *flag) {
    for (size_t i = 0; i < N_FIELDS; i++) {
        const char *k = fields[i].key, *f = flag;
        while (*k && *f && (*k == *f || (*k == '_' && *f == '-'))) k++, f++;
        if (!*k && !*f) return fields[i].key;
    }
    return NULL;
}

int config_validate(const vggserve_config *c, char *err, size_t errlen) {
    if (c->host[0] == '\0') {
        snprintf(err, errlen, "host must not be empty");
        return -1;
    }
    if (c->model_repository[0] && c->weights[0]) {
        snprintf(err, errlen, "model_repository and weights are both set: a repository holds its "
                 "models' weights (DIR/NAME/VERSION/model.safetensors); use one");
        return -1;
    }
    if (c->load_model[0] && c->model_control_mode != REPO_CONTROL_EXPLICIT) {
        snprintf(err, errlen, "load_model needs model_control_mode explicit (in none every model "
                 "is loaded at start)");
        return -1;
    }
    if (c->repository_api_admin_only && c->admin_port < 0) {
        snprintf(err, errlen, "repository_api_admin_only needs admin_port: the repository API "
                 "would be served nowhere");
        return -1;
    }
    if (c->model_control_mode == REPO_CONTROL_POLL && !c->model_repository[0]) {
        snprintf(err, errlen, "model_control_mode poll needs model_repository: it rescans that "
                 "folder");
        return -1;
    }
    if (c->max_images_per_request > c->queue_capacity) {
        snprintf(err, errlen, "max_images_per_request (%lld) is larger than queue_capacity (%lld): "
                 "such a request could never be queued", c->max_images_per_request,
                 c->queue_capacity);
        return -1;
    }
    if (c->http_threads > c->max_connections) {
        snprintf(err, errlen, "http_threads (%lld) is larger than max_connections (%lld): every "
                 "HTTP thread needs a share of the connections", c->http_threads,
                 c->max_connections);
        return -1;
    }
    if (c->auth_token[0] && c->auth_token_file[0]) {
        snprintf(err, errlen, "auth_token and auth_token_file are both set: use one");
        return -1;
    }
    if (c->auth_token[0] && !api_auth_token_valid(c->auth_token)) {
        snprintf(err, errlen, "auth_token must be 1 to %d characters of A-Z a-z 0-9 - . _ ~ + / "
                 "(then optional '=')", API_AUTH_TOKEN_MAX);
        return -1;
    }
    if (!c->tls_cert_file[0] != !c->tls_key_file[0]) {
        snprintf(err, errlen, "tls_cert_file and tls_key_file go together: set both for HTTPS, or "
                 "neither");
        return -1;
    }
    return 0;
}

int config_load_secrets(vggserve_config *c, char *err, size_t errlen) {
    if (!c->auth_token_file[0]) return 0;
    FILE *f = fopen(c->auth_token_file, "r");
    if (!f) {
        snprintf(err, errlen, "auth_token_file %s: %s", c->auth_token_file, strerror(errno));
        return -1;
    }
    char buf[sizeof c->auth_token + 2];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    bool more = fgetc(f) != EOF;
    fclose(f);
    buf[n] = '\0';
    if (n > 0 && buf[n - 1] == '\n') buf[--n] = '\0';
    if (n > 0 && buf[n - 1] == '\r') buf[--n] = '\0';
    if (more || strlen(buf) != n || !api_auth_token_valid(buf)) {
        snprintf(err, errlen, "auth_token_file %s: must hold one token of 1 to %d characters of "
                 "A-Z a-z 0-9 - . _ ~ + / (then optional '='), and at most a newline",
                 c->auth_token_file, API_AUTH_TOKEN_MAX);
        return -1;
    }
    memcpy(c->auth_token, buf, n + 1); /* n <= API_AUTH_TOKEN_MAX < sizeof c->auth_token */
    memset(buf, 0, sizeof buf);
    return 0;
}

json_t *config_to_json(const vggserve_config *c) {
    json_t *o = json_object();
    for (size_t i = 0; i < N_FIELDS; i++) {
        const char *p = (const char *)c + fields[i].offset;
        if (fields[i].kind == KIND_INT) {
            long long v;
            memcpy(&v, p, sizeof v);
            json_object_set_new(o, fields[i].key, json_integer(v));
        } else if (fields[i].kind == KIND_BOOL) {
            bool v;
            memcpy(&v, p, sizeof v);
            json_object_set_new(o, fields[i].key, json_boolean(v));
        } else if (fields[i].kind == KIND_CHOICE) {
            int v;
            memcpy(&v, p, sizeof v);
            json_object_set_new(o, fields[i].key, json_string(fields[i].choices[v]));
        } else if (strcmp(fields[i].key, "auth_token") == 0 && p[0]) {
            json_object_set_new(o, fields[i].key, json_string("***")); /* never print secrets */
        } else {
            json_object_set_new(o, fields[i].key, json_string(p));
        }
    }
    return o;
}

void config_print_flags(FILE *out) {
    for (size_t i = 0; i < N_FIELDS; i++) {
        char flag[64];
        size_t n = 0;
        for (const char *k = fields[i].key; *k && n + 1 < sizeof flag; k++) flag[n++] = *k == '_' ? '-' : *k;
        flag[n] = '\0';
        char choices[128] = "";
        if (fields[i].choices) {
            strcpy(choices, ": ");
            name_table_join(fields[i].choices, choices + 2, sizeof choices - 2);
        }
        const bool text = fields[i].kind == KIND_STRING || fields[i].kind == KIND_CHOICE;
        const char *quote = text ? "\"" : "";
        fprintf(out, "  --%-24s %s%s (default %s%s%s)\n", flag, fields[i].help, choices, quote,
                fields[i].def, quote);
    }
}
