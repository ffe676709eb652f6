#!/usr/bin/env bash
# tritonclient_repository_check.sh - Triton's own tritonclient.http, unmodified, drives vggserve's
# model repository (issue 26's "What it must show": index with states, load and unload of a
# second model with its memory returned, answers equal to `vggserve classify`, a new version
# swapped in under four clients, a broken version refused, bad names, the KServe agent's load).
# A manual check, not in CI (it needs Triton's client repository, which CI cannot fetch).
#
#   bench/tritonclient_repository_check.sh CLIENT [VGGSERVE]
#   TRITON_CLIENT=... bench/tritonclient_repository_check.sh
#
# CLIENT: github.com/triton-inference-server/client, a checkout or a bare git directory (its
# HEAD is used). VGGSERVE: the binary (default build/vggserve). KEEP=1 keeps the temporary
# directory (the repository, the server's events and access log).
#
# 1. The tritonclient package: the library's tritonclient/ copied as it is (only its HTTP
#    client is imported, so the gRPC stubs are not generated).
# 2. tritonclient_repository_check.py: writes a repository of small models (VGG11 convolutions,
#    a 4- or 5-class head on 32 x 32 inputs), starts `vggserve serve --model-repository DIR
#    --model-control-mode explicit --load-model alpha` on 127.0.0.1 and drives it; see its
#    docstring for the checks. About a minute on 2 cores.
# Exit status: 0 when all passed, 1 on any failure, 2 on a missing prerequisite.
# Needs /usr/bin/python3 with python3-numpy, python3-geventhttpclient, python3-rapidjson.
# Talks only to 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
client_src=${1:-${TRITON_CLIENT:-}}
vggserve=$(realpath "${2:-${VGGSERVE:-build/vggserve}}")
py=/usr/bin/python3

die() { echo "tritonclient_repository_check: $*" >&2; exit 2; }
[ -n "$client_src" ] || die "usage: $0 CLIENT [VGGSERVE] (or TRITON_CLIENT)"
[ -x "$vggserve" ] || die "no vggserve binary at $vggserve (build first)"
for mod in numpy geventhttpclient rapidjson; do
  "$py" -c "import $mod" 2>/dev/null || die "python module $mod missing (apt-get install python3-numpy python3-geventhttpclient python3-rapidjson)"
done

tmp=$(mktemp -d /tmp/tritonclient-repo.XXXXXX)
cleanup() { if [ "${KEEP:-}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi; }
trap cleanup EXIT

want=src/python/library/tritonclient
if [ -e "$client_src/$want" ]; then
  client=$client_src
  rev=$(git -C "$client_src" log -1 --format='%h %cs' 2>/dev/null || echo "(not git)")
elif git --git-dir="$client_src" rev-parse --verify -q HEAD >/dev/null 2>&1; then
  client=$tmp/client
  mkdir -p "$client"
  git --git-dir="$client_src" archive HEAD "$want" | tar -x -C "$client"
  rev=$(git --git-dir="$client_src" log -1 --format='%h %cs')
else
  die "$client_src is neither a checkout with $want nor a git directory"
fi
echo "== Triton client $rev; vggserve $vggserve"

mkdir -p "$tmp/pkg"
cp -r "$client/$want" "$tmp/pkg/"
export PYTHONPATH=$tmp/pkg
"$py" -c 'import tritonclient.http' || { echo "FAIL: tritonclient.http does not import"; exit 1; }

start=$(date +%s)
"$py" bench/tritonclient_repository_check.py --binary "$vggserve" --workdir "$tmp/work" || {
  echo "FAIL: tritonclient_repository_check.py (server events: $tmp/work/server.err; KEEP=1 keeps them)"
  exit 1; }
echo "== PASS in $(( $(date +%s) - start )) s"
