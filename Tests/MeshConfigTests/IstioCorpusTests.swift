import Foundation
import Testing

@testable import MeshConfig

/// "Accept what Istio accepts": every real Istio document in tests/fixtures/istio-corpus and
/// tests/fixtures/istio (samples and istio/istio test data, see the corpus README) loads, each file
/// on its own, without an error, unless Istio rejects it too; and none has an unknown field.
@Suite struct IstioCorpusTests {
    static let fixtures = istioSamples.deletingLastPathComponent()

    /// Files Istio rejects as well, with the diagnostic Meshgate gives and why Istio agrees.
    static let rejectedByIstioToo: [String: (message: String, reason: String)] = [
        "istio-corpus/analyzers-testdata/virtualservice_destinationhosts.yaml": (
            "invalid host \"*\"",
            "Istio's ServiceEntry validation refuses a full wildcard host (\"invalid host *\"); the analyzer test feeds it on purpose"
        ),
    ]

    /// Every `*.yaml` below the two fixture folders, as paths relative to tests/fixtures.
    static func corpusFiles() throws -> [String] {
        var files: [String] = []
        for folder in ["istio-corpus", "istio"] {
            let root = fixtures.appendingPathComponent(folder)
            let enumerator = try #require(FileManager.default.enumerator(atPath: root.path))
            while let relative = enumerator.nextObject() as? String {
                if relative.hasSuffix(".yaml") { files.append("\(folder)/\(relative)") }
            }
        }
        return files.sorted()
    }

    @Test func noRealIstioDocumentIsRejectedUnlessIstioRejectsItToo() throws {
        var unexpected: [String] = []
        var istioKinds: [String: Int] = [:]
        for path in try Self.corpusFiles() {
            let text = try String(contentsOf: Self.fixtures.appendingPathComponent(path), encoding: .utf8)
            let result = ConfigLoader.load(files: [ConfigFile(path: path, contents: text)])
            for line in text.split(separator: "\n") where line.hasPrefix("kind: ") {
                let kind = String(line.dropFirst("kind: ".count))
                if Self.istioKinds.contains(kind) { istioKinds[kind, default: 0] += 1 }
            }
            let unknown = result.diagnostics.filter { $0.message.contains("unknown field") || $0.message.contains("unknown kind") }
            unexpected += unknown.map(\.description)
            let errors = result.errors.map(\.description)
            if let expected = Self.rejectedByIstioToo[path] {
                #expect(!errors.isEmpty && errors.allSatisfy { $0.contains(expected.message) }, "\(path): \(errors)")
            } else {
                unexpected += errors
            }
        }
        #expect(unexpected.isEmpty, "\(unexpected.joined(separator: "\n"))")
        // The corpus spans every kind Meshgate reads or skips, and is not small.
        #expect(istioKinds.values.reduce(0, +) >= 60, "\(istioKinds)")
        for kind in ["Gateway", "VirtualService", "DestinationRule", "ServiceEntry", "Sidecar", "PeerAuthentication", "AuthorizationPolicy", "RequestAuthentication", "Telemetry"] {
            #expect(istioKinds[kind, default: 0] > 0, "no \(kind) in the corpus")
        }
    }

    static let istioKinds: Set = [
        "Gateway", "VirtualService", "DestinationRule", "ServiceEntry", "WorkloadEntry", "Sidecar",
        "PeerAuthentication", "AuthorizationPolicy", "RequestAuthentication", "Telemetry",
    ]
}
