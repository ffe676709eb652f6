#!/usr/bin/python3
"""convert_keras.py - Keras VGG16/VGG19 .h5 weights -> .safetensors for vggserve.

    /usr/bin/python3 scripts/convert_keras.py vgg16_weights_tf_dim_ordering_tf_kernels.h5 \\
        models/vgg16-keras.safetensors

Reads a Keras weights file as Keras's own loader does: the root attribute `layer_names` (or
the same under `model_weights/` for a whole-model file), then each layer group's
`weight_names` in order, so both the Keras 1 names of the published file
(`block1_conv1/block1_conv1_W_1:0`) and Keras 2 names (`.../kernel:0`) work. Layers
block1_conv1 .. block5_convN, fc1, fc2, predictions become torchvision names:

  conv kernel  (kh, kw, in, out) HWIO      -> (out, in, kh, kw) OIHW   features.N.weight
  fc1 kernel   (7*7*512, 4096), rows in Keras's HWC flatten order
               -> (4096, 512*7*7), columns in torchvision's CHW order  classifier.0.weight
  fc2, predictions kernel (in, out)        -> (out, in)                classifier.3/6.weight

The network then expects Keras's "caffe" preprocessing: 224x224 resize, BGR, 0..255 minus
the ImageNet mean (`vggserve classify --mode caffe`); the file's metadata says so
("preprocess": "caffe"). `--labels FILE` embeds the class names (scripts/label_file.py reads
the four formats vggserve reads) as the metadata "labels". Needs Debian's python3-h5py and
python3-numpy.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from label_file import read_labels  # noqa: E402
from safetensors_write import VGG_CFGS, check_layout, vgg_layout, write_vgg  # noqa: E402

FC_LAYERS = (("fc1", 0), ("fc2", 3), ("predictions", 6))


def _text(v):
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def read_keras_layers(path):
    """{layer name: [arrays in weight_names order]} for every layer that has weights."""
    try:
        import h5py
    except ImportError:
        sys.exit("convert_keras: needs h5py: apt-get install python3-h5py")
    layers = {}
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        sys.exit(f"convert_keras: {path}: not an HDF5 file ({e})")
    with f:
        root = f["model_weights"] if "model_weights" in f else f
        if "layer_names" not in root.attrs:
            sys.exit(f"convert_keras: {path}: no layer_names attribute: not a Keras weights file")
        for lname in (_text(n) for n in root.attrs["layer_names"]):
            g = root[lname]
            names = [_text(n) for n in g.attrs.get("weight_names", [])]
            if names:
                layers[lname] = [np.asarray(g[n], dtype=np.float32) for n in names]
    return layers


def kernel_bias(layer, arrays):
    """Keras keeps [kernel, bias]; tell them apart by rank rather than trust names."""
    if len(arrays) != 2:
        raise ValueError(f"{layer}: {len(arrays)} weight arrays, expected kernel and bias")
    k, b = sorted(arrays, key=lambda a: -a.ndim)
    if b.ndim != 1:
        raise ValueError(f"{layer}: no 1-D bias among shapes {[a.shape for a in arrays]}")
    return k, b


def keras_to_torchvision(layers):
    """(model name, {torchvision name: array})."""
    convs = sorted((n for n in layers if n.startswith("block") and "_conv" in n),
                   key=lambda n: (int(n[5:n.index("_")]), int(n[n.index("_conv") + 5:])))
    model = next((m for m, cfg in VGG_CFGS.items()
                  if sum(v != "M" for v in cfg) == len(convs) and m in ("vgg16", "vgg19")), None)
    if model is None:
        raise ValueError(f"{len(convs)} conv layers: Keras ships VGG16 (13) and VGG19 (16)")
    missing = [n for n, _ in FC_LAYERS if n not in layers]
    if missing:
        raise ValueError(f"no {', '.join(missing)} layer: a notop file has no classifier")
    conv_names = [name for name, _ in vgg_layout(model) if name.startswith("features.")]
    out = {}
    for i, lname in enumerate(convs):
        k, b = kernel_bias(lname, layers[lname])
        if k.ndim != 4:
            raise ValueError(f"{lname}: kernel shape {k.shape}, expected (kh, kw, in, out)")
        out[conv_names[2 * i]] = k.transpose(3, 2, 0, 1)           # HWIO -> OIHW
        out[conv_names[2 * i + 1]] = b
    c_last = out[conv_names[-2]].shape[0]
    for lname, idx in FC_LAYERS:
        k, b = kernel_bias(lname, layers[lname])
        if k.ndim != 2:
            raise ValueError(f"{lname}: kernel shape {k.shape}, expected (in, out)")
        w = k.T                                                     # (in, out) -> (out, in)
        if lname == "fc1":
            # Column (h*7 + w)*C + c (Keras flattens HWC) -> column c*49 + h*7 + w (CHW).
            hw = int(round((w.shape[1] / c_last) ** 0.5))
            if hw * hw * c_last != w.shape[1]:
                raise ValueError(f"fc1: {w.shape[1]} inputs is not H*W*{c_last}")
            w = w.reshape(w.shape[0], hw, hw, c_last).transpose(0, 3, 1, 2).reshape(w.shape[0], -1)
        out[f"classifier.{idx}.weight"] = w
        out[f"classifier.{idx}.bias"] = b
    return model, out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("h5", help="Keras weights (e.g. vgg16_weights_tf_dim_ordering_tf_kernels.h5)")
    ap.add_argument("out", help="output .safetensors")
    ap.add_argument("--labels", metavar="FILE",
                    help="class names to embed: one per line, index_to_name.json, "
                         "class_indices.json or a JSON list")
    args = ap.parse_args(argv)
    try:
        labels = read_labels(args.labels) if args.labels else None
    except (OSError, ValueError) as e:
        sys.exit(f"convert_keras: labels {args.labels}: {e}")

    layers = read_keras_layers(args.h5)
    try:
        model, tensors = keras_to_torchvision(layers)
        check_layout(tensors, model)
    except ValueError as e:
        sys.exit(f"convert_keras: {args.h5}: {e}")
    try:
        write_vgg(args.out, tensors, model, "caffe", args.h5, "scripts/convert_keras.py",
                  labels)
    except ValueError as e:
        sys.exit(f"convert_keras: {args.out}: {e}")


if __name__ == "__main__":
    main()
