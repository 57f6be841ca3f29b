#!/usr/bin/env bash
# Meshgate side by side with HAProxy 2.6 and nginx 1.22, in front of the same upstreams, on
# 127.0.0.1 only. See benchmarks/README.md for the method.
#
#   benchmarks/run.sh [options]
#
#   --rounds N            interleaved rounds (default 3)
#   --duration S          seconds per HTTP run (default 10)
#   --tcp-duration S      seconds per TCP run (default 10)
#   --tls-duration S      seconds per h2load run in the https and h2 scenarios (default 10)
#   --handshakes N        connections (= requests) per handshake run (default 1000 x --tls-duration)
#   --warmup S            HTTP warm-up per target before round 1, 0 = none (default 2)
#   --connections N       wrk connections (default 50)
#   --only LIST           targets, comma-separated, from: direct,haproxy,nginx,meshgate
#                         (default: all four)
#   --scenarios LIST      from http,tcp,https,h2,telemetry (default: http,tcp)
#                         https: HTTPS keep-alive and full handshakes (h2load --h1); h2: HTTP/2
#                         (h2load -c16 -m100); both TLS-terminated by nginx, HAProxy and each
#                         Meshgate variant with one ECDSA P-256 certificate made for the run.
#                         telemetry: the HTTP keep-alive run against Meshgate with metrics
#                         disabled by a Telemetry resource, default, access log on, and default
#                         with a 1 s scrape loop of /stats/prometheus (eventLoops: the first of
#                         --event-loops)
#                         policy: the HTTP keep-alive run (with an Origin header) against three
#                         Meshgate instances: the bench route as is (Istio's default retry
#                         policy), the same route with retries, a corsPolicy allowing the
#                         origin and a 1% mirror to the upstream, and the bench route under 10
#                         AuthorizationPolicies of 10 rules each (only the last rule of the last
#                         policy matches: every rule is walked) and a RequestAuthentication
#                         verifying the ES256 JWT every variant's requests carry, and that
#                         RequestAuthentication alone
#   --event-loops LIST    Meshgate eventLoops variants (default 1,2)
#   --meshgate-bin PATH   the binary (default: $MESHGATE_BIN, else .build/release/meshgate,
#                         else .build-bench/release/meshgate, else built into .build-bench
#                         from a `git archive` of HEAD)
#   --rebuild             build Meshgate into .build-bench even when a binary exists
#   --base-port P         first of the ports used, P..P+83 (default 18000)
#   --out DIR             where results go (default benchmarks/out)
#   --perf                after the rounds, one more HTTP run per Meshgate variant under
#                         `perf record -g`; the profile summary is appended to the report
#
# Every server and proxy this script starts is recorded by PID and stopped by that PID on exit
# (TERM, then KILL after a bounded wait). Every load run is bounded by `timeout`.

set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
BENCH_PY=(python3 "$HERE/lib/bench.py")

ROUNDS=3
HTTP_DURATION=10
TCP_DURATION=10
TLS_DURATION=10
HANDSHAKES=""
WARMUP=2
CONNECTIONS=50
ONLY="direct,haproxy,nginx,meshgate"
SCENARIOS="http,tcp"
EVENT_LOOPS="1,2"
MESHGATE_BIN="${MESHGATE_BIN:-}"
REBUILD=0
PERF=0
# Frame-pointer call graphs stop at libswiftCore (built without frame pointers); set
# PERF_RECORD_OPTS="-F 499 --call-graph dwarf,32768" to see who calls swift_retain/release.
PERF_RECORD_OPTS="${PERF_RECORD_OPTS:--F 999 -g}"
BASE_PORT=18000
OUT_DIR="$HERE/out"
INVOCATION="benchmarks/run.sh $*"

die() { echo "run.sh: $*" >&2; exit 1; }
say() { echo "==> $*" >&2; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift 2 ;;
        --duration) HTTP_DURATION="$2"; shift 2 ;;
        --tcp-duration) TCP_DURATION="$2"; shift 2 ;;
        --tls-duration) TLS_DURATION="$2"; shift 2 ;;
        --handshakes) HANDSHAKES="$2"; shift 2 ;;
        --warmup) WARMUP="$2"; shift 2 ;;
        --connections) CONNECTIONS="$2"; shift 2 ;;
        --only) ONLY="$2"; shift 2 ;;
        --scenarios) SCENARIOS="$2"; shift 2 ;;
        --event-loops) EVENT_LOOPS="$2"; shift 2 ;;
        --meshgate-bin) MESHGATE_BIN="$2"; shift 2 ;;
        --rebuild) REBUILD=1; shift ;;
        --perf) PERF=1; shift ;;
        --base-port) BASE_PORT="$2"; shift 2 ;;
        --out) OUT_DIR="$2"; shift 2 ;;
        -h|--help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done

for n in "$ROUNDS" "$HTTP_DURATION" "$TCP_DURATION" "$TLS_DURATION" "$WARMUP" "$CONNECTIONS" "$BASE_PORT"; do
    [[ "$n" =~ ^[0-9]+$ ]] || die "not a number: $n"
done
HANDSHAKES="${HANDSHAKES:-$((1000 * TLS_DURATION))}"
[[ "$HANDSHAKES" =~ ^[1-9][0-9]*$ ]] || die "not a positive number: $HANDSHAKES"
((ROUNDS >= 1 && HTTP_DURATION >= 1 && TCP_DURATION >= 1 && TLS_DURATION >= 1)) || die "rounds and durations must be >= 1"

has() { [[ ",$1," == *",$2,"* ]]; }
for t in ${ONLY//,/ }; do
    case "$t" in direct|haproxy|nginx|meshgate) ;; *) die "unknown target '$t' in --only" ;; esac
done
for s in ${SCENARIOS//,/ }; do
    case "$s" in http|tcp|https|h2|telemetry|policy) ;; *) die "unknown scenario '$s' in --scenarios" ;; esac
done
IFS=, read -r -a LOOPS <<<"$EVENT_LOOPS"
((${#LOOPS[@]} >= 1 && ${#LOOPS[@]} <= 4)) || die "--event-loops takes 1 to 4 values"
for l in "${LOOPS[@]}"; do [[ "$l" =~ ^[1-9][0-9]*$ ]] || die "bad event loop count '$l'"; done

# ------------------------------------------------------------------------------------------------
# Ports (all on 127.0.0.1)
UPSTREAM_PORT=$((BASE_PORT + 0))      # nginx serving the 100-byte file
HAPROXY_HTTP_PORT=$((BASE_PORT + 1))
NGINX_HTTP_PORT=$((BASE_PORT + 2))
IPERF_PORT=$((BASE_PORT + 10))        # iperf3 -s
HAPROXY_TCP_PORT=$((BASE_PORT + 11))
HAPROXY_TCP256_PORT=$((BASE_PORT + 12))
NGINX_TCP_PORT=$((BASE_PORT + 13))
mg_http_port() { echo $((BASE_PORT + 3 + $1)); }    # $1 = variant index 0..3
mg_tcp_port() { echo $((BASE_PORT + 14 + $1)); }
mg_admin_port() { echo $((BASE_PORT + 20 + 2 * $1)); }
mg_ready_port() { echo $((BASE_PORT + 21 + 2 * $1)); }
mg_metrics_port() { echo $((BASE_PORT + 28 + $1)); }
NGINX_TLS_PORT=$((BASE_PORT + 32))
HAPROXY_TLS_PORT=$((BASE_PORT + 33))
mg_tls_port() { echo $((BASE_PORT + 34 + $1)); }    # $1 = variant index 0..3
# The telemetry scenario's Meshgate instances, $1 = 0..3 (metrics-off, metrics, accesslog; the
# scrape variant is the metrics instance under a scrape loop).
mgt_http_port() { echo $((BASE_PORT + 40 + $1)); }
mgt_tcp_port() { echo $((BASE_PORT + 44 + $1)); }
mgt_admin_port() { echo $((BASE_PORT + 48 + $1)); }
mgt_ready_port() { echo $((BASE_PORT + 52 + $1)); }
mgt_metrics_port() { echo $((BASE_PORT + 56 + $1)); }
# The policy scenario's Meshgate instances, $1 = 0 (plain), 1 (policies), 2 (authz), 3 (jwt).
mgp_port() { echo $((BASE_PORT + 64 + 5 * $1 + $2)); }   # $2: 0 http, 1 tcp, 2 admin, 3 ready, 4 metrics
TLS=0
{ has "$SCENARIOS" https || has "$SCENARIOS" h2; } && TLS=1
# The upstream nginx serves the HTTP, TLS and telemetry scenarios.
UPSTREAM=0
{ has "$SCENARIOS" http || ((TLS)) || has "$SCENARIOS" telemetry || has "$SCENARIOS" policy; } && UPSTREAM=1

# ------------------------------------------------------------------------------------------------
# Dependencies: install what is missing (Debian packages), as root.
need_pkgs=()
need() { command -v "$1" >/dev/null 2>&1 || need_pkgs+=("$2"); }
need python3 python3
need timeout coreutils
need curl curl
if has "$SCENARIOS" http || has "$SCENARIOS" telemetry || has "$SCENARIOS" policy; then need wrk wrk; fi
if ((UPSTREAM)); then need nginx nginx-light; fi
if ((TLS)); then need h2load nghttp2-client; need openssl openssl; fi
if has "$SCENARIOS" tcp; then need iperf3 iperf3; fi
if has "$ONLY" haproxy; then need haproxy haproxy; fi
if has "$ONLY" nginx; then need nginx nginx-light; fi
if ((PERF)); then need perf linux-perf; fi
STREAM_MODULE=/usr/lib/nginx/modules/ngx_stream_module.so
if has "$SCENARIOS" tcp && has "$ONLY" nginx && [[ ! -f "$STREAM_MODULE" ]]; then
    need_pkgs+=(libnginx-mod-stream)   # nginx-light has no stream {} built in
fi
if ((${#need_pkgs[@]} > 0)); then
    mapfile -t need_pkgs < <(printf '%s\n' "${need_pkgs[@]}" | sort -u)
    [[ $EUID -eq 0 ]] || die "missing packages: ${need_pkgs[*]} (run as root to install them)"
    say "installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    timeout 600 apt-get update -qq || true
    timeout 900 apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

NOTES=()
NGINX_TCP=1
if has "$SCENARIOS" tcp && has "$ONLY" nginx && [[ ! -f "$STREAM_MODULE" ]]; then
    NGINX_TCP=0
    NOTES+=("nginx TCP skipped: $STREAM_MODULE is missing (libnginx-mod-stream)")
    say "nginx has no stream module here; skipping nginx for TCP"
fi

# ------------------------------------------------------------------------------------------------
# The Meshgate binary.
MESHGATE_COMMIT=""
if has "$ONLY" meshgate; then
    if [[ -z "$MESHGATE_BIN" || $REBUILD -eq 1 ]]; then
        if [[ $REBUILD -eq 0 && -x "$REPO/.build/release/meshgate" ]]; then
            MESHGATE_BIN="$REPO/.build/release/meshgate"
        elif [[ $REBUILD -eq 0 && -x "$REPO/.build-bench/release/meshgate" ]]; then
            MESHGATE_BIN="$REPO/.build-bench/release/meshgate"
        else
            # Built from a `git archive` of HEAD, not from the work tree: other developers edit
            # and commit in the same tree while a release build runs for minutes, and a binary
            # mixing two states of the sources would be measured as neither. Its own scratch path,
            # so a benchmark build never waits on (or takes) the lock of a developer's .build.
            # (To measure uncommitted changes, build them yourself and pass --meshgate-bin.)
            commit="$(git -C "$REPO" rev-parse --short HEAD)"
            src="$REPO/.build-bench-src"
            say "building meshgate (release) from commit $commit into .build-bench"
            rm -rf "$src"
            mkdir -p "$src" "$REPO/.build-bench"
            rm -f "$REPO/.build-bench/meshgate-source.txt"
            git -C "$REPO" archive "$commit" | tar -x -C "$src"
            # The dependency versions the developers' builds resolved, when there are any.
            if [[ -f "$REPO/Package.resolved" ]]; then cp "$REPO/Package.resolved" "$src/"; fi
            (cd "$src" && timeout 2700 swift build -c release --product meshgate --scratch-path "$REPO/.build-bench") \
                || die "swift build failed"
            MESHGATE_BIN="$(cd "$src" && swift build -c release --scratch-path "$REPO/.build-bench" --show-bin-path)/meshgate"
            # What it was built from, for this and later runs that reuse it.
            echo "commit $commit of $REPO (git archive: committed sources only)" \
                >"$REPO/.build-bench/meshgate-source.txt"
        fi
    fi
    [[ -x "$MESHGATE_BIN" ]] || die "no Meshgate binary at '$MESHGATE_BIN'"
    if [[ "$MESHGATE_BIN" == */debug/* ]]; then
        NOTES+=("Meshgate is a DEBUG build ($MESHGATE_BIN): its figures say nothing about performance")
        say "warning: $MESHGATE_BIN looks like a debug build; measure release builds only"
    fi
    # The source the binary was built from: the git work tree that holds it (a binary outside any
    # work tree is described by its build time only).
    bin_dir="$(dirname "$(readlink -f "$MESHGATE_BIN")")"
    if [[ "$(readlink -f "$MESHGATE_BIN")" == "$(readlink -f "$REPO/.build-bench")"/* \
        && -s "$REPO/.build-bench/meshgate-source.txt" ]]; then
        MESHGATE_COMMIT="$(cat "$REPO/.build-bench/meshgate-source.txt")"
    elif src_root="$(git -C "$bin_dir" rev-parse --show-toplevel 2>/dev/null)"; then
        MESHGATE_COMMIT="commit $(git -C "$src_root" rev-parse --short HEAD) in $src_root (HEAD at run time)"
        if [[ -n "$(git -C "$src_root" status --porcelain -- Sources Package.swift 2>/dev/null)" ]]; then
            MESHGATE_COMMIT+=" plus uncommitted changes under Sources/"
        fi
    else
        MESHGATE_COMMIT="not in a git work tree"
    fi
    MESHGATE_COMMIT+="; binary built $(date -r "$MESHGATE_BIN" '+%Y-%m-%d %H:%M %Z')"
fi

# ------------------------------------------------------------------------------------------------
# Run directory, process bookkeeping and cleanup.
RUN_ID="$(date +%Y%m%d-%H%M%S)"
RUN_DIR="$OUT_DIR/$RUN_ID"
WORK="$RUN_DIR/work"
mkdir -p "$WORK"/{conf,run,tmp,www,logs} "$RUN_DIR/logs"
RUN_DIR="$(cd "$RUN_DIR" && pwd)"
WORK="$RUN_DIR/work"

PIDS=()
PNAMES=()

# running PID: the process exists and is not a zombie waiting to be reaped.
running() {
    local s
    s="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    s="${s##*) }"
    [[ "${s%% *}" != Z ]]
}

stop_all() {
    local i pid deadline kids=()
    ((${#PIDS[@]} == 0)) && return 0
    # Note the children (nginx workers) first, so none is left behind if its master dies hard.
    for pid in "${PIDS[@]}"; do
        while read -r k; do [[ -n "$k" ]] && kids+=("$k"); done < <(pgrep -P "$pid" 2>/dev/null || true)
    done
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        kill -TERM "${PIDS[$i]}" 2>/dev/null || true
    done
    deadline=$((SECONDS + 15))
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        pid="${PIDS[$i]}"
        while running "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
        if running "$pid"; then
            echo "run.sh: ${PNAMES[$i]} (pid $pid) still running 15 s after TERM; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    for pid in "${kids[@]}"; do
        if running "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    done
    PIDS=()
    PNAMES=()
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# start NAME CMD...: run CMD in the background with its output in work/logs/NAME.log.
start() {
    local name="$1"; shift
    "$@" >"$WORK/logs/$name.log" 2>&1 &
    PIDS+=($!)
    PNAMES+=("$name")
    LAST_PID=$!
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {   # NAME PORT PID
    "${BENCH_PY[@]}" wait-tcp --port "$2" --pid "$3" --timeout 15 || {
        tail -n 20 "$WORK/logs/$1.log" >&2 || true
        die "$1 did not start listening on 127.0.0.1:$2"
    }
}

# render TEMPLATE OUTPUT KEY=VALUE...
render() {
    local tmpl="$1" out="$2" kv sed_args=(); shift 2
    for kv in "$@"; do sed_args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
    sed "${sed_args[@]}" "$tmpl" >"$out"
    if grep -q '@[A-Z_0-9]*@' "$out"; then die "unfilled placeholder in $out"; fi
}

USER_LINE=""
[[ $EUID -eq 0 ]] && USER_LINE="user root root;"   # workers must read work/www
COMMON=(UPSTREAM_PORT="$UPSTREAM_PORT" IPERF_PORT="$IPERF_PORT" USER="$USER_LINE")

# Every port we are about to use must be free: we measure only processes we started.
ports=()
((UPSTREAM)) && ports+=("$UPSTREAM_PORT")
has "$SCENARIOS" http && ports+=("$HAPROXY_HTTP_PORT" "$NGINX_HTTP_PORT")
((TLS)) && ports+=("$NGINX_TLS_PORT" "$HAPROXY_TLS_PORT")
has "$SCENARIOS" tcp && ports+=("$IPERF_PORT" "$HAPROXY_TCP_PORT" "$HAPROXY_TCP256_PORT" "$NGINX_TCP_PORT")
if has "$ONLY" meshgate; then
    for ((i = 0; i < ${#LOOPS[@]}; i++)); do
        ports+=("$(mg_http_port $i)" "$(mg_tcp_port $i)" "$(mg_admin_port $i)" "$(mg_ready_port $i)"
            "$(mg_metrics_port $i)")
        ((TLS)) && ports+=("$(mg_tls_port $i)")
    done
    if has "$SCENARIOS" telemetry; then
        for ((j = 0; j < 3; j++)); do
            ports+=("$(mgt_http_port $j)" "$(mgt_tcp_port $j)" "$(mgt_admin_port $j)" "$(mgt_ready_port $j)"
                "$(mgt_metrics_port $j)")
        done
    fi
fi
for p in "${ports[@]}"; do
    if port_busy "$p"; then die "127.0.0.1:$p is already in use (pick another --base-port)"; fi
done

TARGETS="$RUN_DIR/targets.tsv"
: >"$TARGETS"
add_target() {   # SCENARIO NAME KIND PORT PID LABEL [EXTRA]
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$6" "${7:-}" >>"$TARGETS"
}
# add_tls_targets NAME KIND PORT PID LABEL: the same TLS listener in each TLS scenario.
add_tls_targets() {
    if has "$SCENARIOS" https; then
        add_target https "$@"
        add_target handshake "$@"
    fi
    if has "$SCENARIOS" h2; then add_target h2 "$@"; fi
}

# ------------------------------------------------------------------------------------------------
# TLS material: a CA and a server certificate (ECDSA P-256, SANs localhost and 127.0.0.1), made
# for this run; nginx, HAProxy and Meshgate all serve this one certificate.
TLS_DIR="$WORK/tls"
if ((TLS)); then
    mkdir -p "$TLS_DIR"
    (
        cd "$TLS_DIR"
        openssl ecparam -name prime256v1 -genkey -noout -out ca-key.pem
        openssl req -x509 -new -key ca-key.pem -sha256 -days 2 -subj "/CN=Meshgate bench CA" -out ca.pem
        openssl ecparam -name prime256v1 -genkey -noout -out key.pem
        openssl req -new -key key.pem -subj "/CN=localhost" -out server.csr
        printf '%s\n' 'subjectAltName=DNS:localhost,IP:127.0.0.1' 'basicConstraints=CA:FALSE' \
            'keyUsage=digitalSignature' 'extendedKeyUsage=serverAuth' >server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 -sha256 \
            -extfile server.ext -out cert.pem
        cat cert.pem key.pem >haproxy.pem   # HAProxy's crt: certificate and key in one file
    ) >"$WORK/logs/openssl.log" 2>&1 || { cat "$WORK/logs/openssl.log" >&2; die "openssl could not make the certificates"; }
fi
if ((TLS)); then
    nio_ssl="$(python3 -c 'import json,sys; print(next((p["state"].get("version") or "?") for p in json.load(open(sys.argv[1]))["pins"] if p["identity"] == "swift-nio-ssl"))' \
        "$REPO/Package.resolved" 2>/dev/null || echo '?')"
    NOTES+=("TLS libraries: nginx and HAProxy use the system's $(openssl version | cut -d' ' -f1-2) (Debian); Meshgate uses the BoringSSL bundled in swift-nio-ssl $nio_ssl. Session caches and tickets are off in nginx and HAProxy; tls-check.txt shows what each listener resumes")
fi
TLS_VARS=(TLS_CERT="$TLS_DIR/cert.pem" TLS_KEY="$TLS_DIR/key.pem" TLS_PEM="$TLS_DIR/haproxy.pem")

# ------------------------------------------------------------------------------------------------
# Upstreams
if ((UPSTREAM)); then
    head -c 99 /dev/zero | tr '\0' 'x' >"$WORK/www/index.html"
    echo >>"$WORK/www/index.html"                                  # 100 bytes
    render "$HERE/conf/nginx-upstream.conf.tmpl" "$WORK/conf/nginx-upstream.conf" "${COMMON[@]}"
    start nginx-upstream nginx -p "$WORK/" -c conf/nginx-upstream.conf
    UPSTREAM_PID=$LAST_PID
    wait_port nginx-upstream "$UPSTREAM_PORT" "$UPSTREAM_PID"
fi
if has "$SCENARIOS" tcp; then
    start iperf3-server iperf3 -s -B 127.0.0.1 -p "$IPERF_PORT" --idle-timeout 60
    wait_port iperf3-server "$IPERF_PORT" "$LAST_PID"
fi

# ------------------------------------------------------------------------------------------------
# Proxies, in the order each round visits them.
if has "$ONLY" direct; then
    has "$SCENARIOS" http && add_target http direct direct "$UPSTREAM_PORT" "$UPSTREAM_PID" "direct to nginx upstream (no proxy)"
    has "$SCENARIOS" tcp && add_target tcp direct direct "$IPERF_PORT" 0 "direct to iperf3 (no proxy)"
fi

if has "$ONLY" haproxy; then
    if has "$SCENARIOS" http; then
        render "$HERE/conf/haproxy-http.cfg.tmpl" "$WORK/conf/haproxy-http.cfg" "${COMMON[@]}" \
            HAPROXY_HTTP_PORT="$HAPROXY_HTTP_PORT"
        start haproxy-http haproxy -db -f "$WORK/conf/haproxy-http.cfg"
        wait_port haproxy-http "$HAPROXY_HTTP_PORT" "$LAST_PID"
        add_target http haproxy haproxy "$HAPROXY_HTTP_PORT" "$LAST_PID" "HAProxy 2.6, nbthread 1"
    fi
    if has "$SCENARIOS" tcp; then
        render "$HERE/conf/haproxy-tcp.cfg.tmpl" "$WORK/conf/haproxy-tcp.cfg" "${COMMON[@]}" \
            HAPROXY_TCP_PORT="$HAPROXY_TCP_PORT" BUFSIZE_LINE="" \
            BUFSIZE_COMMENT="Default tune.bufsize (16 KiB)."
        start haproxy-tcp haproxy -db -f "$WORK/conf/haproxy-tcp.cfg"
        wait_port haproxy-tcp "$HAPROXY_TCP_PORT" "$LAST_PID"
        add_target tcp haproxy haproxy "$HAPROXY_TCP_PORT" "$LAST_PID" "HAProxy 2.6 mode tcp, nbthread 1"

        render "$HERE/conf/haproxy-tcp.cfg.tmpl" "$WORK/conf/haproxy-tcp-256k.cfg" "${COMMON[@]}" \
            HAPROXY_TCP_PORT="$HAPROXY_TCP256_PORT" BUFSIZE_LINE="tune.bufsize 262144" \
            BUFSIZE_COMMENT="tune.bufsize 262144: 256 KiB buffers, as spike.md's run T2."
        start haproxy-tcp-256k haproxy -db -f "$WORK/conf/haproxy-tcp-256k.cfg"
        wait_port haproxy-tcp-256k "$HAPROXY_TCP256_PORT" "$LAST_PID"
        add_target tcp haproxy-256k haproxy "$HAPROXY_TCP256_PORT" "$LAST_PID" "HAProxy 2.6 mode tcp, nbthread 1, bufsize 256k"
    fi
fi

if has "$ONLY" haproxy && ((TLS)); then
    render "$HERE/conf/haproxy-tls.cfg.tmpl" "$WORK/conf/haproxy-tls.cfg" "${COMMON[@]}" "${TLS_VARS[@]}" \
        HAPROXY_TLS_PORT="$HAPROXY_TLS_PORT"
    start haproxy-tls haproxy -db -f "$WORK/conf/haproxy-tls.cfg"
    wait_port haproxy-tls "$HAPROXY_TLS_PORT" "$LAST_PID"
    add_tls_targets haproxy haproxy "$HAPROXY_TLS_PORT" "$LAST_PID" "HAProxy 2.6, nbthread 1, TLS"
fi

if has "$ONLY" nginx && ((TLS)); then
    render "$HERE/conf/nginx-tls.conf.tmpl" "$WORK/conf/nginx-tls.conf" "${COMMON[@]}" "${TLS_VARS[@]}" \
        NGINX_TLS_PORT="$NGINX_TLS_PORT"
    start nginx-tls nginx -p "$WORK/" -c conf/nginx-tls.conf
    wait_port nginx-tls "$NGINX_TLS_PORT" "$LAST_PID"
    add_tls_targets nginx nginx "$NGINX_TLS_PORT" "$LAST_PID" "nginx 1.22, 1 worker, TLS"
fi

if has "$ONLY" nginx; then
    if has "$SCENARIOS" http; then
        render "$HERE/conf/nginx-proxy.conf.tmpl" "$WORK/conf/nginx-proxy.conf" "${COMMON[@]}" \
            NGINX_HTTP_PORT="$NGINX_HTTP_PORT"
        start nginx-proxy nginx -p "$WORK/" -c conf/nginx-proxy.conf
        wait_port nginx-proxy "$NGINX_HTTP_PORT" "$LAST_PID"
        add_target http nginx nginx "$NGINX_HTTP_PORT" "$LAST_PID" "nginx 1.22 proxy, 1 worker"
    fi
    if has "$SCENARIOS" tcp && ((NGINX_TCP)); then
        render "$HERE/conf/nginx-stream.conf.tmpl" "$WORK/conf/nginx-stream.conf" "${COMMON[@]}" \
            NGINX_TCP_PORT="$NGINX_TCP_PORT" STREAM_MODULE="$STREAM_MODULE"
        start nginx-stream nginx -p "$WORK/" -c conf/nginx-stream.conf
        wait_port nginx-stream "$NGINX_TCP_PORT" "$LAST_PID"
        add_target tcp nginx nginx "$NGINX_TCP_PORT" "$LAST_PID" "nginx 1.22 stream, 1 worker"
    fi
fi

if has "$ONLY" meshgate; then
    for ((i = 0; i < ${#LOOPS[@]}; i++)); do
        el="${LOOPS[$i]}"
        dir="$WORK/conf/meshgate-el$el"
        mkdir -p "$dir"
        vars=("${COMMON[@]}" EVENT_LOOPS="$el" MESHGATE_HTTP_PORT="$(mg_http_port $i)"
            MESHGATE_TCP_PORT="$(mg_tcp_port $i)" ADMIN_PORT="$(mg_admin_port $i)"
            READINESS_PORT="$(mg_ready_port $i)" METRICS_PORT="$(mg_metrics_port $i)")
        render "$HERE/conf/meshgate/meshgate.yaml.tmpl" "$dir/meshgate.yaml" "${vars[@]}"
        render "$HERE/conf/meshgate/bench.yaml.tmpl" "$dir/bench.yaml" "${vars[@]}"
        if ((TLS)); then
            render "$HERE/conf/meshgate/bench-tls.yaml.tmpl" "$dir/bench-tls.yaml" "${vars[@]}" "${TLS_VARS[@]}" \
                MESHGATE_TLS_PORT="$(mg_tls_port $i)"
        fi
        "$MESHGATE_BIN" validate "$dir" >"$WORK/logs/meshgate-el$el-validate.log" 2>&1 || {
            cat "$WORK/logs/meshgate-el$el-validate.log" >&2
            die "meshgate validate $dir failed"
        }
        start "meshgate-el$el" "$MESHGATE_BIN" gateway --config "$dir"
        pid=$LAST_PID
        # Ready means: config loaded and every listener bound (issue item 8). Polled, bounded.
        "${BENCH_PY[@]}" wait-http --url "http://127.0.0.1:$(mg_ready_port $i)/healthz/ready" \
            --pid "$pid" --timeout 60 || {
            tail -n 30 "$WORK/logs/meshgate-el$el.log" >&2 || true
            die "Meshgate (eventLoops $el) did not become ready; log: $WORK/logs/meshgate-el$el.log" \
                "(run with --only direct,haproxy,nginx to measure the others)"
        }
        has "$SCENARIOS" http && add_target http "meshgate-el$el" meshgate "$(mg_http_port $i)" "$pid" "Meshgate, eventLoops $el"
        has "$SCENARIOS" tcp && add_target tcp "meshgate-el$el" meshgate "$(mg_tcp_port $i)" "$pid" "Meshgate, eventLoops $el"
        if ((TLS)); then
            add_tls_targets "meshgate-el$el" meshgate "$(mg_tls_port $i)" "$pid" "Meshgate, eventLoops $el, TLS"
        fi
    done

    # Telemetry: three instances with the first --event-loops value, differing only in telemetry.
    if has "$SCENARIOS" telemetry; then
        el="${LOOPS[0]}"
        tel_names=(metrics-off metrics accesslog)
        for ((j = 0; j < 3; j++)); do
            tn="${tel_names[$j]}"
            dir="$WORK/conf/meshgate-tel-$tn"
            mkdir -p "$dir"
            vars=("${COMMON[@]}" EVENT_LOOPS="$el" MESHGATE_HTTP_PORT="$(mgt_http_port $j)"
                MESHGATE_TCP_PORT="$(mgt_tcp_port $j)" ADMIN_PORT="$(mgt_admin_port $j)"
                READINESS_PORT="$(mgt_ready_port $j)" METRICS_PORT="$(mgt_metrics_port $j)")
            render "$HERE/conf/meshgate/meshgate.yaml.tmpl" "$dir/meshgate.yaml" "${vars[@]}"
            render "$HERE/conf/meshgate/bench.yaml.tmpl" "$dir/bench.yaml" "${vars[@]}"
            case "$tn" in
                metrics-off) cp "$HERE/conf/meshgate/telemetry-off.yaml.tmpl" "$dir/telemetry.yaml" ;;
                accesslog) printf '# Istio TEXT access log, one line per request.\naccessLogFile: %s\n' \
                    "$RUN_DIR/access.log" >>"$dir/meshgate.yaml" ;;
            esac
            "$MESHGATE_BIN" validate "$dir" >"$WORK/logs/meshgate-tel-$tn-validate.log" 2>&1 || {
                cat "$WORK/logs/meshgate-tel-$tn-validate.log" >&2
                die "meshgate validate $dir failed"
            }
            start "meshgate-tel-$tn" "$MESHGATE_BIN" gateway --config "$dir"
            pid=$LAST_PID
            "${BENCH_PY[@]}" wait-http --url "http://127.0.0.1:$(mgt_ready_port $j)/healthz/ready" \
                --pid "$pid" --timeout 60 || {
                tail -n 30 "$WORK/logs/meshgate-tel-$tn.log" >&2 || true
                die "Meshgate ($tn) did not become ready; log: $WORK/logs/meshgate-tel-$tn.log"
            }
            TEL_PIDS[$j]=$pid
        done
        add_target telemetry mg-metrics-off meshgate "$(mgt_http_port 0)" "${TEL_PIDS[0]}" \
            "Meshgate el$el, Istio metrics disabled by a Telemetry override"
        add_target telemetry mg-metrics meshgate "$(mgt_http_port 1)" "${TEL_PIDS[1]}" \
            "Meshgate el$el, default (metrics on, no access log)"
        add_target telemetry mg-accesslog meshgate "$(mgt_http_port 2)" "${TEL_PIDS[2]}" \
            "Meshgate el$el, metrics on + access log to a file"
        add_target telemetry mg-scrape meshgate "$(mgt_http_port 1)" "${TEL_PIDS[1]}" \
            "Meshgate el$el, default + 1 s scrape loop" \
            "scrape=http://127.0.0.1:$(mgt_metrics_port 1)/stats/prometheus"
    fi

    # Route policies: the bench route as is, and with retries, CORS and a 1% mirror.
    if has "$SCENARIOS" policy; then
        el="${LOOPS[0]}"
        policy_names=(plain policies authz jwt)
        # Every variant gets the same headers: an Origin, and an ES256 JWT (verified only by authz's
        # RequestAuthentication; the others pass it on).
        JWT_ISSUER="https://bench.example"
        JWT_TOKEN=$("${BENCH_PY[@]}" jwt --jwks "$WORK/conf/bench-jwks.json" --issuer "$JWT_ISSUER") \
            || die "could not mint the benchmark's JWT (needs PyJWT and cryptography: scripts/install-deps.sh --test)"
        for ((j = 0; j < 4; j++)); do
            pn="${policy_names[$j]}"
            dir="$WORK/conf/meshgate-policy-$pn"
            mkdir -p "$dir"
            vars=("${COMMON[@]}" EVENT_LOOPS="$el" MESHGATE_HTTP_PORT="$(mgp_port $j 0)"
                MESHGATE_TCP_PORT="$(mgp_port $j 1)" ADMIN_PORT="$(mgp_port $j 2)"
                READINESS_PORT="$(mgp_port $j 3)" METRICS_PORT="$(mgp_port $j 4)")
            render "$HERE/conf/meshgate/meshgate.yaml.tmpl" "$dir/meshgate.yaml" "${vars[@]}"
            render "$HERE/conf/meshgate/bench.yaml.tmpl" "$dir/bench.yaml" "${vars[@]}"
            if [[ "$pn" == policies ]]; then
                # The bench route's first (only) http rule gets the policies.
                sed -i 's|^  - route:$|  - retries: {attempts: 2, perTryTimeout: 5s, retryOn: "5xx,reset,connect-failure"}\n    corsPolicy:\n      allowOrigins: [{exact: "https://bench.example"}]\n      allowMethods: [GET, POST]\n      exposeHeaders: [x-request-id]\n      maxAge: 1h\n    mirror: {host: upstream, port: {number: 80}}\n    mirrorPercentage: {value: 1}\n    route:|' "$dir/bench.yaml"
            fi
            if [[ "$pn" == authz ]]; then
                # Rules that each read a path, a method, a header, the client's block and the JWT's
                # principal; only policy 9's rule 9 lets the benchmark's GET /index.html through.
                for ((p = 0; p < 10; p++)); do
                    printf 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: bench-%d, namespace: istio-system}\nspec:\n  rules:\n' "$p"
                    for ((r = 0; r < 10; r++)); do
                        path="/p$p-r$r/*" principal="https://other.example/*"
                        ((p == 9 && r == 9)) && path="/index.html" principal="$JWT_ISSUER/*"
                        printf '  - from: [{source: {ipBlocks: [127.0.0.0/8], notPrincipals: [cluster.local/ns/blocked/sa/x%d], requestPrincipals: ["%s"]}}]\n' "$r" "$principal"
                        printf '    to: [{operation: {methods: [GET, HEAD], paths: ["%s"], notHosts: ["*.internal"]}}]\n' "$path"
                        printf '    when: [{key: "request.headers[origin]", values: ["https://bench.*"]}]\n'
                    done
                    printf -- '---\n'
                done >"$dir/authz.yaml"
            fi
            if [[ "$pn" == authz || "$pn" == jwt ]]; then
                printf 'apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: bench, namespace: istio-system}\nspec:\n  jwtRules:\n  - issuer: "%s"\n    audiences: [bench]\n    jwks: %s\n' \
                    "$JWT_ISSUER" "'$(cat "$WORK/conf/bench-jwks.json")'" >"$dir/jwt.yaml"
            fi
            "$MESHGATE_BIN" validate "$dir" >"$WORK/logs/meshgate-policy-$pn-validate.log" 2>&1 || {
                cat "$WORK/logs/meshgate-policy-$pn-validate.log" >&2
                die "meshgate validate $dir failed"
            }
            start "meshgate-policy-$pn" "$MESHGATE_BIN" gateway --config "$dir"
            pid=$LAST_PID
            "${BENCH_PY[@]}" wait-http --url "http://127.0.0.1:$(mgp_port $j 3)/healthz/ready" \
                --pid "$pid" --timeout 60 || {
                tail -n 30 "$WORK/logs/meshgate-policy-$pn.log" >&2 || true
                die "Meshgate ($pn) did not become ready; log: $WORK/logs/meshgate-policy-$pn.log"
            }
            add_target policy "mg-$pn" meshgate "$(mgp_port $j 0)" "$pid" \
                "Meshgate el$el, $(case $pn in plain) echo "the bench route (Istio's default retries)" ;; policies) echo "retries + CORS + 1% mirror" ;; authz) echo "JWT + 10 AuthorizationPolicies x 10 rules" ;; *) echo "JWT (RequestAuthentication) only" ;; esac)" \
                "header=Origin: https://bench.example||Authorization: Bearer $JWT_TOKEN"
        done
    fi
fi

[[ -s "$TARGETS" ]] || die "nothing to measure"

# Every HTTP target must serve the upstream's 100-byte file before we time it.
# TLS targets: over HTTPS, with the certificate verified against the run's CA.
while IFS=$'\t' read -r scenario name _ port _ _ extra; do
    case "$scenario" in
        http|telemetry|policy) url="http://127.0.0.1:$port/index.html"; ca=() ;;
        https|h2) url="https://127.0.0.1:$port/index.html"; ca=(--cafile "$TLS_DIR/ca.pem") ;;
        *) continue ;;
    esac
    hdr=()
    [[ "$extra" == header=* ]] && hdr=(--header "${extra#header=}")
    "${BENCH_PY[@]}" check-http --url "$url" --size 100 "${ca[@]+"${ca[@]}"}" "${hdr[@]+"${hdr[@]}"}" \
        || die "$scenario $name (port $port) does not proxy the upstream's file"
done <"$TARGETS"
if ((TLS)); then
    # What each TLS listener negotiates, and whether it resumes a session (full handshakes wanted).
    checked=","
    while IFS=$'\t' read -r scenario name _ port _ _ _; do
        [[ "$scenario" == https || "$scenario" == h2 ]] || continue
        has "$checked" "$name" && continue
        checked+="$name,"
        {
            echo "== $name (127.0.0.1:$port)"
            timeout 10 curl -sS --noproxy '*' --cacert "$TLS_DIR/ca.pem" --http2 -o /dev/null \
                -w 'curl --http2: HTTP/%{http_version} %{response_code} %{size_download} bytes\n' \
                "https://127.0.0.1:$port/index.html" || true
            # The handshake run relies on the server closing after a `Connection: close` request:
            # two requests in one curl must then take two connections ("new connections: 1 1").
            echo "new connections for two HTTP/1.1 requests with Connection: close:" \
                "$(timeout 10 curl -sS --noproxy '*' --cacert "$TLS_DIR/ca.pem" --http1.1 -H 'Connection: close' \
                    -o /dev/null -o /dev/null -w '%{num_connects} ' \
                    "https://127.0.0.1:$port/index.html" "https://127.0.0.1:$port/index.html" || true)"
            sess="$WORK/tmp/sess-$name.pem"
            rm -f "$sess"
            # A TLS 1.3 ticket arrives after the handshake: keep the client open a second to read it.
            sleep 1 | timeout 10 openssl s_client -connect "127.0.0.1:$port" -servername localhost -sess_out "$sess" \
                -CAfile "$TLS_DIR/ca.pem" 2>/dev/null | grep -E '^(New|Reused),|Verify return|Protocol' || true
            if [[ -s "$sess" ]]; then
                sleep 1 | timeout 10 openssl s_client -connect "127.0.0.1:$port" -servername localhost -sess_in "$sess" \
                    -CAfile "$TLS_DIR/ca.pem" 2>/dev/null | grep -E '^(New|Reused),' \
                    | sed 's/^/second connection with the saved session: /' || true
            else
                echo "no session saved by the client after 1 s: the server issued no session ticket, nothing to resume"
            fi
        } >>"$RUN_DIR/tls-check.txt" 2>&1
    done <"$TARGETS"
fi

# ------------------------------------------------------------------------------------------------
# Measure, report.
META="$RUN_DIR/meta.txt"
{
    echo "command=$INVOCATION"
    [[ -n "$MESHGATE_COMMIT" ]] && echo "meshgate_bin=$MESHGATE_BIN" && echo "meshgate_commit=$MESHGATE_COMMIT"
    for n in "${NOTES[@]+"${NOTES[@]}"}"; do echo "note=$n"; done
} >"$META"

printf '%s\n' "${PIDS[@]}" >"$RUN_DIR/pids.txt"
say "measuring: $ROUNDS round(s), targets: $(cut -f1,2 "$TARGETS" | tr '\t\n' ': ')"
# In the background and waited for, so that a signal to this script is handled at once (bash runs
# traps only between foreground commands); the helper stops its own load client on TERM.
"${BENCH_PY[@]}" measure --targets "$TARGETS" --meta "$META" --pids "$RUN_DIR/pids.txt" --out "$RUN_DIR/raw.json" \
    --logs "$RUN_DIR/logs" --rounds "$ROUNDS" --http-duration "$HTTP_DURATION" \
    --tcp-duration "$TCP_DURATION" --tls-duration "$TLS_DURATION" --handshakes "$HANDSHAKES" --connections "$CONNECTIONS" --warmup "$WARMUP" &
MEASURE_PID=$!
PIDS+=("$MEASURE_PID")
PNAMES+=(measure)
measure_rc=0
wait "$MEASURE_PID" || measure_rc=$?
unset 'PIDS[-1]' 'PNAMES[-1]'   # reaped: its PID is no longer ours to signal
((measure_rc == 0)) || die "measurement failed (exit $measure_rc)"

# perf's table without comments, blank lines and trailing empty columns; Swift names demangled.
tidy_perf() { grep -v '^#' | grep -v '^$' | sed -E 's/([[:space:]]+-)+[[:space:]]*$//; s/[[:space:]]+$//'; }
demangle() {
    if command -v swift-demangle >/dev/null 2>&1; then swift-demangle --simplified; else cat; fi
}

# Optional: where Meshgate's CPU goes, from one extra (unmeasured) HTTP run per variant.
PROFILES=()
if ((PERF)) && has "$ONLY" meshgate && has "$SCENARIOS" http; then
    while IFS=$'\t' read -r scenario name kind port pid label; do
        [[ "$scenario" == http && "$kind" == meshgate ]] || continue
        prefix="$RUN_DIR/perf-$name"
        say "profiling $label with perf (${HTTP_DURATION}s)"
        # shellcheck disable=SC2086 # PERF_RECORD_OPTS is a list of options
        start "perf-$name" timeout $((HTTP_DURATION + 30)) \
            perf record $PERF_RECORD_OPTS -p "$pid" -o "$prefix.data" -- sleep "$HTTP_DURATION"
        perf_pid=$LAST_PID
        timeout --kill-after=5 $((HTTP_DURATION + 30)) wrk -t1 "-c$CONNECTIONS" "-d${HTTP_DURATION}s" \
            "http://127.0.0.1:$port/index.html" >"$prefix.wrk.txt" 2>&1 || true
        wait "$perf_pid" || true
        unset 'PIDS[-1]' 'PNAMES[-1]'
        [[ -s "$prefix.data" ]] || continue
        timeout 300 perf report -i "$prefix.data" --stdio --no-children -g none --sort dso 2>/dev/null \
            | tidy_perf | head -n 12 >"$prefix.dso.txt" || true
        timeout 300 perf report -i "$prefix.data" --stdio --no-children -g none --sort dso,symbol \
            --percent-limit 0.7 2>/dev/null | tidy_perf | demangle | head -n 40 >"$prefix.symbols.txt" || true
        PROFILES+=("$name|$label|$prefix")
    done <"$TARGETS"
fi

stop_all

"${BENCH_PY[@]}" report --raw "$RUN_DIR/raw.json" --md "$RUN_DIR/report.md"
for entry in "${PROFILES[@]+"${PROFILES[@]}"}"; do
    IFS='|' read -r name label prefix <<<"$entry"
    {
        echo
        echo "## Profile: $label"
        echo
        echo "\`perf record $PERF_RECORD_OPTS -p PID\` during one extra \`wrk -t1 -c$CONNECTIONS -d${HTTP_DURATION}s\` run"
        echo "($(grep -m1 'Requests/sec' "$prefix.wrk.txt" 2>/dev/null || echo 'rate not recorded')); \`perf.data\` in $prefix.data."
        echo
        echo "By binary (share of the proxy's samples):"
        echo
        echo '```'
        cat "$prefix.dso.txt"
        echo '```'
        echo
        echo "Top symbols (≥ 0.7%, self time):"
        echo
        echo '```'
        cat "$prefix.symbols.txt"
        echo '```'
        echo
    } >>"$RUN_DIR/report.md"
done
cp "$RUN_DIR/report.md" "$OUT_DIR/latest.md"
say "report: $RUN_DIR/report.md (also $OUT_DIR/latest.md); raw: $RUN_DIR/raw.json"
