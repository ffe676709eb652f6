#!/usr/bin/env python3
"""The data-driven bad-input suite: every file in tests/data/bad_inputs/ is POSTed to
/classify as its manifest.json entry says (raw body with a Content-Type, or one multipart
part with a file name), and must get the manifest's status; errors must carry the JSON error
shape with the manifest's type. Never a 5xx, no error message that names a server path, and
the service keeps serving: a good image afterwards is classified and /metrics counts no 5xx.
Bytes a client sends that errors quote (query values, paths) come back as valid UTF-8 with
no control characters, in the answer and in the access log.

Usage: /usr/bin/python3 tests/test_bad_inputs.py PATH/TO/vggserve
(The files come from tests/data/bad_inputs/make_bad_inputs.py; commit both.)"""
import json
import os
import unittest

import service_util as su

BIN = su.binary_from_argv()
CASES = os.path.join(su.TESTS, "data", "bad_inputs")


class BadInputs(su.LightServerCase):
    binary, name = BIN, "bad_inputs"

    @classmethod
    def setUpClass(cls):
        with open(os.path.join(CASES, "manifest.json")) as f:
            cls.manifest = json.load(f)
        super().setUpClass()

    def send(self, case):
        with open(os.path.join(CASES, case["file"]), "rb") as f:
            data = f.read()
        if case.get("multipart_filename"):
            body, ctype = su.multipart([(case["multipart_filename"], case["content_type"], data)])
            return self.server.classify(body, ctype)
        return self.server.classify(data, case["content_type"])

    def test_manifest_lists_every_file(self):
        listed = {c["file"] for c in self.manifest}
        present = {f for f in os.listdir(CASES) if f not in ("manifest.json", "make_bad_inputs.py")}
        self.assertEqual(listed, present)

    def test_every_case_gets_its_documented_answer(self):
        for case in self.manifest:
            with self.subTest(case=case["file"]):
                r = self.send(case)
                self.assertLess(r.status, 500, f"{case['file']}: {r}")
                self.assertEqual(r.status, case["status"], f"{case['file']} ({case['why']}): {r}")
                body = r.json()
                if case["status"] == 200:
                    self.assertEqual(len(body["predictions"]), 1)
                    self.assertEqual(len(body["predictions"][0]["top_k"]), 5)
                    continue
                self.assertEqual(r.headers.get("Content-Type"), "application/json")
                err = body["error"]
                self.assertEqual(err["code"], case["status"])
                self.assertEqual(err["type"], case["type"], err)
                self.assertTrue(err["message"])
                # Never a server path or an internal detail in what the client reads.
                for secret in (su.ROOT, self.tmp.name, "/usr/include", ".c:", "stbi"):
                    self.assertNotIn(secret, err["message"])
                # The service keeps serving after each case.
                self.assertEqual(self.server.request("GET", "/healthz", timeout=10).status, 200)

    def test_client_bytes_quoted_in_errors_are_made_valid_utf8(self):
        # Once a crash: jansson refused the message (invalid UTF-8) and the NULL body was
        # dereferenced. Query values and paths arrive percent-decoded, so any byte can appear.
        r = self.server.classify(su.image("chelsea.jpg"), query="?top_k=%ff%fe%0a")
        self.assertEqual(r.status, 400, r)
        self.assertIn("top_k", r.json()["error"]["message"])
        r = self.server.request("GET", "/%c3%28%ff%0a%1b[31m")
        self.assertEqual(r.status, 404, r)
        msg = r.json()["error"]["message"]
        self.assertNotIn("\n", msg)
        self.assertNotIn("\x1b", msg)
        self.assertTrue(self.server.healthy())
        log = self.server.stdout()
        self.assertTrue(all(line.startswith("{") for line in log.splitlines()), "a log line broke")

    def test_service_still_classifies_and_counted_no_5xx(self):
        for case in self.manifest:
            self.send(case)
        r = self.server.classify(su.image("chelsea.jpg"))
        self.assertEqual(r.status, 200, r)
        samples = self.server.metrics()
        fives = [(n, l, v) for n, l, v in samples
                 if n == "vggserve_requests_total" and l.get("endpoint") == "classify"
                 and l.get("code", "").startswith("5") and v > 0]
        self.assertEqual(fives, [])
        self.assertTrue(self.server.alive())


if __name__ == "__main__":
    su.main()
