"""HTTP/2 to the upstream: a DestinationRule's `h2UpgradePolicy: UPGRADE`, ports declared GRPC or HTTP2,
gRPC-shaped calls with their trailers, and streams multiplexed on a few shared upstream connections.
The upstream is the sample app, which serves HTTP/1.1 and h2c on one port and says in
`x-request-protocol` which one a request arrived in; the clients are curl and h2load."""

from __future__ import annotations

import socket
import struct
import subprocess
from pathlib import Path

import pytest

from conftest import (
    Mesh,
    ThreadedListener,
    curl,
    documents,
    established_connections,
    free_port,
    gateway_yaml,
    grpc_call,
    http_virtual_service_yaml,
    resource_yaml,
    service_yaml,
    wait_until,
    workload_entry_yaml,
)


def h2_gateway(mesh: Mesh, port_name: str = "http", policy: str | None = None, upstream: tuple[str, int] | None = None,
               idle_timeout: str | None = None):
    """A gateway on an HTTP port routing everything to `echo` (one sample app, or `upstream`), whose
    service port is named `port_name` and whose DestinationRule sets `h2UpgradePolicy: policy` and
    the pooled connections' `idleTimeout`."""
    app = mesh.http_app("echo", "v1") if upstream is None else None
    host, app_port = upstream or (app.host, app.port)
    rule = "  host: echo\n"
    http_settings = (f"        h2UpgradePolicy: {policy}\n" if policy else "") + (f"        idleTimeout: {idle_timeout}\n" if idle_timeout else "")
    if http_settings:
        rule += f"  trafficPolicy:\n    connectionPool:\n      http:\n{http_settings}"
    port = free_port()
    files = {
        "echo.yaml": documents(
            service_yaml("echo", 9000, port_name),
            workload_entry_yaml("echo-v1", "echo", "v1", host, port_name, app_port),
            resource_yaml("DestinationRule", "echo", rule),
        ),
        "gw.yaml": documents(gateway_yaml("web", port, "HTTP"), http_virtual_service_yaml("echo", "web", "echo")),
    }
    gateway = mesh.gateway(mesh.config_dir(files), {"http": port})
    return app, gateway


def test_h2_upgrade_policy_sends_http1_requests_upstream_as_http2(mesh: Mesh, tmp_path: Path):
    app, gateway = h2_gateway(mesh, policy="UPGRADE")
    reply = curl(gateway.url("/hello"), "--http1.1")
    assert reply.status == 200
    assert reply.headers["x-request-protocol"] == "HTTP/2"
    # Bodies both ways cross the stream intact (flow control, backpressure), and the response is
    # re-framed for the HTTP/1.1 client.
    body = tmp_path / "body.bin"
    body.write_bytes(b"x" * 300_000)
    upload = curl(gateway.url("/upload"), "--http1.1", "-H", "content-type: application/octet-stream", "--data-binary", f"@{body}")
    assert upload.status == 200 and upload.json()["bytes"] == 300_000
    download = curl(gateway.url("/bytes/5000000"), "--http1.1")
    assert download.status == 200 and len(download.body) == 5_000_000
    assert app.requests()[:1] == ["GET /hello"]


def test_http_ports_stay_http1_without_the_policy_or_with_do_not_upgrade(mesh: Mesh):
    for policy in (None, "DO_NOT_UPGRADE"):
        app, gateway = h2_gateway(mesh, policy=policy)
        reply = curl(gateway.url("/hello"), "--http2-prior-knowledge")
        assert reply.status == 200
        assert reply.headers["x-request-protocol"] == "HTTP/1.1", policy


def test_a_grpc_port_speaks_http2_and_passes_messages_and_trailers(mesh: Mesh, tmp_path: Path):
    app, gateway = h2_gateway(mesh, port_name="grpc")
    reply = grpc_call(gateway.url("/echo.Echo/Say"), b"hello over grpc", tmp_path, "--http2-prior-knowledge")
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/grpc"
    assert reply.headers["x-request-protocol"] == "HTTP/2"
    assert reply.body == b"\x00\x00\x00\x00\x0fhello over grpc"
    # grpc-status travels in trailers (and `te: trailers` reached the app, or a gRPC server would refuse).
    assert reply.trailers == {"grpc-status": "0"}
    assert "grpc-status" not in reply.headers


def test_streams_share_a_few_upstream_connections(mesh: Mesh):
    app, gateway = h2_gateway(mesh, port_name="http2")
    # 4 client connections × 50 concurrent streams: with HTTP/1.1 upstream this opens ~200 connections.
    result = subprocess.run(
        ["h2load", "-n", "4000", "-c", "4", "-m", "50", gateway.url("/hello")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "4000 succeeded, 0 failed, 0 errored" in result.stdout, result.stdout
    assert "status codes: 4000 2xx" in result.stdout, result.stdout
    # One or two connections per event loop carry them all (100 streams each before a second opens).
    connections = established_connections(app.host, app.port)
    assert 1 <= connections <= 6, connections


@pytest.mark.parametrize("port_name", ["http", "grpc"])
def test_pooled_upstream_connections_close_after_the_idle_timeout(mesh: Mesh, port_name: str):
    app, gateway = h2_gateway(mesh, port_name=port_name, idle_timeout="1s")
    assert curl(gateway.url("/hello")).status == 200
    assert established_connections(app.host, app.port) == 1
    # DestinationRule connectionPool.http.idleTimeout: the kept-alive HTTP/1.1 connection, or the
    # HTTP/2 connection without streams, is closed once idle that long (checked every 5 s).
    wait_until(lambda: established_connections(app.host, app.port) == 0, 15, "the idle upstream connection to close")
    assert curl(gateway.url("/hello")).status == 200


# MARK: - A scripted HTTP/2 server, for what the sample app never does


DATA, HEADERS, RST_STREAM, SETTINGS, GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x7
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
REFUSED_STREAM = 0x7


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


class ScriptedH2(ThreadedListener):
    """An h2c server written frame by frame (RFC 9113 §4.1). It answers each request stream with
    `:status 200` (HPACK static index 8) once the stream's END_STREAM arrives, except that
    `refuse_first` resets the very first stream with REFUSED_STREAM, and `goaway_after_first` sends
    GOAWAY right after the first answer on each connection. Records the streams each connection saw."""

    def __init__(self, host: str, refuse_first: bool = False, goaway_after_first: bool = False):
        self.refuse_first, self.goaway_after_first = refuse_first, goaway_after_first
        self.streams: list[list[int]] = []
        self.refused = 0
        super().__init__(host)

    def accepted(self) -> object:
        self.streams.append([])
        return self.streams[-1]

    def _read(self, conn: socket.socket, count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = conn.recv(count - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def handle(self, conn: socket.socket, seen: list[int]) -> None:
        with conn:
            try:
                assert self._read(conn, 24) == b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                conn.sendall(frame(SETTINGS, 0, 0))
                while True:
                    header = self._read(conn, 9)
                    length = int.from_bytes(header[:3], "big")
                    kind, flags, stream = header[3], header[4], int.from_bytes(header[5:9], "big") & 0x7FFFFFFF
                    self._read(conn, length)
                    if kind == SETTINGS and not flags & ACK:
                        conn.sendall(frame(SETTINGS, ACK, 0))
                    if kind in (HEADERS, DATA) and flags & END_STREAM:
                        seen.append(stream)
                        if self.refuse_first and self.refused == 0:
                            self.refused += 1
                            conn.sendall(frame(RST_STREAM, 0, stream, struct.pack(">I", REFUSED_STREAM)))
                            continue
                        conn.sendall(frame(HEADERS, END_HEADERS | END_STREAM, stream, b"\x88"))
                        if self.goaway_after_first and len(seen) == 1:
                            conn.sendall(frame(GOAWAY, 0, 0, struct.pack(">II", stream, 0)))
            except (ConnectionError, OSError):
                return


def test_a_refused_stream_is_sent_again_on_a_new_connection(mesh: Mesh):
    server = ScriptedH2(mesh.address(), refuse_first=True)
    try:
        _, gateway = h2_gateway(mesh, port_name="grpc", upstream=(server.host, server.port))
        reply = curl(gateway.url("/hello"))
        assert reply.status == 200, reply.headers
        # REFUSED_STREAM means "not processed" (RFC 9113 §8.7): the request went again, on a new connection.
        assert server.refused == 1
        assert [len(streams) for streams in server.streams] == [1, 1]
    finally:
        server.close()


def test_after_goaway_new_requests_open_a_new_connection(mesh: Mesh):
    server = ScriptedH2(mesh.address(), goaway_after_first=True)
    try:
        _, gateway = h2_gateway(mesh, port_name="grpc", upstream=(server.host, server.port))
        assert [curl(gateway.url(f"/{index}")).status for index in range(3)] == [200, 200, 200]
        # Each connection carried one stream: after its GOAWAY nothing new was started on it.
        assert [len(streams) for streams in server.streams] == [1, 1, 1]
    finally:
        server.close()
