#!/usr/bin/env bash
# Regex DoS: normal traffic through Meshgate with and without clients sending header values crafted
# against a route regex `(x+x+)+y` (catastrophic for a backtracking engine). Target: normal traffic
# keeps >= 0.9x its rate while the attack runs. 127.0.0.1 only; about 25 s per round.
#
#   benchmarks/regex-dos.sh [options]
#
#   --meshgate-bin PATH   the binary (default: $MESHGATE_BIN, else .build/release/meshgate)
#   --rounds N            interleaved rounds, each one run without and one with the attack (default 2)
#   --duration S          seconds per normal-traffic run (default 8)
#   --connections N       wrk connections of normal traffic (default 50)
#   --attackers N         attacking connections, each a closed loop of crafted requests (default 4)
#   --attack-rps R        instead: each attacking connection sends R requests per second (h2load
#                         --h1 --rps), so the attack's volume is fixed and only its cost shows
#   --event-loops N       Meshgate eventLoops (default 2)
#
# Prints one line per run and the medians. Every process it starts is stopped by PID on exit.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
BIN="${MESHGATE_BIN:-$REPO/.build/release/meshgate}"
ROUNDS=2
DURATION=8
CONNECTIONS=50
ATTACKERS=4
ATTACK_RPS=""
EVENT_LOOPS=2
# A run of x's, then a y that is not the end: a backtracking engine tries every split of the run.
CRAFTED="$(printf 'x%.0s' {1..30})yy"

die() { echo "regex-dos.sh: $*" >&2; exit 1; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --meshgate-bin) BIN="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --duration) DURATION="$2"; shift 2 ;;
        --connections) CONNECTIONS="$2"; shift 2 ;;
        --attackers) ATTACKERS="$2"; shift 2 ;;
        --attack-rps) ATTACK_RPS="$2"; shift 2 ;;
        --event-loops) EVENT_LOOPS="$2"; shift 2 ;;
        *) die "unknown option $1 (see the header of this script)" ;;
    esac
done
[[ -x "$BIN" ]] || die "no meshgate binary at $BIN (swift build -c release --product meshgate)"
command -v wrk >/dev/null || die "needs wrk (apt-get install wrk)"
[[ -z "$ATTACK_RPS" ]] || command -v h2load >/dev/null || die "--attack-rps needs h2load (apt-get install nghttp2-client)"

WORK="$(mktemp -d /tmp/meshgate-regex-dos.XXXXXX)"
PIDS=()
stop_all() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap stop_all EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() {   # WHAT SECONDS COMMAND...
    local what="$1" limit="$2"; shift 2
    for _ in $(seq $((limit * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    die "timed out waiting for $what"
}

app() {   # SERVICE ADDRESS: starts a sample app, prints its port
    "$BIN" sample-app http --listen "$2:0" --service "$1" --version v1 >"$WORK/$1.log" 2>&1 &
    PIDS+=($!)
    wait_for "$1 to listen" 15 grep -q "listening on" "$WORK/$1.log"
    sed -nE 's/.*listening on [^ ]+:([0-9]+).*/\1/p' "$WORK/$1.log" | head -1
}
declare_service() {   # SERVICE ADDRESS PORT
    cat <<YAML
apiVersion: v1
kind: Service
metadata: {name: $1}
spec:
  ports: [{port: 9080, name: http}]
  selector: {app: $1}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: $1-v1}
spec:
  address: $2
  ports: {http: $3}
  labels: {app: $1, version: v1}
---
YAML
}

GUARDED_PORT="$(app guarded 127.0.9.1)"
NORMAL_PORT="$(app normal 127.0.9.2)"
PORT="$(free_port)" READY="$(free_port)" ADMIN="$(free_port)" METRICS="$(free_port)"
mkdir -p "$WORK/conf"
cat >"$WORK/conf/meshgate.yaml" <<YAML
labels: {istio: ingressgateway}
bindAddress: 127.0.0.1
readinessPort: $READY
adminPort: $ADMIN
metricsPort: $METRICS
eventLoops: $EVENT_LOOPS
YAML
{
    declare_service guarded 127.0.9.1 "$GUARDED_PORT"
    declare_service normal 127.0.9.2 "$NORMAL_PORT"
    cat <<YAML
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: $PORT, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: regex-dos}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - match:
    - headers:
        x-token: {regex: "(x+x+)+y"}
    route:
    - destination: {host: guarded, port: {number: 9080}}
  - match:
    - uri: {prefix: /normal}
    route:
    - destination: {host: normal, port: {number: 9080}}
YAML
} >"$WORK/conf/routes.yaml"
"$BIN" gateway --config "$WORK/conf" >"$WORK/gateway.log" 2>&1 &
GATEWAY_PID=$!
PIDS+=($GATEWAY_PID)
wait_for "gateway readiness" 30 curl -fsS "http://127.0.0.1:$READY/healthz/ready"
curl -fsS -o /dev/null "http://127.0.0.1:$PORT/normal/warm" || die "normal route does not answer"

rate() {   # wrk's Requests/sec, or h2load's "finished in …, N req/s"
    sed -nE -e 's/^Requests\/sec:[[:space:]]+([0-9.]+).*/\1/p' -e 's/^finished in .*, ([0-9.]+) req\/s.*/\1/p' "$1"
}
normal_run() {   # LOG
    timeout $((DURATION + 30)) wrk -t1 "-c$CONNECTIONS" "-d${DURATION}s" "http://127.0.0.1:$PORT/normal/x" >"$1"
}
median() { sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

echo "meshgate: $BIN ($("$BIN" --version 2>/dev/null || echo '?')), eventLoops $EVENT_LOOPS, $(nproc) cores"
echo "normal: wrk -t1 -c$CONNECTIONS -d${DURATION}s GET /normal/x; attack: ${ATTACK_RPS:+h2load --rps $ATTACK_RPS }-c$ATTACKERS GET /attack with x-token: $CRAFTED"
# Each round: normal traffic alone; with the attack; with the same attacking connections sending a
# harmless value (the control: what the extra requests cost, whatever the regex).
attack_run() {   # ROUND KIND VALUE: normal traffic while attackers send VALUE; prints "normal attack"
    if [[ -n "$ATTACK_RPS" ]]; then
        timeout $((DURATION + 40)) h2load --h1 -t1 "-c$ATTACKERS" "--rps=$ATTACK_RPS" "-D$((DURATION + 2))" \
            -H "x-token: $3" "http://127.0.0.1:$PORT/attack" >"$WORK/$2-attack-$1.log" &
    else
        timeout $((DURATION + 40)) wrk -t1 "-c$ATTACKERS" "-d$((DURATION + 2))s" -H "x-token: $3" \
            "http://127.0.0.1:$PORT/attack" >"$WORK/$2-attack-$1.log" &
    fi
    local attack_pid=$!
    sleep 1   # the attack is under way before normal traffic is measured
    normal_run "$WORK/$2-$1.log"
    wait "$attack_pid" || true
    echo "$(rate "$WORK/$2-$1.log") $(rate "$WORK/$2-attack-$1.log")"
}
: >"$WORK/base"; : >"$WORK/under"; : >"$WORK/control"
for round in $(seq "$ROUNDS"); do
    normal_run "$WORK/base-$round.log"
    base="$(rate "$WORK/base-$round.log")"
    read -r under attack < <(attack_run "$round" crafted "$CRAFTED")
    read -r control benign < <(attack_run "$round" benign "harmless")
    echo "round $round: normal $base req/s alone; $under under attack (attackers answered $attack req/s, 404 NR);" \
        "$control beside the same connections sending a harmless value ($benign req/s)"
    echo "$base" >>"$WORK/base"; echo "$under" >>"$WORK/under"; echo "$control" >>"$WORK/control"
    grep -hE 'Socket errors|Non-2xx' "$WORK/base-$round.log" "$WORK/crafted-$round.log" "$WORK/benign-$round.log" || true
done
base="$(median <"$WORK/base")" under="$(median <"$WORK/under")" control="$(median <"$WORK/control")"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
echo "median: normal $base req/s alone, $under under attack ($(ratio "$under" "$base")x; target >= 0.9x)," \
    "$control beside harmless requests of the same volume ($(ratio "$control" "$base")x);" \
    "attack vs harmless: $(ratio "$under" "$control")x"
