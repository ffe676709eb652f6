#!/usr/bin/env python3
"""Writes the realistic upload set of bench/uploads.sh into a folder (default
/tmp/vgg-uploads): what phones and web pages send, rather than the 35 KB chelsea.jpg.

  phone_4032x3024_o6.jpg  12 MP phone photo, quality 92, 4:2:0, EXIF orientation 6 (held
                          upright: stored sideways, to be turned a quarter clockwise)
  web_1920x1080.jpg       a 1080p web image, quality 85
  screenshot_1200x800.png a 1200x800 PNG
  web_1600x1067.webp      a lossy WebP (quality 80) as browsers and CDNs hand out

Deterministic (same bytes on every run with the same Pillow): the pictures are the shipped
photos (tests/data/images) enlarged, with seeded noise of a camera sensor's size so that the
files compress like real photos (the phone JPEG is about 2.6 MB, as the issue measured).
Run with /usr/bin/python3 (Debian python3-pil, python3-numpy)."""
import os
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGES = os.path.join(HERE, "..", "tests", "data", "images")


def picture(name, w, h, noise, seed):
    img = Image.open(os.path.join(IMAGES, name)).convert("RGB").resize((w, h), Image.BICUBIC)
    a = np.asarray(img).astype(np.int16)
    rng = np.random.default_rng(seed)
    a = a + rng.normal(0, noise, a.shape).round().astype(np.int16)
    return Image.fromarray(a.clip(0, 255).astype(np.uint8), "RGB")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/vgg-uploads"
    os.makedirs(out, exist_ok=True)
    # A portrait scene (3024x4032 upright), stored as the sensor reads it: landscape, turned
    # a quarter counter-clockwise; orientation 6 says "turn it a quarter clockwise".
    phone = picture("astronaut.jpg", 3024, 4032, 6, 1).transpose(Image.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    phone.save(os.path.join(out, "phone_4032x3024_o6.jpg"), quality=92, subsampling=2,
               exif=exif.tobytes())
    picture("coffee.jpg", 1920, 1080, 3, 2).save(os.path.join(out, "web_1920x1080.jpg"), quality=85)
    picture("rocket.jpg", 1200, 800, 0, 3).save(os.path.join(out, "screenshot_1200x800.png"))
    picture("chelsea.jpg", 1600, 1067, 3, 4).save(os.path.join(out, "web_1600x1067.webp"), quality=80)
    for f in sorted(os.listdir(out)):
        print(f"{os.path.getsize(os.path.join(out, f)):>10} {f}")


if __name__ == "__main__":
    main()
