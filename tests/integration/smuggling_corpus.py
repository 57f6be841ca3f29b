"""The request-smuggling corpus: malformed or ambiguous HTTP/1.1 requests, each with what the client
must get (statuses in order) and exactly what the recording upstream must parse (test_smuggling.py).

`Outcome.upstream` lists the messages the upstream parses, exactly: () means ZERO bytes reached it.
`partial`: the head may already have gone upstream (a chunk error found mid-body); then no complete
message may reach the upstream and that upstream connection must be closed. A status written as a
tuple accepts any of its values (where the spec leaves the choice: 400 vs 501, 400 vs 505); a vector
with several outcomes accepts any of them. `why` says why Meshgate differs from Envoy 1.40, whose
statuses (measured with the same bytes, `--concurrency 1`, router to one cluster) are in ENVOY."""

from __future__ import annotations

from dataclasses import dataclass

CHUNKED = "transfer-encoding: chunked"
HELLO_CHUNKED = b"5\r\nhello\r\n0\r\n\r\n"
SMUGGLE = b"GET /smuggled HTTP/1.1\r\nHost: gw\r\n\r\n"


def cl(n: int) -> str:
    return f"content-length: {n}"


@dataclass(frozen=True)
class Up:
    method: str
    target: str
    framing: str | None = None
    body: bytes = b""
    host: bytes | None = None  # checked when set
    listener: str = "main"


@dataclass(frozen=True)
class Outcome:
    statuses: tuple  # per response, in order: an int or a tuple of acceptable ints
    upstream: tuple = ()
    partial: bool = False
    close: bool | None = None  # None: closes iff the last status is >= 400 (or there is none)


@dataclass(frozen=True)
class Vector:
    name: str
    raw: bytes
    outcomes: tuple
    heads: tuple = ()  # which responses answer HEAD (no body)
    half_close: bool = False  # shut down our sending side after the bytes
    why: str = ""


def msg(start: bytes, *headers: bytes, body: bytes = b"", host: bool = True) -> bytes:
    lines = [start] + ([b"Host: gw"] if host else []) + list(headers)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def refused(*statuses) -> Outcome:
    return Outcome(statuses=statuses or (400,))


def forwarded(*ups: Up, close: bool | None = None) -> Outcome:
    return Outcome(statuses=(200,) * len(ups), upstream=ups, close=close)


def chunk_error() -> Outcome:
    """A body error found after the head may have been forwarded."""
    return Outcome(statuses=(400,), partial=True)


TE_LIST = (501, 400)  # a transfer coding list other than exactly `chunked`
BAD_VERSION = (400, 505)
POST_HELLO_CHUNKED = Up("POST", "/", CHUNKED, b"hello")
POST_HELLO_CL = Up("POST", "/", cl(5), b"hello")
V: list[Vector] = []


def add(name: str, raw: bytes, *outcomes: Outcome, **kw) -> None:
    V.append(Vector(name, raw, outcomes, **kw))


# MARK: CL.TE and TE.CL
add("cl-te", msg(b"POST / HTTP/1.1", b"Content-Length: 13", b"Transfer-Encoding: chunked", body=b"0\r\n\r\nSMUGGLED"), refused())
add("te-cl", msg(b"POST / HTTP/1.1", b"Transfer-Encoding: chunked", b"Content-Length: 3", body=b"8\r\nSMUGGLED\r\n0\r\n\r\n"), refused())
add("cl-te-smuggled-get", msg(b"POST / HTTP/1.1", b"Content-Length: 6", b"Transfer-Encoding: chunked", body=b"0\r\n\r\n" + SMUGGLE), refused())
add("te-cl-smuggled-get", msg(b"POST / HTTP/1.1", b"Transfer-Encoding: chunked", b"Content-Length: 4", body=b"%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLE), SMUGGLE)), refused())
add("cl-zero-te", msg(b"POST / HTTP/1.1", b"Content-Length: 0", b"Transfer-Encoding: chunked", body=HELLO_CHUNKED), refused())
add("te-upper-cl", msg(b"POST / HTTP/1.1", b"Transfer-Encoding: CHUNKED", b"Content-Length: 5", body=HELLO_CHUNKED), refused())
add("te-xchunked-cl", msg(b"POST / HTTP/1.1", b"Content-Length: 5", b"Transfer-Encoding: xchunked", body=b"hello"), refused(TE_LIST))
add("te-identity-cl", msg(b"POST / HTTP/1.1", b"Content-Length: 5", b"Transfer-Encoding: identity", body=b"hello"), refused(TE_LIST))
add("te-empty-cl", msg(b"POST / HTTP/1.1", b"Content-Length: 5", b"Transfer-Encoding: ", body=b"hello"), refused(TE_LIST))
add("cl-te-on-get", msg(b"GET / HTTP/1.1", b"Content-Length: 5", b"Transfer-Encoding: chunked", body=HELLO_CHUNKED), refused())

# MARK: Content-Length values
add("cl-duplicate-equal", msg(b"POST / HTTP/1.1", b"Content-Length: 5", b"Content-Length: 5", body=b"hello"), refused())
add("cl-list-equal", msg(b"POST / HTTP/1.1", b"Content-Length: 5, 5", body=b"hello"), refused())
add("cl-conflicting", msg(b"POST / HTTP/1.1", b"Content-Length: 5", b"Content-Length: 6", body=b"hello!"), refused())
add("cl-conflicting-list", msg(b"POST / HTTP/1.1", b"Content-Length: 5, 6", body=b"hello!"), refused())
add("cl-conflicting-smuggle", msg(b"POST / HTTP/1.1", b"Content-Length: 0", b"Content-Length: %d" % len(SMUGGLE), body=SMUGGLE), refused())
for label, value in [("plus", b"+5"), ("minus", b"-5"), ("hex", b"0x5"), ("hex-letters", b"a"), ("inner-space", b"5 5"),
                     ("exponent", b"5e0"), ("decimal", b"5.0"), ("empty", b""), ("comma-only", b","), ("nul", b"5\x00"),
                     ("vt", b"\x0b5"), ("quoted", b'"5"'), ("letters", b"five"), ("underscore", b"5_0"),
                     ("huge-20-digits", b"99999999999999999999"), ("2-pow-64", b"18446744073709551616"),
                     ("2-pow-63", b"9223372036854775808"), ("neg-zero", b"-0")]:
    add(f"cl-{label}", msg(b"POST / HTTP/1.1", b"Content-Length: " + value, body=b"hello"), refused((400, 413)) if "huge" in label or "pow" in label else refused())
add("cl-leading-zeros", msg(b"POST / HTTP/1.1", b"Content-Length: 005", body=b"hello"), forwarded(POST_HELLO_CL))
add("cl-ows-around", msg(b"POST / HTTP/1.1", b"Content-Length: \t5 \t", body=b"hello"), forwarded(POST_HELLO_CL), refused())
add("cl-no-space", msg(b"POST / HTTP/1.1", b"Content-Length:5", body=b"hello"), forwarded(POST_HELLO_CL))
add("cl-lowercase-name", msg(b"POST / HTTP/1.1", b"content-length: 5", body=b"hello"), forwarded(POST_HELLO_CL))
add("cl-on-get", msg(b"GET / HTTP/1.1", b"Content-Length: 5", body=b"hello"), forwarded(Up("GET", "/", cl(5), b"hello")))
add("cl-body-is-a-request", msg(b"POST / HTTP/1.1", b"Content-Length: %d" % len(SMUGGLE), body=SMUGGLE), forwarded(Up("POST", "/", cl(len(SMUGGLE)), SMUGGLE)))
add("cl-huge-then-eof", msg(b"POST / HTTP/1.1", b"Content-Length: 99999999999", body=b"hello"),
    Outcome(statuses=(), partial=True), refused(413), half_close=True)
add("cl-longer-than-body-then-eof", msg(b"POST / HTTP/1.1", b"Content-Length: 10", body=b"hello"), Outcome(statuses=(), partial=True), half_close=True)

# MARK: Connection naming framing or Host: the token is ignored
add("connection-content-length", msg(b"POST / HTTP/1.1", b"Connection: Content-Length", b"Content-Length: 5", body=b"hello"), forwarded(POST_HELLO_CL))
add("connection-transfer-encoding", msg(b"POST / HTTP/1.1", b"Connection: Transfer-Encoding", b"Transfer-Encoding: chunked", body=HELLO_CHUNKED), forwarded(POST_HELLO_CHUNKED))
add("connection-host", msg(b"GET / HTTP/1.1", b"Connection: Host"), forwarded(Up("GET", "/", host=b"gw")))
add("connection-close-content-length", msg(b"POST / HTTP/1.1", b"Connection: close, Content-Length", b"Content-Length: 5", body=b"hello"), forwarded(POST_HELLO_CL, close=True))
add("connection-keep-alive-te", msg(b"POST / HTTP/1.1", b"Connection: keep-alive, transfer-encoding", b"Transfer-Encoding: chunked", body=HELLO_CHUNKED), forwarded(POST_HELLO_CHUNKED))
add("connection-content-length-smuggle", msg(b"POST / HTTP/1.1", b"Connection: content-length", b"Content-Length: %d" % len(SMUGGLE), body=SMUGGLE), forwarded(Up("POST", "/", cl(len(SMUGGLE)), SMUGGLE)))

# MARK: Transfer-Encoding spellings accepted as chunked
for label, header in [("upper", b"Transfer-Encoding: CHUNKED"), ("capital", b"Transfer-Encoding: Chunked"), ("mixed", b"Transfer-Encoding: cHuNkEd"),
                      ("no-space", b"Transfer-Encoding:chunked"), ("tab", b"Transfer-Encoding:\tchunked"), ("trailing-space", b"Transfer-Encoding: chunked "),
                      ("lower-name", b"transfer-encoding: chunked"), ("upper-name", b"TRANSFER-ENCODING: chunked")]:
    add(f"te-{label}", msg(b"POST / HTTP/1.1", header, body=HELLO_CHUNKED), forwarded(POST_HELLO_CHUNKED))
add("te-chunked-body-is-a-request", msg(b"POST / HTTP/1.1", b"Transfer-Encoding: chunked", body=b"%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLE), SMUGGLE)),
    forwarded(Up("POST", "/", CHUNKED, SMUGGLE)))
add("te-chunk-extension", msg(b"POST / HTTP/1.1", b"Transfer-Encoding: chunked", body=b"5;name=value\r\nhello\r\n0;x\r\n\r\n"), forwarded(POST_HELLO_CHUNKED))
add("te-chunk-size-upper-hex", msg(b"POST / HTTP/1.1", b"Transfer-Encoding: chunked", body=b"A\r\nhellohello\r\n0\r\n\r\n"), forwarded(Up("POST", "/", CHUNKED, b"hellohello")))
add("te-chunk-size-leading-zeros", msg(b"POST / HTTP/1.1", b"Transfer-Encoding: chunked", body=b"0005\r\nhello\r\n0\r\n\r\n"), forwarded(POST_HELLO_CHUNKED))
add("te-on-get", msg(b"GET / HTTP/1.1", b"Transfer-Encoding: chunked", body=HELLO_CHUNKED), forwarded(Up("GET", "/", CHUNKED, b"hello")))
add("te-on-delete", msg(b"DELETE /x HTTP/1.1", b"Transfer-Encoding: chunked", body=HELLO_CHUNKED), forwarded(Up("DELETE", "/x", CHUNKED, b"hello")))
add("te-empty-body", msg(b"POST / HTTP/1.1", b"Transfer-Encoding: chunked", body=b"0\r\n\r\n"), forwarded(Up("POST", "/", CHUNKED, b"")))

# MARK: Transfer coding lists other than exactly `chunked`: 501 (or 400 from the parser)
for label, value in [("identity", b"identity"), ("identity-chunked", b"identity, chunked"), ("gzip-chunked", b"gzip, chunked"),
                     ("chunked-gzip", b"chunked, gzip"), ("chunked-chunked", b"chunked, chunked"), ("chunked-comma", b"chunked,"),
                     ("comma-chunked", b",chunked"), ("gzip", b"gzip"), ("deflate", b"deflate"), ("compress", b"compress"),
                     ("custom", b"x-custom"), ("chunked-param", b"chunked;q=1"), ("quoted", b'"chunked"'), ("inner-space", b"chun ked"),
                     ("vt-before", b"\x0bchunked"), ("vt-after", b"chunked\x0b"), ("ff-before", b"\x0cchunked"), ("nul-after", b"chunked\x00"),
                     ("xchunked", b"xchunked"), ("chunkedx", b"chunkedx"), ("chunked-identity", b"chunked, identity")]:
    add(f"te-list-{label}", msg(b"POST / HTTP/1.1", b"Transfer-Encoding: " + value, body=HELLO_CHUNKED), refused(TE_LIST))
for label, pair in [("chunked-chunked", (b"chunked", b"chunked")), ("gzip-chunked", (b"gzip", b"chunked")), ("chunked-identity", (b"chunked", b"identity")),
                    ("identity-chunked", (b"identity", b"chunked"))]:
    add(f"te-twice-{label}", msg(b"POST / HTTP/1.1", *[b"Transfer-Encoding: " + v for v in pair], body=HELLO_CHUNKED), refused(TE_LIST))
add("te-space-before-colon", msg(b"POST / HTTP/1.1", b"Transfer-Encoding : chunked", body=HELLO_CHUNKED), refused())
add("te-tab-before-colon", msg(b"POST / HTTP/1.1", b"Transfer-Encoding\t: chunked", body=HELLO_CHUNKED), refused())
add("te-obs-fold", msg(b"POST / HTTP/1.1", b"Transfer-Encoding:", b" chunked", body=HELLO_CHUNKED), refused())
add("te-leading-space-line", msg(b"POST / HTTP/1.1", b" Transfer-Encoding: chunked", body=HELLO_CHUNKED), refused())
add("te-underscore-name", msg(b"POST / HTTP/1.1", b"Transfer_Encoding: chunked", body=HELLO_CHUNKED),
    Outcome(statuses=(200, 400), upstream=(Up("POST", "/"),)))
add("te-http10", msg(b"POST / HTTP/1.0", b"Transfer-Encoding: chunked", body=HELLO_CHUNKED), refused())
add("te-http10-with-cl", msg(b"POST / HTTP/1.0", b"Transfer-Encoding: chunked", b"Content-Length: 5", body=HELLO_CHUNKED), refused())

# MARK: Host
add("host-twice-equal", msg(b"GET / HTTP/1.1", b"Host: gw"), refused())
add("host-twice-different", msg(b"GET / HTTP/1.1", b"Host: other.example"), refused())
add("host-missing", msg(b"GET / HTTP/1.1", host=False), refused())
add("host-empty", msg(b"GET / HTTP/1.1", b"Host: ", host=False), refused())
for label, value in [("space", b"gw x"), ("slash", b"gw/x"), ("at", b"user@gw"), ("backslash", b"gw\\x"), ("lt", b"gw<x"),
                     ("gt", b"gw>x"), ("quote", b'gw"x'), ("ctl-01", b"gw\x01"), ("del", b"gw\x7f"), ("tab-inside", b"gw\tx"),
                     ("question", b"gw?x"), ("hash", b"gw#x"), ("bad-port", b"gw:abc"), ("percent", b"gw%00")]:
    add(f"host-invalid-{label}", msg(b"GET / HTTP/1.1", b"Host: " + value, host=False), refused())
add("host-with-port", msg(b"GET / HTTP/1.1", b"Host: gw:80", host=False), forwarded(Up("GET", "/", host=b"gw:80")))

# MARK: Request targets
add("target-asterisk-get", msg(b"GET * HTTP/1.1"), refused())
add("target-options-asterisk", msg(b"OPTIONS * HTTP/1.1"), forwarded(Up("OPTIONS", "*")), refused(404))
add("target-no-slash", msg(b"GET x HTTP/1.1"), refused())
add("target-fragment", msg(b"GET /x#frag HTTP/1.1"), refused())
add("target-query-fragment", msg(b"GET /x?y=1#frag HTTP/1.1"), refused())
add("target-absolute-other-host", msg(b"GET http://other.example/x HTTP/1.1"),
    forwarded(Up("GET", "/x", host=b"other.example", listener="other")))
add("target-absolute-userinfo", msg(b"GET http://user@other.example/x HTTP/1.1"), refused())
add("target-absolute-no-path", msg(b"GET http://other.example HTTP/1.1"), forwarded(Up("GET", "/", host=b"other.example", listener="other")))
add("target-connect", msg(b"CONNECT other.example:443 HTTP/1.1", host=False) [:-2] + b"Host: other.example:443\r\n\r\n", refused(403), refused(404))
add("target-space-inside", msg(b"GET /a b HTTP/1.1"), refused())
add("target-ctl", msg(b"GET /a\x01b HTTP/1.1"), refused())
add("target-del", msg(b"GET /a\x7fb HTTP/1.1"), refused())

# MARK: Versions and request lines
add("http09", b"GET /x\r\n", refused(), half_close=False)
for label, version in [("1.2", b"HTTP/1.2"), ("2.0", b"HTTP/2.0"), ("3.0", b"HTTP/3.0"), ("11", b"HTTP/11"), ("1.10", b"HTTP/1.10"),
                       ("lowercase", b"http/1.1"), ("space", b"HTTP /1.1"), ("0.9", b"HTTP/0.9"), ("9.9", b"HTTP/9.9")]:
    add(f"version-{label}", msg(b"GET / " + version), refused(BAD_VERSION))
add("request-line-trailing-space", msg(b"GET / HTTP/1.1 "), refused())
add("request-line-double-space", msg(b"GET  / HTTP/1.1"), forwarded(Up("GET", "/")), refused())
add("request-line-tabs", msg(b"GET\t/\tHTTP/1.1"), refused())
add("request-line-leading-space", msg(b" GET / HTTP/1.1"), refused())
add("request-line-garbage", b"THIS IS NOT HTTP\r\n\r\n", refused())
add("request-line-too-long", msg(b"GET /" + b"a" * (70 * 1024) + b" HTTP/1.1"), refused((414, 431)))
add("leading-empty-line", b"\r\n" + msg(b"GET / HTTP/1.1"), forwarded(Up("GET", "/")), refused())
add("method-lowercase", msg(b"get / HTTP/1.1"), forwarded(Up("get", "/")), refused(), refused(501))
add("method-unknown-token", msg(b"FOO / HTTP/1.1"), forwarded(Up("FOO", "/")), refused(), refused(501))
add("method-non-token", msg(b"G(T / HTTP/1.1"), refused())
add("method-with-nul", msg(b"G\x00ET / HTTP/1.1"), refused())

# MARK: Line endings and header syntax
add("bare-lf-everywhere", b"GET / HTTP/1.1\nHost: gw\n\n", refused())
add("bare-lf-one-header", b"GET / HTTP/1.1\r\nHost: gw\nX-A: b\r\n\r\n", refused())
add("bare-lf-hides-te", b"POST / HTTP/1.1\r\nHost: gw\r\nX-A: b\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello", refused())
add("bare-cr-request-line", b"GET / HTTP/1.1\rHost: gw\r\n\r\n", refused())
add("bare-cr-in-value", msg(b"GET / HTTP/1.1", b"X-A: a\rb"), refused())
add("bare-cr-hides-te", msg(b"POST / HTTP/1.1", b"X-A: a\rTransfer-Encoding: chunked", b"Content-Length: 5", body=b"hello"), refused())
add("nul-in-value", msg(b"GET / HTTP/1.1", b"X-A: a\x00b"), refused())
add("nul-in-name", msg(b"GET / HTTP/1.1", b"X-\x00A: b"), refused())
add("obs-fold", msg(b"GET / HTTP/1.1", b"X-Folded: a", b" b"), refused())
add("obs-fold-tab", msg(b"GET / HTTP/1.1", b"X-Folded: a", b"\tb"), refused())
add("obs-fold-first-header", msg(b"GET / HTTP/1.1", host=False)[:-4] + b"\r\n continued\r\nHost: gw\r\n\r\n", refused())
add("space-before-colon", msg(b"GET / HTTP/1.1", b"X-A : b"), refused())
add("host-space-before-colon", msg(b"GET / HTTP/1.1", b"Host : gw", host=False), refused())
add("empty-header-name", msg(b"GET / HTTP/1.1", b": value"), refused())
add("header-without-colon", msg(b"GET / HTTP/1.1", b"X-A value"), refused())
for label, name in [("paren", b"X(a)"), ("space", b"X a"), ("ctl", b"X\x01a"), ("at", b"X@a"), ("quote", b'X"a'), ("del", b"X\x7fa"),
                    ("utf8", "X-é".encode()), ("slash", b"X/a"), ("brace", b"X{a}"), ("equals", b"X=a"), ("comma", b"X,a"), ("semicolon", b"X;a")]:
    add(f"header-name-{label}", msg(b"GET / HTTP/1.1", name + b": v"), refused())
add("ctl-in-value", msg(b"GET / HTTP/1.1", b"X-A: a\x01b"), refused())
add("del-in-value", msg(b"GET / HTTP/1.1", b"X-A: a\x7fb"), forwarded(Up("GET", "/")), refused())
add("headers-100", msg(b"GET / HTTP/1.1", *[b"X-H%d: v" % i for i in range(99)]), forwarded(Up("GET", "/")))
add("headers-101", msg(b"GET / HTTP/1.1", *[b"X-H%d: v" % i for i in range(100)]), refused(431))
add("headers-500", msg(b"GET / HTTP/1.1", *[b"X-H%d: v" % i for i in range(500)]), refused(431))
add("headers-61-KiB", msg(b"GET / HTTP/1.1", b"X-Big: " + b"a" * (61 * 1024)), refused(431))
add("headers-61-KiB-many", msg(b"GET / HTTP/1.1", *[b"X-B%d: %s" % (i, b"a" * 1024) for i in range(61)]), refused(431))
add("headers-40-KiB", msg(b"GET / HTTP/1.1", b"X-Big: " + b"a" * (40 * 1024)), forwarded(Up("GET", "/")))

# MARK: Chunked body errors (the head may already be upstream)
for label, body in [("size-not-hex", b"zz\r\nhello\r\n0\r\n\r\n"), ("size-negative", b"-5\r\nhello\r\n0\r\n\r\n"), ("size-0x", b"0x5\r\nhello\r\n0\r\n\r\n"),
                    ("size-leading-space", b" 5\r\nhello\r\n0\r\n\r\n"), ("size-empty", b"\r\nhello\r\n0\r\n\r\n"),
                    ("size-overflow", b"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n"), ("size-2-pow-64", b"10000000000000000\r\nhello\r\n0\r\n\r\n"),
                    ("no-crlf-after-data", b"5\r\nhelloXX0\r\n\r\n"), ("data-longer-than-size", b"3\r\nhello\r\n0\r\n\r\n"),
                    ("lf-after-size", b"5\nhello\r\n0\r\n\r\n"), ("lf-after-data", b"5\r\nhello\n0\r\n\r\n"), ("cr-only-after-size", b"5\rhello\r\n0\r\n\r\n"),
                    ("ext-bare-lf", b"5;ext\nhello\r\n0\r\n\r\n"), ("ext-ctl", b"5;e\x01x\r\nhello\r\n0\r\n\r\n"), ("size-underscore", b"5_0\r\nhello\r\n0\r\n\r\n"),
                    ("bad-trailer-line", b"5\r\nhello\r\n0\r\nnot a trailer\r\n\r\n"), ("trailer-obs-fold", b"5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n"),
                    ("smuggle-after-bad-size", b"5\r\nhello\r\nGET /smuggled HTTP/1.1\r\nHost: gw\r\n\r\n")]:
    add(f"chunk-{label}", msg(b"POST / HTTP/1.1", b"Transfer-Encoding: chunked", body=body), chunk_error(), refused())
add("chunk-truncated-then-eof", msg(b"POST / HTTP/1.1", b"Transfer-Encoding: chunked", body=b"5\r\nhel"), Outcome(statuses=(), partial=True), half_close=True)
for label, trailer in [("content-length", b"Content-Length: 5"), ("transfer-encoding", b"Transfer-Encoding: chunked"), ("host", b"Host: evil.example")]:
    # A forbidden trailer field is dropped (the message is forwarded without it) or the request refused.
    add(f"trailer-{label}", msg(b"POST / HTTP/1.1", b"Transfer-Encoding: chunked", body=b"5\r\nhello\r\n0\r\n" + trailer + b"\r\n\r\n"),
        forwarded(POST_HELLO_CHUNKED), chunk_error(), refused())

# MARK: Upgrade and Expect
UPGRADE = (b"Upgrade: websocket", b"Connection: Upgrade", b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", b"Sec-WebSocket-Version: 13")
add("upgrade-with-content-length-body", msg(b"GET /chat HTTP/1.1", *UPGRADE, b"Content-Length: 5", body=b"hello"), refused())
add("upgrade-with-chunked-body", msg(b"GET /chat HTTP/1.1", *UPGRADE, b"Transfer-Encoding: chunked", body=HELLO_CHUNKED), refused())
add("upgrade-pipelined-request", msg(b"GET /chat HTTP/1.1", *UPGRADE) + SMUGGLE, forwarded(Up("GET", "/chat"), close=True),
    why="the upstream refuses the upgrade (200): the bytes after the head were never a tunnel; the connection closes")
add("upgrade-h2c", msg(b"GET / HTTP/1.1", b"Upgrade: h2c", b"Connection: Upgrade, HTTP2-Settings", b"HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA"), forwarded(Up("GET", "/"), close=True), forwarded(Up("GET", "/")))
add("upgrade-without-connection", msg(b"GET / HTTP/1.1", b"Upgrade: websocket", body=b""), forwarded(Up("GET", "/")))
add("expect-100", msg(b"POST / HTTP/1.1", b"Expect: 100-continue", b"Content-Length: 5", body=b"hello"), forwarded(POST_HELLO_CL))
add("expect-100-case", msg(b"POST / HTTP/1.1", b"Expect: 100-Continue", b"Content-Length: 5", body=b"hello"), forwarded(POST_HELLO_CL))
add("expect-100-chunked", msg(b"POST / HTTP/1.1", b"Expect: 100-continue", b"Transfer-Encoding: chunked", body=HELLO_CHUNKED), forwarded(POST_HELLO_CHUNKED))
add("expect-100-no-body", msg(b"GET / HTTP/1.1", b"Expect: 100-continue"), forwarded(Up("GET", "/")))
add("expect-100-twice", msg(b"POST / HTTP/1.1", b"Expect: 100-continue", b"Expect: 100-continue", b"Content-Length: 5", body=b"hello"), forwarded(POST_HELLO_CL), refused(), refused(417))
add("expect-unknown", msg(b"POST / HTTP/1.1", b"Expect: something", b"Content-Length: 5", body=b"hello"), forwarded(POST_HELLO_CL), refused(417))
add("expect-100-http10", msg(b"POST / HTTP/1.0", b"Expect: 100-continue", b"Content-Length: 5", body=b"hello"), forwarded(POST_HELLO_CL, close=True), refused(426))

# MARK: Pipelines and smuggling shapes
GOOD = msg(b"GET /first HTTP/1.1")
add("pipeline-two-good", GOOD + msg(b"GET /second HTTP/1.1"), forwarded(Up("GET", "/first"), Up("GET", "/second")))
add("pipeline-good-then-garbage", GOOD + b"GARBAGE\r\n\r\n", Outcome(statuses=(200, 400), upstream=(Up("GET", "/first"),)))
add("pipeline-good-then-cl-te", GOOD + msg(b"POST / HTTP/1.1", b"Content-Length: 6", b"Transfer-Encoding: chunked", body=b"0\r\n\r\n" + SMUGGLE),
    Outcome(statuses=(200, 400), upstream=(Up("GET", "/first"),)))
add("pipeline-cl-zero-then-smuggle-bytes", msg(b"GET /first HTTP/1.1", b"Content-Length: 0") + b"@" * 5 + SMUGGLE, Outcome(statuses=(200, 400), upstream=(Up("GET", "/first", cl(0)),)))
add("pipeline-chunked-cl-chunked", msg(b"POST /a HTTP/1.1", b"Transfer-Encoding: chunked", body=HELLO_CHUNKED) + msg(b"POST /b HTTP/1.1", b"Content-Length: 5", body=b"hello")
    + msg(b"POST /c HTTP/1.1", b"Transfer-Encoding: chunked", body=HELLO_CHUNKED),
    forwarded(Up("POST", "/a", CHUNKED, b"hello"), Up("POST", "/b", cl(5), b"hello"), Up("POST", "/c", CHUNKED, b"hello")))
add("pipeline-head-then-get", msg(b"HEAD /h HTTP/1.1") + msg(b"GET /g HTTP/1.1"), forwarded(Up("HEAD", "/h"), Up("GET", "/g")), heads=(True, False))
add("pipeline-te-upper-then-get", msg(b"POST /a HTTP/1.1", b"Transfer-Encoding: CHUNKED", body=HELLO_CHUNKED) + GOOD, forwarded(Up("POST", "/a", CHUNKED, b"hello"), Up("GET", "/first")))
add("pipeline-connection-close-then-smuggle", msg(b"GET /first HTTP/1.1", b"Connection: close") + SMUGGLE, forwarded(Up("GET", "/first"), close=True))
add("pipeline-http10-then-smuggle", msg(b"GET /first HTTP/1.0") + SMUGGLE, forwarded(Up("GET", "/first"), close=True), refused(426))
add("pipeline-good-then-te-gzip", GOOD + msg(b"POST / HTTP/1.1", b"Transfer-Encoding: gzip, chunked", body=b"0\r\n\r\n" + SMUGGLE),
    Outcome(statuses=(200, TE_LIST), upstream=(Up("GET", "/first"),)))
add("pipeline-good-then-bad-chunk", GOOD + msg(b"POST / HTTP/1.1", b"Transfer-Encoding: chunked", body=b"zz\r\n" + SMUGGLE),
    Outcome(statuses=(200, 400), upstream=(Up("GET", "/first"),), partial=True))
add("chunked-then-second-request", msg(b"POST / HTTP/1.1", b"Transfer-Encoding: chunked", body=b"0\r\n\r\n") + msg(b"GET /second HTTP/1.1"),
    forwarded(Up("POST", "/", CHUNKED, b""), Up("GET", "/second")),
    why="not smuggling: a complete chunked body then a second request, which the client sent in the open")

# Why Meshgate's expected value differs from what Envoy 1.40 does (ENVOY), one reason per family.
_OBS = "Envoy (Balsa) unfolds obs-fold and forwards; RFC 9112 §5.2 lets a proxy reject it, and an unfolded field is a classic desync seed"
_HOST = "Envoy forwards a Host that is no valid uri-host[:port] (RFC 3986); Meshgate routes by Host, so one that matchers can read two ways is refused"
_VERSION = "Envoy answers 426 to every version but 1.1 (HTTP/1.0 off by default); 426 asks for a newer protocol, wrong for 2.0/3.0/9.9: RFC 9110 §15.6.6 says 505, or 400 for a malformed version"
_LINE = "Envoy (Balsa) tolerates extra or odd whitespace in the request line; another parser may split it differently, so Meshgate refuses (RFC 9112 §3: single SP)"
_LF = "Envoy accepts a bare LF as a line end (RFC 9112 §2.2 MAY); an upstream that does not would see another header set (see bare-lf-hides-te), so Meshgate refuses"
_CR = "Envoy forwards a field value with a bare CR (replaced or kept); RFC 9112 §2.2 says reject it or replace it with SP before processing: Meshgate rejects"
_CHUNK = "Envoy (Balsa) is lenient inside chunked bodies and forwards a body the client never framed that way; Meshgate refuses the malformed chunk"
_CONN = "Envoy removes the field that Connection names and re-frames the body as chunked (consistent, yet it rewrites the client's framing); Meshgate ignores a Connection token naming framing fields (RFC 9110 §7.6.1 lets a proxy keep end-to-end fields) and forwards the framing as sent"
WHY: dict[str, str] = {
    "cl-ows-around": "Envoy trims the OWS and forwards; NIO's llhttp refuses a tab inside the value's leading whitespace with 400 and a close: safe (a length is never guessed), and `Content-Length: 5 ` is forwarded as `content-length: 5`",
    "cl-2-pow-63": "Envoy forwards 2^63 verbatim (the 503 is the strict upstream refusing it): a length that 63-bit parsers read differently must be refused at the edge",
    "connection-content-length": _CONN, "connection-close-content-length": _CONN, "connection-content-length-smuggle": _CONN,
    "connection-host": "Envoy removes Host as hop-by-hop and then 400s for a missing Host, so any client can break its own routing; Meshgate never treats Host as hop-by-hop",
    "te-obs-fold": _OBS, "obs-fold": _OBS, "obs-fold-tab": _OBS, "chunk-trailer-obs-fold": _OBS,
    "te-http10": "Envoy refuses all HTTP/1.0 with 426 (accept_http_10 is off in Istio too); Meshgate serves 1.0 but TE on 1.0 is a framing error (RFC 9112 §6.1)",
    "host-twice-equal": "Envoy joins the two Hosts into `gw,gw` and forwards; RFC 9112 §3.2: more than one Host is a 400",
    "host-twice-different": "Envoy joins the two Hosts into one value and forwards; RFC 9112 §3.2: more than one Host is a 400",
    "host-empty": "Envoy forwards an empty Host; an origin-form 1.1 request needs a host to route by (RFC 9112 §3.2)",
    "host-invalid-at": _HOST, "host-invalid-bad-port": _HOST, "host-invalid-percent": _HOST,
    "target-absolute-userinfo": "Envoy drops the userinfo and forwards; RFC 9110 §4.2.4: a recipient should treat userinfo in an http(s) URI as an error",
    "http09": _VERSION, "version-1.2": _VERSION, "version-2.0": _VERSION, "version-3.0": _VERSION, "version-0.9": _VERSION, "version-9.9": _VERSION,
    "request-line-trailing-space": _LINE,
    "request-line-double-space": "NIO's llhttp, like Envoy, reads `GET  /` as `GET /`; harmless either way, since the proxy writes every request line anew with single spaces, so no next hop sees the extra one", "request-line-tabs": _LINE,
    "bare-lf-everywhere": _LF, "bare-lf-one-header": _LF, "bare-cr-in-value": _CR, "bare-cr-hides-te": _CR,
    "chunk-data-longer-than-size": _CHUNK, "chunk-lf-after-data": _CHUNK, "chunk-ext-ctl": _CHUNK,
    "upgrade-with-content-length-body": "Envoy forwards the upgrade head and the body as tunnel bytes; a body on an Upgrade request is ambiguous (body or first tunnel bytes?), so Meshgate refuses",
    "upgrade-with-chunked-body": "Envoy drops the chunked body of an Upgrade request and forwards the head; ambiguous framing, refused",
}

ENVOY: dict[str, str] = {}  # what Envoy did with each vector: generated into smuggling_envoy.py
try:
    from smuggling_envoy import ENVOY as _MEASURED

    ENVOY.update(_MEASURED)
except ImportError:
    pass
