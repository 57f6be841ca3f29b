"""A Gateway HTTPS server's `tls.minProtocolVersion`, `maxProtocolVersion` and `cipherSuites`, proved
with real clients: openssl s_client (forcing one version or one cipher) and curl through to a backend.

Every gateway here has two HTTPS ports with the same certificate: `restricted` carries the settings
under test and `control` has none, so a refused handshake is shown to come from the setting and not
from the client. The pki fixture's keys are ECDSA P-256, so the TLS 1.2 ciphers are ECDHE-ECDSA ones.
(BoringSSL's `cipherSuites` only applies up to TLS 1.2; TLS 1.3 suites are fixed, as in Envoy, which
is why the cipher test caps the version at TLSV1_2.)
"""

import re
import signal
import subprocess
from pathlib import Path

from conftest import START_TIMEOUT, destination_rule_yaml, documents, free_port, resource_yaml, service_yaml, wait_until, write_atomically
from test_tls import credential, pki, route_yaml  # noqa: F401 (pki is a fixture)
from test_validate import diagnostics, errors_at, marked_line, write_dir

HOST = "httpbin.example.com"
GRANTED = "ECDHE-ECDSA-AES128-GCM-SHA256"
REFUSED = "ECDHE-ECDSA-AES256-GCM-SHA384"
REQUEST = f"GET /get HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"


# MARK: - Harness


def tls_gateway(mesh, pki, restricted: dict[str, str]):
    """A gateway routing HOST to an httpbin backend on two HTTPS ports: `restricted`, whose tls block
    gets the `restricted` fields (written as `key: value` lines), and `control`, SIMPLE with nothing else."""
    httpbin = mesh.backend("httpbin", ["v1"])
    ports = {"restricted": free_port(), "control": free_port()}
    extra = "".join(f"      {key}: {value}\n" for key, value in restricted.items())
    servers = ""
    for name, port in ports.items():
        servers += (
            f"  - port: {{number: {port}, name: https-{name}, protocol: HTTPS}}\n"
            f'    hosts: ["{HOST}"]\n'
            "    tls:\n"
            "      mode: SIMPLE\n"
            "      credentialName: httpbin-credential\n"
            + (extra if name == "restricted" else "")
        )
    gateway = resource_yaml("Gateway", "secure", f"  selector:\n    istio: ingressgateway\n  servers:\n{servers}")
    config = mesh.config_dir({"mesh.yaml": documents(httpbin.yaml, gateway, route_yaml("httpbin", "secure", HOST, "httpbin"))})
    credential(config / "certs", "httpbin-credential", pki["httpbin"], pki["ca"][0])
    return mesh.gateway(config, ports), ports


def s_client(port: int, ca: Path, *args: str) -> subprocess.CompletedProcess:
    """openssl s_client with SNI HOST, verifying the gateway's certificate against `ca`; it sends
    REQUEST and reads until the gateway closes. Its exit code is 0 only after a completed handshake."""
    command = [
        "openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", HOST,
        "-CAfile", str(ca), "-verify_return_error", "-ign_eof", *args,
    ]
    result = subprocess.run(command, input=REQUEST, capture_output=True, text=True, timeout=30)
    result.output = result.stdout + result.stderr
    return result


def negotiated(result: subprocess.CompletedProcess) -> tuple[str, str]:
    """(protocol, cipher) from s_client's SSL-Session block: `Protocol  : TLSv1.2`, `Cipher    : ...`."""
    protocol = re.search(r"^\s*Protocol\s*: (\S+)$", result.stdout, re.M)
    cipher = re.search(r"^\s*Cipher\s*: (\S+)$", result.stdout, re.M)
    assert protocol and cipher, f"no SSL-Session block in:\n{result.output}"
    return protocol.group(1), cipher.group(1)


def assert_handshake_ok(result: subprocess.CompletedProcess, protocol: str, cipher: str | None = None) -> None:
    """The handshake completed with `protocol` (and `cipher`), the certificate verified, and the
    request went through the gateway to the httpbin backend."""
    assert result.returncode == 0, f"s_client failed ({result.returncode}):\n{result.output}"
    assert negotiated(result)[0] == protocol, result.output
    if cipher:
        assert negotiated(result)[1] == cipher, result.output
        assert f"Cipher is {cipher}" in result.stdout, result.output
    assert "Verify return code: 0 (ok)" in result.stdout, result.output
    assert "HTTP/1.1 200" in result.stdout, result.output
    assert re.search(r"^x-service: httpbin\r?$", result.stdout, re.M | re.I), result.output


def assert_handshake_refused(result: subprocess.CompletedProcess, alert: str) -> None:
    """No session: s_client exits 1 with the server's `alert`, and nothing reached the backend."""
    assert result.returncode != 0, f"the handshake should have failed:\n{result.output}"
    assert "Cipher is (NONE)" in result.stdout, result.output
    assert alert in result.stderr, f"expected the alert '{alert}':\n{result.output}"
    assert "HTTP/1.1" not in result.stdout, result.output


def curl_https(port: int, ca: Path, *args: str) -> subprocess.CompletedProcess:
    """curl -v to https://HOST:port/get; stdout is `STATUS` then the body, stderr the TLS report
    (`SSL connection using TLSv1.3 / TLS_AES_256_GCM_SHA384`)."""
    return subprocess.run(
        [
            "curl", "-sS", "-v", "--max-time", "20", "--cacert", str(ca), "--resolve", f"{HOST}:{port}:127.0.0.1",
            "-w", "%{http_code}\n", "-o", "/dev/null", *args, f"https://{HOST}:{port}/get",
        ],
        capture_output=True, text=True, timeout=30,
    )


def curl_tls(result: subprocess.CompletedProcess) -> tuple[str, str]:
    """(protocol, cipher) curl reports in `SSL connection using PROTOCOL / CIPHER`."""
    found = re.search(r"SSL connection using (\S+) / (\S+)", result.stderr)
    assert found, f"curl did not report a TLS session:\n{result.stderr}"
    return found.group(1), found.group(2)


def assert_curl_ok(result: subprocess.CompletedProcess, protocol: str, cipher: str | None = None) -> None:
    assert result.returncode == 0, f"curl failed ({result.returncode}):\n{result.stderr}"
    assert result.stdout.strip() == "200", result.stdout
    assert curl_tls(result)[0] == protocol, result.stderr
    if cipher:
        assert curl_tls(result)[1] == cipher, result.stderr
    assert re.search(r"^< x-service: httpbin\r?$", result.stderr, re.M | re.I), result.stderr


def assert_curl_refused(result: subprocess.CompletedProcess) -> None:
    # 35: CURLE_SSL_CONNECT_ERROR, a failed handshake.
    assert result.returncode == 35, f"curl should have failed the handshake ({result.returncode}):\n{result.stderr}"
    assert "SSL connection using" not in result.stderr, result.stderr


# MARK: - Handshakes


def test_min_protocol_version_tls13_refuses_tls12(mesh, pki):
    gateway, ports = tls_gateway(mesh, pki, {"minProtocolVersion": "TLSV1_3"})
    ca = pki["ca"][0]
    restricted, control = ports["restricted"], ports["control"]

    assert_handshake_refused(s_client(restricted, ca, "-tls1_2"), "alert protocol version")
    assert_handshake_ok(s_client(restricted, ca, "-tls1_3"), "TLSv1.3")
    # Without a version forced, s_client gets TLS 1.3 too.
    assert_handshake_ok(s_client(restricted, ca), "TLSv1.3")
    # The control port, same certificate and no minimum, speaks TLS 1.2 with the same client.
    assert_handshake_ok(s_client(control, ca, "-tls1_2"), "TLSv1.2")

    assert_curl_ok(curl_https(restricted, ca, "--tlsv1.3"), "TLSv1.3")
    assert_curl_refused(curl_https(restricted, ca, "--tls-max", "1.2"))
    assert_curl_ok(curl_https(control, ca, "--tls-max", "1.2"), "TLSv1.2")
    assert gateway.proc.alive()


def test_max_protocol_version_tls12_refuses_tls13(mesh, pki):
    gateway, ports = tls_gateway(mesh, pki, {"maxProtocolVersion": "TLSV1_2"})
    ca = pki["ca"][0]
    restricted, control = ports["restricted"], ports["control"]

    assert_handshake_refused(s_client(restricted, ca, "-tls1_3"), "alert protocol version")
    assert_handshake_ok(s_client(restricted, ca, "-tls1_2"), "TLSv1.2")
    # A client offering everything is held to TLS 1.2 here, and gets TLS 1.3 on the control port.
    assert_handshake_ok(s_client(restricted, ca), "TLSv1.2")
    assert_handshake_ok(s_client(control, ca), "TLSv1.3")
    assert_handshake_ok(s_client(control, ca, "-tls1_3"), "TLSv1.3")

    assert_curl_ok(curl_https(restricted, ca), "TLSv1.2")
    assert_curl_refused(curl_https(restricted, ca, "--tlsv1.3"))
    assert_curl_ok(curl_https(control, ca, "--tlsv1.3"), "TLSv1.3")
    assert gateway.proc.alive()


def test_cipher_suites_limit_tls12_ciphers(mesh, pki):
    gateway, ports = tls_gateway(mesh, pki, {"maxProtocolVersion": "TLSV1_2", "cipherSuites": f"[{GRANTED}]"})
    ca = pki["ca"][0]
    restricted, control = ports["restricted"], ports["control"]

    assert_handshake_refused(s_client(restricted, ca, "-tls1_2", "-cipher", REFUSED), "alert handshake failure")
    assert_handshake_ok(s_client(restricted, ca, "-tls1_2", "-cipher", GRANTED), "TLSv1.2", GRANTED)
    # A client offering every cipher gets the one allowed (BoringSSL would otherwise pick AES-128 or
    # ChaCha by its own order; the control shows the refused cipher is fine without cipherSuites).
    assert_handshake_ok(s_client(restricted, ca, "-tls1_2"), "TLSv1.2", GRANTED)
    assert_handshake_ok(s_client(control, ca, "-tls1_2", "-cipher", REFUSED), "TLSv1.2", REFUSED)

    assert_curl_ok(curl_https(restricted, ca, "--tls-max", "1.2", "--ciphers", GRANTED), "TLSv1.2", GRANTED)
    assert_curl_ok(curl_https(restricted, ca), "TLSv1.2", GRANTED)
    assert_curl_refused(curl_https(restricted, ca, "--tls-max", "1.2", "--ciphers", REFUSED))
    assert_curl_ok(curl_https(control, ca, "--tls-max", "1.2", "--ciphers", REFUSED), "TLSv1.2", REFUSED)
    assert gateway.proc.alive()


# MARK: - Validation


def tls_config(directory: Path, pki, tls_lines: str) -> tuple[Path, str]:
    """A config dir with a Service/DestinationRule for httpbin, a route, and gateway.yaml whose one
    HTTPS server's tls block ends with `tls_lines` (6-space indented, one field per line)."""
    port = free_port()
    gateway = resource_yaml(
        "Gateway", "secure",
        "  selector:\n    istio: ingressgateway\n  servers:\n"
        f"  - port: {{number: {port}, name: https, protocol: HTTPS}}\n"
        f'    hosts: ["{HOST}"]\n'
        "    tls:\n      mode: SIMPLE\n      credentialName: httpbin-credential\n" + tls_lines,
    )
    base = documents(service_yaml("httpbin", 9080), destination_rule_yaml("httpbin", ["v1"]), route_yaml("httpbin", "secure", HOST, "httpbin"))
    config = write_dir(directory, {"base.yaml": base, "gateway.yaml": gateway})
    credential(config / "certs", "httpbin-credential", pki["httpbin"], pki["ca"][0])
    return config, gateway


def assert_error_at_marked_line(mesh, config: Path, text: str, *words: str) -> str:
    result = mesh.validate(config)
    output = result.stdout + result.stderr
    assert result.returncode == 1, f"validate should fail:\n{output}"
    line = marked_line(text)
    found = errors_at(result.stdout, "gateway.yaml", line)
    assert found, f"expected an error at gateway.yaml:{line} in:\n{output}"
    message = " ".join(error["rest"] for error in found)
    assert message.startswith("Gateway/secure.spec.servers[0].tls"), message
    for word in words:
        assert word in message, f"'{word}' not in: {message}"
    return message


def test_valid_versions_and_ciphers_validate_clean(mesh, pki, tmp_path):
    config, _ = tls_config(
        tmp_path / "conf", pki,
        f"      minProtocolVersion: TLSV1_2\n      maxProtocolVersion: TLSV1_3\n      cipherSuites: [{GRANTED}, {REFUSED}]\n",
    )
    result = mesh.validate(config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not [d for d in diagnostics(result.stdout) if d["severity"] == "error"], result.stdout


def test_an_unknown_min_protocol_version_is_an_error_at_its_line(mesh, pki, tmp_path):
    config, text = tls_config(tmp_path / "conf", pki, "      minProtocolVersion: TLSV1_4  # <-\n")
    assert_error_at_marked_line(mesh, config, text, '"TLSV1_4"', "TLSV1_3")


def test_an_unknown_max_protocol_version_is_an_error_at_its_line(mesh, pki, tmp_path):
    config, text = tls_config(tmp_path / "conf", pki, "      maxProtocolVersion: TLS1.2  # <-\n")
    assert_error_at_marked_line(mesh, config, text, '"TLS1.2"', "did you mean TLSV1_2")


def test_an_unknown_cipher_name_is_an_error_at_its_line(mesh, pki, tmp_path):
    config, text = tls_config(
        tmp_path / "conf", pki,
        "      maxProtocolVersion: TLSV1_2\n      cipherSuites:\n      - ECDHE-ECDSA-AES128-GCM-SHA257  # <-\n",
    )
    assert_error_at_marked_line(mesh, config, text, "ECDHE-ECDSA-AES128-GCM-SHA257")


def test_an_unknown_cipher_name_beside_a_known_one_is_an_error_at_its_line(mesh, pki, tmp_path):
    # OpenSSL-style cipher lists skip names they do not know as long as one is known, so a typo in a
    # list would silently drop that cipher unless validate names it.
    config, text = tls_config(
        tmp_path / "conf", pki,
        f"      maxProtocolVersion: TLSV1_2\n      cipherSuites:\n      - {GRANTED}\n      - NOT-A-CIPHER  # <-\n",
    )
    assert_error_at_marked_line(mesh, config, text, "NOT-A-CIPHER")


def test_a_reload_with_an_unknown_cipher_is_rejected_and_the_last_good_config_keeps_serving(mesh, pki):
    gateway, ports = tls_gateway(mesh, pki, {"maxProtocolVersion": "TLSV1_2", "cipherSuites": f"[{GRANTED}]"})
    ca = pki["ca"][0]
    before = gateway.status()
    config = gateway.config_dir / "mesh.yaml"
    write_atomically(config, config.read_text().replace(f"cipherSuites: [{GRANTED}]", "cipherSuites: [NOT-A-CIPHER]"))
    gateway.proc.signal(signal.SIGHUP)

    def reload_failed_or_exited():
        if not gateway.proc.alive():
            return "exited"
        try:
            status = gateway.status()
        except OSError:
            return None  # the admin port went away: the next poll sees whether the process did too
        return status["lastReload"] != before["lastReload"] and not status["lastReload"]["ok"] and status

    outcome = wait_until(reload_failed_or_exited, START_TIMEOUT, "the reload to be rejected")
    if outcome == "exited":
        stderr = gateway.proc.stderr()
        start = stderr.find("SIGHUP")
        raise AssertionError(f"the gateway died on reload ({gateway.proc.popen.returncode}):\n{stderr[start:start + 3000]}")
    assert outcome["generation"] == before["generation"], outcome
    assert "NOT-A-CIPHER" in str(outcome["lastReload"]["diagnostics"]), outcome
    assert_handshake_ok(s_client(ports["restricted"], ca, "-tls1_2", "-cipher", GRANTED), "TLSv1.2", GRANTED)
