"""service_util.py - the harness every black-box suite of `vggserve serve` imports
(test_server.py, test_kserve_v2.py, test_bad_inputs.py, test_faults.py, test_overload.py,
test_security.py, test_converters.py, valgrind_load.py): the server under test, an HTTP
client, Prometheus text, and the assertions on the service's answers.

A Server is the real `vggserve serve` binary on a free loopback port (`--port 0`, read back
from the "listening on" event), its stdout (access log) and stderr (events) in files, used
only after GET /readyz answers 200 (or, with `ready=False`, as soon as it listens; a
LoadingServer stays in state loading until the test releases it). Servers
are killed when the test process exits, however it exits (even by SIGKILL: ctest's
timeout). Standard library and numpy only; run with /usr/bin/python3.

Environment: VGGSERVE_TEST_WRAPPER runs every server under a command (tests/valgrind.sh sets
valgrind there), VGGSERVE_TEST_FLAGS adds flags to every server (e.g. --weights FILE), and
VGGSERVE_TEST_READY_S changes how long a server may take to become ready (default 180).
Every suite ends with main(): with CI=true a skipped test fails unless the suite is named in
VGGSERVE_ALLOWED_SKIPS (.ci/run)."""
import atexit
import ctypes
import http.client
import json
import os
import re
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import numpy as np

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
IMAGES = os.path.join(TESTS, "data", "images")
READY_TIMEOUT_S = float(os.environ.get("VGGSERVE_TEST_READY_S", "180"))
REQUEST_TIMEOUT_S = 120
WRAPPER = shlex.split(os.environ.get("VGGSERVE_TEST_WRAPPER", ""))
EXTRA_FLAGS = shlex.split(os.environ.get("VGGSERVE_TEST_FLAGS", ""))
BOUNDARY = "vggserve-test-7d3f0c9a41b2e8"
# The statuses of the service's error shape and the types each may carry.
ERROR_TYPES = {400: {"bad_request"}, 404: {"not_found"}, 405: {"method_not_allowed"},
               413: {"payload_too_large", "too_many_images"}, 415: {"unsupported_media_type"},
               422: {"undecodable_image", "image_too_large"}, 503: {"queue_full", "not_ready"},
               504: {"deadline_exceeded"}}

# For suites that measure RSS: harmless without ASan; with it, freed blocks are held back only
# up to 16 MiB (the default quarantine, 256 MiB, reads as growth).
SMALL_ASAN_QUARANTINE = {"ASAN_OPTIONS": ":".join(filter(None, [os.environ.get("ASAN_OPTIONS", ""),
                                                                "quarantine_size_mb=16"]))}


def built_with_asan(binary):
    """Whether binary links AddressSanitizer's runtime (the tests/sanitize.sh build): its
    allocator holds freed memory back (quarantine) and its shadow pages stay resident."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    return "libasan" in out


# A small, quick service: VGG11 (half VGG16's work), generated weights, one worker, batches
# of one (warm-up builds one primitive set). Tests add their own flags after these.
LIGHT_FLAGS = ["--model", "vgg11", "--max-batch-size", "1", "--workers", "1",
               "--http-threads", "2", "--shutdown-grace-s", "10"]


def suite_name():
    """The suite's ctest name: tests/test_server.py is "server"."""
    base = os.path.splitext(os.path.basename(sys.argv[0]))[0]
    return base[len("test_"):] if base.startswith("test_") else base


def allowed_skips():
    """The suites allowed to skip under CI=true: VGGSERVE_ALLOWED_SKIPS, one "suite: reason"
    a line (.ci/run sets it; the reason is for its reader)."""
    lines = os.environ.get("VGGSERVE_ALLOWED_SKIPS", "").splitlines()
    return {l.split(":", 1)[0].strip() for l in lines if l.strip()}


class _SkipFailsResult(unittest.TextTestResult):
    """A skipped test is a failure (CI=true: a check that did not run proves nothing)."""

    def addSkip(self, test, reason):
        e = AssertionError("skipped under CI=true, and %r is not in VGGSERVE_ALLOWED_SKIPS "
                           "(.ci/run): %s" % (suite_name(), reason))
        self.addFailure(test, (AssertionError, e, None))


def main(verbosity=2):
    """unittest.main() of every black-box suite. Under CI=true a skipped test fails the suite
    unless the suite is on VGGSERVE_ALLOWED_SKIPS; elsewhere skips are printed as usual."""
    ci = os.environ.get("CI") == "true" and suite_name() not in allowed_skips()
    runner = unittest.TextTestRunner(verbosity=verbosity,
                                     resultclass=_SkipFailsResult if ci else None)
    unittest.main(testRunner=runner)


def binary_from_argv():
    """The vggserve binary under test: argv[1], taken out of argv so that unittest does not
    read it, else build/vggserve."""
    return (os.path.abspath(sys.argv.pop(1)) if len(sys.argv) > 1
            else os.path.join(ROOT, "build", "vggserve"))


# ---------------------------------------------------------------- processes

_started = []  # every Server, killed at exit whatever happened


@atexit.register
def _kill_all():
    for s in _started:
        s.kill()


def die_with_parent():
    """preexec_fn: the child gets SIGKILL when this process dies, even by SIGKILL."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


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


# ---------------------------------------------------------------- request bodies

_image_cache = {}


def image(name):
    """The bytes of tests/data/images/NAME."""
    if name not in _image_cache:
        with open(os.path.join(IMAGES, name), "rb") as f:
            _image_cache[name] = f.read()
    return _image_cache[name]


def multipart(files, boundary=BOUNDARY, close=True):
    """multipart/form-data body of files [(filename, bytes)] or [(filename, content_type,
    bytes)] (default type application/octet-stream), one part "image<i>" each; close=False
    leaves out the closing delimiter. Returns (body, content type header)."""
    b = boundary.encode()
    out = []
    for i, f in enumerate(files):
        filename, ctype, data = f if len(f) == 3 else (f[0], "application/octet-stream", f[1])
        out.append(b"--" + b + b"\r\n")
        out.append(b'Content-Disposition: form-data; name="image%d"; filename="%s"\r\n'
                   % (i, filename.encode()))
        out.append(b"Content-Type: %s\r\n\r\n" % ctype.encode())
        out.append(data)
        out.append(b"\r\n")
    if close:
        out.append(b"--" + b + b"--\r\n")
    return b"".join(out), "multipart/form-data; boundary=" + boundary


# ---------------------------------------------------------------- HTTP client

class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # http.client.HTTPMessage: case-insensitive get()
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<HTTP %d %r>" % (self.status, self.body[:300])


def _exchange(conn, method, path, body, headers, encode_chunked=False):
    try:
        conn.request(method, path, body=body, headers=headers, encode_chunked=encode_chunked)
        r = conn.getresponse()
        return Response(r.status, r.msg, r.read())
    finally:
        conn.close()


def http_request(port, method, path, body=None, headers=None, timeout=REQUEST_TIMEOUT_S,
                 encode_chunked=False):
    """One request on its own plain-HTTP connection to 127.0.0.1:port."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    return _exchange(conn, method, path, body, headers or {}, encode_chunked)


def post_image(port, data, path="/classify", content_type="image/jpeg", headers=None, **kw):
    h = {"Content-Type": content_type}
    h.update(headers or {})
    return http_request(port, "POST", path, body=data, headers=h, **kw)


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


def wait_for(predicate, timeout=5.0, interval=0.05):
    """Polls predicate() until it is truthy; returns its last value. (The access log line and
    the request counter are written just after the answer is sent.)"""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval)


def raw_connect(port, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def closed_by_peer(sock, within_s):
    """True when the server closes sock (EOF or reset) within within_s seconds."""
    sock.settimeout(within_s)
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


# ---------------------------------------------------------------- Prometheus text

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """[(name, {label: value}, value)] of every sample; a line that is neither a comment nor a
    sample fails."""
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
    """The value of the one sample of `name` whose labels include `labels`; with no such
    sample, `default` if given (counters the service renders only once non-zero), else a
    failure."""
    got = [v for n, l, v in samples if n == name and all(l.get(k) == w for k, w in labels.items())]
    if not got:
        if default is not None:
            return default
        raise AssertionError("no sample %s%r" % (name, labels))
    if len(got) > 1:
        raise AssertionError("%d samples match %s%r" % (len(got), name, labels))
    return got[0]


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


def behind_a_busy_worker(server, busy, late, attempts=4):
    """For the 504 tests (one worker): runs the calls in `busy` together in the background,
    waits until the worker has taken their images from the queue, then calls late() (a request
    with a 1 ms deadline, which now waits behind a batch being computed). When late() is
    answered 200 all the same (the batch ended first), again, up to `attempts` times.
    Returns (late()'s last response, every busy result (a response or an exception), late()'s
    200s before it)."""
    served, early = [], []
    for _ in range(attempts):
        taken = metric(server.metrics(), "vggserve_queue_wait_seconds_count")
        results = {}
        t = threading.Thread(target=lambda: results.update(bg=run_parallel(busy)), daemon=True)
        t.start()
        wait_for(lambda: metric(server.metrics(), "vggserve_queue_wait_seconds_count") > taken,
                 timeout=60, interval=0.01)
        r = late()
        t.join(REQUEST_TIMEOUT_S)
        if t.is_alive():
            raise AssertionError("the busy requests were not answered in %d s" % REQUEST_TIMEOUT_S)
        served += results["bg"]
        if r.status != 200:
            break
        early.append(r)
    return r, served, early


# ---------------------------------------------------------------- the server under test

class Server:
    """One `vggserve serve` process on a free loopback port, with generated weights unless
    flags say otherwise: base_flags (LIGHT_FLAGS, or () for the service's defaults), then
    VGGSERVE_TEST_FLAGS, then flags. cafile: HTTPS with that CA; token: sent as a Bearer
    token by request() unless auth=False."""

    def __init__(self, binary, workdir, name, flags=(), env=None, cafile=None, token=None,
                 base_flags=LIGHT_FLAGS):
        self.binary, self.name = binary, name
        self.flags = ["serve", "--port", "0", *base_flags, *EXTRA_FLAGS, *flags]
        self.env = clean_env(**(env or {}))
        self.cafile, self.token = cafile, token
        self.out_path = os.path.join(workdir, name + ".out")
        self.err_path = os.path.join(workdir, name + ".err")
        self.proc, self.port = None, None

    def start(self, ready=True, timeout=READY_TIMEOUT_S):
        """Starts the process and waits until it listens and (ready) /readyz answers 200; if
        that fails, kills it and raises with its logs."""
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([*WRAPPER, self.binary, *self.flags], stdout=out,
                                         stderr=err, stdin=subprocess.DEVNULL, env=self.env,
                                         preexec_fn=die_with_parent)
        _started.append(self)
        deadline = time.monotonic() + timeout
        try:
            while self.port is None:
                m = re.search(r"listening on https?://[\d.]+:(\d+)", self.stderr())
                if m:
                    self.port = int(m.group(1))
                    break
                self._check_alive("before listening")
                if time.monotonic() > deadline:
                    raise AssertionError("%s: no 'listening on' line after %d s\n%s"
                                         % (self.name, timeout, self.tail()))
                time.sleep(0.05)
            if ready:
                self.wait_ready(max(deadline - time.monotonic(), 0))
        except BaseException:
            self.kill()
            raise
        return self

    def wait_ready(self, timeout=READY_TIMEOUT_S):
        """After start(ready=False): waits until /readyz answers 200 (else fails with the logs)."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive("before ready")
            try:
                if self.request("GET", "/readyz", timeout=10).status == 200:
                    return self
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                raise AssertionError("%s: /readyz not 200 after %d s\n%s"
                                     % (self.name, timeout, self.tail()))
            time.sleep(0.1)

    def _check_alive(self, when):
        if self.proc.poll() is not None:
            raise AssertionError("%s exited with %s %s\n%s"
                                 % (self.name, self.proc.returncode, when, self.tail()))

    def connection(self, timeout):
        if self.cafile:
            ctx = ssl.create_default_context(cafile=self.cafile)
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=ctx)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=REQUEST_TIMEOUT_S,
                auth=True):
        headers = dict(headers or {})
        if auth and self.token and "Authorization" not in headers:
            headers["Authorization"] = "Bearer " + self.token
        return _exchange(self.connection(timeout), method, path, body, headers)

    def classify(self, data, content_type="image/jpeg", query="", headers=None, **kw):
        h = {"Content-Type": content_type, **(headers or {})}
        return self.request("POST", "/classify" + query, body=data, headers=h, **kw)

    def metrics(self):
        r = self.request("GET", "/metrics", timeout=60)
        assert r.status == 200, r
        return parse_metrics(r.body.decode())

    def stdout(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def access_log(self):
        """Every access log line, each of which must be JSON (the default log format)."""
        return [json.loads(l) for l in self.stdout().splitlines() if l.strip()]

    def healthy(self):
        """GET /healthz answers 200 (False on any socket error)."""
        try:
            return self.request("GET", "/healthz", timeout=10).status == 200
        except OSError:
            return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=60 if not WRAPPER else 600):
        """SIGTERM; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} did not exit {timeout} s after SIGTERM")

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass

    def tail(self, n=60):
        """The last n lines of both logs, for a failure message."""
        def last(text):
            lines = text.splitlines()
            skipped = ["  [%d earlier lines]" % (len(lines) - n)] if len(lines) > n else []
            return "\n".join(skipped + lines[-n:])
        return ("----- %s stdout (access log), %s -----\n%s\n----- %s stderr (events) -----\n%s"
                % (self.name, self.out_path, last(self.stdout()), self.name, last(self.stderr())))


class LoadingServer(Server):
    """A Server held in state `loading` for as long as a test needs, with no test hook in the
    product: its --weights is a named FIFO, and the server's open() of the weights blocks until
    a writer opens the FIFO's other end (the shutdown signals are blocked, so nothing
    interrupts it). start() returns as soon as it listens. release() opens and closes the
    FIFO: the server then finds no regular file (weights are mmapped) and fails with
    "not a regular file" (exit 1); release() returns (exit code, stderr)."""

    def __init__(self, binary, workdir, name, flags=(), *args, **kw):
        self.fifo = os.path.join(workdir, name + ".weights.fifo")
        os.mkfifo(self.fifo)
        super().__init__(binary, workdir, name, [*flags, "--weights", self.fifo], *args, **kw)

    def start(self, ready=False, timeout=READY_TIMEOUT_S):
        assert not ready, "a LoadingServer never becomes ready"
        return super().start(ready=False, timeout=timeout)

    def release(self, timeout=60 if not WRAPPER else 600):
        def open_writer():  # non-blocking: ENXIO until the server is in open() on the read end
            try:
                os.close(os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK))
                return True
            except OSError:
                return False
        if not wait_for(open_writer, timeout=timeout):
            raise AssertionError("%s: never opened its weights FIFO\n%s" % (self.name, self.tail()))
        try:
            return self.proc.wait(timeout), self.stderr()
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("%s did not exit %d s after its weights FIFO was released\n%s"
                                 % (self.name, timeout, self.tail()))


# ---------------------------------------------------------------- test cases

class LightServerCase(unittest.TestCase):
    """One light Server (LIGHT_FLAGS) per class in a temporary directory: started in setUpClass
    with the keyword arguments server_args() returns, stopped in tearDownClass, which asserts
    that it drained and exited 0. A suite sets `binary` (binary_from_argv()) and `name`;
    self.jpeg is the shipped cat photo."""

    binary = None
    name = "test"

    @classmethod
    def server_args(cls, workdir):
        """Server's keyword arguments (flags, env, token, cafile); may write files into
        workdir first (tokens, certificates)."""
        return {}

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix=f"vggserve-{cls.name}-")
        try:
            cls.server = Server(cls.binary, cls.tmp.name, cls.name,
                                **cls.server_args(cls.tmp.name)).start()
        except BaseException:
            cls.tmp.cleanup()
            raise
        cls.jpeg = image("chelsea.jpg")

    @classmethod
    def tearDownClass(cls):
        code = cls.server.stop()
        cls.tmp.cleanup()
        assert code == 0, f"exit code {code}"


class ServerTestCase(unittest.TestCase):
    """Full-size servers (VGG16 and the service's defaults, not LIGHT_FLAGS) in a temporary
    directory per class; prints the logs of the servers a test used when it fails or errs.
    A suite sets `binary` (binary_from_argv()) on its subclass."""

    binary = None
    server = None  # the class's shared server, if any (start_shared_server)
    cli = None  # a command run beside it, if any (start_cli)
    tmp = None
    _cli_rows = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="vggserve-test-")

    @classmethod
    def tearDownClass(cls):
        if cls.cli is not None:
            if cls.cli.poll() is None:
                cls.cli.kill()
            cls.cli.communicate()
        if cls.server is not None:
            cls.server.kill()
        if cls.tmp is not None:
            cls.tmp.cleanup()

    @classmethod
    def start_cli(cls, *args):
        """Starts `vggserve ARGS` in the background (the CLI's answers are computed while the
        class's server loads); cli_rows() collects them."""
        cls.cli = subprocess.Popen([cls.binary, *args], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, env=clean_env(), text=True,
                                   preexec_fn=die_with_parent)

    def cli_rows(self):
        """The start_cli() command's stdout, one JSON object a line; it must exit 0."""
        cls = type(self)
        if cls._cli_rows is None:
            out, err = cls.cli.communicate(timeout=300)
            self.assertEqual(cls.cli.returncode, 0, err)
            cls._cli_rows = [json.loads(l) for l in out.splitlines()]
        return cls._cli_rows

    @classmethod
    def new_server(cls, name, flags=(), env=None, server_class=Server):
        return server_class(cls.binary, cls.tmp.name, name, ["--host", "127.0.0.1", *flags],
                            env, base_flags=())

    @classmethod
    def start_shared_server(cls, name, flags=(), env=None, server_class=Server):
        """setUpClass's server: cls.server and cls.port; if it does not start, tearDownClass
        runs (unittest skips it when setUpClass raises)."""
        cls.server = cls.new_server(name, flags, env, server_class)
        try:
            cls.server.start()
        except BaseException:
            cls.tearDownClass()
            raise
        cls.port = cls.server.port

    def setUp(self):
        self.own_servers = []

    def tearDown(self):
        for s in self.own_servers:
            s.kill()

    def start_server(self, name, flags=(), env=None, server_class=Server):
        s = self.new_server(name, flags, env, server_class)
        self.own_servers.append(s)
        return s.start()

    def run(self, result=None):
        if result is None:
            return super().run(result)
        before = len(result.failures) + len(result.errors)
        out = super().run(result)
        if len(result.failures) + len(result.errors) > before:
            for s in ([self.server] if self.server else []) + getattr(self, "own_servers", []):
                if s.proc is not None:
                    sys.stderr.write("\n" + s.tail() + "\n")
        return out

    # ---- the service's answers

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
        self.assertTimings(body["timing_ms"], n_images)
        self.assertIsInstance(body["batch_size"], int)
        self.assertGreaterEqual(body["batch_size"], 1)
        return body

    def assertTimings(self, timing, n_images):
        """A 200's timing_ms: every phase took time, and the request's total holds them. Its
        phases follow each other (decode, then the queue, then the forward pass), so for one
        image total >= decode + queue + inference; with several, queue (the longest wait of
        any image) may overlap inference (summed over the batches they rode), so only
        total >= decode + queue and total >= inference. The values carry 7 significant
        digits."""
        self.assertEqual(set(timing), {"decode", "queue", "inference", "total"})
        for phase, v in timing.items():
            self.assertGreater(v, 0.0, "%s took no time: %s" % (phase, timing))
        slack = 1e-6 * timing["total"]
        phases = ([timing["decode"] + timing["queue"] + timing["inference"]] if n_images == 1
                  else [timing["decode"] + timing["queue"], timing["inference"]])
        for covered in phases:
            self.assertGreaterEqual(timing["total"] + slack, covered, timing)

    def assertSamePrediction(self, got, want, rel=None, abs_=None, what=""):
        """got/want: lists of {class_id, probability}: same ids in order, close probabilities."""
        self.assertEqual([t["class_id"] for t in got], [t["class_id"] for t in want], what)
        g = np.array([t["probability"] for t in got])
        w = np.array([t["probability"] for t in want])
        if rel is not None:
            self.assertLessEqual(np.max(np.abs(g - w) / np.abs(w)), rel, "%s: %s vs %s" % (what, g, w))
        if abs_ is not None:
            self.assertLessEqual(np.max(np.abs(g - w)), abs_, "%s: %s vs %s" % (what, g, w))
