"""VirtualService `retries` (and Istio's default retry policy when a route has none), `fault`
injection and `mirror`, through the real gateway with curl, against the sample app, which logs every
request it receives: the number of attempts is what the app saw."""

from __future__ import annotations

import time

from conftest import (
    Mesh, curl, documents, free_port, gateway_yaml, resource_yaml, service_yaml, wait_until, workload_entry_yaml,
)

ROUTES = """\
  hosts: ["*"]
  gateways: [web]
  http:
  - match: [{uri: {prefix: /no-retry/}}]
    retries: {attempts: 0}
    rewrite: {uri: /}
    route: [{destination: {host: httpbin}}]
  - match: [{uri: {prefix: /per-try/}}]
    retries: {attempts: 2, perTryTimeout: 300ms, retryOn: 5xx, backoff: 5ms}
    rewrite: {uri: /}
    route: [{destination: {host: httpbin}}]
  - match: [{uri: {prefix: /teapot-retry/}}]
    retries: {attempts: 1, retryOn: "418"}
    rewrite: {uri: /}
    route: [{destination: {host: httpbin}}]
  - match: [{uri: {prefix: /delayed/}}]
    fault: {delay: {fixedDelay: 400ms, percentage: {value: 100}}}
    rewrite: {uri: /}
    route: [{destination: {host: httpbin}}]
  - match:
    - uri: {prefix: /ratings}
      headers: {end-user: {exact: jason}}
    fault: {abort: {httpStatus: 555, percentage: {value: 100}}}
    route: [{destination: {host: httpbin}}]
  - match: [{uri: {prefix: /half-aborted}}]
    fault: {abort: {httpStatus: 500, percentage: {value: 50}}}
    route: [{destination: {host: httpbin}}]
  - route: [{destination: {host: httpbin}}]
"""


def gateway(mesh: Mesh, **settings):
    backend = mesh.backend("httpbin", ["v1"])
    port = free_port()
    files = {"routes.yaml": documents(backend.yaml, gateway_yaml("web", port, "HTTP"), resource_yaml("VirtualService", "httpbin", ROUTES))}
    return mesh.gateway(mesh.config_dir(files, **settings), {"http": port}), backend.apps["v1"]


def settle(app, count: int) -> list[str]:
    wait_until(lambda: len(app.requests()) >= count, 10, f"the app to log {count} requests")
    return app.requests()


def test_istios_default_policy_retries_a_503_twice_and_flags_urx(mesh: Mesh):
    log = mesh.tmp_path / "access.log"
    gw, app = gateway(mesh, accessLogFile=str(log))
    reply = curl(gw.url("/status/503"))
    assert reply.status == 503
    # One request from the client, three attempts at the app: Istio's default is 2 retries on 503.
    assert settle(app, 3) == ["GET /status/503"] * 3
    wait_until(lambda: log.exists() and " 503 URX " in log.read_text(), 10, "the access log line with URX")
    # Not retried: other statuses, and a route with attempts: 0.
    assert curl(gw.url("/status/500")).status == 500
    assert curl(gw.url("/no-retry/status/503")).status == 503
    assert settle(app, 5)[3:] == ["GET /status/500", "GET /status/503"]


def test_retry_on_a_listed_status_code_then_the_response_stands(mesh: Mesh):
    gw, app = gateway(mesh)
    assert curl(gw.url("/teapot-retry/status/418")).status == 418
    assert settle(app, 2) == ["GET /status/418"] * 2
    # A POST body is sent again on the retry, whole.
    reply = curl(gw.url("/teapot-retry/status/418"), "-X", "POST", "--data-binary", "x" * 1000)
    assert reply.status == 418
    assert settle(app, 4)[2:] == ["POST /status/418"] * 2


def test_per_try_timeout_retries_then_answers_504_ut(mesh: Mesh):
    gw, app = gateway(mesh)
    reply = curl(gw.url("/per-try/delay/5"))
    assert reply.status == 504
    assert reply.headers["x-meshgate-response-flags"] == "UT"
    assert reply.headers["x-meshgate-details"] == "upstream_per_try_timeout"
    assert settle(app, 3) == ["GET /delay/5"] * 3
    # A fast answer within the per-try timeout passes at the first attempt.
    assert curl(gw.url("/per-try/status/200")).status == 200
    assert settle(app, 4)[3] == "GET /status/200"


def test_connect_failures_go_to_another_endpoint(mesh: Mesh):
    """One live and one dead endpoint: without retries, about half the requests would be 503 UF;
    Istio's default policy retries a connect failure on another endpoint, so every request passes."""
    app = mesh.http_app("httpbin", "v1")
    dead_port = free_port()
    port = free_port()
    files = {
        "routes.yaml": documents(
            service_yaml("httpbin", 9080),
            workload_entry_yaml("httpbin-v1", "httpbin", "v1", app.host, "http", app.port),
            workload_entry_yaml("httpbin-dead", "httpbin", "v1", "127.0.0.1", "http", dead_port),
            gateway_yaml("web", port, "HTTP"),
            resource_yaml("VirtualService", "httpbin", "  hosts: ['*']\n  gateways: [web]\n  http:\n  - route: [{destination: {host: httpbin}}]\n"),
        )
    }
    gw = mesh.gateway(mesh.config_dir(files), {"http": port})
    statuses = [curl(gw.url(f"/status/200?i={i}")).status for i in range(10)]
    assert statuses == [200] * 10
    assert len(settle(app, 10)) == 10


def test_an_injected_delay_holds_the_request_then_it_goes_on_flagged_di(mesh: Mesh):
    log = mesh.tmp_path / "access.log"
    gw, app = gateway(mesh, accessLogFile=str(log))
    started = time.monotonic()
    reply = curl(gw.url("/delayed/headers"))
    waited = time.monotonic() - started
    assert reply.status == 200
    assert waited >= 0.4, f"answered after {waited:.3f}s, before the 400ms delay"
    assert settle(app, 1) == ["GET /headers"]
    wait_until(lambda: log.exists() and " 200 DI via_upstream " in log.read_text(), 10, "the access log line with DI")


def test_bookinfo_style_abort_for_one_user_only(mesh: Mesh):
    gw, app = gateway(mesh)
    aborted = curl(gw.url("/ratings/0"), "-H", "end-user: jason")
    assert aborted.status == 555
    assert aborted.headers["x-meshgate-response-flags"] == "FI"
    assert aborted.headers["x-meshgate-details"] == "fault_filter_abort"
    assert aborted.body == b"fault filter abort"
    # Another user is routed as usual; the aborted request never reached the app.
    assert curl(gw.url("/ratings/0"), "-H", "end-user: alice").status == 200
    assert settle(app, 1) == ["GET /ratings/0"]


def test_a_percentage_aborts_about_that_share(mesh: Mesh):
    gw, app = gateway(mesh)
    statuses = [curl(gw.url(f"/half-aborted?i={i}")).status for i in range(60)]
    aborted = statuses.count(500)
    assert aborted + statuses.count(200) == 60
    # 50% of 60: below 10 or above 50 happens with probability under 1e-7.
    assert 10 <= aborted <= 50, statuses
    assert len(settle(app, 60 - aborted)) == 60 - aborted


def mirrored_gateway(mesh: Mesh):
    """Istio's mirroring task: every request to httpbin v1, a copy of each to v2; and a route that
    mirrors to a raw listener, which shows the copy's bytes."""
    backend = mesh.backend("httpbin", ["v1", "v2"])
    sink = mesh.raw_upstream()
    port = free_port()
    routes = """\
  hosts: ["*"]
  gateways: [web]
  http:
  - match: [{uri: {prefix: /raw/}}]
    route: [{destination: {host: httpbin, subset: v1}}]
    mirror: {host: sink}
  - route: [{destination: {host: httpbin, subset: v1}, weight: 100}]
    mirror: {host: httpbin, subset: v2}
    mirrorPercentage: {value: 100.0}
"""
    files = {
        "routes.yaml": documents(
            backend.yaml,
            service_yaml("sink", 9080),
            workload_entry_yaml("sink", "sink", "v1", sink.host, "http", sink.port),
            gateway_yaml("web", port, "HTTP"),
            resource_yaml("VirtualService", "httpbin", routes),
        )
    }
    return mesh.gateway(mesh.config_dir(files), {"http": port}), backend.apps, sink


def test_mirroring_copies_each_request_to_v2_and_answers_from_v1(mesh: Mesh):
    gw, apps, _ = mirrored_gateway(mesh)
    for i in range(3):
        reply = curl(gw.url(f"/headers?i={i}"))
        assert reply.status == 200
    assert settle(apps["v1"], 3) == [f"GET /headers?i={i}" for i in range(3)]
    # The copies reach v2; the client never waits for them (their answers are dropped).
    assert sorted(settle(apps["v2"], 3)) == [f"GET /headers?i={i}" for i in range(3)]


def test_a_mirrored_copy_has_the_shadow_host_and_the_whole_body(mesh: Mesh):
    gw, apps, sink = mirrored_gateway(mesh)
    reply = curl(gw.url("/raw/upload"), "-H", "Host: httpbin.example:8000", "--data-binary", "mirror-me")
    assert reply.status == 200
    wait_until(lambda: b"mirror-me" in sink.snapshot()[1], 10, "the mirrored request at the sink")
    received = sink.snapshot()[1].decode()
    assert received.startswith("POST /raw/upload HTTP/1.1\r\n")
    assert "\r\nhost: httpbin.example-shadow:8000\r\n" in received.lower()
    assert settle(apps["v1"], 1) == ["POST /raw/upload"]
