/// raw → validated, on files already read: YAML documents → declarations → cross-resource checks.
enum LoadPipeline {
    static func run(_ files: [ConfigFile], sink: DiagnosticSink) -> ConfigLoadResult {
        var decoder = ResourceDecoder(sink: sink)
        var settings: MeshSettings?
        for file in files {
            let documents = YAMLDocuments.parse(file.contents, file: file.path, sink: sink)
            guard Self.isSettingsFile(file.path) else {
                for document in documents {
                    decoder.decode(document: document, file: file.path)
                }
                continue
            }
            if settings != nil {
                sink.error(at: SourceLocation(file: file.path, line: 1), path: "", "a second \(ConfigDirectory.settingsFileName); only one is read")
            } else {
                settings = SettingsDecoder.decode(documents, file: file.path, sink: sink)
            }
        }
        var declarations = decoder.declarations
        declarations.settings = settings ?? MeshSettings()
        let configuration = ConfigValidator.validate(declarations, sink: sink)
        let diagnostics = sink.sorted
        return ConfigLoadResult(configuration: diagnostics.hasErrors ? nil : configuration, diagnostics: diagnostics)
    }

    static func isSettingsFile(_ path: String) -> Bool {
        path == ConfigDirectory.settingsFileName || path.hasSuffix("/" + ConfigDirectory.settingsFileName)
    }
}
