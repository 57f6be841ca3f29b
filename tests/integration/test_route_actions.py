"""VirtualService http route actions beyond the destination: `rewrite` (uri, with Istio's prefix
semantics, and authority), `headers` (request and response set/add/remove), `timeout` (504 UT when
the upstream is too slow), and the routes that answer themselves, `redirect` and `directResponse`,
with curl through the real gateway to the sample app, which logs each request line it receives."""

from __future__ import annotations

import subprocess

from conftest import Mesh, curl, documents, free_port, gateway_yaml, resource_yaml, wait_until

ROUTES = """\
  hosts: ["*"]
  gateways: [web]
  http:
  - match:
    - uri: {prefix: /api/v1/}
    rewrite: {uri: /, authority: internal.example.com}
    route: [{destination: {host: httpbin}}]
  - match:
    - uri: {exact: /old-status}
    rewrite: {uri: /status/418}
    route: [{destination: {host: httpbin}}]
  - match:
    - uri: {prefix: /slow/}
    timeout: 500ms
    rewrite: {uri: /delay/}
    route: [{destination: {host: httpbin}}]
  - match:
    - uri: {prefix: /decorated}
    rewrite: {uri: /headers}
    headers:
      request:
        set: {x-team: books}
        add: {x-added: one}
        remove: [x-secret]
      response:
        set: {x-served-by: meshgate}
        remove: [x-version]
    route: [{destination: {host: httpbin}}]
  - match:
    - uri: {prefix: /service/}
    rewrite: {uriRegexRewrite: {match: "^/service/([^/]+)(/.*)$", rewrite: "\\\\2"}}
    headers: {request: {set: {x-route: regex}}, response: {set: {x-route: regex}}}
    route:
    - destination: {host: httpbin}
      headers:
        request: {set: {x-route: destination, x-destination: httpbin}}
        response: {add: {x-destination: httpbin}}
  - match:
    - uri: {exact: /v1/getProductRatings}
    redirect: {uri: /v1/bookRatings, authority: bookratings.example}
  - match:
    - uri: {prefix: /moved}
    redirect: {scheme: https, derivePort: FROM_REQUEST_PORT, redirectCode: 308}
  - match:
    - uri: {prefix: /maintenance}
    directResponse: {status: 503, body: {string: "down for maintenance"}}
    headers: {response: {set: {retry-after: "120", content-type: text/html}}}
  - match:
    - uri: {prefix: /teapot}
    directResponse: {status: 418}
  - route: [{destination: {host: httpbin}}]
"""


def gateway(mesh: Mesh):
    backend = mesh.backend("httpbin", ["v1"])
    port = free_port()
    files = {"routes.yaml": documents(backend.yaml, gateway_yaml("web", port, "HTTP"), resource_yaml("VirtualService", "httpbin", ROUTES))}
    return mesh.gateway(mesh.config_dir(files), {"http": port}), backend.apps["v1"]


def test_rewrite_replaces_a_matched_prefix_or_the_whole_path_and_the_authority(mesh: Mesh):
    gw, app = gateway(mesh)
    # prefix /api/v1/ → / : the rest of the path and the query string stay.
    reply = curl(gw.url("/api/v1/headers?a=1"), "-H", "Host: public.example.com")
    assert reply.status == 200
    assert reply.json()["headers"]["host"] == "internal.example.com"
    # exact /old-status → /status/418: the whole path is replaced.
    assert curl(gw.url("/old-status?b=2")).status == 418
    wait_until(lambda: len(app.requests()) >= 2, 10, "the app to log both requests")
    assert app.requests()[:2] == ["GET /headers?a=1", "GET /status/418?b=2"]


def test_a_route_timeout_answers_504_ut_and_fast_responses_pass(mesh: Mesh):
    gw, app = gateway(mesh)
    assert curl(gw.url("/slow/0")).status == 200
    slow = curl(gw.url("/slow/5"))
    assert slow.status == 504
    assert slow.text == "upstream request timeout"
    assert slow.headers["x-meshgate-response-flags"] == "UT"
    assert slow.headers["x-meshgate-details"] == "upstream_response_timeout"
    # Routes without a timeout wait (Istio's default: none).
    assert curl(gw.url("/delay/1")).status == 200


def test_header_operations_apply_to_the_request_and_the_response(mesh: Mesh):
    gw, app = gateway(mesh)
    reply = curl(gw.url("/decorated"), "-H", "x-secret: s", "-H", "x-team: other")
    assert reply.status == 200
    seen = reply.json()["headers"]
    assert seen["x-team"] == "books"
    assert seen["x-added"] == "one"
    assert "x-secret" not in seen
    assert reply.headers["x-served-by"] == "meshgate"
    assert "x-version" not in reply.headers
    # Other routes are untouched.
    plain = curl(gw.url("/headers"), "-H", "x-secret: s")
    assert plain.json()["headers"]["x-secret"] == "s" and "x-version" in plain.headers


def test_uri_regex_rewrite_and_per_destination_headers(mesh: Mesh):
    gw, app = gateway(mesh)
    reply = curl(gw.url("/service/books/x/y?q=1"))
    # /service/books/x/y → /x/y (the second group); the query string stays.
    wait_until(lambda: len(app.requests()) >= 1, 10, "the app to log the request")
    assert app.requests() == ["GET /x/y?q=1"]
    # The destination's operations apply first, then the route's: the route's set wins.
    assert reply.headers["x-route"] == "regex"
    assert reply.headers["x-destination"] == "httpbin"
    echoed = curl(gw.url("/service/books/headers")).json()["headers"]
    assert echoed["x-route"] == "regex" and echoed["x-destination"] == "httpbin"


def test_redirect_and_direct_response_answer_without_any_upstream(mesh: Mesh):
    gw, app = gateway(mesh)
    port = gw.ports["http"]
    moved = curl(gw.url("/v1/getProductRatings?id=7"), "-H", f"Host: ratings.example:{port}")
    assert moved.status == 301, moved.headers
    # The authority replaces the whole host (with its port); the path is replaced, the query kept.
    assert moved.headers["location"] == "http://bookratings.example/v1/bookRatings?id=7"
    assert moved.headers["x-meshgate-details"] == "direct_response" and moved.body == b""
    upgraded = curl(gw.url("/moved/here?x=1"), "-H", "Host: shop.example")
    assert upgraded.status == 308
    assert upgraded.headers["location"] == f"https://shop.example:{port}/moved/here?x=1"
    down = curl(gw.url("/maintenance"))
    # The route's headers.response apply to its own answer (set replaces the default content-type).
    assert (down.status, down.text, down.headers["content-type"]) == (503, "down for maintenance", "text/html")
    assert down.headers["retry-after"] == "120"
    teapot = curl(gw.url("/teapot"), "-X", "POST", "-d", "tea")
    assert (teapot.status, teapot.body, teapot.headers["content-length"]) == (418, b"", "0")
    # Keep-alive survives a local answer: curl sends two requests on one connection.
    both = subprocess.run(["curl", "-sS", "-w", "%{http_code} %{num_connects}\\n", "-o", "/dev/null", gw.url("/teapot"),
                           "-o", "/dev/null", gw.url("/maintenance")], capture_output=True, text=True, timeout=20)
    assert both.stdout.split("\n")[:2] == ["418 1", "503 0"], both.stdout
    # None of it reached the app; a plain route still does.
    assert curl(gw.url("/status/200")).status == 200
    wait_until(lambda: len(app.requests()) >= 1, 10, "the app to log the plain request")
    assert app.requests() == ["GET /status/200"]
