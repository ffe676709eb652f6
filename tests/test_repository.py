#!/usr/bin/python3
"""The model repository (server/repository.h) against the real binary (run by ctest:
test_repository.py PATH/TO/vggserve).

A repository of small models (VGG11 features, a 4- or 5-class dense head on a 32 x 32 input:
loads and warms in well under a second) served with --model-control-mode explicit:
  - the index's states (READY per view, UNAVAILABLE with a reason) and the token it needs;
  - a second model loaded (no body) and unloaded, answering as `vggserve classify` on its
    weights, with the process's RSS after the unload at most 10% above the RSS before the load,
    and at least half its weights' size given back to the OS at the unload;
  - a new version swapped in while 4 client threads send requests without pause: no request
    fails, and every answer is the old version's or the new one's (`vggserve classify` on each
    file), the new one's after the load returned;
  - a broken version refused (400, the reason in the index) while the last good one serves;
  - bad model names (../x, %2e%2e, a link out of the repository) refused, the server alive;
  - the KServe agent's load (POST {} to a model it just copied into the repository) and a
    config override in the load body.
With --model-control-mode poll --repository-poll-secs 1 (class Poll):
  - the index works, load and unload answer 400 with Triton's words;
  - a half-written newest version at start is skipped and the previous one serves;
  - a new version folder is served within 2 poll periods (plus its load), and deleting it
    falls back to the previous version (the old weights' answers);
  - a truncated model.safetensors is not tried (no failure in the index, the old version
    serves), and is served once the rest of it is written;
  - a version that fails to build keeps the old one serving with its reason in the index, and
    is not retried at every scan;
  - a new model folder is served, a removed one unloaded (404, gone from the index);
  - a model.safetensors replaced in place is reloaded, the old file serving until then (no
    fall back to an older version meanwhile).
With --swap-policy memory (class SwapPolicyMemory): a load unloads and frees the serving
version before building the new one (the log's order says so), and the new one serves.
Observability (RepositoryObservability, its own server with two models loaded at start):
  - /metrics carries model and version labels for each loaded version (requests, images,
    phases, batches by size, queue wait and forward time, queue depth), and Triton's
    statistics report each model's and version's own counts;
  - vggserve_model_state and vggserve_model_load_seconds, and the load, swap and unload events
    with their durations in the event log;
  - an unloaded model's series leave /metrics, a swapped-out version's too; promtool accepts
    the scrape (when it is installed).
Standard library and numpy only; run with /usr/bin/python3."""
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import unittest

import numpy as np

import service_util as su

sys.path.insert(0, os.path.join(su.ROOT, "scripts"))
from safetensors_write import write_safetensors  # noqa: E402
import small_vgg  # noqa: E402

BIN = su.binary_from_argv()
TOKEN = "sesame"
FLAGS = ["--max-batch-size", "1", "--workers", "1", "--threads-per-worker", "1",
         "--http-threads", "2", "--shutdown-grace-s", "10", "--max-queue-delay-us", "0"]
def small_model(path, seed, classes, labels=None):
    """scripts/small_vgg.py's model on 32 x 32 inputs, with a head of N(0, 0.25) weights."""
    small_vgg.small_model(path, seed, classes, labels, head_scale=0.5)


def cli_top(weights, image_path, k):
    """`vggserve classify --weights FILE IMAGE --top-k k`: [(class_id, probability)]."""
    p = su.subprocess.run([BIN, "classify", "--weights", weights, "--top-k", str(k), image_path,
                           "--threads", "1"], capture_output=True, text=True, env=su.clean_env(),
                          timeout=120)
    assert p.returncode == 0, p.stderr
    return [(t["class_id"], t["probability"]) for t in json.loads(p.stdout)["top_k"]]


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class RepoHelpers:
    """Requests and checks shared by the classes below (they set cls.server and cls.want)."""

    def post(self, path, body=b"", **kw):
        return self.server.request("POST", path, body=body, **kw)

    def index(self):
        r = self.post("/v2/repository/index", b"{}")
        self.assertEqual(r.status, 200, r)
        return r.json()

    def rows(self, name):
        return [m for m in self.index() if m["name"] == name]

    def classify(self, model, k):
        r = self.server.classify(self.photo, query="?model=%s&top_k=%d" % (model, k))
        return r, ([(t["class_id"], t["probability"]) for t in r.json()["predictions"][0]["top_k"]]
                   if r.status == 200 else None)

    def assertSameTop(self, got, want, what=""):
        self.assertEqual([c for c, _ in got], [c for c, _ in want], what)
        np.testing.assert_allclose([p for _, p in got], [p for _, p in want], rtol=1e-3, atol=1e-5,
                                   err_msg=what)

    def which(self, got, keys=("a1", "a2")):
        """The one key of the weights whose CLI answer got is (of keys); None when none or
        several match (then the answer cannot tell the versions apart)."""
        matches = []
        for key in keys:
            try:
                self.assertSameTop(got, self.want[key])
                matches.append(key)
            except AssertionError:
                pass
        return matches[0] if len(matches) == 1 else None

    @classmethod
    def setup_repository(cls, keys):
        """cls.repo (empty), the photo, and the small models of keys with their answers."""
        cls.repo = os.path.join(cls.tmp.name, "models")
        cls.photo_path = os.path.join(su.IMAGES, "chelsea.jpg")
        cls.photo = su.image("chelsea.jpg")
        make_weights(cls, keys)

    @classmethod
    def place(cls, model, version, key):
        """DIR/model/version/model.safetensors appears whole (a hard link of key's file)."""
        d = os.path.join(cls.repo, model, str(version))
        os.makedirs(d, exist_ok=True)
        os.link(cls.w[key], os.path.join(d, "model.safetensors"))

    def wait_unloaded(self, name):
        ok = su.wait_for(lambda: all(m["state"] == "UNAVAILABLE" for m in self.rows(name)), 30)
        self.assertTrue(ok, self.index())


class Repository(RepoHelpers, su.ServerTestCase):
    binary = BIN

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.repo = os.path.join(cls.tmp.name, "models")
        cls.w = {}
        for key, model, version, seed, classes in (("a1", "alpha", 1, 1, 4), ("a2", "alpha", 2, 3, 4),
                                                   ("b1", "beta", 1, 2, 5)):
            path = os.path.join(cls.tmp.name, "src", "%s.safetensors" % key)
            small_model(path, seed, classes, labels=["c%d_%s" % (i, key) for i in range(classes)])
            cls.w[key] = path
        for key, model in (("a1", "alpha"), ("b1", "beta")):
            os.makedirs(os.path.join(cls.repo, model, "1"))
            os.link(cls.w[key], os.path.join(cls.repo, model, "1", "model.safetensors"))
        cls.photo_path = os.path.join(su.IMAGES, "chelsea.jpg")
        cls.photo = su.image("chelsea.jpg")
        cls.want = {k: cli_top(cls.w[k], cls.photo_path, 4) for k in ("a1", "a2")}
        cls.want["b1"] = cli_top(cls.w["b1"], cls.photo_path, 5)
        assert versions_differ(cls.want), "a1 and a2 answer alike: no test could tell them apart"
        cls.start_shared_server("repo", [*FLAGS, "--model-repository", cls.repo,
                                         "--model-control-mode", "explicit", "--load-model",
                                         "alpha", "--auth-token", TOKEN],
                                env=su.SMALL_ASAN_QUARANTINE)  # the unload's RSS check
        cls.server.token = TOKEN

    # ---- 1. the index and the token

    def test_1_index_states_and_token(self):
        idx = self.index()
        self.assertEqual([m for m in idx if m["name"].startswith("alpha")],
                         [{"name": n, "version": "1", "state": "READY"}
                          for n in ("alpha", "alpha_image", "alpha_tensor", "alpha_explain")])
        beta = [m for m in idx if m["name"] == "beta"]
        self.assertEqual(len(beta), 1, idx)
        self.assertEqual(beta[0]["state"], "UNAVAILABLE")
        self.assertIn("not loaded", beta[0]["reason"])
        for path in ("/v2/repository/index", "/v2/repository/models/beta/load"):
            self.assertEqual(self.post(path, auth=False).status, 401, path)
        r, _ = self.classify("beta", 5)
        self.assertError(r, 503)
        self.assertIn("'beta' is not loaded", r.body.decode())  # not "unloading", once it is done
        r, _ = self.classify("nosuch", 5)
        self.assertError(r, 404)
        r = self.server.request("GET", "/v2/models/alpha/versions/7")
        self.assertEqual(r.status, 404, r)

    # ---- 2. a second model: load, answers, unload, memory

    def test_2_load_and_unload_a_second_model(self):
        pid = self.server.proc.pid
        time.sleep(0.5)
        before = rss_kib(pid)
        r = self.post("/v2/repository/models/beta/load")  # no body
        self.assertEqual(r.status, 200, r)
        loaded = rss_kib(pid)
        self.assertEqual([(m["name"], m["state"]) for m in self.rows("beta")], [("beta", "READY")])
        r, got = self.classify("beta", 5)
        self.assertEqual(r.status, 200, r)
        self.assertSameTop(got, self.want["b1"], "beta")
        self.assertEqual(r.json()["model"], "beta")
        self.assertEqual(r.json()["predictions"][0]["top_k"][0]["label"],
                         "c%d_b1" % self.want["b1"][0][0])
        meta = self.server.request("GET", "/v2/models/beta").json()
        self.assertEqual((meta["name"], meta["versions"], meta["outputs"][0]["shape"]),
                         ("beta", ["1"], [-1, 5]))
        r, got = self.classify("alpha", 4)  # the first model still answers as its own
        self.assertSameTop(got, self.want["a1"], "alpha")
        r = self.post("/v2/repository/models/beta/unload")
        self.assertEqual(r.status, 200, r)
        self.wait_unloaded("beta")
        r, _ = self.classify("beta", 5)
        self.assertError(r, 503)
        time.sleep(0.5)
        after = rss_kib(pid)
        # Back within 10% of before the load (the loader's malloc_trim may even return pages
        # older than the load: lower is fine), and the network's memory itself went back to
        # the OS: at least half the weights file's size left the RSS at the unload.
        what = "RSS %d KiB before the load, %d KiB loaded, %d KiB after the unload" % (
            before, loaded, after)
        # Under ASan its allocator keeps up to the 16 MiB quarantine and the shadow of the
        # freed weights (an eighth of them) resident: that is ASan's, not the service's.
        slack = (16 * 1024 + os.path.getsize(self.w["b1"]) / 8 / 1024
                 if su.built_with_asan(BIN) else 0)
        self.assertLessEqual(after, 1.10 * before + slack, what)
        self.assertGreaterEqual(loaded - after, 0.5 * os.path.getsize(self.w["b1"]) / 1024, what)

    # ---- 3. a new version swapped in under load

    def test_3_swap_under_load(self):
        stop = threading.Event()
        answers, failures = [], []
        lock = threading.Lock()

        def client(i):
            while not stop.is_set():
                try:
                    t0 = time.monotonic()
                    r, got = self.classify("alpha", 4)
                    with lock:
                        if r.status == 200:
                            answers.append((t0, got))
                        else:
                            failures.append((r.status, r.body[:200]))
                except Exception as e:  # noqa: BLE001  (a failure to count, not to raise)
                    with lock:
                        failures.append(repr(e))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        try:
            time.sleep(1.0)
            os.makedirs(os.path.join(self.repo, "alpha", "2"))
            os.link(self.w["a2"], os.path.join(self.repo, "alpha", "2", "model.safetensors"))
            r = self.post("/v2/repository/models/alpha/load", b"{}")
            loaded_at = time.monotonic()
            self.assertEqual(r.status, 200, r)
            time.sleep(1.0)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        self.assertEqual(failures, [])
        kinds = [(t0, self.which(got)) for t0, got in answers]
        self.assertNotIn(None, [k for _, k in kinds], "an answer from neither version")
        self.assertIn("a1", [k for _, k in kinds])
        late = [k for t0, k in kinds if t0 > loaded_at]
        self.assertTrue(late, "no request after the load")
        self.assertEqual(set(late), {"a2"}, "requests sent after the load answered by the old one")
        self.assertEqual([(m["name"], m["version"], m["state"]) for m in self.rows("alpha")],
                         [("alpha", "2", "READY")])

    # ---- 4. a broken version

    def test_4_broken_version_refused_last_good_serves(self):
        d = os.path.join(self.repo, "alpha", "3")
        os.makedirs(d)
        with open(os.path.join(d, "model.safetensors"), "wb") as f:
            f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"broken\": tru}")
        r = self.post("/v2/repository/models/alpha/load")
        self.assertEqual(r.status, 400, r)
        self.assertIn("version 3", r.json()["error"])
        rows = self.rows("alpha")
        self.assertIn(("alpha", "2", "READY"), [(m["name"], m.get("version"), m["state"]) for m in rows])
        bad = [m for m in rows if m.get("version") == "3"]
        self.assertEqual([m["state"] for m in bad], ["UNAVAILABLE"], rows)
        self.assertIn("model.safetensors", bad[0]["reason"])
        r, got = self.classify("alpha", 4)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.which(got), "a2")
        r = self.server.request("GET", "/v2/models/alpha/versions/2/ready")
        self.assertEqual(r.status, 200, r)

    # ---- 5. names that are no model

    def test_5_bad_names_refused(self):
        # A link out of the repository to a complete model: only the inside-the-repository
        # check can refuse it.
        outside = os.path.join(self.tmp.name, "outside")
        os.makedirs(os.path.join(outside, "1"), exist_ok=True)
        os.link(self.w["b1"], os.path.join(outside, "1", "model.safetensors"))
        os.symlink(outside, os.path.join(self.repo, "escape"))
        for name in ("..", "../x", "%2e%2e", "%2e%2e%2fsrc", ".hidden", "a%00b", "escape",
                     "x" * 300):
            for action in ("load", "unload"):
                r = self.post("/v2/repository/models/%s/%s" % (name, action))
                self.assertIn(r.status, (400, 404), (name, action, r))
            r, _ = self.classify(name, 4)
            self.assertIn(r.status, (400, 404), (name, r))
        # A name too long is refused whole (400), never cut to one that might exist.
        r, _ = self.classify("x" * 64, 4)
        self.assertEqual(r.status, 400, r)
        self.assertTrue(self.server.healthy())
        self.assertNotIn("escape", [m["name"] for m in self.index()])
        r, got = self.classify("alpha", 4)
        self.assertEqual(r.status, 200, r)

    # ---- 6. the KServe agent's load, and a config override

    def test_6_kserve_agent_load_and_config_override(self):
        os.makedirs(os.path.join(self.repo, "gamma", "1"))
        os.link(self.w["b1"], os.path.join(self.repo, "gamma", "1", "model.safetensors"))
        r = self.post("/v2/repository/models/gamma/load", b"{}",
                      headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 200, r)
        r, got = self.classify("gamma", 5)
        self.assertSameTop(got, self.want["b1"], "gamma")
        body = json.dumps({"parameters": {"config": json.dumps({"max_batch_size": 2})}})
        r = self.post("/v2/repository/models/gamma/load", body.encode())
        self.assertEqual(r.status, 200, r)
        cfg = self.server.request("GET", "/v2/models/gamma/config").json()
        self.assertEqual(cfg["dynamic_batching"]["preferred_batch_size"], [2], cfg)
        for bad in ({"parameters": {"config": "{\"bogus\": 1}"}},
                    {"parameters": {"file:1/model.safetensors": "AAAA"}}, [1]):
            r = self.post("/v2/repository/models/gamma/load", json.dumps(bad).encode())
            self.assertEqual(r.status, 400, (bad, r))
        r = self.post("/v2/repository/models/gamma/unload")
        self.assertEqual(r.status, 200, r)
        self.wait_unloaded("gamma")


POLL_S = 1
# A poll serves a version once its file is complete and unchanged over one rescan: at most 2
# periods after it appears, plus its load (these models load in well under a second).
POLL_DEADLINE_S = 2 * POLL_S + 1.5
POLL_TRITON_REFUSAL = "explicit model load / unload is not allowed if polling is enabled"


def versions_differ(want):
    """Whether alpha's two versions (a1, a2) answer the photo differently, so that an answer
    tells which version gave it (RepoHelpers.which)."""
    (c1, p1), (c2, p2) = zip(*want["a1"]), zip(*want["a2"])
    return c1 != c2 or not np.allclose(p1, p2, rtol=1e-3, atol=1e-5)


def make_weights(cls, keys):
    """Writes the small models of keys ((key, seed, classes)) under cls.tmp/src and their
    `vggserve classify` answers into cls.want."""
    cls.w, cls.want = {}, {}
    for key, seed, classes in keys:
        path = os.path.join(cls.tmp.name, "src", "%s.safetensors" % key)
        small_model(path, seed, classes)
        cls.w[key] = path
        cls.want[key] = cli_top(path, cls.photo_path, classes)
    if "a1" in cls.want and "a2" in cls.want:
        assert versions_differ(cls.want), "a1 and a2 answer alike: no test could tell them apart"


class Poll(RepoHelpers, su.ServerTestCase):
    binary = BIN

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_repository((("a1", 1, 4), ("a2", 3, 4), ("a3", 4, 4), ("b1", 2, 5)))
        cls.place("alpha", 1, "a1")
        # delta's newest version is half-written at start: skipped, version 1 serves.
        cls.place("delta", 1, "b1")
        os.makedirs(os.path.join(cls.repo, "delta", "2"))
        with open(cls.w["a2"], "rb") as f, \
                open(os.path.join(cls.repo, "delta", "2", "model.safetensors"), "wb") as out:
            out.write(f.read()[:100000])
        cls.start_shared_server("poll", [*FLAGS, "--model-repository", cls.repo,
                                         "--model-control-mode", "poll",
                                         "--repository-poll-secs", str(POLL_S)])

    def wait_answer(self, model, key, classes=4, within=POLL_DEADLINE_S, before=None):
        """Seconds until model answers with key's weights; fails after `within`, or when an
        answer meanwhile is neither key's nor (before given) before's."""
        t0 = time.monotonic()
        last = None
        while time.monotonic() - t0 < within + 5:
            r, got = self.classify(model, classes)
            last = (r.status, got and self.which(got, (key,) + ((before,) if before else ())))
            if before and r.status == 200:
                self.assertIn(last[1], (key, before), "an answer from other weights")
            if last == (200, key):
                took = time.monotonic() - t0
                self.assertLessEqual(took, within, "%s answered as %s only after %.2f s"
                                     % (model, key, took))
                return took
            time.sleep(0.05)
        self.fail("%s never answered as %s (last: %s)\n%s"
                  % (model, key, last, self.server.tail()))

    def test_1_index_works_load_and_unload_refused(self):
        self.assertEqual([(m["name"], m["version"], m["state"]) for m in self.rows("alpha")],
                         [("alpha", "1", "READY")])
        for action in ("load", "unload"):
            r = self.post("/v2/repository/models/alpha/" + action, b"{}")
            self.assertEqual(r.status, 400, r)
            self.assertEqual(r.json()["error"], POLL_TRITON_REFUSAL)
        r, got = self.classify("alpha", 4)
        self.assertEqual(self.which(got), "a1")

    def test_1_incomplete_file_at_start_skipped(self):
        r, got = self.classify("delta", 5)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.which(got, ("b1",)), "b1")
        self.assertIn("model delta version 2: ", self.server.stderr())
        self.assertIn("left to the rescans", self.server.stderr())
        self.assertEqual([(m["version"], m["state"]) for m in self.rows("delta")],
                         [("1", "READY")])

    def test_2_new_version_served_then_deleted_falls_back(self):
        self.place("alpha", 2, "a2")
        took = self.wait_answer("alpha", "a2")
        print("poll: version 2 served %.2f s after its folder appeared (period %d s)"
              % (took, POLL_S), file=sys.stderr)
        self.assertEqual([(m["version"], m["state"]) for m in self.rows("alpha")],
                         [("2", "READY")])
        shutil.rmtree(os.path.join(self.repo, "alpha", "2"))
        took = self.wait_answer("alpha", "a1")
        print("poll: version 1 served again %.2f s after version 2 was deleted" % took,
              file=sys.stderr)
        self.assertEqual([(m["version"], m["state"]) for m in self.rows("alpha")],
                         [("1", "READY")])

    def test_3_truncated_file_waits_until_complete(self):
        with open(self.w["a2"], "rb") as f:
            data = f.read()
        d = os.path.join(self.repo, "alpha", "3")
        os.makedirs(d)
        path = os.path.join(d, "model.safetensors")
        with open(path, "wb") as f:
            f.write(data[:len(data) // 2])  # the header and half the tensors
        time.sleep(2.5 * POLL_S)  # seen, then unchanged over a rescan: checked, not complete
        self.assertEqual([(m["version"], m["state"]) for m in self.rows("alpha")],
                         [("1", "READY")], "a half-written file was tried")
        r, got = self.classify("alpha", 4)
        self.assertEqual(self.which(got), "a1")
        self.assertNotIn("version 3", self.server.stderr())
        with open(path, "ab") as f:
            f.write(data[len(data) // 2:])
        self.wait_answer("alpha", "a2", before="a1")
        self.assertEqual([(m["version"], m["state"]) for m in self.rows("alpha")],
                         [("3", "READY")])

    def test_4_failed_version_keeps_serving_not_retried(self):
        # Complete as a file (size = header + data), but no VGG: its build fails.
        path = os.path.join(self.tmp.name, "src", "bogus.safetensors")
        write_safetensors(path, [("bogus.weight", np.zeros((3, 3)))], {})
        d = os.path.join(self.repo, "alpha", "4")
        os.makedirs(d)
        self.addCleanup(shutil.rmtree, d, ignore_errors=True)  # later tests need it gone
        os.link(path, os.path.join(d, "model.safetensors"))
        ok = su.wait_for(lambda: [m for m in self.rows("alpha") if m.get("version") == "4"
                                  and m["state"] != "LOADING"], POLL_DEADLINE_S + 5)
        self.assertTrue(ok, self.index())
        self.assertEqual([m["state"] for m in ok], ["UNAVAILABLE"], ok)
        self.assertIn("model.safetensors", ok[0]["reason"])
        tries = self.server.stderr().count("model alpha version 4: loading")
        self.assertEqual(tries, 1, self.server.tail())
        time.sleep(2.5 * POLL_S)  # two more rescans
        self.assertEqual(self.server.stderr().count("model alpha version 4: loading"), 1,
                         "a failed version retried at every rescan")
        r, got = self.classify("alpha", 4)
        self.assertEqual(self.which(got), "a2", "the last good version stopped serving")
        shutil.rmtree(d)  # what serves is the target again: the failure row goes
        ok = su.wait_for(lambda: [(m["version"], m["state"]) for m in self.rows("alpha")]
                         == [("3", "READY")], POLL_DEADLINE_S)
        self.assertTrue(ok, self.index())

    def test_5_model_folder_added_then_removed(self):
        r, _ = self.classify("beta", 5)
        self.assertEqual(r.status, 404, r)
        self.place("beta", 1, "b1")
        self.wait_answer("beta", "b1", classes=5)
        self.assertEqual([(m["version"], m["state"]) for m in self.rows("beta")],
                         [("1", "READY")])
        shutil.rmtree(os.path.join(self.repo, "beta"))
        ok = su.wait_for(lambda: self.classify("beta", 5)[0].status == 404, POLL_DEADLINE_S)
        self.assertTrue(ok, self.classify("beta", 5)[0])
        self.assertEqual(self.rows("beta"), [])
        r, got = self.classify("alpha", 4)
        self.assertEqual(r.status, 200, r)

    def test_6_file_replaced_in_place_reloaded(self):
        r, got = self.classify("alpha", 4)
        self.assertEqual(self.which(got), "a2")  # version 3, completed in test_3
        path = os.path.join(self.repo, "alpha", "3", "model.safetensors")
        os.link(self.w["a3"], path + ".new")
        os.replace(path + ".new", path)  # another file under the same version
        self.wait_answer("alpha", "a3", before="a2")  # never version 1 meanwhile
        self.assertEqual([(m["version"], m["state"]) for m in self.rows("alpha")],
                         [("3", "READY")])


class SwapPolicyMemory(RepoHelpers, su.ServerTestCase):
    binary = BIN

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_repository((("a1", 1, 4), ("a2", 3, 4)))
        cls.place("alpha", 1, "a1")
        cls.start_shared_server("memory", [*FLAGS, "--model-repository", cls.repo,
                                           "--model-control-mode", "explicit", "--load-model",
                                           "alpha", "--swap-policy", "memory"])

    def test_memory_policy_frees_the_old_version_before_building(self):
        r, got = self.classify("alpha", 4)
        self.assertEqual(self.which(got), "a1")
        self.place("alpha", 2, "a2")
        stop, seen = threading.Event(), []

        def client():  # requests during the swap: answered, or 503 with Retry-After
            while not stop.is_set():
                r = self.server.classify(self.photo, query="?model=alpha&top_k=1")
                seen.append((r.status, r.headers.get("Retry-After")))
        t = threading.Thread(target=client)
        t.start()
        try:
            time.sleep(0.2)
            r = self.post("/v2/repository/models/alpha/load")
            time.sleep(0.2)
        finally:
            stop.set()
            t.join(30)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(seen)
        self.assertEqual({s for s in seen if s[0] != 200} - {(503, "1")}, set(), seen)
        r, got = self.classify("alpha", 4)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.which(got), "a2")
        self.assertEqual([(m["version"], m["state"]) for m in self.rows("alpha")],
                         [("2", "READY")])
        log = self.server.stderr()
        freed = log.find("model alpha version 1: unloaded: freed")
        built = log.find("model alpha version 2: loading")
        self.assertGreaterEqual(freed, 0, log[-3000:])
        self.assertGreaterEqual(built, 0, log[-3000:])
        self.assertLess(freed, built, "version 2 was built before version 1 was freed")


# The families that carry a loaded version's labels: each name with the label that names the
# model (the views' counters name the view: beta, beta_image, beta_tensor, beta_explain).
PER_VERSION = ("vggserve_model_requests_total", "vggserve_model_request_seconds_total",
               "vggserve_model_images_total", "vggserve_model_phase_seconds_total",
               "vggserve_model_last_inference_timestamp_seconds", "vggserve_batches_by_size_total",
               "vggserve_batch_compute_seconds_total", "vggserve_model_queue_wait_seconds_bucket",
               "vggserve_model_queue_wait_seconds_count", "vggserve_model_queue_wait_seconds_sum",
               "vggserve_model_inference_duration_seconds_count", "vggserve_model_queue_depth")
STATES = ("UNAVAILABLE", "LOADING", "READY", "UNLOADING")


class RepositoryObservability(su.ServerTestCase):
    """Two models (alpha, beta) loaded at start; the tests run in their numbered order."""
    binary = BIN

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.repo = os.path.join(cls.tmp.name, "models")
        cls.w = {}
        for key, model, version, seed, classes in (("a1", "alpha", 1, 1, 4),
                                                   ("a2", "alpha", 2, 3, 4),
                                                   ("b1", "beta", 1, 2, 5)):
            cls.w[key] = os.path.join(cls.tmp.name, "src", "%s.safetensors" % key)
            small_model(cls.w[key], seed, classes)
        for key, model in (("a1", "alpha"), ("b1", "beta")):
            os.makedirs(os.path.join(cls.repo, model, "1"))
            os.link(cls.w[key], os.path.join(cls.repo, model, "1", "model.safetensors"))
        cls.photo = su.image("chelsea.jpg")
        cls.start_shared_server("obs", [*FLAGS, "--model-repository", cls.repo,
                                        "--model-control-mode", "explicit",
                                        "--load-model", "alpha", "--load-model", "beta"])

    def classify(self, model, version=None):
        q = "?model=%s" % model + ("&version=%d" % version if version else "")
        r = self.server.classify(self.photo, query=q)
        self.assertEqual(r.status, 200, r)

    def stats(self, path):
        r = self.server.request("GET", path)
        self.assertEqual(r.status, 200, r)
        return {(s["name"], s["version"]): s for s in r.json()["model_stats"]}

    def labelled(self, samples, models):
        """The per-version samples whose model label is one of models (or one of their views)."""
        views = {m + suffix for m in models for suffix in ("", "_image", "_tensor", "_explain")}
        return [(n, l) for n, l, _ in samples if n in PER_VERSION and l.get("model") in views]

    def test_1_metrics_label_each_model_and_version(self):
        before = su.settled_metrics(self.server)
        for _ in range(2):
            self.classify("alpha")
        self.classify("beta")
        m = su.settled_metrics(self.server)

        def delta(name, **labels):
            return su.metric(m, name, **labels) - su.metric(before, name, 0, **labels)
        ok = dict(version="1", outcome="success")
        self.assertEqual(delta("vggserve_model_requests_total", model="alpha", **ok), 2)
        self.assertEqual(delta("vggserve_model_requests_total", model="beta", **ok), 1)
        self.assertEqual(delta("vggserve_model_images_total", model="alpha", version="1"), 2)
        self.assertEqual(delta("vggserve_model_images_total", model="beta", version="1"), 1)
        self.assertEqual(delta("vggserve_batches_by_size_total", model="alpha", version="1",
                               batch_size="1"), 2)
        self.assertEqual(delta("vggserve_batches_by_size_total", model="beta", version="1",
                               batch_size="1"), 1)
        self.assertEqual(delta("vggserve_model_queue_wait_seconds_count", model="alpha",
                               version="1"), 2)
        self.assertEqual(delta("vggserve_model_inference_duration_seconds_count", model="beta",
                               version="1"), 1)
        for model in ("alpha", "beta"):
            self.assertEqual(su.metric(m, "vggserve_model_queue_depth", model=model, version="1"),
                             0)
            self.assertGreater(su.metric(m, "vggserve_model_phase_seconds_total", model=model,
                                         version="1", phase="compute_infer"), 0)
        # The service-wide families keep their names and add up the models.
        self.assertEqual(delta("vggserve_images_classified_total"), 3)
        self.assertEqual(delta("vggserve_batch_size_count"), 3)
        self.assertEqual(su.metric(m, "vggserve_queue_depth"), 0)
        # Only loaded versions have series: the 4 views of alpha 1 and beta 1.
        self.assertEqual({l["model"] for _, l in self.labelled(m, ("alpha", "beta"))},
                         {m + v for m in ("alpha", "beta")
                          for v in ("", "_image", "_tensor", "_explain")})
        self.assertEqual({l["version"] for n, l, _ in m if n in PER_VERSION}, {"1"})

    def test_2_statistics_per_model_and_version(self):
        before = self.stats("/v2/models/stats")
        self.classify("alpha")
        for _ in range(3):
            self.classify("beta")
        su.settled_metrics(self.server)
        every = self.stats("/v2/models/stats")
        self.assertEqual(set(every), {(m + s, "1") for m in ("alpha", "beta")
                                      for s in ("", "_image", "_tensor", "_explain")})

        def gained(stats, name):
            return (stats[(name, "1")]["inference_stats"]["success"]["count"]
                    - before[(name, "1")]["inference_stats"]["success"]["count"])
        self.assertEqual(gained(every, "alpha"), 1)
        self.assertEqual(gained(every, "beta"), 3)
        self.assertEqual(every[("beta", "1")]["execution_count"]
                         - before[("beta", "1")]["execution_count"], 3)
        one = self.stats("/v2/models/beta/versions/1/stats")
        self.assertEqual(list(one), [("beta", "1")])
        self.assertEqual(one[("beta", "1")]["inference_count"],
                         every[("beta", "1")]["inference_count"])
        self.assertEqual(list(self.stats("/v2/models/alpha_tensor/stats")), [("alpha_tensor", "1")])
        # The same counters as /metrics.
        m = su.settled_metrics(self.server)
        for name in ("alpha", "beta"):
            self.assertEqual(su.metric(m, "vggserve_model_requests_total", model=name, version="1",
                                       outcome="success"),
                             every[(name, "1")]["inference_stats"]["success"]["count"])
        r = self.server.request("GET", "/v2/models/beta/versions/2/stats")
        self.assertEqual(r.status, 404, r)

    def test_3_state_gauge_and_load_seconds(self):
        m = self.server.metrics()
        for model in ("alpha", "beta"):
            for state in STATES:
                self.assertEqual(su.metric(m, "vggserve_model_state", model=model, version="1",
                                           state=state), 1 if state == "READY" else 0,
                                 (model, state))
            self.assertEqual(su.metric(m, "vggserve_model_load_seconds_count", model=model), 1)
            took = su.metric(m, "vggserve_model_load_seconds_sum", model=model)
            self.assertGreater(took, 0)
            self.assertLess(took, 60)
        events = self.server.stderr()
        self.assertIn("model alpha: loaded: serving version 1", events)
        self.assertIn("model beta: loaded: serving version 1", events)

    def test_4_promtool_accepts_the_scrape(self):
        promtool = shutil.which("promtool") or ("/usr/bin/promtool"
                                                if os.path.exists("/usr/bin/promtool") else None)
        if not promtool:
            self.skipTest("promtool not installed (apt-get install prometheus); CI installs it")
        text = self.server.request("GET", "/metrics").body.decode()
        p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 0, "promtool check metrics:\n%s%s" % (p.stdout, p.stderr))

    def test_5_unload_removes_its_series(self):
        self.classify("beta")
        r = self.server.request("POST", "/v2/repository/models/beta/unload", body=b"")
        self.assertEqual(r.status, 200, r)

        def gone(m):
            return not self.labelled(m, ("beta",))
        m = su.wait_for_metrics(self.server, gone, timeout=30)
        self.assertIsNotNone(m, "beta's series stayed after its unload: %r"
                             % self.labelled(self.server.metrics(), ("beta",)))
        self.assertTrue(self.labelled(m, ("alpha",)), "alpha's series went with beta's")
        for state in STATES:  # the model as a whole, nothing of it loaded
            self.assertEqual(su.metric(m, "vggserve_model_state", model="beta", version="",
                                       state=state), 1 if state == "UNAVAILABLE" else 0, state)
        self.assertEqual([l for n, l, _ in m if n == "vggserve_model_state"
                          and l["model"] == "beta" and l["version"] == "1"], [])
        # Load times stay, per model name: one per load.
        self.assertEqual(su.metric(m, "vggserve_model_load_seconds_count", model="beta"), 1)
        freed = r"model beta version 1: unloaded: freed in [0-9.]+ s, [0-9.]+ s after"
        su.wait_for(lambda: re.search(freed, self.server.stderr()), 10)  # logged after the free
        self.assertRegex(self.server.stderr(), freed)
        # Loaded again: its series are back, counted from zero.
        r = self.server.request("POST", "/v2/repository/models/beta/load", body=b"")
        self.assertEqual(r.status, 200, r)
        m = self.server.metrics()
        self.assertEqual(su.metric(m, "vggserve_model_requests_total", model="beta", version="1",
                                   outcome="success"), 0)
        self.assertEqual(su.metric(m, "vggserve_model_load_seconds_count", model="beta"), 2)

    def test_6_swap_moves_the_series_to_the_new_version(self):
        os.makedirs(os.path.join(self.repo, "alpha", "2"))
        os.link(self.w["a2"], os.path.join(self.repo, "alpha", "2", "model.safetensors"))
        r = self.server.request("POST", "/v2/repository/models/alpha/load", body=b"{}")
        self.assertEqual(r.status, 200, r)
        self.classify("alpha")
        m = su.wait_for_metrics(self.server, lambda m: not [
            l for n, l in self.labelled(m, ("alpha",)) if l["version"] == "1"], timeout=30)
        self.assertIsNotNone(m, "alpha 1's series stayed after the swap")
        m = su.settled_metrics(self.server)  # the classify counted
        self.assertEqual(su.metric(m, "vggserve_model_requests_total", model="alpha", version="2",
                                   outcome="success"), 1)
        self.assertEqual(su.metric(m, "vggserve_model_state", model="alpha", version="2",
                                   state="READY"), 1)
        self.assertEqual(su.metric(m, "vggserve_model_load_seconds_count", model="alpha"), 2)
        self.assertEqual(list(self.stats("/v2/models/alpha/stats")), [("alpha", "2")])
        self.assertIn("model alpha: swapped: serving version 2", self.server.stderr())


if __name__ == "__main__":
    su.main()
