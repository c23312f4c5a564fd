#!/usr/bin/env bash
# Generates config/crd from the Go types with controller-gen (internal/kube/apis wraps the
# specs and statuses of pkg/apis), and the Helm chart from config/ (scripts/chart.sh). With
# --check, generates into a scratch directory and fails when config/crd or the chart
# differs: what is in the repo must be what the types and config/ say.
set -euo pipefail
cd "$(dirname "$0")/.."
gen() {
  go run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0 \
    crd:crdVersions=v1,allowDangerousTypes=true paths=./internal/kube/apis/... "output:crd:dir=$1"
}
if [ "${1:-}" != --check ]; then
  gen config/crd
  {
    echo "# Flick on Kubernetes: kubectl apply -k config/ (or flick install). Written by scripts/crds.sh."
    echo "apiVersion: kustomize.config.k8s.io/v1beta1"
    echo "kind: Kustomization"
    echo "resources:"
    echo "- namespace.yaml"
    for f in config/crd/*.yaml; do echo "- ${f#config/}"; done
    echo "- rbac/operator.yaml"
    echo "- rbac/gateway.yaml"
    echo "- operator.yaml"
    echo "- gateway.yaml"
  } > config/kustomization.yaml
  scripts/chart.sh
  exit 0
fi
scripts/chart.sh --check
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
gen "$scratch"
if ! diff -r config/crd "$scratch" >/dev/null; then
  echo "config/crd is stale: run make crds" >&2
  diff -r config/crd "$scratch" | head -20 >&2
  exit 1
fi
