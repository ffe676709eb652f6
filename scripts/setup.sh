#!/usr/bin/env bash
# setup.sh - install the Debian packages vggserve needs (only those missing) and build it.
#
#   scripts/setup.sh [--with-test-deps]     -> ./build/vggserve
#
# Needs root (or sudo) only when a package is missing. BUILD_DIR overrides ./build.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config libmicrohttpd-dev libjansson-dev libstb-dev libdnnl-dev)
if [[ "${1:-}" == "--with-test-deps" ]]; then
  # python3-numpy for the black-box tests, prometheus for promtool, curl for examples,
  # torch/torchvision/h5py for the weight converters' tests.
  packages+=(python3 python3-numpy prometheus curl python3-torch python3-torchvision python3-h5py
             chromium openssl)
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
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build_dir" -j "$(nproc)"
