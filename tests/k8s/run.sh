#!/usr/bin/env bash
# run.sh - validate docker/k8s offline: every manifest with kubernetes-models (validate.mjs:
# schema, unknown fields, cross-references), and the kustomizations (docker/k8s and the model
# repository overlay docker/k8s-repository) as `kubectl kustomize` renders them when kubectl is
# installed.
#
#   tests/k8s/run.sh
#
# Needs node and npm (Debian: nodejs, npm); the npm packages go into tests/k8s/node_modules.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.."
k8s=docker/k8s
if [[ ! -d "$here/node_modules/kubernetes-models" || ! -d "$here/node_modules/js-yaml" ||
      ! -d "$here/node_modules/typescript" ]]; then
    echo "k8s-check: installing kubernetes-models, js-yaml, typescript (npm) into tests/k8s/node_modules"
    npm install --prefix "$here" --no-audit --no-fund --no-package-lock --loglevel=error >/dev/null
fi
manifests=()
for f in "$k8s"/*.yaml docker/k8s-repository/*.yaml; do
    [[ "$(basename "$f")" == kustomization.yaml ]] || manifests+=("$f")
done
echo "k8s-check: validating ${#manifests[@]} manifest files"
node "$here/validate.mjs" "${manifests[@]}"
if command -v kubectl >/dev/null; then
    echo "k8s-check: kubectl kustomize docker/k8s"
    rendered=$(kubectl kustomize "$k8s")
    node "$here/validate.mjs" - <<<"$rendered"
    # The repository overlay: the base with the models PVC at /models.
    echo "k8s-check: kubectl kustomize docker/k8s-repository"
    rendered=$(kubectl kustomize docker/k8s-repository)
    node "$here/validate.mjs" --repository - <<<"$rendered"
else
    echo "k8s-check: kubectl not installed: kustomization.yaml files not rendered (skipped)"
fi
