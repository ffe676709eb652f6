#!/usr/bin/env python3
"""Writes the bad-input suite: one file per case, plus manifest.json with the answer each
must get from POST /classify (tests/test_bad_inputs.py replays them).

Run with /usr/bin/python3 (Debian python3-pil, python3-numpy). Deterministic: rerunning it
rewrites the same bytes. Files stay small on disk even when they describe huge images (the
20000x20000 PNG is 1-bit and zlib-compressed)."""
import io
import json
import os
import struct
import zlib

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))


def photo(w=96, h=64):
    """A smooth synthetic RGB picture (no external files)."""
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x * y) % 256], axis=-1)
    return Image.fromarray(rgb.astype(np.uint8), "RGB")


def save(img, fmt, **kw):
    b = io.BytesIO()
    img.save(b, fmt, **kw)
    return b.getvalue()


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


PNG_SIG = b"\x89PNG\r\n\x1a\n"


def png_header_only(w, h):
    """Signature and IHDR claiming w x h, then an empty IDAT and IEND."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return PNG_SIG + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def png_1bit_black(w, h):
    """A valid 1-bit grayscale PNG of w x h black pixels: every row is a filter byte and zeros,
    so it compresses about a thousandfold."""
    row = b"\0" * (1 + (w + 7) // 8)
    z = zlib.compressobj(9)
    data = b"".join(z.compress(row) for _ in range(h)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)
    return PNG_SIG + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def jpeg_with_sof(jpeg, w, h):
    """jpeg with its SOF0 frame header rewritten to claim w x h."""
    i = jpeg.index(b"\xff\xc0")
    return jpeg[:i + 5] + struct.pack(">HH", h, w) + jpeg[i + 9:]


def jpeg_dht_overflow(jpeg):
    """jpeg with a second DHT whose 16 code counts add up to 16 * 255 (stb v2.27 overflow)."""
    i = jpeg.index(b"\xff\xda")
    counts = bytes([255] * 16)
    seg = b"\x11" + counts + bytes(16 * 255)
    return jpeg[:i] + b"\xff\xc4" + struct.pack(">H", 2 + len(seg)) + seg + jpeg[i:]


def jpeg_undefined_table(jpeg):
    """jpeg whose second DHT is renumbered AC table 2, so the scan's AC table 0 is never
    defined (stb 2.27 would decode with uninitialised memory as the table)."""
    i = jpeg.index(b"\xff\xc4")
    j = jpeg.index(b"\xff\xc4", i + 2)
    assert jpeg[j + 4] == 0x10, "expected the AC table 0 second"
    return jpeg[:j + 4] + b"\x12" + jpeg[j + 5:]


def png_chunk_claiming(png, n):
    """png with its IDAT chunk's length field set to n (far more than follows)."""
    i = png.index(b"IDAT") - 4
    return png[:i] + struct.pack(">I", n) + png[i + 4:]


def jpeg_with_app1(jpeg, payload):
    """jpeg with an APP1 segment holding payload inserted right after SOI."""
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", 2 + len(payload)) + payload + jpeg[2:]


def tiff_ifd0(entries, ifd_offset=8, next_ifd=0):
    """A little-endian TIFF header and IFD0 of (tag, type, count, value) entries, the value
    stored in the entry's 4-byte field."""
    ifd = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHII", *e) for e in entries) + struct.pack("<I", next_ifd)
    return b"II*\0" + struct.pack("<I", ifd_offset) + ifd


def webp_lossless_header(w, h):
    """A RIFF/WEBP file whose VP8L header claims w x h (14-bit fields), then a few bytes."""
    bits = (w - 1) | (h - 1) << 14
    vp8l = b"\x2f" + struct.pack("<I", bits) + bytes(16)
    return b"RIFF" + struct.pack("<I", 4 + 8 + len(vp8l)) + b"WEBP" + b"VP8L" + \
        struct.pack("<I", len(vp8l)) + vp8l


def psd_header():
    """A minimal Photoshop header: 8BPS, version 1, 3 channels, 64x64, 8 bits, RGB."""
    return b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, 64, 64, 8, 3) + bytes(64)


def cases():
    pic = photo()
    jpg = save(pic, "JPEG", quality=85)
    png = save(pic, "PNG")
    ok = (200, None)
    c = []

    def add(name, data, status, etype, why, content_type="application/octet-stream",
            part_name=None):
        c.append(dict(file=name, data=data, status=status, type=etype, why=why,
                      content_type=content_type, multipart_filename=part_name))

    add("empty.bin", b"", 400, "bad_request", "empty body")
    add("text.txt", b"hello, this is not an image\n", 415, "unsupported_media_type", "plain text",
        "text/plain")
    add("data.json", json.dumps({"image": "base64..."}).encode(), 415, "unsupported_media_type",
        "a JSON document", "application/json")
    add("drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
        b'<rect width="10" height="10"/></svg>\n', 415, "unsupported_media_type",
        "SVG is not decoded", "image/svg+xml")
    add("truncated.jpg", jpg[:len(jpg) // 2], 422, "undecodable_image", "JPEG cut in half",
        "image/jpeg")
    add("truncated.png", png[:len(png) // 2], 422, "undecodable_image", "PNG cut in half",
        "image/png")
    add("png_header_100000x100000.png", png_header_only(100000, 100000), 422, "image_too_large",
        "IHDR claims 10^10 pixels: refused from the header, nothing decoded", "image/png")
    add("png_20000x20000.png", png_1bit_black(20000, 20000), 422, "image_too_large",
        "a valid 400-megapixel PNG, over max_pixels (40,000,000)", "image/png")
    add("jpeg_sof_65500x65500.jpg", jpeg_with_sof(jpg, 65500, 65500), 422, "image_too_large",
        "SOF claims 65500x65500: refused from the header", "image/jpeg")
    add("jpeg_dht_overflow.jpg", jpeg_dht_overflow(jpg), 422, "undecodable_image",
        "Huffman table with 4080 codes (stb v2.27 overflowed; libjpeg-turbo refuses it)",
        "image/jpeg")
    add("jpeg_undefined_huffman_table.jpg", jpeg_undefined_table(jpg), *ok,
        "the scan uses a Huffman table no DHT defines: libjpeg-turbo, like PIL, decodes it with "
        "the standard tables (stb 2.27 read uninitialised memory; refused while stb decoded JPEG)",
        "image/jpeg")
    add("png_chunk_claims_2GiB.png", png_chunk_claiming(png, 0x7FFFFFF0), 422, "undecodable_image",
        "IDAT length field of 2 GiB in a small file: refused before stb allocates it",
        "image/png")
    small = photo(32, 24)
    add("image.gif", save(small.convert("P"), "GIF"), 415, "unsupported_media_type", "GIF",
        "image/gif")
    add("image.bmp", save(small, "BMP"), 415, "unsupported_media_type", "BMP", "image/bmp")
    webp = save(photo(), "WEBP", quality=80)
    add("image.webp", save(small, "WEBP", quality=80), *ok, "lossy WebP: decoded by libwebp",
        "image/webp")
    add("webp_truncated.webp", webp[:len(webp) // 2], 422, "undecodable_image", "WebP cut in half",
        "image/webp")
    add("webp_bomb_16384x16384.webp", webp_lossless_header(16384, 16384), 422, "image_too_large",
        "a 41-byte lossless WebP claiming 16384x16384: refused from the header, nothing decoded",
        "image/webp")
    frames = [photo(32, 24), photo(32, 24).transpose(Image.FLIP_LEFT_RIGHT)]
    add("webp_animated.webp", save(frames[0], "WEBP", save_all=True, append_images=frames[1:],
                                   duration=100, lossless=True), 415, "unsupported_media_type",
        "animated WebP: one still frame is wanted", "image/webp")
    add("webp_lossless_alpha.webp", save(photo().convert("RGBA"), "WEBP", lossless=True), *ok,
        "lossless WebP with alpha: alpha dropped", "image/webp")
    add("jpeg_exif_offset_outside.jpg",
        jpeg_with_app1(jpg, b"Exif\0\0" + tiff_ifd0([(0x0112, 3, 1, 6)], ifd_offset=0xFFFFFF00)),
        *ok, "EXIF IFD0 offset far outside the segment: EXIF ignored, image decoded", "image/jpeg")
    add("jpeg_exif_entries_past_segment.jpg",
        jpeg_with_app1(jpg, b"Exif\0\0" + tiff_ifd0([(0x0112, 3, 1, 6)])[:12]),
        *ok, "EXIF IFD0 claims an entry the segment does not hold: ignored", "image/jpeg")
    add("jpeg_exif_orientation_9.jpg",
        jpeg_with_app1(jpg, b"Exif\0\0" + tiff_ifd0([(0x0112, 3, 1, 9)], next_ifd=8)),
        *ok, "EXIF orientation 9 (out of range) and IFD0 chained to itself: ignored", "image/jpeg")
    add("image.psd", psd_header(), 415, "unsupported_media_type", "Photoshop PSD",
        "image/vnd.adobe.photoshop")
    gray16 = Image.fromarray((np.asarray(pic.convert("L")).astype(np.uint16) * 257), "I;16")
    add("png_16bit.png", save(gray16, "PNG"), *ok, "16-bit grayscale PNG: decoded to 8 bits",
        "image/png")
    add("cmyk.jpg", save(pic.convert("CMYK"), "JPEG", quality=85), *ok,
        "CMYK JPEG (Adobe APP14): converted to RGB", "image/jpeg")
    add("progressive.jpg", save(pic, "JPEG", quality=85, progressive=True), *ok,
        "progressive JPEG", "image/jpeg")
    add("one_pixel.png", save(Image.new("RGB", (1, 1), (120, 40, 200)), "PNG"), *ok,
        "1x1: upscaled to 256 then cropped", "image/png")
    add("wide_5000x1.png", save(photo(5000, 2).crop((0, 0, 5000, 1)), "PNG"), *ok,
        "5000x1: the short side becomes 256", "image/png")
    add("trailing_garbage.jpg", jpg + b"\x00garbage after EOI" * 50, *ok,
        "bytes after the JPEG's end are ignored", "image/jpeg")
    add("jpeg_sent_as_png.jpg", jpg, *ok, "wrong Content-Type: the format is sniffed from the bytes",
        "image/png")
    add("png_named_jpg_in_multipart.png", png, *ok,
        "multipart part whose file name and type say JPEG: sniffed, decoded as PNG", "image/jpeg",
        part_name="photo.jpg")
    add("text_named_jpg_in_multipart.txt", b"MZ\x90\x00 not a picture", 415,
        "unsupported_media_type", "multipart part named .jpg holding other bytes", "image/jpeg",
        part_name="evil.jpg")
    add("png_header_4294967295_wide.png", png_header_only(0xFFFFFFFF, 1), 422, "undecodable_image",
        "IHDR width over PNG's 2^31 - 1 (model/image_check.c)", "image/png")
    add("zero_width.png", png_header_only(0, 10), 422, "undecodable_image",
        "IHDR with width 0", "image/png")
    return c


def main():
    manifest = []
    for case in cases():
        with open(os.path.join(HERE, case["file"]), "wb") as f:
            f.write(case.pop("data"))
        manifest.append(case)
    with open(os.path.join(HERE, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
