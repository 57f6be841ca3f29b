"""Start-up and drain: SIGTERM finishes in-flight work after readiness turns 503 and exits 0; a config
with errors never starts. (sd_notify has its own test, test_sdnotify.py.)"""

import signal
import subprocess

from conftest import (
    START_TIMEOUT,
    STOP_TIMEOUT,
    documents,
    free_port,
    gateway_yaml,
    http_virtual_service_yaml,
    wait_until,
)


def httpbin_gateway(mesh):
    backend = mesh.backend("httpbin", ["v1"])
    port = free_port()
    config = mesh.config_dir(
        {
            "services.yaml": backend.yaml,
            "routes.yaml": documents(gateway_yaml("gw", port, "HTTP"), http_virtual_service_yaml("httpbin", "gw", "httpbin")),
        }
    )
    return mesh.gateway(config, {"http": port}), backend.apps["v1"]


def test_sigterm_during_a_slow_request_drains_then_exits_0(mesh):
    gateway, app = httpbin_gateway(mesh)
    client = subprocess.Popen(
        ["curl", "-sS", "--max-time", "60", "-w", "\n%{http_code}", gateway.url("/delay/2")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: "GET /delay/2" in app.requests(), START_TIMEOUT, "the request to reach the app")
        gateway.proc.signal(signal.SIGTERM)

        def not_ready() -> bool:
            code = gateway.readiness()
            assert code in (200, 503), f"readiness must keep answering while draining, got {code}"
            return code == 503

        wait_until(not_ready, STOP_TIMEOUT, "readiness 503")
        assert client.poll() is None, "readiness turned 503 only after the in-flight request had ended"
        out, err = client.communicate(timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert client.returncode == 0, err
    body, _, status = out.rpartition("\n")
    assert status == "200"
    assert body == "httpbin v1: hello from /delay/2\n"
    assert gateway.proc.wait(timeout=60) == 0, gateway.proc.stderr()


def test_a_config_with_errors_never_starts(mesh):
    port = free_port()
    # An unknown field is an error (an undeclared service is only a warning, as in Istio).
    broken = documents(
        gateway_yaml("gw", port, "HTTP"),
        http_virtual_service_yaml("nowhere", "gw", "no-such-service") + "  bogusField: 1\n",
    )
    line = next(number for number, text in enumerate(broken.splitlines(), 1) if "bogusField" in text)
    config = mesh.config_dir({"routes.yaml": broken})
    proc = mesh.run("gateway", "gateway", "--config", str(config))
    code = proc.wait(timeout=START_TIMEOUT)
    assert code != 0
    assert f"routes.yaml:{line}: error: " in proc.stdout() + proc.stderr()


def test_sigterm_sends_goaway_on_http2_and_the_stream_in_flight_completes(mesh):
    gateway, app = httpbin_gateway(mesh)
    # nghttp speaks HTTP/2 with prior knowledge on http:// URLs and prints every frame it receives.
    client = subprocess.Popen(
        ["nghttp", "-v", "--timeout=60", gateway.url("/delay/2")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_until(lambda: "GET /delay/2" in app.requests(), START_TIMEOUT, "the request to reach the app")
        gateway.proc.signal(signal.SIGTERM)
        output, _ = client.communicate(timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
    assert "recv GOAWAY frame" in output, output
    assert ":status: 200" in output, output
    assert gateway.proc.wait(STOP_TIMEOUT + 20) == 0
    # The connection closed when its last stream ended, not when the drain timeout ran out.
    assert "drain timeout" not in gateway.proc.stderr()


def _catches_or_ignores(pid: int, signum: int) -> bool:
    """Whether the process has a handler for `signum` (or ignores it), from /proc/PID/status."""
    try:
        status = open(f"/proc/{pid}/status").read()
    except FileNotFoundError:
        return False
    masks = {line.split(":")[0]: int(line.split(":")[1], 16) for line in status.splitlines() if line.startswith(("SigIgn", "SigCgt"))}
    bit = 1 << (signum - 1)
    return bool((masks.get("SigIgn", 0) | masks.get("SigCgt", 0)) & bit)


def test_sighup_during_start_up_is_survived_and_applied(mesh):
    """Signal handlers are installed before the config is read: SIGHUPs sent as soon as the process
    can take them, before it is ready, neither kill it (exit 129) nor are lost: it starts, serves,
    and applies them as reloads."""
    backend = mesh.backend("httpbin", ["v1"])
    port = free_port()
    config = mesh.config_dir(
        {
            "services.yaml": backend.yaml,
            "routes.yaml": documents(gateway_yaml("gw", port, "HTTP"), http_virtual_service_yaml("httpbin", "gw", "httpbin")),
        }
    )
    gateway = mesh.gateway(config, {"http": port}, wait_ready=False)
    wait_until(lambda: _catches_or_ignores(gateway.proc.pid, signal.SIGHUP) or not gateway.proc.alive(), START_TIMEOUT, "a SIGHUP handler")
    for _ in range(3):
        gateway.proc.signal(signal.SIGHUP)
    gateway.wait_ready()
    wait_until(lambda: gateway.generation() > 1, START_TIMEOUT, "the early reloads to apply")
    assert gateway.proc.alive()
