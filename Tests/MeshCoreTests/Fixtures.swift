import MeshConfig

@testable import MeshCore

/// A small gateway config built in code: reviews v1/v2/v3 on 127.0.9.x, a TCP service, one Gateway.
enum Fixtures {
    static func service(_ name: String, port: Int, protocol: PortProtocol = .http, versions: [String]) -> Service {
        Service(
            meta: ResourceMeta(kind: "Service", name: name, namespace: "default"),
            fqdn: "\(name).default.svc.cluster.local",
            ports: [ServicePort(number: port, name: `protocol` == .tcp ? "tcp" : "http", protocol: `protocol`)],
            endpoints: versions.enumerated().map { index, version in
                Endpoint(
                    name: "\(name)-\(version)",
                    namespace: "default",
                    address: "127.0.9.\(index + 1)",
                    labels: ["app": name, "version": version]
                )
            }
        )
    }

    static func subsets(_ host: String, _ versions: [String]) -> DestinationRule {
        DestinationRule(
            meta: ResourceMeta(kind: "DestinationRule", name: host, namespace: "default"),
            host: "\(host).default.svc.cluster.local",
            trafficPolicy: nil,
            subsets: versions.map { Subset(name: $0, labels: ["version": $0]) }
        )
    }

    static func to(_ host: String, _ subset: String? = nil, weight: Int = 100) -> RouteDestination {
        RouteDestination(destination: Destination(host: "\(host).default.svc.cluster.local", subset: subset), weight: weight)
    }

    static var gateway: Gateway {
        Gateway(
            meta: ResourceMeta(kind: "Gateway", name: "gw", namespace: "default"),
            selector: ["istio": "ingressgateway"],
            servers: [
                GatewayServer(portNumber: 8080, portName: "http", protocol: .http, hosts: ["*"]),
                GatewayServer(portNumber: 31400, portName: "tcp", protocol: .tcp, hosts: ["*"]),
            ]
        )
    }

    static func configuration(http: [HTTPRoute], hosts: [String] = ["*"], tcp: [TCPRoute] = []) -> MeshConfiguration {
        MeshConfiguration(
            gateways: [gateway],
            virtualServices: [
                VirtualService(
                    meta: ResourceMeta(kind: "VirtualService", name: "vs", namespace: "default"),
                    hosts: hosts,
                    gateways: ["default/gw"],
                    http: http,
                    tcp: tcp
                )
            ],
            destinationRules: [subsets("reviews", ["v1", "v2", "v3"]), subsets("echo", ["v1", "v2"])],
            services: [
                service("reviews", port: 9080, versions: ["v1", "v2", "v3"]),
                service("productpage", port: 9080, versions: ["v1"]),
                service("empty", port: 9080, versions: []),
                service("echo", port: 9000, protocol: .tcp, versions: ["v1", "v2"]),
            ]
        )
    }
}
