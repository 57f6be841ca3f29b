#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import MeshConfig
import NIOConcurrencyHelpers

/// The access log: one line per HTTP exchange and per TCP connection, in Istio's default TEXT
/// format byte for byte (or JSON with the same fields), written off the event loop through a
/// bounded buffer. A full buffer or a failing file drops lines and counts them; traffic never waits.
///
/// `write(_:)` only appends the record to the buffer (a lock held for the append). One background
/// thread formats what waits and writes it with `write(2)`, a batch at a time. `/dev/stdout` and
/// `/dev/stderr` are the process's own descriptors (under systemd they are journald sockets, which
/// cannot be opened by path); any other path is opened for appending, created if absent, and
/// reopened after a failed write, and after a reload when it was moved or removed (logrotate's
/// `postrotate systemctl reload meshgate`). Each failure episode (buffer full, file failing) logs one
/// warning, and its end one info line with the count dropped.
public final class AccessLogger: Sendable {
    /// Lines held before new ones are dropped.
    public static let defaultCapacity = 10_000
    /// Lines formatted and written per `write(2)` batch.
    static let batchSize = 512

    enum Record: Sendable {
        case http(HTTPExchangeRecord)
        case tcp(TCPConnectionRecord)

        var entry: AccessLogEntry {
            switch self {
            case .http(let record): return AccessLogEntry(record)
            case .tcp(let record): return AccessLogEntry(record)
            }
        }
    }

    public let path: String
    public let encoding: AccessLogEncoding
    private let queue: BoundedDrainQueue<Record>
    private let writtenCount = NIOLockedValueBox(0)
    private let reopenRequested = NIOLockedValueBox(false)
    private let worker: BackgroundWorker

    public init(path: String, encoding: AccessLogEncoding, log: MeshLog, capacity: Int = AccessLogger.defaultCapacity) {
        self.path = path
        self.encoding = encoding
        let queue = BoundedDrainQueue<Record>(capacity: capacity)
        self.queue = queue
        let writtenCount = self.writtenCount
        let reopenRequested = self.reopenRequested
        self.worker = BackgroundWorker(label: "meshgate.access-log") {
            var writer = AccessLogFileWriter(path: path, log: log)
            var episode = DropEpisode(what: "access log \(path)", unit: "lines", log: log)
            while let batch = queue.nextBatch(batchSize: Self.batchSize, fillWait: 0) {
                if reopenRequested.withLockedValue({ requested in defer { requested = false }; return requested }) {
                    writer.closeIfMoved()
                }
                let lines = batch.map { AccessLogFormat.line($0.entry, encoding: encoding) }
                let written = writer.writeLines(lines)
                if written < lines.count { queue.countDropped(lines.count - written) }
                if written > 0 { writtenCount.withLockedValue { $0 += written } }
                episode.update(dropped: queue.dropped, failure: writer.lastFailure)
            }
            writer.closeFile()
        }
    }

    /// Called on an event loop when an exchange ends. Never blocks.
    public func write(_ record: HTTPExchangeRecord) {
        self.queue.append(.http(record))
    }

    /// Called on an event loop when a TCP connection closes. Never blocks.
    public func write(_ record: TCPConnectionRecord) {
        self.queue.append(.tcp(record))
    }

    /// After a reload: if the file was moved or removed since it was opened, the next line goes to
    /// a new file at `path` (checked by the writer before its next batch).
    public func reopenIfMoved() {
        self.reopenRequested.withLockedValue { $0 = true }
    }

    /// Lines dropped so far (buffer full or write errors).
    public var dropped: Int { self.queue.dropped }

    /// Lines waiting in the buffer now.
    var pending: Int { self.queue.count }

    /// Lines written so far.
    public var written: Int { self.writtenCount.withLockedValue { $0 } }

    /// Writes what is buffered, then stops the writer; waits for it at most `timeoutSeconds`.
    /// Lines written after this are dropped (and counted).
    public func shutdown(timeoutSeconds: Double = 5) {
        self.queue.close()
        self.worker.join(timeoutSeconds: timeoutSeconds)
    }
}

/// The failure episodes of a drop counter: one warning when drops start, one info when a batch
/// goes through without new ones.
struct DropEpisode {
    let what: String
    let unit: String
    let log: MeshLog
    private var droppedAtStart: Int?
    private var lastSeen = 0

    init(what: String, unit: String, log: MeshLog) {
        self.what = what
        self.unit = unit
        self.log = log
    }

    /// After each batch: the drop counter now, and the failure that caused drops in this batch, if any.
    mutating func update(dropped: Int, failure: String?) {
        defer { self.lastSeen = dropped }
        if dropped > self.lastSeen {
            if self.droppedAtStart == nil {
                self.droppedAtStart = self.lastSeen
                let reason = failure ?? "the buffer is full (the writer cannot keep up)"
                self.log.warning("\(self.what): dropping \(self.unit): \(reason)")
            }
        } else if let start = self.droppedAtStart {
            self.droppedAtStart = nil
            self.log.info("\(self.what): working again after \(dropped - start) dropped \(self.unit)")
        }
    }
}

/// The file side of the access log, used by its background thread only.
struct AccessLogFileWriter {
    let path: String
    let log: MeshLog
    private var descriptor: Int32 = -1
    private var ownsDescriptor = false
    /// Why the last batch was not written in full; nil when it was.
    private(set) var lastFailure: String?

    init(path: String, log: MeshLog) {
        self.path = path
        self.log = log
    }

    /// Writes `lines` (each ending in a newline) with as few `write(2)` calls as it can; returns
    /// how many lines were written in full.
    mutating func writeLines(_ lines: [String]) -> Int {
        self.lastFailure = nil
        guard self.openIfNeeded() else { return 0 }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(lines.reduce(0) { $0 + $1.utf8.count })
        var lineEnds: [Int] = []
        lineEnds.reserveCapacity(lines.count)
        for line in lines {
            bytes.append(contentsOf: line.utf8)
            lineEnds.append(bytes.count)
        }
        let done = bytes.withUnsafeBytes { Self.writeAll(self.descriptor, $0) }
        if let error = done.error {
            self.lastFailure = "cannot write: \(Self.describe(error))"
            self.closeFile()
        }
        return lineEnds.prefix { $0 <= done.count }.count
    }

    private mutating func openIfNeeded() -> Bool {
        if self.descriptor >= 0 { return true }
        switch self.path {
        case "/dev/stdout":
            self.descriptor = 1
        case "/dev/stderr":
            self.descriptor = 2
        default:
            let descriptor = open(self.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
            guard descriptor >= 0 else {
                self.lastFailure = "cannot open: \(Self.describe(errno))"
                return false
            }
            self.descriptor = descriptor
            self.ownsDescriptor = true
        }
        return true
    }

    /// Closes the file when `path` no longer names it (rotated away or deleted); the next write
    /// opens `path` afresh.
    mutating func closeIfMoved() {
        guard self.ownsDescriptor, self.descriptor >= 0 else { return }
        var onDisk = stat()
        var opened = stat()
        let moved = stat(self.path, &onDisk) != 0 || fstat(self.descriptor, &opened) != 0
            || onDisk.st_ino != opened.st_ino || onDisk.st_dev != opened.st_dev
        if moved {
            self.closeFile()
            self.log.info("access log \(self.path): the file was moved or removed; writing to a new one")
        }
    }

    mutating func closeFile() {
        if self.ownsDescriptor, self.descriptor >= 0 { _ = close(self.descriptor) }
        self.descriptor = -1
        self.ownsDescriptor = false
    }

    /// Writes every byte (retrying short writes, `EINTR`, and `EAGAIN` on a non-blocking
    /// descriptor after a bounded wait); returns how many bytes went out and the error that stopped it.
    static func writeAll(_ descriptor: Int32, _ buffer: UnsafeRawBufferPointer) -> (count: Int, error: Int32?) {
        var offset = 0
        while offset < buffer.count {
            let result = write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
            if result > 0 {
                offset += result
                continue
            }
            let error = result == 0 ? EIO : errno
            if error == EINTR { continue }
            if error == EAGAIN || error == EWOULDBLOCK {
                var poller = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
                if poll(&poller, 1, 1000) > 0 { continue }
            }
            return (offset, error)
        }
        return (offset, nil)
    }

    static func describe(_ error: Int32) -> String {
        String(cString: strerror(error))
    }
}
