/// A route's weighted destinations, compiled to cumulative weights. A destination with weight 0 is
/// never picked.
public struct WeightedClusters: Sendable {
    public let clusters: [Cluster]
    private let cumulative: [Int]
    public let totalWeight: Int

    public init(_ weighted: [(cluster: Cluster, weight: Int)]) {
        var running = 0
        var clusters: [Cluster] = []
        var cumulative: [Int] = []
        for entry in weighted where entry.weight > 0 {
            running += entry.weight
            clusters.append(entry.cluster)
            cumulative.append(running)
        }
        self.clusters = clusters
        self.cumulative = cumulative
        self.totalWeight = running
    }

    /// Picks by weight with `roll` in `0..<totalWeight`.
    public func pick(roll: Int) -> Cluster? {
        guard self.clusters.count > 1 else { return self.clusters.first }
        for (index, bound) in self.cumulative.enumerated() where roll < bound {
            return self.clusters[index]
        }
        return self.clusters.last
    }

    public func pick(using random: FastRandom = .shared) -> Cluster? {
        guard self.clusters.count > 1 else { return self.clusters.first }
        return self.pick(roll: random.next(below: self.totalWeight))
    }
}
