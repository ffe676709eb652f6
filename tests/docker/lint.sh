#!/usr/bin/env bash
# lint.sh - lint the Dockerfile with npm's dockerfilelint (installed into tests/docker/node_modules).
#
#   tests/docker/lint.sh [Dockerfile]
#
# Rules the Dockerfile breaks on purpose are switched off in tests/docker/.dockerfilelintrc,
# each with the reason.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dockerfile=$(realpath "${1:-$here/../../Dockerfile}")
if [[ ! -x "$here/node_modules/.bin/dockerfilelint" ]]; then
    echo "lint: installing dockerfilelint (npm) into tests/docker/node_modules"
    npm install --prefix "$here" --no-audit --no-fund --no-package-lock --loglevel=error >/dev/null
fi
"$here/node_modules/.bin/dockerfilelint" --config "$here" "$dockerfile"
echo "lint: $dockerfile passed dockerfilelint"
