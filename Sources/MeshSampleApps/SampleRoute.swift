import NIOCore
import NIOHTTP1

/// Who answers: sent back in `x-service` and `x-version` on every response.
struct SampleIdentity: Sendable, Hashable {
    var service: String
    var version: String
}

/// What the httpbin-like sample app does with one request. Pure: decided from the method and the URI.
enum SampleRoute: Hashable, Sendable {
    /// Any path without an endpoint of its own (route tests hit `/productpage`, `/reviews/1`, …).
    case hello(path: String)
    /// `/headers`: the request headers as JSON.
    case headers
    /// `/status/CODE`.
    case status(HTTPResponseStatus)
    /// `/delay/SECONDS`: 200 after that long.
    case delay(TimeAmount)
    /// `/bytes/N`: N bytes of body, streamed.
    case bytes(Int)
    /// `POST|PUT /upload`: counts the body bytes.
    case upload
    /// A known endpoint asked the wrong way: this status and a one-line reason.
    case reject(HTTPResponseStatus, String)

    /// The longest `/delay` accepted.
    static let maxDelaySeconds = 300.0

    init(method: HTTPMethod, uri: String) {
        let path = Self.path(of: uri)
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        // "/status/503" splits into ["", "status", "503"].
        let argument = parts.count == 3 ? String(parts[2]) : nil
        switch (parts.count > 1 ? parts[1] : "", argument) {
        case ("headers", nil) where parts.count == 2:
            self = .headers
        case ("status", let code?):
            if let code = Int(code), (200...599).contains(code) {
                self = .status(HTTPResponseStatus(statusCode: code))
            } else {
                self = .reject(.badRequest, "status code must be an integer in 200...599, not '\(code)'")
            }
        case ("delay", let seconds?):
            if let value = Double(seconds), value.isFinite, (0...Self.maxDelaySeconds).contains(value) {
                self = .delay(.nanoseconds(Int64((value * 1e9).rounded())))
            } else {
                self = .reject(.badRequest, "delay must be a number of seconds in 0...\(Int(Self.maxDelaySeconds)), not '\(seconds)'")
            }
        case ("bytes", let count?):
            if let count = Int(count), count >= 0 {
                self = .bytes(count)
            } else {
                self = .reject(.badRequest, "byte count must be a non-negative integer, not '\(count)'")
            }
        case ("upload", nil) where parts.count == 2:
            self = method == .POST || method == .PUT ? .upload : .reject(.methodNotAllowed, "use POST or PUT")
        default:
            self = .hello(path: path)
        }
    }

    /// The path of a request target: up to `?` or `#`; an absolute-form URI keeps only its path.
    static func path(of uri: String) -> String {
        var target = Substring(uri)
        if let end = target.firstIndex(where: { $0 == "?" || $0 == "#" }) {
            target = target[..<end]
        }
        if !target.hasPrefix("/"), let colon = target.firstIndex(of: ":"), target[colon...].hasPrefix("://") {
            let authority = target[colon...].dropFirst(3)
            target = authority.firstIndex(of: "/").map { authority[$0...] } ?? "/"
        }
        return target.isEmpty ? "/" : String(target)
    }
}

/// The bodies the sample app writes.
enum SampleBody {
    static func hello(_ identity: SampleIdentity, path: String) -> String {
        let greeting = "\(identity.service) \(identity.version): hello"
        return path == "/" ? "\(greeting)\n" : "\(greeting) from \(path)\n"
    }

    /// `{"headers": {"Name": "value", ...}}`: names as sent, in first-seen order; a name sent more than
    /// once (in any case) gets its values joined with ", ", under its first spelling.
    static func headers(_ headers: HTTPHeaders) -> String {
        var order: [String] = []
        var spelling: [String: String] = [:]
        var values: [String: [String]] = [:]
        for (name, value) in headers {
            let key = name.lowercased()
            if spelling[key] == nil {
                spelling[key] = name
                order.append(key)
            }
            values[key, default: []].append(value)
        }
        let fields = order.map { key in
            "    \(self.json(spelling[key]!)): \(self.json(values[key]!.joined(separator: ", ")))"
        }
        let inner = fields.isEmpty ? "{}" : "{\n\(fields.joined(separator: ",\n"))\n  }"
        return "{\n  \"headers\": \(inner)\n}\n"
    }

    static func upload(bytes: Int) -> String {
        "{\"bytes\": \(bytes)}\n"
    }

    /// A JSON string literal.
    static func json(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
