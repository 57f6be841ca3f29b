import Foundation
import Testing

@testable import MeshConfig

/// ConfigLoader.load(directory:) on a real directory.
@Suite struct DirectoryTests {
    /// A fresh directory under the temporary directory, removed after `body`.
    func withDirectory(_ files: [String: String], _ body: (String) throws -> Void) throws {
        let root = FileManager.default.temporaryDirectory
            .appendingPathComponent("meshconfig-tests-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        for (path, contents) in files {
            let full = "\(root)/\(path)"
            try FileManager.default.createDirectory(
                atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true
            )
            try contents.write(toFile: full, atomically: true, encoding: .utf8)
        }
        try body(root)
    }

    @Test func readsSettingsAndEveryYAMLFileRecursivelyInPathOrder() throws {
        let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: NAME}\n"
        try self.withDirectory([
            "conf/meshgate.yaml": "namespace: edge\nadminPort: 15001\n",
            "conf/b/reviews.yaml": serviceYAML("reviews"),
            "conf/a.yml": deployment.replacingOccurrences(of: "NAME", with: "a"),
            "conf/c/d/e.yaml": deployment.replacingOccurrences(of: "NAME", with: "e"),
            "conf/notes.txt": "not: [yaml",
            "conf/.hidden.yaml": "not: [yaml",
            "conf/..2024_01_01/dup.yaml": "not: [yaml",
        ]) { root in
            let result = ConfigLoader.load(directory: "\(root)/conf")
            #expect(result.lines == [
                "\(root)/conf/a.yml:1: info: Deployment/a: skipped: Meshgate does not run Deployment",
                "\(root)/conf/c/d/e.yaml:1: info: Deployment/e: skipped: Meshgate does not run Deployment",
            ])
            let configuration = try #require(result.configuration)
            #expect(configuration.settings.namespace == "edge")
            #expect(configuration.settings.adminPort == 15001)
            #expect(configuration.services.first?.meta.location == SourceLocation(file: "\(root)/conf/b/reviews.yaml", line: 1))
            // A trailing slash does not double the separator.
            #expect(ConfigLoader.load(directory: "\(root)/conf/").lines.first?.hasPrefix("\(root)/conf/a.yml:1:") == true)
        }
    }

    @Test func missingSettingsFileMeansDefaults() throws {
        try self.withDirectory(["conf/reviews.yaml": serviceYAML("reviews")]) { root in
            let result = ConfigLoader.load(directory: "\(root)/conf")
            #expect(result.diagnostics.isEmpty, "\(result.lines)")
            var defaults = MeshSettings()
            defaults.credentialsDir = "\(root)/conf/certs"  // `certs` beside meshgate.yaml, made absolute
            #expect(result.configuration?.settings == defaults)
        }
    }

    @Test func unreadableAndNonUTF8FilesAreErrors() throws {
        try self.withDirectory(["conf/ok.yaml": ""]) { root in
            try FileManager.default.createSymbolicLink(atPath: "\(root)/conf/broken.yaml", withDestinationPath: "\(root)/nowhere")
            try Data([0x61, 0x3A, 0x20, 0xFF, 0xFE, 0x0A]).write(to: URL(fileURLWithPath: "\(root)/conf/latin1.yaml"))
            let result = ConfigLoader.load(directory: "\(root)/conf")
            #expect(result.configuration == nil)
            #expect(result.lines == [
                "\(root)/conf/broken.yaml:1: error: cannot read this file",
                "\(root)/conf/latin1.yaml:1: error: this file is not UTF-8 text",
            ])
        }
    }

    @Test func missingDirectoryIsAnError() {
        let result = ConfigLoader.load(directory: "/nonexistent/meshgate-conf")
        #expect(result.configuration == nil)
        #expect(result.lines == ["error: /nonexistent/meshgate-conf: cannot read the config directory: no such directory"])
    }
}
