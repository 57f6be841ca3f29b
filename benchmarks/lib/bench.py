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
import platform
import resource
import shlex
import signal
import statistics
import subprocess
import sys
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
}
# The targets (Meshgate ÷ HAProxy, same interleaved run). For TCP the check is made
# against HAProxy's default buffers and against 256 KiB buffers (equal read sizes).
GOALS = {"http": [("haproxy", 0.60)], "tcp": [("haproxy", 0.80), ("haproxy-256k", 0.80)]}


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


def http_status(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with _OPENER.open(url, timeout=timeout) as resp:
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

def run_wrk(port: int, duration: int, conns: int, log_path: str) -> dict:
    url = f"http://127.0.0.1:{port}/index.html"
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency", "-s", WRK_SCRIPT, url]
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
        if scenario == "http":
            res["cpu_us_per_req"] = cpu * 1e6 / res["requests"]
        else:
            res["cpu_s_per_gb"] = cpu / (res["bytes"] / 1e9)
    return res


def fmt_result(scenario: str, res: dict) -> str:
    if not res.get("ok"):
        return f"FAILED ({res.get('error')})"
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
    targets: dict = {"http": [], "tcp": []}
    with open(path) as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            scenario, name, kind, port, pid, label = line.rstrip("\n").split("\t")
            targets[scenario].append({"name": name, "kind": kind, "port": int(port),
                                      "pid": int(pid) if pid not in ("", "0") else None, "label": label})
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
        "runs": {"http": {}, "tcp": {}},
    }
    for scenario in ("http", "tcp"):
        targets = spec["targets"].get(scenario, [])
        if not targets:
            continue
        # Sanity check and warm-up: a target that does not serve the 100-byte file is not measured.
        live = []
        for t in targets:
            if scenario == "http":
                status, body = http_status(f"http://127.0.0.1:{t['port']}/index.html")
                if status != 200 or len(body) != 100:
                    log(f"[http] {t['name']}: sanity GET gave {status} / {len(body)} bytes; not measured")
                    raw["runs"][scenario][t["name"]] = [
                        {"ok": False, "error": f"sanity GET gave HTTP {status}, {len(body)} bytes"}]
                    continue
                if args.warmup > 0:
                    run_wrk(t["port"], args.warmup, args.connections,
                            os.path.join(args.logs, f"http-{t['name']}-warmup.log"))
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
        },
        "rounds": args.rounds,
        "http_duration": args.http_duration,
        "tcp_duration": args.tcp_duration,
        "connections": args.connections,
        "warmup": args.warmup,
        "http_command": f"wrk -t1 -c{args.connections} -d{args.http_duration}s --latency "
                        f"-s benchmarks/lib/wrk-json.lua http://127.0.0.1:PORT/index.html",
        "tcp_command": f"iperf3 -c 127.0.0.1 -p PORT -t {args.tcp_duration} -J",
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
    L.append("")
    return "\n".join(L)


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

    m = sub.add_parser("measure")
    m.add_argument("--targets", required=True)
    m.add_argument("--meta")
    m.add_argument("--pids", help="file with the PIDs of every process run.sh started")
    m.add_argument("--out", required=True)
    m.add_argument("--logs", required=True)
    m.add_argument("--rounds", type=int, default=3)
    m.add_argument("--http-duration", type=int, default=10)
    m.add_argument("--tcp-duration", type=int, default=10)
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
        status, body = http_status(args.url)
        good = status == 200 and (args.size is None or len(body) == args.size)
        if not good:
            log(f"{args.url}: HTTP {status}, {len(body)} bytes")
        return 0 if good else 1
    if args.cmd == "measure":
        signal.signal(signal.SIGTERM, _on_term)
        signal.signal(signal.SIGINT, _on_term)
        return cmd_measure(args)
    if args.cmd == "report":
        return cmd_report(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
