#!/usr/bin/env bash
# Installs what the examples and tests need beyond Go, gcc and make: a Python 3 and a Node.js
# for the python and node runtimes, and runc for the --oci-runtime tests (as root only: the
# OCI runtime needs root anyway). Already-installed tools are used as they are.
set -euo pipefail
missing=()
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ "$(id -u)" -eq 0 ] && ! command -v runc >/dev/null 2>&1; then missing+=(runc); fi
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing ${missing[*]} (needed by the python/node runtimes and make run)" >&2
if [ "$(id -u)" -ne 0 ]; then
  echo "run as root, or install ${missing[*]} yourself" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
