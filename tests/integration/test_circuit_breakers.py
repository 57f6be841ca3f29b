"""DestinationRule `connectionPool` limits (Envoy's circuit breakers) through the real gateway: Istio's
circuit-breaking walkthrough with curl as the load generator (fortio's role), the overflow counters
in /stats/prometheus, and `maxConnections` on a TCP route."""

from __future__ import annotations

import re
import socket
import subprocess
import threading

from conftest import (
    REQUEST_TIMEOUT, Mesh, documents, free_port, gateway_yaml, http_get, http_virtual_service_yaml, parse_samples, resource_yaml,
    service_yaml, tcp_virtual_service_yaml, total, wait_until, workload_entry_yaml, write_atomically,
)

# The walkthrough's DestinationRule (istio.io/latest/docs/tasks/traffic-management/circuit-breaking/).
WALKTHROUGH_RULE = """\
  host: httpbin
  trafficPolicy:
    connectionPool:
      tcp:
        maxConnections: 1
      http:
        http1MaxPendingRequests: 1
        maxRequestsPerConnection: 1
    outlierDetection:
      consecutive5xxErrors: 1
      interval: 1s
      baseEjectionTime: 3m
      maxEjectionPercent: 100
"""


def load(url: str, clients: int, requests: int) -> list[tuple[str, str, str]]:
    """`clients` curl processes at once, each sending `requests` on its keep-alive connection
    (fortio -c CLIENTS -n CLIENTS×REQUESTS): every answer's status, response flags and
    `x-envoy-overloaded`."""
    results: list[tuple[str, str, str]] = []
    lock = threading.Lock()

    def client() -> None:
        out = subprocess.run(
            ["curl", "-sS", "-o", "/dev/null", "--max-time", str(REQUEST_TIMEOUT * 6),
             "-w", "STATUS=%{http_code} FLAGS=%header{x-meshgate-response-flags} OVERLOADED=%header{x-envoy-overloaded}\\n",
             f"{url}?i=[1-{requests}]"],
            capture_output=True, text=True, timeout=REQUEST_TIMEOUT * 8,
        ).stdout
        with lock:
            results.extend(re.findall(r"^STATUS=(\d+) FLAGS=(\S*) OVERLOADED=(\S*)$", out, re.M))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(REQUEST_TIMEOUT * 10)
    return results


def metrics_port(gw) -> int:
    return int(re.search(r"^metricsPort: (\d+)$", (gw.config_dir / "meshgate.yaml").read_text(), re.M).group(1))


def test_the_circuit_breaking_walkthrough(mesh: Mesh):
    """One connection and one pending request allowed, each answer held 50 ms, three clients × 30
    requests: some requests overflow (503 UO, x-envoy-overloaded), the rest pass, and the overflow
    counter counts exactly the 503s. Without the rule, all 90 pass."""
    app = mesh.http_app("httpbin", "v1", delay_ms=50)
    port = free_port()
    base = [
        service_yaml("httpbin", 9080),
        workload_entry_yaml("httpbin-v1", "httpbin", "v1", app.host, "http", app.port),
        gateway_yaml("web", port, "HTTP"),
        http_virtual_service_yaml("httpbin", "web", "httpbin"),
    ]
    # One event loop: each loop may open one connection of its own (as each Envoy worker's pool may),
    # so with two the three clients could share two connections and one pending slot.
    conf = mesh.config_dir(
        {"httpbin.yaml": documents(*base), "circuit-breaker.yaml": resource_yaml("DestinationRule", "httpbin", WALKTHROUGH_RULE)}, eventLoops=1
    )
    gw = mesh.gateway(conf, {"http": port})

    results = load(gw.url("/get"), 3, 30)
    assert len(results) == 90
    assert set(results) <= {("200", "", ""), ("503", "UO", "true")}, set(results)
    overflowed = sum(1 for status, _, _ in results if status == "503")
    assert 0 < overflowed < 90, f"{overflowed} of 90 overflowed"
    print(f"circuit-breaking walkthrough: {overflowed} of 90 overflowed (503 UO)")
    text = http_get("127.0.0.1", metrics_port(gw), "/stats/prometheus").text
    samples = parse_samples(text)
    cluster = "outbound|9080||httpbin.default.svc.cluster.local"
    assert total(samples, "envoy_cluster_upstream_rq_pending_overflow", cluster_name=cluster) == overflowed, text
    assert "# TYPE envoy_cluster_upstream_rq_pending_overflow counter" in text
    # Nothing is held once the load is over.
    assert total(samples, "envoy_cluster_circuit_breakers_default_remaining_pending", cluster_name=cluster) == 1
    wait_until(
        lambda: total(parse_samples(http_get("127.0.0.1", metrics_port(gw), "/stats/prometheus").text),
                      "envoy_cluster_circuit_breakers_default_remaining_cx", cluster_name=cluster) == 1,
        10, "the last upstream connection to close (maxRequestsPerConnection: 1)",
    )

    (conf / "circuit-breaker.yaml").unlink()
    assert gw.reload()["lastReload"]["ok"]
    results = load(gw.url("/get"), 3, 30)
    assert results == [("200", "", "")] * 90


def test_http2_max_requests_refuses_what_is_over_the_limit(mesh: Mesh):
    app = mesh.http_app("httpbin", "v1", delay_ms=300)
    port = free_port()
    rule = "  host: httpbin\n  trafficPolicy:\n    connectionPool: {http: {http2MaxRequests: 2}}\n"
    files = {
        "all.yaml": documents(
            service_yaml("httpbin", 9080), workload_entry_yaml("httpbin-v1", "httpbin", "v1", app.host, "http", app.port),
            gateway_yaml("web", port, "HTTP"), http_virtual_service_yaml("httpbin", "web", "httpbin"),
            resource_yaml("DestinationRule", "httpbin", rule),
        )
    }
    gw = mesh.gateway(mesh.config_dir(files), {"http": port})
    results = load(gw.url("/"), 4, 3)
    assert len(results) == 12
    assert set(results) <= {("200", "", ""), ("503", "UO", "true")}, set(results)
    assert sum(1 for status, _, _ in results if status == "200") >= 2
    assert sum(1 for status, _, _ in results if status == "503") >= 1, results


def test_tcp_max_connections_closes_the_third_connection_with_uo(mesh: Mesh):
    backend = mesh.backend("echo", ["a"], kind="tcp", service_port=9000)
    port = free_port()
    log = mesh.tmp_path / "access.log"
    rule = backend.yaml.replace("  host: echo\n", "  host: echo\n  trafficPolicy:\n    connectionPool: {tcp: {maxConnections: 2}}\n", 1)
    files = {"tcp.yaml": documents(rule, gateway_yaml("tcp", port, "TCP"), tcp_virtual_service_yaml("echo", "tcp", port, "echo", {None: 100}, 9000))}
    gw = mesh.gateway(mesh.config_dir(files, accessLogFile=str(log)), {"tcp": port})
    held = []
    try:
        for _ in range(2):
            sock = socket.create_connection(("127.0.0.1", port), timeout=REQUEST_TIMEOUT)
            sock.sendall(b"hello\n")
            assert sock.recv(100) == b"a hello\n"
            held.append(sock)
        third = socket.create_connection(("127.0.0.1", port), timeout=REQUEST_TIMEOUT)
        third.sendall(b"hello\n")
        try:
            answer = third.recv(100)
        except ConnectionResetError:
            answer = b""  # closed before reading what was sent: a reset
        assert answer == b"", "the third connection was served"
        third.close()
        wait_until(lambda: log.exists() and " UO " in log.read_text(), 10, "the access log line with UO")
        # One closes: a new connection is served again.
        held.pop().close()

        def served() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=REQUEST_TIMEOUT) as sock:
                    sock.sendall(b"again\n")
                    return sock.recv(100) == b"a again\n"
            except ConnectionResetError:
                return False  # still refused: the closed connection is not counted out yet

        wait_until(served, 10, "a connection to be served after one closed", interval=0.1)
    finally:
        for sock in held:
            sock.close()
