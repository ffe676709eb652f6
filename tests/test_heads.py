#!/usr/bin/python3
"""Models with their own heads, converted and served, against torch (run by ctest:
test_heads.py PATH/TO/vggserve).

torchvision models built the way users fine-tune them, with seeded random weights:
  - vgg16 with classifier[6] = nn.Linear(4096, 7): `vggserve classify --tensor` and, served,
    /classify?top_k=10 (7 entries) and the v2 metadata ([-1, 7]) and FP32 infer;
  - vgg16_bn with a whole new classifier (25088 -> 256 -> 5) and non-trivial BatchNorm
    running statistics (folded at load); `summary` gives torchvision's parameter count;
  - vgg11 with avgpool = AdaptiveAvgPool2d(1) and a sigmoid head (512 -> 32 -> 1), answered
    as two classes [1-p, p];
  - all eight torchvision VGGs (_bn too) with replaced classifiers, read by the converter;
  - state dicts the converter cannot map are refused with the layer named.
Each is checked as the issue asks: probabilities within 2e-3, logits within 1e-3 of
max|logit|, the same top-k. Needs Debian's python3-torch and python3-torchvision (exits 77,
skipped, without them). Run with /usr/bin/python3."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np

try:
    import torch
    import torchvision
except ImportError as e:
    print(f"SKIP: {e.name} missing (apt-get install python3-torch python3-torchvision)")
    sys.exit(77)

import service_util as su  # noqa: E402

BIN = su.binary_from_argv()
TESTS, ROOT = su.TESTS, su.ROOT
SCRIPTS = os.path.join(ROOT, "scripts")
sys.path.insert(0, os.path.join(TESTS, "reference"))
sys.path.insert(0, SCRIPTS)
from torch_reference import read_safetensors  # noqa: E402  (the independent reader)

PYTHON = "/usr/bin/python3"
PROB_TOL, LOGIT_TOL = 2e-3, 1e-3


def build(ctor, seed, edit):
    """torchvision's ctor() without its (slow) init, then edit(model) (the user's new head),
    then seeded random weights everywhere: He-normal kernels, small non-zero biases, and for
    BatchNorm running statistics far from (0, 1) so that folding them is exercised."""
    inits = ("kaiming_normal_", "normal_", "constant_")
    saved = {n: getattr(torch.nn.init, n) for n in inits}
    for n in inits:
        setattr(torch.nn.init, n, lambda t, *a, **k: t)
    try:
        model = ctor()
        edit(model)
    finally:
        for n, f in saved.items():
            setattr(torch.nn.init, n, f)
    rng = np.random.default_rng(seed)
    state = {}
    for name, t in model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            state[name] = t
            continue
        if name.endswith("running_mean"):
            a = rng.uniform(-0.3, 0.3, t.shape)
        elif name.endswith("running_var"):
            a = rng.uniform(0.3, 3.0, t.shape)
        elif t.ndim == 1 and name.startswith("features.") and name.endswith(".weight"):
            a = rng.uniform(0.5, 1.5, t.shape)  # BatchNorm's gamma
        elif name.endswith(".bias"):
            a = rng.uniform(-0.05, 0.05, t.shape)
        else:
            fan_in = int(np.prod(t.shape[1:]))
            a = rng.standard_normal(t.shape) * (2.0 / fan_in) ** 0.5
        state[name] = torch.from_numpy(np.asarray(a, dtype=np.float32))
    model.load_state_dict(state, strict=True)
    return model.eval()


def run(args, timeout=300):
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError(f"{args[:2]} exited {p.returncode}: {p.stderr}")
    return p


def classify(weights, tensor, k):
    p = run([BIN, "classify", "--weights", weights, "--all", "--top-k", str(k), "--tensor", tensor])
    rows = [json.loads(line) for line in p.stdout.splitlines()]
    return (np.array([r["logits"] for r in rows]), np.array([r["probabilities"] for r in rows]),
            [[t["class_id"] for t in r["top_k"]] for r in rows])


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class HeadsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
        cls.tmp = tempfile.TemporaryDirectory()
        x = np.load(os.path.join(TESTS, "fixtures", "parity_inputs.npy"))[[0, 4]]
        cls.x_path = cls.path("inputs.npy")
        np.save(cls.x_path, x)
        cls.x = x

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    @classmethod
    def path(cls, name):
        return os.path.join(cls.tmp.name, name)

    def convert(self, model, name, *flags):
        pth, out = self.path(name + ".pth"), self.path(name + ".safetensors")
        torch.save(model.state_dict(), pth)
        run([PYTHON, os.path.join(SCRIPTS, "convert_torchvision.py"), pth, out, *flags])
        os.unlink(pth)
        return out

    def reference(self, model):
        with torch.no_grad():
            return model(torch.from_numpy(self.x)).numpy().astype(np.float64)

    def assert_close(self, got_logits, got_probs, ref_logits, ref_probs, top, k, what):
        for i in range(len(ref_logits)):
            scale = np.abs(ref_logits[i]).max()
            err = np.abs(got_logits[i] - ref_logits[i]).max()
            self.assertLessEqual(err, LOGIT_TOL * scale, f"{what} row {i}: logits {err} vs {scale}")
            perr = np.abs(got_probs[i] - ref_probs[i]).max()
            self.assertLessEqual(perr, PROB_TOL, f"{what} row {i}: probabilities off by {perr}")
            self.assertEqual(top[i], np.argsort(-ref_probs[i], kind="stable")[:k].tolist(),
                             f"{what} row {i}")

    def test_classifier6_replaced_7_classes_cli_and_http(self):
        def edit(m):
            m.classifier[6] = torch.nn.Linear(4096, 7)
        model = build(torchvision.models.vgg16, 5, edit)
        w = self.convert(model, "vgg16_7")
        _, meta, _ = read_safetensors(w)
        self.assertEqual((meta["model"], meta["head_dense"], meta["head_pool"],
                          meta["head_activation"], meta["input_size"]),
                         ("vgg16", "4096,4096,7", "flatten", "softmax", "224"))
        ref = self.reference(model)
        logits, probs, top = classify(w, self.x_path, 10)
        self.assertEqual(logits.shape, (2, 7))
        self.assert_close(logits, probs, ref, softmax(ref), top, 7, "classify --tensor")

        server = su.Server(BIN, self.tmp.name, "seven", flags=["--weights", w, "--model", "vgg16"])
        try:
            server.start()
            with open(os.path.join(TESTS, "data", "images", "chelsea.jpg"), "rb") as f:
                r = server.classify(f.read(), query="?top_k=10")
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(len(json.loads(r.body)["predictions"][0]["top_k"]), 7)
            meta_r = server.request("GET", "/v2/models/vgg16")
            self.assertEqual(meta_r.status, 200, meta_r.body)
            outs = {o["name"]: o["shape"] for o in json.loads(meta_r.body)["outputs"]}
            self.assertEqual(outs["probabilities"], [-1, 7])
            ins = {i["name"]: i["shape"] for i in json.loads(meta_r.body)["inputs"]}
            self.assertEqual(ins["input"], [-1, 3, 224, 224])
            body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": list(self.x.shape),
                                "data": self.x.reshape(-1).tolist()}],
                    "outputs": [{"name": "probabilities"}, {"name": "logits"}]}
            r = server.request("POST", "/v2/models/vgg16/infer", json.dumps(body).encode(),
                               {"Content-Type": "application/json"})
            self.assertEqual(r.status, 200, r.body)
            got = {o["name"]: np.array(o["data"]).reshape(o["shape"])
                   for o in json.loads(r.body)["outputs"]}
            self.assertEqual(list(got["probabilities"].shape), [2, 7])
            top = [np.argsort(-p, kind="stable")[:7].tolist() for p in got["probabilities"]]
            self.assert_close(got["logits"], got["probabilities"], ref, softmax(ref), top, 7,
                              "v2 infer")
        finally:
            server.kill()

    def test_vgg16_bn_new_classifier_and_summary(self):
        def edit(m):
            m.classifier = torch.nn.Sequential(
                torch.nn.Linear(512 * 7 * 7, 256), torch.nn.ReLU(True), torch.nn.Dropout(),
                torch.nn.Linear(256, 5))
        model = build(torchvision.models.vgg16_bn, 6, edit)
        w = self.convert(model, "vgg16_bn_5")
        _, meta, _ = read_safetensors(w)
        self.assertEqual((meta["model"], meta["head_dense"]), ("vgg16_bn", "256,5"))
        ref = self.reference(model)
        logits, probs, top = classify(w, self.x_path, 5)
        self.assert_close(logits, probs, ref, softmax(ref), top, 5, "vgg16_bn")
        # torchvision counts parameters(): BatchNorm's weight and bias, not its running
        # statistics (buffers), which vggserve folds into the convolutions.
        want = sum(p.numel() for p in model.parameters())
        stats = sum(b.numel() for n, b in model.named_buffers() if "running" in n)
        self.assertGreater(stats, 0)
        out = run([BIN, "summary", "--weights", w]).stdout
        self.assertIn(f"Total params: {want:,}\n", out)
        self.assertIn("Model: vgg16_bn", out)
        self.assertIn("predictions      (None, 5)", out)

    def test_vgg11_global_average_sigmoid(self):
        def edit(m):
            m.avgpool = torch.nn.AdaptiveAvgPool2d(1)
            m.classifier = torch.nn.Sequential(torch.nn.Linear(512, 32), torch.nn.ReLU(True),
                                               torch.nn.Dropout(), torch.nn.Linear(32, 1))
        model = build(torchvision.models.vgg11, 7, edit)
        # Scaled so that the probabilities are far from 1/2 (the check is not blind).
        with torch.no_grad():
            model.classifier[3].weight.mul_(20)
        w = self.convert(model, "vgg11_sigmoid")
        _, meta, _ = read_safetensors(w)
        self.assertEqual((meta["head_pool"], meta["head_activation"], meta["head_dense"]),
                         ("avg", "sigmoid", "32,1"))
        z = self.reference(model)[:, 0]
        p = 1 / (1 + np.exp(-z))
        self.assertGreater(np.abs(p - 0.5).max(), 0.05)
        logits, probs, top = classify(w, self.x_path, 2)
        ref_probs = np.stack([1 - p, p], axis=1)
        # Two logits [-z/2, z/2]: their difference is torch's z, their softmax [1-p, p].
        self.assert_close(logits, probs, np.stack([-z / 2, z / 2], axis=1), ref_probs, top, 2,
                          "sigmoid")

    def test_converter_reads_all_eight_vggs(self):
        import convert_torchvision as ct
        for name in ("vgg11", "vgg13", "vgg16", "vgg19"):
            for bn in (False, True):
                ctor = getattr(torchvision.models, name + ("_bn" if bn else ""))

                def edit(m):
                    m.classifier[6] = torch.nn.Linear(4096, 3)
                model = build(ctor, 1, edit)
                sd = {k: v.numpy() for k, v in model.state_dict().items()}
                layout, tensors, meta, _ = ct.convert(sd, None)
                self.assertEqual(meta["model"], name + ("_bn" if bn else ""))
                self.assertEqual(meta["head_dense"], "4096,4096,3")
                self.assertEqual(set(tensors), {n for n, _ in layout})
                n_bn = sum(1 for k in tensors if k.endswith("running_var"))
                n_conv = {"vgg11": 8, "vgg13": 10, "vgg16": 13, "vgg19": 16}[name]
                self.assertEqual(n_bn, n_conv if bn else 0)

    def test_unmappable_heads_are_refused_naming_the_layer(self):
        cases = [
            ("bn1d", lambda m: setattr(m, "classifier", torch.nn.Sequential(
                torch.nn.Linear(25088, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 3))),
             "classifier.1 (bias, running_mean, running_var, weight) is a BatchNorm1d"),
            ("four", lambda m: setattr(m, "classifier", torch.nn.Sequential(
                *[torch.nn.Linear(25088 if i == 0 else 4, 4) for i in range(4)])),
             "4 Linear layers in classifier: vggserve supports 1 to 3"),
            ("odd_input", lambda m: setattr(m, "classifier", torch.nn.Linear(1000, 3)),
             "classifier reads 1000 inputs: VGG's features give 25088 (512x7x7) or, pooled to "
             "1x1, 512"),
        ]
        for name, edit, why in cases:
            model = build(torchvision.models.vgg11, 2, edit)
            pth, out = self.path(name + ".pth"), self.path(name + ".safetensors")
            sd = model.state_dict()
            torch.save(sd, pth)
            p = subprocess.run([PYTHON, os.path.join(SCRIPTS, "convert_torchvision.py"), pth, out],
                               capture_output=True, text=True, timeout=120)
            self.assertNotEqual(p.returncode, 0, name)
            self.assertIn(why, p.stderr, name)
            self.assertFalse(os.path.exists(out), name)
        # A head outside `classifier` (a user's own attribute name).
        sd = {"features.0.weight": torch.zeros(64, 3, 3, 3), "fc.weight": torch.zeros(3, 4)}
        pth = self.path("fc.pth")
        torch.save(sd, pth)
        p = subprocess.run([PYTHON, os.path.join(SCRIPTS, "convert_torchvision.py"), pth,
                            self.path("fc.safetensors")], capture_output=True, text=True)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("fc.weight: a layer outside features and classifier", p.stderr)


if __name__ == "__main__":
    su.main()
