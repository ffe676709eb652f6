#!/usr/bin/env python3
"""Grad-CAM explanations (`vggserve explain`, model/engine_explain.c vgg_engine_explain) against torch
autograd on torchvision's VGG16 with the same weights file (`gen-weights --seed 1`).

The reference: A = features[:-1](x) (conv5_3 after its ReLU), g = d logit_c / d A by autograd
through pool5 and the classifier in eval mode (dropout off), alpha = mean of g over each
channel's 14 x 14 positions, map = ReLU(sum_k alpha_k A_k) / its maximum (zeros when it is 0).
f32 must match it to 1e-3 (max absolute difference): on the fixture's five inputs for each
one's top-1, which must be torch's, and on image files through the service's decoding for an
explicit class. bf16 is measured against the f32 reference and held to a loose bound. The
probability printed with each map equals `classify`'s bit for bit. POST /explain on a server
with the same weights gives the same maps (to torch's 1e-3), /classify's probabilities and the
crop window torchvision's geometry gives.

Usage: test_explain.py BUILD/vggserve (Debian python3-torch, python3-torchvision, numpy);
about 40 s on two cores, most of it loading the 528 MB weights once per vggserve run."""
import base64
import json
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch

import service_util as su
from service_util import IMAGES, TESTS, binary_from_argv

sys.path.insert(0, os.path.join(TESTS, "reference"))
import torch_reference  # noqa: E402  (read_safetensors, to_torchvision_names, build_vgg)

BIN = binary_from_argv()
INPUTS = os.path.join(TESTS, "fixtures", "parity_inputs.npy")
PHOTOS = ("chelsea.jpg", "coffee.jpg")
F32_LIMIT = 1e-3
# bf16 keeps 8 bits of mantissa through 13 convolutions: measured 0.042 on these inputs.
BF16_LIMIT = 0.1


def run(*args, check=True):
    p = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} exited {p.returncode}: {p.stderr}")
    return p


def json_lines(p):
    return [json.loads(line) for line in p.stdout.splitlines()]


def grids(rows):
    return np.array([r["grid"] for r in rows], dtype=np.float64)


def conv5_3(model, x):
    """A: the features before pool5, (N, 512, 14, 14), for inputs x (N, 3, 224, 224)."""
    with torch.no_grad():
        return model.features[:-1](torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))


def torch_gradcam(model, a, classes):
    """(N, 14, 14) maps and (N, 1000) logits from A (conv5_3) for classes (N,)."""
    a = a.clone().requires_grad_(True)
    logits = model.classifier(torch.flatten(model.avgpool(model.features[-1](a)), 1))
    logits[torch.arange(len(classes)), torch.as_tensor(classes)].sum().backward()
    alpha = a.grad.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((alpha * a).sum(dim=1)).detach().double()
    top = cam.amax(dim=(1, 2), keepdim=True)
    cam = torch.where(top > 0, cam / torch.where(top > 0, top, torch.ones_like(top)), cam)
    return cam.numpy(), logits.detach().numpy()


class ExplainTest(unittest.TestCase):
    """`vggserve explain` and POST /explain (a server on the same weights file, started first
    so that it loads while torch computes the references)."""

    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(2)
        cls.tmp = tempfile.TemporaryDirectory()
        cls.weights = os.path.join(cls.tmp.name, "seed1.safetensors")
        run("gen-weights", "--seed", "1", "--out", cls.weights)
        cls.server = su.Server(BIN, cls.tmp.name, "explain", ["--weights", cls.weights,
                                                              "--max-batch-size", "2"],
                               base_flags=())
        cls.server.start(ready=False)
        tensors, _, _ = torch_reference.read_safetensors(cls.weights)
        state = {k: torch.from_numpy(v) for k, v in torch_reference.to_torchvision_names(tensors).items()}
        cls.model = torch_reference.build_vgg("vgg16")
        cls.model.load_state_dict(state, strict=True)
        cls.model.eval()
        del state, tensors
        cls.x = np.load(INPUTS)
        cls.a = conv5_3(cls.model, cls.x)
        # Each input's top-1 map, and an explicit class for every row: row 0's second most
        # likely one.
        cls.ref_logits = torch_gradcam(cls.model, cls.a, [0] * len(cls.x))[1]
        cls.top1 = cls.ref_logits.argmax(axis=1)
        cls.ref_top1 = torch_gradcam(cls.model, cls.a, cls.top1)[0]
        cls.other = int(np.argsort(-cls.ref_logits[0])[1])
        cls.ref_other = torch_gradcam(cls.model, cls.a, [cls.other] * len(cls.x))[0]

    @classmethod
    def tearDownClass(cls):
        cls.server.kill()
        cls.tmp.cleanup()

    def explain(self, *args):
        return json_lines(run("explain", "--weights", self.weights, *args))

    def test_f32_top1_matches_torch_and_classify(self):
        rows = self.explain("--tensor", INPUTS)
        self.assertEqual(len(rows), len(self.x))
        for r in rows:
            self.assertEqual(set(r), {"file", "class_id", "label", "probability", "grid"})
            self.assertEqual(np.array(r["grid"]).shape, (14, 14))
            self.assertEqual(max(max(row) for row in r["grid"]), 1.0)
        self.assertEqual([r["class_id"] for r in rows], self.top1.tolist())
        diff = np.abs(grids(rows) - self.ref_top1).max()
        print(f"f32 direct, top-1: max |map - torch| = {diff:.3g}")
        self.assertLessEqual(diff, F32_LIMIT)
        # The probability that comes with a map is classify's, bit for bit (9 digits round-trip).
        classified = json_lines(run("classify", "--weights", self.weights, "--top-k", "1",
                                    "--tensor", INPUTS))
        for r, c in zip(rows, classified):
            self.assertEqual(r["class_id"], c["top_k"][0]["class_id"])
            self.assertEqual(r["label"], c["top_k"][0]["label"])
            self.assertEqual(r["probability"], c["top_k"][0]["probability"])

    def test_f32_explicit_class_on_image_files_matches_torch(self):
        # Through the service's decoding: torch sees what `vggserve preprocess` writes.
        files = [os.path.join(IMAGES, f) for f in PHOTOS]
        seen = []
        for i, f in enumerate(files):
            out = os.path.join(self.tmp.name, f"photo{i}.npy")
            run("preprocess", f, "--out", out)
            seen.append(np.load(out))
        ref = torch_gradcam(self.model, conv5_3(self.model, np.concatenate(seen)),
                            [self.other] * len(files))[0]
        rows = self.explain("--class-id", str(self.other), "--batch", "1", *files)
        self.assertEqual([r["file"] for r in rows], files)
        self.assertEqual({r["class_id"] for r in rows}, {self.other})
        diff = np.abs(grids(rows) - ref).max()
        print(f"f32 direct, image files, class {self.other}: max |map - torch| = {diff:.3g}")
        self.assertLessEqual(diff, F32_LIMIT)

    def test_bf16_is_near_f32(self):
        # One class for every row, so the map's error is measured apart from ranking (bf16's
        # top-1 may differ where generated weights leave classes a hair apart).
        rows = self.explain("--precision", "bf16", "--class-id", str(self.other), "--tensor", INPUTS)
        diff = np.abs(grids(rows) - self.ref_other).max()
        print(f"bf16 direct, class {self.other}: max |map - torch f32| = {diff:.3g}")
        self.assertLessEqual(diff, BF16_LIMIT)

    def test_bad_requests(self):
        self.assertIn("usage: vggserve explain", run("explain", "--help").stdout)
        for value in ("1000", "-1", "cat"):
            p = run("explain", "--class-id", value, "--tensor", INPUTS, check=False)
            self.assertEqual(p.returncode, 2, value)
            self.assertIn("--class-id", p.stderr)
        p = run("explain", "--precision", "int8", "--tensor", INPUTS, check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("explanations are not supported in int8", p.stderr)
        self.assertEqual(p.stdout, "")

    # ---- POST /explain

    def post(self, data, query="", headers=None, **kw):
        return self.server.request("POST", "/explain" + query, body=data,
                                   headers=headers or {"Content-Type": "image/jpeg"}, **kw)

    def test_http_maps_match_torch_and_classify(self):
        self.server.wait_ready()
        photo = su.image("chelsea.jpg")
        out = os.path.join(self.tmp.name, "chelsea.npy")
        run("preprocess", os.path.join(IMAGES, "chelsea.jpg"), "--out", out)
        seen = np.load(out)
        before = su.metric(self.server.metrics(), "vggserve_explanations_total")
        r = self.post(photo, "?class_id=%d&top_k=3" % self.other)
        self.assertEqual(r.status, 200, r)
        pred = r.json()["predictions"][0]
        e = pred["explanation"]
        self.assertEqual((e["method"], e["layer"], e["class_id"]), ("grad-cam", "conv5_3", self.other))
        ref = torch_gradcam(self.model, conv5_3(self.model, seen), [self.other])[0][0]
        diff = np.abs(np.array(e["grid"]) - ref).max()
        print(f"POST /explain f32, class {self.other}: max |map - torch| = {diff:.3g}")
        self.assertLessEqual(diff, F32_LIMIT)
        # 451 x 300: Resize(256) gives 384 x 256, the centre crop starts at (80, 16).
        np.testing.assert_allclose(e["crop"], [80 * 451 / 384, 16 * 300 / 256, 304 * 451 / 384,
                                               240 * 300 / 256], rtol=1e-6)
        plain = self.server.classify(photo, query="?top_k=3")
        self.assertEqual(pred["top_k"], plain.json()["predictions"][0]["top_k"])
        top1 = self.post(photo).json()["predictions"][0]
        self.assertEqual(top1["explanation"]["class_id"], top1["top_k"][0]["class_id"])
        after = su.metric(self.server.metrics(), "vggserve_explanations_total")
        self.assertEqual(after - before, 2)

    def test_http_multipart_and_bad_class_ids(self):
        self.server.wait_ready()
        photos = [su.image(p) for p in PHOTOS]
        body, ctype = su.multipart([("a.jpg", photos[0]), ("b.jpg", photos[1])])
        r = self.server.request("POST", "/explain", body=body, headers={"Content-Type": ctype})
        self.assertEqual(r.status, 200, r)
        preds = r.json()["predictions"]
        self.assertEqual(len(preds), 2)
        for p in preds:
            self.assertEqual(np.array(p["explanation"]["grid"]).shape, (14, 14))
        for value in ("1000", "-1", "cat", "1.5"):
            r = self.post(photos[0], "?class_id=" + value)
            self.assertEqual(r.status, 400, (value, r))
            self.assertIn("class_id", r.json()["error"]["message"])

    # ---- Accept: image/png and explain --png: the picture

    @staticmethod
    def expected_picture(tensor, grid):
        """What heatmap.h promises, computed here: the tensor's picture (normalisation undone),
        the grid upsampled by torch's bilinear interpolation, the jet ramp, opacity 0.25..0.65
        growing with the value."""
        mean = np.array([0.485, 0.456, 0.406])[:, None, None]
        std = np.array([0.229, 0.224, 0.225])[:, None, None]
        rgb = np.clip(np.rint((tensor * std + mean) * 255), 0, 255).transpose(1, 2, 0)
        g = torch.from_numpy(np.asarray(grid, dtype=np.float32))[None, None]
        v = torch.nn.functional.interpolate(g, size=rgb.shape[:2], mode="bilinear",
                                            align_corners=False)[0, 0].double().numpy()
        v = np.clip(v, 0, 1)[..., None]
        jet = np.clip(1.5 - 4 * np.abs(v - np.array([0.75, 0.5, 0.25])), 0, 1)
        a = 0.25 + 0.4 * v
        return (1 - a) * rgb + a * np.rint(jet * 255)

    def test_png_answer_and_cli_png_draw_the_map_over_the_crop(self):
        from PIL import Image  # python3-pil, as test_decode uses
        import io
        self.server.wait_ready()
        photo = su.image("chelsea.jpg")
        r = self.post(photo, "?class_id=%d" % self.other,
                      headers={"Content-Type": "image/jpeg", "Accept": "image/png, */*"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers["Content-Type"], "image/png")
        self.assertEqual(r.headers["X-Explained-Class"], str(self.other))
        picture = np.asarray(Image.open(io.BytesIO(r.body)).convert("RGB"), dtype=np.float64)
        self.assertEqual(picture.shape, (224, 224, 3))
        grid = self.post(photo, "?class_id=%d" % self.other).json()["predictions"][0][
            "explanation"]["grid"]
        out = os.path.join(self.tmp.name, "png_chelsea.npy")
        run("preprocess", os.path.join(IMAGES, "chelsea.jpg"), "--out", out)
        want = self.expected_picture(np.load(out)[0].astype(np.float64), grid)
        diff = np.abs(picture - want).max()
        print(f"Accept: image/png: max |pixel - reference| = {diff:.3g} of 255")
        self.assertLessEqual(diff, 1.5)
        # The CLI draws the same picture.
        png = os.path.join(self.tmp.name, "cli.png")
        rows = self.explain("--class-id", str(self.other), "--batch", "1", "--png", png,
                            os.path.join(IMAGES, "chelsea.jpg"))
        self.assertEqual(rows[0]["png"], png)
        cli = np.asarray(Image.open(png).convert("RGB"), dtype=np.float64)
        self.assertLessEqual(np.abs(cli - picture).max(), 1)
        # Several images: JSON when the client takes it, else 400; JSON preferred: JSON.
        body, ctype = su.multipart([("a.jpg", photo), ("b.jpg", photo)])
        for accept, status in (("image/png", 400), ("image/png, application/json;q=0.5", 200)):
            r = self.server.request("POST", "/explain", body=body,
                                    headers={"Content-Type": ctype, "Accept": accept})
            self.assertEqual(r.status, status, (accept, r))
            self.assertTrue(r.headers["Content-Type"].startswith("application/json"), accept)
        r = self.post(photo, headers={"Content-Type": "image/jpeg",
                                      "Accept": "application/json, image/png;q=0.9"})
        self.assertTrue(r.headers["Content-Type"].startswith("application/json"))

    # ---- KServe v2: the gradcam output

    def v2_infer(self, photos, outputs, model="vgg16_explain"):
        """The answer of model (the explain view by default) as {name: array}; outputs None:
        the request names none."""
        spec = {"name": "image", "datatype": "BYTES", "shape": [len(photos)],
                "data": [base64.b64encode(p).decode() for p in photos]}
        request = {"inputs": [spec], **({"outputs": outputs} if outputs is not None else {})}
        body = json.dumps(request).encode()
        r = self.server.request("POST", "/v2/models/%s/infer" % model, body=body,
                                headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 200, r)
        hlen = r.headers.get("Inference-Header-Content-Length")
        header = json.loads(r.body[:int(hlen)] if hlen else r.body)
        got, at = {}, int(hlen) if hlen else 0
        for o in header["outputs"]:
            size = o.get("parameters", {}).get("binary_data_size")
            if size is None:
                values = np.array(o["data"], dtype=np.float32)
            else:
                values = np.frombuffer(r.body[at:at + size], dtype="<f4")
                at += size
            got[o["name"]] = values.reshape(o["shape"])
        return got

    def test_v2_gradcam_output_matches_torch_and_explain(self):
        self.server.wait_ready()
        # The explain view lists gradcam; the full view does not (its answers skip the
        # backward pass), and refuses it by name, pointing to the explain view.
        meta = self.server.request("GET", "/v2/models/vgg16_explain").json()
        self.assertIn({"name": "gradcam", "datatype": "FP32", "shape": [-1, 14, 14]},
                      meta["outputs"])
        full = self.server.request("GET", "/v2/models/vgg16").json()
        self.assertNotIn("gradcam", [o["name"] for o in full["outputs"]])
        photos = [su.image(p) for p in PHOTOS]
        seen = []
        for i, f in enumerate(PHOTOS):
            out = os.path.join(self.tmp.name, f"v2_{i}.npy")
            run("preprocess", os.path.join(IMAGES, f), "--out", out)
            seen.append(np.load(out))
        ref = torch_gradcam(self.model, conv5_3(self.model, np.concatenate(seen)),
                            [self.other] * len(photos))[0]
        asked = [{"name": "gradcam", "parameters": {"class_id": self.other,
                                                     "binary_data": True}},
                 {"name": "probabilities"}]
        got = self.v2_infer(photos, asked)
        self.assertEqual(got["gradcam"].shape, (2, 14, 14))
        diff = np.abs(got["gradcam"] - ref).max()
        print(f"v2 gradcam f32, class {self.other}: max |map - torch| = {diff:.3g}")
        self.assertLessEqual(diff, F32_LIMIT)
        # The probabilities that come with it are a plain infer's; JSON carries the same maps.
        plain = self.v2_infer(photos, [{"name": "probabilities"}])
        np.testing.assert_array_equal(got["probabilities"], plain["probabilities"])
        asked[0]["parameters"]["binary_data"] = False
        np.testing.assert_array_equal(self.v2_infer(photos, asked)["gradcam"], got["gradcam"])
        # Without class_id each image's top-1, as POST /explain gives it.
        top1 = self.v2_infer(photos[:1], [{"name": "gradcam"}])["gradcam"][0]
        grid = self.post(photos[0]).json()["predictions"][0]["explanation"]["grid"]
        np.testing.assert_allclose(top1, np.array(grid), atol=1e-6)
        # A request naming no outputs gets every output the view lists (the protocol's rule):
        # on the explain view that is the top-1 map too; on the full view no map.
        every = self.v2_infer(photos[:1], None)
        self.assertEqual(sorted(every), ["gradcam", "logits", "probabilities"])
        np.testing.assert_array_equal(every["gradcam"][0], top1)
        self.assertEqual(sorted(self.v2_infer(photos[:1], None, model="vgg16")),
                         ["logits", "probabilities"])
        for bad in (1000, -1, "7"):
            body = json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                           "data": [base64.b64encode(photos[0]).decode()]}],
                               "outputs": [{"name": "gradcam", "parameters": {"class_id": bad}}]})
            r = self.server.request("POST", "/v2/models/vgg16_explain/infer",
                                    body=body.encode(),
                                    headers={"Content-Type": "application/json"})
            self.assertEqual(r.status, 400, (bad, r))
            self.assertIn("class_id", r.json()["error"])
        r = self.server.request("POST", "/v2/models/vgg16/infer", body=body.encode(),
                                headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 400, r)
        self.assertIn("vgg16_explain", r.json()["error"])


if __name__ == "__main__":
    su.main()
