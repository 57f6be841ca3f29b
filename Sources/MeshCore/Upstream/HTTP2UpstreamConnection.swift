import NIOCore
import NIOHTTP1
import NIOHTTP2

/// One upstream HTTP/2 connection, shared by the requests of its event loop (as Envoy's per-worker
/// H2 pools are). Each request is a stream: a child channel that turns HTTP/1-style parts into
/// frames (NIO's codec) in front of an ``UpstreamHTTPHandler``, so the proxy drives a stream
/// exactly as it drives a pooled HTTP/1.1 connection.
///
/// The last handler of the connection's pipeline: it sees the connection's own frames. The
/// server's SETTINGS bound the streams it carries; after GOAWAY it takes no new streams, lets the
/// open ones finish, then closes. Confined to its event loop.
final class HTTP2UpstreamConnection: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame

    /// Concurrent streams allowed before the server's SETTINGS say otherwise (RFC 9113 §6.5.2
    /// asks servers to allow at least 100).
    static let initialMaxStreams = 100
    /// Our receive windows: as for downstream HTTP/2, 1 MiB, so one stream can fill a fast link.
    static let windowSize = 1 << 20

    let key: String
    /// Succeeds once the connection is up (with TLS: verified, and `h2` negotiated).
    let ready: EventLoopFuture<Void>
    /// The cluster's `maxConcurrentStreams` (0 = none) and `maxRequestsPerConnection` (0 = none).
    private let streamLimit: Int
    private let requestLimit: Int
    /// The cluster's `idleTimeout`: without a stream for this long, the connection closes.
    private let idleTimeout: TimeAmount
    private var idleSince: NIODeadline
    private var serverMaxStreams = HTTP2UpstreamConnection.initialMaxStreams
    private var multiplexer: NIOHTTP2Handler.StreamMultiplexer?
    private var channel: Channel?
    /// Streams open or being opened.
    private(set) var activeStreams = 0
    private var streamsStarted = 0
    private var goingAway = false
    private(set) var closed = false

    /// `ready`: the connect (and TLS check) under way; `install(on:)` runs inside it.
    init(key: String, ready: EventLoopFuture<Void>, streamLimit: Int, requestLimit: Int, idleTimeout: TimeAmount) {
        self.key = key
        self.ready = ready
        self.streamLimit = streamLimit
        self.requestLimit = requestLimit
        self.idleTimeout = idleTimeout
        self.idleSince = ready.eventLoop.now
    }

    /// Whether a new request may start a stream here now.
    var acceptsStreams: Bool {
        let limit = self.streamLimit > 0 ? min(self.streamLimit, self.serverMaxStreams) : self.serverMaxStreams
        return !self.closed && !self.goingAway && self.activeStreams < limit
            && (self.requestLimit == 0 || self.streamsStarted < self.requestLimit)
    }

    /// Installs the HTTP/2 client on a fresh upstream channel (inside its initializer), then this
    /// handler behind it. Pushed streams are refused (SETTINGS_ENABLE_PUSH 0).
    func install(on channel: Channel) throws {
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        connection.initialSettings = [
            HTTP2Setting(parameter: .enablePush, value: 0),
            HTTP2Setting(parameter: .maxHeaderListSize, value: ConnectionSetup.maxHeaderListSize),
            HTTP2Setting(parameter: .initialWindowSize, value: Self.windowSize),
        ]
        connection.targetWindowSize = Self.windowSize
        var stream = NIOHTTP2Handler.StreamConfiguration()
        stream.targetWindowSize = Self.windowSize
        let sync = channel.pipeline.syncOperations
        self.multiplexer = try sync.configureHTTP2Pipeline(
            mode: .client, connectionConfiguration: connection, streamConfiguration: stream
        ) { pushed in
            pushed.close()
        }
        try sync.addHandler(self)
        self.channel = channel
    }

    /// Opens a stream for one request once the connection is ready. The stream counts against the
    /// limits from now until it closes.
    func openStream(scheme: HTTP2FramePayloadToHTTP1ClientCodec.HTTPProtocol) -> EventLoopFuture<UpstreamHTTPHandler> {
        self.activeStreams += 1
        self.streamsStarted += 1
        let key = self.key
        let stream = self.ready.assumeIsolated().flatMap { () -> EventLoopFuture<Channel> in
            guard let multiplexer = self.multiplexer, !self.closed else {
                return self.ready.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel)
            }
            let promise = self.ready.eventLoop.makePromise(of: Channel.self)
            multiplexer.createStreamChannel(promise: promise) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(HTTP2FramePayloadToHTTP1ClientCodec(httpProtocol: scheme))
                    try sync.addHandler(UpstreamHTTPHandler(key: key, isStream: true))
                }
            }
            return promise.futureResult
        }
        stream.whenComplete { result in
            switch result {
            case .success(let channel):
                channel.closeFuture.assumeIsolated().whenComplete { _ in self.streamEnded() }
            case .failure:
                self.streamEnded()
            }
        }
        return stream.flatMapThrowing { channel in
            try channel.pipeline.syncOperations.handler(type: UpstreamHTTPHandler.self)
        }.nonisolated()
    }

    private func streamEnded() {
        self.activeStreams -= 1
        if self.activeStreams == 0 { self.idleSince = self.ready.eventLoop.now }
        self.closeIfSpent()
    }

    /// Closes the connection when it has carried no stream for its idle timeout.
    func closeIfIdle(now: NIODeadline) {
        if self.activeStreams == 0, now - self.idleSince >= self.idleTimeout {
            self.goingAway = true
            self.channel?.close(promise: nil)
        }
    }

    /// A connection that takes no more streams closes when its last stream ends.
    private func closeIfSpent() {
        guard self.activeStreams == 0, !self.closed else { return }
        if self.goingAway || (self.requestLimit > 0 && self.streamsStarted >= self.requestLimit) {
            self.channel?.close(promise: nil)
        }
    }

    // MARK: Connection frames

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data).payload {
        case .settings(.settings(let settings)):
            for setting in settings where setting.parameter == .maxConcurrentStreams {
                self.serverMaxStreams = setting.value
            }
        case .goAway:
            self.goingAway = true
            self.closeIfSpent()
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.closed = true
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A connection error (NIO has sent GOAWAY): no new streams; open ones see their own errors.
        self.goingAway = true
        context.close(promise: nil)
    }
}
