#!/usr/bin/env bash
# Installs what the examples and tests need beyond Go, gcc and make: a Python 3 and a Node.js
# for the python and node runtimes; runc for the --oci-runtime tests (as root only: the OCI
# runtime needs root anyway); and the queue servers the queue sources' tests start on their
# own ports (redis-server, mosquitto, rabbitmq-server). Already-installed tools are used as they are.
set -euo pipefail
missing=()
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ "$(id -u)" -eq 0 ] && ! command -v runc >/dev/null 2>&1; then missing+=(runc); fi
has() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
has redis-server || missing+=(redis-server)
has mosquitto || missing+=(mosquitto)
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing+=(rabbitmq-server)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing ${missing[*]} (needed by the runtimes, make run and the tests)" >&2
if [ "$(id -u)" -ne 0 ]; then
  echo "run as root, or install ${missing[*]} yourself" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
