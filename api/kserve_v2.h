/* kserve_v2.h - the KServe v2 / Open Inference Protocol (HTTP/REST) without sockets.
 *
 * Routes (kserve_v2_route_parse): GET /v2 (server metadata), /v2/health/live,
 * /v2/health/ready, /v2/models/M[/versions/1] (model metadata), .../ready, .../config
 * (Triton's model configuration), .../labels (the class names, index order: what Triton's
 * label_filename holds, which Triton itself does not serve), .../stats and /v2/models/stats
 * (Triton's statistics extension), POST /v2/models/M[/versions/1]/infer, and Triton's model repository extension:
 * POST /v2/repository/index, POST /v2/repository/models/M/load|unload (refused: the model
 * set is fixed at start-up). Anything else under /v2, another model or another version, is 404.
 *
 * Model views: M is one of four names over the one engine (same queue, batches and weights):
 *   vgg16          both inputs below, outputs probabilities and logits (the full model);
 *   vgg16_image    input "image" only, output "probabilities" only;
 *   vgg16_tensor   input "input" only, output "probabilities" only;
 *   vgg16_explain  both inputs, outputs probabilities, logits and gradcam (where the model
 *                  explains: not in int8, where it lists probabilities and logits only).
 * (for the configured model name: vgg11 gives vgg11, vgg11_image, vgg11_tensor,
 * vgg11_explain). The single input, single output views are what Triton's image_client.py and
 * ensemble_image_client.py require; each view has its own metadata, config, ready, infer and
 * stats. Every view lists exactly the outputs it returns when a request names none.
 *
 * An infer request names one input:
 *   "image": BYTES, shape [N] (or [N, 1]), each element an encoded JPEG, PNG or WebP: base64
 *            strings in JSON "data", or binary data (each element a 4-byte little-endian
 *            length, then the bytes);
 *   "input": FP32, shape [N, 3, 224, 224], preprocessed as `vggserve preprocess` writes it:
 *            JSON "data" flat (row-major) or nested by the shape, or binary data (N*3*224*224
 *            little-endian floats).
 * Binary data (the binary tensor data extension): the body is the JSON header, whose length
 * is the Inference-Header-Content-Length header, followed by the input's bytes; the input's
 * "parameters": {"binary_data_size": BYTES} says how many.
 *
 * Outputs: "probabilities" (FP32 [N, 1000]), "logits" (FP32 [N, 1000]; full view only) and
 * "gradcam" (FP32 [N, 14, 14]; the explain view only, and not in int8): each image's Grad-CAM
 * map (engine.h), in [0, 1], for the class its "parameters" give as "class_id" (else each
 * image's top-1). A request without "outputs" gets every output its view lists (the
 * protocol's rule): gradcam, which adds a backward pass, is in the explain view only, so the
 * full view's answers cost one forward pass. An output is sent as binary data when its "parameters" say
 * "binary_data": true, or the request's "parameters" say "binary_data_output": true. The
 * classification extension ("parameters": {"classification": k} on an output) sends the top
 * k of that output instead: BYTES [N, k], each "score:index:label".
 *
 * Errors are the protocol's {"error": "message"} (kserve_v2_error_json) with the service's
 * status codes (api/errors.h): 400 malformed request, 404 unknown model or version, 413 body
 * or image count over the limits, 415/422 for images as POST /classify answers them.
 *
 * Files: kserve_v2_routes.c (paths, the views' table in kserve_v2_views.h, errors),
 * kserve_v2_parse.c (infer requests to tensors; base64.h decodes BYTES), kserve_v2_answer.c
 * (infer responses), kserve_v2_meta.c (metadata, config, repository index, statistics).
 *
 * Ownership: request strings and bodies are borrowed; kserve_v2_infer.inputs is owned after
 * success (kserve_v2_infer_free), or moves into a job (infer_request.h); JSON results are
 * new references; response bodies are malloc'd and owned by the caller. Reentrant, no
 * globals: fuzzed and unit-tested directly. */
#ifndef API_KSERVE_V2_H
#define API_KSERVE_V2_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "classify_request.h"
#include "errors.h"
#include "labels.h"
#include "vgg_config.h" /* VGG_MAX_BATCH */

#ifndef VGGSERVE_VERSION
#define VGGSERVE_VERSION "0.1.0"
#endif
#define KSERVE_V2_MODEL_VERSION "1" /* the one version of the one model */
#define KSERVE_V2_PLATFORM "vggserve_onednn"
#define KSERVE_V2_MAX_ID 256         /* longest request "id" echoed back */
#define KSERVE_V2_MAX_ABS_INPUT 1e6  /* FP32 inputs are about -2.2..2.7; far beyond is refused */
#define KSERVE_V2_MAX_OUTPUTS 3 /* probabilities, logits, gradcam */
/* The answer to a repository load or unload (400, INVALID_ARGUMENT over gRPC). */
#define KSERVE_V2_REPOSITORY_FIXED "models cannot be loaded or unloaded: the model set is " \
    "fixed at start-up (POST /v2/repository/index lists it)"
/* Triton's words for a load or unload in poll mode (model_repository_manager.cc). */
#define KSERVE_V2_REPOSITORY_POLLING "explicit model load / unload is not allowed if polling is " \
    "enabled"


/* ---------------------------------------------------------------- model views */

typedef enum {
    KSERVE_V2_VIEW_FULL = 0, /* M */
    KSERVE_V2_VIEW_IMAGE,    /* M_image */
    KSERVE_V2_VIEW_TENSOR,   /* M_tensor */
    KSERVE_V2_VIEW_EXPLAIN,  /* M_explain */
    KSERVE_V2_VIEW_COUNT
} kserve_v2_view;

#define KSERVE_V2_MAX_NAME 96 /* longest view name: the model's name and a suffix */

/* The view's model name into out: model itself, or model + "_image" / "_tensor" /
 * "_explain". */
void kserve_v2_view_name(const char *model, kserve_v2_view v, char *out, size_t cap);

/* ---------------------------------------------------------------- routes */

typedef enum {
    KSERVE_V2_ROUTE_NONE = 0,        /* not under /v2 */
    KSERVE_V2_ROUTE_NOT_FOUND,       /* under /v2, but no such route, model or version: 404 */
    KSERVE_V2_ROUTE_SERVER_METADATA, /* GET /v2 */
    KSERVE_V2_ROUTE_LIVE,            /* GET /v2/health/live */
    KSERVE_V2_ROUTE_READY,           /* GET /v2/health/ready */
    KSERVE_V2_ROUTE_MODEL_METADATA,  /* GET /v2/models/M[/versions/1] */
    KSERVE_V2_ROUTE_MODEL_READY,     /* GET /v2/models/M[/versions/1]/ready */
    KSERVE_V2_ROUTE_INFER,           /* POST /v2/models/M[/versions/1]/infer */
    KSERVE_V2_ROUTE_MODEL_CONFIG,    /* GET /v2/models/M[/versions/1]/config */
    KSERVE_V2_ROUTE_MODEL_STATS,     /* GET /v2/models/M[/versions/1]/stats */
    KSERVE_V2_ROUTE_ALL_STATS,       /* GET /v2/models/stats */
    KSERVE_V2_ROUTE_REPOSITORY_INDEX,   /* POST /v2/repository/index */
    KSERVE_V2_ROUTE_REPOSITORY_CONTROL, /* POST /v2/repository/models/M/(load|unload) */
    KSERVE_V2_ROUTE_MODEL_LABELS,       /* GET /v2/models/M[/versions/1]/labels */
} kserve_v2_route;

/* Routes answered to POST; the others answer GET and HEAD. */
bool kserve_v2_route_is_post(kserve_v2_route rt);

/* Which v2 route path is (without the query), for the one model named model, version 1, and
 * which view of it the path names (*view; KSERVE_V2_VIEW_FULL for routes without a model).
 * For KSERVE_V2_ROUTE_NOT_FOUND, msg (may be NULL) says what was not found. */
kserve_v2_route kserve_v2_route_parse(const char *path, const char *model, kserve_v2_view *view,
                                      char *msg, size_t msglen);

/* The models a server knows, for routing: known(ctx, name) says whether name is one. */
typedef struct {
    bool (*known)(void *ctx, const char *name);
    void *ctx;
} kserve_v2_catalog;

/* What a path names beside its route. */
typedef struct {
    char model[KSERVE_V2_MAX_NAME]; /* the model (its view's suffix removed); for the
                                     * repository's load and unload, the name as sent */
    kserve_v2_view view;
    long long version; /* /versions/V: V (a positive integer); 0: none named */
    bool unload;       /* KSERVE_V2_ROUTE_REPOSITORY_CONTROL: unload (else load) */
} kserve_v2_target;

/* kserve_v2_route_parse for several models and versions: a model segment is a model the
 * catalog knows, or one followed by a view's suffix; a version is any positive integer (the
 * caller checks that it is served). */
kserve_v2_route kserve_v2_route_resolve(const char *path, const kserve_v2_catalog *catalog,
                                        kserve_v2_target *t, char *msg, size_t msglen);

/* ---------------------------------------------------------------- infer requests */

typedef enum {
    KSERVE_V2_OUT_PROBABILITIES = 0,
    KSERVE_V2_OUT_LOGITS,
    KSERVE_V2_OUT_GRADCAM,
    KSERVE_V2_OUT_COUNT
} kserve_v2_output_kind;

typedef struct {
    kserve_v2_output_kind kind;
    bool binary;        /* send as binary data after the JSON header */
    int classification; /* 0: the FP32 tensor; k > 0: the top k as BYTES "score:index:label" */
} kserve_v2_output;

typedef struct {
    char id[KSERVE_V2_MAX_ID + 1]; /* the request's "id", echoed back; empty when absent */
    bool tensor_input;             /* "input" FP32 (true) or "image" BYTES (false) */
    int n_images;
    float *inputs;    /* n_images x (3, image_hw, image_hw), owned */
    double decode_ms; /* decoding and preprocessing ("image"), or reading the floats */
    int n_outputs;
    kserve_v2_output outputs[KSERVE_V2_MAX_OUTPUTS]; /* in the order asked for */
    bool want_logits;                                /* some output needs the logits */
    bool want_gradcam;                               /* the gradcam output is asked for */
    int gradcam_class; /* its class_id, or -1: each image's top-1 */
} kserve_v2_infer;

typedef struct {
    const char *header_length; /* Inference-Header-Content-Length value, or NULL */
    const unsigned char *body; /* borrowed; may be NULL when body_len is 0 */
    size_t body_len;           /* bytes stored in body */
    bool body_over_limit;      /* more than max_body_bytes arrived (counted, not stored) */
    kserve_v2_view view;       /* the view the path named: which inputs and outputs exist */
    int n_classes;             /* the model's classes: the range of gradcam's class_id */
    int gradcam_hw;            /* the gradcam map's side; 0: no explanations (int8) */
    /* Called, before jansson builds the JSON header, with what building it will cost
     * (api/json_scan.h); false refuses the request (API_MEMORY_BUDGET). NULL: not charged. */
    bool (*reserve)(void *reserve_ctx, long long bytes);
    void *reserve_ctx;
    int64_t deadline_ns; /* clock_monotonic_ns() past which decoding stops (504); 0: none */
} kserve_v2_http_request;

/* Judges an infer request to req->view; the limits are POST /classify's (max_images bounds N for both
 * inputs). On API_OK *out holds the tensors (free with kserve_v2_infer_free); otherwise msg
 * says why and *out owns nothing (n_images may count the images found, for the access log). */
api_status kserve_v2_infer_parse(const kserve_v2_http_request *req, const classify_limits *lim,
                                 const image_input_format *fmt, kserve_v2_infer *out, char *msg,
                                 size_t msglen);

void kserve_v2_infer_free(kserve_v2_infer *in);

/* ---------------------------------------------------------------- answers */

typedef struct {
    char *data;      /* JSON header, then binary outputs; malloc'd, caller frees */
    size_t len;      /* whole body */
    size_t json_len; /* the JSON header: Inference-Header-Content-Length when binary */
    bool binary;     /* some output is binary: send application/octet-stream and the header */
} kserve_v2_body;

/* What the workers computed for an infer request, borrowed. */
typedef struct {
    const float *probs;   /* n_images rows of n_classes */
    const float *logits;  /* the same; NULL unless want_logits */
    int n_classes;
    const float *gradcam; /* n_images maps of gradcam_hw x gradcam_hw; NULL unless want_gradcam */
    int gradcam_hw;
    const vgg_labels *labels; /* n_classes names: the classification extension's labels */
    long long version;        /* the model version that computed them ("model_version"); 0: 1 */
} kserve_v2_results;

/* The infer response for in's outputs: {"model_name", "model_version", "id"?, "outputs":
 * [{"name", "datatype", "shape", "data" | "parameters": {"binary_data_size"}}]}. Returns 0,
 * or -1 with msg (out of memory, or a non-finite value that JSON cannot carry). */
int kserve_v2_infer_response(const kserve_v2_infer *in, const char *model,
                             const kserve_v2_results *res, kserve_v2_body *out, char *msg,
                             size_t msglen);

/* The same outputs as structured tensors, for a front end whose protocol carries them itself
 * (gRPC's raw_output_contents): every output's bytes as the binary tensor data extension lays
 * them out (FP32 little-endian; BYTES each a 4-byte little-endian length, then the string). */
typedef struct {
    const char *name;      /* static: the output's name */
    const char *datatype;  /* static: "FP32" or "BYTES" (classification) */
    long long shape[3];
    int ndim;
    size_t offset, len;    /* its bytes in kserve_v2_tensors.data */
} kserve_v2_tensor;

typedef struct {
    int n;
    kserve_v2_tensor t[KSERVE_V2_MAX_OUTPUTS]; /* in the order in asked for them */
    unsigned char *data;                       /* malloc'd: kserve_v2_tensors_free */
    size_t len;
} kserve_v2_tensors;

/* in's outputs as tensors; 0, or -1 with msg as kserve_v2_infer_response fails. */
int kserve_v2_infer_tensors(const kserve_v2_infer *in, const kserve_v2_results *res,
                            kserve_v2_tensors *out, char *msg, size_t msglen);
void kserve_v2_tensors_free(kserve_v2_tensors *t);

/* {"name": "vggserve", "version", "extensions": ["binary_tensor_data", "classification",
 * "model_configuration", "model_repository", "statistics"]} */
json_t *kserve_v2_server_metadata_json(void);

/* What the metadata, config and index answers say about the served model. */
typedef struct {
    const char *model;          /* the model's name: vgg16 */
    int image_hw, n_classes;    /* 224, 1000 */
    int max_images_per_request; /* Triton's max_batch_size: most images in one request */
    int max_batch;              /* images per forward pass: the preferred batch size */
    long long max_queue_delay_us;
    int workers;                /* inference workers: Triton's instance count */
    bool ready;
    int gradcam_hw;             /* the gradcam output's side; 0: no gradcam output (int8) */
    long long version;          /* the version described; 0: 1 */
} kserve_v2_model_facts;

/* {"name", "versions": ["1"], "platform", "inputs", "outputs"} of view v, with -1 for the
 * batch dimension. */
json_t *kserve_v2_model_metadata_json(const kserve_v2_model_facts *f, kserve_v2_view v);

/* Triton's model configuration of view v (as GET .../config answers it in JSON): name,
 * platform, backend, max_batch_size, input and output with data_type (TYPE_FP32,
 * TYPE_STRING), format (FORMAT_NCHW for the tensor input) and dims without the batch
 * dimension, dynamic_batching, instance_group. */
json_t *kserve_v2_model_config_json(const kserve_v2_model_facts *f, kserve_v2_view v);

/* The labels of view v's model (every view has the same): {"name", "version": "1",
 * "count": N, "labels": [N names], "wnids": [N WordNet ids, null where a class has none]},
 * "wnids" only when the labels carry any. */
json_t *kserve_v2_model_labels_json(const char *name, const vgg_labels *labels);

/* Triton's repository index: [{"name", "version": "1", "state": "READY" | "UNAVAILABLE",
 * "reason"}] for every view. */
json_t *kserve_v2_repository_index_json(const kserve_v2_model_facts *f);

/* A model's state in the repository index (Triton's names). */
typedef enum {
    KSERVE_V2_MODEL_UNAVAILABLE = 0,
    KSERVE_V2_MODEL_LOADING,
    KSERVE_V2_MODEL_READY,
    KSERVE_V2_MODEL_UNLOADING,
} kserve_v2_model_state;

extern const char *const kserve_v2_model_state_names[]; /* "UNAVAILABLE", ... */

/* One row of the index: a model's version and its state. */
typedef struct {
    char name[KSERVE_V2_MAX_NAME];
    long long version; /* 0: the model as a whole (nothing served, nothing loading) */
    kserve_v2_model_state state;
    char reason[256];
} kserve_v2_index_entry;

/* The index of a model repository: [{"name", "version"?, "state", "reason"?}], a READY row
 * once per view of the version; with ready_only only those. */
json_t *kserve_v2_repository_entries_json(const kserve_v2_index_entry *e, int n,
                                          bool ready_only);

/* Triton's statistics extension. A duration is a count and nanoseconds in all. */
typedef struct {
    unsigned long long count, ns;
} kserve_v2_duration;

#define KSERVE_V2_MAX_BATCH_STATS VGG_MAX_BATCH /* batch sizes 1..64 (max_batch_size's limit) */

typedef struct {
    unsigned long long inference_count; /* images inferred for this view's requests */
    unsigned long long last_inference_ms; /* ms since the epoch; 0: never */
    kserve_v2_duration success, fail, queue, compute_input, compute_infer, compute_output;
} kserve_v2_view_stats;

typedef struct {
    unsigned long long execution_count; /* forward passes of the shared engine */
    kserve_v2_duration batch_infer[KSERVE_V2_MAX_BATCH_STATS]; /* [b - 1]: batches of b images */
} kserve_v2_engine_stats;

/* {"model_stats": [...]} for view v, or for every view when v is KSERVE_V2_VIEW_COUNT. Views
 * share the engine, so execution_count and batch_stats are the engine's in each. */
json_t *kserve_v2_stats_json(const char *model, kserve_v2_view v,
                             const kserve_v2_view_stats views[KSERVE_V2_VIEW_COUNT],
                             const kserve_v2_engine_stats *engine);
/* The same entries for one version of a model (its "version"), appended to the array
 * model_stats: an answer that lists several models and versions. */
void kserve_v2_stats_append(json_t *model_stats, const char *model, long long version,
                            kserve_v2_view v,
                            const kserve_v2_view_stats views[KSERVE_V2_VIEW_COUNT],
                            const kserve_v2_engine_stats *engine);

/* {"error": message}, message made valid UTF-8 (it may quote what the client sent). */
json_t *kserve_v2_error_json(const char *message);

#endif
