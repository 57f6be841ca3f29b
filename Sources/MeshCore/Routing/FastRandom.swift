import Atomics

/// A cheap, thread-safe source of well-mixed random numbers for per-request and per-connection
/// picks (weighted routes): one relaxed atomic add and a SplitMix64 finaliser, no syscall, no lock.
///
/// Not for secrets. Seeded from the system generator once per process.
public final class FastRandom: Sendable {
    public static let shared = FastRandom(seed: UInt64.random(in: .min ... .max))

    private let state: ManagedAtomic<UInt64>

    public init(seed: UInt64) {
        self.state = ManagedAtomic(seed)
    }

    public func next() -> UInt64 {
        var z = self.state.loadThenWrappingIncrement(by: 0x9E37_79B9_7F4A_7C15, ordering: .relaxed)
        &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A value in `0..<upperBound` (upperBound > 0).
    public func next(below upperBound: Int) -> Int {
        Int(self.next() % UInt64(upperBound))
    }

    /// Uniform in 0..<1.
    public func nextUnit() -> Double {
        Double(self.next() >> 11) * 0x1.0p-53
    }

    /// Uniform in 0..<100, for percentages.
    public func nextPercent() -> Double {
        self.nextUnit() * 100
    }
}
