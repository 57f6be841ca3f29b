"""DestinationRule `outlierDetection` through the real gateway: an instance that dies is ejected,
traffic avoids it, and it is back in rotation after `baseEjectionTime` once it answers again; the
same for a TCP route, where connect failures are what counts."""

from __future__ import annotations

from collections import Counter

from conftest import (
    Mesh, SampleApp, curl, documents, free_port, gateway_yaml, http_virtual_service_yaml, resource_yaml, service_yaml, tcp_exchange,
    tcp_virtual_service_yaml, wait_until, workload_entry_yaml,
)
from test_load_balancing import versions_seen

DETECTION = "outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 2s, maxEjectionPercent: 100}"


def restart(mesh: Mesh, app: SampleApp, *command: str) -> None:
    """Starts the same app again on the same address and port."""
    proc = mesh.run(f"{app.service}-{app.version}-again", "sample-app", *command, "--listen", f"{app.host}:{app.port}")
    mesh._wait_listening(proc)


def endpoint_health(gw, cluster: str) -> dict[str, str]:
    listing = curl(f"http://127.0.0.1:{gw.admin_port}/clusters").json()
    entry = next(c for c in listing["clusters"] if c["name"] == cluster)
    return {e["address"]: e["health"] for e in entry["endpoints"]}


def test_a_dead_instance_is_ejected_then_returns(mesh: Mesh):
    apps = {v: mesh.http_app("httpbin", v) for v in ("v1", "v2", "v3")}
    port = free_port()
    files = {
        "all.yaml": documents(
            service_yaml("httpbin", 9080),
            *[workload_entry_yaml(f"httpbin-{v}", "httpbin", v, app.host, "http", app.port) for v, app in apps.items()],
            gateway_yaml("web", port, "HTTP"),
            http_virtual_service_yaml("httpbin", "web", "httpbin"),
            resource_yaml("DestinationRule", "httpbin", f"  host: httpbin\n  trafficPolicy:\n    loadBalancer: {{simple: ROUND_ROBIN}}\n    {DETECTION}\n"),
        )
    }
    gw = mesh.gateway(mesh.config_dir(files), {"http": port})
    cluster = "outbound|9080||httpbin.default.svc.cluster.local"
    dead = apps["v3"]
    dead.proc.stop()
    dead_address = f"{dead.host}:{dead.port}"
    # Round robin reaches the dead one within three requests; its connect failure ejects it (and
    # Istio's default retry takes the request elsewhere, so the client never sees it).
    assert versions_seen(gw.url("/"), 3) and endpoint_health(gw, cluster)[dead_address] == "EJECTED"
    counts = Counter(versions_seen(gw.url("/"), 200))
    assert counts.keys() <= {"v1", "v2"} and sum(counts.values()) == 200, counts

    restart(mesh, dead, "http", "--service", "httpbin", "--version", "v3")
    wait_until(lambda: "v3" in versions_seen(gw.url("/"), 6), 15, "the restarted instance back in rotation after baseEjectionTime", interval=0.2)
    assert endpoint_health(gw, cluster)[dead_address] == "HEALTHY"


def test_a_dead_tcp_endpoint_is_ejected(mesh: Mesh):
    backend = mesh.backend("echo", ["a", "b", "c"], kind="tcp", service_port=9000)
    port = free_port()
    rule = backend.yaml.replace("  host: echo\n", f"  host: echo\n  trafficPolicy:\n    loadBalancer: {{simple: ROUND_ROBIN}}\n    {DETECTION}\n", 1)
    gw = mesh.gateway(
        mesh.config_dir({"tcp.yaml": documents(rule, gateway_yaml("tcp", port, "TCP"), tcp_virtual_service_yaml("echo", "tcp", port, "echo", {None: 100}, 9000))}),
        {"tcp": port},
    )
    backend.apps["c"].proc.stop()

    def answer() -> bytes:
        try:
            return tcp_exchange("127.0.0.1", port, b"hi\n")
        except OSError:
            return b""

    dead = f"{backend.apps['c'].host}:{backend.apps['c'].port}"

    def ejected() -> bool:
        if endpoint_health(gw, "outbound|9000||echo.default.svc.cluster.local")[dead] == "EJECTED":
            return True
        answer()  # round robin comes to the dead endpoint within three connections (closed unanswered)
        return False

    wait_until(ejected, 10, "the dead endpoint to be ejected", interval=0.05)
    answers = Counter(answer() for _ in range(30))
    assert answers.keys() <= {b"a hi\n", b"b hi\n"} and sum(answers.values()) == 30, answers


def test_locality_failover_follows_proximity_then_the_failover_rule(mesh: Mesh):
    """The gateway is in us-west/zone1. With outlier detection, traffic stays in its zone; when that
    instance dies it moves to the same region's other zone, then to the region the `failover` rule
    names (eu), never to the unnamed one (ap) while eu has an instance."""
    places = {"a": "us-west/zone1", "b": "us-west/zone2", "c": "eu/zone1", "d": "ap/zone1"}
    apps = {v: mesh.http_app("httpbin", v) for v in places}
    port = free_port()
    entries = [
        workload_entry_yaml(f"httpbin-{v}", "httpbin", v, app.host, "http", app.port) + f"  locality: {places[v]}\n" for v, app in apps.items()
    ]
    rule = f"""\
  host: httpbin
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
      localityLbSetting: {{failover: [{{from: us-west, to: eu}}]}}
    {DETECTION}
"""
    files = {
        "all.yaml": documents(
            service_yaml("httpbin", 9080), *entries, gateway_yaml("web", port, "HTTP"), http_virtual_service_yaml("httpbin", "web", "httpbin"),
            resource_yaml("DestinationRule", "httpbin", rule),
        )
    }
    gw = mesh.gateway(mesh.config_dir(files, locality="us-west/zone1"), {"http": port})
    assert set(versions_seen(gw.url("/"), 30)) == {"a"}
    apps["a"].proc.stop()
    versions_seen(gw.url("/"), 2)  # the first finds a dead: ejected, retried in zone2
    assert set(versions_seen(gw.url("/"), 30)) == {"b"}
    apps["b"].proc.stop()
    versions_seen(gw.url("/"), 2)
    assert set(versions_seen(gw.url("/"), 30)) == {"c"}
