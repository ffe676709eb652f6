#!/usr/bin/python3
"""keras_model.py - a whole Keras model (VGG base + the user's head) -> vggserve's layout.

Used by convert_keras.py for the files Keras writes when a whole model is saved:
  - Keras 2 `model.save("m.h5")`: the root attribute `model_config` (the architecture as
    JSON: {"class_name": "Sequential" | "Functional" | "Model", "config": {"layers": [...]}}),
    and the weights under `model_weights/`, one group per top-level layer with its
    `weight_names` attribute (keras/saving/legacy/hdf5_format.py). A VGG base nested as one
    layer of a Sequential stores its convolutions' weights in its own group, named
    "block1_conv1/kernel:0" and so on.
  - Keras 3 `model.save("m.keras")`: a zip of `config.json` (the same architecture, with
    "batch_shape" for "batch_input_shape") and `model.weights.h5`, where each layer's
    variables are `layers/<name>/vars/0, 1, ...` (nested models: `layers/vgg16/layers/<name>/
    vars/...`).
The layers are read in config order, nested models flattened (VGG is a chain):
  InputLayer, Dropout, Random* augmentation (inactive at inference)   skipped
  Rescaling(1/255) or (1/127.5, -1)                                    preprocess rescale / tf
  Conv2D 3x3 same ReLU, MaxPooling2D 2x2                               the VGG features
  Flatten | GlobalAveragePooling2D | GlobalMaxPooling2D                the head's pooling
  Dense (ReLU between; softmax over N >= 2 or sigmoid on 1 unit last; a linear last layer is
  taken as logits: softmax, or sigmoid for one unit), Activation after the last Dense
Anything else (BatchNormalization, Add, a Conv2D that is not 3x3/ReLU, ...) is refused with
the layer's name and kind. Keras flattens channels-last (H, W, C): the first Dense's rows are
permuted to vggserve's (C, H, W)."""
import io
import json
import zipfile

import numpy as np

from safetensors_write import (VGG_CFGS, feature_layout, final_hw, head_layout,  # noqa: E402
                               head_metadata)

SKIPPED = {"InputLayer", "Dropout", "SpatialDropout2D", "GaussianDropout", "GaussianNoise",
           "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast",
           "RandomCrop", "RandomBrightness"}
POOLS = {"Flatten": "flatten", "GlobalAveragePooling2D": "avg", "GlobalMaxPooling2D": "max"}
NESTED = {"Sequential", "Functional", "Model"}


def _text(v):
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def read_model_file(path):
    """(config dict or None, {layer name: [arrays in order]}) of a Keras 2 .h5 or Keras 3
    .keras file. None config: a weights-only file (as the published VGG weights)."""
    import h5py
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if "config.json" not in names or "model.weights.h5" not in names:
                raise ValueError("not an HDF5 file, nor a .keras archive (a zip without "
                                 "config.json and model.weights.h5)")
            config = json.loads(z.read("config.json"))
            with h5py.File(io.BytesIO(z.read("model.weights.h5")), "r") as f:
                return config, _keras3_weights(f)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ValueError(f"not an HDF5 file ({e})")
    with f:
        config = None
        if "model_config" in f.attrs:
            config = json.loads(_text(f.attrs["model_config"]))
        return config, _keras2_weights(f)


def _keras2_weights(f):
    """{layer: [arrays]}: each top-level group's weight_names in order, keyed by the name's
    layer part ("block1_conv1/kernel:0" -> block1_conv1, as in a nested base's group; the
    published file's "block1_conv1_W_1:0" -> its group's name)."""
    root = f["model_weights"] if "model_weights" in f else f
    if "layer_names" not in root.attrs:
        raise ValueError("no layer_names attribute: not a Keras weights file")
    layers = {}
    for lname in (_text(n) for n in root.attrs["layer_names"]):
        g = root[lname]
        for wn in (_text(n) for n in g.attrs.get("weight_names", [])):
            parts = wn.split("/")
            key = parts[-2] if len(parts) >= 2 else lname
            layers.setdefault(key, []).append(np.asarray(g[wn], dtype=np.float32))
    return layers


def _keras3_weights(f):
    """{layer: [vars/0, vars/1, ...]} for every group .../layers/<name>/vars."""
    layers = {}

    def visit(name, obj):
        parts = name.split("/")
        if len(parts) >= 3 and parts[-1] == "vars" and parts[-3] == "layers":
            keys = sorted(obj.keys(), key=int)
            if keys:
                layers[parts[-2]] = [np.asarray(obj[k], dtype=np.float32) for k in keys]
    f.visititems(lambda n, o: visit(n, o) if hasattr(o, "keys") else None)
    return layers


def flat_layers(config):
    """[(class_name, name, layer config)] in order, nested models flattened."""
    out = []
    for layer in config.get("config", {}).get("layers", []):
        kind, cfg = layer.get("class_name"), layer.get("config", {})
        name = cfg.get("name") or layer.get("name")
        if kind in NESTED:
            out += flat_layers(layer)
        else:
            out.append((kind, name, cfg))
    return out


def _input_size(layers, override):
    if override:
        return override
    for kind, name, cfg in layers:
        shape = cfg.get("batch_input_shape") or cfg.get("batch_shape")
        if shape and len(shape) == 4:
            if shape[1] != shape[2] or shape[3] != 3:
                raise ValueError(f"layer {name}: input shape {shape[1:]}: vggserve takes square "
                                 f"RGB inputs, channels last")
            if shape[1] is not None:
                return int(shape[1])
    raise ValueError("the model config gives no input size: pass --input-size")


def _rescaling(name, cfg):
    scale, offset = float(cfg.get("scale", 1)), float(cfg.get("offset", 0))
    if abs(scale - 1 / 255) < 1e-9 and offset == 0:
        return "rescale"
    if abs(scale - 1 / 127.5) < 1e-9 and abs(offset + 1) < 1e-9:
        return "tf"
    raise ValueError(f"layer {name} (Rescaling scale={scale}, offset={offset}): vggserve maps "
                     f"1/255 (rescale) and 1/127.5 - 1 (tf) only")


def _split(layers):
    """(convs, pools, head layers, preprocess from a Rescaling layer or None)."""
    convs, n_pools, head, pre = [], 0, [], None
    for kind, name, cfg in layers:
        if kind in SKIPPED:
            continue
        if kind == "Rescaling" and not convs:
            pre = _rescaling(name, cfg)
        elif kind == "Conv2D" and not head:
            if (list(cfg.get("kernel_size", [])) != [3, 3] or cfg.get("activation") != "relu"
                    or cfg.get("padding") != "same" or list(cfg.get("strides", [1, 1])) != [1, 1]):
                raise ValueError(f"layer {name} (Conv2D {cfg.get('kernel_size')} "
                                 f"{cfg.get('activation')} {cfg.get('padding')}): VGG's "
                                 f"convolutions are 3x3, same padding, ReLU")
            convs.append(name)
        elif kind == "MaxPooling2D" and not head:
            if list(cfg.get("pool_size", [2, 2])) != [2, 2]:
                raise ValueError(f"layer {name} (MaxPooling2D {cfg.get('pool_size')}): VGG pools 2x2")
            n_pools += 1
        elif kind in POOLS or kind in ("Dense", "Activation"):
            head.append((kind, name, cfg))
        else:
            raise ValueError(f"layer {name} ({kind}): vggserve cannot map this layer kind; it "
                             f"serves VGG's features and a head of pooling and Dense layers")
    return convs, n_pools, head, pre


def _head(head):
    """(pool, [dense layer names], [units], activation) of the head layers."""
    if not head or head[0][0] not in POOLS:
        what = f"{head[0][1]} ({head[0][0]})" if head else "nothing"
        raise ValueError(f"the features are followed by {what}: the head must start with "
                         f"Flatten, GlobalAveragePooling2D or GlobalMaxPooling2D")
    pool, dense, units, acts = POOLS[head[0][0]], [], [], []
    for kind, name, cfg in head[1:]:
        if kind in POOLS:
            raise ValueError(f"layer {name} ({kind}): a second pooling in the head")
        if kind == "Dense":
            act = cfg.get("activation", "linear")
            if not isinstance(act, str):
                raise ValueError(f"layer {name} (Dense): activation {act!r} is not a named one")
            if not cfg.get("use_bias", True):
                raise ValueError(f"layer {name} (Dense without bias): not supported")
            dense.append(name)
            units.append(int(cfg["units"]))
            acts.append(act)
        elif not dense or acts[-1] != "linear":
            raise ValueError(f"layer {name} (Activation): only after a linear last Dense")
        else:
            acts[-1] = cfg.get("activation")
    if not dense:
        raise ValueError("the head has no Dense layer")
    for name, act in zip(dense[:-1], acts[:-1]):
        if act != "relu":
            raise ValueError(f"layer {name} (Dense, {act}): hidden Dense layers must be ReLU")
    last = acts[-1]
    if last == "linear":
        last = "sigmoid" if units[-1] == 1 else "softmax"
    if last not in ("softmax", "sigmoid"):
        raise ValueError(f"layer {dense[-1]} (Dense, {last}): the last activation must be "
                         f"softmax or sigmoid")
    return pool, dense, units, last


def _kernel_bias(name, arrays):
    if arrays is None:
        raise ValueError(f"layer {name}: no weights in the file")
    if len(arrays) != 2:
        raise ValueError(f"layer {name}: {len(arrays)} weight arrays, expected kernel and bias")
    k, b = sorted(arrays, key=lambda a: -a.ndim)
    if b.ndim != 1:
        raise ValueError(f"layer {name}: no 1-D bias among shapes {[a.shape for a in arrays]}")
    return k, b


def to_vgg(config, weights, input_size=None):
    """(layout, tensors, metadata, preprocess from a Rescaling layer or None, summary) for a
    whole-model config and its weights ({layer name: arrays}). ValueError naming the layer
    for what cannot be mapped."""
    layers = flat_layers(config)
    convs, n_pools, head, pre = _split(layers)
    model = next((m for m, cfg in VGG_CFGS.items() if sum(v != "M" for v in cfg) == len(convs)),
                 None)
    if model is None or n_pools != 5:
        raise ValueError(f"{len(convs)} Conv2D and {n_pools} MaxPooling2D layers: not the "
                         f"features of VGG11/13/16/19")
    size = _input_size(layers, input_size)
    pool, dense, units, act = _head(head)
    hw, c_last = final_hw(size), VGG_CFGS[model][-2]
    fc_in0 = c_last * hw * hw if pool == "flatten" else c_last
    features = feature_layout(model, False)
    tensors = {}
    for i, lname in enumerate(convs):
        k, b = _kernel_bias(lname, weights.get(lname))
        tensors[features[2 * i][0]] = k.transpose(3, 2, 0, 1)  # HWIO -> OIHW
        tensors[features[2 * i + 1][0]] = b
    for j, lname in enumerate(dense):
        k, b = _kernel_bias(lname, weights.get(lname))
        w = k.T  # (in, out) -> (out, in)
        if j == 0 and pool == "flatten":
            if w.shape[1] != fc_in0:
                raise ValueError(f"layer {lname}: {w.shape[1]} inputs, the features give "
                                 f"{hw}x{hw}x{c_last} = {fc_in0} at {size}x{size}")
            # Column (h*W + w)*C + c (Keras flattens HWC) -> column c*H*W + h*W + w (CHW).
            w = w.reshape(w.shape[0], hw, hw, c_last).transpose(0, 3, 1, 2).reshape(w.shape[0], -1)
        tensors[f"classifier.{3 * j}.weight"] = w
        tensors[f"classifier.{3 * j}.bias"] = b
    meta = head_metadata(model, False, units, pool, act, size)
    return (features + head_layout(fc_in0, units), tensors, meta, pre,
            f"{model} at {size}x{size}, head {pool} -> {meta['head_dense']} {act}")
