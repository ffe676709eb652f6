#!/usr/bin/env python3
"""Fault tests of `vggserve serve`, black-box (loopback only).

- Start-up faults: missing, truncated, wrong-shape or foreign weights; a bad config file,
  environment variable or flag; a port in use. Each stops the process with a non-zero exit
  and a message naming the cause (the file, the tensor, the key, the port).
- Clients that vanish while their request is queued or computing, or halfway through the
  upload: the service neither crashes nor leaks (in-flight gauge and queue back to 0, the
  requests whose answer could not be written logged as 499) and keeps answering. (A close in the middle of an upload is seen
  only when connection_timeout_s runs out: libmicrohttpd 0.9.75 waits for it.)
- Slow clients: a body sent a byte at a time, and a client that sends headers then nothing,
  are cut off by connection_timeout_s while other clients are served.

Usage: /usr/bin/python3 tests/test_faults.py PATH/TO/vggserve"""
import json
import os
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest

import service_util as su

BIN = su.binary_from_argv()

# VGG11 at full size, in torchvision's names: (name, shape).
VGG11_CONVS = [(0, 3, 64), (3, 64, 128), (6, 128, 256), (8, 256, 256), (11, 256, 512),
               (13, 512, 512), (16, 512, 512), (18, 512, 512)]
VGG11 = ([(f"features.{i}.weight", (o, c, 3, 3)) for i, c, o in VGG11_CONVS] +
         [(f"features.{i}.bias", (o,)) for i, c, o in VGG11_CONVS] +
         [("classifier.0.weight", (4096, 25088)), ("classifier.0.bias", (4096,)),
          ("classifier.3.weight", (4096, 4096)), ("classifier.3.bias", (4096,)),
          ("classifier.6.weight", (1000, 4096)), ("classifier.6.bias", (1000,))])


def safetensors_file(path, tensors, data_bytes=None):
    """Writes a header for tensors [(name, shape)] (F32, packed in order) and data_bytes of
    data (default: all of it, zeros)."""
    header, off = {}, 0
    for name, shape in tensors:
        n = 4
        for d in shape:
            n *= d
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        f.write(bytes(off if data_bytes is None else data_bytes))


def serve(*flags, env=None, timeout=120):
    return subprocess.run([BIN, "serve", "--port", "0", "--model", "vgg11", *flags],
                          capture_output=True, text=True, env=su.clean_env(**(env or {})),
                          timeout=timeout)


class StartUpFaults(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="vggserve-startup-")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def assertFails(self, p, *needles, code=None):
        self.assertNotEqual(p.returncode, 0, p.stderr)
        if code is not None:
            self.assertEqual(p.returncode, code, p.stderr)
        for n in needles:
            self.assertIn(n, p.stderr)

    def test_missing_weights(self):
        w = self.path("missing.safetensors")
        self.assertFails(serve("--weights", w), w, "No such file")

    def test_truncated_weights(self):
        w = self.path("truncated.safetensors")
        safetensors_file(w, VGG11, data_bytes=4096)  # header claims 507 MB, 4 KiB follow
        self.assertFails(serve("--weights", w), w, "truncated")

    def test_wrong_shape_weights(self):
        w = self.path("wrong_shape.safetensors")
        tensors = [(n, (2,) if n != "features.0.weight" else (64, 3, 5, 5)) for n, _ in VGG11]
        safetensors_file(w, tensors)
        p = serve("--weights", w)
        self.assertFails(p, w, "features.0.weight", "(64, 3, 3, 3)")

    def test_missing_tensor(self):
        w = self.path("missing_tensor.safetensors")
        safetensors_file(w, [(n, (1,)) for n, _ in VGG11 if n != "classifier.6.bias"])
        self.assertFails(serve("--weights", w), w, "classifier.6.bias")

    def test_not_a_weights_file(self):
        w = self.path("text.safetensors")
        with open(w, "w") as f:
            f.write("this is not a safetensors file\n")
        self.assertFails(serve("--weights", w), w, "not a safetensors file")

    def test_bad_config_file(self):
        c = self.path("bad.json")
        with open(c, "w") as f:
            f.write('{"port": 8080,\n "workers": }\n')
        self.assertFails(serve("--config", c), c + ":2", code=2)
        with open(c, "w") as f:
            json.dump({"max_batch_sise": 4}, f)
        self.assertFails(serve("--config", c), "unknown setting 'max_batch_sise'", code=2)
        with open(c, "w") as f:
            json.dump({"queue_capacity": "many"}, f)
        self.assertFails(serve("--config", c), "queue_capacity must be an integer", code=2)
        self.assertFails(serve("--config", self.path("nope.json")), self.path("nope.json"), code=2)

    def test_bad_environment_and_flags(self):
        self.assertFails(serve(env={"VGGSERVE_MAX_BATCH_SIZE": "0"}), "VGGSERVE_MAX_BATCH_SIZE", code=2)
        self.assertFails(serve("--connection-timeout-s", "-1"), "--connection-timeout-s", code=2)
        self.assertFails(serve("--max-connections", "1", "--http-threads", "2"), "max_connections",
                         code=2)
        self.assertFails(serve("--auth-metrics", "maybe"), "auth_metrics must be true or false",
                         code=2)

    def test_port_in_use(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            port = s.getsockname()[1]
            p = subprocess.run([BIN, "serve", "--port", str(port)], capture_output=True,
                               text=True, env=su.clean_env(), timeout=60)
        self.assertFails(p, f"127.0.0.1:{port}", "Address already in use")
        self.assertNotIn("weights loaded", p.stderr)  # nothing loaded before it failed


def post_and_hold(port, body, ctype="image/jpeg", send_all=True):
    """Sends a classify request (or half of its body) over a raw socket; returns the socket,
    unread."""
    s = su.raw_connect(port)
    head = (f"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    s.sendall(head + (body if send_all else body[:len(body) // 2]))
    return s


def vanish(s, reset=False):
    """Closes without reading: with a FIN, or (reset) with an RST, as a client that crashed
    or was killed leaves."""
    if reset:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def post_and_vanish(port, body, ctype="image/jpeg", send_all=True):
    vanish(post_and_hold(port, body, ctype, send_all))


class VanishingClients(su.LightServerCase):
    binary, name = BIN, "vanish"
    TIMEOUT_S = 3

    @classmethod
    def server_args(cls, workdir):
        return {"flags": ["--queue-capacity", "4", "--max-images-per-request", "4",
                          "--connection-timeout-s", str(cls.TIMEOUT_S)]}

    def settled(self):
        m = self.server.metrics()
        # The /metrics request itself is in flight while it renders.
        return (su.metric(m, "vggserve_in_flight_requests") <= 1 and
                su.metric(m, "vggserve_queue_depth") == 0)

    def test_clients_that_leave_while_queued_or_computing(self):
        # The clients leave once all six requests are in (one computing, four queued, the rest
        # answered 503), half with a FIN, half with an RST. A FIN leaves the
        # server's side writable, so an answer to such a client may still be written and
        # logged 200 (which wins is a race); after an RST the answer's write fails, so those
        # requests are logged as 499.
        s = self.server

        def classify_seen():  # requests in flight (less this /metrics one) or counted
            m = s.metrics()
            return (su.metric(m, "vggserve_in_flight_requests") - 1 +
                    sum(v for n, l, v in m if n == "vggserve_requests_total" and
                        l.get("endpoint") == "classify"))

        for _ in range(2):
            before = classify_seen()
            clients = [post_and_hold(s.port, self.jpeg) for _ in range(6)]
            self.assertTrue(su.wait_for(lambda: classify_seen() - before >= 6, 30, 0.005),
                            s.tail())
            for i, c in enumerate(clients):
                vanish(c, reset=i % 2 == 0)
            self.assertTrue(su.wait_for(self.settled, 60), s.tail())
        self.assertTrue(s.alive())
        r = s.classify(self.jpeg)
        self.assertEqual(r.status, 200, r)
        log = s.access_log()
        vanished = [l for l in log if l["path"] == "/classify" and l["status"] == 499]
        # Each round queued four of its six clients, so at least one of the three that reset,
        # whose answer came after the reset.
        self.assertGreaterEqual(len(vanished), 2, "too few requests logged as 499")
        self.assertTrue(all("connection ended" in l.get("error", "") for l in vanished))
        m = s.metrics()
        self.assertEqual(su.metric(m, "vggserve_requests_total", 0.0, endpoint="classify", code="500"), 0)

    def test_clients_that_leave_mid_upload(self):
        # libmicrohttpd 0.9.75 notices a close in the middle of a body only when the
        # connection's idle timeout runs out: the slot is held that long, then freed.
        s = self.server
        t0 = time.time()
        for _ in range(10):
            post_and_vanish(s.port, self.jpeg, send_all=False)
        self.assertEqual(s.classify(self.jpeg).status, 200)  # served meanwhile
        self.assertTrue(su.wait_for(self.settled, self.TIMEOUT_S + 15), s.tail())
        self.assertLess(time.time() - t0, self.TIMEOUT_S + 15)


class SlowClients(su.LightServerCase):
    binary, name = BIN, "slow"
    TIMEOUT_S = 2

    @classmethod
    def server_args(cls, workdir):
        return {"flags": ["--connection-timeout-s", str(cls.TIMEOUT_S)]}

    def trickle(self, result):
        """Sends the body one byte every 0.2 s; records when the server cut it off."""
        s = su.raw_connect(self.server.port)
        s.sendall(b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(self.jpeg))
        t0 = time.time()
        try:
            for b in self.jpeg:
                if time.time() - t0 > 20:
                    break
                s.sendall(bytes([b]))
                time.sleep(0.2)
                s.setblocking(False)
                try:
                    if s.recv(4096) == b"":
                        break
                except BlockingIOError:
                    pass
                finally:
                    s.setblocking(True)
        except (BrokenPipeError, ConnectionResetError):
            pass
        result["cut_after_s"] = time.time() - t0
        s.close()

    def test_byte_by_byte_body_is_cut_off_and_others_are_served(self):
        result = {}
        slow = threading.Thread(target=self.trickle, args=(result,))
        slow.start()
        times = []
        for _ in range(3):  # other clients, while the slow one trickles
            t0 = time.time()
            r = self.server.classify(self.jpeg)
            times.append(time.time() - t0)
            self.assertEqual(r.status, 200, r)
        slow.join(60)
        self.assertLess(max(times), 10, times)
        self.assertLess(result["cut_after_s"], self.TIMEOUT_S + 3, result)
        cut = [l for l in self.server.access_log() if "connection_timeout_s" in l.get("error", "")]
        self.assertTrue(cut, "the cut-off is not in the access log")

    def test_silent_client_is_closed_by_the_idle_timeout(self):
        s = su.raw_connect(self.server.port)
        s.sendall(b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        self.assertTrue(su.closed_by_peer(s, self.TIMEOUT_S + 3))
        s.close()
        idle = su.raw_connect(self.server.port)  # not even a request line
        self.assertTrue(su.closed_by_peer(idle, self.TIMEOUT_S + 3))
        idle.close()
        self.assertEqual(self.server.request("GET", "/healthz").status, 200)


if __name__ == "__main__":
    su.main()
