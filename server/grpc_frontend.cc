/* grpc_frontend.cc - the KServe v2 gRPC service and grpc.health.v1, behind a C API.
 *
 * CONTRACT (grpc_frontend.h): the project's one C++ file. It holds no model, HTTP or v2
 * logic: every RPC asks grpc_service.h (C) for the same job or document the HTTP routes use
 * and frames the answer in the protocol's messages (proto/, ours, with the published
 * field numbers). What a request means, its checks and messages are api/'s
 * (kserve_v2_grpc.h turns the message's fields into what the v2 parser reads); what a status
 * becomes is api/errors.h's table (api_status_grpc).
 *
 *   ServerLive, ServerReady, ModelReady        the service state (ModelReady of an unknown
 *                                              model or version: not ready, as Triton's)
 *   ServerMetadata, ModelMetadata, ModelConfig, ModelStatistics, RepositoryIndex
 *                                              HTTP's JSON document, read into the message
 *                                              by protobuf's JSON mapping (same field names)
 *   RepositoryModelLoad / Unload               as HTTP's POST .../load|unload: explicit mode
 *                                              only; answered when the loader is done
 *   ModelInfer, ModelStreamInfer               a job through the batcher; outputs in
 *                                              raw_output_contents, as Triton sends them
 *   grpc.health.v1.Health/Check                SERVING once ready
 *
 * Requests: the bearer token from the `authorization` metadata (infer always, the others
 * under auth_health), grpc-timeout as the job's deadline (never later than
 * request_timeout_ms), max_body_bytes as the largest message.
 *
 * DESIGN (threads): gRPC's callback API runs each handler on one of gRPC's threads. ModelInfer
 * parses (images decode there, as on HTTP's threads), submits the job and returns its reactor
 * unfinished, so no thread waits for inference. The worker that finishes the job's last image
 * calls Inference::on_complete, which writes the response and calls Finish. A call whose
 * client goes away (cancel, deadline) gets OnCancel: its job is marked cancelled and its
 * images still queued are dropped; the job still completes once (as expired), Finish still
 * runs, and OnDone frees the call. A stream keeps its jobs in flight and writes answers one
 * at a time as they finish (each carries its request's id); it ends after the client's last
 * request is answered. Stop: Shutdown lets calls in flight finish for the grace, then
 * cancels them. */
#include <grpcpp/grpcpp.h>
#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/util/json_util.h>

#include <chrono>
#include <cstring>
#include <deque>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "grpc_service.grpc.pb.h"
#include "health.grpc.pb.h"

extern "C" {
#include "clock.h"
#include "grpc_frontend.h"
#include "grpc_service.h"
#include "job_answer.h"
#include "kserve_v2_grpc.h"
}

namespace {

using grpc::CallbackServerContext;
using grpc::ServerUnaryReactor;
using grpc::Status;

constexpr const char *kInferService = "inference.GRPCInferenceService";

Status status_of(api_status st, const char *msg) {
    return st == API_OK ? Status::OK
                        : Status(static_cast<grpc::StatusCode>(api_status_grpc(st)), msg);
}

kserve_v2_str str_of(const std::string &s) {
    return {s.data(), s.size()};
}

/* ---------------------------------------------------------------- ModelInferRequest -> C */

/* A request's fields as api/kserve_v2_grpc.h reads them, pointing into the message; typed
 * contents are laid out here as raw bytes. Lives as long as the message. */
struct InferFields {
    std::vector<std::vector<kserve_v2_param>> params; /* [0] request, then inputs, outputs */
    std::vector<std::vector<long long>> shapes;
    std::vector<std::string> typed;
    std::vector<kserve_v2_grpc_input> inputs;
    std::vector<kserve_v2_grpc_output> outputs;
    kserve_v2_grpc_request req{};
};

using ParamMap = google::protobuf::Map<std::string, inference::InferParameter>;

kserve_v2_params params_of(const ParamMap &m, InferFields *f) {
    std::vector<kserve_v2_param> v;
    for (const auto &[key, p] : m) {
        kserve_v2_param q{};
        q.key = str_of(key);
        switch (p.parameter_choice_case()) {
        case inference::InferParameter::kBoolParam:
            q.kind = KSERVE_V2_PARAM_BOOL;
            q.b = p.bool_param();
            break;
        case inference::InferParameter::kInt64Param:
            q.kind = KSERVE_V2_PARAM_INT64;
            q.i = p.int64_param();
            break;
        case inference::InferParameter::kStringParam:
            q.kind = KSERVE_V2_PARAM_STRING;
            q.s = str_of(p.string_param());
            break;
        case inference::InferParameter::kDoubleParam:
            q.kind = KSERVE_V2_PARAM_DOUBLE;
            q.d = p.double_param();
            break;
        case inference::InferParameter::kUint64Param:
            q.kind = KSERVE_V2_PARAM_UINT64;
            q.u = p.uint64_param();
            break;
        default: q.kind = KSERVE_V2_PARAM_UNSET; break;
        }
        v.push_back(q);
    }
    f->params.push_back(std::move(v));
    return {f->params.back().data(), static_cast<int>(f->params.back().size())};
}

/* An input's typed contents as the bytes raw_input_contents would hold: FP32 little-endian,
 * BYTES each element's 4-byte little-endian length and bytes. Other fields are refused. */
bool typed_bytes(const inference::ModelInferRequest::InferInputTensor &in, std::string *out,
                 char *msg, size_t msglen) {
    const auto &c = in.contents();
    const bool others = c.bool_contents_size() || c.int_contents_size() ||
                        c.int64_contents_size() || c.uint_contents_size() ||
                        c.uint64_contents_size() || c.fp64_contents_size();
    if (others || (in.datatype() != "BYTES" && c.bytes_contents_size()) ||
        (in.datatype() != "FP32" && c.fp32_contents_size())) {
        snprintf(msg, msglen, "input '%.64s': datatype %.16s takes %s", in.name().c_str(),
                 in.datatype().c_str(),
                 in.datatype() == "BYTES"  ? "bytes_contents"
                 : in.datatype() == "FP32" ? "fp32_contents"
                                           : "no contents here");
        return false;
    }
    out->append(reinterpret_cast<const char *>(c.fp32_contents().data()),
                c.fp32_contents_size() * sizeof(float));
    for (const std::string &b : c.bytes_contents()) {
        const uint32_t n = static_cast<uint32_t>(b.size());
        const unsigned char le[4] = {
            static_cast<unsigned char>(n), static_cast<unsigned char>(n >> 8),
            static_cast<unsigned char>(n >> 16), static_cast<unsigned char>(n >> 24)};
        out->append(reinterpret_cast<const char *>(le), 4);
        out->append(b);
    }
    return true;
}

/* The message's framing (one value source per input), then its fields into *f. */
api_status describe(const inference::ModelInferRequest &m, InferFields *f, char *msg,
                    size_t msglen) {
    const int n_raw = m.raw_input_contents_size();
    if (n_raw && n_raw != m.inputs_size()) {
        snprintf(msg, msglen,
                 "%d raw_input_contents for %d inputs: send one per input, or "
                 "none and each input's contents",
                 n_raw, m.inputs_size());
        return API_BAD_REQUEST;
    }
    f->typed.reserve(m.inputs_size());
    f->shapes.reserve(m.inputs_size());
    f->params.reserve(1 + m.inputs_size() + m.outputs_size());
    f->req.params = params_of(m.parameters(), f);
    for (int i = 0; i < m.inputs_size(); i++) {
        const auto &in = m.inputs(i);
        f->typed.emplace_back();
        if (!typed_bytes(in, &f->typed.back(), msg, msglen)) return API_BAD_REQUEST;
        const std::string &values = n_raw ? m.raw_input_contents(i) : f->typed.back();
        if (n_raw && !f->typed.back().empty()) {
            snprintf(msg, msglen, "input '%.64s' has both contents and raw_input_contents",
                     in.name().c_str());
            return API_BAD_REQUEST;
        }
        if (values.empty()) {
            snprintf(msg, msglen,
                     "input '%.64s' has no values: send contents or "
                     "raw_input_contents",
                     in.name().c_str());
            return API_BAD_REQUEST;
        }
        f->shapes.emplace_back(in.shape().begin(), in.shape().end());
        kserve_v2_grpc_input g{};
        g.name = str_of(in.name());
        g.datatype = str_of(in.datatype());
        g.shape = f->shapes.back().data();
        g.ndim = in.shape_size() > 8 ? 9 : in.shape_size(); /* the parser refuses > 4 */
        g.params = params_of(in.parameters(), f);
        g.data = reinterpret_cast<const unsigned char *>(values.data());
        g.data_len = values.size();
        f->inputs.push_back(g);
    }
    for (const auto &o : m.outputs())
        f->outputs.push_back({str_of(o.name()), params_of(o.parameters(), f)});
    f->req.model_name = str_of(m.model_name());
    f->req.model_version = str_of(m.model_version());
    f->req.id = str_of(m.id());
    f->req.inputs = f->inputs.data();
    f->req.n_inputs = static_cast<int>(f->inputs.size());
    f->req.outputs = f->outputs.data();
    f->req.n_outputs = static_cast<int>(f->outputs.size());
    return API_OK;
}

/* ---------------------------------------------------------------- one inference */

/* A finished job to the response: the outputs as raw_output_contents. */
api_status write_response(const inference_job *job, int64_t start_ns,
                          inference::ModelInferResponse *resp, char *msg, size_t msglen) {
    kserve_v2_tensors t;
    char model[KSERVE_V2_MAX_NAME];
    api_status st = job_answer_v2_tensors(job, start_ns, &t, model, msg, msglen);
    if (st != API_OK) return st;
    resp->set_model_name(model);
    resp->set_model_version(std::to_string(job->model->version > 0 ? job->model->version : 1));
    resp->set_id(job->v2.id);
    for (int i = 0; i < t.n; i++) {
        auto *o = resp->add_outputs();
        o->set_name(t.t[i].name);
        o->set_datatype(t.t[i].datatype);
        for (int d = 0; d < t.t[i].ndim; d++)
            o->add_shape(t.t[i].shape[d]);
        resp->add_raw_output_contents(reinterpret_cast<const char *>(t.data) + t.t[i].offset,
                                      t.t[i].len);
    }
    kserve_v2_tensors_free(&t);
    return API_OK;
}

/* The client's deadline on CLOCK_MONOTONIC, or 0 when it set none. */
int64_t client_deadline_ns(const grpc::ServerContextBase *ctx) {
    const auto d = ctx->deadline();
    if (d == std::chrono::system_clock::time_point::max()) return 0;
    const auto left =
        std::chrono::duration_cast<std::chrono::nanoseconds>(d - std::chrono::system_clock::now())
            .count();
    return clock_monotonic_ns() + (left > 1 ? left : 1);
}

std::string metadata(const grpc::ServerContextBase *ctx, const char *key) {
    const auto &md = ctx->client_metadata();
    auto it = md.find(key);
    return it == md.end() ? std::string() : std::string(it->second.data(), it->second.size());
}

/* One ModelInfer request on its way: parsed, submitted, answered by the callback. Owned by
 * its call (Unary) or its stream (Stream), which deletes it after done() ran. */
struct Inference {
    grpc_service *svc;
    int64_t start_ns = clock_monotonic_ns();
    inference_job *job = nullptr;
    bool queued = false;
    api_status status = API_OK;
    char msg[800] = "";
    std::string id;                        /* the request's id (a stream's error answer) */
    std::function<void(Inference *)> done; /* on a worker: the answer is ready to send */
    std::mutex started;                    /* held by start() until submit's result is kept */

    ~Inference() { inference_job_free(job); }

    /* The batcher's completion. done() may free this Inference, so it runs on a copy. */
    static void on_complete(inference_job *job) {
        Inference *inf = static_cast<Inference *>(job->user);
        { std::lock_guard<std::mutex> l(inf->started); }
        auto d = inf->done;
        d(inf);
    }

    /* Parses and submits; false when it failed already (status and msg say why). */
    bool start(const inference::ModelInferRequest &m, const grpc::ServerContextBase *ctx) {
        char auth_msg[200];
        status = grpc_service_auth(svc,
                                   ctx->client_metadata().count("authorization")
                                       ? metadata(ctx, "authorization").c_str()
                                       : nullptr,
                                   false, auth_msg, sizeof auth_msg);
        if (status != API_OK) {
            snprintf(msg, sizeof msg, "%s", auth_msg);
            return false;
        }
        InferFields f;
        status = describe(m, &f, msg, sizeof msg);
        if (status != API_OK) return false;
        /* Once queued, the completion may run (and free this) at any time after the lock. */
        std::lock_guard<std::mutex> l(started);
        const grpc_infer_call call = {&f.req, start_ns, client_deadline_ns(ctx), on_complete, this};
        status = grpc_service_infer(svc, &call, &job, msg, sizeof msg);
        queued = status == API_OK;
        return queued;
    }

    void log(const char *method, const std::string &peer, int64_t output_ns, size_t bytes) {
        /* Expired before its deadline: the client cancelled it (OnCancel). */
        const bool cancelled = queued && job->status == JOB_EXPIRED &&
                               inference_job_is_cancelled(job) &&
                               clock_monotonic_ns() < job->deadline_ns;
        grpc_call_record rec = {method, peer.c_str(), start_ns,  status, msg,
                                job,    queued,       output_ns, bytes,  cancelled};
        grpc_service_log(svc, &rec);
    }
};

/* ModelInfer: one job; the worker's completion finishes the call. */
class InferCall : public ServerUnaryReactor {
  public:
    InferCall(grpc_service *svc, CallbackServerContext *ctx,
              const inference::ModelInferRequest *req, inference::ModelInferResponse *resp)
        : resp_(resp), peer_(ctx->peer()) {
        inf_.svc = svc;
        inf_.done = [this](Inference *) { answer(); };
        if (!inf_.start(*req, ctx)) finish();
    }
    void OnCancel() override {
        if (inf_.job && inf_.queued) inference_job_cancel(inf_.job);
    }
    void OnDone() override { delete this; }

  private:
    void answer() {
        const int64_t t0 = clock_monotonic_ns();
        inf_.status = write_response(inf_.job, inf_.start_ns, resp_, inf_.msg, sizeof inf_.msg);
        output_ns_ = clock_monotonic_ns() - t0;
        if (inf_.status != API_OK) resp_->Clear();
        finish();
    }
    void finish() {
        inf_.log("ModelInfer", peer_, output_ns_,
                 inf_.status == API_OK ? resp_->ByteSizeLong() : 0);
        Finish(status_of(inf_.status, inf_.msg));
    }

    inference::ModelInferResponse *resp_;
    std::string peer_;
    Inference inf_;
    int64_t output_ns_ = 0;
};

/* ModelStreamInfer: reads requests one after another, each its own job; writes each answer
 * (or its error_message, with the request's id) when its job finishes, one write at a time;
 * finishes once the client closed its side and every answer is written. */
class StreamCall : public grpc::ServerBidiReactor<inference::ModelInferRequest,
                                                  inference::ModelStreamInferResponse> {
  public:
    StreamCall(grpc_service *svc, CallbackServerContext *ctx)
        : svc_(svc), ctx_(ctx), peer_(ctx->peer()) {
        StartRead(&req_);
    }
    void OnReadDone(bool ok) override {
        if (!ok) { /* the client closed its side (or went away) */
            std::unique_lock<std::mutex> l(mu_);
            reading_ = false;
            finish_if_done(l);
            return;
        }
        auto inf = std::make_unique<Inference>();
        inf->svc = svc_;
        inf->id = req_.id();
        inf->done = [this](Inference *i) { answered(i); };
        Inference *raw = inf.get();
        {
            std::lock_guard<std::mutex> l(mu_);
            in_flight_.push_back(std::move(inf));
        }
        if (!raw->start(req_, ctx_)) answered(raw);
        req_.Clear();
        StartRead(&req_);
    }
    void OnWriteDone(bool ok) override {
        std::unique_lock<std::mutex> l(mu_);
        writes_.pop_front();
        if (!ok) broken_ = true;
        if (broken_) writes_.clear();
        inference::ModelStreamInferResponse *next = writes_.empty() ? nullptr : &writes_.front();
        if (next) {
            l.unlock();
            StartWrite(next);
            return;
        }
        finish_if_done(l);
    }
    void OnCancel() override {
        std::lock_guard<std::mutex> l(mu_);
        broken_ = true;
        for (auto &i : in_flight_)
            if (i->queued) inference_job_cancel(i->job);
    }
    void OnDone() override { delete this; }

  private:
    /* A request's answer is ready (a worker, or the reader for a refused request). gRPC's
     * Start* and Finish are called without mu_ held, so a reaction run inline cannot block. */
    void answered(Inference *inf) {
        inference::ModelStreamInferResponse r;
        if (inf->status == API_OK)
            inf->status = write_response(inf->job, inf->start_ns, r.mutable_infer_response(),
                                         inf->msg, sizeof inf->msg);
        if (inf->status != API_OK) {
            r.Clear();
            r.set_error_message(inf->msg);
            r.mutable_infer_response()->set_id(inf->id); /* which request failed, as Triton */
        }
        inf->log("ModelStreamInfer", peer_, 0, r.ByteSizeLong());
        std::unique_lock<std::mutex> l(mu_);
        for (auto it = in_flight_.begin(); it != in_flight_.end(); ++it)
            if (it->get() == inf) {
                in_flight_.erase(it); /* frees inf and its job */
                break;
            }
        if (broken_) return finish_if_done(l);
        writes_.push_back(std::move(r));
        if (writes_.size() > 1) return; /* OnWriteDone starts it */
        inference::ModelStreamInferResponse *w = &writes_.front();
        l.unlock();
        StartWrite(w);
    }
    /* Finishes the stream once the client closed its side and every answer is written. */
    void finish_if_done(std::unique_lock<std::mutex> &l) {
        if (reading_ || !in_flight_.empty() || !writes_.empty() || finished_) return;
        finished_ = true;
        const bool broken = broken_;
        l.unlock();
        Finish(broken ? Status(grpc::StatusCode::CANCELLED, "stream cancelled") : Status::OK);
    }

    grpc_service *svc_;
    CallbackServerContext *ctx_;
    std::string peer_;
    inference::ModelInferRequest req_;
    std::mutex mu_;
    std::vector<std::unique_ptr<Inference>> in_flight_;
    std::deque<inference::ModelStreamInferResponse> writes_; /* front: being written */
    bool reading_ = true, broken_ = false, finished_ = false;
};

/* ---------------------------------------------------------------- the services */

class InferenceService final : public inference::GRPCInferenceService::CallbackService {
  public:
    explicit InferenceService(grpc_service *svc) : svc_(svc) {}

    ServerUnaryReactor *ServerLive(CallbackServerContext *ctx, const inference::ServerLiveRequest *,
                                   inference::ServerLiveResponse *resp) override {
        return answer(ctx, "ServerLive", [&](char *, size_t) {
            resp->set_live(true);
            return API_OK;
        });
    }
    ServerUnaryReactor *ServerReady(CallbackServerContext *ctx,
                                    const inference::ServerReadyRequest *,
                                    inference::ServerReadyResponse *resp) override {
        return answer(ctx, "ServerReady", [&](char *, size_t) {
            resp->set_ready(grpc_service_ready(svc_));
            return API_OK;
        });
    }
    ServerUnaryReactor *ModelReady(CallbackServerContext *ctx,
                                   const inference::ModelReadyRequest *req,
                                   inference::ModelReadyResponse *resp) override {
        return answer(ctx, "ModelReady", [&](char *msg, size_t msglen) {
            kserve_v2_target v;
            api_status st =
                route(req->name(), req->version(), KSERVE_V2_ROUTE_MODEL_READY, &v, msg, msglen);
            /* An unknown model or version is not ready, not an error: Triton's ModelReady
             * answers ready=false there, so tritonclient.grpc's is_model_ready says False, as
             * tritonclient.http's does for HTTP's 404. */
            if (st == API_NOT_FOUND) {
                msg[0] = '\0';
                return API_OK;
            }
            if (st == API_OK) resp->set_ready(grpc_service_model_ready(svc_, &v));
            return st;
        });
    }
    ServerUnaryReactor *ServerMetadata(CallbackServerContext *ctx,
                                       const inference::ServerMetadataRequest *,
                                       inference::ServerMetadataResponse *resp) override {
        return answer(ctx, "ServerMetadata", [&](char *msg, size_t msglen) {
            return doc(GRPC_DOC_SERVER_METADATA, nullptr, "", resp, msg, msglen);
        });
    }
    ServerUnaryReactor *ModelMetadata(CallbackServerContext *ctx,
                                      const inference::ModelMetadataRequest *req,
                                      inference::ModelMetadataResponse *resp) override {
        return answer(ctx, "ModelMetadata", [&](char *msg, size_t msglen) {
            kserve_v2_target v;
            api_status st =
                route(req->name(), req->version(), KSERVE_V2_ROUTE_MODEL_METADATA, &v, msg, msglen);
            return st == API_OK ? doc(GRPC_DOC_MODEL_METADATA, &v, "", resp, msg, msglen) : st;
        });
    }
    ServerUnaryReactor *ModelConfig(CallbackServerContext *ctx,
                                    const inference::ModelConfigRequest *req,
                                    inference::ModelConfigResponse *resp) override {
        return answer(ctx, "ModelConfig", [&](char *msg, size_t msglen) {
            kserve_v2_target v;
            api_status st =
                route(req->name(), req->version(), KSERVE_V2_ROUTE_MODEL_CONFIG, &v, msg, msglen);
            return st == API_OK ? doc(GRPC_DOC_MODEL_CONFIG, &v, "config", resp, msg, msglen) : st;
        });
    }
    ServerUnaryReactor *ModelStatistics(CallbackServerContext *ctx,
                                        const inference::ModelStatisticsRequest *req,
                                        inference::ModelStatisticsResponse *resp) override {
        return answer(ctx, "ModelStatistics", [&](char *msg, size_t msglen) {
            kserve_v2_target v = {}; /* no name: every model */
            v.view = KSERVE_V2_VIEW_COUNT;
            api_status st = req->name().empty()
                                ? API_OK
                                : route(req->name(), req->version(), KSERVE_V2_ROUTE_MODEL_STATS,
                                        &v, msg, msglen);
            return st == API_OK ? doc(GRPC_DOC_MODEL_STATS, &v, "", resp, msg, msglen) : st;
        });
    }
    ServerUnaryReactor *RepositoryIndex(CallbackServerContext *ctx,
                                        const inference::RepositoryIndexRequest *req,
                                        inference::RepositoryIndexResponse *resp) override {
        return answer(ctx, "RepositoryIndex", [&](char *msg, size_t msglen) {
            api_status st = grpc_service_repository_api(svc_, msg, msglen);
            if (st != API_OK) return st;
            if (req->ready() && !grpc_service_ready(svc_)) return API_OK; /* none is ready */
            return doc(req->ready() ? GRPC_DOC_REPOSITORY_INDEX_READY : GRPC_DOC_REPOSITORY_INDEX,
                       nullptr, "models", resp, msg, msglen);
        });
    }
    ServerUnaryReactor *RepositoryModelLoad(CallbackServerContext *ctx,
                                            const inference::RepositoryModelLoadRequest *req,
                                            inference::RepositoryModelLoadResponse *) override {
        return control(ctx, "RepositoryModelLoad", false, req->model_name(), req->parameters());
    }
    ServerUnaryReactor *RepositoryModelUnload(CallbackServerContext *ctx,
                                              const inference::RepositoryModelUnloadRequest *req,
                                              inference::RepositoryModelUnloadResponse *) override {
        return control(ctx, "RepositoryModelUnload", true, req->model_name(), req->parameters());
    }
    ServerUnaryReactor *ModelInfer(CallbackServerContext *ctx,
                                   const inference::ModelInferRequest *req,
                                   inference::ModelInferResponse *resp) override {
        return new InferCall(svc_, ctx, req, resp);
    }
    grpc::ServerBidiReactor<inference::ModelInferRequest, inference::ModelStreamInferResponse> *
    ModelStreamInfer(CallbackServerContext *ctx) override {
        return new StreamCall(svc_, ctx);
    }

  private:
    /* A load or unload in flight: the loader thread finishes it (ControlCall::done). */
    struct ControlCall {
        grpc_service *svc;
        ServerUnaryReactor *reactor;
        const char *method;
        std::string peer;
        int64_t start_ns;

        static void done(void *ctx, api_status st, const char *msg) {
            auto *c = static_cast<ControlCall *>(ctx);
            c->finish(st, msg);
            delete c;
        }
        void finish(api_status st, const char *msg) {
            grpc_call_record rec = {method,  peer.c_str(), start_ns, st, msg,
                                    nullptr, false,        0,        0,  false};
            grpc_service_log(svc, &rec);
            reactor->Finish(status_of(st, msg));
        }
    };

    /* RepositoryModelLoad/Unload: auth as an inference call's (HTTP's repository routes need
     * the token too), then the operation is queued and the call answered when it ends. The
     * parameters: a load's "config" (a string: config.json's text for this load); an unload's
     * "unload_dependents" (a bool tritonclient always sends; there are no ensembles here, so
     * no dependents). */
    ServerUnaryReactor *control(
        CallbackServerContext *ctx, const char *method, bool unload, const std::string &name,
        const google::protobuf::Map<std::string, inference::ModelRepositoryParameter> &params) {
        auto *c = new ControlCall{svc_, ctx->DefaultReactor(), method, ctx->peer(),
                                  clock_monotonic_ns()};
        char msg[800] = "";
        const std::string auth = metadata(ctx, "authorization");
        api_status st = grpc_service_auth(
            svc_, ctx->client_metadata().count("authorization") ? auth.c_str() : nullptr, false,
            msg, sizeof msg);
        if (st == API_OK) st = grpc_service_repository_writable(svc_, msg, sizeof msg);
        std::string config;
        bool has_config = false;
        using Param = inference::ModelRepositoryParameter;
        for (const auto &p : params) {
            if (st != API_OK) break;
            const auto kind = p.second.parameter_choice_case();
            if (p.first == "config" && !unload && kind == Param::kStringParam) {
                config = p.second.string_param();
                has_config = true;
            } else if (p.first == "unload_dependents" && unload && kind == Param::kBoolParam) {
                /* nothing depends on a model here */
            } else {
                snprintf(msg, sizeof msg, "parameter '%.64s' is not supported: a load takes "
                         "\"config\" (a string), an unload \"unload_dependents\" (a bool)",
                         p.first.c_str());
                st = API_BAD_REQUEST;
            }
        }
        if (st == API_OK && config.find('\0') != std::string::npos) {
            snprintf(msg, sizeof msg, "parameter 'config' holds a NUL byte");
            st = API_BAD_REQUEST;
        }
        ServerUnaryReactor *reactor = c->reactor; /* c is the loader's once queued */
        if (st == API_OK)
            st = grpc_service_repository_control(svc_, unload, name.c_str(),
                                                 has_config ? config.c_str() : nullptr,
                                                 ControlCall::done, c, msg, sizeof msg);
        if (st != API_OK) { /* refused at once: done will not be called */
            c->finish(st, msg);
            delete c;
        }
        return reactor;
    }

    /* A call answered at once: auth (under auth_health), then fill(msg, msglen). */
    template <typename Fill>
    ServerUnaryReactor *answer(CallbackServerContext *ctx, const char *method, Fill fill) {
        const int64_t start_ns = clock_monotonic_ns();
        char msg[800] = "";
        const std::string auth = metadata(ctx, "authorization");
        api_status st = grpc_service_auth(
            svc_, ctx->client_metadata().count("authorization") ? auth.c_str() : nullptr, true, msg,
            sizeof msg);
        if (st == API_OK) st = fill(msg, sizeof msg);
        const std::string peer = ctx->peer();
        grpc_call_record rec = {method,  peer.c_str(), start_ns, st, msg,
                                nullptr, false,        0,        0,  false};
        grpc_service_log(svc_, &rec);
        ServerUnaryReactor *r = ctx->DefaultReactor();
        r->Finish(status_of(st, msg));
        return r;
    }

    api_status route(const std::string &name, const std::string &version, kserve_v2_route rt,
                     kserve_v2_target *v, char *msg, size_t msglen) {
        return grpc_service_route(svc_, str_of(name), str_of(version),
                                    rt, v, msg, msglen);
    }

    /* HTTP's document for doc, read into resp by protobuf's JSON mapping; wrap names the field
     * the document is (ModelConfigResponse.config, RepositoryIndexResponse.models), or "". */
    api_status doc(grpc_doc d, const kserve_v2_target *v, const char *wrap,
                   google::protobuf::Message *resp,
                   char *msg, size_t msglen) {
        char *text = grpc_service_doc(svc_, d, v);
        if (!text) {
            snprintf(msg, msglen, "out of memory");
            return API_INTERNAL;
        }
        std::string json =
            *wrap ? std::string("{\"") + wrap + "\":" + text + "}" : std::string(text);
        free(text);
        const auto s = google::protobuf::util::JsonStringToMessage(json, resp);
        if (!s.ok()) {
            snprintf(msg, msglen, "cannot frame the answer: %.200s", s.ToString().c_str());
            return API_INTERNAL;
        }
        return API_OK;
    }

    grpc_service *svc_;
};

class HealthService final : public grpc::health::v1::Health::CallbackService {
  public:
    explicit HealthService(grpc_service *svc) : svc_(svc) {}
    ServerUnaryReactor *Check(CallbackServerContext *ctx,
                              const grpc::health::v1::HealthCheckRequest *req,
                              grpc::health::v1::HealthCheckResponse *resp) override {
        ServerUnaryReactor *r = ctx->DefaultReactor();
        if (!req->service().empty() && req->service() != kInferService) {
            r->Finish(Status(grpc::StatusCode::NOT_FOUND, "unknown service"));
            return r;
        }
        resp->set_status(grpc_service_ready(svc_)
                             ? grpc::health::v1::HealthCheckResponse::SERVING
                             : grpc::health::v1::HealthCheckResponse::NOT_SERVING);
        r->Finish(Status::OK);
        return r;
    }

  private:
    grpc_service *svc_;
};

bool read_file(const char *path, std::string *out) {
    std::ifstream f(path, std::ios::binary);
    if (!f) return false;
    std::ostringstream ss;
    ss << f.rdbuf();
    *out = ss.str();
    return true;
}

/* Plaintext, or TLS from the HTTP listener's certificate settings. */
std::shared_ptr<grpc::ServerCredentials> credentials(const grpc_frontend_options *o, char *err,
                                                     size_t errlen) {
    if (!o->tls_cert_file || !o->tls_cert_file[0]) return grpc::InsecureServerCredentials();
    grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
    if (!read_file(o->tls_key_file, &pair.private_key) ||
        !read_file(o->tls_cert_file, &pair.cert_chain)) {
        snprintf(err, errlen, "grpc: cannot read tls_cert_file '%s' or tls_key_file '%s'",
                 o->tls_cert_file, o->tls_key_file);
        return nullptr;
    }
    grpc::SslServerCredentialsOptions opts;
    opts.pem_key_cert_pairs.push_back(pair);
    return grpc::SslServerCredentials(opts);
}

/* protobuf logs every string field that is not UTF-8 as it parses a client's message: a
 * client could fill the event log with them. The call fails all the same (INTERNAL). */
void drop_protobuf_log(google::protobuf::LogLevel, const char *, int, const std::string &) {}

} // namespace

struct grpc_frontend {
    std::unique_ptr<InferenceService> infer;
    std::unique_ptr<HealthService> health;
    std::unique_ptr<grpc::Server> server;
};

extern "C" grpc_frontend *grpc_frontend_start(grpc_service *svc, const grpc_frontend_options *o,
                                              int *port_out, char *err, size_t errlen) {
    auto creds = credentials(o, err, errlen);
    if (!creds) return nullptr;
    google::protobuf::SetLogHandler(drop_protobuf_log);
    auto f = std::make_unique<grpc_frontend>();
    f->infer = std::make_unique<InferenceService>(svc);
    f->health = std::make_unique<HealthService>(svc);
    const std::string host = std::strchr(o->host, ':') ? std::string("[") + o->host + "]" : o->host;
    grpc::ServerBuilder b;
    b.AddListeningPort(host + ":" + std::to_string(o->port), creds, port_out);
    const long long max = o->max_message_bytes < INT32_MAX ? o->max_message_bytes : INT32_MAX;
    b.SetMaxReceiveMessageSize(static_cast<int>(max));
    /* connection_timeout_s, as HTTP closes idle keep-alive connections. */
    b.AddChannelArgument(
        GRPC_ARG_MAX_CONNECTION_IDLE_MS,
        static_cast<int>(o->idle_timeout_ms < INT32_MAX ? o->idle_timeout_ms : INT32_MAX));
    b.RegisterService(f->infer.get());
    b.RegisterService(f->health.get());
    f->server = b.BuildAndStart();
    if (!f->server || *port_out == 0) {
        snprintf(err, errlen, "grpc: cannot listen on %s:%d", o->host, o->port);
        return nullptr;
    }
    return f.release();
}

extern "C" void grpc_frontend_stop(grpc_frontend *f, int64_t grace_ms) {
    if (!f) return;
    f->server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(grace_ms));
    f->server->Wait();
    delete f;
}

extern "C" api_status grpc_frontend_parse_infer(const void *bytes, size_t len,
                                                const classify_limits *lim,
                                                const image_input_format *fmt, inference_job *job,
                                                char *msg, size_t msglen) {
    inference::ModelInferRequest m;
    if (len > INT32_MAX || !m.ParseFromArray(bytes, static_cast<int>(len))) {
        snprintf(msg, msglen, "not a ModelInferRequest message");
        return API_BAD_REQUEST;
    }
    InferFields f;
    api_status st = describe(m, &f, msg, msglen);
    return st == API_OK ? kserve_v2_grpc_job_parse(&f.req, lim, fmt, job, msg, msglen) : st;
}
