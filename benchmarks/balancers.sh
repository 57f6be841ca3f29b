#!/usr/bin/env bash
# Meshgate's load balancers side by side: one cluster of three endpoints (nginx, each serving the
# same 100-byte file on its own port), the gateway with `eventLoops: 1`, and the cluster's
# DestinationRule switched between balancers by reload; per balancer `wrk -t1 -c50 -dD` rounds (each
# request with one of 1000 `x-user` values, the key of the Maglev variant),
# interleaved, with Meshgate's CPU per request (utime + stime from /proc) and how the requests
# spread over the three endpoints (from /stats/prometheus).
#
#   benchmarks/balancers.sh [--rounds N] [--duration S] [--out DIR] BIN
#
# Every process is stopped by PID on exit.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROUNDS=3 DURATION=10 OUT="$HERE/out/balancers" BIN=""
while (($#)); do
    case "$1" in
        --rounds) ROUNDS="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        *) BIN="$1"; shift ;;
    esac
done
[[ -n "$BIN" ]] || { echo "usage: $0 [--rounds N] [--duration S] [--out DIR] BIN" >&2; exit 2; }
for tool in nginx wrk curl python3; do
    command -v "$tool" >/dev/null || { echo "$tool is needed (apt-get install nginx wrk curl python3)" >&2; exit 1; }
done
mkdir -p "$OUT"
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]+"${PIDS[@]}"}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]+"${PIDS[@]}"}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_url() {   # URL TIMEOUT_S
    for _ in $(seq $(($2 * 5))); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.2
    done
    return 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# Three nginx instances, one worker each, serving /file (100 bytes).
head -c 100 /dev/zero | tr '\0' 'x' >"$WORK/file"
chmod 755 "$WORK"   # nginx's workers run as another user
chmod 644 "$WORK/file"
ports=()
for i in 1 2 3; do
    port=$(free_port)
    ports+=("$port")
    mkdir -p "$WORK/nginx$i"
    cat >"$WORK/nginx$i/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx$i/nginx.pid;
error_log $WORK/nginx$i/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx$i;
    proxy_temp_path $WORK/nginx$i;
    fastcgi_temp_path $WORK/nginx$i;
    uwsgi_temp_path $WORK/nginx$i;
    scgi_temp_path $WORK/nginx$i;
    keepalive_requests 1000000;
    server { listen 127.0.0.1:$port; location / { root $WORK; } }
}
CONF
    nginx -c "$WORK/nginx$i/nginx.conf" -p "$WORK/nginx$i" &
    PIDS+=("$!")
    wait_url "http://127.0.0.1:$port/file" 10 || { echo "nginx $i did not start" >&2; exit 1; }
done

http=$(free_port) ready=$(free_port) admin=$(free_port) metrics=$(free_port)
conf="$WORK/conf"
mkdir -p "$conf"
printf 'labels: {istio: ingressgateway}\nbindAddress: 127.0.0.1\nreadinessPort: %s\nadminPort: %s\nmetricsPort: %s\neventLoops: 1\n' \
    "$ready" "$admin" "$metrics" >"$conf/meshgate.yaml"
{
    printf 'apiVersion: v1\nkind: Service\nmetadata: {name: upstream}\nspec: {selector: {app: upstream}, ports: [{name: http, port: 80}]}\n'
    for i in 1 2 3; do
        printf -- '---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: upstream-%s}\n' "$i"
        printf 'spec: {address: 127.0.0.1, labels: {app: upstream, version: v%s}, ports: {http: %s}}\n' "$i" "${ports[$((i - 1))]}"
    done
    printf -- '---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: bench}\nspec:\n  selector: {istio: ingressgateway}\n'
    printf '  servers: [{port: {number: %s, name: http, protocol: HTTP}, hosts: ["*"]}]\n' "$http"
    printf -- '---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: bench}\nspec:\n  hosts: ["*"]\n  gateways: [bench]\n'
    printf '  http:\n  - route: [{destination: {host: upstream}}]\n'
} >"$conf/bench.yaml"
set_balancer() {   # the DestinationRule's loadBalancer (YAML flow map), then a reload
    printf 'apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: upstream}\nspec:\n  host: upstream\n  trafficPolicy:\n    loadBalancer: %s\n' "$1" \
        >"$conf/.dr.tmp"
    mv "$conf/.dr.tmp" "$conf/dr.yaml"
    local generation
    generation=$(curl -fsS "http://127.0.0.1:$admin/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["generation"])')
    kill -HUP "$GATEWAY"
    for _ in $(seq 50); do
        now=$(curl -fsS "http://127.0.0.1:$admin/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["generation"])')
        ((now > generation)) && return 0
        sleep 0.1
    done
    echo "the reload to $1 did not happen" >&2
    exit 1
}
set_balancer_initial() { printf 'apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: upstream}\nspec:\n  host: upstream\n' >"$conf/dr.yaml"; }
set_balancer_initial
"$BIN" gateway --config "$conf" >"$WORK/gateway.log" 2>&1 &
GATEWAY=$!
PIDS+=("$GATEWAY")
wait_url "http://127.0.0.1:$ready/healthz/ready" 60 || { tail -20 "$WORK/gateway.log" >&2; exit 1; }
url="http://127.0.0.1:$http/file"
# Each request with one of 1000 users in x-user (the header the Maglev variant hashes).
cat >"$WORK/users.lua" <<'LUA'
request = function()
    return wrk.format(nil, nil, { ["x-user"] = "user-" .. math.random(1, 1000) })
end
LUA
wrk -t1 -c50 -d2s "$url" >/dev/null

BALANCERS=(
    "ROUND_ROBIN|{simple: ROUND_ROBIN}"
    "RANDOM|{simple: RANDOM}"
    "LEAST_REQUEST|{simple: LEAST_REQUEST}"
    "RING_HASH by source IP|{consistentHash: {useSourceIp: true}}"
    "MAGLEV by header|{consistentHash: {httpHeaderName: x-user, maglev: {}}}"
)
hz=$(getconf CLK_TCK)
results="$OUT/results.tsv"
printf 'round\tbalancer\treq_per_s\tcpu_us_per_req\n' >"$results"
for round in $(seq 1 "$ROUNDS"); do
    for entry in "${BALANCERS[@]}"; do
        name="${entry%%|*}" policy="${entry#*|}"
        set_balancer "$policy"
        wrk -t1 -c50 -d1s -s "$WORK/users.lua" "$url" >/dev/null
        t0=$(cpu_ticks "$GATEWAY")
        wrk -t1 -c50 -d"${DURATION}s" -s "$WORK/users.lua" "$url" >"$WORK/wrk.txt"
        t1=$(cpu_ticks "$GATEWAY")
        python3 - "$round" "$name" "$hz" "$t0" "$t1" "$WORK/wrk.txt" >>"$results" <<'PY'
import re, sys
round_, name, hz, t0, t1, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
text = open(path).read()
requests = int(re.search(r"(\d+) requests in", text).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
print(f"{round_}\t{name}\t{rps:.0f}\t{(t1 - t0) / hz * 1e6 / requests:.1f}")
PY
        echo "round $round/$ROUNDS $name: $(tail -1 "$results" | cut -f3) req/s, $(tail -1 "$results" | cut -f4) µs/req" >&2
    done
done
curl -fsS "http://127.0.0.1:$metrics/stats/prometheus" | grep -E '^istio_requests_total' | sed -E 's/.*destination_version="([^"]+)".* ([0-9.e+]+)$/\1 \2/' >"$OUT/spread.txt" || true
python3 - "$results" <<'PY'
import csv, statistics as st, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
names = list(dict.fromkeys(r["balancer"] for r in rows))
base = st.median(float(r["cpu_us_per_req"]) for r in rows if r["balancer"] == "ROUND_ROBIN")
print("| balancer | req/s (median) | CPU µs/req (median) | CPU vs ROUND_ROBIN |")
print("|---|---|---|---|")
for name in names:
    rps = st.median(float(r["req_per_s"]) for r in rows if r["balancer"] == name)
    cpu = st.median(float(r["cpu_us_per_req"]) for r in rows if r["balancer"] == name)
    print(f"| {name} | {rps:,.0f} | {cpu:.1f} | {100 * (cpu / base - 1):+.1f}% |")
PY
