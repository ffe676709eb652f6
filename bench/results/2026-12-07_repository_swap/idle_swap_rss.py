# idle_swap_rss.py - run from the repository root after bench/repository_swap.py (its weights in
# /tmp/vggserve-repository-swap): VmRSS of a server with vgg16 version 1 loaded, before and
# after a swap to version 2 with no clients. A one-off diagnosis of the swap run's after phase.
import os, sys, time, shutil, tempfile
sys.path.insert(0, "bench")
import repository_util as ru
W = "/tmp/vggserve-repository-swap"
tmp = tempfile.mkdtemp(prefix="idle-swap-")  # (the run used /tmp/rb)
d = os.path.join(tmp, "repo")
ru.place(d, "vgg16", 1, W + "/vgg16-seed1.safetensors")
s = ru.Server("build/vggserve", ["--model-repository", d, "--model-control-mode", "explicit", "--load-model", "vgg16"], tmp, "diag")
s.wait_ready(300)
photo = open("tests/data/images/chelsea.jpg", "rb").read()
def rss(tag): print("%-28s VmRSS %5.0f MiB" % (tag, ru.proc_status(s.pid, "VmRSS") / 1024), flush=True)
rss("v1 ready")
for _ in range(3): s.request("POST", "/classify?model=vgg16", photo, {"Content-Type": "image/jpeg"})
rss("v1 after 3 requests")
ru.place(d, "vgg16", 2, W + "/vgg16-seed2.safetensors")
t = time.monotonic(); print(s.request("POST", "/v2/repository/models/vgg16/load", b"{}")[0], "load %.2f s" % (time.monotonic() - t))
rss("v2 loaded (+0 s)")
time.sleep(2); rss("+2 s"); time.sleep(8); rss("+10 s")
for _ in range(3): s.request("POST", "/classify?model=vgg16", photo, {"Content-Type": "image/jpeg"})
rss("v2 after 3 requests")
time.sleep(5); rss("+5 s more")
print([ (r["name"], r.get("version"), r["state"]) for r in s.index() if r["name"] == "vgg16"])
s.stop()
shutil.rmtree(tmp)
