#!/usr/bin/env python3
"""grpc_vs_http.py - the same v2 infer requests over gRPC and over HTTP (binary tensor data),
side by side against one server: FP32 tensors and JPEGs, batch 1 and 8.

    /usr/bin/python3 bench/grpc_vs_http.py [--binary build/vggserve]
        [--stubs build/tests/grpc_stubs] [--model vgg11] [--rounds 7]

One client, one request at a time; each round sends every case once by each protocol, the
order alternating between rounds, so both protocols see the same machine load. Prints per case
the client-side latency (min and median, ms) of each protocol and gRPC / HTTP as a ratio of
the medians and of the minimums. The answers are checked to be equal (same bytes). Needs
python3-grpcio and numpy; the stubs come from the build (tests/CMakeLists.txt)."""
import argparse
import http.client
import json
import os
import re
import statistics
import struct
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start(binary, model):
    p = subprocess.Popen([binary, "serve", "--port", "0", "--grpc-port", "0", "--model", model,
                          "--max-batch-size", "8", "--max-images-per-request", "8"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    http_port = grpc_port = None
    for line in p.stderr:
        m = re.search(r"listening on http://[\d.]+:(\d+)", line)
        http_port = int(m.group(1)) if m else http_port
        m = re.search(r"gRPC \(KServe v2\) listening on [\d.]+:(\d+)", line)
        grpc_port = int(m.group(1)) if m else grpc_port
        if '"ready in' in line:
            return p, http_port, grpc_port
    raise SystemExit("the server did not become ready")


def http_infer(conn, model, name, dtype, shape, data):
    header = json.dumps({"inputs": [{"name": name, "datatype": dtype, "shape": shape,
                                     "parameters": {"binary_data_size": len(data)}}],
                         "parameters": {"binary_data_output": True}}).encode()
    conn.request("POST", "/v2/models/%s/infer" % model, body=header + data,
                 headers={"Inference-Header-Content-Length": str(len(header)),
                          "Content-Type": "application/octet-stream"})
    r = conn.getresponse()
    body = r.read()
    assert r.status == 200, body[:200]
    n = int(r.getheader("Inference-Header-Content-Length"))
    return body[n:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "vggserve"))
    ap.add_argument("--stubs", default=os.path.join(ROOT, "build", "tests", "grpc_stubs"))
    ap.add_argument("--model", default="vgg11")
    ap.add_argument("--rounds", type=int, default=7)
    a = ap.parse_args()
    sys.path.insert(0, a.stubs)
    import grpc
    import grpc_service_pb2 as pb
    import grpc_service_pb2_grpc as pbg

    with open(os.path.join(ROOT, "tests", "data", "images", "chelsea.jpg"), "rb") as f:
        jpeg = f.read()
    rng = np.random.default_rng(0)
    cases = []
    for n in (1, 8):
        x = rng.standard_normal((n, 3, 224, 224), dtype=np.float32).astype("<f4")
        cases.append(("FP32 tensor, batch %d" % n, "input", "FP32", [n, 3, 224, 224], x.tobytes()))
        data = b"".join(struct.pack("<I", len(jpeg)) + jpeg for _ in range(n))
        cases.append(("JPEG, batch %d" % n, "image", "BYTES", [n], data))

    server, http_port, grpc_port = start(a.binary, a.model)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=300)
        channel = grpc.insecure_channel("127.0.0.1:%d" % grpc_port, options=[
            ("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)])
        stub = pbg.GRPCInferenceServiceStub(channel)
        times = {(c[0], p): [] for c in cases for p in ("http", "grpc")}
        for rnd in range(a.rounds + 1):  # round 0 warms both paths and is not counted
            for label, name, dtype, shape, data in cases:
                req = pb.ModelInferRequest(model_name=a.model)
                req.inputs.add(name=name, datatype=dtype, shape=shape)
                req.raw_input_contents.append(data)
                answers = {}
                for proto in (("http", "grpc") if rnd % 2 else ("grpc", "http")):
                    t0 = time.perf_counter()
                    if proto == "http":
                        answers[proto] = http_infer(conn, a.model, name, dtype, shape, data)
                    else:
                        answers[proto] = b"".join(stub.ModelInfer(req, timeout=300).raw_output_contents)
                    if rnd:
                        times[(label, proto)].append((time.perf_counter() - t0) * 1e3)
                assert answers["http"] == answers["grpc"], label
        print("%s, %d rounds after one warm-up, one client; latency in ms (client side)"
              % (a.model, a.rounds))
        print("%-22s %18s %18s %14s %14s" % ("case", "HTTP min/median", "gRPC min/median",
                                             "gRPC/HTTP med", "gRPC/HTTP min"))
        for label, *_ in cases:
            h, g = times[(label, "http")], times[(label, "grpc")]
            print("%-22s %8.1f /%8.1f %8.1f /%8.1f %14.3f %14.3f" % (
                label, min(h), statistics.median(h), min(g), statistics.median(g),
                statistics.median(g) / statistics.median(h), min(g) / min(h)))
    finally:
        server.terminate()
        server.wait(60)


if __name__ == "__main__":
    main()
