import NIOHTTP1

/// Distributed tracing: B3 (multi-header and single `b3`) and W3C `traceparent` propagation,
/// sampling, spans as Zipkin v2 JSON to a collector through a bounded queue.
///
/// Stub: to be implemented (issue 5).
public final class Tracer: Sendable {
    public init(log: MeshLog) {}

    /// A span in progress, from ``begin(requestHeaders:upstreamHeaders:sampling:)`` to ``end(_:record:)``.
    public struct Span: Sendable {}

    /// At the start of an exchange: join or start a trace, decide sampling (the client's decision,
    /// else `sampling` percent), and write the propagation headers into `upstreamHeaders`.
    /// Returns nil when nothing is to be reported.
    public func begin(requestHeaders: HTTPHeaders, upstreamHeaders: inout HTTPHeaders, sampling: Double) -> Span? {
        nil
    }

    /// At the end of an exchange: report the span (never blocks; a full queue drops and counts).
    public func end(_ span: Span, record: HTTPExchangeRecord) {}
}
