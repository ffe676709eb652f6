#!/usr/bin/env python3
"""What NVIDIA's and KServe's HTTP clients send, and what they check, against `vggserve serve`.

Our own code, no third-party code: each test sends the requests tritonclient.http sends for
one of its calls (read from its sources: the paths, headers and bodies of get_model_config,
get_model_repository_index, get_inference_statistics, infer with and without outputs, with
request_compression_algorithm gzip/deflate and response_compression_algorithm gzip), and
asserts what the callers assert: image_client.py's parse_model() and postprocess() on the
tensor view, ensemble_image_client.py's parse_model_http() and postprocess() on the image view.
Also: keep-alive on every route, a zip bomb against max_body_bytes, CORS and W3C trace context.

Usage: test_triton_clients.py BUILD/vggserve (Debian python3-numpy)."""
import gzip
import http.client
import json
import os
import re
import socket
import struct
import subprocess
import time
import unittest
import zlib

import numpy as np

import service_util as su

BIN = su.binary_from_argv()
MODEL = "vgg11"  # LIGHT_FLAGS' model: views vgg11, vgg11_image, vgg11_tensor
VIEWS = [MODEL, MODEL + "_image", MODEL + "_tensor", MODEL + "_explain"]
ORIGIN = "https://app.example"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def infer_body(inputs, outputs=None, parameters=None):
    """tritonclient's _get_inference_request: the JSON header, then the binary inputs; returns
    (body, json_size or None)."""
    header, tail = {"inputs": []}, b""
    for name, dtype, shape, data in inputs:
        header["inputs"].append({"name": name, "shape": list(shape), "datatype": dtype,
                                 "parameters": {"binary_data_size": len(data)}})
        tail += data
    if outputs is not None:
        header["outputs"] = outputs
    if parameters:
        header["parameters"] = parameters
    h = json.dumps(header).encode()
    return h + tail, len(h)


def bytes_tensor(items):
    """tritonclient's serialize_byte_tensor: each element a 4-byte little-endian length."""
    return b"".join(struct.pack("<I", len(x)) + x for x in items)


def deserialize_bytes(data):
    out, at = [], 0
    while at < len(data):
        (n,) = struct.unpack_from("<I", data, at)
        out.append(data[at + 4:at + 4 + n].decode())
        at += 4 + n
    return out


class Answer:
    """InferResult: the JSON header and the binary outputs after it, decompressed first when the
    answer says Content-Encoding gzip or deflate."""

    def __init__(self, r):
        body = r.body
        enc = r.headers.get("Content-Encoding")
        if enc == "gzip":
            body = gzip.decompress(body)
        elif enc == "deflate":
            body = zlib.decompress(body)
        hlen = r.headers.get("Inference-Header-Content-Length")
        self.header = json.loads(body[:int(hlen)] if hlen else body)
        self.binary = body[int(hlen):] if hlen else b""
        self.raw = body

    def as_numpy(self, name):
        at = 0
        for o in self.header["outputs"]:
            size = o.get("parameters", {}).get("binary_data_size")
            if o["name"] == name:
                if size is None:
                    data = o["data"]
                    return np.array(data, dtype=object if o["datatype"] == "BYTES" else np.float32
                                    ).reshape(o["shape"])
                chunk = self.binary[at:at + size]
                if o["datatype"] == "BYTES":
                    return np.array(deserialize_bytes(chunk), dtype=object).reshape(o["shape"])
                return np.frombuffer(chunk, dtype="<f4").reshape(o["shape"])
            at += size or 0
        return None


class TritonClients(su.ServerTestCase):
    binary = BIN

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        photos = ["chelsea.jpg", "coffee.jpg"]
        rows = []
        for i, name in enumerate(photos):
            out = os.path.join(cls.tmp.name, "pre%d.npy" % i)
            subprocess.run([BIN, "preprocess", os.path.join(su.IMAGES, name), "--out", out],
                           check=True, capture_output=True, env=su.clean_env(), timeout=120)
            rows.append(np.load(out))
        cls.tensor = np.concatenate(rows).astype(np.float32)
        cls.photos = [su.image(p) for p in photos]
        cls.start_shared_server("triton", [*su.LIGHT_FLAGS, "--max-batch-size", "2",
                                           "--max-images-per-request", "4",
                                           "--cors-allowed-origins", ORIGIN + ", https://b.example"],
                                env=su.SMALL_ASAN_QUARANTINE)

    def get(self, path, headers=None):
        return su.http_request(self.port, "GET", path, headers=headers)

    def post(self, path, body, headers=None):
        return su.http_request(self.port, "POST", path, body=body, headers=headers or {})

    def infer(self, model, body, json_size, headers=None):
        h = {"Inference-Header-Content-Length": str(json_size)}
        h.update(headers or {})
        r = self.post("/v2/models/%s/infer" % model, body, h)
        self.assertEqual(r.status, 200, r)
        return Answer(r)

    # ---- the repository, configuration and metadata calls

    def test_repository_index_lists_every_view_ready(self):
        r = self.post("/v2/repository/index", b"")  # get_model_repository_index: an empty body
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), [{"name": v, "version": "1", "state": "READY"} for v in VIEWS])
        for action in ("load", "unload"):
            r = self.post("/v2/repository/models/%s/%s" % (MODEL, action), b"{}")
            self.assertEqual(r.status, 400, r)
            self.assertIn("fixed at start-up", r.json()["error"])

    def test_image_client_parse_model_on_the_tensor_view(self):
        """image_client.py's parse_model(), check by check, on metadata and config."""
        for suffix in ("", "/versions/1"):
            meta = self.get("/v2/models/%s_tensor%s" % (MODEL, suffix)).json()
            config = self.get("/v2/models/%s_tensor%s/config" % (MODEL, suffix)).json()
            self.assertEqual(len(meta["inputs"]), 1)
            self.assertEqual(len(meta["outputs"]), 1)
            self.assertEqual(len(config["input"]), 1)
            self.assertEqual(meta["outputs"][0]["datatype"], "FP32")
            batch_dim = config["max_batch_size"] > 0
            self.assertEqual(config["max_batch_size"], 4)  # max_images_per_request
            non_one = [d for d in meta["outputs"][0]["shape"][1 if batch_dim else 0:] if d > 1]
            self.assertEqual(len(non_one), 1)  # "expecting model output to be a vector"
            self.assertEqual(len(meta["inputs"][0]["shape"]), 3 + batch_dim)
            self.assertEqual(config["input"][0]["format"], "FORMAT_NCHW")
            self.assertEqual(meta["inputs"][0]["shape"][1:], [3, 224, 224])
            self.assertEqual(config["input"][0]["dims"], [3, 224, 224])
            self.assertEqual(config["input"][0]["data_type"], "TYPE_FP32")
            self.assertEqual(config["dynamic_batching"],
                             {"preferred_batch_size": [2], "max_queue_delay_microseconds": 10000})

    def test_image_client_batch_of_two_with_classification(self):
        """image_client.py -m M_tensor -b 2 -c 3: FP32 [2,3,224,224] binary, output with
        class_count 3 (binary), then postprocess() splits each "score:index:label"."""
        name = MODEL + "_tensor"
        body, size = infer_body([("input", "FP32", self.tensor.shape, self.tensor.tobytes())],
                                outputs=[{"name": "probabilities",
                                          "parameters": {"classification": 3, "binary_data": True}}])
        a = self.infer(name, body, size)
        self.assertEqual(a.header["model_name"], name)
        top = a.as_numpy("probabilities")
        self.assertEqual(top.shape, (2, 3))  # len(output_array) == batch_size
        # The same tensors through the full model: the classes agree with its probabilities.
        body, size = infer_body([("input", "FP32", self.tensor.shape, self.tensor.tobytes())],
                                parameters={"binary_data_output": True})
        probs = self.infer(MODEL, body, size).as_numpy("probabilities")
        for n in range(2):
            parts = [t.split(":") for t in top[n]]
            self.assertTrue(all(len(p) == 3 for p in parts), parts)
            self.assertEqual([int(p[1]) for p in parts], list(np.argsort(-probs[n])[:3]))
            np.testing.assert_allclose([float(p[0]) for p in parts], np.sort(probs[n])[::-1][:3],
                                       rtol=1e-5)

    def test_ensemble_client_on_the_image_view(self):
        """ensemble_image_client.py -m M_image -c 1 on two files: BYTES [2, 1] binary, every
        metadata output asked for with class_count 1."""
        name = MODEL + "_image"
        meta = self.get("/v2/models/" + name).json()
        config = self.get("/v2/models/%s/config" % name).json()
        self.assertEqual(len(meta["inputs"]), 1)
        self.assertEqual(len(config["input"]), 1)
        self.assertEqual(config["input"][0]["data_type"], "TYPE_STRING")
        batch = min(len(self.photos), config["max_batch_size"])
        outputs = [o["name"] for o in meta["outputs"]]
        self.assertEqual(outputs, ["probabilities"])
        body, size = infer_body([(meta["inputs"][0]["name"], "BYTES", [batch, 1],
                                  bytes_tensor(self.photos[:batch]))],
                                outputs=[{"name": o, "parameters": {"classification": 1,
                                                                    "binary_data": True}}
                                         for o in outputs])
        a = self.infer(name, body, size)
        top = a.as_numpy("probabilities")
        self.assertEqual(len(top), batch)
        for row in top:
            score, idx, label = row[0].split(":")
            self.assertTrue(0 <= int(idx) < 1000 and 0 < float(score) <= 1 and label)

    def test_no_outputs_named_returns_every_output(self):
        body, size = infer_body([("image", "BYTES", [1], bytes_tensor(self.photos[:1]))],
                                parameters={"binary_data_output": True})
        a = self.infer(MODEL, body, size)
        self.assertEqual([o["name"] for o in a.header["outputs"]], ["probabilities", "logits"])
        self.assertTrue(all("binary_data_size" in o["parameters"] for o in a.header["outputs"]))
        logits, probs = a.as_numpy("logits"), a.as_numpy("probabilities")
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        np.testing.assert_allclose(e / e.sum(axis=1, keepdims=True), probs, atol=1e-5)
        a = self.infer(MODEL + "_image", body, size)  # a view has only its one output
        self.assertEqual([o["name"] for o in a.header["outputs"]], ["probabilities"])

    # ---- compression

    def test_gzip_and_deflate_request_bodies(self):
        body, size = infer_body([("input", "FP32", self.tensor.shape, self.tensor.tobytes())],
                                parameters={"binary_data_output": True})
        plain = self.infer(MODEL, body, size).as_numpy("probabilities")
        raw = zlib.compressobj(6, zlib.DEFLATED, -15)
        for enc, data in (("gzip", gzip.compress(body)), ("deflate", zlib.compress(body)),
                          ("deflate", raw.compress(body) + raw.flush())):  # raw: some clients
            with self.subTest(encoding=enc, zlib_header=data[:1] == b"\x78"):
                got = self.infer(MODEL, data, size, {"Content-Encoding": enc})
                np.testing.assert_array_equal(got.as_numpy("probabilities"), plain)
        r = su.post_image(self.port, gzip.compress(self.photos[0]),
                          headers={"Content-Encoding": "gzip"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["predictions"][0]["top_k"][0]["class_id"],
                         int(np.argmax(plain[0])))

    def test_bad_encodings(self):
        r = su.post_image(self.port, self.photos[0], headers={"Content-Encoding": "br"})
        self.assertEqual(r.status, 415, r)
        self.assertIn("'br'", r.json()["error"]["message"])
        r = su.post_image(self.port, self.photos[0], headers={"Content-Encoding": "gzip, gzip"})
        self.assertEqual(r.status, 415, r)
        z = gzip.compress(self.photos[0])
        for what, data in (("truncated", z[:len(z) // 2]), ("corrupt", b"\x1f\x8b" + b"\0" * 40),
                           ("trailing bytes", z + b"more")):
            with self.subTest(what):
                r = su.post_image(self.port, data, headers={"Content-Encoding": "gzip"})
                self.assertEqual(r.status, 400, r)
                self.assertIn("not valid gzip", r.json()["error"]["message"])

    def test_zip_bomb_is_413_within_max_body_bytes(self):
        limit = 20 * 1024 * 1024  # the default max_body_bytes
        bomb = gzip.compress(b"\0" * (400 * 1024 * 1024), 9)  # 400 MiB in ~400 KB
        rss = lambda: su.metric(self.server.metrics(),
                                "process_resident_memory_bytes")
        before = rss()
        for _ in range(3):
            r = su.post_image(self.port, bomb, headers={"Content-Encoding": "gzip"})
            self.assertEqual(r.status, 413, r)
            self.assertIn("over the limit", r.json()["error"]["message"])
        grew = rss() - before
        self.assertLess(grew, limit + 16 * 1024 * 1024, "RSS grew by %d bytes" % grew)

    def test_gzip_answers_when_accepted(self):
        body, size = infer_body([("input", "FP32", self.tensor.shape, self.tensor.tobytes())])
        h = {"Inference-Header-Content-Length": str(size)}
        plain = self.post("/v2/models/%s/infer" % MODEL, body, h)
        for enc, dec in (("gzip", gzip.decompress), ("deflate", zlib.decompress)):
            r = self.post("/v2/models/%s/infer" % MODEL, body, dict(h, **{"Accept-Encoding": enc}))
            self.assertEqual((r.status, r.headers.get("Content-Encoding")), (200, enc), r)
            self.assertIn("Accept-Encoding", r.headers.get("Vary", ""))
            self.assertLess(len(r.body), len(plain.body))
            self.assertEqual(json.loads(dec(r.body))["outputs"], json.loads(plain.body)["outputs"])
        small = self.get("/healthz", {"Accept-Encoding": "gzip"})  # not worth compressing
        self.assertIsNone(small.headers.get("Content-Encoding"))
        refused = self.post("/v2/models/%s/infer" % MODEL, body,
                            dict(h, **{"Accept-Encoding": "gzip;q=0, identity"}))
        self.assertIsNone(refused.headers.get("Content-Encoding"))

    # ---- statistics

    def test_stats_match_metrics(self):
        name = MODEL + "_tensor"
        before = self.get("/v2/models/%s/stats" % name).json()["model_stats"][0]
        body, size = infer_body([("input", "FP32", self.tensor.shape, self.tensor.tobytes())])
        for _ in range(2):
            self.infer(name, body, size)
        bad = self.post("/v2/models/%s/infer" % name, b"{}")
        self.assertEqual(bad.status, 400)
        # A request is counted when libmicrohttpd reports it complete, just after its answer
        # went out: wait until the three are in.
        fails = before["inference_stats"]["fail"]["count"]
        def counted():
            r = self.get("/v2/models/%s/versions/1/stats" % name)
            st = r.json()["model_stats"][0]["inference_stats"]
            return r if st["fail"]["count"] - fails >= 1 and st["success"]["count"] - \
                before["inference_stats"]["success"]["count"] >= 2 else None
        r = su.wait_for(counted, timeout=10)
        self.assertIsNotNone(r, "the stats never counted the three requests")
        self.assertEqual(r.status, 200, r)
        stats = r.json()["model_stats"]
        self.assertEqual(len(stats), 1)
        s = stats[0]
        self.assertEqual((s["name"], s["version"]), (name, "1"))
        self.assertEqual(s["inference_count"] - before["inference_count"], 4)
        inf = s["inference_stats"]
        self.assertEqual(inf["success"]["count"] - before["inference_stats"]["success"]["count"], 2)
        self.assertEqual(inf["fail"]["count"] - before["inference_stats"]["fail"]["count"], 1)
        for phase in ("queue", "compute_input", "compute_infer", "compute_output"):
            self.assertEqual(inf[phase]["count"], inf["success"]["count"], phase)
        self.assertGreater(inf["compute_infer"]["ns"], 0)
        self.assertLessEqual(inf["compute_infer"]["ns"], inf["success"]["ns"])
        self.assertGreater(s["last_inference"], (time.time() - 600) * 1000)
        # The same counters as /metrics: the engine's batches, by size.
        m = self.server.metrics()
        after = self.get("/v2/models/stats").json()["model_stats"]
        self.assertEqual([x["name"] for x in after], VIEWS)
        self.assertEqual(after[2]["execution_count"], su.metric(m, "vggserve_batches_total"))
        for b in after[2]["batch_stats"]:
            self.assertEqual(b["compute_infer"]["count"],
                             su.metric(m, "vggserve_batches_by_size_total", batch_size=str(b["batch_size"])))
        self.assertEqual(su.metric(m, "vggserve_model_images_total", model=name),
                         after[2]["inference_count"])

    # ---- connections, CORS, tracing

    def test_keep_alive_on_every_route(self):
        """tritonclient's geventhttpclient keeps one connection for all its calls."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        body, size = infer_body([("image", "BYTES", [1], bytes_tensor(self.photos[:1]))])
        calls = [("GET", "/v2/health/live", None, {}), ("GET", "/v2/models/%s" % MODEL, None, {}),
                 ("GET", "/v2/models/%s/config" % MODEL, None, {}),
                 ("POST", "/v2/repository/index", b"", {}),
                 ("GET", "/v2/models/stats", None, {}), ("GET", "/healthz", None, {}),
                 ("GET", "/v2/models/nope", None, {}),  # a 404 keeps it too
                 ("POST", "/v2/models/%s/infer" % MODEL, body,
                  {"Inference-Header-Content-Length": str(size)}),
                 ("GET", "/metrics", None, {})]
        sock = None
        for method, path, data, headers in calls:
            conn.request(method, path, body=data, headers=headers)
            r = conn.getresponse()
            r.read()
            self.assertNotEqual((r.getheader("Connection") or "").lower(), "close", path)
            if sock is None:
                sock = conn.sock
            self.assertIs(conn.sock, sock, "reconnected before " + path)
        conn.close()
        # Two GETs written at once (pipelined): both answered, in order.
        s = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /v2 HTTP/1.1\r\nHost: x\r\n"
                  b"Connection: close\r\n\r\n")
        got = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        s.close()
        self.assertEqual(got.count(b"HTTP/1.1 200"), 2, got)
        self.assertLess(got.index(b'"status":"ok"'), got.index(b'"name":"vggserve"'))

    def test_cors(self):
        pre = su.http_request(self.port, "OPTIONS", "/v2/models/%s/infer" % MODEL, headers={
            "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, inference-header-content-length"})
        self.assertEqual(pre.status, 204, pre)
        self.assertEqual(pre.headers["Access-Control-Allow-Origin"], ORIGIN)
        self.assertIn("POST", pre.headers["Access-Control-Allow-Methods"])
        self.assertIn("Inference-Header-Content-Length", pre.headers["Access-Control-Allow-Headers"])
        r = su.post_image(self.port, self.photos[0], headers={"Origin": "https://b.example"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers["Access-Control-Allow-Origin"], "https://b.example")
        self.assertIn("X-Request-Id", r.headers["Access-Control-Expose-Headers"])
        denied = su.http_request(self.port, "OPTIONS", "/classify", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        self.assertEqual(denied.status, 403, denied)
        self.assertIsNone(denied.headers.get("Access-Control-Allow-Origin"))
        plain = su.post_image(self.port, self.photos[0], headers={"Origin": "https://evil.example"})
        self.assertIsNone(plain.headers.get("Access-Control-Allow-Origin"))
        # Not a route pages call: no CORS there.
        self.assertEqual(su.http_request(self.port, "OPTIONS", "/metrics",
                                         headers={"Origin": ORIGIN}).status, 405)

    def test_traceparent(self):
        given = "00-%s-00f067aa0ba902b7-01" % TRACE
        r = self.get("/v2/health/ready", {"traceparent": given, "X-Request-Id": "trace-test-1"})
        m = re.fullmatch(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})", r.headers["traceparent"])
        self.assertTrue(m, r.headers["traceparent"])
        self.assertEqual((m.group(1), m.group(3)), (TRACE, "01"))
        self.assertNotEqual(m.group(2), "00f067aa0ba902b7")  # our own span
        self.assertEqual(r.headers["X-Request-Id"], "trace-test-1")  # untouched
        fresh = set()
        for bad in (None, "00-%s-00f067aa0ba902b7" % TRACE, "00-" + "0" * 32 + "-00f067aa0ba902b7-01",
                    "00-%s-00f067aa0ba902b7-01" % TRACE.upper()):
            h = {"traceparent": bad} if bad else {}
            got = self.get("/healthz", h).headers["traceparent"]
            self.assertRegex(got, r"^00-[0-9a-f]{32}-[0-9a-f]{16}-00$")
            self.assertNotIn(TRACE, got.lower())
            fresh.add(got[3:35])
        self.assertEqual(len(fresh), 4)  # a new trace each time
        logged = su.wait_for(lambda: [l for l in self.server.access_log()
                                      if l.get("request_id") == "trace-test-1"])
        self.assertEqual(logged[0]["trace_id"], TRACE)


if __name__ == "__main__":
    su.main(verbosity=1)
