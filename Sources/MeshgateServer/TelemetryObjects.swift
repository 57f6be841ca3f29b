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

    /// What a snapshot compiled from `configuration` uses: meshgate.yaml's telemetry keys with the
    /// Telemetry resources that select this instance folded over them.
    func forConfiguration(_ configuration: MeshConfiguration) -> SnapshotTelemetry {
        let effective = configuration.effectiveTelemetry()
        var logger: AccessLogger?
        if let path = effective.accessLogFile, !path.isEmpty {
            let key = LoggerKey(path: path, encoding: effective.accessLogEncoding)
            logger = self.loggers.withLockedValue { loggers in
                if let existing = loggers[key] { return existing }
                let created = AccessLogger(path: key.path, encoding: key.encoding, log: self.log)
                loggers[key] = created
                return created
            }
        }
        return SnapshotTelemetry(
            accessLogger: logger,
            tracer: self.tracer,
            sampling: effective.samplingPercentage,
            tcpReportingInterval: effective.reportingInterval,
            effective: effective
        )
    }

    /// Points the tracer at the snapshot now being served (called after every swap, so a rejected
    /// reload never changes where spans go).
    func activate(_ snapshot: Snapshot) {
        if let effective = snapshot.telemetry.effective {
            self.tracer.configure(settings: snapshot.settings, telemetry: effective)
        }
    }

    /// On reload: access logs whose file was rotated away reopen theirs.
    func reopenMovedAccessLogs() {
        for logger in self.loggers.withLockedValue({ Array($0.values) }) { logger.reopenIfMoved() }
    }

    var accessLogDropped: Int {
        self.loggers.withLockedValue { $0.values.reduce(0) { $0 + $1.dropped } }
    }

    var spansDropped: Int {
        self.tracer.droppedSpans
    }

    func shutdown() {
        for logger in self.loggers.withLockedValue({ Array($0.values) }) { logger.shutdown() }
    }
}
