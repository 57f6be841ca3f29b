#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Meshgate's log: one line per event on stderr, `TIMESTAMP LEVEL message`, each line written
/// with a single `write(2)` so lines from different threads never interleave.
public struct MeshLog: Sendable {
    public enum Level: Int, Sendable, Comparable {
        case debug = 0
        case info = 1
        case warning = 2
        case error = 3

        var name: String {
            switch self {
            case .debug: return "debug"
            case .info: return "info"
            case .warning: return "warning"
            case .error: return "error"
            }
        }

        public static func < (lhs: Level, rhs: Level) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    public var minimumLevel: Level

    public init(minimumLevel: Level = .info) {
        self.minimumLevel = minimumLevel
    }

    public func log(_ level: Level, _ message: @autoclosure () -> String) {
        guard level >= self.minimumLevel else { return }
        let line = "\(MeshLog.timestamp()) \(level.name) \(message())\n"
        var bytes = Array(line.utf8)
        _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
    }

    public func debug(_ message: @autoclosure () -> String) { self.log(.debug, message()) }
    public func info(_ message: @autoclosure () -> String) { self.log(.info, message()) }
    public func warning(_ message: @autoclosure () -> String) { self.log(.warning, message()) }
    public func error(_ message: @autoclosure () -> String) { self.log(.error, message()) }

    /// ISO-8601 UTC with milliseconds, as Envoy prints `%START_TIME%`: `2024-01-09T15:35:47.283Z`.
    public static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        let millis = Int32(now.tv_nsec / 1_000_000)
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(millis, 3))Z"
    }
}

/// Wall-clock time for records (access log `%START_TIME%`, span timestamps); durations use the
/// event loop's monotonic clock instead.
public enum WallClock {
    /// Microseconds since the Unix epoch.
    public static func nowMicros() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec / 1000)
    }
}
