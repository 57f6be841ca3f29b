import NIOConcurrencyHelpers
import NIOCore

/// Every open downstream connection, so that drain can tell them to finish and know when they have.
///
/// Touched once at accept and once at close (never per request); the lock guards only the set.
public final class ConnectionTracker: Sendable {
    private let channels = NIOLockedValueBox<[ObjectIdentifier: Channel]>([:])

    public init() {}

    public func track(_ channel: Channel) {
        let id = ObjectIdentifier(channel)
        self.channels.withLockedValue { $0[id] = channel }
        channel.closeFuture.whenComplete { _ in
            self.channels.withLockedValue { _ = $0.removeValue(forKey: id) }
        }
    }

    public var count: Int {
        self.channels.withLockedValue { $0.count }
    }

    /// Sends ``DrainEvent`` to every connection: idle HTTP connections close now, busy ones after
    /// their response; TCP connections run on until they end or drain times out.
    public func drainAll() {
        for channel in self.channels.withLockedValue({ Array($0.values) }) {
            channel.pipeline.fireUserInboundEventTriggered(DrainEvent())
        }
    }

    /// Closes whatever is still open (drain timed out, or a fast stop).
    public func closeAll() {
        for channel in self.channels.withLockedValue({ Array($0.values) }) {
            channel.close(promise: nil)
        }
    }
}
