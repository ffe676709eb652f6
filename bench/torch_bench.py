#!/usr/bin/python3
"""PyTorch (Debian's python3-torch) eager float32 throughput of torchvision VGG16 on vggserve
weights, printed as JSON lines in the shape of `vggserve bench --json`.

    /usr/bin/python3 bench/torch_bench.py --weights W.safetensors [--batch 1,8,16]
        [--seconds 10] [--min-runs 3] [--warmup 1] [--threads 2] [--label default]

For each batch size: --warmup untimed passes, then timed passes (torch.inference_mode) until
--seconds have passed and at least --min-runs were made; img/s of the slowest and the median
pass. --label only names the variant in the output (engines.sh runs it once as is and once
under GLIBC_TUNABLES, which keeps glibc from returning big buffers to the kernel).
"""

import argparse
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_onnx import build_model  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--model", default="vgg16")
    ap.add_argument("--batch", default="1,8,16")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--min-runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--label", default="default")
    args = ap.parse_args()
    batches = [int(b) for b in args.batch.replace(",", " ").split()]

    torch.set_num_threads(args.threads)
    model = build_model(args.weights, args.model)
    g = torch.Generator().manual_seed(42)
    full = torch.randn(max(batches), 3, 224, 224, generator=g)
    for n in batches:
        x = full[:n].contiguous()
        with torch.inference_mode():
            for _ in range(args.warmup):
                model(x)
            t = []
            start = time.perf_counter()
            while len(t) < args.min_runs or time.perf_counter() - start < args.seconds:
                t0 = time.perf_counter()
                model(x)
                t.append(time.perf_counter() - t0)
        t.sort()
        r = len(t)
        med = t[r // 2] if r % 2 else (t[r // 2 - 1] + t[r // 2]) / 2
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({
            "engine": "pytorch", "version": torch.__version__, "variant": args.label,
            "threads": torch.get_num_threads(), "model": args.model, "algo": "eager",
            "precision": "f32", "batch": n, "runs": r,
            "img_per_s_min": round(n / t[-1], 3), "img_per_s_median": round(n / med, 3),
            "img_per_s_max": round(n / t[0], 3), "ms_per_batch_median": round(med * 1e3, 3),
            "max_rss_mb": round(rss_mb, 1)}), flush=True)


if __name__ == "__main__":
    main()
