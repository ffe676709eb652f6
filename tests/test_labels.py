#!/usr/bin/env python3
"""Black-box tests of a model's labels (run by ctest: test_labels.py PATH/TO/vggserve).

Generated VGG11 weights are rewritten with the metadata "labels" (as the converters embed
them: 1000 custom names with WordNet-style ids), then:
  - serve answers /classify (top_k up to the model's classes), /explain, the v2 classification
    extension and GET /v2/models/M/labels with those names, wnid only where they carry one;
  - --labels FILE overrides them, in serve, classify and explain; each of the four formats;
  - a model without labels keeps ImageNet's (and its wnids);
  - a label count other than the model's classes, or a hostile label file, stops start-up
    with a message naming the file (and both numbers).
Model class counts other than 1000 come with the heads (issue 23, part 1); until then every
custom label set here has 1000 entries. Standard library only; run with /usr/bin/python3."""
import base64
import json
import os
import struct
import subprocess
import tempfile
import unittest

import service_util as su

BIN = su.binary_from_argv()
MODEL = "vgg11"  # su.LIGHT_FLAGS
N = 1000
PHOTO = "chelsea.jpg"


def embed_labels(src, dst, labels_text):
    """Copies the safetensors file src to dst with the metadata "labels" set to labels_text."""
    with open(src, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    header.setdefault("__metadata__", {})["labels"] = labels_text
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + raw[8 + n:])


def run(*args, timeout=120):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout,
                          env=su.clean_env())


FLOWERS = [f"flower {i}" for i in range(N)]
WNIDS = [f"w{i:08d}" for i in range(N)]
# The same names in each format (the wnids only where the format carries them).
FORMATS = {
    "labels.txt": "\r\n".join(FLOWERS),  # CRLF, no last newline
    "index_to_name.json": json.dumps({str(i): [w, n] for i, (w, n) in enumerate(zip(WNIDS, FLOWERS))}),
    "class_indices.json": json.dumps({n: i for i, n in reversed(list(enumerate(FLOWERS)))}),
    "list.json": json.dumps(FLOWERS),
}


class LabelsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="vggserve-labels-")
        p = run("gen-weights", "--model", MODEL, "--seed", "3", "--out", cls.path("gen.safetensors"))
        assert p.returncode == 0, p.stderr
        cls.plain = cls.path("gen.safetensors")
        cls.embedded = cls.path("embedded.safetensors")
        embed_labels(cls.plain, cls.embedded, FORMATS["index_to_name.json"])
        for name, text in FORMATS.items():
            with open(cls.path(name), "w") as f:
                f.write(text)
        with open(cls.path("custom.txt"), "w") as f:
            f.write("".join(f"custom {i}\n" for i in range(N)))
        with open(cls.path("seven.json"), "w") as f:
            json.dump([f"c{i}" for i in range(7)], f)
        cls.server = su.Server(BIN, cls.tmp.name, "embedded", ["--weights", cls.embedded]).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.tmp.cleanup()

    @classmethod
    def path(cls, name):
        return os.path.join(cls.tmp.name, name)

    def top_k(self, server, k):
        r = server.classify(su.image(PHOTO), query=f"?top_k={k}")
        self.assertEqual(r.status, 200, r.body)
        return r.json()["predictions"][0]["top_k"]

    # ---- the service

    def test_classify_uses_the_embedded_labels(self):
        top = self.top_k(self.server, 10)
        self.assertEqual(len(top), 10)
        for t in top:
            self.assertEqual(t["label"], FLOWERS[t["class_id"]])
            self.assertEqual(t["wnid"], WNIDS[t["class_id"]])
        every = self.top_k(self.server, 1000)  # top_k is capped at the model's classes
        self.assertEqual(sorted(t["class_id"] for t in every), list(range(N)))

    def test_explain_names_the_explained_class(self):
        r = self.server.request("POST", "/explain?top_k=2", su.image(PHOTO),
                                {"Content-Type": "image/jpeg"})
        self.assertEqual(r.status, 200, r.body)
        e = r.json()["predictions"][0]["explanation"]
        self.assertEqual(e["label"], FLOWERS[e["class_id"]])

    def test_v2_classification_uses_the_labels(self):
        body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                            "data": [base64.b64encode(su.image(PHOTO)).decode()]}],
                "outputs": [{"name": "probabilities", "parameters": {"classification": 3}}]}
        r = self.server.request("POST", f"/v2/models/{MODEL}/infer", json.dumps(body).encode(),
                                {"Content-Type": "application/json"})
        self.assertEqual(r.status, 200, r.body)
        out = r.json()["outputs"][0]
        self.assertEqual((out["datatype"], out["shape"]), ("BYTES", [1, 3]))
        top = self.top_k(self.server, 3)
        for s, t in zip(out["data"], top):
            _, index, label = s.split(":", 2)
            self.assertEqual((int(index), label), (t["class_id"], FLOWERS[t["class_id"]]))

    def test_labels_route(self):
        for path, name in ((f"/v2/models/{MODEL}/labels", MODEL),
                           (f"/v2/models/{MODEL}_image/versions/1/labels", MODEL + "_image")):
            r = self.server.request("GET", path)
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.json(), {"name": name, "version": "1", "count": N,
                                        "labels": FLOWERS, "wnids": WNIDS})
        r = self.server.request("GET", "/v2/models/resnet50/labels")
        self.assertEqual(r.status, 404, r.body)
        self.assertIn("unknown model 'resnet50'", r.json()["error"])
        r = self.server.request("GET", f"/v2/models/{MODEL}/versions/2/labels")
        self.assertEqual(r.status, 404, r.body)
        r = self.server.request("POST", f"/v2/models/{MODEL}/labels", b"{}")
        self.assertEqual(r.status, 405, r.body)

    def test_labels_override_and_imagenet_default(self):
        flags = ["--weights", self.embedded, "--labels", self.path("custom.txt")]
        with_file = su.Server(BIN, self.tmp.name, "override", flags).start()
        plain = su.Server(BIN, self.tmp.name, "plain", ["--weights", self.plain]).start()
        try:
            for t in self.top_k(with_file, 5):
                self.assertEqual(t["label"], f"custom {t['class_id']}")
                self.assertNotIn("wnid", t)  # a text file carries none
            r = with_file.request("GET", f"/v2/models/{MODEL}/labels").json()
            self.assertEqual(r["labels"][:2], ["custom 0", "custom 1"])
            self.assertNotIn("wnids", r)
            # Without labels: ImageNet's names and WordNet ids, as before labels existed.
            r = plain.request("GET", f"/v2/models/{MODEL}/labels").json()
            self.assertEqual((r["count"], r["labels"][281], r["wnids"][0]),
                             (N, "tabby", "n01440764"))
            for t in self.top_k(plain, 3):
                self.assertEqual((t["label"], t["wnid"]),
                                 (r["labels"][t["class_id"]], r["wnids"][t["class_id"]]))
        finally:
            with_file.stop()
            plain.stop()

    def test_bad_labels_stop_start_up(self):
        seven = self.path("embedded7.safetensors")
        embed_labels(self.plain, seven, FORMATS["list.json"].replace(']', ', "one more"]'))
        hostile = self.path("hostile.json")
        with open(hostile, "w") as f:
            f.write("[" * 5000 + "]" * 5000)
        cases = (
            (["--labels", self.path("seven.json")],
             "labels %s has 7 labels, but the model has 1000 classes" % self.path("seven.json")),
            (["--weights", seven],
             '%s: metadata "labels" has 1001 labels, but the model has 1000 classes' % seven),
            (["--labels", hostile], "labels %s: JSON nested deeper than 2 levels" % hostile),
            (["--labels", self.path("missing.txt")],
             "labels %s: No such file or directory" % self.path("missing.txt")),
        )
        for flags, message in cases:
            p = run("serve", "--port", "0", *su.LIGHT_FLAGS, *flags, timeout=120)
            self.assertEqual(p.returncode, 1, p.stderr)
            # The last line is the start-up error; it names the model that failed to load.
            last = p.stderr.strip().splitlines()[-1]
            self.assertTrue(last.startswith("error: "), p.stderr)
            self.assertIn(message, last)

    # ---- the CLI

    def classify(self, *flags):
        p = run("classify", "--model", MODEL, "--top-k", "3", *flags, os.path.join(su.IMAGES, PHOTO))
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout)["top_k"]

    def test_cli_formats_embedded_and_override(self):
        for t in self.classify("--weights", self.embedded):
            self.assertEqual((t["label"], t["wnid"]), (FLOWERS[t["class_id"]], WNIDS[t["class_id"]]))
        for name in FORMATS:
            top = self.classify("--weights", self.embedded, "--labels", self.path(name))
            for t in top:
                self.assertEqual(t["label"], FLOWERS[t["class_id"]], name)
                self.assertEqual(t.get("wnid"), WNIDS[t["class_id"]] if name == "index_to_name.json"
                                 else None, name)
        p = run("explain", "--model", MODEL, "--weights", self.embedded, "--labels",
                self.path("custom.txt"), os.path.join(su.IMAGES, PHOTO))
        self.assertEqual(p.returncode, 0, p.stderr)
        e = json.loads(p.stdout)
        self.assertEqual(e["label"], f"custom {e['class_id']}")
        p = run("classify", "--model", MODEL, "--labels", self.path("seven.json"),
                os.path.join(su.IMAGES, PHOTO))
        self.assertEqual(p.returncode, 1)
        self.assertIn("has 7 labels, but the model has 1000 classes", p.stderr)
        self.assertEqual(p.stdout, "")


if __name__ == "__main__":
    su.main()
