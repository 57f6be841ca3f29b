/// Host names as Istio reads them: short names, FQDNs and wildcards.

/// The DNS suffix of services in the (imaginary) cluster: `name.namespace.svc.cluster.local`.
public let clusterDomainSuffix = "svc.cluster.local"

/// Resolves a host as written in a resource of `namespace` to the name Meshgate uses.
///
/// A short name (no dot) becomes `<name>.<namespace>.svc.cluster.local`; a name with a dot is
/// taken as an FQDN as written; `*` and `*.suffix` stay as they are.
public func resolveHost(_ host: String, namespace: String) -> String {
    if host.hasPrefix("*") || host.contains(".") { return host }
    return "\(host).\(namespace).\(clusterDomainSuffix)"
}

/// Whether `host` is covered by `pattern`: an exact name, `*.suffix` (one or more labels before the
/// suffix) or `*` (everything). Case-insensitive. A wildcard `host` is covered when its suffix is.
public func hostMatches(pattern: String, host: String) -> Bool {
    let pattern = pattern.lowercased()
    let host = host.lowercased()
    if pattern == "*" || pattern == host { return true }
    guard pattern.hasPrefix("*.") else { return false }
    let suffix = pattern.dropFirst()  // ".example.com"
    if host.hasPrefix("*.") {
        return host.dropFirst().hasSuffix(suffix)
    }
    return host.hasSuffix(suffix) && host.count > suffix.count
}

/// Whether two host patterns share at least one host (`*.a.com` and `b.a.com`, `*` and anything).
public func hostsOverlap(_ lhs: String, _ rhs: String) -> Bool {
    hostMatches(pattern: lhs, host: rhs) || hostMatches(pattern: rhs, host: lhs)
}
