import MeshConfig
import NIOHTTP1

/// What a policy can ask about one request or connection. The HTTP fields are nil on a TCP
/// connection; the identity fields are nil when nothing proved them. A class: every rule's check
/// shares it.
final class AuthorizationFacts {
    /// The peer's mTLS identity, `cluster.local/ns/NS/sa/SA` (no scheme).
    let principal: String?
    /// The connection's peer address (4 or 16 bytes).
    let sourceIP: IPValue?
    /// The original client's address (``RemoteAddress``); the peer's without trusted proxies.
    let remoteIP: IPValue?
    let destinationIP: IPValue?
    /// The workload port: the listener's at a gateway, the app's at a sidecar.
    let destinationPort: Int
    /// The TLS server name the client sent.
    let serverName: String?
    /// The HTTP request; nil for a TCP connection.
    let request: Request?
    /// The verified JWT; nil when the request carried none.
    let auth: RequestAuth?
    /// The verified JWT's `iss/sub` (read by many rules: kept at hand).
    let requestPrincipal: String?

    /// A class, so reading it in every rule copies a reference, not five.
    final class Request {
        /// Lower-case, without `:port`.
        let host: Substring
        let authority: String
        let method: String
        /// Without the query.
        let path: Substring
        let headers: HTTPHeaders

        init(host: Substring, authority: String, method: String, path: Substring, headers: HTTPHeaders) {
            self.host = host
            self.authority = authority
            self.method = method
            self.path = path
            self.headers = headers
        }
    }

    /// An HTTP request, not a TCP connection.
    var isHTTP: Bool { self.request != nil }

    init(
        principal: String? = nil, sourceIP: [UInt8]? = nil, remoteIP: [UInt8]? = nil, destinationIP: [UInt8]? = nil,
        destinationPort: Int, serverName: String? = nil, request: Request? = nil, auth: RequestAuth? = nil
    ) {
        self.principal = principal
        self.sourceIP = IPValue(sourceIP)
        self.remoteIP = IPValue(remoteIP ?? sourceIP)
        self.destinationIP = IPValue(destinationIP)
        self.destinationPort = destinationPort
        self.serverName = serverName
        self.request = request
        self.auth = auth
        self.requestPrincipal = auth?.principal
    }

    /// The namespace in the peer's identity (`…/ns/NS/sa/…`), worked out once.
    lazy var sourceNamespace: String? = {
        guard let principal = self.principal else { return nil }
        let parts = principal.split(separator: "/", omittingEmptySubsequences: false)
        guard let index = parts.firstIndex(of: "ns"), index + 1 < parts.count else { return nil }
        return String(parts[index + 1])
    }()
    /// The authority in lower case, worked out once (hosts match case-insensitively).
    lazy var lowercasedAuthority: String? = self.request?.authority.lowercased()
}

/// A verified JWT as policies read it.
final class RequestAuth: Sendable {
    /// `iss/sub`.
    let principal: String
    let audiences: [String]
    /// `azp`.
    let presenter: String?
    let claims: [String: JSONValue]

    init(principal: String, audiences: [String], presenter: String?, claims: [String: JSONValue]) {
        self.principal = principal
        self.audiences = audiences
        self.presenter = presenter
        self.claims = claims
    }
}

/// A JSON value (JWT claims).
indirect enum JSONValue: Sendable, Hashable {
    case string(String)
    case number(Double)
    case bool(Bool)
    case array([JSONValue])
    case object([String: JSONValue])
    case null

    /// The strings a policy compares: a string itself, each string of an array, a number or boolean as written.
    var matchable: [String] {
        switch self {
        case .string(let text): return [text]
        case .bool(let flag): return [flag ? "true" : "false"]
        case .number(let number):
            return [number == number.rounded() && abs(number) < 1e15 ? String(Int64(number)) : String(number)]
        case .array(let items): return items.flatMap(\.matchable)
        case .object, .null: return []
        }
    }
}

/// The original client's address for `remoteIpBlocks` / `remote.ip`, as Envoy's
/// `xff_num_trusted_hops`: with `trusted` proxies in front, the address that many entries from the
/// right of the `x-forwarded-for` the client sent (the last trusted proxy appended the address it
/// saw); else, or when the header is shorter or malformed there, the connection's peer.
enum RemoteAddress {
    /// `forwardedFor`: the request's `x-forwarded-for` fields as received.
    static func resolve(peer: [UInt8]?, forwardedFor: [String], trusted: Int) -> [UInt8]? {
        guard trusted > 0 else { return peer }
        let entries = forwardedFor.flatMap { $0.split(separator: ",") }
        let index = entries.count - trusted
        guard index >= 0 else { return peer }
        return IPAddressParser.bytes(entries[index].trimmingCharactersInSpaces()) ?? peer
    }
}

extension Substring {
    func trimmingCharactersInSpaces() -> String {
        var text = self
        while text.first == " " || text.first == "\t" { text = text.dropFirst() }
        while text.last == " " || text.last == "\t" { text = text.dropLast() }
        return String(text)
    }
}
