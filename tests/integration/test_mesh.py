"""The mesh: gateway → sidecar → app with mTLS (ISTIO_MUTUAL, auto-mTLS), PeerAuthentication, SPIFFE
identity checks, x-forwarded-client-cert, the TCP metadata exchange, app-to-app through two sidecars,
certificate rotation, and the bad inputs the issue lists. Every process is the real binary; the
clients are curl, nc, openssl and Python's ssl module."""

from __future__ import annotations

import os
import re
import socket
import ssl
import struct
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from conftest import (
    BIN,
    START_TIMEOUT,
    CurlLoop,
    Mesh,
    curl,
    documents,
    free_port,
    gateway_yaml,
    grpc_call,
    grpc_frame,
    http_get,
    parse_samples,
    resource_yaml,
    service_yaml,
    tcp_virtual_service_yaml,
    total,
    wait_until,
    workload_entry_yaml,
    write_atomically,
)

SIDECAR_LABEL = "security.istio.io/tlsMode: istio"


def meshgate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    directory = tmp_path / "ca"
    result = meshgate("ca", "init", "--dir", str(directory))
    assert result.returncode == 0, result.stderr
    return directory


def mesh_workload_yaml(name: str, app: str, version: str, address: str, port_name: str, port: int, account: str) -> str:
    """A WorkloadEntry with a sidecar (Istio's tlsMode label): auto-mTLS sends it ISTIO_MUTUAL."""
    return workload_entry_yaml(name, app, version, address, port_name, port, account=account, extra_labels=SIDECAR_LABEL)


def peer_authentication_yaml(mode: str, namespace: str = "istio-system") -> str:
    return (
        f"apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: default\n  namespace: {namespace}\n"
        f"spec:\n  mtls:\n    mode: {mode}\n"
    )


class Sidecar:
    def __init__(self, mesh: Mesh, name: str, address: str, config_dir: Path, readiness_port: int, admin_port: int, metrics_port: int):
        self.address, self.config_dir = address, config_dir
        self.readiness_port, self.admin_port, self.metrics_port = readiness_port, admin_port, metrics_port
        self.proc = mesh.run(f"sidecar-{name}", "sidecar", "--config", str(config_dir))

    def wait_ready(self) -> None:
        def ready() -> bool:
            if not self.proc.alive():
                raise AssertionError(f"sidecar exited with {self.proc.popen.returncode}:\n{self.proc.stderr()}{self.proc.stdout()}")
            try:
                return http_get(self.address, self.readiness_port, "/healthz/ready").status == 200
            except OSError:
                return False

        wait_until(ready, START_TIMEOUT, "sidecar readiness")

    def metrics(self) -> str:
        return http_get(self.address, self.metrics_port, "/stats/prometheus").text

    def status(self) -> dict:
        return http_get("127.0.0.1", self.admin_port, "/status").json()


def start_sidecar(
    mesh: Mesh, name: str, address: str, app_ports: dict[int, int], files: dict[str, str], account: str,
    ca: Path | None = None, wait: bool = True, **settings: object
) -> Sidecar:
    directory = mesh.tmp_path / f"sidecar-{name}"
    directory.mkdir(exist_ok=True)
    readiness, admin, metrics = free_port(address), free_port(), free_port(address)
    lines = [
        f"workload: {{name: {name}, namespace: default, serviceAccount: {account}, address: {address}, labels: {{app: {name.split('-')[0]}}}}}",
        "appPorts: {" + ", ".join(f"{service}: {app}" for service, app in app_ports.items()) + "}",
        f"readinessPort: {readiness}",
        f"adminPort: {admin}",
        f"metricsPort: {metrics}",
        "drainTimeout: 5s",
    ]
    if ca is not None:
        lines.append(f"caDir: {ca}")
    lines += [f"{key}: {value}" for key, value in settings.items()]
    write_atomically(directory / "meshgate.yaml", "\n".join(lines) + "\n")
    for file_name, text in files.items():
        write_atomically(directory / file_name, text)
    sidecar = Sidecar(mesh, name, address, directory, readiness, admin, metrics)
    if wait:
        sidecar.wait_ready()
    return sidecar


def http_mesh(mesh: Mesh, ca: Path, mode: str = "STRICT", gateway_account: str | None = None, sidecar_account: str = "httpbin",
              declared_account: str = "httpbin", port_name: str = "http", **sidecar_settings: object):
    """httpbin behind a sidecar, declared with a sidecar label (its port named `port_name`); a gateway on
    an HTTP port routing to it."""
    app = mesh.http_app("httpbin", "v1")
    services = documents(
        service_yaml("httpbin", 8000, port_name),
        mesh_workload_yaml("httpbin-v1", "httpbin", "v1", app.host, port_name, app.port, declared_account),
    )
    sidecar = start_sidecar(
        mesh, "httpbin-v1", app.host, {8000: app.port}, {"services.yaml": services, "pa.yaml": peer_authentication_yaml(mode)},
        sidecar_account, ca=ca, **sidecar_settings
    )
    port = free_port()
    routes = resource_yaml(
        "VirtualService", "httpbin",
        "  hosts: [\"*\"]\n  gateways: [gw]\n  http:\n  - route: [{destination: {host: httpbin, port: {number: 8000}}}]\n",
    )
    settings: dict[str, object] = {"caDir": ca}
    if gateway_account:
        settings["serviceAccount"] = gateway_account
    config = mesh.config_dir({"services.yaml": services, "gw.yaml": documents(gateway_yaml("gw", port, "HTTP"), routes)}, **settings)
    gateway = mesh.gateway(config, {"http": port})
    return app, sidecar, gateway


def test_gateway_reaches_the_app_over_mtls_and_the_app_sees_the_gateways_identity(mesh: Mesh, ca: Path):
    app, sidecar, gateway = http_mesh(mesh, ca)
    reply = curl(gateway.url("/headers"))
    assert reply.status == 200, reply.text
    headers = reply.json()["headers"]
    xfcc = headers["x-forwarded-client-cert"]
    assert xfcc.startswith("By=spiffe://cluster.local/ns/default/sa/httpbin;Hash=")
    assert xfcc.endswith(';Subject="";URI=spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account')
    assert re.search(r"Hash=[0-9a-f]{64};", xfcc)
    # The metadata exchange headers are consumed by the receiving sidecar.
    assert not any(name.startswith("x-envoy-peer-metadata") for name in headers)
    # The app learns the original client's scheme (plain HTTP to the gateway), not the mTLS hop's.
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-for"].startswith("127.0.0.1")
    # The sidecar reports the request as its destination, with the caller's workload (from the
    # peer-metadata headers) and principal (from its certificate), as Istio's inbound sidecar does.
    samples = parse_samples(sidecar.metrics())
    assert total(
        samples, "istio_requests_total", reporter="destination", source_workload="istio-ingressgateway",
        source_workload_namespace="istio-system", source_app="istio-ingressgateway",
        source_principal="spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account",
        destination_workload="httpbin-v1", destination_principal="spiffe://cluster.local/ns/default/sa/httpbin",
        connection_security_policy="mutual_tls", response_code="200",
    ) == 1
    assert total(samples, "istio_requests_total", reporter="source") == 0
    status = sidecar.status()
    assert status["role"] == "sidecar"
    assert status["meshCertificate"]["identity"] == "spiffe://cluster.local/ns/default/sa/httpbin"
    assert status["meshCertificate"]["renewAt"] < status["meshCertificate"]["notValidAfter"]
    assert "meshgate_certificate_expiry_timestamp_seconds" in sidecar.metrics()


def test_grpc_crosses_the_mesh_as_http2_over_mtls(mesh: Mesh, ca: Path, tmp_path: Path):
    # A port named grpc: the gateway opens HTTP/2 streams over mTLS (ALPN istio-h2), the sidecar
    # serves them as HTTP/2 and speaks HTTP/2 to the app; the status comes back in trailers.
    app, sidecar, gateway = http_mesh(mesh, ca, port_name="grpc")
    reply = grpc_call(gateway.url("/echo.Echo/Say"), b"through two hops", tmp_path, "--http2-prior-knowledge")
    assert reply.status == 200, reply
    assert reply.headers["x-request-protocol"] == "HTTP/2"
    assert reply.body == grpc_frame(b"through two hops")
    assert reply.trailers == {"grpc-status": "0"}
    # The app saw the gateway's identity, as over HTTP/1.1.
    headers = curl(gateway.url("/headers"), "--http2-prior-knowledge").json()["headers"]
    assert headers["x-forwarded-client-cert"].endswith("URI=spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account")


def test_strict_refuses_plain_text_and_tls_without_a_certificate(mesh: Mesh, ca: Path):
    app, sidecar, gateway = http_mesh(mesh, ca, mode="STRICT")
    plain = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", f"http://{sidecar.address}:15006/headers"],
        capture_output=True, text=True,
    )
    assert plain.returncode == 56, (plain.returncode, plain.stderr)
    assert plain.stdout == "000"
    handshake = subprocess.run(
        ["openssl", "s_client", "-connect", f"{sidecar.address}:15006", "-servername", "outbound_.8000_._.httpbin.default.svc.cluster.local"],
        input="GET / HTTP/1.0\r\n\r\n", capture_output=True, text=True, timeout=20,
    )
    assert "HTTP/1.1 200" not in handshake.stdout
    wait_until(lambda: 'reason="handshake"' in sidecar.metrics(), 10, "the refused handshake to be counted")
    metrics = sidecar.metrics()
    assert 'meshgate_inbound_rejected_total{reason="plaintext_strict"} 1' in metrics
    assert "PeerAuthentication is STRICT" in sidecar.proc.stdout() + sidecar.proc.stderr()
    # Mesh traffic still flows.
    assert curl(gateway.url("/status/200")).status == 200


def test_permissive_accepts_plain_text_and_mtls_on_the_same_port(mesh: Mesh, ca: Path):
    app, sidecar, gateway = http_mesh(mesh, ca, mode="PERMISSIVE")
    plain = curl(f"http://{sidecar.address}:15006/headers", "-H", "x-forwarded-client-cert: By=forged")
    assert plain.status == 200
    # Plain text carries no identity: a client's own XFCC is removed, never forwarded.
    assert "x-forwarded-client-cert" not in plain.json()["headers"]
    assert "URI=spiffe://" in curl(gateway.url("/headers")).json()["headers"]["x-forwarded-client-cert"]
    # Plain text has no proven caller: Istio's connection_security_policy "none".
    samples = parse_samples(sidecar.metrics())
    assert total(samples, "istio_requests_total", reporter="destination", source_principal="unknown", connection_security_policy="none") == 1
    assert total(samples, "istio_requests_total", reporter="destination", connection_security_policy="mutual_tls") == 1


def test_a_sidecar_with_another_identity_is_refused_and_the_reply_says_why(mesh: Mesh, ca: Path):
    # The WorkloadEntry says the workload runs as "httpbin"; its sidecar's certificate says "impostor".
    app, sidecar, gateway = http_mesh(mesh, ca, sidecar_account="impostor", declared_account="httpbin")
    reply = curl(gateway.url("/headers"))
    assert reply.status == 503
    assert reply.headers["x-meshgate-response-flags"] == "UF"
    details = reply.headers["x-meshgate-details"]
    assert "SAN_mismatch" in details
    assert "expected spiffe://cluster.local/ns/default/sa/httpbin" in details
    assert "got spiffe://cluster.local/ns/default/sa/impostor" in details
    assert app.requests() == []


def test_tcp_through_sidecars_keeps_the_80_20_split_and_exchanges_metadata(mesh: Mesh, ca: Path):
    echo_v1, echo_v2 = mesh.tcp_echo("one"), mesh.tcp_echo("two")
    services = documents(
        service_yaml("tcp-echo", 9000, "tcp"),
        mesh_workload_yaml("tcp-echo-v1", "tcp-echo", "v1", echo_v1.host, "tcp", echo_v1.port, "tcp-echo"),
        mesh_workload_yaml("tcp-echo-v2", "tcp-echo", "v2", echo_v2.host, "tcp", echo_v2.port, "tcp-echo"),
        resource_yaml("DestinationRule", "tcp-echo", "  host: tcp-echo\n  subsets:\n  - name: v1\n    labels: {version: v1}\n  - name: v2\n    labels: {version: v2}\n"),
    )
    sidecars = [
        start_sidecar(mesh, f"tcp-echo-{version}", app.host, {9000: app.port}, {"services.yaml": services, "pa.yaml": peer_authentication_yaml("STRICT")}, "tcp-echo", ca=ca)
        for version, app in (("v1", echo_v1), ("v2", echo_v2))
    ]
    port = free_port()
    config = mesh.config_dir(
        {"services.yaml": services, "gw.yaml": documents(gateway_yaml("gw", port, "TCP"), tcp_virtual_service_yaml("tcp-echo", "gw", port, "tcp-echo", {"v1": 80, "v2": 20}, 9000))},
        caDir=ca,
    )
    mesh.gateway(config, {"tcp": port})
    seen: Counter[str] = Counter()
    for _ in range(60):
        result = subprocess.run(["nc", "-q", "1", "-w", "5", "127.0.0.1", str(port)], input="hello\n", capture_output=True, text=True, timeout=20)
        seen[result.stdout.strip()] += 1
    assert set(seen) == {"one hello", "two hello"}, seen
    assert seen["one hello"] > seen["two hello"], seen
    for sidecar in sidecars:
        assert 'meshgate_peer_exchange_total{side="downstream",result="metadata_added"}' in sidecar.metrics()

    # Every connection is reported by its sidecar as destination, labelled with the caller the
    # exchange frame named and the principal its certificate proved; the last closes may still be
    # on their way when nc returns, so the counts are waited for.
    def destination_counts() -> tuple[float, float, float]:
        opened = closed = labelled = 0.0
        for sidecar in sidecars:
            samples = parse_samples(sidecar.metrics())
            opened += total(samples, "istio_tcp_connections_opened_total")
            closed += total(samples, "istio_tcp_connections_closed_total")
            labelled += total(
                samples, "istio_tcp_connections_opened_total", reporter="destination", source_workload="istio-ingressgateway",
                source_principal="spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account",
                connection_security_policy="mutual_tls",
            )
        return opened, closed, labelled

    wait_until(lambda: destination_counts() == (60, 60, 60), 20, "60 connections opened and closed, all labelled with the gateway as source")


def test_app_to_app_through_two_sidecars_honours_a_virtual_service_bound_to_the_mesh(mesh: Mesh, ca: Path):
    reviews = {version: mesh.http_app("reviews", version) for version in ("v1", "v2", "v3")}
    productpage = mesh.address()
    services = documents(
        service_yaml("reviews", 9080),
        *(mesh_workload_yaml(f"reviews-{v}", "reviews", v, app.host, "http", app.port, "bookinfo-reviews") for v, app in reviews.items()),
        resource_yaml("DestinationRule", "reviews", "  host: reviews\n  subsets:\n" + "".join(f"  - name: {v}\n    labels: {{version: {v}}}\n" for v in reviews)),
        resource_yaml(
            "VirtualService", "reviews",
            "  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v1}\n      weight: 50\n"
            "    - destination: {host: reviews, subset: v3}\n      weight: 50\n",
        ),
        peer_authentication_yaml("STRICT"),
    )
    for version, app in reviews.items():
        start_sidecar(mesh, f"reviews-{version}", app.host, {9080: app.port}, {"services.yaml": services}, "bookinfo-reviews", ca=ca)
    # productpage's sidecar: the app would call 127.x:15001 with Host: reviews:9080.
    start_sidecar(mesh, "productpage-v1", productpage, {9080: free_port(productpage)}, {"services.yaml": services}, "bookinfo-productpage", ca=ca)
    versions: Counter[str] = Counter()
    for _ in range(40):
        reply = curl(f"http://{productpage}:15001/headers", "-H", "Host: reviews:9080")
        assert reply.status == 200, reply.text
        versions[reply.headers["x-version"]] += 1
        assert reply.json()["headers"]["x-forwarded-client-cert"].endswith("URI=spiffe://cluster.local/ns/default/sa/bookinfo-productpage")
    assert set(versions) == {"v1", "v3"}, versions


def test_a_certificate_rotated_before_expiry_keeps_traffic_flowing(mesh: Mesh, ca: Path):
    app, sidecar, gateway = http_mesh(mesh, ca, certTTL="4s")
    loop = CurlLoop(gateway.url("/status/200")).start()
    try:
        wait_until(lambda: (sidecar.proc.stdout() + sidecar.proc.stderr()).count("mesh certificate rotated") >= 2, 30, "two rotations of the sidecar's certificate")
    finally:
        loop.stop()
    assert loop.requests > 0
    assert loop.failures == []
    assert 'meshgate_certificate_rotations_total{result="success"}' in sidecar.metrics()


def test_issued_certificates_carry_one_spiffe_uri_and_svid_key_usages(ca: Path, tmp_path: Path):
    out = tmp_path / "issued"
    assert meshgate("ca", "issue", "--dir", str(ca), "--namespace", "default", "--service-account", "reviews", "--out", str(out)).returncode == 0
    text = subprocess.run(["openssl", "x509", "-noout", "-text", "-in", str(out / "cert-chain.pem")], capture_output=True, text=True).stdout
    assert text.count("URI:spiffe://") == 1
    assert "URI:spiffe://cluster.local/ns/default/sa/reviews" in text
    assert "Digital Signature" in text and "TLS Web Server Authentication" in text and "TLS Web Client Authentication" in text
    assert "CA:FALSE" in text


# MARK: - Bad input


def tls_client(address: str, certificate_dir: Path, alpn: list[str]) -> ssl.SSLSocket:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(certificate_dir / "root-cert.pem")
    context.load_cert_chain(certificate_dir / "cert-chain.pem", certificate_dir / "key.pem")
    context.set_alpn_protocols(alpn)
    raw = socket.create_connection((address, 15006), timeout=10)
    return context.wrap_socket(raw, server_hostname="outbound_.9000_._.tcp-echo.default.svc.cluster.local")


def tcp_sidecar(mesh: Mesh, ca: Path) -> Sidecar:
    echo = mesh.tcp_echo("one")
    services = documents(
        service_yaml("tcp-echo", 9000, "tcp"),
        mesh_workload_yaml("tcp-echo-v1", "tcp-echo", "v1", echo.host, "tcp", echo.port, "tcp-echo"),
    )
    return start_sidecar(mesh, "tcp-echo-v1", echo.host, {9000: echo.port}, {"services.yaml": services}, "tcp-echo", ca=ca)


@pytest.mark.parametrize(
    "frame, reason",
    [
        (b"\x3d\x23\x04\x67\x00\x00\x01\x00" + b"x" * 16, "truncated"),
        (b"\xde\xad\xbe\xef\x00\x00\x00\x04abcd", "wrong_magic"),
    ],
)
def test_a_bad_metadata_exchange_frame_is_refused_and_counted(mesh: Mesh, ca: Path, tmp_path: Path, frame: bytes, reason: str):
    sidecar = tcp_sidecar(mesh, ca)
    client_dir = tmp_path / "client"
    assert meshgate("ca", "issue", "--dir", str(ca), "--namespace", "default", "--service-account", "sleep", "--out", str(client_dir)).returncode == 0
    with tls_client(sidecar.address, client_dir, ["istio-peer-exchange", "istio"]) as connection:
        assert connection.selected_alpn_protocol() == "istio-peer-exchange"
        header = connection.recv(8)
        assert struct.unpack(">II", header)[0] == 0x3D230467  # the sidecar's own frame comes first
        connection.sendall(frame)
        if reason == "truncated":
            connection.shutdown(socket.SHUT_WR)
        # The sidecar closes (or we did): nothing is echoed.
        received = b""
        try:
            while chunk := connection.recv(4096):
                received += chunk
        except (ConnectionResetError, ssl.SSLError):
            pass
        assert b"one" not in received
    wait_until(lambda: f'result="{reason}"' in sidecar.metrics(), 10, f"the {reason} frame to be counted")
    assert "peer exchange (downstream)" in sidecar.proc.stdout() + sidecar.proc.stderr()


def test_a_certificate_from_another_trust_domain_is_refused(mesh: Mesh, ca: Path, tmp_path: Path):
    sidecar = tcp_sidecar(mesh, ca)
    other_ca, client_dir = tmp_path / "other-ca", tmp_path / "foreign"
    assert meshgate("ca", "init", "--dir", str(other_ca), "--trust-domain", "other.example").returncode == 0
    assert meshgate("ca", "issue", "--dir", str(other_ca), "--namespace", "default", "--service-account", "sleep", "--out", str(client_dir)).returncode == 0
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        with tls_client(sidecar.address, client_dir, ["istio"]) as connection:
            connection.sendall(b"hello\n")
            assert connection.recv(100) == b""
            raise ConnectionResetError("closed without an echo")
    wait_until(lambda: 'meshgate_inbound_rejected_total{reason="handshake"}' in sidecar.metrics(), 10, "the refused handshake to be counted")


def test_bad_identity_settings_stop_a_sidecar_with_a_clear_message(mesh: Mesh, ca: Path, tmp_path: Path):
    address = mesh.address()
    # A service account that is not a DNS label cannot be a SPIFFE ID.
    bad = start_sidecar(mesh, "bad-account", address, {9080: free_port(address)}, {}, "Bad_Account", ca=ca, wait=False)
    assert bad.proc.wait(START_TIMEOUT) != 0
    assert "service account 'Bad_Account'" in bad.proc.stdout() + bad.proc.stderr()
    # A CA key that others can read is refused by name.
    loose = tmp_path / "loose-ca"
    assert meshgate("ca", "init", "--dir", str(loose)).returncode == 0
    os.chmod(loose / "root-key.pem", 0o644)
    refused = start_sidecar(mesh, "loose-ca", mesh.address(), {9080: 19080}, {}, "app", ca=loose, wait=False)
    assert refused.proc.wait(START_TIMEOUT) != 0
    assert "root-key.pem has mode 0644" in refused.proc.stdout() + refused.proc.stderr()


def test_an_expired_certificate_directory_is_refused(mesh: Mesh, ca: Path, tmp_path: Path):
    issued = tmp_path / "short"
    assert meshgate("ca", "issue", "--dir", str(ca), "--namespace", "default", "--service-account", "app", "--out", str(issued), "--ttl", "1s").returncode == 0
    wait_until(
        lambda: subprocess.run(["openssl", "x509", "-noout", "-checkend", "0", "-in", str(issued / "cert-chain.pem")], capture_output=True).returncode != 0,
        120, "the certificate to expire",
    )
    sidecar = start_sidecar(mesh, "expired", mesh.address(), {9080: 19080}, {}, "app", certDir=issued, wait=False)
    assert sidecar.proc.wait(START_TIMEOUT) != 0
    assert "expired" in sidecar.proc.stdout() + sidecar.proc.stderr()
