#!/usr/bin/python3
"""Tests of the weight converters (run by ctest: test_converters.py PATH/TO/vggserve).

A torchvision VGG16 with seeded random weights (biases made non-zero) is the known model:
  - saved as .pth -> scripts/convert_torchvision.py -> `vggserve classify --all --tensor`
    must give torchvision's logits (1e-3 of the largest) and the same top-5;
  - written as an .h5 in the published Keras file's layout (layer_names / weight_names,
    `block1_conv1_W_1:0`, HWIO kernels, fc1 rows in HWC order) -> scripts/convert_keras.py ->
    the same check on a caffe-preprocessed tensor (`vggserve preprocess --mode caffe`).
Needs Debian's python3-torch, python3-torchvision, python3-h5py, python3-numpy; exits 77
(skipped) without them. Run with /usr/bin/python3."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np

try:
    import h5py
    import torch
    import torchvision
except ImportError as e:
    print(f"SKIP: {e.name} missing (apt-get install python3-torch python3-torchvision "
          f"python3-h5py)")
    sys.exit(77)

import service_util as su  # noqa: E402

BIN = su.binary_from_argv()
TESTS, ROOT = su.TESTS, su.ROOT
SCRIPTS = os.path.join(ROOT, "scripts")
sys.path.insert(0, os.path.join(TESTS, "reference"))
sys.path.insert(0, SCRIPTS)  # the converters' functions, for the small-file tests
from torch_reference import read_safetensors  # noqa: E402  (the independent reader)

PYTHON = "/usr/bin/python3"
CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]  # torchvision vgg16.features
KERAS_CONVS = [f"block{b}_conv{c}" for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))
               for c in range(1, n + 1)]


def convert(script, src, out, *flags):
    p = subprocess.run([PYTHON, os.path.join(SCRIPTS, script), src, out, *flags],
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise AssertionError(f"{script} exited {p.returncode}: {p.stderr}")
    return p


def classify_logits(weights, tensor):
    p = subprocess.run([BIN, "classify", "--weights", weights, "--all", "--top-k", "5",
                        "--tensor", tensor], capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise AssertionError(f"classify exited {p.returncode}: {p.stderr}")
    rows = [json.loads(line) for line in p.stdout.splitlines()]
    return np.array([r["logits"] for r in rows]), [[t["class_id"] for t in r["top_k"]] for r in rows]


def keras_layout(sd):
    """{layer: [(dataset name, array)]} as the published Keras file stores state_dict `sd`."""
    layers = {}

    def names(layer):
        return f"{layer}_W_1:0", f"{layer}_b_1:0"  # Keras 1 names, as in the published file

    for layer, i in zip(KERAS_CONVS, CONV_INDICES):
        w, b = sd[f"features.{i}.weight"], sd[f"features.{i}.bias"]
        kn, bn = names(layer)
        layers[layer] = [(kn, w.transpose(2, 3, 1, 0)), (bn, b)]      # OIHW -> HWIO
    fc1 = sd["classifier.0.weight"]                                    # (4096, 512*7*7) CHW
    fc1 = fc1.reshape(4096, 512, 7, 7).transpose(0, 2, 3, 1).reshape(4096, -1)  # -> HWC
    for layer, w, b in (("fc1", fc1, sd["classifier.0.bias"]),
                        ("fc2", sd["classifier.3.weight"], sd["classifier.3.bias"]),
                        ("predictions", sd["classifier.6.weight"], sd["classifier.6.bias"])):
        kn, bn = names(layer)
        layers[layer] = [(kn, w.T), (bn, b)]                           # (out, in) -> (in, out)
    return layers


def write_keras_h5(path, layers):
    """The layout Keras's save_weights writes (and its loader reads)."""
    order = ["input_1"]
    for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)):
        order += [f"block{b}_conv{c}" for c in range(1, n + 1)] + [f"block{b}_pool"]
    order += ["flatten", "fc1", "fc2", "predictions"]
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([n.encode() for n in order])
        f.attrs["backend"] = b"tensorflow"
        for name in order:
            g = f.create_group(name)
            weights = layers.get(name, [])
            g.attrs["weight_names"] = np.array([wn.encode() for wn, _ in weights], dtype="S")
            for wn, arr in weights:
                g.create_dataset(wn, data=np.ascontiguousarray(arr, dtype=np.float32))


def random_vgg16(seed):
    """torchvision's vgg16 holding seeded random weights: He-normal kernels (as torchvision
    initialises them) and small non-zero biases (torchvision's are zero, which would hide a
    dropped bias). torchvision's own init of 138 M parameters is skipped: it takes seconds."""
    inits = ("kaiming_normal_", "normal_", "constant_")
    saved = {n: getattr(torch.nn.init, n) for n in inits}
    for n in inits:
        setattr(torch.nn.init, n, lambda t, *a, **k: t)
    try:
        model = torchvision.models.vgg16()
    finally:
        for n, f in saved.items():
            setattr(torch.nn.init, n, f)
    rng = np.random.default_rng(seed)
    state = {}
    for name, t in model.state_dict().items():
        if name.endswith(".bias"):
            a = rng.uniform(-0.05, 0.05, t.shape).astype(np.float32)
        else:
            fan_in = int(np.prod(t.shape[1:]))
            a = rng.standard_normal(t.shape, dtype=np.float32) * np.float32((2.0 / fan_in) ** 0.5)
        state[name] = torch.from_numpy(a)
    model.load_state_dict(state, strict=True)
    return model.eval()


class ConvertersTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
        cls.model = random_vgg16(seed=4)
        cls.sd = {k: v.numpy() for k, v in cls.model.state_dict().items()}
        cls.tmp = tempfile.TemporaryDirectory()
        cls.pth = cls.path("vgg16_random.pth")
        torch.save(cls.model.state_dict(), cls.pth)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    @classmethod
    def path(cls, name):
        return os.path.join(cls.tmp.name, name)

    def torch_logits(self, x):
        with torch.no_grad():
            return self.model(torch.from_numpy(x)).numpy()

    def assert_matches_torchvision(self, weights, tensor_path):
        x = np.load(tensor_path)
        ref = self.torch_logits(x)
        got, top5 = classify_logits(weights, tensor_path)
        self.assertEqual(got.shape, ref.shape)
        for i in range(len(ref)):
            scale = np.abs(ref[i]).max()
            err = np.abs(got[i] - ref[i]).max()
            self.assertLessEqual(err, 1e-3 * scale, f"row {i}: max |diff| {err} vs scale {scale}")
            self.assertEqual(top5[i], np.argsort(-ref[i], kind="stable")[:5].tolist(), f"row {i}")

    def test_torchvision_pth(self):
        out = self.path("tv.safetensors")
        convert("convert_torchvision.py", self.pth, out)
        tensors, meta, stored = read_safetensors(out)
        self.assertEqual(stored, {"F32"})
        self.assertEqual((meta["model"], meta["preprocess"]), ("vgg16", "torchvision"))
        self.assertEqual(set(tensors), set(self.sd))
        # Torchvision preprocessing: the cat photo and the synthetic row of the parity batch.
        x = np.load(os.path.join(TESTS, "fixtures", "parity_inputs.npy"))[[0, 4]]
        np.save(self.path("tv_inputs.npy"), x)
        self.assert_matches_torchvision(out, self.path("tv_inputs.npy"))

    def test_torchvision_legacy_format_and_dataparallel_prefix(self):
        # torchvision's published file predates the zip format; DataParallel adds "module.".
        # Small tensors: this is about reading the file, which the layout check comes after.
        import convert_torchvision
        want = {"features.0.weight": torch.randn(4, 3, 3, 3), "classifier.6.bias": torch.randn(7)}
        pth = self.path("legacy.pth")
        torch.save({"module." + k: v for k, v in want.items()}, pth,
                   _use_new_zipfile_serialization=False)
        got = convert_torchvision.load_state_dict(pth)
        self.assertEqual(set(got), set(want))
        for name, t in want.items():
            np.testing.assert_array_equal(got[name], t.numpy(), err_msg=name)

    def test_keras_h5(self):
        h5 = self.path("vgg16_weights_tf_dim_ordering_tf_kernels.h5")
        write_keras_h5(h5, keras_layout(self.sd))
        out = self.path("keras.safetensors")
        indices = self.path("class_indices.json")  # Keras's own labels file, embedded
        with open(indices, "w") as f:
            json.dump({f"k{i}": i for i in range(1000)}, f)
        convert("convert_keras.py", h5, out, "--labels", indices)
        _, meta, _ = read_safetensors(out)
        self.assertEqual((meta["model"], meta["preprocess"]), ("vgg16", "caffe"))
        self.assertEqual(json.loads(meta["labels"]), [f"k{i}" for i in range(1000)])
        # Caffe preprocessing (what Keras weights expect), made by vggserve itself.
        xc = self.path("chelsea_caffe.npy")
        subprocess.run([BIN, "preprocess", "--mode", "caffe",
                        os.path.join(TESTS, "data", "images", "chelsea.jpg"), "--out", xc],
                       check=True, capture_output=True, timeout=60)
        self.assert_matches_torchvision(out, xc)
        # The file says "preprocess": "caffe", so classify and the service use it unasked.
        photo = os.path.join(TESTS, "data", "images", "chelsea.jpg")
        want, _ = classify_logits(out, xc)

        def photo_result(*flags):
            p = subprocess.run([BIN, "classify", "--weights", out, "--all", *flags, photo],
                               capture_output=True, text=True, timeout=300)
            self.assertEqual(p.returncode, 0, p.stderr)
            return json.loads(p.stdout.splitlines()[0])
        auto = photo_result()
        np.testing.assert_allclose(auto["logits"], want[0], rtol=0, atol=1e-6 * np.abs(want[0]).max())
        tv = np.array(photo_result("--mode", "torchvision")["logits"])
        self.assertGreater(np.abs(tv - want[0]).max(), 1e-3 * np.abs(want[0]).max(),
                           "torchvision preprocessing gave caffe's logits: the check is blind")
        server = su.Server(BIN, self.tmp.name, "keras", flags=["--weights", out, "--model", "vgg16"])
        try:
            server.start()
            with open(photo, "rb") as f:
                r = server.classify(f.read(), query="?top_k=5")
            self.assertEqual(r.status, 200, r.body)
            top5 = json.loads(r.body)["predictions"][0]["top_k"]
            self.assertEqual([t["class_id"] for t in top5], [t["class_id"] for t in auto["top_k"]])
            np.testing.assert_allclose([t["probability"] for t in top5],
                                       [t["probability"] for t in auto["top_k"]], rtol=1e-5)
            self.assertIn("caffe preprocessing", server.stderr())
        finally:
            server.kill()

    def test_keras2_names_read_like_keras1(self):
        # Keras 2 nests kernel:0/bias:0 under a group named after the layer; the converter
        # follows weight_names, so both read the same. Small tensors, two layers.
        import convert_keras
        small = {"features.0.weight": np.arange(2 * 3 * 9, dtype=np.float32).reshape(2, 3, 3, 3),
                 "features.0.bias": np.array([1, 2], dtype=np.float32)}
        for keras2 in (False, True):
            layers = {"block1_conv1": [(kn, small["features.0.weight"].transpose(2, 3, 1, 0)),
                                       (bn, small["features.0.bias"])]
                      for kn, bn in [(("block1_conv1/kernel:0", "block1_conv1/bias:0") if keras2
                                      else ("block1_conv1_W_1:0", "block1_conv1_b_1:0"))]}
            h5 = self.path(f"small{int(keras2)}.h5")
            write_keras_h5(h5, layers)
            got = convert_keras.read_keras_layers(h5)
            self.assertEqual(list(got), ["block1_conv1"])
            k, b = convert_keras.kernel_bias("block1_conv1", got["block1_conv1"])
            np.testing.assert_array_equal(k.transpose(3, 2, 0, 1), small["features.0.weight"])
            np.testing.assert_array_equal(b, small["features.0.bias"])

    def test_labels_are_embedded(self):
        import label_file
        names = [f"part {i}" for i in range(1000)]
        wnids = [f"n{i:08d}" for i in range(1000)]
        forms = {"labels.txt": "\r\n".join(names) + "\r\n",
                 "index_to_name.json": json.dumps({str(i): [w, n] for i, (w, n) in
                                                   enumerate(zip(wnids, names))}),
                 "class_indices.json": json.dumps({n: i for i, n in enumerate(names)}),
                 "list.json": json.dumps(names)}
        for name, text in forms.items():  # the converters read each format as vggserve does
            with open(self.path(name), "w") as f:
                f.write(text)
            got = label_file.read_labels(self.path(name))
            self.assertEqual([n for _, n in got], names, name)
            self.assertEqual([w for w, _ in got],
                             wnids if name == "index_to_name.json" else [None] * 1000, name)
        out = self.path("tv_labels.safetensors")
        convert("convert_torchvision.py", self.pth, out, "--labels", self.path("index_to_name.json"))
        _, meta, _ = read_safetensors(out)
        self.assertEqual(json.loads(meta["labels"]),
                         {str(i): [w, n] for i, (w, n) in enumerate(zip(wnids, names))})
        x = np.load(os.path.join(TESTS, "fixtures", "parity_inputs.npy"))[[0]]
        np.save(self.path("one.npy"), x)
        p = subprocess.run([BIN, "classify", "--weights", out, "--top-k", "3", "--tensor",
                            self.path("one.npy")], capture_output=True, text=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stderr)
        for t in json.loads(p.stdout)["top_k"]:
            self.assertEqual((t["label"], t["wnid"]), (names[t["class_id"]], wnids[t["class_id"]]))
        # A count other than the classifier's, or a file that is not labels: refused, no output.
        with open(self.path("seven.txt"), "w") as f:
            f.write("".join(f"c{i}\n" for i in range(7)))
        with open(self.path("binary.bin"), "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n\0\0")
        for script, src, labels, why in (
                ("convert_torchvision.py", self.pth, "seven.txt",
                 "7 labels, but the model has 1000 classes"),
                ("convert_keras.py", self.pth, "binary.bin", "a NUL byte: binary data"),
                ("convert_torchvision.py", self.pth, "missing.txt", "No such file")):
            p = subprocess.run([PYTHON, os.path.join(SCRIPTS, script), src, self.path("x.st"),
                                "--labels", self.path(labels)],
                               capture_output=True, text=True, timeout=300)
            self.assertNotEqual(p.returncode, 0, f"{script} {labels}")
            self.assertIn(why, p.stderr)
            self.assertFalse(os.path.exists(self.path("x.st")))

    def test_bad_inputs_are_refused_with_a_reason(self):
        bad_pth = self.path("bad.pth")
        torch.save({"features.0.weight": torch.zeros(2, 3, 3, 3)}, bad_pth)
        notop = self.path("notop.h5")  # conv layers only, as in ..._notop.h5
        write_keras_h5(notop, {n: [(f"{n}_W_1:0", np.zeros((3, 3, 1, 1))), (f"{n}_b_1:0", np.zeros(1))]
                               for n in KERAS_CONVS})
        for script, src, why in (("convert_torchvision.py", bad_pth, "not VGG11/13/16/19"),
                                 ("convert_keras.py", notop, "notop"),
                                 ("convert_keras.py", self.pth, "not an HDF5 file")):
            p = subprocess.run([PYTHON, os.path.join(SCRIPTS, script), src, self.path("x.st")],
                               capture_output=True, text=True, timeout=120)
            self.assertNotEqual(p.returncode, 0, f"{script} {src}")
            self.assertIn(why, p.stderr)
            self.assertFalse(os.path.exists(self.path("x.st")))


if __name__ == "__main__":
    su.main()
