import MeshConfig
import Testing

@testable import MeshCore

/// Locality failover and distribution over endpoint localities, with the exclusions passed in.
@Suite struct LocalityBalancingTests {
    static let endpoints: [(locality: String?, labels: [String: String])] = [
        ("us-west/z1/s1", [:]), ("us-west/z1/s2", [:]), ("us-west/z2/s1", [:]), ("us-east/z1/s1", [:]), ("eu/z1/s1", [:]),
    ]

    @Test func failoverPrefersTheNearestLocalityLeftAndNamedRegionsNext() throws {
        let setting = LocalityLBSetting(failover: [.init(from: "us-west", to: "eu")])
        let balancing = try #require(
            LocalityBalancing(setting, outlierDetection: true, locality: "us-west/z1/s1", labels: [:], endpoints: Self.endpoints)
        )
        #expect(balancing.priorities == [0, 1, 2, 4, 3])
        #expect(balancing.restrict([], count: 5, roll: 0) == [1, 2, 3, 4])
        #expect(balancing.restrict([0], count: 5, roll: 0) == [0, 2, 3, 4])
        #expect(balancing.restrict([0, 1, 2], count: 5, roll: 0) == [0, 1, 2, 3], "the failover region before the others")
        #expect(balancing.restrict([0, 1, 2, 4], count: 5, roll: 0) == [0, 1, 2, 4])
        #expect(balancing.restrict([0, 1, 2, 3, 4], count: 5, roll: 0) == [0, 1, 2, 3, 4])
    }

    @Test func failoverNeedsOutlierDetectionAndALocalityAndCanBeTurnedOff() {
        #expect(LocalityBalancing(nil, outlierDetection: false, locality: "us-west/z1", labels: [:], endpoints: Self.endpoints) == nil)
        #expect(LocalityBalancing(nil, outlierDetection: true, locality: nil, labels: [:], endpoints: Self.endpoints) == nil)
        #expect(LocalityBalancing(LocalityLBSetting(enabled: false), outlierDetection: true, locality: "us-west", labels: [:], endpoints: Self.endpoints) == nil)
        // Istio's default: with outlier detection, failover by proximity without any setting.
        #expect(LocalityBalancing(nil, outlierDetection: true, locality: "us-east", labels: [:], endpoints: Self.endpoints)?.priorities == [3, 3, 3, 2, 3])
    }

    @Test func failoverPriorityLabelsComeFirst() throws {
        let endpoints: [(locality: String?, labels: [String: String])] = [
            ("r/z", ["network": "n2", "tier": "a"]), ("r2/z", ["network": "n1", "tier": "a"]), ("r2/z", ["network": "n1", "tier": "b"]),
        ]
        let balancing = try #require(LocalityBalancing(
            LocalityLBSetting(failoverPriority: ["network", "tier"]), outlierDetection: true, locality: "r/z",
            labels: ["network": "n1", "tier": "a"], endpoints: endpoints
        ))
        // No label shared (and the same zone), both labels shared (another region), the first one only.
        #expect(balancing.priorities == [21, 3, 13])
        #expect(balancing.restrict([], count: 3, roll: 0) == [0, 2])
    }

    @Test func distributeSplitsByWeightAndSkipsGroupsWithNothingLeft() throws {
        let setting = LocalityLBSetting(distribute: [
            .init(from: "us-west/z1/*", to: [.init(locality: "us-west/z1/*", weight: 80), .init(locality: "us-east/*", weight: 20)]),
        ])
        let balancing = try #require(LocalityBalancing(setting, outlierDetection: false, locality: "us-west/z1/s9", labels: [:], endpoints: Self.endpoints))
        #expect(balancing.restrict([], count: 5, roll: 0) == [2, 3, 4])
        #expect(balancing.restrict([], count: 5, roll: 79) == [2, 3, 4])
        #expect(balancing.restrict([], count: 5, roll: 80) == [0, 1, 2, 4])
        #expect(balancing.restrict([0, 1], count: 5, roll: 0) == [0, 1, 2, 4], "the first group has nothing left")
        // Another instance's locality matches no rule: nothing applies without outlier detection.
        #expect(LocalityBalancing(setting, outlierDetection: false, locality: "eu/z1", labels: [:], endpoints: Self.endpoints) == nil)
    }
}

extension LocalityBalancing: Equatable {
    public static func == (lhs: LocalityBalancing, rhs: LocalityBalancing) -> Bool {
        lhs.priorities == rhs.priorities && lhs.groups?.map(\.endpoints) == rhs.groups?.map(\.endpoints)
    }
}
