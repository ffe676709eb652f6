#!/usr/bin/env python3
"""Image decoding against PIL and torchvision (model/image_decode.c, model/exif.c).

For photos made here with PIL (a non-square JPEG carrying each of the eight EXIF orientations,
a lossless WebP), `vggserve preprocess --unnormalized` must give what torchvision's
Resize(256) + CenterCrop(224) gives on PIL's ImageOps.exif_transpose of the same file: within
1.5/255 mean absolute difference with decode_scaling=auto (the JPEG decodes at a DCT scale),
within 2/255 with it off; `exif_orientation=ignore` must match the stored, untransposed pixels.
A lossless WebP gives exactly the tensor of the same pixels as PNG.

Usage: test_decode.py BUILD/vggserve (Debian python3-pil, python3-torchvision, python3-numpy)."""
import os
import subprocess
import tempfile
import unittest

import numpy as np
from PIL import Image, ImageOps

import service_util as su
from service_util import IMAGES, binary_from_argv

BINARY = binary_from_argv()
MEAN_LIMIT = {"auto": 1.5, "off": 2.0}


def torchvision_unit(img):
    import torchvision.transforms as T
    tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor()])
    return tf(img.convert("RGB")).numpy()


class DecodeParity(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        # A non-square photo, large enough that decode_scaling=auto decodes at 1/2 (shorter
        # side 720 -> 360 >= 1.25 x 256), so the scaled path is the one tested.
        cls.photo = Image.open(os.path.join(IMAGES, "astronaut.jpg")).convert("RGB").resize((1080, 720))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def preprocess(self, path, *flags):
        out = self.path("out.npy")
        subprocess.run([BINARY, "preprocess", "--unnormalized", *flags, path, "--out", out],
                       check=True, capture_output=True)
        return np.load(out)[0]

    def test_every_exif_orientation_matches_exif_transpose(self):
        for orientation in range(1, 9):
            exif = Image.Exif()
            exif[0x0112] = orientation
            path = self.path(f"o{orientation}.jpg")
            self.photo.save(path, "JPEG", quality=92, exif=exif.tobytes())
            with Image.open(path) as stored:
                upright = torchvision_unit(ImageOps.exif_transpose(stored))
            with Image.open(path) as stored:
                as_stored = torchvision_unit(stored)
            for scaling, limit in MEAN_LIMIT.items():
                with self.subTest(orientation=orientation, decode_scaling=scaling):
                    ours = self.preprocess(path, "--decode-scaling", scaling)
                    mean = np.abs(ours - upright).mean() * 255
                    self.assertLess(mean, limit)
            with self.subTest(orientation=orientation, exif="ignore"):
                ours = self.preprocess(path, "--exif-orientation", "ignore")
                self.assertLess(np.abs(ours - as_stored).mean() * 255, MEAN_LIMIT["auto"])
                if orientation in (5, 6, 7, 8):  # a quarter turn: the two must really differ
                    self.assertGreater(np.abs(ours - upright).mean() * 255, 5 * MEAN_LIMIT["auto"])

    def test_lossless_webp_equals_png(self):
        small = self.photo.resize((400, 300))
        webp, png = self.path("same.webp"), self.path("same.png")
        small.save(webp, "WEBP", lossless=True)
        small.save(png, "PNG")
        with Image.open(webp) as back:  # the WebP really is lossless
            self.assertTrue(np.array_equal(np.asarray(back.convert("RGB")), np.asarray(small)))
        np.testing.assert_array_equal(self.preprocess(webp), self.preprocess(png))


if __name__ == "__main__":
    su.main(verbosity=1)
