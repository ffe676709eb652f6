#!/usr/bin/env python3
"""Black-box integration tests of `vggserve serve` (run by ctest: test_server.py PATH/TO/vggserve).

Every server is the real binary, started as a subprocess on a free loopback port (`--port 0`; the
port is read from the "listening on" event on stderr) with generated weights (seed 1), and is
used only after GET /readyz answers 200. A server's stdout (the access log) and stderr (the event
log) go to files in a temporary directory; their tails are printed when a test fails.

Uses only the standard library and numpy (Debian python3-numpy); run with /usr/bin/python3.
`promtool` (Debian package prometheus) is needed by one test, which is skipped without it."""
import atexit
import ctypes
import http.client
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import zlib

import numpy as np

BIN = os.path.abspath(sys.argv.pop(1)) if len(sys.argv) > 1 else "build/vggserve"
TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
IMAGES = os.path.join(TESTS, "data", "images")
SHIPPED_CONFIG = os.path.join(ROOT, "config", "vggserve.json")
READY_TIMEOUT_S = 120  # loading + warm-up is 5-15 s on two cores; CI machines can be slower
REQUEST_TIMEOUT_S = 120
BOUNDARY = "vggserve-test-7d3f0c9a41b2e8"
ERROR_TYPES = {400: {"bad_request"}, 404: {"not_found"}, 405: {"method_not_allowed"},
               413: {"payload_too_large", "too_many_images"}, 415: {"unsupported_media_type"},
               422: {"undecodable_image", "image_too_large"}, 503: {"queue_full", "not_ready"},
               504: {"deadline_exceeded"}}

_image_cache = {}


def image(name):
    if name not in _image_cache:
        with open(os.path.join(IMAGES, name), "rb") as f:
            _image_cache[name] = f.read()
    return _image_cache[name]


def make_png(width, height, seed=0):
    """A random RGB PNG, written with zlib (the service decodes PNG as well as JPEG)."""
    px = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    raw = b"".join(b"\x00" + px[y].tobytes() for y in range(height))

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _die_with_parent():
    """Children get SIGKILL when this process dies, even by SIGKILL (ctest's timeout)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


_started = []  # every Server, killed at exit whatever happened


@atexit.register
def _kill_all():
    for s in _started:
        s.kill()


def clean_env(**extra):
    """The caller's environment without VGGSERVE_* settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VGGSERVE_")}
    env.update(extra)
    return env


def free_port():
    """A loopback port that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- HTTP client helpers

class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # http.client.HTTPMessage: case-insensitive get()
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<HTTP %d %r>" % (self.status, self.body[:300])


def http_request(port, method, path, body=None, headers=None, timeout=REQUEST_TIMEOUT_S,
                 encode_chunked=False):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {}, encode_chunked=encode_chunked)
        resp = conn.getresponse()
        return Response(resp.status, resp.msg, resp.read())
    finally:
        conn.close()


def post_image(port, data, path="/classify", content_type="image/jpeg", headers=None, **kw):
    h = {"Content-Type": content_type}
    h.update(headers or {})
    return http_request(port, "POST", path, body=data, headers=h, **kw)


def multipart(files, boundary=BOUNDARY, close=True):
    """multipart/form-data body for [(filename, bytes)]; close=False leaves out the closing
    delimiter. Returns (body, content_type)."""
    b = boundary.encode()
    out = []
    for i, (filename, data) in enumerate(files):
        out.append(b"--" + b + b"\r\n")
        out.append(b'Content-Disposition: form-data; name="image%d"; filename="%s"\r\n'
                   % (i, filename.encode()))
        out.append(b"Content-Type: application/octet-stream\r\n\r\n")
        out.append(data)
        out.append(b"\r\n")
    if close:
        out.append(b"--" + b + b"--\r\n")
    return b"".join(out), "multipart/form-data; boundary=" + boundary


def run_parallel(fns, timeout=300):
    """Runs every fn in its own thread, all released together; returns results or exceptions."""
    results = [None] * len(fns)
    barrier = threading.Barrier(len(fns))

    def work(i):
        try:
            barrier.wait(30)
            results[i] = fns[i]()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            results[i] = e
    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(fns))]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        raise AssertionError("requests still running after %d s" % timeout)
    return results


# ---------------------------------------------------------------- metrics helpers

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise AssertionError("not a Prometheus sample line: %r" % line)
        samples.append((m.group(1), dict(_LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return samples


def metric(samples, name, default=None, **labels):
    """The value of the one sample of `name` whose labels include `labels`."""
    got = [v for n, l, v in samples if n == name and all(l.get(k) == w for k, w in labels.items())]
    if not got:
        if default is not None:
            return default
        raise AssertionError("no sample %s%r" % (name, labels))
    if len(got) > 1:
        raise AssertionError("%d samples match %s%r" % (len(got), name, labels))
    return got[0]


# ---------------------------------------------------------------- the server under test

class Server:
    """One `vggserve serve` process on a free loopback port, with generated weights."""

    def __init__(self, workdir, name, flags=(), env=None):
        self.name = name
        self.out_path = os.path.join(workdir, name + ".stdout.log")
        self.err_path = os.path.join(workdir, name + ".stderr.log")
        self.flags = ["--host", "127.0.0.1", "--port", "0", *flags]
        self.env = clean_env(**(env or {}))
        self.proc = None
        self.port = None
        self.not_ready_seen = []  # (readyz Response, classify Response) while loading/warming

    def start(self, timeout=READY_TIMEOUT_S):
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([BIN, "serve", *self.flags], stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL, env=self.env,
                                         preexec_fn=_die_with_parent)
        _started.append(self)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while self.port is None:
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", self.stderr())
            if m:
                self.port = int(m.group(1))
                break
            self._check_alive("before listening")
            if time.monotonic() > deadline:
                raise AssertionError("%s: no 'listening on' line after %d s\n%s"
                                     % (self.name, timeout, self.logs()))
            time.sleep(0.05)
        while True:
            self._check_alive("before ready")
            try:
                r = http_request(self.port, "GET", "/readyz", timeout=10)
                if r.status == 200:
                    return
                if r.status == 503 and len(self.not_ready_seen) < 1:
                    c = post_image(self.port, image("chelsea.jpg"), timeout=10)
                    self.not_ready_seen.append((r, c))
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                raise AssertionError("%s: /readyz not 200 after %d s\n%s"
                                     % (self.name, timeout, self.logs()))
            time.sleep(0.1)

    def _check_alive(self, when):
        if self.proc.poll() is not None:
            raise AssertionError("%s exited with %s %s\n%s"
                                 % (self.name, self.proc.returncode, when, self.logs()))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stdout(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def access_log(self):
        return [json.loads(l) for l in self.stdout().splitlines() if l.strip()]

    def logs(self, tail=60):
        def last(text):
            lines = text.splitlines()
            skipped = ["  [%d earlier lines]" % (len(lines) - tail)] if len(lines) > tail else []
            return "\n".join(skipped + lines[-tail:])
        return ("----- %s stdout (access log), %s -----\n%s\n----- %s stderr (events) -----\n%s"
                % (self.name, self.out_path, last(self.stdout()), self.name, last(self.stderr())))

    def metrics(self):
        r = http_request(self.port, "GET", "/metrics")
        assert r.status == 200, r
        return parse_metrics(r.body.decode())

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass


class ServerTestCase(unittest.TestCase):
    """Prints the logs of the servers a test used when it fails or errs."""

    server = None  # the class's shared server, if any

    def setUp(self):
        self.own_servers = []

    def tearDown(self):
        for s in self.own_servers:
            s.kill()

    def start_server(self, name, flags=(), env=None):
        s = Server(self.tmp.name, name, flags, env)
        self.own_servers.append(s)
        return s.start()

    @classmethod
    def make_tmp(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="vggserve-test-")

    def run(self, result=None):
        if result is None:
            return super().run(result)
        before = len(result.failures) + len(result.errors)
        out = super().run(result)
        if len(result.failures) + len(result.errors) > before:
            for s in ([self.server] if self.server else []) + getattr(self, "own_servers", []):
                if s.proc is not None:
                    sys.stderr.write("\n" + s.logs() + "\n")
        return out

    # ---- assertions shared by the classes

    def assertError(self, r, status, type_=None):
        """The one error shape: {"error": {"code", "type", "message"}} and the right status."""
        self.assertEqual(r.status, status, r)
        self.assertTrue(r.headers.get("Content-Type", "").startswith("application/json"), r.headers)
        body = r.json()
        self.assertEqual(set(body), {"error"}, body)
        err = body["error"]
        self.assertEqual(set(err), {"code", "type", "message"}, err)
        self.assertEqual(err["code"], status)
        self.assertIn(err["type"], ERROR_TYPES[status])
        if type_ is not None:
            self.assertEqual(err["type"], type_)
        self.assertIsInstance(err["message"], str)
        self.assertTrue(err["message"], "empty error message")
        if status == 503:
            self.assertIsNotNone(r.headers.get("Retry-After"), "503 without Retry-After")
            self.assertGreaterEqual(int(r.headers["Retry-After"]), 1)
        return err

    def assertClassification(self, r, n_images=1, top_k=5):
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.headers.get("Content-Type", "").startswith("application/json"))
        body = r.json()
        self.assertEqual(body["model"], "vgg16")
        self.assertIsInstance(body["request_id"], str)
        self.assertTrue(body["request_id"])
        self.assertEqual(r.headers.get("X-Request-Id"), body["request_id"])
        self.assertEqual(len(body["predictions"]), n_images)
        for p in body["predictions"]:
            self.assertEqual(len(p["top_k"]), top_k)
            for t in p["top_k"]:
                self.assertEqual(set(t), {"class_id", "wnid", "label", "probability"})
                self.assertTrue(0 <= t["class_id"] < 1000)
                self.assertRegex(t["wnid"], r"^n\d{8}$")
                self.assertTrue(t["label"])
                self.assertTrue(0.0 <= t["probability"] <= 1.0)
            probs = [t["probability"] for t in p["top_k"]]
            self.assertEqual(probs, sorted(probs, reverse=True))
            self.assertEqual(len({t["class_id"] for t in p["top_k"]}), top_k)
        timing = body["timing_ms"]
        self.assertEqual(set(timing), {"decode", "queue", "inference", "total"})
        for v in timing.values():
            self.assertGreaterEqual(v, 0.0)
        self.assertGreater(timing["inference"], 0.0)
        self.assertGreaterEqual(timing["total"], timing["inference"])
        self.assertIsInstance(body["batch_size"], int)
        self.assertGreaterEqual(body["batch_size"], 1)
        return body

    def assertSamePrediction(self, got, want, rel=None, abs_=None, what=""):
        """got/want: lists of {class_id, probability}: same ids in order, close probabilities."""
        self.assertEqual([t["class_id"] for t in got], [t["class_id"] for t in want], what)
        g = np.array([t["probability"] for t in got])
        w = np.array([t["probability"] for t in want])
        if rel is not None:
            self.assertLessEqual(np.max(np.abs(g - w) / np.abs(w)), rel, "%s: %s vs %s" % (what, g, w))
        if abs_ is not None:
            self.assertLessEqual(np.max(np.abs(g - w)), abs_, "%s: %s vs %s" % (what, g, w))


def wait_for_metrics(server, condition, timeout=5.0):
    """Polls /metrics until condition(samples) holds; returns those samples, or None."""
    return wait_for(lambda: (lambda s: s if condition(s) else None)(server.metrics()), timeout)


def settled_metrics(server, timeout=5.0):
    """/metrics once every earlier request has been counted: requests are counted when their
    connection completes, just after the answer reaches the client, so a scrape straight after
    an answer may not include it yet. Settled means the scrape itself is the only request in
    flight."""
    s = wait_for_metrics(server, lambda s: metric(s, "vggserve_in_flight_requests") == 1, timeout)
    if s is None:
        raise AssertionError("requests still in flight after %.0f s" % timeout)
    return s


def wait_for(predicate, timeout=5.0, interval=0.05):
    """Polls predicate() until it is truthy; returns its last value. (The access log line and
    the request counter are written just after the answer is sent.)"""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval)


# ================================================================ the shared server

class ServiceTest(ServerTestCase):
    """Endpoints, errors, batching and logs against one server (max batch 4)."""

    @classmethod
    def setUpClass(cls):
        cls.make_tmp()
        # The CLI's answers for the multipart test are computed while the server loads.
        # --batch 1: each image through its own batch-1 pass, as `classify --top-k 5 IMAGE` does.
        cls.cli_images = ["chelsea.jpg", "coffee.jpg", "camera.jpg"]
        cls.cli = subprocess.Popen(
            [BIN, "classify", "--top-k", "5", "--batch", "1",
             *[os.path.join(IMAGES, f) for f in cls.cli_images]],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env(), text=True,
            preexec_fn=_die_with_parent)
        cls.server = Server(cls.tmp.name, "main", ["--max-batch-size", "4",
                                                   "--max-queue-delay-us", "20000",
                                                   "--max-images-per-request", "3"])
        try:
            cls.server.start()
        except BaseException:
            cls.cli.kill()
            cls.cli.wait()
            cls.tmp.cleanup()
            raise
        cls.port = cls.server.port

    @classmethod
    def tearDownClass(cls):
        cls.server.kill()
        if cls.cli.poll() is None:
            cls.cli.kill()
        cls.cli.communicate()
        cls.tmp.cleanup()

    def classify(self, name="chelsea.jpg", query="", headers=None):
        return post_image(self.port, image(name), path="/classify" + query, headers=headers)

    # ---- 1. every endpoint

    def test_healthz(self):
        r = http_request(self.port, "GET", "/healthz")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json(), {"status": "ok"})
        self.assertTrue(r.headers["Content-Type"].startswith("application/json"))

    def test_readyz_ready_and_not_ready_during_start_up(self):
        r = http_request(self.port, "GET", "/readyz")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json(), {"status": "ready"})
        # While loading/warming (seen by Server.start): 503 with the state, and /classify 503.
        if not self.server.not_ready_seen:
            self.skipTest("the server was ready before the first /readyz poll")
        readyz, classify = self.server.not_ready_seen[0]
        self.assertEqual(readyz.status, 503)
        self.assertIn(readyz.json()["status"], {"loading", "warming"})
        self.assertIsNotNone(readyz.headers.get("Retry-After"))
        if classify.status != 200:  # it may have raced with the end of warm-up
            self.assertError(classify, 503, "not_ready")

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
        ok_images = 0
        for attempt in range(4):
            # Keep the worker busy with four requests, then send one with a 1 ms deadline.
            busy = [lambda n=n: self.classify(n) for n in ("coffee.jpg", "camera.jpg",
                                                            "astronaut.jpg", "rocket.jpg")]
            results = {}
            t = threading.Thread(target=lambda: results.update(bg=run_parallel(busy)), daemon=True)
            t.start()
            time.sleep(0.15)
            r = self.classify("chelsea.jpg", headers={"X-Request-Timeout-Ms": "1"})
            t.join(REQUEST_TIMEOUT_S)
            self.assertFalse(t.is_alive())
            for b in results["bg"]:
                self.assertNotIsInstance(b, BaseException, b)
                self.assertClassification(b)
            ok_images += len(results["bg"])
            if r.status == 504:
                break
            self.assertClassification(r)  # it beat the deadline: only then try again
            ok_images += 1
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
        out, err = self.cli.communicate(timeout=300)
        self.assertEqual(self.cli.returncode, 0, err)
        rows = [json.loads(l) for l in out.splitlines()]
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
            self.assertGreaterEqual(l["total_ms"], 0)
            if status == 200 and path == "/classify":
                self.assertEqual(l["images"], 1)
                self.assertGreater(l["batch_id"], 0)
                self.assertGreater(l["inference_ms"], 0)
                self.assertGreaterEqual(l["total_ms"], l["inference_ms"])
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
        cls.make_tmp()
        cls.server = Server(cls.tmp.name, "limits", ["--max-batch-size", "1",
                                                     "--max-body-bytes", "100000",
                                                     "--max-pixels", "10000"])
        try:
            cls.server.start()
        except BaseException:
            cls.tmp.cleanup()
            raise
        cls.port = cls.server.port

    @classmethod
    def tearDownClass(cls):
        cls.server.kill()
        cls.tmp.cleanup()

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
        cls.make_tmp()
        cls.server = Server(cls.tmp.name, "queue", ["--max-batch-size", "1",
                                                    "--queue-capacity", "2",
                                                    "--max-images-per-request", "2",
                                                    "--log-format", "logfmt"])
        try:
            cls.server.start()
        except BaseException:
            cls.tmp.cleanup()
            raise
        cls.port = cls.server.port

    @classmethod
    def tearDownClass(cls):
        cls.server.kill()
        cls.tmp.cleanup()

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

    @classmethod
    def setUpClass(cls):
        cls.make_tmp()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

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

    @classmethod
    def setUpClass(cls):
        cls.make_tmp()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

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
    unittest.main(verbosity=2)
