#!/usr/bin/env bash
# run.sh - build the Docker image and prove it serves: the CI check of Dockerfile.
#
#   tests/docker/run.sh [--build-only] [--then CMD [ARGS...]]
#                              as root, on Debian 12, from anywhere in the repository
#
# No registry is reachable from CI, so the Dockerfile's base images (debian:bookworm and
# debian:bookworm-slim) are made here: mmdebstrap --variant=minbase from this machine's own
# Debian apt sources, `docker import`ed under those tags. The Dockerfile itself is ordinary;
# only this script knows. Then:
#   1. docker build (never --pull)
#   2. run without weights on a loopback port: /readyz 200, HEALTHCHECK healthy, classify the
#      shipped cat photo with curl and check the JSON, `docker stop` drains and exits 0
#   3. weights made by the image's own `gen-weights` mounted at /models: served from the file
#      and the same weights as a model repository at /models (NAME/VERSION/model.safetensors),
#      explicit mode: a new version shipped (copied, renamed, loaded) and rolled back
#   4. README's first command (scripts/run.sh) alone in a bare debian:bookworm container
#   5. README's second command (tests/run.sh) alone in another bare debian:bookworm container
# Cleans up what it made: containers, images, and the daemon with its data if it started one.
#
# --then CMD [ARGS...] runs CMD once the image is built and checked, on the same daemon and
# before the cleanup, with DOCKER, DOCKER_HOST, VGGSERVE_IMAGE (the image's tag) and
# DEBIAN_BASE_IMAGE (debian:bookworm-slim, present) exported; its exit status is the script's.
# tests/docker/swarm.py runs this way, reusing the daemon, the base images and the image.
# --build-only skips the checks of steps 2 and 3 (a --then command still runs).
#
# Environment: DOCKER (client, default /usr/bin/docker when present), DOCKER_CHECK_KEEP_IMAGES=1
# keeps the images (useful only with a daemon that was already running),
# DOCKER_CHECK_NEWCOMER_CTEST_ARGS: arguments for step 5's tests/run.sh (ctest's; default none:
# the whole suite). .ci/run passes an -E of the slow black-box suites it has just run on this
# machine, so that the container proves the install, the build and the rest of the suite
# within CI's 25 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."

build_only=""
then_cmd=()
while (($#)); do
    case "$1" in
    --build-only) build_only=1; shift ;;
    --then) shift; (($#)) || { echo "run.sh: --then needs a command" >&2; exit 2; }
            then_cmd=("$@"); break ;;
    *) echo "usage: tests/docker/run.sh [--build-only] [--then CMD [ARGS...]]" >&2; exit 2 ;;
    esac
done

t0=$SECONDS
say() { printf 'docker-check [%3ds]: %s\n' "$((SECONDS - t0))" "$*"; }
die() { say "FAILED: $*"; exit 1; }

tag="vggserve:ci-$$"
containers=()
made_images=()
dockerd_pid=""
had_docker0=""
work=""

cleanup() {
    local rc=$?
    set +e
    for c in "${containers[@]}"; do "$DOCKER" rm -f "$c" >/dev/null 2>&1; done
    # A daemon of our own goes with its data directory; only a shared one needs tidying.
    if [[ -z "${DOCKER_CHECK_KEEP_IMAGES:-}" && -z "$dockerd_pid" ]]; then
        # The build stage is tagged too, so removing the tags removes its layers, and nothing
        # else of a shared daemon's is touched.
        for i in "${made_images[@]}"; do "$DOCKER" rmi -f "$i" >/dev/null 2>&1; done
    fi
    if [[ -n "$dockerd_pid" ]]; then
        say "stopping the dockerd this check started (pid $dockerd_pid)"
        kill "$dockerd_pid" 2>/dev/null
        for _ in $(seq 1 60); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.5; done
        kill -0 "$dockerd_pid" 2>/dev/null && kill -9 "$dockerd_pid"
    fi
    if [[ -n "$dockerd_pid" && -z "$had_docker0" ]] && ip link show docker0 >/dev/null 2>&1; then
        ip link delete docker0   # the bridge the daemon made (its iptables rules stay, inert)
    fi
    if [[ -n "$work" ]]; then
        # The stopped daemon leaves its network namespace file bind-mounted in exec-root.
        grep " $work/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l
        if ! grep -q " $work/" /proc/mounts; then rm -rf "$work"; else say "left $work (mounted)"; fi
    fi
    ((rc == 0)) || say "FAILED (exit $rc)"
    exit "$rc"
}
trap cleanup EXIT

# ---------------------------------------------------------------- tools
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v curl >/dev/null || need+=(curl)
[[ -x /usr/bin/python3 ]] || need+=(python3)
if ((${#need[@]})); then
    [[ $(id -u) -eq 0 ]] || die "needs root to install ${need[*]}"
    say "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian's client matches Debian's daemon; another `docker` earlier in PATH may not.
DOCKER=${DOCKER:-$( [[ -x /usr/bin/docker ]] && echo /usr/bin/docker || command -v docker )}
export DOCKER_BUILDKIT=0   # the classic builder uses local base images and never pulls

# ---------------------------------------------------------------- daemon
work=$(mktemp -d /var/tmp/vggserve-docker.XXXXXX)
if "$DOCKER" info >/dev/null 2>&1; then
    say "using the running Docker daemon ($("$DOCKER" version -f '{{.Server.Version}}'))"
else
    [[ $(id -u) -eq 0 ]] || die "no Docker daemon runs, and starting one needs root"
    say "no Docker daemon runs: starting dockerd (data in $work)"
    ip link show docker0 >/dev/null 2>&1 && had_docker0=1
    export DOCKER_HOST="unix://$work/docker.sock"
    dockerd --host "$DOCKER_HOST" --data-root "$work/data" --exec-root "$work/exec" \
        --pidfile "$work/dockerd.pid" >"$work/dockerd.log" 2>&1 &
    dockerd_pid=$!
    for _ in $(seq 1 60); do
        "$DOCKER" info >/dev/null 2>&1 && break
        kill -0 "$dockerd_pid" 2>/dev/null || { tail -20 "$work/dockerd.log"; die "dockerd exited"; }
        sleep 1
    done
    "$DOCKER" info >/dev/null 2>&1 || { tail -20 "$work/dockerd.log"; die "dockerd did not answer in 60 s"; }
    say "dockerd $("$DOCKER" version -f '{{.Server.Version}}') is up"
fi

# ---------------------------------------------------------------- base images
# The Debian entries of this machine's apt sources (deb822 or one-line), nothing else.
debian_sources() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] || continue
        grep -Eq '^[^#]*(^|[[:space:]])bookworm(-updates|-security)?([[:space:]]|$)' "$f" && echo "$f"
    done
}
base_tags=(debian:bookworm debian:bookworm-slim)
missing=()
for b in "${base_tags[@]}"; do
    if "$DOCKER" image inspect "$b" >/dev/null 2>&1; then say "base $b: already present, used as is"
    else missing+=("$b"); fi
done
if ((${#missing[@]})); then
    mapfile -t sources < <(debian_sources)
    ((${#sources[@]})) || die "no bookworm entries in /etc/apt/sources.list{,.d}"
    say "mmdebstrap --variant=minbase bookworm from ${sources[*]} (for ${missing[*]})"
    # merged-usr hook: /usr merged as in Docker's official images, without the usrmerge package
    # (and the perl it pulls in). Then the same documentation excludes as the official slim.
    mmdebstrap --variant=minbase --quiet --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        bookworm "$work/bookworm.tar" "${sources[@]}" >"$work/mmdebstrap.log" 2>&1 \
        || { tail -30 "$work/mmdebstrap.log"; die "mmdebstrap"; }
    "$DOCKER" import --change 'CMD ["bash"]' "$work/bookworm.tar" "${missing[0]}" >/dev/null
    made_images+=("${missing[0]}")
    for b in "${missing[@]:1}"; do "$DOCKER" tag "${missing[0]}" "$b"; made_images+=("$b"); done
    rm -f "$work/bookworm.tar"
    say "imported ${missing[*]} ($(("$("$DOCKER" image inspect -f '{{.Size}}' "${missing[0]}")" / 1000000)) MB)"
fi

# ---------------------------------------------------------------- build
say "docker build -t $tag . (build stage compiles vggserve; log in $work/build.log)"
t_build=$SECONDS
made_images+=("$tag-build" "$tag")
if ! { "$DOCKER" build --network host --target build -t "$tag-build" . &&
       "$DOCKER" build --network host -t "$tag" .; } >"$work/build.log" 2>&1; then
    tail -40 "$work/build.log"
    die "docker build"
fi
size=$("$DOCKER" image inspect -f '{{.Size}}' "$tag")
say "image built in $((SECONDS - t_build)) s: $tag, $((size / 1000000)) MB ($((size / 1048576)) MiB), no weights"
"$DOCKER" history --format '{{.Size}}\t{{.CreatedBy}}' "$tag" | awk -F'\t' '$1 ~ /MB|GB/ {
    printf "    layer %8s  %s\n", $1, substr($2, 1, 90) }'
[[ "$("$DOCKER" image inspect -f '{{.Config.User}}' "$tag")" == 10001:10001 ]] || die "image user is not 10001"

# --then: hand the daemon and the image to CMD; run its exit status through cleanup.
run_then() {
    ((${#then_cmd[@]})) || return 0
    say "running ${then_cmd[*]} (VGGSERVE_IMAGE=$tag)"
    local rc=0
    # DOCKER_HOST is exported already when this script started the daemon.
    DOCKER="$DOCKER" VGGSERVE_IMAGE="$tag" DEBIAN_BASE_IMAGE=debian:bookworm-slim \
        "${then_cmd[@]}" || rc=$?
    ((rc == 0)) || die "${then_cmd[*]} exited $rc"
}
if [[ -n "$build_only" ]]; then
    run_then
    say "PASSED in $((SECONDS - t0)) s: image $tag $((size / 1048576)) MiB built (checks skipped: --build-only)"
    exit 0
fi

# ---------------------------------------------------------------- run
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start NAME [docker run options...]: runs the image as Kubernetes would (read-only root, no
# capabilities), publishes 8080 on a loopback port, sets $port.
start() {
    local name=$1; shift
    port=$(free_port)
    containers+=("$name")
    "$DOCKER" run -d --name "$name" -p "127.0.0.1:$port:8080" --read-only --cap-drop ALL \
        --security-opt no-new-privileges "$@" "$tag" >/dev/null
    say "$name: started on 127.0.0.1:$port"
}

wait_ready() {
    local name=$1 t=$SECONDS state logs
    while :; do
        state=$("$DOCKER" inspect -f '{{.State.Status}}' "$name")
        [[ "$state" == running ]] || { "$DOCKER" logs "$name" 2>&1 | tail -20; die "$name: container $state"; }
        curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null && break
        ((SECONDS - t < 180)) || { "$DOCKER" logs "$name" 2>&1 | tail -20; die "$name: not ready in 180 s"; }
        sleep 1
    done
    say "$name: /readyz 200 after $((SECONDS - t)) s"
    logs=$("$DOCKER" logs "$name" 2>&1)
    grep '"ready in' <<<"$logs" | sed 's/^/    /' || true
}

# classify_check NAME WEIGHTS: the JSON answer for the cat photo, and the model info metric.
classify_check() {
    local name=$1 weights=$2 body metrics
    body=$(curl -fsS -X POST --data-binary @tests/data/images/chelsea.jpg \
        -H 'Content-Type: image/jpeg' "http://127.0.0.1:$port/classify?top_k=3") \
        || die "$name: POST /classify"
    say "$name: POST /classify chelsea.jpg -> $body"
    /usr/bin/python3 - "$body" <<'EOF' || die "$name: unexpected /classify answer"
import json, sys
r = json.loads(sys.argv[1])
assert r["model"] == "vgg16", r
assert len(r["predictions"]) == 1 and r["batch_size"] >= 1, r
top = r["predictions"][0]["top_k"]
assert len(top) == 3, top
p = [t["probability"] for t in top]
assert p == sorted(p, reverse=True) and 0 < p[0] <= 1, p
for t in top:
    assert 0 <= t["class_id"] < 1000 and t["label"] and t["wnid"].startswith("n"), t
EOF
    metrics=$(curl -fsS "http://127.0.0.1:$port/metrics")
    grep -q "^vggserve_model_info{.*weights=\"$weights\"" <<<"$metrics" \
        || die "$name: /metrics does not say weights=\"$weights\""
    rss=$(awk '/^process_resident_memory_bytes/ {printf "%.0f", $2 / 1048576}' <<<"$metrics")
    peak=$("$DOCKER" exec "$name" cat /proc/1/status | awk '/^VmHWM/ {printf "%.0f", $2 / 1024}')
    say "$name: answer checked; weights=\"$weights\"; RSS $rss MiB (peak $peak MiB, warm-up)"
}

# 1. No weights mounted: generated, healthy, graceful stop.
start vggserve-ci-gen-$$
wait_ready vggserve-ci-gen-$$
classify_check vggserve-ci-gen-$$ generated
t=$SECONDS
until [[ "$("$DOCKER" inspect -f '{{.State.Health.Status}}' vggserve-ci-gen-$$)" == healthy ]]; do
    ((SECONDS - t < 60)) || die "HEALTHCHECK (vggserve healthcheck) not healthy in 60 s"
    sleep 1
done
say "vggserve-ci-gen-$$: HEALTHCHECK healthy (vggserve healthcheck, no curl in the image)"
"$DOCKER" stop -t 40 vggserve-ci-gen-$$ >/dev/null
code=$("$DOCKER" inspect -f '{{.State.ExitCode}}' vggserve-ci-gen-$$)
logs=$("$DOCKER" logs vggserve-ci-gen-$$ 2>&1)
grep -q 'SIGTERM: draining' <<<"$logs" || { tail -5 <<<"$logs"; die "no drain on SIGTERM"; }
[[ "$code" == 0 ]] || die "exit code $code after docker stop"
say "vggserve-ci-gen-$$: docker stop -> drained, exit 0"

# 2. Weights mounted at /models (made by the image itself, seed 2).
mkdir -p "$work/models"
chown 10001:10001 "$work/models"
"$DOCKER" run --rm -v "$work/models:/models" "$tag" \
    gen-weights --seed 2 --out /models/vgg16.safetensors 2>&1 | sed 's/^/    /'
start vggserve-ci-file-$$ -v "$work/models:/models:ro"
wait_ready vggserve-ci-file-$$
classify_check vggserve-ci-file-$$ file
"$DOCKER" stop -t 40 vggserve-ci-file-$$ >/dev/null

# 2b. The same weights as a model repository at /models (the entrypoint sees NAME/VERSION/ and
# sets VGGSERVE_MODEL_REPOSITORY), explicit mode; then docker/README.md "Ship a new version":
# version 2 (made by the image, seed 3) copied under a temporary name, renamed, loaded; then
# rolled back by taking its folder away and loading again.
repo_index() { # repo_index NAME WANT: vgg16 is READY at version WANT only (a version swapped
               # out may still be UNLOADING)
    local body
    body=$(curl -fsS -X POST "http://127.0.0.1:$port/v2/repository/index") || die "$1: index"
    say "$1: POST /v2/repository/index -> $body"
    /usr/bin/python3 - "$body" "$2" <<'EOF2' || die "$1: index is not vgg16 version $2 READY"
import json, sys
rows = [r for r in json.loads(sys.argv[1]) if r["name"] == "vgg16"]
ready = [r for r in rows if r["state"] == "READY"]
assert ready and all(r["version"] == sys.argv[2] for r in ready), rows
assert all(r["state"] in ("READY", "UNLOADING") for r in rows), rows
EOF2
}
mkdir -p "$work/repo/vgg16/1"
cp "$work/models/vgg16.safetensors" "$work/repo/vgg16/1/model.safetensors"
start vggserve-ci-repo-$$ -v "$work/repo:/models:ro" -e VGGSERVE_MODEL_CONTROL_MODE=explicit \
    -e VGGSERVE_LOAD_MODEL=vgg16
wait_ready vggserve-ci-repo-$$
# The log read whole first: grep -q stops at the match, and under pipefail the writer's SIGPIPE
# would fail the pipeline.
repo_logs=$("$DOCKER" logs vggserve-ci-repo-$$ 2>&1)
grep -q 'entrypoint: serving the model repository /models' <<<"$repo_logs" \
    || die "vggserve-ci-repo-$$: the entrypoint did not choose the repository; its log: $(head -c 2000 <<<"$repo_logs")"
classify_check vggserve-ci-repo-$$ repository
repo_index vggserve-ci-repo-$$ 1
mkdir "$work/repo/vgg16/.2.tmp"
chown 10001:10001 "$work/repo/vgg16/.2.tmp"
"$DOCKER" run --rm -v "$work/repo/vgg16/.2.tmp:/out" "$tag" \
    gen-weights --seed 3 --out /out/model.safetensors 2>&1 | sed 's/^/    /'
mv "$work/repo/vgg16/.2.tmp" "$work/repo/vgg16/2"
curl -fsS -o /dev/null -X POST -d '{}' "http://127.0.0.1:$port/v2/repository/models/vgg16/load" \
    || die "vggserve-ci-repo-$$: load of version 2"
repo_index vggserve-ci-repo-$$ 2
mv "$work/repo/vgg16/2" "$work/repo/vgg16/.2.old"
curl -fsS -o /dev/null -X POST "http://127.0.0.1:$port/v2/repository/models/vgg16/load" \
    || die "vggserve-ci-repo-$$: load after the rollback"
repo_index vggserve-ci-repo-$$ 1
classify_check vggserve-ci-repo-$$ repository
say "vggserve-ci-repo-$$: repository at /models, version 2 shipped and rolled back"
"$DOCKER" stop -t 40 vggserve-ci-repo-$$ >/dev/null

# 3. A newcomer: README's first command alone in a bare debian:bookworm (the base imported
# above, nothing installed), the clone mounted, so that command can never again depend on what
# this machine happens to have. It installs its packages, builds outside the clone, and serves.
newcomer=vggserve-ci-newcomer-$$
port=$(free_port)
containers+=("$newcomer")
t_new=$SECONDS
"$DOCKER" run -d --name "$newcomer" --network host -v "$PWD:/src:ro" -e BUILD_DIR=/tmp/build \
    debian:bookworm bash -c "cd /src && exec scripts/run.sh --host 127.0.0.1 --port $port" >/dev/null
say "$newcomer: scripts/run.sh in a bare debian:bookworm (installs, builds, serves on $port)"
while ! curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null; do
    state=$("$DOCKER" inspect -f '{{.State.Status}}' "$newcomer")
    [[ "$state" == running ]] || { "$DOCKER" logs "$newcomer" 2>&1 | tail -30; die "$newcomer: $state"; }
    ((SECONDS - t_new < 900)) || { "$DOCKER" logs "$newcomer" 2>&1 | tail -30; die "$newcomer: not ready in 900 s"; }
    sleep 2
done
say "$newcomer: /readyz 200 after $((SECONDS - t_new)) s"
classify_check "$newcomer" generated
"$DOCKER" stop -t 40 "$newcomer" >/dev/null

# 4. The newcomer's second command: the whole suite from a bare debian:bookworm, where Debian's
# own packages are all there is (Node.js 18, not this machine's 20: what pinned
# playwright-core below 1.62). The suite writes into the tree (build/, node_modules/), so the
# container gets a copy of the checkout's files, as git lists them, not a mount. The host's CA
# bundle is offered to Node.js for the npm registry: where TLS to it is re-signed by an egress
# proxy (as on CI's machines), npm would otherwise refuse it; elsewhere it is the same bundle.
tester=vggserve-ci-newcomer-tests-$$
containers+=("$tester")
ca_args=()
[[ -r /etc/ssl/certs/ca-certificates.crt ]] &&
    ca_args=(-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/host-ca.crt:ro
             -e NODE_EXTRA_CA_CERTS=/etc/ssl/host-ca.crt)
say "$tester: tests/run.sh in a bare debian:bookworm (installs, builds, runs ctest; log in $work/newcomer-tests.log)"
t_new=$SECONDS
if ! git ls-files -z -c -o --exclude-standard | tar --null --ignore-failed-read -cf - -T - 2>/dev/null |
        "$DOCKER" run -i --name "$tester" --network host "${ca_args[@]}" \
            -e NEWCOMER_CTEST_ARGS="${DOCKER_CHECK_NEWCOMER_CTEST_ARGS:-}" debian:bookworm \
            bash -c 'mkdir /src && cd /src && tar -xf - && tests/run.sh $NEWCOMER_CTEST_ARGS' \
            >"$work/newcomer-tests.log" 2>&1; then
    grep -E 'tests passed|\(Failed\)|Error' "$work/newcomer-tests.log" | tail -20
    tail -20 "$work/newcomer-tests.log"
    die "$tester: tests/run.sh failed in a bare bookworm"
fi
say "$tester: $(grep -E 'tests passed' "$work/newcomer-tests.log") in $((SECONDS - t_new)) s"

run_then
say "PASSED in $((SECONDS - t0)) s: image $tag $((size / 1048576)) MiB built, ran ready, classified; scripts/run.sh and tests/run.sh work in a bare bookworm"
