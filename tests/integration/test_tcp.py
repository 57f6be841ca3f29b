"""TCP on a Gateway TCP server: weighted shifting per connection (tcp-echo-20-v2.yaml), real nc,
and a failed upstream connect closing the client connection."""

import subprocess

from conftest import (
    documents,
    free_port,
    gateway_yaml,
    service_yaml,
    tcp_exchange,
    tcp_virtual_service_yaml,
    workload_entry_yaml,
)

CONNECTIONS = 1000


def tcp_echo_gateway(mesh, weights: dict[str, int]):
    backend = mesh.backend("tcp-echo", ["v1", "v2"], kind="tcp", service_port=9000, prefixes={"v1": "one", "v2": "two"})
    port = free_port()
    config = mesh.config_dir(
        {
            "tcp-echo.yaml": documents(
                backend.yaml,
                gateway_yaml("tcp-echo-gateway", port, "TCP"),
                tcp_virtual_service_yaml("tcp-echo", "tcp-echo-gateway", port, "tcp-echo", weights, 9000),
            )
        }
    )
    return mesh.gateway(config, {"tcp": port})


def test_weights_80_20_give_two_a_share_between_16_and_24_percent(mesh):
    gateway = tcp_echo_gateway(mesh, {"v1": 80, "v2": 20})
    answers = [tcp_exchange("127.0.0.1", gateway.ports["tcp"], b"hello\n") for _ in range(CONNECTIONS)]
    unexpected = {answer for answer in answers if answer not in (b"one hello\n", b"two hello\n")}
    assert not unexpected, f"unexpected answers: {unexpected}"
    share = answers.count(b"two hello\n") / CONNECTIONS
    assert 0.16 <= share <= 0.24, f"two's share is {share:.1%}"


def test_nc_through_the_gateway(mesh):
    gateway = tcp_echo_gateway(mesh, {"v1": 100, "v2": 0})
    for _ in range(5):
        result = subprocess.run(
            ["nc", "-N", "127.0.0.1", str(gateway.ports["tcp"])], input=b"hello\n", capture_output=True, timeout=20
        )
        assert result.stdout == b"one hello\n"


def test_large_echo_keeps_every_byte(mesh):
    """Backpressure and half-close through the pump: 8 MB of lines (more than the socket buffers hold)
    come back complete and in order."""
    gateway = tcp_echo_gateway(mesh, {"v1": 100, "v2": 0})
    filler = b"x" * 88
    lines = b"".join(b"line %07d %s\n" % (i, filler) for i in range(80_000))
    answer = tcp_exchange("127.0.0.1", gateway.ports["tcp"], lines, timeout=60)
    assert answer == b"".join(b"one line %07d %s\n" % (i, filler) for i in range(80_000))


def test_a_failed_upstream_connect_closes_the_client_connection(mesh):
    dead_address = mesh.address()
    port = free_port()
    config = mesh.config_dir(
        {
            "dead.yaml": documents(
                service_yaml("dead", 9000, "tcp"),
                workload_entry_yaml("dead-v1", "dead", "v1", dead_address, "tcp", free_port(dead_address)),
                gateway_yaml("gw", port, "TCP"),
                tcp_virtual_service_yaml("dead", "gw", port, "dead", {None: 100}, 9000),
            )
        }
    )
    mesh.gateway(config, {"tcp": port})
    try:
        answer = tcp_exchange("127.0.0.1", port, b"hello\n")
    except ConnectionResetError:
        answer = b""
    assert answer == b"", "closed (EOF or reset) without an answer"
