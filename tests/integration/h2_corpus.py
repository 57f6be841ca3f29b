"""The HTTP/2 → HTTP/1.1 downgrade corpus (test_h2_downgrade.py): one request stream each, written with
`h2` with validation and normalisation off, so any abuse goes on the wire as written.

`headers` use `{a}` for the transport's authority and `{s}` for its scheme. Kinds: `forward` the upstream
parses exactly `up` (method, target, framing, body) and the client gets 200; `refuse` a stream reset or
a 400 (a GOAWAY also counts) and ZERO bytes upstream; `refuse-partial` the same but the head may have
gone upstream: then no complete message, and that upstream connection is closed; `431` a 431 response."""

from __future__ import annotations

from dataclasses import dataclass

SMUGGLE = b"GET /smuggled HTTP/1.1\r\nHost: gw\r\n\r\n"
CHUNKED = "transfer-encoding: chunked"


@dataclass(frozen=True)
class H2V:
    name: str
    headers: tuple
    data: tuple = ()  # DATA frames; the last one ends the stream (no DATA: HEADERS ends it)
    kind: str = "forward"
    up: tuple | None = None  # (method, target, framing, body)
    why: str = ""
    # Send the stream only once the gateway's SETTINGS are acknowledged: its 60 KiB header-list
    # limit applies from then on (RFC 9113 §6.5.3); before, swift-nio-http2 decodes with 16 KiB.
    after_settings: bool = False


def base(method: str = "GET", path: str = "/x", *extra: tuple[str, str]) -> tuple:
    return ((":method", method), (":scheme", "{s}"), (":authority", "{a}"), (":path", path)) + extra


def cl(n: int) -> str:
    return f"content-length: {n}"


H2_VECTORS: list[H2V] = [
    # Bodies on methods that rarely have one: framed upstream, never a second request.
    H2V("get-data-no-cl", base("GET"), (b"hello",), up=("GET", "/x", CHUNKED, b"hello")),
    H2V("head-data-no-cl", base("HEAD"), (b"hello",), up=("HEAD", "/x", CHUNKED, b"hello")),
    H2V("delete-data-no-cl", base("DELETE"), (b"hello",), up=("DELETE", "/x", CHUNKED, b"hello")),
    H2V("get-data-is-a-request", base("GET"), (SMUGGLE,), up=("GET", "/x", CHUNKED, SMUGGLE)),
    H2V("get-data-ends-chunked-then-request", base("GET"), (b"0\r\n\r\n" + SMUGGLE,), up=("GET", "/x", CHUNKED, b"0\r\n\r\n" + SMUGGLE)),
    H2V("get-data-in-two-frames", base("GET"), (b"GET /smug", b"gled HTTP/1.1\r\nHost: gw\r\n\r\n"), up=("GET", "/x", CHUNKED, SMUGGLE)),
    H2V("get-empty-data", base("GET"), (b"",), up=("GET", "/x", None, b"")),
    H2V("get-no-data", base("GET"), up=("GET", "/x", None, b"")),
    H2V("post-with-cl", base("POST", "/x", ("content-length", "5")), (b"hello",), up=("POST", "/x", cl(5), b"hello")),
    H2V("post-without-cl", base("POST"), (b"hello",), up=("POST", "/x", CHUNKED, b"hello")),
    H2V("post-cl-zero", base("POST", "/x", ("content-length", "0")), up=("POST", "/x", cl(0), b"")),
    H2V("post-with-cl-smuggle-body", base("POST", "/x", ("content-length", str(len(SMUGGLE)))), (SMUGGLE,), up=("POST", "/x", cl(len(SMUGGLE)), SMUGGLE)),
    H2V("te-trailers-allowed", base("GET", "/x", ("te", "trailers")), up=("GET", "/x", None, b"")),
    # content-length disagreeing with DATA.
    H2V("cl-more-than-data", base("POST", "/x", ("content-length", "10")), (b"hello",), "refuse-partial"),
    H2V("cl-less-than-data", base("POST", "/x", ("content-length", "3")), (b"hello",), "refuse-partial"),
    H2V("cl-then-extra-smuggle-frame", base("POST", "/x", ("content-length", "5")), (b"hello", SMUGGLE), "refuse-partial"),
    H2V("cl-on-get-more-than-data", base("GET", "/x", ("content-length", "10")), (b"hello",), "refuse-partial"),
    H2V("cl-not-a-number", base("POST", "/x", ("content-length", "5a")), (b"hello",), "refuse"),
    H2V("cl-twice-different", base("POST", "/x", ("content-length", "5"), ("content-length", "6")), (b"hello",), "refuse"),
    H2V("cl-negative", base("POST", "/x", ("content-length", "-1")), (b"hello",), "refuse"),
    # Connection-specific and uppercase fields are malformed in HTTP/2 (RFC 9113 §8.2.1, §8.2.2).
    H2V("uppercase-name", base("GET", "/x", ("X-Upper", "1")), kind="refuse"),
    H2V("uppercase-pseudo", ((":method", "GET"), (":scheme", "{s}"), (":authority", "{a}"), (":Path", "/x")), kind="refuse"),
    H2V("connection-header", base("GET", "/x", ("connection", "keep-alive")), kind="refuse"),
    H2V("connection-close", base("GET", "/x", ("connection", "close")), kind="refuse"),
    H2V("transfer-encoding-chunked", base("POST", "/x", ("transfer-encoding", "chunked")), (b"0\r\n\r\n" + SMUGGLE,), "refuse"),
    H2V("keep-alive-header", base("GET", "/x", ("keep-alive", "timeout=5")), kind="refuse"),
    H2V("upgrade-header", base("GET", "/x", ("upgrade", "websocket")), kind="refuse"),
    H2V("proxy-connection-header", base("GET", "/x", ("proxy-connection", "keep-alive")), kind="refuse"),
    H2V("te-gzip", base("GET", "/x", ("te", "gzip")), kind="refuse"),
    # CR, LF, NUL in values and names: an HTTP/1.1 head could be split by them.
    H2V("cr-in-value", base("GET", "/x", ("x-a", "a\rb")), kind="refuse"),
    H2V("lf-in-value", base("GET", "/x", ("x-a", "a\nb")), kind="refuse"),
    H2V("crlf-injects-header", base("GET", "/x", ("x-a", "a\r\ntransfer-encoding: chunked")), (b"0\r\n\r\n" + SMUGGLE,), "refuse"),
    H2V("crlf-injects-request", base("GET", "/x", ("x-a", "a\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: gw")), kind="refuse"),
    H2V("nul-in-value", base("GET", "/x", ("x-a", "a\x00b")), kind="refuse"),
    H2V("crlf-in-path", base("GET", "/x HTTP/1.1\r\nHost: gw\r\n\r\nGET /smuggled"), kind="refuse"),
    H2V("space-in-path", base("GET", "/x y"), kind="refuse"),
    H2V("crlf-in-method", base("GET / HTTP/1.1\r\nHost: gw\r\n\r\nGET", "/x"), kind="refuse"),
    H2V("crlf-in-authority", ((":method", "GET"), (":scheme", "{s}"), (":authority", "{a}\r\nx-injected: 1"), (":path", "/x")), kind="refuse"),
    H2V("space-in-name", base("GET", "/x", ("x a", "b")), kind="refuse"),
    H2V("colon-in-name", base("GET", "/x", ("x:a", "b")), kind="refuse"),
    H2V("empty-name", base("GET", "/x", ("", "b")), kind="refuse"),
    # Pseudo-headers.
    H2V("missing-method", ((":scheme", "{s}"), (":authority", "{a}"), (":path", "/x")), kind="refuse"),
    H2V("missing-path", ((":method", "GET"), (":scheme", "{s}"), (":authority", "{a}")), kind="refuse"),
    H2V("missing-scheme", ((":method", "GET"), (":authority", "{a}"), (":path", "/x")), kind="refuse"),
    H2V("missing-authority-and-host", ((":method", "GET"), (":scheme", "{s}"), (":path", "/x")), kind="refuse"),
    H2V("host-instead-of-authority", ((":method", "GET"), (":scheme", "{s}"), (":path", "/x"), ("host", "{a}")), up=("GET", "/x", None, b"")),
    H2V("authority-and-different-host", base("GET", "/x", ("host", "other.example")), kind="refuse"),
    H2V("duplicate-path", base("GET", "/x", (":path", "/smuggled")), kind="refuse"),
    H2V("duplicate-method", base("GET", "/x", (":method", "POST")), kind="refuse"),
    H2V("empty-path", base("GET", ""), kind="refuse"),
    H2V("empty-method", base("", "/x"), kind="refuse"),
    H2V("unknown-pseudo", base("GET", "/x", (":foo", "bar")), kind="refuse"),
    H2V("pseudo-after-regular", ((":method", "GET"), (":scheme", "{s}"), ("x-a", "b"), (":authority", "{a}"), (":path", "/x")), kind="refuse"),
    H2V("response-pseudo-in-request", base("GET", "/x", (":status", "200")), kind="refuse"),
    H2V("path-without-slash", base("GET", "x"), kind="refuse"),
    H2V("path-asterisk-get", base("GET", "*"), kind="refuse"),
    H2V("path-fragment", base("GET", "/x#frag"), kind="refuse"),
    H2V("path-absolute-uri", base("GET", "http://other.example/x"), kind="refuse"),
    H2V("authority-invalid", ((":method", "GET"), (":scheme", "{s}"), (":authority", "gw x"), (":path", "/x")), kind="refuse"),
    H2V("authority-userinfo", ((":method", "GET"), (":scheme", "{s}"), (":authority", "user@{a}"), (":path", "/x")), kind="refuse"),
    H2V("method-with-space", base("GE T", "/x"), kind="refuse"),
    # Limits: the same as HTTP/1.1's.
    H2V("headers-101", base("GET", "/x", *[(f"x-h{i}", "v") for i in range(101)]), kind="431"),
    H2V("headers-500", base("GET", "/x", *[(f"x-h{i}", "v") for i in range(500)]), kind="431", after_settings=True),
    # Before the client acknowledges the gateway's SETTINGS, a header list over 16 KiB (HPACK's size,
    # 32 bytes per field) ends the connection with COMPRESSION_ERROR: refused, and nothing goes upstream.
    H2V("headers-500-before-settings-ack", base("GET", "/x", *[(f"x-h{i}", "v") for i in range(500)]), kind="refuse"),
]

# Why Meshgate's expected value differs from what Envoy 1.40 does (ENVOY in h2_envoy.py).
WHY: dict[str, str] = {
    "get-empty-data": "Envoy sends an empty chunked body; Meshgate may send none: both frame zero bytes",
    "authority-and-different-host": "Envoy forwards; RFC 9113 §8.3.1: a Host naming another entity than :authority SHOULD be malformed, and routing by one while the upstream reads the other is a confusion",
    "cl-then-extra-smuggle-frame": "Envoy forwards the 5 framed bytes (a complete message upstream) before it sees the extra DATA and resets",
    "headers-101": "Envoy resets the stream (INTERNAL_ERROR); Meshgate answers 431 as over HTTP/1.1, so the client learns why",
    "headers-500": "Envoy resets the stream (INTERNAL_ERROR); Meshgate answers 431 as over HTTP/1.1, so the client learns why",
    "headers-500-before-settings-ack": "Envoy applies its 60 KiB limit at once and resets the stream; swift-nio-http2 applies the gateway's SETTINGS only once acknowledged (RFC 9113 §6.5.3) and decodes with 16 KiB until then: the connection ends (COMPRESSION_ERROR)",
}
