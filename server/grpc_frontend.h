/* grpc_frontend.h - the gRPC listener: KServe v2's GRPCInferenceService with Triton's
 * extensions, and grpc.health.v1.Health (server/grpc_frontend.cc, the project's one C++ file).
 *
 * The listener only moves bytes: each RPC becomes the same typed job or v2 document the HTTP
 * routes use, through grpc_service.h (the service's C side), and its answer goes back in the
 * protocol's messages. grpc_frontend_start binds and serves on gRPC's own threads; a call
 * waiting for inference holds none (callback API). grpc_frontend_stop lets calls in flight
 * finish for grace_ms, then cancels the rest and frees everything.
 *
 * Built only with the CMake option VGGSERVE_GRPC (on by default). Thread-safe: start and stop
 * from one thread; grpc_frontend_parse_infer from any. */
#ifndef SERVER_GRPC_FRONTEND_H
#define SERVER_GRPC_FRONTEND_H

#include <stddef.h>
#include <stdint.h>

#include "classify_request.h"
#include "errors.h"
#include "inference_job.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct grpc_frontend grpc_frontend;
typedef struct grpc_service grpc_service;

typedef struct {
    const char *host;           /* address to bind: 127.0.0.1, 0.0.0.0, :: */
    int port;                   /* 0: any free port */
    long long max_message_bytes; /* largest request message (max_body_bytes) */
    long long idle_timeout_ms;  /* a connection without calls for this long is closed */
    const char *tls_cert_file;  /* PEM; both set: TLS only, else plaintext */
    const char *tls_key_file;
} grpc_frontend_options;

/* Binds and serves svc (borrowed; outlives the front end). *port_out: the port bound. NULL
 * with err when the port cannot be bound or the TLS files cannot be read. */
grpc_frontend *grpc_frontend_start(grpc_service *svc, const grpc_frontend_options *o,
                                   int *port_out, char *err, size_t errlen);

void grpc_frontend_stop(grpc_frontend *f, int64_t grace_ms);

/* A serialized ModelInferRequest to job (job->model set by the caller), as ModelInfer reads
 * it: the protobuf message, then api/kserve_v2_grpc.h. For the fuzz harness. */
api_status grpc_frontend_parse_infer(const void *bytes, size_t len, const classify_limits *lim,
                                     const image_input_format *fmt, inference_job *job,
                                     char *msg, size_t msglen);

#ifdef __cplusplus
}
#endif

#endif
