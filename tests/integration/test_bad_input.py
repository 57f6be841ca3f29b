"""Malformed HTTP requests get 400 (431 for the header limits) and a closed connection, and nothing
reaches the upstream: a raw socket listener stands in for it and records every byte it receives."""

import socket

import pytest

from conftest import documents, free_port, gateway_yaml, http_virtual_service_yaml, recv_until_closed, service_yaml, wait_until, workload_entry_yaml

MALFORMED = {
    "bad-request-line": (b"THIS IS NOT HTTP\r\n\r\n", 400),
    "conflicting-content-length": (
        b"POST /upload HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        400,
    ),
    "content-length-and-transfer-encoding": (
        b"POST /upload HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    "obs-fold": (b"GET / HTTP/1.1\r\nHost: gw\r\nX-Folded: a\r\n b\r\n\r\n", 400),
    "headers-over-60-KiB": (b"GET / HTTP/1.1\r\nHost: gw\r\nX-Big: " + b"a" * (61 * 1024) + b"\r\n\r\n", 431),
    "more-than-100-headers": (
        b"GET / HTTP/1.1\r\nHost: gw\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(101)) + b"\r\n",
        431,
    ),
}


@pytest.fixture(scope="module")
def setup(module_mesh):
    mesh = module_mesh
    upstream = mesh.raw_upstream()
    port = free_port()
    config = mesh.config_dir(
        {
            "raw.yaml": documents(
                service_yaml("raw", 9080),
                workload_entry_yaml("raw-v1", "raw", "v1", upstream.host, "http", upstream.port),
                gateway_yaml("gw", port, "HTTP"),
                http_virtual_service_yaml("raw", "gw", "raw"),
            )
        }
    )
    return mesh.gateway(config, {"http": port}), upstream


def exchange(port: int, request: bytes) -> bytes:
    """Sends `request` and reads until the gateway closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        try:
            return recv_until_closed(sock)
        except ConnectionResetError:
            pytest.fail("the connection was reset before the answer arrived (closed without reading the request?)")


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_request_is_refused_and_nothing_reaches_the_upstream(setup, case):
    gateway, upstream = setup
    request, status = MALFORMED[case]
    _, before = upstream.snapshot()

    answer = exchange(gateway.ports["http"], request)
    assert answer.startswith(b"HTTP/1.1 %d " % status), answer[:200]
    assert upstream.snapshot()[1] == before, "nothing reached the upstream"

    # The control: a good request on a new connection does reach it, so the silence above means something.
    path = f"/control/{case}".encode()
    answer = exchange(gateway.ports["http"], b"GET " + path + b" HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
    wait_until(lambda: b"GET " + path + b" HTTP/1.1" in upstream.snapshot()[1], 10, "the control request upstream")
