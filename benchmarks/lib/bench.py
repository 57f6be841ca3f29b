#!/usr/bin/env python3
"""Measurement and reporting helper for benchmarks/run.sh (standard library only).

run.sh owns the processes (it starts every server and proxy and kills each by its PID on exit);
this helper only runs the bounded load clients (wrk, iperf3), samples proxy CPU from procfs and
writes the report.

Subcommands:
  wait-tcp   --port P [--pid PID] [--timeout S]      poll until something listens on 127.0.0.1:P
  wait-http  --url U [--pid PID] [--timeout S]       poll until U answers 200
  check-http --url U [--size N]                      one GET: 200 and an N-byte body, or exit 1
  measure    --targets FILE --out FILE ...           the interleaved rounds; raw results as JSON
  report     --raw FILE --md FILE                    Markdown tables + ratios from the raw JSON
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import platform
import resource
import shlex
import signal
import ssl
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
WRK_SCRIPT = os.path.join(HERE, "wrk-json.lua")
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Names run.sh gives the targets; the report keys its ratios on them.
REFERENCES = {
    "http": ["haproxy", "nginx"],
    "tcp": ["haproxy", "haproxy-256k", "nginx"],
    "https": ["haproxy", "nginx"],
    "handshake": ["haproxy", "nginx"],
    "h2": ["haproxy", "nginx"],
}
# The targets (Meshgate ÷ HAProxy, same interleaved run). For TCP the check is made
# against HAProxy's default buffers and against 256 KiB buffers (equal read sizes).
GOALS = {"http": [("haproxy", 0.60)], "tcp": [("haproxy", 0.80), ("haproxy-256k", 0.80)],
         "https": [], "handshake": [("nginx", 0.80)], "h2": [("nginx", 0.60)]}
# Every scenario, in the order they are measured and reported.
SCENARIOS = ["http", "tcp", "https", "handshake", "h2", "telemetry", "policy"]
# Scenarios measured as HTTP/1.1 keep-alive with wrk.
HTTP_LIKE = ("http", "telemetry", "policy")
# TLS scenarios (h2load): the load command for each, minus duration and URL.
H2LOAD = {
    "https": ["h2load", "--h1", "-t1", "-c50", "-m1"],
    "handshake": ["h2load", "--h1", "-t1", "-c50", "-m1", "-H", "Connection: close"],
    "h2": ["h2load", "-t1", "-c16", "-m100"],
}
TLS_TITLES = {
    "https": "HTTPS keep-alive (HTTP/1.1 over TLS 1.3)",
    "handshake": "Full TLS handshakes (one request per connection, no session resumption)",
    "h2": "HTTP/2 over TLS (h2load -c16 -m100)",
}
# Telemetry: (variant, baseline, goal): the variant's req/s must be at least goal × the baseline's.
TELEMETRY_GOALS = [
    ("mg-metrics", "mg-metrics-off", 0.95),
    ("mg-accesslog", "mg-metrics-off", 0.95),
    ("mg-accesslog", "mg-metrics", 0.95),
    ("mg-scrape", "mg-metrics", 0.98),
]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# procfs CPU accounting

def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'.
    rest = raw[raw.rindex(")") + 2:].split()
    return rest  # rest[0] is field 3 (state)


def _children(pid: int) -> list[int]:
    kids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = _stat_fields(int(name))
        if fields and int(fields[1]) == pid:  # field 4: ppid
            kids.append(int(name))
    return kids


def process_tree(pid: int) -> list[int]:
    """The process and its descendants (nginx: master + worker)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(_children(p))
    return out


def cpu_seconds(pid: int) -> float:
    """utime+stime of a process tree. /proc/PID/stat of a thread-group leader already sums all
    of its threads (live and exited), so this covers every event loop / nbthread thread."""
    ticks = 0
    for p in process_tree(pid):
        fields = _stat_fields(p)
        if fields:
            ticks += int(fields[11]) + int(fields[12])  # fields 14 (utime), 15 (stime)
    return ticks / CLK_TCK


def system_busy_seconds() -> float:
    """CPU time the whole machine spent not idle (all CPUs; steal counts as busy), from /proc/stat."""
    with open("/proc/stat") as f:
        cols = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
    busy = cols[0] + cols[1] + cols[2] + cols[5] + cols[6] + (cols[7] if len(cols) > 7 else 0)
    return busy / CLK_TCK


def children_cpu_seconds() -> float:
    """CPU of this helper's finished children (the load client just run)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def alive(pid: int | None) -> bool:
    if not pid:
        return True
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


# ---------------------------------------------------------------------------------------------
# waiting (always bounded, polling a condition; never a fixed sleep)

def wait_until(cond, timeout: float, pid: int | None, what: str) -> bool:
    deadline = time.monotonic() + timeout
    delay = 0.02
    while time.monotonic() < deadline:
        if cond():
            return True
        if not alive(pid):
            log(f"{what}: process {pid} exited while waiting")
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.25)
    log(f"{what}: not ready after {timeout:.0f}s")
    return False


def listening(port: int) -> bool:
    """A socket in LISTEN on 127.0.0.1:port (or a wildcard address), read from /proc/net/tcp*.
    Checking without connecting keeps probe connections out of the servers (iperf3 logs an error
    for every connection that sends no test parameters)."""
    want = f"{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    addr, lport = cols[1].rsplit(":", 1)
                    if lport == want and cols[3] == "0A" and addr.strip("0") in ("", "100007F"):
                        return True
        except OSError:
            continue
    return False


# Loopback only: never let an http_proxy from the environment carry these requests.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def split_headers(header: str | None) -> list[str]:
    """A target's headers: several are joined with `||`."""
    return [h for h in (header or "").split("||") if h]


def http_status(url: str, timeout: float = 2.0, cafile: str | None = None, header: str | None = None) -> tuple[int, bytes]:
    opener = _OPENER
    if cafile:
        ctx = ssl.create_default_context(cafile=cafile)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
    request = urllib.request.Request(url, headers=dict(h.split(": ", 1) for h in split_headers(header)))
    try:
        with opener.open(request, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, b""
    except (OSError, ValueError):
        return 0, b""


# ---------------------------------------------------------------------------------------------
# one measured run

# The load client running now, so that a TERM to this helper stops it too (by its PID).
_CURRENT: subprocess.Popen | None = None


def _on_term(signum, frame):
    if _CURRENT is not None and _CURRENT.poll() is None:
        _CURRENT.terminate()  # `timeout` passes the TERM on to wrk / iperf3
        try:
            _CURRENT.wait(timeout=5)
        except subprocess.TimeoutExpired:
            _CURRENT.kill()
    sys.exit(128 + signum)


def run_client(cmd: list[str], limit: int) -> subprocess.CompletedProcess:
    """Runs a load client under `timeout` (and a second bound here); raises TimeoutExpired."""
    global _CURRENT
    bound = ["timeout", "--kill-after=5", str(limit)]
    _CURRENT = subprocess.Popen(bound + cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = _CURRENT.communicate(timeout=limit + 15)
    except subprocess.TimeoutExpired:
        _CURRENT.kill()
        _CURRENT.communicate()
        raise
    finally:
        proc, _CURRENT = _CURRENT, None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

def run_wrk(port: int, duration: int, conns: int, log_path: str, header: str | None = None) -> dict:
    url = f"http://127.0.0.1:{port}/index.html"
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency", "-s", WRK_SCRIPT]
    for h in split_headers(header):
        cmd += ["-H", h]
    cmd.append(url)
    try:
        proc = run_client(cmd, duration + 30)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": "wrk did not finish in time"}
    with open(log_path, "w") as f:
        f.write("$ " + shlex.join(cmd) + "\n" + proc.stdout + proc.stderr)
    line = next((l for l in proc.stdout.splitlines() if l.startswith("JSON ")), None)
    if proc.returncode != 0 or line is None:
        return {"ok": False, "error": f"wrk exit {proc.returncode}: {proc.stderr.strip()[:200]}"}
    data = json.loads(line[5:])
    errors = sum(data["errors"].values())
    secs = data["duration_us"] / 1e6
    return {
        "ok": data["requests"] > 0,
        "requests": data["requests"],
        "rps": data["requests"] / secs if secs else 0.0,
        "p50_ms": data["p50_us"] / 1000,
        "p90_ms": data["p90_us"] / 1000,
        "p99_ms": data["p99_us"] / 1000,
        "errors": errors,
        "error_detail": data["errors"],
    }


def _h2load_time(text: str) -> float | None:
    """h2load's '1.23ms' / '456us' / '1.2s' in milliseconds."""
    m = re.match(r"([0-9.]+)(us|ms|s)$", text)
    if not m:
        return None
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]


def h2load_cmd(scenario: str, duration: int, handshakes: int, url: str) -> list[str]:
    # With `Connection: close`, h2load opens a new connection for each request but does not stop at
    # the end of a -D duration (it waits on the reconnecting clients): the handshake run is -n.
    if scenario == "handshake":
        return H2LOAD[scenario] + ["-n", str(handshakes), url]
    return H2LOAD[scenario] + ["-D", str(duration), url]


def run_h2load(scenario: str, port: int, duration: int, handshakes: int, log_path: str) -> dict:
    """One h2load run against https://127.0.0.1:PORT/index.html. h2load does not verify
    certificates (the sanity check before the rounds does, with the run's CA)."""
    url = f"https://127.0.0.1:{port}/index.html"
    cmd = h2load_cmd(scenario, duration, handshakes, url)
    limit = duration + 30 if scenario != "handshake" else 6 * duration + 30
    try:
        proc = run_client(cmd, limit)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": "h2load did not finish in time"}
    out = proc.stdout + proc.stderr
    with open(log_path, "w") as f:
        f.write("$ " + shlex.join(cmd) + "\n" + out)
    fin = re.search(r"finished in ([0-9.]+(?:us|ms|s)), ([0-9.]+) req/s", out)
    req = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                    r"(\d+) errored, (\d+) timeout", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if proc.returncode != 0 or not fin or not req:
        return {"ok": False, "error": f"h2load exit {proc.returncode}: {out.strip()[-200:]}"}
    lat = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", out)
    proto = re.search(r"TLS Protocol: (\S+)", out)
    alpn = re.search(r"Application protocol: (\S+)", out)
    succeeded, failed, errored, timeout = (int(req.group(i)) for i in (4, 5, 6, 7))
    non2xx = sum(int(codes.group(i)) for i in (2, 3, 4)) if codes else 0
    secs = (_h2load_time(fin.group(1)) or 0.0) / 1000
    return {
        "ok": succeeded > 0,
        "requests": succeeded,
        "rps": succeeded / secs if secs else 0.0,
        "mean_ms": _h2load_time(lat.group(3)) if lat else None,
        "max_ms": _h2load_time(lat.group(2)) if lat else None,
        "errors": failed + errored + timeout + non2xx,
        "tls": proto.group(1) if proto else None,
        "alpn": alpn.group(1) if alpn else None,
    }


class ScrapeLoop:
    """`curl -s URL` once a second (each bounded by -m 2) in a thread, for the length of one run."""

    def __init__(self, url: str):
        self.url, self.count, self.failed, self.bytes = url, 0, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                p = subprocess.run(["curl", "-s", "-m", "2", "--noproxy", "*", self.url],
                                   capture_output=True, timeout=5)
                if p.returncode == 0:
                    self.count += 1
                    self.bytes += len(p.stdout)
                else:
                    self.failed += 1
            except subprocess.TimeoutExpired:
                self.failed += 1
            self._stop.wait(max(0.0, 1.0 - (time.monotonic() - t0)))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)


def run_iperf(port: int, duration: int, log_path: str) -> dict:
    cmd = ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(duration), "-J"]
    result: dict = {"ok": False, "error": "not run"}
    for attempt in range(3):
        try:
            proc = run_client(cmd, duration + 30)
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": "iperf3 did not finish in time"}
        with open(log_path, "a") as f:
            f.write(f"$ {shlex.join(cmd)}  # attempt {attempt + 1}\n{proc.stdout}{proc.stderr}\n")
        try:
            data = json.loads(proc.stdout)
        except json.JSONDecodeError:
            result = {"ok": False, "error": f"iperf3 exit {proc.returncode}: {proc.stderr.strip()[:200]}"}
            continue
        if "error" in data:
            result = {"ok": False, "error": data["error"]}
            # The server still finishing the previous test: poll it free, then retry.
            if "busy" in data["error"]:
                time.sleep(0.5 * (attempt + 1))
                continue
            return result
        recv = data["end"]["sum_received"]
        return {
            "ok": recv["bytes"] > 0,
            "bytes": recv["bytes"],
            "gbps": recv["bits_per_second"] / 1e9,
            "retransmits": data["end"].get("sum_sent", {}).get("retransmits"),
        }
    return result


def measure_one(scenario: str, target: dict, args, round_no: int, logs: str, ours: list[int]) -> dict:
    pid = target.get("pid")
    if pid and not alive(pid):
        return {"ok": False, "error": f"process {pid} is gone"}
    log_path = os.path.join(logs, f"{scenario}-{target['name']}-r{round_no}.log")
    before = cpu_seconds(pid) if pid else None
    ours_before = sum(cpu_seconds(p) for p in ours) + children_cpu_seconds()
    busy_before, t0 = system_busy_seconds(), time.monotonic()
    if scenario == "http":
        res = run_wrk(target["port"], args.http_duration, args.connections, log_path)
    elif scenario == "policy":
        res = run_wrk(target["port"], args.http_duration, args.connections, log_path, target.get("header"))
    elif scenario == "telemetry":
        if target.get("scrape"):
            with ScrapeLoop(target["scrape"]) as loop:
                res = run_wrk(target["port"], args.http_duration, args.connections, log_path)
            res["scrapes"], res["scrape_failures"] = loop.count, loop.failed
            res["scrape_bytes"] = loop.bytes // max(1, loop.count)
        else:
            res = run_wrk(target["port"], args.http_duration, args.connections, log_path)
    elif scenario in H2LOAD:
        res = run_h2load(scenario, target["port"], args.tls_duration, args.handshakes, log_path)
    else:
        res = run_iperf(target["port"], args.tcp_duration, log_path)
    busy, wall = system_busy_seconds() - busy_before, time.monotonic() - t0
    mine = sum(cpu_seconds(p) for p in ours) + children_cpu_seconds() - ours_before
    # CPU the machine spent on anything but this benchmark (other tenants' work, steal), in cores:
    # the noise this run had to share the 2 CPUs with.
    res["other_cores"] = max(0.0, busy - mine) / wall if wall > 0 else None
    if pid and res.get("ok"):
        cpu = cpu_seconds(pid) - before
        res["cpu_s"] = cpu
        if scenario != "tcp":
            res["cpu_us_per_req"] = cpu * 1e6 / res["requests"]
        else:
            res["cpu_s_per_gb"] = cpu / (res["bytes"] / 1e9)
    return res


def fmt_result(scenario: str, res: dict) -> str:
    if not res.get("ok"):
        return f"FAILED ({res.get('error')})"
    if scenario in HTTP_LIKE:
        scenario = "http"
    if scenario in H2LOAD:
        other = f", other load {res['other_cores']:.2f} cores" if res.get("other_cores") is not None else ""
        cpu = res.get("cpu_us_per_req")
        return (f"{res['rps']:,.0f} req/s, mean {res['mean_ms'] or 0:.2f} ms"
                + (f", {cpu:.1f} µs/req" if cpu is not None else "")
                + (f", {res['errors']} errors" if res["errors"] else "")
                + f", {res.get('tls')} {res.get('alpn')}{other}")
    cpu = res.get("cpu_us_per_req") if scenario == "http" else res.get("cpu_s_per_gb")
    cpu_txt = "" if cpu is None else (f", {cpu:.1f} µs/req" if scenario == "http" else f", {cpu:.2f} s/GB")
    if scenario == "http":
        err = f", {res['errors']} errors" if res["errors"] else ""
        other = f", other load {res['other_cores']:.2f} cores" if res.get("other_cores") is not None else ""
        return f"{res['rps']:,.0f} req/s, p50 {res['p50_ms']:.2f} ms, p99 {res['p99_ms']:.2f} ms{cpu_txt}{err}{other}"
    other = f", other load {res['other_cores']:.2f} cores" if res.get("other_cores") is not None else ""
    return f"{res['gbps']:.2f} Gbit/s{cpu_txt}{other}"


def read_targets(path: str) -> dict:
    """run.sh writes one target per line: SCENARIO NAME KIND PORT PID LABEL... (tab-separated)."""
    targets: dict = {s: [] for s in SCENARIOS}
    with open(path) as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            cols = line.rstrip("\n").split("\t")
            scenario, name, kind, port, pid, label = cols[:6]
            t = {"name": name, "kind": kind, "port": int(port),
                 "pid": int(pid) if pid not in ("", "0") else None, "label": label}
            # Optional 7th column: KEY=VALUE;KEY=VALUE (scrape=URL for the telemetry scrape loop).
            if len(cols) > 6 and cols[6]:
                for kv in cols[6].split(";"):
                    k, _, v = kv.partition("=")
                    t[k] = v
            targets.setdefault(scenario, []).append(t)
    return targets


def read_meta(path: str | None) -> dict:
    """KEY=VALUE lines; `note` may repeat."""
    meta: dict = {"notes": []}
    if not path:
        return meta
    with open(path) as f:
        for line in f:
            if "=" not in line:
                continue
            key, value = line.rstrip("\n").split("=", 1)
            if key == "note":
                meta["notes"].append(value)
            else:
                meta[key] = value
    return meta


def cmd_measure(args) -> int:
    spec = {"targets": read_targets(args.targets), "meta": read_meta(args.meta)}
    # Every process run.sh started (servers, proxies): their CPU is the benchmark's own.
    ours = [int(x) for x in open(args.pids).read().split()] if args.pids else []
    os.makedirs(args.logs, exist_ok=True)
    raw = {
        "meta": machine_meta(args, spec),
        "targets": spec["targets"],
        "runs": {sc: {} for sc in SCENARIOS},
    }
    for scenario in SCENARIOS:
        targets = spec["targets"].get(scenario, [])
        if not targets:
            continue
        # Sanity check and warm-up: a target that does not serve the 100-byte file is not measured.
        live = []
        for t in targets:
            if scenario in HTTP_LIKE:
                status, body = http_status(f"http://127.0.0.1:{t['port']}/index.html", header=t.get("header"))
                if status != 200 or len(body) != 100:
                    log(f"[http] {t['name']}: sanity GET gave {status} / {len(body)} bytes; not measured")
                    raw["runs"][scenario][t["name"]] = [
                        {"ok": False, "error": f"sanity GET gave HTTP {status}, {len(body)} bytes"}]
                    continue
                if args.warmup > 0:
                    run_wrk(t["port"], args.warmup, args.connections,
                            os.path.join(args.logs, f"{scenario}-{t['name']}-warmup.log"), t.get("header"))
            elif scenario in ("https", "h2") and args.warmup > 0:
                # Both keep connections open: the warm-up leaves each proxy's upstream pool filled, so
                # no round pays for the first burst of upstream connects (h2: one per concurrent stream).
                run_h2load(scenario, t["port"], args.warmup, 0,
                           os.path.join(args.logs, f"{scenario}-{t['name']}-warmup.log"))
            live.append(t)
        for r in range(1, args.rounds + 1):
            for t in live:
                res = measure_one(scenario, t, args, r, args.logs, ours)
                res["round"] = r
                raw["runs"][scenario].setdefault(t["name"], []).append(res)
                log(f"[{scenario}] round {r}/{args.rounds} {t['name']:<14} {fmt_result(scenario, res)}")
    raw["meta"]["finished"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    raw["meta"]["loadavg_end"] = loadavg()
    with open(args.out, "w") as f:
        json.dump(raw, f, indent=2)
    return 0


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def _first_line(cmd: list[str]) -> str:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return ((p.stdout or "") + (p.stderr or "")).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def machine_meta(args, spec: dict) -> dict:
    model = "?"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return {
        "started": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "loadavg_start": loadavg(),
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "versions": {
            "haproxy": _first_line(["haproxy", "-v"]),
            "nginx": _first_line(["nginx", "-v"]),
            "wrk": _first_line(["wrk", "--version"]),
            "iperf3": _first_line(["iperf3", "--version"]),
            "h2load": _first_line(["h2load", "--version"]),
            "openssl": _first_line(["openssl", "version"]),
        },
        "rounds": args.rounds,
        "http_duration": args.http_duration,
        "tcp_duration": args.tcp_duration,
        "connections": args.connections,
        "warmup": args.warmup,
        "http_command": f"wrk -t1 -c{args.connections} -d{args.http_duration}s --latency "
                        f"-s benchmarks/lib/wrk-json.lua http://127.0.0.1:PORT/index.html",
        "tcp_command": f"iperf3 -c 127.0.0.1 -p PORT -t {args.tcp_duration} -J",
        "tls_duration": args.tls_duration,
        "handshakes": args.handshakes,
        "h2load_commands": {sc: shlex.join(h2load_cmd(sc, args.tls_duration, args.handshakes,
                                                      "https://127.0.0.1:PORT/index.html"))
                            for sc in H2LOAD},
        "scenarios": [sc for sc in SCENARIOS if spec["targets"].get(sc)],
        **spec.get("meta", {}),
    }


# ---------------------------------------------------------------------------------------------
# report

def med(xs):
    return statistics.median(xs) if xs else None


def f0(x):
    return "n/a" if x is None else f"{x:,.0f}".replace(",", " ")


def f2(x):
    return "n/a" if x is None else f"{x:.2f}"


def f1(x):
    return "n/a" if x is None else f"{x:.1f}"


def summarize(runs: list[dict], key: str) -> tuple:
    vals = [r[key] for r in runs if r.get("ok") and r.get(key) is not None]
    if not vals:
        return None, None, None
    return med(vals), min(vals), max(vals)


def other_cell(runs: list[dict]) -> str:
    m, lo, hi = summarize(runs, "other_cores")
    return "n/a" if m is None else f"{m:.2f} (max {hi:.2f})"


def per_round_ratios(a: list[dict], b: list[dict], key: str) -> list[float]:
    bmap = {r["round"]: r for r in b if r.get("ok") and "round" in r}
    out = []
    for r in a:
        other = bmap.get(r.get("round"))
        if r.get("ok") and other and other.get(key):
            out.append(r[key] / other[key])
    return out


def ratio_cell(xs: list[float]) -> str:
    if not xs:
        return "n/a"
    return f"**{med(xs):.2f}×** ({min(xs):.2f}–{max(xs):.2f})"


def build_report(raw: dict) -> str:
    meta, targets, runs = raw["meta"], raw["targets"], raw["runs"]
    L: list[str] = []
    L.append(f"# Meshgate benchmark: {meta['started']}")
    L.append("")
    L.append(f"- Machine: {meta['nproc']} CPUs, {meta['cpu_model']}, Linux {meta['kernel']}; "
             f"load average {meta.get('loadavg_start', '?')} at the start, {meta.get('loadavg_end', '?')} at the end")
    v = meta["versions"]
    L.append(f"- Tools: {v['haproxy']}; {v['nginx']}; {v['wrk']}; {v['iperf3']}")
    if meta.get("meshgate_bin"):
        L.append(f"- Meshgate: `{meta['meshgate_bin']}`; source: {meta.get('meshgate_commit', '?')}")
    L.append(f"- Rounds: {meta['rounds']}, interleaved (every target once per round, same order each round); "
             f"HTTP {meta['http_duration']} s per run after a {meta['warmup']} s warm-up, TCP {meta['tcp_duration']} s per run")
    L.append(f"- HTTP load: `{meta['http_command']}` (100-byte file from an nginx upstream)")
    L.append(f"- TCP load: `{meta['tcp_command']}` (an `iperf3 -s` upstream; control and data connections both proxied)")
    if meta.get("command"):
        L.append(f"- Invocation: `{meta['command']}`")
    for note in meta.get("notes", []):
        L.append(f"- Note: {note}")
    L.append("")
    L.append("Figures are the median of the rounds with the min–max range. Ratios are computed per round "
             "(both runs in the same round) and then summarized the same way; only ratios are worth "
             "comparing across runs on a shared machine. *Other load* is the CPU the machine spent on "
             "anything but this benchmark's processes and load client during a run (other work, VM "
             "steal), in cores out of the machine's total: the noise each run shared the CPUs with.")

    for scenario, title in (("http", "HTTP/1.1 keep-alive"), ("tcp", "TCP throughput (one iperf3 stream)")):
        tlist = targets.get(scenario, [])
        if not tlist:
            continue
        L.append("")
        L.append(f"## {title}")
        L.append("")
        if scenario == "http":
            L.append("| target | req/s median | req/s min–max | p50 ms | p99 ms | proxy CPU µs/req | errors | other load, cores |")
            L.append("|---|---|---|---|---|---|---|---|")
        else:
            L.append("| target | Gbit/s median | Gbit/s min–max | proxy CPU s/GB | other load, cores |")
            L.append("|---|---|---|---|---|")
        for t in tlist:
            rr = runs[scenario].get(t["name"], [])
            ok = [r for r in rr if r.get("ok")]
            if not ok:
                err = next((r.get("error") for r in rr if r.get("error")), "not run")
                L.append(f"| {t['label']} | failed: {err} | | | |" + (" | | | |" if scenario == "http" else ""))
                continue
            if scenario == "http":
                m, lo, hi = summarize(rr, "rps")
                cpu = summarize(rr, "cpu_us_per_req")[0]
                errs = sum(r.get("errors", 0) for r in ok)
                cpu_txt = f1(cpu) if t.get("kind") != "direct" else f"({f1(cpu)} upstream nginx)"
                L.append(f"| {t['label']} | {f0(m)} | {f0(lo)}–{f0(hi)} | {f2(summarize(rr, 'p50_ms')[0])} | "
                         f"{f2(summarize(rr, 'p99_ms')[0])} | {cpu_txt} | {errs} | {other_cell(rr)} |")
            else:
                m, lo, hi = summarize(rr, "gbps")
                cpu = summarize(rr, "cpu_s_per_gb")[0]
                cpu_txt = f2(cpu) if t.get("kind") != "direct" else "—"
                L.append(f"| {t['label']} | {f2(m)} | {f2(lo)}–{f2(hi)} | {cpu_txt} | {other_cell(rr)} |")

        # The two references against each other: a check on the run (the spike measured nginx at
        # 0.89× HAProxy for HTTP) and a feel for how much a ratio moves between rounds.
        key = "rps" if scenario == "http" else "gbps"
        ha = next((t for t in tlist if t["name"] == "haproxy"), None)
        ng = next((t for t in tlist if t["name"] == "nginx"), None)
        if ha and ng:
            xs = per_round_ratios(runs[scenario].get("nginx", []), runs[scenario].get("haproxy", []), key)
            L.append("")
            L.append(f"Peer check, nginx ÷ HAProxy per round: {ratio_cell(xs)}.")

        meshes = [t for t in tlist if t.get("kind") == "meshgate"]
        refs = [t for t in tlist if t["name"] in REFERENCES[scenario]]
        if meshes and refs:
            key = "rps" if scenario == "http" else "gbps"
            cpu_key = "cpu_us_per_req" if scenario == "http" else "cpu_s_per_gb"
            L.append("")
            L.append(f"Ratios, Meshgate ÷ reference, per round: median (min–max). Throughput: higher is better; "
                     f"CPU per {'request' if scenario == 'http' else 'GB'}"
                     f"{' and p99' if scenario == 'http' else ''}: lower is better.")
            L.append("")
            head = "| Meshgate | vs | throughput | CPU |" + (" p99 |" if scenario == "http" else "")
            L.append(head)
            L.append("|---|---|---|---|" + ("---|" if scenario == "http" else ""))
            for m in meshes:
                for ref in refs:
                    a, b = runs[scenario].get(m["name"], []), runs[scenario].get(ref["name"], [])
                    row = (f"| {m['label']} | {ref['label']} | {ratio_cell(per_round_ratios(a, b, key))} | "
                           f"{ratio_cell(per_round_ratios(a, b, cpu_key))} |")
                    if scenario == "http":
                        row += f" {ratio_cell(per_round_ratios(a, b, 'p99_ms'))} |"
                    L.append(row)
            L.append("")
            for goal_ref, goal in GOALS[scenario]:
                ref = next((t for t in refs if t["name"] == goal_ref), None)
                if not ref:
                    continue
                best, best_ratio = None, None
                for m in meshes:
                    xs = per_round_ratios(runs[scenario].get(m["name"], []), runs[scenario].get(ref["name"], []), key)
                    if xs and (best_ratio is None or med(xs) > best_ratio):
                        best, best_ratio = m, med(xs)
                if best is None:
                    L.append(f"- Target ≥ {goal:.2f}× {ref['label']}: no Meshgate figure.")
                else:
                    verdict = "met" if best_ratio >= goal else f"missed by {(goal - best_ratio) / goal * 100:.0f}%"
                    L.append(f"- Target ≥ {goal:.2f}× {ref['label']}: best Meshgate ({best['label']}) "
                             f"{best_ratio:.2f}× → **{verdict}**")
    build_tls_report(L, meta, targets, runs)
    build_telemetry_report(L, meta, targets, runs)
    build_policy_report(L, meta, targets, runs)
    L.append("")
    return "\n".join(L)


def build_tls_report(L: list[str], meta: dict, targets: dict, runs: dict) -> None:
    for scenario in ("https", "handshake", "h2"):
        tlist = targets.get(scenario, [])
        if not tlist:
            continue
        unit = "handshakes/s" if scenario == "handshake" else "req/s"
        per = "handshake" if scenario == "handshake" else "req"
        L.append("")
        L.append(f"## {TLS_TITLES[scenario]}")
        L.append("")
        how = ("each request on a new connection: requests = full handshakes" if scenario == "handshake"
               else f"{meta.get('tls_duration')} s per run")
        L.append(f"Load: `{meta.get('h2load_commands', {}).get(scenario, '?')}`; {how}.")
        L.append("")
        L.append(f"| target | {unit} median | min–max | mean request ms | proxy CPU µs/{per} | errors | TLS / ALPN | other load, cores |")
        L.append("|---|---|---|---|---|---|---|---|")
        for t in tlist:
            rr = runs.get(scenario, {}).get(t["name"], [])
            ok = [r for r in rr if r.get("ok")]
            if not ok:
                err = next((r.get("error") for r in rr if r.get("error")), "not run")
                L.append(f"| {t['label']} | failed: {err} | | | | | | |")
                continue
            m, lo, hi = summarize(rr, "rps")
            errs = sum(r.get("errors", 0) for r in ok)
            protos = sorted({f"{r.get('tls')} / {r.get('alpn')}" for r in ok})
            L.append(f"| {t['label']} | {f0(m)} | {f0(lo)}–{f0(hi)} | {f2(summarize(rr, 'mean_ms')[0])} | "
                     f"{f1(summarize(rr, 'cpu_us_per_req')[0])} | {errs} | {', '.join(protos)} | {other_cell(rr)} |")
        ha = next((t for t in tlist if t["name"] == "haproxy"), None)
        ng = next((t for t in tlist if t["name"] == "nginx"), None)
        if ha and ng:
            xs = per_round_ratios(runs[scenario].get("nginx", []), runs[scenario].get("haproxy", []), "rps")
            L.append("")
            L.append(f"Peer check, nginx ÷ HAProxy per round: {ratio_cell(xs)}.")
        meshes = [t for t in tlist if t.get("kind") == "meshgate"]
        refs = [t for t in tlist if t["name"] in REFERENCES[scenario]]
        if not (meshes and refs):
            continue
        L.append("")
        L.append(f"| Meshgate | vs | {unit} | CPU per {per} |")
        L.append("|---|---|---|---|")
        for m in meshes:
            for ref in refs:
                a, b = runs[scenario].get(m["name"], []), runs[scenario].get(ref["name"], [])
                L.append(f"| {m['label']} | {ref['label']} | {ratio_cell(per_round_ratios(a, b, 'rps'))} | "
                         f"{ratio_cell(per_round_ratios(a, b, 'cpu_us_per_req'))} |")
        L.append("")
        for goal_ref, goal in GOALS[scenario]:
            ref = next((t for t in refs if t["name"] == goal_ref), None)
            if not ref:
                continue
            best, best_ratio = None, None
            for m in meshes:
                xs = per_round_ratios(runs[scenario].get(m["name"], []), runs[scenario].get(ref["name"], []), "rps")
                if xs and (best_ratio is None or med(xs) > best_ratio):
                    best, best_ratio = m, med(xs)
            if best is None:
                L.append(f"- Target {unit} ≥ {goal:.2f}× {ref['label']}: no Meshgate figure.")
            else:
                verdict = "met" if best_ratio >= goal else f"missed by {(goal - best_ratio) / goal * 100:.0f}%"
                L.append(f"- Target {unit} ≥ {goal:.2f}× {ref['label']}: best Meshgate ({best['label']}) "
                         f"{best_ratio:.2f}× → **{verdict}**")


def build_telemetry_report(L: list[str], meta: dict, targets: dict, runs: dict) -> None:
    tlist = targets.get("telemetry", [])
    if not tlist:
        return
    tr = runs.get("telemetry", {})
    L.append("")
    L.append("## Telemetry overhead (HTTP/1.1 keep-alive, Meshgate variants)")
    L.append("")
    L.append(f"Load: `{meta['http_command']}` against each variant, interleaved like the other scenarios.")
    L.append("")
    L.append("| variant | req/s median | req/s min–max | p50 ms | p99 ms | proxy CPU µs/req | errors | scrapes | other load, cores |")
    L.append("|---|---|---|---|---|---|---|---|---|")
    for t in tlist:
        rr = tr.get(t["name"], [])
        ok = [r for r in rr if r.get("ok")]
        if not ok:
            err = next((r.get("error") for r in rr if r.get("error")), "not run")
            L.append(f"| {t['label']} | failed: {err} | | | | | | | |")
            continue
        m, lo, hi = summarize(rr, "rps")
        errs = sum(r.get("errors", 0) for r in ok)
        scr = "—"
        if any("scrapes" in r for r in ok):
            scr = (f"{sum(r.get('scrapes', 0) for r in ok)} ok, {sum(r.get('scrape_failures', 0) for r in ok)} failed, "
                   f"{max(r.get('scrape_bytes', 0) for r in ok)} B each")
        L.append(f"| {t['label']} | {f0(m)} | {f0(lo)}–{f0(hi)} | {f2(summarize(rr, 'p50_ms')[0])} | "
                 f"{f2(summarize(rr, 'p99_ms')[0])} | {f1(summarize(rr, 'cpu_us_per_req')[0])} | {errs} | {scr} | {other_cell(rr)} |")
    names = {t["name"]: t for t in tlist}
    L.append("")
    L.append("Ratios per round, variant ÷ baseline: median (min–max). req/s: higher is better (the target is a floor); "
             "CPU per request: lower is better.")
    L.append("")
    L.append("| variant | baseline | req/s | CPU per request | target (req/s) | verdict |")
    L.append("|---|---|---|---|---|---|")
    for var, base, goal in TELEMETRY_GOALS:
        if var not in names or base not in names:
            continue
        a, b = tr.get(var, []), tr.get(base, [])
        xs = per_round_ratios(a, b, "rps")
        cs = per_round_ratios(a, b, "cpu_us_per_req")
        if xs:
            r = med(xs)
            verdict = "met" if r >= goal else f"missed by {(goal - r) / goal * 100:.0f}%"
        else:
            verdict = "no figure"
        L.append(f"| {names[var]['label']} | {names[base]['label']} | {ratio_cell(xs)} | {ratio_cell(cs)} | "
                 f"≥ {goal:.2f}× | **{verdict}** |")


def build_policy_report(L: list[str], meta: dict, targets: dict, runs: dict) -> None:
    plist = targets.get("policy", [])
    if not plist:
        return
    pr = runs.get("policy", {})
    L.append("")
    L.append("## Route policies (HTTP/1.1 keep-alive, Meshgate variants)")
    L.append("")
    L.append(f"Load: `{meta['http_command']}` plus an `Origin` header, against each variant, interleaved.")
    L.append("")
    L.append("| variant | req/s median | req/s min–max | p50 ms | p99 ms | proxy CPU µs/req | errors | other load, cores |")
    L.append("|---|---|---|---|---|---|---|---|")
    for t in plist:
        rr = pr.get(t["name"], [])
        if not any(r.get("ok") for r in rr):
            err = next((r.get("error") for r in rr if r.get("error")), "not run")
            L.append(f"| {t['label']} | failed: {err} | | | | | | |")
            continue
        m, lo, hi = summarize(rr, "rps")
        errs = sum(r.get("errors", 0) for r in rr if r.get("ok"))
        L.append(f"| {t['label']} | {f0(m)} | {f0(lo)}–{f0(hi)} | {f2(summarize(rr, 'p50_ms')[0])} | "
                 f"{f2(summarize(rr, 'p99_ms')[0])} | {f1(summarize(rr, 'cpu_us_per_req')[0])} | {errs} | {other_cell(rr)} |")
    if len(plist) == 2:
        base, var = plist[0], plist[1]
        a, b = pr.get(var["name"], []), pr.get(base["name"], [])
        L.append("")
        L.append(f"Per round, {var['label']} ÷ {base['label']}: req/s {ratio_cell(per_round_ratios(a, b, 'rps'))}, "
                 f"CPU per request {ratio_cell(per_round_ratios(a, b, 'cpu_us_per_req'))} (median, min–max).")


def cmd_jwt(args) -> int:
    """Needs PyJWT and cryptography (scripts/install-deps.sh --test installs them)."""
    import base64

    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    numbers = key.public_key().public_numbers()

    def b64(n: int) -> str:
        return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()

    jwk = {"kty": "EC", "crv": "P-256", "kid": "bench", "alg": "ES256", "x": b64(numbers.x), "y": b64(numbers.y)}
    with open(args.jwks, "w") as f:
        json.dump({"keys": [jwk]}, f)
    claims = {"iss": args.issuer, "sub": "bench", "aud": "bench", "groups": ["bench"], "exp": int(time.time()) + 86400}
    print(jwt.encode(claims, key, algorithm="ES256", headers={"kid": "bench"}))
    return 0


def cmd_report(args) -> int:
    with open(args.raw) as f:
        raw = json.load(f)
    text = build_report(raw)
    with open(args.md, "w") as f:
        f.write(text)
    print(text)
    return 0


# ---------------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    w = sub.add_parser("wait-tcp")
    w.add_argument("--port", type=int, required=True)
    w.add_argument("--pid", type=int)
    w.add_argument("--timeout", type=float, default=15)

    h = sub.add_parser("wait-http")
    h.add_argument("--url", required=True)
    h.add_argument("--pid", type=int)
    h.add_argument("--timeout", type=float, default=30)

    c = sub.add_parser("check-http")
    c.add_argument("--url", required=True)
    c.add_argument("--size", type=int)
    c.add_argument("--cafile", help="verify an https:// URL's certificate against this CA")
    c.add_argument("--header", help="request headers, joined with ||")

    j = sub.add_parser("jwt", help="an ES256 key as a JWKS (written to --jwks) and a token it signs (printed)")
    j.add_argument("--jwks", required=True)
    j.add_argument("--issuer", required=True)

    m = sub.add_parser("measure")
    m.add_argument("--targets", required=True)
    m.add_argument("--meta")
    m.add_argument("--pids", help="file with the PIDs of every process run.sh started")
    m.add_argument("--out", required=True)
    m.add_argument("--logs", required=True)
    m.add_argument("--rounds", type=int, default=3)
    m.add_argument("--http-duration", type=int, default=10)
    m.add_argument("--tcp-duration", type=int, default=10)
    m.add_argument("--tls-duration", type=int, default=10)
    m.add_argument("--handshakes", type=int, default=10000)
    m.add_argument("--connections", type=int, default=50)
    m.add_argument("--warmup", type=int, default=2)

    r = sub.add_parser("report")
    r.add_argument("--raw", required=True)
    r.add_argument("--md", required=True)

    args = ap.parse_args()
    if args.cmd == "wait-tcp":
        ok = wait_until(lambda: listening(args.port), args.timeout, args.pid, f"port {args.port}")
        return 0 if ok else 1
    if args.cmd == "wait-http":
        ok = wait_until(lambda: http_status(args.url, 1.0)[0] == 200, args.timeout, args.pid, args.url)
        return 0 if ok else 1
    if args.cmd == "check-http":
        status, body = http_status(args.url, cafile=args.cafile, header=args.header)
        good = status == 200 and (args.size is None or len(body) == args.size)
        if not good:
            log(f"{args.url}: HTTP {status}, {len(body)} bytes")
        return 0 if good else 1
    if args.cmd == "jwt":
        return cmd_jwt(args)
    if args.cmd == "measure":
        signal.signal(signal.SIGTERM, _on_term)
        signal.signal(signal.SIGINT, _on_term)
        return cmd_measure(args)
    if args.cmd == "report":
        return cmd_report(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
