"""capture.py BINARY OUTDIR WORKDIR ROOT - the HTTP half of tests/golden/capture.sh.

Starts `vggserve serve` (generated VGG11 weights, batches of one, one worker, fixed threads)
on a free loopback port, sends a fixed list of requests one at a time, each on its own
connection with `Connection: close`, and writes for each NNN-NAME.req (what was sent; bodies
as length + sha256), NNN-NAME.head (status line and headers as received, in order) and
NNN-NAME.body (the body, de-chunked). Then the same against a second server with a bearer
token and an admin port.

Normalised, because they change from run to run (everything else is kept byte for byte):
  headers  Date; X-Request-Id and traceparent's span (kept when the client sent them);
           Content-Length when the body was normalised;
  bodies   "timing_ms" objects, "request_id" values (unless the client chose them), every
           number in v2 statistics (they are counted as connections complete, so a later
           request may or may not see one), and /metrics reduced to its comments and sample
           names with labels (no values).
Standard library only."""
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

BINARY, OUT, WORK, ROOT = sys.argv[1:5]
IMAGES = os.path.join(ROOT, "tests", "data", "images")
BAD = os.path.join(ROOT, "tests", "data", "bad_inputs")
BOUNDARY = "golden-boundary-5c1e"
TOKEN = "golden-token-0123456789"
SERVER_FLAGS = ["--model", "vgg11", "--max-batch-size", "1", "--workers", "1",
                "--threads-per-worker", "2", "--http-threads", "2", "--max-images-per-request", "3",
                "--max-body-bytes", "4194304", "--shutdown-grace-s", "10",
                "--cors-allowed-origins", "https://app.example"]


def read(path):
    with open(path, "rb") as f:
        return f.read()


def img(name):
    return read(os.path.join(IMAGES, name))


def bad(name):
    return read(os.path.join(BAD, name))


def multipart(files, close=True):
    b = BOUNDARY.encode()
    out = []
    for i, (filename, ctype, data) in enumerate(files):
        out += [b"--" + b + b"\r\n",
                b'Content-Disposition: form-data; name="image%d"; filename="%s"\r\n'
                % (i, filename.encode()),
                b"Content-Type: %s\r\n\r\n" % ctype.encode(), data, b"\r\n"]
    if close:
        out.append(b"--" + b + b"--\r\n")
    return b"".join(out), "multipart/form-data; boundary=" + BOUNDARY


# ---------------------------------------------------------------- the server

class Server:
    def __init__(self, name, flags):
        self.name = name
        self.err_path = os.path.join(WORK, name + ".err")
        with open(self.err_path, "wb") as err, open(os.devnull, "wb") as null:
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith("VGGSERVE_") and k != "OMP_NUM_THREADS"}
            self.proc = subprocess.Popen([BINARY, "serve", "--port", "0", *SERVER_FLAGS, *flags],
                                         stdout=null, stderr=err, stdin=subprocess.DEVNULL,
                                         env=env)
        self.port = self.wait_for(r"listening on http://[\d.]+:(\d+)")
        self.admin_port = None
        if "--admin-port" in flags:
            self.admin_port = self.wait_for(r"admin listener on [\d.]+:(\d+)")
        # Ready by its log line, not by polling /readyz: a 503 while loading would show in
        # the request counters.
        self.wait_for(r"ready in [\d.]+ s: (\d+) worker")

    def wait_for(self, pattern):
        deadline = time.monotonic() + 300
        while True:
            m = re.search(pattern, read(self.err_path).decode("utf-8", "replace"))
            if m:
                return int(m.group(1))
            if self.proc.poll() is not None or time.monotonic() > deadline:
                sys.exit("capture.py: %s: no %r\n%s" % (self.name, pattern,
                                                        read(self.err_path).decode()))
            time.sleep(0.05)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(60)
        if rc != 0:
            sys.exit("capture.py: %s exited %d\n%s" % (self.name, rc, read(self.err_path).decode()))


def exchange(port, raw, timeout=120):
    """Sends raw bytes on a new connection, reads until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early (413) and closed; read what it said
        chunks = []
        try:
            while True:
                c = s.recv(65536)
                if not c:
                    break
                chunks.append(c)
        except ConnectionResetError:
            pass
        return b"".join(chunks)


# ---------------------------------------------------------------- normalisation

def dechunk(body):
    out, rest = [], body
    while rest:
        line, _, rest = rest.partition(b"\r\n")
        n = int(line.split(b";")[0], 16)
        if n == 0:
            break
        out.append(rest[:n])
        rest = rest[n + 2:]
    return b"".join(out)


TIMING = re.compile(rb'"timing_ms"\s*:\s*\{[^{}]*\}')
REQUEST_ID = re.compile(rb'"request_id"\s*:\s*"[^"]*"')
NUMBER = re.compile(rb'(?<=:)(\s*)-?\d+(\.\d+)?([eE][-+]?\d+)?')


def normalise_body(path, body, client_id):
    new = TIMING.sub(b'"timing_ms":"<timing>"', body)
    if client_id is None:
        new = REQUEST_ID.sub(b'"request_id":"<request-id>"', new)
    if re.match(r"^/v2/models/([^/]+/)*stats$", path.split("?")[0]):
        new = NUMBER.sub(rb"\1<n>", new)
    if path.startswith("/metrics") and not new.startswith(b"{"):
        new = metric_names(new)
    return new


def metric_names(text):
    """The comments, then each sample's name and label keys once, sorted: which samples
    exist depends on which requests have been counted yet, their values on timing."""
    comments, samples = [], set()
    for line in text.decode().splitlines():
        if line.startswith("#"):
            comments.append(line)
        elif line:
            m = re.match(r"([^{ ]+)(\{.*\})?\s", line)
            keys = re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(2) or "")
            samples.add(m.group(1) + ("{%s}" % ",".join(keys) if keys else ""))
    return ("\n".join(comments + sorted(samples)) + "\n").encode()


def split_response(raw):
    """(head, body) of an answer; interim 100 Continue heads stay in the head."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return raw, b""
    last = head
    while last.startswith(b"HTTP/1.1 100") and sep:
        last, sep, body = body.partition(b"\r\n\r\n")
        head += b"\r\n\r\n" + last
    lines = head.split(b"\r\n")
    if any(l.lower() == b"transfer-encoding: chunked" for l in lines[1:]):
        body = dechunk(body)
    return head, body


def record(n, name, port, method, path, headers=(), body=None, raw=None):
    """One request: its description, the answer's head and body, normalised."""
    if raw is None:
        h = [("Host", "127.0.0.1"), *headers, ("Connection", "close")]
        if body is not None and not any(k.lower() in ("content-length", "transfer-encoding")
                                        for k, _ in h):
            h.append(("Content-Length", str(len(body))))
        raw = ("%s %s HTTP/1.1\r\n" % (method, path)).encode() + b"".join(
            ("%s: %s\r\n" % kv).encode() for kv in h) + b"\r\n" + (body or b"")
    else:  # the path as the server reads it, for normalise_body
        path = (raw.split(b"\r\n")[0].split(b" ") + [b"", b""])[1].decode("latin-1")
    head, resp_body = split_response(exchange(port, raw))
    sent = dict((k.lower(), v) for k, v in headers)
    client_id = sent.get("x-request-id")
    new_body = normalise_body(path, resp_body, client_id)
    lines = head.decode("latin-1").split("\r\n")
    out_lines = [lines[0]]
    for line in lines[1:]:
        if line.startswith("HTTP/") or ":" not in line:  # after an interim 100 Continue
            out_lines.append(line)
            continue
        k, _, v = line.partition(":")
        key, v = k.lower(), v.strip()
        if key == "date":
            continue
        if key == "x-request-id" and client_id is None:
            v = "<request-id>"
        elif key == "traceparent":
            parts = v.split("-")
            if "traceparent" not in sent and len(parts) == 4:
                parts[1] = "<trace-id>"
            if len(parts) == 4:
                parts[2] = "<span-id>"
            v = "-".join(parts)
        elif key == "content-length" and new_body != resp_body:
            v = "<normalised>"
        out_lines.append("%s: %s" % (k, v))
    stem = os.path.join(OUT, "%03d-%s" % (n, name))
    desc = raw.partition(b"\r\n\r\n")[0].decode("latin-1")
    req_body = raw.partition(b"\r\n\r\n")[2]
    if req_body:
        desc += "\n\n[body: %d bytes, sha256 %s]" % (len(req_body),
                                                     hashlib.sha256(req_body).hexdigest())
    with open(stem + ".req", "w") as f:
        f.write(desc + "\n")
    with open(stem + ".head", "w") as f:
        f.write("\n".join(out_lines) + "\n")
    with open(stem + ".body", "wb") as f:
        f.write(new_body)


# ---------------------------------------------------------------- the requests

def b64(data):
    import base64
    return base64.b64encode(data).decode()


def v2_image_input(photos):
    return {"name": "image", "datatype": "BYTES", "shape": [len(photos)],
            "data": [b64(p) for p in photos]}


def binary_body(header, data):
    h = json.dumps(header).encode()
    return h + data, [("Content-Type", "application/octet-stream"),
                      ("Inference-Header-Content-Length", str(len(h)))]


def requests_main():
    """(name, method, path, headers, body) or (name, raw bytes) of the main server."""
    cat, coffee, rocket = img("chelsea.jpg"), img("coffee.jpg"), img("rocket.jpg")
    jpeg = [("Content-Type", "image/jpeg")]
    js = [("Content-Type", "application/json")]
    mp2, mp2_type = multipart([("cat.jpg", "image/jpeg", cat), ("rocket.jpg", "image/jpeg", rocket)])
    mp4, mp4_type = multipart([("a.jpg", "image/jpeg", cat)] * 4)
    mp_open, mp_open_type = multipart([("cat.jpg", "image/jpeg", cat)], close=False)
    mp_bad, mp_bad_type = multipart([("cat.jpg", "image/jpeg", cat),
                                     ("text.jpg", "image/jpeg", bad("text.txt"))])
    with open(os.path.join(WORK, "tensor.npy"), "rb") as f:
        npy = f.read()
    tensor = npy[-3 * 224 * 224 * 4:]  # the float32 payload of a (1,3,224,224) .npy
    infer = "/v2/models/vgg11/infer"
    r = []
    add = lambda name, method, path, headers=(), body=None: r.append((name, method, path, headers, body))
    # health, metrics, the demo page
    add("healthz", "GET", "/healthz")
    add("healthz-head", "HEAD", "/healthz")
    add("readyz", "GET", "/readyz")
    add("metrics", "GET", "/metrics")
    add("demo-page", "GET", "/")
    add("favicon-404", "GET", "/favicon.ico")
    add("healthz-post-405", "POST", "/healthz", [("Content-Type", "text/plain")], b"x")
    add("options-no-origin", "OPTIONS", "/classify")
    add("options-cors-preflight", "OPTIONS", "/classify",
        [("Origin", "https://app.example"), ("Access-Control-Request-Method", "POST")])
    add("options-cors-other-origin", "OPTIONS", "/classify",
        [("Origin", "https://evil.example"), ("Access-Control-Request-Method", "POST")])
    # /classify
    add("classify-jpeg", "POST", "/classify", jpeg, cat)
    add("classify-png", "POST", "/classify", [("Content-Type", "image/png")], img("chelsea.png"))
    add("classify-rgba-png", "POST", "/classify", [("Content-Type", "image/png")], img("chelsea_rgba.png"))
    add("classify-webp", "POST", "/classify", [("Content-Type", "image/webp")], bad("image.webp"))
    add("classify-top-k-1", "POST", "/classify?top_k=1", jpeg, coffee)
    add("classify-top-k-10", "POST", "/classify?top_k=10", jpeg, rocket)
    add("classify-multipart-2", "POST", "/classify", [("Content-Type", mp2_type)], mp2)
    add("classify-cors", "POST", "/classify", [*jpeg, ("Origin", "https://app.example")], cat)
    add("classify-client-ids", "POST", "/classify",
        [*jpeg, ("X-Request-Id", "golden-req-1"),
         ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")], cat)
    add("classify-gzip", "POST", "/classify?top_k=3", [*jpeg, ("Accept-Encoding", "gzip")], cat)
    add("classify-deadline-header", "POST", "/classify", [*jpeg, ("X-Request-Timeout-Ms", "60000")], cat)
    add("classify-chunked", "POST", "/classify", [*jpeg, ("Transfer-Encoding", "chunked")],
        b"%x\r\n%s\r\n0\r\n\r\n" % (len(cat), cat))
    add("classify-top-k-0-400", "POST", "/classify?top_k=0", jpeg, cat)
    add("classify-top-k-word-400", "POST", "/classify?top_k=five", jpeg, cat)
    add("classify-top-k-1001-400", "POST", "/classify?top_k=1001", jpeg, cat)
    add("classify-empty-400", "POST", "/classify", jpeg, b"")
    add("classify-multipart-unclosed-400", "POST", "/classify", [("Content-Type", mp_open_type)], mp_open)
    add("classify-multipart-no-boundary-400", "POST", "/classify",
        [("Content-Type", "multipart/form-data")], mp2)
    add("classify-multipart-4-413", "POST", "/classify", [("Content-Type", mp4_type)], mp4)
    add("classify-multipart-bad-part-415", "POST", "/classify", [("Content-Type", mp_bad_type)], mp_bad)
    add("classify-body-413", "POST", "/classify", jpeg, img("hubble_deep_field.jpg") * 9)
    add("classify-text-415", "POST", "/classify", [("Content-Type", "text/plain")], bad("text.txt"))
    add("classify-gif-415", "POST", "/classify", [("Content-Type", "image/gif")], bad("image.gif"))
    add("classify-svg-415", "POST", "/classify", [("Content-Type", "image/svg+xml")], bad("drawing.svg"))
    add("classify-truncated-png-422", "POST", "/classify", [("Content-Type", "image/png")], bad("truncated.png"))
    add("classify-huge-png-422", "POST", "/classify", [("Content-Type", "image/png")],
        bad("png_header_100000x100000.png"))
    add("classify-cmyk", "POST", "/classify", jpeg, bad("cmyk.jpg"))
    add("classify-get-405", "GET", "/classify")
    add("classify-put-405", "PUT", "/classify", jpeg, cat)
    add("classify-path-404", "POST", "/classify/extra", jpeg, cat)
    # /explain
    add("explain-json", "POST", "/explain", jpeg, cat)
    add("explain-class", "POST", "/explain?class_id=281", jpeg, cat)
    add("explain-multipart", "POST", "/explain", [("Content-Type", mp2_type)], mp2)
    add("explain-png", "POST", "/explain", [*jpeg, ("Accept", "image/png")], coffee)
    add("explain-png-class", "POST", "/explain?class_id=0", [*jpeg, ("Accept", "image/png")], cat)
    add("explain-png-multipart-400", "POST", "/explain",
        [("Content-Type", mp2_type), ("Accept", "image/png")], mp2)
    add("explain-accept-json-over-png", "POST", "/explain",
        [*jpeg, ("Accept", "application/json, image/png;q=0.5")], cat)
    add("explain-class-1000-400", "POST", "/explain?class_id=1000", jpeg, cat)
    add("explain-class-word-400", "POST", "/explain?class_id=cat", jpeg, cat)
    add("explain-get-405", "GET", "/explain")
    add("explain-text-415", "POST", "/explain", [("Content-Type", "text/plain")], bad("text.txt"))
    # /v2 metadata, health, config, stats
    for path in ["/v2", "/v2/", "/v2/health/live", "/v2/health/ready", "/v2/models/vgg11",
                 "/v2/models/vgg11/versions/1", "/v2/models/vgg11_image", "/v2/models/vgg11_tensor",
                 "/v2/models/vgg11/ready", "/v2/models/vgg11_image/versions/1/ready",
                 "/v2/models/vgg11/config", "/v2/models/vgg11_image/config",
                 "/v2/models/vgg11_tensor/config", "/v2/models/vgg11/versions/1/config"]:
        add("v2-get" + path.replace("/", "_"), "GET", path)
    add("v2-metadata-gzip", "GET", "/v2/models/vgg11/config", [("Accept-Encoding", "gzip")])
    add("v2-metadata-deflate", "GET", "/v2/models/vgg11/config", [("Accept-Encoding", "deflate")])
    add("v2-metadata-head", "HEAD", "/v2/models/vgg11")
    add("v2-metadata-cors", "GET", "/v2/models/vgg11", [("Origin", "https://app.example")])
    for path in ["/v2/models/resnet50", "/v2/models/vgg11/versions/2", "/v2/models/vgg11/versions/1/x",
                 "/v2/nothing", "/v2/models", "/v2/models/vgg11/ready/extra", "/v2x"]:
        add("v2-404" + path.replace("/", "_"), "GET", path)
    add("v2-infer-get-405", "GET", infer)
    add("v2-metadata-post-405", "POST", "/v2/models/vgg11", js, b"{}")
    add("v2-health-post-405", "POST", "/v2/health/ready", js, b"{}")
    # /v2 infer
    ij = lambda body: json.dumps(body).encode()
    add("v2-infer-json", "POST", infer, js, ij({"inputs": [v2_image_input([cat])]}))
    add("v2-infer-json-2-id", "POST", infer, js,
        ij({"id": "golden-7", "inputs": [v2_image_input([coffee, rocket])]}))
    add("v2-infer-versioned", "POST", "/v2/models/vgg11/versions/1/infer", js,
        ij({"inputs": [v2_image_input([cat])], "outputs": [{"name": "probabilities"}]}))
    add("v2-infer-n-by-1", "POST", infer, js,
        ij({"inputs": [dict(v2_image_input([cat]), shape=[1, 1])]}))
    add("v2-infer-image-view", "POST", "/v2/models/vgg11_image/infer", js,
        ij({"inputs": [v2_image_input([rocket])]}))
    data = len(cat).to_bytes(4, "little") + cat + len(rocket).to_bytes(4, "little") + rocket
    body, h = binary_body({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2],
                                       "parameters": {"binary_data_size": len(data)}}]}, data)
    add("v2-infer-binary-in", "POST", infer, h, body)
    add("v2-infer-binary-out", "POST", infer, js,
        ij({"inputs": [v2_image_input([cat])], "parameters": {"binary_data_output": True}}))
    add("v2-infer-binary-out-mixed", "POST", infer, js,
        ij({"inputs": [v2_image_input([cat])], "parameters": {"binary_data_output": True},
            "outputs": [{"name": "logits", "parameters": {"binary_data": False}},
                        {"name": "probabilities"}]}))
    add("v2-infer-classification", "POST", infer, js,
        ij({"inputs": [v2_image_input([cat, coffee])],
            "outputs": [{"name": "probabilities", "parameters": {"classification": 3}}]}))
    add("v2-infer-classification-binary", "POST", infer, js,
        ij({"inputs": [v2_image_input([cat])],
            "outputs": [{"name": "probabilities",
                         "parameters": {"classification": 2, "binary_data": True}}]}))
    explain = "/v2/models/vgg11_explain/infer"  # gradcam is the explain view's output
    add("v2-infer-err-bad-gradcam-class", "POST", explain, js,
        ij({"inputs": [v2_image_input([cat])],
            "outputs": [{"name": "gradcam", "parameters": {"class_id": 5000}}]}))
    add("v2-infer-err-gradcam-on-full-view", "POST", infer, js,
        ij({"inputs": [v2_image_input([cat])], "outputs": [{"name": "gradcam"}]}))
    add("v2-infer-gradcam", "POST", explain, js,
        ij({"inputs": [v2_image_input([cat])], "outputs": [{"name": "gradcam"}]}))
    add("v2-infer-gradcam-class", "POST", explain, js,
        ij({"inputs": [v2_image_input([cat, rocket])],
            "outputs": [{"name": "gradcam", "parameters": {"class_id": 281}},
                        {"name": "logits"}]}))
    add("v2-infer-gradcam-binary", "POST", explain, js,
        ij({"inputs": [v2_image_input([coffee])],
            "outputs": [{"name": "gradcam", "parameters": {"binary_data": True}}]}))
    spec = {"name": "input", "datatype": "FP32", "shape": [1, 3, 224, 224],
            "parameters": {"binary_data_size": len(tensor)}}
    body, h = binary_body({"inputs": [spec], "outputs": [{"name": "probabilities"}],
                           "parameters": {"binary_data_output": True}}, tensor)
    add("v2-infer-tensor-binary", "POST", infer, h, body)
    body, h = binary_body({"inputs": [spec]}, tensor)
    add("v2-infer-tensor-view", "POST", "/v2/models/vgg11_tensor/infer", h, body)
    floats = [round(x, 3) for x in __import__("array").array("f", tensor)]
    add("v2-infer-tensor-json", "POST", infer, js,
        ij({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3, 224, 224],
                        "data": floats}], "outputs": [{"name": "logits"}]}))
    add("v2-infer-gzip", "POST", infer, [*js, ("Accept-Encoding", "gzip")],
        ij({"inputs": [v2_image_input([cat])], "parameters": {"binary_data_output": True}}))
    # /v2 infer errors
    img1 = v2_image_input([cat])
    for name, bad_body in [
            ("not-json", b"{nope"), ("empty", b""), ("array", b"[]"), ("no-inputs", ij({})),
            ("inputs-empty", ij({"inputs": []})), ("two-inputs", ij({"inputs": [img1, img1]})),
            ("unknown-input", ij({"inputs": [dict(img1, name="pixels")]})),
            ("wrong-dtype", ij({"inputs": [dict(img1, datatype="FP32")]})),
            ("shape-mismatch", ij({"inputs": [dict(img1, shape=[2])]})),
            ("bad-base64", ij({"inputs": [dict(img1, data=["***"])]})),
            ("unknown-output", ij({"inputs": [img1], "outputs": [{"name": "features"}]})),
            ("bad-classification", ij({"inputs": [img1], "outputs": [
                {"name": "probabilities", "parameters": {"classification": 0}}]})),
            ("binary-output-word", ij({"inputs": [img1], "parameters": {"binary_data_output": "yes"}})),
            ("id-not-string", ij({"id": 7, "inputs": [img1]})),
            ("tensor-wrong-shape", ij({"inputs": [{"name": "input", "datatype": "FP32",
                                                    "shape": [1, 3, 2, 2], "data": [0.0] * 12}]})),
            ("too-many-images-413", ij({"inputs": [v2_image_input([cat] * 4)]})),
            ("text-image-415", ij({"inputs": [v2_image_input([b"plain text, no image"])]})),
            ("broken-image-422", ij({"inputs": [v2_image_input([bad("truncated.png")])]})),
            ("gradcam-on-image-view", None)]:
        if bad_body is None:
            add("v2-infer-err-" + name, "POST", "/v2/models/vgg11_image/infer", js,
                ij({"inputs": [img1], "outputs": [{"name": "gradcam"}]}))
        else:
            add("v2-infer-err-" + name, "POST", infer, js, bad_body)
    body, h = binary_body({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                       "parameters": {"binary_data_size": len(cat) + 4}}]},
                          len(cat).to_bytes(4, "little") + cat)
    add("v2-infer-err-binary-header-too-long", "POST", infer,
        [h[0], ("Inference-Header-Content-Length", str(len(body) + 1))], body)
    add("v2-infer-err-binary-header-negative", "POST", infer,
        [h[0], ("Inference-Header-Content-Length", "-3")], body)
    add("v2-infer-err-binary-size-short", "POST", infer, h, body[:-1])
    add("v2-infer-err-body-413", "POST", infer, js, b" " * (4194304 + 10))
    add("v2-infer-err-unknown-model", "POST", "/v2/models/resnet50/infer", js, ij({"inputs": [img1]}))
    add("v2-infer-err-version-0", "POST", "/v2/models/vgg11/versions/0/infer", js, ij({"inputs": [img1]}))
    # repository extension
    add("v2-repository-index", "POST", "/v2/repository/index", js, b"{}")
    add("v2-repository-index-ready", "POST", "/v2/repository/index", js, ij({"ready": True}))
    add("v2-repository-index-empty-body", "POST", "/v2/repository/index")
    add("v2-repository-index-get-405", "GET", "/v2/repository/index")
    add("v2-repository-load", "POST", "/v2/repository/models/vgg11/load", js, b"{}")
    add("v2-repository-unload", "POST", "/v2/repository/models/vgg11/unload", js, b"{}")
    add("v2-repository-load-other", "POST", "/v2/repository/models/resnet50/load", js, b"{}")
    add("v2-repository-bad-action", "POST", "/v2/repository/models/vgg11/reload", js, b"{}")
    add("v2-repository-nothing", "POST", "/v2/repository", js, b"{}")
    # statistics last, after the inferences
    for path in ["/v2/models/stats", "/v2/models/vgg11/stats", "/v2/models/vgg11_image/stats",
                 "/v2/models/vgg11/versions/1/stats", "/v2/models/vgg11_tensor/stats"]:
        add("v2-stats" + path.replace("/", "_"), "GET", path)
    # framing and headers
    r.append(("raw-http10", b"GET /healthz HTTP/1.0\r\n\r\n"))
    r.append(("raw-no-host", b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n"))
    r.append(("raw-bad-request-line", b"GARBAGE\r\n\r\n"))
    r.append(("raw-cl-and-te", b"POST /classify HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                               b"Content-Type: image/jpeg\r\nContent-Length: 5\r\n"
                               b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"))
    r.append(("raw-two-cl", b"POST /classify HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                            b"Content-Type: image/jpeg\r\nContent-Length: 3\r\n"
                            b"Content-Length: 4\r\n\r\nabcd"))
    r.append(("raw-cl-over-limit", b"POST /classify HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                   b"Content-Type: image/jpeg\r\nContent-Length: 99999999\r\n\r\n"))
    r.append(("raw-expect-100", b"POST /classify HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                b"Content-Type: image/jpeg\r\nContent-Length: %d\r\n"
                                b"Expect: 100-continue\r\n\r\n%s" % (len(cat), cat)))
    r.append(("raw-huge-header", b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                 b"X-Big: " + b"a" * 40000 + b"\r\n\r\n"))
    r.append(("raw-query-path", b"GET /healthz?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    r.append(("raw-metrics-query", b"GET /metrics?format=x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    return r


def requests_auth():
    cat = img("chelsea.jpg")
    jpeg = [("Content-Type", "image/jpeg")]
    good = [("Authorization", "Bearer " + TOKEN)]
    js = [("Content-Type", "application/json")]
    body = json.dumps({"inputs": [v2_image_input([cat])]}).encode()
    r = []
    add = lambda name, method, path, headers=(), body=None: r.append((name, method, path, headers, body))
    add("auth-classify-no-token-401", "POST", "/classify", jpeg, cat)
    add("auth-classify-wrong-token-401", "POST", "/classify", [*jpeg, ("Authorization", "Bearer nope")], cat)
    add("auth-classify-basic-401", "POST", "/classify", [*jpeg, ("Authorization", "Basic Zm9vOmJhcg==")], cat)
    add("auth-classify-ok", "POST", "/classify?top_k=2", [*jpeg, *good], cat)
    add("auth-explain-no-token-401", "POST", "/explain", jpeg, cat)
    add("auth-v2-infer-no-token-401", "POST", "/v2/models/vgg11/infer", js, body)
    add("auth-v2-infer-ok", "POST", "/v2/models/vgg11/infer", [*js, *good], body)
    add("auth-v2-metadata-no-token", "GET", "/v2/models/vgg11")
    add("auth-v2-repository-no-token", "POST", "/v2/repository/index", js, b"{}")
    add("auth-healthz-no-token", "GET", "/healthz")
    add("auth-metrics-no-token", "GET", "/metrics")
    add("auth-demo-page", "GET", "/")
    return r


def admin_requests():
    return [("admin-healthz", "GET", "/healthz", (), None),
            ("admin-readyz", "GET", "/readyz", (), None),
            ("admin-metrics", "GET", "/metrics", (), None),
            ("admin-classify-404", "POST", "/classify", [("Content-Type", "image/jpeg")],
             img("chelsea.jpg")),
            ("admin-v2-404", "GET", "/v2", (), None),
            ("admin-demo-404", "GET", "/", (), None)]


def send_all(port, reqs, start):
    n = start
    for req in reqs:
        if len(req) == 2:
            record(n, req[0], port, None, "", raw=req[1])
        else:
            name, method, path, headers, body = req
            record(n, name, port, method, path, list(headers), body)
        n += 1
    return n


def main():
    pre = subprocess.run([BINARY, "preprocess", os.path.join(IMAGES, "coffee.jpg"), "--out",
                          os.path.join(WORK, "tensor.npy")], capture_output=True)
    if pre.returncode != 0:
        sys.exit("capture.py: preprocess failed: " + pre.stderr.decode())
    s = Server("main", [])
    n = send_all(s.port, requests_main(), 1)
    s.stop()
    s = Server("auth", ["--auth-token", TOKEN, "--admin-port", "0", "--demo-page", "false"])
    n = send_all(s.port, requests_auth(), n)
    send_all(s.admin_port, admin_requests(), n)
    s.stop()


main()
