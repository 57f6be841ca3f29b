import NIOCore

/// The first stage of a TLS listener's connections: a ``HandOverHandler`` that reads the
/// ClientHello without consuming it, asks `decide` to install what comes next (termination or
/// passthrough), then hands everything it read to the handlers installed.
///
/// - Garbage, plain text, a malformed or oversized ClientHello: counted, logged, connection closed.
/// - A client that sends no complete ClientHello within ``timeout``: closed.
/// - While `decide` works (an upstream connect, say), reads are held and bytes kept.
enum TLSInspector {
    /// Envoy's TLS inspector gives up after 15s without a ClientHello.
    static let timeout: TimeAmount = .seconds(15)

    enum Rejection: String, Sendable {
        case notTLS = "not_tls"
        case malformed = "malformed_client_hello"
        case timeout = "client_hello_timeout"
    }

    typealias Decide = (ChannelHandlerContext, ClientHelloParser.ClientHello) -> EventLoopFuture<Void>
    typealias Reject = (Rejection, String) -> Void

    static func handler(decide: @escaping Decide, reject: @escaping Reject) -> HandOverHandler {
        HandOverHandler(
            timeout: Self.timeout,
            onAbandoned: { abandoned in
                switch abandoned {
                case .timedOut(let timeout):
                    reject(.timeout, "no ClientHello within \(timeout)")
                case .closed(let bytes) where bytes > 0:
                    reject(.malformed, "connection closed after \(bytes) bytes of an incomplete ClientHello")
                case .closed:
                    break
                }
            },
            decide: { context, event in
                guard case .bytes(let bytes) = event else { return nil }
                switch ClientHelloParser.parse(bytes) {
                case .needMoreData:
                    return nil
                case .notTLS:
                    reject(.notTLS, "not a TLS handshake (first bytes \(bytes.prefix(4).map { String($0, radix: 16) }))")
                case .malformed(let reason):
                    reject(.malformed, reason)
                case .clientHello(let hello):
                    return decide(context, hello)
                }
                // Refused: the connection closes, nothing is handed over.
                return context.eventLoop.makeFailedFuture(Refused())
            }
        )
    }

    private struct Refused: Error {}

    /// A fatal TLS alert record (RFC 8446 §6): what a client sees instead of a reset.
    static func alert(_ description: UInt8, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 7)
        buffer.writeBytes([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, description])
        return buffer
    }

    /// `unrecognized_name` (112): no server or route for the SNI received.
    static let unrecognizedName: UInt8 = 112
}
