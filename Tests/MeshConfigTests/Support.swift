import Foundation
import Testing

@testable import MeshConfig

/// Loads inline YAML as one file (`conf/test.yaml` unless named).
func load(_ yaml: String, file: String = "conf/test.yaml") -> ConfigLoadResult {
    ConfigLoader.load(files: [ConfigFile(path: file, contents: yaml)])
}

/// Loads several inline files, given as (path, YAML) pairs in that order.
func load(_ files: [(String, String)], options: LoadOptions = LoadOptions()) -> ConfigLoadResult {
    ConfigLoader.load(files: files.map { ConfigFile(path: $0.0, contents: $0.1) }, options: options)
}

/// Istio's sample configs, kept in the repository as fixtures: `<repo>/tests/fixtures/istio`.
let istioSamples: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent()  // MeshConfigTests
    .deletingLastPathComponent()  // Tests
    .deletingLastPathComponent()  // repository root
    .appendingPathComponent("tests/fixtures/istio")

/// A shared sample file as a ConfigFile named by its path below `istio/`.
func sample(_ relativePath: String) throws -> ConfigFile {
    let url = istioSamples.appendingPathComponent(relativePath)
    let text = try String(contentsOf: url, encoding: .utf8)
    return ConfigFile(path: "istio/\(relativePath)", contents: text)
}

extension ConfigLoadResult {
    var lines: [String] { self.diagnostics.map(\.description) }
    var errors: [Diagnostic] { self.diagnostics.filter { $0.severity == .error } }
    var warnings: [Diagnostic] { self.diagnostics.filter { $0.severity == .warning } }
    var infos: [Diagnostic] { self.diagnostics.filter { $0.severity == .info } }

    /// The diagnostics of one severity whose text contains every fragment.
    func find(_ severity: Diagnostic.Severity, _ fragments: String...) -> [Diagnostic] {
        self.diagnostics.filter { diagnostic in
            diagnostic.severity == severity && fragments.allSatisfy { diagnostic.description.contains($0) }
        }
    }
}

/// A service declaration with one endpoint per version, for tests that need destinations to resolve.
func serviceYAML(_ name: String, port: Int = 9080, versions: [String] = ["v1"], namespace: String = "default") -> String {
    var yaml = """
        apiVersion: v1
        kind: Service
        metadata:
          name: \(name)
          namespace: \(namespace)
        spec:
          ports:
          - port: \(port)
            name: http
          selector:
            app: \(name)

        """
    for (index, version) in versions.enumerated() {
        yaml += """
            ---
            apiVersion: networking.istio.io/v1
            kind: WorkloadEntry
            metadata:
              name: \(name)-\(version)
              namespace: \(namespace)
            spec:
              address: 127.0.1.\(index + 1)
              labels:
                app: \(name)
                version: \(version)

            """
    }
    return yaml
}
