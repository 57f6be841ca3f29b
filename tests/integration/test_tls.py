"""TLS at the edge and HTTP/2 with real clients: curl (HTTPS, --http2, --http2-prior-knowledge),
openssl s_client, openssl s_server as a TLS backend, h2load."""

import hashlib
import re
import shutil
import signal
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from conftest import curl, documents, free_port, gateway_yaml, http_get, resource_yaml, wait_until, write_atomically


# MARK: - Certificates (openssl, ECDSA P-256)


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key", cwd=directory)
    openssl("req", "-x509", "-new", "-key", f"{name}.key", "-subj", f"/O=meshgate tests/CN={name}", "-days", "30", "-out", f"{name}.crt", cwd=directory)
    return directory / f"{name}.crt", directory / f"{name}.key"


def make_cert(directory: Path, name: str, ca: tuple[Path, Path], sans: list[str], client: bool = False) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key", cwd=directory)
    openssl("req", "-new", "-key", f"{name}.key", "-subj", f"/O=meshgate tests/CN={sans[0] if sans else name}", "-out", f"{name}.csr", cwd=directory)
    extensions = directory / f"{name}.ext"
    usage = "clientAuth" if client else "serverAuth"
    extensions.write_text(("subjectAltName=" + ",".join(f"DNS:{s}" for s in sans) + "\n" if sans else "") + f"extendedKeyUsage={usage}\n")
    openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
        "-days", "30", "-extfile", str(extensions), "-out", f"{name}.crt", cwd=directory,
    )
    return directory / f"{name}.crt", directory / f"{name}.key"


def credential(certs_dir: Path, name: str, cert: tuple[Path, Path], ca: Path | None = None) -> None:
    """certs/NAME/tls.crt, tls.key (and ca.crt): what `credentialName: NAME` reads."""
    target = certs_dir / name
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(cert[0], target / "tls.crt")
    shutil.copy(cert[1], target / "tls.key")
    if ca:
        shutil.copy(ca, target / "ca.crt")


def https_gateway_yaml(name: str, port: int, servers: list[tuple[str, str, str]]) -> str:
    """servers: (hosts, mode, credentialName)."""
    blocks = ""
    for index, (host, mode, cred) in enumerate(servers):
        blocks += (
            f"  - port: {{number: {port}, name: https-{index}, protocol: HTTPS}}\n"
            f"    hosts: [\"{host}\"]\n"
            f"    tls: {{mode: {mode}, credentialName: {cred}}}\n"
        )
    return resource_yaml("Gateway", name, f"  selector:\n    istio: ingressgateway\n  servers:\n{blocks}")


def route_yaml(name: str, gateway: str, host: str, service: str) -> str:
    return resource_yaml(
        "VirtualService", name,
        f'  hosts: ["{host}"]\n  gateways: [{gateway}]\n  http:\n  - route: [{{destination: {{host: {service}}}}}]\n',
    )


@pytest.fixture
def pki(tmp_path):
    root = tmp_path / "pki"
    ca = make_ca(root, "ca")
    other_ca = make_ca(root, "other-ca")
    return {
        "root": root,
        "ca": ca,
        "httpbin": make_cert(root, "httpbin", ca, ["httpbin.example.com"]),
        "helloworld": make_cert(root, "helloworld", ca, ["helloworld.example.com"]),
        "wildcard": make_cert(root, "wildcard", ca, ["*.example.com"]),
        "client": make_cert(root, "client", ca, [], client=True),
        "stranger": make_cert(root, "stranger", other_ca, [], client=True),
    }


def two_host_gateway(mesh, pki, modes=("SIMPLE", "SIMPLE")):
    httpbin = mesh.backend("httpbin", ["v1"])
    helloworld = mesh.backend("helloworld", ["v1"])
    port = free_port()
    config = mesh.config_dir(
        {
            "mesh.yaml": documents(
                httpbin.yaml,
                helloworld.yaml,
                https_gateway_yaml("secure", port, [("httpbin.example.com", modes[0], "httpbin-credential"), ("helloworld.example.com", modes[1], "helloworld-credential")]),
                route_yaml("httpbin", "secure", "httpbin.example.com", "httpbin"),
                route_yaml("helloworld", "secure", "helloworld.example.com", "helloworld"),
            )
        }
    )
    credential(config / "certs", "httpbin-credential", pki["httpbin"], pki["ca"][0])
    credential(config / "certs", "helloworld-credential", pki["helloworld"], pki["ca"][0])
    return mesh.gateway(config, {"https": port}), port


def https(port: int, host: str, ca: Path, *args: str, path: str = "/"):
    return curl(f"https://{host}:{port}{path}", "--cacert", str(ca), "--resolve", f"{host}:{port}:127.0.0.1", *args)


def https_attempt(port: int, host: str, ca: Path, *args: str) -> subprocess.CompletedProcess:
    """A curl that is expected to fail: its exit code and stderr."""
    return subprocess.run(
        ["curl", "-sS", "--max-time", "20", "--cacert", str(ca), "--resolve", f"{host}:{port}:127.0.0.1", *args, f"https://{host}:{port}/"],
        capture_output=True, text=True, timeout=30,
    )


def s_client(port: int, servername: str | None, *args: str, request: str = "") -> str:
    """openssl s_client's report; with `request`, it is sent and the answer (or alert) awaited."""
    command = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args]
    if servername:
        command += ["-servername", servername]
    if request:
        command += ["-ign_eof"]
    result = subprocess.run(command, input=request, capture_output=True, text=True, timeout=30)
    return result.stdout + result.stderr


# MARK: - Tests


def test_two_hosts_on_one_port_get_their_own_certificate_and_route(mesh, pki):
    gateway, port = two_host_gateway(mesh, pki)
    for host, service in [("httpbin.example.com", "httpbin"), ("helloworld.example.com", "helloworld")]:
        reply = https(port, host, pki["ca"][0])
        assert reply.status == 200, reply.text
        assert reply.headers["x-service"] == service
        assert f"CN = {host}" in s_client(port, host)
    status = gateway.status()
    served = {c["hosts"][0]: c for c in status["certificates"]}
    assert "DNS:httpbin.example.com" in served["httpbin.example.com"]["subjectAltNames"]
    assert served["helloworld.example.com"]["notValidAfter"] > 0


def test_forwarded_proto_is_https_and_http2_is_negotiated_by_alpn(mesh, pki):
    gateway, port = two_host_gateway(mesh, pki)
    reply = https(port, "httpbin.example.com", pki["ca"][0], "--http2", "-w", "\\n%{http_version}", path="/headers")
    assert reply.status == 200
    assert reply.text.rstrip().endswith("\n2")
    assert '"x-forwarded-proto": "https"' in reply.text
    reply = https(port, "httpbin.example.com", pki["ca"][0], "--http1.1", "-w", "\\n%{http_version}")
    assert reply.text.rstrip().endswith("\n1.1")


def test_mutual_tls_requires_a_client_certificate_from_the_ca(mesh, pki):
    gateway, port = two_host_gateway(mesh, pki, modes=("MUTUAL", "SIMPLE"))
    ca = pki["ca"][0]
    without = https_attempt(port, "httpbin.example.com", ca)
    assert without.returncode != 0, "a client without a certificate must fail the handshake"
    # curl usually prints the alert, but may see the close first; s_client waits for the alert.
    alert = without.stderr + s_client(port, "httpbin.example.com", "-CAfile", str(ca), request="GET / HTTP/1.0\r\n\r\n")
    assert "certificate required" in alert, alert
    client_cert, client_key = pki["client"]
    good = https(port, "httpbin.example.com", ca, "--cert", str(client_cert), "--key", str(client_key))
    assert good.status == 200
    # The app learns the verified client certificate (Istio's gateway default, SANITIZE_SET); a
    # client's own x-forwarded-client-cert is replaced.
    seen = https(port, "httpbin.example.com", ca, "--cert", str(client_cert), "--key", str(client_key),
                 "-H", "x-forwarded-client-cert: By=forged", path="/headers").json()["headers"]
    der_hash = hashlib.sha256(ssl.PEM_cert_to_DER_cert(client_cert.read_text())).hexdigest()
    assert seen["x-forwarded-client-cert"] == f'Hash={der_hash};Subject="CN=client,O=meshgate tests"'
    stranger_cert, stranger_key = pki["stranger"]
    bad = https_attempt(port, "httpbin.example.com", ca, "--cert", str(stranger_cert), "--key", str(stranger_key))
    assert bad.returncode != 0, "a certificate from another CA must fail the handshake"
    # The SIMPLE server on the same port does not ask, and forwards no client certificate.
    assert https(port, "helloworld.example.com", ca).status == 200
    plain = https(port, "helloworld.example.com", ca, "-H", "x-forwarded-client-cert: By=forged", path="/headers").json()["headers"]
    assert "x-forwarded-client-cert" not in plain


def test_passthrough_routes_by_sni_to_a_tls_backend_and_refuses_unknown_names(mesh, pki, tmp_path):
    backend_cert = make_cert(pki["root"], "nginx", pki["ca"], ["nginx.example.com"])
    backend_address = mesh.address()
    backend_port = free_port(backend_address)
    server = mesh.run_external(
        "s_server", "openssl", "s_server", "-accept", f"{backend_address}:{backend_port}", "-cert", str(backend_cert[0]),
        "-key", str(backend_cert[1]), "-www", "-quiet",
    )
    wait_until(lambda: _connects(backend_address, backend_port) or not server.alive(), 20, "s_server to listen")
    port = free_port()
    gateway_spec = (
        "  selector:\n    istio: ingressgateway\n  servers:\n"
        f"  - port: {{number: {port}, name: tls, protocol: TLS}}\n    hosts: [nginx.example.com]\n    tls: {{mode: PASSTHROUGH}}\n"
    )
    service = resource_yaml(
        "ServiceEntry", "nginx",
        f"  hosts: [nginx.example.com]\n  ports: [{{number: 443, name: tls, protocol: TLS}}]\n  resolution: STATIC\n"
        f"  location: MESH_EXTERNAL\n  endpoints: [{{address: {backend_address}, ports: {{tls: {backend_port}}}}}]\n",
    )
    routes = resource_yaml(
        "VirtualService", "nginx",
        f"  hosts: [nginx.example.com]\n  gateways: [passthrough]\n  tls:\n  - match: [{{port: {port}, sniHosts: [nginx.example.com]}}]\n"
        "    route: [{destination: {host: nginx.example.com, port: {number: 443}}}]\n",
    )
    config = mesh.config_dir({"mesh.yaml": documents(service, resource_yaml("Gateway", "passthrough", gateway_spec), routes)})
    gateway = mesh.gateway(config, {"tls": port})

    reply = https(port, "nginx.example.com", pki["ca"][0])
    assert reply.status == 200
    # The certificate is the backend's, not the gateway's (which has none here).
    assert "CN = nginx.example.com" in s_client(port, "nginx.example.com")
    refused = s_client(port, "unknown.example.com")
    assert "unrecognized name" in refused, refused
    assert "unknown.example.com" in gateway.proc.stderr()


def _connects(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def test_h2c_prior_knowledge_and_h2load_on_a_plain_port(mesh):
    backend = mesh.backend("reviews", ["v1"])
    port = free_port()
    config = mesh.config_dir(
        {"mesh.yaml": documents(backend.yaml, gateway_yaml("web", port, "HTTP"), route_yaml("reviews", "web", "*", "reviews"))}
    )
    gateway = mesh.gateway(config, {"http": port})
    reply = curl(gateway.url("/x"), "--http2-prior-knowledge", "-w", "\\n%{http_version}")
    assert reply.status == 200 and reply.text.rstrip().endswith("\n2")
    assert curl(gateway.url("/x"), "-w", "\\n%{http_version}").text.rstrip().endswith("\n1.1")
    h2load = shutil.which("h2load")
    if h2load is None:
        pytest.fail("h2load is not installed (Debian package nghttp2-client)")
    result = subprocess.run([h2load, "-n", "10000", "-c", "10", "-m", "10", gateway.url("/x")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert re.search(r"requests: 10000 total, 10000 started, 10000 done, 10000 succeeded, 0 failed, 0 errored", result.stdout), result.stdout


def test_https_redirect_answers_301_with_the_https_location(mesh):
    port = free_port()
    spec = (
        "  selector:\n    istio: ingressgateway\n  servers:\n"
        f"  - port: {{number: {port}, name: http, protocol: HTTP}}\n    hosts: [\"*\"]\n    tls: {{httpsRedirect: true}}\n"
    )
    config = mesh.config_dir({"mesh.yaml": resource_yaml("Gateway", "redirect", spec)})
    gateway = mesh.gateway(config, {"http": port})
    reply = curl(gateway.url("/some/path?q=1"), "-H", "Host: shop.example.com")
    assert reply.status == 301
    assert reply.headers["location"] == "https://shop.example.com/some/path?q=1"


def test_a_replaced_certificate_is_served_after_sighup_and_open_connections_keep_theirs(mesh, pki):
    gateway, port = two_host_gateway(mesh, pki)
    ca = pki["ca"][0]
    # A connection opened before the reload, kept open across it.
    context_ca = str(ca)
    import ssl

    context = ssl.create_default_context(cafile=context_ca)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    early = context.wrap_socket(raw, server_hostname="httpbin.example.com")
    early_serial = early.getpeercert()["serialNumber"]

    renewed = make_cert(pki["root"], "httpbin-renewed", pki["ca"], ["httpbin.example.com"])
    credential(gateway.config_dir / "certs", "httpbin-credential", renewed, ca)
    status = gateway.reload()
    assert status["lastReload"]["ok"], status

    fresh = ssl.create_default_context(cafile=context_ca).wrap_socket(
        socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="httpbin.example.com"
    )
    assert fresh.getpeercert()["serialNumber"] != early_serial, "new handshakes use the new certificate"
    fresh.close()
    early.sendall(b"GET / HTTP/1.1\r\nHost: httpbin.example.com\r\n\r\n")
    assert early.recv(4096).startswith(b"HTTP/1.1 200"), "a connection opened before the reload still works"
    early.close()


def test_a_second_host_on_a_reused_http2_connection_gets_421(mesh, pki):
    httpbin = mesh.backend("httpbin", ["v1"])
    port = free_port()
    config = mesh.config_dir(
        {
            "mesh.yaml": documents(
                httpbin.yaml,
                https_gateway_yaml("secure", port, [("a.example.com", "SIMPLE", "wildcard"), ("b.example.com", "SIMPLE", "wildcard")]),
                route_yaml("a", "secure", "a.example.com", "httpbin"),
                route_yaml("b", "secure", "b.example.com", "httpbin"),
            )
        }
    )
    credential(config / "certs", "wildcard", pki["wildcard"])
    mesh.gateway(config, {"https": port})
    resolve = ["--resolve", f"a.example.com:{port}:127.0.0.1", "--cacert", str(pki["ca"][0]), "--http2"]
    assert https(port, "a.example.com", pki["ca"][0], "--http2").status == 200
    # A browser that holds a connection to a.example.com (SNI a) reuses it for b.example.com, since
    # the wildcard certificate covers both. curl 7.88 does not coalesce connections across names,
    # so the same request is made explicitly: SNI a.example.com, :authority b.example.com.
    reply = curl(f"https://a.example.com:{port}/", *resolve, "-H", "Host: b.example.com", "-w", "\\n%{http_version}")
    assert reply.status == 421, reply.text
    assert reply.text.rstrip().endswith("\n2")
    assert reply.headers["x-meshgate-details"] == "misdirected_request"
    # On its own connection (SNI b), b is served.
    assert https(port, "b.example.com", pki["ca"][0], "--http2").status == 200


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", id="plain-http"),
        pytest.param(bytes(range(256)) * 4, id="garbage"),
        pytest.param(b"\x16\x03\x01\x00\x80\x01\x00\x00\x7c\x03\x03" + b"\x00" * 20, id="truncated-client-hello"),
        pytest.param(b"\x16\x03\x01\x40\x00\x01\xff\xff\xff" + b"\x00" * 16384, id="oversized-client-hello"),
    ],
)
def test_bad_client_hellos_close_the_connection_and_count(mesh, pki, payload):
    gateway, port = two_host_gateway(mesh, pki)
    metrics_port = int(re.search(r"^metricsPort: (\d+)$", (gateway.config_dir / "meshgate.yaml").read_text(), re.M).group(1))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(4096):
                pass
        except OSError:
            pass

    def rejected() -> float:
        text = http_get("127.0.0.1", metrics_port, "/stats/prometheus").text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("meshgate_tls_inspector_rejected_total{"))

    wait_until(lambda: rejected() >= 1, 10, "the rejection counter")
    assert gateway.proc.alive()
    assert https(port, "httpbin.example.com", pki["ca"][0]).status == 200, "the gateway still serves"


def test_validate_names_both_files_when_the_key_does_not_match_the_certificate(mesh, pki):
    port = free_port()
    config = mesh.config_dir({"gateway.yaml": https_gateway_yaml("secure", port, [("httpbin.example.com", "SIMPLE", "mixed")])})
    target = config / "certs" / "mixed"
    target.mkdir(parents=True)
    shutil.copy(pki["httpbin"][0], target / "tls.crt")
    shutil.copy(pki["helloworld"][1], target / "tls.key")
    result = mesh.validate(config)
    assert result.returncode == 1, result.stdout
    line = next(l for l in result.stdout.splitlines() if "does not match" in l)
    assert f"{target / 'tls.key'}" in line and f"{target / 'tls.crt'}" in line
    assert re.match(r"^\S+gateway\.yaml:\d+: error: Gateway/secure\.spec\.servers\[0\]\.tls: ", line), line
    # A gateway started on it refuses to start, with the same diagnostic.
    gateway = mesh.gateway(config, {"https": port}, wait_ready=False)
    assert gateway.proc.wait(30) == 1
    assert "does not match" in gateway.proc.stderr()
