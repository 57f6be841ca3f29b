"""Tracing (issue 5): with `tracing: {sampling: 100, zipkin: {address: ...}}` and a Zipkin collector stub on
loopback recording POSTs, a request through gateway → sample app produces a Zipkin v2 span with the
client's trace id, kind CLIENT, the route decorator as name and Envoy's and Istio's tags, and the app's
/headers shows the propagated B3 and traceparent headers under the gateway's span. An unreachable
collector (closed port) and a slow one (accepts, never answers) never fail or stall traffic."""

import json
import re
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import (
    STOP_TIMEOUT,
    RawUpstream,
    curl,
    documents,
    free_port,
    gateway_yaml,
    http_virtual_service_yaml,
    wait_until,
)
from test_access_log import curl_loop

HEX16 = re.compile(r"^[0-9a-f]{16}$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
CLIENT_TRACE = "463ac35c9f6413ad48485a3953bb6124"
CLIENT_SPAN = "a2fb4a1d1a96d312"
SPAN_NAME = "httpbin.default.svc.cluster.local:9080/*"


class ZipkinStub:
    """A Zipkin collector on loopback: records every POST (path, content type, parsed JSON body), answers 202."""

    def __init__(self, host: str):
        stub = self
        self.posts: list[tuple[str, str, object]] = []
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with stub.lock:
                    stub.posts.append((self.path, self.headers.get("content-type", ""), json.loads(body)))
                self.send_response(202)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.address = f"{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def spans(self) -> list[dict]:
        with self.lock:
            return [span for _, _, body in self.posts for span in body]

    def span_of_trace(self, trace_id: str) -> dict | None:
        return next((span for span in self.spans() if span["traceId"] == trace_id), None)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(STOP_TIMEOUT)


class SilentCollector(RawUpstream):
    """A collector that accepts connections and never reads or answers (held open until closed)."""

    def __init__(self, host: str):
        self.held: list[socket.socket] = []
        super().__init__(host)
        self.address = f"{host}:{self.port}"

    def _handle(self, conn: socket.socket) -> None:
        self.held.append(conn)

    def close(self) -> None:
        super().close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def zipkin(mesh):
    collector = ZipkinStub(mesh.address())
    try:
        yield collector
    finally:
        collector.close()


def traced_gateway(mesh, collector_address: str, sampling: float = 100):
    backend = mesh.backend("httpbin", ["v1"])
    port = free_port()
    config = mesh.config_dir(
        {"httpbin.yaml": documents(backend.yaml, gateway_yaml("web", port, "HTTP"), http_virtual_service_yaml("httpbin", "web", "httpbin"))},
        tracing=f'{{sampling: {sampling}, zipkin: {{address: "{collector_address}"}}}}',
    )
    return mesh.gateway(config, {"http": port}), backend.apps["v1"]


def app_headers(reply) -> dict[str, str]:
    """The sample app's /headers answer, names lower-cased."""
    assert reply.status == 200, reply.text
    return {name.lower(): value for name, value in reply.json()["headers"].items()}


def test_a_client_trace_is_joined_propagated_and_reported_as_a_zipkin_span(mesh, zipkin):
    gateway, app = traced_gateway(mesh, zipkin.address, sampling=0)  # the client's decision rules
    request_id = str(uuid.uuid4())
    before_us = time.time_ns() // 1000
    reply = curl(
        gateway.url("/headers"),
        "-H", "Host: httpbin.example.com", "-H", "User-Agent: meshgate-test/1.0", "-H", f"x-request-id: {request_id}",
        "-H", f"X-B3-TraceId: {CLIENT_TRACE}", "-H", f"X-B3-SpanId: {CLIENT_SPAN}", "-H", "X-B3-Sampled: 1",
        "-H", "tracestate: congo=t61rcWkgMzE",
    )
    after_us = time.time_ns() // 1000
    seen = app_headers(reply)

    # What the app sees: the client's trace, the gateway's span as the parent of whatever it does next.
    gateway_span = seen["x-b3-spanid"]
    assert seen["x-b3-traceid"] == CLIENT_TRACE
    assert HEX16.match(gateway_span) and gateway_span != CLIENT_SPAN
    assert seen["x-b3-parentspanid"] == CLIENT_SPAN
    assert seen["x-b3-sampled"] == "1"
    assert seen["traceparent"] == f"00-{CLIENT_TRACE}-{gateway_span}-01"
    assert seen["tracestate"] == "congo=t61rcWkgMzE"
    assert seen["x-request-id"] == request_id

    span = wait_until(lambda: zipkin.span_of_trace(CLIENT_TRACE), 30, "the span at the collector")
    path, content_type, _ = zipkin.posts[0]
    assert path == "/api/v2/spans"
    assert content_type.startswith("application/json")
    assert span["id"] == gateway_span
    assert span["parentId"] == CLIENT_SPAN
    assert span["kind"] == "CLIENT"
    assert span["name"] == SPAN_NAME
    assert before_us <= span["timestamp"] <= after_us
    assert 0 < span["duration"] <= after_us - before_us
    assert span["localEndpoint"]["serviceName"] == "istio-ingressgateway.istio-system"
    assert span["localEndpoint"]["ipv4"] == "127.0.0.1"
    tags = span["tags"]
    assert tags["component"] == "proxy"
    assert re.match(r"^router~127\.0\.0\.1~istio-ingressgateway\.istio-system~istio-system\.svc\.cluster\.local$", tags["node_id"])
    assert tags["guid:x-request-id"] == request_id
    assert tags["http.url"] == "http://httpbin.example.com/headers"
    assert tags["http.method"] == "GET"
    assert tags["http.protocol"] == "HTTP/1.1"
    assert tags["http.status_code"] == "200"
    assert tags["upstream_cluster"] == "outbound|9080||httpbin.default.svc.cluster.local"
    assert tags["upstream_cluster.name"] == "outbound|9080||httpbin.default.svc.cluster.local"
    assert tags["upstream_address"] == f"{app.host}:{app.port}"
    assert tags["request_size"] == "0"
    assert tags["response_size"] == str(len(reply.body))
    assert tags["response_flags"] == "-"
    assert tags["user_agent"] == "meshgate-test/1.0"
    assert tags["downstream_cluster"] == "-"
    assert tags["peer.address"] == "127.0.0.1"
    assert "error" not in tags
    assert tags["istio.canonical_service"] == "istio-ingressgateway"
    assert tags["istio.canonical_revision"] == "latest"
    assert tags["istio.namespace"] == "istio-system"
    assert tags["istio.mesh_id"] == "cluster.local"


def test_a_new_trace_starts_without_headers_and_a_server_error_is_tagged(mesh, zipkin):
    gateway, _ = traced_gateway(mesh, zipkin.address)
    seen = app_headers(curl(gateway.url("/headers")))
    trace = seen["x-b3-traceid"]
    assert HEX32.match(trace)
    assert "x-b3-parentspanid" not in seen
    assert seen["x-b3-sampled"] == "1"
    assert seen["traceparent"] == f"00-{trace}-{seen['x-b3-spanid']}-01"
    span = wait_until(lambda: zipkin.span_of_trace(trace), 30, "the span of the new trace")
    assert "parentId" not in span
    assert span["id"] == seen["x-b3-spanid"]

    # W3C only: the trace is joined and B3 is written for the app too.
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    reply = curl(gateway.url("/status/503"), "-H", f"traceparent: {parent}")
    assert reply.status == 503
    span = wait_until(lambda: zipkin.span_of_trace("0af7651916cd43dd8448eb211c80319c"), 30, "the 503's span")
    assert span["parentId"] == "b7ad6b7169203331"
    assert span["tags"]["http.status_code"] == "503"
    assert span["tags"]["error"] == "true"
    assert span["tags"]["http.url"] == "http://127.0.0.1:%d/status/503" % gateway.ports["http"]


def test_a_client_that_says_no_is_propagated_and_not_reported(mesh, zipkin):
    gateway, _ = traced_gateway(mesh, zipkin.address)
    unsampled = "11111111111111111111111111111111"
    seen = app_headers(curl(gateway.url("/headers"), "-H", f"b3: {unsampled}-{CLIENT_SPAN}-0"))
    assert seen["x-b3-traceid"] == unsampled
    assert seen["x-b3-sampled"] == "0"
    assert seen["b3"] == f"{unsampled}-{seen['x-b3-spanid']}-0-{CLIENT_SPAN}"
    assert seen["traceparent"].endswith("-00")
    # A sampled request after it: once its span has arrived, the unsampled one would have too.
    sampled = "22222222222222222222222222222222"
    curl(gateway.url("/headers"), "-H", f"b3: {sampled}-{CLIENT_SPAN}-1")
    wait_until(lambda: zipkin.span_of_trace(sampled), 30, "the sampled request's span")
    assert zipkin.span_of_trace(unsampled) is None


def test_an_unreachable_collector_neither_fails_nor_stalls_traffic(mesh):
    closed = f"{mesh.address()}:{free_port()}"  # nothing listens there
    gateway, _ = traced_gateway(mesh, closed)
    assert curl_loop(gateway.url("/headers"), 50) == []
    wait_until(lambda: "zipkin reporter: dropping spans" in gateway.proc.stderr(), 30, "a warning about the lost spans")
    assert curl_loop(gateway.url("/headers"), 50) == []
    assert gateway.proc.stderr().count("zipkin reporter: dropping spans") == 1, "one warning per failure episode"
    assert gateway.proc.alive()


def test_a_slow_collector_neither_fails_nor_stalls_traffic(mesh):
    collector = SilentCollector(mesh.address())
    mesh.raw_upstreams.append(collector)  # closed at teardown
    gateway, _ = traced_gateway(mesh, collector.address)
    assert curl_loop(gateway.url("/headers"), 50) == []
    wait_until(lambda: collector.snapshot()[0], 30, "the reporter to connect to the silent collector")
    assert curl_loop(gateway.url("/headers"), 50) == []  # while a POST hangs
    assert gateway.proc.alive()
    assert gateway.readiness() == 200
