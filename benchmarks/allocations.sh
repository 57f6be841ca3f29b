#!/usr/bin/env bash
# Heap allocations, reference-count operations and exclusivity checks per proxied HTTP request:
# deterministic, unlike CPU time on a shared machine.
#
#   benchmarks/allocations.sh [--requests N] [--policy] BIN [BIN...]
#
# For each binary: its sample app as the upstream, `meshgate gateway` (eventLoops 1) with an
# LD_PRELOAD allocation counter (lib/malloc-count.c, built here with cc) routing every request to
# it (with --policy the route also has retries, a corsPolicy and a 1% mirror), a warm-up of 2000
# requests, then N keep-alive requests (`h2load --h1 -c 10`, with an Origin header) and the counter's
# difference ÷ N. Every process is stopped by PID.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REQUESTS=20000 POLICY=0 BINS=()
while (($#)); do
    case "$1" in
        --requests) REQUESTS="$2"; shift 2 ;;
        --policy) POLICY=1; shift ;;
        *) BINS+=("$1"); shift ;;
    esac
done
((${#BINS[@]})) || { echo "usage: $0 [--requests N] [--policy] BIN [BIN...]" >&2; exit 2; }
for tool in cc h2load curl python3; do
    command -v "$tool" >/dev/null || { echo "$tool is needed (apt-get install gcc nghttp2-client curl python3)" >&2; exit 1; }
done
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]+"${PIDS[@]}"}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]+"${PIDS[@]}"}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
cc -O2 -shared -fPIC -o "$WORK/malloc-count.so" "$HERE/lib/malloc-count.c" -ldl -lpthread
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_url() {   # URL PID TIMEOUT_S
    for _ in $(seq $(($3 * 5))); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.2
    done
    return 1
}
counts() { sleep 0.2; cat "$WORK/count"; }   # the counter writes every 50 ms

for bin in "${BINS[@]}"; do
    upstream=$(free_port) http=$(free_port) ready=$(free_port) admin=$(free_port) metrics=$(free_port)
    "$bin" sample-app http --listen "127.0.0.1:$upstream" --service upstream --version v1 >"$WORK/app.log" 2>&1 &
    app=$!
    PIDS+=("$app")
    wait_url "http://127.0.0.1:$upstream/status/200" "$app" 30 || { echo "the sample app did not start" >&2; exit 1; }
    conf="$WORK/conf-$app"
    mkdir -p "$conf"
    printf 'labels: {istio: ingressgateway}\nbindAddress: 127.0.0.1\nreadinessPort: %s\nadminPort: %s\nmetricsPort: %s\neventLoops: 1\n' \
        "$ready" "$admin" "$metrics" >"$conf/meshgate.yaml"
    policy=""
    if ((POLICY)); then
        policy='    retries: {attempts: 2, perTryTimeout: 5s, retryOn: "5xx,reset,connect-failure"}
    corsPolicy: {allowOrigins: [{exact: "https://bench.example"}], allowMethods: [GET], exposeHeaders: [x-request-id]}
    mirror: {host: upstream}
    mirrorPercentage: {value: 1}'
    fi
    cat >"$conf/bench.yaml" <<YAML
apiVersion: v1
kind: Service
metadata: {name: upstream}
spec: {selector: {app: upstream}, ports: [{name: http, port: 80}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: upstream-0}
spec: {address: 127.0.0.1, labels: {app: upstream}, ports: {http: $upstream}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bench}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: $http, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bench}
spec:
  hosts: ["*"]
  gateways: [bench]
  http:
  - route: [{destination: {host: upstream}}]
$policy
YAML
    MALLOC_COUNT_FILE="$WORK/count" LD_PRELOAD="$WORK/malloc-count.so" "$bin" gateway --config "$conf" >"$WORK/gateway.log" 2>&1 &
    gateway=$!
    PIDS+=("$gateway")
    wait_url "http://127.0.0.1:$ready/healthz/ready" "$gateway" 60 || { tail -20 "$WORK/gateway.log" >&2; exit 1; }
    url="http://127.0.0.1:$http/status/200"
    h2load --h1 -n 2000 -c 10 -H "Origin: https://bench.example" "$url" >/dev/null 2>&1
    before=$(counts)
    h2load --h1 -n "$REQUESTS" -c 10 -H "Origin: https://bench.example" "$url" >"$WORK/run.txt" 2>&1
    after=$(counts)
    ok=$(grep -Eo '[0-9]+ succeeded' "$WORK/run.txt" | grep -Eo '[0-9]+' | head -1)
    python3 - "$bin" "$REQUESTS" "$ok" "$before" "$after" <<'PY'
import sys
binary, n, ok, before, after = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].split(), sys.argv[5].split()
per = [(int(a) - int(b)) / n for a, b in zip(after, before)]
print(f"{binary}: {ok}/{n} requests, per request: {per[0]:.2f} allocations, {per[1]:.2f} frees, "
      f"{per[2]:.1f} retains, {per[3]:.1f} releases, {per[4]:.1f} exclusivity checks")
PY
    kill "$gateway" "$app" 2>/dev/null || true
    wait "$gateway" "$app" 2>/dev/null || true
done
