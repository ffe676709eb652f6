/* fuzz_grpc_infer.c - a serialized ModelInferRequest to a job, as the gRPC front end reads it.
 *
 * Input: the bytes of a ModelInferRequest (proto/grpc_service.proto). It runs what ModelInfer
 * runs before the batcher: the protobuf message (grpc_frontend_parse_infer, the C++ front
 * end's framing checks), api/kserve_v2_grpc.c's routing and transcription, and the v2 parser;
 * on success, made-up results through job_answer_v2_tensors, the structured answer gRPC sends.
 * The network side is 8x8 (as fuzz_kserve_v2.c). Invariants: a failure is a 4xx status with a
 * message, never a 5xx; an accepted job holds finite, bounded inputs and wants what its
 * outputs need; every answer tensor's bytes lie inside the answer and have the size its shape
 * and datatype say (FP32: 4 bytes a value; BYTES: length-prefixed elements, shape[0] x
 * shape[1] of them). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "clock.h"
#include "fuzz_util.h"
#include "grpc_frontend.h"
#include "job_answer.h"

#define N_CLASSES 1000
#define HW 8
#define MAP_HW 3

/* BYTES: count length-prefixed elements filling exactly len bytes. */
static void check_bytes(const unsigned char *p, size_t len, long long count) {
    size_t at = 0;
    for (long long i = 0; i < count; i++) {
        FUZZ_CHECK(len - at >= 4);
        uint32_t n = (uint32_t)p[at] | (uint32_t)p[at + 1] << 8 | (uint32_t)p[at + 2] << 16 |
                     (uint32_t)p[at + 3] << 24;
        at += 4;
        FUZZ_CHECK(n <= len - at);
        at += n;
    }
    FUZZ_CHECK(at == len);
}

static void answer(inference_job *job) {
    const int n = job->n_images;
    FUZZ_CHECK(inference_job_alloc_results(job) == 0);
    for (int i = 0; i < n * N_CLASSES; i++) {
        job->probs[i] = (float)((i * 7919) % N_CLASSES) / (N_CLASSES * (N_CLASSES - 1) / 2.0f);
        if (job->logits) job->logits[i] = (float)(i % 97) - 48.5f;
    }
    for (int i = 0; job->maps && i < n * MAP_HW * MAP_HW; i++) job->maps[i] = (float)(i % 13) / 12;
    for (int i = 0; job->explained && i < n; i++) job->explained[i] = i;
    job->status = JOB_OK;
    kserve_v2_tensors t;
    char model[KSERVE_V2_MAX_NAME], msg[300];
    FUZZ_CHECK(job_answer_v2_tensors(job, clock_monotonic_ns(), &t, model, msg, sizeof msg) == API_OK);
    FUZZ_CHECK(t.n == job->v2.n_outputs);
    for (int i = 0; i < t.n; i++) {
        const kserve_v2_tensor *o = &t.t[i];
        FUZZ_CHECK(o->offset <= t.len && o->len <= t.len - o->offset);
        FUZZ_CHECK(o->shape[0] == n);
        if (strcmp(o->datatype, "BYTES") == 0) {
            check_bytes(t.data + o->offset, o->len, o->shape[0] * o->shape[1]);
        } else {
            long long values = o->shape[0] * o->shape[1] * (o->ndim == 3 ? o->shape[2] : 1);
            FUZZ_CHECK((size_t)values * sizeof(float) == o->len);
        }
    }
    kserve_v2_tensors_free(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const served_model model = {.name = "vgg16", .n_classes = N_CLASSES, .image_hw = HW,
                                       .image_floats = 3 * HW * HW,
                                       .preprocess = PREPROCESS_TORCHVISION, .explain_hw = MAP_HW,
                                       .explain_layer = "conv5_3"};
    const classify_limits lim = {1 << 20, 4};
    const image_input_format fmt = {HW, PREPROCESS_TORCHVISION, {.max_pixels = 1 << 20}};
    inference_job *job = inference_job_new(&model, JOB_ANSWER_V2);
    FUZZ_CHECK(job != NULL);
    char msg[800];
    msg[0] = '\0';
    api_status st = grpc_frontend_parse_infer(data, size, &lim, &fmt, job, msg, sizeof msg);
    if (st != API_OK) {
        const int code = api_status_http(st);
        FUZZ_CHECK(code >= 400 && code < 500 && msg[0]);
        FUZZ_CHECK(job->inputs == NULL);
    } else {
        FUZZ_CHECK(job->n_images >= 1 && job->n_images <= lim.max_images);
        for (size_t i = 0; i < (size_t)job->n_images * model.image_floats; i++)
            FUZZ_CHECK(isfinite(job->inputs[i]) && fabsf(job->inputs[i]) <= KSERVE_V2_MAX_ABS_INPUT);
        FUZZ_CHECK(!(job->want & JOB_WANT_LOGITS) == !job->v2.want_logits);
        answer(job);
    }
    inference_job_free(job);
    return 0;
}
