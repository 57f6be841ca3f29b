"""AuthorizationPolicy through the real binary: Istio's authorization task shapes with curl through
the gateway and through sidecars (deny-all, ALLOW by method/path/principal, DENY by header beating
ALLOW, notPaths, ipBlocks from two client addresses, ports), TCP by principal and port with nc,
dry-run, and the denial's details in headers, access log and metrics."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import (
    LocalHTTPServer,
    Mesh,
    curl,
    documents,
    free_port,
    gateway_yaml,
    http_get,
    parse_samples,
    resource_yaml,
    service_yaml,
    tcp_virtual_service_yaml,
    total,
    wait_until,
    write_atomically,
)
from test_mesh import ca, http_mesh, mesh_workload_yaml, peer_authentication_yaml, start_sidecar  # noqa: F401 (fixture)

GATEWAY_PRINCIPAL = "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"


def policy_yaml(name: str, spec: str, namespace: str = "istio-system", annotations: str | None = None) -> str:
    meta = f"{{name: {name}, namespace: {namespace}" + (f", annotations: {{{annotations}}}" if annotations else "") + "}"
    return f"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {meta}\nspec:\n{spec}\n"


def gateway_with_app(mesh: Mesh, policies: str, extra_settings: str = ""):
    app = mesh.http_app("productpage", "v1")
    port, metrics = free_port(), free_port()
    routes = resource_yaml(
        "VirtualService", "bookinfo",
        "  hosts: [\"*\"]\n  gateways: [gw]\n  http:\n  - route: [{destination: {host: productpage, port: {number: 9080}}}]\n",
    )
    services = documents(
        service_yaml("productpage", 9080),
        resource_yaml("WorkloadEntry", "productpage-v1", f"  address: {app.host}\n  ports: {{http: {app.port}}}\n  labels: {{app: productpage}}\n"),
    )
    config = mesh.config_dir(
        {"services.yaml": services, "gw.yaml": documents(gateway_yaml("gw", port, "HTTP"), routes), "authz.yaml": policies},
        metricsPort=metrics, accessLogFile=str(mesh.tmp_path / "access.log"),
    )
    if extra_settings:
        settings = config / "meshgate.yaml"
        write_atomically(settings, settings.read_text() + extra_settings)
    gateway = mesh.gateway(config, {"http": port})
    return app, gateway, metrics


def reload_policies(gateway, policies: str) -> None:
    write_atomically(gateway.config_dir / "authz.yaml", policies)
    assert gateway.reload()["lastReload"]["ok"]


def test_deny_all_then_allow_get_productpage_and_a_header_deny_beats_it(mesh: Mesh):
    app, gateway, metrics = gateway_with_app(mesh, policy_yaml("deny-all", "  {}"))
    reply = curl(gateway.url("/productpage"))
    assert (reply.status, reply.text) == (403, "RBAC: access denied")
    assert reply.headers["x-meshgate-response-flags"] == "RBAC"
    assert reply.headers["x-meshgate-details"] == "rbac_access_denied_matched_policy[none]"
    assert app.requests() == []
    samples = parse_samples(http_get("127.0.0.1", metrics, "/stats/prometheus").text)
    assert total(samples, "meshgate_authz_denied_total", policy="none", action="ALLOW") == 1
    wait_until(
        lambda: '" 403 RBAC rbac_access_denied_matched_policy[none] ' in (mesh.tmp_path / "access.log").read_text(), 10,
        "the denial in the access log",
    )

    reload_policies(gateway, documents(
        policy_yaml("productpage-viewer", "  action: ALLOW\n  rules:\n  - to: [{operation: {methods: [GET], paths: [/productpage, \"/static/*\"]}}]"),
        policy_yaml("deny-admin-token", "  action: DENY\n  rules:\n  - when: [{key: \"request.headers[x-token]\", values: [admin]}]"),
    ))
    assert curl(gateway.url("/productpage")).status == 200
    assert curl(gateway.url("/static/app.js")).status == 200
    assert curl(gateway.url("/productpage"), "-X", "POST", "-d", "x").status == 403
    assert curl(gateway.url("/reviews")).status == 403
    denied = curl(gateway.url("/productpage"), "-H", "x-token: admin")
    assert denied.status == 403
    assert denied.headers["x-meshgate-details"] == (
        "rbac_access_denied_matched_policy[ns[istio-system]-policy[deny-admin-token]-rule[0]]"
    )
    assert app.requests() == ["GET /productpage", "GET /static/app.js"]
    dump = http_get("127.0.0.1", gateway.admin_port, "/config_dump").json()["authorizationPolicies"]
    assert dump == [
        {"name": "istio-system/deny-admin-token", "action": "DENY", "dryRun": False, "rules": 1},
        {"name": "istio-system/productpage-viewer", "action": "ALLOW", "dryRun": False, "rules": 1},
    ]
    samples = parse_samples(http_get("127.0.0.1", metrics, "/stats/prometheus").text)
    assert total(samples, "meshgate_authz_denied_total", policy="istio-system/deny-admin-token", action="DENY") == 1


def test_not_paths_ip_blocks_remote_ip_blocks_and_ports(mesh: Mesh):
    app, gateway, _ = gateway_with_app(mesh, documents(
        policy_yaml("from-127-0-1", "  rules:\n  - from: [{source: {ipBlocks: [127.0.1.0/24]}}]\n    to: [{operation: {notPaths: [\"/admin*\"]}}]"),
    ))
    assert curl(gateway.url("/productpage"), "--interface", "127.0.1.7").status == 200
    assert curl(gateway.url("/productpage"), "--interface", "127.0.2.7").status == 403
    assert curl(gateway.url("/admin/users"), "--interface", "127.0.1.7").status == 403
    # A client cannot claim an address in x-forwarded-for without trusted proxies (numTrustedProxies 0)…
    reload_policies(gateway, policy_yaml("remote", "  rules:\n  - from: [{source: {remoteIpBlocks: [203.0.113.0/24]}}]"))
    assert curl(gateway.url("/productpage"), "-H", "x-forwarded-for: 203.0.113.9").status == 403
    # …and with one trusted proxy in front, the address it appended is the client's.
    settings = gateway.config_dir / "meshgate.yaml"
    write_atomically(settings, settings.read_text() + "numTrustedProxies: 1\n")
    assert gateway.reload()["lastReload"]["ok"]
    assert curl(gateway.url("/productpage"), "-H", "x-forwarded-for: 198.51.100.1, 203.0.113.9").status == 200
    assert curl(gateway.url("/productpage"), "-H", "x-forwarded-for: 203.0.113.9, 198.51.100.1").status == 403
    # `ports` is the listener's port at a gateway.
    reload_policies(gateway, policy_yaml("port", f"  rules:\n  - to: [{{operation: {{ports: [\"{gateway.ports['http']}\"]}}}}]"))
    assert curl(gateway.url("/productpage")).status == 200
    reload_policies(gateway, policy_yaml("port", "  rules:\n  - to: [{operation: {ports: [\"1\"]}}]"))
    assert curl(gateway.url("/productpage")).status == 403


def test_dry_run_and_audit_log_and_count_but_never_block(mesh: Mesh):
    app, gateway, metrics = gateway_with_app(mesh, documents(
        policy_yaml("shadow-deny", "  action: DENY\n  rules: [{}]", annotations='"istio.io/dry-run": "true"'),
        policy_yaml("audit-all", "  action: AUDIT\n  rules: [{}]"),
    ))
    assert curl(gateway.url("/productpage")).status == 200
    samples = parse_samples(http_get("127.0.0.1", metrics, "/stats/prometheus").text)
    assert total(samples, "meshgate_authz_dry_run_total", policy="istio-system/shadow-deny", result="denied") == 1
    assert total(samples, "meshgate_authz_audited_total", policy="istio-system/audit-all") == 1
    assert "would be denied" in gateway.proc.stdout() + gateway.proc.stderr()


def test_sidecar_allows_the_gateways_identity_and_refuses_another_sidecars(mesh: Mesh, ca: Path):
    app, sidecar, gateway = http_mesh(mesh, ca)
    write_atomically(sidecar.config_dir / "authz.yaml", policy_yaml(
        "httpbin-viewer",
        f"  selector: {{matchLabels: {{app: httpbin}}}}\n  action: ALLOW\n  rules:\n"
        f"  - from: [{{source: {{principals: [\"{GATEWAY_PRINCIPAL}\"]}}}}]\n    to: [{{operation: {{methods: [GET]}}}}]",
        namespace="default",
    ))
    generation = sidecar.status()["generation"]
    sidecar.proc.signal(1)
    wait_until(lambda: sidecar.status()["generation"] > generation, 20, "the sidecar to reload")
    assert curl(gateway.url("/headers")).status == 200
    refused = curl(gateway.url("/post"), "-X", "POST", "-d", "x")
    assert (refused.status, refused.text) == (403, "RBAC: access denied")
    # Another workload's sidecar (identity sleep) calls httpbin through its outbound port: refused by
    # httpbin's sidecar, which sees the caller's certificate.
    sleep = mesh.address()
    services = (sidecar.config_dir / "services.yaml").read_text()
    start_sidecar(mesh, "sleep-v1", sleep, {9080: free_port(sleep)}, {"services.yaml": services, "pa.yaml": peer_authentication_yaml("STRICT")}, "sleep", ca=ca)
    other = curl(f"http://{sleep}:15001/headers", "-H", "Host: httpbin:8000")
    assert other.status == 403, other.text
    assert other.headers["x-meshgate-details"] == "rbac_access_denied_matched_policy[none]"
    assert app.requests() == ["GET /headers"]


def test_tcp_allow_by_port_and_principal_closes_other_callers_before_any_byte(mesh: Mesh, ca: Path):
    echo = mesh.tcp_echo("hello")
    services = documents(service_yaml("tcp-echo", 9000, "tcp"), mesh_workload_yaml("tcp-echo-v1", "tcp-echo", "v1", echo.host, "tcp", echo.port, "tcp-echo"))

    def allow_from(principal: str) -> str:
        return policy_yaml(
            "tcp-echo", f"  selector: {{matchLabels: {{app: tcp}}}}\n  rules:\n  - from: [{{source: {{principals: [\"{principal}\"]}}}}]\n"
            f"    to: [{{operation: {{ports: [\"{echo.port}\"]}}}}]",
            namespace="default",
        )

    sidecar = start_sidecar(
        mesh, "tcp-echo-v1", echo.host, {9000: echo.port},
        {"services.yaml": services, "pa.yaml": peer_authentication_yaml("STRICT"), "authz.yaml": allow_from(GATEWAY_PRINCIPAL)}, "tcp-echo", ca=ca,
    )
    port = free_port()
    config = mesh.config_dir(
        {"services.yaml": services, "gw.yaml": documents(gateway_yaml("gw", port, "TCP"), tcp_virtual_service_yaml("tcp-echo", "gw", port, "tcp-echo", {None: 100}, 9000))},
        caDir=ca,
    )
    mesh.gateway(config, {"tcp": port})

    def nc() -> str:
        return subprocess.run(["nc", "-q", "1", "-w", "5", "127.0.0.1", str(port)], input="world\n", capture_output=True, text=True, timeout=20).stdout

    assert nc().strip() == "hello world"
    write_atomically(sidecar.config_dir / "authz.yaml", allow_from("cluster.local/ns/default/sa/sleep"))
    generation = sidecar.status()["generation"]
    sidecar.proc.signal(1)
    wait_until(lambda: sidecar.status()["generation"] > generation, 20, "the sidecar to reload")
    assert nc() == ""
    wait_until(
        lambda: total(parse_samples(sidecar.metrics()), "meshgate_authz_denied_total", policy="none", action="ALLOW") == 1, 10,
        "the refused connection counted",
    )


def test_validate_names_bad_policies_at_their_lines(mesh: Mesh, tmp_path: Path):
    directory = tmp_path / "bad"
    directory.mkdir()
    write_atomically(directory / "authz.yaml", policy_yaml(
        "bad", "  rules:\n  - from: [{source: {ipBlocks: [10.0.0.0/33], principals: [\"spiffe://cluster.local/ns/a/sa/b\"]}}]\n"
        "    when: [{key: request.header, values: [x]}]",
    ))
    result = mesh.validate(directory)
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "authz.yaml:6: error: AuthorizationPolicy/bad.spec.rules[0].from[0].source.ipBlocks[0]: '10.0.0.0/33' is not an IP address" in out, out
    assert "authz.yaml:6: warning: AuthorizationPolicy/bad.spec.rules[0].from[0].source.principals[0]: principals are written without the spiffe:// scheme" in out, out
    assert "authz.yaml:7: error: AuthorizationPolicy/bad.spec.rules[0].when[0].key: unknown condition key 'request.header'" in out, out


class ExtAuthzServer:
    """Istio's sample ext-authz, HTTP flavour: allows a request carrying `x-ext-authz: allow`, denies
    the others with 403 and its own body; says which in `x-ext-authz-check-result`."""

    def __init__(self):
        self.checks: list[tuple[str, str, dict]] = []
        self.http = LocalHTTPServer(self.answer)
        self.port = self.http.port

    def answer(self, method: str, path: str, headers: dict):
        self.checks.append((method, path, headers))
        allowed = headers.get("x-ext-authz") == "allow"
        body = b"" if allowed else b"denied by ext_authz for not found header `x-ext-authz: allow` in the request"
        return 200 if allowed else 403, {"x-ext-authz-check-result": "allowed" if allowed else "denied", "content-type": "text/plain"}, body


def test_custom_policy_asks_the_external_authorizer(mesh: Mesh):
    authorizer = ExtAuthzServer()
    try:
        custom = policy_yaml(
            "ext-authz", "  action: CUSTOM\n  provider: {name: sample-ext-authz-http}\n  rules:\n  - to: [{operation: {paths: [\"/headers\"]}}]",
        )
        provider = (
            "extensionProviders:\n- name: sample-ext-authz-http\n  envoyExtAuthzHttp:\n"
            f"    service: 127.0.0.1\n    port: {authorizer.port}\n    timeout: 2s\n"
            "    includeRequestHeadersInCheck: [x-ext-authz]\n    headersToUpstreamOnAllow: [x-ext-authz-check-result]\n"
            "    headersToDownstreamOnDeny: [content-type, x-ext-authz-check-result]\n"
        )
        app, gateway, _ = gateway_with_app(mesh, custom, extra_settings=provider)

        allowed = curl(gateway.url("/headers"), "-H", "x-ext-authz: allow")
        assert allowed.status == 200, allowed.text
        assert allowed.json()["headers"]["x-ext-authz-check-result"] == "allowed"
        denied = curl(gateway.url("/headers"), "-H", "x-ext-authz: deny", "-H", "x-other: 1")
        assert denied.status == 403
        assert denied.text == "denied by ext_authz for not found header `x-ext-authz: allow` in the request"
        assert denied.headers["x-ext-authz-check-result"] == "denied"
        assert denied.headers["x-meshgate-response-flags"] == "UAEX"
        # Only paths the CUSTOM rule names are checked.
        assert curl(gateway.url("/productpage")).status == 200
        assert [path for _, path, _ in authorizer.checks] == ["/headers", "/headers"]
        method, _, headers = authorizer.checks[1]
        assert method == "GET" and headers["x-ext-authz"] == "deny" and "x-other" not in headers
        assert app.requests() == ["GET /headers", "GET /productpage"]
        # An authorizer that is gone: refused (statusOnError, 403), nothing upstream.
        authorizer.http.close()
        gone = curl(gateway.url("/headers"), "-H", "x-ext-authz: allow")
        assert (gone.status, gone.headers["x-meshgate-details"]) == (403, "ext_authz_error")
        assert app.requests() == ["GET /headers", "GET /productpage"]
    finally:
        try:
            authorizer.http.close()
        except OSError:
            pass
