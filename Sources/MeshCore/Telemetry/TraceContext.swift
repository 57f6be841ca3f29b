import NIOHTTP1

/// A trace id: 128 bits (32 hex digits), or 64 bits (16) when a client started the trace with one.
public struct TraceID: Sendable, Hashable {
    public var high: UInt64
    public var low: UInt64
    /// Written with 32 hex digits (else 16: `high` is 0).
    public var is128Bit: Bool

    public init(high: UInt64, low: UInt64, is128Bit: Bool = true) {
        self.high = high
        self.low = low
        self.is128Bit = is128Bit
    }

    /// As B3 and Zipkin write it: 32 hex digits, or 16 for a 64-bit id.
    public var hex: String { self.is128Bit ? TraceHex.hex(self.high) + TraceHex.hex(self.low) : TraceHex.hex(self.low) }

    /// As `traceparent` writes it: always 32 hex digits (a 64-bit id left-padded with zeros).
    public var w3cHex: String { TraceHex.hex(self.high) + TraceHex.hex(self.low) }
}

/// The gateway's span as it propagates: its trace, its own id, its parent (the client's span) and
/// the sampling decision.
public struct TraceContext: Sendable, Hashable {
    public var traceID: TraceID
    public var spanID: UInt64
    public var parentSpanID: UInt64?
    public var sampled: Bool
    /// B3 debug (`x-b3-flags: 1`, or `d` in `b3`): always sampled, and said so downstream.
    public var debug: Bool

    public init(traceID: TraceID, spanID: UInt64, parentSpanID: UInt64?, sampled: Bool, debug: Bool = false) {
        self.traceID = traceID
        self.spanID = spanID
        self.parentSpanID = parentSpanID
        self.sampled = sampled
        self.debug = debug
    }
}

/// What a client's request said about tracing.
public struct IncomingTrace: Sendable, Hashable {
    public enum Source: Sendable, Hashable {
        case b3Multi
        case b3Single
        case w3c
    }

    /// The client's trace and span, when a valid context came in.
    public var traceID: TraceID?
    public var spanID: UInt64?
    /// Where the context came from.
    public var source: Source?
    /// The client's sampling decision: nil when it made none.
    public var sampled: Bool?
    public var debug = false
    /// The client sent a `b3` single header: the upstream gets one too.
    public var sentSingleB3 = false
    /// Any trace header came in (the upstream copy is then replaced, not added to).
    public var sawTraceHeaders = false

    public init() {}
}

/// B3 (multi-header and single `b3`) and W3C `traceparent` propagation. Pure: randomness is passed in.
///
/// - Extraction prefers B3 multi, then `b3`, then `traceparent`; an invalid header is ignored (a
///   new trace starts) rather than disabling tracing as Envoy does, so a client's bad header
///   never costs a trace. A sampling decision without ids (`x-b3-sampled: 0` alone, `b3: 0`) is kept.
/// - The gateway's span joins the client's trace (same trace id, a new span id, the client's span
///   as parent, the client's sampling decision) or starts a new 128-bit trace sampled at the
///   configured percentage. This is Envoy's behaviour for an egress span (a gateway's, kind `CLIENT`),
///   which never shares the client's span id.
/// - Injection writes B3 multi (`x-b3-traceid`, `x-b3-spanid` = the gateway's span,
///   `x-b3-parentspanid` = the client's span when there is one, `x-b3-sampled`, `x-b3-flags: 1`
///   when debugging) and `traceparent` (`00-<trace>-<gateway span>-<01|00>`), so apps with either
///   propagator continue the same trace under the gateway's span; `b3` too when the client sent
///   that form. `tracestate` passes through untouched.
public enum TracePropagation {
    static let headerNames = ["x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "b3", "traceparent"]

    public static func extract(_ headers: HTTPHeaders) -> IncomingTrace {
        var incoming = IncomingTrace()
        var traceIDText: String?
        var spanIDText: String?
        var sampledText: String?
        var flagsText: String?
        var singleText: String?
        var parentText: String?
        for (name, value) in headers {
            let count = name.utf8.count
            guard count == 2 || count >= 10, count <= 17 else { continue }
            if name.asciiCaseInsensitiveEquals("x-b3-traceid") {
                traceIDText = traceIDText ?? value
            } else if name.asciiCaseInsensitiveEquals("x-b3-spanid") {
                spanIDText = spanIDText ?? value
            } else if name.asciiCaseInsensitiveEquals("x-b3-sampled") {
                sampledText = sampledText ?? value
            } else if name.asciiCaseInsensitiveEquals("x-b3-flags") {
                flagsText = flagsText ?? value
            } else if name.asciiCaseInsensitiveEquals("b3") {
                singleText = singleText ?? value
            } else if name.asciiCaseInsensitiveEquals("traceparent") {
                parentText = parentText ?? value
            } else if !name.asciiCaseInsensitiveEquals("x-b3-parentspanid") {
                continue
            }
            incoming.sawTraceHeaders = true
        }
        guard incoming.sawTraceHeaders else { return incoming }
        incoming.sentSingleB3 = singleText != nil

        if let traceIDText, let spanIDText, let trace = Self.parseTraceID(traceIDText), let span = Self.parseSpanID(spanIDText) {
            incoming.traceID = trace
            incoming.spanID = span
            incoming.source = .b3Multi
        }
        if let sampledText { incoming.sampled = Self.parseB3Sampled(sampledText) }
        if flagsText == "1" { incoming.debug = true }
        if let singleText, incoming.traceID == nil || incoming.sampled == nil {
            let single = Self.parseSingleB3(singleText)
            if incoming.traceID == nil, let trace = single.traceID, let span = single.spanID {
                incoming.traceID = trace
                incoming.spanID = span
                incoming.source = .b3Single
            }
            if incoming.sampled == nil { incoming.sampled = single.sampled }
            incoming.debug = incoming.debug || single.debug
        }
        if incoming.traceID == nil, let parentText, let parent = Self.parseTraceparent(parentText) {
            incoming.traceID = parent.traceID
            incoming.spanID = parent.spanID
            incoming.source = .w3c
            if incoming.sampled == nil { incoming.sampled = parent.sampled }
        }
        if incoming.debug { incoming.sampled = true }
        return incoming
    }

    /// The gateway's span for this request. `random` gives well-mixed 64-bit values (ids and the
    /// sampling draw).
    public static func start(_ incoming: IncomingTrace, samplingPercentage: Double, random: () -> UInt64) -> TraceContext {
        let spanID = Self.nonZero(random)
        let sampled = incoming.sampled ?? Self.shouldSample(percentage: samplingPercentage, draw: random())
        if let traceID = incoming.traceID {
            return TraceContext(traceID: traceID, spanID: spanID, parentSpanID: incoming.spanID, sampled: sampled, debug: incoming.debug)
        }
        let traceID = TraceID(high: random(), low: Self.nonZero(random))
        return TraceContext(traceID: traceID, spanID: spanID, parentSpanID: nil, sampled: sampled, debug: incoming.debug)
    }

    /// `percentage` (0...100, steps of 0.01 as Istio's) of draws are true.
    public static func shouldSample(percentage: Double, draw: UInt64) -> Bool {
        guard percentage > 0 else { return false }
        guard percentage < 100 else { return true }
        return draw % 10_000 < UInt64((percentage * 100).rounded())
    }

    /// Writes the gateway's context into the upstream request, replacing any trace headers the
    /// client sent (when `replacing`; `tracestate` stays).
    public static func inject(_ context: TraceContext, singleB3: Bool, replacing: Bool, into headers: inout HTTPHeaders) {
        if replacing {
            for name in Self.headerNames { headers.remove(name: name) }
        }
        let trace = context.traceID.hex
        let span = TraceHex.hex(context.spanID)
        let parent = context.parentSpanID.map(TraceHex.hex)
        headers.add(name: "x-b3-traceid", value: trace)
        headers.add(name: "x-b3-spanid", value: span)
        if let parent { headers.add(name: "x-b3-parentspanid", value: parent) }
        headers.add(name: "x-b3-sampled", value: context.sampled ? "1" : "0")
        if context.debug { headers.add(name: "x-b3-flags", value: "1") }
        if singleB3 {
            let state = context.debug ? "d" : context.sampled ? "1" : "0"
            headers.add(name: "b3", value: "\(trace)-\(span)-\(state)" + (parent.map { "-\($0)" } ?? ""))
        }
        headers.add(name: "traceparent", value: "00-\(context.traceID.w3cHex)-\(span)-\(context.sampled ? "01" : "00")")
    }

    // MARK: Parsing

    /// 32 or 16 hex digits, not all zero.
    static func parseTraceID(_ text: String) -> TraceID? {
        let utf8 = text.utf8
        switch utf8.count {
        case 16:
            guard let low = TraceHex.parse(utf8), low != 0 else { return nil }
            return TraceID(high: 0, low: low, is128Bit: false)
        case 32:
            guard let high = TraceHex.parse(utf8.prefix(16)), let low = TraceHex.parse(utf8.suffix(16)),
                  high != 0 || low != 0
            else { return nil }
            return TraceID(high: high, low: low)
        default:
            return nil
        }
    }

    /// 16 hex digits, not all zero.
    static func parseSpanID<S: Collection>(_ text: S) -> UInt64? where S.Element == UInt8 {
        guard text.count == 16, let value = TraceHex.parse(text), value != 0 else { return nil }
        return value
    }

    static func parseSpanID(_ text: String) -> UInt64? { Self.parseSpanID(text.utf8) }

    /// `1`/`true` → sampled, `0`/`false` → not; anything else says nothing.
    static func parseB3Sampled(_ text: String) -> Bool? {
        switch text {
        case "1", "true": return true
        case "0", "false": return false
        default: return nil
        }
    }

    /// `b3: {trace}-{span}[-{1|0|d}[-{parent}]]`, or the sampling state alone.
    static func parseSingleB3(_ text: String) -> (traceID: TraceID?, spanID: UInt64?, sampled: Bool?, debug: Bool) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        func state(_ part: Substring) -> (Bool?, Bool) {
            switch part {
            case "d": return (true, true)
            case "1": return (true, false)
            case "0": return (false, false)
            default: return (nil, false)
            }
        }
        if parts.count == 1 {
            let (sampled, debug) = state(parts[0])
            return (nil, nil, sampled, debug)
        }
        guard (2...4).contains(parts.count), let trace = Self.parseTraceID(String(parts[0])),
              let span = Self.parseSpanID(parts[1].utf8)
        else { return (nil, nil, nil, false) }
        let (sampled, debug) = parts.count >= 3 ? state(parts[2]) : (nil, false)
        return (trace, span, sampled, debug)
    }

    /// `traceparent: {version}-{32 hex trace}-{16 hex parent}-{2 hex flags}` (W3C Trace Context):
    /// version `ff` is invalid; a later version may append fields after a `-`.
    static func parseTraceparent(_ text: String) -> (traceID: TraceID, spanID: UInt64, sampled: Bool)? {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count >= 4, parts[0].utf8.count == 2, let version = TraceHex.parse(parts[0].utf8), version != 0xFF,
              version != 0 || parts.count == 4,
              parts[1].utf8.count == 32, let trace = Self.parseTraceID(String(parts[1])),
              let span = Self.parseSpanID(parts[2].utf8),
              parts[3].utf8.count == 2, let flags = TraceHex.parse(parts[3].utf8)
        else { return nil }
        return (trace, span, flags & 1 == 1)
    }

    private static func nonZero(_ random: () -> UInt64) -> UInt64 {
        let value = random()
        return value == 0 ? 1 : value
    }
}

/// Lower-case hex of 64-bit ids, and its parser.
enum TraceHex {
    private static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    /// 16 lower-case hex digits.
    static func hex(_ value: UInt64) -> String {
        String(unsafeUninitializedCapacity: 16) { buffer in
            for index in 0..<16 {
                buffer[index] = Self.digits[Int((value >> UInt64(60 - 4 * index)) & 0xF)]
            }
            return 16
        }
    }

    /// 1 to 16 hex digits (either case) → their value; nil for anything else.
    static func parse<S: Collection>(_ text: S) -> UInt64? where S.Element == UInt8 {
        guard !text.isEmpty, text.count <= 16 else { return nil }
        var value: UInt64 = 0
        for byte in text {
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: return nil
            }
            value = value << 4 | UInt64(digit)
        }
        return value
    }
}
