"""Bodies stream through the gateway both ways: 100 MB down and 100 MB up arrive whole, and the
gateway's peak memory does not grow by anything like the body's size."""

import re
import subprocess
from pathlib import Path

from conftest import documents, free_port, gateway_yaml, http_virtual_service_yaml

SIZE = 100 * 1024 * 1024
# Far below SIZE: a gateway that buffered a body would exceed it.
MAX_PEAK_GROWTH = 48 * 1024 * 1024


def peak_rss(pid: int) -> int:
    """VmHWM of a process, in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmHWM:\s+(\d+) kB$", status, re.M).group(1)) * 1024


def test_100_mb_download_and_upload_stream_through(mesh, tmp_path):
    backend = mesh.backend("httpbin", ["v1"])
    port = free_port()
    config = mesh.config_dir(
        {
            "services.yaml": backend.yaml,
            "routes.yaml": documents(gateway_yaml("gw", port, "HTTP"), http_virtual_service_yaml("httpbin", "gw", "httpbin")),
        }
    )
    gateway = mesh.gateway(config, {"http": port})
    baseline = peak_rss(gateway.proc.pid)

    download = subprocess.run(
        ["curl", "-sS", "--max-time", "300", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", gateway.url(f"/bytes/{SIZE}")],
        capture_output=True, text=True, timeout=320,
    )
    assert download.returncode == 0, download.stderr
    assert download.stdout == f"200 {SIZE}"

    payload = tmp_path / "payload"
    with open(payload, "wb") as file:
        file.truncate(SIZE)  # sparse: 100 MB of zeros without writing them
    upload = subprocess.run(
        ["curl", "-sS", "--max-time", "300", "-T", str(payload), "-w", "\n%{http_code}", gateway.url("/upload")],
        capture_output=True, text=True, timeout=320,
    )
    assert upload.returncode == 0, upload.stderr
    assert upload.stdout == f'{{"bytes": {SIZE}}}\n\n200'

    growth = peak_rss(gateway.proc.pid) - baseline
    assert growth < MAX_PEAK_GROWTH, f"the gateway's peak memory grew by {growth >> 20} MiB"
