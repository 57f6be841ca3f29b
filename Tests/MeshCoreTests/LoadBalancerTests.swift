import MeshConfig
import NIOHTTP1
import Testing

@testable import MeshCore

/// The balancers' picks, with the rotation, the random draws and the active requests passed in.
@Suite struct LoadBalancerTests {
    static let keys = (1...5).map { "10.0.0.\($0):8080" }

    func draw(rotation: Int = 0, random: (UInt64, UInt64) = (0, 0), hash: UInt64? = nil) -> LoadBalancer.Draw {
        LoadBalancer.Draw(rotation: rotation, random: random, hash: hash)
    }

    @Test func roundRobinFollowsTheRotationAndSkipsTriedEndpoints() {
        let balancer = LoadBalancer(.roundRobin, keys: Self.keys)
        let picks = (0..<10).map { balancer.pick(count: 5, draw: draw(rotation: $0)) { _ in 0 } }
        #expect(picks == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4])
        #expect(balancer.pick(count: 5, draw: draw(rotation: 2), avoiding: [2, 3]) { _ in 0 } == 4)
        #expect(balancer.pick(count: 2, draw: draw(rotation: 0), avoiding: [0, 1]) { _ in 0 } == 0, "all tried: any")
        #expect(balancer.pick(count: 0, draw: draw()) { _ in 0 } == nil)
    }

    @Test func leastRequestTakesTheLessBusyOfTwoDistinctRandomChoices() {
        let balancer = LoadBalancer(nil, keys: Self.keys)  // Istio's default
        #expect(balancer.countsActiveRequests)
        let active = [5, 0, 3, 3, 9]
        // Draws 0 and 0: endpoint 0, then 1 (the second draw skips the first): 1 has fewer.
        #expect(balancer.pick(count: 5, draw: draw(random: (0, 0))) { active[$0] } == 1)
        // 2 and 3 are equally busy: the first choice stays.
        #expect(balancer.pick(count: 5, draw: draw(random: (2, 2))) { active[$0] } == 2)
        // 4 (busiest) against 0.
        #expect(balancer.pick(count: 5, draw: draw(random: (4, 0))) { active[$0] } == 0)
        // Over every pair of draws the busiest endpoint is picked only when both choices are it: never.
        var picks = [Int](repeating: 0, count: 5)
        for one in 0..<5 {
            for two in 0..<4 { picks[balancer.pick(count: 5, draw: draw(random: (UInt64(one), UInt64(two)))) { active[$0] }!] += 1 }
        }
        #expect(picks[4] == 0)
        #expect(picks[1] == 8, "the idle endpoint wins every pair it is in")
    }

    @Test func randomUsesItsDraw() {
        let balancer = LoadBalancer(.random, keys: Self.keys)
        #expect(!balancer.countsActiveRequests)
        #expect((0..<5).map { balancer.pick(count: 5, draw: draw(random: (UInt64($0) + 10, 0))) { _ in 0 } } == [0, 1, 2, 3, 4])
    }

    @Test(arguments: [
        ConsistentHashPolicy.Table.ringHash(minimumSize: 1024), .maglev(tableSize: 65537),
    ])
    func consistentHashKeepsKeysAndMovesAboutOneNthWhenAnEndpointGoes(table: ConsistentHashPolicy.Table) {
        let policy = LoadBalancerPolicy.consistentHash(ConsistentHashPolicy(key: .header("x-user"), table: table))
        let five = LoadBalancer(policy, keys: Self.keys)
        let users = (0..<2000).map { StableHash.hash("user-\($0)") }
        let before = users.map { five.pick(count: 5, draw: draw(random: (7, 7), hash: $0)) { _ in 0 }! }
        // The same key, the same endpoint, whatever the random draws.
        #expect(users.map { five.pick(count: 5, draw: draw(random: (1, 3), hash: $0)) { _ in 0 }! } == before)
        // Spread: each endpoint gets a fair share (20% ± 8%).
        for endpoint in 0..<5 {
            let share = Double(before.filter { $0 == endpoint }.count) / Double(users.count)
            #expect(abs(share - 0.2) < 0.08, "endpoint \(endpoint): \(share)")
        }
        // Declared in another order: the same owners (the table follows the addresses).
        let reordered = LoadBalancer(policy, keys: Self.keys.reversed())
        #expect(users.map { Self.keys.reversed()[reordered.pick(count: 5, draw: draw(hash: $0)) { _ in 0 }!] } == before.map { Self.keys[$0] })
        // Endpoint 10.0.0.3 goes: only its keys move (none other for the ring, a few for Maglev).
        let four = Array(Self.keys.enumerated().filter { $0.offset != 2 })
        let after = LoadBalancer(policy, keys: four.map(\.element))
        var moved = 0
        for (user, owner) in zip(users, before) {
            let now = four[after.pick(count: 4, draw: draw(hash: user)) { _ in 0 }!].offset
            if owner != 2 && now != owner { moved += 1 }
            if owner == 2 { #expect(now != 2) }
        }
        #expect(Double(moved) / Double(users.count) < 0.05, "keys of live endpoints that moved: \(moved)")
    }

    @Test func aRetriedHashedKeyWalksToTheNextEndpointAndAKeylessRequestIsRandom() {
        let policy = LoadBalancerPolicy.consistentHash(ConsistentHashPolicy(key: .sourceIP))
        let balancer = LoadBalancer(policy, keys: Self.keys)
        let hash = StableHash.hash("192.0.2.7")
        let first = balancer.pick(count: 5, draw: draw(hash: hash)) { _ in 0 }!
        let second = balancer.pick(count: 5, draw: draw(hash: hash), avoiding: [first]) { _ in 0 }!
        #expect(second != first)
        #expect(balancer.pick(count: 5, draw: draw(random: (9, 0), hash: hash), avoiding: [first]) { _ in 0 } == second)
        let third = balancer.pick(count: 5, draw: draw(hash: hash), avoiding: [first, second]) { _ in 0 }!
        #expect(![first, second].contains(third))
        #expect(balancer.pick(count: 5, draw: draw(random: (3, 0), hash: nil)) { _ in 0 } == 3)
    }

    @Test func tablesAreStableAcrossProcesses() {
        // Fixed values: a change here means keys move for every user on upgrade.
        #expect(StableHash.hash("") == StableHash.mix(0xCBF2_9CE4_8422_2325))
        let ring = RingHashTable(keys: Self.keys, minimumSize: 1024)
        #expect(ring.size == 5 * 1024)
        #expect(RingHashTable(keys: Self.keys, minimumSize: 1024, maxSize: 2000).size == 5 * 400)
        let maglev = MaglevTable(keys: Self.keys, size: 7)
        // Every slot owned, each endpoint at least once.
        #expect(Set((0..<7).map { maglev.endpoint(for: UInt64($0), attempt: 0) }) == Set(0..<5))
    }

    @Test func requestHashKeysComeFromTheRequest() {
        var headers = HTTPHeaders([("x-user", "alice"), ("cookie", "a=1; session=\"abc\""), ("cookie", "b=2")])
        let routing = RouteRequest(head: HTTPRequestHead(version: .http1_1, method: .GET, uri: "/p?u=bob&v=1"), host: "h", port: 80)
        #expect(RequestHashKey(.header("x-user"), headers: headers, routing: routing, clientIP: "1.2.3.4").hash == StableHash.hash("alice"))
        #expect(RequestHashKey(.queryParameter("u"), headers: headers, routing: routing, clientIP: "").hash == StableHash.hash("bob"))
        #expect(RequestHashKey(.sourceIP, headers: headers, routing: routing, clientIP: "1.2.3.4").hash == StableHash.hash("1.2.3.4"))
        let present = RequestHashKey(.cookie(name: "session", path: nil, ttl: .seconds(30)), headers: headers, routing: routing, clientIP: "")
        #expect(present.hash == StableHash.hash("abc"))
        #expect(present.setCookie == nil)
        #expect(RequestHashKey.cookie("b", in: headers) == "2")
        // Missing, with a ttl: generated and set; without a ttl: no key.
        headers.remove(name: "cookie")
        let generated = RequestHashKey(.cookie(name: "session", path: "/", ttl: .seconds(30)), headers: headers, routing: routing, clientIP: "")
        let cookie = try! #require(generated.setCookie)
        #expect(cookie.hasPrefix("session=\""))
        #expect(cookie.hasSuffix("\"; Max-Age=30; Path=/; HttpOnly"))
        let value = String(cookie.dropFirst("session=\"".count).prefix { $0 != "\"" })
        #expect(generated.hash == StableHash.hash(value))
        #expect(RequestHashKey(.cookie(name: "s", path: nil, ttl: .zero), headers: headers, routing: routing, clientIP: "").setCookie?.contains("Max-Age") == false)
        #expect(RequestHashKey(.cookie(name: "s", path: nil, ttl: nil), headers: headers, routing: routing, clientIP: "").hash == nil)
        #expect(RequestHashKey(.header("x-none"), headers: headers, routing: routing, clientIP: "").hash == nil)
    }
}
