import Dispatch

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

/// Delivers SIGHUP / SIGTERM / SIGINT as an AsyncStream, via Dispatch signal sources.
enum SignalStream {
    static func make() -> AsyncStream<ProcessSignal> {
        AsyncStream { continuation in
            let mapping: [(Int32, ProcessSignal)] = [(SIGHUP, .reload), (SIGTERM, .drain), (SIGINT, .fastStop)]
            let queue = DispatchQueue(label: "meshgate.signals")
            var sources: [DispatchSourceSignal] = []
            for (number, event) in mapping {
                signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
                source.setEventHandler { continuation.yield(event) }
                source.resume()
                sources.append(source)
            }
            let held = SignalSources(sources: sources)
            continuation.onTermination = { _ in held.cancelAll() }
        }
    }
}

/// The signal sources, kept alive by the stream and cancelled with it. Dispatch sources are
/// thread-safe; they only lack the annotation.
private final class SignalSources: @unchecked Sendable {
    let sources: [DispatchSourceSignal]

    init(sources: [DispatchSourceSignal]) {
        self.sources = sources
    }

    func cancelAll() {
        for source in self.sources { source.cancel() }
    }
}
