"""Bounded buffering: a client sends an `Upgrade: websocket` request (or a CONNECT) and then streams up
to 256 MiB while the upstream accepts the connection and never answers (or answers 101 and then never
reads). The gateway must stop reading (backpressure), not buffer: its VmRSS grows by less than 1 MiB.
The sender stops when the socket has accepted nothing for a few seconds (poll as the stall detector),
so the test is bounded in time."""

from __future__ import annotations

import select
import socket
import threading
import time

import pytest

from conftest import ThreadedListener, documents, free_port, gateway_yaml, http_virtual_service_yaml, service_yaml, workload_entry_yaml

LIMIT = 256 << 20
STALL = 3.0  # seconds the socket may refuse more bytes before the sender calls it stalled
TIME_BOUND = 60.0
CHUNK = b"\x00" * (256 << 10)
UPGRADE = (b"GET /chat HTTP/1.1\r\nHost: gw.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
CONNECT = b"CONNECT gw.example:443 HTTP/1.1\r\nHost: gw.example:443\r\n\r\n"


class Silent(ThreadedListener):
    """Reads a request head, then (with `switch`) answers 101, and never reads or answers again; keeps
    every connection open until closed. Counts the bytes read past the head."""

    def __init__(self, host: str, switch: bool):
        self.switch = switch
        self.heads = 0
        self.extra = 0
        self._release = threading.Event()
        super().__init__(host)

    def handle(self, conn: socket.socket, state: object) -> None:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        with conn:
            buf = b""
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            self.heads += 1
            self.extra += len(buf.partition(b"\r\n\r\n")[2])
            if self.switch:
                conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            self._release.wait(TIME_BOUND * 2)

    def close(self) -> None:
        self._release.set()
        super().close()


@pytest.fixture(scope="module")
def rig(module_mesh):
    mesh = module_mesh
    waiting, switched = Silent(mesh.address(), switch=False), Silent(mesh.address(), switch=True)
    mesh.raw_upstreams += [waiting, switched]
    port = free_port()
    config = mesh.config_dir({"bounds.yaml": documents(
        service_yaml("waiting", 9080), workload_entry_yaml("waiting-v1", "waiting", "v1", waiting.host, "http", waiting.port),
        service_yaml("switched", 9080), workload_entry_yaml("switched-v1", "switched", "v1", switched.host, "http", switched.port),
        gateway_yaml("gw", port, "HTTP"),
        http_virtual_service_yaml("waiting", "gw", "waiting", hosts='["gw.example", "gw.example:443"]'),
        http_virtual_service_yaml("switched", "gw", "switched", hosts='["tunnel.example"]'),
    )})
    gateway = mesh.gateway(config, {"http": port})
    return gateway, {"waiting": waiting, "switched": switched}


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def stream_until_stalled(port: int, head: bytes) -> tuple[int, str]:
    """Sends `head`, then zeros until LIMIT, an error, or STALL seconds without progress: (bytes sent, why it stopped)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 256 << 10)
    sock.sendall(head)
    sock.setblocking(False)
    sent, deadline = 0, time.monotonic() + TIME_BOUND
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    try:
        while sent < LIMIT:
            if time.monotonic() > deadline:
                return sent, "time bound"
            if not poller.poll(STALL * 1000):
                return sent, "stalled"
            try:
                sent += sock.send(CHUNK)
            except BlockingIOError:
                continue
            except OSError as error:
                return sent, f"error {error.__class__.__name__}"
        return sent, "limit"
    finally:
        sock.close()


@pytest.mark.parametrize("case", ["upgrade-waiting-for-101", "upgrade-after-101-upstream-not-reading", "connect", "upgrade-without-route"])
def test_the_gateway_stops_reading_instead_of_buffering(rig, case: str):
    gateway, upstreams = rig
    head = {"upgrade-waiting-for-101": UPGRADE, "connect": CONNECT,
            "upgrade-after-101-upstream-not-reading": UPGRADE.replace(b"Host: gw.example", b"Host: tunnel.example"),
            # A local reply (404 NR) to an upgrade: the parser stopped at the head, so the connection must close.
            "upgrade-without-route": UPGRADE.replace(b"Host: gw.example", b"Host: nowhere.example")}[case]
    heads_before = upstreams["waiting"].heads
    port = gateway.ports["http"]
    # Warm up the path (pools, code pages) so that the measurement sees buffering, not first use.
    stream_until_stalled(port, b"GET /warm HTTP/1.1\r\nHost: nowhere.example\r\nConnection: close\r\n\r\n")
    before = rss_kib(gateway.proc.pid)
    sent, why = stream_until_stalled(port, head)
    after = rss_kib(gateway.proc.pid)
    growth = after - before
    assert gateway.proc.alive()
    assert growth < 1024, f"{case}: VmRSS grew {growth} KiB ({before} -> {after}) while the client pushed {sent >> 10} KiB ({why})"
    assert why != "limit", f"{case}: the gateway accepted all {LIMIT >> 20} MiB without an answer: no backpressure"
    if case == "upgrade-waiting-for-101":
        # Nothing but the head went upstream before a 101: the bytes after it are not yet a tunnel.
        assert upstreams["waiting"].heads == heads_before + 1, "the upgrade request never reached its upstream"
        assert upstreams["waiting"].extra == 0, f"{upstreams['waiting'].extra} bytes went upstream before any 101"
