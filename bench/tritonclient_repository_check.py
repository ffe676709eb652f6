#!/usr/bin/env python3
"""tritonclient_repository_check.py - Triton's own, unmodified tritonclient.http drives
vggserve's model repository (issue 26, "What it must show"); every answer is compared with
`vggserve classify --weights W` on the same weights.

    PYTHONPATH=DIR_WITH_tritonclient /usr/bin/python3 bench/tritonclient_repository_check.py \
        [--binary build/vggserve] [--workdir DIR]

Run by bench/tritonclient_repository_check.sh, which lays out the tritonclient package from
Triton's client repository. It writes a repository of small models (VGG11 convolutions, a 4- or
5-class head on 32 x 32 inputs, embedded labels: alpha versions 1 and 2, beta), starts
`vggserve serve --model-repository DIR --model-control-mode explicit --load-model alpha` on
127.0.0.1, and checks, in order:
 1. get_model_repository_index: alpha's four views READY at version 1, beta UNAVAILABLE with
    its reason; is_model_ready says so too;
 2. infer on alpha: BYTES photos (alpha_image, probabilities and classification) and FP32
    tensors (alpha_tensor, `vggserve preprocess --weights` of the photos) equal to
    `vggserve classify --weights` on the photos and on the tensor (top-k classes, labels,
    probabilities);
 3. load_model / unload_model of beta: beta answers as `classify` on its weights, and the
    server's VmRSS after the unload is within 10% of its VmRSS before the load;
 4. alpha version 2 copied into the repository and load_model("alpha") while four client
    threads (a tritonclient.http client each) send photos without pause: 0 failed requests,
    every answer equal to version 1's or version 2's `classify` answer and naming that version,
    version 2's for every request sent after load_model returned;
 5. a truncated model.safetensors as version 3: load_model refused (naming version 3), the
    index shows version 3 UNAVAILABLE with the reason, version 2 keeps serving;
 6. bad model names (../x, %2e%2e, .., a/b) through load_model, unload_model and infer, and
    as literal request paths: refused (400 or 404), the server alive and answering;
 7. the KServe agent's load: tritonclient's load_model sends the body {} (seen by a local
    recording listener), and POST /v2/repository/models/gamma/load with {} on a model just
    copied in answers 200 and gamma serves as `classify` on its weights.
Then, on a second server in poll mode (`--model-control-mode poll --repository-poll-secs 1`,
its own repository with alpha version 1):
 8. the index works, load_model and unload_model are refused with Triton's words;
 9. alpha version 2 copied in (under a temporary name, then renamed) is served within 2 poll
    periods plus 1.5 s: the index says version 2 READY and infer answers as `classify` on
    version 2's weights; deleting its folder falls back to version 1 within the same time.
Prints one line per check; exits 1 at the first failure, 0 when all passed."""
import argparse
import http.server
import json
import os
import shutil
import sys
import tempfile
import threading
import time

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import repository_util as ru  # noqa: E402

CLIENTS = 4
VIEWS = ("", "_image", "_tensor", "_explain")
checks = 0


def check(ok, what, detail=""):
    global checks
    if not ok:
        print("FAIL  %s%s" % (what, ("\n      " + str(detail)) if detail else ""), flush=True)
        sys.exit(1)
    checks += 1
    print("ok    %s" % what, flush=True)


def close(got, want):
    return np.allclose(got, want, rtol=1e-3, atol=1e-5)


def refused(call):
    """The InferenceServerException call() raised, or None when it answered."""
    try:
        call()
    except InferenceServerException as e:
        return e
    return None


def photo_input(photos):
    data = np.array([open(p, "rb").read() for p in photos], dtype=np.object_)
    i = httpclient.InferInput("image", [len(photos)], "BYTES")
    i.set_data_from_numpy(data, binary_data=True)
    return i


def tensor_input(t):
    i = httpclient.InferInput("input", list(t.shape), "FP32")
    i.set_data_from_numpy(t, binary_data=True)
    return i


class Check:
    def __init__(self, args):
        self.binary = os.path.realpath(args.binary)
        self.work = args.workdir
        self.repo = os.path.join(self.work, "models")
        self.photos = sorted(os.path.join(ru.PHOTOS, f) for f in os.listdir(ru.PHOTOS))[:8]
        self.w, self.labels, self.want, self.want_tensor = {}, {}, {}, {}
        self.tensor = None

    # ---- models and the reference answers

    def make_models(self):
        for key, seed, classes in (("a1", 1, 4), ("a2", 3, 4), ("b1", 2, 5)):
            path = os.path.join(self.work, "src", key + ".safetensors")
            self.labels[key] = ["c%d_%s" % (i, key) for i in range(classes)]
            ru.small_model(path, seed, classes, self.labels[key])
            self.w[key] = path
        ru.place(self.repo, "alpha", 1, self.w["a1"])
        ru.place(self.repo, "beta", 1, self.w["b1"])
        # The FP32 tensors: `vggserve preprocess --weights` of each photo (32 x 32), stacked.
        rows = []
        for i, p in enumerate(self.photos):
            out = os.path.join(self.work, "t%d.npy" % i)
            ru.subprocess.run([self.binary, "preprocess", "--weights", self.w["a1"], p,
                               "--out", out], check=True, stdout=ru.subprocess.DEVNULL,
                              env=ru.clean_env())
            rows.append(np.load(out).astype(np.float32))
        self.tensor = np.concatenate(rows)
        npy = os.path.join(self.work, "tensors.npy")
        np.save(npy, self.tensor)
        for key in self.w:
            k = len(self.labels[key])
            self.want[key] = ru.cli_classify(self.binary, self.w[key], k, images=self.photos)
            self.want_tensor[key] = ru.cli_classify(self.binary, self.w[key], k, tensor=npy)
            check(len(self.want[key]) == len(self.photos) and
                  len(self.want_tensor[key]) == len(self.photos),
                  "`vggserve classify --weights %s.safetensors`: %d photos, %d tensors "
                  "(top class of the first photo: %d)" % (key, len(self.photos), len(self.photos),
                                                   self.want[key][0]["top"][0][0]))
        a1 = [r["top"][0][0] for r in self.want["a1"]]
        a2 = [r["top"][0][0] for r in self.want["a2"]]
        p1 = np.array([r["probabilities"] for r in self.want["a1"]])
        p2 = np.array([r["probabilities"] for r in self.want["a2"]])
        check(all(not close(x, y) for x, y in zip(p1, p2)),
              "alpha's two versions answer every photo differently (top classes %s / %s)"
              % (a1, a2))

    # ---- answers

    def same_as_cli(self, hc, model, key, what):
        """Photos on MODEL_image and tensors on MODEL_tensor, by 4, equal to classify."""
        k = len(self.labels[key])
        for view, batches in (("_image", "photos"), ("_tensor", "tensors")):
            want = self.want[key] if view == "_image" else self.want_tensor[key]
            for start in range(0, len(self.photos), 4):
                n = min(4, len(self.photos) - start)
                inp = (photo_input(self.photos[start:start + n]) if view == "_image"
                       else tensor_input(self.tensor[start:start + n]))
                r = hc.infer(model + view, [inp], outputs=[
                    httpclient.InferRequestedOutput("probabilities", binary_data=True)])
                p = r.as_numpy("probabilities")
                check(p.shape == (n, k), "%s: %s%s %s %d-%d: probabilities %s"
                      % (what, model, view, batches, start, start + n - 1, p.shape))
                for i in range(n):
                    w = want[start + i]
                    got_top = [(int(c), float(p[i, c])) for c in np.argsort(-p[i], kind="stable")]
                    check([c for c, _ in got_top] == [c for c, _ in w["top"]] and
                          close([q for _, q in got_top], [q for _, q in w["top"]]),
                          "%s: %s%s %s #%d top %d = classify's (%s)"
                          % (what, model, view, batches, start + i, k,
                             ", ".join("%d:%.4f" % cq for cq in w["top"][:2])),
                          "got %s want %s" % (got_top, w["top"]))
        # Classification strings, "score:index:label", on the photos.
        r = hc.infer(model + "_image", [photo_input(self.photos[:3])], outputs=[
            httpclient.InferRequestedOutput("probabilities", binary_data=True, class_count=2)])
        got = r.as_numpy("probabilities")
        for i in range(3):
            rows = [x.decode() if isinstance(x, bytes) else x for x in got[i]]
            parsed = [(int(s.split(":")[1]), float(s.split(":")[0]), s.split(":", 2)[2])
                      for s in rows]
            w = self.want[key][i]["top"][:2]
            check([c for c, _, _ in parsed] == [c for c, _ in w] and
                  all(abs(s - q) <= 1e-3 for (_, s, _), (_, q) in zip(parsed, w)) and
                  [lab for _, _, lab in parsed] == [self.labels[key][c] for c, _ in w],
                  "%s: %s_image classification top 2 of photo %d: %s" % (what, model, i, rows),
                  "want %s" % w)

    def which(self, probs, photo):
        """'a1' or 'a2': the one version of alpha whose classify answer probs is, else None."""
        keys = [k for k in ("a1", "a2") if close(probs, self.want[k][photo]["probabilities"])]
        return keys[0] if len(keys) == 1 else None

    # ---- the run

    def run(self):
        self.make_models()
        flags = ["--model-repository", self.repo, "--model-control-mode", "explicit",
                 "--load-model", "alpha", "--max-batch-size", "4", "--workers", "1",
                 "--http-threads", "8", "--max-images-per-request", "16",
                 "--max-queue-delay-us", "0"]
        self.server = ru.Server(self.binary, flags, self.work)
        try:
            self.server.wait_ready(120)
            self.steps()
        finally:
            self.server.stop()
        self.poll_mode()
        print("PASS: %d checks" % checks)

    # ---- poll mode

    POLL_S = 1
    POLL_DEADLINE_S = 2 * POLL_S + 1.5

    def alpha_answers_as(self, hc, key):
        r = hc.infer("alpha_image", [photo_input(self.photos[:1])], outputs=[
            httpclient.InferRequestedOutput("probabilities", binary_data=True)])
        return self.which(r.as_numpy("probabilities")[0], 0) == key

    def wait_served(self, hc, version, key):
        """Seconds until the index says alpha `version` READY (alone) and infer answers as
        `key`'s weights; None past the deadline."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < self.POLL_DEADLINE_S:
            rows = [m for m in hc.get_model_repository_index() if m["name"] == "alpha"]
            if ([(m.get("version"), m["state"]) for m in rows] == [(str(version), "READY")] and
                    self.alpha_answers_as(hc, key)):
                return time.monotonic() - t0
            time.sleep(0.05)
        return None

    def poll_mode(self):
        repo = os.path.join(self.work, "models_poll")
        ru.place(repo, "alpha", 1, self.w["a1"])
        flags = ["--model-repository", repo, "--model-control-mode", "poll",
                 "--repository-poll-secs", str(self.POLL_S), "--max-batch-size", "4",
                 "--workers", "1"]
        server = ru.Server(self.binary, flags, self.work, name="poll")
        try:
            server.wait_ready(120)
            hc = httpclient.InferenceServerClient(server.address, network_timeout=300)
            print("== poll mode: vggserve pid %d on %s, repository %s, rescans every %d s"
                  % (server.pid, server.address, repo, self.POLL_S))
            # 8. The index works; load and unload are refused with Triton's words.
            idx = hc.get_model_repository_index()
            check(any(m["name"] == "alpha" and m.get("version") == "1" and m["state"] == "READY"
                      for m in idx), "poll: index says alpha version 1 READY", idx)
            for what, call in (("load_model", lambda: hc.load_model("alpha")),
                               ("unload_model", lambda: hc.unload_model("alpha"))):
                e = refused(call)
                check(e is not None and "not allowed if polling is enabled" in str(e),
                      "poll: %s refused (%s)" % (what, e))
            check(self.alpha_answers_as(hc, "a1"), "poll: alpha answers as version 1's weights")
            # 9. A new version folder is served; deleting it falls back.
            ru.place(repo, "alpha", 2, self.w["a2"])
            took = self.wait_served(hc, 2, "a2")
            check(took is not None, "poll: version 2 served %.2f s after its folder appeared "
                  "(deadline %.1f s: 2 periods + 1.5 s)" % (took or -1, self.POLL_DEADLINE_S))
            shutil.rmtree(os.path.join(repo, "alpha", "2"))
            took = self.wait_served(hc, 1, "a1")
            check(took is not None, "poll: version 1 served again %.2f s after version 2's "
                  "folder was deleted (deadline %.1f s)" % (took or -1, self.POLL_DEADLINE_S))
            check(server.alive(), "poll: server alive at the end")
        finally:
            server.stop()

    def steps(self):
        s = self.server
        hc = httpclient.InferenceServerClient(s.address, network_timeout=300)
        print("== vggserve pid %d on %s, repository %s" % (s.pid, s.address, self.repo))

        # 1. The index with states.
        idx = hc.get_model_repository_index()
        rows = {(m["name"], m.get("version", "")): m for m in idx}
        for v in VIEWS:
            m = rows.get(("alpha" + v, "1"))
            check(m is not None and m["state"] == "READY", "index: alpha%s version 1 READY" % v, idx)
        beta = [m for m in idx if m["name"] == "beta"]
        check(len(beta) == 1 and beta[0]["state"] == "UNAVAILABLE" and beta[0].get("reason"),
              "index: beta UNAVAILABLE, reason %r" % (beta[0].get("reason") if beta else None), idx)
        check(hc.is_model_ready("alpha") is True and hc.is_model_ready("beta") is False,
              "is_model_ready: alpha True, beta False")

        # 2. Answers equal to classify on alpha version 1.
        self.same_as_cli(hc, "alpha", "a1", "alpha v1")

        # 3. A second model loaded and unloaded; the memory comes back.
        time.sleep(0.5)
        before = ru.proc_status(s.pid, "VmRSS")
        hc.load_model("beta")
        loaded = ru.proc_status(s.pid, "VmRSS")
        check(hc.is_model_ready("beta") is True, "load_model(beta): ready (RSS %d -> %d KiB)"
              % (before, loaded))
        rows = {(m["name"], m.get("version", "")): m["state"] for m in hc.get_model_repository_index()}
        check(rows.get(("beta", "1")) == "READY", "index: beta version 1 READY")
        self.same_as_cli(hc, "beta", "b1", "beta")
        hc.unload_model("beta")
        ok = False
        for _ in range(300):
            st = [m["state"] for m in hc.get_model_repository_index() if m["name"] == "beta"]
            if st and all(x == "UNAVAILABLE" for x in st):
                ok = True
                break
            time.sleep(0.1)
        check(ok and hc.is_model_ready("beta") is False, "unload_model(beta): UNAVAILABLE")
        time.sleep(0.5)
        after = ru.proc_status(s.pid, "VmRSS")
        check(after <= 1.10 * before, "RSS after the unload within 10%% of before the load: "
              "%d KiB before, %d KiB loaded, %d KiB after (%+.1f%%)"
              % (before, loaded, after, 100.0 * (after - before) / before))
        freed = os.path.getsize(self.w["b1"]) // 1024
        check(loaded - after >= freed // 2, "the unload gave back %d KiB, at least half beta's "
              "weights (%d KiB)" % (loaded - after, freed))

        # 4. Version 2 swapped in under four clients.
        self.swap(hc)

        # 5. A broken version 3.
        d = os.path.join(self.repo, "alpha", "3")
        os.makedirs(d)
        size = os.path.getsize(self.w["a2"])
        with open(self.w["a2"], "rb") as src, open(os.path.join(d, "model.safetensors"), "wb") as f:
            f.write(src.read(size // 2))
        e = refused(lambda: hc.load_model("alpha"))
        check(e is not None and "version 3" in e.message(), "load_model(alpha) with a truncated version "
              "3 refused: %s %r" % (e.status() if e else None, e.message() if e else None))
        idx = hc.get_model_repository_index()
        v3 = [m for m in idx if m["name"] == "alpha" and m.get("version") == "3"]
        check(len(v3) == 1 and v3[0]["state"] == "UNAVAILABLE" and v3[0].get("reason"),
              "index: alpha version 3 UNAVAILABLE, reason %r" % (v3[0].get("reason") if v3 else None),
              idx)
        check({"name": "alpha", "version": "2", "state": "READY"} in idx,
              "index: alpha version 2 still READY")
        r = hc.infer("alpha_image", [photo_input(self.photos[:1])])
        check(r.get_response()["model_version"] == "2" and
              self.which(r.as_numpy("probabilities")[0], 0) == "a2",
              "alpha still answers as version 2")
        self.same_as_cli(hc, "alpha", "a2", "alpha v2 after the broken load")

        # 6. Bad names.
        t1 = self.tensor[:1]
        for name in ("../x", "%2e%2e", "..", "a/b", "../alpha"):
            for what, call in (("load_model", lambda: hc.load_model(name)),
                               ("unload_model", lambda: hc.unload_model(name)),
                               ("infer", lambda: hc.infer(name, [tensor_input(t1)]))):
                e = refused(call)
                check(e is not None and e.status() in ("400", "404"),
                      "%s(%r) refused: %s %r" % (what, name, e.status() if e else None,
                                                 e.message() if e else None))
        for method, path in (("POST", "/v2/repository/models/%2e%2e/load"),
                             ("POST", "/v2/repository/models/../x/load"),
                             ("POST", "/v2/repository/models/%2e%2e%2falpha/load"),
                             ("POST", "/v2/repository/models/%2e%2e/unload"),
                             ("POST", "/v2/models/%2e%2e/infer"),
                             ("GET", "/v2/models/%2e%2e%2fmodels")):
            status, body = s.request(method, path, b"{}" if method == "POST" else None)
            check(status in (400, 404), "%s %s refused: %d %s" % (method, path, status,
                                                                    body[:80].decode("utf-8", "replace")))
        check(s.alive() and hc.is_server_live() and hc.is_model_ready("alpha"),
              "server alive and alpha ready after the bad names")
        r = hc.infer("alpha_image", [photo_input(self.photos[:1])])
        check(self.which(r.as_numpy("probabilities")[0], 0) == "a2", "alpha answers as version 2")

        # 7. The KServe agent's load.
        body = self.load_body_of_tritonclient()
        check(body == b"{}", "tritonclient's load_model sends the body %r" % body)
        ru.place(self.repo, "gamma", 1, self.w["b1"])
        status, body = s.request("POST", "/v2/repository/models/gamma/load", b"{}",
                                 {"Content-Type": "application/json"})
        check(status == 200, "POST /v2/repository/models/gamma/load {} (KServe agent): %d %r"
              % (status, body[:100]))
        check(hc.is_model_ready("gamma") is True, "gamma ready")
        self.same_as_cli(hc, "gamma", "b1", "gamma (beta's weights)")
        hc.load_model("gamma")  # again, by tritonclient: unchanged, kept
        check(hc.is_model_ready("gamma") is True, "load_model(gamma) again: 200, still ready")
        hc.unload_model("gamma")
        check(s.alive() and hc.is_server_live(), "server alive at the end")

    def swap(self, hc_main):
        stop = threading.Event()
        answers, failures = [], []
        lock = threading.Lock()

        def client(i):
            hc = httpclient.InferenceServerClient(self.server.address, network_timeout=300)
            n = 0
            while not stop.is_set():
                photo = (i + n) % len(self.photos)
                n += 1
                t0 = time.monotonic()
                try:
                    r = hc.infer("alpha_image", [photo_input([self.photos[photo]])])
                    rec = (t0, photo, r.get_response()["model_version"],
                           r.as_numpy("probabilities")[0])
                    with lock:
                        answers.append(rec)
                except Exception as e:  # noqa: BLE001  (a failure to count)
                    with lock:
                        failures.append(repr(e))
            hc.close()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        try:
            time.sleep(1.5)
            # A deployment copies the new version's folder into the repository.
            staging = os.path.join(self.work, "staging-2")
            os.makedirs(staging)
            shutil.copy(self.w["a2"], os.path.join(staging, "model.safetensors"))
            os.rename(staging, os.path.join(self.repo, "alpha", "2"))
            t_load = time.monotonic()
            hc_main.load_model("alpha")
            loaded_at = time.monotonic()
            time.sleep(1.5)
        finally:
            stop.set()
            for t in threads:
                t.join(120)
        check(not failures, "swap: %d requests by %d clients, 0 failed" % (len(answers), CLIENTS),
              failures[:5])
        kinds = [(t0, ver, self.which(p, photo)) for t0, photo, ver, p in answers]
        bad = [(ver, k) for _, ver, k in kinds if k is None or ver != k[1]]
        check(not bad, "swap: every answer is classify's answer of the version it names", bad[:5])
        n1 = sum(1 for _, _, k in kinds if k == "a1")
        n2 = sum(1 for _, _, k in kinds if k == "a2")
        late = [k for t0, _, k in kinds if t0 > loaded_at]
        check(n1 > 0 and n2 > 0, "swap: %d answers by version 1, %d by version 2 (load_model "
              "took %.2f s)" % (n1, n2, loaded_at - t_load))
        check(late and set(late) == {"a2"}, "swap: all %d requests sent after load_model "
              "returned answered by version 2" % len(late))
        rows = [(m["name"], m.get("version"), m["state"]) for m in hc_main.get_model_repository_index()
                if m["name"] == "alpha"]
        check(rows == [("alpha", "2", "READY")], "index after the swap: %s" % rows)

    def load_body_of_tritonclient(self):
        """The body tritonclient.http's load_model sends, caught by a local listener."""
        seen = {}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                n = int(self.headers.get("Content-Length", 0))
                seen["path"], seen["body"] = self.path, self.rfile.read(n)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        try:
            c = httpclient.InferenceServerClient("127.0.0.1:%d" % srv.server_address[1])
            c.load_model("gamma")
            c.close()
        finally:
            srv.shutdown()
        check(seen.get("path") == "/v2/repository/models/gamma/load",
              "tritonclient's load_model posts to %s" % seen.get("path"))
        return seen.get("body")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", default=os.path.join(ru.ROOT, "build", "vggserve"))
    ap.add_argument("--workdir", help="keep the repository and logs here (default: a temporary "
                    "directory, removed)")
    args = ap.parse_args()
    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
        Check(args).run()
    else:
        with tempfile.TemporaryDirectory(prefix="tritonclient-repo-") as d:
            args.workdir = d
            Check(args).run()


if __name__ == "__main__":
    main()
