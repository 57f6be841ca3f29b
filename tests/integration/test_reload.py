"""SIGHUP reloads: no failed request through 20 reloads, open TCP sessions keep their upstream, a broken
file keeps the old config (and /status says where it broke), listeners are diffed."""

import http.client
import os
import re
import select
import socket
import subprocess
import time

from conftest import (
    CurlLoop,
    curl,
    documents,
    free_port,
    gateway_yaml,
    http_virtual_service_yaml,
    tcp_exchange,
    tcp_virtual_service_yaml,
    wait_until,
    write_atomically,
)


def http_routes(gateway: str, port: int, version: str, broken_weights: bool = False) -> str:
    """Gateway `gateway` on `port`; every path to reviews `version` (weights 0+0 when `broken_weights`: an error).
    The whole route list is on one line."""
    routes = http_virtual_service_yaml("reviews", gateway, "reviews", version)
    if broken_weights:
        routes = routes.replace(
            f"subset: {version}}}}}]",
            f"subset: {version}}}, weight: 0}}, {{destination: {{host: reviews, subset: v1}}, weight: 0}}]",
        )
    return documents(gateway_yaml(gateway, port, "HTTP"), routes)


def served_by(response) -> str:
    assert response.status == 200, f"{response.status}: {response.text}"
    return f"{response.headers['x-service']} {response.headers['x-version']}"


def http_gateway(mesh, version: str = "v1"):
    backend = mesh.backend("reviews", ["v1", "v2"])
    port = free_port()
    config = mesh.config_dir({"services.yaml": backend.yaml, "routes.yaml": http_routes("gw", port, version)})
    return mesh.gateway(config, {"http": port}), config


def test_a_curl_loop_through_20_reloads_has_no_failed_request(mesh):
    gateway, config = http_gateway(mesh)
    loop = CurlLoop(gateway.url("/reviews/1")).start()
    try:
        wait_until(lambda: loop.requests > 0, 30, "the curl loop to run")
        for reload in range(1, 21):
            version = "v2" if reload % 2 else "v1"
            write_atomically(config / "routes.yaml", http_routes("gw", gateway.ports["http"], version))
            status = gateway.reload()
            assert status["lastReload"]["ok"], status
            assert served_by(curl(gateway.url("/reviews/1"))) == f"reviews {version}"
            # Let the loop make requests between every two reloads.
            done = loop.requests
            wait_until(lambda: loop.requests > done, 30, "the loop to run after the reload")
    finally:
        loop.stop()
    assert loop.failures == [], f"{len(loop.failures)} of {loop.requests} requests failed: {loop.failures[:5]}"


class NcSession:
    """An interactive `nc` to HOST:PORT: one line in, one line out."""

    def __init__(self, host: str, port: int):
        # -N: on our EOF, shut the socket down, so the echo server closes and nc exits.
        self.proc = subprocess.Popen(["nc", "-N", host, str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.pending = b""

    def exchange(self, line: bytes, timeout: float = 10.0) -> bytes:
        self.proc.stdin.write(line + b"\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while b"\n" not in self.pending:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"nc: no answer to {line!r} (got {self.pending!r})"
            ready, _, _ = select.select([self.proc.stdout], [], [], remaining)
            if ready:
                data = os.read(self.proc.stdout.fileno(), 4096)
                assert data, f"nc: the connection closed (got {self.pending!r})"
                self.pending += data
        answer, _, self.pending = self.pending.partition(b"\n")
        return answer

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def test_an_open_tcp_session_keeps_its_upstream_across_a_reload(mesh):
    backend = mesh.backend("tcp-echo", ["v1", "v2"], kind="tcp", service_port=9000, prefixes={"v1": "one", "v2": "two"})
    port = free_port()

    def tcp_config(weights):
        return documents(
            gateway_yaml("tcp-echo-gateway", port, "TCP"),
            tcp_virtual_service_yaml("tcp-echo", "tcp-echo-gateway", port, "tcp-echo", weights, 9000),
        )

    config = mesh.config_dir({"services.yaml": backend.yaml, "tcp-echo.yaml": tcp_config({"v1": 100, "v2": 0})})
    gateway = mesh.gateway(config, {"tcp": port})
    session = NcSession("127.0.0.1", port)
    try:
        assert session.exchange(b"before") == b"one before"
        write_atomically(config / "tcp-echo.yaml", tcp_config({"v1": 0, "v2": 100}))
        assert gateway.reload()["lastReload"]["ok"]
        for _ in range(5):
            assert tcp_exchange("127.0.0.1", port, b"new\n") == b"two new\n"
        for word in (b"after", b"still"):
            assert session.exchange(word) == b"one " + word
    finally:
        session.close()


def test_a_broken_reload_keeps_the_old_routes_and_status_names_the_line(mesh):
    gateway, config = http_gateway(mesh, "v1")
    assert served_by(curl(gateway.url("/reviews/1"))) == "reviews v1"
    generation = gateway.generation()

    broken = http_routes("gw", gateway.ports["http"], "v2", broken_weights=True)
    # The whole route list is on one line, so the diagnostic names it whichever node it points at.
    line = next(number for number, text in enumerate(broken.splitlines(), 1) if "weight: 0" in text)
    write_atomically(config / "routes.yaml", broken)
    status = gateway.reload()

    assert status["lastReload"]["ok"] is False
    assert status["generation"] == generation
    where = re.compile(rf"routes\.yaml:{line}: error: ")
    assert any(where.search(d) for d in status["lastReload"]["diagnostics"]), status["lastReload"]
    assert where.search(gateway.proc.stdout() + gateway.proc.stderr()), "the diagnostic is logged too"
    for _ in range(5):
        assert served_by(curl(gateway.url("/reviews/1"))) == "reviews v1"
    assert gateway.readiness() == 200

    write_atomically(config / "routes.yaml", http_routes("gw", gateway.ports["http"], "v2"))
    status = gateway.reload()
    assert status["lastReload"]["ok"] is True
    assert status["generation"] > generation
    assert served_by(curl(gateway.url("/reviews/1"))) == "reviews v2"


def test_a_reload_binds_new_ports_keeps_unchanged_ones_and_closes_removed_ones(mesh):
    reviews = mesh.backend("reviews", ["v1", "v2"])
    echo = mesh.backend("tcp-echo", ["v1"], kind="tcp", service_port=9000, prefixes={"v1": "one"})
    http_port, tcp_port = free_port(), free_port()
    tcp_config = documents(
        gateway_yaml("tcp-gw", tcp_port, "TCP"),
        tcp_virtual_service_yaml("tcp-echo", "tcp-gw", tcp_port, "tcp-echo", {"v1": 100}, 9000),
    )
    config = mesh.config_dir(
        {"services.yaml": documents(reviews.yaml, echo.yaml), "routes.yaml": http_routes("gw", http_port, "v1")}
    )
    gateway = mesh.gateway(config, {"http": http_port, "tcp": tcp_port})
    kept = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
    try:
        kept.request("GET", "/reviews/1")
        assert kept.getresponse().read() == b"reviews v1: hello from /reviews/1\n"
        kept_socket = kept.sock

        write_atomically(config / "tcp.yaml", tcp_config)
        status = gateway.reload()
        assert status["lastReload"]["ok"], status
        assert {"port": tcp_port, "protocol": "TCP"} in [{k: l[k] for k in ("port", "protocol")} for l in status["listeners"]]
        assert tcp_exchange("127.0.0.1", tcp_port, b"hi\n") == b"one hi\n"

        kept.request("GET", "/reviews/2")
        assert kept.getresponse().read() == b"reviews v1: hello from /reviews/2\n"
        assert kept.sock is kept_socket, "the HTTP listener's open connection survived the reload"

        (config / "tcp.yaml").unlink()
        status = gateway.reload()
        assert status["lastReload"]["ok"], status
        assert tcp_port not in [listener["port"] for listener in status["listeners"]]

        def refused() -> bool:
            try:
                socket.create_connection(("127.0.0.1", tcp_port), timeout=2).close()
                return False
            except ConnectionRefusedError:
                return True

        wait_until(refused, 30, f"port {tcp_port} to stop accepting")
        assert served_by(curl(gateway.url("/reviews/3"))) == "reviews v1"
    finally:
        kept.close()


def test_a_reload_without_meshgate_yaml_is_refused_and_keeps_the_last_good_config(mesh):
    gateway, config = http_gateway(mesh, "v1")
    generation = gateway.generation()
    settings = (config / "meshgate.yaml").read_text()
    (config / "meshgate.yaml").unlink()

    status = gateway.reload()
    assert status["lastReload"]["ok"] is False, status
    assert status["generation"] == generation
    assert any("meshgate.yaml: missing" in d for d in status["lastReload"]["diagnostics"]), status["lastReload"]
    # Still the old settings (its admin and readiness ports answer) and the old routes.
    assert gateway.readiness() == 200
    assert served_by(curl(gateway.url("/reviews/1"))) == "reviews v1"

    write_atomically(config / "meshgate.yaml", settings)
    status = gateway.reload()
    assert status["lastReload"]["ok"] is True, status
    assert status["generation"] > generation
