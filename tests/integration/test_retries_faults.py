"""VirtualService `retries` (and Istio's default retry policy when a route has none), `fault`
injection and `mirror`, through the real gateway with curl, against the sample app, which logs every
request it receives: the number of attempts is what the app saw."""

from __future__ import annotations

import re
import socket
import subprocess
import struct
import threading
import time
from pathlib import Path

from conftest import (
    Mesh, ThreadedListener, curl, http_get, documents, free_port, gateway_yaml, resource_yaml, service_yaml, wait_until,
    workload_entry_yaml,
)
from test_mesh import ca, start_sidecar  # noqa: F401 (ca: the mesh CA fixture)


class ResetOnce(ThreadedListener):
    """A scripted upstream: its first connection reads a request (head and body) and is reset with no
    answer (or, with `first="hang"`, never answered until the test ends); later ones answer 200 with
    the `x-envoy-attempt-count` they saw as the body."""

    def __init__(self, host: str, first: str = "reset"):
        self.heads: list[bytes] = []
        self.first = first
        self.released = threading.Event()
        super().__init__(host)

    def close(self) -> None:
        self.released.set()
        super().close()

    def accepted(self) -> object:
        with self._lock:
            self.connections = getattr(self, "connections", 0) + 1
            return self.connections

    def handle(self, conn: socket.socket, number: object) -> None:
        conn.settimeout(5)
        with conn:
            try:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head = data.split(b"\r\n\r\n", 1)[0]
                with self._lock:
                    self.heads.append(head)
                if number == 1 and self.first == "hang":
                    self.released.wait(30)
                    return
                if number == 1:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return  # closed with linger 0: a reset
                count = b"-"
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"x-envoy-attempt-count":
                        count = value.strip()
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s" % (len(count), count))
            except OSError:
                return

    def seen(self) -> list[bytes]:
        with self._lock:
            return list(self.heads)

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


def prometheus(gw) -> str:
    port = int(re.search(r"^metricsPort: (\d+)$", (gw.config_dir / "meshgate.yaml").read_text(), re.M).group(1))
    return http_get("127.0.0.1", port, "/stats/prometheus", timeout=5).text


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
    stats = prometheus(gw)
    assert 'meshgate_upstream_retries_total{cluster="outbound|9080||httpbin.default.svc.cluster.local"} 2' in stats, stats
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
    assert 'meshgate_mirrored_requests_total{cluster="outbound|9080|v2|httpbin.default.svc.cluster.local"} 3' in prometheus(gw)


def test_a_mirrored_copy_has_the_shadow_host_and_the_whole_body(mesh: Mesh):
    gw, apps, sink = mirrored_gateway(mesh)
    reply = curl(gw.url("/raw/upload"), "-H", "Host: httpbin.example:8000", "--data-binary", "mirror-me")
    assert reply.status == 200
    wait_until(lambda: b"mirror-me" in sink.snapshot()[1], 10, "the mirrored request at the sink")
    received = sink.snapshot()[1].decode()
    assert received.startswith("POST /raw/upload HTTP/1.1\r\n")
    assert "\r\nhost: httpbin.example-shadow:8000\r\n" in received.lower()
    assert settle(apps["v1"], 1) == ["POST /raw/upload"]


def scripted_gateway(mesh: Mesh, retries: str | None, first: str = "reset", **settings):
    upstream = ResetOnce(mesh.address(), first)
    mesh.raw_upstreams.append(upstream)
    port = free_port()
    routes = f"""\
  hosts: ["*"]
  gateways: [web]
  http:
  - route: [{{destination: {{host: scripted}}}}]
"""
    if retries is not None:
        routes += f"    retries: {retries}\n"
    files = {
        "routes.yaml": documents(
            service_yaml("scripted", 9080),
            workload_entry_yaml("scripted", "scripted", "v1", upstream.host, "http", upstream.port),
            gateway_yaml("web", port, "HTTP"),
            resource_yaml("VirtualService", "scripted", routes),
        )
    }
    return mesh.gateway(mesh.config_dir(files, **settings), {"http": port}), upstream


def test_a_reset_before_the_response_is_retried_with_the_attempt_count(mesh: Mesh):
    gw, upstream = scripted_gateway(mesh, "{attempts: 2, retryOn: reset}")
    reply = curl(gw.url("/once"))
    assert reply.status == 200
    # The second attempt carried x-envoy-attempt-count: 2 (the body is what the upstream saw).
    assert reply.body == b"2"
    assert [head.split(b"\r\n")[0] for head in upstream.seen()] == [b"GET /once HTTP/1.1"] * 2


def test_a_post_that_reached_the_upstream_is_not_retried_by_the_default_policy(mesh: Mesh):
    """Istio's default policy retries a 503 for any method (its issue #13851: duplicated POSTs);
    Meshgate's retries a POST only when nothing of it reached an upstream, unless retryOn is written."""
    gw, app = gateway(mesh)
    assert curl(gw.url("/status/503"), "-X", "POST", "--data-binary", "order=1").status == 503
    assert curl(gw.url("/status/200?after")).status == 200
    assert settle(app, 2) == ["POST /status/503", "GET /status/200?after"]


def test_a_post_is_retried_when_retry_on_names_the_condition(mesh: Mesh):
    gw, upstream = scripted_gateway(mesh, "{attempts: 1, retryOn: reset}")
    reply = curl(gw.url("/order"), "-X", "POST", "--data-binary", "order=1")
    assert reply.status == 200 and reply.body == b"2"
    assert len(upstream.seen()) == 2


def test_a_mirror_that_is_down_changes_nothing_for_the_client(mesh: Mesh):
    backend = mesh.backend("httpbin", ["v1"])
    port = free_port()
    routes = """\
  hosts: ["*"]
  gateways: [web]
  http:
  - route: [{destination: {host: httpbin}}]
    mirror: {host: gone}
"""
    files = {
        "routes.yaml": documents(
            backend.yaml,
            service_yaml("gone", 9080),
            workload_entry_yaml("gone", "gone", "v1", "127.0.0.1", "http", free_port()),
            gateway_yaml("web", port, "HTTP"),
            resource_yaml("VirtualService", "httpbin", routes),
        )
    }
    gw = mesh.gateway(mesh.config_dir(files), {"http": port})
    assert [curl(gw.url(f"/status/200?i={i}")).status for i in range(5)] == [200] * 5
    assert len(settle(backend.apps["v1"], 5)) == 5


BOOKINFO = Path(__file__).resolve().parents[1] / "fixtures" / "istio" / "bookinfo" / "networking"


def bookinfo_ratings(mesh: Mesh, ca: Path, virtual_service: str):
    """Bookinfo's ratings v1 and a sidecar for reviews (the caller), with Istio's own
    destination-rule-all.yaml and the sample VirtualService `virtual_service`, unchanged."""
    ratings = mesh.http_app("ratings", "v1")
    caller = mesh.address()
    files = {
        "services.yaml": documents(service_yaml("ratings", 9080), workload_entry_yaml("ratings-v1", "ratings", "v1", ratings.host, "http", ratings.port)),
        "destination-rule-all.yaml": (BOOKINFO / "destination-rule-all.yaml").read_text(),
        virtual_service: (BOOKINFO / virtual_service).read_text(),
    }
    start_sidecar(mesh, "reviews-v2", caller, {9080: free_port(caller)}, files, "bookinfo-reviews", ca=ca)
    return f"http://{caller}:15001", ratings


def test_bookinfo_ratings_test_abort_unchanged(mesh: Mesh, ca: Path):
    outbound, ratings = bookinfo_ratings(mesh, ca, "virtual-service-ratings-test-abort.yaml")
    aborted = curl(f"{outbound}/ratings/0", "-H", "Host: ratings:9080", "-H", "end-user: jason")
    assert aborted.status == 500
    assert aborted.headers["x-meshgate-response-flags"] == "FI"
    assert curl(f"{outbound}/ratings/1", "-H", "Host: ratings:9080", "-H", "end-user: alice").status == 200
    # ratings saw only the request that was not aborted.
    assert settle(ratings, 1) == ["GET /ratings/1"]


def test_bookinfo_ratings_test_delay_unchanged(mesh: Mesh, ca: Path):
    outbound, ratings = bookinfo_ratings(mesh, ca, "virtual-service-ratings-test-delay.yaml")
    started = time.monotonic()
    assert curl(f"{outbound}/ratings/0", "-H", "Host: ratings:9080", "-H", "end-user: jason", timeout=20).status == 200
    delayed = time.monotonic() - started
    assert delayed >= 7, f"answered after {delayed:.2f}s; the fixture delays jason's requests 7s"
    assert curl(f"{outbound}/ratings/1", "-H", "Host: ratings:9080").status == 200
    assert settle(ratings, 2) == ["GET /ratings/0", "GET /ratings/1"]


def test_a_post_reset_after_its_body_was_sent_is_not_retried_by_default(mesh: Mesh):
    gw, upstream = scripted_gateway(mesh, None)
    reply = curl(gw.url("/order"), "-X", "POST", "--data-binary", "order=1")
    assert reply.status == 503
    assert reply.headers["x-meshgate-response-flags"] == "UC"
    assert len(upstream.seen()) == 1


def test_per_try_timeout_cuts_a_hung_attempt_and_the_next_one_answers(mesh: Mesh):
    gw, upstream = scripted_gateway(mesh, "{attempts: 2, perTryTimeout: 300ms, retryOn: 5xx}", first="hang")
    reply = curl(gw.url("/slow-once"))
    assert reply.status == 200 and reply.body == b"2"
    assert len(upstream.seen()) == 2


def test_a_client_leaving_during_an_injected_delay_leaves_nothing_behind(mesh: Mesh):
    log = mesh.tmp_path / "access.log"
    gw, app = gateway(mesh, accessLogFile=str(log))
    # curl gives up after 0.1 s, during the route's 400 ms delay.
    result = subprocess.run(["curl", "-sS", "--max-time", "0.1", gw.url("/delayed/status/200")], capture_output=True, timeout=10)
    assert result.returncode == 28  # curl: operation timed out
    # The exchange ends as a downstream disconnect during the delay (DI,DC); nothing reaches the app.
    wait_until(lambda: log.exists() and " DI,DC " in log.read_text(), 10, "the access log line of the abandoned request")
    # A second delayed request ends after the abandoned one's delay would have: only it reached the app.
    assert curl(gw.url("/delayed/status/200?second")).status == 200
    assert settle(app, 1) == ["GET /status/200?second"]
