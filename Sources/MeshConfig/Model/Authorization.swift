/// `kind: AuthorizationPolicy` (security.istio.io v1beta1 and v1): who may do what to a workload.
///
/// Scope by placement, as in Istio: in the root namespace with no selector, mesh-wide; in another
/// namespace with no selector, that namespace; with a selector (or a `targetRef` naming the
/// gateway), the workloads it names. Evaluation: CUSTOM, then DENY, then ALLOW; AUDIT only logs.
public struct AuthorizationPolicy: Sendable, Hashable {
    public enum Action: String, Sendable, Hashable {
        case allow = "ALLOW"
        case deny = "DENY"
        case audit = "AUDIT"
        case custom = "CUSTOM"
    }

    public var meta: ResourceMeta
    /// `selector.matchLabels`; nil = no selector.
    public var selector: [String: String]?
    /// `targetRef(s)` naming a `Gateway` by name (the gateway workload it deploys).
    public var targetGateways: [String]
    public var action: Action
    /// CUSTOM: `provider.name`, an `extensionProviders` entry of meshgate.yaml.
    public var provider: String?
    /// No rules: an ALLOW policy allows nothing (denies all in its scope); the others match nothing.
    public var rules: [AuthorizationRule]
    /// `istio.io/dry-run: "true"`: evaluated, logged and counted, never enforced.
    public var dryRun: Bool

    public init(
        meta: ResourceMeta, selector: [String: String]?, targetGateways: [String] = [], action: Action,
        provider: String? = nil, rules: [AuthorizationRule], dryRun: Bool = false
    ) {
        self.meta = meta
        self.selector = selector
        self.targetGateways = targetGateways
        self.action = action
        self.provider = provider
        self.rules = rules
        self.dryRun = dryRun
    }
}

extension AuthorizationPolicy {
    /// Whether the policy applies to the workload `name` in `namespace` with `labels`: mesh-wide (root
    /// namespace, no selector), namespace-wide (no selector), or by selector / targetRef in the
    /// workload's namespace.
    public func applies(toNamespace namespace: String, labels: [String: String], name: String, rootNamespace: String) -> Bool {
        if !self.targetGateways.isEmpty {
            return self.meta.namespace == namespace && self.targetGateways.contains(name)
        }
        guard let selector = self.selector, !selector.isEmpty else {
            return self.meta.namespace == rootNamespace || self.meta.namespace == namespace
        }
        return self.meta.namespace == namespace && selector.allSatisfy { labels[$0.key] == $0.value }
    }
}

extension MeshConfiguration {
    /// The AuthorizationPolicies this instance enforces (see ``AuthorizationPolicy/applies(toNamespace:labels:name:rootNamespace:)``).
    public var localAuthorizationPolicies: [AuthorizationPolicy] {
        let settings = self.settings
        return self.authorizationPolicies.filter {
            $0.applies(toNamespace: settings.namespace, labels: settings.labels, name: settings.workloadName, rootNamespace: settings.rootNamespace)
        }
    }
}

/// One rule: any `from` entry, any `to` entry and every `when` condition must match (an absent
/// section matches everything).
public struct AuthorizationRule: Sendable, Hashable {
    public var from: [AuthorizationSource]
    public var to: [AuthorizationOperation]
    public var when: [AuthorizationCondition]

    public init(from: [AuthorizationSource] = [], to: [AuthorizationOperation] = [], when: [AuthorizationCondition] = []) {
        self.from = from
        self.to = to
        self.when = when
    }

    /// Whether the rule reads something only an HTTP request has (on a TCP port it never matches in
    /// an ALLOW policy, and those parts are left out of a DENY one, as Istio builds them).
    public var usesHTTPOnlyFields: Bool {
        self.from.contains { !$0.requestPrincipals.isEmpty }
            || self.to.contains { !$0.hosts.isEmpty || !$0.methods.isEmpty || !$0.paths.isEmpty }
            || self.when.contains { $0.key.isHTTPOnly }
    }
}

/// Values matched one of Istio's four ways: exact, prefix (`abc*`), suffix (`*abc`), presence (`*`).
/// `values` match when any matches; `notValues` when none does; both empty: not checked.
public struct StringMatchSet: Sendable, Hashable {
    public var values: [String]
    public var notValues: [String]

    public init(_ values: [String] = [], not notValues: [String] = []) {
        self.values = values
        self.notValues = notValues
    }

    public var isEmpty: Bool { self.values.isEmpty && self.notValues.isEmpty }
}

/// CIDR blocks, with their negations.
public struct CIDRMatchSet: Sendable, Hashable {
    public var blocks: [CIDR]
    public var notBlocks: [CIDR]

    public init(_ blocks: [CIDR] = [], not notBlocks: [CIDR] = []) {
        self.blocks = blocks
        self.notBlocks = notBlocks
    }

    public var isEmpty: Bool { self.blocks.isEmpty && self.notBlocks.isEmpty }
}

/// `rules[].from[].source`: every set field must match.
public struct AuthorizationSource: Sendable, Hashable {
    /// The peer's mTLS identity (`cluster.local/ns/NS/sa/SA`).
    public var principals = StringMatchSet()
    /// The verified JWT's `iss/sub`.
    public var requestPrincipals = StringMatchSet()
    /// The namespace in the peer's identity.
    public var namespaces = StringMatchSet()
    /// The connection's peer address.
    public var ipBlocks = CIDRMatchSet()
    /// The original client (from `x-forwarded-for` under `numTrustedProxies`).
    public var remoteIPBlocks = CIDRMatchSet()

    public init() {}
}

/// `rules[].to[].operation`: every set field must match.
public struct AuthorizationOperation: Sendable, Hashable {
    /// The request's host (case-insensitive; with or without its port).
    public var hosts = StringMatchSet()
    public var ports: [Int] = []
    public var notPorts: [Int] = []
    public var methods = StringMatchSet()
    /// The request's path, without its query.
    public var paths = StringMatchSet()

    public init() {}
}

/// `rules[].when[]`: the key's value must match one of `values` and none of `notValues`.
public struct AuthorizationCondition: Sendable, Hashable {
    public var key: ConditionKey
    public var values: StringMatchSet
    /// For the address keys: the values as CIDR blocks.
    public var blocks: CIDRMatchSet

    public init(key: ConditionKey, values: StringMatchSet, blocks: CIDRMatchSet = CIDRMatchSet()) {
        self.key = key
        self.values = values
        self.blocks = blocks
    }
}

/// The `when` keys Istio defines.
public enum ConditionKey: Sendable, Hashable {
    case requestHeader(String)
    case sourceIP
    case remoteIP
    case sourceNamespace
    case sourcePrincipal
    case requestAuthPrincipal
    case requestAuthAudiences
    case requestAuthPresenter
    /// `request.auth.claims[a][b]`: the path into nested claims.
    case requestAuthClaims([String])
    case destinationIP
    case destinationPort
    case connectionSNI

    public var isHTTPOnly: Bool {
        switch self {
        case .requestHeader, .requestAuthPrincipal, .requestAuthAudiences, .requestAuthPresenter, .requestAuthClaims: return true
        default: return false
        }
    }

    /// Whether the values are addresses (CIDR blocks).
    public var isAddress: Bool {
        switch self {
        case .sourceIP, .remoteIP, .destinationIP: return true
        default: return false
        }
    }
}

/// An IPv4 or IPv6 block: `10.0.0.0/8`, `2001:db8::/32`, or one address (`/32`, `/128`).
public struct CIDR: Sendable, Hashable, CustomStringConvertible {
    /// 4 or 16 bytes, host bits cleared.
    public let address: [UInt8]
    public let prefixLength: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let bytes = IPAddressParser.bytes(String(parts[0])) else { return nil }
        let bits = bytes.count * 8
        var prefix = bits
        if parts.count == 2 {
            guard let value = Int(parts[1]), (0...bits).contains(value), parts[1].allSatisfy(\.isASCII) else { return nil }
            prefix = value
        }
        self.prefixLength = prefix
        self.address = Self.masked(bytes, prefix)
    }

    public func contains(_ address: [UInt8]) -> Bool {
        guard address.count == self.address.count else { return false }
        var remaining = self.prefixLength
        var index = 0
        while remaining > 0 {
            let bits = min(8, remaining)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
            if address[index] & mask != self.address[index] { return false }
            remaining -= bits
            index += 1
        }
        return true
    }

    private static func masked(_ bytes: [UInt8], _ prefix: Int) -> [UInt8] {
        var out = bytes
        for index in out.indices {
            let bitsHere = max(0, min(8, prefix - index * 8))
            out[index] &= bitsHere == 0 ? 0 : UInt8(truncatingIfNeeded: 0xFF << (8 - bitsHere))
        }
        return out
    }

    public var description: String { "\(IPAddressParser.format(self.address))/\(self.prefixLength)" }
}

/// Text ↔ bytes for IPv4 (dotted quad) and IPv6 (RFC 4291 text, `::` and an IPv4 tail allowed).
public enum IPAddressParser {
    public static func bytes(_ text: String) -> [UInt8]? {
        if text.contains(":") { return self.ipv6(text) }
        return self.ipv4(Substring(text))
    }

    static func ipv4(_ text: Substring) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var out: [UInt8] = []
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy({ $0.isASCII && $0.isNumber }), let value = UInt8(part) else { return nil }
            out.append(value)
        }
        return out
    }

    static func ipv6(_ text: String) -> [UInt8]? {
        var text = Substring(text)
        if text.hasPrefix("["), text.hasSuffix("]") { text = text.dropFirst().dropLast() }
        if let zone = text.firstIndex(of: "%") { text = text[..<zone] }
        var halves = [String(text)]
        if let gap = text.firstRange(of: "::") {
            halves = [String(text[..<gap.lowerBound]), String(text[gap.upperBound...])]
            guard !halves[1].contains("::") else { return nil }
        }
        func groups(_ part: String) -> [UInt8]? {
            guard !part.isEmpty else { return [] }
            var out: [UInt8] = []
            let pieces = part.split(separator: ":", omittingEmptySubsequences: false)
            for (index, piece) in pieces.enumerated() {
                if index == pieces.count - 1, piece.contains(".") {
                    guard let tail = ipv4(piece) else { return nil }
                    out += tail
                    continue
                }
                guard (1...4).contains(piece.count), let value = UInt16(piece, radix: 16) else { return nil }
                out += [UInt8(value >> 8), UInt8(value & 0xFF)]
            }
            return out
        }
        guard let head = groups(halves[0]) else { return nil }
        if halves.count == 1 { return head.count == 16 ? head : nil }
        guard let tail = groups(halves[1]), head.count + tail.count <= 14 else { return nil }
        return head + [UInt8](repeating: 0, count: 16 - head.count - tail.count) + tail
    }

    public static func format(_ bytes: [UInt8]) -> String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        return stride(from: 0, to: bytes.count, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
            .joined(separator: ":")
    }
}
