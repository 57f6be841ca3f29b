import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The signals the process acts on, as typed events.
enum ProcessSignal: Sendable {
    /// SIGHUP: re-read the config directory.
    case reload
    /// SIGTERM: drain (readiness 503, stop accepting, finish in-flight work), then exit 0.
    case drain
    /// SIGINT: stop now.
    case fastStop
}

/// Delivers SIGHUP / SIGTERM / SIGINT as an AsyncStream.
///
/// A self-pipe, not Dispatch signal sources: `make()` installs the handlers before it returns, so a
/// signal sent from then on is never lost. (A Dispatch source arms itself later, on Dispatch's
/// manager thread; the `SIG_IGN` it needs meanwhile dropped a SIGHUP sent in that window.) The
/// handler only writes the signal's number to the pipe (async-signal-safe); a thread reads the
/// pipe and yields the events.
enum SignalStream {
    /// The pipe's write end, set before any handler is installed.
    nonisolated(unsafe) private static var writeEnd: Int32 = -1

    private static let mapping: [(Int32, ProcessSignal)] = [(SIGHUP, .reload), (SIGTERM, .drain), (SIGINT, .fastStop)]

    static func make() -> AsyncStream<ProcessSignal> {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { fatalError("signal pipe: \(String(cString: strerror(errno)))") }
        for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        // A full pipe (signals nobody reads yet) drops the extra byte instead of blocking the handler.
        _ = fcntl(ends[1], F_SETFL, O_NONBLOCK)
        Self.writeEnd = ends[1]
        for (number, _) in Self.mapping {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { number in
                var byte = UInt8(truncatingIfNeeded: number)
                _ = write(SignalStream.writeEnd, &byte, 1)
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART
            sigaction(number, &action, nil)
        }
        let readEnd = ends[0]
        let (stream, continuation) = AsyncStream<ProcessSignal>.makeStream()
        let reader = Thread {
            var byte: UInt8 = 0
            while true {
                let count = read(readEnd, &byte, 1)
                if count == 1 {
                    if let event = Self.mapping.first(where: { $0.0 == Int32(byte) })?.1 { continuation.yield(event) }
                } else if count < 0 && errno == EINTR {
                    continue
                } else {
                    continuation.finish()
                    return
                }
            }
        }
        reader.name = "meshgate.signals"
        reader.start()
        return stream
    }
}
