import MeshConfig

/// Locality-aware balancing for one cluster, compiled from `localityLbSetting`, this instance's
/// locality and labels, and the endpoints' (Istio's locality load balancing). Pure: each pick gets
/// the endpoints outlier detection excluded and a random draw, and returns what else to exclude.
///
/// - **Failover** (only with outlier detection, as in Istio): endpoints get a priority, 0 for this
///   instance's region, zone and subzone, 1 for its region and zone, 2 for its region, 3 for a
///   region a `failover` rule names for this one, 4 for the rest (3 without such a rule); with
///   `failoverPriority`, endpoints sharing more of the listed labels' values come first. Traffic goes
///   to the best priority that has an endpoint left; Envoy's overprovisioning (spilling part of it
///   over while a priority is partly unhealthy) is not modelled: a priority serves all or nothing.
/// - **Distribute**: the first rule whose `from` matches this instance's locality splits traffic
///   between groups of endpoints by weight; a group with nothing left gives its share to the others.
struct LocalityBalancing: Sendable {
    /// Per endpoint, when failover applies.
    let priorities: [Int]?
    /// Endpoint groups and their weights, when a `distribute` rule applies.
    let groups: [(weight: Int, endpoints: [Int])]?

    /// nil when nothing locality-aware applies to the cluster.
    init?(
        _ setting: LocalityLBSetting?, outlierDetection: Bool, locality: String?, labels: [String: String],
        endpoints: [(locality: String?, labels: [String: String])]
    ) {
        let setting = setting ?? LocalityLBSetting()
        guard setting.enabled, endpoints.count > 1 else { return nil }
        if let locality, let rule = setting.distribute.first(where: { Locality.matches($0.from, locality) }) {
            var assigned = Set<Int>()
            var groups: [(weight: Int, endpoints: [Int])] = []
            for target in rule.to where target.weight > 0 {
                let members = endpoints.indices.filter { index in
                    !assigned.contains(index) && endpoints[index].locality.map { Locality.matches(target.locality, $0) } == true
                }
                assigned.formUnion(members)
                if !members.isEmpty { groups.append((target.weight, members)) }
            }
            self.groups = groups
            self.priorities = nil
            return
        }
        guard outlierDetection, locality != nil || !setting.failoverPriority.isEmpty else { return nil }
        let failoverRegion = locality.flatMap { mine in
            setting.failover.first { $0.from == String(mine.split(separator: "/")[0]) }?.to
        }
        self.priorities = endpoints.map { endpoint in
            let byLocality = Self.proximity(mine: locality, theirs: endpoint.locality, failoverRegion: failoverRegion)
            guard !setting.failoverPriority.isEmpty else { return byLocality }
            let shared = setting.failoverPriority.prefix { key in labels[key] != nil && labels[key] == endpoint.labels[key] }.count
            return (setting.failoverPriority.count - shared) * 10 + byLocality
        }
        self.groups = nil
    }

    /// 0 (same subzone) … 4 (another region than the failover one).
    static func proximity(mine: String?, theirs: String?, failoverRegion: String?) -> Int {
        guard let mine else { return 0 }
        let a = mine.split(separator: "/"), b = (theirs ?? "").split(separator: "/")
        var shared = 0
        while shared < min(a.count, b.count, 3), a[shared] == b[shared] { shared += 1 }
        switch shared {
        case 3: return 0
        case 2: return 1
        case 1: return 2
        default:
            guard let failoverRegion else { return 3 }
            return b.first.map(String.init) == failoverRegion ? 3 : 4
        }
    }

    /// `excluded` plus the endpoints this pick must not use: those outside the best priority left,
    /// or outside the group `roll` chose. Everything when nothing is left.
    func restrict(_ excluded: [Int], count: Int, roll: UInt64) -> [Int] {
        if let priorities {
            var best = Int.max
            for index in 0..<count where !excluded.contains(index) { best = min(best, priorities[index]) }
            guard best != Int.max else { return excluded }
            return (0..<count).filter { excluded.contains($0) || priorities[$0] != best }
        }
        guard let groups else { return excluded }
        let live = groups.filter { group in group.endpoints.contains { !excluded.contains($0) } }
        let total = live.reduce(0) { $0 + $1.weight }
        guard total > 0 else { return Array(0..<count) }
        var point = Int(roll % UInt64(total))
        var chosen = live[0].endpoints
        for group in live {
            if point < group.weight {
                chosen = group.endpoints
                break
            }
            point -= group.weight
        }
        return (0..<count).filter { excluded.contains($0) || !chosen.contains($0) }
    }
}
