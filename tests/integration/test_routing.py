"""HTTP routing through the real gateway with curl: host, exact/prefix/regex path and header matches,
weights, and the local replies that name their cause (NR, UH, UF)."""

import re
import subprocess

import pytest

from conftest import curl, documents, free_port, gateway_yaml, service_yaml, workload_entry_yaml

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def bookinfo_routes(gateway: str) -> str:
    """conf/'s bookinfo VirtualService, plus /dead (an endpoint nobody listens on) and /empty (a service
    without endpoints), and two host-specific VirtualServices."""
    return f"""\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: bookinfo
spec:
  hosts: ["*"]
  gateways: [{gateway}]
  http:
  - match:
    - uri: {{exact: /productpage}}
    - uri: {{prefix: /static}}
    - uri: {{exact: /login}}
    - uri: {{exact: /logout}}
    - uri: {{prefix: /api/v1/products}}
    route:
    - destination: {{host: productpage, port: {{number: 9080}}}}
  - match:
    - headers:
        end-user: {{exact: jason}}
      uri: {{prefix: /reviews}}
    route:
    - destination: {{host: reviews, port: {{number: 9080}}, subset: v2}}
  - match:
    - uri: {{prefix: /reviews}}
    route:
    - destination: {{host: reviews, port: {{number: 9080}}, subset: v1}}
      weight: 50
    - destination: {{host: reviews, port: {{number: 9080}}, subset: v3}}
      weight: 50
  - match:
    - uri: {{regex: "/ratings/[0-9]+"}}
    route:
    - destination: {{host: ratings, port: {{number: 9080}}, subset: v1}}
  - match:
    - uri: {{exact: /dead}}
    route:
    - destination: {{host: dead, port: {{number: 9080}}}}
  - match:
    - uri: {{exact: /empty}}
    route:
    - destination: {{host: empty, port: {{number: 9080}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: details-by-host
spec:
  hosts: [details.example.com]
  gateways: [{gateway}]
  http:
  - route:
    - destination: {{host: details, port: {{number: 9080}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: example-org
spec:
  hosts: ["*.example.org"]
  gateways: [{gateway}]
  http:
  - route:
    - destination: {{host: reviews, port: {{number: 9080}}, subset: v1}}
"""


@pytest.fixture(scope="module")
def gateway(module_mesh):
    mesh = module_mesh
    backends = [
        mesh.backend("productpage", ["v1"]),
        mesh.backend("details", ["v1"]),
        mesh.backend("reviews", ["v1", "v2", "v3"]),
        mesh.backend("ratings", ["v1"]),
    ]
    dead_address = mesh.address()
    dead = documents(
        service_yaml("dead", 9080),
        workload_entry_yaml("dead-v1", "dead", "v1", dead_address, "http", free_port(dead_address)),
        service_yaml("empty", 9080),
    )
    port = free_port()
    config = mesh.config_dir(
        {
            "services.yaml": documents(*(b.yaml for b in backends), dead),
            "gateway.yaml": documents(gateway_yaml("bookinfo-gateway", port, "HTTP"), bookinfo_routes("bookinfo-gateway")),
        }
    )
    return mesh.gateway(config, {"http": port})


def served_by(response) -> str:
    assert response.status == 200, f"{response.status}: {response.text}"
    return f"{response.headers['x-service']} {response.headers['x-version']}"


@pytest.mark.parametrize("path", ["/productpage", "/static/css/app.css", "/login", "/logout", "/api/v1/products/1"])
def test_exact_and_prefix_paths_reach_productpage(gateway, path):
    response = curl(gateway.url(path))
    assert served_by(response) == "productpage v1"
    assert response.text == f"productpage v1: hello from {path}\n"


@pytest.mark.parametrize("path", ["/productpage/extra", "/productpagex", "/ratings/abc", "/ratings/42/stars", "/nothing-here"])
def test_an_unmatched_path_gets_404_nr(gateway, path):
    response = curl(gateway.url(path))
    assert response.status == 404
    assert response.headers["x-meshgate-response-flags"] == "NR"
    assert response.headers["x-meshgate-details"] == "route_not_found"


def test_regex_path_reaches_ratings(gateway):
    assert served_by(curl(gateway.url("/ratings/42"))) == "ratings v1"


def test_end_user_jason_reaches_reviews_v2(gateway):
    for _ in range(10):
        assert served_by(curl(gateway.url("/reviews/1"), "-H", "end-user: jason")) == "reviews v2"


def test_other_users_get_reviews_v1_and_v3_half_and_half(gateway):
    seen = [served_by(curl(gateway.url("/reviews/1"), "-H", header)) for header in ["end-user: Jason", "x-other: 1"] * 20]
    assert set(seen) == {"reviews v1", "reviews v3"}, "header values match exactly; v2 is jason's alone"


def test_hosts_pick_the_virtual_service(gateway):
    port = gateway.ports["http"]
    assert served_by(curl(gateway.url("/productpage"), "-H", "Host: details.example.com")) == "details v1"
    assert served_by(curl(gateway.url("/anything"), "-H", f"Host: details.example.com:{port}")) == "details v1"
    assert served_by(curl(gateway.url("/anything"), "-H", "Host: api.example.org")) == "reviews v1"
    assert served_by(curl(gateway.url("/productpage"), "-H", "Host: other.example.com")) == "productpage v1"


def test_a_dead_upstream_gets_503_uf(gateway):
    response = curl(gateway.url("/dead"))
    assert response.status == 503
    assert response.text.strip() == "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
    assert response.headers["x-meshgate-response-flags"] == "UF"
    assert response.headers["x-meshgate-details"] == "upstream_reset_before_response_started{connection_failure}"


def test_a_service_without_endpoints_gets_503_uh(gateway):
    response = curl(gateway.url("/empty"))
    assert response.status == 503
    assert response.text.strip() == "no healthy upstream"
    assert response.headers["x-meshgate-response-flags"] == "UH"


def test_proxied_requests_carry_forwarding_headers(gateway):
    # A client's own x-forwarded-client-cert never reaches an app (Envoy's SANITIZE): it would let
    # anyone claim a verified identity.
    response = curl(gateway.url("/headers"), "-H", "Host: details.example.com", "-H", "x-forwarded-client-cert: By=forged;URI=spiffe://x")
    assert served_by(response) == "details v1"
    assert int(response.headers["x-envoy-upstream-service-time"]) >= 0
    received = {name.lower(): value for name, value in response.json()["headers"].items()}
    assert "127.0.0.1" in received["x-forwarded-for"]
    assert received["x-forwarded-proto"] == "http"
    assert UUID.match(received["x-request-id"]), received["x-request-id"]
    assert "x-forwarded-client-cert" not in received


def test_a_client_request_id_is_kept(gateway):
    response = curl(gateway.url("/headers"), "-H", "Host: details.example.com", "-H", "x-request-id: my-id-1")
    received = {name.lower(): value for name, value in response.json()["headers"].items()}
    assert received["x-request-id"] == "my-id-1"


def test_keep_alive_requests_are_routed_one_by_one(gateway):
    """Two requests on one client connection can go to different services."""
    result = subprocess.run(
        [
            "curl", "-sS", "--max-time", "20",
            "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\n", gateway.url("/productpage"),
            "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\n", gateway.url("/ratings/1"),
        ],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["200 1", "200 0"]
