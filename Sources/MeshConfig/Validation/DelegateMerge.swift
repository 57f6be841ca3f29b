/// How a delegate's http route joins the root route that delegates to it, as Istio merges them
/// (pilot's VirtualService delegation): the route's matches are the root's match conditions AND the
/// delegate's, and what the delegate route leaves unset (rewrite, timeout, headers, fault, retries, mirrors, CORS) comes from the
/// root route.
///
/// Each root match is paired with each delegate match. A pair conflicts when the delegate's
/// condition cannot lie within the root's (root `prefix: /reviews`, delegate `exact: /ratings`); such
/// a pair is dropped. When every pair conflicts the delegate route is dropped (Istio logs
/// "HTTPMatchRequests conflict"). A field set on both sides keeps the delegate's, the narrower one,
/// as Istio does: a root regex with a delegate exact or prefix keeps only the delegate's.
enum DelegateMerge {
    /// The delegate route as spliced into the root's place, or nil when its matches conflict with
    /// every root match.
    static func merge(root: HTTPRoute, delegate: HTTPRoute) -> HTTPRoute? {
        guard let matches = self.merge(root: root.match, delegate: delegate.match) else { return nil }
        var merged = delegate
        merged.match = matches
        switch (root.name, delegate.name) {
        case (let rootName?, let name?): merged.name = "\(rootName)-\(name)"
        case (let rootName?, nil): merged.name = rootName
        default: break
        }
        merged.rewrite = delegate.rewrite ?? root.rewrite
        merged.timeout = delegate.timeout ?? root.timeout
        merged.fault = delegate.fault ?? root.fault
        merged.retries = delegate.retries ?? root.retries
        if merged.mirrors.isEmpty { merged.mirrors = root.mirrors }
        merged.cors = delegate.cors ?? root.cors
        merged.requestHeaders = delegate.requestHeaders ?? root.requestHeaders
        merged.responseHeaders = delegate.responseHeaders ?? root.responseHeaders
        merged.delegate = nil
        return merged
    }

    /// Every non-conflicting (root, delegate) pair merged; nil when there were pairs and all conflict.
    /// An empty side takes the other side's matches.
    static func merge(root: [HTTPMatchRequest], delegate: [HTTPMatchRequest]) -> [HTTPMatchRequest]? {
        if delegate.isEmpty { return root }
        if root.isEmpty { return delegate }
        var merged: [HTTPMatchRequest] = []
        for leaf in delegate {
            for base in root where !self.conflict(root: base, leaf: leaf) {
                merged.append(self.merge(root: base, leaf: leaf))
            }
        }
        return merged.isEmpty ? nil : merged
    }

    private static func merge(root: HTTPMatchRequest, leaf: HTTPMatchRequest) -> HTTPMatchRequest {
        var merged = root
        switch (root.name, leaf.name) {
        case (let rootName?, let name?): merged.name = "\(rootName)-\(name)"
        case (nil, let name?): merged.name = name
        default: break
        }
        merged.uri = leaf.uri ?? root.uri
        merged.method = leaf.method ?? root.method
        merged.authority = leaf.authority ?? root.authority
        merged.headers = self.union(root.headers, leaf.headers)
        merged.withoutHeaders = self.union(root.withoutHeaders, leaf.withoutHeaders)
        merged.queryParams = self.union(root.queryParams, leaf.queryParams)
        merged.port = leaf.port ?? root.port
        merged.gateways = leaf.gateways.isEmpty ? root.gateways : leaf.gateways
        return merged
    }

    /// The root's entries, each replaced by the delegate's of the same name, then the delegate's others.
    private static func union(_ root: [HeaderMatch], _ leaf: [HeaderMatch]) -> [HeaderMatch] {
        let leafNames = Set(leaf.map(\.name))
        return root.filter { !leafNames.contains($0.name) } + leaf
    }

    /// Whether a delegate match cannot narrow a root match (Istio's `hasConflict`).
    static func conflict(root: HTTPMatchRequest, leaf: HTTPMatchRequest) -> Bool {
        if self.conflict(root.uri, leaf.uri) || self.conflict(root.method, leaf.method) || self.conflict(root.authority, leaf.authority) {
            return true
        }
        for (rootList, leafList) in [(root.headers, leaf.headers), (root.withoutHeaders, leaf.withoutHeaders), (root.queryParams, leaf.queryParams)] {
            for header in leafList {
                if let base = rootList.first(where: { $0.name == header.name }), self.conflict(base.match, header.match) { return true }
            }
        }
        if root.ignoreUriCase != leaf.ignoreUriCase { return true }
        if let rootPort = root.port, let leafPort = leaf.port, rootPort != leafPort { return true }
        if !root.gateways.isEmpty, !leaf.gateways.isEmpty, !Set(leaf.gateways).isSubset(of: root.gateways) { return true }
        return false
    }

    /// Istio's `stringMatchConflict`: no conflict when either side is unset; two regexes conflict;
    /// under an exact root only the same exact fits; under a prefix root the delegate's exact or
    /// prefix must start with it.
    static func conflict(_ root: StringMatch?, _ leaf: StringMatch?) -> Bool {
        guard let root, let leaf else { return false }
        switch (root, leaf) {
        case (.regex, .regex):
            return true
        case (.exact(let value), .exact(let other)):
            return value != other
        case (.exact, _):
            return true
        case (.prefix(let prefix), .prefix(let other)), (.prefix(let prefix), .exact(let other)):
            return !other.hasPrefix(prefix)
        default:
            return false
        }
    }
}
