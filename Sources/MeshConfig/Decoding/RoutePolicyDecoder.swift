import Foundation

/// An http route's policies beyond where it goes: `fault` and `retries`. Every value Istio would
/// reject is an error at its line; what Istio accepts but Meshgate does not act on is a warning.
enum RoutePolicyDecoder {
    static let fault = Schema(["delay", "abort"])
    static let delay = Schema(["fixedDelay", "percentage", "percent"], unsupported: ["exponentialDelay"])
    static let abort = Schema(["httpStatus", "grpcStatus", "percentage"], unsupported: ["http2Error"])
    static let percent = Schema(["value"])
    static let retries = Schema(
        ["attempts", "perTryTimeout", "retryOn", "retryIgnorePreviousHosts", "backoff"], unsupported: ["retryRemoteLocalities"]
    )

    /// Envoy's `retry_on` values Istio accepts and Meshgate does not act on.
    static let unsupportedRetryOn: Set = ["envoy-ratelimited", "retriable-headers", "reset-before-request", "http3-post-connect-failure"]

    static func fault(_ fault: MapReader) -> HTTPFaultInjection? {
        let delay = fault.map("delay", Self.delay).flatMap(Self.delay)
        let abort = fault.map("abort", Self.abort).flatMap(Self.abort)
        if fault["delay"] == nil && fault["abort"] == nil {
            fault.field.error("a fault needs delay or abort")
        }
        guard delay != nil || abort != nil else { return nil }
        return HTTPFaultInjection(delay: delay, abort: abort)
    }

    private static func delay(_ delay: MapReader) -> HTTPFaultInjection.Delay? {
        let percentage = Self.percentage(delay, what: "delayed", legacy: "percent")
        guard let fixed = delay.required("fixedDelay")?.duration() else { return nil }
        if fixed < .milliseconds(1) {
            delay["fixedDelay"]?.error("fault.delay.fixedDelay must be at least 1ms")
            return nil
        }
        return HTTPFaultInjection.Delay(fixedDelay: fixed, percentage: percentage)
    }

    private static func abort(_ abort: MapReader) -> HTTPFaultInjection.Abort? {
        let percentage = Self.percentage(abort, what: "aborted", legacy: nil)
        let status: HTTPFaultInjection.AbortStatus?
        switch (abort["httpStatus"], abort["grpcStatus"]) {
        case (let http?, nil):
            status = http.int().flatMap { code in
                guard (200...599).contains(code) else {
                    http.error("fault.abort.httpStatus must be an HTTP status, 200..599, not \(code)")
                    return nil
                }
                return .http(code)
            }
        case (nil, let grpc?):
            status = grpc.string().flatMap { name in
                guard let code = HTTPFaultInjection.grpcStatusCodes[name] else {
                    let names = HTTPFaultInjection.grpcStatusCodes.sorted { $0.value < $1.value }.map(\.key)
                    grpc.error("unknown gRPC status \"\(name)\"; expected one of \(names.joined(separator: ", "))")
                    return nil
                }
                return .grpc(code: code, name: name)
            }
        case (.some, .some):
            abort.field.error("a fault abort has either httpStatus or grpcStatus, not both")
            status = nil
        case (nil, nil):
            if abort["http2Error"] == nil { abort.field.error("a fault abort needs httpStatus or grpcStatus") }
            status = nil
        }
        guard let status else { return nil }
        return HTTPFaultInjection.Abort(status: status, percentage: percentage)
    }

    /// `percentage.value` (0…100), or the deprecated integer `percent`; unset is 0, as in Istio.
    private static func percentage(_ map: MapReader, what: String, legacy: String?) -> Double {
        if let value = map.map("percentage", Self.percent).flatMap({ $0.required("value")?.number(in: 0...100) }) {
            return value
        }
        if let legacy, let value = map.int(legacy, in: 0...100) {
            return Double(value)
        }
        if map["percentage"] == nil && (legacy.map { map[$0] == nil } ?? true) {
            map.field.warning(
                "no percentage: as in Istio, no request is \(what); set percentage.value (100 for every request)"
            )
        }
        return 0
    }

    /// `retries`, over Istio's defaults: `attempts` 0 (or absent) disables retrying; `retryOn`
    /// replaces the default conditions, a bare number adding a retriable status code.
    static func retries(_ retries: MapReader, routeTimeout: Duration?) -> HTTPRetryPolicy {
        let attempts = retries.int("attempts") ?? 0
        if attempts < 0 {
            retries["attempts"]?.error("retries.attempts must be 0 (no retries) or more, not \(attempts)")
        }
        guard attempts > 0 else { return .disabled }
        var policy = HTTPRetryPolicy.default
        policy.attempts = attempts
        if let field = retries["retryOn"], let text = field.string() {
            var conditions: HTTPRetryPolicy.Conditions = []
            var codes: Set<Int> = []
            for token in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !token.isEmpty {
                if let condition = HTTPRetryPolicy.Conditions.names.first(where: { $0.key == token })?.value {
                    conditions.insert(condition)
                } else if let code = Int(token), (100...599).contains(code) {
                    codes.insert(code)
                } else if Self.unsupportedRetryOn.contains(token) {
                    field.warning("retryOn \"\(token)\" is not supported yet; ignored")
                } else {
                    let known = HTTPRetryPolicy.Conditions.names.map(\.key) + Self.unsupportedRetryOn.sorted()
                    field.error("\"\(token)\" is not a retryOn condition; expected HTTP status codes or \(known.joined(separator: ", "))")
                }
            }
            if !codes.isEmpty { conditions.insert(.retriableStatusCodes) }
            policy.conditions = conditions
            policy.retriableStatusCodes = codes
            policy.explicitRetryOn = true
        }
        if let field = retries["perTryTimeout"], let perTry = field.duration() {
            if perTry < .milliseconds(1) {
                field.error("retries.perTryTimeout must be at least 1ms")
            } else {
                policy.perTryTimeout = perTry
                if let routeTimeout, perTry > routeTimeout {
                    field.warning(
                        "perTryTimeout \(field.string() ?? "") is longer than the route's timeout: the route's timeout ends the request first"
                    )
                }
            }
        }
        if let field = retries["backoff"], let backoff = field.duration() {
            if backoff < .milliseconds(1) {
                field.error("retries.backoff must be at least 1ms")
            } else {
                policy.backoff = backoff
            }
        }
        if retries.bool("retryIgnorePreviousHosts") == false {
            policy.avoidPreviousHosts = false
        }
        return policy
    }
}

extension VirtualServiceDecoder {
    static let mirrorPolicy = Schema(["destination", "percentage"])

    /// `mirror` with `mirrorPercentage` (or the deprecated `mirrorPercent`), and `mirrors[]`: each a
    /// destination and the share of requests copied to it, 100% when unset (as in Istio).
    mutating func mirrors(_ route: MapReader) -> [HTTPMirror] {
        var mirrors: [HTTPMirror] = []
        if route["mirror"] != nil && route["mirrors"] != nil {
            route.field.error("an http route has either mirror or mirrors, not both")
        }
        let legacy = ["mirrorPercent", "mirror_percent"].first { route[$0] != nil }
        if let destination = route.map("mirror", Self.destination).flatMap({ self.destination($0) }) {
            var percentage = 100.0
            if let field = route.map("mirrorPercentage", RoutePolicyDecoder.percent) {
                percentage = field.required("value")?.number(in: 0...100) ?? 100
            } else if let legacy, let value = route.int(legacy, in: 0...100) {
                percentage = Double(value)
            }
            mirrors.append(HTTPMirror(destination: destination, percentage: percentage))
        } else if let key = route["mirrorPercentage"] != nil ? "mirrorPercentage" : legacy, route["mirror"] == nil {
            route[key]?.warning("\(key) without mirror mirrors nothing")
        }
        for item in route.maps("mirrors", Self.mirrorPolicy) ?? [] {
            guard let destination = item.required("destination")?.map(Self.destination).flatMap({ self.destination($0) }) else { continue }
            let percentage = item.map("percentage", RoutePolicyDecoder.percent).map { $0.required("value")?.number(in: 0...100) ?? 100 } ?? 100
            mirrors.append(HTTPMirror(destination: destination, percentage: percentage))
        }
        return mirrors
    }
}

extension RoutePolicyDecoder {
    static let cors = Schema(
        [
            "allowOrigins", "allowOrigin", "allowMethods", "allowHeaders", "exposeHeaders", "maxAge", "allowCredentials",
            "unmatchedPreflights",
        ]
    )

    /// `corsPolicy`: origins as StringMatches (or the deprecated exact `allowOrigin` strings).
    static func cors(_ cors: MapReader) -> CORSPolicy {
        var origins: [StringMatch] = []
        if let list = cors["allowOrigins"]?.list() {
            origins = list.compactMap { StringMatchDecoder.required($0) }
        }
        if let field = cors["allowOrigin"] {
            field.warning("allowOrigin is deprecated; use allowOrigins: [{exact: ...}] (read as exact matches)")
            origins += field.strings()?.map { StringMatch.exact($0.value) } ?? []
        }
        if cors["allowOrigins"] == nil && cors["allowOrigin"] == nil {
            cors.field.warning("a corsPolicy without allowOrigins allows no origin: no response gets CORS headers")
        }
        func names(_ key: String) -> [String] {
            cors[key]?.strings()?.compactMap { value, item in
                guard !value.isEmpty, !value.contains(where: { $0 == "\r" || $0 == "\n" }) else {
                    item.error("\(key) entries must be non-empty header values on one line")
                    return nil
                }
                return value
            } ?? []
        }
        var maxAge: Duration?
        if let field = cors["maxAge"], let age = field.duration() {
            if age < .seconds(1) && age != .zero { field.warning("maxAge is sent in whole seconds; \(field.string() ?? "") rounds to 0") }
            maxAge = age
        }
        return CORSPolicy(
            allowOrigins: origins, allowMethods: names("allowMethods"), allowHeaders: names("allowHeaders"),
            exposeHeaders: names("exposeHeaders"), maxAge: maxAge, allowCredentials: cors.bool("allowCredentials") ?? false,
            unmatchedPreflights: cors["unmatchedPreflights"]?.oneOf(
                ["UNSPECIFIED": CORSPolicy.UnmatchedPreflights.forward, "FORWARD": .forward, "IGNORE": .ignore]
            ) ?? .forward
        )
    }
}
