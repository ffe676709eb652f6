#!/usr/bin/env python3
"""The short integration load tests/valgrind.sh runs against a server under memcheck.

Under memcheck one VGG forward pass takes minutes, so the load is every path once or twice,
with a single inference: every bad input of tests/data/bad_inputs/ that is refused before
inference, 401s (missing, wrong, wrong scheme), 400, 404, 405, 413 from Content-Length, a
multipart body whose second part is bad, health and metrics (with and without the token), a
client that vanishes mid-upload, one classification that succeeds, and one request whose
client vanishes while it waits behind that one (it expires unanswered, never computed). Then SIGTERM: the exit code must be 0, which
memcheck turns into 99 on any invalid access or definite leak (--error-exitcode).

Usage: /usr/bin/python3 tests/valgrind_load.py PATH/TO/vggserve WEIGHTS WORKDIR
(VGGSERVE_TEST_WRAPPER holds the valgrind command line.)"""
import json
import os
import sys
import threading
import time

import service_util as su

TOKEN = "valgrind-token"


def main():
    binary, weights, workdir = sys.argv[1:4]
    s = su.Server(binary, workdir, "memcheck", token=TOKEN,
                  env={"VGGSERVE_AUTH_TOKEN": TOKEN, "OMP_WAIT_POLICY": "passive"},
                  flags=["--weights", weights, "--threads-per-worker", "1", "--http-threads", "1",
                         "--auth-metrics", "true", "--request-timeout-ms", "3600000",
                         "--max-images-per-request", "2", "--queue-capacity", "4",
                         "--connection-timeout-s", "3600", "--shutdown-grace-s", "3600"])
    t0 = time.time()
    s.start(timeout=3600)
    print(f"ready after {time.time() - t0:.0f} s", flush=True)
    statuses = {}

    def note(what, r, want):
        statuses[what] = r.status
        if r.status != want:
            raise AssertionError(f"{what}: {r.status}, wanted {want}: {r.body[:200]!r}")

    cases = os.path.join(su.TESTS, "data", "bad_inputs")
    with open(os.path.join(cases, "manifest.json")) as f:
        for case in json.load(f):
            if case["status"] == 200:
                continue
            with open(os.path.join(cases, case["file"]), "rb") as g:
                data = g.read()
            if case.get("multipart_filename"):
                body, ctype = su.multipart([(case["multipart_filename"], case["content_type"], data)])
            else:
                body, ctype = data, case["content_type"]
            note(case["file"], s.classify(body, ctype, timeout=600), case["status"])
    jpeg = su.image("chelsea.jpg")
    note("no token", s.classify(jpeg, auth=False, timeout=600), 401)
    note("wrong token", s.classify(jpeg, headers={"Authorization": "Bearer nope"}, timeout=600), 401)
    note("basic", s.classify(jpeg, headers={"Authorization": "Basic eDp5"}, timeout=600), 401)
    note("404", s.request("GET", "/nope/%ff%0a", timeout=600), 404)  # invalid UTF-8, newline
    note("405", s.request("GET", "/classify", timeout=600), 405)
    note("bad top_k", s.classify(jpeg, query="?top_k=0", timeout=600), 400)
    conn = su.raw_connect(s.port, timeout=600)
    conn.sendall(b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n"
                 b"Authorization: Bearer " + TOKEN.encode() + b"\r\n\r\n")
    statuses["413"] = int(conn.recv(100).split()[1])
    conn.close()
    if statuses["413"] != 413:
        raise AssertionError(f"413: got {statuses['413']}")
    body, ctype = su.multipart([("a.png", "image/png", open(os.path.join(cases, "one_pixel.png"), "rb").read()),
                                ("b.txt", "text/plain", b"not an image")])
    note("multipart second part bad", s.classify(body, ctype, timeout=600), 415)
    note("metrics without token", s.request("GET", "/metrics", auth=False, timeout=600), 401)
    note("metrics", s.request("GET", "/metrics", timeout=600), 200)
    note("healthz", s.request("GET", "/healthz", auth=False, timeout=600), 200)
    conn = su.raw_connect(s.port)
    conn.sendall(b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
                 b"Authorization: Bearer " + TOKEN.encode() + b"\r\n\r\nhalf")
    conn.close()

    # One inference; a second request queues behind it with a 1 s deadline and its client
    # leaves: it expires in the queue (never computed) and its answer goes nowhere.
    result = {}

    def classify():
        result["r"] = s.classify(open(os.path.join(cases, "one_pixel.png"), "rb").read(),
                                 "image/png", query="?top_k=3", timeout=3600)
    th = threading.Thread(target=classify)
    th.start()
    time.sleep(5)
    conn = su.raw_connect(s.port)
    conn.sendall(b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                 b"Authorization: Bearer " + TOKEN.encode() + b"\r\nX-Request-Timeout-Ms: 1000"
                 b"\r\nContent-Length: %d\r\n\r\n" % len(jpeg) + jpeg)
    time.sleep(5)
    conn.close()
    t1 = time.time()
    th.join()
    note("classify", result["r"], 200)
    print(f"one classification under memcheck: {time.time() - t1:.0f} s", flush=True)
    code = s.stop(timeout=3600)
    print(json.dumps(statuses), flush=True)
    print(f"server exit code {code} (99: memcheck found errors or definite leaks)", flush=True)
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
