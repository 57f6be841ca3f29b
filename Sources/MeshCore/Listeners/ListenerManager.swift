import MeshConfig
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// The data-path listeners: one bound socket per Gateway server port.
///
/// A listener is only a port: what it does is read from the current snapshot at every accept
/// (TCP proxy or HTTP connection manager), so a reload that keeps a port keeps its socket and
/// changes its behaviour for new connections only. ``apply(_:)`` diffs ports: new ones bind before
/// anything else changes; removed ones stop accepting while their open connections finish.
public final class ListenerManager: Sendable {
    public struct BoundListener: Sendable, Hashable {
        public var address: String
        public var port: Int
    }

    public struct BindError: Error, CustomStringConvertible {
        public var address: String
        public var port: Int
        public var underlying: String
        public var description: String { "cannot bind \(self.address):\(self.port): \(self.underlying)" }
    }

    private let group: EventLoopGroup
    private let holder: SnapshotHolder
    private let pools: HTTPConnectionPools
    private let identity: MeshIdentity?
    private let metrics: MeshMetrics
    private let tracker: ConnectionTracker
    private let log: MeshLog
    private let bound = NIOLockedValueBox<[BoundListener: Channel]>([:])

    public init(
        group: EventLoopGroup, holder: SnapshotHolder, pools: HTTPConnectionPools, identity: MeshIdentity? = nil, metrics: MeshMetrics,
        tracker: ConnectionTracker, log: MeshLog
    ) {
        self.identity = identity
        self.group = group
        self.holder = holder
        self.pools = pools
        self.metrics = metrics
        self.tracker = tracker
        self.log = log
    }

    public var listeners: [BoundListener] {
        self.bound.withLockedValue { Array($0.keys) }.sorted { ($0.port, $0.address) < ($1.port, $1.address) }
    }

    /// Binds the ports `snapshot` has and this manager lacks. On any failure, closes what it just
    /// bound and throws, leaving the previous listeners as they were.
    public func bindNew(for snapshot: Snapshot) async throws {
        let address = snapshot.settings.bindAddress
        let wanted = Set(snapshot.listeners.keys.map { BoundListener(address: address, port: $0) })
        let missing = wanted.subtracting(self.bound.withLockedValue { Set($0.keys) })
        var fresh: [BoundListener: Channel] = [:]
        for listener in missing.sorted(by: { $0.port < $1.port }) {
            do {
                fresh[listener] = try await self.bind(listener)
            } catch {
                for channel in fresh.values { try? await channel.close() }
                throw BindError(address: listener.address, port: listener.port, underlying: "\(error)")
            }
        }
        self.bound.withLockedValue { $0.merge(fresh) { _, new in new } }
        for listener in fresh.keys.sorted(by: { $0.port < $1.port }) {
            let proto = snapshot.listeners[listener.port]?.protocol.rawValue ?? "?"
            self.log.info("listener bound \(listener.address):\(listener.port) (\(proto))")
        }
    }

    /// Closes the listeners `snapshot` no longer has: they stop accepting; open connections finish.
    public func closeRemoved(for snapshot: Snapshot) async {
        let address = snapshot.settings.bindAddress
        let removed = self.bound.withLockedValue { bound in
            let gone = bound.filter { $0.key.address != address || snapshot.listeners[$0.key.port] == nil }
            for key in gone.keys { bound.removeValue(forKey: key) }
            return gone
        }
        for (listener, channel) in removed {
            try? await channel.close()
            self.log.info("listener closed \(listener.address):\(listener.port) (open connections drain)")
        }
    }

    /// Stops accepting on every listener (drain).
    public func closeAll() async {
        let all = self.bound.withLockedValue { bound in
            defer { bound.removeAll() }
            return bound
        }
        for channel in all.values { try? await channel.close() }
    }

    private func bind(_ listener: BoundListener) async throws -> Channel {
        let setup = ConnectionSetup(holder: self.holder, pools: self.pools, identity: self.identity, metrics: self.metrics, log: self.log)
        let tracker = self.tracker
        let port = listener.port
        return try await ServerBootstrap(group: self.group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                tracker.track(channel)
                return setup.accept(channel, port: port)
            }
            .bind(host: listener.address, port: listener.port)
            .get()
    }
}
