import MeshConfig

/// The access-log fields of one HTTP exchange or TCP connection, in the order of Istio's default
/// format. nil (or empty) prints as `-` in TEXT and as `null` in JSON.
public struct AccessLogEntry: Sendable, Hashable {
    public var startMicros: Int64
    public var method: String?
    public var path: String?
    public var protocolName: String?
    public var responseCode: Int
    /// `-` when there is none, in both encodings (as Envoy prints `%RESPONSE_FLAGS%`).
    public var responseFlags: String
    public var responseCodeDetails: String?
    public var connectionTerminationDetails: String?
    public var upstreamTransportFailureReason: String?
    public var bytesReceived: Int
    public var bytesSent: Int
    public var durationMillis: Int64
    public var upstreamServiceTime: String?
    public var xForwardedFor: String?
    public var userAgent: String?
    public var requestID: String?
    public var authority: String?
    public var upstreamHost: String?
    public var upstreamCluster: String?
    public var upstreamLocalAddress: String?
    public var downstreamLocalAddress: String?
    public var downstreamRemoteAddress: String?
    public var requestedServerName: String?
    public var routeName: String?

    public init(_ record: HTTPExchangeRecord) {
        self.init(common: record)
        self.method = Self.present(record.method)
        self.path = Self.present(record.path)
        self.protocolName = Self.present(record.protocolName)
        self.responseCode = record.responseCode
        self.responseCodeDetails = Self.present(record.responseCodeDetails)
        self.connectionTerminationDetails = Self.present(record.connectionTerminationDetails)
        self.upstreamTransportFailureReason = Self.present(record.upstreamTransportFailureReason)
        self.upstreamServiceTime = record.upstreamServiceTimeMillis.map { String($0) }
        self.xForwardedFor = Self.present(record.xForwardedFor)
        self.userAgent = Self.present(record.userAgent)
        self.requestID = Self.present(record.requestID)
        self.authority = Self.present(record.authority)
        self.routeName = Self.present(record.routeName)
    }

    /// A TCP connection: no method, path, protocol or headers (`"- - -" 0 - - - "-"` in TEXT), and
    /// no route name: Envoy's `%ROUTE_NAME%` is the HTTP route's, so Istio's TCP lines end in `-`
    /// (the record's `routeName` is for metrics and `explain`, not the log).
    public init(_ record: TCPConnectionRecord) {
        self.init(common: record)
    }

    /// The fields both kinds of record have.
    private init(common record: some AccessLogRecord) {
        self.startMicros = record.startMicros
        self.responseCode = 0
        self.responseFlags = record.responseFlags.isEmpty ? "-" : record.responseFlags
        self.bytesReceived = record.bytesReceived
        self.bytesSent = record.bytesSent
        self.durationMillis = record.durationMicros / 1000
        self.upstreamHost = Self.present(record.upstreamHost)
        self.upstreamCluster = Self.present(record.upstreamCluster)
        self.upstreamLocalAddress = Self.present(record.upstreamLocalAddress)
        self.downstreamLocalAddress = Self.present(record.downstreamLocalAddress)
        self.downstreamRemoteAddress = Self.present(record.downstreamRemoteAddress)
        self.requestedServerName = Self.present(record.requestedServerName)
    }

    /// nil for nil, empty and `-` (the records' own "unset").
    private static func present(_ value: String?) -> String? {
        guard let value, !value.isEmpty, value != "-" else { return nil }
        return value
    }
}

/// What HTTP and TCP records have in common, for ``AccessLogEntry``.
protocol AccessLogRecord {
    var startMicros: Int64 { get }
    var durationMicros: Int64 { get }
    var bytesReceived: Int { get }
    var bytesSent: Int { get }
    var responseFlags: String { get }
    var upstreamHost: String? { get }
    var upstreamCluster: String? { get }
    var upstreamLocalAddress: String? { get }
    var downstreamLocalAddress: String? { get }
    var downstreamRemoteAddress: String? { get }
    var requestedServerName: String? { get }
}

extension HTTPExchangeRecord: AccessLogRecord {}
extension TCPConnectionRecord: AccessLogRecord {}

/// Istio's access-log encodings. Pure functions of an ``AccessLogEntry``.
public enum AccessLogFormat {
    /// Istio's default TEXT format, byte for byte, newline included:
    ///
    /// ```
    /// [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%
    /// ```
    ///
    /// Values are printed as they are, quotes included, as Envoy does.
    public static func text(_ entry: AccessLogEntry) -> String {
        var out = ""
        out.reserveCapacity(320)
        out.append("[")
        out.append(TelemetryText.iso8601(micros: entry.startMicros))
        out.append("] \"")
        Self.append(entry.method, " ", to: &out)
        Self.append(entry.path, " ", to: &out)
        Self.append(entry.protocolName, "\" ", to: &out)
        Self.append(String(entry.responseCode), " ", to: &out)
        Self.append(entry.responseFlags, " ", to: &out)
        Self.append(entry.responseCodeDetails, " ", to: &out)
        Self.append(entry.connectionTerminationDetails, " \"", to: &out)
        Self.append(entry.upstreamTransportFailureReason, "\" ", to: &out)
        Self.append(String(entry.bytesReceived), " ", to: &out)
        Self.append(String(entry.bytesSent), " ", to: &out)
        Self.append(String(entry.durationMillis), " ", to: &out)
        Self.append(entry.upstreamServiceTime, " \"", to: &out)
        Self.append(entry.xForwardedFor, "\" \"", to: &out)
        Self.append(entry.userAgent, "\" \"", to: &out)
        Self.append(entry.requestID, "\" \"", to: &out)
        Self.append(entry.authority, "\" \"", to: &out)
        Self.append(entry.upstreamHost, "\" ", to: &out)
        Self.append(entry.upstreamCluster, " ", to: &out)
        Self.append(entry.upstreamLocalAddress, " ", to: &out)
        Self.append(entry.downstreamLocalAddress, " ", to: &out)
        Self.append(entry.downstreamRemoteAddress, " ", to: &out)
        Self.append(entry.requestedServerName, " ", to: &out)
        Self.append(entry.routeName, "\n", to: &out)
        return out
    }

    private static func append(_ value: String?, _ separator: String, to out: inout String) {
        if let value, !value.isEmpty { out.append(value) } else { out.append("-") }
        out.append(separator)
    }

    /// The same fields as one JSON object on one line, with Envoy's JSON keys in the TEXT order:
    /// numbers for `response_code`, `bytes_received`, `bytes_sent` and `duration`; strings for
    /// the rest (`upstream_service_time` too, a header value); `null` for what is unset.
    public static func json(_ entry: AccessLogEntry) -> String {
        var out = ""
        out.reserveCapacity(640)
        var first = true
        func key(_ name: String) {
            out.append(first ? "{\"" : ",\"")
            first = false
            out.append(name)
            out.append("\":")
        }
        func string(_ name: String, _ value: String?) {
            key(name)
            if let value { TelemetryText.appendJSONString(value, to: &out) } else { out.append("null") }
        }
        func number<N: BinaryInteger>(_ name: String, _ value: N) {
            key(name)
            out.append(String(value))
        }
        string("start_time", TelemetryText.iso8601(micros: entry.startMicros))
        string("method", entry.method)
        string("path", entry.path)
        string("protocol", entry.protocolName)
        number("response_code", entry.responseCode)
        string("response_flags", entry.responseFlags)
        string("response_code_details", entry.responseCodeDetails)
        string("connection_termination_details", entry.connectionTerminationDetails)
        string("upstream_transport_failure_reason", entry.upstreamTransportFailureReason)
        number("bytes_received", entry.bytesReceived)
        number("bytes_sent", entry.bytesSent)
        number("duration", entry.durationMillis)
        string("upstream_service_time", entry.upstreamServiceTime)
        string("x_forwarded_for", entry.xForwardedFor)
        string("user_agent", entry.userAgent)
        string("request_id", entry.requestID)
        string("authority", entry.authority)
        string("upstream_host", entry.upstreamHost)
        string("upstream_cluster", entry.upstreamCluster)
        string("upstream_local_address", entry.upstreamLocalAddress)
        string("downstream_local_address", entry.downstreamLocalAddress)
        string("downstream_remote_address", entry.downstreamRemoteAddress)
        string("requested_server_name", entry.requestedServerName)
        string("route_name", entry.routeName)
        out.append("}\n")
        return out
    }

    /// One line in `encoding`, newline included.
    public static func line(_ entry: AccessLogEntry, encoding: AccessLogEncoding) -> String {
        switch encoding {
        case .text: return Self.text(entry)
        case .json: return Self.json(entry)
        }
    }
}
