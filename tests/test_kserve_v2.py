#!/usr/bin/env python3
"""Black-box tests of the KServe v2 routes and the demo page route (run by ctest:
test_kserve_v2.py PATH/TO/vggserve).

Every route with JSON and binary bodies (the binary tensor data extension), the classification
extension, every error status, the FP32 path against `vggserve classify --tensor --all` for the
same array, v2 requests sharing batches with /classify, auth, the not-ready answers, and
GET / on and off. Servers, client and assertions are service_util.py's (the real binary on a
free loopback port, generated weights, used once /readyz answers 200).

Uses only the standard library and numpy; run with /usr/bin/python3."""
import base64
import http.client
import json
import os
import re
import struct
import subprocess
import unittest

import numpy as np

import service_util as su

BIN = su.binary_from_argv()
MODEL = "vgg16"
INFER = "/v2/models/%s/infer" % MODEL
N_CLASSES = 1000
IMAGE_FLOATS = 3 * 224 * 224
TOKEN = "v2-test-token"


# ---------------------------------------------------------------- v2 request helpers

def lengths_prefixed(elements):
    """BYTES elements as binary data: each a 4-byte little-endian length, then the bytes."""
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


def binary_body(header, data):
    """(body, headers) of a binary-data request: the JSON header, then the bytes."""
    h = json.dumps(header).encode()
    return h + data, {"Inference-Header-Content-Length": str(len(h)),
                      "Content-Type": "application/octet-stream"}


def image_input_json(images):
    return {"name": "image", "datatype": "BYTES", "shape": [len(images)],
            "data": [base64.b64encode(i).decode() for i in images]}


def image_input_binary(images):
    data = lengths_prefixed(images)
    return {"name": "image", "datatype": "BYTES", "shape": [len(images)],
            "parameters": {"binary_data_size": len(data)}}, data


def tensor_input_json(array, nested=False):
    return {"name": "input", "datatype": "FP32", "shape": list(array.shape),
            "data": array.tolist() if nested else array.reshape(-1).tolist()}


class V2Response:
    """An infer answer split into its JSON header and its outputs as numpy arrays / strings."""

    def __init__(self, r):
        self.r = r
        ctype = r.headers.get("Content-Type", "")
        hlen = r.headers.get("Inference-Header-Content-Length")
        if hlen is not None:
            assert ctype.startswith("application/octet-stream"), ctype
            self.header = json.loads(r.body[:int(hlen)])
            binary = r.body[int(hlen):]
        else:
            assert ctype.startswith("application/json"), ctype
            self.header = json.loads(r.body)
            binary = b""
        self.outputs = {}
        self.binary = {}
        at = 0
        for o in self.header["outputs"]:
            size = o.get("parameters", {}).get("binary_data_size")
            self.binary[o["name"]] = size is not None
            if size is None:
                values = o["data"]
            else:
                raw, at = binary[at:at + size], at + size
                values = self._decode(raw, o["datatype"])
            if o["datatype"] == "FP32":
                values = np.asarray(values, dtype=np.float32).reshape(o["shape"])
            self.outputs[o["name"]] = (o, values)
        assert at == len(binary), "binary data beyond the outputs"

    @staticmethod
    def _decode(raw, datatype):
        if datatype == "FP32":
            return np.frombuffer(raw, dtype="<f4")
        out, at = [], 0
        while at < len(raw):
            n, = struct.unpack_from("<I", raw, at)
            out.append(raw[at + 4:at + 4 + n].decode())
            at += 4 + n
        return out

    def __getitem__(self, name):
        return self.outputs[name][1]


def parse_classification(s):
    score, index, label = s.split(":", 2)
    return float(score), int(index), label


# ---------------------------------------------------------------- test cases

class V2TestCase(su.ServerTestCase):
    binary = BIN

    def infer(self, body, path=INFER, headers=None, port=None):
        """POSTs a JSON request (dict) or a prepared (bytes, headers) binary request."""
        if isinstance(body, tuple):
            data, h = body
        else:
            data, h = json.dumps(body).encode(), {"Content-Type": "application/json"}
        h = dict(h, **(headers or {}))
        return su.http_request(port or self.port, "POST", path, body=data, headers=h)

    def assertV2Error(self, r, status, contains=None):
        """The protocol's error shape, {"error": "message"}, with the service's status codes."""
        self.assertEqual(r.status, status, r)
        self.assertTrue(r.headers.get("Content-Type", "").startswith("application/json"), r.headers)
        body = r.json()
        self.assertEqual(set(body), {"error"}, body)
        self.assertIsInstance(body["error"], str)
        self.assertTrue(body["error"])
        if contains:
            self.assertIn(contains, body["error"])
        if status == 503:
            self.assertGreaterEqual(int(r.headers["Retry-After"]), 1)
        return body["error"]

    def assertInferOk(self, r, n, outputs=("probabilities", "logits")):
        """outputs: those the answer must hold, in order; by default every output of the full
        model, which a request that names none gets (the v2 protocol's default)."""
        self.assertEqual(r.status, 200, r)
        v = V2Response(r)
        self.assertEqual((v.header["model_name"], v.header["model_version"]), (MODEL, "1"))
        self.assertEqual([o["name"] for o in v.header["outputs"]], list(outputs))
        for name in outputs:
            o, values = v.outputs[name]
            if o["datatype"] == "FP32":
                self.assertEqual(o["shape"], [n, N_CLASSES])
                self.assertEqual(values.shape, (n, N_CLASSES))
                self.assertTrue(np.all(np.isfinite(values)))
                if name == "probabilities":
                    np.testing.assert_allclose(values.sum(axis=1), 1.0, atol=1e-4)
                    self.assertTrue(np.all(values >= 0))
        return v


class V2Test(V2TestCase):
    """Every v2 route against one server (max batch 8, 4 images per request)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # `classify --tensor --all` on two preprocessed photos, computed while the server loads.
        # One batch of two, as the server runs a two-image request alone.
        rows = []
        for i, name in enumerate(["chelsea.jpg", "coffee.jpg"]):
            out = os.path.join(cls.tmp.name, "pre%d.npy" % i)
            subprocess.run([BIN, "preprocess", os.path.join(su.IMAGES, name), "--out", out],
                           check=True, capture_output=True, env=su.clean_env(), timeout=120)
            rows.append(np.load(out))
        cls.tensor = np.concatenate(rows).astype(np.float32)
        cls.tensor_path = os.path.join(cls.tmp.name, "two.npy")
        np.save(cls.tensor_path, cls.tensor)
        cls.start_cli("classify", "--all", "--batch", "8", "--tensor", cls.tensor_path)
        cls.start_shared_server("v2", ["--max-batch-size", "8", "--max-queue-delay-us", "20000",
                                       "--max-images-per-request", "4"])

    # ---- 1. health and metadata

    def test_server_metadata(self):
        r = su.http_request(self.port, "GET", "/v2")
        self.assertEqual(r.status, 200, r)
        body = r.json()
        self.assertEqual(body["name"], "vggserve")
        self.assertIsInstance(body["version"], str)
        self.assertEqual(set(body["extensions"]), {"binary_tensor_data", "classification",
                                                   "model_configuration", "model_repository",
                                                   "statistics"})
        self.assertEqual(su.http_request(self.port, "GET", "/v2/").json(), body)

    def test_health_live_and_ready(self):
        r = su.http_request(self.port, "GET", "/v2/health/live")
        self.assertEqual((r.status, r.json()), (200, {"live": True}))
        r = su.http_request(self.port, "GET", "/v2/health/ready")
        self.assertEqual((r.status, r.json()), (200, {"ready": True}))
        for path in ("/v2/models/vgg16/ready", "/v2/models/vgg16/versions/1/ready"):
            r = su.http_request(self.port, "GET", path)
            self.assertEqual((r.status, r.json()), (200, {"name": MODEL, "ready": True}), path)

    def test_not_ready_while_loading(self):
        # A server held in loading (its weights are a FIFO nobody writes yet).
        s = self.start_server("v2loading", server_class=su.LoadingServer)
        r = s.request("GET", "/v2/health/ready")
        self.assertEqual((r.status, r.json()), (503, {"ready": False}))
        self.assertGreaterEqual(int(r.headers["Retry-After"]), 1)
        r = s.request("GET", "/v2/models/%s/ready" % MODEL)
        self.assertEqual((r.status, r.json()), (503, {"name": MODEL, "ready": False}))
        r = s.request("GET", "/v2/health/live")
        self.assertEqual((r.status, r.json()), (200, {"live": True}))
        body = json.dumps({"inputs": [image_input_json([su.image("chelsea.jpg")])]})
        self.assertV2Error(s.request("POST", INFER, body=body), 503, "service is loading")
        code, err = s.release()  # the load fails (exit 1; other under a sanitizer's leak check)
        self.assertNotEqual(code, 0, err)
        self.assertIn("not a regular file", err)

    def test_model_metadata(self):
        for path in ("/v2/models/vgg16", "/v2/models/vgg16/versions/1"):
            r = su.http_request(self.port, "GET", path)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json(), {
                "name": MODEL, "versions": ["1"], "platform": "vggserve_onednn",
                "inputs": [{"name": "image", "datatype": "BYTES", "shape": [-1]},
                           {"name": "input", "datatype": "FP32", "shape": [-1, 3, 224, 224]}],
                "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 1000]},
                            {"name": "logits", "datatype": "FP32", "shape": [-1, 1000]}]})
        # gradcam, which a request naming no outputs would get, is the explain view's only.
        r = su.http_request(self.port, "GET", "/v2/models/vgg16_explain")
        self.assertEqual(r.status, 200, r)
        self.assertEqual([o["name"] for o in r.json()["outputs"]],
                         ["probabilities", "logits", "gradcam"])
        self.assertEqual(r.json()["outputs"][2]["shape"], [-1, 14, 14])

    # ---- 2. 404 and 405 in the protocol's error shape

    def test_404_unknown_model_version_or_route(self):
        cases = [("GET", "/v2/models/resnet50", "unknown model 'resnet50'"),
                 ("GET", "/v2/models/resnet50/ready", "unknown model"),
                 ("POST", "/v2/models/resnet50/infer", "unknown model"),
                 ("GET", "/v2/models/vgg16/versions/2", "unknown version '2'"),
                 ("POST", "/v2/models/vgg16/versions/0/infer", "unknown version '0'"),
                 ("GET", "/v2/models/vgg16/versions/1/explain", "no route"),
                 ("GET", "/v2/repository/models", "no route"),
                 ("GET", "/v2/models", "no route")]
        for method, path, message in cases:
            with self.subTest(path=path):
                body = b"{}" if method == "POST" else None
                r = su.http_request(self.port, method, path, body=body)
                self.assertV2Error(r, 404, message)
        # Outside /v2 the service's own shape stays.
        self.assertError(su.http_request(self.port, "GET", "/v2x"), 404, "not_found")

    def test_405_wrong_method(self):
        r = su.http_request(self.port, "GET", INFER)
        self.assertV2Error(r, 405, "GET is not allowed")
        self.assertEqual(r.headers["Allow"], "POST")
        r = su.http_request(self.port, "POST", "/v2/health/ready", body=b"{}")
        self.assertV2Error(r, 405)
        self.assertEqual(r.headers["Allow"], "GET, HEAD")

    # ---- 3. images: JSON base64 and binary, equal to /classify

    def test_infer_image_json_base64_matches_classify(self):
        photo = su.image("chelsea.jpg")
        v = self.assertInferOk(self.infer({"inputs": [image_input_json([photo])]}), 1)
        self.assertFalse(v.binary["probabilities"])
        top = su.post_image(self.port, photo).json()["predictions"][0]["top_k"]
        got = v["probabilities"][0]
        self.assertEqual(list(np.argsort(-got, kind="stable")[:5]), [t["class_id"] for t in top])
        for t in top:
            self.assertAlmostEqual(float(got[t["class_id"]]), t["probability"], delta=1e-6)

    def test_infer_images_binary_equal_json(self):
        photos = [su.image("chelsea.jpg"), su.image("coffee.jpg"), su.image("chelsea.png")]
        spec, data = image_input_binary(photos)
        vb = self.assertInferOk(self.infer(binary_body({"inputs": [spec]}, data)), 3)
        vj = self.assertInferOk(self.infer({"inputs": [image_input_json(photos)]}), 3)
        np.testing.assert_allclose(vb["probabilities"], vj["probabilities"], rtol=1e-5, atol=1e-7)
        # Upload order is kept: the two chelsea rows agree, coffee differs.
        top = np.argmax(vb["probabilities"], axis=1)
        self.assertEqual(top[0], top[2])

    def test_infer_image_shape_n_by_1(self):
        spec = image_input_json([su.image("rocket.jpg")])
        spec["shape"] = [1, 1]
        self.assertInferOk(self.infer({"inputs": [spec]}), 1)

    def test_versioned_infer_and_request_id(self):
        coffee = image_input_json([su.image("coffee.jpg")])
        r = self.infer({"id": "my-request-7", "inputs": [coffee]},
                       path="/v2/models/vgg16/versions/1/infer",
                       headers={"X-Request-Id": "v2-log-id"})
        v = self.assertInferOk(r, 1)
        self.assertEqual(v.header["id"], "my-request-7")
        self.assertEqual(r.headers["X-Request-Id"], "v2-log-id")
        # Without an id, none is echoed.
        v = self.assertInferOk(self.infer({"inputs": [coffee]}), 1)
        self.assertNotIn("id", v.header)

    # ---- 4. outputs: binary, logits, classification

    def test_binary_outputs(self):
        photo = su.image("astronaut.jpg")
        plain = self.assertInferOk(self.infer({"inputs": [image_input_json([photo])]}), 1)
        # Request-wide binary_data_output.
        r = self.infer({"inputs": [image_input_json([photo])],
                        "parameters": {"binary_data_output": True}})
        self.assertTrue(r.headers["Content-Type"].startswith("application/octet-stream"))
        v = self.assertInferOk(r, 1)
        self.assertTrue(v.binary["probabilities"])
        self.assertEqual(v.header["outputs"][0]["parameters"]["binary_data_size"], N_CLASSES * 4)
        np.testing.assert_array_equal(v["probabilities"], plain["probabilities"])
        # Per output, mixed with a JSON one; the output's own flag wins over the request's.
        r = self.infer({"inputs": [image_input_json([photo])],
                        "parameters": {"binary_data_output": True},
                        "outputs": [{"name": "logits", "parameters": {"binary_data": False}},
                                    {"name": "probabilities"}]})
        v = self.assertInferOk(r, 1, outputs=("logits", "probabilities"))
        self.assertEqual((v.binary["logits"], v.binary["probabilities"]), (False, True))
        np.testing.assert_array_equal(v["probabilities"], plain["probabilities"])

    def test_logits_are_asked_for_and_give_the_probabilities(self):
        r = self.infer({"inputs": [image_input_json([su.image("rocket.jpg")])],
                        "outputs": [{"name": "probabilities"}, {"name": "logits"}]})
        v = self.assertInferOk(r, 1, outputs=("probabilities", "logits"))
        logits = v["logits"][0].astype(np.float64)
        soft = np.exp(logits - logits.max())
        np.testing.assert_allclose(soft / soft.sum(), v["probabilities"][0], rtol=1e-4, atol=1e-7)

    def test_classification_extension_json_and_binary(self):
        photo = su.image("chelsea.jpg")
        full = self.assertInferOk(self.infer({"inputs": [image_input_json([photo, photo])]}), 2)
        for binary in (False, True):
            with self.subTest(binary=binary):
                r = self.infer({"inputs": [image_input_json([photo, photo])],
                                "outputs": [{"name": "probabilities",
                                             "parameters": {"classification": 3,
                                                            "binary_data": binary}}]})
                self.assertEqual(r.status, 200, r)
                v = V2Response(r)
                o, strings = v.outputs["probabilities"]
                self.assertEqual((o["datatype"], o["shape"]), ("BYTES", [2, 3]))
                self.assertEqual(len(strings), 6)
                for row in range(2):
                    parsed = [parse_classification(s) for s in strings[row * 3:row * 3 + 3]]
                    want = np.argsort(-full["probabilities"][row], kind="stable")[:3]
                    self.assertEqual([p[1] for p in parsed], list(want))
                    for score, index, label in parsed:
                        self.assertEqual(np.float32(score), full["probabilities"][row][index])
                        self.assertTrue(label)
        # On the logits too: scores are logits.
        r = self.infer({"inputs": [image_input_json([photo])],
                        "outputs": [{"name": "logits", "parameters": {"classification": 1}}]})
        v = self.assertInferOk(r, 1, outputs=("logits",))
        score, index, _ = parse_classification(v["logits"][0])
        self.assertEqual(index, int(np.argmax(full["probabilities"][0])))

    # ---- 5. FP32 tensors equal `vggserve classify --tensor`

    def assertMatchesCli(self, v, what):
        rows = self.cli_rows()
        self.assertEqual(len(rows), 2)
        want_p = np.array([r["probabilities"] for r in rows], dtype=np.float32)
        want_l = np.array([r["logits"] for r in rows], dtype=np.float32)
        got_p, got_l = v["probabilities"], v["logits"]
        # Same engine, same batch of two, same thread count (all cores): the same floats, bit
        # for bit (the CLI prints 9 significant digits, which round-trip a float32).
        np.testing.assert_array_equal(got_p, want_p, err_msg=what)
        np.testing.assert_array_equal(got_l, want_l, err_msg=what)
        for row, r in zip(got_p, rows):
            self.assertEqual(list(np.argsort(-row, kind="stable")[:5]),
                             [t["class_id"] for t in r["top_k"]], what)

    def test_fp32_json_flat_nested_and_binary_equal_cli_tensor(self):
        outputs = [{"name": "probabilities"}, {"name": "logits"}]
        flat = self.infer({"inputs": [tensor_input_json(self.tensor)], "outputs": outputs})
        nested = self.infer({"inputs": [tensor_input_json(self.tensor, nested=True)],
                             "outputs": outputs})
        data = self.tensor.astype("<f4").tobytes()
        spec = {"name": "input", "datatype": "FP32", "shape": [2, 3, 224, 224],
                "parameters": {"binary_data_size": len(data)}}
        binary = self.infer(binary_body({"inputs": [spec], "outputs": outputs,
                                         "parameters": {"binary_data_output": True}}, data))
        results = {}
        for what, r in (("flat", flat), ("nested", nested), ("binary", binary)):
            v = self.assertInferOk(r, 2, outputs=("probabilities", "logits"))
            self.assertMatchesCli(v, what)
            results[what] = v
        np.testing.assert_array_equal(results["flat"]["probabilities"],
                                      results["binary"]["probabilities"])
        np.testing.assert_array_equal(results["nested"]["logits"], results["binary"]["logits"])

    # ---- 6. errors

    def test_400_malformed_requests(self):
        photo = su.image("chelsea.jpg")
        img = image_input_json([photo])
        zeros = {"name": "input", "datatype": "FP32", "shape": [1, 3, 224, 224],
                 "data": [0.0] * IMAGE_FLOATS}
        cases = [
            (b"", "empty request"),
            (b"{not json", "not JSON"),
            (b"[1, 2]", "JSON object"),
            ({}, "\"inputs\""),
            ({"inputs": []}, "\"inputs\""),
            ({"inputs": [img, img]}, "one input"),
            ({"inputs": [dict(img, name="pixels")]}, "unknown input 'pixels'"),
            ({"inputs": [dict(img, datatype="FP32")]}, "datatype BYTES"),
            ({"inputs": [dict(img, shape=[2])]}, "2 base64 strings"),
            ({"inputs": [dict(img, shape=[0])]}, "shape [N]"),
            ({"inputs": [dict(img, shape="1")]}, "shape [N]"),
            ({"inputs": [dict(img, data=["***"])]}, "not valid base64"),
            ({"inputs": [dict(img, data=[7])]}, "base64"),
            ({"inputs": [dict(img, parameters={"binary_data_size": 4})]}, "not both"),
            ({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1]}]}, "neither"),
            ({"inputs": [dict(zeros, shape=[1, 3, 32, 32])]}, "shape [N,3,224,224]"),
            ({"inputs": [dict(zeros, data=[0.0] * 10)]}, "must hold 150528 numbers"),
            ({"inputs": [dict(zeros, data=["0"] * IMAGE_FLOATS)]}, "must hold"),
            ({"inputs": [dict(zeros, data=[1e30] * IMAGE_FLOATS)]}, "finite and within"),
            ({"inputs": [img], "outputs": [{"name": "softmax"}]}, "unknown output 'softmax'"),
            ({"inputs": [img], "outputs": [{"name": "logits"}, {"name": "logits"}]}, "twice"),
            ({"inputs": [img],
              "outputs": [{"name": "logits", "parameters": {"classification": 0}}]},
             "classification"),
            ({"inputs": [img], "parameters": {"binary_data_output": "yes"}}, "binary_data_output"),
            ({"id": 5, "inputs": [img]}, "\"id\""),
            (b'{"inputs": [], "inputs": []}', "not JSON"),  # duplicate keys
        ]
        for body, message in cases:
            with self.subTest(body=str(body)[:80]):
                if isinstance(body, bytes):
                    r = su.http_request(self.port, "POST", INFER, body=body,
                                        headers={"Content-Type": "application/json"})
                else:
                    r = self.infer(body)
                self.assertV2Error(r, 400, message)

    def test_400_malformed_binary_data(self):
        photo = su.image("chelsea.jpg")
        spec, data = image_input_binary([photo])
        body, headers = binary_body({"inputs": [spec]}, data)
        hlen = int(headers["Inference-Header-Content-Length"])
        cases = [
            # Header length past the body, or not a number.
            (body, dict(headers, **{"Inference-Header-Content-Length": str(len(body) + 1)}),
             "Inference-Header-Content-Length"),
            (body, dict(headers, **{"Inference-Header-Content-Length": "-3"}),
             "Inference-Header-Content-Length"),
            # binary_data_size without the header.
            (body[:hlen], {"Content-Type": "application/json"}, "needs the Inference-Header"),
            # Size disagreeing with the bytes that follow.
            (body[:-1], headers, "binary_data_size is"),
            # An element's length running past the data.
            binary_body({"inputs": [dict(spec, parameters={"binary_data_size": 8})]},
                        struct.pack("<I", 100) + b"abcd") + ("claims 100 bytes",),
            # Fewer elements than the shape.
            binary_body({"inputs": [dict(spec, shape=[2])]}, data) + ("ends before element 1",),
            # More bytes than the shape's elements.
            binary_body({"inputs": [dict(spec, parameters={"binary_data_size": len(data) + 3})]},
                        data + b"xyz") + ("after the 1 elements",),
            # Bytes after the JSON header with no binary input.
            binary_body({"inputs": [image_input_json([photo])]}, b"junk") + ("no input has",),
            # FP32 binary of the wrong size.
            binary_body({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 224, 224],
                                     "parameters": {"binary_data_size": 16}}]}, b"\0" * 16)
            + ("needs 602112",),
            # A NaN in binary FP32 data.
            binary_body({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 224, 224],
                                     "parameters": {"binary_data_size": IMAGE_FLOATS * 4}}]},
                        np.full(IMAGE_FLOATS, np.nan, dtype="<f4").tobytes()) + ("finite",),
        ]
        for body_, headers_, message in cases:
            with self.subTest(message=message):
                r = su.http_request(self.port, "POST", INFER, body=body_, headers=headers_)
                self.assertV2Error(r, 400, message)

    def test_413_too_many_images_and_body_too_large(self):
        photo = su.image("chelsea.jpg")
        self.assertV2Error(self.infer({"inputs": [image_input_json([photo] * 5)]}), 413,
                           "the limit is 4")
        zeros = np.zeros((5, 3, 224, 224), dtype=np.float32)
        data = zeros.tobytes()
        spec = {"name": "input", "datatype": "FP32", "shape": [5, 3, 224, 224],
                "parameters": {"binary_data_size": len(data)}}
        self.assertV2Error(self.infer(binary_body({"inputs": [spec]}, data)), 413, "limit is 4")
        # From Content-Length alone, before the body is read.
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.putrequest("POST", INFER)
            conn.putheader("Content-Length", str(50 * 1024 * 1024))
            conn.endheaders()
            resp = conn.getresponse()
            r = su.Response(resp.status, resp.msg, resp.read())
        finally:
            conn.close()
        self.assertV2Error(r, 413, "over the limit")

    def test_415_and_422_images(self):
        self.assertV2Error(self.infer({"inputs": [image_input_json([b"plain text, no image"])]}),
                           415)
        broken = su.image("chelsea.jpg")[:400]
        self.assertV2Error(self.infer({"inputs": [image_input_json([broken])]}), 422)
        # Which element failed is named when there are several.
        msg = self.assertV2Error(self.infer({"inputs": [image_input_json(
            [su.image("chelsea.jpg"), b"GIF89a not supported"])]}), 415)
        self.assertIn("element 1", msg)

    def test_bad_inputs_are_answered_as_classify_answers_them(self):
        # The shipped bad inputs (tests/data/bad_inputs/manifest.json, with the status POST
        # /classify gives each) sent as v2 "image" elements: the same status, v2-shaped.
        manifest_path = os.path.join(su.TESTS, "data", "bad_inputs", "manifest.json")
        with open(manifest_path) as f:
            manifest = json.load(f)
        cases = [e for e in manifest if not e.get("multipart_filename") and e["status"] != 400]
        self.assertGreater(len(cases), 10)
        for e in cases:
            with self.subTest(file=e["file"]):
                with open(os.path.join(os.path.dirname(manifest_path), e["file"]), "rb") as f:
                    data = f.read()
                spec, body = image_input_binary([data])
                r = self.infer(binary_body({"inputs": [spec]}, body))
                if e["status"] == 200:
                    self.assertInferOk(r, 1)
                else:
                    self.assertV2Error(r, e["status"])

    def test_504_deadline_passed_while_queued(self):
        # A batch keeps the one worker busy while a request with a 1 ms deadline waits.
        big = {"inputs": [image_input_json([su.image("chelsea.jpg")] * 4)]}
        short = {"inputs": [image_input_json([su.image("coffee.jpg")])]}
        r, served, early = su.behind_a_busy_worker(
            self.server, [lambda: self.infer(big)] * 2,
            lambda: self.infer(short, headers={"X-Request-Timeout-Ms": "1"}))
        for b in served:
            self.assertNotIsInstance(b, BaseException, b)
            self.assertInferOk(b, 4)
        for b in early:  # it beat the deadline, so it was tried again
            self.assertInferOk(b, 1)
        self.assertV2Error(r, 504, "deadline")

    # ---- 7. one queue: v2 and /classify share batches; counted in the metrics

    def test_v2_and_classify_share_the_batching_queue(self):
        photo = su.image("camera.jpg")
        before = su.settled_metrics(self.server)
        ids = ["share-%d" % i for i in range(4)]
        calls = [lambda i=i: self.infer({"inputs": [image_input_json([photo])]},
                                        headers={"X-Request-Id": ids[i]}) for i in range(3)]
        calls.append(lambda: su.post_image(self.port, photo, headers={"X-Request-Id": ids[3]}))
        results = su.run_parallel(calls)
        for r in results[:3]:
            self.assertInferOk(r, 1)
        self.assertEqual(results[3].status, 200, results[3])

        def logged():
            lines = {l.get("request_id"): l for l in self.server.access_log()}
            return lines if all(i in lines for i in ids) else None
        lines = su.wait_for(logged)
        self.assertIsNotNone(lines, self.server.stdout()[-2000:])
        batches = [lines[i]["batch_id"] for i in ids]
        self.assertTrue(all(b > 0 for b in batches), batches)
        self.assertLess(len(set(batches)), 4, "four concurrent requests, four batches: %s"
                        % batches)
        self.assertEqual([lines[i]["path"] for i in ids], [INFER] * 3 + ["/classify"])
        def v2_ok(samples):
            return su.metric(samples, "vggserve_requests_total", 0.0, endpoint="v2_infer",
                             code="200")
        after = su.wait_for_metrics(self.server, lambda s: v2_ok(s) >= v2_ok(before) + 3)
        self.assertIsNotNone(after)
        self.assertGreaterEqual(su.metric(after, "vggserve_images_classified_total")
                                - su.metric(before, "vggserve_images_classified_total"), 4)

    # ---- 8. the demo page route

    def test_demo_page(self):
        r = su.http_request(self.port, "GET", "/")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.headers["Content-Type"].startswith("text/html"), r.headers)
        self.assertIn("default-src 'none'", r.headers["Content-Security-Policy"])
        page = r.body.decode()
        self.assertIn("<title>vggserve demo</title>", page)
        self.assertIn('id="file"', page)
        # Nothing from elsewhere: no absolute URLs in src/href attributes or fetches.
        self.assertIsNone(re.search(r'(src|href)\s*=\s*"(https?:)?//', page))
        self.assertNotIn("http://", page.replace("http://127", ""))
        self.assertEqual(su.http_request(self.port, "HEAD", "/").status, 200)
        self.assertError(su.http_request(self.port, "POST", "/", body=b"x"), 405)


class V2AuthTest(V2TestCase):
    """--auth-token: v2 infer needs it; v2 health and metadata do not (auth_health off);
    --demo-page false: GET / is 404."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.start_shared_server("v2auth", ["--auth-token", TOKEN, "--demo-page", "false",
                                           "--max-batch-size", "1"])

    def test_infer_needs_the_token(self):
        body = {"inputs": [image_input_json([su.image("chelsea.jpg")])]}
        r = self.infer(body)
        self.assertV2Error(r, 401)
        self.assertTrue(r.headers["WWW-Authenticate"].startswith("Bearer"))
        self.assertV2Error(self.infer(body, headers={"Authorization": "Bearer wrong"}), 401)
        self.assertInferOk(self.infer(body, headers={"Authorization": "Bearer " + TOKEN}), 1)
        # Unknown models are 404 whether or not the token is right.
        self.assertV2Error(self.infer(body, path="/v2/models/x/infer"), 404)

    def test_health_and_metadata_do_not(self):
        for path in ("/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/vgg16",
                     "/v2/models/vgg16/ready"):
            self.assertEqual(su.http_request(self.port, "GET", path).status, 200, path)

    def test_demo_page_off(self):
        self.assertError(su.http_request(self.port, "GET", "/"), 404, "not_found")


if __name__ == "__main__":
    su.main()
