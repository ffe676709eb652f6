#!/usr/bin/python3
"""swap_memory.py - the RSS of a VGG16 swap under each --swap-policy (docs/configuration.md,
"Swap policy").

    /usr/bin/python3 bench/swap_memory.py [--bin build/vggserve] [--policy availability|memory]...

For each policy: generated VGG16 f32 weights (seeds 1 and 2, `vggserve gen-weights`) in a
temporary model repository, `serve --model-control-mode explicit --load-model vgg16
--swap-policy P`, then version 2 placed beside version 1 and `POST
/v2/repository/models/vgg16/load`, with /proc/PID/status's VmRSS sampled every 5 ms from
before the load until 1 s after version 1 is freed. Prints one line per policy: the load's
status and time (in memory mode the model answers 503 for about that long), the RSS before,
the peak and the RSS after. Standard library only; no requests besides the load."""
import argparse
import http.client
import os
import re
import subprocess
import sys
import tempfile
import threading
import time


def rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    raise RuntimeError("no VmRSS")


def measure(binary, src, policy, tmp):
    root = os.path.join(tmp, "repo_" + policy)
    os.makedirs(os.path.join(root, "vgg16", "1"))
    os.link(src[1], os.path.join(root, "vgg16", "1", "model.safetensors"))
    err_path = os.path.join(tmp, policy + ".err")
    with open(err_path, "w") as err:
        p = subprocess.Popen([binary, "serve", "--port", "0", "--model-repository", root,
                              "--model-control-mode", "explicit", "--load-model", "vgg16",
                              "--swap-policy", policy], stdout=subprocess.DEVNULL, stderr=err)

    def log():
        with open(err_path) as f:
            return f.read()
    try:
        while "ready in" not in log():
            if p.poll() is not None:
                raise RuntimeError(log())
            time.sleep(0.1)
        port = int(re.search(r"listening on http://[\d.]+:(\d+)", log()).group(1))
        time.sleep(1)
        before = rss_mib(p.pid)
        peak, stop = [before], threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], rss_mib(p.pid))
                time.sleep(0.005)
        t = threading.Thread(target=sample)
        t.start()
        os.makedirs(os.path.join(root, "vgg16", "2"))
        os.link(src[2], os.path.join(root, "vgg16", "2", "model.safetensors"))
        t0 = time.monotonic()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        c.request("POST", "/v2/repository/models/vgg16/load", body=b"{}")
        status = c.getresponse().status
        took = time.monotonic() - t0
        while "vgg16 version 1: freed" not in log():
            time.sleep(0.05)
        time.sleep(1)
        stop.set()
        t.join()
        print("%s: load %d in %.1f s; RSS before %d MiB, peak %d MiB, after %d MiB"
              % (policy, status, took, before, peak[0], rss_mib(p.pid)), flush=True)
    finally:
        p.terminate()
        p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "build",
                                                  "vggserve"))
    ap.add_argument("--policy", action="append", choices=("availability", "memory"))
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="vggserve-swap-") as tmp:
        src = {}
        for seed in (1, 2):
            src[seed] = os.path.join(tmp, "v%d.safetensors" % seed)
            subprocess.run([a.bin, "gen-weights", "--seed", str(seed), "--out", src[seed]],
                           check=True, stdout=subprocess.DEVNULL)
        for policy in a.policy or ("availability", "memory"):
            measure(a.bin, src, policy, tmp)


if __name__ == "__main__":
    sys.exit(main())
