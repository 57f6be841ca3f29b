/// VirtualService delegation (Istio's `http[].delegate`): a root VirtualService (one with hosts)
/// hands the requests one of its http routes matches to a delegate VirtualService (one without
/// hosts), whose http routes are spliced in that route's place, merged with it by ``DelegateMerge``.
///
/// A delegate serves only through its roots: on its own it binds to no gateway, so the validated
/// configuration holds the roots, resolved, and no delegate. What Istio does with a route whose
/// delegate is missing (or has hosts, so is no delegate) is leave the route out: requests it would
/// have taken fall through to the later routes (404 NR when none matches). That is a warning here
/// (an error with `--strict`). A delegation cycle is an error; a delegate that delegates again is
/// reported where it is decoded.
struct DelegateResolver {
    let sink: DiagnosticSink
    /// `namespace/name` → the VirtualService, first declared wins (duplicates are reported elsewhere).
    private let byName: [String: VirtualServiceDeclaration]

    init(_ declarations: [VirtualServiceDeclaration], sink: DiagnosticSink) {
        self.sink = sink
        self.byName = Dictionary(
            declarations.map { ($0.virtualService.qualifiedName, $0) }, uniquingKeysWith: { first, _ in first }
        )
    }

    /// The roots, each with its delegating routes replaced by the delegates' routes; delegates left out.
    func resolve(_ declarations: [VirtualServiceDeclaration]) -> [VirtualService] {
        let used = Set(declarations.flatMap { $0.virtualService.http.compactMap(\.delegate?.qualifiedName) })
        for declaration in declarations where declaration.virtualService.hosts.isEmpty {
            guard !used.contains(declaration.virtualService.qualifiedName) else { continue }
            self.sink.info(
                at: declaration.hosts,
                "a delegate (no hosts) that no VirtualService delegates to: it serves nothing on its own"
            )
        }
        return declarations.compactMap { declaration in
            var virtualService = declaration.virtualService
            guard !virtualService.hosts.isEmpty else { return nil }
            guard virtualService.http.contains(where: { $0.delegate != nil }) else { return virtualService }
            virtualService.http = virtualService.http.enumerated().flatMap { index, route -> [HTTPRoute] in
                guard let reference = route.delegate else { return [route] }
                let place = declaration.delegations[index] ?? declaration.httpRules[safe: index]
                    ?? Place(location: virtualService.meta.location ?? SourceLocation(file: "", line: 0), path: virtualService.meta.pathPrefix)
                return self.splice(route, delegate: reference, of: virtualService, at: place)
            }
            return virtualService
        }
    }

    private func splice(_ root: HTTPRoute, delegate reference: DelegateReference, of owner: VirtualService, at place: Place) -> [HTTPRoute] {
        let name = reference.qualifiedName
        let leftOut = "this route is left out, as Istio does: requests it matches fall through to the later routes (404 when none matches)"
        if name == owner.qualifiedName {
            self.sink.error(at: place, "delegation cycle: \(name) delegates to itself")
            return []
        }
        guard let target = self.byName[name] else {
            let hint = closestName(to: name, among: self.byName.keys).map { "; did you mean \($0)?" } ?? ""
            self.sink.danglingReference(at: place, "no VirtualService \(name) is declared; \(leftOut)\(hint)")
            return []
        }
        let delegate = target.virtualService
        if !delegate.hosts.isEmpty {
            self.sink.danglingReference(
                at: place,
                "VirtualService \(name) (\(target.hosts.location)) has hosts, so it is not a delegate (a delegate has none); \(leftOut)"
            )
            return []
        }
        if let cycle = self.cycle(from: owner.qualifiedName, through: name) {
            self.sink.error(at: place, "delegation cycle: \(cycle.joined(separator: " → "))")
            return []
        }
        var spliced: [HTTPRoute] = []
        for (index, route) in delegate.http.enumerated() where route.delegate == nil {
            guard let merged = DelegateMerge.merge(root: root, delegate: route) else {
                self.sink.warning(
                    at: route.location, path: "\(delegate.meta.pathPrefix).spec.http[\(index)].match",
                    "no match of this delegate route lies within the match of the route delegating to it (\(place.location)), so it is left out there, as Istio does"
                )
                continue
            }
            spliced.append(merged)
        }
        return spliced
    }

    /// The chain `start → … → start` when following delegations from `next` comes back to `start`.
    private func cycle(from start: String, through next: String) -> [String]? {
        var chain = [start, next]
        var current = next
        while let declaration = self.byName[current] {
            guard let following = declaration.virtualService.http.lazy.compactMap(\.delegate).first?.qualifiedName,
                  !chain.dropFirst().contains(following)
            else { return nil }
            chain.append(following)
            if following == start { return chain }
            current = following
        }
        return nil
    }
}

extension Array {
    subscript(safe index: Int) -> Element? { self.indices.contains(index) ? self[index] : nil }
}
