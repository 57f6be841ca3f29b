"""The access log (issue 5): Istio's default TEXT format, read back field by field by a parser of that
format, for an HTTP request (real curl) and a TCP connection (real nc) through the gateway; the JSON
encoding with Envoy's keys; a log that cannot be written never stops traffic."""

import json
import re
import subprocess
import uuid
from datetime import datetime, timezone

from conftest import (
    CurlLoop,
    curl,
    documents,
    free_port,
    gateway_yaml,
    http_virtual_service_yaml,
    tcp_virtual_service_yaml,
    wait_until,
)

# Istio's default format, operator by operator (reference §f):
# [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS%
# %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED%
# %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%"
# "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS%
# %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%
ISTIO_TEXT_FORMAT = re.compile(
    r'^\[(?P<start_time>[^\]]+)\] '
    r'"(?P<method>\S+) (?P<path>\S+) (?P<protocol>\S+)" '
    r"(?P<response_code>\d+) (?P<response_flags>\S+) (?P<response_code_details>\S+) (?P<connection_termination_details>\S+) "
    r'"(?P<upstream_transport_failure_reason>[^"]*)" '
    r"(?P<bytes_received>\d+) (?P<bytes_sent>\d+) (?P<duration>\d+) (?P<upstream_service_time>\S+) "
    r'"(?P<x_forwarded_for>[^"]*)" "(?P<user_agent>[^"]*)" "(?P<request_id>[^"]*)" "(?P<authority>[^"]*)" "(?P<upstream_host>[^"]*)" '
    r"(?P<upstream_cluster>\S+) (?P<upstream_local_address>\S+) (?P<downstream_local_address>\S+) "
    r"(?P<downstream_remote_address>\S+) (?P<requested_server_name>\S+) (?P<route_name>\S+)$"
)
START_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ADDRESS = re.compile(r"^\d+\.\d+\.\d+\.\d+:\d+$")

# Envoy's JSON keys, in the order Meshgate writes them (the TEXT order).
JSON_KEYS = [
    "start_time", "method", "path", "protocol", "response_code", "response_flags", "response_code_details",
    "connection_termination_details", "upstream_transport_failure_reason", "bytes_received", "bytes_sent", "duration",
    "upstream_service_time", "x_forwarded_for", "user_agent", "request_id", "authority", "upstream_host",
    "upstream_cluster", "upstream_local_address", "downstream_local_address", "downstream_remote_address",
    "requested_server_name", "route_name",
]


def parse_text_line(line: str) -> dict[str, str]:
    match = ISTIO_TEXT_FORMAT.match(line)
    assert match, f"not in Istio's default format: {line!r}"
    return match.groupdict()


def start_time(text: str) -> datetime:
    assert START_TIME.match(text), f"%START_TIME% is not ISO-8601 UTC with milliseconds and Z: {text!r}"
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")


def log_lines(path, count: int) -> list[str]:
    """Waits until the log holds `count` complete lines; returns them."""

    def complete():
        if not path.exists():
            return None
        text = path.read_text()
        lines = text.split("\n")
        return lines[:-1] if len(lines) - 1 >= count else None

    return wait_until(complete, 20, f"{count} access-log lines in {path}")


def gateway_with_http_and_tcp(mesh, **settings):
    """httpbin (HTTP, subset v1) on one gateway port, tcp-echo (subset v1, prefix `one`) on another."""
    http = mesh.backend("httpbin", ["v1"])
    tcp = mesh.backend("tcp-echo", ["v1"], kind="tcp", service_port=9000, prefixes={"v1": "one"})
    http_port, tcp_port = free_port(), free_port()
    config = mesh.config_dir(
        {
            "apps.yaml": documents(
                http.yaml,
                tcp.yaml,
                gateway_yaml("web", http_port, "HTTP"),
                gateway_yaml("echo", tcp_port, "TCP"),
                http_virtual_service_yaml("httpbin", "web", "httpbin", subset="v1"),
                tcp_virtual_service_yaml("tcp-echo", "echo", tcp_port, "tcp-echo", {"v1": 100}, 9000),
            )
        },
        **settings,
    )
    gateway = mesh.gateway(config, {"http": http_port, "tcp": tcp_port})
    return gateway, http.apps["v1"], tcp.apps["v1"]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def test_http_and_tcp_lines_match_istios_default_format_field_by_field(mesh):
    log = mesh.tmp_path / "access.log"
    gateway, app, echo = gateway_with_http_and_tcp(mesh, accessLogFile=str(log))
    client = mesh.address()  # curl and nc connect from their own loopback address
    request_id = str(uuid.uuid4())

    now = utc_now()
    before = now.replace(microsecond=now.microsecond // 1000 * 1000)  # %START_TIME% has milliseconds
    client_port = free_port(client)
    reply = curl(
        gateway.url("/headers"),
        "--interface", client, "--local-port", str(client_port),
        "-H", "Host: httpbin.example.com", "-H", "User-Agent: meshgate-test/1.0", "-H", f"x-request-id: {request_id}",
    )
    assert reply.status == 200
    nc_port = free_port(client)
    answer = subprocess.run(
        ["nc", "-N", "-s", client, "-p", str(nc_port), "127.0.0.1", str(gateway.ports["tcp"])],
        input=b"hello\n", capture_output=True, timeout=20,
    )
    assert answer.stdout == b"one hello\n"
    http_line, tcp_line = log_lines(log, 2)
    after = utc_now()

    http = parse_text_line(http_line)
    assert before <= start_time(http["start_time"]) <= after
    assert (http["method"], http["path"], http["protocol"]) == ("GET", "/headers", "HTTP/1.1")
    assert http["response_code"] == "200"
    assert http["response_flags"] == "-"
    assert http["response_code_details"] == "via_upstream"
    assert http["connection_termination_details"] == "-"
    assert http["upstream_transport_failure_reason"] == "-"
    assert int(http["bytes_received"]) == 0
    assert int(http["bytes_sent"]) == len(reply.body)
    assert int(http["duration"]) >= 0
    assert http["upstream_service_time"].isdigit()
    assert http["x_forwarded_for"] == client
    assert http["user_agent"] == "meshgate-test/1.0"
    assert http["request_id"] == request_id
    assert http["authority"] == "httpbin.example.com"
    assert http["upstream_host"] == f"{app.host}:{app.port}"
    assert http["upstream_cluster"] == "outbound|9080|v1|httpbin.default.svc.cluster.local"
    assert ADDRESS.match(http["upstream_local_address"]), http["upstream_local_address"]
    assert http["downstream_local_address"] == f"127.0.0.1:{gateway.ports['http']}"
    assert http["downstream_remote_address"] == f"{client}:{client_port}"
    assert http["requested_server_name"] == "-"
    assert http["route_name"] == "default.httpbin.0"

    tcp = parse_text_line(tcp_line)
    assert before <= start_time(tcp["start_time"]) <= after
    assert start_time(http["start_time"]) <= start_time(tcp["start_time"])
    assert (tcp["method"], tcp["path"], tcp["protocol"]) == ("-", "-", "-")
    assert (tcp["response_code"], tcp["response_flags"], tcp["response_code_details"]) == ("0", "-", "-")
    assert tcp["connection_termination_details"] == "-"
    assert tcp["upstream_transport_failure_reason"] == "-"
    assert int(tcp["bytes_received"]) == len(b"hello\n")
    assert int(tcp["bytes_sent"]) == len(b"one hello\n")
    assert int(tcp["duration"]) >= 0
    assert tcp["upstream_service_time"] == "-"
    assert [tcp[key] for key in ("x_forwarded_for", "user_agent", "request_id", "authority")] == ["-"] * 4
    assert tcp["upstream_host"] == f"{echo.host}:{echo.port}"
    assert tcp["upstream_cluster"] == "outbound|9000|v1|tcp-echo.default.svc.cluster.local"
    assert ADDRESS.match(tcp["upstream_local_address"]), tcp["upstream_local_address"]
    assert tcp["downstream_local_address"] == f"127.0.0.1:{gateway.ports['tcp']}"
    assert tcp["downstream_remote_address"] == f"{client}:{nc_port}"
    assert (tcp["requested_server_name"], tcp["route_name"]) == ("-", "-")
    # The golden TCP line's shape: `"- - -" 0 - - - "-" <rx> <tx> <ms> - "-" "-" "-" "-" "<host>" ...`
    assert re.match(r'^\[[^\]]+\] "- - -" 0 - - - "-" 6 10 \d+ - "-" "-" "-" "-" "', tcp_line), tcp_line


def test_json_lines_carry_envoys_keys_with_typed_values(mesh):
    log = mesh.tmp_path / "access.json"
    gateway, app, echo = gateway_with_http_and_tcp(mesh, accessLogFile=str(log), accessLogEncoding="JSON")
    request_id = str(uuid.uuid4())
    reply = curl(gateway.url("/status/503"), "-H", "Host: httpbin.example.com", "-H", f"x-request-id: {request_id}")
    assert reply.status == 503
    answer = subprocess.run(["nc", "-N", "127.0.0.1", str(gateway.ports["tcp"])], input=b"hi\n", capture_output=True, timeout=20)
    assert answer.stdout == b"one hi\n"

    http_line, tcp_line = log_lines(log, 2)
    http, tcp = json.loads(http_line), json.loads(tcp_line)
    assert list(http) == JSON_KEYS
    assert list(tcp) == JSON_KEYS
    start_time(http["start_time"])
    assert (http["method"], http["path"], http["protocol"]) == ("GET", "/status/503", "HTTP/1.1")
    # Istio's default retry policy retried the 503 twice; the third stands, flagged URX.
    assert http["response_code"] == 503 and http["response_flags"] == "URX"
    assert http["response_code_details"] == "via_upstream"
    assert http["connection_termination_details"] is None
    assert http["bytes_received"] == 0 and http["bytes_sent"] == len(reply.body)
    assert isinstance(http["duration"], int)
    assert isinstance(http["upstream_service_time"], str) and http["upstream_service_time"].isdigit()
    assert http["x_forwarded_for"] == "127.0.0.1"
    assert http["user_agent"].startswith("curl/")
    assert http["request_id"] == request_id
    assert http["authority"] == "httpbin.example.com"
    assert http["upstream_host"] == f"{app.host}:{app.port}"
    assert http["upstream_cluster"] == "outbound|9080|v1|httpbin.default.svc.cluster.local"
    assert http["downstream_local_address"] == f"127.0.0.1:{gateway.ports['http']}"
    assert http["requested_server_name"] is None
    assert http["route_name"] == "default.httpbin.0"

    assert (tcp["method"], tcp["path"], tcp["protocol"]) == (None, None, None)
    assert (tcp["response_code"], tcp["response_flags"]) == (0, "-")
    assert (tcp["bytes_received"], tcp["bytes_sent"]) == (3, 7)
    assert tcp["upstream_service_time"] is None and tcp["route_name"] is None
    assert tcp["upstream_host"] == f"{echo.host}:{echo.port}"
    assert tcp["upstream_cluster"] == "outbound|9000|v1|tcp-echo.default.svc.cluster.local"


def test_no_access_log_by_default(mesh):
    """Istio's default: `accessLogFile` empty, nothing written (the gateway's stdout stays free of lines)."""
    gateway, app, _ = gateway_with_http_and_tcp(mesh)
    assert curl(gateway.url("/headers")).status == 200
    wait_until(lambda: "GET /headers" in app.requests(), 20, "the app to log the request")
    assert not [line for line in gateway.proc.stdout().splitlines() if ISTIO_TEXT_FORMAT.match(line)]


def test_a_log_that_cannot_be_written_drops_lines_and_traffic_flows(mesh):
    """/dev/full fails every write as a full disk does: every request still succeeds, the gateway stays up."""
    gateway, _, _ = gateway_with_http_and_tcp(mesh, accessLogFile="/dev/full")
    assert curl_loop(gateway.url("/headers"), 50) == []
    assert gateway.proc.alive()
    assert gateway.readiness() == 200
    wait_until(lambda: "dropping lines" in gateway.proc.stderr(), 20, "a warning about the dropped lines")
    assert gateway.proc.stderr().count("dropping lines") == 1, "one warning per failure episode"


def curl_loop(url: str, count: int) -> list[str]:
    """`count` requests with real curl, 5 per keep-alive connection; returns the failures (none expected)."""
    loop = CurlLoop(url, per_run=5, max_runs=count // 5).start()
    wait_until(lambda: loop.requests >= count or loop.failures, 120, f"{count} requests")
    loop.stop()
    assert loop.requests == count or loop.failures
    return loop.failures


def test_a_rotated_log_is_reopened_on_reload(mesh, tmp_path):
    """logrotate moves the file, then `systemctl reload meshgate` (SIGHUP): the next lines go to a new
    file at the configured path; the moved file keeps what was written before."""
    path = tmp_path / "access.log"
    gateway, _, _ = gateway_with_http_and_tcp(mesh, accessLogFile=path)
    assert curl(gateway.url("/headers?before")).status == 200
    assert "/headers?before" in log_lines(path, 1)[0]
    rotated = tmp_path / "access.log.1"
    path.rename(rotated)
    gateway.reload()
    assert curl(gateway.url("/headers?after")).status == 200
    assert "/headers?after" in log_lines(path, 1)[0]
    assert "/headers?before" in rotated.read_text()
    assert "/headers?after" not in rotated.read_text()
    assert "the file was moved or removed" in gateway.proc.stderr()
