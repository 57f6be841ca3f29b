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

    public struct ClusterNotFound: Error, CustomStringConvertible {
        public var cluster: String
        public var description: String { "no cluster \(self.cluster) is declared (NC)" }
    }

    public struct NoHealthyUpstream: Error, CustomStringConvertible {
        public var cluster: String
        public var description: String { "no healthy upstream in \(self.cluster) (UH)" }
    }

    public struct AccessDenied: Error, CustomStringConvertible {
        public var details: String
        public var description: String { "refused by AuthorizationPolicy (\(self.details))" }
    }

    public struct UpstreamOverflow: Error, CustomStringConvertible {
        public var cluster: String
        public var description: String { "\(self.cluster) is at its maxConnections (UO)" }
    }

    /// Sets up a freshly accepted downstream channel. The returned future completes when the
    /// upstream is connected and glued, or fails (and the caller closes the channel).
    public static func initialize(
        downstream: Channel,
        plan: ListenerPlan,
        snapshot: Snapshot,
        identity: MeshIdentity?,
        metrics: MeshMetrics,
        log: MeshLog
    ) -> EventLoopFuture<Void> {
        let route = plan.tcp.first(where: { $0.matches(port: plan.port) })
        return Self.proxy(
            downstream: downstream, port: plan.port, routeName: route?.name, destinations: route?.destinations,
            serverName: nil, snapshot: snapshot, identity: identity, metrics: metrics, log: log,
            authorization: snapshot.role == .gateway ? ConnectionFacts(downstream, port: plan.port) : nil
        )
    }

    /// Connects `downstream` to a weighted pick of `destinations` (nil: no route, NR) and pumps
    /// bytes. Used by TCP routes, by TLS servers after termination, and by SNI passthrough (where the
    /// ClientHello already read is forwarded first by the TLS inspector).
    static func proxy(
        downstream: Channel,
        port: Int,
        routeName: String?,
        destinations: WeightedClusters?,
        serverName: String?,
        snapshot: Snapshot,
        identity: MeshIdentity?,
        metrics: MeshMetrics,
        log: MeshLog,
        inboundPeer: InboundPeer? = nil,
        authorization: ConnectionFacts? = nil
    ) -> EventLoopFuture<Void> {
        let eventLoop = downstream.eventLoop
        let idleTimeout = TimeAmount(snapshot.settings.tcpIdleTimeout)
        var record = TCPConnectionRecord()
        record.startMicros = WallClock.nowMicros()
        record.downstreamRemoteAddress = downstream.remoteAddress.flatMap(HTTPProxyHandler.hostPort)
        record.downstreamLocalAddress = downstream.localAddress.flatMap(HTTPProxyHandler.hostPort)
        record.requestedServerName = serverName
        record.source = inboundPeer?.source
        let started = eventLoop.now
        /// A connection refused before any byte flowed: counted opened and closed with its flag, logged.
        func refuse<Result>(_ flags: String, _ error: Error) -> EventLoopFuture<Result> {
            record.responseFlags = flags
            record.durationMicros = (eventLoop.now - started).nanoseconds / 1000
            let shard = metrics.shard(for: eventLoop)
            shard.tcpOpened(record)
            shard.tcpClosed(record)
            snapshot.telemetry.accessLogger?.write(record)
            return eventLoop.makeFailedFuture(error)
        }
        if let connection = authorization, let engine = snapshot.authorization {
            // AuthorizationPolicy on the connection, before any byte reaches an upstream.
            let facts = AuthorizationFacts(
                principal: connection.principal, sourceIP: connection.sourceIP, destinationIP: connection.destinationIP,
                destinationPort: connection.port, serverName: connection.serverName
            )
            let peer = record.downstreamRemoteAddress ?? "-"
            let audit = AuthorizationAudit(log: log, metrics: metrics, kind: "tcp", port: port) { "connection from \(peer)" }
            if let match = engine.customMatch(facts) {
                // An HTTP authorizer cannot check a TCP connection (Istio needs a gRPC one there):
                // refused rather than let through unchecked.
                audit.denied(policy: match, action: "CUSTOM", details: "ext_authz_error")
                return refuse("UAEX", AccessDenied(details: "ext_authz_error"))
            }
            audit.report(engine, facts)
            let verdict = engine.evaluate(facts)
            if !verdict.isAllowed {
                audit.denied(verdict)
                return refuse("RBAC", AccessDenied(details: verdict.details))
            }
        }
        guard let destinations else {
            log.info("tcp :\(port) \(downstream.remoteAddress?.description ?? "-"): no route, closing (NR)")
            return refuse("NR", NoRoute(port: port))
        }
        record.routeName = routeName
        let picked = destinations.pickTarget()
        if case .missing(let name)? = picked {
            record.upstreamCluster = name
            log.info("tcp :\(port): cluster \(name) is not declared, closing (NC)")
            return refuse("NC", ClusterNotFound(cluster: name))
        }
        // A consistent-hash balancer hashes the client's IP: TCP has no header, cookie or query.
        let sourceHash = downstream.remoteAddress?.ipAddress.map(StableHash.hash)
        guard case .cluster(let cluster)? = picked, let index = cluster.chooseEndpoint(hash: sourceHash) else {
            let name = destinations.firstTarget?.name ?? "-"
            record.upstreamCluster = name
            log.info("tcp :\(port): no healthy upstream in \(name), closing (UH)")
            return refuse("UH", NoHealthyUpstream(cluster: name))
        }
        let endpoint = cluster.endpoints[index]
        record.upstreamCluster = cluster.name
        record.upstreamHost = endpoint.hostPort
        if let breaker = cluster.breaker {
            guard breaker.tryAcquire(.connection) else {
                log.info("tcp :\(port): \(cluster.name) is at its maxConnections, closing (UO)")
                return refuse("UO", UpstreamOverflow(cluster: cluster.name))
            }
            downstream.closeFuture.whenComplete { _ in breaker.release(.connection) }
        }
        // In flight (for LEAST_REQUEST) for as long as the client's connection lasts.
        if cluster.countsActiveRequests {
            cluster.requestStarted(index)
            downstream.closeFuture.whenComplete { _ in cluster.requestEnded(index) }
        }
        record.destination = endpoint.identity
        let (downstreamGlue, upstreamGlue) = GlueHandler.matchedPair()
        let boundUpstreamGlue = NIOLoopBound(upstreamGlue, eventLoop: eventLoop)
        return ClientBootstrap(group: eventLoop)
            .upstreamOptions(cluster.connectOptions)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 16 * 1024, maximum: maxReadSize))
            .channelOption(.writeBufferWaterMark, value: writeWatermarks)
            .channelOption(.autoRead, value: false)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls = endpoint.tls {
                        // The glue goes in once the server's identity is checked (see below).
                        try tls.secure(channel, identity: identity, carrying: .tcp)
                    } else {
                        try channel.pipeline.syncOperations.addHandler(boundUpstreamGlue.value)
                    }
                }
            }
            .connect(to: endpoint.address)
            .flatMap { upstream in
                UpstreamTLS.verified(upstream).flatMapThrowing {
                    if endpoint.tls != nil {
                        try Self.finishSecured(
                            upstream, glue: boundUpstreamGlue.value, localPeer: snapshot.localPeer, metrics: metrics, log: log
                        )
                    }
                    return upstream
                }
            }
            .assumeIsolated()
            .flatMapError { error in
                log.info("tcp :\(port): upstream connect to \(endpoint.hostPort) (\(cluster.name)) failed: \(error) (UF)")
                // For TCP, connect failures are what outlier detection counts.
                cluster.record(.localFailure, endpoint: index, log: log)
                return refuse("UF", error)
            }
            .flatMapThrowing { upstream in
                cluster.record(.connected, endpoint: index, log: log)
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
                record.upstreamLocalAddress = upstream.localAddress.flatMap(HTTPProxyHandler.hostPort)
                TCPConnectionReporter(
                    downstream: downstreamGlue,
                    upstream: boundUpstreamGlue.value,
                    record: record,
                    started: started,
                    shard: metrics.shard(for: eventLoop),
                    accessLogger: snapshot.telemetry.accessLogger,
                    interval: TimeAmount(snapshot.telemetry.tcpReportingInterval),
                    inboundPeer: inboundPeer
                ).start(on: downstream)
            }
            .nonisolated()
    }
}

extension TCPProxy {
    /// After a verified upstream handshake: the metadata exchange when ALPN chose it, then the
    /// glue, then the gate leaves (handing over anything it held).
    static func finishSecured(_ upstream: Channel, glue: GlueHandler, localPeer: PeerMetadata, metrics: MeshMetrics, log: MeshLog) throws {
        let sync = upstream.pipeline.syncOperations
        let gate = try sync.handler(type: UpstreamTLSGate.self)
        if gate.negotiatedProtocol == PeerMetadataExchange.alpn {
            try sync.addHandler(PeerMetadataExchange.handler(local: localPeer, side: "upstream", metrics: metrics, log: log))
        }
        try sync.addHandler(glue)
        sync.removeHandler(gate, promise: nil)
    }
}

extension PeerMetadataExchange {
    /// The exchange handler with Istio's counters (`meshgate_peer_exchange_total{side,result}`)
    /// and a log line for every refusal.
    static func handler(local: PeerMetadata, side: String, metrics: MeshMetrics, log: MeshLog, onPeer: @escaping (PeerMetadata) -> Void = { _ in })
        -> PeerExchangeHandler
    {
        PeerExchangeHandler(
            local: local,
            onPeer: { peer in
                metrics.addControl("meshgate_peer_exchange_total{side=\"\(side)\",result=\"metadata_added\"}")
                onPeer(peer)
            },
            reject: { rejection, detail in
                metrics.addControl("meshgate_peer_exchange_total{side=\"\(side)\",result=\"\(rejection.rawValue)\"}")
                log.info("peer exchange (\(side)): \(detail); closing")
            }
        )
    }
}

/// Reports one proxied TCP connection: opened at once, its byte counters every `interval` while it
/// is open (so a long-lived connection's bytes show up before it closes), and closed with a final
/// flush and an access-log line. On a sidecar's inbound side the series carry the caller's labels:
/// the connection is counted open once the peer's metadata frame has arrived (it comes before any
/// byte of data), or at its first report without one. Lives on the connection's event loop.
final class TCPConnectionReporter {
    private let downstream: GlueHandler
    private let upstream: GlueHandler
    private var record: TCPConnectionRecord
    private let started: NIODeadline
    private let shard: MetricsShard
    private let accessLogger: AccessLogger?
    private let interval: TimeAmount
    private var reportedReceived = 0
    private var reportedSent = 0
    private var timer: Scheduled<Void>?
    private var finished = false
    private let inboundPeer: InboundPeer?
    private var opened = false

    init(
        downstream: GlueHandler, upstream: GlueHandler, record: TCPConnectionRecord, started: NIODeadline, shard: MetricsShard,
        accessLogger: AccessLogger?, interval: TimeAmount, inboundPeer: InboundPeer?
    ) {
        self.inboundPeer = inboundPeer
        self.downstream = downstream
        self.upstream = upstream
        self.record = record
        self.started = started
        self.shard = shard
        self.accessLogger = accessLogger
        self.interval = interval
    }

    func start(on channel: Channel) {
        if let peer = self.inboundPeer, !peer.knowsWorkload {
            peer.onLearned = { [self] in self.open() }
        } else {
            self.open()
        }
        self.scheduleFlush(on: channel.eventLoop)
        channel.closeFuture.assumeIsolated().whenComplete { _ in
            self.finish(on: channel.eventLoop)
        }
    }

    private func scheduleFlush(on eventLoop: EventLoop) {
        self.timer = eventLoop.assumeIsolated().scheduleTask(in: self.interval) {
            guard !self.finished else { return }
            self.flush()
            self.scheduleFlush(on: eventLoop)
        }
    }

    private func open() {
        guard !self.opened else { return }
        self.opened = true
        self.record.source = self.inboundPeer?.source
        self.shard.tcpOpened(self.record)
    }

    /// Adds the bytes moved since the last flush to the counters.
    private func flush() {
        self.open()
        let received = self.downstream.bytesRead
        let sent = self.upstream.bytesRead
        if received != self.reportedReceived || sent != self.reportedSent {
            self.shard.tcpBytes(self.record, sent: sent - self.reportedSent, received: received - self.reportedReceived)
            self.reportedReceived = received
            self.reportedSent = sent
        }
    }

    private func finish(on eventLoop: EventLoop) {
        self.finished = true
        self.inboundPeer?.onLearned = nil
        self.timer?.cancel()
        self.timer = nil
        self.flush()
        self.shard.tcpClosed(self.record)
        self.record.bytesReceived = self.reportedReceived
        self.record.bytesSent = self.reportedSent
        self.record.durationMicros = (eventLoop.now - self.started).nanoseconds / 1000
        self.accessLogger?.write(self.record)
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
