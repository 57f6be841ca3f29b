"""Istio's standard metrics on /stats/prometheus, checked with promtool, with a real Prometheus
server scraping the gateway, and with a long-lived TCP session reported while open; admin
/config_dump and /clusters follow reloads."""

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.parse

import pytest

from conftest import (
    LABEL,
    curl,
    parse_samples,
    total,
    documents,
    free_port,
    gateway_yaml,
    http_get,
    http_virtual_service_yaml,
    recv_line,
    tcp_exchange,
    tcp_virtual_service_yaml,
    wait_until,
    write_atomically,
)

# Istio's metric name; promtool's lint prefers seconds, but dashboards are built on this exact name.
ISTIO_NAME_LINT = 'istio_request_duration_milliseconds use base unit "seconds" instead of "milliseconds"'

def scrape(port: int) -> str:
    reply = http_get("127.0.0.1", port, "/stats/prometheus", timeout=5)
    assert reply.status == 200
    return reply.text


def gateway_with_http_and_tcp(mesh, **settings):
    reviews = mesh.backend("reviews", ["v1"])
    echo = mesh.backend("tcp-echo", ["v1", "v2"], kind="tcp", service_port=9000, prefixes={"v1": "one", "v2": "two"})
    http_port, tcp_port, metrics_port = free_port(), free_port(), free_port()
    config = mesh.config_dir(
        {
            "mesh.yaml": documents(
                reviews.yaml,
                echo.yaml,
                gateway_yaml("web", http_port, "HTTP"),
                gateway_yaml("tcp", tcp_port, "TCP"),
                http_virtual_service_yaml("reviews", "web", "reviews", "v1"),
                tcp_virtual_service_yaml("echo", "tcp", tcp_port, "tcp-echo", {"v1": 100}, 9000),
            )
        },
        metricsPort=metrics_port,
        **settings,
    )
    gateway = mesh.gateway(config, {"http": http_port, "tcp": tcp_port})
    return gateway, metrics_port, tcp_port


def test_istio_metrics_after_20_tcp_connections_and_20_requests(mesh):
    gateway, metrics_port, tcp_port = gateway_with_http_and_tcp(mesh)
    for index in range(20):
        assert tcp_exchange("127.0.0.1", tcp_port, f"hello {index}\n".encode()) == f"one hello {index}\n".encode()
    for _ in range(15):
        assert curl(gateway.url("/productpage")).status == 200
    for _ in range(5):
        assert curl(gateway.url("/status/503")).status == 503

    def closed_all():
        samples = parse_samples(scrape(metrics_port))
        return samples if total(samples, "istio_tcp_connections_closed_total") == 20 else None

    samples = wait_until(closed_all, 20, "20 closed TCP connections in the metrics")
    tcp_labels = {
        "reporter": "source",
        "destination_service": "tcp-echo.default.svc.cluster.local",
        "destination_service_name": "tcp-echo",
        "destination_version": "v1",
        "destination_workload": "tcp-echo-v1",
        "request_protocol": "tcp",
        "response_flags": "-",
    }
    assert total(samples, "istio_tcp_connections_opened_total", **tcp_labels) == 20
    assert total(samples, "istio_tcp_connections_closed_total", **tcp_labels) == 20
    assert total(samples, "istio_tcp_received_bytes_total", **tcp_labels) == sum(len(f"hello {i}\n") for i in range(20))
    assert total(samples, "istio_tcp_sent_bytes_total", **tcp_labels) == sum(len(f"one hello {i}\n") for i in range(20))

    http_labels = {"reporter": "source", "destination_service": "reviews.default.svc.cluster.local", "destination_version": "v1"}
    assert total(samples, "istio_requests_total", response_code="200", **http_labels) == 15
    assert total(samples, "istio_requests_total", response_code="503", **http_labels) == 5
    assert total(samples, "istio_request_duration_milliseconds_count", response_code="200", **http_labels) == 15
    # Label order is Istio's: reporter first, grpc_response_status last.
    line = next(l for l in scrape(metrics_port).splitlines() if l.startswith("istio_requests_total{"))
    names = [name for name, _ in LABEL.findall(line)]
    assert names[0] == "reporter" and names[-2:] == ["response_code", "grpc_response_status"]

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed (Debian package prometheus); scripts/install-deps.sh --test installs it")
    result = subprocess.run([promtool, "check", "metrics"], input=scrape(metrics_port), capture_output=True, text=True, timeout=30)
    problems = [line for line in (result.stdout + result.stderr).splitlines() if line.strip() and line.strip() != ISTIO_NAME_LINT]
    assert problems == [], f"promtool: {problems}"


def test_a_long_lived_tcp_session_reports_bytes_while_open(mesh):
    gateway, metrics_port, tcp_port = gateway_with_http_and_tcp(mesh, tcpReportingDuration="1s")

    def sent_bytes() -> float:
        return total(parse_samples(scrape(metrics_port)), "istio_tcp_sent_bytes_total")

    with socket.create_connection(("127.0.0.1", tcp_port), timeout=10) as session:
        seen = []
        for round_ in range(3):
            session.sendall(f"round {round_}\n".encode())
            assert recv_line(session) == f"one round {round_}\n".encode()
            expected = sum(len(f"one round {r}\n") for r in range(round_ + 1))
            # Reported within a reporting interval or two, while the connection stays open.
            seen.append(wait_until(lambda: sent_bytes() == expected and expected, 10, f"{expected} sent bytes reported"))
        assert seen == sorted(seen) and len(set(seen)) == 3
        assert total(parse_samples(scrape(metrics_port)), "istio_tcp_connections_closed_total") == 0


def test_prometheus_server_scrapes_the_gateway(mesh, tmp_path):
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.fail("the prometheus server is not installed (Debian package prometheus)")
    gateway, metrics_port, tcp_port = gateway_with_http_and_tcp(mesh)
    for index in range(3):
        tcp_exchange("127.0.0.1", tcp_port, b"hi\n")

    web_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n- job_name: meshgate\n  metrics_path: /stats/prometheus\n"
        f"  static_configs:\n  - targets: ['127.0.0.1:{metrics_port}']\n"
    )
    server = mesh.run_external(
        "prometheus",
        prometheus,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{web_port}",
    )

    def query():
        if not server.alive():
            raise AssertionError(f"prometheus exited:\n{server.stderr()[-2000:]}")
        try:
            url = "/api/v1/query?query=" + urllib.parse.quote('istio_tcp_connections_opened_total{reporter="source"}')
            reply = http_get("127.0.0.1", web_port, url, timeout=2)
        except OSError:
            return None
        if reply.status != 200:
            return None
        result = reply.json()["data"]["result"]
        return result if result and float(result[0]["value"][1]) == 3 else None

    result = wait_until(query, 60, "Prometheus to return istio_tcp_connections_opened_total = 3")
    metric = result[0]["metric"]
    assert metric["destination_service"] == "tcp-echo.default.svc.cluster.local"
    assert metric["destination_version"] == "v1"
    assert metric["source_workload"] == "istio-ingressgateway"
    assert metric["job"] == "meshgate"


def test_config_dump_and_clusters_follow_a_reload(mesh):
    gateway, metrics_port, tcp_port = gateway_with_http_and_tcp(mesh)

    def admin(path: str) -> dict:
        reply = http_get("127.0.0.1", gateway.admin_port, path, timeout=5)
        assert reply.status == 200
        return reply.json()

    before = admin("/config_dump")
    assert before["generation"] == 1
    assert "outbound|9080|v1|reviews.default.svc.cluster.local" in before["clusters"]
    assert not any(c.endswith("|v2|tcp-echo.default.svc.cluster.local") for c in before["clusters"])

    # Add a route to v2 and reload: the new route and cluster appear with the new generation.
    text = (gateway.config_dir / "mesh.yaml").read_text()
    write_atomically(gateway.config_dir / "mesh.yaml", text.replace("subset: v1\n      weight: 100", "subset: v2\n      weight: 100"))
    status = gateway.reload()
    assert status["lastReload"]["ok"], status
    after = admin("/config_dump")
    assert after["generation"] == 2
    assert "outbound|9000|v2|tcp-echo.default.svc.cluster.local" in after["clusters"]
    tcp_listener = next(l for l in after["listeners"] if l["protocol"] == "TCP")
    assert tcp_listener["tcpRoutes"][0]["clusters"] == ["outbound|9000|v2|tcp-echo.default.svc.cluster.local"]

    clusters = admin("/clusters")
    assert clusters["generation"] == 2
    v2 = next(c for c in clusters["clusters"] if c["name"] == "outbound|9000|v2|tcp-echo.default.svc.cluster.local")
    assert [e["workload"] for e in v2["endpoints"]] == ["tcp-echo-v2"]
