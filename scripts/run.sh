#!/usr/bin/env bash
# Starts `flick server` in the foreground with every example deployed, and says what to curl.
# Usage: scripts/run.sh BIN DATA_DIR LISTEN API_LISTEN
set -euo pipefail
bin=$1 data=$2 listen=$3 api=$4
export FLICK_API="http://$api" FLICK_DATA_DIR="$data"

tls=${TLS_LISTEN:-127.0.0.1:8443}
"$bin" server --data-dir "$data" --listen "$listen" --listen-tls "$tls" --api-listen "$api" &
server=$!
# Ctrl-C reaches the server too; the script then waits for it to stop and ends without an
# error, so make does not report one. A server that stops by itself passes on its status.
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null' EXIT
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null; trap - EXIT; exit 0' INT TERM

for _ in $(seq 1 100); do
  curl -fsS "http://$api/readyz" >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { echo "flick server exited; see the lines above" >&2; exit 1; }
  sleep 0.1
done

echo "Deploying examples/ (the first Go build takes a little while)..."
"$bin" apply -f examples/ --wait

port=${listen##*:}
tlsport=${tls##*:}
cat <<MSG

Flick is running. Try:
  curl http://127.0.0.1:$port/function/hello-python?name=you
  curl http://127.0.0.1:$port/hello/route      # an HTTP route with a path parameter: $bin get routes
  curl -H 'Host: hello-go.default.localhost' http://127.0.0.1:$port/
  curl http://hello-node.default.localhost:$port/      # *.localhost resolves to 127.0.0.1 on most systems
  curl http://127.0.0.1:$port/function/hello-binary
  curl -H 'Host: counter.default.localhost' http://127.0.0.1:$port/
  curl -i http://127.0.0.1:$port/brokers/default/default -H 'Ce-Specversion: 1.0' -H 'Ce-Id: 1' -H 'Ce-Type: com.example.greeting' -H 'Ce-Source: /curl' -d '{"hello": "events"}'
      # a CloudEvent to the broker; the trigger sends it to event-display: $bin logs event-display
      # (a PingSource sends one there every minute too: $bin get sources)
  curl -i -X POST http://127.0.0.1:$port/async-function/hello-python -d 'later'
      # an asynchronous call (202 and X-Call-Id): $bin calls list
  curl --cacert $data/tls/ca.crt https://hello-node.default.localhost:$tlsport/
      # HTTPS (HTTP/2) with a certificate from Flick's local CA: $bin cert list
  go run ./examples/grpc-greeter/client -addr 127.0.0.1:$port -authority greeter.default.localhost
      # the gRPC sample over h2c; over TLS: add -cacert $data/tls/ca.crt and use port $tlsport
CLI (in another shell, same machine):
  export FLICK_DATA_DIR=$data FLICK_API=http://$api
  $bin get functions
  $bin invoke hello-python -d 'hi'
  $bin logs hello-python -f
Press Ctrl-C to stop (instances stop with it).
MSG
status=0
wait $server || status=$?
trap - EXIT
exit $status
