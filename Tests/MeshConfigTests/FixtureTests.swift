import Testing

@testable import MeshConfig

/// The real Istio samples in tests/fixtures/istio load without errors once their services are declared.
@Suite struct FixtureTests {
    @Test func bookinfoGatewayAndDestinationRulesLoadWithoutErrors() throws {
        let result = ConfigLoader.load(files: [
            try sample("bookinfo/platform/kube/bookinfo.yaml"),
            try sample("bookinfo/networking/bookinfo-gateway.yaml"),
            try sample("bookinfo/networking/destination-rule-all.yaml"),
        ])
        #expect(result.errors.isEmpty, "\(result.lines)")
        let configuration = try #require(result.configuration)
        #expect(configuration.gateways.map(\.qualifiedName) == ["default/bookinfo-gateway"])
        #expect(configuration.gateways[0].servers == [GatewayServer(portNumber: 8080, portName: "http", protocol: .http, hosts: ["*"])])
        let bookinfo = try #require(configuration.virtualServices.first)
        #expect(bookinfo.gateways == ["default/bookinfo-gateway"])
        #expect(bookinfo.http[0].match.count == 5)
        #expect(bookinfo.http[0].match[0].uri == .exact("/productpage"))
        #expect(bookinfo.http[0].match[1].uri == .prefix("/static"))
        #expect(bookinfo.http[0].route == [
            RouteDestination(destination: Destination(host: "productpage.default.svc.cluster.local", port: 9080), weight: 100)
        ])
        #expect(configuration.destinationRules.map(\.host) == [
            "productpage.default.svc.cluster.local", "reviews.default.svc.cluster.local",
            "ratings.default.svc.cluster.local", "details.default.svc.cluster.local",
        ])
        #expect(configuration.destinationRules[1].subsets.map(\.name) == ["v1", "v2", "v3"])
        #expect(configuration.services.map(\.fqdn).sorted() == [
            "details.default.svc.cluster.local", "productpage.default.svc.cluster.local",
            "ratings.default.svc.cluster.local", "reviews.default.svc.cluster.local",
        ])
    }

    /// bookinfo.yaml holds Deployments and ServiceAccounts: one info line each, nothing more.
    @Test func kubernetesWorkloadKindsAreSkippedWithOneInfoEach() throws {
        let result = ConfigLoader.load(files: [try sample("bookinfo/platform/kube/bookinfo.yaml")])
        #expect(result.errors.isEmpty, "\(result.lines)")
        let deployments = result.find(.info, "skipped: Meshgate does not run Deployment")
        let accounts = result.find(.info, "skipped: Meshgate does not run ServiceAccount")
        #expect(deployments.count == 6)
        #expect(accounts.count == 4)
        #expect(result.infos.count == 10)
        #expect(result.lines.contains("istio/bookinfo/platform/kube/bookinfo.yaml:53: info: Deployment/details-v1: skipped: Meshgate does not run Deployment"))
        let productpage = try #require(result.configuration?.services.first { $0.meta.name == "productpage" })
        #expect(productpage.ports == [ServicePort(number: 9080, name: "http", protocol: .http)])
        #expect(productpage.location == .meshInternal)
    }

    @Test func tcpEchoLoadsWithoutErrorsOnceTheServiceIsDeclared() throws {
        let service = ConfigFile(path: "conf/tcp-echo-service.yaml", contents: """
            apiVersion: v1
            kind: Service
            metadata:
              name: tcp-echo
            spec:
              ports:
              - name: tcp
                port: 9000
              - name: tcp-other
                port: 9001
              selector:
                app: tcp-echo
            ---
            apiVersion: networking.istio.io/v1
            kind: WorkloadEntry
            metadata:
              name: tcp-echo-v1
            spec:
              address: 127.0.1.10
              labels: {app: tcp-echo, version: v1}
            """)
        let result = ConfigLoader.load(files: [service, try sample("tcp-echo/tcp-echo-all-v1.yaml")])
        #expect(result.errors.isEmpty, "\(result.lines)")
        let configuration = try #require(result.configuration)
        #expect(configuration.gateways[0].servers[0].protocol == .tcp)
        #expect(configuration.gateways[0].servers[0].portNumber == 31400)
        let route = try #require(configuration.virtualServices.first?.tcp.first)
        #expect(route.match == [L4Match(port: 31400)])
        #expect(route.route == [
            RouteDestination(destination: Destination(host: "tcp-echo.default.svc.cluster.local", subset: "v1", port: 9000), weight: 100)
        ])
        #expect(route.location == SourceLocation(file: "istio/tcp-echo/tcp-echo-all-v1.yaml", line: 54))
        // v2 selects no endpoint: a warning, not an error.
        #expect(result.find(.warning, "subset 'v2' (version=v2) selects no endpoint").count == 1)
    }

    /// Without a service declaration the sample's destination is reported, with the FQDN it resolved
    /// to: a warning, as Istio accepts it, and an error with `--strict`.
    @Test func tcpEchoWithoutServiceNamesTheResolvedHost() throws {
        let line = "istio/tcp-echo/tcp-echo-all-v1.yaml:58: warning: VirtualService/tcp-echo.spec.tcp[0].route[0].destination.host: host tcp-echo resolves to tcp-echo.default.svc.cluster.local, which no ServiceEntry or Service declares; requests routed there get 503 (NC, cluster_not_found)"
        let result = ConfigLoader.load(files: [try sample("tcp-echo/tcp-echo-all-v1.yaml")])
        #expect(result.configuration != nil)
        #expect(result.lines.contains(line))
        let strict = ConfigLoader.load(files: [try sample("tcp-echo/tcp-echo-all-v1.yaml")], options: LoadOptions(strict: true))
        #expect(strict.configuration == nil)
        #expect(strict.lines.contains(line.replacingOccurrences(of: ": warning: ", with: ": error: ")))
    }
}
