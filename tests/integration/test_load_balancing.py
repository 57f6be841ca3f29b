"""DestinationRule `trafficPolicy.loadBalancer` through the real gateway, with curl: ROUND_ROBIN and
RANDOM spread evenly, LEAST_REQUEST (Istio's default) avoids a slow instance, consistentHash keeps a
user, a cookie or a client on one instance. Each sample app answers with its `x-version`, so the
client sees which instance served it."""

from __future__ import annotations

import re
import subprocess
import threading
from collections import Counter

from conftest import (
    REQUEST_TIMEOUT, Mesh, curl, documents, free_port, gateway_yaml, http_virtual_service_yaml, resource_yaml, service_yaml,
    workload_entry_yaml, write_atomically,
)


def cluster_files(mesh: Mesh, traffic_policy: str, versions=("v1", "v2", "v3"), delays: dict[str, int] | None = None):
    """httpbin with one instance per version, behind `traffic_policy` (YAML under `trafficPolicy:`)."""
    apps = {v: mesh.http_app("httpbin", v, delay_ms=(delays or {}).get(v, 0)) for v in versions}
    port = free_port()
    parts = [service_yaml("httpbin", 9080)]
    parts += [workload_entry_yaml(f"httpbin-{v}", "httpbin", v, app.host, "http", app.port) for v, app in apps.items()]
    parts.append(gateway_yaml("web", port, "HTTP"))
    parts.append(http_virtual_service_yaml("httpbin", "web", "httpbin"))
    parts.append(destination_rule(traffic_policy))
    return apps, port, parts


def destination_rule(traffic_policy: str) -> str:
    policy = "".join(f"    {line}\n" for line in traffic_policy.splitlines())
    return resource_yaml("DestinationRule", "httpbin", f"  host: httpbin\n  trafficPolicy:\n{policy}")


def versions_seen(url: str, count: int, *args: str) -> list[str]:
    """`count` requests on one keep-alive connection (curl's URL globbing): each answer's x-version."""
    out = subprocess.run(
        ["curl", "-sS", "--max-time", str(REQUEST_TIMEOUT * 4), "-w", "\\nVERSION=%header{x-version} STATUS=%{http_code}\\n", *args,
         f"{url}?i=[1-{count}]"],
        capture_output=True, text=True, timeout=REQUEST_TIMEOUT * 6,
    ).stdout
    seen = re.findall(r"^VERSION=(\S*) STATUS=(\d+)$", out, re.M)
    assert len(seen) == count and all(status == "200" for _, status in seen), out[-2000:]
    return [version for version, _ in seen]


def test_round_robin_then_random_spread_evenly(mesh: Mesh):
    apps, port, parts = cluster_files(mesh, "loadBalancer: {simple: ROUND_ROBIN}")
    conf = mesh.config_dir({"lb.yaml": documents(*parts)})
    gw = mesh.gateway(conf, {"http": port})
    counts = Counter(versions_seen(gw.url("/"), 999))
    # Round robin over 3 instances on one event loop: exactly a third each.
    assert counts == {"v1": 333, "v2": 333, "v3": 333}, counts

    parts[-1] = destination_rule("loadBalancer: {simple: RANDOM}")
    write_atomically(conf / "lb.yaml", documents(*parts))
    assert gw.reload()["lastReload"]["ok"]
    counts = Counter(versions_seen(gw.url("/"), 999))
    # Random: each share is 333 ± 5 standard deviations (σ ≈ 15).
    assert set(counts) == {"v1", "v2", "v3"} and all(250 <= n <= 420 for n in counts.values()), counts


def test_least_request_is_the_default_and_avoids_a_slow_instance(mesh: Mesh):
    """One instance holds each answer 150 ms, the other answers at once; four clients at a time.
    Power of two choices over requests in flight sends most requests to the fast one (round robin
    would send half to each)."""
    apps, port, parts = cluster_files(mesh, "connectionPool: {http: {idleTimeout: 60s}}", versions=("slow", "fast"), delays={"slow": 150})
    gw = mesh.gateway(mesh.config_dir({"lb.yaml": documents(*parts)}), {"http": port})
    results: list[list[str]] = []
    lock = threading.Lock()

    def client() -> None:
        seen = versions_seen(gw.url("/"), 25)
        with lock:
            results.append(seen)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(REQUEST_TIMEOUT * 8)
    counts = Counter(version for seen in results for version in seen)
    assert sum(counts.values()) == 100, counts
    assert counts["fast"] >= 75, f"LEAST_REQUEST sent {counts['slow']} of 100 requests to the slow instance"
    listing = curl(f"http://127.0.0.1:{gw.admin_port}/clusters").json()
    cluster = next(c for c in listing["clusters"] if c["name"] == "outbound|9080||httpbin.default.svc.cluster.local")
    assert cluster["loadBalancer"] == "LEAST_REQUEST"
    assert [e["activeRequests"] for e in cluster["endpoints"]] == [0, 0], "every request was counted out again"


def test_consistent_hash_by_header_keeps_each_user_on_one_instance(mesh: Mesh):
    apps, port, parts = cluster_files(mesh, "loadBalancer:\n  consistentHash: {httpHeaderName: x-user, maglev: {tableSize: 251}}")
    conf = mesh.config_dir({"lb.yaml": documents(*parts)})
    gw = mesh.gateway(conf, {"http": port})
    owners = {}
    for user in range(20):
        seen = set(versions_seen(gw.url("/"), 5, "-H", f"x-user: user-{user}"))
        assert len(seen) == 1, f"user-{user} went to {seen}"
        owners[user] = seen.pop()
    assert len(set(owners.values())) >= 2, f"20 users all on {set(owners.values())}"
    # A reload that keeps the endpoint set builds the same table: every user stays where it was.
    parts[-1] = destination_rule("loadBalancer:\n  consistentHash: {httpHeaderName: x-user, maglev: {tableSize: 251}}\nconnectionPool: {tcp: {connectTimeout: 2s}}")
    write_atomically(conf / "lb.yaml", documents(*parts))
    assert gw.reload()["lastReload"]["ok"]
    assert {user: versions_seen(gw.url("/"), 1, "-H", f"x-user: user-{user}")[0] for user in range(20)} == owners
    # Without the header: spread (no key, a random pick).
    assert len(set(versions_seen(gw.url("/"), 60))) >= 2


def test_consistent_hash_cookie_is_set_then_sticks(mesh: Mesh):
    apps, port, parts = cluster_files(mesh, "loadBalancer:\n  consistentHash: {httpCookie: {name: user, path: /, ttl: 3600s}}")
    gw = mesh.gateway(mesh.config_dir({"lb.yaml": documents(*parts)}), {"http": port})
    first = curl(gw.url("/"))
    cookie = first.headers.get("set-cookie", "")
    assert re.fullmatch(r'user="[0-9a-f]+"; Max-Age=3600; Path=/; HttpOnly', cookie), cookie
    value = cookie.split(";", 1)[0]
    owner = first.headers["x-version"]
    again = versions_seen(gw.url("/"), 20, "-H", f"cookie: {value}")
    assert set(again) == {owner}
    # With the cookie the client already has, none is set again.
    assert "set-cookie" not in curl(gw.url("/"), "-H", f"cookie: {value}").headers


def test_source_ip_hash_on_a_tcp_route_keeps_a_client_on_one_instance(mesh: Mesh):
    from conftest import tcp_exchange, tcp_virtual_service_yaml

    backend = mesh.backend("echo", ["a", "b", "c"], kind="tcp", service_port=9000)
    port = free_port()
    files = {
        "tcp.yaml": documents(
            backend.yaml.replace("  host: echo\n", "  host: echo\n  trafficPolicy:\n    loadBalancer: {consistentHash: {useSourceIp: true}}\n", 1),
            gateway_yaml("tcp", port, "TCP"),
            tcp_virtual_service_yaml("echo", "tcp", port, "echo", {None: 100}, 9000),
        )
    }
    gw = mesh.gateway(mesh.config_dir(files), {"tcp": port})
    prefixes = {tcp_exchange("127.0.0.1", gw.ports["tcp"], b"hi\n").split(b" ")[0] for _ in range(12)}
    assert len(prefixes) == 1, prefixes
