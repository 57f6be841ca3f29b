import MeshConfig

/// How a cluster picks an endpoint (Envoy's load balancers), compiled once per snapshot from
/// `trafficPolicy.loadBalancer`. Pure: the round-robin position, the random draws and the
/// endpoints' active requests are passed in (``Cluster`` keeps them), so every pick is unit tested
/// without sockets.
struct LoadBalancer: Sendable {
    enum Algorithm: Sendable {
        case roundRobin
        case random
        /// Power of two choices: of two endpoints drawn at random, the one with fewer active
        /// requests (Envoy's LEAST_REQUEST with equal weights and its default choice count).
        case leastRequest
        /// A table over the endpoints; the key comes from the request (or the connection).
        case consistentHash(ConsistentHashPolicy.Key, any ConsistentHashTable)
    }

    /// What one pick may use.
    struct Draw {
        /// The cluster's round-robin counter, advanced once per pick.
        var rotation: Int
        /// Two independent random numbers.
        var random: (UInt64, UInt64)
        /// The key's hash, for a consistent-hash balancer (nil: no key in this request: random).
        var hash: UInt64?
    }

    let algorithm: Algorithm

    /// Compiled for `count` endpoints named by `keys` (their `ip:port`).
    init(_ policy: LoadBalancerPolicy?, keys: [String]) {
        switch policy ?? .leastRequest {
        case .roundRobin: self.algorithm = .roundRobin
        case .random: self.algorithm = .random
        case .leastRequest: self.algorithm = .leastRequest
        case .consistentHash(let hash):
            switch hash.table {
            case .ringHash(let minimumSize): self.algorithm = .consistentHash(hash.key, RingHashTable(keys: keys, minimumSize: minimumSize))
            case .maglev(let tableSize): self.algorithm = .consistentHash(hash.key, MaglevTable(keys: keys, size: tableSize))
            }
        }
    }

    /// As Istio spells it.
    var name: String {
        switch self.algorithm {
        case .roundRobin: return "ROUND_ROBIN"
        case .random: return "RANDOM"
        case .leastRequest: return "LEAST_REQUEST"
        case .consistentHash(_, let table): return table is MaglevTable ? "MAGLEV" : "RING_HASH"
        }
    }

    /// Whether picks read the endpoints' active requests (only then are they counted).
    var countsActiveRequests: Bool {
        if case .leastRequest = self.algorithm { return true }
        return false
    }

    /// The key a consistent-hash balancer hashes, if any.
    var hashKey: ConsistentHashPolicy.Key? {
        if case .consistentHash(let key, _) = self.algorithm { return key }
        return nil
    }

    /// An endpoint index in `0..<count`, never one of `excluded` (ejected by outlier detection),
    /// and other than those `tried` when there is one (a retry's previous-hosts predicate); nil when
    /// no endpoint is left. `active(i)`: endpoint i's requests in flight.
    func pick(count: Int, draw: Draw, avoiding tried: [Int] = [], excluding excluded: [Int] = [], active: (Int) -> Int) -> Int? {
        if case .consistentHash(_, let table) = self.algorithm, let hash = draw.hash {
            guard count > 1 else { return count == 1 && excluded.isEmpty ? 0 : nil }
            // Along the table from the key's endpoint: the first allowed one not tried, else the
            // first allowed one (so a retried key still lands predictably).
            var firstAllowed: Int?
            for attempt in 0..<count {
                let index = table.endpoint(for: hash, attempt: attempt)
                guard !excluded.contains(index) else { continue }
                if !tried.contains(index) { return index }
                if firstAllowed == nil { firstAllowed = index }
            }
            return firstAllowed
        }
        guard !excluded.isEmpty else { return self.pickAmong(count, draw: draw, tried: tried, active: active) }
        let allowed = (0..<count).filter { !excluded.contains($0) }
        let position = self.pickAmong(
            allowed.count, draw: draw, tried: tried.compactMap { allowed.firstIndex(of: $0) }, active: { active(allowed[$0]) }
        )
        return position.map { allowed[$0] }
    }

    /// The algorithm over `0..<count` (a hash balancer without a key picks at random).
    private func pickAmong(_ count: Int, draw: Draw, tried: [Int], active: (Int) -> Int) -> Int? {
        switch count {
        case 0: return nil
        case 1: return 0
        default: break
        }
        let first: Int
        switch self.algorithm {
        case .roundRobin:
            first = Int(UInt(bitPattern: draw.rotation) % UInt(count))
        case .random, .consistentHash:
            first = Int(draw.random.0 % UInt64(count))
        case .leastRequest:
            let one = Int(draw.random.0 % UInt64(count))
            // A second draw among the others, so the two choices always differ.
            var two = Int(draw.random.1 % UInt64(count - 1))
            if two >= one { two += 1 }
            first = active(two) < active(one) ? two : one
        }
        if tried.isEmpty || !tried.contains(first) { return first }
        // Every other pick is free to go elsewhere: the first endpoint after `first` not tried.
        for step in 1..<count where !tried.contains((first + step) % count) {
            return (first + step) % count
        }
        return first
    }
}
