#!/usr/bin/python3
"""The compose stack's monitoring, checked without Docker (ctest: test_monitoring.py PATH/TO/vggserve).

docker/prometheus.yml must pass promtool, the Grafana provisioning must point the dashboard
at the provisioned datasource, and every query of docker/grafana/dashboards/vggserve.json
must return data from a real Prometheus (Debian's prometheus package) scraping a real
vggserve that has served requests, including a rejected one, with the dashboard's `model`
variable set to the values its own query finds. Exits 77 (skipped) without
prometheus/promtool. Standard library and tests/service_util.py (for its main()); run with
/usr/bin/python3."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

BIN = os.path.abspath(sys.argv.pop(1)) if len(sys.argv) > 1 else "build/vggserve"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCKER = os.path.join(ROOT, "docker")
DASHBOARD = os.path.join(DOCKER, "grafana", "dashboards", "vggserve.json")
CAT = os.path.join(ROOT, "tests", "data", "images", "chelsea.jpg")

sys.path.insert(0, os.path.join(ROOT, "tests"))
import service_util as su  # noqa: E402  (main(): the CI skip policy)

if not (shutil.which("prometheus") and shutil.which("promtool")):
    print("SKIP: prometheus/promtool missing (apt-get install prometheus)")
    sys.exit(77)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url, data=None, headers=None, timeout=30):
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_for(what, check, timeout_s=120):
    t = time.monotonic()
    while time.monotonic() - t < timeout_s:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout_s} s")


def dashboard_queries(model=None):
    """[(panel title, expr)] with Grafana's $__rate_interval made concrete, and $model as
    Grafana writes a multi-value variable into a regex: (a|b)."""
    with open(DASHBOARD) as f:
        dash = json.load(f)
    out = []
    for p in dash["panels"]:
        for t in p.get("targets", []):
            expr = t["expr"].replace("$__rate_interval", "30s")
            if model is not None:
                expr = expr.replace("$model", "(%s)" % "|".join(model))
            out.append((p["title"].replace("$model", ",".join(model or [])), expr))
    return dash, out


class MonitoringTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.procs = []
        try:
            cls.start_and_load()
        except BaseException:
            cls.tearDownClass()  # unittest does not call it when setUpClass fails
            raise

    @classmethod
    def start_and_load(cls):
        cls.port = free_port()
        cls.prom_port = free_port()
        # Small batches: warm-up is quicker and the metrics are the same.
        cls.serve = cls.start([BIN, "serve", "--port", str(cls.port), "--max-batch-size", "2",
                               "--threads-per-worker", "2"], "vggserve.log")
        conf = os.path.join(cls.tmp.name, "prometheus.yml")
        with open(conf, "w") as f:
            f.write("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                    "scrape_configs:\n"
                    "  - job_name: vggserve\n"
                    f"    static_configs: [{{targets: ['127.0.0.1:{cls.port}']}}]\n")
        cls.start(["prometheus", f"--config.file={conf}",
                   f"--storage.tsdb.path={os.path.join(cls.tmp.name, 'tsdb')}",
                   f"--web.listen-address=127.0.0.1:{cls.prom_port}"], "prometheus.log")
        base = f"http://127.0.0.1:{cls.port}"
        wait_for("vggserve /readyz", lambda: http(base + "/readyz")[0] == 200)
        wait_for("prometheus scraping vggserve",
                 lambda: cls.query('up{job="vggserve"} == 1'), timeout_s=60)
        with open(CAT, "rb") as f:
            cat = f.read()
        for _ in range(3):
            status, body = http(base + "/classify", cat, {"Content-Type": "image/jpeg"})
            assert status == 200, body
        status, _ = http(base + "/classify", b"not an image", {"Content-Type": "image/jpeg"})
        assert status == 415, status  # one rejection, reason unsupported_media_type
        # A scrape after the traffic, and one more, so every rate() sees the increase.
        wait_for("prometheus scraping the traffic",
                 lambda: cls.query("vggserve_images_classified_total >= 3"), timeout_s=30)
        time.sleep(1.5)

    @classmethod
    def start(cls, argv, log):
        f = open(os.path.join(cls.tmp.name, log), "w")
        p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT)
        cls.procs.append((p, f))
        return p

    @classmethod
    def tearDownClass(cls):
        for p, f in reversed(cls.procs):
            p.terminate()
            try:
                p.wait(timeout=40)
            except subprocess.TimeoutExpired:
                p.kill()
            f.close()
        cls.tmp.cleanup()

    @classmethod
    def query(cls, expr):
        url = (f"http://127.0.0.1:{cls.prom_port}/api/v1/query?"
               + urllib.parse.urlencode({"query": expr}))
        status, body = http(url)
        r = json.loads(body)
        if status != 200 or r.get("status") != "success":
            raise AssertionError(f"{expr}: {r.get('error', body[:200])}")
        return r["data"]["result"]

    def test_promtool_accepts_the_compose_config(self):
        p = subprocess.run(["promtool", "check", "config", os.path.join(DOCKER, "prometheus.yml")],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_dashboard_uses_the_provisioned_datasource(self):
        with open(os.path.join(DOCKER, "grafana", "provisioning", "datasources",
                               "prometheus.yaml")) as f:
            uid = re.search(r"^\s*uid:\s*(\S+)", f.read(), re.M).group(1)
        dash, queries = dashboard_queries()
        self.assertGreaterEqual(len(queries), 10)
        for p in dash["panels"]:
            self.assertEqual(p["datasource"]["uid"], uid, p["title"])
        with open(os.path.join(DOCKER, "grafana", "provisioning", "dashboards",
                               "vggserve.yaml")) as f:
            self.assertIn("path: /var/lib/grafana/dashboards", f.read())
        titles = " ".join(p["title"].lower() for p in dash["panels"])
        for needed in ("throughput", "latency", "queue depth", "batch size", "rejections"):
            self.assertIn(needed, titles)

    def model_variable(self):
        """The dashboard's `model` variable: its label_values(METRIC, LABEL) query, run as
        Grafana runs it (the label's values among METRIC's series)."""
        dash, _ = dashboard_queries()
        var = {v["name"]: v for v in dash["templating"]["list"]}["model"]
        m = re.fullmatch(r"label_values\((\w+), *(\w+)\)", var["query"]["query"])
        self.assertIsNotNone(m, var["query"])
        self.assertEqual(var["definition"], var["query"]["query"])
        url = (f"http://127.0.0.1:{self.prom_port}/api/v1/label/{m.group(2)}/values?"
               + urllib.parse.urlencode({"match[]": m.group(1)}))
        status, body = http(url)
        self.assertEqual(status, 200, body[:200])
        return var, json.loads(body)["data"]

    def test_model_variable_lists_the_model_and_filters_the_model_panels(self):
        var, values = self.model_variable()
        self.assertEqual(values, ["vgg16"])
        self.assertTrue(var["multi"] and var["includeAll"], var)
        dash, _ = dashboard_queries()
        # Every panel on a per-model family (vggserve_model_info is the service's start-up
        # settings, one series per replica) filters by the variable.
        per_model = [p for p in dash["panels"]
                     if any(re.search(r"vggserve_model_(?!info)", t["expr"])
                            for t in p.get("targets", []))]
        self.assertGreaterEqual(len(per_model), 4)
        for p in per_model:
            for t in p["targets"]:
                self.assertIn('model=~"', t["expr"], p["title"])
                self.assertIn("$model", t["expr"], p["title"])

    def test_every_dashboard_query_returns_data(self):
        _, values = self.model_variable()
        _, queries = dashboard_queries(values)
        for title, expr in queries:
            with self.subTest(panel=title, expr=expr):
                result = self.query(expr)
                self.assertTrue(result, "no series")
                for series in result:
                    v = series["value"][1]
                    self.assertNotIn(v, ("NaN", "+Inf", "-Inf"), series["metric"])

    def test_rejections_panel_sees_the_reason(self):
        result = self.query('sum by (reason) (increase(vggserve_rejected_total[1m]))')
        reasons = {s["metric"].get("reason"): float(s["value"][1]) for s in result}
        self.assertGreater(reasons.get("unsupported_media_type", 0), 0, reasons)


if __name__ == "__main__":
    su.main()
