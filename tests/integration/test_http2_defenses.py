"""HTTP/2 denial-of-service defenses stay on: a rapid-reset flood and a CONTINUATION flood each get
the connection closed with GOAWAY, and the gateway keeps serving. Frames are written by hand
(RFC 9113 §4.1 frame layout, RFC 7541 static-table HPACK) so nothing in the client softens them."""

import socket
import struct

from conftest import curl, documents, free_port, gateway_yaml, http_virtual_service_yaml

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADERS, RST_STREAM, SETTINGS, GOAWAY, CONTINUATION = 0x1, 0x3, 0x4, 0x7, 0x9
END_STREAM, END_HEADERS = 0x1, 0x4


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def request_block(authority: str) -> bytes:
    # :method GET (2), :scheme http (6), :path / (4), :authority literal without indexing (name index 1).
    value = authority.encode()
    return bytes([0x82, 0x86, 0x84, 0x01, len(value)]) + value


def frame_types(data: bytes) -> list[int]:
    kinds, offset = [], 0
    while offset + 9 <= len(data):
        length = int.from_bytes(data[offset:offset + 3], "big")
        kinds.append(data[offset + 3])
        offset += 9 + length
    return kinds


def gateway(mesh):
    backend = mesh.backend("reviews", ["v1"])
    port = free_port()
    config = mesh.config_dir({"mesh.yaml": documents(backend.yaml, gateway_yaml("web", port, "HTTP"), http_virtual_service_yaml("reviews", "web", "reviews"))})
    return mesh.gateway(config, {"http": port}), port


def attack(port: int, frames: bytes) -> list[int]:
    """Sends the preface, SETTINGS and `frames`; returns the types of the frames received until the
    gateway closes the connection (a read timeout fails the test: the connection must close)."""
    received = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        try:
            sock.sendall(PREFACE + frame(SETTINGS, 0, 0) + frames)
        except OSError:
            pass  # the gateway may close before everything is written
        while True:
            try:
                data = sock.recv(1 << 16)
            except ConnectionResetError:
                break
            if not data:
                break
            received += data
    return frame_types(bytes(received))


def test_rapid_reset_flood_gets_goaway(mesh):
    gw, port = gateway(mesh)
    block = request_block(f"127.0.0.1:{port}")
    flood = b"".join(
        frame(HEADERS, END_STREAM | END_HEADERS, stream, block) + frame(RST_STREAM, 0, stream, struct.pack(">I", 8))
        for stream in range(1, 2 * 3000, 2)
    )
    assert GOAWAY in attack(port, flood)
    assert gw.proc.alive()
    assert curl(gw.url("/x")).status == 200


def test_continuation_flood_gets_goaway(mesh):
    gw, port = gateway(mesh)
    flood = frame(HEADERS, 0, 1, request_block(f"127.0.0.1:{port}")) + b"".join(
        frame(CONTINUATION, 0, 1, bytes([0x40, 0x01, 0x61, 0x01, 0x62])) for _ in range(2000)
    )
    assert GOAWAY in attack(port, flood)
    assert gw.proc.alive()
    assert curl(gw.url("/x")).status == 200
