"""VirtualService `corsPolicy` with curl, as a browser would send it: preflights from an allowed
origin are answered by the gateway (the app never sees them), an allowed origin's requests get the
`access-control-*` headers, another origin gets none (its preflight goes on to the app, Istio's
default, or is answered bare with `unmatchedPreflights: IGNORE`)."""

from __future__ import annotations

from conftest import Mesh, curl, documents, free_port, gateway_yaml, resource_yaml, wait_until

ROUTES = """\
  hosts: ["*"]
  gateways: [web]
  http:
  - match: [{uri: {prefix: /strict/}}]
    corsPolicy:
      allowOrigins: [{exact: "https://app.example"}]
      unmatchedPreflights: IGNORE
    route: [{destination: {host: httpbin}}]
  - corsPolicy:
      allowOrigins: [{exact: "https://app.example"}, {regex: "https://[a-z]+[.]shop[.]example"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-token]
      exposeHeaders: [x-version]
      maxAge: 24h
      allowCredentials: true
    route: [{destination: {host: httpbin}}]
"""


def gateway(mesh: Mesh):
    backend = mesh.backend("httpbin", ["v1"])
    port = free_port()
    files = {"routes.yaml": documents(backend.yaml, gateway_yaml("web", port, "HTTP"), resource_yaml("VirtualService", "httpbin", ROUTES))}
    return mesh.gateway(mesh.config_dir(files), {"http": port}), backend.apps["v1"]


def preflight(url: str, origin: str):
    return curl(url, "-X", "OPTIONS", "-H", f"Origin: {origin}", "-H", "Access-Control-Request-Method: POST",
                "-H", "Access-Control-Request-Headers: x-token")


def test_an_allowed_preflight_is_answered_by_the_gateway(mesh: Mesh):
    gw, app = gateway(mesh)
    reply = preflight(gw.url("/orders"), "https://app.example")
    assert reply.status == 200
    assert reply.headers["access-control-allow-origin"] == "https://app.example"
    assert reply.headers["access-control-allow-methods"] == "GET,POST"
    assert reply.headers["access-control-allow-headers"] == "x-token"
    assert reply.headers["access-control-max-age"] == "86400"
    assert reply.headers["access-control-allow-credentials"] == "true"
    assert reply.headers["x-meshgate-details"] == "cors_response"
    # A regex origin too; then a plain request, so the app's log shows what reached it.
    assert preflight(gw.url("/orders"), "https://books.shop.example").headers["access-control-allow-origin"] == "https://books.shop.example"
    assert curl(gw.url("/status/200?marker")).status == 200
    wait_until(lambda: len(app.requests()) >= 1, 10, "the app to log the marker")
    assert app.requests() == ["GET /status/200?marker"]


def test_an_allowed_origin_gets_response_headers_and_another_none(mesh: Mesh):
    gw, app = gateway(mesh)
    allowed = curl(gw.url("/headers"), "-H", "Origin: https://app.example")
    assert allowed.status == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert allowed.headers["access-control-expose-headers"] == "x-version"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert "access-control-allow-methods" not in allowed.headers
    other = curl(gw.url("/headers"), "-H", "Origin: https://evil.example")
    assert other.status == 200
    assert not [name for name in other.headers if name.startswith("access-control-")]


def test_an_unmatched_preflight_is_forwarded_or_answered_bare(mesh: Mesh):
    gw, app = gateway(mesh)
    forwarded = preflight(gw.url("/status/204"), "https://evil.example")
    assert forwarded.status == 204  # the app answered it
    assert not [name for name in forwarded.headers if name.startswith("access-control-")]
    ignored = preflight(gw.url("/strict/x"), "https://evil.example")
    assert ignored.status == 200
    assert ignored.headers["x-meshgate-details"] == "cors_response"
    assert not [name for name in ignored.headers if name.startswith("access-control-")]
    wait_until(lambda: len(app.requests()) >= 1, 10, "the app to log the forwarded preflight")
    assert app.requests() == ["OPTIONS /status/204"]
