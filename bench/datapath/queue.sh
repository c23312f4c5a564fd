#!/usr/bin/env bash
# Builds Knative's queue-proxy from the Go module proxy (cached), installs HAProxy from
# Debian's packages when it is missing, and runs the data path benchmark with both:
# go run ./bench/datapath -flick bin/flick -queue <queue-proxy> -haproxy <haproxy>.
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
haproxy=$(command -v haproxy || true)
if [ -z "$haproxy" ] && [ -x /usr/sbin/haproxy ]; then
  haproxy=/usr/sbin/haproxy
fi
if [ -z "$haproxy" ]; then
  echo "installing haproxy from Debian's packages (once)" >&2
  if (apt-get install -y haproxy || (apt-get update && apt-get install -y haproxy)) >/dev/null 2>&1; then
    haproxy=/usr/sbin/haproxy
  else
    echo "haproxy could not be installed; running without it" >&2
  fi
fi
make build examples >/dev/null
exec go run ./bench/datapath -flick bin/flick -queue "$cache/queue" ${haproxy:+-haproxy "$haproxy"} "$@"
