import MeshConfig

/// The access log: one line per HTTP exchange and per TCP connection, in Istio's default TEXT
/// format byte for byte (or JSON with the same fields), written off the event loop through a
/// bounded buffer. A full buffer or a failing file drops lines and counts them; traffic never waits.
///
/// Stub: to be implemented (issue 5).
public final class AccessLogger: Sendable {
    public init(path: String, encoding: AccessLogEncoding, log: MeshLog) {}

    /// Called on an event loop when an exchange ends. Never blocks.
    public func write(_ record: HTTPExchangeRecord) {}

    /// Called on an event loop when a TCP connection closes. Never blocks.
    public func write(_ record: TCPConnectionRecord) {}

    /// Lines dropped so far (buffer full or write errors).
    public var dropped: Int { 0 }

    /// Writes what is buffered, then stops the writer.
    public func shutdown() {}
}
