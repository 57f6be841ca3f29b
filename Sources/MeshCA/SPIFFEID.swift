/// A workload identity in Istio's SPIFFE form, `spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/SERVICE-ACCOUNT`,
/// carried as the one URI SAN of an X.509-SVID.
///
/// Every part is checked when the identity is built: the namespace and the service account are
/// DNS-1123 labels (lower-case letters, digits and '-', starting and ending with a letter or digit,
/// 1 to 63 characters), as Kubernetes requires of both; the trust domain is a DNS name of such labels
/// (at most 253 characters), which keeps it inside the SPIFFE trust-domain alphabet.
public struct SPIFFEID: Sendable, Hashable, CustomStringConvertible {
    /// Istio's default trust domain.
    public static let defaultTrustDomain = "cluster.local"

    public let trustDomain: String
    public let namespace: String
    public let serviceAccount: String

    /// Checks every part; an illegal one throws ``MeshCAError/Code/invalidIdentity`` naming the field.
    public init(trustDomain: String = Self.defaultTrustDomain, namespace: String, serviceAccount: String) throws(MeshCAError) {
        if let problem = Self.trustDomainProblem(trustDomain) {
            throw MeshCAError(.invalidIdentity, "trust domain '\(trustDomain)': \(problem)")
        }
        if let problem = Self.labelProblem(namespace) {
            throw MeshCAError(.invalidIdentity, "namespace '\(namespace)': \(problem)")
        }
        if let problem = Self.labelProblem(serviceAccount) {
            throw MeshCAError(.invalidIdentity, "service account '\(serviceAccount)': \(problem)")
        }
        self.trustDomain = trustDomain
        self.namespace = namespace
        self.serviceAccount = serviceAccount
    }

    /// Reads an identity written by ``uri``; nil for anything else (other paths, illegal parts,
    /// query, fragment, port or user info).
    public init?(uri: String) {
        guard let parts = Self.parse(uri),
              let id = try? SPIFFEID(trustDomain: parts.trustDomain, namespace: parts.namespace, serviceAccount: parts.serviceAccount)
        else { return nil }
        self = id
    }

    /// Splits `spiffe://TD/ns/NS/sa/SA` into its parts, checking each as ``init(trustDomain:namespace:serviceAccount:)``
    /// does. Pure; nil when the text is not exactly that shape.
    public static func parse(_ uri: String) -> (trustDomain: String, namespace: String, serviceAccount: String)? {
        let scheme = "spiffe://"
        guard uri.hasPrefix(scheme) else { return nil }
        let segments = uri.dropFirst(scheme.count).split(separator: "/", omittingEmptySubsequences: false)
        guard segments.count == 5, segments[1] == "ns", segments[3] == "sa" else { return nil }
        let (trustDomain, namespace, serviceAccount) = (String(segments[0]), String(segments[2]), String(segments[4]))
        guard self.trustDomainProblem(trustDomain) == nil, self.labelProblem(namespace) == nil,
              self.labelProblem(serviceAccount) == nil
        else { return nil }
        return (trustDomain, namespace, serviceAccount)
    }

    /// `spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/SERVICE-ACCOUNT`.
    public var uri: String { "spiffe://\(self.principal)" }

    /// The identity without its scheme, as AuthorizationPolicy `principals` write it:
    /// `cluster.local/ns/default/sa/reviews`.
    public var principal: String { "\(self.trustDomain)/ns/\(self.namespace)/sa/\(self.serviceAccount)" }

    public var description: String { self.uri }

    // MARK: - Rules

    /// Why `label` is not a DNS-1123 label, or nil when it is one.
    static func labelProblem(_ label: some StringProtocol) -> String? {
        if label.isEmpty { return "must not be empty" }
        if label.utf8.count > 63 { return "must be at most 63 characters" }
        var illegal: [Character] = []
        for character in label where !Self.isLabelCharacter(character) && !illegal.contains(character) {
            illegal.append(character)
        }
        if !illegal.isEmpty {
            let list = illegal.map { "'\($0)'" }.joined(separator: ", ")
            return "illegal character\(illegal.count == 1 ? "" : "s") \(list); use lower-case letters, digits and '-'"
        }
        if label.first == "-" || label.last == "-" { return "must start and end with a letter or digit" }
        return nil
    }

    /// Why `name` is not a DNS name of DNS-1123 labels, or nil when it is one.
    static func trustDomainProblem(_ name: String) -> String? {
        if name.isEmpty { return "must not be empty" }
        if name.utf8.count > 253 { return "must be at most 253 characters" }
        for label in name.split(separator: ".", omittingEmptySubsequences: false) {
            if label.isEmpty { return "empty label; write a DNS name such as cluster.local" }
            if let problem = Self.labelProblem(label) { return "label '\(label)' \(problem)" }
        }
        return nil
    }

    private static func isLabelCharacter(_ character: Character) -> Bool {
        guard character.isASCII, let ascii = character.asciiValue else { return false }
        return (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(ascii) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(ascii)
            || ascii == UInt8(ascii: "-")
    }
}
