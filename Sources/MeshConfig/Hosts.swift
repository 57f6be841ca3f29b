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
