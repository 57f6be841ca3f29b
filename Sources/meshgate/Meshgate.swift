import ArgumentParser
import MeshConfig
import MeshCore
import MeshSampleApps
import MeshgateServer

#if canImport(Glibc)
import Glibc
#endif

@main
struct Meshgate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "meshgate",
        abstract: "An Istio-configured gateway and service mesh for plain Linux hosts.",
        subcommands: [GatewayCommand.self, SidecarCommand.self, ValidateCommand.self, SampleAppCommand.self, CACommand.self]
    )
}

struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "Run the edge gateway on the Istio YAML in a config directory."
    )

    @Option(name: .long, help: "The config directory: meshgate.yaml plus Istio YAML files.")
    var config: String = "/etc/meshgate"

    func run() async throws {
        let code = await GatewayProcess.run(configDirectory: self.config)
        if code != 0 { throw ExitCode(code) }
    }
}

struct SidecarCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sidecar",
        abstract: "Run beside one workload: mesh mTLS inbound to the app, the app's outbound calls routed into the mesh."
    )

    @Option(name: .long, help: "The config directory: meshgate.yaml (workload, appPorts, caDir or certDir) plus Istio YAML files.")
    var config: String = "/etc/meshgate/sidecar"

    func run() async throws {
        let code = await GatewayProcess.run(configDirectory: self.config, role: .sidecar)
        if code != 0 { throw ExitCode(code) }
    }
}

struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check a config directory; print every diagnostic as FILE:LINE: severity: PATH: message."
    )

    @Argument(help: "The config directory.")
    var directory: String

    @Flag(name: .long, help: "Check it as a sidecar's config (workload, appPorts, caDir or certDir).")
    var sidecar = false

    @Flag(
        name: .long,
        help: "Make references to undeclared hosts, ports, subsets, gateways and delegates errors (Istio accepts them, so they are warnings otherwise)."
    )
    var strict = false

    func run() throws {
        let diagnostics = GatewayProcess.validate(
            configDirectory: self.directory, role: self.sidecar ? .sidecar : .gateway, options: LoadOptions(strict: self.strict)
        )
        for diagnostic in diagnostics {
            print(diagnostic)
        }
        let errors = diagnostics.filter { $0.severity == .error }.count
        let warnings = diagnostics.filter { $0.severity == .warning }.count
        print("\(self.directory): \(errors) error(s), \(warnings) warning(s)")
        if errors > 0 { throw ExitCode(1) }
    }
}

struct SampleAppCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample-app",
        abstract: "Sample workloads for the demo and the tests.",
        subcommands: [TCPEcho.self, HTTPApp.self]
    )

    struct TCPEcho: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "tcp-echo",
            abstract: "Answer every line with 'PREFIX LINE', like Istio's tcp-echo-server."
        )
        @Option(help: "HOST:PORT to listen on.") var listen: String
        @Option(help: "The word put before every echoed line.") var prefix: String

        func run() async throws {
            let (host, port) = try parseHostPort(self.listen)
            try await SampleApps.runTCPEcho(host: host, port: port, prefix: self.prefix)
        }
    }

    struct HTTPApp: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "http",
            abstract: "A small httpbin-like service: /, /headers, /status/CODE, /delay/SECONDS."
        )
        @Option(help: "HOST:PORT to listen on.") var listen: String
        @Option(help: "Service name, sent back in x-service.") var service: String
        @Option(help: "Version, sent back in x-version.") var version: String = "v1"
        @Option(help: "Hold every answer to / (and other plain paths) this many milliseconds: a slow instance.") var delayMs: Int = 0

        func run() async throws {
            let (host, port) = try parseHostPort(self.listen)
            guard (0...60_000).contains(self.delayMs) else { throw ValidationError("--delay-ms must be in 0...60000") }
            try await SampleApps.runHTTP(
                host: host, port: port, service: self.service, version: self.version, hold: .milliseconds(Int64(self.delayMs))
            )
        }
    }
}

func parseHostPort(_ text: String) throws -> (String, Int) {
    guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
        (0...65535).contains(port)
    else {
        throw ValidationError("expected HOST:PORT, got '\(text)'")
    }
    return (String(text[..<colon]), port)
}
