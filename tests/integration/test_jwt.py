"""RequestAuthentication through the real gateway, with tokens minted by PyJWT: valid, wrong
signature, expired, wrong issuer, wrong audience, alg none, unknown kid; no token with and without
an AuthorizationPolicy requiring one; claims in policies; a jwksUri served by a local HTTP server,
rotated and picked up after refresh; a jwksUri that hangs or answers too much."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from conftest import LocalHTTPServer, Mesh, curl, documents, free_port, gateway_yaml, http_get, resource_yaml, service_yaml, wait_until, write_atomically

ISSUER = "https://issuer.example"


def b64(number: int, length: int) -> str:
    return base64.urlsafe_b64encode(number.to_bytes(length, "big")).rstrip(b"=").decode()


def ec_key(kid: str):
    key = ec.generate_private_key(ec.SECP256R1())
    numbers = key.public_key().public_numbers()
    return key, {"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "x": b64(numbers.x, 32), "y": b64(numbers.y, 32)}


def rsa_key(kid: str):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = key.public_key().public_numbers()
    return key, {"kty": "RSA", "kid": kid, "alg": "RS256", "n": b64(numbers.n, 256), "e": b64(numbers.e, 3)}


def token(key, kid: str, alg: str = "ES256", issuer: str = ISSUER, audience: str = "bookinfo", expires_in: int = 600, **claims) -> str:
    payload = {"iss": issuer, "sub": "alice", "aud": audience, "exp": int(time.time()) + expires_in, **claims}
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid})


def request_authentication(jwt_rule: str) -> str:
    return (
        "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: jwt, namespace: istio-system}\n"
        f"spec:\n  selector: {{matchLabels: {{istio: ingressgateway}}}}\n  jwtRules:\n  - {jwt_rule}\n"
    )


def policy(name: str, spec: str) -> str:
    return f"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: {name}, namespace: istio-system}}\nspec:\n{spec}\n"


def gateway_with_jwt(mesh: Mesh, jwt_rule: str, extra: str = "", **settings):
    app = mesh.http_app("httpbin", "v1")
    port = free_port()
    routes = resource_yaml("VirtualService", "httpbin", "  hosts: [\"*\"]\n  gateways: [gw]\n  http:\n  - route: [{destination: {host: httpbin, port: {number: 8000}}}]\n")
    services = documents(
        service_yaml("httpbin", 8000),
        resource_yaml("WorkloadEntry", "httpbin-v1", f"  address: {app.host}\n  ports: {{http: {app.port}}}\n  labels: {{app: httpbin}}\n"),
    )
    files = {"services.yaml": services, "gw.yaml": documents(gateway_yaml("gw", port, "HTTP"), routes), "jwt.yaml": request_authentication(jwt_rule)}
    if extra:
        files["authz.yaml"] = extra
    config = mesh.config_dir(files, **settings)
    return app, mesh.gateway(config, {"http": port})


def bearer(value: str) -> tuple[str, str]:
    return ("-H", f"Authorization: Bearer {value}")


def test_valid_invalid_expired_wrong_issuer_and_audience(mesh: Mesh):
    key, jwk = ec_key("k1")
    other, _ = ec_key("k1")
    jwks = json.dumps({"keys": [jwk]})
    app, gateway = gateway_with_jwt(
        mesh, f"{{issuer: \"{ISSUER}\", audiences: [bookinfo], jwks: '{jwks}', outputPayloadToHeader: x-jwt-payload, "
        "outputClaimToHeaders: [{header: x-user, claim: sub}]}"
    )
    good = token(key, "k1", groups=["dev"])
    reply = curl(gateway.url("/headers"), *bearer(good), "-H", "x-user: mallory")
    assert reply.status == 200, reply.text
    headers = reply.json()["headers"]
    assert headers["x-user"] == "alice"
    payload = json.loads(base64.urlsafe_b64decode(headers["x-jwt-payload"] + "=="))
    assert payload["sub"] == "alice" and payload["groups"] == ["dev"]
    assert "authorization" not in headers  # forwardOriginalToken: false
    # The same token again (decided from the cache), and in the query.
    assert curl(gateway.url("/headers"), *bearer(good)).status == 200
    assert curl(gateway.url(f"/headers?access_token={good}")).status == 200
    seen = len(app.requests())

    cases = [
        (token(other, "k1"), "Jwt verification fails"),
        (token(key, "k1", expires_in=-3600), "Jwt is expired"),
        (token(key, "k1", issuer="https://evil.example"), "Jwt issuer is not configured"),
        (token(key, "k1", audience="other"), "Audiences in Jwt are not allowed"),
        (token(key, "k9"), "Jwks doesn't have key to match kid or alg from Jwt"),
        (jwt.encode({"iss": ISSUER, "sub": "alice", "aud": "bookinfo"}, None, algorithm="none", headers={"kid": "k1"}), "Jwt header [alg] is not supported"),
        ("not-a-jwt", "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"),
    ]
    for value, message in cases:
        refused = curl(gateway.url("/headers"), *bearer(value))
        assert (refused.status, refused.text) == (401, message), value
        assert refused.headers["www-authenticate"].startswith("Bearer ")
        assert refused.headers["x-meshgate-details"] == "jwt_authn_access_denied{" + message.replace(" ", "_") + "}"
    assert len(app.requests()) == seen  # nothing refused reached the app
    # A token of 1 MB never reaches the verifier: the request head is over its limit.
    # (curl refuses to send a header that large: a raw client does.)
    with socket.create_connection(("127.0.0.1", gateway.ports["http"]), timeout=10) as raw:
        try:
            raw.sendall(b"GET /headers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + b"a" * (1 << 20) + b"\r\n\r\n")
        except OSError:
            pass  # the gateway may answer and close before reading it all
        assert raw.recv(64).split(b" ")[1] in (b"400", b"431")
    assert curl(gateway.url("/headers")).status == 200  # no token: passes


def test_policies_on_request_principals_and_claims(mesh: Mesh):
    key, jwk = rsa_key("r1")
    jwks = json.dumps({"keys": [jwk]})
    policies = documents(
        policy("require-jwt", '  rules:\n  - from: [{source: {requestPrincipals: ["*"]}}]'),
        policy("admins-only-delete", '  action: DENY\n  rules:\n  - to: [{operation: {methods: [DELETE]}}]\n'
               '    when: [{key: "request.auth.claims[groups]", notValues: [admin]}]'),
    )
    app, gateway = gateway_with_jwt(mesh, f"{{issuer: \"{ISSUER}\", jwks: '{jwks}'}}", extra=policies)
    assert curl(gateway.url("/headers")).status == 403
    dev = token(key, "r1", alg="RS256", groups=["dev"])
    admin = token(key, "r1", alg="RS256", groups=["dev", "admin"])
    assert curl(gateway.url("/headers"), *bearer(dev)).status == 200
    assert curl(gateway.url("/delete"), "-X", "DELETE", *bearer(dev)).status == 403
    assert curl(gateway.url("/delete"), "-X", "DELETE", *bearer(admin)).status != 403


class JWKSServer:
    """A local HTTP server for a JWKS document that the test rewrites (or makes hang)."""

    def __init__(self):
        self.body = b'{"keys": []}'
        self.hang = threading.Event()
        self.http = LocalHTTPServer(lambda *_: None if self.hang.is_set() else (200, {"content-type": "application/json"}, self.body))
        self.port = self.http.port

    def close(self):
        self.http.close()


@pytest.fixture
def jwks_server():
    server = JWKSServer()
    yield server
    server.hang.clear()
    server.close()


def test_jwks_uri_is_fetched_rotated_and_a_failure_keeps_the_last_keys(mesh: Mesh, jwks_server: JWKSServer):
    first, first_jwk = ec_key("one")
    second, second_jwk = ec_key("two")
    jwks_server.body = json.dumps({"keys": [first_jwk]}).encode()
    uri = f"http://127.0.0.1:{jwks_server.port}/jwks.json"
    app, gateway = gateway_with_jwt(mesh, f"{{issuer: \"{ISSUER}\", jwksUri: \"{uri}\", timeout: 1s}}", jwksRefreshInterval="1s")
    wait_until(lambda: curl(gateway.url("/headers"), *bearer(token(first, "one"))).status == 200, 20, "the first keys to be fetched")
    status = gateway.status()["jwks"]
    assert status[0]["uri"] == uri and status[0]["keys"] == 1 and status[0]["lastFetch"]
    # Rotation: the new key works once fetched, the old one no longer does.
    jwks_server.body = json.dumps({"keys": [second_jwk]}).encode()
    wait_until(lambda: curl(gateway.url("/headers"), *bearer(token(second, "two"))).status == 200, 20, "the rotated keys")
    assert curl(gateway.url("/headers"), *bearer(token(first, "one"))).status == 401
    # A server that answers 10 MB, then one that hangs: the last keys stay, the failure shows.
    jwks_server.body = b'{"keys": [' + b" " * (10 << 20) + b"]}"
    wait_until(lambda: "over" in (gateway.status()["jwks"][0].get("lastError") or ""), 20, "the oversized JWKS refused")
    jwks_server.body = json.dumps({"keys": [second_jwk]}).encode()
    jwks_server.hang.set()
    wait_until(lambda: "no answer" in (gateway.status()["jwks"][0].get("lastError") or ""), 20, "the hanging JWKS timed out")
    assert curl(gateway.url("/headers"), *bearer(token(second, "two"))).status == 200


def test_an_unreachable_jwks_uri_refuses_tokens_without_stalling(mesh: Mesh):
    dead = free_port()
    key, _ = ec_key("k1")
    app, gateway = gateway_with_jwt(mesh, f"{{issuer: \"{ISSUER}\", jwksUri: \"http://127.0.0.1:{dead}/jwks\"}}")
    refused = curl(gateway.url("/headers"), *bearer(token(key, "k1")))
    assert (refused.status, refused.text) == (401, "Jwks remote fetch is failed")
    assert curl(gateway.url("/headers")).status == 200


def test_validate_names_a_malformed_jwks_at_its_line(mesh: Mesh, tmp_path: Path):
    directory = tmp_path / "bad"
    directory.mkdir()
    write_atomically(directory / "jwt.yaml", request_authentication(f"{{issuer: \"{ISSUER}\", jwks: '{{\"keys\": [{{\"kty\": \"RSA\", \"kid\": \"a\"}}]}}'}}"))
    result = mesh.validate(directory)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "jwt.yaml:7: error: RequestAuthentication/jwt.spec.jwtRules[0].jwks: the JWKS does not parse: key 0: an RSA key needs n and e" in out, out
