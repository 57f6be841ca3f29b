/// What decoding hands to validation: the model values, plus where each cross-reference was
/// written, so that validation can point at the exact line.

/// A diagnostic place: file:line and the resource path.
struct Place: Sendable {
    var location: SourceLocation
    var path: String
}

extension Field {
    var place: Place { Place(location: self.location, path: self.path) }
}

extension MapReader {
    var place: Place { self.field.place }

    /// The place of field `key`: its own line when present, else this map's line.
    func place(of key: String) -> Place {
        Place(location: self[key]?.location ?? self.location, path: self.field.childPath(key))
    }
}

extension DiagnosticSink {
    func error(at place: Place, _ message: String) { self.error(at: place.location, path: place.path, message) }
    func warning(at place: Place, _ message: String) { self.warning(at: place.location, path: place.path, message) }
    func info(at place: Place, _ message: String) { self.info(at: place.location, path: place.path, message) }
    func danglingReference(at place: Place, _ message: String) { self.danglingReference(at: place.location, path: place.path, message) }
}

struct GatewayDeclaration {
    var gateway: Gateway
    /// The place of each server's `port`, index for index with `gateway.servers`.
    var serverPorts: [Place]
}

/// A gateway name as written (`name`, `ns/name` or `mesh`), resolved to `namespace/name`.
struct GatewayReference {
    var name: String
    var place: Place
}

/// One `route[].destination` with the places of its parts.
struct DestinationUse {
    var destination: Destination
    /// The host as written, for messages.
    var writtenHost: String
    var host: Place
    var port: Place
    var subset: Place
}

struct VirtualServiceDeclaration {
    var virtualService: VirtualService
    var hosts: Place
    /// Every gateway reference: `spec.gateways` and each `match[].gateways`.
    var gatewayReferences: [GatewayReference]
    var destinations: [DestinationUse]
    /// The place of each `tcp[]` rule, index for index with `virtualService.tcp`.
    var tcpRules: [Place]
    /// The place of each `tls[]` rule, index for index with `virtualService.tls`.
    var tlsRules: [Place]
    /// The place of each `http[].delegate`, by the index of its route.
    var delegations: [Int: Place] = [:]
    /// The place of each `http[]` route, index for index with `virtualService.http`.
    var httpRules: [Place] = []
}

struct DestinationRuleDeclaration {
    var rule: DestinationRule
    var host: Place
    /// The place of each subset, index for index with `rule.subsets`.
    var subsets: [Place]
}

/// A ServiceEntry or a Kubernetes Service, before its endpoints are resolved.
struct ServiceDeclaration {
    var meta: ResourceMeta
    /// One Service per host (a Kubernetes Service has exactly one).
    var hosts: [(fqdn: String, place: Place)]
    var ports: [ServicePort]
    var resolution: ServiceResolution
    var location: ServiceLocation
    /// ServiceEntry `endpoints`.
    var inlineEndpoints: [Endpoint]
    /// ServiceEntry `workloadSelector.labels` or Kubernetes `spec.selector`: picks WorkloadEntries of
    /// the same namespace. nil selects none.
    var selector: [String: String]?
    var place: Place
}

struct WorkloadDeclaration {
    var endpoint: Endpoint
    var place: Place
}

/// Everything decoded from the files, in file order.
struct Declarations {
    var settings = MeshSettings()
    var gateways: [GatewayDeclaration] = []
    var virtualServices: [VirtualServiceDeclaration] = []
    var destinationRules: [DestinationRuleDeclaration] = []
    var services: [ServiceDeclaration] = []
    var workloads: [WorkloadDeclaration] = []
    var telemetry: [TelemetryPolicy] = []
    var peerAuthentications: [PeerAuthentication] = []
    var authorizationPolicies: [AuthorizationPolicy] = []
    var requestAuthentications: [RequestAuthentication] = []
}
