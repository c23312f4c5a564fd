#!/usr/bin/env bash
# Builds a real Kubernetes control plane for the tests from the Go module proxy: etcd (from
# go.etcd.io/etcd/server/v3) and kube-apiserver, kube-controller-manager, kube-scheduler (from
# k8s.io/kubernetes). Kubernetes' own go.mod replaces its k8s.io/* staging modules with local
# paths, so its commands are built in a scratch module that requires k8s.io/kubernetes and
# replaces each staging module with its published v0.MINOR.PATCH.
#
# The binaries go to $KUBE_CACHE/$KUBE_VERSION/bin (default ~/.cache/flick/kube, outside the
# repo so every clone shares them), and a build is skipped when they are all there. The last line printed is that bin directory.
#
#   KUBE_VERSION  Kubernetes version (default v1.37.2)
#   ETCD_VERSION  etcd version (default v3.6.16)
#   KUBE_CACHE    where the versions are cached (default ${XDG_CACHE_HOME:-~/.cache}/flick/kube)
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
cache=${KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flick/kube}
dir=$cache/$KUBE_VERSION
bin=$dir/bin
kube_cmds=(kube-apiserver kube-controller-manager kube-scheduler)

say() { echo "kube-bins: $*" >&2; }
fail() { say "error: $*"; exit 1; }

# etcd_is_wanted: the cached etcd is the wanted version. (Its output is read whole first:
# grep -q would quit early, etcd would die of SIGPIPE, and pipefail would call it missing.)
etcd_is_wanted() {
  local out
  [ -x "$bin/etcd" ] && out=$("$bin/etcd" --version 2>/dev/null) || return 1
  grep -qx "etcd Version: ${ETCD_VERSION#v}" <<<"$out"
}

have_all() {
  etcd_is_wanted || return 1
  for c in "${kube_cmds[@]}"; do [ -x "$bin/$c" ] || return 1; done
}

if have_all; then
  say "cached: $bin"
  echo "$bin"
  exit 0
fi

[[ $KUBE_VERSION =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || fail "KUBE_VERSION must look like v1.37.2, not $KUBE_VERSION"
minor=${BASH_REMATCH[1]}
staging_version=v0.$minor.${BASH_REMATCH[2]}
command -v go >/dev/null 2>&1 || fail "go is not on PATH"
mkdir -p "$dir"
# One build at a time: test packages running in parallel may all ask for the binaries.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$dir/.lock"
  flock 9 || fail "lock $dir/.lock"
fi
mkdir -p "$bin"
# Builds must not pick up the repo's go.mod or a workspace.
export GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0

build_etcd() {
  etcd_is_wanted && { say "etcd: cached"; return; }
  local mod=$dir/etcd-mod
  say "etcd $ETCD_VERSION: building in $mod"
  rm -rf "$mod" && mkdir -p "$mod"
  cat >"$mod/main.go" <<'EOF'
// Command etcd is etcd's own entrypoint, built from the module proxy.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
  (
    cd "$mod"
    go mod init flick.local/etcd >/dev/null 2>&1
    go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2 || fail "go get go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    go mod tidy >&2 || fail "go mod tidy (etcd)"
    go build -trimpath -o "$bin/etcd.tmp" . >&2 || fail "go build etcd"
  )
  mv "$bin/etcd.tmp" "$bin/etcd"
}

build_kube() {
  local missing=() c
  for c in "${kube_cmds[@]}"; do [ -x "$bin/$c" ] || missing+=("$c"); done
  [ ${#missing[@]} -eq 0 ] && { say "kubernetes: cached"; return; }
  local mod=$dir/kube-mod
  say "kubernetes $KUBE_VERSION (staging modules $staging_version): building ${missing[*]} in $mod"
  rm -rf "$mod" && mkdir -p "$mod"
  # Kubernetes' go.mod lists the staging modules it replaces with ./staging/src/k8s.io/X.
  local info gomod
  info=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION") ||
    fail "go mod download k8s.io/kubernetes@$KUBE_VERSION: $(sed -n 's/^[[:space:]]*"Error": "\(.*\)",\{0,1\}$/\1/p' <<<"$info")"
  gomod=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' <<<"$info")
  [ -f "$gomod" ] || fail "could not download k8s.io/kubernetes@$KUBE_VERSION's go.mod"
  local staging
  staging=$(sed -n 's#^[[:space:]]*\(replace[[:space:]]\+\)\{0,1\}\(k8s\.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\2#p' "$gomod" | sort -u)
  [ -n "$staging" ] || fail "no staging replaces found in $gomod"
  {
    echo "module flick.local/kube"
    echo
    echo "go $(go env GOVERSION | sed 's/^go//')"
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    echo "replace ("
    for m in $staging; do echo "	$m => $m $staging_version"; done
    echo ")"
  } >"$mod/go.mod"
  say "$(echo "$staging" | wc -l) staging modules replaced with $staging_version"
  local pkgs=() ldflags
  for c in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  # The version Kubernetes' own build stamps in, so --version and /version tell the truth.
  ldflags="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  done
  (
    cd "$mod"
    go get "${pkgs[@]/%/@$KUBE_VERSION}" >&2 || fail "go get ${pkgs[*]/%/@$KUBE_VERSION}"
    say "go build ${missing[*]} (a cold build takes several minutes and about 3 GB of memory)"
    mkdir -p "$mod/out"
    go build -trimpath -ldflags "$ldflags" -o "$mod/out/" "${pkgs[@]}" >&2 || fail "go build ${missing[*]}"
  )
  for c in "${missing[@]}"; do mv "$mod/out/$c" "$bin/$c"; done
}

start=$SECONDS
build_etcd
build_kube
have_all || fail "binaries missing from $bin after the build"
say "built in $((SECONDS - start))s: $bin"
echo "$bin"
