#!/usr/bin/python3
"""convert_torchvision.py - torchvision VGG .pth checkpoint -> .safetensors for vggserve.

    /usr/bin/python3 scripts/convert_torchvision.py vgg16-397923af.pth models/vgg16.safetensors
    /usr/bin/python3 scripts/convert_torchvision.py IN.pth OUT.safetensors --labels index_to_name.json

Reads a torchvision VGG state_dict (features.N.weight/bias, classifier.{0,3,6}.weight/bias;
a "module." prefix from DataParallel is dropped), checks every name and shape against the
VGG11/13/16/19 layout (the variant is found from the number of convolutions), and writes the
same names as float32 safetensors, the layout vggserve's loader reads. Inputs are expected
with torchvision preprocessing (vggserve's default). `--labels FILE` embeds the class names
(one per line, index_to_name.json, class_indices.json or a JSON list) as the metadata
"labels"; their count must equal the classifier's.
`--labels FILE` embeds the class names (one per line, index_to_name.json,
class_indices.json or a JSON list) as the metadata "labels"; their count must equal the
classifier's classes (2 for a sigmoid head).

Needs Debian's python3-torch (and python3-numpy). The checkpoint is loaded with
weights_only=True: a .pth file is a pickle, and this refuses one that carries code.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from label_file import read_labels  # noqa: E402
from safetensors_write import (check_layout, check_tensors, feature_layout, final_hw,  # noqa: E402
                               head_layout, head_metadata, is_default_head, model_for_conv_count,
                               write_model, write_vgg)


def load_state_dict(path):
    try:
        import torch
    except ImportError:
        sys.exit("convert_torchvision: needs PyTorch: apt-get install python3-torch")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except TypeError:  # torch < 1.13 has no weights_only
        obj = torch.load(path, map_location="cpu")
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]  # a training checkpoint wrapping the model's state
    if not isinstance(obj, dict):
        sys.exit(f"convert_torchvision: {path} holds a {type(obj).__name__}, not a state_dict")
    out = {}
    for name, t in obj.items():
        if name.startswith("module."):
            name = name[len("module."):]
        out[name] = t.detach().to(torch.float32).contiguous().numpy()
    return out


def classifier_units(tensors):
    """The head's Linear layers in order: [(name, out, in)], name like "classifier.6" or, for
    a Sequential nested in the classifier, "classifier.6.0". ValueError naming the layer for
    anything else under classifier., or outside features./classifier."""
    layers = {}
    for name in tensors:
        module, _, rest = name.partition(".")
        if module == "features":
            continue
        if module != "classifier":
            raise ValueError(f"{name}: a layer outside features and classifier; vggserve maps "
                             f"VGG's features and a classifier of Linear layers")
        path, _, kind = rest.rpartition(".")
        parts = path.split(".") if path else []  # [] : the classifier is one nn.Linear
        if not all(p.isdigit() for p in parts):
            raise ValueError(f"{name}: not a layer of a Sequential classifier")
        layers.setdefault(tuple(int(p) for p in parts), set()).add(kind)
    out = []
    for idx in sorted(layers):
        lname, kinds = ".".join(["classifier", *map(str, idx)]), layers[idx]
        if kinds != {"weight", "bias"}:
            what = "a BatchNorm1d" if "running_mean" in kinds else "not a Linear layer"
            raise ValueError(f"{lname} ({', '.join(sorted(kinds))}) is {what}; "
                             f"vggserve's heads are Linear layers with ReLU between them")
        w, b = tensors[lname + ".weight"], tensors[lname + ".bias"]
        if w.ndim != 2 or b.shape != (w.shape[0],):
            raise ValueError(f"{lname}: weight {w.shape}, bias {b.shape}: not a Linear layer")
        out.append((lname, w.shape[0], w.shape[1]))
    if not 1 <= len(out) <= 3:
        raise ValueError(f"{len(out)} Linear layers in classifier: vggserve supports 1 to 3")
    for a, b in zip(out, out[1:]):
        if a[1] != b[2]:
            raise ValueError(f"{b[0]} reads {b[2]} inputs but {a[0]} gives {a[1]}")
    return out


def convert(tensors, pool_arg):
    """(layout, tensors renamed, metadata or None for the plain ImageNet VGG, summary)."""
    batch_norm = any(k.startswith("features.") and k.endswith(".running_mean") for k in tensors)
    tensors = {k: v for k, v in tensors.items() if not k.endswith(".num_batches_tracked")}
    foreign = sorted(k for k in tensors if k.partition(".")[0] not in ("features", "classifier"))
    if foreign:
        raise ValueError(f"{foreign[0]}: a layer outside features and classifier; vggserve "
                         f"maps VGG's features and a classifier of Linear layers")
    n_convs = sum(1 for k, v in tensors.items()
                  if k.startswith("features.") and k.endswith(".weight") and v.ndim == 4)
    model = model_for_conv_count(n_convs)
    features = feature_layout(model, batch_norm)
    heads = classifier_units(tensors)
    c_last, hw = 512, final_hw(224)
    fc_in0 = heads[0][2]
    if fc_in0 == c_last * hw * hw:
        pool = "flatten"
    elif fc_in0 == c_last:
        pool = pool_arg or "avg"
    else:
        raise ValueError(f"{heads[0][0]} reads {fc_in0} inputs: VGG's features give "
                         f"{c_last * hw * hw} (512x7x7) or, pooled to 1x1, {c_last}")
    if pool == "flatten" and pool_arg not in (None, "flatten"):
        raise ValueError(f"--pool {pool_arg}: classifier reads 512x7x7 inputs (flatten)")
    units = [u for _, u, _ in heads]
    activation = "sigmoid" if units[-1] == 1 else "softmax"
    renamed = {k: v for k, v in tensors.items() if k.startswith("features.")}
    for j, (idx, _, _) in enumerate(heads):
        for kind in ("weight", "bias"):
            renamed[f"classifier.{3 * j}.{kind}"] = tensors[f"{idx}.{kind}"]
    layout = features + head_layout(fc_in0, units)
    name = model + ("_bn" if batch_norm else "")
    check_tensors(renamed, layout, name)
    if is_default_head(batch_norm, units, pool, activation, 224):
        return layout, renamed, None, model
    meta = head_metadata(model, batch_norm, units, pool, activation, 224)
    return layout, renamed, meta, f"{name}, head {pool} -> {meta['head_dense']} {activation}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pth", help="torchvision VGG checkpoint (.pth state_dict)")
    ap.add_argument("out", help="output .safetensors")
    ap.add_argument("--pool", choices=("avg", "max"),
                    help="a classifier reading 512 inputs: the model's avgpool was "
                         "AdaptiveAvgPool2d(1) (avg, the default) or AdaptiveMaxPool2d(1) (max)")
    ap.add_argument("--labels", metavar="FILE",
                    help="class names to embed: one per line, index_to_name.json, "
                         "class_indices.json or a JSON list")
    args = ap.parse_args(argv)
    try:
        labels = read_labels(args.labels) if args.labels else None
    except (OSError, ValueError) as e:
        sys.exit(f"convert_torchvision: labels {args.labels}: {e}")

    tensors = load_state_dict(args.pth)
    try:
        layout, renamed, meta, summary = convert(tensors, args.pool)
        if meta is None:
            check_layout(renamed, summary)
    except ValueError as e:
        sys.exit(f"convert_torchvision: {args.pth}: {e}")
    try:
        if meta is None:
            write_vgg(args.out, renamed, summary, "torchvision", args.pth,
                      "scripts/convert_torchvision.py", labels)
            return
        meta.update({"format": "pt", "preprocess": "torchvision",
                     "source": os.path.basename(args.pth),
                     "converter": "scripts/convert_torchvision.py"})
        write_model(args.out, renamed, layout, meta, summary, labels)
    except ValueError as e:
        sys.exit(f"convert_torchvision: {args.out}: {e}")

if __name__ == "__main__":
    main()
