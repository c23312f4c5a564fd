#!/usr/bin/env bash
# Writes the Helm chart charts/flick from config/: its crds/ are config/crd, its templates
# the operator's and gateway's manifests with the namespace, image, domain, replicas and
# Service type as values. With --check, writes into a scratch copy and fails when the chart
# in the repo differs.
set -euo pipefail
cd "$(dirname "$0")/.."
out=charts/flick
if [ "${1:-}" = --check ]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out/crds" "$out/templates"
rm -f "$out"/crds/*.yaml "$out"/templates/*.yaml
cp config/crd/*.yaml "$out/crds/"
template() {
  sed -e 's/namespace: flick-system/namespace: {{ .Release.Namespace }}/' \
      -e 's|ghcr.io/flickdev/flick:latest|{{ .Values.image }}|' \
      -e 's/--domain=example.com/--domain={{ .Values.domain }}/' \
      -e "$2" "config/$1" > "$out/templates/$(tr / - <<<"$1")"
}
template rbac/operator.yaml ''
template rbac/gateway.yaml ''
template operator.yaml 's/replicas: 2/replicas: {{ .Values.operator.replicas }}/'
template gateway.yaml 's/replicas: 1/replicas: {{ .Values.gateway.replicas }}/; s/type: LoadBalancer/type: {{ .Values.gateway.serviceType }}/'
if [ "${1:-}" = --check ]; then
  for d in crds templates; do
    if ! diff -r "charts/flick/$d" "$out/$d" >/dev/null; then
      echo "charts/flick is stale: run make crds" >&2
      diff -r "charts/flick/$d" "$out/$d" | head -20 >&2
      exit 1
    fi
  done
fi
