#!/usr/bin/env python3
"""Black-box tests of the `vggserve` command line (run by ctest: test_cli.py PATH/TO/vggserve).

Uses only the standard library and numpy (Debian python3-numpy); run with /usr/bin/python3."""
import hashlib
import json
import os
import subprocess
import tempfile
import unittest

import numpy as np

import service_util as su
from service_util import IMAGES, TESTS, binary_from_argv

BIN = binary_from_argv()
FIXTURES = os.path.join(TESTS, "fixtures")
SEED1_SHA256 = "d0979e68b27f09d6ebe7ef3db4360dde63bcb306424f6b50d0f674bb885f15f1"


def run(*args, check=True):
    p = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} exited {p.returncode}: {p.stderr}")
    return p


class CliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.weights = os.path.join(cls.tmp.name, "seed1.safetensors")
        run("gen-weights", "--seed", "1", "--out", cls.weights)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_gen_weights_is_byte_identical_to_the_fixture_seed(self):
        h = hashlib.sha256()
        with open(self.weights, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        self.assertEqual(h.hexdigest(), SEED1_SHA256)

    def test_help_on_every_subcommand(self):
        for cmd in ["classify", "bench", "gen-weights", "preprocess", "summary"]:
            p = run(cmd, "--help")
            self.assertIn("usage: vggserve " + cmd, p.stdout)
        self.assertEqual(run("no-such-command", check=False).returncode, 2)
        p = run("classify", "--no-such-flag", check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("unknown option", p.stderr)

    def test_summary_parameter_counts(self):
        want = {"vgg11": "132,863,336", "vgg13": "133,047,848", "vgg16": "138,357,544",
                "vgg19": "143,667,240"}
        for model, total in want.items():
            self.assertIn("Total params: " + total, run("summary", "--model", model).stdout)
        dot = run("summary", "--dot").stdout
        self.assertTrue(dot.startswith("digraph vgg16"))
        self.assertEqual(dot.count("conv3x3"), 13)
        self.assertEqual(dot.count("maxpool"), 5)

    def test_classify_images(self):
        imgs = [os.path.join(IMAGES, f) for f in ("chelsea.jpg", "camera.jpg", "chelsea_rgba.png")]
        p = run("classify", "--weights", self.weights, "--top-k", "3", *imgs)
        rows = [json.loads(l) for l in p.stdout.splitlines()]
        self.assertEqual([r["file"] for r in rows], imgs)
        for r in rows:
            self.assertEqual(len(r["top_k"]), 3)
            probs = [t["probability"] for t in r["top_k"]]
            self.assertEqual(probs, sorted(probs, reverse=True))
            for t in r["top_k"]:
                self.assertEqual(set(t), {"class_id", "wnid", "label", "probability"})
                self.assertRegex(t["wnid"], r"^n\d{8}$")
        # RGBA is the RGB photo with alpha dropped: same prediction as the JPEG's PNG twin.
        png = run("classify", "--weights", self.weights, "--top-k", "3",
                  os.path.join(IMAGES, "chelsea.png"))
        self.assertEqual(json.loads(png.stdout)["top_k"], rows[2]["top_k"])

    def test_classify_all_and_tensor_match_torchvision(self):
        p = run("classify", "--weights", self.weights, "--all", "--tensor",
                os.path.join(FIXTURES, "parity_inputs.npy"))
        rows = [json.loads(l) for l in p.stdout.splitlines()]
        ref = np.load(os.path.join(FIXTURES, "ref_logits_vgg16_seed1.npy"))
        self.assertEqual(len(rows), ref.shape[0])
        for i, r in enumerate(rows):
            self.assertTrue(r["file"].endswith("parity_inputs.npy#%d" % i))
            logits = np.array(r["logits"])
            probs = np.array(r["probabilities"])
            self.assertEqual(logits.shape, (1000,))
            self.assertAlmostEqual(probs.sum(), 1.0, places=4)
            self.assertLessEqual(np.abs(logits - ref[i]).max(), 1e-3 * np.abs(ref[i]).max())
            self.assertEqual([t["class_id"] for t in r["top_k"]], list(np.argsort(-ref[i])[:5]))

    def test_bad_image_is_reported_and_others_still_classified(self):
        bad = os.path.join(self.tmp.name, "notes.txt")
        with open(bad, "w") as f:
            f.write("not an image")
        p = run("classify", "--weights", self.weights, bad, os.path.join(IMAGES, "coffee.jpg"),
                check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("not a JPEG, PNG or WebP", p.stderr)
        self.assertEqual(len(p.stdout.splitlines()), 1)

    def test_bad_weights_files(self):
        truncated = os.path.join(self.tmp.name, "truncated.safetensors")
        with open(self.weights, "rb") as src, open(truncated, "wb") as dst:
            dst.write(src.read(10_000_000))
        cases = {truncated: "truncated", os.path.join(IMAGES, "coffee.jpg"): "not a safetensors",
                 os.path.join(self.tmp.name, "missing.safetensors"): "No such file"}
        for path, why in cases.items():
            p = run("classify", "--weights", path, os.path.join(IMAGES, "coffee.jpg"), check=False)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn(why, p.stderr)
            self.assertEqual(p.stdout, "")
        # vgg16 weights are not vgg19 weights: the error names what is missing.
        p = run("classify", "--model", "vgg19", "--weights", self.weights,
                os.path.join(IMAGES, "coffee.jpg"), check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("missing features.", p.stderr)

    def test_preprocess_writes_the_network_input(self):
        out = os.path.join(self.tmp.name, "chelsea.npy")
        run("preprocess", os.path.join(IMAGES, "chelsea.jpg"), "--out", out)
        x = np.load(out)
        self.assertEqual(x.shape, (1, 3, 224, 224))
        self.assertEqual(x.dtype, np.float32)
        ref = np.load(os.path.join(FIXTURES, "parity_inputs.npy"))[0]
        self.assertLess(np.abs(x[0] - ref).mean(), 2 / 255 / 0.225)
        run("preprocess", "--unnormalized", os.path.join(IMAGES, "chelsea.jpg"), "--out", out)
        unit = np.load(out)[0]
        torch_u8 = np.load(os.path.join(FIXTURES, "preprocess", "chelsea.jpg.npy"))
        self.assertLessEqual(np.abs(unit - torch_u8 / 255.0).mean(), 2 / 255)

    def test_bench_json(self):
        p = run("bench", "--weights", self.weights, "--batch", "1", "--seconds", "0",
                "--min-runs", "1", "--json")
        row = json.loads(p.stdout.splitlines()[0])
        self.assertEqual(row["batch"], 1)
        self.assertGreater(row["img_per_s_median"], 0)
        for key in ("img_per_s_min", "ms_per_batch_median"):
            self.assertIn(key, row)

    def test_accuracy_measures_each_mode_against_f32_direct(self):
        def accuracy(precision, algo):
            p = run("accuracy", "--weights", self.weights, "--precision", precision, "--algo", algo,
                    "--random", "3", "--json", os.path.join(IMAGES, "coffee.jpg"))
            return json.loads(p.stdout.splitlines()[-1])
        same = accuracy("f32", "direct")  # the reference against itself: no error at all
        self.assertEqual((same["inputs"], same["top1_agreement"], same["top5_overlap"]), (4, 1.0, 1.0))
        self.assertEqual((same["max_abs_prob_diff"], same["rel_logit_err"]), (0, 0))
        self.assertEqual(same["max_flipped_margin"], 0)
        self.assertGreater(same["median_f32_margin"], 0)
        wino, bf16 = accuracy("f32", "winograd"), accuracy("bf16", "direct")
        # Winograd reorders f32 arithmetic (error near f32 rounding); bf16 keeps 8 mantissa bits
        # (error near 2^-9 per operation), so it is measurably, but boundedly, further off.
        self.assertGreater(wino["rel_logit_err"], 0)
        self.assertLess(wino["rel_logit_err"], 1e-4)
        self.assertGreater(bf16["rel_logit_err"], 10 * wino["rel_logit_err"])
        self.assertLess(bf16["rel_logit_err"], 0.05)

    def test_precision_not_built_yet_is_refused(self):
        p = run("classify", "--precision", "int4", os.path.join(IMAGES, "coffee.jpg"), check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--precision", p.stderr)


if __name__ == "__main__":
    su.main()
