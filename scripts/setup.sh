#!/usr/bin/env bash
# setup.sh - the one list of Debian packages vggserve needs: installs those missing, then builds.
#
#   scripts/setup.sh                    build the service only             -> ./build/vggserve
#   scripts/setup.sh --with-test-deps   also what the ctest suite needs (tests/run.sh)
#   scripts/setup.sh --with-ci-deps     also what .ci/run adds: sanitizers and fuzzers (clang),
#                                       the Docker and Swarm checks (docker.io, mmdebstrap)
#
# Needs root (or sudo) only when a package is missing. BUILD_DIR overrides ./build. The plain
# build configures no tests, so a newcomer needs neither python3 nor node to run the service.
set -euo pipefail
cd "$(dirname "$0")/.."

level=build
case "${1:-}" in
  "") ;;
  --with-test-deps) level=test ;;
  --with-ci-deps) level=ci ;;
  *) echo "usage: scripts/setup.sh [--with-test-deps | --with-ci-deps]" >&2; exit 2 ;;
esac

# Build: compiler, CMake, the HTTP server, JSON, image decoders, oneDNN.
# JPEG: libjpeg-turbo's TurboJPEG API; WebP: libwebp; PNG: stb_image; gzip bodies: zlib.
packages=(build-essential cmake pkg-config libmicrohttpd-dev libjansson-dev libstb-dev libdnnl-dev
          libturbojpeg0-dev libwebp-dev zlib1g-dev)
# The gRPC front end (VGGSERVE_GRPC, server/grpc_frontend.cc): gRPC's C++ API, protobuf, and
# protoc with the C++ and Python plugins (stubs are generated from proto/ at build time).
packages+=(libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc)
if [[ $level != build ]]; then
  # python3-numpy for the black-box suites, python3-torch/torchvision for the reference model
  # (parity) and h5py for the weight converters' tests, prometheus for promtool, chromium for
  # the demo page test, openssl for the TLS test, curl for the README examples.
  # python3-pil writes the generated test images (EXIF orientations, WebP) of the decode suite.
  packages+=(python3 python3-numpy python3-pil python3-torch python3-torchvision python3-h5py
             prometheus chromium openssl curl)
  # python3-grpcio and python3-protobuf drive the gRPC suite (tests/test_grpc.py).
  packages+=(python3-grpcio python3-protobuf)
  # shellcheck checks the image's entrypoint is POSIX sh (tests/docker/test_entrypoint.py).
  packages+=(shellcheck)
  # Node.js and npm for the OpenAPI, browser and manifest checks; a Node.js installed some other
  # way (it brings its own npm, which Debian's npm package conflicts with) is used as it is.
  command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)
fi
if [[ $level == ci ]]; then
  packages+=(clang libclang-rt-14-dev docker.io mmdebstrap)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo_cmd=()
  [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

build_dir=${BUILD_DIR:-build}
tests=ON
[[ $level == build ]] && tests=OFF
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DVGGSERVE_BUILD_TESTS=$tests >/dev/null
cmake --build "$build_dir" -j "$(nproc)"
