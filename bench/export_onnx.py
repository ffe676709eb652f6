#!/usr/bin/python3
"""Export vggserve safetensors weights to ONNX through torchvision's VGG.

    /usr/bin/python3 bench/export_onnx.py --weights W.safetensors --out W.onnx [--opset 13]

The weights are read with the repository's independent reference reader
(tests/reference/torch_reference.py: hand-written safetensors parser, torchvision
VGG with load_state_dict(strict=True)), so ONNX Runtime and PyTorch run exactly
the network our engine runs. The graph has one float32 input "input"
(N,3,224,224) and one output "logits" (N,1000) with a dynamic batch axis N.

torch 1.13's torch.onnx.export serializes the protobuf itself: the `onnx`
Python package is not needed (and not installed on this machine). Opset 13 is
accepted by every onnxruntime 1.x from 1.6 on.

--check PREFIX also writes PREFIX.input.f32 (2 deterministic images, raw
little-endian float32) and PREFIX.logits.f32 (torch's logits for them), which
`node bench/ort_bench.js --check PREFIX` compares with ONNX Runtime's output, so a
wrong export cannot pass as a fast one.
"""

import argparse
import importlib.util
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.path.join(HERE, "..", "tests", "reference", "torch_reference.py")


def load_reference():
    spec = importlib.util.spec_from_file_location("torch_reference", REF)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def build_model(weights, model_name="vgg16"):
    ref = load_reference()
    tensors, _meta, _stored = ref.read_safetensors(weights)
    state = {k: torch.from_numpy(v) for k, v in ref.to_torchvision_names(tensors).items()}
    model = ref.build_vgg(model_name)
    model.load_state_dict(state, strict=True)
    model.eval()
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True, help=".safetensors weights")
    ap.add_argument("--out", required=True, help="output .onnx file")
    ap.add_argument("--model", default="vgg16", choices=("vgg11", "vgg13", "vgg16", "vgg19"))
    ap.add_argument("--opset", type=int, default=13, help="ONNX opset (default 13)")
    ap.add_argument("--check", metavar="PREFIX",
                    help="write PREFIX.input.f32 and PREFIX.logits.f32 for ort_bench.js --check")
    args = ap.parse_args()

    t0 = time.perf_counter()
    torch.set_num_threads(2)
    model = build_model(args.weights, args.model)
    x = torch.zeros(1, 3, 224, 224)
    with torch.no_grad():
        torch.onnx.export(model, x, args.out, opset_version=args.opset,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
                          do_constant_folding=True)
    if args.check:
        g = torch.Generator().manual_seed(7)
        xc = torch.randn(2, 3, 224, 224, generator=g)
        with torch.no_grad():
            yc = model(xc)
        xc.numpy().astype("<f4").tofile(args.check + ".input.f32")
        yc.numpy().astype("<f4").tofile(args.check + ".logits.f32")
    size = os.path.getsize(args.out)
    print(f"export_onnx: {args.model} -> {args.out} ({size / 1048576:.0f} MiB, opset {args.opset},"
          f" dynamic batch; torch {torch.__version__}; "
          f"onnx package {'present' if importlib.util.find_spec('onnx') else 'absent'}) "
          f"in {time.perf_counter() - t0:.1f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
