import Testing

@testable import MeshConfig

/// "Accept what Istio accepts": every field of Istio's current API (networking v1, security v1,
/// telemetry v1, per istio/api's protos as of Istio 1.28) is read, or warned "not supported yet;
/// ignored", never "unknown field"; a real typo still is an error with a suggestion.
@Suite struct IstioFieldTests {
    /// Each document sets every field of its kind's spec, nested messages included (values only need
    /// the right shape: this test is about the field names).
    static let everyField: [(kind: String, yaml: String)] = [
        ("Gateway", """
            apiVersion: networking.istio.io/v1
            kind: Gateway
            metadata: {name: every-field}
            spec:
              selector: {istio: ingressgateway}
              servers:
              - port: {number: 443, name: https, protocol: HTTPS, targetPort: 8443}
                bind: 0.0.0.0
                defaultEndpoint: 127.0.0.1:8080
                name: web
                hosts: ["*.example.com"]
                tls:
                  httpsRedirect: false
                  mode: MUTUAL
                  serverCertificate: /c.pem
                  privateKey: /k.pem
                  caCertificates: /ca.pem
                  caCrl: /crl.pem
                  credentialName: web
                  credentialNames: [web, web-ec]
                  caCertCredentialName: web-ca
                  tlsCertificates: [{serverCertificate: /c.pem, privateKey: /k.pem, caCertificates: /ca.pem}]
                  subjectAltNames: [client.example.com]
                  verifyCertificateSpki: [abc]
                  verifyCertificateHash: [def]
                  minProtocolVersion: TLSV1_2
                  maxProtocolVersion: TLSV1_3
                  cipherSuites: [ECDHE-RSA-AES128-GCM-SHA256]
            """),
        ("VirtualService", """
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: every-field}
            spec:
              hosts: [reviews]
              gateways: [mesh]
              exportTo: ["."]
              http:
              - name: all
                match:
                - name: m
                  uri: {prefix: /}
                  scheme: {exact: https}
                  method: {exact: GET}
                  authority: {exact: reviews}
                  headers: {x-a: {exact: "1"}}
                  port: 9080
                  sourceLabels: {app: a}
                  gateways: [mesh]
                  queryParams: {q: {exact: "1"}}
                  ignoreUriCase: true
                  withoutHeaders: {x-b: {}}
                  sourceNamespace: default
                  statPrefix: all
                route:
                - destination: {host: reviews, subset: v1, port: {number: 9080}}
                  weight: 100
                  headers: {request: {set: {a: b}}, response: {remove: [c]}}
                redirect: {uri: /x, authority: a, port: 8080, derivePort: FROM_PROTOCOL_DEFAULT, scheme: https, redirectCode: 302}
                directResponse: {status: 503, body: {string: down}}
                delegate: {name: d, namespace: default}
                rewrite: {uri: /y, authority: b, uriRegexRewrite: {match: a, rewrite: b}}
                timeout: 1s
                retries: {attempts: 2, perTryTimeout: 1s, retryOn: 5xx, retryRemoteLocalities: true, retryIgnorePreviousHosts: true, backoff: 25ms}
                fault: {delay: {fixedDelay: 1s, percentage: {value: 1}}, abort: {httpStatus: 500, percentage: {value: 1}}}
                mirror: {host: reviews}
                mirrors: [{destination: {host: reviews}, percentage: {value: 5}}]
                mirrorPercentage: {value: 5}
                mirrorPercent: 5
                corsPolicy: {allowOrigins: [{exact: a}], allowMethods: [GET], allowHeaders: [a], exposeHeaders: [b], maxAge: 1s, allowCredentials: true, unmatchedPreflights: IGNORE}
                headers: {request: {set: {a: b}, add: {c: d}, remove: [e]}, response: {set: {a: b}}}
              tls:
              - match:
                - {sniHosts: [reviews], destinationSubnets: [10.0.0.0/8], port: 443, sourceLabels: {app: a}, gateways: [mesh], sourceNamespace: default}
                route:
                - {destination: {host: reviews}, weight: 100}
              tcp:
              - match:
                - {destinationSubnets: [10.0.0.0/8], port: 31400, sourceLabels: {app: a}, gateways: [mesh], sourceNamespace: default}
                route:
                - {destination: {host: reviews}, weight: 100}
            """),
        ("DestinationRule", """
            apiVersion: networking.istio.io/v1
            kind: DestinationRule
            metadata: {name: every-field}
            spec:
              host: reviews
              exportTo: ["."]
              workloadSelector: {matchLabels: {app: reviews}}
              trafficPolicy:
                loadBalancer:
                  simple: ROUND_ROBIN
                  consistentHash: {httpCookie: {name: c, path: /, ttl: 0s, attributes: [{name: SameSite, value: Strict}]}, minimumRingSize: 1024}
                  localityLbSetting: {enabled: true, failoverPriority: [a]}
                  warmupDurationSecs: 10s
                  warmup: {duration: 10s, minimumPercent: 10, aggression: 1}
                connectionPool:
                  tcp: {maxConnections: 1, connectTimeout: 1s, tcpKeepalive: {probes: 1, time: 1s, interval: 1s}, maxConnectionDuration: 1h, idleTimeout: 1h}
                  http: {http1MaxPendingRequests: 1, http2MaxRequests: 1, maxRequestsPerConnection: 1, maxRetries: 1, idleTimeout: 1s, h2UpgradePolicy: DEFAULT, useClientProtocol: false, maxConcurrentStreams: 10}
                outlierDetection: {consecutiveErrors: 1, splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 1, consecutiveGatewayErrors: 1, consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 1s, maxEjectionPercent: 10, minHealthPercent: 0}
                tls: {mode: SIMPLE, clientCertificate: /c.pem, privateKey: /k.pem, caCertificates: /ca.pem, credentialName: c, subjectAltNames: [a], sni: a, insecureSkipVerify: true, caCrl: /crl.pem}
                portLevelSettings:
                - port: {number: 9080}
                  loadBalancer: {simple: LEAST_REQUEST}
                  connectionPool: {tcp: {maxConnections: 1}}
                  outlierDetection: {consecutive5xxErrors: 1}
                  tls: {mode: DISABLE}
                tunnel: {protocol: CONNECT, targetHost: a, targetPort: 80}
                proxyProtocol: {version: V1}
                retryBudget: {percent: 20, minRetryConcurrency: 3}
              subsets:
              - name: v1
                labels: {version: v1}
                trafficPolicy: {loadBalancer: {simple: RANDOM}}
            """),
        ("ServiceEntry", """
            apiVersion: networking.istio.io/v1
            kind: ServiceEntry
            metadata: {name: every-field}
            spec:
              hosts: [api.example.com]
              addresses: [10.1.2.3/32]
              ports: [{number: 443, protocol: TLS, name: tls, targetPort: 8443}]
              location: MESH_EXTERNAL
              resolution: STATIC
              endpoints:
              - {address: 10.1.2.3, ports: {tls: 8443}, labels: {a: b}, network: n, locality: r/z, weight: 1, serviceAccount: sa}
              exportTo: ["."]
              subjectAltNames: [api.example.com]
            """),
        ("WorkloadEntry", """
            apiVersion: networking.istio.io/v1
            kind: WorkloadEntry
            metadata: {name: every-field}
            spec: {address: 10.1.2.4, ports: {http: 8080}, labels: {app: a}, network: n, locality: r/z, weight: 1, serviceAccount: sa}
            """),
        ("PeerAuthentication", """
            apiVersion: security.istio.io/v1
            kind: PeerAuthentication
            metadata: {name: every-field}
            spec:
              selector: {matchLabels: {app: a}}
              mtls: {mode: STRICT}
              portLevelMtls: {"8080": {mode: PERMISSIVE}}
            """),
        ("Telemetry", """
            apiVersion: telemetry.istio.io/v1
            kind: Telemetry
            metadata: {name: every-field}
            spec:
              selector: {matchLabels: {app: a}}
              targetRef: {kind: Gateway, group: gateway.networking.k8s.io, name: g}
              targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: g}]
              tracing:
              - match: {mode: CLIENT_AND_SERVER}
                providers: [{name: zipkin}]
                randomSamplingPercentage: 10
                disableSpanReporting: false
                customTags: {a: {literal: {value: b}}, c: {environment: {name: E, defaultValue: d}}, e: {header: {name: h, defaultValue: d}}}
                useRequestIdForTraceSampling: true
                enableIstioTags: true
              metrics:
              - providers: [{name: prometheus}]
                overrides:
                - match: {metric: REQUEST_COUNT, mode: CLIENT_AND_SERVER}
                  disabled: false
                  tagOverrides: {a: {operation: UPSERT, value: b}}
                - match: {customMetric: my_metric}
                reportingInterval: 10s
              accessLogging:
              - match: {mode: SERVER}
                providers: [{name: envoy}]
                disabled: false
                filter: {expression: "response.code >= 400"}
            """),
    ]

    @Test(arguments: Self.everyField.map(\.kind))
    func noRealIstioFieldIsAnUnknownField(kind: String) throws {
        let yaml = try #require(Self.everyField.first { $0.kind == kind }?.yaml)
        let result = load(yaml)
        let unknown = result.diagnostics.filter { $0.message.contains("unknown field") }
        #expect(unknown.isEmpty, "\(unknown.map(\.description))")
    }

    @Test func aTypoIsStillAnErrorWithASuggestion() {
        let result = load("""
            apiVersion: networking.istio.io/v1
            kind: DestinationRule
            metadata: {name: typo}
            spec:
              host: reviews
              trafficPolicy:
                tls: {mode: SIMPLE, insecureSkipVerfy: true}
            """)
        #expect(result.find(.error, "conf/test.yaml:7:", "unknown field 'insecureSkipVerfy' (did you mean 'insecureSkipVerify'?)").count == 1)
    }

    @Test func workloadGroupProbesAreSaidNotToRun() {
        let result = load("""
            apiVersion: networking.istio.io/v1
            kind: WorkloadGroup
            metadata: {name: reviews}
            spec:
              metadata: {labels: {app: reviews}}
              probe: {httpGet: {path: /ready, port: 8080}}
            """)
        #expect(result.find(.warning, "conf/test.yaml:6:", "WorkloadGroup probes are not run").count == 1)
    }

    @Test func caCertCredentialNameGivesTheCAOfMutualTLS() throws {
        let result = TLSConfigTests.loadGateway(
            TLSConfigTests.gateway(tls: ["mode: MUTUAL", "credentialName: web", "caCertCredentialName: clients"]),
            settings: "credentialsDir: creds"
        )
        #expect(result.diagnostics.isEmpty, "\(result.lines)")
        let tls = try TLSConfigTests.serverTLS(result)
        #expect(tls.certificatePath == "conf/creds/web/tls.crt")
        #expect(tls.caCertificatesPath == "conf/creds/clients/ca.crt")
        // SIMPLE asks for no client certificate: the CA credential is unused.
        let simple = TLSConfigTests.loadGateway(TLSConfigTests.gateway(tls: ["credentialName: web", "caCertCredentialName: clients"]))
        #expect(simple.find(.warning, "caCertCredentialName", "SIMPLE TLS does not ask for client certificates").count == 1)
    }
}

/// Kinds Meshgate skips (Sidecar) still have their field
/// names checked: every Istio field passes, a typo is an error with a suggestion.
@Suite struct SkippedKindFieldTests {
    @Test func everyFieldOfASkippedKindPassesAndATypoIsAnError() {
        let result = load("""
            apiVersion: networking.istio.io/v1
            kind: Sidecar
            metadata: {name: all}
            spec:
              workloadSelector: {labels: {app: a}}
              ingress:
              - {port: {number: 80, protocol: HTTP, name: http, targetPort: 8080}, bind: 0.0.0.0, captureMode: NONE, defaultEndpoint: "127.0.0.1:8080", tls: {mode: SIMPLE, credentialName: c}, connectionPool: {http: {}}}
              egress:
              - {port: {number: 80, protocol: HTTP, name: http}, bind: 127.0.0.1, captureMode: DEFAULT, hosts: ["./*"]}
              outboundTrafficPolicy: {mode: REGISTRY_ONLY, egressProxy: {host: egress, subset: v1, port: {number: 80}}}
              inboundConnectionPool: {tcp: {}}
            ---
            apiVersion: security.istio.io/v1
            kind: AuthorizationPolicy
            metadata: {name: typo}
            spec:
              rules:
              - from:
                - source: {principal: [a]}
            """)
        #expect(result.errors.map(\.description) == [
            "conf/test.yaml:19: error: AuthorizationPolicy/typo.spec.rules[0].from[0].source.principal: unknown field 'principal' (did you mean 'principals'?)"
        ])
        // Sidecar skipped, and the policy (namespace default) selects nothing this gateway runs.
        #expect(result.infos.count == 2)
    }
}
