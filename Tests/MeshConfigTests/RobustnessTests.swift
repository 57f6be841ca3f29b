import Testing

@testable import MeshConfig

/// Whatever the input, loading returns diagnostics and never crashes.
@Suite struct RobustnessTests {
    /// A small deterministic generator (SplitMix64), so failures reproduce.
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            self.state &+= 0x9E37_79B9_7F4A_7C15
            var z = self.state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static let fragments = [
        "- ", ": ", "[", "]", "{", "}", "\"", "'", "*", "&a ", "*a", "<<: ", "---\n", "\n  ", "\t", "#", "|",
        "80", "-1", "99999999999999999999", "0x10", "true", "null", "~", "1.5", "30s", "reviews", "v1", "weight",
        "route", "destination", "host", "port", "subset", "match", "tcp", "http", "hosts", "gateways", "mesh",
        "regex: \"(\"", "uri", "headers", "spec", "kind", "VirtualService", "Gateway", "ServiceEntry", "ä", "\u{0}",
    ]

    @Test func mutatedSamplesNeverCrash() throws {
        let seeds = [
            try sample("bookinfo/platform/kube/bookinfo.yaml").contents,
            try sample("bookinfo/networking/bookinfo-gateway.yaml").contents,
            try sample("bookinfo/networking/destination-rule-all.yaml").contents,
            try sample("tcp-echo/tcp-echo-all-v1.yaml").contents,
        ]
        var generator = Generator(state: 0x5EED)
        for round in 0..<300 {
            var lines = seeds[round % seeds.count].split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                let index = Int.random(in: 0..<lines.count, using: &generator)
                switch Int.random(in: 0..<5, using: &generator) {
                case 0: lines.remove(at: index)
                case 1: lines.insert(lines[index], at: index)
                case 2:
                    var line = lines[index]
                    let position = line.index(line.startIndex, offsetBy: Int.random(in: 0...line.count, using: &generator))
                    line.insert(contentsOf: Self.fragments.randomElement(using: &generator)!, at: position)
                    lines[index] = line
                case 3: lines[index] = String(lines[index].prefix(Int.random(in: 0...lines[index].count, using: &generator)))
                default: lines.swapAt(index, Int.random(in: 0..<lines.count, using: &generator))
                }
                if lines.isEmpty { lines = [""] }
            }
            let text = lines.joined(separator: "\n")
            let files = [
                ConfigFile(path: "conf/services.yaml", contents: seeds[0]),
                ConfigFile(path: round % 7 == 0 ? "conf/meshgate.yaml" : "conf/mutated.yaml", contents: text),
            ]
            let result = ConfigLoader.load(files: files)
            #expect((result.configuration == nil) == result.diagnostics.hasErrors)
            let places = result.diagnostics.compactMap { $0.location.map { [$0.file, String(format: "%09d", $0.line)] } }
            #expect(places.map { $0.joined() } == places.map { $0.joined() }.sorted())
        }
    }

    @Test func randomFragmentSoupNeverCrashes() {
        var generator = Generator(state: 42)
        for _ in 0..<1500 {
            let text = (0..<Int.random(in: 0...40, using: &generator))
                .map { _ in Self.fragments.randomElement(using: &generator)! }
                .joined()
            _ = ConfigLoader.load(files: [ConfigFile(path: "conf/soup.yaml", contents: text)])
        }
    }
}
