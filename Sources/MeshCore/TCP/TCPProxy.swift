import NIOCore
import NIOPosix

/// The TCP proxy: at accept, pick a route and a weighted destination for the whole connection,
/// connect upstream on the downstream's event loop, and glue the two channels together.
///
/// The downstream channel is not registered for reads until the upstream is connected, so nothing
/// is read early; a failed connect closes the client connection. The route is chosen from the
/// snapshot current at accept, so a reload never moves an open connection.
public enum TCPProxy {
    /// Socket buffers for bulk streams: large reads (256 KiB) and generous watermarks, which let
    /// NIO's copy path match HAProxy's throughput (reference/spike.md).
    static let maxReadSize = 256 * 1024
    static let writeWatermarks = ChannelOptions.Types.WriteBufferWaterMark(low: 1024 * 1024, high: 4 * 1024 * 1024)

    public struct NoRoute: Error, CustomStringConvertible {
        public var port: Int
        public var description: String { "no TCP route for port \(self.port) (NR)" }
    }

    public struct NoHealthyUpstream: Error, CustomStringConvertible {
        public var cluster: String
        public var description: String { "no healthy upstream in \(self.cluster) (UH)" }
    }

    /// Sets up a freshly accepted downstream channel. The returned future completes when the
    /// upstream is connected and glued, or fails (and the caller closes the channel).
    public static func initialize(
        downstream: Channel,
        plan: ListenerPlan,
        idleTimeout: TimeAmount,
        log: MeshLog
    ) -> EventLoopFuture<Void> {
        let eventLoop = downstream.eventLoop
        guard let route = plan.tcp.first(where: { $0.matches(port: plan.port) }) else {
            log.info("tcp :\(plan.port) \(downstream.remoteAddress?.description ?? "-"): no route, closing (NR)")
            return eventLoop.makeFailedFuture(NoRoute(port: plan.port))
        }
        guard let cluster = route.destinations.pick(), let endpoint = cluster.pickEndpoint() else {
            let name = route.destinations.clusters.first?.name ?? "-"
            log.info("tcp :\(plan.port): no healthy upstream in \(name), closing (UH)")
            return eventLoop.makeFailedFuture(NoHealthyUpstream(cluster: name))
        }
        let (downstreamGlue, upstreamGlue) = GlueHandler.matchedPair()
        let boundUpstreamGlue = NIOLoopBound(upstreamGlue, eventLoop: eventLoop)
        return ClientBootstrap(group: eventLoop)
            .connectTimeout(cluster.connectTimeout)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 16 * 1024, maximum: maxReadSize))
            .channelOption(.writeBufferWaterMark, value: writeWatermarks)
            .channelOption(.autoRead, value: false)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(boundUpstreamGlue.value)
                }
            }
            .connect(to: endpoint.address)
            .flatMapError { error in
                log.info("tcp :\(plan.port): upstream connect to \(endpoint.hostPort) (\(cluster.name)) failed: \(error) (UF)")
                return eventLoop.makeFailedFuture(error)
            }
            .assumeIsolated()
            .flatMapThrowing { upstream in
                // Both channels are on this event loop: configure them synchronously.
                let options = try downstream.syncOptions.orThrow()
                try options.setOption(.allowRemoteHalfClosure, value: true)
                try options.setOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 16 * 1024, maximum: maxReadSize))
                try options.setOption(.writeBufferWaterMark, value: writeWatermarks)
                let sync = downstream.pipeline.syncOperations
                try sync.addHandler(IdleStateHandler(allTimeout: idleTimeout))
                try sync.addHandler(IdleCloser())
                try sync.addHandler(downstreamGlue)
                // Glued both ways: now the upstream may read.
                try upstream.syncOptions.orThrow().setOption(.autoRead, value: true)
                upstream.read()
            }
            .nonisolated()
    }
}

/// Closes a channel on its IdleStateHandler's timeout event.
final class IdleCloser: ChannelInboundHandler {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}

struct MissingSyncOptions: Error {}

extension Optional where Wrapped == NIOSynchronousChannelOptions {
    func orThrow() throws -> NIOSynchronousChannelOptions {
        guard let self else { throw MissingSyncOptions() }
        return self
    }
}
