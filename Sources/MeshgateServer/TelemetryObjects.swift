import MeshConfig
import MeshCore
import NIOConcurrencyHelpers

/// The long-lived telemetry writers: one access logger per (file, encoding), kept across reloads
/// so a reload never reopens the log or loses buffered lines; one tracer.
final class TelemetryObjects: Sendable {
    private struct LoggerKey: Hashable {
        var path: String
        var encoding: AccessLogEncoding
    }

    private let log: MeshLog
    private let loggers = NIOLockedValueBox<[LoggerKey: AccessLogger]>([:])
    let tracer: Tracer

    init(log: MeshLog) {
        self.log = log
        self.tracer = Tracer(log: log)
    }

    /// What a snapshot compiled from `settings` uses.
    func forSettings(_ settings: MeshSettings) -> SnapshotTelemetry {
        var logger: AccessLogger?
        if !settings.accessLogFile.isEmpty {
            let key = LoggerKey(path: settings.accessLogFile, encoding: settings.accessLogEncoding)
            logger = self.loggers.withLockedValue { loggers in
                if let existing = loggers[key] { return existing }
                let created = AccessLogger(path: key.path, encoding: key.encoding, log: self.log)
                loggers[key] = created
                return created
            }
        }
        return SnapshotTelemetry(accessLogger: logger, tracer: self.tracer, sampling: settings.tracingSampling)
    }

    var accessLogDropped: Int {
        self.loggers.withLockedValue { $0.values.reduce(0) { $0 + $1.dropped } }
    }

    func shutdown() {
        for logger in self.loggers.withLockedValue({ Array($0.values) }) { logger.shutdown() }
    }
}
