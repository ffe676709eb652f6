#!/usr/bin/env python3
"""How far each precision and algorithm's Grad-CAM maps are from torch autograd's f32 ones.

For the fixture's five inputs (tests/fixtures/parity_inputs.npy), `vggserve explain` in every
mode that explains (f32 and bf16, direct and Winograd), each input's top-1 and one explicit
class, against tests/test_explain.py's torch reference on torchvision's VGG16 with the same
weights. Prints max |map - torch| per mode and whether the top-1 agrees; asserts nothing.

Usage: bench/explain_vs_torch.py BUILD/vggserve WEIGHTS.safetensors   (/usr/bin/python3; the
weights from `vggserve gen-weights`, or any VGG16 safetensors file)."""
import json
import os
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import test_explain as T  # noqa: E402  (takes BUILD/vggserve from argv[1])

MODES = (["--algo", "direct"], ["--algo", "winograd"], ["--precision", "bf16"],
         ["--precision", "bf16", "--algo", "winograd"])


def main():
    weights = sys.argv[1]
    torch.set_num_threads(2)
    tensors, _, _ = T.torch_reference.read_safetensors(weights)
    model = T.torch_reference.build_vgg("vgg16")
    model.load_state_dict({k: torch.from_numpy(v)
                           for k, v in T.torch_reference.to_torchvision_names(tensors).items()})
    model.eval()
    a = T.conv5_3(model, np.load(T.INPUTS))
    logits = T.torch_gradcam(model, a, [0] * len(a))[1]
    top1 = logits.argmax(axis=1)
    other = int(np.argsort(-logits[0])[1])
    refs = {None: T.torch_gradcam(model, a, top1)[0],
            other: T.torch_gradcam(model, a, [other] * len(a))[0]}
    for flags in MODES:
        for cls, ref in refs.items():
            extra = ["--class-id", str(cls)] if cls is not None else []
            p = subprocess.run([T.BIN, "explain", "--weights", weights, "--tensor", T.INPUTS,
                                *flags, *extra], capture_output=True, text=True, check=True)
            rows = [json.loads(line) for line in p.stdout.splitlines()]
            diff = np.abs(T.grids(rows) - ref).max()
            note = ""
            if cls is None:
                got = [r["class_id"] for r in rows]
                note = "top-1 = torch's" if got == top1.tolist() else f"top-1 {got} vs {top1.tolist()}"
            print(f"{' '.join(flags):34s} class {'top-1' if cls is None else cls:>5}: "
                  f"max |map - torch f32| {diff:.3g}  {note}", flush=True)


if __name__ == "__main__":
    main()
