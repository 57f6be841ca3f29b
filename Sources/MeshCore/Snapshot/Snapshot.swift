import Atomics
import MeshConfig

/// Everything the data path needs, compiled once from a validated ``MeshConfiguration``: immutable,
/// shared by every event loop, replaced whole on reload.
///
/// A connection reads the snapshot that is current when it needs a decision: a TCP connection at
/// accept (and keeps its upstream for its whole life), an HTTP connection at every request.
public final class Snapshot: Sendable, AtomicReference {
    /// Grows by one with every applied configuration.
    public let generation: Int
    public let settings: MeshSettings
    /// One listener per distinct Gateway server port.
    public let listeners: [Int: ListenerPlan]
    /// Every cluster a route can reach, by name (`outbound|port|subset|fqdn`).
    public let clusters: [String: Cluster]

    public init(generation: Int, settings: MeshSettings, listeners: [Int: ListenerPlan], clusters: [String: Cluster]) {
        self.generation = generation
        self.settings = settings
        self.listeners = listeners
        self.clusters = clusters
    }
}

/// What one listening port does.
public struct ListenerPlan: Sendable {
    public let port: Int
    public let `protocol`: ServerProtocol
    /// `namespace/name` of every Gateway with a server on this port (for `match.gateways`).
    public let gatewayNames: [String]
    /// HTTP-family listeners: the route table. Empty for TCP listeners.
    public let http: HTTPRouteTable
    /// TCP listeners: the routes in order; the first that matches wins.
    public let tcp: [TCPRouteEntry]
}

/// Holds the current snapshot. One atomic store on swap; readers never block.
public final class SnapshotHolder: Sendable {
    private let current: ManagedAtomic<Snapshot>

    public init(_ snapshot: Snapshot) {
        self.current = ManagedAtomic(snapshot)
    }

    public func load() -> Snapshot {
        self.current.load(ordering: .acquiring)
    }

    public func swap(_ snapshot: Snapshot) {
        self.current.store(snapshot, ordering: .releasing)
    }
}
