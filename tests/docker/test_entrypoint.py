#!/usr/bin/python3
"""The image's entrypoint (docker/entrypoint.sh) chooses what to serve, checked without Docker.

Usage: test_entrypoint.py   (ctest: entrypoint)

The entrypoint runs under /bin/sh (dash on Debian, as in the image) with a stand-in `vggserve`
first on PATH that prints the arguments and the two variables the entrypoint may set, and with
VGGSERVE_ENTRYPOINT_MODELS pointing at a temporary folder in place of /models. Each case lays
out that folder, runs the entrypoint, and checks what `vggserve serve` would have been given:
a model repository when the folder holds NAME/VERSION/model.safetensors (or the control mode
is explicit), /models/vgg16.safetensors as before when it holds only that, generated weights
when it holds neither, and nothing added when the user chose. shellcheck (when installed)
checks it is POSIX sh. Standard library only."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENTRYPOINT = os.path.join(ROOT, "docker", "entrypoint.sh")
UNSET = "<unset>"

FAKE = """#!/bin/sh
printf '%s\\n' "ARGS=$*" "WEIGHTS=${VGGSERVE_WEIGHTS-<unset>}" \\
    "REPO=${VGGSERVE_MODEL_REPOSITORY-<unset>}"
"""


class Entrypoint(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="vggserve-entrypoint-")
        self.models = os.path.join(self.tmp, "models")
        os.mkdir(self.models)
        bindir = os.path.join(self.tmp, "bin")
        os.mkdir(bindir)
        fake = os.path.join(bindir, "vggserve")
        with open(fake, "w") as f:
            f.write(FAKE)
        os.chmod(fake, 0o755)
        self.path = bindir + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def touch(self, rel, text=""):
        path = os.path.join(self.models, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        return path

    def run_entrypoint(self, *args, env=None):
        """Returns (ARGS, WEIGHTS, REPO, stderr) as the stand-in vggserve saw them."""
        e = {"PATH": self.path, "VGGSERVE_ENTRYPOINT_MODELS": self.models}
        e.update(env or {})
        r = subprocess.run(["/bin/sh", ENTRYPOINT, *args], env=e, capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        seen = dict(line.split("=", 1) for line in r.stdout.splitlines())
        return seen["ARGS"], seen["WEIGHTS"], seen["REPO"], r.stderr

    # ------------------------------------------------------------ today's behaviour
    def test_nothing_mounted_generates(self):
        args, weights, repo, err = self.run_entrypoint()
        self.assertEqual((args, weights, repo), ("serve", UNSET, UNSET))
        self.assertIn("generated weights", err)

    def test_missing_folder_generates(self):
        shutil.rmtree(self.models)
        args, weights, repo, _ = self.run_entrypoint()
        self.assertEqual((weights, repo), (UNSET, UNSET))

    def test_one_weights_file(self):
        f = self.touch("vgg16.safetensors")
        self.assertEqual(self.run_entrypoint()[1:3], (f, UNSET))

    def test_one_weights_file_of_another_model(self):
        self.touch("vgg16.safetensors")
        f = self.touch("vgg11.safetensors")
        self.assertEqual(self.run_entrypoint(env={"VGGSERVE_MODEL": "vgg11"})[1:3], (f, UNSET))

    def test_flags_and_subcommands_pass_through(self):
        self.assertEqual(self.run_entrypoint("--port", "9000")[0], "serve --port 9000")
        self.assertEqual(self.run_entrypoint("serve", "--port", "9000")[0], "serve --port 9000")
        self.touch("flowers/1/model.safetensors")
        args, weights, repo, _ = self.run_entrypoint("summary", "--model", "vgg11")
        self.assertEqual((args, weights, repo), ("summary --model vgg11", UNSET, UNSET))

    # ------------------------------------------------------------ a repository
    def test_model_folders_are_a_repository(self):
        self.touch("flowers/1/model.safetensors")
        args, weights, repo, err = self.run_entrypoint()
        self.assertEqual((args, weights, repo), ("serve", UNSET, self.models))
        self.assertIn("model repository", err)

    def test_repository_wins_over_a_weights_file(self):
        self.touch("vgg16.safetensors")
        self.touch("vgg16/3/model.safetensors")
        self.assertEqual(self.run_entrypoint()[1:3], (UNSET, self.models))

    def test_folders_that_are_no_version_are_not_a_repository(self):
        # vggserve reads only positive integers without a leading zero as versions, and a
        # version copied under a temporary name is not one yet.
        for rel in ["a/0/model.safetensors", "a/01/model.safetensors", "a/v1/model.safetensors",
                    "a/.2.tmp/model.safetensors", "a/1/weights.safetensors", "1/model.safetensors"]:
            self.touch(rel)
        os.makedirs(os.path.join(self.models, "b", "2", "model.safetensors"))  # a folder
        f = self.touch("vgg16.safetensors")
        self.assertEqual(self.run_entrypoint()[1:3], (f, UNSET))

    def test_explicit_mode_serves_an_empty_folder_as_a_repository(self):
        # KServe's multi-model agent downloads models later and loads them through the API.
        for args, env in [((), {"VGGSERVE_MODEL_CONTROL_MODE": "explicit"}),
                          (("--model-control-mode", "explicit"), {}),
                          (("--port", "1", "--model-control-mode=explicit"), {})]:
            with self.subTest(args=args, env=env):
                self.assertEqual(self.run_entrypoint(*args, env=env)[1:3], (UNSET, self.models))
        cfg = os.path.join(self.tmp, "vggserve.json")
        with open(cfg, "w") as f:
            f.write('{"port": 8080, "model_control_mode" : "explicit"}\n')
        self.assertEqual(self.run_entrypoint("--config", cfg)[1:3], (UNSET, self.models))
        # none mode with an empty folder stays what it was: generated weights.
        self.assertEqual(self.run_entrypoint(env={"VGGSERVE_MODEL_CONTROL_MODE": "none"})[1:3],
                         (UNSET, UNSET))

    # ------------------------------------------------------------ the user's choice wins
    def test_user_choice_adds_nothing(self):
        self.touch("vgg16.safetensors")
        self.touch("flowers/1/model.safetensors")
        cfg_weights = os.path.join(self.tmp, "w.json")
        with open(cfg_weights, "w") as f:
            f.write('{"weights": "/data/v.safetensors"}\n')
        cfg_repo = os.path.join(self.tmp, "r.json")
        with open(cfg_repo, "w") as f:
            f.write('{"model_repository": "/data/repo"}\n')
        cases = [
            ((), {"VGGSERVE_WEIGHTS": "/data/w.safetensors"}, ("/data/w.safetensors", UNSET)),
            ((), {"VGGSERVE_MODEL_REPOSITORY": "/data/repo"}, (UNSET, "/data/repo")),
            (("--weights", "/data/w.safetensors"), {}, (UNSET, UNSET)),
            (("--weights=/data/w.safetensors",), {}, (UNSET, UNSET)),
            (("--model-repository", "/data/repo"), {}, (UNSET, UNSET)),
            (("--config", cfg_weights), {}, (UNSET, UNSET)),
            (("--config=" + cfg_repo,), {}, (UNSET, UNSET)),
        ]
        for args, env, want in cases:
            with self.subTest(args=args, env=env):
                self.assertEqual(self.run_entrypoint(*args, env=env)[1:3], want)

    def test_empty_repository_variable_keeps_the_weights_file(self):
        f = self.touch("vgg16.safetensors")
        self.touch("flowers/1/model.safetensors")
        self.assertEqual(self.run_entrypoint(env={"VGGSERVE_MODEL_REPOSITORY": ""})[1:3],
                         (f, ""))

    def test_posix_sh(self):  # shellcheck: scripts/setup.sh --with-test-deps installs it
        r = subprocess.run(["shellcheck", "-s", "sh", ENTRYPOINT], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
