#!/usr/bin/python3
"""Independent PyTorch reference for vggserve parity tests.

Produces the "expected" side of the C server's tests: preprocessed images,
a normalized input batch, and VGG logits/probabilities. It deliberately
shares NO code, data layout helpers or constants with the C implementation
(it uses stock PIL + torchvision transforms and torchvision's VGG), so a
bug in the C code cannot silently leak into the expected values.

Requires Debian's python3-torch / python3-torchvision / python3-pil /
python3-numpy; run it with /usr/bin/python3 (a pyenv python3 on PATH may
lack torch). The safetensors package is NOT required: the format is parsed
here directly.

Subcommands (see `<subcommand> --help`):
  preprocess   Resize(256)+CenterCrop(224) each image -> CHW uint8 .npy
  make-inputs  build the float32 NCHW parity batch (4 photos + 1 synthetic)
  logits       run torchvision VGG on an input batch with safetensors weights
"""

import argparse
import json
import os
import struct
import sys
import time

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision import transforms

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Order matters: the C tests index the batch rows by position.
PARITY_PHOTOS = ("chelsea.jpg", "coffee.jpg", "rocket.jpg", "camera.jpg")
SYNTHETIC_SEED = 1234

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
VGG_MODELS = ("vgg11", "vgg13", "vgg16", "vgg19")


# --------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------

def resize_crop():
    # Default interpolation is bilinear; for PIL inputs torchvision always
    # antialiases (the `antialias` argument is ignored), i.e. this is exactly
    # PIL's Image.resize(BILINEAR) with support widened by the scale factor.
    return transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224)])


def load_rgb(path):
    # convert('RGB') on RGBA simply drops alpha (no compositing onto a
    # background) and on L/P expands to 3 channels; the C decoder must match.
    with Image.open(path) as im:
        return im.convert("RGB")


def list_images(directory):
    names = sorted(n for n in os.listdir(directory)
                   if n.lower().endswith(IMAGE_SUFFIXES))
    if not names:
        sys.exit(f"no *.jpg/*.png images in {directory}")
    return [os.path.join(directory, n) for n in names]


def cmd_preprocess(args):
    os.makedirs(args.out, exist_ok=True)
    tf = resize_crop()
    for path in list_images(args.images):
        img = load_rgb(path)
        w, h = img.size
        out = tf(img)
        chw = np.ascontiguousarray(np.asarray(out, dtype=np.uint8).transpose(2, 0, 1))
        assert chw.shape == (3, 224, 224), chw.shape
        name = os.path.basename(path)
        np.save(os.path.join(args.out, name + ".npy"), chw)
        # Report the intermediate resize size too: torchvision truncates the
        # long side (int(256*long/short)) and rounds the crop offset with
        # Python's round() (half-to-even), both easy to get subtly wrong in C.
        rw, rh = transforms.Resize(256)(img).size
        top, left = int(round((rh - 224) / 2.0)), int(round((rw - 224) / 2.0))
        print(f"{name}: {w}x{h} -> resize {rw}x{rh} -> crop@(top={top},left={left}) "
              f"224x224 -> {name}.npy {chw.shape} uint8")


def cmd_make_inputs(args):
    tf = transforms.Compose([
        resize_crop(),
        transforms.ToTensor(),
        transforms.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
    ])
    rows = []
    for name in PARITY_PHOTOS:
        x = tf(load_rgb(os.path.join(args.images, name)))
        rows.append(x.numpy().astype(np.float32))
        print(f"row {len(rows) - 1}: {name} mean={rows[-1].mean():+.5f} std={rows[-1].std():.5f}")
    # A non-image input exercises value ranges no photo reaches (and is
    # reproducible without any image decoder).
    rng = np.random.default_rng(SYNTHETIC_SEED)
    rows.append(rng.standard_normal((3, 224, 224)).astype(np.float32))
    print(f"row {len(rows) - 1}: synthetic default_rng({SYNTHETIC_SEED}).standard_normal")
    batch = np.ascontiguousarray(np.stack(rows), dtype="<f4")
    np.save(args.out, batch)
    print(f"wrote {args.out}: shape={batch.shape} dtype={batch.dtype.str}")


# --------------------------------------------------------------------------
# safetensors (parsed by hand; the safetensors package is not installed)
# --------------------------------------------------------------------------

_ST_ITEMSIZE = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8}


def _decode(raw, dtype):
    """raw: little-endian uint8 bytes of one tensor -> native float32/64 array.

    Always returns a fresh, aligned copy: tensor offsets in a safetensors file
    need not be aligned to the element size, and torch.from_numpy dislikes
    unaligned or read-only (memmap) buffers.
    """
    if dtype == "F32":
        return raw.view("<f4").astype(np.float32)
    if dtype == "F64":
        return raw.view("<f8").astype(np.float64)
    if dtype == "F16":
        return raw.view("<f2").astype(np.float32)
    if dtype == "BF16":
        # bf16 is the top 16 bits of an IEEE float32.
        return (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
    raise ValueError(f"unsupported safetensors dtype {dtype!r}")


def read_safetensors(path):
    """Return ({name: np.ndarray}, metadata_dict, set of stored dtype names)."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError(f"{path}: truncated (no header length)")
        (n,) = struct.unpack("<Q", head)
        header = json.loads(f.read(n).decode("utf-8"))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    meta = header.pop("__metadata__", {}) or {}
    stored = {info["dtype"] for info in header.values()}
    tensors = {}
    for name, info in header.items():
        dtype, shape = info["dtype"], tuple(info["shape"])
        begin, end = info["data_offsets"]
        if dtype not in _ST_ITEMSIZE:
            raise ValueError(f"{name}: unsupported dtype {dtype}")
        count = int(np.prod(shape, dtype=np.int64))
        if end - begin != count * _ST_ITEMSIZE[dtype] or not 0 <= begin <= end <= data.size:
            raise ValueError(f"{name}: bad data_offsets {begin}..{end} for {dtype}{list(shape)}"
                             f" (data section is {data.size} bytes)")
        tensors[name] = _decode(data[begin:end], dtype).reshape(shape)
    return tensors, meta, stored


def to_torchvision_names(tensors):
    """Accept torchvision VGG names as-is; translate timm VGG names.

    timm implements the first two classifier layers as 7x7 and 1x1 convs
    (pre_logits.fc1/fc2). Flattening a (4096,512,7,7) kernel in C order
    matches torchvision's flatten of the (512,7,7) feature map, so a plain
    reshape gives the Linear weight.
    """
    rename = {
        "pre_logits.fc1.weight": "classifier.0.weight",
        "pre_logits.fc1.bias": "classifier.0.bias",
        "pre_logits.fc2.weight": "classifier.3.weight",
        "pre_logits.fc2.bias": "classifier.3.bias",
        "head.fc.weight": "classifier.6.weight",
        "head.fc.bias": "classifier.6.bias",
    }
    out = {}
    for name, arr in tensors.items():
        new = rename.get(name, name)
        if name.startswith("pre_logits.fc") and name.endswith(".weight"):
            arr = arr.reshape(arr.shape[0], -1)
        if new in out:
            raise ValueError(f"duplicate tensor for {new} (from {name})")
        out[new] = arr
    return out


# --------------------------------------------------------------------------
# Logits
# --------------------------------------------------------------------------

def build_vgg(name):
    ctor = getattr(torchvision.models, name)
    try:
        return ctor(weights=None)
    except TypeError:  # torchvision < 0.13
        return ctor(pretrained=False)


def cmd_logits(args):
    t0 = time.perf_counter()
    tensors, meta, stored = read_safetensors(args.weights)
    state = {k: torch.from_numpy(v) for k, v in to_torchvision_names(tensors).items()}
    model = build_vgg(args.model)
    # strict=True: a missing/extra/misnamed tensor must fail loudly rather
    # than leave a randomly initialised layer behind. load_state_dict copies
    # (and casts) into the model's float32 parameters.
    model.load_state_dict(state, strict=True)
    del state, tensors
    model.eval()
    t_load = time.perf_counter() - t0

    x = np.load(args.inputs)
    if x.ndim != 4 or x.shape[1:] != (3, 224, 224):
        sys.exit(f"{args.inputs}: expected (N,3,224,224), got {x.shape}")
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if args.double:
        model, xt = model.double(), xt.double()

    t1 = time.perf_counter()
    with torch.no_grad():
        logits = model(xt)
        probs = torch.softmax(logits, dim=1)
    t_run = time.perf_counter() - t1

    np.save(args.out, logits.numpy().astype("<f4"))
    if args.probs:
        np.save(args.probs, probs.numpy().astype("<f4"))

    print(f"weights: {args.weights} ({len(meta)} metadata keys, stored as {','.join(sorted(stored))}),"
          f" model={args.model}, compute={'float64' if args.double else 'float32'},"
          f" threads={torch.get_num_threads()}")
    # The gaps tell how robust an exact top-5 comparison with the C output
    # is: if gap5_6 or min_gap is near float32 noise (~1e-4 relative), a
    # legitimate implementation may order those classes differently.
    lg = logits.double().numpy()
    for i, row in enumerate(lg):
        order = np.argsort(-row, kind="stable")[:6]
        top6 = row[order]
        gaps = top6[:-1] - top6[1:]
        print(f"row {i}: top5={order[:5].tolist()} p1={probs[i, order[0]].item():.4f}"
              f" gap5_6={gaps[4]:.6g} min_gap_top6={gaps.min():.6g}")
    print(f"wrote {args.out} {logits.shape} <f4" + (f" and {args.probs}" if args.probs else ""))
    print(f"time: load {t_load:.2f}s, forward {t_run:.2f}s for {len(x)} inputs")


# --------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (default 1, to stay polite on shared CPUs)")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("preprocess", help="Resize(256)+CenterCrop(224) images -> CHW uint8 .npy",
                       description="For each *.jpg/*.png in --images (sorted), apply PIL "
                       "convert('RGB'), torchvision Resize(256) and CenterCrop(224), and save "
                       "the (3,224,224) uint8 CHW array as OUT/<filename>.npy.")
    p.add_argument("--images", required=True, help="directory of input images")
    p.add_argument("--out", required=True, help="output directory (created if missing)")
    p.set_defaults(func=cmd_preprocess)

    p = sub.add_parser("make-inputs", help="build the float32 (5,3,224,224) parity batch",
                       description="Rows 0-3: " + ", ".join(PARITY_PHOTOS) + " through "
                       "Resize(256), CenterCrop(224), ToTensor(), Normalize(ImageNet mean/std). "
                       f"Row 4: np.random.default_rng({SYNTHETIC_SEED}).standard_normal((3,224,224))."
                       " Saved as a C-order '<f4' .npy.")
    p.add_argument("--images", required=True, help="directory containing the parity photos")
    p.add_argument("--out", required=True, help="output .npy file")
    p.set_defaults(func=cmd_make_inputs)

    p = sub.add_parser("logits", help="run torchvision VGG on an input batch",
                       description="Load a safetensors file (F32/F16/BF16; torchvision or timm "
                       "tensor names) into torchvision's VGG with strict=True, run it in eval "
                       "mode and save (N,1000) '<f4' logits (and optionally softmax probs).")
    p.add_argument("--weights", required=True, help=".safetensors weights file")
    p.add_argument("--model", required=True, choices=VGG_MODELS)
    p.add_argument("--inputs", required=True, help="(N,3,224,224) float .npy (see make-inputs)")
    p.add_argument("--out", required=True, help="output logits .npy")
    p.add_argument("--probs", help="optional output softmax .npy")
    p.add_argument("--double", action="store_true",
                   help="compute in float64 (high-precision reference; outputs still <f4)")
    p.set_defaults(func=cmd_logits)

    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    args.func(args)


if __name__ == "__main__":
    main()
