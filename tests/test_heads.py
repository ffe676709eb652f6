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
import io
import json
import os
import subprocess
import sys
import tempfile
import unittest
import zipfile

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


def build(ctor, seed, edit, randomize=True):
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
    if not randomize:  # names and shapes only
        return model.eval()
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
        names = ["daisy", "dandelion", "rose", "sunflower", "tulip", "iris", "lily"]
        with open(self.path("flowers.txt"), "w") as f:
            f.write("\n".join(names) + "\n")
        w = self.convert(model, "vgg16_7", "--labels", self.path("flowers.txt"))
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
            top_k = json.loads(r.body)["predictions"][0]["top_k"]
            self.assertEqual(len(top_k), 7)
            self.assertEqual(sorted(t["label"] for t in top_k), sorted(names))
            self.assertTrue(all(t["label"] == names[t["class_id"]] for t in top_k))
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
                model = build(ctor, 1, edit, randomize=False)
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


# ---------------------------------------------------------------- Keras fixtures

BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
WIDTHS = (64, 128, 256, 512, 512)


def keras_layer(kind, name, keras3, **cfg):
    layer = {"class_name": kind, "config": {"name": name, "trainable": True, **cfg}}
    if keras3:
        layer["module"] = "keras.layers"
        layer["name"] = name
    return layer


def keras_input(name, size, keras3):
    key = "batch_shape" if keras3 else "batch_input_shape"
    return keras_layer("InputLayer", name, keras3, **{key: [None, size, size, 3]})


def vgg_base_layers(arch, size, keras3):
    """keras.applications.VGG16(include_top=False)'s layers as its config lists them."""
    layers = [keras_input("input_1", size, keras3)]
    for b, n in enumerate(BLOCKS[arch], 1):
        for c in range(1, n + 1):
            layers.append(keras_layer("Conv2D", f"block{b}_conv{c}", keras3, filters=WIDTHS[b - 1],
                                      kernel_size=[3, 3], strides=[1, 1], padding="same",
                                      activation="relu", use_bias=True))
        layers.append(keras_layer("MaxPooling2D", f"block{b}_pool", keras3, pool_size=[2, 2],
                                  strides=[2, 2], padding="valid"))
    return layers


def head_layers(pool, dense, keras3):
    """dense: [(name, units, activation)], Dropout between them as the tutorials put it."""
    kinds = {"flatten": "Flatten", "avg": "GlobalAveragePooling2D", "max": "GlobalMaxPooling2D"}
    out = [keras_layer(kinds[pool], pool + "_pool", keras3)]
    for i, (name, units, act) in enumerate(dense):
        if i:
            out.append(keras_layer("Dropout", f"dropout_{i}", keras3, rate=0.5))
        out.append(keras_layer("Dense", name, keras3, units=units, activation=act, use_bias=True))
    return out


class KerasModel:
    """A Keras VGG + head as torch computes it (the reference) and as Keras saves it."""

    def __init__(self, arch, size, pool, dense, seed):
        self.arch, self.size, self.pool, self.dense = arch, size, pool, dense
        self.torch = build(getattr(torchvision.models, arch), seed, lambda m: None).features
        rng = np.random.default_rng(seed + 100)
        c, hw = 512, size
        for _ in range(5):
            hw //= 2
        n_in = c * hw * hw if pool == "flatten" else c
        self.kernels = []  # Keras's (in, out) kernels and biases
        for name, units, act in dense:
            k = rng.standard_normal((n_in, units)) * (2.0 / n_in) ** 0.5
            if name == dense[-1][0]:
                k *= 20  # probabilities away from uniform
            self.kernels.append((k.astype(np.float32),
                                 rng.uniform(-0.05, 0.05, units).astype(np.float32)))
            n_in = units

    def conv_weights(self):
        """{keras conv name: (HWIO kernel, bias)}."""
        convs = [m for m in self.torch if isinstance(m, torch.nn.Conv2d)]
        names = [f"block{b}_conv{c}" for b, n in enumerate(BLOCKS[self.arch], 1)
                 for c in range(1, n + 1)]
        return {n: (m.weight.detach().numpy().transpose(2, 3, 1, 0), m.bias.detach().numpy())
                for n, m in zip(names, convs)}

    def reference(self, x):
        """(pre-activation logits, probabilities) of the same layers, Keras's NHWC flatten."""
        with torch.no_grad():
            f = self.torch(torch.from_numpy(x)).double()
        if self.pool == "flatten":
            h = f.permute(0, 2, 3, 1).reshape(len(x), -1)
        else:
            h = f.mean((2, 3)) if self.pool == "avg" else f.amax((2, 3))
        h = h.numpy()
        for i, (k, b) in enumerate(self.kernels):
            h = h @ k.astype(np.float64) + b
            if i < len(self.kernels) - 1:
                h = np.maximum(h, 0)
        if self.dense[-1][2] == "sigmoid":
            p = 1 / (1 + np.exp(-h[:, 0]))
            return np.stack([-h[:, 0] / 2, h[:, 0] / 2], 1), np.stack([1 - p, p], 1)
        return h, softmax(h)

    def config(self, nested, keras3, extra_first=()):
        base = vgg_base_layers(self.arch, self.size, keras3)
        head = head_layers(self.pool, self.dense, keras3)
        if nested:
            vgg = {"class_name": "Functional", "config": {"name": self.arch, "layers": base}}
            if keras3:
                vgg["module"] = "keras.src.models.functional"
            layers = [*extra_first, vgg, *head]
            if keras3:
                layers.insert(0, keras_input("input_layer", self.size, True))
            top = {"class_name": "Sequential", "config": {"name": "sequential", "layers": layers}}
        else:
            top = {"class_name": "Functional" if keras3 else "Model",
                   "config": {"name": "model", "layers": [*base[:1], *extra_first, *base[1:], *head]}}
        if keras3:
            top["module"] = "keras"
        return top

    def named_weights(self):
        convs = self.conv_weights()
        dense = {name: kb for (name, _, _), kb in zip(self.dense, self.kernels)}
        return convs, dense

    def save_keras2(self, path, nested):
        """keras/saving/legacy/hdf5_format.py's layout: model_config, model_weights/<layer>
        with layer_names, weight_names and datasets named after the variables."""
        import h5py
        convs, dense = self.named_weights()
        config = self.config(nested, False)
        with h5py.File(path, "w") as f:
            f.attrs["model_config"] = json.dumps(config).encode()
            f.attrs["keras_version"] = b"2.11.0"
            f.attrs["backend"] = b"tensorflow"
            g = f.create_group("model_weights")
            top = [layer["config"]["name"] for layer in config["config"]["layers"]]
            g.attrs["layer_names"] = np.array([n.encode() for n in top])
            for name in top:
                lg = g.create_group(name)
                if nested and name == self.arch:
                    owned = [x for c in convs for x in ((f"{c}/kernel:0", convs[c][0]),
                                                        (f"{c}/bias:0", convs[c][1]))]
                else:
                    kb = convs.get(name) or dense.get(name)
                    owned = [(f"{name}/kernel:0", kb[0]), (f"{name}/bias:0", kb[1])] if kb else []
                lg.attrs["weight_names"] = np.array([n.encode() for n, _ in owned], dtype="S")
                for n, a in owned:
                    lg.create_dataset(n, data=a)

    def save_keras3(self, path, extra_first=()):
        """The .keras zip: config.json, metadata.json, model.weights.h5 with each layer's
        variables at layers/<name>/vars/<i> (the nested base's under layers/<arch>/)."""
        import h5py
        convs, dense = self.named_weights()
        buf = io.BytesIO()
        with h5py.File(buf, "w") as f:
            for c, (k, b) in convs.items():
                f[f"layers/{self.arch}/layers/{c}/vars/0"] = k
                f[f"layers/{self.arch}/layers/{c}/vars/1"] = b
            for name, (k, b) in dense.items():
                f[f"layers/{name}/vars/0"] = k
                f[f"layers/{name}/vars/1"] = b
            f.create_group("optimizer/vars")
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("metadata.json", json.dumps({"keras_version": "3.3.3"}))
            z.writestr("config.json", json.dumps(self.config(True, True, extra_first)))
            z.writestr("model.weights.h5", buf.getvalue())


class KerasHeadsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
        cls.tmp = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def check(self, km, src, *flags, expect_meta=None):
        out = self.path(os.path.basename(src) + ".safetensors")
        run([PYTHON, os.path.join(SCRIPTS, "convert_keras.py"), src, out, *flags])
        _, meta, _ = read_safetensors(out)
        for k, v in (expect_meta or {}).items():
            self.assertEqual(meta[k], v, k)
        rng = np.random.default_rng(3)
        x = rng.uniform(0, 1, (2, 3, km.size, km.size)).astype(np.float32)
        xp = self.path("x.npy")
        np.save(xp, x)
        ref_logits, ref_probs = km.reference(x)
        k = ref_probs.shape[1]
        logits, probs, top = classify(out, xp, k)
        HeadsTest.assert_close(self, logits, probs, ref_logits, ref_probs, top, k, src)
        return out

    def test_keras2_sequential_nested_flatten_softmax_150(self):
        km = KerasModel("vgg16", 150, "flatten", [("dense", 64, "relu"), ("dense_1", 5, "softmax")], 8)
        h5 = self.path("nested.h5")
        km.save_keras2(h5, nested=True)
        out = self.check(km, h5, "--preprocess", "rescale",
                         expect_meta={"model": "vgg16", "head_pool": "flatten", "input_size": "150",
                                      "head_dense": "64,5", "preprocess": "rescale"})
        # The tensor that model sees: 150x150, RGB / 255 of the whole image.
        xp = self.path("photo.npy")
        run([BIN, "preprocess", "--weights", out,
             os.path.join(TESTS, "data", "images", "chelsea.jpg"), "--out", xp])
        t = np.load(xp)
        self.assertEqual(t.shape, (1, 3, 150, 150))
        self.assertTrue(0 <= t.min() and t.max() <= 1 and t.max() > 0.5)
        # The photo over HTTP: the service preprocesses it as the file says (rescale, 150) and
        # answers what torch computes on that tensor; v2 says the model's shapes.
        ref_logits, ref_probs = km.reference(t)
        server = su.Server(BIN, self.tmp.name, "keras150", flags=["--weights", out, "--model", "vgg16"])
        try:
            server.start()
            with open(os.path.join(TESTS, "data", "images", "chelsea.jpg"), "rb") as f:
                r = server.classify(f.read(), query="?top_k=10")
            self.assertEqual(r.status, 200, r.body)
            top = json.loads(r.body)["predictions"][0]["top_k"]
            self.assertEqual([e["class_id"] for e in top],
                             np.argsort(-ref_probs[0], kind="stable").tolist())
            got = np.array([e["probability"] for e in sorted(top, key=lambda e: e["class_id"])])
            self.assertLessEqual(np.abs(got - ref_probs[0]).max(), PROB_TOL)
            meta = json.loads(server.request("GET", "/v2/models/vgg16_explain").body)
            shapes = {e["name"]: e["shape"] for e in meta["inputs"] + meta["outputs"]}
            self.assertEqual(shapes["input"], [-1, 3, 150, 150])
            self.assertEqual(shapes["probabilities"], [-1, 5])
            self.assertEqual(shapes["gradcam"], [-1, 9, 9])
        finally:
            server.kill()

    def test_keras2_functional_gap_sigmoid(self):
        km = KerasModel("vgg16", 150, "avg", [("dense", 32, "relu"), ("predictions", 1, "sigmoid")], 9)
        h5 = self.path("functional.h5")
        km.save_keras2(h5, nested=False)
        self.check(km, h5, expect_meta={"head_pool": "avg", "head_activation": "sigmoid",
                                        "preprocess": "caffe"})

    def test_keras3_archive_gap_rescaling_layer(self):
        km = KerasModel("vgg19", 128, "avg", [("dense", 32, "relu"), ("dense_1", 3, "softmax")], 10)
        keras = self.path("model.keras")
        km.save_keras3(keras, extra_first=[keras_layer("Rescaling", "rescaling", True,
                                                       scale=1 / 255, offset=0.0)])
        self.check(km, keras, expect_meta={"model": "vgg19", "input_size": "128",
                                           "head_pool": "avg", "preprocess": "rescale"})

    def test_keras3_flatten_max_pool_variants(self):
        km = KerasModel("vgg16", 96, "max", [("dense", 4, "softmax")], 11)
        keras = self.path("max.keras")
        km.save_keras3(keras)
        self.check(km, keras, "--preprocess", "tf", expect_meta={"head_pool": "max",
                                                                 "preprocess": "tf"})

    def test_unmappable_keras_models_name_the_layer(self):
        km = KerasModel("vgg16", 64, "flatten", [("dense", 8, "relu"), ("dense_1", 3, "softmax")], 12)

        def bad(edit, why, name):
            config = km.config(True, True)
            edit(config["config"]["layers"])
            z = self.path(name + ".keras")
            km.save_keras3(z)
            with zipfile.ZipFile(z) as arc:
                parts = {n: arc.read(n) for n in arc.namelist()}
            parts["config.json"] = json.dumps(config).encode()
            with zipfile.ZipFile(z, "w") as arc:
                for n, data in parts.items():
                    arc.writestr(n, data)
            out = self.path(name + ".safetensors")
            p = subprocess.run([PYTHON, os.path.join(SCRIPTS, "convert_keras.py"), z, out],
                               capture_output=True, text=True, timeout=120)
            self.assertNotEqual(p.returncode, 0, name)
            self.assertIn(why, p.stderr, name)
            self.assertFalse(os.path.exists(out), name)

        bad(lambda L: L.insert(-1, keras_layer("BatchNormalization", "bn", True)),
            "layer bn (BatchNormalization): vggserve cannot map this layer kind", "bn")
        bad(lambda L: L.insert(-1, keras_layer("Add", "add", True)),
            "layer add (Add): vggserve cannot map this layer kind", "add")
        # A truncated head: the config has a Dense whose weights the file lacks.
        bad(lambda L: L.append(keras_layer("Dense", "dense_2", True, units=2,
                                           activation="softmax")),
            "layer dense_1 (Dense, softmax): hidden Dense layers must be ReLU", "order")
        bad(lambda L: L.__setitem__(-1, keras_layer("Dense", "dense_9", True, units=3,
                                                    activation="softmax")),
            "layer dense_9: no weights in the file", "truncated")
        bad(lambda L: L.__setitem__(-1, keras_layer("Dense", "dense_1", True, units=3,
                                                    activation="tanh")),
            "layer dense_1 (Dense, tanh): the last activation must be softmax or sigmoid", "tanh")


if __name__ == "__main__":
    su.main()
