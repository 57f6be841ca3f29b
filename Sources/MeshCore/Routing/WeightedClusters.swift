import MeshConfig

/// A route's weighted destinations, compiled to cumulative weights. Weights are relative, as in
/// current Istio: a destination gets `weight / totalWeight` of the picks, so 1:3 splits 25/75 just as
/// 25:75 does. A destination with weight 0 is never picked.
public struct WeightedClusters: Sendable {
    /// What one weighted destination sends to.
    public enum Target: Sendable {
        case cluster(Cluster)
        /// A cluster no config declares (a route to an undeclared host, port or subset, which Istio
        /// accepts): picking it answers 503 NC `cluster_not_found{NAME}`, as Envoy does.
        case missing(name: String)

        public var name: String {
            switch self {
            case .cluster(let cluster): return cluster.name
            case .missing(let name): return name
            }
        }
    }

    /// The declared clusters among the destinations that can be picked.
    public let clusters: [Cluster]
    private let targets: [Target]
    /// Each target's own header operations (`route[].headers`); empty when no destination has any.
    private let headers: [DestinationHeaders?]
    private let cumulative: [Int]
    public let totalWeight: Int

    public init(_ weighted: [(cluster: Cluster, weight: Int)]) {
        self.init(targets: weighted.map { (Target.cluster($0.cluster), $0.weight) })
    }

    public init(targets weighted: [(target: Target, weight: Int)]) {
        self.init(entries: weighted.map { ($0.target, $0.weight, nil) })
    }

    public init(entries weighted: [(target: Target, weight: Int, headers: DestinationHeaders?)]) {
        var running = 0
        var targets: [Target] = []
        var headers: [DestinationHeaders?] = []
        var cumulative: [Int] = []
        for entry in weighted where entry.weight > 0 {
            running += entry.weight
            targets.append(entry.target)
            headers.append(entry.headers)
            cumulative.append(running)
        }
        self.targets = targets
        self.headers = headers.contains { $0 != nil } ? headers : []
        self.clusters = targets.compactMap { target in
            if case .cluster(let cluster) = target { return cluster }
            return nil
        }
        self.cumulative = cumulative
        self.totalWeight = running
    }

    /// The first destination that can be picked (for names in logs when none is healthy).
    public var firstTarget: Target? { self.targets.first }

    /// Picks by weight with `roll` in `0..<totalWeight`.
    public func pickTarget(roll: Int) -> Target? {
        self.pickIndex(roll: roll).map { self.targets[$0] }
    }

    private func pickIndex(roll: Int) -> Int? {
        guard self.targets.count > 1 else { return self.targets.isEmpty ? nil : 0 }
        for (index, bound) in self.cumulative.enumerated() where roll < bound {
            return index
        }
        return self.targets.count - 1
    }

    /// A pick with the picked destination's own header operations.
    func pickEntry(using random: FastRandom = .shared) -> (target: Target, headers: DestinationHeaders?)? {
        let roll = self.targets.count > 1 ? random.next(below: self.totalWeight) : 0
        guard let index = self.pickIndex(roll: roll) else { return nil }
        return (self.targets[index], self.headers.isEmpty ? nil : self.headers[index])
    }

    public func pickTarget(using random: FastRandom = .shared) -> Target? {
        guard self.targets.count > 1 else { return self.targets.first }
        return self.pickTarget(roll: random.next(below: self.totalWeight))
    }

    /// The picked cluster; nil when there is none or the pick is a missing one.
    public func pick(roll: Int) -> Cluster? {
        guard case .cluster(let cluster)? = self.pickTarget(roll: roll) else { return nil }
        return cluster
    }

    public func pick(using random: FastRandom = .shared) -> Cluster? {
        guard case .cluster(let cluster)? = self.pickTarget(using: random) else { return nil }
        return cluster
    }
}

/// `route[].headers`: one destination's request and response header operations.
public struct DestinationHeaders: Sendable, Equatable {
    public var request: HeaderOperations?
    public var response: HeaderOperations?

    public init(request: HeaderOperations?, response: HeaderOperations?) {
        self.request = request
        self.response = response
    }
}
