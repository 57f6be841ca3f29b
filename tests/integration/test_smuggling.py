"""Request smuggling: every vector of smuggling_corpus goes over a raw socket through the real gateway to
a RECORDING upstream that parses strictly. Per vector: the statuses the client got, whether the
connection closed (or still serves a probe request), and exactly what the upstream parsed: how many
messages, their method/target/host, the one canonical framing header and the body bytes; for a refused
vector, ZERO bytes. The invariant behind them all: the upstream never parses a different number of
messages than the gateway served, and `/smuggled` never becomes a request upstream."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

import pytest

from conftest import documents, free_port, gateway_yaml, http_virtual_service_yaml, service_yaml, wait_until, workload_entry_yaml
from smuggling_corpus import ENVOY, WHY, V, Outcome, Vector
from wire import (Log, Message, RecordingUpstream, WireError, control, count_complete, parse_request, parse_responses, read_until,
                  send_all_threaded)

QUIET = 2.0  # seconds without a byte before a read gives up (a bound, not an expectation)
HOP = {"connection", "keep-alive", "proxy-connection", "te", "upgrade", "expect", "transfer-encoding", "content-length", "trailer"}
RESULTS: dict[str, tuple[int, int]] = {}  # vector -> (responses served from the upstream, messages the upstream parsed)


@pytest.fixture(scope="module")
def rig(module_mesh):
    mesh, log = module_mesh, Log()
    main, other = RecordingUpstream(mesh.address(), log, "main"), RecordingUpstream(mesh.address(), log, "other")
    mesh.raw_upstreams += [main, other]
    port = free_port()
    config = mesh.config_dir({"smuggling.yaml": documents(
        service_yaml("main", 9080), workload_entry_yaml("main-v1", "main", "v1", main.host, "http", main.port),
        service_yaml("other", 9080), workload_entry_yaml("other-v1", "other", "v1", other.host, "http", other.port),
        gateway_yaml("gw", port, "HTTP"),
        http_virtual_service_yaml("main", "gw", "main"),
        http_virtual_service_yaml("other", "gw", "other", hosts='["other.example"]'),
    )})
    mesh.gateway(config, {"http": port})
    return port, log


@dataclass
class Seen:
    statuses: list[int] = field(default_factory=list)
    interim: list[int] = field(default_factory=list)
    served: int = 0  # responses that came from the upstream (they carry x-upstream-seq)
    closed_before_probe: bool = False
    probe_answered: bool = False
    client_error: str | None = None
    leftover: bytes = b""
    upstream: list[Message] = field(default_factory=list)
    stray_bytes: int = 0
    upstream_errors: list = field(default_factory=list)
    open_partial: list[int] = field(default_factory=list)

    def describe(self) -> str:
        ups = [(m.listener, m.method, m.target, m.framing, m.body[:40]) for m in self.upstream]
        return (f"client statuses={self.statuses} closed_before_probe={self.closed_before_probe} probe={self.probe_answered} "
                f"client_error={self.client_error} leftover={self.leftover[:80]!r}; upstream parsed={ups} stray_bytes={self.stray_bytes} "
                f"errors={self.upstream_errors} open_partial={self.open_partial}")


def is_ours(message: Message) -> bool:
    return message.target.startswith(("/control/", "/probe/"))


def exchange(port: int, log: Log, vector: Vector, expected: int) -> Seen:
    seen = Seen()
    log.reset()
    heads = list(vector.heads)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        if len(vector.raw) > 65536:
            send_all_threaded(sock, vector.raw).join(10)
        else:
            sock.sendall(vector.raw)
        if vector.half_close:
            sock.shutdown(socket.SHUT_WR)
        buf, closed = read_until(sock, lambda b: expected > 0 and count_complete(b, heads) >= expected, QUIET)
        if not closed and any(closes(o) is not False for o in vector.outcomes):
            tail, closed = read_until(sock, lambda _: False, QUIET)
            buf += tail
        seen.closed_before_probe = closed
        if not closed:
            # Still open: a probe on the same connection shows whether it is still in sync.
            try:
                sock.sendall(b"GET /probe/%s HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n" % vector.name.encode())
            except OSError:
                pass
            tail, closed = read_until(sock, lambda _: False, QUIET)
            buf += tail
    responses, seen.leftover, seen.client_error = parse_responses(buf, heads + [False] * 8, closed=closed)
    control(port, log, vector.name)
    messages, total, seen.upstream_errors = log.since()
    by_seq = {m.seq: m for m in messages}
    for response in responses:
        seq = response.header("x-upstream-seq")
        message = by_seq.get(int(seq)) if seq and seq.isdigit() else None
        if message is not None and message.target.startswith("/probe/"):
            seen.probe_answered = True
            continue
        seen.statuses.append(response.status)
        seen.interim += response.interim
        seen.served += message is not None
    seen.upstream = [m for m in messages if not is_ours(m)]
    seen.stray_bytes = total - sum(len(m.raw) for m in messages)
    return seen


MUST_CLOSE = {400, 413, 414, 431, 501, 505}  # a framing or parse error: nothing after it on the connection can be trusted


def closes(outcome: Outcome) -> bool | None:
    """Whether the gateway must close the connection after the outcome's responses (None: either)."""
    if outcome.close is not None:
        return outcome.close
    want = outcome.statuses
    if not want:
        return True
    last = want[-1] if isinstance(want[-1], tuple) else (want[-1],)
    return True if set(last) <= MUST_CLOSE else False if all(s < 400 for s in last) else None


def status_matches(got: int, want) -> bool:
    return got in want if isinstance(want, tuple) else got == want


def client_headers(raw: bytes) -> list[tuple[str, bytes]]:
    """The end-to-end headers of the first request in `raw`, as a client meant them."""
    lines = raw.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]
    pairs = [(n.strip().lower().decode("latin-1"), v.strip(b" \t")) for n, _, v in (line.partition(b":") for line in lines)]
    named = {t.strip().lower().decode() for n, v in pairs if n == "connection" for t in v.split(b",")} - {"host", "content-length", "transfer-encoding"}
    return [(n, v) for n, v in pairs if n not in HOP and n not in named]


def problems(outcome: Outcome, vector: Vector, seen: Seen) -> list[str]:
    found = []
    want = outcome.statuses
    if len(seen.statuses) != len(want) or not all(status_matches(g, w) for g, w in zip(seen.statuses, want)):
        found.append(f"statuses {seen.statuses}, expected {list(want)}")
    if closes(outcome) is True and not seen.closed_before_probe:
        found.append("the connection stayed open" + (" and served the probe" if seen.probe_answered else ""))
    if closes(outcome) is False and not seen.probe_answered:
        found.append("the connection did not serve a following request")
    if seen.client_error or seen.leftover:
        found.append(f"client got bytes that are no strict response: {seen.client_error} {seen.leftover[:80]!r}")
    if len(seen.upstream) != len(outcome.upstream):
        found.append(f"upstream parsed {len(seen.upstream)} messages, expected {len(outcome.upstream)}")
    for got, up in zip(seen.upstream, outcome.upstream):
        framing = None if got.framing == "content-length: 0" and up.framing is None else got.framing  # an empty body either way
        if (got.listener, got.method, got.target, framing, got.body) != (up.listener, up.method, up.target, up.framing, up.body):
            found.append(f"upstream got {(got.listener, got.method, got.target, got.framing, got.body[:60])}, expected "
                         f"{(up.listener, up.method, up.target, up.framing, up.body[:60])}")
        if up.host is not None and got.header("host") != up.host:
            found.append(f"upstream host {got.header('host')!r}, expected {up.host!r}")
    if len(outcome.upstream) == 1 and len(seen.upstream) == 1 and not vector.raw.startswith(b"\r\n"):
        sent = [h for h in client_headers(vector.raw) if h[0] != "host" or outcome.upstream[0].host is None]
        got = [(n, v) for n, v in seen.upstream[0].stable_headers() if n not in HOP and (n != "host" or outcome.upstream[0].host is None)]
        if [h for h in got if h[0] != "host"] != [h for h in sent if h[0] != "host"]:
            found.append(f"end-to-end headers changed: sent {sent[:8]}, upstream got {got[:8]}")
    if seen.interim and b" HTTP/1.0\r\n" in vector.raw.split(b"\r\n")[0] + b"\r\n":
        found.append(f"interim {seen.interim} sent to an HTTP/1.0 client (RFC 9110 §15.2: MUST NOT)")
    if seen.served != len(seen.upstream):
        found.append(f"DESYNC: the upstream parsed {len(seen.upstream)} messages, the gateway served {seen.served}")
    if any("/smuggled" in m.target for m in seen.upstream):
        found.append("SMUGGLED: /smuggled became a request upstream")
    if seen.upstream_errors:
        found.append(f"upstream strict parser: {seen.upstream_errors}")
    if outcome.partial:
        if seen.open_partial:
            found.append(f"upstream connections holding a partial message were left open: {seen.open_partial}")
    elif seen.stray_bytes:
        found.append(f"{seen.stray_bytes} bytes reached the upstream outside any complete message")
    return found


@pytest.mark.parametrize("vector", V, ids=[v.name for v in V])
def test_vector(rig, vector: Vector):
    port, log = rig
    expected = max(len(o.statuses) for o in vector.outcomes)
    seen = exchange(port, log, vector, expected)
    if any(o.partial for o in vector.outcomes) and log.open_partial():
        try:
            wait_until(lambda: not log.open_partial(), 5, "the upstream connection with a partial message to close")
        except AssertionError:
            seen.open_partial = log.open_partial()
    RESULTS[vector.name] = (seen.served, len(seen.upstream))
    reports = [problems(outcome, vector, seen) for outcome in vector.outcomes]
    if all(reports):
        envoy = f" (Envoy 1.40: {ENVOY[vector.name]}; {WHY.get(vector.name, 'same expectation')})" if vector.name in ENVOY else ""
        pytest.fail(f"{vector.name}{envoy}: " + " | OR | ".join("; ".join(r) for r in reports) + f"\nseen: {seen.describe()}")


def test_1000_pipelined_requests_then_a_malformed_one(rig):
    port, log = rig
    log.reset()
    good = b"".join(b"GET /p/%d HTTP/1.1\r\nHost: gw\r\n\r\n" % i for i in range(1000))
    bad = b"POST / HTTP/1.1\r\nHost: gw\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + b"GET /smuggled HTTP/1.1\r\nHost: gw\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sender = send_all_threaded(sock, good + bad)
        buf, closed = read_until(sock, lambda _: False, 10)
        sender.join(10)
    responses, leftover, error = parse_responses(buf, closed=closed)
    assert closed, "the connection must close after the 400"
    assert error is None and leftover == b"", (error, leftover[:200])
    statuses = [r.status for r in responses]
    assert statuses == [200] * 1000 + [400], f"{len(statuses)} responses: {statuses[:3]}...{statuses[-3:]}"
    control(port, log, "pipeline-1000")
    messages = [m for m in log.since()[0] if not is_ours(m)]
    assert [m.target for m in messages] == [f"/p/{i}" for i in range(1000)], f"upstream parsed {len(messages)} messages"
    # In order: the Nth answer is the upstream's answer to the Nth request.
    seqs = [int(r.header("x-upstream-seq")) for r in responses[:1000]]
    assert [next(m.target for m in messages if m.seq == s) for s in seqs] == [f"/p/{i}" for i in range(1000)]
    assert not log.since()[2], log.since()[2]


def test_no_vector_desynchronises_the_upstream():
    """0 vectors where the upstream parses a different number of messages than the gateway served."""
    desync = {name: counts for name, counts in RESULTS.items() if counts[0] != counts[1]}
    assert not desync, f"(served, upstream parsed): {desync}"


def test_the_corpus_is_large_enough():
    assert len(V) >= 150 and len({v.name for v in V}) == len(V)


def test_the_strict_parser_refuses_what_it_must():
    for bad in [b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                b"POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n", b"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n"]:
        with pytest.raises(WireError):
            parse_request(bad)
