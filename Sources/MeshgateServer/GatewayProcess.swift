import Foundation
import MeshConfig
import MeshCore
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The gateway role: load, bind, serve; reload on SIGHUP; drain on SIGTERM.
///
/// Start-up with any config error exits non-zero with every diagnostic printed. A reload with an
/// error keeps the last good snapshot serving, logs every diagnostic, and shows them in admin
/// `/status`. Readiness is 200 only while a snapshot is loaded, every listener is bound and the
/// process is not draining.
public enum GatewayProcess {
    /// `meshgate validate`: everything start-up would check, without binding anything: the
    /// config's diagnostics, then (when it has no error) what compiling finds, such as certificate
    /// files that do not load or a key that does not match its certificate.
    public static func validate(configDirectory: String, role: MeshRole = .gateway, options: LoadOptions = LoadOptions()) -> [Diagnostic] {
        let loaded = ConfigLoader.load(directory: configDirectory, options: options)
        guard let configuration = loaded.configuration else { return loaded.diagnostics }
        do {
            _ = try self.compile(role, configuration, generation: 0)
            return loaded.diagnostics
        } catch {
            return loaded.diagnostics + error.diagnostics
        }
    }

    /// The role's snapshot of a validated configuration.
    static func compile(
        _ role: MeshRole, _ configuration: MeshConfiguration, generation: Int, telemetry: SnapshotTelemetry = SnapshotTelemetry()
    ) throws(SnapshotCompiler.CompileError) -> Snapshot {
        switch role {
        case .gateway: return try SnapshotCompiler.compileGateway(configuration, generation: generation, telemetry: telemetry)
        case .sidecar: return try SnapshotCompiler.compileSidecar(configuration, generation: generation, telemetry: telemetry)
        }
    }

    public static func run(configDirectory: String, role: MeshRole = .gateway) async -> Int32 {
        // Signal handlers before anything else: a SIGHUP or SIGTERM during start-up is queued for the
        // running process, never the default action (exit 129 on a reload sent too early).
        let signals = SignalStream.make()
        let log = MeshLog()
        let loaded = ConfigLoader.load(directory: configDirectory)
        for diagnostic in loaded.diagnostics {
            log.log(diagnostic.severity.logLevel, "config: \(diagnostic)")
        }
        guard let configuration = loaded.configuration else {
            let errors = loaded.diagnostics.filter { $0.severity == .error }.count
            log.error("config \(configDirectory) has \(errors) error(s); not starting")
            return 1
        }
        let telemetry = TelemetryObjects(log: log)
        let snapshot: Snapshot
        do {
            snapshot = try self.compile(role, configuration, generation: 1, telemetry: telemetry.forConfiguration(configuration))
        } catch {
            for diagnostic in error.diagnostics { log.error("config: \(diagnostic)") }
            return 1
        }

        let settings = configuration.settings
        let loops = settings.eventLoops > 0 ? settings.eventLoops : System.coreCount
        let group = MultiThreadedEventLoopGroup(numberOfThreads: loops)
        let process = GatewayRuntime(
            role: role,
            configDirectory: configDirectory,
            group: group,
            snapshot: snapshot,
            diagnostics: loaded.diagnostics,
            telemetry: telemetry,
            log: log
        )
        let code = await process.run(signals: signals)
        telemetry.shutdown()
        try? await group.shutdownGracefully()
        return code
    }
}

extension Diagnostic.Severity {
    var logLevel: MeshLog.Level {
        switch self {
        case .error: return .error
        case .warning: return .warning
        case .info: return .info
        }
    }
}

/// The running gateway: its snapshot, listeners, control endpoints and signal handling.
final class GatewayRuntime: Sendable {
    struct ReloadOutcome: Sendable {
        var ok: Bool
        var generation: Int
        var diagnostics: [String]
        var time: String
    }

    struct State: Sendable {
        var ready = false
        var draining = false
        /// Set by admin `/healthcheck/fail` (planned maintenance): readiness answers 503.
        var healthcheckFailed = false
        var lastReload: ReloadOutcome
        var reloadsApplied = 0
        var reloadFailures = 0
        /// Where the mesh certificate comes from, and when the issued one is renewed.
        var identitySource: IdentitySource?
        var renewAt: Date?
    }

    let role: MeshRole
    let configDirectory: String
    let group: EventLoopGroup
    let identity = MeshIdentity()
    let holder: SnapshotHolder
    let tracker = ConnectionTracker()
    let listeners: ListenerManager
    let metrics: MeshMetrics
    let telemetry: TelemetryObjects
    let log: MeshLog
    let state: NIOLockedValueBox<State>

    init(
        role: MeshRole, configDirectory: String, group: EventLoopGroup, snapshot: Snapshot, diagnostics: [Diagnostic],
        telemetry: TelemetryObjects, log: MeshLog
    ) {
        self.role = role
        self.configDirectory = configDirectory
        self.group = group
        self.holder = SnapshotHolder(snapshot)
        self.log = log
        self.telemetry = telemetry
        self.metrics = MeshMetrics(group: group, sourceLabels: Self.sourceLabels(snapshot.settings))
        self.listeners = ListenerManager(
            group: group,
            holder: self.holder,
            pools: HTTPConnectionPools(group: group, identity: self.identity),
            identity: self.identity,
            metrics: self.metrics,
            tracker: self.tracker,
            log: log
        )
        self.state = NIOLockedValueBox(
            State(
                lastReload: ReloadOutcome(
                    ok: true,
                    generation: snapshot.generation,
                    diagnostics: diagnostics.map(\.description),
                    time: MeshLog.timestamp()
                )
            )
        )
    }

    func run(signals: AsyncStream<ProcessSignal>) async -> Int32 {
        let snapshot = self.holder.load()
        let settings = snapshot.settings
        var control: [Channel] = []
        do {
            // The certificate before any listener: readiness means certificates loaded and ports bound.
            try self.installIdentity(for: settings)
        } catch {
            self.log.error("mesh certificate: \(error); not starting")
            return 1
        }
        let rotation = Task { await self.rotateCertificates() }
        defer { rotation.cancel() }
        do {
            control.append(
                try await SimpleHTTPServer.bind(group: self.group, host: settings.bindAddress, port: settings.readinessPort) { [self] _, path in
                    self.readinessResponse(path: path)
                }
            )
            control.append(
                try await SimpleHTTPServer.bind(group: self.group, host: "127.0.0.1", port: settings.adminPort) { [self] method, path in
                    await self.adminResponse(method: method, path: path)
                }
            )
            control.append(
                try await SimpleHTTPServer.bind(group: self.group, host: settings.bindAddress, port: settings.metricsPort) { [self] _, path in
                    await self.metricsResponse(path: path)
                }
            )
            self.log.info(
                "readiness on \(settings.bindAddress):\(settings.readinessPort), metrics on \(settings.bindAddress):\(settings.metricsPort), admin on 127.0.0.1:\(settings.adminPort)"
            )
            try await self.listeners.bindNew(for: snapshot)
        } catch {
            self.log.error("start-up failed: \(error)")
            await self.listeners.closeAll()
            for channel in control { try? await channel.close() }
            return 1
        }
        self.telemetry.activate(snapshot)
        self.state.withLockedValue { $0.ready = true }
        self.metrics.setControl("meshgate_config_generation", Double(snapshot.generation))
        self.metrics.setControl("meshgate_config_reload_total{result=\"success\"}", 0)
        self.metrics.setControl("meshgate_config_reload_total{result=\"failure\"}", 0)
        SystemdNotify.send("READY=1\nSTATUS=serving generation \(snapshot.generation)")
        self.log.info("ready: generation \(snapshot.generation), \(snapshot.listeners.count) listener(s)")

        var code: Int32 = 0
        for await signal in signals {
            switch signal {
            case .reload:
                await self.reload()
                continue
            case .drain:
                code = await self.drain()
            case .fastStop:
                self.log.info("SIGINT: stopping now")
                await self.listeners.closeAll()
                self.tracker.closeAll()
            }
            break
        }
        for channel in control { try? await channel.close() }
        return code
    }

    // MARK: - Reload

    func reload() async {
        SystemdNotify.send("RELOADING=1")
        defer { SystemdNotify.send("READY=1") }
        let current = self.holder.load()
        self.log.info("SIGHUP: reloading \(self.configDirectory)")
        // Whatever the new configuration says, a rotated access log is reopened (as nginx does on USR1).
        self.telemetry.reopenMovedAccessLogs()
        // A config started with a meshgate.yaml keeps needing one: without it every setting would
        // silently fall back to its default.
        let options = LoadOptions(requireSettingsFile: current.settings.sourceFile != nil)
        let loaded = ConfigLoader.load(directory: self.configDirectory, options: options)
        var diagnostics = loaded.diagnostics
        guard let configuration = loaded.configuration else {
            self.rejectReload(diagnostics, current: current)
            return
        }
        let next: Snapshot
        do {
            next = try GatewayProcess.compile(
                self.role, configuration, generation: current.generation + 1, telemetry: self.telemetry.forConfiguration(configuration)
            )
        } catch {
            self.rejectReload(diagnostics + error.diagnostics, current: current)
            return
        }
        do {
            // certDir files are re-read (replaced on disk, then SIGHUP); caDir issues afresh.
            try self.installIdentity(for: next.settings)
        } catch {
            self.rejectReload(diagnostics + [Diagnostic(.error, at: nil, path: "meshgate.yaml", "mesh certificate: \(error)")], current: current)
            return
        }
        for (name, old, new) in [
            ("readinessPort", current.settings.readinessPort, next.settings.readinessPort),
            ("adminPort", current.settings.adminPort, next.settings.adminPort),
            ("eventLoops", current.settings.eventLoops, next.settings.eventLoops),
        ] where old != new {
            diagnostics.append(Diagnostic(.warning, at: nil, path: "meshgate.yaml.\(name)", "changed from \(old) to \(new); takes effect after a restart"))
        }
        do {
            try await self.listeners.bindNew(for: next)
        } catch {
            self.rejectReload(diagnostics + [Diagnostic(.error, at: nil, path: "listeners", "\(error)")], current: current)
            return
        }
        self.holder.swap(next)
        self.telemetry.activate(next)
        self.metrics.setSourceLabels(Self.sourceLabels(next.settings))
        self.metrics.setControl("meshgate_config_generation", Double(next.generation))
        self.metrics.addControl("meshgate_config_reload_total{result=\"success\"}")
        await self.listeners.closeRemoved(for: next)
        for diagnostic in diagnostics { self.log.log(diagnostic.severity.logLevel, "config: \(diagnostic)") }
        self.state.withLockedValue {
            $0.reloadsApplied += 1
            $0.lastReload = ReloadOutcome(ok: true, generation: next.generation, diagnostics: diagnostics.map(\.description), time: MeshLog.timestamp())
        }
        self.log.info("reload applied: generation \(next.generation), \(next.listeners.count) listener(s)")
    }

    private func rejectReload(_ diagnostics: [Diagnostic], current: Snapshot) {
        for diagnostic in diagnostics { self.log.log(diagnostic.severity.logLevel, "config: \(diagnostic)") }
        self.metrics.addControl("meshgate_config_reload_total{result=\"failure\"}")
        self.state.withLockedValue {
            $0.reloadFailures += 1
            $0.lastReload = ReloadOutcome(ok: false, generation: current.generation, diagnostics: diagnostics.map(\.description), time: MeshLog.timestamp())
        }
        let errors = diagnostics.filter { $0.severity == .error }.count
        self.log.error("reload rejected (\(errors) error(s)); still serving generation \(current.generation)")
    }

    // MARK: - Mesh certificate

    /// Loads (reads or issues) the certificate the settings name and makes it the one new
    /// connections use. Settings with neither caDir nor certDir leave the instance without one.
    func installIdentity(for settings: MeshSettings) throws {
        guard let source = IdentitySource(settings) else {
            self.state.withLockedValue {
                $0.identitySource = nil
                $0.renewAt = nil
            }
            return
        }
        let loaded = try source.load()
        self.identity.install(loaded.material)
        self.state.withLockedValue {
            $0.identitySource = source
            $0.renewAt = loaded.renewAt
        }
        self.metrics.setControl(
            "meshgate_certificate_expiry_timestamp_seconds{identity=\"\(loaded.material.uri)\"}", Double(loaded.material.notValidAfter)
        )
        let renewal = loaded.renewAt.map { ", renewal at \(Self.iso(Int($0.timeIntervalSince1970)))" } ?? ""
        self.log.info("mesh certificate \(loaded.material.uri) (\(loaded.material.origin)), expires \(Self.iso(loaded.material.notValidAfter))\(renewal)")
    }

    static func iso(_ seconds: Int) -> String {
        ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval(seconds)))
    }

    /// Renews an issued certificate at half its lifetime (Istio's grace ratio), for as long as the
    /// process runs. A failed renewal keeps the current certificate and retries every 5s; it is
    /// logged and counted each time.
    func rotateCertificates() async {
        while !Task.isCancelled {
            let (source, renewAt) = self.state.withLockedValue { ($0.identitySource, $0.renewAt) }
            guard let source, let renewAt else {
                try? await Task.sleep(for: .seconds(1))
                continue
            }
            let wait = renewAt.timeIntervalSinceNow
            if wait > 0 {
                try? await Task.sleep(for: .milliseconds(Int(min(wait, 1) * 1000) + 1))
                continue
            }
            do {
                let loaded = try source.load()
                // A reload may have replaced the source meanwhile: install only if it is the same.
                guard self.state.withLockedValue({ $0.identitySource == source }) else { continue }
                self.identity.install(loaded.material)
                self.state.withLockedValue { $0.renewAt = loaded.renewAt }
                self.metrics.addControl("meshgate_certificate_rotations_total{result=\"success\"}")
                self.metrics.setControl(
                    "meshgate_certificate_expiry_timestamp_seconds{identity=\"\(loaded.material.uri)\"}", Double(loaded.material.notValidAfter)
                )
                self.log.info("mesh certificate rotated: \(loaded.material.uri), expires \(Self.iso(loaded.material.notValidAfter))")
            } catch {
                self.metrics.addControl("meshgate_certificate_rotations_total{result=\"failure\"}")
                self.log.error("mesh certificate rotation failed: \(error); keeping the current one, retrying in 5s")
                self.state.withLockedValue { $0.renewAt = Date().addingTimeInterval(5) }
            }
        }
    }

    // MARK: - Drain

    /// Readiness turns 503 first; then the listeners stop accepting; idle keep-alive connections
    /// close and busy ones close after their response; whatever is left when `drainTimeout` ends
    /// is closed.
    func drain() async -> Int32 {
        let timeout = self.holder.load().settings.drainTimeout
        self.state.withLockedValue { $0.draining = true }
        SystemdNotify.send("STOPPING=1")
        self.log.info("SIGTERM: draining (readiness 503; up to \(timeout) for \(self.tracker.count) connection(s))")
        await self.listeners.closeAll()
        self.tracker.drainAll()
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while self.tracker.count > 0 && clock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        let left = self.tracker.count
        if left > 0 {
            self.log.warning("drain timeout: closing \(left) connection(s)")
            self.tracker.closeAll()
        }
        self.log.info("drained; exiting")
        return 0
    }
}
