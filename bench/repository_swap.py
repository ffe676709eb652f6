#!/usr/bin/env python3
"""repository_swap.py - the model repository's costs (issue 26's benchmark): how long a model
takes from `POST /v2/repository/models/NAME/load` to ready, in f32 and int8, and what a swap to
a new version costs clients that keep sending photos meanwhile.

    /usr/bin/python3 bench/repository_swap.py [--binary build/vggserve] [--out DIR] \
        [--clients 4] [--steady-s 30] [--after-s 15] [--small]

Weights: VGG16 from `vggserve gen-weights --seed 1` (version 1) and `--seed 2` (version 2),
kept in --workdir (default /tmp/vggserve-repository-swap) and reused; int8 calibrated once by
`vggserve calibrate --generated 32` on tests/data/images (WEIGHTS.int8.json, copied beside the
version's model.safetensors, so the load measures loading, not calibrating). --small: small
VGG11 models (32 x 32 input, a 4-class head) instead, to try the script in seconds.

(a) Load to ready, per precision: a fresh `vggserve serve --model-repository DIR
    --model-control-mode explicit` with no model loaded; DIR/vgg16/config.json says the
    precision. Timed: the POST load until its 200 (the load answers once the version serves:
    weights read, formats reordered, warm-up done). VmRSS before, ready, and after an unload;
    the peak (VmHWM, reset before the load by /proc/PID/clear_refs).
(b) Swap under load: one server, vgg16 version 1 loaded (f32), --clients threads each sending
    one photo after another (POST /v2/models/vgg16_image/infer, the JPEG as binary BYTES data,
    top class asked; keep-alive; tests/data/images/*.jpg in turn)
    through a warm-up, a steady phase (--steady-s), the swap (version 2's folder moved into the
    repository, POST load, until the index shows version 2 alone: the old one drained and
    freed) and --after-s more. Per phase: requests, errors (anything but 200), latency p50/p99
    and the ratios to the steady phase (same run); which version answered; VmRSS sampled every
    50 ms (the phase's max and its last sample) and VmHWM (reset at each phase's start). The
    after phase starts when the index shows version 2 alone, which can be a moment before the
    old version's memory has gone back to the OS: its max can include the old version, its
    last sample shows what stays.
Writes DIR/repository_swap.jsonl (one JSON object per measurement) and DIR/repository_swap.txt
(the table), and prints the table. The load average before and after is recorded: on a shared
machine the figures include other jobs' work. Exit status 0 when every step ran, 1 otherwise
(the figures are reported either way; no threshold is enforced)."""
import argparse
import datetime
import http.client
import json
import os
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import repository_util as ru  # noqa: E402

NAME = "vgg16"


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def pct(values, p):
    """The p-th percentile (nearest rank) of values, or None."""
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(round(p / 100.0 * len(v) + 0.5)) - 1))]


def run(cmd, log):
    t0 = time.monotonic()
    with open(log, "ab") as f:
        subprocess.run(cmd, check=True, stdout=f, stderr=f, env=ru.clean_env())
    return time.monotonic() - t0


class Bench:
    def __init__(self, args):
        self.a = args
        self.binary = os.path.realpath(args.binary)
        self.work = args.workdir
        os.makedirs(self.work, exist_ok=True)
        self.records = []
        self.lines = []
        self.jpgs = sorted(os.path.join(ru.PHOTOS, f) for f in os.listdir(ru.PHOTOS)
                           if f.endswith(".jpg"))
        self.bodies = [open(p, "rb").read() for p in self.jpgs]

    def say(self, line=""):
        print(line, flush=True)
        self.lines.append(line)

    def record(self, **kw):
        self.records.append(kw)

    # ---- weights

    def weights(self):
        log = os.path.join(self.work, "prepare.log")
        kind = "small" if self.a.small else "vgg16"
        self.w = {}
        for version, seed in ((1, 1), (2, 2)):
            path = os.path.join(self.work, "%s-seed%d.safetensors" % (kind, seed))
            if not os.path.exists(path):
                if self.a.small:
                    ru.small_model(path, seed, 4)
                else:
                    run([self.binary, "gen-weights", "--model", "vgg16", "--seed", str(seed),
                         "--out", path], log)
            self.w[version] = path
        calib = self.w[1] + ".int8.json"
        if not self.a.skip_int8 and not os.path.exists(calib):
            s = run([self.binary, "calibrate", "--weights", self.w[1], "--generated",
                     str(self.a.calib_generated), *self.jpgs], log)
            self.say("calibrated int8 in %.1f s (%s)" % (s, os.path.basename(calib)))

    def repo(self, tag, config):
        d = os.path.join(self.work, "repo-" + tag)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(os.path.join(d, NAME))
        with open(os.path.join(d, NAME, "config.json"), "w") as f:
            json.dump(config, f)
        ru.place(d, NAME, 1, self.w[1])
        return d

    # ---- (a) load to ready

    def load_to_ready(self, precision):
        d = self.repo("load-" + precision, {"precision": precision})
        s = ru.Server(self.binary, ["--model-repository", d, "--model-control-mode", "explicit",
                                    *self.a.serve_flag], self.work, "load-" + precision)
        try:
            self.wait_live(s)
            time.sleep(0.5)
            ru.reset_peak(s.pid)
            before = ru.proc_status(s.pid, "VmRSS")
            load0 = loadavg()
            t0 = time.monotonic()
            status, body = s.request("POST", "/v2/repository/models/%s/load" % NAME, b"{}")
            took = time.monotonic() - t0
            if status != 200:
                raise RuntimeError("load %s: %d %r" % (precision, status, body[:300]))
            ready = ru.proc_status(s.pid, "VmRSS")
            peak = ru.proc_status(s.pid, "VmHWM")
            status, _ = s.request("POST", "/classify?model=%s" % NAME, self.bodies[0],
                                  {"Content-Type": "image/jpeg"})
            if status != 200:
                raise RuntimeError("classify after the load: %d" % status)
            s.request("POST", "/v2/repository/models/%s/unload" % NAME, b"")
            self.wait_state(s, lambda rows: all(r["state"] == "UNAVAILABLE" for r in rows))
            time.sleep(0.5)
            after = ru.proc_status(s.pid, "VmRSS")
        finally:
            s.stop()
        self.record(measure="load_to_ready", model=self.kind(), precision=precision,
                    load_s=round(took, 3), rss_before_mib=round(before / 1024, 1),
                    rss_ready_mib=round(ready / 1024, 1), peak_mib=round(peak / 1024, 1),
                    rss_after_unload_mib=round(after / 1024, 1),
                    weights_mib=round(os.path.getsize(self.w[1]) / 2**20, 1), loadavg=load0)
        return took, before, ready, peak, after

    def kind(self):
        return "small VGG11 (32x32, 4 classes)" if self.a.small else "VGG16"

    def wait_live(self, s, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if s.request("GET", "/v2/health/live", timeout=5)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server not live: " + s.stderr()[-2000:])

    def wait_state(self, s, pred, timeout=300):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = [r for r in s.index() if r["name"] == NAME]
            if pred(rows):
                return rows
            time.sleep(0.05)
        raise RuntimeError("index did not settle: %s" % s.index())

    # ---- (b) swap under load

    def infer_body(self, photo):
        """A v2 infer request of one photo as binary BYTES data, asking for the top class."""
        header = json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                         "parameters": {"binary_data_size": len(photo) + 4}}],
                             "outputs": [{"name": "probabilities",
                                          "parameters": {"classification": 1}}]}).encode()
        return header + len(photo).to_bytes(4, "little") + photo, len(header)

    def swap(self):
        d = self.repo("swap", {"precision": "f32"})
        s = ru.Server(self.binary, ["--model-repository", d, "--model-control-mode", "explicit",
                                    "--load-model", NAME, *self.a.serve_flag], self.work, "swap")
        results, lock, stop = [], threading.Lock(), threading.Event()
        requests = [self.infer_body(b) for b in self.bodies]
        rss = []

        def client(i):
            n = i
            conn = None
            while not stop.is_set():
                body, hlen = requests[n % len(requests)]
                n += 1
                t0 = time.monotonic()
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=600)
                    conn.request("POST", "/v2/models/%s_image/infer" % NAME, body,
                                 {"Content-Type": "application/octet-stream",
                                  "Inference-Header-Content-Length": str(hlen)})
                    r = conn.getresponse()
                    data = r.read()
                    status, ver = r.status, None
                    if status == 200:
                        ver = json.loads(data)["model_version"]
                    if r.getheader("Connection", "").lower() == "close":
                        conn.close()
                        conn = None
                except Exception as e:  # noqa: BLE001  (an error to count)
                    status, ver = repr(e)[:120], None
                    if conn is not None:
                        conn.close()
                    conn = None
                with lock:
                    results.append((t0, time.monotonic(), status, ver))
            if conn is not None:
                conn.close()

        def sampler():
            while not stop.is_set():
                try:
                    rss.append((time.monotonic(), ru.proc_status(s.pid, "VmRSS")))
                except (OSError, RuntimeError):
                    return
                time.sleep(0.05)

        threads = []
        marks = {}
        try:
            s.wait_ready(300)
            threads = [threading.Thread(target=client, args=(i,)) for i in range(self.a.clients)]
            threads.append(threading.Thread(target=sampler))
            for t in threads:
                t.start()
            time.sleep(self.a.warmup_s)
            ru.reset_peak(s.pid)
            marks["steady"] = time.monotonic()
            marks["load_steady"] = loadavg()
            time.sleep(self.a.steady_s)
            marks["steady_hwm"] = ru.proc_status(s.pid, "VmHWM")
            # The new version: copied beside the repository, moved in whole, then loaded.
            staging = os.path.join(d, ".staging-2")
            os.makedirs(staging)
            shutil.copy(self.w[2], os.path.join(staging, "model.safetensors"))
            ru.reset_peak(s.pid)
            marks["swap"] = time.monotonic()
            marks["load_swap"] = loadavg()
            os.rename(staging, os.path.join(d, NAME, "2"))
            status, body = s.request("POST", "/v2/repository/models/%s/load" % NAME, b"{}")
            marks["loaded"] = time.monotonic()
            if status != 200:
                raise RuntimeError("swap load: %d %r" % (status, body[:300]))
            self.wait_state(s, lambda rows: [(r.get("version"), r["state"]) for r in rows] ==
                            [("2", "READY")])
            marks["drained"] = time.monotonic()
            marks["swap_hwm"] = ru.proc_status(s.pid, "VmHWM")
            ru.reset_peak(s.pid)
            time.sleep(self.a.after_s)
            marks["after_hwm"] = ru.proc_status(s.pid, "VmHWM")
            marks["end"] = time.monotonic()
        finally:
            stop.set()
            for t in threads:
                t.join(600)
            s.stop()

        phases = (("steady", marks["steady"], marks["swap"], marks["steady_hwm"]),
                  ("swap", marks["swap"], marks["drained"], marks["swap_hwm"]),
                  ("after", marks["drained"], marks["end"], marks["after_hwm"]))
        out = {}
        for name, a, b, hwm in phases:
            # A request counts in the swap window when any of it overlaps the window; in the
            # steady and after phases when it lies wholly inside.
            if name == "swap":
                sel = [r for r in results if r[1] > a and r[0] < b]
            else:
                sel = [r for r in results if r[0] >= a and r[1] <= b]
            ok = [r for r in sel if r[2] == 200]
            lat = [1000.0 * (r[1] - r[0]) for r in ok]
            versions = {}
            for r in ok:
                versions[r[3]] = versions.get(r[3], 0) + 1
            out[name] = dict(measure="swap_phase", model=self.kind(), phase=name,
                             seconds=round(b - a, 2), clients=self.a.clients,
                             requests=len(sel), errors=len(sel) - len(ok),
                             error_samples=sorted({str(r[2]) for r in sel if r[2] != 200})[:5],
                             p50_ms=round(pct(lat, 50), 1) if lat else None,
                             p99_ms=round(pct(lat, 99), 1) if lat else None,
                             max_ms=round(max(lat), 1) if lat else None,
                             answered_by=versions,
                             rss_max_mib=round(max([v for t, v in rss if a <= t <= b] or [0]) / 1024, 1),
                             rss_end_mib=round(([v for t, v in rss if t <= b] or [0])[-1] / 1024, 1),
                             hwm_mib=round(hwm / 1024, 1))
        out["swap"]["load_s"] = round(marks["loaded"] - marks["swap"], 2)
        out["swap"]["drain_s"] = round(marks["drained"] - marks["loaded"], 2)
        out["steady"]["loadavg"] = marks["load_steady"]
        out["swap"]["loadavg"] = marks["load_swap"]
        for name in ("swap", "after"):
            for q in ("p50_ms", "p99_ms"):
                if out[name][q] and out["steady"][q]:
                    out[name][q.replace("_ms", "_vs_steady")] = round(out[name][q] / out["steady"][q], 2)
        total_errors = sum(1 for r in results if r[2] != 200)
        for name in ("steady", "swap", "after"):
            self.record(**out[name])
        self.record(measure="swap_total", requests=len(results), errors=total_errors)
        return out, total_errors, len(results)

    # ---- the report

    def main(self):
        start = datetime.datetime.now(datetime.timezone.utc)
        self.say("repository_swap.py %s UTC, %s, %d cores, load average %s"
                 % (start.strftime("%Y-%m-%d %H:%M"), self.kind(), os.cpu_count(), loadavg()))
        self.say("command: " + " ".join([os.path.relpath(sys.argv[0], ru.ROOT)] + sys.argv[1:]))
        self.weights()
        self.say("servers: vggserve serve --host 127.0.0.1 --port 0 --model-repository DIR "
                 "--model-control-mode explicit [--load-model %s] %s(the rest default); "
                 "DIR/%s/config.json gives the precision" % (NAME, " ".join(self.a.serve_flag) +
                                                           (" " if self.a.serve_flag else ""), NAME))
        self.say("")
        self.say("(a) load to ready (POST /v2/repository/models/%s/load until 200), fresh server each"
                 % NAME)
        self.say("%-9s %9s %13s %12s %12s %18s" % ("precision", "load (s)", "RSS before", "RSS ready",
                                                   "peak (HWM)", "RSS after unload"))
        for precision in (("f32",) if self.a.skip_int8 else ("f32", "int8")):
            took, before, ready, peak, after = self.load_to_ready(precision)
            self.say("%-9s %9.2f %9.0f MiB %8.0f MiB %8.0f MiB %14.0f MiB"
                     % (precision, took, before / 1024, ready / 1024, peak / 1024, after / 1024))
        self.say("")
        self.say("(b) swap to version 2 under %d clients sending photos (f32; warm-up %.0f s, "
                 "steady %.0f s, after %.0f s)" % (self.a.clients, self.a.warmup_s,
                                                   self.a.steady_s, self.a.after_s))
        out, errors, total = self.swap()
        self.say("%-7s %7s %8s %6s %9s %9s %9s %9s %10s %10s %10s  %s"
                 % ("phase", "seconds", "requests", "errors", "p50 ms", "p99 ms", "p50/stdy",
                    "p99/stdy", "RSS max", "RSS end", "VmHWM", "answered by version"))
        for name in ("steady", "swap", "after"):
            o = out[name]
            self.say("%-7s %7.1f %8d %6d %9s %9s %9s %9s %6.0f MiB %6.0f MiB %6.0f MiB  %s"
                     % (name, o["seconds"], o["requests"], o["errors"], o["p50_ms"], o["p99_ms"],
                        o.get("p50_vs_steady", "-"), o.get("p99_vs_steady", "-"),
                        o["rss_max_mib"], o["rss_end_mib"], o["hwm_mib"],
                        ", ".join("%s: %d" % kv for kv in sorted(o["answered_by"].items()))))
        self.say("swap: load answered 200 after %.2f s, old version drained and freed %.2f s later; "
                 "%d requests in all, %d errors" % (out["swap"]["load_s"], out["swap"]["drain_s"],
                                                    total, errors))
        self.say("load average at the end: %s" % loadavg())
        os.makedirs(self.a.out, exist_ok=True)
        with open(os.path.join(self.a.out, "repository_swap.jsonl"), "w") as f:
            for r in self.records:
                f.write(json.dumps(r) + "\n")
        with open(os.path.join(self.a.out, "repository_swap.txt"), "w") as f:
            f.write("\n".join(self.lines) + "\n")
        print("wrote %s/repository_swap.{txt,jsonl}" % self.a.out)
        return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", default=os.path.join(ru.ROOT, "build", "vggserve"))
    ap.add_argument("--out", default=os.path.join(
        ru.ROOT, "bench", "results",
        datetime.date.today().isoformat() + "_repository_swap"))
    ap.add_argument("--workdir", default="/tmp/vggserve-repository-swap")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--warmup-s", type=float, default=5)
    ap.add_argument("--steady-s", type=float, default=30)
    ap.add_argument("--after-s", type=float, default=15)
    ap.add_argument("--calib-generated", type=int, default=32)
    ap.add_argument("--skip-int8", action="store_true")
    ap.add_argument("--small", action="store_true", help="small VGG11 models, to try the script")
    ap.add_argument("--serve-flag", action="append", default=[],
                    help="one more flag for every server (repeat; e.g. --serve-flag=--workers=1)")
    args = ap.parse_args()
    if args.small and args.workdir == ap.get_default("workdir"):
        args.workdir += "-small"
    try:
        return Bench(args).main()
    except (RuntimeError, subprocess.CalledProcessError, OSError) as e:
        print("repository_swap: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
