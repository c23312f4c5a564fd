#!/usr/bin/env bash
# Builds Let's Encrypt's pebble (a real RFC 8555 ACME server for tests) and its companion
# pebble-challtestsrv (the DNS server pebble resolves challenge domains with) from the Go
# module proxy, once, into $PEBBLE_CACHE/$PEBBLE_VERSION, with pebble's test certificates
# copied beside them. The last line printed is that directory.
#
#   PEBBLE_VERSION  pebble version (default v2.10.3)
#   PEBBLE_CACHE    where versions are cached (default ${XDG_CACHE_HOME:-~/.cache}/flick/pebble)
set -euo pipefail

PEBBLE_VERSION=${PEBBLE_VERSION:-v2.10.3}
cache=${PEBBLE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flick/pebble}
dir=$cache/$PEBBLE_VERSION

say() { echo "pebble: $*" >&2; }

have_all() {
  [ -x "$dir/pebble" ] && [ -x "$dir/pebble-challtestsrv" ] && [ -f "$dir/certs/pebble.minica.pem" ]
}

if have_all; then
  say "cached: $dir"
  echo "$dir"
  exit 0
fi
mkdir -p "$dir"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$dir/.lock"
  flock 9
fi
if ! have_all; then
  export GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0
  mod=github.com/letsencrypt/pebble/v2
  say "building pebble $PEBBLE_VERSION (once)"
  GOBIN=$dir go install "$mod/cmd/pebble@$PEBBLE_VERSION" "$mod/cmd/pebble-challtestsrv@$PEBBLE_VERSION"
  src=$(cd "$dir" && go mod download -json "$mod@$PEBBLE_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$src/test/certs" ] || { say "error: no test/certs in $src"; exit 1; }
  rm -rf "$dir/certs"
  cp -r "$src/test/certs" "$dir/certs"
  chmod -R u+w "$dir/certs"
fi
echo "$dir"
