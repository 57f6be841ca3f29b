/// One config file's path and text.
public struct ConfigFile: Sendable, Hashable {
    public var path: String
    public var contents: String

    public init(path: String, contents: String) {
        self.path = path
        self.contents = contents
    }
}

/// The outcome of loading a config directory: the validated configuration when there is no error,
/// and every diagnostic (errors, warnings, infos) in file and line order.
public struct ConfigLoadResult: Sendable {
    public var configuration: MeshConfiguration?
    public var diagnostics: [Diagnostic]

    public init(configuration: MeshConfiguration?, diagnostics: [Diagnostic]) {
        self.configuration = configuration
        self.diagnostics = diagnostics
    }
}

/// How strict a load is.
public struct LoadOptions: Sendable, Hashable {
    /// References to undeclared hosts, ports, subsets, gateways and delegates are errors rather than
    /// warnings (`meshgate validate --strict`).
    public var strict: Bool
    /// `meshgate.yaml` must be there: a reload of a config that was loaded with one. Without it the
    /// load fails instead of quietly falling back to every default.
    public var requireSettingsFile: Bool

    public init(strict: Bool = false, requireSettingsFile: Bool = false) {
        self.strict = strict
        self.requireSettingsFile = requireSettingsFile
    }
}

/// raw → validated: reads `meshgate.yaml` and the Istio YAML beside it, decodes with file:line,
/// validates everything, and returns all problems at once.
public enum ConfigLoader {
    /// Reads `DIR/meshgate.yaml` and every other `*.yaml` / `*.yml` below DIR (sorted by path).
    /// Relative paths in the config (certificates, `credentialsDir`) are resolved against DIR, made absolute.
    public static func load(directory: String, options: LoadOptions = LoadOptions()) -> ConfigLoadResult {
        let sink = DiagnosticSink()
        let files = ConfigDirectory.read(directory, sink: sink)
        return LoadPipeline.run(files, configDirectory: ConfigDirectory.absolute(directory), options: options, sink: sink)
    }

    /// The same on files already read; `meshgate.yaml` is the file whose last path component is that name.
    /// Relative paths in the config are resolved against the directory of the `meshgate.yaml` path, or
    /// of the resource file when there is none; they stay relative when those paths are.
    public static func load(files: [ConfigFile], options: LoadOptions = LoadOptions()) -> ConfigLoadResult {
        LoadPipeline.run(files, options: options, sink: DiagnosticSink())
    }
}
