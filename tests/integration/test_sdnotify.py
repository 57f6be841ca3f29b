"""systemd's Type=notify protocol: with NOTIFY_SOCKET set, the gateway reports READY=1 once serving,
RELOADING=1 then READY=1 around a SIGHUP, and STOPPING=1 on SIGTERM (then exits 0)."""

import signal
import socket

from conftest import documents, gateway_yaml, http_virtual_service_yaml, free_port, wait_until


def test_sd_notify_reports_ready_reloading_and_stopping(mesh, tmp_path):
    backend = mesh.backend("reviews", ["v1"])
    port = free_port()
    config = mesh.config_dir({"mesh.yaml": documents(backend.yaml, gateway_yaml("gw", port, "HTTP"), http_virtual_service_yaml("reviews", "gw", "reviews", "v1"))})

    notify_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify_path))
    listener.settimeout(20)
    messages: list[str] = []

    def next_message() -> str:
        message = listener.recv(4096).decode()
        messages.append(message)
        return message

    try:
        gateway = mesh.gateway(config, {"http": port}, env={"NOTIFY_SOCKET": str(notify_path)})
        assert next_message().startswith("READY=1")

        gateway.proc.signal(signal.SIGHUP)
        assert next_message() == "RELOADING=1"
        assert next_message() == "READY=1"
        wait_until(lambda: gateway.status()["generation"] == 2, 20, "generation 2")

        gateway.proc.signal(signal.SIGTERM)
        assert next_message() == "STOPPING=1"
        assert gateway.proc.wait(20) == 0
    finally:
        listener.close()
