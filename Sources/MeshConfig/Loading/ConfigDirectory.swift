import Foundation

/// Reads a config directory: `meshgate.yaml` and every `*.yaml` / `*.yml` below it, sorted by path.
enum ConfigDirectory {
    static let settingsFileName = "meshgate.yaml"

    /// `directory` as an absolute path (taken from the current directory when relative), so that the
    /// paths resolved against it do not depend on where the process later runs.
    static func absolute(_ directory: String) -> String {
        directory.hasPrefix("/") ? ConfigPaths.normalize(directory) : ConfigPaths.resolve(directory, against: FileManager.default.currentDirectoryPath)
    }

    /// The files as ``ConfigFile``s (paths joined onto `directory` as given); what cannot be read is
    /// reported and left out.
    static func read(_ directory: String, sink: DiagnosticSink) -> [ConfigFile] {
        let manager = FileManager.default
        var isDirectory: ObjCBool = false
        guard manager.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            sink.error(at: nil, path: directory, "cannot read the config directory: no such directory")
            return []
        }
        guard let enumerator = manager.enumerator(atPath: directory) else {
            sink.error(at: nil, path: directory, "cannot read the config directory")
            return []
        }
        var relativePaths: [String] = []
        while let relative = enumerator.nextObject() as? String {
            let name = (relative as NSString).lastPathComponent
            // Hidden entries (editor files, `..data` of a mounted ConfigMap) would duplicate resources.
            if name.hasPrefix(".") {
                if (enumerator.fileAttributes?[.type] as? FileAttributeType) == .typeDirectory { enumerator.skipDescendants() }
                continue
            }
            if name.hasSuffix(".yaml") || name.hasSuffix(".yml") { relativePaths.append(relative) }
        }
        let prefix = directory.hasSuffix("/") ? directory : directory + "/"
        return relativePaths.sorted().compactMap { relative in
            let path = prefix + relative
            if manager.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue { return nil }
            guard let data = manager.contents(atPath: path) else {
                sink.error(at: SourceLocation(file: path, line: 1), path: "", "cannot read this file")
                return nil
            }
            guard let text = String(data: data, encoding: .utf8) else {
                sink.error(at: SourceLocation(file: path, line: 1), path: "", "this file is not UTF-8 text")
                return nil
            }
            return ConfigFile(path: path, contents: text)
        }
    }
}
