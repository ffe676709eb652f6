#!/usr/bin/python3
"""safetensors_write.py - write float32 tensors as a .safetensors file, without the package.

Shared by convert_torchvision.py and convert_keras.py (Debian has no python3-safetensors).
The format: 8-byte little-endian header length, a JSON header {name: {dtype, shape,
data_offsets}, "__metadata__": {str: str}} padded with spaces to a multiple of 8, then the
tensors' little-endian bytes back to back in header order.

Also holds the VGG layer table both converters check shapes against: the torchvision names
vggserve's loader reads (features.N.*, classifier.{0,3,6}.*), and the head metadata a model
with its own head carries (model/vgg_weights.h):
  model            vgg11..vgg19, "_bn" appended for BatchNorm after each conv
  head_dense       the dense layers' units, "4096,4096,10" (1 to 3 layers; classifier.{3j}.*)
  head_pool        flatten | avg | max (what fc1 reads: C*H*W in CHW order, or C)
  head_activation  softmax | sigmoid (one unit, answered as two classes [1-p, p])
  input_size       the square input's side
  bn_eps           BatchNorm's epsilon
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from label_file import labels_metadata  # noqa: E402

# Output channels per conv layer, "M" for max-pooling (torchvision's cfgs).
VGG_CFGS = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}


def vgg_layout(model):
    """[(torchvision name, shape)] in network order, for `model` (vgg11..vgg19)."""
    out, index, cin = [], 0, 3
    for v in VGG_CFGS[model]:
        if v == "M":
            index += 1
            continue
        out.append((f"features.{index}.weight", (v, cin, 3, 3)))  # OIHW
        out.append((f"features.{index}.bias", (v,)))
        index += 2  # conv, relu
        cin = v
    for i, (o, n) in zip((0, 3, 6), ((4096, 512 * 7 * 7), (4096, 4096), (1000, 4096))):
        out.append((f"classifier.{i}.weight", (o, n)))  # (out, in), in = C*H*W order
        out.append((f"classifier.{i}.bias", (o,)))
    return out


def feature_layout(model, batch_norm):
    """[(name, shape)] of the features: conv weight/bias, and with batch_norm the
    BatchNorm2d's weight/bias/running_mean/running_var at the next index (torchvision's
    make_layers: Conv2d, BatchNorm2d, ReLU per conv)."""
    out, index, cin = [], 0, 3
    for v in VGG_CFGS[model]:
        if v == "M":
            index += 1
            continue
        out.append((f"features.{index}.weight", (v, cin, 3, 3)))
        out.append((f"features.{index}.bias", (v,)))
        if batch_norm:
            out += [(f"features.{index + 1}.{k}", (v,))
                    for k in ("weight", "bias", "running_mean", "running_var")]
        index += 3 if batch_norm else 2
        cin = v
    return out


def final_hw(input_size):
    """The side of pool5's output: five floor-halvings, as torch and Keras pool."""
    hw = input_size
    for _ in range(5):
        hw //= 2
    return hw


def head_layout(fc_in0, units):
    """[(name, shape)] of dense layers classifier.{3j} reading fc_in0 inputs."""
    out, cin = [], fc_in0
    for j, u in enumerate(units):
        out += [(f"classifier.{3 * j}.weight", (u, cin)), (f"classifier.{3 * j}.bias", (u,))]
        cin = u
    return out


def head_metadata(model, batch_norm, units, pool, activation, input_size, bn_eps=1e-5):
    """The metadata vggserve's loader reads for a model with its own head (strings)."""
    if not 1 <= len(units) <= 3:
        raise ValueError(f"{len(units)} dense layers: vggserve supports 1 to 3")
    if activation == "sigmoid" and units[-1] != 1:
        raise ValueError(f"sigmoid on {units[-1]} units: only a single sigmoid unit is supported")
    if activation == "softmax" and units[-1] < 2:
        raise ValueError("softmax over 1 unit: a one-unit head must be sigmoid")
    if final_hw(input_size) < 1:
        raise ValueError(f"input size {input_size}: the features need at least 32")
    meta = {"model": model + ("_bn" if batch_norm else ""),
            "head_dense": ",".join(str(u) for u in units), "head_pool": pool,
            "head_activation": activation, "input_size": str(input_size)}
    if batch_norm:
        meta["bn_eps"] = repr(float(bn_eps))
    return meta


def is_default_head(batch_norm, units, pool, activation, input_size):
    return (not batch_norm and list(units) == [4096, 4096, 1000] and pool == "flatten"
            and activation == "softmax" and input_size == 224)


def check_tensors(tensors, layout, what):
    """Raises ValueError naming the first missing, extra or misshapen tensor."""
    want = dict(layout)
    for name, shape in layout:
        if name not in tensors:
            raise ValueError(f"missing tensor {name} {shape} for {what}")
        if tuple(tensors[name].shape) != tuple(shape):
            raise ValueError(f"{name}: shape {tuple(tensors[name].shape)}, {what} needs {shape}")
    extra = sorted(set(tensors) - set(want))
    if extra:
        raise ValueError(f"unexpected tensors for {what}: {', '.join(extra[:5])}")


def write_model(path, tensors, layout, metadata, summary, labels=None):
    """Writes {name: array} in layout's order with head metadata (the converters' common end;
    the class names too when given) and prints one line saying what was written. ValueError:
    a non-finite value, or a label count other than the head's classes (2 for a sigmoid)."""
    if labels is not None:
        units = int(metadata["head_dense"].split(",")[-1])
        n_classes = 2 if metadata["head_activation"] == "sigmoid" else units
        if len(labels) != n_classes:
            raise ValueError(f"{len(labels)} labels, but the model has {n_classes} classes")
        metadata = {**metadata, "labels": labels_metadata(labels)}
    ordered = [(name, tensors[name]) for name, _ in layout]
    n_params = sum(int(np.prod(a.shape)) for _, a in ordered)
    size = write_safetensors(path, ordered, metadata)
    pre = metadata.get("preprocess", "torchvision")
    hint = "" if pre == "torchvision" else f"; serve it with {pre} preprocessing"
    print(f"wrote {path}: {summary}, {len(ordered)} tensors, {n_params:,} values, "
          f"{size / 1048576:.0f} MiB{hint}", file=sys.stderr)


def model_for_conv_count(n_convs):
    for name, cfg in VGG_CFGS.items():
        if sum(v != "M" for v in cfg) == n_convs:
            return name
    raise ValueError(f"{n_convs} conv layers: not VGG11/13/16/19")


def check_layout(tensors, model):
    """Raises ValueError naming the first missing, extra or misshapen tensor."""
    want = dict(vgg_layout(model))
    for name, shape in want.items():
        if name not in tensors:
            raise ValueError(f"missing tensor {name} {shape} for {model}")
        if tuple(tensors[name].shape) != shape:
            raise ValueError(f"{name}: shape {tuple(tensors[name].shape)}, {model} needs {shape}")
    extra = sorted(set(tensors) - set(want))
    if extra:
        raise ValueError(f"unexpected tensors for {model}: {', '.join(extra[:5])}")


def write_safetensors(path, tensors, metadata):
    """tensors: [(name, array)] written as F32 in that order; metadata: {str: str}.

    Writes PATH.part and renames it, so a failed run never leaves a truncated file."""
    header, offset = {}, 0
    arrays = []
    for name, arr in tensors:
        a = np.ascontiguousarray(arr, dtype="<f4")
        if not np.isfinite(np.sum(a, dtype=np.float64)):  # any NaN/inf shows in the sum
            raise ValueError(f"{name}: non-finite values")
        header[name] = {"dtype": "F32", "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        arrays.append(a)
    header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    tmp = path + ".part"
    with open(tmp, "wb") as f:
        f.write(len(raw).to_bytes(8, "little"))
        f.write(raw)
        for a in arrays:
            f.write(memoryview(a).cast("B"))  # no copy of the (up to 400 MB) tensor
    os.replace(tmp, path)
    return 8 + len(raw) + offset


def write_vgg(path, tensors, model, preprocess, source, converter, labels=None):
    """Writes a checked VGG's tensors ({name: array}) in vggserve's layer order, with the
    metadata the loader reads (and the class names, label_file.read_labels()'s list, when
    given), and prints one line saying what was written. ValueError: a non-finite value, or
    a label count other than the classifier's."""
    ordered = [(name, tensors[name]) for name, _ in vgg_layout(model)]
    n_params = sum(int(np.prod(a.shape)) for _, a in ordered)
    metadata = {"format": "pt", "model": model, "preprocess": preprocess,
                "source": os.path.basename(source), "converter": converter}
    if labels is not None:
        n_classes = ordered[-1][1].shape[0]  # the last classifier's bias
        if len(labels) != n_classes:
            raise ValueError(f"{len(labels)} labels, but the model has {n_classes} classes")
        metadata["labels"] = labels_metadata(labels)
    size = write_safetensors(path, ordered, metadata)
    hint = "" if preprocess == "torchvision" else f"; serve it with {preprocess} preprocessing"
    print(f"wrote {path}: {model}, {len(ordered)} tensors, {n_params:,} parameters, "
          f"{size / 1048576:.0f} MiB{hint}", file=sys.stderr)
