/* kserve_v2_grpc.h - KServe v2 requests as its gRPC protocol carries them, read by the one
 * v2 parser.
 *
 * gRPC names the model in the message (model_name, model_version) instead of the path,
 * carries parameters as typed values, and each input's values as bytes (raw_input_contents,
 * or typed contents the front end lays out the same way: FP32 little-endian, BYTES elements
 * each a 4-byte little-endian length and the bytes). The front end (server/grpc_frontend.cc)
 * fills the plain structs below from the protobuf message; nothing else here knows protobuf.
 *
 * kserve_v2_grpc_route resolves a model name and version to a view with the REST routes'
 * own rules and messages (kserve_v2_route_parse). kserve_v2_grpc_job_parse writes the request
 * as the REST JSON header with every input as binary data (the binary tensor data extension)
 * and hands it to kserve_v2_job_parse, so both protocols share one parser, its limits and its
 * error messages, and a gRPC answer equals the REST answer to the same request.
 *
 * Plain C types only: the C++ front end includes this. Everything passed in is borrowed.
 * Reentrant, no globals (fuzzed through tests/fuzz/fuzz_grpc_infer.cc). */
#ifndef API_KSERVE_V2_GRPC_H
#define API_KSERVE_V2_GRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "classify_request.h"
#include "errors.h"
#include "inference_job.h"
#include "kserve_v2.h"

/* A string as protobuf holds it: not terminated, may contain NUL. */
typedef struct {
    const char *s;
    size_t len;
} kserve_v2_str;

/* One InferParameter (its oneof). */
typedef enum {
    KSERVE_V2_PARAM_BOOL,
    KSERVE_V2_PARAM_INT64,
    KSERVE_V2_PARAM_STRING,
    KSERVE_V2_PARAM_DOUBLE,
    KSERVE_V2_PARAM_UINT64,
    KSERVE_V2_PARAM_UNSET, /* no value chosen: left out */
} kserve_v2_param_kind;

typedef struct {
    kserve_v2_str key;
    kserve_v2_param_kind kind;
    bool b;
    long long i;
    unsigned long long u;
    double d;
    kserve_v2_str s;
} kserve_v2_param;

typedef struct {
    const kserve_v2_param *items;
    int n;
} kserve_v2_params;

typedef struct {
    kserve_v2_str name, datatype;
    const long long *shape;
    int ndim;
    kserve_v2_params params;
    const unsigned char *data; /* the values as binary tensor data */
    size_t data_len;
} kserve_v2_grpc_input;

typedef struct {
    kserve_v2_str name;
    kserve_v2_params params; /* classification, class_id */
} kserve_v2_grpc_output;

typedef struct {
    kserve_v2_str model_name, model_version, id;
    kserve_v2_params params;
    const kserve_v2_grpc_input *inputs;
    int n_inputs;
    const kserve_v2_grpc_output *outputs;
    int n_outputs;
    int64_t deadline_ns; /* clock_monotonic_ns() past which decoding stops (504); 0: none */
} kserve_v2_grpc_request;

/* Which model, view and version (*t) name and version (empty: the latest served) name among
 * the catalog's models, for the route that asks (KSERVE_V2_ROUTE_MODEL_METADATA,
 * _MODEL_READY, _INFER, _MODEL_CONFIG or _MODEL_STATS). API_OK, or API_NOT_FOUND with msg,
 * the REST route's message. */
api_status kserve_v2_grpc_route(const kserve_v2_catalog *catalog, kserve_v2_str name,
                                kserve_v2_str version, kserve_v2_route route, kserve_v2_target *t,
                                char *msg, size_t msglen);

/* ModelInfer: routes r to a view of job->model, then parses it as kserve_v2_job_parse does
 * (same checks, limits and messages). On API_OK the job holds the tensors and outputs. */
api_status kserve_v2_grpc_job_parse(const kserve_v2_grpc_request *r, const classify_limits *lim,
                                    const image_input_format *fmt, inference_job *job, char *msg,
                                    size_t msglen);

#endif
