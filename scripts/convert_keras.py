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
("preprocess": "caffe"). Needs Debian's python3-h5py and python3-numpy.

Whole models with their own heads (keras_model.py says what maps): a Keras 2 `model.save()`
.h5 (the VGG base nested as one layer of a Sequential, or its layers in a functional model;
the head read from `model_config`) or a Keras 3 `.keras` archive. The input size comes from
the model's InputLayer (or --input-size); the preprocessing from a Rescaling layer in the
model, else --preprocess (default caffe, what keras.applications.vgg16.preprocess_input does;
`rescale` for ImageDataGenerator(rescale=1./255), `tf` for /127.5 - 1).
 `--labels FILE` embeds the class names
(scripts/label_file.py reads the four formats vggserve reads) as the metadata "labels".
"""
import argparse
import os
import sys


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from label_file import read_labels  # noqa: E402
import keras_model  # noqa: E402
from safetensors_write import (VGG_CFGS, check_layout, check_tensors, vgg_layout,  # noqa: E402
                               write_model, write_vgg)

FC_LAYERS = (("fc1", 0), ("fc2", 3), ("predictions", 6))


def _text(v):
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def read_keras_layers(path):
    """{layer name: [arrays in weight_names order]} for every layer that has weights."""
    try:
        import h5py  # noqa: F401
    except ImportError:
        sys.exit("convert_keras: needs h5py: apt-get install python3-h5py")
    try:
        return keras_model.read_model_file(path)[1]
    except ValueError as e:
        sys.exit(f"convert_keras: {path}: {e}")


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


def convert_whole_model(args, config, layers, labels):
    """Writes a whole Keras model with its own head (keras_model.py)."""
    layout, tensors, meta, pre, summary = keras_model.to_vgg(config, layers, args.input_size)
    if pre and args.preprocess and pre != args.preprocess:
        raise ValueError(f"the model rescales its input itself ({pre}); --preprocess "
                         f"{args.preprocess} contradicts it")
    pre = pre or args.preprocess or "caffe"
    check_tensors(tensors, layout, summary)
    meta.update({"format": "pt", "preprocess": pre, "source": os.path.basename(args.h5),
                 "converter": "scripts/convert_keras.py"})
    return lambda: write_model(args.out, tensors, layout, meta, summary, labels)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("h5", help="Keras weights (e.g. vgg16_weights_tf_dim_ordering_tf_kernels.h5), "
                               "a Keras 2 whole-model .h5 or a Keras 3 .keras archive")
    ap.add_argument("out", help="output .safetensors")
    ap.add_argument("--preprocess", choices=("caffe", "rescale", "tf", "torchvision"),
                    help="the preprocessing the model was trained with (default: a Rescaling "
                         "layer's, else caffe)")
    ap.add_argument("--input-size", type=int, help="the square input's side, when the model "
                                                   "config does not say")
    ap.add_argument("--labels", metavar="FILE",
                    help="class names to embed: one per line, index_to_name.json, "
                         "class_indices.json or a JSON list")
    args = ap.parse_args(argv)
    try:
        labels = read_labels(args.labels) if args.labels else None
    except (OSError, ValueError) as e:
        sys.exit(f"convert_keras: labels {args.labels}: {e}")

    try:
        import h5py  # noqa: F401
    except ImportError:
        sys.exit("convert_keras: needs h5py: apt-get install python3-h5py")
    try:
        config, layers = keras_model.read_model_file(args.h5)
        if config is not None:
            write = convert_whole_model(args, config, layers, labels)
        else:
            model, tensors = keras_to_torchvision(layers)
            check_layout(tensors, model)
            write = lambda: write_vgg(args.out, tensors, model, args.preprocess or "caffe",  # noqa: E731
                                      args.h5, "scripts/convert_keras.py", labels)
    except ValueError as e:
        sys.exit(f"convert_keras: {args.h5}: {e}")
    try:
        write()
    except ValueError as e:
        sys.exit(f"convert_keras: {args.out}: {e}")


if __name__ == "__main__":
    main()
