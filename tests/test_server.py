#!/usr/bin/env python3
"""Black-box integration tests of `vggserve serve` (run by ctest: test_server.py PATH/TO/vggserve).

Every server is the real binary, started as a subprocess on a free loopback port (`--port 0`; the
port is read from the "listening on" event on stderr) with generated weights (seed 1), and is
used only after GET /readyz answers 200. A server's stdout (the access log) and stderr (the event
log) go to files in a temporary directory; their tails are printed when a test fails. The
servers, the HTTP client and the assertions on answers are service_util.py's.

Uses only the standard library and numpy (Debian python3-numpy); run with /usr/bin/python3.
`promtool` (Debian package prometheus) is needed by one test, which is skipped without it."""
import http.client
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import threading
import time
import unittest
import zlib

import numpy as np

import service_util as su
from service_util import (BOUNDARY, IMAGES, REQUEST_TIMEOUT_S, ROOT, Response, clean_env,
                          free_port, http_request, image, metric, multipart, parse_metrics,
                          post_image, run_parallel, settled_metrics, wait_for, wait_for_metrics)

BIN = su.binary_from_argv()
SHIPPED_CONFIG = os.path.join(ROOT, "config", "vggserve.json")


def make_png(width, height, seed=0):
    """A random RGB PNG, written with zlib (the service decodes PNG as well as JPEG)."""
    px = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    raw = b"".join(b"\x00" + px[y].tobytes() for y in range(height))

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


class ServerTestCase(su.ServerTestCase):
    binary = BIN


# ================================================================ the shared server

class ServiceTest(ServerTestCase):
    """Endpoints, errors, batching and logs against one server (max batch 4)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # The CLI's answers for the multipart test are computed while the server loads.
        # --batch 1: each image through its own batch-1 pass, as `classify --top-k 5 IMAGE` does.
        cls.cli_images = ["chelsea.jpg", "coffee.jpg", "camera.jpg"]
        cls.start_cli("classify", "--top-k", "5", "--batch", "1",
                      *[os.path.join(IMAGES, f) for f in cls.cli_images])
        cls.start_shared_server("main", ["--max-batch-size", "4", "--max-queue-delay-us", "20000",
                                         "--max-images-per-request", "3"])

    def classify(self, name="chelsea.jpg", query="", headers=None):
        return post_image(self.port, image(name), path="/classify" + query, headers=headers)

    # ---- 1. every endpoint

    def test_healthz(self):
        r = http_request(self.port, "GET", "/healthz")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json(), {"status": "ok"})
        self.assertTrue(r.headers["Content-Type"].startswith("application/json"))

    def test_readyz_ready(self):
        r = http_request(self.port, "GET", "/readyz")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json(), {"status": "ready"})

    def test_not_ready_while_loading(self):
        # A server held in loading (its weights are a FIFO nobody writes yet): /readyz is 503
        # with the state, /healthz 200, /classify 503 not_ready, the state gauge says loading.
        s = self.start_server("loading", ["--model", "vgg11"], server_class=su.LoadingServer)
        r = s.request("GET", "/readyz")
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.json(), {"error": {"code": 503, "type": "not_ready",
                                              "message": "service is loading"},
                                    "status": "loading"})
        self.assertGreaterEqual(int(r.headers["Retry-After"]), 1)
        self.assertEqual(s.request("GET", "/healthz").status, 200)
        self.assertError(s.classify(image("chelsea.jpg")), 503, "not_ready")
        self.assertEqual(metric(s.metrics(), "vggserve_state", state="loading"), 1)
        code, err = s.release()  # the load fails (exit 1; other under a sanitizer's leak check)
        self.assertNotEqual(code, 0, err)
        self.assertIn("not a regular file", err)

    def test_metrics_endpoint_is_prometheus_text(self):
        r = http_request(self.port, "GET", "/metrics")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.headers["Content-Type"].startswith("text/plain"), r.headers)
        self.assertIn("version=0.0.4", r.headers["Content-Type"])
        text = r.body.decode()
        self.assertIn("# TYPE vggserve_requests_total counter", text)
        self.assertIn("# HELP vggserve_requests_total ", text)
        parse_metrics(text)  # every non-comment line is a sample

    def test_classify_jpeg(self):
        r = self.classify("chelsea.jpg")
        body = self.assertClassification(r)
        self.assertEqual(r.headers["X-Request-Id"], body["request_id"])
        # The answer is deterministic: the same image gives the same classes again.
        again = self.assertClassification(self.classify("chelsea.jpg"))
        self.assertNotEqual(again["request_id"], body["request_id"])
        self.assertSamePrediction(again["predictions"][0]["top_k"], body["predictions"][0]["top_k"],
                                  abs_=1e-6)

    def test_classify_top_k_query(self):
        self.assertClassification(self.classify("coffee.jpg", "?top_k=3"), top_k=3)
        body = self.assertClassification(self.classify("coffee.jpg", "?top_k=1000"), top_k=1000)
        self.assertAlmostEqual(sum(t["probability"] for t in body["predictions"][0]["top_k"]), 1.0,
                               places=3)

    def test_classify_png_and_octet_stream(self):
        # The format is sniffed from the bytes, not trusted from Content-Type.
        png = post_image(self.port, image("chelsea.png"), content_type="image/png")
        self.assertClassification(png)
        lying = post_image(self.port, image("chelsea.png"), content_type="image/jpeg")
        octet = post_image(self.port, image("chelsea.png"), content_type="application/octet-stream")
        for r in (lying, octet):
            self.assertSamePrediction(self.assertClassification(r)["predictions"][0]["top_k"],
                                      png.json()["predictions"][0]["top_k"], abs_=1e-6)

    def test_client_request_id_is_kept(self):
        r = self.classify("chelsea.jpg", headers={"X-Request-Id": "client-id_42"})
        self.assertEqual(self.assertClassification(r)["request_id"], "client-id_42")
        self.assertEqual(r.headers["X-Request-Id"], "client-id_42")

    # ---- 2. every error code

    def test_400_bad_top_k(self):
        for q in ("?top_k=0", "?top_k=abc", "?top_k=-3", "?top_k=1001", "?top_k=5x", "?top_k="):
            with self.subTest(query=q):
                err = self.assertError(self.classify("chelsea.jpg", q), 400, "bad_request")
                self.assertIn("top_k", err["message"])

    def test_400_empty_body(self):
        r = http_request(self.port, "POST", "/classify", body=b"",
                         headers={"Content-Type": "image/jpeg"})
        self.assertError(r, 400, "bad_request")
        r = http_request(self.port, "POST", "/classify")  # no body, no Content-Type
        self.assertError(r, 400, "bad_request")

    def test_400_malformed_multipart(self):
        jpg = image("chelsea.jpg")
        body, ctype = multipart([("chelsea.jpg", jpg)], close=False)
        with self.subTest("missing closing boundary"):
            self.assertError(post_image(self.port, body, content_type=ctype), 400, "bad_request")
        with self.subTest("body cut inside the last part"):
            full, ctype = multipart([("chelsea.jpg", jpg), ("coffee.jpg", image("coffee.jpg"))])
            self.assertError(post_image(self.port, full[:len(full) - 40], content_type=ctype),
                             400, "bad_request")
        with self.subTest("no boundary parameter"):
            full, _ = multipart([("chelsea.jpg", jpg)])
            self.assertError(post_image(self.port, full, content_type="multipart/form-data"),
                             400, "bad_request")
        with self.subTest("boundary not in the body"):
            self.assertError(post_image(self.port, jpg, content_type=ctype), 400, "bad_request")
        with self.subTest("no parts"):
            self.assertError(post_image(self.port, ("--%s--\r\n" % BOUNDARY).encode(),
                                        content_type=ctype), 400, "bad_request")

    def test_404_unknown_path(self):
        r = http_request(self.port, "GET", "/nope")
        err = self.assertError(r, 404, "not_found")
        self.assertIn("/nope", err["message"])
        self.assertError(post_image(self.port, image("chelsea.jpg"), path="/classify/extra"), 404)

    def test_405_wrong_method(self):
        r = http_request(self.port, "GET", "/classify")
        self.assertError(r, 405, "method_not_allowed")
        self.assertEqual(r.headers.get("Allow"), "POST")
        r = http_request(self.port, "POST", "/healthz", body=b"x")
        self.assertError(r, 405, "method_not_allowed")
        self.assertIn("GET", r.headers.get("Allow", ""))
        r = http_request(self.port, "DELETE", "/metrics")
        self.assertError(r, 405, "method_not_allowed")
        self.assertIn("GET", r.headers.get("Allow", ""))

    def test_413_more_images_than_allowed(self):
        # This server allows 3 images per request.
        body, ctype = multipart([(n, image(n)) for n in ("chelsea.jpg", "coffee.jpg", "camera.jpg",
                                                         "astronaut.jpg")])
        err = self.assertError(post_image(self.port, body, content_type=ctype), 413,
                               "too_many_images")
        self.assertIn("3", err["message"])

    def test_415_not_an_image(self):
        r = post_image(self.port, b"hello, this is plain text and no image at all\n",
                       content_type="text/plain")
        self.assertError(r, 415, "unsupported_media_type")
        # Sniffed, not trusted: text labelled image/jpeg is still not an image.
        r = post_image(self.port, b"GIF89a" + bytes(200), content_type="image/jpeg")
        self.assertError(r, 415, "unsupported_media_type")

    def test_422_undecodable_image(self):
        r = post_image(self.port, image("chelsea.jpg")[:2000])
        self.assertError(r, 422, "undecodable_image")
        # In a multipart request the message says which image is bad.
        body, ctype = multipart([("chelsea.jpg", image("chelsea.jpg")),
                                 ("broken.jpg", image("coffee.jpg")[:3000])])
        err = self.assertError(post_image(self.port, body, content_type=ctype), 422,
                               "undecodable_image")
        self.assertIn("image 2", err["message"])

    def test_504_deadline_passed_while_queued(self):
        before = settled_metrics(self.server)
        # Keep the worker busy with four requests, then send one with a 1 ms deadline.
        busy = [lambda n=n: self.classify(n) for n in ("coffee.jpg", "camera.jpg",
                                                        "astronaut.jpg", "rocket.jpg")]
        r, served, early = su.behind_a_busy_worker(
            self.server, busy, lambda: self.classify("chelsea.jpg",
                                                     headers={"X-Request-Timeout-Ms": "1"}))
        for b in served + early:  # early: it beat the deadline, so it was tried again
            self.assertNotIsInstance(b, BaseException, b)
            self.assertClassification(b)
        ok_images = len(served) + len(early)
        err = self.assertError(r, 504, "deadline_exceeded")
        self.assertIn("deadline", err["message"])
        # Work whose deadline has passed is never computed.
        after = self.server.metrics()
        self.assertEqual(metric(after, "vggserve_images_classified_total")
                         - metric(before, "vggserve_images_classified_total"), ok_images)
        self.assertGreaterEqual(metric(after, "vggserve_rejected_total", reason="deadline_exceeded")
                                - metric(before, "vggserve_rejected_total",
                                         reason="deadline_exceeded"), 1)
        # A longer client deadline than the server's is ignored (never lengthened), a
        # sufficient one is honoured, a malformed one is ignored.
        for value in ("60000", "20000", "soon"):
            self.assertClassification(self.classify("chelsea.jpg",
                                                    headers={"X-Request-Timeout-Ms": value}))

    # ---- 3. multipart with three images, equal to the CLI

    def test_multipart_three_images_match_cli(self):
        rows = self.cli_rows()
        self.assertEqual([os.path.basename(r["file"]) for r in rows], self.cli_images)
        body, ctype = multipart([(n, image(n)) for n in self.cli_images])
        r = post_image(self.port, body, content_type=ctype)
        got = self.assertClassification(r, n_images=3)
        for name, pred, row in zip(self.cli_images, got["predictions"], rows):
            self.assertSamePrediction(pred["top_k"], row["top_k"], rel=1e-6, what=name)
            self.assertEqual([t["label"] for t in pred["top_k"]], [t["label"] for t in row["top_k"]])
            self.assertEqual([t["wnid"] for t in pred["top_k"]], [t["wnid"] for t in row["top_k"]])
        # Upload order matters: the reversed upload gives the reversed predictions.
        body, ctype = multipart([(n, image(n)) for n in reversed(self.cli_images)])
        rev = self.assertClassification(post_image(self.port, body, content_type=ctype), n_images=3)
        for pred, row in zip(rev["predictions"], reversed(rows)):
            self.assertSamePrediction(pred["top_k"], row["top_k"], rel=1e-6)

    # ---- 4. concurrent clients are batched and each gets its own answer

    def test_concurrent_clients_are_batched_and_answered_right(self):
        photos = ["chelsea.jpg", "coffee.jpg", "camera.jpg", "astronaut.jpg", "rocket.jpg",
                  "hubble_deep_field.jpg"]
        single = {}
        for p in photos:
            single[p] = self.assertClassification(self.classify(p))["predictions"][0]["top_k"]
        # The photos are told apart by their answers, so "its own answer" means something.
        for i, a in enumerate(photos):
            for b in photos[i + 1:]:
                pa = np.array([t["probability"] for t in single[a]])
                pb = np.array([t["probability"] for t in single[b]])
                self.assertTrue([t["class_id"] for t in single[a]] != [t["class_id"] for t in single[b]]
                                or np.abs(pa - pb).max() > 1e-5, (a, b))
        before = settled_metrics(self.server)
        clients = [photos[i % len(photos)] for i in range(16)]
        results = run_parallel([lambda p=p: self.classify(p) for p in clients])
        batch_sizes = []
        for p, r in zip(clients, results):
            if isinstance(r, BaseException):
                self.fail("%s: %r" % (p, r))
            body = self.assertClassification(r)
            batch_sizes.append(body["batch_size"])
            self.assertSamePrediction(body["predictions"][0]["top_k"], single[p], abs_=1e-5, what=p)
        self.assertGreater(max(batch_sizes), 1, batch_sizes)
        after = self.server.metrics()

        def delta(name, **labels):
            return metric(after, name, **labels) - metric(before, name, **labels)
        batches = delta("vggserve_batch_size_count")
        self.assertGreater(batches, 0)
        self.assertLess(delta("vggserve_batch_size_bucket", le="1"), batches,
                        "no batch of more than one image in /metrics")
        self.assertEqual(delta("vggserve_batch_size_sum"), 16)
        self.assertEqual(delta("vggserve_images_classified_total"), 16)

    # ---- 6. metrics

    def test_metrics_names_and_counters(self):
        self.assertClassification(self.classify("chelsea.jpg"))
        text = http_request(self.port, "GET", "/metrics").body.decode()
        samples = parse_metrics(text)
        names = {n for n, _, _ in samples}
        for family, kind in [("vggserve_requests_total", "counter"),
                             ("vggserve_request_duration_seconds", "histogram"),
                             ("vggserve_queue_wait_seconds", "histogram"),
                             ("vggserve_inference_duration_seconds", "histogram"),
                             ("vggserve_batch_size", "histogram"),
                             ("vggserve_queue_depth", "gauge"),
                             ("vggserve_in_flight_requests", "gauge"),
                             ("vggserve_images_classified_total", "counter"),
                             ("vggserve_rejected_total", "counter"),
                             ("vggserve_model_info", "gauge"),
                             ("process_resident_memory_bytes", "gauge")]:
            with self.subTest(metric=family):
                self.assertIn("# TYPE %s %s\n" % (family, kind), text)
                if kind == "histogram":
                    for suffix in ("_bucket", "_sum", "_count"):
                        self.assertIn(family + suffix, names)
                else:
                    self.assertIn(family, names)
        info = [l for n, l, _ in samples if n == "vggserve_model_info"]
        self.assertEqual(len(info), 1)
        self.assertEqual(info[0]["weights"], "generated")
        self.assertEqual(info[0]["model"], "vgg16")
        self.assertEqual(info[0]["max_batch_size"], "4")
        self.assertGreater(metric(samples, "process_resident_memory_bytes"), 100 * 2**20)
        self.assertEqual(metric(samples, "vggserve_queue_depth"), 0)
        self.assertGreaterEqual(metric(samples, "vggserve_in_flight_requests"), 1)  # this one
        self.assertEqual(metric(samples, "vggserve_state", state="ready"), 1)
        # Histogram buckets are cumulative and end in +Inf == _count.
        buckets = [(l["le"], v) for n, l, v in samples if n == "vggserve_batch_size_bucket"]
        counts = [v for _, v in buckets]
        self.assertEqual(counts, sorted(counts))
        self.assertEqual(buckets[-1][0], "+Inf")
        self.assertEqual(buckets[-1][1], metric(samples, "vggserve_batch_size_count"))

        key = dict(endpoint="classify", code="200")
        n0 = metric(settled_metrics(self.server), "vggserve_requests_total", **key)
        self.assertGreaterEqual(n0, 1)
        self.assertClassification(self.classify("coffee.jpg"))
        self.assertClassification(self.classify("camera.jpg"))
        s = wait_for_metrics(self.server,
                             lambda s: metric(s, "vggserve_requests_total", **key) >= n0 + 2)
        self.assertIsNotNone(s, "classify 200s not counted")
        self.assertEqual(metric(s, "vggserve_requests_total", **key), n0 + 2)
        # Errors are counted by code and by reason.
        s0 = settled_metrics(self.server)
        self.assertError(http_request(self.port, "GET", "/nope"), 404)
        key = dict(endpoint="other", code="404")
        s1 = wait_for_metrics(self.server, lambda s: metric(s, "vggserve_requests_total", 0.0, **key)
                              > metric(s0, "vggserve_requests_total", 0.0, **key))
        self.assertIsNotNone(s1, "404 not counted in vggserve_requests_total")
        self.assertEqual(metric(s1, "vggserve_rejected_total", reason="not_found")
                         - metric(s0, "vggserve_rejected_total", reason="not_found"), 1)

    def test_metrics_pass_promtool(self):
        promtool = shutil.which("promtool") or ("/usr/bin/promtool"
                                                if os.path.exists("/usr/bin/promtool") else None)
        if not promtool:
            self.skipTest("promtool not installed (apt-get install prometheus); CI installs it")
        # Make sure every family has samples, errors included.
        self.assertClassification(self.classify("chelsea.jpg"))
        self.assertError(http_request(self.port, "GET", "/nope"), 404)
        text = http_request(self.port, "GET", "/metrics").body
        p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           timeout=60)
        self.assertEqual(p.returncode, 0, "promtool check metrics:\n%s%s\n--- metrics ---\n%s"
                         % (p.stdout.decode(), p.stderr.decode(), text.decode()))

    # ---- 8. access log

    def test_access_log_one_json_line_per_request(self):
        sent = {
            "acclog-healthz": ("GET", "/healthz", None, 200),
            "acclog-classify": ("POST", "/classify", image("chelsea.jpg"), 200),
            "acclog-404": ("GET", "/nope", None, 404),
            "acclog-415": ("POST", "/classify", b"plain text", 415),
        }
        for rid, (method, path, body, status) in sent.items():
            r = http_request(self.port, method, path, body=body,
                             headers={"X-Request-Id": rid, "Content-Type": "image/jpeg"})
            self.assertEqual(r.status, status, r)
            self.assertEqual(r.headers["X-Request-Id"], rid)

        def logged():
            lines = self.server.access_log()
            return lines if all(any(l.get("request_id") == rid for l in lines) for rid in sent) else None
        lines = wait_for(logged)
        self.assertIsNotNone(lines, "not every request is in the access log")
        keys = {"request_id", "method", "path", "status", "bytes", "images", "queue_ms",
                "inference_ms", "total_ms", "batch_id"}
        for line in lines:
            self.assertLessEqual(keys, set(line), line)
        for rid, (method, path, body, status) in sent.items():
            mine = [l for l in lines if l["request_id"] == rid]
            self.assertEqual(len(mine), 1, mine)
            l = mine[0]
            self.assertEqual((l["method"], l["path"], l["status"]), (method, path, status))
            self.assertGreater(l["bytes"], 0)
            self.assertGreater(l["total_ms"], 0)
            if status == 200 and path == "/classify":
                self.assertEqual(l["images"], 1)
                self.assertGreater(l["batch_id"], 0)
                self.assertGreater(l["queue_ms"], 0)
                self.assertGreater(l["inference_ms"], 0)
                # One image: queued, then computed, within the request (6 significant digits).
                self.assertGreaterEqual(l["total_ms"] * (1 + 1e-5), l["queue_ms"] + l["inference_ms"], l)
            else:  # never queued
                self.assertEqual((l["queue_ms"], l["inference_ms"]), (0, 0), l)
            if status >= 400:
                self.assertTrue(l.get("error"), "error lines say why: %r" % l)
            if path != "/classify":
                self.assertEqual((l["images"], l["batch_id"]), (0, 0))
        # One line per request, no more: the log matches the request counter (the /metrics
        # request itself is logged after its answer is rendered).
        samples = settled_metrics(self.server)
        counted = sum(v for n, _, v in samples if n == "vggserve_requests_total")
        n_lines = wait_for(lambda: len(self.server.access_log()) == counted + 1
                           and len(self.server.access_log()))
        self.assertEqual(n_lines, counted + 1)

    # ---- 9. healthcheck command

    def test_healthcheck_command(self):
        p = subprocess.run([BIN, "healthcheck", "--port", str(self.port)], capture_output=True,
                           text=True, timeout=60, env=clean_env())
        self.assertEqual(p.returncode, 0, p.stderr)
        p = subprocess.run([BIN, "healthcheck", "--port", str(self.port), "--path", "/nope"],
                           capture_output=True, text=True, timeout=60, env=clean_env())
        self.assertEqual(p.returncode, 1)
        self.assertIn("404", p.stderr)
        p = subprocess.run([BIN, "healthcheck", "--port", str(free_port())], capture_output=True,
                           text=True, timeout=60, env=clean_env())
        self.assertEqual(p.returncode, 1)
        self.assertIn("unhealthy", p.stderr)


# ================================================================ dedicated servers

class LimitsTest(ServerTestCase):
    """Body and pixel limits (--max-body-bytes 100000 --max-pixels 10000)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.start_shared_server("limits", ["--max-batch-size", "1", "--max-body-bytes", "100000",
                                           "--max-pixels", "10000"])

    def test_small_png_within_limits_is_classified(self):
        self.assertClassification(post_image(self.port, make_png(64, 64), content_type="image/png"))

    def test_413_body_over_limit_from_content_length(self):
        data = image("retina.jpg")
        self.assertGreater(len(data), 100000)
        # The server answers from the headers and closes; on a loopback socket the whole body
        # fits in the socket buffers, but allow a retry if the close raced with our send.
        for attempt in range(3):
            try:
                r = post_image(self.port, data)
                break
            except (ConnectionResetError, BrokenPipeError):
                if attempt == 2:
                    raise
        err = self.assertError(r, 413, "payload_too_large")
        self.assertIn("100000", err["message"])

    def test_413_body_over_limit_while_streaming(self):
        # Chunked: no Content-Length, so the limit is enforced while the body streams in.
        data = image("retina.jpg")
        chunks = [data[i:i + 16384] for i in range(0, len(data), 16384)]
        r = http_request(self.port, "POST", "/classify", body=iter(chunks),
                         headers={"Content-Type": "image/jpeg"}, encode_chunked=True)
        self.assertError(r, 413, "payload_too_large")

    def test_422_image_over_max_pixels(self):
        r = post_image(self.port, image("chelsea.jpg"))  # 451 x 300 pixels, 35 KB
        err = self.assertError(r, 422, "image_too_large")
        self.assertIn("10000", err["message"])
        r = post_image(self.port, make_png(200, 100), content_type="image/png")
        self.assertError(r, 422, "image_too_large")


class QueueFullTest(ServerTestCase):
    """--queue-capacity 2 under 16 concurrent requests: 503 queue_full, the rest 200, no crash."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.start_shared_server("queue", ["--max-batch-size", "1", "--queue-capacity", "2",
                                          "--max-images-per-request", "2", "--log-format", "logfmt"])

    def test_503_when_the_queue_is_full_and_no_crash(self):
        before = self.server.metrics()
        results = run_parallel([lambda: post_image(self.port, image("chelsea.jpg"))
                                for _ in range(16)])
        by_status = {}
        for r in results:
            if isinstance(r, BaseException):
                self.fail("request failed: %r" % r)
            by_status.setdefault(r.status, []).append(r)
        self.assertLessEqual(set(by_status), {200, 503}, by_status)
        self.assertGreaterEqual(len(by_status.get(503, [])), 1, "no 503 with a queue of 2")
        self.assertGreaterEqual(len(by_status.get(200, [])), 1, "nothing was served")
        for r in by_status[503]:
            self.assertError(r, 503, "queue_full")
        for r in by_status[200]:
            self.assertClassification(r)
        n503 = len(by_status[503])
        self.assertTrue(self.server.alive(), "the server died under load")
        r = http_request(self.port, "GET", "/healthz")
        self.assertEqual((r.status, r.json()), (200, {"status": "ok"}))
        self.assertEqual(http_request(self.port, "GET", "/readyz").status, 200)
        after = wait_for_metrics(self.server, lambda s: metric(
            s, "vggserve_requests_total", 0.0, endpoint="classify", code="503") >= n503)
        self.assertIsNotNone(after)
        self.assertEqual(metric(after, "vggserve_rejected_total", reason="queue_full")
                         - metric(before, "vggserve_rejected_total", reason="queue_full"), n503)
        self.assertEqual(metric(after, "vggserve_queue_depth"), 0)
        # And it still serves afterwards.
        self.assertClassification(post_image(self.port, image("coffee.jpg")))

    def test_access_log_logfmt(self):
        r = post_image(self.port, image("chelsea.jpg"), headers={"X-Request-Id": "logfmt-ok"})
        self.assertClassification(r)
        r = http_request(self.port, "GET", "/nope", headers={"X-Request-Id": "logfmt-404"})
        self.assertError(r, 404)
        pair = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')

        def lines():
            out = {}
            for line in self.server.stdout().splitlines():
                kv = {k: v.strip('"') for k, v in pair.findall(line)}
                out.setdefault(kv.get("request_id"), []).append(kv)
            return out if "logfmt-ok" in out and "logfmt-404" in out else None
        logged = wait_for(lines)
        self.assertIsNotNone(logged, self.server.stdout()[-2000:])
        keys = {"ts", "request_id", "method", "path", "status", "bytes", "images", "queue_ms",
                "inference_ms", "total_ms", "batch_id"}
        ok, = logged["logfmt-ok"]
        self.assertLessEqual(keys, set(ok))
        self.assertEqual((ok["method"], ok["path"], ok["status"], ok["images"]),
                         ("POST", "/classify", "200", "1"))
        self.assertGreater(int(ok["batch_id"]), 0)
        nf, = logged["logfmt-404"]
        self.assertEqual((nf["method"], nf["path"], nf["status"]), ("GET", "/nope", "404"))
        self.assertIn("/nope", nf["error"])


class ShutdownTest(ServerTestCase):
    """SIGTERM during load: accepted work is answered, new work gets 503, exit 0."""

    GRACE_S = 10

    def test_sigterm_during_load_answers_accepted_requests(self):
        # One oneDNN thread: the eight images take seconds, so the drain can be watched.
        srv = self.start_server("shutdown", ["--max-batch-size", "2", "--threads-per-worker", "1",
                                             "--shutdown-grace-s", str(self.GRACE_S)])
        photos = ["chelsea.jpg", "coffee.jpg", "camera.jpg", "astronaut.jpg"] * 2
        sent = threading.Semaphore(0)
        results = [None] * len(photos)

        def client(i):
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=REQUEST_TIMEOUT_S)
            try:
                conn.request("POST", "/classify", body=image(photos[i]),
                             headers={"Content-Type": "image/jpeg", "X-Request-Id": "inflight-%d" % i})
                sent.release()
                resp = conn.getresponse()
                results[i] = Response(resp.status, resp.msg, resp.read())
            except BaseException as e:  # noqa: BLE001
                results[i] = e
                sent.release()
            finally:
                conn.close()
        threads = [threading.Thread(target=client, args=(i,), daemon=True)
                   for i in range(len(photos))]
        for t in threads:
            t.start()
        for _ in photos:
            self.assertTrue(sent.acquire(timeout=60))

        def accepted():  # images taken by the worker + images waiting = images queued
            m = srv.metrics()
            return (metric(m, "vggserve_queue_wait_seconds_count")
                    + metric(m, "vggserve_queue_depth")) >= len(photos)
        self.assertTrue(wait_for(accepted, timeout=60, interval=0.02),
                        "the eight requests were never all queued")
        time.sleep(0.3)
        self.assertTrue(srv.alive())
        unanswered = sum(t.is_alive() for t in threads)
        t_sig = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)

        # While draining: /readyz says so and new work is refused with 503.
        draining, late = [], []
        while srv.alive() and time.monotonic() - t_sig < self.GRACE_S + 10:
            try:
                r = http_request(srv.port, "GET", "/readyz", timeout=5)
                if r.status == 503:
                    draining.append(r)
                    if not late and any(t.is_alive() for t in threads):
                        late.append(post_image(srv.port, image("chelsea.jpg"), timeout=30))
                else:
                    self.assertEqual(r.status, 200)
            except (OSError, http.client.HTTPException):
                pass  # the listener closes once the answers are sent
            time.sleep(0.05)
        try:
            rc = srv.proc.wait(timeout=max(1.0, self.GRACE_S + 5 - (time.monotonic() - t_sig)))
        except subprocess.TimeoutExpired:
            self.fail("the server did not exit within shutdown_grace_s + 5 s after SIGTERM")
        took = time.monotonic() - t_sig
        for t in threads:
            t.join(30)
        self.assertEqual(rc, 0, "exit status after SIGTERM")
        self.assertLess(took, self.GRACE_S + 5)

        # Requests in flight at SIGTERM all get a complete 200 with their own answer.
        for i, r in enumerate(results):
            with self.subTest(request=i):
                self.assertNotIsInstance(r, BaseException, r)
                self.assertClassification(r)
        # Readiness turned 503 draining: observable whenever the drain lasted a while.
        if unanswered and took > 0.5:
            self.assertTrue(draining, "never saw /readyz 503 during a %.2f s drain" % took)
        for r in draining:
            self.assertEqual(r.json()["status"], "draining")
            self.assertIsNotNone(r.headers.get("Retry-After"))
        for r in late:
            self.assertError(r, 503, "not_ready")
            self.assertIn("draining", r.json()["error"]["message"])
        events = srv.stderr()
        self.assertIn("SIGTERM: draining", events)
        self.assertIn("stopped after", events)
        self.assertNotIn("unsent answers", events)
        logged = {l["request_id"]: l["status"] for l in srv.access_log()}
        for i in range(len(photos)):
            self.assertEqual(logged.get("inflight-%d" % i), 200)


# ================================================================ configuration

class ConfigTest(ServerTestCase):
    """`serve --print-config`, precedence file < env < flag, refusal of invalid values."""

    def serve(self, *args, env=None, timeout=60):
        return subprocess.run([BIN, "serve", *args], capture_output=True, text=True,
                              timeout=timeout, env=clean_env(**(env or {})))

    def print_config(self, *args, env=None):
        p = self.serve("--print-config", *args, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout)

    def write_config(self, name, obj):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w") as f:
            f.write(obj if isinstance(obj, str) else json.dumps(obj))
        return path

    def test_print_config_has_every_key_of_the_shipped_file(self):
        with open(SHIPPED_CONFIG) as f:
            shipped = json.load(f)
        cfg = self.print_config()
        self.assertLessEqual(set(shipped), set(cfg))
        self.assertEqual(cfg, shipped, "the shipped config file holds the defaults")
        self.assertEqual(self.print_config("--config", SHIPPED_CONFIG), shipped)
        for key in ("host", "port", "weights", "model", "algo", "workers", "threads_per_worker",
                    "max_batch_size", "max_queue_delay_us", "queue_capacity", "request_timeout_ms",
                    "max_body_bytes", "max_pixels", "max_images_per_request", "http_threads",
                    "connection_timeout_s", "shutdown_grace_s", "log_format"):
            self.assertIn(key, cfg)
        # Every key is also a flag spelled with dashes.
        args = []
        for k, v in cfg.items():
            args += ["--" + k.replace("_", "-"), json.dumps(v) if isinstance(v, bool) else str(v)]
        self.assertEqual(self.print_config(*args), cfg)

    def test_precedence_file_then_env_then_flag(self):
        path = self.write_config("port.json", {"port": 1111, "max_batch_size": 2})
        env = {"VGGSERVE_PORT": "2222"}
        self.assertEqual(self.print_config("--config", path, "--port", "3333", env=env)["port"], 3333)
        self.assertEqual(self.print_config("--config", path, "--port=3334", env=env)["port"], 3334)
        cfg = self.print_config("--config", path, env=env)
        self.assertEqual((cfg["port"], cfg["max_batch_size"]), (2222, 2))
        cfg = self.print_config("--config", path)
        self.assertEqual((cfg["port"], cfg["max_batch_size"]), (1111, 2))
        self.assertEqual(self.print_config(env={"VGGSERVE_MAX_BATCH_SIZE": "16"})["max_batch_size"], 16)

    def test_invalid_values_stop_start_up_naming_the_key(self):
        unknown = self.write_config("unknown.json", {"port": 1234, "bogus_setting": 1})
        wrong_type = self.write_config("wrong_type.json", {"max_pixels": "lots"})
        not_json = self.write_config("broken.json", '{"port": 12')
        cases = [
            (["--max-batch-size", "0"], {}, "max_batch_size"),
            (["--max-batch-size", "65"], {}, "max_batch_size"),
            ([], {"VGGSERVE_QUEUE_CAPACITY": "abc"}, "queue_capacity"),
            (["--config", unknown], {}, "bogus_setting"),
            (["--config", wrong_type], {}, "max_pixels"),
            (["--config", not_json], {}, "broken.json"),
            (["--log-format", "xml"], {}, "log_format"),
            (["--port", "70000"], {}, "port"),
            (["--no-such-setting", "1"], {}, "no-such-setting"),
            (["--queue-capacity", "2"], {}, "max_images_per_request"),  # 16 images > 2
        ]
        for args, env, key in cases:
            with self.subTest(args=args, env=env):
                # No --print-config: start-up itself must stop (a timeout means it did not).
                p = self.serve("--port", "0", *args, env=env, timeout=30)
                self.assertNotEqual(p.returncode, 0, p.stderr)
                self.assertIn(key, p.stderr)
                self.assertNotIn("listening", p.stderr)


if __name__ == "__main__":
    su.main()
