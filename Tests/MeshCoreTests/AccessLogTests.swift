import Foundation
import MeshConfig
import Testing

@testable import MeshCore

/// The access log: Istio's TEXT format byte for byte (golden lines from the Istio tasks), the JSON
/// encoding, and the background writer (drops counted, never blocking the caller).
@Suite struct AccessLogTests {
    /// `[2024-01-09T15:35:47.283Z] "GET /politics HTTP/1.1" 301 …` from Istio's egress-gateway task.
    static func egressHTTPRecord() -> HTTPExchangeRecord {
        var record = HTTPExchangeRecord()
        record.startMicros = 1_704_814_547_283_000
        record.durationMicros = 2_700
        record.method = "GET"
        record.path = "/politics"
        record.protocolName = "HTTP/1.1"
        record.responseCode = 301
        record.responseFlags = "-"
        record.responseCodeDetails = "via_upstream"
        record.bytesReceived = 0
        record.bytesSent = 0
        record.upstreamServiceTimeMillis = 2
        record.xForwardedFor = "172.30.239.55"
        record.userAgent = "curl/7.87.0-DEV"
        record.requestID = "6c01d65f-..."
        record.authority = "edition.cnn.com"
        record.upstreamHost = "151.101.195.5:80"
        record.upstreamCluster = "outbound|80||edition.cnn.com"
        record.upstreamLocalAddress = "172.30.239.16:55636"
        record.downstreamLocalAddress = "172.30.239.16:80"
        record.downstreamRemoteAddress = "172.30.239.55:59224"
        record.routeName = "default.forward-cnn-from-egress-gateway.0"
        return record
    }

    /// `[2024-01-11T21:09:42.835Z] "- - -" 0 - - - "-" 839 2504306 231 …` from Istio's egress-control task.
    static func egressTCPRecord() -> TCPConnectionRecord {
        var record = TCPConnectionRecord()
        record.startMicros = 1_705_007_382_835_000
        record.durationMicros = 231_999
        record.bytesReceived = 839
        record.bytesSent = 2_504_306
        record.upstreamHost = "151.101.195.5:443"
        record.upstreamCluster = "outbound|443||edition.cnn.com"
        record.upstreamLocalAddress = "172.30.239.8:34470"
        record.downstreamLocalAddress = "172.30.239.8:443"
        record.downstreamRemoteAddress = "172.30.239.15:43956"
        record.requestedServerName = "edition.cnn.com"
        record.routeName = "default.cnn.0"  // not logged: Envoy's %ROUTE_NAME% is an HTTP route's
        return record
    }

    @Test func httpLineMatchesIstiosGoldenLine() {
        let line = AccessLogFormat.text(AccessLogEntry(Self.egressHTTPRecord()))
        #expect(line == """
            [2024-01-09T15:35:47.283Z] "GET /politics HTTP/1.1" 301 - via_upstream - "-" 0 0 2 2 "172.30.239.55" \
            "curl/7.87.0-DEV" "6c01d65f-..." "edition.cnn.com" "151.101.195.5:80" outbound|80||edition.cnn.com \
            172.30.239.16:55636 172.30.239.16:80 172.30.239.55:59224 - default.forward-cnn-from-egress-gateway.0

            """)
    }

    @Test func tcpLineMatchesIstiosGoldenLine() {
        let line = AccessLogFormat.text(AccessLogEntry(Self.egressTCPRecord()))
        #expect(line == """
            [2024-01-11T21:09:42.835Z] "- - -" 0 - - - "-" 839 2504306 231 - "-" "-" "-" "-" "151.101.195.5:443" \
            outbound|443||edition.cnn.com 172.30.239.8:34470 172.30.239.8:443 172.30.239.15:43956 edition.cnn.com -

            """)
    }

    @Test func unsetAndEmptyValuesPrintAsDashes() {
        var record = HTTPExchangeRecord()
        record.startMicros = 0
        record.userAgent = ""
        record.responseFlags = ""
        let line = AccessLogFormat.text(AccessLogEntry(record))
        #expect(line == "[1970-01-01T00:00:00.000Z] \"- - HTTP/1.1\" 0 - - - \"-\" 0 0 0 - \"-\" \"-\" \"-\" \"-\" \"-\" - - - - - -\n")
    }

    @Test(arguments: [
        (Int64(0), "1970-01-01T00:00:00.000Z"),
        (-1_000, "1969-12-31T23:59:59.999Z"),
        (951_782_400_000_000, "2000-02-29T00:00:00.000Z"),
        (1_704_814_547_283_999, "2024-01-09T15:35:47.283Z"),
        (253_402_300_799_999_000, "9999-12-31T23:59:59.999Z"),
    ])
    func startTimeIsISO8601UTCWithMilliseconds(micros: Int64, text: String) {
        #expect(TelemetryText.iso8601(micros: micros) == text)
    }

    @Test func jsonHasEnvoysKeysInOrderWithTypedValuesAndNulls() throws {
        let line = AccessLogFormat.json(AccessLogEntry(Self.egressHTTPRecord()))
        #expect(line == """
            {"start_time":"2024-01-09T15:35:47.283Z","method":"GET","path":"/politics","protocol":"HTTP/1.1",\
            "response_code":301,"response_flags":"-","response_code_details":"via_upstream",\
            "connection_termination_details":null,"upstream_transport_failure_reason":null,"bytes_received":0,\
            "bytes_sent":0,"duration":2,"upstream_service_time":"2","x_forwarded_for":"172.30.239.55",\
            "user_agent":"curl/7.87.0-DEV","request_id":"6c01d65f-...","authority":"edition.cnn.com",\
            "upstream_host":"151.101.195.5:80","upstream_cluster":"outbound|80||edition.cnn.com",\
            "upstream_local_address":"172.30.239.16:55636","downstream_local_address":"172.30.239.16:80",\
            "downstream_remote_address":"172.30.239.55:59224","requested_server_name":null,\
            "route_name":"default.forward-cnn-from-egress-gateway.0"}

            """)
        let object = try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object.count == 24)
    }

    @Test func jsonOfATCPConnection() throws {
        let line = AccessLogFormat.line(AccessLogEntry(Self.egressTCPRecord()), encoding: .json)
        let object = try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["method"] is NSNull)
        #expect(object["protocol"] is NSNull)
        #expect(object["response_code"] as? Int == 0)
        #expect(object["response_flags"] as? String == "-")
        #expect(object["bytes_received"] as? Int == 839)
        #expect(object["bytes_sent"] as? Int == 2_504_306)
        #expect(object["duration"] as? Int == 231)
        #expect(object["requested_server_name"] as? String == "edition.cnn.com")
    }

    @Test func jsonEscapesWhatAClientSent() throws {
        var record = HTTPExchangeRecord()
        record.userAgent = "evil\"agent\\\n\u{01}é"
        let line = AccessLogFormat.json(AccessLogEntry(record))
        #expect(line.contains(#""user_agent":"evil\"agent\\\n\u0001é""#))
        let object = try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["user_agent"] as? String == record.userAgent)
    }

    // MARK: The writer

    private static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("meshgate-access-log-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test func linesReachTheFileInOrder() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("access.log").path
        let logger = AccessLogger(path: path, encoding: .text, log: MeshLog(minimumLevel: .error))
        var record = Self.egressHTTPRecord()
        for index in 0..<100 {
            record.path = "/\(index)"
            logger.write(record)
        }
        logger.write(Self.egressTCPRecord())
        try waitUntil { logger.written == 101 }
        logger.shutdown()
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 102)
        #expect(lines[0].contains("\"GET /0 HTTP/1.1\""))
        #expect(lines[99].contains("\"GET /99 HTTP/1.1\""))
        #expect(lines[100].contains("\"- - -\" 0"))
        #expect(lines[101].isEmpty)
        #expect(logger.dropped == 0)
    }

    @Test func aFailingFileDropsAndCountsLines() throws {
        // /dev/full fails every write with ENOSPC, as a full disk does.
        let logger = AccessLogger(path: "/dev/full", encoding: .json, log: MeshLog(minimumLevel: .error))
        for _ in 0..<20 { logger.write(Self.egressTCPRecord()) }
        try waitUntil { logger.dropped == 20 }
        #expect(logger.written == 0)
        logger.shutdown()
    }

    @Test func anUnopenablePathDropsAndCountsLines() throws {
        let logger = AccessLogger(path: "/nonexistent-meshgate-dir/access.log", encoding: .text, log: MeshLog(minimumLevel: .error))
        for _ in 0..<5 { logger.write(Self.egressHTTPRecord()) }
        try waitUntil { logger.dropped == 5 }
        logger.shutdown()
    }

    /// A FIFO nobody reads holds the writer in open(2): write(_:) still returns at once, and what
    /// the buffer cannot hold is dropped and counted.
    @Test func aStuckWriterNeverBlocksTheCallerAndAFullBufferDrops() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("fifo").path
        #expect(mkfifo(path, 0o600) == 0)
        let logger = AccessLogger(path: path, encoding: .text, log: MeshLog(minimumLevel: .error), capacity: 10)
        logger.write(Self.egressTCPRecord())
        try waitUntil { logger.pending == 0 }  // the writer took it and waits in open(2)
        for _ in 0..<15 { logger.write(Self.egressTCPRecord()) }
        #expect(logger.pending == 10)
        #expect(logger.dropped == 5)
        // A reader lets the writer go on: the 11 lines it holds arrive.
        let reader = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        var received = Data()
        try waitUntil {
            received += reader.availableData
            return received.count(where: { $0 == UInt8(ascii: "\n") }) == 11
        }
        logger.shutdown()
        try reader.close()
        #expect(logger.dropped == 5)
        #expect(logger.written == 11)
    }
}

/// Polls `condition` until it holds, failing after `timeout` seconds (a bound, never an expectation).
func waitUntil(timeout: Double = 20, _ condition: () throws -> Bool, sourceLocation: Testing.SourceLocation = #_sourceLocation) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while try !condition() {
        guard Date() < deadline else {
            Issue.record("condition not met within \(timeout)s", sourceLocation: sourceLocation)
            throw CancellationError()
        }
        Thread.sleep(forTimeInterval: 0.01)
    }
}
