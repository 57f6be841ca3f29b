"""Malformed or ambiguous upstream responses (test_upstream_responses.py): the raw bytes a SCRIPTED
upstream answers with, and what the client must get through the gateway.

Kinds: `ok` the client reads exactly one strict response with `status` and `body`, canonically framed;
`upe` 502 with `x-meshgate-response-flags: UPE`; `upe-or-cut` that 502 when no byte of the response had
reached the client, else the client connection closes without a complete response; `cut` the client
connection closes without a complete response; `error` one of the `status` values (a local reply).
In every case a second request then gets ITS OWN fresh upstream answer, and the bytes the upstream
smuggled after a response (`SMUGGLED`) never reach the client."""

from __future__ import annotations

from dataclasses import dataclass

SMUGGLED = b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nSMUGGLED"


@dataclass(frozen=True)
class R:
    name: str
    raw: bytes
    kind: str
    status: int | tuple = 200
    body: bytes = b""
    head: bool = False  # the request is HEAD
    close_after: bool = False  # the upstream closes its connection after the answer
    why: str = ""  # why Meshgate differs from Envoy 1.40 (ENVOY), where it does


def resp(start: bytes, *headers: bytes, body: bytes = b"") -> bytes:
    return b"\r\n".join([start, *headers]) + b"\r\n\r\n" + body


OK = b"HTTP/1.1 200 OK"
CHUNKED_HELLO = b"5\r\nhello\r\n0\r\n\r\n"
RESPONSES: list[R] = [
    # Chunked in any spelling, followed by bytes shaped like a second response.
    R("te-chunked-baseline", resp(OK, b"Transfer-Encoding: chunked", body=CHUNKED_HELLO), "ok", body=b"hello"),
    R("cl-baseline", resp(OK, b"Content-Length: 5", body=b"hello"), "ok", body=b"hello"),
    R("te-capital-then-response", resp(OK, b"Transfer-Encoding: Chunked", body=CHUNKED_HELLO + SMUGGLED), "ok", body=b"hello"),
    R("te-upper-then-response", resp(OK, b"Transfer-Encoding: CHUNKED", body=CHUNKED_HELLO + SMUGGLED), "ok", body=b"hello"),
    R("te-lower-name-then-response", resp(OK, b"transfer-encoding: chunked", body=CHUNKED_HELLO + SMUGGLED), "ok", body=b"hello"),
    R("cl-shorter-than-sent", resp(OK, b"Content-Length: 5", body=b"hello" + SMUGGLED), "ok", body=b"hello"),
    R("cl-zero-then-response", resp(OK, b"Content-Length: 0", body=SMUGGLED), "ok", body=b""),
    R("chunked-with-extension", resp(OK, b"Transfer-Encoding: chunked", body=b"5;a=b\r\nhello\r\n0\r\n\r\n"), "ok", body=b"hello"),
    R("chunked-with-trailers", resp(OK, b"Transfer-Encoding: chunked", body=b"5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"), "ok", body=b"hello"),
    R("cl-leading-zeros", resp(OK, b"Content-Length: 005", body=b"hello"), "ok", body=b"hello"),
    R("connection-names-content-length", resp(OK, b"Connection: Content-Length", b"Content-Length: 5", body=b"hello"), "ok", body=b"hello"),
    # Ambiguous framing: 502 UPE.
    R("cl-and-te", resp(OK, b"Content-Length: 5", b"Transfer-Encoding: chunked", body=CHUNKED_HELLO), "upe"),
    R("te-and-cl", resp(OK, b"Transfer-Encoding: chunked", b"Content-Length: 100", body=CHUNKED_HELLO + SMUGGLED), "upe"),
    R("cl-duplicate-equal", resp(OK, b"Content-Length: 5", b"Content-Length: 5", body=b"hello"), "upe"),
    R("cl-duplicate-different", resp(OK, b"Content-Length: 5", b"Content-Length: 13", body=b"hello" + b"SMUGGLED"), "upe"),
    R("cl-list", resp(OK, b"Content-Length: 5, 5", body=b"hello"), "upe"),
    R("cl-garbage", resp(OK, b"Content-Length: 5a", body=b"hello"), "upe"),
    R("cl-plus", resp(OK, b"Content-Length: +5", body=b"hello"), "upe"),
    R("cl-negative", resp(OK, b"Content-Length: -1", body=b"hello"), "upe"),
    R("cl-empty", resp(OK, b"Content-Length: ", body=b"hello"), "upe"),
    R("cl-overflow", resp(OK, b"Content-Length: 99999999999999999999", body=b"hello"), "upe"),
    R("te-chunked-gzip", resp(OK, b"Transfer-Encoding: chunked, gzip", body=CHUNKED_HELLO), "upe"),
    R("te-gzip", resp(OK, b"Transfer-Encoding: gzip", body=b"hello"), "upe", close_after=True),
    R("te-identity", resp(OK, b"Transfer-Encoding: identity", body=b"hello"), "upe", close_after=True),
    R("te-twice", resp(OK, b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked", body=CHUNKED_HELLO), "upe"),
    R("te-http10", resp(b"HTTP/1.0 200 OK", b"Transfer-Encoding: chunked", body=CHUNKED_HELLO), "upe", close_after=True),
    R("unexpected-101", resp(b"HTTP/1.1 101 Switching Protocols", b"Upgrade: websocket", b"Connection: Upgrade", body=b"tunnel bytes"), "upe"),
    # Bad chunks: the head may already be downstream.
    R("chunk-size-not-hex", resp(OK, b"Transfer-Encoding: chunked", body=b"zz\r\nhello\r\n0\r\n\r\n"), "upe-or-cut"),
    R("chunk-size-overflow", resp(OK, b"Transfer-Encoding: chunked", body=b"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n"), "upe-or-cut"),
    R("chunk-no-crlf-after-data", resp(OK, b"Transfer-Encoding: chunked", body=b"5\r\nhelloXX0\r\n\r\n"), "upe-or-cut"),
    R("chunk-missing-last-then-close", resp(OK, b"Transfer-Encoding: chunked", body=b"5\r\nhello\r\n"), "upe-or-cut", close_after=True),
    R("cl-longer-then-close", resp(OK, b"Content-Length: 10", body=b"hello"), "upe-or-cut", close_after=True),
    # Close-delimited bodies and HTTP/1.0.
    R("close-delimited", resp(OK, body=b"hello"), "ok", body=b"hello", close_after=True),
    R("close-delimited-http10", resp(b"HTTP/1.0 200 OK", body=b"hello"), "ok", body=b"hello", close_after=True),
    R("http10-with-cl", resp(b"HTTP/1.0 200 OK", b"Content-Length: 5", body=b"hello"), "ok", body=b"hello"),
    R("http10-keep-alive", resp(b"HTTP/1.0 200 OK", b"Connection: keep-alive", b"Content-Length: 5", body=b"hello"), "ok", body=b"hello"),
    # 1xx before the final response.
    R("100-then-200", b"HTTP/1.1 100 Continue\r\n\r\n" + resp(OK, b"Content-Length: 5", body=b"hello"), "ok", body=b"hello"),
    R("103-then-200", b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" + resp(OK, b"Content-Length: 5", body=b"hello"), "ok", body=b"hello"),
    R("100-twice-then-200", b"HTTP/1.1 100 Continue\r\n\r\n" * 2 + resp(OK, b"Content-Length: 5", body=b"hello"), "ok", body=b"hello"),
    # Responses that cannot carry a body.
    R("204-with-cl-body", resp(b"HTTP/1.1 204 No Content", b"Content-Length: 5", body=b"hello" + SMUGGLED), "ok", status=204),
    R("204-with-chunked-body", resp(b"HTTP/1.1 204 No Content", b"Transfer-Encoding: chunked", body=CHUNKED_HELLO), "ok", status=204),
    R("304-with-body", resp(b"HTTP/1.1 304 Not Modified", b"Content-Length: 5", body=b"hello"), "ok", status=304),
    R("head-with-cl", resp(OK, b"Content-Length: 5"), "ok", head=True),
    R("head-with-te", resp(OK, b"Transfer-Encoding: chunked"), "ok", head=True),
    R("head-with-cl-and-body", resp(OK, b"Content-Length: 5", body=b"hello" + SMUGGLED), "ok", head=True),
    # Syntax: bare LF, CR, NUL, obs-fold, header injection.
    R("bare-lf-status-line", b"HTTP/1.1 200 OK\nContent-Length: 5\r\n\r\nhello", "upe"),
    R("bare-lf-headers", b"HTTP/1.1 200 OK\r\nX-A: b\nContent-Length: 5\r\n\r\nhello", "upe"),
    R("bare-cr-injection", resp(OK, b"X-A: a\rSet-Cookie: injected=1", b"Content-Length: 5", body=b"hello"), "upe"),
    R("nul-in-value", resp(OK, b"X-A: a\x00b", b"Content-Length: 5", body=b"hello"), "upe"),
    R("obs-fold", resp(OK, b"X-A: a", b" folded", b"Content-Length: 5", body=b"hello"), "upe"),
    R("obs-fold-on-cl", resp(OK, b"Content-Length:", b" 5", body=b"hello"), "upe"),
    R("space-before-colon", resp(OK, b"Content-Length : 5", body=b"hello"), "upe"),
    R("empty-header-name", resp(OK, b": x", b"Content-Length: 5", body=b"hello"), "upe"),
    R("non-token-name", resp(OK, b"X(a): b", b"Content-Length: 5", body=b"hello"), "upe"),
    R("status-not-digits", resp(b"HTTP/1.1 2OO OK", b"Content-Length: 5", body=b"hello"), "upe"),
    R("version-2", resp(b"HTTP/2.0 200 OK", b"Content-Length: 5", body=b"hello"), "upe"),
    R("not-http", b"SSH-2.0-OpenSSH_9.6\r\n", "upe", close_after=True),
    # Too large, or cut short.
    R("headers-too-large", resp(OK, b"X-Big: " + b"a" * (80 * 1024), b"Content-Length: 5", body=b"hello"), "upe"),
    R("too-many-headers", resp(OK, *[b"X-H%d: v" % i for i in range(200)], b"Content-Length: 5", body=b"hello"), "upe"),
    R("close-mid-head", b"HTTP/1.1 200 OK\r\nContent-Le", "error", status=(502, 503), close_after=True),
    # A pooled connection closed before any answer may be retried once on a new one (an idempotent GET).
    R("close-before-answer", b"", "error-or-fresh", status=(502, 503), close_after=True),
]

# Why Meshgate's expected value differs from what Envoy 1.40 does (ENVOY in upstream_response_envoy.py).
_LENIENT = "Envoy (Balsa) accepts it and forwards a cleaned-up response; Meshgate refuses a response that another parser could read differently"
WHY: dict[str, str] = {
    "te-http10": "Envoy forwards the chunked body of an HTTP/1.0 response; RFC 9112 §6.1: TE in a 1.0 message is faulty framing, so Meshgate refuses it",
    "unexpected-101": "Envoy forwards a 101 the client never asked for and turns the connection into a tunnel; Meshgate answers 502 UPE",
    "204-with-cl-body": "Envoy 502s; Meshgate forwards the 204 without the body (RFC 9110 §15.3.5) and never reuses that upstream connection",
    "204-with-chunked-body": "Envoy 502s; Meshgate forwards the 204 without the body (RFC 9110 §15.3.5) and never reuses that upstream connection",
    "bare-lf-status-line": _LENIENT, "bare-lf-headers": _LENIENT, "obs-fold": _LENIENT, "obs-fold-on-cl": _LENIENT,
    "bare-cr-injection": "Envoy drops the CR and forwards `x-a: aSet-Cookie: injected=1`; Meshgate refuses (RFC 9112 §2.2)",
    "version-2": "Envoy reads an `HTTP/2.0` status line as 1.1; Meshgate refuses a version it did not speak",
}
