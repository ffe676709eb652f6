#!/usr/bin/env python3
"""swarm.py - docker/stack.yaml on a real single-node Swarm, under load: nothing dropped.

    tests/docker/swarm.py            builds what it needs through tests/docker/run.sh --build-only
    VGGSERVE_IMAGE=TAG tests/docker/swarm.py      on a running daemon holding that image and
                                                  debian:bookworm-slim (run.sh --then does this)

Steps: `docker swarm init --advertise-addr 127.0.0.1` unless the daemon is a swarm member
already (left as found); the proxy and Prometheus images built from Debian packages on the
same bookworm-slim base (tests/docker/swarm/*.Dockerfile); `docker stack deploy` of the shipped
stack file with a small model (VGG11, batches up to 2, 1 thread: light on a 2-core machine);
wait for every replica to be ready behind the proxy and in Prometheus. Then, with a few
clients sending the cat photo through the proxy's published port (loopback only, bounded in
count and time), three phases:
  1. update: `docker service update --force` rolls both replicas; every answer must be 200,
     or 503 with Retry-After; nothing failed (reset, refused, other status).
  2. kill: SIGKILL one replica's container; Swarm must replace it, the other keeps answering,
     Prometheus's count of replicas up must drop and come back. Only requests in flight when
     the container died may fail; they are counted and listed.
  3. scale: to 3 and back to 2; nothing failed.
Prints 200 / 503 / failed per phase. Removes the stack, its volumes and images, and the
swarm if it made it, whatever happens. Python 3 standard library only.
"""
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.join(ROOT, "tests", "docker")
T0 = time.monotonic()

if not os.environ.get("VGGSERVE_IMAGE"):
    # No image given: let run.sh make the base images and the image, then come back.
    os.execv(os.path.join(HERE, "run.sh"),
             [os.path.join(HERE, "run.sh"), "--build-only", "--then", os.path.abspath(__file__)])

DOCKER = os.environ.get("DOCKER") or ("/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker")
IMAGE = os.environ["VGGSERVE_IMAGE"]
BASE = os.environ.get("DEBIAN_BASE_IMAGE", "debian:bookworm-slim")
PID = os.getpid()
STACK = f"vggci{PID}"
SVC = f"{STACK}_vggserve"
CLIENTS = 3
PHOTO = open(os.path.join(ROOT, "tests", "data", "images", "chelsea.jpg"), "rb").read()


def say(msg):
    print(f"swarm-check [{time.monotonic() - T0:4.0f}s]: {msg}", flush=True)


def die(msg):
    raise SystemExit(f"swarm-check [{time.monotonic() - T0:4.0f}s]: FAILED: {msg}")


def docker(*args, check=True, quiet=False, env=None):
    r = subprocess.run([DOCKER, *args], capture_output=True, text=True, env=env)
    if check and r.returncode != 0:
        die(f"docker {' '.join(args)}: {r.stderr.strip()[-800:]}")
    return r.stdout.strip()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait(what, cond, timeout, step=0.5):
    t = time.monotonic()
    while True:
        v = cond()
        if v:
            return time.monotonic() - t
        if time.monotonic() - t > timeout:
            die(f"{what}: not within {timeout} s")
        time.sleep(step)


# ---------------------------------------------------------------- load
class Load:
    """CLIENTS threads POSTing the photo through the proxy; every request recorded."""

    def __init__(self, port):
        self.port = port
        self.phase = "warm"
        self.records = []  # (phase, t_start, t_end, status, retry_after, served_by, error)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.limit = 4000  # requests at most, all phases together
        self.threads = [threading.Thread(target=self.client, daemon=True) for _ in range(CLIENTS)]

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(90)

    def client(self):
        conn = None
        while not self.stop.is_set() and len(self.records) < self.limit:
            phase, t0 = self.phase, time.monotonic()
            status, ra, by, err = 0, None, None, None
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                conn.request("POST", "/classify?top_k=1", PHOTO, {"Content-Type": "image/jpeg"})
                r = conn.getresponse()
                body = r.read()
                status, ra, by = r.status, r.getheader("Retry-After"), r.getheader("X-Served-By")
                if status == 200 and b'"predictions"' not in body:
                    err = "200 without predictions"
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                err = f"{type(e).__name__}: {e}"
                if conn is not None:
                    conn.close()
                conn = None
            with self.lock:
                self.records.append((phase, t0, time.monotonic(), status, ra, by, err))
            if err:
                time.sleep(0.2)
            else:
                time.sleep(0.05)

    def counts(self, phase):
        ok = busy = failed = 0
        bad = []
        for rec in self.records:
            if rec[0] != phase:
                continue
            _, _, _, status, ra, _, err = rec
            if status == 200 and not err:
                ok += 1
            elif status == 503 and ra and not err:
                busy += 1
            else:
                failed += 1
                bad.append(rec)
        return ok, busy, failed, bad


# ---------------------------------------------------------------- state
def prom(port, query):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            res = json.load(r)["data"]["result"]
        return int(float(res[0]["value"][1])) if res else 0
    except (OSError, ValueError, KeyError, IndexError):
        return None


def replica_containers():
    """IDs of the running containers of the vggserve service's tasks."""
    out = docker("ps", "-q", "--no-trunc", "--filter", f"label=com.docker.swarm.service.name={SVC}")
    return [c for c in out.split() if c]


def healthy_replicas():
    n = 0
    for c in replica_containers():
        if docker("inspect", "-f", "{{.State.Health.Status}}", c, check=False) == "healthy":
            n += 1
    return n


def main():
    made_swarm = False
    had_gwbridge = bool(docker("network", "ls", "-q", "--filter", "name=^docker_gwbridge$", check=False))
    images = []
    volumes_before = set(docker("volume", "ls", "-q").split())
    load = None
    try:
        state = docker("info", "-f", "{{.Swarm.LocalNodeState}}")
        if state == "active":
            if docker("info", "-f", "{{.Swarm.ControlAvailable}}") != "true":
                die("the daemon is in a swarm but not a manager: cannot deploy a stack")
            say("the daemon is a swarm member already: used as is, left as found")
        else:
            docker("swarm", "init", "--advertise-addr", "127.0.0.1")
            made_swarm = True
            say("docker swarm init --advertise-addr 127.0.0.1")

        env = dict(os.environ, DOCKER_BUILDKIT="0")
        for name in ("haproxy", "prometheus"):
            tag = f"vggci-{name}:{PID}"
            t = time.monotonic()
            r = subprocess.run([DOCKER, "build", "--network", "host",
                                "-t", tag, "-f", os.path.join(HERE, "swarm", f"{name}.Dockerfile"),
                                os.path.join(HERE, "swarm")], capture_output=True, text=True, env=env)
            if r.returncode != 0:
                die(f"build {tag}: {(r.stdout + r.stderr)[-1500:]}")
            images.append(tag)
            size = int(docker("image", "inspect", "-f", "{{.Size}}", tag)) // 1048576
            say(f"built {tag} from Debian's {name} package in {time.monotonic() - t:.0f} s ({size} MiB)")

        port, prom_port = free_port(), free_port()
        denv = dict(os.environ, VGGSERVE_IMAGE=IMAGE, PROXY_IMAGE=f"vggci-haproxy:{PID}",
                    PROMETHEUS_IMAGE=f"vggci-prometheus:{PID}", VGGSERVE_MODEL="vgg11",
                    VGGSERVE_MAX_BATCH_SIZE="2", VGGSERVE_THREADS="1", VGGSERVE_CPUS="1",
                    VGGSERVE_HEALTH_INTERVAL="2s", VGGSERVE_PORT=str(port),
                    PROMETHEUS_PORT=str(prom_port), HAPROXY_CONFIG_VERSION=f"ci{PID}",
                    PROMETHEUS_CONFIG_VERSION=f"ci{PID}")
        r = subprocess.run([DOCKER, "stack", "deploy", "-c", os.path.join(ROOT, "docker", "stack.yaml"),
                            STACK], capture_output=True, text=True, env=denv)
        if r.returncode != 0:
            die(f"docker stack deploy: {r.stderr.strip()}")
        say(f"docker stack deploy {STACK}: proxy on 127.0.0.1:{port}, Prometheus on 127.0.0.1:{prom_port}")

        def proxy_ok():
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                c.request("POST", "/classify?top_k=1", PHOTO, {"Content-Type": "image/jpeg"})
                return c.getresponse().status == 200
            except (OSError, http.client.HTTPException):
                return False

        dt = wait("2 replicas healthy", lambda: healthy_replicas() == 2, 300, 1)
        say(f"2 replicas healthy after {dt:.0f} s")
        wait("a 200 through the proxy", proxy_ok, 60, 1)
        up = f'count(up{{job="vggserve"}} == 1)'
        wait("Prometheus sees 2 replicas up", lambda: prom(prom_port, up) == 2, 60, 1)
        say("Prometheus: 2 vggserve targets up (dns_sd_configs on tasks.vggserve)")

        load = Load(port)
        load.start()
        time.sleep(5)
        served = {rec[5] for rec in load.records if rec[5]}
        if len(served) < 2:
            die(f"steady load reached only {served or 'no replica'}")
        say(f"steady load ({CLIENTS} clients): answered by {sorted(served)}")
        results = {}

        # 1. rolling update
        load.phase = "update"
        t = time.monotonic()
        docker("service", "update", "--force", "--detach=false", "-q", SVC)
        wait("2 replicas healthy after the update", lambda: healthy_replicas() == 2, 120, 1)
        time.sleep(3)
        results["update"] = (time.monotonic() - t,) + load.counts("update")
        say(f"update: docker service update --force took {results['update'][0]:.0f} s")

        # 2. SIGKILL one replica
        load.phase = "kill"
        before = replica_containers()
        victim = before[0]
        t = time.monotonic()
        t_kill = time.monotonic()
        docker("kill", "-s", "KILL", victim)
        say(f"kill: SIGKILL {victim[:12]}")
        seen = {"min": 2}

        def recovered():
            n = prom(prom_port, up)
            if n is not None:
                seen["min"] = min(seen["min"], n)
            now = set(replica_containers())
            return seen["min"] < 2 and n == 2 and victim not in now and healthy_replicas() == 2

        dt = wait("replacement healthy and Prometheus back at 2", recovered, 180, 0.5)
        after = replica_containers()
        new = [c for c in after if c not in before]
        if len(new) != 1:
            die(f"expected one new container, got {new}")
        say(f"kill: Swarm replaced it with {new[0][:12]}; Prometheus up count went 2 -> "
            f"{seen['min']} -> 2 ({dt:.0f} s)")
        time.sleep(2)
        results["kill"] = (time.monotonic() - t,) + load.counts("kill")
        survivors_200 = sum(1 for rec in load.records if rec[0] == "kill" and rec[3] == 200)
        if survivors_200 == 0:
            die("kill: no request answered while the replacement started")

        # 3. scale 3, then 2
        load.phase = "scale"
        t = time.monotonic()
        docker("service", "scale", "--detach=false", f"{SVC}=3")
        wait("3 replicas healthy", lambda: healthy_replicas() == 3, 180, 1)
        wait("Prometheus sees 3", lambda: prom(prom_port, up) == 3, 60, 1)
        say("scale: 3 replicas healthy, Prometheus sees 3")
        time.sleep(3)
        docker("service", "scale", "--detach=false", f"{SVC}=2")
        wait("back to 2 replicas", lambda: len(replica_containers()) == 2, 120, 1)
        wait("Prometheus sees 2", lambda: prom(prom_port, up) == 2, 60, 1)
        time.sleep(3)
        results["scale"] = (time.monotonic() - t,) + load.counts("scale")
        load.phase = "done"
        load.finish()

        print(f"{'phase':8} {'seconds':>7} {'200':>6} {'503':>5} {'failed':>6}")
        for phase, (secs, ok, busy, failed, _) in results.items():
            print(f"{phase:8} {secs:7.0f} {ok:6d} {busy:5d} {failed:6d}")
        retries = prom(prom_port, "sum(haproxy_backend_retry_warnings_total)")
        redisp = prom(prom_port, "sum(haproxy_backend_redispatch_warnings_total)")
        say(f"proxy: {retries} retries, {redisp} redispatches (haproxy's counters, in Prometheus)")
        problems = []
        for phase in ("update", "scale"):
            secs, ok, busy, failed, bad = results[phase]
            if failed:
                problems.append(f"{phase}: {failed} failed: {bad[:5]}")
            if ok < 10:
                problems.append(f"{phase}: only {ok} answers 200")
        secs, ok, busy, failed, bad = results["kill"]
        for rec in bad:
            say(f"kill: failed request started {rec[1] - t_kill:+.2f} s after the SIGKILL, "
                f"ended {rec[2] - t_kill:+.2f} s: {rec[3] or ''} {rec[6] or ''}")
        late = [rec for rec in bad if rec[1] > t_kill]
        if late or failed > CLIENTS:
            problems.append(f"kill: {failed} failed, {len(late)} of them sent after the SIGKILL")
        if problems:
            die("; ".join(problems))
        say(f"PASSED: update and scale lost nothing; SIGKILL lost {failed} in-flight request(s)")
    finally:
        if load:
            load.finish()
        cleanup(made_swarm, had_gwbridge, images, volumes_before)


def cleanup(made_swarm, had_gwbridge, images, volumes_before):
    docker("stack", "rm", STACK, check=False)
    t = time.monotonic()
    while time.monotonic() - t < 90:
        left = docker("ps", "-aq", "--filter", f"label=com.docker.stack.namespace={STACK}", check=False)
        if not left:
            break
        time.sleep(1)
    for v in set(docker("volume", "ls", "-q", check=False).split()) - volumes_before:
        if v.startswith(f"{STACK}_"):
            docker("volume", "rm", "-f", v, check=False)
    for i in images:
        docker("rmi", "-f", i, check=False)
    if made_swarm:
        # leave can time out ("context deadline exceeded") while the node is still in it.
        for _ in range(5):
            docker("swarm", "leave", "--force", check=False)
            if docker("info", "-f", "{{.Swarm.LocalNodeState}}", check=False) == "inactive":
                break
            time.sleep(2)
        if not had_gwbridge:
            docker("network", "rm", "docker_gwbridge", check=False)
    say(f"cleaned up: stack {STACK}, its volumes and images" + (", the swarm" if made_swarm else ""))


if __name__ == "__main__":
    main()
