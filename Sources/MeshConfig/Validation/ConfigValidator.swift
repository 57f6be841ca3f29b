/// validated: runs every check across resources on what decoding produced, and assembles the
/// ``MeshConfiguration`` (the caller drops it when any error was reported).
enum ConfigValidator {
    static func validate(_ declarations: Declarations, sink: DiagnosticSink) -> MeshConfiguration {
        let registry = ServiceRegistry(declarations, sink: sink)
        let gatewayChecks = GatewayChecks(gateways: declarations.gateways, sink: sink)
        let routeChecks = RouteChecks(registry: registry, declarations: declarations, sink: sink)
        gatewayChecks.checkPortProtocols()
        gatewayChecks.checkSNIHosts()
        for virtualService in declarations.virtualServices {
            routeChecks.check(virtualService)
            gatewayChecks.checkHostsServed(virtualService)
            gatewayChecks.checkTLSRoutesBound(virtualService)
        }
        gatewayChecks.checkTCPConflicts(declarations.virtualServices)
        routeChecks.checkRules()
        TelemetryChecks.check(declarations.telemetry, settings: declarations.settings, sink: sink)
        AuthorizationChecks.check(
            declarations.authorizationPolicies, settings: declarations.settings, gateways: declarations.gateways.map(\.gateway), sink: sink
        )
        var configuration = MeshConfiguration(
            settings: declarations.settings,
            gateways: declarations.gateways.map(\.gateway),
            virtualServices: DelegateResolver(declarations.virtualServices, sink: sink).resolve(declarations.virtualServices),
            destinationRules: declarations.destinationRules.map(\.rule),
            services: registry.services,
            telemetry: declarations.telemetry
        )
        configuration.peerAuthentications = declarations.peerAuthentications
        configuration.authorizationPolicies = declarations.authorizationPolicies
        configuration.requestAuthentications = declarations.requestAuthentications
        return configuration
    }
}
