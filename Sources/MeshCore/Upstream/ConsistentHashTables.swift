/// A 64-bit hash that is the same in every process and on every run (Swift's `Hasher` is seeded per
/// process): FNV-1a over the bytes, then SplitMix64's finaliser so near keys (`10.0.0.1:80_0`,
/// `…_1`) land far apart on a ring.
enum StableHash {
    static func hash(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in text.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
        }
        return self.mix(hash)
    }

    static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A consistent-hash table over a cluster's endpoints, built once per snapshot from the endpoints'
/// addresses alone: the same endpoint set gives the same table in every process and after every
/// reload, whatever the order the endpoints were declared in.
protocol ConsistentHashTable: Sendable {
    /// The endpoint index for a key's hash; `attempt` > 0 walks on to the next distinct endpoints
    /// (a retry avoiding the ones already tried).
    func endpoint(for hash: UInt64, attempt: Int) -> Int
}

/// A ring hash (Karger et al., as Envoy's): each endpoint is hashed onto a 64-bit ring at
/// `minimumSize` points (fewer when N × minimumSize would pass `maxSize`), so the ring has at least
/// `minimumSize` points; a key goes to the first point at or after its hash. Unlike Envoy's
/// `ceil(minimumSize / N)` points per endpoint, the count does not change with N, so when one of N
/// endpoints goes only the keys on its arcs (about 1/N) move.
struct RingHashTable: ConsistentHashTable {
    /// Ring points, sorted by hash.
    private let hashes: [UInt64]
    private let endpoints: [Int32]
    private let endpointCount: Int

    /// `keys`: one stable name per endpoint (its `ip:port`).
    init(keys: [String], minimumSize: Int, maxSize: Int = 8_388_608) {
        var points: [(hash: UInt64, endpoint: Int32)] = []
        let perEndpoint = keys.isEmpty ? 0 : max(1, min(minimumSize, maxSize / keys.count))
        points.reserveCapacity(perEndpoint * keys.count)
        for (index, key) in keys.enumerated() {
            for replica in 0..<perEndpoint {
                points.append((StableHash.hash("\(key)_\(replica)"), Int32(index)))
            }
        }
        // Ties (vanishingly rare) are broken by the endpoint's key, not its position in the config.
        points.sort { $0.hash != $1.hash ? $0.hash < $1.hash : keys[Int($0.endpoint)] < keys[Int($1.endpoint)] }
        self.hashes = points.map(\.hash)
        self.endpoints = points.map(\.endpoint)
        self.endpointCount = keys.count
    }

    var size: Int { self.hashes.count }

    func endpoint(for hash: UInt64, attempt: Int = 0) -> Int {
        var low = 0
        var high = self.hashes.count
        while low < high {
            let middle = (low + high) / 2
            if self.hashes[middle] < hash { low = middle + 1 } else { high = middle }
        }
        var position = low == self.hashes.count ? 0 : low
        guard attempt > 0 else { return Int(self.endpoints[position]) }
        // Walk on to the attempt-th endpoint after this one that differs from those before it.
        var seen: [Int32] = [self.endpoints[position]]
        for _ in 0..<self.hashes.count where seen.count <= min(attempt, self.endpointCount - 1) {
            position = (position + 1) % self.hashes.count
            if !seen.contains(self.endpoints[position]) { seen.append(self.endpoints[position]) }
        }
        return Int(seen[min(attempt, seen.count - 1)])
    }
}

/// Google's Maglev table (Eisenbud et al., NSDI 2016), as Envoy builds it: each endpoint fills the
/// table's slots in its own permutation (offset and skip from two hashes of its name), taking turns,
/// until every slot is owned. Lookup is one modulo; about 1/N of the slots change owner when one of
/// N endpoints goes. `size` is prime.
struct MaglevTable: ConsistentHashTable {
    private let table: [Int32]
    private let endpointCount: Int

    init(keys: [String], size: Int) {
        self.endpointCount = keys.count
        guard !keys.isEmpty else {
            self.table = []
            return
        }
        // Turns are taken in the order of the endpoints' names, so the table does not depend on
        // the order they were declared in.
        let order = keys.indices.sorted { keys[$0] < keys[$1] }
        let offsets = order.map { Int(StableHash.hash(keys[$0]) % UInt64(size)) }
        let skips = order.map { Int(StableHash.mix(StableHash.hash(keys[$0]) ^ 0x5851_F42D_4C95_7F2D) % UInt64(max(size - 1, 1))) + 1 }
        var next = [Int](repeating: 0, count: order.count)
        var table = [Int32](repeating: -1, count: size)
        var filled = 0
        while filled < size {
            for turn in order.indices where filled < size {
                var slot = (offsets[turn] + next[turn] * skips[turn]) % size
                while table[slot] >= 0 {
                    next[turn] += 1
                    slot = (offsets[turn] + next[turn] * skips[turn]) % size
                }
                table[slot] = Int32(order[turn])
                next[turn] += 1
                filled += 1
            }
        }
        self.table = table
    }

    func endpoint(for hash: UInt64, attempt: Int = 0) -> Int {
        let start = Int(hash % UInt64(self.table.count))
        guard attempt > 0 else { return Int(self.table[start]) }
        var seen: [Int32] = [self.table[start]]
        var slot = start
        for _ in 0..<self.table.count where seen.count <= min(attempt, self.endpointCount - 1) {
            slot = (slot + 1) % self.table.count
            if !seen.contains(self.table[slot]) { seen.append(self.table[slot]) }
        }
        return Int(seen[min(attempt, seen.count - 1)])
    }
}
