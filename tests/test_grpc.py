#!/usr/bin/env python3
"""Black-box tests of the gRPC front end (server/grpc_frontend.cc): KServe v2's
GRPCInferenceService with Triton's extensions and grpc.health.v1, driven through Python's
grpcio with stubs generated from proto/ at build time (ctest: test_grpc.py PATH/TO/vggserve
STUBS_DIR).

Every RPC; each answer compared with the HTTP/REST answer to the same request (documents,
infer outputs byte for byte, error messages); FP32 inputs (raw and typed contents) equal to
`vggserve classify --tensor`; BYTES photos with the classification parameter; error codes
(INVALID_ARGUMENT, NOT_FOUND, UNAVAILABLE, UNAUTHENTICATED, RESOURCE_EXHAUSTED,
DEADLINE_EXCEEDED, CANCELLED); a cancelled call's images are never computed; the stream;
TLS; SIGTERM answers a call in flight; ModelStatistics on a repository of two models counts
each model and version on its own. Light servers (VGG11, batches of one) from
service_util.py. Uses grpcio, protobuf and numpy; run with /usr/bin/python3."""
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
import unittest

import numpy as np

import service_util as su

BIN = su.binary_from_argv()
STUBS = os.path.abspath(sys.argv.pop(1)) if len(sys.argv) > 1 else os.path.join(
    su.ROOT, "build", "tests", "grpc_stubs")
sys.path.insert(0, STUBS)

import grpc  # noqa: E402  (python3-grpcio)
from google.protobuf import json_format  # noqa: E402
import grpc_service_pb2 as pb  # noqa: E402  (generated from proto/ by the build)
import grpc_service_pb2_grpc as pbg  # noqa: E402
import health_pb2  # noqa: E402
import health_pb2_grpc  # noqa: E402

MODEL = "vgg11"  # LIGHT_FLAGS
TOKEN = "grpc-test-token"
IMAGE_FLOATS = 3 * 224 * 224
C = grpc.StatusCode


def grpc_port(server):
    m = re.search(r"gRPC \(KServe v2[^)]*\) listening on [\d.]+:(\d+)", server.stderr())
    assert m, server.tail()
    return int(m.group(1))


def lengths_prefixed(elements):
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


def infer_request(model, name, datatype, shape, raw=None, outputs=(), rid="", typed=None):
    """A ModelInferRequest: one input with raw_input_contents (raw) or typed contents
    (typed: a callable filling InferTensorContents); outputs: (name, classification or 0)."""
    r = pb.ModelInferRequest(model_name=model, id=rid)
    i = r.inputs.add(name=name, datatype=datatype, shape=list(shape))
    if typed:
        typed(i.contents)
    if raw is not None:
        r.raw_input_contents.append(raw)
    for o_name, k in outputs:
        o = r.outputs.add(name=o_name)
        if k:
            o.parameters["classification"].int64_param = k
    return r


def http_binary_infer(server, model, name, datatype, shape, data, outputs=(), rid=""):
    """The same request over HTTP with binary data in and out: (status, header, [bytes])."""
    header = {"inputs": [{"name": name, "datatype": datatype, "shape": list(shape),
                          "parameters": {"binary_data_size": len(data)}}],
              "parameters": {"binary_data_output": True}}
    if rid:
        header["id"] = rid
    if outputs:
        header["outputs"] = [{"name": n, "parameters": {"classification": k} if k else {}}
                             for n, k in outputs]
    h = json.dumps(header).encode()
    r = server.request("POST", "/v2/models/%s/infer" % model, body=h + data,
                       headers={"Inference-Header-Content-Length": str(len(h)),
                                "Content-Type": "application/octet-stream"})
    if r.status != 200:
        return r.status, json.loads(r.body), []
    n = int(r.headers["Inference-Header-Content-Length"])
    body = json.loads(r.body[:n])
    parts, at = [], n
    for o in body["outputs"]:
        size = o["parameters"]["binary_data_size"]
        parts.append(r.body[at:at + size])
        at += size
    return 200, body, parts


def error_message(http_response):
    return json.loads(http_response.body)["error"]


class GrpcCase(unittest.TestCase):
    """One light server with the gRPC listener per class; self.stub, self.health."""

    server_flags = ()
    token = None
    name = "grpc"

    @classmethod
    def setUpClass(cls):
        cls.tmp = su.tempfile.TemporaryDirectory(prefix="vggserve-%s-" % cls.name)
        cls.server = su.Server(BIN, cls.tmp.name, cls.name, ["--grpc-port", "0",
                                                              *cls.extra_flags(cls.tmp.name)],
                               token=cls.token, cafile=cls.cafile(cls.tmp.name))
        cls.server.start()
        cls.port = grpc_port(cls.server)
        cls.channel = cls.open_channel()
        cls.stub = pbg.GRPCInferenceServiceStub(cls.channel)
        cls.health = health_pb2_grpc.HealthStub(cls.channel)

    @classmethod
    def extra_flags(cls, workdir):
        return list(cls.server_flags)

    @classmethod
    def cafile(cls, workdir):
        return None

    @classmethod
    def open_channel(cls):
        return grpc.insecure_channel("127.0.0.1:%d" % cls.port)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        code = cls.server.stop()
        cls.tmp.cleanup()
        assert code == 0, "exit code %s" % code

    def assertRpcError(self, fn, code, contains=""):
        with self.assertRaises(grpc.RpcError) as cm:
            fn()
        self.assertEqual(cm.exception.code(), code, cm.exception.details())
        self.assertIn(contains, cm.exception.details())
        return cm.exception.details()

    def grpc_log(self, method=None):
        return [l for l in self.server.access_log() if l.get("protocol") == "grpc"
                and (method is None or l["method"] == method)]


class GrpcTest(GrpcCase):
    """Every RPC against one server, each answer against HTTP's."""

    server_flags = ("--max-images-per-request", "4")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Two preprocessed photos and `classify --tensor --all` on them: the same engine, batches
        # of one, all cores, so the same floats.
        rows = []
        for i, name in enumerate(["chelsea.jpg", "coffee.jpg"]):
            out = os.path.join(cls.tmp.name, "pre%d.npy" % i)
            subprocess.run([BIN, "preprocess", os.path.join(su.IMAGES, name), "--out", out],
                           check=True, capture_output=True, env=su.clean_env(), timeout=120)
            rows.append(np.load(out))
        cls.tensor = np.concatenate(rows).astype(np.float32)
        path = os.path.join(cls.tmp.name, "two.npy")
        np.save(path, cls.tensor)
        out = subprocess.run([BIN, "classify", "--model", MODEL, "--batch", "1", "--all",
                              "--tensor", path], check=True, capture_output=True, text=True,
                             env=su.clean_env(), timeout=300).stdout
        cls.cli = [json.loads(l) for l in out.splitlines()]

    # ---- health and metadata

    def test_live_ready_and_health(self):
        self.assertTrue(self.stub.ServerLive(pb.ServerLiveRequest()).live)
        self.assertTrue(self.stub.ServerReady(pb.ServerReadyRequest()).ready)
        for name, version in ((MODEL, ""), (MODEL, "1"), (MODEL + "_image", ""),
                              (MODEL + "_tensor", "1")):
            self.assertTrue(self.stub.ModelReady(pb.ModelReadyRequest(name=name, version=version)).ready)
        serving = health_pb2.HealthCheckResponse.SERVING
        for service in ("", "inference.GRPCInferenceService"):
            self.assertEqual(self.health.Check(health_pb2.HealthCheckRequest(service=service)).status,
                             serving)
        self.assertRpcError(lambda: self.health.Check(health_pb2.HealthCheckRequest(service="x")),
                            C.NOT_FOUND)

    def test_not_found_as_http(self):
        cases = [("resnet50", "", "/v2/models/resnet50"), (MODEL, "2", "/v2/models/%s/versions/2" % MODEL)]
        for name, version, path in cases:
            want = error_message(self.server.request("GET", path))
            for rpc, req in ((self.stub.ModelMetadata, pb.ModelMetadataRequest),
                             (self.stub.ModelConfig, pb.ModelConfigRequest),
                             (self.stub.ModelStatistics, pb.ModelStatisticsRequest)):
                got = self.assertRpcError(lambda: rpc(req(name=name, version=version)), C.NOT_FOUND)
                self.assertEqual(got, want, (rpc, name, version))
            # ModelReady answers "not ready", as Triton's does: tritonclient.grpc's
            # is_model_ready then says False, as tritonclient.http's says for the 404.
            self.assertEqual(self.server.request("GET", path + "/ready").status, 404)
            r, call = self.stub.ModelReady.with_call(pb.ModelReadyRequest(name=name, version=version))
            self.assertEqual(call.code(), C.OK, (name, version))
            self.assertFalse(r.ready, (name, version))
        self.assertRpcError(lambda: self.stub.ModelMetadata(pb.ModelMetadataRequest(name="a/b")),
                            C.NOT_FOUND, "unknown model")

    def test_documents_equal_http(self):
        """Server and model metadata, config, index and statistics: HTTP's JSON read into the
        message equals what gRPC sent (and a few fields checked by name)."""
        meta = self.stub.ServerMetadata(pb.ServerMetadataRequest())
        self.assertEqual(meta, json_format.ParseDict(self.server.request("GET", "/v2").json(),
                                                     pb.ServerMetadataResponse()))
        self.assertEqual(meta.name, "vggserve")
        self.assertIn("classification", meta.extensions)
        for view in (MODEL, MODEL + "_image", MODEL + "_tensor"):
            m = self.stub.ModelMetadata(pb.ModelMetadataRequest(name=view))
            http = self.server.request("GET", "/v2/models/" + view).json()
            self.assertEqual(m, json_format.ParseDict(http, pb.ModelMetadataResponse()), view)
            self.assertEqual(m.name, view)
            self.assertEqual(list(m.outputs[0].shape), [-1, 1000])
            c = self.stub.ModelConfig(pb.ModelConfigRequest(name=view, version="1"))
            http = self.server.request("GET", "/v2/models/%s/config" % view).json()
            self.assertEqual(c, json_format.ParseDict({"config": http}, pb.ModelConfigResponse()))
            self.assertEqual((c.config.name, c.config.max_batch_size), (view, 4))
        index = self.stub.RepositoryIndex(pb.RepositoryIndexRequest())
        http = self.server.request("POST", "/v2/repository/index", body=b"{}").json()
        self.assertEqual(index, json_format.ParseDict({"models": http}, pb.RepositoryIndexResponse()))
        self.assertEqual([m.state for m in index.models], ["READY"] * 4)  # the four views
        self.assertEqual(len(self.stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=True)).models), 4)

    def test_statistics_equal_http_and_count_grpc_requests(self):
        before = self.stub.ModelStatistics(pb.ModelStatisticsRequest(name=MODEL + "_tensor"))
        self.stub.ModelInfer(infer_request(MODEL + "_tensor", "input", "FP32", [1, 3, 224, 224],
                                           raw=self.tensor[:1].tobytes()))
        one = self.stub.ModelStatistics(pb.ModelStatisticsRequest(name=MODEL + "_tensor"))
        http = self.server.request("GET", "/v2/models/%s_tensor/stats" % MODEL).json()
        self.assertEqual(one, json_format.ParseDict(http, pb.ModelStatisticsResponse()))
        self.assertEqual(one.model_stats[0].inference_count,
                         before.model_stats[0].inference_count + 1)
        every = self.stub.ModelStatistics(pb.ModelStatisticsRequest())
        http = self.server.request("GET", "/v2/models/stats").json()
        self.assertEqual(every, json_format.ParseDict(http, pb.ModelStatisticsResponse()))
        self.assertEqual(len(every.model_stats), 4)

    def test_repository_load_unload_refused_as_http(self):
        want = error_message(self.server.request("POST", "/v2/repository/models/%s/load" % MODEL,
                                                 body=b"{}"))
        for rpc, req in ((self.stub.RepositoryModelLoad, pb.RepositoryModelLoadRequest),
                         (self.stub.RepositoryModelUnload, pb.RepositoryModelUnloadRequest)):
            got = self.assertRpcError(lambda: rpc(req(model_name=MODEL)), C.INVALID_ARGUMENT)
            self.assertEqual(got, want)
        # As tritonclient.grpc's unload_model sends it: the mode is what is refused.
        dependents = pb.ModelRepositoryParameter(bool_param=False)
        got = self.assertRpcError(lambda: self.stub.RepositoryModelUnload(
            pb.RepositoryModelUnloadRequest(model_name=MODEL,
                                            parameters={"unload_dependents": dependents})),
            C.INVALID_ARGUMENT)
        self.assertEqual(got, want)

    # ---- inference

    def assertInferEqualsHttp(self, model, name, datatype, shape, data, grpc_req, outputs=(),
                              rid=""):
        """gRPC's answer to grpc_req equals HTTP's to the same binary request; returns it."""
        got = self.stub.ModelInfer(grpc_req)
        status, header, parts = http_binary_infer(self.server, model, name, datatype, shape, data,
                                                  outputs, rid)
        self.assertEqual(status, 200, header)
        self.assertEqual((got.model_name, got.model_version, got.id),
                         (header["model_name"], header["model_version"], header.get("id", "")))
        self.assertEqual(len(got.outputs), len(header["outputs"]))
        for o, h, raw, part in zip(got.outputs, header["outputs"], got.raw_output_contents, parts):
            self.assertEqual((o.name, o.datatype, list(o.shape)), (h["name"], h["datatype"], h["shape"]))
            self.assertEqual(raw, part, o.name)
        return got

    def test_fp32_raw_and_typed_equal_http_and_cli(self):
        data = self.tensor.astype("<f4").tobytes()
        shape = [2, 3, 224, 224]
        raw = self.assertInferEqualsHttp(MODEL, "input", "FP32", shape, data,
                                         infer_request(MODEL, "input", "FP32", shape, raw=data, rid="r1"),
                                         rid="r1")
        self.assertEqual([o.name for o in raw.outputs], ["probabilities", "logits"])
        probs = np.frombuffer(raw.raw_output_contents[0], "<f4").reshape(2, 1000)
        logits = np.frombuffer(raw.raw_output_contents[1], "<f4").reshape(2, 1000)
        np.testing.assert_array_equal(probs, np.array([r["probabilities"] for r in self.cli], np.float32))
        np.testing.assert_array_equal(logits, np.array([r["logits"] for r in self.cli], np.float32))
        typed = self.stub.ModelInfer(infer_request(
            MODEL, "input", "FP32", shape, rid="r1",
            typed=lambda c: c.fp32_contents.extend(self.tensor.reshape(-1).tolist())))
        self.assertEqual(typed, raw)

    def test_bytes_photos_with_classification_equal_http(self):
        photos = [su.image("chelsea.jpg"), su.image("coffee.jpg")]
        data = lengths_prefixed(photos)
        outputs = [("probabilities", 3)]
        for model in (MODEL, MODEL + "_image"):
            got = self.assertInferEqualsHttp(
                model, "image", "BYTES", [2], data,
                infer_request(model, "image", "BYTES", [2], raw=data, outputs=outputs),
                outputs=outputs)
            self.assertEqual((got.outputs[0].datatype, list(got.outputs[0].shape)), ("BYTES", [2, 3]))
            typed = self.stub.ModelInfer(infer_request(
                model, "image", "BYTES", [2], outputs=outputs,
                typed=lambda c: c.bytes_contents.extend(photos)))
            self.assertEqual(typed, got)
        # Each element is "score:index:label", best first.
        first = got.raw_output_contents[0]
        n = struct.unpack("<I", first[:4])[0]
        score, index, label = first[4:4 + n].decode().split(":", 2)
        self.assertGreater(float(score), 0)
        self.assertTrue(index.isdigit() and label)

    def test_invalid_argument_as_http(self):
        """Each bad request gets INVALID_ARGUMENT with HTTP's message for the same request."""
        photo = su.image("chelsea.jpg")
        zeros = np.zeros((1, 3, 224, 224), "<f4").tobytes()
        cases = [  # (model, input name, datatype, shape, data, outputs)
            (MODEL, "input", "FP32", [1, 3, 224, 225], zeros, ()),
            (MODEL, "input", "FP32", [2, 3, 224, 224], zeros, ()),
            (MODEL, "input", "INT32", [1, 3, 224, 224], zeros, ()),
            (MODEL, "pixels", "FP32", [1, 3, 224, 224], zeros, ()),
            (MODEL + "_tensor", "image", "BYTES", [1], lengths_prefixed([photo]), ()),
            (MODEL, "image", "BYTES", [1], lengths_prefixed([b"not an image"]), ()),
            (MODEL, "image", "BYTES", [2], lengths_prefixed([photo]), ()),
            (MODEL, "image", "BYTES", [5], lengths_prefixed([photo] * 5), ()),
            (MODEL, "image", "BYTES", [1], lengths_prefixed([photo]), [("colours", 0)]),
            (MODEL, "image", "BYTES", [1], lengths_prefixed([photo]), [("probabilities", 5000)]),
            (MODEL, "input", "FP32", [1, 3, 224, 224],
             np.full((1, 3, 224, 224), np.nan, "<f4").tobytes(), ()),
        ]
        for model, name, dtype, shape, data, outputs in cases:
            status, body, _ = http_binary_infer(self.server, model, name, dtype, shape, data, outputs)
            self.assertIn(status, (400, 413, 415, 422), body)
            req = infer_request(model, name, dtype, shape, raw=data, outputs=outputs)
            got = self.assertRpcError(lambda: self.stub.ModelInfer(req), C.INVALID_ARGUMENT)
            self.assertEqual(got, body["error"], (name, shape))

    def test_framing_errors(self):
        zeros = np.zeros((1, 3, 224, 224), "<f4").tobytes()
        two = infer_request(MODEL, "input", "FP32", [1, 3, 224, 224], raw=zeros)
        two.raw_input_contents.append(zeros)
        self.assertRpcError(lambda: self.stub.ModelInfer(two), C.INVALID_ARGUMENT,
                            "2 raw_input_contents for 1 inputs")
        none = infer_request(MODEL, "input", "FP32", [1, 3, 224, 224])
        self.assertRpcError(lambda: self.stub.ModelInfer(none), C.INVALID_ARGUMENT, "no values")
        mixed = infer_request(MODEL, "input", "FP32", [1, 3, 224, 224],
                              typed=lambda c: c.int_contents.extend([0] * IMAGE_FLOATS))
        self.assertRpcError(lambda: self.stub.ModelInfer(mixed), C.INVALID_ARGUMENT,
                            "datatype FP32 takes fp32_contents")
        # A message protobuf cannot parse (model_name not UTF-8, a truncated field) is refused by
        # gRPC itself (UNIMPLEMENTED in 1.51), and protobuf's complaint is not logged.
        raw_call = self.channel.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                            request_serializer=lambda b: b,
                                            response_deserializer=pb.ModelInferResponse.FromString)
        for junk in (b"\x0a\x02\xff\xfe", b"\xff\xff\xff"):
            with self.assertRaises(grpc.RpcError) as cm:
                raw_call(junk, timeout=30)
            self.assertIn(cm.exception.code(), (C.INTERNAL, C.UNIMPLEMENTED, C.INVALID_ARGUMENT))
        self.assertNotIn("libprotobuf", self.server.stderr())
        unknown = infer_request("resnet50", "input", "FP32", [1, 3, 224, 224], raw=zeros)
        want = error_message(self.server.request("POST", "/v2/models/resnet50/infer", body=b"{}"))
        self.assertEqual(self.assertRpcError(lambda: self.stub.ModelInfer(unknown), C.NOT_FOUND), want)

    def test_stream_answers_each_request_with_its_id(self):
        zeros = np.zeros((1, 3, 224, 224), "<f4").tobytes()
        reqs = [infer_request(MODEL + "_tensor", "input", "FP32", [1, 3, 224, 224], raw=zeros, rid="a"),
                infer_request(MODEL + "_tensor", "input", "FP32", [1, 3, 224, 225], raw=zeros, rid="b"),
                infer_request(MODEL + "_tensor", "input", "FP32", [1, 3, 224, 224],
                              raw=self.tensor[:1].tobytes(), rid="c")]
        answers = list(self.stub.ModelStreamInfer(iter(reqs), timeout=120))
        self.assertEqual(len(answers), 3)
        ok = {a.infer_response.id: a for a in answers if not a.error_message}
        self.assertEqual(sorted(ok), ["a", "c"])
        errors = [a for a in answers if a.error_message]
        self.assertEqual(len(errors), 1)
        self.assertIn("needs shape [N,3,224,224]", errors[0].error_message)
        # The refused request's id comes with its error, as Triton sends it.
        self.assertEqual(errors[0].infer_response.id, "b")
        unary = self.stub.ModelInfer(reqs[2])
        self.assertEqual(ok["c"].infer_response, unary)

    # ---- deadlines and cancellation (one worker, batches of one)

    def busy_then(self, late):
        """Runs two 4-image requests (the most one may hold); once the worker took its first
        image, late() runs while seven images, about 300 ms of vgg11 on 2 cores, still wait.
        Returns (late's result, the first busy call's answer)."""
        taken = su.metric(self.server.metrics(), "vggserve_queue_wait_seconds_count")
        busy = [self.stub.ModelInfer.future(infer_request(
            MODEL, "input", "FP32", [4, 3, 224, 224],
            raw=np.tile(self.tensor[:1], (4, 1, 1, 1)).tobytes()), timeout=120) for _ in range(2)]
        def started_with_both_queued():
            m = self.server.metrics()
            return (su.metric(m, "vggserve_queue_wait_seconds_count") > taken
                    and su.metric(m, "vggserve_queue_depth") >= 5)
        self.assertTrue(su.wait_for(started_with_both_queued, timeout=60, interval=0.01))
        result = late()
        answers = [b.result() for b in busy]
        return result, answers[0]

    def images_of(self, view):
        return su.metric(self.server.metrics(), "vggserve_model_images_total", 0, model=view)

    def test_deadline_exceeded_never_computed(self):
        view = MODEL + "_tensor"
        before = self.images_of(view)
        req = infer_request(view, "input", "FP32", [1, 3, 224, 224], raw=self.tensor[:1].tobytes())

        def late():
            with self.assertRaises(grpc.RpcError) as cm:
                self.stub.ModelInfer(req, timeout=0.05)
            return cm.exception.code()
        code, busy = self.busy_then(late)
        self.assertEqual(code, C.DEADLINE_EXCEEDED)
        self.assertEqual(len(busy.outputs), 2)
        line = su.wait_for(lambda: [l for l in self.grpc_log("ModelInfer") if l["grpc_status"] == 4],
                           timeout=30)
        self.assertTrue(line, self.server.tail())
        self.assertEqual(line[-1]["inference_ms"], 0)
        self.assertEqual(self.images_of(view), before)

    def test_cancelled_call_drops_its_images(self):
        view = MODEL + "_tensor"
        before = self.images_of(view)
        req = infer_request(view, "input", "FP32", [2, 3, 224, 224], raw=self.tensor.tobytes())

        def queued():
            return su.metric(self.server.metrics(), "vggserve_queue_depth")

        def late():
            depth = queued()
            call = self.stub.ModelInfer.future(req, timeout=120)
            # Cancelled once its two images are seen queued behind the busy ones: the depth
            # rises by 2 while the worker takes at most one image between two samples.
            rising = [depth]

            def arrived():
                rising.append(queued())
                return rising[-1] > rising[-2]
            self.assertTrue(su.wait_for(arrived, timeout=30, interval=0.01), rising[-5:])
            call.cancel()
            return call
        call, _ = self.busy_then(late)
        self.assertTrue(call.cancelled())
        lines = su.wait_for(lambda: [l for l in self.grpc_log("ModelInfer") if l["grpc_status"] == 1],
                            timeout=30)
        self.assertTrue(lines, self.server.tail())
        self.assertEqual((lines[-1]["images"], lines[-1]["inference_ms"]), (2, 0))
        self.assertIn("cancelled", lines[-1]["error"])
        self.assertEqual(self.images_of(view), before)

    def test_access_log_lines_and_metrics(self):
        before = su.metric(self.server.metrics(), "vggserve_requests_total", 0, protocol="grpc",
                           endpoint="v2", code="200")
        self.stub.ServerLive(pb.ServerLiveRequest())
        lines = self.grpc_log("ServerLive")
        self.assertTrue(lines)
        self.assertEqual(lines[-1]["grpc_status"], 0)
        self.assertTrue(lines[-1]["peer"].startswith("ipv4:127.0.0.1:"))
        samples = self.server.metrics()
        self.assertEqual(su.metric(samples, "vggserve_requests_total", protocol="grpc",
                                   endpoint="v2", code="200"), before + 1)
        self.assertGreaterEqual(su.metric(samples, "vggserve_requests_total", protocol="http",
                                          endpoint="metrics", code="200"), 1)
        # An unknown model is counted under its HTTP code and as a rejection.
        self.assertRpcError(lambda: self.stub.ModelMetadata(pb.ModelMetadataRequest(name="x")),
                            C.NOT_FOUND)
        self.assertGreaterEqual(su.metric(self.server.metrics(), "vggserve_requests_total",
                                          protocol="grpc", endpoint="v2", code="404"), 1)


class GrpcSecureTest(GrpcCase):
    """TLS from tls_cert_file/tls_key_file, the bearer token from `authorization`, and
    max_body_bytes as the largest message."""

    name = "grpcsecure"
    token = TOKEN

    @classmethod
    def extra_flags(cls, workdir):
        return ["--auth-token", TOKEN, "--tls-cert-file", os.path.join(workdir, "cert.pem"),
                "--tls-key-file", os.path.join(workdir, "key.pem"), "--max-body-bytes", "1000000"]

    @classmethod
    def cafile(cls, workdir):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        os.path.join(workdir, "key.pem"), "-out", os.path.join(workdir, "cert.pem"),
                        "-days", "2", "-subj", "/CN=localhost", "-addext",
                        "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       check=True, capture_output=True, timeout=60)
        return os.path.join(workdir, "cert.pem")

    @classmethod
    def open_channel(cls):
        with open(os.path.join(cls.tmp.name, "cert.pem"), "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        return grpc.secure_channel("127.0.0.1:%d" % cls.port, creds,
                                   options=[("grpc.ssl_target_name_override", "localhost")])

    def test_plaintext_refused(self):
        with grpc.insecure_channel("127.0.0.1:%d" % self.port) as ch:
            self.assertRpcError(lambda: pbg.GRPCInferenceServiceStub(ch).ServerLive(
                pb.ServerLiveRequest(), timeout=10), C.UNAVAILABLE)

    def test_token_required_for_infer_only(self):
        self.assertTrue(self.stub.ServerLive(pb.ServerLiveRequest()).live)
        data = np.zeros((1, 3, 224, 224), "<f4").tobytes()
        req = infer_request(MODEL, "input", "FP32", [1, 3, 224, 224], raw=data)
        self.assertRpcError(lambda: self.stub.ModelInfer(req), C.UNAUTHENTICATED)
        self.assertRpcError(lambda: self.stub.ModelInfer(req, metadata=[("authorization", "Bearer nope")]),
                            C.UNAUTHENTICATED)
        got = self.stub.ModelInfer(req, metadata=[("authorization", "Bearer " + TOKEN)])
        self.assertEqual(len(got.outputs), 2)
        answers = list(self.stub.ModelStreamInfer(iter([req]), timeout=60))
        self.assertIn("token", answers[0].error_message.lower())

    def test_message_size_from_max_body_bytes(self):
        data = np.zeros((2, 3, 224, 224), "<f4").tobytes()  # 1.2 MB > 1000000
        req = infer_request(MODEL, "input", "FP32", [2, 3, 224, 224], raw=data)
        self.assertRpcError(lambda: self.stub.ModelInfer(
            req, metadata=[("authorization", "Bearer " + TOKEN)]), C.RESOURCE_EXHAUSTED)


class GrpcLifecycleTest(unittest.TestCase):
    """UNAVAILABLE while loading; idle connections closed; SIGTERM answers a call in flight,
    then exits 0."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = su.tempfile.TemporaryDirectory(prefix="vggserve-grpclife-")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_loading_is_unavailable(self):
        s = su.LoadingServer(BIN, self.tmp.name, "grpcloading", ["--grpc-port", "0"]).start()
        with grpc.insecure_channel("127.0.0.1:%d" % grpc_port(s)) as ch:
            stub = pbg.GRPCInferenceServiceStub(ch)
            self.assertTrue(stub.ServerLive(pb.ServerLiveRequest()).live)
            self.assertFalse(stub.ServerReady(pb.ServerReadyRequest()).ready)
            self.assertFalse(stub.ModelReady(pb.ModelReadyRequest(name=MODEL)).ready)
            self.assertEqual(health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest()).status,
                             health_pb2.HealthCheckResponse.NOT_SERVING)
            req = infer_request(MODEL, "input", "FP32", [1, 3, 224, 224],
                                raw=np.zeros((1, 3, 224, 224), "<f4").tobytes())
            with self.assertRaises(grpc.RpcError) as cm:
                stub.ModelInfer(req)
            self.assertEqual((cm.exception.code(), cm.exception.details()),
                             (C.UNAVAILABLE, "service is loading"))
        code, err = s.release()
        self.assertNotEqual(code, 0, err)

    def test_idle_close_and_sigterm_answers_the_call_in_flight(self):
        s = su.Server(BIN, self.tmp.name, "grpcdrain",
                      ["--grpc-port", "0", "--connection-timeout-s", "1"]).start()
        with grpc.insecure_channel("127.0.0.1:%d" % grpc_port(s)) as ch:
            stub = pbg.GRPCInferenceServiceStub(ch)
            # connection_timeout_s closes a connection without calls: the channel goes idle.
            states = []
            ch.subscribe(states.append, try_to_connect=False)
            self.assertTrue(stub.ServerLive(pb.ServerLiveRequest(), timeout=30).live)
            self.assertTrue(su.wait_for(lambda: states[-1:] == [grpc.ChannelConnectivity.IDLE]
                                        and grpc.ChannelConnectivity.READY in states, timeout=15),
                            states)
            taken = su.metric(s.metrics(), "vggserve_queue_wait_seconds_count")
            call = stub.ModelInfer.future(infer_request(
                MODEL, "input", "FP32", [3, 3, 224, 224],
                raw=np.zeros((3, 3, 224, 224), "<f4").tobytes()), timeout=120)
            su.wait_for(lambda: su.metric(s.metrics(), "vggserve_queue_wait_seconds_count") > taken,
                        timeout=60, interval=0.01)
            code = s.stop()
            self.assertEqual(list(call.result().outputs[0].shape), [3, 1000])
        self.assertEqual(code, 0, s.tail())


def repository_small_model():
    """test_repository.py's small VGG11 writer (imported with argv hidden: that module reads
    its binary from argv when imported)."""
    saved, sys.argv[1:] = sys.argv[1:], []
    try:
        import test_repository
    finally:
        sys.argv[1:] = saved
    return test_repository.small_model


def write_repository(workdir):
    """A repository of two small models, alpha (4 classes) and beta (5), version 1 each: its
    folder."""
    small_model = repository_small_model()
    repo = os.path.join(workdir, "models")
    for model, seed, classes in (("alpha", 1, 4), ("beta", 2, 5)):
        small_model(os.path.join(repo, model, "1", "model.safetensors"), seed, classes)
    return repo


class ExplicitRepositoryCase(GrpcCase):
    """write_repository's models in explicit mode, alpha loaded at start."""

    @classmethod
    def extra_flags(cls, workdir):
        return ["--model-repository", write_repository(workdir), "--model-control-mode",
                "explicit", "--load-model", "alpha", "--max-batch-size", "1"]

    def ready(self, model):
        return self.stub.ModelReady(pb.ModelReadyRequest(name=model)).ready


class RepositoryControl(ExplicitRepositoryCase):
    """RepositoryModelLoad/Unload in explicit mode, as HTTP's POST .../load|unload: a load and
    an unload answered when the loader is done, the config parameter, and refusals with HTTP's
    messages."""

    name = "grpcctl"

    def state(self, model):
        rows = self.server.request("POST", "/v2/repository/index", body=b"{}").json()
        return [r["state"] for r in rows if r["name"] == model]

    def test_load_then_unload(self):
        self.assertFalse(self.ready("beta"))
        self.assertEqual(self.stub.RepositoryModelLoad(
            pb.RepositoryModelLoadRequest(model_name="beta")), pb.RepositoryModelLoadResponse())
        # Answered once the version serves: ready at once, and it answers.
        self.assertTrue(self.ready("beta"))
        self.assertEqual(self.state("beta"), ["READY"])
        tensor = np.zeros((1, 3, 32, 32), np.float32).tobytes()
        r = self.stub.ModelInfer(infer_request("beta_tensor", "input", "FP32", [1, 3, 32, 32],
                                               raw=tensor))
        self.assertEqual(list(r.outputs[0].shape), [1, 5])
        # A config override (Triton's "config" parameter), as HTTP's load body carries it.
        over = pb.ModelRepositoryParameter(string_param=json.dumps({"max_batch_size": 2}))
        self.stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(
            model_name="beta", parameters={"config": over}))
        config = self.server.request("GET", "/v2/models/beta/config").json()
        self.assertEqual(config["dynamic_batching"]["preferred_batch_size"], [2])
        # tritonclient.grpc's unload_model always sends unload_dependents (a bool).
        dependents = pb.ModelRepositoryParameter(bool_param=False)
        self.assertEqual(self.stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(
            model_name="beta", parameters={"unload_dependents": dependents})),
            pb.RepositoryModelUnloadResponse())
        self.assertFalse(self.ready("beta"))
        self.assertEqual(self.state("beta"), ["UNAVAILABLE"])
        self.assertTrue(self.ready("alpha"))

    def test_refusals_match_http(self):
        def http_error(model, body=b"{}"):
            return error_message(self.server.request(
                "POST", "/v2/repository/models/%s/load" % model, body=body))
        load = self.stub.RepositoryModelLoad
        got = self.assertRpcError(lambda: load(pb.RepositoryModelLoadRequest(model_name="nosuch")),
                                  C.NOT_FOUND)
        self.assertEqual(got, http_error("nosuch"))
        got = self.assertRpcError(lambda: load(pb.RepositoryModelLoadRequest(model_name="..")),
                                  C.INVALID_ARGUMENT)
        self.assertIn("name", got)
        bad = pb.ModelRepositoryParameter(string_param='{"bogus": 1}')
        got = self.assertRpcError(lambda: load(pb.RepositoryModelLoadRequest(
            model_name="beta", parameters={"config": bad})), C.INVALID_ARGUMENT, "bogus")
        body = json.dumps({"parameters": {"config": '{"bogus": 1}'}}).encode()
        self.assertEqual(got, http_error("beta", body))
        weights = pb.ModelRepositoryParameter(bytes_param=b"\0")
        self.assertRpcError(lambda: load(pb.RepositoryModelLoadRequest(
            model_name="beta", parameters={"file:1/model.safetensors": weights})),
            C.INVALID_ARGUMENT, "not supported")
        self.assertRpcError(lambda: self.stub.RepositoryModelUnload(
            pb.RepositoryModelUnloadRequest(model_name="beta", parameters={"config": bad})),
            C.INVALID_ARGUMENT, "not supported")
        self.assertEqual(self.state("beta"), ["UNAVAILABLE"])
        self.assertTrue(self.ready("alpha"))


class RepositoryAdminOnly(ExplicitRepositoryCase):
    """repository_api_admin_only: the repository API on the HTTP admin port only; the main
    port answers it 404, gRPC refuses it, and the admin port loads and unloads."""

    name = "grpcadm"

    @classmethod
    def extra_flags(cls, workdir):
        return [*super().extra_flags(workdir), "--admin-port", "0",
                "--repository-api-admin-only", "true"]

    def test_only_the_admin_port_serves_the_repository_api(self):
        admin = int(re.search(r"admin listener on [\d.]+:(\d+)", self.server.stderr()).group(1))
        for path in ("/v2/repository/index", "/v2/repository/models/beta/load",
                     "/v2/repository/models/alpha/unload"):
            r = self.server.request("POST", path, body=b"{}")
            self.assertEqual(r.status, 404, (path, r))
            self.assertIn("admin port (repository_api_admin_only)", r.body.decode())
        self.assertRpcError(lambda: self.stub.RepositoryIndex(pb.RepositoryIndexRequest()),
                            C.INVALID_ARGUMENT, "admin port only")
        self.assertRpcError(lambda: self.stub.RepositoryModelLoad(
            pb.RepositoryModelLoadRequest(model_name="beta")), C.INVALID_ARGUMENT, "admin port only")
        self.assertFalse(self.ready("beta"))
        r = su.http_request(admin, "POST", "/v2/repository/models/beta/load", body=b"{}")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(self.ready("beta"))
        rows = su.http_request(admin, "POST", "/v2/repository/index", body=b"{}").json()
        self.assertEqual([x["state"] for x in rows if x["name"] == "beta"], ["READY"])
        # The rest of the admin port is as before: no inference there.
        r = su.http_request(admin, "GET", "/v2/models/beta")
        self.assertEqual(r.status, 404, r)


class RepositoryStatistics(GrpcCase):
    """ModelStatistics on a repository of two models: each model's and version's own counts,
    equal to HTTP's GET .../stats (one implementation: server/v2_facts.c)."""

    name = "grpcrepo"

    @classmethod
    def extra_flags(cls, workdir):
        return ["--model-repository", write_repository(workdir), "--max-batch-size", "1"]

    def infer(self, model, n):
        tensor = np.zeros((1, 3, 32, 32), np.float32).tobytes()
        for _ in range(n):
            self.stub.ModelInfer(infer_request(model, "input", "FP32", [1, 3, 32, 32],
                                               raw=tensor))

    def test_statistics_per_model_and_version(self):
        def counts(name="", version=""):
            r = self.stub.ModelStatistics(pb.ModelStatisticsRequest(name=name, version=version))
            return {(s.name, s.version): s.inference_stats.success.count for s in r.model_stats}
        before = counts()
        self.assertEqual(set(before), {(m + v, "1") for m in ("alpha", "beta")
                                       for v in ("", "_image", "_tensor", "_explain")})
        self.infer("alpha_tensor", 2)
        self.infer("beta_tensor", 1)
        def counted():  # a call is counted once its answer is written: wait for the last
            c = counts()
            return c if c[("beta_tensor", "1")] > before[("beta_tensor", "1")] else None
        after = su.wait_for(counted, 10)
        self.assertIsNotNone(after, "beta_tensor's call never counted")
        gained = {k: after[k] - before[k] for k in after}
        self.assertEqual(gained[("alpha_tensor", "1")], 2)
        self.assertEqual(gained[("beta_tensor", "1")], 1)
        self.assertEqual(gained[("alpha", "1")], 0)
        self.assertEqual(counts("beta_tensor", "1"),
                         {("beta_tensor", "1"): after[("beta_tensor", "1")]})
        for name, version, path in (("alpha_tensor", "", "/v2/models/alpha_tensor/stats"),
                                    ("beta", "1", "/v2/models/beta/versions/1/stats"),
                                    ("", "", "/v2/models/stats")):
            one = self.stub.ModelStatistics(pb.ModelStatisticsRequest(name=name, version=version))
            http = self.server.request("GET", path).json()
            self.assertEqual(one, json_format.ParseDict(http, pb.ModelStatisticsResponse()), path)


if __name__ == "__main__":
    su.main()
