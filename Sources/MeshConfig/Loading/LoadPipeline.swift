/// raw → validated, on files already read: YAML documents → declarations → cross-resource checks.
enum LoadPipeline {
    /// `configDirectory`: where relative paths in the config start (a loaded directory); nil = the
    /// directory of `meshgate.yaml`, else of each resource file.
    static func run(
        _ files: [ConfigFile], configDirectory: String? = nil, options: LoadOptions = LoadOptions(), sink: DiagnosticSink
    ) -> ConfigLoadResult {
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
        let settingsFile = files.first { Self.isSettingsFile($0.path) }
        if options.requireSettingsFile, settingsFile == nil {
            let path = configDirectory.map { "\($0)/\(ConfigDirectory.settingsFileName)" } ?? ConfigDirectory.settingsFileName
            sink.error(
                at: nil, path: path,
                "missing: the running config was loaded with one, and without it every setting would silently fall back to its default; this load is refused"
            )
        }
        declarations.settings.sourceFile = settingsFile?.path
        ConfigPaths.resolveTLS(
            in: &declarations,
            configDirectory: configDirectory ?? settingsFile.map { ConfigPaths.directory(of: $0.path) },
            firstFile: files.first?.path
        )
        let configuration = ConfigValidator.validate(declarations, sink: sink)
        var diagnostics = sink.sorted
        if options.strict {
            for index in diagnostics.indices where diagnostics[index].isDanglingReference {
                diagnostics[index].severity = .error
            }
        }
        return ConfigLoadResult(configuration: diagnostics.hasErrors ? nil : configuration, diagnostics: diagnostics)
    }

    static func isSettingsFile(_ path: String) -> Bool {
        path == ConfigDirectory.settingsFileName || path.hasSuffix("/" + ConfigDirectory.settingsFileName)
    }
}
