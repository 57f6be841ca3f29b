"""WebSocket (HTTP/1.1 Upgrade) through the gateway, as Istio's gateway proxies it by default: the
upgrade request reaches the upstream with its Upgrade headers, the 101 reaches the client, and then
bytes flow both ways unchanged, including bytes sent in the same segment as either head. An upstream
that refuses the upgrade answers normally and the client connection closes after it. The client is a
raw socket (the tunnel must carry any bytes, not only WebSocket frames); the upstream is a scripted
listener that echoes after its 101."""

from __future__ import annotations

import socket

from conftest import (
    Mesh,
    ThreadedListener,
    documents,
    free_port,
    gateway_yaml,
    http_virtual_service_yaml,
    service_yaml,
    workload_entry_yaml,
)

UPGRADE_REQUEST = (
    b"GET /chat HTTP/1.1\r\nHost: chat.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class UpgradeEcho(ThreadedListener):
    """Answers an upgrade request with 101 plus a greeting in the same write, then echoes every byte
    until EOF; with `refuse`, answers 426 instead. Keeps each request head it received."""

    def __init__(self, host: str, refuse: bool = False):
        self.refuse = refuse
        self.heads: list[str] = []
        super().__init__(host)

    def handle(self, conn: socket.socket, state: object) -> None:
        conn.settimeout(10)
        with conn:
            try:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, rest = data.partition(b"\r\n\r\n")
                self.heads.append(head.decode("latin-1"))
                if self.refuse:
                    conn.sendall(b"HTTP/1.1 426 Upgrade Required\r\ncontent-length: 4\r\n\r\nnope")
                    return
                conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nwelcome\n")
                if rest:
                    conn.sendall(rest)
                while chunk := conn.recv(65536):
                    conn.sendall(chunk)
            except OSError:
                return


def chat_gateway(mesh: Mesh, upstream: UpgradeEcho):
    port = free_port()
    files = {
        "chat.yaml": documents(
            service_yaml("chat", 8080),
            workload_entry_yaml("chat-v1", "chat", "v1", upstream.host, "http", upstream.port),
            gateway_yaml("web", port, "HTTP"),
            http_virtual_service_yaml("chat", "web", "chat"),
        )
    }
    return mesh.gateway(mesh.config_dir(files), {"http": port}), port


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            raise AssertionError(f"no {marker!r} within the timeout; got {data!r}")
        assert chunk, f"connection closed before {marker!r}; got {data!r}"
        data += chunk
    return data


def test_a_websocket_upgrade_becomes_a_tunnel_both_ways(mesh: Mesh):
    upstream = UpgradeEcho(mesh.address())
    try:
        _, port = chat_gateway(mesh, upstream)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            # The first frame rides in the same segment as the request head.
            client.sendall(UPGRADE_REQUEST + b"frame-1\n")
            received = read_until(client, b"frame-1\n")
            head, _, after = received.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101"), head
            assert b"upgrade: websocket" in head.lower() and b"connection: upgrade" in head.lower()
            # The upstream's greeting came in the same segment as its 101; then the echo.
            assert after == b"welcome\nframe-1\n"
            for index in range(2, 5):
                message = f"frame-{index} {'x' * 1000 * index}\n".encode()
                client.sendall(message)
                assert read_until(client, message).endswith(message)
            # Half-close: the upstream sees EOF, ends its side, the client sees EOF.
            client.shutdown(socket.SHUT_WR)
            assert client.recv(65536) == b""
        request = upstream.heads[0].lower()
        assert "upgrade: websocket" in request and "connection: upgrade" in request
        assert "sec-websocket-key: dghlihnhbxbszsbub25jzq==" in request
    finally:
        upstream.close()


def test_a_refused_upgrade_is_an_ordinary_response_and_the_connection_closes(mesh: Mesh):
    upstream = UpgradeEcho(mesh.address(), refuse=True)
    try:
        _, port = chat_gateway(mesh, upstream)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(UPGRADE_REQUEST)
            data = b""
            while chunk := client.recv(65536):
                data += chunk
        assert data.startswith(b"HTTP/1.1 426"), data
        assert data.endswith(b"nope")
        assert b"connection: close" in data.lower()
    finally:
        upstream.close()
