"""service_util.py - what the reliability and security tests share (test_bad_inputs.py,
test_security.py, test_faults.py, test_overload.py).

A Server is the real `vggserve serve` binary on a free loopback port (`--port 0`, read back
from the "listening on" event), its stdout (access log) and stderr (events) in files, used
only after GET /readyz answers 200 (or, with `ready=False`, as soon as it listens). Servers
are killed when the test process exits, however it exits. Standard library and numpy only;
run with /usr/bin/python3.

Environment: VGGSERVE_TEST_WRAPPER runs every server under a command (tests/valgrind.sh sets
valgrind there), VGGSERVE_TEST_FLAGS adds flags to every server (e.g. --weights FILE), and
VGGSERVE_TEST_READY_S changes how long a server may take to become ready (default 180)."""
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
import time

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
IMAGES = os.path.join(TESTS, "data", "images")
READY_TIMEOUT_S = float(os.environ.get("VGGSERVE_TEST_READY_S", "180"))
WRAPPER = shlex.split(os.environ.get("VGGSERVE_TEST_WRAPPER", ""))
EXTRA_FLAGS = shlex.split(os.environ.get("VGGSERVE_TEST_FLAGS", ""))

# A small, quick service: VGG11 (half VGG16's work), generated weights, one worker, batches
# of one (warm-up builds one primitive set). Tests add their own flags after these.
LIGHT_FLAGS = ["--model", "vgg11", "--max-batch-size", "1", "--workers", "1",
               "--http-threads", "2", "--shutdown-grace-s", "10"]

_started = []


@atexit.register
def _kill_all():
    for s in _started:
        s.kill()


def _die_with_parent():
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("VGGSERVE_")}
    env.update(extra)
    return env


def image(name):
    with open(os.path.join(IMAGES, name), "rb") as f:
        return f.read()


def multipart(files, boundary="vggserve-h6-boundary"):
    """files: [(filename, content_type, bytes)] -> (body, content type header)."""
    out = b""
    for i, (fn, ct, data) in enumerate(files):
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image{i}\"; "
                f"filename=\"{fn}\"\r\nContent-Type: {ct}\r\n\r\n").encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<HTTP %d %r>" % (self.status, self.body[:300])


def parse_metrics(text):
    """{(name, frozenset(labels)): value} from Prometheus text."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)$', line)
        if m:
            labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
            out[(m.group(1), labels)] = float(m.group(4))
    return out


def metric(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


class Server:
    def __init__(self, binary, workdir, name, flags=(), env=None, cafile=None, token=None):
        self.binary, self.name = binary, name
        self.flags = ["serve", "--port", "0", *LIGHT_FLAGS, *EXTRA_FLAGS, *flags]
        self.env = clean_env(**(env or {}))
        self.cafile, self.token = cafile, token
        self.out_path = os.path.join(workdir, name + ".out")
        self.err_path = os.path.join(workdir, name + ".err")
        self.proc, self.port = None, None

    def start(self, ready=True, timeout=READY_TIMEOUT_S):
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([*WRAPPER, self.binary, *self.flags], stdout=out, stderr=err,
                                         env=self.env, preexec_fn=_die_with_parent)
        _started.append(self)
        deadline = time.time() + timeout
        while self.port is None:
            m = re.search(r"listening on https?://[\d.]+:(\d+)", self.stderr())
            if m:
                self.port = int(m.group(1))
            elif self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{self.stderr()}")
            elif time.time() > deadline:
                raise AssertionError(f"{self.name} did not listen:\n{self.stderr()}")
            else:
                time.sleep(0.05)
        while ready:
            try:
                if self.request("GET", "/readyz", timeout=5).status == 200:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{self.stderr()}")
            if time.time() > deadline:
                raise AssertionError(f"{self.name} not ready in {timeout} s:\n{self.stderr()}")
            time.sleep(0.2)
        return self

    def connection(self, timeout):
        if self.cafile:
            ctx = ssl.create_default_context(cafile=self.cafile)
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=ctx)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=120, auth=True):
        headers = dict(headers or {})
        if auth and self.token and "Authorization" not in headers:
            headers["Authorization"] = "Bearer " + self.token
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            return Response(r.status, r.msg, r.read())
        finally:
            conn.close()

    def classify(self, data, content_type="image/jpeg", query="", headers=None, **kw):
        h = {"Content-Type": content_type, **(headers or {})}
        return self.request("POST", "/classify" + query, body=data, headers=h, **kw)

    def metrics(self):
        return parse_metrics(self.request("GET", "/metrics", timeout=10).body.decode())

    def stdout(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")

    def access_log(self):
        return [json.loads(l) for l in self.stdout().splitlines() if l.startswith("{")]

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
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def tail(self, n=40):
        return ("--- stderr:\n" + "\n".join(self.stderr().splitlines()[-n:]) +
                "\n--- stdout:\n" + "\n".join(self.stdout().splitlines()[-n:]))


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


def wait_for(predicate, timeout, interval=0.1):
    deadline = time.time() + timeout
    while True:
        v = predicate()
        if v or time.time() > deadline:
            return v
        time.sleep(interval)
