#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz harnesses into tests/fuzz/corpus/<harness>/.

Deterministic (fixed pixels, fixed PIL settings), so rerunning it changes nothing. Needs
/usr/bin/python3 with python3-pil and python3-numpy (Debian). The seeds are small valid
inputs of every shape a harness knows; libFuzzer mutates from there."""
import io
import json
import os
import struct
import zlib

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus")


def put(harness, name, data):
    d = os.path.join(OUT, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def pixels(w, h, channels=3):
    y, x = np.mgrid[0:h, 0:w]
    planes = [(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)), ((x + y) * 7) % 256, (x * y) % 256]
    return np.stack(planes[:channels], axis=-1).astype(np.uint8)


def encode(img, fmt, **kw):
    b = io.BytesIO()
    img.save(b, fmt, **kw)
    return b.getvalue()


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_adam7(rgb):
    """An interlaced 8-bit RGB PNG (PIL cannot write Adam7)."""
    h, w, _ = rgb.shape
    raw = b""
    for x0, y0, dx, dy in [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4),
                           (1, 0, 2, 2), (0, 1, 1, 2)]:
        sub = rgb[y0::dy, x0::dx]
        if sub.size:
            raw += b"".join(b"\0" + row.tobytes() for row in sub)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 1)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw))
            + png_chunk(b"IEND", b""))


def images():
    rgb = Image.fromarray(pixels(16, 12))
    out = {
        "rgb.png": encode(rgb, "PNG"),
        "gray.png": encode(rgb.convert("L"), "PNG"),
        "rgba.png": encode(Image.fromarray(pixels(9, 7, 4), "RGBA"), "PNG"),
        "palette.png": encode(rgb.convert("P"), "PNG"),
        "interlaced.png": png_adam7(pixels(9, 7)),
        "gray16.png": encode(Image.fromarray((pixels(8, 8, 1)[..., 0].astype(np.uint16) * 257), "I;16"), "PNG"),
        "one.png": encode(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG"),
        "baseline.jpg": encode(rgb, "JPEG", quality=80),
        "progressive.jpg": encode(rgb, "JPEG", quality=80, progressive=True),
        "gray.jpg": encode(rgb.convert("L"), "JPEG", quality=80),
        "cmyk.jpg": encode(rgb.convert("CMYK"), "JPEG", quality=80),
        "444.jpg": encode(rgb, "JPEG", quality=90, subsampling=0),
        "wide.jpg": encode(Image.fromarray(pixels(64, 2)), "JPEG", quality=70),
        "exif_o6.jpg": encode(rgb, "JPEG", quality=80, exif=exif_block(6)),
        "lossy.webp": encode(rgb, "WEBP", quality=80),
        "lossless.webp": encode(rgb, "WEBP", lossless=True),
        "alpha.webp": encode(Image.fromarray(pixels(9, 7, 4), "RGBA"), "WEBP", lossless=True),
    }
    return out


def exif_block(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def tiff(orientation, big_endian):
    """A bare TIFF structure (what an APP1 segment holds after "Exif\0\0"): one IFD, one entry."""
    e = ">" if big_endian else "<"
    return ((b"MM" if big_endian else b"II") + struct.pack(e + "HI", 42, 8) + struct.pack(e + "H", 1)
            + struct.pack(e + "HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(e + "I", 0))


def exif_seeds(rgb):
    out = {f"jpeg_o{o}.jpg": encode(rgb, "JPEG", quality=60, exif=exif_block(o)) for o in (1, 3, 6, 8)}
    out["webp_o5.webp"] = encode(rgb, "WEBP", quality=60, exif=exif_block(5))
    out["tiff_le_o5.bin"] = tiff(5, big_endian=False)
    out["tiff_be_o7.bin"] = tiff(7, big_endian=True)
    return out


def decode_seeds(imgs):
    """fuzz_decode's inputs: a settings byte (see fuzz_decode.c), then an image. 96x64 images
    are large enough for the tiny min_side (bit 3) to select JPEG's reduced scales and WebP's
    rescaler."""
    big = Image.fromarray(pixels(96, 64))
    files = {"big.jpg": encode(big, "JPEG", quality=80), "big_o6.jpg": encode(big, "JPEG", exif=exif_block(6)),
             "big.webp": encode(big, "WEBP", quality=80), "big_o8.webp": encode(big, "WEBP", exif=exif_block(8))}
    for name in ("baseline.jpg", "progressive.jpg", "cmyk.jpg", "exif_o6.jpg", "alpha.webp", "rgb.png"):
        files[name] = imgs[name]
    out = {}
    for name, data in files.items():
        flags = (0, 1, 8, 10) if name.startswith("big") else (0, 4)
        for f in flags:
            out[f"f{f}_{name}"] = bytes([f]) + data
    return out


def safetensors(tensors, metadata=None):
    """tensors: list of (name, dtype, shape, bytes)."""
    header, off, blobs = {}, 0, []
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + len(data)]}
        off += len(data)
        blobs.append(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def reduced_vgg11(dtype="F32", timm=False, labels=None):
    """Weights for vgg_config_init_reduced("vgg11", 64, 32, 4, 3): channels 1,2,4,4,8,8,8,8."""
    chans, feats = [1, 2, 4, 4, 8, 8, 8, 8], [0, 3, 6, 8, 11, 13, 16, 18]
    rng = np.random.default_rng(7)
    npdt = {"F32": np.float32, "F16": np.float16}.get(dtype)

    def blob(shape):
        a = (rng.standard_normal(int(np.prod(shape))) * 0.1).astype(np.float32)
        if dtype == "BF16":
            return (a.view(np.uint32) >> 16).astype(np.uint16).tobytes()
        return a.astype(npdt).tobytes()

    t, cin = [], 3
    for c, f in zip(chans, feats):
        t.append((f"features.{f}.weight", dtype, (c, cin, 3, 3), None))
        t.append((f"features.{f}.bias", dtype, (c,), None))
        cin = c
    fc = [(4, 8), (4, 4), (3, 4)]
    for i, (o, n) in enumerate(fc):
        if timm:
            wname = ["pre_logits.fc1", "pre_logits.fc2", "head.fc"][i]
            shape = [(o, 8, 1, 1), (o, n, 1, 1), (o, n)][i]
            t.append((wname + ".weight", dtype, shape, None))
            t.append((wname + ".bias", dtype, (o,), None))
        else:
            t.append((f"classifier.{3 * i}.weight", dtype, (o, n), None))
            t.append((f"classifier.{3 * i}.bias", dtype, (o,), None))
    meta = {"format": "pt", **({"labels": labels} if labels else {})}
    return safetensors([(n, d, s, blob(s)) for n, d, s, _ in t], meta)


# Label files (model/labels.h), each format and its edges; the safetensors seeds embed some.
LABEL_SEEDS = {
    "lines.txt": b"tench\ngoldfish\ngreat white shark\n",
    "crlf_no_last_newline.txt": b"\xef\xbb\xbfcat\r\ndog\r\ncaf\xc3\xa9",
    "index_to_name.json": b'{"0": "cat", "1": "dog", "2": "cow"}',
    "index_to_name_wnid.json": b'{"0": ["n02121808", "cat"], "1": ["n02084071", "dog"], "2": "cow"}',
    "class_indices.json": b'{"cat": 0, "dog": 1, "cow": 2}',
    "list.json": b' ["cat", "dog", "\\u00e9t\\u00e9 \\"[{\\""]\n',
}


def reduced_vgg11_head(pool, units, activation, input_size, bn=False):
    """A reduced VGG11 (channels 1..8) with its own head described by metadata
    (model/vgg_weights.h): BatchNorm tensors when bn, dense layers classifier.{3j}."""
    chans = [1, 2, 4, 4, 8, 8, 8, 8]
    pools_after = {0, 1, 3, 5, 7}
    rng = np.random.default_rng(11)

    def blob(shape, positive=False):
        a = rng.standard_normal(int(np.prod(shape))).astype(np.float32) * 0.1
        return (np.abs(a) + 0.5 if positive else a).astype(np.float32).tobytes()

    t, cin, index = [], 3, 0
    for i, c in enumerate(chans):
        t.append((f"features.{index}.weight", "F32", (c, cin, 3, 3), blob((c, cin, 3, 3))))
        t.append((f"features.{index}.bias", "F32", (c,), blob((c,))))
        if bn:
            for k in ("weight", "bias", "running_mean", "running_var"):
                t.append((f"features.{index + 1}.{k}", "F32", (c,),
                          blob((c,), positive=k == "running_var")))
        index += (3 if bn else 2) + (1 if i in pools_after else 0)
        cin = c
    hw = input_size
    for _ in range(5):
        hw //= 2
    n_in = 8 * hw * hw if pool == "flatten" else 8
    for j, u in enumerate(units):
        t.append((f"classifier.{3 * j}.weight", "F32", (u, n_in), blob((u, n_in))))
        t.append((f"classifier.{3 * j}.bias", "F32", (u,), blob((u,))))
        n_in = u
    meta = {"format": "pt", "model": "vgg11_bn" if bn else "vgg11",
            "head_dense": ",".join(map(str, units)), "head_pool": pool,
            "head_activation": activation, "input_size": str(input_size)}
    return safetensors(t, meta)


def multipart(boundary, parts, preamble=b""):
    out = preamble
    for headers, data in parts:
        out += b"--" + boundary + b"\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + data + b"\r\n"
    return out + b"--" + boundary + b"--\r\n"


# ---- protobuf, by hand (fuzz_grpc_infer): just the wire format the seeds need.

def pb_varint(n):
    n &= (1 << 64) - 1  # int64 as two's complement
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def pb_field(number, value):
    """A varint field (int) or a length-delimited one (bytes, str)."""
    if isinstance(value, int):
        return pb_varint(number << 3) + pb_varint(value)
    value = value.encode() if isinstance(value, str) else value
    return pb_varint(number << 3 | 2) + pb_varint(len(value)) + value


def pb_param(number, key, kind, value):
    """A map<string, InferParameter> entry: kind 1 bool, 2 int64, 3 string."""
    return pb_field(number, pb_field(1, key) + pb_field(2, pb_field(kind, value)))


def infer_request(model, name, datatype, shape, raw=None, fp32=None, elements=None,
                  outputs=(), rid=""):
    """A serialized ModelInferRequest (proto/grpc_service.proto's field numbers)."""
    t = pb_field(1, name) + pb_field(2, datatype)
    t += pb_field(3, b"".join(pb_varint(d) for d in shape))
    if fp32 is not None:
        t += pb_field(5, pb_field(6, struct.pack("<%df" % len(fp32), *fp32)))
    if elements is not None:
        t += pb_field(5, b"".join(pb_field(8, e) for e in elements))
    m = pb_field(1, model) + (pb_field(3, rid) if rid else b"") + pb_field(5, t)
    for o_name, k in outputs:
        m += pb_field(6, pb_field(1, o_name) + (pb_param(2, "classification", 2, k) if k else b""))
    if raw is not None:
        m += pb_field(7, raw)
    return m


def grpc_infer_seeds(png):
    """fuzz_grpc_infer's seeds: its network side is 8x8 (fuzz_grpc_infer.c)."""
    floats = [((i * 37) % 100) / 50.0 - 1 for i in range(3 * 8 * 8)]
    raw = struct.pack("<%df" % len(floats), *floats)
    one = struct.pack("<I", len(png)) + png
    return {
        "tensor_raw": infer_request("vgg16", "input", "FP32", [1, 3, 8, 8], raw=raw, rid="r"),
        "tensor_typed_view": infer_request("vgg16_tensor", "input", "FP32", [1, 3, 8, 8], fp32=floats),
        "tensor_outputs": infer_request("vgg16", "input", "FP32", [1, 3, 8, 8], raw=raw,
                                        outputs=[("logits", 0), ("probabilities", 5), ("gradcam", 0)]),
        "image_raw_classification": infer_request("vgg16_image", "image", "BYTES", [1], raw=one,
                                                  outputs=[("probabilities", 3)]),
        "image_typed_two": infer_request("vgg16", "image", "BYTES", [2, 1], elements=[png, png]),
        "unknown_model": infer_request("resnet", "input", "FP32", [-1], raw=b""),
    }


def model_settings_seeds():
    """fuzz_model_settings: byte 0 picks config.json (0), a load body (1) or a model name (2)."""
    config = {"name": "m", "precision": "int8", "algo": "winograd", "preprocess": "caffe",
              "max_batch_size": 8, "max_queue_delay_us": 2000, "queue_capacity": 32,
              "workers": 2, "threads_per_worker": 1,
              "version_policy": {"latest": {"num_versions": 2}}}
    seeds = {
        "config_full.json": b"\0" + json.dumps(config).encode(),
        "config_specific.json": b"\0" + json.dumps(
            {"version_policy": {"specific": {"versions": [1, "3", 7]}}}).encode(),
        "config_all.json": b"\0" + b'{"version_policy": {"all": {}}}',
        "config_unknown_key.json": b"\0" + b'{"instance_group": [{"count": 1}]}',
        "config_out_of_range.json": b"\0" + b'{"max_batch_size": 65, "workers": 0}',
        "load_empty": b"\1",
        "load_braces": b"\1{}",
        "load_override": b"\1" + json.dumps(
            {"parameters": {"config": json.dumps({"precision": "bf16"})}}).encode(),
        "load_override_bad": b"\1" + json.dumps(
            {"parameters": {"config": "{\"precision\": 3}", "files": {}}}).encode(),
        "name_plain": b"\2vgg16_flowers-v2.1",
        "name_model_folder": b"\2m",
        "name_dotdot": b"\2../x",
        "name_encoded": b"\2%2e%2e",
        "name_slash": b"\2a/b",
        "name_long": b"\2" + b"n" * 64,
    }
    for name, data in seeds.items():
        put("model_settings", name, data)


def main():
    imgs = images()
    for name, data in imgs.items():
        put("preprocess", name, data)
    for name, data in exif_seeds(Image.fromarray(pixels(16, 12))).items():
        put("exif", name, data)
    for name, data in decode_seeds(imgs).items():
        put("decode", name, data)

    put("safetensors", "vgg11_reduced_f32.safetensors", reduced_vgg11("F32"))
    put("safetensors", "vgg11_reduced_f16.safetensors", reduced_vgg11("F16"))
    put("safetensors", "vgg11_reduced_bf16_timm.safetensors", reduced_vgg11("BF16", timm=True))
    put("safetensors", "one_tensor.safetensors",
        safetensors([("x", "F32", (2, 2), struct.pack("<4f", 1, 2, 3, 4))]))
    put("safetensors", "empty.safetensors", safetensors([]))
    put("safetensors", "vgg11_head_bn_avg_sigmoid.safetensors",
        reduced_vgg11_head("avg", [4, 1], "sigmoid", 32, bn=True))
    put("safetensors", "vgg11_head_flatten_40px.safetensors",
        reduced_vgg11_head("flatten", [6, 5, 3], "softmax", 40))
    put("safetensors", "vgg11_head_max_one_dense.safetensors",
        reduced_vgg11_head("max", [2], "softmax", 33))
    for name in ("index_to_name_wnid.json", "class_indices.json", "lines.txt"):
        put("safetensors", "vgg11_reduced_labels_" + name.split(".")[0] + ".safetensors",
            reduced_vgg11("F32", labels=LABEL_SEEDS[name].decode()))
    for name, data in LABEL_SEEDS.items():
        put("labels", name, data)

    jpg, png = imgs["baseline.jpg"], imgs["rgb.png"]
    disp = b'Content-Disposition: form-data; name="image"; filename="cat.jpg"'
    put("multipart", "one_part", b"multipart/form-data; boundary=XyZ\n" +
        multipart(b"XyZ", [([disp, b"Content-Type: image/jpeg"], b"JPEGDATA")]))
    put("multipart", "two_parts_quoted", b'multipart/form-data; boundary="a b"\n' +
        multipart(b"a b", [([disp], b"one"), ([b"Content-Disposition: form-data; name=b"], b"two")],
                  preamble=b"preamble\r\n"))
    put("multipart", "no_headers", b"multipart/form-data; charset=x; boundary=q\n" +
        multipart(b"q", [([], b"bare")]))
    put("multipart", "empty", b"multipart/form-data; boundary=E\n--E--\r\n")

    defaults = json.load(open(os.path.join(HERE, "..", "..", "config", "vggserve.json")))
    put("config", "defaults.json", json.dumps(defaults, indent=2).encode())
    put("config", "small.json", json.dumps({"port": 0, "model": "vgg11", "auth_metrics": True,
                                            "tls_cert_file": "c.pem", "tls_key_file": "k.pem"}).encode())
    put("config", "token.json", json.dumps({"auth_token": "abc.DEF-123_~+/=", "max_connections": 4,
                                            "max_connections_per_ip": 2, "http_threads": 2}).encode())
    put("config", "wrong_type.json", b'{"port": "80", "auth_health": 1}')

    put("classify_request", "jpeg", b"content-type: image/jpeg\ntop_k: 3\n\n" + jpg)
    put("classify_request", "png_auth", b"authorization: Bearer fuzz-token\ncontent-length: 10\n"
        b"x-request-timeout-ms: 50\n\n" + png)
    mp = multipart(b"B0", [([disp, b"Content-Type: image/jpeg"], jpg),
                           ([b'Content-Disposition: form-data; name="b"; filename="b.png"'], png)])
    put("classify_request", "multipart", b"content-type: multipart/form-data; boundary=B0\ntop_k: 1000\n\n" + mp)
    put("classify_request", "bad_top_k", b"top_k: 0x10\n\n" + png)
    put("classify_request", "empty", b"content-type: application/octet-stream\n\n")

    # fuzz_headers: a header value line, then a body inflated as gzip and as deflate.
    import gzip
    body = b'{"inputs":[{"name":"image","datatype":"BYTES","shape":[1]}]}' * 4
    put("headers", "gzip_body", b"gzip\n" + gzip.compress(body, mtime=0))
    put("headers", "zlib_body", b"deflate\n" + zlib.compress(body))
    raw = zlib.compressobj(6, zlib.DEFLATED, -15)
    put("headers", "raw_deflate", b"x-gzip, identity\n" + raw.compress(body) + raw.flush())
    put("headers", "accept", b"gzip;q=0.5, deflate;q=0, *;q=0.1\n")
    put("headers", "traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\n")
    put("headers", "traceparent_v1", b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-x\n")
    put("headers", "bomb", b"gzip\n" + gzip.compress(b"\0" * (1 << 20), 9, mtime=0))

    # Issue 25's bombs, small: JSON that costs jansson far more than its bytes, and a 1x1 PNG
    # whose IDAT inflates to 4 MiB (its header needs 5 bytes).
    put("kserve_v2", "bomb_objects", b"\n" + b'{"inputs":[' + b",".join([b"{}"] * 3000) + b"]}")
    put("kserve_v2", "bomb_numbers", b"\n" + b'{"inputs":[' + b",".join([b"0"] * 30000) + b"]}")
    put("kserve_v2", "bomb_deep", b"\n" + b'{"inputs":' + b"[" * 40 + b"]" * 40 + b"}")
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    bomb = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) +
            png_chunk(b"IDAT", zlib.compress(bytes(4 << 20), 9)) + png_chunk(b"IEND", b""))
    put("decode", "f0_idat_bomb.png", b"\0" + bomb)
    put("preprocess", "idat_bomb.png", bomb)

    for name, data in grpc_infer_seeds(png).items():
        put("grpc_infer", name, data)
    model_settings_seeds()


if __name__ == "__main__":
    main()
