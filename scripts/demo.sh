#!/usr/bin/env bash
# The demo: starts the sample apps that conf/ routes to, each on its own loopback address
# (127.0.1.x), a mesh CA and a sidecar in front of every app (STRICT mTLS), then the gateway on
# conf/ with auto-mTLS to the sidecars in the foreground, and prints what to try.
# Builds nothing. Ctrl-C (or SIGTERM) drains the gateway; on exit exactly the processes started
# here are stopped, by PID.
#
#   scripts/demo.sh [PATH-TO-MESHGATE]      (default .build/release/meshgate)
#
# Port 80 needs root or CAP_NET_BIND_SERVICE.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${1:-$repo/.build/release/meshgate}
if [[ ! -x $bin ]]; then
    echo "demo: no meshgate binary at $bin (build it with: swift build -c release)" >&2
    exit 1
fi
run_dir=$(mktemp -d "${TMPDIR:-/tmp}/meshgate-demo.XXXXXX")
pid_file=$run_dir/pids

pids=()
gateway_pid=
stop_all() {
    local pid
    if [[ -n $gateway_pid ]] && kill -0 "$gateway_pid" 2>/dev/null; then
        kill -TERM "$gateway_pid" 2>/dev/null || true
        wait "$gateway_pid" 2>/dev/null || true
    fi
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -f "$pid_file"
}
trap stop_all EXIT
# Until the gateway runs, a signal just ends the script (bash runs the EXIT trap only on exit).
trap 'exit 130' INT
trap 'exit 143' TERM

# start_app NAME ARGS...: starts one sample app, logging to $run_dir/NAME.log.
start_app() {
    local name=$1
    shift
    "$bin" sample-app "$@" >"$run_dir/$name.log" 2>&1 &
    pids+=($!)
    echo "$! $name" >>"$pid_file"
}

# wait_listening NAME PID: waits (bounded) for the app's "listening on" line.
wait_listening() {
    local name=$1 pid=$2 deadline=$((SECONDS + 15))
    until grep -q "listening on" "$run_dir/$name.log" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
            echo "demo: sample app $name did not start:" >&2
            cat "$run_dir/$name.log" >&2
            exit 1
        fi
        sleep 0.1
    done
}

# name address service version: the HTTP workloads of conf/bookinfo-services.yaml.
http_apps=(
    "productpage-v1 127.0.1.1 productpage v1"
    "details-v1 127.0.1.2 details v1"
    "reviews-v1 127.0.1.3 reviews v1"
    "reviews-v2 127.0.1.4 reviews v2"
    "reviews-v3 127.0.1.5 reviews v3"
    "ratings-v1 127.0.1.6 ratings v1"
)
for app in "${http_apps[@]}"; do
    read -r name address service version <<<"$app"
    start_app "$name" http --listen "$address:9080" --service "$service" --version "$version"
done
# The TCP workloads of conf/tcp-echo.yaml.
start_app tcp-echo-v1 tcp-echo --listen 127.0.1.10:9000 --prefix one
start_app tcp-echo-v2 tcp-echo --listen 127.0.1.11:9000 --prefix two

while read -r pid name; do
    wait_listening "$name" "$pid"
done <"$pid_file"
echo "demo: sample apps running (PIDs and logs in $run_dir)"

# The mesh: a CA, and a sidecar in front of every app. The gateway runs on a copy of conf/ whose
# WorkloadEntries carry Istio's sidecar label, so auto-mTLS sends them ISTIO_MUTUAL on their
# sidecar's port 15006, and a mesh-wide STRICT PeerAuthentication refuses plain text there.
"$bin" ca init --dir "$run_dir/ca" >/dev/null
mesh_conf=$run_dir/conf
mkdir -p "$mesh_conf"
cp "$repo"/conf/*.yaml "$mesh_conf/"
sed -i 's|^  serviceAccount: |    security.istio.io/tlsMode: istio\n  serviceAccount: |' "$mesh_conf"/*.yaml
cat >"$mesh_conf/mesh-mtls.yaml" <<MESH
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
spec:
  mtls:
    mode: STRICT
MESH
printf 'caDir: %s\n' "$run_dir/ca" >>"$mesh_conf/meshgate.yaml"

# name address service version port account: every workload, as its sidecar sees it.
sidecars=(
    "productpage-v1 127.0.1.1 productpage v1 9080 bookinfo-productpage"
    "details-v1 127.0.1.2 details v1 9080 bookinfo-details"
    "reviews-v1 127.0.1.3 reviews v1 9080 bookinfo-reviews"
    "reviews-v2 127.0.1.4 reviews v2 9080 bookinfo-reviews"
    "reviews-v3 127.0.1.5 reviews v3 9080 bookinfo-reviews"
    "ratings-v1 127.0.1.6 ratings v1 9080 bookinfo-ratings"
    "tcp-echo-v1 127.0.1.10 tcp-echo v1 9000 tcp-echo"
    "tcp-echo-v2 127.0.1.11 tcp-echo v2 9000 tcp-echo"
)
index=0
for sidecar in "${sidecars[@]}"; do
    read -r name address service version port account <<<"$sidecar"
    dir=$run_dir/sidecars/$name
    mkdir -p "$dir"
    find "$mesh_conf" -maxdepth 1 -name '*.yaml' ! -name meshgate.yaml -exec cp {} "$dir/" \;
    # Readiness and metrics move off 15021/15090, which the gateway holds on every address.
    cat >"$dir/meshgate.yaml" <<SIDECAR
workload: {name: $name, namespace: default, serviceAccount: $account, address: $address, labels: {app: $service, version: $version}}
appPorts: {$port: $port}
caDir: $run_dir/ca
readinessPort: 15020
metricsPort: 15091
adminPort: $((15100 + index))
SIDECAR
    "$bin" sidecar --config "$dir" >"$run_dir/sidecar-$name.log" 2>&1 &
    pids+=($!)
    echo "$! sidecar-$name" >>"$pid_file"
    index=$((index + 1))
done
for sidecar in "${sidecars[@]}"; do
    read -r name address _ <<<"$sidecar"
    deadline=$((SECONDS + 30))
    until curl -fsS -o /dev/null "http://$address:15020/healthz/ready" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            echo "demo: sidecar $name did not become ready:" >&2
            cat "$run_dir/sidecar-$name.log" >&2
            exit 1
        fi
        sleep 0.1
    done
done
echo "demo: ${#sidecars[@]} sidecars ready (mTLS STRICT; configs in $run_dir/sidecars)"

"$bin" gateway --config "$mesh_conf" &
gateway_pid=$!
# A backgrounded command ignores Ctrl-C in a script, so forward it: TERM drains the gateway.
trap 'kill -TERM "$gateway_pid" 2>/dev/null || true' INT TERM

deadline=$((SECONDS + 30))
until curl -fsS -o /dev/null "http://127.0.0.1:15021/healthz/ready" 2>/dev/null; do
    if ! kill -0 "$gateway_pid" 2>/dev/null || ((SECONDS >= deadline)); then
        echo "demo: the gateway did not become ready" >&2
        break
    fi
    sleep 0.2
done

cat <<'EOF'

Meshgate is serving conf/ as a mesh: gateway → sidecar (mTLS) → app. Try:

  curl -s localhost/productpage -i                            # gateway → productpage's sidecar (mTLS) → app
  curl -s -H 'Host: reviews' 127.0.1.1:15001/reviews/1 -i     # productpage's sidecar → reviews (mesh mTLS)
  curl -s 127.0.1.3:15006/ ; echo "exit $?"                   # plain text to a sidecar: refused (STRICT)

  curl -s localhost/productpage                       # productpage v1
  curl -s -H 'end-user: jason' localhost/reviews/1 -i  # reviews v2 (x-version: v2)
  curl -s localhost/reviews/1                         # reviews v1 or v3, half and half
  curl -s localhost/ratings/7                         # ratings v1
  curl -s localhost/nothing-here -i                   # 404, x-meshgate-response-flags: NR
  echo hello | nc -q1 localhost 31400                 # "one hello" 80%, "two hello" 20%
  curl localhost:15021/healthz/ready                  # readiness
  curl 127.0.0.1:15000/status                         # generation, last reload, listeners
  kill -HUP <gateway PID>                             # reload conf/

Ctrl-C stops the demo.
EOF
echo "(gateway PID $gateway_pid)"

# Wait for the gateway; a trapped signal interrupts `wait`, so wait again until it has exited.
status=0
while true; do
    wait "$gateway_pid" && status=0 || status=$?
    kill -0 "$gateway_pid" 2>/dev/null || break
done
gateway_pid=
exit "$status"
