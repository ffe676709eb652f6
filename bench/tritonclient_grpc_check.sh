#!/usr/bin/env bash
# tritonclient_grpc_check.sh - Triton's own clients, unmodified, against vggserve's gRPC
# listener, every answer compared with the HTTP one (issue 27's "What it must show"). A manual
# check, not in CI (it needs Triton's client and common repositories, which CI cannot fetch).
#
#   bench/tritonclient_grpc_check.sh CLIENT COMMON [VGGSERVE]
#   TRITON_CLIENT=... TRITON_COMMON=... bench/tritonclient_grpc_check.sh
#
# CLIENT: github.com/triton-inference-server/client, COMMON: .../common, each a checkout or a
# bare git directory (its HEAD is used). VGGSERVE: the binary (default build/vggserve).
# Environment: MODEL (default vgg11), WEIGHTS (a .safetensors; default generated weights),
# KEEP=1 keeps the temporary directory.
#
# 1. The tritonclient package as Triton's build_wheel.py lays it out: the library's
#    tritonclient/ copied, and tritonclient/grpc/{service,service_grpc,model_config}_pb2.py
#    generated from COMMON's protobuf/ by protoc and grpc_python_plugin, with their imports
#    made package-relative as build_wheel.py does. Nothing of the client is changed.
# 2. `vggserve serve` on 127.0.0.1 with HTTP and gRPC on free ports (batches up to 8).
# 3. tritonclient_grpc_check.py: tritonclient.grpc beside tritonclient.http, every answer equal.
# 4. image_client.py -i grpc -b 2 on tests/data/images, then the same with --streaming (same
#    answers), and ensemble_image_client.py -i grpc on the folder (same answers as -i http);
#    their output checked: PASS, every request, every line a real class of the model.
# Exit status: 0 when all passed, 1 on any mismatch, 2 on a missing prerequisite.
# Needs: protoc and grpc_python_plugin (Debian protobuf-compiler, protobuf-compiler-grpc),
# /usr/bin/python3 with python3-grpcio, python3-protobuf, python3-numpy, python3-pil,
# python3-geventhttpclient, python3-rapidjson, python3-packaging; curl. Talks only to 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
client_src=${1:-${TRITON_CLIENT:-}}
common_src=${2:-${TRITON_COMMON:-}}
vggserve=$(realpath "${3:-${VGGSERVE:-build/vggserve}}")
model=${MODEL:-vgg11}
py=/usr/bin/python3
photos=$root/tests/data/images
classes=3

die() { echo "tritonclient_grpc_check: $*" >&2; exit 2; }
[ -n "$client_src" ] && [ -n "$common_src" ] ||
  die "usage: $0 CLIENT COMMON [VGGSERVE] (or TRITON_CLIENT, TRITON_COMMON)"
[ -x "$vggserve" ] || die "no vggserve binary at $vggserve (build first)"
for tool in protoc grpc_python_plugin curl; do
  command -v "$tool" >/dev/null || die "$tool missing (apt-get install protobuf-compiler protobuf-compiler-grpc curl)"
done
for mod in grpc google.protobuf numpy PIL geventhttpclient rapidjson packaging; do
  "$py" -c "import $mod" 2>/dev/null || die "python module $mod missing (apt-get install python3-grpcio python3-protobuf python3-numpy python3-pil python3-geventhttpclient python3-rapidjson python3-packaging)"
done

tmp=$(mktemp -d /tmp/tritonclient-check.XXXXXX)
server=
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  if [ "${KEEP:-}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# A checkout is used as it is; a git directory without a work tree is exported at HEAD.
materialize() {  # SRC NAME WANT: prints the directory holding WANT
  local src=$1 name=$2 want=$3
  if [ -e "$src/$want" ]; then
    echo "$src"
  elif git --git-dir="$src" rev-parse --verify -q HEAD >/dev/null 2>&1; then
    mkdir -p "$tmp/$name"
    git --git-dir="$src" archive HEAD | tar -x -C "$tmp/$name"
    echo "$tmp/$name"
  else
    die "$src is neither a checkout with $want nor a git directory"
  fi
}
describe() {  # SRC: the commit, when SRC is in git
  git -C "$1" log -1 --format='%h %cs' 2>/dev/null || git --git-dir="$1" log -1 --format='%h %cs' 2>/dev/null || echo "(not git)"
}
client=$(materialize "$client_src" client src/python/library/tritonclient)
common=$(materialize "$common_src" common protobuf/grpc_service.proto)
echo "== Triton client $(describe "$client_src"), common $(describe "$common_src"); vggserve $vggserve"

# 1. The package.
pkg=$tmp/pkg
mkdir -p "$pkg" "$tmp/gen"
cp -r "$client/src/python/library/tritonclient" "$pkg/"
protoc -I "$common/protobuf" --python_out="$tmp/gen" --grpc_out="$tmp/gen" \
  --plugin=protoc-gen-grpc="$(command -v grpc_python_plugin)" \
  "$common/protobuf/grpc_service.proto" "$common/protobuf/model_config.proto"
g=$pkg/tritonclient/grpc
cp "$tmp/gen/model_config_pb2.py" "$g/model_config_pb2.py"
cp "$tmp/gen/grpc_service_pb2.py" "$g/service_pb2.py"
cp "$tmp/gen/grpc_service_pb2_grpc.py" "$g/service_pb2_grpc.py"
sed -i -E 's/^import ([^ ]*)_pb2 as ([^ ]*)$/from tritonclient.grpc import \1_pb2 as \2/' \
  "$g/model_config_pb2.py" "$g/service_pb2.py"
sed -i -E 's/^import grpc_([^ ]*)_pb2 as ([^ ]*)$/from tritonclient.grpc import \1_pb2 as \2/' \
  "$g/service_pb2_grpc.py"
export PYTHONPATH=$pkg
"$py" -c 'import tritonclient.grpc, tritonclient.http' || { echo "FAIL: tritonclient does not import"; exit 1; }

# 2. The server.
flags=(serve --host 127.0.0.1 --port 0 --grpc-port 0 --model "$model" --workers 1
       --max-batch-size 8 --max-images-per-request 16)
[ -z "${WEIGHTS:-}" ] || flags+=(--weights "$WEIGHTS")
"$vggserve" "${flags[@]}" >"$tmp/access.log" 2>"$tmp/server.err" &
server=$!
http= grpc=
for _ in $(seq 1 1200); do
  kill -0 "$server" 2>/dev/null || { cat "$tmp/server.err"; echo "FAIL: vggserve exited"; exit 1; }
  http=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/server.err" | head -1)
  grpc=$(sed -n 's/.*gRPC (KServe v2[^)]*) listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/server.err" | head -1)
  if [ -n "$http" ] && [ -n "$grpc" ] &&
     curl -sf "http://127.0.0.1:$http/v2/health/ready" >/dev/null; then break; fi
  sleep 0.1
done
curl -sf "http://127.0.0.1:$http/v2/health/ready" >/dev/null ||
  { cat "$tmp/server.err"; echo "FAIL: vggserve not ready in 120 s"; exit 1; }
echo "== vggserve ready: HTTP 127.0.0.1:$http, gRPC 127.0.0.1:$grpc, model $model"

# 3. tritonclient.grpc beside tritonclient.http.
echo "== tritonclient.grpc against tritonclient.http"
"$py" bench/tritonclient_grpc_check.py --http "127.0.0.1:$http" --grpc "127.0.0.1:$grpc" \
  --model "$model" --binary "$vggserve" >"$tmp/check.out" 2>&1 || {
  cat "$tmp/check.out"; echo "FAIL: tritonclient_grpc_check.py"; exit 1; }
grep -v '^ok ' "$tmp/check.out" || true

# 4. Triton's example clients.
examples=$client/src/python/examples
n_images=$(find "$photos" -maxdepth 1 -type f | wc -l)
run_client() {  # OUT COMMAND...: runs it, prints its output, fails on a non-zero exit
  local out=$1
  shift
  echo "== $(basename "$2") ${*:3}"
  if ! "$@" >"$out" 2>&1; then cat "$out"; echo "FAIL: exit status"; exit 1; fi
  sed 's/^/   | /' "$out"
}
outcheck() {
  "$py" bench/tritonclient_grpc_check.py --labels-from "127.0.0.1:$http" --model "$model" "$@" \
    >"$tmp/outcheck.out" 2>&1 || { cat "$tmp/outcheck.out"; echo "FAIL: client output"; exit 1; }
  tail -1 "$tmp/outcheck.out"
}
run_client "$tmp/image_client.out" "$py" "$examples/image_client.py" -i grpc \
  -u "127.0.0.1:$grpc" -m "${model}_tensor" -b 2 -c "$classes" -s INCEPTION "$photos"
outcheck --image-client-output "$tmp/image_client.out" --batch 2 --classes "$classes" \
  --images "$n_images"
run_client "$tmp/image_client_streaming.out" "$py" "$examples/image_client.py" -i grpc \
  --streaming -u "127.0.0.1:$grpc" -m "${model}_tensor" -b 2 -c "$classes" -s INCEPTION "$photos"
outcheck --image-client-output "$tmp/image_client_streaming.out" --batch 2 \
  --classes "$classes" --images "$n_images" --same-as "$tmp/image_client.out"
run_client "$tmp/ensemble_grpc.out" "$py" "$examples/ensemble_image_client.py" -i grpc \
  -u "127.0.0.1:$grpc" -m "${model}_image" -c "$classes" "$photos"
"$py" "$examples/ensemble_image_client.py" -i http -u "127.0.0.1:$http" -m "${model}_image" \
  -c "$classes" "$photos" >"$tmp/ensemble_http.out" 2>&1 ||
  { cat "$tmp/ensemble_http.out"; echo "FAIL: ensemble_image_client.py -i http"; exit 1; }
outcheck --ensemble-output "$tmp/ensemble_grpc.out" --classes "$classes" --images "$n_images" \
  --same-as "$tmp/ensemble_http.out"

grpc_lines=$(grep -c '"protocol":"grpc"' "$tmp/access.log" || true)
echo "== PASS: tritonclient.grpc equal to tritonclient.http; image_client.py -i grpc -b 2" \
     "(unary and --streaming) and ensemble_image_client.py -i grpc on $n_images photos" \
     "($grpc_lines gRPC calls in the access log)"
