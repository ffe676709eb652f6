#!/usr/bin/env python3
"""Auth, TLS and connection limits of `vggserve serve`, black-box (loopback only).

- Bearer token from VGGSERVE_AUTH_TOKEN: POST /classify needs it (401 with WWW-Authenticate
  and the JSON error shape otherwise); health and metrics stay open; 401s are counted.
- Token file with auth_metrics and auth_health: those endpoints need it too; bad token
  settings stop start-up with a message naming the key (and the file), and --print-config
  never prints the token.
- TLS (self-signed certificate made here with openssl, checked with curl --cacert): HTTPS
  works, plain HTTP on the same port gets no answer and does not hurt the service, a client
  that does not trust the certificate fails; a missing or mismatched key stops start-up.
- Limits: headers over max_header_bytes get 431 from libmicrohttpd; a connection over
  max_connections_per_ip is closed at once; one over max_connections is not accepted (it waits
  in the listen backlog) until another closes; the service keeps serving.

Usage: /usr/bin/python3 tests/test_security.py PATH/TO/vggserve   (needs openssl and curl)"""
import json
import os
import shutil
import socket
import subprocess
import time
import unittest

import service_util as su

BIN = su.binary_from_argv()
TOKEN = "h6-Test.token_~+/0123456789="


def run_serve(*flags, env=None, timeout=60):
    """Runs `vggserve serve` expecting it to stop during start-up; returns the process."""
    return subprocess.run([BIN, "serve", "--port", "0", *flags], capture_output=True, text=True,
                          env=su.clean_env(**(env or {})), timeout=timeout)


class AuthTest(su.LightServerCase):
    binary, name = BIN, "auth"

    @classmethod
    def server_args(cls, workdir):
        return {"env": {"VGGSERVE_AUTH_TOKEN": TOKEN}, "token": TOKEN}

    def assert401(self, r, invalid):
        self.assertEqual(r.status, 401, r)
        challenge = r.headers.get("WWW-Authenticate")
        self.assertTrue(challenge.startswith('Bearer realm="vggserve"'), challenge)
        self.assertEqual('error="invalid_token"' in challenge, invalid)
        err = r.json()["error"]
        self.assertEqual((err["code"], err["type"]), (401, "unauthorized"))
        self.assertNotIn(TOKEN, r.body.decode())

    def test_classify_needs_the_token(self):
        s = self.server
        self.assert401(s.classify(self.jpeg, auth=False), invalid=False)
        self.assert401(s.classify(self.jpeg, headers={"Authorization": "Bearer wrong"}), invalid=True)
        self.assert401(s.classify(self.jpeg, headers={"Authorization": "Bearer " + TOKEN[:-1]}),
                       invalid=True)
        self.assert401(s.classify(self.jpeg, headers={"Authorization": "Bearer " + TOKEN + "x"}),
                       invalid=True)
        self.assert401(s.classify(self.jpeg, headers={"Authorization": "Basic " + TOKEN}),
                       invalid=False)
        r = s.classify(self.jpeg, headers={"Authorization": "bearer   " + TOKEN})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(s.classify(self.jpeg).status, 200)

    def test_token_checked_before_the_body_is_read(self):
        # 19 MiB announced, nothing sent: the 401 comes from the headers alone.
        conn = self.server.connection(timeout=10)
        conn.putrequest("POST", "/classify")
        conn.putheader("Content-Type", "image/jpeg")
        conn.putheader("Content-Length", str(19 << 20))
        conn.endheaders()
        t0 = time.time()
        r = conn.getresponse()
        self.assertEqual(r.status, 401)
        self.assertLess(time.time() - t0, 5)
        conn.close()

    def test_health_and_metrics_are_open_by_default(self):
        for path in ("/healthz", "/readyz", "/metrics"):
            self.assertEqual(self.server.request("GET", path, auth=False).status, 200, path)

    def test_401_counted_in_metrics(self):
        self.server.classify(self.jpeg, auth=False)
        # Requests are counted when their connection completes, just after the answer.
        m = su.wait_for(lambda: (lambda m: m if su.metric(m, "vggserve_requests_total", 0.0,
                                                          endpoint="classify", code="401") >= 1
                                 else None)(self.server.metrics()), 5)
        self.assertIsNotNone(m, "the 401 was not counted in vggserve_requests_total")
        self.assertGreaterEqual(su.metric(m, "vggserve_rejected_total", reason="unauthorized"), 1)


class AuthFileTest(su.LightServerCase):
    binary, name = BIN, "authfile"

    @classmethod
    def server_args(cls, workdir):
        cls.token_file = os.path.join(workdir, "token")
        with open(cls.token_file, "w") as f:
            f.write(TOKEN + "\n")
        return {"token": TOKEN, "flags": ["--auth-token-file", cls.token_file,
                                          "--auth-metrics", "true", "--auth-health", "true"]}

    def test_metrics_and_health_need_the_token_when_asked(self):
        for path in ("/healthz", "/readyz", "/metrics"):
            self.assertEqual(self.server.request("GET", path, auth=False).status, 401, path)
            self.assertEqual(self.server.request("GET", path).status, 200, path)
        self.assertEqual(self.server.classify(su.image("chelsea.jpg")).status, 200)

    def test_healthcheck_command_sends_the_token_from_the_environment(self):
        def check(env):
            return subprocess.run([BIN, "healthcheck", "--port", str(self.server.port)],
                                  capture_output=True, text=True, env=su.clean_env(**env),
                                  timeout=30).returncode
        self.assertEqual(check({}), 1)
        self.assertEqual(check({"VGGSERVE_AUTH_TOKEN": TOKEN}), 0)

    def test_bad_token_settings_stop_start_up(self):
        missing = os.path.join(self.tmp.name, "no-such-token")
        p = run_serve("--auth-token-file", missing)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("auth_token_file", p.stderr)
        self.assertIn(missing, p.stderr)
        p = run_serve("--auth-token-file", self.token_file, env={"VGGSERVE_AUTH_TOKEN": TOKEN})
        self.assertEqual(p.returncode, 2)
        self.assertIn("auth_token and auth_token_file are both set", p.stderr)
        p = run_serve("--auth-token", "has space")
        self.assertEqual(p.returncode, 2)
        self.assertIn("auth_token must be", p.stderr)
        two_lines = os.path.join(self.tmp.name, "two-lines")
        with open(two_lines, "w") as f:
            f.write("abc\ndef\n")
        p = run_serve("--auth-token-file", two_lines)
        self.assertEqual(p.returncode, 2)
        self.assertIn(two_lines, p.stderr)

    def test_print_config_redacts_the_token(self):
        p = subprocess.run([BIN, "serve", "--print-config"], capture_output=True, text=True,
                           env=su.clean_env(VGGSERVE_AUTH_TOKEN=TOKEN), timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["auth_token"], "***")
        self.assertNotIn(TOKEN, p.stdout)


@unittest.skipUnless(shutil.which("openssl") and shutil.which("curl"), "needs openssl and curl")
class TlsTest(su.LightServerCase):
    binary, name = BIN, "tls"

    @classmethod
    def server_args(cls, d):
        cls.cert, cls.key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        cls.other_key = os.path.join(d, "other-key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        cls.key, "-out", cls.cert, "-days", "2", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                        "-out", cls.other_key], check=True, capture_output=True)
        return {"cafile": cls.cert, "token": TOKEN, "env": {"VGGSERVE_AUTH_TOKEN": TOKEN},
                "flags": ["--tls-cert-file", cls.cert, "--tls-key-file", cls.key]}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.url = f"https://127.0.0.1:{cls.server.port}"

    def curl(self, *args):
        return subprocess.run(["curl", "-sS", "--max-time", "60", *args], capture_output=True,
                              timeout=90)

    def test_https_with_curl(self):
        self.assertIn("https://", self.server.stderr())
        p = self.curl("--cacert", self.cert, self.url + "/readyz")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout), {"status": "ready"})
        img = os.path.join(su.IMAGES, "chelsea.jpg")
        p = self.curl("--cacert", self.cert, "-H", "Authorization: Bearer " + TOKEN,
                      "-H", "Content-Type: image/jpeg", "--data-binary", "@" + img,
                      "-w", "\n%{http_code}", self.url + "/classify?top_k=2")
        body, code = p.stdout.rsplit(b"\n", 1)
        self.assertEqual(code, b"200", p.stdout)
        self.assertEqual(len(json.loads(body)["predictions"][0]["top_k"]), 2)
        p = self.curl("--cacert", self.cert, "-w", "\n%{http_code}", "-H", "Content-Type: image/jpeg",
                      "--data-binary", "@" + img, self.url + "/classify")
        self.assertTrue(p.stdout.endswith(b"401"), p.stdout)

    def test_untrusted_certificate_is_refused_by_the_client(self):
        p = self.curl(self.url + "/healthz")  # no --cacert: self-signed, not trusted
        self.assertEqual(p.returncode, 60, p.stderr)  # CURLE_PEER_FAILED_VERIFICATION

    def test_plain_http_on_the_tls_port_gets_no_answer_and_harms_nothing(self):
        p = self.curl("http://127.0.0.1:%d/healthz" % self.server.port)
        self.assertNotEqual(p.returncode, 0)
        self.assertNotIn(b"HTTP/1.1 200", p.stdout)
        self.assertEqual(self.server.request("GET", "/healthz").status, 200)

    def test_tls_start_up_errors_name_the_file(self):
        missing = os.path.join(self.tmp.name, "missing.pem")
        p = run_serve("--tls-cert-file", self.cert, "--tls-key-file", missing)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("tls_key_file", p.stderr)
        self.assertIn(missing, p.stderr)
        p = run_serve("--tls-cert-file", self.cert, "--tls-key-file", self.other_key)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("cannot start HTTPS", p.stderr)
        p = run_serve("--tls-cert-file", self.cert)
        self.assertEqual(p.returncode, 2)
        self.assertIn("tls_cert_file and tls_key_file go together", p.stderr)
        not_pem = os.path.join(self.tmp.name, "not.pem")
        with open(not_pem, "w") as f:
            f.write("hello\n")
        p = run_serve("--tls-cert-file", not_pem, "--tls-key-file", self.key)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("not a PEM file", p.stderr)


class LimitsTest(su.LightServerCase):
    binary, name = BIN, "limits"

    @classmethod
    def server_args(cls, workdir):
        # One HTTP thread, so max_connections is not split among threads.
        return {"flags": ["--http-threads", "1", "--max-header-bytes", "8192",
                          "--max-connections", "4", "--max-connections-per-ip", "3",
                          "--connection-timeout-s", "5"]}

    def test_headers_over_max_header_bytes_get_431(self):
        r = self.server.request("GET", "/healthz", headers={"X-Padding": "a" * 12000})
        self.assertEqual(r.status, 431)
        r = self.server.request("GET", "/healthz", headers={"X-Padding": "a" * 3000})
        self.assertEqual(r.status, 200)

    def test_connections_over_the_per_ip_limit_are_closed(self):
        # Earlier requests' connections stay open (keep-alive) until the server has read the
        # client's close; on a loaded machine one may still count when this starts, and then
        # the total (4) is reached before the per-address limit (3). So: up to three tries.
        for attempt in range(3):
            held = [su.raw_connect(self.server.port) for _ in range(3)]
            try:
                time.sleep(0.3)
                extra = su.raw_connect(self.server.port)
                closed = su.closed_by_peer(extra, 3)
                extra.close()
            finally:
                for s in held:
                    s.close()
            if closed:
                break
            time.sleep(1)
        self.assertTrue(closed, "a 4th connection from one IP stayed open")
        self.assertTrue(su.wait_for(self.server.healthy, 5))

    def test_total_connection_limit(self):
        # max_connections_per_ip (3) would stop us first on one address; 127.0.0.2 and
        # 127.0.0.3 are loopback too, so two addresses reach the total of 4.
        held = []
        try:
            for src in ("127.0.0.1", "127.0.0.1", "127.0.0.2", "127.0.0.2"):
                held.append(socket.create_connection(("127.0.0.1", self.server.port), timeout=5,
                                                     source_address=(src, 0)))
            time.sleep(0.3)
            extra = socket.create_connection(("127.0.0.1", self.server.port), timeout=5,
                                             source_address=("127.0.0.3", 0))
            extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            extra.settimeout(1.5)
            with self.assertRaises(socket.timeout, msg="a 5th connection was served"):
                extra.recv(100)
            held.pop().close()  # a slot frees: the waiting connection is accepted and served
            extra.settimeout(5)
            self.assertTrue(extra.recv(100).startswith(b"HTTP/1.1 200"))
            extra.close()
        finally:
            for s in held:
                s.close()
        self.assertTrue(su.wait_for(self.server.healthy, 5))


if __name__ == "__main__":
    su.main()
