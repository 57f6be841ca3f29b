"""Response splitting: a SCRIPTED upstream answers each request with raw bytes from
upstream_response_corpus, and a raw client reads what the gateway made of it with a strict parser:
exactly one response, canonically framed, with the right status and body, or a 502 UPE (or a closed
connection once a response had started). Then a second request gets ITS OWN fresh answer from the
upstream: bytes that came after a response are never served as a response."""

from __future__ import annotations

import socket

import pytest

from conftest import documents, free_port, gateway_yaml, http_virtual_service_yaml, service_yaml, workload_entry_yaml
from upstream_response_corpus import RESPONSES, WHY, R
from wire import ScriptedUpstream, count_complete, parse_responses, read_until

QUIET = 3.0
FRESH = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfresh"
try:
    from upstream_response_envoy import ENVOY
except ImportError:
    ENVOY = {}


@pytest.fixture(scope="module")
def rig(module_mesh):
    mesh = module_mesh
    upstream = ScriptedUpstream(mesh.address())
    mesh.raw_upstreams.append(upstream)
    port = free_port()
    config = mesh.config_dir({"scripted.yaml": documents(
        service_yaml("scripted", 9080), workload_entry_yaml("scripted-v1", "scripted", "v1", upstream.host, "http", upstream.port),
        gateway_yaml("gw", port, "HTTP"), http_virtual_service_yaml("scripted", "gw", "scripted"),
    )})
    mesh.gateway(config, {"http": port})
    return port, upstream


def ask(sock: socket.socket, path: str, head: bool = False) -> tuple[bytes, bool]:
    method = b"HEAD" if head else b"GET"
    sock.sendall(b"%s %s HTTP/1.1\r\nHost: gw\r\n\r\n" % (method, path.encode()))
    return read_until(sock, lambda b: count_complete(b, [head]) >= 1, QUIET)


def exchange(port: int, upstream: ScriptedUpstream, vector: R) -> tuple[list[str], str]:
    """Runs one vector; returns (problems, what the client saw)."""
    with upstream._lock:
        upstream.script = [vector.raw, FRESH, FRESH]
        upstream.close_after = vector.close_after
    found: list[str] = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        buf, closed = ask(sock, f"/v/{vector.name}", vector.head)
        responses, leftover, error = parse_responses(buf, [vector.head], closed=closed)
        first = responses[0] if responses else None
        seen = f"client got {buf[:300]!r} closed={closed}"
        complete = first is not None and not error
        upe = complete and first.status == 502 and first.header("x-meshgate-response-flags") == b"UPE"
        if vector.kind == "ok":
            if not complete:
                found.append(f"no complete strict response ({error})")
            elif (first.status, first.body) != (vector.status, vector.body):
                found.append(f"got {first.status} {first.body[:60]!r}, expected {vector.status} {vector.body!r}")
        elif vector.kind == "upe" and not upe:
            found.append("expected 502 with x-meshgate-response-flags: UPE")
        elif vector.kind == "upe-or-cut" and not upe and not (closed and not complete):
            found.append("expected 502 UPE, or a close without a complete response")
        elif vector.kind == "error-or-fresh" and not (complete and (first.status in vector.status or first.body == b"fresh")):
            found.append(f"expected one of {vector.status} or the retried fresh answer")
        elif vector.kind == "error" and not (complete and first.status in vector.status):
            found.append(f"expected one of {vector.status}")
        if len(responses) > 1 or (complete and leftover):
            found.append(f"bytes after the response: {leftover[:80]!r}, {len(responses)} responses")
        if first is not None and first.framing is None and first.body and not closed:
            found.append("a body without framing on a connection kept open")
        # The second request: its own fresh answer, never bytes the upstream sent after the first.
        second = b""
        if not closed:
            second, _ = ask(sock, f"/second/{vector.name}")
    if closed or not second:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as fresh_sock:
            second, _ = ask(fresh_sock, f"/second/{vector.name}")
    again, rest, error = parse_responses(second, closed=False)
    if not again or again[0].status != 200 or again[0].body != b"fresh" or error:
        found.append(f"the second request got {second[:200]!r}, not its own fresh answer")
    if b"SMUGGLED" in buf + second:
        found.append("SMUGGLED bytes reached the client")
    return found, seen + f"; second={second[:120]!r}"


@pytest.mark.parametrize("vector", RESPONSES, ids=[v.name for v in RESPONSES])
def test_upstream_response(rig, vector: R):
    port, upstream = rig
    found, seen = exchange(port, upstream, vector)
    if found:
        why = "; " + WHY[vector.name] if vector.name in WHY else ""
        envoy = f" (Envoy 1.40: {ENVOY[vector.name]}{why})" if vector.name in ENVOY else ""
        pytest.fail(f"{vector.name}{envoy}: " + "; ".join(found) + f"\n{seen}")


def test_the_corpus_is_large_enough():
    assert len(RESPONSES) >= 40 and len({v.name for v in RESPONSES}) == len(RESPONSES)
