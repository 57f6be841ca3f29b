"""Strict HTTP/1.1 wire tools for the adversarial corpora (test_smuggling, test_upstream_responses,
test_h2_downgrade): a strict request parser and a RECORDING upstream built on it, a SCRIPTED upstream
that answers with given raw bytes, a strict response parser, and raw-socket clients.

Strict means: CRLF only, token names, no CTL/NUL in values, no obs-fold, at most one framing header,
`transfer-encoding` exactly `chunked`, `content-length` digits only, chunk sizes hex only (no
extensions). Anything else is a parse error, recorded, and the connection is closed: a proxy must send
exactly that canonical shape, so any other shape it emits is a finding."""

from __future__ import annotations

import re
import select
import socket
import threading
from dataclasses import dataclass, field

from conftest import ThreadedListener, wait_until

TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
REQUEST_LINE = re.compile(rb"^(" + TOKEN + rb") ([!-~]+) HTTP/1\.1$")
STATUS_LINE = re.compile(rb"^HTTP/1\.[01] ([0-9]{3}) [\t !-~\x80-\xff]*$")
HEADER_LINE = re.compile(rb"^(" + TOKEN + rb"):[ \t]*([\t !-~\x80-\xff]*?)[ \t]*$")
HEX = re.compile(rb"^[0-9A-Fa-f]{1,15}$")
DIGITS = re.compile(rb"^[0-9]{1,18}$")
# Headers the gateway adds or rewrites: they vary, the tests compare the rest.
VARYING = {"x-request-id", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "traceparent", "tracestate", "b3",
           "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "x-ot-span-context"}


class WireError(Exception):
    pass


@dataclass
class Message:
    """One parsed HTTP/1.1 message (a request, or a response when `status` is set)."""

    start: bytes
    headers: list[tuple[str, bytes]]
    body: bytes
    raw: bytes
    framing: str | None  # "content-length: N", "transfer-encoding: chunked" or None
    method: str = ""
    target: str = ""
    status: int = 0
    interim: list[int] = field(default_factory=list)  # 1xx statuses before this final response
    conn: int = -1
    listener: str = ""
    seq: int = -1

    def header(self, name: str) -> bytes | None:
        values = [v for n, v in self.headers if n.lower() == name]
        return b", ".join(values) if values else None

    def stable_headers(self) -> list[tuple[str, bytes]]:
        return [(n.lower(), v) for n, v in self.headers if n.lower() not in VARYING and not n.lower().startswith("x-envoy-")]


def _parse_head(buf: bytes, limit: int = 1 << 20) -> tuple[bytes, list[tuple[str, bytes]], int] | None:
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > limit:
            raise WireError("head over limit")
        return None
    lines = buf[:end].split(b"\r\n")
    for line in lines:
        if b"\n" in line or b"\r" in line:
            raise WireError(f"bare CR or LF in {line[:80]!r}")
    headers = []
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            raise WireError(f"obs-fold {line[:80]!r}")
        match = HEADER_LINE.match(line)
        if not match:
            raise WireError(f"bad header line {line[:80]!r}")
        headers.append((match.group(1).decode(), match.group(2)))
    return lines[0], headers, end + 4


def _framing(headers: list[tuple[str, bytes]]) -> str | None:
    lengths = [v for n, v in headers if n.lower() == "content-length"]
    codings = [v for n, v in headers if n.lower() == "transfer-encoding"]
    if lengths and codings:
        raise WireError("both content-length and transfer-encoding")
    if len(lengths) > 1 or len(codings) > 1:
        raise WireError(f"repeated framing header {lengths or codings}")
    if codings:
        if codings[0] != b"chunked":
            raise WireError(f"transfer-encoding not exactly 'chunked': {codings[0]!r}")
        return "transfer-encoding: chunked"
    if lengths:
        if not DIGITS.match(lengths[0]):
            raise WireError(f"content-length not digits or out of range: {lengths[0]!r}")
        return f"content-length: {int(lengths[0])}"
    return None


def _chunked(buf: bytes, start: int) -> tuple[bytes, int] | None:
    """Decodes a strict chunked body starting at `start`: (body, end) or None when incomplete."""
    body, pos = bytearray(), start
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            if len(buf) - pos > 64:
                raise WireError("chunk size line too long")
            return None
        size_text = buf[pos:eol]
        if not HEX.match(size_text):
            raise WireError(f"bad chunk size line {size_text[:40]!r}")
        size = int(size_text, 16)
        pos = eol + 2
        if size == 0:
            while True:  # trailer section
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return None
                line = buf[pos:eol]
                pos = eol + 2
                if not line:
                    return bytes(body), pos
                if not HEADER_LINE.match(line):
                    raise WireError(f"bad trailer {line[:80]!r}")
        if len(buf) < pos + size + 2:
            return None
        if buf[pos + size:pos + size + 2] != b"\r\n":
            raise WireError("chunk data not followed by CRLF")
        body += buf[pos:pos + size]
        pos += size + 2


def parse_request(buf: bytes) -> tuple[Message, int] | None:
    head = _parse_head(buf)
    if head is None:
        return None
    start, headers, body_at = head
    match = REQUEST_LINE.match(start)
    if not match:
        raise WireError(f"bad request line {start[:120]!r}")
    framing = _framing(headers)
    if framing is None:
        body, end = b"", body_at
    elif framing.startswith("content-length"):
        end = body_at + int(framing.split()[1])
        if len(buf) < end:
            return None
        body = buf[body_at:end]
    else:
        decoded = _chunked(buf, body_at)
        if decoded is None:
            return None
        body, end = decoded
    return Message(start, headers, body, buf[:end], framing, method=match.group(1).decode(), target=match.group(2).decode("latin-1")), end


def parse_response(buf: bytes, head_request: bool = False, closed: bool = False) -> tuple[Message, int] | None:
    """One final response (after any 1xx) from the start of `buf`; a body without framing runs to the
    close, so it is complete only when `closed`."""
    interim, pos = [], 0
    while True:
        head = _parse_head(buf[pos:])
        if head is None:
            return None
        start, headers, body_at = head
        match = STATUS_LINE.match(start)
        if not match:
            raise WireError(f"bad status line {start[:120]!r}")
        status = int(match.group(1))
        if 100 <= status < 200 and status != 101:
            interim.append(status)
            pos += body_at
            continue
        break
    framing = _framing(headers)
    body_at += pos
    if head_request or status in (101, 204, 304):
        body, end = b"", body_at
    elif framing is None:
        if not closed:
            return None
        body, end = buf[body_at:], len(buf)
    elif framing.startswith("content-length"):
        end = body_at + int(framing.split()[1])
        if len(buf) < end:
            return None
        body = buf[body_at:end]
    else:
        decoded = _chunked(buf, body_at)
        if decoded is None:
            return None
        body, end = decoded
    return Message(start, headers, body, buf[:end], framing, status=status, interim=interim), end


def parse_responses(buf: bytes, heads: list[bool] | None = None, closed: bool = True) -> tuple[list[Message], bytes, str | None]:
    """Every complete response in `buf`: (responses, leftover bytes, parse error or None)."""
    responses, pos = [], 0
    try:
        while pos < len(buf):
            index = len(responses)
            parsed = parse_response(buf[pos:], bool(heads and index < len(heads) and heads[index]), closed)
            if parsed is None:
                break
            responses.append(parsed[0])
            pos += parsed[1]
    except WireError as error:
        return responses, buf[pos:], str(error)
    return responses, buf[pos:], None


# MARK: - Upstreams


class Log:
    """What one or more recording upstreams received, shared between them."""

    def __init__(self):
        self.lock = threading.Lock()
        self.messages: list[Message] = []
        self.raw: dict[int, bytearray] = {}
        self.pending: dict[int, int] = {}  # conn -> bytes received and not (yet) a complete message
        self.closed: set[int] = set()
        self.errors: list[tuple[int, str]] = []
        self.mark = (0, 0, 0)  # (messages, total bytes, errors) at the last reset

    def total(self) -> int:
        return sum(len(b) for b in self.raw.values())

    def reset(self) -> None:
        with self.lock:
            self.mark = (len(self.messages), self.total(), len(self.errors))

    def since(self) -> tuple[list[Message], int, list[tuple[int, str]]]:
        """(messages, bytes, errors) since the last reset."""
        with self.lock:
            return self.messages[self.mark[0]:], self.total() - self.mark[1], self.errors[self.mark[2]:]

    def open_partial(self) -> list[int]:
        """Connections holding bytes of an incomplete message that are still open."""
        with self.lock:
            return [c for c, n in self.pending.items() if n and c not in self.closed]


class RecordingUpstream(ThreadedListener):
    """Keeps connections alive, parses each request strictly, records the raw bytes per connection and
    every parsed message, and answers each with `200 ok` (plus `x-upstream-seq: K`, K the message's
    index in the log, so that a client can match answers to messages). A parse error is recorded and
    the connection closed."""

    _conn_ids = iter(range(1 << 30))

    def __init__(self, host: str, log: Log | None = None, name: str = "main"):
        self.log = log or Log()
        self.name = name
        super().__init__(host)

    def accepted(self) -> object:
        return next(self._conn_ids)

    def handle(self, conn: socket.socket, cid: int) -> None:
        log = self.log
        with log.lock:
            log.raw[cid] = bytearray()
            log.pending[cid] = 0
        buf = b""
        conn.settimeout(120)
        with conn:
            try:
                while data := conn.recv(1 << 18):
                    with log.lock:
                        log.raw[cid] += data
                    buf += data
                    while buf:
                        parsed = parse_request(buf)
                        if parsed is None:
                            break
                        message, used = parsed
                        buf = buf[used:]
                        with log.lock:
                            message.conn, message.listener, message.seq = cid, self.name, len(log.messages)
                            log.messages.append(message)
                        body = b"" if message.method == "HEAD" else b"ok"
                        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-upstream-seq: %d\r\n\r\n%s" % (message.seq, body))
                    with log.lock:
                        log.pending[cid] = len(buf)
            except WireError as error:
                with log.lock:
                    log.errors.append((cid, str(error)))
                    log.pending[cid] = len(buf)
            except OSError:
                pass
            finally:
                with log.lock:
                    log.closed.add(cid)


class ScriptedUpstream(ThreadedListener):
    """Reads each request head (and a content-length body) and answers it with the next scripted raw
    bytes; `None` in the script means: close without answering. `close_after` closes after the answer.
    Records the heads it read and counts the requests it answered."""

    def __init__(self, host: str):
        self.script: list[bytes | None] = []
        self.close_after = True
        self.heads: list[bytes] = []
        super().__init__(host)

    def handle(self, conn: socket.socket, state: object) -> None:
        conn.settimeout(30)
        buf = b""
        with conn:
            try:
                while True:
                    while b"\r\n\r\n" not in buf:
                        data = conn.recv(65536)
                        if not data:
                            return
                        buf += data
                    head, _, buf = buf.partition(b"\r\n\r\n")
                    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                    while length and len(buf) < int(length.group(1)):
                        buf += conn.recv(65536)
                    buf = buf[int(length.group(1)):] if length else buf
                    with self._lock:
                        self.heads.append(head)
                        answer = self.script.pop(0) if self.script else b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\ndefault"
                    if answer is None:
                        return
                    conn.sendall(answer)
                    if self.close_after:
                        conn.shutdown(socket.SHUT_WR)
                        while conn.recv(65536):
                            pass
                        return
            except OSError:
                return


# MARK: - Clients


def read_until(sock: socket.socket, done, timeout: float) -> tuple[bytes, bool]:
    """Reads until `done(bytes)` or EOF or `timeout` seconds without progress: (bytes, closed)."""
    buf = b""
    while not done(buf):
        ready, _, _ = select.select([sock], [], [], timeout)
        if not ready:
            return buf, False
        try:
            data = sock.recv(1 << 18)
        except (ConnectionResetError, OSError):
            return buf, True
        if not data:
            return buf, True
        buf += data
    return buf, False


def send_all_threaded(sock: socket.socket, payload: bytes) -> threading.Thread:
    def send() -> None:
        try:
            sock.sendall(payload)
        except OSError:
            pass

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def count_complete(buf: bytes, heads: list[bool] | None = None) -> int:
    responses, _, error = parse_responses(buf, heads, closed=False)
    return len(responses) + (1 if error else 0)


def control(port: int, log: Log, tag: str) -> None:
    """A good HTTP/1.1 request on a fresh connection; once the upstream has it, what came before is in."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /control/%s HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n" % tag.encode())
        data, _ = read_until(sock, lambda _: False, 10)
    assert data.startswith(b"HTTP/1.1 200 "), f"the control request failed: {data[:200]!r}"
    wait_until(lambda: any(m.target == f"/control/{tag}" for m in log.since()[0]), 10, "the control request upstream")
