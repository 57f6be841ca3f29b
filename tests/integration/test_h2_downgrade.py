"""HTTP/2 downgrade: each stream of h2_corpus goes through the gateway, over h2c prior knowledge on a
plain HTTP port and over TLS with ALPN h2, to the RECORDING HTTP/1.1 upstream; the test checks what the
client got (status, reset, GOAWAY) and exactly what the upstream parsed: a body always framed, never a
second request, and nothing at all for a malformed stream. Then: a second client on its own
connection never receives a response meant for the first."""

from __future__ import annotations

import select
import socket
import ssl
import threading
from dataclasses import dataclass, field

import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated, DataReceived, RemoteSettingsChanged, ResponseReceived, StreamEnded, StreamReset, TrailersReceived,
)

from conftest import documents, free_port, gateway_yaml, http_virtual_service_yaml, service_yaml, wait_until, workload_entry_yaml
from h2_corpus import H2_VECTORS, WHY, H2V
from test_tls import credential, https_gateway_yaml, make_ca, make_cert, route_yaml
from wire import Log, RecordingUpstream, control

QUIET = 3.0
try:
    from h2_envoy import ENVOY
except ImportError:
    ENVOY = {}
TLS_HOST = "gw.example"


@pytest.fixture(scope="module")
def rig(module_mesh):
    mesh, log = module_mesh, Log()
    upstream = RecordingUpstream(mesh.address(), log, "main")
    mesh.raw_upstreams.append(upstream)
    http_port, tls_port = free_port(), free_port()
    config = mesh.config_dir({"h2.yaml": documents(
        service_yaml("main", 9080), workload_entry_yaml("main-v1", "main", "v1", upstream.host, "http", upstream.port),
        gateway_yaml("gw", http_port, "HTTP"), http_virtual_service_yaml("main", "gw", "main"),
        https_gateway_yaml("gws", tls_port, [(TLS_HOST, "SIMPLE", "gw-credential")]), route_yaml("main-tls", "gws", TLS_HOST, "main"),
    )})
    pki = mesh.tmp_path / "pki"
    ca = make_ca(pki, "ca")
    credential(config / "certs", "gw-credential", make_cert(pki, "gw", ca, [TLS_HOST]))
    mesh.gateway(config, {"http": http_port, "https": tls_port})
    context = ssl.create_default_context(cafile=str(ca[0]))
    context.set_alpn_protocols(["h2"])
    return {"http": http_port, "tls": tls_port, "log": log, "context": context}


def connect(rig, transport: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", rig[transport]), timeout=10)
    if transport == "tls":
        sock = rig["context"].wrap_socket(sock, server_hostname=TLS_HOST)
        assert sock.selected_alpn_protocol() == "h2"
    return sock


def new_h2() -> H2Connection:
    return H2Connection(H2Configuration(client_side=True, header_encoding=None, validate_outbound_headers=False,
                                        normalize_outbound_headers=False, validate_inbound_headers=False))


@dataclass
class StreamResult:
    status: int | None = None
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    reset: int | None = None
    goaway: int | None = None
    ended: bool = False
    closed: bool = False


def pump(sock: socket.socket, conn: H2Connection, results: dict[int, StreamResult], until, timeout: float = QUIET) -> None:
    """Reads frames into `results` until `until()` or the connection ends or `timeout` passes idle."""
    while not until():
        ready, _, _ = select.select([sock], [], [], timeout)
        if not ready:
            return
        try:
            data = sock.recv(65536)
        except (OSError, ssl.SSLError):
            data = b""
        if not data:
            for result in results.values():
                result.closed = True
            return
        for event in conn.receive_data(data):
            result = results.get(getattr(event, "stream_id", 0))
            if isinstance(event, ResponseReceived) and result:
                result.headers = {n.decode(): v.decode("latin-1") for n, v in event.headers}
                result.status = int(result.headers.get(":status", "0"))
            elif isinstance(event, DataReceived) and result:
                result.body += event.data
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, (StreamEnded, TrailersReceived)) and result:
                result.ended = True
            elif isinstance(event, StreamReset) and result:
                result.reset = event.error_code
            elif isinstance(event, ConnectionTerminated):
                for r in results.values():
                    r.goaway = event.error_code
        pending = conn.data_to_send()
        if pending:
            sock.sendall(pending)


def await_settings_ack(sock: socket.socket, conn: H2Connection) -> None:
    """Reads until the gateway's SETTINGS arrive, then sends their ACK (h2 queues it on receipt)."""
    sock.settimeout(QUIET)
    while True:
        data = sock.recv(65536)
        assert data, "the gateway closed before sending its SETTINGS"
        if any(isinstance(event, RemoteSettingsChanged) for event in conn.receive_data(data)):
            sock.sendall(conn.data_to_send())
            return


def send_stream(sock: socket.socket, conn: H2Connection, headers: list, data: tuple) -> int:
    stream = conn.get_next_available_stream_id()
    conn.send_headers(stream, headers, end_stream=not data)
    for index, chunk in enumerate(data):
        conn.send_data(stream, chunk, end_stream=index == len(data) - 1)
    sock.sendall(conn.data_to_send())
    return stream


def encode(vector: H2V, transport: str) -> list[tuple[bytes, bytes]]:
    authority, scheme = ("gw", "http") if transport == "http" else (TLS_HOST, "https")
    return [(n.encode(), v.replace("{a}", authority).replace("{s}", scheme).encode("latin-1")) for n, v in vector.headers]


def run(rig, transport: str, vector: H2V) -> StreamResult:
    sock = connect(rig, transport)
    with sock:
        conn = new_h2()
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        if vector.after_settings:
            await_settings_ack(sock, conn)
        stream = send_stream(sock, conn, encode(vector, transport), vector.data)
        results = {stream: StreamResult()}
        result = results[stream]
        pump(sock, conn, results, lambda: result.ended or result.reset is not None or result.goaway is not None)
    return result


@pytest.mark.parametrize("transport", ["http", "tls"])
@pytest.mark.parametrize("vector", H2_VECTORS, ids=[v.name for v in H2_VECTORS])
def test_h2_stream(rig, transport: str, vector: H2V):
    log = rig["log"]
    log.reset()
    result = run(rig, transport, vector)
    control(rig["http"], log, f"{transport}-{vector.name}")
    messages, total, errors = log.since()
    ours = [m for m in messages if not m.target.startswith("/control/")]
    envoy = f"Envoy 1.40 (h2c): {ENVOY.get(vector.name)}" + (f"; {WHY[vector.name]}" if vector.name in WHY else "") + "\n"
    seen = envoy + (f"client: status={result.status} reset={result.reset} goaway={result.goaway} ended={result.ended} body={result.body[:40]!r}; "
            f"closed={result.closed}; upstream: {[(m.method, m.target, m.framing, m.body[:40]) for m in ours]} errors={errors}")
    assert not errors, f"the upstream's strict parser refused what the gateway sent: {seen}"
    assert not any("/smuggled" in m.target for m in ours), f"SMUGGLED: {seen}"
    if vector.kind == "forward":
        assert result.status == 200 and result.ended, seen
        assert len(ours) == 1, f"the upstream must parse exactly one message: {seen}"
        framing = None if ours[0].framing == "content-length: 0" and vector.up[2] is None else ours[0].framing
        assert (ours[0].method, ours[0].target, framing, ours[0].body) == vector.up, seen
        assert total == sum(len(m.raw) for m in messages), f"stray bytes upstream: {seen}"
    elif vector.kind == "431":
        assert result.status == 431, seen
        assert not ours and total == sum(len(m.raw) for m in messages), f"nothing may reach the upstream: {seen}"
    else:
        refused = result.reset is not None or result.goaway is not None or result.status == 400 or (result.closed and result.status is None)
        assert refused, f"expected a stream reset or 400: {seen}"
        assert not ours, f"no complete message may reach the upstream: {seen}"
        if vector.kind == "refuse":
            assert total == sum(len(m.raw) for m in messages), f"ZERO bytes may reach the upstream: {seen}"
        else:
            wait_until(lambda: not log.open_partial(), 5, "the upstream connection holding a partial message to close")


def test_a_second_client_never_gets_the_first_clients_responses(rig):
    """Two clients, each on its own connection (one h2c, one TLS), interleave 50 streams each; every
    response a client reads answers one of its own requests (the upstream's x-upstream-seq names it)."""
    log = rig["log"]
    log.reset()
    mine: dict[str, list[str]] = {}
    errors: list[str] = []

    def client(transport: str, tag: str) -> None:
        sock = connect(rig, transport)
        with sock:
            conn = new_h2()
            conn.initiate_connection()
            sock.sendall(conn.data_to_send())
            results = {}
            authority, scheme = ("gw", "http") if transport == "http" else (TLS_HOST, "https")
            for index in range(50):
                headers = [(b":method", b"GET"), (b":scheme", scheme.encode()), (b":authority", authority.encode()), (b":path", f"/{tag}/{index}".encode())]
                results[send_stream(sock, conn, headers, (b"body of %s %d" % (tag.encode(), index),))] = StreamResult()
            pump(sock, conn, results, lambda: all(r.ended or r.reset is not None for r in results.values()), 10)
            seqs = [r.headers.get("x-upstream-seq") for r in results.values()]
            if not all(r.status == 200 for r in results.values()):
                errors.append(f"{tag}: {[r.status for r in results.values()]}")
            mine[tag] = seqs

    threads = [threading.Thread(target=client, args=args) for args in (("http", "first"), ("tls", "second"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    by_seq = {str(m.seq): m for m in log.since()[0]}
    for tag, seqs in mine.items():
        targets = [by_seq[s].target if s in by_seq else f"unknown seq {s}" for s in seqs]
        assert all(t.startswith(f"/{tag}/") for t in targets), f"{tag} received answers to {targets}"
        assert sorted(targets) == sorted(f"/{tag}/{i}" for i in range(50))
        assert all(by_seq[s].body == b"body of %s %s" % (tag.encode(), by_seq[s].target.rsplit("/", 1)[1].encode()) for s in seqs)
