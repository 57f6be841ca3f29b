import MeshCore
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Sample workloads for the demo and the tests (Istio's tcp-echo and an httpbin-like service).
///
/// Each serves until the process ends. Once bound it prints one line,
/// `sample-app NAME VERSION listening on HOST:PORT` (the port actually bound, so `:0` works), and
/// flushes it, so a launcher can wait for that line instead of sleeping. The HTTP app then logs every
/// request head as `sample-app NAME VERSION: METHOD TARGET`.
public enum SampleApps {
    /// Every line received is answered with `PREFIX LINE`, like Istio's tcp-echo-server.
    /// On the client's EOF the answers are flushed, then the connection closes.
    public static func runTCPEcho(host: String, port: Int, prefix: String) async throws {
        let channel = try await self.bindTCPEcho(host: host, port: port, prefix: prefix)
        self.announce(name: "tcp-echo", version: prefix, host: host, channel: channel)
        try await channel.closeFuture.get()
    }

    /// An httpbin-like HTTP/1.1 service: `/`, `/headers`, `/status/CODE`, `/delay/SECONDS`, `/bytes/N`,
    /// `POST|PUT /upload`; every response carries `x-service` and `x-version`.
    /// `hold`: every plain answer (`/`, any other path) waits this long, as a slow instance would.
    public static func runHTTP(host: String, port: Int, service: String, version: String, hold: TimeAmount = .zero) async throws {
        let channel = try await self.bindHTTP(host: host, port: port, service: service, version: version, hold: hold)
        self.announce(name: service, version: version, host: host, channel: channel)
        try await channel.closeFuture.get()
    }

    /// Binds the tcp-echo service and returns its server channel.
    static func bindTCPEcho(host: String, port: Int, prefix: String) async throws -> Channel {
        try await self.bind(host: host, port: port) { channel in
            try channel.pipeline.syncOperations.addHandler(LineEchoHandler(prefix: prefix))
        }
    }

    /// Binds the HTTP service and returns its server channel.
    static func bindHTTP(host: String, port: Int, service: String, version: String, hold: TimeAmount = .zero) async throws -> Channel {
        let identity = SampleIdentity(service: service, version: version)
        let log: @Sendable (String) -> Void = { line in self.printLine("sample-app \(service) \(version): \(line)") }
        return try await self.bind(host: host, port: port) { channel in
            // HTTP/1.1, or HTTP/2 with prior knowledge (h2c), as a gRPC server speaks it.
            let sniffer = ConnectionSetup.priorKnowledgeSniffer(
                http1: { channel in
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: false)
                    try channel.pipeline.syncOperations.addHandler(HTTPSampleHandler(identity: identity, hold: hold, log: log))
                },
                http2: { channel in
                    _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                        mode: .server, connectionConfiguration: .init(), streamConfiguration: .init()
                    ) { stream in
                        stream.eventLoop.makeCompletedFuture {
                            try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
                            try stream.pipeline.syncOperations.addHandler(HTTPSampleHandler(identity: identity, hold: hold, log: log))
                        }
                    }
                }
            )
            try channel.pipeline.syncOperations.addHandler(sniffer)
        }
    }

    private static func bind(
        host: String,
        port: Int,
        configure: @escaping @Sendable (Channel) throws -> Void
    ) async throws -> Channel {
        try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 1024)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 64 * 1024, high: 256 * 1024))
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try configure(channel) }
            }
            .bind(host: host, port: port)
            .get()
    }

    private static func announce(name: String, version: String, host: String, channel: Channel) {
        let port = channel.localAddress?.port ?? 0
        self.printLine("sample-app \(name) \(version) listening on \(host):\(port)")
    }

    /// One line to stdout, flushed at once (stdout is a file or a pipe when a test or script reads it).
    private static func printLine(_ line: String) {
        print(line)
        fflush(nil)
    }
}
