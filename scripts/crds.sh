#!/usr/bin/env bash
# Generates config/crd from the Go types with controller-gen (internal/kube/apis wraps the
# specs and statuses of pkg/apis). With --check, generates into a scratch directory and
# fails when config/crd differs: the CRDs in the repo must be the ones the types say.
set -euo pipefail
cd "$(dirname "$0")/.."
gen() {
  go run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0 \
    crd:crdVersions=v1,allowDangerousTypes=true paths=./internal/kube/apis/... "output:crd:dir=$1"
}
if [ "${1:-}" != --check ]; then
  gen config/crd
  exit 0
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
gen "$scratch"
if ! diff -r config/crd "$scratch" >/dev/null; then
  echo "config/crd is stale: run make crds" >&2
  diff -r config/crd "$scratch" | head -20 >&2
  exit 1
fi
