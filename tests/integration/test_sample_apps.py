"""The sample apps on their own, with real clients: what the gateway tests stand on."""

import socket
import subprocess

from conftest import curl, recv_line, tcp_exchange


def test_tcp_echo_answers_each_line_like_istios_tcp_echo_server(mesh):
    app = mesh.tcp_echo("one")
    result = subprocess.run(
        ["nc", "-N", app.host, str(app.port)], input=b"hello\nworld\n", capture_output=True, timeout=20
    )
    assert result.stdout == b"one hello\none world\n"


def test_tcp_echo_answers_the_last_line_after_half_close(mesh):
    app = mesh.tcp_echo("two")
    assert tcp_exchange(app.host, app.port, b"a\nno newline") == b"two a\ntwo no newline\n"


def test_tcp_echo_answers_while_the_session_stays_open(mesh):
    app = mesh.tcp_echo("one")
    with socket.create_connection((app.host, app.port), timeout=10) as sock:
        for word in (b"first", b"second"):
            sock.sendall(word + b"\n")
            assert recv_line(sock) == b"one " + word + b"\n"


def test_http_app_names_service_version_and_path(mesh):
    app = mesh.http_app("reviews", "v2")
    root = curl(f"http://{app.host}:{app.port}/")
    assert root.status == 200
    assert root.text == "reviews v2: hello\n"
    assert root.headers["x-service"] == "reviews"
    assert root.headers["x-version"] == "v2"
    page = curl(f"http://{app.host}:{app.port}/reviews/1?x=y")
    assert page.text == "reviews v2: hello from /reviews/1\n"
    assert "GET /reviews/1?x=y" in app.requests()


def test_http_app_endpoints(mesh, tmp_path):
    app = mesh.http_app("httpbin", "v1")
    base = f"http://{app.host}:{app.port}"

    headers = curl(f"{base}/headers", "-H", "End-User: jason", "-H", "X-Multi: a", "-H", "x-multi: b").json()["headers"]
    assert headers["End-User"] == "jason"
    assert headers["X-Multi"] == "a, b"

    teapot = curl(f"{base}/status/418")
    assert teapot.status == 418
    assert teapot.headers["x-service"] == "httpbin"

    assert curl(f"{base}/delay/0.1").status == 200

    assert len(curl(f"{base}/bytes/300000").body) == 300000

    payload = tmp_path / "payload"
    payload.write_bytes(b"x" * 123457)
    assert curl(f"{base}/upload", "-T", str(payload)).json() == {"bytes": 123457}
    assert curl(f"{base}/upload", "--data-binary", f"@{payload}").json() == {"bytes": 123457}


def test_http_app_keeps_connections_alive(mesh):
    app = mesh.http_app("details", "v1")
    url = f"http://{app.host}:{app.port}/"
    result = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-o", "/dev/null", "-w", "%{num_connects}\n", url, url],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "0"], "the second request reuses the first connection"
