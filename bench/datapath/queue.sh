#!/usr/bin/env bash
# Builds Knative's queue-proxy from the Go module proxy (cached) and runs the data path
# benchmark with it: go run ./bench/datapath -flick bin/flick -queue <queue-proxy>.
# v0.46.0 is the newest release whose dependencies the module proxy serves here; newer ones
# pin pseudo-versions of knative.dev/pkg and knative.dev/networking that it refuses.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=${QUEUE_PROXY_VERSION:-v0.46.0}
cache=${FLICK_BENCH_CACHE:-$HOME/.cache/flick-bench}/queue-$version
if [ ! -x "$cache/queue" ]; then
  echo "building knative.dev/serving/cmd/queue@$version (once; a few minutes)" >&2
  mkdir -p "$cache"
  GOBIN="$cache" GOFLAGS=-mod=mod go install "knative.dev/serving/cmd/queue@$version"
fi
make build examples >/dev/null
exec go run ./bench/datapath -flick bin/flick -queue "$cache/queue" "$@"
