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

Needs Debian's python3-torch (and python3-numpy). The checkpoint is loaded with
weights_only=True: a .pth file is a pickle, and this refuses one that carries code.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from label_file import read_labels  # noqa: E402
from safetensors_write import check_layout, model_for_conv_count, write_vgg  # noqa: E402


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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pth", help="torchvision VGG checkpoint (.pth state_dict)")
    ap.add_argument("out", help="output .safetensors")
    ap.add_argument("--labels", metavar="FILE",
                    help="class names to embed: one per line, index_to_name.json, "
                         "class_indices.json or a JSON list")
    args = ap.parse_args(argv)
    try:
        labels = read_labels(args.labels) if args.labels else None
    except (OSError, ValueError) as e:
        sys.exit(f"convert_torchvision: labels {args.labels}: {e}")

    tensors = load_state_dict(args.pth)
    n_convs = sum(1 for k in tensors if k.startswith("features.") and k.endswith(".weight"))
    try:
        model = model_for_conv_count(n_convs)
        check_layout(tensors, model)
    except ValueError as e:
        sys.exit(f"convert_torchvision: {args.pth}: {e}")
    try:
        write_vgg(args.out, tensors, model, "torchvision", args.pth, "scripts/convert_torchvision.py",
                  labels)
    except ValueError as e:
        sys.exit(f"convert_torchvision: {args.out}: {e}")


if __name__ == "__main__":
    main()
