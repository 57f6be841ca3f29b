#!/usr/bin/env bash
# The mesh benchmark (issue 4): client → gateway → sidecar → app, with mTLS between the gateway and
# the sidecar (auto-mTLS, STRICT) against the same chain in plain text (DestinationRule tls DISABLE,
# PERMISSIVE). Interleaved rounds (mTLS, plain, mTLS, plain, ...); reports req/s and the CPU the two
# proxies used per request (from /proc/PID/stat, user + system), and the ratio.
#
#   benchmarks/mesh.sh [--rounds N] [--requests N] [--bin PATH]
#
# Loopback only, bounded: each round is one h2load run of --requests requests (keep-alive HTTP/1.1,
# 16 connections). Stops exactly the processes it started.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$repo/.build/release/meshgate
rounds=3
requests=30000
while (($#)); do
    case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --requests) requests=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    *) echo "usage: $0 [--rounds N] [--requests N] [--bin PATH]" >&2; exit 2 ;;
    esac
done
command -v h2load >/dev/null || { echo "mesh.sh: needs h2load (apt-get install nghttp2-client)" >&2; exit 1; }
[[ -x $bin ]] || { echo "mesh.sh: no binary at $bin (swift build -c release)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/meshgate-mesh-bench.XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

wait_ready() {  # URL
    local deadline=$((SECONDS + 30))
    until curl -fsS -o /dev/null "$1" 2>/dev/null; do
        ((SECONDS < deadline)) || { echo "mesh.sh: $1 never became ready" >&2; exit 1; }
        sleep 0.1
    done
}

"$bin" ca init --dir "$work/ca" >/dev/null
app=127.0.3.10
"$bin" sample-app http --listen "$app:9080" --service httpbin >"$work/app.log" 2>&1 &
pids+=($!)

services="apiVersion: v1
kind: Service
metadata: {name: httpbin}
spec:
  ports: [{port: 8000, name: http, targetPort: 9080}]
  selector: {app: httpbin}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: httpbin-v1}
spec:
  address: $app
  labels: {app: httpbin, version: v1, security.istio.io/tlsMode: istio}
  serviceAccount: httpbin"

mkdir -p "$work/sidecar"
printf '%s\n' "$services" >"$work/sidecar/services.yaml"
cat >"$work/sidecar/meshgate.yaml" <<EOF
workload: {name: httpbin-v1, namespace: default, serviceAccount: httpbin, address: $app, labels: {app: httpbin}}
appPorts: {8000: 9080}
caDir: $work/ca
readinessPort: 15020
metricsPort: 15091
adminPort: 15190
eventLoops: 1
EOF
"$bin" sidecar --config "$work/sidecar" >"$work/sidecar.log" 2>&1 &
sidecar=$!
pids+=($sidecar)

# Two gateways, one per chain, on their own ports: mTLS (auto) and plain (tls DISABLE).
start_gateway() {  # NAME PORT EXTRA-YAML
    local dir=$work/$1
    mkdir -p "$dir"
    printf '%s\n' "$services" >"$dir/services.yaml"
    cat >"$dir/meshgate.yaml" <<EOF
bindAddress: 127.0.0.1
readinessPort: $(($2 + 1))
adminPort: $(($2 + 2))
metricsPort: $(($2 + 3))
caDir: $work/ca
eventLoops: 1
EOF
    cat >"$dir/routes.yaml" <<EOF
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: $2, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin}
spec:
  hosts: ["*"]
  gateways: [istio-system/gw]
  http: [{route: [{destination: {host: httpbin, port: {number: 8000}}}]}]
$3
EOF
    "$bin" gateway --config "$dir" >"$work/$1.log" 2>&1 &
    pids+=($!)
    echo $! >"$work/$1.pid"
    wait_ready "http://127.0.0.1:$(($2 + 1))/healthz/ready"
}
start_gateway mtls 18100 ""
start_gateway plain 18200 "---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: httpbin}
spec:
  host: httpbin
  trafficPolicy: {tls: {mode: DISABLE}}"
# The plain chain needs PERMISSIVE at the sidecar (the default: no PeerAuthentication).
wait_ready "http://$app:15020/healthz/ready"

cpu_ticks() {  # PID → utime + stime in clock ticks
    awk '{print $14 + $15}' "/proc/$1/stat"
}
hz=$(getconf CLK_TCK)

declare -A rates cpus
for ((round = 1; round <= rounds; round++)); do
    for chain in mtls plain; do
        port=18100
        [[ $chain == plain ]] && port=18200
        gateway=$(cat "$work/$chain.pid")
        before=$(($(cpu_ticks "$gateway") + $(cpu_ticks "$sidecar")))
        out=$(h2load --h1 -n "$requests" -c 16 -m 1 "http://127.0.0.1:$port/status/200" 2>&1)
        after=$(($(cpu_ticks "$gateway") + $(cpu_ticks "$sidecar")))
        rate=$(sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' <<<"$out")
        ok=$(sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p' <<<"$out")
        [[ $ok == "$requests" ]] || { echo "mesh.sh: $chain round $round: only $ok of $requests succeeded" >&2; echo "$out" >&2; exit 1; }
        us=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$requests" 'BEGIN { printf "%.1f", t / hz / n * 1e6 }')
        rates[$chain]+="$rate "
        cpus[$chain]+="$us "
        echo "round $round $chain: $rate req/s, $us µs proxy CPU per request (gateway + sidecar)"
    done
done

median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
m_rate=$(median "${rates[mtls]}") p_rate=$(median "${rates[plain]}")
m_cpu=$(median "${cpus[mtls]}") p_cpu=$(median "${cpus[plain]}")
echo
echo "| chain (keep-alive, 16 connections) | req/s median | proxy CPU µs/req (gateway + sidecar) | vCPU per 1000 req/s |"
echo "|---|---|---|---|"
for chain in mtls plain; do
    r=$(median "${rates[$chain]}") c=$(median "${cpus[$chain]}")
    echo "| $chain | $r | $c | $(awk -v c="$c" 'BEGIN { printf "%.3f", c / 1000 }') |"
done
echo
awk -v m="$m_rate" -v p="$p_rate" 'BEGIN { printf "mTLS throughput = %.2f× plain (cost %.0f%%)\n", m / p, (1 - m / p) * 100 }'
