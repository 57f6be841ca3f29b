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
    private let cumulative: [Int]
    public let totalWeight: Int

    public init(_ weighted: [(cluster: Cluster, weight: Int)]) {
        self.init(targets: weighted.map { (Target.cluster($0.cluster), $0.weight) })
    }

    public init(targets weighted: [(target: Target, weight: Int)]) {
        var running = 0
        var targets: [Target] = []
        var cumulative: [Int] = []
        for entry in weighted where entry.weight > 0 {
            running += entry.weight
            targets.append(entry.target)
            cumulative.append(running)
        }
        self.targets = targets
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
        guard self.targets.count > 1 else { return self.targets.first }
        for (index, bound) in self.cumulative.enumerated() where roll < bound {
            return self.targets[index]
        }
        return self.targets.last
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
