"""repository_util.py - what bench/tritonclient_repository_check.py and bench/repository_swap.py
share: small models for a repository, `vggserve classify` as the reference answer, a
`vggserve serve` process on a free loopback port, its memory from /proc, and plain HTTP calls.
Standard library and numpy only (run with /usr/bin/python3)."""
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTOS = os.path.join(ROOT, "tests", "data", "images")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from small_vgg import small_model  # noqa: E402,F401  (re-exported for the bench scripts)


def place(repo, name, version, weights):
    """DIR/NAME/VERSION/model.safetensors: a hard link to `weights` (a copy across devices),
    written under a temporary name and renamed, as a deployment would."""
    d = os.path.join(repo, name, str(version))
    os.makedirs(d, exist_ok=True)
    dst = os.path.join(d, "model.safetensors")
    tmp = dst + ".part"
    try:
        os.link(weights, tmp)
    except OSError:
        with open(weights, "rb") as src, open(tmp, "wb") as out:
            while True:
                chunk = src.read(1 << 20)
                if not chunk:
                    break
                out.write(chunk)
    os.replace(tmp, dst)
    for extra in (".int8.json",):  # int8 calibration beside the weights, when there is one
        if os.path.exists(weights + extra):
            with open(weights + extra, "rb") as src, open(dst + extra, "wb") as out:
                out.write(src.read())
    return dst


def clean_env():
    """This environment without VGGSERVE_* settings (they would change the server's)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("VGGSERVE_")}


def cli_classify(binary, weights, k, images=(), tensor=None, threads=1):
    """`vggserve classify --weights W --top-k K --all` on images or a .npy tensor: one dict per
    image, {"top": [(class_id, probability)], "probabilities": [...]}."""
    cmd = [binary, "classify", "--weights", weights, "--top-k", str(k), "--all",
           "--threads", str(threads)]
    cmd += ["--tensor", tensor] if tensor else list(images)
    p = subprocess.run(cmd, capture_output=True, text=True, env=clean_env(), timeout=600)
    if p.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(cmd), p.stderr.strip()))
    out = []
    for line in p.stdout.splitlines():
        j = json.loads(line)
        out.append({"top": [(t["class_id"], t["probability"]) for t in j["top_k"]],
                    "probabilities": j.get("probabilities")})
    return out


def proc_status(pid, field):
    """/proc/PID/status's FIELD (VmRSS, VmHWM) in KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError("no %s for pid %d" % (field, pid))


def reset_peak(pid):
    """Resets VmHWM to the current RSS (writing 5 to clear_refs, Linux 4.0+)."""
    with open("/proc/%d/clear_refs" % pid, "w") as f:
        f.write("5")


class Server:
    """`vggserve serve FLAGS --host 127.0.0.1 --port 0`, its events in WORKDIR/server.err."""

    def __init__(self, binary, flags, workdir, name="server"):
        self.err_path = os.path.join(workdir, name + ".err")
        self.out_path = os.path.join(workdir, name + ".access.log")
        with open(self.err_path, "wb") as err, open(self.out_path, "wb") as out:
            self.proc = subprocess.Popen([binary, "serve", "--host", "127.0.0.1", "--port", "0",
                                          *flags], stdout=out, stderr=err, env=clean_env())
        self.pid = self.proc.pid
        self.port = None
        deadline = time.monotonic() + 60
        while self.port is None:
            if self.proc.poll() is not None:
                raise RuntimeError("vggserve exited (%d): %s" % (self.proc.returncode,
                                                                 self.stderr()[-2000:]))
            if time.monotonic() > deadline:
                raise RuntimeError("vggserve not listening in 60 s: " + self.stderr()[-2000:])
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", self.stderr())
            if m:
                self.port = int(m.group(1))
            else:
                time.sleep(0.05)
        self.address = "127.0.0.1:%d" % self.port

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def alive(self):
        return self.proc.poll() is None

    def wait_ready(self, timeout=300):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError("vggserve exited: " + self.stderr()[-2000:])
            try:
                if self.request("GET", "/v2/health/ready", timeout=5)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("vggserve not ready in %d s" % timeout)

    def request(self, method, path, body=None, headers=None, timeout=600):
        """(status, body bytes) of one request on a new connection."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def index(self):
        status, body = self.request("POST", "/v2/repository/index", b"{}")
        if status != 200:
            raise RuntimeError("index: %d %r" % (status, body[:300]))
        return json.loads(body)

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
