import MeshConfig
import NIOHTTP1

/// One workload's AuthorizationPolicies, compiled once per snapshot: matchers are precompiled, and
/// a request walks them with no parsing and no allocation unless a policy logs (AUDIT, dry-run).
///
/// Istio's evaluation: a matching DENY policy denies; then, when any ALLOW policy applies, the
/// request must match one of them; AUDIT policies only mark. Dry-run policies are evaluated the same
/// way on the side, and their would-be verdict is logged and counted, never enforced.
struct AuthorizationEngine: Sendable {
    let custom: [CompiledPolicy]
    let deny: [CompiledPolicy]
    let allow: [CompiledPolicy]
    let audit: [CompiledPolicy]
    let dryRunDeny: [CompiledPolicy]
    let dryRunAllow: [CompiledPolicy]

    init(_ policies: [AuthorizationPolicy]) {
        let compiled = policies.sorted { ($0.meta.namespace, $0.meta.name) < ($1.meta.namespace, $1.meta.name) }.map(CompiledPolicy.init)
        self.custom = compiled.filter { $0.action == .custom }
        self.deny = compiled.filter { $0.action == .deny && !$0.dryRun }
        self.allow = compiled.filter { $0.action == .allow && !$0.dryRun }
        self.audit = compiled.filter { $0.action == .audit }
        self.dryRunDeny = compiled.filter { $0.action == .deny && $0.dryRun }
        self.dryRunAllow = compiled.filter { $0.action == .allow && $0.dryRun }
    }

    var isEmpty: Bool {
        self.custom.isEmpty && self.deny.isEmpty && self.allow.isEmpty && self.audit.isEmpty && self.dryRunDeny.isEmpty && self.dryRunAllow.isEmpty
    }

    /// Every policy, for `/config_dump`.
    var policies: [CompiledPolicy] { self.custom + self.deny + self.allow + self.audit + self.dryRunDeny + self.dryRunAllow }

    /// The enforced verdict.
    func evaluate(_ facts: AuthorizationFacts) -> AuthorizationVerdict {
        Self.verdict(deny: self.deny, allow: self.allow, facts)
    }

    /// What the dry-run policies would have decided (nil: there are none).
    func evaluateDryRun(_ facts: AuthorizationFacts) -> AuthorizationVerdict? {
        guard !self.dryRunDeny.isEmpty || !self.dryRunAllow.isEmpty else { return nil }
        return Self.verdict(deny: self.dryRunDeny, allow: self.dryRunAllow, facts)
    }

    /// The CUSTOM policy (and rule) that sends the request to the external authorizer; nil: none does.
    func customMatch(_ facts: AuthorizationFacts) -> PolicyMatch? {
        for policy in self.custom {
            if let rule = policy.firstMatchingRule(facts) { return PolicyMatch(policy: policy, rule: rule) }
        }
        return nil
    }

    /// The AUDIT policies the request matches (with their rule).
    func audited(_ facts: AuthorizationFacts) -> [PolicyMatch] {
        self.audit.compactMap { policy in policy.firstMatchingRule(facts).map { PolicyMatch(policy: policy, rule: $0) } }
    }

    private static func verdict(deny: [CompiledPolicy], allow: [CompiledPolicy], _ facts: AuthorizationFacts) -> AuthorizationVerdict {
        for policy in deny {
            if let rule = policy.firstMatchingRule(facts) { return .denied(PolicyMatch(policy: policy, rule: rule)) }
        }
        guard !allow.isEmpty else { return .allowed(nil) }
        for policy in allow {
            if let rule = policy.firstMatchingRule(facts) { return .allowed(PolicyMatch(policy: policy, rule: rule)) }
        }
        return .denied(nil)
    }
}

/// A policy and the index of its rule that matched.
struct PolicyMatch {
    let policy: CompiledPolicy
    let rule: Int

    /// Envoy's name for a matched shadow/enforced policy: `ns[NS]-policy[NAME]-rule[N]`.
    var envoyName: String { "ns[\(self.policy.namespace)]-policy[\(self.policy.name)]-rule[\(self.rule)]" }
}

enum AuthorizationVerdict {
    /// Allowed: by this ALLOW policy's rule, or (nil) because no ALLOW policy applies.
    case allowed(PolicyMatch?)
    /// Denied: by this DENY policy's rule, or (nil) because no ALLOW policy matched.
    case denied(PolicyMatch?)

    var isAllowed: Bool {
        if case .allowed = self { return true }
        return false
    }

    /// Envoy's `response_code_details` for a denial: `rbac_access_denied_matched_policy[…]`.
    var details: String {
        switch self {
        case .allowed: return "via_upstream"
        case .denied(let match): return "rbac_access_denied_matched_policy[\(match?.envoyName ?? "none")]"
        }
    }

    /// The policy to name in the log and the metric: `NS/NAME`, or `none` (nothing allowed it).
    var policyLabel: String {
        switch self {
        case .allowed(let match), .denied(let match): return match.map { "\($0.policy.namespace)/\($0.policy.name)" } ?? "none"
        }
    }
}

/// One AuthorizationPolicy, compiled. The compiled pieces are classes: walking a hundred rules then
/// costs a reference count per rule, not one per array each rule holds (measured: the walk was
/// mostly retains and releases as structs).
final class CompiledPolicy: Sendable {
    let name: String
    let namespace: String
    let action: AuthorizationPolicy.Action
    let dryRun: Bool
    let rules: [CompiledRule]
    /// The same rules, walked at +0: `rules` keeps them alive for as long as the policy lives.
    private let walk: UnretainedList<CompiledRule>

    init(_ policy: AuthorizationPolicy) {
        self.name = policy.meta.name
        self.namespace = policy.meta.namespace
        self.action = policy.action
        self.dryRun = policy.dryRun
        self.rules = policy.rules.map { CompiledRule($0, action: policy.action) }
        self.walk = UnretainedList(self.rules)
    }

    func firstMatchingRule(_ facts: AuthorizationFacts) -> Int? {
        self.walk.firstIndex { $0.matches(facts) }
    }
}

/// A rule: any source, any operation, every condition.
final class CompiledRule: Sendable {
    let sources: [CompiledSource]
    let operations: [CompiledOperation]
    private let sourceWalk: UnretainedList<CompiledSource>
    private let operationWalk: UnretainedList<CompiledOperation>
    let conditions: [CompiledCondition]
    /// On a TCP connection: nil = the rule never matches (an ALLOW rule reading HTTP fields); else
    /// the rule without its HTTP-only parts (a DENY rule, which Istio makes stricter, not looser).
    let tcp: TCPForm

    enum TCPForm: Sendable {
        case sameAsHTTP
        case neverMatches
        case withoutHTTPFields
    }

    init(_ rule: AuthorizationRule, action: AuthorizationPolicy.Action) {
        self.sources = rule.from.map(CompiledSource.init)
        self.operations = rule.to.map(CompiledOperation.init)
        self.sourceWalk = UnretainedList(self.sources)
        self.operationWalk = UnretainedList(self.operations)
        self.conditions = rule.when.map(CompiledCondition.init)
        if !rule.usesHTTPOnlyFields {
            self.tcp = .sameAsHTTP
        } else {
            self.tcp = action == .deny ? .withoutHTTPFields : .neverMatches
        }
    }

    func matches(_ facts: AuthorizationFacts) -> Bool {
        let ignoreHTTP: Bool
        if !facts.isHTTP {
            switch self.tcp {
            case .sameAsHTTP: ignoreHTTP = false
            case .neverMatches: return false
            case .withoutHTTPFields: ignoreHTTP = true
            }
        } else {
            ignoreHTTP = false
        }
        if !self.sources.isEmpty, self.sourceWalk.firstIndex(where: { $0.matches(facts, ignoreHTTP: ignoreHTTP) }) == nil { return false }
        if !self.operations.isEmpty, self.operationWalk.firstIndex(where: { $0.matches(facts, ignoreHTTP: ignoreHTTP) }) == nil { return false }
        return self.conditions.allSatisfy { (ignoreHTTP && $0.key.isHTTPOnly) || $0.matches(facts) }
    }
}

/// Istio's string match: exact, `prefix*`, `*suffix`, or `*` (present and not empty). A class,
/// walked unretained with its set (``PatternSet``).
final class StringPattern: Sendable {
    enum Kind: Sendable {
        case exact
        case prefix
        case suffix
        case present
    }

    let kind: Kind
    let text: String

    init(_ text: String, lowercase: Bool = false) {
        let text = lowercase ? text.lowercased() : text
        if text == "*" {
            (self.kind, self.text) = (.present, "")
        } else if text.hasPrefix("*") {
            (self.kind, self.text) = (.suffix, String(text.dropFirst()))
        } else if text.hasSuffix("*") {
            (self.kind, self.text) = (.prefix, String(text.dropLast()))
        } else {
            (self.kind, self.text) = (.exact, text)
        }
    }

    func matches<S: StringProtocol>(_ value: S) -> Bool {
        switch self.kind {
        case .exact: return value == self.text
        case .prefix: return value.hasPrefix(self.text)
        case .suffix: return value.hasSuffix(self.text)
        case .present: return !value.isEmpty
        }
    }
}

/// Compiled ``StringMatchSet``.
struct PatternSet: Sendable {
    let values: [StringPattern]
    let notValues: [StringPattern]
    private let valueWalk: UnretainedList<StringPattern>
    private let notValueWalk: UnretainedList<StringPattern>

    init(_ set: StringMatchSet, lowercase: Bool = false) {
        self.values = set.values.map { StringPattern($0, lowercase: lowercase) }
        self.notValues = set.notValues.map { StringPattern($0, lowercase: lowercase) }
        self.valueWalk = UnretainedList(self.values)
        self.notValueWalk = UnretainedList(self.notValues)
    }

    var isEmpty: Bool { self.values.isEmpty && self.notValues.isEmpty }

    /// One value (nil: absent, which matches no value and no negation).
    func matches<S: StringProtocol>(_ value: S?) -> Bool {
        guard !self.isEmpty else { return true }
        guard let value else { return self.values.isEmpty }
        if !self.values.isEmpty, self.valueWalk.firstIndex(where: { $0.matches(value) }) == nil { return false }
        return self.notValueWalk.firstIndex(where: { $0.matches(value) }) == nil
    }

    /// A request header's values (every field of that name), without copying them: some value
    /// matches `values`, none matches `notValues`; an absent header as an absent value.
    func matches(headers: HTTPHeaders, name: String) -> Bool {
        guard !self.isEmpty else { return true }
        var present = false
        var positive = self.values.isEmpty
        for (field, value) in headers where field.utf8.count == name.utf8.count && field.asciiCaseInsensitiveEquals(name) {
            present = true
            if !positive, self.valueWalk.firstIndex(where: { $0.matches(value) }) != nil { positive = true }
            if self.notValueWalk.firstIndex(where: { $0.matches(value) }) != nil { return false }
        }
        return present ? positive : self.matches(String?.none)
    }

    /// Several values (a claim list, an audience list): some value matches `values`, none matches `notValues`.
    func matches(any candidates: [String]) -> Bool {
        guard !self.isEmpty else { return true }
        if !self.values.isEmpty, !candidates.contains(where: { value in self.values.contains { $0.matches(value) } }) { return false }
        return !candidates.contains { value in self.notValues.contains { $0.matches(value) } }
    }
}

/// Objects another array owns, walked without a reference count per element (the walk is the hot
/// loop of a request's policy check). Valid only while the owner's array holds them.
struct UnretainedList<Element: AnyObject>: @unchecked Sendable {
    private let references: [Unmanaged<Element>]

    init(_ owned: [Element]) {
        self.references = owned.map { Unmanaged.passUnretained($0) }
    }

    @inline(__always)
    func firstIndex(where test: (Element) -> Bool) -> Int? {
        self.references.withUnsafeBufferPointer { buffer in
            for index in buffer.indices where buffer[index]._withUnsafeGuaranteedRef(test) { return index }
            return nil
        }
    }
}

/// An IPv4 or IPv6 address as two words (IPv4 in the low 32 bits): compared with masks, no arrays.
struct IPValue: Sendable, Equatable {
    let high: UInt64
    let low: UInt64
    let isV6: Bool

    init?(_ bytes: [UInt8]?) {
        guard let bytes, bytes.count == 4 || bytes.count == 16 else { return nil }
        func word(_ slice: ArraySlice<UInt8>) -> UInt64 { slice.reduce(0) { $0 << 8 | UInt64($1) } }
        self.isV6 = bytes.count == 16
        self.high = self.isV6 ? word(bytes[0..<8]) : 0
        self.low = self.isV6 ? word(bytes[8..<16]) : word(bytes[0..<4])
    }

    init(high: UInt64, low: UInt64, isV6: Bool) {
        self.high = high
        self.low = low
        self.isV6 = isV6
    }
}

/// A CIDR block as masks over ``IPValue``.
struct CompiledBlock: Sendable {
    let network: IPValue
    let maskHigh: UInt64
    let maskLow: UInt64

    init(_ block: CIDR) {
        let address = IPValue(block.address) ?? IPValue(high: 0, low: 0, isV6: false)
        let bits = block.address.count * 8
        let prefix = block.prefixLength
        func mask(_ from: Int, _ width: Int) -> UInt64 {
            // The first `prefix` of `bits` bits, restricted to the word covering bits [from, from + width).
            let ones = max(0, min(width, prefix - from))
            return ones == 0 ? 0 : (ones == 64 ? ~0 : (~UInt64(0) << (64 - ones)) >> (64 - width))
        }
        if bits == 128 {
            (self.maskHigh, self.maskLow) = (mask(0, 64), mask(64, 64))
        } else {
            (self.maskHigh, self.maskLow) = (0, mask(0, 32))
        }
        self.network = IPValue(high: address.high & self.maskHigh, low: address.low & self.maskLow, isV6: address.isV6)
    }

    func contains(_ address: IPValue) -> Bool {
        address.isV6 == self.network.isV6 && address.high & self.maskHigh == self.network.high && address.low & self.maskLow == self.network.low
    }
}

/// Compiled ``CIDRMatchSet``.
struct CompiledBlocks: Sendable {
    let blocks: [CompiledBlock]
    let notBlocks: [CompiledBlock]

    init(_ set: CIDRMatchSet) {
        self.blocks = set.blocks.map(CompiledBlock.init)
        self.notBlocks = set.notBlocks.map(CompiledBlock.init)
    }

    var isEmpty: Bool { self.blocks.isEmpty && self.notBlocks.isEmpty }

    func matches(_ address: IPValue?) -> Bool {
        guard !self.isEmpty else { return true }
        guard let address else { return self.blocks.isEmpty }
        if !self.blocks.isEmpty, !self.blocks.contains(where: { $0.contains(address) }) { return false }
        return !self.notBlocks.contains { $0.contains(address) }
    }
}

final class CompiledSource: Sendable {
    let principals: PatternSet
    let requestPrincipals: PatternSet
    let namespaces: PatternSet
    let ipBlocks: CompiledBlocks
    let remoteIPBlocks: CompiledBlocks

    init(_ source: AuthorizationSource) {
        self.principals = PatternSet(source.principals)
        self.requestPrincipals = PatternSet(source.requestPrincipals)
        self.namespaces = PatternSet(source.namespaces)
        self.ipBlocks = CompiledBlocks(source.ipBlocks)
        self.remoteIPBlocks = CompiledBlocks(source.remoteIPBlocks)
    }

    func matches(_ facts: AuthorizationFacts, ignoreHTTP: Bool) -> Bool {
        self.principals.matches(facts.principal)
            && (ignoreHTTP || self.requestPrincipals.matches(facts.requestPrincipal))
            && (self.namespaces.isEmpty || self.namespaces.matches(facts.sourceNamespace))
            && self.ipBlocks.matches(facts.sourceIP)
            && self.remoteIPBlocks.matches(facts.remoteIP)
    }
}

final class CompiledOperation: Sendable {
    let hosts: PatternSet
    let ports: [Int]
    let notPorts: [Int]
    let methods: PatternSet
    let paths: PatternSet

    init(_ operation: AuthorizationOperation) {
        self.hosts = PatternSet(operation.hosts, lowercase: true)
        self.ports = operation.ports
        self.notPorts = operation.notPorts
        self.methods = PatternSet(operation.methods)
        self.paths = PatternSet(operation.paths)
    }

    func matches(_ facts: AuthorizationFacts, ignoreHTTP: Bool) -> Bool {
        if !self.ports.isEmpty, !self.ports.contains(facts.destinationPort) { return false }
        if self.notPorts.contains(facts.destinationPort) { return false }
        if ignoreHTTP { return true }
        let request = facts.request
        if !self.hosts.isEmpty {
            // Istio matches the host with or without its port.
            guard let request, self.hosts.matches(request.host) || self.hosts.matches(facts.lowercasedAuthority) else {
                return false
            }
        }
        return self.methods.matches(request?.method) && self.paths.matches(request?.path)
    }
}

final class CompiledCondition: Sendable {
    let key: ConditionKey
    let values: PatternSet
    let blocks: CompiledBlocks

    init(_ condition: AuthorizationCondition) {
        self.key = condition.key
        self.values = PatternSet(condition.values, lowercase: false)
        self.blocks = CompiledBlocks(condition.blocks)
    }

    func matches(_ facts: AuthorizationFacts) -> Bool {
        switch self.key {
        case .sourceIP: return self.blocks.matches(facts.sourceIP)
        case .remoteIP: return self.blocks.matches(facts.remoteIP)
        case .destinationIP: return self.blocks.matches(facts.destinationIP)
        case .destinationPort: return self.values.matches(String(facts.destinationPort))
        case .sourceNamespace: return self.values.matches(facts.sourceNamespace)
        case .sourcePrincipal: return self.values.matches(facts.principal)
        case .connectionSNI: return self.values.matches(facts.serverName)
        case .requestHeader(let name):
            guard let headers = facts.request?.headers else { return self.values.matches(String?.none) }
            return self.values.matches(headers: headers, name: name)
        case .requestAuthPrincipal: return self.values.matches(facts.requestPrincipal)
        case .requestAuthPresenter: return self.values.matches(facts.auth?.presenter)
        case .requestAuthAudiences:
            guard let auth = facts.auth else { return self.values.matches(String?.none) }
            return self.values.matches(any: auth.audiences)
        case .requestAuthClaims(let path):
            guard let value = facts.auth.flatMap({ Self.claim(path, in: $0.claims) }) else { return self.values.matches(String?.none) }
            return self.values.matches(any: value.matchable)
        }
    }

    static func claim(_ path: [String], in claims: [String: JSONValue]) -> JSONValue? {
        var current: JSONValue = .object(claims)
        for name in path {
            guard case .object(let object) = current, let next = object[name] else { return nil }
            current = next
        }
        return current
    }
}

/// One enforced (or dry-run) policy as `/config_dump` shows it.
public struct AuthorizationPolicySummary: Encodable, Sendable {
    public let name: String
    public let action: String
    public let dryRun: Bool
    public let rules: Int
}

extension Snapshot {
    /// The AuthorizationPolicies this instance enforces, in evaluation order (CUSTOM, DENY, ALLOW, AUDIT,
    /// then the dry-run ones): at a gateway on every listener, at a sidecar on its inbound one.
    public var authorizationSummary: [AuthorizationPolicySummary] {
        (self.authorization?.policies ?? []).map {
            AuthorizationPolicySummary(name: "\($0.namespace)/\($0.name)", action: $0.action.rawValue, dryRun: $0.dryRun, rules: $0.rules.count)
        }
    }
}
