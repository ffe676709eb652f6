#!/usr/bin/env python3
"""Hostile clients against `vggserve serve` (server/guard.c, server/http.c), each case bounded
in time and connections. Attackers bind to 127.0.0.2 and up (the loopback range needs no
set-up), so per-address limits are exercised while the honest client stays on 127.0.0.1.

  slowloris       1,200 connections from one address trickling header bytes: probes on the
                  main and the admin port and a /classify from elsewhere are answered; the
                  guard closes the trickles at header_timeout_s; file descriptors come back.
  budget          uploads from ten addresses holding most of a 19 MiB body each: RSS stays
                  within max_buffered_bytes, the rest get 503 + Retry-After, a small
                  /classify still gets its 200; the bytes come back when they close.
  framing         two Content-Lengths, Content-Length with Transfer-Encoding, other
                  Transfer-Encodings, %00 and %2F in paths: refused, and the smuggled request
                  after them never runs.
  own errors      libmicrohttpd's own 431 and 400 are in the access log and the metrics.
  shutdown        SIGTERM while four uploads are mid-body: four 200s, exit 0.
  bombs           (issue 25, generated here) three 20 MiB v2 JSON bombs at once, a 1x1 PNG
                  whose IDAT inflates to 1.9 GiB, a 6320x6320 16-bit PNG: 413/422 at once,
                  RSS bounded; /healthz answers while two uploads of four bombs decode.
  headers         NUL and control bytes in header values, HTTP/1.1 without Host: 400;
                  multipart/form-dataX is not multipart; repository routes read no body.
  keep-alive      idle past header_timeout_s: still served, not counted; SIGHUP/USR1/USR2
                  ignored.
  auth, budget    unauthenticated uploads get 401 from their headers; /classify still 200.
  stdout blocked  3,000 requests with stdout a FIFO nobody reads: all answered, dropped
                  lines counted; logfmt keeps one status key whatever the path.
  descriptors     RLIMIT_NOFILE 64 and 200 connections: no busy loop, no log flood.

Usage: test_hostile.py BUILD/vggserve (Debian python3-numpy)."""
import os
import re
import gzip
import signal
import socket
import struct
import threading
import time
import unittest
import zlib

import service_util as su

BIN = su.binary_from_argv()
HEADER_TIMEOUT_S = 2
BUDGET = 64 * 1024 * 1024


def connect_from(address, port, timeout=10):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((address, 0))
    s.connect(("127.0.0.1", port))
    return s


def read_all(sock, timeout=10):
    sock.settimeout(timeout)
    got = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return got


def read_head(sock, timeout=30):
    """Bytes up to and including the first blank line (one interim or final answer's head)."""
    sock.settimeout(timeout)
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = sock.recv(1)
        if not chunk:
            break
        got += chunk
    return got


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1)) * 1024


# ---- bombs (issue 25), generated here: nothing of their size is committed

def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def zlib_zeros(total, block=1 << 20):
    """A valid zlib stream of `total` zero bytes: one full-flushed block, repeated."""
    co = zlib.compressobj(9)
    first = co.compress(bytes(block)) + co.flush(zlib.Z_FULL_FLUSH)
    k, rest = divmod(total, block)
    adler, zb = 1, bytes(block)
    for _ in range(k):
        adler = zlib.adler32(zb, adler)
    tail = b""
    if rest:
        raw = zlib.compressobj(9, zlib.DEFLATED, -15)
        tail = raw.compress(bytes(rest)) + raw.flush(zlib.Z_FULL_FLUSH)
        adler = zlib.adler32(bytes(rest), adler)
    return first[:2] + first[2:] * k + tail + b"\x03\x00" + struct.pack(">I", adler)


def png(width, height, bits, color_type, idat):
    ihdr = struct.pack(">IIBBBBB", width, height, bits, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat)
            + png_chunk(b"IEND", b""))


def idat_bomb(inflated):
    """1x1 RGBA: its header needs 5 bytes of IDAT data; this one inflates to `inflated`."""
    return png(1, 1, 8, 6, zlib_zeros(inflated))


def wide16(side=6320):
    """side x side 16-bit RGBA of zero rows (310 KB at 6320: within 40 Mpixel)."""
    co = zlib.compressobj(9)
    row = bytes(1 + side * 8)
    return png(side, side, 16, 6, b"".join(co.compress(row) for _ in range(side)) + co.flush())


def json_bomb(size, item=b"{}"):
    n = (size - 12) // (len(item) + 1)
    return b'{"inputs":[' + b",".join([item] * n) + b"]}"


class PeakRss:
    """The process's RSS, sampled every 20 ms while the block runs."""

    def __init__(self, pid):
        self.pid, self.peak, self.stop = pid, 0, threading.Event()

    def __enter__(self):
        self.base = self.peak = rss(self.pid)
        def watch():
            while not self.stop.wait(0.02):
                self.peak = max(self.peak, rss(self.pid))
        self.thread = threading.Thread(target=watch, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.peak = max(self.peak, rss(self.pid))


class HostileServer(su.Server):
    @property
    def admin_port(self):
        return int(re.search(r"admin listener on [\d.]+:(\d+)", self.stderr()).group(1))


class Hostile(su.ServerTestCase):
    binary = BIN

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.photo = su.image("chelsea.jpg")
        cls.start_shared_server("hostile", [
            *su.LIGHT_FLAGS, "--admin-port", "0", "--header-timeout-s", str(HEADER_TIMEOUT_S),
            "--max-connections", "400", "--max-buffered-bytes", str(BUDGET)],
            env=su.SMALL_ASAN_QUARANTINE, server_class=HostileServer)

    def rejected(self, reason):
        return su.metric(self.server.metrics(), "vggserve_rejected_total", reason=reason)

    def log_lines(self, **match):
        return [l for l in self.server.access_log() if all(l.get(k) == v for k, v in match.items())]

    def timed(self, fn):
        t0 = time.monotonic()
        r = fn()
        return r, time.monotonic() - t0

    # ---- slowloris

    def test_slowloris_from_one_address(self):
        pid = self.server.proc.pid
        base_fds = open_fds(pid)
        before = self.rejected("header_timeout")
        socks, stop = [], threading.Event()
        for i in range(1200):
            try:
                s = connect_from("127.0.0.2", self.port, timeout=5)
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                socks.append(s)
            except OSError:
                pass  # refused at accept: the per-address limit (a quarter of 400)

        def trickle():  # one header byte a second each, which no idle timeout sees
            while not stop.wait(0.5):
                for s in socks:
                    try:
                        s.send(b"X")
                    except OSError:
                        pass
        t = threading.Thread(target=trickle, daemon=True)
        t.start()
        try:
            time.sleep(0.5)
            health, t_main = self.timed(lambda: su.http_request(self.port, "GET", "/healthz", timeout=5))
            admin, t_admin = self.timed(lambda: su.http_request(self.server.admin_port, "GET", "/healthz",
                                                                timeout=5))
            classify, t_cls = self.timed(lambda: self.server.classify(self.photo, timeout=60))
            held = open_fds(pid) - base_fds  # the rest were closed at accept: per-address limit
            print("\nslowloris: %d of 1200 connections held by the server; /healthz main %.3f s, "
                  "admin %.3f s, /classify %.3f s" % (held, t_main, t_admin, t_cls))
            self.assertEqual((health.status, admin.status, classify.status), (200, 200, 200))
            self.assertLessEqual(held, 100 + 5)  # 400 / 4, and the honest client's
            # The guard ends every trickle after header_timeout_s, whatever it sends.
            closed = sum(su.closed_by_peer(s, HEADER_TIMEOUT_S + 3) for s in socks[:20])
            self.assertEqual(closed, 20)
        finally:
            stop.set()
            t.join()
            for s in socks:
                s.close()
        su.wait_for(lambda: open_fds(pid) <= base_fds + 2, timeout=10)
        self.assertLessEqual(open_fds(pid), base_fds + 2)
        self.assertGreaterEqual(self.rejected("header_timeout") - before, 20)
        timeouts = self.log_lines(status=408)
        self.assertTrue(any("header_timeout_s" in l.get("error", "") for l in timeouts), timeouts[:3])

    # ---- the budget for buffered bodies

    def test_memory_budget(self):
        pid = self.server.proc.pid
        body_len, sent = 19 * 1024 * 1024, 15 * 1024 * 1024
        before_rss, held, refused = rss(pid), [], 0
        chunk = b"\xff" * (1024 * 1024)
        for i in range(10):
            s = connect_from("127.0.0.%d" % (10 + i), self.port, timeout=30)
            s.sendall(b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                      b"Content-Length: %d\r\n\r\n" % body_len)
            try:
                for _ in range(sent // len(chunk)):
                    s.sendall(chunk)
                held.append(s)
            except (BrokenPipeError, ConnectionResetError):
                s.close()
                refused += 1
                continue
            s.settimeout(0.5)
            try:
                answer = s.recv(4096)
            except socket.timeout:
                continue
            if answer.startswith(b"HTTP/1.1 503"):
                self.assertIn(b"Retry-After", answer)
                self.assertIn(b"memory_budget", answer)
                refused += 1
                held.remove(s)
                s.close()
        grew = rss(pid) - before_rss
        print("\nbudget: %d uploads holding 15 MiB, %d refused; RSS grew %.1f MiB (budget %d MiB)"
              % (len(held), refused, grew / 2**20, BUDGET >> 20))
        self.assertEqual(len(held), BUDGET // body_len)  # 3 of 19 MiB fit in 64 MiB
        self.assertGreater(refused, 0)
        self.assertLess(grew, BUDGET + 24 * 1024 * 1024)
        # 40 KB still fits: the three held uploads reserve 57 MiB of the 64 (their whole
        # Content-Length, at their headers); the refused ones reserve nothing.
        r = self.server.classify(self.photo, timeout=60)
        self.assertEqual(r.status, 200, r)
        for s in held:
            s.close()
        # Closed uploads give their bytes back: a new one is admitted again.
        def admitted():
            s = connect_from("127.0.0.30", self.port)
            s.sendall(b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % body_len)
            s.settimeout(0.5)
            try:
                return s.recv(100) == b""
            except socket.timeout:
                return True  # waiting for the body: admitted
            finally:
                s.close()
        self.assertTrue(su.wait_for(admitted, timeout=10))
        self.assertEqual(self.server.classify(self.photo, timeout=60).status, 200)

    # ---- bombs: bounded parsing and decoding (issue 25)

    def test_json_bombs_are_refused_before_they_are_built(self):
        pid = self.server.proc.pid
        bodies = [(json_bomb(20 << 20), {}),
                  (gzip.compress(json_bomb(20 << 20), 9), {"Content-Encoding": "gzip"}),
                  (gzip.compress(json_bomb(20 << 20, b"0"), 9), {"Content-Encoding": "gzip"})]
        self.assertLess(len(bodies[1][0]), 64 * 1024)  # 20 MiB on the wire as 20 KB
        answers = []
        def post(body, headers):
            headers = dict(headers, **{"Content-Type": "application/json"})
            return su.http_request(self.port, "POST", "/v2/models/vgg11/infer", body=body,
                                   headers=headers, timeout=60)
        with PeakRss(pid) as m:
            answers = su.run_parallel([lambda b=b, h=h: post(b, h) for b, h in bodies])
        for r in answers:
            self.assertEqual(r.status, 413, r)
        self.assertIn("objects and arrays", answers[0].json()["error"])
        self.assertIn("values", answers[2].json()["error"])
        grew = (m.peak - m.base) / 2**20
        time.sleep(1)
        after = (rss(pid) - m.base) / 2**20
        print("\njson bombs: peak +%.0f MiB, +%.0f MiB a second later" % (grew, after))
        self.assertLess(grew, 300)  # was +1.5 GiB for each
        self.assertLess(after, 100)

    def test_png_bombs_answer_422_at_once(self):
        pid = self.server.proc.pid
        bomb = idat_bomb(int(1.9 * 2**30))
        with PeakRss(pid) as m:
            (r, took) = self.timed(lambda: self.server.classify(bomb, content_type="image/png",
                                                                 timeout=60))
        print("\nIDAT bomb of %d bytes (1.9 GiB inflated): %d in %.2f s, peak +%.0f MiB"
              % (len(bomb), r.status, took, (m.peak - m.base) / 2**20))
        self.assertEqual(r.status, 422, r)
        self.assertEqual(r.json()["error"]["type"], "undecodable_image")
        self.assertIn("inflates past the 5 bytes its header", r.json()["error"]["message"])
        self.assertLess(m.peak - m.base, 256 * 2**20)  # was +1.9 GiB, 7.8 s, then a 500
        r = self.server.classify(wide16(), content_type="image/png", timeout=60)
        self.assertEqual(r.status, 422, r)
        self.assertEqual(r.json()["error"]["type"], "image_too_large")
        self.assertIn("max_pixels x 4", r.json()["error"]["message"])

    def test_healthz_answers_while_bombs_decode(self):
        bomb = idat_bomb(512 << 20)
        body, ctype = su.multipart([("b%d.png" % i, "image/png", bomb) for i in range(4)])
        probes, stop = [], threading.Event()
        def probe():
            while not stop.is_set():
                t0 = time.monotonic()
                try:
                    ok = su.http_request(self.port, "GET", "/healthz", timeout=10).status == 200
                except OSError:
                    ok = False
                probes.append((ok, time.monotonic() - t0))
                time.sleep(0.1)
        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        answers = su.run_parallel([lambda: self.server.request(
            "POST", "/classify", body=body, headers={"Content-Type": ctype}, timeout=60)
            for _ in range(2)])
        time.sleep(0.5)
        stop.set()
        prober.join()
        for r in answers:
            self.assertIn(r.status, (422, 503), r)  # 503: decode_busy, the slot was taken
        self.assertTrue(probes and all(ok and took < 2 for ok, took in probes), probes)

    # ---- request framing and paths

    def raw(self, data, address="127.0.0.3"):
        s = connect_from(address, self.port)
        s.sendall(data)
        got = read_all(s, timeout=10)
        s.close()
        return got

    def test_framing_is_refused_and_never_smuggles(self):
        smuggled = b"GET /smuggled%d HTTP/1.1\r\nHost: x\r\n\r\n"
        cases = [
            ("two Content-Lengths", 400, b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
             b"Content-Length: 60\r\n\r\nAAAAA" + smuggled % 1),
            ("Content-Length and chunked", 400, b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled % 2),
            ("gzip, chunked", 501, b"POST /classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked"
             b"\r\n\r\n0\r\n\r\n" + smuggled % 3),
            ("xchunked", 501, b"POST /classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n"
             b"0\r\n\r\n" + smuggled % 4),
            ("chunked, identity", 501, b"POST /v2/models/vgg11/infer HTTP/1.1\r\nHost: x\r\n"
             b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + smuggled % 5),
        ]
        for what, status, data in cases:
            with self.subTest(what):
                got = self.raw(data)
                self.assertTrue(got.startswith(b"HTTP/1.1 %d" % status), got[:200])
                self.assertEqual(got.count(b"HTTP/1.1 "), 1, got)  # nothing after it ran
        for path in (b"/healthz%00.txt", b"/v2/models/vgg11%2finfer", b"/v2/models/vgg11%2Fready"):
            with self.subTest(path=path):
                got = self.raw(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                self.assertTrue(got.startswith(b"HTTP/1.1 400"), got[:200])
                self.assertIn(b"encoded NUL or", got)
        got = self.raw(b"POST /classify%00.png HTTP/1.1\r\nHost: x\r\nContent-Length: "
                       + str(len(self.photo)).encode() + b"\r\n\r\n" + self.photo)
        self.assertTrue(got.startswith(b"HTTP/1.1 400"), got[:200])
        time.sleep(0.2)
        log = self.server.access_log()
        self.assertFalse([l for l in log if "smuggled" in l["path"]])
        self.assertGreaterEqual(len([l for l in log if l["status"] == 501]), 3)

    def test_control_bytes_in_header_values_and_missing_host(self):
        photo_len = str(len(self.photo)).encode()
        cases = [
            ("NUL in Authorization", b"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t"
             b"\x00garbage\r\nConnection: close\r\n\r\n"),
            ("NUL in Content-Length", b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Length: "
             + photo_len + b"\x00 99999\r\n\r\n" + self.photo),
            ("NUL in Transfer-Encoding", b"POST /classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
             b"chunked\x00, identity\r\n\r\n0\r\n\r\n"),
            ("NUL in X-Request-Id", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: ab\x00cd\r\n"
             b"Connection: close\r\n\r\n"),
            ("ESC in a header", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Any: a\x1bb\r\n"
             b"Connection: close\r\n\r\n"),
            ("HTTP/1.1 without Host", b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n"),
            ("two Hosts", b"GET /healthz HTTP/1.1\r\nHost: x\r\nHost: y\r\nConnection: close\r\n\r\n"),
        ]
        for what, data in cases:
            with self.subTest(what):
                got = self.raw(data)
                self.assertTrue(got.startswith(b"HTTP/1.1 400"), got[:300])
                self.assertIn(b"framing", got)
        got = self.raw(b"GET /healthz HTTP/1.0\r\n\r\n")  # 1.0 needs no Host
        self.assertTrue(got.startswith(b"HTTP/1.1 200") or got.startswith(b"HTTP/1.0 200"), got[:100])
        got = self.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Tab: a\tb\r\nConnection: close\r\n\r\n")
        self.assertTrue(got.startswith(b"HTTP/1.1 200"), got[:100])  # a tab is allowed
        body, ctype = su.multipart([("a.jpg", "image/jpeg", self.photo)])
        r = self.server.request("POST", "/classify", body=body,
                                headers={"Content-Type": ctype.replace("form-data", "form-dataX")})
        self.assertNotEqual(r.status, 200, r)  # not multipart: the body is no image

    def test_repository_routes_read_no_body(self):
        r = self.server.request("POST", "/v2/repository/index", body=b"{}")
        self.assertEqual(r.status, 200, r)
        s = connect_from("127.0.0.40", self.port)
        s.sendall(b"POST /v2/repository/index HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n")
        got = read_all(s, timeout=5)
        s.close()
        self.assertTrue(got.startswith(b"HTTP/1.1 413"), got[:200])

    def test_idle_keep_alive_is_not_slow(self):
        before = self.rejected("header_timeout")
        conn = self.server.connection(timeout=10)
        conn.request("GET", "/healthz")
        r = conn.getresponse()
        r.read()
        sock = conn.sock
        time.sleep(HEADER_TIMEOUT_S + 1.5)  # idle past header_timeout_s, within connection_timeout_s
        conn.request("GET", "/healthz")
        r = conn.getresponse()
        r.read()
        self.assertEqual(r.status, 200)
        self.assertIs(conn.sock, sock)  # the same connection
        conn.close()
        self.assertEqual(self.rejected("header_timeout"), before)

    def test_sighup_and_sigusr_are_ignored(self):
        for sig in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
            self.server.proc.send_signal(sig)
        time.sleep(0.3)
        self.assertIsNone(self.server.proc.poll())
        self.assertEqual(su.http_request(self.port, "GET", "/healthz").status, 200)

    def test_libmicrohttpd_answers_are_logged_and_counted(self):
        before = self.server.metrics()
        huge = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n"
        got = self.raw(huge)
        self.assertTrue(got.startswith(b"HTTP/1.1 431"), got[:100])
        got = self.raw(b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n")
        self.assertTrue(got.startswith(b"HTTP/1.1 400"), got[:100])
        def counted():
            after = self.server.metrics()
            d = lambda reason: (su.metric(after, "vggserve_rejected_total", reason=reason)
                                - su.metric(before, "vggserve_rejected_total", reason=reason))
            return d("headers_too_large") >= 1 and d("framing") >= 1
        self.assertTrue(su.wait_for(counted))
        statuses = [l["status"] for l in self.server.access_log()]
        self.assertIn(431, statuses)

    def test_admin_port_serves_only_probes(self):
        a = self.server.admin_port
        self.assertEqual(su.http_request(a, "GET", "/readyz").status, 200)
        self.assertEqual(su.http_request(a, "GET", "/metrics").status, 200)
        r = su.http_request(a, "POST", "/classify", body=self.photo)
        self.assertEqual(r.status, 404)
        self.assertIn("admin port", r.json()["error"]["message"])


# key=value or key="value with \\" and \\\\ escaped", separated by single spaces
LOGFMT_PAIR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|[^ "]*)')


class BlockedStdoutServer(HostileServer):
    """stdout is a FIFO whose reader never reads (after the first 64 KiB, writes would block);
    unread() reads back what the pipe holds."""

    def __init__(self, binary, workdir, name, *args, **kw):
        super().__init__(binary, workdir, name, *args, **kw)
        os.mkfifo(self.out_path)
        self.reader = os.open(self.out_path, os.O_RDONLY | os.O_NONBLOCK)

    def stdout(self):  # what the pipe holds: opening the FIFO again could wait for ever
        return self.unread()

    def unread(self):
        got = b""
        try:
            while True:
                chunk = os.read(self.reader, 65536)
                if not chunk:
                    break
                got += chunk
        except BlockingIOError:
            pass
        return got.decode()


class BlockedStdout(su.ServerTestCase):
    binary = BIN

    def test_stdout_nobody_reads_stops_nothing(self):
        s = self.start_server("blocked", [*su.LIGHT_FLAGS, "--admin-port", "0", "--log-format",
                                          "logfmt"], server_class=BlockedStdoutServer)
        # A path that would forge keys, unquoted: one status key all the same.
        forged = su.http_request(s.port, "GET", "/a%20status=200%20injected=yes%22%5C")
        self.assertEqual(forged.status, 404)
        conn = s.connection(timeout=10)
        long_path = "/missing/" + "x" * 110
        for i in range(3000):  # about 1.3 MB of log lines: more than the pipe and the buffer
            conn.request("GET", long_path)
            r = conn.getresponse()
            r.read()
            self.assertEqual(r.status, 404)
        self.assertEqual(su.http_request(s.admin_port, "GET", "/healthz").status, 200)
        dropped = su.metric(s.metrics(), "vggserve_log_lines_dropped_total")
        print("\nstdout blocked: 3,000 requests answered, %d log lines dropped" % dropped)
        self.assertGreater(dropped, 0)
        lines = s.unread().splitlines()
        first = [l for l in lines if "injected" in l]
        self.assertEqual(len(first), 1, lines[:3])
        keys = [k for k, _ in LOGFMT_PAIR.findall(first[0])]
        self.assertEqual(keys.count("status"), 1, first[0])
        self.assertEqual(len(keys), len(set(keys)), first[0])
        self.assertEqual(LOGFMT_PAIR.sub("", first[0]).strip(), "", first[0])  # nothing unparsed
        self.assertIn('path="/a status=200 injected=yes\\"\\\\"', first[0])
        t0 = time.monotonic()
        s.proc.send_signal(signal.SIGTERM)
        self.assertEqual(s.proc.wait(30), 0)
        self.assertLess(time.monotonic() - t0, 15)  # the log gives stdout 2 s, then lets go


class AuthBeforeBodies(su.ServerTestCase):
    binary = BIN

    def test_unauthenticated_bodies_cannot_fill_the_budget(self):
        s = self.start_server("auth", [*su.LIGHT_FLAGS, "--auth-token", "sesame",
                                       "--max-buffered-bytes", str(BUDGET)])
        held = []
        for i, path in enumerate([b"/v2/repository/index", b"/v2/repository/models/vgg11/load",
                                  b"/classify", b"/v2/models/vgg11/infer"]):
            c = connect_from("127.0.0.%d" % (50 + i), s.port)
            c.sendall(b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 15728640\r\n\r\n")
            head = read_head(c, timeout=10)
            self.assertTrue(head.startswith(b"HTTP/1.1 401"), (path, head))  # before any body
            held.append(c)
        photo = su.image("chelsea.jpg")
        r = s.classify(photo, headers={"Authorization": "Bearer sesame"}, timeout=60)
        self.assertEqual(r.status, 200, r)
        r = s.request("POST", "/v2/repository/index", body=b"{}", auth=False)
        self.assertEqual(r.status, 401, r)
        for c in held:
            c.close()


class FdLimitedServer(HostileServer):
    """Runs under prlimit with RLIMIT_NOFILE 64 (soft and hard)."""

    def __init__(self, binary, *args, **kw):
        super().__init__(binary, *args, **kw)
        self.flags = ["--nofile=64:64", "--", binary, *self.flags]
        self.binary = "/usr/bin/prlimit"


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class FdLimit(su.ServerTestCase):
    binary = BIN

    def test_64_descriptors_and_200_connections(self):
        s = self.start_server("fd64", [*su.LIGHT_FLAGS, "--admin-port", "0"],
                              server_class=FdLimitedServer)
        self.assertIn("cannot hold max_connections", s.stderr())  # clamped, with a warning
        held = []
        for i in range(200):
            try:
                held.append(connect_from("127.0.0.%d" % (60 + i % 50), s.port, timeout=2))
            except OSError:
                break
        admin = connect_from("127.0.0.2", s.admin_port)
        admin.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        self.assertTrue(read_all(admin, timeout=10).startswith(b"HTTP/1.1 200"))
        admin.close()
        err_before, cpu_before = len(s.stderr()), cpu_seconds(s.proc.pid)
        time.sleep(3)
        cpu = (cpu_seconds(s.proc.pid) - cpu_before) / 3
        logged = len(s.stderr()) - err_before
        print("\n64 descriptors, %d connections held: %.2f core, %d bytes of log in 3 s"
              % (len(held), cpu, logged))
        self.assertLess(cpu, 0.3)  # was 0.8-1.0 core
        self.assertLess(logged, 4096)  # was 15-30 MiB/s
        for c in held:
            c.close()
        self.assertEqual(su.http_request(s.port, "GET", "/healthz", timeout=10).status, 200)


class Shutdown(su.ServerTestCase):
    binary = BIN

    def test_sigterm_mid_upload_answers_every_upload(self):
        photo = su.image("chelsea.jpg")
        server = self.start_server("drain", [*su.LIGHT_FLAGS, "--shutdown-grace-s", "20"])
        socks = []
        for i in range(4):
            s = connect_from("127.0.0.%d" % (40 + i), server.port, timeout=60)
            # Expect: 100-continue: libmicrohttpd sends the 100 only after the service has
            # taken the request's headers, so each upload is known to be arriving before the
            # signal, and every one must be computed (200).
            s.sendall(b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                      b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(photo))
            self.assertEqual(read_head(s), b"HTTP/1.1 100 Continue\r\n\r\n")
            s.sendall(photo[:len(photo) // 2])
            socks.append(s)
        server.proc.send_signal(signal.SIGTERM)
        # The drain begins (/readyz turns 503) while the uploads are still arriving, which
        # keeps the listener open until they end.
        self.assertTrue(su.wait_for(lambda: su.http_request(server.port, "GET", "/readyz",
                                                            timeout=10).status == 503,
                                    timeout=30), server.tail())
        for s in socks:
            s.sendall(photo[len(photo) // 2:])
        answers = [read_all(s, timeout=60) for s in socks]
        for s in socks:
            s.close()
        self.assertEqual(server.proc.wait(timeout=60), 0)
        for a in answers:
            self.assertEqual(a[:12], b"HTTP/1.1 200", a[:200])


if __name__ == "__main__":
    su.main(verbosity=1)
